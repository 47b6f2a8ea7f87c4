/* Batched generation for the evaluator: groups of items become jobs stepped together in
 * one UNet batch per step (results do not depend on the grouping: each job's noise is its
 * own seeded stream), then decoded, classified and optionally kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval.h"
#include "job.h" /* job_rows: which rows a step runs, to count the unconditional ones */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static cs_status run_group(cs_session *s, const cs_model *m, const ev_gen_config *g,
                           ev_item *items, int n, cs_job **jobs, char *msg, size_t msg_size) {
    cs_status st = CS_OK;
    int made = 0;
    for (; made < n; made++) {
        cs_gen_params p = cs_gen_default_params(m);
        p.prompt = items[made].prompt;
        p.negative_prompt = items[made].negative;
        p.guidance_scale = items[made].scale;
        p.seed = items[made].seed;
        p.steps = g->steps;
        p.sampler = g->sampler;
        p.guidance_lo = g->guidance_lo;
        p.guidance_hi = g->guidance_hi;
        st = cs_job_new(s, &p, &jobs[made], msg, msg_size);
        if (st != CS_OK) goto done;
    }
    while (!cs_job_done(jobs[0])) {
        for (int i = 0; i < n; i++) {
            items[i].steps_run++;
            items[i].uncond_steps += job_rows(jobs[i]).uncond;
        }
        st = cs_step(s, jobs, n, msg, msg_size);
        if (st != CS_OK) goto done;
    }
    st = cs_decode(s, jobs, n, msg, msg_size);
    if (st != CS_OK) goto done;
    for (int i = 0; i < n; i++) {
        int w, h;
        const uint8_t *rgb = cs_job_rgb(jobs[i], 0, &w, &h);
        ev_classify(rgb, w, h, &items[i].got);
        if (g->keep_rgb) {
            size_t bytes = (size_t)w * (size_t)h * 3;
            items[i].rgb = malloc(bytes);
            if (!items[i].rgb) {
                snprintf(msg, msg_size, "out of memory keeping image %d", i);
                st = CS_ERR_NOMEM;
                goto done;
            }
            memcpy(items[i].rgb, rgb, bytes);
        }
    }
done:
    for (int i = 0; i < made; i++) cs_job_free(jobs[i]);
    return st;
}

cs_status ev_generate(cs_session *s, const cs_model *m, const ev_gen_config *g, ev_item *items,
                      int n, const char *label, char *msg, size_t msg_size) {
    cs_job **jobs = calloc((size_t)g->batch, sizeof *jobs);
    if (!jobs) {
        snprintf(msg, msg_size, "out of memory");
        return CS_ERR_NOMEM;
    }
    double t0 = now_s(), last = t0;
    cs_status st = CS_OK;
    for (int at = 0; at < n && st == CS_OK; at += g->batch) {
        int k = n - at < g->batch ? n - at : g->batch;
        st = run_group(s, m, g, items + at, k, jobs, msg, msg_size);
        double t = now_s();
        if (t - last > 10.0 || at + k == n) {
            fprintf(stderr, "  %s: %d/%d images, %.0f s\n", label, at + k, n, t - t0);
            last = t;
        }
    }
    free(jobs);
    return st;
}

void ev_items_free(ev_item *items, int n) {
    if (!items) return;
    for (int i = 0; i < n; i++) free(items[i].rgb);
    free(items);
}

double ev_entropy_bits(const int *counts, int k) {
    double total = 0, h = 0;
    for (int i = 0; i < k; i++) total += counts[i];
    for (int i = 0; i < k && total > 0; i++)
        if (counts[i] > 0) h -= counts[i] / total * log2(counts[i] / total);
    return h;
}

double ev_pixel_distance(const uint8_t *a, const uint8_t *b, size_t bytes) {
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes; i++) sum += (uint64_t)abs((int)a[i] - (int)b[i]);
    return bytes ? (double)sum / (255.0 * (double)bytes) : 0.0;
}
