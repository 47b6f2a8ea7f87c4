/* Prompt-embedding cache: hits, LRU eviction, reference counts keeping evicted entries
 * alive for their holders, (text, clip_skip) keys, and concurrent use. */
#include "check.h"
#include "prompt_cache.h"

#include <pthread.h>

static prompt_cache *g_pc;

static void *hammer(void *arg) {
    const float v[2] = {1, 2};
    char text[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(text, sizeof text, "p%d", (i * 7 + (int)(intptr_t)arg) % 11);
        const prompt_embedding *e = prompt_cache_get(g_pc, text, 0, NULL);
        if (!e) e = prompt_cache_put(g_pc, text, 0, NULL, v, 1, 2);
        if (e && (e->data[0] != 1 || e->data[1] != 2)) check_failures++;
        prompt_cache_release(g_pc, e);
    }
    return NULL;
}

int main(void) {
    prompt_cache *pc = prompt_cache_new(2);
    const float a[3] = {1, 2, 3}, b[3] = {4, 5, 6}, c[3] = {7, 8, 9};
    CHECK(prompt_cache_get(pc, "a", 0, NULL) == NULL);
    const prompt_embedding *ea = prompt_cache_put(pc, "a", 0, NULL, a, 1, 3);
    CHECK(ea && ea->data[2] == 3 && ea->len == 1 && ea->dim == 3);
    const prompt_embedding *ea2 = prompt_cache_get(pc, "a", 0, NULL);
    CHECK(ea2 == ea);
    CHECK(prompt_cache_get(pc, "a", 1, NULL) == NULL); /* clip_skip is part of the key */
    prompt_cache_release(pc, ea2);
    const prompt_embedding *eb = prompt_cache_put(pc, "b", 0, NULL, b, 1, 3);
    prompt_cache_release(pc, eb);
    /* "a" is least recently used after "b": inserting "c" evicts it, but our reference
     * stays valid until released. */
    const prompt_embedding *ec = prompt_cache_put(pc, "c", 0, NULL, c, 1, 3);
    prompt_cache_release(pc, ec);
    CHECK(prompt_cache_get(pc, "a", 0, NULL) == NULL);
    CHECK(ea->data[0] == 1 && ea->data[2] == 3);
    prompt_cache_release(pc, ea);
    const prompt_embedding *eb2 = prompt_cache_get(pc, "b", 0, NULL);
    CHECK(eb2 && eb2->data[0] == 4);
    prompt_cache_release(pc, eb2);
    int entries;
    uint64_t hits, misses;
    prompt_cache_stats(pc, &entries, &hits, &misses);
    CHECK_EQ_INT(entries, 2);
    CHECK_EQ_INT(hits, 2);
    CHECK_EQ_INT(misses, 3);
    prompt_cache_free(pc);

    g_pc = prompt_cache_new(4);
    pthread_t t[4];
    for (intptr_t i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    prompt_cache_stats(g_pc, &entries, NULL, NULL);
    CHECK(entries <= 4);
    prompt_cache_free(g_pc);
    CHECK_DONE();
}
