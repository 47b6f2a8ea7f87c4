/*
 * The option table and everything derived from it (see options.h): defaults, the config
 * file reader, environment variables, flags, --help, --print-config and the start-up
 * summary. Every value, whatever its source, goes through the same parser, so a default,
 * a file value and a flag are checked by the same rules and bounds.
 *
 * Threads: main's thread only.
 */
#include "options.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef CS_SOURCE_DIR
#define CS_SOURCE_DIR "."
#endif

typedef enum opt_type { OPT_STR, OPT_INT, OPT_ENUM } opt_type;

enum {
    OPT_SECRET = 1, /* masked in logs and --print-config */
    OPT_NOFILE = 2, /* cannot be set inside the config file (the file's own path) */
    MAX_CONFIG_BYTES = 1 << 20
};

typedef struct opt_def {
    const char *name; /* file key; flag --name with '-' for '_'; env CFGSERVE_NAME */
    opt_type type;
    size_t offset;       /* of the field in server_options (char * or int) */
    const char *def;     /* default as text, parsed like any other source */
    long long min, max;  /* OPT_INT bounds */
    const char *choices; /* OPT_ENUM: "a|b|c" */
    unsigned flags;
    const char *metavar; /* for --help */
    const char *help;
} opt_def;

#define F(field) offsetof(server_options, field)

