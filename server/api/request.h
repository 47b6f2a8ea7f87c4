/*
 * Request bodies: the JSON of POST /generate and POST /jobs turned into cs_gen_params,
 * with every field checked before a job exists (DESIGN §7): the raw body must be valid
 * UTF-8 without NUL characters, the root an object, every key known and given once,
 * every value of the right type and range; then cs_params_validate applies the model's
 * own rules. An error names the field and says why.
 *
 * Threads: any; the functions keep no state.
 */
#ifndef CS_REQUEST_H
#define CS_REQUEST_H

#include <cfgserve/cfgserve.h>

#include "json_body.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct request_limits {
    int max_width, max_height; /* configured bounds (pixels) */
} request_limits;

/* A parsed request. p's strings point into the owned copies below. */
typedef struct request_gen {
    cs_gen_params p;
    char *prompt, *negative_prompt, *sampler; /* owned; sampler NULL = the model's */
    cs_lora_spec *loras;                      /* owned (names too); p.loras points here */
    bool stream;                              /* "stream": true */
    bool seed_random;                         /* the seed was drawn here (absent or -1) */
    /* What a dialect keeps for its answer (owned; freed by dialect_free). */
    void *dialect_data;
    void (*dialect_free)(void *data);
} request_gen;

/* Parses and checks body[0..len) against defaults (cs_gen_default_params of the model)
 * and lim. m may be NULL (tests of the syntax alone): then cs_params_validate is skipped.
 * On failure *err is filled and *out holds nothing to free. */
cs_status request_parse(const char *body, size_t len, const cs_model *m,
                        const cs_gen_params *defaults, const request_limits *lim, request_gen *out,
                        request_error *err);
void request_gen_deinit(request_gen *r);
/* Frees r->loras and clears p.loras / p.num_loras. */
void request_free_loras(request_gen *r);

/* A random 64-bit seed from the kernel's generator. */
uint64_t request_random_seed(void);

/* The effective parameters as a compact JSON object ({"prompt":…,"seed":…}), malloc'd;
 * the seed is written exactly (all 64 bits), non-ASCII characters as \u escapes, so the
 * text can go in an HTTP header. */
char *request_params_json(const cs_gen_params *p);

#endif
