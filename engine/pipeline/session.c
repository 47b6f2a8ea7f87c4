/* Worker sessions: planned activation memory and the encoders and decoder run in it
 * (see session.h); the batched step and decode that use a session are in step.c. */
#include "session_internal.h"

#include <stdio.h>
#include <string.h>


const cs_model *session_model(const cs_session *s) {
    return s->model;
}

cs_session_params cs_session_default_params(const cs_model *m) {
    return (cs_session_params){.max_images = 4, .max_width = (int)m->native_width,
                               .max_height = (int)m->native_height};
}

bool session_fits(const cs_session *s, int width, int height, int num_images) {
    const int64_t f = s->model->vae_factor;
    return num_images <= s->params.max_images &&
           (int64_t)(width / f) * (height / f) * s->model->latent_channels <= s->max_lat_numel;
}

size_t cs_session_bytes(const cs_session *s) {
    return s->ctx.cap;
}

void cs_session_free(cs_session *s) {
    if (!s) return;
    ctx_deinit(&s->ctx);
    free(s->x);
    free(s->out);
    free(s->t);
    free(s->context);
    free(s->row_emb);
    free(s->gx);
    free(s->gout);
    free(s->gt);
    free(s->gtcond);
    free(s->glora);
    free(s->tcond);
    free(s->decoded);
    free(s->latent_in);
    free(s->lora_rows);
    free(s);
}

/* Arena a session may take to decode several small images in one VAE pass. */
enum { VAE_BATCH_BYTES = 64 << 20 };

static size_t max_size(size_t a, size_t b) {
    return a > b ? a : b;
}

cs_status cs_session_new(const cs_model *m, const cs_session_params *sp, cs_session **out,
                         char *msg, size_t n) {
    *out = NULL;
    cs_session_params p = sp ? *sp : cs_session_default_params(m);
    const int64_t mult = m->size_multiple;
    if (p.max_images < 1 || p.max_images > 64 || p.max_width < mult || p.max_height < mult ||
        p.max_width % mult || p.max_height % mult || p.max_width > 4096 || p.max_height > 4096)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "session: max_images must be 1..64 and max size a multiple of %lld up to "
                       "4096 (got %d images, %dx%d)",
                       (long long)mult, p.max_images, p.max_width, p.max_height);
    if (p.vae_tile < 0 || p.vae_tile % (4 * m->vae_factor) || p.vae_tile > 4096)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "session: vae_tile must be 0 (off) or a multiple of %lld up to 4096 (got %d)",
                       (long long)(4 * m->vae_factor), p.vae_tile);
    cs_session *s = cs_calloc(1, sizeof *s);
    if (!s) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    s->model = m;
    s->params = p;
    s->max_rows = 2 * (int64_t)p.max_images;
    const int64_t h = p.max_height / m->vae_factor, w = p.max_width / m->vae_factor;
    s->max_lat_numel = m->latent_channels * h * w;
    s->in_channels = unet_get_config(m->unet)->in_channels;

    /* One arena serves whichever pass runs: the largest of them sizes it. */
    const int threads = ctx_pool_threads(0); /* as many as OpenBLAS: ctx_start_pool below */
    const int64_t max_ctx = m->context_len * m->max_prompt_chunks; /* longest conditioning */
    size_t bytes = unet_activation_bytes(m->unet, s->max_rows, h, w, max_ctx, threads);
    /* Prompt encoding keeps its (L, D) output in the arena beside the encoder's own. */
    const size_t emb_bytes = (size_t)(m->context_len * m->context_dim) * sizeof(float) + 64;
    bytes = max_size(bytes, text_encoder_activation_bytes(m->text_encoder, 1, m->context_len) +
                                emb_bytes);
    /* Images are decoded one at a time (the VAE's arena for SD-1.5 at 512² is 896 MiB an
     * image), each in tiles when asked; small ones several a pass (cs_decode: they then
     * share the weight reads) as far as the arena planned so far, or VAE_BATCH_BYTES, holds
     * them. */
    s->vae_tile = p.vae_tile / m->vae_factor;
    bytes = max_size(bytes, vae_decode_tiled_bytes(m->vae, h, w, s->vae_tile));
    if (!vae_tiling_applies(s->vae_tile, h, w)) {
        const size_t room = max_size(bytes, VAE_BATCH_BYTES);
        for (int64_t b = p.max_images; b > 1; b--) {
            const size_t need = vae_decode_activation_bytes(m->vae, b, h, w);
            if (need <= room) {
                bytes = max_size(bytes, need);
                break;
            }
        }
    }
    /* img2img encodes one image at a time (cs_job_new). */
    bytes = max_size(bytes, vae_encode_activation_bytes(m->vae, 1, p.max_height, p.max_width));
    cs_status st = ctx_init(&s->ctx, bytes);
    if (st == CS_OK) st = ctx_start_pool(&s->ctx, threads, msg, n);
    const size_t lat = (size_t)s->max_lat_numel, rows = (size_t)s->max_rows;
    s->x = cs_malloc(rows * (lat / (size_t)m->latent_channels) * (size_t)s->in_channels *
                     sizeof(float));
    s->out = cs_malloc(rows * lat * sizeof(float));
    s->t = cs_malloc(rows * sizeof(float));
    const size_t in_row = lat / (size_t)m->latent_channels * (size_t)s->in_channels;
    s->context = cs_malloc(rows * (size_t)(max_ctx * m->context_dim) * sizeof(float));
    s->row_emb = cs_calloc(rows, sizeof *s->row_emb);
    s->gx = cs_malloc(rows * in_row * sizeof(float));
    s->gout = cs_malloc(rows * lat * sizeof(float));
    s->gt = cs_malloc(rows * sizeof(float));
    s->glora = cs_calloc(rows, sizeof *s->glora);
    if (m->guidance_embed_dim > 0)
        s->gtcond = cs_malloc(rows * (size_t)m->guidance_embed_dim * sizeof(float));
    s->decoded = cs_malloc((size_t)p.max_images * 3 * (size_t)(p.max_width * p.max_height) *
                           sizeof(float));
    s->latent_in = cs_malloc((size_t)p.max_images * lat * sizeof(float));
    if (m->guidance_embed_dim > 0)
        s->tcond = cs_malloc(rows * (size_t)m->guidance_embed_dim * sizeof(float));
    s->lora_rows = cs_calloc(rows, sizeof *s->lora_rows);
    if (st != CS_OK || (m->guidance_embed_dim > 0 && !s->tcond) || !s->x || !s->out || !s->t ||
        !s->context || !s->decoded || !s->latent_in || !s->lora_rows || !s->row_emb || !s->gx ||
        !s->gout || !s->gt || !s->glora || (m->guidance_embed_dim > 0 && !s->gtcond)) {
        cs_session_free(s);
        return cs_errf(CS_ERR_NOMEM, msg, n, "session: cannot allocate %zu bytes of activations",
                       bytes);
    }
    cs_log(CS_LOG_INFO, "session: %zu MiB of activations for %d image(s) up to %dx%d",
           bytes >> 20, p.max_images, p.max_width, p.max_height);
    *out = s;
    return CS_OK;
}

