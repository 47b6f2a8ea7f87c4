/*
 * The generation service on the golden tiny model: concurrent jobs with different
 * guidance scales, negative prompts, samplers, step counts and image counts, submitted
 * from several threads, must give PNGs byte-identical to the same jobs run alone through
 * the plain cs_* API, while the service really batches them (batch size > 1). Then job
 * info, image retrieval and subscription to a finished job; then a drain started by
 * SIGTERM (running and queued jobs finish, new ones are refused) and SIGHUP's callback.
 */
#include <signal.h>
#include <unistd.h>

#include "svc_harness.h"

static const spec k_specs[] = {
    {"a red cube on a table", "", "ddim", 7.5, 6, 1, 11},
    {"a fox in the snow", "blurry, low quality", "euler_a", 3.0, 8, 2, 22},
    {"an astronaut", "", "dpmpp_2m", 1.0, 5, 1, 33},
    {"a green circle", "red", "pndm", 0.0, 4, 1, 44},
};
enum { NSPEC = sizeof k_specs / sizeof k_specs[0] };

typedef struct submitter {
    service *s;
    const cs_model *m;
    const spec *sp;
    collector *c;
    pthread_barrier_t *go;
    uint64_t id;
    service_status st;
} submitter;

static void *submit_main(void *arg) {
    submitter *u = arg;
    pthread_barrier_wait(u->go); /* all submissions at once */
    const cs_gen_params p = params_of(u->m, u->sp);
    const char *field = NULL;
    char msg[256];
    u->st = service_submit(u->s, 0, &p, 0, collector_listen, u->c, &u->id, &field, msg, sizeof msg);
    return NULL;
}

static void check_done_job(collector *c, const spec *sp, const pngs *ref, int i) {
    CHECK_EQ_INT(c->final_type, SERVICE_EV_DONE);
    CHECK_EQ_INT(c->first_type, SERVICE_EV_QUEUED);
    CHECK_EQ_INT(c->n_started, 1);
    CHECK(c->steps >= sp->steps);
    CHECK_EQ_INT(c->n_progress, c->steps); /* one PROGRESS per step, in order */
    CHECK_EQ_INT(c->last_step, c->steps);
    CHECK(c->steps_increase);
    CHECK(!c->after_final);
    CHECK_EQ_INT(c->images.n, sp->images);
    for (int k = 0; k < c->images.n; k++)
        CHECK(c->seeds[k] == sp->seed + (uint64_t)k);
    const bool same = same_pngs(&c->images, ref);
    printf("  job %d (%s, s=%g, %d steps, %d image(s)): PNGs %s the job run alone\n", i,
           sp->sampler, sp->scale, sp->steps, sp->images, same ? "identical to" : "DIFFER from");
    CHECK(same);
}

/* (7) Job info, image copies and subscription to a finished job. */
static void check_finished_queries(service *s, const uint64_t *ids, const pngs *ref) {
    for (int i = 0; i < NSPEC; i++) {
        service_job_info info;
        CHECK(service_job_info_get(s, ids[i], &info) == SERVICE_OK);
        CHECK_EQ_INT(info.state, SERVICE_JOB_DONE);
        CHECK_EQ_INT(info.step, info.steps);
        CHECK_EQ_INT(info.num_images, k_specs[i].images);
        for (int k = 0; k < info.num_images; k++)
            CHECK(info.seeds[k] == k_specs[i].seed + (uint64_t)k);
        for (int k = 0; k < k_specs[i].images; k++) {
            uint8_t *png = NULL;
            size_t len = 0;
            CHECK(service_job_image(s, ids[i], k, &png, &len) == SERVICE_OK);
            CHECK(png && len == ref[i].len[k] && memcmp(png, ref[i].png[k], len) == 0);
            free(png);
        }
        uint8_t *png = NULL;
        size_t len = 0;
        CHECK(service_job_image(s, ids[i], k_specs[i].images, &png, &len) == SERVICE_NOT_FOUND);
        CHECK(png == NULL);
    }
    /* A subscriber to a finished job hears DONE at once, with the images. */
    collector late;
    collector_init(&late);
    CHECK(service_subscribe(s, ids[1], collector_listen, &late) == SERVICE_OK);
    if (collector_wait_final(&late)) {
        CHECK_EQ_INT(late.n_events, 1);
        CHECK_EQ_INT(late.final_type, SERVICE_EV_DONE);
        CHECK(same_pngs(&late.images, &ref[1]));
    }
    collector_deinit(&late);
    /* Cancelling a finished job changes nothing. */
    CHECK(service_cancel(s, ids[0]) == SERVICE_OK);
    service_job_info info;
    CHECK(service_job_info_get(s, ids[0], &info) == SERVICE_OK);
    CHECK_EQ_INT(info.state, SERVICE_JOB_DONE);
    /* Unknown ids (0 is never issued). */
    uint8_t *png;
    size_t len;
    CHECK(service_job_info_get(s, 0, &info) == SERVICE_NOT_FOUND);
    CHECK(service_job_image(s, 0, 0, &png, &len) == SERVICE_NOT_FOUND);
    CHECK(service_cancel(s, 0) == SERVICE_NOT_FOUND);
    CHECK(service_subscribe(s, 0, collector_listen, NULL) == SERVICE_NOT_FOUND);
}

