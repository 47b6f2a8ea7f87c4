/*
 * The AUTOMATIC1111 web UI's API, POST /sdapi/v1/txt2img and /img2img: its JSON fields
 * with its defaults and types (modules/api/models.py), its answer
 * {images: [base64 PNG with infotext], parameters: {the request with defaults},
 *  info: "<JSON text: seed, all_seeds, infotexts, ...>"},
 * and its errors: FastAPI's 422 {"detail": [{"loc": ["body", field], "msg", "type"}]} for a
 * field of the wrong type or range, {"error", "detail", "body", "errors"} otherwise (404
 * "Sampler not found").
 *
 * What the engine does not have is refused with a clear 422 when asked for (hires fix,
 * scripts, face restoration, tiling, other schedulers); settings without effect here
 * (save_images, styles, mask_blur, subseeds...) are accepted and logged. Fields the web UI
 * does not know are ignored, as pydantic does. Prompts are read in the web UI's language
 * (emphasis, BREAK, <lora:name:weight> tags), and "Clip skip" applies to both prompts.
 */
#include "a1111.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a1111_names.h"
#include "log.h"

static void data_free(void *p) {
    a1111_data *d = p;
    if (!d) return;
    cJSON_Delete(d->echo);
    free(d->task_id);
    free(d);
}

/* The web UI's defaults of the fields this server echoes back in "parameters". */
static cJSON *default_echo(const api_parse_ctx *c, bool img2img) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "prompt", "");
    cJSON_AddStringToObject(o, "negative_prompt", "");
    cJSON_AddNullToObject(o, "styles");
    cJSON_AddNumberToObject(o, "seed", -1);
    cJSON_AddNumberToObject(o, "subseed", -1);
    cJSON_AddNumberToObject(o, "subseed_strength", 0);
    cJSON_AddNumberToObject(o, "seed_resize_from_h", -1);
    cJSON_AddNumberToObject(o, "seed_resize_from_w", -1);
    cJSON_AddNullToObject(o, "sampler_name");
    cJSON_AddNullToObject(o, "scheduler");
    cJSON_AddNumberToObject(o, "batch_size", 1);
    cJSON_AddNumberToObject(o, "n_iter", 1);
    cJSON_AddNumberToObject(o, "steps", 50);
    cJSON_AddNumberToObject(o, "cfg_scale", 7.0);
    cJSON_AddNumberToObject(o, "width", c->defaults.width);
    cJSON_AddNumberToObject(o, "height", c->defaults.height);
    cJSON_AddNullToObject(o, "restore_faces");
    cJSON_AddNullToObject(o, "tiling");
    cJSON_AddFalseToObject(o, "do_not_save_samples");
    cJSON_AddFalseToObject(o, "do_not_save_grid");
    cJSON_AddNullToObject(o, "eta");
    if (img2img)
        cJSON_AddNumberToObject(o, "denoising_strength", 0.75);
    else
        cJSON_AddNullToObject(o, "denoising_strength");
    cJSON_AddNullToObject(o, "override_settings");
    cJSON_AddTrueToObject(o, "override_settings_restore_afterwards");
    cJSON_AddFalseToObject(o, "disable_extra_networks");
    if (img2img) {
        cJSON_AddNullToObject(o, "init_images");
        cJSON_AddNullToObject(o, "mask");
        cJSON_AddNumberToObject(o, "resize_mode", 0);
        cJSON_AddNumberToObject(o, "mask_blur", 4);
        cJSON_AddNumberToObject(o, "inpainting_fill", 0);
        cJSON_AddFalseToObject(o, "inpaint_full_res");
        cJSON_AddNumberToObject(o, "inpaint_full_res_padding", 0);
        cJSON_AddNumberToObject(o, "inpainting_mask_invert", 0);
    } else {
        cJSON_AddFalseToObject(o, "enable_hr");
    }
    cJSON_AddStringToObject(o, "sampler_index", "Euler");
    cJSON_AddNullToObject(o, "script_name");
    cJSON_AddItemToObject(o, "script_args", cJSON_CreateArray());
    cJSON_AddTrueToObject(o, "send_images");
    cJSON_AddFalseToObject(o, "save_images");
    cJSON_AddItemToObject(o, "alwayson_scripts", cJSON_CreateObject());
    cJSON_AddNullToObject(o, "infotext");
    return o;
}

/* Fields that ask for something the engine does not do: refused unless null, false,
 * 0 or empty. */
static const char *const k_refused[] = {"enable_hr", "restore_faces", "tiling", "script_name",
                                        "alwayson_scripts", "refiner_checkpoint",
                                        "firstpass_image", "infotext", NULL};
