/* runner.h: axon's unit test runner (libuv style).
 *
 *     TEST(timer_fires_once) {
 *         ...
 *         ASSERT(x == 1);
 *         ASSERT_EQ(got, 3);
 *     }
 *
 * Each test runs in its own forked process with a timeout (AXON_TEST_TIMEOUT
 * seconds, default 30; TEST_TIMEOUT(name, secs) to set one).  Output is TAP,
 * ending with a line `N passed, N failed`.  `axon_unit NAME...` runs only
 * the named tests (prefix match); `axon_unit -l` lists them. */
#ifndef AXON_TEST_RUNNER_H
#define AXON_TEST_RUNNER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ax_test {
    const char *name;
    void (*fn)(void);
    int timeout_s;
    struct ax_test *next;
} ax_test;

void ax_test_register(ax_test *t);
void ax_test_fail(const char *file, int line, const char *expr, const char *detail);
/* Directory for temporary files of this test (created, removed after). */
const char *ax_test_tmpdir(void);
/* End the test as skipped: what it needs is missing here (TAP "# SKIP";
 * a failure under AXON_STRICT=1). */
void ax_test_skip(const char *why) __attribute__((noreturn));
#define SKIP(why) ax_test_skip(why)

#define TEST_TIMEOUT(name, secs)                                                                   \
    static void test_##name(void);                                                                 \
    static ax_test test_reg_##name = {#name, test_##name, secs, NULL};                             \
    __attribute__((constructor)) static void test_ctor_##name(void)                                \
    {                                                                                              \
        ax_test_register(&test_reg_##name);                                                        \
    }                                                                                              \
    static void test_##name(void)

#define TEST(name) TEST_TIMEOUT(name, 0)

#define ASSERT(expr)                                                                               \
    do {                                                                                           \
        if (!(expr)) ax_test_fail(__FILE__, __LINE__, #expr, NULL);                                \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long ax_a_ = (long long)(a), ax_b_ = (long long)(b);                                  \
        if (ax_a_ != ax_b_) {                                                                      \
            char ax_d_[96];                                                                        \
            snprintf(ax_d_, sizeof ax_d_, "%lld != %lld", ax_a_, ax_b_);                           \
            ax_test_fail(__FILE__, __LINE__, #a " == " #b, ax_d_);                                 \
        }                                                                                          \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *ax_a_ = (a), *ax_b_ = (b);                                                     \
        if (!ax_a_ || !ax_b_ || strcmp(ax_a_, ax_b_) != 0) {                                       \
            char ax_d_[512];                                                                       \
            snprintf(ax_d_, sizeof ax_d_, "\"%s\" != \"%s\"", ax_a_ ? ax_a_ : "(null)",            \
                     ax_b_ ? ax_b_ : "(null)");                                                    \
            ax_test_fail(__FILE__, __LINE__, #a " == " #b, ax_d_);                                 \
        }                                                                                          \
    } while (0)

#endif
