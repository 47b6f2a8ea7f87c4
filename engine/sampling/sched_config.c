/*
 * scheduler_config.json → sched_config (see scheduler.h).
 *
 * The file is read once into `raw` fields (type-checked, every field accounted for by
 * the strict reader), then resolved for one class: a field the file sets wins, the
 * others take that class's diffusers 0.27.2 default, and every value the class uses is
 * checked against what the engine implements. Keeping `raw` lets a job switch sampler
 * the way diffusers' `<Class>.from_config(config)` does: a field some other class wrote
 * (skip_prk_steps in a DDIM config, timestep_spacing in PNDM's) applies to the new class.
 *
 * Configs are immutable after creation; loading is single-threaded.
 */
#include "scheduler.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "config.h"
#include "sampler.h"

enum {
    F_NUM_TRAIN,
    F_BETA_START,
    F_BETA_END,
    F_BETA_SCHEDULE,
    F_TRAINED_BETAS,
    F_PREDICTION,
    F_SPACING,
    F_STEPS_OFFSET,
    F_ZERO_SNR,
    F_CLIP,
    F_CLIP_RANGE,
    F_ALPHA_ONE,
    F_SKIP_PRK,
    F_VARIANCE,
    F_KARRAS,
    F_SIGMA_MIN,
    F_SIGMA_MAX,
    F_INTERP,
    F_TSTYPE,
    F_ORDER,
    F_ALGO,
    F_SOLVER,
    F_LOWER_FINAL,
    F_EULER_FINAL,
    F_LU,
    F_FINAL_SIGMAS,
    F_LAMBDA_MIN,
    F_THRESHOLD,
    F_THRESHOLD_RATIO,
    F_SAMPLE_MAX,
    F_COUNT
};

#define K(k) (1u << (k))
#define ALL_CLASSES (K(SCHED_KIND_COUNT) - 1u)
#define ALPHA_SPACE (K(SCHED_DDIM) | K(SCHED_DDPM))

/* Every field of the seven classes' __init__ and the classes that have it.
 * Types: i int, f float, b bool, s string, L float list, m float or -Infinity. */
static const struct {
    const char *name;
    char type;
    unsigned classes;
} k_fields[F_COUNT] = {
    [F_NUM_TRAIN] = {"num_train_timesteps", 'i', ALL_CLASSES},
    [F_BETA_START] = {"beta_start", 'f', ALL_CLASSES},
    [F_BETA_END] = {"beta_end", 'f', ALL_CLASSES},
    [F_BETA_SCHEDULE] = {"beta_schedule", 's', ALL_CLASSES},
    [F_TRAINED_BETAS] = {"trained_betas", 'L', ALL_CLASSES},
    [F_PREDICTION] = {"prediction_type", 's', ALL_CLASSES},
    [F_SPACING] = {"timestep_spacing", 's', ALL_CLASSES},
    [F_STEPS_OFFSET] = {"steps_offset", 'i', ALL_CLASSES},
    [F_ZERO_SNR] = {"rescale_betas_zero_snr", 'b',
                    ALPHA_SPACE | K(SCHED_EULER) | K(SCHED_EULER_A) | K(SCHED_DPMPP)},
    [F_CLIP] = {"clip_sample", 'b', ALPHA_SPACE},
    [F_CLIP_RANGE] = {"clip_sample_range", 'f', ALPHA_SPACE},
    [F_ALPHA_ONE] = {"set_alpha_to_one", 'b', K(SCHED_DDIM) | K(SCHED_PNDM)},
    [F_SKIP_PRK] = {"skip_prk_steps", 'b', K(SCHED_PNDM)},
    [F_VARIANCE] = {"variance_type", 's', K(SCHED_DDPM) | K(SCHED_DPMPP)},
    [F_KARRAS] = {"use_karras_sigmas", 'b', K(SCHED_EULER) | K(SCHED_DPMPP) | K(SCHED_LMS)},
    [F_SIGMA_MIN] = {"sigma_min", 'f', K(SCHED_EULER)},
    [F_SIGMA_MAX] = {"sigma_max", 'f', K(SCHED_EULER)},
    [F_INTERP] = {"interpolation_type", 's', K(SCHED_EULER)},
    [F_TSTYPE] = {"timestep_type", 's', K(SCHED_EULER)},
    [F_ORDER] = {"solver_order", 'i', K(SCHED_DPMPP)},
    [F_ALGO] = {"algorithm_type", 's', K(SCHED_DPMPP)},
    [F_SOLVER] = {"solver_type", 's', K(SCHED_DPMPP)},
    [F_LOWER_FINAL] = {"lower_order_final", 'b', K(SCHED_DPMPP)},
    [F_EULER_FINAL] = {"euler_at_final", 'b', K(SCHED_DPMPP)},
    [F_LU] = {"use_lu_lambdas", 'b', K(SCHED_DPMPP)},
    [F_FINAL_SIGMAS] = {"final_sigmas_type", 's', K(SCHED_DPMPP)},
    [F_LAMBDA_MIN] = {"lambda_min_clipped", 'm', K(SCHED_DPMPP)},
    [F_THRESHOLD] = {"thresholding", 'b', ALPHA_SPACE | K(SCHED_DPMPP)},
    /* Read only by dynamic thresholding, which must be off: any number is accepted. */
    [F_THRESHOLD_RATIO] = {"dynamic_thresholding_ratio", 'f', ALPHA_SPACE | K(SCHED_DPMPP)},
    [F_SAMPLE_MAX] = {"sample_max_value", 'f', ALPHA_SPACE | K(SCHED_DPMPP)},
};

