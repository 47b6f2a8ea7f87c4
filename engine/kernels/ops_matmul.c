/*
 * Matrix kernels of ops.h: the products with packed weights (our GEMM, gemm.h: linear,
 * and conv2d with the activation tiles packed here, an implicit im2col), the reference-
 * layout linear and conv2d (im2col + OpenBLAS cblas_sgemm, which threads internally) and
 * the LoRA side paths; attention lives in ops_attention.c. The work between products
 * (bias fills, im2col) is spread over the ctx's thread pool, each element computed the
 * same way whatever chunk or thread holds it.
 *
 * Scratch (im2col columns) comes from the ctx arena and is released before returning.
 * While c->measuring conv2d still *reserves* that scratch (and releases it at once) so the
 * measuring pass sees the true peak, but touches no data and counts no FLOPs. Scratch is
 * bounded by chunking output rows, so a 512×512 VAE decode does not need gigabytes of
 * im2col columns.
 *
 * Thread safety: only the given buffers and ctx are touched; a ctx has one caller thread.
 */
#include "ops.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "gemm.h"
#include "ops_simd.h"
#include "threadpool.h"

/* Most floats of scratch one chunk may use: 16 MB of im2col columns.
 * Large enough that each sgemm still has hundreds of columns (measured: no slower than
 * unchunked), small enough that kernel scratch adds little to the arena's peak (SD's VAE
 * decoder at 512×512 would otherwise need 2.4 GB of columns for one conv). */
enum { OPS_CHUNK_FLOATS = 4 << 20 };

/* Least floats written per pool chunk for the copies and fills between products. */
enum { OPS_POOL_GRAIN = 16384 };

/* Units of `size` floats per pool chunk so a chunk writes at least OPS_POOL_GRAIN. */
static int64_t pool_grain(int64_t size) {
    return size >= OPS_POOL_GRAIN ? 1 : OPS_POOL_GRAIN / (size > 0 ? size : 1);
}

/* cblas takes int dimensions in the Debian (LP64) build. */
static int blas_dim(int64_t v) {
    CS_ASSERT(v >= 0 && v <= INT_MAX);
    return (int)v;
}

/* The bias that sgemm then adds onto with beta = 1, which saves a separate pass over y:
 * rows of y(rows, cols) set to b(cols) (per_row), or each row r of y set to the
 * constant b[r % period] (per-channel conv bias over (B·Cout, HW)). */
typedef struct fill_job {
    float *y;
    const float *b;
    int64_t cols, period;
    bool per_row;
} fill_job;

static void fill_chunk(void *p, int64_t r0, int64_t r1) {
    const fill_job *j = p;
    for (int64_t r = r0; r < r1; r++) {
        float *row = j->y + r * j->cols;
        if (j->per_row) {
            memcpy(row, j->b, (size_t)j->cols * sizeof(float));
        } else {
            const float v = j->b[r % j->period];
            for (int64_t i = 0; i < j->cols; i++)
                row[i] = v;
        }
    }
}

static void fill_rows(cs_ctx *c, float *y, const float *b, int64_t rows, int64_t cols) {
    fill_job j = {.y = y, .b = b, .cols = cols, .per_row = true};
    threadpool_for(c->pool, rows, pool_grain(cols), fill_chunk, &j);
}

void op_linear(cs_ctx *c, float *y, const float *x, const float *w, const float *b, int64_t batch,
               int64_t rows, int64_t in, int64_t out) {
    CTX_PROFILE_OP(c, CS_OP_LINEAR);
    if (c->measuring || batch == 0 || rows == 0 || out == 0) return;
    CS_ASSERT(batch > 0 && rows > 0 && in >= 0 && out > 0);
    if (b)
        fill_rows(c, y, b, batch * rows, out);
    else if (in == 0)
        memset(y, 0, (size_t)(batch * rows) * (size_t)out * sizeof(float));
    if (in == 0) return;
    for (int64_t i = 0; i < batch; i++) {
        // y_i(rows, out) = x_i(rows, in) · w(out, in)ᵀ [+ y_i]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_dim(rows), blas_dim(out),
                    blas_dim(in), 1.0f, x + i * rows * in, blas_dim(in), w, blas_dim(in),
                    b ? 1.0f : 0.0f, y + i * rows * out, blas_dim(out));
    }
    c->flops += 2.0 * (double)(batch * rows) * (double)in * (double)out;
}

/* ---- conv2d ---- */

