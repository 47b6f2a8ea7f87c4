/*
 * job_id: the text form of job ids, "<instance>-<number>" (e.g. "3-187236512399").
 *
 * Why a prefix: several instances behind one load balancer each own their jobs, and
 * GET /jobs/{id}... must reach the owner. A balancer such as nginx cannot do arithmetic on
 * a number but can match a prefix, so the instance (--instance-id, 0..65535) leads the id.
 * In memory an id is one uint64_t: the instance in the top 16 bits, the number (48 bits,
 * never 0, looks random) below; the text form is a bijection of it. Clients treat ids as
 * opaque strings (the JSON carries them as strings).
 *
 * Threads: pure functions, any thread.
 */
#ifndef CS_SERVER_JOB_ID_H
#define CS_SERVER_JOB_ID_H

#include <stdbool.h>
#include <stdint.h>

enum {
    JOB_ID_MAX_INSTANCE = 65535,
    JOB_ID_TEXT_SIZE = 24 /* "65535-281474976710655" and the NUL fit */
};

/* The id of number `number` (only its low 48 bits; 0 becomes 1) on instance `instance`
 * (0..JOB_ID_MAX_INSTANCE; higher bits are dropped). */
uint64_t job_id_make(unsigned instance, uint64_t number);
/* Writes the text form of id to out (JOB_ID_TEXT_SIZE bytes); returns out. */
char *job_id_format(uint64_t id, char out[JOB_ID_TEXT_SIZE]);
/* Parses the text form at the start of s: "<instance>-<number>", each plain decimal
 * digits, instance <= 65535, number in [1, 2^48). *end (if not NULL) is set to the first
 * byte after it. False (and *id untouched) when s does not start with a valid id. */
bool job_id_parse(const char *s, const char **end, uint64_t *id);

#endif
