/* Reading a PNG file into 8-bit RGB for the evaluator and its tests (libpng's simplified
 * API). Thread-safe: no shared state. */
#ifndef CS_EVAL_PNG_READ_H
#define CS_EVAL_PNG_READ_H

#include <stddef.h>
#include <stdint.h>

/* Reads an 8-bit PNG (gray, gray+alpha, palette, RGB or RGBA; alpha is composited onto
 * black) into *rgb: *height rows of *width x 3 bytes, malloc'd, owned by the caller (free()).
 * Returns 0, or -1 with *rgb = NULL and a message naming the file and the reason in msg.
 * 16-bit files and images over 16384 pixels a side are refused. */
int png_read_rgb8(const char *path, uint8_t **rgb, int *width, int *height, char *msg,
                  size_t msg_size);

#endif
