/*
 * Matrix kernels of ops.h: linear, conv2d (im2col + sgemm, or straight sgemm for 1×1) and
 * multi-head attention (sgemm + softmax + sgemm). All products go through OpenBLAS
 * cblas_sgemm, which threads internally; everything else here is single-threaded.
 *
 * Scratch (im2col columns, attention scores) comes from the ctx arena and is released
 * before returning. While c->measuring these kernels still *reserve* that scratch (and
 * release it at once) so the measuring pass sees the true peak, but they touch no data
 * and count no FLOPs. Scratch is bounded by chunking (output rows for conv, query rows for
 * attention), so a 512×512 VAE decode does not need gigabytes of im2col columns.
 *
 * Thread safety: only the given buffers and ctx are touched; a ctx has one thread.
 */
#include "ops.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Most floats of scratch one chunk may use: 16 MB of im2col columns or attention scores.
 * Large enough that each sgemm still has hundreds of columns (measured: no slower than
 * unchunked), small enough that kernel scratch adds little to the arena's peak (SD's VAE
 * decoder at 512×512 would otherwise need 2.4 GB of columns for one conv). */
enum { OPS_CHUNK_FLOATS = 4 << 20 };

/* cblas takes int dimensions in the Debian (LP64) build. */
static int blas_dim(int64_t v) {
    CS_ASSERT(v >= 0 && v <= INT_MAX);
    return (int)v;
}

/* Rows [0, rows) of y(rows, cols) all set to b(cols): the bias that sgemm then adds onto
 * with beta = 1, which saves a separate pass over y. */
static void fill_rows(float *y, const float *b, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(y + r * cols, b, (size_t)cols * sizeof(float));
}

void op_linear(cs_ctx *c, float *y, const float *x, const float *w, const float *b,
               int64_t batch, int64_t rows, int64_t in, int64_t out) {
    if (c->measuring || batch == 0 || rows == 0 || out == 0) return;
    CS_ASSERT(batch > 0 && rows > 0 && in >= 0 && out > 0);
    if (b)
        fill_rows(y, b, batch * rows, out);
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
 * weight layout (Cout, Cin, k, k), so the conv is w(Cout, Cin·k·k) · col. */
static void im2col_rows(float *col, const float *x, const op_conv2d_shape *s, int64_t wo,
                        int64_t oh0, int64_t oh1) {
    const int64_t k = s->kernel, st = s->stride, h = s->height, w = s->width;
    const int64_t n = (oh1 - oh0) * wo;
    for (int64_t ci = 0; ci < s->in_ch; ci++) {
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

void op_conv2d(cs_ctx *c, float *y, const float *x, const float *w, const float *b,
               const op_conv2d_shape *s) {
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

    for (int64_t bi = 0; bi < s->batch; bi++) {
        const float *xb = x + bi * s->in_ch * hw_in; // (Cin, H, W)
        float *yb = y + bi * s->out_ch * hw_out;     // (Cout, Ho, Wo)
        if (b) {
            for (int64_t co = 0; co < s->out_ch; co++)
                for (int64_t i = 0; i < hw_out; i++)
                    yb[co * hw_out + i] = b[co];
        }
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
            im2col_rows(col, xb, s, wo, oh0, oh1);
            // yb[:, oh0·Wo : oh1·Wo] (Cout, n) = w(Cout, Cin·k·k) · col(Cin·k·k, n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(s->out_ch), blas_dim(n),
                        blas_dim(kdim), 1.0f, w, blas_dim(kdim), col, blas_dim(n), beta,
                        yb + oh0 * wo, blas_dim(hw_out));
        }
    }
    ctx_release(c, mark);
    c->flops += 2.0 * (double)s->batch * (double)s->out_ch * (double)hw_out * (double)kdim;
}

/* ---- attention ---- */

/* exp(x) for softmax arguments (x <= 0 after max subtraction): Cody-Waite reduction
 * x = n·ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r, times 2^n built in
 * the exponent bits. Within 1 ulp of the rounded exact value on [-87.3, 0] (8.3e-8
 * relative, measured over 16M points); below ln(FLT_MIN) it returns 0 instead of a
 * subnormal; NaN stays NaN. libm's expf is scalar and was half the attention time; this
 * form runs 4 lanes at once with SSE2 and the scalar twin below does the row tails with
 * the same operations, so a value does not depend on its position in the row. */
#define EXP_LO -87.33654f /* ln(FLT_MIN) */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_ROUND 12582912.0f /* 1.5·2^23: adding it rounds to an integer */
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
static const float exp_poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                  4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

static inline float exp_nonpos(float x) {
    if (!(x >= EXP_LO)) return x < EXP_LO ? 0.0f : x;        // underflow, or NaN stays NaN
    const float n = (x * EXP_LOG2E + EXP_ROUND) - EXP_ROUND; // in [-126, 0]
    const float r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    float p = exp_poly[0];
    for (int i = 1; i < 6; i++)
        p = p * r + exp_poly[i];
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

#ifdef __SSE2__
static inline __m128 exp_nonpos4(__m128 x) {
    const __m128 lo = _mm_set1_ps(EXP_LO), round = _mm_set1_ps(EXP_ROUND);
    const __m128 xc = _mm_max_ps(lo, x); // maxps returns its 2nd operand for NaN
    const __m128 n = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(xc, _mm_set1_ps(EXP_LOG2E)), round), round);
    __m128 r = _mm_sub_ps(xc, _mm_mul_ps(n, _mm_set1_ps(EXP_LN2_HI)));
    r = _mm_sub_ps(r, _mm_mul_ps(n, _mm_set1_ps(EXP_LN2_LO)));
    __m128 p = _mm_set1_ps(exp_poly[0]);
    for (int i = 1; i < 6; i++)
        p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(exp_poly[i]));
    p = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_mul_ps(p, r), r), r), _mm_set1_ps(1.0f));
    const __m128i bits = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23);
    const __m128 y = _mm_mul_ps(p, _mm_castsi128_ps(bits));
    return _mm_andnot_ps(_mm_cmplt_ps(x, lo), y); // 0 where x < EXP_LO
}
#endif

