/* Generation parameters and results through the public API: every invalid field is
 * refused naming it, guidance decides the UNet rows, the same seed gives byte-identical
 * PNGs, and the PNG carries the A1111 "parameters" text, read back here with libpng. */
#include <png.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "job.h"
#include "session.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"
#define WEMBED_DIR CS_GOLDEN_DIR "/pipeline_tiny_wembed/model"

static void expect_field(const cs_model *m, cs_gen_params p, const char *field) {
    char msg[512];
    const char *got = NULL;
    cs_status st = cs_params_validate(m, &p, &got, msg, sizeof msg);
    CHECK(st == CS_ERR_INVALID_ARG);
    if (!got || strcmp(got, field) != 0) {
        fprintf(stderr, "expected field %s, got %s (%s)\n", field, got ? got : "(none)", msg);
        check_failures++;
    }
}

/* A guidance-distilled model (UNet time_cond_proj_dim): no unconditional rows whatever
 * the scale, each job's own embedding, and the settings that need an unconditional pass
 * refused by name. */
static void test_guidance_embedded(void) {
    char msg[1024];
    cs_model *m = NULL;
    if (cs_model_load(WEMBED_DIR, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "%s\n", msg);
        CHECK(!"guidance-embedded model loads");
        return;
    }
    cs_gen_params ok = cs_gen_default_params(m);
    ok.prompt = "a red cube";
    ok.steps = 2;
    ok.width = ok.height = 32;
    ok.num_images = 2;
    CHECK(cs_params_validate(m, &ok, NULL, msg, sizeof msg) == CS_OK);
    cs_gen_params p = ok;
    p.negative_prompt = "blurry";
    expect_field(m, p, "negative_prompt");
    cs_params_validate(m, &p, NULL, msg, sizeof msg);
    CHECK_STR_CONTAINS(msg, "guidance-distilled");
    p = ok;
    p.guidance_rescale = 0.5;
    expect_field(m, p, "guidance_rescale");
    p = ok;
    p.guidance_lo = 0.5;
    p.guidance_hi = 5;
    expect_field(m, p, "guidance_interval");

    cs_session_params sp = {.max_images = 3, .max_width = 32, .max_height = 32};
    cs_session *s = NULL;
    cs_job *a = NULL, *b = NULL;
    CHECK(cs_session_new(m, &sp, &s, msg, sizeof msg) == CS_OK);
    p = ok;
    p.guidance_scale = 6.0;
    CHECK(s && cs_job_new(s, &p, &a, msg, sizeof msg) == CS_OK);
    p.num_images = 1;
    p.guidance_scale = 2.0;
    CHECK(s && cs_job_new(s, &p, &b, msg, sizeof msg) == CS_OK);
    if (a && b) {
        CHECK_EQ_INT(cs_job_rows_next_step(a), 2); /* one row per image, no uncond */
        CHECK_EQ_INT(cs_job_rows_next_step(b), 1);
        CHECK(a->uncond == NULL && a->w_embed && b->w_embed);
        CHECK(a->w_embed[0] != b->w_embed[0]); /* each job embeds its own scale */
        /* Both in one batch of 3 rows: fits a session planned for 3 images. */
        cs_job *both[2] = {a, b};
        CHECK(cs_step(s, both, 2, msg, sizeof msg) == CS_OK);
        CHECK_EQ_INT(cs_job_step(a), 1);
    }
    cs_job_free(a);
    cs_job_free(b);
    cs_session_free(s);
    cs_model_free(m);
}

typedef struct mem_reader {
    const uint8_t *data;
    size_t len, at;
} mem_reader;

static void read_mem(png_structp png, png_bytep out, png_size_t n) {
    mem_reader *r = png_get_io_ptr(png);
    if (r->at + n > r->len) png_error(png, "short");
    memcpy(out, r->data + r->at, n);
    r->at += n;
}

