/*
 * One request's sampling state (cs_job): its parameters (strings copied), prompt
 * embeddings (references into the model's cache), latents, scheduler state and, once
 * decoded, its pixels. Every buffer the denoising loop touches is allocated in
 * cs_job_new, so stepping never allocates.
 *
 * A job is used by one thread at a time: the worker stepping it, then whoever reads its
 * result.
 */
#ifndef CS_JOB_H
#define CS_JOB_H

#include "guidance.h"
#include "model.h"
#include "model_lora.h"

struct cs_job {
    const cs_model *model;
    cs_gen_params params;          /* string fields point at the copies below */
    char *prompt, *negative_prompt, *sampler;
    int n_images;
    int64_t height, width;         /* pixels */
    int64_t lat_h, lat_w;          /* latent cells */
    int64_t image_numel;           /* latent values per image: C·lat_h·lat_w */
    const prompt_embedding *cond;  /* (L, D), cache reference */
    const prompt_embedding *uncond;
    sched_config *sched_cfg;       /* owned: the model's schedule with this job's sampler */
    sched_state *sched;
    int step, steps;
    float *latents;                /* (n, C, h, w) */
    float *eps;                    /* (n, C, h, w) guided noise estimate of the current step */
    float *noise;                  /* (n, C, h, w) noise for stochastic steps */
    float *x0;                     /* (n, C, h, w) the last step's clean-image estimate
                                      (the sampler's pred_original_sample), for previews
                                      and early finish; valid once has_x0 */
    bool has_x0;
    bool finished_early;           /* cs_job_finish_early cut the schedule short */
    float *image;                  /* (n, H, W, 3) in [0, 1] after cs_decode, else NULL */
    uint8_t *rgb;                  /* (n, H, W, 3) after cs_decode, else NULL */
    float *w_embed;                /* (model->guidance_embed_dim) timestep_cond of every row
                                      of a guidance-distilled model, else NULL */
    job_loras loras;               /* references; params.loras points at loras.specs */
    /* img2img / inpainting (img2img.c); all NULL / 0 for text-to-image. params.init_image
     * and params.mask are NULL after cs_job_new (they were borrowed). */
    int first_step;                /* first step of the schedule run (strength) */
    float *enc_mean, *enc_std;     /* (C, h, w) the init image's latent distribution */
    float *masked_mean, *masked_std; /* (C, h, w) the masked image's (inpainting UNet) */
    float *init_latents;           /* (n, C, h, w) scaling_factor · a sample of it */
    float *masked_latents;         /* (n, C, h, w) the masked image's (inpainting UNet) */
    float *init_noise;             /* (n, C, h, w) noise added to init_latents */
    float *mask;                   /* (h, w) latent mask, 1 = repaint; NULL without a mask */
    /* Non-empty once a step left non-finite latents (cs_job_error): the job is failed and
     * cs_step refuses it; its batch companions are not affected. */
    char error[160];
};

/* Replaces the job's initial noise by given latents (n, C, h, w), scaled by the
 * scheduler's init_noise_sigma as the reference pipeline does; for golden replays. */
void job_set_initial_latents(cs_job *j, const float *latents);

/* img2img: replaces the job's two image draws — the VAE sample's encoder_noise and the
 * noise added to the init latents, (n, C, h, w) each — and recomputes init_latents and
 * the starting latents from them; for golden replays (the reference's stored draws). */
void job_set_image_draws(cs_job *j, const float *encoder_noise, const float *noise);

/* Image i's current clean-image estimate into out (C, h, w): the last step's x0 (for a
 * 4-channel inpainting job blended with the kept region, as the step blends the latents),
 * or before any step the start (init latents for img2img, latents / init_noise_sigma). */
void job_x0(const cs_job *j, int image, float *out);

/* The guidance rows job j needs at its current step. */
guidance_rows job_rows(const cs_job *j);

#endif
