/*
 * Execution context of a forward pass: the activation arena and the debug tap.
 *
 * DESIGN. Activations come from one arena per session, sized once by a *measuring*
 * pass: the forward pass runs with measuring = true, every ctx_alloc only advances a
 * counter (and returns a dummy pointer), and every kernel in ops.h returns at once.
 * The peak of that pass is exactly what the real pass needs, for any model config and
 * shape, with no hand-written size formulas to keep in sync. The real pass then never
 * allocates: ctx_alloc bumps an offset and ctx_release pops back to a mark (stack order).
 * Forward code must therefore touch activations only through ops.h kernels.
 *
 * A ctx belongs to one thread at a time. Kernels may spread their element-wise work over
 * the ctx's thread pool (ctx_start_pool); its workers run only inside a kernel call.
 */
#ifndef CS_CTX_H
#define CS_CTX_H

#include "common.h"

/* Called with a named intermediate (e.g. "down_blocks.0.hidden") when set; debugging and
 * golden comparisons only. dims has ndim entries. */
typedef void (*cs_tap_fn)(void *user, const char *name, const float *data, int ndim,
                          const int64_t *dims);

struct threadpool;

typedef struct cs_ctx {
    uint8_t *base;   /* owned; NULL while measuring */
    size_t cap;      /* bytes at base */
    size_t used;     /* bytes in use (stack top) */
    size_t peak;     /* high-water mark of used */
    bool measuring;  /* plan pass: count bytes, kernels skip their work */
    cs_tap_fn tap;
    void *tap_user;
    double flops;    /* multiply-adds x 2 of matrix kernels run through this ctx */
    struct threadpool *pool; /* owned; NULL: kernels run serially in the caller */
    int plan_threads; /* measuring: threads the planned pass will run on (ctx_rows.h) */
    /* Per batch item, the LoRAs its layers add (lora.h); NULL: none. Set by the caller of
     * a forward pass; a measuring pass reserves the side path's scratch regardless. */
    const struct lora_rowset *lora;
    struct ctx_profile *prof; /* time per op kind (ctx_profile.h); NULL: not kept */
} cs_ctx;

/* A context in measuring mode (no memory). */
void ctx_init_measure(cs_ctx *c);
/* A context with cap bytes of arena; CS_ERR_NOMEM if that cannot be allocated. */
cs_status ctx_init(cs_ctx *c, size_t cap);
/* Also frees the pool. */
void ctx_deinit(cs_ctx *c);
/* Gives c a pool of `threads` threads (the caller included) for the non-GEMM kernels;
 * threads <= 0 means as many as OpenBLAS uses. Results do not depend on the count. */
cs_status ctx_start_pool(cs_ctx *c, int threads, char *msg, size_t n);
/* The threads ctx_start_pool(c, threads) gives a pool (threads <= 0: OpenBLAS's count), to
 * plan a pass for them before the ctx exists. */
int ctx_pool_threads(int threads);

/* n floats, 64-byte aligned. Running out of a planned arena is a bug (the plan was
 * wrong), so it asserts rather than failing softly. */
float *ctx_alloc(cs_ctx *c, int64_t n);
static inline size_t ctx_mark(const cs_ctx *c) { return c->used; }
static inline void ctx_release(cs_ctx *c, size_t mark) { c->used = mark; }

/* Passes a named tensor to the debug tap (no-op when measuring or no tap is set). */
void ctx_tap(cs_ctx *c, const char *name, const float *data, int ndim, const int64_t *dims);

#endif
