/* Strict config reader: typed fields with ranges and defaults, required values, ignored
 * and '_'-prefixed fields, and the errors that must name the file and the field: wrong
 * type, out of range, unsupported value, unknown field, repeated key, malformed JSON,
 * oversize file. Real diffusers/transformers configs must parse. */
#include "check.h"
#include "config.h"
#include "st_build.h"

#include <sys/stat.h>

static char *g_dir;
static int g_n;

/* Writes text to a fresh file and opens a reader on it (status returned). */
static cs_status open_text(cfg_reader *r, const char *text, char *msg, size_t n, char **path) {
    char name[32];
    snprintf(name, sizeof name, "config%02d.json", ++g_n);
    *path = stb_write(g_dir, name, text, strlen(text));
    return cfg_open(r, *path, msg, n);
}

static void test_good(void) {
    const char *text =
        "{\n"
        "  \"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.27.2\",\n"
        "  \"i\": 3, \"neg\": -7, \"f\": 0.5, \"fi\": 2, \"b\": true, \"s\": \"silu\",\n"
        "  \"e\": \"geglu\", \"il\": [1, 2, 3], \"is\": 4, \"sl\": [\"a\", \"b\"],\n"
        "  \"n\": null, \"ign\": {\"nested\": [1]}, \"rn\": null, \"rb\": true,\n"
        "  \"rs\": \"default\", \"rf\": 1.0, \"big\": 4503599627370496\n"
        "}\n";
    cfg_reader r;
    char msg[512] = "", *path;
    CHECK_EQ_INT(open_text(&r, text, msg, sizeof msg, &path), CS_OK);
    CHECK_EQ_INT(cfg_int(&r, "i", 0, 0, 10), 3);
    CHECK_EQ_INT(cfg_int(&r, "neg", 0, -10, 10), -7);
    CHECK_EQ_INT(cfg_int(&r, "big", 0, 0, INT64_MAX), 4503599627370496LL);
    CHECK(cfg_float(&r, "f", 0, 0, 1) == 0.5);
    CHECK(cfg_float(&r, "fi", 0, 0, 10) == 2.0); /* an integer is a number too */
    CHECK(cfg_bool(&r, "b", false) == true);
    CHECK(strcmp(cfg_string(&r, "s", "x"), "silu") == 0);
    const char *const acts[] = {"gelu", "geglu", "gelu-approximate", NULL};
    CHECK_EQ_INT(cfg_enum(&r, "e", "gelu", acts), 1);
    CHECK_EQ_INT(cfg_enum(&r, "e_absent", "gelu-approximate", acts), 2);
    int64_t il[4] = {0};
    CHECK_EQ_INT(cfg_int_list(&r, "il", il, 4, 1, 3), 3);
    CHECK(il[0] == 1 && il[1] == 2 && il[2] == 3);
    CHECK_EQ_INT(cfg_int_list(&r, "is", il, 4, 0, 8), 1);
    CHECK_EQ_INT(il[0], 4);
    CHECK_EQ_INT(cfg_int_list(&r, "il_absent", il, 4, 0, 8), 0);
    const char *sl[2];
    CHECK_EQ_INT(cfg_string_list(&r, "sl", sl, 2), 2);
    CHECK(strcmp(sl[0], "a") == 0 && strcmp(sl[1], "b") == 0);
    /* Absent and null take the default. */
    CHECK(cfg_has(&r, "i") && !cfg_has(&r, "n") && !cfg_has(&r, "absent"));
    CHECK_EQ_INT(cfg_int(&r, "n", 77, 0, 100), 77);
    CHECK_EQ_INT(cfg_int(&r, "absent", 5, 0, 100), 5);
    CHECK(cfg_float(&r, "absent_f", 1.25, 0, 2) == 1.25);
    CHECK(cfg_bool(&r, "absent_b", true) == true);
    CHECK(cfg_string(&r, "absent_s", NULL) == NULL);
    CHECK_EQ_INT(cfg_string_list(&r, "absent_sl", sl, 2), 0);
    /* Required values that match (or are null) pass and are consumed. */
    cfg_require_null(&r, "rn");
    cfg_require_null(&r, "absent_rn");
    cfg_require_bool(&r, "rb", true);
    cfg_require_string(&r, "rs", "default");
    cfg_require_number(&r, "rf", 1);
    cfg_ignore(&r, (const char *const[]){"ign", "not_there", NULL});
    CHECK_EQ_INT(cfg_finish(&r), CS_OK); /* '_' fields need no consumer */
    CHECK_EQ_INT(msg[0], 0);
    cfg_close(&r);
    cfg_close(&r); /* a closed reader is empty */
    free(path);
}

