/* Attribute classifier for images in the style of training/dataset.py.
 *
 * Method, in the order ev_classify runs it:
 *  1. Background model: per-channel median of the border ring, then a least-squares plane
 *     through the border pixels near that median (the data set's gradient texture is
 *     planar; noise and stripes average out). A large shape may cover part of one side,
 *     which the median and the inlier test ignore.
 *  2. Foreground: distance of every pixel from the background plane, thresholded at half
 *     the image's peak distance (never below a floor above the texture amplitude); the
 *     connected component with the largest summed distance is the shape. Model images may
 *     hold stray blobs; this keeps the dominant one.
 *  3. Colour: median of the component's most distant quarter (its fully covered core,
 *     free of anti-aliased edge pixels) -> nearest named colour in CIELAB.
 *  4. Coverage: each pixel near the component gets a soft coverage in [0, 1] by projecting
 *     (pixel - background) onto (colour - background). Area and centroid come from the
 *     coverage, so anti-aliasing and blur do not bias them.
 *  5. Shape: each of the four templates (dataset.shape_polygon geometry) is fitted to the
 *     coverage's area and centroid, correcting for shapes cut by the image edge, and scored
 *     by soft IoU; the best wins. When no sharp template fits well (a blurry model image),
 *     blurred templates compete too. The fitted, unclipped area gives the size and the
 *     fitted centre the position, both scaled from the data set's 64x64 frame. The
 *     templates and their fitting live in classify_shape.c.
 *  6. Background class: per-channel median of all pixels away from the shape -> nearest
 *     named background in RGB.
 * This file owns steps 1-4 and 6, the vocabulary and ev_classify; classify_internal.h
 * holds what both files share. All state is per call (heap buffers freed before return);
 * thread-safe. */
#include "classify_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the data set's vocabulary (dataset.py, same order) ---- */

enum { NCOLOUR = 8, NSIZE = 2, NPOSITION = 5, NBG = 6 }; /* NSHAPE: classify_internal.h */
enum { SIZE_SMALL, SIZE_LARGE };
enum { POSITION_CENTER = 4 };

static const char *const attr_names[EV_NATTR] = {"shape", "colour", "size", "position",
                                                 "background"};
static const char *const shape_names[NSHAPE] = {"circle", "square", "triangle", "star"};
static const char *const colour_names[NCOLOUR] = {"red",    "green",  "blue",  "yellow",
                                                  "orange", "purple", "white", "black"};
static const char *const size_names[NSIZE] = {"small", "large"};
static const char *const position_names[NPOSITION] = {"left", "right", "top", "bottom", "center"};
static const char *const bg_names[NBG] = {"black", "white", "gray", "navy", "beige", "teal"};
static const char *const *const value_names[EV_NATTR] = {shape_names, colour_names, size_names,
                                                         position_names, bg_names};
static const int value_counts[EV_NATTR] = {NSHAPE, NCOLOUR, NSIZE, NPOSITION, NBG};

static const double colour_rgb[NCOLOUR][3] = {{220, 30, 30},   {30, 170, 60},  {35, 70, 225},
                                              {240, 215, 30},  {245, 135, 20}, {140, 45, 185},
                                              {245, 245, 245}, {15, 15, 15}};
static const double bg_rgb[NBG][3] = {{20, 20, 22}, {238, 238, 235}, {125, 125, 128},
                                      {22, 30, 85}, {222, 205, 165}, {20, 115, 115}};
static const double position_xy[NPOSITION][2] = {{17, 32}, {47, 32}, {32, 17}, {32, 47}, {32, 32}};

/* The data set's frame: positions and radii are in pixels of a 64x64 image. */
#define FRAME 64.0
/* Radii are 6..8 (small) and 12.5..15 (large): areas 79..201 and 343..707 over all shapes.
 * The threshold is their geometric middle. */
#define SIZE_AREA_SPLIT 262.0
/* Distance (RGB) below which a pixel can be texture: noise sd 5 (x sqrt 3 over channels),
 * stripes +-6, gradient residue; the data set keeps shapes >= 110 from the background. */
#define FG_DIST_FLOOR 24.0
/* Border pixels farther than this from the border median are not background (a shape, or a
 * blob in a model image); the gradient texture moves a corner by <= 14 per channel. */
