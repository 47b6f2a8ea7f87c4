/*
 * multipart/form-data bodies (POST /v1/images/edits) split into parts with libmicrohttpd's
 * post processor: the transport's job, so a dialect sees named parts, never the wire
 * format. The body was already read whole within --max-body; parts are copies, at most
 * MAX_PARTS of them, each name at most MAX_NAME bytes.
 *
 * Threads: MHD's polling thread.
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_PARTS = 32, MAX_NAME = 64 };

typedef struct form_state {
    api_form *form;
    char why[160];
} form_state;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* MHD calls this for each piece of each value, in order; off == 0 starts a value. */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size) {
    (void)kind, (void)transfer_encoding;
    form_state *fs = cls;
    api_form *f = fs->form;
    api_part *cur = f->n ? &f->parts[f->n - 1] : NULL;
    const bool same = cur && !strcmp(cur->name, key) && off == cur->len;
    if (!same || (off == 0 && cur->len > 0)) {
        if (off != 0) {
            snprintf(fs->why, sizeof fs->why, "part \"%.40s\" arrived out of order", key);
            return MHD_NO;
        }
        if (f->n == MAX_PARTS || strlen(key) > MAX_NAME) {
            snprintf(fs->why, sizeof fs->why, "more than %d parts, or a part name over %d bytes",
                     MAX_PARTS, MAX_NAME);
            return MHD_NO;
        }
        cur = &f->parts[f->n++];
        cur->name = strdup(key);
        cur->filename = dup_or_null(filename);
        cur->content_type = dup_or_null(content_type);
        cur->data = calloc(1, 1);
        if (!cur->name || !cur->data || (filename && !cur->filename)) goto oom;
    }
    if (size) {
        uint8_t *grown = realloc(cur->data, cur->len + size + 1);
        if (!grown) goto oom;
        cur->data = grown;
        memcpy(cur->data + cur->len, data, size);
        cur->len += size;
        cur->data[cur->len] = 0;
    }
    return MHD_YES;
oom:
    snprintf(fs->why, sizeof fs->why, "out of memory");
    return MHD_NO;
}

void http_form_free(api_form *f) {
    for (int i = 0; f->parts && i < f->n; i++) {
        free(f->parts[i].name);
        free(f->parts[i].filename);
        free(f->parts[i].content_type);
        free(f->parts[i].data);
    }
    free(f->parts);
    f->parts = NULL;
    f->n = 0;
}

bool http_form_parse(http_req *r, api_form *f, char *why, size_t why_size) {
    form_state fs = {.form = f};
    f->n = 0;
    if (!(f->parts = calloc(MAX_PARTS, sizeof *f->parts))) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    struct MHD_PostProcessor *pp = MHD_create_post_processor(r->conn, 16384, on_part, &fs);
    if (!pp) {
        snprintf(why, why_size, "the body is not multipart/form-data with a boundary");
        return false;
    }
    enum MHD_Result ok = r->body_len ? MHD_post_process(pp, r->body, r->body_len) : MHD_YES;
    enum MHD_Result done = MHD_destroy_post_processor(pp);
    if (ok != MHD_YES || done != MHD_YES) {
        snprintf(why, why_size, "bad multipart/form-data body: %s",
                 fs.why[0] ? fs.why : "malformed or truncated");
        return false;
    }
    return true;
}

bool http_form_content_type(http_req *r) {
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    return ct && !strncasecmp(ct, "multipart/form-data", 19);
}
