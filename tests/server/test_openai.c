/* The OpenAI images dialect (server/api/openai.c, openai_edits.c): generations fields,
 * defaults and refusals, the error shape per status, and edits from form parts (alpha
 * masks in OpenAI's convention, the image's own transparency, default strengths). */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dialect.h"
#include "openai.h"
#include "png_decode.h"

/* A w×h RGBA (or RGB) PNG, alpha 0 in the left half when hole (libpng's simple API). */
static uint8_t *make_png(int w, int h, bool rgba, bool hole, size_t *len) {
    png_image img = {.version = PNG_IMAGE_VERSION, .width = (png_uint_32)w,
                     .height = (png_uint_32)h, .format = rgba ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB};
    const int ch = rgba ? 4 : 3;
    uint8_t *px = malloc((size_t)w * h * ch);
    for (int i = 0; i < w * h; i++) {
        px[i * ch] = 200, px[i * ch + 1] = 30, px[i * ch + 2] = 30;
        if (rgba) px[i * ch + 3] = hole && (i % w) < w / 2 ? 0 : 255;
    }
    png_alloc_size_t n = 0;
    png_image_write_to_memory(&img, NULL, &n, 0, px, 0, NULL);
    uint8_t *out = malloc(n);
    png_image_write_to_memory(&img, out, &n, 0, px, 0, NULL);
    free(px);
    *len = n;
    return out;
}

static api_parse_ctx ctx(void) {
    api_parse_ctx c = {.model = NULL, .limits = {64, 64}};
    c.defaults = (cs_gen_params){.width = 64, .height = 64, .steps = 20, .guidance_scale = 7.5,
                                 .num_images = 1, .strength = 0.8};
    return c;
}

static cs_status gen(const char *body, request_gen *g, request_error *e) {
    api_parse_ctx c = ctx();
    return api_openai_generations.parse(&c, body, strlen(body), g, e);
}

