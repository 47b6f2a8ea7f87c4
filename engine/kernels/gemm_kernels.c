/*
 * Micro-kernels of gemm_kernels.h. The SIMD ones are compiled with per-function target
 * attributes, so the library stays runnable on any x86-64 (gemm.c calls them only when
 * the CPU has the features) and builds on other architectures without them.
 */
#include "gemm_kernels.h"

#include <float.h>
#include <math.h>

#include "half.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <stdatomic.h>
#include <time.h>
#define CS_GEMM_X86 1

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile float rate_sink; /* keeps the timed chains' results alive */
#endif

/* x with a subnormal flushed to a zero of its sign (vdpbf16ps's FTZ on each FMA). */
static float flush_subnormal(float x) {
    return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x;
}

static float bf16_lo(gemm_pair p) { return cs_bf16_to_f32((uint16_t)(p & 0xffffu)); }
static float bf16_hi(gemm_pair p) { return cs_bf16_to_f32((uint16_t)(p >> 16)); }

void gemm_kernel_bf16_portable(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                               int64_t ldc, bool acc) {
    for (int r = 0; r < GEMM_MR; r++)
        for (int j = 0; j < GEMM_NR; j++) {
            float s = acc ? flush_subnormal(c[r * ldc + j]) : 0.0f;
            for (int64_t p = 0; p < kp; p++) {
                const gemm_pair x = a[p * GEMM_MR + r], w = b[p * GEMM_NR + j];
                s = flush_subnormal(fmaf(bf16_hi(x), bf16_hi(w), s));
                s = flush_subnormal(fmaf(bf16_lo(x), bf16_lo(w), s));
            }
            c[r * ldc + j] = s;
        }
}

void gemm_kernel_portable(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                          bool acc) {
    for (int r = 0; r < GEMM_MR; r++)
        for (int j = 0; j < GEMM_NR; j++) {
            float s = acc ? c[r * ldc + j] : 0.0f;
            for (int64_t k = 0; k < kc; k++)
                s = fmaf(a[k * GEMM_MR + r], b[k * GEMM_NR + j], s);
            c[r * ldc + j] = s;
        }
}

#ifdef CS_GEMM_X86

/* The AVX-512 tiles' shared steps, on 8 rows × nv vectors of 16 accumulators (nv 1 to 3, a
 * constant where inlined, so the accumulators stay in registers). */

/* cv = the tile of c (row stride ldc), or zeros. */
__attribute__((target("avx512f"), always_inline)) static inline void
avx512_acc_load(const int nv, __m512 cv[3][GEMM_MR], const float *c, int64_t ldc, bool acc) {
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++)
#pragma GCC unroll 8
        for (int r = 0; r < GEMM_MR; r++)
            cv[v][r] = acc ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
}

__attribute__((target("avx512f"), always_inline)) static inline void
avx512_acc_store(const int nv, __m512 cv[3][GEMM_MR], float *c, int64_t ldc) {
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++)
#pragma GCC unroll 8
        for (int r = 0; r < GEMM_MR; r++) _mm512_storeu_ps(c + r * ldc + 16 * v, cv[v][r]);
}

/* One k step: cv[v][r] += ak[r] · bv[v], a broadcast of ak per row. */
__attribute__((target("avx512f"), always_inline)) static inline void
avx512_acc_step(const int nv, __m512 cv[3][GEMM_MR], const float *ak, const __m512 bv[3]) {
#pragma GCC unroll 8
    for (int r = 0; r < GEMM_MR; r++) {
        const __m512 ar = _mm512_set1_ps(ak[r]);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) cv[v][r] = _mm512_fmadd_ps(ar, bv[v], cv[v][r]);
    }
}

/* 8 rows × nv vectors of 16: 8·nv accumulators, nv loads of b and 8 broadcasts of a per k. */
__attribute__((target("avx512f"), always_inline)) static inline void
avx512_tile(const int nv, int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
            bool acc) {
    __m512 cv[3][GEMM_MR];
    avx512_acc_load(nv, cv, c, ldc, acc);
    for (int64_t k = 0; k < kc; k++) {
        __m512 bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) bv[v] = _mm512_loadu_ps(b + k * GEMM_NR + 16 * v);
        avx512_acc_step(nv, cv, a + k * GEMM_MR, bv);
    }
    avx512_acc_store(nv, cv, c, ldc);
}

