/* UNet config reader: the tiny, SD 1.5 and SD 2.x-style configs load with the right
 * architecture (parameter counts of the real checkpoints), and every unsupported or
 * malformed field is an error that names it. Also plans SD 1.5 memory from its config. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "unet.h"

/* The tiny SD-style config of the golden cases, one field per entry. */
static const char *const k_base[][2] = {
    {"_class_name", "\"UNet2DConditionModel\""},
    {"_diffusers_version", "\"0.27.2\""},
    {"act_fn", "\"silu\""},
    {"addition_embed_type", "null"},
    {"addition_embed_type_num_heads", "64"},
    {"addition_time_embed_dim", "null"},
    {"attention_head_dim", "8"},
    {"attention_type", "\"default\""},
    {"block_out_channels", "[32, 64]"},
    {"center_input_sample", "false"},
    {"class_embed_type", "null"},
    {"class_embeddings_concat", "false"},
    {"conv_in_kernel", "3"},
    {"conv_out_kernel", "3"},
    {"cross_attention_dim", "32"},
    {"cross_attention_norm", "null"},
    {"down_block_types", "[\"CrossAttnDownBlock2D\", \"DownBlock2D\"]"},
    {"downsample_padding", "1"},
    {"dropout", "0.0"},
    {"dual_cross_attention", "false"},
    {"encoder_hid_dim", "null"},
    {"encoder_hid_dim_type", "null"},
    {"flip_sin_to_cos", "true"},
    {"freq_shift", "0"},
    {"in_channels", "4"},
    {"layers_per_block", "2"},
    {"mid_block_only_cross_attention", "null"},
    {"mid_block_scale_factor", "1"},
    {"mid_block_type", "\"UNetMidBlock2DCrossAttn\""},
    {"norm_eps", "1e-05"},
    {"norm_num_groups", "32"},
    {"num_attention_heads", "null"},
    {"num_class_embeds", "null"},
    {"only_cross_attention", "false"},
    {"out_channels", "4"},
    {"projection_class_embeddings_input_dim", "null"},
    {"resnet_out_scale_factor", "1.0"},
    {"resnet_skip_time_act", "false"},
    {"resnet_time_scale_shift", "\"default\""},
    {"reverse_transformer_layers_per_block", "null"},
    {"sample_size", "32"},
    {"time_cond_proj_dim", "null"},
    {"time_embedding_act_fn", "null"},
    {"time_embedding_dim", "null"},
    {"time_embedding_type", "\"positional\""},
    {"timestep_post_act", "null"},
    {"transformer_layers_per_block", "1"},
    {"up_block_types", "[\"UpBlock2D\", \"CrossAttnUpBlock2D\"]"},
    {"upcast_attention", "false"},
    {"use_linear_projection", "false"},
};
enum { N_BASE = sizeof k_base / sizeof k_base[0] };

static char g_dir[256];

/* Writes the base config with `key` set to `value` (added when new, removed when value is
 * NULL; key NULL: the base as is) and loads it. */
static cs_status load_with(const char *key, const char *value, unet_config *cfg, char *msg,
                           size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    FILE *f = fopen(path, "w");
    if (!f) return CS_ERR_IO;
    fprintf(f, "{\n");
    bool done = false, first = true;
    for (int i = 0; i < N_BASE; i++) {
        const char *v = k_base[i][1];
        if (key && strcmp(key, k_base[i][0]) == 0) {
            done = true;
            v = value;
        }
        if (!v) continue;
        fprintf(f, "%s  \"%s\": %s", first ? "" : ",\n", k_base[i][0], v);
        first = false;
    }
    if (key && !done && value) fprintf(f, ",\n  \"%s\": %s", key, value);
    fprintf(f, "\n}\n");
    fclose(f);
    return unet_config_load(path, cfg, msg, n);
}

