/*
 * Where a forward pass spends its time, by kind of op (cfgserve-bench --profile).
 *
 * Each op in ops.h opens a scope with CTX_PROFILE_OP at its top; when the ctx has a
 * profile attached (c->prof, NULL by default: then the scope is one branch), the scope
 * adds the op's wall time on the calling thread, one call, and the FLOPs the op counted
 * in c->flops to its kind when it closes. Only the outermost op on a ctx counts (an op
 * built on another op is charged once, to its own kind). The time of an op includes the
 * pool's work for it, so the kinds add up to the pass's time less the code between ops.
 * Row groups (ctx_rows.h) give each group's ctx its own profile and add them up
 * afterwards: the groups run side by side, so their times are thread-seconds.
 */
#ifndef CS_CTX_PROFILE_H
#define CS_CTX_PROFILE_H

#include "common.h"

typedef enum cs_op_kind {
    CS_OP_CONV,        /* convolutions on our GEMM */
    CS_OP_LINEAR,      /* linear layers on our GEMM */
    CS_OP_ATTENTION,   /* fused attention (both products and the softmax) */
    CS_OP_LOWRANK,     /* LoRA side paths */
    CS_OP_NORM,        /* group and layer norms */
    CS_OP_ACTIVATION,  /* SiLU, GELU, GEGLU */
    CS_OP_ELEMENTWISE, /* adds, scales, biases, copies */
    CS_OP_LAYOUT,      /* transposes, concatenation, upsampling, embeddings */
    CS_OP_KINDS
} cs_op_kind;

typedef struct ctx_profile {
    double seconds[CS_OP_KINDS];
    double flops[CS_OP_KINDS];
    int64_t calls[CS_OP_KINDS];
    int64_t grouped; /* row-group runs added in (ctx_rows.h); their times are thread time */
    int depth;       /* ops open on the ctx; only depth 0 -> 1 is timed */
} ctx_profile;

const char *ctx_op_kind_name(cs_op_kind kind);

/* to += from (counts, times and FLOPs; not the depth). */
void ctx_profile_add(ctx_profile *to, const ctx_profile *from);

struct cs_ctx;
typedef struct ctx_prof_scope {
    struct cs_ctx *c; /* NULL: nothing to record */
    cs_op_kind kind;
    double t0, flops0;
} ctx_prof_scope;

ctx_prof_scope ctx_prof_begin(struct cs_ctx *c, cs_op_kind kind);
void ctx_prof_end(ctx_prof_scope *s);

/* Opens the op's profile scope; it closes when the op's body returns, by any path. */
#define CTX_PROFILE_OP(c, kind)                                                                    \
    ctx_prof_scope ctx_prof_scope_ __attribute__((cleanup(ctx_prof_end))) =                        \
        ctx_prof_begin((c), (kind))

#endif
