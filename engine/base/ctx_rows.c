/* Row groups of a forward pass (see ctx_rows.h). */
#include "ctx_rows.h"

#include <string.h>

#include "ctx_profile.h"
#include "threadpool.h"

int ctx_threads(const cs_ctx *c) {
    if (c->measuring) return c->plan_threads > 1 ? c->plan_threads : 1;
    return threadpool_threads(c->pool);
}

int ctx_row_groups(int64_t rows, int threads) {
    if (rows < 1 || threads < 1) return 1;
    return rows < threads ? (int)rows : threads;
}

int64_t ctx_group_rows(int64_t rows, int groups) {
    return (rows + groups - 1) / groups;
}

/* First row of group g: the first rows % groups groups hold one row more. */
static int64_t group_start(int64_t rows, int groups, int g) {
    const int64_t base = rows / groups, extra = rows % groups;
    return g * base + (g < extra ? g : extra);
}

typedef struct rows_job {
    cs_ctx *subs;
    const cs_ctx *parent;
    int64_t rows;
    int groups;
    ctx_rows_fn fn;
    void *arg;
} rows_job;

static void group_items(void *arg, int64_t g0, int64_t g1) {
    const rows_job *j = arg;
    for (int64_t g = g0; g < g1; g++) {
        const int64_t r0 = group_start(j->rows, j->groups, (int)g);
        const int64_t r1 = group_start(j->rows, j->groups, (int)g + 1);
        j->fn(&j->subs[g], j->parent, j->arg, r0, r1 - r0);
    }
}

enum { ROWS_MAX_GROUPS = 64 }; /* the pool's thread limit */

bool ctx_run_row_groups(cs_ctx *c, int64_t rows, int groups, size_t group_bytes, ctx_rows_fn fn,
                        void *arg) {
    CS_ASSERT(groups >= 1 && groups <= ROWS_MAX_GROUPS && rows >= groups);
    group_bytes = (group_bytes + 63) / 64 * 64; /* each arena stays 64-byte aligned */
    size_t all;
    CS_ASSERT(cs_mul_size(group_bytes, (size_t)groups, &all));
    if (!c->measuring && (c->cap < c->used || c->cap - c->used < all)) return false;
    const size_t mark = ctx_mark(c);
    uint8_t *arenas = (uint8_t *)ctx_alloc(c, (int64_t)(all / sizeof(float)));
    if (c->measuring) {
        ctx_release(c, mark);
        return true;
    }
    cs_ctx subs[ROWS_MAX_GROUPS];
    ctx_profile profs[ROWS_MAX_GROUPS];
    for (int g = 0; g < groups; g++) {
        memset(&subs[g], 0, sizeof subs[g]);
        subs[g].base = arenas + (size_t)g * group_bytes;
        subs[g].cap = group_bytes;
        if (c->prof) {
            memset(&profs[g], 0, sizeof profs[g]);
            subs[g].prof = &profs[g];
        }
    }
    rows_job j = {subs, c, rows, groups, fn, arg};
    threadpool_for(c->pool, groups, 1, group_items, &j);
    for (int g = 0; g < groups; g++) {
        c->flops += subs[g].flops;
        if (c->prof) {
            ctx_profile_add(c->prof, &profs[g]);
            c->prof->grouped++;
        }
    }
    ctx_release(c, mark);
    return true;
}
