/*
 * UNet2DConditionModel: the weight table (one binder pass over the whole architecture),
 * loading, input validation, the forward pass and its memory measurement (see unet.h).
 * The forward follows diffusers 0.27 UNet2DConditionModel.forward step by step.
 */
#include "unet.h"

#include <math.h>
#include <string.h>

#include "ctx_rows.h"
#include "lora.h"
#include "lora_modules.h"
#include "unet_blocks.h"

enum { UNET_MAX_SKIPS = 1 + UNET_MAX_BLOCKS * (UNET_MAX_LAYERS + 1) };

/* Input bounds: far above any real use, and low enough that every activation size
 * (B · channels · H · W · 8 floats at most) fits easily in 64 bits. */
enum { UNET_MAX_BATCH = 4096, UNET_MAX_SIDE = 4096, UNET_MAX_CONTEXT = 4096 };

struct unet_model {
    unet_config cfg;
    conv_layer conv_in;
    linear_layer time_cond_proj;         /* time_embedding.cond_proj (no bias), if configured */
    linear_layer time_lin1, time_lin2;   /* time_embedding.linear_1 / linear_2 */
    float *class_table;                  /* class_embedding.weight (num_class_embeds, ted) */
    linear_layer class_lin1, class_lin2; /* class_embedding.linear_1/2 ("timestep" type) */
    unet_down_block down[UNET_MAX_BLOCKS];
    unet_mid_block mid;
    unet_up_block up[UNET_MAX_BLOCKS];
    norm_layer norm_out; /* conv_norm_out */
    conv_layer conv_out;
    int64_t nparams;
    weight_block weights; /* owned; empty for unet_new_unweighted */
    lora_module_table lora_modules; /* every Linear / Conv2d, for LoRA */
};

/* Registers every parameter of the architecture (the component's one weight table). */
static cs_status build(unet_model *m, weight_binder *wb, char *msg, size_t n) {
    const unet_config *cfg = &m->cfg;
    const int nb = cfg->nblocks;
    const int64_t tin = cfg->time_in_dim, ted = cfg->time_embed_dim;
    const unet_block_params p = {.temb_ch = unet_config_blocks_temb_dim(cfg),
                                 .groups = cfg->groups,
                                 .eps = cfg->eps,
                                 .scale_shift = cfg->scale_shift,
                                 .linear_proj = cfg->linear_proj,
                                 .context_dim = cfg->cross_dim};
    conv_bind(&m->conv_in, wb, cfg->in_channels, cfg->block_out[0], cfg->conv_in_kernel, 1,
              (cfg->conv_in_kernel - 1) / 2, "conv_in");
    if (cfg->time_cond_dim > 0)
        linear_bind(&m->time_cond_proj, wb, cfg->time_cond_dim, tin, false,
                    "time_embedding.cond_proj");
    linear_bind(&m->time_lin1, wb, tin, ted, true, "time_embedding.linear_1");
    linear_bind(&m->time_lin2, wb, ted, ted, true, "time_embedding.linear_2");
    if (cfg->class_embed == UNET_CLASS_TABLE)
        wb_add2(wb, &m->class_table, cfg->num_class_embeds, ted, "class_embedding.weight");
    if (cfg->class_embed == UNET_CLASS_TIMESTEP) {
        linear_bind(&m->class_lin1, wb, tin, ted, true, "class_embedding.linear_1");
        linear_bind(&m->class_lin2, wb, ted, ted, true, "class_embedding.linear_2");
    }

    int64_t stack[UNET_MAX_SKIPS]; /* channels of the residuals, in push order */
    int ns = 0;
    stack[ns++] = cfg->block_out[0];
    cs_status st = CS_OK;
    char prefix[64];
    for (int i = 0; i < nb && st == CS_OK; i++) {
        const int64_t out = cfg->block_out[i];
        const bool add_down = i != nb - 1;
        snprintf(prefix, sizeof prefix, "down_blocks.%d", i);
        st = unet_down_bind(&m->down[i], wb, &p, i == 0 ? out : cfg->block_out[i - 1], out,
                            cfg->layers[i], cfg->down_attn[i], cfg->heads[i], cfg->tlayers[i],
                            add_down, cfg->downsample_padding, prefix);
        for (int64_t j = 0; j < cfg->layers[i] + add_down; j++)
            stack[ns++] = out;
    }
    if (st == CS_OK && cfg->mid_block)
        st = unet_mid_bind(&m->mid, wb, &p, cfg->block_out[nb - 1], cfg->heads[nb - 1],
                           cfg->tlayers[nb - 1], cfg->mid_scale);
    for (int i = 0; i < nb && st == CS_OK; i++) {
        const int r = nb - 1 - i; /* up block i mirrors down block r */
        const int64_t out = cfg->block_out[r], prev = cfg->block_out[i == 0 ? r : r + 1];
        const int64_t in = cfg->block_out[r > 0 ? r - 1 : 0], nl = cfg->layers[r] + 1;
        int64_t skip_ch[UNET_MAX_LAYERS + 1];
        /* Up block i pops down block r's resnet outputs, then the residual below them
         * (the previous block's downsample, or conv_in): diffusers' res_skip_channels. */
        for (int64_t j = 0; j < nl; j++) {
            skip_ch[j] = stack[--ns];
            CS_ASSERT(skip_ch[j] == (j == nl - 1 ? in : out));
        }
        snprintf(prefix, sizeof prefix, "up_blocks.%d", i);
        st = unet_up_bind(&m->up[i], wb, &p, prev, out, skip_ch, nl, cfg->up_attn[i], cfg->heads[r],
                          cfg->tlayers[r], i != nb - 1, prefix);
    }
    group_norm_bind(&m->norm_out, wb, cfg->block_out[0], cfg->groups, cfg->eps, "conv_norm_out");
    conv_bind(&m->conv_out, wb, cfg->block_out[0], cfg->out_channels, cfg->conv_out_kernel, 1,
              (cfg->conv_out_kernel - 1) / 2, "conv_out");
    if (st != CS_OK) return cs_errf(st, msg, n, "out of memory building the UNet");
    for (int64_t i = 0; i < wb->count; i++) {
        int64_t numel = 1;
        for (int d = 0; d < wb->entries[i].ndim; d++)
            numel *= wb->entries[i].shape[d];
        m->nparams += numel;
    }
    return CS_OK;
}

