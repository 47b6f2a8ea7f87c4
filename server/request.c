/*
 * Request bodies → cs_gen_params (see request.h).
 *
 * cJSON does the parsing, but it is lenient where a server must not be: it copies invalid
 * UTF-8, truncates a string at an escaped NUL (\u0000), accepts raw control characters in
 * strings, and keeps numbers only as doubles (a 64-bit seed above 2^53 would be rounded).
 * So a small scanner also walks the raw body: it finds the raw text of every top-level
 * member (the i-th member is cJSON's i-th child: both keep document order), which gives
 * the exact seed digits and lets an encoding error name the field it occurs in.
 *
 * Threads: any.
 */
#include "request.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "png_decode.h"

enum { MAX_MEMBERS = 32 };

static const char *const FIELDS[] = {"prompt",
                                     "negative_prompt",
                                     "guidance_scale",
                                     "steps",
                                     "seed",
                                     "width",
                                     "height",
                                     "sampler",
                                     "karras",
                                     "num_images",
                                     "guidance_rescale",
                                     "guidance_interval",
                                     "clip_skip",
                                     "eta",
                                     "stream",
                                     "init_image",
                                     "mask",
                                     "strength",
                                     NULL};

typedef struct member_span {
    size_t key_start, value_start, value_end;
} member_span;

/* What the raw-body scan found. */
typedef struct scan {
    member_span m[MAX_MEMBERS];
    int n;
    size_t nul_escape_at, ctrl_at; /* first \u0000 / raw control character, or SIZE_MAX */
} scan;

static cs_status err_set(request_error *e, const char *code, const char *field, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
static cs_status err_set(request_error *e, const char *code, const char *field, const char *fmt,
                         ...) {
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
    sc->n = 0;
    sc->nul_escape_at = sc->ctrl_at = SIZE_MAX;
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') return false;
    for (i = skip_ws(s, n, i + 1); i < n && s[i] != '}';) {
        if (s[i] != '"' || sc->n >= MAX_MEMBERS) return false;
        member_span *m = &sc->m[sc->n++];
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
    for (int k = 0; k < sc->n; k++)
        if (at >= sc->m[k].key_start && at < sc->m[k].value_end) return k;
    return -1;
}

/* A short rendering of a value for messages. */
static void value_text(const cJSON *v, char *buf, size_t n) {
    char *t = cJSON_PrintUnformatted(v);
    snprintf(buf, n, "%.40s%s", t ? t : "?", t && strlen(t) > 40 ? "..." : "");
    free(t);
}

static cs_status get_number(const cJSON *v, const char *f, double *out, request_error *e) {
    char got[64];
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        value_text(v, got, sizeof got);
        return err_set(e, "invalid_parameter", f, "%s must be a finite number (got %s)", f, got);
    }
    *out = v->valuedouble;
    return CS_OK;
}

static cs_status get_int(const cJSON *v, const char *f, int *out, request_error *e) {
    char got[64];
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(x) || x != floor(x) || x < INT_MIN || x > INT_MAX) {
        value_text(v, got, sizeof got);
        return err_set(e, "invalid_parameter", f, "%s must be an integer (got %s)", f, got);
    }
    *out = (int)x;
    return CS_OK;
}

static cs_status get_bool(const cJSON *v, const char *f, bool *out, request_error *e) {
    char got[64];
    if (!cJSON_IsBool(v)) {
        value_text(v, got, sizeof got);
        return err_set(e, "invalid_parameter", f, "%s must be true or false (got %s)", f, got);
    }
    *out = cJSON_IsTrue(v);
    return CS_OK;
}

/* A string field; null means "not given" (*out stays NULL) when nullable. */
static cs_status get_string(const cJSON *v, const char *f, bool nullable, char **out,
                            request_error *e) {
    char got[64];
    if (nullable && cJSON_IsNull(v)) return CS_OK;
    if (!cJSON_IsString(v)) {
        value_text(v, got, sizeof got);
        return err_set(e, "invalid_parameter", f, "%s must be a string%s (got %s)", f,
                       nullable ? " or null" : "", got);
    }
    if (!(*out = strdup(v->valuestring))) return err_set(e, "internal", NULL, "out of memory");
    return CS_OK;
}

