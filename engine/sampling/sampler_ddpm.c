/*
 * DDPM ancestral sampling (Ho et al. 2020), diffusers DDPMScheduler 0.27.2: the
 * posterior mean of formula (7) from the x_0 estimate, plus noise with the
 * fixed_small (β̃_t), fixed_small_log or fixed_large (β_t) variance for t > 0.
 * Float32 in diffusers' order of operations.
 */
#include "sampler.h"

static cs_status ddpm_setup(sched_state *s, char *msg, size_t n) {
    const int N = s->num_inference_steps;
    cs_status st = sched_alloc_steps(s, N + 1, false, msg, n);
    if (st != CS_OK) return st;
    sched_int_timesteps(&s->p, N, s->timesteps, N + 1, &s->n);
    return sched_check_index_timesteps(s, msg, n);
}

static bool ddpm_needs_noise(const sched_state *s, int i) {
    return s->timesteps[i] > 0;
}

static void ddpm_step(sched_state *s, int i, const float *mo, float *x, const float *noise,
                      float *x0_out) {
    const int64_t t = (int64_t)s->timesteps[i];
    const int64_t prev = t - s->p.num_train_timesteps / s->num_inference_steps;
    const float a_t = s->alphas_cumprod[t];
    const float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : 1.0f;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const float cur_alpha = a_t / a_prev, cur_beta = 1.0f - cur_alpha;
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    /* Coefficients of x_0 and x_t in the posterior mean µ̃_t (formula (7)). */
    const float c_x0 = (sqrtf(a_prev) * cur_beta) / b_t;
    const float c_xt = sqrtf(cur_alpha) * b_prev / b_t;
    float std_dev = 0;
    if (t > 0) {
        float variance = (1.0f - a_prev) / (1.0f - a_t) * (1.0f - a_t / a_prev);
        if (variance < 1e-20f) variance = 1e-20f;
        if (s->p.variance_type == VAR_FIXED_SMALL_LOG)
            std_dev = expf(0.5f * logf(variance));
        else if (s->p.variance_type == VAR_FIXED_LARGE)
            std_dev = sqrtf(cur_beta);
        else
            std_dev = sqrtf(variance);
    }
    const float clip = (float)s->p.clip_sample_range;
    const sched_prediction pred = s->p.prediction_type;
    for (int64_t k = 0; k < s->numel; k++) {
        float x0;
        if (pred == PRED_EPSILON)
            x0 = (x[k] - sb * mo[k]) / sa;
        else if (pred == PRED_SAMPLE)
            x0 = mo[k];
        else
            x0 = sa * x[k] - sb * mo[k];
        if (s->p.clip_sample) x0 = x0 < -clip ? -clip : x0 > clip ? clip : x0;
        float prev_x = c_x0 * x0 + c_xt * x[k];
        if (t > 0) prev_x = prev_x + std_dev * noise[k];
        x[k] = prev_x;
        if (x0_out) x0_out[k] = x0;
    }
}

const sampler_ops sampler_ddpm_ops = {SCHED_DDPM, ddpm_setup, NULL, ddpm_needs_noise, ddpm_step};
