/* LDM -> diffusers renaming views and single-file loading: block numbering from the level
 * counts (3-level VAE decoder reversed), 1x1-conv squeeze, OpenCLIP q/k/v split and the
 * dropped last layer, EMA twins; then whole-file loads: inferred configs, a file that is
 * neither LDM nor diffusers, missing keys and wrong shapes, each named in the error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ldm_keymap.h"
#include "model.h"

static uint8_t g_data[4096];

static st_file *table(const char *const *names, const int64_t (*shapes)[4], const int *ndims,
                      int n) {
    st_file *f;
    char msg[256];
    CHECK(st_new_table("t.safetensors", g_data, sizeof g_data, &f, msg, sizeof msg) == CS_OK);
    for (int i = 0; i < n; i++)
        CHECK(st_append(f, names[i], ST_F32, ndims[i], shapes[i], (size_t)i * 4, msg,
                        sizeof msg) == CS_OK);
    CHECK(st_finish(f, msg, sizeof msg) == CS_OK);
    return f;
}

static void test_unet_and_vae_names(void) {
    static const char *const names[] = {
        "model.diffusion_model.input_blocks.4.0.skip_connection.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.output_blocks.2.1.conv.bias",
        "model.diffusion_model.middle_block.2.emb_layers.1.weight",
        "first_stage_model.decoder.up.0.block.3.nin_shortcut.weight",
        "first_stage_model.decoder.up.2.upsample.conv.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "first_stage_model.encoder.norm_out.bias",
    };
    static const int64_t shapes[][4] = {{1}, {1}, {1}, {1}, {1}, {1}, {1}, {8, 8, 1, 1}, {1}};
    static const int nd[] = {1, 1, 1, 1, 1, 1, 1, 4, 1};
    st_file *f = table(names, shapes, nd, 9);
    ldm_layout lay = {.unet_layers = 2, .vae_levels = 3, .vae_prefix = "first_stage_model."};
    st_file *v;
    char msg[256];
    CHECK(ldm_view(f, LDM_UNET, &lay, &v, msg, sizeof msg) == CS_OK);
    CHECK(st_find(v, "down_blocks.1.resnets.0.conv_shortcut.weight"));
    CHECK(st_find(v, "down_blocks.0.downsamplers.0.conv.weight"));
    CHECK(st_find(v, "up_blocks.1.upsamplers.0.conv.weight"));
    CHECK(st_find(v, "up_blocks.0.upsamplers.0.conv.bias"));
    CHECK(st_find(v, "mid_block.resnets.1.time_emb_proj.weight"));
    CHECK_EQ_INT(v->count, 5);
    st_close(v);
    CHECK(ldm_view(f, LDM_VAE, &lay, &v, msg, sizeof msg) == CS_OK);
    CHECK(st_find(v, "decoder.up_blocks.2.resnets.3.conv_shortcut.weight")); /* 3 - 1 - 0 */
    CHECK(st_find(v, "decoder.up_blocks.0.upsamplers.0.conv.weight"));
    const st_tensor *q = st_find(v, "encoder.mid_block.attentions.0.to_q.weight");
    CHECK(q && q->ndim == 2 && q->shape[0] == 8 && q->shape[1] == 8);
    CHECK(st_find(v, "encoder.conv_norm_out.bias"));
    st_close(v);
    st_close(f);
}

static void test_openclip(void) {
    static const char *const names[] = {
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
        "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight",
        "cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.bias",
        "cond_stage_model.model.positional_embedding",
        "cond_stage_model.model.text_projection",
    };
    static const int64_t shapes[][4] = {{6, 2}, {6, 2}, {4}, {3, 2}, {2, 2}};
    static const int nd[] = {2, 2, 1, 2, 2};
    st_file *f = table(names, shapes, nd, 5);
    ldm_layout lay = {.openclip = true, .text_layers = 1};
    st_file *v;
    char msg[256];
    CHECK(ldm_view(f, LDM_TEXT, &lay, &v, msg, sizeof msg) == CS_OK);
    const st_tensor *k = st_find(v, "text_model.encoder.layers.0.self_attn.k_proj.weight");
    const st_tensor *w = st_find(f, names[0]);
    CHECK(k && k->shape[0] == 2 && k->shape[1] == 2 && k->offset == w->offset + 16);
    CHECK(st_find(v, "text_model.encoder.layers.0.mlp.fc1.bias"));
    CHECK(st_find(v, "text_model.embeddings.position_embedding.weight"));
    CHECK(!st_find(v, "text_model.encoder.layers.1.self_attn.q_proj.weight")); /* dropped */
    CHECK_EQ_INT(v->count, 5); /* q, k, v, fc1, positions; projection dropped */
    st_close(v);
    st_close(f);
}

