/* Single-file checkpoint configs (see ldm_config.h for the rules). */
#include "ldm_config.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { MAX_LEVELS = 8 };

typedef struct unet_arch {
    int64_t model_channels, in_channels, out_channels, context_dim, depth;
    int levels, layers;
    int64_t mult[MAX_LEVELS], heads[MAX_LEVELS];
    bool attn[MAX_LEVELS], linear;
} unet_arch;

typedef struct vae_arch {
    int64_t ch, in_channels, out_channels, z_channels;
    int levels, layers;
    int64_t mult[MAX_LEVELS];
} vae_arch;

/* ---- the LDM config tree ---- */

static const cJSON *jpath(const cJSON *j, const char *path) {
    char key[64];
    while (j && *path) {
        size_t len = strcspn(path, ".");
        if (len >= sizeof key) return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        j = cJSON_GetObjectItemCaseSensitive(j, key);
        path += len + (path[len] == '.');
    }
    return j;
}

/* An integer field; def when absent; false (with msg) when present but not an integer in
 * [lo, hi]. */
static bool jint(const cJSON *j, const char *key, int64_t def, int64_t lo, int64_t hi,
                 int64_t *out, const char *where, char *msg, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        cs_errf(CS_ERR_FORMAT, msg, n, "original config: %s.%s must be an integer in [%lld, %lld]",
                where, key, (long long)lo, (long long)hi);
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

static int jint_list(const cJSON *j, const char *key, int64_t *out, int max) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsNumber(v) && max >= 1) {
        out[0] = (int64_t)v->valuedouble;
        return 1;
    }
    if (!cJSON_IsArray(v)) return -1;
    int k = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || k == max || e->valuedouble < 0 || e->valuedouble > 1e6) return -1;
        out[k++] = (int64_t)e->valuedouble;
    }
    return k;
}

static cs_status unet_from_config(const cJSON *root, unet_arch *a, char *msg, size_t n) {
    const char *w = "model.params.unet_config.params";
    const cJSON *p = jpath(root, w);
    if (!cJSON_IsObject(p))
        return cs_errf(CS_ERR_FORMAT, msg, n, "original config: no %s object", w);
    int64_t layers, heads, head_ch;
    if (!jint(p, "model_channels", -1, 1, 1 << 16, &a->model_channels, w, msg, n) ||
        !jint(p, "in_channels", 4, 1, 64, &a->in_channels, w, msg, n) ||
        !jint(p, "out_channels", 4, 1, 64, &a->out_channels, w, msg, n) ||
        !jint(p, "num_res_blocks", -1, 1, 16, &layers, w, msg, n) ||
        !jint(p, "num_heads", -1, 1, 4096, &heads, w, msg, n) ||
        !jint(p, "num_head_channels", -1, 1, 1 << 16, &head_ch, w, msg, n) ||
        !jint(p, "transformer_depth", 1, 1, 64, &a->depth, w, msg, n))
        return CS_ERR_FORMAT;
    if (a->model_channels < 0 || layers < 0)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "original config: %s needs model_channels and num_res_blocks", w);
    a->layers = (int)layers;
    int64_t ctx[1];
    if (jint_list(p, "context_dim", ctx, 1) != 1)
        return cs_errf(CS_ERR_FORMAT, msg, n, "original config: %s.context_dim missing or invalid",
                       w);
    a->context_dim = ctx[0];
    a->levels = jint_list(p, "channel_mult", a->mult, MAX_LEVELS);
    if (a->levels < 1)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "original config: %s.channel_mult must be a list of 1 to %d integers", w,
                       MAX_LEVELS);
    int64_t res[MAX_LEVELS];
    int nres = jint_list(p, "attention_resolutions", res, MAX_LEVELS);
    if (nres < 0)
        return cs_errf(CS_ERR_FORMAT, msg, n, "original config: %s.attention_resolutions invalid",
                       w);
    /* diffusers: level i has attention when its downsampling factor 2^i is listed */
    for (int l = 0; l < a->levels; l++) {
        a->attn[l] = false;
        for (int k = 0; k < nres; k++) a->attn[l] |= res[k] == ((int64_t)1 << l);
        a->mult[l] *= a->model_channels;
    }
    const cJSON *lin = cJSON_GetObjectItemCaseSensitive(p, "use_linear_in_transformer");
    a->linear = cJSON_IsTrue(lin);
    for (int l = 0; l < a->levels; l++) {
        if (heads > 0) a->heads[l] = heads;
        else if (head_ch > 0) a->heads[l] = a->mult[l] / head_ch;
        else a->heads[l] = 8; /* diffusers' default attention_head_dim */
    }
    return CS_OK;
}