int64_t op_conv2d_out_h(const op_conv2d_shape *s) {
    int64_t span = s->height + s->pad_top + s->pad_bottom;
    CS_ASSERT(s->stride > 0 && s->kernel > 0 && span >= s->kernel);
    return (span - s->kernel) / s->stride + 1;
}

int64_t op_conv2d_out_w(const op_conv2d_shape *s) {
    int64_t span = s->width + s->pad_left + s->pad_right;
    CS_ASSERT(s->stride > 0 && s->kernel > 0 && span >= s->kernel);
    return (span - s->kernel) / s->stride + 1;
}

/* Output columns [ow_lo, ow_hi) read input columns inside [0, W) for kernel column kw;
 * the others read padding. */
static void conv_valid_cols(const op_conv2d_shape *s, int64_t wo, int64_t kw, int64_t *ow_lo,
                            int64_t *ow_hi) {
    int64_t st = s->stride, lo_num = s->pad_left - kw, hi_num = s->width - 1 + s->pad_left - kw;
    int64_t lo = lo_num <= 0 ? 0 : (lo_num + st - 1) / st;
    int64_t hi = hi_num < 0 ? 0 : hi_num / st + 1;
    if (hi > wo) hi = wo;
    if (lo > hi) lo = hi;
    *ow_lo = lo;
    *ow_hi = hi;
}

/* col(Cin·k·k, (oh1-oh0)·Wo): the input patches of output rows [oh0, oh1) of one image
 * x(Cin, H, W), zero where the kernel reads padding. Row order (ci, kh, kw) matches the
 * weight layout (Cout, Cin, k, k), so the conv is w(Cout, Cin·k·k) · col. This fills
 * the rows of input channels [ci0, ci1). */
static void im2col_rows(float *col, const float *x, const op_conv2d_shape *s, int64_t wo,
                        int64_t oh0, int64_t oh1, int64_t ci0, int64_t ci1) {
    const int64_t k = s->kernel, st = s->stride, h = s->height, w = s->width;
    const int64_t n = (oh1 - oh0) * wo;
    for (int64_t ci = ci0; ci < ci1; ci++) {
        for (int64_t kh = 0; kh < k; kh++) {
            for (int64_t kw = 0; kw < k; kw++) {
                float *row = col + ((ci * k + kh) * k + kw) * n;
                int64_t lo, hi;
                conv_valid_cols(s, wo, kw, &lo, &hi);
                for (int64_t oh = oh0; oh < oh1; oh++) {
                    float *dst = row + (oh - oh0) * wo;
                    int64_t ih = oh * st - s->pad_top + kh;
                    if (ih < 0 || ih >= h) {
                        memset(dst, 0, (size_t)wo * sizeof(float));
                        continue;
                    }
                    // Input index of output column ow is base + ow·stride (>= 0 for ow >= lo).
                    const int64_t base = (ci * h + ih) * w - s->pad_left + kw;
                    memset(dst, 0, (size_t)lo * sizeof(float));
                    if (hi <= lo) {
                        // The whole row reads padding (base + lo may lie before x).
                    } else if (st == 1) {
                        memcpy(dst + lo, x + base + lo, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] = x[base + ow * st];
                    }
                    memset(dst + hi, 0, (size_t)(wo - hi) * sizeof(float));
                }
            }
        }
    }
}

typedef struct im2col_job {
    float *col;
    const float *x;
    const op_conv2d_shape *s;
    int64_t wo, oh0, oh1;
} im2col_job;

static void im2col_chunk(void *p, int64_t ci0, int64_t ci1) {
    const im2col_job *j = p;
    im2col_rows(j->col, j->x, j->s, j->wo, j->oh0, j->oh1, ci0, ci1);
}

