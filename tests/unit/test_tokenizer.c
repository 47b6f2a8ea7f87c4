/*
 * Unit tests of the CLIP tokenizer: a tiny synthetic tokenizer written to a temp folder
 * (BPE merges, lower-casing, unknown tokens, padding/truncation, SD 2.x's "!" pad token,
 * malformed files), invalid UTF-8, and a two-thread smoke test. With the golden folder
 * present, the real CLIP vocabulary is checked on a few prompts as well.
 */
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tokenizer.h"

static char g_dir[256];

static void write_file(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    unlink(path);
}

/* Ids: "!"=0 a=1 b=2 c=3 "!</w>"=4 "a</w>"=5 "b</w>"=6 "c</w>"=7 ab=8 "abc</w>"=9
 * <|startoftext|>=10 <|endoftext|>=11. */
static const char *k_vocab =
    "{\"!\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \"!</w>\": 4, \"a</w>\": 5, \"b</w>\": 6,\n"
    " \"c</w>\": 7, \"ab\": 8, \"abc</w>\": 9, \"<|startoftext|>\": 10, \"<|endoftext|>\": 11}\n";
static const char *k_merges = "#version: 0.2\na b\nab c</w>\n";
static const char *k_config_sd1 = "{\"model_max_length\": 77, \"pad_token\": \"<|endoftext|>\", "
                                  "\"tokenizer_class\": \"CLIPTokenizer\"}";

static void write_good(void) {
    write_file("vocab.json", k_vocab);
    write_file("merges.txt", k_merges);
    write_file("tokenizer_config.json", k_config_sd1);
    remove_file("special_tokens_map.json");
}

/* Encodes text fully and compares with want[0, n). */
static void check_full(const cs_tokenizer *t, const char *text, const int64_t *want, int64_t n,
                       int line) {
    int64_t *ids = NULL, count = 0;
    char msg[256] = "";
    cs_status st = tokenizer_encode_full(t, text, strlen(text), &ids, &count, msg, sizeof msg);
    bool ok = st == CS_OK && count == n && memcmp(ids, want, (size_t)n * sizeof *ids) == 0;
    if (!ok) {
        fprintf(stderr, "line %d: \"%s\" -> st %d (%s), %lld ids:", line, text, st, msg,
                (long long)count);
        for (int64_t i = 0; i < count; i++)
            fprintf(stderr, " %lld", (long long)ids[i]);
        fprintf(stderr, "\n");
        check_failures++;
    }
    free(ids);
}
#define CHECK_FULL(t, text, ...)                                                                   \
    do {                                                                                           \
        const int64_t want_[] = {__VA_ARGS__};                                                     \
        check_full(t, text, want_, (int64_t)(sizeof want_ / sizeof want_[0]), __LINE__);           \
    } while (0)

