/* Server options: defaults, the three sources and their precedence, every error class
 * (named with option and source), and the checked-in config files staying in step with
 * the option table. */
#include "options.h"

#include "check.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static char tmpdir[] = "/tmp/cs_test_options_XXXXXX";

static const char *write_tmp(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

/* Parses argv (NULL-terminated, without argv[0]); returns the status. */
static cs_status parse(server_options *o, options_action *act, char *msg, size_t n, ...) {
    char *argv[32] = {"cfgserve"};
    int argc = 1;
    va_list ap;
    va_start(ap, n);
    for (char *a; argc < 31 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return options_parse(argc, argv, o, act, msg, n);
}

/* Expects failure with a message containing both fragments. */
#define CHECK_FAILS(frag1, frag2, ...)                                                             \
    do {                                                                                           \
        server_options o_;                                                                         \
        options_action a_;                                                                         \
        char m_[512] = "";                                                                         \
        cs_status st_ = parse(&o_, &a_, m_, sizeof m_, __VA_ARGS__, (char *)NULL);                 \
        CHECK(st_ != CS_OK);                                                                       \
        if (st_ == CS_OK) options_deinit(&o_);                                                     \
        CHECK_STR_CONTAINS(m_, frag1);                                                             \
        CHECK_STR_CONTAINS(m_, frag2);                                                             \
    } while (0)

static void test_defaults_and_flags(void) {
    server_options o;
    options_action act;
    char msg[512];
    CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, "--config", "none", (char *)NULL), CS_OK);
    CHECK_EQ_INT(act, OPTIONS_RUN);
    CHECK_EQ_INT(o.port, 8080);
    CHECK(!strcmp(o.host, "127.0.0.1"));
    CHECK_EQ_INT(o.max_batch, 8);
    CHECK_EQ_INT(o.sse_keepalive, 15);
    CHECK(!strcmp(o.log_level, "info"));
    CHECK(!strcmp(o.config, ""));
    CHECK(!strcmp(o.model, ""));
    options_deinit(&o);
    options_deinit(&o); /* twice is harmless */

    CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, "--config=none", "--port", "0", "--max-batch=1",
                       "--log-level", "debug", "--api-key", "s3cret", "--cors-origin", "*",
                       (char *)NULL),
                 CS_OK);
    CHECK_EQ_INT(o.port, 0);
    CHECK_EQ_INT(o.max_batch, 1);
    CHECK_EQ_INT(o.source[2], OPTION_SRC_FLAG); /* port is the table's third entry */
    CHECK(!strcmp(o.log_level, "debug"));
    char sum[4096];
    options_summary(&o, sum, sizeof sum);
    CHECK_STR_CONTAINS(sum, "port=0 (flag)");
    CHECK_STR_CONTAINS(sum, "api_key=\"***\" (flag)");
    CHECK(!strstr(sum, "s3cret"));
    char *masked = options_to_json(&o, OPTIONS_JSON_MASK);
    CHECK(masked && !strstr(masked, "s3cret") && strstr(masked, "***"));
    free(masked);
    options_deinit(&o);

    CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, "--port", "x", "--help", (char *)NULL), CS_OK);
    CHECK_EQ_INT(act, OPTIONS_HELP); /* --help wins over errors after it */
    options_deinit(&o);
    CHECK_EQ_INT(
        parse(&o, &act, msg, sizeof msg, "--config", "none", "--print-config", (char *)NULL),
        CS_OK);
    CHECK_EQ_INT(act, OPTIONS_PRINT_CONFIG);
    options_deinit(&o);
}

