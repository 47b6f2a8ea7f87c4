/* Attribute classifier for the default model's images (the evaluator's judge).
 *
 * Names the shape, colour, size, position and background of a 64x64 RGB image drawn the
 * way training/dataset.py draws them: one shape on a plain or faintly textured background.
 * The value lists and their order are dataset.py's (SHAPES, COLOURS, SIZES, POSITIONS,
 * BACKGROUNDS), so an index here is an index there. ev_classify never fails: for a blurry,
 * off-colour or empty image it still returns its best guess for every attribute.
 * No engine dependency; all functions are pure and thread-safe (no shared state). */
#ifndef CS_EVAL_CLASSIFY_H
#define CS_EVAL_CLASSIFY_H

#include <stdint.h>

enum ev_attr { EV_SHAPE, EV_COLOUR, EV_SIZE, EV_POSITION, EV_BACKGROUND, EV_NATTR };

const char *ev_attr_name(int attr);             /* "shape", "colour", ...; NULL if out of range */
int ev_value_count(int attr);                   /* 4, 8, 2, 5, 6; 0 if out of range */
const char *ev_value_name(int attr, int value); /* e.g. (EV_COLOUR, 0) -> "red"; NULL if bad */
int ev_value_index(int attr, const char *name); /* -1 if unknown */

typedef struct ev_labels {
    int v[EV_NATTR];
} ev_labels;

/* rgb: height x width x 3 bytes, row-major. Always returns a best guess for every attribute.
 * Positions and sizes are judged relative to the image size (the data set's frame is 64x64). */
void ev_classify(const uint8_t *rgb, int width, int height, ev_labels *out);

#endif