void op_conv2d(cs_ctx *c, float *y, const float *x, const float *w, const float *b,
               const op_conv2d_shape *s) {
    CTX_PROFILE_OP(c, CS_OP_CONV);
    const int64_t ho = op_conv2d_out_h(s), wo = op_conv2d_out_w(s);
    const int64_t hw_out = ho * wo, hw_in = s->height * s->width;
    const int64_t kdim = s->in_ch * s->kernel * s->kernel;
    CS_ASSERT(s->batch >= 0 && s->in_ch > 0 && s->out_ch > 0);
    const bool direct = s->kernel == 1 && s->stride == 1 && s->pad_top == 0 && s->pad_left == 0 &&
                        s->pad_bottom == 0 && s->pad_right == 0;

    // Output rows per im2col chunk: as many as fit the scratch bound, at least one.
    int64_t chunk_rows = OPS_CHUNK_FLOATS / (kdim * wo);
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > ho) chunk_rows = ho;
    size_t mark = ctx_mark(c);
    float *col = direct ? NULL : ctx_alloc(c, kdim * chunk_rows * wo); // (Cin·k·k, rows·Wo)
    if (c->measuring || s->batch == 0) {
        ctx_release(c, mark);
        return;
    }

    if (b) { // y(B·Cout, HWo) rows = b[row % Cout]
        fill_job fj = {.y = y, .b = b, .cols = hw_out, .period = s->out_ch, .per_row = false};
        threadpool_for(c->pool, s->batch * s->out_ch, pool_grain(hw_out), fill_chunk, &fj);
    }
    for (int64_t bi = 0; bi < s->batch; bi++) {
        const float *xb = x + bi * s->in_ch * hw_in; // (Cin, H, W)
        float *yb = y + bi * s->out_ch * hw_out;     // (Cout, Ho, Wo)
        const float beta = b ? 1.0f : 0.0f;
        if (direct) {
            // yb(Cout, HW) = w(Cout, Cin) · xb(Cin, HW)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(s->out_ch),
                        blas_dim(hw_out), blas_dim(kdim), 1.0f, w, blas_dim(kdim), xb,
                        blas_dim(hw_out), beta, yb, blas_dim(hw_out));
            continue;
        }
        for (int64_t oh0 = 0; oh0 < ho; oh0 += chunk_rows) {
            int64_t oh1 = oh0 + chunk_rows < ho ? oh0 + chunk_rows : ho;
            int64_t n = (oh1 - oh0) * wo;
            im2col_job ij = {.col = col, .x = xb, .s = s, .wo = wo, .oh0 = oh0, .oh1 = oh1};
            threadpool_for(c->pool, s->in_ch, pool_grain(s->kernel * s->kernel * n), im2col_chunk,
                           &ij);
            // yb[:, oh0·Wo : oh1·Wo] (Cout, n) = w(Cout, Cin·k·k) · col(Cin·k·k, n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(s->out_ch), blas_dim(n),
                        blas_dim(kdim), 1.0f, w, blas_dim(kdim), col, blas_dim(n), beta,
                        yb + oh0 * wo, blas_dim(hw_out));
        }
    }
    ctx_release(c, mark);
    c->flops += 2.0 * (double)s->batch * (double)s->out_ch * (double)hw_out * (double)kdim;
}

/* ---- products with packed weights (gemm.h) ---- */

void op_linear_packed(cs_ctx *c, float *y, const float *x, gemm_weights w_packed, const float *b,
                      int64_t rows, int64_t in, int64_t out) {
    CTX_PROFILE_OP(c, CS_OP_LINEAR);
    if (c->measuring || rows == 0 || out == 0) return;
    CS_ASSERT(rows > 0 && in >= 0 && out > 0);
    gemm_linear(c->pool, y, x, w_packed, b, rows, in, out);
    c->flops += 2.0 * (double)rows * (double)in * (double)out;
}

typedef struct conv_tile_src {
    const float *x;
    const op_conv2d_shape *s;
    int64_t wo;
    bool direct; /* 1×1, stride 1, no padding: the tile is rows of x */
} conv_tile_src;

/* The implicit im2col of one tile: dst[kk · GEMM_NR + j] = col(k0 + kk, col0 + j) of item
 * bi, col's rows ordered (ci, kh, kw) like the weights, zero where the kernel reads
 * padding (see im2col_rows). */
