/*
 * Classifier-free guidance (DESIGN §1): combining a job's conditional and unconditional
 * noise estimates with its own scale, the guidance_rescale refinement, and the guidance
 * interval. Pure functions on caller buffers; thread-safe.
 */
#ifndef CS_GUIDANCE_H
#define CS_GUIDANCE_H

#include "common.h"

/* Which UNet rows a job needs at one step. */
typedef struct guidance_rows {
    bool cond, uncond;
} guidance_rows;

/* s = 1 needs only the conditional rows, s = 0 only the unconditional ones; outside the
 * guidance interval [lo, hi] (hi <= 0: no interval) only the conditional ones. */
guidance_rows guidance_rows_for(double scale, double sigma, double lo, double hi);

/* eps(n) = eps_u + s·(eps_c - eps_u), in float as diffusers computes it. eps may alias
 * either input. With rows.cond only eps = eps_c, with rows.uncond only eps = eps_u. */
void guidance_combine(float *eps, const float *eps_c, const float *eps_u, float scale,
                      guidance_rows rows, int64_t n);

/* Lin et al. 2023 / diffusers rescale_noise_cfg on one sample of n values, in place:
 * eps = phi·eps·std(eps_c)/std(eps) + (1 - phi)·eps, std unbiased (torch's default). */
void guidance_rescale(float *eps, const float *eps_c, float phi, int64_t n);

/* Guidance-distilled UNets (time_cond_proj_dim > 0) take the scale as an input instead
 * of running an unconditional pass: diffusers 0.27.2 StableDiffusionPipeline's
 * get_guidance_scale_embedding(guidance_scale - 1, dim), float32 in its order:
 * w' = (s - 1)·1000, half = dim/2, f_k = exp(k · -(log 10000 / (half - 1))),
 * out = [sin(w'·f_0..), cos(w'·f_0..)], a trailing 0 when dim is odd. dim >= 4 (half - 1
 * must not be 0). */
void guidance_scale_embedding(double guidance_scale, int64_t dim, float *out);

#endif
