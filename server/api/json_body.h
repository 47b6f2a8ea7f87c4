/*
 * Strict JSON request bodies, shared by every API dialect (native, A1111, OpenAI).
 *
 * cJSON does the parsing, but it is lenient where a server must not be: it copies invalid
 * UTF-8, truncates a string at an escaped NUL (\u0000), accepts raw control characters in
 * strings, and keeps numbers only as doubles (a 64-bit seed above 2^53 would be rounded).
 * So a small scanner also walks the raw body: it finds the raw text of every top-level
 * member (the i-th member is cJSON's i-th child: both keep document order), which gives
 * the exact digits of big integers and lets an encoding error name the field it is in.
 *
 * Errors go to a request_error (code, field, message); each dialect renders it in its
 * own shape.
 *
 * Threads: any; nothing here keeps state.
 */
#ifndef CS_JSON_BODY_H
#define CS_JSON_BODY_H

#include <cfgserve/cfgserve.h>
#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stddef.h>

enum { JSON_BODY_MAX_MEMBERS = 160 };

typedef struct request_error {
    const char *code; /* "invalid_json", "invalid_parameter", "not_found" or "internal" */
    char field[64];   /* "" when the error is not about one field */
    char message[320];
} request_error;

/* Fills e and returns CS_ERR_INVALID_ARG. */
cs_status request_fail(request_error *e, const char *code, const char *field, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

typedef struct json_body {
    cJSON *root; /* the top-level object */
    const char *text;
    struct {
        size_t key_start, value_start, value_end;
    } m[JSON_BODY_MAX_MEMBERS]; /* raw span of member k = the k-th child of root */
    int n;
} json_body;

/* Parses body[0, len): non-empty, no NUL byte, one JSON object with nothing after it,
 * valid UTF-8, no raw control characters or \u0000 in strings, at most
 * JSON_BODY_MAX_MEMBERS members, no member given twice. */
cs_status json_body_parse(const char *body, size_t len, json_body *jb, request_error *e);
void json_body_free(json_body *jb);
/* The raw text of the value of the k-th member. */
const char *json_body_raw(const json_body *jb, int k, size_t *len);

/* Typed getters: a wrong type or range fails naming field f and showing the value. */
cs_status json_get_number(const cJSON *v, const char *f, double *out, request_error *e);
cs_status json_get_int(const cJSON *v, const char *f, int *out, request_error *e);
cs_status json_get_bool(const cJSON *v, const char *f, bool *out, request_error *e);
/* A string copy (*out malloc'd); null leaves *out untouched when nullable. */
cs_status json_get_string(const cJSON *v, const char *f, bool nullable, char **out,
                          request_error *e);
/* A short rendering of a value for messages. */
void json_value_text(const cJSON *v, char *buf, size_t n);

#endif