static void conv_pack_tile(const void *arg, float *dst, int64_t bi, int64_t k0, int64_t kc,
                           int64_t col0, int64_t ncols) {
    const conv_tile_src *src = arg;
    const op_conv2d_shape *s = src->s;
    const int64_t h = s->height, w = s->width, k = s->kernel, st = s->stride, wo = src->wo;
    const float *xb = src->x + bi * s->in_ch * h * w;
    if (src->direct) {
        for (int64_t kk = 0; kk < kc; kk++)
            memcpy(dst + kk * GEMM_NR, xb + (k0 + kk) * h * w + col0,
                   (size_t)ncols * sizeof(float));
        return;
    }
    for (int64_t kk = 0; kk < kc; kk++) {
        const int64_t kidx = k0 + kk, ci = kidx / (k * k), kh = kidx % (k * k) / k, kw = kidx % k;
        int64_t lo, hi;
        conv_valid_cols(s, wo, kw, &lo, &hi);
        const float *xc = xb + ci * h * w;
        float *d = dst + kk * GEMM_NR;
        int64_t oh = col0 / wo, ow = col0 % wo;
        for (int64_t j = 0; j < ncols; oh++, ow = 0) {
            const int64_t run = ncols - j < wo - ow ? ncols - j : wo - ow;
            const int64_t ih = oh * st - s->pad_top + kh;
            if (ih < 0 || ih >= h) {
                memset(d + j, 0, (size_t)run * sizeof(float));
            } else {
                // Output columns [a, e) of this run read inside the row, the rest padding.
                const int64_t a = ow > lo ? ow : lo, e = ow + run < hi ? ow + run : hi;
                const float *row = xc + ih * w - s->pad_left + kw;
                if (e <= a) {
                    memset(d + j, 0, (size_t)run * sizeof(float));
                } else {
                    memset(d + j, 0, (size_t)(a - ow) * sizeof(float));
                    if (st == 1)
                        memcpy(d + j + (a - ow), row + a, (size_t)(e - a) * sizeof(float));
                    else
                        for (int64_t t = a; t < e; t++)
                            d[j + t - ow] = row[t * st];
                    memset(d + j + (e - ow), 0, (size_t)(ow + run - e) * sizeof(float));
                }
            }
            j += run;
        }
    }
}

/* n floats from s to d (n <= GEMM_NR) with masked AVX-512 moves, never touching memory
 * outside the n: a tile row's pieces are latent rows of 8 to 64 floats, and a libc call
 * per piece cost more than the copy. */
OPS_TARGET_AVX512 static inline void copy_short(float *d, const float *s, int64_t n) {
    for (; n >= 16; n -= 16, d += 16, s += 16)
        _mm512_storeu_ps(d, _mm512_loadu_ps(s));
    if (n > 0) {
        const __mmask16 m = (__mmask16)((1u << n) - 1u);
        _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
    }
}

/* n zeros at d (n <= GEMM_NR), touching nothing past them: the tile row may go on with
 * another batch item's columns. */
OPS_TARGET_AVX512 static inline void zero_short(float *d, int64_t n) {
    for (; n >= 16; n -= 16, d += 16)
        _mm512_storeu_ps(d, _mm512_setzero_ps());
    if (n > 0) _mm512_mask_storeu_ps(d, (__mmask16)((1u << n) - 1u), _mm512_setzero_ps());
}

/* Largest kernel conv_pack_tile_same_avx512 takes (its masks are per kernel row/column). */
enum { CONV_SAME_KMAX = 8, CONV_TILE_VECS = GEMM_NR / 16 };
enum { CONV_PREFETCH = 2 }; /* channels ahead the "same" packer prefetches */

/* conv_pack_tile for stride-1 convs whose output rows are as wide as their input rows (the
 * UNet's and VAE's "same" 3×3 convs): tile column j of row (ci, kh, kw) reads x at
 * (col0 + j) + (kh - pad_top)·w + (kw - pad_left), one contiguous run, so a tile row is
 * GEMM_NR/16 masked loads whatever rows the tile spans. Which lanes read padding depends
 * only on kh and on kw, so those masks are found once per tile. On small latents (8×8) a
 * tile spans six output rows, and copying them piece by piece cost half the products. */
