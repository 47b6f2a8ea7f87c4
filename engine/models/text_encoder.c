/*
 * CLIPTextModel forward (see text_encoder.h), following transformers 4.37
 * models/clip/modeling_clip.py: CLIPTextEmbeddings, CLIPEncoderLayer (CLIPAttention,
 * CLIPMLP) and CLIPTextTransformer (causal mask, final_layer_norm, pooled output).
 *
 * Owns the model struct and its weight block; forward passes take activations only from
 * the caller's ctx. Loading is single-threaded; forward passes may run concurrently on
 * different ctxs.
 */
#include "text_encoder.h"

#include <math.h>
#include <string.h>

#include "config.h"
#include "layers.h"
#include "lora_modules.h"

typedef struct te_layer {
    norm_layer layer_norm1, layer_norm2;           /* (D) */
    linear_layer q_proj, k_proj, v_proj, out_proj; /* D -> D, with bias */
    linear_layer fc1, fc2;                         /* D -> I -> D */
} te_layer;

struct text_encoder {
    te_config cfg;
    float *token_embedding;    /* (vocab, D) */
    float *position_embedding; /* (max_positions, D) */
    te_layer *layers;          /* num_layers */
    norm_layer final_layer_norm;
    weight_block weights; /* owns every tensor above */
    lora_module_table lora_modules; /* every Linear, for LoRA */
};

/* ---- config ---- */

cs_status text_encoder_read_config(const char *path, te_config *cfg, char *msg, size_t n) {
    return text_encoder_read_config_src(path, NULL, cfg, msg, n);
}

cs_status text_encoder_read_config_src(const char *path, const char *json, te_config *cfg,
                                       char *msg, size_t n) {
    static const char *const acts[] = {"quick_gelu", "gelu", NULL};
    /* Training-only settings, token ids the model itself never reads (bos/pad come from the
     * tokenizer) and projection_dim (used only by CLIPTextModelWithProjection). */
    static const char *const ignored[] = {"initializer_range", "initializer_factor",
                                          "attention_dropout", "dropout",
                                          "torch_dtype",       "transformers_version",
                                          "bos_token_id",      "pad_token_id",
                                          "projection_dim",    NULL};
    memset(cfg, 0, sizeof *cfg);
    cfg_reader r;
    cs_status st = cfg_open_src(&r, path, json, msg, n);
    if (st != CS_OK) {
        cfg_close(&r);
        return st;
    }
    /* Only the bare text model: CLIPTextModelWithProjection adds text_projection, which
     * Stable Diffusion 1.x / 2.x pipelines never use. */
    const char *arch[8];
    int narch = cfg_string_list(&r, "architectures", arch, 8);
    for (int i = 0; i < narch; i++)
        if (strcmp(arch[i], "CLIPTextModel") != 0)
            cfg_fail(&r, "field 'architectures' = \"%s\" is not supported (only CLIPTextModel)",
                     arch[i]);
    cfg_require_string(&r, "model_type", "clip_text_model");
    /* Defaults are CLIPTextConfig's, which transformers applies to absent fields. */
    cfg->vocab_size = cfg_int(&r, "vocab_size", 49408, 1, (int64_t)1 << 24);
    cfg->hidden_size = cfg_int(&r, "hidden_size", 512, 1, 1 << 16);
    cfg->intermediate_size = cfg_int(&r, "intermediate_size", 2048, 1, 1 << 20);
    cfg->num_layers = cfg_int(&r, "num_hidden_layers", 12, 1, 1024);
    cfg->num_heads = cfg_int(&r, "num_attention_heads", 8, 1, 1 << 16);
    cfg->max_positions = cfg_int(&r, "max_position_embeddings", 77, 1, 1 << 16);
    double eps = cfg_float(&r, "layer_norm_eps", 1e-5, 0.0, 1.0);
    cfg->act = (te_activation)cfg_enum(&r, "hidden_act", "quick_gelu", acts);
    cfg->eos_token_id = cfg_int(&r, "eos_token_id", 49407, -((int64_t)1 << 53), (int64_t)1 << 53);
    cfg_ignore(&r, ignored);
    if (r.status == CS_OK && !(eps > 0))
        cfg_fail(&r, "field 'layer_norm_eps' = %g must be positive", eps);
    if (r.status == CS_OK && cfg->hidden_size % cfg->num_heads != 0)
        cfg_fail(&r, "field 'num_attention_heads' = %lld does not divide hidden_size = %lld",
                 (long long)cfg->num_heads, (long long)cfg->hidden_size);
    cfg->layer_norm_eps = (float)eps;
    st = cfg_finish(&r);
    cfg_close(&r);
    return st;
}

/* ---- loading ---- */

