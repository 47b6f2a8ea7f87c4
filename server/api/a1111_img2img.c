/*
 * POST /sdapi/v1/img2img: the txt2img fields (a1111.c) plus init_images (base64 PNG; the
 * first is used), mask (base64 PNG: light = repaint), denoising_strength (0.75),
 * inpainting_mask_invert, resize_mode (0 just resize, 1 crop and resize, 2 resize and fill;
 * 3, latent upscale, is done as 0): an init image or mask of another size than width x
 * height is resized to it as the web UI's images.resize_image does. inpainting_fill, the
 * web UI's "masked content": 0 fill (its default), 1 original, 2 latent noise, 3 latent
 * nothing (cs_gen_params.inpaint_fill).
 */
#include "a1111.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static cs_status parse_img2img(const api_parse_ctx *base, const char *body, size_t len,
                               request_gen *out, request_error *e) {
    json_body jb;
    api_parse_ctx ctx;
    const api_parse_ctx *c = &ctx;
    cs_status st = a1111_parse_common(base, body, len, true, &jb, &ctx, out, e);
    if (st != CS_OK) return st;
    a1111_data *d = out->dialect_data;
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(jb.root, "init_images");
    const cJSON *mask = cJSON_GetObjectItemCaseSensitive(jb.root, "mask");
    out->width_given = cJSON_GetObjectItemCaseSensitive(jb.root, "width") != NULL;
    out->height_given = cJSON_GetObjectItemCaseSensitive(jb.root, "height") != NULL;
    if (!cJSON_IsArray(images) || !images->child)
        st = request_fail(e, "invalid_parameter", "init_images",
                          "init_images must be a list with at least one base64 PNG");
    if (st == CS_OK && images->child->next)
        log_msg(CS_LOG_INFO, "a1111: img2img uses the first of %d init_images",
                cJSON_GetArraySize(images));
    if (st == CS_OK)
        st = request_png_field(images->child, "init_images", &c->limits, &out->init_rgb,
                               &out->init_w, &out->init_h, e);
    if (st == CS_OK && mask && !cJSON_IsNull(mask))
        st = request_mask_field(mask, "mask", &c->limits, out, e);
    if (st == CS_OK && out->mask_gray && d->mask_invert)
        for (size_t i = 0; i < (size_t)out->mask_w * (size_t)out->mask_h; i++)
            out->mask_gray[i] = (uint8_t)(255 - out->mask_gray[i]);
    if (st == CS_OK && out->mask_gray) {
        static const int k_fill[] = {CS_FILL_BLUR, CS_FILL_ORIGINAL, CS_FILL_LATENT_NOISE,
                                     CS_FILL_LATENT_NOTHING};
        out->p.inpaint_fill = k_fill[d->inpainting_fill]; /* 0..3, checked by a1111.c */
    }
    if (st == CS_OK) st = request_resolve_image_size(out, "init_images", e);
    out->p.strength = d->denoising_strength;
    json_body_free(&jb);
    if (st != CS_OK) {
        request_gen_deinit(out);
        return st;
    }
    return a1111_validate(c, out, e);
}

const api_dialect api_a1111_img2img = {"a1111", parse_img2img, a1111_render_result,
                                       a1111_render_error, NULL};
