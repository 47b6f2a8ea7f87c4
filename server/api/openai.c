/*
 * OpenAI's images API, POST /v1/images/generations (and the fields /v1/images/edits shares,
 * openai_edits.c): its JSON fields, its answer {created, data: [{b64_json} | {url}], size,
 * output_format} and its error shape {"error": {message, type, param, code}}.
 *
 * Fields: prompt (required), n (1..CS_MAX_IMAGES_PER_JOB, default 1), size "WxH" or "auto"
 * (default: the model's native size; any size the model accepts), response_format
 * "b64_json" (default) | "url", output_format "png" only. model: absent (what the official
 * SDK sends by default), the served model's name, or an OpenAI image model name
 * ("dall-e-2", "dall-e-3", "gpt-image-*"), which is taken as an alias of the served model
 * so clients configured for OpenAI work unchanged; any other name is a 404 model_not_found.
 * quality, style, user, background, moderation, input_fidelity, output_compression are
 * accepted and ignored; stream and partial_images are refused unless off. Extensions (not
 * in OpenAI's API): negative_prompt, guidance_scale, steps, seed, sampler, karras, and for
 * edits strength. Any other field is a 400 unknown_parameter, as OpenAI answers.
 */
#include "openai.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "job_id.h"

static void data_free(void *p) { free(p); }

/* OpenAI's own image model names stand for the default model, so clients configured for
 * OpenAI work unchanged. */
static bool openai_alias(const char *name) {
    return !strncmp(name, "dall-e-", 7) || !strncmp(name, "gpt-image-", 10);
}

cs_status openai_begin(const api_parse_ctx *base, const char *model, api_parse_ctx *c,
                       request_gen *out, request_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    cs_status st = request_ctx_pick(base, model && !openai_alias(model) ? model : NULL, false,
                                    "model", c, e);
    if (st != CS_OK) return st;
    out->model = c->model_index;
    out->p = c->defaults;
    out->p.num_images = 1;
    out->seed_random = true;
    openai_data *d = calloc(1, sizeof *d);
    if (!d) return request_fail(e, "internal", NULL, "out of memory");
    out->dialect_data = d;
    out->dialect_free = data_free;
    return CS_OK;
}

/* A string or null; *out (borrowed) is NULL for null. */
static cs_status opt_string(const cJSON *v, const char *f, const char **out, request_error *e) {
    if (cJSON_IsNull(v)) {
        *out = NULL;
        return CS_OK;
    }
    if (!cJSON_IsString(v))
        return request_fail(e, "invalid_type", f, "Invalid type for '%s': expected a string.", f);
    *out = v->valuestring;
    return CS_OK;
}

/* "WxH" with positive integers, or "auto" (the default size). */
static cs_status get_size(const cJSON *v, request_gen *r, openai_data *d, request_error *e) {
    const char *s = NULL;
    cs_status st = opt_string(v, "size", &s, e);
    if (st != CS_OK || !s || !strcmp(s, "auto")) return st;
    unsigned w = 0, h = 0;
    char tail = 0;
    if (sscanf(s, "%5ux%5u%c", &w, &h, &tail) != 2 || !w || !h || s[0] < '0' || s[0] > '9')
        return request_fail(e, "invalid_value", "size",
                            "Invalid value for 'size': '%.40s'. Expected \"WIDTHxHEIGHT\" (e.g. "
                            "\"512x512\") or \"auto\".",
                            s);
    r->p.width = (int)w;
    r->p.height = (int)h;
    d->size_given = true;
    return CS_OK;
}

/* A seed: an integer in [0, 2^64), or -1 / null for a random one; raw is its exact text. */
static cs_status get_seed(const cJSON *v, const char *raw, size_t len, request_gen *r,
                          request_error *e) {
    if (cJSON_IsNull(v) || (len == 2 && !strncmp(raw, "-1", 2))) {
        r->seed_random = true;
        return CS_OK;
    }
    uint64_t s = 0;
    bool ok = cJSON_IsNumber(v) && len > 0 && len <= 20;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned dgt = (unsigned)(raw[i] - '0');
        ok = dgt <= 9 && s <= (UINT64_MAX - dgt) / 10;
        s = s * 10 + dgt;
    }
    if (!ok)
        return request_fail(e, "invalid_value", "seed",
                            "Invalid value for 'seed': an integer in [0, 2^64), or -1 for random.");
    r->p.seed = s;
    r->seed_random = false;
    return CS_OK;
}

/* Accepted-and-ignored fields: any string (or null). */
static const char *const k_ignored_strings[] = {"quality", "style", "user", "background",
                                                "moderation", "input_fidelity", NULL};

