/*
 * Prometheus metrics (see metrics.h). Request counters live here; everything about jobs
 * comes from a service_stats snapshot taken by the caller at scrape time.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The statuses this server sends; anything else is counted as "other". */
static const int STATUSES[] = {200, 202, 204, 400, 401, 404, 405, 409,
                               410, 413, 415, 429, 500, 503, 504};
enum { N_STATUS = (int)(sizeof STATUSES / sizeof STATUSES[0]) + 1 };

struct metrics {
    const char *const *routes;
    int n_routes;
    atomic_ullong count[METRICS_MAX_ROUTES][N_STATUS];
};

metrics *metrics_new(const char *const *route_names, int n_routes) {
    if (n_routes < 1 || n_routes > METRICS_MAX_ROUTES) return NULL;
    metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->routes = route_names;
    m->n_routes = n_routes;
    for (int r = 0; r < n_routes; r++)
        for (int s = 0; s < N_STATUS; s++)
            atomic_init(&m->count[r][s], 0);
    return m;
}

void metrics_free(metrics *m) {
    free(m);
}

void metrics_count(metrics *m, int route, int status) {
    if (!m || route < 0 || route >= m->n_routes) return;
    int s = 0;
    while (s < N_STATUS - 1 && STATUSES[s] != status)
        s++;
    atomic_fetch_add_explicit(&m->count[route][s], 1, memory_order_relaxed);
}

/* A growing text buffer; on allocation failure it stops growing and render fails. */
typedef struct text {
    char *buf;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static void header(text *t, const char *name, const char *type, const char *help) {
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram from per-bucket counts (the last is +Inf), in cumulative form. */
/* A metric with one unlabelled value: its header and its line. */
static void single(text *t, const char *name, const char *type, const char *help,
                   unsigned long long value) {
    header(t, name, type, help);
    put(t, "%s %llu\n", name, value);
}

static void histogram(text *t, const char *name, const char *help, const double *bounds,
                      int n_bounds, const uint64_t *counts, double sum) {
    header(t, name, "histogram", help);
    if (n_bounds < 0) n_bounds = 0;
    if (n_bounds > SERVICE_HIST_BUCKETS) n_bounds = SERVICE_HIST_BUCKETS;
    unsigned long long cum = 0;
    for (int i = 0; i < n_bounds; i++) {
        cum += counts[i];
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], cum);
    }
    cum += counts[n_bounds];
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name, cum, name, sum, name,
        cum);
}

/* Finished jobs kept for GET /jobs/{id} and what they hold: the part of the heap that
 * grows with traffic, bounded by --max-finished and --max-finished-mb. */
static void retention(text *t, const service_stats *st) {
    single(t, "cfgserve_finished_jobs_retained", "gauge",
           "Finished jobs kept for GET /jobs/{id} and result URLs.",
           (unsigned long long)st->retained);
    single(t, "cfgserve_finished_jobs_retained_bytes", "gauge",
           "Heap bytes of the kept finished jobs (PNGs, texts, records).",
           (unsigned long long)st->retained_bytes);
    header(t, "cfgserve_finished_jobs_dropped_total", "counter",
           "Finished jobs no longer kept, by reason.");
    static const char *const REASONS[SERVICE_DROP_REASONS] = {NULL, "expired", "count", "bytes",
                                                              "too_large"};
    for (int i = 1; i < SERVICE_DROP_REASONS; i++)
        put(t, "cfgserve_finished_jobs_dropped_total{reason=\"%s\"} %llu\n", REASONS[i],
            (unsigned long long)st->dropped[i]);
}

static void memory(text *t, const memstats *mem) {
    single(t, "process_resident_memory_bytes", "gauge",
           "Resident memory size in bytes (VmRSS).",
           (unsigned long long)mem->rss_bytes);
    if (!mem->have_malloc) return;
    single(t, "cfgserve_malloc_heap_bytes", "gauge",
           "Bytes the allocator took from the system for its arenas (mallinfo2 arena).",
           (unsigned long long)mem->heap_bytes);
    single(t, "cfgserve_malloc_in_use_bytes", "gauge",
           "Bytes in live allocations, mmapped ones included (uordblks + hblkhd).",
           (unsigned long long)mem->in_use_bytes);
    single(t, "cfgserve_malloc_free_bytes", "gauge",
           "Free bytes held inside the allocator's arenas (fordblks).",
           (unsigned long long)mem->free_bytes);
    single(t, "cfgserve_malloc_mmapped_bytes", "gauge",
           "Bytes in allocations served by their own mmap (hblkhd).",
           (unsigned long long)mem->mmapped_bytes);
}

