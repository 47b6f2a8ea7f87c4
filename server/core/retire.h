/*
 * retire: how a job leaves the service — its final state published, its final event sent,
 * its cs_job freed — and how finished jobs are then kept for GET /jobs/{id}: at most
 * max_finished of them, each for finished_ttl_ms, oldest evicted first.
 *
 * Loop thread only, holding listen_lock (see service_internal.h).
 */
#ifndef CS_SERVER_RETIRE_H
#define CS_SERVER_RETIRE_H

#include "service_internal.h"

/* The error code an engine failure is reported with. */
const char *retire_code_of(cs_status st);
/* Takes r (not in flight) out of the queue or the running set for good: frees its
 * cs_job, publishes state (DONE moves the worker's PNGs into the record), updates the
 * counters, sends the final event, detaches the listeners and retains the record. */
void retire_job(service *s, job_rec *r, service_job_state state, const char *code,
                const char *message);
/* Retires a job that was asked to stop (r->stop_reason), unless a worker holds it: then
 * the caller runs this again when its task returns — the next step boundary. */
void retire_if_stopped(service *s, job_rec *r);

#endif