/* A model struct with cfg's architecture bound into wb (weights unset). */
static cs_status create(const unet_config *cfg, weight_binder *wb, unet_model **out, char *msg,
                        size_t n) {
    *out = NULL;
    unet_model *m = cs_calloc(1, sizeof *m);
    if (!m) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    m->cfg = *cfg;
    m->lora_modules.prefix = "lora_unet_";
    wb->modules = &m->lora_modules;
    cs_status st = build(m, wb, msg, n);
    if (st == CS_OK && m->lora_modules.overflow)
        st = cs_errf(CS_ERR_NOMEM, msg, n, "UNet LoRA module table: out of memory or a name too long");
    if (st == CS_OK && wb->overflow)
        st = cs_errf(CS_ERR_NOMEM, msg, n, "UNet weight table: out of memory or a name too long");
    if (st != CS_OK) {
        unet_free(m);
        return st;
    }
    *out = m;
    return CS_OK;
}

cs_status unet_new_unweighted(const unet_config *cfg, unet_model **out, char *msg, size_t n) {
    weight_binder wb;
    wb_init(&wb);
    cs_status st = create(cfg, &wb, out, msg, n);
    wb_deinit(&wb);
    return st;
}

cs_status unet_new_random(const unet_config *cfg, uint64_t seed, unet_model **out, char *msg,
                          size_t n) {
    return unet_new_random_store(cfg, seed, WB_STORE_FILE, out, msg, n);
}

cs_status unet_new_random_store(const unet_config *cfg, uint64_t seed, wb_store store,
                                unet_model **out, char *msg, size_t n) {
    weight_binder wb;
    wb_init(&wb);
    cs_status st = create(cfg, &wb, out, msg, n);
    const wb_source src = {.seed = seed, .store = store};
    if (st == CS_OK) st = wb_load(&wb, &src, NULL, &(*out)->weights, msg, n);
    if (st != CS_OK) {
        unet_free(*out);
        *out = NULL;
    }
    wb_deinit(&wb);
    return st;
}