static void test_basic(void) {
    write_good();
    cs_tokenizer *t = NULL;
    char msg[512] = "";
    CHECK_EQ_INT(tokenizer_load(g_dir, &t, msg, sizeof msg), CS_OK);
    if (!t) {
        fprintf(stderr, "load: %s\n", msg);
        return;
    }
    CHECK_EQ_INT(tokenizer_max_length(t), 77);
    CHECK_EQ_INT(tokenizer_bos_id(t), 10);
    CHECK_EQ_INT(tokenizer_eos_id(t), 11);
    CHECK_EQ_INT(tokenizer_pad_id(t), 11);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 12);
    CHECK_FULL(t, "", 10, 11);
    CHECK_FULL(t, " \t\n", 10, 11);
    CHECK_FULL(t, "abc", 10, 9, 11);   /* a b -> ab, ab c</w> -> abc</w> */
    CHECK_FULL(t, "ABC", 10, 9, 11);   /* lower-cased first */
    CHECK_FULL(t, "ab", 10, 1, 6, 11); /* (a, b</w>) is not a merge */
    CHECK_FULL(t, "cab", 10, 3, 1, 6, 11);
    CHECK_FULL(t, "abc!", 10, 9, 4, 11);                /* letters and punctuation split */
    CHECK_FULL(t, "z", 10, 11, 11);                     /* unknown -> unk_token (<|endoftext|>) */
    CHECK_FULL(t, "a<|endoftext|>b", 10, 5, 11, 6, 11); /* added token split out first */
    CHECK_FULL(t, "<|ENDOFTEXT|>", 10, 11, 11);         /* lower-cased, then CLIP's literal */
    CHECK_FULL(t,
               "a\xe2\x80\x8b"
               "bc",
               10, 9, 11); /* U+200B (Cf) removed */

    /* Padding and truncation. */
    int64_t ids[8];
    int n = 0;
    CHECK_EQ_INT(tokenizer_encode(t, "abc", 3, ids, 6, &n, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(n, 3);
    const int64_t want_pad[6] = {10, 9, 11, 11, 11, 11};
    CHECK(memcmp(ids, want_pad, sizeof want_pad) == 0);
    const char *many = "abc abc abc abc";
    CHECK_EQ_INT(tokenizer_encode(t, many, strlen(many), ids, 4, &n, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(n, 4);
    const int64_t want_trunc[4] = {10, 9, 9, 11};
    CHECK(memcmp(ids, want_trunc, sizeof want_trunc) == 0);
    CHECK_EQ_INT(tokenizer_encode(t, many, strlen(many), ids, 6, &n, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(n, 6); /* exactly BOS + 4 + EOS: nothing dropped */
    CHECK_EQ_INT(ids[5], 11);
    CHECK_EQ_INT(tokenizer_encode(t, "abc", 3, ids, 1, &n, msg, sizeof msg), CS_ERR_INVALID_ARG);

    /* Invalid UTF-8 is an error, never a crash. */
    static const char *const k_bad[] = {"\xff",     "a\xc0\xaf",        "\xed\xa0\x80",
                                        "\xe4\xb8", "\xf4\x90\x80\x80", "\x80"};
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        msg[0] = '\0';
        int64_t *full = NULL, count = 0;
        CHECK_EQ_INT(
            tokenizer_encode_full(t, k_bad[i], strlen(k_bad[i]), &full, &count, msg, sizeof msg),
            CS_ERR_INVALID_ARG);
        CHECK(full == NULL);
        CHECK_STR_CONTAINS(msg, "UTF-8");
    }
    /* Embedded NUL is a character (removed like other controls), not the end. */
    CHECK_EQ_INT(tokenizer_encode(t, "ab\0c", 4, ids, 8, &n, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(ids[1], 9);
    tokenizer_free(t);
}

/* SD 2.x: pad_token "!" (from special_tokens_map.json, which counts because the config
 * has no added_tokens_decoder). "!" becomes an added token, so it pads with id 0 and is
 * also split out of prompts whole. */
static void test_sd2_pad(void) {
    write_good();
    write_file("tokenizer_config.json", "{\"model_max_length\": 77, \"pad_token\": "
                                        "\"<|endoftext|>\", \"do_lower_case\": true}");
    write_file("special_tokens_map.json",
               "{\"pad_token\": \"!\", \"bos_token\": {\"content\": "
               "\"<|startoftext|>\", \"lstrip\": false, \"rstrip\": false}}");
    cs_tokenizer *t = NULL;
    char msg[512] = "";
    CHECK_EQ_INT(tokenizer_load(g_dir, &t, msg, sizeof msg), CS_OK);
    if (!t) {
        fprintf(stderr, "load: %s\n", msg);
        return;
    }
    CHECK_EQ_INT(tokenizer_pad_id(t), 0);
    int64_t ids[5];
    int n = 0;
    CHECK_EQ_INT(tokenizer_encode(t, "abc", 3, ids, 5, &n, msg, sizeof msg), CS_OK);
    const int64_t want[5] = {10, 9, 11, 0, 0};
    CHECK(memcmp(ids, want, sizeof want) == 0);
    CHECK_FULL(t, "abc!!", 10, 9, 0, 0, 11); /* SD 1.x would give "!" + "!</w>" = 0, 4 */
    tokenizer_free(t);
    remove_file("special_tokens_map.json");
}

/* added_tokens_decoder with an id past the vocabulary, an additional special token that
 * receives the next new id, and lstrip/rstrip. Stripping the whitespace of neighbouring
 * text cannot change ids (BasicTokenizer drops it anyway) except when the neighbour is an
 * added token with whitespace at its edge: stripped, it is plain text. */
static void test_added_tokens(void) {
    write_good();
    write_file("tokenizer_config.json",
               "{\"added_tokens_decoder\": {"
               "\"11\": {\"content\": \"<|endoftext|>\", \"lstrip\": true, \"rstrip\": true},"
               "\"12\": {\"content\": \" a\", \"special\": true}},"
               " \"additional_special_tokens\": [\"<x>\"]}");
    write_file("special_tokens_map.json", "{\"pad_token\": \"!\"}"); /* ignored: decoder */
    cs_tokenizer *t = NULL;
    char msg[512] = "";
    CHECK_EQ_INT(tokenizer_load(g_dir, &t, msg, sizeof msg), CS_OK);
    if (!t) {
        fprintf(stderr, "load: %s\n", msg);
        return;
    }
    CHECK_EQ_INT(tokenizer_pad_id(t), 11);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 14); /* <x>: 12 vocab strings + " a" = id 13 */
    CHECK_FULL(t, "ab <|endoftext|> c<x>", 10, 1, 6, 11, 7, 13, 11);
    CHECK_FULL(t, "c a", 10, 7, 12, 11);             /* " a" split out whole */
    CHECK_FULL(t, "<|endoftext|> a", 10, 11, 5, 11); /* rstrip: " a" becomes text "a" */
    CHECK_FULL(t, "<x> a", 10, 13, 12, 11);          /* <x> does not strip */
    tokenizer_free(t);
    remove_file("special_tokens_map.json");
}

/* Loads from g_dir expecting failure with st, the message naming `where` and `why`. */
static void expect_load_error(cs_status st, const char *where, const char *why, int line) {
    cs_tokenizer *t = NULL;
    char msg[512] = "";
    cs_status got = tokenizer_load(g_dir, &t, msg, sizeof msg);
    if (got != st || t != NULL || !strstr(msg, where) || !strstr(msg, why)) {
        fprintf(stderr, "line %d: expected status %d naming \"%s\"/\"%s\", got %d: %s\n", line, st,
                where, why, got, msg);
        check_failures++;
    }
    tokenizer_free(t);
}
#define EXPECT_LOAD_ERROR(st, where, why) expect_load_error(st, where, why, __LINE__)

static void test_malformed(void) {
    write_good();
    write_file("vocab.json", "{\"a\": 1, \"b\": ");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "invalid JSON");
    write_file("vocab.json", "[1, 2]");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "JSON object");
    write_file("vocab.json", "{\"a\": \"1\"}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "\"a\": the id must be an integer");
    write_file("vocab.json", "{\"a\": 1.5}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "must be an integer");
    write_file("vocab.json", "{\"a\": -1}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "must be an integer");
    write_file("vocab.json", "{\"a\": 20000000}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "must be an integer");
    write_file("vocab.json", "{\"a\": 1, \"b\": 1}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "id 1 is used twice");
    write_file("vocab.json", "{\"a\": 1, \"a\": 2}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "appears twice");
    write_file("vocab.json", "{\"a\\u0000b\": 1}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "vocab.json", "\\u0000");
    remove_file("vocab.json");
    EXPECT_LOAD_ERROR(CS_ERR_IO, "vocab.json", "cannot open");

    write_good();
    write_file("merges.txt", "#version: 0.2\na b\na b c\n");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "merges.txt:3", "two symbols");
    write_file("merges.txt", "#version: 0.2\nab\n");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "merges.txt:2", "two symbols");
    write_file("merges.txt", "#version: 0.2\na  b\n");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "merges.txt:2", "two symbols");
    write_file("merges.txt", "#version: 0.2\na b\n\nab c</w>\n");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "merges.txt:3", "empty line");
    write_file("merges.txt", "#version: 0.2\na b\nab c</w>\na b\n");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "merges.txt:4", "duplicate merge");
    write_file("merges.txt", "#version: 0.2\na \xff\n");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "merges.txt:2", "UTF-8");

    write_good();
    write_file("tokenizer_config.json", "{\"tokenizer_class\": \"T5Tokenizer\"}");
    EXPECT_LOAD_ERROR(CS_ERR_UNSUPPORTED, "tokenizer_config.json", "T5Tokenizer");
    write_file("tokenizer_config.json", "{\"model_max_length\": \"77\"}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "tokenizer_config.json", "model_max_length");
    write_file("tokenizer_config.json", "{\"pad_token\": 5}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "tokenizer_config.json", "pad_token");
    write_file("tokenizer_config.json",
               "{\"added_tokens_decoder\": {\"x\": {\"content\": \"q\"}}}");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "tokenizer_config.json", "added_tokens_decoder");
    write_file("tokenizer_config.json", "{\"added_tokens_decoder\": {\"12\": {\"content\": \"q\", "
                                        "\"single_word\": true}}}");
    EXPECT_LOAD_ERROR(CS_ERR_UNSUPPORTED, "tokenizer_config.json", "single_word");
    write_file("tokenizer_config.json", "{\"pad_token\": null}");
    EXPECT_LOAD_ERROR(CS_ERR_UNSUPPORTED, g_dir, "pad_token is null");
    write_file("tokenizer_config.json", "{} x");
    EXPECT_LOAD_ERROR(CS_ERR_FORMAT, "tokenizer_config.json", "after the JSON value");
    write_good();
}

/* ---- two threads on one tokenizer ---- */

typedef struct job {
    const cs_tokenizer *t;
    const char *const *texts;
    int n_texts;
    int64_t (*want)[77];
    int failures;
} job;

static void *encode_loop(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 200; rep++) {
        for (int i = 0; i < j->n_texts; i++) {
            int64_t ids[77];
            int n;
            char msg[128];
            if (tokenizer_encode(j->t, j->texts[i], strlen(j->texts[i]), ids, 77, &n, msg,
                                 sizeof msg) != CS_OK ||
                memcmp(ids, j->want[i], sizeof ids) != 0)
                j->failures++;
        }
    }
    return NULL;
}

static void thread_smoke(const cs_tokenizer *t, const char *const *texts, int n) {
    int64_t want[16][77];
    CHECK(n <= 16);
    for (int i = 0; i < n; i++) {
        int cnt;
        char msg[128];
        CHECK_EQ_INT(
            tokenizer_encode(t, texts[i], strlen(texts[i]), want[i], 77, &cnt, msg, sizeof msg),
            CS_OK);
    }
    job jobs[2] = {{t, texts, n, want, 0}, {t, texts, n, want, 0}};
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        CHECK_EQ_INT(pthread_create(&th[k], NULL, encode_loop, &jobs[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    CHECK_EQ_INT(jobs[0].failures + jobs[1].failures, 0);
}

static void test_threads_synthetic(void) {
    write_good();
    cs_tokenizer *t = NULL;
    char msg[512];
    CHECK_EQ_INT(tokenizer_load(g_dir, &t, msg, sizeof msg), CS_OK);
    static const char *const texts[] = {"abc", "ABC abc! cab", "", "z y x", "ab<|endoftext|>c"};
    if (t) thread_smoke(t, texts, 5);
    tokenizer_free(t);
}

static void test_golden_vocab(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tokenizer", CS_GOLDEN_DIR);
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        printf("skipping the real-vocabulary checks: %s is absent\n", dir);
        return;
    }
    cs_tokenizer *t = NULL;
    char msg[512] = "";
    CHECK_EQ_INT(tokenizer_load(dir, &t, msg, sizeof msg), CS_OK);
    if (!t) {
        fprintf(stderr, "load %s: %s\n", dir, msg);
        return;
    }
    CHECK_EQ_INT(tokenizer_vocab_size(t), 49408);
    CHECK_FULL(t, "a photograph of an astronaut riding a horse", 49406, 320, 8853, 539, 550, 18376,
               6765, 320, 4558, 49407);
    CHECK_FULL(t, "!!!", 49406, 995, 49407);
    CHECK_FULL(t, "\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab", 49406, 19759, 478, 34517, 359, 163, 234,
               360, 49407); /* CJK: each ideograph its own word */
    CHECK_FULL(t, "a <|endoftext|> b", 49406, 320, 49407, 321, 49407);
    static const char *const texts[] = {
        "a photo of a cat", "masterpiece, best quality, ultra-detailed, 1girl",
        "caf\xc3\xa9 na\xc3\xafve", "\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab",
        "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis"};
    thread_smoke(t, texts, 5);
    tokenizer_free(t);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/cs_test_tokenizer_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_basic();
    test_sd2_pad();
    test_added_tokens();
    test_malformed();
    test_threads_synthetic();
    test_golden_vocab();
    static const char *const files[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                        "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove_file(files[i]);
    rmdir(g_dir);
    CHECK_DONE();
}