OPS_TARGET_AVX512 static void conv_pack_tile_same_avx512(const op_conv2d_shape *s, float *dst,
                                                         const float *xb, int64_t k0, int64_t kc,
                                                         int64_t col0, int64_t ncols) {
    const int64_t h = s->height, w = s->width, k = s->kernel;
    __mmask16 rowm[CONV_SAME_KMAX][CONV_TILE_VECS] = {{0}};
    __mmask16 colm[CONV_SAME_KMAX][CONV_TILE_VECS] = {{0}};
    __mmask16 lanes[CONV_TILE_VECS] = {0};
    for (int64_t j = 0, oh = col0 / w, ow = col0 % w; j < ncols; j++) {
        const int64_t v = j / 16;
        const __mmask16 bit = (__mmask16)(1u << (j % 16));
        lanes[v] |= bit;
        for (int64_t t = 0; t < k; t++) {
            const int64_t ih = oh - s->pad_top + t, iw = ow - s->pad_left + t;
            if (ih >= 0 && ih < h) rowm[t][v] |= bit;
            if (iw >= 0 && iw < w) colm[t][v] |= bit;
        }
        if (++ow == w) ow = 0, oh++;
    }
    int64_t ci = k0 / (k * k), kh = k0 % (k * k) / k, kw = k0 % k;
    /* Each kernel row t reads a run of ncols + k - 1 floats of a channel, at seg0 + t·w;
     * the runs CONV_PREFETCH channels ahead are prefetched as a channel starts. Channels
     * lie h·w floats apart, a stride the hardware prefetchers do not follow, and the loads
     * of a 64 × 64 latent's tiles waited on L3 (packing took 10 % of a 320 -> 320 conv, 4 %
     * so: the conv 5-6 % faster). */
    const int64_t hw = h * w, seg0 = col0 - s->pad_top * w - s->pad_left, seglen = ncols + k - 1;
    for (int64_t kk = 0; kk < kc; kk++) {
        if (kk == 0 || (kh == 0 && kw == 0)) {
            const int64_t cp = ci + CONV_PREFETCH;
            for (int64_t t = 0; t < k && cp < s->in_ch; t++) {
                const int64_t a = seg0 + t * w < 0 ? 0 : seg0 + t * w;
                const int64_t e = seg0 + t * w + seglen > hw ? hw : seg0 + t * w + seglen;
                for (int64_t o = a; o < e; o += 16)
                    _mm_prefetch((const char *)(xb + cp * hw + o), _MM_HINT_T0);
                if (e > a) /* the last line, which the steps miss when a is not line-aligned */
                    _mm_prefetch((const char *)(xb + cp * hw + e - 1), _MM_HINT_T0);
            }
        }
        // Offsets, not pointers: the run may start before x or end past it, in lanes the
        // masks leave unread (masked loads do not fault there).
        const int64_t off = ci * h * w + col0 + (kh - s->pad_top) * w + (kw - s->pad_left);
        const uintptr_t run = (uintptr_t)xb + (uintptr_t)off * sizeof(float);
        float *d = dst + kk * GEMM_NR;
        for (int v = 0; v < CONV_TILE_VECS; v++) {
            const __mmask16 m = rowm[kh][v] & colm[kw][v];
            _mm512_mask_storeu_ps(d + 16 * v, lanes[v],
                                  _mm512_maskz_loadu_ps(m, (const void *)(run + 64u * v)));
        }
        if (++kw == k) {
            kw = 0;
            if (++kh == k) kh = 0, ci++;
        }
    }
}

/* conv_pack_tile for stride 1 on AVX-512: the same tile, built as a zeroed row per k
 * plus one masked copy per output row the tile spans; the tile's row pieces are found
 * once, and (ci, kh, kw) advance without divisions. */
OPS_TARGET_AVX512 static void conv_pack_tile_s1_avx512(const void *arg, float *dst, int64_t bi,
                                                       int64_t k0, int64_t kc, int64_t col0,
                                                       int64_t ncols) {
    const conv_tile_src *src = arg;
    const op_conv2d_shape *s = src->s;
    const int64_t h = s->height, w = s->width, k = s->kernel, wo = src->wo;
    const float *xb = src->x + bi * s->in_ch * h * w;
    if (src->direct) {
        for (int64_t kk = 0; kk < kc; kk++)
            copy_short(dst + kk * GEMM_NR, xb + (k0 + kk) * h * w + col0, ncols);
        return;
    }
    if (wo == w && k <= CONV_SAME_KMAX) {
        conv_pack_tile_same_avx512(s, dst, xb, k0, kc, col0, ncols);
        return;
    }
    int64_t p_oh[GEMM_NR], p_ow[GEMM_NR], p_j[GEMM_NR], p_n[GEMM_NR], np = 0;
    for (int64_t j = 0, oh = col0 / wo, ow = col0 % wo; j < ncols; oh++, ow = 0, np++) {
        p_n[np] = ncols - j < wo - ow ? ncols - j : wo - ow;
        p_oh[np] = oh, p_ow[np] = ow, p_j[np] = j;
        j += p_n[np];
    }
    int64_t ci = k0 / (k * k), kh = k0 % (k * k) / k, kw = k0 % k;
    for (int64_t kk = 0; kk < kc; kk++) {
        float *d = dst + kk * GEMM_NR;
        zero_short(d, ncols);
        int64_t lo, hi;
        conv_valid_cols(s, wo, kw, &lo, &hi);
        const float *xc = xb + ci * h * w;
        for (int64_t p = 0; p < np; p++) {
            const int64_t ih = p_oh[p] - s->pad_top + kh;
            const int64_t a = p_ow[p] > lo ? p_ow[p] : lo;
            const int64_t e = p_ow[p] + p_n[p] < hi ? p_ow[p] + p_n[p] : hi;
            if (ih < 0 || ih >= h || e <= a) continue;
            copy_short(d + p_j[p] + (a - p_ow[p]), xc + ih * w - s->pad_left + kw + a, e - a);
        }
        if (++kw == k) {
            kw = 0;
            if (++kh == k) kh = 0, ci++;
        }
    }
}

