/*
 * Reading tokenizer_config.json and special_tokens_map.json: the special tokens, the
 * added_tokens_decoder table and model_max_length, with transformers 4.37's precedence
 * (special_tokens_map.json counts only for configs without added_tokens_decoder, and then
 * overrides them; CLIPTokenizer's defaults fill the rest). Part of tokenizer loading;
 * single-threaded.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "config.h"
#include "json_strict.h"
#include "tokenizer_internal.h"

enum {
    MAX_JSON_BYTES = 64 << 20, /* vocab.json of a 49408-token CLIP vocabulary: ~1 MB */
    MAX_ADDED = 4096,          /* added + special tokens */
    MAX_ADDED_BYTES = 256,     /* one added token's content */
};

const char *const tok_special_keys[SP_COUNT] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                "pad_token", "cls_token", "mask_token"};

void tok_config_deinit(tok_config *c) {
    for (int i = 0; i < SP_COUNT; i++)
        free(c->special[i].content);
    for (size_t i = 0; i < c->n_extra; i++)
        free(c->extra[i].content);
    for (size_t i = 0; i < c->n_decoder; i++)
        free(c->decoder[i].content);
    free(c->extra);
    free(c->decoder);
}

/* True when JSON text holds a \u0000 escape: cJSON cuts strings at NUL, so a key or token
 * containing one would be silently read as a different string. */
static bool has_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return true;
        i++; /* skip the escaped character (so "\\" never starts another escape) */
    }
    return false;
}

/* Reads and strictly parses dir/name. A missing optional file gives CS_OK and NULL. */
cs_status tok_read_json(const char *dir, const char *name, bool required, cJSON **out, char *msg,
                        size_t n) {
    *out = NULL;
    char path[4096], *text = NULL, why[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!required) {
        FILE *fp = fopen(path, "rb");
        if (!fp) return CS_OK;
        fclose(fp);
    }
    size_t len;
    cs_status st = cs_read_file(path, MAX_JSON_BYTES, &text, &len, msg, n);
    if (st != CS_OK) return st;
    if (has_nul_escape(text, len)) {
        free(text);
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: \\u0000 escapes are not supported", path);
    }
    cJSON *root = json_parse_strict(text, len, why, sizeof why);
    free(text);
    if (!root) return cs_errf(CS_ERR_FORMAT, msg, n, "%s: %s", path, why);
    const char *dup = NULL;
    if (!cJSON_IsObject(root)) {
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: expected a JSON object", path);
    } else if ((st = json_unique_keys(root, &dup)) != CS_OK) {
        st = cs_errf(st, msg, n, "%s: key \"%s\" appears twice", path, dup ? dup : "?");
    }
    if (st != CS_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return CS_OK;
}

static cs_status opt_bool(const cJSON *obj, const char *key, bool *out, const char *file,
                          const char *what, char *msg, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return CS_OK;
    if (!cJSON_IsBool(v))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: %s.%s must be true or false", file, what, key);
    *out = cJSON_IsTrue(v);
    return CS_OK;
}

/* Parses a token given as "text", null, or {"content": "text", "lstrip": ..., ...}. */
static cs_status parse_token(const cJSON *v, tok_spec *sp, const char *file, const char *what,
                             char *msg, size_t n) {
    free(sp->content);
    sp->content = NULL;
    sp->lstrip = sp->rstrip = false;
    sp->is_null = cJSON_IsNull(v);
    if (sp->is_null) return CS_OK;
    const cJSON *content = v;
    if (cJSON_IsObject(v)) {
        content = cJSON_GetObjectItemCaseSensitive(v, "content");
        bool single_word = false, dummy;
        cs_status st;
        if ((st = opt_bool(v, "lstrip", &sp->lstrip, file, what, msg, n)) != CS_OK ||
            (st = opt_bool(v, "rstrip", &sp->rstrip, file, what, msg, n)) != CS_OK ||
            (st = opt_bool(v, "single_word", &single_word, file, what, msg, n)) != CS_OK ||
            (st = opt_bool(v, "normalized", &dummy, file, what, msg, n)) != CS_OK ||
            (st = opt_bool(v, "special", &dummy, file, what, msg, n)) != CS_OK)
            return st;
        if (single_word)
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "%s: %s has single_word=true, which is not supported", file, what);
    }
    if (!cJSON_IsString(content))
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: %s must be a string or an object with a "
                       "string \"content\"",
                       file, what);
    size_t len = strlen(content->valuestring);
    if (len == 0 || len > MAX_ADDED_BYTES)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: %s must have 1 to %d bytes", file, what,
                       MAX_ADDED_BYTES);
    sp->content = strdup(content->valuestring);
    return sp->content ? CS_OK : cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
}