#define BG_INLIER_DIST 48.0
/* A sharp template fitting at least this well means the image is sharp: no blur search.
 * The data set's own images score >= 0.93 with their true shape. */
#define SHARP_FIT_IOU 0.9

const char *ev_attr_name(int attr) {
    return attr >= 0 && attr < EV_NATTR ? attr_names[attr] : NULL;
}

int ev_value_count(int attr) {
    return attr >= 0 && attr < EV_NATTR ? value_counts[attr] : 0;
}

const char *ev_value_name(int attr, int value) {
    if (attr < 0 || attr >= EV_NATTR || value < 0 || value >= value_counts[attr]) return NULL;
    return value_names[attr][value];
}

int ev_value_index(int attr, const char *name) {
    if (attr < 0 || attr >= EV_NATTR || !name) return -1;
    for (int v = 0; v < value_counts[attr]; v++)
        if (strcmp(value_names[attr][v], name) == 0) return v;
    return -1;
}

/* ---- small helpers ---- */

/* sRGB (0..255) -> CIELAB (D65), for naming shape colours. Shapes in model images come
 * out washed-out or blended into the background, and Lab keeps hue apart from lightness
 * as a viewer does: a shape faded 40 % towards its background is named right 94 % of the
 * time in Lab, 70 % in RGB. Backgrounds stay in RGB, where their palette is far better
 * separated (white-beige: 79 in RGB, 23 in Lab) and a tinted one stays on its side. */
static void rgb_to_lab(const double rgb[3], double lab[3]) {
    double lin[3], f[3];
    for (int c = 0; c < 3; c++) {
        double v = clampd(rgb[c], 0, 255) / 255.0;
        lin[c] = v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
    }
    const double xyz[3] = {(0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047,
                           0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2],
                           (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883};
    for (int c = 0; c < 3; c++)
        f[c] = xyz[c] > 0.008856 ? cbrt(xyz[c]) : xyz[c] / 0.128419 + 4.0 / 29.0;
    lab[0] = 116.0 * f[1] - 16.0;
    lab[1] = 500.0 * (f[0] - f[1]);
    lab[2] = 200.0 * (f[1] - f[2]);
}

/* Index of the table entry nearest to rgb: in Lab (CIE76) when lab is set, else in RGB. */
static int nearest_colour(const double (*table)[3], int n, const double rgb[3], int lab) {
    int best = 0;
    double best_d = INFINITY, p[3], q[3];
    if (lab)
        rgb_to_lab(rgb, p);
    else
        memcpy(p, rgb, sizeof p);
    for (int k = 0; k < n; k++) {
        double d = 0;
        if (lab)
            rgb_to_lab(table[k], q);
        else
            memcpy(q, table[k], sizeof q);
        for (int c = 0; c < 3; c++)
            d += (p[c] - q[c]) * (p[c] - q[c]);
        if (d < best_d) best_d = d, best = k;
    }
    return best;
}

/* Median of n byte samples counted in hist (n > 0). */
static double hist_median(const int hist[256], int n) {
    int acc = 0;
    for (int v = 0; v < 256; v++) {
        acc += hist[v];
        if (2 * acc >= n) return v;
    }
    return 255;
}

/* Per-channel median of the pixels where sel[i] == want (sel NULL: the border ring of
 * width b). Returns the number of pixels used; rgb_out untouched when 0. */
static int median_rgb(const uint8_t *rgb, int w, int h, const uint8_t *sel, int want, int b,
                      double rgb_out[3]) {
    int hist[3][256], n = 0;
    memset(hist, 0, sizeof hist);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x;
            if (sel ? sel[i] != want : (x >= b && x < w - b && y >= b && y < h - b)) continue;
            for (int c = 0; c < 3; c++)
                hist[c][rgb[3 * i + c]]++;
            n++;
        }
    if (n)
        for (int c = 0; c < 3; c++)
            rgb_out[c] = hist_median(hist[c], n);
    return n;
}

static void bg_at(const work *wk, int x, int y, double out[3]) {
    for (int c = 0; c < 3; c++)
        out[c] = wk->bg[c] + wk->gx[c] * (x - wk->xc) + wk->gy[c] * (y - wk->yc);
}

