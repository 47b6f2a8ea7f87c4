/*
 * The peaks cfgserve-bench reports the model rates against: register-only FMA and bf16
 * dot-product loops on every thread (independent accumulators, no memory traffic), and
 * the two GEMMs on a square product.
 */
#include "bench_peak.h"

#include <cblas.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "half.h"
#include "threadpool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct peak_arg {
    int kind; /* 0 avx512 fp32, 1 avx2 fp32, 2 avx512 bf16 */
    int64_t iters;
    double sink;
} peak_arg;


enum { PEAK_UNROLL = 16 }; /* independent accumulators: covers FMA latency × ports */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double loop_avx512(int64_t iters) {
    __m512 acc[PEAK_UNROLL];
    const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < PEAK_UNROLL; i++) acc[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_UNROLL; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < PEAK_UNROLL; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double loop_avx2(int64_t iters) {
    __m256 acc[12];
    const __m256 a = _mm256_set1_ps(1.0000001f), b = _mm256_set1_ps(0.9999999f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    float out[8];
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
    _mm256_storeu_ps(out, s);
    return out[0];
}

__attribute__((target("avx512f,avx512bf16"))) static double loop_bf16(int64_t iters) {
    __m512 acc[PEAK_UNROLL];
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f80);
    for (int i = 0; i < PEAK_UNROLL; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_UNROLL; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < PEAK_UNROLL; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
#endif

/* Where the loops' results go, so the compiler cannot drop them. */
static volatile double peak_sink;

static void *peak_thread(void *p) {
    peak_arg *a = p;
#if defined(__x86_64__)
    peak_sink = a->sink = a->kind == 0 ? loop_avx512(a->iters) : a->kind == 1 ? loop_avx2(a->iters)
                                                                    : loop_bf16(a->iters);
#endif
    return NULL;
}

/* FLOP per loop iteration of each kind. */
static double flop_per_iter(int kind) {
    return kind == 0 ? PEAK_UNROLL * 16 * 2.0 : kind == 1 ? 12 * 8 * 2.0 : PEAK_UNROLL * 32 * 2.0;
}

static double run_peak(int kind, int threads, double seconds) {
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    // Calibrate on one thread, then run every thread for about `seconds`.
    int64_t iters = 1 << 16;
    peak_arg one = {.kind = kind, .iters = iters};
    double t0 = bench_now_s();
    peak_thread(&one);
    double dt = bench_now_s() - t0;
    iters = (int64_t)((double)iters * seconds / (dt > 1e-6 ? dt : 1e-6));
    if (iters < 1000) iters = 1000;
    pthread_t th[64];
    peak_arg args[64];
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        t0 = bench_now_s();
        for (int i = 0; i < threads; i++) {
            args[i] = (peak_arg){.kind = kind, .iters = iters};
            pthread_create(&th[i], NULL, peak_thread, &args[i]);
        }
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
        dt = bench_now_s() - t0;
        double rate = (double)threads * (double)iters * flop_per_iter(kind) / dt / 1e9;
        if (rate > best) best = rate;
    }
    return best;
}

double bench_fma_peak(int threads, double seconds, const char **isa) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        *isa = "avx512f";
        return run_peak(0, threads, seconds);
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *isa = "avx2+fma";
        return run_peak(1, threads, seconds);
    }
#endif
    *isa = "none";
    return 0;
}

double bench_bf16_peak(int threads, double seconds) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512bf16")) return run_peak(2, threads, seconds);
#endif
    return 0;
}

static float *square(int n, int seed) {
    float *p = cs_malloc((size_t)n * n * sizeof *p);
    CS_ASSERT(p);
    for (int64_t i = 0; i < (int64_t)n * n; i++)
        p[i] = (float)((i * (5 + 2 * seed)) % 13) / 13.0f - 0.5f;
    return p;
}

double bench_openblas_sgemm(int n) {
    float *a = square(n, 0), *b = square(n, 1), *c = square(n, 2);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = bench_now_s() - t0;
        if (dt < best) best = dt;
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

double bench_own_gemm(int n, int threads, bool bf16) {
    float *x = square(n, 0), *w = square(n, 1), *y = square(n, 2);
    if (bf16)
        CS_ASSERT(gemm_pack_bf16x2((uint16_t *)w, w, n, n, GEMM_NR));
    else
        CS_ASSERT(gemm_pack_panels(w, n, n, GEMM_NR));
    const gemm_weights g = {w, bf16 ? GEMM_BF16X2 : GEMM_F32};
    threadpool *p = NULL;
    char msg[256];
    if (threads > 1 && threadpool_new(threads, &p, msg, sizeof msg) != CS_OK) p = NULL;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now_s();
        gemm_linear(p, y, x, g, NULL, n, n, n);
        double dt = bench_now_s() - t0;
        if (dt < best) best = dt;
    }
    threadpool_free(p);
    free(x), free(w), free(y);
    return 2.0 * n * (double)n * n / best / 1e9;
}

static double thread_cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The activation tile of the packed-A product: rows of a row-major (k, cols) matrix. */
static void pack_rows_of(const void *arg, float *dst, int64_t batch, int64_t k0, int64_t kc,
                         int64_t col0, int64_t ncols) {
    const float *x = ((const float *const *)arg)[0];
    const int64_t cols = (int64_t)(intptr_t)((const void *const *)arg)[1];
    (void)batch;
    for (int64_t kk = 0; kk < kc; kk++)
        memcpy(dst + kk * GEMM_NR, x + (k0 + kk) * cols + col0, (size_t)ncols * sizeof *x);
}

double bench_gemm_16bit_ratio(int n, gemm_dtype d, bool conv) {
    float *x = square(n, 0), *w = square(n, 1), *y = square(n, 2);
    uint16_t *h = cs_malloc((size_t)n * n * sizeof *h);
    CS_ASSERT(h);
    for (int64_t i = 0; i < (int64_t)n * n; i++)
        h[i] = d == GEMM_F16 ? cs_f32_to_f16(w[i]) : cs_f32_to_bf16(w[i]);
    const int64_t width = conv ? GEMM_MR : GEMM_NR;
    CS_ASSERT(gemm_pack_panels(w, n, n, width) && gemm_pack_panels_n(h, 2, n, n, width));
    const gemm_weights ws[2] = {gemm_f32(w), {h, d}};
    const void *arg[2] = {x, (const void *)(intptr_t)n};
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < 5; r++)
        for (int v = 0; v < 2; v++) {
            const double t0 = thread_cpu_s();
            if (conv)
                gemm_packed_a(NULL, y, ws[v], NULL, 1, n, n, n, pack_rows_of, arg);
            else
                gemm_linear(NULL, y, x, ws[v], NULL, n, n, n);
            const double dt = thread_cpu_s() - t0;
            if (dt < best[v]) best[v] = dt;
        }
    free(x), free(w), free(y), free(h);
    return best[1] / best[0];
}
