/*
 * Element-wise kernels of ops.h: activations (SiLU, exact GELU, quick GELU, GEGLU),
 * arithmetic (scale, clamp, copy, add) and the per-channel broadcasts a resnet block
 * needs (timestep bias, AdaGN scale/shift). Plain loops the compiler can vectorise, spread
 * over the ctx's thread pool in contiguous chunks (each element is computed by the same
 * operations in whichever chunk it falls, so results do not depend on the thread count);
 * in place (y == x) is allowed wherever ops.h says so, and every loop reads an element
 * before writing the same element, so it is safe.
 *
 * Activations follow PyTorch's formulas: silu x/(1+e^-x), quick gelu x·σ(1.702x), gelu
 * 0.5·x·(1+erf(x/√2)) (evaluated through erfc, see gelu1). SiLU and GELU (the UNet's) run
 * as 8-lane AVX2 + FMA code where the CPU has it (silu8, gelu8: within 2.4e-7 and 5.1e-7
 * relative of the exact values, tails padded into a full vector so a value never depends
 * on its position); otherwise, and for quick GELU, libm's expf/erfcf per element.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "ops_simd.h"
#include "threadpool.h"

/* Least elements per pool chunk: below this, waking a worker costs more than it saves.
 * Transcendental activations cost ~10 ns per element, arithmetic well under 1 ns. */
enum { EW_GRAIN_ACT = 4096, EW_GRAIN_ARITH = 32768 };

/* ---- 8-lane activations (AVX2 + FMA) ---- */

/* x·σ(x) = x/(1 + e^-x) for x >= 0 and x·e^x/(1 + e^x) below, so exp never overflows:
 * e = e^-|x| once, then one division. Within 2.4e-7 relative of the exact value for
 * x > -87 (4.2e7 points in [-100, 100]; libm's expf form: 1.7e-7); below, where e^x
 * leaves the normal floats, it gives -0 instead of about -1e-36. */
OPS_TARGET_AVX2 static inline __m256 silu8(__m256 x) {
    const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    const __m256 e = ops_exp_nonpos8(_mm256_sub_ps(_mm256_setzero_ps(), ax));
    const __m256 num =
        _mm256_blendv_ps(_mm256_mul_ps(x, e), x, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
    return _mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* 0.5·x·erfc(-x/√2). erfc(t), t = |x|/√2, from Numerical Recipes' erfcc Chebyshev fit
 * (fractional error < 1.2e-7 for t >= 0): erfc(t) = τ·exp(P(τ) - t²), τ = 1/(1 + t/2).
 * t² = x²/2 is carried exactly as hi + lo (FMA), and the rounding of P - hi is recovered
 * (TwoSum), so exp's argument is good to ~1e-7 absolute even when it is -40: rounding
 * t = x/√2 first (as erfcf(-x·√½) must) would cost 2e-6 relative in the tail. With h =
 * 0.5·x·erfc(t): gelu = h for x < 0, and x - h for x >= 0 (erfc(-t) = 2 - erfc(t)), so
 * neither side cancels. Within 5.1e-7 relative of the exact value wherever |gelu| > 1e-6
 * (9.6e7 points in [-10, 10]; libm's erfcf form: 1.5e-6). |x| is clamped to 16 inside,
 * where erfc has underflowed, so ±inf give inf and -0; NaN stays NaN. */
OPS_TARGET_AVX2 static inline __m256 gelu8(__m256 x0) {
    const __m256 x =
        _mm256_min_ps(_mm256_set1_ps(16.0f), _mm256_max_ps(_mm256_set1_ps(-16.0f), x0));
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    const __m256 t = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x),
                                   _mm256_set1_ps(0.70710678118654752f));
    const __m256 tau = _mm256_div_ps(one, _mm256_fmadd_ps(half, t, one));
    static const float coef[10] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f,
                                   0.27886807f, -0.18628806f, 0.09678418f, 0.37409196f,
                                   1.00002368f, -1.26551223f};
    __m256 p = _mm256_set1_ps(coef[0]);
    for (int i = 1; i < 10; i++)
        p = _mm256_fmadd_ps(p, tau, _mm256_set1_ps(coef[i]));
    const __m256 xx = _mm256_mul_ps(x, x);
    const __m256 t2_hi = _mm256_mul_ps(half, xx);
    const __m256 t2_lo = _mm256_mul_ps(half, _mm256_fmsub_ps(x, x, xx)); // x² - xx, exact
    const __m256 s = _mm256_sub_ps(p, t2_hi);
    // TwoSum(p, -t2_hi): s + err == p - t2_hi exactly.
    const __m256 bv = _mm256_sub_ps(s, p);
    const __m256 err = _mm256_add_ps(_mm256_sub_ps(p, _mm256_sub_ps(s, bv)),
                                     _mm256_sub_ps(_mm256_sub_ps(_mm256_setzero_ps(), t2_hi), bv));
    const __m256 corr = _mm256_sub_ps(err, t2_lo); // exp(s + corr) ≈ exp(s)·(1 + corr)
    __m256 e = _mm256_mul_ps(tau, ops_exp_nonpos8(s));
    e = _mm256_fmadd_ps(e, corr, e); // erfc(t)
    // The x >= 0 side as an explicit FMA: written as x0 - h, GCC may or may not contract it
    // (the intrinsics are plain vector arithmetic to it), and then the vector body and the
    // padded tail could differ in the last bit.
    const __m256 hx = _mm256_mul_ps(half, x);
    const __m256 h = _mm256_mul_ps(hx, e);
    return _mm256_blendv_ps(h, _mm256_fnmadd_ps(hx, e, x0),
                            _mm256_cmp_ps(x0, _mm256_setzero_ps(), _CMP_GE_OQ));
}

