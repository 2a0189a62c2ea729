/* SPDX-License-Identifier: MIT
 * http1.h - HTTP/1.x connections of one worker: reading and parsing requests, routing them
 * to the handlers, writing responses and event streams, keep-alive, pipelining, timeouts
 * and limits.
 *
 * The handlers never see HTTP/1: a request reaches them as a qs_http_req through the
 * router given at creation, and they answer through http.h. Reads land in the worker's
 * shared buffer (ctx->read_buf); only the unprocessed tail of a partial request is copied
 * into the connection, so an idle connection — a subscriber, a keep-alive client — holds
 * no input buffer.
 *
 * Connections come from sock.c (TCP, or TLS with ALPN "http/1.1"), which counts them and
 * applies max_connections.
 *
 * Lifetime: a connection is freed when its socket's close callback ran, and only once no
 * held request refers to it. A stream's owner hears of the end of its stream from that close
 * callback (qs_http_stream_owner.closed), never from inside one of its own calls.
 */
#ifndef QS_HTTP1_H
#define QS_HTTP1_H

#include "ctx.h"
#include "http.h"
#include "sock.h"

typedef struct qs_http1 qs_http1;

/** The HTTP/1 side of a worker; requests go to `router` (which must outlive it). */
qs_http1 *qs_http1_new(qs_ctx *ctx, const qs_http_router *router);
/** Starts HTTP/1 on a socket (a qs_sock_starter; state is the qs_http1). */
void qs_http1_start(void *state, qs_sock *s, const char *initial, size_t len);
/** Closes the connections that are between requests or still receiving one (shutdown);
 *  those whose request is being answered close after their response. */
void qs_http1_close_idle(qs_http1 *h);
/** Closes every connection (the end of the shutdown's grace period). */
void qs_http1_close_all(qs_http1 *h);
/** Closes connections whose request, keep-alive or lingering time is over. */
void qs_http1_check_timeouts(qs_http1 *h, uint64_t now);
/** Frees the state, once the loop has run every close callback. */
void qs_http1_free(qs_http1 *h);

#endif
