/*
 * Golden handler for kind "scheduler": loads the case's scheduler_config.json and, for
 * every steps_<N>.safetensors that case.json lists, replays the recorded sampling loop
 *
 *   step by step: feed sample_in[i], model_output[i] (and noise[i] where the reference
 *   drew it); compare timesteps, init_noise_sigma, sigmas, model_input
 *   (scale_model_input), prev_sample and pred_original_sample of every step;
 *
 *   closed loop: x = x_init · init_noise_sigma, model_output = 0.3 · scale_model_input(x)
 *   + eps[i], our own x throughout; compare the final sample.
 *
 * Also compares alphas_cumprod with schedule.safetensors when the case has it.
 *
 * case.json "step_kwargs" (the keyword arguments of step(): DDIM's eta) are applied;
 * a key this tool does not know fails the case rather than being ignored.
 *
 * Tolerances (golden/README "Tolerances"), per element: alphas_cumprod 1e-7 absolute;
 * integer timesteps exact; every other scheduler tensor (float timesteps, sigmas,
 * init_noise_sigma, model_input, prev_sample, pred_original_sample)
 * 1e-5·max(1, |ref|); the closed loop's final sample 1e-4·max(1, |ref|).
 */
#include "golden.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "sampler.h"

/* Every tensor a steps file may hold; anything else fails the case. */
static const char *const k_known[] = {"sample_in", "model_input",      "model_output",
                                      "eps",       "prev_sample",      "pred_original_sample",
                                      "noise",     "noise_drawn",      "timesteps",
                                      "x_init",    "init_noise_sigma", "sigmas",
                                      NULL};

/* Per-element limits, scaled by max(1, |ref|): one step from recorded inputs, and the
 * closed loop's end where float32 rounding accumulates over the steps. */
static const double k_step_tol = 1e-5, k_loop_tol = 1e-4;

typedef struct steps_data {
    int64_t T, numel; /* recorded steps; floats per sample */
    float *sample_in, *model_input, *model_output, *eps, *prev_sample, *x0, *noise, *x_init,
        *sigmas, *init_sigma;
    int64_t *noise_drawn, *timesteps_i; /* timesteps_i: integer timesteps, or NULL */
    float *timesteps_f;                 /* float timesteps, or NULL */
    int64_t n_sigmas;
} steps_data;

static void steps_free(steps_data *d) {
    float *f[] = {d->sample_in,   d->model_input, d->model_output, d->eps,
                  d->prev_sample, d->x0,          d->noise,        d->x_init,
                  d->sigmas,      d->init_sigma,  d->timesteps_f};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free(f[i]);
    free(d->noise_drawn);
    free(d->timesteps_i);
}

/* Loads a float tensor of T·numel values when present (optional) or required. */
static cs_status load_steps_tensor(const st_file *f, const char *name, const steps_data *d,
                                   bool required, float **out, char *msg, size_t n) {
    const st_tensor *t = st_find(f, name);
    if (!t) {
        if (!required) return CS_OK;
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: no tensor '%s'", f->path, name);
    }
    if (t->numel != d->T * d->numel || t->shape[0] != d->T)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: '%s' has %lld values, expected %lld x %lld",
                       f->path, name, (long long)t->numel, (long long)d->T, (long long)d->numel);
    return golden_load_f32(f, name, out, NULL, NULL, msg, n);
}

