/*
 * Test harness for the generation service: job specs, reference PNGs made through the
 * plain cs_* API, an event collector (a listener that records a job's events and wakes
 * the test thread on its final event), and a thread that runs service_run.
 *
 * Header-only (static functions) so each tests/server/test_*.c stays one executable.
 */
#ifndef CS_TEST_SVC_HARNESS_H
#define CS_TEST_SVC_HARNESS_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "service.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"

/* Upper bound on any wait: a hung service fails the test instead of hanging it. */
enum { WAIT_SECONDS = 600 };

typedef struct spec {
    const char *prompt, *negative, *sampler;
    double scale;
    int steps, images;
    uint64_t seed;
} spec;

static cs_gen_params params_of(const cs_model *m, const spec *sp) {
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = sp->prompt;
    p.negative_prompt = sp->negative;
    p.sampler = sp->sampler;
    p.guidance_scale = sp->scale;
    p.steps = sp->steps;
    p.num_images = sp->images;
    p.seed = sp->seed;
    return p;
}

typedef struct pngs {
    int n;
    uint8_t *png[CS_MAX_IMAGES_PER_JOB];
    size_t len[CS_MAX_IMAGES_PER_JOB];
} pngs;

static void pngs_free(pngs *p) {
    for (int i = 0; i < p->n; i++)
        free(p->png[i]);
    p->n = 0;
}

/* The job run alone through the plain API: what the service must reproduce exactly. */
static void reference_pngs(cs_session *s, const cs_model *m, const spec *sp, pngs *out) {
    memset(out, 0, sizeof *out);
    const cs_gen_params p = params_of(m, sp);
    char msg[1024];
    cs_job *j = NULL;
    if (cs_job_new(s, &p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "reference job '%s': %s\n", sp->prompt, msg);
        check_failures++;
        return;
    }
    while (!cs_job_done(j))
        CHECK(cs_step(s, &j, 1, msg, sizeof msg) == CS_OK);
    CHECK(cs_decode(s, &j, 1, msg, sizeof msg) == CS_OK);
    for (int i = 0; i < sp->images; i++) {
        CHECK(cs_job_png(j, i, &out->png[i], &out->len[i], msg, sizeof msg) == CS_OK);
        out->n = i + 1;
    }
    cs_job_free(j);
}

/* ---- event collector ---------------------------------------------------------------- */

typedef struct collector {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* guarded by lock */
    int n_events, n_queued, n_started, n_progress;
    int first_position; /* of the first QUEUED event */
    service_event_type first_type;
    int last_step, steps;
    bool steps_increase; /* PROGRESS steps strictly increase */
    bool after_final;    /* an event came after the final one: a bug */
    bool final;
    service_event_type final_type;
    char code[64], message[256];
    pngs images;
    uint64_t seeds[CS_MAX_IMAGES_PER_JOB];
    int n_preview, last_preview_step;
    bool previews_png; /* every PREVIEW carried a PNG */
    /* set before use */
    service *cancel_at_progress; /* cancel the job from inside the listener at step 1 */
    service *finish_at_progress; /* finish the job early from inside the listener ... */
    int finish_step;             /* ... when it reaches this step */
} collector;

static void collector_init(collector *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->steps_increase = true;
    c->previews_png = true;
    c->first_position = -1;
}

static void collector_deinit(collector *c) {
    pngs_free(&c->images);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

static void collector_listen(const service_event *ev, void *user) {
    collector *c = user;
    pthread_mutex_lock(&c->lock);
    if (c->final) c->after_final = true;
    if (c->n_events++ == 0) c->first_type = ev->type;
    switch (ev->type) {
    case SERVICE_EV_QUEUED:
        if (c->n_queued++ == 0) c->first_position = ev->position;
        break;
    case SERVICE_EV_STARTED:
        c->n_started++;
        break;
    case SERVICE_EV_PROGRESS:
        if (ev->step <= c->last_step) c->steps_increase = false;
        c->last_step = ev->step;
        c->steps = ev->steps;
        c->n_progress++;
        if (c->cancel_at_progress && ev->step == 1)
            CHECK(service_cancel(c->cancel_at_progress, ev->job_id) == SERVICE_OK);
        if (c->finish_at_progress && ev->step == c->finish_step)
            CHECK(service_finish_early(c->finish_at_progress, ev->job_id) == SERVICE_OK);
        break;
    case SERVICE_EV_PREVIEW:
        c->n_preview++;
        c->last_preview_step = ev->step;
        c->previews_png &= ev->preview_len > 8 && !memcmp(ev->preview_png, "\x89PNG", 4);
        break;
    case SERVICE_EV_DONE:
        for (int i = 0; i < ev->num_images; i++) {
            c->images.png[i] = malloc(ev->images[i].png_len);
            memcpy(c->images.png[i], ev->images[i].png, ev->images[i].png_len);
            c->images.len[i] = ev->images[i].png_len;
            c->seeds[i] = ev->images[i].seed;
            c->images.n = i + 1;
        }
        /* fall through */
    case SERVICE_EV_ERROR:
        c->final = true;
        c->final_type = ev->type;
        snprintf(c->code, sizeof c->code, "%s", ev->error_code ? ev->error_code : "");
        snprintf(c->message, sizeof c->message, "%s", ev->message ? ev->message : "");
        break;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static struct timespec deadline_after(int seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return ts;
}

/* Blocks until the job's final event; false (and a failed check) after WAIT_SECONDS. */
static bool collector_wait_final(collector *c) {
    const struct timespec until = deadline_after(WAIT_SECONDS);
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    while (!c->final && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cond, &c->lock, &until);
    const bool ok = c->final;
    pthread_mutex_unlock(&c->lock);
    if (!ok) {
        fprintf(stderr, "timed out waiting for a job's final event\n");
        check_failures++;
    }
    return ok;
}

/* Blocks until at least n events of any kind arrived. */
static bool collector_wait_events(collector *c, int n) {
    const struct timespec until = deadline_after(WAIT_SECONDS);
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    while (c->n_events < n && !c->final && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cond, &c->lock, &until);
    const bool ok = c->n_events >= n;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* ---- running the service ------------------------------------------------------------ */

typedef struct runner {
    service *s;
    pthread_t thread;
} runner;

static void *runner_main(void *arg) {
    service_run(((runner *)arg)->s);
    return NULL;
}

static void runner_start(runner *r, service *s) {
    r->s = s;
    CHECK(pthread_create(&r->thread, NULL, runner_main, r) == 0);
}

/* Drains the service and waits for service_run to return. */
static void runner_stop(runner *r) {
    service_begin_drain(r->s);
    pthread_join(r->thread, NULL);
}

static service_params test_params(void) {
    return (service_params){
        .workers = 1, .max_batch_images = 4, .queue_size = 16, .max_finished = 64};
}

static bool same_pngs(const pngs *a, const pngs *b) {
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++)
        if (a->len[i] != b->len[i] || memcmp(a->png[i], b->png[i], a->len[i]) != 0) return false;
    return true;
}

static bool model_present(void) {
    struct stat sb;
    if (stat(MODEL_DIR, &sb) == 0) return true;
    printf("golden model not found at %s; nothing to test\n", MODEL_DIR);
    return false;
}

#endif
