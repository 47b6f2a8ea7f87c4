/*
 * Element-wise kernels of ops.h: activations (SiLU, exact GELU, quick GELU, GEGLU),
 * arithmetic (scale, clamp, copy, add) and the per-channel broadcasts a resnet block
 * needs (timestep bias, AdaGN scale/shift). Plain loops the compiler can vectorise, spread
 * over the ctx's thread pool in contiguous chunks (each element is computed by the same
 * operations in whichever chunk it falls, so results do not depend on the thread count);
 * in place (y == x) is allowed wherever ops.h says so, and every loop reads an element
 * before writing the same element, so it is safe.
 *
 * Activations use libm's expf/erfcf in float (glibc's are within about 1 ulp) with
 * PyTorch's formulas: silu x/(1+e^-x), quick gelu x·σ(1.702x), gelu 0.5·x·(1+erf(x/√2))
 * (evaluated through erfc, see gelu1).
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "threadpool.h"

/* Least elements per pool chunk: below this, waking a worker costs more than it saves.
 * Transcendental activations cost ~10 ns per element, arithmetic well under 1 ns. */
enum { EW_GRAIN_ACT = 4096, EW_GRAIN_ARITH = 32768 };

/* Arguments of one element-wise loop; each kernel reads the fields it needs. */
typedef struct ew_job {
    float *y;
    const float *a, *b;
    float s, t;
    int64_t inner;    /* row length for the per-row kernels */
    int64_t channels; /* C of the per-channel kernels */
} ew_job;

/* Rows of `inner` elements per chunk so a chunk holds at least `grain` elements. */
static int64_t rows_grain(int64_t inner, int64_t grain) {
    return inner >= grain ? 1 : grain / (inner > 0 ? inner : 1);
}

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


static void silu_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = silu1(j->a[i]);
}

void op_silu(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x};
    threadpool_for(c->pool, n, EW_GRAIN_ACT, silu_chunk, &j);
}

static void gelu_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = gelu1(j->a[i]);
}

void op_gelu(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x};
    threadpool_for(c->pool, n, EW_GRAIN_ACT, gelu_chunk, &j);
}

static void quick_gelu_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    // As CLIP writes it: x * sigmoid(1.702 * x), the constant rounded to float.
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = j->a[i] * (1.0f / (1.0f + expf(-1.702f * j->a[i])));
}

void op_quick_gelu(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x};
    threadpool_for(c->pool, n, EW_GRAIN_ACT, quick_gelu_chunk, &j);
}

static void scale_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = j->a[i] * j->s;
}

void op_scale(cs_ctx *c, float *y, const float *x, float s, int64_t n) {
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x, .s = s};
    threadpool_for(c->pool, n, EW_GRAIN_ARITH, scale_chunk, &j);
}

static void clamp_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    // Comparisons are false for NaN, so NaN passes through as in torch.clamp.
    for (int64_t i = i0; i < i1; i++) {
        float v = j->a[i];
        j->y[i] = v < j->s ? j->s : (v > j->t ? j->t : v);
    }
}

void op_clamp(cs_ctx *c, float *y, const float *x, float lo, float hi, int64_t n) {
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x, .s = lo, .t = hi};
    threadpool_for(c->pool, n, EW_GRAIN_ARITH, clamp_chunk, &j);
}

void op_copy(cs_ctx *c, float *y, const float *x, int64_t n) {
    if (c->measuring || y == x || n == 0) return;
    memmove(y, x, (size_t)n * sizeof(float));
}

static void add_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = j->a[i] + j->b[i];
}

void op_add(cs_ctx *c, float *y, const float *a, const float *b, int64_t n) {
    if (c->measuring) return;
    ew_job j = {.y = y, .a = a, .b = b};
    threadpool_for(c->pool, n, EW_GRAIN_ARITH, add_chunk, &j);
}

/* Rows [r0, r1) of y(B·C, HW) += v[row]. */
static void channel_bias_chunk(void *p, int64_t r0, int64_t r1) {
    const ew_job *j = p;
    for (int64_t bc = r0; bc < r1; bc++) {
        const float add = j->a[bc];
        float *row = j->y + bc * j->inner;
        for (int64_t i = 0; i < j->inner; i++)
            row[i] += add;
    }
}

void op_add_channel_bias(cs_ctx *c, float *y, const float *v, int64_t batch, int64_t channels,
                         int64_t hw) {
    if (c->measuring) return;
    ew_job j = {.y = y, .a = v, .inner = hw};
    threadpool_for(c->pool, batch * channels, rows_grain(hw, EW_GRAIN_ARITH), channel_bias_chunk,
                   &j);
}

/* Rows [r0, r1) of y(B·C, HW). */
static void scale_shift_chunk(void *p, int64_t r0, int64_t r1) {
    const ew_job *j = p;
    const int64_t channels = j->channels;
    for (int64_t bc = r0; bc < r1; bc++) {
        const int64_t b = bc / channels, ch = bc % channels;
        const float *sc = j->a + b * 2 * channels; // (C) scale
        const float *sh = sc + channels;           // (C) shift
        // diffusers: hidden * (1 + scale) + shift, with (1 + scale) rounded first.
        const float m = 1.0f + sc[ch], t = sh[ch];
        float *row = j->y + bc * j->inner;
        for (int64_t i = 0; i < j->inner; i++)
            row[i] = row[i] * m + t;
    }
}

void op_scale_shift(cs_ctx *c, float *y, const float *scale_shift, int64_t batch, int64_t channels,
                    int64_t hw) {
    if (c->measuring) return;
    if (channels == 0) return;
    ew_job j = {.y = y, .a = scale_shift, .channels = channels, .inner = hw};
    threadpool_for(c->pool, batch * channels, rows_grain(hw, EW_GRAIN_ARITH), scale_shift_chunk,
                   &j);
}

static void geglu_chunk(void *p, int64_t r0, int64_t r1) {
    const ew_job *j = p;
    const int64_t inner = j->inner;
    for (int64_t r = r0; r < r1; r++) {
        const float *h = j->a + r * 2 * inner; // (inner) hidden half
        const float *g = h + inner;            // (inner) gate half
        float *yr = j->y + r * inner;
        for (int64_t k = 0; k < inner; k++)
            yr[k] = h[k] * gelu1(g[k]);
    }
}

void op_geglu(cs_ctx *c, float *y, const float *x, int64_t rows, int64_t inner) {
    if (c->measuring) return;
    // In place (y == x) is only safe row by row in order: row r's output overlaps row r/2's
    // input. Chunks could run out of order, so in place stays serial.
    ew_job j = {.y = y, .a = x, .inner = inner};
    if (y == x)
        geglu_chunk(&j, 0, rows);
    else
        threadpool_for(c->pool, rows, rows_grain(inner, EW_GRAIN_ACT), geglu_chunk, &j);
}
