/*
 * Admission and job control of the generation service on the golden tiny model: invalid
 * parameters are refused naming the field, a full queue refuses with SERVICE_FULL,
 * cancelling a queued or running job ends it with ERROR "cancelled" without disturbing
 * the others, a detached listener is never called again, timeouts end jobs with ERROR
 * "timeout", and finished jobs are retained within a count, a byte and a time limit;
 * previews come every preview_every steps without changing an image, and an early finish
 * ends a running job DONE with the images of its clean-image estimate.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "job_gone.h"
#include "svc_harness.h"

static const spec k_short = {"a blue square", "", "ddim", 7.5, 3, 1, 7};
static const spec k_short2 = {"a yellow star", "dark", "euler", 5.0, 2, 1, 9};
static const spec k_long = {"a very long job", "", "ddim", 7.5, 500, 1, 8};

static service *start_service(const cs_model *m, const service_params *sp) {
    service *s = NULL;
    char msg[512];
    if (service_new(&m, 1, sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "service_new: %s\n", msg);
        check_failures++;
    }
    return s;
}

static service_status submit_pv(service *s, const cs_model *m, const spec *sp, int preview_every,
                                collector *c, uint64_t *id) {
    const cs_gen_params p = params_of(m, sp);
    char msg[256];
    return service_submit(s, 0, &p, preview_every, c ? collector_listen : NULL, c, id, NULL, msg,
                          sizeof msg);
}

static service_status submit(service *s, const cs_model *m, const spec *sp, collector *c,
                             uint64_t *id) {
    return submit_pv(s, m, sp, 0, c, id);
}

static void test_bad_service_params(const cs_model *m) {
    service_params sp = test_params();
    sp.workers = 0;
    service *s = (service *)1;
    char msg[512] = "";
    CHECK(service_new(&m, 1, &sp, &s, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK(s == NULL);
    CHECK_STR_CONTAINS(msg, "workers");
}

/* (3) Invalid parameters, each naming its field; nothing is queued. */
static void check_invalid(service *s, const cs_model *m) {
    static const struct {
        const char *field;
        int kind;
    } k_cases[] = {{"prompt", 0},     {"steps", 1},   {"width", 2},          {"width", 3},
                   {"num_images", 4}, {"sampler", 5}, {"guidance_scale", 6}, {"height", 7}};
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        cs_gen_params p = params_of(m, &k_short);
        switch (k_cases[i].kind) {
        case 0:
            p.prompt = NULL;
            break;
        case 1:
            p.steps = 0;
            break;
        case 2:
            p.width = 65;
            break; /* not a multiple of the model's factor */
        case 3:
            p.width = 128;
            break; /* larger than the sessions hold (64) */
        case 4:
            p.num_images = 5;
            break; /* more than max_batch_images */
        case 5:
            p.sampler = "bogus";
            break;
        case 6:
            p.guidance_scale = NAN;
            break;
        case 7:
            p.height = 96;
            break;
        }
        const char *field = NULL;
        char msg[256] = "";
        uint64_t id = 0;
        const service_status st =
            service_submit(s, 0, &p, 0, collector_listen, NULL, &id, &field, msg, sizeof msg);
        CHECK_EQ_INT(st, SERVICE_INVALID);
        CHECK(field && strcmp(field, k_cases[i].field) == 0);
        CHECK(msg[0] != '\0');
        printf("  invalid %-14s -> %s\n", k_cases[i].field, msg);
    }
}

/* (2) + (3): the queue holds 2 jobs; the third is refused at submit time. A queued job
 * is cancelled before it starts; a bad request changes nothing for the others. */
