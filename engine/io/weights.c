/* Checkpoint-to-field binding (see weights.h). */
#include "weights.h"

#include "gemm.h"
#include "half.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include <stdarg.h>
#include <string.h>

void wb_init(weight_binder *b) {
    memset(b, 0, sizeof *b);
}

void wb_deinit(weight_binder *b) {
    free(b->entries);
    memset(b, 0, sizeof *b);
}

static void wb_addv(weight_binder *b, float **dst, gemm_weights *gdst, int64_t panels, int ndim,
                    const int64_t *shape, const char *fmt, va_list ap) {
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
    int len = vsnprintf(e->name, sizeof e->name, fmt, ap);
    if (len < 0 || (size_t)len >= sizeof e->name) {
        b->overflow = true;
        return;
    }
    e->dst = dst;
    e->gdst = gdst;
    e->ndim = ndim;
    e->panels = panels;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    b->count++;
}

void wb_add(weight_binder *b, float **dst, int ndim, const int64_t *shape, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wb_addv(b, dst, NULL, 0, ndim, shape, fmt, ap);
    va_end(ap);
}

void wb_add_panels(weight_binder *b, gemm_weights *dst, int64_t width, int ndim,
                   const int64_t *shape, const char *fmt, ...) {
    CS_ASSERT(width > 0);
    va_list ap;
    va_start(ap, fmt);
    wb_addv(b, NULL, dst, width, ndim, shape, fmt, ap);
    va_end(ap);
}

/* How entry e keeps a tensor of dtype `file` (ST_F32 for random weights): 16-bit GEMM
 * operands of a 16-bit file stay so unless b->store says otherwise. */
static gemm_dtype entry_dtype(const weight_binder *b, const wb_entry *e, st_dtype file) {
    if (!e->gdst || b->store == WB_STORE_FP32) return GEMM_F32;
    if (b->store == WB_STORE_BF16) return GEMM_BF16X2;
    return file == ST_F16 ? GEMM_F16 : file == ST_BF16 ? GEMM_BF16 : GEMM_F32;
}

/* Rows and (flattened) columns of an entry's matrix. */
static int64_t entry_cols(const wb_entry *e) {
    int64_t cols = 1;
    for (int d = 1; d < e->ndim; d++) cols *= e->shape[d];
    return cols;
}

/* Floats (4-byte words) the block gives entry e of numel elements kept as dtype d. */
static int64_t entry_words(const wb_entry *e, int64_t numel, gemm_dtype d) {
    if (d == GEMM_BF16X2) return (gemm_packed_count(d, e->shape[0], entry_cols(e)) + 1) / 2;
    return d == GEMM_F32 ? numel : (numel + 1) / 2;
}

/* Writes fp32 values src of entry e to p as GEMM_BF16X2 panels. */
static bool entry_pack_bf16(const wb_entry *e, void *p, const float *src) {
    return gemm_pack_bf16x2(p, src, e->shape[0], entry_cols(e), e->panels);
}

/* Points the entry at its data p (dtype d). */
static void entry_set(const wb_entry *e, void *p, gemm_dtype d) {
    if (e->gdst)
        *e->gdst = (gemm_weights){p, d};
    else
        *e->dst = p;
}

/* The entry's data pointer, writable (for packing). */
static void *entry_data(const wb_entry *e) {
    return e->gdst ? (void *)e->gdst->data : *e->dst;
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
        total += entry_words(e, t->numel, entry_dtype(b, e, t->dtype));
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
    if (out->data) cs_advise_huge(out->data, bytes);
    if (!out->data)
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: no memory for %lld weights", f->path,
                       (long long)total);
    out->numel = total;
    float *p = out->data;
    for (int64_t i = 0; i < b->count; i++) {
        const wb_entry *e = &b->entries[i];
        const st_tensor *t = st_find(f, e->name);
        const gemm_dtype d = entry_dtype(b, e, t->dtype);
        if (d == GEMM_BF16X2) { /* through fp32: every file dtype rounds the same way */
            float *tmp = cs_malloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof *tmp);
            bool ok = tmp != NULL;
            if (ok) {
                cs_status st = st_read_f32(f, t, tmp, msg, msg_size);
                CS_ASSERT(st == CS_OK); /* dtype was checked above */
            }
            ok = ok && entry_pack_bf16(e, p, tmp);
            free(tmp);
            if (!ok) {
                weight_block_free(out);
                return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: no memory to pack '%s'",
                               f->path, e->name);
            }
        } else if (d == GEMM_F32) {
            cs_status st = st_read_f32(f, t, p, msg, msg_size);
            CS_ASSERT(st == CS_OK); /* dtype was checked above */
        } else if (t->nbytes) {
            memcpy(p, f->data + t->offset, t->nbytes);
        }
        st_release(f, t);
        entry_set(e, p, d);
        p += entry_words(e, t->numel, d);
    }
    cs_status st = pack_entries(b, f->path, msg, msg_size);
    if (st != CS_OK) {
        weight_block_free(out);
        return st;
    }
    if (msg && msg_size) msg[0] = '\0';
    return CS_OK;
}

/* Packs the GEMM operands (wb_add_panels), once their data is in (GEMM_BF16X2 ones were
 * packed as they were rounded). */
