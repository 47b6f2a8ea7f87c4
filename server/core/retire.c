/*
 * retire: final state, final event and retention of finished jobs (see retire.h). Loop
 * thread only, holding listen_lock.
 */
#include "retire.h"

#include <string.h>

#include "events.h"

static size_t str_bytes(const char *t) {
    return t ? strlen(t) + 1 : 0;
}

/* What a finished record keeps on the heap: the bound is on this, so it counts every
 * block the record owns, not only the PNGs (prompts can be long, 8 images carry 8
 * infotexts). malloc's own chunk headers are not counted. */
static size_t rec_bytes(const job_rec *r) {
    size_t n = sizeof *r + str_bytes(r->prompt) + str_bytes(r->negative_prompt) +
               str_bytes(r->sampler) + (size_t)r->cap_ls * sizeof *r->ls;
    for (int i = 0; i < CS_MAX_LORAS_PER_JOB; i++)
        n += str_bytes(r->loras[i].name);
    for (int i = 0; i < r->n_png; i++)
        n += r->png_len[i] + str_bytes(r->infotext[i]);
    return n;
}

static void evict(service *s, job_rec *r, job_gone_reason why) {
    dlink_remove(&r->age);
    s->n_finished--;
    pthread_mutex_lock(&s->lock);
    job_table_remove(&s->table, r->id);
    job_gone_add(&s->gone, r->id, why);
    s->stats.retained--;
    s->stats.retained_bytes -= r->bytes;
    s->stats.dropped[why]++;
    pthread_mutex_unlock(&s->lock);
    job_rec_free(r);
}

static void on_ttl(uv_timer_t *h);

/* Finished records expire in the order they finished: one timer for the oldest. */
static void arm_ttl(service *s) {
    if (s->p.finished_ttl_ms <= 0 || s->closing) return;
    if (dlink_empty(&s->finished_list)) {
        uv_timer_stop(&s->ttl_timer);
        return;
    }
    const job_rec *r = job_rec_of_age(s->finished_list.next);
    const uint64_t deadline = r->finish_ns + (uint64_t)s->p.finished_ttl_ms * 1000000u;
    const uint64_t now = uv_hrtime();
    uv_timer_start(&s->ttl_timer, on_ttl, deadline > now ? (deadline - now + 999999) / 1000000 : 0,
                   0);
}

static void on_ttl(uv_timer_t *h) {
    service *s = h->data;
    loop_enter(s);
    const uint64_t now = uv_hrtime(), ttl = (uint64_t)s->p.finished_ttl_ms * 1000000u;
    while (!dlink_empty(&s->finished_list)) {
        job_rec *r = job_rec_of_age(s->finished_list.next);
        if (r->finish_ns + ttl > now) break;
        evict(s, r, JOB_GONE_EXPIRED);
    }
    arm_ttl(s);
    loop_leave(s);
}

static bool over_bytes(const service *s) {
    return s->p.max_finished_bytes && s->stats.retained_bytes > s->p.max_finished_bytes;
}

/* Keeps r for GET /jobs/{id}, evicting the oldest others while more than max_finished
 * records or max_finished_bytes bytes are kept. Done before r's final event, so that
 * whoever hears it finds the table already trimmed. (stats.retained_bytes is written
 * only here and in evict, on this thread: reading it without the lock is safe.) */
static void retain(service *s, job_rec *r) {
    r->bytes = rec_bytes(r);
    dlink_push_back(&s->finished_list, &r->age);
    s->n_finished++;
    pthread_mutex_lock(&s->lock);
    s->stats.retained++;
    s->stats.retained_bytes += r->bytes;
    pthread_mutex_unlock(&s->lock);
    while (s->finished_list.next != &r->age) {
        job_rec *oldest = job_rec_of_age(s->finished_list.next);
        if (s->n_finished > s->p.max_finished)
            evict(s, oldest, JOB_GONE_COUNT);
        else if (over_bytes(s))
            evict(s, oldest, JOB_GONE_BYTES);
        else
            break;
    }
    if (!uv_is_active((uv_handle_t *)&s->ttl_timer)) arm_ttl(s);
}

/* PNG encoding grows its buffer by doubling: up to half of each block is slack that
 * would stay allocated for as long as the result is kept. */
