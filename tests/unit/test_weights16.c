/* 16-bit resident weights: half.h conversions, the GEMM drivers on F16 / BF16 packed
 * weights (bit-identical to the same weights widened to fp32), and whole components
 * loaded from a 16-bit file kept 16-bit versus widened at load. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgserve/cfgserve.h"
#include "check.h"
#include "ctx.h"
#include "gemm.h"
#include "half.h"
#include "lora.h"
#include "lora_modules.h"
#include "ops.h"
#include "text_encoder.h"
#include "threadpool.h"
#include "unet.h"

static char g_dir[256];

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f; // [-1, 1)
}

/* ---- conversions ---- */

static void test_half(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        const float f = cs_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            bad += !isnan(cs_bf16_to_f32(cs_f32_to_bf16(f))) || !isnan(cs_f16_to_f32(cs_f32_to_f16(f)));
            continue;
        }
        bad += cs_f32_to_f16(f) != h; /* every half round-trips */
        const float b = cs_bf16_to_f32((uint16_t)h);
        if (!isnan(b)) bad += cs_f32_to_bf16(b) != h;
    }
    CHECK_EQ_INT(bad, 0);
    /* the drivers' widening (F16C where present) gives the same bits for every value */
    static uint16_t all[0x10000];
    static float wide[0x10000];
    for (uint32_t h = 0; h < 0x10000; h++) all[h] = (uint16_t)h;
    gemm_widen(wide, all, 0x10000, GEMM_F16);
    bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) bad += cs_f32_bits(wide[h]) != cs_f32_bits(cs_f16_to_f32(all[h]));
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(cs_f32_bits(cs_f16_to_f32(0x7c01)), 0x7fc02000); /* signalling: quieted */
    /* ties to even, overflow, subnormals, signed zero */
    CHECK_EQ_INT(cs_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);      /* tie, even below */
    CHECK_EQ_INT(cs_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);  /* tie, even above */
    CHECK_EQ_INT(cs_f32_to_f16(1.0f + ldexpf(1.5f, -11)), 0x3c01);      /* past the tie */
    CHECK_EQ_INT(cs_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(cs_f32_to_f16(65519.0f), 0x7bff);
    CHECK_EQ_INT(cs_f32_to_f16(65520.0f), 0x7c00);
    CHECK_EQ_INT(cs_f32_to_f16(-1e30f), 0xfc00);
    CHECK_EQ_INT(cs_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);             /* tie to 0 */
    CHECK_EQ_INT(cs_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    CHECK_EQ_INT(cs_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);             /* tie to even */
    CHECK_EQ_INT(cs_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);          /* up to the normals */
    CHECK_EQ_INT(cs_f32_to_f16(-0.0f), 0x8000);
    CHECK_EQ_INT(cs_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);      /* tie, even below */
    CHECK_EQ_INT(cs_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    CHECK_EQ_INT(cs_f32_to_bf16(3.4e38f), 0x7f80);                      /* rounds to inf */
}

/* ---- GEMM drivers ---- */

/* w (rows × cols, row-major) rounded to d: the 16-bit copy h, and w itself set to the
 * widened values, both then packed in panels of width. */
static void make_pair(float *w, uint16_t *h, int64_t rows, int64_t cols, int64_t width,
                      gemm_dtype d) {
    for (int64_t i = 0; i < rows * cols; i++) {
        h[i] = d == GEMM_F16 ? cs_f32_to_f16(w[i]) : cs_f32_to_bf16(w[i]);
        w[i] = d == GEMM_F16 ? cs_f16_to_f32(h[i]) : cs_bf16_to_f32(h[i]);
    }
    CHECK(gemm_pack_panels(w, rows, cols, width));
    CHECK(gemm_pack_panels_n(h, 2, rows, cols, width));
}

static float *rand_buf(int64_t n, uint64_t *s) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = frand(s);
    return p;
}

static void test_gemm16(threadpool *pool) {
    /* odd sizes: a narrow last panel (n % 48, out_ch % 8), k past one k-block */
    static const int64_t lin[][3] = {{1, 7, 5}, {13, 300, 100}, {77, 257, 49}, {130, 64, 96}};
    static const op_conv2d_shape conv[] = {
        {.batch = 2, .in_ch = 5, .height = 9, .width = 11, .out_ch = 13, .kernel = 3,
         .stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
        {.batch = 1, .in_ch = 40, .height = 6, .width = 7, .out_ch = 20, .kernel = 3,
         .stride = 2, .pad_top = 0, .pad_left = 0, .pad_bottom = 1, .pad_right = 1},
        {.batch = 1, .in_ch = 300, .height = 5, .width = 5, .out_ch = 4, .kernel = 1,
         .stride = 1},
    };
    static const gemm_dtype dts[] = {GEMM_F16, GEMM_BF16};
    static const gemm_isa isas[] = {GEMM_ISA_PORTABLE, GEMM_ISA_AVX2, GEMM_ISA_AVX512};
    uint64_t s = 7;
    for (size_t di = 0; di < 2; di++) {
        const gemm_dtype d = dts[di];
        for (size_t t = 0; t < sizeof lin / sizeof lin[0]; t++) {
            const int64_t m = lin[t][0], k = lin[t][1], n = lin[t][2];
            float *x = rand_buf(m * k, &s), *w = rand_buf(n * k, &s), *b = rand_buf(n, &s);
            uint16_t *h = malloc(sizeof *h * (size_t)(n * k));
            float *y32 = malloc(sizeof(float) * (size_t)(m * n)),
                  *y16 = malloc(sizeof(float) * (size_t)(m * n));
            make_pair(w, h, n, k, GEMM_NR, d);
            for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
                if (!gemm_set_isa(isas[i])) continue;
                gemm_linear(NULL, y32, x, gemm_f32(w), b, m, k, n);
                gemm_linear(pool, y16, x, (gemm_weights){h, d}, b, m, k, n);
                CHECK(memcmp(y32, y16, sizeof(float) * (size_t)(m * n)) == 0);
            }
            gemm_set_isa(GEMM_ISA_AUTO);
            free(x), free(w), free(b), free(h), free(y32), free(y16);
        }
        cs_ctx c;
        CHECK(ctx_init(&c, 1 << 10) == CS_OK);
        for (size_t t = 0; t < sizeof conv / sizeof conv[0]; t++) {
            const op_conv2d_shape *sh = &conv[t];
            const int64_t kd = sh->in_ch * sh->kernel * sh->kernel;
            const int64_t nout = sh->batch * sh->out_ch * op_conv2d_out_h(sh) * op_conv2d_out_w(sh);
            float *x = rand_buf(sh->batch * sh->in_ch * sh->height * sh->width, &s),
                  *w = rand_buf(sh->out_ch * kd, &s), *b = rand_buf(sh->out_ch, &s);
            uint16_t *h = malloc(sizeof *h * (size_t)(sh->out_ch * kd));
            float *y32 = malloc(sizeof(float) * (size_t)nout), *y16 = malloc(sizeof(float) * (size_t)nout);
            make_pair(w, h, sh->out_ch, kd, GEMM_MR, d);
            c.pool = NULL;
            op_conv2d_packed(&c, y32, x, gemm_f32(w), b, sh);
            c.pool = pool;
            op_conv2d_packed(&c, y16, x, (gemm_weights){h, d}, b, sh);
            CHECK(memcmp(y32, y16, sizeof(float) * (size_t)nout) == 0);
            free(x), free(w), free(b), free(h), free(y32), free(y16);
        }
        c.pool = NULL;
        ctx_deinit(&c);
    }
}

/* ---- LoRA fusing into 16-bit weights: the fp32 sum, rounded once to the weight's dtype */

static void test_fuse16(void) {
    lora_module_table t = {.prefix = "lora_te_"};
    uint16_t h[3 * 5];
    float w[3 * 5];
    uint64_t s = 3;
    for (int i = 0; i < 15; i++) h[i] = cs_f32_to_f16(w[i] = frand(&s));
    for (int i = 0; i < 15; i++) w[i] = cs_f16_to_f32(h[i]);
    CHECK(gemm_pack_panels(w, 3, 5, GEMM_NR) && gemm_pack_panels_n(h, 2, 3, 5, GEMM_NR));
    gemm_weights g16 = {h, GEMM_F16}, g32 = gemm_f32(w);
    const lora_module_table *const tables16[LORA_COMPONENTS] = {NULL, &t};
    CHECK(lora_module_add(&t, "text_model.encoder.layers.0.mlp.fc1", false, 5, 3, 1, &g16) == 1);
    float down[2 * 5], up[3 * 2];
    for (int i = 0; i < 10; i++) down[i] = frand(&s);
    for (int i = 0; i < 6; i++) up[i] = frand(&s);
    lora_delta d = {.rank = 2, .alpha_over_r = 0.5, .down = down, .up = up};
    lora_delta *slots[1] = {&d};
    lora_file f = {.slots = {0, 1}, .patched = {0, 1}};
    f.deltas[LORA_TE] = slots;
    lora_fuse(&f, tables16, 0.75);
    t.items[0].w = &g32;
    lora_fuse(&f, tables16, 0.75);
    int bad = 0;
    for (int i = 0; i < 15; i++) bad += h[i] != cs_f32_to_f16(w[i]);
    CHECK_EQ_INT(bad, 0);
    lora_module_table_free(&t);
}

/* ---- whole components from a 16-bit file ---- */

static bool copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[4096];
    size_t n;
    bool ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out) fclose(out);
    return ok;
}

