/*
 * POST /v1/images/edits: OpenAI's multipart/form-data edit request (the transport splits
 * the body into parts) as img2img or inpainting.
 *
 *   image / image[]  PNG file(s); the first is the init image (more are logged and unused:
 *                    this server does not composite several inputs). Its size is the output
 *                    size unless "size" says otherwise: then image and mask are resized to
 *                    it (antialiased, aspect not kept: cs_image_resize's stretch).
 *   mask             PNG with an alpha channel, OpenAI's convention: TRANSPARENT = repaint.
 *                    It becomes this server's 8-bit mask as 255 - alpha (>= 128 = repaint).
 *                    Without a mask, an image that has transparent pixels is its own mask
 *                    (as DALL-E 2 does); a fully opaque image is edited whole (img2img).
 *   strength         extension: the share of the schedule run. Default 1.0 with a mask
 *                    (the masked area is regenerated, as OpenAI's edits do) and 0.8 without
 *                    (img2img keeps the picture's layout).
 * The other text fields are those of generations (openai.c); numbers arrive as text and are
 * read as JSON numbers, so a bad one gets the same message as in a JSON body.
 */
#include "openai.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "png_decode.h"

static bool is_numeric_field(const char *f) {
    static const char *const k[] = {"n", "steps", "seed", "guidance_scale", "strength",
                                    "output_compression", "partial_images", NULL};
    for (int i = 0; k[i]; i++)
        if (!strcmp(f, k[i])) return true;
    return false;
}

/* A text part as the JSON value it stands for: a number where the field is numeric and
 * the text is one, true/false for booleans, else a string. */
static cJSON *part_value(const api_part *p) {
    const char *s = (const char *)p->data;
    if (is_numeric_field(p->name) && p->len > 0) {
        cJSON *v = cJSON_Parse(s);
        if (cJSON_IsNumber(v)) return v;
        cJSON_Delete(v);
    }
    if (!strcmp(s, "true") || !strcmp(s, "false")) {
        if (!strcmp(p->name, "stream") || !strcmp(p->name, "karras"))
            return cJSON_CreateBool(s[0] == 't');
    }
    return cJSON_CreateString(s);
}

static cs_status apply_text_part(const api_parse_ctx *c, const api_form *form, int i,
                                 request_gen *out, request_error *e) {
    const api_part *p = &form->parts[i];
    for (int j = 0; j < i; j++)
        if (!strcmp(form->parts[j].name, p->name))
            return request_fail(e, "invalid_value", p->name, "'%.50s' is given twice.", p->name);
    if (p->filename)
        return request_fail(e, "invalid_type", p->name,
                            "'%.50s' must be a text field, not a file.", p->name);
    if (strlen((const char *)p->data) != p->len || !cs_utf8_valid((const char *)p->data, p->len))
        return request_fail(e, "invalid_value", p->name,
                            "'%.50s' must be UTF-8 text without NUL characters.", p->name);
    cJSON *holder = cJSON_CreateObject(), *v = part_value(p);
    if (!holder || !v || !cJSON_AddItemToObject(holder, p->name, v)) {
        cJSON_Delete(holder);
        cJSON_Delete(v);
        return request_fail(e, "internal", NULL, "out of memory");
    }
    cs_status st = openai_apply_field(c, v, (const char *)p->data, p->len, true, out, e);
    cJSON_Delete(holder);
    return st;
}

/* The mask (or the image's own transparency) → out->mask_gray as 255 - alpha. *found is
 * false when an image without a mask has no transparent pixel. */
