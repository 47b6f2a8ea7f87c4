/* Scheduler configs and samplers: strict config errors, sampler selection by name with
 * diffusers' from_config semantics, Karras sigmas, every sampler on a toy problem with an
 * exact denoiser, and step-count edge cases. (The numerics against diffusers are the
 * golden scheduler cases.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sampler.h"

/* SD 1.5's scheduler config (PNDM, leading spacing, steps_offset 1). */
#define SD15_FIELDS                                                                                \
    "\"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "         \
    "\"clip_sample\": false, \"num_train_timesteps\": 1000, \"prediction_type\": "                 \
    "\"epsilon\", \"set_alpha_to_one\": false, \"skip_prk_steps\": true, "                         \
    "\"steps_offset\": 1, \"trained_betas\": null"
#define SD15                                                                                       \
    "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.27.2\", " SD15_FIELDS        \
    ", \"timestep_spacing\": \"leading\"}"

static char g_msg[1024];

/* Writes json to a temporary file and loads it; NULL (with g_msg) on failure. */
static sched_config *load_json(const char *json) {
    char path[] = "/tmp/cs_test_sched_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    size_t len = strlen(json);
    bool ok = write(fd, json, len) == (ssize_t)len;
    close(fd);
    sched_config *c = NULL;
    g_msg[0] = '\0';
    if (ok && sched_config_load(path, &c, g_msg, sizeof g_msg) != CS_OK) c = NULL;
    unlink(path);
    return c;
}

static void expect_error(const char *json, const char *needle1, const char *needle2) {
    sched_config *c = load_json(json);
    CHECK(c == NULL);
    CHECK_STR_CONTAINS(g_msg, needle1);
    if (needle2) CHECK_STR_CONTAINS(g_msg, needle2);
    sched_config_free(c);
}

static void test_config_errors(void) {
    expect_error("{\"_class_name\": \"PNDMScheduler\", " SD15_FIELDS ", \"foo_bar\": 3}", "foo_bar",
                 NULL);
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"timestep_spacing\": \"weird\"}",
                 "timestep_spacing", "weird");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"thresholding\": true}", "thresholding",
                 NULL);
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"steps_offset\": \"1\"}", "steps_offset",
                 NULL);
    expect_error("{\"_class_name\": \"DDPMScheduler\", \"beta_schedule\": \"sigmoid\"}",
                 "beta_schedule", "sigmoid");
    expect_error("{\"_class_name\": \"DDPMScheduler\", \"variance_type\": \"learned_range\"}",
                 "variance_type", "learned_range");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": "
                 "\"dpmsolver\"}",
                 "algorithm_type", "dpmsolver");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_order\": 4}",
                 "solver_order", NULL);
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"use_lu_lambdas\": true}",
                 "use_lu_lambdas", NULL);
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"lambda_min_clipped\": "
                 "Infinity}",
                 "lambda_min_clipped", NULL);
    expect_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"interpolation_type\": "
                 "\"log_linear\"}",
                 "interpolation_type", "log_linear");
    expect_error("{\"_class_name\": \"EulerAncestralDiscreteScheduler\", \"prediction_type\": "
                 "\"sample\"}",
                 "prediction_type", "sample");
    expect_error("{\"_class_name\": \"UniPCMultistepScheduler\"}", "UniPCMultistepScheduler", NULL);
    expect_error("{\"beta_start\": 0.1}", "_class_name", NULL);
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"trained_betas\": [0.1, 0.2]}",
                 "trained_betas", NULL);
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"num_train_timesteps\": 1}",
                 "num_train_timesteps", NULL);
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"beta_start\": 0.5, \"beta_end\": 0.1}",
                 "beta_start", NULL);

    /* What diffusers writes for DPM-Solver (Python's json: -Infinity) loads. */
    sched_config *c = load_json("{\"_class_name\": \"DPMSolverMultistepScheduler\", "
                                "\"lambda_min_clipped\": -Infinity, \"variance_type\": null, "
                                "\"skip_prk_steps\": true, \"euler_at_final\": false}");
    CHECK(c != NULL);
    if (c) CHECK(strcmp(sched_config_sampler_name(c), "dpmpp_2m") == 0);
    sched_config_free(c);
    /* trained_betas: one per train step, used as given. */
    c = load_json("{\"_class_name\": \"DDIMScheduler\", \"num_train_timesteps\": 4, "
                  "\"trained_betas\": [0.1, 0.2, 0.3, 0.4], \"set_alpha_to_one\": true}");
    CHECK(c != NULL);
    if (c) {
        sched_state *s = NULL;
        CHECK(sched_state_new(c, 2, 8, &s, g_msg, sizeof g_msg) == CS_OK);
        if (s) {
            CHECK_NEAR(s->alphas_cumprod[1], 0.9 * 0.8, 1e-6);
            CHECK_EQ_INT(sched_timestep(s, 0), 2);
            CHECK_EQ_INT(sched_timestep(s, 1), 0);
        }
        sched_state_free(s);
    }
    sched_config_free(c);
}

