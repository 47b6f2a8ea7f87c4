/*
 * CLIP tokenizer encoding (see tokenizer.h for the pipeline). Every call works in its own
 * scratch buffers and only reads the cs_tokenizer, so concurrent calls on one tokenizer
 * are safe without locks. There is no BPE cache: the heap-based merge loop below costs
 * O(n log n) per word, microseconds for a prompt, so a cache (and its lock) would buy
 * nothing measurable.
 */
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

typedef struct idvec {
    int64_t *v;
    size_t n, cap;
} idvec;

/* A candidate merge of node `pos` with its right neighbour, valid while both still hold
 * the symbols recorded here. */
typedef struct bpe_pair {
    int32_t rank, pos, left, right;
} bpe_pair;

/* Per-call scratch, grown on demand and freed at the end of the call. */
typedef struct scratch {
    uint32_t *clean, *nfc, *lower;        /* the normalisation stages of one text piece */
    size_t clean_cap, nfc_cap, lower_cap; /* in code points */
    unsigned char *bytes;                 /* one regex piece as UTF-8 */
    size_t bytes_cap;
    int32_t *sym, *prev, *next, *touched; /* BPE nodes, one per byte of the piece */
    bpe_pair *heap; /* 3 per node: n - 1 initial pairs, at most 2 more per merge */
    size_t node_cap;
} scratch;

static void scratch_free(scratch *s) {
    free(s->clean);
    free(s->nfc);
    free(s->lower);
    free(s->bytes);
    free(s->sym);
    free(s->prev);
    free(s->next);
    free(s->touched);
    free(s->heap);
}

/* Reallocates the array whose pointer is at `slot` to count elements of `size` bytes
 * (overflow-checked); the array is unchanged on failure. The pointer is moved with memcpy
 * so that any element type works without aliasing a T * as a void *. */
static bool grow(void *slot, size_t count, size_t size) {
    size_t bytes;
    void *p;
    if (!cs_mul_size(count, size, &bytes)) return false;
    memcpy(&p, slot, sizeof p);
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) return false;
    memcpy(slot, &q, sizeof q);
    return true;
}

#define GROW(ptr, count) grow(&(ptr), (count), sizeof *(ptr))

static cs_status push_id(idvec *v, int64_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        if (!GROW(v->v, cap)) return CS_ERR_NOMEM;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return CS_OK;
}

/* ---- BPE ------------------------------------------------------------------------ */

