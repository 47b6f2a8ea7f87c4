/* PNG decoding for requests (see png_decode.h). */
#include "png_decode.h"

#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CHUNK_BYTES = 8 << 20 }; /* text / iCCP chunks beyond this are refused */

typedef struct reader {
    const uint8_t *data;
    size_t len, at;
    char why[160];
    char warn[160]; /* libpng's last warning: says why a header was refused */
} reader;

static cs_status fail(cs_status st, char *msg, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static cs_status fail(cs_status st, char *msg, size_t n, const char *fmt, ...) {
    if (msg && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, n, fmt, ap);
        va_end(ap);
    }
    return st;
}

static void on_error(png_structp png, png_const_charp text) {
    reader *r = png_get_error_ptr(png);
    snprintf(r->why, sizeof r->why, "%s", text);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp text) {
    reader *r = png_get_error_ptr(png);
    snprintf(r->warn, sizeof r->warn, "%s", text);
}

static void on_read(png_structp png, png_bytep out, size_t n) {
    reader *r = png_get_io_ptr(png);
    if (n > r->len - r->at) png_error(png, "the file is truncated");
    memcpy(out, r->data + r->at, n);
    r->at += n;
}

/* Every chunk's declared length must fit in the bytes that follow it. libpng allocates a
 * text chunk's buffer from the declared length before reading it, so a tiny file
 * declaring a 600 MB tEXt chunk would otherwise allocate 600 MB: with this walk no
 * allocation exceeds the input's own size. */
static cs_status check_chunk_lengths(const uint8_t *d, size_t len, const char *field, char *msg,
                                     size_t msg_size) {
    for (size_t at = 8; at + 8 <= len;) {
        const uint32_t n = (uint32_t)d[at] << 24 | (uint32_t)d[at + 1] << 16 |
                           (uint32_t)d[at + 2] << 8 | d[at + 3];
        if (n > 0x7fffffffu || n > len - at - 8 || len - at - 8 - n < 4)
            return fail(CS_ERR_INVALID_ARG, msg, msg_size,
                        "%s is not a valid PNG: the file is truncated or corrupt (the chunk "
                        "at byte %zu declares %u bytes but only %zu remain)",
                        field, at, (unsigned)n, len - at - 8);
        if (!memcmp(d + at + 4, "IEND", 4)) break;
        at += 12 + (size_t)n;
    }
    return CS_OK;
}

/* The decoder of both entry points: 3 channels (RGB, alpha dropped) or 4 (RGBA, a tRNS
 * chunk made alpha, opaque filler when the file has no transparency; *had_alpha says
 * whether it had any). */
static cs_status decode(const uint8_t *data, size_t len, int max_width, int max_height,
                        const char *field, int channels, uint8_t **rgb, int *width, int *height,
                        bool *had_alpha, char *msg, size_t msg_size) {
    *rgb = NULL;
    *width = *height = 0;
    if (len < 8 || png_sig_cmp(data, 0, 8) != 0)
        return fail(CS_ERR_INVALID_ARG, msg, msg_size, "%s is not a PNG file (bad signature)", field);
    cs_status pre = check_chunk_lengths(data, len, field, msg, msg_size);
    if (pre != CS_OK) return pre;
    reader r = {.data = data, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fail(CS_ERR_NOMEM, msg, msg_size, "out of memory decoding %s", field);
    }
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile cs_status st = CS_OK;
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (st != CS_OK) return st;
        return fail(CS_ERR_INVALID_ARG, msg, msg_size, "%s is not a valid PNG: %s%s%s%s", field,
                    r.why, r.warn[0] ? " (" : "", r.warn, r.warn[0] ? ")" : "");
    }
    png_set_read_fn(png, &r, on_read);
    png_set_user_limits(png, (png_uint_32)max_width, (png_uint_32)max_height);
    png_set_chunk_malloc_max(png, MAX_CHUNK_BYTES);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if (w < 1 || h < 1 || w > (png_uint_32)max_width || h > (png_uint_32)max_height) {
        snprintf(r.why, sizeof r.why, "%ux%u exceeds the largest size %dx%d", (unsigned)w,
                 (unsigned)h, max_width, max_height);
        png_error(png, r.why);
    }
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    const bool trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    if (had_alpha) *had_alpha = (color & PNG_COLOR_MASK_ALPHA) || trns;
    if (channels == 3 && (color & PNG_COLOR_MASK_ALPHA)) png_set_strip_alpha(png);
    if (channels == 4 && trns) png_set_tRNS_to_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (channels == 4 && !(color & PNG_COLOR_MASK_ALPHA) && !trns)
        png_set_filler(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * (size_t)channels)
        png_error(png, "unexpected row layout");
    pixels = malloc((size_t)w * h * (size_t)channels);
    rows = malloc((size_t)h * sizeof *rows);
    if (!pixels || !rows) {
        st = fail(CS_ERR_NOMEM, msg, msg_size, "out of memory decoding %s", field);
        png_error(png, "out of memory");
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * (size_t)channels;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *rgb = pixels;
    *width = (int)w;
    *height = (int)h;
    return CS_OK;
}

cs_status png_decode_rgb8(const uint8_t *data, size_t len, int max_width, int max_height,
                          const char *field, uint8_t **rgb, int *width, int *height, char *msg,
                          size_t msg_size) {
    return decode(data, len, max_width, max_height, field, 3, rgb, width, height, NULL, msg,
                  msg_size);
}

cs_status png_decode_alpha8(const uint8_t *data, size_t len, int max_width, int max_height,
                            const char *field, uint8_t **alpha, int *width, int *height,
                            bool *had_alpha, char *msg, size_t msg_size) {
    uint8_t *rgba = NULL;
    cs_status st = decode(data, len, max_width, max_height, field, 4, &rgba, width, height,
                          had_alpha, msg, msg_size);
    if (st != CS_OK) return st;
    const size_t n = (size_t)*width * (size_t)*height;
    for (size_t i = 0; i < n; i++) /* in place: reads run ahead of writes */
        rgba[i] = rgba[4 * i + 3];
    uint8_t *shrunk = realloc(rgba, n);
    *alpha = shrunk ? shrunk : rgba;
    return CS_OK;
}

void png_rgb8_to_luma(const uint8_t *rgb, int64_t pixels, uint8_t *gray) {
    for (int64_t i = 0; i < pixels; i++) {
        const uint32_t v = rgb[3 * i] * 19595u + rgb[3 * i + 1] * 38470u + rgb[3 * i + 2] * 7471u +
                           0x8000u;
        gray[i] = (uint8_t)(v >> 16);
    }
}
