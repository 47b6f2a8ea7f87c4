/*
 * Ancestral Euler (k-diffusion sample_euler_ancestral, eta 1), diffusers
 * EulerAncestralDiscreteScheduler 0.27.2: an Euler step down to sigma_down, then fresh
 * noise of level sigma_up, with sigma_down² + sigma_up² = sigma_next². Float32 in
 * diffusers' order of operations; noise every step (at the last step sigma_up is 0).
 */
#include "sampler.h"

static cs_status euler_a_setup(sched_state *s, char *msg, size_t n) {
    const int N = s->num_inference_steps;
    const int64_t T = s->p.num_train_timesteps;
    cs_status st = sched_alloc_steps(s, N + 1, true, msg, n);
    if (st != CS_OK) return st;
    float *table = cs_malloc((size_t)T * sizeof *table);
    if (!table) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    schedule_sigma_table(s->alphas_cumprod, T, table);
    sched_float_timesteps(&s->p, N, s->timesteps, N + 1, &s->n);
    sched_interp_sigmas(s, table);
    free(table);
    s->init_noise_sigma = sched_sigma_init_noise(s);
    for (int i = 0; i < s->n; i++)
        if (!(s->timesteps[i] >= 0 && s->timesteps[i] <= (double)T))
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "%d steps with this timestep_spacing give timestep %g outside [0, %lld]",
                           N, s->timesteps[i], (long long)T);
    return CS_OK;
}

static bool euler_a_needs_noise(const sched_state *s, int i) {
    return true;
}

static void euler_a_step(sched_state *s, int i, const float *mo, float *x, const float *noise,
                         float *x0_out) {
    const float sigma = s->sigmas[i], sigma_to = s->sigmas[i + 1];
    const float from2 = sigma * sigma, to2 = sigma_to * sigma_to;
    const float sigma_up = sqrtf(to2 * (from2 - to2) / from2);
    const float sigma_down = sqrtf(to2 - sigma_up * sigma_up);
    const float c_out = -sigma / sqrtf(sigma * sigma + 1.0f), c_in2 = sigma * sigma + 1.0f;
    const float dt = sigma_down - sigma;
    const sched_prediction pred = s->p.prediction_type;
    for (int64_t k = 0; k < s->numel; k++) {
        const float x0 = sched_x0_sigma(pred, sigma, c_out, c_in2, mo[k], x[k]);
        const float derivative = (x[k] - x0) / sigma;
        const float prev = x[k] + derivative * dt;
        x[k] = prev + noise[k] * sigma_up;
        if (x0_out) x0_out[k] = x0;
    }
}

const sampler_ops sampler_euler_a_ops = {SCHED_EULER_A, euler_a_setup, sched_sigma_scale_input,
                                         euler_a_needs_noise, euler_a_step};
