/*
 * Engine-internal basics: the always-on assertion for programmer errors, error-message
 * formatting, checked size arithmetic and logging. Included by every engine module.
 */
#ifndef CS_COMMON_H
#define CS_COMMON_H

#include <cfgserve/cfgserve.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Programmer errors only: anything from a file, request or environment is validated and
 * returned as a cs_status instead. */
#define CS_ASSERT(cond)                                                                    \
    do {                                                                                   \
        if (!(cond)) cs_assert_fail(#cond, __FILE__, __LINE__);                            \
    } while (0)

_Noreturn void cs_assert_fail(const char *expr, const char *file, int line);

/* Writes a formatted message into msg (if non-NULL) and returns st, so error paths read
 * `return cs_errf(CS_ERR_FORMAT, msg, n, "%s: ...", path);`. */
cs_status cs_errf(cs_status st, char *msg, size_t msg_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Overflow-checked size arithmetic: false when the result does not fit. */
static inline bool cs_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cs_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

void cs_log(cs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation helpers that never return NULL for a zero size; callers still check NULL. */
void *cs_malloc(size_t bytes);
void *cs_calloc(size_t count, size_t size);

/* Advises the kernel to back the whole 2 MiB pages inside [p, p + bytes) with
 * transparent huge pages; call it before the memory is first touched. For the large
 * blocks the kernels stream and that are used whole (packed weights, the GEMM scratch):
 * with 4 KiB pages an SD-1.5 512² step's weights outrun the TLB (the step ran at 243-278
 * GFLOP/s against 283-298 with huge pages, alternated runs). Not for the activation
 * arena, which a server plans for its largest request and mostly uses in part:
 * khugepaged fills a region it collapses, so the untouched part would become resident.
 * Without THP support (or with it set to "never") the advice fails and nothing changes. */
void cs_advise_huge(void *p, size_t bytes);

#endif
