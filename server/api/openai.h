/*
 * Shared by the OpenAI images dialect's files: openai.c (generations, the answer and the
 * error shape) and openai_edits.c (the multipart edits request).
 *
 * Threads: any; no state.
 */
#ifndef CS_OPENAI_H
#define CS_OPENAI_H

#include "dialect.h"

/* What the answer needs besides the request (request_gen.dialect_data). */
typedef struct openai_data {
    bool url;             /* response_format "url" */
    bool size_given;      /* "size" set width/height */
    bool strength_given;  /* the "strength" extension (edits) */
} openai_data;

/* Picks the model called `model` (NULL or an OpenAI model name: base's) into *c and
 * starts *out with its defaults, n = 1, a random seed, and openai_data. */
cs_status openai_begin(const api_parse_ctx *base, const char *model, api_parse_ctx *c,
                       request_gen *out, request_error *e);
/* One field (JSON member, or a form field made JSON); raw is the value's exact text (for
 * seeds). edits: "strength" is allowed. Unknown fields fail with unknown_parameter. */
cs_status openai_apply_field(const api_parse_ctx *c, const cJSON *v, const char *raw,
                             size_t raw_len, bool edits, request_gen *r, request_error *e);
/* Required fields, limits, the seed, and cs_params_validate (fields named as OpenAI's). */
cs_status openai_finish(const api_parse_ctx *c, request_gen *out, request_error *e);
/* POST /v1/images/edits (openai_edits.c). */
cs_status openai_parse_edit_form(const api_parse_ctx *c, const api_form *form, request_gen *out,
                                 request_error *e);

#endif
