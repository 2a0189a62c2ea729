/* SPDX-License-Identifier: MIT
 * test_log.c - log records: one line each, whatever the message holds.
 */
#include <unistd.h>

#include "harness.h"
#include "log.h"

/* Runs fn with stderr sent to a temporary file; returns what it wrote (static buffer). */
static const char *captured(void (*fn)(void))
{
    static char out[4096];
    FILE *tmp = tmpfile();
    ASSERT(tmp);
    fflush(stderr);
    int saved = dup(2);
    ASSERT(saved >= 0 && dup2(fileno(tmp), 2) == 2);
    fn();
    fflush(stderr);
    ASSERT(dup2(saved, 2) == 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, sizeof(out) - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

static void log_forged_line(void)
{
    qs_warn("node %s stopped", "a\nX ERROR forged\r\x01\x7f\tz");
}

TEST(control_bytes_in_a_message_are_escaped_in_text_lines)
{
    qs_log_set_json(false);
    const char *out = captured(log_forged_line);
    ASSERT(strstr(out, " WARN node a\\nX ERROR forged\\r\\x01\\x7f\\tz stopped\n"));
    ASSERT_EQ_INT(1, strchr(out, '\n') == out + strlen(out) - 1);
}

static void log_fields(void)
{
    qs_log_fields(QS_LOG_INFO, "http.log.access", "handled request", "\"uri\":\"/a\\nb\"",
                  "uri=/a\nb");
}

TEST(control_bytes_in_fields_are_escaped_in_text_lines)
{
    qs_log_set_json(false);
    const char *out = captured(log_fields);
    ASSERT(strstr(out, " INFO handled request uri=/a\\nb\n"));
    ASSERT_EQ_INT(1, strchr(out, '\n') == out + strlen(out) - 1);
}

TEST(json_lines_quote_control_bytes_as_json)
{
    qs_log_set_json(true);
    const char *out = captured(log_forged_line);
    ASSERT(strstr(out, "\"msg\":\"node a\\nX ERROR forged\\r\\u0001"));
    ASSERT_EQ_INT(1, strchr(out, '\n') == out + strlen(out) - 1);
    qs_log_set_json(false);
}
