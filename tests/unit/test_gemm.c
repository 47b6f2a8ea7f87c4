/* Own GEMM (gemm.h): linear and conv products against the reference twins on odd shapes,
 * and bit-exact across ISAs, thread counts and batch companions (fixed reduction order). */
#include <stdlib.h>

#include "check.h"
#include "gemm_shapes.h"
#include "gemm.h"
#include "ops.h"
#include "threadpool.h"

static float rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static float *rand_buf(int64_t n, uint64_t *s) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd(s);
    return p;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static const gemm_isa isas[] = {GEMM_ISA_PORTABLE, GEMM_ISA_AVX2, GEMM_ISA_AVX512};

/* The packed layout is a permutation; gemm_panel_index names it. */
static void test_panels(void) {
    uint64_t s = 7;
    const int64_t rows = 53, cols = 11;
    float *w = rand_buf(rows * cols, &s), *p = malloc(sizeof(float) * rows * cols);
    memcpy(p, w, sizeof(float) * rows * cols);
    CHECK(gemm_pack_panels(p, rows, cols, GEMM_NR));
    int bad = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            bad += p[gemm_panel_index(rows, cols, GEMM_NR, r, j)] != w[r * cols + j];
    CHECK_EQ_INT(bad, 0);
    free(w);
    free(p);
}

static void test_linear(threadpool *pool2) {
    uint64_t s = 1;
    for (size_t t = 0; t < sizeof gemm_linear_shapes / sizeof gemm_linear_shapes[0]; t++) {
        const int64_t *mkn = gemm_linear_shapes[t], m = mkn[0], k = mkn[1], n = mkn[2];
        float *x = rand_buf(m * k, &s), *w = rand_buf(n * k, &s), *b = rand_buf(n, &s);
        float *ref = malloc(sizeof(float) * m * n), *y = malloc(sizeof(float) * m * n),
              *y0 = malloc(sizeof(float) * m * n), *one = malloc(sizeof(float) * n);
        op_linear_ref(ref, x, w, b, m, k, n);
        float *wp = malloc(sizeof(float) * n * k);
        memcpy(wp, w, sizeof(float) * n * k);
        CHECK(gemm_pack_panels(wp, n, k, GEMM_NR));
        gemm_set_isa(GEMM_ISA_PORTABLE);
        gemm_linear(NULL, y0, x, gemm_f32(wp), b, m, k, n);
        double err = max_diff(y0, ref, m * n);
        printf("linear %lldx%lldx%lld: max abs error vs reference %.3g\n", (long long)m,
               (long long)k, (long long)n, err);
        CHECK(err < 1e-4 * sqrt((double)k));
        for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
            if (!gemm_set_isa(isas[i])) continue;
            for (int threads = 1; threads <= 2; threads++) {
                memset(y, 0, sizeof(float) * m * n);
                gemm_linear(threads == 1 ? NULL : pool2, y, x, gemm_f32(wp), b, m, k, n);
                CHECK(memcmp(y, y0, sizeof(float) * m * n) == 0);
            }
            /* A row alone gives the bits it has in the batch. */
            const int64_t r = m / 2;
            gemm_linear(pool2, one, x + r * k, gemm_f32(wp), b, 1, k, n);
            CHECK(memcmp(one, y0 + r * n, sizeof(float) * n) == 0);
        }
        gemm_set_isa(GEMM_ISA_AUTO);
        free(x), free(w), free(b), free(ref), free(y), free(y0), free(one), free(wp);
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
        float *ref = malloc(sizeof(float) * sh->batch * nout), *y = malloc(sizeof(float) * sh->batch * nout),
              *y0 = malloc(sizeof(float) * sh->batch * nout), *one = malloc(sizeof(float) * nout);
        op_conv2d_ref(ref, x, w, b, sh);
        float *wp = malloc(sizeof(float) * sh->out_ch * kd);
        memcpy(wp, w, sizeof(float) * sh->out_ch * kd);
        CHECK(gemm_pack_panels(wp, sh->out_ch, kd, GEMM_MR));
        gemm_set_isa(GEMM_ISA_PORTABLE);
        op_conv2d_packed(&c1, y0, x, gemm_f32(wp), b, sh);
        double err = max_diff(y0, ref, sh->batch * nout);
        printf("conv %lld->%lld k%lld s%lld: max abs error vs reference %.3g\n",
               (long long)sh->in_ch, (long long)sh->out_ch, (long long)sh->kernel,
               (long long)sh->stride, err);
        CHECK(err < 1e-4 * sqrt((double)kd));
        for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
            if (!gemm_set_isa(isas[i])) continue;
            for (int threads = 1; threads <= 2; threads++) {
                memset(y, 0, sizeof(float) * sh->batch * nout);
                op_conv2d_packed(threads == 1 ? &c1 : &c2, y, x, gemm_f32(wp), b, sh);
                CHECK(memcmp(y, y0, sizeof(float) * sh->batch * nout) == 0);
            }
            op_conv2d_shape alone = *sh;
            alone.batch = 1;
            const int64_t bi = sh->batch - 1;
            op_conv2d_packed(&c2, one, x + bi * nin, gemm_f32(wp), b, &alone);
            CHECK(memcmp(one, y0 + bi * nout, sizeof(float) * nout) == 0);
        }
        gemm_set_isa(GEMM_ISA_AUTO);
        /* The generic tile packer (CPUs without AVX-512) gives the same tiles. */
        setenv("CFGSERVE_NO_AVX2", "1", 1);
        memset(y, 0, sizeof(float) * sh->batch * nout);
        op_conv2d_packed(&c2, y, x, gemm_f32(wp), b, sh);
        CHECK(memcmp(y, y0, sizeof(float) * sh->batch * nout) == 0);
        unsetenv("CFGSERVE_NO_AVX2");
        free(x), free(w), free(b), free(ref), free(y), free(y0), free(one), free(wp);
    }
    c2.pool = NULL;
    ctx_deinit(&c1);
    ctx_deinit(&c2);
}

