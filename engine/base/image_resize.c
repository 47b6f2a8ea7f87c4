/* Antialiased resizing and the web UI's resize modes (see image_resize.h). */
#include "image_resize.h"

#include <math.h>
#include <string.h>

enum { MAX_SIDE = 16384 };

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos3(double x) {
    return x > -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0;
}

/* One axis of a resample: output sample o reads taps first[o] .. first[o] + count[o] - 1
 * of the input with weights w[o · max_taps + k] (summing to 1). */
typedef struct axis_taps {
    int *first, *count;
    float *w;
    int max_taps;
} axis_taps;

static void taps_free(axis_taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
}

/* Pillow's precompute_coeffs: the source box [b0, b1) of an input of `in` samples onto
 * `out` samples. A zero-width box (b0 == b1) samples the edge there, which is how the
 * web UI stretches an image's outer row across a band. */
static bool taps_make(axis_taps *t, int in, double b0, double b1, int out) {
    const double scale = (b1 - b0) / out, filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 3.0 * filterscale;
    t->max_taps = (int)ceil(support) * 2 + 1;
    t->first = cs_malloc((size_t)out * sizeof *t->first);
    t->count = cs_malloc((size_t)out * sizeof *t->count);
    t->w = cs_malloc((size_t)out * (size_t)t->max_taps * sizeof *t->w);
    if (!t->first || !t->count || !t->w) return false;
    for (int o = 0; o < out; o++) {
        const double center = b0 + (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > t->max_taps) hi = lo + t->max_taps;
        float *w = t->w + (size_t)o * (size_t)t->max_taps;
        double total = 0.0;
        for (int k = lo; k < hi; k++) total += lanczos3((k - center + 0.5) / filterscale);
        for (int k = lo; k < hi; k++)
            w[k - lo] = total != 0.0 ? (float)(lanczos3((k - center + 0.5) / filterscale) / total)
                                     : 0.0f;
        t->first[o] = lo;
        t->count[o] = hi - lo;
    }
    return true;
}

static uint8_t to_u8(float v) {
    return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)lrintf(v);
}

/* src (sh rows of sw·ch) restricted to the box, resampled to dw × dh, written at (dx, dy)
 * of a canvas of cw × chh; parts outside the canvas are dropped (the web UI's paste). */
static cs_status resample_box(const uint8_t *src, int sw, int sh, int ch, const double box[4],
                              int dw, int dh, uint8_t *canvas, int cw, int chh, int dx, int dy) {
    axis_taps tx = {0}, ty = {0};
    float *tmp = NULL;
    cs_status st = CS_ERR_NOMEM;
    if (!taps_make(&tx, sw, box[0], box[2], dw) || !taps_make(&ty, sh, box[1], box[3], dh))
        goto done;
    /* Horizontal pass over the rows the vertical taps read. */
    int y0 = sh, y1 = 0;
    for (int o = 0; o < dh; o++) {
        if (ty.count[o] == 0) continue;
        if (ty.first[o] < y0) y0 = ty.first[o];
        if (ty.first[o] + ty.count[o] > y1) y1 = ty.first[o] + ty.count[o];
    }
    if (y1 <= y0) y0 = y1 = 0;
    tmp = cs_malloc(((size_t)(y1 - y0) * (size_t)dw * (size_t)ch + 1) * sizeof *tmp);
    if (!tmp) goto done;
    for (int y = y0; y < y1; y++)
        for (int o = 0; o < dw; o++) {
            const float *w = tx.w + (size_t)o * (size_t)tx.max_taps;
            for (int c = 0; c < ch; c++) {
                float acc = 0.0f;
                for (int k = 0; k < tx.count[o]; k++)
                    acc += w[k] * src[((size_t)y * (size_t)sw + (size_t)(tx.first[o] + k)) * ch + c];
                tmp[((size_t)(y - y0) * (size_t)dw + (size_t)o) * ch + c] = acc;
            }
        }
    for (int oy = 0; oy < dh; oy++) {
        const int cy = dy + oy;
        if (cy < 0 || cy >= chh) continue;
        const float *w = ty.w + (size_t)oy * (size_t)ty.max_taps;
        for (int ox = 0; ox < dw; ox++) {
            const int cx = dx + ox;
            if (cx < 0 || cx >= cw) continue;
            for (int c = 0; c < ch; c++) {
                float acc = 0.0f;
                for (int k = 0; k < ty.count[oy]; k++)
                    acc += w[k] * tmp[((size_t)(ty.first[oy] + k - y0) * (size_t)dw + (size_t)ox) *
                                          ch + c];
                canvas[((size_t)cy * (size_t)cw + (size_t)cx) * ch + c] = to_u8(acc);
            }
        }
    }
    st = CS_OK;
done:
    free(tmp);
    taps_free(&tx);
    taps_free(&ty);
    return st;
}

