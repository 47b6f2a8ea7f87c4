/*
 * Configs of a single-file (original LDM layout) Stable Diffusion checkpoint: the
 * diffusers config.json texts of its UNet, VAE, text encoder and scheduler, made from the
 * LDM config (the v1-inference.yaml tree, given as JSON) when there is one, else inferred
 * from the tensors by the rules below (also in README "Single-file checkpoints"):
 *
 *   model type   sd2 when the text encoder is OpenCLIP (cond_stage_model.model.*, or an LDM
 *                config whose cond_stage_config.target names FrozenOpenCLIPEmbedder), sd1 for
 *                cond_stage_model.transformer.* (OpenAI CLIP, transformers names).
 *   UNet         levels = 1 + number of input_blocks.i.0.op (downsamplers); num_res_blocks =
 *                (input blocks - levels) / levels; channel_mult from each level's first
 *                resnet; attention at the levels whose first input block has a transformer;
 *                context_dim from attn2.to_k; use_linear_projection when proj_in is a Linear;
 *                heads: 8 per attention (SD 1.x num_heads 8) unless the projections are
 *                Linear (SD 2.x num_head_channels 64: channels / 64 heads).
 *   VAE          levels = encoder.down.* count, num_res_blocks = encoder.down.0.block.*
 *                count, ch_mult from each level's resnets, scale_factor 0.18215.
 *   prediction   the LDM config's parameterization "v" -> v_prediction; without a config,
 *                sd2 (OpenCLIP, context 1024, diffusers' 768-v test) -> v_prediction; else
 *                epsilon. In both v cases global_step 875000 (SD 2 base, known from a .ckpt)
 *                means epsilon, as diffusers 0.27 rules. The override wins.
 *   image size   768 for v_prediction, else 512 (pixels; diffusers' rule).
 *   scheduler    PNDMScheduler (skip_prk_steps), scaled_linear betas from linear_start /
 *                linear_end (default 0.00085 / 0.012), 1000 steps, steps_offset 1.
 *   text encoder vocab / width / positions from the embeddings, layers counted, intermediate
 *                from fc1, heads = width / 64, quick_gelu (sd1) or gelu (sd2), eos_token_id 2
 *                (the SD configs' legacy pooling); sd2 keeps all OpenCLIP resblocks but the
 *                last (SD 2 conditions on the penultimate layer; diffusers keeps 23 of 24).
 *
 * Single-threaded; used only while loading.
 */
#ifndef CS_LDM_CONFIG_H
#define CS_LDM_CONFIG_H

#include "ldm_keymap.h"

typedef struct cJSON cJSON;

enum { LDM_JSON_MAX = 4096 };

typedef struct ldm_config {
    bool sd2;
    bool v_prediction;
    ldm_layout layout;
    char unet_json[LDM_JSON_MAX];
    char vae_json[LDM_JSON_MAX];
    char sched_json[LDM_JSON_MAX];
} ldm_config;

/* original: the LDM config tree or NULL; model_type / prediction_type: overrides or NULL;
 * global_step: the checkpoint's, or -1. */
cs_status ldm_config_build(const st_file *ckpt, const cJSON *original,
                           const char *model_type, const char *prediction_type,
                           int64_t global_step, ldm_config *out, char *msg, size_t msg_size);

/* The VAE alone of a VAE file (keys with or without "first_stage_model."): sets
 * out->vae_json and out->layout's VAE fields. */
cs_status ldm_vae_config(const st_file *f, double scaling_factor, ldm_config *out, char *msg,
                         size_t msg_size);

/* The CLIPTextModel config.json text inferred from a text-encoder view (diffusers names). */
cs_status ldm_text_config_json(const st_file *view, bool sd2, char *buf, size_t size, char *msg,
                               size_t msg_size);

#endif
