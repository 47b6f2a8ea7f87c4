/*
 * The batcher: the loop-thread callbacks that admit jobs, build each step's batch for an
 * idle worker, take the workers' results back and handle signals (batcher.c). service.c
 * registers them with the loop; the batcher only reads and changes the service's state
 * (service_internal.h) and retires jobs (retire.h): it never calls up into service.c.
 */
#ifndef CS_SERVER_BATCHER_H
#define CS_SERVER_BATCHER_H

#include "service_internal.h"

void batcher_on_requests(uv_async_t *h);
void batcher_on_results(uv_async_t *h);
void batcher_on_signal(uv_signal_t *h, int signum);
/* Called by service_run before the loop starts: handles a drain requested earlier. */
void batcher_start(service *s);

#endif