/* Reads the special-token keys of one file's root object into c. */
static cs_status parse_specials(const cJSON *root, tok_config *c, const char *file, char *msg,
                                size_t n) {
    cs_status st;
    for (int i = 0; i < SP_COUNT; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, tok_special_keys[i]);
        if (v && (st = parse_token(v, &c->special[i], file, tok_special_keys[i], msg, n)) != CS_OK)
            return st;
    }
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "additional_special_tokens");
    if (!extra) return CS_OK;
    if (!cJSON_IsArray(extra) || cJSON_GetArraySize(extra) > MAX_ADDED)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: additional_special_tokens must be an array "
                       "of at most %d tokens",
                       file, MAX_ADDED);
    for (size_t i = 0; i < c->n_extra; i++)
        free(c->extra[i].content);
    free(c->extra);
    c->n_extra = 0;
    c->extra = cs_calloc((size_t)cJSON_GetArraySize(extra), sizeof *c->extra);
    if (!c->extra) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, extra) {
        tok_spec *sp = &c->extra[c->n_extra++];
        if ((st = parse_token(e, sp, file, "an additional_special_tokens entry", msg, n)) != CS_OK)
            return st;
    }
    return CS_OK;
}

static cs_status parse_decoder(const cJSON *dec, tok_config *c, const char *file, char *msg,
                               size_t n) {
    if (!cJSON_IsObject(dec) || cJSON_GetArraySize(dec) > MAX_ADDED)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: added_tokens_decoder must be an object of at "
                       "most %d entries",
                       file, MAX_ADDED);
    const char *dup = NULL;
    if (json_unique_keys(dec, &dup) != CS_OK)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: added_tokens_decoder lists id \"%.20s\" twice",
                       file, dup ? dup : "?");
    c->has_decoder = true;
    c->decoder = cs_calloc((size_t)cJSON_GetArraySize(dec), sizeof *c->decoder);
    if (!c->decoder) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, dec) {
        const char *key = e->string;
        char *end = NULL;
        long long id = strtoll(key, &end, 10);
        char what[64];
        snprintf(what, sizeof what, "added_tokens_decoder[\"%.20s\"]", key);
        if (!*key || *end || key[0] == '-' || key[0] == '+' || id < 0 || id >= TOK_MAX_ID)
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: %s: the key must be an id in [0, %d)", file,
                           what, TOK_MAX_ID);
        if (!cJSON_IsObject(e))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: %s must be an object", file, what);
        tok_spec *sp = &c->decoder[c->n_decoder++];
        sp->id = id;
        cs_status st = parse_token(e, sp, file, what, msg, n);
        if (st != CS_OK) return st;
    }
    return CS_OK;
}

cs_status tok_config_load(const char *dir, tok_config *c, char *msg, size_t n) {
    cJSON *cfg = NULL, *map = NULL;
    cs_status st = tok_read_json(dir, "tokenizer_config.json", true, &cfg, msg, n);
    if (st != CS_OK) return st;
    const char *file = "tokenizer_config.json";
    c->max_length = 77;
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    if (cls && !(cJSON_IsString(cls) && (strcmp(cls->valuestring, "CLIPTokenizer") == 0 ||
                                         strcmp(cls->valuestring, "CLIPTokenizerFast") == 0))) {
        st = cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                     "%s/%s: tokenizer_class %s is not supported "
                     "(only CLIPTokenizer)",
                     dir, file, cJSON_IsString(cls) ? cls->valuestring : "(not a string)");
    } else if (ml && !cJSON_IsNull(ml)) {
        double v = cJSON_IsNumber(ml) ? ml->valuedouble : -1;
        /* Values above 2^20 are transformers' "no limit" sentinel (1e30): keep CLIP's 77. */
        if (v < 2 || (v <= 1 << 20 && v != (double)(int)v))
            st = cs_errf(CS_ERR_FORMAT, msg, n, "%s/%s: model_max_length must be an integer >= 2",
                         dir, file);
        else if (v <= 1 << 20)
            c->max_length = (int)v;
    }
    if (st == CS_OK) st = parse_specials(cfg, c, file, msg, n);
    if (st == CS_OK && dec) st = parse_decoder(dec, c, file, msg, n);
    /* Like transformers, special_tokens_map.json only counts for configs written before
     * added_tokens_decoder existed; then its entries override the config's. */
    if (st == CS_OK && !c->has_decoder)
        st = tok_read_json(dir, "special_tokens_map.json", false, &map, msg, n);
    if (st == CS_OK && map) st = parse_specials(map, c, "special_tokens_map.json", msg, n);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    /* CLIPTokenizer's defaults for whatever the files leave unset (an explicit null stays
     * null: CLIPTokenizer.__init__ receives None). */
    static const char *const k_defaults[SP_COUNT] = {[SP_BOS] = "<|startoftext|>",
                                                     [SP_EOS] = "<|endoftext|>",
                                                     [SP_UNK] = "<|endoftext|>",
                                                     [SP_PAD] = "<|endoftext|>"};
    for (int k = 0; st == CS_OK && k < SP_COUNT; k++) {
        if (c->special[k].content || c->special[k].is_null || !k_defaults[k]) continue;
        c->special[k].content = strdup(k_defaults[k]);
        if (!c->special[k].content) st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    }
    return st;
}
