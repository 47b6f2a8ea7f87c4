/*
 * Noise schedulers (samplers), configured exactly as diffusers 0.27.2 configures them
 * from scheduler/scheduler_config.json.
 *
 * sched_config: a parsed, validated config — which class and its settings. Read-only
 * after creation; a model's config is shared by every thread.
 * sched_state: one job's sampling state (timesteps, sigmas, multistep history). All of
 * its memory is allocated by sched_state_new, so stepping never allocates. Used by one
 * thread at a time.
 *
 * The loop, in the reference pipeline's order:
 *
 *     sched_state_new(cfg, steps, numel, &s, msg, n);
 *     x *= sched_init_noise_sigma(s);                          // initial noise
 *     for (int i = 0; i < sched_num_steps(s); i++) {
 *         copy x to the model input; sched_scale_model_input(s, i, input, numel);
 *         out = model(input, sched_timestep(s, i));
 *         sched_step(s, i, out, x, sched_step_needs_noise(s, i) ? noise : NULL, NULL);
 *     }
 *
 * Adding a sampler: one engine/sampler_<name>.c filling a sampler_ops (sampler.h), one
 * line in the class table of sched_config.c.
 */
#ifndef CS_SCHEDULER_H
#define CS_SCHEDULER_H

#include "common.h"

typedef struct sched_config sched_config;
typedef struct sched_state sched_state;

/* Parses a diffusers scheduler_config.json. Classes: DDIMScheduler, PNDMScheduler,
 * EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler,
 * DDPMScheduler, LMSDiscreteScheduler. A field no supported class has, or a value the
 * engine does not implement, is an error naming the file, the field and the value. */
cs_status sched_config_load(const char *path, sched_config **out, char *msg, size_t n);
/* The same for a config built in memory (json; NULL = read path, which labels errors). */
cs_status sched_config_load_src(const char *path, const char *json, sched_config **out,
                                char *msg, size_t n);
void sched_config_free(sched_config *c);

/* NULL-terminated sampler names: "ddim", "pndm", "euler", "euler_a", "dpmpp_2m",
 * "dpmpp_2m_sde", "lms", "ddpm". */
const char *const *sched_sampler_names(void);

/* The config's own sampler name, one of sched_sampler_names() (DPM-Solver++ of any
 * solver_order reports "dpmpp_2m", or "dpmpp_2m_sde" for sde-dpmsolver++). */
const char *sched_config_sampler_name(const sched_config *c);

/* A new config for sampler `name` (NULL or "": base's own class) built from base's file
 * the way diffusers' `<Class>.from_config(base.config)` does: fields the file sets carry
 * over, the others take the new class's defaults. "dpmpp_2m" and "dpmpp_2m_sde" also
 * set solver_order 2 and algorithm_type dpmsolver++ / sde-dpmsolver++. karras sets
 * use_karras_sigmas (Euler, LMS, DPM-Solver only; an error for the others). */
cs_status sched_config_with_sampler(const sched_config *base, const char *name, bool karras,
                                    sched_config **out, char *msg, size_t n);

/* What diffusers' StableDiffusionPipeline.__init__ does to its scheduler's config (its
 * "outdated config" fix-ups): steps_offset becomes 1 and clip_sample, where the config
 * has it (the class has the field or the file sets it), becomes false. The change
 * carries into sched_config_with_sampler, as it does into from_config. Call once,
 * right after sched_config_load, before the config is shared. */
void sched_config_apply_pipeline_fixups(sched_config *c);

/* Sets the schedule for num_inference_steps (1 .. num_train_timesteps) over latents of
 * sample_numel floats. Fails when diffusers would fail or produce an out-of-range
 * timestep for that step count (e.g. DDIM "leading" + steps_offset 1 at 1000 steps). */
cs_status sched_state_new(const sched_config *c, int num_inference_steps, int64_t sample_numel,
                          sched_state **out, char *msg, size_t n);
void sched_state_free(sched_state *s);

/* DDIM's eta (default 0: deterministic; > 0 adds noise every step); other samplers
 * ignore it. Set before step 0. */
void sched_set_eta(sched_state *s, float eta);

/* Steps to run: len(timesteps) (PNDM with skip_prk_steps: N + 1). */
int sched_num_steps(const sched_state *s);
/* Timestep given to the model at step i (an integer, or float for Euler/LMS). */
double sched_timestep(const sched_state *s, int i);
/* Scale of the initial N(0, 1) latents. */
float sched_init_noise_sigma(const sched_state *s);
/* Noise level sigma = ((1 - ᾱ)/ᾱ)^½ at step i (the sigma table for sigma samplers),
 * i in [0, steps]; step `steps` is the level after the last step. */
float sched_sigma(const sched_state *s, int i);

/* x ← scale_model_input(x, t_i) (the identity for DDIM/PNDM/DDPM/DPM-Solver). */
void sched_scale_model_input(const sched_state *s, int i, float *x_inout, int64_t n);

/* Whether sched_step(i) uses noise (DDPM t > 0, Euler ancestral, SDE-DPM-Solver++,
 * DDIM with eta > 0). */
bool sched_step_needs_noise(const sched_state *s, int i);

/* img2img (diffusers' get_timesteps): the first step run for strength in (0, 1] out of
 * num_inference_steps N: t_start = N - min(int(N·strength), N), times the class's
 * `order`, which is 1 for every class here (PNDM too). N·strength is computed in double,
 * as Python does. */
int sched_strength_begin(int num_inference_steps, double strength);

/* Starts sampling at step `begin` (diffusers' set_begin_index): the steps run are
 * begin .. sched_num_steps - 1, indexed as in the full schedule (sigmas, DPM-Solver's
 * lower-order-final rule), with the multistep history empty at step `begin`, as a
 * freshly set schedule's is. Call before the first step. */
void sched_begin_at(sched_state *s, int begin);

/* out = scheduler.add_noise(x0, noise, level of step i), i in [0, sched_num_steps):
 * DDIM/PNDM/DDPM ᾱ^½·x0 + (1-ᾱ)^½·noise at timestep i; Euler/Euler a/LMS x0 + σ_i·noise;
 * DPM-Solver α_i·x0 + σ_i·α_i·noise with α_i = (σ_i² + 1)^-½ (VP form). diffusers 0.27
 * indexes sigmas by begin_index before the first step and by step_index after it, i.e.
 * always by the step whose timestep is passed. out may alias x0. */
void sched_add_noise(const sched_state *s, int i, const float *x0, const float *noise, float *out,
                     int64_t n);

/* One step: sample_inout (x_t) becomes x_{t-1}. Steps run in order 0, 1, ... (multistep
 * samplers keep history). noise: sample_numel N(0, 1) floats when
 * sched_step_needs_noise(s, i), else ignored (may be NULL). pred_original_or_NULL
 * receives the step's x_0 estimate where the sampler forms one (all but PNDM's PRK). */
void sched_step(sched_state *s, int i, const float *model_output, float *sample_inout,
                const float *noise, float *pred_original_or_NULL);

#endif