static bool pair_less(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_pair *h, size_t *n, bpe_pair p) {
    size_t i = (*n)++;
    while (i > 0 && pair_less(&p, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = p;
}

static bpe_pair heap_pop(bpe_pair *h, size_t *n) {
    bpe_pair top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_less(&h[c + 1], &h[c])) c++;
        if (!pair_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Pushes the merge candidate (node pos, its right neighbour) if the pair has a rank. */
static void consider(const cs_tokenizer *t, scratch *s, size_t *nh, int32_t pos) {
    if (pos < 0 || s->next[pos] < 0) return;
    int32_t key[2] = {s->sym[pos], s->sym[s->next[pos]]};
    int64_t rank;
    if (strmap_get(&t->pairs, key, sizeof key, &rank))
        heap_push(s->heap, nh, (bpe_pair){(int32_t)rank, pos, key[0], key[1]});
}

/* CLIPTokenizer.bpe on n >= 1 byte symbols in s->sym: repeatedly merge every occurrence of
 * the lowest-ranked adjacent pair, left to right. One heap pass handles all occurrences
 * of one rank before any pair the pass creates is considered, exactly like the Python
 * loop's rebuild of `pairs` after each merged bigram. */
static void bpe_merge(const cs_tokenizer *t, scratch *s, int32_t n) {
    size_t nh = 0;
    for (int32_t i = 0; i < n; i++) {
        s->prev[i] = i - 1;
        s->next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int32_t i = 0; i + 1 < n; i++)
        consider(t, s, &nh, i);
    while (nh > 0) {
        int32_t rank = s->heap[0].rank;
        size_t nt = 0;
        while (nh > 0 && s->heap[0].rank == rank) {
            bpe_pair p = heap_pop(s->heap, &nh);
            int32_t r = s->next[p.pos];
            if (s->sym[p.pos] != p.left || r < 0 || s->sym[r] != p.right) continue; /* stale */
            s->sym[p.pos] = t->merge_result[rank];
            s->sym[r] = -1;
            s->next[p.pos] = s->next[r];
            if (s->next[r] >= 0) s->prev[s->next[r]] = p.pos;
            s->touched[nt++] = p.pos;
        }
        for (size_t i = 0; i < nt; i++) {
            consider(t, s, &nh, s->prev[s->touched[i]]);
            consider(t, s, &nh, s->touched[i]);
        }
    }
}

static cs_status emit(const cs_tokenizer *t, int64_t id, idvec *out, char *msg, size_t n) {
    if (id < 0) id = t->unk_id;
    if (id < 0)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                       "the text has a token that is not in the "
                       "vocabulary, and unk_token is not in vocab.json either");
    return push_id(out, id) == CS_OK ? CS_OK : cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
}

/* One piece of CLIP's regex: UTF-8 bytes -> bytes_to_unicode symbols -> BPE -> ids. */
static cs_status encode_piece(const cs_tokenizer *t, scratch *s, const uint32_t *cp, size_t ncp,
                              idvec *out, char *msg, size_t n) {
    size_t nb = 0;
    if (4 * ncp > s->bytes_cap) {
        if (!GROW(s->bytes, 4 * ncp)) goto nomem;
        s->bytes_cap = 4 * ncp;
    }
    for (size_t i = 0; i < ncp; i++)
        nb += uni_encode_utf8(cp[i], s->bytes + nb);
    if (nb == 15 && memcmp(s->bytes, "<|startoftext|>", 15) == 0)
        return emit(t, t->sot_literal_id, out, msg, n); /* bpe()'s cache entries */
    if (nb == 13 && memcmp(s->bytes, "<|endoftext|>", 13) == 0)
        return emit(t, t->eot_literal_id, out, msg, n);
    if (nb > INT32_MAX / 4) goto nomem;
    if (nb > s->node_cap) {
        if (!GROW(s->sym, nb) || !GROW(s->prev, nb) || !GROW(s->next, nb) ||
            !GROW(s->touched, nb) || !GROW(s->heap, 3 * nb))
            goto nomem;
        s->node_cap = nb;
    }
    for (size_t i = 0; i < nb; i++)
        s->sym[i] = i + 1 < nb ? t->byte_sym[s->bytes[i]] : t->byte_sym_end[s->bytes[i]];
    bpe_merge(t, s, (int32_t)nb);
    for (int32_t i = 0; i >= 0; i = s->next[i]) {
        cs_status st = emit(t, t->sym_token[s->sym[i]], out, msg, n);
        if (st != CS_OK) return st;
    }
    return CS_OK;
nomem:
    return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
}

/* ---- BasicTokenizer + CLIP's regex ---------------------------------------------- */

/* A literal of CLIP's pattern at w[i]: the pattern is case-insensitive, and in lowercased
 * text the only other character a pattern letter then matches is U+017F (long s), whose
 * simple case folding is 's'. */
static bool literal_at(const uint32_t *w, size_t m, size_t i, const char *lit) {
    for (size_t k = 0; lit[k]; k++) {
        if (i + k >= m) return false;
        uint32_t c = w[i + k];
        if (c != (unsigned char)lit[k] && !(lit[k] == 's' && c == 0x17F)) return false;
    }
    return true;
}

/* The one character no alternative of the IGNORECASE pattern matches: U+0345 is not a
 * letter, so [\p{L}]+ (matched by the plain property) skips it, but its uppercase U+0399
 * is, so the regex module's case-insensitive [^\s\p{L}\p{N}] rejects it too and findall
 * drops it. gen_unicode_tables.py checks that no other character is in this position. */
#define REGEX_DROPPED 0x345

/* Length of the match of CLIP's pattern
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * at w[i] (alternatives tried in order, as the regex engine does); 0 when none matches. */
static size_t match_at(const uint32_t *w, size_t m, size_t i) {
    static const char *const k_literals[] = {
        "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t k = 0; k < sizeof k_literals / sizeof k_literals[0]; k++)
        if (literal_at(w, m, i, k_literals[k])) return strlen(k_literals[k]);
    size_t j = i;
    if (uni_is_letter(w[i])) {
        while (j < m && uni_is_letter(w[j]))
            j++;
        return j - i;
    }
    if (uni_is_number(w[i])) return 1;
    while (j < m && w[j] != REGEX_DROPPED && !uni_is_space(w[j]) && !uni_is_letter(w[j]) &&
           !uni_is_number(w[j]))
        j++;
    return j - i;
}

/* BasicTokenizer.tokenize (strip_accents=False, no punctuation split, nothing in
 * never_split), then CLIP's regex and BPE on each word, for one piece of text between
 * added tokens. */
static cs_status encode_text(const cs_tokenizer *t, scratch *s, const uint32_t *in, size_t n,
                             idvec *out, char *msg, size_t msg_size) {
    /* Capacities: CJK spacing triples at most, NFC and lower() grow by fixed factors. */
    if (3 * n > s->clean_cap) {
        if (!GROW(s->clean, 3 * n)) goto nomem;
        s->clean_cap = 3 * n;
    }
    /* _clean_text and _tokenize_chinese_chars. */
    size_t n1 = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c == 0 || c == 0xFFFD || uni_is_control(c)) continue;
        if (uni_is_ws(c)) {
            s->clean[n1++] = ' ';
        } else if (uni_is_cjk(c)) {
            s->clean[n1++] = ' ';
            s->clean[n1++] = c;
            s->clean[n1++] = ' ';
        } else {
            s->clean[n1++] = c;
        }
    }
    size_t n2;
    if (UNI_NFC_MAX_EXPANSION * n1 > s->nfc_cap) {
        if (!GROW(s->nfc, UNI_NFC_MAX_EXPANSION * n1)) goto nomem;
        s->nfc_cap = UNI_NFC_MAX_EXPANSION * n1;
    }
    if (uni_nfc(s->clean, n1, s->nfc, &n2) != CS_OK) goto nomem;
    /* whitespace_tokenize (str.split()), each word lowercased; CLIP's regex cannot match
     * across the single spaces the words are then joined with, so it runs per word. */
    for (size_t i = 0; i < n2;) {
        while (i < n2 && uni_is_space(s->nfc[i]))
            i++;
        size_t j = i;
        while (j < n2 && !uni_is_space(s->nfc[j]))
            j++;
        if (UNI_LOWER_MAX_EXPANSION * (j - i) > s->lower_cap) {
            if (!GROW(s->lower, UNI_LOWER_MAX_EXPANSION * (j - i))) goto nomem;
            s->lower_cap = UNI_LOWER_MAX_EXPANSION * (j - i);
        }
        size_t m = uni_lower(s->nfc + i, j - i, s->lower);
        for (size_t k = 0; k < m;) {
            size_t len = match_at(s->lower, m, k);
            if (len == 0) {
                k++;
                continue;
            }
            cs_status st = encode_piece(t, s, s->lower + k, len, out, msg, msg_size);
            if (st != CS_OK) return st;
            k += len;
        }
        i = j;
    }
    return CS_OK;
nomem:
    return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
}

/* ---- added tokens and the public calls ------------------------------------------- */

typedef struct chunk {
    size_t b, e;   /* code point range */
    int64_t added; /* index into t->added, or -1 for text */
} chunk;

/* The longest added token starting at cps[pos], or -1. transformers' Trie finds the
 * leftmost-longest match the same way for any set of tokens where no token contains
 * another's beginning in its middle (true for CLIP's). */
static int64_t added_at(const cs_tokenizer *t, const uint32_t *cps, size_t n, size_t pos) {
    int64_t best = -1;
    for (size_t k = 0; k < t->n_added; k++) {
        const tok_added *a = &t->added[k];
        if (a->n <= n - pos && a->cps[0] == cps[pos] &&
            memcmp(a->cps, cps + pos, a->n * sizeof *cps) == 0 &&
            (best < 0 || a->n > t->added[best].n))
            best = (int64_t)k;
    }
    return best;
}

static cs_status push_chunk(chunk **v, size_t *n, size_t *cap, chunk c) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        if (!GROW(*v, nc)) return CS_ERR_NOMEM;
        *cap = nc;
    }
    (*v)[(*n)++] = c;
    return CS_OK;
}

