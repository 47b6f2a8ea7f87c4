/*
 * The HTTP front end (DESIGN §6): libmicrohttpd on its own polling thread, the routes,
 * request bodies, and responses fed by the generation service's events. It never touches
 * job state: it submits, cancels and subscribes through service.h.
 *
 * Lifecycle (main's thread): http_start (binds the port, answers /health at once and
 * 503 "not ready" to everything that needs the model) → http_attach once the model and
 * service exist → ... → http_stop after service_run has returned (the drain is over).
 *
 * One HTTP server per process: listener callbacks find their request through a
 * process-wide registry (see http_stream.c).
 */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <cfgserve/cfgserve.h>

#include <stdbool.h>

#include "model_pick.h"
#include "service.h"

typedef struct http_config {
    const char *host;        /* address to bind */
    int port;                /* 0 = ephemeral */
    int max_body;            /* bytes */
    const char *api_key;     /* "" = open */
    const char *cors_origin; /* "" = none, "*", or comma-separated origins */
    int sse_keepalive_s;
    int idle_timeout_s; /* 0 = never */
    int max_connections;
    int retry_after_s;         /* for 429 */
    int max_width, max_height; /* largest accepted image (0 = the model's native size) */
    const char *allowed_hosts; /* NULL/"" = bound address + loopback names; "*" = any */
    bool metrics_auth;         /* /metrics needs the API key (when one is set) */
    bool log_prompts;          /* queued-job log lines carry the prompts (off: never logged) */
    int header_timeout_s;      /* connect -> complete headers; 0 = no deadline */
} http_config;

typedef struct http_server http_server;

/* Binds and starts serving; on success the log has "listening on http://HOST:PORT". The
 * strings in cfg are copied. */
cs_status http_start(const http_config *cfg, http_server **out, char *msg, size_t msg_size);
/* The bound port (the ephemeral one when port was 0). */
int http_port(const http_server *h);
/* Makes the served models (sv->models[0] answers requests that name none) and the
 * service available to requests (borrowed; they must outlive http_stop). Until then
 * /ready and model routes answer 503. */
void http_attach(http_server *h, const served_models *sv, service *svc);
/* Stops accepting connections, waits up to grace_ms for responses in flight (results of
 * the drained jobs), closes the rest and frees everything (NULL-safe). */
void http_stop(http_server *h, int grace_ms);

#endif
