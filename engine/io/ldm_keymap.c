/*
 * LDM -> diffusers renaming views (see ldm_keymap.h). Each component is one table of
 * prefix rules: `from` is matched against the name (after the component prefix), '#'
 * standing for a block number; `to` is the diffusers prefix, a printf format taking the
 * numbers after their index transform; the rest of the name is then renamed by the
 * rule's leaf table (resnet / attention parameter names) or kept as is.
 */
#include "ldm_keymap.h"

#include <stdio.h>
#include <string.h>

typedef enum ix_kind {
    IX_NONE,
    IX_SAME,    /* numbers kept */
    IX_INPUT,   /* UNet input_blocks.i -> (level, layer) = divmod(i - 1, layers + 1) */
    IX_OUTPUT,  /* UNet output_blocks.i -> divmod(i, layers + 1) */
    IX_REVERSE, /* VAE decoder.up.i -> up_blocks.(levels - 1 - i) */
    IX_KEEP,    /* OpenCLIP resblocks.i, dropped when i >= text_layers */
} ix_kind;

typedef enum op_kind { OP_KEEP, OP_SQUEEZE_1X1, OP_SPLIT_QKV } op_kind;

typedef struct leaf_rule {
    const char *from, *to;
    op_kind op;
} leaf_rule;

typedef struct map_rule {
    const char *from;
    const char *to; /* NULL: a tensor diffusers drops (never used for inference) */
    ix_kind ix;
    const leaf_rule *leaf;
} map_rule;

/* openaimodel ResBlock -> diffusers ResnetBlock2D. */
static const leaf_rule k_unet_resnet[] = {
    {"in_layers.0.", "norm1.", OP_KEEP},        {"in_layers.2.", "conv1.", OP_KEEP},
    {"out_layers.0.", "norm2.", OP_KEEP},       {"out_layers.3.", "conv2.", OP_KEEP},
    {"emb_layers.1.", "time_emb_proj.", OP_KEEP}, {"skip_connection.", "conv_shortcut.", OP_KEEP},
    {NULL, NULL, OP_KEEP},
};
static const leaf_rule k_vae_resnet[] = {
    {"nin_shortcut.", "conv_shortcut.", OP_KEEP},
    {NULL, NULL, OP_KEEP},
};
/* AttnBlock's q/k/v/proj_out are 1x1 convs; diffusers' Attention uses Linear layers. */
static const leaf_rule k_vae_attn[] = {
    {"norm.", "group_norm.", OP_KEEP},      {"q.", "to_q.", OP_SQUEEZE_1X1},
    {"k.", "to_k.", OP_SQUEEZE_1X1},        {"v.", "to_v.", OP_SQUEEZE_1X1},
    {"proj_out.", "to_out.0.", OP_SQUEEZE_1X1}, {NULL, NULL, OP_KEEP},
};
/* OpenCLIP ResidualAttentionBlock -> transformers CLIPEncoderLayer. */
static const leaf_rule k_clip_layer[] = {
    {"ln_1.", "layer_norm1.", OP_KEEP},   {"ln_2.", "layer_norm2.", OP_KEEP},
    {"mlp.c_fc.", "mlp.fc1.", OP_KEEP},   {"mlp.c_proj.", "mlp.fc2.", OP_KEEP},
    {"attn.out_proj.", "self_attn.out_proj.", OP_KEEP},
    {"attn.in_proj_", "self_attn.%s_proj.", OP_SPLIT_QKV}, /* + "weight" / "bias" */
    {NULL, NULL, OP_KEEP},
};

