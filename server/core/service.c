/*
 * service: the generation service's entry points (see service.h) — start-up and
 * shutdown, and the thread-safe calls the HTTP layer makes: submit, cancel, subscribe,
 * job info, images, stats, drain. None of them touches the loop's scheduling state: they
 * read and write published fields under the service lock and send messages to the loop
 * (batcher.c), which owns everything else.
 *
 * Threads: service_new / service_run / service_free on the owning thread (service_run's
 * thread becomes the loop thread); every other function from any thread, including from
 * inside a listener callback.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "histogram.h"
#include "job_id.h"
#include "batcher.h"
#include "service_internal.h"

_Thread_local service *service_tls_loop;

enum { MAX_WORKERS = 64, MAX_BATCH_IMAGES = 64, MAX_QUEUE = 1 << 20, MAX_FINISHED = 1 << 20 };

/* ---- start-up and shutdown --------------------------------------------------------- */

static cs_status check_params(int n_models, const service_params *p, char *msg, size_t n) {
    const char *bad = NULL;
    if (n_models < 1 || n_models > SERVICE_MAX_MODELS) bad = "the number of models";
    if (p->workers < 1 || p->workers > MAX_WORKERS) bad = "workers";
    if (p->max_batch_images < 1 || p->max_batch_images > MAX_BATCH_IMAGES) bad = "max_batch_images";
    /* A job waits in the queue until the loop starts it, so 0 would refuse every job. */
    if (p->queue_size < 1 || p->queue_size > MAX_QUEUE) bad = "queue_size";
    if (p->max_finished < 0 || p->max_finished > MAX_FINISHED) bad = "max_finished";
    if (p->job_timeout_ms < 0) bad = "job_timeout_ms";
    if (p->finished_ttl_ms < 0) bad = "finished_ttl_ms";
    if (p->instance_id < 0 || p->instance_id > JOB_ID_MAX_INSTANCE) bad = "instance_id";
    if (!bad) return CS_OK;
    snprintf(msg, n,
             "service: %s out of range (models 1..%d, workers 1..%d, max_batch_images 1..%d, "
             "queue_size 1..%d, max_finished 0..%d, times >= 0, instance_id 0..%d)",
             bad, SERVICE_MAX_MODELS, MAX_WORKERS, MAX_BATCH_IMAGES, MAX_QUEUE, MAX_FINISHED,
             JOB_ID_MAX_INSTANCE);
    return CS_ERR_INVALID_ARG;
}

/* Closes the first `count` loop handles (those not closed yet, in the order open_loop
 * creates them) and lets the loop finish. */
