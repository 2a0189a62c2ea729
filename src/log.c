/* SPDX-License-Identifier: MIT
 * log.c - leveled logging to stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "buf.h"
#include "gojson.h"

static volatile int min_level = QS_LOG_INFO;
static volatile bool json_lines;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const json_levels[] = {"debug", "info", "warn", "error"};

void qs_log_set_json(bool json)
{
    json_lines = json;
}

/* Appends text with its control bytes escaped (\n, \r, \t, \xNN): messages quote what
 * peers and backends sent (node names, header values, reasons), and a line break in them
 * must not forge a log line. */
static void append_escaped(qs_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p != 0x7f)
            qs_buf_append_char(b, (char)*p);
        else if (*p == '\n')
            qs_buf_append_str(b, "\\n");
        else if (*p == '\r')
            qs_buf_append_str(b, "\\r");
        else if (*p == '\t')
            qs_buf_append_str(b, "\\t");
        else
            qs_buf_appendf(b, "\\x%02x", *p);
    }
}

/* One fwrite per record: stdio locks the stream, so lines from threads never interleave. */
static void emit(enum qs_log_level level, const char *logger, const char *msg,
                 const char *fields_json, const char *fields_text)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    qs_buf b = QS_BUF_INIT;
    if (json_lines) {
        qs_buf_appendf(&b, "{\"level\":\"%s\",\"ts\":%lld.%03ld,\"logger\":", json_levels[level],
                       (long long)ts.tv_sec, ts.tv_nsec / 1000000L);
        qs_gojson_string(&b, logger, strlen(logger));
        qs_buf_append_str(&b, ",\"msg\":");
        qs_gojson_string(&b, msg, strlen(msg));
        if (fields_json && *fields_json) {
            qs_buf_append_char(&b, ',');
            qs_buf_append_str(&b, fields_json);
        }
        qs_buf_append_str(&b, "}\n");
    } else {
        struct tm tm;
        char when[32];
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        qs_buf_appendf(&b, "%s.%03ldZ %s ", when, ts.tv_nsec / 1000000L, level_names[level]);
        append_escaped(&b, msg);
        if (fields_text && *fields_text) {
            qs_buf_append_char(&b, ' ');
            append_escaped(&b, fields_text);
        }
        qs_buf_append_char(&b, '\n');
    }
    fwrite(b.p, 1, b.len, stderr);
    qs_buf_free(&b);
}

void qs_log_fields(enum qs_log_level level, const char *logger, const char *msg,
                   const char *fields_json, const char *fields_text)
{
    if ((int)level >= min_level)
        emit(level, logger, msg, fields_json, fields_text);
}

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
    if ((int)level < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, "quicksilver", msg, NULL, NULL);
}
