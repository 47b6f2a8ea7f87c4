/*
 * safetensors reader (see safetensors.h). Owns the mapping and the parsed index.
 *
 * Validation order: header length against the file, strict JSON (UTF-8, whitespace-only
 * padding after the object, no repeated keys), then each entry (dtype, shape, offsets,
 * size), then overlaps between entries. Everything an st_tensor says is checked against
 * the data area before st_parse returns, so readers never re-check bounds.
 */
#include "safetensors.h"

#include "half.h"
#include "json_strict.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Real headers are a few hundred KiB; anything far larger is an attack or corruption. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} k_dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"I16", ST_I16, 2},  {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};

const char *st_dtype_name(st_dtype d) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].dtype == d) return k_dtypes[i].name;
    return "?";
}

size_t st_dtype_size(st_dtype d) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].dtype == d) return k_dtypes[i].size;
    return 0;
}

static bool dtype_from_name(const char *s, st_dtype *out) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++) {
        if (strcmp(k_dtypes[i].name, s) == 0) {
            *out = k_dtypes[i].dtype;
            return true;
        }
    }
    return false;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* By start, then by end, so the sort is deterministic whatever qsort does with ties. */
static int cmp_by_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return (x->offset > y->offset) - (x->offset < y->offset);
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static void free_index(st_file *f) {
    for (int64_t i = 0; i < f->count; i++) free(f->tensors[i].name);
    free(f->tensors);
    f->tensors = NULL;
    f->count = 0;
}

/* A JSON number that is a non-negative integer no larger than max (at most 2^53, where
 * doubles stop being exact integers). Negative, fractional, huge and non-finite values fail,
 * before any conversion to an integer type could overflow. */
static bool json_size(const cJSON *v, double max, size_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= max && d <= 9007199254740992.0)) return false; /* also rejects NaN */
    if (d != (double)(uint64_t)d) return false;
    *out = (size_t)d;
    return true;
}

/* Validates one header entry and fills t (t->name is set by the caller). */
static cs_status parse_entry(const st_file *f, const cJSON *e, size_t data_start,
                             size_t data_size, st_tensor *t, char *msg, size_t n) {
    const char *p = f->path, *name = t->name;
    if (!cJSON_IsObject(e))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': entry is not a JSON object", p,
                       name);
    const char *dup;
    cs_status ks = json_unique_keys(e, &dup);
    if (ks == CS_ERR_NOMEM) return cs_errf(ks, msg, n, "%s: out of memory", p);
    if (ks != CS_OK)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': key '%s' appears twice", p, name,
                       dup);
    for (const cJSON *k = e->child; k; k = k->next) {
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") &&
            strcmp(k->string, "data_offsets"))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': unknown key '%s'", p, name,
                           k->string);
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !dtype_from_name(dt->valuestring, &t->dtype))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': missing or unknown dtype '%s'", p,
                       name, cJSON_IsString(dt) ? dt->valuestring : "(not a string)");
    if (!cJSON_IsArray(sh))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': shape is not an array", p, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': rank %d exceeds %d", p, name, nd,
                       ST_MAX_DIMS);
    t->ndim = nd;
    /* The element count is kept as size_t with checked products, so a shape whose dims
     * multiply past 2^64 (or past INT64_MAX below) is caught before any use. */
    size_t numel = 1;
    int d = 0;
    for (const cJSON *v = sh->child; v; v = v->next, d++) {
        size_t dim;
        if (!json_size(v, 9007199254740992.0, &dim))
            return cs_errf(CS_ERR_FORMAT, msg, n,
                           "%s: tensor '%s': shape[%d] is not a non-negative integer below 2^53",
                           p, name, d);
        t->shape[d] = (int64_t)dim;
        if (!cs_mul_size(numel, dim, &numel))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': element count overflows", p,
                           name);
    }
    size_t bytes;
    if (numel > (size_t)INT64_MAX || !cs_mul_size(numel, st_dtype_size(t->dtype), &bytes))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': byte size overflows", p, name);
    t->numel = (int64_t)numel;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: tensor '%s': data_offsets is not [begin, end]",
                       p, name);
    size_t begin, end;
    if (!json_size(off->child, (double)SIZE_MAX, &begin) ||
        !json_size(off->child->next, (double)SIZE_MAX, &end))
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: tensor '%s': data_offsets are not non-negative integers below 2^53",
                       p, name);
    if (begin > end || end > data_size)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: tensor '%s': data_offsets [%zu, %zu] outside the data area of %zu "
                       "bytes",
                       p, name, begin, end, data_size);
    if (end - begin != bytes)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: tensor '%s': byte range %zu..%zu holds %zu bytes but shape and dtype "
                       "%s need %zu",
                       p, name, begin, end, end - begin, st_dtype_name(t->dtype), bytes);
    t->offset = data_start + begin;
    t->nbytes = bytes;
    return CS_OK;
}