/* THE option table. Add a setting here and it exists everywhere. */
static const opt_def OPTIONS[] = {
    {"config", OPT_STR, F(config), CS_SOURCE_DIR "/config/cfgserve.json", 0, 0, NULL, OPT_NOFILE,
     "FILE", "JSON config file; \"none\" reads no file (the default file is skipped when absent)"},
    {"host", OPT_STR, F(host), "127.0.0.1", 0, 0, NULL, 0, "HOST",
     "address to listen on (0.0.0.0 or :: for every interface)"},
    {"port", OPT_INT, F(port), "8080", 0, 65535, NULL, 0, "N",
     "TCP port; 0 picks a free one (the log says which)"},
    {"model", OPT_STR, F(model), "", 0, 0, NULL, 0, "PATH[,PATH...]",
     "diffusers model folder or single SD 1.x/2.x checkpoint (.safetensors/.ckpt); several, "
     "separated by commas, are served side by side (requests pick one by name in \"model\"; "
     "the first is the default) (\"\": the bundled models/default and models/student)"},
    {"vae", OPT_STR, F(vae), "", 0, 0, NULL, 0, "PATH",
     "replacement VAE: an LDM VAE file or a diffusers vae folder (\"\": the model's own)"},
    {"prediction_type", OPT_STR, F(prediction_type), "", 0, 0, NULL, 0, "TYPE",
     "single-file checkpoints: epsilon or v_prediction (\"\": inferred)"},
    {"model_type", OPT_STR, F(model_type), "", 0, 0, NULL, 0, "TYPE",
     "single-file checkpoints: sd1 or sd2 (\"\": inferred)"},
    {"weights_dtype", OPT_ENUM, F(weights_dtype), "file", 0, 0, "file|fp32", 0, "file|fp32",
     "linear and conv weights of an F16/BF16 checkpoint: file = stay 16-bit in memory (same "
     "images, about half the weight memory), fp32 = widened at load"},
    {"precision", OPT_ENUM, F(precision), "fp32", 0, 0, "fp32|bf16", 0, "fp32|bf16",
     "products of linear and conv layers: fp32 (exact to the reference), or bf16 weights "
     "(half the memory) and bf16 products with fp32 sums (AVX512_BF16 where the CPU has it; "
     "images differ slightly from fp32)"},
    {"lora_dir", OPT_STR, F(lora_dir), "", 0, 0, NULL, 0, "DIR",
     "folder of LoRA .safetensors files requests may name in \"loras\" (\"\": none)"},
    {"fuse_lora", OPT_STR, F(fuse_lora), "", 0, 0, NULL, 0, "NAME:WEIGHT",
     "patch this LoRA from lora_dir into the weights at load, for every request (\"\": none)"},
    {"workers", OPT_INT, F(workers), "1", 1, 64, NULL, 0, "N",
     "worker threads, each with its own activation memory"},
    {"threads", OPT_INT, F(threads), "0", 0, 256, NULL, 0, "N",
     "compute threads of each batched step (OpenBLAS + kernels), shared by the workers; "
     "0 = OPENBLAS_NUM_THREADS, else every core"},
    {"max_batch", OPT_INT, F(max_batch), "8", 1, 64, NULL, 0, "N",
     "images per UNet batch (CFG rows are up to twice this); 1 turns batching off"},
    {"queue_size", OPT_INT, F(queue_size), "64", 1, 100000, NULL, 0, "N",
     "jobs waiting to start; more are refused with 429"},
    {"job_timeout", OPT_INT, F(job_timeout), "600", 0, 86400, NULL, 0, "SECONDS",
     "a job not done this long after admission fails with \"timeout\"; 0 = never"},
    {"max_body", OPT_INT, F(max_body), "8388608", 1024, 256 << 20, NULL, 0, "BYTES",
     "largest request body (base64 init images and masks count); larger ones get 413"},
    {"max_width", OPT_INT, F(max_width), "0", 0, 2048, NULL, 0, "PIXELS",
     "widest image accepted (0 = the model's native width); sizes worker memory"},
    {"max_height", OPT_INT, F(max_height), "0", 0, 2048, NULL, 0, "PIXELS",
     "tallest image accepted (0 = the model's native height); sizes worker memory"},
    {"vae_tile", OPT_INT, F(vae_tile), "0", 0, 4096, NULL, 0, "PIXELS",
     "decode images larger than this in overlapping VAE tiles of this size, as diffusers' "
     "enable_tiling (a multiple of 32 for SD; the decoder's memory follows the tile); 0 = off"},
    {"api_key", OPT_STR, F(api_key), "", 0, 0, NULL, OPT_SECRET, "KEY",
     "require \"Authorization: Bearer KEY\" (except /health and /ready); \"\" = open"},
    {"cors_origin", OPT_STR, F(cors_origin), "", 0, 0, NULL, 0, "ORIGINS",
     "origins allowed by CORS: \"*\" or a comma-separated list; \"\" = no CORS headers"},
    {"log_file", OPT_STR, F(log_file), "", 0, 0, NULL, 0, "FILE",
     "append the log here (reopened on SIGHUP); \"\" = stderr"},
    {"log_level", OPT_ENUM, F(log_level), "info", 0, 0, "debug|info|warn|error", 0, "LEVEL",
     "least severe level logged: debug, info, warn or error"},
    {"sse_keepalive", OPT_INT, F(sse_keepalive), "15", 1, 3600, NULL, 0, "SECONDS",
     "interval of keep-alive comments on idle event streams"},
    {"idle_timeout", OPT_INT, F(idle_timeout), "60", 0, 3600, NULL, 0, "SECONDS",
     "close a connection idle this long (waiting requests are not idle); 0 = never"},
    {"max_connections", OPT_INT, F(max_connections), "512", 1, 100000, NULL, 0, "N",
     "simultaneous HTTP connections"},
    {"instance_id", OPT_INT, F(instance_id), "0", 0, 65535, NULL, 0, "N",
     "leads every job id (\"N-...\"): a load balancer routes /jobs/{id} to its owner by it"},
    {"max_finished", OPT_INT, F(max_finished), "256", 0, 100000, NULL, 0, "N",
     "finished jobs kept for GET /jobs/{id} (oldest dropped first)"},
    {"max_finished_mb", OPT_INT, F(max_finished_mb), "64", 1, 65536, NULL, 0, "MIB",
     "bytes of those finished jobs kept at most, in MiB (PNGs, texts, records; oldest dropped "
     "first, and a result larger than this alone is not kept: its id then answers 410)"},
    {"finished_ttl", OPT_INT, F(finished_ttl), "600", 0, 86400, NULL, 0, "SECONDS",
     "how long a finished job's result is kept"},
    {"retry_after", OPT_INT, F(retry_after), "1", 1, 3600, NULL, 0, "SECONDS",
     "Retry-After sent with 429 (queue full)"},
    {"allowed_hosts", OPT_STR, F(allowed_hosts), "", 0, 0, NULL, 0, "NAMES",
     "Host header names accepted (comma-separated; \"*\" = any); \"\" = the bound address "
     "plus localhost, 127.0.0.1 and [::1] (any name when bound to all interfaces); others "
     "get 421 (DNS rebinding)"},
    {"header_timeout", OPT_INT, F(header_timeout), "10", 1, 3600, NULL, 0, "SECONDS",
     "close a connection whose request headers are not complete this long after it opened "
     "(slow-header and idle-connection storms cannot hold --max-connections)"},
    {"metrics_auth", OPT_ENUM, F(metrics_auth), "on", 0, 0, "on|off", 0, "on|off",
     "on: GET /metrics needs the API key like every route; off: open to scrapers without it"},
    {"log_prompts", OPT_ENUM, F(log_prompts), "off", 0, 0, "on|off", 0, "on|off",
     "on: the log line of each queued job also carries its prompt and negative prompt; "
     "off: prompts never reach the log"},
};
enum { N_OPTIONS = (int)(sizeof OPTIONS / sizeof OPTIONS[0]) };
_Static_assert((int)N_OPTIONS <= (int)OPTIONS_MAX, "raise OPTIONS_MAX");

