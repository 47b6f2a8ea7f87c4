/* LoRA at the model level (see model_lora.h, lora.h, lora_registry.h). */
#include "model_lora.h"

#include <math.h>
#include <string.h>

#include "lora_registry.h"

enum { LORA_MAX_WEIGHT = 10 };

void model_lora_tables(const cs_model *m, const lora_module_table *tables[LORA_COMPONENTS]) {
    tables[LORA_UNET] = unet_lora_modules(m->unet);
    tables[LORA_TE] = text_encoder_lora_modules(m->text_encoder);
}

cs_status cs_model_set_lora_dir(cs_model *m, const char *dir, char *msg, size_t n) {
    return lora_registry_set_dir(m->loras, dir, msg, n);
}

char **cs_lora_list(const cs_model *m, int *count) {
    int dummy;
    return lora_registry_list(m->loras, count ? count : &dummy);
}

void cs_lora_list_free(char **names) {
    for (char **p = names; p && *p; p++) free(*p);
    free(names);
}

cs_status cs_model_fuse_lora(cs_model *m, const char *name, double weight, char *msg, size_t n) {
    if (!isfinite(weight) || fabs(weight) > LORA_MAX_WEIGHT)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA weight %g is outside [-%d, %d]", weight,
                       LORA_MAX_WEIGHT, LORA_MAX_WEIGHT);
    const lora_module_table *tables[LORA_COMPONENTS];
    model_lora_tables(m, tables);
    lora_file *f;
    cs_status st = lora_registry_get(m->loras, name, tables, &f, msg, n);
    if (st != CS_OK) return st;
    lora_fuse(f, tables, weight);
    lora_file_unref(f);
    return CS_OK;
}

cs_status model_loras_check(const cs_model *m, const cs_lora_spec *specs, int n, char *msg,
                            size_t msg_size) {
    if (n < 0 || n > CS_MAX_LORAS_PER_JOB || (n > 0 && !specs))
        return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "loras: at most %d, given as a list",
                       CS_MAX_LORAS_PER_JOB);
    for (int i = 0; i < n; i++) {
        const double w = specs[i].weight;
        if (!isfinite(w) || fabs(w) > LORA_MAX_WEIGHT)
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size,
                           "loras[%d]: weight must be within [-%d, %d]", i, LORA_MAX_WEIGHT,
                           LORA_MAX_WEIGHT);
        char canon[256], path[4096], why[400];
        if (lora_registry_resolve(m->loras, specs[i].name, canon, path, why, sizeof why) != CS_OK)
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "loras[%d]: %s", i, why);
    }
    return CS_OK;
}

/* "name:weight;" for each LoRA that patches the text encoder (weights exact, %.17g). */
static char *te_key(const job_loras *jl) {
    size_t len = 1;
    for (int i = 0; i < jl->n; i++) len += strlen(jl->files[i]->name) + 32;
    char *key = cs_malloc(len);
    if (!key) return NULL;
    size_t at = 0;
    key[0] = '\0';
    for (int i = 0; i < jl->n; i++)
        if (jl->files[i]->patched[LORA_TE] > 0 && jl->weights[i] != 0)
            at += (size_t)snprintf(key + at, len - at, "%s:%.17g;", jl->files[i]->name,
                                   jl->weights[i]);
    return key;
}

cs_status model_loras_acquire(const cs_model *m, const cs_lora_spec *specs, int n,
                              job_loras *out, char *msg, size_t msg_size) {
    memset(out, 0, sizeof *out);
    cs_status st = model_loras_check(m, specs, n, msg, msg_size);
    if (st != CS_OK) return st;
    const lora_module_table *tables[LORA_COMPONENTS];
    model_lora_tables(m, tables);
    for (int i = 0; i < n; i++) {
        if ((st = lora_registry_get(m->loras, specs[i].name, tables, &out->files[i], msg,
                                    msg_size)) != CS_OK) {
            model_loras_release(out);
            return st;
        }
        out->n = i + 1;
        out->weights[i] = specs[i].weight;
        out->specs[i] = (cs_lora_spec){.name = out->files[i]->name, .weight = specs[i].weight};
    }
    lora_row_fill(&out->unet, out->files, out->weights, n, LORA_UNET);
    lora_row_fill(&out->te, out->files, out->weights, n, LORA_TE);
    if (!(out->te_key = te_key(out))) {
        model_loras_release(out);
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    }
    return CS_OK;
}

void model_loras_release(job_loras *jl) {
    for (int i = 0; i < jl->n; i++) lora_file_unref(jl->files[i]);
    free(jl->te_key);
    memset(jl, 0, sizeof *jl);
}

cs_status cs_lora_spec_parse(const char *text, char *name, size_t name_size, double *weight,
                             char *msg, size_t n) {
    const char *colon = strrchr(text, ':');
    size_t len = strlen(text);
    *weight = 1.0;
    if (colon && colon[1]) {
        char *end;
        const double w = strtod(colon + 1, &end);
        if (*end == '\0') {
            *weight = w;
            len = (size_t)(colon - text);
        }
    }
    if (len == 0 || len >= name_size)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA \"%.60s\": expected NAME or NAME:WEIGHT", text);
    memcpy(name, text, len);
    name[len] = '\0';
    if (!isfinite(*weight) || fabs(*weight) > LORA_MAX_WEIGHT)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "LoRA \"%.60s\": weight must be within [-%d, %d]",
                       text, LORA_MAX_WEIGHT, LORA_MAX_WEIGHT);
    return lora_name_check(name, msg, n);
}