/* Fits the background plane through the border pixels near the border median. Falls back
 * to the flat median when too few pixels agree (a very busy image) or the system is
 * singular (a 1-pixel-wide image). */
static void fit_background(work *wk) {
    int w = wk->w, h = wk->h, b = (w < h ? w : h) / 32;
    if (b < 1) b = 1;
    wk->xc = (w - 1) / 2.0;
    wk->yc = (h - 1) / 2.0;
    for (int c = 0; c < 3; c++)
        wk->bg0[c] = 0;
    median_rgb(wk->rgb, w, h, NULL, 0, b, wk->bg0);
    for (int c = 0; c < 3; c++)
        wk->bg[c] = wk->bg0[c], wk->gx[c] = wk->gy[c] = 0;

    double s[3][3] = {{0}}, t[3][3] = {{0}}; /* normal matrix; right-hand side per channel */
    int n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (x >= b && x < w - b && y >= b && y < h - b) continue;
            const uint8_t *p = wk->rgb + 3 * ((size_t)y * w + x);
            double dd = 0;
            for (int c = 0; c < 3; c++)
                dd += (p[c] - wk->bg0[c]) * (p[c] - wk->bg0[c]);
            if (dd > BG_INLIER_DIST * BG_INLIER_DIST) continue;
            double f[3] = {1.0, x - wk->xc, y - wk->yc};
            for (int i = 0; i < 3; i++) {
                for (int j = 0; j < 3; j++)
                    s[i][j] += f[i] * f[j];
                for (int c = 0; c < 3; c++)
                    t[c][i] += f[i] * p[c];
            }
            n++;
        }
    double det = s[0][0] * (s[1][1] * s[2][2] - s[1][2] * s[2][1]) -
                 s[0][1] * (s[1][0] * s[2][2] - s[1][2] * s[2][0]) +
                 s[0][2] * (s[1][0] * s[2][1] - s[1][1] * s[2][0]);
    if (n < 16 || fabs(det) < 1e-6 * (double)n * n * n) return;
    /* Cramer's rule; a gradient steeper than the data set's ever is gets clamped so that a
     * lopsided inlier set cannot tilt the plane into the shape. */
    double max_slope = 40.0 / (0.5 * (w > h ? w : h));
    for (int c = 0; c < 3; c++) {
        double sol[3];
        for (int k = 0; k < 3; k++) {
            double a[3][3];
            memcpy(a, s, sizeof a);
            for (int i = 0; i < 3; i++)
                a[i][k] = t[c][i];
            sol[k] = (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                      a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                      a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])) /
                     det;
        }
        wk->bg[c] = sol[0];
        wk->gx[c] = clampd(sol[1], -max_slope, max_slope);
        wk->gy[c] = clampd(sol[2], -max_slope, max_slope);
    }
}

/* Distance map, threshold and the dominant component into wk->mask. Returns the
 * component's pixel count (0: nothing stands out of the background). */
static int find_component(work *wk) {
    int w = wk->w, h = wk->h, npix = w * h;
    int hist[443] = {0}; /* distances are <= 255 * sqrt(3) < 442 */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x;
            double bgp[3], dd = 0;
            bg_at(wk, x, y, bgp);
            for (int c = 0; c < 3; c++)
                dd += (wk->rgb[3 * i + c] - bgp[c]) * (wk->rgb[3 * i + c] - bgp[c]);
            wk->d[i] = (float)sqrt(dd);
            hist[(int)clampd(wk->d[i], 0, 442)]++;
        }
    /* Peak distance: the k-th largest, so a few hot pixels of a model image do not set it. */
    int k = npix / 400 > 1 ? npix / 400 : 1, acc = 0, peak = 0;
    for (int v = 442; v >= 0; v--) {
        acc += hist[v];
        if (acc >= k) {
            peak = v;
            break;
        }
    }
    double thresh = 0.5 * peak > FG_DIST_FLOOR ? 0.5 * peak : FG_DIST_FLOOR;

    /* 8-connected components of d > thresh; keep the one with the largest summed distance. */
    for (int i = 0; i < npix; i++)
        wk->label[i] = wk->d[i] > thresh ? 0 : -1;
    int nlabel = 0, best = 0;
    double best_mass = 0;
    for (int seed = 0; seed < npix; seed++) {
        if (wk->label[seed] != 0) continue;
        int id = ++nlabel, head = 0, tail = 0;
        double mass = 0;
        wk->label[seed] = id;
        wk->queue[tail++] = seed;
        while (head < tail) {
            int i = wk->queue[head++], x = i % w, y = i / w;
            mass += wk->d[i];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int nx = x + dx, ny = y + dy;
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                    int j = ny * w + nx;
                    if (wk->label[j] != 0) continue;
                    wk->label[j] = id;
                    wk->queue[tail++] = j;
                }
        }
        if (mass > best_mass) best_mass = mass, best = id;
    }
    int count = 0;
    for (int i = 0; i < npix; i++) {
        wk->mask[i] = best && wk->label[i] == best;
        count += wk->mask[i];
    }
    return count;
}

