/*
 * The parameterised layers every component is built from (Linear, Conv2d, GroupNorm,
 * LayerNorm): a struct holding the shapes and borrowed weight pointers, a bind function
 * that registers the weights under a checkpoint prefix (PyTorch names: <prefix>.weight,
 * <prefix>.bias), and a forward that is a single ops.h call.
 *
 * Weight pointers are borrowed from the component's weight_block. Read-only after load.
 */
#ifndef CS_LAYERS_H
#define CS_LAYERS_H

#include "gemm.h"
#include "ops.h"
#include "weights.h"

/* Layers hold their weight matrix in gemm.h's panel layout, packed in place at load
 * (wb_add_panels): a linear weight as the B operand, a conv weight as the A operand; fp32,
 * or F16 / BF16 as the checkpoint stores it (widened per k-block by the GEMM driver). */
enum { LINEAR_PANELS = GEMM_NR, CONV_PANELS = GEMM_MR };

typedef struct linear_layer {
    int64_t in, out;
    gemm_weights w; /* (out, in), in panels of LINEAR_PANELS (gemm_pack_panels) */
    float *b; /* (out) or NULL */
    int32_t lora_slot; /* 1 + index in the component's LoRA module table; 0: never patched */
} linear_layer;

typedef struct conv_layer {
    int64_t in_ch, out_ch, kernel, stride;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
    gemm_weights w; /* (out_ch, in_ch·k·k), in panels of CONV_PANELS (gemm_pack_panels) */
    float *b; /* (out_ch) */
    int32_t lora_slot; /* as linear_layer's */
} conv_layer;

typedef struct norm_layer {
    int64_t channels, groups; /* groups = 0: LayerNorm over the last dim */
    float eps;
    float *w, *b; /* (channels) */
} norm_layer;

/* `prefix` is the module's checkpoint name, e.g. "down_blocks.0.resnets.1.conv1". When the
 * binder carries a LoRA module table, linear and conv layers register there under it. */
void linear_bind(linear_layer *l, weight_binder *wb, int64_t in, int64_t out, bool bias,
                 const char *prefix);
/* Symmetric padding `pad`; use conv_bind_padded for asymmetric padding. */
void conv_bind(conv_layer *l, weight_binder *wb, int64_t in_ch, int64_t out_ch, int64_t kernel,
               int64_t stride, int64_t pad, const char *prefix);
void conv_bind_padded(conv_layer *l, weight_binder *wb, int64_t in_ch, int64_t out_ch,
                      int64_t kernel, int64_t stride, int64_t pad_top, int64_t pad_left,
                      int64_t pad_bottom, int64_t pad_right, const char *prefix);
void group_norm_bind(norm_layer *l, weight_binder *wb, int64_t channels, int64_t groups,
                     float eps, const char *prefix);
void layer_norm_bind(norm_layer *l, weight_binder *wb, int64_t dim, float eps,
                     const char *prefix);

/* y(B, rows, out) = x(B, rows, in) W^T + b, all rows in one product (op_linear_packed), plus the
 * LoRA side path of the items c->lora gives LoRAs for this layer. */
void linear_forward(cs_ctx *c, const linear_layer *l, float *y, const float *x, int64_t batch,
                    int64_t rows);
/* y(B, out, Ho, Wo) = conv(x(B, in, H, W)) [+ LoRA side path, as linear_forward];
 * *ho / *wo receive the output size if non-NULL. */
void conv_forward(cs_ctx *c, const conv_layer *l, float *y, const float *x, int64_t batch,
                  int64_t h, int64_t w, int64_t *ho, int64_t *wo);
/* Output spatial size of l on an h × w input. */
void conv_out_size(const conv_layer *l, int64_t h, int64_t w, int64_t *ho, int64_t *wo);
/* GroupNorm on (B, C, HW). */
void group_norm_forward(cs_ctx *c, const norm_layer *l, float *y, const float *x, int64_t batch,
                        int64_t hw);
/* LayerNorm on (rows, C). */
void layer_norm_forward(cs_ctx *c, const norm_layer *l, float *y, const float *x, int64_t rows);

#endif
