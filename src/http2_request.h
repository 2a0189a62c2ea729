/* SPDX-License-Identifier: MIT
 * http2_request.h - a request's header fields as HTTP/2 delivers them one by one, gathered
 * under a size limit and split into what a handler sees. Pure: no I/O, fuzzed.
 *
 * nghttp2 has checked each field already (names in lower case, no connection-specific
 * fields, pseudo-header rules); this adds the hub's own bound on the header list (counted
 * as HTTP/2 counts it: name + value + 32 per field) and the split of :path into path and
 * query.
 */
#ifndef QS_HTTP2_REQUEST_H
#define QS_HTTP2_REQUEST_H

#include "buf.h"
#include "headers.h"

typedef struct qs_http2_request {
    qs_buf fields;   /* names and values, each followed by a NUL */
    size_t *offsets; /* per field: name offset, value offset, value length */
    size_t n, cap;
    size_t list_bytes; /* the header list's size so far */
    size_t max_list_bytes;
    bool too_large; /* a field went over the limit: the request is refused (431) */
} qs_http2_request;

/** What a handler sees; slices into the qs_http2_request, valid until it is freed. */
typedef struct qs_http2_request_parts {
    qs_slice method, target, path, query, authority;
    qs_header *headers; /* the regular fields, in order (malloc'd: free it) */
    size_t n_headers;
} qs_http2_request_parts;

void qs_http2_request_init(qs_http2_request *r, size_t max_list_bytes);
/** Adds a field; false when the header list goes over its limit (the field is dropped). */
bool qs_http2_request_add(qs_http2_request *r, const char *name, size_t nlen, const char *value,
                          size_t vlen);
/** Splits the fields into parts. Returns 0, or -1 with a static reason when the request
 *  cannot be served (no :method, or a :path that is neither "*" nor absolute). */
int qs_http2_request_finish(qs_http2_request *r, qs_http2_request_parts *out, const char **reason);
void qs_http2_request_free(qs_http2_request *r);

#endif
