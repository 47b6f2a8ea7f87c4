/* Golden handler for kind "pipeline": a whole StableDiffusionPipeline call replayed
 * through the public step API — every prompt of the call is its own job (with
 * num_images_per_prompt images) and all jobs are stepped together in one batched cs_step
 * per step, so this also checks batching. The case's initial latents replace the jobs'
 * own noise. Compared: prompt embeddings, timestep_cond (guidance-distilled models),
 * timesteps, the latents after every step, and the final image.
 *
 * Every key of case.json "call" is mapped to an engine parameter or checked to mean
 * what this replay does; a key it does not know fails the case by name (a silently
 * ignored argument would make a passing case prove nothing). */
#include "golden.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "job.h"
#include "session.h"

enum { MAX_PROMPTS = 8 };

/* The call, mapped. Prompts are borrowed from the case's JSON. */
typedef struct call_args {
    const char *prompts[MAX_PROMPTS], *negs[MAX_PROMPTS];
    int np, nn;
    int per_prompt; /* num_images_per_prompt */
    double guidance[MAX_PROMPTS]; /* one per prompt (a scalar call value fills them all) */
    bool guidance_list;           /* call.guidance_scale was a list ... */
    int np_guidance;              /* ... of this many numbers */
    double rescale, eta;
    int steps, width, height, clip_skip; /* width/height 0: the model's native size */
} call_args;

/* prompt / negative_prompt: a string or a list of strings (null: none). Returns the count,
 * -1 when the value is neither; *is_list says which form it had. */
static int string_or_list(const cJSON *v, const char **out, bool *is_list) {
    *is_list = cJSON_IsArray(v);
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        out[0] = v->valuestring;
        return 1;
    }
    if (!cJSON_IsArray(v)) return -1;
    int n = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (!cJSON_IsString(e) || n == MAX_PROMPTS) return -1;
        out[n++] = e->valuestring;
    }
    return n;
}

static cs_status bad_key(const golden_case *gc, const char *key, const char *why, char *msg,
                         size_t n) {
    return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: call.%s %s", gc->dir, key, why);
}

/* A numeric call argument into a double, within [lo, hi]. */
static cs_status get_num(const golden_case *gc, const cJSON *e, double lo, double hi, double *out,
                         char *msg, size_t n) {
    *out = 0;
    if (!cJSON_IsNumber(e) || !(e->valuedouble >= lo && e->valuedouble <= hi))
        return bad_key(gc, e->string, "is not a number in the range this replay handles", msg, n);
    *out = e->valuedouble;
    return CS_OK;
}

static cs_status get_int(const golden_case *gc, const cJSON *e, int lo, int hi, int *out,
                         char *msg, size_t n) {
    double v;
    cs_status st = get_num(gc, e, lo, hi, &v, msg, n);
    if (st == CS_OK && v != floor(v)) return bad_key(gc, e->string, "is not an integer", msg, n);
    *out = (int)v;
    return st;
}

/* guidance_scale: a number, or (cfgserve's per-request scale in a shared batch, guidance-
 * embedded models only) a list with one number per prompt; the reference then computes
 * each prompt's rows with its own scale, as separate diffusers calls would. */
static cs_status get_guidance(const golden_case *gc, const cJSON *e, call_args *a, char *msg,
                              size_t n) {
    a->guidance_list = cJSON_IsArray(e);
    if (!a->guidance_list) {
        cs_status st = get_num(gc, e, -100, 100, &a->guidance[0], msg, n);
        for (int i = 1; i < MAX_PROMPTS; i++) a->guidance[i] = a->guidance[0];
        return st;
    }
    int k = 0;
    for (const cJSON *g = e->child; g; g = g->next, k++) {
        const bool ok = cJSON_IsNumber(g) && g->valuedouble >= -100 && g->valuedouble <= 100;
        if (k == MAX_PROMPTS || !ok)
            return bad_key(gc, e->string, "must be a list of at most 8 numbers in [-100, 100]",
                           msg, n);
        a->guidance[k] = g->valuedouble;
    }
    a->np_guidance = k;
    return CS_OK;
}

