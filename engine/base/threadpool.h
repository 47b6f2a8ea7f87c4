/*
 * A small persistent thread pool for the engine's kernels (our GEMM, attention and the
 * other kernels of ops.h): threads - 1 worker pthreads plus the calling thread share the
 * chunks of one parallel loop at a time.
 *
 * DESIGN. threadpool_for(p, n, grain, fn, arg) cuts [0, n) into contiguous chunks of at
 * least `grain` items and returns when every chunk has run. Loops are posted and chunks
 * claimed with atomics (no lock: a step of a small model is some 300 short loops), each
 * chunk a share of what is still unclaimed (a guided schedule: large chunks first, down
 * to one grain at the end), so a worker that the OS schedules late, or a chunk that costs
 * more, leaves the others little to wait for.
 * A thread out of work polls for up to 50 microseconds (a step is a chain of short loops,
 * and waking a sleeping thread costs tens of microseconds, more under a hypervisor), then
 * sleeps on a condition variable, so an idle pool never holds a core; a loop only signals
 * threads that sleep. Which thread runs a chunk, and where chunk boundaries fall, is left
 * to chance and to the thread count: a kernel must compute every output element with
 * the same operations whichever chunk holds it, so results never depend on the number
 * of threads or the batch.
 *
 * A pool belongs to one owner (a cs_ctx, hence one worker session): threadpool_for is
 * called by one thread at a time and must not be nested (fn must not call it).
 */
#ifndef CS_THREADPOOL_H
#define CS_THREADPOOL_H

#include "common.h"

typedef struct threadpool threadpool;

/* Processes items [begin, end) of a parallel loop. */
typedef void (*threadpool_fn)(void *arg, int64_t begin, int64_t end);

/* A pool of `threads` threads in all (the caller counts as one), 1..64. threads == 1
 * starts no worker: every loop then runs in the caller. */
cs_status threadpool_new(int threads, threadpool **out, char *msg, size_t n);
/* Stops and joins the workers; NULL is a no-op. No loop may be running. */
void threadpool_free(threadpool *p);
/* Threads the pool runs loops on (1 for NULL). */
int threadpool_threads(const threadpool *p);

/* Runs fn over [0, n) in chunks of at least grain (>= 1) items and waits for all of them.
 * p NULL, n <= grain or a one-thread pool: fn(arg, 0, n) in the caller. n <= 0: nothing. */
void threadpool_for(threadpool *p, int64_t n, int64_t grain, threadpool_fn fn, void *arg);

#endif
