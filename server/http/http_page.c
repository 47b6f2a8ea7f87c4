/*
 * The web page: GET / (index.html), /web/app.js and /web/app.css, compiled into the binary
 * (server/web/embed.cmake writes the arrays at build time). Served without the API key
 * (it holds no data; the page asks for the key and sends it with its API calls) and with a
 * Content-Security-Policy that lets it load and call only this server: no inline script,
 * no other origin, no framing.
 *
 * Threads: MHD's polling thread.
 */
#include "http_internal.h"

#include <string.h>

extern const unsigned char cs_web_index[], cs_web_app_js[], cs_web_app_css[];
extern const size_t cs_web_index_len, cs_web_app_js_len, cs_web_app_css_len;

static const char k_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
                            "form-action 'none'; frame-ancestors 'none'";

bool http_page_path(const char *url) {
    return !strcmp(url, "/") || !strcmp(url, "/web/app.js") || !strcmp(url, "/web/app.css");
}

enum MHD_Result http_page(http_req *r) {
    const unsigned char *data = cs_web_index;
    size_t len = cs_web_index_len;
    const char *type = "text/html; charset=utf-8";
    if (!strcmp(r->path, "/web/app.js")) {
        data = cs_web_app_js, len = cs_web_app_js_len, type = "text/javascript; charset=utf-8";
    } else if (!strcmp(r->path, "/web/app.css")) {
        data = cs_web_app_css, len = cs_web_app_css_len, type = "text/css; charset=utf-8";
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Content-Security-Policy", k_csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return http_respond(r, 200, resp);
}