static cs_status parse_call(const golden_case *gc, const cJSON *call, call_args *a, char *msg,
                            size_t n) {
    *a = (call_args){.per_prompt = 1, .steps = 50};
    for (int i = 0; i < MAX_PROMPTS; i++) a->guidance[i] = 7.5;
    bool prompt_list = false, neg_list = false, have_prompt = false;
    cs_status st = CS_OK;
    for (const cJSON *e = call->child; e && st == CS_OK; e = e->next) {
        const char *k = e->string;
        if (!strcmp(k, "prompt")) {
            have_prompt = true;
            if ((a->np = string_or_list(e, a->prompts, &prompt_list)) < 1)
                st = bad_key(gc, k, "must be a string or a list of 1..8 strings", msg, n);
        } else if (!strcmp(k, "negative_prompt")) {
            if ((a->nn = string_or_list(e, a->negs, &neg_list)) < 0)
                st = bad_key(gc, k, "must be a string, a list of strings or null", msg, n);
        } else if (!strcmp(k, "guidance_scale")) {
            st = get_guidance(gc, e, a, msg, n);
        } else if (!strcmp(k, "guidance_rescale")) {
            st = get_num(gc, e, 0, 1, &a->rescale, msg, n);
        } else if (!strcmp(k, "eta")) {
            st = get_num(gc, e, 0, 1, &a->eta, msg, n);
        } else if (!strcmp(k, "num_inference_steps")) {
            st = get_int(gc, e, 1, 1000, &a->steps, msg, n);
        } else if (!strcmp(k, "height")) {
            st = get_int(gc, e, 1, 4096, &a->height, msg, n);
        } else if (!strcmp(k, "width")) {
            st = get_int(gc, e, 1, 4096, &a->width, msg, n);
        } else if (!strcmp(k, "clip_skip")) {
            /* diffusers' clip_skip = k is the engine's clip_skip = k (None = 0). */
            if (!cJSON_IsNull(e)) st = get_int(gc, e, 0, 64, &a->clip_skip, msg, n);
        } else if (!strcmp(k, "num_images_per_prompt")) {
            st = get_int(gc, e, 1, CS_MAX_IMAGES_PER_JOB, &a->per_prompt, msg, n);
        } else if (!strcmp(k, "output_type")) {
            /* "np": float pixels in [0, 1], what cs_decode leaves in job->image. */
            if (!cJSON_IsString(e) || strcmp(e->valuestring, "np") != 0)
                st = bad_key(gc, k, "must be \"np\" (float pixels)", msg, n);
        } else if (!strcmp(k, "latents")) {
            if (!cJSON_IsString(e) || strcmp(e->valuestring, "inputs.safetensors:latents") != 0)
                st = bad_key(gc, k, "must be \"inputs.safetensors:latents\"", msg, n);
        } else {
            st = bad_key(gc, k, "is not an argument this replay knows", msg, n);
        }
    }
    if (st != CS_OK) return st;
    if (!have_prompt) return bad_key(gc, "prompt", "is missing", msg, n);
    /* diffusers: a negative prompt of another type than the prompt is a TypeError, a list
     * of another length a ValueError. */
    if (a->nn > 0 && (neg_list != prompt_list || a->nn != a->np))
        return bad_key(gc, "negative_prompt", "must match prompt in type and length", msg, n);
    if (a->guidance_list && a->np_guidance != a->np)
        return bad_key(gc, "guidance_scale", "as a list must hold one number per prompt", msg, n);
    return CS_OK;
}

