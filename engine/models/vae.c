/*
 * AutoencoderKL (see vae.h): the weight table, loading, and the encoder / decoder forward
 * passes, following diffusers' autoencoder_kl.py, vae.py (Encoder, Decoder) and
 * unet_2d_blocks.py (DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D) line by line.
 *
 * Memory: a forward pass runs through two ping-pong buffers sized for its largest
 * stage; blocks read one and write the other (resnet_forward must not alias). The
 * model is read-only after load; forward passes use only the caller's ctx.
 */
#include "vae.h"

#include <string.h>

#include "blocks.h"
#include "config.h"

/* Every VAE norm uses diffusers' eps 1e-6 (resnets, attention group_norm, conv_norm_out). */
#define VAE_EPS 1e-6f

/* UNetMidBlock2D: resnet, [attention], resnet; the attention is single-head with
 * head_dim = channels (attention_head_dim = block_out_channels[-1]). */
typedef struct vae_mid_block {
    int64_t channels;
    resnet_block res0, res1;
    bool has_attn;
    norm_layer attn_norm;  /* attentions.0.group_norm */
    attention_module attn; /* attentions.0.{to_q,to_k,to_v,to_out.0} */
} vae_mid_block;

/* DownEncoderBlock2D: layers_per_block resnets, then Downsample2D (pad right/bottom by 1,
 * 3×3 stride 2) on all but the last block. */
typedef struct vae_down_block {
    int64_t in_ch, out_ch;
    resnet_block res[VAE_MAX_LAYERS];
    bool has_down;
    conv_layer down; /* downsamplers.0.conv */
} vae_down_block;

/* UpDecoderBlock2D: layers_per_block + 1 resnets, then Upsample2D (nearest 2×, 3×3) on all
 * but the last block. */
typedef struct vae_up_block {
    int64_t in_ch, out_ch;
    resnet_block res[VAE_MAX_LAYERS + 1];
    bool has_up;
    conv_layer up; /* upsamplers.0.conv */
} vae_up_block;

struct vae_model {
    vae_config cfg;
    /* encoder */
    conv_layer enc_conv_in;
    vae_down_block down[VAE_MAX_BLOCKS];
    vae_mid_block enc_mid;
    norm_layer enc_norm_out;
    conv_layer enc_conv_out; /* -> 2·latent_channels (double_z) */
    conv_layer quant_conv;   /* 1×1, 2·lc -> 2·lc */
    /* decoder */
    conv_layer post_quant_conv; /* 1×1, lc -> lc */
    conv_layer dec_conv_in;
    vae_mid_block dec_mid;
    vae_up_block up[VAE_MAX_BLOCKS];
    norm_layer dec_norm_out;
    conv_layer dec_conv_out;
    weight_block weights; /* owns every weight pointer above; empty when unloaded */
};

/* ---- weight table ---- */

/* Old diffusers checkpoints (SD 1.x as first published) name the attention projections
 * query/key/value/proj_attn; diffusers renames them on load, so accept either, choosing by
 * which the file holds. */
static void mid_attn_bind(vae_mid_block *mb, weight_binder *wb, const st_file *f, int64_t groups,
                          const char *prefix) {
    char p[WB_MAX_NAME / 2], probe[WB_MAX_NAME]; /* prefixes are short ("decoder.mid_block") */
    const int64_t ch = mb->channels;
    snprintf(p, sizeof p, "%s.attentions.0", prefix);
    snprintf(probe, sizeof probe, "%s.query.weight", p);
    char name[WB_MAX_NAME];
#define SUB(s) (snprintf(name, sizeof name, "%s.%s", p, s), name)
    group_norm_bind(&mb->attn_norm, wb, ch, groups, VAE_EPS, SUB("group_norm"));
    if (f && st_find(f, probe)) {
        attention_module *a = &mb->attn;
        *a = (attention_module){.query_dim = ch, .context_dim = ch, .heads = 1, .head_dim = ch};
        linear_bind(&a->to_q, wb, ch, ch, true, SUB("query"));
        linear_bind(&a->to_k, wb, ch, ch, true, SUB("key"));
        linear_bind(&a->to_v, wb, ch, ch, true, SUB("value"));
        linear_bind(&a->to_out, wb, ch, ch, true, SUB("proj_attn"));
    } else {
        attention_bind(&mb->attn, wb, ch, ch, 1, ch, true, p);
    }
#undef SUB
}