/* In place softmax of the first n (>= 1) entries of p(len); entries [n, len) become 0
 * (the causally masked keys). Max-subtracted so exp never overflows; sum in double. */
static void softmax_row(float *p, int64_t n, int64_t len) {
    int64_t j = 0;
    float mx = p[0];
    double sum = 0.0;
#ifdef __SSE2__
    __m128 vmx = _mm_set1_ps(mx);
    for (; j + 4 <= n; j += 4)
        vmx = _mm_max_ps(vmx, _mm_loadu_ps(p + j));
    float lanes[4];
    _mm_storeu_ps(lanes, vmx);
    for (int l = 0; l < 4; l++)
        mx = lanes[l] > mx ? lanes[l] : mx;
#endif
    for (; j < n; j++)
        mx = p[j] > mx ? p[j] : mx;

    j = 0;
#ifdef __SSE2__
    vmx = _mm_set1_ps(mx);
    __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    for (; j + 4 <= n; j += 4) {
        const __m128 e = exp_nonpos4(_mm_sub_ps(_mm_loadu_ps(p + j), vmx));
        _mm_storeu_ps(p + j, e);
        s0 = _mm_add_pd(s0, _mm_cvtps_pd(e));
        s1 = _mm_add_pd(s1, _mm_cvtps_pd(_mm_movehl_ps(e, e)));
    }
    double part[2];
    _mm_storeu_pd(part, _mm_add_pd(s0, s1));
    sum = part[0] + part[1];
#endif
    for (; j < n; j++) {
        p[j] = exp_nonpos(p[j] - mx);
        sum += p[j];
    }
    const float inv = (float)(1.0 / sum);
    for (j = 0; j < n; j++)
        p[j] *= inv;
    for (j = n; j < len; j++)
        p[j] = 0.0f;
}

void op_attention(cs_ctx *c, float *out, const float *q, const float *k, const float *v,
                  const op_attn_shape *s) {
    const int64_t lq = s->q_len, lk = s->kv_len, hd = s->head_dim;
    CS_ASSERT(s->batch >= 0 && s->heads > 0 && lq >= 0 && lk > 0 && hd > 0);
    CS_ASSERT(s->q_stride >= s->heads * hd && s->kv_stride >= s->heads * hd &&
              s->out_stride >= s->heads * hd);
    int64_t chunk = OPS_CHUNK_FLOATS / lk;
    if (chunk < 1) chunk = 1;
    if (chunk > lq) chunk = lq;
    size_t mark = ctx_mark(c);
    float *scores = ctx_alloc(c, chunk * lk); // (chunk, Lk)
    if (c->measuring || s->batch == 0 || lq == 0) {
        ctx_release(c, mark);
        return;
    }

    for (int64_t bi = 0; bi < s->batch; bi++) {
        for (int64_t h = 0; h < s->heads; h++) {
            const float *kb = k + bi * lk * s->kv_stride + h * hd; // (Lk, hd), row stride kv
            const float *vb = v + bi * lk * s->kv_stride + h * hd; // (Lk, hd)
            for (int64_t i0 = 0; i0 < lq; i0 += chunk) {
                int64_t rows = i0 + chunk < lq ? chunk : lq - i0;
                const float *qb = q + (bi * lq + i0) * s->q_stride + h * hd; // (rows, hd)
                float *ob = out + (bi * lq + i0) * s->out_stride + h * hd;   // (rows, hd)
                // scores(rows, Lk) = scale · qb · kbᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_dim(rows), blas_dim(lk),
                            blas_dim(hd), s->scale, qb, blas_dim(s->q_stride), kb,
                            blas_dim(s->kv_stride), 0.0f, scores, blas_dim(lk));
                for (int64_t r = 0; r < rows; r++) {
                    int64_t visible = lk;
                    if (s->causal && i0 + r + 1 < lk) visible = i0 + r + 1;
                    softmax_row(scores + r * lk, visible, lk);
                }
                // ob(rows, hd) = scores(rows, Lk) · vb(Lk, hd)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(rows), blas_dim(hd),
                            blas_dim(lk), 1.0f, scores, blas_dim(lk), vb, blas_dim(s->kv_stride),
                            0.0f, ob, blas_dim(s->out_stride));
            }
        }
    }
    ctx_release(c, mark);
    c->flops += 4.0 * (double)s->batch * (double)s->heads * (double)lq * (double)lk * (double)hd;
}
