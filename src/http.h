/* SPDX-License-Identifier: MIT
 * http.h - requests, responses and event streams as the hub's handlers see them, whatever
 * protocol carried them.
 *
 * A protocol (http1.c; HTTP/2 next) turns what a peer sends into a qs_http_req and routes
 * it through a table of handlers (qs_http_dispatch). A handler answers in one of three ways:
 *  - at once: qs_http_respond(req, &response);
 *  - later: qs_http_hold(req) during the call, then exactly one qs_http_respond on the
 *    worker's thread, even if the client left meanwhile (the request's slices are gone by
 *    then: copy what the answer needs before the call returns);
 *  - with an event stream: qs_http_open_stream(req, …) turns the exchange into a
 *    qs_http_ostream that outlives the request; its head is sent with
 *    qs_http_stream_head() before the first bytes.
 *
 * Lifetime: a request's slices (method, path, headers, body…) are valid only during the
 * handler call. An ostream stays valid until its owner's `closed` callback has run; that
 * callback runs once, from the loop (never inside a call of the owner), when the stream is
 * gone for any reason — closed by its owner, by the peer, by an error or by shutdown.
 */
#ifndef QS_HTTP_H
#define QS_HTTP_H

#include <uv.h>

#include "buf.h"
#include "form.h"
#include "headers.h"

struct qs_ctx;
typedef struct qs_http_req qs_http_req;
typedef struct qs_http_ostream qs_http_ostream;

/* ------------------------------------------------------------ responses */

typedef struct qs_http_response {
    int status;
    const char *content_type; /* NULL: no Content-Type */
    qs_buf headers;           /* more header fields, each "Name: value\r\n" */
    qs_buf body;
} qs_http_response;

void qs_http_response_init(qs_http_response *r, int status);
void qs_http_response_header(qs_http_response *r, const char *name, const char *value);
void qs_http_response_free(qs_http_response *r);
/** Fills r as Go's http.Error does: text/plain, "X-Content-Type-Options: nosniff" (unless
 *  extra_headers has it), body "<message>\n"; extra_headers ("Name: value\r\n" lines) may
 *  be NULL. message NULL = the status's reason phrase. */
void qs_http_response_error(qs_http_response *r, int status, const char *message,
                            const char *extra_headers);
/** The reason phrase of a status code ("Not Found"). */
const char *qs_http_status_text(int status);

/* -------------------------------------------------------------- streams */

/** What the owner of an ostream hears from it (loop callbacks on the worker's thread). */
typedef struct qs_http_stream_owner {
    /** The write queued with ops->write completed (status 0) or failed. */
    void (*written)(void *owner, int status);
    /** The stream is gone; the ostream must not be used afterwards. */
    void (*closed)(void *owner);
} qs_http_stream_owner;

typedef struct qs_http_ostream_ops {
    /** Sends the response head (status, content type, header lines) before the first body
     *  bytes written; the head's buffers are taken. A status other than 200 is a complete
     *  answer instead of a stream (its body included): only close may follow. */
    void (*head)(qs_http_ostream *os, qs_http_response *head);
    /** Writes what the peer takes now without waiting; returns the bytes of iov taken
     *  (0 when none, e.g. a write is queued) or a negative libuv error. */
    int (*try_write)(qs_http_ostream *os, const uv_buf_t *iov, unsigned n);
    /** Queues iov (which must stay valid until written); owner->written follows. Returns 0
     *  or a negative libuv error (then no callback). One queued write at a time. */
    int (*write)(qs_http_ostream *os, const uv_buf_t *iov, unsigned n);
    /** Ends the stream: gracefully after everything written (a head not written yet is sent
     *  first; HTTP/2 ends the stream), or at once (HTTP/2 resets the stream); owner->closed
     *  follows from the loop. */
    void (*close)(qs_http_ostream *os, bool graceful);
} qs_http_ostream_ops;

