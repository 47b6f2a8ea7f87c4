/*
 * Layout and embedding kernels of ops.h: NCHW <-> NLC transposes, channel concatenation,
 * nearest 2× upsampling, embedding-table lookup and the sinusoidal timestep embedding.
 * Pure data movement: the large ones are spread over the ctx's thread pool (copies do not
 * depend on chunking). Outputs never alias inputs here.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "ops_simd.h"
#include "threadpool.h"

/* Least floats moved per pool chunk. */
enum { LAYOUT_GRAIN = 32768 };

/* Square tile of the blocked transpose: 32×32 floats = 4 KB read plus 4 KB written, so
 * both sides of a tile stay in L1 whichever side is strided. */
enum { TRANSPOSE_TILE = 32 };

/* Rows [r0, r1), columns [c0, c1) of the transpose y(cols, rows) = x(rows, cols)ᵀ of one
 * image. */
static void transpose_block(float *y, const float *x, int64_t rows, int64_t cols, int64_t r0,
                            int64_t r1, int64_t c0, int64_t c1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t col = c0; col < c1; col++)
            y[col * rows + r] = x[r * cols + col];
}

/* Rows [r0, r1) of the transpose, all columns, in TRANSPOSE_TILE squares. */
static void transpose_rows(float *y, const float *x, int64_t rows, int64_t cols, int64_t r0,
                           int64_t r1) {
    for (; r0 < r1; r0 += TRANSPOSE_TILE) {
        const int64_t re = r0 + TRANSPOSE_TILE < r1 ? r0 + TRANSPOSE_TILE : r1;
        for (int64_t c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE)
            transpose_block(y, x, rows, cols, r0, re, c0,
                            c0 + TRANSPOSE_TILE < cols ? c0 + TRANSPOSE_TILE : cols);
    }
}

/* transpose_rows in 8 × 8 blocks transposed in registers; the edges of the image that do
 * not fill a block go through transpose_block. */
OPS_TARGET_AVX2 static void transpose_rows_avx2(float *y, const float *x, int64_t rows,
                                                int64_t cols, int64_t r0, int64_t r1) {
    const int64_t r8 = r0 + (r1 - r0) / 8 * 8, c8 = cols / 8 * 8;
    for (int64_t c0 = 0; c0 < c8; c0 += TRANSPOSE_TILE) {
        const int64_t c1 = c0 + TRANSPOSE_TILE < c8 ? c0 + TRANSPOSE_TILE : c8;
        for (int64_t r = r0; r < r8; r += 8) {
            const float *src[8];
            for (int i = 0; i < 8; i++)
                src[i] = x + (r + i) * cols + c0;
            for (int64_t col = c0; col < c1; col += 8) {
                ops_transpose8x8(y + col * rows + r, rows, src);
                for (int i = 0; i < 8; i++)
                    src[i] += 8;
            }
        }
    }
    transpose_block(y, x, rows, cols, r0, r8, c8, cols); /* the right edge */
    transpose_block(y, x, rows, cols, r8, r1, 0, cols);  /* the bottom rows */
}

/* A batch of transposes cut into units of one tile row (TRANSPOSE_TILE source rows of
 * one image) so the pool can share even a single image. */
typedef struct transpose_job {
    float *y;
    const float *x;
    int64_t rows, cols, tiles; /* per image; tiles = ceil(rows / TRANSPOSE_TILE) */
    bool avx2;
} transpose_job;

static void transpose_chunk(void *p, int64_t u0, int64_t u1) {
    const transpose_job *j = p;
    for (int64_t u = u0; u < u1; u++) {
        const int64_t b = u / j->tiles, r0 = u % j->tiles * TRANSPOSE_TILE;
        const int64_t r1 = r0 + TRANSPOSE_TILE < j->rows ? r0 + TRANSPOSE_TILE : j->rows;
        const int64_t off = b * j->rows * j->cols;
        if (j->avx2)
            transpose_rows_avx2(j->y + off, j->x + off, j->rows, j->cols, r0, r1);
        else
            transpose_rows(j->y + off, j->x + off, j->rows, j->cols, r0, r1);
    }
}

