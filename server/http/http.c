/*
 * The HTTP server's lifecycle and front door (see http.h and http_internal.h): the
 * libmicrohttpd daemon, the access handler that routes a request, checks method, API key,
 * content type and body size, and reads the body, and the completion callback that frees
 * the request (cancelling its job when the client went away before the result).
 *
 * Threads: on_access and on_completed run on MHD's polling thread (one thread, epoll or
 * poll: no handler blocks, waiting requests are suspended); http_start/attach/stop on
 * main's thread.
 */
#define _GNU_SOURCE /* strcasestr, pipe2 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http_drain.h"
#include "http_conns.h"
#include "http_guard.h"
#include "log.h"

/* A refused upload is read and dropped (so the client can read the answer) up to this
 * many bytes and seconds per connection, for at most this many connections at once. */
static const http_drain_limits k_drain_limits = {
    .max_bytes = (uint64_t)2 << 30, .max_seconds = 30.0, .max_sockets = 64};


/* The A1111 web UI's routes under /sdapi/v1/ this server answers (a1111_info.c has the
 * bodies); *sub receives the part after the prefix. */
static http_route classify_a1111(const char *url, const char **sub) {
    static const char *const info[] = {"options", "sd-models", "samplers", "schedulers",
                                       "loras", "upscalers", "latent-upscale-modes",
                                       "embeddings", "memory", "progress", "cmd-flags",
                                       "sd-vae", "prompt-styles", "hypernetworks",
                                       "face-restorers", "scripts", NULL};
    static const char *const control[] = {"interrupt", "skip", "refresh-checkpoints",
                                          "refresh-loras", "refresh-vae", NULL};
    *sub = url + 10;
    if (!strcmp(*sub, "txt2img")) return ROUTE_A1111_TXT2IMG;
    if (!strcmp(*sub, "img2img")) return ROUTE_A1111_IMG2IMG;
    for (int i = 0; info[i]; i++)
        if (!strcmp(*sub, info[i])) return ROUTE_A1111_INFO;
    for (int i = 0; control[i]; i++)
        if (!strcmp(*sub, control[i])) return ROUTE_A1111_CONTROL;
    return ROUTE_NOT_FOUND;
}

/* "/jobs/0-123/events" → ROUTE_JOB_EVENTS with *job = that id (job_id.h). */
static http_route classify(const char *url, uint64_t *job, const char **sub) {
    if (!strncmp(url, "/sdapi/v1/", 10)) return classify_a1111(url, sub);
    if (!strncmp(url, "/v1/images/files/", 17)) { /* /v1/images/files/{id}/{index}.png */
        const char *p;
        if (!job_id_parse(url + 17, &p, job) || !http_openai_file_path(p)) return ROUTE_NOT_FOUND;
        *sub = p;
        return ROUTE_OPENAI_FILE;
    }
    static const struct {
        const char *path;
        http_route route;
    } fixed[] = {{"/generate", ROUTE_GENERATE}, {"/jobs", ROUTE_JOBS},
                 {"/health", ROUTE_HEALTH},     {"/ready", ROUTE_READY},
                 {"/metrics", ROUTE_METRICS},   {"/v1/models", ROUTE_MODELS},
                 {"/v1/images/generations", ROUTE_OPENAI_GENERATIONS},
                 {"/v1/images/edits", ROUTE_OPENAI_EDITS}};
    if (http_page_path(url)) return ROUTE_PAGE;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(url, fixed[i].path)) return fixed[i].route;
    if (strncmp(url, "/jobs/", 6) != 0) return ROUTE_NOT_FOUND;
    const char *p;
    uint64_t id;
    if (!job_id_parse(url + 6, &p, &id)) return ROUTE_NOT_FOUND;
    *job = id;
    if (!*p) return ROUTE_JOB;
    if (!strcmp(p, "/events")) return ROUTE_JOB_EVENTS;
    if (!strcmp(p, "/image")) return ROUTE_JOB_IMAGE;
    return ROUTE_NOT_FOUND;
}

