/*
 * diffusers Transformer2DModel (continuous input) and BasicTransformerBlock, as the UNet's
 * cross-attention blocks use them:
 *
 *   x(B,C,H,W) -> GroupNorm(groups, eps 1e-6) -> proj_in -> (B, HW, inner)
 *     -> BasicTransformerBlock × n:  h += attn1(norm1 h)          self-attention
 *                                    h += attn2(norm2 h, context) cross-attention
 *                                    h += ff(norm3 h)             GEGLU feed-forward
 *     -> proj_out -> (B,C,H,W) + x
 *
 * Checkpoint names under the prefix: norm, proj_in, transformer_blocks.N.{norm1,attn1,
 * norm2,attn2,norm3,ff.net.0.proj,ff.net.2}, proj_out. proj_in/proj_out are 1×1 convs
 * (weights (out, in, 1, 1)) or, with use_linear_projection, Linear (out, in); a 1×1 conv
 * on NCHW is the same product as a Linear on the (B·HW, C) rows, so both run as Linear.
 *
 * Read-only after load; forward may run on several threads with separate ctxs.
 */
#ifndef CS_UNET_TRANSFORMER_H
#define CS_UNET_TRANSFORMER_H

#include "blocks.h"

typedef struct unet_tblock {        /* BasicTransformerBlock, norm_type "layer_norm" */
    int64_t dim, ff_inner;          /* ff_inner = 4·dim */
    norm_layer norm1, norm2, norm3; /* LayerNorm(dim, eps 1e-5) */
    attention_module attn1;         /* self: dim -> dim */
    attention_module attn2;         /* cross: q from dim, k/v from context */
    linear_layer ff_proj;           /* ff.net.0.proj: dim -> 2·ff_inner (value | gate) */
    linear_layer ff_out;            /* ff.net.2: ff_inner -> dim */
} unet_tblock;

typedef struct unet_transformer { /* Transformer2DModel */
    int64_t channels, inner;      /* inner = heads · (channels / heads) */
    int64_t nlayers;
    norm_layer norm;       /* GroupNorm over channels */
    linear_layer proj_in;  /* channels -> inner */
    linear_layer proj_out; /* inner -> channels */
    unet_tblock *layers;   /* nlayers, owned */
} unet_transformer;

/* Registers the module's weights under `prefix` (e.g. "down_blocks.0.attentions.1"). */
cs_status unet_transformer_bind(unet_transformer *t, weight_binder *wb, int64_t channels,
                                int64_t heads, int64_t nlayers, int64_t context_dim, int64_t groups,
                                bool linear_proj, const char *prefix);
void unet_transformer_free(unet_transformer *t); /* frees the layer array; NULL is a no-op */

/* x(B, C, H, W) += Transformer2DModel(x) - x, i.e. in place; context (B, Lc, context_dim). */
void unet_transformer_forward(cs_ctx *c, const unet_transformer *t, float *x, const float *context,
                              int64_t batch, int64_t hw, int64_t context_len);

#endif
