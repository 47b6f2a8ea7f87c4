/* Text encoder: strict config reading (real SD 1.x / 2.x configs load; unknown fields and
 * activations are refused by name), checkpoints with and without position_ids, token id /
 * clip_skip validation, and the forward pass (gelu, causal attention, both pooling rules,
 * clip_skip) against a plain double-precision re-implementation on a tiny random model. */
#include "check.h"
#include "text_encoder.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];

static void write_text(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    fputs(text, fp);
    fclose(fp);
}

static cs_status read_config_text(const char *text, te_config *cfg, char *msg, size_t n) {
    write_text("config.json", text);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    return text_encoder_read_config(path, cfg, msg, n);
}

/* ---- configs ---- */

static const char *const k_sd15 =
    "{\"_name_or_path\": \"openai/clip-vit-large-patch14\", \"architectures\": "
    "[\"CLIPTextModel\"], \"attention_dropout\": 0.0, \"bos_token_id\": 0, \"dropout\": 0.0, "
    "\"eos_token_id\": 2, \"hidden_act\": \"quick_gelu\", \"hidden_size\": 768, "
    "\"initializer_factor\": 1.0, \"initializer_range\": 0.02, \"intermediate_size\": 3072, "
    "\"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, \"model_type\": "
    "\"clip_text_model\", \"num_attention_heads\": 12, \"num_hidden_layers\": 12, "
    "\"pad_token_id\": 1, \"projection_dim\": 768, \"torch_dtype\": \"float32\", "
    "\"transformers_version\": \"4.22.0.dev0\", \"vocab_size\": 49408}";

/* stabilityai/stable-diffusion-2-1 text_encoder/config.json (OpenCLIP ViT-H, 23 layers
 * in the diffusers conversion). */
static const char *const k_sd21 =
    "{\"_name_or_path\": \"hf-models/stable-diffusion-v2-768x768/text_encoder\", "
    "\"architectures\": [\"CLIPTextModel\"], \"attention_dropout\": 0.0, \"bos_token_id\": 0, "
    "\"dropout\": 0.0, \"eos_token_id\": 2, \"hidden_act\": \"gelu\", \"hidden_size\": 1024, "
    "\"initializer_factor\": 1.0, \"initializer_range\": 0.02, \"intermediate_size\": 4096, "
    "\"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, \"model_type\": "
    "\"clip_text_model\", \"num_attention_heads\": 16, \"num_hidden_layers\": 23, "
    "\"pad_token_id\": 1, \"projection_dim\": 512, \"torch_dtype\": \"float32\", "
    "\"transformers_version\": \"4.25.0.dev0\", \"vocab_size\": 49408}";

