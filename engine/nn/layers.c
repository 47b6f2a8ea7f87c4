/* Linear / Conv2d / GroupNorm / LayerNorm layers (see layers.h). */
#include "layers.h"

#include <string.h>

#include "lora.h"

void linear_bind(linear_layer *l, weight_binder *wb, int64_t in, int64_t out, bool bias,
                 const char *prefix) {
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    wb_add_panels(wb, &l->w, LINEAR_PANELS, 2, WB_SHAPE(out, in), "%s.weight", prefix);
    if (bias) wb_add1(wb, &l->b, out, "%s.bias", prefix);
    l->lora_slot = lora_module_add(wb->modules, prefix, false, in, out, 1, &l->w);
}

void conv_bind_padded(conv_layer *l, weight_binder *wb, int64_t in_ch, int64_t out_ch,
                      int64_t kernel, int64_t stride, int64_t pad_top, int64_t pad_left,
                      int64_t pad_bottom, int64_t pad_right, const char *prefix) {
    memset(l, 0, sizeof *l);
    *l = (conv_layer){.in_ch = in_ch, .out_ch = out_ch, .kernel = kernel, .stride = stride,
                      .pad_top = pad_top, .pad_left = pad_left, .pad_bottom = pad_bottom,
                      .pad_right = pad_right};
    wb_add_panels(wb, &l->w, CONV_PANELS, 4, WB_SHAPE(out_ch, in_ch, kernel, kernel),
                  "%s.weight", prefix);
    wb_add1(wb, &l->b, out_ch, "%s.bias", prefix);
    l->lora_slot = lora_module_add(wb->modules, prefix, true, in_ch, out_ch, kernel, &l->w);
}

void conv_bind(conv_layer *l, weight_binder *wb, int64_t in_ch, int64_t out_ch, int64_t kernel,
               int64_t stride, int64_t pad, const char *prefix) {
    conv_bind_padded(l, wb, in_ch, out_ch, kernel, stride, pad, pad, pad, pad, prefix);
}

void group_norm_bind(norm_layer *l, weight_binder *wb, int64_t channels, int64_t groups,
                     float eps, const char *prefix) {
    *l = (norm_layer){.channels = channels, .groups = groups, .eps = eps};
    wb_add1(wb, &l->w, channels, "%s.weight", prefix);
    wb_add1(wb, &l->b, channels, "%s.bias", prefix);
}

void layer_norm_bind(norm_layer *l, weight_binder *wb, int64_t dim, float eps,
                     const char *prefix) {
    group_norm_bind(l, wb, dim, 0, eps, prefix);
}

/* The LoRA entry of `slot` in use k of batch item i, or NULL. */
static const lora_delta *lora_at(const cs_ctx *c, int64_t i, int k, int32_t slot) {
    return c->lora->row[i].use[k].deltas[slot - 1];
}

/* The scale of use k of item i on entry d: weight · alpha / r, in double like the rule. */
static float lora_scale(const cs_ctx *c, int64_t i, int k, const lora_delta *d) {
    return (float)(c->lora->row[i].use[k].weight * d->alpha_over_r);
}

void linear_forward(cs_ctx *c, const linear_layer *l, float *y, const float *x, int64_t batch,
                    int64_t rows) {
    op_linear_packed(c, y, x, l->w, l->b, batch * rows, l->in, l->out);
    if (!l->lora_slot) return;
    if (c->measuring) { /* plan for the largest rank any LoRA may have */
        op_linear_lowrank(c, y, x, NULL, NULL, 0, rows, l->in, LORA_MAX_RANK, l->out);
        return;
    }
    if (!c->lora) return;
    CS_ASSERT(c->lora->rows == batch);
    for (int64_t i = 0; i < batch; i++)
        for (int k = 0; k < c->lora->row[i].n; k++) {
            const lora_delta *d = lora_at(c, i, k, l->lora_slot);
            if (d)
                op_linear_lowrank(c, y + i * rows * l->out, x + i * rows * l->in, d->down, d->up,
                                  lora_scale(c, i, k, d), rows, l->in, d->rank, l->out);
        }
}

static op_conv2d_shape conv_shape(const conv_layer *l, int64_t batch, int64_t h, int64_t w) {
    return (op_conv2d_shape){.batch = batch, .in_ch = l->in_ch, .height = h, .width = w,
                             .out_ch = l->out_ch, .kernel = l->kernel, .stride = l->stride,
                             .pad_top = l->pad_top, .pad_left = l->pad_left,
                             .pad_bottom = l->pad_bottom, .pad_right = l->pad_right};
}

void conv_out_size(const conv_layer *l, int64_t h, int64_t w, int64_t *ho, int64_t *wo) {
    op_conv2d_shape s = conv_shape(l, 1, h, w);
    *ho = op_conv2d_out_h(&s);
    *wo = op_conv2d_out_w(&s);
}

void conv_forward(cs_ctx *c, const conv_layer *l, float *y, const float *x, int64_t batch,
                  int64_t h, int64_t w, int64_t *ho, int64_t *wo) {
    op_conv2d_shape s = conv_shape(l, batch, h, w);
    op_conv2d_packed(c, y, x, l->w, l->b, &s);
    if (ho) *ho = op_conv2d_out_h(&s);
    if (wo) *wo = op_conv2d_out_w(&s);
    if (!l->lora_slot || (!c->measuring && !c->lora)) return;
    const op_conv2d_shape one = conv_shape(l, 1, h, w);
    const int64_t in_numel = l->in_ch * h * w;
    const int64_t out_numel = l->out_ch * op_conv2d_out_h(&s) * op_conv2d_out_w(&s);
    if (c->measuring) {
        op_conv2d_lowrank(c, y, x, NULL, NULL, 0, &one, LORA_MAX_RANK);
        return;
    }
    CS_ASSERT(c->lora->rows == batch);
    for (int64_t i = 0; i < batch; i++)
        for (int k = 0; k < c->lora->row[i].n; k++) {
            const lora_delta *d = lora_at(c, i, k, l->lora_slot);
            if (d)
                op_conv2d_lowrank(c, y + i * out_numel, x + i * in_numel, d->down, d->up,
                                  lora_scale(c, i, k, d), &one, d->rank);
        }
}

void group_norm_forward(cs_ctx *c, const norm_layer *l, float *y, const float *x, int64_t batch,
                        int64_t hw) {
    op_group_norm(c, y, x, l->w, l->b, batch, l->channels, hw, l->groups, l->eps);
}

void layer_norm_forward(cs_ctx *c, const norm_layer *l, float *y, const float *x, int64_t rows) {
    op_layer_norm(c, y, x, l->w, l->b, rows, l->channels, l->eps);
}