static const map_rule k_unet[] = {
    {"time_embed.0.", "time_embedding.linear_1.", IX_NONE, NULL},
    {"time_embed.2.", "time_embedding.linear_2.", IX_NONE, NULL},
    {"input_blocks.0.0.", "conv_in.", IX_NONE, NULL},
    {"out.0.", "conv_norm_out.", IX_NONE, NULL},
    {"out.2.", "conv_out.", IX_NONE, NULL},
    {"middle_block.0.", "mid_block.resnets.0.", IX_NONE, k_unet_resnet},
    {"middle_block.1.", "mid_block.attentions.0.", IX_NONE, NULL},
    {"middle_block.2.", "mid_block.resnets.1.", IX_NONE, k_unet_resnet},
    {"input_blocks.#.0.op.", "down_blocks.%d.downsamplers.0.conv.", IX_INPUT, NULL},
    {"input_blocks.#.0.", "down_blocks.%d.resnets.%d.", IX_INPUT, k_unet_resnet},
    {"input_blocks.#.1.", "down_blocks.%d.attentions.%d.", IX_INPUT, NULL},
    {"output_blocks.#.0.", "up_blocks.%d.resnets.%d.", IX_OUTPUT, k_unet_resnet},
    /* the upsampler follows the resnet (and the attention, when the level has one) */
    {"output_blocks.#.#.conv.", "up_blocks.%d.upsamplers.0.conv.", IX_OUTPUT, NULL},
    {"output_blocks.#.1.", "up_blocks.%d.attentions.%d.", IX_OUTPUT, NULL},
    {NULL, NULL, IX_NONE, NULL},
};

static const map_rule k_vae[] = {
    {"encoder.norm_out.", "encoder.conv_norm_out.", IX_NONE, NULL},
    {"decoder.norm_out.", "decoder.conv_norm_out.", IX_NONE, NULL},
    {"encoder.down.#.block.#.", "encoder.down_blocks.%d.resnets.%d.", IX_SAME, k_vae_resnet},
    {"encoder.down.#.downsample.conv.", "encoder.down_blocks.%d.downsamplers.0.conv.", IX_SAME,
     NULL},
    {"decoder.up.#.block.#.", "decoder.up_blocks.%d.resnets.%d.", IX_REVERSE, k_vae_resnet},
    {"decoder.up.#.upsample.conv.", "decoder.up_blocks.%d.upsamplers.0.conv.", IX_REVERSE, NULL},
    {"encoder.mid.block_1.", "encoder.mid_block.resnets.0.", IX_NONE, k_vae_resnet},
    {"encoder.mid.block_2.", "encoder.mid_block.resnets.1.", IX_NONE, k_vae_resnet},
    {"decoder.mid.block_1.", "decoder.mid_block.resnets.0.", IX_NONE, k_vae_resnet},
    {"decoder.mid.block_2.", "decoder.mid_block.resnets.1.", IX_NONE, k_vae_resnet},
    {"encoder.mid.attn_1.", "encoder.mid_block.attentions.0.", IX_NONE, k_vae_attn},
    {"decoder.mid.attn_1.", "decoder.mid_block.attentions.0.", IX_NONE, k_vae_attn},
    {"", "", IX_NONE, NULL}, /* conv_in, conv_out, quant_conv, post_quant_conv: same names */
};

/* SD 1.x: the transformers CLIPTextModel state dict, with or without "text_model.". */
static const map_rule k_clip[] = {
    {"text_model.", "text_model.", IX_NONE, NULL},
    {"", "text_model.", IX_NONE, NULL},
};

/* SD 2.x: OpenCLIP's text tower (diffusers 0.27 convert_open_clip_checkpoint). */
static const map_rule k_openclip[] = {
    {"positional_embedding", "text_model.embeddings.position_embedding.weight", IX_NONE, NULL},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight", IX_NONE, NULL},
    {"ln_final.", "text_model.final_layer_norm.", IX_NONE, NULL},
    {"text_projection", NULL, IX_NONE, NULL}, /* CLIPTextModel has no projection */
    {"logit_scale", NULL, IX_NONE, NULL},
    {"transformer.resblocks.#.", "text_model.encoder.layers.%d.", IX_KEEP, k_clip_layer},
    {NULL, NULL, IX_NONE, NULL},
};

enum { MAX_CAPS = 2, NAME_MAX_LEN = 256 };

/* The formats come from the tables above only (never from a file). */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"


/* Matches pattern against the start of s ('#' = 1..6 digits); returns the length of s
 * consumed, or -1. */
