/*
 * Normalisation kernels of ops.h: GroupNorm over (B, C, HW) and LayerNorm over rows, with
 * PyTorch semantics (biased variance, eps inside the square root, optional affine).
 * Statistics are accumulated in double over two passes (mean, then squared deviations),
 * so a large mean relative to the spread costs no precision; the per-element work stays
 * in float. Groups (GroupNorm) and rows (LayerNorm) are spread over the ctx's thread
 * pool; each is computed whole by one thread, so results do not depend on the thread
 * count. Touches only the given buffers.
 */
#include "ops.h"

#include <math.h>

#include "threadpool.h"

/* Least elements per pool chunk (a few microseconds of work). */
enum { NORM_GRAIN = 16384 };

/* Independent partial sums break the add latency chain (a plain double loop cannot be
 * reordered without -ffast-math) and let the compiler use SIMD lanes. */
enum { NORM_LANES = 8 };

/* The double mean as a float pair hi + lo: (x - hi) - lo in float is then nearly as
 * accurate as (x - mean) in double (x - hi is exact when x is near the mean), which
 * matters when the mean is large next to the spread, at the cost of one subtraction. */
typedef struct norm_center {
    float hi, lo;
} norm_center;

static norm_center norm_center_of(double mean) {
    norm_center m = {.hi = (float)mean};
    m.lo = (float)(mean - (double)m.hi);
    return m;
}

/* Mean and biased variance of x(n), n > 0. */
static void norm_stats(const float *x, int64_t n, double *mean_out, double *var_out) {
    double acc[NORM_LANES] = {0};
    int64_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (int l = 0; l < NORM_LANES; l++)
            acc[l] += (double)x[i + l];
    double sum = 0.0;
    for (; i < n; i++)
        sum += (double)x[i];
    for (int l = 0; l < NORM_LANES; l++)
        sum += acc[l];
    const double mean = sum / (double)n;

    double sq[NORM_LANES] = {0};
    i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES) {
        for (int l = 0; l < NORM_LANES; l++) {
            double d = (double)x[i + l] - mean;
            sq[l] += d * d;
        }
    }
    double ss = 0.0;
    for (; i < n; i++) {
        double d = (double)x[i] - mean;
        ss += d * d;
    }
    for (int l = 0; l < NORM_LANES; l++)
        ss += sq[l];
    *mean_out = mean;
    *var_out = ss / (double)n;
}

typedef struct norm_job {
    float *y;
    const float *x, *gamma, *beta;
    int64_t channels, hw, groups; /* GroupNorm */
    int64_t dim;                  /* LayerNorm */
    float eps;
} norm_job;

/* Units of `size` elements per chunk so a chunk holds at least NORM_GRAIN elements. */
static int64_t norm_grain(int64_t size) {
    return size >= NORM_GRAIN ? 1 : NORM_GRAIN / (size > 0 ? size : 1);
}

/* Groups [u0, u1) of all B·G (batch, group) pairs. */
static void group_norm_chunk(void *p, int64_t u0, int64_t u1) {
    const norm_job *j = p;
    const int64_t cg = j->channels / j->groups, hw = j->hw; // a group is contiguous
    for (int64_t u = u0; u < u1; u++) {
        const int64_t b = u / j->groups, g = u % j->groups;
        const int64_t off = (b * j->channels + g * cg) * hw;
        double mean, var;
        norm_stats(j->x + off, cg * hw, &mean, &var);
        const norm_center m = norm_center_of(mean);
        const float rstd = (float)(1.0 / sqrt(var + (double)j->eps));
        for (int64_t ch = g * cg; ch < (g + 1) * cg; ch++) {
            const float s = j->gamma ? rstd * j->gamma[ch] : rstd;
            const float t = j->beta ? j->beta[ch] : 0.0f;
            const float *xc = j->x + (b * j->channels + ch) * hw;
            float *yc = j->y + (b * j->channels + ch) * hw;
            for (int64_t i = 0; i < hw; i++)
                yc[i] = ((xc[i] - m.hi) - m.lo) * s + t;
        }
    }
}

void op_group_norm(cs_ctx *c, float *y, const float *x, const float *gamma, const float *beta,
                   int64_t batch, int64_t channels, int64_t hw, int64_t groups, float eps) {
    CTX_PROFILE_OP(c, CS_OP_NORM);
    if (c->measuring) return;
    CS_ASSERT(batch >= 0 && channels > 0 && hw >= 0 && groups > 0 && channels % groups == 0);
    if (hw == 0) return;
    norm_job j = {.y = y,
                  .x = x,
                  .gamma = gamma,
                  .beta = beta,
                  .channels = channels,
                  .hw = hw,
                  .groups = groups,
                  .eps = eps};
    threadpool_for(c->pool, batch * groups, norm_grain(channels / groups * hw), group_norm_chunk,
                   &j);
}

static void layer_norm_chunk(void *p, int64_t r0, int64_t r1) {
    const norm_job *j = p;
    const int64_t dim = j->dim;
    const float *gamma = j->gamma, *beta = j->beta;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * dim;
        float *yr = j->y + r * dim;
        double mean, var;
        norm_stats(xr, dim, &mean, &var);
        const norm_center m = norm_center_of(mean);
        const float rstd = (float)(1.0 / sqrt(var + (double)j->eps));
        if (gamma && beta) {
            for (int64_t k = 0; k < dim; k++)
                yr[k] = ((xr[k] - m.hi) - m.lo) * rstd * gamma[k] + beta[k];
        } else {
            for (int64_t k = 0; k < dim; k++) {
                float v = ((xr[k] - m.hi) - m.lo) * rstd;
                if (gamma) v *= gamma[k];
                if (beta) v += beta[k];
                yr[k] = v;
            }
        }
    }
}

void op_layer_norm(cs_ctx *c, float *y, const float *x, const float *gamma, const float *beta,
                   int64_t rows, int64_t dim, float eps) {
    CTX_PROFILE_OP(c, CS_OP_NORM);
    if (c->measuring) return;
    CS_ASSERT(rows >= 0 && dim > 0);
    norm_job j = {.y = y, .x = x, .gamma = gamma, .beta = beta, .dim = dim, .eps = eps};
    threadpool_for(c->pool, rows, norm_grain(dim), layer_norm_chunk, &j);
}
