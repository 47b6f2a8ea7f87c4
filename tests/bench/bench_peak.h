/* Machine and GEMM peaks of cfgserve-bench (bench_peak.c). */
#ifndef CS_BENCH_PEAK_H
#define CS_BENCH_PEAK_H

#include "gemm.h"

double bench_now_s(void);
/* fp32 FMA rate of a register-only loop on `threads` threads, GFLOP/s (2 per FMA lane);
 * AVX-512 when the CPU has it, else AVX2+FMA, else 0. *isa names the one used. */
double bench_fma_peak(int threads, double seconds, const char **isa);
/* bf16 dot-product rate (vdpbf16ps: 2 FLOP per bf16 pair), GFLOP/s; 0 without AVX512_BF16. */
double bench_bf16_peak(int threads, double seconds);
/* Best-of-3 n×n×n OpenBLAS sgemm, GFLOP/s. */
double bench_openblas_sgemm(int n);
/* Best-of-3 n×n×n product through gemm_linear on `threads` pool threads, GFLOP/s; bf16:
 * with GEMM_BF16X2 weights (bf16 products). */
double bench_own_gemm(int n, int threads, bool bf16);
/* CPU-time ratio of our GEMM with F16 (or BF16) weights over fp32 weights, one thread,
 * n×n×n, runs interleaved (best of 5 each): the cost of widening per k-block. `conv`:
 * the packed-A product of convolutions (weights as A), else the linear one. */
double bench_gemm_16bit_ratio(int n, gemm_dtype d, bool conv);

#endif
