/* SPDX-License-Identifier: MIT
 * headers.h - HTTP header fields as borrowed slices, whatever protocol carried them.
 *
 * A request's header fields are a list of (name, value) slices: HTTP/1 parses them out of
 * the request head, HTTP/2 decodes them from HPACK. Names compare case-insensitively, as
 * HTTP defines them (HTTP/2 sends them in lower case). Pure: no allocation, no I/O.
 */
#ifndef QS_HEADERS_H
#define QS_HEADERS_H

#include "util.h"

typedef struct qs_header {
    qs_slice name;
    qs_slice value; /* leading and trailing spaces and tabs trimmed */
} qs_header;

/** The first field named `name` (case-insensitive) among h[0..n), or NULL. */
const qs_header *qs_headers_find(const qs_header *h, size_t n, const char *name);
/** How many fields of h[0..n) are named `name`. */
size_t qs_headers_count(const qs_header *h, size_t n, const char *name);

#endif