/* Opens text, runs `body` on the reader, and expects cfg_finish to fail with a message
 * naming the file and containing both needles. */
#define EXPECT_FAIL(text, body, needle1, needle2)                                                  \
    do {                                                                                           \
        cfg_reader r;                                                                              \
        char msg[512] = "", *path;                                                                 \
        CHECK_EQ_INT(open_text(&r, text, msg, sizeof msg, &path), CS_OK);                          \
        body;                                                                                      \
        cfg_ignore(&r, (const char *const[]){"x", "y", NULL});                                     \
        CHECK(cfg_finish(&r) != CS_OK);                                                            \
        CHECK_STR_CONTAINS(msg, path);                                                             \
        CHECK_STR_CONTAINS(msg, needle1);                                                          \
        if (needle2) CHECK_STR_CONTAINS(msg, (const char *)needle2);                               \
        cfg_close(&r);                                                                             \
        free(path);                                                                                \
    } while (0)

static void test_field_errors(void) {
    const char *const acts[] = {"silu", "gelu", NULL};
    int64_t il[2];
    const char *sl[1];
    /* Types. */
    EXPECT_FAIL("{\"k\": 1.5}", cfg_int(&r, "k", 0, 0, 9), "field 'k' must be an integer", NULL);
    EXPECT_FAIL("{\"k\": \"3\"}", cfg_int(&r, "k", 0, 0, 9), "'k' must be an integer", NULL);
    EXPECT_FAIL("{\"k\": 1e300}", cfg_int(&r, "k", 0, 0, 9), "'k' must be an integer", NULL);
    EXPECT_FAIL("{\"k\": true}", cfg_float(&r, "k", 0, 0, 9), "'k' must be a finite number", NULL);
    EXPECT_FAIL("{\"k\": 1e999}", cfg_float(&r, "k", 0, 0, 9), "'k' must be a finite number", NULL);
    EXPECT_FAIL("{\"k\": 1}", cfg_bool(&r, "k", false), "'k' must be true or false", NULL);
    EXPECT_FAIL("{\"k\": 5}", cfg_string(&r, "k", "d"), "'k' must be a string", NULL);
    EXPECT_FAIL("{\"k\": 5}", cfg_enum(&r, "k", "silu", acts), "'k' must be a string", NULL);
    EXPECT_FAIL("{\"k\": \"x\"}", cfg_int_list(&r, "k", il, 2, 0, 9),
                "'k' must be an integer or a list", NULL);
    EXPECT_FAIL("{\"k\": [1, \"2\"]}", cfg_int_list(&r, "k", il, 2, 0, 9),
                "'k'[1] must be an integer", NULL);
    EXPECT_FAIL("{\"k\": \"a\"}", cfg_string_list(&r, "k", sl, 1), "'k' must be a list", NULL);
    EXPECT_FAIL("{\"k\": [1]}", cfg_string_list(&r, "k", sl, 1), "'k'[0] must be a string", NULL);
    /* Ranges and counts. */
    EXPECT_FAIL("{\"k\": 11}", cfg_int(&r, "k", 0, 0, 10), "'k' = 11 is outside [0, 10]", NULL);
    EXPECT_FAIL("{\"k\": -1}", cfg_int(&r, "k", 0, 0, 10), "'k' = -1 is outside", NULL);
    EXPECT_FAIL("{\"k\": 2.5}", cfg_float(&r, "k", 0, 0, 1), "'k' = 2.5 is outside [0, 1]", NULL);
    EXPECT_FAIL("{\"k\": [1, 2, 3]}", cfg_int_list(&r, "k", il, 2, 0, 9),
                "'k' has more than 2 entries", NULL);
    EXPECT_FAIL("{\"k\": [1, 20]}", cfg_int_list(&r, "k", il, 2, 0, 9),
                "'k'[1] = 20 is outside [0, 9]", NULL);
    EXPECT_FAIL("{\"k\": 20}", cfg_int_list(&r, "k", il, 2, 0, 9), "'k'[0] = 20 is outside", NULL);
    EXPECT_FAIL("{\"k\": [\"a\", \"b\"]}", cfg_string_list(&r, "k", sl, 1),
                "'k' has more than 1 entries", NULL);
    /* Enums list the choices. */
    EXPECT_FAIL("{\"act_fn\": \"relu\"}", cfg_enum(&r, "act_fn", "silu", acts),
                "field 'act_fn' = \"relu\" is not supported", "(supported: silu, gelu)");
    EXPECT_FAIL("{\"act_fn\": null}", cfg_enum(&r, "act_fn", NULL, acts),
                "field 'act_fn' is required (supported: silu, gelu)", NULL);
    /* Required values name the field and, where useful, the value. */
    EXPECT_FAIL("{\"k\": 5}", cfg_require_null(&r, "k"), "'k' = 5 is not supported (only null)",
                NULL);
    EXPECT_FAIL("{\"k\": [1,2]}", cfg_require_null(&r, "k"), "'k' = [1,2]", NULL);
    EXPECT_FAIL("{\"flip_sin_to_cos\": false}", cfg_require_bool(&r, "flip_sin_to_cos", true),
                "'flip_sin_to_cos' is not supported unless it is true", NULL);
    EXPECT_FAIL("{\"k\": \"no\"}", cfg_require_bool(&r, "k", true), "'k'", NULL);
    EXPECT_FAIL("{\"upcast\": \"other\"}", cfg_require_string(&r, "upcast", "default"),
                "'upcast' = other is not supported (only \"default\")", NULL);
    EXPECT_FAIL("{\"k\": 3}", cfg_require_string(&r, "k", "default"), "(not a string)", NULL);
    EXPECT_FAIL("{\"k\": 2}", cfg_require_number(&r, "k", 1), "'k' is not supported unless it is 1",
                NULL);
    /* Unknown fields are named, all of them; cross-field checks go through cfg_fail. */
    EXPECT_FAIL("{\"k\": 1, \"_ok\": 2}", (void)0, "field 'k' is not supported by this engine",
                NULL);
    EXPECT_FAIL("{\"k\": 1, \"j\": 2, \"x\": 3}", (void)0,
                "2 fields are not supported by this engine: 'k', 'j'", NULL);
    EXPECT_FAIL("{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,\"h\":0,\"i\":0,\"j\":0}",
                (void)0, "10 fields are not supported by this engine: 'a', 'b',", "'h' and 2 more");
    EXPECT_FAIL("{\"x\": 1}", cfg_fail(&r, "heads %d do not divide %d", 3, 8),
                "heads 3 do not divide 8", NULL);
    /* The first error sticks: later calls neither overwrite it nor read values. */
    EXPECT_FAIL(
        "{\"a\": \"bad\", \"b\": 1.5, \"c\": 4}",
        {
            cfg_int(&r, "a", 0, 0, 9);
            cfg_int(&r, "b", 0, 0, 9);
            CHECK_EQ_INT(cfg_int(&r, "c", 9, 0, 9), 9);
        },
        "'a' must be an integer", NULL);
}