static float max_abs(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

cs_status golden_swap_scheduler(golden_case *gc, cs_model *m, char *msg, size_t n) {
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

/* prompt_embeds as the reference lays them out: with CFG [negatives | positives], each
 * block prompt-major with every prompt repeated per image (p0, p0, p1, p1, ...). */
static void compare_embeds(golden_case *gc, const cs_model *m, cs_job *const *jobs, int np,
                           int per, bool cfg, const float *want, int64_t rows) {
    const int64_t emb = m->context_len * m->context_dim, block = (int64_t)np * per;
    if (rows != (cfg ? 2 : 1) * block) {
        golden_report_exact(gc, "prompt_embeds", 1, 1, "the reference has a different row count");
        return;
    }
    float *ours = cs_malloc((size_t)(rows * emb) * sizeof *ours);
    if (!ours) return;
    for (int i = 0; i < np; i++)
        for (int k = 0; k < per; k++) {
            const int64_t r = (int64_t)i * per + k;
            if (cfg) memcpy(ours + r * emb, jobs[i]->uncond->data, (size_t)emb * sizeof *ours);
            memcpy(ours + ((cfg ? block : 0) + r) * emb, jobs[i]->cond->data,
                   (size_t)emb * sizeof *ours);
        }
    golden_compare(gc, "prompt_embeds", ours, rows * emb, want, 1e-4);
    free(ours);
}

/* The sin/cos arguments of a guidance embedding row: (s - 1)·1000·f_k, up to 11 000 at
 * s = 12 (guidance.h's formula, in double). */
static void embedding_arguments(double guidance_scale, int64_t dim, float *out) {
    const int64_t half = dim / 2;
    for (int64_t k = 0; k < half; k++) {
        const double freq = exp((double)k * -(log(10000.0) / (double)(half - 1)));
        const double arg = (guidance_scale - 1.0) * 1000.0 * freq;
        out[k] = out[half + k] = (float)fabs(arg);
    }
    if (dim % 2) out[dim - 1] = 0.0f;
}

/* timestep_cond [images, dim]: each job's guidance embedding once per image. Its values
 * are float32 sin/cos of arguments up to ~11 000, and libm and torch round the argument
 * (exp of the frequency, the product) and reduce it differently: ~1e-4 apart at an
 * argument of 2 000 — the argument's own float32 rounding (an ulp of 2 000 is 1.2e-4), not
 * a formula error. So every element's limit scales with its argument, 4 ulp-units of it
 * (4·FLT_EPSILON·max(1, |arg|)), for every case alike; a wrong frequency or w is off by
 * O(1). */
static cs_status compare_timestep_cond(golden_case *gc, const cs_model *m, cs_job *const *jobs,
                                       int np, int per, char *msg, size_t n) {
    const int64_t dim = m->guidance_embed_dim;
    const bool recorded = gc->outputs && st_find(gc->outputs, "timestep_cond");
    if (!recorded && dim == 0) return CS_OK;
    if (!recorded || dim == 0) {
        golden_report_exact(gc, "timestep_cond", 1, 1,
                            dim ? "the model embeds guidance but the reference has no "
                                  "timestep_cond"
                                : "the reference has timestep_cond but the model has no "
                                  "time_cond_proj_dim");
        return CS_OK;
    }
    float *want = NULL;
    int64_t d[ST_MAX_DIMS];
    cs_status st = golden_load_f32(gc->outputs, "timestep_cond", &want, d, NULL, msg, n);
    if (st != CS_OK) return st;
    const int64_t rows = (int64_t)np * per;
    float *ours = cs_malloc((size_t)(rows * dim) * sizeof *ours);
    if (ours && d[0] == rows && d[1] == dim) {
        float *args = cs_malloc((size_t)(rows * dim) * sizeof *args);
        if (!args) {
            free(ours);
            free(want);
            return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        }
        for (int64_t r = 0; r < rows; r++) {
            memcpy(ours + r * dim, jobs[r / per]->w_embed, (size_t)dim * sizeof *ours);
            embedding_arguments(jobs[r / per]->params.guidance_scale, dim, args + r * dim);
        }
        golden_compare_scaled(gc, "timestep_cond", ours, rows * dim, want, args, "|arg|",
                              4.0 * FLT_EPSILON);
        free(args);
    } else {
        golden_report_exact(gc, "timestep_cond", 1, 1, "shape differs from [images, dim]");
    }
    free(ours);
    free(want);
    return CS_OK;
}

/* timesteps (int64 or float32) against the first job's schedule. */
static cs_status compare_timesteps(golden_case *gc, const cs_job *j, char *msg, size_t n) {
    const st_tensor *t = gc->outputs ? st_find(gc->outputs, "timesteps") : NULL;
    if (!t) return CS_OK;
    if (t->numel > 1024) return cs_errf(CS_ERR_FORMAT, msg, n, "%s: too many timesteps", gc->dir);
    float *want = NULL;
    int64_t *ints = NULL;
    cs_status st = CS_OK;
    if (t->dtype == ST_I64) { /* integer timesteps (DDIM, PNDM, DPM-Solver): exact in float */
        st = golden_load_i64(gc->outputs, "timesteps", &ints, NULL, NULL, msg, n);
        if (st == CS_OK && !(want = cs_malloc((size_t)t->numel * sizeof *want)))
            st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        for (int64_t i = 0; st == CS_OK && i < t->numel; i++) want[i] = (float)ints[i];
        free(ints);
    } else {
        st = golden_load_f32(gc->outputs, "timesteps", &want, NULL, NULL, msg, n);
    }
    if (st != CS_OK) {
        free(want);
        return st;
    }
    if (t->numel != cs_job_steps(j)) {
        golden_report_exact(gc, "timesteps", 1, 1, "the reference has a different count");
    } else {
        float got[1024];
        for (int64_t i = 0; i < t->numel; i++)
            got[i] = (float)sched_timestep(j->sched, (int)i);
        golden_compare_rel(gc, "timesteps", got, t->numel, want, 1e-5);
    }
    free(want);
    return CS_OK;
}

cs_status golden_pipeline_run_model(golden_case *gc, cs_model *m, const cs_lora_spec *loras,
                                    int nloras, char *msg, size_t n) {
    const cJSON *call = cJSON_GetObjectItemCaseSensitive(gc->json, "call");
    if (!cJSON_IsObject(call))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks call", gc->dir);
    call_args a;
    cs_status st = parse_call(gc, call, &a, msg, n);
    if (st != CS_OK) return st;
    const int np = a.np, per = a.per_prompt;
    cs_session *s = NULL;
    cs_job *jobs[MAX_PROMPTS] = {0};
    float *latents = NULL, *step_latents = NULL, *embeds = NULL, *image = NULL, *got = NULL;
    int64_t ld[8], sd[8], ed[8], idim[8];
    st = golden_swap_scheduler(gc, m, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->inputs, "latents", &latents, ld, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "step_latents", &step_latents, sd, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "prompt_embeds", &embeds, ed, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "image", &image, idim, NULL, msg, n);
    if (st != CS_OK) goto done;
    int width = a.width, height = a.height;
    if (!width || !height) { /* diffusers' default: the UNet's sample_size · vae factor */
        int nw, nh;
        cs_model_native_size(m, &nw, &nh);
        width = width ? width : nw;
        height = height ? height : nh;
    }
    const int images = np * per;
    if (ld[0] != images) {
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: %lld initial latents for %d images", gc->dir,
                     (long long)ld[0], images);
        goto done;
    }
    /* diffusers runs CFG only for guidance > 1 and never for a guidance-embedded UNet;
     * without CFG its result is the conditional estimate, the engine's guidance 1. The
     * embedded model keeps its scale: it is the embedding's input. */
    const bool embedded = m->guidance_embed_dim > 0;
    const bool cfg = a.guidance[0] > 1.0 && !embedded;
    if (a.guidance_list && !embedded) {
        st = bad_key(gc, "guidance_scale",
                     "is a list, which only a guidance-embedded UNet replays (diffusers' CFG "
                     "batch takes one scale)", msg, n);
        goto done;
    }
    cs_session_params sp = {.max_images = images, .max_width = width, .max_height = height};
    if ((st = cs_session_new(m, &sp, &s, msg, n)) != CS_OK) goto done;
    const int64_t img = ld[1] * ld[2] * ld[3];
    for (int i = 0; i < np; i++) {
        cs_gen_params p = cs_gen_default_params(m);
        p.prompt = a.prompts[i];
        p.negative_prompt = a.nn && cfg ? a.negs[i] : "";
        p.guidance_scale = cfg || embedded ? a.guidance[i] : 1.0;
        p.guidance_rescale = cfg ? a.rescale : 0.0; /* diffusers rescales only under CFG */
        p.eta = a.eta;
        p.clip_skip = a.clip_skip;
        p.steps = a.steps;
        p.width = width;
        p.height = height;
        p.num_images = per;
        p.loras = loras;
        p.num_loras = nloras;
        if ((st = cs_job_new(s, &p, &jobs[i], msg, n)) != CS_OK) goto done;
        /* Reference latents are prompt-major: prompt i's images are rows i·per .. */
        job_set_initial_latents(jobs[i], latents + (int64_t)i * per * img);
    }
    compare_embeds(gc, m, jobs, np, per, cfg, embeds, ed[0]);
    if ((st = compare_timestep_cond(gc, m, jobs, np, per, msg, n)) != CS_OK) goto done;
    if ((st = compare_timesteps(gc, jobs[0], msg, n)) != CS_OK) goto done;
    if (sd[0] != cs_job_steps(jobs[0]) || sd[1] != images) {
        st = cs_errf(CS_ERR_FORMAT, msg, n,
                     "%s: step_latents holds %lld steps x %lld images; the replay makes %d x %d",
                     gc->dir, (long long)sd[0], (long long)sd[1], cs_job_steps(jobs[0]), images);
        goto done;
    }
    const int64_t total = images * img;
    if (!(got = cs_malloc((size_t)total * sizeof *got))) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        goto done;
    }
    for (int64_t k = 0; k < sd[0]; k++) {
        if ((st = cs_step(s, jobs, np, msg, n)) != CS_OK) goto done;
        for (int i = 0; i < np; i++)
            memcpy(got + (int64_t)i * per * img, jobs[i]->latents, (size_t)(per * img) * sizeof *got);
        const float *want = step_latents + k * total;
        char name[64];
        snprintf(name, sizeof name, "step_latents[%lld]", (long long)k);
        golden_compare(gc, name, got, total, want, 1e-3 * fmax(1.0, max_abs(want, total)));
    }
    if ((st = cs_decode(s, jobs, np, msg, n)) != CS_OK) goto done;
    const int64_t pix = idim[1] * idim[2] * idim[3];
    float *all = cs_malloc((size_t)(images * pix) * sizeof *all);
    if (!all) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        goto done;
    }
    for (int i = 0; i < np; i++)
        memcpy(all + (int64_t)i * per * pix, jobs[i]->image, (size_t)(per * pix) * sizeof *all);
    golden_compare(gc, "image", all, images * pix, image, 1e-3);
    free(all);
done:
    for (int i = 0; i < np; i++) cs_job_free(jobs[i]);
    cs_session_free(s);
    free(got);
    free(latents);
    free(step_latents);
    free(embeds);
    free(image);
    return st;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    const cJSON *mdir = cJSON_GetObjectItemCaseSensitive(gc->json, "model_dir");
    if (!cJSON_IsString(mdir))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks model_dir", gc->dir);
    char path[4096];
    golden_path(path, sizeof path, gc->dir, mdir->valuestring);
    cs_model *m = NULL;
    cs_status st = cs_model_load(path, &m, msg, n);
    if (st == CS_OK) st = golden_pipeline_run_model(gc, m, NULL, 0, msg, n);
    cs_model_free(m);
    return st;
}

const golden_handler golden_pipeline_handler = {"pipeline", run};
