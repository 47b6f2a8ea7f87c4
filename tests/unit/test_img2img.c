/* img2img and inpainting on the golden tiny model (img2img.c): every sampler runs from an
 * init image; the validation rules; 4-channel inpainting keeps the unmasked latents
 * exactly and repaints the rest; the latent mask is a nearest-neighbour pick; an
 * inpainting UNet (9 input channels, made here from the tiny UNet with a random conv_in)
 * needs image and mask and sees the masked image; img2img / inpainting jobs batch with
 * text-to-image jobs without changing a bit. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "golden_model.h"
#include "img2img.h"
#include "rng.h"
#include "safetensors.h"
#include "job.h"
#include "session.h"
#include "st_build.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"
enum { W = 32, H = 32 }; /* small: the test runs every sampler */

static uint8_t g_rgb[H * W * 3];

static void make_image(void) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = g_rgb + (y * W + x) * 3;
            p[0] = (uint8_t)(x * 8);
            p[1] = (uint8_t)(y * 8);
            p[2] = (uint8_t)((x + y) * 4);
        }
}

static cs_gen_params base_params(const cs_model *m, const char *sampler) {
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = "a fox in the snow";
    p.negative_prompt = "blurry";
    p.sampler = sampler;
    p.steps = 10;
    p.width = W;
    p.height = H;
    p.seed = 7;
    p.init_image = g_rgb;
    p.strength = 0.3; /* int(10 · 0.3) = 3 steps, from step 7 */
    return p;
}

static cs_job *new_job(cs_session *s, const cs_gen_params *p) {
    char msg[1024];
    cs_job *j = NULL;
    if (cs_job_new(s, p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cs_job_new: %s\n", msg);
        check_failures++;
    }
    return j;
}

static void run(cs_session *s, cs_job **jobs, int n) {
    char msg[1024];
    for (;;) {
        cs_job *active[8];
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!cs_job_done(jobs[i])) active[k++] = jobs[i];
        if (!k) return;
        if (cs_step(s, active, k, msg, sizeof msg) != CS_OK) {
            fprintf(stderr, "cs_step: %s\n", msg);
            check_failures++;
            return;
        }
    }
}

static bool all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

