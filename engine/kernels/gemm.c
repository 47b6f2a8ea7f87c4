/*
 * gemm.h drivers: block the products into items for the pool, pack the activation side
 * per tile, run the ISA's 8 × 48 micro-kernel on a local tile and write the tile back (on
 * AVX-512, fp32 or bf16, a narrower twin when the tile's columns end before 16 or 32).
 *
 * Loop order of one item, for each k-block of GEMM_KC:
 *   linear (A = rows of x packed here, B = weight panels): for each weight panel (48 KiB,
 *     stays in L1/L2) over all row panels of the item (the item's packed rows, in L2);
 *   packed A (A = weight panels, B = activation tiles packed here): for each weight panel
 *     over the item's activation tiles (in L2).
 * The k-block loop is outermost, so y holds the running sums between blocks; the bias is
 * added when the last block is written. Item and tile boundaries never change the
 * operations on an element (gemm.h), so the split is free to follow the thread count and
 * to read large weights the fewest times (pa_choose_split).
 *
 * GEMM_BF16X2 weights run the same loops in units of k pairs (gemm.h): the weight panels
 * are 4-byte pairs like fp32 panels, the rows of x are rounded into pairs as they are
 * packed, a conv's activation tile is packed in fp32 and then rounded into pairs
 * (gemm_bf16.h), and the bf16 micro-kernel runs on the tile. With the split kernels
 * (gemm_kernels.h) the A side reaches the kernel as floats instead: the rows of x are
 * rounded and split as they are packed, a weight panel block is split after it is read.
 */
#include "gemm.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "gemm_bf16.h"
#include "gemm_kernels.h"
#include "half.h"
#include "scratch.h"
#include "threadpool.h"

/* ---- ISA choice ---- */

static _Atomic int forced_isa = GEMM_ISA_AUTO;

bool gemm_isa_supported(gemm_isa isa) {
    switch (isa) {
    case GEMM_ISA_AUTO:
    case GEMM_ISA_PORTABLE:
        return true;
#if defined(__x86_64__) || defined(__i386__)
    case GEMM_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GEMM_ISA_AVX512:
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return false;
    }
}

gemm_isa gemm_active_isa(void) {
    gemm_isa f = (gemm_isa)atomic_load(&forced_isa);
    if (f != GEMM_ISA_AUTO) return f;
    if (gemm_isa_supported(GEMM_ISA_AVX512)) return GEMM_ISA_AVX512;
    if (gemm_isa_supported(GEMM_ISA_AVX2)) return GEMM_ISA_AVX2;
    return GEMM_ISA_PORTABLE;
}

bool gemm_set_isa(gemm_isa isa) {
    if (!gemm_isa_supported(isa)) return false;
    atomic_store(&forced_isa, (int)isa);
    return true;
}

const char *gemm_isa_name(gemm_isa isa) {
    switch (isa) {
    case GEMM_ISA_PORTABLE: return "portable";
    case GEMM_ISA_AVX2: return "avx2+fma";
    case GEMM_ISA_AVX512: return "avx512f";
    default: return "auto";
    }
}

gemm_kernel_fn gemm_kernel_active(void) {
    switch (gemm_active_isa()) {
    case GEMM_ISA_AVX512: return gemm_kernel_avx512;
    case GEMM_ISA_AVX2: return gemm_kernel_avx2;
    default: return gemm_kernel_portable;
    }
}

gemm_kernel_fn gemm_kernel_for_width(int64_t width) {
    if (gemm_active_isa() == GEMM_ISA_AVX512 && width <= 32)
        return width <= 16 ? gemm_kernel_avx512_16 : gemm_kernel_avx512_32;
    return gemm_kernel_active();
}

/* ---- weight storage ---- */

const char *gemm_dtype_name(gemm_dtype d) {
    switch (d) {
    case GEMM_F16: return "F16";
    case GEMM_BF16: return "BF16";
    case GEMM_BF16X2: return "BF16 (bf16 products)";
    default: return "F32";
    }
}

float gemm_weights_get(gemm_weights w, int64_t i) {
    switch (w.dtype) {
    case GEMM_F16: return cs_f16_to_f32(((const uint16_t *)w.data)[i]);
    case GEMM_BF16:
    case GEMM_BF16X2: return cs_bf16_to_f32(((const uint16_t *)w.data)[i]);
    default: return ((const float *)w.data)[i];
    }
}