cs_status session_encode_prompt(cs_session *s, const char *text, int clip_skip, int syntax,
                                const job_loras *loras, const prompt_embedding **out,
                                char *msg, size_t n) {
    return model_encode_prompt(s->model, &s->ctx, text, clip_skip, syntax, loras, out, msg, n);
}

void session_encode_image(cs_session *s, const uint8_t *rgb, const uint8_t *mask, int64_t height,
                          int64_t width, float *mean, float *logvar) {
    const int64_t plane = height * width;
    CS_ASSERT(plane <= (int64_t)s->params.max_images * s->params.max_width * s->params.max_height);
    float *x = s->decoded; // (1, 3, H, W)
    for (int64_t q = 0; q < plane; q++) {
        const bool zero = mask && mask[q] >= 128;
        for (int c = 0; c < 3; c++) {
            const float u = (float)rgb[q * 3 + c] / 255.0f; /* pil_to_numpy, then 2x - 1 */
            x[c * plane + q] = zero ? 0.0f : 2.0f * u - 1.0f;
        }
    }
    ctx_release(&s->ctx, 0);
    vae_encode(&s->ctx, s->model->vae, mean, logvar, x, 1, height, width);
}

void session_max_latent(const cs_session *s, int64_t *h, int64_t *w) {
    *h = s->params.max_height / s->model->vae_factor;
    *w = s->params.max_width / s->model->vae_factor;
}

const float *session_decode_one(cs_session *s, const float *latent, int64_t h, int64_t w) {
    CS_ASSERT(h * w * s->model->latent_channels <= s->max_lat_numel);
    ctx_release(&s->ctx, 0);
    vae_decode_tiled(&s->ctx, s->model->vae, s->decoded, latent, h, w, s->vae_tile);
    return s->decoded;
}
