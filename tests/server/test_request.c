/* Request parsing: every error class of a /generate body (malformed JSON, wrong shape,
 * wrong types, unknown and duplicate fields, invalid UTF-8, NUL and control characters,
 * seeds, server bounds), and the model's own rules through cs_params_validate on the
 * golden tiny model when it exists. */
#include "request.h"

#include "check.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cs_gen_params defaults;
static const request_limits limits = {.max_width = 128, .max_height = 128};

static cs_status parse_m(const cs_model *m, const char *body, size_t len, request_gen *r,
                         request_error *e) {
    const api_parse_ctx c = {.model = m, .defaults = defaults, .limits = limits};
    return request_parse(body, len, &c, r, e);
}

static cs_status parse(const char *body, request_gen *r, request_error *e) {
    return parse_m(NULL, body, strlen(body), r, e);
}

/* Expects rejection with the given code and field ("" = none) and a message fragment. */
static void expect_error_m(const cs_model *m, int line, const char *body, size_t len,
                           const char *code, const char *field, const char *frag) {
    request_gen r;
    request_error e;
    cs_status st = parse_m(m, body, len, &r, &e);
    if (st == CS_OK) {
        fprintf(stderr, "line %d: accepted %.80s\n", line, body);
        check_failures++;
        request_gen_deinit(&r);
        return;
    }
    if (strcmp(e.code, code) || strcmp(e.field, field) || !strstr(e.message, frag)) {
        fprintf(stderr, "line %d: %.80s\n  got code=%s field=%s message=%s\n  want %s %s *%s*\n",
                line, body, e.code, e.field, e.message, code, field, frag);
        check_failures++;
    }
    CHECK(r.prompt == NULL && r.negative_prompt == NULL && r.sampler == NULL);
}
#define EXPECT_ERROR(body, code, field, frag)                                                      \
    expect_error_m(NULL, __LINE__, body, strlen(body), code, field, frag)
#define EXPECT_ERROR_N(body, len, code, field, frag)                                               \
    expect_error_m(NULL, __LINE__, body, len, code, field, frag)

static void test_valid(void) {
    request_gen r;
    request_error e;
    CHECK_EQ_INT(parse("{\"prompt\": \"a red circle\"}", &r, &e), CS_OK);
    CHECK(!strcmp(r.p.prompt, "a red circle"));
    CHECK(!strcmp(r.p.negative_prompt, ""));
    CHECK(r.p.sampler == NULL);
    CHECK(r.seed_random);
    CHECK(!r.stream);
    CHECK_EQ_INT(r.p.steps, defaults.steps);
    CHECK_NEAR(r.p.guidance_scale, 7.5, 0);
    uint64_t s1 = r.p.seed;
    request_gen_deinit(&r);
    CHECK_EQ_INT(parse("{\"prompt\": \"a red circle\", \"seed\": -1}", &r, &e), CS_OK);
    CHECK(r.seed_random && r.p.seed != s1); /* 2^-64 chance of a false alarm */
    request_gen_deinit(&r);

    const char *all = "{\"prompt\":\"p\",\"negative_prompt\":\"blurry\",\"guidance_scale\":5,"
                      "\"steps\":4,\"seed\":18446744073709551615,\"width\":64,\"height\":128,"
                      "\"sampler\":\"euler\",\"karras\":true,\"num_images\":2,"
                      "\"guidance_rescale\":0.7,\"guidance_interval\":[0.5, 10],"
                      "\"clip_skip\":2,\"eta\":0.5,\"stream\":true}";
    CHECK_EQ_INT(parse(all, &r, &e), CS_OK);
    CHECK(!strcmp(r.p.negative_prompt, "blurry") && !strcmp(r.p.sampler, "euler"));
    CHECK(r.p.seed == UINT64_MAX && !r.seed_random);
    CHECK_EQ_INT(r.p.steps, 4);
    CHECK_EQ_INT(r.p.width, 64);
    CHECK_EQ_INT(r.p.height, 128);
    CHECK_EQ_INT(r.p.karras, 1);
    CHECK_EQ_INT(r.p.num_images, 2);
    CHECK_EQ_INT(r.p.clip_skip, 1); /* A1111's clip skip 2 = one layer before the last */
    CHECK_NEAR(r.p.guidance_rescale, 0.7, 0);
    CHECK_NEAR(r.p.guidance_lo, 0.5, 0);
    CHECK_NEAR(r.p.guidance_hi, 10, 0);
    CHECK_NEAR(r.p.eta, 0.5, 0);
    CHECK(r.stream);
    request_gen_deinit(&r);

    /* 2^53 + 1 is not a double: the seed must still be exact. */
    CHECK_EQ_INT(parse("{\"seed\": 9007199254740993, \"prompt\": \"\"}", &r, &e), CS_OK);
    CHECK(r.p.seed == 9007199254740993ull);
    request_gen_deinit(&r);
    CHECK_EQ_INT(parse("{\"prompt\":\"x\",\"seed\":0,\"negative_prompt\":null,\"sampler\":null,"
                       "\"guidance_interval\":null}",
                       &r, &e),
                 CS_OK);
    CHECK(r.p.seed == 0 && !r.seed_random && !strcmp(r.p.negative_prompt, ""));
    request_gen_deinit(&r);
    /* Valid multi-byte UTF-8 and escapes pass. */
    CHECK_EQ_INT(
        parse("{\"prompt\":\"caf\xc3\xa9 \\u00e9 \xf0\x9f\x8e\xa8 \\ud83c\\udfa8\\n\"}", &r, &e),
        CS_OK);
    CHECK(!strcmp(r.p.prompt, "caf\xc3\xa9 \xc3\xa9 \xf0\x9f\x8e\xa8 \xf0\x9f\x8e\xa8\n"));
    request_gen_deinit(&r);
}