static void bind_layer(te_layer *l, weight_binder *wb, const te_config *cfg, int64_t i) {
    const int64_t d = cfg->hidden_size, inner = cfg->intermediate_size;
    const float eps = cfg->layer_norm_eps;
    char p[WB_MAX_NAME];
#define SUB(s) (snprintf(p, sizeof p, "text_model.encoder.layers.%lld.%s", (long long)i, s), p)
    layer_norm_bind(&l->layer_norm1, wb, d, eps, SUB("layer_norm1"));
    linear_bind(&l->q_proj, wb, d, d, true, SUB("self_attn.q_proj"));
    linear_bind(&l->k_proj, wb, d, d, true, SUB("self_attn.k_proj"));
    linear_bind(&l->v_proj, wb, d, d, true, SUB("self_attn.v_proj"));
    linear_bind(&l->out_proj, wb, d, d, true, SUB("self_attn.out_proj"));
    layer_norm_bind(&l->layer_norm2, wb, d, eps, SUB("layer_norm2"));
    linear_bind(&l->fc1, wb, d, inner, true, SUB("mlp.fc1"));
    linear_bind(&l->fc2, wb, inner, d, true, SUB("mlp.fc2"));
#undef SUB
}

static void bind_model(text_encoder *m, weight_binder *wb) {
    const te_config *cfg = &m->cfg;
    wb_add2(wb, &m->token_embedding, cfg->vocab_size, cfg->hidden_size,
            "text_model.embeddings.token_embedding.weight");
    wb_add2(wb, &m->position_embedding, cfg->max_positions, cfg->hidden_size,
            "text_model.embeddings.position_embedding.weight");
    for (int64_t i = 0; i < cfg->num_layers; i++)
        bind_layer(&m->layers[i], wb, cfg, i);
    layer_norm_bind(&m->final_layer_norm, wb, cfg->hidden_size, cfg->layer_norm_eps,
                    "text_model.final_layer_norm");
}

cs_status text_encoder_load(const char *dir, wb_store store, text_encoder **out, char *msg,
                            size_t n) {
    *out = NULL;
    char path[4096];
    te_config cfg;
    int len = snprintf(path, sizeof path, "%s/config.json", dir);
    if (len < 0 || (size_t)len >= sizeof path)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "%s: path too long", dir);
    cs_status st = text_encoder_read_config(path, &cfg, msg, n);
    if (st != CS_OK) return st;
    st_file *f = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st = st_open(path, &f, msg, n);
    if (st == CS_OK) st = text_encoder_new_bound(&cfg, f, store, out, msg, n);
    st_close(f);
    return st;
}

/* A model of cfg's architecture with its weights from src (wb_load). */
static cs_status create(const te_config *cfg, const wb_source *src, text_encoder **out,
                        char *msg, size_t n) {
    const st_file *f = src->file;
    /* Real SD 1.x files carry position_ids (I64 [1, max_positions]), a buffer transformers
     * 4.31+ no longer saves nor reads (it always uses 0..L-1); likewise here. */
    static const char *const ignored[] = {"text_model.embeddings.position_ids", NULL};
    const char *what = f ? f->path : "text encoder";
    *out = NULL;
    text_encoder *m = cs_calloc(1, sizeof *m);
    if (!m) return cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", what);
    m->cfg = *cfg;
    m->layers = cs_calloc((size_t)m->cfg.num_layers, sizeof *m->layers);
    if (!m->layers) {
        text_encoder_free(m);
        return cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", what);
    }
    weight_binder wb;
    wb_init(&wb);
    m->lora_modules.prefix = "lora_te_";
    wb.modules = &m->lora_modules;
    bind_model(m, &wb);
    cs_status st = m->lora_modules.overflow
                       ? cs_errf(CS_ERR_NOMEM, msg, n, "%s: LoRA module table: out of memory",
                                 what)
                   : wb_load(&wb, src, ignored, &m->weights, msg, n);
    wb_deinit(&wb);
    if (st != CS_OK) {
        text_encoder_free(m);
        return st;
    }
    *out = m;
    return CS_OK;
}

cs_status text_encoder_new_bound(const te_config *cfg, const st_file *f, wb_store store,
                                 text_encoder **out, char *msg, size_t n) {
    return create(cfg, &(wb_source){.file = f, .store = store}, out, msg, n);
}

cs_status text_encoder_write_random(const te_config *cfg, uint64_t seed, st_dtype dtype,
                                    const char *path, char *msg, size_t n) {
    text_encoder *m = NULL;
    const wb_source src = {.seed = seed, .write_path = path, .write_dtype = dtype};
    cs_status st = create(cfg, &src, &m, msg, n);
    text_encoder_free(m);
    return st;
}

