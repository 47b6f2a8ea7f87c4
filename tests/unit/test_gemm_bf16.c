/* The bf16 GEMM path (gemm.h, GEMM_BF16X2): linear and conv products against the fp32
 * reference twins run on the bf16-rounded operands (odd shapes, odd k), the portable
 * kernel bit-equal to vdpbf16ps, the rounding equal to the AVX512_BF16 conversion, and
 * the bits independent of threads and batch companions. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gemm_shapes.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "gemm_kernels.h"
#include "half.h"
#include "ops.h"
#include "threadpool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static float rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static uint32_t rnd_bits(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 32);
}

static float *rand_buf(int64_t n, uint64_t *s) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd(s);
    return p;
}

/* p rounded to bf16 as the bf16 path rounds its operands. */
static float *rounded(const float *p, int64_t n) {
    float *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
    for (int64_t i = 0; i < n; i++) q[i] = cs_bf16_to_f32(cs_f32_to_bf16_ftz(p[i]));
    return q;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* w (rows × cols fp32) as GEMM_BF16X2 panels of `width`. */
static uint16_t *pack16(const float *w, int64_t rows, int64_t cols, int64_t width) {
    uint16_t *p = malloc((size_t)gemm_packed_count(GEMM_BF16X2, rows, cols) * 2 + 2);
    CHECK(gemm_pack_bf16x2(p, w, rows, cols, width));
    return p;
}

/* Rounding: ties to even, NaN quiet, subnormals to signed zero; the same bits as
 * vcvtneps2bf16 where the CPU has it. */
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bf16"))) static int hw_round_mismatches(uint64_t *s) {
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        float x[16];
        for (int i = 0; i < 16; i++) {
            uint32_t u = rnd_bits(s);
            if (it % 4 == 0) u &= 0x807fffffu; /* subnormals and zeros */
            memcpy(&x[i], &u, 4);
        }
        __m256bh r = _mm512_cvtneps_pbh(_mm512_loadu_ps(x));
        uint16_t o[16];
        memcpy(o, &r, sizeof o);
        for (int i = 0; i < 16; i++) bad += o[i] != cs_f32_to_bf16_ftz(x[i]);
    }
    return bad;
}
#endif

static void test_rounding(void) {
    CHECK_EQ_INT(cs_f32_to_bf16_ftz(1.0f), 0x3f80);
    CHECK_EQ_INT(cs_f32_to_bf16_ftz(cs_bits_f32(0x3f808000u)), 0x3f80); /* tie: even */
    CHECK_EQ_INT(cs_f32_to_bf16_ftz(cs_bits_f32(0x3f818000u)), 0x3f82); /* tie: even */
    CHECK_EQ_INT(cs_f32_to_bf16_ftz(cs_bits_f32(0x807fffffu)), 0x8000); /* subnormal */
    CHECK_EQ_INT(cs_f32_to_bf16_ftz(cs_bits_f32(0x00000001u)), 0x0000);
    CHECK_EQ_INT(cs_f32_to_bf16_ftz(cs_bits_f32(0x7f800001u)) & 0x7fc0, 0x7fc0); /* NaN */
#if defined(__x86_64__)
    if (gemm_bf16_hw()) {
        uint64_t s = 3;
        CHECK_EQ_INT(hw_round_mismatches(&s), 0);
    }
#endif
}

/* A float of any class, rounding's hard cases often: zero or subnormal, an exact tie,
 * NaN or infinity, a value that rounds up to infinity, or any bits. */
static float any_value(uint64_t *s) {
    uint32_t u = rnd_bits(s);
    switch (u % 8) {
    case 0:
        u &= 0x807fffffu;
        break; /* zero or subnormal */
    case 1:
        u = (u & 0xffff0000u) | 0x8000u;
        break; /* exact tie */
    case 2:
        u |= 0x7f800000u;
        break; /* NaN or infinity */
    case 3:
        u = (u & 0x80000000u) | 0x7f7f8000u | (u & 0x7fffu);
        break; /* to inf */
    default:
        break;
    }
    return cs_bits_f32(u);
}

/* gemm_bf16_pair_tile (vcvtneps2bf16 where the CPU has AVX512_BF16, else the AVX-512F
 * integer-lane rounding where it has AVX-512, and the scalar code under CFGSERVE_NO_AVX2) gives
 * gemm_bf16_pair's bits on every class of value (ties, NaN, infinities, subnormals, values that
 * round up to infinity), odd kc included. */
