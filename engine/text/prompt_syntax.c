/* The A1111 prompt language: attention parser, chunker, emphasis (see prompt_syntax.h). */
#include "prompt_syntax.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double k_round_mult = 1.1;
#define SQUARE_MULT (1.0 / 1.1)
/* Far beyond any weight that steers an image; keeps the encoder's floats finite. */
#define PROMPT_MAX_WEIGHT 1000.0

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Python's \w on ASCII; bytes of multi-byte UTF-8 characters count as word characters. */
static bool is_word(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_' || c >= 0x80;
}

typedef struct builder {
    prompt_pieces *p;
    int cap;
    bool nomem;
} builder;

static void push(builder *b, const char *text, size_t len, double weight) {
    if (b->nomem) return;
    if (b->p->count == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        prompt_piece *items = realloc(b->p->items, (size_t)cap * sizeof *items);
        if (!items) {
            b->nomem = true;
            return;
        }
        b->p->items = items;
        b->cap = cap;
    }
    char *copy = strndup(text, len);
    if (!copy) {
        b->nomem = true;
        return;
    }
    b->p->items[b->p->count++] = (prompt_piece){.text = copy, .weight = weight};
}

/* re.split(r"\s*\bBREAK\b\s*", text): the parts with a BREAK marker between them. */
static void push_text(builder *b, const char *s, size_t len) {
    size_t part = 0; /* start of the current part */
    for (size_t i = part; i + 5 <= len; i++) {
        if (memcmp(s + i, "BREAK", 5) != 0) continue;
        bool left = i == 0 || !is_word((unsigned char)s[i - 1]);
        bool right = i + 5 == len || !is_word((unsigned char)s[i + 5]);
        if (!left || !right) continue;
        size_t start = i, end = i + 5;
        while (start > part && is_space(s[start - 1])) start--;
        while (end < len && is_space(s[end])) end++;
        push(b, s + part, start - part, 1.0);
        push(b, "BREAK", 5, -1.0);
        part = end;
        i = end - 1;
    }
    push(b, s + part, len - part, 1.0);
}

static void multiply_from(prompt_pieces *p, int start, double mult) {
    for (int i = start; i < p->count; i++) p->items[i].weight *= mult;
}

/* ":" \s* [+-]? [.\d]+ \s* ")" at s[i]; on a match returns its end and the number's span. */
static size_t match_weight(const char *s, size_t len, size_t i, size_t *num, size_t *num_len) {
    size_t q = i + 1;
    while (q < len && is_space(s[q])) q++;
    size_t start = q;
    if (q < len && (s[q] == '+' || s[q] == '-')) q++;
    size_t digits = q;
    while (q < len && (s[q] == '.' || (s[q] >= '0' && s[q] <= '9'))) q++;
    if (q == digits) return 0;
    size_t end = q;
    while (q < len && is_space(s[q])) q++;
    if (q >= len || s[q] != ')') return 0;
    *num = start;
    *num_len = end - start;
    return q + 1;
}

