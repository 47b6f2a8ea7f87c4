/*
 * What a sampler file implements (engine/sampler_<name>.c) and the state they share.
 * Internal to the scheduler module: scheduler.c owns sched_state and dispatches
 * through sampler_ops; a sampler's setup fills the schedule and asks scheduler.c for
 * the buffers its history needs, all inside sched_state_new.
 */
#ifndef CS_SAMPLER_H
#define CS_SAMPLER_H

#include <math.h>

#include "schedule.h"
#include "scheduler.h"

enum { SCHED_MAX_BUFS = 6 };

struct sched_state {
    const struct sampler_ops *ops;
    sched_params p;          /* p.trained_betas is not used after set-up */
    int64_t numel;           /* floats per sample */
    int num_inference_steps; /* as requested (N) */
    int n;                   /* len(timesteps) */
    int next_step;           /* the step sched_step expects next */
    double *timesteps;       /* [n] */
    float *sigmas;           /* [n + 1] for sigma-space samplers, else NULL */
    float *alphas_cumprod;   /* [T] */
    float final_alpha_cumprod;
    float init_noise_sigma;
    float eta;                  /* DDIM */
    float *buf[SCHED_MAX_BUFS]; /* latent-sized history buffers, numel floats each */
    int nbuf;
    double *coef; /* sampler-specific per-step coefficients */
    int counter;  /* sampler-specific bookkeeping (PNDM, DPM, LMS) */
    int count;
};

typedef struct sampler_ops {
    sched_kind kind;
    /* Fills timesteps (via sched_alloc_steps), sigmas, init_noise_sigma and history
     * buffers from s->p, s->alphas_cumprod and s->num_inference_steps. */
    cs_status (*setup)(sched_state *s, char *msg, size_t n);
    /* NULL: the identity. */
    void (*scale_model_input)(const sched_state *s, int i, float *x, int64_t n);
    bool (*needs_noise)(const sched_state *s, int i);
    void (*step)(sched_state *s, int i, const float *model_output, float *x, const float *noise,
                 float *x0);
} sampler_ops;

extern const sampler_ops sampler_ddim_ops, sampler_pndm_ops, sampler_euler_ops, sampler_euler_a_ops,
    sampler_dpmpp_ops, sampler_ddpm_ops, sampler_lms_ops;

/* The resolved parameters of a config (sched_config.c). */
const sched_params *sched_config_params(const sched_config *c);

/* Allocation helpers for setup (the state owns and frees what they return). */
cs_status sched_alloc_steps(sched_state *s, int n_steps, bool with_sigmas, char *msg, size_t n);
cs_status sched_alloc_bufs(sched_state *s, int count, char *msg, size_t n);
cs_status sched_alloc_coef(sched_state *s, int64_t count, char *msg, size_t n);

/* Fails unless every timestep is an integer in [0, T - 1] (samplers that index
 * alphas_cumprod by timestep). */
cs_status sched_check_index_timesteps(const sched_state *s, char *msg, size_t n);

/* DDIM / DDPM: integer timesteps of the spacing rule (np.linspace(...).round(),
 * arange·(T // N) + steps_offset, or round(arange(T, 0, -T/N)) - 1); count into *len (N,
 * or N + 1 where numpy's float arange gives one more), at most cap (N + 1). */
void sched_int_timesteps(const sched_params *p, int N, double *out, int cap, int *len);
/* Euler / Euler ancestral / LMS: timesteps of the spacing rule as float32 values
 * (np.linspace(..., dtype=float32), or arange .round().astype(float32)); count into
 * *len, at most cap. */
void sched_float_timesteps(const sched_params *p, int N, double *out, int cap, int *len);
/* Their sigmas: np.interp(timesteps, arange(T), sigma_table) → float32, then 0. */
void sched_interp_sigmas(sched_state *s, const float *sigma_table);
/* init_noise_sigma of the sigma-space classes: max sigma, or (max² + 1)^½ for
 * "leading" spacing. */
float sched_sigma_init_noise(const sched_state *s);
/* x / (σ_i² + 1)^½ (Euler, Euler ancestral, LMS). */
void sched_sigma_scale_input(const sched_state *s, int i, float *x, int64_t n);

/* x_0 from a model output in sigma space (k-diffusion denoiser form), float32 as
 * diffusers: eps: x - σ·out; v: out·(-σ/(σ²+1)^½) + x/(σ²+1); sample: out. */
static inline float sched_x0_sigma(sched_prediction pred, float sigma, float c_out, float c_in2,
                                   float out, float x) {
    if (pred == PRED_EPSILON) return x - sigma * out;
    if (pred == PRED_V) return out * c_out + x / c_in2;
    return out;
}

#endif
