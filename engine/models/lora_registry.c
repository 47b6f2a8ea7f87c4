/* The LoRA folder and cache (see lora_registry.h). */
#include "lora_registry.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

enum { LORA_NAME_MAX = 200 };

static const char k_ext[] = ".safetensors";

struct lora_registry {
    pthread_mutex_t lock;
    char *dir;          /* realpath of the folder, or NULL */
    lora_file **items;  /* cached, one reference each */
    int count, cap;
};

lora_registry *lora_registry_new(void) {
    lora_registry *r = cs_calloc(1, sizeof *r);
    if (r) pthread_mutex_init(&r->lock, NULL);
    return r;
}

void lora_registry_free(lora_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->count; i++) lora_file_unref(r->items[i]);
    free(r->items);
    free(r->dir);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

cs_status lora_registry_set_dir(lora_registry *r, const char *dir, char *msg, size_t n) {
    char *real = dir ? realpath(dir, NULL) : NULL;
    struct stat sb;
    if (!real || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        free(real);
        return cs_errf(CS_ERR_IO, msg, n, "LoRA folder %s: not a readable directory",
                       dir ? dir : "(null)");
    }
    pthread_mutex_lock(&r->lock);
    free(r->dir);
    r->dir = real;
    pthread_mutex_unlock(&r->lock);
    return CS_OK;
}

static bool ends_with(const char *s, size_t len, const char *suffix) {
    const size_t sl = strlen(suffix);
    return len >= sl && memcmp(s + len - sl, suffix, sl) == 0;
}

cs_status lora_name_check(const char *name, char *msg, size_t n) {
    if (!name || !name[0]) return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA name is empty");
    const size_t len = strlen(name);
    if (len > LORA_NAME_MAX)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA name is %zu bytes; the limit is %d", len,
                       LORA_NAME_MAX);
    if (!cs_utf8_valid(name, len))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA name is not valid UTF-8");
    for (size_t i = 0; i < len; i++) {
        const unsigned char ch = (unsigned char)name[i];
        if (ch == '/' || ch == '\\' || ch < 0x20 || ch == 0x7f)
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "LoRA name \"%.60s\" is not a plain file name (no paths, separators or "
                           "control characters)",
                           name);
    }
    if (name[0] == '.')
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA name \"%.60s\" may not start with '.'", name);
    const char *dot = strrchr(name, '.');
    if (dot && (ends_with(name, len, ".ckpt") || ends_with(name, len, ".pt") ||
                ends_with(name, len, ".bin") || ends_with(name, len, ".pth")))
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                       "LoRA \"%.60s\": only .safetensors files are loaded (pickle formats can run code)",
                       name);
    if (len == strlen(k_ext) && strcmp(name, k_ext) == 0)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA name \"%s\" has no stem", name);
    return CS_OK;
}

cs_status lora_registry_resolve(const lora_registry *r, const char *name, char *canon,
                                char *path, char *msg, size_t n) {
    cs_status st = lora_name_check(name, msg, n);
    if (st != CS_OK) return st;
    if (!r->dir)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "LoRA \"%s\" requested but this server has no LoRA folder (--lora-dir)", name);
    size_t len = strlen(name);
    if (ends_with(name, len, k_ext)) len -= strlen(k_ext);
    snprintf(canon, 256, "%.*s", (int)len, name);
    char joined[PATH_MAX + 256];
    snprintf(joined, sizeof joined, "%s/%s%s", r->dir, canon, k_ext);
    char *real = realpath(joined, NULL);
    struct stat sb;
    if (!real || stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        free(real);
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA \"%s\" not found in the LoRA folder", canon);
    }
    const size_t dl = strlen(r->dir);
    const bool inside = strncmp(real, r->dir, dl) == 0 && real[dl] == '/' && !strchr(real + dl + 1, '/');
    if (!inside || strlen(real) >= 4096) {
        free(real);
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA \"%s\" resolves outside the LoRA folder", canon);
    }
    strcpy(path, real);
    free(real);
    return CS_OK;
}

static lora_file *find_cached(lora_registry *r, const char *canon) {
    for (int i = 0; i < r->count; i++)
        if (strcmp(r->items[i]->name, canon) == 0) return r->items[i];
    return NULL;
}

cs_status lora_registry_get(lora_registry *r, const char *name,
                            const lora_module_table *const tables[LORA_COMPONENTS],
                            lora_file **out, char *msg, size_t n) {
    *out = NULL;
    char canon[256], path[4096];
    cs_status st = lora_registry_resolve(r, name, canon, path, msg, n);
    if (st != CS_OK) return st;
    pthread_mutex_lock(&r->lock);
    lora_file *f = find_cached(r, canon);
    if (f) *out = lora_file_ref(f);
    pthread_mutex_unlock(&r->lock);
    if (*out) return CS_OK;
    /* Loaded outside the lock so other LoRAs stay available meanwhile. */
    lora_file *loaded;
    if ((st = lora_file_load(path, canon, tables, &loaded, msg, n)) != CS_OK) return st;
    pthread_mutex_lock(&r->lock);
    f = find_cached(r, canon);
    if (!f && r->count == r->cap) {
        int cap = r->cap ? 2 * r->cap : 8;
        lora_file **items = realloc(r->items, (size_t)cap * sizeof *items);
        if (items) r->items = items, r->cap = cap;
    }
    if (!f && r->count < r->cap) {
        r->items[r->count++] = lora_file_ref(loaded); /* the cache's reference */
        f = loaded;
    }
    if (f) *out = lora_file_ref(f);
    pthread_mutex_unlock(&r->lock);
    lora_file_unref(loaded); /* ours (the cache keeps its own, or another thread's won) */
    return *out ? CS_OK : cs_errf(CS_ERR_NOMEM, msg, n, "out of memory caching LoRA \"%s\"", canon);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **lora_registry_list(const lora_registry *r, int *count) {
    *count = 0;
    int cap = 16, k = 0;
    char **names = cs_calloc((size_t)cap + 1, sizeof *names);
    DIR *d = r->dir && names ? opendir(r->dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        const size_t len = strlen(e->d_name);
        char canon[256], path[4096];
        if (!ends_with(e->d_name, len, k_ext) ||
            lora_registry_resolve(r, e->d_name, canon, path, NULL, 0) != CS_OK)
            continue;
        if (k == cap) {
            char **more = realloc(names, ((size_t)cap * 2 + 1) * sizeof *names);
            if (!more) break;
            names = more;
            cap *= 2;
        }
        if (!(names[k] = strdup(canon))) break;
        names[++k] = NULL;
    }
    if (d) closedir(d);
    if (names) qsort(names, (size_t)k, sizeof *names, cmp_names);
    *count = k;
    return names;
}
