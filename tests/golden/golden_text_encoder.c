/*
 * Golden handler for kind "text_encoder": loads component_dirs.text_encoder, runs
 * `input_ids` once with the hidden-state tap (last_hidden_state, pooler_output,
 * hidden_states.<i>, hidden_states_m2), once with clip_skip = 1 (clip_skip_1), and
 * `short_input_ids` (short_last_hidden_state). Every output case.json lists must be one
 * this handler produced, or the case fails.
 */
#include "golden.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "text_encoder.h"

/* hidden_states.0..num_layers (at most 1024 layers) plus the named outputs. */
enum { TE_MAX_OUTPUTS = 1024 + 16 };
#define TE_TOL 1e-4 /* README: text encoder max abs diff <= 1e-4 */

/* Tensors produced by our runs, by the output name case.json uses. */
typedef struct produced {
    char *name[TE_MAX_OUTPUTS];
    float *data[TE_MAX_OUTPUTS];
    int64_t numel[TE_MAX_OUTPUTS];
    int count;
    bool nomem;
} produced;

/* Takes ownership of data. */
static void produced_add(produced *p, const char *name, float *data, int64_t numel) {
    char *copy = strdup(name);
    if (!copy || !data || p->count == TE_MAX_OUTPUTS) {
        free(copy);
        free(data);
        p->nomem = true;
        return;
    }
    p->name[p->count] = copy;
    p->data[p->count] = data;
    p->numel[p->count] = numel;
    p->count++;
}

static const float *produced_find(const produced *p, const char *name, int64_t *numel) {
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->name[i], name) == 0) {
            *numel = p->numel[i];
            return p->data[i];
        }
    return NULL;
}

static void produced_free(produced *p) {
    for (int i = 0; i < p->count; i++) {
        free(p->name[i]);
        free(p->data[i]);
    }
}

/* ctx tap: keeps a copy of every hidden_states.<i>. */
static void tap_hidden(void *user, const char *name, const float *data, int ndim,
                       const int64_t *dims) {
    produced *p = user;
    if (strncmp(name, "hidden_states.", 14) != 0) return;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= dims[i];
    float *copy = cs_malloc((size_t)numel * sizeof *copy);
    if (copy) memcpy(copy, data, (size_t)numel * sizeof *copy);
    produced_add(p, name, copy, numel);
}

/* One forward pass in an arena sized by a measuring pass. */
static cs_status run_forward(const text_encoder *m, const int64_t *ids, int64_t batch, int64_t len,
                             int clip_skip, float *out, float *pooled, produced *tap_into,
                             char *msg, size_t n) {
    cs_status st = text_encoder_check_ids(m, ids, batch, len, msg, n);
    if (st == CS_OK) st = text_encoder_check_clip_skip(m, clip_skip, msg, n);
    if (st != CS_OK) return st;
    cs_ctx c;
    size_t bytes = text_encoder_activation_bytes(m, batch, len);
    if (ctx_init(&c, bytes) != CS_OK)
        return cs_errf(CS_ERR_NOMEM, msg, n, "no memory for a %zu-byte arena", bytes);
    if (tap_into) {
        c.tap = tap_hidden;
        c.tap_user = tap_into;
    }
    text_encoder_forward(&c, m, ids, batch, len, clip_skip, out, pooled);
    CS_ASSERT(c.peak <= bytes); /* the measuring pass planned exactly this */
    ctx_deinit(&c);
    return CS_OK;
}

static cs_status load_ids(golden_case *gc, const char *name, int64_t **ids, int64_t *batch,
                          int64_t *len, char *msg, size_t n) {
    int64_t dims[ST_MAX_DIMS];
    int ndim;
    cs_status st = golden_load_i64(gc->inputs, name, ids, dims, &ndim, msg, n);
    if (st != CS_OK) return st;
    if (ndim != 2) {
        free(*ids);
        *ids = NULL;
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: input '%s' must be (batch, length)", gc->dir,
                       name);
    }
    *batch = dims[0];
    *len = dims[1];
    return CS_OK;
}

/* The full run: last_hidden_state, pooler_output, hidden_states.*, hidden_states_m2, and
 * the clip_skip = 1 run. */
