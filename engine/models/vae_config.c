/*
 * Strict reading of a diffusers AutoencoderKL config.json (see vae.h). Every field of
 * AutoencoderKL.__init__ (diffusers 0.27, plus the later use_quant_conv,
 * use_post_quant_conv, shift_factor and mid_block_add_attention) is either honoured,
 * required to have the one value the engine implements, or named as irrelevant to
 * inference. Single-threaded; used only while loading.
 */
#include "vae.h"

#include <string.h>

#include "config.h"

/* Each entry of `key` (a list of strings) must be `want`; returns the count. */
static int read_block_types(cfg_reader *r, const char *key, const char *want) {
    const char *types[VAE_MAX_BLOCKS];
    int n = cfg_string_list(r, key, types, VAE_MAX_BLOCKS);
    if (n == 0 && !cfg_has(r, key)) return -1; /* absent: diffusers' default, one block */
    for (int i = 0; i < n; i++)
        if (strcmp(types[i], want) != 0) {
            cfg_fail(r, "field '%s'[%d] = \"%s\" is not supported (only \"%s\")", key, i, types[i],
                     want);
            return n;
        }
    return n;
}

cs_status vae_read_config(const char *path, vae_config *cfg, char *msg, size_t n) {
    return vae_read_config_src(path, NULL, cfg, msg, n);
}

cs_status vae_read_config_src(const char *path, const char *json, vae_config *cfg, char *msg,
                              size_t n) {
    memset(cfg, 0, sizeof *cfg);
    cfg_reader r;
    cs_status st = cfg_open_src(&r, path, json, msg, n);
    if (st != CS_OK) {
        cfg_close(&r);
        return st;
    }
    cfg_require_string(&r, "_class_name", "AutoencoderKL");
    cfg->in_channels = cfg_int(&r, "in_channels", 3, 1, 64);
    cfg->out_channels = cfg_int(&r, "out_channels", 3, 1, 64);
    cfg->latent_channels = cfg_int(&r, "latent_channels", 4, 1, 256);
    cfg->layers_per_block = cfg_int(&r, "layers_per_block", 1, 1, VAE_MAX_LAYERS);
    cfg->norm_num_groups = cfg_int(&r, "norm_num_groups", 32, 1, 1024);
    cfg->scaling_factor = (float)cfg_float(&r, "scaling_factor", 0.18215, 1e-12, 1e12);
    cfg->mid_block_add_attention = cfg_bool(&r, "mid_block_add_attention", true);

    int nb =
        cfg_int_list(&r, "block_out_channels", cfg->block_out_channels, VAE_MAX_BLOCKS, 1, 65536);
    if (nb == 0 && !cfg_has(&r, "block_out_channels")) {
        nb = 1;
        cfg->block_out_channels[0] = 64; /* AutoencoderKL's default (64,) */
    } else if (nb == 0) {
        cfg_fail(&r, "field 'block_out_channels' is empty");
    }
    cfg->num_blocks = nb;
    int nd = read_block_types(&r, "down_block_types", "DownEncoderBlock2D");
    int nu = read_block_types(&r, "up_block_types", "UpDecoderBlock2D");
    /* diffusers indexes block_out_channels by block: the three lists go together. */
    if (nd < 0) nd = 1;
    if (nu < 0) nu = 1;
    if (nd != nb)
        cfg_fail(&r, "field 'down_block_types' has %d entries but 'block_out_channels' has %d", nd,
                 nb);
    if (nu != nb)
        cfg_fail(&r, "field 'up_block_types' has %d entries but 'block_out_channels' has %d", nu,
                 nb);
    for (int i = 0; i < nb; i++)
        if (cfg->block_out_channels[i] % cfg->norm_num_groups != 0) {
            cfg_fail(&r,
                     "field 'norm_num_groups' = %lld does not divide block_out_channels[%d] "
                     "= %lld (GroupNorm needs whole groups)",
                     (long long)cfg->norm_num_groups, i, (long long)cfg->block_out_channels[i]);
            break;
        }

    /* diffusers' get_activation maps both names to nn.SiLU. */
    cfg_enum(&r, "act_fn", "silu", (const char *const[]){"silu", "swish", NULL});
    /* SDXL/SD3-era additions with no counterpart here: only their neutral values. */
    cfg_require_null(&r, "latents_mean");
    cfg_require_null(&r, "latents_std");
    cfg_require_null(&r, "shift_factor");
    cfg_require_bool(&r, "use_quant_conv", true);
    cfg_require_bool(&r, "use_post_quant_conv", true);
    /* force_upcast only selects the dtype diffusers runs in (fp32 here always);
     * sample_size only sets the tile size of the optional tiled decode. */
    cfg_ignore(&r, (const char *const[]){"force_upcast", "sample_size", NULL});
    st = cfg_finish(&r);
    cfg_close(&r);
    return st;
}
