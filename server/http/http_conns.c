/* Header deadline for connections (see http_conns.h). */
#include "http_conns.h"

#include "log.h"

#include <errno.h>
#include <string.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

typedef struct slot {
    struct slot *prev, *next;
    int fd;
    double since;     /* opened, or the end of its last request */
    int requests;     /* begun on this connection */
    bool in_request;
    bool shut;        /* already shut down by the sweeper */
} slot;

struct http_conns {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t sweeper;
    bool quit;
    slot head; /* circular list sentinel */
    int header_timeout, idle_timeout;
    unsigned long swept;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sweep(http_conns *c) {
    const double now = now_s();
    unsigned long n = 0;
    for (slot *s = c->head.next; s != &c->head; s = s->next) {
        if (s->in_request || s->shut) continue;
        const int limit = s->requests ? c->idle_timeout : c->header_timeout;
        if (limit <= 0 || now - s->since < limit) continue;
        shutdown(s->fd, SHUT_RDWR); /* MHD reads the end and closes it */
        s->shut = true;
        n++;
    }
    c->swept += n;
    if (n)
        log_msg(CS_LOG_DEBUG, "closed %lu connection(s) without a complete request in time", n);
}

static void *sweeper_main(void *arg) {
    http_conns *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->quit) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
        if (!c->quit) sweep(c);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

cs_status http_conns_start(int header_timeout_s, int idle_timeout_s, http_conns **out,
                           char *msg, size_t msg_size) {
    *out = NULL;
    http_conns *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(msg, msg_size, "out of memory");
        return CS_ERR_NOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->head.next = c->head.prev = &c->head;
    c->header_timeout = header_timeout_s;
    c->idle_timeout = idle_timeout_s;
    int rc = pthread_create(&c->sweeper, NULL, sweeper_main, c);
    if (rc != 0) {
        snprintf(msg, msg_size, "cannot start the connection sweeper: %s", strerror(rc));
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cond);
        free(c);
        return CS_ERR_IO;
    }
    *out = c;
    return CS_OK;
}

void http_conns_stop(http_conns *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->quit = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->sweeper, NULL);
    for (slot *s = c->head.next, *next; s != &c->head; s = next) { /* none after MHD stops */
        next = s->next;
        free(s);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c);
}

void http_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code) {
    http_conns *c = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        slot *s = ci ? calloc(1, sizeof *s) : NULL;
        *socket_context = s;
        if (!s) return; /* untracked: only MHD's own timeout applies */
        s->fd = ci->connect_fd;
        s->since = now_s();
        pthread_mutex_lock(&c->mu);
        s->next = &c->head;
        s->prev = c->head.prev;
        c->head.prev->next = s;
        c->head.prev = s;
        pthread_mutex_unlock(&c->mu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        slot *s = *socket_context;
        if (!s) return;
        pthread_mutex_lock(&c->mu);
        s->prev->next = s->next;
        s->next->prev = s->prev;
        pthread_mutex_unlock(&c->mu);
        free(s);
        *socket_context = NULL;
    }
}

static slot *slot_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http_conns_request_begin(http_conns *c, struct MHD_Connection *conn) {
    slot *s = c ? slot_of(conn) : NULL;
    if (!s) return;
    pthread_mutex_lock(&c->mu);
    s->in_request = true;
    s->requests++;
    pthread_mutex_unlock(&c->mu);
}

void http_conns_request_end(http_conns *c, struct MHD_Connection *conn) {
    slot *s = c ? slot_of(conn) : NULL;
    if (!s) return;
    pthread_mutex_lock(&c->mu);
    s->in_request = false;
    s->since = now_s();
    pthread_mutex_unlock(&c->mu);
}

unsigned long http_conns_swept(http_conns *c) {
    pthread_mutex_lock(&c->mu);
    unsigned long n = c->swept;
    pthread_mutex_unlock(&c->mu);
    return n;
}
