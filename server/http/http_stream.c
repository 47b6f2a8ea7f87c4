/*
 * Requests that wait for a job: the registry, the service listener, Server-Sent Events
 * and the watcher thread.
 *
 * DESIGN. A request waiting for its job is suspended in MHD (no thread is held). The
 * service calls http_listener on its loop thread with the request's id as the token; the
 * listener finds the request in the registry, copies the event into it under the
 * request's mutex and resumes the connection. Looking requests up by token (not by
 * pointer) means a late event for a request that has already completed finds nothing,
 * whatever the order of cancel, unsubscribe and completion.
 *
 * MHD does not watch suspended sockets, so a client that hangs up would go unnoticed
 * until its result is ready. The watcher thread probes each suspended request's socket
 * every WATCH_MS (a zero-byte peek means the peer closed) and resumes the request so
 * MHD closes it; the completion callback then cancels the job. The same thread writes
 * keep-alive comments into idle event streams.
 *
 * Resuming: only the thread that flips `suspended` from true to false calls
 * MHD_resume_connection, after dropping the locks (MHD takes its own); while the flag is
 * cleared but the call not yet made, the connection is still suspended in MHD and cannot
 * complete, so the request stays valid. `resuming` counts those calls in flight.
 *
 * Locks: registry lock, then a request's mu. Never held while calling the service.
 */
#include "http_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "log.h"

enum { WATCH_MS = 200, WATCH_BATCH = 64 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* signalled when a request leaves or a resume ends */
    http_req *head;         /* live requests, newest first */
    int count;
    int resuming; /* MHD_resume_connection calls in flight */
} reg = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0};

void registry_add(http_req *r) {
    pthread_mutex_lock(&reg.mu);
    r->prev = NULL;
    r->next = reg.head;
    if (reg.head) reg.head->prev = r;
    reg.head = r;
    reg.count++;
    r->registered = true;
    pthread_mutex_unlock(&reg.mu);
}

void registry_remove(http_req *r) {
    pthread_mutex_lock(&reg.mu);
    if (r->registered) {
        if (r->prev)
            r->prev->next = r->next;
        else
            reg.head = r->next;
        if (r->next) r->next->prev = r->prev;
        reg.count--;
        r->registered = false;
        pthread_cond_broadcast(&reg.changed);
    }
    pthread_mutex_unlock(&reg.mu);
}

static http_req *registry_find(uint64_t token) {
    for (http_req *r = reg.head; r; r = r->next)
        if (r->id == token) return r;
    return NULL;
}

static void deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int registry_wait_empty(int ms) {
    struct timespec until;
    deadline_in(&until, ms);
    pthread_mutex_lock(&reg.mu);
    while (reg.count > 0 && pthread_cond_timedwait(&reg.changed, &reg.mu, &until) != ETIMEDOUT) {
    }
    int left = reg.count;
    pthread_mutex_unlock(&reg.mu);
    return left;
}

/* Resumes the connections collected by a caller that cleared their `suspended` flags. */
static void resume_all(struct MHD_Connection **conns, int n) {
    for (int i = 0; i < n; i++)
        MHD_resume_connection(conns[i]);
    if (!n) return;
    pthread_mutex_lock(&reg.mu);
    reg.resuming -= n;
    pthread_cond_broadcast(&reg.changed);
    pthread_mutex_unlock(&reg.mu);
}

/* Caller holds reg.mu and r->mu: takes r out of suspension for the caller to resume. */
static bool take_suspended(http_req *r) {
    if (!r->suspended) return false;
    r->suspended = false;
    reg.resuming++;
    return true;
}

void registry_shutdown_all(void) {
    for (;;) {
        struct MHD_Connection *conns[WATCH_BATCH];
        int n = 0;
        pthread_mutex_lock(&reg.mu);
        for (http_req *r = reg.head; r && n < WATCH_BATCH; r = r->next) {
            pthread_mutex_lock(&r->mu);
            r->shutting_down = true;
            if (take_suspended(r)) conns[n++] = r->conn;
            pthread_mutex_unlock(&r->mu);
        }
        pthread_mutex_unlock(&reg.mu);
        resume_all(conns, n);
        if (n < WATCH_BATCH) break;
    }
    pthread_mutex_lock(&reg.mu);
    while (reg.resuming > 0)
        pthread_cond_wait(&reg.changed, &reg.mu);
    pthread_mutex_unlock(&reg.mu);
}

/* Appends bytes to the request's SSE buffer (r->mu held). Dropped when memory is short:
 * a lost progress event is harmless, and the final event is retried by the reader. */
static bool out_append(http_req *r, const char *s, size_t n) {
    if (r->out_len + n > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 1024;
        while (cap < r->out_len + n)
            cap *= 2;
        char *b = realloc(r->out, cap);
        if (!b) return false;
        r->out = b;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, s, n);
    r->out_len += n;
    return true;
}

