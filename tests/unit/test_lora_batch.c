/* Mixed-LoRA batching: jobs with different LoRAs (and one without) stepped together in
 * one cs_step give bit-identical latents to each stepped alone, a LoRA changes the result,
 * and the prompt cache keys embeddings by the LoRAs that touch the text encoder. Uses the
 * golden pipeline model and random LoRA files written here. The batch check runs at the
 * native size and at 8 × 8 latents, where a pool of 2+ threads runs the rows in groups
 * (ctx_rows.h), each group with its rows' LoRAs. */
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "golden_model.h"
#include "ctx_rows.h"
#include "lora_build.h"
#include "model_lora.h"
#include "job.h"
#include "session.h"
#include "session_internal.h"
#include "unet.h"

#define MODEL_DIR CS_GOLDEN_DIR "/pipeline_tiny/model"

typedef struct spec {
    const char *prompt, *sampler;
    double scale;
    cs_lora_spec loras[2];
    int nloras;
} spec;

static const spec k_specs[] = {
    {"a red cube", "ddim", 7.5, {{"one", 0.9}}, 1},
    {"a red cube", "euler", 5.0, {{"two.safetensors", -0.7}, {"one", 0.3}}, 2},
    {"a red cube", "ddim", 7.5, {{0}}, 0},
    {"a blue sphere", "dpmpp_2m", 1.0, {{"unet_only", 1.2}}, 1},
};
enum { NJOBS = sizeof k_specs / sizeof k_specs[0] };

static int g_side; /* latent side of the jobs; 0: the native size */

static cs_job *make_job(cs_session *s, const cs_model *m, const spec *sp, bool with_lora) {
    cs_gen_params p = cs_gen_default_params(m);
    if (g_side) p.width = p.height = (int)(g_side * m->vae_factor);
    p.prompt = sp->prompt;
    p.sampler = sp->sampler;
    p.guidance_scale = sp->scale;
    p.steps = 4;
    p.seed = 7;
    p.loras = with_lora ? sp->loras : NULL;
    p.num_loras = with_lora ? sp->nloras : 0;
    char msg[1024];
    cs_job *j = NULL;
    if (cs_job_new(s, &p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "job '%s': %s\n", sp->prompt, msg);
        check_failures++;
    }
    return j;
}

static void run(cs_session *s, cs_job **jobs, int n) {
    char msg[1024];
    while (!cs_job_done(jobs[0]))
        if (cs_step(s, jobs, n, msg, sizeof msg) != CS_OK) {
            fprintf(stderr, "cs_step: %s\n", msg);
            check_failures++;
            return;
        }
}

static bool same_latents(const cs_job *a, const cs_job *b) {
    return memcmp(a->latents, b->latents, (size_t)(a->n_images * a->image_numel) * sizeof(float)) == 0;
}

/* Each job alone, and all in one batch, at latent side g_side; the LoRA, prompt cache and
 * parameter-text checks. */
static void check_mixed(cs_model *m) {
    char msg[1024];
    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = 4;
    cs_session *s;
    if (cs_session_new(m, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "session: %s\n", msg);
        check_failures++;
        return;
    }
    cs_job *alone[NJOBS], *together[NJOBS], *plain[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        alone[i] = make_job(s, m, &k_specs[i], true);
        plain[i] = make_job(s, m, &k_specs[i], false);
        if (alone[i]) run(s, &alone[i], 1);
        if (plain[i]) run(s, &plain[i], 1);
        together[i] = make_job(s, m, &k_specs[i], true);
    }
    for (int i = 0; i < NJOBS; i++) CHECK(alone[i] && together[i] && plain[i]);
    if (check_failures) return;
    /* Up to 8 rows of one step: in groups on a pool of 2+ threads where the model is small. */
    const int threads = ctx_threads(&s->ctx);
    const int64_t side = g_side ? g_side : together[0]->lat_h;
    const int groups = unet_row_groups(m->unet, 2 * NJOBS, side, side, m->context_len, threads);
    printf("latents %lld^2, %d pool thread(s): %d row group(s)\n", (long long)side, threads, groups);
    if (g_side && threads >= 2) CHECK(groups >= 2);
    run(s, together, NJOBS);
    for (int i = 0; i < NJOBS; i++) {
        const bool same = same_latents(alone[i], together[i]);
        printf("job %d (%d LoRA(s)): alone vs mixed batch bit-identical: %s\n", i,
               k_specs[i].nloras, same ? "yes" : "NO");
        CHECK(same);
        /* The LoRA must change the result; the job without one equals its plain twin. */
        CHECK(same_latents(alone[i], plain[i]) == (k_specs[i].nloras == 0));
    }
    /* Text-encoder LoRAs key the prompt cache: same prompt, different embeddings. */
    CHECK(alone[0]->cond != alone[2]->cond);
    CHECK(memcmp(alone[0]->cond->data, alone[2]->cond->data,
                 (size_t)(m->context_len * m->context_dim) * sizeof(float)) != 0);
    CHECK(alone[0]->cond == together[0]->cond); /* same LoRAs and weights: a cache hit */
    CHECK(alone[0]->cond != alone[1]->cond);
    /* A LoRA that leaves the text encoder alone shares the plain embedding. */
    CHECK(alone[3]->cond == plain[3]->cond);
    CHECK(alone[3]->loras.te_key[0] == '\0');
    CHECK_STR_CONTAINS(alone[0]->loras.te_key, "one:0.9");

    char *text = cs_job_parameters_text(alone[1], 0);
    CHECK_STR_CONTAINS(text, "Lora: \"two:-0.7, one:0.3\"");
    free(text);
    text = cs_job_parameters_text(alone[0], 0);
    CHECK_STR_CONTAINS(text, ", Lora: one:0.9");
    free(text);
    for (int i = 0; i < NJOBS; i++) {
        cs_job_free(alone[i]);
        cs_job_free(together[i]);
        cs_job_free(plain[i]);
    }
    cs_session_free(s);
}

int main(void) {
    cs_model *m;
    const int loaded = golden_model_load(MODEL_DIR, &m);
    if (loaded != GOLDEN_LOADED) return loaded == GOLDEN_ABSENT ? 0 : 1;
    char msg[2048];
    char *dir = stb_tmpdir();
    const lora_module_table *tables[LORA_COMPONENTS];
    model_lora_tables(m, tables);
    lb_write(dir, "one.safetensors", tables, 3, 0, 2, false, 1);
    lb_write(dir, "two.safetensors", tables, 2, 1, 4, true, 2);
    const lora_module_table empty = {.prefix = "lora_te_"};
    const lora_module_table *unet_only[LORA_COMPONENTS] = {tables[LORA_UNET], &empty};
    lb_write(dir, "unet_only.safetensors", unet_only, 1, 0, 3, false, 3);
    CHECK(cs_model_set_lora_dir(m, dir, msg, sizeof msg) == CS_OK);

    check_mixed(m);
    g_side = 8;
    check_mixed(m);

    int count = 0;
    char **names = cs_lora_list(m, &count);
    CHECK_EQ_INT(count, 3);
    CHECK(names && names[0] && strcmp(names[0], "one") == 0 && names[3] == NULL);
    cs_lora_list_free(names);

    cs_model_free(m);
    stb_rmtree(dir);
    free(dir);
    CHECK_DONE();
}
