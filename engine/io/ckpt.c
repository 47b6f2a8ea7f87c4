/* PyTorch zip checkpoints (see ckpt.h). Owns the copied storages through st_file.owned. */
#include "ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zip.h>

#include "unpickle.h"

enum { MAX_PICKLE = 256 << 20 };

bool ckpt_is_zip(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && memcmp(magic, "PK\3\4", 4) == 0;
}

/* Reads member `index` whole into dst (exactly size bytes). */
static cs_status read_member(zip_t *z, zip_uint64_t index, uint8_t *dst, size_t size,
                             const char *label, const char *name, char *msg, size_t n) {
    zip_file_t *zf = zip_fopen_index(z, index, 0);
    if (!zf)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: member %s cannot be read: %s", label, name,
                       zip_strerror(z));
    size_t at = 0;
    while (at < size) {
        zip_int64_t got = zip_fread(zf, dst + at, size - at);
        if (got <= 0) break;
        at += (size_t)got;
    }
    uint8_t extra;
    bool longer = at == size && zip_fread(zf, &extra, 1) > 0;
    zip_fclose(zf);
    if (at != size || longer)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: member %s is not %zu bytes long (corrupt)",
                       label, name, size);
    return CS_OK;
}

/* Finds "<root>/data.pkl"; *root_len is the length of "<root>/". */
static cs_status find_pickle(zip_t *z, const char *label, zip_uint64_t *index, size_t *root_len,
                             char *msg, size_t n) {
    zip_int64_t count = zip_get_num_entries(z, 0);
    for (zip_int64_t i = 0; i < count; i++) {
        const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
        if (!name) continue;
        const char *slash = strchr(name, '/');
        if (slash && strcmp(slash, "/data.pkl") == 0) {
            *index = (zip_uint64_t)i;
            *root_len = (size_t)(slash - name) + 1;
            return CS_OK;
        }
    }
    return cs_errf(CS_ERR_FORMAT, msg, n,
                   "%s: a zip archive without <name>/data.pkl is not a PyTorch checkpoint", label);
}

static cs_status member_size(zip_t *z, const char *name, zip_uint64_t *index, size_t *size,
                             const char *label, char *msg, size_t n) {
    zip_stat_t sb;
    zip_stat_init(&sb);
    if (zip_stat(z, name, 0, &sb) != 0 || !(sb.valid & ZIP_STAT_SIZE) || !(sb.valid & ZIP_STAT_INDEX))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: missing archive member %s", label, name);
    if (sb.size > SIZE_MAX / 2)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: member %s is too large", label, name);
    *index = sb.index;
    *size = (size_t)sb.size;
    return CS_OK;
}

/* Storages are copied once each into one buffer; tensors point into it. */
static cs_status build_table(zip_t *z, const pk_state_dict *sd, const char *root, size_t root_len,
                             const char *label, st_file **out, char *msg, size_t n) {
    char name[512];
    size_t total = 0;
    cs_status st = CS_OK;
    int64_t *base = cs_calloc((size_t)sd->count + 1, sizeof *base);
    if (!base) return cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", label);
    /* pass 1: sizes (a storage shared by several tensors counted once, at its first use) */
    for (int64_t i = 0; i < sd->count && st == CS_OK; i++) {
        const pk_tensor *t = &sd->tensors[i];
        base[i] = -1;
        for (int64_t j = 0; j < i; j++)
            if (strcmp(sd->tensors[j].storage_key, t->storage_key) == 0) base[i] = base[j];
        if (base[i] >= 0) continue;
        snprintf(name, sizeof name, "%.*sdata/%.200s", (int)root_len, root, t->storage_key);
        zip_uint64_t idx = 0;
        size_t size = 0, want;
        if ((st = member_size(z, name, &idx, &size, label, msg, n)) != CS_OK) break;
        if (!cs_mul_size((size_t)t->storage_numel, st_dtype_size(t->dtype), &want) || want != size)
            st = cs_errf(CS_ERR_FORMAT, msg, n,
                         "%s: storage %s holds %zu bytes but its pickle says %lld elements of %s",
                         label, name, size, (long long)t->storage_numel, st_dtype_name(t->dtype));
        base[i] = (int64_t)total;
        if (total > SIZE_MAX - size) st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: too large", label);
        total += size;
    }
    uint8_t *data = st == CS_OK ? cs_malloc(total ? total : 1) : NULL;
    if (st == CS_OK && !data)
        st = cs_errf(CS_ERR_NOMEM, msg, n, "%s: no memory for %zu bytes of tensors", label, total);
    st_file *f = NULL;
    if (st == CS_OK && (st = st_new_table(label, data, total, &f, msg, n)) == CS_OK) f->owned = data;
    else free(data);
    /* pass 2: copy each storage once; check and append each tensor */
    for (int64_t i = 0; i < sd->count && st == CS_OK; i++) {
        const pk_tensor *t = &sd->tensors[i];
        bool first = true;
        for (int64_t j = 0; j < i && first; j++)
            first = strcmp(sd->tensors[j].storage_key, t->storage_key) != 0;
        snprintf(name, sizeof name, "%.*sdata/%.200s", (int)root_len, root, t->storage_key);
        zip_uint64_t idx = 0;
        size_t size = 0;
        if ((st = member_size(z, name, &idx, &size, label, msg, n)) != CS_OK) break;
        if (first && (st = read_member(z, idx, f->owned + base[i], size, label, name, msg, n)) != CS_OK)
            break;
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d]; /* bounded by the unpickler */
        const size_t es = st_dtype_size(t->dtype);
        if (t->storage_offset > t->storage_numel || numel > t->storage_numel - t->storage_offset) {
            st = cs_errf(CS_ERR_FORMAT, msg, n,
                         "%s: tensor '%s' (offset %lld, %lld elements) exceeds its storage of "
                         "%lld elements",
                         label, t->name, (long long)t->storage_offset, (long long)numel,
                         (long long)t->storage_numel);
            break;
        }
        st = st_append(f, t->name, t->dtype, t->ndim, t->shape,
                       (size_t)base[i] + (size_t)t->storage_offset * es, msg, n);
    }
    free(base);
    if (st == CS_OK) st = st_finish(f, msg, n);
    if (st != CS_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return CS_OK;
}

