/*
 * Per-thread scratch buffers for the kernels' pool chunks (packing tiles, attention
 * blocks). A chunk needs a few buffers of a size fixed by the kernel; allocating them per
 * chunk cost a malloc per buffer per chunk (thousands per UNet step, all on one lock when
 * the server limits malloc to one arena) and, after each malloc_trim, page faults again.
 *
 * DESIGN. Each thread keeps one buffer per slot (scratch_slot), 64-byte aligned, that
 * only grows: scratch_get returns it with at least `bytes`, its contents undefined. A
 * thread's buffers are freed when the thread exits (a pthread key destructor), so pool
 * workers and server workers give them back when they are joined. Distinct users take
 * distinct slots, so a kernel never receives a buffer another kernel up the call stack
 * still holds.
 */
#ifndef CS_SCRATCH_H
#define CS_SCRATCH_H

#include <stddef.h>

typedef enum scratch_slot {
    SCRATCH_GEMM_A,     /* gemm.c: packed rows of x (linear) / activation tiles (conv) */
    SCRATCH_GEMM_PAD,   /* gemm.c: a padded or widened weight panel block */
    SCRATCH_GEMM_F32,   /* gemm.c: the fp32 tile of a bf16 conv before rounding */
    SCRATCH_GEMM_SPLIT, /* gemm.c: a bf16 weight panel block split into floats */
    SCRATCH_GEMM_TILES, /* gemm.c: a conv's tiles packed once for all its row blocks (the
                         * caller's buffer, read by the pool's threads during the call) */
    SCRATCH_ATTN_Q,     /* ops_attention.c: the item's query panels */
    SCRATCH_ATTN_S,     /* ops_attention.c: scores / probabilities */
    SCRATCH_ATTN_P,     /* ops_attention.c: bf16 probability pairs */
    SCRATCH_ATTN_O,     /* ops_attention.c: output tiles */
    SCRATCH_ATTN_ROWS,  /* ops_attention.c: per-query running max, rescale and sums */
    SCRATCH_ATTN_SPLIT, /* ops_attention.c: a bf16 key / value panel split into floats */
    SCRATCH_SLOTS
} scratch_slot;

/* The calling thread's buffer for slot, at least `bytes` long (never NULL: running out of
 * memory here aborts, like the allocation it replaces). */
void *scratch_get(scratch_slot slot, size_t bytes);

#endif
