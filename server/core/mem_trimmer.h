/*
 * mem_trimmer: a thread that hands free heap memory back to the kernel once per period
 * (memstats_trim: when more than a minimum lies free), whatever the traffic does.
 *
 * Why a thread of its own: memory is freed in bursts that end when traffic ends — a wrk
 * storm's connections close together, their libmicrohttpd pools are freed at once — and
 * nothing else runs afterwards to trim it (trimming on job retire left ~2-4 MiB resident
 * after a storm whenever its last connections closed after the last job). Once a second
 * costs one wake-up and a mallinfo2 walk (microseconds).
 */
#ifndef CS_SERVER_MEM_TRIMMER_H
#define CS_SERVER_MEM_TRIMMER_H

#include <stdint.h>

typedef struct mem_trimmer mem_trimmer;

/* Starts the thread; NULL when it cannot (the server then runs without it). */
mem_trimmer *mem_trimmer_start(unsigned period_ms, uint64_t min_free);

/* How many times it has trimmed so far (for tests and the start-up log). */
uint64_t mem_trimmer_count(mem_trimmer *t);

/* Stops and joins the thread, frees t; NULL is a no-op. */
void mem_trimmer_stop(mem_trimmer *t);

#endif
