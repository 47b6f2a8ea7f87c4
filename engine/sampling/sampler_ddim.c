/*
 * DDIM (Song et al. 2021), diffusers DDIMScheduler 0.27.2: integer timesteps, the
 * deterministic update of formula (12) and, with eta > 0, the stochastic term of (16).
 * Float32 throughout, in diffusers' order of operations.
 */
#include "sampler.h"

static cs_status ddim_setup(sched_state *s, char *msg, size_t n) {
    const int N = s->num_inference_steps;
    cs_status st = sched_alloc_steps(s, N + 1, false, msg, n);
    if (st != CS_OK) return st;
    sched_int_timesteps(&s->p, N, s->timesteps, N + 1, &s->n);
    return sched_check_index_timesteps(s, msg, n);
}

static bool ddim_needs_noise(const sched_state *s, int i) {
    return s->eta > 0;
}

static void ddim_step(sched_state *s, int i, const float *mo, float *x, const float *noise,
                      float *x0_out) {
    const int64_t t = (int64_t)s->timesteps[i];
    const int64_t prev = t - s->p.num_train_timesteps / s->num_inference_steps;
    const float a_t = s->alphas_cumprod[t];
    const float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    /* _get_variance: sigma_t(eta)² / eta² */
    const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    const float std_dev = s->eta * sqrtf(variance);
    const float dir_coef = sqrtf(1.0f - a_prev - std_dev * std_dev);
    const float sa_prev = sqrtf(a_prev);
    const float clip = (float)s->p.clip_sample_range;
    const sched_prediction pred = s->p.prediction_type;
    for (int64_t k = 0; k < s->numel; k++) {
        float x0, eps;
        if (pred == PRED_EPSILON) {
            x0 = (x[k] - sb * mo[k]) / sa;
            eps = mo[k];
        } else if (pred == PRED_SAMPLE) {
            x0 = mo[k];
            eps = (x[k] - sa * x0) / sb;
        } else {
            x0 = sa * x[k] - sb * mo[k];
            eps = sa * mo[k] + sb * x[k];
        }
        if (s->p.clip_sample) x0 = x0 < -clip ? -clip : x0 > clip ? clip : x0;
        float prev_x = sa_prev * x0 + dir_coef * eps;
        if (s->eta > 0) prev_x = prev_x + std_dev * noise[k];
        x[k] = prev_x;
        if (x0_out) x0_out[k] = x0;
    }
}

const sampler_ops sampler_ddim_ops = {SCHED_DDIM, ddim_setup, NULL, ddim_needs_noise, ddim_step};
