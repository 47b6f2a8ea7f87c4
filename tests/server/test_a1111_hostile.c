/* Hostile A1111 txt2img bodies found by fuzzing (tests/fuzz/fuzz_a1111.c), parsed with a
 * context that has no model (allowed: syntax only): each must be refused with a message
 * naming the field, never crash. "<lora::>" used to pass a NULL name to strdup. */
#include "a1111.h"

#include "check.h"

#include <string.h>

static void refused(const char *body, const char *field, const char *frag) {
    api_parse_ctx c = {.model = NULL, .limits = {.max_width = 128, .max_height = 128}};
    c.defaults = (cs_gen_params){.prompt = "", .negative_prompt = "", .guidance_scale = 7.5,
                                 .steps = 20, .width = 64, .height = 64, .num_images = 1};
    request_gen r;
    request_error e;
    cs_status st = api_a1111_txt2img.parse(&c, body, strlen(body), &r, &e);
    CHECK(st != CS_OK);
    if (st == CS_OK) {
        request_gen_deinit(&r);
        return;
    }
    CHECK(!strcmp(e.field, field));
    CHECK_STR_CONTAINS(e.message, frag);
}

int main(void) {
    refused("{\"prompt\":\"a <lora::> b\"}", "prompt", "LoRA name is empty");
    refused("{\"prompt\":\"<lora:::>\"}", "prompt", "LoRA name is empty");
    refused("{\"prompt\":\"fall%ra#:a:cbb:>o<lora::>o <lc:>x1y:\", \"batch_size\": 100}",
            "prompt", "LoRA name is empty");
    refused("{\"prompt\":\"<lora:x:nan>\"}", "prompt", "not a number");
    refused("{\"prompt\":\"<hypernet:x:1>\"}", "prompt", "not supported");
    CHECK_DONE();
}
