/*
 * The kernel thread pool (see threadpool.h for the design). Owns its worker threads and
 * one mutex that guards every field below `lock`; workers touch a loop's arguments only
 * while they hold a claimed chunk, and the caller does not return before every claimed
 * chunk is done, so a loop's arguments outlive every use of them.
 */
#include "threadpool.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

/* A claim takes 1/(threads · POOL_CLAIM_SHARE) of the items still unclaimed (at least
 * the loop's grain): big chunks while much is left, so claims stay few, and chunks that
 * shrink to one grain at the end, so the threads finish together (the "guided" schedule:
 * a thread the OS runs late or a costlier chunk leaves the others at most one small chunk
 * to wait for). */
enum { POOL_MAX_THREADS = 64, POOL_CLAIM_SHARE = 2 };

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
    int64_t next;     /* first unclaimed item */
    int64_t finished; /* items done */
};

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
        if (p->finished == p->n) pthread_cond_signal(&p->done);
    }
}

static void *worker_main(void *user) {
    threadpool *p = user;
    pthread_mutex_lock(&p->lock);
    uint64_t seen = p->generation;
    for (;;) {
        while (p->generation == seen && !p->stop)
            pthread_cond_wait(&p->work, &p->lock);
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
    pthread_cond_broadcast(&p->work);
    run_chunks(p);
    while (p->finished < p->n)
        pthread_cond_wait(&p->done, &p->lock);
    p->fn = NULL;
    p->arg = NULL;
    pthread_mutex_unlock(&p->lock);
}
