/*
 * The 8 × 48 micro-kernels behind gemm.h, one per ISA (gemm_kernels.c). Private to the
 * kernels layer (gemm.c, ops_attention.c) and its unit tests.
 *
 * c (8 rows of 48, row r at c + r · ldc) = [c +] a · b over kc steps: a holds kc groups
 * of GEMM_MR values (column k of the A tile), b kc rows of GEMM_NR. acc false: start from
 * 0. ldc lets a full tile live in the caller's output (no copy in and out per k-block). Each
 * element is one accumulator with a fused multiply-add per k in increasing order, so all
 * kernels give the same bits.
 */
#ifndef CS_GEMM_KERNELS_H
#define CS_GEMM_KERNELS_H

#include "gemm.h"

#include <stdint.h>

typedef void (*gemm_kernel_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                               bool acc);

void gemm_kernel_portable(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                          bool acc);
/* Only on CPUs with the features (gemm_isa_supported). */
void gemm_kernel_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                      bool acc);
void gemm_kernel_avx512(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                        bool acc);
/* gemm_kernel_avx512 on the tile's first 16 or 32 columns only (the rest of c untouched),
 * for tiles the columns do not fill (an 8×8 latent of one row leaves 16 of its second
 * tile's 48): the same bits in those columns, a third or two thirds of the work. */
void gemm_kernel_avx512_16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           bool acc);
void gemm_kernel_avx512_32(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           bool acc);

/* The kernel of gemm_active_isa(), for kernels outside gemm.c that block their own
 * products (the fused attention of ops_attention.c). */
gemm_kernel_fn gemm_kernel_active(void);
/* The active ISA's kernel for a tile whose columns the caller reads end before `width`
 * (1..GEMM_NR): a narrow one where the ISA has it, else the full kernel. */
gemm_kernel_fn gemm_kernel_for_width(int64_t width);

/* A k pair of bf16 values (gemm.h, GEMM_BF16X2): k in the low half, k + 1 in the high
 * half. may_alias: the pairs are written as uint16_t halves by the weight packer. */
typedef uint32_t __attribute__((may_alias)) gemm_pair;

/* The bf16 micro-kernels: c (8 × 48 fp32, row stride ldc) = [c +] a · b over kp k pairs, a holding kp
 * groups of GEMM_MR pairs, b kp rows of GEMM_NR pairs. Per element and pair: the high
 * halves' product, then the low halves', each an fp32 FMA rounded to nearest even with a
 * subnormal result flushed to a zero of its sign (vdpbf16ps; inputs are never subnormal,
 * gemm_pack_bf16x2 and the activation packing flush them). Both kernels give the same
 * bits. */
typedef void (*gemm_kernel_bf16_fn)(int64_t kp, const gemm_pair *a, const gemm_pair *b,
                                    float *c, int64_t ldc, bool acc);
void gemm_kernel_bf16_portable(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                               int64_t ldc, bool acc);
/* Only on CPUs with AVX512_BF16 (gemm_bf16_hw). */
void gemm_kernel_bf16_avx512(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                             int64_t ldc, bool acc);
/* gemm_kernel_bf16_avx512 on the tile's first 16 or 32 columns only (as the fp32 twins). */
void gemm_kernel_bf16_avx512_16(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                                int64_t ldc, bool acc);
void gemm_kernel_bf16_avx512_32(int64_t kp, const gemm_pair *a, const gemm_pair *b, float *c,
                                int64_t ldc, bool acc);
bool gemm_bf16_hw(void);

/* The bf16 products on fp32 FMAs, for CPUs whose vdpbf16ps is slower than two FMAs
 * (Intel's Sapphire and Emerald Rapids run it at half their FMA rate) or that lack it
 * (AVX-512 without BF16, AVX2+FMA): a2 is the A operand split ahead (gemm_bf16_split_panel / gemm_bf16_pack_rows_split),
 * 2·kp steps of GEMM_MR floats, step 2p the pairs' high halves and 2p + 1 their low halves
 * (bf16 widened to fp32 is exact); b holds the pairs as for the kernels above and is split
 * in registers. The kernel runs with the MXCSR's flush-to-zero (and denormals-are-zero)
 * set, so each FMA is the one vdpbf16ps defines (the high product, then the low one, each
 * rounded to nearest even, a subnormal result flushed to a zero of its sign): the bits of
 * gemm_kernel_bf16_portable. AVX-512F: full width and the 16- and 32-column twins; AVX2+FMA:
 * full width (as its fp32 kernel, four sub-tiles of 4 × 24). Only on CPUs with the
 * features. */
typedef void (*gemm_kernel_split_fn)(int64_t kp, const float *a2, const gemm_pair *b,
                                     float *c, int64_t ldc, bool acc);
void gemm_kernel_bf16_split_avx512(int64_t kp, const float *a2, const gemm_pair *b, float *c,
                                   int64_t ldc, bool acc);
void gemm_kernel_bf16_split_avx512_16(int64_t kp, const float *a2, const gemm_pair *b,
                                      float *c, int64_t ldc, bool acc);
void gemm_kernel_bf16_split_avx512_32(int64_t kp, const float *a2, const gemm_pair *b,
                                      float *c, int64_t ldc, bool acc);
void gemm_kernel_bf16_split_avx2(int64_t kp, const float *a2, const gemm_pair *b, float *c,
                                 int64_t ldc, bool acc);
/* Whether vdpbf16ps is slower here than two fp32 FMAs (measured once, a fraction of a
 * millisecond; true without AVX512_BF16). */
bool gemm_bf16_split_faster(void);
/* Which kernels the GEMM_BF16X2 products use: GEMM_BF16_AUTO (the split ones where the
 * AVX2 kernels are active, or the AVX-512 ones and gemm_bf16_split_faster()), or forced
 * (tests, benchmarks; the split kernel of the active ISA, the AVX2 one under the portable
 * ISA; forcing SPLIT without AVX2+FMA is refused: returns false). */
typedef enum gemm_bf16_mode { GEMM_BF16_AUTO = 0, GEMM_BF16_NATIVE, GEMM_BF16_SPLIT } gemm_bf16_mode;
bool gemm_set_bf16_mode(gemm_bf16_mode mode);
/* The split kernel for a tile whose read columns end before `width`, or NULL when the
 * pair kernels (gemm_kernel_bf16_for_width) are in use. */
gemm_kernel_split_fn gemm_kernel_bf16_split_for_width(int64_t width);
/* gemm_kernel_bf16_avx512 when the AVX-512 kernels are active and the CPU has AVX512_BF16,
 * else the portable one (gemm_set_isa(GEMM_ISA_PORTABLE) forces it, for tests). */
gemm_kernel_bf16_fn gemm_kernel_bf16_active(void);
/* The bf16 twin of gemm_kernel_for_width. */
gemm_kernel_bf16_fn gemm_kernel_bf16_for_width(int64_t width);

#endif