/* The seed from its raw text: every uint64 exactly, or -1 / null for a random one. */
static cs_status get_seed(const cJSON *v, const char *raw, size_t len, request_gen *r,
                          request_error *e) {
    static const char why[] = "seed must be an integer in [0, 18446744073709551615], or -1 "
                              "or null for a random seed";
    if (cJSON_IsNull(v) || (len == 2 && !strncmp(raw, "-1", 2))) {
        r->seed_random = true;
        return CS_OK;
    }
    if (!cJSON_IsNumber(v) || len == 0 || len > 20)
        return err_set(e, "invalid_parameter", "seed", why);
    uint64_t s = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(raw[i] - '0');
        if (d > 9 || s > (UINT64_MAX - d) / 10) return err_set(e, "invalid_parameter", "seed", why);
        s = s * 10 + d;
    }
    r->p.seed = s;
    r->seed_random = false;
    return CS_OK;
}

static cs_status get_interval(const cJSON *v, request_gen *r, request_error *e) {
    char got[64];
    if (cJSON_IsNull(v)) {
        r->p.guidance_lo = 0;
        r->p.guidance_hi = 0;
        return CS_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsNumber(v->child) ||
        !cJSON_IsNumber(v->child->next) || !isfinite(v->child->valuedouble) ||
        !isfinite(v->child->next->valuedouble)) {
        value_text(v, got, sizeof got);
        return err_set(e, "invalid_parameter", "guidance_interval",
                       "guidance_interval must be [lo, hi] (two numbers, noise levels sigma) "
                       "or null (got %s)",
                       got);
    }
    r->p.guidance_lo = v->child->valuedouble;
    r->p.guidance_hi = v->child->next->valuedouble;
    return CS_OK;
}

/* A base64 PNG string field (optionally a data:image/png;base64, URL), decoded to RGB8
 * within the configured size. */
static cs_status get_png(const cJSON *v, const char *f, const request_limits *lim, uint8_t **rgb,
                         int *w, int *h, request_error *e) {
    if (!cJSON_IsString(v))
        return err_set(e, "invalid_parameter", f, "%s must be a base64-encoded PNG string", f);
    const char *text = v->valuestring;
    size_t len = strlen(text);
    if (!strncmp(text, "data:", 5)) {
        static const char prefix[] = "data:image/png;base64,";
        if (strncmp(text, prefix, sizeof prefix - 1) != 0)
            return err_set(e, "invalid_parameter", f,
                           "%s is a data URL but not \"data:image/png;base64,...\"", f);
        text += sizeof prefix - 1;
        len -= sizeof prefix - 1;
    }
    uint8_t *png = NULL;
    size_t png_len = 0;
    char why[160];
    if (base64_decode(text, len, &png, &png_len, why, sizeof why) != 0)
        return err_set(e, "invalid_parameter", f, "%s is not valid base64: %s", f, why);
    char msg[256];
    const int mw = lim->max_width > 0 ? lim->max_width : 4096;
    const int mh = lim->max_height > 0 ? lim->max_height : 4096;
    cs_status st = png_decode_rgb8(png, png_len, mw, mh, f, rgb, w, h, msg, sizeof msg);
    free(png);
    if (st != CS_OK) return err_set(e, "invalid_parameter", f, "%s", msg);
    return CS_OK;
}