static cs_status parse_archive(zip_t *z, const char *label, st_file **out, int64_t *global_step,
                               char *msg, size_t n) {
    zip_uint64_t pidx = 0;
    size_t root_len = 0;
    cs_status st = find_pickle(z, label, &pidx, &root_len, msg, n);
    if (st != CS_OK) return st;
    const char *pname = zip_get_name(z, pidx, 0);
    char root[256];
    if (root_len >= sizeof root)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: archive root name too long", label);
    memcpy(root, pname, root_len);
    root[root_len] = '\0';
    zip_uint64_t idx = 0;
    size_t size = 0;
    char name[300];
    snprintf(name, sizeof name, "%sdata.pkl", root);
    if ((st = member_size(z, name, &idx, &size, label, msg, n)) != CS_OK) return st;
    if (size > MAX_PICKLE)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: %s of %zu bytes is too large", label, name, size);
    uint8_t *pkl = cs_malloc(size ? size : 1);
    if (!pkl) return cs_errf(CS_ERR_NOMEM, msg, n, "%s: out of memory", label);
    st = read_member(z, idx, pkl, size, label, name, msg, n);
    pk_state_dict sd = {0};
    if (st == CS_OK) st = unpickle_state_dict(pkl, size, label, &sd, msg, n);
    free(pkl);
    if (st == CS_OK) {
        *global_step = sd.global_step;
        st = build_table(z, &sd, root, root_len, label, out, msg, n);
    }
    pk_state_dict_free(&sd);
    return st;
}

static cs_status zip_fail(const char *label, zip_error_t *err, char *msg, size_t n) {
    cs_status st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: not a readable zip archive: %s", label,
                           zip_error_strerror(err));
    zip_error_fini(err);
    return st;
}

cs_status ckpt_parse(const uint8_t *buf, size_t size, const char *label, st_file **out,
                     int64_t *global_step, char *msg, size_t n) {
    *out = NULL;
    *global_step = -1;
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t *src = zip_source_buffer_create(buf, size, 0, &err);
    if (!src) return zip_fail(label, &err, msg, n);
    zip_t *z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
    if (!z) {
        zip_source_free(src);
        return zip_fail(label, &err, msg, n);
    }
    zip_error_fini(&err);
    cs_status st = parse_archive(z, label, out, global_step, msg, n);
    zip_discard(z);
    return st;
}

cs_status ckpt_open(const char *path, st_file **out, int64_t *global_step, char *msg, size_t n) {
    *out = NULL;
    *global_step = -1;
    int code = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!z) {
        zip_error_t err;
        zip_error_init_with_code(&err, code);
        return zip_fail(path, &err, msg, n);
    }
    cs_status st = parse_archive(z, path, out, global_step, msg, n);
    zip_discard(z);
    return st;
}
