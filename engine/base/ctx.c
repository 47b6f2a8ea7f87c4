/* The activation arena and debug tap of a forward pass (see ctx.h for the design). */
#include "ctx.h"

#include <cblas.h>
#include <string.h>

#include "threadpool.h"

enum { CTX_ALIGN = 64 };

/* Measuring passes hand out this block so pointer arithmetic in forward code stays on a
 * real object; kernels never read or write it while measuring. */
static _Alignas(CTX_ALIGN) float g_dummy[16];

void ctx_init_measure(cs_ctx *c) {
    memset(c, 0, sizeof *c);
    c->measuring = true;
}

cs_status ctx_init(cs_ctx *c, size_t cap) {
    memset(c, 0, sizeof *c);
    cap = (cap + CTX_ALIGN - 1) / CTX_ALIGN * CTX_ALIGN;
    if (cap > 0) {
        c->base = aligned_alloc(CTX_ALIGN, cap);
        if (!c->base) return CS_ERR_NOMEM;
    }
    c->cap = cap;
    return CS_OK;
}

void ctx_deinit(cs_ctx *c) {
    if (!c) return;
    threadpool_free(c->pool);
    free(c->base);
    memset(c, 0, sizeof *c);
}

int ctx_pool_threads(int threads) {
    if (threads <= 0) threads = openblas_get_num_threads();
    return threads < 1 ? 1 : threads;
}

cs_status ctx_start_pool(cs_ctx *c, int threads, char *msg, size_t n) {
    CS_ASSERT(!c->pool && !c->measuring);
    return threadpool_new(ctx_pool_threads(threads), &c->pool, msg, n);
}

float *ctx_alloc(cs_ctx *c, int64_t n) {
    CS_ASSERT(n >= 0);
    size_t bytes;
    CS_ASSERT(cs_mul_size((size_t)n, sizeof(float), &bytes));
    bytes = (bytes + CTX_ALIGN - 1) / CTX_ALIGN * CTX_ALIGN;
    size_t at = c->used;
    CS_ASSERT(cs_add_size(at, bytes, &c->used));
    if (c->used > c->peak) c->peak = c->used;
    if (c->measuring) return g_dummy;
    CS_ASSERT(c->used <= c->cap);
    return (float *)(void *)(c->base + at);
}

void ctx_tap(cs_ctx *c, const char *name, const float *data, int ndim, const int64_t *dims) {
    if (c->measuring || !c->tap) return;
    c->tap(c->tap_user, name, data, ndim, dims);
}
