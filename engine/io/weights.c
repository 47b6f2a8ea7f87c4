/* Checkpoint-to-field binding (see weights.h). */
#include "weights.h"

#include "gemm.h"

#include <math.h>

#include <stdarg.h>
#include <string.h>

void wb_init(weight_binder *b) {
    memset(b, 0, sizeof *b);
}

void wb_deinit(weight_binder *b) {
    free(b->entries);
    memset(b, 0, sizeof *b);
}

void wb_add(weight_binder *b, float **dst, int ndim, const int64_t *shape, const char *fmt, ...) {
    CS_ASSERT(ndim >= 1 && ndim <= WB_MAX_DIMS);
    if (b->count == b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 256;
        wb_entry *e = realloc(b->entries, (size_t)cap * sizeof *e);
        if (!e) {
            b->overflow = true;
            return;
        }
        b->entries = e;
        b->cap = cap;
    }
    wb_entry *e = &b->entries[b->count];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof e->name) {
        b->overflow = true;
        return;
    }
    e->dst = dst;
    e->ndim = ndim;
    e->panels = 0;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    b->count++;
}

static cs_status pack_entries(const weight_binder *b, const char *what, char *msg,
                              size_t msg_size);

static bool is_ignored(const char *name, const char *const *ignored) {
    for (; ignored && *ignored; ignored++)
        if (strcmp(*ignored, name) == 0) return true;
    return false;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t at = 0;
    at += (size_t)snprintf(buf + at, n - at, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

/* Appends one problem line to msg, keeping count of all of them. */
static void add_problem(char *msg, size_t n, size_t *at, int *problems, const char *line) {
    if (++*problems > 12) return; /* the first dozen say enough; the count says the rest */
    if (msg && *at < n) *at += (size_t)snprintf(msg + *at, n - *at, "\n  %s", line);
}

cs_status wb_bind(const weight_binder *b, const st_file *f, const char *const *ignored,
                  weight_block *out, char *msg, size_t msg_size) {
    memset(out, 0, sizeof *out);
    if (b->overflow)
        return cs_errf(CS_ERR_NOMEM, msg, msg_size,
                       "%s: weight table overflow (a name over %d bytes, or out of memory)",
                       f->path, WB_MAX_NAME - 1);
    char head[512];
    snprintf(head, sizeof head, "%s: checkpoint does not match the model config:", f->path);
    size_t at = 0;
    if (msg && msg_size) at = (size_t)snprintf(msg, msg_size, "%s", head);
    int problems = 0;
    char line[WB_MAX_NAME + 256], want[80], got[80];

    bool *used = cs_calloc((size_t)f->count, sizeof *used);
    if (!used) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: out of memory", f->path);
    int64_t total = 0;
    for (int64_t i = 0; i < b->count; i++) {
        const wb_entry *e = &b->entries[i];
        const st_tensor *t = st_find(f, e->name);
        if (!t) {
            snprintf(line, sizeof line, "missing tensor '%s'", e->name);
            add_problem(msg, msg_size, &at, &problems, line);
            continue;
        }
        if (used[t - f->tensors]) { /* a table bug, but report it with the rest */
            snprintf(line, sizeof line, "tensor '%s' is bound twice by the model", e->name);
            add_problem(msg, msg_size, &at, &problems, line);
            continue;
        }
        used[t - f->tensors] = true;
        bool same = t->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (!same) {
            shape_str(want, sizeof want, e->ndim, e->shape);
            shape_str(got, sizeof got, t->ndim, t->shape);
            snprintf(line, sizeof line, "tensor '%s' has shape %s, the config needs %s", e->name,
                     got, want);
            add_problem(msg, msg_size, &at, &problems, line);
            continue;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 &&
            t->dtype != ST_F64) {
            snprintf(line, sizeof line, "tensor '%s' has dtype %s, expected F32, F16 or BF16",
                     e->name, st_dtype_name(t->dtype));
            add_problem(msg, msg_size, &at, &problems, line);
            continue;
        }
        total += t->numel;
    }
    for (int64_t i = 0; i < f->count; i++) {
        if (used[i] || is_ignored(f->tensors[i].name, ignored)) continue;
        snprintf(line, sizeof line, "unexpected tensor '%s'", f->tensors[i].name);
        add_problem(msg, msg_size, &at, &problems, line);
    }
    free(used);
    if (problems > 0) {
        if (problems > 12 && msg && at < msg_size)
            snprintf(msg + at, msg_size - at, "\n  ... %d problems in all", problems);
        return CS_ERR_FORMAT;
    }

    size_t bytes;
    out->data = cs_mul_size((size_t)total, sizeof(float), &bytes) ? cs_malloc(bytes) : NULL;
    if (!out->data)
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: no memory for %lld weights", f->path,
                       (long long)total);
    out->numel = total;
    float *p = out->data;
    for (int64_t i = 0; i < b->count; i++) {
        const st_tensor *t = st_find(f, b->entries[i].name);
        cs_status st = st_read_f32(f, t, p, msg, msg_size);
        CS_ASSERT(st == CS_OK); /* dtype was checked above */
        *b->entries[i].dst = p;
        p += t->numel;
    }
    cs_status st = pack_entries(b, f->path, msg, msg_size);
    if (st != CS_OK) {
        weight_block_free(out);
        return st;
    }
    if (msg && msg_size) msg[0] = '\0';
    return CS_OK;
}

void wb_set_panels(weight_binder *b, int64_t width) {
    if (b->count > 0) b->entries[b->count - 1].panels = width;
}

/* Packs the entries that asked for panels (wb_set_panels), once their data is in. */
static cs_status pack_entries(const weight_binder *b, const char *what, char *msg,
                              size_t msg_size) {
    for (int64_t i = 0; i < b->count; i++) {
        const wb_entry *e = &b->entries[i];
        if (e->panels <= 0) continue;
        int64_t cols = 1;
        for (int d = 1; d < e->ndim; d++) cols *= e->shape[d];
        if (!gemm_pack_panels(*e->dst, e->shape[0], cols, e->panels))
            return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: no memory to pack '%s'", what,
                           e->name);
    }
    return CS_OK;
}

