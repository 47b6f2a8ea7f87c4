/*
 * Strict reading of a diffusers UNet2DConditionModel config.json (see unet_config.h).
 * Every argument of UNet2DConditionModel.__init__ (diffusers 0.27) is either honoured,
 * required to have the one value the engine implements, or named as having no effect on
 * the block types supported here (diffusers itself passes it only to other block types).
 * Defaults are diffusers' own. Single-threaded; used only while loading.
 */
#include "unet_config.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "config.h"

/* diffusers tells an absent field (its default) from an explicit null (None); the generic
 * reader treats both as absent, so the few fields where they differ are looked up here. */
static bool is_explicit_null(const cfg_reader *r, const char *key) {
    const cJSON *c = r->status == CS_OK ? cJSON_GetObjectItemCaseSensitive(r->root, key) : NULL;
    return c && cJSON_IsNull(c);
}

static const char *const k_silu_names[] = {"silu", "swish", NULL}; /* both are nn.SiLU */

/* A string list of block types, each one of `a` or `b` (diffusers strips a leading
 * "UNetRes"); is_a[i] says which. Absent: the defaults `def` (n_def entries). */
static int read_block_types(cfg_reader *r, const char *key, const char *a, const char *b,
                            const char *const *def, int n_def, bool *is_a) {
    const char *types[UNET_MAX_BLOCKS];
    int n = cfg_string_list(r, key, types, UNET_MAX_BLOCKS);
    if (n == 0 && r->status == CS_OK) {
        n = n_def;
        memcpy(types, def, (size_t)n_def * sizeof *def);
    }
    for (int i = 0; i < n; i++) {
        const char *t = strncmp(types[i], "UNetRes", 7) == 0 ? types[i] + 7 : types[i];
        is_a[i] = strcmp(t, a) == 0;
        if (!is_a[i] && strcmp(t, b) != 0) {
            cfg_fail(r, "field '%s'[%d] = \"%s\" is not supported (supported: %s, %s)", key, i,
                     types[i], a, b);
            return n;
        }
    }
    return n;
}

/* An int or a per-block list of n ints (a scalar is broadcast); absent or null: def. */
static void read_per_block(cfg_reader *r, const char *key, int64_t def, int64_t *out, int n,
                           int64_t lo, int64_t hi) {
    int64_t v[UNET_MAX_BLOCKS];
    int got = cfg_int_list(r, key, v, UNET_MAX_BLOCKS, lo, hi);
    if (r->status != CS_OK) return;
    if (got == 0) v[0] = def;
    if (got > 1 && got != n) {
        cfg_fail(r, "field '%s' has %d entries but there are %d down blocks", key, got, n);
        return;
    }
    for (int i = 0; i < n; i++)
        out[i] = got > 1 ? v[i] : v[0];
}

/* null, "silu" or "swish" (an optional activation); returns whether it is set. */
static bool read_optional_silu(cfg_reader *r, const char *key) {
    if (!cfg_has(r, key)) {
        cfg_require_null(r, key); /* consumes an explicit null */
        return false;
    }
    cfg_enum(r, key, "silu", k_silu_names);
    return true;
}

static void read_time(cfg_reader *r, unet_config *cfg) {
    cfg_enum(r, "time_embedding_type", "positional", (const char *const[]){"positional", NULL});
    cfg->flip_sin_to_cos = cfg_bool(r, "flip_sin_to_cos", true);
    cfg->freq_shift = (float)cfg_float(r, "freq_shift", 0, -1e6, 1e6);
    cfg->time_in_dim = cfg->block_out[0];
    cfg->time_embed_dim = cfg_int(r, "time_embedding_dim", 4 * cfg->block_out[0], 1, 1 << 20);
    cfg->time_cond_dim = cfg_int(r, "time_cond_proj_dim", 0, 1, 1 << 20);
    cfg->timestep_post_silu = read_optional_silu(r, "timestep_post_act");
    cfg->time_embed_silu = read_optional_silu(r, "time_embedding_act_fn");
    /* Timesteps uses half = dim/2 frequencies and divides by (half - freq_shift). */
    if (cfg->time_in_dim / 2 - cfg->freq_shift == 0)
        cfg_fail(r, "field 'freq_shift' = %g makes the timestep frequencies divide by zero",
                 (double)cfg->freq_shift);

    bool has_type = cfg_has(r, "class_embed_type");
    int ce = -1;
    if (has_type)
        ce = cfg_enum(
            r, "class_embed_type", "timestep",
            (const char *const[]){"timestep", "identity", "projection", "simple_projection", NULL});
    else
        cfg_require_null(r, "class_embed_type"); /* consumes an explicit null */
    has_type = has_type && r->status == CS_OK;
    cfg->num_class_embeds = cfg_int(r, "num_class_embeds", 0, 1, 1 << 24);
    /* identity / projection / simple_projection take float class vectors; the engine's
     * input is an integer label per row. */
    if (has_type && ce != 0) {
        static const char *const names[] = {"timestep", "identity", "projection",
                                            "simple_projection"};
        cfg_fail(r,
                 "field 'class_embed_type' = \"%s\" is not supported (only null with "
                 "num_class_embeds, or \"timestep\")",
                 names[ce]);
    }
    if (has_type && ce == 0)
        cfg->class_embed = UNET_CLASS_TIMESTEP;
    else if (cfg->num_class_embeds > 0)
        cfg->class_embed = UNET_CLASS_TABLE;
    cfg->class_concat = cfg_bool(r, "class_embeddings_concat", false);
    /* diffusers widens every resnet's time input for concat even without a class
     * embedding, then fails at run time: refuse it here. */
    if (cfg->class_concat && cfg->class_embed == UNET_CLASS_NONE)
        cfg_fail(r, "field 'class_embeddings_concat' = true needs a class embedding "
                    "(num_class_embeds or class_embed_type)");
    /* Read only by class_embed_type "projection"/"simple_projection" and addition_embed_type
     * "text_time", all refused here; diffusers ignores it otherwise. */
    cfg_int(r, "projection_class_embeddings_input_dim", 0, 1, 1 << 24);
}

