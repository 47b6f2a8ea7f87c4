/* A1111 prompt language: one check per rule of the parser (the web UI's own doctest
 * examples among them), the chunker (75-token chunks, BREAK, comma backtrack, SD 2.x
 * padding) and mean-keeping emphasis. */
#include "prompt_syntax.h"

#include <stdlib.h>

#include "check.h"

typedef struct want {
    const char *text;
    double weight;
} want;

/* Parses s and compares every piece with w (n pieces): text exactly, weight exactly
 * (computed here in the web UI's order of multiplication). */
static void expect(const char *s, const want *w, int n) {
    char msg[256];
    prompt_pieces p;
    cs_status st = prompt_parse_attention(s, &p, msg, sizeof msg);
    CHECK_EQ_INT(st, CS_OK);
    if (st != CS_OK) return;
    if (p.count != n) fprintf(stderr, "prompt \"%s\": %d pieces, want %d\n", s, p.count, n);
    CHECK_EQ_INT(p.count, n);
    for (int i = 0; i < n && i < p.count; i++) {
        if (strcmp(p.items[i].text, w[i].text) != 0 || p.items[i].weight != w[i].weight)
            fprintf(stderr, "prompt \"%s\" piece %d: [\"%s\", %.17g], want [\"%s\", %.17g]\n", s,
                    i, p.items[i].text, p.items[i].weight, w[i].text, w[i].weight);
        CHECK(strcmp(p.items[i].text, w[i].text) == 0);
        CHECK(p.items[i].weight == w[i].weight);
    }
    prompt_pieces_free(&p);
}

#define EXPECT(s, ...)                                                                      \
    do {                                                                                    \
        const want w_[] = {__VA_ARGS__};                                                    \
        expect(s, w_, (int)(sizeof w_ / sizeof w_[0]));                                     \
    } while (0)

