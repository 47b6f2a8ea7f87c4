/*
 * Which served model a request runs on. A server may serve several models side by side
 * (cfgserve --model A,B); each dialect names one in its own way (native and OpenAI
 * "model", the A1111 web UI's override_settings.sd_model_checkpoint) and must pick it
 * BEFORE applying the other fields, since the model decides the defaults and limits.
 * The parse context carries that choice.
 *
 * Threads: any; nothing here keeps state.
 */
#ifndef CS_MODEL_PICK_H
#define CS_MODEL_PICK_H

#include <cfgserve/cfgserve.h>

#include <stdbool.h>
#include <stddef.h>

#include "json_body.h"

typedef struct request_limits {
    int max_width, max_height; /* configured bounds (pixels) */
} request_limits;

/* The models a server serves, each called by its cs_model_name; models[0] serves the
 * requests that name none. */
typedef struct served_models {
    const cs_model *const *models;
    int n;
} served_models;

/* Index of the served model called `name` (or, when title, its A1111 title "name [hash]");
 * -1 when none is. */
int served_model_find(const served_models *sv, const char *name, bool title);
/* The served names for messages: "a", "b" (truncated to n bytes). */
void served_model_names(const served_models *sv, char *buf, size_t n);

/* What parsing needs besides the body. A request runs on `model` unless it names another
 * served one (request_ctx_pick). */
typedef struct api_parse_ctx {
    const cs_model *model;      /* NULL: syntax alone (tests), no cs_params_validate */
    int model_index;            /* of model in *served */
    cs_gen_params defaults;     /* cs_gen_default_params of the model */
    request_limits limits;      /* the largest image for this model */
    const served_models *served; /* NULL: `model` is the only one */
    request_limits configured;  /* the server's bounds; 0 = each model's native size */
} api_parse_ctx;

/* The context of served model i: its defaults, and the configured limits with each 0
 * replaced by the model's native size. */
api_parse_ctx request_ctx(const served_models *sv, int i, request_limits configured);
/* *out = c switched to the served model called `name` (NULL keeps c's model; a title
 * "name [hash]" is accepted when title). An unknown name fails with "not_found", naming
 * `field` and listing the served names. */
cs_status request_ctx_pick(const api_parse_ctx *c, const char *name, bool title,
                           const char *field, api_parse_ctx *out, request_error *e);

#endif
