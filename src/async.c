/* SPDX-License-Identifier: MIT
 * async.c - completions that may arrive inside the call or later on another thread.
 *
 * One atomic state tells the two cases apart without a lock: the first of the completer
 * and qs_async_started to move it away from IN_CALL decides who runs finish.
 */
#include "async.h"

enum { IN_CALL, DONE_IN_CALL, ASYNC };

void qs_async_begin(qs_async *a, qs_ctx *ctx, qs_async_fn finish)
{
    a->ctx = ctx;
    a->finish = finish;
    atomic_init(&a->state, IN_CALL);
}

static void finish_task(void *arg)
{
    qs_async *a = arg;
    a->finish(a);
}

void qs_async_started(qs_async *a)
{
    int expected = IN_CALL;
    if (atomic_compare_exchange_strong(&a->state, &expected, ASYNC)) {
        /* The completion will be posted. It cannot run before this returns: it runs on
         * this thread. */
        a->ctx->async_pending++;
        return;
    }
    a->finish(a);
}

void qs_async_complete(qs_async *a)
{
    int expected = IN_CALL;
    if (atomic_compare_exchange_strong(&a->state, &expected, DONE_IN_CALL))
        return; /* qs_async_started runs finish */
    qs_ctx_post_completion(a->ctx, finish_task, a);
}