static void close_loop(service *s, int count) {
    uv_handle_t *h[7] = {(uv_handle_t *)&s->requests.async, (uv_handle_t *)&s->results.async,
                         (uv_handle_t *)&s->timeout_timer,  (uv_handle_t *)&s->ttl_timer,
                         (uv_handle_t *)&s->sig_int,        (uv_handle_t *)&s->sig_term,
                         (uv_handle_t *)&s->sig_hup};
    for (int i = 0; i < count && i < 7; i++)
        if (!uv_is_closing(h[i])) uv_close(h[i], NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    const int rc = uv_loop_close(&s->loop);
    SVC_ASSERT(rc == 0);
}

/* Creates the loop's handles; returns how many exist (7 on success). */
static int open_loop(service *s) {
    if (uv_loop_init(&s->loop) != 0) return -1;
    if (inbox_init(&s->requests, &s->loop, batcher_on_requests, s) != 0) return 0;
    if (inbox_init(&s->results, &s->loop, batcher_on_results, s) != 0) return 1;
    uv_timer_init(&s->loop, &s->timeout_timer);
    uv_timer_init(&s->loop, &s->ttl_timer);
    s->timeout_timer.data = s->ttl_timer.data = s;
    uv_signal_t *sig[3] = {&s->sig_int, &s->sig_term, &s->sig_hup};
    for (int i = 0; i < 3; i++) {
        if (uv_signal_init(&s->loop, sig[i]) != 0) return 4 + i;
        sig[i]->data = s;
    }
    return 7;
}

/* Each model's largest image: the configured bound, or its native size. */
static void size_bounds(service *s) {
    for (int i = 0; i < s->n_models; i++) {
        s->max_width[i] = s->p.max_width;
        s->max_height[i] = s->p.max_height;
        if (s->p.max_width <= 0 || s->p.max_height <= 0)
            cs_model_native_size(s->models[i], &s->max_width[i], &s->max_height[i]);
    }
}

cs_status service_new(const cs_model *const *models, int n_models, const service_params *params,
                      service **out, char *msg, size_t msg_size) {
    *out = NULL;
    const service_params p = *params;
    cs_status st = check_params(n_models, &p, msg, msg_size);
    if (st != CS_OK) return st;
    service *s = calloc(1, sizeof *s);
    if (!s) goto fail_nomem;
    s->n_models = n_models;
    for (int i = 0; i < n_models; i++)
        s->models[i] = models[i];
    s->p = p;
    size_bounds(s);
    s->cap_images = p.workers * p.max_batch_images;
    dlink_init(&s->queue);
    dlink_init(&s->running_list);
    dlink_init(&s->active_list);
    dlink_init(&s->finished_list);
    s->drain_msg.kind = MSG_DRAIN;
    atomic_init(&s->draining, false);
    job_gone_init(&s->gone);
    service_stats *stats = &s->stats;
    stats->n_batch_bounds = histogram_batch_bounds(stats->batch_bounds, SERVICE_HIST_BUCKETS);
    stats->n_step_bounds = histogram_step_bounds(stats->step_bounds, SERVICE_HIST_BUCKETS);
    stats->n_models = n_models;
    for (int i = 0; i < n_models; i++)
        stats->model_names[i] = cs_model_name(models[i]);
    if (getrandom(&s->id_key, sizeof s->id_key, 0) != (ssize_t)sizeof s->id_key)
        s->id_key = uv_hrtime() ^ ((uint64_t)getpid() << 32);

    /* Every record alive at once: queued + running + retained (+1 before eviction). */
    const size_t max_records =
        (size_t)p.queue_size + (size_t)s->cap_images + (size_t)p.max_finished + 1;
    if (!job_table_init(&s->table, max_records)) goto fail_table;
    if (pthread_mutex_init(&s->lock, NULL) != 0) goto fail_lock;
    if (pthread_mutex_init(&s->listen_lock, NULL) != 0) goto fail_listen_lock;
    const int opened = open_loop(s);
    if (opened < 7) {
        if (opened >= 0) close_loop(s, opened);
        if (opened > 0) inbox_deinit(&s->requests);
        if (opened > 1) inbox_deinit(&s->results);
        snprintf(msg, msg_size, "service: cannot set up the event loop");
        st = CS_ERR_INTERNAL;
        goto fail_loop;
    }
    s->workers = calloc((size_t)p.workers, sizeof *s->workers);
    if (!s->workers) {
        snprintf(msg, msg_size, "service: out of memory");
        st = CS_ERR_NOMEM;
        goto fail_workers;
    }
    cs_session_params sp[SERVICE_MAX_MODELS];
    for (int k = 0; k < n_models; k++) {
        sp[k] = cs_session_default_params(models[k]);
        sp[k].max_images = p.max_batch_images; /* cs_session plans 2x rows for CFG */
        sp[k].max_width = s->max_width[k];
        sp[k].max_height = s->max_height[k];
        sp[k].vae_tile = p.vae_tile;
    }
    for (int i = 0; i < p.workers; i++) {
        st = worker_start(&s->workers[i], i, models, sp, n_models, s->cap_images, &s->results,
                          msg, msg_size);
        if (st != CS_OK) goto fail_workers;
        s->n_workers = i + 1;
    }
    *out = s;
    return CS_OK;

fail_workers:
    for (int i = 0; i < s->n_workers; i++)
        worker_stop(&s->workers[i]);
    free(s->workers);
    close_loop(s, 7);
    inbox_deinit(&s->requests);
    inbox_deinit(&s->results);
fail_loop:
    pthread_mutex_destroy(&s->listen_lock);
fail_listen_lock:
    pthread_mutex_destroy(&s->lock);
fail_lock:
    job_table_deinit(&s->table);
fail_table:
    free(s);
fail_nomem:
    if (st == CS_OK) {
        snprintf(msg, msg_size, "service: out of memory");
        st = CS_ERR_NOMEM;
    }
    return st;
}

void service_run(service *s) {
    service_tls_loop = s;
    batcher_start(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    service_tls_loop = NULL;
}

void service_begin_drain(service *s) {
    /* The loop may be asleep with nothing to do: wake it to notice. A closed inbox means
     * the drain is already over. */
    if (service_set_draining(s)) inbox_push(&s->requests, &s->drain_msg);
}

bool service_draining(const service *s) {
    return atomic_load(&s->draining);
}

void service_free(service *s) {
    if (!s) return;
    for (int i = 0; i < s->n_workers; i++)
        worker_stop(&s->workers[i]);
    free(s->workers);
    /* After a completed drain the handles are closed already; if the loop never ran they
     * close now, the inboxes first refusing pushes. */
    inbox_msg *left = NULL;
    if (!uv_is_closing((uv_handle_t *)&s->requests.async)) left = inbox_close(&s->requests, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->results.async)) inbox_close(&s->results, NULL);
    close_loop(s, 7);
    /* Messages the loop never saw: submissions are embedded in records (freed below). */
    for (inbox_msg *m = left, *next; m; m = next) {
        next = m->next;
        if (m->kind == MSG_CANCEL || m->kind == MSG_SUBSCRIBE) free(m);
    }
    inbox_deinit(&s->requests);
    inbox_deinit(&s->results);
    /* Every live record is in the map, from submission to eviction. */
    for (size_t i = 0; i <= s->table.mask; i++)
        job_rec_free(s->table.slots[i]);
    job_table_deinit(&s->table);
    pthread_mutex_destroy(&s->listen_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- requests ---------------------------------------------------------------------- */

/* Ids look random (so one client cannot guess another's) and carry this instance's id
 * (job_id.h: a load balancer routes /jobs/{id} to the owner by it). */
static uint64_t next_id(service *s) {
    uint64_t x = s->id_key + 0x9e3779b97f4a7c15ULL * ++s->id_seq;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return job_id_make((unsigned)s->p.instance_id, x);
}

/* The engine's rules, then what this server's sessions hold. */
static service_status validate(service *s, int model, const cs_gen_params *p, const char **field,
                               char *msg, size_t msg_size) {
    const char *f = NULL;
    if (model < 0 || model >= s->n_models) {
        if (field) *field = "model";
        snprintf(msg, msg_size, "model index %d: this server serves %d model(s)", model,
                 s->n_models);
        return SERVICE_INVALID;
    }
    if (cs_params_validate(s->models[model], p, &f, msg, msg_size) != CS_OK) {
        if (field) *field = f;
        return SERVICE_INVALID;
    }
    int limit = 0, got = 0;
    if (p->width > s->max_width[model]) {
        f = "width";
        limit = s->max_width[model];
        got = p->width;
    } else if (p->height > s->max_height[model]) {
        f = "height";
        limit = s->max_height[model];
        got = p->height;
    } else if (p->num_images > s->p.max_batch_images) {
        f = "num_images";
        limit = s->p.max_batch_images;
        got = p->num_images;
    } else {
        return SERVICE_OK;
    }
    if (field) *field = f;
    snprintf(msg, msg_size, "%s must be at most %d on this server (got %d)", f, limit, got);
    return SERVICE_INVALID;
}

static service_status count_rejection(service *s, service_status st) {
    pthread_mutex_lock(&s->lock);
    if (st == SERVICE_INVALID) s->stats.rejected_invalid++;
    if (st == SERVICE_FULL) s->stats.rejected_full++;
    if (st == SERVICE_DRAINING) s->stats.rejected_draining++;
    pthread_mutex_unlock(&s->lock);
    return st;
}

service_status service_submit(service *s, int model, const cs_gen_params *p, int preview_every,
                              service_listener listener, void *user, uint64_t *job_id, const char **field, char *msg,
                              size_t msg_size) {
    if (field) *field = NULL;
    if (msg && msg_size) msg[0] = '\0';
    if (atomic_load(&s->draining)) return count_rejection(s, SERVICE_DRAINING);
    service_status st = validate(s, model, p, field, msg, msg_size);
    if (st != SERVICE_OK) return count_rejection(s, st);
    job_rec *r = job_rec_new(0, p, listener, user);
    if (!r) {
        snprintf(msg, msg_size, "out of memory");
        return SERVICE_ERROR;
    }
    r->work.model = model;
    r->preview_every = preview_every > 0 ? preview_every : 0;
    r->submit_msg.kind = MSG_SUBMIT;
    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->draining) || s->queued >= s->p.queue_size) {
        st = atomic_load(&s->draining) ? SERVICE_DRAINING : SERVICE_FULL;
        if (st == SERVICE_FULL)
            snprintf(msg, msg_size, "the queue is full (%d jobs waiting)", s->queued);
        pthread_mutex_unlock(&s->lock);
        job_rec_free(r);
        return count_rejection(s, st);
    }
    do
        r->id = next_id(s);
    while (job_table_find(&s->table, r->id)); /* 48 bits can collide, very rarely */
    /* Cannot fail: the table holds every record the limits allow. */
    const bool inserted = job_table_insert(&s->table, r);
    SVC_ASSERT(inserted);
    s->queued++;
    s->active++;
    s->stats.submitted++;
    /* Pushed under the service lock, so a cancel for this id always comes after it. The
     * inbox only closes once draining, which was checked under this lock. */
    const bool pushed = inbox_push(&s->requests, &r->submit_msg);
    SVC_ASSERT(pushed);
    *job_id = r->id;
    pthread_mutex_unlock(&s->lock);
    return SERVICE_OK;
}

static bool finished_state(service_job_state st) {
    return st == SERVICE_JOB_DONE || st == SERVICE_JOB_FAILED || st == SERVICE_JOB_CANCELLED;
}

/* Sends a cancel or subscribe message for a known job. */
static service_status send_job_msg(service *s, int kind, uint64_t job_id, service_listener fn,
                                   void *user) {
    service_msg *m = calloc(1, sizeof *m);
    if (!m) return SERVICE_ERROR;
    *m = (service_msg){.m.kind = kind, .job_id = job_id, .fn = fn, .user = user};
    pthread_mutex_lock(&s->lock);
    const job_rec *r = job_table_find(&s->table, job_id);
    service_status st = SERVICE_OK;
    if (!r)
        st = SERVICE_NOT_FOUND;
    else if ((kind == MSG_CANCEL || kind == MSG_FINISH) && finished_state(r->state))
        st = SERVICE_OK; /* nothing left to stop */
    else if (inbox_push(&s->requests, &m->m))
        m = NULL; /* the loop frees it */
    else
        st = SERVICE_DRAINING; /* the loop has ended */
    pthread_mutex_unlock(&s->lock);
    free(m);
    return st;
}

service_status service_cancel(service *s, uint64_t job_id) {
    return send_job_msg(s, MSG_CANCEL, job_id, NULL, NULL);
}

service_status service_finish_early(service *s, uint64_t job_id) {
    return send_job_msg(s, MSG_FINISH, job_id, NULL, NULL);
}

service_status service_subscribe(service *s, uint64_t job_id, service_listener listener,
                                 void *user) {
    if (!listener) return SERVICE_INVALID;
    return send_job_msg(s, MSG_SUBSCRIBE, job_id, listener, user);
}

typedef struct sub_key {
    uint64_t job_id;
    void *user;
} sub_key;

static bool is_subscription(const inbox_msg *m, const void *ctx) {
    const sub_key *k = ctx;
    const service_msg *sm = (const service_msg *)m;
    return m->kind == MSG_SUBSCRIBE && sm->job_id == k->job_id && sm->user == k->user;
}

void service_unsubscribe(service *s, uint64_t job_id, void *user) {
    /* Holding listen_lock means the loop is not inside any callback, so once this returns
     * the listener is never called again. On the loop thread (a listener detaching
     * itself or another one) the loop already holds it and the entry is only cleared. */
    const bool on_loop = service_tls_loop == s && s->listen_held;
    if (!on_loop) pthread_mutex_lock(&s->listen_lock);
    const sub_key key = {job_id, user};
    for (inbox_msg *m = inbox_remove_if(&s->requests, is_subscription, &key), *next; m; m = next) {
        next = m->next;
        free(m);
    }
    pthread_mutex_lock(&s->lock);
    /* Records are freed only by the loop, under listen_lock: r stays valid here. */
    job_rec *r = job_table_find(&s->table, job_id);
    pthread_mutex_unlock(&s->lock);
    if (r) {
        job_rec_clear_listeners(r, user);
        if (!on_loop) job_rec_compact_listeners(r);
    }
    if (!on_loop) pthread_mutex_unlock(&s->listen_lock);
}

/* ---- queries ----------------------------------------------------------------------- */

service_status service_job_info_get(service *s, uint64_t job_id, service_job_info *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->lock);
    const job_rec *r = job_table_find(&s->table, job_id);
    if (r) {
        out->state = r->state;
        out->model = r->work.model;
        out->step = r->step;
        out->steps = r->steps;
        out->num_images = r->params.num_images;
        out->finished_early = r->finished_early;
        out->preview_step = r->preview_png ? r->preview_step : 0;
        memcpy(out->seeds, r->seeds, sizeof out->seeds);
        snprintf(out->error, sizeof out->error, "%s", r->error);
    }
    pthread_mutex_unlock(&s->lock);
    return r ? SERVICE_OK : SERVICE_NOT_FOUND;
}