static void test_configs(void) {
    char msg[512];
    te_config cfg;
    CHECK_EQ_INT(read_config_text(k_sd15, &cfg, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(cfg.hidden_size, 768);
    CHECK_EQ_INT(cfg.num_layers, 12);
    CHECK_EQ_INT(cfg.num_heads, 12);
    CHECK_EQ_INT(cfg.act, TE_ACT_QUICK_GELU);
    CHECK_EQ_INT(cfg.eos_token_id, 2);
    CHECK_EQ_INT(cfg.max_positions, 77);

    CHECK_EQ_INT(read_config_text(k_sd21, &cfg, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(cfg.hidden_size, 1024);
    CHECK_EQ_INT(cfg.num_layers, 23);
    CHECK_EQ_INT(cfg.intermediate_size, 4096);
    CHECK_EQ_INT(cfg.act, TE_ACT_GELU);

    /* The shared copy of the real SD 1.5 config, when this checkout has it. */
    char path[512];
    snprintf(path, sizeof path, "%s/../configs/sd15/text_encoder/config.json", CS_GOLDEN_DIR);
    if (access(path, R_OK) == 0) {
        CHECK_EQ_INT(text_encoder_read_config(path, &cfg, msg, sizeof msg), CS_OK);
        CHECK_EQ_INT(cfg.hidden_size, 768);
    }

    CHECK(read_config_text("{\"hidden_act\": \"gelu_new\"}", &cfg, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "hidden_act");
    CHECK_STR_CONTAINS(msg, "gelu_new");
    CHECK(read_config_text("{\"hidden_size\": 64, \"foo_bar\": 1}", &cfg, msg, sizeof msg) !=
          CS_OK);
    CHECK_STR_CONTAINS(msg, "foo_bar");
    CHECK(read_config_text("{\"hidden_size\": 64, \"num_attention_heads\": 5}", &cfg, msg,
                           sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "num_attention_heads");
    CHECK(read_config_text("{\"architectures\": [\"CLIPTextModelWithProjection\"]}", &cfg, msg,
                           sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "architectures");
    CHECK(read_config_text("{\"model_type\": \"clip_vision_model\"}", &cfg, msg, sizeof msg) !=
          CS_OK);
    CHECK_STR_CONTAINS(msg, "model_type");
    CHECK(read_config_text("{\"num_hidden_layers\": 0}", &cfg, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "num_hidden_layers");
    CHECK(read_config_text("{\"layer_norm_eps\": 0}", &cfg, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "layer_norm_eps");
}

/* ---- a tiny random checkpoint ---- */

enum { D = 8, HEADS = 2, INNER = 12, NL = 2, VOCAB = 50, MAXPOS = 10, MAX_T = 64 };

typedef struct tensor {
    char name[128];
    int ndim;
    int64_t shape[2];
    float *data;
} tensor;
static tensor g_t[MAX_T];
static int g_nt;
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float uniform(void) { /* xorshift64*, in [-1, 1) */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (float)((g_rng * 2685821657736338717ull) >> 40) / (float)(1 << 23) - 1.0f;
}

static void add(const char *name, int64_t d0, int64_t d1, float scale, float offset) {
    tensor *t = &g_t[g_nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    int64_t n = d0 * (d1 ? d1 : 1);
    t->data = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        t->data[i] = offset + scale * uniform();
}

static size_t numel(const tensor *t) {
    return (size_t)(t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1));
}

static const float *get(const char *name) {
    for (int i = 0; i < g_nt; i++)
        if (strcmp(g_t[i].name, name) == 0) return g_t[i].data;
    fprintf(stderr, "no tensor %s\n", name);
    abort();
}

/* Layer l's tensor text_model.encoder.layers.<l>.<suffix>. */
static const float *get_layer(int64_t l, const char *suffix) {
    char name[128];
    snprintf(name, sizeof name, "text_model.encoder.layers.%lld.%s", (long long)l, suffix);
    return get(name);
}

static void make_weights(void) {
    char n[128];
    add("text_model.embeddings.token_embedding.weight", VOCAB, D, 1.0f, 0);
    add("text_model.embeddings.position_embedding.weight", MAXPOS, D, 0.5f, 0);
    for (int l = 0; l < NL; l++) {
#define P(s) (snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s", l, s), n)
        const char *lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                             "self_attn.out_proj"};
        for (int i = 0; i < 4; i++) {
            char base[64];
            snprintf(base, sizeof base, "%s.weight", lin[i]);
            add(P(base), D, D, 0.6f, 0);
            snprintf(base, sizeof base, "%s.bias", lin[i]);
            add(P(base), D, 0, 0.1f, 0);
        }
        add(P("mlp.fc1.weight"), INNER, D, 0.6f, 0);
        add(P("mlp.fc1.bias"), INNER, 0, 0.1f, 0);
        add(P("mlp.fc2.weight"), D, INNER, 0.5f, 0);
        add(P("mlp.fc2.bias"), D, 0, 0.1f, 0);
        add(P("layer_norm1.weight"), D, 0, 0.2f, 1.0f);
        add(P("layer_norm1.bias"), D, 0, 0.1f, 0);
        add(P("layer_norm2.weight"), D, 0, 0.2f, 1.0f);
        add(P("layer_norm2.bias"), D, 0, 0.1f, 0);
#undef P
    }
    add("text_model.final_layer_norm.weight", D, 0, 0.2f, 1.0f);
    add("text_model.final_layer_norm.bias", D, 0, 0.1f, 0);
}

/* Writes model.safetensors with every tensor, plus an I64 position_ids buffer and/or an
 * extra unexpected tensor when asked. */
static void write_checkpoint(bool position_ids, bool extra) {
    char header[16384];
    size_t at = 0, off = 0;
    at +=
        (size_t)snprintf(header + at, sizeof header - at, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < g_nt; i++) {
        const tensor *t = &g_t[i];
        char shape[48];
        if (t->ndim == 2)
            snprintf(shape, sizeof shape, "%lld,%lld", (long long)t->shape[0],
                     (long long)t->shape[1]);
        else
            snprintf(shape, sizeof shape, "%lld", (long long)t->shape[0]);
        size_t bytes = numel(t) * 4;
        at += (size_t)snprintf(header + at, sizeof header - at,
                               ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%s],"
                               "\"data_offsets\":[%zu,%zu]}",
                               t->name, shape, off, off + bytes);
        off += bytes;
    }
    if (position_ids) {
        at += (size_t)snprintf(header + at, sizeof header - at,
                               ",\"text_model.embeddings.position_ids\":{\"dtype\":\"I64\","
                               "\"shape\":[1,%d],\"data_offsets\":[%zu,%zu]}",
                               MAXPOS, off, off + MAXPOS * 8);
        off += MAXPOS * 8;
    }
    if (extra) {
        at += (size_t)snprintf(header + at, sizeof header - at,
                               ",\"text_projection.weight\":{\"dtype\":\"F32\",\"shape\":[2],"
                               "\"data_offsets\":[%zu,%zu]}",
                               off, off + 8);
        off += 8;
    }
    at += (size_t)snprintf(header + at, sizeof header - at, "}");
    while (at % 8)
        header[at++] = ' ';
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    uint64_t hl = at;
    fwrite(&hl, 8, 1, fp);
    fwrite(header, 1, at, fp);
    for (int i = 0; i < g_nt; i++)
        fwrite(g_t[i].data, 4, numel(&g_t[i]), fp);
    for (int64_t i = 0; position_ids && i < MAXPOS; i++)
        fwrite(&i, 8, 1, fp);
    float two[2] = {1, 2};
    if (extra) fwrite(two, 4, 2, fp);
    fclose(fp);
}

/* ---- plain double-precision reference (modeling_clip.py, gelu activation) ---- */

static void ref_layer_norm(double *y, const double *x, const float *w, const float *b) {
    double mean = 0, var = 0;
    for (int i = 0; i < D; i++)
        mean += x[i];
    mean /= D;
    for (int i = 0; i < D; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= D;
    for (int i = 0; i < D; i++)
        y[i] = (x[i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
}

static void ref_linear(double *y, const double *x, const float *w, const float *b, int in,
                       int out) {
    for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++)
            s += x[i] * w[o * in + i];
        y[o] = s;
    }
}

/* hs (NL + 1, L, D) for one sequence. */
static void ref_hidden_states(const int64_t *ids, int len, double *hs) {
    const float *tok = get("text_model.embeddings.token_embedding.weight");
    const float *pos = get("text_model.embeddings.position_embedding.weight");
    for (int t = 0; t < len; t++)
        for (int i = 0; i < D; i++)
            hs[t * D + i] = (double)tok[ids[t] * D + i] + pos[t * D + i];
    double x[MAXPOS][D], q[MAXPOS][D], k[MAXPOS][D], v[MAXPOS][D], a[MAXPOS][D], o[D], f[INNER];
#define W(s) get_layer(l, s)
    for (int64_t l = 0; l < NL; l++) {
        double *h = hs + (l + 1) * len * D;
        memcpy(h, hs + l * len * D, (size_t)len * D * sizeof *h);
        for (int t = 0; t < len; t++) {
            ref_layer_norm(x[t], h + t * D, W("layer_norm1.weight"), W("layer_norm1.bias"));
            ref_linear(q[t], x[t], W("self_attn.q_proj.weight"), W("self_attn.q_proj.bias"), D, D);
            ref_linear(k[t], x[t], W("self_attn.k_proj.weight"), W("self_attn.k_proj.bias"), D, D);
            ref_linear(v[t], x[t], W("self_attn.v_proj.weight"), W("self_attn.v_proj.bias"), D, D);
        }
        const int hd = D / HEADS;
        for (int hh = 0; hh < HEADS; hh++)
            for (int t = 0; t < len; t++) {
                double s[MAXPOS], mx = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) { /* causal: keys 0..t */
                    s[j] = 0;
                    for (int e = 0; e < hd; e++)
                        s[j] += q[t][hh * hd + e] * k[j][hh * hd + e];
                    s[j] /= sqrt((double)hd);
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j <= t; j++)
                    sum += s[j] = exp(s[j] - mx);
                for (int e = 0; e < hd; e++) {
                    double acc = 0;
                    for (int j = 0; j <= t; j++)
                        acc += s[j] / sum * v[j][hh * hd + e];
                    a[t][hh * hd + e] = acc;
                }
            }
        for (int t = 0; t < len; t++) {
            ref_linear(o, a[t], W("self_attn.out_proj.weight"), W("self_attn.out_proj.bias"), D, D);
            for (int i = 0; i < D; i++)
                h[t * D + i] += o[i];
            ref_layer_norm(x[t], h + t * D, W("layer_norm2.weight"), W("layer_norm2.bias"));
            ref_linear(f, x[t], W("mlp.fc1.weight"), W("mlp.fc1.bias"), D, INNER);
            for (int i = 0; i < INNER; i++)
                f[i] = 0.5 * f[i] * (1 + erf(f[i] / sqrt(2.0)));
            ref_linear(o, f, W("mlp.fc2.weight"), W("mlp.fc2.bias"), INNER, D);
            for (int i = 0; i < D; i++)
                h[t * D + i] += o[i];
        }
    }
#undef W
}

static double max_diff_ln(const float *got, const double *h, int rows) {
    const float *w = get("text_model.final_layer_norm.weight");
    const float *b = get("text_model.final_layer_norm.bias");
    double worst = 0, y[D];
    for (int r = 0; r < rows; r++) {
        ref_layer_norm(y, h + r * D, w, b);
        for (int i = 0; i < D; i++)
            worst = fmax(worst, fabs(got[r * D + i] - y[i]));
    }
    return worst;
}

#define TINY_CONFIG_FMT \
    "{\"architectures\": [\"CLIPTextModel\"], \"hidden_act\": \"gelu\", \"hidden_size\": %d, " \
    "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, " \
    "\"vocab_size\": %d, \"max_position_embeddings\": %d, \"eos_token_id\": %d, " \
    "\"bos_token_id\": 0, \"pad_token_id\": 1, \"projection_dim\": 8, " \
    "\"model_type\": \"clip_text_model\"}"

static text_encoder *load_tiny(int eos, char *msg, size_t n, cs_status *st) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg, TINY_CONFIG_FMT, D, INNER, NL, HEADS, VOCAB, MAXPOS, eos);
    write_text("config.json", cfg);
    text_encoder *m = NULL;
    *st = text_encoder_load(g_dir, false, &m, msg, n);
    return m;
}

/* Runs (B, L) ids at clip_skip with pooling and compares with the reference. */
static void check_forward(const text_encoder *m, const int64_t *ids, int batch, int len,
                          int clip_skip, const int *pool_at) {
    char msg[512];
    CHECK_EQ_INT(text_encoder_check_ids(m, ids, batch, len, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(text_encoder_check_clip_skip(m, clip_skip, msg, sizeof msg), CS_OK);
    size_t bytes = text_encoder_activation_bytes(m, batch, len);
    CHECK(bytes > 0);
    cs_ctx c;
    CHECK_EQ_INT(ctx_init(&c, bytes), CS_OK);
    float *out = malloc((size_t)batch * len * D * sizeof *out);
    float *pooled = malloc((size_t)batch * D * sizeof *pooled);
    text_encoder_forward(&c, m, ids, batch, len, clip_skip, out, pooled);
    CHECK(c.peak <= bytes);
    CHECK_EQ_INT(c.used, 0);
    double *hs = malloc((size_t)(NL + 1) * len * D * sizeof *hs);
    for (int b = 0; b < batch; b++) {
        ref_hidden_states(ids + b * len, len, hs);
        CHECK_NEAR(max_diff_ln(out + b * len * D, hs + (NL - clip_skip) * len * D, len), 0, 1e-4);
        CHECK_NEAR(max_diff_ln(pooled + b * D, hs + (NL * len + pool_at[b]) * D, 1), 0, 1e-4);
    }
    free(hs);
    free(pooled);
    free(out);
    ctx_deinit(&c);
}

static void test_model(void) {
    char msg[1024];
    cs_status st;
    make_weights();

    /* Without position_ids, with it (real SD 1.x files), and with a stray tensor. */
    write_checkpoint(false, false);
    text_encoder *m = load_tiny(49, msg, sizeof msg, &st);
    CHECK_EQ_INT(st, CS_OK);
    text_encoder_free(m);
    write_checkpoint(false, true);
    m = load_tiny(49, msg, sizeof msg, &st);
    CHECK(st != CS_OK && m == NULL);
    CHECK_STR_CONTAINS(msg, "text_projection.weight");
    write_checkpoint(true, false);
    m = load_tiny(49, msg, sizeof msg, &st);
    CHECK_EQ_INT(st, CS_OK);
    if (!m) return;
    CHECK_EQ_INT(text_encoder_hidden_size(m), D);
    CHECK_EQ_INT(text_encoder_max_length(m), MAXPOS);
    CHECK_EQ_INT(text_encoder_num_layers(m), NL);

    /* Untrusted ids and clip_skip. */
    int64_t ids[2][6] = {{48, 3, 17, 49, 49, 49}, {48, 25, 49, 7, 2, 49}};
    int64_t bad[6] = {48, 3, VOCAB, 49, 0, 0};
    CHECK(text_encoder_check_ids(m, bad, 1, 6, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "vocabulary");
    bad[2] = -1;
    CHECK(text_encoder_check_ids(m, bad, 1, 6, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "-1");
    int64_t longer[MAXPOS + 1] = {0};
    CHECK(text_encoder_check_ids(m, longer, 1, MAXPOS + 1, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "max_position_embeddings");
    CHECK_EQ_INT(text_encoder_check_ids(m, longer, 1, MAXPOS, msg, sizeof msg), CS_OK);
    CHECK(text_encoder_check_ids(m, longer, 1, 0, msg, sizeof msg) != CS_OK);
    CHECK(text_encoder_check_ids(m, longer, 0, 4, msg, sizeof msg) != CS_OK);
    CHECK(text_encoder_check_clip_skip(m, NL + 1, msg, sizeof msg) != CS_OK);
    CHECK_STR_CONTAINS(msg, "clip_skip");
    CHECK(text_encoder_check_clip_skip(m, -1, msg, sizeof msg) != CS_OK);
    CHECK_EQ_INT(text_encoder_check_clip_skip(m, NL, msg, sizeof msg), CS_OK);

    /* eos_token_id 49: the first 49 (positions 3 and 2); clip_skip 0, 1 and NL. */
    const int first_eos[2] = {3, 2};
    for (int skip = 0; skip <= NL; skip++)
        check_forward(m, &ids[0][0], 2, 6, skip, first_eos);
    check_forward(m, &ids[0][0], 1, 4, 0, first_eos); /* a shorter unpadded sequence */
    text_encoder_free(m);

    /* eos_token_id 2: the legacy argmax rule pools the first 49 (positions 3 and 2); the
     * first-eos rule would pick position 0 in row 0 and the 2 at position 4 in row 1. */
    m = load_tiny(2, msg, sizeof msg, &st);
    CHECK_EQ_INT(st, CS_OK);
    if (m) check_forward(m, &ids[0][0], 2, 6, 0, first_eos);
    text_encoder_free(m);

    /* Any other eos_token_id: its first position (3 in row 1). */
    m = load_tiny(7, msg, sizeof msg, &st);
    CHECK_EQ_INT(st, CS_OK);
    const int at7[2] = {0, 3}; /* row 0 has no 7: transformers' argmax of zeros is 0 */
    if (m) check_forward(m, &ids[0][0], 2, 6, 0, at7);
    text_encoder_free(m);
    text_encoder_free(NULL);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_text_encoder_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_configs();
    test_model();
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    remove(path);
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
    remove(path);
    rmdir(g_dir);
    for (int i = 0; i < g_nt; i++)
        free(g_t[i].data);
    CHECK_DONE();
}
