/* VAE loading: strict config reading (SD 1.5's real config loads; unknown fields and
 * unsupported values are refused by name), checkpoints that do not match their config
 * (every missing / extra / mis-shaped tensor listed), legacy attention names
 * (query/key/value/proj_attn) giving the same results as the current ones, and memory
 * planning from a config alone. Checkpoint tests use the golden tiny VAE when
 * CS_GOLDEN_DIR exists. */
#include "check.h"
#include "st_build.h"
#include "vae.h"

#include <sys/stat.h>

static char *g_dir;

static void write_text(const char *name, const char *text) {
    free(stb_write(g_dir, name, text, strlen(text)));
}

static cs_status read_config_text(const char *text, vae_config *cfg, char *msg, size_t n) {
    write_text("config.json", text);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    return vae_read_config(path, cfg, msg, n);
}

/* runwayml/stable-diffusion-v1-5 vae/config.json as saved by diffusers 0.27.2. */
static const char *const k_sd15 =
    "{\"_class_name\": \"AutoencoderKL\", \"_diffusers_version\": \"0.27.2\", \"act_fn\": "
    "\"silu\", \"block_out_channels\": [128, 256, 512, 512], \"down_block_types\": "
    "[\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
    "\"DownEncoderBlock2D\"], \"force_upcast\": true, \"in_channels\": 3, \"latent_channels\": 4, "
    "\"latents_mean\": null, \"latents_std\": null, \"layers_per_block\": 2, "
    "\"norm_num_groups\": 32, \"out_channels\": 3, \"sample_size\": 512, \"scaling_factor\": "
    "0.18215, \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", "
    "\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";

/* The golden tiny VAE's config with block_out_channels `blocks` (e.g. "32, 64") and
 * `extra` fields spliced in after the opening brace. */
static void tiny_config(char *buf, size_t n, const char *blocks, const char *extra) {
    int nb = 1;
    for (const char *p = blocks; *p; p++)
        nb += *p == ',';
    char down[512] = "", up[512] = "";
    for (int i = 0; i < nb; i++) {
        strcat(down, i ? ", \"DownEncoderBlock2D\"" : "\"DownEncoderBlock2D\"");
        strcat(up, i ? ", \"UpDecoderBlock2D\"" : "\"UpDecoderBlock2D\"");
    }
    snprintf(buf, n,
             "{%s\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", "
             "\"block_out_channels\": [%s], \"down_block_types\": [%s], \"up_block_types\": "
             "[%s], \"in_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 2, "
             "\"norm_num_groups\": 32, \"out_channels\": 3, \"sample_size\": 32, "
             "\"scaling_factor\": 0.18215, \"force_upcast\": true}",
             extra, blocks, down, up);
}