void op_conv2d_packed(cs_ctx *c, float *y, const float *x, gemm_weights w_packed, const float *b,
                      const op_conv2d_shape *s) {
    CTX_PROFILE_OP(c, CS_OP_CONV);
    const int64_t ho = op_conv2d_out_h(s), wo = op_conv2d_out_w(s);
    CS_ASSERT(s->batch >= 0 && s->in_ch > 0 && s->out_ch > 0);
    if (c->measuring || s->batch == 0) return;
    const bool direct = s->kernel == 1 && s->stride == 1 && s->pad_top == 0 && s->pad_left == 0 &&
                        s->pad_bottom == 0 && s->pad_right == 0;
    const int64_t kdim = s->in_ch * s->kernel * s->kernel;
    conv_tile_src src = {.x = x, .s = s, .wo = wo, .direct = direct};
    const gemm_pack_fn pack =
        (direct || s->stride == 1) && ops_have_avx512() ? conv_pack_tile_s1_avx512 : conv_pack_tile;
    gemm_packed_a(c->pool, y, w_packed, b, s->batch, s->out_ch, kdim, ho * wo, pack, &src);
    c->flops += 2.0 * (double)s->batch * (double)s->out_ch * (double)(ho * wo) * (double)kdim;
}

/* ---- LoRA side paths (low-rank updates of one item) ---- */

void op_linear_lowrank(cs_ctx *c, float *y, const float *x, const float *down, const float *up,
                       float scale, int64_t rows, int64_t in, int64_t rank, int64_t out) {
    CTX_PROFILE_OP(c, CS_OP_LOWRANK);
    size_t mark = ctx_mark(c);
    float *t = ctx_alloc(c, rows * rank); // (rows, r)
    if (c->measuring || rows == 0 || in == 0) {
        ctx_release(c, mark);
        return;
    }
    CS_ASSERT(rows > 0 && rank > 0 && out > 0);
    // t(rows, r) = x(rows, in) · down(r, in)ᵀ;  y(rows, out) += scale · t · up(out, r)ᵀ
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_dim(rows), blas_dim(rank),
                blas_dim(in), 1.0f, x, blas_dim(in), down, blas_dim(in), 0.0f, t, blas_dim(rank));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_dim(rows), blas_dim(out),
                blas_dim(rank), scale, t, blas_dim(rank), up, blas_dim(rank), 1.0f, y,
                blas_dim(out));
    ctx_release(c, mark);
    c->flops += 2.0 * (double)rows * (double)rank * (double)(in + out);
}

void op_conv2d_lowrank(cs_ctx *c, float *y, const float *x, const float *down, const float *up,
                       float scale, const op_conv2d_shape *s, int64_t rank) {
    CTX_PROFILE_OP(c, CS_OP_LOWRANK);
    CS_ASSERT(s->batch == 1 && rank > 0);
    const int64_t hw = op_conv2d_out_h(s) * op_conv2d_out_w(s);
    size_t mark = ctx_mark(c);
    float *t = ctx_alloc(c, rank * hw); // (r, Ho·Wo)
    op_conv2d_shape ds = *s;
    ds.out_ch = rank;
    op_conv2d(c, t, x, down, NULL, &ds); /* while measuring: reserves its im2col scratch */
    if (!c->measuring) {
        // y(out, HWo) += scale · up(out, r) · t(r, HWo)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(s->out_ch), blas_dim(hw),
                    blas_dim(rank), scale, up, blas_dim(rank), t, blas_dim(hw), 1.0f, y,
                    blas_dim(hw));
        c->flops += 2.0 * (double)s->out_ch * (double)hw * (double)rank;
    }
    ctx_release(c, mark);
}