/* Fields accepted without effect (logged when set to something other than the default). */
static const char *const k_ignored[] = {"styles", "save_images", "do_not_save_samples",
                                        "do_not_save_grid", "subseed", "subseed_strength",
                                        "seed_resize_from_h", "seed_resize_from_w",
                                        "override_settings_restore_afterwards", "script_args",
                                        "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise",
                                        "comments", "disable_extra_networks", "force_task_id",
                                        "mask_blur", "inpaint_full_res",
                                        "inpaint_full_res_padding",
                                        "include_init_images", NULL};

static bool in_list(const char *const *list, const char *f) {
    for (; *list; list++)
        if (!strcmp(*list, f)) return true;
    return false;
}

/* null, false, 0, "", [] and {} ask for nothing. */
static bool is_unset(const cJSON *v) {
    return cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsNumber(v) && v->valuedouble == 0) ||
           (cJSON_IsString(v) && !v->valuestring[0]) ||
           ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child);
}

/* The <lora:name:weight[:unet weight]> tags of the web UI's extra networks, taken out of
 * the prompt (replaced by nothing, as the web UI does) into r->loras. */
static cs_status take_lora_tags(char *prompt, request_gen *r, request_error *e) {
    char *w = prompt;
    for (char *p = prompt; *p;) {
        char *end = *p == '<' ? strchr(p + 1, '>') : NULL;
        char *colon = end ? memchr(p + 1, ':', (size_t)(end - p - 1)) : NULL;
        bool word = colon && colon > p + 1;
        for (char *q = p + 1; word && q < colon; q++)
            word = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                   (*q >= '0' && *q <= '9') || *q == '_';
        if (!word || end == colon + 1) {
            *w++ = *p++;
            continue;
        }
        const size_t kind_len = (size_t)(colon - p - 1);
        if (!(kind_len == 4 && !strncmp(p + 1, "lora", 4)) &&
            !(kind_len == 4 && !strncmp(p + 1, "lyco", 4)))
            return request_fail(e, "invalid_parameter", "prompt",
                                "prompt: <%.*s:...> extra networks are not supported (only "
                                "<lora:name:weight>)",
                                (int)kind_len, p + 1);
        char args[512], *save = NULL;
        snprintf(args, sizeof args, "%.*s", (int)(end - colon - 1), colon + 1);
        char *name = strtok_r(args, ":", &save), *te = strtok_r(NULL, ":", &save);
        char *unet = strtok_r(NULL, ":", &save);
        double weight = 1.0, unet_w;
        char *stop = NULL;
        if (!name) /* "<lora::>": strtok_r finds no name at all */
            return request_fail(e, "invalid_parameter", "prompt",
                                "prompt: <%.*s:...>: the LoRA name is empty", (int)kind_len,
                                p + 1);
        if (te && (weight = strtod(te, &stop), *stop || !isfinite(weight)))
            return request_fail(e, "invalid_parameter", "prompt",
                                "prompt: <lora:%s:%s>: the weight is not a number", name, te);
        if (unet && ((unet_w = strtod(unet, &stop)), *stop || unet_w != weight))
            return request_fail(e, "invalid_parameter", "prompt",
                                "prompt: <lora:%s:%s:%s>: a separate UNet weight is not supported "
                                "(one weight applies to the text encoder and the UNet)",
                                name, te, unet);
        if (r->p.num_loras == CS_MAX_LORAS_PER_JOB)
            return request_fail(e, "invalid_parameter", "prompt", "prompt: more than %d LoRAs",
                                CS_MAX_LORAS_PER_JOB);
        cs_lora_spec *grown = realloc(r->loras, (size_t)(r->p.num_loras + 1) * sizeof *grown);
        if (!grown) return request_fail(e, "internal", NULL, "out of memory");
        r->loras = grown;
        r->p.loras = grown;
        if (!(grown[r->p.num_loras].name = strdup(name)))
            return request_fail(e, "internal", NULL, "out of memory");
        grown[r->p.num_loras++].weight = weight;
        p = end + 1;
    }
    *w = '\0';
    return CS_OK;
}

/* A seed field: -1 or null = random (the web UI draws below 2^32, which keeps the seed
 * exact in JavaScript clients); otherwise 0 .. 2^53. */
static cs_status get_seed(const cJSON *v, request_gen *r, request_error *e) {
    if (cJSON_IsNull(v) || (cJSON_IsNumber(v) && v->valuedouble == -1)) {
        r->seed_random = true;
        return CS_OK;
    }
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(x) || x != floor(x) || x < 0 || x > 9007199254740992.0)
        return request_fail(e, "invalid_parameter", "seed",
                            "seed must be -1 (random) or an integer >= 0");
    r->p.seed = (uint64_t)x;
    r->seed_random = false;
    return CS_OK;
}