/* (1) Jobs submitted concurrently from NSPEC threads. */
static void test_concurrent_jobs(const cs_model *m, const pngs *ref, int workers) {
    printf("%d concurrent jobs, %d worker(s), at most 4 images per batch:\n", NSPEC, workers);
    service_params sp = test_params();
    sp.workers = workers;
    service *s;
    char msg[512];
    if (service_new(&m, 1, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "service_new: %s\n", msg);
        check_failures++;
        return;
    }
    runner run;
    runner_start(&run, s);
    collector c[NSPEC];
    submitter u[NSPEC];
    pthread_t threads[NSPEC];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NSPEC);
    for (int i = 0; i < NSPEC; i++) {
        collector_init(&c[i]);
        u[i] = (submitter){.s = s, .m = m, .sp = &k_specs[i], .c = &c[i], .go = &go};
        pthread_create(&threads[i], NULL, submit_main, &u[i]);
    }
    uint64_t ids[NSPEC];
    for (int i = 0; i < NSPEC; i++) {
        pthread_join(threads[i], NULL);
        CHECK_EQ_INT(u[i].st, SERVICE_OK);
        ids[i] = u[i].id;
    }
    pthread_barrier_destroy(&go);
    for (int i = 0; i < NSPEC; i++)
        if (collector_wait_final(&c[i])) check_done_job(&c[i], &k_specs[i], &ref[i], i);

    service_stats st;
    service_stats_get(s, &st);
    uint64_t batched = 0, batches = 0;
    for (int b = 0; b <= st.n_batch_bounds; b++) {
        batches += st.batch_counts[b];
        if (b > 0) batched += st.batch_counts[b]; /* bucket 0 holds batches of 1 image */
    }
    printf("  %llu UNet batches, %llu of them with more than one image, %.2f images and %.0f ms "
           "per batch\n",
           (unsigned long long)batches, (unsigned long long)batched,
           batches ? st.batch_sum / (double)batches : 0.0,
           batches ? 1e3 * st.step_sum / (double)batches : 0.0);
    CHECK_EQ_INT(batches, st.steps_run);
    if (workers == 1) CHECK(batched > 0);
    CHECK_EQ_INT(st.completed, NSPEC);
    CHECK_EQ_INT(st.submitted, NSPEC);
    CHECK_EQ_INT(st.images_generated, 5);
    CHECK_EQ_INT(st.running, 0);
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.failed + st.cancelled + st.timed_out, 0);

    check_finished_queries(s, ids, ref);
    runner_stop(&run);
    service_free(s);
    for (int i = 0; i < NSPEC; i++)
        collector_deinit(&c[i]);
}

/* SIGHUP's callback runs on the loop thread. */
typedef struct hup_count {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
} hup_count;

