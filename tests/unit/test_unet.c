/* UNet forward beyond the golden cases: configurations with random weights that exercise
 * the options the reference cases do not (class "timestep" embedding concatenated,
 * downsample_padding 0, time activations, deeper transformers, per-block layer counts, no
 * mid block, 1×1 and 5×5 conv_in/out), each run in an arena sized exactly by its
 * measuring pass (ctx_alloc asserts on overflow). Batch rows must be independent (the
 * batched step API relies on it), runs deterministic, outputs finite. Also input
 * validation and the weight table's report of missing / extra / mis-shaped tensors. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"
#include "unet.h"

static char g_dir[256];

/* Writes {fields} as g_dir/name/config.json and loads it. */
static cs_status write_config(const char *name, const char *fields, unet_config *cfg, char *msg,
                              size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/config.json", g_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return CS_ERR_IO;
    fprintf(f, "{\"_class_name\": \"UNet2DConditionModel\", %s}\n", fields);
    fclose(f);
    return cfg ? unet_config_load(path, cfg, msg, n) : CS_OK;
}

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f; // [-1, 1)
}

/* Runs rows [first, first + batch) of the full input set through a fresh exact arena. */
static void run(const unet_model *m, const unet_input *all, int64_t first, int64_t batch,
                float *out) {
    const unet_config *cfg = unet_get_config(m);
    const int64_t hw = all->height * all->width;
    unet_input in = *all;
    in.batch = batch;
    in.sample = all->sample + first * cfg->in_channels * hw;
    in.timesteps = all->timesteps + first;
    in.context = all->context + first * all->context_len * cfg->cross_dim;
    if (in.timestep_cond) in.timestep_cond += first * cfg->time_cond_dim;
    if (in.class_labels) in.class_labels += first;
    char msg[512] = "";
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_OK);
    size_t bytes = unet_activation_bytes(m, batch, in.height, in.width, in.context_len, 1);
    CHECK_EQ_INT(bytes, unet_activation_bytes(m, batch, in.height, in.width, in.context_len, 1));
    cs_ctx c;
    CHECK_EQ_INT(ctx_init(&c, bytes), CS_OK);
    unet_forward(&c, m, &in, out);
    CHECK(c.peak <= bytes); /* the real pass used no more than planned */
    ctx_deinit(&c);
}

