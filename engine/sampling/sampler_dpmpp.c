/*
 * DPM-Solver++ multistep (Lu et al. 2022) and its SDE variant, diffusers
 * DPMSolverMultistepScheduler 0.27.2 with algorithm_type dpmsolver++ / sde-dpmsolver++,
 * solver_order 1-3, midpoint or heun second-order rule, lower_order_final,
 * euler_at_final, final_sigmas_type, lambda_min_clipped, Karras sigmas.
 *
 * The model output is converted to x_0 (data prediction) and kept as history; each step
 * uses the log-SNR gaps h = λ_t - λ_s of the float32 sigma table. Karras sigmas are the
 * rho = 7 values themselves (not re-read from the rounded timesteps); like the
 * interpolated ones they end with the final_sigmas_type level (0, or sigma_min = σ(t=0)),
 * as the 0.27.2 reference data shows.
 *
 * Buffers 0..order-1: x_0 history, oldest first. count: lower_order_nums.
 */
#include "sampler.h"

#include <string.h>

/* np.linspace / leading / trailing timesteps up to last_timestep, descending. */
static int dpm_timesteps(const sched_params *p, int N, int64_t last, double *out) {
    if (p->timestep_spacing == SPACING_LINSPACE) {
        /* np.linspace(0, last - 1, N + 1).round()[::-1][:-1] */
        np_linspace(0, (double)(last - 1), N + 1, out);
        for (int i = 0; i < (N + 1) / 2; i++) {
            const double t = out[i];
            out[i] = out[N - i];
            out[N - i] = t;
        }
        for (int i = 0; i < N; i++)
            out[i] = np_round(out[i]);
        return N;
    }
    if (p->timestep_spacing == SPACING_LEADING) {
        const int64_t ratio = last / (N + 1);
        for (int i = 0; i < N; i++)
            out[i] = (double)((int64_t)(N - i) * ratio + p->steps_offset);
        return N;
    }
    /* np.arange(last, 0, -T / N).round() - 1 */
    const double ratio = (double)p->num_train_timesteps / N;
    const int64_t L = np_arange_len((double)last, 0, -ratio);
    CS_ASSERT(L <= N + 1);
    np_arange((double)last, -ratio, L, out);
    for (int64_t i = 0; i < L; i++)
        out[i] = np_round(out[i]) - 1;
    return (int)L;
}

static cs_status dpm_setup(sched_state *s, char *msg, size_t n) {
    const int N = s->num_inference_steps;
    const int64_t T = s->p.num_train_timesteps;
    const float *ac = s->alphas_cumprod;
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
    /* clipped_idx = searchsorted(flip(lambda_t), lambda_min_clipped): how many λ_t
     * (log ᾱ^½ - log (1-ᾱ)^½, float32) lie below the clip. */
    int64_t clipped = 0;
    const float lmin = (float)s->p.lambda_min_clipped;
    for (int64_t t = 0; t < T; t++)
        if (logf(sqrtf(ac[t])) - logf(sqrtf(1.0f - ac[t])) < lmin) clipped++;
    s->n = dpm_timesteps(&s->p, N, T - clipped, s->timesteps);
    schedule_sigma_table(ac, T, table);
    for (int64_t t = 0; t < T; t++)
        log_sigmas[t] = logf(table[t]);
    if (s->p.use_karras_sigmas) {
        s->n = N;
        schedule_karras(table[0], table[T - 1], N, sig);
        for (int i = 0; i < N; i++)
            s->timesteps[i] = np_round(schedule_sigma_to_t(sig[i], log_sigmas, T));
    } else {
        for (int i = 0; i < s->n; i++)
            sig[i] = np_interp_index(s->timesteps[i], table, T);
    }
    sig[s->n] = s->p.final_sigmas_type == FINAL_SIGMA_ZERO ? 0.0 : (double)table[0];
    for (int i = 0; i <= s->n; i++)
        s->sigmas[i] = (float)sig[i];
    free(table);
    free(sig);
    if ((st = sched_check_index_timesteps(s, msg, n)) != CS_OK) return st;
    for (int i = 0; s->p.solver_order > 1 && i + 1 < s->n; i++)
        if (s->sigmas[i] == s->sigmas[i + 1])
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "%d steps repeat timestep %g; DPM-Solver's multistep update would "
                           "divide by zero (diffusers returns NaN)",
                           N, s->timesteps[i]);
    return sched_alloc_bufs(s, s->p.solver_order, msg, n);
}

static bool dpm_needs_noise(const sched_state *s, int i) {
    return s->p.algorithm_type == DPM_ALGO_SDE_DPMSOLVER_PP;
}

/* _sigma_to_alpha_sigma_t and λ = log α - log σ, float32. */
typedef struct {
    float alpha, sigma, lambda;
} dpm_level;
static dpm_level level(float sigma) {
    dpm_level l;
    l.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    l.sigma = sigma * l.alpha;
    l.lambda = logf(l.alpha) - logf(l.sigma);
    return l;
}

