/* Strict JSON request bodies (see json_body.h). */
#include "json_body.h"

#include <math.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the raw-body scan found. */
typedef struct scan {
    json_body *jb;
    size_t nul_escape_at, ctrl_at; /* first \u0000 / raw control character, or SIZE_MAX */
} scan;

cs_status request_fail(request_error *e, const char *code, const char *field, const char *fmt, ...) {
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return CS_ERR_INVALID_ARG;
}

/* Offset of the first byte that is not part of valid UTF-8 (n when all are). */
static size_t utf8_error_at(const char *s, size_t n) {
    size_t lo = 0;
    /* Valid UTF-8 is self-synchronizing: advance one character at a time. */
    while (lo < n) {
        size_t step = 1;
        while (step <= 4 && lo + step <= n && !cs_utf8_valid(s + lo, step))
            step++;
        if (step > 4 || lo + step > n) return lo;
        lo += step;
    }
    return n;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is the opening quote; returns the index after the closing one. */
static size_t skip_string(const char *s, size_t n, size_t i, scan *sc) {
    for (i++; i < n && s[i] != '"'; i++) {
        if ((unsigned char)s[i] < 0x20 && sc->ctrl_at == SIZE_MAX) sc->ctrl_at = i;
        if (s[i] == '\\') {
            if (i + 5 < n && !strncmp(s + i + 1, "u0000", 5) && sc->nul_escape_at == SIZE_MAX)
                sc->nul_escape_at = i;
            i++;
        }
    }
    return i + 1;
}

/* Skips one JSON value (already known to be well-formed) starting at s[i]. */
static size_t skip_value(const char *s, size_t n, size_t i, scan *sc) {
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, n, i, sc);
        } else if (c == '{' || c == '[') {
            depth++;
            i++;
        } else if (c == '}' || c == ']') {
            depth--;
            i++;
        } else if (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
            continue;
        } else {
            while (i < n && !strchr(",:}] \t\r\n", s[i]))
                i++;
        }
        if (depth <= 0) break;
    }
    return i;
}

/* Records the raw spans of the top-level members of a well-formed JSON object. */
static bool scan_body(const char *s, size_t n, scan *sc) {
    sc->jb->n = 0;
    sc->nul_escape_at = sc->ctrl_at = SIZE_MAX;
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') return false;
    for (i = skip_ws(s, n, i + 1); i < n && s[i] != '}';) {
        if (s[i] != '"' || sc->jb->n >= JSON_BODY_MAX_MEMBERS) return false;
        __typeof__(sc->jb->m[0]) *m = &sc->jb->m[sc->jb->n++];
        m->key_start = i;
        i = skip_ws(s, n, skip_string(s, n, i, sc));
        if (i >= n || s[i] != ':') return false;
        m->value_start = i = skip_ws(s, n, i + 1);
        m->value_end = i = skip_value(s, n, i, sc);
        i = skip_ws(s, n, i);
        if (i < n && s[i] == ',') i = skip_ws(s, n, i + 1);
    }
    return i < n;
}

/* The member whose key or value holds byte offset at (-1: none). */
static int member_at(const scan *sc, size_t at) {
    for (int k = 0; k < sc->jb->n; k++)
        if (at >= sc->jb->m[k].key_start && at < sc->jb->m[k].value_end) return k;
    return -1;
}

/* A short rendering of a value for messages. */
void json_value_text(const cJSON *v, char *buf, size_t n) {
    char *t = cJSON_PrintUnformatted(v);
    snprintf(buf, n, "%.40s%s", t ? t : "?", t && strlen(t) > 40 ? "..." : "");
    free(t);
}

cs_status json_get_number(const cJSON *v, const char *f, double *out, request_error *e) {
    char got[64];
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        json_value_text(v, got, sizeof got);
        return request_fail(e, "invalid_parameter", f, "%s must be a finite number (got %s)", f, got);
    }
    *out = v->valuedouble;
    return CS_OK;
}

cs_status json_get_int(const cJSON *v, const char *f, int *out, request_error *e) {
    char got[64];
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(x) || x != floor(x) || x < INT_MIN || x > INT_MAX) {
        json_value_text(v, got, sizeof got);
        return request_fail(e, "invalid_parameter", f, "%s must be an integer (got %s)", f, got);
    }
    *out = (int)x;
    return CS_OK;
}