static const struct {
    const char *class_name, *sampler;
    sched_kind kind;
} k_classes[SCHED_KIND_COUNT] = {
    {"DDIMScheduler", "ddim", SCHED_DDIM},
    {"PNDMScheduler", "pndm", SCHED_PNDM},
    {"EulerDiscreteScheduler", "euler", SCHED_EULER},
    {"EulerAncestralDiscreteScheduler", "euler_a", SCHED_EULER_A},
    {"DPMSolverMultistepScheduler", "dpmpp_2m", SCHED_DPMPP},
    {"DDPMScheduler", "ddpm", SCHED_DDPM},
    {"LMSDiscreteScheduler", "lms", SCHED_LMS},
};

static const char *const k_sampler_names[] = {
    "ddim", "pndm", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_sde", "lms", "ddpm", NULL};

typedef struct raw_field {
    bool set; /* present and not null */
    double num;
    bool flag;
    char str[32];
} raw_field;

struct sched_config {
    char *path; /* for messages */
    sched_params p;
    raw_field raw[F_COUNT];
    float *trained_betas; /* owned, n_trained_betas entries */
    int64_t n_trained_betas;
};

const char *const *sched_sampler_names(void) {
    return k_sampler_names;
}

const char *sched_config_sampler_name(const sched_config *c) {
    if (c->p.kind == SCHED_DPMPP && c->p.algorithm_type == DPM_ALGO_SDE_DPMSOLVER_PP)
        return "dpmpp_2m_sde";
    return k_classes[c->p.kind].sampler;
}

void sched_config_free(sched_config *c) {
    if (!c) return;
    free(c->trained_betas);
    free(c->path);
    free(c);
}

/* ---- resolving raw fields for one class ---- */

typedef struct resolver {
    const sched_config *src;
    sched_kind kind;
    cs_status st;
    char *msg;
    size_t n;
} resolver;

static double num_field(resolver *rs, int f, double def) {
    return rs->src->raw[f].set ? rs->src->raw[f].num : def;
}

static bool bool_field(resolver *rs, int f, bool def) {
    return rs->src->raw[f].set ? rs->src->raw[f].flag : def;
}

/* Index of the field's value (or def) in choices; an unsupported value is an error. */
static int enum_field(resolver *rs, int f, const char *def, const char *const *choices) {
    const char *v = rs->src->raw[f].set ? rs->src->raw[f].str : def;
    for (int i = 0; choices[i]; i++)
        if (v && strcmp(v, choices[i]) == 0) return i;
    if (rs->st == CS_OK) {
        char list[200] = "";
        size_t at = 0;
        for (int i = 0; choices[i] && at < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", choices[i]);
        rs->st =
            cs_errf(CS_ERR_UNSUPPORTED, rs->msg, rs->n,
                    "%s: field '%s' = \"%s\" is not supported by %s (supported: %s)", rs->src->path,
                    k_fields[f].name, v ? v : "null", k_classes[rs->kind].class_name, list);
    }
    return 0;
}

static void unsupported(resolver *rs, int f, const char *value, const char *why) {
    if (rs->st != CS_OK) return;
    rs->st =
        cs_errf(CS_ERR_UNSUPPORTED, rs->msg, rs->n,
                "%s: field '%s' = %s is not supported by %s%s%s", rs->src->path, k_fields[f].name,
                value, k_classes[rs->kind].class_name, why ? ": " : "", why ? why : "");
}

static void resolve_dpm(resolver *rs, sched_params *p) {
    static const char *const algos[] = {"dpmsolver++", "sde-dpmsolver++", NULL};
    /* diffusers maps the UniPC/DEIS solver names to midpoint. */
    static const char *const solvers[] = {"midpoint", "heun", "logrho", "bh1", "bh2", NULL};
    static const char *const finals[] = {"zero", "sigma_min", NULL};
    p->solver_order = (int)num_field(rs, F_ORDER, 2);
    if (p->solver_order < 1 || p->solver_order > 3) {
        char v[32];
        snprintf(v, sizeof v, "%d", p->solver_order);
        unsupported(rs, F_ORDER, v, "orders 1 to 3 are implemented");
    }
    p->algorithm_type = (sched_dpm_algorithm)enum_field(rs, F_ALGO, "dpmsolver++", algos);
    p->solver_type =
        enum_field(rs, F_SOLVER, "midpoint", solvers) == 1 ? DPM_SOLVER_HEUN : DPM_SOLVER_MIDPOINT;
    p->lower_order_final = bool_field(rs, F_LOWER_FINAL, true);
    p->euler_at_final = bool_field(rs, F_EULER_FINAL, false);
    p->final_sigmas_type = (sched_final_sigma)enum_field(rs, F_FINAL_SIGMAS, "zero", finals);
    p->lambda_min_clipped = num_field(rs, F_LAMBDA_MIN, -INFINITY);
    if (bool_field(rs, F_LU, false)) unsupported(rs, F_LU, "true", NULL);
    if (p->algorithm_type == DPM_ALGO_SDE_DPMSOLVER_PP && p->solver_order == 3)
        unsupported(rs, F_ORDER, "3", "diffusers has no third-order sde-dpmsolver++ update");
    const raw_field *var = &rs->src->raw[F_VARIANCE];
    if (var->set && (strcmp(var->str, "learned") == 0 || strcmp(var->str, "learned_range") == 0))
        unsupported(rs, F_VARIANCE, var->str, "the model would predict its variance");
}

static void resolve(resolver *rs, sched_params *p) {
    static const char *const schedules[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};
    static const char *const preds[] = {"epsilon", "v_prediction", "sample", "original_sample",
                                        NULL};
    static const char *const spacings[] = {"linspace", "leading", "trailing", NULL};
    const sched_config *src = rs->src;
    const sched_kind k = rs->kind;
    memset(p, 0, sizeof *p);
    p->kind = k;
    p->num_train_timesteps = (int64_t)num_field(rs, F_NUM_TRAIN, 1000);
    p->beta_start = num_field(rs, F_BETA_START, 0.0001);
    p->beta_end = num_field(rs, F_BETA_END, 0.02);
    p->beta_schedule = (sched_beta_schedule)enum_field(rs, F_BETA_SCHEDULE, "linear", schedules);
    if (src->trained_betas) {
        if (src->n_trained_betas != p->num_train_timesteps) {
            char v[64];
            snprintf(v, sizeof v, "(%lld values)", (long long)src->n_trained_betas);
            unsupported(rs, F_TRAINED_BETAS, v, "need one beta per num_train_timesteps");
        }
        p->trained_betas = src->trained_betas;
    }
    int pred = enum_field(rs, F_PREDICTION, "epsilon", preds);
    p->prediction_type = pred == 0 ? PRED_EPSILON : pred == 1 ? PRED_V : PRED_SAMPLE;
    if ((pred == 3 && k != SCHED_EULER) || (pred >= 2 && (k == SCHED_PNDM || k == SCHED_EULER_A)))
        unsupported(rs, F_PREDICTION, src->raw[F_PREDICTION].str, NULL);
    const bool index_spaced = k == SCHED_DDIM || k == SCHED_PNDM || k == SCHED_DDPM;
    p->timestep_spacing =
        (sched_spacing)enum_field(rs, F_SPACING, index_spaced ? "leading" : "linspace", spacings);
    p->steps_offset = (int64_t)num_field(rs, F_STEPS_OFFSET, 0);
    if (k_fields[F_ZERO_SNR].classes & K(k))
        p->rescale_betas_zero_snr = bool_field(rs, F_ZERO_SNR, false);
    if (k == SCHED_DDIM || k == SCHED_DDPM) {
        p->clip_sample = bool_field(rs, F_CLIP, true);
        p->clip_sample_range = num_field(rs, F_CLIP_RANGE, 1.0);
    }
    if (k == SCHED_DDIM || k == SCHED_PNDM)
        p->set_alpha_to_one = bool_field(rs, F_ALPHA_ONE, k == SCHED_DDIM);
    if (k == SCHED_PNDM) p->skip_prk_steps = bool_field(rs, F_SKIP_PRK, false);
    if (k == SCHED_DDPM) {
        /* null behaves as fixed_small in diffusers (no branch matches). */
        static const char *const vars[] = {"fixed_small", "fixed_small_log", "fixed_large", NULL};
        p->variance_type = (sched_variance)enum_field(rs, F_VARIANCE, "fixed_small", vars);
    }
    if (k_fields[F_KARRAS].classes & K(k)) p->use_karras_sigmas = bool_field(rs, F_KARRAS, false);
    p->sigma_min = p->sigma_max = NAN;
    if (k == SCHED_EULER) {
        static const char *const interps[] = {"linear", NULL};
        static const char *const tstypes[] = {"discrete", "continuous", NULL};
        p->sigma_min = num_field(rs, F_SIGMA_MIN, NAN);
        p->sigma_max = num_field(rs, F_SIGMA_MAX, NAN);
        (void)enum_field(rs, F_INTERP, "linear", interps);
        p->timestep_type = (sched_timestep_type)enum_field(rs, F_TSTYPE, "discrete", tstypes);
    }
    if (k == SCHED_DPMPP) resolve_dpm(rs, p);
    if ((k_fields[F_THRESHOLD].classes & K(k)) && bool_field(rs, F_THRESHOLD, false))
        unsupported(rs, F_THRESHOLD, "true", "dynamic thresholding is a guidance option here");
}

/* ---- reading the file ---- */

static cs_status read_trained_betas(cfg_reader *r, sched_config *c, char *msg, size_t n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(r->root, "trained_betas");
    int64_t count = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a) || count < 1 || count > 100000)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: field 'trained_betas' must be a list of 1 to 100000 numbers", c->path);
    c->trained_betas = cs_malloc((size_t)count * sizeof *c->trained_betas);
    if (!c->trained_betas) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    int64_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble < 1))
            return cs_errf(CS_ERR_FORMAT, msg, n,
                           "%s: field 'trained_betas'[%lld] must be a number in [0, 1)", c->path,
                           (long long)i);
        c->trained_betas[i] = (float)e->valuedouble; /* torch.tensor(..., dtype=float32) */
    }
    c->n_trained_betas = count;
    return CS_OK;
}

