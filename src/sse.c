/* SPDX-License-Identifier: MIT
 * sse.c - Server-Sent Events framing.
 */
#include "sse.h"

void qs_sse_encode(qs_buf *out, const char *type, uint64_t retry, const char *id, const char *data,
                   size_t data_len)
{
    if (type && *type) {
        qs_buf_append(out, "event: ", 7);
        qs_buf_append_str(out, type);
        qs_buf_append_char(out, '\n');
    }
    if (retry) {
        qs_buf_append(out, "retry: ", 7);
        qs_buf_append_u64(out, retry);
        qs_buf_append_char(out, '\n');
    }
    if (id) {
        qs_buf_append(out, "id: ", 4);
        qs_buf_append_str(out, id);
        qs_buf_append_char(out, '\n');
    }
    /* Each of CRLF, CR and LF ends a line (a CRLF counts once), as the SSE parser in the
     * browser reads them; each line becomes its own "data:" field. */
    size_t start = 0;
    for (size_t i = 0; i <= data_len; i++) {
        bool end = i == data_len;
        if (!end && data[i] != '\r' && data[i] != '\n')
            continue;
        qs_buf_append(out, "data: ", 6);
        qs_buf_append(out, data + start, i - start);
        qs_buf_append_char(out, '\n');
        if (!end && data[i] == '\r' && i + 1 < data_len && data[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    qs_buf_append_char(out, '\n');
}
