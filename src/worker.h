/* SPDX-License-Identifier: MIT
 * worker.h - a worker thread: one libuv loop serving its share of the hub's connections.
 *
 *   qs_worker
 *     ├── ctx (ctx.h): loop, inbox, selector table, token cache, counters
 *     ├── http1 (http1.h): listener and connections
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

typedef struct qs_worker qs_worker;

/** Sets up a worker listening on host:port with the hub's router (port 0 = ephemeral: the
 *  bound port is returned in *port, which later workers then share). */
qs_worker *qs_worker_new(const qs_hub *hub, int index, const qs_http_router *router, int *port,
                         char **err);
/** The worker's context (for the hub's table of contexts). */
qs_ctx *qs_worker_ctx(qs_worker *w);
int qs_worker_start(qs_worker *w, char **err);
/** Asks the worker to stop (any thread); qs_worker_join waits for its thread. */
void qs_worker_request_stop(qs_worker *w);
void qs_worker_join(qs_worker *w);
void qs_worker_free(qs_worker *w);

#endif
