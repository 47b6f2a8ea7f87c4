/* Base64 (see base64.h). */
#include "base64.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int sym(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len, char *why,
                  size_t why_size) {
    *out = NULL;
    *out_len = 0;
    if (len == 0 || len % 4 != 0) {
        snprintf(why, why_size, "base64 length %zu is not a positive multiple of 4", len);
        return -1;
    }
    size_t pad = text[len - 1] == '=' ? (text[len - 2] == '=' ? 2 : 1) : 0;
    uint8_t *buf = malloc(len / 4 * 3);
    if (!buf) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    size_t at = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        const bool last = i + 4 == len;
        for (int k = 0; k < 4; k++) {
            const unsigned char c = (unsigned char)text[i + k];
            v[k] = last && k >= 4 - (int)pad ? 0 : sym(c);
            if (v[k] < 0) {
                if (c == '=')
                    snprintf(why, why_size, "'=' at %zu is not at the end of the base64 text",
                             i + k);
                else if (c >= 0x20 && c < 0x7f)
                    snprintf(why, why_size, "character '%c' at %zu is not base64", c, i + k);
                else
                    snprintf(why, why_size, "byte 0x%02x at %zu is not base64", c, i + k);
                free(buf);
                return -1;
            }
        }
        const uint32_t word = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                              (uint32_t)v[3];
        if (last && ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))) {
            snprintf(why, why_size, "the last base64 group has non-zero unused bits");
            free(buf);
            return -1;
        }
        buf[at++] = (uint8_t)(word >> 16);
        if (!last || pad < 2) buf[at++] = (uint8_t)(word >> 8);
        if (!last || pad < 1) buf[at++] = (uint8_t)word;
    }
    *out = buf;
    *out_len = at;
    return 0;
}

char *base64_encode(const uint8_t *d, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = A[v >> 18];
        *o++ = A[v >> 12 & 63];
        *o++ = A[v >> 6 & 63];
        *o++ = A[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *o++ = A[v >> 18];
        *o++ = A[v >> 12 & 63];
        *o++ = i + 1 < n ? A[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}
