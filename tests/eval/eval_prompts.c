/* The evaluation prompt set: every plain prompt form the default model is promised to
 * follow, over all attribute values, so each attribute is measured where a prompt names
 * it and its diversity where a prompt leaves it out. */
#include <stdio.h>
#include <stdlib.h>

#include "eval.h"

static void add(ev_prompt *set, int *n, int shape, int colour, int size, int position, int bg) {
    ev_prompt *p = &set[(*n)++];
    int at = snprintf(p->text, sizeof p->text, "a");
    if (size >= 0) at += snprintf(p->text + at, sizeof p->text - at, " %s",
                                  ev_value_name(EV_SIZE, size));
    if (colour >= 0) at += snprintf(p->text + at, sizeof p->text - at, " %s",
                                    ev_value_name(EV_COLOUR, colour));
    at += snprintf(p->text + at, sizeof p->text - at, " %s", ev_value_name(EV_SHAPE, shape));
    if (position >= 0) at += snprintf(p->text + at, sizeof p->text - at, " on the %s",
                                      ev_value_name(EV_POSITION, position));
    if (bg >= 0) snprintf(p->text + at, sizeof p->text - at, " on a %s background",
                          ev_value_name(EV_BACKGROUND, bg));
    p->want[EV_SHAPE] = shape;
    p->want[EV_COLOUR] = colour;
    p->want[EV_SIZE] = size;
    p->want[EV_POSITION] = position;
    p->want[EV_BACKGROUND] = bg;
}

int ev_prompt_set(ev_prompt **out) {
    const int shapes = ev_value_count(EV_SHAPE), colours = ev_value_count(EV_COLOUR),
              sizes = ev_value_count(EV_SIZE), positions = ev_value_count(EV_POSITION),
              bgs = ev_value_count(EV_BACKGROUND);
    const int total = shapes * colours + sizes * colours * shapes +
                      colours * shapes * positions + shapes + shapes * bgs;
    ev_prompt *set = calloc((size_t)total, sizeof *set);
    if (!set) return 0;
    int n = 0;
    for (int c = 0; c < colours; c++)
        for (int s = 0; s < shapes; s++) add(set, &n, s, c, -1, -1, -1);
    for (int z = 0; z < sizes; z++)
        for (int c = 0; c < colours; c++)
            for (int s = 0; s < shapes; s++) add(set, &n, s, c, z, -1, -1);
    for (int p = 0; p < positions; p++)
        for (int c = 0; c < colours; c++)
            for (int s = 0; s < shapes; s++) add(set, &n, s, c, -1, p, -1);
    for (int s = 0; s < shapes; s++) add(set, &n, s, -1, -1, -1, -1);
    for (int b = 0; b < bgs; b++)
        for (int s = 0; s < shapes; s++) add(set, &n, s, -1, -1, -1, b);
    *out = set;
    return n;
}
