/*
 * The native dialect's request bodies → cs_gen_params (see request.h); the strict JSON
 * layer is json_body.c.
 *
 * Threads: any.
 */
#include "request.h"

#include "base64.h"
#include "png_decode.h"

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

static const char *const FIELDS[] = {"model",
                                     "prompt",
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
                                     "loras",
                                     "stream",
                                     "init_image",
                                     "mask",
                                     "strength",
                                     "inpaint_fill",
                                     "resize_mode",
                                     "preview_every",
                                     NULL};

/* inpaint_fill's names, in CS_FILL_* order. */
static const char *const k_fill_names[] = {"original", "fill", "latent_noise", "latent_nothing"};

static cs_status get_fill(const cJSON *v, cs_gen_params *p, request_error *e) {
    if (cJSON_IsString(v))
        for (int i = 0; i < (int)(sizeof k_fill_names / sizeof *k_fill_names); i++)
            if (!strcmp(v->valuestring, k_fill_names[i])) {
                p->inpaint_fill = i;
                return CS_OK;
            }
    return request_fail(e, "invalid_parameter", "inpaint_fill",
                        "inpaint_fill must be \"original\", \"fill\", \"latent_noise\" or "
                        "\"latent_nothing\"");
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
        return request_fail(e, "invalid_parameter", "seed", why);
    uint64_t s = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(raw[i] - '0');
        if (d > 9 || s > (UINT64_MAX - d) / 10) return request_fail(e, "invalid_parameter", "seed", why);
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
        json_value_text(v, got, sizeof got);
        return request_fail(e, "invalid_parameter", "guidance_interval",
                       "guidance_interval must be [lo, hi] (two numbers, noise levels sigma) "
                       "or null (got %s)",
                       got);
    }
    r->p.guidance_lo = v->child->valuedouble;
    r->p.guidance_hi = v->child->next->valuedouble;
    return CS_OK;
}

void request_free_loras(request_gen *r) {
    for (int i = 0; r->loras && i < r->p.num_loras; i++)
        free((char *)r->loras[i].name);
    free(r->loras);
    r->loras = NULL;
    r->p.loras = NULL;
    r->p.num_loras = 0;
}

/* "loras": [{"name": "file", "weight": 0.8}, ...] or null; weight defaults to 1. The
 * name and weight rules are the engine's (cs_params_validate, field "loras"). */
static cs_status get_loras(const cJSON *v, request_gen *r, request_error *e) {
    static const char shape[] = "loras must be a list of up to %d objects {\"name\": string, "
                                "\"weight\": number} or null";
    request_free_loras(r);
    if (cJSON_IsNull(v)) return CS_OK;
    const int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0 || n > CS_MAX_LORAS_PER_JOB)
        return request_fail(e, "invalid_parameter", "loras", shape, CS_MAX_LORAS_PER_JOB);
    if (n == 0) return CS_OK;
    if (!(r->loras = calloc((size_t)n, sizeof *r->loras)))
        return request_fail(e, "internal", NULL, "out of memory");
    r->p.loras = r->loras;
    int i = 0;
    for (const cJSON *o = v->child; o; o = o->next, i++) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "weight");
        int members = cJSON_IsObject(o) ? cJSON_GetArraySize(o) : -1;
        if (!cJSON_IsString(name) || (w && !cJSON_IsNumber(w)) || members != 1 + (w != NULL))
            return request_fail(e, "invalid_parameter", "loras",
                           "loras[%d] must be {\"name\": string, \"weight\": number} (no other keys)", i);
        if (!(r->loras[i].name = strdup(name->valuestring)))
            return request_fail(e, "internal", NULL, "out of memory");
        r->loras[i].weight = w ? w->valuedouble : 1.0;
        r->p.num_loras = i + 1;
    }
    return CS_OK;
}

