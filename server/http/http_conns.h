/*
 * Header deadline (slow-header / idle-connection storms). libmicrohttpd's connection
 * timeout counts inactivity, so a client that sends one header byte per second, or a crowd
 * of clients that connect and send nothing until the idle timeout, can hold every slot of
 * --max-connections and lock everyone else out. This module tracks each connection
 * (MHD_OPTION_NOTIFY_CONNECTION) and whether a request is in progress on it; a sweeper
 * thread shuts down (shutdown(2), never close: MHD owns the descriptor) connections whose
 * request headers are not complete `header_timeout` seconds after the connection opened,
 * or idle_timeout seconds after the previous request on it ended (keep-alive). MHD sees the
 * socket end and frees the slot. Connections inside a request (a body being uploaded, a
 * stream, a /generate waiting for its job) are never touched.
 *
 * Threads: MHD's thread calls the notify/request hooks; the sweeper runs on its own; one
 * mutex guards the list. A slot is removed (in MHD's CLOSED notification) before MHD
 * closes the descriptor, so the sweeper never shuts down a reused descriptor.
 */
#ifndef CS_HTTP_CONNS_H
#define CS_HTTP_CONNS_H

#include <microhttpd.h>

#include <cfgserve/cfgserve.h>

typedef struct http_conns http_conns;

/* header_timeout_s > 0; idle_timeout_s 0 = keep-alive waits are not bounded here. */
cs_status http_conns_start(int header_timeout_s, int idle_timeout_s, http_conns **out,
                           char *msg, size_t msg_size);
/* After MHD_stop_daemon (every connection closed); NULL-safe. */
void http_conns_stop(http_conns *c);
/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the http_conns. */
void http_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);
/* A request's headers are complete (first access-handler call) / the request ended. */
void http_conns_request_begin(http_conns *c, struct MHD_Connection *conn);
void http_conns_request_end(http_conns *c, struct MHD_Connection *conn);
/* Connections shut down by the deadline so far (for the log and tests). */
unsigned long http_conns_swept(http_conns *c);

#endif