static void test_by_name(void) {
    sched_config *base = load_json(SD15);
    CHECK(base != NULL);
    if (!base) return;
    CHECK(strcmp(sched_config_sampler_name(base), "pndm") == 0);
    for (const char *const *name = sched_sampler_names(); *name; name++) {
        sched_config *c = NULL;
        CHECK(sched_config_with_sampler(base, *name, false, &c, g_msg, sizeof g_msg) == CS_OK);
        if (c) CHECK(strcmp(sched_config_sampler_name(c), *name) == 0);
        sched_config_free(c);
    }
    sched_config *c = NULL;
    CHECK(sched_config_with_sampler(base, "", false, &c, g_msg, sizeof g_msg) == CS_OK);
    if (c) CHECK(strcmp(sched_config_sampler_name(c), "pndm") == 0);
    sched_config_free(c);
    c = NULL;
    CHECK(sched_config_with_sampler(base, "heun", false, &c, g_msg, sizeof g_msg) != CS_OK);
    CHECK_STR_CONTAINS(g_msg, "heun");
    CHECK(sched_config_with_sampler(base, "ddim", true, &c, g_msg, sizeof g_msg) != CS_OK);
    CHECK_STR_CONTAINS(g_msg, "Karras");
    CHECK(sched_config_with_sampler(base, NULL, true, &c, g_msg, sizeof g_msg) != CS_OK);

    /* from_config: the PNDM file's timestep_spacing "leading" carries over to Euler, whose
     * init_noise_sigma is then (sigma_max² + 1)^½. */
    sched_state *s = NULL;
    CHECK(sched_config_with_sampler(base, "euler", false, &c, g_msg, sizeof g_msg) == CS_OK);
    if (c && sched_state_new(c, 10, 4, &s, g_msg, sizeof g_msg) == CS_OK) {
        CHECK_NEAR(sched_timestep(s, 0), 901, 0);
        CHECK_NEAR(sched_init_noise_sigma(s), sqrt(1 + pow(sched_sigma(s, 0), 2)), 1e-5);
    }
    sched_state_free(s);
    sched_config_free(c);
    sched_config_free(base);
    /* ... while a file without the field gets Euler's default, linspace. */
    base = load_json("{\"_class_name\": \"DDIMScheduler\", " SD15_FIELDS "}");
    c = NULL;
    s = NULL;
    if (base && sched_config_with_sampler(base, "euler", false, &c, g_msg, sizeof g_msg) == CS_OK &&
        sched_state_new(c, 10, 4, &s, g_msg, sizeof g_msg) == CS_OK) {
        CHECK_NEAR(sched_timestep(s, 0), 999, 0);
        CHECK_NEAR(sched_init_noise_sigma(s), sched_sigma(s, 0), 0);
    } else {
        CHECK(!"euler from a DDIM config");
    }
    sched_state_free(s);
    sched_config_free(c);
    sched_config_free(base);
}