static bool method_allowed(http_route route, const char *method) {
    if (!strcmp(method, "OPTIONS")) return true;
    switch (route) {
    case ROUTE_GENERATE:
    case ROUTE_JOBS:
    case ROUTE_A1111_TXT2IMG:
    case ROUTE_A1111_IMG2IMG:
    case ROUTE_A1111_CONTROL:
    case ROUTE_OPENAI_GENERATIONS:
    case ROUTE_OPENAI_EDITS:
        return !strcmp(method, "POST");
    case ROUTE_A1111_INFO:
        return !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "POST");
    case ROUTE_JOB:
        return !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "DELETE");
    case ROUTE_NOT_FOUND:
        return false;
    default:
        return !strcmp(method, "GET") || !strcmp(method, "HEAD");
    }
}

/* The API key from "Authorization: Bearer KEY" or Basic credentials (http_guard.h). */
static bool authorized(http_req *r) {
    const char *key = r->srv->api_key;
    if (!key[0] || r->route == ROUTE_HEALTH || r->route == ROUTE_READY || r->route == ROUTE_PAGE)
        return true; /* the page holds no data: it asks for the key and sends it */
    if (r->route == ROUTE_METRICS && !r->srv->cfg.metrics_auth) return true;
    return guard_authorization_ok(
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"), key);
}

/* application/json, with or without parameters (charset). A missing header is accepted:
 * the body is parsed as JSON either way and a bad one gets a clear 400. */
static bool json_content_type(http_req *r) {
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct) return true;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0) return false;
    return ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ';
}

/* CORS preflight: 204 with what the browser may send. */
static enum MHD_Result preflight(http_req *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Allow", http_route_allow[r->route]);
    if (r->srv->cors_origin[0]) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", http_route_allow[r->route]);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, Accept");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    return http_respond(r, 204, resp);
}

/* Everything decidable from the request line and headers, before any body is read. */
static enum MHD_Result on_first_call(http_req *r) {
    if (r->route == ROUTE_NOT_FOUND)
        return http_respond_error(r, 404, "not_found", NULL, "no such route: %s %s", r->method,
                                  r->path);
    if (!method_allowed(r->route, r->method))
        return http_respond_error(r, 405, "method_not_allowed", NULL,
                                  "%s does not accept %s (allowed: %s)", r->path, r->method,
                                  http_route_allow[r->route]);
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
    /* Probes (kubelet, load balancers) send whatever address they dialled. */
    if (r->route != ROUTE_HEALTH && r->route != ROUTE_READY &&
        !guard_host_allowed(host, r->srv->allowed_hosts))
        return http_respond_error(r, 421, "misdirected_host", NULL,
                                  "Host \"%.100s\" is not served here (allowed: %.200s; see "
                                  "--allowed-hosts)",
                                  host, r->srv->allowed_hosts);
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD") && strcmp(r->method, "OPTIONS") &&
        !guard_origin_allowed(origin, host, r->srv->cors_origin))
        return http_respond_error(r, 403, "forbidden_origin", NULL,
                                  "requests from the web page origin \"%.100s\" are not allowed "
                                  "(see --cors-origin)",
                                  origin);
    if (!strcmp(r->method, "OPTIONS")) return preflight(r);
    if (!authorized(r))
        return http_respond_error(r, 401, "unauthorized", NULL,
                                  "send the API key as \"Authorization: Bearer KEY\" (or as "
                                  "the password of HTTP Basic credentials)");
    if (!strcmp(r->method, "POST")) {
        if (r->dialect == &api_native && !json_content_type(r)) /* the others read JSON whatever it is labelled, as FastAPI does */
            return http_respond_error(r, 415, "unsupported_media_type", NULL,
                                      "the body must be JSON: send \"Content-Type: "
                                      "application/json\" (curl: -H 'Content-Type: "
                                      "application/json')");
        if (r->route == ROUTE_OPENAI_EDITS && !http_form_content_type(r))
            return http_respond_error(r, 415, "unsupported_media_type", NULL,
                                      "/v1/images/edits takes a multipart/form-data body (curl: "
                                      "-F image=@in.png -F prompt=...)");
        const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)r->srv->cfg.max_body)
            return http_respond_error(r, 413, "payload_too_large", NULL,
                                      "the body is %s bytes; the limit is %d", cl,
                                      r->srv->cfg.max_body);
    }
    return MHD_YES;
}

