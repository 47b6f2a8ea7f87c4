/* The models a server serves (see served_load.h). */
#include "served_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#ifndef CS_DEFAULT_MODEL_DIR
#define CS_DEFAULT_MODEL_DIR "models/default"
#endif
#ifndef CS_STUDENT_MODEL_DIR
#define CS_STUDENT_MODEL_DIR "models/student"
#endif

static bool has_index(const char *dir) {
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/model_index.json", dir);
    return access(probe, R_OK) == 0;
}

/* o->model split at commas into s->paths; "" = the bundled models. */
static cs_status split_paths(const server_options *o, served_set *s, int *n, char *msg,
                             size_t msg_size) {
    *n = 0;
    if (!o->model[0]) {
        if (!has_index(CS_DEFAULT_MODEL_DIR)) {
            snprintf(msg, msg_size,
                     "the default model (%s) has not been built yet: build it with the scripts "
                     "in training/, or pass --model DIR (a diffusers folder such as a Stable "
                     "Diffusion 1.x/2.x save_pretrained output)",
                     CS_DEFAULT_MODEL_DIR);
            return CS_ERR_IO;
        }
        s->paths[(*n)++] = CS_DEFAULT_MODEL_DIR;
        if (has_index(CS_STUDENT_MODEL_DIR)) s->paths[(*n)++] = CS_STUDENT_MODEL_DIR;
        return CS_OK;
    }
    if (!(s->list = strdup(o->model))) {
        snprintf(msg, msg_size, "out of memory");
        return CS_ERR_NOMEM;
    }
    for (char *p = s->list, *next; p; p = next) {
        next = strchr(p, ',');
        if (next) *next++ = '\0';
        if (!p[0] || *n == SERVICE_MAX_MODELS) {
            snprintf(msg, msg_size, "--model: %s (a path, or up to %d paths separated by commas)",
                     p[0] ? "too many models" : "an empty path", SERVICE_MAX_MODELS);
            return CS_ERR_INVALID_ARG;
        }
        s->paths[(*n)++] = p;
    }
    return CS_OK;
}

/* Names travel in JSON, URLs and metric labels: printable ASCII without quotes,
 * backslashes or commas, and unique. */
static cs_status check_name(const served_set *s, int i, char *msg, size_t msg_size) {
    const char *name = cs_model_name(s->models[i]);
    for (const char *c = name; *c; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\' || *c == ',') {
            snprintf(msg, msg_size, "model %s: its name \"%s\" must be printable ASCII without "
                                    "quotes, backslashes or commas (rename the folder)",
                     s->paths[i], name);
            return CS_ERR_INVALID_ARG;
        }
    for (int k = 0; k < i; k++)
        if (!strcmp(cs_model_name(s->models[k]), name)) {
            snprintf(msg, msg_size, "models %s and %s have the same name \"%s\": requests "
                                    "could not tell them apart (rename a folder)",
                     s->paths[k], s->paths[i], name);
            return CS_ERR_INVALID_ARG;
        }
    return CS_OK;
}

/* --lora-dir for every model; --fuse-lora into the first, before any is shared. */
static cs_status setup_loras(const server_options *o, served_set *s, int i, char *msg,
                             size_t n) {
    if (o->lora_dir[0]) {
        cs_status st = cs_model_set_lora_dir(s->models[i], o->lora_dir, msg, n);
        if (st != CS_OK) return st;
    }
    if (!o->fuse_lora[0] || i > 0) return CS_OK;
    char name[256];
    double weight;
    cs_status st = cs_lora_spec_parse(o->fuse_lora, name, sizeof name, &weight, msg, n);
    if (st == CS_OK) st = cs_model_fuse_lora(s->models[i], name, weight, msg, n);
    if (st == CS_OK) log_msg(CS_LOG_INFO, "LoRA %s fused at weight %g", name, weight);
    return st;
}

cs_status served_load(const server_options *o, served_set *s, char *msg, size_t msg_size) {
    memset(s, 0, sizeof *s);
    int n = 0;
    cs_status st = split_paths(o, s, &n, msg, msg_size);
    for (int i = 0; st == CS_OK && i < n; i++) {
        const cs_load_params lp = {.path = s->paths[i],
                                   .vae = o->vae[0] ? o->vae : NULL,
                                   .prediction_type = o->prediction_type[0] ? o->prediction_type : NULL,
                                   .model_type = o->model_type[0] ? o->model_type : NULL,
                                   .weights_dtype = o->weights_dtype,
                                   .precision = o->precision};
        char why[900];
        st = cs_model_load_ex(&lp, &s->models[i], why, sizeof why);
        if (st != CS_OK) {
            snprintf(msg, msg_size, "cannot load the model %s: %s", s->paths[i], why);
            break;
        }
        s->shared[i] = s->models[i];
        s->view.n = i + 1;
        st = check_name(s, i, msg, msg_size);
        if (st == CS_OK && (st = setup_loras(o, s, i, why, sizeof why)) != CS_OK)
            snprintf(msg, msg_size, "LoRA (model %s): %s", s->paths[i], why);
    }
    s->view.models = s->shared;
    if (st != CS_OK) served_free(s);
    return st;
}

void served_free(served_set *s) {
    for (int i = 0; i < s->view.n; i++)
        cs_model_free(s->models[i]);
    free(s->list);
    memset(s, 0, sizeof *s);
}
