/*
 * The inside of a cs_session, shared by session.c (planning, encoders) and step.c (the
 * batched denoising step and decode). Nothing else includes it.
 */
#ifndef CS_SESSION_INTERNAL_H
#define CS_SESSION_INTERNAL_H

#include "session.h"

struct cs_session {
    const cs_model *model;
    cs_session_params params;
    int64_t max_rows;       /* UNet rows per call: 2 · max_images (CFG) */
    int64_t vae_tile;       /* latents per VAE tile side, 0: untiled */
    int64_t max_lat_numel;  /* C · h · w at the largest size */
    int64_t in_channels;    /* UNet input channels: C, or 2C + 1 for an inpainting UNet */
    cs_ctx ctx;             /* activation arena */
    float *x;               /* (rows, in_channels, h, w) UNet input */
    float *out;             /* (rows, C, h, w) UNet output */
    float *t;               /* (rows) timesteps */
    float *context;         /* (rows, L, D) text conditioning of the rows of one UNet call */
    const prompt_embedding **row_emb; /* (rows) each row's conditioning (L may differ) */
    /* Rows whose conditioning lengths differ run as separate UNet calls (one per length,
     * as the web UI does for long prompts); these hold one call's rows. */
    float *gx, *gout, *gt, *gtcond;
    lora_row *glora;
    float *tcond;           /* (rows, guidance_embed_dim) timestep_cond, or NULL */
    float *decoded;         /* (max_images, 3, H, W) VAE output; the encoder's input */
    float *latent_in;       /* (max_images, C, h, w) VAE input */
    lora_row *lora_rows;    /* (rows) the LoRAs of each UNet row */
};

#endif
