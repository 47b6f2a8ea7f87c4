/*
 * strmap: a hash map from byte strings (any bytes, explicit length) to int64 values, with
 * open addressing and the keys copied into a pool the map owns. Built once by a loader,
 * then only read: lookups on a map nobody modifies are thread-safe.
 */
#ifndef CS_STRMAP_H
#define CS_STRMAP_H

#include "common.h"

typedef struct strmap_slot {
    uint64_t hash;    /* never 0 for a used slot: 0 marks an empty one */
    uint32_t key_off; /* into pool */
    uint32_t key_len;
    int64_t value;
} strmap_slot;

/* Whether a slot holds a key (for iterating over slots[0, cap)). */
static inline bool strmap_slot_used(const strmap_slot *s) {
    return s->hash != 0;
}

typedef struct strmap {
    strmap_slot *slots; /* cap entries (a power of two), zeroed = empty */
    size_t cap, count;
    char *pool;
    size_t pool_len, pool_cap;
} strmap;

/* Prepares an empty map sized for about `expected` keys; deinit frees it. */
cs_status strmap_init(strmap *m, size_t expected);
void strmap_deinit(strmap *m);

/* Adds key -> value. When the key is already present nothing changes, *inserted is false
 * and *existing (if non-NULL) receives its value. Keys longer than 1 GiB, or beyond 4 GiB
 * of keys in all, are refused with CS_ERR_INVALID_ARG. */
cs_status strmap_insert(strmap *m, const void *key, size_t len, int64_t value, bool *inserted,
                        int64_t *existing);

/* True and *value set when key is present. */
bool strmap_get(const strmap *m, const void *key, size_t len, int64_t *value);

#endif
