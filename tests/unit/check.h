/* check.h — the tiny test protocol shared by every test in tl.
 *
 * A test program prints one line per case: "PASS: name", "FAIL: name" (with indented
 * detail lines before it) or "SKIP: name: why". tests/run.sh counts those lines over all
 * programs and suites and prints the final "N passed, N failed".
 *
 *   TEST(parses_empty) { EXPECT(x == 1); EXPECTF(y < 2, "y=%d", y); }
 *   int main(void) { RUN(parses_empty); return check_done(); }
 *
 * For data-driven cases: case_begin("name %d", i); ... EXPECT(...); case_end();
 */
#ifndef TL_CHECK_H
#define TL_CHECK_H
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int check_npass, check_nfail, check_case_failed;
static char check_case_name[256];

static inline void case_begin(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(check_case_name, sizeof check_case_name, fmt, ap);
    va_end(ap);
    check_case_failed = 0;
}

static inline void case_end(void) {
    if (check_case_failed) {
        check_nfail++;
        printf("FAIL: %s\n", check_case_name);
    } else {
        check_npass++;
        printf("PASS: %s\n", check_case_name);
    }
    fflush(stdout);
}

static inline void case_skip(const char *name, const char *why) {
    printf("SKIP: %s: %s\n", name, why);
    fflush(stdout);
}

static inline void check_fail_at(const char *file, int line, const char *what) {
    check_case_failed = 1;
    printf("  %s:%d: expected %s\n", file, line, what);
}

#define TEST(name) static void name(void)
#define RUN(name) do { case_begin("%s", #name); name(); case_end(); } while (0)
#define EXPECT(cond) do { if (!(cond)) check_fail_at(__FILE__, __LINE__, #cond); } while (0)
#define EXPECTF(cond, ...)                                                               \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            check_fail_at(__FILE__, __LINE__, #cond);                                    \
            printf("    ");                                                              \
            printf(__VA_ARGS__);                                                         \
            printf("\n");                                                                \
        }                                                                                \
    } while (0)

static inline int check_done(void) { return check_nfail ? 1 : 0; }

#endif
