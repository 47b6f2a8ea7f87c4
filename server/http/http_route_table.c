/*
 * The route table's data (metric labels, Allow headers) and the clock, shared by the
 * http_*.c files. They live here, below http.c, so the files http.c drives never call
 * back up into it.
 */
#include "http_internal.h"

#include <time.h>

const char *const http_route_names[ROUTE_COUNT] = {
    "/generate", "/jobs",  "/jobs/{id}", "/jobs/{id}/events", "/jobs/{id}/image",
    "/health",   "/ready", "/metrics",   "/v1/models",        "/sdapi/v1/txt2img",
    "/sdapi/v1/img2img", "/sdapi/v1/{info}", "/sdapi/v1/{control}", "/v1/images/generations",
    "/v1/images/edits", "/v1/images/files/{id}", "/", "other"};

/* Methods each route answers (GET routes answer HEAD too). */
const char *const http_route_allow[ROUTE_COUNT] = {"POST, OPTIONS",
                                                   "POST, OPTIONS",
                                                   "GET, HEAD, DELETE, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   "POST, OPTIONS",
                                                   "POST, OPTIONS",
                                                   "GET, HEAD, POST, OPTIONS",
                                                   "POST, OPTIONS",
                                                   "POST, OPTIONS",
                                                   "POST, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   "GET, HEAD, OPTIONS",
                                                   ""};

double http_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
