/*
 * Strict JSON for untrusted files (safetensors headers, config.json).
 *
 * cJSON is lenient in ways that matter for files we must not misread: it stops at the
 * end of the first value and ignores whatever follows, it takes raw control bytes and
 * invalid UTF-8 inside strings, and it keeps a repeated object key as a second child
 * (lookups then silently see only the first). These helpers close those gaps.
 *
 * Stateless and thread-safe (no use of cJSON_GetErrorPtr, which is a global).
 */
#ifndef CS_JSON_STRICT_H
#define CS_JSON_STRICT_H

#include "common.h"

typedef struct cJSON cJSON;

/* Parses text[0, len) (need not be NUL-terminated) as one JSON value followed only by
 * whitespace (space, tab, CR, LF). Rejects invalid UTF-8 and control bytes other than
 * that whitespace. On failure returns NULL and writes the reason, with its byte offset,
 * to why (e.g. "invalid JSON at byte 12"). */
cJSON *json_parse_strict(const char *text, size_t len, char *why, size_t why_size);

/* Checks that no key appears twice among obj's direct children (O(n log n)).
 * CS_OK: all unique; CS_ERR_FORMAT: *dup names a repeated key (borrowed from obj);
 * CS_ERR_NOMEM. */
cs_status json_unique_keys(const cJSON *obj, const char **dup);

#endif
