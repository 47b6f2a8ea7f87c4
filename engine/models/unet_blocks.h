/*
 * The UNet's down, mid and up blocks (diffusers unet_2d_blocks.py):
 *   CrossAttnDownBlock2D / DownBlock2D  <p>.resnets.N, <p>.attentions.N, <p>.downsamplers.0.conv
 *   UNetMidBlock2DCrossAttn             mid_block.resnets.{0,1}, mid_block.attentions.0
 *   CrossAttnUpBlock2D / UpBlock2D      <p>.resnets.N, <p>.attentions.N, <p>.upsamplers.0.conv
 * A block without attention has attns == NULL.
 *
 * Memory: down blocks leave every residual they produce on the ctx arena (the skip
 * stack, consumed by the up blocks); mid and up blocks write into a caller-allocated
 * output and release their temporaries.
 *
 * Read-only after load; forward may run on several threads with separate ctxs.
 */
#ifndef CS_UNET_BLOCKS_H
#define CS_UNET_BLOCKS_H

#include "unet_transformer.h"

/* Settings every block of one UNet shares. */
typedef struct unet_block_params {
    int64_t temb_ch;     /* width of the resnets' time input */
    int64_t groups;      /* GroupNorm groups of resnets and transformers */
    float eps;           /* resnet GroupNorm eps */
    bool scale_shift;    /* resnet_time_scale_shift == "scale_shift" */
    bool linear_proj;    /* transformer proj_in/out are Linear */
    int64_t context_dim; /* cross_attention_dim */
} unet_block_params;

/* One entry of the skip stack: a residual (B, ch, h, w) living on the arena. */
typedef struct unet_skip {
    const float *data;
    int64_t ch, h, w;
} unet_skip;

typedef struct unet_down_block {
    int64_t in_ch, out_ch, nlayers;
    resnet_block *resnets;   /* nlayers, owned */
    unet_transformer *attns; /* nlayers, owned; NULL for DownBlock2D */
    bool has_down;
    conv_layer down; /* 3×3 stride 2 */
} unet_down_block;

typedef struct unet_mid_block {
    resnet_block res0, res1;
    unet_transformer attn;
} unet_mid_block;

typedef struct unet_up_block {
    int64_t prev_ch, out_ch, nlayers;
    resnet_block *resnets;   /* nlayers, owned */
    unet_transformer *attns; /* nlayers, owned; NULL for UpBlock2D */
    bool has_up;
    conv_layer up; /* 3×3 after nearest 2× */
} unet_up_block;

/* heads/tlayers are used only when attn. downsample_padding: 1 symmetric, 0 = (0, 1). */
cs_status unet_down_bind(unet_down_block *d, weight_binder *wb, const unet_block_params *p,
                         int64_t in_ch, int64_t out_ch, int64_t nlayers, bool attn, int64_t heads,
                         int64_t tlayers, bool add_down, int64_t downsample_padding,
                         const char *prefix);
cs_status unet_mid_bind(unet_mid_block *m, weight_binder *wb, const unet_block_params *p,
                        int64_t ch, int64_t heads, int64_t tlayers, float output_scale);
/* skip_ch[j]: channels of the residual layer j concatenates (stack order reversed). */
cs_status unet_up_bind(unet_up_block *u, weight_binder *wb, const unet_block_params *p,
                       int64_t prev_ch, int64_t out_ch, const int64_t *skip_ch, int64_t nlayers,
                       bool attn, int64_t heads, int64_t tlayers, bool add_up, const char *prefix);
void unet_down_free(unet_down_block *d);
void unet_mid_free(unet_mid_block *m);
void unet_up_free(unet_up_block *u);

/* Runs the block on x(B, in_ch, h, w); allocates each residual it outputs on the arena,
 * left there, and appends it to skips[*nskips] (incrementing *nskips). The block's output
 * is the last residual; *ho / *wo receive its size. */
void unet_down_forward(cs_ctx *c, const unet_down_block *d, const float *x, const float *temb_act,
                       const float *context, int64_t batch, int64_t h, int64_t w,
                       int64_t context_len, unet_skip *skips, int *nskips, int64_t *ho,
                       int64_t *wo);

/* y(B, ch, h, w) = mid block of x(B, ch, h, w). */
void unet_mid_forward(cs_ctx *c, const unet_mid_block *m, float *y, const float *x,
                      const float *temb_act, const float *context, int64_t batch, int64_t h,
                      int64_t w, int64_t context_len);

/* y(B, out_ch, h', w') from x(B, prev_ch, h, w) and the block's residuals: skips[0..nlayers)
 * in stack order (layer j uses skips[nlayers-1-j]). h' = 2h with upsampling, else h. */
void unet_up_forward(cs_ctx *c, const unet_up_block *u, float *y, const float *x,
                     const unet_skip *skips, const float *temb_act, const float *context,
                     int64_t batch, int64_t h, int64_t w, int64_t context_len);

#endif
