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
#include "util.h"

#define QS_HTTP_MAX_HEADERS 100

enum qs_http_parse_status {
    QS_HTTP_OK = 0,                 /* complete head parsed */
    QS_HTTP_AGAIN = -1,             /* need more bytes */
    QS_HTTP_E_BAD_REQUEST = -2,     /* 400 */
    QS_HTTP_E_TOO_LARGE = -3,       /* 431: head longer than the limit, or too many headers */
    QS_HTTP_E_NOT_IMPLEMENTED = -4, /* 501: unsupported transfer coding */
    QS_HTTP_E_VERSION = -5,         /* 505 */
};

typedef struct qs_http_header {
    qs_slice name;
    qs_slice value; /* leading and trailing spaces/tabs trimmed */
} qs_http_header;

typedef struct qs_http_request {
    qs_slice method;
    qs_slice target; /* raw request-target */
    qs_slice path;   /* target up to '?' */
    qs_slice query;  /* after '?', without it; empty if none */
    int minor_version;
    qs_http_header headers[QS_HTTP_MAX_HEADERS];
    size_t n_headers;
    size_t head_len; /* bytes of the head, final empty line included */
    bool keep_alive; /* from version and Connection */
    bool chunked;    /* Transfer-Encoding: chunked */
    bool has_content_length;
    uint64_t content_length;
    bool expect_continue; /* Expect: 100-continue */
} qs_http_request;

/** Per-connection state of the head parser; zero it (or call reset) before a new request. */
typedef struct qs_http_parser {
    size_t scanned; /* bytes already known not to end the head */
} qs_http_parser;

static inline void qs_http_parser_reset(qs_http_parser *p)
{
    p->scanned = 0;
}

/**
 * Parses the request head at the start of buf[0..len). max_head bounds the head size.
 * Returns QS_HTTP_OK with *req filled (req->head_len bytes consumed), QS_HTTP_AGAIN when the
 * head is incomplete (and shorter than max_head), or an error status with *err set to a
 * static one-line reason. Slices in *req point into buf.
 */
enum qs_http_parse_status qs_http_parse_request(qs_http_parser *p, const char *buf, size_t len,
                                                size_t max_head, qs_http_request *req,
                                                const char **err);

/** First header with this name (case-insensitive), or NULL. */
const qs_http_header *qs_http_find_header(const qs_http_request *req, const char *name);
/** Number of headers with this name. */
size_t qs_http_count_headers(const qs_http_request *req, const char *name);

/** Resumable decoder for a chunked request body (trailers are read and ignored). */
typedef struct qs_chunked_decoder {
    int state;
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line_len;    /* length of the chunk-size or trailer line read so far */
} qs_chunked_decoder;

static inline void qs_chunked_reset(qs_chunked_decoder *d)
{
    memset(d, 0, sizeof(*d));
}

/**
 * Decodes from in[0..len), appending data to out. Sets *consumed to the input bytes used.
 * Returns QS_HTTP_OK when the final chunk and trailers are complete (bytes after them are
 * not consumed), QS_HTTP_AGAIN when more input is needed, QS_HTTP_E_BAD_REQUEST for a
 * malformed encoding (chunk-size lines and trailer lines are bounded to 4 KiB), or
 * QS_HTTP_E_TOO_LARGE when out would exceed max_body bytes (*err set on errors).
 */
enum qs_http_parse_status qs_chunked_decode(qs_chunked_decoder *d, const char *in, size_t len,
                                            size_t *consumed, qs_buf *out, size_t max_body,
                                            const char **err);

#endif