static void test_syntax_errors(void) {
    EXPECT_ERROR("", "invalid_json", "", "empty");
    EXPECT_ERROR("{\"prompt\": ", "invalid_json", "", "malformed JSON");
    EXPECT_ERROR("{\"prompt\": \"x\",}", "invalid_json", "", "malformed JSON");
    EXPECT_ERROR("{prompt: \"x\"}", "invalid_json", "", "malformed JSON");
    EXPECT_ERROR("{\"prompt\": \"x\"} {}", "invalid_json", "", "after the JSON value");
    EXPECT_ERROR("[{\"prompt\": \"x\"}]", "invalid_json", "", "must be a JSON object");
    EXPECT_ERROR("\"a red circle\"", "invalid_json", "", "must be a JSON object");
    EXPECT_ERROR("{\"prompt\": \"\\ud800\"}", "invalid_json", "", "malformed"); /* lone surrogate */
    EXPECT_ERROR_N("{\"prompt\": \"a\0b\"}", 16, "invalid_json", "", "NUL byte");
    EXPECT_ERROR("{\"prompt\": \"a\\u0000b\"}", "invalid_parameter", "prompt", "\\u0000");
    EXPECT_ERROR("{\"steps\": 4, \"negative_prompt\": \"a\tb\", \"prompt\": \"x\"}",
                 "invalid_parameter", "negative_prompt", "control character");
    EXPECT_ERROR("{\"prompt\": \"\xff\"}", "invalid_parameter", "prompt", "not valid UTF-8");
    EXPECT_ERROR("{\"prompt\": \"x\", \"negative_prompt\": \"\xc0\xaf\"}", "invalid_parameter",
                 "negative_prompt", "UTF-8"); /* overlong */
    EXPECT_ERROR("{\"prompt\": \"\xed\xa0\x80\"}", "invalid_parameter", "prompt", "UTF-8");
    EXPECT_ERROR("{\"prompt\": \"\xe2\x82\"}", "invalid_parameter", "prompt", "UTF-8");
    EXPECT_ERROR("{\"prompt\": \"x\", \"sampler\": \"\xf4\x90\x80\x80\"}", "invalid_parameter",
                 "sampler", "UTF-8"); /* > U+10FFFF */
    /* Too many members (a flood of duplicates) is refused before anything else. */
    char big[8192] = "{";
    for (int i = 0; i < JSON_BODY_MAX_MEMBERS + 8; i++)
        strcat(big, "\"prompt\":\"x\",");
    strcat(big, "\"steps\":4}");
    EXPECT_ERROR(big, "invalid_json", "", "too many members");
}

