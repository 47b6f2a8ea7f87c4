/*
 * Noise schedules and the numpy/torch routines the diffusers schedulers are built from
 * (see schedule.h). Every function mirrors one reference expression; comments name it
 * and the precision it runs in, since the golden replays compare to float32 rounding.
 */
#include "schedule.h"

#include <math.h>

/* torch.linspace(start, end, steps, dtype=float32) as torch 1.13's AVX2 CPU kernel
 * computes it (the reference data's): the step in float; the first half counts up from
 * start, the second half down from end; elements come in pairs of 8-float vectors whose
 * base is computed at the vector's first index and the rest added as k·step, the tail
 * one by one; every a + b·c is a fused multiply-add (the kernel is built with -mfma).
 * Each choice moves some betas by an ulp, which the golden alphas_cumprod shows. */
static void torch_linspace_f32(float start, float end, int64_t steps, float *out) {
    if (steps == 1) {
        out[0] = start;
        return;
    }
    enum { VEC = 8 };
    const float step = (end - start) / (float)(steps - 1);
    const int64_t halfway = steps / 2;
    int64_t i = 0;
    for (; i <= steps - 2 * VEC; i += 2 * VEC) {
        for (int64_t v = i; v < i + 2 * VEC; v += VEC) {
            const float base = v < halfway ? fmaf(step, (float)v, start)
                                           : fmaf(-step, (float)(steps - v - 1), end);
            for (int k = 0; k < VEC; k++)
                out[v + k] = fmaf((float)k, step, base);
        }
    }
    for (; i < steps; i++)
        out[i] =
            i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

/* diffusers betas_for_alpha_bar(T, max_beta=0.999, "cosine") in float64, then float32. */
static void betas_squaredcos(int64_t T, float *betas) {
    for (int64_t i = 0; i < T; i++) {
        double t1 = (double)i / (double)T, t2 = (double)(i + 1) / (double)T;
        double a1 = cos((t1 + 0.008) / 1.008 * M_PI / 2), a2 = cos((t2 + 0.008) / 1.008 * M_PI / 2);
        double b = 1 - (a2 * a2) / (a1 * a1);
        betas[i] = (float)(b < 0.999 ? b : 0.999);
    }
}

/* diffusers rescale_zero_terminal_snr (Lin et al. 2023, Algorithm 1), float32 torch ops. */
static void rescale_zero_terminal_snr(float *betas, float *tmp, int64_t T) {
    double acc = 1.0;
    for (int64_t i = 0; i < T; i++) {
        acc *= (double)(1.0f - betas[i]);
        tmp[i] = sqrtf((float)acc); /* alphas_bar_sqrt */
    }
    const float s0 = tmp[0], sT = tmp[T - 1];
    const float scale = s0 / (s0 - sT);
    for (int64_t i = 0; i < T; i++) {
        float v = (tmp[i] - sT) * scale;
        tmp[i] = v * v; /* alphas_bar */
    }
    /* alphas = [ᾱ_0, ᾱ_1/ᾱ_0, ...]; betas = 1 - alphas. Backwards so tmp stays intact. */
    for (int64_t i = T - 1; i >= 1; i--)
        betas[i] = 1.0f - tmp[i] / tmp[i - 1];
    betas[0] = 1.0f - tmp[0];
}

cs_status schedule_alphas_cumprod(const sched_params *p, float *out, char *msg, size_t n) {
    const int64_t T = p->num_train_timesteps;
    float *betas = cs_malloc((size_t)T * sizeof *betas);
    if (!betas) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for %lld betas", (long long)T);
    if (p->trained_betas) {
        for (int64_t i = 0; i < T; i++)
            betas[i] = p->trained_betas[i];
    } else if (p->beta_schedule == BETA_LINEAR) {
        torch_linspace_f32((float)p->beta_start, (float)p->beta_end, T, betas);
    } else if (p->beta_schedule == BETA_SCALED_LINEAR) {
        /* torch.linspace(beta_start**0.5, beta_end**0.5, T) ** 2 */
        torch_linspace_f32((float)sqrt(p->beta_start), (float)sqrt(p->beta_end), T, betas);
        for (int64_t i = 0; i < T; i++)
            betas[i] = betas[i] * betas[i];
    } else {
        betas_squaredcos(T, betas);
    }
    if (p->rescale_betas_zero_snr) rescale_zero_terminal_snr(betas, out, T);
    /* torch.cumprod on float32 accumulates in double and rounds each output. */
    double acc = 1.0;
    for (int64_t i = 0; i < T; i++) {
        acc *= (double)(1.0f - betas[i]);
        out[i] = (float)acc;
    }
    free(betas);
    /* Sigma-space schedulers keep sigma_max finite ("close to 0 without being 0"). */
    if (p->rescale_betas_zero_snr &&
        (p->kind == SCHED_EULER || p->kind == SCHED_EULER_A || p->kind == SCHED_DPMPP))
        out[T - 1] = 0x1p-24f;
    for (int64_t i = 0; i < T; i++)
        if (!(out[i] >= 0.0f && out[i] <= 1.0f))
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "the beta schedule gives alphas_cumprod[%lld] = %g outside [0, 1]",
                           (long long)i, (double)out[i]);
    return CS_OK;
}

