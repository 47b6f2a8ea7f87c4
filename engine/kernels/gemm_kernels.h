/*
 * The 8 × 48 micro-kernels behind gemm.h, one per ISA (gemm_kernels.c). Private to the
 * kernels layer (gemm.c, ops_attention.c) and its unit tests.
 *
 * c (8 rows of 48, contiguous) = [c +] a · b over kc steps: a holds kc groups of GEMM_MR
 * values (column k of the A tile), b kc rows of GEMM_NR. acc false: start from 0. Each
 * element is one accumulator with a fused multiply-add per k in increasing order, so all
 * kernels give the same bits.
 */
#ifndef CS_GEMM_KERNELS_H
#define CS_GEMM_KERNELS_H

#include "gemm.h"

typedef void (*gemm_kernel_fn)(int64_t kc, const float *a, const float *b, float *c, bool acc);

void gemm_kernel_portable(int64_t kc, const float *a, const float *b, float *c, bool acc);
/* Only on CPUs with the features (gemm_isa_supported). */
void gemm_kernel_avx2(int64_t kc, const float *a, const float *b, float *c, bool acc);
void gemm_kernel_avx512(int64_t kc, const float *a, const float *b, float *c, bool acc);

/* The kernel of gemm_active_isa(), for kernels outside gemm.c that block their own
 * products (the fused attention of ops_attention.c). */
gemm_kernel_fn gemm_kernel_active(void);

#endif