/* One member of the body. */
static cs_status apply_field(const char *f, const cJSON *v, const char *raw, size_t raw_len,
                             const request_limits *lim, request_gen *r, request_error *e) {
    cs_gen_params *p = &r->p;
    cs_status st = CS_OK;
    if (!strcmp(f, "prompt"))
        st = get_string(v, f, false, &r->prompt, e);
    else if (!strcmp(f, "negative_prompt"))
        st = get_string(v, f, true, &r->negative_prompt, e);
    else if (!strcmp(f, "sampler"))
        st = get_string(v, f, true, &r->sampler, e);
    else if (!strcmp(f, "guidance_scale"))
        st = get_number(v, f, &p->guidance_scale, e);
    else if (!strcmp(f, "guidance_rescale"))
        st = get_number(v, f, &p->guidance_rescale, e);
    else if (!strcmp(f, "eta"))
        st = get_number(v, f, &p->eta, e);
    else if (!strcmp(f, "steps"))
        st = get_int(v, f, &p->steps, e);
    else if (!strcmp(f, "num_images"))
        st = get_int(v, f, &p->num_images, e);
    else if (!strcmp(f, "clip_skip"))
        st = get_int(v, f, &p->clip_skip, e);
    else if (!strcmp(f, "width") || !strcmp(f, "height")) {
        int *dim = f[0] == 'w' ? &p->width : &p->height;
        int most = f[0] == 'w' ? lim->max_width : lim->max_height;
        st = get_int(v, f, dim, e);
        if (st == CS_OK && most > 0 && *dim > most)
            st = err_set(e, "invalid_parameter", f, "%s must be at most %d on this server (got %d)",
                         f, most, *dim);
    } else if (!strcmp(f, "karras")) {
        bool b = false;
        st = get_bool(v, f, &b, e);
        p->karras = b;
    } else if (!strcmp(f, "stream"))
        st = get_bool(v, f, &r->stream, e);
    else if (!strcmp(f, "seed"))
        st = get_seed(v, raw, raw_len, r, e);
    else if (!strcmp(f, "guidance_interval"))
        st = get_interval(v, r, e);
    else if (!strcmp(f, "strength"))
        st = get_number(v, f, &p->strength, e);
    else if (!strcmp(f, "init_image"))
        st = get_png(v, f, lim, &r->init_rgb, &r->init_w, &r->init_h, e);
    else if (!strcmp(f, "mask")) {
        uint8_t *rgb = NULL;
        st = get_png(v, f, lim, &rgb, &r->mask_w, &r->mask_h, e);
        if (st == CS_OK) {
            r->mask_gray = malloc((size_t)r->mask_w * (size_t)r->mask_h);
            if (!r->mask_gray) st = err_set(e, "internal", f, "out of memory");
            else png_rgb8_to_luma(rgb, (int64_t)r->mask_w * r->mask_h, r->mask_gray);
        }
        free(rgb);
    }
    if (st == CS_OK && (!strcmp(f, "width") || !strcmp(f, "height")))
        *(f[0] == 'w' ? &r->width_given : &r->height_given) = true;
    return st;
}

/* The init image / mask sizes against width and height (see request.h). */
static cs_status resolve_image_size(request_gen *r, request_error *e) {
    if (!r->init_rgb) return CS_OK;
    const int dims[2] = {r->p.width, r->p.height}, img[2] = {r->init_w, r->init_h};
    const bool given[2] = {r->width_given, r->height_given};
    for (int d = 0; d < 2; d++)
        if (given[d] && dims[d] != img[d])
            return err_set(e, "invalid_parameter", "init_image",
                           "init_image is %dx%d but %s is %d; give no width/height to use the "
                           "image's size (images are not resized)",
                           r->init_w, r->init_h, d ? "height" : "width", dims[d]);
    r->p.width = r->init_w;
    r->p.height = r->init_h;
    if (r->mask_gray && (r->mask_w != r->init_w || r->mask_h != r->init_h))
        return err_set(e, "invalid_parameter", "mask", "mask is %dx%d but init_image is %dx%d",
                       r->mask_w, r->mask_h, r->init_w, r->init_h);
    r->p.init_image = r->init_rgb;
    r->p.mask = r->mask_gray;
    return CS_OK;
}

static bool known_field(const char *f) {
    for (const char *const *k = FIELDS; *k; k++)
        if (!strcmp(*k, f)) return true;
    return false;
}