/* PreTrainedTokenizer.tokenize: split on added tokens (Trie.split), let tokens with
 * lstrip/rstrip eat their neighbours' whitespace, encode the remaining text pieces. */
static cs_status encode_body(const cs_tokenizer *t, const uint32_t *cps, size_t n, idvec *out,
                             char *msg, size_t msg_size) {
    chunk *ch = NULL;
    size_t nch = 0, cap = 0, start = 0;
    cs_status st = CS_OK;
    for (size_t pos = 0; pos < n && st == CS_OK;) {
        int64_t k = added_at(t, cps, n, pos);
        if (k < 0) {
            pos++;
            continue;
        }
        if (pos > start) st = push_chunk(&ch, &nch, &cap, (chunk){start, pos, -1});
        if (st == CS_OK) st = push_chunk(&ch, &nch, &cap, (chunk){pos, pos + t->added[k].n, k});
        pos += t->added[k].n;
        start = pos;
    }
    if (st == CS_OK && start < n) st = push_chunk(&ch, &nch, &cap, (chunk){start, n, -1});
    if (st != CS_OK) {
        free(ch);
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    }
    for (size_t i = 0; i < nch; i++) {
        if (ch[i].added < 0) continue;
        const tok_added *a = &t->added[ch[i].added];
        if (a->rstrip && i + 1 < nch && ch[i + 1].e > ch[i + 1].b) {
            chunk *r = &ch[i + 1];
            size_t b0 = r->b;
            while (r->b < r->e && uni_is_space(cps[r->b]))
                r->b++;
            if (r->b != b0) r->added = -1; /* a changed token is no longer that token */
        }
        if (a->lstrip && i > 0 && ch[i - 1].e > ch[i - 1].b) {
            chunk *l = &ch[i - 1];
            size_t e0 = l->e;
            while (l->e > l->b && uni_is_space(cps[l->e - 1]))
                l->e--;
            if (l->e != e0) l->added = -1;
        }
    }
    scratch s = {0};
    for (size_t i = 0; i < nch && st == CS_OK; i++) {
        if (ch[i].e == ch[i].b) continue;
        if (ch[i].added >= 0)
            st = emit(t, t->added[ch[i].added].id, out, msg, msg_size);
        else
            st = encode_text(t, &s, cps + ch[i].b, ch[i].e - ch[i].b, out, msg, msg_size);
    }
    scratch_free(&s);
    free(ch);
    return st;
}

