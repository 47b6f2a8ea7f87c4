/*
 * The doors of the HTTP server that are decided from headers alone: the API key (compared
 * in constant time), the Host header against the allowed names (DNS rebinding: a page on
 * evil.example whose name resolves to 127.0.0.1 reaches a loopback server with "Host:
 * evil.example"), and the Origin of state-changing browser requests against the CORS
 * allowlist (or the server's own origin).
 *
 * Threads: any; the lists are read-only after http_start.
 */
#ifndef CS_HTTP_GUARD_H
#define CS_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/* Whether `given` (NULL = no header) equals `key`, in time that depends on neither the
 * position of the first difference nor the length of `given`. */
bool guard_key_equal(const char *given, const char *key);

/* Whether an Authorization header value carries the key: "Bearer KEY", or HTTP Basic
 * credentials whose password is the key (any user name: A1111 clients that speak the web
 * UI's --api-auth send "Basic base64(user:password)"). Scheme names are case-insensitive;
 * the key is compared with guard_key_equal. NULL header: false. */
bool guard_authorization_ok(const char *header, const char *key);

/* The default allowed-hosts list for a bind address: "*" for a wildcard bind (0.0.0.0,
 * ::, "" — its names are unknowable), else "HOST,localhost,127.0.0.1,[::1]". Writes
 * into buf; returns buf. */
const char *guard_default_hosts(const char *bind_host, char *buf, size_t size);

/* Whether a Host header value ("name", "name:port", "[v6]:port") names an allowed host.
 * allowed: "*" or a comma-separated list of names (case-insensitive, ports ignored).
 * A missing header (HTTP/1.0) is allowed: it is not what a browser sends. */
bool guard_host_allowed(const char *host_header, const char *allowed);

/* Whether an Origin header may make a state-changing request: absent (not a browser),
 * the server's own origin (scheme://Host), or listed in cors (exact match, or "*"). */
bool guard_origin_allowed(const char *origin, const char *host_header, const char *cors);

/* Whether origin appears in the comma/space-separated list (exact, case-sensitive). */
bool guard_origin_listed(const char *origin, const char *list);

#endif
