/* PNG file -> 8-bit RGB with libpng's simplified API, which expands palettes and gray,
 * and composites alpha, so callers see one layout whatever the encoder chose.
 * Owns nothing past the call; thread-safe. */
#include "png_read.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far above any image the evaluator sees, and small enough that width*height*3 cannot
 * overflow: a corrupt header must not make us allocate gigabytes. */
#define PNG_READ_MAX_SIDE 16384

int png_read_rgb8(const char *path, uint8_t **rgb, int *width, int *height, char *msg,
                  size_t msg_size) {
    png_image img;
    uint8_t *buf = NULL;

    *rgb = NULL;
    *width = *height = 0;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        snprintf(msg, msg_size, "%s: cannot read PNG header: %s", path, img.message);
        goto fail;
    }
    /* The simplified API marks 16-bit files as linear and would gamma-convert them; the
     * images we judge are 8-bit sRGB, so anything else is refused rather than altered. */
    if (img.format & PNG_FORMAT_FLAG_LINEAR) {
        snprintf(msg, msg_size, "%s: 16-bit PNG not supported (8-bit expected)", path);
        goto fail;
    }
    if (img.width == 0 || img.height == 0 || img.width > PNG_READ_MAX_SIDE ||
        img.height > PNG_READ_MAX_SIDE) {
        snprintf(msg, msg_size, "%s: image size %ux%u outside 1..%d", path, (unsigned)img.width,
                 (unsigned)img.height, PNG_READ_MAX_SIDE);
        goto fail;
    }
    img.format = PNG_FORMAT_RGB;
    size_t n = (size_t)img.width * img.height * 3;
    /* Zeroed because, without a background colour, libpng composites alpha onto the
     * buffer's contents: transparent pixels come out black. */
    buf = calloc(n, 1);
    if (!buf) {
        snprintf(msg, msg_size, "%s: out of memory for %zu bytes", path, n);
        goto fail;
    }
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        snprintf(msg, msg_size, "%s: cannot decode PNG: %s", path, img.message);
        goto fail;
    }
    *rgb = buf;
    *width = (int)img.width;
    *height = (int)img.height;
    return 0;

fail:
    png_image_free(&img); /* a no-op once finish_read has run or when begin failed */
    free(buf);
    return -1;
}
