/*
 * Request bodies: the JSON of POST /generate and POST /jobs turned into cs_gen_params,
 * with every field checked before a job exists (DESIGN §7): the raw body must be valid
 * UTF-8 without NUL characters, the root an object, every key known and given once,
 * every value of the right type and range; then cs_params_validate applies the model's
 * own rules. An error names the field and says why.
 *
 * img2img / inpainting fields: "init_image" and "mask" are base64 PNGs (strict base64; a
 * "data:image/png;base64," prefix is accepted), "strength" a number in (0, 1]. The mask
 * is read as Pillow's convert("L") does — RGB(A) to luminance, alpha ignored — and pixels
 * of luminance >= 128 are repainted. Without width/height the init image's size is the
 * request's (it must still be a multiple of the model's size multiple); a width or height
 * that differs from the image's resizes it (cs_image_resize, antialiased; "resize_mode"
 * 0 stretch, 1 crop, 2 fill as the A1111 web UI), and the mask, whatever its size, is
 * resized the same way to the request's size. Images larger than the configured maximum
 * size are refused from their header, before decoding.
 *
 * "preview_every": k >= 0 steps between step previews (0 = none); by default 5 for a
 * stream or POST /jobs, none for a blocking PNG/JSON answer.
 *
 * Threads: any; the functions keep no state.
 */
#ifndef CS_REQUEST_H
#define CS_REQUEST_H

#include <cfgserve/cfgserve.h>

#include "json_body.h"
#include "model_pick.h"

#include <stdbool.h>
#include <stddef.h>

/* Largest side an init image or mask is resized to (before the model's own limits). */
enum { MAX_RESIZE_SIDE = 4096 };

/* A parsed request. p's strings point into the owned copies below. */
typedef struct request_gen {
    cs_gen_params p;
    int model; /* the served model it runs on (api_parse_ctx.model_index) */
    char *prompt, *negative_prompt, *sampler; /* owned; sampler NULL = the model's */
    cs_lora_spec *loras;                      /* owned (names too); p.loras points here */
    bool stream;                              /* "stream": true */
    int preview_every;                        /* "preview_every"; -1 = the mode's default */
    int resize_mode;                          /* cs_resize_mode for an init image (0) */
    bool seed_random;                         /* the seed was drawn here (absent or -1) */
    /* What a dialect keeps for its answer (owned; freed by dialect_free). */
    void *dialect_data;
    void (*dialect_free)(void *data);
    /* img2img / inpainting: decoded PNGs (owned; p.init_image / p.mask point here) */
    uint8_t *init_rgb, *mask_gray;
    int init_w, init_h, mask_w, mask_h;
    bool width_given, height_given;
} request_gen;

/* Parses and checks body[0..len) (the native dialect) in context c: "model" picks a
 * served model first, whose defaults and limits then apply. With c->model NULL (tests of
 * the syntax alone) cs_params_validate is skipped. On failure *err is filled and *out
 * holds nothing to free. */
cs_status request_parse(const char *body, size_t len, const api_parse_ctx *c, request_gen *out,
                        request_error *err);
void request_gen_deinit(request_gen *r);
/* A base64 PNG field (optionally a data:image/png;base64, URL) decoded to RGB8 within the
 * limits (*rgb malloc'd). */
cs_status request_png_field(const cJSON *v, const char *f, const request_limits *lim,
                            uint8_t **rgb, int *w, int *h, request_error *e);
/* A mask PNG field into r->mask_gray (luminance). */
cs_status request_mask_field(const cJSON *v, const char *f, const request_limits *lim,
                             request_gen *r, request_error *e);
/* The init image sets width/height unless they are given; an init image or mask of
 * another size is resized to them with r->resize_mode; p.init_image / p.mask point at
 * the pixels. */
cs_status request_resolve_image_size(request_gen *r, const char *image_field, request_error *e);
/* "resize_mode" (0, 1 or 2: cs_resize_mode) into r->resize_mode. */
cs_status request_resize_mode_field(const cJSON *v, const char *f, request_gen *r,
                                    request_error *e);
/* Frees r->loras and clears p.loras / p.num_loras. */
void request_free_loras(request_gen *r);

/* A random 64-bit seed from the kernel's generator. */
uint64_t request_random_seed(void);

/* The effective parameters as a compact JSON object ({"prompt":…,"seed":…}), malloc'd;
 * the seed is written exactly (all 64 bits), non-ASCII characters as \u escapes, so the
 * text can go in an HTTP header. */
char *request_params_json(const cs_gen_params *p);

#endif