char *metrics_render(metrics *m, const service_stats *st, const memstats *mem, int ready,
                     size_t *len) {
    text t = {malloc(8192), 0, 8192, 0};
    if (!t.buf) return NULL;
    header(&t, "cfgserve_http_requests_total", "counter",
           "HTTP requests answered, by route and status.");
    for (int r = 0; r < m->n_routes; r++)
        for (int s = 0; s < N_STATUS; s++) {
            unsigned long long c = atomic_load_explicit(&m->count[r][s], memory_order_relaxed);
            if (!c) continue;
            char status[16];
            if (s < N_STATUS - 1)
                snprintf(status, sizeof status, "%d", STATUSES[s]);
            else
                snprintf(status, sizeof status, "other");
            put(&t, "cfgserve_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n", m->routes[r],
                status, c);
        }
    single(&t, "cfgserve_ready", "gauge",
           "1 when the model is loaded and the server is not draining.",
           (unsigned long long)ready ? 1 : 0);
    if (st) {
        single(&t, "cfgserve_queue_depth", "gauge",
               "Jobs admitted and waiting to start.",
               (unsigned long long)st->queued);
        single(&t, "cfgserve_jobs_running", "gauge",
               "Jobs being denoised now.",
               (unsigned long long)st->running);
        single(&t, "cfgserve_jobs_submitted_total", "counter",
               "Jobs admitted.",
               (unsigned long long)st->submitted);
        header(&t, "cfgserve_jobs_finished_total", "counter", "Jobs finished, by outcome.");
        put(&t,
            "cfgserve_jobs_finished_total{outcome=\"completed\"} %llu\n"
            "cfgserve_jobs_finished_total{outcome=\"failed\"} %llu\n"
            "cfgserve_jobs_finished_total{outcome=\"cancelled\"} %llu\n"
            "cfgserve_jobs_finished_total{outcome=\"timed_out\"} %llu\n",
            (unsigned long long)st->completed, (unsigned long long)st->failed,
            (unsigned long long)st->cancelled, (unsigned long long)st->timed_out);
        header(&t, "cfgserve_rejections_total", "counter",
               "Jobs refused at submission, by reason.");
        put(&t,
            "cfgserve_rejections_total{reason=\"queue_full\"} %llu\n"
            "cfgserve_rejections_total{reason=\"draining\"} %llu\n"
            "cfgserve_rejections_total{reason=\"invalid\"} %llu\n",
            (unsigned long long)st->rejected_full, (unsigned long long)st->rejected_draining,
            (unsigned long long)st->rejected_invalid);
        single(&t, "cfgserve_images_generated_total", "counter",
               "Images decoded and encoded.",
               (unsigned long long)st->images_generated);
        header(&t, "cfgserve_model_images_total", "counter", "Images generated, by model.");
        for (int i = 0; i < st->n_models; i++)
            put(&t, "cfgserve_model_images_total{model=\"%s\"} %llu\n", st->model_names[i],
                (unsigned long long)st->images_by_model[i]);
        single(&t, "cfgserve_unet_batches_total", "counter",
               "Batched denoising steps run.",
               (unsigned long long)st->steps_run);
        histogram(&t, "cfgserve_batch_size_images", "Images per batched denoising step.",
                  st->batch_bounds, st->n_batch_bounds, st->batch_counts, st->batch_sum);
        histogram(&t, "cfgserve_step_seconds", "Duration of one batched denoising step.",
                  st->step_bounds, st->n_step_bounds, st->step_counts, st->step_sum);
        retention(&t, st);
    }
    if (mem) memory(&t, mem);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}
