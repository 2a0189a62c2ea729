/* SPDX-License-Identifier: MIT
 * fuzz_postgres.c - libFuzzer target: what the PostgreSQL transport reads from the server
 * (rows in binary format: an update's columns, a presence entry's columns, arrays;
 * notification payloads) and from its configuration (connection strings: settings and
 * password masking).
 *
 * Input: a sequence of columns, each a byte (0xff: NULL; else its length) and that many
 * bytes (cut at the end of the input); missing columns are NULL. The same columns are read
 * as an update row and as a presence row, the whole input as a text array, and, as a
 * NUL-terminated string, as a connection string and as a notification's payload.
 */
#include <stdlib.h>

#include "transport/postgres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void rows(const uint8_t *data, size_t size)
{
    qs_pg_value cols[QS_PG_UPDATE_COLS];
    size_t pos = 0;
    for (int i = 0; i < QS_PG_UPDATE_COLS; i++) {
        if (pos >= size) {
            cols[i] = (qs_pg_value){NULL, -1};
            continue;
        }
        uint8_t len = data[pos++];
        if (len == 0xff) {
            cols[i] = (qs_pg_value){NULL, -1};
            continue;
        }
        size_t n = QS_MIN((size_t)len, size - pos);
        cols[i] = (qs_pg_value){(const char *)data + pos, (int)n};
        pos += n;
    }
    uint64_t seq = 0;
    qs_update *u = qs_pg_update_from_row(cols, &seq);
    if (u) {
        if (u->seq != seq || !u->n_topics || !u->frame || strchr(u->id, '\n'))
            abort();
        qs_update_unref(u);
    }
    qs_pg_ranked r;
    if (qs_pg_presence_from_row(cols, &r) == 0) {
        if (!r.e.subscriber || !r.node)
            abort();
        qs_presence_entry_clear(&r.e);
        free(r.node);
    }
}

static void array(const uint8_t *data, size_t size)
{
    qs_pg_array_reader r;
    if (size > INT32_MAX ||
        !qs_pg_array_open((qs_pg_value){(const char *)data, (int)size}, QS_PG_TEXT, &r))
        return;
    qs_pg_value e;
    int rc, n = 0;
    while ((rc = qs_pg_array_next(&r, &e)) == 1) {
        if (e.len > 0 && (e.p < (const char *)data || e.p + e.len > (const char *)data + size))
            abort();
        n++;
    }
}

static void strings(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return;
    char *s = qs_xstrndup((const char *)data, size);
    char *masked = qs_pg_mask_password(s);
    free(masked);
    qs_pg_settings st;
    char *err = NULL;
    qs_config_transport cfg = {.url = s, .source = "fuzz", .line = 1};
    int rc = qs_pg_settings_load(&cfg, &st, &err);
    if ((rc == 0) != (err == NULL))
        abort();
    if (rc == 0)
        qs_pg_settings_free(&st);
    free(err);
    /* Text made storable is valid UTF-8 without NUL. */
    qs_buf b = QS_BUF_INIT;
    qs_pg_text_append(&b, (const char *)data, size);
    if (!qs_pg_text_ok(b.p ? b.p : "", b.len))
        abort();
    qs_buf_free(&b);
    /* A notification's payload. */
    uint64_t seq = 0;
    qs_update **us = NULL;
    size_t n = 0;
    int got = qs_pg_notify_parse(s, &seq, &us, &n);
    if ((got == 1) != (n > 0) || (got == 1 && us[0]->seq != seq))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (us[i]->seq != seq + i || !us[i]->frame)
            abort();
        qs_update_unref(us[i]);
    }
    free(us);
    char line[128];
    qs_pg_one_line(line, sizeof(line), s);
    if (strchr(line, '\n'))
        abort();
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rows(data, size);
    array(data, size);
    strings(data, size);
    return 0;
}
