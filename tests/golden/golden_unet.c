/* Golden handler for kind "unet" (diffusers UNet2DConditionModel): runs
 * unet(sample, timestep, encoder_hidden_states[, timestep_cond][, class_labels]) and
 * compares `sample`, plus every intermediate in debug.safetensors (when the case has one)
 * through the ctx tap. The pass runs in an arena sized exactly by its measuring pass, so
 * the memory plan is checked too. */
#include "golden.h"

#include <string.h>

#include "unet.h"

static const double k_tol = 1e-4; /* README: UNet max abs diff <= 1e-4 */

typedef struct debug_taps {
    golden_case *gc;
    st_file *debug; /* debug.safetensors or NULL */
    bool *seen;     /* per debug tensor: compared at least once */
    cs_status st;   /* first error loading a debug tensor */
    char *msg;
    size_t msg_size;
} debug_taps;

static void on_tap(void *user, const char *name, const float *data, int ndim, const int64_t *dims) {
    debug_taps *t = user;
    const st_tensor *want = t->debug ? st_find(t->debug, name) : NULL;
    if (!want || t->st != CS_OK) return; /* the reference did not record this one */
    t->seen[want - t->debug->tensors] = true;
    bool same = want->ndim == ndim;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        numel *= dims[d];
        same = same && want->shape[d] == dims[d];
    }
    char label[128];
    snprintf(label, sizeof label, "debug:%s", name);
    if (!same) {
        golden_report_exact(t->gc, label, 1, 1, "shape differs from the reference");
        return;
    }
    float *ref = NULL;
    t->st = golden_load_f32(t->debug, name, &ref, NULL, NULL, t->msg, t->msg_size);
    if (t->st != CS_OK) return;
    golden_compare(t->gc, label, data, numel, ref, k_tol);
    free(ref);
}

/* The owned input arrays of one case. */
typedef struct unet_case_inputs {
    float *sample, *timesteps, *context, *cond;
    int64_t *labels;
    int64_t sd[ST_MAX_DIMS], cd[ST_MAX_DIMS];
} unet_case_inputs;

static void inputs_free(unet_case_inputs *ci) {
    free(ci->sample);
    free(ci->timesteps);
    free(ci->context);
    free(ci->cond);
    free(ci->labels);
}

/* `timestep`: I64 or float, one per row or a scalar broadcast to the batch. */
static cs_status load_timesteps(golden_case *gc, int64_t batch, float **out, char *msg, size_t n) {
    const st_tensor *t = gc->inputs ? st_find(gc->inputs, "timestep") : NULL;
    if (!t || (t->numel != 1 && t->numel != batch))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: input 'timestep' missing or not (B)", gc->dir);
    *out = cs_malloc((size_t)batch * sizeof **out);
    if (!*out) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    float *vals = NULL;
    int64_t *ivals = NULL;
    cs_status st = t->dtype == ST_I64 || t->dtype == ST_I32
                       ? golden_load_i64(gc->inputs, "timestep", &ivals, NULL, NULL, msg, n)
                       : golden_load_f32(gc->inputs, "timestep", &vals, NULL, NULL, msg, n);
    for (int64_t b = 0; st == CS_OK && b < batch; b++) {
        int64_t i = t->numel == 1 ? 0 : b;
        (*out)[b] = ivals ? (float)ivals[i] : vals[i];
    }
    free(vals);
    free(ivals);
    return st;
}

static cs_status load_inputs(golden_case *gc, const unet_config *cfg, unet_case_inputs *ci,
                             char *msg, size_t n) {
    int nd = 0;
    cs_status st = golden_load_f32(gc->inputs, "sample", &ci->sample, ci->sd, &nd, msg, n);
    if (st != CS_OK) return st;
    if (nd != 4 || ci->sd[1] != cfg->in_channels)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: input 'sample' is not (B, %lld, H, W)", gc->dir,
                       (long long)cfg->in_channels);
    const int64_t batch = ci->sd[0];
    st = load_timesteps(gc, batch, &ci->timesteps, msg, n);
    if (st == CS_OK)
        st =
            golden_load_f32(gc->inputs, "encoder_hidden_states", &ci->context, ci->cd, &nd, msg, n);
    if (st == CS_OK && (nd != 3 || ci->cd[0] != batch || ci->cd[2] != cfg->cross_dim))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: 'encoder_hidden_states' is not (B, L, %lld)",
                       gc->dir, (long long)cfg->cross_dim);
    int64_t d[ST_MAX_DIMS];
    if (st == CS_OK && st_find(gc->inputs, "timestep_cond")) {
        st = golden_load_f32(gc->inputs, "timestep_cond", &ci->cond, d, &nd, msg, n);
        if (st == CS_OK && (nd != 2 || d[0] != batch || d[1] != cfg->time_cond_dim))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: 'timestep_cond' is not (B, %lld)", gc->dir,
                           (long long)cfg->time_cond_dim);
    }
    if (st == CS_OK && st_find(gc->inputs, "class_labels")) {
        st = golden_load_i64(gc->inputs, "class_labels", &ci->labels, d, &nd, msg, n);
        if (st == CS_OK && (nd != 1 || d[0] != batch))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: 'class_labels' is not (B)", gc->dir);
    }
    return st;
}

