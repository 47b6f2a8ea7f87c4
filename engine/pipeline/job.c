/* Generation parameters, job creation and results (see job.h and cfgserve.h). */
#include "job.h"

#include <math.h>
#include <string.h>

#include "img2img.h"
#include "png_encode.h"
#include "rng.h"
#include "session.h"

enum { MAX_PROMPT_BYTES = 16384, MAX_STEPS = 500, MAX_SIDE = 2048 };

const char *const *cs_sampler_names(void) {
    return sched_sampler_names();
}

int cs_max_steps(void) {
    return MAX_STEPS;
}

cs_gen_params cs_gen_default_params(const cs_model *m) {
    return (cs_gen_params){.prompt = "", .negative_prompt = "", .guidance_scale = 7.5,
                           .steps = 50, .seed = 0, .width = (int)m->native_width,
                           .height = (int)m->native_height, .sampler = NULL, .karras = 0,
                           .num_images = 1, .strength = 0.8};
}

static cs_status check_text(const char *what, const char *s, const char **field, char *msg,
                            size_t n) {
    size_t len = strlen(s);
    if (field) *field = what;
    if (len > MAX_PROMPT_BYTES)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "%s is %zu bytes; the limit is %d", what, len,
                       MAX_PROMPT_BYTES);
    if (!cs_utf8_valid(s, len))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "%s is not valid UTF-8", what);
    return CS_OK;
}

static bool sampler_known(const char *name) {
    for (const char *const *s = sched_sampler_names(); *s; s++)
        if (strcmp(*s, name) == 0) return true;
    return false;
}

/* "ddim, pndm, ..." for error messages. */
static void sampler_list(char *buf, size_t n) {
    size_t at = 0;
    buf[0] = '\0';
    for (const char *const *s = sched_sampler_names(); *s && at < n; s++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", at ? ", " : "", *s);
}

/* A guidance-distilled model (guidance_embed_dim > 0) has no unconditional rows, so the
 * settings that act on them would be silently ignored: refused instead. */
static cs_status check_guidance_embedded(const cs_gen_params *p, const char **field, char *msg,
                                         size_t n) {
    *field = "negative_prompt";
    if (p->negative_prompt && p->negative_prompt[0])
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "this model is guidance-distilled: it runs no unconditional pass, so a "
                       "negative prompt has no effect");
    *field = "guidance_rescale";
    if (p->guidance_rescale > 0)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "this model is guidance-distilled: guidance_rescale needs the "
                       "unconditional pass it does not run");
    *field = "guidance_interval";
    if (p->guidance_hi > 0)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "this model is guidance-distilled: the guidance scale is an input of "
                       "every step, so a guidance interval cannot switch it off");
    return CS_OK;
}

cs_status cs_params_validate(const cs_model *m, const cs_gen_params *p, const char **field,
                             char *msg, size_t n) {
    const char *dummy;
    if (!field) field = &dummy;
    cs_status st;
    if (!p->prompt) {
        *field = "prompt";
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "prompt is required");
    }
    if ((st = check_text("prompt", p->prompt, field, msg, n)) != CS_OK) return st;
    if (p->negative_prompt &&
        (st = check_text("negative_prompt", p->negative_prompt, field, msg, n)) != CS_OK)
        return st;
    *field = "guidance_scale";
    if (!isfinite(p->guidance_scale) || p->guidance_scale < 0 || p->guidance_scale > 100)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "guidance_scale must be within [0, 100]");
    *field = "steps";
    if (p->steps < 1 || p->steps > MAX_STEPS)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "steps must be within [1, %d]", MAX_STEPS);
    const int mult = (int)m->size_multiple;
    const int dims[2] = {p->width, p->height};
    for (int d = 0; d < 2; d++) {
        *field = d ? "height" : "width";
        if (dims[d] < mult || dims[d] > MAX_SIDE || dims[d] % mult != 0)
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "%s must be a multiple of %d within [%d, %d] (got %d)", *field, mult,
                           mult, MAX_SIDE, dims[d]);
    }
    *field = "num_images";
    if (p->num_images < 1 || p->num_images > CS_MAX_IMAGES_PER_JOB)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "num_images must be within [1, %d]",
                       CS_MAX_IMAGES_PER_JOB);
    *field = "sampler";
    if (p->sampler && p->sampler[0] && !sampler_known(p->sampler)) {
        char list[256];
        sampler_list(list, sizeof list);
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "unknown sampler \"%.40s\" (one of: %s)",
                       p->sampler, list);
    }
    *field = "guidance_rescale";
    if (!isfinite(p->guidance_rescale) || p->guidance_rescale < 0 || p->guidance_rescale > 1)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "guidance_rescale must be within [0, 1]");
    *field = "guidance_interval";
    if (!isfinite(p->guidance_lo) || !isfinite(p->guidance_hi) || p->guidance_lo < 0 ||
        (p->guidance_hi > 0 && p->guidance_lo > p->guidance_hi))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "guidance_interval must be [lo, hi] with 0 <= lo <= hi");
    *field = "clip_skip";
    if (p->clip_skip < 0 || p->clip_skip >= text_encoder_num_layers(m->text_encoder))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "clip_skip must be within [0, %lld]",
                       (long long)text_encoder_num_layers(m->text_encoder) - 1);
    *field = "prompt_syntax";
    if (p->prompt_syntax != CS_PROMPT_PLAIN && p->prompt_syntax != CS_PROMPT_A1111)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "prompt_syntax must be CS_PROMPT_PLAIN or "
                                                  "CS_PROMPT_A1111");
    *field = "eta";
    if (!isfinite(p->eta) || p->eta < 0 || p->eta > 1)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "eta must be within [0, 1]");
    if (m->guidance_embed_dim > 0 && (st = check_guidance_embedded(p, field, msg, n)) != CS_OK)
        return st;
    *field = "loras";
    if ((st = model_loras_check(m, p->loras, p->num_loras, msg, n)) != CS_OK) return st;
    if ((st = img2img_validate(m, p, field, msg, n)) != CS_OK) return st;
    *field = NULL;
    return CS_OK;
}