static void read_blocks(cfg_reader *r, unet_config *cfg) {
    int nb = cfg_int_list(r, "block_out_channels", cfg->block_out, UNET_MAX_BLOCKS, 1, 1 << 16);
    if (nb == 0 && r->status == CS_OK) {
        static const int64_t def[] = {320, 640, 1280, 1280};
        memcpy(cfg->block_out, def, sizeof def);
        nb = 4;
    }
    cfg->nblocks = nb;
    static const char *const def_down[] = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                           "CrossAttnDownBlock2D", "DownBlock2D"};
    static const char *const def_up[] = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                         "CrossAttnUpBlock2D"};
    int nd = read_block_types(r, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D",
                              def_down, 4, cfg->down_attn);
    int nu = read_block_types(r, "up_block_types", "CrossAttnUpBlock2D", "UpBlock2D", def_up, 4,
                              cfg->up_attn);
    if (r->status != CS_OK) return;
    if (nd != nb || nu != nb) {
        cfg_fail(r,
                 "down_block_types (%d), up_block_types (%d) and block_out_channels (%d) "
                 "must have the same number of entries",
                 nd, nu, nb);
        return;
    }
    read_per_block(r, "layers_per_block", 2, cfg->layers, nb, 1, UNET_MAX_LAYERS);
    read_per_block(r, "transformer_layers_per_block", 1, cfg->tlayers, nb, 1, 64);
    /* Asymmetric up-path transformer depths (SDXL refiners) are not implemented. */
    cfg_require_null(r, "reverse_transformer_layers_per_block");
    cfg_require_null(r, "num_attention_heads"); /* diffusers 0.27 refuses it too */
    if (is_explicit_null(r, "attention_head_dim"))
        cfg_fail(r, "field 'attention_head_dim' must not be null (it gives the number of heads)");
    read_per_block(r, "attention_head_dim", 8, cfg->heads, nb, 1, 1 << 16);

    int64_t cross[UNET_MAX_BLOCKS] = {0};
    read_per_block(r, "cross_attention_dim", 1280, cross, nb, 1, 1 << 20);
    cfg->cross_dim = cross[0];
    for (int i = 1; i < nb && r->status == CS_OK; i++)
        if (cross[i] != cross[0])
            cfg_fail(r, "field 'cross_attention_dim' has different widths per block; one "
                        "encoder_hidden_states cannot feed them all");

    cfg->downsample_padding = cfg_int(r, "downsample_padding", 1, 0, 1);
    /* null would build resnets without GroupNorm groups (diffusers fails) and drop
     * conv_norm_out: not implemented. */
    if (is_explicit_null(r, "norm_num_groups"))
        cfg_fail(r, "field 'norm_num_groups' = null is not supported");
    cfg->groups = cfg_int(r, "norm_num_groups", 32, 1, 1 << 16);
    for (int i = 0; i < nb && r->status == CS_OK; i++) {
        if (cfg->block_out[i] % cfg->groups != 0)
            cfg_fail(r,
                     "field 'norm_num_groups' = %lld does not divide block_out_channels[%d] "
                     "= %lld (GroupNorm needs whole groups)",
                     (long long)cfg->groups, i, (long long)cfg->block_out[i]);
        bool attn =
            cfg->down_attn[i] || cfg->up_attn[nb - 1 - i] || (i == nb - 1 && cfg->mid_block);
        if (attn && cfg->heads[i] > cfg->block_out[i])
            cfg_fail(r,
                     "field 'attention_head_dim'[%d] = %lld heads exceed the %lld channels "
                     "of block %d (diffusers: it is the number of heads)",
                     i, (long long)cfg->heads[i], (long long)cfg->block_out[i], i);
    }
}

