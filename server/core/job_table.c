/*
 * job_table: job records and the id map (see job_table.h for which thread touches which
 * field). The map is linear probing with backward-shift deletion, sized once so that it
 * never grows while serving.
 */
#include "job_table.h"

#include <stdlib.h>
#include <string.h>

static char *dup_or_empty(const char *s) {
    return strdup(s ? s : "");
}

job_rec *job_rec_new(uint64_t id, const cs_gen_params *p, service_listener fn, void *user) {
    job_rec *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->id = id;
    r->params = *p;
    r->prompt = dup_or_empty(p->prompt);
    r->negative_prompt = dup_or_empty(p->negative_prompt);
    r->sampler = dup_or_empty(p->sampler);
    if (!r->prompt || !r->negative_prompt || !r->sampler) goto fail;
    r->params.prompt = r->prompt;
    r->params.negative_prompt = r->negative_prompt;
    r->params.sampler = r->sampler;
    r->params.loras = p->num_loras > 0 ? r->loras : NULL;
    for (int i = 0; i < p->num_loras && i < CS_MAX_LORAS_PER_JOB; i++) {
        r->loras[i] = (cs_lora_spec){.name = strdup(p->loras[i].name), .weight = p->loras[i].weight};
        if (!r->loras[i].name) goto fail;
    }
    /* The request's pixels are borrowed; the worker reads them later in cs_job_new. */
    const size_t pixels = (size_t)p->width * (size_t)p->height;
    if (p->init_image) {
        if (!(r->init_image = malloc(pixels * 3))) goto fail;
        memcpy(r->init_image, p->init_image, pixels * 3);
        r->params.init_image = r->init_image;
    }
    if (p->mask) {
        if (!(r->mask = malloc(pixels))) goto fail;
        memcpy(r->mask, p->mask, pixels);
        r->params.mask = r->mask;
    }
    for (int i = 0; i < p->num_images && i < CS_MAX_IMAGES_PER_JOB; i++)
        r->seeds[i] = p->seed + (uint64_t)i; /* the engine's rule: image i uses seed + i */
    r->state = SERVICE_JOB_QUEUED;
    r->steps = p->steps;
    r->work.rec = r;
    r->work.params = &r->params;
    dlink_init(&r->link);
    dlink_init(&r->age);
    if (fn && !job_rec_add_listener(r, fn, user)) goto fail;
    return r;
fail:
    job_rec_free(r);
    return NULL;
}

void job_rec_free(job_rec *r) {
    if (!r) return;
    free(r->prompt);
    free(r->negative_prompt);
    free(r->sampler);
    for (int i = 0; i < CS_MAX_LORAS_PER_JOB; i++)
        free((char *)r->loras[i].name);
    free(r->init_image);
    free(r->mask);
    free(r->preview_png);
    free(r->work.preview_png);
    for (int i = 0; i < r->n_png; i++) {
        free(r->png[i]);
        free(r->infotext[i]);
    }
    for (int i = 0; i < r->work.n_png; i++) {
        free(r->work.png[i]);
        free(r->work.infotext[i]);
    }
    cs_job_free(r->work.job);
    free(r->ls);
    free(r);
}

bool job_rec_add_listener(job_rec *r, service_listener fn, void *user) {
    job_rec_compact_listeners(r);
    if (r->n_ls == r->cap_ls) {
        int cap = r->cap_ls ? 2 * r->cap_ls : 2;
        listener_entry *ls = realloc(r->ls, (size_t)cap * sizeof *ls);
        if (!ls) return false;
        r->ls = ls;
        r->cap_ls = cap;
    }
    r->ls[r->n_ls++] = (listener_entry){fn, user};
    return true;
}

void job_rec_clear_listeners(job_rec *r, void *user) {
    for (int i = 0; i < r->n_ls; i++)
        if (r->ls[i].user == user) r->ls[i].fn = NULL;
}

void job_rec_compact_listeners(job_rec *r) {
    int k = 0;
    for (int i = 0; i < r->n_ls; i++)
        if (r->ls[i].fn) r->ls[k++] = r->ls[i];
    r->n_ls = k;
}

/* A bijective mix (splitmix64's finaliser) spreads sequential ids over the slots. */
static size_t slot_of(const job_table *t, uint64_t id) {
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)id & t->mask;
}

bool job_table_init(job_table *t, size_t max_records) {
    size_t cap = 16;
    while (cap < 2 * max_records + 2)
        cap *= 2; /* at most half full: short probes */
    t->slots = calloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    t->count = 0;
    t->max_records = max_records;
    return t->slots != NULL;
}

void job_table_deinit(job_table *t) {
    free(t->slots);
    t->slots = NULL;
}

job_rec *job_table_find(const job_table *t, uint64_t id) {
    for (size_t i = slot_of(t, id);; i = (i + 1) & t->mask) {
        job_rec *r = t->slots[i];
        if (!r) return NULL;
        if (r->id == id) return r;
    }
}

bool job_table_insert(job_table *t, job_rec *r) {
    if (t->count >= t->max_records) return false;
    size_t i = slot_of(t, r->id);
    for (; t->slots[i]; i = (i + 1) & t->mask)
        if (t->slots[i]->id == r->id) return false;
    t->slots[i] = r;
    t->count++;
    return true;
}

void job_table_remove(job_table *t, uint64_t id) {
    size_t i = slot_of(t, id);
    for (; t->slots[i]; i = (i + 1) & t->mask)
        if (t->slots[i]->id == id) break;
    if (!t->slots[i]) return;
    t->slots[i] = NULL;
    t->count--;
    /* Backward shift: move later members of the probe run into the hole when their home
     * slot does not lie cyclically in (hole, j]. */
    size_t hole = i;
    for (size_t j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
        size_t home = slot_of(t, t->slots[j]->id);
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            t->slots[hole] = t->slots[j];
            t->slots[j] = NULL;
            hole = j;
        }
    }
}
