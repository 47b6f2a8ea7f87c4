/*
 * Base64 (RFC 4648 §4, standard alphabet, with padding), as the JSON APIs carry images.
 * Decoding is strict for request fields: the length must be a multiple of 4, '=' may only
 * pad the end, the unused bits of the last symbol must be zero, and no other character
 * (not even whitespace) is allowed, so every accepted text has exactly one meaning.
 * Threads: any; no state.
 */
#ifndef CS_BASE64_H
#define CS_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* NUL-terminated encoding of d[0, n), malloc'd; NULL when out of memory. */
char *base64_encode(const uint8_t *d, size_t n);

/* Decodes text[0..len) into a malloc'd buffer (*out, *out_len). Returns 0, or -1 with a
 * reason in why (e.g. "character '#' at 17 is not base64"); *out is NULL on failure. */
int base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len, char *why,
                  size_t why_size);

#endif