static void test_pair_tile(void) {
    uint64_t s = 17;
    enum { KC = 37 };
    float t[KC * GEMM_NR];
    gemm_pair got[(KC + 1) / 2 * GEMM_NR];
    int bad = 0;
    for (int it = 0; it < 400; it++) {
        for (int i = 0; i < KC * GEMM_NR; i++)
            t[i] = any_value(&s);
        const int64_t kc = it % 2 ? KC : KC - 1;
        if (it % 4 >= 2) setenv("CFGSERVE_NO_AVX2", "1", 1);
        gemm_bf16_pair_tile(got, t, kc);
        unsetenv("CFGSERVE_NO_AVX2");
        for (int64_t p = 0; 2 * p < kc; p++)
            for (int j = 0; j < GEMM_NR; j++) {
                const float hi = 2 * p + 1 < kc ? t[(2 * p + 1) * GEMM_NR + j] : 0.0f;
                bad += got[p * GEMM_NR + j] != gemm_bf16_pair(t[2 * p * GEMM_NR + j], hi);
            }
    }
    CHECK_EQ_INT(bad, 0);
}

/* The portable kernel, vdpbf16ps and the split kernel (fp32 FMAs under flush-to-zero)
 * give the same bits, also on values whose products and sums leave the normal range
 * (flush to zero, overflow). */
/* gemm_bf16_pack_rows (vcvtneps2bf16 and a register transpose where the CPU has
 * AVX512_BF16 and AVX-512, the scalar code elsewhere and under CFGSERVE_NO_AVX2) gives
 * gemm_bf16_pair's bits at every place of the panels: rows past m, odd k, pair columns
 * past k, a pair range starting inside the row, panels cut off inside 8 pairs. */
static void test_pack_rows(void) {
    static const int64_t shapes[][5] = {
        /* m, k, row0, p0, np */
        {13, 37, 0, 0, 19}, {13, 37, 8, 3, 16},  {24, 100, 8, 5, 45},
        {16, 36, 0, 0, 18}, {40, 67, 16, 8, 26}, {9, 16, 0, 0, 8},
    };
    uint64_t s = 29;
    int bad = 0;
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
        for (int portable = 0; portable < 2; portable++) {
            const int64_t m = shapes[c][0], k = shapes[c][1], row0 = shapes[c][2];
            const int64_t p0 = shapes[c][3], np = shapes[c][4], rows = 16;
            float *x = malloc((size_t)(m * k) * sizeof *x);
            gemm_pair *a = malloc((size_t)(rows * np) * sizeof *a);
            for (int64_t i = 0; i < m * k; i++)
                x[i] = any_value(&s);
            if (portable) setenv("CFGSERVE_NO_AVX2", "1", 1);
            gemm_bf16_pack_rows(a, x, m, k, row0, rows, p0, np);
            unsetenv("CFGSERVE_NO_AVX2");
            for (int64_t i = 0; i < rows; i += GEMM_MR)
                for (int64_t r = 0; r < GEMM_MR; r++)
                    for (int64_t p = p0; p < p0 + np; p++) {
                        const int64_t row = row0 + i + r, lo = 2 * p, hi = lo + 1;
                        const gemm_pair want =
                            row >= m ? 0
                                     : gemm_bf16_pair(lo < k ? x[row * k + lo] : 0.0f,
                                                      hi < k ? x[row * k + hi] : 0.0f);
                        bad += a[i * np + (p - p0) * GEMM_MR + r] != want;
                    }
            free(x), free(a);
        }
    CHECK_EQ_INT(bad, 0);
}

