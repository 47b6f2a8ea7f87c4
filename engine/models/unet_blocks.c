/* Down, mid and up blocks of the UNet (see unet_blocks.h), following diffusers 0.27
 * CrossAttnDownBlock2D / DownBlock2D / UNetMidBlock2DCrossAttn / CrossAttnUpBlock2D /
 * UpBlock2D. */
#include "unet_blocks.h"

#include <string.h>

static void bind_resnet(resnet_block *r, weight_binder *wb, const unet_block_params *p,
                        int64_t in_ch, int64_t out_ch, float output_scale, const char *prefix,
                        int64_t index) {
    char name[WB_MAX_NAME];
    snprintf(name, sizeof name, "%s.resnets.%lld", prefix, (long long)index);
    resnet_bind(r, wb, in_ch, out_ch, p->temb_ch, p->groups, p->eps, p->scale_shift, output_scale,
                name);
}

static cs_status bind_attn(unet_transformer *t, weight_binder *wb, const unet_block_params *p,
                           int64_t ch, int64_t heads, int64_t tlayers, const char *prefix,
                           int64_t index) {
    char name[WB_MAX_NAME];
    snprintf(name, sizeof name, "%s.attentions.%lld", prefix, (long long)index);
    return unet_transformer_bind(t, wb, ch, heads, tlayers, p->context_dim, p->groups,
                                 p->linear_proj, name);
}

/* The resnet and (optional) transformer arrays of a down or up block. */
static cs_status alloc_layers(int64_t nlayers, bool attn, resnet_block **resnets,
                              unet_transformer **attns) {
    *resnets = cs_calloc((size_t)nlayers, sizeof **resnets);
    *attns = attn ? cs_calloc((size_t)nlayers, sizeof **attns) : NULL;
    return *resnets && (!attn || *attns) ? CS_OK : CS_ERR_NOMEM;
}

static void free_layers(int64_t nlayers, resnet_block **resnets, unet_transformer **attns) {
    for (int64_t i = 0; *attns && i < nlayers; i++)
        unet_transformer_free(&(*attns)[i]);
    free(*resnets);
    free(*attns);
    *resnets = NULL;
    *attns = NULL;
}

cs_status unet_down_bind(unet_down_block *d, weight_binder *wb, const unet_block_params *p,
                         int64_t in_ch, int64_t out_ch, int64_t nlayers, bool attn, int64_t heads,
                         int64_t tlayers, bool add_down, int64_t downsample_padding,
                         const char *prefix) {
    memset(d, 0, sizeof *d);
    d->in_ch = in_ch;
    d->out_ch = out_ch;
    d->nlayers = nlayers;
    cs_status st = alloc_layers(nlayers, attn, &d->resnets, &d->attns);
    for (int64_t i = 0; i < nlayers && st == CS_OK; i++) {
        bind_resnet(&d->resnets[i], wb, p, i == 0 ? in_ch : out_ch, out_ch, 1.0f, prefix, i);
        if (attn) st = bind_attn(&d->attns[i], wb, p, out_ch, heads, tlayers, prefix, i);
    }
    d->has_down = add_down;
    if (add_down) {
        char name[WB_MAX_NAME];
        snprintf(name, sizeof name, "%s.downsamplers.0.conv", prefix);
        /* Downsample2D: padding 0 means F.pad(x, (0, 1, 0, 1)) then an unpadded conv. */
        int64_t pad = downsample_padding;
        conv_bind_padded(&d->down, wb, out_ch, out_ch, 3, 2, pad, pad, pad ? pad : 1, pad ? pad : 1,
                         name);
    }
    return st;
}

void unet_down_free(unet_down_block *d) {
    if (d) free_layers(d->nlayers, &d->resnets, &d->attns);
}

cs_status unet_mid_bind(unet_mid_block *m, weight_binder *wb, const unet_block_params *p,
                        int64_t ch, int64_t heads, int64_t tlayers, float output_scale) {
    memset(m, 0, sizeof *m);
    bind_resnet(&m->res0, wb, p, ch, ch, output_scale, "mid_block", 0);
    cs_status st = bind_attn(&m->attn, wb, p, ch, heads, tlayers, "mid_block", 0);
    bind_resnet(&m->res1, wb, p, ch, ch, output_scale, "mid_block", 1);
    return st;
}

void unet_mid_free(unet_mid_block *m) {
    if (m) unet_transformer_free(&m->attn);
}

