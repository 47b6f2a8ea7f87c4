/* cfgserve-golden driver: reads each case folder given on the command line and runs it
 * through the handler for its kind (see golden.h). Exit status 0 only when every case
 * ran and every comparison passed. */
#include "golden.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "config.h"

static const golden_handler *const k_handlers[] = {
    &golden_tokenizer_handler,
    &golden_text_encoder_handler,
    &golden_unet_handler,
    &golden_vae_handler,
    &golden_pipeline_handler,
    &golden_scheduler_handler,
    &golden_lora_handler,
    &golden_img2img_handler,
    &golden_single_file_handler,
};

void golden_path(char *buf, size_t n, const char *dir, const char *rel) {
    snprintf(buf, n, "%s/%s", dir, rel);
}

cs_status golden_component_dir(const golden_case *gc, const char *name, char *buf, size_t n,
                               char *msg, size_t msg_size) {
    const cJSON *dirs = cJSON_GetObjectItemCaseSensitive(gc->json, "component_dirs");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(dirs, name);
    if (!cJSON_IsString(d))
        return cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: case.json has no component_dirs.%s",
                       gc->dir, name);
    golden_path(buf, n, gc->dir, d->valuestring);
    return CS_OK;
}

static cs_status find_tensor(const st_file *f, const char *name, const st_tensor **t, char *msg,
                             size_t msg_size) {
    *t = f ? st_find(f, name) : NULL;
    if (!*t)
        return cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: no tensor '%s'",
                       f ? f->path : "(no file)", name);
    return CS_OK;
}

static void copy_shape(const st_tensor *t, int64_t *dims, int *ndim) {
    if (dims) memcpy(dims, t->shape, (size_t)t->ndim * sizeof *dims);
    if (ndim) *ndim = t->ndim;
}

cs_status golden_load_f32(const st_file *f, const char *name, float **out, int64_t *dims,
                          int *ndim, char *msg, size_t msg_size) {
    const st_tensor *t;
    cs_status st = find_tensor(f, name, &t, msg, msg_size);
    if (st != CS_OK) return st;
    *out = cs_malloc((size_t)t->numel * sizeof **out);
    if (!*out) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    st = st_read_f32(f, t, *out, msg, msg_size);
    if (st != CS_OK) {
        free(*out);
        *out = NULL;
        return st;
    }
    copy_shape(t, dims, ndim);
    return CS_OK;
}

cs_status golden_load_i64(const st_file *f, const char *name, int64_t **out, int64_t *dims,
                          int *ndim, char *msg, size_t msg_size) {
    const st_tensor *t;
    cs_status st = find_tensor(f, name, &t, msg, msg_size);
    if (st != CS_OK) return st;
    *out = cs_malloc((size_t)t->numel * sizeof **out);
    if (!*out) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    st = st_read_i64(f, t, *out, msg, msg_size);
    if (st != CS_OK) {
        free(*out);
        *out = NULL;
        return st;
    }
    copy_shape(t, dims, ndim);
    return CS_OK;
}

bool golden_compare(golden_case *gc, const char *name, const float *got, int64_t numel,
                    const float *want, double abs_tol) {
    double max_abs = 0, max_rel = 0;
    bool finite = true;
    for (int64_t i = 0; i < numel; i++) {
        if (!isfinite(got[i])) finite = false;
        double d = fabs((double)got[i] - (double)want[i]);
        double rel = d / fmax(fabs((double)want[i]), 1e-6);
        if (d > max_abs) max_abs = d;
        if (rel > max_rel) max_rel = rel;
    }
    bool ok = finite && max_abs <= abs_tol;
    gc->compared++;
    if (!ok) gc->failures++;
    printf("%-44s %-26s max_abs=%.3e max_rel=%.3e tol=%.1e  %s%s\n", gc->label, name, max_abs,
           max_rel, abs_tol, ok ? "PASS" : "FAIL", finite ? "" : " (non-finite values)");
    return ok;
}

bool golden_compare_scaled(golden_case *gc, const char *name, const float *got, int64_t numel,
                           const float *want, const float *scale, const char *scale_name,
                           double tol) {
    double max_abs = 0, max_scaled = 0;
    bool finite = true;
    for (int64_t i = 0; i < numel; i++) {
        if (!isfinite(got[i])) finite = false;
        const double d = fabs((double)got[i] - (double)want[i]);
        const double s = scale ? (double)scale[i] : fabs((double)want[i]);
        max_abs = fmax(max_abs, d);
        max_scaled = fmax(max_scaled, d / fmax(1.0, s));
    }
    const bool ok = finite && max_scaled <= tol;
    gc->compared++;
    if (!ok) gc->failures++;
    printf("%-44s %-26s max_abs=%.3e max_scaled=%.3e tol=%.1e*max(1,%s)  %s%s\n", gc->label,
           name, max_abs, max_scaled, tol, scale_name, ok ? "PASS" : "FAIL",
           finite ? "" : " (non-finite values)");
    return ok;
}

