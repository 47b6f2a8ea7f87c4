/*
 * PNG files from requests, decoded with libpng into 8-bit RGB. Untrusted input: the
 * header's size is checked against the caller's limits before any pixel memory is
 * allocated (decompression bombs), ancillary chunks are capped, and a truncated or
 * corrupt file is an error naming the request field. Normalisation follows Pillow's
 * convert("RGB") / convert("L"), which diffusers' pipelines apply: palette and gray
 * expanded, 16-bit samples keep their high byte, alpha dropped.
 *
 * Threads: any; no shared state.
 */
#ifndef CS_PNG_DECODE_H
#define CS_PNG_DECODE_H

#include <cfgserve/cfgserve.h>

#include <stdbool.h>

/* Decodes png[0..len) into *rgb (malloc'd, height rows of width*3 bytes). Images wider
 * than max_width or taller than max_height are refused; `field` names the input in msg. */
cs_status png_decode_rgb8(const uint8_t *png, size_t len, int max_width, int max_height,
                          const char *field, uint8_t **rgb, int *width, int *height, char *msg,
                          size_t msg_size);

/* Decodes only the alpha channel into *alpha (malloc'd, width*height bytes): a tRNS chunk
 * counts as alpha, and a file without transparency decodes as opaque (255) with
 * *had_alpha false. Same limits as png_decode_rgb8. */
cs_status png_decode_alpha8(const uint8_t *png, size_t len, int max_width, int max_height,
                            const char *field, uint8_t **alpha, int *width, int *height,
                            bool *had_alpha, char *msg, size_t msg_size);

/* Pillow's RGB -> L: (19595·R + 38470·G + 7471·B + 0x8000) >> 16 per pixel. */
void png_rgb8_to_luma(const uint8_t *rgb, int64_t pixels, uint8_t *gray);

#endif
