/* SPDX-License-Identifier: MIT
 * ctx.c - a worker's context: its inbox and the state its modules share.
 */
#include "ctx.h"

#include <stdlib.h>

/* Arrays of a batch beyond this many entries are given back after use: a burst must not
 * pin its memory for the rest of the process. */
#define INBOX_KEEP 4096

void qs_ctx_init(qs_ctx *ctx, const qs_hub *hub, int index, uv_async_cb on_wakeup, void *data)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->hub = hub;
    ctx->index = index;
    uv_loop_init(&ctx->loop);
    uv_mutex_init(&ctx->inbox_mu);
    uv_async_init(&ctx->loop, &ctx->wakeup, on_wakeup);
    ctx->wakeup.data = data;
    ctx->selectors = qs_selector_table_new((size_t)QS_MAX(hub->cfg->topic_selector_cache, 0));
    if (hub->cfg->protocol_1)
        qs_selector_table_set_base(ctx->selectors, &hub->base,
                                   (size_t)QS_MAX(hub->cfg->max_selector_states, 0));
    ctx->tokens = qs_token_cache_new(1024);
    ctx->tokens1 = qs_token1_cache_new(1024);
    ctx->issuers = qs_xcalloc(hub->issuers.n + 1, sizeof(*ctx->issuers));
    ctx->read_buf_size = 64 * 1024;
    ctx->read_buf = qs_xmalloc(ctx->read_buf_size);
}

void qs_ctx_inbox_free(qs_inbox *b)
{
    for (size_t i = 0; i < b->n_updates; i++)
        qs_update_unref(b->updates[i]);
    free(b->updates);
    free(b->tasks);
    memset(b, 0, sizeof(*b));
}

void qs_ctx_destroy(qs_ctx *ctx)
{
    qs_ctx_inbox_free(&ctx->inbox);
    uv_mutex_destroy(&ctx->inbox_mu);
    qs_token_cache_free(ctx->tokens);
    qs_token1_cache_free(ctx->tokens1);
    free(ctx->issuers);
    qs_selector_table_free(ctx->selectors);
    free(ctx->read_buf);
}

static void push_task(qs_ctx *ctx, qs_task t)
{
    uv_mutex_lock(&ctx->inbox_mu);
    qs_inbox *in = &ctx->inbox;
    if (in->n_tasks == in->cap_tasks) {
        in->cap_tasks = in->cap_tasks ? in->cap_tasks * 2 : 16;
        in->tasks = qs_xrealloc(in->tasks, in->cap_tasks * sizeof(*in->tasks));
    }
    in->tasks[in->n_tasks++] = t;
    uv_mutex_unlock(&ctx->inbox_mu);
    uv_async_send(&ctx->wakeup);
}

void qs_ctx_post(qs_ctx *ctx, qs_task_fn fn, void *arg)
{
    push_task(ctx, (qs_task){fn, arg, false});
}

void qs_ctx_post_completion(qs_ctx *ctx, qs_task_fn fn, void *arg)
{
    push_task(ctx, (qs_task){fn, arg, true});
}

void qs_ctx_defer(qs_ctx *ctx, qs_task_fn fn, void *arg)
{
    ctx->async_pending++;
    qs_ctx_post_completion(ctx, fn, arg);
}

void qs_ctx_post_update(qs_ctx *ctx, qs_update *u)
{
    uv_mutex_lock(&ctx->inbox_mu);
    qs_inbox *in = &ctx->inbox;
    if (in->n_updates == in->cap_updates) {
        in->cap_updates = in->cap_updates ? in->cap_updates * 2 : 64;
        in->updates = qs_xrealloc(in->updates, in->cap_updates * sizeof(*in->updates));
    }
    in->updates[in->n_updates++] = qs_update_ref(u);
    uv_mutex_unlock(&ctx->inbox_mu);
    uv_async_send(&ctx->wakeup);
}

bool qs_ctx_take(qs_ctx *ctx, qs_inbox *batch)
{
    uv_mutex_lock(&ctx->inbox_mu);
    bool any = ctx->inbox.n_updates || ctx->inbox.n_tasks;
    if (any) {
        qs_inbox empty = *batch;
        *batch = ctx->inbox;
        ctx->inbox = empty;
    }
    uv_mutex_unlock(&ctx->inbox_mu);
    return any;
}

void qs_ctx_run_tasks(qs_ctx *ctx, qs_inbox *b)
{
    for (size_t i = 0; i < b->n_tasks; i++) {
        if (b->tasks[i].completion)
            ctx->async_pending--;
        b->tasks[i].fn(b->tasks[i].arg);
    }
    b->n_tasks = 0;
    b->n_updates = 0;
    if (b->cap_tasks > INBOX_KEEP) {
        free(b->tasks);
        b->tasks = NULL;
        b->cap_tasks = 0;
    }
    if (b->cap_updates > INBOX_KEEP) {
        free(b->updates);
        b->updates = NULL;
        b->cap_updates = 0;
    }
}
