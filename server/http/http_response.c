/*
 * Building and queueing responses: every response goes through http_respond, which adds
 * the common headers (CORS, request id, Allow / Retry-After / WWW-Authenticate where the
 * status calls for them) and counts it in the metrics. Errors are JSON:
 * {"error":{"code":"invalid_parameter","message":"…","field":"steps"}}.
 *
 * Threads: MHD's polling thread (http_base64 and http_result_json: any).
 */
#include "http_internal.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void http_add_cors(http_req *r, struct MHD_Response *resp) {
    const char *allowed = r->srv->cors_origin;
    if (!allowed[0]) return;
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    const char *grant = NULL;
    if (!strcmp(allowed, "*")) {
        grant = "*";
    } else if (origin) {
        size_t n = strlen(origin);
        for (const char *p = allowed; *p && !grant;) {
            while (*p == ' ' || *p == ',')
                p++;
            size_t len = strcspn(p, ", ");
            if (len && len == n && !strncmp(p, origin, n)) grant = origin;
            p += len;
        }
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    if (!grant) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", grant);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "X-Seed, X-Seeds, X-Job-Id, X-Parameters, X-Request-Id, Retry-After");
}

enum MHD_Result http_respond(http_req *r, int status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    char v[32];
    http_add_cors(r, resp);
    snprintf(v, sizeof v, "%llu", (unsigned long long)r->id);
    MHD_add_response_header(resp, "X-Request-Id", v);
    if (status == 405) MHD_add_response_header(resp, "Allow", http_route_allow[r->route]);
    if (status == 401) /* the web UI's API answers with a Basic challenge (--api-auth) */
        MHD_add_response_header(resp, "WWW-Authenticate",
                                strncmp(r->path, "/sdapi/", 7) ? "Bearer"
                                                               : "Basic realm=\"cfgserve\", Bearer");
    if (status == 429) {
        snprintf(v, sizeof v, "%d", r->srv->cfg.retry_after_s);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->status = status;
        metrics_count(r->srv->metrics, (int)r->route, status);
    }
    return ret;
}

enum MHD_Result http_respond_buf(http_req *r, int status, const char *content_type, char *buf,
                                 size_t len) {
    struct MHD_Response *resp =
        buf ? MHD_create_response_from_buffer_with_free_callback(len, buf, free) : NULL;
    if (!resp) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    return http_respond(r, status, resp);
}

enum MHD_Result http_respond_json(http_req *r, int status, cJSON *obj) {
    size_t len = 0;
    char *body = api_print_json(obj, &len);
    if (!body) return MHD_NO;
    return http_respond_buf(r, status, "application/json", body, len);
}

enum MHD_Result http_respond_error(http_req *r, int status, const char *code, const char *field,
                                   const char *fmt, ...) {
    request_error e = {.code = code};
    snprintf(e.field, sizeof e.field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    if (status == 500) /* a bug: the log keeps the details (the job id is in message) */
        log_msg(CS_LOG_ERROR, "req %llu %s %s: %d %s: %s", (unsigned long long)r->id, r->method,
                r->path, status, code, e.message);
    size_t len = 0;
    char *body = r->dialect->render_error(&e, &status, &len);
    if (!body) return MHD_NO;
    return http_respond_buf(r, status, "application/json", body, len);
}

char *http_result_json(http_req *r, size_t *len) {
    const served_models *sv = http_served(r->srv);
    const cs_model *m = sv && r->gen.model < sv->n ? sv->models[r->gen.model] : NULL;
    char base[300] = "";
    if (r->mode != MODE_SSE) /* streams render on the loop thread: no header lookups there */
        http_base_url(r, base, sizeof base);
    const api_result res = {.job_id = r->job_id, .n_images = r->n_images, .png = r->png,
                            .png_len = r->png_len, .seeds = r->seeds, .infotext = r->infotext,
                            .model_name = m ? cs_model_name(m) : "", .base_url = base};
    char *text = r->dialect->render_result(&r->gen, &res, len);
    while (text && *len > 0 && text[*len - 1] == '\n') /* one line: an SSE data field */
        text[--*len] = '\0';
    return text;
}
