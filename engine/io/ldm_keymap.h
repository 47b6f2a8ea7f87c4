/*
 * Original LDM / CompVis checkpoint names -> diffusers / transformers names, as a renaming
 * VIEW: ldm_view builds an st_file whose tensors carry the diffusers names of one
 * component but point at the source file's bytes (borrowed, never copied), with the few
 * shape changes the layouts differ by recorded in the entry (the VAE attention's 1x1-conv
 * [C, C, 1, 1] weights become Linear [C, C]; OpenCLIP's fused in_proj rows become three
 * q/k/v slices). The component loaders then bind from the view exactly as from a
 * diffusers folder, so both paths share every line of weight code.
 *
 * The mapping is one rule table per component (ldm_keymap.c), the same rules diffusers
 * 0.27's convert_from_ckpt.py applies, except that block numbers come from the level
 * counts in ldm_layout (never from SD-1.5's shape): LDM decoder level L-1-i is diffusers
 * decoder.up_blocks.i for any level count L.
 *
 * Single-threaded; used only while loading. The view borrows src: close it first.
 */
#ifndef CS_LDM_KEYMAP_H
#define CS_LDM_KEYMAP_H

#include "safetensors.h"

typedef enum ldm_component { LDM_UNET, LDM_VAE, LDM_TEXT } ldm_component;

typedef struct ldm_layout {
    int unet_layers;   /* num_res_blocks of the UNet (resnets per down level) */
    int vae_levels;    /* len(ch_mult) of the autoencoder */
    bool unet_ema;     /* read the UNet from the model_ema.* twins (see ldm_has_ema) */
    bool openclip;     /* SD 2.x text encoder (cond_stage_model.model.*) */
    int text_layers;   /* OpenCLIP resblocks kept (the rest are never run) */
    const char *vae_prefix; /* "first_stage_model." in a checkpoint, "" in a VAE file */
} ldm_layout;

/* The view of `component` in src under diffusers names. Source tensors of the component
 * that no rule knows keep their (prefix-stripped) names, so the binder reports them as
 * unexpected; names two sources map to are errors. */
cs_status ldm_view(const st_file *src, ldm_component component, const ldm_layout *lay,
                   st_file **out, char *msg, size_t msg_size);

/* diffusers' extract_ema rule: a checkpoint holds EMA weights when more than 100 tensor
 * names start with "model_ema". */
bool ldm_has_ema(const st_file *src);

/* Counts the distinct values of the integer that follows `prefix` in src's names
 * (e.g. "model.diffusion_model.input_blocks." -> number of input blocks), as
 * 1 + the largest seen; 0 when none. */
int ldm_count_index(const st_file *src, const char *prefix);

#endif
