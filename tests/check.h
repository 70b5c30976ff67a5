/* check.h - tiny test helpers: CHECK, CHECK_EQ_INT, CHECK_EQ_STR, CHECK_NEAR. Each failure
 * prints file:line with expected and actual values; check_exit() returns the exit status. */
#ifndef SHOEBOX_TEST_CHECK_H
#define SHOEBOX_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(expected, actual)                                                             \
    do {                                                                                           \
        long long e_ = (long long)(expected), a_ = (long long)(actual);                            \
        check_count++;                                                                             \
        if (e_ != a_) {                                                                            \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #actual,   \
                    e_, a_);                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(expected, actual)                                                             \
    do {                                                                                           \
        const char *e_ = (expected), *a_ = (actual);                                               \
        check_count++;                                                                             \
        if (!e_ || !a_ || strcmp(e_, a_) != 0) {                                                   \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__,        \
                    #actual, e_ ? e_ : "(null)", a_ ? a_ : "(null)");                              \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(expected, actual, tol)                                                          \
    do {                                                                                           \
        double e_ = (double)(expected), a_ = (double)(actual);                                     \
        check_count++;                                                                             \
        if (!(fabs(e_ - a_) <= (double)(tol))) {                                                   \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s: expected %.9g, got %.9g (tolerance %g)\n", __FILE__,       \
                    __LINE__, #actual, e_, a_, (double)(tol));                                     \
        }                                                                                          \
    } while (0)

static inline int check_exit(void)
{
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