static cs_status vae_from_config(const cJSON *root, vae_arch *a, char *msg, size_t n) {
    const char *w = "model.params.first_stage_config.params.ddconfig";
    const cJSON *p = jpath(root, w);
    if (!cJSON_IsObject(p))
        return cs_errf(CS_ERR_FORMAT, msg, n, "original config: no %s object", w);
    int64_t layers;
    if (!jint(p, "ch", -1, 1, 1 << 16, &a->ch, w, msg, n) ||
        !jint(p, "in_channels", 3, 1, 64, &a->in_channels, w, msg, n) ||
        !jint(p, "out_ch", 3, 1, 64, &a->out_channels, w, msg, n) ||
        !jint(p, "z_channels", 4, 1, 64, &a->z_channels, w, msg, n) ||
        !jint(p, "num_res_blocks", -1, 1, 16, &layers, w, msg, n))
        return CS_ERR_FORMAT;
    if (a->ch < 0 || layers < 0)
        return cs_errf(CS_ERR_FORMAT, msg, n, "original config: %s needs ch and num_res_blocks", w);
    a->layers = (int)layers;
    a->levels = jint_list(p, "ch_mult", a->mult, MAX_LEVELS);
    if (a->levels < 1)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "original config: %s.ch_mult must be a list of 1 to %d integers", w,
                       MAX_LEVELS);
    for (int l = 0; l < a->levels; l++) a->mult[l] *= a->ch;
    return CS_OK;
}

/* ---- inference from the tensors ---- */

static const st_tensor *findf(const st_file *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const st_tensor *findf(const st_file *f, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return len > 0 && (size_t)len < sizeof name ? st_find(f, name) : NULL;
}

#define U "model.diffusion_model."

static cs_status unet_from_tensors(const st_file *f, unet_arch *a, char *msg, size_t n) {
    const st_tensor *in = findf(f, U "input_blocks.0.0.weight"), *out = findf(f, U "out.2.weight");
    if (!in || in->ndim != 4 || !out || out->ndim != 4)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: no LDM UNet (model.diffusion_model.input_blocks.0.0.weight / "
                       "out.2.weight as 4-D convolutions)",
                       f->path);
    a->model_channels = in->shape[0];
    a->in_channels = in->shape[1];
    a->out_channels = out->shape[0];
    const int blocks = ldm_count_index(f, U "input_blocks.");
    a->levels = 1;
    for (int i = 1; i < blocks; i++) a->levels += findf(f, U "input_blocks.%d.0.op.weight", i) != NULL;
    a->layers = (blocks - a->levels) / a->levels;
    if (a->levels > MAX_LEVELS || a->layers < 1 ||
        blocks != a->levels * (a->layers + 1) || a->model_channels < 1)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: %d UNet input blocks with %d downsamplers is no LDM UNet layout",
                       f->path, blocks, a->levels - 1);
    a->context_dim = 0;
    a->depth = 1;
    for (int l = 0; l < a->levels; l++) {
        const int first = 1 + l * (a->layers + 1);
        const st_tensor *r = findf(f, U "input_blocks.%d.0.out_layers.3.weight", first);
        if (!r || r->ndim != 4)
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: missing tensor '" U
                           "input_blocks.%d.0.out_layers.3.weight'", f->path, first);
        a->mult[l] = r->shape[0];
        const st_tensor *p = findf(f, U "input_blocks.%d.1.proj_in.weight", first);
        a->attn[l] = p != NULL;
        if (!p) continue;
        a->linear = p->ndim == 2;
        char prefix[128];
        snprintf(prefix, sizeof prefix, U "input_blocks.%d.1.transformer_blocks.", first);
        a->depth = ldm_count_index(f, prefix);
        const st_tensor *k = findf(f, "%s0.attn2.to_k.weight", prefix);
        if (!k || k->ndim != 2)
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: missing tensor '%s0.attn2.to_k.weight'",
                           f->path, prefix);
        a->context_dim = k->shape[1];
    }
    for (int l = 0; l < a->levels; l++)
        a->heads[l] = a->linear ? (a->mult[l] >= 64 ? a->mult[l] / 64 : 1) : 8;
    return CS_OK;
}