static void test_sd15(void) {
    char msg[512];
    vae_config cfg;
    CHECK_EQ_INT(read_config_text(k_sd15, &cfg, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(cfg.num_blocks, 4);
    CHECK_EQ_INT(cfg.block_out_channels[0], 128);
    CHECK_EQ_INT(cfg.block_out_channels[3], 512);
    CHECK_EQ_INT(cfg.layers_per_block, 2);
    CHECK_EQ_INT(cfg.latent_channels, 4);
    CHECK(cfg.mid_block_add_attention);
    CHECK_NEAR(cfg.scaling_factor, 0.18215, 1e-7);

    /* Later diffusers versions write these fields; their neutral values are accepted. */
    char text[4096];
    snprintf(text, sizeof text,
             "{\"use_quant_conv\": true, \"use_post_quant_conv\": true, \"shift_factor\": null, "
             "\"mid_block_add_attention\": true, %s",
             strchr(k_sd15, '{') + 1);
    CHECK_EQ_INT(read_config_text(text, &cfg, msg, sizeof msg), CS_OK);
    /* diffusers' get_activation treats "swish" as SiLU too. */
    char *silu = strstr(text, "\"silu\"");
    CHECK(silu != NULL);
    if (silu) {
        memmove(silu + 7, silu + 6, strlen(silu + 6) + 1); /* "silu" -> "swish": one longer */
        memcpy(silu, "\"swish\"", 7);
    }
    CHECK_EQ_INT(read_config_text(text, &cfg, msg, sizeof msg), CS_OK);
    if (cfg.num_blocks != 4) return;

    vae_model *m = NULL;
    CHECK_EQ_INT(vae_new_unloaded(&cfg, &m, msg, sizeof msg), CS_OK);
    if (!m) return;
    CHECK_EQ_INT(vae_scale_factor(m), 8);
    CHECK_EQ_INT(vae_latent_channels(m), 4);
    int64_t h, w;
    vae_latent_size(m, 512, 768, &h, &w);
    CHECK_EQ_INT(h, 64);
    CHECK_EQ_INT(w, 96);
    size_t dec = vae_decode_activation_bytes(m, 1, 64, 64);
    size_t enc = vae_encode_activation_bytes(m, 1, 512, 512);
    printf("SD 1.5 VAE arena: decode 1x4x64x64 %zu bytes (%.1f MiB), encode 1x3x512x512 %zu "
           "bytes (%.1f MiB)\n",
           dec, dec / 1048576.0, enc, enc / 1048576.0);
    /* At least the two 256-channel 512×512 ping-pong buffers of the last up block. */
    CHECK(dec >= 2u * 256 * 512 * 512 * sizeof(float));
    CHECK(vae_decode_activation_bytes(m, 2, 64, 64) > dec);
    vae_free(m);
}

/* Each config must fail, naming `field` in the message. */
static void expect_config_error(const char *text, const char *field) {
    char msg[512] = "";
    vae_config cfg;
    cs_status st = read_config_text(text, &cfg, msg, sizeof msg);
    CHECK(st != CS_OK);
    CHECK_STR_CONTAINS(msg, field);
}

static void test_config_errors(void) {
    char text[4096];
    const char *two = "32, 64";
    const struct {
        const char *extra, *field;
    } cases[] = {
        {"\"foo_bar\": 1, ", "foo_bar"},
        {"\"latents_mean\": [0.1, 0.2, 0.3, 0.4], ", "latents_mean"},
        {"\"latents_std\": [1, 1, 1, 1], ", "latents_std"},
        {"\"shift_factor\": 0.0609, ", "shift_factor"},
        {"\"use_quant_conv\": false, ", "use_quant_conv"},
        {"\"use_post_quant_conv\": false, ", "use_post_quant_conv"},
        {"\"mid_block_add_attention\": 3, ", "mid_block_add_attention"},
        {"\"_class_name\": \"AutoencoderTiny\", ", "_class_name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* The spliced field comes first; a duplicate _class_name would be refused as such,
         * so that case replaces the whole text. */
        if (strstr(cases[i].extra, "_class_name")) {
            snprintf(text, sizeof text,
                     "{\"_class_name\": \"AutoencoderTiny\", \"block_out_channels\": [32]}");
        } else {
            tiny_config(text, sizeof text, two, cases[i].extra);
        }
        expect_config_error(text, cases[i].field);
    }
    /* Values inside otherwise valid fields. */
    expect_config_error("{\"act_fn\": \"gelu\"}", "act_fn");
    expect_config_error("{\"layers_per_block\": 0}", "layers_per_block");
    expect_config_error("{\"block_out_channels\": [32, 48], \"norm_num_groups\": 32, "
                        "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], "
                        "\"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
                        "norm_num_groups");
    expect_config_error("{\"block_out_channels\": [32, 64], \"down_block_types\": "
                        "[\"DownEncoderBlock2D\", \"DownBlock2D\"], \"up_block_types\": "
                        "[\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
                        "down_block_types");
    expect_config_error("{\"block_out_channels\": [32, 64], \"down_block_types\": "
                        "[\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"up_block_types\": "
                        "[\"UpDecoderBlock2D\"]}",
                        "up_block_types");
    expect_config_error("{\"block_out_channels\": [32, 32, 32, 32, 32, 32, 32, 32, 32]}",
                        "block_out_channels");
    expect_config_error("{\"block_out_channels\": []}", "block_out_channels");
    expect_config_error("{\"scaling_factor\": \"big\"}", "scaling_factor");
    /* A config missing entirely names the file. */
    char msg[512] = "", dir[4200];
    static int sentinel;
    vae_model *m = (vae_model *)&sentinel; /* vae_load must reset it to NULL on failure */
    snprintf(dir, sizeof dir, "%s/nonexistent", g_dir);
    CHECK(vae_load(dir, false, &m, msg, sizeof msg) != CS_OK);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(msg, "nonexistent/config.json");
}

/* ---- checkpoints (golden tiny VAE) ---- */

static char g_golden_weights[4096];

static bool have_golden(void) {
    snprintf(g_golden_weights, sizeof g_golden_weights,
             "%s/pipeline_tiny/model/vae/diffusion_pytorch_model.safetensors", CS_GOLDEN_DIR);
    struct stat sb;
    return stat(g_golden_weights, &sb) == 0;
}

/* A folder with `config` and a link to the golden weights must fail to load, the message
 * containing each of `needles` (NULL-terminated). */
static void expect_mismatch(const char *config, const char *const *needles) {
    write_text("config.json", config);
    char link[4200], msg[4096] = "";
    snprintf(link, sizeof link, "%s/diffusion_pytorch_model.safetensors", g_dir);
    unlink(link);
    CHECK(symlink(g_golden_weights, link) == 0);
    vae_model *m = NULL;
    cs_status st = vae_load(g_dir, false, &m, msg, sizeof msg);
    CHECK_EQ_INT(st, CS_ERR_FORMAT);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(msg, "does not match the model config");
    for (; *needles; needles++)
        CHECK_STR_CONTAINS(msg, *needles);
    vae_free(m);
    unlink(link);
}

static void test_mismatch(void) {
    char text[4096];
    /* The binder lists the first dozen problems (in table order, then the file's extra
     * tensors) and counts them all. Three blocks against the two-block weights: block 1
     * gains a downsampler, block 2 is missing, and the decoder changes shape. */
    tiny_config(text, sizeof text, "32, 64, 64", "");
    expect_mismatch(text, (const char *const[]){
                              "missing tensor 'encoder.down_blocks.1.downsamplers.0.conv.weight'",
                              "missing tensor 'encoder.down_blocks.2.resnets.0.norm1.weight'",
                              "problems in all", NULL});
    /* Wider channels: mis-shaped tensors. */
    tiny_config(text, sizeof text, "64, 64", "");
    expect_mismatch(text,
                    (const char *const[]){
                        "tensor 'encoder.conv_in.weight' has shape [32, 3, 3, 3], the config needs "
                        "[64, 3, 3, 3]",
                        NULL});
    /* No mid-block attention: its 2 × 10 tensors are extra. */
    tiny_config(text, sizeof text, "32, 64", "\"mid_block_add_attention\": false, ");
    expect_mismatch(text, (const char *const[]){
                              "unexpected tensor 'decoder.mid_block.attentions.0.group_norm.bias'",
                              "20 problems in all", NULL});
}

/* Copies the golden weights into g_dir with the attention projections renamed the way
 * old SD checkpoints name them. Only the JSON header changes: data offsets are relative
 * to the end of the header. */
static void write_legacy_weights(void) {
    FILE *fp = fopen(g_golden_weights, "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size);
    CHECK(buf && fread(buf, 1, (size_t)size, fp) == (size_t)size);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)buf[i] << (8 * i);
    static const char *const from[] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."};
    static const char *const to[] = {".query.", ".key.", ".value.", ".proj_attn."};
    stb_buf hdr = {0};
    const char *p = (const char *)buf + 8, *end = p + hlen;
    while (p < end) {
        size_t k = 0;
        for (; k < 4; k++)
            if ((size_t)(end - p) >= strlen(from[k]) && !memcmp(p, from[k], strlen(from[k]))) break;
        if (k < 4) {
            stb_put(&hdr, to[k], strlen(to[k]));
            p += strlen(from[k]);
        } else {
            stb_put(&hdr, p++, 1);
        }
    }
    while (hdr.len % 8)
        stb_put(&hdr, " ", 1);
    stb_buf img = stb_image_len(hdr.len, hdr.p, hdr.len, end, (size_t)(size - 8) - hlen);
    free(stb_write(g_dir, "diffusion_pytorch_model.safetensors", img.p, img.len));
    CHECK(strstr((const char *)img.p + 8, "decoder.mid_block.attentions.0.proj_attn.weight"));
    CHECK(!strstr((const char *)img.p + 8, "to_q"));
    free(img.p);
    free(hdr.p);
    free(buf);
}

/* Uniform in [-1, 1) from a linear congruential stream. */
static float urand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f * 2 - 1;
}

/* Decodes and encodes fixed pseudo-random inputs; out gets the decoded image followed by
 * the mean and logvar. */
static void run_model(const vae_model *m, float *out, int64_t batch, int64_t h, int64_t w) {
    const int64_t f = vae_scale_factor(m), lc = vae_latent_channels(m);
    const int64_t nlat = batch * lc * h * w, nimg = batch * 3 * h * f * w * f;
    float *lat = malloc((size_t)nlat * sizeof *lat), *img = malloc((size_t)nimg * sizeof *img);
    uint32_t s = 12345;
    for (int64_t i = 0; i < nlat; i++)
        lat[i] = urand(&s);
    for (int64_t i = 0; i < nimg; i++)
        img[i] = urand(&s);
    cs_ctx c;
    CHECK_EQ_INT(ctx_init(&c, vae_decode_activation_bytes(m, batch, h, w)), CS_OK);
    vae_decode(&c, m, out, lat, batch, h, w);
    ctx_deinit(&c);
    CHECK_EQ_INT(ctx_init(&c, vae_encode_activation_bytes(m, batch, h * f, w * f)), CS_OK);
    vae_encode(&c, m, out + nimg, out + nimg + nlat, img, batch, h * f, w * f);
    ctx_deinit(&c);
    free(lat);
    free(img);
}

static void test_legacy_names(void) {
    char dir[4096], msg[4096] = "";
    snprintf(dir, sizeof dir, "%s/pipeline_tiny/model/vae", CS_GOLDEN_DIR);
    vae_model *cur = NULL, *old = NULL;
    CHECK_EQ_INT(vae_load(dir, false, &cur, msg, sizeof msg), CS_OK);
    char text[4096];
    tiny_config(text, sizeof text, "32, 64", "");
    write_text("config.json", text);
    write_legacy_weights();
    CHECK_EQ_INT(vae_load(g_dir, false, &old, msg, sizeof msg), CS_OK);
    if (!cur || !old) {
        fprintf(stderr, "load failed: %s\n", msg);
        vae_free(cur);
        vae_free(old);
        return;
    }
    const int64_t b = 1, h = 5, w = 7, n = b * 3 * 10 * 14 + 2 * b * 4 * h * w;
    float *a = calloc((size_t)n, sizeof *a), *z = calloc((size_t)n, sizeof *z);
    run_model(cur, a, b, h, w);
    run_model(old, z, b, h, w);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++)
        differ += a[i] != z[i];
    CHECK_EQ_INT(differ, 0);
    free(a);
    free(z);
    vae_free(cur);
    vae_free(old);
}

int main(void) {
    g_dir = stb_tmpdir();
    test_sd15();
    test_config_errors();
    if (have_golden()) {
        test_mismatch();
        test_legacy_names();
    } else {
        printf("no golden folder at %s: checkpoint tests not run\n", CS_GOLDEN_DIR);
    }
    stb_rmtree(g_dir);
    free(g_dir);
    CHECK_DONE();
}
