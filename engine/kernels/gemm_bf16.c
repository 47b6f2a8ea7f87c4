/*
 * gemm_bf16.h: bf16 rounding and k-pair packing for the GEMM_BF16X2 products, and the
 * choice of their micro-kernel. Rounding is cs_f32_to_bf16_ftz everywhere (the same bits
 * as the AVX512_BF16 conversion instructions), so the operands are the same whichever
 * kernel multiplies them; the tile rounding also has AVX-512 twins (the conversion
 * instruction where the CPU has AVX512_BF16, else integer lanes; the same bits).
 */
#include "gemm_bf16.h"

#include <stdatomic.h>
#include <string.h>

#include "half.h"
#include "ops_simd.h"

gemm_pair gemm_bf16_pair(float lo, float hi) {
    return (gemm_pair)cs_f32_to_bf16_ftz(lo) | (gemm_pair)cs_f32_to_bf16_ftz(hi) << 16;
}

/* 16 floats from each of 8 rows rounded to 8 pairs a row by vcvtneps2bf16 (the bits of
 * cs_f32_to_bf16_ftz) and transposed in registers: dst[c · ld + r] = pair c of rows[r]. */
__attribute__((target("avx512f,avx512bf16,avx2,fma"))) static void
pairs_block8(gemm_pair *dst, int64_t ld, const float *const rows[8]) {
    float block[8][8];
    const float *at[8];
    for (int r = 0; r < 8; r++) {
        const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(rows[r]));
        _mm256_storeu_si256((__m256i *)(void *)block[r], (__m256i)v);
        at[r] = block[r];
    }
    ops_transpose8x8((float *)(void *)dst, ld, at);
}

void gemm_bf16_panel8_pairs(gemm_pair *dst, int64_t ld, const float *const src[8], int64_t k,
                            int64_t c0, int64_t c1) {
    _Static_assert(GEMM_MR == 8, "panels of 8 rows");
    static const float zero16[16];
    int64_t c = c0;
    if (ops_have_avx512() && gemm_bf16_hw()) {
        for (; c + 8 <= c1 && 2 * c + 16 <= k; c += 8) {
            const float *at[8];
            for (int r = 0; r < 8; r++)
                at[r] = src[r] ? src[r] + 2 * c : zero16;
            pairs_block8(dst + (c - c0) * ld, ld, at);
        }
    }
    for (int r = 0; r < 8; r++) {
        const float *row = src[r];
        for (int64_t p = c; p < c1; p++)
            dst[(p - c0) * ld + r] = row ? gemm_bf16_pair(2 * p < k ? row[2 * p] : 0.0f,
                                                          2 * p + 1 < k ? row[2 * p + 1] : 0.0f)
                                         : 0;
    }
}

void gemm_bf16_pack_rows(gemm_pair *a, const float *x, int64_t m, int64_t k, int64_t row0,
                         int64_t rows, int64_t p0, int64_t np) {
    for (int64_t i = 0; i < rows; i += GEMM_MR) {
        const float *src[GEMM_MR];
        for (int r = 0; r < GEMM_MR; r++)
            src[r] = row0 + i + r < m ? x + (row0 + i + r) * k : NULL;
        gemm_bf16_panel8_pairs(a + i * np, GEMM_MR, src, k, p0, p0 + np);
    }
}

static float bf16_value(float x) { return cs_bf16_to_f32(cs_f32_to_bf16_ftz(x)); }

void gemm_bf16_pack_rows_split(float *a2, const float *x, int64_t m, int64_t k, int64_t row0,
                               int64_t rows, int64_t p0, int64_t np) {
    for (int64_t i = 0; i < rows; i += GEMM_MR) {
        float *dst = a2 + i * 2 * np;
        for (int64_t r = 0; r < GEMM_MR; r++) {
            const int64_t row = row0 + i + r;
            const float *src = row < m ? x + row * k : NULL;
            for (int64_t p = 0; p < np; p++) {
                const int64_t lo = 2 * (p0 + p), hi = lo + 1;
                dst[2 * p * GEMM_MR + r] = src && hi < k ? bf16_value(src[hi]) : 0.0f;
                dst[(2 * p + 1) * GEMM_MR + r] = src && lo < k ? bf16_value(src[lo]) : 0.0f;
            }
        }
    }
}

