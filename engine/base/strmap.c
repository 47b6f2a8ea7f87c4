/* Open-addressing string -> int64 map (see strmap.h). Linear probing, load <= 1/2. */
#include "strmap.h"

#include <string.h>

/* FNV-1a, finished with a multiply-xorshift so that short keys spread over the table. */
static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h ? h : 1; /* 0 marks empty slots */
}

static cs_status alloc_slots(strmap *m, size_t cap) {
    strmap_slot *s = cs_calloc(cap, sizeof *s); /* all empty */
    if (!s) return CS_ERR_NOMEM;
    m->slots = s;
    m->cap = cap;
    return CS_OK;
}

cs_status strmap_init(strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap / 2 < expected) {
        if (cap > SIZE_MAX / 4 / sizeof(strmap_slot)) return CS_ERR_NOMEM;
        cap *= 2;
    }
    return alloc_slots(m, cap);
}

void strmap_deinit(strmap *m) {
    if (!m) return;
    free(m->slots);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const strmap_slot *slots, size_t cap, const char *pool, uint64_t h,
                        const void *key, size_t len, bool *found) {
    size_t i = (size_t)h & (cap - 1);
    for (;;) {
        const strmap_slot *s = &slots[i];
        if (!strmap_slot_used(s)) {
            *found = false;
            return i;
        }
        if (s->hash == h && s->key_len == len &&
            (len == 0 || memcmp(pool + s->key_off, key, len) == 0)) {
            *found = true;
            return i;
        }
        i = (i + 1) & (cap - 1);
    }
}

static cs_status grow(strmap *m) {
    strmap old = *m;
    if (old.cap > SIZE_MAX / 4 / sizeof(strmap_slot)) return CS_ERR_NOMEM;
    cs_status st = alloc_slots(m, old.cap * 2);
    if (st != CS_OK) {
        *m = old;
        return st;
    }
    for (size_t i = 0; i < old.cap; i++) {
        if (!strmap_slot_used(&old.slots[i])) continue;
        size_t j = (size_t)old.slots[i].hash & (m->cap - 1);
        while (strmap_slot_used(&m->slots[j]))
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old.slots[i];
    }
    free(old.slots);
    return CS_OK;
}

cs_status strmap_insert(strmap *m, const void *key, size_t len, int64_t value, bool *inserted,
                        int64_t *existing) {
    *inserted = false;
    if (len > (1u << 30)) return CS_ERR_INVALID_ARG;
    uint64_t h = hash_bytes(key, len);
    bool found;
    size_t i = find_slot(m->slots, m->cap, m->pool, h, key, len, &found);
    if (found) {
        if (existing) *existing = m->slots[i].value;
        return CS_OK;
    }
    if ((m->count + 1) * 2 > m->cap) {
        cs_status st = grow(m);
        if (st != CS_OK) return st;
        i = find_slot(m->slots, m->cap, m->pool, h, key, len, &found);
    }
    size_t need;
    if (!cs_add_size(m->pool_len, len, &need) || need > UINT32_MAX) return CS_ERR_INVALID_ARG;
    if (need > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) return CS_ERR_NOMEM;
            cap *= 2;
        }
        char *p = realloc(m->pool, cap);
        if (!p) return CS_ERR_NOMEM;
        m->pool = p;
        m->pool_cap = cap;
    }
    if (len) memcpy(m->pool + m->pool_len, key, len);
    m->slots[i] = (strmap_slot){h, (uint32_t)m->pool_len, (uint32_t)len, value};
    m->pool_len = need;
    m->count++;
    *inserted = true;
    return CS_OK;
}

bool strmap_get(const strmap *m, const void *key, size_t len, int64_t *value) {
    if (!m->slots || len > (1u << 30)) return false;
    bool found;
    size_t i = find_slot(m->slots, m->cap, m->pool, hash_bytes(key, len), key, len, &found);
    if (found && value) *value = m->slots[i].value;
    return found;
}