/* A conv whose weights come from memory (33.8 MB: over gemm.c's PA_WIDE_WEIGHTS, so its
 * items take up to PA_TILES_WIDE tiles) on 11 tiles, as SD-1.5's 16 × 16 convs: the same
 * bits on one and two threads and for each image alone (6 tiles: another split), and
 * sampled outputs against the reference twin's (op_conv2d_ref_at; the whole reference
 * would take minutes). */
static void test_conv_streamed(threadpool *pool2) {
    const op_conv2d_shape sh = {.batch = 2, .in_ch = 912, .height = 6, .width = 44,
                                .out_ch = 1029, .kernel = 3, .stride = 1, .pad_top = 1,
                                .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
    const gemm_conv_sizes z = gemm_conv_sizes_of(&sh);
    uint64_t s = 5;
    cs_ctx c1, c2;
    CHECK(ctx_init(&c1, 1 << 10) == CS_OK);
    CHECK(ctx_init(&c2, 1 << 10) == CS_OK);
    c2.pool = pool2;
    float *x = rand_buf(sh.batch * z.nin, &s), *w = rand_buf(sh.out_ch * z.kd, &s),
          *b = rand_buf(sh.out_ch, &s);
    float *y = malloc(sizeof(float) * sh.batch * z.nout),
          *y1 = malloc(sizeof(float) * sh.batch * z.nout), *one = malloc(sizeof(float) * z.nout);
    float *wp = malloc(sizeof(float) * sh.out_ch * z.kd);
    memcpy(wp, w, sizeof(float) * sh.out_ch * z.kd);
    CHECK(gemm_pack_panels(wp, sh.out_ch, z.kd, GEMM_MR));
    op_conv2d_packed(&c2, y, x, gemm_f32(wp), b, &sh);
    op_conv2d_packed(&c1, y1, x, gemm_f32(wp), b, &sh);
    CHECK(memcmp(y, y1, sizeof(float) * sh.batch * z.nout) == 0);
    op_conv2d_shape alone = sh;
    alone.batch = 1;
    for (int64_t bi = 0; bi < sh.batch; bi++) {
        op_conv2d_packed(&c2, one, x + bi * z.nin, gemm_f32(wp), b, &alone);
        CHECK(memcmp(one, y + bi * z.nout, sizeof(float) * z.nout) == 0);
    }
    double err = 0;
    const int64_t hw = sh.height * sh.width;
    for (int i = 0; i < 300; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const int64_t e = (int64_t)((s >> 33) % (uint64_t)(sh.batch * z.nout));
        const int64_t bi = e / z.nout, co = e % z.nout / hw, oh = e % hw / sh.width,
                      ow = e % sh.width;
        const double acc = op_conv2d_ref_at(x, w, b, &sh, bi, co, oh, ow);
        const double d = fabs(acc - y[e]);
        if (d > err) err = d;
    }
    printf("conv %lld->%lld k3 (weights from memory): max abs error of 300 outputs %.3g\n",
           (long long)sh.in_ch, (long long)sh.out_ch, err);
    CHECK(err < 1e-4 * sqrt((double)z.kd));
    free(x), free(w), free(b), free(y), free(y1), free(one), free(wp);
    c2.pool = NULL;
    ctx_deinit(&c1);
    ctx_deinit(&c2);
}

int main(void) {
    printf("gemm: active kernels %s\n", gemm_isa_name(gemm_active_isa()));
    CHECK(!gemm_isa_supported(GEMM_ISA_AVX512) || gemm_active_isa() == GEMM_ISA_AVX512);
    threadpool *pool2 = NULL;
    char msg[256];
    CHECK(threadpool_new(2, &pool2, msg, sizeof msg) == CS_OK);
    test_panels();
    test_linear(pool2);
    test_conv(pool2);
    test_conv_streamed(pool2);
    threadpool_free(pool2);
    return check_failures ? 1 : 0;
}