static int match(const char *pattern, const char *s, int *caps, int *ncaps) {
    const char *p = pattern, *q = s;
    *ncaps = 0;
    while (*p) {
        if (*p == '#') {
            if (*q < '0' || *q > '9' || *ncaps == MAX_CAPS) return -1;
            int v = 0, digits = 0;
            while (*q >= '0' && *q <= '9') {
                if (++digits > 6) return -1;
                v = v * 10 + (*q++ - '0');
            }
            caps[(*ncaps)++] = v;
            p++;
        } else if (*p++ != *q++) {
            return -1;
        }
    }
    return (int)(q - s);
}

/* The diffusers block numbers for a rule's captures; false when out of range (the name
 * is then kept so the binder reports it) or, for IX_KEEP, when the tensor is dropped. */
static bool transform(ix_kind ix, const ldm_layout *lay, const int *caps, int *out, bool *drop) {
    const int per = lay->unet_layers + 1;
    out[0] = caps[0];
    out[1] = caps[1];
    switch (ix) {
    case IX_NONE:
    case IX_SAME:
        return true;
    case IX_INPUT:
        if (caps[0] < 1 || per < 2) return false;
        out[0] = (caps[0] - 1) / per;
        out[1] = (caps[0] - 1) % per;
        return true;
    case IX_OUTPUT:
        if (per < 2) return false;
        out[0] = caps[0] / per;
        out[1] = caps[0] % per;
        return true;
    case IX_REVERSE:
        if (caps[0] >= lay->vae_levels) return false;
        out[0] = lay->vae_levels - 1 - caps[0];
        return true;
    case IX_KEEP:
        *drop = caps[0] >= lay->text_layers;
        return true;
    }
    return false;
}

/* Appends src tensor t to the view as `name`, applying op. */
static cs_status emit(st_file *v, const st_tensor *t, const char *name, const char *leaf_to,
                      const char *tail, op_kind op, char *msg, size_t n) {
    char full[NAME_MAX_LEN];
    int64_t shape[ST_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    int ndim = t->ndim;
    if (op == OP_SPLIT_QKV) {
        if (ndim < 1 || shape[0] % 3 != 0)
            return cs_errf(CS_ERR_FORMAT, msg, n,
                           "%s: tensor '%s': a fused q/k/v projection needs a first dimension "
                           "divisible by 3",
                           v->path, t->name);
        shape[0] /= 3;
        const size_t part = t->nbytes / 3;
        static const char *const qkv[3] = {"q", "k", "v"};
        for (int i = 0; i < 3; i++) {
            char leaf[64];
            snprintf(leaf, sizeof leaf, leaf_to, qkv[i]);
            if ((size_t)snprintf(full, sizeof full, "%s%s%s", name, leaf, tail) >= sizeof full)
                return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor name too long: '%s'", v->path,
                               t->name);
            cs_status st = st_append(v, full, t->dtype, ndim, shape, t->offset + i * part, msg, n);
            if (st != CS_OK) return st;
        }
        return CS_OK;
    }
    if (op == OP_SQUEEZE_1X1 && ndim == 4 && shape[2] == 1 && shape[3] == 1) ndim = 2;
    if ((size_t)snprintf(full, sizeof full, "%s%s%s", name, leaf_to ? leaf_to : "", tail) >=
        sizeof full)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor name too long: '%s'", v->path, t->name);
    return st_append(v, full, t->dtype, ndim, shape, t->offset, msg, n);
}

/* Renames one tensor whose component-relative name is rel. */
static cs_status map_one(st_file *v, const st_tensor *t, const char *rel, const map_rule *rules,
                         const ldm_layout *lay, char *msg, size_t n) {
    for (const map_rule *r = rules; r->from; r++) {
        int caps[MAX_CAPS] = {0, 0}, ncaps, ix[MAX_CAPS];
        int used = match(r->from, rel, caps, &ncaps);
        if (used < 0) continue;
        bool drop = false;
        if (!transform(r->ix, lay, caps, ix, &drop)) break; /* keep the name: reported */
        if (drop || !r->to) return CS_OK;
        char prefix[NAME_MAX_LEN];
        snprintf(prefix, sizeof prefix, r->to, ix[0], ix[1]);
        const char *tail = rel + used;
        for (const leaf_rule *l = r->leaf; l && l->from; l++) {
            size_t len = strlen(l->from);
            if (strncmp(tail, l->from, len) == 0)
                return emit(v, t, prefix, l->to, tail + len, l->op, msg, n);
        }
        return emit(v, t, prefix, NULL, tail, OP_KEEP, msg, n);
    }
    return emit(v, t, "", NULL, rel, OP_KEEP, msg, n);
}

