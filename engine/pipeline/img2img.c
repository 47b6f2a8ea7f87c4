/* img2img and inpainting on a job (see img2img.h for the rules and their source). */
#include "img2img.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inpaint_fill.h"
#include "rng.h"
#include "session.h"

cs_status img2img_validate(const cs_model *m, const cs_gen_params *p, const char **field,
                           char *msg, size_t n) {
    if (m->inpainting && (!p->init_image || !p->mask)) {
        *field = p->init_image ? "mask" : "init_image";
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "%s is an inpainting model (its unet takes %lld channels: latents, mask "
                       "and masked image); it needs init_image and mask",
                       m->name, (long long)(2 * m->latent_channels + 1));
    }
    if (p->mask && !p->init_image) {
        *field = "mask";
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "mask needs an init_image to inpaint");
    }
    if (p->inpaint_fill != CS_FILL_ORIGINAL) {
        *field = "inpaint_fill";
        if (p->inpaint_fill < 0 || p->inpaint_fill > CS_FILL_LATENT_NOTHING)
            return cs_errf(CS_ERR_INVALID_ARG, msg, n, "inpaint_fill must be one of CS_FILL_* (got %d)",
                           p->inpaint_fill);
        if (!p->mask)
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "inpaint_fill chooses what a mask's area starts from; it needs a mask");
    }
    if (!p->init_image) return CS_OK;
    *field = "strength";
    if (!isfinite(p->strength) || p->strength <= 0 || p->strength > 1)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "strength must be within (0, 1] (got %g)",
                       p->strength);
    if (sched_strength_begin(p->steps, p->strength) >= p->steps)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "strength %g of %d steps runs no step (int(steps * strength) = 0); raise "
                       "strength or steps",
                       p->strength, p->steps);
    return CS_OK;
}

void img2img_job_free(cs_job *j) {
    free(j->enc_mean);
    free(j->enc_std);
    free(j->masked_mean);
    free(j->masked_std);
    free(j->init_latents);
    free(j->masked_latents);
    free(j->init_noise);
    free(j->mask);
}

/* scaling_factor · (mean + std · ε) in place over eps_inout, one image. */
static void sample_latents(float sf, const float *mean, const float *std, float *eps_inout,
                           int64_t numel) {
    for (int64_t k = 0; k < numel; k++) eps_inout[k] = sf * (mean[k] + std[k] * eps_inout[k]);
}

/* std = exp(0.5 · logvar) in place (logvar is already clamped by vae_encode). */
static void logvar_to_std(float *v, int64_t numel) {
    for (int64_t k = 0; k < numel; k++) v[k] = expf(0.5f * v[k]);
}

void job_set_image_draws(cs_job *j, const float *encoder_noise, const float *noise) {
    const int64_t img = j->image_numel, cells = j->lat_h * j->lat_w;
    const float sf = vae_scaling_factor(j->model->vae);
    /* diffusers' is_strength_max: an inpainting job at strength 1 starts from pure noise. */
    const bool pure_noise = j->mask && j->params.strength >= 1.0;
    const float sigma0 = sched_init_noise_sigma(j->sched);
    for (int i = 0; i < j->n_images; i++) {
        const uint64_t seed = cs_job_seed(j, i);
        float *init = j->init_latents + i * img, *nz = j->init_noise + i * img;
        float *x = j->latents + i * img;
        if (encoder_noise)
            memcpy(init, encoder_noise + i * img, (size_t)img * sizeof *init);
        else
            rng_normal_fill(seed, RNG_STREAM_ENCODER, 0, init, img);
        sample_latents(sf, j->enc_mean, j->enc_std, init, img);
        if (noise)
            memcpy(nz, noise + i * img, (size_t)img * sizeof *nz);
        else
            rng_normal_fill(seed, RNG_STREAM_IMG2IMG, 0, nz, img);
        if (j->mask)
            inpaint_fill_latents(j->params.inpaint_fill, init, nz, j->mask, img / cells, cells);
        if (j->masked_latents) {
            float *mk = j->masked_latents + i * img;
            rng_normal_fill(seed, RNG_STREAM_ENCODER, (uint64_t)img, mk, img);
            sample_latents(sf, j->masked_mean, j->masked_std, mk, img);
        }
        if (pure_noise)
            for (int64_t k = 0; k < img; k++) x[k] = nz[k] * sigma0;
        else
            sched_add_noise(j->sched, j->first_step, init, nz, x, img);
    }
}