/* BOS, the text's tokens, EOS into *out (which the caller frees, also on failure). */
static cs_status encode_all(const cs_tokenizer *t, const char *text, size_t len, idvec *out,
                            char *msg, size_t msg_size) {
    if (len > TOKENIZER_MAX_TEXT_BYTES)
        return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size,
                       "text of %zu bytes exceeds the "
                       "tokenizer's limit of %d bytes",
                       len, TOKENIZER_MAX_TEXT_BYTES);
    uint32_t *cps = cs_malloc(len * sizeof *cps);
    if (!cps) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    size_t n = 0;
    cs_status st = uni_decode_utf8(text, len, cps, &n, msg, msg_size);
    if (st == CS_OK) st = emit(t, t->bos_id, out, msg, msg_size);
    if (st == CS_OK) st = encode_body(t, cps, n, out, msg, msg_size);
    if (st == CS_OK) st = emit(t, t->eos_id, out, msg, msg_size);
    free(cps);
    return st;
}

cs_status tokenizer_encode_full(const cs_tokenizer *t, const char *text, size_t len, int64_t **ids,
                                int64_t *count, char *msg, size_t msg_size) {
    idvec v = {0};
    *ids = NULL;
    *count = 0;
    cs_status st = encode_all(t, text, len, &v, msg, msg_size);
    if (st != CS_OK) {
        free(v.v);
        return st;
    }
    *ids = v.v;
    *count = (int64_t)v.n;
    return CS_OK;
}

cs_status tokenizer_encode(const cs_tokenizer *t, const char *text, size_t len, int64_t *ids,
                           int max_len, int *n_unpadded, char *msg, size_t msg_size) {
    if (max_len < 2)
        return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "max_len %d is below 2", max_len);
    idvec v = {0};
    cs_status st = encode_all(t, text, len, &v, msg, msg_size);
    if (st == CS_OK) {
        /* truncation=True keeps BOS, the first max_len - 2 tokens and EOS. */
        size_t keep = v.n <= (size_t)max_len ? v.n : (size_t)max_len;
        memcpy(ids, v.v, keep * sizeof *ids);
        if (keep < v.n) ids[keep - 1] = t->eos_id;
        for (size_t i = keep; i < (size_t)max_len; i++)
            ids[i] = t->pad_id;
        *n_unpadded = (int)keep;
    }
    free(v.v);
    return st;
}

int tokenizer_max_length(const cs_tokenizer *t) {
    return t->max_length;
}
int64_t tokenizer_bos_id(const cs_tokenizer *t) {
    return t->bos_id;
}
int64_t tokenizer_eos_id(const cs_tokenizer *t) {
    return t->eos_id;
}
int64_t tokenizer_pad_id(const cs_tokenizer *t) {
    return t->pad_id;
}
int64_t tokenizer_vocab_size(const cs_tokenizer *t) {
    return t->vocab_size;
}
