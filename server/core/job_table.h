/*
 * job_table: the service's job records, the id -> record map and the intrusive lists the
 * loop keeps them on (queue, running, admission order, finished retention).
 *
 * A record's fields fall in four groups, each with its own rule:
 *   - immutable after job_rec_new (parameters, string copies, seeds): any thread that
 *     found the record under the service lock may read them while holding it;
 *   - published state (state, step, error, PNGs): written by the loop thread under the
 *     service lock, read by other threads under the service lock;
 *   - listeners: guarded by the service's listen lock (see service_internal.h);
 *   - everything else (work, phase, links, times): loop thread only, and `work` belongs to
 *     a worker while the record is in flight.
 * The map is modified by the loop thread and by service_submit, both under the service
 * lock, and read under it by any thread; no thread keeps a record pointer after
 * unlocking except the loop, which is the only one that frees records.
 */
#ifndef CS_SERVER_JOB_TABLE_H
#define CS_SERVER_JOB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inbox.h"
#include "service.h"
#include "worker.h"

/* Intrusive circular doubly linked list; an unlinked node points at itself. */
typedef struct dlink {
    struct dlink *prev, *next;
} dlink;

static inline void dlink_init(dlink *l) {
    l->prev = l->next = l;
}
static inline bool dlink_empty(const dlink *head) {
    return head->next == head;
}
static inline void dlink_push_back(dlink *head, dlink *n) {
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void dlink_remove(dlink *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    dlink_init(n);
}

typedef struct listener_entry {
    service_listener fn;
    void *user;
} listener_entry;

typedef enum rec_phase { REC_QUEUED, REC_RUNNING, REC_FINISHED } rec_phase;

typedef struct job_rec {
    uint64_t id;
    /* immutable after job_rec_new */
    cs_gen_params params; /* string fields point at the copies below */
    cs_lora_spec loras[CS_MAX_LORAS_PER_JOB]; /* params.loras; names owned */
    char *prompt, *negative_prompt, *sampler;
    uint8_t *init_image, *mask; /* owned copies of params' img2img pixels (or NULL) */
    uint64_t seeds[CS_MAX_IMAGES_PER_JOB];
    int preview_every; /* 0 = no previews */

    /* published: written by the loop under the service lock */
    service_job_state state;
    int step, steps;
    const char *error_code; /* static string, NULL unless failed/cancelled */
    char error[256];
    int n_png; /* PNGs of a DONE job, owned */
    uint8_t *png[CS_MAX_IMAGES_PER_JOB];
    size_t png_len[CS_MAX_IMAGES_PER_JOB];
    char *infotext[CS_MAX_IMAGES_PER_JOB]; /* owned, one per PNG */
    uint8_t *preview_png; /* owned: the latest preview (freed when the job finishes) */
    size_t preview_len;
    int preview_step;
    bool finished_early;

    /* guarded by the listen lock */
    listener_entry *ls;
    int n_ls, cap_ls;

    /* loop thread only */
    job_work work; /* a worker's while in_flight */
    rec_phase phase;
    bool in_flight;          /* in a handed task */
    const char *stop_reason; /* "cancelled" or "timeout": leave at the next step boundary */
    bool finish_wanted;      /* service_finish_early: apply when the job is next ours */
    uint64_t last_batch;     /* batch number when last stepped: the least recent goes first */
    uint64_t admit_ns, start_ns, finish_ns;
    size_t bytes;         /* heap bytes while retained (retire.c counts them) */
    dlink link;           /* queue or running list */
    dlink age;            /* active list (admission order), then finished list */
    inbox_msg submit_msg; /* carries the record to the loop */
} job_rec;

/* A record with copies of p's strings and one listener (fn may be NULL); NULL when out
 * of memory. */
job_rec *job_rec_new(uint64_t id, const cs_gen_params *p, service_listener fn, void *user);
/* Frees the record, its PNGs, listeners and cs_job (NULL-safe). */
void job_rec_free(job_rec *r);
/* Appends a listener; false when out of memory. */
bool job_rec_add_listener(job_rec *r, service_listener fn, void *user);
/* Clears (fn = NULL) every listener with this user pointer; the entries stay until
 * job_rec_compact_listeners, so a loop walking the array meanwhile stays valid. */
void job_rec_clear_listeners(job_rec *r, void *user);
/* Drops cleared entries. */
void job_rec_compact_listeners(job_rec *r);

static inline job_rec *job_rec_of_link(dlink *l) {
    return (job_rec *)((char *)l - offsetof(job_rec, link));
}
static inline job_rec *job_rec_of_age(dlink *l) {
    return (job_rec *)((char *)l - offsetof(job_rec, age));
}

/* Open-addressing map id -> record with a fixed capacity chosen at init. */
typedef struct job_table {
    job_rec **slots;
    size_t mask; /* slots - 1 (a power of two) */
    size_t count;
    size_t max_records;
} job_table;

/* Room for max_records records at once. Returns false when out of memory. */
bool job_table_init(job_table *t, size_t max_records);
/* Frees the slots (not the records). */
void job_table_deinit(job_table *t);
job_rec *job_table_find(const job_table *t, uint64_t id);
/* False when the table already holds max_records records or the id is present. */
bool job_table_insert(job_table *t, job_rec *r);
void job_table_remove(job_table *t, uint64_t id);

#endif
