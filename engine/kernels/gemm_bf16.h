/*
 * The bf16 side of gemm.c's drivers (gemm.h, GEMM_BF16X2): rounding the activation
 * operands to bf16 k pairs while they are packed, and the weight packing done once at
 * load. Private to the kernels layer and its unit tests. Pure functions of their
 * arguments; any thread.
 */
#ifndef CS_GEMM_BF16_H
#define CS_GEMM_BF16_H

#include "gemm_kernels.h"

/* The pair (lo, hi) rounded to bf16 (cs_f32_to_bf16_ftz): lo in the low half. */
gemm_pair gemm_bf16_pair(float lo, float hi);

/* The A operand of a linear product from rows of x (m × k, row-major): pair columns
 * [p0, p0 + np) of rows row0 + [0, rows) (rows a multiple of GEMM_MR) as
 * a[i · np + p · GEMM_MR + r] for the row panel starting at i; zero past row m and k. */
void gemm_bf16_pack_rows(gemm_pair *a, const float *x, int64_t m, int64_t k, int64_t row0,
                         int64_t rows, int64_t p0, int64_t np);

/* gemm_bf16_pack_rows for the split kernels (gemm_kernels.h): the same pairs as floats,
 * a2[i · 2np + (2p) · GEMM_MR + r] the pair's high value (k 2p + 1) and
 * a2[i · 2np + (2p + 1) · GEMM_MR + r] its low value (k 2p), pair p counted from p0. */
void gemm_bf16_pack_rows_split(float *a2, const float *x, int64_t m, int64_t k, int64_t row0,
                               int64_t rows, int64_t p0, int64_t np);
/* A panel of GEMM_MR pairs per step (kp steps) split into 2·kp steps of GEMM_MR floats:
 * the high values, then the low values, of each step. */
void gemm_bf16_split_panel(float *a2, const gemm_pair *src, int64_t kp);

/* The B operand of a packed-A product from an fp32 tile t of kc rows of GEMM_NR (k rows
 * k0 + [0, kc) of gemm_pack_fn's tile): dst[p · GEMM_NR + j] = pair (t[2p][j],
 * t[2p + 1][j]), the partner of an odd last row zero. */
void gemm_bf16_pair_tile(gemm_pair *dst, const float *t, int64_t kc);
/* The code gemm_bf16_pair_tile runs on this CPU (its AVX-512F twin unless
 * CFGSERVE_NO_AVX2), for kernels that pick it once per call rather than per tile. */
typedef void (*gemm_pair_tile_fn)(gemm_pair *dst, const float *t, int64_t kc);
gemm_pair_tile_fn gemm_bf16_pair_tile_active(void);

/* Pair columns [c0, c1) of 8 rows of k floats into the columns of a panel: dst[(c - c0) ·
 * ld + r] = the pair (src[r][2c], src[r][2c + 1]) rounded to bf16, zero past k and for a
 * NULL row. Eight pairs at a time by vcvtneps2bf16 and a register transpose where the
 * CPU has AVX512_BF16 (the same bits). The linear layers' row panels (gemm_bf16_pack_rows)
 * and the bf16 attention's query and key panels are packed by it. */
void gemm_bf16_panel8_pairs(gemm_pair *dst, int64_t ld, const float *const src[8], int64_t k,
                            int64_t c0, int64_t c1);

#endif