static void test_karras(void) {
    sched_config *base = load_json(SD15);
    const char *names[] = {"euler", "lms", "dpmpp_2m", "dpmpp_2m_sde"};
    for (int k = 0; base && k < 4; k++) {
        sched_config *c = NULL;
        sched_state *s = NULL;
        CHECK(sched_config_with_sampler(base, names[k], true, &c, g_msg, sizeof g_msg) == CS_OK);
        if (c && sched_state_new(c, 20, 4, &s, g_msg, sizeof g_msg) == CS_OK) {
            const int n = sched_num_steps(s);
            CHECK_EQ_INT(n, 20);
            /* DPM-Solver spans the whole training range; Euler and LMS (diffusers 0.27)
             * span the sigmas of their own first and last timestep, here "leading":
             * 951 and 1. */
            const bool dpm = k >= 2;
            CHECK_NEAR(sched_sigma(s, 0), dpm ? 14.614642 : 11.028335, 1e-4);
            CHECK_NEAR(sched_sigma(s, n - 1), dpm ? 0.0291675 : 0.0413145, 1e-5);
            /* final_sigmas_type "zero" (DPM's default) and Euler/LMS both end at 0. */
            CHECK_NEAR(sched_sigma(s, n), 0, 0);
            for (int i = 0; i + 1 < n; i++) {
                CHECK(sched_sigma(s, i + 1) < sched_sigma(s, i));
                CHECK(sched_timestep(s, i + 1) <= sched_timestep(s, i));
            }
            /* Karras is denser at low noise than the linear-in-t schedule. */
            CHECK(sched_sigma(s, n / 2) < 2.0f);
        } else {
            fprintf(stderr, "karras %s: %s\n", names[k], g_msg);
            CHECK(!"karras state");
        }
        sched_state_free(s);
        sched_config_free(c);
    }
    sched_config_free(base);
}

/* xorshift + Box-Muller: the test's own noise. */
static uint64_t g_rng = 88172645463325252ull;
static float randn(void) {
    double u[2];
    for (int k = 0; k < 2; k++) {
        g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
        u[k] = ((double)(g_rng >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]));
}

/* Runs the sampler loop against an exact denoiser for data = the single point c:
 * the model sees x_t = √ᾱ c + √(1-ᾱ) ε (what scale_model_input gives in every
 * parameterization) and returns ε (or v / x_0 for those prediction types). Returns max
 * |x_final - c|, or INFINITY on a non-finite value. */
static double run_toy(const sched_config *c, int steps, int *n_out) {
    enum { NUMEL = 64 };
    float x[NUMEL], in[NUMEL], out[NUMEL], noise[NUMEL], target[NUMEL], x0[NUMEL];
    sched_state *s = NULL;
    if (sched_state_new(c, steps, NUMEL, &s, g_msg, sizeof g_msg) != CS_OK) return -1;
    for (int k = 0; k < NUMEL; k++)
        target[k] = sinf((float)k);
    const float sigma0 = sched_init_noise_sigma(s);
    for (int k = 0; k < NUMEL; k++)
        x[k] = randn() * sigma0;
    const sched_prediction pred = s->p.prediction_type;
    const int n = sched_num_steps(s);
    for (int i = 0; i < n; i++) {
        memcpy(in, x, sizeof x);
        sched_scale_model_input(s, i, in, NUMEL);
        const double sig = sched_sigma(s, i), a = 1 / (1 + sig * sig);
        for (int k = 0; k < NUMEL; k++) {
            const double eps = (in[k] - sqrt(a) * target[k]) / sqrt(1 - a);
            out[k] = pred == PRED_EPSILON ? (float)eps
                     : pred == PRED_V     ? (float)(sqrt(a) * eps - sqrt(1 - a) * target[k])
                                          : target[k];
        }
        const bool needs = sched_step_needs_noise(s, i);
        for (int k = 0; k < NUMEL; k++)
            noise[k] = randn();
        sched_step(s, i, out, x, needs ? noise : NULL, x0);
    }
    double err = 0;
    for (int k = 0; k < NUMEL; k++) {
        if (!isfinite(x[k])) err = INFINITY;
        err = fmax(err, fabs(x[k] - target[k]));
    }
    *n_out = n;
    sched_state_free(s);
    return err;
}

