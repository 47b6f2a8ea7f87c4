/*
 * Shared by the http_*.c files: the server and per-request structs, the route table, and
 * the functions one file offers the others.
 *
 *   http.c          daemon lifecycle, the access handler (routing, auth, CORS preflight,
 *                   body reading) and the request-completed callback
 *   http_response.c building and queueing responses (JSON errors, CORS, metrics), base64
 *   http_routes.c   the short routes: health, ready, metrics, models, /jobs/{id}...
 *   http_generate.c POST /generate and POST /jobs: parse, submit, suspend, respond
 *   http_stream.c   the live-request registry, the service listener, Server-Sent Events
 *                   and the watcher thread (disconnects, keep-alive comments)
 *
 * Threads: MHD's polling thread runs handlers, content readers and completion; the
 * service's loop thread runs http_listener; the watcher thread runs http_watch. A request
 * is reached from the last two only through the registry, under its lock, and its shared
 * fields (below the "guarded by mu" line) only under the request's own mutex.
 */
#ifndef CS_HTTP_INTERNAL_H
#define CS_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http.h"
#include "job_id.h"
#include "metrics.h"
#include "dialect.h"
#include "request.h"

typedef enum http_route {
    ROUTE_GENERATE,
    ROUTE_JOBS,
    ROUTE_JOB,
    ROUTE_JOB_EVENTS,
    ROUTE_JOB_IMAGE,
    ROUTE_HEALTH,
    ROUTE_READY,
    ROUTE_METRICS,
    ROUTE_MODELS,
    ROUTE_A1111_TXT2IMG, /* POST /sdapi/v1/txt2img */
    ROUTE_A1111_IMG2IMG, /* POST /sdapi/v1/img2img */
    ROUTE_A1111_INFO,    /* GET /sdapi/v1/{options,sd-models,samplers,...,progress}, POST options */
    ROUTE_A1111_CONTROL, /* POST /sdapi/v1/{interrupt,skip,refresh-checkpoints,refresh-loras} */
    ROUTE_OPENAI_GENERATIONS, /* POST /v1/images/generations */
    ROUTE_OPENAI_EDITS,       /* POST /v1/images/edits (multipart/form-data) */
    ROUTE_OPENAI_FILE,        /* GET /v1/images/files/{id}/{index}.png */
    ROUTE_PAGE,               /* GET / : the web page (http_page.c) */
    ROUTE_NOT_FOUND,
    ROUTE_COUNT
} http_route;

/* Metric labels, indexed by http_route. */
extern const char *const http_route_names[ROUTE_COUNT];
/* The Allow header of each route. */
extern const char *const http_route_allow[ROUTE_COUNT];

typedef enum req_mode {
    MODE_NONE, /* a short request: answered by its handler at once */
    MODE_PNG,  /* POST /generate, waits suspended for the image */
    MODE_JSON, /* POST /generate with Accept: application/json */
    MODE_SSE,  /* POST /generate streaming, or GET /jobs/{id}/events */
} req_mode;

struct http_server {
    http_config cfg; /* strings point at the copies below */
    char *host, *api_key, *cors_origin, *allowed_hosts;
    struct MHD_Daemon *daemon;
    struct sockaddr_storage addr;
    int port;
    _Atomic(const served_models *) served; /* NULL until http_attach */
    atomic_int a1111_model; /* the web UI's sd_model_checkpoint setting: an index of served */
    _Atomic(service *) svc;
    metrics *metrics;
    struct http_drain *drain; /* lingering close of refused uploads */
    struct http_conns *conns; /* header deadline (http_conns.h); NULL = none */
    atomic_ullong next_id; /* request ids (log lines, registry tokens) */

    pthread_t watcher;
    bool watcher_started;
    pthread_mutex_t watch_mu; /* guards watch_stop */
    pthread_cond_t watch_cond;
    bool watch_stop;
};

/* The served models, or NULL before http_attach (answer 503 then). */
static inline const served_models *http_served(http_server *s) {
    return atomic_load(&s->served);
}

