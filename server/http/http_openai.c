/*
 * GET /v1/images/files/{job id}/{index}.png: the images of an OpenAI request made with
 * response_format "url", served from the finished job's stored PNGs for as long as the
 * server keeps finished jobs (--finished-ttl, --max-finished, --max-finished-mb); then 410
 * with the reason (404 once the id is too old to remember). The URL in the
 * answer is absolute, built from the request's Host header (http_base_url). Like every
 * route it needs the API key when one is set.
 *
 * Threads: MHD's polling thread.
 */
#include "http_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result http_openai_file(http_req *r) {
    service *svc = atomic_load(&r->srv->svc);
    char id[JOB_ID_TEXT_SIZE];
    job_id_format(r->path_job, id);
    if (!svc) return http_respond_error(r, 503, "not_ready", NULL, "the model is not loaded yet");
    /* subpath is "/<index>.png" (classify checked the shape). */
    const int index = atoi(r->subpath + 1);
    uint8_t *png = NULL;
    size_t len = 0;
    const service_status st = service_job_image(svc, r->path_job, index, &png, &len);
    const char *gone = st == SERVICE_NOT_FOUND ? service_job_gone(svc, r->path_job) : NULL;
    if (gone)
        return http_respond_error(r, 410, "gone", NULL, "image %s/%d is no longer kept: %s", id,
                                  index, gone);
    if (st != SERVICE_OK)
        return http_respond_error(r, 404, "not_found", NULL,
                                  "no image %s/%d (unknown, unfinished, or expired: images are "
                                  "kept for the server's finished-job retention time)",
                                  id, index);
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, png, free);
    if (!resp) {
        free(png);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "image/png");
    MHD_add_response_header(resp, "Cache-Control", "private, max-age=60");
    return http_respond(r, 200, resp);
}

/* "/<digits>.png" with a small index. */
bool http_openai_file_path(const char *rest) {
    if (*rest++ != '/') return false;
    const char *p = rest;
    while (isdigit((unsigned char)*p))
        p++;
    return p > rest && p - rest <= 3 && !strcmp(p, ".png");
}

void http_base_url(http_req *r, char *out, size_t n) {
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
    bool ok = host && host[0] && strlen(host) < 256;
    for (const char *p = host; ok && *p; p++) /* a host name or [v6], and a port */
        ok = isalnum((unsigned char)*p) || strchr(".-:[]_", *p);
    if (ok)
        snprintf(out, n, "http://%s", host);
    else
        snprintf(out, n, "http://%s:%d", r->srv->host[0] ? r->srv->host : "127.0.0.1",
                 r->srv->port);
}