static void test_toy_runs(void) {
    sched_config *base = load_json(SD15);
    const char *preds[] = {"epsilon", "v_prediction", "sample"};
    for (int pk = 0; base && pk < 3; pk++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"_class_name\": \"DDIMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": "
                 "\"scaled_linear\", \"beta_start\": 0.00085, \"clip_sample\": false, "
                 "\"set_alpha_to_one\": false, \"steps_offset\": 1, \"skip_prk_steps\": true, "
                 "\"prediction_type\": \"%s\"}",
                 preds[pk]);
        sched_config *b = pk == 0 ? base : load_json(json);
        CHECK(b != NULL);
        for (const char *const *name = sched_sampler_names(); b && *name; name++) {
            const bool no_sample = !strcmp(*name, "pndm") || !strcmp(*name, "euler_a");
            if (pk == 2 && no_sample) continue; /* diffusers has no x_0 prediction there */
            if (pk == 1 && !strcmp(*name, "pndm")) continue; /* tested with epsilon only */
            for (int karras = 0; karras < 2; karras++) {
                sched_config *c = NULL;
                if (sched_config_with_sampler(b, *name, karras, &c, g_msg, sizeof g_msg) != CS_OK) {
                    CHECK(karras); /* only the no-Karras samplers may refuse */
                    continue;
                }
                int n = 0;
                const double err = run_toy(c, 30, &n);
                /* DDIM/PNDM end at ᾱ_0 (set_alpha_to_one false), ~0.03 noise left; the
                 * stochastic ones add their last noise at small sigma. */
                if (!(err >= 0 && err < 0.15))
                    fprintf(stderr, "%s (%s, karras %d): err %g %s\n", *name, preds[pk], karras,
                            err, err < 0 ? g_msg : "");
                CHECK(err >= 0 && err < 0.15);
                CHECK_EQ_INT(n, !strcmp(*name, "pndm") ? 31 : 30);
                sched_config_free(c);
            }
        }
        if (b != base) sched_config_free(b);
    }
    sched_config_free(base);
}

