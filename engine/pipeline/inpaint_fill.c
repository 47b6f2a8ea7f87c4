/* Masked-content fills for inpainting (inpaint_fill.h). */
#include "inpaint_fill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cfgserve/cfgserve.h"

/* PIL's box width for a Gaussian of std `sigma` made of `passes` box passes: an integer
 * half-width l plus a fraction a of the next pixel on each side (the variance of the
 * passes adds up to sigma²). */
static void box_radius(double sigma, int passes, int64_t *l, double *a) {
    const double s2 = sigma * sigma / passes, big = sqrt(12.0 * s2 + 1.0);
    const double li = floor((big - 1.0) / 2.0);
    *l = (int64_t)li;
    *a = (2 * li + 1) * (li * (li + 1) - 3 * s2) / (6 * (s2 - (li + 1) * (li + 1)));
}

/* One box pass along a line of n values `stride` apart (4 interleaved channels), edges
 * extended; tmp holds n·4 floats. */
static void box_line(float *v, int64_t n, int64_t stride, int64_t l, double a, float *tmp) {
    const double norm = 1.0 / (2 * l + 1 + 2 * a);
    for (int64_t ch = 0; ch < 4; ch++) {
#define AT(i) ((double)v[((i) < 0 ? 0 : (i) >= n ? n - 1 : (i)) * stride + ch])
        double sum = 0;
        for (int64_t d = -l; d <= l; d++) sum += AT(d);
        for (int64_t i = 0; i < n; i++) {
            tmp[i * 4 + ch] = (float)((sum + a * (AT(i - l - 1) + AT(i + l + 1))) * norm);
            sum += AT(i + l + 1) - AT(i - l);
        }
#undef AT
    }
    for (int64_t i = 0; i < n; i++) memcpy(&v[i * stride], &tmp[i * 4], 4 * sizeof *v);
}

/* Gaussian blur of std `sigma` over premultiplied RGBA floats (w × h × 4) in place. */
static void blur(float *px, int64_t w, int64_t h, double sigma, float *tmp) {
    if (sigma <= 0) return;
    int64_t l;
    double a;
    box_radius(sigma, 3, &l, &a);
    for (int pass = 0; pass < 3; pass++) {
        for (int64_t y = 0; y < h; y++) box_line(px + y * w * 4, w, 4, l, a, tmp);
        for (int64_t x = 0; x < w; x++) box_line(px + x * 4, h, w * 4, l, a, tmp);
    }
}

bool inpaint_fill_image(const uint8_t *rgb, const uint8_t *mask, int width, int height,
                        uint8_t *out) {
    static const struct {
        double radius;
        int repeats;
    } k_layers[] = {{256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}};
    const int64_t n = (int64_t)width * height, longest = width > height ? width : height;
    float *sharp = malloc((size_t)n * 4 * sizeof *sharp), *layer = malloc((size_t)n * 4 * sizeof *layer);
    float *acc = calloc((size_t)n * 4, sizeof *acc), *tmp = malloc((size_t)longest * 4 * sizeof *tmp);
    const bool ok = sharp && layer && acc && tmp;
    if (ok) {
        for (int64_t q = 0; q < n; q++) { /* premultiplied: colour · coverage, coverage */
            const float cover = 1.0f - mask[q] / 255.0f;
            for (int c = 0; c < 3; c++) sharp[q * 4 + c] = rgb[q * 3 + c] / 255.0f * cover;
            sharp[q * 4 + 3] = cover;
        }
        for (size_t i = 0; i < sizeof k_layers / sizeof *k_layers; i++) {
            memcpy(layer, sharp, (size_t)n * 4 * sizeof *layer);
            blur(layer, width, height, k_layers[i].radius, tmp);
            for (int r = 0; r < k_layers[i].repeats; r++)
                for (int64_t q = 0; q < n; q++) { /* acc = layer over acc (premultiplied) */
                    const float keep = 1.0f - layer[q * 4 + 3];
                    for (int c = 0; c < 4; c++) acc[q * 4 + c] = layer[q * 4 + c] + acc[q * 4 + c] * keep;
                }
        }
        for (int64_t q = 0; q < n; q++) {
            const float cover = acc[q * 4 + 3];
            for (int c = 0; c < 3; c++) {
                const float v = cover > 0 ? acc[q * 4 + c] / cover * 255.0f : 0.0f;
                out[q * 3 + c] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrintf(v));
            }
        }
    }
    free(sharp), free(layer), free(acc), free(tmp);
    return ok;
}

void inpaint_fill_latents(int fill, float *init, const float *noise, const float *mask,
                          int64_t channels, int64_t cells) {
    if (fill != CS_FILL_LATENT_NOISE && fill != CS_FILL_LATENT_NOTHING) return;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t q = 0; q < cells; q++) {
            const int64_t k = c * cells + q;
            if (mask[q] > 0) init[k] = fill == CS_FILL_LATENT_NOISE ? noise[k] : 0.0f;
        }
}
