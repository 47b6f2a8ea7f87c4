/* Loading a diffusers folder into a cs_model, and the cached prompt encoder (see model.h).
 * cs_model_load runs on one thread; the loaded model is read-only except for its cache. */
#include "model.h"

#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "lora_registry.h"
#include "prompt_syntax.h"
#include "model_lora.h"

enum { PROMPT_CACHE_ENTRIES = 256 };

/* model_index.json names each component as [library, class]; the classes the engine
 * implements are checked here so a folder for another pipeline fails with its name. */
static void require_component(cfg_reader *r, const char *key, const char *const *classes) {
    if (r->status != CS_OK) return;
    const char *pair[2] = {NULL, NULL};
    int n = cfg_string_list(r, key, pair, 2);
    if (r->status != CS_OK) return;
    if (n != 2) {
        cfg_fail(r, "component '%s' must be [library, class]", key);
        return;
    }
    for (int i = 0; classes[i]; i++)
        if (strcmp(pair[1], classes[i]) == 0) return;
    cfg_fail(r, "component '%s' has class \"%s\", which this engine does not implement", key,
             pair[1]);
}

static cs_status read_model_index(const char *dir, char *msg, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    cfg_reader r;
    cs_status st = cfg_open(&r, path, msg, n);
    if (st == CS_OK) {
        const char *cls = cfg_string(&r, "_class_name", "StableDiffusionPipeline");
        if (r.status == CS_OK && strcmp(cls, "StableDiffusionPipeline") != 0)
            cfg_fail(&r, "pipeline class \"%s\" is not supported (StableDiffusionPipeline)", cls);
        require_component(&r, "tokenizer", (const char *const[]){"CLIPTokenizer", "CLIPTokenizerFast", NULL});
        require_component(&r, "text_encoder", (const char *const[]){"CLIPTextModel", NULL});
        require_component(&r, "unet", (const char *const[]){"UNet2DConditionModel", NULL});
        require_component(&r, "vae", (const char *const[]){"AutoencoderKL", NULL});
        require_component(&r, "scheduler",
                          (const char *const[]){"DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler",
                                                "EulerAncestralDiscreteScheduler",
                                                "DPMSolverMultistepScheduler", "LMSDiscreteScheduler",
                                                "DDPMScheduler", NULL});
        /* The safety checker is a separate image classifier the server does not run. */
        cfg_ignore(&r, (const char *const[]){"safety_checker", "feature_extractor",
                                             "requires_safety_checker", "image_encoder", NULL});
        st = cfg_finish(&r);
    }
    cfg_close(&r);
    return st;
}

void cs_model_free(cs_model *m) {
    if (!m) return;
    prompt_cache_free(m->cache);
    lora_registry_free(m->loras);
    tokenizer_free(m->tokenizer);
    text_encoder_free(m->text_encoder);
    unet_free(m->unet);
    vae_free(m->vae);
    sched_config_free(m->scheduler);
    free(m->preview_map);
    if (m->preview_lock_init) pthread_mutex_destroy(&m->preview_lock);
    free(m->dir);
    free(m->name);
    free(m);
}

/* Sizes that must agree between components; each mismatch names both files. */
static cs_status check_consistency(cs_model *m, char *msg, size_t n) {
    const unet_config *u = unet_get_config(m->unet);
    if (u->cross_dim != text_encoder_hidden_size(m->text_encoder))
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: unet cross_attention_dim %lld differs from the text encoder's "
                       "hidden_size %lld",
                       m->dir, (long long)u->cross_dim,
                       (long long)text_encoder_hidden_size(m->text_encoder));
    /* An inpainting UNet (sd-1.5-inpainting) takes latents + mask + masked-image latents. */
    const int64_t lc = vae_latent_channels(m->vae);
    m->inpainting = u->in_channels == 2 * lc + 1;
    if ((u->in_channels != lc && !m->inpainting) || u->out_channels != lc)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: unet in/out channels %lld/%lld do not match the vae's %lld latent "
                       "channels (in %lld for an inpainting unet)",
                       m->dir, (long long)u->in_channels, (long long)u->out_channels,
                       (long long)lc, (long long)(2 * lc + 1));
    if (u->class_embed != UNET_CLASS_NONE)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                       "%s: this unet needs class labels, which text-to-image generation does "
                       "not provide",
                       m->dir);
    /* time_cond_proj_dim: a guidance-embedded UNet; the embedding divides by dim/2 - 1. */
    if (u->time_cond_dim > 0 && u->time_cond_dim < 4)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                       "%s: unet time_cond_proj_dim %lld is too small for the guidance-scale "
                       "embedding (at least 4; diffusers divides by dim/2 - 1)",
                       m->dir, (long long)u->time_cond_dim);
    if (tokenizer_max_length(m->tokenizer) > text_encoder_max_length(m->text_encoder))
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: tokenizer model_max_length %d exceeds the text encoder's %lld "
                       "positions",
                       m->dir, tokenizer_max_length(m->tokenizer),
                       (long long)text_encoder_max_length(m->text_encoder));
    return CS_OK;
}

