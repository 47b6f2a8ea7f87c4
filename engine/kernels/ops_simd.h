/*
 * Vector helpers shared by the kernels of ops_*.c and gemm.c (internal to them): the exp
 * of non-positive arguments in SSE2 (4 lanes), AVX2 + FMA (8 lanes) and AVX-512 (16 lanes,
 * the same bits as AVX2), an 8 × 8 transpose, and the one-time CPU checks that pick the
 * vector code.
 *
 * The build targets x86-64-v2, so AVX2 code is compiled per function
 * (OPS_TARGET_AVX2) and only called when ops_have_avx2(). A kernel runs every element
 * through the same vector code (tails padded into a full vector), so a value never
 * depends on its position, chunk or thread; a CPU without AVX2 computes values that can
 * differ in the last bits. CFGSERVE_NO_AVX2=1 in the environment selects the SSE2 / libm
 * code on any CPU: the unit tests use it to check that code, and it reproduces another
 * machine's results. Set it before the process starts (or before any kernel runs).
 *
 * Inside OPS_TARGET_AVX2 functions GCC treats the intrinsics as plain vector arithmetic
 * and may fuse a multiply feeding an add into an FMA (-ffp-contract=fast is its default),
 * so code there writes every multiply-add whose rounding matters as an explicit FMA.
 */
#ifndef CS_OPS_SIMD_H
#define CS_OPS_SIMD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#if !defined(__x86_64__) || !defined(__SSE2__)
#error "the ops kernels need x86-64 (SSE2)"
#endif
#include <immintrin.h>

#define OPS_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define OPS_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

/* Whether kernels use their AVX2 + FMA code: the CPU has it and CFGSERVE_NO_AVX2 is not
 * set. Called once per kernel call (never per element): a getenv and a read of libgcc's
 * CPU model. */
static inline bool ops_have_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           !getenv("CFGSERVE_NO_AVX2");
}

/* Whether kernels that have a 16-lane twin of their AVX2 code use it: ops_have_avx2()
 * and AVX-512 F/DQ. The twins run the same operations per lane, so they give the same
 * bits as the AVX2 code (test_ops checks the exp). */
static inline bool ops_have_avx512(void) {
    return ops_have_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq");
}

/* dst[i · ld + j] = rows[j][i] for i, j < 8: an 8 × 8 block of floats transposed in
 * registers (a pure copy, so any ISA gives the same result). */
OPS_TARGET_AVX2 static inline void ops_transpose8x8(float *dst, int64_t ld,
                                                    const float *const rows[8]) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(rows[i]);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* columns 0 1 | 4 5 of rows i, i+1 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* columns 2 3 | 6 7 */
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));         /* 0 | 4 */
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));     /* 1 | 5 */
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0)); /* 2 | 6 */
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2)); /* 3 | 7 */
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ld, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * ld, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}

/* exp(x) for x <= 0 (slightly positive x, as from rounding, is fine too): Cody-Waite
 * reduction x = n·ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r, times 2^n
 * built in the exponent bits. Within 1 ulp of the rounded exact value on [-87.3, 0]
 * (8.3e-8 relative, measured over 16M points); below ln(FLT_MIN) it returns 0 instead
 * of a subnormal; NaN stays NaN. libm's expf is scalar and was half the attention time. */
#define OPS_EXP_LO -87.33654f /* ln(FLT_MIN) */
#define OPS_EXP_LOG2E 1.44269504088896341f
#define OPS_EXP_ROUND 12582912.0f /* 1.5·2^23: adding it rounds to an integer */
#define OPS_EXP_LN2_HI 0.693359375f
#define OPS_EXP_LN2_LO -2.12194440e-4f
#define OPS_EXP_P0 1.9875691500e-4f
#define OPS_EXP_P1 1.3981999507e-3f
#define OPS_EXP_P2 8.3334519073e-3f
#define OPS_EXP_P3 4.1665795894e-2f
#define OPS_EXP_P4 1.6666665459e-1f
#define OPS_EXP_P5 5.0000001201e-1f

static inline __m128 ops_exp_nonpos4(__m128 x) {
    const __m128 lo = _mm_set1_ps(OPS_EXP_LO), round = _mm_set1_ps(OPS_EXP_ROUND);
    const __m128 xc = _mm_max_ps(lo, x); // maxps returns its 2nd operand for NaN
    const __m128 n =
        _mm_sub_ps(_mm_add_ps(_mm_mul_ps(xc, _mm_set1_ps(OPS_EXP_LOG2E)), round), round);
    __m128 r = _mm_sub_ps(xc, _mm_mul_ps(n, _mm_set1_ps(OPS_EXP_LN2_HI)));
    r = _mm_sub_ps(r, _mm_mul_ps(n, _mm_set1_ps(OPS_EXP_LN2_LO)));
    __m128 p = _mm_set1_ps(OPS_EXP_P0);
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(OPS_EXP_P1));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(OPS_EXP_P2));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(OPS_EXP_P3));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(OPS_EXP_P4));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(OPS_EXP_P5));
    p = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_mul_ps(p, r), r), r), _mm_set1_ps(1.0f));
    const __m128i bits = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23);
    const __m128 y = _mm_mul_ps(p, _mm_castsi128_ps(bits));
    return _mm_andnot_ps(_mm_cmplt_ps(x, lo), y); // 0 where x < OPS_EXP_LO
}

OPS_TARGET_AVX2 static inline __m256 ops_exp_nonpos8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(OPS_EXP_LO), round = _mm256_set1_ps(OPS_EXP_ROUND);
    const __m256 xc = _mm256_max_ps(lo, x); // NaN stays NaN (2nd operand)
    const __m256 n =
        _mm256_sub_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(OPS_EXP_LOG2E), round), round);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(OPS_EXP_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(OPS_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(OPS_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y); // 0 where x < OPS_EXP_LO
}

/* ops_exp_nonpos8 on 16 lanes: the same operations, so the same bits per lane, except
 * that vscalefps multiplies by 2^n in one instruction instead of building 2^n in the
 * exponent bits (convert, add, shift) and multiplying by it: n >= -126 after the clamp,
 * so 2^n is a normal float and both are one product rounded once. */
OPS_TARGET_AVX512 static inline __m512 ops_exp_nonpos16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(OPS_EXP_LO), round = _mm512_set1_ps(OPS_EXP_ROUND);
    const __m512 xc = _mm512_max_ps(lo, x); // NaN stays NaN (2nd operand)
    const __m512 n =
        _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(OPS_EXP_LOG2E), round), round);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(OPS_EXP_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(OPS_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(OPS_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    const __m512 y = _mm512_scalef_ps(p, n);
    return _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), y); // 0 where x < LO
}

#endif