cs_status unet_up_bind(unet_up_block *u, weight_binder *wb, const unet_block_params *p,
                       int64_t prev_ch, int64_t out_ch, const int64_t *skip_ch, int64_t nlayers,
                       bool attn, int64_t heads, int64_t tlayers, bool add_up, const char *prefix) {
    memset(u, 0, sizeof *u);
    u->prev_ch = prev_ch;
    u->out_ch = out_ch;
    u->nlayers = nlayers;
    cs_status st = alloc_layers(nlayers, attn, &u->resnets, &u->attns);
    for (int64_t i = 0; i < nlayers && st == CS_OK; i++) {
        int64_t in = (i == 0 ? prev_ch : out_ch) + skip_ch[i];
        bind_resnet(&u->resnets[i], wb, p, in, out_ch, 1.0f, prefix, i);
        if (attn) st = bind_attn(&u->attns[i], wb, p, out_ch, heads, tlayers, prefix, i);
    }
    u->has_up = add_up;
    if (add_up) {
        char name[WB_MAX_NAME];
        snprintf(name, sizeof name, "%s.upsamplers.0.conv", prefix);
        conv_bind(&u->up, wb, out_ch, out_ch, 3, 1, 1, name);
    }
    return st;
}

void unet_up_free(unet_up_block *u) {
    if (u) free_layers(u->nlayers, &u->resnets, &u->attns);
}

void unet_down_forward(cs_ctx *c, const unet_down_block *d, const float *x, const float *temb_act,
                       const float *context, int64_t batch, int64_t h, int64_t w,
                       int64_t context_len, unet_skip *skips, int *nskips, int64_t *ho,
                       int64_t *wo) {
    const int64_t ch = d->out_ch;
    const float *hid = x;
    for (int64_t i = 0; i < d->nlayers; i++) {
        float *out = ctx_alloc(c, batch * ch * h * w); // (B, out, H, W), kept as a residual
        resnet_forward(c, &d->resnets[i], out, hid, temb_act, batch, h, w);
        if (d->attns)
            unet_transformer_forward(c, &d->attns[i], out, context, batch, h * w, context_len);
        skips[(*nskips)++] = (unet_skip){out, ch, h, w};
        hid = out;
    }
    if (d->has_down) {
        int64_t h2, w2;
        conv_out_size(&d->down, h, w, &h2, &w2);
        float *out = ctx_alloc(c, batch * ch * h2 * w2); // (B, out, H/2, W/2)
        conv_forward(c, &d->down, out, hid, batch, h, w, NULL, NULL);
        skips[(*nskips)++] = (unet_skip){out, ch, h2, w2};
        h = h2;
        w = w2;
    }
    *ho = h;
    *wo = w;
}

void unet_mid_forward(cs_ctx *c, const unet_mid_block *m, float *y, const float *x,
                      const float *temb_act, const float *context, int64_t batch, int64_t h,
                      int64_t w, int64_t context_len) {
    const int64_t ch = m->res0.out_ch;
    size_t mark = ctx_mark(c);
    float *t = ctx_alloc(c, batch * ch * h * w); // (B, C, H, W)
    resnet_forward(c, &m->res0, t, x, temb_act, batch, h, w);
    unet_transformer_forward(c, &m->attn, t, context, batch, h * w, context_len);
    resnet_forward(c, &m->res1, y, t, temb_act, batch, h, w);
    ctx_release(c, mark);
}

void unet_up_forward(cs_ctx *c, const unet_up_block *u, float *y, const float *x,
                     const unet_skip *skips, const float *temb_act, const float *context,
                     int64_t batch, int64_t h, int64_t w, int64_t context_len) {
    const int64_t hw = h * w, ch = u->out_ch;
    int64_t cat_max = 0;
    for (int64_t i = 0; i < u->nlayers; i++)
        if (u->resnets[i].in_ch > cat_max) cat_max = u->resnets[i].in_ch;
    size_t mark = ctx_mark(c);
    float *cat = ctx_alloc(c, batch * cat_max * hw);             // (B, Cin + Cskip, H, W)
    float *t = u->has_up ? ctx_alloc(c, batch * ch * hw) : NULL; // (B, out, H, W)
    const float *hid = x;
    int64_t hid_ch = u->prev_ch;
    for (int64_t i = 0; i < u->nlayers; i++) {
        const unet_skip *s = &skips[u->nlayers - 1 - i]; // res_hidden_states_tuple[-1]
        CS_ASSERT(s->h == h && s->w == w && hid_ch + s->ch == u->resnets[i].in_ch);
        op_concat_channels(c, cat, hid, hid_ch, s->data, s->ch, batch, hw);
        /* cat holds the layer's whole input, so the output may overwrite hid: every layer
         * writes y directly, or t when the upsampler still has to map t to y. */
        float *out = u->has_up ? t : y;
        resnet_forward(c, &u->resnets[i], out, cat, temb_act, batch, h, w);
        if (u->attns)
            unet_transformer_forward(c, &u->attns[i], out, context, batch, hw, context_len);
        hid = out;
        hid_ch = ch;
    }
    if (u->has_up) upsample_forward(c, &u->up, y, hid, batch, h, w); // (B, out, 2H, 2W)
    ctx_release(c, mark);
}
