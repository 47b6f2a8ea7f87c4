/*
 * LoRA at the model level: the public calls (cs_model_set_lora_dir, cs_lora_list,
 * cs_model_fuse_lora) and a job's set of LoRAs (references, the rows its forward passes
 * use, and the prompt-cache key of those that change the text encoder).
 */
#ifndef CS_MODEL_LORA_H
#define CS_MODEL_LORA_H

#include "lora.h"
#include "model.h"

typedef struct job_loras {
    int n;
    lora_file *files[CS_MAX_LORAS_PER_JOB];   /* references */
    double weights[CS_MAX_LORAS_PER_JOB];
    cs_lora_spec specs[CS_MAX_LORAS_PER_JOB]; /* names point at files[i]->name */
    lora_row unet;                            /* every UNet row of the job */
    lora_row te;                              /* its prompt encodings */
    char *te_key; /* "name:weight;..." of the LoRAs patching the text encoder; "" if none */
} job_loras;

/* The model's module tables, indexed by lora_component. */
void model_lora_tables(const cs_model *m, const lora_module_table *tables[LORA_COMPONENTS]);

/* Checks the cs_gen_params.loras rules (count, names, weights, files present). */
cs_status model_loras_check(const cs_model *m, const cs_lora_spec *specs, int n, char *msg,
                            size_t msg_size);

/* Loads (or finds cached) each LoRA and fills out; on failure out holds nothing. */
cs_status model_loras_acquire(const cs_model *m, const cs_lora_spec *specs, int n,
                              job_loras *out, char *msg, size_t msg_size);
void model_loras_release(job_loras *jl);

#endif
