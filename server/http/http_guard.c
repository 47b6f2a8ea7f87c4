/* Header checks of the HTTP server (see http_guard.h). */
#define _GNU_SOURCE /* strncasecmp */
#include "http_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

bool guard_key_equal(const char *given, const char *key) {
    if (!given) given = "";
    const size_t n = strlen(key), g = strlen(given);
    /* Every byte of the key is compared whatever `given` is (bytes past its end compare
     * against 0), and the length difference is folded in at the end: no early exit. */
    unsigned char diff = (unsigned char)(n != g);
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = i < g ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(c ^ (unsigned char)key[i]);
    }
    return diff == 0;
}

bool guard_authorization_ok(const char *header, const char *key) {
    if (!header) return false;
    if (!strncasecmp(header, "Bearer ", 7)) return guard_key_equal(header + 7, key);
    if (strncasecmp(header, "Basic ", 6)) return false;
    const char *b64 = header + 6;
    while (*b64 == ' ')
        b64++;
    uint8_t *raw = NULL;
    size_t len = 0;
    char why[96];
    const size_t n = strlen(b64);
    if (n > 4096 || base64_decode(b64, n, &raw, &len, why, sizeof why)) return false;
    /* user:password, the password being everything after the first colon; a NUL inside
     * is refused (it would cut the compared string short). */
    const uint8_t *colon = memchr(raw, ':', len);
    bool ok = colon && !memchr(raw, 0, len);
    if (ok) {
        const size_t at = (size_t)(colon - raw) + 1;
        char *password = malloc(len - at + 1);
        ok = password != NULL;
        if (ok) {
            memcpy(password, raw + at, len - at);
            password[len - at] = 0;
            ok = guard_key_equal(password, key);
            free(password);
        }
    }
    free(raw);
    return ok;
}

const char *guard_default_hosts(const char *bind_host, char *buf, size_t size) {
    if (!bind_host || !bind_host[0] || !strcmp(bind_host, "0.0.0.0") || !strcmp(bind_host, "::") ||
        !strcmp(bind_host, "*")) {
        snprintf(buf, size, "*");
        return buf;
    }
    const bool v6 = strchr(bind_host, ':') != NULL;
    snprintf(buf, size, "%s%s%s,localhost,127.0.0.1,[::1]", v6 ? "[" : "", bind_host,
             v6 ? "]" : "");
    return buf;
}

/* The name part of a Host value: "[v6]" keeps its brackets, "name:port" loses the port. */
static size_t host_name_len(const char *h) {
    if (h[0] == '[') {
        const char *close = strchr(h, ']');
        return close ? (size_t)(close - h) + 1 : strlen(h);
    }
    return strcspn(h, ":");
}

bool guard_host_allowed(const char *host_header, const char *allowed) {
    if (!host_header) return true;
    if (!strcmp(allowed, "*")) return true;
    const size_t n = host_name_len(host_header);
    if (n == 0) return false;
    for (const char *p = allowed; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const size_t len = strcspn(p, ", ");
        const size_t name = len ? host_name_len(p) < len ? host_name_len(p) : len : 0;
        if (name == n && !strncasecmp(p, host_header, n)) return true;
        p += len;
    }
    return false;
}

bool guard_origin_listed(const char *origin, const char *list) {
    const size_t n = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const size_t len = strcspn(p, ", ");
        if (len && ((len == 1 && *p == '*') || (len == n && !strncmp(p, origin, n)))) return true;
        p += len;
    }
    return false;
}

bool guard_origin_allowed(const char *origin, const char *host_header, const char *cors) {
    if (!origin) return true;
    /* Same origin: the browser's page came from this very server. */
    if (host_header) {
        const char *rest = !strncasecmp(origin, "http://", 7)    ? origin + 7
                           : !strncasecmp(origin, "https://", 8) ? origin + 8
                                                                 : NULL;
        if (rest && !strcasecmp(rest, host_header)) return true;
    }
    return guard_origin_listed(origin, cors);
}
