/*
 * Our own GEMM for the layers' hot products (linear layers and convolutions):
 * micro-kernels for AVX-512, AVX2+FMA and a portable fallback, picked at run time from
 * the CPU's features; threads from the engine's pool (threadpool.h).
 *
 * DESIGN.
 * * One micro-kernel shape for every ISA: an 8 × 48 tile of C += A(8 × kc) · B(kc × 48),
 *   both operands in panels (A: kc rows of 8, B: kc rows of 48). Every element of C is
 *   ONE accumulator updated by a fused multiply-add per k in increasing k order, starting
 *   from 0; blocking over k (GEMM_KC) stores and reloads that accumulator exactly. So an
 *   element's bits depend only on its row of A and column of B: not on the tile, the
 *   thread count, the other rows/columns of the call (batch companions), nor on the ISA
 *   (the portable kernel uses fmaf). The bias is added after the full sum.
 * * Weights are packed ONCE at load, in place (no second copy), into panels
 *   (gemm_pack_panels): a linear weight W(out, in) is the B operand in panels of
 *   GEMM_NR output rows, a conv weight W(out, in·k·k) the A operand in panels of GEMM_MR
 *   output channels. A last, narrower panel keeps its own width (no padding), so the
 *   packed tensor has the same size; the driver pads such panels per k-block.
 * * Packed weights may be 16-bit (F16 or BF16, as the checkpoint stores them): the driver
 *   widens the weight panel of each k-block into a per-thread fp32 buffer before the
 *   micro-kernel reads it. Widening is exact (half.h), so the result is bit-identical to
 *   packing the same weights widened to fp32 at load, at half the resident memory.
 * * The activation operand is packed per tile by the driver: rows of x for linear
 *   layers, and for convolutions an implicit im2col of just the tile (no full im2col
 *   buffer). The batch is packed along the tile dimension, so one call reads the
 *   weights once per step for every row while each row's result stays bit-identical to
 *   running it alone.
 * * The bf16 path (weights of dtype GEMM_BF16X2, cs_load_params.precision "bf16"): the
 *   weights are bf16 and the activation tile is rounded to bf16 while it is packed; the
 *   products are bf16 × bf16 with fp32 accumulation (AVX512_BF16 vdpbf16ps, or a portable
 *   kernel that computes the same bits). Pairs of k are the unit: a packed element is a
 *   32-bit pair (k even in the low half, k + 1 in the high half; an odd k gets a zero
 *   partner), so the drivers run the same blocking over ceil(k / 2) pair columns. Each
 *   element of C is still ONE fp32 accumulator with a fixed order (per pair: the k + 1
 *   product, then the k product, each an fp32 FMA rounded to nearest even, subnormal
 *   results flushed to zero, as vdpbf16ps defines it), so the batch and thread-count
 *   invariance above holds on this path too. Where vdpbf16ps is slower than two fp32 FMAs
 *   (Intel's Sapphire/Emerald Rapids run it at half their FMA rate) or missing, AVX-512
 *   CPUs run those two FMAs themselves under flush-to-zero ("split" kernels: the A operand
 *   split into floats as it is packed, b split in registers): the same bits at the FMA
 *   rate (gemm_kernels.h).
 *
 * Thread safety: the ISA choice is process-wide (gemm_set_isa: tests and benchmarks only);
 * the products touch only their arguments.
 */
#ifndef CS_GEMM_H
#define CS_GEMM_H

#include "common.h"

struct threadpool;

enum {
    GEMM_MR = 8,   /* rows of the A panels (conv weights: output channels) */
    GEMM_NR = 48,  /* columns of the B panels (linear weights: output features) */
    GEMM_KC = 256, /* k-block: one B panel of the block is 48 KiB */
};

typedef enum gemm_isa {
    GEMM_ISA_AUTO = 0, /* the best the CPU has */
    GEMM_ISA_PORTABLE,
    GEMM_ISA_AVX2,
    GEMM_ISA_AVX512,
} gemm_isa;

/* How a packed weight matrix is stored. GEMM_BF16X2 also selects the bf16 products (above):
 * bf16 values in the panel layout of the (rows × ceil(cols / 2)) matrix of k pairs. */
typedef enum gemm_dtype { GEMM_F32 = 0, GEMM_F16, GEMM_BF16, GEMM_BF16X2 } gemm_dtype;

/* A packed weight matrix: `data` holds floats (GEMM_F32) or uint16_t halves. */
typedef struct gemm_weights {
    const void *data;
    gemm_dtype dtype;
} gemm_weights;

static inline size_t gemm_dtype_size(gemm_dtype d) { return d == GEMM_F32 ? 4 : 2; }
const char *gemm_dtype_name(gemm_dtype d);

/* dst[0, n) = the 16-bit src[0, n) of dtype d (GEMM_F16 / GEMM_BF16) widened, exactly
 * (half.h; F16C instructions where the CPU has them, same bits). */
void gemm_widen(float *dst, const uint16_t *src, int64_t n, gemm_dtype d);

/* Element i of w widened to float. */
float gemm_weights_get(gemm_weights w, int64_t i);
/* Stores v at element i of w's data (rounded to nearest even for 16-bit storage). */
void gemm_weights_set(gemm_weights w, int64_t i, float v);

