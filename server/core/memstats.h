/*
 * memstats: the process's memory as /metrics reports it — resident set size (what the
 * kernel and a container limit count) and the malloc heap's own figures (glibc
 * mallinfo2: bytes handed out, bytes free inside the heap, bytes in mmapped chunks). The
 * difference between RSS and "in use" is what the allocator holds without a live
 * allocation: fragmentation and free memory not yet returned.
 *
 * Threads: any thread. mallinfo2 walks every malloc arena under its lock: cheap at
 * scrape rate (microseconds), not for a hot path.
 */
#ifndef CS_SERVER_MEMSTATS_H
#define CS_SERVER_MEMSTATS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct memstats {
    uint64_t rss_bytes;      /* VmRSS; 0 when /proc is unreadable */
    uint64_t heap_bytes;     /* sbrk'd and arena memory (mallinfo2 arena) */
    uint64_t in_use_bytes;   /* allocated chunks (uordblks) + mmapped chunks (hblkhd) */
    uint64_t free_bytes;     /* free chunks inside the heap (fordblks) */
    uint64_t mmapped_bytes;  /* chunks served by mmap (hblkhd) */
    bool have_malloc;        /* false when built without glibc's mallinfo2 */
} memstats;

/* Fills *out; fields it cannot read are 0. */
void memstats_read(memstats *out);

/* Makes every thread allocate from malloc's main arena (glibc mallopt M_ARENA_MAX = 1),
 * unless the environment chose already (MALLOC_ARENA_MAX, or GLIBC_TUNABLES naming
 * arena_max). Why: a thread that mallocs gets an arena of its own (up to 8 per core), and
 * the top of such an arena stays resident after its chunks are freed — malloc_trim only
 * returns whole free pages inside it, and glibc shrinks it only when a chunk of 64 KiB or
 * more is freed into it. libmicrohttpd's connection thread allocates each connection's
 * 32 KiB memory pool there: a storm of 96 connections left ~3 MiB of freed pools
 * resident between storms. In the main arena, memstats_trim returns that memory.
 * Call once at start-up, before any thread exists. Returns the arena limit in force:
 * 1, or 0 when the environment's choice was kept (or this is not glibc). */
int memstats_single_arena(void);

/* Returns free heap memory to the kernel (glibc malloc_trim: the top of each arena and
 * whole free pages inside it) when more than min_free bytes lie free in the heap; true if
 * it trimmed. Takes every arena's lock while it runs (well under a millisecond for our
 * heaps): call it now and then, not per allocation. */
bool memstats_trim(uint64_t min_free);

#endif
