/* Shape templates of the attribute classifier: dataset.shape_polygon's four shapes
 * rendered with anti-aliased coverage, fitted to a measured coverage map (area and
 * centroid, correcting for shapes cut by the image edge) and scored by soft IoU, sharp or
 * blurred. classify.c measures the coverage and picks the best-scoring shape (step 5 of its
 * method); this file owns the geometry. Pure functions, per-call scratch only: thread-safe. */
#include "classify_internal.h"

#include <math.h>
#include <stdlib.h>

/* Shape area / r^2 for the nominal radius r of dataset.shape_polygon: pi; (2 * 0.88)^2;
 * equilateral triangle of circumradius 1.3 r; five-point star, outer 1.3 r, inner 0.45 of
 * that: 10 triangles of area R * ri * sin(36 deg) / 2. */
const double classify_shape_area_k[NSHAPE] = {3.14159265358979, 3.0976, 2.19497, 2.23504};

/* dataset.shape_polygon in pixel coordinates (y down). */
static void tmpl_make(tmpl *t, int shape, double cx, double cy, double r) {
    const double pi = 3.14159265358979;
    t->shape = shape, t->cx = cx, t->cy = cy, t->r = r, t->n = 0;
    if (shape == SHAPE_SQUARE) {
        double hs = 0.88 * r;
        const double sx[4] = {-1, 1, 1, -1}, sy[4] = {-1, -1, 1, 1};
        for (int k = 0; k < 4; k++)
            t->px[k] = cx + hs * sx[k], t->py[k] = cy + hs * sy[k];
        t->n = 4;
    } else if (shape == SHAPE_TRIANGLE) {
        for (int k = 0; k < 3; k++) {
            double a = pi / 2 + k * 2 * pi / 3;
            t->px[k] = cx + 1.3 * r * cos(a), t->py[k] = cy - 1.3 * r * sin(a);
        }
        t->n = 3;
    } else if (shape == SHAPE_STAR) {
        for (int k = 0; k < 10; k++) {
            double a = pi / 2 + k * pi / 5, rr = (k % 2 ? 0.45 : 1.0) * 1.3 * r;
            t->px[k] = cx + rr * cos(a), t->py[k] = cy - rr * sin(a);
        }
        t->n = 10;
    }
    for (int k = 0, j = t->n - 1; k < t->n; j = k++) {
        t->ex[k] = t->px[k] - t->px[j], t->ey[k] = t->py[k] - t->py[j];
        double len2 = t->ex[k] * t->ex[k] + t->ey[k] * t->ey[k];
        t->inv_len2[k] = len2 > 0 ? 1.0 / len2 : 0.0;
    }
}

/* Anti-aliased coverage of the pixel centred at (x, y): 0.5 minus the signed distance to
 * the outline, clamped (exact for straight edges, close enough at corners). */
static double tmpl_cov(const tmpl *t, double x, double y) {
    double sd;
    if (t->shape == SHAPE_CIRCLE) {
        sd = sqrt((x - t->cx) * (x - t->cx) + (y - t->cy) * (y - t->cy)) - t->r;
    } else {
        double best = INFINITY; /* squared distance to the nearest edge */
        int inside = 0;
        for (int k = 0, j = t->n - 1; k < t->n; j = k++) {
            double ax = t->px[j], ay = t->py[j], ex = t->ex[k], ey = t->ey[k];
            if ((ay > y) != (t->py[k] > y) && x < ax + (y - ay) * ex / ey) inside = !inside;
            double u = clampd(((x - ax) * ex + (y - ay) * ey) * t->inv_len2[k], 0, 1);
            double qx = x - ax - u * ex, qy = y - ay - u * ey, d2 = qx * qx + qy * qy;
            if (d2 < best) best = d2;
        }
        sd = inside ? -sqrt(best) : sqrt(best);
    }
    return clampd(0.5 - sd, 0.0, 1.0);
}

/* Area, centroid and overlap (sum of min with the coverage) of a template clipped to the
 * image. Only the template's bounding box is visited. */
static void tmpl_stats(const tmpl *t, const work *wk, double *area, double *mx, double *my,
                       double *overlap) {
    double ext = 1.3 * t->r + 1.0;
    int x0 = (int)floor(t->cx - ext), x1 = (int)ceil(t->cx + ext);
    int y0 = (int)floor(t->cy - ext), y1 = (int)ceil(t->cy + ext);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > wk->w - 1) x1 = wk->w - 1;
    if (y1 > wk->h - 1) y1 = wk->h - 1;
    double a = 0, sx = 0, sy = 0, ov = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            double c = tmpl_cov(t, x + 0.5, y + 0.5);
            if (c <= 0) continue;
            double mv = wk->m[y * wk->w + x];
            a += c, sx += c * (x + 0.5), sy += c * (y + 0.5), ov += c < mv ? c : mv;
        }
    *area = a, *overlap = ov;
    *mx = a > 0 ? sx / a : t->cx;
    *my = a > 0 ? sy / a : t->cy;
}

