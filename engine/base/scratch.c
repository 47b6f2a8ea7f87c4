/* Per-thread kernel scratch (see scratch.h for the design). */
#include "scratch.h"

#include <pthread.h>
#include <stdlib.h>

#include "common.h"

enum { SCRATCH_ALIGN = 64 };

typedef struct thread_scratch {
    void *buf[SCRATCH_SLOTS];
    size_t cap[SCRATCH_SLOTS];
    int registered; /* the exit destructor knows this thread's buffers */
} thread_scratch;

static _Thread_local thread_scratch tls;
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* Runs when a thread that used scratch exits; arg is its thread_scratch. */
static void free_thread_scratch(void *arg) {
    thread_scratch *t = arg;
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        free(t->buf[i]);
        t->buf[i] = NULL;
        t->cap[i] = 0;
    }
    t->registered = 0;
}

static void make_key(void) {
    CS_ASSERT(pthread_key_create(&exit_key, free_thread_scratch) == 0);
}

void *scratch_get(scratch_slot slot, size_t bytes) {
    CS_ASSERT(slot >= 0 && slot < SCRATCH_SLOTS);
    if (bytes <= tls.cap[slot]) return tls.buf[slot];
    if (!tls.registered) { /* the thread's first buffer: have them freed when it exits */
        pthread_once(&key_once, make_key);
        CS_ASSERT(pthread_setspecific(exit_key, &tls) == 0);
        tls.registered = 1;
    }
    const size_t cap = (bytes + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
    free(tls.buf[slot]);
    tls.buf[slot] = aligned_alloc(SCRATCH_ALIGN, cap);
    CS_ASSERT(tls.buf[slot]);
    cs_advise_huge(tls.buf[slot], cap);
    tls.cap[slot] = cap;
    return tls.buf[slot];
}
