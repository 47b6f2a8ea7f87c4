/* Lingering close for refused uploads (see http_drain.h). */
#define _GNU_SOURCE /* pipe2 */
#include "http_drain.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { WAKE_POLL_MS = 200 };

typedef struct drain_sock {
    int fd;
    char *out; /* still to be written, then the half-close */
    size_t out_len, out_off;
    uint64_t discarded;
    double deadline;
} drain_sock;

struct http_drain {
    http_drain_limits lim;
    pthread_t thread;
    int wake[2]; /* self-pipe: new sockets or stop */
    pthread_mutex_t mu; /* guards everything below */
    drain_sock *socks;
    int count;
    bool stop;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sock_close(drain_sock *s) {
    close(s->fd);
    free(s->out);
}

/* Writes what is owed; true once all is out (then the write side is shut). */
static bool flush_out(drain_sock *s) {
    while (s->out_off < s->out_len) {
        ssize_t k = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
        if (k <= 0) {
            s->out_off = s->out_len; /* the client is gone: nothing more to owe */
            break;
        }
        s->out_off += (size_t)k;
    }
    if (s->out) {
        free(s->out);
        s->out = NULL;
        shutdown(s->fd, SHUT_WR);
    }
    return true;
}

/* Reads and drops what the client sends; false when the socket is finished with. */
static bool discard_input(http_drain *d, drain_sock *s) {
    char buf[65536];
    for (;;) {
        ssize_t k = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0) {
            s->discarded += (uint64_t)k;
            if (s->discarded > d->lim.max_bytes) return false;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
        return false; /* EOF or error */
    }
}

static void *drain_main(void *arg) {
    http_drain *d = arg;
    struct pollfd *pf = NULL;
    int pf_cap = 0;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        if (d->stop) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        int n = d->count;
        if (n + 1 > pf_cap) {
            struct pollfd *p = realloc(pf, (size_t)(n + 1) * sizeof *p);
            if (p) {
                pf = p;
                pf_cap = n + 1;
            } else {
                n = pf_cap - 1; /* poll the ones that fit; the rest wait their turn */
            }
        }
        pf[0] = (struct pollfd){.fd = d->wake[0], .events = POLLIN};
        for (int i = 0; i < n; i++)
            pf[i + 1] = (struct pollfd){.fd = d->socks[i].fd,
                                        .events = (short)(POLLIN | (d->socks[i].out ? POLLOUT : 0))};
        pthread_mutex_unlock(&d->mu);

        poll(pf, (nfds_t)(n + 1), WAKE_POLL_MS);
        if (pf[0].revents & POLLIN) {
            char tmp[64];
            while (read(d->wake[0], tmp, sizeof tmp) > 0) {
            }
        }
        /* Sockets are only appended while the thread polls, so index i still names the
         * socket pf[i + 1] was built from. */
        pthread_mutex_lock(&d->mu);
        double t = now_s();
        int keep = 0;
        for (int i = 0; i < d->count; i++) {
            drain_sock *s = &d->socks[i];
            bool alive = t < s->deadline;
            if (alive && i < n && pf[i + 1].revents) {
                if (s->out) flush_out(s);
                alive = discard_input(d, s);
            }
            if (alive)
                d->socks[keep++] = *s;
            else
                sock_close(s);
        }
        d->count = keep;
        pthread_mutex_unlock(&d->mu);
    }
    free(pf);
    return NULL;
}

cs_status http_drain_start(const http_drain_limits *lim, http_drain **out, char *msg, size_t n) {
    *out = NULL;
    http_drain *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(msg, n, "out of memory");
        return CS_ERR_NOMEM;
    }
    d->lim = *lim;
    d->socks = calloc((size_t)lim->max_sockets, sizeof *d->socks);
    if (!d->socks || pipe2(d->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(d->socks);
        free(d);
        snprintf(msg, n, "cannot start the upload drainer: %s", strerror(errno));
        return CS_ERR_IO;
    }
    pthread_mutex_init(&d->mu, NULL);
    if (pthread_create(&d->thread, NULL, drain_main, d) != 0) {
        close(d->wake[0]);
        close(d->wake[1]);
        pthread_mutex_destroy(&d->mu);
        free(d->socks);
        free(d);
        snprintf(msg, n, "cannot start the upload drainer thread");
        return CS_ERR_IO;
    }
    *out = d;
    return CS_OK;
}

void http_drain_add(http_drain *d, int fd, const char *out, size_t out_len) {
    if (fd < 0) return;
    drain_sock s = {.fd = fd, .deadline = now_s() + d->lim.max_seconds};
    /* An empty `out` still marks the half-close as owed. */
    s.out = malloc(out_len ? out_len : 1);
    if (!s.out) {
        close(fd);
        return;
    }
    if (out_len) memcpy(s.out, out, out_len);
    s.out_len = out_len;
    pthread_mutex_lock(&d->mu);
    bool taken = !d->stop && d->count < d->lim.max_sockets;
    if (taken) d->socks[d->count++] = s;
    pthread_mutex_unlock(&d->mu);
    if (!taken) {
        sock_close(&s);
        return;
    }
    ssize_t w = write(d->wake[1], "x", 1);
    (void)w; /* a full pipe already means "wake up" */
}

int http_drain_active(http_drain *d) {
    pthread_mutex_lock(&d->mu);
    int n = d->count;
    pthread_mutex_unlock(&d->mu);
    return n;
}

void http_drain_stop(http_drain *d) {
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_mutex_unlock(&d->mu);
    ssize_t w = write(d->wake[1], "x", 1);
    (void)w;
    pthread_join(d->thread, NULL);
    for (int i = 0; i < d->count; i++) sock_close(&d->socks[i]);
    close(d->wake[0]);
    close(d->wake[1]);
    pthread_mutex_destroy(&d->mu);
    free(d->socks);
    free(d);
}