cs_status openai_apply_field(const api_parse_ctx *c, const cJSON *v, const char *raw,
                             size_t raw_len, bool edits, request_gen *r, request_error *e) {
    openai_data *d = r->dialect_data;
    const char *f = v->string, *s = NULL;
    cs_status st;
    if (!strcmp(f, "prompt")) {
        if (!cJSON_IsString(v))
            return request_fail(e, "invalid_type", f, "Invalid type for 'prompt': expected a string.");
        free(r->prompt);
        return (r->prompt = strdup(v->valuestring)) ? CS_OK
                                                     : request_fail(e, "internal", NULL, "out of memory");
    }
    if (!strcmp(f, "n")) {
        if (cJSON_IsNull(v)) return CS_OK;
        int n;
        if ((st = json_get_int(v, f, &n, e)) != CS_OK) return st;
        if (n < 1 || n > CS_MAX_IMAGES_PER_JOB)
            return request_fail(e, "invalid_value", f,
                                "Invalid value for 'n': %d. It must be between 1 and %d.", n,
                                CS_MAX_IMAGES_PER_JOB);
        r->p.num_images = n;
        return CS_OK;
    }
    if (!strcmp(f, "size")) return get_size(v, r, d, e);
    if (!strcmp(f, "response_format")) {
        if ((st = opt_string(v, f, &s, e)) != CS_OK || !s) return st;
        if (strcmp(s, "b64_json") && strcmp(s, "url"))
            return request_fail(e, "invalid_value", f,
                                "Invalid value for 'response_format': '%.40s'. Supported values "
                                "are: 'b64_json' and 'url'.",
                                s);
        d->url = !strcmp(s, "url");
        return CS_OK;
    }
    if (!strcmp(f, "model")) return opt_string(v, f, &s, e); /* picked by openai_begin */
    if (!strcmp(f, "output_format")) {
        if ((st = opt_string(v, f, &s, e)) != CS_OK || !s || !strcmp(s, "png")) return st;
        return request_fail(e, "invalid_value", f,
                            "Invalid value for 'output_format': '%.40s'. This server writes 'png' only.",
                            s);
    }
    if (!strcmp(f, "stream") || !strcmp(f, "partial_images")) {
        if (cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsNumber(v) && v->valuedouble == 0))
            return CS_OK;
        return request_fail(e, "invalid_value", f,
                            "'%s' is not supported by this server: the answer is one JSON "
                            "document (use the native API's POST /generate with \"stream\": "
                            "true for progress events).",
                            f);
    }
    if (!strcmp(f, "output_compression")) {
        double x;
        return cJSON_IsNull(v) ? CS_OK : json_get_number(v, f, &x, e);
    }
    for (const char *const *k = k_ignored_strings; *k; k++)
        if (!strcmp(f, *k)) return opt_string(v, f, &s, e);
    /* Extensions. */
    if (!strcmp(f, "negative_prompt")) return json_get_string(v, f, true, &r->negative_prompt, e);
    if (!strcmp(f, "sampler")) return json_get_string(v, f, true, &r->sampler, e);
    if (!strcmp(f, "guidance_scale")) return json_get_number(v, f, &r->p.guidance_scale, e);
    if (!strcmp(f, "steps")) return json_get_int(v, f, &r->p.steps, e);
    if (!strcmp(f, "karras")) {
        bool b = false;
        st = json_get_bool(v, f, &b, e);
        r->p.karras = b;
        return st;
    }
    if (!strcmp(f, "seed")) return get_seed(v, raw, raw_len, r, e);
    if (edits && !strcmp(f, "strength")) {
        if ((st = json_get_number(v, f, &r->p.strength, e)) == CS_OK) d->strength_given = true;
        return st;
    }
    return request_fail(e, "unknown_parameter", f, "Unknown parameter: '%.50s'.", f);
}

cs_status openai_finish(const api_parse_ctx *c, request_gen *out, request_error *e) {
    const int most[2] = {c->limits.max_width, c->limits.max_height};
    const int dims[2] = {out->p.width, out->p.height};
    if (!out->prompt)
        return request_fail(e, "missing_required_parameter", "prompt",
                            "Missing required parameter: 'prompt'.");
    for (int i = 0; i < 2; i++)
        if (most[i] > 0 && dims[i] > most[i])
            return request_fail(e, "invalid_value", "size",
                                "Invalid value for 'size': %dx%d. The largest size on this server "
                                "is %dx%d.",
                                dims[0], dims[1], most[0], most[1]);
    out->p.prompt = out->prompt;
    out->p.negative_prompt = out->negative_prompt ? out->negative_prompt : "";
    out->p.sampler = out->sampler;
    if (out->seed_random) out->p.seed = request_random_seed();
    const char *field = NULL;
    char msg[256];
    if (c->model && cs_params_validate(c->model, &out->p, &field, msg, sizeof msg) != CS_OK) {
        static const struct { const char *ours, *theirs; } k_names[] = {
            {"num_images", "n"}, {"width", "size"}, {"height", "size"}, {"init_image", "image"}};
        for (size_t i = 0; field && i < sizeof k_names / sizeof k_names[0]; i++)
            if (!strcmp(field, k_names[i].ours)) field = k_names[i].theirs;
        return request_fail(e, "invalid_value", field, "%s", msg);
    }
    return CS_OK;
}

