/*
 * Lingering close for refused uploads. A server that answers early (413, 401, 415...)
 * while the client is still sending its body must not close the socket at once: the
 * kernel would reset the connection over the unread bytes and a client that sends its
 * whole body before reading (Python's http.client, requests, most SDKs) would see a
 * broken pipe instead of the answer. The drainer takes over a duplicate of the socket,
 * writes what is still owed to the client, half-closes it, then reads and discards until
 * the client closes — bounded in bytes and time, and in the number of sockets it keeps
 * (past that, the socket is closed at once, as before).
 *
 * Threads: one drainer thread of its own; http_drain_add may be called from any thread.
 */
#ifndef CS_HTTP_DRAIN_H
#define CS_HTTP_DRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <cfgserve/cfgserve.h>

typedef struct http_drain http_drain;

typedef struct http_drain_limits {
    uint64_t max_bytes; /* discarded per socket before it is closed anyway */
    double max_seconds; /* per socket, from http_drain_add */
    int max_sockets;    /* drained at once; more are closed at once */
} http_drain_limits;

cs_status http_drain_start(const http_drain_limits *lim, http_drain **out, char *msg, size_t n);
/* Takes ownership of fd (always: it is closed on every path). `out` (may be NULL) is
 * copied and written before the half-close. */
void http_drain_add(http_drain *d, int fd, const char *out, size_t out_len);
/* Sockets being drained now (for tests and metrics). */
int http_drain_active(http_drain *d);
/* Stops the thread and closes every socket (NULL-safe). */
void http_drain_stop(http_drain *d);

#endif