/* y(n) = f(x(n)) 8 lanes at a time; the last n % 8 through a zero-padded vector. */
#define OPS_MAP8(name, f)                                                                          \
    OPS_TARGET_AVX2 static void name(float *y, const float *x, int64_t n) {                        \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= n; i += 8)                                                                 \
            _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));                                    \
        if (i < n) {                                                                               \
            float t[8] = {0};                                                                      \
            memcpy(t, x + i, (size_t)(n - i) * sizeof(float));                                     \
            _mm256_storeu_ps(t, f(_mm256_loadu_ps(t)));                                            \
            memcpy(y + i, t, (size_t)(n - i) * sizeof(float));                                     \
        }                                                                                          \
    }
OPS_MAP8(silu_avx2, silu8)
OPS_MAP8(gelu_avx2, gelu8)

/* y(n) = h(n) · gelu(g(n)). */
OPS_TARGET_AVX2 static void geglu_avx2(float *y, const float *h, const float *g, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_mul_ps(_mm256_loadu_ps(h + i), gelu8(_mm256_loadu_ps(g + i))));
    if (i < n) {
        float th[8] = {0}, tg[8] = {0};
        memcpy(th, h + i, (size_t)(n - i) * sizeof(float));
        memcpy(tg, g + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(th, _mm256_mul_ps(_mm256_loadu_ps(th), gelu8(_mm256_loadu_ps(tg))));
        memcpy(y + i, th, (size_t)(n - i) * sizeof(float));
    }
}

/* Arguments of one element-wise loop; each kernel reads the fields it needs. */
typedef struct ew_job {
    float *y;
    const float *a, *b;
    float s, t;
    int64_t inner;    /* row length for the per-row kernels */
    int64_t channels; /* C of the per-channel kernels */
    bool avx2;        /* use the 8-lane activations */
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
    if (j->avx2) {
        silu_avx2(j->y + i0, j->a + i0, i1 - i0);
        return;
    }
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = silu1(j->a[i]);
}

void op_silu(cs_ctx *c, float *y, const float *x, int64_t n) {
    CTX_PROFILE_OP(c, CS_OP_ACTIVATION);
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x, .avx2 = ops_have_avx2()};
    threadpool_for(c->pool, n, EW_GRAIN_ACT, silu_chunk, &j);
}

static void gelu_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    if (j->avx2) {
        gelu_avx2(j->y + i0, j->a + i0, i1 - i0);
        return;
    }
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = gelu1(j->a[i]);
}

void op_gelu(cs_ctx *c, float *y, const float *x, int64_t n) {
    CTX_PROFILE_OP(c, CS_OP_ACTIVATION);
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x, .avx2 = ops_have_avx2()};
    threadpool_for(c->pool, n, EW_GRAIN_ACT, gelu_chunk, &j);
}

static void quick_gelu_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    // As CLIP writes it: x * sigmoid(1.702 * x), the constant rounded to float.
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = j->a[i] * (1.0f / (1.0f + expf(-1.702f * j->a[i])));
}

void op_quick_gelu(cs_ctx *c, float *y, const float *x, int64_t n) {
    CTX_PROFILE_OP(c, CS_OP_ACTIVATION);
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
    CTX_PROFILE_OP(c, CS_OP_ELEMENTWISE);
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
    CTX_PROFILE_OP(c, CS_OP_ELEMENTWISE);
    if (c->measuring) return;
    ew_job j = {.y = y, .a = x, .s = lo, .t = hi};
    threadpool_for(c->pool, n, EW_GRAIN_ARITH, clamp_chunk, &j);
}

void op_copy(cs_ctx *c, float *y, const float *x, int64_t n) {
    CTX_PROFILE_OP(c, CS_OP_ELEMENTWISE);
    if (c->measuring || y == x || n == 0) return;
    memmove(y, x, (size_t)n * sizeof(float));
}

static void add_chunk(void *p, int64_t i0, int64_t i1) {
    const ew_job *j = p;
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = j->a[i] + j->b[i];
}

void op_add(cs_ctx *c, float *y, const float *a, const float *b, int64_t n) {
    CTX_PROFILE_OP(c, CS_OP_ELEMENTWISE);
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
    CTX_PROFILE_OP(c, CS_OP_ELEMENTWISE);
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
    CTX_PROFILE_OP(c, CS_OP_ELEMENTWISE);
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
        if (j->avx2) {
            geglu_avx2(yr, h, g, inner);
            continue;
        }
        for (int64_t k = 0; k < inner; k++)
            yr[k] = h[k] * gelu1(g[k]);
    }
}

void op_geglu(cs_ctx *c, float *y, const float *x, int64_t rows, int64_t inner) {
    CTX_PROFILE_OP(c, CS_OP_ACTIVATION);
    if (c->measuring) return;
    // In place (y == x) is only safe row by row in order: row r's output overlaps row r/2's
    // input. Chunks could run out of order, so in place stays serial.
    ew_job j = {.y = y, .a = x, .inner = inner, .avx2 = ops_have_avx2()};
    if (y == x)
        geglu_chunk(&j, 0, rows);
    else
        threadpool_for(c->pool, rows, rows_grain(inner, EW_GRAIN_ACT), geglu_chunk, &j);
}