static void test_precedence(void) {
    server_options o;
    options_action act;
    char msg[512];
    const char *cfg = write_tmp("prec.json", "{\"_comment\": \"x\", \"port\": 1111, "
                                             "\"workers\": 3, \"host\": \"0.0.0.0\"}");
    setenv("CFGSERVE_PORT", "2222", 1);
    setenv("CFGSERVE_WORKERS", "4", 1);
    CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, "--config", cfg, "--port", "3333", (char *)NULL),
                 CS_OK);
    CHECK_EQ_INT(o.port, 3333);
    CHECK_EQ_INT(o.workers, 4);
    CHECK(!strcmp(o.host, "0.0.0.0"));
    CHECK(!strcmp(o.config, cfg));
    CHECK_EQ_INT(o.source[1], OPTION_SRC_FILE);
    options_deinit(&o);
    CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, "--config", cfg, (char *)NULL), CS_OK);
    CHECK_EQ_INT(o.port, 2222);
    CHECK_EQ_INT(o.source[2], OPTION_SRC_ENV);
    options_deinit(&o);
    unsetenv("CFGSERVE_PORT");
    unsetenv("CFGSERVE_WORKERS");
    /* The config path itself may come from the environment. */
    setenv("CFGSERVE_CONFIG", cfg, 1);
    CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, (char *)NULL), CS_OK);
    CHECK_EQ_INT(o.port, 1111);
    CHECK_EQ_INT(o.workers, 3);
    options_deinit(&o);
    unsetenv("CFGSERVE_CONFIG");
}

static void test_errors(void) {
    CHECK_FAILS("unknown option", "--bogus", "--config", "none", "--bogus", "1");
    CHECK_FAILS("unknown argument", "stray", "--config", "none", "stray");
    CHECK_FAILS("flag --port", "needs a value", "--config", "none", "--port");
    CHECK_FAILS("flag --port", "[0, 65535]", "--config", "none", "--port", "70000");
    CHECK_FAILS("flag --port", "\"8o\"", "--config", "none", "--port", "8o");
    CHECK_FAILS("flag --port", "\"\"", "--config", "none", "--port=");
    CHECK_FAILS("flag --max-batch", "[1, 64]", "--config", "none", "--max-batch", "0");
    CHECK_FAILS("flag --log-level", "debug|info|warn|error", "--config", "none", "--log-level",
                "loud");
    setenv("CFGSERVE_WORKERS", "0", 1);
    CHECK_FAILS("environment CFGSERVE_WORKERS", "[1, 64]", "--config", "none");
    unsetenv("CFGSERVE_WORKERS");

    const char *p;
    p = write_tmp("unknown.json", "{\"port\": 1, \"prot\": 2}");
    CHECK_FAILS(p, "unknown option \"prot\"", "--config", p);
    p = write_tmp("type.json", "{\"port\": \"80\"}");
    CHECK_FAILS("key \"port\"", "an integer in [0, 65535]", "--config", p);
    p = write_tmp("frac.json", "{\"queue_size\": 1.5}");
    CHECK_FAILS("key \"queue_size\"", "got 1.5", "--config", p);
    p = write_tmp("str.json", "{\"host\": 5}");
    CHECK_FAILS("key \"host\"", "a string", "--config", p);
    p = write_tmp("enum.json", "{\"log_level\": \"verbose\"}");
    CHECK_FAILS("key \"log_level\"", "one of", "--config", p);
    p = write_tmp("bad.json", "{\"port\": 1,");
    CHECK_FAILS(p, "malformed JSON", "--config", p);
    p = write_tmp("array.json", "[1, 2]");
    CHECK_FAILS(p, "expected a JSON object", "--config", p);
    p = write_tmp("dup.json", "{\"port\": 1, \"port\": 2}");
    CHECK_FAILS(p, "\"port\" is given twice", "--config", p);
    p = write_tmp("self.json", "{\"config\": \"other.json\"}");
    CHECK_FAILS(p, "unknown option \"config\"", "--config", p);
    CHECK_FAILS("/nonexistent/cfg.json", "cannot open", "--config", "/nonexistent/cfg.json");
}