static void test_open_errors(void) {
    cfg_reader r;
    char msg[512], *path;
    struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"a\": 1, \"b\": 2, \"a\": 3}", "field 'a' appears twice"},
        {"{\"a\": 1,}", "malformed JSON"},
        {"{\"a\": 1", "malformed JSON"},
        {"{\"a\": 1} {", "malformed JSON: unexpected data after the JSON value at byte 9"},
        {"{\"a\": 1}\n}", "unexpected data"},
        {"{\"a\": \"\xff\"}", "UTF-8"},
        {"[1, 2]", "not a JSON object"},
        {"", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = 0;
        CHECK_EQ_INT(open_text(&r, bad[i].text, msg, sizeof msg, &path), CS_ERR_FORMAT);
        CHECK_STR_CONTAINS(msg, path);
        CHECK_STR_CONTAINS(msg, bad[i].needle);
        /* A failed reader is inert: defaults come back, finish repeats the status. */
        CHECK_EQ_INT(cfg_int(&r, "a", 42, 0, 100), 42);
        CHECK_EQ_INT(cfg_finish(&r), CS_ERR_FORMAT);
        cfg_close(&r);
        free(path);
    }

    /* 4 MiB is the limit: one byte more is refused before reading. */
    size_t big = (4u << 20) + 1;
    char *text = malloc(big + 1);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    text[big] = 0;
    CHECK_EQ_INT(open_text(&r, text, msg, sizeof msg, &path), CS_ERR_FORMAT);
    CHECK_STR_CONTAINS(msg, "exceeds the limit");
    CHECK_STR_CONTAINS(msg, path);
    cfg_close(&r);
    free(path);
    text[big - 2] = '}';
    text[big - 1] = 0; /* exactly 4 MiB, whitespace-padded: fine */
    CHECK_EQ_INT(open_text(&r, text, msg, sizeof msg, &path), CS_OK);
    CHECK_EQ_INT(cfg_finish(&r), CS_OK);
    cfg_close(&r);
    free(path);
    free(text);

    char sub[4096];
    snprintf(sub, sizeof sub, "%s/no_such.json", g_dir);
    CHECK_EQ_INT(cfg_open(&r, sub, msg, sizeof msg), CS_ERR_IO);
    CHECK_STR_CONTAINS(msg, sub);
    cfg_close(&r);
    snprintf(sub, sizeof sub, "%s/folder.json", g_dir);
    CHECK(mkdir(sub, 0700) == 0);
    CHECK_EQ_INT(cfg_open(&r, sub, msg, sizeof msg), CS_ERR_IO);
    CHECK_STR_CONTAINS(msg, "not a regular file");
    cfg_close(&r);

    /* cs_read_file returns the bytes, NUL-terminated, with their length. */
    char *p = stb_write(g_dir, "raw.txt", "ab\0c", 4), *out;
    size_t len = 0;
    CHECK_EQ_INT(cs_read_file(p, 4, &out, &len, msg, sizeof msg), CS_OK);
    CHECK(len == 4 && memcmp(out, "ab\0c", 5) == 0);
    free(out);
    CHECK_EQ_INT(cs_read_file(p, 3, &out, &len, msg, sizeof msg), CS_ERR_FORMAT);
    CHECK(out == NULL);
    free(p);
}