static void dpm_step(sched_state *s, int i, const float *mo, float *x, const float *noise,
                     float *x0_out) {
    const int order = s->p.solver_order, n_steps = s->n;
    const bool sde = s->p.algorithm_type == DPM_ALGO_SDE_DPMSOLVER_PP;
    const bool heun = s->p.solver_type == DPM_SOLVER_HEUN;
    const bool lower_final =
        i == n_steps - 1 && (s->p.euler_at_final || (s->p.lower_order_final && n_steps < 15) ||
                             s->p.final_sigmas_type == FINAL_SIGMA_ZERO);
    const bool lower_second = i == n_steps - 2 && s->p.lower_order_final && n_steps < 15;
    const int64_t numel = s->numel;

    /* convert_model_output → x_0; model_outputs shift left, the newest goes last. */
    float *newest = s->buf[0];
    memmove(&s->buf[0], &s->buf[1], (size_t)(order - 1) * sizeof s->buf[0]);
    s->buf[order - 1] = newest;
    const dpm_level s0 = level(s->sigmas[i]);
    for (int64_t k = 0; k < numel; k++) {
        float x0;
        if (s->p.prediction_type == PRED_EPSILON)
            x0 = (x[k] - s0.sigma * mo[k]) / s0.alpha;
        else if (s->p.prediction_type == PRED_V)
            x0 = s0.alpha * x[k] - s0.sigma * mo[k];
        else
            x0 = mo[k];
        newest[k] = x0;
        if (x0_out) x0_out[k] = x0;
    }

    const dpm_level t = level(s->sigmas[i + 1]);
    const float h = t.lambda - s0.lambda;
    const float *m0 = s->buf[order - 1];
    const float ratio = t.sigma / s0.sigma;
    const float em1 = expf(-h) - 1.0f;    /* exp(-h) - 1 */
    const float e2 = 1 - expf(-2.0f * h); /* 1 - exp(-2h) */
    const float noise_c = t.sigma * sqrtf(1.0f - expf(-2 * h));
    const int lower_nums = s->count;
    if (order == 1 || lower_nums < 1 || lower_final) {
        const float a = sde ? ratio * expf(-h) : ratio;
        const float b = sde ? t.alpha * e2 : t.alpha * em1;
        for (int64_t k = 0; k < numel; k++)
            x[k] = sde ? a * x[k] + b * m0[k] + noise_c * noise[k] : a * x[k] - b * m0[k];
    } else if (order == 2 || lower_nums < 2 || lower_second) {
        const dpm_level s1 = level(s->sigmas[i - 1]);
        const float *m1 = s->buf[order - 2];
        const float r0 = (s0.lambda - s1.lambda) / h;
        const float inv_r0 = 1.0f / r0;
        if (!sde) {
            const float b = t.alpha * em1;
            const float c = heun ? t.alpha * (em1 / h + 1.0f) : 0.5f * b;
            for (int64_t k = 0; k < numel; k++) {
                const float d1 = inv_r0 * (m0[k] - m1[k]);
                x[k] = heun ? ratio * x[k] - b * m0[k] + c * d1 : ratio * x[k] - b * m0[k] - c * d1;
            }
        } else {
            const float a = ratio * expf(-h), b = t.alpha * e2;
            const float c =
                heun ? t.alpha * ((1.0f - expf(-2.0f * h)) / (-2.0f * h) + 1.0f) : 0.5f * b;
            for (int64_t k = 0; k < numel; k++) {
                const float d1 = inv_r0 * (m0[k] - m1[k]);
                x[k] = a * x[k] + b * m0[k] + c * d1 + noise_c * noise[k];
            }
        }
    } else {
        const dpm_level s1 = level(s->sigmas[i - 1]), s2 = level(s->sigmas[i - 2]);
        const float *m1 = s->buf[order - 2], *m2 = s->buf[order - 3];
        const float r0 = (s0.lambda - s1.lambda) / h, r1 = (s1.lambda - s2.lambda) / h;
        const float inv_r0 = 1.0f / r0, inv_r1 = 1.0f / r1;
        const float w = r0 / (r0 + r1), inv_sum = 1.0f / (r0 + r1);
        const float b = t.alpha * em1, c = t.alpha * (em1 / h + 1.0f);
        const float e = t.alpha * ((expf(-h) - 1.0f + h) / (h * h) - 0.5f);
        for (int64_t k = 0; k < numel; k++) {
            const float d10 = inv_r0 * (m0[k] - m1[k]), d11 = inv_r1 * (m1[k] - m2[k]);
            const float d1 = d10 + w * (d10 - d11), d2 = inv_sum * (d10 - d11);
            x[k] = ratio * x[k] - b * m0[k] + c * d1 - e * d2;
        }
    }
    if (s->count < order) s->count++;
}

const sampler_ops sampler_dpmpp_ops = {SCHED_DPMPP, dpm_setup, NULL, dpm_needs_noise, dpm_step};
