/*
 * The kernel thread pool (see threadpool.h for the design). A loop is posted, claimed and
 * finished through atomics alone; the mutex and the two condition variables serve only
 * the threads that sleep (an idle worker, a caller whose loop runs long), so a step's
 * chain of short loops never takes a lock.
 *
 * Claims: `claim` holds the loop's 32-bit generation (high half) and its first unclaimed
 * item (low half); a thread claims a chunk with a compare-and-swap that names the
 * generation it joined, so a thread that lags behind can never take items of a later
 * loop. The loop's fields (fn, arg, n, grain) are read before the swap, so they must be
 * the claimed loop's: the caller first closes the old loop (its claim word moves to the
 * next generation with no item left, a release store), then writes the fields (release),
 * then opens the claims. A thread that read any new field (acquire) therefore sees the
 * close and its swap on the old loop fails; one that read only old fields claims from the
 * old loop, which cannot finish (and let the caller move on) while that chunk runs.
 * (A lag of 2^32 loops would be needed to mistake one loop for another.)
 *
 * Sleeping without lost wake-ups: a sleeper announces itself (a sequentially consistent
 * increment) and then re-reads what it waits for under the mutex; the waker publishes
 * (sequentially consistent) and then reads the announcement, and signals under the mutex.
 * One of the two sees the other.
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

/* Items of one posted loop at most (the claim's low half); threadpool_for cuts longer
 * loops into segments. */
#define POOL_MAX_ITEMS ((int64_t)INT32_MAX)

#define POOL_STOP UINT64_MAX

struct threadpool {
    int threads;        /* caller + workers */
    pthread_t *workers; /* threads - 1 */
    int started;        /* workers actually created */

    /* The current loop, written by the caller before it posts the loop. */
    _Atomic(threadpool_fn) fn;
    _Atomic(void *) arg;
    _Atomic int64_t n, grain;

    _Atomic uint64_t posted;     /* generation of the latest loop; POOL_STOP once stopping */
    _Atomic uint64_t claim;      /* generation << 32 | first unclaimed item */
    _Atomic int64_t unfinished;  /* items of the current loop not yet done */
    _Atomic int sleepers;        /* workers asleep (or about to be) on `work` */
    _Atomic bool caller_asleep;  /* the caller sleeps (or is about to) on `done` */
    _Atomic bool running;        /* a loop is posted and not finished (checks misuse) */