static int cmp_desc_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Shape colour: per-channel median over the component's most distant quarter. */
static void shape_colour(work *wk, int count, double out[3]) {
    int npix = wk->w * wk->h, n = 0;
    float *dv = wk->m; /* scratch: the coverage is computed after the colour */
    for (int i = 0; i < npix; i++)
        if (wk->mask[i]) dv[n++] = wk->d[i];
    qsort(dv, (size_t)n, sizeof *dv, cmp_desc_float);
    int top = count / 4 > 1 ? count / 4 : 1;
    float cut = dv[top - 1];
    for (int i = 0; i < npix; i++)
        wk->tmp[i] = wk->mask[i] && wk->d[i] >= cut;
    median_rgb(wk->rgb, wk->w, wk->h, wk->tmp, 1, 0, out);
}

/* wk->mask := its Chebyshev dilation by r (separable max filter). */
static void dilate(work *wk, int r) {
    int w = wk->w, h = wk->h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = 0;
            for (int dx = -r; dx <= r && !v; dx++)
                if (x + dx >= 0 && x + dx < w) v = wk->mask[y * w + x + dx];
            wk->tmp[y * w + x] = v;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = 0;
            for (int dy = -r; dy <= r && !v; dy++)
                if (y + dy >= 0 && y + dy < h) v = wk->tmp[(y + dy) * w + x];
            wk->mask[y * w + x] = v;
        }
}

/* Soft coverage inside the dilated component. The ramp maps projection 0.1..0.9 to 0..1:
 * texture residue (projection ~ +-0.1) becomes 0, and being symmetric about 0.5 it keeps
 * the area of an anti-aliased edge. */
static void coverage(work *wk, const double fg[3]) {
    int w = wk->w, h = wk->h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x;
            wk->m[i] = 0;
            if (!wk->mask[i]) continue;
            double bgp[3], dot = 0, nn = 0;
            bg_at(wk, x, y, bgp);
            for (int c = 0; c < 3; c++) {
                dot += (wk->rgb[3 * i + c] - bgp[c]) * (fg[c] - bgp[c]);
                nn += (fg[c] - bgp[c]) * (fg[c] - bgp[c]);
            }
            if (nn < 1.0) continue;
            wk->m[i] = (float)clampd((dot / nn - 0.1) / 0.8, 0.0, 1.0);
        }
}

/* ---- the classifier ---- */

static void classify_empty(const work *wk, ev_labels *out) {
    /* Nothing stands out: the guesses a human would give for a blank canvas. */
    out->v[EV_SHAPE] = SHAPE_CIRCLE;
    out->v[EV_SIZE] = SIZE_SMALL;
    out->v[EV_POSITION] = POSITION_CENTER;
    out->v[EV_BACKGROUND] = nearest_colour(bg_rgb, NBG, wk->bg0, 0);
    /* The colour of the most distinct pixel, if any differs at all. */
    int npix = wk->w * wk->h, best = 0;
    for (int i = 1; i < npix; i++)
        if (wk->d[i] > wk->d[best]) best = i;
    double c[3] = {wk->rgb[3 * best], wk->rgb[3 * best + 1], wk->rgb[3 * best + 2]};
    out->v[EV_COLOUR] = nearest_colour(colour_rgb, NCOLOUR, c, 1);
}

