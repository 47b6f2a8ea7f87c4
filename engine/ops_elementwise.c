/*
 * Element-wise kernels of ops.h: activations (SiLU, exact GELU, quick GELU, GEGLU),
 * arithmetic (scale, clamp, copy, add) and the per-channel broadcasts a resnet block
 * needs (timestep bias, AdaGN scale/shift). Plain single-threaded loops the compiler can
 * vectorise; in place (y == x) is allowed wherever ops.h says so, and every loop reads an
 * element before writing the same element, so it is safe.
 *
 * Activations use libm's expf/erfcf in float (glibc's are within about 1 ulp) with
 * PyTorch's formulas: silu x/(1+e^-x), quick gelu x·σ(1.702x), gelu 0.5·x·(1+erf(x/√2))
 * (evaluated through erfc, see gelu1).
 */
#include "ops.h"

#include <math.h>
#include <string.h>

static inline float silu1(float x) {
    return x / (1.0f + expf(-x));
}

/* 0.5·x·(1 + erf(x/√2)) written as 0.5·x·erfc(-x/√2): the same function, but for
 * negative x the 1 + erf form cancels (gelu(-3) loses 6 digits in float) while erfc is
 * accurate to about 1 ulp everywhere. Differs from PyTorch's float result only by that
 * cancellation error (< 1e-7 absolute). */
static inline float gelu1(float x) {
    return 0.5f * x * erfcf(-x * (float)M_SQRT1_2);
}

void op_silu(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring) return;
    for (int64_t i = 0; i < n; i++)
        y[i] = silu1(x[i]);
}

void op_gelu(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring) return;
    for (int64_t i = 0; i < n; i++)
        y[i] = gelu1(x[i]);
}

void op_quick_gelu(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring) return;
    // As CLIP writes it: x * sigmoid(1.702 * x), the constant rounded to float.
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * (1.0f / (1.0f + expf(-1.702f * x[i])));
}

void op_scale(cs_ctx *c, float *y, const float *x, float s, int64_t n) {
    if (c->measuring) return;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * s;
}

void op_clamp(cs_ctx *c, float *y, const float *x, float lo, float hi, int64_t n) {
    if (c->measuring) return;
    // Comparisons are false for NaN, so NaN passes through as in torch.clamp.
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

void op_copy(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring || y == x || n == 0) return;
    memmove(y, x, (size_t)n * sizeof(float));
}

void op_add(cs_ctx *c, float *y, const float *a, const float *b, int64_t n) {
    if (c->measuring) return;
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void op_add_channel_bias(cs_ctx *c, float *y, const float *v, int64_t batch, int64_t channels,
                         int64_t hw) {
    if (c->measuring) return;
    for (int64_t bc = 0; bc < batch * channels; bc++) {
        const float add = v[bc];
        float *row = y + bc * hw;
        for (int64_t i = 0; i < hw; i++)
            row[i] += add;
    }
}

void op_scale_shift(cs_ctx *c, float *y, const float *scale_shift, int64_t batch, int64_t channels,
                    int64_t hw) {
    if (c->measuring) return;
    for (int64_t b = 0; b < batch; b++) {
        const float *sc = scale_shift + b * 2 * channels; // (C) scale
        const float *sh = sc + channels;                  // (C) shift
        for (int64_t ch = 0; ch < channels; ch++) {
            // diffusers: hidden * (1 + scale) + shift, with (1 + scale) rounded first.
            const float m = 1.0f + sc[ch], t = sh[ch];
            float *row = y + (b * channels + ch) * hw;
            for (int64_t i = 0; i < hw; i++)
                row[i] = row[i] * m + t;
        }
    }
}

void op_geglu(cs_ctx *c, float *y, const float *x, int64_t rows, int64_t inner) {
    if (c->measuring) return;
    for (int64_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * inner; // (inner) hidden half
        const float *g = h + inner;         // (inner) gate half
        float *yr = y + r * inner;
        for (int64_t j = 0; j < inner; j++)
            yr[j] = h[j] * gelu1(g[j]);
    }
}
