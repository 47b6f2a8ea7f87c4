/* CFG combination and refinements (see guidance.h). */
#include "guidance.h"

#include <math.h>
#include <string.h>

guidance_rows guidance_rows_for(double scale, double sigma, double lo, double hi) {
    if (hi > 0 && (sigma < lo || sigma > hi)) return (guidance_rows){.cond = true};
    if (scale == 1.0) return (guidance_rows){.cond = true};
    if (scale == 0.0) return (guidance_rows){.uncond = true};
    return (guidance_rows){.cond = true, .uncond = true};
}

void guidance_combine(float *eps, const float *eps_c, const float *eps_u, float scale,
                      guidance_rows rows, int64_t n) {
    if (!rows.uncond) {
        if (eps != eps_c) memmove(eps, eps_c, (size_t)n * sizeof *eps);
        return;
    }
    if (!rows.cond) {
        if (eps != eps_u) memmove(eps, eps_u, (size_t)n * sizeof *eps);
        return;
    }
    for (int64_t i = 0; i < n; i++) eps[i] = eps_u[i] + scale * (eps_c[i] - eps_u[i]);
}

static double std_unbiased(const float *x, int64_t n) {
    double mean = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    return n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
}

void guidance_scale_embedding(double guidance_scale, int64_t dim, float *out) {
    const int64_t half = dim / 2;
    CS_ASSERT(half >= 2);
    /* torch.tensor(guidance_scale - 1) is float32, then * 1000.0 in float32. */
    const float w = (float)(guidance_scale - 1.0) * 1000.0f;
    const float step = logf(10000.0f) / (float)(half - 1);
    for (int64_t k = 0; k < half; k++) {
        const float arg = w * expf((float)k * -step);
        out[k] = sinf(arg);
        out[half + k] = cosf(arg);
    }
    if (dim % 2) out[dim - 1] = 0.0f;
}

void guidance_rescale(float *eps, const float *eps_c, float phi, int64_t n) {
    if (phi <= 0.0f) return;
    double sd_c = std_unbiased(eps_c, n), sd = std_unbiased(eps, n);
    if (!(sd > 0)) return; /* a constant estimate has nothing to rescale */
    float ratio = (float)(sd_c / sd);
    for (int64_t i = 0; i < n; i++) eps[i] = phi * (eps[i] * ratio) + (1.0f - phi) * eps[i];
}
