/* Tiny assertion macros for unit tests: each failure prints both values and file:line,
 * counts, and the test exits non-zero at the end (CHECK_DONE). */
#ifndef CS_TEST_CHECK_H
#define CS_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);        \
            check_failures++;                                                               \
        }                                                                                   \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                  \
    do {                                                                                    \
        long long va_ = (long long)(a), vb_ = (long long)(b);                               \
        if (va_ != vb_) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s = %lld, %s = %lld\n", __FILE__, \
                    __LINE__, #a, va_, #b, vb_);                                            \
            check_failures++;                                                               \
        }                                                                                   \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                               \
    do {                                                                                    \
        double va_ = (double)(a), vb_ = (double)(b);                                        \
        if (!(fabs(va_ - vb_) <= (tol))) {                                                  \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g (tol %g)\n",    \
                    __FILE__, __LINE__, #a, va_, #b, vb_, (double)(tol));                   \
            check_failures++;                                                               \
        }                                                                                   \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                     \
    do {                                                                                    \
        const char *h_ = (hay), *n_ = (needle);                                             \
        if (!h_ || !strstr(h_, n_)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK_STR_CONTAINS failed: \"%s\" lacks \"%s\"\n",      \
                    __FILE__, __LINE__, h_ ? h_ : "(null)", n_);                            \
            check_failures++;                                                               \
        }                                                                                   \
    } while (0)

#define CHECK_DONE()                                                                        \
    do {                                                                                    \
        if (check_failures) {                                                               \
            fprintf(stderr, "%d check(s) failed\n", check_failures);                        \
            return 1;                                                                       \
        }                                                                                   \
        printf("all checks passed\n");                                                      \
        return 0;                                                                           \
    } while (0)

#endif