void schedule_sigma_table(const float *alphas_cumprod, int64_t T, float *sigma) {
    for (int64_t t = 0; t < T; t++) {
        const float a = alphas_cumprod[t];
        sigma[t] = sqrtf((1.0f - a) / a);
    }
}

void np_linspace(double start, double stop, int64_t num, double *out) {
    if (num <= 0) return;
    if (num == 1) {
        out[0] = start;
        return;
    }
    const double div = (double)(num - 1), delta = stop - start, step = delta / div;
    for (int64_t i = 0; i < num; i++)
        out[i] = (step == 0 ? (double)i / div * delta : (double)i * step) + start;
    out[num - 1] = stop;
}

int64_t np_arange_len(double start, double stop, double step) {
    double len = ceil((stop - start) / step);
    return len > 0 ? (int64_t)len : 0;
}

void np_arange(double start, double step, int64_t len, double *out) {
    if (len <= 0) return;
    out[0] = start;
    if (len == 1) return;
    out[1] = start + step;
    const double delta = out[1] - out[0];
    for (int64_t i = 2; i < len; i++)
        out[i] = start + (double)i * delta;
}

double np_round(double x) {
    return nearbyint(x); /* the default rounding mode: half to even, like numpy */
}

double np_interp_index(double x, const float *fp, int64_t n) {
    if (x >= (double)(n - 1)) return fp[n - 1];
    if (x < 0) return fp[0];
    const int64_t j = (int64_t)floor(x);
    if ((double)j == x) return fp[j];
    const double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

void schedule_karras(double sigma_min, double sigma_max, int64_t n, double *out) {
    const double rho = 7.0;
    const double min_inv_rho = pow(sigma_min, 1 / rho), max_inv_rho = pow(sigma_max, 1 / rho);
    np_linspace(0, 1, n, out); /* ramp */
    for (int64_t i = 0; i < n; i++)
        out[i] = pow(max_inv_rho + out[i] * (min_inv_rho - max_inv_rho), rho);
}

double schedule_sigma_to_t(double sigma, const float *log_sigmas, int64_t T) {
    const double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    /* low_idx = argmax(cumsum(dists >= 0)): the last index with log_sigmas <= log_sigma
     * (0 when there is none), at most T - 2. */
    int64_t low = 0;
    for (int64_t k = 0; k < T; k++)
        if (log_sigma - (double)log_sigmas[k] >= 0) low = k;
    if (low > T - 2) low = T - 2;
    const float lo = log_sigmas[low], hi = log_sigmas[low + 1];
    double w = ((double)lo - log_sigma) / (double)(lo - hi); /* (lo - hi) is a float32 op */
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1 - w) * (double)low + w * (double)(low + 1);
}