const char *service_job_gone(service *s, uint64_t job_id) {
    pthread_mutex_lock(&s->lock);
    const job_gone_reason why = job_table_find(&s->table, job_id) ? 0 : job_gone_find(&s->gone, job_id);
    pthread_mutex_unlock(&s->lock);
    return why ? job_gone_text(why) : NULL;
}

service_status service_job_image(service *s, uint64_t job_id, int image, uint8_t **png,
                                 size_t *len) {
    *png = NULL;
    *len = 0;
    service_status st = SERVICE_NOT_FOUND;
    pthread_mutex_lock(&s->lock);
    const job_rec *r = job_table_find(&s->table, job_id);
    if (r && r->state == SERVICE_JOB_DONE && image >= 0 && image < r->n_png) {
        *png = malloc(r->png_len[image]);
        if (*png) {
            memcpy(*png, r->png[image], r->png_len[image]);
            *len = r->png_len[image];
            st = SERVICE_OK;
        } else {
            st = SERVICE_ERROR;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

service_status service_job_preview(service *s, uint64_t job_id, uint8_t **png, size_t *len,
                                   int *step) {
    *png = NULL;
    *len = 0;
    service_status st = SERVICE_NOT_FOUND;
    pthread_mutex_lock(&s->lock);
    const job_rec *r = job_table_find(&s->table, job_id);
    if (r && r->preview_png && !finished_state(r->state)) {
        st = (*png = malloc(r->preview_len)) ? SERVICE_OK : SERVICE_ERROR;
        if (*png) {
            memcpy(*png, r->preview_png, r->preview_len);
            *len = r->preview_len;
            *step = r->preview_step;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

void service_stats_get(service *s, service_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    out->queued = s->queued;
    out->running = s->running;
    pthread_mutex_unlock(&s->lock);
}
