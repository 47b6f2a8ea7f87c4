/*
 * libFuzzer target for the native request dialect (POST /generate, /jobs): arbitrary
 * bytes as a body through request_parse into cs_gen_params. The first byte picks the
 * model: odd = the golden tiny model (cs_params_validate runs), even = NULL (syntax
 * only). Accepted requests must satisfy what the server relies on afterwards: strings
 * present and owned, sizes within the limits, LoRAs within the per-job bound, images
 * pointing at decoded pixels; refusals must carry a code and a message.
 */
#include "fuzz_common.h"

#include "dialect.h"

#include <string.h>

static const request_limits limits = {.max_width = 128, .max_height = 128};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_tiny_model();
    return 0;
}

static void check_accepted(const request_gen *r, bool validated) {
    FUZZ_REQUIRE(r->p.prompt && r->p.negative_prompt);
    FUZZ_REQUIRE(r->p.width <= limits.max_width && r->p.height <= limits.max_height);
    /* The lower bounds are the model's rules (cs_params_validate): only with a model. */
    if (validated) FUZZ_REQUIRE(r->p.width > 0 && r->p.height > 0 && r->p.steps > 0);
    FUZZ_REQUIRE(r->p.num_loras >= 0 && r->p.num_loras <= CS_MAX_LORAS_PER_JOB);
    FUZZ_REQUIRE(!r->p.num_loras || r->p.loras);
    for (int i = 0; i < r->p.num_loras; i++) FUZZ_REQUIRE(r->p.loras[i].name);
    if (r->p.init_image) FUZZ_REQUIRE(r->init_rgb && r->init_w == r->p.width && r->init_h == r->p.height);
    if (r->p.mask) FUZZ_REQUIRE(r->mask_gray && r->mask_w == r->init_w && r->mask_h == r->init_h);
    char *json = request_params_json(&r->p);
    FUZZ_REQUIRE(json);
    /* The effective parameters go in an HTTP header: printable ASCII only. */
    for (const char *c = json; *c; c++) FUZZ_REQUIRE(*c >= 0x20 && *c < 0x7f);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const cs_model *m = (data[0] & 1) ? fuzz_tiny_model() : NULL;
    cs_gen_params defaults = {.prompt = "", .negative_prompt = "", .guidance_scale = 7.5,
                              .steps = 20, .width = 64, .height = 64, .num_images = 1,
                              .strength = 0.8};
    if (m) defaults = cs_gen_default_params(m);
    request_gen r;
    request_error e;
    memset(&e, 0, sizeof e);
    /* A private copy of exactly the body's bytes, so ASan sees a read past its end. */
    char *body = malloc(size - 1 ? size - 1 : 1);
    if (!body) return 0;
    memcpy(body, data + 1, size - 1);
    const api_parse_ctx c = {.model = m, .defaults = defaults, .limits = limits};
    cs_status st = request_parse(body, size - 1, &c, &r, &e);
    if (st == CS_OK) {
        check_accepted(&r, m != NULL);
        request_gen_deinit(&r);
    } else {
        FUZZ_REQUIRE(e.code && e.message[0] && memchr(e.field, 0, sizeof e.field));
        int status = 400;
        size_t len = 0;
        char *out = api_native.render_error(&e, &status, &len);
        FUZZ_REQUIRE(out && len == strlen(out));
        free(out);
    }
    free(body);
    return 0;
}
