/* The per-op-kind profile (ctx_profile.h): off unless attached, nothing while measuring, an
 * op built on another op charged once, and over a whole UNet pass every counted FLOP lands
 * in some kind, with or without row groups (ctx_rows.h), with the same calls per kind. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ctx.h"
#include "ctx_profile.h"
#include "tiny_unet.h"
#include "unet.h"

static void test_scopes(void) {
    cs_ctx c;
    ctx_init_measure(&c);
    ctx_profile p = {0};
    c.prof = &p;
    { CTX_PROFILE_OP(&c, CS_OP_CONV); } /* measuring: not counted */
    CHECK_EQ_INT((int)p.calls[CS_OP_CONV], 0);
    c.measuring = false;
    {
        CTX_PROFILE_OP(&c, CS_OP_CONV);
        c.flops += 10;
        /* An op inside the conv (as CTX_PROFILE_OP opens it): charged to the conv. */
        ctx_prof_scope inner = ctx_prof_begin(&c, CS_OP_LINEAR);
        c.flops += 5;
        ctx_prof_end(&inner);
    }
    { CTX_PROFILE_OP(&c, CS_OP_NORM); }
    CHECK_EQ_INT((int)p.calls[CS_OP_CONV], 1);
    CHECK_EQ_INT((int)p.calls[CS_OP_LINEAR], 0);
    CHECK_EQ_INT((int)p.calls[CS_OP_NORM], 1);
    CHECK(p.flops[CS_OP_CONV] == 15.0 && p.flops[CS_OP_NORM] == 0.0);
    CHECK(p.seconds[CS_OP_CONV] >= 0.0 && p.depth == 0);
    c.prof = NULL; /* detached: nothing more */
    { CTX_PROFILE_OP(&c, CS_OP_NORM); }
    CHECK_EQ_INT((int)p.calls[CS_OP_NORM], 1);
    ctx_profile q = {0};
    ctx_profile_add(&q, &p);
    ctx_profile_add(&q, &p);
    CHECK_EQ_INT((int)q.calls[CS_OP_CONV], 2);
    CHECK(q.flops[CS_OP_CONV] == 30.0);
    CHECK(!strcmp(ctx_op_kind_name(CS_OP_ATTENTION), "attention"));
    CHECK(!strcmp(ctx_op_kind_name(CS_OP_KINDS), "?"));
}

enum { UB = 3, UL = 77 };

/* One profiled batch-3 side × side pass of the tiny UNet on `threads` pool threads (0: none). */
static void profiled_pass(const unet_model *m, const unet_config *cfg, int64_t side, int threads,
                          ctx_profile *p, double *flops) {
    const int64_t n_in = UB * cfg->in_channels * side * side, n_ctx = UB * UL * cfg->cross_dim;
    float *sample = calloc((size_t)n_in, sizeof(float)), *out = calloc((size_t)n_in, sizeof(float));
    float *context = calloc((size_t)n_ctx, sizeof(float));
    float t[UB] = {999.0f, 1.5f, 500.0f};
    unet_input in = {.sample = sample,
                     .batch = UB,
                     .height = side,
                     .width = side,
                     .timesteps = t,
                     .context = context,
                     .context_len = UL};
    cs_ctx c;
    CHECK_EQ_INT(ctx_init(&c, unet_activation_bytes(m, UB, side, side, UL, threads)), CS_OK);
    if (threads > 0) CHECK_EQ_INT(ctx_start_pool(&c, threads, NULL, 0), CS_OK);
    memset(p, 0, sizeof *p);
    c.prof = p;
    unet_forward(&c, m, &in, out);
    *flops = c.flops;
    ctx_deinit(&c);
    free(sample), free(out), free(context);
}

static double flops_of_kinds(const ctx_profile *p) {
    double s = 0;
    for (int k = 0; k < CS_OP_KINDS; k++)
        s += p->flops[k];
    return s;
}

static void test_unet_pass(void) {
    unet_config cfg;
    unet_model *m = tiny_unet_new(5, &cfg);
    CHECK(m != NULL);
    if (!m) return;
    /* 32 × 32: one batch whatever the threads; 8 × 8 on 3 threads: three row groups. */
    ctx_profile serial, shared, grouped;
    double f_serial, f_shared, f_grouped;
    profiled_pass(m, &cfg, 32, 0, &serial, &f_serial);
    profiled_pass(m, &cfg, 32, 2, &shared, &f_shared);
    CHECK(f_serial > 0 && flops_of_kinds(&serial) == f_serial);
    CHECK(flops_of_kinds(&shared) == f_shared && f_shared == f_serial);
    CHECK_EQ_INT((int)serial.grouped, 0);
    CHECK_EQ_INT((int)shared.grouped, 0);
    for (int k = 0; k < CS_OP_KINDS; k++)
        CHECK_EQ_INT((int)shared.calls[k], (int)serial.calls[k]);
    CHECK(serial.calls[CS_OP_CONV] > 0 && serial.calls[CS_OP_LINEAR] > 0 &&
          serial.calls[CS_OP_ATTENTION] > 0 && serial.calls[CS_OP_NORM] > 0);
    CHECK(serial.seconds[CS_OP_CONV] > 0 && serial.flops[CS_OP_NORM] == 0);

    ctx_profile one;
    double f_one;
    profiled_pass(m, &cfg, 8, 0, &one, &f_one);
    CHECK_EQ_INT(unet_row_groups(m, UB, 8, 8, UL, 3), 3);
    profiled_pass(m, &cfg, 8, 3, &grouped, &f_grouped);
    CHECK_EQ_INT((int)grouped.grouped, 3);
    CHECK(f_grouped == f_one && flops_of_kinds(&grouped) == f_grouped);
    /* Each group runs the batch's ops on its rows: three times the calls of the products. */
    CHECK_EQ_INT((int)grouped.calls[CS_OP_CONV], 3 * (int)one.calls[CS_OP_CONV]);
    CHECK_EQ_INT((int)grouped.calls[CS_OP_ATTENTION], 3 * (int)one.calls[CS_OP_ATTENTION]);
    unet_free(m);
}

int main(void) {
    test_scopes();
    test_unet_pass();
    CHECK_DONE();
}