static char **str_field(server_options *o, const opt_def *d) {
    return (char **)((char *)o + d->offset);
}
static int *int_field(server_options *o, const opt_def *d) {
    return (int *)((char *)o + d->offset);
}
static const char *str_value(const server_options *o, const opt_def *d) {
    return *(char *const *)((const char *)o + d->offset);
}
static int int_value(const server_options *o, const opt_def *d) {
    return *(const int *)((const char *)o + d->offset);
}

static const opt_def *find_option(const char *name, size_t len) {
    for (int i = 0; i < N_OPTIONS; i++)
        if (strlen(OPTIONS[i].name) == len && strncmp(OPTIONS[i].name, name, len) == 0)
            return &OPTIONS[i];
    return NULL;
}

static int choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, v, n) == 0) return 1;
        c += len + (bar ? 1 : 0);
    }
    return 0;
}

/* Describes a source for error messages: "flag --max-batch", "environment
 * CFGSERVE_MAX_BATCH", "config file F, key \"max_batch\"". */
static void source_name(const opt_def *d, option_source src, const char *file, char *buf,
                        size_t n) {
    size_t at = 0;
    switch (src) {
    case OPTION_SRC_FLAG:
        at = (size_t)snprintf(buf, n, "flag --");
        for (const char *c = d->name; *c && at + 1 < n; c++)
            buf[at++] = *c == '_' ? '-' : *c;
        buf[at] = '\0';
        break;
    case OPTION_SRC_ENV:
        at = (size_t)snprintf(buf, n, "environment CFGSERVE_");
        for (const char *c = d->name; *c && at + 1 < n; c++)
            buf[at++] = (char)toupper(*c);
        buf[at] = '\0';
        break;
    case OPTION_SRC_FILE:
        snprintf(buf, n, "config file %s, key \"%s\"", file ? file : "?", d->name);
        break;
    default:
        snprintf(buf, n, "default of %s", d->name);
    }
}

static cs_status fail(char *msg, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cs_status fail(char *msg, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
    return CS_ERR_INVALID_ARG;
}

/* "an integer in [1, 64]" / "one of debug|info|warn|error" / "a string". */
static void expected(const opt_def *d, char *buf, size_t n) {
    if (d->type == OPT_INT)
        snprintf(buf, n, "an integer in [%lld, %lld]", d->min, d->max);
    else if (d->type == OPT_ENUM)
        snprintf(buf, n, "one of %s", d->choices);
    else
        snprintf(buf, n, "a string");
}

static cs_status set_string(server_options *o, const opt_def *d, const char *v, char *msg,
                            size_t n) {
    char *copy = strdup(v);
    if (!copy) return fail(msg, n, "out of memory");
    free(*str_field(o, d));
    *str_field(o, d) = copy;
    return CS_OK;
}

/* Parses a value given as text (defaults, environment, flags). */
static cs_status set_text(server_options *o, const opt_def *d, option_source src, const char *text,
                          char *msg, size_t n) {
    char where[160], want[96];
    source_name(d, src, NULL, where, sizeof where);
    expected(d, want, sizeof want);
    if (d->type == OPT_INT) {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || isspace((unsigned char)*text) || *end || errno || v < d->min || v > d->max)
            return fail(msg, n, "%s: expected %s, got \"%.64s\"", where, want, text);
        *int_field(o, d) = (int)v;
    } else {
        if (d->type == OPT_ENUM && !choice_ok(d->choices, text))
            return fail(msg, n, "%s: expected %s, got \"%.64s\"", where, want, text);
        if (set_string(o, d, text, msg, n) != CS_OK) return CS_ERR_NOMEM;
    }
    o->source[d - OPTIONS] = src;
    return CS_OK;
}