/* Whether the client announced a body (a length or chunked transfer). */
static bool body_announced(http_req *r) {
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Transfer-Encoding");
    return (cl && strtoull(cl, NULL, 10) > 0) || (te && strcasestr(te, "chunked"));
}

/* Answers 413 in the middle of a body. libmicrohttpd (0.9.75) cannot queue a response
 * once the upload has started, so the answer is written on the socket directly — nothing
 * else has been sent on it — and the drainer keeps reading what the client still sends
 * until it has read the answer; the caller then lets MHD drop the connection. */
static void refuse_upload_now(http_req *r) {
    char json[160], head[512];
    int jl = snprintf(json, sizeof json,
                      "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"the body "
                      "exceeds the limit of %d bytes\"}}\n",
                      r->srv->cfg.max_body);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\nCache-Control: no-store\r\n"
                      "X-Request-Id: %llu\r\n\r\n%s",
                      jl, (unsigned long long)r->id, json);
    r->status = 413;
    metrics_count(r->srv->metrics, (int)r->route, 413);
    int fd = r->fd >= 0 ? dup(r->fd) : -1;
    if (fd < 0) return;
    ssize_t k = send(fd, head, (size_t)hl, MSG_DONTWAIT | MSG_NOSIGNAL);
    size_t sent = k > 0 ? (size_t)k : 0;
    http_drain_add(r->srv->drain, fd, head + sent, (size_t)hl - sent);
}

