/*
 * worker: the inference threads (see worker.h for the design). Each thread waits for a
 * task, runs it on its own cs_session and posts a done message to the loop. Called from
 * the owning thread (start/stop), the loop thread (hand) and the worker thread itself.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "worker.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

worker *worker_of_done(inbox_msg *m) {
    return (worker *)((char *)m - offsetof(worker, done));
}

/* cs_job_new for each new record: prompt encoding runs here, never on the loop. */
static void run_creates(worker *w, worker_task *t) {
    for (int i = 0; i < t->n_create; i++) {
        job_work *jw = t->create[i];
        jw->status =
            cs_job_new(w->sessions[jw->model], jw->params, &jw->job, jw->msg, sizeof jw->msg);
    }
}

static void run_step(worker *w, worker_task *t) {
    for (int i = 0; i < t->n_step; i++)
        t->scratch[i] = t->step[i]->job;
    cs_session *session = w->sessions[t->step[0]->model]; /* one model per batch */
    const double t0 = now_seconds();
    t->step_status = cs_step(session, t->scratch, t->n_step, t->step_msg, sizeof t->step_msg);
    t->step_seconds = now_seconds() - t0;
    if (t->step_status != CS_OK) return;
    /* Previews after the step (not timed with it): a preview that fails is just skipped. */
    for (int i = 0; i < t->n_step; i++) {
        job_work *jw = t->step[i];
        char msg[160];
        if (jw->want_preview && !cs_job_error(jw->job) &&
            cs_job_preview_png(session, jw->job, 0, &jw->preview_png, &jw->preview_len, msg,
                               sizeof msg) != CS_OK)
            jw->preview_png = NULL;
    }
}

static void drop_pngs(job_work *jw) {
    for (int i = 0; i < jw->n_png; i++) {
        free(jw->png[i]);
        free(jw->infotext[i]);
        jw->infotext[i] = NULL;
    }
    jw->n_png = 0;
}

/* PNGs of every image of a decoded job; on failure none are kept. */
static void encode_pngs(job_work *jw) {
    const int n = cs_job_num_images(jw->job);
    for (int i = 0; i < n; i++) {
        jw->status = cs_job_png(jw->job, i, &jw->png[i], &jw->png_len[i], jw->msg, sizeof jw->msg);
        if (jw->status == CS_OK && !(jw->infotext[i] = cs_job_parameters_text(jw->job, i))) {
            free(jw->png[i]);
            jw->status = CS_ERR_NOMEM;
            snprintf(jw->msg, sizeof jw->msg, "out of memory");
        }
        if (jw->status != CS_OK) {
            drop_pngs(jw);
            return;
        }
        jw->n_png = i + 1;
    }
}

/* The order decodes are grouped in: model, then width, then height. */
static int decode_order(const job_work *a, const job_work *b) {
    if (a->model != b->model) return a->model < b->model ? -1 : 1;
    if (a->params->width != b->params->width) return a->params->width < b->params->width ? -1 : 1;
    return (a->params->height > b->params->height) - (a->params->height < b->params->height);
}

/* cs_decode needs one model and image size per call: group the list by both (the loop
 * does not care about its order), decode each group in batches, then encode the PNGs. */
static void run_decodes(worker *w, worker_task *t) {
    job_work **d = t->decode;
    for (int i = 1; i < t->n_decode; i++) { /* insertion sort: a short list */
        job_work *x = d[i];
        int k = i;
        while (k > 0 && decode_order(d[k - 1], x) > 0) {
            d[k] = d[k - 1];
            k--;
        }
        d[k] = x;
    }
    for (int i = 0; i < t->n_decode;) {
        int n = 0;
        while (i + n < t->n_decode && decode_order(d[i], d[i + n]) == 0) {
            t->scratch[n] = d[i + n]->job;
            n++;
        }
        char msg[256];
        cs_status st = cs_decode(w->sessions[d[i]->model], t->scratch, n, msg, sizeof msg);
        for (int k = i; k < i + n; k++) {
            d[k]->n_png = 0;
            d[k]->status = st;
            if (st != CS_OK)
                snprintf(d[k]->msg, sizeof d[k]->msg, "%s", msg);
            else
                encode_pngs(d[k]);
        }
        i += n;
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "cs-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->pending && !w->quit)
            pthread_cond_wait(&w->cond, &w->lock);
        worker_task *t = w->pending;
        w->pending = NULL;
        pthread_mutex_unlock(&w->lock);
        if (!t) break; /* quit, and nothing handed */
        run_creates(w, t);
        run_decodes(w, t);
        if (t->n_step) run_step(w, t);
        /* The loop closes its results inbox only when no worker is busy, so this is never
         * refused. */
        inbox_push(w->results, &w->done);
    }
    return NULL;
}

static void free_arrays(worker *w) {
    free(w->task.create);
    free(w->task.decode);
    free(w->task.step);
    free(w->task.scratch);
    w->task.create = w->task.decode = w->task.step = NULL;
    w->task.scratch = NULL;
}

static void free_sessions(worker *w) {
    for (int i = 0; i < w->n_sessions; i++)
        cs_session_free(w->sessions[i]);
    free(w->sessions);
    w->sessions = NULL;
    w->n_sessions = 0;
}

cs_status worker_start(worker *w, int index, const cs_model *const *models,
                       const cs_session_params *sp, int n_models, int max_jobs, inbox *results,
                       char *msg, size_t msg_size) {
    memset(w, 0, sizeof *w);
    w->index = index;
    w->results = results;
    if (!(w->sessions = calloc((size_t)n_models, sizeof *w->sessions))) {
        snprintf(msg, msg_size, "worker %d: out of memory", index);
        return CS_ERR_NOMEM;
    }
    cs_status st = CS_OK;
    for (int i = 0; i < n_models && st == CS_OK; i++) {
        st = cs_session_new(models[i], &sp[i], &w->sessions[i], msg, msg_size);
        if (st == CS_OK) w->n_sessions = i + 1;
    }
    if (st != CS_OK) {
        free_sessions(w);
        return st;
    }
    const size_t n = (size_t)max_jobs;
    w->task.create = calloc(n, sizeof *w->task.create);
    w->task.decode = calloc(n, sizeof *w->task.decode);
    w->task.step = calloc(n, sizeof *w->task.step);
    w->task.scratch = calloc(n, sizeof *w->task.scratch);
    if (!w->task.create || !w->task.decode || !w->task.step || !w->task.scratch) {
        snprintf(msg, msg_size, "worker %d: out of memory", index);
        st = CS_ERR_NOMEM;
        goto fail_arrays;
    }
    if (pthread_mutex_init(&w->lock, NULL) != 0) goto fail_sync;
    if (pthread_cond_init(&w->cond, NULL) != 0) {
        pthread_mutex_destroy(&w->lock);
        goto fail_sync;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        goto fail_sync;
    }
    w->started = true;
    return CS_OK;

fail_sync:
    snprintf(msg, msg_size, "worker %d: cannot start a thread", index);
    st = CS_ERR_INTERNAL;
fail_arrays:
    free_arrays(w);
    free_sessions(w);
    return st;
}

void worker_hand(worker *w) {
    pthread_mutex_lock(&w->lock);
    w->pending = &w->task;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void worker_stop(worker *w) {
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->quit = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        w->started = false;
    }
    free_arrays(w);
    free_sessions(w);
}