cs_status image_resize_stretch(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw,
                               int dh) {
    const double box[4] = {0, 0, sw, sh};
    return resample_box(src, sw, sh, ch, box, dw, dh, dst, dw, dh, 0, 0);
}

/* Mode 1 or 2: the aspect-kept size (rw × rh) of the resized image, as the web UI
 * computes it (Python's float ratio comparison and floor division). */
static void kept_size(int mode, int sw, int sh, int dw, int dh, int *rw, int *rh) {
    const double ratio = (double)dw / dh, src_ratio = (double)sw / sh;
    const bool full_w = mode == CS_RESIZE_CROP ? ratio > src_ratio : ratio < src_ratio;
    const bool full_h = mode == CS_RESIZE_CROP ? ratio <= src_ratio : ratio >= src_ratio;
    *rw = full_w ? dw : (int)((int64_t)sw * dh / sh);
    *rh = full_h ? dh : (int)((int64_t)sh * dw / sw);
    if (*rw < 1) *rw = 1;
    if (*rh < 1) *rh = 1;
}

/* Mode 2's bands: each edge row (column) of the resized image r (rw × rh) stretched over
 * the space beside it. */
static cs_status fill_bands(int sw, int sh, const uint8_t *r, int rw, int rh, int ch, uint8_t *dst,
                            int dw, int dh) {
    const double ratio = (double)dw / dh, src_ratio = (double)sw / sh;
    cs_status st = CS_OK;
    if (ratio < src_ratio) {
        const int fill = dh / 2 - rh / 2;
        if (fill <= 0) return CS_OK;
        const double top[4] = {0, 0, dw, 0}, bottom[4] = {0, rh, dw, rh};
        st = resample_box(r, rw, rh, ch, top, dw, fill, dst, dw, dh, 0, 0);
        if (st == CS_OK)
            st = resample_box(r, rw, rh, ch, bottom, dw, fill, dst, dw, dh, 0, fill + rh);
    } else if (ratio > src_ratio) {
        const int fill = dw / 2 - rw / 2;
        if (fill <= 0) return CS_OK;
        const double left[4] = {0, 0, 0, dh}, right[4] = {rw, 0, rw, dh};
        st = resample_box(r, rw, rh, ch, left, fill, dh, dst, dw, dh, 0, 0);
        if (st == CS_OK)
            st = resample_box(r, rw, rh, ch, right, fill, dh, dst, dw, dh, fill + rw, 0);
    }
    return st;
}

cs_status cs_image_resize(const uint8_t *src, int sw, int sh, int channels, uint8_t *dst, int dw,
                          int dh, int mode, char *msg, size_t n) {
    if (!src || !dst)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "cs_image_resize: NULL image buffer");
    if (sw < 1 || sh < 1 || dw < 1 || dh < 1 || sw > MAX_SIDE || sh > MAX_SIDE ||
        dw > MAX_SIDE || dh > MAX_SIDE)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "cs_image_resize: sizes must be within 1..%d (got %dx%d -> %dx%d)",
                       MAX_SIDE, sw, sh, dw, dh);
    if (channels < 1 || channels > 4)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "cs_image_resize: channels must be 1..4 (got %d)", channels);
    if (mode != CS_RESIZE_STRETCH && mode != CS_RESIZE_CROP && mode != CS_RESIZE_FILL)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "cs_image_resize: mode must be 0 (stretch), 1 (crop) or 2 (fill); got %d",
                       mode);
    cs_status st;
    if (mode == CS_RESIZE_STRETCH) {
        st = image_resize_stretch(src, sw, sh, channels, dst, dw, dh);
    } else {
        int rw, rh;
        kept_size(mode, sw, sh, dw, dh, &rw, &rh);
        uint8_t *r = cs_malloc((size_t)rw * (size_t)rh * (size_t)channels);
        st = r ? image_resize_stretch(src, sw, sh, channels, r, rw, rh) : CS_ERR_NOMEM;
        if (st == CS_OK) {
            memset(dst, 0, (size_t)dw * (size_t)dh * (size_t)channels); /* Image.new: black */
            const int ox = dw / 2 - rw / 2, oy = dh / 2 - rh / 2;
            for (int y = 0; y < rh; y++) {
                const int cy = oy + y;
                if (cy < 0 || cy >= dh) continue;
                for (int x = 0; x < rw; x++) {
                    const int cx = ox + x;
                    if (cx < 0 || cx >= dw) continue;
                    memcpy(dst + ((size_t)cy * (size_t)dw + (size_t)cx) * channels,
                           r + ((size_t)y * (size_t)rw + (size_t)x) * channels, (size_t)channels);
                }
            }
            if (mode == CS_RESIZE_FILL) st = fill_bands(sw, sh, r, rw, rh, channels, dst, dw, dh);
        }
        free(r);
    }
    if (st == CS_ERR_NOMEM)
        return cs_errf(st, msg, n, "cs_image_resize: out of memory (%dx%d -> %dx%d)", sw, sh, dw,
                       dh);
    return st;
}