/* float() of "[+-]?[.\d]+": at least one digit and at most one point. */
static bool parse_weight(const char *s, size_t n, double *out) {
    char buf[64];
    int digits = 0, points = 0;
    if (n == 0 || n >= sizeof buf) return false;
    for (size_t i = 0; i < n; i++) {
        digits += s[i] >= '0' && s[i] <= '9';
        points += s[i] == '.';
    }
    if (!digits || points > 1) return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

void prompt_pieces_free(prompt_pieces *p) {
    for (int i = 0; i < p->count; i++) free(p->items[i].text);
    free(p->items);
    *p = (prompt_pieces){0};
}

cs_status prompt_parse_attention(const char *s, prompt_pieces *out, char *msg, size_t n) {
    *out = (prompt_pieces){0};
    builder b = {.p = out};
    size_t len = strlen(s);
    int *round = calloc(len + 1, sizeof *round), *square = calloc(len + 1, sizeof *square);
    int nr = 0, ns = 0;
    if (!round || !square) b.nomem = true;
    for (size_t i = 0; i < len && !b.nomem;) {
        char c = s[i];
        size_t num, num_len, end;
        if (c == '\\') {
            bool escape = i + 1 < len && strchr("()[]\\", s[i + 1]);
            push(&b, s + i + 1, escape ? 1 : 0, 1.0);
            i += escape ? 2 : 1;
        } else if (c == '(') {
            round[nr++] = out->count;
            i++;
        } else if (c == '[') {
            square[ns++] = out->count;
            i++;
        } else if (c == ':' && (end = match_weight(s, len, i, &num, &num_len)) != 0) {
            double w;
            if (nr > 0) {
                if (!parse_weight(s + num, num_len, &w)) {
                    free(round);
                    free(square);
                    prompt_pieces_free(out);
                    return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                                   "prompt: \"%.*s\" at byte %zu is not a number", (int)num_len,
                                   s + num, num);
                }
                multiply_from(out, round[--nr], w);
            } else {
                push_text(&b, s + i, end - i);
            }
            i = end;
        } else if (c == ')' && nr > 0) {
            multiply_from(out, round[--nr], k_round_mult);
            i++;
        } else if (c == ']' && ns > 0) {
            multiply_from(out, square[--ns], SQUARE_MULT);
            i++;
        } else if (c == ':' || c == ')' || c == ']') {
            push_text(&b, s + i, 1);
            i++;
        } else {
            size_t run = strcspn(s + i, "\\()[]:");
            push_text(&b, s + i, run);
            i += run;
        }
    }
    /* Unclosed brackets apply to the end, innermost last, as the web UI's loop does. */
    for (int k = 0; k < nr && !b.nomem; k++) multiply_from(out, round[k], k_round_mult);
    for (int k = 0; k < ns && !b.nomem; k++) multiply_from(out, square[k], SQUARE_MULT);
    free(round);
    free(square);
    if (out->count == 0) push(&b, "", 0, 1.0);
    if (b.nomem) {
        prompt_pieces_free(out);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory parsing a prompt");
    }
    /* Merge runs of identical weights (BREAK markers included, as the web UI does). */
    int w = 0;
    for (int r = 0; r < out->count; r++) {
        if (w > 0 && out->items[w - 1].weight == out->items[r].weight) {
            prompt_piece *d = &out->items[w - 1];
            size_t a = strlen(d->text), bl = strlen(out->items[r].text);
            char *joined = realloc(d->text, a + bl + 1);
            if (!joined) {
                for (int k = r; k < out->count; k++) free(out->items[k].text);
                out->count = w;
                prompt_pieces_free(out);
                return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory parsing a prompt");
            }
            memcpy(joined + a, out->items[r].text, bl + 1);
            d->text = joined;
            free(out->items[r].text);
        } else {
            out->items[w++] = out->items[r];
        }
    }
    out->count = w;
    /* Nesting multiplies: 2,000 brackets or "(x:1e39)" overflow the float the encoder
     * scales by, and a NaN from inf*0 would poison the whole batch row. */
    for (int i = 0; i < out->count; i++) {
        double wt = out->items[i].weight;
        if (!(fabs(wt) <= PROMPT_MAX_WEIGHT)) {
            /* At most 40 bytes of the text, cut on a UTF-8 boundary. */
            const char *t = out->items[i].text;
            size_t cut = strlen(t);
            if (cut > 40)
                for (cut = 40; cut > 0 && ((unsigned char)t[cut] & 0xC0) == 0x80;) cut--;
            char shown[48];
            snprintf(shown, sizeof shown, "%.*s", (int)cut, t);
            prompt_pieces_free(out);
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "prompt: the weight of \"%s\" comes to %g, outside [-%g, %g]", shown,
                           wt, PROMPT_MAX_WEIGHT, PROMPT_MAX_WEIGHT);
        }
    }
    /* Only an untouched marker is a break: one inside brackets had its weight scaled
     * and is the word "BREAK" to the web UI. */
    for (int i = 0; i < out->count; i++)
        out->items[i].is_break = out->items[i].weight == -1.0 && !strcmp(out->items[i].text, "BREAK");
    return CS_OK;
}

void prompt_chunks_free(prompt_chunks *c) {
    free(c->ids);
    free(c->weights);
    *c = (prompt_chunks){0};
}

typedef struct chunker {
    const cs_tokenizer *t;
    prompt_chunks *out;
    int max_chunks;
    int size; /* tokens per chunk, BOS and EOS aside */
    int64_t cur_ids[PROMPT_CHUNK_TOKENS];
    float cur_w[PROMPT_CHUNK_TOKENS];
    int cur_len, last_comma;
    bool too_long;
} chunker;

/* Closes the current chunk: BOS + tokens + EOS padding + EOS. */
static void next_chunk(chunker *k) {
    if (k->out->count == k->max_chunks) {
        k->too_long = true;
        k->cur_len = 0;
        return;
    }
    const int width = k->size + 2;
    int64_t *ids = k->out->ids + (size_t)k->out->count * width;
    float *w = k->out->weights + (size_t)k->out->count * width;
    const int64_t eos = tokenizer_eos_id(k->t), pad = tokenizer_pad_id(k->t);
    ids[0] = tokenizer_bos_id(k->t);
    w[0] = 1.0f;
    for (int i = 0; i < k->size; i++) {
        ids[1 + i] = i < k->cur_len ? k->cur_ids[i] : eos;
        w[1 + i] = i < k->cur_len ? k->cur_w[i] : 1.0f;
    }
    ids[width - 1] = eos;
    w[width - 1] = 1.0f;
    /* SD 2.x pads with its own id after the first end-of-text. */
    if (pad != eos) {
        int first = 1;
        while (ids[first] != eos) first++;
        for (int i = first + 1; i < width; i++) ids[i] = pad;
    }
    k->out->count++;
    k->cur_len = 0;
    k->last_comma = -1;
}

