/*
 * job_gone: the ids of the most recent jobs whose finished results were dropped, and why,
 * so that GET /jobs/{id}... can answer 410 with the reason ("evicted: over
 * --max-finished-mb") instead of a bare 404 that a client cannot tell from a typo.
 *
 * A fixed ring of JOB_GONE_CAPACITY entries (16 bytes each), filled once and then
 * overwritten oldest first: memory stays bounded whatever the traffic, and an id evicted
 * longer ago than that many evictions becomes unknown (404) again.
 *
 * Threads: none of its own; the service writes and reads it under its service lock.
 */
#ifndef CS_SERVER_JOB_GONE_H
#define CS_SERVER_JOB_GONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { JOB_GONE_CAPACITY = 4096 };

/* Why a finished job's result is no longer kept. */
typedef enum job_gone_reason {
    JOB_GONE_EXPIRED = 1,  /* older than --finished-ttl */
    JOB_GONE_COUNT,        /* more than --max-finished newer finished jobs */
    JOB_GONE_BYTES,        /* the retained results passed --max-finished-mb */
    JOB_GONE_TOO_LARGE     /* its own result is larger than --max-finished-mb */
} job_gone_reason;

typedef struct job_gone_entry {
    uint64_t id;
    uint8_t reason; /* job_gone_reason; 0 = empty slot */
} job_gone_entry;

typedef struct job_gone {
    job_gone_entry ring[JOB_GONE_CAPACITY];
    size_t next; /* slot the next record overwrites */
} job_gone;

void job_gone_init(job_gone *g);
void job_gone_add(job_gone *g, uint64_t id, job_gone_reason why);
/* The reason id was dropped, or 0 when it is not among the recorded ones. */
job_gone_reason job_gone_find(const job_gone *g, uint64_t id);
/* A sentence for clients: "evicted to keep retained results under the byte limit
 * (--max-finished-mb)"; "" for 0. */
const char *job_gone_text(job_gone_reason why);

#endif