void request_gen_deinit(request_gen *r) {
    if (!r) return;
    free(r->prompt);
    free(r->negative_prompt);
    free(r->sampler);
    free(r->init_rgb);
    free(r->mask_gray);
    r->prompt = r->negative_prompt = r->sampler = NULL;
    r->init_rgb = r->mask_gray = NULL;
    r->p.init_image = r->p.mask = NULL;
}

uint64_t request_random_seed(void) {
    uint64_t s;
    if (getrandom(&s, sizeof s, 0) == (ssize_t)sizeof s) return s;
    /* No entropy source: time and pid still give distinct seeds per request. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 40;
    return s * 0x9e3779b97f4a7c15ull;
}

/* Everything about the body as a whole: encoding, syntax, shape. */
static cs_status check_body(const char *body, size_t len, cJSON **root, scan *sc,
                            request_error *e) {
    if (len == 0) return err_set(e, "invalid_json", NULL, "the request body is empty");
    if (memchr(body, '\0', len))
        return err_set(e, "invalid_json", NULL, "the request body contains a NUL byte");
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!*root) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return err_set(e, "invalid_json", NULL, "malformed JSON near byte %zu", at);
    }
    if (skip_ws(body, len, (size_t)(end - body)) != len)
        return err_set(e, "invalid_json", NULL, "unexpected text after the JSON value (byte %zu)",
                       (size_t)(end - body));
    if (!cJSON_IsObject(*root))
        return err_set(e, "invalid_json", NULL,
                       "the request body must be a JSON object like {\"prompt\": \"...\"}");
    if (!scan_body(body, len, sc) || sc->n != cJSON_GetArraySize(*root))
        return err_set(e, "invalid_json", NULL, "the request object has too many members");
    size_t bad = utf8_error_at(body, len);
    if (bad < len) {
        int k = member_at(sc, bad);
        const cJSON *c = k >= 0 ? cJSON_GetArrayItem(*root, k) : NULL;
        return err_set(e, c ? "invalid_parameter" : "invalid_json", c ? c->string : NULL,
                       "%s is not valid UTF-8 (byte %zu)", c ? c->string : "the request body", bad);
    }
    size_t ctrl = sc->ctrl_at < sc->nul_escape_at ? sc->ctrl_at : sc->nul_escape_at;
    if (ctrl != SIZE_MAX) {
        int k = member_at(sc, ctrl);
        const cJSON *c = k >= 0 ? cJSON_GetArrayItem(*root, k) : NULL;
        return err_set(e, "invalid_parameter", c ? c->string : NULL, "%s contains %s (byte %zu)",
                       c ? c->string : "a string",
                       ctrl == sc->ctrl_at ? "an unescaped control character"
                                           : "a NUL character (\\u0000)",
                       ctrl);
    }
    return CS_OK;
}

cs_status request_parse(const char *body, size_t len, const cs_model *m,
                        const cs_gen_params *defaults, const request_limits *lim, request_gen *out,
                        request_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    out->p = *defaults;
    out->seed_random = true;
    cJSON *root = NULL;
    scan *sc = malloc(sizeof *sc);
    cs_status st =
        sc ? check_body(body, len, &root, sc, e) : err_set(e, "internal", NULL, "out of memory");
    int k = 0;
    for (const cJSON *c = root ? root->child : NULL; st == CS_OK && c; c = c->next, k++) {
        if (!known_field(c->string)) {
            st = err_set(e, "invalid_parameter", c->string,
                         "unknown field \"%.48s\" (fields: prompt, negative_prompt, "
                         "guidance_scale, steps, seed, width, height, sampler, karras, "
                         "num_images, guidance_rescale, guidance_interval, clip_skip, eta, "
                         "stream, init_image, mask, strength)",
                         c->string);
            break;
        }
        for (const cJSON *d = root->child; d != c; d = d->next)
            if (!strcmp(d->string, c->string))
                st = err_set(e, "invalid_parameter", c->string, "%s is given twice", c->string);
        if (st == CS_OK)
            st = apply_field(c->string, c, body + sc->m[k].value_start,
                             sc->m[k].value_end - sc->m[k].value_start, lim, out, e);
    }
    cJSON_Delete(root);
    free(sc);
    if (st == CS_OK && !out->prompt)
        st = err_set(e, "invalid_parameter", "prompt", "prompt is required (a string)");
    if (st == CS_OK) st = resolve_image_size(out, e);
    if (st == CS_OK) {
        out->p.prompt = out->prompt;
        out->p.negative_prompt = out->negative_prompt ? out->negative_prompt : "";
        out->p.sampler = out->sampler;
        if (out->seed_random) out->p.seed = request_random_seed();
        const char *field = NULL;
        char msg[256];
        if (m && cs_params_validate(m, &out->p, &field, msg, sizeof msg) != CS_OK)
            st = err_set(e, "invalid_parameter", field, "%s", msg);
    }
    if (st != CS_OK) request_gen_deinit(out);
    return st;
}

