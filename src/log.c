/* SPDX-License-Identifier: MIT
 * log.c - leveled logging to stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static volatile int min_level = QS_LOG_INFO;

void qs_log_set_level(enum qs_log_level level)
{
    min_level = level;
}

enum qs_log_level qs_log_get_level(void)
{
    return (enum qs_log_level)min_level;
}

void qs_log(enum qs_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if ((int)level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                  names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One fwrite per record: stdio locks the stream, so lines from threads never interleave. */
    fwrite(line, 1, len, stderr);
}