static void on_reopen_logs(void *user) {
    hup_count *h = user;
    pthread_mutex_lock(&h->lock);
    h->calls++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

/* (6) SIGTERM drains: queued and running jobs finish, new ones are refused, and
 * service_run returns by itself. */
static void test_drain(const cs_model *m, const pngs *ref) {
    printf("drain on SIGTERM:\n");
    hup_count hup = {.calls = 0};
    pthread_mutex_init(&hup.lock, NULL);
    pthread_cond_init(&hup.cond, NULL);
    service_params sp = test_params();
    sp.max_batch_images = 1; /* one job runs, the other waits in the queue */
    sp.on_reopen_logs = on_reopen_logs;
    sp.user = &hup;
    service *s;
    char msg[512];
    if (service_new(&m, 1, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "service_new: %s\n", msg);
        check_failures++;
        return;
    }
    collector c[2];
    uint64_t ids[2];
    const int which[2] = {2, 3};
    for (int i = 0; i < 2; i++) {
        collector_init(&c[i]);
        const cs_gen_params p = params_of(m, &k_specs[which[i]]);
        CHECK(service_submit(s, 0, &p, 0, collector_listen, &c[i], &ids[i], NULL, msg, sizeof msg) ==
              SERVICE_OK);
    }
    runner run;
    runner_start(&run, s);
    /* Once the first job has started the loop runs and its signal handlers are set. */
    CHECK(collector_wait_events(&c[0], 2));
    /* Signals aimed at this thread arrive in order, and the loop reads them in order: when
     * SIGHUP's callback has run, SIGTERM's drain has begun. */
    pthread_kill(pthread_self(), SIGTERM);
    pthread_kill(pthread_self(), SIGHUP);
    pthread_mutex_lock(&hup.lock);
    while (hup.calls == 0)
        pthread_cond_wait(&hup.cond, &hup.lock);
    pthread_mutex_unlock(&hup.lock);
    CHECK(service_draining(s));
    const cs_gen_params p = params_of(m, &k_specs[0]);
    uint64_t id = 0;
    CHECK(service_submit(s, 0, &p, 0, collector_listen, NULL, &id, NULL, msg, sizeof msg) ==
          SERVICE_DRAINING);
    for (int i = 0; i < 2; i++)
        if (collector_wait_final(&c[i]))
            check_done_job(&c[i], &k_specs[which[i]], &ref[which[i]], i);
    pthread_join(run.thread, NULL); /* service_run returns once both are done */
    service_stats st;
    service_stats_get(s, &st);
    CHECK_EQ_INT(st.completed, 2);
    CHECK_EQ_INT(st.rejected_draining, 1);
    CHECK_EQ_INT(hup.calls, 1);
    /* Results stay readable after the loop ended; new requests are refused. */
    service_job_info info;
    CHECK(service_job_info_get(s, ids[1], &info) == SERVICE_OK);
    CHECK_EQ_INT(info.state, SERVICE_JOB_DONE);
    CHECK(service_subscribe(s, ids[1], collector_listen, &c[1]) == SERVICE_DRAINING);
    service_free(s);
    for (int i = 0; i < 2; i++)
        collector_deinit(&c[i]);
    pthread_cond_destroy(&hup.cond);
    pthread_mutex_destroy(&hup.lock);
}

int main(void) {
    if (!model_present()) return 0;
    char msg[2048];
    cs_model *m;
    if (cs_model_load(MODEL_DIR, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "load: %s\n", msg);
        return 1;
    }
    cs_session *ref_session;
    cs_session_params rp = cs_session_default_params(m);
    if (cs_session_new(m, &rp, &ref_session, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "session: %s\n", msg);
        return 1;
    }
    pngs ref[NSPEC];
    for (int i = 0; i < NSPEC; i++)
        reference_pngs(ref_session, m, &k_specs[i], &ref[i]);
    cs_session_free(ref_session);

    test_concurrent_jobs(m, ref, 1);
    test_concurrent_jobs(m, ref, 2);
    test_drain(m, ref);

    for (int i = 0; i < NSPEC; i++)
        pngs_free(&ref[i]);
    cs_model_free(m);
    CHECK_DONE();
}