void ev_classify(const uint8_t *rgb, int width, int height, ev_labels *out) {
    work wk = {0};
    for (int a = 0; a < EV_NATTR; a++)
        out->v[a] = 0;
    out->v[EV_POSITION] = POSITION_CENTER;
    /* 1 << 28 pixels keeps every index and byte count within int. */
    if (!rgb || width <= 0 || height <= 0 || (int64_t)width * height > (1 << 28) / 3) return;
    size_t npix = (size_t)width * height;
    wk.rgb = rgb, wk.w = width, wk.h = height;
    wk.d = malloc(npix * sizeof *wk.d);
    wk.m = malloc(npix * sizeof *wk.m);
    wk.label = malloc(npix * sizeof *wk.label);
    wk.queue = malloc(npix * sizeof *wk.queue);
    wk.mask = malloc(npix);
    wk.tmp = malloc(npix);
    if (!wk.d || !wk.m || !wk.label || !wk.queue || !wk.mask || !wk.tmp) goto done;

    fit_background(&wk);
    int count = find_component(&wk);
    if (count == 0) {
        classify_empty(&wk, out);
        goto done;
    }
    double fg[3];
    shape_colour(&wk, count, fg);
    out->v[EV_COLOUR] = nearest_colour(colour_rgb, NCOLOUR, fg, 1);

    double scale = sqrt((double)width * height) / FRAME; /* pixels per data-set pixel */
    int rdil = (int)lround(3.0 * scale);
    dilate(&wk, rdil < 2 ? 2 : rdil);
    coverage(&wk, fg);

    double A = 0, sx = 0, sy = 0;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            double mv = wk.m[(size_t)y * width + x];
            A += mv, sx += mv * (x + 0.5), sy += mv * (y + 0.5);
        }
    /* Background class from everything away from the shape (median: the texture is
     * symmetric about the base colour); the border alone when the shape fills the image. */
    double bgc[3] = {wk.bg0[0], wk.bg0[1], wk.bg0[2]};
    if (median_rgb(rgb, width, height, wk.mask, 0, 0, bgc) < (int)(npix / 8))
        memcpy(bgc, wk.bg0, sizeof bgc);
    out->v[EV_BACKGROUND] = nearest_colour(bg_rgb, NBG, bgc, 0);
    if (A < 0.5) { /* a component whose colour projects to nothing: treat as empty */
        int bg_class = out->v[EV_BACKGROUND], colour = out->v[EV_COLOUR];
        classify_empty(&wk, out);
        out->v[EV_BACKGROUND] = bg_class, out->v[EV_COLOUR] = colour;
        goto done;
    }
    double mx = sx / A, my = sy / A;

    /* Sharp templates first; blurred ones only when no sharp template fits well, which
     * spares the cost on data-set-like images. */
    tmpl fits[NSHAPE];
    double iou[NSHAPE], best_sharp = 0;
    for (int s = 0; s < NSHAPE; s++) {
        iou[s] = classify_fit_shape(&wk, s, A, mx, my, &fits[s]);
        if (iou[s] > best_sharp) best_sharp = iou[s];
    }
    if (best_sharp < SHARP_FIT_IOU)
        for (int s = 0; s < NSHAPE; s++) {
            double soft = classify_blurred_iou(&wk, &fits[s], A, scale);
            if (soft > iou[s]) iou[s] = soft;
        }
    int best = 0;
    for (int s = 1; s < NSHAPE; s++)
        if (iou[s] > iou[best]) best = s;
    const tmpl best_t = fits[best];
    out->v[EV_SHAPE] = best;

    /* Size from the fitted, unclipped area; position from the fitted centre. Both in the
     * data set's 64x64 frame. */
    double area64 = classify_shape_area_k[best] * best_t.r * best_t.r / (scale * scale);
    out->v[EV_SIZE] = area64 > SIZE_AREA_SPLIT ? SIZE_LARGE : SIZE_SMALL;
    double px = best_t.cx * FRAME / width, py = best_t.cy * FRAME / height, best_d = INFINITY;
    for (int p = 0; p < NPOSITION; p++) {
        double dx = px - position_xy[p][0], dy = py - position_xy[p][1];
        if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, out->v[EV_POSITION] = p;
    }

done:
    free(wk.d);
    free(wk.m);
    free(wk.label);
    free(wk.queue);
    free(wk.mask);
    free(wk.tmp);
}