struct qs_http_ostream {
    const qs_http_ostream_ops *ops;
    const qs_http_stream_owner *owner_ops;
    void *owner;
    bool chunked; /* body bytes are written as HTTP/1.1 chunks by the owner */
};

/* ------------------------------------------------------------- requests */

/** How a protocol answers (implemented by each protocol). */
typedef struct qs_http_req_ops {
    void (*respond)(qs_http_req *req, qs_http_response *res);
    qs_http_ostream *(*open_stream)(qs_http_req *req);
    void (*hold)(qs_http_req *req);
} qs_http_req_ops;

struct qs_http_req {
    const qs_http_req_ops *ops;
    struct qs_ctx *ctx;
    qs_slice method;
    qs_slice target; /* as sent: path and query */
    qs_slice path;
    qs_slice query_string; /* after '?', without it */
    const qs_header *headers;
    size_t n_headers;
    qs_slice body;
    const char *peer;  /* the client's address, for logs */
    const char *proto; /* "HTTP/1.1", "HTTP/2.0"…, for logs */
    bool over_limit;   /* on a reserve connection: only monitoring routes answer */
    bool secure;       /* arrived over TLS */
    bool head;         /* HEAD: the answer carries no body */
    size_t max_query_pairs;
    /* the query, parsed on first use (qs_http_query) */
    qs_form query;
    bool query_parsed;
    enum qs_form_status query_status;
    /* with access logs: what the line will say, kept past the handler call */
    char *access;
    uint64_t access_start_ns;
};

/** Sends a complete response, taking its buffers. */
void qs_http_respond(qs_http_req *req, qs_http_response *res);
/** Go's http.Error: see qs_http_response_error. */
void qs_http_error(qs_http_req *req, int status, const char *message, const char *extra_headers);
/** The handler answers later (see above). */
void qs_http_hold(qs_http_req *req);
/** Turns the exchange into an event stream owned by `owner`; NULL when the connection is
 *  already closing. */
qs_http_ostream *qs_http_open_stream(qs_http_req *req, const qs_http_stream_owner *owner_ops,
                                     void *owner);
/** The first header field named `name`, or NULL. */
const qs_header *qs_http_find(const qs_http_req *req, const char *name);
/** The query parsed once, leniently like Go's URL.Query() (invalid pairs are dropped; at
 *  most max_query_pairs pairs, req->query_status tells when there were more). */
const qs_form *qs_http_query(qs_http_req *req);
/** Frees what the request parsed (called by the protocol after the handler). */
void qs_http_req_finish(qs_http_req *req);
/** Frees what the request holds when it is freed (the protocol's job). */
void qs_http_req_release(qs_http_req *req);

/* --------------------------------------------------------------- routes */

typedef void (*qs_http_handler)(qs_http_req *req);

enum qs_http_match {
    QS_HTTP_EXACT,  /* the path itself */
    QS_HTTP_TREE,   /* the path and everything below it */
    QS_HTTP_BELOW,  /* everything strictly below the path */
    QS_HTTP_PREFIX, /* every path that starts with it */
};

typedef struct qs_http_route {
    const char *path; /* NULL ends the table: its handler takes what nothing matched */
    enum qs_http_match match;
    qs_http_handler handler;
    /* Served on the connections kept in reserve beyond max_connections (health checks,
     * metrics), so an operator can still see a hub that is full. */
    bool monitoring;
} qs_http_route;

/** The routes, and what the protocols tell the endpoints about requests they refused
 *  before routing (a body over the limit: 413), so that they can be counted. */
typedef struct qs_http_router {
    const qs_http_route *routes;
    void (*refused)(qs_slice method, qs_slice path, int status);
} qs_http_router;

/** Calls the handler of the first route matching req->path (over the connection limit,
 *  only a monitoring route's; the others get 503). */
void qs_http_dispatch(const qs_http_router *router, qs_http_req *req);

#endif