static void expect_invalid(const cs_model *m, const cs_gen_params *p, const char *field,
                           const char *text) {
    const char *got = NULL;
    char msg[512] = "";
    CHECK(cs_params_validate(m, p, &got, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK(got && strcmp(got, field) == 0);
    CHECK_STR_CONTAINS(msg, text);
}

static void test_samplers(cs_session *s, const cs_model *m) {
    for (const char *const *name = cs_sampler_names(); *name; name++) {
        cs_gen_params p = base_params(m, *name);
        cs_job *j = new_job(s, &p);
        if (!j) continue;
        const int expect = strcmp(*name, "pndm") == 0 ? 4 : 3; /* PNDM repeats a timestep */
        CHECK_EQ_INT(cs_job_steps(j), expect);
        CHECK_EQ_INT(cs_job_step(j), 0);
        CHECK_EQ_INT(j->first_step, 7);
        /* The start is add_noise(init latents, noise, first step), nothing else. */
        float *want = malloc((size_t)j->image_numel * sizeof *want);
        sched_add_noise(j->sched, j->first_step, j->init_latents, j->init_noise, want,
                        j->image_numel);
        CHECK(memcmp(want, j->latents, (size_t)j->image_numel * sizeof *want) == 0);
        free(want);
        run(s, &j, 1);
        CHECK(cs_job_done(j));
        CHECK_EQ_INT(cs_job_step(j), expect);
        const bool ok = all_finite(j->latents, j->image_numel);
        CHECK(ok);
        printf("img2img %-13s %d steps from step %d: %s\n", *name, cs_job_steps(j), j->first_step,
               ok ? "finite" : "NOT FINITE");
        cs_job_free(j);
    }
}

static void test_validation(const cs_model *m) {
    cs_gen_params p = base_params(m, "ddim");
    p.strength = 0;
    expect_invalid(m, &p, "strength", "(0, 1]");
    p.strength = 1.5;
    expect_invalid(m, &p, "strength", "(0, 1]");
    p.strength = NAN;
    expect_invalid(m, &p, "strength", "(0, 1]");
    p.steps = 2;
    p.strength = 0.3; /* int(0.6) = 0 steps */
    expect_invalid(m, &p, "strength", "runs no step");
    p.strength = 0.5;
    CHECK(cs_params_validate(m, &p, NULL, NULL, 0) == CS_OK);
    static uint8_t mask[H * W];
    p = base_params(m, "ddim");
    p.init_image = NULL;
    p.mask = mask;
    expect_invalid(m, &p, "mask", "needs an init_image");
    p.mask = NULL;
    p.strength = 0; /* ignored without an init image */
    CHECK(cs_params_validate(m, &p, NULL, NULL, 0) == CS_OK);
    CHECK_EQ_INT(sched_strength_begin(10, 0.6), 4);
    CHECK_EQ_INT(sched_strength_begin(10, 1.0), 0);
    CHECK_EQ_INT(sched_strength_begin(3, 0.5), 2); /* int(1.5) = 1 */
}

/* Inpaints with `mask` and returns the finished job. */
static cs_job *inpaint(cs_session *s, const cs_model *m, const char *sampler, const uint8_t *mask,
                       double strength) {
    cs_gen_params p = base_params(m, sampler);
    p.mask = mask;
    p.strength = strength;
    cs_job *j = new_job(s, &p);
    if (j) run(s, &j, 1);
    return j;
}

static void test_inpaint4(cs_session *s, const cs_model *m) {
    static uint8_t mask[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) mask[y * W + x] = x < W / 2 ? 0 : 255; /* repaint the right */
    const char *samplers[] = {"ddim", "euler", "dpmpp_2m", "lms", "pndm"};
    for (int si = 0; si < 5; si++)
        for (int full = 0; full < 2; full++) {
            cs_job *j = inpaint(s, m, samplers[si], mask, full ? 1.0 : 0.3);
            if (!j) continue;
            const int64_t h = j->lat_h, w = j->lat_w, cells = h * w;
            int64_t kept_diff = 0, repainted_same = 0;
            for (int64_t c = 0; c < m->latent_channels; c++)
                for (int64_t q = 0; q < cells; q++) {
                    const int64_t k = c * cells + q;
                    const bool repaint = q % w >= w / 2;
                    CHECK_EQ_INT(j->mask[q], repaint ? 1 : 0);
                    if (!repaint && j->latents[k] != j->init_latents[k]) kept_diff++;
                    if (repaint && j->latents[k] == j->init_latents[k]) repainted_same++;
                }
            CHECK_EQ_INT(kept_diff, 0);
            CHECK(repainted_same < cells / 100);
            printf("inpaint 4ch %-8s strength %.1f: kept cells differing from init latents %lld, "
                   "repainted cells unchanged %lld of %lld\n",
                   samplers[si], full ? 1.0 : 0.3, (long long)kept_diff, (long long)repainted_same,
                   (long long)(cells * m->latent_channels / 2));
            cs_job_free(j);
        }
    /* strength 1 with a mask: the start is pure noise · init_noise_sigma (is_strength_max). */
    cs_gen_params p = base_params(m, "euler");
    p.mask = mask;
    p.strength = 1.0;
    cs_job *j = new_job(s, &p);
    if (j) {
        const float sigma0 = sched_init_noise_sigma(j->sched);
        int64_t bad = 0;
        for (int64_t k = 0; k < j->image_numel; k++) bad += j->latents[k] != j->init_noise[k] * sigma0;
        CHECK_EQ_INT(bad, 0);
        cs_job_free(j);
    }
    /* Nothing to repaint: the result is the init latents. Odd pixels alone set: the
     * nearest pick (even pixels) sees none of them. */
    for (int variant = 0; variant < 2; variant++) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                mask[y * W + x] = variant && (x % 2 || y % 2) ? 255 : 0;
        j = inpaint(s, m, "euler_a", mask, 0.8);
        if (!j) continue;
        CHECK(memcmp(j->latents, j->init_latents, (size_t)j->image_numel * sizeof(float)) == 0);
        cs_job_free(j);
    }
}

/* Masked content: the latent fills change the init latents under the mask alone (to the
 * image's noise or to zeros), "fill" changes the encoded image, and the unmasked cells
 * still end as the job's own init latents. A fill needs a mask. */
static void test_fills(cs_session *s, const cs_model *m) {
    static uint8_t mask[H * W];
    for (int q = 0; q < H * W; q++) mask[q] = (q % W) >= W / 2 ? 255 : 0;
    cs_gen_params p = base_params(m, "euler");
    p.inpaint_fill = CS_FILL_LATENT_NOISE;
    expect_invalid(m, &p, "inpaint_fill", "needs a mask");
    p.mask = mask;
    p.inpaint_fill = 9;
    expect_invalid(m, &p, "inpaint_fill", "CS_FILL_");
    p.inpaint_fill = CS_FILL_ORIGINAL;
    cs_job *orig = new_job(s, &p);
    for (int fill = CS_FILL_BLUR; fill <= CS_FILL_LATENT_NOTHING && orig; fill++) {
        p.inpaint_fill = fill;
        cs_job *j = new_job(s, &p);
        if (!j) continue;
        const int64_t cells = j->lat_h * j->lat_w;
        int64_t kept_diff = 0, masked_wrong = 0, masked_same = 0;
        for (int64_t k = 0; k < j->image_numel; k++) {
            const bool masked = j->mask[k % cells] > 0;
            if (!masked) kept_diff += fill != CS_FILL_BLUR && j->init_latents[k] != orig->init_latents[k];
            else if (fill == CS_FILL_LATENT_NOISE) masked_wrong += j->init_latents[k] != j->init_noise[k];
            else if (fill == CS_FILL_LATENT_NOTHING) masked_wrong += j->init_latents[k] != 0.0f;
            else masked_same += j->init_latents[k] == orig->init_latents[k];
        }
        CHECK_EQ_INT(kept_diff, 0);
        CHECK_EQ_INT(masked_wrong, 0);
        CHECK(masked_same < j->image_numel / 100);
        run(s, &j, 1);
        int64_t end_diff = 0;
        for (int64_t k = 0; k < j->image_numel; k++)
            end_diff += j->mask[k % cells] == 0 && j->latents[k] != j->init_latents[k];
        CHECK_EQ_INT(end_diff, 0);
        cs_job_free(j);
    }
    cs_job_free(orig);
}

/* Batch invariance: img2img and inpainting jobs stepped beside a text-to-image job give
 * the bits they give alone. */
static void test_batching(cs_session *s, const cs_model *m) {
    static uint8_t mask[H * W];
    for (int q = 0; q < H * W; q++) mask[q] = (q / W) < H / 3 ? 255 : 0;
    cs_gen_params ps[3] = {base_params(m, "dpmpp_2m_sde"), base_params(m, "euler_a"),
                           base_params(m, "ddim")};
    ps[1].mask = mask;
    ps[2].init_image = NULL; /* text-to-image */
    ps[2].steps = 5;
    ps[2].num_images = 2;
    cs_job *alone[3], *together[3];
    for (int i = 0; i < 3; i++) {
        alone[i] = new_job(s, &ps[i]);
        if (alone[i]) run(s, &alone[i], 1);
        together[i] = new_job(s, &ps[i]);
    }
    if (!together[0] || !together[1] || !together[2]) return;
    run(s, together, 3);
    for (int i = 0; i < 3; i++) {
        const int64_t n = alone[i]->n_images * alone[i]->image_numel;
        CHECK(memcmp(alone[i]->latents, together[i]->latents, (size_t)n * sizeof(float)) == 0);
        cs_job_free(alone[i]);
        cs_job_free(together[i]);
    }
    /* Image i of a job is image 0 of the same job with seed + i. */
    ps[0].num_images = 2;
    cs_job *two = new_job(s, &ps[0]);
    ps[0].num_images = 1;
    ps[0].seed += 1;
    cs_job *second = new_job(s, &ps[0]);
    if (two && second) {
        run(s, &two, 1);
        run(s, &second, 1);
        CHECK(memcmp(two->latents + two->image_numel, second->latents,
                     (size_t)second->image_numel * sizeof(float)) == 0);
    }
    cs_job_free(two);
    cs_job_free(second);
}

/* --- an inpainting UNet: the tiny UNet with conv_in taking 9 channels --- */

static char *make_inpaint_model(void) {
    char *dir = stb_tmpdir(), path[4096], msg[512];
    const char *links[] = {"tokenizer", "text_encoder", "vae", "scheduler", "model_index.json"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, links[i]);
        char target[4096];
        snprintf(target, sizeof target, "%s/%s", MODEL_DIR, links[i]);
        if (symlink(target, path) != 0) abort();
    }
    snprintf(path, sizeof path, "%s/unet", dir);
    if (mkdir(path, 0700) != 0) abort();
    /* config: in_channels 9 */
    FILE *f = fopen(MODEL_DIR "/unet/config.json", "rb");
    char cfg[8192];
    size_t len = f ? fread(cfg, 1, sizeof cfg - 1, f) : 0;
    if (f) fclose(f);
    cfg[len] = '\0';
    char *at = strstr(cfg, "\"in_channels\": 4");
    if (!at) abort();
    at[strlen("\"in_channels\": ")] = '9';
    free(stb_write(path, "config.json", cfg, len));
    /* weights: every tensor as is, conv_in.weight widened to [32, 9, 3, 3] at random */
    st_file *src;
    if (st_open(MODEL_DIR "/unet/diffusion_pytorch_model.safetensors", &src, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "%s\n", msg);
        abort();
    }
    stb_file out = {0};
    for (int64_t i = 0; i < src->count; i++) {
        const st_tensor *t = &src->tensors[i];
        if (strcmp(t->name, "conv_in.weight") == 0) {
            const int64_t shape[4] = {t->shape[0], 9, t->shape[2], t->shape[3]};
            const int64_t numel = shape[0] * 9 * shape[2] * shape[3];
            float *wv = malloc((size_t)numel * sizeof *wv);
            rng_normal_fill(99, 0, 0, wv, numel);
            for (int64_t k = 0; k < numel; k++) wv[k] *= 1.0f / sqrtf(9.0f * 9.0f);
            stb_tensor(&out, t->name, "F32", 4, shape, wv, (size_t)numel * sizeof *wv);
            free(wv);
        } else {
            stb_tensor(&out, t->name, st_dtype_name(t->dtype), t->ndim, t->shape,
                       src->data + t->offset, t->nbytes);
        }
    }
    st_close(src);
    stb_buf img = stb_finish(&out);
    free(stb_write(path, "diffusion_pytorch_model.safetensors", img.p, img.len));
    free(img.p);
    return dir;
}