/* "event: preview" with the PNG in base64 (r->mu held); dropped when memory is short. */
static void append_preview(http_req *r, const service_event *ev) {
    char id[JOB_ID_TEXT_SIZE];
    job_id_format(ev->job_id, id);
    char *b64 = base64_encode(ev->preview_png, ev->preview_len);
    const size_t cap = (b64 ? strlen(b64) : 0) + 160;
    char *text = b64 ? malloc(cap) : NULL;
    if (text) {
        const int n = snprintf(text, cap,
                               "event: preview\ndata: {\"id\":\"%s\",\"step\":%d,\"steps\":%d,"
                               "\"image\":\"%s\"}\n\n",
                               id, ev->step, ev->steps, b64);
        if (n > 0 && (size_t)n < cap) out_append(r, text, (size_t)n);
    }
    free(text);
    free(b64);
}

static void append_event(http_req *r, const service_event *ev) {
    char line[256], id[JOB_ID_TEXT_SIZE];
    int n = 0;
    job_id_format(ev->job_id, id);
    switch (ev->type) {
    case SERVICE_EV_QUEUED:
        n = snprintf(line, sizeof line,
                     "event: queued\ndata: {\"id\":\"%s\",\"position\":%d}\n\n", id,
                     ev->position);
        break;
    case SERVICE_EV_STARTED:
        n = snprintf(line, sizeof line, "event: started\ndata: {\"id\":\"%s\"}\n\n", id);
        break;
    case SERVICE_EV_PREVIEW:
        append_preview(r, ev);
        return;
    case SERVICE_EV_PROGRESS:
        n = snprintf(line, sizeof line,
                     "event: progress\ndata: {\"id\":\"%s\",\"step\":%d,\"steps\":%d,"
                     "\"elapsed_ms\":%.1f,\"eta_ms\":%.1f}\n\n",
                     id, ev->step, ev->steps, ev->elapsed_ms, ev->eta_ms);
        break;
    default:
        return;
    }
    if (n > 0 && (size_t)n < sizeof line) out_append(r, line, (size_t)n);
}

/* Copies the result of a DONE or ERROR event (r->mu held). */
static void store_final(http_req *r, const service_event *ev) {
    if (ev->type == SERVICE_EV_DONE) {
        int n = ev->num_images < CS_MAX_IMAGES_PER_JOB ? ev->num_images : CS_MAX_IMAGES_PER_JOB;
        for (int i = 0; i < n; i++) {
            r->png[i] = malloc(ev->images[i].png_len ? ev->images[i].png_len : 1);
            if (!r->png[i]) {
                r->failed = true;
                snprintf(r->err_code, sizeof r->err_code, "internal");
                snprintf(r->err_msg, sizeof r->err_msg, "out of memory copying the images");
                break;
            }
            memcpy(r->png[i], ev->images[i].png, ev->images[i].png_len);
            r->png_len[i] = ev->images[i].png_len;
            r->infotext[i] = strdup(ev->images[i].infotext ? ev->images[i].infotext : "");
            r->seeds[i] = ev->images[i].seed;
            r->n_images = i + 1;
        }
    } else {
        r->failed = true;
        snprintf(r->err_code, sizeof r->err_code, "%s",
                 ev->error_code ? ev->error_code : "internal");
        snprintf(r->err_msg, sizeof r->err_msg, "%s", ev->message ? ev->message : "job failed");
    }
    r->final = true;
}

