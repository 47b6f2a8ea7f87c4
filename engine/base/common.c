/* Status names, error formatting, logging through the user's callback, allocation helpers
 * and huge-page advice. Thread-safe except cs_set_log, which is meant to be called once at
 * start-up. */
#include "common.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static cs_log_fn g_log_fn;
static void *g_log_user;

const char *cs_status_str(cs_status s) {
    switch (s) {
    case CS_OK: return "ok";
    case CS_ERR_INVALID_ARG: return "invalid argument";
    case CS_ERR_IO: return "i/o error";
    case CS_ERR_FORMAT: return "malformed input";
    case CS_ERR_UNSUPPORTED: return "unsupported";
    case CS_ERR_NOMEM: return "out of memory";
    case CS_ERR_CANCELLED: return "cancelled";
    case CS_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void cs_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "cfgserve: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

cs_status cs_errf(cs_status st, char *msg, size_t msg_size, const char *fmt, ...) {
    if (msg && msg_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msg_size, fmt, ap);
        va_end(ap);
    }
    return st;
}

void cs_set_log(cs_log_fn fn, void *user) {
    g_log_fn = fn;
    g_log_user = user;
}

void cs_log(cs_log_level level, const char *fmt, ...) {
    if (!g_log_fn) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    g_log_fn(level, line, g_log_user);
}

void *cs_malloc(size_t bytes) {
    return malloc(bytes ? bytes : 1);
}

void cs_advise_huge(void *p, size_t bytes) {
    enum { HUGE = 2 * 1024 * 1024 };
    const uintptr_t lo = ((uintptr_t)p + HUGE - 1) / HUGE * HUGE;
    const uintptr_t hi = ((uintptr_t)p + bytes) / HUGE * HUGE;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice: may fail */
}

void *cs_calloc(size_t count, size_t size) {
    return calloc(count ? count : 1, size ? size : 1);
}
