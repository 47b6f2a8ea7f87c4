/* The ring of dropped job ids: a recorded id is found with its reason, an id never
 * recorded is not, the newest record of an id wins, and once JOB_GONE_CAPACITY more ids
 * were recorded the oldest is forgotten (the ring's memory stays fixed). */
#include "job_gone.h"

#include "check.h"

#include <stdlib.h>

int main(void) {
    job_gone *g = malloc(sizeof *g);
    if (!g) return 1;
    job_gone_init(g);
    CHECK_EQ_INT(job_gone_find(g, 1), 0); /* empty */
    job_gone_add(g, 1, JOB_GONE_BYTES);
    job_gone_add(g, 2, JOB_GONE_EXPIRED);
    CHECK_EQ_INT(job_gone_find(g, 1), JOB_GONE_BYTES);
    CHECK_EQ_INT(job_gone_find(g, 2), JOB_GONE_EXPIRED);
    CHECK_EQ_INT(job_gone_find(g, 3), 0);
    job_gone_add(g, 1, JOB_GONE_TOO_LARGE); /* the same id again (48-bit ids can repeat) */
    CHECK_EQ_INT(job_gone_find(g, 1), JOB_GONE_TOO_LARGE);

    /* Fill the ring: ids 1000.. push out 1, 2 and the second 1. */
    for (uint64_t i = 0; i < JOB_GONE_CAPACITY - 1; i++)
        job_gone_add(g, 1000 + i, JOB_GONE_COUNT);
    CHECK_EQ_INT(job_gone_find(g, 1), JOB_GONE_TOO_LARGE); /* the newest 1 is the last left */
    CHECK_EQ_INT(job_gone_find(g, 2), 0);
    job_gone_add(g, 5000, JOB_GONE_COUNT);
    CHECK_EQ_INT(job_gone_find(g, 1), 0);
    CHECK_EQ_INT(job_gone_find(g, 1000), JOB_GONE_COUNT);
    CHECK_EQ_INT(job_gone_find(g, 5000), JOB_GONE_COUNT);

    CHECK_STR_CONTAINS(job_gone_text(JOB_GONE_BYTES), "--max-finished-mb");
    CHECK_STR_CONTAINS(job_gone_text(JOB_GONE_EXPIRED), "--finished-ttl");
    CHECK_STR_CONTAINS(job_gone_text(JOB_GONE_COUNT), "--max-finished");
    CHECK_STR_CONTAINS(job_gone_text(JOB_GONE_TOO_LARGE), "larger");
    free(g);
    CHECK_DONE();
}