cs_status text_encoder_new_random(const te_config *cfg, uint64_t seed, text_encoder **out,
                                  char *msg, size_t n) {
    return create(cfg, &(wb_source){.seed = seed}, out, msg, n);
}

void text_encoder_free(text_encoder *m) {
    if (!m) return;
    weight_block_free(&m->weights);
    lora_module_table_free(&m->lora_modules);
    free(m->layers);
    free(m);
}

const lora_module_table *text_encoder_lora_modules(const text_encoder *m) {
    return &m->lora_modules;
}

const weight_block *text_encoder_weights(const text_encoder *m) {
    return &m->weights;
}

const te_config *text_encoder_config(const text_encoder *m) {
    return &m->cfg;
}
int64_t text_encoder_hidden_size(const text_encoder *m) {
    return m->cfg.hidden_size;
}
int64_t text_encoder_max_length(const text_encoder *m) {
    return m->cfg.max_positions;
}
int64_t text_encoder_num_layers(const text_encoder *m) {
    return m->cfg.num_layers;
}

/* ---- validation ---- */

cs_status text_encoder_check_ids(const text_encoder *m, const int64_t *ids, int64_t batch,
                                 int64_t len, char *msg, size_t n) {
    const te_config *cfg = &m->cfg;
    if (batch < 1)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "text encoder: batch size %lld is not positive",
                       (long long)batch);
    if (len < 1 || len > cfg->max_positions)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "text encoder: sequence length %lld is outside [1, %lld] "
                       "(max_position_embeddings)",
                       (long long)len, (long long)cfg->max_positions);
    /* The widest activation is (batch, len, max(D, intermediate)) floats; len is small, so
     * only an absurd batch can overflow. */
    int64_t wide =
        cfg->hidden_size > cfg->intermediate_size ? cfg->hidden_size : cfg->intermediate_size;
    int64_t rows, elems;
    size_t bytes;
    if (__builtin_mul_overflow(batch, len, &rows) || __builtin_mul_overflow(rows, wide, &elems) ||
        !cs_mul_size((size_t)elems, 8 * sizeof(float), &bytes))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "text encoder: batch size %lld is too large",
                       (long long)batch);
    if (!ids) return cs_errf(CS_ERR_INVALID_ARG, msg, n, "text encoder: no token ids");
    for (int64_t i = 0; i < rows; i++)
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "text encoder: token id %lld at [%lld, %lld] is outside the "
                           "vocabulary [0, %lld)",
                           (long long)ids[i], (long long)(i / len), (long long)(i % len),
                           (long long)cfg->vocab_size);
    return CS_OK;
}

cs_status text_encoder_check_clip_skip(const text_encoder *m, int clip_skip, char *msg, size_t n) {
    if (clip_skip < 0 || clip_skip > m->cfg.num_layers)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "text encoder: clip_skip %d is outside [0, %lld] (the model has %lld "
                       "layers)",
                       clip_skip, (long long)m->cfg.num_layers, (long long)m->cfg.num_layers);
    return CS_OK;
}

/* ---- forward ---- */

/* CLIPEncoderLayer, in place on h (B·L, D): pre-LN causal self-attention and MLP, each
 * with a residual connection. */
static void layer_forward(cs_ctx *c, const te_config *cfg, const te_layer *l, float *h,
                          int64_t batch, int64_t len) {
    const int64_t d = cfg->hidden_size, rows = batch * len, inner = cfg->intermediate_size;
    const int64_t head_dim = d / cfg->num_heads;
    size_t mark = ctx_mark(c);
    float *x = ctx_alloc(c, rows * d); // (B, L, D)
    size_t mark_x = ctx_mark(c);

    layer_norm_forward(c, &l->layer_norm1, x, h, rows);
    float *q = ctx_alloc(c, rows * d); // (B, L, heads·head_dim)
    float *k = ctx_alloc(c, rows * d);
    float *v = ctx_alloc(c, rows * d);
    linear_forward(c, &l->q_proj, q, x, batch, len);
    linear_forward(c, &l->k_proj, k, x, batch, len);
    linear_forward(c, &l->v_proj, v, x, batch, len);
    float *a = ctx_alloc(c, rows * d); // (B, L, D)
    op_attn_shape s = {.batch = batch,
                       .heads = cfg->num_heads,
                       .q_len = len,
                       .kv_len = len,
                       .head_dim = head_dim,
                       .q_stride = d,
                       .kv_stride = d,
                       .out_stride = d,
                       .scale = (float)pow((double)head_dim, -0.5),
                       .causal = true,
                       .bf16 = l->q_proj.w.dtype == GEMM_BF16X2};
    op_attention(c, a, q, k, v, &s);
    linear_forward(c, &l->out_proj, x, a, batch, len); // (B, L, D)
    op_add(c, h, h, x, rows * d);
    ctx_release(c, mark_x);

    layer_norm_forward(c, &l->layer_norm2, x, h, rows);
    float *f = ctx_alloc(c, rows * inner); // (B, L, I)
    linear_forward(c, &l->fc1, f, x, batch, len);
    if (cfg->act == TE_ACT_GELU)
        op_gelu(c, f, f, rows * inner);
    else
        op_quick_gelu(c, f, f, rows * inner);
    linear_forward(c, &l->fc2, x, f, batch, len); // (B, L, D)
    op_add(c, h, h, x, rows * d);
    ctx_release(c, mark);
}