/* __metadata__ is free-form text: an object whose values are all strings. */
static cs_status check_metadata(const st_file *f, const cJSON *m, char *msg, size_t n) {
    if (!cJSON_IsObject(m))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: __metadata__ is not an object", f->path);
    for (const cJSON *c = m->child; c; c = c->next)
        if (!cJSON_IsString(c))
            return cs_errf(CS_ERR_FORMAT, msg, n, "%s: __metadata__ field '%s' is not a string",
                           f->path, c->string);
    const char *dup;
    cs_status st = json_unique_keys(m, &dup);
    if (st == CS_ERR_NOMEM) return cs_errf(st, msg, n, "%s: out of memory", f->path);
    if (st != CS_OK)
        return cs_errf(st, msg, n, "%s: __metadata__ field '%s' appears twice", f->path, dup);
    return CS_OK;
}

/* Overlapping ranges would let one tensor's bytes be read as another's. Empty tensors own
 * no bytes and are skipped; every range is compared with the furthest end seen so far, so
 * an overlap is found even when shorter ranges sort between the two. */
static cs_status check_overlap(const st_file *f, char *msg, size_t n) {
    const st_tensor **by_off = cs_calloc((size_t)f->count, sizeof *by_off);
    if (!by_off) return cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", f->path);
    for (int64_t i = 0; i < f->count; i++) by_off[i] = &f->tensors[i];
    qsort(by_off, (size_t)f->count, sizeof *by_off, cmp_by_offset);
    cs_status st = CS_OK;
    const st_tensor *reach = NULL; /* the non-empty tensor ending furthest so far */
    for (int64_t i = 0; i < f->count; i++) {
        const st_tensor *b = by_off[i];
        if (b->nbytes == 0) continue;
        if (reach && reach->offset + reach->nbytes > b->offset) {
            st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: byte ranges of tensors '%s' and '%s' overlap",
                         f->path, reach->name, b->name);
            break;
        }
        reach = b;
    }
    free(by_off);
    return st;
}

static cs_status parse_header(st_file *f, char *msg, size_t n) {
    const char *p = f->path;
    if (f->size < 8)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: file of %zu bytes is too short for a header", p,
                       f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->data[i];
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: header length %llu does not fit the file of %zu bytes", p,
                       (unsigned long long)hlen, f->size);
    size_t data_start = 8 + (size_t)hlen, data_size = f->size - data_start;
    char why[128];
    cJSON *root = json_parse_strict((const char *)f->data + 8, (size_t)hlen, why, sizeof why);
    if (!root) return cs_errf(CS_ERR_FORMAT, msg, n, "%s: header is not valid JSON: %s", p, why);
    cs_status st = CS_OK;
    if (!cJSON_IsObject(root)) {
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: header is not a JSON object", p);
        goto done;
    }
    /* cJSON keeps a repeated key as a second child; a name must identify one tensor. */
    const char *dup;
    st = json_unique_keys(root, &dup);
    if (st != CS_OK) {
        if (st == CS_ERR_NOMEM) cs_errf(st, msg, n, "%s: out of memory", p);
        else if (strcmp(dup, "__metadata__") == 0)
            cs_errf(st, msg, n, "%s: __metadata__ appears twice in the header", p);
        else cs_errf(st, msg, n, "%s: tensor '%s' appears twice in the header", p, dup);
        goto done;
    }
    int64_t count = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) count++;
    f->tensors = cs_calloc((size_t)count, sizeof *f->tensors);
    if (!f->tensors) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "%s: no memory for %lld tensors", p, (long long)count);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            st = check_metadata(f, e, msg, n);
            if (st != CS_OK) goto done;
            continue;
        }
        st_tensor *t = &f->tensors[f->count];
        t->name = strdup(e->string);
        if (!t->name) {
            st = cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", p);
            goto done;
        }
        f->count++;
        st = parse_entry(f, e, data_start, data_size, t, msg, n);
        if (st != CS_OK) goto done;
    }
    qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, cmp_by_name);
    st = check_overlap(f, msg, n);
done:
    cJSON_Delete(root);
    if (st != CS_OK) free_index(f);
    return st;
}

