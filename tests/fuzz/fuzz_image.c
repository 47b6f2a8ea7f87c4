/*
 * libFuzzer target for the image fields of requests: base64 text (strict RFC 4648) and
 * the PNG inside it, decoded to RGB8 within a 128x128 limit. The first byte picks the
 * input's kind: odd = raw PNG bytes (so the fuzzer reaches libpng's paths directly),
 * even = base64 text that is decoded first. Whatever decodes must round-trip through
 * base64_encode, and a decoded image must lie within the limits (a decompression bomb —
 * a small file declaring a huge size — is refused from its header, before allocating:
 * -rss_limit_mb and -malloc_limit_mb make a large allocation a finding).
 */
#include "fuzz_common.h"

#include "base64.h"
#include "png_decode.h"

#include <string.h>

enum { MAX_SIDE = 128 };

static void decode_png(const uint8_t *png, size_t len) {
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    char msg[256];
    msg[0] = '\0';
    cs_status st = png_decode_rgb8(png, len, MAX_SIDE, MAX_SIDE, "init_image", &rgb, &w, &h, msg,
                                   sizeof msg);
    if (st != CS_OK) {
        FUZZ_REQUIRE(rgb == NULL && msg[0] && memchr(msg, 0, sizeof msg));
        return;
    }
    FUZZ_REQUIRE(rgb && w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE);
    /* Every pixel byte is written: ASan/MSan-style use of the last byte. */
    volatile uint8_t last = rgb[(size_t)w * h * 3 - 1];
    (void)last;
    uint8_t *gray = malloc((size_t)w * h);
    FUZZ_REQUIRE(gray);
    png_rgb8_to_luma(rgb, (int64_t)w * h, gray);
    free(gray);
    free(rgb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1) {
        uint8_t *copy = malloc(size - 1 ? size - 1 : 1);
        if (!copy) return 0;
        memcpy(copy, data + 1, size - 1);
        decode_png(copy, size - 1);
        free(copy);
        return 0;
    }
    char *text = malloc(size - 1 ? size - 1 : 1);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    uint8_t *bin = NULL;
    size_t n = 0;
    char why[128];
    why[0] = '\0';
    if (base64_decode(text, size - 1, &bin, &n, why, sizeof why) == 0) {
        FUZZ_REQUIRE(n <= (size - 1) / 4 * 3);
        /* Strict decoding: each accepted text has exactly one meaning, so it re-encodes
         * to itself. */
        char *again = base64_encode(bin, n);
        FUZZ_REQUIRE(again && strlen(again) == size - 1 && !memcmp(again, text, size - 1));
        free(again);
        decode_png(bin, n);
        free(bin);
    } else {
        FUZZ_REQUIRE(bin == NULL && why[0] && memchr(why, 0, sizeof why));
    }
    free(text);
    return 0;
}
