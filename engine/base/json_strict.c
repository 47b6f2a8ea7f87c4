/* Strict JSON parsing and duplicate-key detection (see json_strict.h). */
#include "json_strict.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* cJSON answers NULL both for bad syntax and for a failed allocation. Its allocator hooks
 * count this thread's failures so an out-of-memory parse is reported as such rather than
 * as "invalid JSON" (the hooks are process-wide, installed once; they only wrap malloc). */
static _Thread_local unsigned long t_alloc_failures;
static void *counting_malloc(size_t n) {
    void *p = malloc(n);
    if (!p) t_alloc_failures++;
    return p;
}
static void install_hooks(void) {
    cJSON_Hooks h = {.malloc_fn = counting_malloc, .free_fn = free};
    cJSON_InitHooks(&h);
}
static pthread_once_t g_hooks_once = PTHREAD_ONCE_INIT;

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) or is a control byte other than tab, LF and CR;
 * len when there is none. */
static size_t first_bad_byte(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return i;
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) lo = 0xa0; /* overlong */
            if (c == 0xed) hi = 0x9f; /* UTF-16 surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) lo = 0x90; /* overlong */
            if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
        } else {
            return i;
        }
        if (len - i <= need) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        i += need + 1;
    }
    return len;
}

cJSON *json_parse_strict(const char *text, size_t len, char *why, size_t why_size) {
    size_t bad = first_bad_byte((const unsigned char *)text, len);
    if (bad < len) {
        cs_errf(CS_ERR_FORMAT, why, why_size, "invalid UTF-8 or control byte 0x%02x at byte %zu",
                (unsigned char)text[bad], bad);
        return NULL;
    }
    /* cJSON honours the length, but a NUL-terminated private copy keeps any read past it
     * inside our own buffer rather than in whatever follows the text (tensor data). */
    char *copy = cs_malloc(len + 1);
    if (!copy) {
        cs_errf(CS_ERR_NOMEM, why, why_size, "out of memory for %zu bytes of JSON", len);
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *end = NULL;
    pthread_once(&g_hooks_once, install_hooks);
    const unsigned long failures = t_alloc_failures;
    cJSON *root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    size_t at = end ? (size_t)(end - copy) : 0;
    if (!root && t_alloc_failures != failures) {
        cs_errf(CS_ERR_NOMEM, why, why_size, "out of memory parsing %zu bytes of JSON", len);
        free(copy);
        return NULL;
    }
    if (!root) {
        cs_errf(CS_ERR_FORMAT, why, why_size, "invalid JSON at byte %zu", at);
        free(copy);
        return NULL;
    }
    for (; at < len; at++) {
        char c = copy[at];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            cs_errf(CS_ERR_FORMAT, why, why_size,
                    "unexpected data after the JSON value at byte %zu", at);
            cJSON_Delete(root);
            root = NULL;
            break;
        }
    }
    free(copy);
    return root;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

cs_status json_unique_keys(const cJSON *obj, const char **dup) {
    *dup = NULL;
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2) return CS_OK;
    const char **keys = cs_calloc(n, sizeof *keys);
    if (!keys) return CS_ERR_NOMEM;
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        keys[i++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, cmp_str_ptr);
    cs_status st = CS_OK;
    for (i = 1; i < n; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            *dup = keys[i];
            st = CS_ERR_FORMAT;
            break;
        }
    }
    free(keys);
    return st;
}