static void read_field(cfg_reader *r, sched_config *c, int f) {
    const char *key = k_fields[f].name;
    raw_field *v = &c->raw[f];
    if (!cfg_has(r, key)) return; /* absent or null: the class default */
    v->set = true;
    switch (k_fields[f].type) {
    case 'i':
        v->num = (double)cfg_int(r, key, 0, f == F_NUM_TRAIN ? 2 : 0, 100000);
        break;
    case 'f':
        v->num = cfg_float(r, key, 0, -1e9, 1e9);
        break;
    case 'b':
        v->flag = cfg_bool(r, key, false);
        break;
    case 'm': {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(r->root, key);
        if (cJSON_IsNumber(j) && isinf(j->valuedouble) && j->valuedouble < 0) {
            cfg_require_number(r, key, -INFINITY);
            v->num = -INFINITY;
        } else {
            v->num = cfg_float(r, key, 0, -1e9, 1e9);
        }
        break;
    }
    case 's': {
        const char *s = cfg_string(r, key, "");
        if (strlen(s) >= sizeof v->str)
            cfg_fail(r, "field '%s' = \"%.40s...\" is not supported", key, s);
        else
            strcpy(v->str, s);
        break;
    }
    default:
        break; /* 'L': read_trained_betas */
    }
}

static cs_status finish_config(sched_config *c, sched_kind kind, char *msg, size_t n) {
    resolver rs = {c, kind, CS_OK, msg, n};
    resolve(&rs, &c->p);
    if (rs.st != CS_OK) return rs.st;
    const sched_params *p = &c->p;
    if (p->beta_start < 0 || p->beta_end > 1 || p->beta_start > p->beta_end)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                       "%s: beta_start %g and beta_end %g must satisfy 0 <= start <= end <= 1",
                       c->path, p->beta_start, p->beta_end);
    if (p->clip_sample && !(p->clip_sample_range > 0))
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: clip_sample_range %g must be positive",
                       c->path, p->clip_sample_range);
    if (p->steps_offset >= p->num_train_timesteps)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: steps_offset %lld >= num_train_timesteps",
                       c->path, (long long)p->steps_offset);
    return CS_OK;
}

