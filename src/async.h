/* SPDX-License-Identifier: MIT
 * async.h - an operation that completes inside the call that starts it, or later on
 * another thread (a publish, a read of the presence registry, a history pull).
 *
 * The worker starts the operation between qs_async_begin and qs_async_started; whoever
 * completes it calls qs_async_complete, from any thread, once. `finish` then runs on the
 * worker: inside qs_async_started when the operation completed during the call (no task,
 * no wake-up), otherwise from a task posted to the worker, which does not exit while such
 * an operation is in flight (ctx->async_pending).
 *
 *   qs_async_begin(&op->async, ctx, finish);
 *   transport->ops->publish(t, u, on_done, op);    // on_done calls qs_async_complete()
 *   qs_async_started(&op->async);                  // finish(&op->async) now, or later
 */
#ifndef QS_ASYNC_H
#define QS_ASYNC_H

#include <stdatomic.h>

#include "ctx.h"

typedef struct qs_async qs_async;
typedef void (*qs_async_fn)(qs_async *a);

struct qs_async {
    qs_ctx *ctx;
    qs_async_fn finish;
    atomic_int state;
};

/** Before starting the operation (worker thread). */
void qs_async_begin(qs_async *a, qs_ctx *ctx, qs_async_fn finish);
/** After the call that started it returned (worker thread): runs finish now if the
 *  operation already completed. */
void qs_async_started(qs_async *a);
/** The operation is complete (any thread, exactly once). */
void qs_async_complete(qs_async *a);

#endif
