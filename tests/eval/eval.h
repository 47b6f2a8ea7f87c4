/*
 * cfgserve-eval internals: the prompt set, batched generation + classification, and the
 * metrics printed per guidance scale. Single-threaded driver; the engine parallelises
 * inside each batched step.
 */
#ifndef CS_EVAL_H
#define CS_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "cfgserve/cfgserve.h"
#include "classify.h"

enum { EV_PROMPT_MAX = 96, EV_UNSPECIFIED = -1 };

/* A prompt and the attribute values it asks for (EV_UNSPECIFIED where it is silent). */
typedef struct ev_prompt {
    char text[EV_PROMPT_MAX];
    int want[EV_NATTR];
} ev_prompt;

/* The fixed evaluation set, from the data set's own caption grammar: "a {colour} {shape}",
 * "a {size} {colour} {shape}", "a {colour} {shape} on the {position}", "a {shape}" and
 * "a {shape} on a {background} background". Returns the count (*out malloc'd). */
int ev_prompt_set(ev_prompt **out);

/* One image to make: what it was asked for and what the classifier saw. */
typedef struct ev_item {
    const char *prompt;
    const char *negative; /* NULL: none */
    double scale;
    uint64_t seed;
    ev_labels got;
    uint8_t *rgb; /* kept when ev_generate is asked to; owned by the item (ev_items_free) */
    int steps_run, uncond_steps; /* UNet steps of the image, and those with an uncond row */
} ev_item;

typedef struct ev_gen_config {
    int steps;
    const char *sampler; /* NULL: the model's scheduler */
    int batch;           /* images per batched UNet call (the session's max_images) */
    int keep_rgb;
    double guidance_lo, guidance_hi; /* guidance interval in sigma (hi <= 0: always) */
} ev_gen_config;

/* Generates and classifies every item, `batch` images per cs_step call. Progress goes to
 * stderr under `label`. */
cs_status ev_generate(cs_session *s, const cs_model *m, const ev_gen_config *g, ev_item *items,
                      int n, const char *label, char *msg, size_t msg_size);
void ev_items_free(ev_item *items, int n);

/* Shannon entropy in bits of a histogram. */
double ev_entropy_bits(const int *counts, int k);
/* Mean absolute difference of two images, as a fraction of full scale. */
double ev_pixel_distance(const uint8_t *a, const uint8_t *b, size_t bytes);

#endif