cs_status sched_config_load(const char *path, sched_config **out, char *msg, size_t n) {
    return sched_config_load_src(path, NULL, out, msg, n);
}

cs_status sched_config_load_src(const char *path, const char *json, sched_config **out,
                                char *msg, size_t n) {
    *out = NULL;
    sched_config *c = cs_calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    }
    cfg_reader r;
    cs_status st = cfg_open_src(&r, path, json, msg, n);
    if (st != CS_OK) goto fail;
    const char *cls = cfg_string(&r, "_class_name", NULL);
    int kind = -1;
    for (int i = 0; cls && i < SCHED_KIND_COUNT; i++)
        if (strcmp(cls, k_classes[i].class_name) == 0) kind = (int)k_classes[i].kind;
    if (kind < 0) {
        st = cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                     "%s: _class_name %s%s%s is not a supported scheduler (DDIMScheduler, "
                     "PNDMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, "
                     "DPMSolverMultistepScheduler, DDPMScheduler, LMSDiscreteScheduler)",
                     path, cls ? "\"" : "", cls ? cls : "(missing)", cls ? "\"" : "");
        goto fail_reader;
    }
    for (int f = 0; f < F_COUNT; f++)
        read_field(&r, c, f);
    if (c->raw[F_TRAINED_BETAS].set) {
        st = read_trained_betas(&r, c, msg, n);
        if (st != CS_OK) goto fail_reader;
    }
    /* Null fields are defaults; mark every known name consumed. */
    for (int f = 0; f < F_COUNT; f++)
        cfg_ignore(&r, (const char *const[]){k_fields[f].name, NULL});
    st = cfg_finish(&r);
    if (st != CS_OK) goto fail_reader;
    cfg_close(&r);
    st = finish_config(c, (sched_kind)kind, msg, n);
    if (st != CS_OK) goto fail;
    *out = c;
    return CS_OK;
