/*
 * Noise schedules as diffusers 0.27.2 builds them: the resolved parameters of one
 * scheduler class (sched_params), betas → alphas_cumprod, the numpy routines the
 * schedulers' set_timesteps use (linspace, arange, round, interp) and the sigma
 * helpers (Karras sigmas, sigma → timestep).
 *
 * Precision follows the reference on purpose: betas, alphas and alphas_cumprod are
 * float32 tensors (torch's cumprod accumulates in double and stores float), the sigma
 * table (1 - ᾱ)/ᾱ)^½ is float32, and numpy work on timesteps and interpolated sigmas
 * is float64 until the scheduler casts it to float32. Functions say which they do.
 *
 * Pure functions over caller-owned memory; thread-safe.
 */
#ifndef CS_SCHEDULE_H
#define CS_SCHEDULE_H

#include "common.h"

typedef enum sched_kind {
    SCHED_DDIM,
    SCHED_PNDM,
    SCHED_EULER,
    SCHED_EULER_A,
    SCHED_DPMPP, /* DPMSolverMultistepScheduler */
    SCHED_DDPM,
    SCHED_LMS,
    SCHED_KIND_COUNT
} sched_kind;

typedef enum { BETA_LINEAR, BETA_SCALED_LINEAR, BETA_SQUAREDCOS_CAP_V2 } sched_beta_schedule;
typedef enum { PRED_EPSILON, PRED_V, PRED_SAMPLE } sched_prediction;
typedef enum { SPACING_LINSPACE, SPACING_LEADING, SPACING_TRAILING } sched_spacing;
typedef enum { VAR_FIXED_SMALL, VAR_FIXED_SMALL_LOG, VAR_FIXED_LARGE } sched_variance;
typedef enum { TSTYPE_DISCRETE, TSTYPE_CONTINUOUS } sched_timestep_type;
typedef enum { DPM_ALGO_DPMSOLVER_PP, DPM_ALGO_SDE_DPMSOLVER_PP } sched_dpm_algorithm;
typedef enum { DPM_SOLVER_MIDPOINT, DPM_SOLVER_HEUN } sched_dpm_solver;
typedef enum { FINAL_SIGMA_ZERO, FINAL_SIGMA_MIN } sched_final_sigma;

/* One scheduler class's settings after defaults are applied. Fields a class does not
 * have keep their zero/neutral values. */
typedef struct sched_params {
    sched_kind kind;
    int64_t num_train_timesteps;
    double beta_start, beta_end;
    sched_beta_schedule beta_schedule;
    const float *trained_betas; /* [num_train_timesteps] or NULL; borrowed from the config */
    sched_prediction prediction_type;
    sched_spacing timestep_spacing;
    int64_t steps_offset;
    bool rescale_betas_zero_snr;
    bool clip_sample; /* DDIM, DDPM */
    double clip_sample_range;
    bool set_alpha_to_one;             /* DDIM, PNDM */
    bool skip_prk_steps;               /* PNDM */
    sched_variance variance_type;      /* DDPM */
    bool use_karras_sigmas;            /* Euler, LMS, DPM */
    double sigma_min, sigma_max;       /* Euler's Karras range; NAN = from the schedule */
    sched_timestep_type timestep_type; /* Euler */
    int solver_order;                  /* DPM: 1..3 */
    sched_dpm_algorithm algorithm_type;
    sched_dpm_solver solver_type;
    bool lower_order_final, euler_at_final;
    sched_final_sigma final_sigmas_type;
    double lambda_min_clipped; /* -INFINITY = no clipping */
} sched_params;

/* alphas_cumprod[num_train_timesteps] (float32, as torch.cumprod(1 - betas)), with
 * rescale_betas_zero_snr applied to the betas; the sigma-space classes (Euler, Euler
 * ancestral, DPM) then set the last entry to 2^-24 as diffusers does. */
cs_status schedule_alphas_cumprod(const sched_params *p, float *out, char *msg, size_t n);

/* sigma[t] = ((1 - ᾱ_t) / ᾱ_t)^½ in float32, for t < T. */
void schedule_sigma_table(const float *alphas_cumprod, int64_t T, float *sigma);

/* numpy.linspace(start, stop, num) in float64 (endpoint included). */
void np_linspace(double start, double stop, int64_t num, double *out);

/* Length of numpy.arange(start, stop, step) for floats: ceil((stop - start) / step),
 * at least 0. */
int64_t np_arange_len(double start, double stop, double step);
/* numpy.arange(start, stop, step) for floats: out[0] = start, out[1] = start + step and
 * out[i] = start + i·(out[1] - out[0]) (numpy's fill rule); len from np_arange_len. */
void np_arange(double start, double step, int64_t len, double *out);

/* numpy.round: half to even. */
double np_round(double x);

/* numpy.interp(x, arange(n), fp) with fp float32 (computed in float64). */
double np_interp_index(double x, const float *fp, int64_t n);

/* Karras et al. (2022) sigmas, rho = 7: n values from sigma_max down to sigma_min
 * (float64, diffusers _convert_to_karras). */
void schedule_karras(double sigma_min, double sigma_max, int64_t n, double *out);

/* diffusers _sigma_to_t: fractional timestep of sigma by linear interpolation of
 * log sigma over log_sigmas[T] (float32, increasing with t). */
double schedule_sigma_to_t(double sigma, const float *log_sigmas, int64_t T);

#endif
