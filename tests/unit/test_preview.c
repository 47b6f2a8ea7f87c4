/* Step previews and early finish (engine/pipeline/preview.c, job.c) on the trained
 * default model: the preview map reproduces the VAE's decode of held-out latents far better than
 * the best flat colour does, and the error and the time per preview are reported; taking
 * previews does not change a job's numbers; cs_job_finish_early makes a job done whose
 * decode is the decode of its x0 estimate; sizes are capped at CS_PREVIEW_MAX_SIDE. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "check.h"
#include "golden_model.h"
#include "preview.h"
#include "job.h"
#include "session.h"

/* The project's trained default model: a random-weight VAE (the golden tiny model's) has
 * no linear colour structure to fit. */
#define MODEL_DIR CS_SOURCE_DIR "/models/default"
enum { W = 64, H = 64 };

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static cs_job *new_job(cs_session *s, const cs_model *m, const char *sampler, uint64_t seed) {
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = "a large red circle on the left";
    p.sampler = sampler;
    p.steps = 12;
    p.width = W;
    p.height = H;
    p.seed = seed;
    char msg[512];
    cs_job *j = NULL;
    if (cs_job_new(s, &p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cs_job_new: %s\n", msg);
        check_failures++;
    }
    return j;
}

static void step(cs_session *s, cs_job *j) {
    char msg[512];
    if (cs_step(s, &j, 1, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cs_step: %s\n", msg);
        check_failures++;
    }
}

/* Mean |a - b| / 255 over n bytes, and the same for the best flat colour against b. */
static double mean_abs(const uint8_t *a, const uint8_t *b, int64_t pixels, double *flat) {
    double mean[3] = {0}, e = 0, ef = 0;
    for (int64_t i = 0; i < pixels; i++)
        for (int c = 0; c < 3; c++) mean[c] += b[3 * i + c] / (double)pixels;
    for (int64_t i = 0; i < pixels; i++)
        for (int c = 0; c < 3; c++) {
            e += fabs((double)a[3 * i + c] - b[3 * i + c]);
            ef += fabs(mean[c] - b[3 * i + c]);
        }
    *flat = ef / (255.0 * 3 * (double)pixels);
    return e / (255.0 * 3 * (double)pixels);
}

/* The preview of an estimate against the VAE's decode of it (the early finish decodes
 * exactly the estimate): returns mean |preview - decode| / 255, *flat the same for the
 * best flat colour. Consumes j. */
static double compare_with_decode(cs_session *s, cs_job *j, double *flat) {
    char msg[512];
    uint8_t *rgb = NULL;
    int pw = 0, ph = 0, dw, dh;
    CHECK(cs_job_preview(s, j, 0, &rgb, &pw, &ph, msg, sizeof msg) == CS_OK);
    CHECK_EQ_INT(pw, W);
    CHECK_EQ_INT(ph, H);
    cs_job_finish_early(j);
    CHECK(cs_job_done(j));
    CHECK(cs_job_finished_early(j));
    CHECK(cs_decode(s, &j, 1, msg, sizeof msg) == CS_OK);
    const uint8_t *dec = cs_job_rgb(j, 0, &dw, &dh);
    *flat = 1.0;
    const double err = rgb && dec ? mean_abs(rgb, dec, (int64_t)W * H, flat) : 1.0;
    free(rgb);
    cs_job_free(j);
    return err;
}

/* Held-out latents of the fit's kind (what trained models' x0 estimates look like): the
 * map must reproduce the decode far better than a flat colour. */
static void test_map_vs_decode(cs_session *s, const cs_model *m) {
    double sum = 0, sum_flat = 0;
    enum { N = 4 };
    for (int k = 0; k < N; k++) {
        cs_job *j = new_job(s, m, "ddim", 3);
        if (!j) return;
        CHECK(preview_fit_latent(s, 100 + k, j->lat_h, j->lat_w, j->x0) == CS_OK);
        j->has_x0 = true;
        double flat;
        sum += compare_with_decode(s, j, &flat);
        sum_flat += flat;
    }
    printf("preview map on %d held-out latents: mean |preview - VAE decode| / 255 = %.4f "
           "(best flat colour: %.4f)\n", N, sum / N, sum_flat / N);
    CHECK(sum < 0.5 * sum_flat);
}

/* A real run stopped at step 7 of 12: its x0 estimate previewed (the time per PNG preview
 * measured), then finished early and decoded. This model's images are mostly a dark
 * background, where its VAE is least linear (the map's error there is a few grey levels
 * of bias), so a flat colour is a hard baseline: the error is reported and bounded. */
static void test_preview_of_run(cs_session *s, const cs_model *m, const char *sampler) {
    cs_job *j = new_job(s, m, sampler, 11);
    if (!j) return;
    char msg[512];
    uint8_t *rgb = NULL;
    int pw = 0, ph = 0;
    /* Before any step: a preview of the (scaled) start works too. */
    CHECK(cs_job_preview(s, j, 0, &rgb, &pw, &ph, msg, sizeof msg) == CS_OK);
    free(rgb);
    for (int k = 0; k < 7; k++) step(s, j);
    CHECK(j->has_x0);
    const double t0 = cpu_seconds();
    enum { REPS = 50 };
    for (int r = 0; r < REPS; r++) {
        uint8_t *png = NULL;
        size_t len = 0;
        CHECK(cs_job_preview_png(s, j, 0, &png, &len, msg, sizeof msg) == CS_OK);
        CHECK(len > 8 && png && png[1] == 'P');
        free(png);
    }
    const double per = (cpu_seconds() - t0) / REPS;
    double flat;
    const double err = compare_with_decode(s, j, &flat);
    printf("preview %-8s at step 7/12: mean |preview - VAE decode| / 255 = %.4f (flat colour: "
           "%.4f); %.3f ms CPU per %dx%d PNG preview\n",
           sampler, err, flat, per * 1e3, W, H);
    CHECK(err < 0.15);
}

/* Previews read the job only: an image with a preview after every step is bit-identical. */
static void test_preview_changes_nothing(cs_session *s, const cs_model *m) {
    cs_job *a = new_job(s, m, "euler_a", 5), *b = new_job(s, m, "euler_a", 5);
    if (!a || !b) return;
    char msg[512];
    while (!cs_job_done(a)) {
        step(s, a);
        step(s, b);
        uint8_t *png;
        size_t len;
        CHECK(cs_job_preview_png(s, b, 0, &png, &len, msg, sizeof msg) == CS_OK);
        free(png);
    }
    CHECK(memcmp(a->latents, b->latents, (size_t)a->image_numel * sizeof(float)) == 0);
    cs_job_free(a);
    cs_job_free(b);
}

static void test_sizes_and_errors(cs_session *s, const cs_model *m) {
    int pw, ph;
    preview_size(512, 768, &pw, &ph);
    CHECK_EQ_INT(pw, 171);
    CHECK_EQ_INT(ph, 256);
    preview_size(2048, 256, &pw, &ph);
    CHECK_EQ_INT(pw, 256);
    CHECK_EQ_INT(ph, 32);
    preview_size(64, 32, &pw, &ph); /* never enlarged */
    CHECK_EQ_INT(pw, 64);
    CHECK_EQ_INT(ph, 32);
    cs_job *j = new_job(s, m, NULL, 1);
    if (!j) return;
    uint8_t *rgb = (uint8_t *)1;
    char msg[256];
    CHECK(cs_job_preview(s, j, 1, &rgb, &pw, &ph, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK(rgb == NULL);
    CHECK_STR_CONTAINS(msg, "no image 1");
    /* A finished job is left alone by finish_early. */
    while (!cs_job_done(j)) step(s, j);
    float first = j->latents[0];
    cs_job_finish_early(j);
    CHECK(!cs_job_finished_early(j));
    CHECK(j->latents[0] == first);
    cs_job_free(j);
}

int main(void) {
    cs_model *m;
    const int loaded = golden_model_load(MODEL_DIR, &m);
    if (loaded != GOLDEN_LOADED) return loaded == GOLDEN_ABSENT ? 0 : 1;
    char msg[1024];
    cs_session_params sp = cs_session_default_params(m);
    sp.max_width = W;
    sp.max_height = H;
    cs_session *s;
    if (cs_session_new(m, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "session: %s\n", msg);
        return 1;
    }
    const double t0 = cpu_seconds();
    const float *map = NULL;
    CHECK(preview_map(s, &map, msg, sizeof msg) == CS_OK && map != NULL);
    printf("preview map fit: %.1f ms CPU (%d VAE decodes)\n", (cpu_seconds() - t0) * 1e3,
           PREVIEW_FIT_SAMPLES);
    test_map_vs_decode(s, m);
    test_preview_of_run(s, m, "ddim");
    test_preview_of_run(s, m, "euler_a");
    test_preview_of_run(s, m, "dpmpp_2m");
    test_preview_changes_nothing(s, m);
    test_sizes_and_errors(s, m);
    cs_session_free(s);
    cs_model_free(m);
    CHECK_DONE();
}