cs_model *model_alloc(const char *dir) {
    cs_model *m = cs_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->dir = strdup(dir);
    const char *base = strrchr(dir, '/');
    while (base && base[1] == '\0' && base > dir) { /* "models/default/" names "default" */
        const char *p = base - 1;
        while (p > dir && *p != '/') p--;
        base = p;
    }
    m->name = strndup(base && *base == '/' ? base + 1 : dir, 200);
    if (m->name) m->name[strcspn(m->name, "/")] = '\0';
    m->cache = prompt_cache_new(PROMPT_CACHE_ENTRIES);
    m->loras = lora_registry_new();
    m->preview_lock_init = pthread_mutex_init(&m->preview_lock, NULL) == 0;
    if (!m->preview_lock_init || !m->dir || !m->name || !m->cache || !m->loras) {
        cs_model_free(m);
        return NULL;
    }
    return m;
}

/* Loads a diffusers folder (cs_model_load_ex's folder case). */
cs_status model_load_folder(const char *dir, wb_store store, cs_model **out, char *msg, size_t n) {
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cs_errf(CS_ERR_IO, msg, n, "%s: not a model folder (no such directory)", dir);
    cs_status st = read_model_index(dir, msg, n);
    if (st != CS_OK) return st;
    cs_model *m = model_alloc(dir);
    if (!m) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    char path[4096];
#define SUBDIR(s) (snprintf(path, sizeof path, "%s/%s", dir, s), path)
    if ((st = tokenizer_load(SUBDIR("tokenizer"), &m->tokenizer, msg, n)) != CS_OK) goto fail;
    if ((st = text_encoder_load(SUBDIR("text_encoder"), store, &m->text_encoder, msg, n)) != CS_OK) goto fail;
    if ((st = unet_load(SUBDIR("unet"), store, &m->unet, msg, n)) != CS_OK) goto fail;
    if ((st = vae_load(SUBDIR("vae"), store, &m->vae, msg, n)) != CS_OK) goto fail;
    if ((st = sched_config_load(SUBDIR("scheduler/scheduler_config.json"), &m->scheduler, msg, n)) != CS_OK)
        goto fail;
    /* StableDiffusionPipeline.__init__ rewrites outdated scheduler configs the same way. */
    sched_config_apply_pipeline_fixups(m->scheduler);
#undef SUBDIR
    if ((st = model_finish(m, msg, n)) != CS_OK) goto fail;
    *out = m;
    return CS_OK;
fail:
    cs_model_free(m);
    return st;
}

cs_status model_finish(cs_model *m, char *msg, size_t n) {
    cs_status st = check_consistency(m, msg, n);
    if (st != CS_OK) return st;
    const unet_config *u = unet_get_config(m->unet);
    m->latent_channels = vae_latent_channels(m->vae);
    m->vae_factor = vae_scale_factor(m->vae);
    m->size_multiple = m->vae_factor * unet_config_size_multiple(u);
    m->native_height = (u->sample_size[0] > 0 ? u->sample_size[0] : 64) * m->vae_factor;
    m->native_width = (u->sample_size[1] > 0 ? u->sample_size[1] : 64) * m->vae_factor;
    m->context_len = tokenizer_max_length(m->tokenizer);
    m->max_prompt_chunks = MODEL_MAX_PROMPT_CHUNKS;
    m->context_dim = text_encoder_hidden_size(m->text_encoder);
    m->guidance_embed_dim = u->time_cond_dim;
    return CS_OK;
}

int cs_model_size_multiple(const cs_model *m) {
    return (int)m->size_multiple;
}

void cs_model_native_size(const cs_model *m, int *width, int *height) {
    *width = (int)m->native_width;
    *height = (int)m->native_height;
}

const char *cs_model_name(const cs_model *m) {
    return m->name;
}

int cs_model_guidance_distilled(const cs_model *m) {
    return m->guidance_embed_dim > 0;
}

