/*
 * API dialects. Every door into the server — the native API, the AUTOMATIC1111 web UI's
 * /sdapi/v1, OpenAI's /v1/images — is a thin adapter around ONE internal request
 * (request_gen: cs_gen_params plus what the answer needs): it parses its own JSON into
 * that request, and renders the finished job and any error in its own shape. The
 * transport (server/http/) picks the dialect by route and does everything else the same
 * way: one queue, one batcher, the same step-level batches for all three.
 *
 * Threads: any; dialects keep no state.
 */
#ifndef CS_DIALECT_H
#define CS_DIALECT_H

#include "request.h"

/* A finished job, as a dialect renders it. */
typedef struct api_result {
    uint64_t job_id;
    int n_images;
    uint8_t *const *png;
    const size_t *png_len;
    const uint64_t *seeds;
    char *const *infotext; /* each image's A1111 "parameters" text; entries may be NULL */
    const char *model_name;
    const char *base_url; /* "http://host[:port]" the client used (Host header), for URLs */
} api_result;

/* One part of a multipart/form-data body (the transport splits the body; a dialect reads
 * the parts). Text fields are NUL-terminated (data[len] == 0). */
typedef struct api_part {
    char *name, *filename, *content_type; /* filename/content_type may be NULL */
    uint8_t *data;
    size_t len;
} api_part;

typedef struct api_form {
    api_part *parts;
    int n;
} api_form;

typedef struct api_dialect {
    const char *name;
    /* The body → *out (fully validated, cs_params_validate included). */
    cs_status (*parse)(const api_parse_ctx *c, const char *body, size_t len, request_gen *out,
                       request_error *e);
    /* The JSON answer of a finished job (malloc'd; *len its length), NULL when out of
     * memory. */
    char *(*render_result)(const request_gen *g, const api_result *res, size_t *len);
    /* The error body in the dialect's shape (malloc'd); may change *status (the web UI
     * answers validation errors with 422). */
    char *(*render_error)(const request_error *e, int *status, size_t *len);
    /* A multipart/form-data body → *out; NULL when the dialect reads JSON only. */
    cs_status (*parse_form)(const api_parse_ctx *c, const api_form *form, request_gen *out,
                            request_error *e);
} api_dialect;

extern const api_dialect api_native;        /* POST /generate, POST /jobs */
extern const api_dialect api_a1111_txt2img; /* POST /sdapi/v1/txt2img */
extern const api_dialect api_a1111_img2img; /* POST /sdapi/v1/img2img (a1111_img2img.c) */
extern const api_dialect api_a1111_other;   /* errors of the other /sdapi/v1 routes */
extern const api_dialect api_openai_generations; /* POST /v1/images/generations (openai.c) */
extern const api_dialect api_openai_edits;       /* POST /v1/images/edits (multipart) */
extern const api_dialect api_openai_other;       /* errors of the other /v1/images routes */

/* Prints a cJSON object as the answer body with a final newline (consumes o). */
char *api_print_json(cJSON *o, size_t *len);

#endif
