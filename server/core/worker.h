/*
 * worker: one inference thread with its own cs_session per served model, running the
 * tasks the loop hands it: create new jobs (prompt encoding, initial noise), run one
 * batched denoising step, decode finished jobs and encode their PNGs.
 *
 * DESIGN. Workers own nothing but their sessions. The loop thread fills a worker's task
 * while the worker is idle and hands it over under the worker's lock; the worker runs it
 * with no lock held and posts its embedded done message to the loop's results inbox (the
 * inbox lock orders every write the worker made before the loop reads them). The loop
 * never touches a task, or the job_work of a job in it, while the worker is busy. Task
 * arrays are allocated once at start, so a step allocates nothing here.
 *
 * Threads: worker_start / worker_stop on the owning (main or loop) thread; worker_hand
 * on the loop thread; the rest runs on the worker's own thread.
 */
#ifndef CS_SERVER_WORKER_H
#define CS_SERVER_WORKER_H

#include <cfgserve/cfgserve.h>

#include <pthread.h>
#include <stdbool.h>

#include "inbox.h"

struct job_rec;

/* The part of a job a worker reads and writes while the job is in its task. Between
 * tasks it belongs to the loop thread. */
typedef struct job_work {
    struct job_rec *rec;         /* the loop's record (workers never follow it) */
    const cs_gen_params *params; /* strings point into the record's own copies */
    int model;                   /* which session: fixed when the job is submitted */
    cs_job *job;                 /* NULL until created */
    cs_status status;            /* of this task's create or decode */
    char msg[256];               /* why, when status != CS_OK */
    int n_png;                   /* after a decode: PNGs made (malloc'd; the loop takes them) */
    uint8_t *png[CS_MAX_IMAGES_PER_JOB];
    size_t png_len[CS_MAX_IMAGES_PER_JOB];
    char *infotext[CS_MAX_IMAGES_PER_JOB]; /* each PNG's "parameters" text (malloc'd) */
    bool want_preview;                     /* step task: make a preview after the step */
    uint8_t *preview_png;                  /* then: its PNG (malloc'd; the loop takes it) */
    size_t preview_len;
} job_work;

/* One unit of work: any of the three parts may be empty. */
typedef struct worker_task {
    job_work **create; /* [max_jobs]: records whose cs_job to make */
    int n_create;
    job_work **decode; /* [max_jobs]: finished jobs, any sizes (grouped here) */
    int n_decode;
    job_work **step; /* [max_step]: one UNet batch, all of one model and image size */
    int n_step;
    cs_job **scratch; /* [max_jobs]: job pointers handed to cs_step / cs_decode */
    /* results of the step */
    cs_status step_status;
    char step_msg[256];
    double step_seconds;
} worker_task;

typedef struct worker {
    int index;
    cs_session **sessions; /* [n_sessions], one per model: the worker thread's once started */
    int n_sessions;
    pthread_t thread;
    pthread_mutex_t lock; /* guards pending, quit */
    pthread_cond_t cond;
    worker_task *pending; /* handed over, not yet taken */
    bool quit;
    worker_task task; /* the loop fills it while !busy; the worker runs it while busy */
    inbox_msg done;   /* posted to *results after each task */
    inbox *results;
    bool busy;    /* loop thread only: a task is handed and its done not handled */
    bool started; /* the thread exists */
} worker;

/* Plans a session for each of the n models (sp[i]: max_images images per batch up to
 * max_width x max_height), sizes the task arrays (max_jobs jobs per create/decode list)
 * and starts the thread. On failure everything is released (worker_stop is still safe to
 * call). */
cs_status worker_start(worker *w, int index, const cs_model *const *models,
                       const cs_session_params *sp, int n, int max_jobs, inbox *results,
                       char *msg, size_t msg_size);
/* Hands w->task to the worker thread; the loop sets busy. */
void worker_hand(worker *w);
/* Asks the thread to finish, joins it, and frees the sessions and arrays. */
void worker_stop(worker *w);
/* The worker that posted done message m. */
worker *worker_of_done(inbox_msg *m);

#endif