static char *dup_or_empty(const char *s) {
    return strdup(s ? s : "");
}

void cs_job_free(cs_job *j) {
    if (!j) return;
    prompt_cache_release(j->model->cache, j->cond);
    prompt_cache_release(j->model->cache, j->uncond);
    model_loras_release(&j->loras);
    sched_state_free(j->sched);
    sched_config_free(j->sched_cfg);
    free(j->prompt);
    free(j->negative_prompt);
    free(j->sampler);
    free(j->latents);
    free(j->eps);
    free(j->noise);
    free(j->x0);
    free(j->image);
    free(j->rgb);
    free(j->w_embed);
    img2img_job_free(j);
    free(j);
}

cs_status cs_job_new(cs_session *s, const cs_gen_params *p, cs_job **out, char *msg, size_t n) {
    *out = NULL;
    const cs_model *m = session_model(s);
    cs_status st = cs_params_validate(m, p, NULL, msg, n);
    if (st != CS_OK) return st;
    if (!session_fits(s, p->width, p->height, p->num_images))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "%dx%d with %d image(s) exceeds what this server's sessions hold",
                       p->width, p->height, p->num_images);
    cs_job *j = cs_calloc(1, sizeof *j);
    if (!j) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    j->model = m;
    j->params = *p;
    j->prompt = dup_or_empty(p->prompt);
    j->negative_prompt = dup_or_empty(p->negative_prompt);
    j->sampler = dup_or_empty(p->sampler);
    if (!j->prompt || !j->negative_prompt || !j->sampler) goto fail_nomem;
    j->params.prompt = j->prompt;
    j->params.negative_prompt = j->negative_prompt;
    j->params.sampler = j->sampler;
    st = model_loras_acquire(m, p->loras, p->num_loras, &j->loras, msg, n);
    if (st != CS_OK) goto fail;
    j->params.loras = j->loras.n ? j->loras.specs : NULL;
    j->n_images = p->num_images;
    j->width = p->width;
    j->height = p->height;
    j->lat_h = p->height / m->vae_factor;
    j->lat_w = p->width / m->vae_factor;
    j->image_numel = m->latent_channels * j->lat_h * j->lat_w;
    const int64_t total = j->image_numel * j->n_images;

    st = sched_config_with_sampler(m->scheduler, j->sampler, p->karras != 0, &j->sched_cfg, msg, n);
    if (st != CS_OK) goto fail;
    st = sched_state_new(j->sched_cfg, p->steps, total, &j->sched, msg, n);
    if (st != CS_OK) goto fail;
    sched_set_eta(j->sched, (float)p->eta);
    j->steps = sched_num_steps(j->sched);

    j->latents = cs_malloc((size_t)total * sizeof(float));
    j->eps = cs_malloc((size_t)total * sizeof(float));
    j->noise = cs_malloc((size_t)total * sizeof(float));
    j->x0 = cs_malloc((size_t)total * sizeof(float));
    if (!j->latents || !j->eps || !j->noise || !j->x0) goto fail_nomem;
    const float sigma0 = sched_init_noise_sigma(j->sched);
    for (int i = 0; i < j->n_images; i++) {
        float *x = j->latents + i * j->image_numel;
        rng_normal_fill(p->seed + (uint64_t)i, RNG_STREAM_LATENTS, 0, x, j->image_numel);
        for (int64_t k = 0; k < j->image_numel; k++) x[k] *= sigma0;
    }

    if (m->guidance_embed_dim > 0) {
        if (!(j->w_embed = cs_malloc((size_t)m->guidance_embed_dim * sizeof(float))))
            goto fail_nomem;
        guidance_scale_embedding(p->guidance_scale, m->guidance_embed_dim, j->w_embed);
    }
    /* The unconditional embedding is needed unless guidance never uses it (s = 1, or a
     * guidance-distilled model). As in diffusers 0.27.2, clip skip applies to the prompt
     * only: the negative prompt is the last layer's output (last_hidden_state); the web
     * UI's syntax applies it to both, as the web UI does. */
    const int syntax = p->prompt_syntax;
    const int neg_skip = syntax == CS_PROMPT_A1111 ? p->clip_skip : 0;
    st = session_encode_prompt(s, j->prompt, p->clip_skip, syntax, &j->loras, &j->cond, msg, n);
    if (st == CS_OK && p->guidance_scale != 1.0 && m->guidance_embed_dim == 0)
        st = session_encode_prompt(s, j->negative_prompt, neg_skip, syntax, &j->loras, &j->uncond,
                                   msg, n);
    if (st == CS_OK && p->init_image) st = img2img_job_init(j, s, p, msg, n);
    if (st != CS_OK) goto fail;
    *out = j;
    return CS_OK;
