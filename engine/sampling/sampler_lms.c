/*
 * Linear multistep (k-diffusion sample_lms, order 4), diffusers LMSDiscreteScheduler
 * 0.27.2: x_{i+1} = x_i + Σ_j c_ij d_{i-j}, where d are the ODE derivatives of the last
 * (up to) four steps and c_ij integrates the Lagrange basis polynomial of d_{i-j} over
 * [σ_i, σ_{i+1}]. diffusers integrates with scipy.integrate.quad; the integrand is a
 * polynomial of degree ≤ 3, which 4-point Gauss-Legendre integrates exactly, so the
 * coefficients are precomputed here once per schedule.
 *
 * Buffers 0-3: the last four derivatives, oldest first. coef[4i + j]: c_ij.
 */
#include "sampler.h"

#include <string.h>

enum { LMS_ORDER = 4 };

/* ∫_{σ_i}^{σ_{i+1}} Π_{k<order, k≠j} (τ - σ_{i-k}) / (σ_{i-j} - σ_{i-k}) dτ */
static double lms_coefficient(const float *sigmas, int order, int i, int j) {
    static const double node[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563,
                                   0.8611363115940526};
    static const double weight[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461,
                                     0.3478548451374538};
    const double a = sigmas[i], b = sigmas[i + 1];
    double sum = 0;
    for (int q = 0; q < 4; q++) {
        const double tau = 0.5 * (b - a) * node[q] + 0.5 * (a + b);
        double prod = 1.0;
        for (int k = 0; k < order; k++) {
            if (k == j) continue;
            prod *= (tau - sigmas[i - k]) / ((double)sigmas[i - j] - sigmas[i - k]);
        }
        sum += weight[q] * prod;
    }
    return 0.5 * (b - a) * sum;
}

static cs_status lms_setup(sched_state *s, char *msg, size_t n) {
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
        log_sigmas[t] = logf(table[t]);
    sched_float_timesteps(&s->p, N, s->timesteps, N + 1, &s->n);
    for (int i = 0; i < s->n; i++)
        sig[i] = np_interp_index(s->timesteps[i], table, T);
    if (s->p.use_karras_sigmas) {
        /* Karras between the interpolated ends; the timesteps stay float64 here. */
        const double smin = sig[s->n - 1], smax = sig[0];
        s->n = N;
        schedule_karras(smin, smax, N, sig);
        for (int i = 0; i < N; i++)
            s->timesteps[i] = schedule_sigma_to_t(sig[i], log_sigmas, T);
    }
    for (int i = 0; i < s->n; i++)
        s->sigmas[i] = (float)sig[i];
    s->sigmas[s->n] = 0.0f;
    free(table);
    free(sig);
    s->init_noise_sigma = sched_sigma_init_noise(s);
    for (int i = 0; i < s->n; i++)
        if (!(s->timesteps[i] >= 0 && s->timesteps[i] <= (double)T))
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "%d steps with this timestep_spacing give timestep %g outside [0, %lld]",
                           N, s->timesteps[i], (long long)T);
    if ((st = sched_alloc_coef(s, (int64_t)s->n * LMS_ORDER, msg, n)) != CS_OK) return st;
    for (int i = 0; i < s->n; i++) {
        const int order = i + 1 < LMS_ORDER ? i + 1 : LMS_ORDER;
        for (int j = 0; j < order; j++)
            s->coef[i * LMS_ORDER + j] = lms_coefficient(s->sigmas, order, i, j);
    }
    return sched_alloc_bufs(s, LMS_ORDER, msg, n);
}

static void lms_step(sched_state *s, int i, const float *mo, float *x, const float *noise,
                     float *x0_out) {
    const float sigma = s->sigmas[i];
    const float c_out = -sigma / sqrtf(sigma * sigma + 1.0f), c_in2 = sigma * sigma + 1.0f;
    const sched_prediction pred = s->p.prediction_type;
    /* derivatives.append(d); keep the last LMS_ORDER */
    if (s->count == LMS_ORDER) {
        float *oldest = s->buf[0];
        memmove(&s->buf[0], &s->buf[1], (LMS_ORDER - 1) * sizeof s->buf[0]);
        s->buf[LMS_ORDER - 1] = oldest;
        s->count--;
    }
    float *d_new = s->buf[s->count++];
    for (int64_t k = 0; k < s->numel; k++) {
        const float x0 = sched_x0_sigma(pred, sigma, c_out, c_in2, mo[k], x[k]);
        d_new[k] = (x[k] - x0) / sigma;
        if (x0_out) x0_out[k] = x0;
    }
    /* Coefficients of order min(i + 1, 4) at the global step i, but only as many terms
     * as derivatives exist: after set_begin_index (img2img) diffusers zips the two lists,
     * so a run started at step k > 0 uses the newest derivatives' coefficients only. */
    const int coeffs = i + 1 < LMS_ORDER ? i + 1 : LMS_ORDER;
    const int order = coeffs < s->count ? coeffs : s->count;
    float c[LMS_ORDER];
    const float *d[LMS_ORDER];
    for (int j = 0; j < order; j++) {
        c[j] = (float)s->coef[i * LMS_ORDER + j];
        d[j] = s->buf[s->count - 1 - j]; /* reversed(derivatives): newest first */
    }
    for (int64_t k = 0; k < s->numel; k++) {
        float acc = c[0] * d[0][k];
        for (int j = 1; j < order; j++)
            acc = acc + c[j] * d[j][k];
        x[k] = x[k] + acc;
    }
}

const sampler_ops sampler_lms_ops = {SCHED_LMS, lms_setup, sched_sigma_scale_input, NULL, lms_step};