static void mid_bind(vae_mid_block *mb, weight_binder *wb, const st_file *f, int64_t ch,
                     int64_t groups, bool add_attention, const char *prefix) {
    char name[WB_MAX_NAME];
    mb->channels = ch;
    snprintf(name, sizeof name, "%s.resnets.0", prefix);
    resnet_bind(&mb->res0, wb, ch, ch, 0, groups, VAE_EPS, false, 1.0f, name);
    mb->has_attn = add_attention;
    if (add_attention) mid_attn_bind(mb, wb, f, groups, prefix);
    snprintf(name, sizeof name, "%s.resnets.1", prefix);
    resnet_bind(&mb->res1, wb, ch, ch, 0, groups, VAE_EPS, false, 1.0f, name);
}

/* Registers every parameter of cfg; f (may be NULL) only chooses legacy attention names. */
static void model_bind(vae_model *m, weight_binder *wb, const st_file *f) {
    const vae_config *cfg = &m->cfg;
    const int64_t nb = cfg->num_blocks, lc = cfg->latent_channels, g = cfg->norm_num_groups;
    const int64_t *boc = cfg->block_out_channels, top = boc[nb - 1];
    char name[WB_MAX_NAME];

    /* Encoder */
    conv_bind(&m->enc_conv_in, wb, cfg->in_channels, boc[0], 3, 1, 1, "encoder.conv_in");
    int64_t ch = boc[0];
    for (int64_t i = 0; i < nb; i++) {
        vae_down_block *d = &m->down[i];
        d->in_ch = ch;
        d->out_ch = boc[i];
        for (int64_t j = 0; j < cfg->layers_per_block; j++) {
            snprintf(name, sizeof name, "encoder.down_blocks.%lld.resnets.%lld", (long long)i,
                     (long long)j);
            resnet_bind(&d->res[j], wb, j == 0 ? d->in_ch : d->out_ch, d->out_ch, 0, g, VAE_EPS,
                        false, 1.0f, name);
        }
        d->has_down = i != nb - 1;
        if (d->has_down) {
            /* Downsample2D with padding=0 pads (left 0, right 1, top 0, bottom 1). */
            snprintf(name, sizeof name, "encoder.down_blocks.%lld.downsamplers.0.conv",
                     (long long)i);
            conv_bind_padded(&d->down, wb, d->out_ch, d->out_ch, 3, 2, 0, 0, 1, 1, name);
        }
        ch = d->out_ch;
    }
    mid_bind(&m->enc_mid, wb, f, top, g, cfg->mid_block_add_attention, "encoder.mid_block");
    group_norm_bind(&m->enc_norm_out, wb, top, g, VAE_EPS, "encoder.conv_norm_out");
    conv_bind(&m->enc_conv_out, wb, top, 2 * lc, 3, 1, 1, "encoder.conv_out");
    conv_bind(&m->quant_conv, wb, 2 * lc, 2 * lc, 1, 1, 0, "quant_conv");

    /* Decoder: channels run through block_out_channels reversed. */
    conv_bind(&m->post_quant_conv, wb, lc, lc, 1, 1, 0, "post_quant_conv");
    conv_bind(&m->dec_conv_in, wb, lc, top, 3, 1, 1, "decoder.conv_in");
    mid_bind(&m->dec_mid, wb, f, top, g, cfg->mid_block_add_attention, "decoder.mid_block");
    ch = top;
    for (int64_t i = 0; i < nb; i++) {
        vae_up_block *u = &m->up[i];
        u->in_ch = ch;
        u->out_ch = boc[nb - 1 - i];
        for (int64_t j = 0; j <= cfg->layers_per_block; j++) {
            snprintf(name, sizeof name, "decoder.up_blocks.%lld.resnets.%lld", (long long)i,
                     (long long)j);
            resnet_bind(&u->res[j], wb, j == 0 ? u->in_ch : u->out_ch, u->out_ch, 0, g, VAE_EPS,
                        false, 1.0f, name);
        }
        u->has_up = i != nb - 1;
        if (u->has_up) {
            snprintf(name, sizeof name, "decoder.up_blocks.%lld.upsamplers.0.conv", (long long)i);
            conv_bind(&u->up, wb, u->out_ch, u->out_ch, 3, 1, 1, name);
        }
        ch = u->out_ch;
    }
    group_norm_bind(&m->dec_norm_out, wb, boc[0], g, VAE_EPS, "decoder.conv_norm_out");
    conv_bind(&m->dec_conv_out, wb, boc[0], cfg->out_channels, 3, 1, 1, "decoder.conv_out");
}

/* ---- loading ---- */

static cs_status model_new(const vae_config *cfg, vae_model **out, char *msg, size_t n) {
    *out = cs_calloc(1, sizeof **out);
    if (!*out) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for the VAE");
    (*out)->cfg = *cfg;
    return CS_OK;
}

