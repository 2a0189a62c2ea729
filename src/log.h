/* SPDX-License-Identifier: MIT
 * log.h - leveled logging to stderr, one line per record, safe from any thread.
 *
 * Lines look like: 2026-11-25T20:31:02.123Z INFO subscriber connected remote=127.0.0.1
 * or, with `log { format json }`, one JSON object per line as Caddy writes them:
 * {"level":"info","ts":1764531062.123,"logger":"quicksilver","msg":"subscriber connected"}
 */
#ifndef QS_LOG_H
#define QS_LOG_H

#include "util.h"

enum qs_log_level { QS_LOG_DEBUG = 0, QS_LOG_INFO, QS_LOG_WARN, QS_LOG_ERROR };

/** Writes JSON lines instead of text (set once at start). */
void qs_log_set_json(bool json);
/** One record with a logger name and fields: `fields` is the inside of a JSON object
 *  ("\"status\":200,…") written after the message in JSON, as `key=value` pairs in text. */
void qs_log_fields(enum qs_log_level level, const char *logger, const char *msg,
                   const char *fields_json, const char *fields_text);
/** Sets the minimum level written (default INFO). */
void qs_log_set_level(enum qs_log_level level);
enum qs_log_level qs_log_get_level(void);
void qs_log(enum qs_log_level level, const char *fmt, ...) QS_PRINTF(2, 3);

#define qs_debug(...)                                                                              \
    do {                                                                                           \
        if (qs_unlikely(qs_log_get_level() <= QS_LOG_DEBUG))                                       \
            qs_log(QS_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define qs_info(...) qs_log(QS_LOG_INFO, __VA_ARGS__)
#define qs_warn(...) qs_log(QS_LOG_WARN, __VA_ARGS__)
#define qs_error(...) qs_log(QS_LOG_ERROR, __VA_ARGS__)

#endif
