/*
 * The AUTOMATIC1111 web UI dialect (see a1111.c): what its generation routes keep for
 * the answer, and the parts txt2img and img2img share.
 */
#ifndef CS_A1111_H
#define CS_A1111_H

#include "dialect.h"

typedef struct a1111_data {
    cJSON *echo;          /* "parameters": the request over the web UI's defaults */
    bool send_images, img2img, mask_invert;
    int batch_size, n_iter, inpainting_fill;
    double denoising_strength;
    char sampler_label[48], scheduler_label[16];
    char *task_id;        /* force_task_id, or NULL */
} a1111_data;

/* Everything but the images: the model (override_settings.sd_model_checkpoint, else
 * base's), fields, sampler, LoRA tags, echo. On success jb holds the parsed body (the
 * caller frees it), *c the context of the picked model and out->dialect_data the
 * a1111_data. */
cs_status a1111_parse_common(const api_parse_ctx *base, const char *body, size_t len,
                             bool img2img, json_body *jb, api_parse_ctx *c, request_gen *out,
                             request_error *e);
/* cs_params_validate with the web UI's field names in the error; frees out on failure. */
cs_status a1111_validate(const api_parse_ctx *c, request_gen *out, request_error *e);
char *a1111_render_error(const request_error *e, int *status, size_t *len);
char *a1111_render_result(const request_gen *g, const api_result *res, size_t *len);

#endif
