/*
 * UNet2DConditionModel configuration: reads a diffusers unet/config.json strictly (every
 * field is honoured, required to keep the value the engine implements, or named as not
 * affecting these blocks) into a flat struct with per-block lists already broadcast.
 *
 * diffusers naming trap: with num_attention_heads null (always, diffusers refuses
 * anything else), `attention_head_dim` is the NUMBER OF HEADS, per down block when a
 * list; head width = block channels / heads; the mid block uses the last entry, up
 * block i uses entry n-1-i.
 *
 * Supported: down CrossAttnDownBlock2D / DownBlock2D, up CrossAttnUpBlock2D / UpBlock2D,
 * mid UNetMidBlock2DCrossAttn or none, positional time embedding (+ cond_proj), class
 * embeddings (num_class_embeds table or "timestep"), concat or added, scale_shift
 * resnets, 1×1-conv or linear transformer projections, SiLU activations.
 *
 * Single-threaded; used only while loading. The result is plain data.
 */
#ifndef CS_UNET_CONFIG_H
#define CS_UNET_CONFIG_H

#include "common.h"

enum { UNET_MAX_BLOCKS = 8, UNET_MAX_LAYERS = 16 };

typedef enum unet_class_embed {
    UNET_CLASS_NONE,     /* no class conditioning */
    UNET_CLASS_TABLE,    /* class_embed_type null + num_class_embeds: nn.Embedding */
    UNET_CLASS_TIMESTEP, /* class_embed_type "timestep": time_proj + TimestepEmbedding */
} unet_class_embed;

typedef struct unet_config {
    int64_t in_channels, out_channels;
    int64_t sample_size[2]; /* (H, W) latent size the model was trained at; 0 = unknown */
    int nblocks;            /* down blocks = up blocks = block_out_channels entries */
    int64_t block_out[UNET_MAX_BLOCKS];
    bool down_attn[UNET_MAX_BLOCKS];  /* down block i is CrossAttnDownBlock2D (else DownBlock2D) */
    bool up_attn[UNET_MAX_BLOCKS];    /* up block i is CrossAttnUpBlock2D (else UpBlock2D) */
    int64_t layers[UNET_MAX_BLOCKS];  /* resnets of down block i; up block i has layers[n-1-i]+1 */
    int64_t tlayers[UNET_MAX_BLOCKS]; /* Transformer2DModel depth, per down block */
    int64_t heads[UNET_MAX_BLOCKS];   /* attention heads per down block (see above) */
    int64_t cross_dim;                /* encoder_hidden_states width */
    bool mid_block;                   /* UNetMidBlock2DCrossAttn present */
    float mid_scale;                  /* mid_block_scale_factor (resnet output_scale_factor) */
    int64_t downsample_padding;       /* 1: symmetric; 0: pad right/bottom by one */
    int64_t groups;                   /* norm_num_groups */
    float eps;                        /* norm_eps (resnets, conv_norm_out) */
    bool linear_proj;                 /* use_linear_projection */
    bool scale_shift;                 /* resnet_time_scale_shift == "scale_shift" */
    bool flip_sin_to_cos;
    float freq_shift;
    int64_t time_in_dim;     /* sinusoidal width = block_out[0] */
    int64_t time_embed_dim;  /* time_embedding_dim or 4·block_out[0] */
    int64_t time_cond_dim;   /* time_cond_proj_dim; 0 = none */
    bool timestep_post_silu; /* timestep_post_act = silu */
    bool time_embed_silu;    /* time_embedding_act_fn = silu */
    unet_class_embed class_embed;
    int64_t num_class_embeds; /* rows of the table (UNET_CLASS_TABLE) */
    bool class_concat;        /* class_embeddings_concat: blocks see 2·time_embed_dim */
    int64_t conv_in_kernel, conv_out_kernel;
} unet_config;

/* Reads path (a UNet config.json). Errors name the file and the field. */
cs_status unet_config_load(const char *path, unet_config *cfg, char *msg, size_t msg_size);

/* The same for a config built in memory (json; NULL = read path, which labels errors). */
cs_status unet_config_load_src(const char *path, const char *json, unet_config *cfg, char *msg,
                               size_t msg_size);

/* Latent height and width must be multiples of this (2^(down blocks - 1)). */
int64_t unet_config_size_multiple(const unet_config *cfg);

/* Width of the embedding the resnets receive (2·time_embed_dim with class concat). */
int64_t unet_config_blocks_temb_dim(const unet_config *cfg);

#endif
