/*
 * Prometheus metrics: the HTTP layer's request counters (by route and status) plus the
 * service's job, queue, batch, step and retention statistics and the process's memory
 * (memstats.h), rendered in the text exposition
 * format (version 0.0.4) for GET /metrics.
 *
 * Threads: metrics_count is lock-free (atomic counters) and may be called from any
 * thread; metrics_render reads the counters without stopping writers (each counter is
 * consistent on its own, as Prometheus expects).
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stddef.h>

#include "memstats.h"
#include "service.h"

enum { METRICS_MAX_ROUTES = 24 };

typedef struct metrics metrics;

/* route_names[0..n_routes) label the route index given to metrics_count. */
metrics *metrics_new(const char *const *route_names, int n_routes);
void metrics_free(metrics *m);

/* Counts one answered request. */
void metrics_count(metrics *m, int route, int status);

/* The exposition text, malloc'd (*len bytes, NUL-terminated). st may be NULL (the model
 * is still loading), mem too (no memory figures). ready is 1 when /ready would answer
 * 200. */
char *metrics_render(metrics *m, const service_stats *st, const memstats *mem, int ready,
                     size_t *len);

#endif