fail_nomem:
    st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory creating a job");
fail:
    cs_job_free(j);
    return st;
}

void job_set_initial_latents(cs_job *j, const float *latents) {
    const float sigma0 = sched_init_noise_sigma(j->sched);
    for (int64_t k = 0; k < j->n_images * j->image_numel; k++) j->latents[k] = latents[k] * sigma0;
}

guidance_rows job_rows(const cs_job *j) {
    if (j->step >= j->steps) return (guidance_rows){0};
    if (j->w_embed) return (guidance_rows){.cond = true}; /* guidance-distilled */
    return guidance_rows_for(j->params.guidance_scale, sched_sigma(j->sched, j->step),
                             j->params.guidance_lo, j->params.guidance_hi);
}

void job_x0(const cs_job *j, int image, float *out) {
    const int64_t img = j->image_numel;
    if (j->has_x0) {
        memcpy(out, j->x0 + image * img, (size_t)img * sizeof *out);
        img2img_blend_kept(j, image, out);
    } else if (j->init_latents) {
        memcpy(out, j->init_latents + image * img, (size_t)img * sizeof *out);
    } else {
        const float inv = 1.0f / sched_init_noise_sigma(j->sched);
        for (int64_t k = 0; k < img; k++) out[k] = j->latents[image * img + k] * inv;
    }
}

void cs_job_finish_early(cs_job *j) {
    if (cs_job_done(j)) return;
    /* x0 of image i is read before latents of image i are written: distinct buffers. */
    for (int i = 0; i < j->n_images; i++) job_x0(j, i, j->latents + i * j->image_numel);
    j->steps = j->step;
    j->finished_early = true;
}

int cs_job_finished_early(const cs_job *j) { return j->finished_early; }

int cs_job_step(const cs_job *j) { return j->step - j->first_step; }
int cs_job_steps(const cs_job *j) { return j->steps - j->first_step; }
int cs_job_done(const cs_job *j) { return j->step >= j->steps; }
const char *cs_job_error(const cs_job *j) { return j->error[0] ? j->error : NULL; }
int cs_job_num_images(const cs_job *j) { return j->n_images; }

uint64_t cs_job_seed(const cs_job *j, int image) {
    return j->params.seed + (uint64_t)image;
}

int cs_job_rows_next_step(const cs_job *j) {
    guidance_rows r = job_rows(j);
    return j->n_images * ((int)r.cond + (int)r.uncond);
}