static cs_status run_forward(golden_case *gc, const unet_model *m, debug_taps *taps, char *msg,
                             size_t n) {
    const unet_config *cfg = unet_get_config(m);
    unet_case_inputs ci = {0};
    float *out = NULL, *want = NULL;
    cs_ctx c;
    ctx_init_measure(&c);
    cs_status st = load_inputs(gc, cfg, &ci, msg, n);
    if (st != CS_OK) goto done;
    const unet_input in = {.sample = ci.sample,
                           .batch = ci.sd[0],
                           .height = ci.sd[2],
                           .width = ci.sd[3],
                           .timesteps = ci.timesteps,
                           .context = ci.context,
                           .context_len = ci.cd[1],
                           .timestep_cond = ci.cond,
                           .class_labels = ci.labels};
    st = unet_check_input(m, &in, msg, n);
    if (st != CS_OK) goto done;
    size_t bytes = unet_activation_bytes(m, in.batch, in.height, in.width, in.context_len,
                                         ctx_pool_threads(0));
    printf("%-44s %-26s %zu bytes for batch %lld, latents %lldx%lld, context %lld\n", gc->label,
           "arena (measured)", bytes, (long long)in.batch, (long long)in.height,
           (long long)in.width, (long long)in.context_len);
    const int64_t numel = in.batch * cfg->out_channels * in.height * in.width;
    out = cs_malloc((size_t)numel * sizeof *out);
    st = ctx_init(&c, bytes);
    if (st == CS_OK) st = ctx_start_pool(&c, 0, NULL, 0);
    if (st != CS_OK || !out) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for the forward");
        goto done;
    }
    c.tap = on_tap;
    c.tap_user = taps;
    unet_forward(&c, m, &in, out); // (B, out_ch, H, W)
    st = taps->st;
    int64_t wd[ST_MAX_DIMS];
    int nd = 0;
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "sample", &want, wd, &nd, msg, n);
    if (st == CS_OK && (nd != 4 || wd[0] != in.batch || wd[1] != cfg->out_channels ||
                        wd[2] != in.height || wd[3] != in.width)) {
        st = cs_errf(CS_ERR_FORMAT, msg, n,
                     "%s: output 'sample' has another shape than the "
                     "engine's (B, out_channels, H, W)",
                     gc->dir);
        goto done;
    }
    if (st == CS_OK) golden_compare(gc, "sample", out, numel, want, k_tol);
done:
    ctx_deinit(&c);
    inputs_free(&ci);
    free(out);
    free(want);
    return st;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    char dir[4096], path[4096];
    cs_status st = golden_component_dir(gc, "unet", dir, sizeof dir, msg, n);
    if (st != CS_OK) return st;
    unet_model *m = NULL;
    st = unet_load(dir, false, &m, msg, n);
    if (st != CS_OK) return st;

    debug_taps taps = {.gc = gc, .msg = msg, .msg_size = n};
    golden_path(path, sizeof path, gc->dir, "debug.safetensors");
    FILE *fp = fopen(path, "rb");
    if (fp) {
        fclose(fp);
        st = st_open(path, &taps.debug, msg, n);
        if (st != CS_OK) goto done;
        taps.seen = cs_calloc((size_t)taps.debug->count, sizeof *taps.seen);
        if (!taps.seen) {
            st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
            goto done;
        }
    }
    st = run_forward(gc, m, &taps, msg, n);
    /* A recorded intermediate the engine never produced means a tap name drifted. */
    for (int64_t i = 0; st == CS_OK && taps.debug && i < taps.debug->count; i++) {
        if (taps.seen[i]) continue;
        char label[128];
        snprintf(label, sizeof label, "debug:%s", taps.debug->tensors[i].name);
        golden_report_exact(gc, label, 1, 1, "the engine never tapped this name");
    }
done:
    free(taps.seen);
    st_close(taps.debug);
    unet_free(m);
    return st;
}

const golden_handler golden_unet_handler = {"unet", run};