static cs_status read_alpha_mask(const api_parse_ctx *c, const api_part *p, bool is_mask,
                                 request_gen *out, bool *found, request_error *e) {
    char msg[256];
    bool had_alpha = false;
    const int mw = c->limits.max_width > 0 ? c->limits.max_width : 4096;
    const int mh = c->limits.max_height > 0 ? c->limits.max_height : 4096;
    cs_status st = png_decode_alpha8(p->data, p->len, mw, mh, p->name, &out->mask_gray,
                                     &out->mask_w, &out->mask_h, &had_alpha, msg, sizeof msg);
    if (st != CS_OK) return request_fail(e, "invalid_value", p->name, "%s", msg);
    const size_t n = (size_t)out->mask_w * (size_t)out->mask_h;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        out->mask_gray[i] = (uint8_t)(255 - out->mask_gray[i]);
        any |= out->mask_gray[i] >= 128;
    }
    *found = is_mask || any;
    if (is_mask && !had_alpha)
        return request_fail(e, "invalid_value", "mask",
                            "mask must be a PNG with an alpha channel: its transparent pixels "
                            "mark the area to repaint.");
    if (!*found) {
        free(out->mask_gray);
        out->mask_gray = NULL;
    }
    return CS_OK;
}

static cs_status read_images(const api_parse_ctx *c, const api_part *image, const api_part *mask,
                             request_gen *out, request_error *e) {
    openai_data *d = out->dialect_data;
    char msg[256];
    const int mw = c->limits.max_width > 0 ? c->limits.max_width : 4096;
    const int mh = c->limits.max_height > 0 ? c->limits.max_height : 4096;
    if (!image)
        return request_fail(e, "missing_required_parameter", "image",
                            "Missing required parameter: 'image' (a PNG file).");
    if (png_decode_rgb8(image->data, image->len, mw, mh, "image", &out->init_rgb, &out->init_w,
                        &out->init_h, msg, sizeof msg) != CS_OK)
        return request_fail(e, "invalid_value", "image", "%s", msg);
    bool masked = false;
    cs_status st = read_alpha_mask(c, mask ? mask : image, mask != NULL, out, &masked, e);
    if (st != CS_OK) return st;
    /* A "size" other than the image's resizes image and mask to it (stretched, as
     * resize_mode 0; the mask the same way). */
    out->width_given = out->height_given = d->size_given;
    if (!d->strength_given) out->p.strength = masked ? 1.0 : 0.8;
    return request_resolve_image_size(out, "image", e);
}

/* The text of the form's "model" field (the first one; a repeat, a file or bad text is
 * refused with the other fields, by apply_text_part). */
static const char *form_model(const api_form *form) {
    for (int i = 0; i < form->n; i++) {
        const api_part *p = &form->parts[i];
        if (!strcmp(p->name, "model"))
            return !p->filename && strlen((const char *)p->data) == p->len &&
                           cs_utf8_valid((const char *)p->data, p->len)
                       ? (const char *)p->data
                       : NULL;
    }
    return NULL;
}

cs_status openai_parse_edit_form(const api_parse_ctx *base, const api_form *form,
                                 request_gen *out, request_error *e) {
    api_parse_ctx ctx;
    const api_parse_ctx *c = &ctx;
    cs_status st = openai_begin(base, form_model(form), &ctx, out, e);
    const api_part *image = NULL, *mask = NULL;
    int n_images = 0;
    for (int i = 0; st == CS_OK && i < form->n; i++) {
        const api_part *p = &form->parts[i];
        if (!strcmp(p->name, "image") || !strcmp(p->name, "image[]")) {
            if (!image) image = p;
            n_images++;
        } else if (!strcmp(p->name, "mask")) {
            if (mask) st = request_fail(e, "invalid_value", "mask", "'mask' is given twice.");
            mask = p;
        } else {
            st = apply_text_part(c, form, i, out, e);
        }
    }
    if (st == CS_OK && n_images > 1)
        log_msg(CS_LOG_INFO, "openai: edits uses the first of %d images", n_images);
    if (st == CS_OK) st = read_images(c, image, mask, out, e);
    if (st == CS_OK) st = openai_finish(c, out, e);
    if (st != CS_OK) request_gen_deinit(out);
    return st;
}
