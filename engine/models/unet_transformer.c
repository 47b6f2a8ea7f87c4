/* Transformer2DModel and BasicTransformerBlock of the UNet (see unet_transformer.h),
 * following diffusers 0.27 transformer_2d.py / attention.py line by line. */
#include "unet_transformer.h"

#include <string.h>

#include "lora_modules.h"

static void tblock_bind(unet_tblock *b, weight_binder *wb, int64_t dim, int64_t heads,
                        int64_t head_dim, int64_t context_dim, const char *prefix) {
    memset(b, 0, sizeof *b);
    b->dim = dim;
    b->ff_inner = 4 * dim;       /* FeedForward(mult=4) */
    char name[WB_MAX_NAME + 32]; /* an over-long name fails in wb_add, not here */
#define SUB(s) (snprintf(name, sizeof name, "%s.%s", prefix, s), name)
    layer_norm_bind(&b->norm1, wb, dim, 1e-5f, SUB("norm1"));
    attention_bind(&b->attn1, wb, dim, dim, heads, head_dim, false, SUB("attn1"));
    layer_norm_bind(&b->norm2, wb, dim, 1e-5f, SUB("norm2"));
    attention_bind(&b->attn2, wb, dim, context_dim, heads, head_dim, false, SUB("attn2"));
    layer_norm_bind(&b->norm3, wb, dim, 1e-5f, SUB("norm3"));
    linear_bind(&b->ff_proj, wb, dim, 2 * b->ff_inner, true, SUB("ff.net.0.proj"));
    linear_bind(&b->ff_out, wb, b->ff_inner, dim, true, SUB("ff.net.2"));
#undef SUB
}

/* proj_in / proj_out: a 1×1 Conv2d (weight (out, in, 1, 1)) or a Linear (out, in). */
static void proj_bind(linear_layer *l, weight_binder *wb, int64_t in, int64_t out, bool linear,
                      const char *prefix, const char *what) {
    if (linear) {
        char name[WB_MAX_NAME];
        snprintf(name, sizeof name, "%s.%s", prefix, what);
        linear_bind(l, wb, in, out, true, name);
        return;
    }
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    wb_add_panels(wb, &l->w, LINEAR_PANELS, 4, WB_SHAPE(out, in, 1, 1), "%s.%s.weight", prefix,
                  what);
    wb_add1(wb, &l->b, out, "%s.%s.bias", prefix, what);
    char name[WB_MAX_NAME + 16];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    l->lora_slot = lora_module_add(wb->modules, name, false, in, out, 1, &l->w);
}

cs_status unet_transformer_bind(unet_transformer *t, weight_binder *wb, int64_t channels,
                                int64_t heads, int64_t nlayers, int64_t context_dim, int64_t groups,
                                bool linear_proj, const char *prefix) {
    memset(t, 0, sizeof *t);
    const int64_t head_dim = channels / heads; /* diffusers: out_channels // num_heads */
    CS_ASSERT(head_dim >= 1 && nlayers >= 1);
    t->channels = channels;
    t->inner = heads * head_dim;
    t->nlayers = nlayers;
    t->layers = cs_calloc((size_t)nlayers, sizeof *t->layers);
    if (!t->layers) return CS_ERR_NOMEM;
    char name[WB_MAX_NAME];
    snprintf(name, sizeof name, "%s.norm", prefix);
    group_norm_bind(&t->norm, wb, channels, groups, 1e-6f, name);
    proj_bind(&t->proj_in, wb, channels, t->inner, linear_proj, prefix, "proj_in");
    for (int64_t i = 0; i < nlayers; i++) {
        snprintf(name, sizeof name, "%s.transformer_blocks.%lld", prefix, (long long)i);
        tblock_bind(&t->layers[i], wb, t->inner, heads, head_dim, context_dim, name);
    }
    proj_bind(&t->proj_out, wb, t->inner, channels, linear_proj, prefix, "proj_out");
    return CS_OK;
}

void unet_transformer_free(unet_transformer *t) {
    if (!t) return;
    free(t->layers);
    t->layers = NULL;
}

/* h(B·L, D) in place: the three residual sub-blocks of BasicTransformerBlock. */
static void tblock_forward(cs_ctx *c, const unet_tblock *b, float *h, const float *context,
                           int64_t batch, int64_t len, int64_t context_len) {
    const int64_t rows = batch * len, d = b->dim, n = rows * d;
    size_t mark = ctx_mark(c);
    float *nrm = ctx_alloc(c, n); // (B, L, D)
    float *out = ctx_alloc(c, n); // (B, L, D)

    layer_norm_forward(c, &b->norm1, nrm, h, rows);
    attention_forward(c, &b->attn1, out, nrm, NULL, batch, len, len); // self-attention
    op_add(c, h, h, out, n);

    layer_norm_forward(c, &b->norm2, nrm, h, rows);
    attention_forward(c, &b->attn2, out, nrm, context, batch, len, context_len); // cross
    op_add(c, h, h, out, n);

    layer_norm_forward(c, &b->norm3, nrm, h, rows);
    float *act = ctx_alloc(c, rows * b->ff_inner); // (B, L, 4D)
    size_t mark_proj = ctx_mark(c);
    float *proj = ctx_alloc(c, rows * 2 * b->ff_inner); // (B, L, 8D) = value | gate
    linear_forward(c, &b->ff_proj, proj, nrm, batch, len);
    op_geglu(c, act, proj, rows, b->ff_inner); // value · gelu(gate)
    ctx_release(c, mark_proj);
    linear_forward(c, &b->ff_out, out, act, batch, len); // (B, L, D)
    op_add(c, h, h, out, n);
    ctx_release(c, mark);
}

void unet_transformer_forward(cs_ctx *c, const unet_transformer *t, float *x, const float *context,
                              int64_t batch, int64_t hw, int64_t context_len) {
    const int64_t ch = t->channels, rows = batch * hw;
    size_t mark = ctx_mark(c);
    float *h = ctx_alloc(c, rows * t->inner); // (B, HW, inner)
    size_t mark_in = ctx_mark(c);
    float *nrm = ctx_alloc(c, batch * ch * hw); // (B, C, HW)
    group_norm_forward(c, &t->norm, nrm, x, batch, hw);
    float *tok = ctx_alloc(c, rows * ch); // (B, HW, C)
    op_nchw_to_nlc(c, tok, nrm, batch, ch, hw);
    linear_forward(c, &t->proj_in, h, tok, batch, hw); // (B, HW, inner)
    ctx_release(c, mark_in);

    for (int64_t i = 0; i < t->nlayers; i++)
        tblock_forward(c, &t->layers[i], h, context, batch, hw, context_len);

    float *tok_out = ctx_alloc(c, rows * ch); // (B, HW, C)
    linear_forward(c, &t->proj_out, tok_out, h, batch, hw);
    float *res = ctx_alloc(c, batch * ch * hw); // (B, C, HW)
    op_nlc_to_nchw(c, res, tok_out, batch, ch, hw);
    op_add(c, x, x, res, batch * ch * hw); // + residual
    ctx_release(c, mark);
}