/* The config must be refused with a message naming `field`. */
static void expect_error(const char *key, const char *value, const char *field) {
    unet_config cfg;
    char msg[1024] = "";
    cs_status st = load_with(key, value, &cfg, msg, sizeof msg);
    if (st == CS_OK) {
        fprintf(stderr, "config with %s = %s loaded but should fail\n", key, value);
        check_failures++;
        return;
    }
    CHECK_STR_CONTAINS(msg, field);
}

static void test_base(void) {
    unet_config cfg;
    char msg[1024] = "";
    CHECK_EQ_INT(load_with(NULL, NULL, &cfg, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(cfg.nblocks, 2);
    CHECK_EQ_INT(cfg.heads[0], 8);
    CHECK_EQ_INT(cfg.heads[1], 8);
    CHECK_EQ_INT(cfg.layers[1], 2);
    CHECK_EQ_INT(cfg.cross_dim, 32);
    CHECK_EQ_INT(cfg.time_embed_dim, 128);
    CHECK(cfg.down_attn[0] && !cfg.down_attn[1] && !cfg.up_attn[0] && cfg.up_attn[1]);
    CHECK(cfg.mid_block);
    CHECK_EQ_INT(unet_config_size_multiple(&cfg), 2);
    /* Absent fields take diffusers' defaults; an explicit null mid block means none. */
    CHECK_EQ_INT(load_with("attention_head_dim", NULL, &cfg, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(cfg.heads[0], 8);
    CHECK_EQ_INT(load_with("mid_block_type", "null", &cfg, msg, sizeof msg), CS_OK);
    CHECK(!cfg.mid_block);
    CHECK_EQ_INT(load_with("mid_block_type", NULL, &cfg, msg, sizeof msg), CS_OK);
    CHECK(cfg.mid_block);
    CHECK_EQ_INT(load_with("attention_head_dim", "[2, 4]", &cfg, msg, sizeof msg), CS_OK);
    CHECK(cfg.heads[0] == 2 && cfg.heads[1] == 4);
    CHECK_EQ_INT(load_with("sample_size", "[24, 32]", &cfg, msg, sizeof msg), CS_OK);
    CHECK(cfg.sample_size[0] == 24 && cfg.sample_size[1] == 32);
    CHECK_EQ_INT(load_with("num_class_embeds", "10", &cfg, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(cfg.class_embed, UNET_CLASS_TABLE);
    CHECK_EQ_INT(load_with("class_embed_type", "\"timestep\"", &cfg, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(cfg.class_embed, UNET_CLASS_TIMESTEP);
}

static void test_errors(void) {
    expect_error("frobnicate", "1", "frobnicate");
    expect_error("addition_embed_type", "\"text_time\"", "addition_embed_type");
    expect_error("attention_type", "\"gated\"", "attention_type");
    expect_error("dual_cross_attention", "true", "dual_cross_attention");
    expect_error("only_cross_attention", "true", "only_cross_attention");
    expect_error("center_input_sample", "true", "center_input_sample");
    expect_error("encoder_hid_dim", "768", "encoder_hid_dim");
    expect_error("class_embed_type", "\"projection\"", "class_embed_type");
    expect_error("class_embed_type", "\"nonsense\"", "class_embed_type");
    expect_error("class_embeddings_concat", "true", "class_embeddings_concat");
    expect_error("down_block_types", "[\"SimpleCrossAttnDownBlock2D\", \"DownBlock2D\"]",
                 "down_block_types");
    expect_error("up_block_types", "[\"UpBlock2D\"]", "up_block_types");
    expect_error("mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"", "mid_block_type");
    expect_error("num_attention_heads", "8", "num_attention_heads");
    expect_error("attention_head_dim", "null", "attention_head_dim");
    expect_error("attention_head_dim", "[2, 4, 8]", "attention_head_dim");
    expect_error("attention_head_dim", "64", "attention_head_dim"); /* heads > channels */
    expect_error("norm_num_groups", "24", "norm_num_groups");
    expect_error("norm_num_groups", "null", "norm_num_groups");
    expect_error("resnet_time_scale_shift", "\"spatial\"", "resnet_time_scale_shift");
    expect_error("time_embedding_type", "\"fourier\"", "time_embedding_type");
    expect_error("time_embedding_act_fn", "\"mish\"", "time_embedding_act_fn");
    expect_error("act_fn", "\"gelu\"", "act_fn");
    expect_error("reverse_transformer_layers_per_block", "[[1], [1]]",
                 "reverse_transformer_layers_per_block");
    expect_error("transformer_layers_per_block", "[[1, 2], [1]]", "transformer_layers_per_block");
    expect_error("cross_attention_dim", "[32, 64]", "cross_attention_dim");
    expect_error("conv_in_kernel", "4", "conv_in_kernel");
    expect_error("downsample_padding", "2", "downsample_padding");
    expect_error("layers_per_block", "0", "layers_per_block");
    expect_error("block_out_channels", "[32, 64, 128]", "block_out_channels");
    expect_error("_class_name", "\"UNet2DModel\"", "_class_name");
}

/* Builds the architecture of a real config (no weights) and checks its size. */
static void check_real(const char *path, int64_t params, const char *label) {
    unet_config cfg;
    char msg[1024] = "";
    cs_status st = unet_config_load(path, &cfg, msg, sizeof msg);
    CHECK_EQ_INT(st, CS_OK);
    if (st != CS_OK) {
        fprintf(stderr, "%s\n", msg);
        return;
    }
    unet_model *m = NULL;
    CHECK_EQ_INT(unet_new_unweighted(&cfg, &m, msg, sizeof msg), CS_OK);
    if (!m) return;
    CHECK_EQ_INT(unet_param_count(m), params);
    size_t a = unet_activation_bytes(m, 2, 64, 64, 77, 1);
    size_t b = unet_activation_bytes(m, 2, 64, 64, 77, 1);
    CHECK(a > 0 && a == b);
    CHECK(unet_activation_bytes(m, 1, 64, 64, 77, 1) < a);
    printf("%s: %lld parameters; activation arena %zu bytes (%.1f MiB) for batch 2, 64x64 "
           "latents, 77 tokens\n",
           label, (long long)unet_param_count(m), a, (double)a / (1 << 20));
    unet_free(m);
}

/* Replaces the first `from` in text (a malloc'd string) by `to`. */
static char *replace(char *text, const char *from, const char *to) {
    char *at = strstr(text, from);
    CHECK(at != NULL);
    if (!at) return text;
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    if (!out) abort();
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    free(text);
    return out;
}

static void test_real_configs(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/../configs/sd15/unet/config.json", CS_GOLDEN_DIR);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("SKIP real configs: %s not found\n", path);
        return;
    }
    char *text = calloc(1, 1 << 16);
    if (!text) abort();
    size_t len = fread(text, 1, (1 << 16) - 1, f);
    fclose(f);
    CHECK(len > 0);
    check_real(path, 859520964, "SD 1.5 UNet");

    /* SD 2.x (stable-diffusion-2-1): the fields that differ from SD 1.5. */
    text = replace(text, "\"attention_head_dim\": 8", "\"attention_head_dim\": [5, 10, 20, 20]");
    text = replace(text, "\"cross_attention_dim\": 768", "\"cross_attention_dim\": 1024");
    text = replace(text, "\"use_linear_projection\": false", "\"use_linear_projection\": true");
    text = replace(text, "\"upcast_attention\": false", "\"upcast_attention\": true");
    text = replace(text, "\"sample_size\": 64", "\"sample_size\": 96");
    snprintf(path, sizeof path, "%s/sd2.json", g_dir);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
        unet_config cfg;
        char msg[1024] = "";
        CHECK_EQ_INT(unet_config_load(path, &cfg, msg, sizeof msg), CS_OK);
        CHECK(cfg.heads[0] == 5 && cfg.heads[3] == 20 && cfg.linear_proj && cfg.cross_dim == 1024);
        check_real(path, 865910724, "SD 2.x UNet");
        remove(path);
    }
    free(text);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_unet_config.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_base();
    test_errors();
    test_real_configs();
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    remove(path);
    rmdir(g_dir);
    CHECK_DONE();
}
