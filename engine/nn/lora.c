/* Loading, fusing and per-row use of kohya-format LoRA files (see lora.h). */
#include "lora.h"

#include <math.h>
#include <string.h>

#include "layers.h"
#include "safetensors.h"
#include "strmap.h"

enum { PART_DOWN, PART_UP, PART_ALPHA, PARTS };
static const char *const k_suffix[PARTS] = {".lora_down.weight", ".lora_up.weight", ".alpha"};

/* The tensors of one module in the file (found by key), before checking. */
typedef struct module_keys {
    const st_tensor *part[PARTS];
} module_keys;

/* Splits a key into module name and part; returns the part or -1. */
static int key_part(const char *key, size_t *base_len) {
    const size_t len = strlen(key);
    for (int p = 0; p < PARTS; p++) {
        const size_t sl = strlen(k_suffix[p]);
        if (len > sl && strcmp(key + len - sl, k_suffix[p]) == 0) {
            *base_len = len - sl;
            return p;
        }
    }
    return -1;
}

static bool is_float(st_dtype d) {
    return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64;
}

/* Whether t's shape is dims[0..nd) (trailing 1×1 accepted where `opt_11`). */
static bool shape_is(const st_tensor *t, int nd, const int64_t *dims, bool opt_11) {
    if (opt_11 && t->ndim == nd + 2 && t->shape[nd] == 1 && t->shape[nd + 1] == 1) {
        /* [a, b, 1, 1] for [a, b] */
    } else if (t->ndim != nd) {
        return false;
    }
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != dims[i]) return false;
    return true;
}

static void free_deltas(lora_file *f) {
    for (int c = 0; c < LORA_COMPONENTS; c++) {
        for (int s = 0; f->deltas[c] && s < f->slots[c]; s++) {
            lora_delta *d = f->deltas[c][s];
            if (!d) continue;
            free(d->down);
            free(d->up);
            free(d);
        }
        free(f->deltas[c]);
        f->deltas[c] = NULL;
    }
}

lora_file *lora_file_ref(lora_file *f) {
    atomic_fetch_add(&f->refs, 1);
    return f;
}

void lora_file_unref(lora_file *f) {
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1) return;
    free_deltas(f);
    free(f->name);
    free(f);
}

