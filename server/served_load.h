/*
 * The models a server serves, loaded from --model: one path or a comma-separated list
 * ("models/default,models/student"); the first answers requests that name no model. ""
 * (the default) serves the bundled models: models/default, and models/student (the
 * guidance-distilled student) when it is there. Each model is called by its folder's (or
 * file's) name, which must be unique and plain text (it appears in JSON, URLs and
 * Prometheus labels). --vae, --prediction-type, --model-type, --weights-dtype and --precision
 * apply to every model; --lora-dir is every model's LoRA folder; --fuse-lora patches the first.
 *
 * Threads: main's thread (at start-up and shutdown).
 */
#ifndef CS_SERVED_LOAD_H
#define CS_SERVED_LOAD_H

#include <cfgserve/cfgserve.h>

#include "model_pick.h"
#include "options.h"
#include "service.h"

typedef struct served_set {
    cs_model *models[SERVICE_MAX_MODELS];       /* owned */
    const cs_model *shared[SERVICE_MAX_MODELS]; /* the same, read-only once loaded */
    const char *paths[SERVICE_MAX_MODELS];      /* into `list` */
    char *list;                                 /* the paths, split in place (owned) */
    served_models view;                         /* what requests see: view.models = shared */
} served_set;

/* Loads every model of o->model; on failure *out holds nothing and msg says which model
 * and why. */
cs_status served_load(const server_options *o, served_set *out, char *msg, size_t msg_size);
void served_free(served_set *s);

#endif