static cs_status run_main(golden_case *gc, const text_encoder *m, produced *p, char *msg,
                          size_t n) {
    int64_t *ids = NULL, batch = 0, len = 0;
    cs_status st = load_ids(gc, "input_ids", &ids, &batch, &len, msg, n);
    if (st != CS_OK) return st;
    const int64_t d = text_encoder_hidden_size(m), nl = text_encoder_num_layers(m);
    float *out = cs_malloc((size_t)(batch * len * d) * sizeof(float));
    float *pooled = cs_malloc((size_t)(batch * d) * sizeof(float));
    float *skip1 = cs_malloc((size_t)(batch * len * d) * sizeof(float));
    if (!out || !pooled || !skip1) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        goto done;
    }
    st = run_forward(m, ids, batch, len, 0, out, pooled, p, msg, n);
    if (st != CS_OK) goto done;
    /* hidden_states[-2] is hidden_states.<num_layers - 1>. */
    char name[48];
    snprintf(name, sizeof name, "hidden_states.%lld", (long long)(nl - 1));
    int64_t numel;
    const float *m2 = produced_find(p, name, &numel);
    if (m2) {
        float *copy = cs_malloc((size_t)numel * sizeof *copy);
        if (copy) memcpy(copy, m2, (size_t)numel * sizeof *copy);
        produced_add(p, "hidden_states_m2", copy, numel);
    }
    st = run_forward(m, ids, batch, len, 1, skip1, NULL, NULL, msg, n);
    if (st != CS_OK) goto done;
    produced_add(p, "last_hidden_state", out, batch * len * d);
    produced_add(p, "pooler_output", pooled, batch * d);
    produced_add(p, "clip_skip_1", skip1, batch * len * d);
    out = pooled = skip1 = NULL;
done:
    free(out);
    free(pooled);
    free(skip1);
    free(ids);
    return st;
}

/* The unpadded shorter sequence. */
static cs_status run_short(golden_case *gc, const text_encoder *m, produced *p, char *msg,
                           size_t n) {
    int64_t *ids = NULL, batch = 0, len = 0;
    cs_status st = load_ids(gc, "short_input_ids", &ids, &batch, &len, msg, n);
    if (st != CS_OK) return st;
    const int64_t numel = batch * len * text_encoder_hidden_size(m);
    float *out = cs_malloc((size_t)numel * sizeof *out);
    if (!out) st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    if (st == CS_OK) st = run_forward(m, ids, batch, len, 0, out, NULL, NULL, msg, n);
    if (st == CS_OK) {
        produced_add(p, "short_last_hidden_state", out, numel);
        out = NULL;
    }
    free(out);
    free(ids);
    return st;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    char dir[4096];
    cs_status st = golden_component_dir(gc, "text_encoder", dir, sizeof dir, msg, n);
    if (st != CS_OK) return st;
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(gc->json, "outputs");
    if (!cJSON_IsObject(outputs))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json has no \"outputs\" object", gc->dir);
    text_encoder *m = NULL;
    st = text_encoder_load(dir, false, &m, msg, n);
    if (st != CS_OK) return st;
    produced *p = cs_calloc(1, sizeof *p);
    if (!p) {
        text_encoder_free(m);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    }
    st = run_main(gc, m, p, msg, n);
    if (st == CS_OK) st = run_short(gc, m, p, msg, n);
    if (st == CS_OK && p->nomem) st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    /* Compare in case.json's order; an output we cannot produce is a failure. */
    for (const cJSON *o = outputs->child; st == CS_OK && o; o = o->next) {
        int64_t numel = 0;
        const float *got = produced_find(p, o->string, &numel);
        if (!got) {
            st = cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                         "%s: output '%s' is not produced by this "
                         "handler",
                         gc->dir, o->string);
            break;
        }
        float *want = NULL;
        int64_t dims[ST_MAX_DIMS];
        int ndim;
        st = golden_load_f32(gc->outputs, o->string, &want, dims, &ndim, msg, n);
        if (st != CS_OK) break;
        int64_t want_numel = 1;
        for (int i = 0; i < ndim; i++)
            want_numel *= dims[i];
        if (want_numel != numel)
            st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: output '%s' has %lld values, we produced %lld",
                         gc->dir, o->string, (long long)want_numel, (long long)numel);
        else
            golden_compare(gc, o->string, got, numel, want, TE_TOL);
        free(want);
    }
    produced_free(p);
    free(p);
    text_encoder_free(m);
    return st;
}

const golden_handler golden_text_encoder_handler = {"text_encoder", run};
