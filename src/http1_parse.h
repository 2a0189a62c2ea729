/* SPDX-License-Identifier: MIT
 * http1_parse.h - pure HTTP/1.x request-head parser and chunked-body decoder.
 *
 * No I/O and no allocation in the head parser: it reads bytes and fills a struct whose
 * slices point into the caller's buffer. Both parsers are resumable: called again with
 * more bytes they continue (the head parser remembers how far it already scanned for the
 * end of the head, so a head dripping in one byte at a time costs linear time).
 *
 * Strictness (request smuggling and robustness): method and header names must be tokens;
 * no whitespace before a header colon; no obsolete line folding; CR only as part of CRLF
 * (a bare LF line ending is accepted, as Go does); Content-Length must be all digits and,
 * when repeated, identical; Content-Length together with Transfer-Encoding is refused;
 * Transfer-Encoding other than "chunked" is 501; HTTP/1.1 requires exactly one Host header;
 * versions other than 1.0 and 1.1 are 505.
 */
#ifndef QS_HTTP1_PARSE_H
#define QS_HTTP1_PARSE_H

#include "buf.h"
#include "headers.h"
#include "util.h"

#define QS_HTTP1_MAX_HEADERS 100

enum qs_http1_status {
    QS_HTTP1_OK = 0,                 /* complete head parsed */
    QS_HTTP1_AGAIN = -1,             /* need more bytes */
    QS_HTTP1_E_BAD_REQUEST = -2,     /* 400 */
    QS_HTTP1_E_TOO_LARGE = -3,       /* 431: head longer than the limit, or too many headers */
    QS_HTTP1_E_NOT_IMPLEMENTED = -4, /* 501: unsupported transfer coding */
    QS_HTTP1_E_VERSION = -5,         /* 505 */
};

typedef struct qs_http1_head {
    qs_slice method;
    qs_slice target; /* raw request-target */
    qs_slice path;   /* target up to '?' */
    qs_slice query;  /* after '?', without it; empty if none */
    int minor_version;
    qs_header headers[QS_HTTP1_MAX_HEADERS];
    size_t n_headers;
    size_t head_len; /* bytes of the head, final empty line included */
    bool keep_alive; /* from version and Connection */
    bool chunked;    /* Transfer-Encoding: chunked */
    bool has_content_length;
    uint64_t content_length;
    bool expect_continue; /* Expect: 100-continue */
} qs_http1_head;

/** Per-connection state of the head parser; zero it (or call reset) before a new request. */
typedef struct qs_http1_parser {
    size_t scanned; /* bytes already known not to end the head */
} qs_http1_parser;

static inline void qs_http1_parser_reset(qs_http1_parser *p)
{
    p->scanned = 0;
}

/**
 * Parses the request head at the start of buf[0..len). max_head bounds the head size.
 * Returns QS_HTTP1_OK with *req filled (req->head_len bytes consumed), QS_HTTP1_AGAIN when the
 * head is incomplete (and shorter than max_head), or an error status with *err set to a
 * static one-line reason. Slices in *req point into buf.
 */
enum qs_http1_status qs_http1_parse_head(qs_http1_parser *p, const char *buf, size_t len,
                                         size_t max_head, qs_http1_head *req, const char **err);

/** Resumable decoder for a chunked request body (trailers are read and ignored). */
typedef struct qs_http1_chunked {
    int state;
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line_len;    /* length of the chunk-size or trailer line read so far */
} qs_http1_chunked;

static inline void qs_http1_chunked_reset(qs_http1_chunked *d)
{
    memset(d, 0, sizeof(*d));
}

/**
 * Decodes from in[0..len), appending data to out. Sets *consumed to the input bytes used.
 * Returns QS_HTTP1_OK when the final chunk and trailers are complete (bytes after them are
 * not consumed), QS_HTTP1_AGAIN when more input is needed, QS_HTTP1_E_BAD_REQUEST for a
 * malformed encoding (chunk-size lines and trailer lines are bounded to 4 KiB), or
 * QS_HTTP1_E_TOO_LARGE when out would exceed max_body bytes (*err set on errors).
 */
enum qs_http1_status qs_http1_parse_chunked(qs_http1_chunked *d, const char *in, size_t len,
                                            size_t *consumed, qs_buf *out, size_t max_body,
                                            const char **err);

#endif
