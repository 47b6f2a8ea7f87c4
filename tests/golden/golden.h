/*
 * cfgserve-golden: replays reference cases produced by diffusers / transformers.
 *
 * A case folder holds case.json (kind, component folders, inputs/outputs) plus
 * inputs.safetensors / outputs.safetensors. The driver reads case.json generically,
 * picks the handler registered for its "kind", and the handler runs the component and
 * reports each output through golden_compare, which prints one line per tensor:
 *
 *     <case> <output>  max_abs=… max_rel=… tol=…  PASS|FAIL
 *
 * A case whose kind has no handler, or whose inputs the handler cannot run, fails with a
 * reason; nothing is skipped silently.
 */
#ifndef CS_GOLDEN_H
#define CS_GOLDEN_H

#include "common.h"
#include "safetensors.h"

typedef struct cJSON cJSON;

typedef struct golden_case {
    const char *dir;        /* case folder */
    const char *label;      /* printed name */
    cJSON *json;            /* parsed case.json */
    st_file *inputs;        /* inputs.safetensors, or NULL when absent */
    st_file *outputs;       /* outputs.safetensors, or NULL when absent */
    int failures;           /* comparisons that failed */
    int compared;           /* comparisons made */
} golden_case;

typedef struct golden_handler {
    const char *kind; /* case.json "kind" */
    /* Runs the case; returns non-OK with msg when it cannot be run at all. */
    cs_status (*run)(golden_case *gc, char *msg, size_t msg_size);
} golden_handler;

/* Resolves case.json component_dirs[name] (relative to the case) into buf. */
cs_status golden_component_dir(const golden_case *gc, const char *name, char *buf, size_t n,
                               char *msg, size_t msg_size);

/* Joins dir and a relative path into buf. */
void golden_path(char *buf, size_t n, const char *dir, const char *rel);

/* Loads a float tensor (any float dtype) from f into a new fp32 array (caller frees);
 * dims/ndim receive its shape when non-NULL. */
cs_status golden_load_f32(const st_file *f, const char *name, float **out, int64_t *dims,
                          int *ndim, char *msg, size_t msg_size);
cs_status golden_load_i64(const st_file *f, const char *name, int64_t **out, int64_t *dims,
                          int *ndim, char *msg, size_t msg_size);

/* Compares got (numel floats) to the expected tensor `name` in `expected` and prints a
 * line. abs_tol applies to max |got - want|; rel_scale > 0 makes the limit
 * abs_tol * max(1, rel_scale) (e.g. max |want|). Returns true on PASS. */
bool golden_compare(golden_case *gc, const char *name, const float *got, int64_t numel,
                    const float *want, double abs_tol);

/* Per-element relative limit: passes when every |got[i] - want[i]| <= tol * max(1, |want[i]|)
 * (golden/README's rule for scheduler tensors: an absolute limit for values below 1, a
 * relative one above, so a float32 rounding of a timestep near 900 is not an error).
 * Prints max_abs, and max_scaled = max |got - want| / max(1, |want|) against tol. */
bool golden_compare_rel(golden_case *gc, const char *name, const float *got, int64_t numel,
                        const float *want, double tol);

/* Per-element limit by a given magnitude: passes when every |got[i] - want[i]| <= tol *
 * max(1, scale[i]) (scale NULL: |want[i]|, i.e. golden_compare_rel); scale_name labels the
 * printed line. For values whose float32 error grows with an input, e.g. sin/cos of a large
 * argument. */
bool golden_compare_scaled(golden_case *gc, const char *name, const float *got, int64_t numel,
                           const float *want, const float *scale, const char *scale_name,
                           double tol);

/* Prints a PASS/FAIL line for an exact comparison (token ids and the like). */
bool golden_report_exact(golden_case *gc, const char *name, int64_t mismatches, int64_t total,
                         const char *detail);

/* Replaces the model's scheduler by the case's case.json "scheduler.config" (what the
 * reference did with pipe.scheduler = Class.from_config(...)); none given: unchanged. */
cs_status golden_swap_scheduler(golden_case *gc, cs_model *m, char *msg, size_t msg_size);

/* Handlers, one per kind, each in its own golden_<kind>.c. */
extern const golden_handler golden_tokenizer_handler;
extern const golden_handler golden_text_encoder_handler;
extern const golden_handler golden_unet_handler;
extern const golden_handler golden_vae_handler;
extern const golden_handler golden_pipeline_handler;
extern const golden_handler golden_scheduler_handler;
extern const golden_handler golden_lora_handler;

typedef struct cs_model cs_model;
struct cs_lora_spec;
/* The "pipeline" replay on a loaded model (the caller owns it), each job using loras. */
cs_status golden_pipeline_run_model(golden_case *gc, cs_model *m, const struct cs_lora_spec *loras,
                                    int nloras, char *msg, size_t msg_size);
extern const golden_handler golden_img2img_handler;
extern const golden_handler golden_single_file_handler;

#endif
