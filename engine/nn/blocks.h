/*
 * Building blocks shared by the UNet and the VAE, mirroring diffusers' modules and
 * checkpoint names:
 *   ResnetBlock2D  <prefix>.{norm1,conv1,time_emb_proj,norm2,conv2,conv_shortcut}
 *   Attention      <prefix>.{to_q,to_k,to_v,to_out.0}  (multi-head, self or cross)
 *   Downsample2D   <prefix>.conv            (3×3, stride 2)
 *   Upsample2D     <prefix>.conv            (nearest 2× then 3×3)
 *
 * Structs hold shapes and borrowed weights; read-only after load.
 */
#ifndef CS_BLOCKS_H
#define CS_BLOCKS_H

#include "layers.h"

typedef struct resnet_block {
    int64_t in_ch, out_ch;
    int64_t temb_ch;     /* 0: no timestep input (VAE) */
    bool scale_shift;    /* resnet_time_scale_shift == "scale_shift" (AdaGN) */
    float output_scale;  /* output_scale_factor: y = (x + h) / output_scale */
    norm_layer norm1, norm2;
    conv_layer conv1, conv2;
    linear_layer time_emb_proj; /* temb_ch -> out_ch, or 2·out_ch with scale_shift */
    bool has_shortcut;          /* in_ch != out_ch: 1×1 conv_shortcut */
    conv_layer conv_shortcut;
} resnet_block;

void resnet_bind(resnet_block *r, weight_binder *wb, int64_t in_ch, int64_t out_ch,
                 int64_t temb_ch, int64_t groups, float eps, bool scale_shift,
                 float output_scale, const char *prefix);

/* y(B, out_ch, H, W) from x(B, in_ch, H, W). temb_act(B, temb_ch) is the timestep
 * embedding after the SiLU diffusers applies inside the block (computed once per forward
 * by the caller), or NULL when temb_ch == 0. y must not alias x. */
void resnet_forward(cs_ctx *c, const resnet_block *r, float *y, const float *x,
                    const float *temb_act, int64_t batch, int64_t h, int64_t w);

typedef struct attention_module {
    int64_t query_dim, context_dim, heads, head_dim; /* inner = heads · head_dim */
    linear_layer to_q, to_k, to_v, to_out;
} attention_module;

/* qkv_bias: UNet transformer blocks have none, the VAE's mid-block attention has them. */
void attention_bind(attention_module *a, weight_binder *wb, int64_t query_dim,
                    int64_t context_dim, int64_t heads, int64_t head_dim, bool qkv_bias,
                    const char *prefix);

/* y(B, Lq, query_dim) = to_out(softmax(q kᵀ / sqrt(head_dim)) v) with q from x(B, Lq,
 * query_dim) and k, v from context(B, Lk, context_dim), or from x when context is NULL
 * (then Lk must equal Lq). y must not alias x or context. */
void attention_forward(cs_ctx *c, const attention_module *a, float *y, const float *x,
                       const float *context, int64_t batch, int64_t q_len, int64_t kv_len);

/* Upsample2D with conv: y(B, C, 2H, 2W). */
void upsample_forward(cs_ctx *c, const conv_layer *conv, float *y, const float *x, int64_t batch,
                      int64_t h, int64_t w);

#endif
