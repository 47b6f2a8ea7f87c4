/*
 * The KL autoencoder of Stable Diffusion (diffusers AutoencoderKL): the decoder that turns
 * latents into images (post_quant_conv → Decoder) and the encoder that turns images into
 * the latent distribution (Encoder → quant_conv → mean / logvar).
 *
 * Loads a diffusers folder (config.json + diffusion_pytorch_model.safetensors, tensor
 * names "encoder.…", "decoder.…", "quant_conv.…", "post_quant_conv.…"); the config is read
 * strictly (config.h). The mid-block attention accepts both the current names
 * (to_q/to_k/to_v/to_out.0) and the legacy ones of older SD checkpoints
 * (query/key/value/proj_attn), as diffusers does.
 *
 * A vae_model is read-only after load and may be shared by threads; each forward pass
 * uses its caller's cs_ctx (one thread at a time).
 */
#ifndef CS_VAE_H
#define CS_VAE_H

#include "ctx.h"
#include "safetensors.h"
#include "weights.h"

enum { VAE_MAX_BLOCKS = 8, VAE_MAX_LAYERS = 8 };

/* The fields of the AutoencoderKL config that change inference. */
typedef struct vae_config {
    int64_t in_channels;     /* image channels the encoder takes (3) */
    int64_t out_channels;    /* image channels the decoder makes (3) */
    int64_t latent_channels; /* lc (4) */
    int64_t num_blocks;      /* len(block_out_channels); scale factor 2^(num_blocks-1) */
    int64_t block_out_channels[VAE_MAX_BLOCKS];
    int64_t layers_per_block; /* resnets per encoder block; decoder blocks have one more */
    int64_t norm_num_groups;
    bool mid_block_add_attention;
    float scaling_factor; /* the pipeline divides latents by it before decoding */
} vae_config;

typedef struct vae_model vae_model; /* read-only after load */

/* Reads an AutoencoderKL config.json strictly: unknown fields, unsupported values
 * (block types, act_fn, latents_mean, ...) and inconsistent sizes are errors naming the
 * field. */
cs_status vae_read_config(const char *path, vae_config *cfg, char *msg, size_t n);
/* The same for a config built in memory (json; NULL = read path, which labels errors). */
cs_status vae_read_config_src(const char *path, const char *json, vae_config *cfg, char *msg,
                              size_t n);

/* Loads dir/config.json and dir/diffusion_pytorch_model.safetensors. A checkpoint that does
 * not match the config fails with a message listing every missing, extra or mis-shaped
 * tensor. On failure *out is NULL. */
cs_status vae_load(const char *dir, wb_store store, vae_model **out, char *msg, size_t n);
/* A model of cfg's architecture with its weights bound from f (diffusers names). */
cs_status vae_new_bound(const vae_config *cfg, const st_file *f, wb_store store, vae_model **out,
                        char *msg, size_t n);
/* As unet_write_random, for vae_new_random's weights. */
cs_status vae_write_random(const vae_config *cfg, uint64_t seed, st_dtype dtype,
                           const char *path, char *msg, size_t n);

/* A model with the structure of cfg and no weights: it can only be run in measuring
 * passes (vae_*_activation_bytes), e.g. to plan memory before loading. */
cs_status vae_new_unloaded(const vae_config *cfg, vae_model **out, char *msg, size_t n);

/* A model of cfg's architecture with deterministic random weights (wb_fill_random):
 * benchmarks of configurations without a checkpoint. */
cs_status vae_new_random(const vae_config *cfg, uint64_t seed, vae_model **out, char *msg,
                         size_t n);

void vae_free(vae_model *m);

const vae_config *vae_get_config(const vae_model *m);
/* Every weight, in binding order (tests compare two loads bit for bit). */
const weight_block *vae_weights(const vae_model *m);
int64_t vae_scale_factor(const vae_model *m); /* 2^(num_blocks - 1) */
int64_t vae_latent_channels(const vae_model *m);
float vae_scaling_factor(const vae_model *m);

/* Latent size the encoder produces for a height × width image (each downsampler maps
 * n to (n - 2) / 2 + 1, i.e. n / scale_factor when n is a multiple of it). */
void vae_latent_size(const vae_model *m, int64_t height, int64_t width, int64_t *h, int64_t *w);

/*
 * image (B, out_channels, h·f, w·f) = decode(latents (B, latent_channels, h, w)), f the scale
 * factor. latents are used as given: NOT divided by scaling_factor (the pipeline does that).
 * Taps: "post_quant_conv", "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.<i>",
 * "decoder.conv_norm_out" (before the SiLU). While c->measuring nothing is read or written.
 */
void vae_decode(cs_ctx *c, const vae_model *m, float *image, const float *latents, int64_t batch,
                int64_t h, int64_t w);

/*
 * mean, logvar (B, latent_channels, h, w) of the latent distribution of image (B,
 * in_channels, height, width), (h, w) from vae_latent_size; logvar clamped to [-30, 20] as
 * diffusers' DiagonalGaussianDistribution does. Taps: "encoder.conv_in",
 * "encoder.down_blocks.<i>", "encoder.mid_block", "encoder.conv_norm_out", "quant_conv".
 */
void vae_encode(cs_ctx *c, const vae_model *m, float *mean, float *logvar, const float *image,
                int64_t batch, int64_t height, int64_t width);

/*
 * Tiled decoding of ONE image (latent (C, h, w) -> image (3, h·f, w·f)), exactly diffusers'
 * AutoencoderKL.tiled_decode with tile_latent_min_size = tile and tile_overlap_factor
 * 0.25: tiles of tile × tile latents every 3/4 tile, decoded alone, each blended
 * linearly over the one above and the one to its left (already blended), the first 3/4
 * of each kept. Memory is bounded by the tile, not the image. Applies only when the
 * latent is larger than the tile on a side (vae_tiling_applies); otherwise, and with
 * tile 0, it is vae_decode. tile is a multiple of 4.
 */
bool vae_tiling_applies(int64_t tile, int64_t h, int64_t w);
void vae_decode_tiled(cs_ctx *c, const vae_model *m, float *image, const float *latent, int64_t h,
                      int64_t w, int64_t tile);
size_t vae_decode_tiled_bytes(const vae_model *m, int64_t h, int64_t w, int64_t tile);

/* Arena bytes vae_decode / vae_encode need for these sizes (a measuring pass). */
size_t vae_decode_activation_bytes(const vae_model *m, int64_t batch, int64_t h, int64_t w);
size_t vae_encode_activation_bytes(const vae_model *m, int64_t batch, int64_t height,
                                   int64_t width);

#endif
