/* mem_trimmer: with 4 MiB freed in 16 KiB holes between live blocks (so free() cannot
 * shrink the heap's top by itself), the thread trims within a few periods and RSS falls by
 * at least 2 MiB; stop wakes a thread whose period is an hour at once. Not under
 * sanitizers: their allocator is not glibc's, so there is nothing for malloc_trim. */
#include "mem_trimmer.h"
#include "memstats.h"

#include "check.h"
#include "sanitized.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BLOCKS = 512, BLOCK = 16 << 10 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
#if !defined(CS_SANITIZED) && defined(__GLIBC__)
    static char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK);
        memset(blocks[i], 7, BLOCK); /* resident */
    }
    memstats before;
    memstats_read(&before);
    for (int i = 0; i < BLOCKS; i += 2) {
        free(blocks[i]); /* holes: the odd blocks keep them from merging into the top */
        blocks[i] = NULL;
    }
    mem_trimmer *t = mem_trimmer_start(20, 1u << 20);
    CHECK(t != NULL);
    const double t0 = now_s();
    while (t && mem_trimmer_count(t) == 0 && now_s() - t0 < 5) {
        struct timespec ms = {0, 10000000L};
        nanosleep(&ms, NULL);
    }
    CHECK(t && mem_trimmer_count(t) > 0);
    memstats after;
    memstats_read(&after);
    if (after.rss_bytes + (2u << 20) > before.rss_bytes) {
        fprintf(stderr, "RSS %llu -> %llu bytes: the holes were not handed back\n",
                (unsigned long long)before.rss_bytes, (unsigned long long)after.rss_bytes);
        check_failures++;
    }
    mem_trimmer_stop(t);
    for (int i = 1; i < BLOCKS; i += 2) free(blocks[i]);
#endif
    mem_trimmer *slow = mem_trimmer_start(3600 * 1000, 0);
    CHECK(slow != NULL);
    const double s0 = now_s();
    mem_trimmer_stop(slow);
    CHECK(now_s() - s0 < 1.0);
    CHECK_DONE();
}
