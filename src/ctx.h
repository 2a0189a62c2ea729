/* SPDX-License-Identifier: MIT
 * ctx.h - a worker's context: what every part of one worker thread shares.
 *
 *   qs_ctx (one per worker thread)
 *     ├── its libuv loop, and the inbox other threads post to (committed updates, tasks)
 *     ├── async_pending: operations in flight that the worker waits for before exiting
 *     ├── the selector table, the token caches, the delivery counters, the read buffer
 *     └── the worker's subscriber index and streams (index.c, stream.c), for the handlers
 *         that create subscribers
 *
 * worker.c owns the context: it creates it, runs its loop, and drains the inbox when the
 * wake-up fires. The modules of the worker only use it.
 *
 * Threading: qs_ctx_post, qs_ctx_post_completion and qs_ctx_post_update may be called from
 * any thread; everything else only on the worker's own thread.
 */
#ifndef QS_CTX_H
#define QS_CTX_H

#include <uv.h>

#include "auth.h"
#include "auth1.h"
#include "hub.h"
#include "metrics.h"
#include "topic.h"
#include "update.h"

typedef void (*qs_task_fn)(void *arg);

typedef struct qs_task {
    qs_task_fn fn;
    void *arg;
    bool completion; /* ends an operation counted in async_pending */
} qs_task;

/** What other threads posted. The worker swaps the whole inbox with an empty one of its own
 *  (qs_ctx_take), so producers never wait for a fan-out and both keep their capacity. */
typedef struct qs_inbox {
    qs_update **updates;
    size_t n_updates, cap_updates;
    qs_task *tasks;
    size_t n_tasks, cap_tasks;
} qs_inbox;

typedef struct qs_ctx {
    const qs_hub *hub;
    int index; /* the worker's number */
    uv_loop_t loop;
    uv_async_t wakeup; /* fired by posts; its callback is the worker's */
    uv_mutex_t inbox_mu;
    qs_inbox inbox;

    uint32_t async_pending; /* operations whose completion will be posted here */
    bool stopping;          /* the hub is shutting down: responses close their connection */

    qs_selector_table *selectors;
    qs_token_cache *tokens;    /* verified tokens of this worker's clients */
    qs_token1_cache *tokens1;  /* the same for protocol 1.0 access tokens */
    qs_token1_issuer *issuers; /* hub->issuers.n entries: the keys in use for this worker
                                  (qs_issuers_view fills them before each verification) */
    qs_worker_counters counters;
    char *read_buf; /* every connection's reads land here, one read at a time */
    size_t read_buf_size;

    struct qs_index *subscribers; /* index.c */
    struct qs_streams *streams;   /* stream.c */
} qs_ctx;

/** Sets up the loop, the inbox (on_wakeup runs when something is posted; the handle's data
 *  is `data`), the selector table, the token cache and the read buffer. */
void qs_ctx_init(qs_ctx *ctx, const qs_hub *hub, int index, uv_async_cb on_wakeup, void *data);
/** Frees what qs_ctx_init made; the loop must be closed already. Updates still in the inbox
 *  are released. */
void qs_ctx_destroy(qs_ctx *ctx);

/** Posts a task (any thread): fn(arg) runs on the worker's thread. */
void qs_ctx_post(qs_ctx *ctx, qs_task_fn fn, void *arg);
/** Posts the completion of an operation counted in async_pending (any thread): the count
 *  drops when fn runs. */
void qs_ctx_post_completion(qs_ctx *ctx, qs_task_fn fn, void *arg);
/** Runs fn(arg) later on this worker (its thread only), after the current callback; the
 *  worker does not exit before it ran. */
void qs_ctx_defer(qs_ctx *ctx, qs_task_fn fn, void *arg);
/** Posts a committed update, taking a reference (any thread). */
void qs_ctx_post_update(qs_ctx *ctx, qs_update *u);

/** Swaps the inbox with `batch`, which must be empty; false when nothing was posted. */
bool qs_ctx_take(qs_ctx *ctx, qs_inbox *batch);
/** Runs the batch's tasks in order, then empties the batch (its updates must have been
 *  handled and released by the caller). Arrays grown by a burst are given back. */
void qs_ctx_run_tasks(qs_ctx *ctx, qs_inbox *batch);
/** Frees the arrays of a batch. */
void qs_ctx_inbox_free(qs_inbox *batch);

#endif