static cs_status vae_from_tensors(const st_file *f, const char *vp, vae_arch *a, char *msg,
                                  size_t n) {
    const st_tensor *in = findf(f, "%sencoder.conv_in.weight", vp);
    const st_tensor *out = findf(f, "%sdecoder.conv_out.weight", vp);
    const st_tensor *z = findf(f, "%spost_quant_conv.weight", vp);
    if (!in || in->ndim != 4 || !out || out->ndim != 4 || !z || z->ndim != 4)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: no LDM VAE (%sencoder.conv_in, decoder.conv_out, post_quant_conv)",
                       f->path, vp);
    a->ch = in->shape[0];
    a->in_channels = in->shape[1];
    a->out_channels = out->shape[0];
    a->z_channels = z->shape[0];
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%sencoder.down.", vp);
    a->levels = ldm_count_index(f, prefix);
    snprintf(prefix, sizeof prefix, "%sencoder.down.0.block.", vp);
    a->layers = ldm_count_index(f, prefix);
    if (a->levels < 1 || a->levels > MAX_LEVELS || a->layers < 1)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: %d VAE encoder levels is no LDM VAE layout",
                       f->path, a->levels);
    for (int l = 0; l < a->levels; l++) {
        const st_tensor *c = findf(f, "%sencoder.down.%d.block.0.conv2.weight", vp, l);
        if (!c || c->ndim != 4)
            return cs_errf(CS_ERR_FORMAT, msg, n,
                           "%s: missing tensor '%sencoder.down.%d.block.0.conv2.weight'", f->path,
                           vp, l);
        a->mult[l] = c->shape[0];
    }
    return CS_OK;
}

/* ---- diffusers JSON ---- */

static void list_json(char *buf, size_t size, const int64_t *v, int count) {
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < count && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? ", " : "", (long long)v[i]);
    if (at < size) snprintf(buf + at, size - at, "]");
}

static void types_json(char *buf, size_t size, const bool *attn, int count, bool up,
                       const char *with, const char *without) {
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < count && at < size; i++) {
        bool a = attn[up ? count - 1 - i : i];
        at += (size_t)snprintf(buf + at, size - at, "%s\"%s\"", i ? ", " : "", a ? with : without);
    }
    if (at < size) snprintf(buf + at, size - at, "]");
}

static void unet_json(const unet_arch *a, int64_t sample_size, char *buf, size_t size) {
    char boc[160], heads[160], down[400], up[400];
    list_json(boc, sizeof boc, a->mult, a->levels);
    list_json(heads, sizeof heads, a->heads, a->levels);
    types_json(down, sizeof down, a->attn, a->levels, false, "CrossAttnDownBlock2D", "DownBlock2D");
    types_json(up, sizeof up, a->attn, a->levels, true, "CrossAttnUpBlock2D", "UpBlock2D");
    snprintf(buf, size,
             "{\"_class_name\": \"UNet2DConditionModel\", \"sample_size\": %lld, "
             "\"in_channels\": %lld, \"out_channels\": %lld, \"down_block_types\": %s, "
             "\"up_block_types\": %s, \"block_out_channels\": %s, \"layers_per_block\": %d, "
             "\"cross_attention_dim\": %lld, \"attention_head_dim\": %s, "
             "\"use_linear_projection\": %s, \"transformer_layers_per_block\": %lld}",
             (long long)sample_size, (long long)a->in_channels, (long long)a->out_channels, down,
             up, boc, a->layers, (long long)a->context_dim, heads, a->linear ? "true" : "false",
             (long long)a->depth);
}

