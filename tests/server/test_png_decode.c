/* png_decode: colour types and depths normalised to RGB8 as Pillow's convert("RGB") does,
 * luminance as convert("L"), and hostile files (too large, truncated, not a PNG, corrupt)
 * refused with a message naming the field. */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "png_decode.h"

/* CRC-32 of PNG chunks (ISO 3309), bit by bit: tests only. */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static void on_write(png_structp png, png_bytep data, size_t n) {
    membuf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void on_flush(png_structp png) { (void)png; }

/* A w×h PNG of the given type/depth whose rows are `rows` (rowbytes each). */
static membuf encode(int w, int h, int depth, int color, const uint8_t *rows, size_t rowbytes,
                     const png_color *palette, int npal) {
    membuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) abort();
    png_set_write_fn(png, &b, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npal);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rows + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return b;
}

static uint8_t *decode_ok(const membuf *b, int want_w, int want_h) {
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    char msg[256] = "";
    cs_status st = png_decode_rgb8(b->p, b->len, 64, 64, "init_image", &rgb, &w, &h, msg, sizeof msg);
    if (st != CS_OK) fprintf(stderr, "decode: %s\n", msg);
    CHECK(st == CS_OK);
    CHECK_EQ_INT(w, want_w);
    CHECK_EQ_INT(h, want_h);
    return rgb;
}

static void decode_fails(const uint8_t *p, size_t len, int max, const char *text) {
    uint8_t *rgb = (uint8_t *)1;
    int w, h;
    char msg[256] = "";
    CHECK(png_decode_rgb8(p, len, max, max, "mask", &rgb, &w, &h, msg, sizeof msg) != CS_OK);
    CHECK(rgb == NULL);
    CHECK_STR_CONTAINS(msg, "mask");
    CHECK_STR_CONTAINS(msg, text);
}

int main(void) {
    /* palette 2×1: indices 1, 0 */
    const png_color pal[2] = {{10, 20, 30}, {200, 100, 50}};
    const uint8_t idx[2] = {1, 0};
    membuf b = encode(2, 1, 8, PNG_COLOR_TYPE_PALETTE, idx, 2, pal, 2);
    uint8_t *rgb = decode_ok(&b, 2, 1);
    const uint8_t want_pal[6] = {200, 100, 50, 10, 20, 30};
    CHECK(rgb && memcmp(rgb, want_pal, 6) == 0);
    free(rgb);
    free(b.p);
    /* 16-bit RGB: the high byte of each sample */
    const uint8_t rgb16[12] = {0x12, 0x34, 0xab, 0xcd, 0xff, 0xff, 0x00, 0x01, 0x80, 0x00, 0x7f, 0xff};
    b = encode(2, 1, 16, PNG_COLOR_TYPE_RGB, rgb16, 12, NULL, 0);
    rgb = decode_ok(&b, 2, 1);
    const uint8_t want16[6] = {0x12, 0xab, 0xff, 0x00, 0x80, 0x7f};
    CHECK(rgb && memcmp(rgb, want16, 6) == 0);
    free(rgb);
    free(b.p);
    /* gray + alpha: gray replicated, alpha dropped (not composited) */
    const uint8_t ga[4] = {77, 0, 200, 128};
    b = encode(2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga, 4, NULL, 0);
    rgb = decode_ok(&b, 2, 1);
    const uint8_t want_ga[6] = {77, 77, 77, 200, 200, 200};
    CHECK(rgb && memcmp(rgb, want_ga, 6) == 0);
    uint8_t gray[2];
    if (rgb) png_rgb8_to_luma(rgb, 2, gray);
    CHECK(gray[0] == 77 && gray[1] == 200); /* L of a gray pixel is itself */
    free(rgb);
    free(b.p);
    /* 1-bit gray */
    const uint8_t bits[1] = {0x80};
    b = encode(2, 1, 1, PNG_COLOR_TYPE_GRAY, bits, 1, NULL, 0);
    rgb = decode_ok(&b, 2, 1);
    CHECK(rgb && rgb[0] == 255 && rgb[3] == 0);
    free(rgb);
    const uint8_t px[3] = {255, 0, 0};
    png_rgb8_to_luma(px, 1, gray);
    CHECK_EQ_INT(gray[0], 76); /* Pillow: (255·19595 + 0x8000) >> 16 */
    /* truncated, not a PNG, too large */
    decode_fails(b.p, b.len / 2, 64, "truncated");
    decode_fails((const uint8_t *)"GIF89a....", 10, 64, "not a PNG");
    decode_fails(b.p, b.len, 1, "exceeds");
    /* a decompression bomb: a 100000×100000 header (valid CRC) refused before allocation */
    uint8_t *bomb = malloc(b.len);
    memcpy(bomb, b.p, b.len);
    const uint32_t big = 100000;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) bomb[16 + 4 * k + i] = (uint8_t)(big >> (24 - 8 * i));
    const uint32_t crc = crc32_png(bomb + 12, 17); /* "IHDR" + 13 data bytes */
    for (int i = 0; i < 4; i++) bomb[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    decode_fails(bomb, b.len, 4096, "exceeds");
    /* a text chunk declaring 688 MB in an 80-byte file: refused from the chunk lengths
     * (libpng would allocate the declared size before finding the file short) */
    uint8_t *text_bomb = malloc(b.len + 16);
    memcpy(text_bomb, b.p, 33); /* signature + IHDR */
    memcpy(text_bomb + 33, "\x29\x00\x00\x04tEXta\0b\0", 12);
    memcpy(text_bomb + 45, b.p + 33, b.len - 33);
    decode_fails(text_bomb, b.len + 12, 64, "declares 687865860 bytes");
    free(text_bomb);
    /* a corrupt data stream */
    memcpy(bomb, b.p, b.len);
    bomb[b.len - 20] ^= 0xff;
    decode_fails(bomb, b.len, 64, "not a valid PNG");
    free(bomb);
    free(b.p);
    CHECK_DONE();
}