static void read_fixed(cfg_reader *r, unet_config *cfg) {
    cfg_require_string(r, "_class_name", "UNet2DConditionModel");
    cfg->in_channels = cfg_int(r, "in_channels", 4, 1, 1 << 16);
    cfg->out_channels = cfg_int(r, "out_channels", 4, 1, 1 << 16);
    int64_t ss[2] = {0, 0};
    int nss = cfg_int_list(r, "sample_size", ss, 2, 1, 1 << 16);
    cfg->sample_size[0] = ss[0];
    cfg->sample_size[1] = nss == 2 ? ss[1] : ss[0];
    cfg->eps = (float)cfg_float(r, "norm_eps", 1e-5, 0, 1);
    cfg->linear_proj = cfg_bool(r, "use_linear_projection", false);
    /* Upcasting matters only for fp16 attention; the engine computes in fp32. */
    cfg_bool(r, "upcast_attention", false);
    cfg->scale_shift = cfg_enum(r, "resnet_time_scale_shift", "default",
                                (const char *const[]){"default", "scale_shift", NULL}) == 1;
    cfg->conv_in_kernel = cfg_int(r, "conv_in_kernel", 3, 1, 15);
    cfg->conv_out_kernel = cfg_int(r, "conv_out_kernel", 3, 1, 15);
    if (cfg->conv_in_kernel % 2 == 0 || cfg->conv_out_kernel % 2 == 0)
        cfg_fail(r, "an even conv_in_kernel / conv_out_kernel changes the latent size; only odd "
                    "kernels are supported");
    /* Absent: diffusers' default block; an explicit null: no mid block at all. */
    cfg->mid_block = !is_explicit_null(r, "mid_block_type");
    cfg_enum(r, "mid_block_type", "UNetMidBlock2DCrossAttn",
             (const char *const[]){"UNetMidBlock2DCrossAttn", NULL});
    cfg->mid_scale = (float)cfg_float(r, "mid_block_scale_factor", 1, 1e-6, 1e6);
    cfg_enum(r, "act_fn", "silu", k_silu_names);

    /* What the engine does not implement: only the neutral values. */
    cfg_require_bool(r, "center_input_sample", false);
    cfg_require_bool(r, "dual_cross_attention", false);
    cfg_require_bool(r, "only_cross_attention", false);
    cfg_require_string(r, "attention_type", "default");
    cfg_require_null(r, "addition_embed_type");
    cfg_require_null(r, "encoder_hid_dim");
    cfg_require_null(r, "encoder_hid_dim_type");
    /* diffusers passes these only to the Simple-/ResnetDownsample-type blocks and to
     * addition_embed_type "text"/"text_time" (refused above), so with the supported block
     * types they change nothing: any value loads and runs exactly as in diffusers. */
    cfg_ignore(r, (const char *const[]){"resnet_skip_time_act", "resnet_out_scale_factor",
                                        "cross_attention_norm", "mid_block_only_cross_attention",
                                        "addition_embed_type_num_heads", "addition_time_embed_dim",
                                        "dropout" /* training only */, NULL});
}

cs_status unet_config_load(const char *path, unet_config *cfg, char *msg, size_t msg_size) {
    return unet_config_load_src(path, NULL, cfg, msg, msg_size);
}

cs_status unet_config_load_src(const char *path, const char *json, unet_config *cfg, char *msg,
                               size_t msg_size) {
    memset(cfg, 0, sizeof *cfg);
    cfg_reader r;
    cs_status st = cfg_open_src(&r, path, json, msg, msg_size);
    if (st == CS_OK) {
        read_fixed(&r, cfg);
        read_blocks(&r, cfg);
        if (r.status == CS_OK) read_time(&r, cfg);
        st = cfg_finish(&r);
    }
    cfg_close(&r);
    return st;
}

int64_t unet_config_size_multiple(const unet_config *cfg) {
    return (int64_t)1 << (cfg->nblocks - 1);
}

int64_t unet_config_blocks_temb_dim(const unet_config *cfg) {
    return cfg->class_concat ? 2 * cfg->time_embed_dim : cfg->time_embed_dim;
}
