/* Standard base64 (RFC 4648, with padding), as the JSON APIs carry images. */
#ifndef CS_BASE64_H
#define CS_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* NUL-terminated encoding of d[0, n), malloc'd; NULL when out of memory. */
char *base64_encode(const uint8_t *d, size_t n);

#endif