/* Forward of a random-weight model of `fields` on 3 rows with their own timesteps. */
static void check_config(const char *name, const char *fields, int64_t h, int64_t w) {
    unet_config cfg;
    char msg[1024] = "";
    cs_status st = write_config(name, fields, &cfg, msg, sizeof msg);
    CHECK_EQ_INT(st, CS_OK);
    if (st != CS_OK) {
        fprintf(stderr, "%s: %s\n", name, msg);
        return;
    }
    unet_model *m = NULL;
    CHECK_EQ_INT(unet_new_random(&cfg, 42, &m, msg, sizeof msg), CS_OK);
    if (!m) return;
    enum { B = 3, L = 7 };
    const int64_t hw = h * w, n_in = B * cfg.in_channels * hw, n_out = B * cfg.out_channels * hw;
    float *sample = malloc((size_t)n_in * sizeof(float));
    float *context = malloc((size_t)(B * L * cfg.cross_dim) * sizeof(float));
    float *cond = malloc((size_t)(B * (cfg.time_cond_dim + 1)) * sizeof(float));
    float *out = malloc((size_t)n_out * sizeof(float)), *again = malloc((size_t)n_out * 4);
    float *row = malloc((size_t)n_out * sizeof(float));
    if (!sample || !context || !cond || !out || !again || !row) abort();
    uint64_t s = 7;
    for (int64_t i = 0; i < n_in; i++)
        sample[i] = frand(&s);
    for (int64_t i = 0; i < B * L * cfg.cross_dim; i++)
        context[i] = frand(&s);
    for (int64_t i = 0; i < B * cfg.time_cond_dim; i++)
        cond[i] = frand(&s);
    const float timesteps[B] = {999.0f, 500.5f, 3.0f};
    const int64_t labels[B] = {0, 2, 1};
    const unet_input in = {.sample = sample,
                           .batch = B,
                           .height = h,
                           .width = w,
                           .timesteps = timesteps,
                           .context = context,
                           .context_len = L,
                           .timestep_cond = cfg.time_cond_dim ? cond : NULL,
                           .class_labels = cfg.class_embed != UNET_CLASS_NONE ? labels : NULL};
    run(m, &in, 0, B, out);
    run(m, &in, 0, B, again);
    double max_abs = 0, row_diff = 0;
    for (int64_t i = 0; i < n_out; i++) {
        CHECK(isfinite(out[i]));
        if (fabs(out[i]) > max_abs) max_abs = fabs(out[i]);
    }
    CHECK(memcmp(out, again, (size_t)n_out * sizeof(float)) == 0); /* deterministic */
    CHECK(max_abs > 1e-3 && max_abs < 1e3);
    const int64_t per_row = cfg.out_channels * hw;
    for (int64_t b = 0; b < B; b++) { /* each row alone gives the same result */
        run(m, &in, b, 1, row);
        for (int64_t i = 0; i < per_row; i++)
            row_diff = fmax(row_diff, fabs(row[i] - out[b * per_row + i]));
    }
    CHECK(row_diff <= 1e-4);
    printf("%-22s %9lld params  max|out| %.3f  row-vs-batch diff %.2e  arena %zu bytes\n", name,
           (long long)unet_param_count(m), max_abs, row_diff, unet_activation_bytes(m, B, h, w, L, 1));
    unet_free(m);
    free(sample);
    free(context);
    free(cond);
    free(out);
    free(again);
    free(row);
}

#define TINY                                                                                       \
    "\"block_out_channels\": [32, 64], \"cross_attention_dim\": 24, \"norm_num_groups\": 16, "     \
    "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "                          \
    "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]"

static void test_configs(void) {
    check_config("tiny", TINY ", \"layers_per_block\": 1, \"attention_head_dim\": 4", 8, 12);
    check_config("class_timestep_concat",
                 TINY ", \"layers_per_block\": [1, 2], \"class_embed_type\": \"timestep\", "
                      "\"class_embeddings_concat\": true, \"time_embedding_act_fn\": \"silu\", "
                      "\"timestep_post_act\": \"swish\", \"time_cond_proj_dim\": 5, "
                      "\"downsample_padding\": 0, \"transformer_layers_per_block\": [2, 1], "
                      "\"use_linear_projection\": true, \"attention_head_dim\": [2, 4]",
                 8, 6);
    check_config("three_blocks_no_mid",
                 "\"block_out_channels\": [16, 32, 32], \"cross_attention_dim\": 8, "
                 "\"norm_num_groups\": 8, \"layers_per_block\": [2, 1, 1], "
                 "\"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\", "
                 "\"CrossAttnDownBlock2D\"], \"up_block_types\": [\"CrossAttnUpBlock2D\", "
                 "\"CrossAttnUpBlock2D\", \"UpBlock2D\"], \"mid_block_type\": null, "
                 "\"num_class_embeds\": 3, \"resnet_time_scale_shift\": \"scale_shift\", "
                 "\"attention_head_dim\": 3, \"conv_in_kernel\": 1, \"conv_out_kernel\": 5, "
                 "\"in_channels\": 3, \"out_channels\": 6, \"time_embedding_dim\": 40, "
                 "\"mid_block_scale_factor\": 2, \"freq_shift\": 1, \"flip_sin_to_cos\": false",
                 12, 4);
}