static void test_admission(const cs_model *m) {
    printf("admission:\n");
    service_params sp = test_params();
    sp.queue_size = 2;
    service *s = start_service(m, &sp);
    if (!s) return;
    check_invalid(s, m);
    collector a, b, d;
    collector_init(&a);
    collector_init(&b);
    collector_init(&d);
    uint64_t ida = 0, idb = 0, idc = 0, idd = 0;
    /* The loop is not running yet: both stay queued. */
    CHECK_EQ_INT(submit(s, m, &k_short, &a, &ida), SERVICE_OK);
    CHECK_EQ_INT(submit(s, m, &k_short2, &b, &idb), SERVICE_OK);
    CHECK(ida != idb && ida != 0 && idb != 0);
    CHECK_EQ_INT(submit(s, m, &k_short, NULL, &idc), SERVICE_FULL);
    service_job_info info;
    CHECK(service_job_info_get(s, idb, &info) == SERVICE_OK);
    CHECK_EQ_INT(info.state, SERVICE_JOB_QUEUED);
    CHECK_EQ_INT(info.steps, k_short2.steps);
    CHECK(service_cancel(s, idb) == SERVICE_OK);
    service_stats st;
    service_stats_get(s, &st);
    CHECK_EQ_INT(st.queued, 2);
    CHECK_EQ_INT(st.rejected_full, 1);
    CHECK_EQ_INT(st.rejected_invalid, 8);
    CHECK_EQ_INT(st.submitted, 2);

    runner run;
    runner_start(&run, s);
    if (collector_wait_final(&b)) {
        CHECK_EQ_INT(b.final_type, SERVICE_EV_ERROR);
        CHECK_STR_CONTAINS(b.code, "cancelled");
        CHECK_EQ_INT(b.n_started, 0); /* it never started */
    }
    CHECK_EQ_INT(submit(s, m, &k_short2, &d, &idd), SERVICE_OK); /* room again */
    if (collector_wait_final(&a)) CHECK_EQ_INT(a.final_type, SERVICE_EV_DONE);
    if (collector_wait_final(&d)) CHECK_EQ_INT(d.final_type, SERVICE_EV_DONE);
    CHECK(service_job_info_get(s, idb, &info) == SERVICE_OK);
    CHECK_EQ_INT(info.state, SERVICE_JOB_CANCELLED);
    CHECK(info.error[0] != '\0');
    service_stats_get(s, &st);
    CHECK_EQ_INT(st.completed, 2);
    CHECK_EQ_INT(st.cancelled, 1);
    CHECK_EQ_INT(st.running + st.queued, 0);
    runner_stop(&run);
    service_free(s);
    collector_deinit(&a);
    collector_deinit(&b);
    collector_deinit(&d);
}

/* (4) A running job cancelled from its own listener at step 1 ends with ERROR
 * "cancelled"; a short job beside it still gives its reference PNG; a listener detached
 * with service_unsubscribe is never called again. */
static void test_cancel_running(const cs_model *m, const pngs *ref_short) {
    printf("cancel a running job:\n");
    service_params sp = test_params();
    service *s = start_service(m, &sp);
    if (!s) return;
    collector lc, sc, watch, gone, mc, detached;
    collector *all[] = {&lc, &sc, &watch, &gone, &mc, &detached};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        collector_init(all[i]);
    lc.cancel_at_progress = s;
    uint64_t idl = 0, ids = 0, idm = 0;
    spec long2 = k_long;
    long2.seed = 99;
    CHECK_EQ_INT(submit(s, m, &k_long, &lc, &idl), SERVICE_OK);
    CHECK_EQ_INT(submit(s, m, &k_short, &sc, &ids), SERVICE_OK);
    CHECK_EQ_INT(submit(s, m, &long2, &mc, &idm), SERVICE_OK);
    CHECK(service_subscribe(s, ids, collector_listen, &watch) == SERVICE_OK);
    /* Subscribed and detached before the loop saw the subscription: never called. */
    CHECK(service_subscribe(s, ids, collector_listen, &gone) == SERVICE_OK);
    service_unsubscribe(s, ids, &gone);
    CHECK(service_subscribe(s, idm, collector_listen, &detached) == SERVICE_OK);

    runner run;
    runner_start(&run, s);
    /* Detach from a running job while it steps: no call after unsubscribe returns. */
    CHECK(collector_wait_events(&detached, 3)); /* QUEUED, STARTED, PROGRESS */
    service_unsubscribe(s, idm, &detached);
    pthread_mutex_lock(&detached.lock);
    const int seen = detached.n_events;
    pthread_mutex_unlock(&detached.lock);
    CHECK(service_cancel(s, idm) == SERVICE_OK);

    if (collector_wait_final(&lc)) {
        CHECK_EQ_INT(lc.final_type, SERVICE_EV_ERROR);
        CHECK_STR_CONTAINS(lc.code, "cancelled");
        CHECK_EQ_INT(lc.n_started, 1);
        CHECK(lc.last_step >= 1 && lc.last_step < k_long.steps);
        printf("  cancelled at step 1, left after step %d of %d\n", lc.last_step, lc.steps);
    }
    if (collector_wait_final(&sc)) {
        CHECK_EQ_INT(sc.final_type, SERVICE_EV_DONE);
        CHECK(same_pngs(&sc.images, ref_short));
    }
    if (collector_wait_final(&watch)) {
        CHECK_EQ_INT(watch.first_type, SERVICE_EV_QUEUED);
        CHECK_EQ_INT(watch.final_type, SERVICE_EV_DONE);
        CHECK(same_pngs(&watch.images, ref_short));
    }
    if (collector_wait_final(&mc)) CHECK_STR_CONTAINS(mc.code, "cancelled");
    pthread_mutex_lock(&detached.lock);
    CHECK_EQ_INT(detached.n_events, seen);
    CHECK(!detached.final);
    pthread_mutex_unlock(&detached.lock);
    CHECK_EQ_INT(gone.n_events, 0);

    service_job_info info;
    CHECK(service_job_info_get(s, idl, &info) == SERVICE_OK);
    CHECK_EQ_INT(info.state, SERVICE_JOB_CANCELLED);
    CHECK(info.step < info.steps);
    service_stats st;
    service_stats_get(s, &st);
    CHECK_EQ_INT(st.cancelled, 2);
    CHECK_EQ_INT(st.completed, 1);
    CHECK_EQ_INT(st.running, 0);
    CHECK_EQ_INT(st.queued, 0);
    runner_stop(&run);
    service_free(s);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        collector_deinit(all[i]);
}