static void test_generations(void) {
    request_gen g;
    request_error e;
    CHECK_EQ_INT(gen("{\"prompt\":\"a\",\"n\":3,\"size\":\"32x48\",\"response_format\":\"url\","
                     "\"model\":\"dall-e-3\",\"quality\":\"hd\",\"user\":\"u\",\"steps\":5,"
                     "\"seed\":18446744073709551615,\"negative_prompt\":\"b\"}",
                     &g, &e),
                 CS_OK);
    CHECK_EQ_INT(g.p.num_images, 3);
    CHECK_EQ_INT(g.p.width, 32);
    CHECK_EQ_INT(g.p.height, 48);
    CHECK_EQ_INT(g.p.steps, 5);
    CHECK(g.p.seed == UINT64_MAX);
    CHECK(((openai_data *)g.dialect_data)->url);
    CHECK(!strcmp(g.p.negative_prompt, "b"));
    request_gen_deinit(&g);
    CHECK_EQ_INT(gen("{\"prompt\":\"a\"}", &g, &e), CS_OK); /* defaults */
    CHECK_EQ_INT(g.p.num_images, 1);
    CHECK_EQ_INT(g.p.width, 64);
    CHECK(!((openai_data *)g.dialect_data)->url);
    request_gen_deinit(&g);
    static const struct { const char *body, *code, *field; } bad[] = {
        {"{\"prompt\":\"a\",\"foo\":1}", "unknown_parameter", "foo"},
        {"{\"n\":1}", "missing_required_parameter", "prompt"},
        {"{\"prompt\":\"a\",\"n\":0}", "invalid_value", "n"},
        {"{\"prompt\":\"a\",\"n\":17}", "invalid_value", "n"},
        {"{\"prompt\":\"a\",\"size\":\"big\"}", "invalid_value", "size"},
        {"{\"prompt\":\"a\",\"size\":\"128x128\"}", "invalid_value", "size"},
        {"{\"prompt\":\"a\",\"response_format\":\"png\"}", "invalid_value", "response_format"},
        {"{\"prompt\":\"a\",\"output_format\":\"jpeg\"}", "invalid_value", "output_format"},
        {"{\"prompt\":\"a\",\"stream\":true}", "invalid_value", "stream"},
        {"{\"prompt\":\"a\",\"model\":\"sdxl\"}", "not_found", "model"},
        {"{\"prompt\":7}", "invalid_type", "prompt"},
        {"{\"prompt\":\"a\",\"quality\":3}", "invalid_type", "quality"},
        {"{\"prompt\":\"a\",\"seed\":-2}", "invalid_value", "seed"},
        {"{\"prompt\":\"a\",\"strength\":0.5}", "unknown_parameter", "strength"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(gen(bad[i].body, &g, &e), CS_ERR_INVALID_ARG);
        if (strcmp(e.code, bad[i].code) || strcmp(e.field, bad[i].field))
            fprintf(stderr, "case %zu: got %s/%s: %s\n", i, e.code, e.field, e.message);
        CHECK(!strcmp(e.code, bad[i].code) && !strcmp(e.field, bad[i].field));
    }
}

static void test_errors(void) {
    request_error e = {.code = "unauthorized", .message = "no"};
    int status = 401;
    size_t len;
    char *body = api_openai_generations.render_error(&e, &status, &len);
    CHECK(strstr(body, "\"code\":\"invalid_api_key\"") && strstr(body, "\"param\":null") &&
          strstr(body, "\"type\":\"invalid_request_error\""));
    free(body);
    e.code = "queue_full", status = 429;
    body = api_openai_generations.render_error(&e, &status, &len);
    CHECK(strstr(body, "\"type\":\"requests\"") && strstr(body, "rate_limit_exceeded"));
    free(body);
    e.code = "internal", status = 500;
    body = api_openai_other.render_error(&e, &status, &len);
    CHECK(strstr(body, "\"type\":\"server_error\"") && strstr(body, "\"code\":null"));
    free(body);
}

static api_part text(const char *name, const char *value) {
    return (api_part){.name = (char *)name, .data = (uint8_t *)value, .len = strlen(value)};
}

static void test_edits(void) {
    api_parse_ctx c = ctx();
    request_gen g;
    request_error e;
    size_t n_hole, n_opaque, n_rgb;
    uint8_t *hole = make_png(8, 8, true, true, &n_hole), *opaque = make_png(8, 8, true, false, &n_opaque);
    uint8_t *rgb = make_png(8, 8, false, false, &n_rgb);
    api_part parts[4] = {{.name = "image[]", .filename = "a.png", .data = opaque, .len = n_opaque},
                         {.name = "mask", .filename = "m.png", .data = hole, .len = n_hole},
                         text("prompt", "x"), text("n", "2")};
    api_form f = {parts, 4};
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_OK);
    CHECK(g.p.mask && g.p.mask[0] == 255 && g.p.mask[7] == 0); /* transparent = repaint */
    CHECK(g.p.init_image && g.p.width == 8 && g.p.height == 8 && g.p.num_images == 2);
    CHECK_NEAR(g.p.strength, 1.0, 0);
    request_gen_deinit(&g);
    parts[0].data = hole, parts[0].len = n_hole; /* no mask: the image's own transparency */
    f.n = 1;
    parts[1] = text("prompt", "x");
    f.n = 2;
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_OK);
    CHECK(g.p.mask && g.p.mask[0] == 255);
    request_gen_deinit(&g);
    parts[0].data = opaque, parts[0].len = n_opaque; /* opaque, no mask: img2img at 0.8 */
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_OK);
    CHECK(!g.p.mask && g.p.init_image);
    CHECK_NEAR(g.p.strength, 0.8, 0);
    request_gen_deinit(&g);
    api_part bad_mask[3] = {parts[0], {.name = "mask", .filename = "m.png", .data = rgb, .len = n_rgb},
                            text("prompt", "x")};
    f = (api_form){bad_mask, 3};
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_ERR_INVALID_ARG);
    CHECK(!strcmp(e.field, "mask"));
    api_part no_image[1] = {text("prompt", "x")};
    f = (api_form){no_image, 1};
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_ERR_INVALID_ARG);
    CHECK(!strcmp(e.code, "missing_required_parameter") && !strcmp(e.field, "image"));
    api_part twice[3] = {parts[0], text("prompt", "x"), text("prompt", "y")};
    f = (api_form){twice, 3};
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_ERR_INVALID_ARG);
    api_part bad_n[3] = {parts[0], text("prompt", "x"), text("n", "abc")};
    f = (api_form){bad_n, 3};
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_ERR_INVALID_ARG);
    CHECK(!strcmp(e.field, "n"));
    api_part sized[3] = {parts[0], text("prompt", "x"), text("size", "16x16")};
    f = (api_form){sized, 3};
    CHECK_EQ_INT(api_openai_edits.parse_form(&c, &f, &g, &e), CS_OK); /* resized to "size" */
    CHECK(g.p.width == 16 && g.p.height == 16 && g.init_w == 16 && g.init_h == 16);
    request_gen_deinit(&g);
    /* png_decode_alpha8: an RGB file is opaque and says it had no alpha. */
    uint8_t *a = NULL;
    int w, h;
    bool had = true;
    char msg[128];
    CHECK_EQ_INT(png_decode_alpha8(rgb, n_rgb, 64, 64, "x", &a, &w, &h, &had, msg, sizeof msg), CS_OK);
    CHECK(!had && a && a[0] == 255 && a[63] == 255);
    free(a);
    free(hole);
    free(opaque);
    free(rgb);
}

int main(void) {
    test_generations();
    test_errors();
    test_edits();
    CHECK_DONE();
}