static void test_step_counts(void) {
    sched_config *base = load_json(SD15);
    sched_config *lin = load_json("{\"_class_name\": \"DDIMScheduler\", " SD15_FIELDS
                                  ", \"timestep_spacing\": \"linspace\"}");
    CHECK(base && lin);
    if (!base || !lin) goto done;
    for (const char *const *name = sched_sampler_names(); *name; name++) {
        sched_config *c = NULL;
        CHECK(sched_config_with_sampler(base, *name, false, &c, g_msg, sizeof g_msg) == CS_OK);
        int n = 0;
        CHECK(run_toy(c, 1, &n) >= 0); /* one step works everywhere (PNDM: one timestep) */
        CHECK_EQ_INT(n, 1);
        sched_state *s = NULL;
        CHECK(sched_state_new(c, 1001, 4, &s, g_msg, sizeof g_msg) != CS_OK);
        CHECK_STR_CONTAINS(g_msg, "1001");
        CHECK(sched_state_new(c, 0, 4, &s, g_msg, sizeof g_msg) != CS_OK);
        CHECK(sched_state_new(c, 10, 0, &s, g_msg, sizeof g_msg) != CS_OK);
        sched_config_free(c);
    }
    /* 1000 steps: "leading" + steps_offset 1 gives timestep 1000, which indexes past
     * alphas_cumprod in diffusers; the same count with linspace spacing works. */
    const char *indexers[] = {"ddim", "ddpm", "pndm"};
    for (int k = 0; k < 3; k++) {
        sched_config *c = NULL;
        sched_state *s = NULL;
        CHECK(sched_config_with_sampler(base, indexers[k], false, &c, g_msg, sizeof g_msg) ==
              CS_OK);
        CHECK(sched_state_new(c, 1000, 4, &s, g_msg, sizeof g_msg) != CS_OK);
        CHECK_STR_CONTAINS(g_msg, "timestep 1000");
        sched_config_free(c);
    }
    const char *thousand[] = {"ddim", "ddpm", "pndm", "euler", "euler_a", "lms"};
    for (int k = 0; k < 6; k++) {
        sched_config *c = NULL;
        CHECK(sched_config_with_sampler(lin, thousand[k], false, &c, g_msg, sizeof g_msg) == CS_OK);
        int n = 0;
        const double err = run_toy(c, 1000, &n);
        if (!(err >= 0 && err < 0.15))
            fprintf(stderr, "%s 1000 steps: %g %s\n", thousand[k], err, g_msg);
        CHECK(err >= 0 && err < 0.15);
        sched_config_free(c);
    }
    /* DPM-Solver at 1000 steps repeats timesteps; its multistep update would divide by 0. */
    sched_config *c = NULL;
    sched_state *s = NULL;
    CHECK(sched_config_with_sampler(lin, "dpmpp_2m", false, &c, g_msg, sizeof g_msg) == CS_OK);
    CHECK(sched_state_new(c, 1000, 4, &s, g_msg, sizeof g_msg) != CS_OK);
    CHECK_STR_CONTAINS(g_msg, "repeat");
    sched_config_free(c);
done:
    sched_config_free(base);
    sched_config_free(lin);
}

/* PNDM without skip_prk_steps (the class default): 12 Runge-Kutta steps first. */
static void test_pndm_prk(void) {
    sched_config *c = load_json("{\"_class_name\": \"PNDMScheduler\", \"beta_end\": 0.012, "
                                "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
                                "\"steps_offset\": 1}");
    CHECK(c != NULL);
    if (!c) return;
    int n = 0;
    const double err = run_toy(c, 10, &n);
    CHECK_EQ_INT(n, 19);
    CHECK(err >= 0 && err < 0.15);
    sched_state *s = NULL;
    CHECK(sched_state_new(c, 10, 4, &s, g_msg, sizeof g_msg) == CS_OK);
    if (s) {
        /* _t = 1, 101, ..., 901: prk 901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651,
         * 601, then plms 601, 501, ... 1 */
        const double want[] = {901, 851, 851, 801, 801, 751, 751,
                               701, 701, 651, 651, 601, 601, 501};
        for (int i = 0; i < 14; i++)
            CHECK_NEAR(sched_timestep(s, i), want[i], 0);
    }
    sched_state_free(s);
    CHECK(sched_state_new(c, 3, 4, &s, g_msg, sizeof g_msg) != CS_OK);
    CHECK_STR_CONTAINS(g_msg, "skip_prk_steps");
    sched_config_free(c);
}

static void test_eta(void) {
    sched_config *base = load_json(SD15), *c = NULL;
    sched_state *s = NULL;
    if (base && sched_config_with_sampler(base, "ddim", false, &c, g_msg, sizeof g_msg) == CS_OK &&
        sched_state_new(c, 10, 4, &s, g_msg, sizeof g_msg) == CS_OK) {
        CHECK(!sched_step_needs_noise(s, 0));
        sched_set_eta(s, 1.0f);
        CHECK(sched_step_needs_noise(s, 0));
        CHECK(sched_step_needs_noise(s, 9));
    } else {
        CHECK(!"ddim state");
    }
    sched_state_free(s);
    sched_config_free(c);
    sched_config_free(base);
}

