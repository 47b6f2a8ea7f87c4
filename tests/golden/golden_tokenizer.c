/*
 * Golden handler for kind "tokenizer": loads the CLIP tokenizer from the case folder
 * itself (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json) and
 * encodes every prompt of prompts.json, comparing
 *   input_ids     tokenizer(prompt, padding="max_length", max_length=77, truncation=True)
 *   ids_unpadded  tokenizer(prompt).input_ids
 * exactly. The first mismatching prompt of each is printed with both id lists.
 *
 * Prompts are decoded from the raw JSON text rather than taken from cJSON, because cJSON
 * stores strings NUL-terminated and one prompt contains U+0000.
 */
#include "golden.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "config.h"
#include "tokenizer.h"
#include "unicode.h"

enum { PAD_LEN = 77 };

typedef struct raw_str {
    char *s;
    size_t len;
} raw_str;

static int hex4(const char *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Decodes the JSON string literal starting at p (just after its opening quote) into UTF-8;
 * *end receives the position after the closing quote. */
static cs_status decode_json_string(const char *p, const char *lim, raw_str *out,
                                    const char **end) {
    char *buf = cs_malloc((size_t)(lim - p) + 1);
    if (!buf) return CS_ERR_NOMEM;
    size_t n = 0;
    while (p < lim && *p != '"') {
        if (*p != '\\') {
            buf[n++] = *p++;
            continue;
        }
        if (lim - p < 2) break;
        char e = p[1];
        p += 2;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            buf[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u' || lim - p < 4 || hex4(p, &cp)) break;
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
            if (lim - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xDC00 ||
                lo > 0xDFFF)
                break;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
            break;
        }
        n += uni_encode_utf8(cp, (unsigned char *)buf + n);
    }
    if (p >= lim || *p != '"') {
        free(buf);
        return CS_ERR_FORMAT;
    }
    buf[n] = '\0';
    out->s = buf;
    out->len = n;
    *end = p + 1;
    return CS_OK;
}

/* Every "prompt" value of the raw prompts.json text, in order. In JSON text a quote inside
 * a string is always escaped, so "prompt" followed by ':' can only be that key. */
static cs_status raw_prompts(const char *text, size_t len, raw_str *out, int count, int *found) {
    const char *p = text, *lim = text + len;
    *found = 0;
    while ((p = strstr(p, "\"prompt\"")) != NULL) {
        p += 8;
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        if (*p != ':') continue;
        p++;
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        if (*p != '"' || *found >= count) return CS_ERR_FORMAT;
        cs_status st = decode_json_string(p + 1, lim, &out[*found], &p);
        if (st != CS_OK) return st;
        (*found)++;
    }
    return CS_OK;
}

static bool ids_equal(const cJSON *want, const int64_t *got, int64_t n) {
    if (!cJSON_IsArray(want) || cJSON_GetArraySize(want) != n) return false;
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, want) {
        if (!cJSON_IsNumber(e) || (int64_t)e->valuedouble != got[i++]) return false;
    }
    return true;
}

static void print_mismatch(const char *what, int idx, const raw_str *prompt, const cJSON *want,
                           const int64_t *got, int64_t n) {
    printf("  first %s mismatch: prompt %d \"", what, idx);
    for (size_t i = 0; i < prompt->len && i < 200; i++) {
        unsigned char c = (unsigned char)prompt->s[i];
        if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf("\"\n    got : [");
    for (int64_t i = 0; i < n; i++)
        printf("%s%lld", i ? ", " : "", (long long)got[i]);
    printf("]\n    want: [");
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, want) printf("%s%lld", i++ ? ", " : "", (long long)e->valuedouble);
    printf("]\n");
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    cs_tokenizer *tok = NULL;
    char path[4096], *text = NULL;
    size_t len;
    cJSON *root = NULL;
    raw_str *prompts = NULL;
    int count = 0, found = 0;
    cs_status st = tokenizer_load(gc->dir, &tok, msg, n);
    if (st != CS_OK) return st;
    golden_path(path, sizeof path, gc->dir, "prompts.json");
    st = cs_read_file(path, 64u << 20, &text, &len, msg, n);
    if (st != CS_OK) goto done;
    root = cJSON_ParseWithLength(text, len);
    count = cJSON_GetArraySize(root);
    if (!cJSON_IsArray(root) || count == 0) {
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: expected a non-empty JSON array", path);
        goto done;
    }
    prompts = cs_calloc((size_t)count, sizeof *prompts);
    if (!prompts) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        goto done;
    }
    if (raw_prompts(text, len, prompts, count, &found) != CS_OK || found != count) {
        st = cs_errf(CS_ERR_FORMAT, msg, n,
                     "%s: could not decode the \"prompt\" strings "
                     "(%d of %d)",
                     path, found, count);
        goto done;
    }
    int bad_padded = 0, bad_full = 0, idx = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const raw_str *pr = &prompts[idx];
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(item, "prompt");
        const cJSON *want_pad = cJSON_GetObjectItemCaseSensitive(item, "input_ids");
        const cJSON *want_full = cJSON_GetObjectItemCaseSensitive(item, "ids_unpadded");
        /* cJSON's copy ends at the first NUL; everything before must agree. */
        if (!cJSON_IsString(prompt) || strncmp(prompt->valuestring, pr->s, pr->len) != 0) {
            st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: prompt %d decoded inconsistently", path, idx);
            goto done;
        }
        int64_t ids[PAD_LEN], *full = NULL, nfull = 0;
        int nun = 0;
        char why[256] = "";
        cs_status s1 = tokenizer_encode(tok, pr->s, pr->len, ids, PAD_LEN, &nun, why, sizeof why);
        if (s1 != CS_OK) printf("  prompt %d: encode failed: %s\n", idx, why);
        if (s1 != CS_OK || !ids_equal(want_pad, ids, PAD_LEN)) {
            if (s1 == CS_OK && bad_padded == 0)
                print_mismatch("input_ids", idx, pr, want_pad, ids, PAD_LEN);
            bad_padded++;
        }
        cs_status s2 = tokenizer_encode_full(tok, pr->s, pr->len, &full, &nfull, why, sizeof why);
        if (s2 != CS_OK || !ids_equal(want_full, full, nfull)) {
            if (s2 == CS_OK && bad_full == 0)
                print_mismatch("ids_unpadded", idx, pr, want_full, full, nfull);
            bad_full++;
        }
        free(full);
        idx++;
    }
    char detail[64];
    snprintf(detail, sizeof detail, "prompts (max_length %d)", tokenizer_max_length(tok));
    golden_report_exact(gc, "input_ids", bad_padded, count, detail);
    golden_report_exact(gc, "ids_unpadded", bad_full, count, "prompts");
done:
    for (int i = 0; prompts && i < count; i++)
        free(prompts[i].s);
    free(prompts);
    cJSON_Delete(root);
    free(text);
    tokenizer_free(tok);
    return st;
}

const golden_handler golden_tokenizer_handler = {"tokenizer", run};