cs_status vae_new_unloaded(const vae_config *cfg, vae_model **out, char *msg, size_t n) {
    CS_ASSERT(cfg->num_blocks >= 1 && cfg->num_blocks <= VAE_MAX_BLOCKS);
    CS_ASSERT(cfg->layers_per_block >= 1 && cfg->layers_per_block <= VAE_MAX_LAYERS);
    cs_status st = model_new(cfg, out, msg, n);
    if (st != CS_OK) return st;
    weight_binder wb;
    wb_init(&wb); /* the table only sets shapes; its pointers stay NULL */
    model_bind(*out, &wb, NULL);
    wb_deinit(&wb);
    return CS_OK;
}

cs_status vae_new_random(const vae_config *cfg, uint64_t seed, vae_model **out, char *msg,
                         size_t n) {
    cs_status st = model_new(cfg, out, msg, n);
    if (st != CS_OK) return st;
    weight_binder wb;
    wb_init(&wb);
    model_bind(*out, &wb, NULL);
    st = wb_fill_random(&wb, seed, &(*out)->weights, msg, n);
    wb_deinit(&wb);
    if (st != CS_OK) {
        vae_free(*out);
        *out = NULL;
    }
    return st;
}

cs_status vae_write_random(const vae_config *cfg, uint64_t seed, st_dtype dtype,
                           const char *path, char *msg, size_t n) {
    vae_model *m = NULL;
    cs_status st = model_new(cfg, &m, msg, n);
    if (st != CS_OK) return st;
    weight_binder wb;
    wb_init(&wb);
    model_bind(m, &wb, NULL);
    const wb_source src = {.seed = seed, .write_path = path, .write_dtype = dtype};
    st = wb_load(&wb, &src, NULL, &m->weights, msg, n);
    wb_deinit(&wb);
    vae_free(m);
    return st;
}

cs_status vae_load(const char *dir, wb_store store, vae_model **out, char *msg, size_t n) {
    *out = NULL;
    char path[4096];
    vae_config cfg;
    if ((size_t)snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir) >=
        sizeof path)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "%.200s...: folder path too long", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    cs_status st = vae_read_config(path, &cfg, msg, n);
    if (st != CS_OK) return st;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    st_file *f = NULL;
    st = st_open(path, &f, msg, n);
    if (st != CS_OK) return st;
    st = vae_new_bound(&cfg, f, store, out, msg, n);
    st_close(f);
    return st;
}

cs_status vae_new_bound(const vae_config *cfg, const st_file *f, wb_store store, vae_model **out,
                        char *msg, size_t n) {
    *out = NULL;
    vae_model *m = NULL;
    cs_status st = model_new(cfg, &m, msg, n);
    if (st != CS_OK) return st;
    weight_binder wb;
    wb_init(&wb);
    model_bind(m, &wb, f);
    const wb_source src = {.file = f, .store = store};
    st = wb_load(&wb, &src, NULL, &m->weights, msg, n);
    wb_deinit(&wb);
    if (st != CS_OK) {
        vae_free(m);
        return st;
    }
    *out = m;
    return CS_OK;
}

void vae_free(vae_model *m) {
    if (!m) return;
    weight_block_free(&m->weights);
    free(m);
}

const weight_block *vae_weights(const vae_model *m) {
    return &m->weights;
}

const vae_config *vae_get_config(const vae_model *m) {
    return &m->cfg;
}
int64_t vae_scale_factor(const vae_model *m) {
    return (int64_t)1 << (m->cfg.num_blocks - 1);
}
int64_t vae_latent_channels(const vae_model *m) {
    return m->cfg.latent_channels;
}
float vae_scaling_factor(const vae_model *m) {
    return m->cfg.scaling_factor;
}

void vae_latent_size(const vae_model *m, int64_t height, int64_t width, int64_t *h, int64_t *w) {
    for (int64_t i = 0; i < m->cfg.num_blocks; i++)
        if (m->down[i].has_down) conv_out_size(&m->down[i].down, height, width, &height, &width);
    *h = height;
    *w = width;
}

/* ---- forward ---- */

static void tap4(cs_ctx *c, const char *name, const float *x, int64_t b, int64_t ch, int64_t h,
                 int64_t w) {
    ctx_tap(c, name, x, 4, (const int64_t[]){b, ch, h, w});
}

/* Attention of UNetMidBlock2D (diffusers Attention with group_norm, residual_connection and
 * rescale_output_factor 1): y = x + to_out(attn(group_norm(x) as (B, HW, C))). */