static void unet_pair(st_dtype dtype) {
    char src[512], dir[512], path[600], msg[1024] = "";
    snprintf(src, sizeof src, "%s/models/default/unet/config.json", CS_SOURCE_DIR);
    snprintf(dir, sizeof dir, "%s/unet_%s", g_dir, st_dtype_name(dtype));
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(copy_file(src, path));
    unet_config cfg;
    CHECK_EQ_INT(unet_config_load(path, &cfg, msg, sizeof msg), CS_OK);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    CHECK_EQ_INT(unet_write_random(&cfg, 5, dtype, path, msg, sizeof msg), CS_OK);
    unet_model *m16 = NULL, *m32 = NULL;
    CHECK_EQ_INT(unet_load(dir, false, &m16, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(unet_load(dir, true, &m32, msg, sizeof msg), CS_OK);
    if (!m16 || !m32) {
        fprintf(stderr, "%s\n", msg);
        return;
    }
    /* the GEMM operands are most of the weights: about half the block */
    const int64_t n16 = unet_weights(m16)->numel, n32 = unet_weights(m32)->numel;
    printf("UNet %s: %lld vs %lld fp32 words\n", st_dtype_name(dtype), (long long)n16,
           (long long)n32);
    CHECK(n16 < n32 * 6 / 10);
    const int64_t B = 2, h = 16, w = 16, L = 7, C = cfg.in_channels;
    uint64_t s = 11;
    float *x = rand_buf(B * C * h * w, &s), *ctxt = rand_buf(B * L * cfg.cross_dim, &s);
    float ts[2] = {999.0f, 3.5f};
    unet_input in = {.sample = x, .batch = B, .height = h, .width = w, .timesteps = ts,
                     .context = ctxt, .context_len = L};
    const int64_t nout = B * cfg.out_channels * h * w;
    float *y[2] = {malloc(sizeof(float) * (size_t)nout), malloc(sizeof(float) * (size_t)nout)};
    const unet_model *ms[2] = {m16, m32};
    for (int i = 0; i < 2; i++) {
        cs_ctx c;
        CHECK_EQ_INT(ctx_init(&c, unet_activation_bytes(ms[i], B, h, w, L, 1)), CS_OK);
        unet_forward(&c, ms[i], &in, y[i]);
        ctx_deinit(&c);
    }
    CHECK(memcmp(y[0], y[1], sizeof(float) * (size_t)nout) == 0);
    free(x), free(ctxt), free(y[0]), free(y[1]);
    unet_free(m16);
    unet_free(m32);
}

static void te_pair(st_dtype dtype) {
    char src[512], dir[512], path[600], msg[1024] = "";
    snprintf(src, sizeof src, "%s/models/default/text_encoder/config.json", CS_SOURCE_DIR);
    snprintf(dir, sizeof dir, "%s/te_%s", g_dir, st_dtype_name(dtype));
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(copy_file(src, path));
    te_config cfg;
    CHECK_EQ_INT(text_encoder_read_config(path, &cfg, msg, sizeof msg), CS_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_EQ_INT(text_encoder_write_random(&cfg, 9, dtype, path, msg, sizeof msg), CS_OK);
    text_encoder *m16 = NULL, *m32 = NULL;
    CHECK_EQ_INT(text_encoder_load(dir, false, &m16, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(text_encoder_load(dir, true, &m32, msg, sizeof msg), CS_OK);
    if (!m16 || !m32) {
        fprintf(stderr, "%s\n", msg);
        return;
    }
    CHECK(text_encoder_weights(m16)->numel < text_encoder_weights(m32)->numel);
    const int64_t B = 2, L = 9, d = cfg.hidden_size;
    int64_t ids[18];
    for (int i = 0; i < 18; i++) ids[i] = (i * 37 + 5) % cfg.vocab_size;
    float *y[2], *pooled[2];
    const text_encoder *ms[2] = {m16, m32};
    for (int i = 0; i < 2; i++) {
        y[i] = malloc(sizeof(float) * (size_t)(B * L * d));
        pooled[i] = malloc(sizeof(float) * (size_t)(B * d));
        cs_ctx c;
        CHECK_EQ_INT(ctx_init(&c, text_encoder_activation_bytes(ms[i], B, L)), CS_OK);
        text_encoder_forward(&c, ms[i], ids, B, L, 0, y[i], pooled[i]);
        ctx_deinit(&c);
    }
    CHECK(memcmp(y[0], y[1], sizeof(float) * (size_t)(B * L * d)) == 0);
    CHECK(memcmp(pooled[0], pooled[1], sizeof(float) * (size_t)(B * d)) == 0);
    for (int i = 0; i < 2; i++) free(y[i]), free(pooled[i]);
    text_encoder_free(m16);
    text_encoder_free(m32);
}

/* A bad weights_dtype is refused before anything loads, naming the field. */
static void test_bad_dtype(void) {
    char msg[512] = "";
    cs_model *m = (cs_model *)&msg; /* must come back NULL */
    cs_load_params lp = {.path = CS_SOURCE_DIR "/models/default", .weights_dtype = "f16"};
    CHECK_EQ_INT(cs_model_load_ex(&lp, &m, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(msg, "weights_dtype 'f16'");
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_weights16.XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    threadpool *pool = NULL;
    char msg[256];
    CHECK_EQ_INT(threadpool_new(2, &pool, msg, sizeof msg), CS_OK);
    test_half();
    test_gemm16(pool);
    test_fuse16();
    test_bad_dtype();
    unet_pair(ST_F16);
    unet_pair(ST_BF16);
    te_pair(ST_F16);
    te_pair(ST_BF16);
    threadpool_free(pool);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    CHECK(system(cmd) == 0);
    CHECK_DONE();
}