static void remove_inpaint_model(char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    unlink(path);
    stb_rmtree(dir);
    free(dir);
}

static void test_inpaint9(void) {
    char *dir = make_inpaint_model(), msg[1024];
    cs_model *m = NULL;
    if (cs_model_load(dir, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "inpainting model: %s\n", msg);
        check_failures++;
        remove_inpaint_model(dir);
        return;
    }
    CHECK(m->inpainting);
    cs_session *s = NULL;
    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = 2;
    CHECK(cs_session_new(m, &sp, &s, msg, sizeof msg) == CS_OK);
    static uint8_t mask[H * W];
    cs_gen_params p = base_params(m, "euler");
    p.init_image = NULL;
    expect_invalid(m, &p, "init_image", "inpainting model");
    p.init_image = g_rgb;
    expect_invalid(m, &p, "mask", "needs init_image and mask");
    p.mask = mask; /* all zero: the masked image is the image */
    cs_job *j = new_job(s, &p);
    if (j) {
        CHECK(memcmp(j->masked_mean, j->enc_mean, (size_t)j->image_numel * sizeof(float)) == 0);
        cs_job_free(j);
    }
    for (int q = 0; q < H * W; q++) mask[q] = (q % W) >= W / 2 ? 255 : 0;
    cs_job *jobs[2] = {new_job(s, &p), NULL};
    p.strength = 1.0;
    p.seed = 8;
    jobs[1] = new_job(s, &p);
    cs_job *alone = new_job(s, &p);
    if (jobs[0] && jobs[1] && alone) {
        int64_t same = 0;
        for (int64_t k = 0; k < jobs[0]->image_numel; k++)
            same += jobs[0]->masked_mean[k] == jobs[0]->enc_mean[k];
        CHECK(same < jobs[0]->image_numel); /* the masked image encodes differently */
        run(s, jobs, 2);
        run(s, &alone, 1);
        CHECK(all_finite(jobs[0]->latents, jobs[0]->image_numel));
        /* No blending: the kept half is the model's, not the init latents. */
        int64_t equal = 0;
        for (int64_t k = 0; k < jobs[0]->image_numel; k++)
            equal += jobs[0]->latents[k] == jobs[0]->init_latents[k];
        CHECK(equal < jobs[0]->image_numel / 100);
        CHECK(memcmp(jobs[1]->latents, alone->latents,
                     (size_t)alone->image_numel * sizeof(float)) == 0);
        CHECK(cs_decode(s, jobs, 2, msg, sizeof msg) == CS_OK);
        printf("inpaint 9ch: ran %d + %d steps, batched == alone\n", cs_job_steps(jobs[0]),
               cs_job_steps(jobs[1]));
    }
    cs_job_free(jobs[0]);
    cs_job_free(jobs[1]);
    cs_job_free(alone);
    cs_session_free(s);
    cs_model_free(m);
    remove_inpaint_model(dir);
}

int main(void) {
    cs_model *m;
    const int loaded = golden_model_load(MODEL_DIR, &m);
    if (loaded != GOLDEN_LOADED) return loaded == GOLDEN_ABSENT ? 0 : 1;
    make_image();
    char msg[1024];
    CHECK(!m->inpainting);
    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = 4;
    cs_session *s;
    if (cs_session_new(m, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "session: %s\n", msg);
        return 1;
    }
    test_validation(m);
    test_samplers(s, m);
    test_inpaint4(s, m);
    test_fills(s, m);
    test_batching(s, m);
    cs_session_free(s);
    cs_model_free(m);
    test_inpaint9();
    CHECK_DONE();
}
