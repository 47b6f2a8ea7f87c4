/*
 * libFuzzer target for the AUTOMATIC1111 dialect (POST /sdapi/v1/txt2img): arbitrary
 * bytes as a body through api_a1111_txt2img.parse, then the answer rendered for a fake
 * one-image result (the echo of the request's fields goes back to the client). The first
 * byte picks the model in the parse context: odd = the golden tiny model, even = NULL (a
 * context without a model must be tolerated: the parse is then syntax only).
 */
#include "fuzz_common.h"

#include "a1111.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_tiny_model();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    api_parse_ctx c = {.model = (data[0] & 1) ? fuzz_tiny_model() : NULL,
                       .limits = {.max_width = 128, .max_height = 128}};
    c.defaults = (cs_gen_params){.prompt = "", .negative_prompt = "", .guidance_scale = 7.5,
                                 .steps = 20, .width = 64, .height = 64, .num_images = 1,
                                 .strength = 0.8};
    if (c.model) c.defaults = cs_gen_default_params(c.model);
    char *body = malloc(size - 1 ? size - 1 : 1);
    if (!body) return 0;
    memcpy(body, data + 1, size - 1);
    request_gen r;
    request_error e;
    cs_status st = api_a1111_txt2img.parse(&c, body, size - 1, &r, &e);
    size_t len = 0;
    if (st == CS_OK) {
        FUZZ_REQUIRE(r.p.prompt && r.p.negative_prompt && r.dialect_data);
        FUZZ_REQUIRE(r.p.num_images >= 1 && r.p.num_images <= CS_MAX_IMAGES_PER_JOB);
        FUZZ_REQUIRE(r.p.num_loras >= 0 && r.p.num_loras <= CS_MAX_LORAS_PER_JOB);
        FUZZ_REQUIRE(r.p.width <= c.limits.max_width && r.p.height <= c.limits.max_height);
        static uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        uint8_t *const pngs[1] = {png};
        const size_t png_len[1] = {sizeof png};
        const uint64_t seeds[1] = {r.p.seed};
        char *const info[1] = {NULL};
        api_result res = {.job_id = 1, .n_images = 1, .png = pngs, .png_len = png_len,
                          .seeds = seeds, .infotext = info, .model_name = "tiny"};
        char *out = api_a1111_txt2img.render_result(&r, &res, &len);
        FUZZ_REQUIRE(out && len == strlen(out));
        free(out);
        request_gen_deinit(&r);
    } else {
        FUZZ_REQUIRE(e.code && e.message[0]);
        int status = 400;
        char *out = api_a1111_txt2img.render_error(&e, &status, &len);
        FUZZ_REQUIRE(out && len == strlen(out) && status >= 400 && status < 600);
        free(out);
    }
    free(body);
    return 0;
}
