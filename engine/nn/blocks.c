/* ResnetBlock2D, Attention and Upsample2D (see blocks.h). Forward passes follow
 * diffusers' module code line by line so a debug tap lines up with the reference. */
#include "blocks.h"

#include <math.h>
#include <string.h>

void resnet_bind(resnet_block *r, weight_binder *wb, int64_t in_ch, int64_t out_ch,
                 int64_t temb_ch, int64_t groups, float eps, bool scale_shift,
                 float output_scale, const char *prefix) {
    memset(r, 0, sizeof *r);
    r->in_ch = in_ch;
    r->out_ch = out_ch;
    r->temb_ch = temb_ch;
    r->scale_shift = scale_shift;
    r->output_scale = output_scale;
    char name[WB_MAX_NAME];
#define SUB(s) (snprintf(name, sizeof name, "%s.%s", prefix, s), name)
    group_norm_bind(&r->norm1, wb, in_ch, groups, eps, SUB("norm1"));
    conv_bind(&r->conv1, wb, in_ch, out_ch, 3, 1, 1, SUB("conv1"));
    if (temb_ch > 0)
        linear_bind(&r->time_emb_proj, wb, temb_ch, scale_shift ? 2 * out_ch : out_ch, true,
                    SUB("time_emb_proj"));
    group_norm_bind(&r->norm2, wb, out_ch, groups, eps, SUB("norm2"));
    conv_bind(&r->conv2, wb, out_ch, out_ch, 3, 1, 1, SUB("conv2"));
    r->has_shortcut = in_ch != out_ch;
    if (r->has_shortcut) conv_bind(&r->conv_shortcut, wb, in_ch, out_ch, 1, 1, 0, SUB("conv_shortcut"));
#undef SUB
}

void resnet_forward(cs_ctx *c, const resnet_block *r, float *y, const float *x,
                    const float *temb_act, int64_t batch, int64_t h, int64_t w) {
    const int64_t hw = h * w, cin = r->in_ch, cout = r->out_ch;
    size_t mark = ctx_mark(c);
    float *t = ctx_alloc(c, batch * cin * hw);               // (B, Cin, H, W)
    group_norm_forward(c, &r->norm1, t, x, batch, hw);
    op_silu(c, t, t, batch * cin * hw);
    float *hid = ctx_alloc(c, batch * cout * hw);            // (B, Cout, H, W)
    conv_forward(c, &r->conv1, hid, t, batch, h, w, NULL, NULL);
    float *proj = NULL;
    if (r->temb_ch > 0) {
        proj = ctx_alloc(c, batch * r->time_emb_proj.out); // (B, Cout) or (B, 2·Cout)
        linear_forward(c, &r->time_emb_proj, proj, temb_act, batch, 1);
    }
    if (proj && !r->scale_shift) op_add_channel_bias(c, hid, proj, batch, cout, hw);
    group_norm_forward(c, &r->norm2, hid, hid, batch, hw);
    if (proj && r->scale_shift) op_scale_shift(c, hid, proj, batch, cout, hw);
    op_silu(c, hid, hid, batch * cout * hw);
    conv_forward(c, &r->conv2, y, hid, batch, h, w, NULL, NULL); // (B, Cout, H, W)
    const float *skip = x;
    if (r->has_shortcut) {
        conv_forward(c, &r->conv_shortcut, hid, x, batch, h, w, NULL, NULL);
        skip = hid;
    }
    op_add(c, y, y, skip, batch * cout * hw);
    if (r->output_scale != 1.0f) op_scale(c, y, y, 1.0f / r->output_scale, batch * cout * hw);
    ctx_release(c, mark);
}

void attention_bind(attention_module *a, weight_binder *wb, int64_t query_dim,
                    int64_t context_dim, int64_t heads, int64_t head_dim, bool qkv_bias,
                    const char *prefix) {
    memset(a, 0, sizeof *a);
    a->query_dim = query_dim;
    a->context_dim = context_dim;
    a->heads = heads;
    a->head_dim = head_dim;
    const int64_t inner = heads * head_dim;
    char name[WB_MAX_NAME];
#define SUB(s) (snprintf(name, sizeof name, "%s.%s", prefix, s), name)
    linear_bind(&a->to_q, wb, query_dim, inner, qkv_bias, SUB("to_q"));
    linear_bind(&a->to_k, wb, context_dim, inner, qkv_bias, SUB("to_k"));
    linear_bind(&a->to_v, wb, context_dim, inner, qkv_bias, SUB("to_v"));
    linear_bind(&a->to_out, wb, inner, query_dim, true, SUB("to_out.0"));
#undef SUB
}

void attention_forward(cs_ctx *c, const attention_module *a, float *y, const float *x,
                       const float *context, int64_t batch, int64_t q_len, int64_t kv_len) {
    const int64_t inner = a->heads * a->head_dim;
    if (!context) {
        CS_ASSERT(kv_len == q_len && a->context_dim == a->query_dim);
        context = x;
    }
    size_t mark = ctx_mark(c);
    float *q = ctx_alloc(c, batch * q_len * inner);  // (B, Lq, inner)
    float *k = ctx_alloc(c, batch * kv_len * inner); // (B, Lk, inner)
    float *v = ctx_alloc(c, batch * kv_len * inner); // (B, Lk, inner)
    linear_forward(c, &a->to_q, q, x, batch, q_len);
    linear_forward(c, &a->to_k, k, context, batch, kv_len);
    linear_forward(c, &a->to_v, v, context, batch, kv_len);
    float *o = ctx_alloc(c, batch * q_len * inner);  // (B, Lq, inner)
    op_attn_shape s = {.batch = batch, .heads = a->heads, .q_len = q_len, .kv_len = kv_len,
                       .head_dim = a->head_dim, .q_stride = inner, .kv_stride = inner,
                       .out_stride = inner, .scale = 1.0f / sqrtf((float)a->head_dim),
                       .causal = false,
                       .bf16 = a->to_q.w.dtype == GEMM_BF16X2};
    op_attention(c, o, q, k, v, &s);
    linear_forward(c, &a->to_out, y, o, batch, q_len); // (B, Lq, query_dim)
    ctx_release(c, mark);
}

void upsample_forward(cs_ctx *c, const conv_layer *conv, float *y, const float *x, int64_t batch,
                      int64_t h, int64_t w) {
    size_t mark = ctx_mark(c);
    float *up = ctx_alloc(c, batch * conv->in_ch * 4 * h * w); // (B, C, 2H, 2W)
    op_upsample_nearest2x(c, up, x, batch, conv->in_ch, h, w);
    conv_forward(c, conv, y, up, batch, 2 * h, 2 * w, NULL, NULL);
    ctx_release(c, mark);
}
