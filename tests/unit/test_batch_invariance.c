/* Batch invariance of the step API (STYLE §17): jobs stepped together in one UNet batch
 * must give exactly the images they give alone — with different guidance scales,
 * negative prompts, samplers, step counts and image counts in the same batch, and with
 * jobs joining and leaving the batch at different steps. Uses the golden pipeline model. */
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "golden_model.h"
#include "job.h"
#include "session.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"

typedef struct spec {
    const char *prompt, *negative, *sampler;
    double scale, rescale;
    int steps, images, karras;
    uint64_t seed;
} spec;

static const spec k_specs[] = {
    {"a red cube on a table", "", "ddim", 7.5, 0, 6, 1, 0, 11},
    {"a fox in the snow", "blurry, low quality", "euler_a", 3.0, 0, 8, 2, 0, 22},
    {"an astronaut", "", "dpmpp_2m", 1.0, 0, 5, 1, 0, 33},
    {"a green circle", "red", "pndm", 0.0, 0, 4, 1, 0, 44},
    {"a watercolor", "text", "lms", 5.0, 0.7, 7, 1, 1, 55},
    {"a tiny house", "", "ddpm", 7.5, 0, 3, 1, 0, 66},
};
enum { NJOBS = sizeof k_specs / sizeof k_specs[0] };

static cs_job *make_job(cs_session *s, const cs_model *m, const spec *sp) {
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = sp->prompt;
    p.negative_prompt = sp->negative;
    p.sampler = sp->sampler;
    p.guidance_scale = sp->scale;
    p.guidance_rescale = sp->rescale;
    p.steps = sp->steps;
    p.num_images = sp->images;
    p.karras = sp->karras;
    p.seed = sp->seed;
    char msg[1024];
    cs_job *j = NULL;
    if (cs_job_new(s, &p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "job '%s': %s\n", sp->prompt, msg);
        check_failures++;
    }
    return j;
}

/* Steps every unfinished job of `jobs` together until all are done; job i joins the
 * batch only at round join[i], so jobs enter and leave at different steps. */
static void run_together(cs_session *s, cs_job **jobs, const int *join, int n) {
    char msg[1024];
    for (int round = 0;; round++) {
        cs_job *active[NJOBS];
        int k = 0, pending = 0;
        for (int i = 0; i < n; i++) {
            if (cs_job_done(jobs[i])) continue;
            pending++;
            if (round >= join[i]) active[k++] = jobs[i];
        }
        if (!pending) break;
        if (k == 0) continue;
        if (cs_step(s, active, k, msg, sizeof msg) != CS_OK) {
            fprintf(stderr, "cs_step: %s\n", msg);
            check_failures++;
            return;
        }
    }
    if (cs_decode(s, jobs, n, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cs_decode: %s\n", msg);
        check_failures++;
    }
}

int main(void) {
    cs_model *m;
    const int loaded = golden_model_load(MODEL_DIR, &m);
    if (loaded != GOLDEN_LOADED) return loaded == GOLDEN_ABSENT ? 0 : 1;
    char msg[2048];
    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = 8; /* 7 images: CFG rows need up to 14 */
    cs_session *s;
    if (cs_session_new(m, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "session: %s\n", msg);
        return 1;
    }
    cs_job *alone[NJOBS], *together[NJOBS];
    const int join_alone[1] = {0};
    for (int i = 0; i < NJOBS; i++) {
        alone[i] = make_job(s, m, &k_specs[i]);
        if (alone[i]) run_together(s, &alone[i], join_alone, 1);
    }
    const int join[NJOBS] = {0, 0, 2, 1, 3, 0};
    for (int i = 0; i < NJOBS; i++) together[i] = make_job(s, m, &k_specs[i]);
    run_together(s, together, join, NJOBS);

    int max_diff = 0;
    for (int i = 0; i < NJOBS; i++) {
        for (int q = 0; q < k_specs[i].images; q++) {
            int w, h, w2, h2;
            const uint8_t *a = cs_job_rgb(alone[i], q, &w, &h);
            const uint8_t *b = cs_job_rgb(together[i], q, &w2, &h2);
            CHECK(a && b && w == w2 && h == h2);
            if (!a || !b) continue;
            int diff = 0;
            for (int64_t k = 0; k < (int64_t)w * h * 3; k++) {
                int d = abs((int)a[k] - (int)b[k]);
                if (d > diff) diff = d;
            }
            if (diff > max_diff) max_diff = diff;
            /* decoded together, in one VAE pass when the arena holds them: the same floats */
            const int64_t px = (int64_t)w * h * 3;
            CHECK(memcmp(alone[i]->image + q * px, together[i]->image + q * px,
                         (size_t)px * sizeof(float)) == 0);
            printf("job %d (%s, s=%g) image %d: max pixel difference alone vs batched = %d\n", i,
                   k_specs[i].sampler, k_specs[i].scale, q, diff);
        }
        const int64_t n = alone[i]->n_images * alone[i]->image_numel;
        CHECK(memcmp(alone[i]->latents, together[i]->latents, (size_t)n * sizeof(float)) == 0);
    }
    CHECK_EQ_INT(max_diff, 0);
    /* Jobs with different sizes cannot share a step; the error says so. */
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = "x";
    p.steps = 2;
    cs_job *small = NULL, *big = NULL;
    p.width = p.height = 32;
    CHECK(cs_job_new(s, &p, &small, msg, sizeof msg) == CS_OK);
    p.width = p.height = 64;
    CHECK(cs_job_new(s, &p, &big, msg, sizeof msg) == CS_OK);
    cs_job *mixed[2] = {small, big};
    CHECK(cs_step(s, mixed, 2, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "share the image size");
    cs_job_free(small);
    cs_job_free(big);
    for (int i = 0; i < NJOBS; i++) {
        cs_job_free(alone[i]);
        cs_job_free(together[i]);
    }
    cs_session_free(s);
    cs_model_free(m);
    CHECK_DONE();
}