/* Previews: one after every preview_every-th step but the last, as PNGs, the latest kept
 * for polling while the job runs; a job with previews after every step still makes the
 * reference image. An early finish at step 4 of 500 ends DONE with one image. */
static void test_previews_and_finish(const cs_model *m, const pngs *ref_short) {
    printf("previews and early finish:\n");
    service_params sp = test_params();
    service *s = start_service(m, &sp);
    if (!s) return;
    collector every1, none, stopped;
    collector_init(&every1);
    collector_init(&none);
    collector_init(&stopped);
    stopped.finish_at_progress = s;
    stopped.finish_step = 4;
    uint64_t id1 = 0, id0 = 0, idl = 0;
    CHECK_EQ_INT(submit_pv(s, m, &k_short, 1, &every1, &id1), SERVICE_OK);
    CHECK_EQ_INT(submit_pv(s, m, &k_short, 0, &none, &id0), SERVICE_OK);
    CHECK_EQ_INT(submit_pv(s, m, &k_long, 2, &stopped, &idl), SERVICE_OK);
    runner run;
    runner_start(&run, s);
    if (collector_wait_final(&every1)) {
        CHECK_EQ_INT(every1.final_type, SERVICE_EV_DONE);
        CHECK_EQ_INT(every1.n_preview, k_short.steps - 1); /* none after the last step */
        CHECK_EQ_INT(every1.last_preview_step, k_short.steps - 1);
        CHECK(every1.previews_png);
        CHECK(same_pngs(&every1.images, ref_short));
    }
    if (collector_wait_final(&none)) {
        CHECK_EQ_INT(none.n_preview, 0);
        CHECK(same_pngs(&none.images, ref_short));
    }
    if (collector_wait_final(&stopped)) {
        CHECK_EQ_INT(stopped.final_type, SERVICE_EV_DONE);
        CHECK_EQ_INT(stopped.images.n, 1);
        CHECK(stopped.n_preview >= 2 && stopped.previews_png);
        CHECK(stopped.last_preview_step % 2 == 0);
        printf("  %d previews; finished early after step %d of %d\n", stopped.n_preview,
               stopped.last_step, k_long.steps);
    }
    service_job_info info;
    CHECK(service_job_info_get(s, idl, &info) == SERVICE_OK);
    CHECK_EQ_INT(info.state, SERVICE_JOB_DONE);
    CHECK(info.finished_early);
    CHECK(info.steps >= 4 && info.steps < k_long.steps && info.step == info.steps);
    uint8_t *png = NULL;
    size_t len = 0;
    int step = 0;
    CHECK_EQ_INT(service_job_preview(s, idl, &png, &len, &step), SERVICE_NOT_FOUND); /* done */
    CHECK(png == NULL);
    CHECK(service_job_info_get(s, id1, &info) == SERVICE_OK && !info.finished_early);
    runner_stop(&run);
    service_free(s);
    collector_deinit(&every1);
    collector_deinit(&none);
    collector_deinit(&stopped);
}

