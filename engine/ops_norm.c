/*
 * Normalisation kernels of ops.h: GroupNorm over (B, C, HW) and LayerNorm over rows, with
 * PyTorch semantics (biased variance, eps inside the square root, optional affine).
 * Statistics are accumulated in double over two passes (mean, then squared deviations),
 * so a large mean relative to the spread costs no precision; the per-element work stays
 * in float. Single-threaded; touches only the given buffers.
 */
#include "ops.h"

#include <math.h>

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

void op_group_norm(cs_ctx *c, float *y, const float *x, const float *gamma, const float *beta,
                   int64_t batch, int64_t channels, int64_t hw, int64_t groups, float eps) {
    if (c->measuring) return;
    CS_ASSERT(batch >= 0 && channels > 0 && hw >= 0 && groups > 0 && channels % groups == 0);
    if (hw == 0) return;
    const int64_t cg = channels / groups; // channels per group; a group is contiguous
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t g = 0; g < groups; g++) {
            const int64_t off = (b * channels + g * cg) * hw;
            double mean, var;
            norm_stats(x + off, cg * hw, &mean, &var);
            const norm_center m = norm_center_of(mean);
            const float rstd = (float)(1.0 / sqrt(var + (double)eps));
            for (int64_t ch = g * cg; ch < (g + 1) * cg; ch++) {
                const float s = gamma ? rstd * gamma[ch] : rstd;
                const float t = beta ? beta[ch] : 0.0f;
                const float *xc = x + (b * channels + ch) * hw;
                float *yc = y + (b * channels + ch) * hw;
                for (int64_t i = 0; i < hw; i++)
                    yc[i] = ((xc[i] - m.hi) - m.lo) * s + t;
            }
        }
    }
}

void op_layer_norm(cs_ctx *c, float *y, const float *x, const float *gamma, const float *beta,
                   int64_t rows, int64_t dim, float eps) {
    if (c->measuring) return;
    CS_ASSERT(rows >= 0 && dim > 0);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double mean, var;
        norm_stats(xr, dim, &mean, &var);
        const norm_center m = norm_center_of(mean);
        const float rstd = (float)(1.0 / sqrt(var + (double)eps));
        if (gamma && beta) {
            for (int64_t j = 0; j < dim; j++)
                yr[j] = ((xr[j] - m.hi) - m.lo) * rstd * gamma[j] + beta[j];
        } else {
            for (int64_t j = 0; j < dim; j++) {
                float v = ((xr[j] - m.hi) - m.lo) * rstd;
                if (gamma) v *= gamma[j];
                if (beta) v += beta[j];
                yr[j] = v;
            }
        }
    }
}
