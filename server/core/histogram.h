/*
 * histogram: fixed-bucket histograms in the layout service_stats exports (counts per
 * bucket, last bucket +Inf, plus the sum), and the bucket bounds the service uses.
 *
 * Plain functions on caller-owned arrays; the caller provides the locking.
 */
#ifndef CS_SERVER_HISTOGRAM_H
#define CS_SERVER_HISTOGRAM_H

#include <stdint.h>

/* Adds one observation v: counts has n + 1 slots, bounds n ascending upper bounds. */
void histogram_observe(const double *bounds, int n, uint64_t *counts, double *sum, double v);

/* Bucket bounds: UNet batch size in images, and seconds per UNet batch. Each writes at
 * most max values and returns how many it wrote. */
int histogram_batch_bounds(double *out, int max);
int histogram_step_bounds(double *out, int max);

#endif
