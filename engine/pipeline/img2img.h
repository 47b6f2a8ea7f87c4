/*
 * img2img and inpainting for a cs_job: the rules of diffusers 0.27.2's
 * StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline on top of the
 * text-to-image loop.
 *
 * img2img: x = 2·rgb/255 - 1 is encoded by the VAE (mean, std); init_latents =
 * scaling_factor · (mean + std · ε_enc); the schedule starts at step
 * sched_strength_begin(N, strength) and the start latents are
 * sched_add_noise(init_latents, noise, that step).
 *
 * Inpainting (a mask, pixels >= 128 repaint): the mask is binarised and resized to the
 * latent grid by nearest neighbour (the pixel at (f·y, f·x)). With strength 1 the start
 * is pure noise · init_noise_sigma. A 4-channel UNet keeps the unmasked region by
 * blending after every step: latents = (1 - m)·add_noise(init_latents, noise, next step)
 * + m·latents (no noise after the last step). An inpainting UNet (2C + 1 input channels)
 * instead sees cat(latents, m, masked-image latents) each step, the masked image being
 * x with the repaint pixels zeroed, encoded like the init image; no blending.
 *
 * Draws come from each image's Philox streams (rng.h): image i of a job equals image 0
 * of the same job with seed + i. Called by job.c / session.c on the job's thread.
 */
#ifndef CS_IMG2IMG_H
#define CS_IMG2IMG_H

#include "job.h"

/* The init_image / strength / mask rules of cs_params_validate; *field names the
 * offending parameter. */
cs_status img2img_validate(const cs_model *m, const cs_gen_params *p, const char **field,
                           char *msg, size_t n);

/* Sets up a new job j (scheduler made, latents allocated) from p->init_image and p->mask:
 * moves the schedule to its first step, encodes the image(s) in s, draws the noise and
 * fills the start latents. */
cs_status img2img_job_init(cs_job *j, cs_session *s, const cs_gen_params *p, char *msg,
                           size_t n);

/* After the scheduler ran step `step` of j: the 4-channel inpainting blend (a no-op for
 * other jobs). Uses j->eps as scratch. */
void img2img_after_step(cs_job *j, int step);

/* A 4-channel inpainting job: x0 (C, h, w) of image i keeps the init latents outside the
 * mask, as the step's blend keeps them (no-op for other jobs). */
void img2img_blend_kept(const cs_job *j, int image, float *x0);

/* Inpainting UNet: the extra input channels of image i, (1 + C, h, w) into out. */
void img2img_extra_channels(const cs_job *j, int image, float *out);

void img2img_job_free(cs_job *j);

#endif