static bool starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool ldm_has_ema(const st_file *src) {
    int64_t count = 0;
    for (int64_t i = 0; i < src->count; i++) count += starts_with(src->tensors[i].name, "model_ema");
    return count > 100;
}

int ldm_count_index(const st_file *src, const char *prefix) {
    int most = 0;
    const size_t len = strlen(prefix);
    for (int64_t i = 0; i < src->count; i++) {
        const char *s = src->tensors[i].name;
        if (strncmp(s, prefix, len) != 0) continue;
        int caps[MAX_CAPS], ncaps;
        if (match("#.", s + len, caps, &ncaps) > 0 && caps[0] + 1 > most) most = caps[0] + 1;
    }
    return most;
}

/* LitEma stores model.diffusion_model.a.b as model_ema.diffusion_modelab. */
static const st_tensor *ema_twin(const st_file *src, const char *name) {
    char key[NAME_MAX_LEN] = "model_ema.";
    size_t at = strlen(key);
    for (const char *p = strchr(name, '.') + 1; *p && at + 1 < sizeof key; p++)
        if (*p != '.') key[at++] = *p;
    key[at] = '\0';
    return st_find(src, key);
}

cs_status ldm_view(const st_file *src, ldm_component component, const ldm_layout *lay,
                   st_file **out, char *msg, size_t n) {
    const char *prefix = "";
    const map_rule *rules = NULL;
    switch (component) {
    case LDM_UNET:
        prefix = "model.diffusion_model.";
        rules = k_unet;
        break;
    case LDM_VAE:
        prefix = lay->vae_prefix ? lay->vae_prefix : "first_stage_model.";
        rules = k_vae;
        break;
    case LDM_TEXT:
        prefix = lay->openclip ? "cond_stage_model.model." : "cond_stage_model.transformer.";
        rules = lay->openclip ? k_openclip : k_clip;
        break;
    }
    st_file *v;
    cs_status st = st_new_table(src->path, src->data, src->size, &v, msg, n);
    if (st != CS_OK) return st;
    v->file_pages = src->file_pages;
    const size_t plen = strlen(prefix);
    for (int64_t i = 0; i < src->count && st == CS_OK; i++) {
        const st_tensor *t = &src->tensors[i];
        if (strncmp(t->name, prefix, plen) != 0) continue;
        /* a bare VAE file may carry EMA bookkeeping or the training loss's discriminator */
        if (component == LDM_VAE && plen == 0 &&
            (starts_with(t->name, "model_ema") || starts_with(t->name, "loss.")))
            continue;
        const st_tensor *data = t;
        if (component == LDM_UNET && lay->unet_ema && !(data = ema_twin(src, t->name))) {
            st = cs_errf(CS_ERR_FORMAT, msg, n,
                         "%s: the checkpoint holds EMA weights (over 100 model_ema.* tensors) "
                         "but tensor '%s' has no EMA twin",
                         src->path, t->name);
            break;
        }
        if (data != t && (data->ndim != t->ndim ||
                          memcmp(data->shape, t->shape, sizeof t->shape[0] * (size_t)t->ndim))) {
            st = cs_errf(CS_ERR_FORMAT, msg, n,
                         "%s: EMA tensor '%s' and '%s' differ in shape", src->path, data->name,
                         t->name);
            break;
        }
        st_tensor view = *data;
        view.name = t->name;
        st = map_one(v, &view, t->name + plen, rules, lay, msg, n);
    }
    if (st == CS_OK) st = st_finish(v, msg, n);
    if (st != CS_OK) {
        st_close(v);
        return st;
    }
    *out = v;
    return CS_OK;
}
