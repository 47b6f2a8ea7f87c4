/*
 * events: building a job's service_event and calling its listeners.
 *
 * Loop thread only, holding listen_lock (see service_internal.h): that is what makes
 * calling a listener safe against a concurrent service_unsubscribe.
 */
#ifndef CS_SERVER_EVENTS_H
#define CS_SERVER_EVENTS_H

#include "job_table.h"

/* An event of r's current state: id, step/steps, elapsed since admission and, from the
 * first step on, an ETA from the rate so far. */
service_event events_make(const job_rec *r, service_event_type type);
/* Calls every listener attached to r; one that detaches meanwhile is skipped. */
void events_emit(job_rec *r, const service_event *ev);
/* The final event of a finished record (DONE with its PNGs, or ERROR), to one listener
 * (fn) or to all attached ones (fn NULL). */
void events_send_final(job_rec *r, service_listener fn, void *user);

#endif
