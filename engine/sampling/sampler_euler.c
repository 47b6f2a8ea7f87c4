/*
 * Euler method on the probability-flow ODE in sigma space (Karras et al. 2022,
 * Algorithm 2 with s_churn = 0), diffusers EulerDiscreteScheduler 0.27.2: float32
 * timesteps, sigmas interpolated from the training schedule in float64 (or Karras
 * sigmas mapped back to fractional timesteps), inputs scaled by (σ² + 1)^-½.
 *
 * The reference draws a noise tensor every step but only uses it when s_churn > 0,
 * which the pipeline never sets; this sampler needs no noise.
 */
#include "sampler.h"

/* Sigmas and timesteps shared with nothing else: interp or Karras, then float32. */
static cs_status euler_setup(sched_state *s, char *msg, size_t n) {
    const int N = s->num_inference_steps;
    const int64_t T = s->p.num_train_timesteps;
    cs_status st = sched_alloc_steps(s, N + 1, true, msg, n);
    if (st != CS_OK) return st;
    float *table = cs_malloc((size_t)T * 2 * sizeof *table);
    double *sig = cs_malloc(((size_t)N + 1) * sizeof *sig);
    if (!table || !sig) {
        free(table);
        free(sig);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    }
    float *log_sigmas = table + T;
    schedule_sigma_table(s->alphas_cumprod, T, table);
    for (int64_t t = 0; t < T; t++)
        log_sigmas[t] = logf(table[t]); /* np.log on float32 */
    sched_float_timesteps(&s->p, N, s->timesteps, N + 1, &s->n);
    for (int i = 0; i < s->n; i++)
        sig[i] = np_interp_index(s->timesteps[i], table, T);
    if (s->p.use_karras_sigmas) {
        const double smin = isnan(s->p.sigma_min) ? sig[s->n - 1] : s->p.sigma_min;
        const double smax = isnan(s->p.sigma_max) ? sig[0] : s->p.sigma_max;
        s->n = N;
        schedule_karras(smin, smax, N, sig);
        for (int i = 0; i < N; i++)
            s->timesteps[i] = (float)schedule_sigma_to_t(sig[i], log_sigmas, T);
    }
    for (int i = 0; i < s->n; i++)
        s->sigmas[i] = (float)sig[i];
    s->sigmas[s->n] = 0.0f;
    const bool continuous =
        s->p.timestep_type == TSTYPE_CONTINUOUS && s->p.prediction_type == PRED_V;
    if (continuous) /* EDM-style c_noise: torch.Tensor([0.25 * sigma.log() ...]) */
        for (int i = 0; i < s->n; i++)
            s->timesteps[i] = 0.25f * logf(s->sigmas[i]);
    free(table);
    free(sig);
    s->init_noise_sigma = sched_sigma_init_noise(s);
    for (int i = 0; i < s->n && !continuous; i++)
        if (!(s->timesteps[i] >= 0 && s->timesteps[i] <= (double)T))
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "%d steps with this timestep_spacing give timestep %g outside [0, %lld]",
                           N, s->timesteps[i], (long long)T);
    return CS_OK;
}

static void euler_step(sched_state *s, int i, const float *mo, float *x, const float *noise,
                       float *x0_out) {
    const float sigma = s->sigmas[i];
    const float sigma_hat = sigma; /* sigma * (gamma + 1) with gamma = 0 */
    const float c_out = -sigma / sqrtf(sigma * sigma + 1.0f), c_in2 = sigma * sigma + 1.0f;
    const float dt = s->sigmas[i + 1] - sigma_hat;
    const sched_prediction pred = s->p.prediction_type;
    for (int64_t k = 0; k < s->numel; k++) {
        const float x0 = sched_x0_sigma(pred, sigma_hat, c_out, c_in2, mo[k], x[k]);
        const float derivative = (x[k] - x0) / sigma_hat;
        x[k] = x[k] + derivative * dt;
        if (x0_out) x0_out[k] = x0;
    }
}

const sampler_ops sampler_euler_ops = {SCHED_EULER, euler_setup, sched_sigma_scale_input, NULL,
                                       euler_step};