static void test_ema(void) {
    char big[101][64];
    const char *names[103];
    int64_t shapes[103][4];
    int nd[103];
    for (int i = 0; i < 101; i++) {
        snprintf(big[i], sizeof big[i], "model_ema.diffusion_modelx%d", i);
        names[i] = big[i];
    }
    names[101] = "model.diffusion_model.time_embed.0.weight";
    names[102] = "model_ema.diffusion_modeltime_embed0weight";
    for (int i = 0; i < 103; i++) {
        shapes[i][0] = 1;
        nd[i] = 1;
    }
    st_file *f = table(names, (const int64_t(*)[4])shapes, nd, 103);
    CHECK(ldm_has_ema(f));
    ldm_layout lay = {.unet_layers = 2, .unet_ema = true};
    st_file *v;
    char msg[256];
    CHECK(ldm_view(f, LDM_UNET, &lay, &v, msg, sizeof msg) == CS_OK);
    const st_tensor *t = v ? st_find(v, "time_embedding.linear_1.weight") : NULL;
    CHECK(t && t->offset == 102 * 4); /* the EMA twin's bytes */
    st_close(v);
    st_close(f);
}

#define CASE CS_GOLDEN_DIR "/pipeline_tiny_single_file/dpmsolver_karras_cfg"
#define TINY CS_GOLDEN_DIR "/pipeline_tiny/model"

static void test_loads(void) {
    FILE *probe = fopen(CASE "/model.safetensors", "rb");
    if (!probe) {
        printf("note: %s absent; file loads not tested\n", CASE);
        return;
    }
    fclose(probe);
    char msg[1024];
    cs_model *m = NULL;
    /* configs inferred from the tensors; tokenizer bundled */
    cs_load_params lp = {.path = CASE "/model.safetensors",
                         .text_encoder_config = TINY "/text_encoder"};
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_OK);
    if (!m) fprintf(stderr, "%s\n", msg);
    if (m) CHECK(m->scheduler != NULL);
    cs_model_free(m);
    /* text encoder config inferred too (heads = width / 64 differs from the tiny model's 4,
     * which only changes the attention split, so loading still succeeds) */
    lp.text_encoder_config = NULL;
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_OK);
    cs_model_free(m);
    /* wrong model type */
    lp.model_type = "sd2";
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "model type sd2 needs an OpenCLIP");
    lp.model_type = "sdxl";
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "sdxl");
    lp.model_type = NULL;
    /* an LDM config that disagrees with the tensors: shapes and missing keys named */
    char *dir = NULL;
    {
        const char *base = getenv("TMPDIR");
        char tmpl[256];
        snprintf(tmpl, sizeof tmpl, "%s/cs_ldm_XXXXXX", base && *base ? base : "/tmp");
        dir = strdup(mkdtemp(tmpl));
    }
    char path[512];
    snprintf(path, sizeof path, "%s/orig.json", dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"model\": {\"params\": {\"unet_config\": {\"params\": {\"model_channels\": 32, "
          "\"channel_mult\": [1, 2, 2], \"attention_resolutions\": [1], \"num_res_blocks\": 2, "
          "\"num_heads\": 8, \"context_dim\": 32}}, \"first_stage_config\": {\"params\": "
          "{\"ddconfig\": {\"ch\": 32, \"ch_mult\": [1, 2], \"num_res_blocks\": 2}}}}}}",
          fp);
    fclose(fp);
    lp.original_config = path;
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "model.safetensors: checkpoint does not match the model config");
    CHECK_STR_CONTAINS(msg, "missing tensor 'down_blocks.2.resnets.0");
    remove(path);
    lp.original_config = NULL;
    /* neither LDM nor diffusers: a diffusers component file given as a checkpoint */
    lp.path = TINY "/unet/diffusion_pytorch_model.safetensors";
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "diffusion_pytorch_model.safetensors: neither an LDM checkpoint");
    /* a missing file */
    lp.path = "/nonexistent/x.safetensors";
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_ERR_IO);
    CHECK_STR_CONTAINS(msg, "/nonexistent/x.safetensors");
    /* the folder still loads through the same entry point, with a replacement VAE folder */
    lp.path = TINY;
    lp.vae = TINY "/vae";
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_OK);
    cs_model_free(m);
    /* and with the checkpoint's VAE as an LDM file (first_stage_model.* keys) */
    lp.vae = CASE "/model.safetensors";
    CHECK(cs_model_load_ex(&lp, &m, msg, sizeof msg) == CS_OK);
    if (!m) fprintf(stderr, "%s\n", msg);
    cs_model_free(m);
    rmdir(dir);
    free(dir);
}

int main(void) {
    test_unet_and_vae_names();
    test_openclip();
    test_ema();
    test_loads();
    CHECK_DONE();
}