/* (5) A job longer than the time limit ends with ERROR "timeout" and is freed. */
static void test_timeout(const cs_model *m) {
    printf("timeout:\n");
    service_params sp = test_params();
    sp.job_timeout_ms = 200;
    service *s = start_service(m, &sp);
    if (!s) return;
    runner run;
    runner_start(&run, s);
    collector c;
    collector_init(&c);
    uint64_t id = 0;
    CHECK_EQ_INT(submit(s, m, &k_long, &c, &id), SERVICE_OK);
    if (collector_wait_final(&c)) {
        CHECK_EQ_INT(c.final_type, SERVICE_EV_ERROR);
        CHECK_STR_CONTAINS(c.code, "timeout");
        CHECK(c.n_progress < k_long.steps);
        printf("  timed out after %d step(s): %s\n", c.n_progress, c.message);
    }
    service_job_info info;
    CHECK(service_job_info_get(s, id, &info) == SERVICE_OK);
    CHECK_EQ_INT(info.state, SERVICE_JOB_FAILED);
    CHECK_STR_CONTAINS(info.error, "200 ms");
    service_stats st;
    service_stats_get(s, &st);
    CHECK_EQ_INT(st.timed_out, 1);
    CHECK_EQ_INT(st.failed, 0);
    CHECK_EQ_INT(st.running, 0);
    runner_stop(&run);
    service_free(s);
    collector_deinit(&c);
}

/* Finished jobs: at most max_finished are kept, each for finished_ttl_ms. */
static void test_retention(const cs_model *m) {
    printf("retention:\n");
    service_params sp = test_params();
    sp.max_finished = 2;
    sp.finished_ttl_ms = 1000;
    service *s = start_service(m, &sp);
    if (!s) return;
    collector c[3];
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        collector_init(&c[i]);
        spec sp_i = k_short2;
        sp_i.seed = (uint64_t)i;
        CHECK_EQ_INT(submit(s, m, &sp_i, &c[i], &ids[i]), SERVICE_OK);
    }
    runner run;
    runner_start(&run, s);
    for (int i = 0; i < 3; i++)
        collector_wait_final(&c[i]);
    int kept = 0;
    for (int i = 0; i < 3; i++) {
        service_job_info info;
        if (service_job_info_get(s, ids[i], &info) != SERVICE_OK) continue;
        kept++;
        uint8_t *png = NULL;
        size_t len = 0;
        CHECK(service_job_image(s, ids[i], 0, &png, &len) == SERVICE_OK);
        CHECK(png && len == c[i].images.len[0] && memcmp(png, c[i].images.png[0], len) == 0);
        free(png);
    }
    printf("  %d of 3 finished jobs kept (limit 2)\n", kept);
    CHECK_EQ_INT(kept, 2);
    usleep(2500 * 1000); /* past the 1000 ms time limit: nothing left */
    kept = 0;
    for (int i = 0; i < 3; i++) {
        service_job_info info;
        kept += service_job_info_get(s, ids[i], &info) == SERVICE_OK;
    }
    printf("  %d kept after their time limit\n", kept);
    CHECK_EQ_INT(kept, 0);
    runner_stop(&run);
    service_free(s);
    for (int i = 0; i < 3; i++)
        collector_deinit(&c[i]);
}

/* Runs n jobs of k_short2 (seeds 0..n-1) through a service made with sp; fills ids and
 * the stats once every final event arrived. The caller frees the service. */