cs_status unet_write_random(const unet_config *cfg, uint64_t seed, st_dtype dtype,
                            const char *path, char *msg, size_t n) {
    weight_binder wb;
    wb_init(&wb);
    unet_model *m = NULL;
    cs_status st = create(cfg, &wb, &m, msg, n);
    const wb_source src = {.seed = seed, .write_path = path, .write_dtype = dtype};
    if (st == CS_OK) st = wb_load(&wb, &src, NULL, &m->weights, msg, n);
    unet_free(m);
    wb_deinit(&wb);
    return st;
}

cs_status unet_load(const char *dir, wb_store store, unet_model **out, char *msg, size_t n) {
    *out = NULL;
    char path[4096];
    unet_config cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    cs_status st = unet_config_load(path, &cfg, msg, n);
    if (st != CS_OK) return st;
    st_file *f = NULL;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    st = st_open(path, &f, msg, n);
    if (st == CS_OK) st = unet_new_bound(&cfg, f, store, out, msg, n);
    st_close(f);
    return st;
}

cs_status unet_new_bound(const unet_config *cfg, const st_file *f, wb_store store, unet_model **out,
                         char *msg, size_t n) {
    *out = NULL;
    weight_binder wb;
    wb_init(&wb);
    unet_model *m = NULL;
    cs_status st = create(cfg, &wb, &m, msg, n);
    const wb_source src = {.file = f, .store = store};
    if (st == CS_OK) st = wb_load(&wb, &src, NULL, &m->weights, msg, n);
    wb_deinit(&wb);
    if (st != CS_OK) {
        unet_free(m);
        return st;
    }
    *out = m;
    return CS_OK;
}

void unet_free(unet_model *m) {
    if (!m) return;
    for (int i = 0; i < m->cfg.nblocks; i++) {
        unet_down_free(&m->down[i]);
        unet_up_free(&m->up[i]);
    }
    unet_mid_free(&m->mid);
    weight_block_free(&m->weights);
    lora_module_table_free(&m->lora_modules);
    free(m);
}

const lora_module_table *unet_lora_modules(const unet_model *m) {
    return &m->lora_modules;
}

const weight_block *unet_weights(const unet_model *m) {
    return &m->weights;
}

const unet_config *unet_get_config(const unet_model *m) {
    return &m->cfg;
}

int64_t unet_param_count(const unet_model *m) {
    return m->nparams;
}

/* The shape rules (no data is read). */
static cs_status check_shape(const unet_model *m, const unet_input *in, char *msg, size_t n) {
    const unet_config *cfg = &m->cfg;
    const int64_t mult = unet_config_size_multiple(cfg);
    if (in->batch < 1 || in->batch > UNET_MAX_BATCH)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "unet: batch %lld is outside [1, %d]",
                       (long long)in->batch, UNET_MAX_BATCH);
    if (in->height < 1 || in->width < 1 || in->height > UNET_MAX_SIDE ||
        in->width > UNET_MAX_SIDE || in->height % mult || in->width % mult)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "unet: latent size %lldx%lld must be positive multiples of %lld, at "
                       "most %d",
                       (long long)in->height, (long long)in->width, (long long)mult, UNET_MAX_SIDE);
    if (in->context_len < 1 || in->context_len > UNET_MAX_CONTEXT)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "unet: context length %lld is outside "
                       "[1, %d]",
                       (long long)in->context_len, UNET_MAX_CONTEXT);
    if (!in->sample || !in->timesteps || !in->context)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "unet: sample, timesteps and "
                       "encoder_hidden_states are required");
    if (in->timestep_cond && cfg->time_cond_dim == 0)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "unet: timestep_cond given but the model "
                       "has no time_cond_proj_dim");
    if ((cfg->class_embed != UNET_CLASS_NONE) != (in->class_labels != NULL))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "unet: the model %s class labels",
                       cfg->class_embed != UNET_CLASS_NONE ? "requires" : "takes no");
    return CS_OK;
}

cs_status unet_check_input(const unet_model *m, const unet_input *in, char *msg, size_t n) {
    cs_status st = check_shape(m, in, msg, n);
    if (st != CS_OK) return st;
    for (int64_t b = 0; b < in->batch; b++) {
        if (!isfinite(in->timesteps[b]))
            return cs_errf(CS_ERR_INVALID_ARG, msg, n, "unet: timestep %lld is not finite",
                           (long long)b);
        if (m->cfg.class_embed == UNET_CLASS_TABLE &&
            (in->class_labels[b] < 0 || in->class_labels[b] >= m->cfg.num_class_embeds))
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "unet: class label %lld of row %lld is "
                           "outside [0, %lld)",
                           (long long)in->class_labels[b], (long long)b,
                           (long long)m->cfg.num_class_embeds);
    }
    return CS_OK;
}