static void mid_attn_forward(cs_ctx *c, const vae_mid_block *mb, float *y, const float *x,
                             int64_t batch, int64_t hw) {
    const int64_t ch = mb->channels, n = batch * ch * hw;
    size_t mark = ctx_mark(c);
    float *t = ctx_alloc(c, n);
    float *seq = ctx_alloc(c, n);
    group_norm_forward(c, &mb->attn_norm, t, x, batch, hw);       // (B, C, HW)
    op_nchw_to_nlc(c, seq, t, batch, ch, hw);                     // (B, HW, C)
    attention_forward(c, &mb->attn, t, seq, NULL, batch, hw, hw); // (B, HW, C)
    op_nlc_to_nchw(c, y, t, batch, ch, hw);                       // (B, C, H, W)
    op_add(c, y, y, x, n);
    ctx_release(c, mark);
}

/* y(B, C, H, W) = mid_block(x); y must not alias x. */
static void mid_forward(cs_ctx *c, const vae_mid_block *mb, float *y, const float *x, int64_t batch,
                        int64_t h, int64_t w) {
    const int64_t n = batch * mb->channels * h * w;
    size_t mark = ctx_mark(c);
    float *t = ctx_alloc(c, n);
    resnet_forward(c, &mb->res0, t, x, NULL, batch, h, w); // (B, C, H, W)
    if (mb->has_attn) {
        float *u = ctx_alloc(c, n);
        mid_attn_forward(c, mb, u, t, batch, h * w); // (B, C, H, W)
        t = u;
    }
    resnet_forward(c, &mb->res1, y, t, NULL, batch, h, w); // (B, C, H, W)
    ctx_release(c, mark);
}

/* Largest per-sample activation (channels × pixels) a decode of h × w passes between blocks. */
static int64_t decode_max_elems(const vae_model *m, int64_t h, int64_t w) {
    int64_t mx = m->cfg.latent_channels * h * w;
    for (int64_t i = 0; i < m->cfg.num_blocks; i++) {
        const vae_up_block *u = &m->up[i];
        int64_t in = (u->in_ch > u->out_ch ? u->in_ch : u->out_ch) * h * w;
        if (in > mx) mx = in;
        if (u->has_up) {
            h *= 2;
            w *= 2;
            if (u->out_ch * h * w > mx) mx = u->out_ch * h * w;
        }
    }
    return mx;
}

void vae_decode(cs_ctx *c, const vae_model *m, float *image, const float *latents, int64_t batch,
                int64_t h, int64_t w) {
    CS_ASSERT(c->measuring || m->weights.data);
    CS_ASSERT(batch >= 1 && h >= 1 && w >= 1);
    const vae_config *cfg = &m->cfg;
    const int64_t lc = cfg->latent_channels, top = cfg->block_out_channels[cfg->num_blocks - 1];
    size_t mark = ctx_mark(c);
    const int64_t cap = batch * decode_max_elems(m, h, w);
    float *a = ctx_alloc(c, cap), *b = ctx_alloc(c, cap), *tmp;
#define SWAP() (tmp = a, a = b, b = tmp)
    conv_forward(c, &m->post_quant_conv, a, latents, batch, h, w, NULL, NULL); // (B, lc, h, w)
    tap4(c, "post_quant_conv", a, batch, lc, h, w);
    conv_forward(c, &m->dec_conv_in, b, a, batch, h, w, NULL, NULL); // (B, top, h, w)
    tap4(c, "decoder.conv_in", b, batch, top, h, w);
    mid_forward(c, &m->dec_mid, a, b, batch, h, w); // (B, top, h, w)
    tap4(c, "decoder.mid_block", a, batch, top, h, w);
    char name[64];
    for (int64_t i = 0; i < cfg->num_blocks; i++) {
        const vae_up_block *u = &m->up[i];
        for (int64_t j = 0; j <= cfg->layers_per_block; j++) {
            resnet_forward(c, &u->res[j], b, a, NULL, batch, h, w); // (B, out_ch, h, w)
            SWAP();
        }
        if (u->has_up) {
            upsample_forward(c, &u->up, b, a, batch, h, w); // (B, out_ch, 2h, 2w)
            SWAP();
            h *= 2;
            w *= 2;
        }
        snprintf(name, sizeof name, "decoder.up_blocks.%lld", (long long)i);
        tap4(c, name, a, batch, u->out_ch, h, w);
    }
    const int64_t c0 = cfg->block_out_channels[0];
    group_norm_forward(c, &m->dec_norm_out, b, a, batch, h * w); // (B, c0, H, W)
    tap4(c, "decoder.conv_norm_out", b, batch, c0, h, w);
    op_silu(c, b, b, batch * c0 * h * w);
    conv_forward(c, &m->dec_conv_out, image, b, batch, h, w, NULL, NULL); // (B, out_ch, H, W)
#undef SWAP
    ctx_release(c, mark);
}