/* Parses a value from the config file, where JSON carries the type. */
static cs_status set_json(server_options *o, const opt_def *d, const cJSON *v, const char *file,
                          char *msg, size_t n) {
    char where[640], want[96];
    source_name(d, OPTION_SRC_FILE, file, where, sizeof where);
    expected(d, want, sizeof want);
    if (d->type == OPT_INT) {
        double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!isfinite(x) || x != floor(x) || x < (double)d->min || x > (double)d->max) {
            char *got = cJSON_PrintUnformatted(v);
            cs_status st = fail(msg, n, "%s: expected %s, got %.64s", where, want, got ? got : "?");
            free(got);
            return st;
        }
        *int_field(o, d) = (int)x;
    } else {
        if (!cJSON_IsString(v) || (d->type == OPT_ENUM && !choice_ok(d->choices, v->valuestring)))
            return fail(msg, n, "%s: expected %s", where, want);
        if (set_string(o, d, v->valuestring, msg, n) != CS_OK) return CS_ERR_NOMEM;
    }
    o->source[d - OPTIONS] = OPTION_SRC_FILE;
    return CS_OK;
}

static cs_status read_file(const char *path, char **out, size_t *len, char *msg, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail(msg, n, "config file %s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    size_t got = buf ? fread(buf, 1, MAX_CONFIG_BYTES + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (!buf) return fail(msg, n, "out of memory");
    if (err || got > MAX_CONFIG_BYTES) {
        free(buf);
        return fail(msg, n, "config file %s: %s", path, err ? "read error" : "larger than 1 MiB");
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return CS_OK;
}

/* Applies a config file: an object whose keys are option names. Keys starting with
 * "_comment" are annotations (JSON has no comments); any other unknown key is an error,
 * so a misspelt setting never goes unnoticed. */
static cs_status apply_file(server_options *o, const char *path, char *msg, size_t n) {
    char *text = NULL;
    size_t len = 0;
    cs_status st = read_file(path, &text, &len, msg, n);
    if (st != CS_OK) return st;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = root ? 0 : (size_t)(end ? end - text : 0);
        cJSON_Delete(root);
        free(text);
        return root ? fail(msg, n, "config file %s: expected a JSON object", path)
                    : fail(msg, n, "config file %s: malformed JSON near byte %zu", path, at);
    }
    free(text);
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strncmp(c->string, "_comment", 8) == 0) continue;
        const opt_def *d = find_option(c->string, strlen(c->string));
        if (!d || (d->flags & OPT_NOFILE)) {
            st = fail(msg, n, "config file %s: unknown option \"%.64s\"%s", path, c->string,
                      d ? " (it can only be given as a flag or in the environment)" : "");
            break;
        }
        /* A key given twice would make the winner depend on parser order. */
        for (const cJSON *p = root->child; p != c; p = p->next)
            if (strcmp(p->string, c->string) == 0) st = CS_ERR_INVALID_ARG;
        if (st != CS_OK) {
            fail(msg, n, "config file %s: option \"%s\" is given twice", path, c->string);
            break;
        }
        if ((st = set_json(o, d, c, path, msg, n)) != CS_OK) break;
    }
    cJSON_Delete(root);
    return st;
}

