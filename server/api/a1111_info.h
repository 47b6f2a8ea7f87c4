/*
 * The AUTOMATIC1111 web UI's read-only routes (GET /sdapi/v1/options, sd-models, samplers,
 * schedulers, loras, upscalers, embeddings, memory, ...) and its progress answer, in the
 * shapes of modules/api/models.py. Features this server does not have answer with empty
 * lists (upscalers: only "None"), so clients that list them work.
 */
#ifndef CS_A1111_INFO_H
#define CS_A1111_INFO_H

#include <cfgserve/cfgserve.h>
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "model_pick.h"

/* The body of GET /sdapi/v1/<sub> (NULL when sub is not one of them). */
cJSON *a1111_info_json(const char *sub, const served_models *sv, int current);

/* Steps between the previews of an A1111 job (GET progress's current_image), reported as
 * the show_progress_every_n_steps option. */
enum { A1111_PREVIEW_EVERY = 5 };

typedef struct a1111_progress {
    bool active;            /* a job of the caller is queued or running */
    int step, steps;        /* of the caller's current job */
    int job_count;          /* the caller's unfinished jobs */
    double eta_s;           /* estimated seconds left */
    bool interrupted;       /* the caller's last job was interrupted */
    bool skipped;           /* ... by POST skip */
    const char *current_image; /* base64 PNG preview of the current job, or NULL */
} a1111_progress;

cJSON *a1111_progress_json(const a1111_progress *p);

/* POST /sdapi/v1/options: sd_model_checkpoint must name the served model; settings with
 * no effect here are ignored. False (with a message) when the body is not acceptable. */
bool a1111_set_options(const cJSON *body, const served_models *sv, int *current, char *msg,
                       size_t n);

#endif
