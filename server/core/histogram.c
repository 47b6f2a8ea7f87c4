/*
 * histogram: bucket search and the service's bucket bounds (see histogram.h). No state;
 * callers lock.
 */
#include "histogram.h"

void histogram_observe(const double *bounds, int n, uint64_t *counts, double *sum, double v) {
    int b = 0;
    while (b < n && v > bounds[b])
        b++; /* Prometheus buckets are "less than or equal" */
    counts[b]++;
    *sum += v;
}

static int copy_bounds(const double *src, int n, double *out, int max) {
    int k = n < max ? n : max;
    for (int i = 0; i < k; i++)
        out[i] = src[i];
    return k;
}

int histogram_batch_bounds(double *out, int max) {
    static const double k_bounds[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
    return copy_bounds(k_bounds, (int)(sizeof k_bounds / sizeof k_bounds[0]), out, max);
}

int histogram_step_bounds(double *out, int max) {
    /* From a tiny model's milliseconds to a large batch of big images on a CPU. */
    static const double k_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    return copy_bounds(k_bounds, (int)(sizeof k_bounds / sizeof k_bounds[0]), out, max);
}
