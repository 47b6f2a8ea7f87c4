/*
 * service_internal: the service struct shared by service.c (the thread-safe entry points,
 * start-up and shutdown) and batcher.c (everything that runs on the loop thread).
 *
 * Locks, in the order they may be taken (never the reverse):
 *   listen_lock -> lock -> an inbox's lock.  A worker's lock is a leaf.
 * listen_lock guards every record's listener array. The loop thread holds it for the
 * whole of each of its callbacks, so while any other thread holds it no listener is
 * running and no record is freed: that is what lets service_unsubscribe promise that a
 * detached listener is never called again.
 * lock (the service lock) guards the job map, the records' published fields, the
 * counters and the stats below.
 */
#ifndef CS_SERVER_SERVICE_INTERNAL_H
#define CS_SERVER_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "inbox.h"
#include "job_gone.h"
#include "job_table.h"
#include "service.h"
#include "worker.h"

/* Programmer errors only (the server cannot include the engine's CS_ASSERT). */
#define SVC_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum service_msg_kind { MSG_SUBMIT, MSG_CANCEL, MSG_SUBSCRIBE, MSG_DRAIN, MSG_FINISH };

/* A cancel or subscribe request on its way to the loop (malloc'd by the sender, freed by
 * the loop). Submissions travel in their record's submit_msg, the drain in drain_msg. */
typedef struct service_msg {
    inbox_msg m;
    uint64_t job_id;
    service_listener fn; /* SUBSCRIBE */
    void *user;
} service_msg;

struct service {
    const cs_model *models[SERVICE_MAX_MODELS];
    int n_models;
    int max_width[SERVICE_MAX_MODELS], max_height[SERVICE_MAX_MODELS]; /* per model */
    service_params p;
    int cap_images; /* images started and not finished, at most: workers x batch */

    /* The loop and its handles: set up by service_new, run by service_run's thread. */
    uv_loop_t loop;
    inbox requests; /* any thread -> loop: submit, cancel, subscribe, drain */
    inbox results;  /* workers -> loop: a task is done */
    uv_timer_t timeout_timer, ttl_timer;
    uv_signal_t sig_int, sig_term, sig_hup;
    int n_workers;
    worker *workers;
    inbox_msg drain_msg; /* pushed once, by whoever starts the drain */

    pthread_mutex_t listen_lock;
    bool listen_held; /* loop thread only: it holds listen_lock now */

    pthread_mutex_t lock; /* the service lock: every field down to `draining` */
    job_table table;
    int queued;  /* admitted, not started (including not yet seen by the loop) */
    int running; /* started, not finished */
    int active;  /* queued + running: the drain waits for 0 */
    uint64_t id_seq, id_key;
    service_stats stats;  /* counters and histograms; queued/running filled on read;
                             retained and retained_bytes kept up to date by retire.c */
    job_gone gone;        /* ids whose results were dropped, and why (410 answers) */
    atomic_bool draining; /* written under lock; read lock-free by service_draining */

    /* loop thread only */
    dlink queue;         /* QUEUED records, oldest first */
    dlink running_list;  /* RUNNING records, in start order */
    dlink active_list;   /* queued + running, in admission order: timeout deadlines */
    dlink finished_list; /* retained finished records, oldest first: eviction order */
    int queue_len;       /* records on `queue` */
    int running_images;  /* images of the records on running_list */
    int n_finished;      /* records on finished_list */
    uint64_t batch_seq;
    bool closing; /* the drain has completed and handles are closing */
};

/* Every loop callback runs between these: the loop holds listen_lock throughout. */
static inline void loop_enter(service *s) {
    pthread_mutex_lock(&s->listen_lock);
    s->listen_held = true;
}
static inline void loop_leave(service *s) {
    s->listen_held = false;
    pthread_mutex_unlock(&s->listen_lock);
}

/* The service whose loop runs on this thread (NULL elsewhere). */
extern _Thread_local service *service_tls_loop;

/* Publishes the drain under the service lock; true when this call started it. Here, not
 * in service.c, so the batcher (which service.c drives) never calls back up into it. */
static inline bool service_set_draining(service *s) {
    pthread_mutex_lock(&s->lock);
    const bool first = !atomic_load(&s->draining);
    atomic_store(&s->draining, true);
    pthread_mutex_unlock(&s->lock);
    return first;
}

#endif