static void test_inputs(void) {
    unet_config cfg;
    char msg[512] = "";
    CHECK_EQ_INT(write_config("inputs", TINY ", \"num_class_embeds\": 4", &cfg, msg, sizeof msg),
                 CS_OK);
    unet_model *m = NULL;
    CHECK_EQ_INT(unet_new_unweighted(&cfg, &m, msg, sizeof msg), CS_OK);
    if (!m) return;
    float x[4] = {0}, t[2] = {10, 20};
    int64_t labels[2] = {1, 3};
    unet_input in = {.sample = x,
                     .batch = 2,
                     .height = 8,
                     .width = 6,
                     .timesteps = t,
                     .context = x,
                     .context_len = 77,
                     .class_labels = labels};
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_OK);
    in.width = 7;
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "multiples of 2");
    in.width = 6;
    labels[1] = 4;
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "class label 4");
    labels[1] = 3;
    in.class_labels = NULL;
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_ERR_INVALID_ARG);
    in.class_labels = labels;
    in.timestep_cond = x;
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "timestep_cond");
    in.timestep_cond = NULL;
    t[1] = NAN;
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_ERR_INVALID_ARG);
    t[1] = 20;
    in.context_len = 0;
    CHECK_EQ_INT(unet_check_input(m, &in, msg, sizeof msg), CS_ERR_INVALID_ARG);
    unet_free(m);
}

/* The tiny golden checkpoint under a config it does not match: every problem is named. */
static void test_weight_report(void) {
    char weights[1024], link[512], msg[4096] = "";
    snprintf(weights, sizeof weights,
             "%s/pipeline_tiny/model/unet/diffusion_pytorch_model.safetensors", CS_GOLDEN_DIR);
    if (access(weights, R_OK) != 0) {
        printf("SKIP weight report: %s not found\n", weights);
        return;
    }
    /* The golden model with linear projections and cond_proj, without its DownBlock2D. */
    CHECK_EQ_INT(write_config("mismatch",
                              "\"block_out_channels\": [32, 64], \"cross_attention_dim\": 32, "
                              "\"down_block_types\": [\"CrossAttnDownBlock2D\", "
                              "\"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", "
                              "\"CrossAttnUpBlock2D\"], \"use_linear_projection\": true, "
                              "\"time_cond_proj_dim\": 16, \"mid_block_type\": null",
                              NULL, NULL, 0),
                 CS_OK);
    snprintf(link, sizeof link, "%s/mismatch/diffusion_pytorch_model.safetensors", g_dir);
    CHECK(symlink(weights, link) == 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/mismatch", g_dir);
    unet_model *m = NULL;
    CHECK_EQ_INT(unet_load(dir, false, &m, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(msg, "missing tensor 'time_embedding.cond_proj.weight'");
    CHECK_STR_CONTAINS(msg, "'down_blocks.0.attentions.0.proj_in.weight' has shape [32, 32, 1, 1]"
                            ", the config needs [32, 32]");
    CHECK_STR_CONTAINS(msg, "unexpected tensor 'mid_block.");
    unlink(link);

    /* And the matching config loads, with one parameter per stored value. */
    st_file *f = NULL;
    CHECK_EQ_INT(st_open(weights, &f, msg, sizeof msg), CS_OK);
    int64_t stored = 0;
    for (int64_t i = 0; f && i < f->count; i++)
        stored += f->tensors[i].numel;
    st_close(f);
    snprintf(dir, sizeof dir, "%s/pipeline_tiny/model/unet", CS_GOLDEN_DIR);
    CHECK_EQ_INT(unet_load(dir, false, &m, msg, sizeof msg), CS_OK);
    if (m) CHECK_EQ_INT(unet_param_count(m), stored);
    unet_free(m);
}

static void cleanup(void) {
    const char *names[] = {"tiny", "class_timestep_concat", "three_blocks_no_mid", "inputs",
                           "mismatch"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s/config.json", g_dir, names[i]);
        remove(path);
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        rmdir(path);
    }
    rmdir(g_dir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_unet.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_configs();
    test_inputs();
    test_weight_report();
    cleanup();
    CHECK_DONE();
}