static void test_kernel_bits(void) {
    const bool hw = gemm_bf16_hw(), split = gemm_isa_supported(GEMM_ISA_AVX512),
               split2 = gemm_isa_supported(GEMM_ISA_AVX2);
    if (!hw && !split && !split2) {
        printf("no AVX2: portable kernel only\n");
        return;
    }
    uint64_t s = 11;
    enum { KP = 37 };
    gemm_pair a[KP * GEMM_MR], b[KP * GEMM_NR];
    float a2[2 * KP * GEMM_MR], c0[GEMM_MR * GEMM_NR], c1[GEMM_MR * GEMM_NR],
        c2[GEMM_MR * GEMM_NR], c3[GEMM_MR * GEMM_NR];
    int bad = 0, bad_split = 0, bad_split2 = 0;
    for (int it = 0; it < 200; it++) {
        const bool wide = it % 2; /* exponents over the whole range, else near 1 */
        for (int i = 0; i < KP * GEMM_MR + KP * GEMM_NR; i++) {
            float v[2];
            for (int h = 0; h < 2; h++) {
                const uint32_t u = rnd_bits(&s);
                const uint32_t e = wide ? (u >> 8) % 255 : 112 + (u >> 8) % 30;
                v[h] = cs_bits_f32((u & 0x80000000u) | e << 23 | (u & 0x7f0000u));
            }
            const gemm_pair p = gemm_bf16_pair(v[0], v[1]);
            if (i < KP * GEMM_MR) a[i] = p;
            else b[i - KP * GEMM_MR] = p;
        }
        for (int i = 0; i < GEMM_MR * GEMM_NR; i++)
            c0[i] = c1[i] = c2[i] = c3[i] =
                wide ? cs_bits_f32(rnd_bits(&s) & 0x80ffffffu) : rnd(&s);
        const bool acc = it % 3 != 0;
        gemm_kernel_bf16_portable(KP, a, b, c0, GEMM_NR, acc);
        if (hw) gemm_kernel_bf16_avx512(KP, a, b, c1, GEMM_NR, acc);
        gemm_bf16_split_panel(a2, a, KP);
        if (split) gemm_kernel_bf16_split_avx512(KP, a2, b, c2, GEMM_NR, acc);
        if (split2) gemm_kernel_bf16_split_avx2(KP, a2, b, c3, GEMM_NR, acc);
        for (int i = 0; i < GEMM_MR * GEMM_NR; i++) {
            const bool nan0 = isnan(c0[i]);
            bad += hw && cs_f32_bits(c0[i]) != cs_f32_bits(c1[i]) && !(nan0 && isnan(c1[i]));
            bad_split += split && cs_f32_bits(c0[i]) != cs_f32_bits(c2[i]) &&
                         !(nan0 && isnan(c2[i]));
            bad_split2 += split2 && cs_f32_bits(c0[i]) != cs_f32_bits(c3[i]) &&
                          !(nan0 && isnan(c3[i]));
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(bad_split, 0);
    CHECK_EQ_INT(bad_split2, 0);
}

/* Element (r, j) of a packed GEMM_BF16X2 matrix is where gemm_weights_index says. */
static void test_layout(void) {
    uint64_t s = 5;
    const int64_t rows = 53, cols = 11;
    float *w = rand_buf(rows * cols, &s);
    for (int width = GEMM_MR; width <= GEMM_NR; width += GEMM_NR - GEMM_MR) {
        uint16_t *p = pack16(w, rows, cols, width);
        const gemm_weights g = {p, GEMM_BF16X2};
        int bad = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++)
                bad += gemm_weights_get(g, gemm_weights_index(GEMM_BF16X2, rows, cols, width, r, j)) !=
                       cs_bf16_to_f32(cs_f32_to_bf16_ftz(w[r * cols + j]));
        CHECK_EQ_INT(bad, 0);
        free(p);
    }
    free(w);
}

/* Runs the product under each kernel the CPU has (the portable one; the AVX2 split
 * kernel; on AVX-512 vdpbf16ps where the CPU has it and the split kernels) and thread count
 * 1 / 2 and checks the bits against y0 (the portable kernel's, one thread). */
typedef struct kernel_choice {
    gemm_isa isa;
    gemm_bf16_mode mode;
} kernel_choice;
static const kernel_choice choices[] = {
    {GEMM_ISA_PORTABLE, GEMM_BF16_NATIVE}, {GEMM_ISA_AVX2, GEMM_BF16_SPLIT},
    {GEMM_ISA_AVX512, GEMM_BF16_NATIVE}, {GEMM_ISA_AVX512, GEMM_BF16_SPLIT}};

static bool choose(kernel_choice c) { return gemm_set_isa(c.isa) && gemm_set_bf16_mode(c.mode); }

static void test_linear(threadpool *pool2) {
    uint64_t s = 1;
    for (size_t t = 0; t < sizeof gemm_linear_shapes / sizeof gemm_linear_shapes[0]; t++) {
        const int64_t *mkn = gemm_linear_shapes[t], m = mkn[0], k = mkn[1], n = mkn[2];
        float *x = rand_buf(m * k, &s), *w = rand_buf(n * k, &s), *b = rand_buf(n, &s);
        float *xr = rounded(x, m * k), *wr = rounded(w, n * k);
        float *ref = malloc(sizeof(float) * m * n), *ref32 = malloc(sizeof(float) * m * n);
        float *y = malloc(sizeof(float) * m * n), *y0 = malloc(sizeof(float) * m * n),
              *one = malloc(sizeof(float) * n);
        op_linear_ref(ref, xr, wr, b, m, k, n);
        op_linear_ref(ref32, x, w, b, m, k, n);
        uint16_t *wp = pack16(w, n, k, GEMM_NR);
        const gemm_weights g = {wp, GEMM_BF16X2};
        gemm_set_isa(GEMM_ISA_PORTABLE);
        gemm_linear(NULL, y0, x, g, b, m, k, n);
        const double err = max_diff(y0, ref, m * n), err32 = max_diff(y0, ref32, m * n);
        printf("bf16 linear %lldx%lldx%lld: max abs error vs the reference on bf16 operands "
               "%.3g, vs fp32 operands %.3g\n", (long long)m, (long long)k, (long long)n, err,
               err32);
        CHECK(err < 1e-4 * sqrt((double)k));
        CHECK(err32 < 2e-2 * sqrt((double)k)); /* bf16: 8 significant bits */
        CHECK(k < 17 || err32 > 4 * err);      /* the operands really are rounded */
        for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
            if (!choose(choices[i])) continue;
            for (int threads = 1; threads <= 2; threads++) {
                memset(y, 0, sizeof(float) * m * n);
                gemm_linear(threads == 1 ? NULL : pool2, y, x, g, b, m, k, n);
                CHECK(memcmp(y, y0, sizeof(float) * m * n) == 0);
            }
            const int64_t r = m / 2; /* a row alone: the bits it has in the batch */
            gemm_linear(pool2, one, x + r * k, g, b, 1, k, n);
            CHECK(memcmp(one, y0 + r * n, sizeof(float) * n) == 0);
        }
        gemm_set_isa(GEMM_ISA_AUTO);
        gemm_set_bf16_mode(GEMM_BF16_AUTO);
        free(x), free(w), free(b), free(xr), free(wr), free(ref), free(ref32), free(y),
            free(y0), free(one), free(wp);
    }
}