static void test_field_errors(void) {
    EXPECT_ERROR("{}", "invalid_parameter", "prompt", "required");
    EXPECT_ERROR("{\"prompt\": null}", "invalid_parameter", "prompt", "must be a string");
    EXPECT_ERROR("{\"prompt\": 5}", "invalid_parameter", "prompt", "got 5");
    EXPECT_ERROR("{\"prompt\": \"x\", \"stpes\": 4}", "invalid_parameter", "stpes",
                 "unknown field \"stpes\"");
    EXPECT_ERROR("{\"prompt\": \"x\", \"steps\": 4, \"steps\": 5}", "invalid_parameter", "steps",
                 "given twice");
    EXPECT_ERROR("{\"prompt\": \"x\", \"steps\": \"8\"}", "invalid_parameter", "steps",
                 "must be an integer (got \"8\")");
    EXPECT_ERROR("{\"prompt\": \"x\", \"steps\": 4.5}", "invalid_parameter", "steps", "integer");
    EXPECT_ERROR("{\"prompt\": \"x\", \"steps\": 1e10}", "invalid_parameter", "steps", "integer");
    EXPECT_ERROR("{\"prompt\": \"x\", \"width\": [64]}", "invalid_parameter", "width", "integer");
    EXPECT_ERROR("{\"prompt\": \"x\", \"width\": 192}", "invalid_parameter", "width",
                 "at most 128 on this server");
    EXPECT_ERROR("{\"prompt\": \"x\", \"height\": 256}", "invalid_parameter", "height",
                 "at most 128");
    EXPECT_ERROR("{\"prompt\": \"x\", \"guidance_scale\": true}", "invalid_parameter",
                 "guidance_scale", "finite number");
    EXPECT_ERROR("{\"prompt\": \"x\", \"guidance_scale\": 1e999}", "invalid_parameter",
                 "guidance_scale", "finite number");
    EXPECT_ERROR("{\"prompt\": \"x\", \"guidance_rescale\": \"0.5\"}", "invalid_parameter",
                 "guidance_rescale", "number");
    EXPECT_ERROR("{\"prompt\": \"x\", \"eta\": null}", "invalid_parameter", "eta", "number");
    EXPECT_ERROR("{\"prompt\": \"x\", \"karras\": 1}", "invalid_parameter", "karras",
                 "true or false");
    EXPECT_ERROR("{\"prompt\": \"x\", \"stream\": \"yes\"}", "invalid_parameter", "stream",
                 "true or false");
    EXPECT_ERROR("{\"prompt\": \"x\", \"sampler\": 3}", "invalid_parameter", "sampler",
                 "string or null");
    EXPECT_ERROR("{\"prompt\": \"x\", \"num_images\": \"2\"}", "invalid_parameter", "num_images",
                 "integer");
    EXPECT_ERROR("{\"prompt\": \"x\", \"guidance_interval\": [1]}", "invalid_parameter",
                 "guidance_interval", "[lo, hi]");
    EXPECT_ERROR("{\"prompt\": \"x\", \"guidance_interval\": [1, \"2\"]}", "invalid_parameter",
                 "guidance_interval", "[lo, hi]");
    EXPECT_ERROR("{\"prompt\": \"x\", \"guidance_interval\": {\"lo\": 1}}", "invalid_parameter",
                 "guidance_interval", "[lo, hi]");
    EXPECT_ERROR("{\"prompt\": \"x\", \"loras\": \"a\"}", "invalid_parameter", "loras", "list");
    EXPECT_ERROR("{\"prompt\": \"x\", \"loras\": [{\"name\": 1}]}", "invalid_parameter", "loras",
                 "loras[0]");
    EXPECT_ERROR("{\"prompt\": \"x\", \"loras\": [{\"name\": \"a\", \"w\": 1}]}", "invalid_parameter",
                 "loras", "no other keys");
    EXPECT_ERROR("{\"prompt\": \"x\", \"loras\": [{\"name\": \"a\", \"weight\": \"1\"}]}",
                 "invalid_parameter", "loras", "loras[0]");
    EXPECT_ERROR("{\"prompt\": \"x\", \"loras\": [{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},"
                 "{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},"
                 "{\"name\":\"a\"}]}",
                 "invalid_parameter", "loras", "up to 8");
    /* Seeds: exact uint64, -1 or null; nothing else. */
    EXPECT_ERROR("{\"prompt\": \"x\", \"seed\": 18446744073709551616}", "invalid_parameter", "seed",
                 "[0, 18446744073709551615]");
    EXPECT_ERROR("{\"prompt\": \"x\", \"seed\": -2}", "invalid_parameter", "seed", "-1");
    EXPECT_ERROR("{\"prompt\": \"x\", \"seed\": 1.5}", "invalid_parameter", "seed", "integer");
    EXPECT_ERROR("{\"prompt\": \"x\", \"seed\": 1e3}", "invalid_parameter", "seed", "integer");
    EXPECT_ERROR("{\"prompt\": \"x\", \"seed\": \"42\"}", "invalid_parameter", "seed", "integer");
    EXPECT_ERROR("{\"prompt\": \"x\", \"seed\": true}", "invalid_parameter", "seed", "integer");
}

