/*
 * A worker's session (cs_session): its activation arena, planned once for the largest
 * batch and image it must hold, and the staging buffers of a batched UNet call.
 *
 * DESIGN. cs_step packs the rows every job needs into one UNet batch —
 *     [ job0 cond rows | job0 uncond rows | job1 cond rows | ... ]
 * each row with its own timestep and text context (and, for a guidance-distilled model,
 * its job's guidance-scale embedding as timestep_cond; such jobs have cond rows only) —
 * runs one forward pass, then hands
 * each job its rows to combine with its own guidance scale and advance its own
 * scheduler. Rows never interact inside the UNet (every kernel works per row or per
 * image), and each job's noise comes from its own seeded stream, so a job's result does
 * not depend on what it was batched with.
 *
 * Layering inside the pipeline: session (this file: the plan and the encoders/decoder run
 * in it) < job (job.c, img2img.c: a request's state, made with a session's encoders) <
 * step (step.c: cs_step / cs_decode over jobs in a session). Nothing calls upward.
 *
 * A session is used by one thread at a time.
 */
#ifndef CS_SESSION_H
#define CS_SESSION_H

#include "model.h"
#include "model_lora.h"

const cs_model *session_model(const cs_session *s);
/* Whether a job of this size fits the session's plan. */
bool session_fits(const cs_session *s, int width, int height, int num_images);
/* The cached embedding of text (computed in the session's arena on a miss). */
cs_status session_encode_prompt(cs_session *s, const char *text, int clip_skip, int syntax,
                                const struct job_loras *loras, const prompt_embedding **out,
                                char *msg, size_t n);

/* The VAE's latent distribution — mean and (clamped) logvar, (C, h, w) each — of an RGB8
 * image of height × width (within the session's plan), normalised to [-1, 1] as diffusers
 * does; where mask (height × width, or NULL) is >= 128 the pixel is zeroed first (the
 * masked image of inpainting). Runs in the session's arena. */
void session_encode_image(cs_session *s, const uint8_t *rgb, const uint8_t *mask, int64_t height,
                          int64_t width, float *mean, float *logvar);

/* The largest latent grid the session holds (cells). */
void session_max_latent(const cs_session *s, int64_t *h, int64_t *w);

/* VAE-decodes one latent (C, h, w), already divided by the scaling factor, within the
 * plan: returns the session's buffer with (3, f·h, f·w) values in about [-1, 1], valid
 * until the session's next call. */
const float *session_decode_one(cs_session *s, const float *latent, int64_t h, int64_t w);

#endif
