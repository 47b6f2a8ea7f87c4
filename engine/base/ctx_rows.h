/*
 * Row groups: a forward pass over a batch split into groups of rows that run side by
 * side, one group per pool thread, each on its own part of the ctx's arena with its
 * kernels run serially by that thread.
 *
 * WHY. A small model's kernels (the default model's 8 × 8 latents: some 300 products and
 * norms a step, a few microseconds each) cannot share one product between two cores:
 * the operands written by one core's chunks are read by the other core's in the next
 * kernel, and moving them between the cores' caches costs as much as the arithmetic
 * (measured: a one-row step takes 1.93 ms on one thread and 1.83 ms on two on Zen 5, and
 * is 1.6× slower on two than on one on Zen 4, so a lone row runs on one thread). Rows of a
 * batch are independent, so two cores that each run whole rows share nothing but the
 * read-only weights: a CFG pair's two rows then cost 1.95 ms instead of 2.99, 16 rows
 * 13.2 ms instead of 16.0. Large models keep splitting each product across the threads
 * (their rows would each stream every weight from memory: SD-1.5 is 1.6× slower so).
 *
 * Results are the same bits either way: every kernel computes a row's outputs with the
 * same operations whatever batch the row is in (the engine's batch invariance).
 */
#ifndef CS_CTX_ROWS_H
#define CS_CTX_ROWS_H

#include "ctx.h"

/* Runs rows [row0, row0 + rows) of the pass on `sub`: a ctx of its own arena, no pool and
 * no tap; sub->lora is NULL (the callback narrows the parent's to its rows). */
typedef void (*ctx_rows_fn)(cs_ctx *sub, const cs_ctx *parent, void *arg, int64_t row0,
                            int64_t rows);

/* Threads a pass on c will run on: its pool's, or for a measuring ctx the plan's
 * (c->plan_threads, at least 1). */
int ctx_threads(const cs_ctx *c);

/* The groups `rows` rows split into on `threads` threads (rows differ by at most one
 * between groups, the first groups take the extra ones): min(threads, rows). */
int ctx_row_groups(int64_t rows, int threads);
/* Rows of the largest group. */
int64_t ctx_group_rows(int64_t rows, int groups);

/* Runs fn on `groups` groups of c's `rows` rows side by side on c's pool, each with an
 * arena of group_bytes taken from c's (released afterwards); the flops of the groups add
 * to c's. A measuring ctx only reserves the arenas. Returns false, having run nothing,
 * when c's arena has no room for them (a ctx planned for fewer threads). */
bool ctx_run_row_groups(cs_ctx *c, int64_t rows, int groups, size_t group_bytes, ctx_rows_fn fn,
                        void *arg);

#endif