void gemm_bf16_split_panel(float *a2, const gemm_pair *src, int64_t kp) {
    for (int64_t p = 0; p < kp; p++)
        for (int r = 0; r < GEMM_MR; r++) {
            const gemm_pair v = src[p * GEMM_MR + r];
            a2[2 * p * GEMM_MR + r] = cs_bf16_to_f32((uint16_t)(v >> 16));
            a2[(2 * p + 1) * GEMM_MR + r] = cs_bf16_to_f32((uint16_t)(v & 0xffffu));
        }
}

/* cs_f32_to_bf16_ftz on 16 lanes, each result in its lane's high half (low half zero). */
OPS_TARGET_AVX512 static inline __m512i bf16_high_avx512(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
    const __mmask16 tiny = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    r = _mm512_mask_mov_epi32(r, tiny, _mm512_and_si512(u, _mm512_set1_epi32((int)0x80000000u)));
    return _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
}

OPS_TARGET_AVX512 static void pair_tile_avx512(gemm_pair *dst, const float *t, int64_t kc) {
    for (int64_t p = 0; 2 * p < kc; p++) {
        const float *lo = t + 2 * p * GEMM_NR, *hi = lo + GEMM_NR;
        const bool has_hi = 2 * p + 1 < kc;
        for (int j = 0; j < GEMM_NR; j += 16) {
            const __m512i l = _mm512_srli_epi32(bf16_high_avx512(_mm512_loadu_ps(lo + j)), 16);
            const __m512i h = has_hi ? bf16_high_avx512(_mm512_loadu_ps(hi + j))
                                     : _mm512_setzero_si512();
            _mm512_storeu_si512(dst + p * GEMM_NR + j, _mm512_or_si512(l, h));
        }
    }
}

/* cs_f32_to_bf16_ftz on 16 lanes by the conversion instruction (vcvtneps2bf16: round to
 * nearest even, NaN quietened, subnormal inputs to a zero of their sign; the same bits),
 * each result widened into its lane's low half. */
__attribute__((target("avx512f,avx512bf16"))) static inline __m512i bf16_low_avx512bf16(__m512 x) {
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x));
}

/* pair_tile_avx512 on the conversion instruction: 6 operations per pair of vectors instead
 * of some 24 (a tenth of the bf16 attention's time at 4096 tokens went to this rounding). */
__attribute__((target("avx512f,avx512bf16"))) static void
pair_tile_avx512bf16(gemm_pair *dst, const float *t, int64_t kc) {
    for (int64_t p = 0; 2 * p < kc; p++) {
        const float *lo = t + 2 * p * GEMM_NR, *hi = lo + GEMM_NR;
        const bool has_hi = 2 * p + 1 < kc;
        for (int j = 0; j < GEMM_NR; j += 16) {
            const __m512i l = bf16_low_avx512bf16(_mm512_loadu_ps(lo + j));
            const __m512i h =
                has_hi ? _mm512_slli_epi32(bf16_low_avx512bf16(_mm512_loadu_ps(hi + j)), 16)
                       : _mm512_setzero_si512();
            _mm512_storeu_si512(dst + p * GEMM_NR + j, _mm512_or_si512(l, h));
        }
    }
}

static void pair_tile_scalar(gemm_pair *dst, const float *t, int64_t kc) {
    for (int64_t p = 0; 2 * p < kc; p++) {
        const float *lo = t + 2 * p * GEMM_NR;
        gemm_pair *d = dst + p * GEMM_NR;
        if (2 * p + 1 < kc) {
            const float *hi = lo + GEMM_NR;
            for (int j = 0; j < GEMM_NR; j++) d[j] = gemm_bf16_pair(lo[j], hi[j]);
        } else {
            for (int j = 0; j < GEMM_NR; j++) d[j] = gemm_bf16_pair(lo[j], 0.0f);
        }
    }
}