static void test_params_json(void) {
    request_gen r;
    request_error e;
    CHECK_EQ_INT(parse("{\"prompt\":\"caf\xc3\xa9 \xf0\x9f\x8e\xa8 \\\"q\\\"\",\"seed\":"
                       "18446744073709551615,\"guidance_interval\":[1,2]}",
                       &r, &e),
                 CS_OK);
    char *j = request_params_json(&r.p);
    CHECK(j != NULL);
    for (const char *c = j; c && *c; c++)
        CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    CHECK_STR_CONTAINS(j, "\"seed\":18446744073709551615");
    CHECK_STR_CONTAINS(j, "caf\\u00e9 \\ud83c\\udfa8");
    CHECK_STR_CONTAINS(j, "\"guidance_interval\":[1,2]");
    CHECK_STR_CONTAINS(j, "\"sampler\":null");
    request_gen_deinit(&r);
    CHECK_EQ_INT(parse("{\"prompt\":\"x\",\"loras\":[{\"name\":\"style\",\"weight\":0.5},"
                       "{\"name\":\"b\"}]}", &r, &e), CS_OK);
    CHECK_EQ_INT(r.p.num_loras, 2);
    CHECK(r.p.loras && !strcmp(r.p.loras[0].name, "style") && r.p.loras[1].weight == 1.0);
    free(j);
    j = request_params_json(&r.p);
    CHECK_STR_CONTAINS(j, "\"loras\":[{\"name\":\"style\",\"weight\":0.5}");
    cJSON *back = cJSON_Parse(j ? j : "");
    CHECK(back && !strcmp(cJSON_GetObjectItem(back, "prompt")->valuestring, r.p.prompt));
    cJSON_Delete(back);
    free(j);
    request_gen_deinit(&r);
}

/* The model's own rules, with the field they name. */
static void test_model_rules(const cs_model *m) {
    request_gen r;
    request_error e;
    const char *ok = "{\"prompt\": \"a red circle\", \"steps\": 4, \"sampler\": \"ddim\"}";
    CHECK_EQ_INT(parse_m(m, ok, strlen(ok), &r, &e), CS_OK);
    request_gen_deinit(&r);
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"prompt\": \"x\", \"steps\": 0}", "steps"},
        {"{\"prompt\": \"x\", \"steps\": 100000}", "steps"},
        {"{\"prompt\": \"x\", \"width\": 65}", "width"},
        {"{\"prompt\": \"x\", \"height\": 0}", "height"},
        {"{\"prompt\": \"x\", \"num_images\": 0}", "num_images"},
        {"{\"prompt\": \"x\", \"num_images\": 17}", "num_images"},
        {"{\"prompt\": \"x\", \"guidance_scale\": -1}", "guidance_scale"},
        {"{\"prompt\": \"x\", \"guidance_scale\": 1000}", "guidance_scale"},
        {"{\"prompt\": \"x\", \"guidance_rescale\": 2}", "guidance_rescale"},
        {"{\"prompt\": \"x\", \"guidance_interval\": [5, 1]}", "guidance_interval"},
        {"{\"prompt\": \"x\", \"sampler\": \"nope\"}", "sampler"},
        {"{\"prompt\": \"x\", \"clip_skip\": 99}", "clip_skip"},
        {"{\"prompt\": \"x\", \"eta\": 3}", "eta"},
        {"{\"prompt\": \"x\", \"loras\": [{\"name\": \"../etc/passwd\"}]}", "loras"},
        {"{\"prompt\": \"x\", \"loras\": [{\"name\": \"a\", \"weight\": 11}]}", "loras"},
        {"{\"prompt\": \"x\", \"loras\": [{\"name\": \"style\"}]}", "loras"}, /* no LoRA folder */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error_m(m, (int)i, bad[i].body, strlen(bad[i].body), "invalid_parameter",
                       bad[i].field, bad[i].field);
    /* A prompt past the engine's length cap. */
    size_t n = 20000;
    char *body = malloc(n + 32);
    strcpy(body, "{\"prompt\": \"");
    memset(body + 12, 'a', n);
    strcpy(body + 12 + n, "\"}");
    expect_error_m(m, __LINE__, body, strlen(body), "invalid_parameter", "prompt", "limit");
    free(body);
}

