/*
 * Step previews (cs_job_preview, cfgserve.h): a job's clean-image estimate (job_x0) mapped
 * to RGB by a per-model linear map, latent channels -> RGB plus a bias, fitted by least
 * squares against the model's own VAE.
 *
 * DESIGN. The map is fitted once per model, lazily, on the first preview: PREVIEW_FIT_SAMPLES
 * structured latents of up to 16 × 16 cells (VAE encodings of synthetic colour-field
 * images, so they lie where real latents lie; random N(0, 1) latents do not, and a map
 * fitted on them misses real colours) are decoded in the asking session; each latent cell is paired with the mean colour of the
 * f × f pixels it decodes to, and the (C + 1) × 3 weights solve the normal equations (in
 * double, with a tiny ridge). The map then lives in the model under its preview_lock.
 * Applying it is C + 1 multiply-adds per cell, then a bilinear upsample to at most
 * CS_PREVIEW_MAX_SIDE pixels on the long side.
 *
 * Threads: a preview runs on the thread that owns the session and the job; the fit is
 * serialised by the model's lock.
 */
#ifndef CS_PREVIEW_H
#define CS_PREVIEW_H

#include "job.h"

enum { PREVIEW_FIT_SAMPLES = 8, PREVIEW_FIT_SIDE = 16, PREVIEW_COARSE = 4, PREVIEW_FIT_RECTS = 3 };

/* Fit latent `sample` (C, h, w), within s's plan, in the sampler's latent space: the VAE
 * encoding (mean · scaling_factor) of a synthetic image — a coarse grid of random colours
 * (half of them saturated corners of the colour cube) upsampled bilinearly with solid
 * rectangles on top — so it is what the VAE's latents of
 * real images look like. A sample index >= PREVIEW_FIT_SAMPLES gives a held-out one.
 * CS_ERR_NOMEM when out of memory. */
cs_status preview_fit_latent(cs_session *s, int sample, int64_t h, int64_t w, float *z);

/* The model's map, (3, C + 1) with the bias last, into *out, fitting it in s on first use
 * (a failed fit leaves *out NULL and is tried again next time). */
cs_status preview_map(cs_session *s, const float **out, char *msg, size_t n);

/* RGB in [0, 1] of one latent cell z (C values) under map. */
void preview_cell(const float *map, int64_t channels, const float *z, int64_t stride,
                  float rgb[3]);

/* The preview size of a width × height image: scaled to fit CS_PREVIEW_MAX_SIDE, never up. */
void preview_size(int64_t width, int64_t height, int *pw, int *ph);

#endif