__attribute__((target("avx512f"))) void gemm_kernel_avx512(int64_t kc, const float *a,
                                                            const float *b, float *c,
                                                            int64_t ldc, bool acc) {
    avx512_tile(3, kc, a, b, c, ldc, acc);
}

__attribute__((target("avx512f"))) void gemm_kernel_avx512_16(int64_t kc, const float *a,
                                                               const float *b, float *c,
                                                               int64_t ldc, bool acc) {
    avx512_tile(1, kc, a, b, c, ldc, acc);
}

__attribute__((target("avx512f"))) void gemm_kernel_avx512_32(int64_t kc, const float *a,
                                                               const float *b, float *c,
                                                               int64_t ldc, bool acc) {
    avx512_tile(2, kc, a, b, c, ldc, acc);
}

/* The AVX2 sub-tiles' shared steps, on 4 rows × 3 vectors of 8 accumulators. */

/* cv = the sub-tile of c (row stride ldc), or zeros. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
avx2_acc_load(__m256 cv[3][4], const float *c, int64_t ldc, bool acc) {
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < 3; v++)
            cv[v][r] = acc ? _mm256_loadu_ps(c + r * ldc + 8 * v) : _mm256_setzero_ps();
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
avx2_acc_store(__m256 cv[3][4], float *c, int64_t ldc) {
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < 3; v++) _mm256_storeu_ps(c + r * ldc + 8 * v, cv[v][r]);
}

/* One k step: cv[v][r] += ak[r] · bv[v], a broadcast of ak per row. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
avx2_acc_step(__m256 cv[3][4], const float *ak, const __m256 bv[3]) {
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        const __m256 ar = _mm256_broadcast_ss(ak + r);
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++) cv[v][r] = _mm256_fmadd_ps(ar, bv[v], cv[v][r]);
    }
}

/* 16 ymm registers: the tile runs as 4 sub-tiles of 4 rows × 24 columns (12 accumulators,
 * 3 loads of b, 1 broadcast). */
__attribute__((target("avx2,fma"))) static void avx2_sub(int64_t kc, const float *a,
                                                         const float *b, float *c, int64_t ldc,
                                                         bool acc) {
    __m256 cv[3][4];
    avx2_acc_load(cv, c, ldc, acc);
    for (int64_t k = 0; k < kc; k++) {
        __m256 bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++) bv[v] = _mm256_loadu_ps(b + k * GEMM_NR + 8 * v);
        avx2_acc_step(cv, a + k * GEMM_MR, bv);
    }
    avx2_acc_store(cv, c, ldc);
}

void gemm_kernel_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                      bool acc) {
    for (int rh = 0; rh < 2; rh++)
        for (int ch = 0; ch < 2; ch++)
            avx2_sub(kc, a + rh * 4, b + ch * 24, c + rh * 4 * ldc + ch * 24, ldc, acc);
}

/* The bf16 twin of avx512_tile: per pair, nv loads of 16 weight pairs, 8 broadcasts of an
 * activation pair, 8·nv vdpbf16ps (2 FLOP per lane and half each). */
__attribute__((target("avx512f,avx512bf16"), always_inline)) static inline void
avx512bf16_tile(const int nv, int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                int64_t ldc, bool acc) {
    __m512 cv[3][GEMM_MR];
    avx512_acc_load(nv, cv, c, ldc, acc);
    for (int64_t p = 0; p < kp; p++) {
        __m512bh bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            bv[v] = (__m512bh)_mm512_loadu_si512(b + p * GEMM_NR + 16 * v);
        const gemm_pair *ap = a + p * GEMM_MR;
#pragma GCC unroll 8
        for (int r = 0; r < GEMM_MR; r++) {
            const __m512bh ar = (__m512bh)_mm512_set1_epi32((int)ap[r]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) cv[v][r] = _mm512_dpbf16_ps(cv[v][r], ar, bv[v]);
        }
    }
    avx512_acc_store(nv, cv, c, ldc);
}

__attribute__((target("avx512f,avx512bf16"))) void gemm_kernel_bf16_avx512(
    int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c, int64_t ldc, bool acc) {
    avx512bf16_tile(3, kp, a, b, c, ldc, acc);
}