fail_reader:
    cfg_close(&r);
fail:
    sched_config_free(c);
    return st;
}

void sched_config_apply_pipeline_fixups(sched_config *c) {
    c->raw[F_STEPS_OFFSET] = (raw_field){.set = true, .num = 1};
    const bool has_clip = c->raw[F_CLIP].set || (k_fields[F_CLIP].classes & K(c->p.kind));
    if (has_clip) c->raw[F_CLIP] = (raw_field){.set = true, .flag = false};
    char msg[256];
    /* Only values the engine implements change, so resolving again cannot fail. */
    cs_status st = finish_config(c, c->p.kind, msg, sizeof msg);
    CS_ASSERT(st == CS_OK);
}

cs_status sched_config_with_sampler(const sched_config *base, const char *name, bool karras,
                                    sched_config **out, char *msg, size_t n) {
    *out = NULL;
    sched_kind kind = base->p.kind;
    int algo = -1;
    if (name && name[0]) {
        int found = -1;
        for (int i = 0; k_sampler_names[i]; i++)
            if (strcmp(name, k_sampler_names[i]) == 0) found = i;
        if (found < 0)
            return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                           "unknown sampler \"%.40s\" (ddim, pndm, euler, euler_a, dpmpp_2m, "
                           "dpmpp_2m_sde, lms, ddpm)",
                           name);
        if (strcmp(name, "dpmpp_2m_sde") == 0) {
            kind = SCHED_DPMPP;
            algo = 1;
        } else {
            for (int i = 0; i < SCHED_KIND_COUNT; i++)
                if (strcmp(name, k_classes[i].sampler) == 0) kind = k_classes[i].kind;
            if (kind == SCHED_DPMPP) algo = 0;
        }
    }
    if (karras && !(k_fields[F_KARRAS].classes & K(kind)))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "sampler \"%s\" has no Karras sigmas (euler, lms, dpmpp_2m and "
                       "dpmpp_2m_sde have)",
                       name && name[0] ? name : k_classes[kind].sampler);
    sched_config *c = cs_calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(base->path))) goto fail_nomem;
    memcpy(c->raw, base->raw, sizeof c->raw);
    if (base->trained_betas) {
        size_t bytes = (size_t)base->n_trained_betas * sizeof *c->trained_betas;
        if (!(c->trained_betas = cs_malloc(bytes))) goto fail_nomem;
        memcpy(c->trained_betas, base->trained_betas, bytes);
        c->n_trained_betas = base->n_trained_betas;
    }
    if (algo >= 0) {
        c->raw[F_ALGO].set = true;
        strcpy(c->raw[F_ALGO].str, algo ? "sde-dpmsolver++" : "dpmsolver++");
        c->raw[F_ORDER] = (raw_field){.set = true, .num = 2};
    }
    if (karras) c->raw[F_KARRAS] = (raw_field){.set = true, .flag = true};
    cs_status st = finish_config(c, kind, msg, n);
    if (st != CS_OK) {
        sched_config_free(c);
        return st;
    }
    *out = c;
    return CS_OK;
fail_nomem:
    sched_config_free(c);
    return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
}

const sched_params *sched_config_params(const sched_config *c) {
    return &c->p;
}
