/*
 * The loaded model (cs_model): every component of a diffusers folder, read-only after
 * load and shared by all workers, plus the prompt-embedding cache (the one mutable part,
 * guarded by its own lock).
 */
#ifndef CS_MODEL_H
#define CS_MODEL_H

#include <pthread.h>

#include "prompt_cache.h"
#include "scheduler.h"
#include "text_encoder.h"
#include "tokenizer.h"
#include "unet.h"
#include "vae.h"

/* A1111-syntax prompts: up to 4 chunks of 75 tokens (300 tokens). */
enum { MODEL_MAX_PROMPT_CHUNKS = 4 };

struct cs_model {
    char *dir;
    char *name;             /* folder name, reported in PNG parameters and /v1/models */
    cs_tokenizer *tokenizer;
    text_encoder *text_encoder;
    unet_model *unet;
    vae_model *vae;
    sched_config *scheduler; /* scheduler/scheduler_config.json */
    int64_t latent_channels;
    bool inpainting;         /* UNet input is latents + mask + masked-image latents (2C + 1) */
    int64_t vae_factor;      /* pixels per latent cell */
    int64_t size_multiple;   /* width/height must be multiples of this */
    int64_t native_width, native_height;
    int64_t context_len, context_dim; /* text encoder sequence (B, L, D) */
    /* A1111-syntax prompts are encoded in chunks of context_len tokens, at most this many
     * (their embedding is chunks · context_len long). */
    int max_prompt_chunks;
    prompt_cache *cache;     /* (text, clip_skip, LoRA key) -> (L, D) embedding */
    struct lora_registry *loras; /* LoRA folder and cache (mutable, own lock) */
    /* The UNet's time_cond_proj_dim: > 0 for a guidance-distilled ("guidance-embedded")
     * model, which runs one conditional row per image and takes the scale as
     * timestep_cond (guidance_scale_embedding) instead of an unconditional pass; 0 for
     * plain classifier-free guidance. */
    int64_t guidance_embed_dim;
    /* Step previews (pipeline/preview.c): the latent -> RGB map, (3, C + 1) weights with
     * the bias last, fitted on first use; NULL until then. Guarded by preview_lock (the
     * model's other mutable part). */
    pthread_mutex_t preview_lock;
    bool preview_lock_init;
    float *preview_map;
};

/* A model with only its name, folder and prompt cache set (NULL: out of memory). */
cs_model *model_alloc(const char *dir);
/* Loads a diffusers folder. */
cs_status model_load_folder(const char *dir, wb_store store, cs_model **out, char *msg, size_t n);
/* Once every component is set: checks they agree and derives the sizes. */
cs_status model_finish(cs_model *m, char *msg, size_t n);
/* Loads a single-file LDM checkpoint (model_single.c). */
cs_status model_load_single(const cs_load_params *lp, cs_model **out, char *msg, size_t n);

struct job_loras;

/* The embedding (L, D) of `text` at clip_skip read as `syntax` (CS_PROMPT_PLAIN: L =
 * context_len; CS_PROMPT_A1111: prompt_syntax.h, L = chunks · context_len), with the
 * text-encoder LoRAs of `loras` (NULL: none), from the cache or computed in c (whose
 * arena must hold a text-encoder pass of batch 1). *out is a new reference the caller
 * releases with prompt_cache_release. */
cs_status model_encode_prompt(const cs_model *m, cs_ctx *c, const char *text, int clip_skip,
                              int syntax, const struct job_loras *loras,
                              const prompt_embedding **out, char *msg, size_t msg_size);

#endif
