/* cs_image_resize (engine/base/image_resize.c) on known values: a constant image stays
 * constant in every mode and direction; a 2x downscale averages pixel pairs (interior,
 * where the Lanczos taps are not cut by the border); a same-size resize is exact; crop
 * keeps the centre; fill pads by stretching the edge rows / columns as the A1111 web UI
 * does; bad arguments are refused without touching dst. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image_resize.h"

static void test_constant(void) {
    static const int sizes[][4] = {{40, 20, 32, 32}, {20, 40, 32, 32}, {17, 13, 64, 48},
                                   {64, 64, 7, 5},   {33, 31, 33, 31}, {8, 8, 8, 8}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int sw = sizes[t][0], sh = sizes[t][1], dw = sizes[t][2], dh = sizes[t][3];
        uint8_t *src = malloc((size_t)sw * sh * 3), *dst = malloc((size_t)dw * dh * 3);
        for (int i = 0; i < sw * sh; i++) src[3 * i] = 200, src[3 * i + 1] = 37, src[3 * i + 2] = 1;
        for (int mode = 0; mode < 3; mode++) {
            char msg[256];
            CHECK(cs_image_resize(src, sw, sh, 3, dst, dw, dh, mode, msg, sizeof msg) == CS_OK);
            /* Fill may leave one black row/column when the parities differ (as the web UI
             * does); these sizes do not. */
            int bad = 0;
            for (int i = 0; i < dw * dh; i++)
                bad += dst[3 * i] != 200 || dst[3 * i + 1] != 37 || dst[3 * i + 2] != 1;
            if (bad) fprintf(stderr, "constant %dx%d -> %dx%d mode %d: %d pixels changed\n", sw,
                             sh, dw, dh, mode, bad);
            CHECK_EQ_INT(bad, 0);
        }
        free(src);
        free(dst);
    }
}

static void test_downscale_averages(void) {
    enum { SW = 32, SH = 4, DW = 16, DH = 2 };
    uint8_t src[SW * SH], dst[DW * DH];
    for (int y = 0; y < SH; y++)
        for (int x = 0; x < SW; x++) src[y * SW + x] = (uint8_t)(7 * x + 3); /* a ramp */
    CHECK(cs_image_resize(src, SW, SH, 1, dst, DW, DH, CS_RESIZE_STRETCH, NULL, 0) == CS_OK);
    for (int x = 3; x < DW - 3; x++) /* interior: the taps are whole */
        CHECK_NEAR(dst[x], (src[2 * x] + src[2 * x + 1]) / 2.0, 0.51);
    /* Alternating columns average to mid grey. */
    for (int y = 0; y < SH; y++)
        for (int x = 0; x < SW; x++) src[y * SW + x] = x % 2 ? 255 : 0;
    CHECK(cs_image_resize(src, SW, SH, 1, dst, DW, DH, CS_RESIZE_STRETCH, NULL, 0) == CS_OK);
    for (int x = 3; x < DW - 3; x++) CHECK_NEAR(dst[DW + x], 127.5, 0.51);
}

static void test_same_size_exact(void) {
    enum { S = 9 };
    uint8_t src[S * S * 3], dst[S * S * 3];
    for (int i = 0; i < S * S * 3; i++) src[i] = (uint8_t)(i * 37 + 11);
    CHECK(cs_image_resize(src, S, S, 3, dst, S, S, CS_RESIZE_STRETCH, NULL, 0) == CS_OK);
    CHECK(memcmp(src, dst, sizeof src) == 0);
}

/* 64x32 with columns 0-15 red, 16-47 green, 48-63 blue: cropping to 32x32 keeps the green
 * centre (the image is already 32 high, so it is not scaled). */
