/*
 * Reading diffusers / transformers config.json files strictly.
 *
 * A component parser asks for each field it honours (cfg_int, cfg_float, ...), states
 * the value it requires for fields it does not implement (cfg_require_*), and names
 * the fields that do not affect inference (cfg_ignore). cfg_finish then fails on any
 * field nobody asked about, naming it: a config the engine cannot honour is never
 * silently half-read. The first error sticks; later calls are no-ops, so parsers read
 * straight through and check once at the end.
 *
 * Single-threaded; used only while loading.
 */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include "common.h"

typedef struct cJSON cJSON;

typedef struct cfg_reader {
    cJSON *root;
    char *path;     /* for messages */
    bool *consumed; /* per top-level field */
    int nfields;
    cs_status status;
    char *msg;
    size_t msg_size;
} cfg_reader;

/* Reads and parses path (at most 4 MiB). The reader keeps msg for later errors. */
cs_status cfg_open(cfg_reader *r, const char *path, char *msg, size_t msg_size);
/* The same for a config made in memory (json, NUL-terminated; NULL = read path);
 * path then only labels messages. */
cs_status cfg_open_src(cfg_reader *r, const char *path, const char *json, char *msg,
                       size_t msg_size);
void cfg_close(cfg_reader *r);

/* Fields absent or null take the default. Out-of-range values are errors naming the
 * field, the value and the range. */
int64_t cfg_int(cfg_reader *r, const char *key, int64_t def, int64_t lo, int64_t hi);
double cfg_float(cfg_reader *r, const char *key, double def, double lo, double hi);
bool cfg_bool(cfg_reader *r, const char *key, bool def);
/* Returns a string owned by the reader, or def. */
const char *cfg_string(cfg_reader *r, const char *key, const char *def);
/* One of `choices` (NULL-terminated); returns its index, or the index of def. */
int cfg_enum(cfg_reader *r, const char *key, const char *def, const char *const *choices);
/* An int or a list of ints. Returns the count written (1 for a scalar, broadcast by the
 * caller as it needs), 0 when absent/null; more than max entries is an error. */
int cfg_int_list(cfg_reader *r, const char *key, int64_t *out, int max, int64_t lo, int64_t hi);
/* A list of strings (pointers owned by the reader); count returned, 0 when absent. */
int cfg_string_list(cfg_reader *r, const char *key, const char **out, int max);
/* True when the field is present and not null. Does not consume it. */
bool cfg_has(cfg_reader *r, const char *key);

/* The field must be absent, null, or equal to the given value (what the engine does). */
void cfg_require_null(cfg_reader *r, const char *key);
void cfg_require_bool(cfg_reader *r, const char *key, bool value);
void cfg_require_string(cfg_reader *r, const char *key, const char *value);
void cfg_require_number(cfg_reader *r, const char *key, double value);

/* Fields that do not change inference (training settings, versions, ...). NULL-terminated. */
void cfg_ignore(cfg_reader *r, const char *const *keys);

/* Reports an error for the current config (used by parsers for cross-field checks). */
void cfg_fail(cfg_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fails on the first unconsumed field; returns the reader's status. */
cs_status cfg_finish(cfg_reader *r);

/* Reads a whole small file (at most max_bytes) into a NUL-terminated buffer. */
cs_status cs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *msg,
                       size_t msg_size);

#endif