/* override_settings: CLIP_stop_at_last_layers and sd_model_checkpoint act; others are
 * logged and ignored. */
static cs_status get_overrides(const cJSON *v, const api_parse_ctx *c, request_gen *r,
                               request_error *e) {
    if (cJSON_IsNull(v)) return CS_OK;
    if (!cJSON_IsObject(v))
        return request_fail(e, "invalid_parameter", "override_settings",
                            "override_settings must be an object");
    for (const cJSON *o = v->child; o; o = o->next) {
        if (!strcmp(o->string, "CLIP_stop_at_last_layers")) {
            int k;
            cs_status st = json_get_int(o, "override_settings.CLIP_stop_at_last_layers", &k, e);
            if (st != CS_OK) return st;
            if (k < 1)
                return request_fail(e, "invalid_parameter",
                                    "override_settings.CLIP_stop_at_last_layers",
                                    "CLIP_stop_at_last_layers must be >= 1 (1 = last layer)");
            r->p.clip_skip = k - 1;
        } else if (!strcmp(o->string, "sd_model_checkpoint")) {
            if (!cJSON_IsString(o)) /* a name was picked before the other fields (pick_model) */
                return request_fail(e, "invalid_parameter", "override_settings.sd_model_checkpoint",
                                    "sd_model_checkpoint must be a model's name or title");
        } else {
            log_msg(CS_LOG_INFO, "a1111: override_settings.%s ignored", o->string);
        }
    }
    return CS_OK;
}

/* One member of the body. */
static cs_status apply_field(const api_parse_ctx *c, const cJSON *v, request_gen *r,
                             a1111_data *d, char **sampler_name, char **sampler_index,
                             char **scheduler, request_error *e) {
    const char *f = v->string;
    cs_gen_params *p = &r->p;
    int k;
    bool b;
    if (!strcmp(f, "prompt")) return json_get_string(v, f, true, &r->prompt, e);
    if (!strcmp(f, "negative_prompt")) return json_get_string(v, f, true, &r->negative_prompt, e);
    if (!strcmp(f, "sampler_name")) return json_get_string(v, f, true, sampler_name, e);
    if (!strcmp(f, "sampler_index")) return json_get_string(v, f, true, sampler_index, e);
    if (!strcmp(f, "scheduler")) return json_get_string(v, f, true, scheduler, e);
    if (!strcmp(f, "seed")) return get_seed(v, r, e);
    if (!strcmp(f, "steps")) return json_get_int(v, f, &p->steps, e);
    if (!strcmp(f, "cfg_scale")) return json_get_number(v, f, &p->guidance_scale, e);
    if (!strcmp(f, "width")) return json_get_int(v, f, &p->width, e);
    if (!strcmp(f, "height")) return json_get_int(v, f, &p->height, e);
    if (!strcmp(f, "eta")) return cJSON_IsNull(v) ? CS_OK : json_get_number(v, f, &p->eta, e);
    if (!strcmp(f, "override_settings")) return get_overrides(v, c, r, e);
    if (!strcmp(f, "send_images")) return json_get_bool(v, f, &d->send_images, e);
    if (!strcmp(f, "batch_size") || !strcmp(f, "n_iter")) {
        cs_status st = json_get_int(v, f, &k, e);
        if (st == CS_OK && k < 1) return request_fail(e, "invalid_parameter", f, "%s must be >= 1", f);
        *(f[0] == 'b' ? &d->batch_size : &d->n_iter) = k;
        return st;
    }
    if (!strcmp(f, "denoising_strength")) {
        if (cJSON_IsNull(v)) return CS_OK;
        return json_get_number(v, f, &d->denoising_strength, e);
    }
    if (!strcmp(f, "inpainting_mask_invert")) {
        cs_status st = cJSON_IsBool(v) ? json_get_bool(v, f, &b, e) : json_get_int(v, f, &k, e);
        d->mask_invert = cJSON_IsBool(v) ? b : k != 0;
        return st;
    }
    if (!strcmp(f, "inpainting_fill")) {
        cs_status st = json_get_int(v, f, &d->inpainting_fill, e);
        if (st == CS_OK && (d->inpainting_fill < 0 || d->inpainting_fill > 3))
            return request_fail(e, "invalid_parameter", f, "inpainting_fill must be 0..3");
        return st;
    }
    if (!strcmp(f, "resize_mode")) {
        if (!d->img2img) return CS_OK; /* the web UI's txt2img has no such field: ignored */
        if (cJSON_IsNumber(v) && v->valuedouble == 3) { /* latent upscale: not implemented */
            log_msg(CS_LOG_INFO, "a1111: resize_mode 3 (latent upscale) is done as 0");
            return CS_OK;
        }
        return request_resize_mode_field(v, f, r, e);
    }
    if (!strcmp(f, "init_images") || !strcmp(f, "mask")) {
        if (!d->img2img && !cJSON_IsNull(v))
            return request_fail(e, "invalid_parameter", f, "%s belongs to /sdapi/v1/img2img", f);
        return CS_OK; /* read by the img2img parser */
    }
    if (in_list(k_refused, f)) {
        if (is_unset(v)) return CS_OK;
        return request_fail(e, "invalid_parameter", f,
                            "%s is not supported by this server (cfgserve)", f);
    }
    if (in_list(k_ignored, f)) {
        if (!is_unset(v) && strcmp(f, "override_settings_restore_afterwards"))
            log_msg(CS_LOG_INFO, "a1111: %s has no effect here; ignored", f);
        if (!strcmp(f, "force_task_id") && cJSON_IsString(v) && !(d->task_id = strdup(v->valuestring)))
            return request_fail(e, "internal", NULL, "out of memory");
        return CS_OK;
    }
    return CS_OK; /* unknown to the web UI too: pydantic ignores it */
}

