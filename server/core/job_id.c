/*
 * job_id: the text form of job ids (see job_id.h).
 */
#include "job_id.h"

#include <stdio.h>

enum { NUMBER_BITS = 48 };
#define NUMBER_MASK ((1ULL << NUMBER_BITS) - 1)

uint64_t job_id_make(unsigned instance, uint64_t number) {
    number &= NUMBER_MASK;
    if (!number) number = 1;
    return (uint64_t)(instance & JOB_ID_MAX_INSTANCE) << NUMBER_BITS | number;
}

char *job_id_format(uint64_t id, char out[JOB_ID_TEXT_SIZE]) {
    snprintf(out, JOB_ID_TEXT_SIZE, "%u-%llu", (unsigned)(id >> NUMBER_BITS),
             (unsigned long long)(id & NUMBER_MASK));
    return out;
}

/* Up to max_digits decimal digits at *s, value <= max; advances *s. */
static bool digits(const char **s, int max_digits, uint64_t max, uint64_t *v) {
    const char *p = *s;
    uint64_t x = 0;
    int n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++n > max_digits) return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (!n || x > max) return false;
    *s = p;
    *v = x;
    return true;
}

bool job_id_parse(const char *s, const char **end, uint64_t *id) {
    uint64_t inst, num;
    /* 2^48 - 1 has 15 digits: a longer run is out of range, and the digit cap keeps the
     * accumulator from overflowing. */
    if (!digits(&s, 5, JOB_ID_MAX_INSTANCE, &inst) || *s != '-') return false;
    s++;
    if (!digits(&s, 15, NUMBER_MASK, &num) || num == 0) return false;
    if (end) *end = s;
    *id = inst << NUMBER_BITS | num;
    return true;
}