static void test_conv(threadpool *pool2) {
    uint64_t s = 2;
    cs_ctx c1, c2;
    CHECK(ctx_init(&c1, 1 << 10) == CS_OK);
    CHECK(ctx_init(&c2, 1 << 10) == CS_OK);
    c2.pool = pool2;
    for (size_t t = 0; t < sizeof gemm_conv_shapes / sizeof gemm_conv_shapes[0]; t++) {
        const op_conv2d_shape *sh = &gemm_conv_shapes[t];
        const gemm_conv_sizes z = gemm_conv_sizes_of(sh);
        const int64_t kd = z.kd, nin = z.nin, nout = z.nout;
        float *x = rand_buf(sh->batch * nin, &s), *w = rand_buf(sh->out_ch * kd, &s),
              *b = rand_buf(sh->out_ch, &s);
        float *xr = rounded(x, sh->batch * nin), *wr = rounded(w, sh->out_ch * kd);
        float *ref = malloc(sizeof(float) * sh->batch * nout),
              *y = malloc(sizeof(float) * sh->batch * nout),
              *y0 = malloc(sizeof(float) * sh->batch * nout), *one = malloc(sizeof(float) * nout);
        op_conv2d_ref(ref, xr, wr, b, sh);
        uint16_t *wp = pack16(w, sh->out_ch, kd, GEMM_MR);
        const gemm_weights g = {wp, GEMM_BF16X2};
        gemm_set_isa(GEMM_ISA_PORTABLE);
        op_conv2d_packed(&c1, y0, x, g, b, sh);
        const double err = max_diff(y0, ref, sh->batch * nout);
        printf("bf16 conv %lld->%lld k%lld s%lld: max abs error vs the reference on bf16 "
               "operands %.3g\n", (long long)sh->in_ch, (long long)sh->out_ch,
               (long long)sh->kernel, (long long)sh->stride, err);
        CHECK(err < 1e-4 * sqrt((double)kd));
        for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
            if (!choose(choices[i])) continue;
            for (int threads = 1; threads <= 2; threads++) {
                memset(y, 0, sizeof(float) * sh->batch * nout);
                op_conv2d_packed(threads == 1 ? &c1 : &c2, y, x, g, b, sh);
                CHECK(memcmp(y, y0, sizeof(float) * sh->batch * nout) == 0);
            }
            op_conv2d_shape alone = *sh;
            alone.batch = 1;
            const int64_t bi = sh->batch - 1;
            op_conv2d_packed(&c2, one, x + bi * nin, g, b, &alone);
            CHECK(memcmp(one, y0 + bi * nout, sizeof(float) * nout) == 0);
        }
        gemm_set_isa(GEMM_ISA_AUTO);
        gemm_set_bf16_mode(GEMM_BF16_AUTO);
        free(x), free(w), free(b), free(xr), free(wr), free(ref), free(y), free(y0), free(one),
            free(wp);
    }
    c2.pool = NULL;
    ctx_deinit(&c1);
    ctx_deinit(&c2);
}

int main(void) {
    printf("bf16 GEMM kernel: %s\n", gemm_bf16_kernel_name());
    threadpool *pool2 = NULL;
    char msg[256];
    CHECK(threadpool_new(2, &pool2, msg, sizeof msg) == CS_OK);
    test_rounding();
    test_pair_tile();
    test_pack_rows();
    test_kernel_bits();
    test_layout();
    test_linear(pool2);
    test_conv(pool2);
    threadpool_free(pool2);
    CHECK_DONE();
}
