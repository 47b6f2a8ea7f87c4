/* memstats: memstats_single_arena puts a new thread's allocations in the main arena (the
 * sbrk heap, which malloc_trim shrinks) instead of an arena of the thread's own (an
 * mmapped region far from it): the test fails without the call. Also: the figures of
 * memstats_read are consistent (RSS > 0, in use covers a live 1 MiB block), and
 * memstats_trim refuses when less than its minimum lies free. The malloc checks skip under
 * sanitizers (their allocator is not glibc's). */
#include "memstats.h"

#include "check.h"
#include "sanitized.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(CS_SANITIZED) && defined(__GLIBC__)
/* A small block allocated by a fresh thread (a fresh thread has no cached arena). */
static void *thread_block(void *arg) {
    (void)arg;
    return malloc(200);
}

static int in_main_heap(const void *p) {
    /* The main arena grows by sbrk: its blocks lie below the current break, close to it;
     * other arenas are 64 MiB-aligned mmaps, far above it on x86-64 and aarch64 Linux. */
    const uintptr_t brk_now = (uintptr_t)sbrk(0);
    const uintptr_t a = (uintptr_t)p;
    return a < brk_now && brk_now - a < ((uintptr_t)1 << 30);
}
#endif

int main(void) {
#if !defined(CS_SANITIZED) && defined(__GLIBC__)
    const int arenas = memstats_single_arena();
    CHECK(arenas == 1 || getenv("MALLOC_ARENA_MAX") || getenv("GLIBC_TUNABLES"));
    if (arenas == 1) {
        void *mine = malloc(200);
        CHECK(in_main_heap(mine));
        for (int i = 0; i < 4; i++) {
            pthread_t t;
            void *theirs = NULL;
            CHECK(pthread_create(&t, NULL, thread_block, NULL) == 0);
            CHECK(pthread_join(t, &theirs) == 0);
            if (!in_main_heap(theirs)) {
                fprintf(stderr, "thread %d allocated at %p, outside the main heap (break %p)\n",
                        i, theirs, sbrk(0));
                check_failures++;
            }
            free(theirs);
        }
        free(mine);
    }
#endif
    memstats m;
    memstats_read(&m);
    CHECK(m.rss_bytes > 0);
#ifndef CS_SANITIZED /* mallinfo2 reads glibc's heap, which a sanitizer's allocator bypasses */
    if (m.have_malloc) {
        char *big = malloc(1u << 20);
        memset(big, 1, 1u << 20);
        memstats after;
        memstats_read(&after);
        CHECK(after.in_use_bytes >= m.in_use_bytes + (1u << 20));
        free(big);
        CHECK(!memstats_trim(UINT64_MAX)); /* never that much free */
    }
#endif
    CHECK_DONE();
}