cs_status json_get_bool(const cJSON *v, const char *f, bool *out, request_error *e) {
    char got[64];
    if (!cJSON_IsBool(v)) {
        json_value_text(v, got, sizeof got);
        return request_fail(e, "invalid_parameter", f, "%s must be true or false (got %s)", f, got);
    }
    *out = cJSON_IsTrue(v);
    return CS_OK;
}

/* A string field; null means "not given" (*out stays NULL) when nullable. */
cs_status json_get_string(const cJSON *v, const char *f, bool nullable, char **out,
                            request_error *e) {
    char got[64];
    if (nullable && cJSON_IsNull(v)) return CS_OK;
    if (!cJSON_IsString(v)) {
        json_value_text(v, got, sizeof got);
        return request_fail(e, "invalid_parameter", f, "%s must be a string%s (got %s)", f,
                       nullable ? " or null" : "", got);
    }
    if (!(*out = strdup(v->valuestring))) return request_fail(e, "internal", NULL, "out of memory");
    return CS_OK;
}

/* Everything about the body as a whole: encoding, syntax, shape. */
static cs_status check_body(const char *body, size_t len, cJSON **root, scan *sc,
                            request_error *e) {
    if (len == 0) return request_fail(e, "invalid_json", NULL, "the request body is empty");
    if (memchr(body, '\0', len))
        return request_fail(e, "invalid_json", NULL, "the request body contains a NUL byte");
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!*root) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return request_fail(e, "invalid_json", NULL, "malformed JSON near byte %zu", at);
    }
    if (skip_ws(body, len, (size_t)(end - body)) != len)
        return request_fail(e, "invalid_json", NULL, "unexpected text after the JSON value (byte %zu)",
                       (size_t)(end - body));
    if (!cJSON_IsObject(*root))
        return request_fail(e, "invalid_json", NULL,
                       "the request body must be a JSON object like {\"prompt\": \"...\"}");
    if (!scan_body(body, len, sc) || sc->jb->n != cJSON_GetArraySize(*root))
        return request_fail(e, "invalid_json", NULL, "the request object has too many members");
    size_t bad = utf8_error_at(body, len);
    if (bad < len) {
        int k = member_at(sc, bad);
        const cJSON *c = k >= 0 ? cJSON_GetArrayItem(*root, k) : NULL;
        return request_fail(e, c ? "invalid_parameter" : "invalid_json", c ? c->string : NULL,
                       "%s is not valid UTF-8 (byte %zu)", c ? c->string : "the request body", bad);
    }
    size_t ctrl = sc->ctrl_at < sc->nul_escape_at ? sc->ctrl_at : sc->nul_escape_at;
    if (ctrl != SIZE_MAX) {
        int k = member_at(sc, ctrl);
        const cJSON *c = k >= 0 ? cJSON_GetArrayItem(*root, k) : NULL;
        return request_fail(e, "invalid_parameter", c ? c->string : NULL, "%s contains %s (byte %zu)",
                       c ? c->string : "a string",
                       ctrl == sc->ctrl_at ? "an unescaped control character"
                                           : "a NUL character (\\u0000)",
                       ctrl);
    }
    return CS_OK;
}


cs_status json_body_parse(const char *body, size_t len, json_body *jb, request_error *e) {
    memset(jb, 0, sizeof *jb);
    jb->text = body;
    scan sc = {.jb = jb};
    cs_status st = check_body(body, len, &jb->root, &sc, e);
    for (const cJSON *c = jb->root ? jb->root->child : NULL; st == CS_OK && c; c = c->next)
        for (const cJSON *d = jb->root->child; d != c && st == CS_OK; d = d->next)
            if (!strcmp(d->string, c->string))
                st = request_fail(e, "invalid_parameter", c->string, "%s is given twice",
                                  c->string);
    if (st != CS_OK) json_body_free(jb);
    return st;
}

void json_body_free(json_body *jb) {
    cJSON_Delete(jb->root);
    jb->root = NULL;
    jb->n = 0;
}

const char *json_body_raw(const json_body *jb, int k, size_t *len) {
    *len = jb->m[k].value_end - jb->m[k].value_start;
    return jb->text + jb->m[k].value_start;
}