static cs_status pack_entries(const weight_binder *b, const char *what, char *msg,
                              size_t msg_size) {
    for (int64_t i = 0; i < b->count; i++) {
        const wb_entry *e = &b->entries[i];
        if (!e->gdst || e->gdst->dtype == GEMM_BF16X2) continue;
        if (!gemm_pack_panels_n(entry_data(e), gemm_dtype_size(e->gdst->dtype), e->shape[0],
                                entry_cols(e), e->panels))
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
    int64_t total = 0, most = 1;
    for (int64_t i = 0; i < b->count; i++) {
        const wb_entry *e = &b->entries[i];
        total += entry_words(e, entry_numel(e), entry_dtype(b, e, ST_F32));
        if (entry_dtype(b, e, ST_F32) == GEMM_BF16X2 && entry_numel(e) > most)
            most = entry_numel(e);
    }
    size_t bytes;
    out->data = cs_mul_size((size_t)total, sizeof(float), &bytes) ? cs_malloc(bytes) : NULL;
    if (out->data) cs_advise_huge(out->data, bytes);
    float *tmp = b->store == WB_STORE_BF16 ? cs_malloc((size_t)most * sizeof *tmp) : NULL;
    if (!out->data || (b->store == WB_STORE_BF16 && !tmp)) {
        free(tmp);
        weight_block_free(out);
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "no memory for %lld weights", (long long)total);
    }
    out->numel = total;
    float *p = out->data;
    uint64_t state = seed;
    for (int64_t i = 0; i < b->count; i++) {
        const wb_entry *e = &b->entries[i];
        const gemm_dtype d = entry_dtype(b, e, ST_F32);
        fill_random(d == GEMM_BF16X2 ? tmp : p, e, &state); /* the same values either way */
        if (d == GEMM_BF16X2 && !entry_pack_bf16(e, p, tmp)) {
            free(tmp);
            weight_block_free(out);
            return cs_errf(CS_ERR_NOMEM, msg, msg_size, "no memory to pack '%s'", e->name);
        }
        entry_set(e, p, d);
        p += entry_words(e, entry_numel(e), d);
    }
    free(tmp);
    cs_status st = pack_entries(b, "random weights", msg, msg_size);
    if (st != CS_OK) weight_block_free(out);
    return st;
}

/* The safetensors header naming every entry in table order, data back to back. */
static char *random_header(const weight_binder *b, st_dtype dtype) {
    cJSON *root = cJSON_CreateObject();
    size_t at = 0;
    for (int64_t i = 0; root && i < b->count; i++) {
        const wb_entry *e = &b->entries[i];
        const size_t bytes = (size_t)entry_numel(e) * st_dtype_size(dtype);
        cJSON *t = cJSON_AddObjectToObject(root, e->name), *shape, *offs;
        if (!t || !cJSON_AddStringToObject(t, "dtype", st_dtype_name(dtype)) ||
            !(shape = cJSON_AddArrayToObject(t, "shape")) ||
            !(offs = cJSON_AddArrayToObject(t, "data_offsets"))) {
            cJSON_Delete(root);
            return NULL;
        }
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)at));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(at + bytes)));
        at += bytes;
    }
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return json;
}

/* Writes p[0, n) in dtype, rounding to nearest even. */
static bool write_values(FILE *out, const float *p, int64_t n, st_dtype dtype, uint16_t *half) {
    if (dtype == ST_F32) return fwrite(p, sizeof *p, (size_t)n, out) == (size_t)n;
    for (int64_t i = 0; i < n; i++)
        half[i] = dtype == ST_F16 ? cs_f32_to_f16(p[i]) : cs_f32_to_bf16(p[i]);
    return fwrite(half, sizeof *half, (size_t)n, out) == (size_t)n;
}

cs_status wb_write_random(const weight_binder *b, uint64_t seed, st_dtype dtype,
                          const char *path, char *msg, size_t msg_size) {
    if (b->overflow) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "weight table overflow");
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size,
                       "%s: dtype %s: random weights are written as F32, F16 or BF16", path,
                       st_dtype_name(dtype));
    int64_t most = 1;
    for (int64_t i = 0; i < b->count; i++)
        if (entry_numel(&b->entries[i]) > most) most = entry_numel(&b->entries[i]);
    char *json = random_header(b, dtype);
    float *vals = cs_malloc((size_t)most * sizeof *vals);
    uint16_t *half = cs_malloc((size_t)most * sizeof *half);
    cs_status st = CS_OK;
    if (!json || !vals || !half) st = cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    FILE *out = st == CS_OK ? fopen(path, "wb") : NULL;
    if (st == CS_OK && !out)
        st = cs_errf(CS_ERR_IO, msg, msg_size, "%s: cannot create: %s", path, strerror(errno));
    if (st == CS_OK) {
        const size_t len = strlen(json), padded = (len + 7) / 8 * 8; /* data 8-byte aligned */
        uint8_t size_le[8];
        for (int i = 0; i < 8; i++) size_le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
        bool ok = fwrite(size_le, 1, 8, out) == 8 && fwrite(json, 1, len, out) == len;
        for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', out) != EOF;
        uint64_t state = seed;
        for (int64_t i = 0; ok && i < b->count; i++) {
            fill_random(vals, &b->entries[i], &state);
            ok = write_values(out, vals, entry_numel(&b->entries[i]), dtype, half);
        }
        if (fclose(out) != 0) ok = false;
        if (!ok) {
            st = cs_errf(CS_ERR_IO, msg, msg_size, "%s: write failed: %s", path, strerror(errno));
            remove(path);
        }
    }
    free(json);
    free(vals);
    free(half);
    return st;
}

cs_status wb_load(weight_binder *b, const wb_source *src, const char *const *ignored,
                  weight_block *out, char *msg, size_t msg_size) {
    memset(out, 0, sizeof *out);
    if (src->write_path)
        return wb_write_random(b, src->seed, src->write_dtype, src->write_path, msg, msg_size);
    b->store = src->store;
    if (!src->file) return wb_fill_random(b, src->seed, out, msg, msg_size);
    return wb_bind(b, src->file, ignored, out, msg, msg_size);
}

void weight_block_free(weight_block *w) {
    if (!w) return;
    free(w->data);
    w->data = NULL;
    w->numel = 0;
}
