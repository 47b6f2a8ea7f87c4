/*
 * LoRA files (kohya / A1111 .safetensors) and how a forward pass applies them.
 *
 * File format: per patched module `<name>.lora_down.weight` [r, in] (conv: [r, in, k, k]),
 * `<name>.lora_up.weight` [out, r] (conv: [out, r, 1, 1]) and optionally `<name>.alpha`
 * (0-d; missing = r), <name> = "lora_unet_" / "lora_te_" + module path with '.' -> '_'.
 * The rule every loader uses: W' = W + weight · (alpha / r) · up · down.
 *
 * DESIGN. A loaded LoRA (lora_file) holds, per component and per slot of that component's
 * module table (lora_modules.h), the fp32 (down, up, alpha/r) of the layer or NULL. It is
 * never applied by patching shared weights (except cs_model_fuse_lora): a forward pass
 * gets, in its ctx, a lora_rowset saying which LoRAs (with weights) each batch item uses,
 * and linear_forward / conv_forward add weight·(alpha/r)·up(down x) to those items only,
 * one item at a time, so batch companions never change a row's bits. A lora_file is
 * immutable after loading and reference-counted (atomic): the model's registry holds one
 * reference, each job using it another.
 */
#ifndef CS_LORA_H
#define CS_LORA_H

#include <stdatomic.h>

#include "lora_modules.h"

/* The largest rank accepted; sessions plan their arena for it. */
enum { LORA_MAX_RANK = 256 };

typedef enum lora_component { LORA_UNET = 0, LORA_TE = 1, LORA_COMPONENTS = 2 } lora_component;

typedef struct lora_delta {
    int64_t rank;
    double alpha_over_r;
    float *down; /* (r, in[, k, k]) */
    float *up;   /* (out, r) */
} lora_delta;

typedef struct lora_file {
    char *name;   /* as listed: the file name without ".safetensors" */
    atomic_int refs;
    int slots[LORA_COMPONENTS];                   /* module table sizes when loaded */
    lora_delta **deltas[LORA_COMPONENTS];         /* [slot - 1]: NULL = layer untouched */
    int patched[LORA_COMPONENTS];                 /* non-NULL entries */
} lora_file;

/* One LoRA as one batch item uses it: the component's entries and the weight. */
typedef struct lora_use {
    const lora_delta *const *deltas;
    double weight;
} lora_use;

typedef struct lora_row {
    int n;
    lora_use use[CS_MAX_LORAS_PER_JOB];
} lora_row;

/* What cs_ctx.lora points at: one lora_row per batch item of the forward pass. */
typedef struct lora_rowset {
    int64_t rows;
    const lora_row *row;
} lora_rowset;

/* Reads the LoRA at `path` against the model's module tables. Every key must name a
 * module of the tables with fitting shapes; errors name the file and the key. */
cs_status lora_file_load(const char *path, const char *name,
                         const lora_module_table *const tables[LORA_COMPONENTS], lora_file **out,
                         char *msg, size_t msg_size);
lora_file *lora_file_ref(lora_file *f);
void lora_file_unref(lora_file *f); /* frees on the last reference; NULL is a no-op */

/* W += weight · (alpha/r) · up · down for every layer f patches, computed in double and
 * stored as float (the reference's rule). A 16-bit weight (layers.h) is widened, added to
 * and stored back rounded to its 16 bits, as diffusers' fuse_lora does on a float16
 * pipeline: the fused model keeps half the memory, at the cost of the 16-bit rounding of
 * the sum (load with weights_dtype "fp32" to fuse in fp32). Single-threaded, at load
 * time only. */
void lora_fuse(const lora_file *f, const lora_module_table *const tables[LORA_COMPONENTS],
               double weight);

/* row = the uses of files[0..n) (weights[i]) in component comp; files without entries
 * there are left out. */
void lora_row_fill(lora_row *row, lora_file *const *files, const double *weights, int n,
                   lora_component comp);

#endif