gemm_pair_tile_fn gemm_bf16_pair_tile_active(void) {
    if (!ops_have_avx512()) return pair_tile_scalar;
    return gemm_bf16_hw() ? pair_tile_avx512bf16 : pair_tile_avx512;
}

void gemm_bf16_pair_tile(gemm_pair *dst, const float *t, int64_t kc) {
    gemm_bf16_pair_tile_active()(dst, t, kc);
}

bool gemm_pack_bf16x2(uint16_t *dst, const float *src, int64_t rows, int64_t cols,
                      int64_t width) {
    CS_ASSERT(rows >= 0 && cols >= 0 && width > 0);
    const int64_t np = (cols + 1) / 2;
    gemm_pair *pairs = cs_malloc((size_t)(rows * np > 0 ? rows * np : 1) * sizeof *pairs);
    if (!pairs) return false;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t p = 0; p < np; p++)
            pairs[r * np + p] = gemm_bf16_pair(src[r * cols + 2 * p],
                                               2 * p + 1 < cols ? src[r * cols + 2 * p + 1] : 0.0f);
    const bool ok = gemm_pack_panels_n(pairs, sizeof *pairs, rows, np, width);
    if (ok) memcpy(dst, pairs, (size_t)(rows * np) * sizeof *pairs);
    free(pairs);
    return ok;
}

static _Atomic int bf16_mode = GEMM_BF16_AUTO;

bool gemm_set_bf16_mode(gemm_bf16_mode mode) {
    if (mode == GEMM_BF16_SPLIT && !gemm_isa_supported(GEMM_ISA_AVX2)) return false;
    atomic_store(&bf16_mode, (int)mode);
    return true;
}

/* Whether the GEMM_BF16X2 products run on the split kernels: forced, or on AVX2 (the
 * alternative is the portable kernel) and on AVX-512 where vdpbf16ps is missing or slow. */
static bool use_split(void) {
    switch ((gemm_bf16_mode)atomic_load(&bf16_mode)) {
    case GEMM_BF16_SPLIT: return true;
    case GEMM_BF16_NATIVE: return false;
    default:
        switch (gemm_active_isa()) {
        case GEMM_ISA_AVX2: return true;
        case GEMM_ISA_AVX512: return gemm_bf16_split_faster();
        default: return false;
        }
    }
}

gemm_kernel_split_fn gemm_kernel_bf16_split_for_width(int64_t width) {
    if (!use_split()) return NULL;
    if (gemm_active_isa() != GEMM_ISA_AVX512) return gemm_kernel_bf16_split_avx2;
    if (width > 32) return gemm_kernel_bf16_split_avx512;
    return width <= 16 ? gemm_kernel_bf16_split_avx512_16 : gemm_kernel_bf16_split_avx512_32;
}

gemm_kernel_bf16_fn gemm_kernel_bf16_active(void) {
    return gemm_active_isa() == GEMM_ISA_AVX512 && gemm_bf16_hw() ? gemm_kernel_bf16_avx512
                                                                  : gemm_kernel_bf16_portable;
}

gemm_kernel_bf16_fn gemm_kernel_bf16_for_width(int64_t width) {
    const gemm_kernel_bf16_fn full = gemm_kernel_bf16_active();
    if (full != gemm_kernel_bf16_avx512 || width > 32) return full;
    return width <= 16 ? gemm_kernel_bf16_avx512_16 : gemm_kernel_bf16_avx512_32;
}

const char *gemm_bf16_kernel_name(void) {
    if (use_split())
        return gemm_active_isa() == GEMM_ISA_AVX512 ? "avx512f_fma_split" : "avx2_fma_split";
    return gemm_kernel_bf16_active() == gemm_kernel_bf16_avx512 ? "avx512_bf16" : "portable";
}