static service *run_jobs(const cs_model *m, const service_params *sp, int n, uint64_t *ids,
                         collector *c, service_stats *st) {
    service *s = start_service(m, sp);
    if (!s) return NULL;
    for (int i = 0; i < n; i++) {
        collector_init(&c[i]);
        spec sp_i = k_short2;
        sp_i.seed = (uint64_t)i;
        CHECK_EQ_INT(submit(s, m, &sp_i, &c[i], &ids[i]), SERVICE_OK);
    }
    runner run;
    runner_start(&run, s);
    for (int i = 0; i < n; i++)
        collector_wait_final(&c[i]);
    runner_stop(&run);
    service_stats_get(s, st);
    return s;
}

/* Finished jobs are kept within max_finished_bytes: the oldest go first and answer
 * service_job_gone naming the bound; a job larger than the bound alone is not kept. */
static void test_retention_bytes(const cs_model *m) {
    printf("retention by bytes:\n");
    enum { N = 6 };
    collector c[N];
    uint64_t ids[N];
    service_stats st;
    service_params sp = test_params();
    sp.max_finished_bytes = 0; /* no byte limit: measure what one job keeps */
    service *s = run_jobs(m, &sp, N, ids, c, &st);
    if (!s) return;
    CHECK_EQ_INT(st.retained, N);
    const uint64_t per_job = st.retained_bytes / N;
    CHECK(per_job > 100 && per_job < 1000000);
    uint64_t png_bytes = 0;
    for (int i = 0; i < N; i++)
        png_bytes += c[i].images.len[0];
    printf("  %d jobs keep %llu bytes (PNGs %llu)\n", N, (unsigned long long)st.retained_bytes,
           (unsigned long long)png_bytes);
    CHECK(st.retained_bytes >= png_bytes); /* the PNGs are counted, and more */
    service_free(s);
    for (int i = 0; i < N; i++)
        collector_deinit(&c[i]);

    sp.max_finished_bytes = (size_t)(per_job * 5 / 2); /* room for two */
    s = run_jobs(m, &sp, N, ids, c, &st);
    if (!s) return;
    printf("  bound %zu bytes: %d jobs kept, %llu bytes; %llu dropped for bytes\n",
           sp.max_finished_bytes, st.retained, (unsigned long long)st.retained_bytes,
           (unsigned long long)st.dropped[JOB_GONE_BYTES]);
    CHECK(st.retained_bytes <= sp.max_finished_bytes);
    CHECK(st.retained >= 1 && st.retained <= 3);
    CHECK_EQ_INT((int)st.dropped[JOB_GONE_BYTES], N - st.retained);
    for (int i = 0; i < N; i++) {
        service_job_info info;
        const bool kept = service_job_info_get(s, ids[i], &info) == SERVICE_OK;
        CHECK(kept == (i >= N - st.retained)); /* the newest are the ones kept */
        const char *why = service_job_gone(s, ids[i]);
        CHECK(kept ? why == NULL : why && strstr(why, "--max-finished-mb"));
    }
    CHECK(service_job_gone(s, ids[0] ^ 1) == NULL); /* never issued: unknown, not gone */
    service_free(s);
    for (int i = 0; i < N; i++)
        collector_deinit(&c[i]);

    sp.max_finished_bytes = 1; /* every result alone is larger */
    s = run_jobs(m, &sp, 2, ids, c, &st);
    if (!s) return;
    CHECK_EQ_INT(st.retained, 0);
    CHECK(st.retained_bytes == 0);
    CHECK_EQ_INT((int)st.dropped[JOB_GONE_TOO_LARGE], 2);
    CHECK(c[0].final_type == SERVICE_EV_DONE && c[0].images.n == 1); /* still got its image */
    const char *why = service_job_gone(s, ids[1]);
    CHECK(why && strstr(why, "larger than --max-finished-mb"));
    service_free(s);
    for (int i = 0; i < 2; i++)
        collector_deinit(&c[i]);
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
    if (cs_session_new(m, NULL, &ref_session, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "session: %s\n", msg);
        return 1;
    }
    pngs ref_short;
    reference_pngs(ref_session, m, &k_short, &ref_short);
    cs_session_free(ref_session);

    test_bad_service_params(m);
    test_admission(m);
    test_cancel_running(m, &ref_short);
    test_timeout(m);
    test_retention(m);
    test_previews_and_finish(m, &ref_short);
    test_retention_bytes(m);

    pngs_free(&ref_short);
    cs_model_free(m);
    CHECK_DONE();
}