bool golden_compare_rel(golden_case *gc, const char *name, const float *got, int64_t numel,
                        const float *want, double tol) {
    return golden_compare_scaled(gc, name, got, numel, want, NULL, "|ref|", tol);
}

bool golden_report_exact(golden_case *gc, const char *name, int64_t mismatches, int64_t total,
                         const char *detail) {
    bool ok = mismatches == 0 && total > 0;
    gc->compared++;
    if (!ok) gc->failures++;
    printf("%-44s %-26s %lld/%lld exact  %s%s%s\n", gc->label, name,
           (long long)(total - mismatches), (long long)total, ok ? "PASS" : "FAIL",
           detail && *detail ? "  " : "", detail ? detail : "");
    return ok;
}

static st_file *open_optional(const char *dir, const char *file, char *msg, size_t n,
                              cs_status *st) {
    char path[4096];
    golden_path(path, sizeof path, dir, file);
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fclose(fp);
    st_file *f = NULL;
    *st = st_open(path, &f, msg, n);
    return f;
}

/* Runs one case folder; returns true when it ran and everything passed. */
static bool run_case(const char *dir) {
    char msg[2048] = "";
    golden_case gc = {.dir = dir, .label = dir};
    /* Label cases by their last two path parts, which is how the README names them. */
    const char *slash1 = strrchr(dir, '/');
    if (slash1 && slash1 != dir) {
        const char *p = slash1 - 1;
        while (p > dir && *p != '/') p--;
        gc.label = *p == '/' ? p + 1 : p;
    }
    char path[4096], *text = NULL;
    size_t len;
    golden_path(path, sizeof path, dir, "case.json");
    cs_status st = cs_read_file(path, 16u << 20, &text, &len, msg, sizeof msg);
    if (st == CS_OK) {
        gc.json = cJSON_ParseWithLength(text, len);
        free(text);
        if (!cJSON_IsObject(gc.json)) st = cs_errf(CS_ERR_FORMAT, msg, sizeof msg, "%s: bad JSON", path);
    }
    if (st == CS_OK) gc.inputs = open_optional(dir, "inputs.safetensors", msg, sizeof msg, &st);
    if (st == CS_OK) gc.outputs = open_optional(dir, "outputs.safetensors", msg, sizeof msg, &st);
    const golden_handler *h = NULL;
    if (st == CS_OK) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(gc.json, "kind");
        for (size_t i = 0; i < sizeof k_handlers / sizeof k_handlers[0]; i++)
            if (cJSON_IsString(kind) && strcmp(kind->valuestring, k_handlers[i]->kind) == 0)
                h = k_handlers[i];
        if (!h)
            st = cs_errf(CS_ERR_UNSUPPORTED, msg, sizeof msg, "no handler for kind \"%s\"",
                         cJSON_IsString(kind) ? kind->valuestring : "(missing)");
    }
    if (st == CS_OK) st = h->run(&gc, msg, sizeof msg);
    if (st == CS_OK && gc.compared == 0)
        st = cs_errf(CS_ERR_INTERNAL, msg, sizeof msg, "the case compared nothing");
    bool ok = st == CS_OK && gc.failures == 0;
    if (st != CS_OK) printf("%-44s CANNOT RUN: %s\n", gc.label, msg);
    printf("%-44s %s (%d compared, %d failed)\n", gc.label, ok ? "CASE PASS" : "CASE FAIL",
           gc.compared, gc.failures);
    st_close(gc.inputs);
    st_close(gc.outputs);
    cJSON_Delete(gc.json);
    return ok;
}

int main(int argc, char **argv) {
    cs_runtime_init(argc, argv);
    static const char usage[] = "usage: %s CASE_DIR [CASE_DIR...]\n"
                                "Replays reference cases (case.json + safetensors) and prints the "
                                "error\nof every output against its tolerance.\n";
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf(usage, argv[0]);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        while (n > 1 && argv[i][n - 1] == '/') argv[i][--n] = '\0';
        if (!run_case(argv[i])) failed++;
    }
    printf("%d of %d case(s) passed\n", argc - 1 - failed, argc - 1);
    return failed ? 1 : 0;
}