static void tap(cs_ctx *c, const char *name, const float *x, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3) {
    const int64_t dims[4] = {d0, d1, d2, d3};
    ctx_tap(c, name, x, ndim, dims);
}

/* y(B, l2.out) = l2(SiLU(l1(x))): TimestepEmbedding's linear_1 -> act -> linear_2. */
static void embed_mlp(cs_ctx *c, const linear_layer *l1, const linear_layer *l2, float *y,
                      const float *x, int64_t batch) {
    size_t mark = ctx_mark(c);
    float *t = ctx_alloc(c, batch * l1->out); // (B, ted)
    linear_forward(c, l1, t, x, batch, 1);
    op_silu(c, t, t, batch * l1->out);
    linear_forward(c, l2, y, t, batch, 1);
    ctx_release(c, mark);
}

/* The class embedding ce(B, ted) of the input's labels. */
static void class_embedding(cs_ctx *c, const unet_model *m, const unet_input *in, float *ce) {
    const unet_config *cfg = &m->cfg;
    const int64_t batch = in->batch;
    if (cfg->class_embed == UNET_CLASS_TABLE) {
        op_embedding(c, ce, m->class_table, in->class_labels, batch, cfg->time_embed_dim);
        return;
    }
    /* "timestep": the labels go through time_proj like timesteps. Converting the integer
     * labels to floats is the one direct write of the forward (B values), so it is
     * skipped while measuring like every kernel. */
    size_t mark = ctx_mark(c);
    float *labels = ctx_alloc(c, batch);
    if (!c->measuring)
        for (int64_t b = 0; b < batch; b++)
            labels[b] = (float)in->class_labels[b];
    float *proj = ctx_alloc(c, batch * cfg->time_in_dim); // (B, tin)
    op_timestep_embedding(c, proj, labels, batch, cfg->time_in_dim, cfg->flip_sin_to_cos,
                          cfg->freq_shift);
    embed_mlp(c, &m->class_lin1, &m->class_lin2, ce, proj, batch);
    ctx_release(c, mark);
}

/* emb(B, blocks_temb_dim), left on the arena: time embedding [+ class] [-> act]. */
static float *time_embedding(cs_ctx *c, const unet_model *m, const unet_input *in) {
    const unet_config *cfg = &m->cfg;
    const int64_t batch = in->batch, tin = cfg->time_in_dim, ted = cfg->time_embed_dim;
    const int64_t bted = unet_config_blocks_temb_dim(cfg);
    float *emb = ctx_alloc(c, batch * bted); // (B, bted)
    size_t mark = ctx_mark(c);
    float *proj = ctx_alloc(c, batch * tin); // (B, tin)
    op_timestep_embedding(c, proj, in->timesteps, batch, tin, cfg->flip_sin_to_cos,
                          cfg->freq_shift);
    tap(c, "time_proj", proj, 2, batch, tin, 0, 0);
    if (cfg->time_cond_dim > 0 && in->timestep_cond) {
        float *cond = ctx_alloc(c, batch * tin); // (B, tin)
        linear_forward(c, &m->time_cond_proj, cond, in->timestep_cond, batch, 1);
        op_add(c, proj, proj, cond, batch * tin);
    }
    float *t = cfg->class_concat ? ctx_alloc(c, batch * ted) : emb; // (B, ted)
    embed_mlp(c, &m->time_lin1, &m->time_lin2, t, proj, batch);
    if (cfg->timestep_post_silu) op_silu(c, t, t, batch * ted);
    tap(c, "time_embedding", t, 2, batch, ted, 0, 0);
    if (cfg->class_embed != UNET_CLASS_NONE) {
        float *ce = ctx_alloc(c, batch * ted); // (B, ted)
        class_embedding(c, m, in, ce);
        if (cfg->class_concat)
            op_concat_channels(c, emb, t, ted, ce, ted, batch, 1); // rows [t | ce]
        else
            op_add(c, emb, emb, ce, batch * ted);
    }
    if (cfg->time_embed_silu) op_silu(c, emb, emb, batch * bted);
    ctx_release(c, mark);
    return emb;
}