/* The binarised mask at the latent grid: torch's nearest resize by the integer factor f
 * picks pixel (f·y, f·x). */
static void latent_mask(const uint8_t *mask, int64_t width, int64_t f, int64_t h, int64_t w,
                        float *out) {
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            out[y * w + x] = mask[(y * f) * width + x * f] >= 128 ? 1.0f : 0.0f;
}

cs_status img2img_job_init(cs_job *j, cs_session *s, const cs_gen_params *p, char *msg,
                           size_t n) {
    const cs_model *m = j->model;
    const int64_t img = j->image_numel, total = img * j->n_images, cells = j->lat_h * j->lat_w;
    const size_t one = (size_t)img * sizeof(float), all = (size_t)total * sizeof(float);
    j->first_step = sched_strength_begin(p->steps, p->strength);
    sched_begin_at(j->sched, j->first_step);
    j->step = j->first_step;
    j->enc_mean = cs_malloc(one);
    j->enc_std = cs_malloc(one);
    j->init_latents = cs_malloc(all);
    j->init_noise = cs_malloc(all);
    bool ok = j->enc_mean && j->enc_std && j->init_latents && j->init_noise;
    if (ok && p->mask) {
        j->mask = cs_malloc((size_t)cells * sizeof(float));
        ok = j->mask != NULL;
    }
    if (ok && m->inpainting) {
        j->masked_mean = cs_malloc(one);
        j->masked_std = cs_malloc(one);
        j->masked_latents = cs_malloc(all);
        ok = j->masked_mean && j->masked_std && j->masked_latents;
    }
    uint8_t *filled = NULL; /* the init image with its masked pixels blurred over */
    if (ok && p->mask && p->inpaint_fill == CS_FILL_BLUR) {
        filled = cs_malloc((size_t)j->width * (size_t)j->height * 3);
        ok = filled && inpaint_fill_image(p->init_image, p->mask, j->width, j->height, filled);
    }
    if (!ok) {
        free(filled);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for the init image's latents");
    }
    const uint8_t *image = filled ? filled : p->init_image;
    session_encode_image(s, image, NULL, j->height, j->width, j->enc_mean, j->enc_std);
    logvar_to_std(j->enc_std, img);
    if (p->mask) latent_mask(p->mask, j->width, m->vae_factor, j->lat_h, j->lat_w, j->mask);
    if (m->inpainting) {
        session_encode_image(s, image, p->mask, j->height, j->width, j->masked_mean,
                             j->masked_std);
        logvar_to_std(j->masked_std, img);
    }
    free(filled);
    /* The caller's buffers are borrowed only for this call. */
    j->params.init_image = NULL;
    j->params.mask = NULL;
    job_set_image_draws(j, NULL, NULL);
    return CS_OK;
}

void img2img_after_step(cs_job *j, int step) {
    if (!j->mask || j->masked_latents) return;
    const int64_t img = j->image_numel, cells = j->lat_h * j->lat_w;
    const int64_t channels = img / cells;
    for (int i = 0; i < j->n_images; i++) {
        const float *proper = j->init_latents + i * img;
        if (step + 1 < j->steps) { /* noised to the next step's level */
            sched_add_noise(j->sched, step + 1, proper, j->init_noise + i * img, j->eps, img);
            proper = j->eps;
        }
        float *x = j->latents + i * img;
        for (int64_t c = 0; c < channels; c++)
            for (int64_t q = 0; q < cells; q++) {
                const float mk = j->mask[q];
                const int64_t k = c * cells + q;
                x[k] = (1.0f - mk) * proper[k] + mk * x[k];
            }
    }
}

void img2img_blend_kept(const cs_job *j, int image, float *x0) {
    if (!j->mask || j->masked_latents) return;
    const int64_t img = j->image_numel, cells = j->lat_h * j->lat_w;
    const float *init = j->init_latents + image * img;
    for (int64_t k = 0; k < img; k++) {
        const float mk = j->mask[k % cells];
        x0[k] = (1.0f - mk) * init[k] + mk * x0[k];
    }
}

void img2img_extra_channels(const cs_job *j, int image, float *out) {
    const int64_t img = j->image_numel, cells = j->lat_h * j->lat_w;
    memcpy(out, j->mask, (size_t)cells * sizeof *out);
    memcpy(out + cells, j->masked_latents + image * img, (size_t)img * sizeof *out);
}
