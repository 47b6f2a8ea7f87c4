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
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
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
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) return MHD_NO;
    size_t n = strlen(text);
    char *body = realloc(text, n + 2); /* a final newline, for people reading curl output */
    if (!body) {
        free(text);
        return MHD_NO;
    }
    body[n] = '\n';
    body[n + 1] = '\0';
    return http_respond_buf(r, status, "application/json", body, n + 1);
}

enum MHD_Result http_respond_error(http_req *r, int status, const char *code, const char *field,
                                   const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject(), *err = cJSON_CreateObject();
    if (!root || !err || !cJSON_AddItemToObject(root, "error", err)) {
        cJSON_Delete(root);
        cJSON_Delete(err);
        return MHD_NO;
    }
    cJSON_AddStringToObject(err, "code", code);
    cJSON_AddStringToObject(err, "message", message);
    if (field && field[0]) cJSON_AddStringToObject(err, "field", field);
    if (status == 500) /* a bug: the log keeps the details (the job id is in message) */
        log_msg(CS_LOG_ERROR, "req %llu %s %s: %d %s: %s", (unsigned long long)r->id, r->method,
                r->path, status, code, message);
    return http_respond_json(r, status, root);
}

char *http_base64(const uint8_t *d, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = A[v >> 18];
        *o++ = A[v >> 12 & 63];
        *o++ = A[v >> 6 & 63];
        *o++ = A[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *o++ = A[v >> 18];
        *o++ = A[v >> 12 & 63];
        *o++ = i + 1 < n ? A[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

char *http_result_json(http_req *r, size_t *len) {
    char num[24];
    cJSON *root = cJSON_CreateObject(), *images = cJSON_CreateArray(), *seeds = cJSON_CreateArray();
    bool ok = root && images && seeds;
    if (ok && cJSON_AddStringToObject(root, "id", job_id_format(r->job_id, num))) {
        cJSON_AddItemToObject(root, "images", images);
        cJSON_AddItemToObject(root, "seeds", seeds);
    } else {
        ok = false;
        cJSON_Delete(images);
        cJSON_Delete(seeds);
    }
    for (int i = 0; ok && i < r->n_images; i++) {
        char *b64 = http_base64(r->png[i], r->png_len[i]);
        cJSON *img = b64 ? cJSON_CreateString(b64) : NULL;
        free(b64);
        snprintf(num, sizeof num, "%llu", (unsigned long long)r->seeds[i]);
        cJSON *seed = cJSON_CreateRaw(num); /* all 64 bits: a double would round them */
        ok = img && seed;
        if (ok) {
            cJSON_AddItemToArray(images, img);
            cJSON_AddItemToArray(seeds, seed);
        } else {
            cJSON_Delete(img);
            cJSON_Delete(seed);
        }
    }
    if (ok && r->params_json) ok = cJSON_AddRawToObject(root, "parameters", r->params_json) != NULL;
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text) *len = strlen(text);
    return text;
}
