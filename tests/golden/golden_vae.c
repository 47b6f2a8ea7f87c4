/* Golden handler for kind "vae" (diffusers AutoencoderKL): decodes `latents` and compares
 * `decoded`, encodes `image` and compares `latent_mean` / `latent_logvar`, and compares
 * every intermediate in debug.safetensors (when the case has one) through the ctx tap.
 * Each pass runs in an arena sized by its own measuring pass, so the plan is checked too. */
#include "golden.h"

#include <string.h>

#include "vae.h"

static const double k_tol = 1e-4; /* README: VAE max abs diff <= 1e-4 */

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

/* Loads expected output `name`, checks its shape is `dims`, compares got against it. */
static cs_status compare_output(golden_case *gc, const char *name, const float *got,
                                const int64_t dims[4], char *msg, size_t n) {
    float *want = NULL;
    int64_t wd[ST_MAX_DIMS];
    int nd = 0;
    cs_status st = golden_load_f32(gc->outputs, name, &want, wd, &nd, msg, n);
    if (st != CS_OK) return st;
    if (nd != 4 || memcmp(wd, dims, 4 * sizeof *dims) != 0) {
        free(want);
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: output '%s' is not (%lld, %lld, %lld, %lld) as the engine makes it",
                       gc->dir, name, (long long)dims[0], (long long)dims[1], (long long)dims[2],
                       (long long)dims[3]);
    }
    golden_compare(gc, name, got, dims[0] * dims[1] * dims[2] * dims[3], want, k_tol);
    free(want);
    return CS_OK;
}

/* Loads input `name` as (B, channels, H, W). */
static cs_status load_input(golden_case *gc, const char *name, int64_t channels, float **out,
                            int64_t dims[ST_MAX_DIMS], char *msg, size_t n) {
    int nd = 0;
    cs_status st = golden_load_f32(gc->inputs, name, out, dims, &nd, msg, n);
    if (st != CS_OK) return st;
    if (nd != 4 || dims[1] != channels || dims[0] < 1 || dims[2] < 1 || dims[3] < 1) {
        free(*out);
        *out = NULL;
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: input '%s' is not (B, %lld, H, W)", gc->dir,
                       name, (long long)channels);
    }
    return CS_OK;
}

static cs_status run_decode(golden_case *gc, const vae_model *m, debug_taps *taps, char *msg,
                            size_t n) {
    const vae_config *cfg = vae_get_config(m);
    float *lat = NULL, *img = NULL;
    int64_t d[ST_MAX_DIMS];
    cs_status st = load_input(gc, "latents", cfg->latent_channels, &lat, d, msg, n);
    if (st != CS_OK) return st;
    const int64_t f = vae_scale_factor(m);
    const int64_t od[4] = {d[0], cfg->out_channels, d[2] * f, d[3] * f};
    size_t bytes = vae_decode_activation_bytes(m, d[0], d[2], d[3]);
    printf("%-44s %-26s %zu bytes for batch %lld, latents %lldx%lld\n", gc->label,
           "decode arena (measured)", bytes, (long long)d[0], (long long)d[2], (long long)d[3]);
    cs_ctx c;
    st = ctx_init(&c, bytes);
    if (st == CS_OK) st = ctx_start_pool(&c, 0, NULL, 0);
    img = cs_malloc((size_t)(od[0] * od[1] * od[2] * od[3]) * sizeof *img);
    if (st != CS_OK || !img) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for the decode");
        goto done;
    }
    c.tap = on_tap;
    c.tap_user = taps;
    vae_decode(&c, m, img, lat, d[0], d[2], d[3]); // (B, out_ch, H, W)
    st = taps->st;
    if (st == CS_OK) st = compare_output(gc, "decoded", img, od, msg, n);
done:
    ctx_deinit(&c);
    free(img);
    free(lat);
    return st;
}

static cs_status run_encode(golden_case *gc, const vae_model *m, debug_taps *taps, char *msg,
                            size_t n) {
    const vae_config *cfg = vae_get_config(m);
    float *img = NULL, *mean = NULL, *logvar = NULL;
    int64_t d[ST_MAX_DIMS], h, w;
    cs_status st = load_input(gc, "image", cfg->in_channels, &img, d, msg, n);
    if (st != CS_OK) return st;
    vae_latent_size(m, d[2], d[3], &h, &w);
    const int64_t od[4] = {d[0], cfg->latent_channels, h, w};
    const size_t plane = (size_t)(od[0] * od[1] * h * w);
    size_t bytes = vae_encode_activation_bytes(m, d[0], d[2], d[3]);
    printf("%-44s %-26s %zu bytes for batch %lld, image %lldx%lld\n", gc->label,
           "encode arena (measured)", bytes, (long long)d[0], (long long)d[2], (long long)d[3]);
    cs_ctx c;
    st = ctx_init(&c, bytes);
    if (st == CS_OK) st = ctx_start_pool(&c, 0, NULL, 0);
    mean = cs_malloc(plane * sizeof *mean);
    logvar = cs_malloc(plane * sizeof *logvar);
    if (st != CS_OK || !mean || !logvar) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for the encode");
        goto done;
    }
    c.tap = on_tap;
    c.tap_user = taps;
    vae_encode(&c, m, mean, logvar, img, d[0], d[2], d[3]); // (B, lc, h, w) twice
    st = taps->st;
    if (st == CS_OK) st = compare_output(gc, "latent_mean", mean, od, msg, n);
    if (st == CS_OK) st = compare_output(gc, "latent_logvar", logvar, od, msg, n);
done:
    ctx_deinit(&c);
    free(img);
    free(mean);
    free(logvar);
    return st;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    char dir[4096], path[4096];
    cs_status st = golden_component_dir(gc, "vae", dir, sizeof dir, msg, n);
    if (st != CS_OK) return st;
    vae_model *m = NULL;
    st = vae_load(dir, false, &m, msg, n);
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
    st = run_decode(gc, m, &taps, msg, n);
    if (st == CS_OK) st = run_encode(gc, m, &taps, msg, n);
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
    vae_free(m);
    return st;
}

const golden_handler golden_vae_handler = {"vae", run};