static void test_parser(void) {
    const double r = 1.1, q = 1.0 / 1.1;
    EXPECT("normal text", {"normal text", 1.0});
    EXPECT("", {"", 1.0});
    EXPECT("an (important) word", {"an ", 1.0}, {"important", r}, {" word", 1.0});
    EXPECT("(unbalanced", {"unbalanced", r});
    EXPECT("\\(literal\\]", {"(literal]", 1.0});
    EXPECT("(unnecessary)(parens)", {"unnecessaryparens", r});
    /* The web UI's own example, weights multiplied in the order brackets close. */
    EXPECT("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {"a ", 1.0},
           {"house", 1.3 * r * r}, {" ", r}, {"on", 1.0}, {" a ", r}, {"hill", 0.5 * r},
           {", sun, ", r}, {"sky", r * r * r * r}, {".", r});
    EXPECT("[less]", {"less", q});
    EXPECT("[[less]]", {"less", q * q});
    EXPECT("(x:0.5)", {"x", 0.5});
    EXPECT("(x: 1.5 )", {"x", 1.5});        /* whitespace around the number */
    EXPECT("(x:-.5)", {"x", -0.5});
    EXPECT("x:1.5) y", {"x:1.5) y", 1.0}); /* a weight with no open "(" is text */
    EXPECT("a: b", {"a: b", 1.0});
    EXPECT("(a:b)", {"a:b", r});           /* not a number: text inside "(...)" */
    EXPECT("stray) and]", {"stray) and]", 1.0});
    EXPECT("back\\\\slash", {"back\\slash", 1.0});
    EXPECT("lone\\x", {"lonex", 1.0});      /* a lone backslash disappears */
    EXPECT("[(mixed)]", {"mixed", r * q});
    EXPECT("(a [b] c", {"a ", r}, {"b", q * r}, {" c", r}); /* unclosed "(" applies last */
    /* BREAK: a word on its own, surrounding whitespace swallowed. */
    EXPECT("a BREAK b", {"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0});
    EXPECT("BREAKFAST and aBREAK", {"BREAKFAST and aBREAK", 1.0});
    EXPECT("a,BREAK,b", {"a,", 1.0}, {"BREAK", -1.0}, {",b", 1.0});
    /* A BREAK inside brackets has its marker weight scaled: the web UI then reads it as
     * the word "BREAK" with that weight. */
    EXPECT("(a BREAK b)", {"a", r}, {"BREAK", -1.0 * r}, {"b", r});
    {
        char msg[256];
        prompt_pieces p;
        CHECK_EQ_INT(prompt_parse_attention("a BREAK b", &p, msg, sizeof msg), CS_OK);
        CHECK(p.count == 3 && p.items[1].is_break && !p.items[0].is_break);
        prompt_pieces_free(&p);
        CHECK_EQ_INT(prompt_parse_attention("(a BREAK b)", &p, msg, sizeof msg), CS_OK);
        CHECK(p.count == 3 && !p.items[1].is_break);
        prompt_pieces_free(&p);
        CHECK_EQ_INT(prompt_parse_attention("(x:1.2.3)", &p, msg, sizeof msg), CS_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(msg, "1.2.3");
        CHECK_EQ_INT(prompt_parse_attention("(x:.)", &p, msg, sizeof msg), CS_ERR_INVALID_ARG);
        /* Weights that would overflow the encoder's floats are refused by name, whether
         * written out or reached by nesting; a large but sane weight passes. */
        CHECK_EQ_INT(prompt_parse_attention("a (huge:1e39) b", &p, msg, sizeof msg), CS_OK);
        prompt_pieces_free(&p); /* "1e39" is not a weight ("e"): text inside "(...)" */
        CHECK_EQ_INT(prompt_parse_attention("a (huge:99999999999999999999999999999999999999999) b", &p, msg, sizeof msg),
                     CS_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(msg, "huge");
        CHECK_EQ_INT(p.count, 0);
        char deep[4096];
        int k = 0;
        for (; k < 1000; k++) deep[k] = '(';
        memcpy(deep + k, "deep", 5);
        CHECK_EQ_INT(prompt_parse_attention(deep, &p, msg, sizeof msg), CS_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(msg, "deep");
        CHECK_EQ_INT(prompt_parse_attention("(x:999)", &p, msg, sizeof msg), CS_OK);
        prompt_pieces_free(&p);
        CHECK_EQ_INT(prompt_parse_attention("(x:0) (0 times inf:0)", &p, msg, sizeof msg), CS_OK);
        prompt_pieces_free(&p);
    }
}

static void test_chunks(void) {
    char dir[4096], msg[512];
    snprintf(dir, sizeof dir, "%s/tokenizer", CS_GOLDEN_DIR);
    cs_tokenizer *t;
    if (tokenizer_load(dir, &t, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "FAIL: the CLIP tokenizer is needed (%s)\n", msg);
        check_failures++;
        return;
    }
    const int64_t bos = 49406, eos = 49407;
    prompt_pieces p;
    prompt_chunks c;
    /* Plain text: one chunk, the same ids as the plain padded encoding. */
    CHECK_EQ_INT(prompt_parse_attention("a red circle", &p, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, PROMPT_CHUNK_TOKENS, 4, &c, msg, sizeof msg), CS_OK);
    int64_t plain[77];
    int unpadded;
    CHECK_EQ_INT(tokenizer_encode(t, "a red circle", 12, plain, 77, &unpadded, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(c.count, 1);
    CHECK(memcmp(c.ids, plain, sizeof plain) == 0);
    for (int i = 0; i < 77; i++) CHECK(c.weights[i] == 1.0f);
    prompt_chunks_free(&c);
    prompt_pieces_free(&p);

    /* Weights follow their tokens; BOS/EOS/padding keep 1. */
    CHECK_EQ_INT(prompt_parse_attention("a (red:1.5) circle", &p, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, PROMPT_CHUNK_TOKENS, 4, &c, msg, sizeof msg), CS_OK);
    CHECK(c.ids[0] == bos && c.weights[0] == 1.0f && c.weights[1] == 1.0f);
    CHECK(c.weights[2] == 1.5f && c.weights[3] == 1.0f && c.ids[4] == eos && c.weights[76] == 1.0f);
    prompt_chunks_free(&c);
    prompt_pieces_free(&p);

    /* BREAK starts a new chunk; an empty prompt is one chunk. */
    CHECK_EQ_INT(prompt_parse_attention("a BREAK b", &p, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, PROMPT_CHUNK_TOKENS, 4, &c, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(c.count, 2);
    CHECK(c.ids[2] == eos && c.ids[77] == bos && c.ids[79] == eos && c.ids[153] == eos);
    prompt_chunks_free(&c);
    prompt_pieces_free(&p);
    CHECK_EQ_INT(prompt_parse_attention("", &p, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, PROMPT_CHUNK_TOKENS, 4, &c, msg, sizeof msg), CS_OK);
    CHECK(c.count == 1 && c.ids[0] == bos && c.ids[1] == eos && c.ids[76] == eos);
    prompt_chunks_free(&c);
    prompt_pieces_free(&p);

    /* 80 words "a": 75 in the first chunk, 5 in the second. */
    char text[400] = "";
    for (int i = 0; i < 80; i++) strcat(text, "a ");
    CHECK_EQ_INT(prompt_parse_attention(text, &p, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, PROMPT_CHUNK_TOKENS, 4, &c, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(c.count, 2);
    CHECK(c.ids[75] != eos && c.ids[76] == eos && c.ids[77 + 5] != eos && c.ids[77 + 6] == eos);
    prompt_chunks_free(&c);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, PROMPT_CHUNK_TOKENS, 1, &c, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "longer than 1 chunks");
    /* A text encoder of 20 positions: chunks of 18 tokens (80 -> 18 x 4 + 8), each
     * BOS + tokens + EOS padding + EOS, 20 ids wide. */
    CHECK_EQ_INT(prompt_make_chunks(t, &p, 18, 8, &c, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(c.count, 5);
    CHECK_EQ_INT(c.chunk_tokens, 18);
    for (int k = 0; k < 5; k++) CHECK(c.ids[k * 20] == bos && c.ids[k * 20 + 19] == eos);
    CHECK(c.ids[18] != eos && c.ids[4 * 20 + 8] != eos && c.ids[4 * 20 + 9] == eos);
    prompt_chunks_free(&c);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, 18, 4, &c, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "chunks of 18 tokens");
    prompt_pieces_free(&p);

    /* Comma backtrack: 70 words, a comma, 10 words -> the 4 words after the comma that
     * would fill chunk one move to chunk two with the rest. */
    text[0] = '\0';
    for (int i = 0; i < 70; i++) strcat(text, "a ");
    strcat(text, ", ");
    for (int i = 0; i < 10; i++) strcat(text, "b ");
    CHECK_EQ_INT(prompt_parse_attention(text, &p, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(prompt_make_chunks(t, &p, PROMPT_CHUNK_TOKENS, 4, &c, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(c.count, 2);
    /* chunk 1: BOS, 70 a, comma, EOS padding; chunk 2: BOS, 10 b, EOS... */
    CHECK(c.ids[71] != eos && c.ids[72] == eos && c.ids[77 + 10] != eos && c.ids[77 + 11] == eos);
    prompt_chunks_free(&c);
    prompt_pieces_free(&p);
    tokenizer_free(t);
}

static void test_emphasis(void) {
    float z[6] = {1, 2, 3, 4, 5, 6}, w[3] = {1, 1, 1};
    float same[6];
    memcpy(same, z, sizeof z);
    prompt_apply_emphasis(z, w, 3, 2);
    CHECK(memcmp(z, same, sizeof z) == 0); /* weights of 1 change nothing */
    const float w2[3] = {1, 2, 1};
    prompt_apply_emphasis(z, w2, 3, 2);
    double mean = 0;
    for (int i = 0; i < 6; i++) mean += z[i];
    CHECK_NEAR(mean / 6, 3.5, 1e-6); /* the mean is kept */
    CHECK_NEAR(z[2] / z[0], 2 * 3.0 / 1.0, 1e-5); /* the weighted token is scaled twice */
}

int main(void) {
    test_parser();
    test_chunks();
    test_emphasis();
    CHECK_DONE();
}