/* StableDiffusionPipeline's config fix-ups: steps_offset 1, clip_sample false. */
static void test_pipeline_fixups(void) {
    sched_config *c = load_json("{\"_class_name\": \"DDIMScheduler\", \"beta_end\": 0.012, "
                                "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085}");
    CHECK(c != NULL);
    if (!c) return;
    sched_state *s = NULL;
    if (sched_state_new(c, 10, 4, &s, g_msg, sizeof g_msg) == CS_OK) {
        CHECK_NEAR(sched_timestep(s, 0), 900, 0);
        CHECK(s->p.clip_sample);
    }
    sched_state_free(s);
    sched_config_apply_pipeline_fixups(c);
    s = NULL;
    if (sched_state_new(c, 10, 4, &s, g_msg, sizeof g_msg) == CS_OK) {
        CHECK_NEAR(sched_timestep(s, 0), 901, 0);
        CHECK(!s->p.clip_sample);
    }
    sched_state_free(s);
    /* The fixed values carry over to another sampler, as through from_config. */
    sched_config *d = NULL;
    s = NULL;
    if (sched_config_with_sampler(c, "ddpm", false, &d, g_msg, sizeof g_msg) == CS_OK &&
        sched_state_new(d, 10, 4, &s, g_msg, sizeof g_msg) == CS_OK) {
        CHECK_NEAR(sched_timestep(s, 0), 901, 0);
        CHECK(!s->p.clip_sample);
    } else {
        CHECK(!"ddpm from the fixed config");
    }
    sched_state_free(s);
    sched_config_free(d);
    sched_config_free(c);
}

#define DDIM_TRAILING                                                                              \
    "{\"_class_name\": \"DDIMScheduler\", " SD15_FIELDS ", \"timestep_spacing\": \"trailing\"}"

/* DDIM "trailing": timesteps round(arange(T, 0, -T/N)) - 1 without steps_offset, and
 * step() still goes to t - T // N (not to the next timestep): for N = 7, 999 → 857. */
static void test_ddim_trailing(void) {
    sched_config *c = load_json(DDIM_TRAILING);
    sched_state *s = NULL;
    if (!c || sched_state_new(c, 7, 1, &s, g_msg, sizeof g_msg) != CS_OK) {
        CHECK(!"ddim trailing state");
        sched_config_free(c);
        return;
    }
    const int want[7] = {999, 856, 713, 570, 428, 285, 142};
    CHECK_EQ_INT(sched_num_steps(s), 7);
    for (int i = 0; i < 7; i++) CHECK_NEAR(sched_timestep(s, i), want[i], 0);
    /* eps = 0 (epsilon prediction): x_prev = sqrt(ᾱ_prev / ᾱ_t) · x. */
    float ac[1000];
    CHECK(schedule_alphas_cumprod(sched_config_params(c), ac, g_msg, sizeof g_msg) == CS_OK);
    float x = 1.0f;
    const float zero = 0.0f;
    sched_step(s, 0, &zero, &x, NULL, NULL);
    CHECK_NEAR(x, sqrt(ac[857]) / sqrt(ac[999]), 1e-6);
    CHECK(fabs(sqrt(ac[856]) / sqrt(ac[999]) - x) > 1e-5); /* the rule is visible */
    /* The last step (142 → 0) lands on ᾱ_0, not final_alpha_cumprod. */
    for (int i = 1; i < 6; i++) sched_step(s, i, &zero, &x, NULL, NULL);
    const float before = x;
    sched_step(s, 6, &zero, &x, NULL, NULL);
    CHECK_NEAR(x, before * (sqrtf(ac[0]) / sqrtf(ac[142])), 1e-6);
    sched_state_free(s);
    sched_config_free(c);
}

#define DPM_KARRAS(final)                                                                          \
    "{\"_class_name\": \"DPMSolverMultistepScheduler\", " SD15_FIELDS                             \
    ", \"use_karras_sigmas\": true, \"final_sigmas_type\": \"" final "\"}"