cs_status st_parse(const uint8_t *buf, size_t size, const char *label, st_file **out, char *msg,
                   size_t msg_size) {
    *out = NULL;
    if (!label) label = "(memory)";
    st_file *f = cs_calloc(1, sizeof *f);
    if (!f) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: out of memory", label);
    f->path = strdup(label);
    f->data = buf;
    f->size = size;
    cs_status st = f->path ? parse_header(f, msg, msg_size)
                           : cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    if (st != CS_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return CS_OK;
}

cs_status st_open(const char *path, st_file **out, char *msg, size_t msg_size) {
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not hang start-up; it is refused just below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return cs_errf(CS_ERR_IO, msg, msg_size, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cs_errf(CS_ERR_IO, msg, msg_size, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return cs_errf(CS_ERR_IO, msg, msg_size, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    static const uint8_t empty[1];
    cs_status st = st_parse(map ? map : empty, size, path, out, msg, msg_size);
    if (st != CS_OK) {
        if (map) munmap(map, size);
        return st;
    }
    (*out)->mapped = map != NULL;
    (*out)->file_pages = map != NULL;
    return CS_OK;
}

void st_close(st_file *f) {
    if (!f) return;
    free_index(f);
    if (f->mapped) munmap((void *)f->data, f->size);
    free(f->owned);
    free(f->path);
    free(f);
}

cs_status st_new_table(const char *path, const uint8_t *data, size_t size, st_file **out,
                       char *msg, size_t msg_size) {
    *out = cs_calloc(1, sizeof **out);
    if (!*out || !((*out)->path = strdup(path))) {
        free(*out);
        *out = NULL;
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: out of memory", path);
    }
    (*out)->data = data;
    (*out)->size = size;
    return CS_OK;
}

cs_status st_append(st_file *f, const char *name, st_dtype dtype, int ndim,
                    const int64_t *shape, size_t offset, char *msg, size_t msg_size) {
    CS_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS);
    /* Grows by doubling; the capacity is the next power of two of count. */
    int64_t c = f->count;
    if ((c & (c - 1)) == 0) {
        st_tensor *t = realloc(f->tensors, (size_t)(c ? 2 * c : 1) * sizeof *t);
        if (!t) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: out of memory", f->path);
        f->tensors = t;
    }
    st_tensor *t = &f->tensors[c];
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        CS_ASSERT(shape[d] >= 0);
        t->shape[d] = shape[d];
        if (!cs_mul_size(numel, (size_t)shape[d], &numel))
            return cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: tensor '%s': size overflows",
                           f->path, name);
    }
    t->numel = (int64_t)numel;
    CS_ASSERT(cs_mul_size(numel, st_dtype_size(dtype), &t->nbytes));
    CS_ASSERT(offset <= f->size && t->nbytes <= f->size - offset);
    t->offset = offset;
    if (!(t->name = strdup(name)))
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "%s: out of memory", f->path);
    f->count++;
    return CS_OK;
}

cs_status st_finish(st_file *f, char *msg, size_t msg_size) {
    if (f->count) qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, cmp_by_name);
    for (int64_t i = 1; i < f->count; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return cs_errf(CS_ERR_FORMAT, msg, msg_size, "%s: tensor '%s' appears twice", f->path,
                           f->tensors[i].name);
    return CS_OK;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    st_tensor key = {.name = (char *)name};
    if (f->count == 0) return NULL;
    return bsearch(&key, f->tensors, (size_t)f->count, sizeof *f->tensors, cmp_by_name);
}

float st_f16_to_f32(uint16_t h) {
    return cs_f16_to_f32(h);
}

float st_bf16_to_f32(uint16_t h) {
    return cs_bf16_to_f32(h);
}

void st_release(const st_file *f, const st_tensor *t) {
    if (!f->file_pages || t->nbytes == 0) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = (uintptr_t)(f->data + t->offset), e = a + t->nbytes;
    const uintptr_t lo = (a + page - 1) & ~(page - 1), hi = e & ~(page - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: may fail harmlessly */
}

/* Reads go through memcpy because data offsets need not be aligned. The dtype is checked
 * before the loop so that even an empty tensor of the wrong type is refused. */
cs_status st_read_f32(const st_file *f, const st_tensor *t, float *dst, char *msg,
                      size_t msg_size) {
    const uint8_t *src = f->data + t->offset;
    size_t count = (size_t)t->numel;
    switch (t->dtype) {
    case ST_F32:
        if (count) memcpy(dst, src, count * 4);
        break;
    case ST_F64:
        for (size_t i = 0; i < count; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = st_f16_to_f32(h);
        }
        break;
    case ST_BF16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = st_bf16_to_f32(h);
        }
        break;
    default:
        return cs_errf(CS_ERR_FORMAT, msg, msg_size,
                       "%s: tensor '%s' has dtype %s, expected a float type", f->path, t->name,
                       st_dtype_name(t->dtype));
    }
    return CS_OK;
}

cs_status st_read_i64(const st_file *f, const st_tensor *t, int64_t *dst, char *msg,
                      size_t msg_size) {
    const uint8_t *src = f->data + t->offset;
    size_t count = (size_t)t->numel;
    switch (t->dtype) {
    case ST_I64:
        if (count) memcpy(dst, src, count * 8);
        break;
    case ST_I32:
        for (size_t i = 0; i < count; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = v;
        }
        break;
    case ST_I16:
        for (size_t i = 0; i < count; i++) {
            int16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = v;
        }
        break;
    case ST_I8:
        for (size_t i = 0; i < count; i++) dst[i] = (int8_t)src[i];
        break;
    case ST_U8:
    case ST_BOOL:
        for (size_t i = 0; i < count; i++) dst[i] = src[i];
        break;
    default:
        return cs_errf(CS_ERR_FORMAT, msg, msg_size,
                       "%s: tensor '%s' has dtype %s, expected an integer type", f->path,
                       t->name, st_dtype_name(t->dtype));
    }
    return CS_OK;
}
