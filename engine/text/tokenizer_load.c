/*
 * Loading a CLIP tokenizer folder into an immutable cs_tokenizer: vocab.json, merges.txt
 * (interned into BPE symbols and ranked pairs), then the added tokens and special ids from
 * the configs (tokenizer_config.c). Every file is validated: they come from whoever
 * supplied the model. Mirrors how transformers 4.37 builds a slow CLIPTokenizer: which
 * tokens become "added" tokens and which ids they get. Called from one thread; the result
 * is shareable.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "config.h"
#include "tokenizer_internal.h"
#include "unicode.h"

enum {
    MAX_MERGES_BYTES = 64 << 20, /* merges.txt: ~0.5 MB */
    MAX_TOKEN_BYTES = 1024,      /* one vocabulary entry or merge symbol */
};

static cs_status load_vocab(cs_tokenizer *t, const char *dir, char *msg, size_t n) {
    cJSON *root = NULL;
    cs_status st = tok_read_json(dir, "vocab.json", true, &root, msg, n);
    if (st != CS_OK) return st;
    uint8_t *seen = cs_calloc(TOK_MAX_ID / 8, 1); /* ids must be unique */
    st = seen ? strmap_init(&t->vocab, (size_t)cJSON_GetArraySize(root)) : CS_ERR_NOMEM;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (st != CS_OK) break;
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        size_t len = strlen(e->string);
        if (v < 0 || v >= TOK_MAX_ID || v != (double)(int64_t)v) {
            st = cs_errf(CS_ERR_FORMAT, msg, n,
                         "%s/vocab.json: \"%.64s\": the id must be an "
                         "integer in [0, %d)",
                         dir, e->string, TOK_MAX_ID);
        } else if (len > MAX_TOKEN_BYTES) {
            st = cs_errf(CS_ERR_FORMAT, msg, n, "%s/vocab.json: a key is longer than %d bytes", dir,
                         MAX_TOKEN_BYTES);
        } else {
            int64_t id = (int64_t)v;
            if (seen[id / 8] & (1u << (id % 8)))
                st = cs_errf(CS_ERR_FORMAT, msg, n,
                             "%s/vocab.json: id %lld is used twice (again "
                             "by \"%.64s\")",
                             dir, (long long)id, e->string);
            seen[id / 8] |= (uint8_t)(1u << (id % 8));
            bool ins;
            if (st == CS_OK) st = strmap_insert(&t->vocab, e->string, len, id, &ins, NULL);
            if (id >= t->vocab_size) t->vocab_size = id + 1;
        }
    }
    if (st == CS_OK && t->vocab.count == 0)
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s/vocab.json: the vocabulary is empty", dir);
    if (st == CS_ERR_NOMEM) cs_errf(st, msg, n, "%s/vocab.json: out of memory", dir);
    free(seen);
    cJSON_Delete(root);
    return st;
}

static cs_status intern(cs_tokenizer *t, const char *s, size_t len, int32_t *sym) {
    bool ins;
    int64_t old;
    cs_status st = strmap_insert(&t->symbols, s, len, t->n_symbols, &ins, &old);
    if (st != CS_OK) return st;
    *sym = ins ? t->n_symbols++ : (int32_t)old;
    return CS_OK;
}

/* GPT-2/CLIP bytes_to_unicode: printable bytes stand for themselves, the others for
 * U+0100 onwards in byte order. */
static cs_status intern_bytes(cs_tokenizer *t) {
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        unsigned char s[8];
        size_t len = uni_encode_utf8(keep ? (uint32_t)b : 256u + (uint32_t)extra++, s);
        cs_status st = intern(t, (const char *)s, len, &t->byte_sym[b]);
        if (st != CS_OK) return st;
        memcpy(s + len, "</w>", 4);
        if ((st = intern(t, (const char *)s, len + 4, &t->byte_sym_end[b])) != CS_OK) return st;
    }
    return CS_OK;
}

/* A merge symbol: valid UTF-8 without whitespace or control characters. */
static bool valid_symbol(const char *s, size_t len) {
    uint32_t cps[MAX_TOKEN_BYTES];
    size_t n;
    if (len == 0 || len > MAX_TOKEN_BYTES || uni_decode_utf8(s, len, cps, &n, NULL, 0) != CS_OK)
        return false;
    for (size_t i = 0; i < n; i++)
        if (uni_is_space(cps[i]) || uni_is_control(cps[i])) return false;
    return true;
}