cs_status request_png_field(const cJSON *v, const char *f, const request_limits *lim,
                            uint8_t **rgb, int *w, int *h, request_error *e) {
    if (!cJSON_IsString(v))
        return request_fail(e, "invalid_parameter", f, "%s must be a base64-encoded PNG string", f);
    const char *text = v->valuestring;
    size_t len = strlen(text);
    if (!strncmp(text, "data:", 5)) {
        static const char prefix[] = "data:image/png;base64,";
        if (strncmp(text, prefix, sizeof prefix - 1) != 0)
            return request_fail(e, "invalid_parameter", f,
                                "%s is a data URL but not \"data:image/png;base64,...\"", f);
        text += sizeof prefix - 1;
        len -= sizeof prefix - 1;
    }
    uint8_t *png = NULL;
    size_t png_len = 0;
    char why[160];
    if (base64_decode(text, len, &png, &png_len, why, sizeof why) != 0)
        return request_fail(e, "invalid_parameter", f, "%s is not valid base64: %s", f, why);
    char msg[256];
    const int mw = lim->max_width > 0 ? lim->max_width : 4096;
    const int mh = lim->max_height > 0 ? lim->max_height : 4096;
    cs_status st = png_decode_rgb8(png, png_len, mw, mh, f, rgb, w, h, msg, sizeof msg);
    free(png);
    if (st != CS_OK) return request_fail(e, "invalid_parameter", f, "%s", msg);
    return CS_OK;
}

cs_status request_mask_field(const cJSON *v, const char *f, const request_limits *lim,
                             request_gen *r, request_error *e) {
    uint8_t *rgb = NULL;
    free(r->mask_gray);
    r->mask_gray = NULL;
    cs_status st = request_png_field(v, f, lim, &rgb, &r->mask_w, &r->mask_h, e);
    if (st == CS_OK) {
        r->mask_gray = malloc((size_t)r->mask_w * (size_t)r->mask_h);
        if (!r->mask_gray)
            st = request_fail(e, "internal", f, "out of memory");
        else
            png_rgb8_to_luma(rgb, (int64_t)r->mask_w * r->mask_h, r->mask_gray);
    }
    free(rgb);
    return st;
}

cs_status request_resize_mode_field(const cJSON *v, const char *f, request_gen *r,
                                    request_error *e) {
    cs_status st = json_get_int(v, f, &r->resize_mode, e);
    if (st == CS_OK && (r->resize_mode < 0 || r->resize_mode > 2))
        st = request_fail(e, "invalid_parameter", f,
                          "%s must be 0 (just resize), 1 (crop and resize) or 2 (resize and "
                          "fill); got %d", f, r->resize_mode);
    return st;
}

/* Resizes *pix (w × h, ch channels) to tw × th in place of the old buffer. */
static cs_status resize_pixels(uint8_t **pix, int *w, int *h, int ch, int tw, int th, int mode,
                               const char *field, request_error *e) {
    if (*w == tw && *h == th) return CS_OK;
    uint8_t *out = malloc((size_t)tw * (size_t)th * (size_t)ch);
    if (!out) return request_fail(e, "internal", field, "out of memory resizing %s", field);
    char msg[200];
    if (cs_image_resize(*pix, *w, *h, ch, out, tw, th, mode, msg, sizeof msg) != CS_OK) {
        free(out);
        return request_fail(e, "invalid_parameter", field, "%s: %s", field, msg);
    }
    free(*pix);
    *pix = out;
    *w = tw;
    *h = th;
    return CS_OK;
}

cs_status request_resolve_image_size(request_gen *r, const char *image_field, request_error *e) {
    if (!r->init_rgb) {
        if (r->mask_gray)
            return request_fail(e, "invalid_parameter", "mask", "a mask needs an init image (%s)",
                                image_field);
        return CS_OK;
    }
    const int tw = r->width_given ? r->p.width : r->init_w;
    const int th = r->height_given ? r->p.height : r->init_h;
    /* Bounded before anything is allocated; the model's own rules come after. */
    if (tw < 1 || tw > MAX_RESIZE_SIDE || th < 1 || th > MAX_RESIZE_SIDE)
        return request_fail(e, "invalid_parameter", tw < 1 || tw > MAX_RESIZE_SIDE ? "width" : "height",
                            "width and height must be within [1, %d] to resize %s to (got %dx%d)",
                            MAX_RESIZE_SIDE, image_field, tw, th);
    cs_status st = resize_pixels(&r->init_rgb, &r->init_w, &r->init_h, 3, tw, th, r->resize_mode,
                                 image_field, e);
    if (st == CS_OK && r->mask_gray)
        st = resize_pixels(&r->mask_gray, &r->mask_w, &r->mask_h, 1, tw, th, r->resize_mode,
                           "mask", e);
    if (st != CS_OK) return st;
    r->p.width = tw;
    r->p.height = th;
    r->p.init_image = r->init_rgb;
    r->p.mask = r->mask_gray;
    return CS_OK;
}