static cs_status apply_env(server_options *o, char *msg, size_t n) {
    for (int i = 0; i < N_OPTIONS; i++) {
        char name[80] = "CFGSERVE_";
        size_t at = strlen(name);
        for (const char *c = OPTIONS[i].name; *c && at + 1 < sizeof name; c++)
            name[at++] = (char)toupper(*c);
        name[at] = '\0';
        const char *v = getenv(name);
        if (!v) continue;
        cs_status st = set_text(o, &OPTIONS[i], OPTION_SRC_ENV, v, msg, n);
        if (st != CS_OK) return st;
    }
    return CS_OK;
}

/* Finds the option a flag names: "--max-batch" or "--max-batch=8". */
static const opt_def *flag_option(const char *arg, const char **inline_value) {
    if (strncmp(arg, "--", 2) != 0) return NULL;
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    char key[64];
    if (len == 0 || len >= sizeof key) return NULL;
    for (size_t i = 0; i < len; i++)
        key[i] = name[i] == '-' ? '_' : name[i];
    key[len] = '\0';
    *inline_value = eq ? eq + 1 : NULL;
    return find_option(key, len);
}

/* Walks argv. With only_config, it just picks out --config (needed before the file is
 * read) and the actions; otherwise it applies every flag. */
static cs_status apply_flags(int argc, char **argv, server_options *o, int only_config,
                             options_action *action, char *msg, size_t n) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *action = OPTIONS_HELP;
            continue;
        }
        if (!strcmp(a, "--print-config") || !strcmp(a, "--print-config-annotated")) {
            if (*action == OPTIONS_RUN)
                *action = a[14] ? OPTIONS_PRINT_ANNOTATED : OPTIONS_PRINT_CONFIG;
            continue;
        }
        const opt_def *d = flag_option(a, &value);
        if (!d) {
            if (only_config) continue; /* reported by the full pass */
            return fail(msg, n, "unknown %s \"%.64s\" (see --help)",
                        strncmp(a, "--", 2) ? "argument" : "option", a);
        }
        if (!value) {
            if (i + 1 >= argc) return fail(msg, n, "flag %s needs a value (see --help)", a);
            value = argv[++i];
        }
        if (only_config && d != &OPTIONS[0]) continue;
        cs_status st = set_text(o, d, OPTION_SRC_FLAG, value, msg, n);
        if (st != CS_OK) return st;
    }
    return CS_OK;
}

void options_deinit(server_options *o) {
    if (!o) return;
    for (int i = 0; i < N_OPTIONS; i++)
        if (OPTIONS[i].type != OPT_INT) {
            free(*str_field(o, &OPTIONS[i]));
            *str_field(o, &OPTIONS[i]) = NULL;
        }
}

cs_status options_parse(int argc, char **argv, server_options *o, options_action *action, char *msg,
                        size_t n) {
    memset(o, 0, sizeof *o);
    *action = OPTIONS_RUN;
    cs_status st = CS_OK;
    for (int i = 0; i < N_OPTIONS && st == CS_OK; i++)
        st = set_text(o, &OPTIONS[i], OPTION_SRC_DEFAULT, OPTIONS[i].def, msg, n);
    /* The file's path must be known before the file is read: flag > env > default. */
    if (st == CS_OK) {
        const char *env = getenv("CFGSERVE_CONFIG");
        if (env) st = set_text(o, &OPTIONS[0], OPTION_SRC_ENV, env, msg, n);
    }
    if (st == CS_OK) st = apply_flags(argc, argv, o, 1, action, msg, n);
    if (st == CS_OK && *action == OPTIONS_HELP) return CS_OK;
    if (st == CS_OK) {
        const char *path = o->config;
        int none = !path[0] || !strcmp(path, "none");
        FILE *probe = none ? NULL : fopen(path, "rb");
        if (probe) fclose(probe);
        /* The default file is optional; a file someone named must exist. */
        if (none || (!probe && o->source[0] == OPTION_SRC_DEFAULT))
            st = set_string(o, &OPTIONS[0], "", msg, n);
        else
            st = apply_file(o, path, msg, n);
    }
    if (st == CS_OK) st = apply_env(o, msg, n);
    if (st == CS_OK) st = apply_flags(argc, argv, o, 0, action, msg, n);
    if (st == CS_OK && !strcmp(o->config, "none")) st = set_string(o, &OPTIONS[0], "", msg, n);
    if (st != CS_OK) options_deinit(o);
    return st;
}

