/*
 * mem_trimmer: the periodic malloc_trim thread (see mem_trimmer.h).
 */
#include "mem_trimmer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "memstats.h"

struct mem_trimmer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* signalled by stop */
    bool stopping;
    unsigned period_ms;
    uint64_t min_free;
    uint64_t trims;
};

static void *trimmer_main(void *arg) {
    mem_trimmer *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += t->period_ms / 1000;
        until.tv_nsec += (long)(t->period_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!t->stopping && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&t->wake, &t->lock, &until);
        if (t->stopping) break;
        pthread_mutex_unlock(&t->lock); /* trimming takes malloc's locks, not ours */
        const bool trimmed = memstats_trim(t->min_free);
        pthread_mutex_lock(&t->lock);
        if (trimmed) t->trims++;
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

mem_trimmer *mem_trimmer_start(unsigned period_ms, uint64_t min_free) {
    mem_trimmer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->period_ms = period_ms ? period_ms : 1;
    t->min_free = min_free;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->lock, NULL);
    if (pthread_create(&t->thread, NULL, trimmer_main, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    return t;
}

uint64_t mem_trimmer_count(mem_trimmer *t) {
    pthread_mutex_lock(&t->lock);
    const uint64_t n = t->trims;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void mem_trimmer_stop(mem_trimmer *t) {
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