const uint8_t *cs_job_rgb(const cs_job *j, int image, int *width, int *height) {
    if (!j->rgb || image < 0 || image >= j->n_images) return NULL;
    if (width) *width = (int)j->width;
    if (height) *height = (int)j->height;
    return j->rgb + (size_t)image * (size_t)(j->width * j->height * 3);
}

/* A1111's labels, which other Stable Diffusion tools parse back. */
static const char *sampler_label(const cs_job *j) {
    static const struct { const char *name, *label; } k_labels[] = {
        {"ddim", "DDIM"},   {"pndm", "PLMS"},         {"euler", "Euler"},
        {"euler_a", "Euler a"}, {"dpmpp_2m", "DPM++ 2M"}, {"dpmpp_2m_sde", "DPM++ 2M SDE"},
        {"lms", "LMS"},     {"ddpm", "DDPM"},
    };
    const char *name = j->sampler[0] ? j->sampler : sched_config_sampler_name(j->model->scheduler);
    for (size_t i = 0; i < sizeof k_labels / sizeof k_labels[0]; i++)
        if (strcmp(k_labels[i].name, name) == 0) return k_labels[i].label;
    return name;
}

/* Writes the A1111 "parameters" text; returns the length snprintf reports. */
static int format_parameters(char *buf, size_t size, const cs_job *j, int image,
                             const char *extra) {
    const cs_gen_params *p = &j->params;
    const bool neg = p->negative_prompt[0] != '\0';
    return snprintf(buf, size,
                    "%s\n%s%s%sSteps: %d, Sampler: %s%s, CFG scale: %g, Seed: %llu, Size: "
                    "%lldx%lld, Model: %s%s",
                    p->prompt, neg ? "Negative prompt: " : "", neg ? p->negative_prompt : "",
                    neg ? "\n" : "", p->steps, sampler_label(j), p->karras ? " Karras" : "",
                    p->guidance_scale, (unsigned long long)cs_job_seed(j, image),
                    (long long)j->width, (long long)j->height, j->model->name, extra);
}

/* ", Lora: name:weight" (A1111-style; several are quoted, comma-separated). */
static size_t lora_parameters(char *buf, size_t size, const cs_job *j) {
    const job_loras *l = &j->loras;
    size_t at = 0;
    for (int i = 0; i < l->n && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s:%g", i ? ", " : l->n > 1 ? ", Lora: \""
                                                                              : ", Lora: ",
                               l->files[i]->name, l->weights[i]);
    if (l->n > 1 && at < size) at += (size_t)snprintf(buf + at, size - at, "\"");
    return at;
}

char *cs_job_parameters_text(const cs_job *j, int image) {
    const cs_gen_params *p = &j->params;
    char extra[256 + CS_MAX_LORAS_PER_JOB * 300] = "";
    size_t at = lora_parameters(extra, sizeof extra, j);
    if (p->clip_skip > 0) /* A1111 counts clip skip from 1 (= the last layer) */
        at += (size_t)snprintf(extra + at, sizeof extra - at, ", Clip skip: %d", p->clip_skip + 1);
    if (p->guidance_rescale > 0)
        at += (size_t)snprintf(extra + at, sizeof extra - at, ", CFG Rescale phi: %g",
                               p->guidance_rescale);
    if (p->guidance_hi > 0)
        at += (size_t)snprintf(extra + at, sizeof extra - at, ", Guidance interval: [%g, %g]",
                               p->guidance_lo, p->guidance_hi);
    if (p->eta > 0) at += (size_t)snprintf(extra + at, sizeof extra - at, ", Eta: %g", p->eta);
    if (j->init_latents) /* A1111's label for img2img strength */
        snprintf(extra + at, sizeof extra - at, ", Denoising strength: %g", p->strength);
    int len = format_parameters(NULL, 0, j, image, extra);
    char *s = len >= 0 ? cs_malloc((size_t)len + 1) : NULL;
    if (s) format_parameters(s, (size_t)len + 1, j, image, extra);
    return s;
}

cs_status cs_job_png(const cs_job *j, int image, uint8_t **png, size_t *len, char *msg,
                     size_t n) {
    const uint8_t *rgb = cs_job_rgb(j, image, NULL, NULL);
    if (!rgb)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "image %d is not decoded (or out of range)",
                       image);
    char *text = cs_job_parameters_text(j, image);
    if (!text) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    png_text_entry t = {"parameters", text};
    cs_status st = png_encode_rgb8(rgb, j->width, j->height, &t, 1, png, len, msg, n);
    free(text);
    return st;
}