static cs_status load_steps(const st_file *f, steps_data *d, char *msg, size_t n) {
    for (int64_t i = 0; i < f->count; i++) {
        bool known = false;
        for (int k = 0; k_known[k]; k++)
            known |= strcmp(f->tensors[i].name, k_known[k]) == 0;
        if (!known)
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: tensor '%s' is not replayed here",
                           f->path, f->tensors[i].name);
    }
    const st_tensor *ts = st_find(f, "timesteps"), *xi = st_find(f, "x_init");
    if (!ts || !xi || ts->ndim != 1)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: needs 1-d 'timesteps' and 'x_init'", f->path);
    d->T = ts->shape[0];
    d->numel = xi->numel;
    cs_status st = ts->dtype == ST_F32
                       ? golden_load_f32(f, "timesteps", &d->timesteps_f, NULL, NULL, msg, n)
                       : golden_load_i64(f, "timesteps", &d->timesteps_i, NULL, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(f, "x_init", &d->x_init, NULL, NULL, msg, n);
    if (st == CS_OK)
        st = golden_load_f32(f, "init_noise_sigma", &d->init_sigma, NULL, NULL, msg, n);
    if (st == CS_OK) st = load_steps_tensor(f, "sample_in", d, true, &d->sample_in, msg, n);
    if (st == CS_OK) st = load_steps_tensor(f, "model_input", d, true, &d->model_input, msg, n);
    if (st == CS_OK) st = load_steps_tensor(f, "model_output", d, true, &d->model_output, msg, n);
    if (st == CS_OK) st = load_steps_tensor(f, "eps", d, true, &d->eps, msg, n);
    if (st == CS_OK) st = load_steps_tensor(f, "prev_sample", d, true, &d->prev_sample, msg, n);
    if (st == CS_OK) st = load_steps_tensor(f, "pred_original_sample", d, false, &d->x0, msg, n);
    if (st == CS_OK) st = load_steps_tensor(f, "noise", d, false, &d->noise, msg, n);
    if (st == CS_OK && st_find(f, "noise_drawn")) {
        int64_t dims[ST_MAX_DIMS];
        st = golden_load_i64(f, "noise_drawn", &d->noise_drawn, dims, NULL, msg, n);
        if (st == CS_OK && dims[0] != d->T)
            st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: noise_drawn has %lld entries", f->path,
                         (long long)dims[0]);
    }
    if (st == CS_OK && st_find(f, "sigmas")) {
        int64_t dims[ST_MAX_DIMS];
        st = golden_load_f32(f, "sigmas", &d->sigmas, dims, NULL, msg, n);
        d->n_sigmas = dims[0];
    }
    if (st == CS_OK && d->noise_drawn && !d->noise)
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: noise_drawn without noise", f->path);
    return st;
}

static void compare_schedule(golden_case *gc, const char *pre, const sched_state *s,
                             const steps_data *d) {
    char name[96];
    snprintf(name, sizeof name, "%s/timesteps", pre);
    if (d->timesteps_i) {
        int64_t bad = 0;
        for (int64_t i = 0; i < d->T; i++)
            bad += sched_timestep(s, (int)i) != (double)d->timesteps_i[i];
        golden_report_exact(gc, name, bad, d->T, "");
    } else {
        float got[4096];
        for (int64_t i = 0; i < d->T; i++)
            got[i] = (float)sched_timestep(s, (int)i);
        golden_compare_rel(gc, name, got, d->T, d->timesteps_f, k_step_tol);
    }
    const float sig0 = sched_init_noise_sigma(s);
    snprintf(name, sizeof name, "%s/init_noise_sigma", pre);
    golden_compare_rel(gc, name, &sig0, 1, d->init_sigma, k_step_tol);
    if (d->sigmas && d->n_sigmas != d->T + 1) {
        snprintf(name, sizeof name, "%s/sigmas", pre);
        golden_report_exact(gc, name, 1, 1, "the reference has a different count");
    } else if (d->sigmas) {
        float got[4096 + 1];
        for (int64_t i = 0; i < d->n_sigmas; i++)
            got[i] = sched_sigma(s, (int)i);
        snprintf(name, sizeof name, "%s/sigmas", pre);
        golden_compare_rel(gc, name, got, d->n_sigmas, d->sigmas, k_step_tol);
    }
}

