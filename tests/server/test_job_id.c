/* Job id text form: round trips over the whole range (instance 0 and 65535, number 1 and
 * 2^48-1), the instance prefix a load balancer routes on, and every malformed form
 * refused without touching the output. */
#include "job_id.h"

#include "check.h"

#include <stdint.h>
#include <string.h>

static void round_trip(unsigned inst, uint64_t num, const char *want) {
    char text[JOB_ID_TEXT_SIZE];
    const uint64_t id = job_id_make(inst, num);
    job_id_format(id, text);
    if (want && strcmp(text, want) != 0) {
        fprintf(stderr, "format(%u, %llu) = \"%s\", want \"%s\"\n", inst,
                (unsigned long long)num, text, want);
        check_failures++;
    }
    uint64_t back = 0;
    const char *end = NULL;
    CHECK(job_id_parse(text, &end, &back));
    CHECK(back == id);
    CHECK(end == text + strlen(text));
}

static void refused(const char *s) {
    uint64_t id = 777;
    if (job_id_parse(s, NULL, &id) || id != 777) {
        fprintf(stderr, "job_id_parse accepted \"%s\"\n", s);
        check_failures++;
    }
}

int main(void) {
    const uint64_t max_num = (1ULL << 48) - 1;
    round_trip(0, 1, "0-1");
    round_trip(0, 123456789, "0-123456789");
    round_trip(7, 42, "7-42");
    round_trip(65535, max_num, "65535-281474976710655");
    round_trip(1, 0, "1-1"); /* a zero number becomes 1: ids are never 0 */
    round_trip(3, max_num + 5, "3-4"); /* only the low 48 bits count */
    CHECK(strlen("65535-281474976710655") < JOB_ID_TEXT_SIZE);
    for (uint64_t x = 1; x < (1ULL << 60); x = x * 3 + 1)
        round_trip((unsigned)(x % 65536), x, NULL);

    /* Distinct instances never share an id, even with the same number. */
    CHECK(job_id_make(1, 99) != job_id_make(2, 99));
    CHECK(job_id_make(0, 0) != 0);

    /* The parser stops after the id: the routes' suffixes follow it. */
    uint64_t id = 0;
    const char *end = NULL;
    CHECK(job_id_parse("12-345/events", &end, &id));
    CHECK(id == job_id_make(12, 345));
    CHECK(end && strcmp(end, "/events") == 0);

    refused("");
    refused("123");          /* the old plain-number form */
    refused("-5");           /* no instance */
    refused("5-");           /* no number */
    refused("5-0");          /* never 0 */
    refused("65536-1");      /* instance out of range */
    refused("123456-1");     /* too many instance digits */
    refused("1-281474976710656");  /* 2^48 */
    refused("1-99999999999999999999999"); /* would overflow 64 bits */
    refused("a-1");
    refused("1_2");
    refused(" 1-2");
    CHECK_DONE();
}
