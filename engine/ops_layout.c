/*
 * Layout and embedding kernels of ops.h: NCHW <-> NLC transposes, channel concatenation,
 * nearest 2× upsampling, embedding-table lookup and the sinusoidal timestep embedding.
 * Single-threaded; outputs never alias inputs here.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Square tile of the blocked transpose: 32×32 floats = 4 KB read plus 4 KB written, so
 * both sides of a tile stay in L1 whichever side is strided. */
enum { TRANSPOSE_TILE = 32 };

/* y(cols, rows) = x(rows, cols)ᵀ for one image. */
static void transpose(float *y, const float *x, int64_t rows, int64_t cols) {
    for (int64_t r0 = 0; r0 < rows; r0 += TRANSPOSE_TILE) {
        const int64_t r1 = r0 + TRANSPOSE_TILE < rows ? r0 + TRANSPOSE_TILE : rows;
        for (int64_t c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
            const int64_t c1 = c0 + TRANSPOSE_TILE < cols ? c0 + TRANSPOSE_TILE : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t col = c0; col < c1; col++)
                    y[col * rows + r] = x[r * cols + col];
        }
    }
}

void op_nchw_to_nlc(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                    int64_t hw) {
    if (c->measuring) return;
    for (int64_t b = 0; b < batch; b++) // (C, HW) -> (HW, C)
        transpose(y + b * channels * hw, x + b * channels * hw, channels, hw);
}

void op_nlc_to_nchw(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                    int64_t hw) {
    if (c->measuring) return;
    for (int64_t b = 0; b < batch; b++) // (HW, C) -> (C, HW)
        transpose(y + b * channels * hw, x + b * channels * hw, hw, channels);
}

void op_concat_channels(cs_ctx *c, float *y, const float *a, int64_t ca, const float *b, int64_t cb,
                        int64_t batch, int64_t hw) {
    if (c->measuring) return;
    const size_t na = (size_t)(ca * hw), nb = (size_t)(cb * hw);
    for (int64_t i = 0; i < batch; i++) {
        float *yi = y + (size_t)i * (na + nb); // (Ca + Cb, HW)
        if (na) memcpy(yi, a + (size_t)i * na, na * sizeof(float));
        if (nb) memcpy(yi + na, b + (size_t)i * nb, nb * sizeof(float));
    }
}

void op_upsample_nearest2x(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                           int64_t h, int64_t w) {
    if (c->measuring) return;
    const int64_t w2 = 2 * w;
    for (int64_t plane = 0; plane < batch * channels; plane++) {
        const float *xp = x + plane * h * w; // (H, W)
        float *yp = y + plane * 4 * h * w;   // (2H, 2W)
        for (int64_t i = 0; i < h; i++) {
            float *row = yp + 2 * i * w2;
            for (int64_t j = 0; j < w; j++)
                row[2 * j] = row[2 * j + 1] = xp[i * w + j];
            memcpy(row + w2, row, (size_t)w2 * sizeof(float)); // the duplicated row
        }
    }
}

void op_embedding(cs_ctx *c, float *y, const float *table, const int64_t *ids, int64_t n,
                  int64_t dim) {
    if (c->measuring || dim == 0) return;
    for (int64_t i = 0; i < n; i++)
        memcpy(y + i * dim, table + ids[i] * dim, (size_t)dim * sizeof(float));
}

void op_timestep_embedding(cs_ctx *c, float *y, const float *t, int64_t batch, int64_t dim,
                           bool flip_sin_to_cos, float freq_shift) {
    if (c->measuring) return;
    CS_ASSERT(dim >= 0);
    const int64_t half = dim / 2;
    // diffusers computes every step in float32 tensors with Python-double scalars, which
    // PyTorch rounds to float before the element-wise op:
    //   exponent = (-ln(10000) * arange(half)) / (half - freq_shift); freq = exp(exponent)
    const float neg_log_period = (float)-log(10000.0);
    const float denom = (float)((double)half - (double)freq_shift);
    for (int64_t b = 0; b < batch; b++) {
        float *yb = y + b * dim;
        float *sin_part = flip_sin_to_cos ? yb + half : yb;
        float *cos_part = flip_sin_to_cos ? yb : yb + half;
        for (int64_t j = 0; j < half; j++) {
            const float exponent = ((float)j * neg_log_period) / denom;
            const float arg = t[b] * expf(exponent);
            sin_part[j] = sinf(arg);
            cos_part[j] = cosf(arg);
        }
        if (dim % 2) yb[dim - 1] = 0.0f;
    }
}
