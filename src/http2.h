/* SPDX-License-Identifier: MIT
 * http2.h - HTTP/2 connections of one worker (nghttp2): requests in, responses and event
 * streams out, many streams per connection.
 *
 * nghttp2 parses and writes frames and HPACK; this file turns a stream's headers and body
 * into a qs_http_req, routes it through the same router as HTTP/1, and carries the answer:
 * a response, or an event stream whose writes become DATA frames as flow control allows.
 * A stream whose window stays closed is a slow subscriber (its write stalls, the stream
 * layer drops it after dispatch_timeout) and never holds the connection's other streams.
 *
 * Connections come from sock.c: TLS with ALPN "h2", or plain with prior knowledge (h2c).
 * Frames are written from the loop (an idle handle), never inside a handler's or a
 * stream's call, so nghttp2's callbacks reach a stream's owner only from loop callbacks.
 * Limits: concurrent streams, header list and HPACK table sizes, request body size, and
 * nghttp2's defences against reset, CONTINUATION, SETTINGS and PING floods; empty DATA
 * frames are counted and a flood ends the connection.
 */
#ifndef QS_HTTP2_H
#define QS_HTTP2_H

#include "ctx.h"
#include "http.h"
#include "sock.h"

typedef struct qs_http2 qs_http2;

/** The HTTP/2 side of a worker; requests go to `router` (which must outlive it). */
qs_http2 *qs_http2_new(qs_ctx *ctx, const qs_http_router *router);
/** Starts HTTP/2 on a socket (a qs_sock_starter; state is the qs_http2). */
void qs_http2_start(void *state, qs_sock *s, const char *initial, size_t len);
/** Shutdown: GOAWAY on every connection; those without a stream close now, the others
 *  once their streams are over. */
void qs_http2_shutdown(qs_http2 *h);
/** Closes every connection (the end of the shutdown's grace period). */
void qs_http2_close_all(qs_http2 *h);
/** Idle connections, requests too slow to arrive, writes stalled too long. */
void qs_http2_check_timeouts(qs_http2 *h, uint64_t now);
/** Closes the idle handle (the worker is exiting). */
void qs_http2_close(qs_http2 *h);
/** Frees the state, once the loop has run every close callback. */
void qs_http2_free(qs_http2 *h);

#endif
