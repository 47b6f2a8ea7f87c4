/*
 * Server settings: ONE option table (options.c) is the source of every setting. The
 * config file keys, the CFGSERVE_* environment variables, the command-line flags,
 * --help, --print-config and the start-up log line of effective settings are all
 * derived from it, so they cannot drift apart.
 *
 * Naming: an option "max_batch" is the config-file key "max_batch", the flag
 * --max-batch and the environment variable CFGSERVE_MAX_BATCH.
 * Precedence: default < config file < environment < flag.
 *
 * Threads: main's thread only (at start-up); the result is read-only afterwards.
 */
#ifndef CS_OPTIONS_H
#define CS_OPTIONS_H

#include <cfgserve/cfgserve.h>

#include <stdio.h>

typedef enum option_source {
    OPTION_SRC_DEFAULT = 0,
    OPTION_SRC_FILE,
    OPTION_SRC_ENV,
    OPTION_SRC_FLAG
} option_source;

enum { OPTIONS_MAX = 48 };

/* Effective settings. Strings are owned (options_deinit frees them) and never NULL. */
typedef struct server_options {
    char *config; /* config file read ("" = none) */
    char *host;
    int port;    /* 0 = ephemeral */
    char *model; /* "" = the bundled models; folders or single checkpoint files, by commas */
    char *vae;             /* "" = the model's own VAE */
    char *prediction_type; /* single file: "" = inferred */
    char *model_type;      /* single file: "" = inferred */
    char *weights_dtype;   /* "file" (16-bit weights stay 16-bit) or "fp32" */
    char *precision;       /* "fp32" or "bf16" (cs_load_params.precision) */
    char *lora_dir;  /* "" = no LoRAs */
    char *fuse_lora; /* "" or NAME[:WEIGHT]: patched into the weights at load */
    int workers;
    int threads;
    int max_batch; /* images per UNet batch */
    int queue_size;
    int job_timeout;           /* seconds, 0 = none */
    int max_body;              /* bytes */
    int max_width, max_height; /* pixels, 0 = the model's native size */
    int vae_tile;              /* pixels, 0 = untiled VAE decoding */
    char *api_key;             /* "" = no authentication */
    char *cors_origin;         /* "" = no CORS headers; "*" or comma-separated origins */
    char *log_file;            /* "" = stderr */
    char *log_level;           /* debug | info | warn | error */
    int sse_keepalive;         /* seconds between keep-alive comments on event streams */
    int idle_timeout;          /* seconds before an idle connection is closed, 0 = never */
    int max_connections;
    int instance_id;                   /* 0..65535, the prefix of job ids */
    int max_finished;                  /* finished jobs kept for GET /jobs/{id} */
    int max_finished_mb;               /* MiB those jobs may hold (oldest dropped first) */
    int finished_ttl;                  /* seconds a finished job is kept */
    int retry_after;                   /* seconds, sent with 429 */
    char *allowed_hosts; /* Host header names accepted; "" = the bind address's + loopback */
    char *metrics_auth;  /* "on" (default): /metrics needs the API key; "off": open */
    char *log_prompts;   /* "on": queued-job log lines carry the prompts; "off" (default) */
    int header_timeout;  /* seconds from connect to complete request headers */
    option_source source[OPTIONS_MAX]; /* where each option's value came from */
} server_options;

typedef enum options_action {
    OPTIONS_RUN = 0,        /* start the server */
    OPTIONS_HELP,           /* --help: print options_help and exit 0 */
    OPTIONS_PRINT_CONFIG,   /* --print-config: print options_to_json(o, 0) and exit 0 */
    OPTIONS_PRINT_ANNOTATED /* --print-config-annotated: the same with "_comment_*" keys */
} options_action;

enum {
    OPTIONS_JSON_MASK = 1,    /* secrets as "***" */
    OPTIONS_JSON_ANNOTATE = 2 /* a "_comment_<key>" string before each key */
};

/* Fills *o from the table defaults, the config file, the environment (getenv) and argv,
 * in that order. On failure msg names the option, its source and what was wrong, and *o
 * holds nothing to free. */
cs_status options_parse(int argc, char **argv, server_options *o, options_action *action, char *msg,
                        size_t msg_size);
void options_deinit(server_options *o);

/* --help text, generated from the table. */
void options_help(FILE *f);
/* Effective settings as a JSON object (keys in table order), malloc'd; flags are
 * OPTIONS_JSON_*. Loadable as a config file unless masked ("_comment*" keys are skipped
 * by the reader). config/cfgserve.json and config/cfgserve.example.json are this output
 * for the defaults (plain and annotated); a unit test keeps them in step with the table. */
char *options_to_json(const server_options *o, int flags);
/* One line "host=127.0.0.1 port=8080 (flag) ...": every option, the source when it is not
 * the default, the API key masked. */
void options_summary(const server_options *o, char *buf, size_t size);

#endif