/* The forward of all of in's rows on c (unet_forward without row groups). */
static void forward_batch(cs_ctx *c, const unet_model *m, const unet_input *in, float *out) {
    const unet_config *cfg = &m->cfg;
    const int64_t batch = in->batch, lc = in->context_len, c0 = cfg->block_out[0];
    const int64_t bted = unet_config_blocks_temb_dim(cfg);
    const float *ctxt = in->context;
    size_t mark = ctx_mark(c);
    char name[64];

    // 1. time: emb (B, bted); the resnets take SiLU(emb)
    const float *emb = time_embedding(c, m, in);
    float *temb = ctx_alloc(c, batch * bted); // (B, bted)
    op_silu(c, temb, emb, batch * bted);

    // 2. conv_in: (B, C0, H, W), the first residual
    int64_t h = in->height, w = in->width;
    unet_skip skips[UNET_MAX_SKIPS];
    int nskips = 0;
    float *x = ctx_alloc(c, batch * c0 * h * w);
    conv_forward(c, &m->conv_in, x, in->sample, batch, h, w, NULL, NULL);
    tap(c, "conv_in", x, 4, batch, c0, h, w);
    skips[nskips++] = (unet_skip){x, c0, h, w};

    // 3. down: every resnet/transformer output and downsample joins the residual stack
    const float *hid = x;
    int64_t ch = c0;
    for (int i = 0; i < cfg->nblocks; i++) {
        int first = nskips;
        unet_down_forward(c, &m->down[i], hid, temb, ctxt, batch, h, w, lc, skips, &nskips, &h, &w);
        for (int k = first; k < nskips; k++) {
            snprintf(name, sizeof name, "down_blocks.%d.res%d", i, k - first);
            tap(c, name, skips[k].data, 4, batch, skips[k].ch, skips[k].h, skips[k].w);
        }
        hid = skips[nskips - 1].data;
        ch = skips[nskips - 1].ch;
        snprintf(name, sizeof name, "down_blocks.%d.hidden", i);
        tap(c, name, hid, 4, batch, ch, h, w);
    }

    // 4. mid: (B, C_last, h, w)
    if (cfg->mid_block) {
        float *y = ctx_alloc(c, batch * ch * h * w);
        unet_mid_forward(c, &m->mid, y, hid, temb, ctxt, batch, h, w, lc);
        tap(c, "mid_block", y, 4, batch, ch, h, w);
        hid = y;
    }

    // 5. up: each block takes its residuals from the top of the stack
    for (int i = 0; i < cfg->nblocks; i++) {
        const unet_up_block *u = &m->up[i];
        nskips -= (int)u->nlayers;
        CS_ASSERT(nskips >= 0 && u->prev_ch == ch);
        const int64_t h2 = u->has_up ? 2 * h : h, w2 = u->has_up ? 2 * w : w;
        float *y = ctx_alloc(c, batch * u->out_ch * h2 * w2); // (B, out, h2, w2)
        unet_up_forward(c, u, y, hid, &skips[nskips], temb, ctxt, batch, h, w, lc);
        snprintf(name, sizeof name, "up_blocks.%d", i);
        tap(c, name, y, 4, batch, u->out_ch, h2, w2);
        hid = y;
        ch = u->out_ch;
        h = h2;
        w = w2;
    }
    CS_ASSERT(nskips == 0 && h == in->height && w == in->width && ch == c0);

    // 6. out: GroupNorm -> SiLU -> conv_out (B, out_channels, H, W)
    float *nrm = ctx_alloc(c, batch * c0 * h * w);
    group_norm_forward(c, &m->norm_out, nrm, hid, batch, h * w);
    tap(c, "conv_norm_out", nrm, 4, batch, c0, h, w);
    op_silu(c, nrm, nrm, batch * c0 * h * w);
    conv_forward(c, &m->conv_out, out, nrm, batch, h, w, NULL, NULL);
    tap(c, "conv_out", out, 4, batch, cfg->out_channels, h, w);
    ctx_release(c, mark);
}

