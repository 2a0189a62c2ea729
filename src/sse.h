/* SPDX-License-Identifier: MIT
 * sse.h - Server-Sent Events framing, byte for byte as the reference hub writes it.
 *
 *   event: <type>\n      only when type is set
 *   retry: <n>\n         only when retry != 0
 *   id: <id>\n
 *   data: <line>\n       one per line of data; CRLF, CR and LF all end a line
 *   \n
 *
 * Empty data still produces "data: \n". Pure: appends to a buffer, no I/O.
 */
#ifndef QS_SSE_H
#define QS_SSE_H

#include "buf.h"

/** Appends one event. type may be NULL; id may be NULL (then no id line). */
void qs_sse_encode(qs_buf *out, const char *type, uint64_t retry, const char *id, const char *data,
                   size_t data_len);

#endif