/* Karras sigmas: (σmax^(1/7) + r·(σmin^(1/7) - σmax^(1/7)))^7 over r = linspace(0, 1, N),
 * σmin/σmax the training table's ends; timesteps = round(σ → t); DPM's list then ends with
 * the final_sigmas_type level. */
static void test_karras_construction(void) {
    double k[5];
    schedule_karras(0.03, 14.6, 5, k);
    for (int i = 0; i < 5; i++) {
        const double r = i / 4.0, a = pow(14.6, 1 / 7.0), b = pow(0.03, 1 / 7.0);
        CHECK_NEAR(k[i], pow(a + r * (b - a), 7), 1e-12);
    }
    const char *finals[2] = {"zero", "sigma_min"};
    for (int f = 0; f < 2; f++) {
        char json[1024];
        snprintf(json, sizeof json, DPM_KARRAS("%s"), finals[f]);
        sched_config *c = load_json(json);
        sched_state *s = NULL;
        if (!c || sched_state_new(c, 10, 1, &s, g_msg, sizeof g_msg) != CS_OK) {
            CHECK(!"dpm karras state");
            sched_config_free(c);
            continue;
        }
        float ac[1000], table[1000], logs[1000];
        CHECK(schedule_alphas_cumprod(sched_config_params(c), ac, g_msg, sizeof g_msg) == CS_OK);
        schedule_sigma_table(ac, 1000, table);
        for (int t = 0; t < 1000; t++) logs[t] = logf(table[t]);
        double want[10];
        schedule_karras(table[0], table[999], 10, want);
        for (int i = 0; i < 10; i++) {
            CHECK_NEAR(sched_sigma(s, i), (float)want[i], 0); /* not re-read from t */
            CHECK_NEAR(sched_timestep(s, i), np_round(schedule_sigma_to_t(want[i], logs, 1000)), 0);
        }
        CHECK_NEAR(sched_timestep(s, 0), 999, 0);
        CHECK_NEAR(sched_timestep(s, 9), 0, 0);
        CHECK_NEAR(sched_sigma(s, 10), f == 0 ? 0.0f : table[0], 0);
        sched_state_free(s);
        sched_config_free(c);
    }
}

/* rescale_betas_zero_snr: ᾱ_T = 0 for the alpha-space classes; Euler (and the other
 * sigma-space classes) clamp it to 2^-24 so σ stays finite (4096). */
static void test_zero_snr(void) {
    const char *classes[2] = {"DDIMScheduler", "EulerDiscreteScheduler"};
    for (int k = 0; k < 2; k++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"_class_name\": \"%s\", " SD15_FIELDS
                 ", \"rescale_betas_zero_snr\": true, \"timestep_spacing\": \"trailing\"}",
                 classes[k]);
        sched_config *c = load_json(json);
        float ac[1000];
        if (!c || schedule_alphas_cumprod(sched_config_params(c), ac, g_msg, sizeof g_msg) != CS_OK) {
            CHECK(!"zero snr config");
            sched_config_free(c);
            continue;
        }
        CHECK_NEAR(ac[999], k == 0 ? 0.0f : 0x1p-24f, 0);
        CHECK(ac[998] > ac[999] && ac[0] < 1.0f);
        sched_state *s = NULL;
        CHECK(sched_state_new(c, 10, 1, &s, g_msg, sizeof g_msg) == CS_OK);
        if (s && k == 1) CHECK_NEAR(sched_sigma(s, 0), sqrtf((1.0f - 0x1p-24f) / 0x1p-24f), 1e-3);
        sched_state_free(s);
        sched_config_free(c);
    }
}

int main(void) {
    test_ddim_trailing();
    test_karras_construction();
    test_zero_snr();
    test_config_errors();
    test_by_name();
    test_karras();
    test_toy_runs();
    test_step_counts();
    test_pndm_prk();
    test_eta();
    test_pipeline_fixups();
    CHECK_DONE();
}
