/* SPDX-License-Identifier: MIT
 * worker.h - a worker thread: one libuv loop serving its share of the hub's connections.
 *
 *   qs_worker
 *     ├── ctx (ctx.h): loop, inbox, selector table, token cache, counters
 *     ├── socks (sock.h): listeners, TCP and TLS connections, the choice of protocol
 *     ├── http1 (http1.h): HTTP/1 connections
 *     ├── subscribers (index.h) and streams (stream.h)
 *     └── one coarse tick driving every timeout of the worker
 *
 * The worker drains its inbox when woken: committed updates are fanned out to its
 * subscribers, tasks run, then queued frames are written. Stopping is graceful: listening
 * ends, streams end cleanly, requests in progress finish, then the thread exits (or, after
 * a grace period, remaining connections are cut).
 */
#ifndef QS_WORKER_H
#define QS_WORKER_H

#include "ctx.h"
#include "http.h"
#include "tls.h"

typedef struct qs_worker qs_worker;

/** Sets up a worker listening on every address of the configuration with the hub's router;
 *  tls serves the TLS listeners (NULL when there is none). ports[i] is the port of listener
 *  i (0 = ephemeral: the first worker binds one and returns it there, later workers share
 *  it). */
qs_worker *qs_worker_new(const qs_hub *hub, int index, const qs_http_router *router, qs_tls *tls,
                         int *ports, char **err);
/** The worker's context (for the hub's table of contexts). */
qs_ctx *qs_worker_ctx(qs_worker *w);
int qs_worker_start(qs_worker *w, char **err);
/** Asks the worker to stop (any thread); qs_worker_join waits for its thread. */
void qs_worker_request_stop(qs_worker *w);
void qs_worker_join(qs_worker *w);
void qs_worker_free(qs_worker *w);

#endif