static void test_crop_centred(void) {
    enum { SW = 64, SH = 32, D = 32 };
    static uint8_t src[SW * SH * 3], dst[D * D * 3];
    for (int y = 0; y < SH; y++)
        for (int x = 0; x < SW; x++) {
            uint8_t *p = src + (y * SW + x) * 3;
            p[0] = x < 16 ? 255 : 0, p[1] = x >= 16 && x < 48 ? 255 : 0, p[2] = x >= 48 ? 255 : 0;
        }
    CHECK(cs_image_resize(src, SW, SH, 3, dst, D, D, CS_RESIZE_CROP, NULL, 0) == CS_OK);
    int green = 0;
    for (int i = 0; i < D * D; i++) green += dst[3 * i] == 0 && dst[3 * i + 1] == 255 && !dst[3 * i + 2];
    CHECK_EQ_INT(green, D * D);
    /* Stretch instead squeezes all three bands in. */
    CHECK(cs_image_resize(src, SW, SH, 3, dst, D, D, CS_RESIZE_STRETCH, NULL, 0) == CS_OK);
    CHECK(dst[0] == 255 && dst[(D - 1) * 3 + 2] == 255);
}

/* 32x16 with 3 red rows on top, 3 blue at the bottom and grey between, filled into 32x32:
 * the image sits in rows 8..23, rows 0..7 repeat its top edge (red), 24..31 its bottom
 * edge (blue). And the transpose for the left/right bands. */
static void test_fill_stretches_edges(void) {
    enum { W = 32, H = 16, D = 32 };
    static uint8_t src[W * H * 3], dst[D * D * 3], srct[H * W * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = src + (y * W + x) * 3;
            const uint8_t v[3] = {y < 3 ? 255 : y >= H - 3 ? 0 : 128, y < 3 || y >= H - 3 ? 0 : 128,
                                  y >= H - 3 ? 255 : y < 3 ? 0 : 128};
            memcpy(p, v, 3);
            memcpy(srct + (x * H + y) * 3, v, 3); /* transposed: 16 wide, 32 high */
        }
    CHECK(cs_image_resize(src, W, H, 3, dst, D, D, CS_RESIZE_FILL, NULL, 0) == CS_OK);
    for (int y = 0; y < D; y++) {
        const uint8_t *p = dst + (y * D + 5) * 3;
        if (y < 8 + 3) CHECK(p[0] == 255 && p[1] == 0 && p[2] == 0);
        else if (y >= 24 - 3) CHECK(p[0] == 0 && p[1] == 0 && p[2] == 255);
        else CHECK(p[0] == 128 && p[1] == 128 && p[2] == 128);
    }
    CHECK(cs_image_resize(srct, H, W, 3, dst, D, D, CS_RESIZE_FILL, NULL, 0) == CS_OK);
    for (int x = 0; x < D; x++) {
        const uint8_t *p = dst + (7 * D + x) * 3;
        if (x < 8 + 3) CHECK(p[0] == 255 && p[2] == 0);
        else if (x >= 24 - 3) CHECK(p[0] == 0 && p[2] == 255);
        else CHECK(p[0] == 128);
    }
}

static void test_bad_arguments(void) {
    uint8_t src[4 * 4 * 3] = {0}, dst[4 * 4 * 3];
    memset(dst, 0xAB, sizeof dst);
    char msg[256];
    CHECK(cs_image_resize(src, 4, 4, 3, dst, 4, 4, 3, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "mode must be");
    CHECK(cs_image_resize(src, 4, 4, 5, dst, 4, 4, 0, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "channels");
    CHECK(cs_image_resize(src, 0, 4, 3, dst, 4, 4, 0, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(msg, "sizes");
    CHECK(cs_image_resize(src, 4, 4, 3, dst, 4, 20000, 0, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    CHECK(cs_image_resize(NULL, 4, 4, 3, dst, 4, 4, 0, msg, sizeof msg) == CS_ERR_INVALID_ARG);
    for (size_t i = 0; i < sizeof dst; i++) CHECK(dst[i] == 0xAB);
}

int main(void) {
    test_constant();
    test_downscale_averages();
    test_same_size_exact();
    test_crop_centred();
    test_fill_stretches_edges();
    test_bad_arguments();
    CHECK_DONE();
}
