/*
 * job_gone: recently dropped job ids and why (see job_gone.h). Lookups scan the ring from
 * the newest entry back: they happen only for ids the job table no longer has, and 4096
 * comparisons cost a few microseconds.
 */
#include "job_gone.h"

#include <string.h>

void job_gone_init(job_gone *g) {
    memset(g, 0, sizeof *g);
}

void job_gone_add(job_gone *g, uint64_t id, job_gone_reason why) {
    g->ring[g->next] = (job_gone_entry){.id = id, .reason = (uint8_t)why};
    g->next = (g->next + 1) % JOB_GONE_CAPACITY;
}

job_gone_reason job_gone_find(const job_gone *g, uint64_t id) {
    for (size_t k = 1; k <= JOB_GONE_CAPACITY; k++) {
        const job_gone_entry *e = &g->ring[(g->next + JOB_GONE_CAPACITY - k) % JOB_GONE_CAPACITY];
        if (!e->reason) break; /* the ring has not wrapped yet: nothing older */
        if (e->id == id) return (job_gone_reason)e->reason;
    }
    return 0;
}

const char *job_gone_text(job_gone_reason why) {
    switch (why) {
    case JOB_GONE_EXPIRED:
        return "its result expired (kept for --finished-ttl seconds)";
    case JOB_GONE_COUNT:
        return "its result was evicted: newer finished jobs filled --max-finished";
    case JOB_GONE_BYTES:
        return "its result was evicted: retained results passed --max-finished-mb";
    case JOB_GONE_TOO_LARGE:
        return "its result was not kept: it alone is larger than --max-finished-mb";
    }
    return "";
}
