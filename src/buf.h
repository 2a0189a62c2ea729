/* SPDX-License-Identifier: MIT
 * buf.h - growable byte buffer.
 *
 * The buffer always keeps one spare byte so that qs_buf_cstr() can NUL-terminate
 * in place. Growth aborts on out-of-memory (see util.h); callers bound sizes
 * chosen by peers before appending.
 */
#ifndef QS_BUF_H
#define QS_BUF_H

#include "util.h"

typedef struct qs_buf {
    char *p;
    size_t len;
    size_t cap;
} qs_buf;

#define QS_BUF_INIT ((qs_buf){NULL, 0, 0})

/** Ensures room for `extra` more bytes (plus the spare NUL byte). */
void qs_buf_reserve(qs_buf *b, size_t extra);
void qs_buf_append(qs_buf *b, const void *p, size_t n);
void qs_buf_append_str(qs_buf *b, const char *s);
void qs_buf_append_char(qs_buf *b, char c);
void qs_buf_appendf(qs_buf *b, const char *fmt, ...) QS_PRINTF(2, 3);
/** Appends an unsigned decimal number. */
void qs_buf_append_u64(qs_buf *b, uint64_t v);
/** Returns the content as a NUL-terminated string (valid until the next append). */
const char *qs_buf_cstr(qs_buf *b);
/** Transfers ownership of the (NUL-terminated) storage to the caller and resets b. */
char *qs_buf_steal(qs_buf *b);
/** Drops the first n bytes. */
void qs_buf_consume(qs_buf *b, size_t n);
void qs_buf_reset(qs_buf *b);
void qs_buf_free(qs_buf *b);

#endif