/* Rewrites every non-ASCII character of valid UTF-8 JSON text as \uXXXX (a surrogate pair
 * past U+FFFF); they only occur inside strings, where the escape means the same. */
static char *json_ascii(const char *s) {
    size_t n = strlen(s), at = 0;
    char *out = malloc(n * 6 + 1); /* a 1-byte character stays 1; 4 bytes become 12 */
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        unsigned c = (unsigned char)s[i];
        if (c < 0x7f) {
            out[at++] = s[i++];
            continue;
        }
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
        uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t k = 1; k < len && i + k < n; k++)
            cp = cp << 6 | ((unsigned char)s[i + k] & 0x3f);
        i += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            at += (size_t)sprintf(out + at, "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
                                  0xdc00 + (cp & 0x3ff));
        } else {
            at += (size_t)sprintf(out + at, "\\u%04x", cp);
        }
    }
    out[at] = '\0';
    return out;
}

char *request_params_json(const cs_gen_params *p) {
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    cJSON *o = cJSON_CreateObject(), *iv = NULL;
    bool ok = o && cJSON_AddStringToObject(o, "prompt", p->prompt ? p->prompt : "") &&
              cJSON_AddStringToObject(o, "negative_prompt",
                                      p->negative_prompt ? p->negative_prompt : "") &&
              cJSON_AddNumberToObject(o, "guidance_scale", p->guidance_scale) &&
              cJSON_AddNumberToObject(o, "steps", p->steps) &&
              cJSON_AddRawToObject(o, "seed", seed) &&
              cJSON_AddNumberToObject(o, "width", p->width) &&
              cJSON_AddNumberToObject(o, "height", p->height) &&
              (p->sampler && p->sampler[0] ? cJSON_AddStringToObject(o, "sampler", p->sampler)
                                           : cJSON_AddNullToObject(o, "sampler")) &&
              cJSON_AddBoolToObject(o, "karras", p->karras != 0) &&
              cJSON_AddNumberToObject(o, "num_images", p->num_images) &&
              cJSON_AddNumberToObject(o, "guidance_rescale", p->guidance_rescale);
    if (ok && p->guidance_hi > 0) {
        const double lohi[2] = {p->guidance_lo, p->guidance_hi};
        ok = (iv = cJSON_CreateDoubleArray(lohi, 2)) != NULL &&
             cJSON_AddItemToObject(o, "guidance_interval", iv);
        if (!ok) cJSON_Delete(iv);
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "guidance_interval") != NULL;
    }
    ok = ok && cJSON_AddNumberToObject(o, "clip_skip", p->clip_skip) &&
         cJSON_AddNumberToObject(o, "eta", p->eta);
    if (ok && p->init_image) ok = cJSON_AddNumberToObject(o, "strength", p->strength) != NULL;
    if (ok && p->init_image) ok = cJSON_AddBoolToObject(o, "mask", p->mask != NULL) != NULL;
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    char *ascii = text ? json_ascii(text) : NULL;
    free(text);
    return ascii;
}