__attribute__((target("avx512f,avx512bf16"))) void gemm_kernel_bf16_avx512_16(
    int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c, int64_t ldc, bool acc) {
    avx512bf16_tile(1, kp, a, b, c, ldc, acc);
}

__attribute__((target("avx512f,avx512bf16"))) void gemm_kernel_bf16_avx512_32(
    int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c, int64_t ldc, bool acc) {
    avx512bf16_tile(2, kp, a, b, c, ldc, acc);
}

bool gemm_bf16_hw(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

/* The split twin of avx512bf16_tile: per pair, the high halves of b (a mask) against the
 * broadcast high values of a2, then the low halves (a shift) against its low values; b is
 * read twice from L1 rather than held, so the tile's 24 accumulators keep their registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
avx512_split_tile(const int nv, int64_t kp, const float *a2, const gemm_pair *b, float *c,
                  int64_t ldc, bool acc) {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u); /* FTZ | DAZ, as vdpbf16ps */
    __m512 cv[3][GEMM_MR];
    avx512_acc_load(nv, cv, c, ldc, acc);
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    for (int64_t p = 0; p < kp; p++) {
        const gemm_pair *bp = b + p * GEMM_NR;
        const float *ah = a2 + 2 * p * GEMM_MR, *al = ah + GEMM_MR;
        __m512 bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_castsi512_ps(_mm512_and_si512(_mm512_loadu_si512(bp + 16 * v), high));
        avx512_acc_step(nv, cv, ah, bv);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_loadu_si512(bp + 16 * v), 16));
        avx512_acc_step(nv, cv, al, bv);
    }
    avx512_acc_store(nv, cv, c, ldc);
    _mm_setcsr(csr);
}

__attribute__((target("avx512f"))) void gemm_kernel_bf16_split_avx512(
    int64_t kp, const float *a2, const gemm_pair *b, float *c, int64_t ldc, bool acc) {
    avx512_split_tile(3, kp, a2, b, c, ldc, acc);
}

__attribute__((target("avx512f"))) void gemm_kernel_bf16_split_avx512_16(
    int64_t kp, const float *a2, const gemm_pair *b, float *c, int64_t ldc, bool acc) {
    avx512_split_tile(1, kp, a2, b, c, ldc, acc);
}

__attribute__((target("avx512f"))) void gemm_kernel_bf16_split_avx512_32(
    int64_t kp, const float *a2, const gemm_pair *b, float *c, int64_t ldc, bool acc) {
    avx512_split_tile(2, kp, a2, b, c, ldc, acc);
}

/* The AVX2 split kernel: gemm_kernel_avx2's four sub-tiles of 4 rows × 24 columns, each
 * pair as two FMA steps (high halves, then low halves) like avx512_split_tile. */
__attribute__((target("avx2,fma"))) static void avx2_split_sub(int64_t kp, const float *a2,
                                                               const gemm_pair *b, float *c,
                                                               int64_t ldc, bool acc) {
    __m256 cv[3][4];
    avx2_acc_load(cv, c, ldc, acc);
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    for (int64_t p = 0; p < kp; p++) {
        const gemm_pair *bp = b + p * GEMM_NR;
        const float *ah = a2 + 2 * p * GEMM_MR, *al = ah + GEMM_MR;
        __m256 bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++)
            bv[v] = _mm256_castsi256_ps(
                _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(bp + 8 * v)), high));
        avx2_acc_step(cv, ah, bv);
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++)
            bv[v] = _mm256_castsi256_ps(
                _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(bp + 8 * v)), 16));
        avx2_acc_step(cv, al, bv);
    }
    avx2_acc_store(cv, c, ldc);
}

void gemm_kernel_bf16_split_avx2(int64_t kp, const float *a2, const gemm_pair *b, float *c,
                                 int64_t ldc, bool acc) {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u); /* FTZ | DAZ, as vdpbf16ps */
    for (int rh = 0; rh < 2; rh++)
        for (int ch = 0; ch < 2; ch++)
            avx2_split_sub(kp, a2 + rh * 4, b + ch * 24, c + rh * 4 * ldc + ch * 24, ldc, acc);
    _mm_setcsr(csr);
}

/* Register-only chains (16 independent accumulators, as cfgserve-bench's peak loops): the
 * time of `iters` rounds of 16 vdpbf16ps, and of 32 FMAs (the same products). */
