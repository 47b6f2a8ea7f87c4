/* Per-thread kernel scratch (scratch.h): 64-byte aligned, reused while big enough and
 * grown when not, one buffer per slot, one set per thread, and freed when the thread
 * exits (LeakSanitizer, in the ASan build, fails the test if it is not). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "scratch.h"

/* Writes every byte (ASan: every byte is ours). */
static void fill(void *p, size_t n, int v) { memset(p, v, n); }

static void test_one_thread(void) {
    char *a = scratch_get(SCRATCH_GEMM_A, 1000);
    CHECK(a && (uintptr_t)a % 64 == 0);
    fill(a, 1000, 1);
    CHECK(scratch_get(SCRATCH_GEMM_A, 10) == a); /* big enough: the same buffer */
    CHECK(scratch_get(SCRATCH_GEMM_A, 1000) == a);
    char *b = scratch_get(SCRATCH_GEMM_A, 100000); /* grown */
    CHECK(b && (uintptr_t)b % 64 == 0);
    fill(b, 100000, 2);
    /* Every slot its own buffer, none overlapping another. */
    char *s[SCRATCH_SLOTS];
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        s[i] = scratch_get((scratch_slot)i, 4096);
        fill(s[i], 4096, i);
    }
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        int bad = 0;
        for (int k = 0; k < 4096; k++) bad += s[i][k] != (char)i;
        CHECK_EQ_INT(bad, 0);
    }
}

typedef struct seen {
    pthread_barrier_t *both_alive;
    void *buf[SCRATCH_SLOTS];
} seen;

static void *thread_main(void *arg) {
    seen *out = arg;
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        out->buf[i] = scratch_get((scratch_slot)i, (size_t)(i + 1) << 16);
        fill(out->buf[i], (size_t)(i + 1) << 16, 3);
    }
    pthread_barrier_wait(out->both_alive); /* neither has exited (and freed) yet */
    return NULL; /* the buffers are freed now: a leak here fails the ASan build */
}

/* Two threads alive at once have their own buffers; both give them back when they exit. */
static void test_threads(void) {
    pthread_barrier_t both;
    CHECK_EQ_INT(pthread_barrier_init(&both, NULL, 2), 0);
    pthread_t t[2];
    seen got[2] = {{.both_alive = &both}, {.both_alive = &both}};
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, thread_main, &got[i]), 0);
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&both);
    for (int i = 0; i < SCRATCH_SLOTS; i++) CHECK(got[0].buf[i] && got[0].buf[i] != got[1].buf[i]);
}

/* Whether the mapping holding p is marked for transparent huge pages (smaps VmFlags
 * "hg", set by madvise(MADV_HUGEPAGE) whatever the system-wide THP mode). */
static bool marked_huge(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return false;
    char line[512];
    bool inside = false, huge = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && !strncmp(line, "VmFlags:", 8))
            huge = strstr(line, " hg") != NULL;
    }
    fclose(f);
    return huge;
}

/* Large scratch buffers ask for huge pages (common.h: the TLB). */
static void test_huge_pages(void) {
    FILE *thp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!thp) {
        printf("no transparent huge pages in this kernel: not checked\n");
        return;
    }
    fclose(thp);
    enum { BIG = 16 << 20 };
    char *t = scratch_get(SCRATCH_GEMM_TILES, BIG);
    const uintptr_t page = 2u << 20;
    CHECK(marked_huge((const void *)(((uintptr_t)t + page - 1) / page * page)));
    fill(t, BIG, 4);
}

int main(void) {
    test_one_thread();
    test_threads();
    test_huge_pages();
    CHECK_DONE();
}
