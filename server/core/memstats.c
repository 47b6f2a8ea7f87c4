/*
 * memstats: RSS from /proc/self/statm, heap figures from mallinfo2 (see memstats.h).
 */
#include "memstats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define CS_HAVE_MALLINFO2 1
#endif

static uint64_t rss_bytes(void) {
    /* statm's second field is resident pages: one short read, no parsing of names. */
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    const int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    const long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

void memstats_read(memstats *out) {
    memset(out, 0, sizeof *out);
    out->rss_bytes = rss_bytes();
#ifdef CS_HAVE_MALLINFO2
    const struct mallinfo2 mi = mallinfo2();
    out->heap_bytes = mi.arena;
    out->in_use_bytes = mi.uordblks + mi.hblkhd;
    out->free_bytes = mi.fordblks;
    out->mmapped_bytes = mi.hblkhd;
    out->have_malloc = true;
#endif
}

int memstats_single_arena(void) {
#ifdef CS_HAVE_MALLINFO2
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_ARENA_MAX") || (tunables && strstr(tunables, "arena_max"))) return 0;
    return mallopt(M_ARENA_MAX, 1) == 1 ? 1 : 0;
#else
    return 0;
#endif
}

bool memstats_trim(uint64_t min_free) {
#ifdef CS_HAVE_MALLINFO2
    if (mallinfo2().fordblks <= min_free) return false;
    malloc_trim(0);
    return true;
#else
    (void)min_free;
    return false;
#endif
}