/* One text-encoder pass over len ids at clip_skip into out (len, D), with the LoRA rows. */
static void encode_ids(const cs_model *m, cs_ctx *c, const int64_t *ids, int64_t len,
                       int clip_skip, const job_loras *loras, float *out) {
    const size_t mark = ctx_mark(c);
    float *emb = ctx_alloc(c, len * m->context_dim); // (1, L, D)
    const lora_rowset rows = {.rows = 1, .row = loras ? &loras->te : NULL};
    c->lora = loras && loras->te.n > 0 ? &rows : NULL;
    text_encoder_forward(c, m->text_encoder, ids, 1, len, clip_skip, emb, NULL);
    c->lora = NULL;
    if (!c->measuring) memcpy(out, emb, (size_t)(len * m->context_dim) * sizeof(float));
    ctx_release(c, mark);
}

/* The web UI's reading (prompt_syntax.h): chunks of context_len ids, each encoded on its
 * own and weighted, concatenated. *out is malloc'd (chunks · L, D). */
static cs_status encode_a1111(const cs_model *m, cs_ctx *c, const char *text, int clip_skip,
                              const job_loras *loras, float **out, int64_t *out_len, char *msg,
                              size_t n) {
    const int64_t len = m->context_len, dim = m->context_dim;
    if (len < 3 || len > PROMPT_CHUNK_TOKENS + 2)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                       "A1111 prompt syntax needs a text encoder of 3 to %d positions (this one "
                       "has %lld)",
                       PROMPT_CHUNK_TOKENS + 2, (long long)len);
    prompt_pieces pieces;
    prompt_chunks chunks;
    cs_status st = prompt_parse_attention(text, &pieces, msg, n);
    if (st != CS_OK) return st;
    st = prompt_make_chunks(m->tokenizer, &pieces, (int)len - 2, m->max_prompt_chunks, &chunks,
                            msg, n);
    prompt_pieces_free(&pieces);
    if (st != CS_OK) return st;
    if ((st = text_encoder_check_ids(m->text_encoder, chunks.ids, chunks.count, len, msg, n)) !=
        CS_OK) {
        prompt_chunks_free(&chunks);
        return st;
    }
    float *z = cs_malloc((size_t)(chunks.count * len * dim) * sizeof *z);
    if (!z) {
        prompt_chunks_free(&chunks);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory encoding a prompt");
    }
    for (int k = 0; k < chunks.count; k++) {
        float *zk = z + (int64_t)k * len * dim;
        encode_ids(m, c, chunks.ids + (int64_t)k * len, len, clip_skip, loras, zk);
        prompt_apply_emphasis(zk, chunks.weights + (int64_t)k * len, len, dim);
    }
    *out = z;
    *out_len = chunks.count * len;
    prompt_chunks_free(&chunks);
    return CS_OK;
}

cs_status model_encode_prompt(const cs_model *m, cs_ctx *c, const char *text, int clip_skip,
                              int syntax, const job_loras *loras, const prompt_embedding **out,
                              char *msg, size_t n) {
    const char *key = loras ? loras->te_key : NULL;
    /* The cache tells encodings apart by text, LoRAs and this variant. */
    const int variant = clip_skip * 2 + (syntax == CS_PROMPT_A1111);
    *out = prompt_cache_get(m->cache, text, variant, key);
    if (*out) return CS_OK;
    cs_status st = text_encoder_check_clip_skip(m->text_encoder, clip_skip, msg, n);
    if (st != CS_OK) return st;
    const int64_t len = m->context_len, dim = m->context_dim;
    ctx_release(c, 0);
    if (syntax == CS_PROMPT_A1111) {
        float *z = NULL;
        int64_t zlen = 0;
        st = encode_a1111(m, c, text, clip_skip, loras, &z, &zlen, msg, n);
        if (st != CS_OK) return st;
        *out = prompt_cache_put(m->cache, text, variant, key, z, zlen, dim);
        free(z);
    } else {
        int64_t ids[1024];
        CS_ASSERT(len <= 1024);
        int unpadded;
        st = tokenizer_encode(m->tokenizer, text, strlen(text), ids, (int)len, &unpadded, msg, n);
        if (st == CS_OK) st = text_encoder_check_ids(m->text_encoder, ids, 1, len, msg, n);
        if (st != CS_OK) return st;
        float *emb = cs_malloc((size_t)(len * dim) * sizeof *emb);
        if (!emb) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory encoding a prompt");
        encode_ids(m, c, ids, len, clip_skip, loras, emb);
        *out = prompt_cache_put(m->cache, text, variant, key, emb, len, dim);
        free(emb);
    }
    ctx_release(c, 0);
    if (!*out) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory caching a prompt embedding");
    return CS_OK;
}