/* The "parameters" text of a PNG (malloc'd), or NULL. Also checks size and format. */
static char *png_parameters(const uint8_t *data, size_t len, int w, int h) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    mem_reader r = {data, len, 0};
    char *volatile out = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return NULL;
    }
    png_set_read_fn(png, &r, read_mem);
    png_read_info(png, info);
    CHECK_EQ_INT(png_get_image_width(png, info), w);
    CHECK_EQ_INT(png_get_image_height(png, info), h);
    CHECK_EQ_INT(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    CHECK_EQ_INT(png_get_bit_depth(png, info), 8);
    png_textp texts;
    int n = 0;
    png_get_text(png, info, &texts, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(texts[i].key, "parameters") == 0) out = strdup(texts[i].text);
    png_destroy_read_struct(&png, &info, NULL);
    return out;
}

static cs_job *run_job(cs_session *s, const cs_gen_params *p) {
    char msg[512];
    cs_job *j = NULL;
    if (cs_job_new(s, p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cs_job_new: %s\n", msg);
        check_failures++;
        return NULL;
    }
    while (!cs_job_done(j)) CHECK(cs_step(s, &j, 1, msg, sizeof msg) == CS_OK);
    CHECK(cs_decode(s, &j, 1, msg, sizeof msg) == CS_OK);
    return j;
}

int main(void) {
    struct stat sb;
    if (stat(MODEL_DIR, &sb) != 0) {
        printf("golden model not found at %s; nothing to test\n", MODEL_DIR);
        return 0;
    }
    char msg[1024];
    cs_model *m;
    test_guidance_embedded();
    CHECK(cs_model_load(MODEL_DIR, &m, msg, sizeof msg) == CS_OK);
    int w, h;
    cs_model_native_size(m, &w, &h);
    CHECK_EQ_INT(w, 64);
    CHECK_EQ_INT(h, 64);
    CHECK_EQ_INT(cs_model_size_multiple(m), 4);

    cs_gen_params ok = cs_gen_default_params(m);
    ok.prompt = "a red cube";
    ok.steps = 3;
    CHECK(cs_params_validate(m, &ok, NULL, msg, sizeof msg) == CS_OK);
    cs_gen_params p = ok;
    p.prompt = NULL;
    expect_field(m, p, "prompt");
    p = ok;
    p.prompt = "bad \xff utf8";
    expect_field(m, p, "prompt");
    p = ok;
    p.negative_prompt = "\xc0\xaf"; /* overlong '/' */
    expect_field(m, p, "negative_prompt");
    p = ok;
    p.guidance_scale = -1;
    expect_field(m, p, "guidance_scale");
    p.guidance_scale = 0.0 / 0.0;
    expect_field(m, p, "guidance_scale");
    p = ok;
    p.steps = 0;
    expect_field(m, p, "steps");
    p.steps = cs_max_steps() + 1;
    expect_field(m, p, "steps");
    p = ok;
    p.width = 66;
    expect_field(m, p, "width");
    p = ok;
    p.height = 0;
    expect_field(m, p, "height");
    p = ok;
    p.num_images = CS_MAX_IMAGES_PER_JOB + 1;
    expect_field(m, p, "num_images");
    p = ok;
    p.sampler = "heun";
    expect_field(m, p, "sampler");
    p = ok;
    p.guidance_rescale = 1.5;
    expect_field(m, p, "guidance_rescale");
    p = ok;
    p.guidance_lo = 5;
    p.guidance_hi = 1;
    expect_field(m, p, "guidance_interval");
    p = ok;
    p.clip_skip = 99;
    expect_field(m, p, "clip_skip");
    p = ok;
    p.eta = 2;
    expect_field(m, p, "eta");

    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = 2;
    cs_session *s;
    CHECK(cs_session_new(m, &sp, &s, msg, sizeof msg) == CS_OK);
    CHECK(cs_session_bytes(s) > 0);
    /* A job larger than the session plan is refused up front, not mid-run. */
    p = ok;
    p.num_images = 3;
    cs_job *big = NULL;
    CHECK(cs_job_new(s, &p, &big, msg, sizeof msg) == CS_ERR_INVALID_ARG && big == NULL);
    p = ok;
    p.width = 128;
    CHECK(cs_job_new(s, &p, &big, msg, sizeof msg) == CS_ERR_INVALID_ARG && big == NULL);

    /* Guidance decides the rows: 2 with CFG, 1 at s = 1 and at s = 0. */
    cs_job *j = NULL;
    p = ok;
    CHECK(cs_job_new(s, &p, &j, msg, sizeof msg) == CS_OK);
    CHECK_EQ_INT(cs_job_rows_next_step(j), 2);
    cs_job_free(j);
    p.guidance_scale = 1.0;
    CHECK(cs_job_new(s, &p, &j, msg, sizeof msg) == CS_OK);
    CHECK_EQ_INT(cs_job_rows_next_step(j), 1);
    cs_job_free(j);
    p.guidance_scale = 0.0;
    CHECK(cs_job_new(s, &p, &j, msg, sizeof msg) == CS_OK);
    CHECK_EQ_INT(cs_job_rows_next_step(j), 1);
    CHECK(cs_job_png(j, 0, &(uint8_t *){NULL}, &(size_t){0}, msg, sizeof msg) ==
          CS_ERR_INVALID_ARG); /* not decoded yet */
    cs_job_free(j);

    /* clip_skip changes the prompt's embedding only: diffusers 0.27.2 encodes the
     * negative prompt with the last layer whatever clip_skip is. */
    cs_job *skip = NULL, *noskip = NULL;
    p = ok;
    p.negative_prompt = "blurry";
    p.clip_skip = 1;
    CHECK(cs_job_new(s, &p, &skip, msg, sizeof msg) == CS_OK);
    p.clip_skip = 0;
    CHECK(cs_job_new(s, &p, &noskip, msg, sizeof msg) == CS_OK);
    if (skip && noskip) {
        const size_t bytes = (size_t)(m->context_len * m->context_dim) * sizeof(float);
        CHECK(memcmp(skip->uncond->data, noskip->uncond->data, bytes) == 0);
        CHECK(memcmp(skip->cond->data, noskip->cond->data, bytes) != 0);
    }
    cs_job_free(skip);
    cs_job_free(noskip);

    /* Same seed, same bytes; the parameters chunk round-trips. */
    p = ok;
    p.negative_prompt = "blurry";
    p.seed = 12345;
    p.sampler = "euler_a";
    p.num_images = 2;
    cs_job *a = run_job(s, &p), *b = run_job(s, &p);
    uint8_t *pa = NULL, *pb = NULL, *pc = NULL;
    size_t la = 0, lb = 0, lc = 0;
    CHECK(a && b);
    if (a && b) {
        CHECK(cs_job_png(a, 0, &pa, &la, msg, sizeof msg) == CS_OK);
        CHECK(cs_job_png(b, 0, &pb, &lb, msg, sizeof msg) == CS_OK);
        CHECK(cs_job_png(a, 1, &pc, &lc, msg, sizeof msg) == CS_OK);
        CHECK(la == lb && memcmp(pa, pb, la) == 0);
        CHECK(la != lc || memcmp(pa, pc, la) != 0); /* image 1 uses seed + 1 */
        CHECK_EQ_INT(cs_job_seed(a, 1), 12346);
        char *text = png_parameters(pa, la, 64, 64);
        CHECK_STR_CONTAINS(text, "a red cube\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a, "
                                 "CFG scale: 7.5, Seed: 12345, Size: 64x64, Model: model");
        free(text);
        text = png_parameters(pc, lc, 64, 64);
        CHECK_STR_CONTAINS(text, "Seed: 12346");
        free(text);
    }
    free(pa);
    free(pb);
    free(pc);
    cs_job_free(a);
    cs_job_free(b);
    cs_session_free(s);
    cs_model_free(m);
    CHECK_DONE();
}
