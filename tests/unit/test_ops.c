/*
 * Unit tests of the kernels in ops.h: each fast matrix / norm kernel against its plain
 * reference twin on odd shapes (non-square, odd channels, stride 2, asymmetric padding,
 * batch > 1, strided causal and non-causal attention, chunked scratch), element-wise
 * kernels against hand-computed values, the timestep embedding against diffusers' own
 * output in the golden data, and the ctx contract: every kernel does nothing while
 * measuring, the measuring pass reserves exactly the scratch the real pass uses, and that
 * scratch is released. The vector activations must not depend on an element's position
 * (row tails), and everything runs a second time on the SSE2 / libm code that CPUs
 * without AVX2 use (CFGSERVE_NO_AVX2). Results with thread pools: test_threadpool.c.
 */
#include "half.h"
#include "gemm_kernels.h"
#include "ops.h"
#include "ops_simd.h"
#include "safetensors.h"

#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(void) { // uniform in [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 40) / (double)(1ull << 23) - 1.0);
}

static float *rand_buf(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    CHECK(p != NULL);
    for (int64_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

static float *fill_buf(int64_t n, float v) {
    float *p = rand_buf(n);
    for (int64_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

/* max |a - b| / max(|b|, 1e-30): the error relative to the reference's scale. */
static double rel_err(const float *a, const float *b, int64_t n) {
    double diff = 0.0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return NAN; /* fails every tolerance, wherever it is */
        if (d > diff) diff = d;
        if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    }
    return diff / scale;
}

/* Runs fn twice like a forward pass does: measuring, then for real in an arena of
 * exactly the measured peak (ctx_alloc asserts if the plan was short). Checks that the
 * measuring pass did no work and that scratch is released. Returns the real pass's FLOPs. */
typedef void (*kernel_fn)(cs_ctx *c, void *args);

static double run_planned(kernel_fn fn, void *args, size_t *peak_out) {
    cs_ctx m;
    ctx_init_measure(&m);
    fn(&m, args);
    CHECK_EQ_INT(m.used, 0);
    CHECK(m.flops == 0.0);
    cs_ctx c;
    CHECK(ctx_init(&c, m.peak) == CS_OK);
    fn(&c, args);
    CHECK_EQ_INT(c.used, 0);
    CHECK_EQ_INT(c.peak, m.peak);
    double flops = c.flops;
    ctx_deinit(&c);
    if (peak_out) *peak_out = m.peak;
    return flops;
}

/* ---- linear ---- */

typedef struct linear_args {
    float *y;
    const float *x, *w, *b;
    int64_t rows, in, out;
} linear_args;

static void linear_call(cs_ctx *c, void *p) {
    linear_args *a = p;
    op_linear(c, a->y, a->x, a->w, a->b, 1, a->rows, a->in, a->out);
}

static void test_linear(int64_t rows, int64_t in, int64_t out, bool bias) {
    float *x = rand_buf(rows * in), *w = rand_buf(out * in), *b = bias ? rand_buf(out) : NULL;
    float *y = fill_buf(rows * out, NAN), *ref = rand_buf(rows * out);
    linear_args a = {y, x, w, b, rows, in, out};
    size_t peak;
    double flops = run_planned(linear_call, &a, &peak);
    op_linear_ref(ref, x, w, b, rows, in, out);
    CHECK(rel_err(y, ref, rows * out) < 1e-5);
    CHECK(flops == 2.0 * (double)(rows * in * out));
    CHECK_EQ_INT(peak, 0);
    free(x), free(w), free(b), free(y), free(ref);
}

/* ---- conv2d ---- */

typedef struct conv_args {
    float *y;
    const float *x, *w, *b;
    op_conv2d_shape s;
} conv_args;

static void conv_call(cs_ctx *c, void *p) {
    conv_args *a = p;
    op_conv2d(c, a->y, a->x, a->w, a->b, &a->s);
}

static void test_conv(op_conv2d_shape s, bool bias) {
    const int64_t ho = op_conv2d_out_h(&s), wo = op_conv2d_out_w(&s);
    const int64_t kdim = s.in_ch * s.kernel * s.kernel, ny = s.batch * s.out_ch * ho * wo;
    float *x = rand_buf(s.batch * s.in_ch * s.height * s.width);
    float *w = rand_buf(s.out_ch * kdim), *b = bias ? rand_buf(s.out_ch) : NULL;
    float *y = fill_buf(ny, NAN), *ref = rand_buf(ny);
    conv_args a = {y, x, w, b, s};
    size_t peak;
    double flops = run_planned(conv_call, &a, &peak);
    op_conv2d_ref(ref, x, w, b, &s);
    double err = rel_err(y, ref, ny);
    if (!(err < 1e-5))
        fprintf(stderr, "conv B%lld Cin%lld %lldx%lld Cout%lld k%lld s%lld: rel err %g\n",
                (long long)s.batch, (long long)s.in_ch, (long long)s.height, (long long)s.width,
                (long long)s.out_ch, (long long)s.kernel, (long long)s.stride, err);
    CHECK(err < 1e-5);
    CHECK(flops == 2.0 * (double)(s.batch * s.out_ch * ho * wo * kdim));
    const bool direct = s.kernel == 1 && s.stride == 1 && !s.pad_top && !s.pad_left &&
                        !s.pad_bottom && !s.pad_right;
    if (direct)
        CHECK_EQ_INT(peak, 0);
    else
        CHECK(peak >= (size_t)(kdim * wo) * sizeof(float)); // at least one output row
    CHECK(peak <= (size_t)(kdim * ho * wo) * sizeof(float) + 64);
    free(x), free(w), free(b), free(y), free(ref);
}

static op_conv2d_shape conv_shape(int64_t batch, int64_t cin, int64_t h, int64_t w, int64_t cout,
                                  int64_t k, int64_t stride, int64_t pt, int64_t pl, int64_t pb,
                                  int64_t pr) {
    return (op_conv2d_shape){batch, cin, h, w, cout, k, stride, pt, pl, pb, pr};
}

static void test_convs(void) {
    test_conv(conv_shape(2, 3, 7, 9, 5, 3, 1, 1, 1, 1, 1), true);   // resnet-like, odd sizes
    test_conv(conv_shape(1, 5, 8, 11, 7, 3, 2, 1, 1, 1, 1), true);  // UNet downsample
    test_conv(conv_shape(2, 5, 8, 11, 7, 3, 2, 0, 0, 1, 1), false); // VAE downsample pad
    test_conv(conv_shape(1, 4, 10, 7, 3, 3, 2, 2, 0, 1, 3), true);  // asymmetric padding
    test_conv(conv_shape(3, 7, 5, 6, 4, 1, 1, 0, 0, 0, 0), true);   // 1×1: straight sgemm
    test_conv(conv_shape(2, 7, 5, 6, 4, 1, 1, 0, 0, 0, 0), false);  // 1×1 without bias
    test_conv(conv_shape(2, 6, 9, 7, 5, 1, 2, 0, 0, 0, 0), true);   // 1×1 stride 2: im2col
    test_conv(conv_shape(1, 3, 13, 12, 2, 5, 3, 2, 2, 2, 2), true); // k5 stride 3
    test_conv(conv_shape(1, 2, 3, 4, 3, 3, 1, 0, 0, 0, 0), true);   // output 1×2
    test_conv(conv_shape(1, 2, 5, 1, 3, 3, 1, 1, 1, 1, 1), true);   // width 1: edge taps pad
    test_conv(conv_shape(2, 3, 4, 3, 2, 3, 2, 3, 3, 2, 4), true);   // pad > kernel: empty rows
    // Columns (81, 200·261) exceed one 16 MB scratch chunk: chunked im2col, ldc = Ho·Wo.
    test_conv(conv_shape(2, 9, 200, 261, 5, 3, 1, 1, 1, 1, 1), true);
}

/* ---- attention ---- */

typedef struct attn_args {
    float *out;
    const float *q, *k, *v;
    op_attn_shape s;
} attn_args;

static void attn_call(cs_ctx *c, void *p) {
    attn_args *a = p;
    op_attention(c, a->out, a->q, a->k, a->v, &a->s);
}

/* q lives in its own buffer (row stride q_stride) unless fused; k and v share one
 * buffer (k at column 0, v at column heads·hd) with row stride kv_stride. When fused
 * (self-attention, q_len == kv_len), q, k, v are one (B, L, 3·inner) buffer as a fused
 * qkv projection would make it. Padding columns of out must stay untouched. */
/* x rounded to bf16 as the bf16 products round their operands (half.h). */
static float *bf16_rounded(const float *x, int64_t n) {
    float *r = malloc((size_t)(n > 0 ? n : 1) * sizeof *r);
    for (int64_t i = 0; i < n; i++) r[i] = cs_bf16_to_f32(cs_f32_to_bf16_ftz(x[i]));
    return r;
}

/* bf16: the reference runs on the bf16-rounded q, k, v, so what is left is P's rounding
 * (2^-9 relative per weight, averaging out over the keys: at most 1.8e-4 relative seen
 * over these shapes, so a packing slip shows above 1e-3) and the order of the sums; the
 * result must also differ from the fp32 kernel's (the bf16 kernels really ran). */
static void test_attention_prec(int64_t batch, int64_t heads, int64_t lq, int64_t lk,
                                int64_t hd, bool causal, bool fused, float scale, bool bf16) {
    const int64_t inner = heads * hd;
    op_attn_shape s = {.batch = batch,
                       .heads = heads,
                       .q_len = lq,
                       .kv_len = lk,
                       .head_dim = hd,
                       .scale = scale,
                       .causal = causal,
                       .bf16 = bf16};
    float *qbuf, *kvbuf;
    const float *q, *k, *v;
    if (fused) {
        CS_ASSERT(lq == lk);
        s.q_stride = s.kv_stride = 3 * inner + 1;
        qbuf = rand_buf(batch * lq * s.q_stride), kvbuf = NULL;
        q = qbuf, k = qbuf + inner, v = qbuf + 2 * inner;
    } else {
        s.q_stride = inner + 3, s.kv_stride = 2 * inner + 1;
        qbuf = rand_buf(batch * lq * s.q_stride), kvbuf = rand_buf(batch * lk * s.kv_stride);
        q = qbuf, k = kvbuf, v = kvbuf + inner;
    }
    s.out_stride = inner + 2;
    const int64_t nout = batch * lq * s.out_stride;
    float *out = fill_buf(nout, 7.0f), *ref = fill_buf(nout, 7.0f);
    attn_args a = {out, q, k, v, s};
    size_t peak;
    double flops = run_planned(attn_call, &a, &peak);
    const int64_t nq = batch * lq * s.q_stride, nkv = fused ? 0 : batch * lk * s.kv_stride;
    float *q16 = bf16 ? bf16_rounded(qbuf, nq) : NULL, *kv16 = bf16 ? bf16_rounded(kvbuf, nkv) : NULL;
    if (bf16) {
        const float *k16 = fused ? q16 + inner : kv16, *v16 = fused ? q16 + 2 * inner : kv16 + inner;
        op_attention_ref(ref, q16, k16, v16, &s);
    } else {
        op_attention_ref(ref, q, k, v, &s);
    }
    const double err = rel_err(out, ref, nout), tol = bf16 ? 1e-3 : 1e-5; // padding columns: both 7
    if (!(err < tol))
        fprintf(stderr, "attention B%lld H%lld Lq%lld Lk%lld hd%lld causal %d bf16 %d: rel err %g\n",
                (long long)batch, (long long)heads, (long long)lq, (long long)lk, (long long)hd,
                causal, bf16, err);
    CHECK(err < tol);
    if (bf16) {
        float *out32 = fill_buf(nout, 7.0f);
        attn_args a32 = a;
        a32.out = out32, a32.s.bf16 = false;
        run_planned(attn_call, &a32, NULL);
        CHECK(memcmp(out, out32, (size_t)nout * sizeof *out) != 0);
        free(out32);
    }
    for (int64_t r = 0; r < batch * lq; r++)
        CHECK(out[r * s.out_stride + inner] == 7.0f && out[r * s.out_stride + inner + 1] == 7.0f);
    CHECK(flops == 4.0 * (double)(batch * heads * lq * lk * hd));
    /* No score matrix: the arena holds the key and value panels only (4-byte units: fp32,
     * or bf16 pairs), each of the two allocations 64-byte aligned. */
    const int64_t hdp = (hd + 7) / 8 * 8, lk8 = (lk + 7) / 8 * 8;
    const int64_t units = batch * heads * lk8 * (bf16 ? (hd + 1) / 2 + hdp / 2 : hd + hdp);
    CHECK(peak >= (size_t)units * 4 && peak <= (size_t)units * 4 + 128);
    free(qbuf), free(kvbuf), free(out), free(ref), free(q16), free(kv16);
}

static void test_attention(int64_t batch, int64_t heads, int64_t lq, int64_t lk, int64_t hd,
                           bool causal, bool fused, float scale) {
    test_attention_prec(batch, heads, lq, lk, hd, causal, fused, scale, false);
    test_attention_prec(batch, heads, lq, lk, hd, causal, fused, scale, true);
}

/* bf16 attention bits: the same with a pool of 2 threads as without, and a batch item's
 * rows the same alone as next to another item. */
static void test_attention_bf16_bits(void) {
    const int64_t heads = 2, lq = 300, hd = 40, inner = heads * hd, stride = 3 * inner;
    float *x = rand_buf(2 * lq * stride);
    float *o1 = fill_buf(2 * lq * inner, 0), *o2 = fill_buf(2 * lq * inner, 0);
    float *solo = fill_buf(lq * inner, 0);
    op_attn_shape s = {.batch = 2, .heads = heads, .q_len = lq, .kv_len = lq, .head_dim = hd,
                       .q_stride = stride, .kv_stride = stride, .out_stride = inner,
                       .scale = 0.158f, .causal = false, .bf16 = true};
    attn_args a = {o1, x, x + inner, x + 2 * inner, s};
    run_planned(attn_call, &a, NULL);
    cs_ctx c;
    CHECK(ctx_init(&c, 1 << 20) == CS_OK);
    CHECK(ctx_start_pool(&c, 2, NULL, 0) == CS_OK);
    op_attention(&c, o2, x, x + inner, x + 2 * inner, &s);
    CHECK(memcmp(o1, o2, (size_t)(2 * lq * inner) * sizeof *o1) == 0);
    s.batch = 1;
    const float *x1 = x + lq * stride;
    op_attention(&c, solo, x1, x1 + inner, x1 + 2 * inner, &s);
    CHECK(memcmp(solo, o1 + lq * inner, (size_t)(lq * inner) * sizeof *o1) == 0);
    /* vdpbf16ps (or the portable kernel) and the split fp32-FMA kernels: the same bits */
    if (gemm_set_bf16_mode(GEMM_BF16_SPLIT)) {
        s.batch = 2;
        float *split = fill_buf(2 * lq * inner, 0);
        op_attention(&c, split, x, x + inner, x + 2 * inner, &s);
        CHECK(gemm_set_bf16_mode(GEMM_BF16_NATIVE));
        op_attention(&c, o2, x, x + inner, x + 2 * inner, &s);
        CHECK(memcmp(split, o2, (size_t)(2 * lq * inner) * sizeof *o1) == 0);
        CHECK(memcmp(split, o1, (size_t)(2 * lq * inner) * sizeof *o1) == 0);
        gemm_set_bf16_mode(GEMM_BF16_AUTO);
        free(split);
    }
    ctx_deinit(&c);
    free(x), free(o1), free(o2), free(solo);
}

static void test_attentions(void) {
    test_attention(2, 3, 5, 7, 4, false, false, 0.5f);    // cross-attention, Lq < Lk
    test_attention(2, 2, 9, 9, 8, true, true, 0.35355f);  // causal self, fused qkv
    test_attention(1, 2, 11, 11, 5, false, true, 0.447f); // non-causal self, fused
    test_attention(2, 1, 6, 4, 3, true, false, 0.577f);   // causal, Lq > Lk
    test_attention(1, 3, 3, 8, 2, true, false, 0.707f);   // causal, Lq < Lk
    test_attention(2, 2, 4, 77, 8, false, false, 40.0f);  // huge logits: stable softmax
    // Many key blocks: the online softmax rescales earlier blocks' sums.
    test_attention(1, 1, 37, 120000, 4, false, false, 0.5f);
    test_attention(1, 2, 37, 120000, 4, true, false, 0.5f);
    // Several query blocks (128 rows each) with the causal mask in global row numbers, a
    // ragged last block, heads wider than one 48-column panel (VAE: 512), one key.
    test_attention(2, 3, 300, 300, 40, true, true, 0.158f);
    test_attention(1, 2, 257, 77, 64, false, false, 0.125f);
    test_attention(1, 1, 130, 130, 512, false, true, 0.0442f);
    test_attention(2, 2, 5, 1, 8, false, false, 0.35f);
    test_attention_bf16_bits();
}

/* ---- normalisation ---- */

static void test_group_norm(int64_t batch, int64_t ch, int64_t hw, int64_t groups, bool affine,
                            float offset, float spread) {
    const int64_t n = batch * ch * hw;
    float *x = rand_buf(n);
    for (int64_t i = 0; i < n; i++)
        x[i] = offset + spread * x[i];
    float *g = affine ? rand_buf(ch) : NULL, *b = affine ? rand_buf(ch) : NULL;
    float *y = fill_buf(n, NAN), *ref = rand_buf(n);
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    op_group_norm(&c, y, x, g, b, batch, ch, hw, groups, 1e-5f);
    op_group_norm_ref(ref, x, g, b, batch, ch, hw, groups, 1e-5f);
    CHECK(rel_err(y, ref, n) < 2e-6);
    ctx_deinit(&c);
    free(x), free(g), free(b), free(y), free(ref);
}

static void test_layer_norm(int64_t rows, int64_t dim, bool gamma, bool beta, float offset) {
    const int64_t n = rows * dim;
    float *x = rand_buf(n);
    for (int64_t i = 0; i < n; i++)
        x[i] += offset;
    float *g = gamma ? rand_buf(dim) : NULL, *b = beta ? rand_buf(dim) : NULL;
    float *y = fill_buf(n, NAN), *ref = rand_buf(n);
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    op_layer_norm(&c, y, x, g, b, rows, dim, 1e-5f);
    op_layer_norm_ref(ref, x, g, b, rows, dim, 1e-5f);
    CHECK(rel_err(y, ref, n) < 2e-6);
    ctx_deinit(&c);
    free(x), free(g), free(b), free(y), free(ref);
}

static void test_norms(void) {
    test_group_norm(2, 6, 35, 3, true, 0.0f, 1.0f);
    test_group_norm(3, 5, 7, 5, false, 0.5f, 2.0f); // one channel per group, no affine
    test_group_norm(2, 64, 17, 32, true, 0.0f, 1.0f);
    test_group_norm(1, 4, 33, 2, true, 1000.0f, 0.01f); // mean 1e5 × the spread
    test_layer_norm(5, 77, true, true, 0.0f);
    test_layer_norm(3, 33, false, false, 300.0f);
    test_layer_norm(2, 9, true, false, 0.0f);
    test_layer_norm(2, 9, false, true, 0.0f);

    // Constant row: variance 0, output is beta; with eps only, no NaN.
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    float x[3] = {2, 2, 2}, g[3] = {1, 2, 3}, b[3] = {0.5f, -1, 4}, y[3];
    op_layer_norm(&c, y, x, g, b, 1, 3, 1e-5f);
    for (int j = 0; j < 3; j++)
        CHECK_NEAR(y[j], b[j], 0);
    // Hand-computed group norm: one group {1, 3}: mean 2, var 1, y = ±1/sqrt(1 + eps).
    float gx[2] = {1, 3}, gy[2];
    op_group_norm(&c, gy, gx, NULL, NULL, 1, 2, 1, 1, 0.0f);
    CHECK_NEAR(gy[0], -1.0, 1e-7);
    CHECK_NEAR(gy[1], 1.0, 1e-7);
    ctx_deinit(&c);
}

/* ---- element-wise, layout and embeddings: hand-computed values ---- */

static void test_activations(void) {
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    // Expected values from Python's math (double), rounded once to float here.
    static const double xs[] = {1, -1, 3, -3, 0.5, -20, 20, 0};
    static const double silu[] = {
        0.7310585786300049, -0.2689414213699951,    2.8577223804672998, -0.14227761953270035,
        0.3112296656009273, -4.122307236380407e-08, 19.999999958776925, 0};
    static const double gelu[] = {0.8413447460685429,
                                  -0.15865525393145707,
                                  2.99595030590511,
                                  -0.00404969409489031,
                                  0.34573123063700656,
                                  0,
                                  20,
                                  0};
    static const double qgelu[] = {
        0.8457957659328212,  -0.1542042340671787,     2.981928690292214,  -0.01807130970778597,
        0.35038843660638014, -3.2934102413993747e-14, 19.999999999999968, 0};
    enum { N = 8 };
    float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)xs[i];
    op_silu(&c, y, x, N);
    for (int i = 0; i < N; i++)
        CHECK_NEAR(y[i], silu[i], 3e-7 * fabs(silu[i]) + 1e-30);
    op_gelu(&c, y, x, N);
    // The float argument x/√2 carries a relative rounding of 6e-8 that erfc's slope
    // magnifies in the negative tail (×10 at x = -3); the absolute error stays < 1e-9.
    for (int i = 0; i < N; i++)
        CHECK_NEAR(y[i], gelu[i], 1e-6 * fabs(gelu[i]) + 1e-30);
    op_quick_gelu(&c, y, x, N);
    // 1.702 is rounded to float as in PyTorch (relative 2e-8), hence the looser bound.
    for (int i = 0; i < N; i++)
        CHECK_NEAR(y[i], qgelu[i], 1e-6 * fabs(qgelu[i]) + 1e-30);
    op_silu(&c, x, x, N); // in place
    for (int i = 0; i < N; i++)
        CHECK_NEAR(x[i], silu[i], 3e-7 * fabs(silu[i]) + 1e-30);

    // A dense sweep against double-precision formulas: a few ulp, looser in gelu's
    // negative tail (see above), plus a tiny absolute term for values near 0.
    enum { M = 4001 };
    float *sx = malloc(M * sizeof(float)), *sy = malloc(M * sizeof(float));
    for (int i = 0; i < M; i++)
        sx[i] = -10.0f + 20.0f * (float)i / (M - 1);
    op_gelu(&c, sy, sx, M);
    int bad = 0;
    for (int i = 0; i < M; i++) {
        double e = 0.5 * sx[i] * erfc(-sx[i] / sqrt(2.0));
        if (fabs(sy[i] - e) > 2e-6 * fabs(e) + 1e-12) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    bad = 0;
    op_silu(&c, sy, sx, M);
    for (int i = 0; i < M; i++) {
        double e = sx[i] / (1.0 + exp(-(double)sx[i]));
        if (fabs(sy[i] - e) > 5e-7 * fabs(e) + 1e-12) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    free(sx), free(sy);

    // GEGLU, in place: rows (h0, h1, g0, g1) -> (h0·gelu(g0), h1·gelu(g1)).
    float gg[8] = {2, -1, 1, -3, 0.5f, 4, 3, 0};
    op_geglu(&c, gg, gg, 2, 2);
    CHECK_NEAR(gg[0], 2 * gelu[0], 1e-6);
    CHECK_NEAR(gg[1], -1 * gelu[3], 1e-6);
    CHECK_NEAR(gg[2], 0.5 * gelu[2], 1e-6);
    CHECK_NEAR(gg[3], 0.0, 0);
    ctx_deinit(&c);
}

static void test_arith(void) {
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    float a[5] = {1, -2, 3.5f, NAN, -7}, b[5] = {0.5f, 0.25f, -1, 1, 2}, y[5];
    op_scale(&c, y, a, -2.0f, 5);
    CHECK(y[0] == -2 && y[1] == 4 && y[2] == -7 && isnan(y[3]) && y[4] == 14);
    op_clamp(&c, y, a, -1.5f, 3.0f, 5);
    CHECK(y[0] == 1 && y[1] == -1.5f && y[2] == 3 && isnan(y[3]) && y[4] == -1.5f);
    op_add(&c, y, a, b, 5);
    CHECK(y[0] == 1.5f && y[1] == -1.75f && y[2] == 2.5f && isnan(y[3]) && y[4] == -5);
    op_add(&c, b, a, b, 5); // y == b
    CHECK(b[0] == 1.5f && b[4] == -5);
    op_copy(&c, y, a, 5);
    CHECK(y[0] == 1 && y[2] == 3.5f && y[4] == -7);
    op_copy(&c, y, y, 5); // in place is a no-op
    CHECK(y[1] == -2);

    // (B=2, C=2, HW=3) += v(B, C); then AdaGN y·(1 + scale) + shift.
    float t[12], v[4] = {1, 2, 3, 4}, ss[8] = {0.5f, -1, 10, 20, 1, 2, -3, -4};
    for (int i = 0; i < 12; i++)
        t[i] = (float)i;
    op_add_channel_bias(&c, t, v, 2, 2, 3);
    CHECK(t[0] == 1 && t[2] == 3 && t[3] == 5 && t[6] == 9 && t[11] == 15);
    op_scale_shift(&c, t, ss, 2, 2, 3);
    CHECK(t[0] == 1 * 1.5f + 10);  // b0 c0: scale 0.5, shift 10
    CHECK(t[4] == 20);             // b0 c1: scale -1 zeroes, shift 20
    CHECK(t[6] == 9 * 2.0f - 3);   // b1 c0: scale 1, shift -3
    CHECK(t[11] == 15 * 3.0f - 4); // b1 c1: scale 2, shift -4
    ctx_deinit(&c);
}

static void test_layout(void) {
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    // (B=2, C=70, HW=75) -> (B, HW, C) -> back: neither size a multiple of the 32 × 32
    // tile nor of the 8 × 8 register block; the vector and the scalar code (no AVX2).
    enum { B = 2, C = 70, HW = 75 };
    float *x = rand_buf(B * C * HW), *t = rand_buf(B * C * HW), *back = rand_buf(B * C * HW);
    for (int scalar = 0; scalar <= 1; scalar++) {
        if (scalar) setenv("CFGSERVE_NO_AVX2", "1", 1);
        memset(t, 0, sizeof(float) * B * C * HW);
        op_nchw_to_nlc(&c, t, x, B, C, HW);
        int wrong = 0;
        for (int b = 0; b < B; b++)
            for (int ch = 0; ch < C; ch++)
                for (int p = 0; p < HW; p++)
                    wrong += t[(b * HW + p) * C + ch] != x[(b * C + ch) * HW + p];
        CHECK(wrong == 0);
        memset(back, 0, sizeof(float) * B * C * HW);
        op_nlc_to_nchw(&c, back, t, B, C, HW);
        CHECK(memcmp(back, x, sizeof(float) * B * C * HW) == 0);
        unsetenv("CFGSERVE_NO_AVX2");
    }
    free(x), free(t), free(back);

    // cat((2, 1, 2), (2, 2, 2)) along channels.
    float a[4] = {1, 2, 3, 4}, b[8] = {5, 6, 7, 8, 9, 10, 11, 12}, y[12];
    op_concat_channels(&c, y, a, 1, b, 2, 2, 2);
    static const float cat[12] = {1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12};
    CHECK(memcmp(y, cat, sizeof cat) == 0);

    // (1, 2, 2, 3) -> (1, 2, 4, 6).
    float u[12], up[48];
    for (int i = 0; i < 12; i++)
        u[i] = (float)i;
    op_upsample_nearest2x(&c, up, u, 1, 2, 2, 3);
    for (int ch = 0; ch < 2; ch++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                CHECK(up[(ch * 4 + i) * 6 + j] == u[(ch * 2 + i / 2) * 3 + j / 2]);

    float table[6] = {0, 1, 10, 11, 20, 21}, e[6];
    int64_t ids[3] = {2, 0, 2};
    op_embedding(&c, e, table, ids, 3, 2);
    CHECK(e[0] == 20 && e[1] == 21 && e[2] == 0 && e[3] == 1 && e[4] == 20 && e[5] == 21);
    ctx_deinit(&c);
}

static void test_timestep_embedding(void) {
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    // dim 5 (odd), shift 1: half 2, freqs exp(0) = 1 and exp(-ln 1e4 / 1) = 1e-4.
    float t[2] = {0.0f, 1.5f}, y[10];
    op_timestep_embedding(&c, y, t, 2, 5, false, 1.0f);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 1 && y[3] == 1 && y[4] == 0);
    CHECK_NEAR(y[5], sin(1.5), 1e-7);
    CHECK_NEAR(y[6], sin(1.5e-4), 1e-9);
    CHECK_NEAR(y[7], cos(1.5), 1e-7);
    CHECK_NEAR(y[8], cos(1.5e-4), 1e-7);
    CHECK(y[9] == 0);
    op_timestep_embedding(&c, y, t, 2, 5, true, 1.0f); // flipped: [cos | sin]
    CHECK_NEAR(y[5], cos(1.5), 1e-7);
    CHECK_NEAR(y[7], sin(1.5), 1e-7);
    CHECK(y[9] == 0);

    // diffusers' own time_proj output (flip_sin_to_cos, freq_shift 0) from the golden case.
    const char *dir = CS_GOLDEN_DIR "/unet_tiny";
    char path[1024], msg[256];
    st_file *in = NULL, *dbg = NULL;
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    if (st_open(path, &in, msg, sizeof msg) != CS_OK) {
        printf("golden time_proj check skipped: %s\n", msg);
        ctx_deinit(&c);
        return;
    }
    snprintf(path, sizeof path, "%s/debug.safetensors", dir);
    CHECK(st_open(path, &dbg, msg, sizeof msg) == CS_OK);
    const st_tensor *ts = st_find(in, "timestep"), *tp = dbg ? st_find(dbg, "time_proj") : NULL;
    CHECK(ts && tp && tp->ndim == 2 && tp->shape[0] == ts->numel);
    if (ts && tp && tp->ndim == 2 && tp->shape[0] == ts->numel && ts->numel <= 8) {
        int64_t ti[8];
        float tf[8], *want = malloc((size_t)tp->numel * sizeof(float));
        float *got = malloc((size_t)tp->numel * sizeof(float));
        CHECK(st_read_i64(in, ts, ti, msg, sizeof msg) == CS_OK);
        CHECK(st_read_f32(dbg, tp, want, msg, sizeof msg) == CS_OK);
        for (int64_t i = 0; i < ts->numel; i++)
            tf[i] = (float)ti[i];
        op_timestep_embedding(&c, got, tf, ts->numel, tp->shape[1], true, 0.0f);
        double diff = 0;
        for (int64_t i = 0; i < tp->numel; i++)
            diff = fmax(diff, fabs((double)got[i] - (double)want[i]));
        printf("time_proj vs diffusers (t = %lld, dim %lld): max abs diff %.3g\n", (long long)ti[0],
               (long long)tp->shape[1], diff);
        // Rounding the float pipeline exactly gives 9.5e-7 here: PyTorch's own float exp
        // is off by 1 ulp for one frequency, which t = 801 magnifies. A wrong table or
        // order is off by 1e-2 or more.
        CHECK(diff <= 1e-5);
        free(want), free(got);
    }
    st_close(in);
    st_close(dbg);
    ctx_deinit(&c);
}

/* An element's activation must not depend on where it sits (vector body or padded tail):
 * the same values at every offset 0..8 of a buffer give the same bits. */
static void test_activation_positions(void) {
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    enum { N = 45 };
    float *x = rand_buf(N + 8), *g = rand_buf(N + 8), *ref = rand_buf(N), *y = rand_buf(N + 8);
    for (int i = 0; i < N + 8; i++)
        x[i] *= 6.0f, g[i] *= 6.0f;
    typedef void (*act_fn)(cs_ctx *, float *, const float *, int64_t);
    static const act_fn acts[] = {op_silu, op_gelu, op_quick_gelu};
    int bad = 0;
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        acts[a](&c, ref, x + 8, N);
        for (int k = 0; k <= 8; k++) {
            acts[a](&c, y, x + 8 - k, N + k); // x[8] lands at position k
            bad += memcmp(y + k, ref, N * sizeof(float)) != 0;
        }
    }
    // GEGLU rows (h | g) of odd width: row r's values at offsets that differ per row.
    float *hg = rand_buf(2 * (N + 8)), *out = rand_buf(N + 8);
    for (int k = 0; k <= 8; k++) {
        for (int i = 0; i < N; i++) {
            hg[k + i] = x[8 + i];
            hg[(N + k) + k + i] = g[8 + i];
        }
        op_geglu(&c, out, hg, 1, N + k); // row (h[0..N+k) | g[0..N+k))
        if (k == 0) memcpy(ref, out, N * sizeof(float));
        bad += memcmp(out + k, ref, N * sizeof(float)) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    free(x), free(g), free(ref), free(y), free(hg), free(out);
    ctx_deinit(&c);
}

/* GEGLU (the UNet's feed-forward, its own vector loop) against double formulas. */
static void test_geglu_sweep(void) {
    cs_ctx c;
    CHECK(ctx_init(&c, 0) == CS_OK);
    enum { M = 4003 };
    float *x = malloc(2 * M * sizeof(float)), *y = malloc(M * sizeof(float));
    for (int i = 0; i < M; i++) {
        x[i] = 1.0f + 0.5f * (float)(i % 7);            // value half
        x[M + i] = -10.0f + 20.0f * (float)i / (M - 1); // gate half
    }
    op_geglu(&c, y, x, 1, M);
    int bad = 0;
    for (int i = 0; i < M; i++) {
        double gt = x[M + i], e = x[i] * (0.5 * gt * erfc(-gt / sqrt(2.0)));
        if (fabs(y[i] - e) > 2e-6 * fabs(e) + 1e-12) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    free(x), free(y);
    ctx_deinit(&c);
}

/* ---- measuring: no kernel touches memory, scratch is reserved and released ---- */

/* The 16-lane exp gives the AVX2 exp's bits on every argument it meets: a sweep of
 * [-100, 1] in steps far finer than an ulp near 0, the cutoff, zeros, NaN and -inf. The
 * AVX-512 softmax of the attention relies on it. */
OPS_TARGET_AVX512 static void test_exp_twins(void) {
    if (!ops_have_avx512()) {
        printf("exp twins: no AVX-512 here, skipped\n");
        return;
    }
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x);
    CHECK(x != NULL);
    for (int i = 0; i < N - 6; i++) x[i] = -100.0f + 101.0f * (float)i / (float)(N - 7);
    x[N - 6] = OPS_EXP_LO, x[N - 5] = nextafterf(OPS_EXP_LO, 0.0f), x[N - 4] = -0.0f;
    x[N - 3] = 0.0f, x[N - 2] = NAN, x[N - 1] = -INFINITY;
    int64_t bad = 0;
    for (int i = 0; i < N; i += 16) {
        float a[16], b[16];
        _mm512_storeu_ps(a, ops_exp_nonpos16(_mm512_loadu_ps(x + i)));
        _mm256_storeu_ps(b, ops_exp_nonpos8(_mm256_loadu_ps(x + i)));
        _mm256_storeu_ps(b + 8, ops_exp_nonpos8(_mm256_loadu_ps(x + i + 8)));
        for (int l = 0; l < 16; l++) bad += memcmp(a + l, b + l, sizeof(float)) != 0;
    }
    printf("exp twins: %d arguments, %lld differ in bits\n", N, (long long)bad);
    CHECK(bad == 0);
    free(x);
}

static void test_measuring(void) {
    enum { N = 4096 };
    float *buf = fill_buf(N, 3.0f), *out = fill_buf(N, 5.0f);
    int64_t ids[4] = {0, 1, 2, 3};
    cs_ctx m;
    ctx_init_measure(&m);
    op_linear(&m, out, buf, buf, buf, 1, 8, 8, 8);
    op_conv2d_shape cs = {1, 4, 8, 8, 4, 3, 1, 1, 1, 1, 1};
    op_conv2d(&m, out, buf, buf, buf, &cs);
    CHECK(m.peak >= 4 * 9 * 64 * sizeof(float)); // the im2col columns are planned
    op_attn_shape as = {1, 2, 8, 8, 4, 8, 8, 8, 0.5f, true, false};
    op_attention(&m, out, buf, buf, buf, &as);
    op_group_norm(&m, out, buf, buf, buf, 2, 4, 8, 2, 1e-5f);
    op_layer_norm(&m, out, buf, buf, buf, 4, 8, 1e-5f);
    op_silu(&m, out, buf, N);
    op_gelu(&m, out, buf, N);
    op_quick_gelu(&m, out, buf, N);
    op_scale(&m, out, buf, 2.0f, N);
    op_clamp(&m, out, buf, 0, 1, N);
    op_copy(&m, out, buf, N);
    op_add(&m, out, buf, buf, N);
    op_add_channel_bias(&m, out, buf, 2, 4, 8);
    op_scale_shift(&m, out, buf, 2, 4, 8);
    op_geglu(&m, out, buf, 4, 8);
    op_nchw_to_nlc(&m, out, buf, 2, 4, 8);
    op_nlc_to_nchw(&m, out, buf, 2, 4, 8);
    op_concat_channels(&m, out, buf, 2, buf, 2, 2, 8);
    op_upsample_nearest2x(&m, out, buf, 1, 2, 4, 4);
    op_embedding(&m, out, buf, ids, 4, 8);
    op_timestep_embedding(&m, out, buf, 2, 8, true, 0.0f);
    int touched = 0;
    for (int i = 0; i < N; i++)
        touched += out[i] != 5.0f || buf[i] != 3.0f;
    CHECK_EQ_INT(touched, 0);
    CHECK_EQ_INT(m.used, 0);
    CHECK(m.flops == 0.0);
    free(buf), free(out);
}

int main(void) {
    test_linear(7, 13, 5, true);
    test_linear(1, 1, 1, false);
    test_linear(33, 65, 31, true);
    test_linear(4, 0, 3, true); // empty inner dim: y = bias
    test_convs();
    test_attentions();
    test_norms();
    test_activations();
    test_activation_positions();
    test_geglu_sweep();
    test_arith();
    test_layout();
    test_timestep_embedding();
    test_measuring();
    test_exp_twins();
    // Again on the code CPUs without AVX2 + FMA run (SSE2 softmax, libm activations).
    setenv("CFGSERVE_NO_AVX2", "1", 1);
    test_attentions();
    test_activations();
    test_activation_positions();
    test_geglu_sweep();
    unsetenv("CFGSERVE_NO_AVX2");
    CHECK_DONE();
}