static void transpose_batch(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t rows,
                            int64_t cols) {
    if (rows == 0 || cols == 0) return;
    transpose_job j = {.y = y,
                       .x = x,
                       .rows = rows,
                       .cols = cols,
                       .tiles = (rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE,
                       .avx2 = ops_have_avx2()};
    const int64_t unit = TRANSPOSE_TILE * cols;
    threadpool_for(c->pool, batch * j.tiles, unit >= LAYOUT_GRAIN ? 1 : LAYOUT_GRAIN / unit,
                   transpose_chunk, &j);
}

void op_nchw_to_nlc(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                    int64_t hw) {
    CTX_PROFILE_OP(c, CS_OP_LAYOUT);
    if (c->measuring) return;
    transpose_batch(c, y, x, batch, channels, hw); // (C, HW) -> (HW, C) per image
}

void op_nlc_to_nchw(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                    int64_t hw) {
    CTX_PROFILE_OP(c, CS_OP_LAYOUT);
    if (c->measuring) return;
    transpose_batch(c, y, x, batch, hw, channels); // (HW, C) -> (C, HW) per image
}

void op_concat_channels(cs_ctx *c, float *y, const float *a, int64_t ca, const float *b, int64_t cb,
                        int64_t batch, int64_t hw) {
    CTX_PROFILE_OP(c, CS_OP_LAYOUT);
    if (c->measuring) return;
    const size_t na = (size_t)(ca * hw), nb = (size_t)(cb * hw);
    for (int64_t i = 0; i < batch; i++) {
        float *yi = y + (size_t)i * (na + nb); // (Ca + Cb, HW)
        if (na) memcpy(yi, a + (size_t)i * na, na * sizeof(float));
        if (nb) memcpy(yi + na, b + (size_t)i * nb, nb * sizeof(float));
    }
}

typedef struct upsample_job {
    float *y;
    const float *x;
    int64_t h, w;
} upsample_job;

static void upsample_chunk(void *p, int64_t p0, int64_t p1) {
    const upsample_job *j = p;
    const int64_t h = j->h, w = j->w, w2 = 2 * w;
    for (int64_t plane = p0; plane < p1; plane++) {
        const float *xp = j->x + plane * h * w; // (H, W)
        float *yp = j->y + plane * 4 * h * w;   // (2H, 2W)
        for (int64_t i = 0; i < h; i++) {
            float *row = yp + 2 * i * w2;
            for (int64_t k = 0; k < w; k++)
                row[2 * k] = row[2 * k + 1] = xp[i * w + k];
            memcpy(row + w2, row, (size_t)w2 * sizeof(float)); // the duplicated row
        }
    }
}

void op_upsample_nearest2x(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                           int64_t h, int64_t w) {
    CTX_PROFILE_OP(c, CS_OP_LAYOUT);
    if (c->measuring || h == 0 || w == 0) return;
    upsample_job j = {.y = y, .x = x, .h = h, .w = w};
    const int64_t plane = 4 * h * w;
    threadpool_for(c->pool, batch * channels, plane >= LAYOUT_GRAIN ? 1 : LAYOUT_GRAIN / plane,
                   upsample_chunk, &j);
}

void op_embedding(cs_ctx *c, float *y, const float *table, const int64_t *ids, int64_t n,
                  int64_t dim) {
    CTX_PROFILE_OP(c, CS_OP_LAYOUT);
    if (c->measuring || dim == 0) return;
    for (int64_t i = 0; i < n; i++)
        memcpy(y + i * dim, table + ids[i] * dim, (size_t)dim * sizeof(float));
}

void op_timestep_embedding(cs_ctx *c, float *y, const float *t, int64_t batch, int64_t dim,
                           bool flip_sin_to_cos, float freq_shift) {
    CTX_PROFILE_OP(c, CS_OP_LAYOUT);
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