static cs_status parse_merge(cs_tokenizer *t, const char *p, size_t len, const char *path,
                             size_t line, char *msg, size_t n) {
    const char *sp = memchr(p, ' ', len);
    size_t la = sp ? (size_t)(sp - p) : 0, lb = sp ? len - la - 1 : 0;
    if (!sp || !valid_symbol(p, la) || !valid_symbol(sp + 1, lb))
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s:%zu: expected two symbols separated by one "
                       "space (UTF-8, no whitespace, at most %d bytes each)",
                       path, line, MAX_TOKEN_BYTES);
    char joined[2 * MAX_TOKEN_BYTES];
    memcpy(joined, p, la);
    memcpy(joined + la, sp + 1, lb);
    int32_t key[2], result;
    cs_status st;
    if ((st = intern(t, p, la, &key[0])) != CS_OK ||
        (st = intern(t, sp + 1, lb, &key[1])) != CS_OK ||
        (st = intern(t, joined, la + lb, &result)) != CS_OK)
        return cs_errf(st, msg, n, "%s: out of memory", path);
    bool ins;
    int64_t first;
    if ((st = strmap_insert(&t->pairs, key, sizeof key, t->n_merges, &ins, &first)) != CS_OK)
        return cs_errf(st, msg, n, "%s: out of memory", path);
    if (!ins)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s:%zu: duplicate merge (the same as merge %lld)",
                       path, line, (long long)first + 1);
    t->merge_result[t->n_merges++] = result;
    return CS_OK;
}

static cs_status load_merges(cs_tokenizer *t, const char *dir, char *msg, size_t n) {
    char path[4096], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    cs_status st = cs_read_file(path, MAX_MERGES_BYTES, &text, &len, msg, n);
    if (st != CS_OK) return st;
    t->merge_result = cs_malloc(TOK_MAX_MERGES * sizeof *t->merge_result);
    if (!t->merge_result || strmap_init(&t->symbols, TOK_MAX_MERGES + 512) != CS_OK ||
        strmap_init(&t->pairs, TOK_MAX_MERGES) != CS_OK || intern_bytes(t) != CS_OK) {
        free(text);
        return cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", path);
    }
    size_t line = 0, ignored = 0;
    for (const char *p = text, *end = text + len; st == CS_OK && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r') le--;
        line++;
        size_t ll = (size_t)(le - p);
        if (line == 1 && ll >= 8 && memcmp(p, "#version", 8) == 0) {
            /* the header line */
        } else if (ll == 0) {
            /* Blank lines may only end the file (transformers strips them there). */
            for (const char *q = p; q < end && st == CS_OK; q++)
                if (*q != '\n' && *q != '\r')
                    st = cs_errf(CS_ERR_FORMAT, msg, n, "%s:%zu: empty line", path, line);
            break;
        } else if (t->n_merges == TOK_MAX_MERGES) {
            ignored++; /* transformers' CLIPTokenizer reads only the first TOK_MAX_MERGES */
        } else {
            st = parse_merge(t, p, ll, path, line, msg, n);
        }
        p = next;
    }
    free(text);
    if (ignored)
        cs_log(CS_LOG_WARN, "%s: %zu merges beyond the first %d ignored, as CLIPTokenizer does",
               path, ignored, TOK_MAX_MERGES);
    return st;
}

/* Id of a token string the way convert_tokens_to_ids sees it: added tokens first, then
 * vocab.json; -1 when neither has it. */
static int64_t token_id(const cs_tokenizer *t, const char *s, size_t len) {
    int64_t v;
    if (strmap_get(&t->added_index, s, len, &v)) return t->added[v].id;
    return strmap_get(&t->vocab, s, len, &v) ? v : -1;
}

static cs_status add_token(cs_tokenizer *t, const tok_spec *sp, int64_t id, char *msg, size_t n) {
    tok_added *a = &t->added[t->n_added];
    size_t len = strlen(sp->content);
    a->cps = cs_malloc(len * sizeof *a->cps);
    if (!a->cps) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    t->n_added++; /* from here on tokenizer_free owns a->cps */
    cs_status st = uni_decode_utf8(sp->content, len, a->cps, &a->n, msg, n);
    if (st != CS_OK) return st;
    a->id = id;
    a->lstrip = sp->lstrip;
    a->rstrip = sp->rstrip;
    bool ins;
    st = strmap_insert(&t->added_index, sp->content, len, (int64_t)(t->n_added - 1), &ins, NULL);
    if (st != CS_OK) return cs_errf(st, msg, n, "out of memory");
    if (id >= t->vocab_size) t->vocab_size = id + 1;
    return CS_OK;
}