/* The kernel set in use; gemm_set_isa forces one (AUTO: back to the best). Forcing an ISA
 * the CPU lacks is refused (returns false). */
gemm_isa gemm_active_isa(void);

/* 8 rows of n floats into the columns of a panel: dst[c · ld + r] = src[r][c] for c < n,
 * r < 8 (src[r] NULL: a row of zeros). The linear layers' row panels (ld 8) and the
 * attention's query and key panels are packed by it; the version of the active ISA (a
 * transpose in registers, or plain C) is picked once per product. */
typedef void (*gemm_panel8_fn)(float *dst, int64_t ld, const float *const src[8], int64_t n);
gemm_panel8_fn gemm_panel8_active(void);
bool gemm_set_isa(gemm_isa isa);
bool gemm_isa_supported(gemm_isa isa);
const char *gemm_isa_name(gemm_isa isa);

/* Position of element (r, j) of a rows × cols matrix in its panel layout of `width` rows:
 * panel p = r / width holds rows [p·width, p·width + h), h = min(width, rows - p·width),
 * at offset p·width·cols, as cols groups of h (the group of column j is contiguous). */
static inline int64_t gemm_panel_index(int64_t rows, int64_t cols, int64_t width, int64_t r,
                                       int64_t j) {
    const int64_t p0 = r / width * width, h = rows - p0 < width ? rows - p0 : width;
    return p0 * cols + j * h + (r - p0);
}

/* Elements (of gemm_dtype_size) a packed rows × cols matrix of dtype d takes: rows · cols, or
 * rows · (cols rounded up to even) for GEMM_BF16X2. */
static inline int64_t gemm_packed_count(gemm_dtype d, int64_t rows, int64_t cols) {
    return d == GEMM_BF16X2 ? rows * (cols + (cols & 1)) : rows * cols;
}

/* Position of element (r, j) of a rows × cols matrix of dtype d packed in panels of
 * `width` rows (gemm_panel_index, or for GEMM_BF16X2 half j / 2 of that pair's index). */
static inline int64_t gemm_weights_index(gemm_dtype d, int64_t rows, int64_t cols,
                                         int64_t width, int64_t r, int64_t j) {
    if (d != GEMM_BF16X2) return gemm_panel_index(rows, cols, width, r, j);
    return 2 * gemm_panel_index(rows, (cols + 1) / 2, width, r, j / 2) + (j & 1);
}

/* Rearranges w (rows × cols, row-major, elements of `esize` bytes) in place into the panel
 * layout above; false when the temporary copy cannot be allocated (w is then unchanged). */
bool gemm_pack_panels_n(void *w, size_t esize, int64_t rows, int64_t cols, int64_t width);
static inline bool gemm_pack_panels(float *w, int64_t rows, int64_t cols, int64_t width) {
    return gemm_pack_panels_n(w, sizeof *w, rows, cols, width);
}

/* dst[0, gemm_packed_count(GEMM_BF16X2, rows, cols)) = src (rows × cols, row-major fp32)
 * rounded to bf16 (cs_f32_to_bf16_ftz) in GEMM_BF16X2's panel layout of `width` rows;
 * false when the temporary copy cannot be allocated. dst may be src's memory. */
bool gemm_pack_bf16x2(uint16_t *dst, const float *src, int64_t rows, int64_t cols,
                      int64_t width);

/* The kernel GEMM_BF16X2 products use: "avx512f_fma_split" (fp32 FMAs) when the AVX-512
 * kernels are active and vdpbf16ps is missing or slower than two FMAs, else "avx512_bf16"
 * (vdpbf16ps) when the CPU has it and the AVX-512 kernels are active, else "portable"
 * (same bits, slow). The attention's bf16 products make the same choice. */
const char *gemm_bf16_kernel_name(void);

/* fp32 packed weights as gemm_weights. */
static inline gemm_weights gemm_f32(const float *w) { return (gemm_weights){w, GEMM_F32}; }

/* y(m, n) = x(m, k) · W(n, k)ᵀ [+ b(n)], W packed in panels of GEMM_NR (a linear layer
 * over m rows, the batch included). b may be NULL. */
void gemm_linear(struct threadpool *p, float *y, const float *x, gemm_weights w_packed,
                 const float *b, int64_t m, int64_t k, int64_t n);

/* Fills the B tile of item `batch`, k rows [k0, k0 + kc) × columns [col0, col0 + ncols)
 * (ncols <= GEMM_NR): dst[kk · GEMM_NR + j] for j < ncols, and nothing else (the rest of a
 * tile row may belong to the next batch item; the driver zeroes what no item fills). */
typedef void (*gemm_pack_fn)(const void *arg, float *dst, int64_t batch, int64_t k0, int64_t kc,
                             int64_t col0, int64_t ncols);

/* For each item b < batch: y_b(m, cols) = W(m, k) · X_b(k, cols) [+ bias(m) per row], W
 * packed in panels of GEMM_MR, X_b produced tile by tile by pack(arg, ...); a tile may span
 * the end of one item and the start of the next (small images fill whole tiles). y is (batch,
 * m, cols) contiguous. */
void gemm_packed_a(struct threadpool *p, float *y, gemm_weights w_packed, const float *bias,
                   int64_t batch, int64_t m, int64_t k, int64_t cols, gemm_pack_fn pack,
                   const void *arg);

#endif