static void vae_json(const vae_arch *a, double scale, int64_t image_size, char *buf,
                     size_t size) {
    char boc[160], down[400], up[400];
    bool none[MAX_LEVELS] = {false};
    list_json(boc, sizeof boc, a->mult, a->levels);
    types_json(down, sizeof down, none, a->levels, false, "", "DownEncoderBlock2D");
    types_json(up, sizeof up, none, a->levels, false, "", "UpDecoderBlock2D");
    snprintf(buf, size,
             "{\"_class_name\": \"AutoencoderKL\", \"sample_size\": %lld, \"in_channels\": %lld, "
             "\"out_channels\": %lld, \"down_block_types\": %s, \"up_block_types\": %s, "
             "\"block_out_channels\": %s, \"latent_channels\": %lld, \"layers_per_block\": %d, "
             "\"scaling_factor\": %.17g}",
             (long long)image_size, (long long)a->in_channels, (long long)a->out_channels, down,
             up, boc, (long long)a->z_channels, a->layers, scale);
}

cs_status ldm_text_config_json(const st_file *v, bool sd2, char *buf, size_t size, char *msg,
                               size_t n) {
    const st_tensor *tok = st_find(v, "text_model.embeddings.token_embedding.weight");
    const st_tensor *pos = st_find(v, "text_model.embeddings.position_embedding.weight");
    const st_tensor *fc1 = st_find(v, "text_model.encoder.layers.0.mlp.fc1.weight");
    const int layers = ldm_count_index(v, "text_model.encoder.layers.");
    if (!tok || tok->ndim != 2 || !pos || pos->ndim != 2 || !fc1 || fc1->ndim != 2 || layers < 1)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: no CLIP text encoder (token/position embeddings, encoder layers)",
                       v->path);
    const int64_t d = tok->shape[1];
    snprintf(buf, size,
             "{\"architectures\": [\"CLIPTextModel\"], \"model_type\": \"clip_text_model\", "
             "\"vocab_size\": %lld, \"hidden_size\": %lld, \"intermediate_size\": %lld, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %lld, "
             "\"max_position_embeddings\": %lld, \"hidden_act\": \"%s\", "
             "\"layer_norm_eps\": 1e-05, \"eos_token_id\": 2}",
             (long long)tok->shape[0], (long long)d, (long long)fc1->shape[0], layers,
             (long long)(d >= 64 ? d / 64 : 1), (long long)pos->shape[0],
             sd2 ? "gelu" : "quick_gelu");
    return CS_OK;
}

/* ---- the whole model ---- */

static bool has_prefix(const st_file *f, const char *prefix) {
    size_t len = strlen(prefix);
    for (int64_t i = 0; i < f->count; i++)
        if (strncmp(f->tensors[i].name, prefix, len) == 0) return true;
    return false;
}

cs_status ldm_vae_config(const st_file *f, double scaling_factor, ldm_config *out, char *msg,
                         size_t n) {
    memset(out, 0, sizeof *out);
    const char *vp = has_prefix(f, "first_stage_model.") ? "first_stage_model." : "";
    vae_arch v = {0};
    cs_status st = vae_from_tensors(f, vp, &v, msg, n);
    if (st != CS_OK) return st;
    vae_json(&v, scaling_factor, 512, out->vae_json, sizeof out->vae_json);
    out->layout.vae_levels = v.levels;
    out->layout.vae_prefix = vp;
    return CS_OK;
}