/* The added tokens: added_tokens_decoder's, then each special token not among them (with
 * its vocab.json id, or a new id past the vocabulary), as PreTrainedTokenizer.__init__. */
static cs_status build_added(cs_tokenizer *t, const tok_config *c, const char *dir, char *msg,
                             size_t n) {
    size_t total = c->n_decoder + SP_COUNT + c->n_extra;
    t->added = cs_calloc(total, sizeof *t->added);
    cs_status st = t->added ? strmap_init(&t->added_index, total) : CS_ERR_NOMEM;
    if (st != CS_OK) return cs_errf(st, msg, n, "out of memory");
    int64_t next_id = (int64_t)t->vocab.count; /* len(get_vocab()) */
    for (size_t i = 0; i < c->n_decoder; i++) {
        const tok_spec *sp = &c->decoder[i];
        if (strmap_get(&t->added_index, sp->content, strlen(sp->content), NULL))
            return cs_errf(CS_ERR_FORMAT, msg, n,
                           "%s/tokenizer_config.json: added token \"%s\" "
                           "is listed twice",
                           dir, sp->content);
        if (!strmap_get(&t->vocab, sp->content, strlen(sp->content), NULL)) next_id++;
        if ((st = add_token(t, sp, sp->id, msg, n)) != CS_OK) return st;
    }
    for (size_t i = 0; i < SP_COUNT + c->n_extra; i++) {
        const tok_spec *sp = i < SP_COUNT ? &c->special[i] : &c->extra[i - SP_COUNT];
        if (!sp->content) continue;
        size_t len = strlen(sp->content);
        if (strmap_get(&t->added_index, sp->content, len, NULL)) continue;
        int64_t id;
        if (!strmap_get(&t->vocab, sp->content, len, &id)) id = next_id++;
        if ((st = add_token(t, sp, id, msg, n)) != CS_OK) return st;
    }
    return CS_OK;
}

static cs_status finish(cs_tokenizer *t, const tok_config *c, const char *dir, char *msg,
                        size_t n) {
    t->sym_token = cs_malloc((size_t)t->n_symbols * sizeof *t->sym_token);
    if (!t->sym_token) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    for (size_t i = 0; i < t->symbols.cap; i++) {
        const strmap_slot *s = &t->symbols.slots[i];
        if (strmap_slot_used(s))
            t->sym_token[s->value] = token_id(t, t->symbols.pool + s->key_off, s->key_len);
    }
    const tok_spec *sp = c->special;
    static const int k_required[] = {SP_BOS, SP_EOS, SP_PAD};
    for (size_t i = 0; i < sizeof k_required / sizeof k_required[0]; i++)
        if (!sp[k_required[i]].content)
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: the tokenizer's %s is null", dir,
                           tok_special_keys[k_required[i]]);
    t->bos_id = token_id(t, sp[SP_BOS].content, strlen(sp[SP_BOS].content));
    t->eos_id = token_id(t, sp[SP_EOS].content, strlen(sp[SP_EOS].content));
    t->pad_id = token_id(t, sp[SP_PAD].content, strlen(sp[SP_PAD].content));
    /* _convert_token_to_id falls back to vocab.json's id of unk_token only. */
    t->unk_id = -1;
    if (sp[SP_UNK].content)
        strmap_get(&t->vocab, sp[SP_UNK].content, strlen(sp[SP_UNK].content), &t->unk_id);
    t->sot_literal_id = token_id(t, "<|startoftext|>", 15);
    t->eot_literal_id = token_id(t, "<|endoftext|>", 13);
    t->max_length = c->max_length;
    return CS_OK;
}

cs_status tokenizer_load(const char *dir, cs_tokenizer **out, char *msg, size_t n) {
    *out = NULL;
    tok_config c = {0};
    cs_tokenizer *t = cs_calloc(1, sizeof *t);
    if (!t) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    cs_status st = tok_config_load(dir, &c, msg, n);
    if (st == CS_OK) st = load_vocab(t, dir, msg, n);
    if (st == CS_OK) st = load_merges(t, dir, msg, n);
    if (st == CS_OK) st = build_added(t, &c, dir, msg, n);
    if (st == CS_OK) st = finish(t, &c, dir, msg, n);
    tok_config_deinit(&c);
    if (st != CS_OK) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return CS_OK;
}

void tokenizer_free(cs_tokenizer *t) {
    if (!t) return;
    strmap_deinit(&t->vocab);
    strmap_deinit(&t->added_index);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].cps);
    free(t->added);
    strmap_deinit(&t->symbols);
    free(t->sym_token);
    strmap_deinit(&t->pairs);
    free(t->merge_result);
    free(t);
}