/* Every config a reference writer produced parses (nothing is consumed, so cfg_finish
 * must name a field: that proves the reader saw the content). */
static void test_real_configs(void) {
    static const char *const files[] = {
        "/../configs/sd15/unet/config.json",
        "/../configs/sd15/vae/config.json",
        "/../configs/sd15/text_encoder/config.json",
        "/../configs/sd15/scheduler/scheduler_config.json",
        "/../configs/sd15/model_index.json",
        "/pipeline_tiny/model/unet/config.json",
        "/pipeline_tiny/model/vae/config.json",
        "/pipeline_tiny/model/text_encoder/config.json",
        "/pipeline_tiny/model/scheduler/scheduler_config.json",
        "/pipeline_tiny/model/tokenizer/tokenizer_config.json",
        "/unet_tiny_variants/class_labels/unet/config.json",
    };
    int n = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4096], msg[512];
        snprintf(path, sizeof path, "%s%s", CS_GOLDEN_DIR, files[i]);
        struct stat sb;
        if (stat(path, &sb) != 0) {
            printf("note: %s absent, not checked\n", path);
            continue;
        }
        cfg_reader r;
        cs_status st = cfg_open(&r, path, msg, sizeof msg);
        CHECK_EQ_INT(st, CS_OK);
        if (st != CS_OK) fprintf(stderr, "%s\n", msg);
        CHECK_EQ_INT(cfg_finish(&r), st == CS_OK ? CS_ERR_UNSUPPORTED : st);
        CHECK_STR_CONTAINS(msg, "not supported by this engine");
        cfg_close(&r);
        n++;
    }
    printf("real configs parsed: %d\n", n);
}

int main(void) {
    g_dir = stb_tmpdir();
    test_good();
    test_field_errors();
    test_open_errors();
    test_real_configs();
    stb_rmtree(g_dir);
    free(g_dir);
    CHECK_DONE();
}
