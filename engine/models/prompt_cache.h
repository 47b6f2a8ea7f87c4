/*
 * Bounded LRU cache of prompt embeddings keyed by (text, clip_skip, lora_key) — lora_key
 * names the LoRAs (with weights) applied to the text encoder, NULL or "" for none — so a repeated
 * prompt (and the empty negative prompt, which nearly every request uses) is encoded
 * once. Entries are reference-counted: a job holds its embeddings while it runs, and an
 * evicted entry is freed when its last holder releases it.
 *
 * Thread-safe: one mutex guards the table and the reference counts.
 */
#ifndef CS_PROMPT_CACHE_H
#define CS_PROMPT_CACHE_H

#include "common.h"

typedef struct prompt_embedding {
    float *data;     /* (len, dim), owned by the entry */
    int64_t len, dim;
} prompt_embedding;

typedef struct prompt_cache prompt_cache;

prompt_cache *prompt_cache_new(int capacity);
void prompt_cache_free(prompt_cache *pc);

/* A new reference to the cached entry, or NULL on a miss. */
const prompt_embedding *prompt_cache_get(prompt_cache *pc, const char *text, int clip_skip,
                                         const char *lora_key);
/* Inserts a copy of data (len·dim floats) and returns a new reference to the cached entry
 * (an existing one if another thread inserted it first); NULL when out of memory. */
const prompt_embedding *prompt_cache_put(prompt_cache *pc, const char *text, int clip_skip,
                                         const char *lora_key, const float *data, int64_t len,
                                         int64_t dim);
void prompt_cache_release(prompt_cache *pc, const prompt_embedding *e);

/* Entries currently cached, hits and misses since creation (for tests and metrics). */
void prompt_cache_stats(prompt_cache *pc, int *entries, uint64_t *hits, uint64_t *misses);

#endif
