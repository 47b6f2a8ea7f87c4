/* Prompts in the A1111 web UI's language through the engine (CS_PROMPT_A1111): a plain
 * prompt encodes exactly as CS_PROMPT_PLAIN; emphasis changes the embedding but keeps its
 * mean; a prompt past 75 tokens or with BREAK becomes several 77-token chunks; clip skip
 * applies to the negative prompt too; and a job whose conditioning is longer than its
 * batch companions' still gives exactly what it gives alone. Uses the golden model. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "job.h"
#include "session.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"

static cs_job *job(cs_session *s, const cs_model *m, const char *prompt, const char *neg,
                   int syntax, int clip_skip, uint64_t seed) {
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = prompt;
    p.negative_prompt = neg;
    p.prompt_syntax = syntax;
    p.clip_skip = clip_skip;
    p.steps = 4;
    p.width = p.height = 32;
    p.sampler = "euler";
    p.seed = seed;
    char msg[1024];
    cs_job *j = NULL;
    if (cs_job_new(s, &p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "job '%s': %s\n", prompt, msg);
        check_failures++;
    }
    return j;
}

static double mean(const prompt_embedding *e) {
    double sum = 0;
    for (int64_t i = 0; i < e->len * e->dim; i++) sum += e->data[i];
    return sum / (double)(e->len * e->dim);
}

int main(void) {
    char msg[1024];
    cs_model *m = NULL;
    if (cs_model_load(MODEL_DIR, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "FAIL: %s\n", msg);
        return 1;
    }
    cs_session_params sp = {.max_images = 2, .max_width = 32, .max_height = 32};
    cs_session *s = NULL;
    CHECK_EQ_INT(cs_session_new(m, &sp, &s, msg, sizeof msg), CS_OK);
    if (!s) return 1;

    /* Plain text: the same embedding either way. */
    cs_job *plain = job(s, m, "a red circle", "", CS_PROMPT_PLAIN, 0, 1);
    cs_job *a1111 = job(s, m, "a red circle", "", CS_PROMPT_A1111, 0, 1);
    CHECK(plain && a1111 && a1111->cond->len == 77 && plain->cond != a1111->cond);
    CHECK(memcmp(plain->cond->data, a1111->cond->data, 77 * 32 * sizeof(float)) == 0);

    /* Emphasis: different, same mean. */
    cs_job *strong = job(s, m, "a (red:1.5) circle", "", CS_PROMPT_A1111, 0, 1);
    CHECK(strong && memcmp(plain->cond->data, strong->cond->data, 77 * 32 * sizeof(float)) != 0);
    if (strong) CHECK_NEAR(mean(strong->cond), mean(plain->cond), 1e-5 * fabs(mean(plain->cond)) + 1e-7);

    /* Chunks: BREAK and a long prompt. */
    cs_job *brk = job(s, m, "a red circle BREAK on the left", "", CS_PROMPT_A1111, 0, 1);
    CHECK(brk && brk->cond->len == 154 && brk->uncond->len == 77);
    char longp[1200] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "red ");
    cs_job *lng = job(s, m, longp, "", CS_PROMPT_A1111, 0, 1);
    CHECK(lng && lng->cond->len == 154);
    char huge[4000] = "";
    for (int i = 0; i < 320; i++) strcat(huge, "red ");
    cs_gen_params p = cs_gen_default_params(m);
    p.prompt = huge;
    p.prompt_syntax = CS_PROMPT_A1111;
    p.width = p.height = 32;
    cs_job *none = NULL;
    CHECK_EQ_INT(cs_job_new(s, &p, &none, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "longer than 4 chunks");

    /* Clip skip reaches the negative prompt in the web UI's syntax only. */
    cs_job *skip_a = job(s, m, "x", "blurry", CS_PROMPT_A1111, 1, 1);
    cs_job *skip_p = job(s, m, "x", "blurry", CS_PROMPT_PLAIN, 1, 1);
    cs_job *noskip = job(s, m, "x", "blurry", CS_PROMPT_PLAIN, 0, 1);
    CHECK(skip_a && skip_p && noskip);
    if (skip_a && skip_p && noskip) {
        CHECK(memcmp(skip_p->uncond->data, noskip->uncond->data, 77 * 32 * sizeof(float)) == 0);
        CHECK(memcmp(skip_a->uncond->data, noskip->uncond->data, 77 * 32 * sizeof(float)) != 0);
    }

    /* A 154-token job stepped with a 77-token job gives what each gives alone. */
    cs_job *alone[2] = {job(s, m, "a red circle BREAK on the left", "blue", CS_PROMPT_A1111, 0, 5),
                        job(s, m, "a blue star", "", CS_PROMPT_PLAIN, 0, 6)};
    cs_job *both[2] = {job(s, m, "a red circle BREAK on the left", "blue", CS_PROMPT_A1111, 0, 5),
                       job(s, m, "a blue star", "", CS_PROMPT_PLAIN, 0, 6)};
    for (int k = 0; k < 2; k++)
        while (alone[k] && !cs_job_done(alone[k]))
            CHECK_EQ_INT(cs_step(s, &alone[k], 1, msg, sizeof msg), CS_OK);
    while (both[0] && both[1] && !cs_job_done(both[0]))
        CHECK_EQ_INT(cs_step(s, both, 2, msg, sizeof msg), CS_OK);
    for (int k = 0; k < 2; k++)
        CHECK(alone[k] && both[k] &&
              memcmp(alone[k]->latents, both[k]->latents,
                     (size_t)alone[k]->image_numel * sizeof(float)) == 0);

    cs_job *all[] = {plain, a1111, strong, brk, lng, skip_a, skip_p, noskip,
                     alone[0], alone[1], both[0], both[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cs_job_free(all[i]);
    cs_session_free(s);
    cs_model_free(m);
    CHECK_DONE();
}
