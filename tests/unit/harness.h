/* SPDX-License-Identifier: MIT
 * harness.h - a tiny unit-test harness with TAP output.
 *
 *   TEST(parses_request_line) { ASSERT_EQ_INT(2, 1 + 1); }
 *
 * Each test file is one executable linked with harness.c. Every test runs in its
 * own child process with a timeout, so a crash or hang fails that test only.
 * Run one test with: ./test_http1 parses_request_line
 */
#ifndef QS_TEST_HARNESS_H
#define QS_TEST_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*qs_test_fn)(void);
void qs_test_register(const char *name, qs_test_fn fn);
void qs_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        qs_test_register(#name, test_##name);                                                      \
    }                                                                                              \
    static void test_##name(void)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            qs_test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                       \
    } while (0)

#define ASSERT_EQ_INT(expected, actual)                                                            \
    do {                                                                                           \
        long long e_ = (long long)(expected), a_ = (long long)(actual);                            \
        if (e_ != a_)                                                                              \
            qs_test_fail(__FILE__, __LINE__, "%s == %s: expected %lld, got %lld", #expected,       \
                         #actual, e_, a_);                                                         \
    } while (0)

#define ASSERT_EQ_STR(expected, actual)                                                            \
    do {                                                                                           \
        const char *e_ = (expected), *a_ = (actual);                                               \
        if (!e_ || !a_ || strcmp(e_, a_) != 0)                                                     \
            qs_test_fail(__FILE__, __LINE__, "%s == %s: expected \"%s\", got \"%s\"", #expected,   \
                         #actual, e_ ? e_ : "(null)", a_ ? a_ : "(null)");                         \
    } while (0)

/* Compares n bytes; prints both sides with escapes on mismatch. */
#define ASSERT_EQ_MEM(expected, expected_len, actual, actual_len)                                  \
    qs_test_assert_mem(__FILE__, __LINE__, (expected), (expected_len), (actual), (actual_len))

void qs_test_assert_mem(const char *file, int line, const void *e, size_t en, const void *a,
                        size_t an);

#endif