/* Sampler and scheduler, with the web UI's precedence (sampler_name, else sampler_index). */
static cs_status set_sampler(const char *sampler_name, const char *sampler_index,
                             const char *scheduler, request_gen *r, a1111_data *d,
                             request_error *e) {
    const char *name = sampler_name && sampler_name[0] ? sampler_name
                       : sampler_index              ? sampler_index
                                                    : "Euler";
    const a1111_sampler *s = a1111_find_sampler(name);
    if (!s) return request_fail(e, "not_found", "sampler_name", "Sampler not found");
    bool karras = false;
    if (!a1111_scheduler_karras(scheduler, s, &karras))
        return request_fail(e, "invalid_parameter", "scheduler",
                            "scheduler \"%.40s\" is not supported (Automatic, Uniform, Karras)",
                            scheduler);
    if (!(r->sampler = strdup(s->engine))) return request_fail(e, "internal", NULL, "out of memory");
    r->p.karras = karras;
    snprintf(d->sampler_label, sizeof d->sampler_label, "%s", a1111_sampler_label(s->engine));
    snprintf(d->scheduler_label, sizeof d->scheduler_label, "%s", karras ? "Karras" : "Uniform");
    return CS_OK;
}

/* override_settings.sd_model_checkpoint (a served model's name or title) picks the model;
 * a value of another type is left for get_overrides to refuse. */
static cs_status pick_model(const api_parse_ctx *base, const json_body *jb, api_parse_ctx *c,
                            request_error *e) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(jb->root, "override_settings");
    const cJSON *v = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "sd_model_checkpoint")
                                       : NULL;
    cs_status st = request_ctx_pick(base, cJSON_IsString(v) ? v->valuestring : NULL, true,
                                    "override_settings.sd_model_checkpoint", c, e);
    if (st != CS_OK) e->code = "invalid_parameter"; /* the web UI: a validation error, 422 */
    return st;
}