/* 8×4 RGB, an 8×4 gray mask (right half white) and a 4×4 gray PNG, base64. */
#define PNG_RGB_8X4                                                                                \
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAECAIAAAA8r+mnAAAAb0lEQVR4nAFkAJv/AAAHDhUcIyoxOD9GTVRbYmlwd36F" \
    "jJOaoQCor7a9xMvS2eDn7vX8AwoRGB8mLTQ7QkkAUFdeZWxzeoGIj5adpKuyucDHztXc4+rxAPj/Bg0UGyIpMDc+RUxT" \
    "WmFob3Z9hIuSmRe0K7Frcr0tAAAAAElFTkSuQmCC"
#define PNG_MASK_8X4                                                                               \
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAECAAAAACWpiEsAAAAEUlEQVR4nGNgAIL/QMCAmwEA/yQP8VgH2yMAAAAASUVORK5CYII="
#define PNG_GRAY_4X4                                                                               \
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAAAAACMmsGiAAAAC0lEQVR4nGNgwAQAABQAAX3+Hu4AAAAASUVORK5CYII="

static void test_images(void) {
    request_gen r;
    request_error e;
    /* no width/height: the image's size; a data URL works too */
    CHECK_EQ_INT(parse("{\"prompt\": \"x\", \"strength\": 0.5, \"init_image\": \"data:image/png;base64,"
                       PNG_RGB_8X4 "\", \"mask\": \"" PNG_MASK_8X4 "\"}", &r, &e), CS_OK);
    CHECK_EQ_INT(r.p.width, 8);
    CHECK_EQ_INT(r.p.height, 4);
    CHECK(r.p.init_image && r.p.init_image[1] == 7 && r.p.init_image[3] == 21);
    CHECK(r.p.mask && r.p.mask[0] == 0 && r.p.mask[7] == 255);
    CHECK_NEAR(r.p.strength, 0.5, 0);
    char *json = request_params_json(&r.p);
    CHECK_STR_CONTAINS(json, "\"strength\":0.5");
    CHECK_STR_CONTAINS(json, "\"inpaint_fill\":\"original\"");
    free(json);
    request_gen_deinit(&r);
    CHECK_EQ_INT(parse("{\"prompt\": \"x\", \"inpaint_fill\": \"latent_noise\", \"init_image\": \""
                       PNG_RGB_8X4 "\", \"mask\": \"" PNG_MASK_8X4 "\"}", &r, &e), CS_OK);
    CHECK_EQ_INT(r.p.inpaint_fill, CS_FILL_LATENT_NOISE);
    request_gen_deinit(&r);
    EXPECT_ERROR("{\"prompt\": \"x\", \"inpaint_fill\": 2}", "invalid_parameter", "inpaint_fill",
                 "\"latent_noise\"");
    EXPECT_ERROR("{\"prompt\": \"x\", \"inpaint_fill\": \"blur\"}", "invalid_parameter",
                 "inpaint_fill", "must be \"original\"");
    CHECK_EQ_INT(parse("{\"prompt\": \"x\", \"width\": 8, \"init_image\": \"" PNG_RGB_8X4 "\"}",
                       &r, &e), CS_OK);
    request_gen_deinit(&r);
    /* Another size resizes the image (and the mask, whatever its size) to it. */
    uint8_t stretched[8 * 8 * 3];
    CHECK_EQ_INT(parse("{\"prompt\": \"x\", \"height\": 8, \"init_image\": \"" PNG_RGB_8X4 "\"}",
                       &r, &e), CS_OK);
    CHECK(r.p.width == 8 && r.p.height == 8 && r.init_w == 8 && r.init_h == 8);
    CHECK(r.p.init_image == r.init_rgb);
    memcpy(stretched, r.init_rgb, sizeof stretched);
    request_gen_deinit(&r);
    CHECK_EQ_INT(parse("{\"prompt\": \"x\", \"height\": 8, \"resize_mode\": 1, \"init_image\": \""
                       PNG_RGB_8X4 "\"}", &r, &e), CS_OK);
    CHECK(r.init_w == 8 && r.init_h == 8 && memcmp(stretched, r.init_rgb, sizeof stretched) != 0);
    request_gen_deinit(&r);
    CHECK_EQ_INT(parse("{\"prompt\": \"x\", \"init_image\": \"" PNG_RGB_8X4 "\", \"mask\": \""
                       PNG_GRAY_4X4 "\"}", &r, &e), CS_OK);
    CHECK(r.mask_w == 8 && r.mask_h == 4 && r.p.mask == r.mask_gray);
    request_gen_deinit(&r);
    EXPECT_ERROR("{\"prompt\": \"x\", \"resize_mode\": 3, \"init_image\": \"" PNG_RGB_8X4 "\"}",
                 "invalid_parameter", "resize_mode", "must be 0 (just resize)");
    EXPECT_ERROR("{\"prompt\": \"x\", \"width\": 5000, \"init_image\": \"" PNG_RGB_8X4 "\"}",
                 "invalid_parameter", "width", "must be at most"); /* before any resize */
    /* preview_every: -1 = the mode's default; 0..1000 */
    CHECK_EQ_INT(parse("{\"prompt\": \"x\"}", &r, &e), CS_OK);
    CHECK_EQ_INT(r.preview_every, -1);
    request_gen_deinit(&r);
    CHECK_EQ_INT(parse("{\"prompt\": \"x\", \"preview_every\": 3}", &r, &e), CS_OK);
    CHECK_EQ_INT(r.preview_every, 3);
    request_gen_deinit(&r);
    EXPECT_ERROR("{\"prompt\": \"x\", \"preview_every\": -2}", "invalid_parameter",
                 "preview_every", "within [0, 1000]");
    EXPECT_ERROR("{\"prompt\": \"x\", \"init_image\": \"Zm9v!\"}", "invalid_parameter",
                 "init_image", "not valid base64");
    EXPECT_ERROR("{\"prompt\": \"x\", \"init_image\": \"Zm9vYmFy\"}", "invalid_parameter",
                 "init_image", "not a PNG");
    EXPECT_ERROR("{\"prompt\": \"x\", \"init_image\": \"data:image/jpeg;base64,Zm9v\"}",
                 "invalid_parameter", "init_image", "data URL");
    EXPECT_ERROR("{\"prompt\": \"x\", \"mask\": 3}", "invalid_parameter", "mask", "base64");
}

int main(void) {
    defaults = (cs_gen_params){.prompt = "",
                               .negative_prompt = "",
                               .guidance_scale = 7.5,
                               .steps = 50,
                               .width = 64,
                               .height = 64,
                               .num_images = 1};
    test_valid();
    test_syntax_errors();
    test_field_errors();
    test_params_json();
    test_images();
    const char *dir = CS_GOLDEN_DIR "/pipeline_tiny/model";
    if (access(dir, R_OK) == 0) {
        cs_model *m = NULL;
        char msg[512];
        CHECK_EQ_INT(cs_model_load(dir, &m, msg, sizeof msg), CS_OK);
        if (m) {
            defaults = cs_gen_default_params(m);
            test_model_rules(m);
        }
        cs_model_free(m);
    } else {
        printf("golden model absent: model rules not tested\n");
    }
    CHECK_DONE();
}