static void add_token(chunker *k, int64_t id, float weight, int64_t comma) {
    if (id == comma) {
        k->last_comma = k->cur_len;
    } else if (k->cur_len == k->size && k->last_comma != -1 &&
               k->cur_len - k->last_comma <= PROMPT_COMMA_BACKTRACK) {
        /* Full, with a comma nearby: what follows the comma moves to the next chunk. */
        int at = k->last_comma + 1, moved = k->cur_len - at;
        int64_t ids[PROMPT_CHUNK_TOKENS];
        float w[PROMPT_CHUNK_TOKENS];
        memcpy(ids, k->cur_ids + at, (size_t)moved * sizeof *ids);
        memcpy(w, k->cur_w + at, (size_t)moved * sizeof *w);
        k->cur_len = at;
        next_chunk(k);
        memcpy(k->cur_ids, ids, (size_t)moved * sizeof *ids);
        memcpy(k->cur_w, w, (size_t)moved * sizeof *w);
        k->cur_len = moved;
    }
    if (k->cur_len == k->size) next_chunk(k);
    k->cur_ids[k->cur_len] = id;
    k->cur_w[k->cur_len] = weight;
    k->cur_len++;
}

cs_status prompt_make_chunks(const cs_tokenizer *t, const prompt_pieces *p, int chunk_tokens,
                             int max_chunks, prompt_chunks *out, char *msg, size_t n) {
    *out = (prompt_chunks){.chunk_tokens = chunk_tokens};
    CS_ASSERT(max_chunks >= 1 && chunk_tokens >= 1 && chunk_tokens <= PROMPT_CHUNK_TOKENS);
    const size_t width = (size_t)chunk_tokens + 2;
    out->ids = cs_malloc((size_t)max_chunks * width * sizeof *out->ids);
    out->weights = cs_malloc((size_t)max_chunks * width * sizeof *out->weights);
    if (!out->ids || !out->weights) {
        prompt_chunks_free(out);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory chunking a prompt");
    }
    /* The comma token (",</w>" in CLIP's vocabulary) as the tokenizer spells it. */
    int64_t *comma_ids = NULL, count = 0, comma = -1;
    cs_status st = tokenizer_encode_full(t, ",", 1, &comma_ids, &count, msg, n);
    if (st != CS_OK) {
        prompt_chunks_free(out);
        return st;
    }
    if (count == 3) comma = comma_ids[1];
    free(comma_ids);
    chunker k = {.t = t, .out = out, .max_chunks = max_chunks, .size = chunk_tokens,
                 .last_comma = -1};
    for (int i = 0; i < p->count && !k.too_long; i++) {
        if (p->items[i].is_break) {
            next_chunk(&k);
            continue;
        }
        int64_t *ids = NULL;
        st = tokenizer_encode_full(t, p->items[i].text, strlen(p->items[i].text), &ids, &count,
                                   msg, n);
        if (st != CS_OK) {
            prompt_chunks_free(out);
            return st;
        }
        /* Without BOS and EOS, as tokenizer(text, add_special_tokens=False) gives. */
        for (int64_t j = 1; j + 1 < count && !k.too_long; j++)
            add_token(&k, ids[j], (float)p->items[i].weight, comma);
        free(ids);
    }
    if (!k.too_long && (k.cur_len > 0 || out->count == 0)) next_chunk(&k);
    if (k.too_long) {
        prompt_chunks_free(out);
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "prompt: longer than %d chunks of %d tokens", max_chunks, chunk_tokens);
    }
    return CS_OK;
}

void prompt_apply_emphasis(float *z, const float *weights, int64_t len, int64_t dim) {
    const int64_t total = len * dim;
    double before = 0, after = 0;
    for (int64_t i = 0; i < total; i++) before += z[i];
    for (int64_t t = 0; t < len; t++)
        for (int64_t d = 0; d < dim; d++) z[t * dim + d] *= weights[t];
    for (int64_t i = 0; i < total; i++) after += z[i];
    if (after == 0) return; /* nothing to restore (all weights zero) */
    const float scale = (float)((before / (double)total) / (after / (double)total));
    for (int64_t i = 0; i < total; i++) z[i] *= scale;
}