static cs_status parse_generations(const api_parse_ctx *base, const char *body, size_t len,
                                   request_gen *out, request_error *e) {
    json_body jb;
    api_parse_ctx c;
    memset(out, 0, sizeof *out);
    cs_status st = json_body_parse(body, len, &jb, e);
    if (st != CS_OK) return st;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(jb.root, "model");
    st = openai_begin(base, cJSON_IsString(model) ? model->valuestring : NULL, &c, out, e);
    int k = 0;
    for (const cJSON *v = jb.root->child; st == CS_OK && v; v = v->next, k++) {
        size_t raw_len = 0;
        const char *raw = json_body_raw(&jb, k, &raw_len);
        st = openai_apply_field(&c, v, raw, raw_len, false, out, e);
    }
    json_body_free(&jb);
    if (st == CS_OK) st = openai_finish(&c, out, e);
    if (st != CS_OK) request_gen_deinit(out);
    return st;
}

/* {"created": unix seconds, "data": [{"b64_json": ...} | {"url": ...}], "size": "WxH",
 * "output_format": "png"}. */
static char *render_result(const request_gen *g, const api_result *res, size_t *len) {
    const openai_data *d = g->dialect_data;
    char id[JOB_ID_TEXT_SIZE], text[64];
    cJSON *root = cJSON_CreateObject();
    cJSON *data = root ? cJSON_AddArrayToObject(root, "data") : NULL;
    bool ok = data && cJSON_AddNumberToObject(root, "created", (double)time(NULL));
    job_id_format(res->job_id, id);
    for (int i = 0; ok && i < res->n_images; i++) {
        cJSON *img = cJSON_CreateObject();
        char *value = NULL;
        if (d && d->url) {
            size_t n = strlen(res->base_url ? res->base_url : "") + strlen(id) + 48;
            if ((value = malloc(n)))
                snprintf(value, n, "%s/v1/images/files/%s/%d.png",
                         res->base_url ? res->base_url : "", id, i);
        } else {
            value = base64_encode(res->png[i], res->png_len[i]);
        }
        ok = img && value && cJSON_AddStringToObject(img, d && d->url ? "url" : "b64_json", value);
        free(value);
        if (ok) ok = cJSON_AddItemToArray(data, img);
        if (!ok) cJSON_Delete(img);
    }
    snprintf(text, sizeof text, "%dx%d", g->p.width, g->p.height);
    ok = ok && cJSON_AddStringToObject(root, "size", text) &&
         cJSON_AddStringToObject(root, "output_format", "png");
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return api_print_json(root, len);
}

/* OpenAI's error "type" and "code" for this server's error codes. */
static void classify(const char *ours, int status, const char **type, const char **code) {
    *type = "invalid_request_error";
    *code = ours;
    if (status == 401) *code = "invalid_api_key";
    else if (status == 429) *type = "requests", *code = "rate_limit_exceeded";
    else if (status >= 500) *type = "server_error";
    if (!strcmp(ours, "invalid_parameter")) *code = "invalid_value";
    else if (!strcmp(ours, "internal")) *code = NULL;
    else if (!strcmp(ours, "not_found")) *code = NULL; /* OpenAI's unknown routes: null */
}

static char *render_error(const request_error *e, int *status, size_t *len) {
    const char *type, *code;
    classify(e->code ? e->code : "internal", *status, &type, &code);
    if (*status == 404 && !strcmp(e->field, "model")) code = "model_not_found";
    cJSON *root = cJSON_CreateObject(), *err = cJSON_CreateObject();
    if (!root || !err || !cJSON_AddItemToObject(root, "error", err)) {
        cJSON_Delete(root);
        cJSON_Delete(err);
        return NULL;
    }
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", type);
    if (e->field[0])
        cJSON_AddStringToObject(err, "param", e->field);
    else
        cJSON_AddNullToObject(err, "param");
    if (code)
        cJSON_AddStringToObject(err, "code", code);
    else
        cJSON_AddNullToObject(err, "code");
    return api_print_json(root, len);
}

static cs_status parse_none(const api_parse_ctx *c, const char *body, size_t len,
                            request_gen *out, request_error *e) {
    (void)c, (void)body, (void)len, (void)out;
    return request_fail(e, "internal", NULL, "this route takes no generation request");
}

/* Edits come as multipart/form-data only (parse_form, openai_edits.c). */
static cs_status parse_edits_json(const api_parse_ctx *c, const char *body, size_t len,
                                  request_gen *out, request_error *e) {
    (void)c, (void)body, (void)len, (void)out;
    return request_fail(e, "invalid_request", NULL,
                        "/v1/images/edits takes a multipart/form-data body (image, mask, prompt, ...)");
}

const api_dialect api_openai_generations = {"openai", parse_generations, render_result,
                                            render_error, NULL};
const api_dialect api_openai_edits = {"openai", parse_edits_json, render_result, render_error,
                                      openai_parse_edit_form};
const api_dialect api_openai_other = {"openai", parse_none, render_result, render_error, NULL};
