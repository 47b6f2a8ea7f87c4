/*
 * batcher: the loop thread's half of the service — admission, step-level batching,
 * worker results, cancellation, timeouts and the drain (a job's exit and the retention
 * of finished jobs are in retire.c). Every function here runs on the thread inside
 * service_run, holding listen_lock (see service_internal.h); with retire.c it is the only
 * code that changes a record's phase or frees it.
 *
 * DESIGN. Jobs move QUEUED -> RUNNING -> FINISHED. A queued job starts (FIFO, oldest
 * first, never overtaken) when the images already running leave room for it: at most
 * workers x max_batch_images images run at once, so every running job can be in some
 * batch at nearly every step rather than many jobs crawling. Whenever a worker is idle
 * the loop fills one task for it:
 *   - create: the jobs just started (cs_job_new encodes prompts on the worker, which has
 *     the session; they join the batches from the next task on);
 *   - decode: jobs whose last step is done (VAE decode and PNG encoding on the worker);
 *   - step: one UNet batch. Its first member is the steppable job that was stepped least
 *     recently (ties: the one that started first), which fixes the model and the image
 *     size; then the next least recently stepped jobs of that model and size join while the batch stays within
 *     max_batch_images images and 2 x max_batch_images UNet rows. A job the batch cannot
 *     take this time becomes the least recently stepped one, so nothing starves.
 * A job is in at most one task at a time (in_flight); the worker owns its job_work until
 * the done message comes back. Cancellation and timeouts only set stop_reason: a job not
 * in a task is finished at once, one in a task when the task returns — the next step
 * boundary — and its cs_job is freed then. An early finish (the A1111 interrupt) works the
 * same way but keeps the job: cs_job_finish_early makes it done, and it is decoded.
 * Previews: a step task asks its worker for a preview of each job whose preview_every
 * divides the step it reaches; the loop publishes it and sends it as a PREVIEW event. With several workers, tasks run concurrently
 * on disjoint sets of jobs.
 */
#include <string.h>

#include "batcher.h"
#include "events.h"
#include "histogram.h"
#include "retire.h"

/* ---- timeouts ---------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *h);

static uint64_t deadline_of(const service *s, const job_rec *r) {
    return r->admit_ns + (uint64_t)s->p.job_timeout_ms * 1000000u;
}

/* Every job has the same time limit, so deadlines come in admission order: one timer
 * for the oldest job not already stopping. */
static void arm_timeout(service *s) {
    if (s->p.job_timeout_ms <= 0 || s->closing) return;
    for (dlink *l = s->active_list.next; l != &s->active_list; l = l->next) {
        const job_rec *r = job_rec_of_age(l);
        if (r->stop_reason) continue;
        const uint64_t deadline = deadline_of(s, r), now = uv_hrtime();
        uv_timer_start(&s->timeout_timer, on_timeout,
                       deadline > now ? (deadline - now + 999999) / 1000000 : 0, 0);
        return;
    }
    uv_timer_stop(&s->timeout_timer);
}

static void schedule(service *s);
static void maybe_close(service *s);

static void on_timeout(uv_timer_t *h) {
    service *s = h->data;
    loop_enter(s);
    const uint64_t now = uv_hrtime();
    for (dlink *l = s->active_list.next, *next; l != &s->active_list; l = next) {
        next = l->next; /* retiring moves r out of this list, and only r */
        job_rec *r = job_rec_of_age(l);
        if (r->stop_reason) continue;
        if (deadline_of(s, r) > now) break;
        r->stop_reason = "timeout";
        retire_if_stopped(s, r);
    }
    arm_timeout(s);
    schedule(s);
    maybe_close(s);
    loop_leave(s);
}

/* ---- requests ---------------------------------------------------------------------- */

static void admit(service *s, job_rec *r) {
    const int position = s->queue_len++;
    r->phase = REC_QUEUED;
    r->admit_ns = uv_hrtime();
    dlink_push_back(&s->queue, &r->link);
    dlink_push_back(&s->active_list, &r->age);
    service_event ev = events_make(r, SERVICE_EV_QUEUED);
    ev.position = position;
    events_emit(r, &ev);
    if (!uv_is_active((uv_handle_t *)&s->timeout_timer)) arm_timeout(s);
}

