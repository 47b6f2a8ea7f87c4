/* Private to the attribute classifier: what classify.c (background, foreground, colour,
 * ev_classify) and classify_shape.c (shape templates and their fit) share. Holds the
 * per-call state (work), the template type and the shape fitting entry points. Not part of
 * the evaluator's interface: everything else includes classify.h only. Thread-safe: no
 * shared state, every work belongs to one ev_classify call. */
#ifndef CS_EVAL_CLASSIFY_INTERNAL_H
#define CS_EVAL_CLASSIFY_INTERNAL_H

#include "classify.h"

#include <stdint.h>

/* dataset.py's SHAPES, same order. */
enum { NSHAPE = 4 };
enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_TRIANGLE, SHAPE_STAR };

static inline double clampd(double v, double lo, double hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- per-call state ---- */

typedef struct work {
    const uint8_t *rgb;
    int w, h;
    double bg0[3];              /* border median */
    double bg[3], gx[3], gy[3]; /* background plane: bg + gx * (x - xc) + gy * (y - yc) */
    double xc, yc;
    float *d;      /* (H, W) distance of each pixel from the background plane */
    float *m;      /* (H, W) shape coverage in [0, 1] */
    int *label;    /* (H, W) component ids (0 unvisited, -1 background) */
    int *queue;    /* (H * W) BFS queue */
    uint8_t *mask; /* (H, W) the chosen component, then its dilation */
    uint8_t *tmp;  /* (H, W) scratch: core pixels, dilation */
} work;

/* ---- shape templates (classify_shape.c) ---- */

typedef struct tmpl {
    int shape;
    double cx, cy, r;
    double px[10], py[10];               /* polygon vertices (not for the circle) */
    double ex[10], ey[10], inv_len2[10]; /* edge k runs from vertex k-1 to vertex k */
    int n;
} tmpl;

/* Shape area / r^2 for the nominal radius r of dataset.shape_polygon. */
extern const double classify_shape_area_k[NSHAPE];

/* Fits the template of one shape to the observed coverage wk->m (area A, centroid mx, my)
 * and returns its soft IoU; the fitted template goes to *out. */
double classify_fit_shape(const work *wk, int shape, double A, double mx, double my, tmpl *out);

/* Best soft IoU of the fitted template t, blurred by each of a few edge softnesses (in
 * data-set pixels times scale), against the coverage of total A. 0 when out of memory. */
double classify_blurred_iou(const work *wk, const tmpl *t, double A, double scale);

#endif