void gemm_weights_set(gemm_weights w, int64_t i, float v) {
    switch (w.dtype) {
    case GEMM_F16: ((uint16_t *)w.data)[i] = cs_f32_to_f16(v); break;
    case GEMM_BF16: ((uint16_t *)w.data)[i] = cs_f32_to_bf16(v); break;
    case GEMM_BF16X2: ((uint16_t *)w.data)[i] = cs_f32_to_bf16_ftz(v); break;
    default: ((float *)w.data)[i] = v; break;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

#include "ops_simd.h"

/* The F16C conversion: 8 halves per instruction, exact (subnormals included). */
__attribute__((target("avx,f16c"))) static void widen_f16c(float *dst, const uint16_t *src,
                                                           int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = cs_f16_to_f32(src[i]);
}

static bool have_f16c(void) {
    static _Atomic int known = -1; /* a benign race: every thread computes the same */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k < 0) {
        /* CPUID.1:ECX bit 29; the AVX2 check also says the OS saves the ymm state (and
         * clang's __builtin_cpu_supports knows no "f16c"). */
        unsigned eax, ebx, ecx, edx;
        k = __builtin_cpu_supports("avx2") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) &&
            (ecx >> 29 & 1u);
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k;
}
#endif

void gemm_widen(float *dst, const uint16_t *src, int64_t n, gemm_dtype d) {
    if (d == GEMM_BF16) {
        for (int64_t i = 0; i < n; i++) dst[i] = cs_bf16_to_f32(src[i]);
        return;
    }
    CS_ASSERT(d == GEMM_F16);
#if defined(__x86_64__) || defined(__i386__)
    if (have_f16c()) {
        widen_f16c(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = cs_f16_to_f32(src[i]);
}

/* ---- packing ---- */

bool gemm_pack_panels_n(void *w, size_t esize, int64_t rows, int64_t cols, int64_t width) {
    CS_ASSERT(rows >= 0 && cols >= 0 && width > 0 && (esize == 2 || esize == 4));
    size_t bytes;
    if (!cs_mul_size((size_t)(rows * cols), esize, &bytes)) return false;
    uint8_t *t = cs_malloc(bytes ? bytes : 1);
    if (!t) return false;
    const uint8_t *src = w;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            memcpy(t + (size_t)gemm_panel_index(rows, cols, width, r, j) * esize,
                   src + (size_t)(r * cols + j) * esize, esize);
    memcpy(w, t, bytes);
    free(t);
    return true;
}

/* k-block [k0, k0 + kc) of the panel of `width` rows starting at row p0 of a packed
 * rows × k matrix, as kc groups of `width` (zero-padded when the panel is narrower):
 * straight from the packed data for full fp32 (or bf16-pair) panels, else through pad
 * (GEMM_KC · width floats), widening F16 / BF16 weights. For GEMM_BF16X2, k, k0 and kc
 * count pairs and the result holds pairs. */
static const float *panel_block(gemm_weights packed, int64_t rows, int64_t k, int64_t width,
                                int64_t p0, int64_t k0, int64_t kc, float *pad) {
    const int64_t h = rows - p0 < width ? rows - p0 : width;
    const int64_t at = p0 * k + k0 * h;
    if (packed.dtype == GEMM_F32 || packed.dtype == GEMM_BF16X2) {
        const float *src = (const float *)packed.data + at;
        if (h == width) return src;
        for (int64_t kk = 0; kk < kc; kk++) {
            memcpy(pad + kk * width, src + kk * h, (size_t)h * sizeof(float));
            memset(pad + kk * width + h, 0, (size_t)(width - h) * sizeof(float));
        }
        return pad;
    }
    const uint16_t *src = (const uint16_t *)packed.data + at;
    if (h == width) {
        gemm_widen(pad, src, kc * width, packed.dtype);
        return pad;
    }
    for (int64_t kk = 0; kk < kc; kk++) {
        gemm_widen(pad + kk * width, src + kk * h, h, packed.dtype);
        memset(pad + kk * width + h, 0, (size_t)(width - h) * sizeof(float));
    }
    return pad;
}

enum { KERN_WIDTHS = GEMM_NR / 16 };

/* The micro-kernels of a product, fp32 or bf16 pairs (GEMM_BF16X2 weights): [i] for tiles
 * whose columns read end by 16·(i + 1), the last the full tile. */
typedef struct gemm_kern {
    gemm_kernel_fn f32[KERN_WIDTHS];
    /* bf16 products (kc counts pairs): either pair kernels, or split ones whose A operand
     * (rows of x, weight panels) is split into floats before it reaches them */
    gemm_kernel_bf16_fn bf16[KERN_WIDTHS];
    gemm_kernel_split_fn split[KERN_WIDTHS];
    bool pairs;                  /* one of the two: the operands are k pairs */
    gemm_pair_tile_fn pair_tile; /* bf16: rounds activation tiles to pairs */
} gemm_kern;

static gemm_kern kern_for(gemm_dtype d) {
    gemm_kern k = {0};
    for (int i = 0; i < KERN_WIDTHS; i++) {
        if (d != GEMM_BF16X2)
            k.f32[i] = gemm_kernel_for_width(16 * (i + 1));
        else if (!(k.split[i] = gemm_kernel_bf16_split_for_width(16 * (i + 1))))
            k.bf16[i] = gemm_kernel_bf16_for_width(16 * (i + 1));
    }
    if (d == GEMM_BF16X2) {
        k.pairs = true;
        k.pair_tile = gemm_bf16_pair_tile_active();
    }
    return k;
}

/* k units of a product with k = `k` of weights dtype d: pairs for GEMM_BF16X2. */
static int64_t k_units(gemm_dtype d, int64_t k) { return d == GEMM_BF16X2 ? (k + 1) / 2 : k; }

/* Where a tile's columns live in C: columns [j, j + n) of the tile at y (row stride ldy).
 * A tile of the packed-A product may hold the end of one batch item and the start of the
 * next, so it can have several pieces. */
typedef struct tile_piece {
    float *y;
    int64_t j, n;
} tile_piece;

/* Runs the kernel on an h-row tile whose columns are the np pieces pc (row stride ldy): a
 * full tile of one piece in place, any other through a local tile (loading the running
 * sums unless first). Adds the bias on the last block, after the full sum: bias_row[r]
 * per row or bias_col[j] per tile column, either may be NULL. */
static void tile_run(gemm_kern kern, int64_t kc, const float *a, const float *b,
                     const tile_piece *pc, int np, int64_t ldy, int64_t h, bool first,
                     bool last, const float *bias_row, const float *bias_col) {
    const bool full = np == 1 && h == GEMM_MR && pc[0].n == GEMM_NR;
    float c[GEMM_MR * GEMM_NR] __attribute__((aligned(64)));
    float *t = full ? pc[0].y : c;
    const int64_t ldt = full ? ldy : GEMM_NR;
    if (!full) {
        memset(c, 0, sizeof c); /* no garbage in unused lanes */
        if (!first)
            for (int p = 0; p < np; p++)
                for (int64_t r = 0; r < h; r++)
                    memcpy(c + r * GEMM_NR + pc[p].j, pc[p].y + r * ldy,
                           (size_t)pc[p].n * sizeof(float));
    }
    int64_t width = 0; /* only the columns the pieces read are computed */
    for (int p = 0; p < np; p++)
        if (pc[p].j + pc[p].n > width) width = pc[p].j + pc[p].n;
    const int wi = (int)((width - 1) / 16);
    if (kern.split[0])
        kern.split[wi](kc, a, (const gemm_pair *)b, t, ldt, !first);
    else if (kern.bf16[0])
        kern.bf16[wi](kc, (const gemm_pair *)a, (const gemm_pair *)b, t, ldt, !first);
    else
        kern.f32[wi](kc, a, b, t, ldt, !first);
    const float *br = last ? bias_row : NULL, *bc = last ? bias_col : NULL;
    if (full && !br && !bc) return;
    for (int p = 0; p < np; p++)
        for (int64_t r = 0; r < h; r++) {
            float *yr = pc[p].y + r * ldy;
            const float *tr = t + r * ldt + pc[p].j;
            const int64_t n = pc[p].n;
            if (br) {
                for (int64_t j = 0; j < n; j++) yr[j] = tr[j] + br[r];
            } else if (bc) {
                for (int64_t j = 0; j < n; j++) yr[j] = tr[j] + bc[pc[p].j + j];
            } else if (!full) {
                memcpy(yr, tr, (size_t)n * sizeof(float));
            }
        }
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Blocks of `unit` multiples covering n so that there are at least `want` blocks when n
 * allows: the block size in units. */
static int64_t block_units(int64_t n, int64_t unit, int64_t max_units, int64_t want) {
    int64_t units = ceil_div(n, unit);
    int64_t per = ceil_div(units, want > 0 ? want : 1);
    if (per > max_units) per = max_units;
    return per < 1 ? 1 : per;
}

/* Items a product is cut into: enough for the pool's balance (4 a thread), or one when it
 * runs serially (a row group, ctx_rows.h), since each cut re-reads or re-packs an operand:
 * a linear layer's column blocks each pack the same rows of x, a conv's row blocks need a
 * pre-pass that packs every tile before any is used. */
static int64_t items_wanted(const threadpool *p) {
    const int threads = threadpool_threads(p);
    return threads > 1 ? 4 * (int64_t)threads : 1;
}

/* ---- linear: y(m, n) = x(m, k) · Wᵀ ---- */

#define WEIGHTS_CACHED (1024.0 * 1024) /* weights of at most this many bytes stay in L2 */

enum {
    LIN_MC = 128,          /* rows of x per item (packed: 128 KiB per k-block) */
    LIN_MC_STREAMED = 512, /* the same for weights from memory (512 KiB per k-block) */
};
#define LIN_WEIGHTS_NEAR (16.0 * 1024 * 1024) /* weights this large come back from L3 cheaply */
#define LIN_PACK_COST 8.0 /* a byte of x packed costs as much as this many of weights read */

typedef struct lin_job {
    float *y;
    const float *x, *b;
    gemm_weights w;
    int64_t m, k, n;
    int64_t mc, nc, nblocks; /* item = (row block, column block) */
    gemm_kern kern;
    gemm_panel8_fn pack; /* fp32 rows of x */
} lin_job;

/* gemm_panel8_fn in plain C. */
static void panel8(float *dst, int64_t ld, const float *const src[GEMM_MR], int64_t n) {
    for (int64_t r = 0; r < GEMM_MR; r++)
        for (int64_t c = 0; c < n; c++)
            dst[c * ld + r] = src[r] ? src[r][c] : 0.0f;
}

#if defined(__x86_64__) || defined(__i386__)
/* panel8 eight columns at a time, a transpose in registers instead of a store per float
 * (linear layers with few outputs a row, e.g. 8192 × 1280 -> 320, 4-8 % faster; the
 * attention's query and key panels, whose scalar strided stores were most of its packing
 * at small heads). */
OPS_TARGET_AVX2 static void panel8_avx2(float *dst, int64_t ld, const float *const src[GEMM_MR],
                                        int64_t n) {
    static const float zero8[8];
    int64_t c = 0;
    const float *at[GEMM_MR];
    for (; c + 8 <= n; c += 8) {
        for (int r = 0; r < GEMM_MR; r++)
            at[r] = src[r] ? src[r] + c : zero8;
        ops_transpose8x8(dst + c * ld, ld, at);
    }
    for (int r = 0; r < GEMM_MR; r++)
        at[r] = src[r] ? src[r] + c : NULL;
    panel8(dst + c * ld, ld, at, n - c);
}
#endif

gemm_panel8_fn gemm_panel8_active(void) {
    _Static_assert(GEMM_MR == 8, "panels of 8 rows");
#if defined(__x86_64__) || defined(__i386__)
    if (gemm_active_isa() != GEMM_ISA_PORTABLE) return panel8_avx2;
#endif
    return panel8;
}

/* a[i·kc·8 + kk·8 + r] = x[row0 + 8i + r][k0 + kk], zero past row m. */
static void pack_rows(gemm_panel8_fn pack, float *a, const float *x, int64_t m, int64_t k,
                      int64_t row0, int64_t rows, int64_t k0, int64_t kc) {
    for (int64_t i = 0; i < rows; i += GEMM_MR) {
        const float *src[GEMM_MR];
        for (int64_t r = 0; r < GEMM_MR; r++) {
            const int64_t row = row0 + i + r;
            src[r] = row >= m || i + r >= rows ? NULL : x + row * k + k0;
        }
        pack(a + i * kc, GEMM_MR, src, kc);
    }
}

static void lin_items(void *arg, int64_t i0, int64_t i1) {
    const lin_job *j = arg;
    const int64_t astep = j->kern.split[0] ? 2 : 1; /* split: a pair is two floats of A */
    float *a = scratch_get(SCRATCH_GEMM_A, (size_t)(astep * j->mc * GEMM_KC) * sizeof(float));
    float *pad = scratch_get(SCRATCH_GEMM_PAD, (size_t)(GEMM_KC * GEMM_NR) * sizeof(float));
    const int64_t kd = k_units(j->w.dtype, j->k);
    for (int64_t it = i0; it < i1; it++) {
        const int64_t row0 = it / j->nblocks * j->mc, col0 = it % j->nblocks * j->nc;
        const int64_t rows = j->m - row0 < j->mc ? j->m - row0 : j->mc;
        const int64_t cols = j->n - col0 < j->nc ? j->n - col0 : j->nc;
        const int64_t rpad = ceil_div(rows, GEMM_MR) * GEMM_MR;
        for (int64_t k0 = 0; k0 < kd; k0 += GEMM_KC) {
            const int64_t kc = kd - k0 < GEMM_KC ? kd - k0 : GEMM_KC;
            const bool first = k0 == 0, last = k0 + kc == kd;
            if (j->kern.split[0])
                gemm_bf16_pack_rows_split(a, j->x, j->m, j->k, row0, rpad, k0, kc);
            else if (j->kern.bf16[0])
                gemm_bf16_pack_rows((gemm_pair *)a, j->x, j->m, j->k, row0, rpad, k0, kc);
            else
                pack_rows(j->pack, a, j->x, j->m, j->k, row0, rpad, k0, kc);
            for (int64_t q = col0; q < col0 + cols; q += GEMM_NR) {
                const int64_t w = j->n - q < GEMM_NR ? j->n - q : GEMM_NR;
                const float *b = panel_block(j->w, j->n, kd, GEMM_NR, q, k0, kc, pad);
                for (int64_t i = 0; i < rows; i += GEMM_MR) {
                    const int64_t h = rows - i < GEMM_MR ? rows - i : GEMM_MR;
                    const tile_piece pc = {j->y + (row0 + i) * j->n + q, 0, w};
                    tile_run(j->kern, kc, a + i * astep * kc, b, &pc, 1, j->n, h, first, last,
                             NULL, j->b ? j->b + q : NULL);
                }
            }
        }
    }
}

typedef struct lin_split {
    int64_t mc, nc; /* rows and columns of an item */
} lin_split;

/* Rows mc an item and the columns that make `want` items with them: the weight columns
 * are cut only when the row blocks are fewer than `want`. */
static lin_split lin_split_of(int64_t m, int64_t n, int64_t mc, int64_t want) {
    const int64_t mblocks = ceil_div(m, mc);
    const int64_t nc = block_units(n, GEMM_NR, INT64_MAX / GEMM_NR,
                                   mblocks >= want ? 1 : ceil_div(want, mblocks)) * GEMM_NR;
    return (lin_split){mc, nc};
}

/* How a linear product y(m, n) = x(m, kd) · Wᵀ is cut into items (row block × column block),
 * at least `want` where the shape allows (for the pool's balance).
 * Weights that stay in cache: row blocks of LIN_MC rows at most (the packed rows of x stay
 * in L2 beside a weight panel).
 * Weights from memory (SD-1.5's deepest feed-forward layers: 26 and 52 MB; 13 MB still
 * came back from L3 faster than x could be packed twice): every row block reads all
 * of them and every column block packs all its rows of x, so the split that reads the
 * least, row blocks · n · kd + LIN_PACK_COST · column blocks · m · kd, is chosen (a byte
 * of x packed costs more than a byte of weights streamed), with row blocks up to
 * LIN_MC_STREAMED rows: 512 rows into 10240 columns (16 × 16 latents) read the weights
 * once instead of 8 times, 128 rows (8 × 8) once instead of 8 times. */
static lin_split lin_choose_split(int64_t m, int64_t n, int64_t kd, int64_t want) {
    /* Row blocks of LIN_MC rows at most, spread evenly over `want` items where the rows allow. */
    const lin_split rows =
        lin_split_of(m, n, block_units(m, GEMM_MR, LIN_MC / GEMM_MR, want) * GEMM_MR, want);
    if ((double)n * (double)kd * sizeof(float) <= LIN_WEIGHTS_NEAR) return rows;
    lin_split best = rows; /* when no split gives `want` items */
    double best_cost = INFINITY;
    for (int64_t mb = 1; mb <= ceil_div(m, GEMM_MR); mb++) {
        const int64_t mc = block_units(m, GEMM_MR, INT64_MAX / GEMM_MR, mb) * GEMM_MR;
        const int64_t mblocks = ceil_div(m, mc);
        if (mc > LIN_MC_STREAMED || mblocks != mb) continue; /* too tall, or the same as a fewer */
        const lin_split sp = lin_split_of(m, n, mc, want);
        const int64_t nblocks = ceil_div(n, sp.nc);
        const double cost = (double)mblocks * (double)n + LIN_PACK_COST * (double)nblocks * (double)m;
        if (mblocks * nblocks >= want && cost < best_cost) {
            best_cost = cost;
            best = sp;
        }
    }
    return best;
}

void gemm_linear(threadpool *p, float *y, const float *x, gemm_weights w_packed, const float *b,
                 int64_t m, int64_t k, int64_t n) {
    if (m <= 0 || n <= 0) return;
    if (k == 0) {
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < n; c++) y[r * n + c] = b ? b[c] : 0.0f;
        return;
    }
    const lin_split sp = lin_choose_split(m, n, k_units(w_packed.dtype, k), items_wanted(p));
    lin_job j = {.y = y, .x = x, .w = w_packed, .b = b, .m = m, .k = k, .n = n, .mc = sp.mc,
                 .nc = sp.nc, .nblocks = ceil_div(n, sp.nc), .kern = kern_for(w_packed.dtype)};
    j.pack = gemm_panel8_active();
    const int64_t mblocks = ceil_div(m, sp.mc);
    threadpool_for(p, mblocks * j.nblocks, 1, lin_items, &j);
}

/* ---- packed A: y_b(m, cols) = W(m, k) · X_b(k, cols) ---- */

/* The activation side is one row of batch · cols columns (item b's column c at
 * b · cols + c) cut into tiles of GEMM_NR, so a tile may hold the end of one item and the
 * start of the next: small images fill whole tiles (an 8 × 8 latent alone would leave a
 * 48-column tile's second half two-thirds empty), and a batch shares every weight panel
 * read. Each output element is still the same single accumulator (gemm.h). */

/* Activation tiles of 48 columns an item at most (192 KiB a k-block), or PA_TILES_WIDE
 * (384 KiB, still in L2) for weights larger than PA_WIDE_WEIGHTS, which come from memory
 * once per column block. */
enum { PA_TILES = 4, PA_TILES_WIDE = 8 };
#define PA_WIDE_WEIGHTS (32.0 * 1024 * 1024)
#define PA_PREPACK_MAX (64.0 * 1024 * 1024) /* bytes of tiles packed ahead for all row blocks */

typedef struct pa_job {
    float *y;
    gemm_weights w;
    const float *bias;
    int64_t batch, m, k, cols;
    int64_t tiles, per_item;          /* tiles of the batch · cols columns; tiles per item */
    int64_t mc, col_blocks, m_blocks; /* item = (column block, row block) */
    /* Set when several row blocks share each tile: every tile packed once, tile t's
     * k-block at k0 at tiles + (t · kd + k0) · GEMM_NR. */
    float *tiles_packed;
    gemm_pack_fn pack;
    const void *arg;
    gemm_kern kern;
} pa_job;

/* A tile's columns [j, j + n) are columns [c, c + n) of batch item bi. */
typedef struct pa_piece {
    int64_t bi, c, j, n;
} pa_piece;

/* The pieces (one per batch item it touches) of tile t, *w columns wide; returns their
 * number. */
static int pa_pieces(const pa_job *j, int64_t t, pa_piece *pc, int64_t *w_out) {
    const int64_t g0 = t * GEMM_NR, total = j->batch * j->cols;
    const int64_t w = total - g0 < GEMM_NR ? total - g0 : GEMM_NR;
    *w_out = w;
    int np = 0;
    for (int64_t g = g0; g < g0 + w; np++) {
        const int64_t bi = g / j->cols, c = g % j->cols;
        const int64_t n = j->cols - c < g0 + w - g ? j->cols - c : g0 + w - g;
        pc[np] = (pa_piece){bi, c, g - g0, n};
        g += n;
    }
    return np;
}

/* Activation tile of the pieces pc (w columns): k units [k0, k0 + kc) into dst (kc rows of
 * GEMM_NR), zero past column w; bf16: packed in fp32 into the thread's staging tile
 * (2 · GEMM_KC rows of GEMM_NR), then rounded into pairs. */
static void pa_tile(const pa_job *j, float *dst, const pa_piece *pc, int np, int64_t k0,
                    int64_t kc, int64_t w) {
    float *t = j->kern.pairs ? scratch_get(SCRATCH_GEMM_F32,
                                           (size_t)(2 * GEMM_KC * GEMM_NR) * sizeof(float))
                             : dst;
    const int64_t e0 = j->kern.pairs ? 2 * k0 : k0;
    const int64_t ec = j->kern.pairs ? (j->k - e0 < 2 * kc ? j->k - e0 : 2 * kc) : kc;
    for (int p = 0; p < np; p++) j->pack(j->arg, t + pc[p].j, pc[p].bi, e0, ec, pc[p].c, pc[p].n);
    if (w < GEMM_NR)
        for (int64_t kk = 0; kk < ec; kk++)
            memset(t + kk * GEMM_NR + w, 0, (size_t)(GEMM_NR - w) * sizeof(float));
    if (j->kern.pairs) j->kern.pair_tile((gemm_pair *)dst, t, ec);
}

static void pa_items(void *arg, int64_t i0, int64_t i1) {
    const pa_job *j = arg;
    /* Tiles packed here, unless the pre-pass packed them all. */
    const size_t bt_bytes = (size_t)(PA_TILES_WIDE * GEMM_KC * GEMM_NR) * sizeof(float);
    float *bt = j->tiles_packed ? NULL : scratch_get(SCRATCH_GEMM_A, bt_bytes);
    float *pad = scratch_get(SCRATCH_GEMM_PAD, (size_t)(GEMM_KC * GEMM_MR) * sizeof(float));
    float *a2 = j->kern.split[0] ? scratch_get(SCRATCH_GEMM_SPLIT,
                                               (size_t)(2 * GEMM_KC * GEMM_MR) * sizeof(float))
                                 : NULL;
    const int64_t kd = k_units(j->w.dtype, j->k);
    pa_piece pcs[PA_TILES_WIDE][GEMM_NR];
    tile_piece out[GEMM_NR];
    int np[PA_TILES_WIDE];
    int64_t tw[PA_TILES_WIDE];
    for (int64_t it = i0; it < i1; it++) {
        const int64_t t0 = it / j->m_blocks * j->per_item;
        const int64_t nt = j->tiles - t0 < j->per_item ? j->tiles - t0 : j->per_item;
        const int64_t row0 = it % j->m_blocks * j->mc;
        const int64_t rows = j->m - row0 < j->mc ? j->m - row0 : j->mc;
        for (int64_t t = 0; t < nt; t++) np[t] = pa_pieces(j, t0 + t, pcs[t], &tw[t]);
        for (int64_t k0 = 0; k0 < kd; k0 += GEMM_KC) {
            const int64_t kc = kd - k0 < GEMM_KC ? kd - k0 : GEMM_KC;
            const bool first = k0 == 0, last = k0 + kc == kd;
            const float *tiles = bt;
            int64_t tile_stride = kc * GEMM_NR;
            if (j->tiles_packed) {
                tiles = j->tiles_packed + (t0 * kd + k0) * GEMM_NR;
                tile_stride = kd * GEMM_NR;
            } else {
                for (int64_t t = 0; t < nt; t++)
                    pa_tile(j, bt + t * kc * GEMM_NR, pcs[t], np[t], k0, kc, tw[t]);
            }
            for (int64_t i = row0; i < row0 + rows; i += GEMM_MR) {
                const int64_t h = j->m - i < GEMM_MR ? j->m - i : GEMM_MR;
                const float *a = panel_block(j->w, j->m, kd, GEMM_MR, i, k0, kc, pad);
                if (a2) {
                    gemm_bf16_split_panel(a2, (const gemm_pair *)a, kc);
                    a = a2;
                }
                for (int64_t t = 0; t < nt; t++) {
                    for (int p = 0; p < np[t]; p++) {
                        const pa_piece *q = &pcs[t][p];
                        out[p] = (tile_piece){j->y + (q->bi * j->m + i) * j->cols + q->c, q->j,
                                              q->n};
                    }
                    tile_run(j->kern, kc, a, tiles + t * tile_stride, out, np[t], j->cols,
                             h, first, last, j->bias ? j->bias + i : NULL, NULL);
                }
            }
        }
    }
}

/* The pre-pass of a product whose row blocks share tiles: items (tile, k-block). */
static void pa_pack_items(void *arg, int64_t i0, int64_t i1) {
    const pa_job *j = arg;
    const int64_t kd = k_units(j->w.dtype, j->k), kblocks = ceil_div(kd, GEMM_KC);
    pa_piece pcs[GEMM_NR];
    for (int64_t it = i0; it < i1; it++) {
        const int64_t t = it / kblocks, k0 = it % kblocks * GEMM_KC;
        const int64_t kc = kd - k0 < GEMM_KC ? kd - k0 : GEMM_KC;
        int64_t w;
        const int np = pa_pieces(j, t, pcs, &w);
        pa_tile(j, j->tiles_packed + (t * kd + k0) * GEMM_NR, pcs, np, k0, kc, w);
    }
}

typedef struct pa_split {
    int64_t per_item, m_blocks;
} pa_split;

/* per tiles an item, and row blocks enough for `want` items (at most one per row panel). */
static pa_split pa_split_of(int64_t tiles, int64_t per, int64_t panels, int64_t want) {
    const int64_t cb = ceil_div(tiles, per);
    const int64_t mb = cb >= want ? 1 : ceil_div(want, cb);
    return (pa_split){per, mb < panels ? mb : panels};
}

/* How a product of `tiles` activation tiles and m weight rows (kd k units) is cut into
 * items: column blocks of per_item tiles times row blocks, at least `want` items where
 * the shape allows (for the pool's balance).
 * Weights that stay in cache: the split balances the pool best, few tiles per item
 * (tiles / want) and rows cut only when the tiles are too few.
 * Weights from memory (SD-1.5's 16 × 16 and 8 × 8 convs: 59 MB and more): each column
 * block reads all of them (m · kd) and, with several row blocks, each row block reads its
 * column block's tiles from the pre-packed buffer (tiles · kd · GEMM_NR), so the split
 * that reads the least is chosen: a 16 × 16 latent's 11 tiles read the weights twice
 * (PA_TILES_WIDE tiles an item; 3 times at PA_TILES, 8 % slower), not 11, and an 8 × 8
 * latent's 3 tiles once. Large images get the most tiles an item and one row block
 * either way (tiles packed in the item: no full im2col), and the pre-packed buffer stays
 * under PA_PREPACK_MAX. */
static pa_split pa_choose_split(int64_t tiles, int64_t m, int64_t kd, int64_t want) {
    const int64_t panels = ceil_div(m, GEMM_MR);
    if ((double)m * (double)kd * sizeof(float) <= WEIGHTS_CACHED) {
        const int64_t per = tiles / want;
        return pa_split_of(tiles, per < 1 ? 1 : per > PA_TILES ? PA_TILES : per, panels, want);
    }
    pa_split best = {1, 1}; /* when every split would pre-pack too much */
    double best_cost = INFINITY;
    const int64_t max_per =
        (double)m * (double)kd * sizeof(float) > PA_WIDE_WEIGHTS ? PA_TILES_WIDE : PA_TILES;
    for (int64_t per = tiles < max_per ? tiles : max_per; per >= 1; per--) {
        const pa_split sp = pa_split_of(tiles, per, panels, want);
        if (sp.m_blocks > 1 &&
            (double)tiles * (double)kd * GEMM_NR * sizeof(float) > PA_PREPACK_MAX)
            continue;
        const double cost = (double)ceil_div(tiles, per) * (double)m +
                            (sp.m_blocks > 1 ? (double)sp.m_blocks * (double)tiles * GEMM_NR : 0);
        if (cost < best_cost) {
            best_cost = cost;
            best = sp;
        }
    }
    return best;
}

void gemm_packed_a(threadpool *p, float *y, gemm_weights w_packed, const float *bias,
                   int64_t batch, int64_t m, int64_t k, int64_t cols, gemm_pack_fn pack,
                   const void *arg) {
    if (batch <= 0 || m <= 0 || cols <= 0) return;
    CS_ASSERT(k > 0);
    const int64_t want = items_wanted(p);
    const int64_t tiles = ceil_div(batch * cols, GEMM_NR);
    const pa_split sp = pa_choose_split(tiles, m, k_units(w_packed.dtype, k), want);
    const int64_t mc = block_units(m, GEMM_MR, INT64_MAX / GEMM_MR, sp.m_blocks) * GEMM_MR;
    pa_job j = {.y = y, .w = w_packed, .bias = bias, .batch = batch, .m = m, .k = k,
                .cols = cols, .tiles = tiles, .per_item = sp.per_item, .mc = mc,
                .col_blocks = ceil_div(tiles, sp.per_item), .m_blocks = ceil_div(m, mc), .pack = pack,
                .arg = arg, .kern = kern_for(w_packed.dtype)};
    if (j.m_blocks > 1) {
        // Several row blocks read each tile: pack the tiles once, not once per row block.
        const int64_t kd = k_units(w_packed.dtype, k);
        j.tiles_packed = scratch_get(SCRATCH_GEMM_TILES,
                                     (size_t)(tiles * kd * GEMM_NR) * sizeof(float));
        threadpool_for(p, tiles * ceil_div(kd, GEMM_KC), 1, pa_pack_items, &j);
    }
    threadpool_for(p, j.col_blocks * j.m_blocks, 1, pa_items, &j);
}