/* Row groups (ctx_rows.h) pay when a row's activations stay in a core's own cache and the
 * weights, which every group then reads, in the cache the cores share: the default model
 * (9.6 MB of fp32 weights, 0.56 MB a row) runs 1.2-1.55x faster in groups at 2-16 rows, SD-1.5
 * at 8 x 8 latents (3.4 GB, 3.6 MB a row) 1.6x slower. Fewer rows than threads make fewer
 * groups, down to one row on one thread: splitting such a row's kernels between the cores
 * gained 5 % on Zen 5 and lost 1.6x on Zen 4 (the student's one-row step: 563 steps/s on
 * one thread, 348 on two). */
#define UNET_GROUP_MAX_WEIGHT_BYTES (32.0 * 1024 * 1024)
#define UNET_GROUP_MAX_ROW_BYTES (1024.0 * 1024)

int unet_row_groups(const unet_model *m, int64_t batch, int64_t height, int64_t width,
                    int64_t context_len, int threads) {
    if (threads < 2 || (double)m->nparams * sizeof(float) > UNET_GROUP_MAX_WEIGHT_BYTES) return 0;
    const size_t row = unet_activation_bytes(m, 1, height, width, context_len, 1);
    return (double)row <= UNET_GROUP_MAX_ROW_BYTES ? ctx_row_groups(batch, threads) : 0;
}

/* Rows [row0, row0 + rows) of a unet_forward, on a group's ctx. */
typedef struct unet_rows {
    const unet_model *m;
    const unet_input *in;
    float *out;
} unet_rows;

static void forward_rows(cs_ctx *sub, const cs_ctx *parent, void *arg, int64_t row0,
                         int64_t rows) {
    const unet_rows *r = arg;
    const unet_config *cfg = &r->m->cfg;
    const int64_t hw = r->in->height * r->in->width;
    unet_input in = *r->in;
    in.batch = rows;
    in.sample += row0 * cfg->in_channels * hw;
    in.timesteps += row0;
    in.context += row0 * in.context_len * cfg->cross_dim;
    if (in.timestep_cond) in.timestep_cond += row0 * cfg->time_cond_dim;
    if (in.class_labels) in.class_labels += row0;
    lora_rowset lora;
    if (parent->lora) {
        CS_ASSERT(parent->lora->rows == r->in->batch);
        lora = (lora_rowset){.rows = rows, .row = parent->lora->row + row0};
        sub->lora = &lora;
    }
    forward_batch(sub, r->m, &in, r->out ? r->out + row0 * cfg->out_channels * hw : NULL);
}

void unet_forward(cs_ctx *c, const unet_model *m, const unet_input *in, float *out) {
    CS_ASSERT(check_shape(m, in, NULL, 0) == CS_OK);
    CS_ASSERT(c->measuring || m->weights.data);
    /* A tap names whole-batch tensors, so a tapped pass runs as one batch. */
    const int groups = c->tap ? 0
                              : unet_row_groups(m, in->batch, in->height, in->width,
                                                in->context_len, ctx_threads(c));
    if (groups >= 1) {
        const size_t group_bytes =
            unet_activation_bytes(m, ctx_group_rows(in->batch, groups), in->height, in->width,
                                  in->context_len, 1);
        const unet_rows r = {m, in, out};
        const bool ran = ctx_run_row_groups(c, in->batch, groups, group_bytes, forward_rows,
                                            (void *)&r);
        /* A plan covers both ways (a ctx planned for other threads falls back to one batch). */
        if (ran && !c->measuring) return;
    }
    forward_batch(c, m, in, out);
}

size_t unet_activation_bytes(const unet_model *m, int64_t batch, int64_t height, int64_t width,
                             int64_t context_len, int threads) {
    /* Never read while measuring: any non-NULL pointer stands in for the inputs. */
    static const float dummy_f = 0;
    static const int64_t dummy_i = 0;
    const unet_config *cfg = &m->cfg;
    unet_input in = {.sample = &dummy_f,
                     .batch = batch,
                     .height = height,
                     .width = width,
                     .timesteps = &dummy_f,
                     .context = &dummy_f,
                     .context_len = context_len,
                     .timestep_cond = cfg->time_cond_dim > 0 ? &dummy_f : NULL,
                     .class_labels = cfg->class_embed != UNET_CLASS_NONE ? &dummy_i : NULL};
    cs_ctx c;
    ctx_init_measure(&c);
    c.plan_threads = threads;
    unet_forward(&c, m, &in, NULL);
    return c.peak;
}
