/* PNG encoding with libpng into a memory buffer, with optional tEXt chunks (the
 * generation parameters go in "parameters", the key other Stable Diffusion tools read).
 * Thread-safe: no shared state. */
#include "png_encode.h"

#include <png.h>
#include <setjmp.h>
#include <string.h>

typedef struct mem_sink {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} mem_sink;

static void sink_write(png_structp png, png_bytep bytes, png_size_t n) {
    mem_sink *s = png_get_io_ptr(png);
    if (s->failed) return;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) cap *= 2;
        uint8_t *d = realloc(s->data, cap);
        if (!d) {
            s->failed = true;
            return;
        }
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, bytes, n);
    s->len += n;
}

static void sink_flush(png_structp png) {
    (void)png;
}

cs_status png_encode_rgb8(const uint8_t *rgb, int64_t width, int64_t height,
                          const png_text_entry *texts, int ntexts, uint8_t **out, size_t *out_len,
                          char *msg, size_t msg_size) {
    *out = NULL;
    *out_len = 0;
    if (width <= 0 || height <= 0 || width > 65535 || height > 65535)
        return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "png: bad image size %lldx%lld",
                       (long long)width, (long long)height);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "png: out of memory");
    png_infop info = png_create_info_struct(png);
    /* volatile: modified between setjmp and a longjmp out of libpng. */
    mem_sink sink = {0};
    mem_sink *volatile sinkp = &sink;
    png_textp volatile ptexts = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(sinkp->data);
        free(ptexts);
        return cs_errf(CS_ERR_INTERNAL, msg, msg_size, "png: libpng failed to encode");
    }
    png_set_write_fn(png, sinkp, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ntexts > 0) {
        ptexts = calloc((size_t)ntexts, sizeof *ptexts);
        if (!ptexts) png_error(png, "out of memory");
        for (int i = 0; i < ntexts; i++) {
            /* tEXt is Latin-1 only; UTF-8 text (a prompt in any script) goes in iTXt,
             * which is what Pillow (and so A1111) writes and reads back. */
            bool ascii = true;
            for (const char *c = texts[i].text; *c; c++) ascii = ascii && (unsigned char)*c < 0x80;
            ptexts[i].compression = ascii ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
            ptexts[i].key = (png_charp)texts[i].key;
            ptexts[i].text = (png_charp)texts[i].text;
            ptexts[i].text_length = strlen(texts[i].text);
        }
        png_set_text(png, info, ptexts, ntexts);
    }
    png_write_info(png, info);
    for (int64_t y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)width * 3));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(ptexts);
    if (sink.failed) {
        free(sink.data);
        return cs_errf(CS_ERR_NOMEM, msg, msg_size, "png: out of memory");
    }
    *out = sink.data;
    *out_len = sink.len;
    return CS_OK;
}

void image_to_unit_hwc(const float *chw, int64_t height, int64_t width, float *hwc) {
    const int64_t hw = height * width;
    for (int64_t i = 0; i < hw; i++) {
        for (int ch = 0; ch < 3; ch++) {
            /* diffusers: (image / 2 + 0.5).clamp(0, 1) */
            float v = chw[ch * hw + i] / 2 + 0.5f;
            hwc[i * 3 + ch] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
}

void unit_to_rgb8(const float *v, int64_t n, uint8_t *rgb) {
    /* numpy_to_pil's (image * 255).round(): lrintf rounds half to even like numpy. */
    for (int64_t i = 0; i < n; i++) rgb[i] = (uint8_t)lrintf(v[i] * 255.0f);
}
