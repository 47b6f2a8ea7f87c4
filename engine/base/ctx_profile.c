/* Per-op-kind time of a forward pass (see ctx_profile.h). */
#include "ctx_profile.h"

#include <time.h>

#include "ctx.h"

static const char *const kind_names[CS_OP_KINDS] = {
    [CS_OP_CONV] = "conv",
    [CS_OP_LINEAR] = "linear",
    [CS_OP_ATTENTION] = "attention",
    [CS_OP_LOWRANK] = "lora",
    [CS_OP_NORM] = "norm",
    [CS_OP_ACTIVATION] = "activation",
    [CS_OP_ELEMENTWISE] = "elementwise",
    [CS_OP_LAYOUT] = "layout",
};

const char *ctx_op_kind_name(cs_op_kind kind) {
    return kind >= 0 && kind < CS_OP_KINDS ? kind_names[kind] : "?";
}

void ctx_profile_add(ctx_profile *to, const ctx_profile *from) {
    for (int k = 0; k < CS_OP_KINDS; k++) {
        to->seconds[k] += from->seconds[k];
        to->flops[k] += from->flops[k];
        to->calls[k] += from->calls[k];
    }
    to->grouped += from->grouped;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

ctx_prof_scope ctx_prof_begin(cs_ctx *c, cs_op_kind kind) {
    if (!c->prof || c->measuring || c->prof->depth++ > 0) return (ctx_prof_scope){.c = NULL};
    return (ctx_prof_scope){.c = c, .kind = kind, .t0 = now_s(), .flops0 = c->flops};
}

void ctx_prof_end(ctx_prof_scope *s) {
    if (!s->c) return; /* no profile, or not the outermost op */
    ctx_profile *p = s->c->prof;
    p->seconds[s->kind] += now_s() - s->t0;
    p->flops[s->kind] += s->c->flops - s->flops0;
    p->calls[s->kind]++;
    p->depth = 0;
}