/* Checks one module's tensors against its layer and converts them into a delta. */
static cs_status make_delta(const st_file *sf, const lora_module *mod, const module_keys *k,
                            lora_delta **out, char *msg, size_t n) {
    const st_tensor *down = k->part[PART_DOWN], *up = k->part[PART_UP], *alpha = k->part[PART_ALPHA];
    if (!down || !up)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: module '%s' has no %s", sf->path, mod->name,
                       down ? "lora_up.weight" : "lora_down.weight");
    for (int p = 0; p < PARTS; p++)
        if (k->part[p] && !is_float(k->part[p]->dtype))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)",
                           sf->path, k->part[p]->name, st_dtype_name(k->part[p]->dtype));
    const int64_t r = down->ndim >= 1 ? down->shape[0] : 0, kk = mod->conv ? mod->kernel : 1;
    if (r < 1 || r > LORA_MAX_RANK)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: tensor '%s' has rank %lld (1 to %d supported)",
                       sf->path, down->name, (long long)r, LORA_MAX_RANK);
    /* Linear layers (and 1×1 convs) take [r, in] or [r, in, 1, 1]; k×k convs [r, in, k, k]. */
    const bool down_ok = kk == 1 ? shape_is(down, 2, (const int64_t[]){r, mod->in}, true)
                                 : shape_is(down, 4, (const int64_t[]){r, mod->in, kk, kk}, false);
    if (!down_ok)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: tensor '%s' does not fit the layer (in %lld channels, kernel %lld): "
                       "expected [%lld, %lld%s]",
                       sf->path, down->name, (long long)mod->in, (long long)kk, (long long)r,
                       (long long)mod->in, kk == 1 ? "" : ", k, k");
    if (!shape_is(up, 2, (const int64_t[]){mod->out, r}, true))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s' does not fit: expected [%lld, %lld]",
                       sf->path, up->name, (long long)mod->out, (long long)r);
    double a = (double)r;
    if (alpha) {
        float v;
        if (alpha->numel != 1)
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s' must hold one value", sf->path,
                           alpha->name);
        st_read_f32(sf, alpha, &v, NULL, 0);
        if (!isfinite(v))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s' is not finite", sf->path, alpha->name);
        a = v;
    }
    lora_delta *d = cs_calloc(1, sizeof *d);
    if (d) {
        d->rank = r;
        d->alpha_over_r = a / (double)r;
        d->down = cs_malloc((size_t)down->numel * sizeof(float));
        d->up = cs_malloc((size_t)up->numel * sizeof(float));
    }
    if (!d || !d->down || !d->up) {
        if (d) free(d->down), free(d->up);
        free(d);
        return cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", sf->path);
    }
    cs_status st = st_read_f32(sf, down, d->down, msg, n);
    if (st == CS_OK) st = st_read_f32(sf, up, d->up, msg, n);
    for (int64_t i = 0; st == CS_OK && i < down->numel; i++)
        if (!isfinite(d->down[i])) st = CS_ERR_FORMAT;
    for (int64_t i = 0; st == CS_OK && i < up->numel; i++)
        if (!isfinite(d->up[i])) st = CS_ERR_FORMAT;
    if (st != CS_OK) {
        if (st == CS_ERR_FORMAT && msg && n && !msg[0])
            cs_errf(st, msg, n, "%s: module '%s' holds a value that is not finite", sf->path, mod->name);
        free(d->down);
        free(d->up);
        free(d);
        return st;
    }
    *out = d;
    return CS_OK;
}

/* Maps every kohya module name of the tables to (component << 32 | index). */
static cs_status build_map(strmap *map, const lora_module_table *const tables[], char *msg, size_t n) {
    size_t total = 0;
    for (int c = 0; c < LORA_COMPONENTS; c++) total += tables[c] ? (size_t)tables[c]->count : 0;
    if (strmap_init(map, total ? total : 1) != CS_OK) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    for (int c = 0; c < LORA_COMPONENTS; c++)
        for (int i = 0; tables[c] && i < tables[c]->count; i++) {
            const char *name = tables[c]->items[i].name;
            bool inserted;
            if (strmap_insert(map, name, strlen(name), ((int64_t)c << 32) | i, &inserted, NULL) != CS_OK)
                return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        }
    return CS_OK;
}

/* Groups the file's tensors by module: keys[c][i] for module i of component c. */
static cs_status collect_keys(const st_file *sf, const strmap *map, module_keys *keys[], char *msg,
                              size_t n) {
    char base[LORA_MODULE_NAME];
    for (int64_t t = 0; t < sf->count; t++) {
        const char *key = sf->tensors[t].name;
        size_t blen = 0;
        const int part = key_part(key, &blen);
        if (part < 0)
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "%s: tensor '%s' is not a kohya LoRA key (<module>.lora_down.weight, "
                           ".lora_up.weight or .alpha; LoHa / LoKr / DoRA are not supported)",
                           sf->path, key);
        int64_t v;
        if (blen < sizeof base) {
            memcpy(base, key, blen);
            base[blen] = '\0';
        }
        if (blen >= sizeof base || !strmap_get(map, base, blen, &v))
            return cs_errf(CS_ERR_FORMAT, msg, n,
                           "%s: tensor '%s' names no layer of this model (an SDXL LoRA's lora_te1_ / "
                           "lora_te2_ keys, or a LoRA for another architecture?)",
                           sf->path, key);
        module_keys *k = &keys[v >> 32][v & 0xffffffff];
        if (k->part[part])
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s' appears twice", sf->path, key);
        k->part[part] = &sf->tensors[t];
    }
    return CS_OK;
}