void options_help(FILE *f) {
    fprintf(f, "usage: cfgserve [options]\n\n"
               "Text-to-image HTTP server with classifier-free guidance and step-level batching.\n"
               "Each option is also a config-file key (--max-batch: \"max_batch\") and an\n"
               "environment variable (CFGSERVE_MAX_BATCH). Precedence: default < config file <\n"
               "environment < flag. --print-config prints the effective settings as a config\n"
               "file.\n\n");
    for (int i = 0; i < N_OPTIONS; i++) {
        const opt_def *d = &OPTIONS[i];
        char flag[64];
        size_t at = (size_t)snprintf(flag, sizeof flag, "--");
        for (const char *c = d->name; *c; c++)
            flag[at++] = *c == '_' ? '-' : *c;
        snprintf(flag + at, sizeof flag - at, " %s", d->metavar);
        fprintf(f, "  %-26s %s\n", flag, d->help);
        if (d->type == OPT_INT)
            fprintf(f, "  %-26s (default %s; %lld..%lld)\n", "", d->def, d->min, d->max);
        else if (d->def[0])
            fprintf(f, "  %-26s (default %s)\n", "", d->def);
    }
    fprintf(f, "  %-26s %s\n  %-26s %s\n  %-26s %s\n", "--print-config",
            "print the effective settings as a config file and exit", "--print-config-annotated",
            "the same, with a \"_comment_<key>\" for each key", "-h, --help", "this text");
}

/* The comment of an annotated config: help, bounds, flag and environment variable. */
static cJSON *annotation(const opt_def *d) {
    char text[512], flag[80], env[80];
    source_name(d, OPTION_SRC_FLAG, NULL, flag, sizeof flag);
    source_name(d, OPTION_SRC_ENV, NULL, env, sizeof env);
    if (d->type == OPT_INT)
        snprintf(text, sizeof text, "%s. Integer %lld..%lld, default %s. %s, %s.", d->help, d->min,
                 d->max, d->def, flag, env);
    else
        snprintf(text, sizeof text, "%s. Default \"%s\". %s, %s.", d->help, d->def, flag, env);
    return cJSON_CreateString(text);
}

char *options_to_json(const server_options *o, int flags) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; root && i < N_OPTIONS; i++) {
        const opt_def *d = &OPTIONS[i];
        if (d->flags & OPT_NOFILE) continue;
        cJSON *v, *note = NULL;
        char key[80];
        if (d->type == OPT_INT)
            v = cJSON_CreateNumber(int_value(o, d));
        else
            v = cJSON_CreateString((flags & OPTIONS_JSON_MASK) && (d->flags & OPT_SECRET) &&
                                           str_value(o, d)[0]
                                       ? "***"
                                       : str_value(o, d));
        snprintf(key, sizeof key, "_comment_%s", d->name);
        int ok = v != NULL;
        if (ok && (flags & OPTIONS_JSON_ANNOTATE))
            ok = (note = annotation(d)) != NULL && cJSON_AddItemToObject(root, key, note);
        if (!ok) cJSON_Delete(note);
        if (!ok || !cJSON_AddItemToObject(root, d->name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(root);
            return NULL;
        }
    }
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return text;
}

void options_summary(const server_options *o, char *buf, size_t size) {
    static const char *const src_names[] = {"", " (file)", " (env)", " (flag)"};
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_OPTIONS && at < size; i++) {
        const opt_def *d = &OPTIONS[i];
        const char *src = src_names[o->source[i]];
        if (d->type == OPT_INT)
            at += (size_t)snprintf(buf + at, size - at, "%s%s=%d%s", i ? " " : "", d->name,
                                   int_value(o, d), src);
        else
            at += (size_t)snprintf(
                buf + at, size - at, "%s%s=\"%s\"%s", i ? " " : "", d->name,
                (d->flags & OPT_SECRET) && str_value(o, d)[0] ? "***" : str_value(o, d), src);
    }
}
