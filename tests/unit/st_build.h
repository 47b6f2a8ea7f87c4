/* Test helpers that build safetensors images in memory and write them into a private
 * temporary folder. Header-only (static functions) so each unit test stays one file;
 * the helpers are `static inline` so a test may use any subset. */
#ifndef CS_TEST_ST_BUILD_H
#define CS_TEST_ST_BUILD_H

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A growing byte buffer; allocation failure aborts (tests only). */
typedef struct stb_buf {
    uint8_t *p;
    size_t len, cap;
} stb_buf;

static inline void stb_put(stb_buf *b, const void *src, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3))) static inline void stb_printf(stb_buf *b, const char *fmt,
                                                                    ...) {
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) abort();
    stb_put(b, tmp, (size_t)n);
}

/* A file image: 8-byte little-endian header length, header, data. */
static inline stb_buf stb_image_len(uint64_t declared_len, const void *hdr, size_t hdr_len,
                                    const void *data, size_t data_len) {
    stb_buf b = {0};
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(declared_len >> (8 * i));
    stb_put(&b, le, 8);
    stb_put(&b, hdr, hdr_len);
    stb_put(&b, data, data_len);
    return b;
}

static inline stb_buf stb_image(const char *hdr, const void *data, size_t data_len) {
    return stb_image_len(strlen(hdr), hdr, strlen(hdr), data, data_len);
}

/* Builds a well-formed file tensor by tensor, the way the reference writer does. */
typedef struct stb_file {
    stb_buf hdr, data;
    int n;
} stb_file;

static inline void stb_tensor(stb_file *f, const char *name, const char *dtype, int ndim,
                              const int64_t *shape, const void *bytes, size_t nbytes) {
    stb_printf(&f->hdr, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", f->n++ ? "," : "{", name, dtype);
    for (int i = 0; i < ndim; i++)
        stb_printf(&f->hdr, "%s%lld", i ? "," : "", (long long)shape[i]);
    stb_printf(&f->hdr, "],\"data_offsets\":[%zu,%zu]}", f->data.len, f->data.len + nbytes);
    stb_put(&f->data, bytes, nbytes);
}

/* Closes the header (with metadata {"format":"pt"}), pads it with spaces to a multiple of
 * 8 as the reference writer does, and returns the image (caller frees .p). */
static inline stb_buf stb_finish(stb_file *f) {
    stb_printf(&f->hdr, "%s\"__metadata__\":{\"format\":\"pt\"}}", f->n ? "," : "{");
    while (f->hdr.len % 8)
        stb_put(&f->hdr, " ", 1);
    stb_buf img = stb_image_len(f->hdr.len, f->hdr.p, f->hdr.len, f->data.p, f->data.len);
    free(f->hdr.p);
    free(f->data.p);
    memset(f, 0, sizeof *f);
    return img;
}

/* Writes bytes to dir/name; returns the path (caller frees). */
static inline char *stb_write(const char *dir, const char *name, const void *bytes, size_t n) {
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = malloc(plen);
    if (!path) abort();
    snprintf(path, plen, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (n && fwrite(bytes, 1, n, fp) != n) || fclose(fp) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
    return path;
}

/* A fresh private folder under $TMPDIR (or /tmp). */
static inline char *stb_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + 32;
    char *dir = malloc(n);
    if (!dir) abort();
    snprintf(dir, n, "%s/cs_test_XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    return dir;
}

/* Removes dir and what the tests put in it: files and empty sub-folders, one level deep. */
static inline void stb_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) != 0) rmdir(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

#endif