/* Reads a whole file into a malloc'd string. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    if (buf) buf[fread(buf, 1, (1 << 20) - 1, f)] = '\0';
    fclose(f);
    return buf;
}

static void test_shipped_configs(void) {
    server_options d, o;
    options_action act;
    char msg[512];
    CHECK_EQ_INT(parse(&d, &act, msg, sizeof msg, "--config", "none", (char *)NULL), CS_OK);
    char *plain = options_to_json(&d, 0), *annotated = options_to_json(&d, OPTIONS_JSON_ANNOTATE);
    CHECK(plain && annotated);

    /* The checked-in files are exactly the table's defaults, so the table stays the one
     * source. Regenerate with: cfgserve --config none --print-config[-annotated]. */
    char *file = slurp(CS_SOURCE_DIR "/config/cfgserve.json");
    char *example = slurp(CS_SOURCE_DIR "/config/cfgserve.example.json");
    CHECK(file && plain && !strncmp(file, plain, strlen(plain)));
    CHECK(example && annotated && !strncmp(example, annotated, strlen(annotated)));
    if (file && plain && strncmp(file, plain, strlen(plain)))
        fprintf(stderr, "config/cfgserve.json differs from the table defaults:\n%s\n", plain);

    /* Both load, every option comes from the file, values equal the defaults. */
    const char *paths[2] = {CS_SOURCE_DIR "/config/cfgserve.json",
                            CS_SOURCE_DIR "/config/cfgserve.example.json"};
    cJSON *keys = cJSON_Parse(plain ? plain : "{}");
    const int n_file_keys = cJSON_GetArraySize(keys); /* every option but "config" */
    cJSON_Delete(keys);
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, "--config", paths[k], (char *)NULL), CS_OK);
        char *j = options_to_json(&o, 0);
        CHECK(j && plain && !strcmp(j, plain));
        for (int i = 1; i <= n_file_keys; i++)
            CHECK_EQ_INT(o.source[i], OPTION_SRC_FILE);
        free(j);
        options_deinit(&o);
    }

    /* Round trip of non-default values; --help names every key as a flag. */
    CHECK_EQ_INT(parse(&o, &act, msg, sizeof msg, "--config", "none", "--port", "0",
                       "--cors-origin", "http://a.example, http://b.example", (char *)NULL),
                 CS_OK);
    char *j = options_to_json(&o, OPTIONS_JSON_ANNOTATE);
    const char *rt = write_tmp("rt.json", j ? j : "");
    server_options o2;
    CHECK_EQ_INT(parse(&o2, &act, msg, sizeof msg, "--config", rt, (char *)NULL), CS_OK);
    CHECK_EQ_INT(o2.port, 0);
    CHECK(!strcmp(o2.cors_origin, "http://a.example, http://b.example"));
    options_deinit(&o2);
    options_deinit(&o);
    free(j);

    char *help = NULL;
    size_t help_len = 0;
    FILE *hf = open_memstream(&help, &help_len);
    options_help(hf);
    fclose(hf);
    cJSON *root = cJSON_Parse(plain);
    for (cJSON *c = root ? root->child : NULL; c; c = c->next) {
        char flag[80] = "--";
        for (size_t i = 0; c->string[i] && i < 70; i++)
            flag[2 + i] = c->string[i] == '_' ? '-' : c->string[i];
        CHECK_STR_CONTAINS(help, flag);
        char key[96];
        snprintf(key, sizeof key, "\"_comment_%s\"", c->string);
        CHECK_STR_CONTAINS(annotated, key);
    }
    CHECK(root && cJSON_GetArraySize(root) >= 20);
    cJSON_Delete(root);
    free(help);
    free(file);
    free(example);
    free(plain);
    free(annotated);
    options_deinit(&d);
}

int main(void) {
    /* The test's own environment must not leak into the defaults. */
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++)
            if (!strncmp(*e, "CFGSERVE_", 9)) {
                char name[128];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults_and_flags();
    test_precedence();
    test_errors();
    test_shipped_configs();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    CHECK_DONE();
}