enum { RATE_CHAINS = 16 };

__attribute__((target("avx512f,avx512bf16"))) static double time_dpbf16(int64_t iters) {
    __m512 acc[RATE_CHAINS];
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80);
    for (int i = 0; i < RATE_CHAINS; i++) acc[i] = _mm512_setzero_ps();
    const double t0 = now_s();
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < RATE_CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, x);
    }
    const double t = now_s() - t0;
    __m512 s = acc[0];
    for (int i = 1; i < RATE_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    rate_sink = _mm512_reduce_add_ps(s);
    return t;
}

__attribute__((target("avx512f"))) static double time_fma2(int64_t iters) {
    __m512 acc[RATE_CHAINS];
    const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < RATE_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    const double t0 = now_s();
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < RATE_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
#pragma GCC unroll 16
        for (int i = 0; i < RATE_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, a);
    }
    const double t = now_s() - t0;
    __m512 s = acc[0];
    for (int i = 1; i < RATE_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    rate_sink = _mm512_reduce_add_ps(s);
    return t;
}

/* Best of three short runs each (a preempted run only makes one side look slower, and
 * the gap where it matters is 2x): split when vdpbf16ps takes over 0.8 of two FMAs. */
static bool measure_split_faster(void) {
    if (!__builtin_cpu_supports("avx512f")) return false;
    if (!gemm_bf16_hw()) return true;
    double dp = 1e30, fm = 1e30;
    for (int r = 0; r < 3; r++) {
        const double a = time_dpbf16(4000), b = time_fma2(4000);
        if (a < dp) dp = a;
        if (b < fm) fm = b;
    }
    return dp > 0.8 * fm;
}

bool gemm_bf16_split_faster(void) {
    static _Atomic int known = -1; /* a benign race: every thread measures the same */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k < 0) {
        k = measure_split_faster();
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k;
}

#else

bool gemm_bf16_hw(void) { return false; }
bool gemm_bf16_split_faster(void) { return false; }
/* Never picked here (no AVX-512): they exist to link. */
void gemm_kernel_bf16_split_avx512(int64_t kp, const float *a2, const gemm_pair *b, float *c,
                                   int64_t ldc, bool acc) {
    (void)kp, (void)a2, (void)b, (void)c, (void)ldc, (void)acc;
    CS_ASSERT(!"split bf16 kernels need AVX-512F");
}
void gemm_kernel_bf16_split_avx512_16(int64_t kp, const float *a2, const gemm_pair *b,
                                      float *c, int64_t ldc, bool acc) {
    gemm_kernel_bf16_split_avx512(kp, a2, b, c, ldc, acc);
}
void gemm_kernel_bf16_split_avx2(int64_t kp, const float *a2, const gemm_pair *b, float *c,
                                 int64_t ldc, bool acc) {
    gemm_kernel_bf16_split_avx512(kp, a2, b, c, ldc, acc);
}
void gemm_kernel_bf16_split_avx512_32(int64_t kp, const float *a2, const gemm_pair *b,
                                      float *c, int64_t ldc, bool acc) {
    gemm_kernel_bf16_split_avx512(kp, a2, b, c, ldc, acc);
}
void gemm_kernel_bf16_avx512(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                             int64_t ldc, bool acc) {
    gemm_kernel_bf16_portable(kp, a, b, c, ldc, acc);
}

void gemm_kernel_avx512(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                        bool acc) {
    gemm_kernel_portable(kc, a, b, c, ldc, acc);
}
void gemm_kernel_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                      bool acc) {
    gemm_kernel_portable(kc, a, b, c, ldc, acc);
}
/* Never picked here (gemm_isa_supported has no AVX-512 off x86): they exist to link. */
void gemm_kernel_avx512_16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           bool acc) {
    gemm_kernel_portable(kc, a, b, c, ldc, acc);
}
void gemm_kernel_avx512_32(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           bool acc) {
    gemm_kernel_portable(kc, a, b, c, ldc, acc);
}
void gemm_kernel_bf16_avx512_16(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                                int64_t ldc, bool acc) {
    gemm_kernel_bf16_portable(kp, a, b, c, ldc, acc);
}
void gemm_kernel_bf16_avx512_32(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                                int64_t ldc, bool acc) {
    gemm_kernel_bf16_portable(kp, a, b, c, ldc, acc);
}

#endif
