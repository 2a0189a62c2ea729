/* SPDX-License-Identifier: MIT
 * harness.c - runs registered tests, each in a child process with a timeout; prints TAP.
 */
#include "harness.h"

#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    qs_test_fn fn;
} tests[MAX_TESTS];
static int ntests;

void qs_test_register(const char *name, qs_test_fn fn)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void qs_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "# %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(1);
}

static void escape_print(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n && i < 512; i++) {
        if (p[i] == '\n')
            fputs("\\n", stderr);
        else if (p[i] == '\r')
            fputs("\\r", stderr);
        else if (p[i] < 32 || p[i] > 126)
            fprintf(stderr, "\\x%02x", p[i]);
        else
            fputc(p[i], stderr);
    }
}

void qs_test_assert_mem(const char *file, int line, const void *e, size_t en, const void *a,
                        size_t an)
{
    if (en == an && (en == 0 || memcmp(e, a, en) == 0))
        return;
    fprintf(stderr, "# %s:%d: bytes differ\n#   expected (%zu): \"", file, line, en);
    escape_print(e, en);
    fprintf(stderr, "\"\n#   actual   (%zu): \"", an);
    escape_print(a, an);
    fprintf(stderr, "\"\n");
    fflush(stderr);
    _exit(1);
}

static int run_one(int i)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(30);
        tests[i].fn();
        /* exit(), not _exit(): LeakSanitizer checks for leaks at exit in sanitized builds. */
        exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "# %s: killed by signal %d%s\n", tests[i].name, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    return 1;
}

int main(int argc, char **argv)
{
    int failed = 0, planned = 0;
    for (int i = 0; i < ntests; i++)
        if (argc < 2 || strcmp(argv[1], tests[i].name) == 0)
            planned++;
    printf("1..%d\n", planned);
    int n = 0;
    for (int i = 0; i < ntests; i++) {
        if (argc >= 2 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        n++;
        int bad = run_one(i);
        printf("%s %d - %s\n", bad ? "not ok" : "ok", n, tests[i].name);
        failed += bad;
    }
    if (planned == 0) {
        fprintf(stderr, "# no test named %s\n", argc >= 2 ? argv[1] : "(any)");
        return 1;
    }
    return failed ? 1 : 0;
}