    pthread_mutex_t lock; /* only for sleeping and waking */
    pthread_cond_t work;  /* a new loop was posted, or stop */
    pthread_cond_t done;  /* the last chunk of a loop finished */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Polls until cond(p, arg) holds or POOL_SPIN_NS pass; true if it holds. */
static bool poll_briefly(threadpool *p, bool (*cond)(threadpool *, uint64_t), uint64_t arg) {
    const uint64_t t0 = now_ns();
    for (int i = 1;; i++) {
        if (cond(p, arg)) return true;
        cpu_relax();
        if (i % 64 == 0 && now_ns() - t0 > POOL_SPIN_NS) return false;
    }
}

static bool new_loop(threadpool *p, uint64_t seen) {
    return atomic_load_explicit(&p->posted, memory_order_acquire) != seen;
}

static bool loop_finished(threadpool *p, uint64_t unused) {
    (void)unused;
    return atomic_load_explicit(&p->unfinished, memory_order_acquire) == 0;
}

/* Claims and runs chunks of loop `gen` until none is left (or the loop is no longer
 * current); the thread that finishes the loop's last item wakes a sleeping caller. */
static void run_chunks(threadpool *p, uint64_t gen) {
    const uint32_t tag = (uint32_t)gen;
    uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(c >> 32) != tag) return;
        const threadpool_fn fn = atomic_load_explicit(&p->fn, memory_order_acquire);
        void *arg = atomic_load_explicit(&p->arg, memory_order_acquire);
        const int64_t n = atomic_load_explicit(&p->n, memory_order_acquire);
        const int64_t grain = atomic_load_explicit(&p->grain, memory_order_acquire);
        const int64_t next = (int64_t)(uint32_t)c;
        if (next >= n) return;
        const int64_t left = n - next;
        int64_t take = left / ((int64_t)p->threads * POOL_CLAIM_SHARE);
        if (take < grain) take = grain;
        if (left - take < grain) take = left; /* no tail chunk under the grain */
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + (uint64_t)take,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* c now holds the current claim */
        fn(arg, next, next + take);
        if (atomic_fetch_sub_explicit(&p->unfinished, take, memory_order_seq_cst) == take &&
            atomic_load_explicit(&p->caller_asleep, memory_order_seq_cst)) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
        c = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

static void *worker_main(void *user) {
    threadpool *p = user;
    uint64_t seen = 0; /* the pool starts with no loop posted */
    for (;;) {
        if (!poll_briefly(p, new_loop, seen)) {
            pthread_mutex_lock(&p->lock);
            atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
            while (atomic_load_explicit(&p->posted, memory_order_seq_cst) == seen)
                pthread_cond_wait(&p->work, &p->lock);
            atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
            pthread_mutex_unlock(&p->lock);
        }
        seen = atomic_load_explicit(&p->posted, memory_order_acquire);
        if (seen == POOL_STOP) break;
        run_chunks(p, seen);
    }
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
    atomic_store_explicit(&p->posted, POOL_STOP, memory_order_seq_cst);
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

/* A segment of a loop longer than POOL_MAX_ITEMS: items shifted by `base`. */
typedef struct pool_segment {
    threadpool_fn fn;
    void *arg;
    int64_t base;
} pool_segment;

static void run_segment(void *arg, int64_t begin, int64_t end) {
    const pool_segment *s = arg;
    s->fn(s->arg, s->base + begin, s->base + end);
}

/* Posts loop [0, n) (n <= POOL_MAX_ITEMS), takes part in it and returns when it is done. */
static void run_loop(threadpool *p, int64_t n, int64_t grain, threadpool_fn fn, void *arg) {
    CS_ASSERT(!atomic_exchange(&p->running, true)); // one loop at a time, never nested
    const uint64_t gen = atomic_load_explicit(&p->posted, memory_order_relaxed) + 1;
    const uint64_t tag = (uint64_t)(uint32_t)gen << 32;
    // Close the previous loop's claims before its fields change (see the top of the file).
    atomic_store_explicit(&p->claim, tag | UINT32_MAX, memory_order_release);
    atomic_store_explicit(&p->fn, fn, memory_order_release);
    atomic_store_explicit(&p->arg, arg, memory_order_release);
    atomic_store_explicit(&p->n, n, memory_order_release);
    atomic_store_explicit(&p->grain, grain, memory_order_release);
    atomic_store_explicit(&p->unfinished, n, memory_order_relaxed);
    atomic_store_explicit(&p->claim, tag, memory_order_release);
    atomic_store_explicit(&p->posted, gen, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
    }
    run_chunks(p, gen);
    if (!poll_briefly(p, loop_finished, 0)) {
        pthread_mutex_lock(&p->lock);
        atomic_store_explicit(&p->caller_asleep, true, memory_order_seq_cst);
        while (atomic_load_explicit(&p->unfinished, memory_order_seq_cst) != 0)
            pthread_cond_wait(&p->done, &p->lock);
        atomic_store_explicit(&p->caller_asleep, false, memory_order_relaxed);
        pthread_mutex_unlock(&p->lock);
    }
    atomic_store_explicit(&p->running, false, memory_order_relaxed);
}

void threadpool_for(threadpool *p, int64_t n, int64_t grain, threadpool_fn fn, void *arg) {
    CS_ASSERT(grain >= 1);
    if (n <= 0) return;
    if (!p || p->threads == 1 || n <= grain) {
        fn(arg, 0, n);
        return;
    }
    if (n <= POOL_MAX_ITEMS) {
        run_loop(p, n, grain, fn, arg);
        return;
    }
    for (int64_t base = 0; base < n; base += POOL_MAX_ITEMS) {
        pool_segment seg = {fn, arg, base};
        const int64_t len = n - base < POOL_MAX_ITEMS ? n - base : POOL_MAX_ITEMS;
        if (len <= grain)
            fn(arg, base, base + len);
        else
            run_loop(p, len, grain, run_segment, &seg);
    }
}