typedef struct http_req {
    http_server *srv;
    struct MHD_Connection *conn;
    uint64_t id; /* "req 12" in logs; the listener's token */
    http_route route;
    const char *method; /* MHD's string, valid for the request */
    char path[96];      /* for the access log */
    uint64_t path_job;  /* the {id} of /jobs/{id}... */
    double t_start;
    int status; /* the status sent (0: none yet) */
    int fd;     /* the client socket, for the watcher's disconnect probe */
    const api_dialect *dialect; /* the API the route speaks: its request and error shapes */
    const char *subpath;        /* /sdapi/v1/<subpath> of the A1111 info and control routes */
    char caller[96];            /* who sent it (address + API key digest): A1111 progress */
    int linger_fd; /* a dup of fd for the drainer (answered before the body), or -1 */

    /* Body (MHD thread only). */
    char *body;
    size_t body_len, body_cap;
    bool too_large;

    /* Set by the MHD thread before the request is registered, then read-only. */
    req_mode mode;
    bool has_gen;
    request_gen gen;
    char *params_json; /* effective parameters (request_params_json) */
    bool has_job, subscribed, registered;
    uint64_t job_id;

    pthread_mutex_t mu; /* guards everything below */
    bool suspended;     /* MHD_suspend_connection done, resume not yet */
    bool final;         /* DONE or ERROR arrived; the result fields are then fixed */
    bool failed;
    char err_code[32];
    char err_msg[256];
    int n_images;
    uint8_t *png[CS_MAX_IMAGES_PER_JOB]; /* copies of the PNGs (owned) */
    size_t png_len[CS_MAX_IMAGES_PER_JOB];
    char *infotext[CS_MAX_IMAGES_PER_JOB]; /* each image's "parameters" text (owned; may be NULL) */
    uint64_t seeds[CS_MAX_IMAGES_PER_JOB];
    char *out; /* SSE bytes not yet handed to MHD: out[out_off..out_len) */
    size_t out_len, out_off, out_cap;
    bool final_sent;    /* the SSE done/error event is in out (or sent) */
    double last_write;  /* monotonic seconds: keep-alive timing */
    bool client_gone;   /* the watcher saw the socket closed */
    bool shutting_down; /* http_stop is closing everything */

    struct http_req *prev, *next; /* registry links, guarded by the registry lock */
} http_req;

double http_now(void);

/* http_response.c */
enum MHD_Result http_respond(http_req *r, int status, struct MHD_Response *resp);
/* Takes ownership of buf (malloc'd). */
enum MHD_Result http_respond_buf(http_req *r, int status, const char *content_type, char *buf,
                                 size_t len);
/* Takes ownership of obj. */
struct cJSON;
enum MHD_Result http_respond_json(http_req *r, int status, struct cJSON *obj);
enum MHD_Result http_respond_error(http_req *r, int status, const char *code, const char *field,
                                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Adds Access-Control-* headers when the request's Origin is allowed. */
void http_add_cors(http_req *r, struct MHD_Response *resp);
/* {"id":"7","images":[...],"seeds":[...],"parameters":{...}} of a finished request. */
char *http_result_json(http_req *r, size_t *len);

/* http_callers.c: the caller of a request (address + credentials digest) and its jobs. */
void http_caller_identify(http_req *r);
void http_caller_track(http_req *r); /* r->job_id becomes the caller's most recent job */
int http_caller_jobs(const http_req *r, uint64_t *out, int max); /* most recent first */
/* Whether the caller's last POST interrupt/skip was a skip (GET progress's state.skipped). */
void http_caller_set_skipped(const http_req *r, bool skipped);
bool http_caller_skipped(const http_req *r);

/* http_a1111.c: GET/POST /sdapi/v1/<info> and POST /sdapi/v1/<control>. */
enum MHD_Result http_a1111_route(http_req *r);

/* http_form.c: the request's multipart/form-data body split into parts (f->parts owned;
 * free with http_form_free, also after a failure). */
bool http_form_parse(http_req *r, api_form *f, char *why, size_t why_size);
void http_form_free(api_form *f);
bool http_form_content_type(http_req *r); /* Content-Type: multipart/form-data */

/* http_openai.c: GET /v1/images/files/{id}/{index}.png, and the URL base of answers. */
enum MHD_Result http_openai_file(http_req *r);
bool http_openai_file_path(const char *rest); /* "/<index>.png" */
void http_base_url(http_req *r, char *out, size_t n);

/* http_page.c: GET /, /web/app.js, /web/app.css (the page compiled into the binary). */
bool http_page_path(const char *url);
enum MHD_Result http_page(http_req *r);

/* http_routes.c */
enum MHD_Result http_route_simple(http_req *r);

/* http_generate.c */
enum MHD_Result http_generate(http_req *r);

/* http_stream.c */
void registry_add(http_req *r);
void registry_remove(http_req *r);
/* Waits up to ms for the registry to empty; returns the number still live. */
int registry_wait_empty(int ms);
/* Marks every live request shutting down and resumes the suspended ones. */
void registry_shutdown_all(void);
void http_listener(const service_event *ev, void *user);
/* Queues the SSE response (MHD thread, inside the access handler). */
enum MHD_Result http_start_stream(http_req *r);
/* Suspends r's connection (MHD thread, inside a handler or content reader, r->mu held);
 * false when the request is being closed instead (client gone, server stopping). */
bool http_suspend_locked(http_req *r);
cs_status http_watcher_start(http_server *s, char *msg, size_t n);
void http_watcher_stop(http_server *s);

#endif