/* splitmix64: a tiny deterministic generator, enough for test and benchmark weights. */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int64_t entry_numel(const wb_entry *e) {
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++)
        numel *= e->shape[d];
    return numel;
}

/* Uniform in [-a, a): matrices and kernels get a = 1/sqrt(fan_in) (PyTorch's default
 * scale), 1-D weights (norm gains) 1 ± 0.1, biases ± 0.1. */
static void fill_random(float *p, const wb_entry *e, uint64_t *state) {
    int64_t numel = entry_numel(e), fan_in = 1;
    for (int d = 1; d < e->ndim; d++)
        fan_in *= e->shape[d];
    const size_t len = strlen(e->name);
    const bool gain = e->ndim == 1 && len > 7 && strcmp(e->name + len - 7, ".weight") == 0;
    const float a = e->ndim > 1 ? 1.0f / sqrtf((float)fan_in) : 0.1f;
    for (int64_t i = 0; i < numel; i++) {
        float u = (float)(splitmix64(state) >> 40) * (1.0f / 16777216.0f); // [0, 1)
        p[i] = (gain ? 1.0f : 0.0f) + a * (2.0f * u - 1.0f);
    }
}

cs_status wb_fill_random(const weight_binder *b, uint64_t seed, weight_block *out, char *msg,
                         size_t msg_size) {
    memset(out, 0, sizeof *out);
    if (b->overflow)
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "weight table overflow");
    int64_t total = 0;
    for (int64_t i = 0; i < b->count; i++)
        total += entry_numel(&b->entries[i]);
    size_t bytes;
    out->data = cs_mul_size((size_t)total, sizeof(float), &bytes) ? cs_malloc(bytes) : NULL;
    if (!out->data)
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "no memory for %lld weights", (long long)total);
    out->numel = total;
    float *p = out->data;
    uint64_t state = seed;
    for (int64_t i = 0; i < b->count; i++) {
        fill_random(p, &b->entries[i], &state);
        *b->entries[i].dst = p;
        p += entry_numel(&b->entries[i]);
    }
    cs_status st = pack_entries(b, "random weights", msg, msg_size);
    if (st != CS_OK) weight_block_free(out);
    return st;
}

void weight_block_free(weight_block *w) {
    if (!w) return;
    free(w->data);
    w->data = NULL;
    w->numel = 0;
}