cs_status lora_file_load(const char *path, const char *name,
                         const lora_module_table *const tables[LORA_COMPONENTS], lora_file **out,
                         char *msg, size_t n) {
    *out = NULL;
    st_file *sf = NULL;
    strmap map = {0};
    module_keys *keys[LORA_COMPONENTS] = {0};
    lora_file *f = cs_calloc(1, sizeof *f);
    cs_status st = f && (f->name = strdup(name)) ? CS_OK : cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    if (f) atomic_init(&f->refs, 1);
    for (int c = 0; st == CS_OK && c < LORA_COMPONENTS; c++) {
        f->slots[c] = tables[c] ? tables[c]->count : 0;
        keys[c] = cs_calloc((size_t)f->slots[c] + 1, sizeof *keys[c]);
        f->deltas[c] = cs_calloc((size_t)f->slots[c] + 1, sizeof *f->deltas[c]);
        if (!keys[c] || !f->deltas[c]) st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    }
    if (st == CS_OK) st = st_open(path, &sf, msg, n);
    if (st == CS_OK) st = build_map(&map, tables, msg, n);
    if (st == CS_OK) st = collect_keys(sf, &map, keys, msg, n);
    int total = 0;
    for (int c = 0; st == CS_OK && c < LORA_COMPONENTS; c++)
        for (int i = 0; st == CS_OK && i < f->slots[c]; i++) {
            const module_keys *k = &keys[c][i];
            if (!k->part[PART_DOWN] && !k->part[PART_UP] && !k->part[PART_ALPHA]) continue;
            st = make_delta(sf, &tables[c]->items[i], k, &f->deltas[c][i], msg, n);
            if (st == CS_OK) f->patched[c]++, total++;
        }
    if (st == CS_OK && total == 0)
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: no LoRA tensors in the file", path);
    strmap_deinit(&map);
    st_close(sf);
    for (int c = 0; c < LORA_COMPONENTS; c++) free(keys[c]);
    if (st != CS_OK) {
        if (f) f->refs = 1;
        lora_file_unref(f);
        return st;
    }
    *out = f;
    return CS_OK;
}

void lora_fuse(const lora_file *f, const lora_module_table *const tables[LORA_COMPONENTS],
               double weight) {
    for (int c = 0; c < LORA_COMPONENTS; c++)
        for (int i = 0; tables[c] && i < f->slots[c] && i < tables[c]->count; i++) {
            const lora_delta *d = f->deltas[c][i];
            if (!d) continue;
            const lora_module *mod = &tables[c]->items[i];
            const int64_t cols = mod->in * (mod->conv ? mod->kernel * mod->kernel : 1);
            const double s = weight * d->alpha_over_r;
            const gemm_weights w = *mod->w; /* (out, cols) in the layer's panels; down (r, cols) */
            const int64_t width = mod->conv ? CONV_PANELS : LINEAR_PANELS;
            for (int64_t o = 0; o < mod->out; o++)
                for (int64_t j = 0; j < cols; j++) {
                    double acc = 0;
                    for (int64_t r = 0; r < d->rank; r++)
                        acc += (double)d->up[o * d->rank + r] * (double)d->down[r * cols + j];
                    const int64_t at = gemm_weights_index(w.dtype, mod->out, cols, width, o, j);
                    gemm_weights_set(w, at, (float)((double)gemm_weights_get(w, at) + s * acc));
                }
        }
}

void lora_row_fill(lora_row *row, lora_file *const *files, const double *weights, int n,
                   lora_component comp) {
    row->n = 0;
    for (int i = 0; i < n && row->n < CS_MAX_LORAS_PER_JOB; i++)
        if (files[i]->patched[comp] > 0 && weights[i] != 0)
            row->use[row->n++] = (lora_use){.deltas = (const lora_delta *const *)files[i]->deltas[comp],
                                            .weight = weights[i]};
}
