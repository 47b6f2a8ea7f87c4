/* LRU prompt-embedding cache (see prompt_cache.h). A small linear table: capacities are
 * tens to hundreds of entries and every lookup is dwarfed by a text-encoder pass. */
#include "prompt_cache.h"

#include <pthread.h>
#include <string.h>

typedef struct entry {
    prompt_embedding emb; /* first member: a prompt_embedding * is an entry * */
    char *text;
    char *lora_key; /* "" when no LoRA touches the text encoder */
    int clip_skip;
    int refs;             /* holders, plus 1 while in the table */
    uint64_t last_used;
} entry;

struct prompt_cache {
    pthread_mutex_t lock;
    entry **slots;
    int capacity, count;
    uint64_t clock, hits, misses;
};

prompt_cache *prompt_cache_new(int capacity) {
    CS_ASSERT(capacity > 0);
    prompt_cache *pc = cs_calloc(1, sizeof *pc);
    if (!pc) return NULL;
    pc->slots = cs_calloc((size_t)capacity, sizeof *pc->slots);
    if (!pc->slots) {
        free(pc);
        return NULL;
    }
    pc->capacity = capacity;
    pthread_mutex_init(&pc->lock, NULL);
    return pc;
}

static void entry_unref(entry *e) {
    if (--e->refs > 0) return;
    free(e->emb.data);
    free(e->text);
    free(e->lora_key);
    free(e);
}

void prompt_cache_free(prompt_cache *pc) {
    if (!pc) return;
    for (int i = 0; i < pc->count; i++) entry_unref(pc->slots[i]);
    pthread_mutex_destroy(&pc->lock);
    free(pc->slots);
    free(pc);
}

static entry *find(prompt_cache *pc, const char *text, int clip_skip, const char *lora_key) {
    for (int i = 0; i < pc->count; i++) {
        entry *e = pc->slots[i];
        if (e->clip_skip == clip_skip && strcmp(e->text, text) == 0 &&
            strcmp(e->lora_key, lora_key ? lora_key : "") == 0)
            return e;
    }
    return NULL;
}

const prompt_embedding *prompt_cache_get(prompt_cache *pc, const char *text, int clip_skip,
                                         const char *lora_key) {
    pthread_mutex_lock(&pc->lock);
    entry *e = find(pc, text, clip_skip, lora_key);
    if (e) {
        e->refs++;
        e->last_used = ++pc->clock;
        pc->hits++;
    } else {
        pc->misses++;
    }
    pthread_mutex_unlock(&pc->lock);
    return e ? &e->emb : NULL;
}

const prompt_embedding *prompt_cache_put(prompt_cache *pc, const char *text, int clip_skip,
                                         const char *lora_key, const float *data, int64_t len,
                                         int64_t dim) {
    entry *n = cs_calloc(1, sizeof *n);
    size_t bytes;
    if (!n || !cs_mul_size((size_t)(len * dim), sizeof(float), &bytes)) {
        free(n);
        return NULL;
    }
    n->emb.data = cs_malloc(bytes);
    n->text = strdup(text);
    n->lora_key = strdup(lora_key ? lora_key : "");
    if (!n->emb.data || !n->text || !n->lora_key) {
        free(n->emb.data);
        free(n->text);
        free(n->lora_key);
        free(n);
        return NULL;
    }
    memcpy(n->emb.data, data, bytes);
    n->emb.len = len;
    n->emb.dim = dim;
    n->clip_skip = clip_skip;

    pthread_mutex_lock(&pc->lock);
    entry *e = find(pc, text, clip_skip, lora_key);
    if (e) { /* another worker encoded it meanwhile: keep theirs */
        e->refs++;
        e->last_used = ++pc->clock;
        pthread_mutex_unlock(&pc->lock);
        n->refs = 1;
        entry_unref(n);
        return &e->emb;
    }
    if (pc->count == pc->capacity) { /* evict the least recently used */
        int victim = 0;
        for (int i = 1; i < pc->count; i++)
            if (pc->slots[i]->last_used < pc->slots[victim]->last_used) victim = i;
        entry_unref(pc->slots[victim]);
        pc->slots[victim] = pc->slots[--pc->count];
    }
    n->refs = 2; /* the table and the caller */
    n->last_used = ++pc->clock;
    pc->slots[pc->count++] = n;
    pthread_mutex_unlock(&pc->lock);
    return &n->emb;
}

void prompt_cache_release(prompt_cache *pc, const prompt_embedding *emb) {
    if (!emb) return;
    pthread_mutex_lock(&pc->lock);
    entry_unref((entry *)(void *)emb);
    pthread_mutex_unlock(&pc->lock);
}

void prompt_cache_stats(prompt_cache *pc, int *entries, uint64_t *hits, uint64_t *misses) {
    pthread_mutex_lock(&pc->lock);
    if (entries) *entries = pc->count;
    if (hits) *hits = pc->hits;
    if (misses) *misses = pc->misses;
    pthread_mutex_unlock(&pc->lock);
}