/* Step by step from the recorded inputs. */
static cs_status replay_steps(golden_case *gc, const char *pre, sched_state *s, const steps_data *d,
                              char *msg, size_t n) {
    const int64_t T = d->T, numel = d->numel, total = T * numel;
    float *mi = cs_malloc((size_t)total * sizeof *mi),
          *prev = cs_malloc((size_t)total * sizeof *prev);
    float *x0 = cs_malloc((size_t)total * sizeof *x0),
          *zeros = cs_calloc((size_t)numel, sizeof *zeros);
    if (!mi || !prev || !x0 || !zeros) {
        free(mi), free(prev), free(x0), free(zeros);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    }
    int64_t noise_mismatch = 0;
    for (int64_t i = 0; i < T; i++) {
        const int64_t at = i * numel;
        memcpy(mi + at, d->sample_in + at, (size_t)numel * sizeof *mi);
        sched_scale_model_input(s, (int)i, mi + at, numel);
        memcpy(prev + at, d->sample_in + at, (size_t)numel * sizeof *prev);
        const bool drawn = d->noise_drawn && d->noise_drawn[i];
        const bool needs = sched_step_needs_noise(s, (int)i);
        /* The reference may draw noise it does not use (Euler, s_churn 0); the other way
         * round our step would consume noise the reference never had. */
        if (needs && !drawn) noise_mismatch++;
        const float *noise = needs ? (drawn ? d->noise + at : zeros) : NULL;
        sched_step(s, (int)i, d->model_output + at, prev + at, noise, x0 + at);
    }
    char name[96];
    snprintf(name, sizeof name, "%s/noise_use", pre);
    golden_report_exact(gc, name, noise_mismatch, T, "");
    snprintf(name, sizeof name, "%s/model_input", pre);
    golden_compare_rel(gc, name, mi, total, d->model_input, k_step_tol);
    snprintf(name, sizeof name, "%s/prev_sample", pre);
    golden_compare_rel(gc, name, prev, total, d->prev_sample, k_step_tol);
    if (d->x0) {
        snprintf(name, sizeof name, "%s/pred_original_sample", pre);
        golden_compare_rel(gc, name, x0, total, d->x0, k_step_tol);
    }
    free(mi), free(prev), free(x0), free(zeros);
    return CS_OK;
}

/* Our own trajectory from x_init; only the recorded eps and noise come from the file. */
static cs_status replay_closed_loop(golden_case *gc, const char *pre, sched_state *s,
                                    const steps_data *d, char *msg, size_t n) {
    const int64_t T = d->T, numel = d->numel;
    float *x = cs_malloc((size_t)numel * sizeof *x), *mo = cs_malloc((size_t)numel * sizeof *mo);
    float *zeros = cs_calloc((size_t)numel, sizeof *zeros);
    if (!x || !mo || !zeros) {
        free(x), free(mo), free(zeros);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    }
    const float sigma0 = sched_init_noise_sigma(s);
    for (int64_t k = 0; k < numel; k++)
        x[k] = d->x_init[k] * sigma0;
    for (int64_t i = 0; i < T; i++) {
        const int64_t at = i * numel;
        memcpy(mo, x, (size_t)numel * sizeof *mo);
        sched_scale_model_input(s, (int)i, mo, numel);
        for (int64_t k = 0; k < numel; k++)
            mo[k] = 0.3f * mo[k] + d->eps[at + k];
        const bool drawn = d->noise_drawn && d->noise_drawn[i];
        const float *noise =
            sched_step_needs_noise(s, (int)i) ? (drawn ? d->noise + at : zeros) : NULL;
        sched_step(s, (int)i, mo, x, noise, NULL);
    }
    const float *want = d->prev_sample + (T - 1) * numel;
    char name[96];
    snprintf(name, sizeof name, "%s/closed_loop_final", pre);
    golden_compare_rel(gc, name, x, numel, want, k_loop_tol);
    free(x), free(mo), free(zeros);
    return CS_OK;
}

/* case.json "step_kwargs" onto a fresh state. Only DDIM's eta exists in the engine's
 * step; any other key (or a non-number) is refused by name, never dropped. */
static cs_status apply_step_kwargs(const golden_case *gc, sched_state *s, char *msg, size_t n) {
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(gc->json, "step_kwargs");
    if (!kw) return CS_OK;
    if (!cJSON_IsObject(kw))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: step_kwargs is not an object", gc->dir);
    for (const cJSON *e = kw->child; e; e = e->next) {
        if (strcmp(e->string, "eta") != 0 || !cJSON_IsNumber(e))
            return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                           "%s: step_kwargs.%s is not replayed by this tool (known: eta, a number)",
                           gc->dir, e->string);
        sched_set_eta(s, (float)e->valuedouble);
    }
    return CS_OK;
}