/* One member of the body. */
static cs_status apply_field(const char *f, const cJSON *v, const char *raw, size_t raw_len,
                             const request_limits *lim, request_gen *r, request_error *e) {
    cs_gen_params *p = &r->p;
    cs_status st = CS_OK;
    if (!strcmp(f, "model")) return CS_OK; /* read before every other field (pick_model) */
    if (!strcmp(f, "prompt"))
        st = json_get_string(v, f, false, &r->prompt, e);
    else if (!strcmp(f, "negative_prompt"))
        st = json_get_string(v, f, true, &r->negative_prompt, e);
    else if (!strcmp(f, "sampler"))
        st = json_get_string(v, f, true, &r->sampler, e);
    else if (!strcmp(f, "guidance_scale"))
        st = json_get_number(v, f, &p->guidance_scale, e);
    else if (!strcmp(f, "guidance_rescale"))
        st = json_get_number(v, f, &p->guidance_rescale, e);
    else if (!strcmp(f, "eta"))
        st = json_get_number(v, f, &p->eta, e);
    else if (!strcmp(f, "steps"))
        st = json_get_int(v, f, &p->steps, e);
    else if (!strcmp(f, "num_images"))
        st = json_get_int(v, f, &p->num_images, e);
    else if (!strcmp(f, "clip_skip")) {
        /* A1111's meaning (its "Clip skip" setting): 1 = the last layer = the engine's 0,
         * k = k - 1 layers before it; 0 is taken as 1. */
        st = json_get_int(v, f, &p->clip_skip, e);
        if (st == CS_OK && p->clip_skip < 0)
            st = request_fail(e, "invalid_parameter", f, "clip_skip must be >= 1 (1 = last layer)");
        else if (st == CS_OK && p->clip_skip > 0)
            p->clip_skip -= 1;
    }
    else if (!strcmp(f, "width") || !strcmp(f, "height")) {
        int *dim = f[0] == 'w' ? &p->width : &p->height;
        int most = f[0] == 'w' ? lim->max_width : lim->max_height;
        st = json_get_int(v, f, dim, e);
        if (st == CS_OK && most > 0 && *dim > most)
            st = request_fail(e, "invalid_parameter", f, "%s must be at most %d on this server (got %d)",
                         f, most, *dim);
    } else if (!strcmp(f, "karras")) {
        bool b = false;
        st = json_get_bool(v, f, &b, e);
        p->karras = b;
    } else if (!strcmp(f, "stream"))
        st = json_get_bool(v, f, &r->stream, e);
    else if (!strcmp(f, "seed"))
        st = get_seed(v, raw, raw_len, r, e);
    else if (!strcmp(f, "guidance_interval"))
        st = get_interval(v, r, e);
    else if (!strcmp(f, "loras"))
        st = get_loras(v, r, e);
    else if (!strcmp(f, "strength"))
        st = json_get_number(v, f, &p->strength, e);
    else if (!strcmp(f, "init_image"))
        st = request_png_field(v, f, lim, &r->init_rgb, &r->init_w, &r->init_h, e);
    else if (!strcmp(f, "mask"))
        st = request_mask_field(v, f, lim, r, e);
    else if (!strcmp(f, "inpaint_fill"))
        st = get_fill(v, p, e);
    else if (!strcmp(f, "resize_mode"))
        st = request_resize_mode_field(v, f, r, e);
    else if (!strcmp(f, "preview_every")) {
        st = json_get_int(v, f, &r->preview_every, e);
        if (st == CS_OK && (r->preview_every < 0 || r->preview_every > 1000))
            st = request_fail(e, "invalid_parameter", f,
                              "preview_every must be within [0, 1000] (0 = no previews)");
    }
    if (st == CS_OK && (!strcmp(f, "width") || !strcmp(f, "height")))
        *(f[0] == 'w' ? &r->width_given : &r->height_given) = true;
    return st;
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
    request_free_loras(r);
    if (r->dialect_free) r->dialect_free(r->dialect_data);
    r->dialect_data = NULL;
    r->dialect_free = NULL;
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

/* "model" (a served model's name, or null for the default) picks the context the other
 * fields are read in. */
static cs_status pick_model(const api_parse_ctx *c, const json_body *jb, api_parse_ctx *out,
                            request_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(jb->root, "model");
    char *name = NULL;
    cs_status st = v ? json_get_string(v, "model", true, &name, e) : CS_OK;
    if (st == CS_OK) st = request_ctx_pick(c, name, false, "model", out, e);
    free(name);
    return st;
}

cs_status request_parse(const char *body, size_t len, const api_parse_ctx *base, request_gen *out,
                        request_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    out->seed_random = true;
    out->preview_every = -1;
    api_parse_ctx ctx = *base;
    json_body *jb = malloc(sizeof *jb);
    cs_status st = jb ? json_body_parse(body, len, jb, e)
                      : request_fail(e, "internal", NULL, "out of memory");
    const bool parsed = st == CS_OK;
    if (st == CS_OK) st = pick_model(base, jb, &ctx, e);
    out->p = ctx.defaults;
    out->model = ctx.model_index;
    int k = 0;
    for (const cJSON *c = st == CS_OK ? jb->root->child : NULL; st == CS_OK && c;
         c = c->next, k++) {
        if (!known_field(c->string)) {
            st = request_fail(e, "invalid_parameter", c->string,
                              "unknown field \"%.48s\" (fields: model, prompt, negative_prompt, "
                              "guidance_scale, steps, seed, width, height, sampler, karras, "
                              "num_images, guidance_rescale, guidance_interval, clip_skip, eta, "
                              "loras, stream, init_image, mask, strength, inpaint_fill, "
                              "resize_mode, preview_every)",
                              c->string);
            break;
        }
        size_t raw_len;
        const char *raw = json_body_raw(jb, k, &raw_len);
        st = apply_field(c->string, c, raw, raw_len, &ctx.limits, out, e);
    }
    if (parsed) json_body_free(jb);
    free(jb);
    if (st == CS_OK && !out->prompt)
        st = request_fail(e, "invalid_parameter", "prompt", "prompt is required (a string)");
    if (st == CS_OK) st = request_resolve_image_size(out, "init_image", e);
    if (st == CS_OK) {
        out->p.prompt = out->prompt;
        out->p.negative_prompt = out->negative_prompt ? out->negative_prompt : "";
        out->p.sampler = out->sampler;
        if (out->seed_random) out->p.seed = request_random_seed();
        const char *field = NULL;
        char msg[256];
        if (ctx.model && cs_params_validate(ctx.model, &out->p, &field, msg, sizeof msg) != CS_OK)
            st = request_fail(e, "invalid_parameter", field, "%s", msg);
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
    ok = ok && cJSON_AddNumberToObject(o, "clip_skip", p->clip_skip + 1) && /* A1111 count */
         cJSON_AddNumberToObject(o, "eta", p->eta);
    if (ok && p->init_image) ok = cJSON_AddNumberToObject(o, "strength", p->strength) != NULL;
    if (ok && p->init_image) ok = cJSON_AddBoolToObject(o, "mask", p->mask != NULL) != NULL;
    if (ok && p->mask && p->inpaint_fill >= 0 && p->inpaint_fill < 4)
        ok = cJSON_AddStringToObject(o, "inpaint_fill", k_fill_names[p->inpaint_fill]) != NULL;
    cJSON *loras = ok && p->num_loras > 0 ? cJSON_AddArrayToObject(o, "loras") : NULL;
    for (int i = 0; loras && i < p->num_loras; i++) {
        cJSON *l = ok ? cJSON_CreateObject() : NULL;
        ok = ok && l && cJSON_AddItemToArray(loras, l) &&
             cJSON_AddStringToObject(l, "name", p->loras[i].name) &&
             cJSON_AddNumberToObject(l, "weight", p->loras[i].weight);
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    char *ascii = text ? json_ascii(text) : NULL;
    free(text);
    return ascii;
}
