/* Golden handler for kind "pipeline": a whole StableDiffusionPipeline call replayed
 * through the public step API — every prompt of the call is its own job and all jobs are
 * stepped together in one batched cs_step per step, so this also checks batching. The
 * case's initial latents replace the jobs' own noise. Compared: prompt embeddings,
 * timesteps, the latents after every step, and the final image. */
#include "golden.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "session.h"

enum { MAX_PROMPTS = 8 };

static int string_or_list(const cJSON *v, const char **out) {
    if (cJSON_IsString(v)) {
        out[0] = v->valuestring;
        return 1;
    }
    int n = 0;
    if (cJSON_IsArray(v))
        for (const cJSON *e = v->child; e && n < MAX_PROMPTS; e = e->next)
            if (cJSON_IsString(e)) out[n++] = e->valuestring;
    return n;
}

static float max_abs(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* Replaces the model's scheduler by the case's (what the reference did with
 * pipe.scheduler = Class.from_config(...)). */
static cs_status swap_scheduler(golden_case *gc, cs_model *m, char *msg, size_t n) {
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(gc->json, "scheduler");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(sc, "config");
    if (!cJSON_IsString(cfg)) return CS_OK;
    char path[4096];
    golden_path(path, sizeof path, gc->dir, cfg->valuestring);
    sched_config *s;
    cs_status st = sched_config_load(path, &s, msg, n);
    if (st != CS_OK) return st;
    sched_config_free(m->scheduler);
    m->scheduler = s;
    return CS_OK;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    const cJSON *mdir = cJSON_GetObjectItemCaseSensitive(gc->json, "model_dir");
    if (!cJSON_IsString(mdir))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks model_dir", gc->dir);
    char path[4096];
    golden_path(path, sizeof path, gc->dir, mdir->valuestring);
    cs_model *m = NULL;
    cs_status st = cs_model_load(path, &m, msg, n);
    if (st == CS_OK) st = golden_pipeline_replay(gc, m, msg, n);
    cs_model_free(m);
    return st;
}

cs_status golden_pipeline_replay(golden_case *gc, cs_model *m, char *msg, size_t n) {
    const cJSON *call = cJSON_GetObjectItemCaseSensitive(gc->json, "call");
    if (!cJSON_IsObject(call))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks call", gc->dir);
    const char *prompts[MAX_PROMPTS], *negs[MAX_PROMPTS];
    int np = string_or_list(cJSON_GetObjectItemCaseSensitive(call, "prompt"), prompts);
    int nn = string_or_list(cJSON_GetObjectItemCaseSensitive(call, "negative_prompt"), negs);
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(call, "guidance_scale");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(call, "num_inference_steps");
    const cJSON *hh = cJSON_GetObjectItemCaseSensitive(call, "height");
    const cJSON *ww = cJSON_GetObjectItemCaseSensitive(call, "width");
    if (np < 1 || (nn != 0 && nn != np) || !cJSON_IsNumber(gs) || !cJSON_IsNumber(steps) ||
        !cJSON_IsNumber(hh) || !cJSON_IsNumber(ww))
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: call has arguments this replay does not handle",
                       gc->dir);
    cs_session *s = NULL;
    cs_job *jobs[MAX_PROMPTS] = {0};
    float *latents = NULL, *step_latents = NULL, *embeds = NULL, *image = NULL;
    int64_t ld[8], sd[8], ed[8], idim[8];
    cs_status st = swap_scheduler(gc, m, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->inputs, "latents", &latents, ld, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "step_latents", &step_latents, sd, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "prompt_embeds", &embeds, ed, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "image", &image, idim, NULL, msg, n);
    if (st != CS_OK) goto done;
    cs_session_params sp = {.max_images = np, .max_width = ww->valueint, .max_height = hh->valueint};
    if ((st = cs_session_new(m, &sp, &s, msg, n)) != CS_OK) goto done;
    const int64_t img = ld[1] * ld[2] * ld[3];
    for (int i = 0; i < np; i++) {
        cs_gen_params p = cs_gen_default_params(m);
        p.prompt = prompts[i];
        p.negative_prompt = nn ? negs[i] : "";
        p.guidance_scale = gs->valuedouble;
        p.steps = steps->valueint;
        p.width = ww->valueint;
        p.height = hh->valueint;
        /* diffusers skips CFG for guidance <= 1; the engine's rule agrees at exactly 1. */
        if ((st = cs_job_new(s, &p, &jobs[i], msg, n)) != CS_OK) goto done;
        job_set_initial_latents(jobs[i], latents + i * img);
    }
    /* Embeddings: the reference lays out [negatives..., prompts...] with CFG. */
    const bool cfg = gs->valuedouble > 1.0;
    const int64_t emb = m->context_len * m->context_dim;
    float *ours = cs_malloc((size_t)(ed[0] * emb) * sizeof *ours);
    for (int i = 0; i < np; i++) {
        if (cfg) memcpy(ours + i * emb, jobs[i]->uncond->data, (size_t)emb * sizeof *ours);
        memcpy(ours + ((cfg ? np : 0) + i) * emb, jobs[i]->cond->data, (size_t)emb * sizeof *ours);
    }
    golden_compare(gc, "prompt_embeds", ours, ed[0] * emb, embeds, 1e-4);
    free(ours);
    if (sd[0] != cs_job_steps(jobs[0])) {
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: %lld recorded steps but the scheduler makes %d",
                     gc->dir, (long long)sd[0], cs_job_steps(jobs[0]));
        goto done;
    }
    float *got = cs_malloc((size_t)(np * img) * sizeof *got);
    for (int64_t k = 0; k < sd[0]; k++) {
        if ((st = cs_step(s, jobs, np, msg, n)) != CS_OK) break;
        for (int i = 0; i < np; i++) memcpy(got + i * img, jobs[i]->latents, (size_t)img * sizeof *got);
        const float *want = step_latents + k * np * img;
        char name[64];
        snprintf(name, sizeof name, "step_latents[%lld]", (long long)k);
        golden_compare(gc, name, got, np * img, want, 1e-3 * fmax(1.0, max_abs(want, np * img)));
    }
    free(got);
    if (st != CS_OK) goto done;
    if ((st = cs_decode(s, jobs, np, msg, n)) != CS_OK) goto done;
    const int64_t pix = idim[1] * idim[2] * idim[3];
    float *all = cs_malloc((size_t)(np * pix) * sizeof *all);
    for (int i = 0; i < np; i++) memcpy(all + i * pix, jobs[i]->image, (size_t)pix * sizeof *all);
    golden_compare(gc, "image", all, np * pix, image, 1e-3);
    free(all);
done:
    for (int i = 0; i < np; i++) cs_job_free(jobs[i]);
    cs_session_free(s);
    free(latents);
    free(step_latents);
    free(embeds);
    free(image);
    return st;
}

const golden_handler golden_pipeline_handler = {"pipeline", run};