cs_status ldm_config_build(const st_file *ckpt, const cJSON *original,
                           const char *model_type, const char *prediction_type,
                           int64_t global_step, ldm_config *out, char *msg, size_t n) {
    memset(out, 0, sizeof *out);
    cs_status st;
    /* model type */
    const bool openclip = has_prefix(ckpt, "cond_stage_model.model.");
    if (!openclip && !has_prefix(ckpt, "cond_stage_model.transformer."))
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: neither an LDM checkpoint (no cond_stage_model.transformer.* or "
                       "cond_stage_model.model.* text encoder, model.diffusion_model.* UNet) nor "
                       "a diffusers model (a folder)",
                       ckpt->path);
    out->sd2 = openclip;
    const cJSON *target = jpath(original, "model.params.cond_stage_config.target");
    if (cJSON_IsString(target)) out->sd2 = strstr(target->valuestring, "OpenCLIP") != NULL;
    if (model_type) {
        if (strcmp(model_type, "sd1") && strcmp(model_type, "sd2"))
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "model type \"%s\" is not one of sd1, sd2", model_type);
        out->sd2 = strcmp(model_type, "sd2") == 0;
    }
    if (out->sd2 != openclip)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: model type %s needs %s text encoder, but the checkpoint holds %s",
                       ckpt->path, out->sd2 ? "sd2" : "sd1",
                       out->sd2 ? "an OpenCLIP (cond_stage_model.model.*)"
                                : "a CLIP (cond_stage_model.transformer.*)",
                       openclip ? "OpenCLIP" : "CLIP");

    unet_arch u = {0};
    vae_arch v = {0};
    const char *vp = "first_stage_model.";
    if (original) {
        if (!cJSON_IsObject(original) || !cJSON_IsObject(jpath(original, "model.params")))
            return cs_errf(CS_ERR_FORMAT, msg, n, "original config: no model.params object");
        if ((st = unet_from_config(original, &u, msg, n)) != CS_OK) return st;
    } else if ((st = unet_from_tensors(ckpt, &u, msg, n)) != CS_OK) {
        return st;
    }
    if (original) st = vae_from_config(original, &v, msg, n);
    else st = vae_from_tensors(ckpt, vp, &v, msg, n);
    if (st != CS_OK) return st;

    /* prediction type and image size */
    const cJSON *param = jpath(original, "model.params.parameterization");
    bool v_pred = original ? cJSON_IsString(param) && strcmp(param->valuestring, "v") == 0
                           : out->sd2 && u.context_dim == 1024;
    if (v_pred && global_step == 875000) v_pred = false; /* SD 2 base */
    if (prediction_type) {
        if (strcmp(prediction_type, "epsilon") && strcmp(prediction_type, "v_prediction"))
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "prediction type \"%s\" is not one of epsilon, v_prediction",
                           prediction_type);
        v_pred = strcmp(prediction_type, "v_prediction") == 0;
    }
    out->v_prediction = v_pred;
    const int64_t image_size = v_pred ? 768 : 512;
    const int64_t vae_factor = (int64_t)1 << (v.levels - 1);

    double scale = 0.18215, beta_start = 0.00085, beta_end = 0.012;
    int64_t steps = 1000;
    const cJSON *mp = jpath(original, "model.params");
    const cJSON *x;
    if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(mp, "scale_factor"))) scale = x->valuedouble;
    if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(mp, "linear_start"))) beta_start = x->valuedouble;
    if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(mp, "linear_end"))) beta_end = x->valuedouble;
    if (mp && !jint(mp, "timesteps", 1000, 1, 100000, &steps, "model.params", msg, n))
        return CS_ERR_FORMAT;

    unet_json(&u, image_size / vae_factor, out->unet_json, sizeof out->unet_json);
    vae_json(&v, scale, image_size, out->vae_json, sizeof out->vae_json);
    snprintf(out->sched_json, sizeof out->sched_json,
             "{\"_class_name\": \"PNDMScheduler\", \"beta_start\": %.17g, \"beta_end\": %.17g, "
             "\"beta_schedule\": \"scaled_linear\", \"num_train_timesteps\": %lld, "
             "\"prediction_type\": \"%s\", \"steps_offset\": 1, \"clip_sample\": false, "
             "\"set_alpha_to_one\": false, \"skip_prk_steps\": true}",
             beta_start, beta_end, (long long)steps, v_pred ? "v_prediction" : "epsilon");

    out->layout.unet_layers = u.layers;
    out->layout.vae_levels = v.levels;
    out->layout.vae_prefix = vp;
    out->layout.unet_ema = ldm_has_ema(ckpt);
    out->layout.openclip = openclip;
    out->layout.text_layers = ldm_count_index(ckpt, "cond_stage_model.model.transformer.resblocks.") - 1;
    return CS_OK;
}