/* Largest per-sample activation an encode of height × width passes between blocks. */
static int64_t encode_max_elems(const vae_model *m, int64_t h, int64_t w) {
    int64_t mx = m->cfg.in_channels * h * w;
    for (int64_t i = 0; i < m->cfg.num_blocks; i++) {
        const vae_down_block *d = &m->down[i];
        int64_t e = (d->in_ch > d->out_ch ? d->in_ch : d->out_ch) * h * w;
        if (e > mx) mx = e;
        if (d->has_down) conv_out_size(&d->down, h, w, &h, &w);
    }
    if (2 * m->cfg.latent_channels * h * w > mx) mx = 2 * m->cfg.latent_channels * h * w;
    return mx;
}

void vae_encode(cs_ctx *c, const vae_model *m, float *mean, float *logvar, const float *image,
                int64_t batch, int64_t height, int64_t width) {
    CS_ASSERT(c->measuring || m->weights.data);
    CS_ASSERT(batch >= 1 && height >= 1 && width >= 1);
    const vae_config *cfg = &m->cfg;
    const int64_t lc = cfg->latent_channels, top = cfg->block_out_channels[cfg->num_blocks - 1];
    int64_t h = height, w = width;
    size_t mark = ctx_mark(c);
    const int64_t cap = batch * encode_max_elems(m, h, w);
    float *a = ctx_alloc(c, cap), *b = ctx_alloc(c, cap), *tmp;
#define SWAP() (tmp = a, a = b, b = tmp)
    conv_forward(c, &m->enc_conv_in, a, image, batch, h, w, NULL, NULL); // (B, c0, H, W)
    tap4(c, "encoder.conv_in", a, batch, cfg->block_out_channels[0], h, w);
    char name[64];
    for (int64_t i = 0; i < cfg->num_blocks; i++) {
        const vae_down_block *d = &m->down[i];
        for (int64_t j = 0; j < cfg->layers_per_block; j++) {
            resnet_forward(c, &d->res[j], b, a, NULL, batch, h, w); // (B, out_ch, h, w)
            SWAP();
        }
        if (d->has_down) {
            conv_forward(c, &d->down, b, a, batch, h, w, &h, &w); // (B, out_ch, h/2, w/2)
            SWAP();
        }
        snprintf(name, sizeof name, "encoder.down_blocks.%lld", (long long)i);
        tap4(c, name, a, batch, d->out_ch, h, w);
    }
    mid_forward(c, &m->enc_mid, b, a, batch, h, w); // (B, top, h, w)
    SWAP();
    tap4(c, "encoder.mid_block", a, batch, top, h, w);
    group_norm_forward(c, &m->enc_norm_out, b, a, batch, h * w); // (B, top, h, w)
    tap4(c, "encoder.conv_norm_out", b, batch, top, h, w);
    op_silu(c, b, b, batch * top * h * w);
    conv_forward(c, &m->enc_conv_out, a, b, batch, h, w, NULL, NULL); // (B, 2·lc, h, w)
    conv_forward(c, &m->quant_conv, b, a, batch, h, w, NULL, NULL);   // (B, 2·lc, h, w)
    tap4(c, "quant_conv", b, batch, 2 * lc, h, w);
    /* DiagonalGaussianDistribution: chunk(2, dim=1), logvar clamped to [-30, 20]. */
    const int64_t plane = lc * h * w;
    for (int64_t s = 0; s < batch; s++) {
        op_copy(c, mean + s * plane, b + 2 * s * plane, plane);
        op_clamp(c, logvar + s * plane, b + (2 * s + 1) * plane, -30.0f, 20.0f, plane);
    }
#undef SWAP
    ctx_release(c, mark);
}

/* Stands in for caller buffers in measuring passes, where no kernel touches them. */
static float g_no_data[1];

size_t vae_decode_activation_bytes(const vae_model *m, int64_t batch, int64_t h, int64_t w) {
    cs_ctx c;
    ctx_init_measure(&c);
    vae_decode(&c, m, g_no_data, g_no_data, batch, h, w);
    return c.peak;
}

size_t vae_encode_activation_bytes(const vae_model *m, int64_t batch, int64_t height,
                                   int64_t width) {
    cs_ctx c;
    ctx_init_measure(&c);
    vae_encode(&c, m, g_no_data, g_no_data, g_no_data, batch, height, width);
    return c.peak;
}