/* The row pooler_output takes (transformers 4.37): with the legacy eos_token_id == 2 the
 * argmax of the ids (the end-of-text token has the largest id), otherwise the first
 * position holding eos_token_id; torch's argmax picks the first maximum, and 0 when no
 * position matches. */
static int64_t pooled_position(const te_config *cfg, const int64_t *ids, int64_t len) {
    int64_t at = 0;
    if (cfg->eos_token_id == 2) {
        for (int64_t j = 1; j < len; j++)
            if (ids[j] > ids[at]) at = j;
        return at;
    }
    for (int64_t j = 0; j < len; j++)
        if (ids[j] == cfg->eos_token_id) return j;
    return 0;
}

static void tap_hidden(cs_ctx *c, int64_t i, const float *h, int64_t batch, int64_t len,
                       int64_t d) {
    if (c->measuring || !c->tap) return;
    char name[48];
    snprintf(name, sizeof name, "hidden_states.%lld", (long long)i);
    ctx_tap(c, name, h, 3, (const int64_t[]){batch, len, d});
}

void text_encoder_forward(cs_ctx *c, const text_encoder *m, const int64_t *ids, int64_t batch,
                          int64_t len, int clip_skip, float *out, float *pooled) {
    const te_config *cfg = &m->cfg;
    const int64_t d = cfg->hidden_size, rows = batch * len, nl = cfg->num_layers;
    CS_ASSERT(batch >= 1 && len >= 1 && len <= cfg->max_positions);
    CS_ASSERT(clip_skip >= 0 && clip_skip <= nl);
    CS_ASSERT(out != NULL && (c->measuring || ids != NULL));
    /* hidden_states[-(clip_skip + 1)] is hidden_states[nl - clip_skip]; the pooled row
     * always comes from the last layer, so only without it can the tail be skipped. */
    const int64_t want = nl - clip_skip, stop = pooled ? nl : want;
    size_t mark = ctx_mark(c);

    float *h = ctx_alloc(c, rows * d); // (B, L, D)
    op_embedding(c, h, m->token_embedding, ids, rows, d);
    for (int64_t b = 0; b < batch; b++) // + position_embedding(0..L-1)
        op_add(c, h + b * len * d, h + b * len * d, m->position_embedding, len * d);
    tap_hidden(c, 0, h, batch, len, d);
    if (want == 0) layer_norm_forward(c, &m->final_layer_norm, out, h, rows);

    for (int64_t i = 0; i < stop; i++) {
        layer_forward(c, cfg, &m->layers[i], h, batch, len);
        tap_hidden(c, i + 1, h, batch, len, d);
        if (i + 1 == want) layer_norm_forward(c, &m->final_layer_norm, out, h, rows); // (B, L, D)
    }

    if (pooled) {
        /* LayerNorm is per row, so normalising the gathered rows equals gathering rows of
         * last_hidden_state. */
        float *sel = ctx_alloc(c, batch * d); // (B, D)
        for (int64_t b = 0; b < batch && !c->measuring; b++) {
            int64_t j = pooled_position(cfg, ids + b * len, len);
            op_copy(c, sel + b * d, h + (b * len + j) * d, d);
        }
        layer_norm_forward(c, &m->final_layer_norm, pooled, sel, batch); // (B, D)
    }
    ctx_release(c, mark);
}

size_t text_encoder_activation_bytes(const text_encoder *m, int64_t batch, int64_t len) {
    /* Every clip_skip allocates the same buffers when pooled is requested (the full
     * network runs); measure two settings anyway so a future change cannot undercount. */
    float dummy[1];
    size_t peak = 0;
    for (int skip = 0; skip <= 1 && skip <= m->cfg.num_layers; skip++) {
        cs_ctx c;
        ctx_init_measure(&c);
        text_encoder_forward(&c, m, NULL, batch, len, skip, dummy, dummy);
        if (c.peak > peak) peak = c.peak;
    }
    return peak;
}