cs_status a1111_parse_common(const api_parse_ctx *base, const char *body, size_t len,
                             bool img2img, json_body *jb, api_parse_ctx *c, request_gen *out,
                             request_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    *c = *base;
    cs_status st = json_body_parse(body, len, jb, e);
    if (st != CS_OK) return st;
    if ((st = pick_model(base, jb, c, e)) != CS_OK) {
        json_body_free(jb);
        return st;
    }
    out->model = c->model_index;
    out->p = c->defaults;
    out->p.guidance_scale = 7.0;
    out->p.steps = 50;
    out->p.prompt_syntax = CS_PROMPT_A1111;
    out->seed_random = true;
    a1111_data *d = calloc(1, sizeof *d);
    if (!d) {
        json_body_free(jb);
        return request_fail(e, "internal", NULL, "out of memory");
    }
    *d = (a1111_data){.send_images = true, .img2img = img2img, .batch_size = 1, .n_iter = 1,
                      .denoising_strength = 0.75, .inpainting_fill = 0};
    out->dialect_data = d;
    out->dialect_free = data_free;
    char *sampler_name = NULL, *sampler_index = NULL, *scheduler = NULL;
    for (const cJSON *v = jb->root->child; st == CS_OK && v; v = v->next)
        st = apply_field(c, v, out, d, &sampler_name, &sampler_index, &scheduler, e);
    if (st == CS_OK) st = set_sampler(sampler_name, sampler_index, scheduler, out, d, e);
    free(sampler_name);
    free(sampler_index);
    free(scheduler);
    if (st == CS_OK && (!out->prompt && !(out->prompt = strdup(""))))
        st = request_fail(e, "internal", NULL, "out of memory");
    if (st == CS_OK) st = take_lora_tags(out->prompt, out, e);
    if (st == CS_OK && d->batch_size * (long)d->n_iter > CS_MAX_IMAGES_PER_JOB)
        st = request_fail(e, "invalid_parameter", "batch_size",
                          "batch_size x n_iter must be at most %d", CS_MAX_IMAGES_PER_JOB);
    const int most[2] = {c->limits.max_width, c->limits.max_height};
    const int dims[2] = {out->p.width, out->p.height};
    for (int i = 0; st == CS_OK && i < 2; i++)
        if (most[i] > 0 && dims[i] > most[i])
            st = request_fail(e, "invalid_parameter", i ? "height" : "width",
                              "%s must be at most %d on this server (got %d)",
                              i ? "height" : "width", most[i], dims[i]);
    if (st == CS_OK) {
        out->p.num_images = d->batch_size * d->n_iter;
        out->p.prompt = out->prompt;
        out->p.negative_prompt = out->negative_prompt ? out->negative_prompt : "";
        out->p.sampler = out->sampler;
        if (out->seed_random) out->p.seed = request_random_seed() % 4294967295u;
        /* The echo: the web UI's defaults, then what the client sent. */
        d->echo = default_echo(c, img2img);
        for (const cJSON *v = jb->root->child; d->echo && v; v = v->next) {
            if (!strcmp(v->string, "init_images") || !strcmp(v->string, "mask")) continue;
            cJSON *copy = cJSON_Duplicate(v, 1);
            if (copy) cJSON_ReplaceItemInObjectCaseSensitive(d->echo, v->string, copy);
            if (copy && !cJSON_GetObjectItemCaseSensitive(d->echo, v->string))
                cJSON_AddItemToObject(d->echo, v->string, copy);
        }
        if (!d->echo) st = request_fail(e, "internal", NULL, "out of memory");
    }
    if (st != CS_OK) {
        json_body_free(jb);
        request_gen_deinit(out);
    }
    return st;
}

cs_status a1111_validate(const api_parse_ctx *c, request_gen *out, request_error *e) {
    const char *field = NULL;
    char msg[256];
    if (c->model && cs_params_validate(c->model, &out->p, &field, msg, sizeof msg) != CS_OK) {
        /* Name the field the way the web UI's client knows it. */
        static const struct { const char *ours, *theirs; } k_names[] = {
            {"guidance_scale", "cfg_scale"}, {"num_images", "batch_size"},
            {"sampler", "sampler_name"}, {"clip_skip", "override_settings.CLIP_stop_at_last_layers"},
            {"strength", "denoising_strength"}, {"init_image", "init_images"},
            {"loras", "prompt"}};
        for (size_t i = 0; field && i < sizeof k_names / sizeof k_names[0]; i++)
            if (!strcmp(field, k_names[i].ours)) field = k_names[i].theirs;
        request_fail(e, "invalid_parameter", field, "%s", msg);
        request_gen_deinit(out);
        return CS_ERR_INVALID_ARG;
    }
    return CS_OK;
}

static cs_status parse_txt2img(const api_parse_ctx *base, const char *body, size_t len,
                               request_gen *out, request_error *e) {
    json_body jb;
    api_parse_ctx c;
    cs_status st = a1111_parse_common(base, body, len, false, &jb, &c, out, e);
    if (st != CS_OK) return st;
    json_body_free(&jb);
    return a1111_validate(&c, out, e);
}

static cs_status parse_none(const api_parse_ctx *c, const char *body, size_t len,
                            request_gen *out, request_error *e) {
    (void)c, (void)body, (void)len, (void)out;
    return request_fail(e, "internal", NULL, "this route takes no generation request");
}

static char *render_none(const request_gen *g, const api_result *res, size_t *len) {
    (void)g, (void)res, (void)len;
    return NULL;
}

const api_dialect api_a1111_txt2img = {"a1111", parse_txt2img, a1111_render_result,
                                       a1111_render_error, NULL};
const api_dialect api_a1111_other = {"a1111", parse_none, render_none, a1111_render_error, NULL};
