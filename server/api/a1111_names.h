/*
 * The AUTOMATIC1111 web UI's sampler and scheduler names, mapped onto the engine's
 * samplers. Names are matched exactly, aliases too (the web UI's k-diffusion aliases such
 * as "k_euler_a"); the pre-1.9 names with " Karras" select Karras sigmas, and since 1.9 a
 * separate scheduler ("Automatic", "Uniform", "Karras") does. "Automatic" is the sampler's
 * own default in the web UI: Karras for DPM++ 2M; for DPM++ 2M SDE the web UI uses an
 * exponential schedule, which the engine does not have, so Karras (the nearest) is used.
 */
#ifndef CS_A1111_NAMES_H
#define CS_A1111_NAMES_H

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct a1111_sampler {
    const char *name;      /* "DPM++ 2M" */
    const char *aliases[3];
    const char *engine;    /* "dpmpp_2m" */
    bool karras;           /* the name itself says Karras ("DPM++ 2M Karras") */
    bool auto_karras;      /* "Automatic" means Karras for this sampler */
    bool listed;           /* in GET /sdapi/v1/samplers (the legacy Karras names are not) */
} a1111_sampler;

/* NULL when unknown. */
const a1111_sampler *a1111_find_sampler(const char *name);
/* The web UI's label of an engine sampler ("euler_a" → "Euler a"); the name itself when
 * there is none. */
const char *a1111_sampler_label(const char *engine);

/* scheduler: NULL, "", a name or a label. Sets *karras; false when unsupported. */
bool a1111_scheduler_karras(const char *scheduler, const a1111_sampler *s, bool *karras);

/* GET /sdapi/v1/samplers and /sdapi/v1/schedulers bodies. */
cJSON *a1111_samplers_json(void);
cJSON *a1111_schedulers_json(void);

#endif