static cs_status replay_file(golden_case *gc, const sched_config *cfg, const char *file, char *msg,
                             size_t n) {
    int N = 0;
    if (sscanf(file, "steps_%d.safetensors", &N) != 1 || N < 1)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: file name '%s' is not steps_<N>.safetensors",
                       gc->dir, file);
    char path[4096], pre[32];
    golden_path(path, sizeof path, gc->dir, file);
    snprintf(pre, sizeof pre, "steps_%d", N);
    st_file *f = NULL;
    steps_data d = {0};
    sched_state *s = NULL, *s2 = NULL;
    cs_status st = st_open(path, &f, msg, n);
    if (st == CS_OK) st = load_steps(f, &d, msg, n);
    if (st == CS_OK && d.T > 4096)
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: %lld steps is too many", path, (long long)d.T);
    if (st == CS_OK) st = sched_state_new(cfg, N, d.numel, &s, msg, n);
    if (st == CS_OK) st = sched_state_new(cfg, N, d.numel, &s2, msg, n);
    if (st == CS_OK) st = apply_step_kwargs(gc, s, msg, n);
    if (st == CS_OK) st = apply_step_kwargs(gc, s2, msg, n);
    if (st == CS_OK) {
        char name[96];
        snprintf(name, sizeof name, "%s/num_steps", pre);
        char detail[64];
        snprintf(detail, sizeof detail, "ours %d, reference %lld", sched_num_steps(s),
                 (long long)d.T);
        if (golden_report_exact(gc, name, sched_num_steps(s) != d.T, 1, detail)) {
            compare_schedule(gc, pre, s, &d);
            st = replay_steps(gc, pre, s, &d, msg, n);
            if (st == CS_OK) st = replay_closed_loop(gc, pre, s2, &d, msg, n);
        }
    }
    sched_state_free(s);
    sched_state_free(s2);
    steps_free(&d);
    st_close(f);
    return st;
}

/* alphas_cumprod[T] of the config against schedule.safetensors (float32 throughout, so
 * the reference's rounding is reproduced, not approximated). */
static cs_status compare_alphas(golden_case *gc, const sched_config *cfg, char *msg, size_t n) {
    char path[4096];
    golden_path(path, sizeof path, gc->dir, "schedule.safetensors");
    FILE *fp = fopen(path, "rb");
    if (!fp) return CS_OK;
    fclose(fp);
    const sched_params *p = sched_config_params(cfg);
    st_file *f = NULL;
    float *want = NULL, *got = NULL;
    int64_t dims[ST_MAX_DIMS];
    cs_status st = st_open(path, &f, msg, n);
    if (st == CS_OK) st = golden_load_f32(f, "alphas_cumprod", &want, dims, NULL, msg, n);
    if (st == CS_OK && dims[0] != p->num_train_timesteps)
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: alphas_cumprod has %lld entries", path,
                     (long long)dims[0]);
    if (st == CS_OK && !(got = cs_malloc((size_t)dims[0] * sizeof *got)))
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    if (st == CS_OK) st = schedule_alphas_cumprod(p, got, msg, n);
    if (st == CS_OK) golden_compare(gc, "schedule/alphas_cumprod", got, dims[0], want, 1e-7);
    free(got);
    free(want);
    st_close(f);
    return st;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    char path[4096];
    golden_path(path, sizeof path, gc->dir, "scheduler_config.json");
    sched_config *cfg = NULL;
    cs_status st = sched_config_load(path, &cfg, msg, n);
    if (st != CS_OK) return st;
    st = compare_alphas(gc, cfg, msg, n);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(gc->json, "files");
    if (st == CS_OK && (!cJSON_IsObject(files) || !files->child))
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lists no steps files", gc->dir);
    for (const cJSON *e = files ? files->child : NULL; st == CS_OK && e; e = e->next)
        st = replay_file(gc, cfg, e->string, msg, n);
    sched_config_free(cfg);
    return st;
}

const golden_handler golden_scheduler_handler = {"scheduler", run};