/* Appends a piece of the body, up to max_body. */
static bool read_body(http_req *r, const char *data, size_t n) {
    size_t cap = (size_t)r->srv->cfg.max_body;
    if (n > cap - r->body_len) {
        r->too_large = true;
        return true;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t want = r->body_cap ? r->body_cap * 2 : 4096;
        while (want < r->body_len + n + 1)
            want *= 2;
        if (want > cap + 1) want = cap + 1;
        char *b = realloc(r->body, want);
        if (!b) return false;
        r->body = b;
        r->body_cap = want;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return true;
}

static http_req *req_new(http_server *s, struct MHD_Connection *conn, const char *url,
                         const char *method) {
    http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = s;
    r->conn = conn;
    r->id = atomic_fetch_add(&s->next_id, 1);
    r->method = method;
    r->t_start = http_now();
    r->last_write = r->t_start;
    snprintf(r->path, sizeof r->path, "%s", url);
    const char *sub = NULL;
    r->route = classify(url, &r->path_job, &sub);
    r->subpath = sub ? r->path + (sub - url) : ""; /* our copy outlives MHD's */
    r->dialect = r->route >= ROUTE_A1111_TXT2IMG && r->route <= ROUTE_A1111_CONTROL
                     ? (r->route == ROUTE_A1111_TXT2IMG   ? &api_a1111_txt2img
                        : r->route == ROUTE_A1111_IMG2IMG ? &api_a1111_img2img
                                                          : &api_a1111_other)
                 : r->route == ROUTE_OPENAI_GENERATIONS ? &api_openai_generations
                 : r->route == ROUTE_OPENAI_EDITS       ? &api_openai_edits
                 : !strncmp(url, "/v1/images", 10)      ? &api_openai_other
                                                        : &api_native;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->fd = ci ? ci->connect_fd : -1;
    r->linger_fd = -1;
    http_caller_identify(r);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void req_free(http_req *r) {
    request_gen_deinit(&r->gen);
    free(r->params_json);
    free(r->body);
    for (int i = 0; i < CS_MAX_IMAGES_PER_JOB; i++)
        free(r->png[i]);
    for (int i = 0; i < CS_MAX_IMAGES_PER_JOB; i++)
        free(r->infotext[i]);
    free(r->out);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls) {
    (void)version;
    http_req *r = *con_cls;
    if (!r) {
        http_conns_request_begin(((http_server *)cls)->conns, conn);
        if (!(r = req_new(cls, conn, url, method))) return MHD_NO;
        *con_cls = r;
        enum MHD_Result ret = on_first_call(r);
        /* Answered before the body: MHD reads no more of it, so the socket goes to the
         * drainer when MHD is done with it, lest closing it reset the connection. */
        if (r->status && r->fd >= 0 && body_announced(r)) r->linger_fd = dup(r->fd);
        return ret;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!read_body(r, upload, n)) return MHD_NO;
        if (r->too_large) { /* a chunked body (a declared length was checked up front) */
            refuse_upload_now(r);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (r->status) return MHD_YES;
    if (r->route == ROUTE_GENERATE || r->route == ROUTE_JOBS ||
        r->route == ROUTE_A1111_TXT2IMG || r->route == ROUTE_A1111_IMG2IMG ||
        r->route == ROUTE_OPENAI_GENERATIONS || r->route == ROUTE_OPENAI_EDITS)
        return http_generate(r);
    if (r->route == ROUTE_OPENAI_FILE) return http_openai_file(r);
    if (r->route == ROUTE_PAGE) return http_page(r);
    if (r->route == ROUTE_A1111_INFO || r->route == ROUTE_A1111_CONTROL) return http_a1111_route(r);
    return http_route_simple(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    http_conns_request_end(s->conns, conn);
    http_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->registered) registry_remove(r);
    if (r->linger_fd >= 0) {
        http_drain_add(s->drain, r->linger_fd, NULL, 0);
        r->linger_fd = -1;
    }
    pthread_mutex_lock(&r->mu);
    bool final = r->final;
    pthread_mutex_unlock(&r->mu);
    service *svc = atomic_load(&s->svc);
    /* A /generate client that leaves before its result takes its job with it; a job made
     * by POST /jobs lives on, and an events stream only stops listening. */
    bool cancel = r->has_job && r->route == ROUTE_GENERATE && !final;
    if (svc && cancel) service_cancel(svc, r->job_id);
    if (svc && r->subscribed) service_unsubscribe(svc, r->job_id, (void *)(uintptr_t)r->id);

    static const char *const why[] = {"",           "error",         "timed out", "server shutdown",
                                      "read error", "client aborted"};
    const char *reason = (size_t)toe < sizeof why / sizeof why[0] ? why[toe] : "error";
    cs_log_level lvl =
        r->route == ROUTE_HEALTH || r->route == ROUTE_READY || r->route == ROUTE_METRICS
            ? CS_LOG_DEBUG
        : r->status == 500 ? CS_LOG_WARN
                           : CS_LOG_INFO;
    char job[48] = "", jid[JOB_ID_TEXT_SIZE];
    if (r->has_job || r->path_job)
        snprintf(job, sizeof job, " job %s",
                 job_id_format(r->has_job ? r->job_id : r->path_job, jid));
    log_msg(lvl, "req %llu %s %s %d %.1fms%s%s%s%s", (unsigned long long)r->id, r->method, r->path,
            r->status, (http_now() - r->t_start) * 1e3, job,
            toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? " closed: " : "", reason,
            cancel ? " (job cancelled)" : "");
    req_free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    /* MHD reports our own deliberate closes (a client that hung up, a stream ended with an
     * error event) as "application" errors; the access log line already tells them. */
    log_msg(strstr(line, "pplication") ? CS_LOG_DEBUG : CS_LOG_WARN, "http: %s", line);
}

static cs_status resolve(http_server *s, char *msg, size_t n) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int rc = getaddrinfo(s->host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(msg, n, "host \"%s\": %s", s->host, gai_strerror(rc));
        if (res) freeaddrinfo(res);
        return CS_ERR_INVALID_ARG;
    }
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return CS_OK;
}

void http_stop(http_server *h, int grace_ms) {
    if (!h) return;
    if (h->daemon) {
        /* New connections are refused at once; responses in flight get grace_ms. */
        MHD_socket ls = MHD_quiesce_daemon(h->daemon);
        if (ls != MHD_INVALID_SOCKET) close(ls);
        int left = registry_wait_empty(grace_ms);
        if (left) log_msg(CS_LOG_WARN, "closing %d request(s) still open", left);
        /* From here on completions must not reach the service (its loop is over). */
        atomic_store(&h->svc, NULL);
        http_watcher_stop(h);
        registry_shutdown_all(); /* MHD refuses to stop with suspended connections */
        MHD_stop_daemon(h->daemon);
    } else {
        http_watcher_stop(h);
    }
    http_conns_stop(h->conns);
    http_drain_stop(h->drain);
    metrics_free(h->metrics);
    pthread_mutex_destroy(&h->watch_mu);
    pthread_cond_destroy(&h->watch_cond);
    free(h->host);
    free(h->api_key);
    free(h->cors_origin);
    free(h->allowed_hosts);
    free(h);
}

cs_status http_start(const http_config *cfg, http_server **out, char *msg, size_t n) {
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) return CS_ERR_NOMEM;
    s->cfg = *cfg;
    s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    s->api_key = strdup(cfg->api_key ? cfg->api_key : "");
    s->cors_origin = strdup(cfg->cors_origin ? cfg->cors_origin : "");
    char hosts[512];
    s->allowed_hosts = strdup(cfg->allowed_hosts && cfg->allowed_hosts[0]
                                  ? cfg->allowed_hosts
                                  : guard_default_hosts(s->host, hosts, sizeof hosts));
    s->cfg.host = s->host;
    s->cfg.api_key = s->api_key;
    s->cfg.cors_origin = s->cors_origin;
    s->cfg.allowed_hosts = s->allowed_hosts;
    atomic_init(&s->served, NULL);
    atomic_init(&s->a1111_model, 0);
    atomic_init(&s->svc, NULL);
    atomic_init(&s->next_id, 1);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_cond_init(&s->watch_cond, NULL);
    s->metrics = metrics_new(http_route_names, ROUTE_COUNT);
    if (!s->host || !s->api_key || !s->cors_origin || !s->allowed_hosts || !s->metrics) {
        http_stop(s, 0);
        snprintf(msg, n, "out of memory");
        return CS_ERR_NOMEM;
    }
    cs_status st = resolve(s, msg, n);
    if (st == CS_OK) st = http_drain_start(&k_drain_limits, &s->drain, msg, n);
    if (st == CS_OK && cfg->header_timeout_s > 0)
        st = http_conns_start(cfg->header_timeout_s, cfg->idle_timeout_s, &s->conns, msg, n);
    if (st != CS_OK) {
        http_stop(s, 0);
        return st;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (s->addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        s, /* first, so it catches every message */
        MHD_OPTION_SOCK_ADDR, &s->addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, s->conns ? http_conns_notify : NULL, s->conns,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->idle_timeout_s, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(msg, n, "cannot listen on %s port %d: %s", s->host, cfg->port,
                 errno ? strerror(errno) : "libmicrohttpd refused to start (see the log)");
        http_stop(s, 0);
        return CS_ERR_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    if ((st = http_watcher_start(s, msg, n)) != CS_OK) {
        http_stop(s, 0);
        return st;
    }
    char host[300];
    snprintf(host, sizeof host, s->addr.ss_family == AF_INET6 ? "[%s]" : "%s", s->host);
    log_msg(CS_LOG_INFO, "listening on http://%s:%d", host, s->port);
    *out = s;
    return CS_OK;
}

int http_port(const http_server *h) {
    return h->port;
}

void http_attach(http_server *h, const served_models *sv, service *svc) {
    atomic_store(&h->served, sv);
    atomic_store(&h->svc, svc);
}