void http_listener(const service_event *ev, void *user) {
    uint64_t token = (uint64_t)(uintptr_t)user;
    struct MHD_Connection *conn = NULL;
    pthread_mutex_lock(&reg.mu);
    http_req *r = registry_find(token);
    if (r) {
        pthread_mutex_lock(&r->mu);
        bool wake = false;
        if (!r->final) {
            if (ev->type == SERVICE_EV_DONE || ev->type == SERVICE_EV_ERROR) {
                store_final(r, ev);
                wake = true;
            } else if (r->mode == MODE_SSE) {
                append_event(r, ev);
                wake = true;
            }
        }
        if (wake && take_suspended(r)) conn = r->conn;
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_unlock(&reg.mu);
    if (conn) resume_all(&conn, 1);
}

bool http_suspend_locked(http_req *r) {
    if (r->shutting_down || r->client_gone) return false;
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    return true;
}

/* The final SSE event: "done" with the images, or "error". */
static char *final_event(http_req *r, size_t *len) {
    char *data = NULL;
    size_t n = 0;
    const char *name = "done";
    if (r->failed) {
        name = "error";
        char id[JOB_ID_TEXT_SIZE];
        job_id_format(r->job_id, id);
        cJSON *root = cJSON_CreateObject(), *err = cJSON_CreateObject();
        if (root && err && cJSON_AddStringToObject(root, "id", id) &&
            cJSON_AddItemToObject(root, "error", err)) {
            err = NULL;
            cJSON *e = cJSON_GetObjectItem(root, "error");
            cJSON_AddStringToObject(e, "code", r->err_code);
            cJSON_AddStringToObject(e, "message", r->err_msg);
            data = cJSON_PrintUnformatted(root);
        }
        cJSON_Delete(err);
        cJSON_Delete(root);
        if (data) n = strlen(data);
    } else {
        data = http_result_json(r, &n);
    }
    if (!data) return NULL;
    char *ev = malloc(n + 32);
    if (ev) *len = (size_t)sprintf(ev, "event: %s\ndata: %s\n\n", name, data);
    free(data);
    return ev;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    http_req *r = cls;
    pthread_mutex_lock(&r->mu);
    if (r->out_off == r->out_len && r->final && !r->final_sent) {
        /* The result fields are fixed once final is set: encode without the lock, so the
         * listener is not kept waiting on base64 work. */
        pthread_mutex_unlock(&r->mu);
        size_t len = 0;
        char *ev = final_event(r, &len);
        pthread_mutex_lock(&r->mu);
        if (ev && out_append(r, ev, len)) r->final_sent = true;
        free(ev);
        if (!r->final_sent) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    if (r->out_off < r->out_len) {
        size_t n = r->out_len - r->out_off < max ? r->out_len - r->out_off : max;
        memcpy(buf, r->out + r->out_off, n);
        r->out_off += n;
        if (r->out_off == r->out_len) r->out_off = r->out_len = 0;
        r->last_write = http_now();
        pthread_mutex_unlock(&r->mu);
        return (ssize_t)n;
    }
    ssize_t ret = 0;
    if (r->final_sent)
        ret = MHD_CONTENT_READER_END_OF_STREAM;
    else if (!http_suspend_locked(r))
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
    pthread_mutex_unlock(&r->mu);
    return ret;
}

enum MHD_Result http_start_stream(http_req *r) {
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, r, NULL);
    if (!resp) return MHD_NO;
    char id[JOB_ID_TEXT_SIZE];
    job_id_format(r->job_id, id);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* proxies: do not buffer */
    MHD_add_response_header(resp, "X-Job-Id", id);
    /* A first comment gets the headers on their way at once. */
    char hello[64];
    int n = snprintf(hello, sizeof hello, ": job %s\n\n", id);
    pthread_mutex_lock(&r->mu);
    out_append(r, hello, (size_t)n);
    r->last_write = http_now();
    pthread_mutex_unlock(&r->mu);
    return http_respond(r, 200, resp);
}

/* A zero-byte peek: the peer closed (0) or the socket failed. Pipelined bytes waiting to
 * be read mean the client is still there. */
static bool socket_closed(int fd) {
    if (fd < 0) return false;
    char c;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void watch_once(http_server *s) {
    struct MHD_Connection *conns[WATCH_BATCH];
    int n = 0;
    const double now = http_now(), keepalive = s->cfg.sse_keepalive_s;
    pthread_mutex_lock(&reg.mu);
    for (http_req *r = reg.head; r && n < WATCH_BATCH; r = r->next) {
        if (r->srv != s) continue;
        pthread_mutex_lock(&r->mu);
        if (r->suspended) {
            bool gone = socket_closed(r->fd);
            bool ping = !gone && r->mode == MODE_SSE && !r->final &&
                        now - r->last_write >= keepalive && out_append(r, ": keep-alive\n\n", 14);
            if (gone) r->client_gone = true;
            if ((gone || ping) && take_suspended(r)) conns[n++] = r->conn;
        }
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_unlock(&reg.mu);
    resume_all(conns, n);
}

static void *watch_main(void *arg) {
    http_server *s = arg;
    pthread_mutex_lock(&s->watch_mu);
    while (!s->watch_stop) {
        struct timespec until;
        deadline_in(&until, WATCH_MS);
        pthread_cond_timedwait(&s->watch_cond, &s->watch_mu, &until);
        if (s->watch_stop) break;
        pthread_mutex_unlock(&s->watch_mu);
        watch_once(s);
        pthread_mutex_lock(&s->watch_mu);
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

cs_status http_watcher_start(http_server *s, char *msg, size_t n) {
    s->watch_stop = false;
    int rc = pthread_create(&s->watcher, NULL, watch_main, s);
    if (rc != 0) {
        snprintf(msg, n, "cannot start the HTTP watcher thread: %s", strerror(rc));
        return CS_ERR_INTERNAL;
    }
    s->watcher_started = true;
    return CS_OK;
}

void http_watcher_stop(http_server *s) {
    if (!s->watcher_started) return;
    pthread_mutex_lock(&s->watch_mu);
    s->watch_stop = true;
    pthread_cond_signal(&s->watch_cond);
    pthread_mutex_unlock(&s->watch_mu);
    pthread_join(s->watcher, NULL);
    s->watcher_started = false;
}
