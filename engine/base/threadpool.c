/*
 * The kernel thread pool (see threadpool.h for the design). Owns its worker threads and
 * one mutex that guards every field below `lock`; workers touch a loop's arguments only
 * while they hold a claimed chunk, and the caller does not return before every claimed
 * chunk is done, so a loop's arguments outlive every use of them.
 */
#include "threadpool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* A claim takes 1/(threads · POOL_CLAIM_SHARE) of the items still unclaimed (at least
 * the loop's grain): big chunks while much is left, so claims stay few, and chunks that
 * shrink to one grain at the end, so the threads finish together (the "guided" schedule:
 * a thread the OS runs late or a costlier chunk leaves the others at most one small chunk
 * to wait for). */
enum { POOL_MAX_THREADS = 64, POOL_CLAIM_SHARE = 2 };

/* How long a thread that ran out of work polls before it sleeps. A model's step is a
 * chain of loops with a few microseconds of serial work between them, and waking a
 * sleeping thread costs tens of microseconds (two futex calls and a context switch, more
 * under a hypervisor): a short poll keeps the threads awake across the chain, and the
 * bound keeps an idle pool from holding a core. */
enum { POOL_SPIN_NS = 50000 };

struct threadpool {
    int threads;        /* caller + workers */
    pthread_t *workers; /* threads - 1 */
    int started;        /* workers actually created */

    pthread_mutex_t lock;
    pthread_cond_t work; /* a new loop was posted, or stop */
    pthread_cond_t done; /* the last chunk of a loop finished */
    /* Guarded by lock: */
    uint64_t generation; /* bumped per loop, so a sleeping worker sees a new one */
    bool stop;
    threadpool_fn fn;
    void *arg;
    int64_t n, grain;
    int64_t next;       /* first unclaimed item */
    int64_t finished;   /* items done */
    int sleepers;       /* workers waiting on `work` */
    bool caller_asleep; /* the caller waits on `done` */
    /* Lock-free mirrors for polling (written under lock): */
    _Atomic uint64_t posted;    /* = generation; UINT64_MAX once stopping */
    _Atomic int64_t unfinished; /* n - finished of the current loop */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Polls until cond(p, arg) holds or POOL_SPIN_NS pass; the caller then takes the lock and
 * checks again before it sleeps, so the poll only saves wake-ups, it decides nothing. */
static void poll_briefly(threadpool *p, bool (*cond)(threadpool *, uint64_t), uint64_t arg) {
    const uint64_t t0 = now_ns();
    for (int i = 1;; i++) {
        if (cond(p, arg)) return;
        cpu_relax();
        if (i % 64 == 0 && now_ns() - t0 > POOL_SPIN_NS) return;
    }
}

static bool new_loop(threadpool *p, uint64_t seen) {
    return atomic_load_explicit(&p->posted, memory_order_acquire) != seen;
}

static bool loop_finished(threadpool *p, uint64_t unused) {
    (void)unused;
    return atomic_load_explicit(&p->unfinished, memory_order_acquire) == 0;
}

/* Claims and runs chunks of the current loop until none is left; called and returns with
 * p->lock held. */
static void run_chunks(threadpool *p) {
    while (p->next < p->n) {
        const int64_t left = p->n - p->next;
        int64_t take = left / ((int64_t)p->threads * POOL_CLAIM_SHARE);
        if (take < p->grain) take = p->grain;
        if (left - take < p->grain) take = left; /* no tail chunk under the grain */
        const int64_t begin = p->next, end = begin + take;
        p->next = end;
        const threadpool_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->lock);
        fn(arg, begin, end);
        pthread_mutex_lock(&p->lock);
        p->finished += take;
        atomic_store_explicit(&p->unfinished, p->n - p->finished, memory_order_release);
        if (p->finished == p->n && p->caller_asleep) pthread_cond_signal(&p->done);
    }
}

static void *worker_main(void *user) {
    threadpool *p = user;
    pthread_mutex_lock(&p->lock);
    uint64_t seen = p->generation;
    for (;;) {
        if (p->generation == seen && !p->stop) {
            pthread_mutex_unlock(&p->lock);
            poll_briefly(p, new_loop, seen);
            pthread_mutex_lock(&p->lock);
        }
        while (p->generation == seen && !p->stop) {
            p->sleepers++;
            pthread_cond_wait(&p->work, &p->lock);
            p->sleepers--;
        }
        if (p->stop) break;
        seen = p->generation;
        run_chunks(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

cs_status threadpool_new(int threads, threadpool **out, char *msg, size_t n) {
    *out = NULL;
    if (threads < 1 || threads > POOL_MAX_THREADS)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "threadpool: %d threads (must be 1..%d)",
                       threads, POOL_MAX_THREADS);
    threadpool *p = cs_calloc(1, sizeof *p);
    if (!p) return cs_errf(CS_ERR_NOMEM, msg, n, "threadpool: out of memory");
    p->threads = threads;
    if (pthread_mutex_init(&p->lock, NULL)) goto fail_mutex;
    if (pthread_cond_init(&p->work, NULL)) goto fail_work;
    if (pthread_cond_init(&p->done, NULL)) goto fail_done;
    p->workers = cs_calloc((size_t)threads, sizeof *p->workers);
    if (!p->workers) goto fail_workers;
    // Workers take no signals: those belong to the threads of the embedding program.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < threads - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p)) break;
        p->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->started < threads - 1) {
        threadpool_free(p);
        return cs_errf(CS_ERR_NOMEM, msg, n, "threadpool: cannot start %d worker threads",
                       threads - 1);
    }
    *out = p;
    return CS_OK;

fail_workers:
    pthread_cond_destroy(&p->done);
fail_done:
    pthread_cond_destroy(&p->work);
fail_work:
    pthread_mutex_destroy(&p->lock);
fail_mutex:
    free(p);
    return cs_errf(CS_ERR_NOMEM, msg, n, "threadpool: cannot create its mutex/conditions");
}

void threadpool_free(threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    atomic_store_explicit(&p->posted, UINT64_MAX, memory_order_release);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int threadpool_threads(const threadpool *p) {
    return p ? p->threads : 1;
}

void threadpool_for(threadpool *p, int64_t n, int64_t grain, threadpool_fn fn, void *arg) {
    CS_ASSERT(grain >= 1);
    if (n <= 0) return;
    if (!p || p->threads == 1 || n <= grain) {
        fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&p->lock);
    CS_ASSERT(p->fn == NULL); // one loop at a time, never nested
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->grain = grain;
    p->next = 0;
    p->finished = 0;
    p->generation++;
    atomic_store_explicit(&p->unfinished, n, memory_order_relaxed);
    atomic_store_explicit(&p->posted, p->generation, memory_order_release);
    if (p->sleepers) pthread_cond_broadcast(&p->work);
    run_chunks(p);
    if (p->finished < p->n) {
        pthread_mutex_unlock(&p->lock);
        poll_briefly(p, loop_finished, 0);
        pthread_mutex_lock(&p->lock);
    }
    while (p->finished < p->n) {
        p->caller_asleep = true;
        pthread_cond_wait(&p->done, &p->lock);
        p->caller_asleep = false;
    }
    p->fn = NULL;
    p->arg = NULL;
    pthread_mutex_unlock(&p->lock);
}