static job_rec *find(service *s, uint64_t id) {
    pthread_mutex_lock(&s->lock); /* submitters insert concurrently */
    job_rec *r = job_table_find(&s->table, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* A new listener first hears the job's current state, then follows it. */
static void subscribe(service *s, uint64_t id, service_listener fn, void *user) {
    job_rec *r = find(s, id);
    if (!r) { /* finished and evicted since service_subscribe looked */
        service_event ev = {.type = SERVICE_EV_ERROR,
                            .job_id = id,
                            .error_code = "not_found",
                            .message = "the job's result has expired"};
        fn(&ev, user);
        return;
    }
    if (r->phase == REC_FINISHED) {
        events_send_final(r, fn, user);
        return;
    }
    if (!job_rec_add_listener(r, fn, user)) {
        service_event ev = {.type = SERVICE_EV_ERROR,
                            .job_id = id,
                            .error_code = "internal",
                            .message = "out of memory subscribing to the job"};
        fn(&ev, user);
        return;
    }
    const int at = r->n_ls - 1; /* if the listener detaches in a call, stop calling it */
    service_event ev;
    if (r->phase == REC_QUEUED) {
        ev = events_make(r, SERVICE_EV_QUEUED);
        for (dlink *l = s->queue.next; l != &r->link; l = l->next)
            ev.position++;
        fn(&ev, user);
        return;
    }
    ev = events_make(r, SERVICE_EV_STARTED);
    fn(&ev, user);
    if (r->step > 0 && r->ls[at].fn) {
        ev = events_make(r, SERVICE_EV_PROGRESS);
        fn(&ev, user);
    }
}

/* Applies a wanted early finish once the loop owns the job (created, not in a task). */
static void apply_finish(service *s, job_rec *r) {
    if (!r->finish_wanted || r->in_flight || !r->work.job || r->stop_reason) return;
    r->finish_wanted = false;
    if (cs_job_done(r->work.job)) return;
    cs_job_finish_early(r->work.job);
    pthread_mutex_lock(&s->lock);
    r->finished_early = true;
    r->step = r->steps = cs_job_steps(r->work.job);
    pthread_mutex_unlock(&s->lock);
}

static void handle_request(service *s, inbox_msg *m) {
    if (m->kind == MSG_SUBMIT) {
        admit(s, (job_rec *)((char *)m - offsetof(job_rec, submit_msg)));
        return;
    }
    if (m->kind == MSG_DRAIN) return; /* maybe_close runs after every batch of messages */
    service_msg *sm = (service_msg *)m;
    if (m->kind == MSG_CANCEL) {
        job_rec *r = find(s, sm->job_id);
        if (r && r->phase != REC_FINISHED && !r->stop_reason) {
            r->stop_reason = "cancelled";
            retire_if_stopped(s, r);
        }
    } else if (m->kind == MSG_FINISH) {
        job_rec *r = find(s, sm->job_id);
        if (r && r->phase == REC_RUNNING) {
            r->finish_wanted = true;
            apply_finish(s, r);
        }
    } else if (m->kind == MSG_SUBSCRIBE) {
        subscribe(s, sm->job_id, sm->fn, sm->user);
    }
    free(sm);
}

void batcher_on_requests(uv_async_t *h) {
    service *s = h->data;
    loop_enter(s);
    for (inbox_msg *m = inbox_take(&s->requests), *next; m; m = next) {
        next = m->next;
        handle_request(s, m);
    }
    schedule(s);
    maybe_close(s);
    loop_leave(s);
}

/* ---- batching ---------------------------------------------------------------------- */

static bool steppable(const job_rec *r) {
    return !r->in_flight && r->work.job && !r->stop_reason && !cs_job_done(r->work.job);
}

/* Rows of one UNet batch share the model's weights and the latent size. */
static bool same_batch(const job_rec *a, const job_rec *b) {
    return a->work.model == b->work.model && a->params.width == b->params.width &&
           a->params.height == b->params.height;
}

/* Starts queued jobs, oldest first, while their images fit beside the running ones. */
static void add_creates(service *s, worker_task *t) {
    while (!dlink_empty(&s->queue)) {
        job_rec *r = job_rec_of_link(s->queue.next);
        if (s->running_images + r->params.num_images > s->cap_images) break;
        dlink_remove(&r->link);
        dlink_push_back(&s->running_list, &r->link);
        s->queue_len--;
        s->running_images += r->params.num_images;
        r->phase = REC_RUNNING;
        r->start_ns = uv_hrtime();
        r->in_flight = true;
        t->create[t->n_create++] = &r->work;
        pthread_mutex_lock(&s->lock);
        r->state = SERVICE_JOB_RUNNING;
        s->queued--;
        s->running++;
        pthread_mutex_unlock(&s->lock);
        service_event ev = events_make(r, SERVICE_EV_STARTED);
        events_emit(r, &ev);
    }
}

static void add_decodes(service *s, worker_task *t) {
    for (dlink *l = s->running_list.next; l != &s->running_list; l = l->next) {
        job_rec *r = job_rec_of_link(l);
        if (r->in_flight || !r->work.job || r->stop_reason || !cs_job_done(r->work.job)) continue;
        r->in_flight = true;
        t->decode[t->n_decode++] = &r->work;
    }
}

/* The least recently stepped steppable job that `like` (when given) admits. */
static job_rec *next_for_batch(service *s, const job_rec *like, int images, int rows) {
    const int max_images = s->p.max_batch_images;
    job_rec *best = NULL;
    for (dlink *l = s->running_list.next; l != &s->running_list; l = l->next) {
        job_rec *r = job_rec_of_link(l);
        if (!steppable(r)) continue;
        if (like && (!same_batch(r, like) || images + r->params.num_images > max_images ||
                     rows + cs_job_rows_next_step(r->work.job) > 2 * max_images))
            continue;
        if (!best || r->last_batch < best->last_batch) best = r; /* ties: started first */
    }
    return best;
}

static void add_step(service *s, worker_task *t) {
    job_rec *first = next_for_batch(s, NULL, 0, 0);
    if (!first) return;
    const uint64_t seq = ++s->batch_seq;
    int images = 0, rows = 0;
    for (job_rec *r = first; r; r = next_for_batch(s, first, images, rows)) {
        images += r->params.num_images;
        rows += cs_job_rows_next_step(r->work.job);
        r->in_flight = true;
        r->last_batch = seq;
        /* A preview after every preview_every-th step, but not after the last. */
        const int next = cs_job_step(r->work.job) + 1;
        r->work.want_preview = r->preview_every > 0 && next % r->preview_every == 0 &&
                               next < cs_job_steps(r->work.job);
        t->step[t->n_step++] = &r->work;
    }
}

/* Fills w's task; false when there is nothing to do. */
static bool build_task(service *s, worker *w) {
    worker_task *t = &w->task;
    t->n_create = t->n_decode = t->n_step = 0;
    add_decodes(s, t);
    add_creates(s, t);
    add_step(s, t);
    return t->n_create + t->n_decode + t->n_step > 0;
}

static void schedule(service *s) {
    if (s->closing) return;
    for (int i = 0; i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        if (w->busy) continue;
        if (!build_task(s, w)) return; /* no work for this idle worker: none for the others */
        w->busy = true;
        worker_hand(w);
    }
}

/* ---- results ----------------------------------------------------------------------- */

static void created(service *s, job_work *jw) {
    job_rec *r = jw->rec;
    r->in_flight = false;
    if (jw->status != CS_OK) {
        retire_job(s, r, SERVICE_JOB_FAILED, retire_code_of(jw->status), jw->msg);
    } else if (r->stop_reason) {
        retire_if_stopped(s, r);
    } else {
        pthread_mutex_lock(&s->lock);
        r->steps = cs_job_steps(jw->job); /* the sampler may add a step */
        r->step = cs_job_step(jw->job);
        pthread_mutex_unlock(&s->lock);
        apply_finish(s, r);
    }
}

/* Publishes the preview a worker made for r and sends it to r's listeners. */
static void publish_preview(service *s, job_rec *r) {
    job_work *jw = &r->work;
    if (!jw->preview_png) return;
    pthread_mutex_lock(&s->lock);
    free(r->preview_png);
    r->preview_png = jw->preview_png;
    r->preview_len = jw->preview_len;
    r->preview_step = r->step;
    pthread_mutex_unlock(&s->lock);
    jw->preview_png = NULL;
    service_event ev = events_make(r, SERVICE_EV_PREVIEW);
    ev.preview_png = r->preview_png; /* the record keeps it past the callback */
    ev.preview_len = r->preview_len;
    events_emit(r, &ev);
}

static void decoded(service *s, job_work *jw) {
    job_rec *r = jw->rec;
    r->in_flight = false;
    if (r->stop_reason)
        retire_if_stopped(s, r);
    else if (jw->status != CS_OK)
        retire_job(s, r, SERVICE_JOB_FAILED, retire_code_of(jw->status), jw->msg);
    else
        retire_job(s, r, SERVICE_JOB_DONE, NULL, NULL);
}

static void stepped(service *s, worker_task *t) {
    int images = 0;
    for (int i = 0; i < t->n_step; i++)
        images += t->step[i]->params->num_images;
    pthread_mutex_lock(&s->lock);
    service_stats *st = &s->stats;
    st->steps_run++;
    histogram_observe(st->batch_bounds, st->n_batch_bounds, st->batch_counts, &st->batch_sum,
                      images);
    histogram_observe(st->step_bounds, st->n_step_bounds, st->step_counts, &st->step_sum,
                      t->step_seconds);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < t->n_step; i++) {
        job_rec *r = t->step[i]->rec;
        r->in_flight = false;
        if (t->step_status != CS_OK) {
            retire_job(s, r, SERVICE_JOB_FAILED, retire_code_of(t->step_status), t->step_msg);
        } else if (r->stop_reason) {
            retire_if_stopped(s, r);
        } else if (cs_job_error(r->work.job)) {
            /* This job's numbers went bad; its batch companions carry on. */
            retire_job(s, r, SERVICE_JOB_FAILED, "numerical_error", cs_job_error(r->work.job));
        } else {
            pthread_mutex_lock(&s->lock);
            r->step = cs_job_step(r->work.job);
            pthread_mutex_unlock(&s->lock);
            service_event ev = events_make(r, SERVICE_EV_PROGRESS);
            events_emit(r, &ev);
            publish_preview(s, r);
            apply_finish(s, r);
        }
    }
}

void batcher_on_results(uv_async_t *h) {
    service *s = h->data;
    loop_enter(s);
    for (inbox_msg *m = inbox_take(&s->results), *next; m; m = next) {
        next = m->next;
        worker *w = worker_of_done(m);
        worker_task *t = &w->task;
        w->busy = false;
        for (int i = 0; i < t->n_create; i++)
            created(s, t->create[i]);
        for (int i = 0; i < t->n_decode; i++)
            decoded(s, t->decode[i]);
        if (t->n_step) stepped(s, t);
        t->n_create = t->n_decode = t->n_step = 0;
    }
    schedule(s);
    maybe_close(s);
    loop_leave(s);
}

/* ---- drain and shutdown ------------------------------------------------------------ */

/* Once draining and every job is finished, close every handle so that uv_run returns. */
static void maybe_close(service *s) {
    if (s->closing || !atomic_load(&s->draining)) return;
    pthread_mutex_lock(&s->lock);
    const int active = s->active;
    pthread_mutex_unlock(&s->lock);
    if (active > 0) return;
    for (int i = 0; i < s->n_workers; i++)
        if (s->workers[i].busy) return;
    s->closing = true;
    /* Requests that came in meanwhile: cancels find nothing to do, subscribers get the
     * final event of their job. */
    for (inbox_msg *m = inbox_close(&s->requests, NULL), *next; m; m = next) {
        next = m->next;
        SVC_ASSERT(m->kind != MSG_SUBMIT); /* refused while draining */
        handle_request(s, m);
    }
    const inbox_msg *results_left = inbox_close(&s->results, NULL);
    SVC_ASSERT(results_left == NULL); /* no worker is busy */
    uv_close((uv_handle_t *)&s->timeout_timer, NULL);
    uv_close((uv_handle_t *)&s->ttl_timer, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
}

void batcher_on_signal(uv_signal_t *h, int signum) {
    service *s = h->data;
    loop_enter(s);
    if (signum == SIGHUP) {
        if (s->p.on_reopen_logs) s->p.on_reopen_logs(s->p.user);
    } else {
        service_set_draining(s);
        maybe_close(s);
    }
    loop_leave(s);
}

void batcher_start(service *s) {
    uv_signal_start(&s->sig_int, batcher_on_signal, SIGINT);
    uv_signal_start(&s->sig_term, batcher_on_signal, SIGTERM);
    uv_signal_start(&s->sig_hup, batcher_on_signal, SIGHUP);
    loop_enter(s);
    maybe_close(s); /* drained before it ran */
    loop_leave(s);
}