/* Edge softness tried besides the sharp template, as Gaussian sd in data-set pixels.
 * Decoded model images are softer than the data set, and a blurred small star is closer
 * to a sharp circle than to a sharp star; blurring the template as well keeps the
 * comparison like with like. Blur keeps area and centroid, so the fit itself is unchanged. */
static const double blur_sd[] = {0.8, 1.6, 2.4};
#define NBLUR ((int)(sizeof blur_sd / sizeof blur_sd[0]))

/* Best soft IoU of the template blurred by each blur_sd (scaled to the image) against the
 * coverage of total A. The template is rendered over its box padded by 3 sd, also past the
 * image edge, blurred separably, put through the coverage's 0.1..0.9 ramp and compared on
 * the image's pixels. Returns 0 when the scratch cannot be had. */
double classify_blurred_iou(const work *wk, const tmpl *t, double A, double scale) {
    double ext = 1.3 * t->r + 1.0;
    int pad = (int)ceil(3.0 * blur_sd[NBLUR - 1] * scale) + 1;
    int x0 = (int)floor(t->cx - ext) - pad, x1 = (int)ceil(t->cx + ext) + pad;
    int y0 = (int)floor(t->cy - ext) - pad, y1 = (int)ceil(t->cy + ext) + pad;
    int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    if (bw <= 0 || bh <= 0 || (int64_t)bw * bh > (1 << 24)) return 0;
    size_t nb = (size_t)bw * bh;
    float *sharp = malloc(2 * nb * sizeof *sharp);
    double *kern = malloc((size_t)(2 * pad + 1) * sizeof *kern);
    double best = 0;
    if (!sharp || !kern) goto done;
    float *tmp = sharp + nb;
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++)
            sharp[y * bw + x] = (float)tmpl_cov(t, x0 + x + 0.5, y0 + y + 0.5);
    for (int k = 0; k < NBLUR; k++) {
        double sd = blur_sd[k] * scale, sum = 0;
        int R = (int)ceil(3.0 * sd);
        for (int i = -R; i <= R; i++)
            sum += kern[i + R] = exp(-0.5 * i * i / (sd * sd));
        for (int i = 0; i <= 2 * R; i++)
            kern[i] /= sum;
        for (int y = 0; y < bh; y++) /* horizontal pass; the padding is zero coverage */
            for (int x = 0; x < bw; x++) {
                double v = 0;
                for (int i = x - R < 0 ? -x : -R; i <= R && x + i < bw; i++)
                    v += kern[i + R] * sharp[y * bw + x + i];
                tmp[y * bw + x] = (float)v;
            }
        double st = 0, ov = 0;
        for (int y = 0; y < bh; y++) {
            int iy = y0 + y;
            if (iy < 0 || iy >= wk->h) continue;
            for (int x = 0; x < bw; x++) {
                int ix = x0 + x;
                if (ix < 0 || ix >= wk->w) continue;
                double v = 0;
                for (int i = y - R < 0 ? -y : -R; i <= R && y + i < bh; i++)
                    v += kern[i + R] * tmp[(y + i) * bw + x];
                double tv = clampd((v - 0.1) / 0.8, 0.0, 1.0), mv = wk->m[iy * wk->w + ix];
                st += tv, ov += tv < mv ? tv : mv;
            }
        }
        double uni = A + st - ov, iou = uni > 0 ? ov / uni : 0;
        if (iou > best) best = iou;
    }
done:
    free(sharp);
    free(kern);
    return best;
}

/* Fits the template of one shape to the observed coverage (area A, centroid mx, my) and
 * returns its soft IoU. A few fixed-point steps move the template until its clipped area
 * and centroid match the observation, which recovers the true centre and radius of a
 * shape cut by the image edge (large shapes at the sides reach past it). */
double classify_fit_shape(const work *wk, int shape, double A, double mx, double my, tmpl *out) {
    double r = sqrt(A / classify_shape_area_k[shape]), cx = mx, cy = my;
    double ta = 0, tx = 0, ty = 0, ov = 0;
    for (int it = 0; it < 5; it++) {
        tmpl_make(out, shape, cx, cy, r);
        tmpl_stats(out, wk, &ta, &tx, &ty, &ov);
        if (ta <= 0 || it == 4) break; /* the last pass only measures */
        double ddx = mx - tx, ddy = my - ty, ratio = clampd(sqrt(A / ta), 0.8, 1.25);
        /* Converged (within a fiftieth of a pixel): the measurement just made stands. */
        if (fabs(ddx) < 0.02 && fabs(ddy) < 0.02 && fabs(ratio - 1.0) * r < 0.02) break;
        cx = clampd(cx + ddx, -r, wk->w + r);
        cy = clampd(cy + ddy, -r, wk->h + r);
        r *= ratio;
    }
    double uni = A + ta - ov;
    return uni > 0 ? ov / uni : 0;
}