static void shrink_pngs(job_work *w) {
    for (int i = 0; i < w->n_png; i++) {
        uint8_t *p = w->png_len[i] ? realloc(w->png[i], w->png_len[i]) : NULL;
        if (p) w->png[i] = p; /* a failed shrink keeps the larger block */
    }
}

const char *retire_code_of(cs_status st) {
    return st == CS_ERR_INVALID_ARG ? "invalid_parameter"
           : st == CS_ERR_NOMEM     ? "out_of_memory"
                                    : "internal";
}

void retire_job(service *s, job_rec *r, service_job_state state, const char *code,
                const char *message) {
    SVC_ASSERT(!r->in_flight && r->phase != REC_FINISHED);
    const bool was_running = r->phase == REC_RUNNING;
    dlink_remove(&r->link);
    dlink_remove(&r->age);
    if (was_running)
        s->running_images -= r->params.num_images;
    else
        s->queue_len--;
    cs_job_free(r->work.job);
    r->work.job = NULL;
    r->phase = REC_FINISHED;
    r->finish_ns = uv_hrtime();
    if (state == SERVICE_JOB_DONE) shrink_pngs(&r->work);

    pthread_mutex_lock(&s->lock);
    r->state = state;
    free(r->preview_png); /* previews are of unfinished jobs only */
    r->preview_png = NULL;
    r->preview_len = 0;
    r->error_code = code;
    snprintf(r->error, sizeof r->error, "%s", message ? message : "");
    if (state == SERVICE_JOB_DONE) { /* the PNGs move from the worker's part to the record */
        for (int i = 0; i < r->work.n_png; i++) {
            r->png[i] = r->work.png[i];
            r->png_len[i] = r->work.png_len[i];
            r->infotext[i] = r->work.infotext[i];
            r->work.infotext[i] = NULL;
        }
        r->n_png = r->work.n_png;
        r->work.n_png = 0;
        r->step = r->steps;
    }
    /* Only the worker's cs_job_new read the img2img pixels (up to 16 MB at 2048²); the
     * finished record does not keep them. No other thread reads them (job_table.h). */
    free(r->init_image);
    free(r->mask);
    r->init_image = r->mask = NULL;
    r->params.init_image = r->params.mask = NULL;
    if (was_running)
        s->running--;
    else
        s->queued--;
    s->active--;
    service_stats *st = &s->stats;
    if (state == SERVICE_JOB_DONE) {
        st->completed++;
        st->images_generated += (uint64_t)r->n_png;
        st->images_by_model[r->work.model] += (uint64_t)r->n_png;
    } else if (state == SERVICE_JOB_CANCELLED) {
        st->cancelled++;
    } else if (code && strcmp(code, "timeout") == 0) {
        st->timed_out++;
    } else {
        st->failed++;
    }
    pthread_mutex_unlock(&s->lock);

    for (int i = 0; i < r->work.n_png; i++) {
        free(r->work.png[i]); /* of a failed decode */
        free(r->work.infotext[i]);
        r->work.infotext[i] = NULL;
    }
    r->work.n_png = 0;
    free(r->work.preview_png); /* made by the step that ended it: never sent */
    r->work.preview_png = NULL;
    retain(s, r);
    events_send_final(r, NULL, NULL);
    r->n_ls = 0; /* the final event was the last */
    if (s->n_finished > s->p.max_finished)
        evict(s, r, JOB_GONE_COUNT); /* max_finished 0: keep nothing */
    else if (over_bytes(s))
        evict(s, r, JOB_GONE_TOO_LARGE); /* the others are gone already: r alone is over */
}

void retire_if_stopped(service *s, job_rec *r) {
    if (r->in_flight || r->phase == REC_FINISHED) return;
    if (strcmp(r->stop_reason, "cancelled") == 0) {
        retire_job(s, r, SERVICE_JOB_CANCELLED, "cancelled", "the job was cancelled");
    } else {
        char msg[96];
        snprintf(msg, sizeof msg, "the job did not finish within %d ms", s->p.job_timeout_ms);
        retire_job(s, r, SERVICE_JOB_FAILED, "timeout", msg);
    }
}
