/* SPDX-License-Identifier: MIT
 * worker.c - a worker thread: its loop, its inbox, its tick, its graceful stop.
 */
#include "worker.h"

#include <stdlib.h>
#include <unistd.h>

#include "http1.h"
#include "http2.h"
#include "index.h"
#include "listener.h"
#include "log.h"
#include "sock.h"
#include "stream.h"

struct qs_worker {
    qs_ctx ctx;
    uv_thread_t thread;
    bool thread_started;
    uv_timer_t tick;
    uint64_t tick_ms;
    qs_inbox batch; /* the inbox taken by the last wake-up (capacity kept) */
    qs_socks *socks;
    qs_http1 *http1;
    qs_http2 *http2;
    bool exiting;
    uint64_t stop_deadline_ms;
};

static void worker_maybe_exit(qs_worker *w)
{
    if (qs_socks_count(w->socks) || w->ctx.async_pending || w->exiting)
        return;
    w->exiting = true;
    uv_close((uv_handle_t *)&w->ctx.wakeup, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    qs_streams_close(w->ctx.streams);
    qs_http2_close(w->http2);
}

/* Drains the inbox: updates are fanned out, tasks run, then queued frames are written. */
static void on_wakeup(uv_async_t *a)
{
    qs_worker *w = a->data;
    qs_ctx *ctx = &w->ctx;
    while (qs_ctx_take(ctx, &w->batch)) {
        for (size_t i = 0; i < w->batch.n_updates; i++) {
            qs_index_fanout(ctx->subscribers, w->batch.updates[i]);
            qs_update_unref(w->batch.updates[i]);
        }
        qs_ctx_run_tasks(ctx, &w->batch);
    }
    qs_streams_flush(ctx->streams);
    if (ctx->stopping)
        worker_maybe_exit(w);
}

static void on_tick(uv_timer_t *t)
{
    qs_worker *w = t->data;
    uint64_t now = qs_now_ms();
    qs_socks_check_timeouts(w->socks, now);
    qs_http1_check_timeouts(w->http1, now);
    qs_http2_check_timeouts(w->http2, now);
    qs_streams_check_timers(w->ctx.streams, now);
    qs_streams_flush(w->ctx.streams);
    if (w->ctx.stopping) {
        if (now >= w->stop_deadline_ms) { /* clients too slow to take their last bytes */
            qs_socks_close_starting(w->socks);
            qs_http1_close_all(w->http1);
            qs_http2_close_all(w->http2);
        }
        worker_maybe_exit(w);
    }
}

/* Runs on the worker: stop accepting, end streams, let requests in progress finish. */
static void stop_task(void *arg)
{
    qs_worker *w = arg;
    if (w->ctx.stopping)
        return;
    w->ctx.stopping = true;
    const qs_config *cfg = w->ctx.hub->cfg;
    /* Streams end over grace_period; then clients have dispatch_timeout to take their last
     * bytes. */
    w->stop_deadline_ms = qs_now_ms() + cfg->grace_period_ms +
                          (cfg->dispatch_timeout_ms ? cfg->dispatch_timeout_ms : 5000);
    qs_socks_stop_listening(w->socks);
    if (cfg->grace_period_ms)
        qs_streams_drain(w->ctx.streams, cfg->grace_period_ms);
    else
        qs_streams_end_all(w->ctx.streams);
    qs_socks_close_starting(w->socks);
    qs_http1_close_idle(w->http1);
    qs_http2_shutdown(w->http2);
    worker_maybe_exit(w);
}

static void worker_main(void *arg)
{
    qs_worker *w = arg;
    uv_run(&w->ctx.loop, UV_RUN_DEFAULT);
}

/* One coarse timer per worker drives every per-connection timeout; its period follows the
 * shortest configured interval so short heartbeats stay accurate. */
static uint64_t tick_period(const qs_config *cfg)
{
    uint64_t shortest = 250;
    uint64_t candidates[] = {cfg->heartbeat_ms, cfg->dispatch_timeout_ms, cfg->write_timeout_ms};
    for (size_t i = 0; i < QS_ARRAY_LEN(candidates); i++)
        if (candidates[i] && candidates[i] / 4 < shortest)
            shortest = candidates[i] / 4;
    return QS_MAX(shortest, (uint64_t)5);
}

qs_worker *qs_worker_new(const qs_hub *hub, int index, const qs_http_router *router, qs_tls *tls,
                         int *ports, char **err)
{
    qs_worker *w = qs_xcalloc(1, sizeof(*w));
    qs_ctx *ctx = &w->ctx;
    qs_ctx_init(ctx, hub, index, on_wakeup, w);
    ctx->subscribers = qs_index_new(ctx);
    ctx->streams = qs_streams_new(ctx);
    w->http1 = qs_http1_new(ctx, router);
    w->http2 = qs_http2_new(ctx, router);
    qs_sock_protocols protocols = {.http1 = qs_http1_start,
                                   .http1_state = w->http1,
                                   .http2 = qs_http2_start,
                                   .http2_state = w->http2};
    w->socks = qs_socks_new(ctx, tls, &protocols);
    uv_timer_init(&ctx->loop, &w->tick);
    w->tick.data = w;

    const qs_config *cfg = hub->cfg;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const qs_config_listener *l = &cfg->listeners[i];
        int fd, bound;
        if (index == 0) {
            /* SO_REUSEPORT would let this hub share its port with another process, which
             * would then receive part of the connections and none of the updates: bind once
             * without it first, so a port in use is an error. */
            int probe;
            if (qs_listener_open(l->host, ports[i], false, &probe, &ports[i], err) < 0) {
                qs_worker_free(w);
                return NULL;
            }
            close(probe);
        }
        if (qs_listener_open(l->host, ports[i], true, &fd, &bound, err) < 0 ||
            qs_socks_listen(w->socks, l, cfg, fd, err) < 0) {
            qs_worker_free(w);
            return NULL;
        }
        ports[i] = bound; /* later workers bind the port the first one got (0 = ephemeral) */
    }
    w->tick_ms = tick_period(cfg);
    uv_timer_start(&w->tick, on_tick, w->tick_ms, w->tick_ms);
    return w;
}

qs_ctx *qs_worker_ctx(qs_worker *w)
{
    return &w->ctx;
}

int qs_worker_start(qs_worker *w, char **err)
{
    if (uv_thread_create(&w->thread, worker_main, w) != 0) {
        *err = qs_xasprintf("cannot start worker thread %d", w->ctx.index);
        return -1;
    }
    w->thread_started = true;
    return 0;
}

void qs_worker_request_stop(qs_worker *w)
{
    qs_ctx_post(&w->ctx, stop_task, w);
}

void qs_worker_join(qs_worker *w)
{
    if (w->thread_started)
        uv_thread_join(&w->thread);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    QS_UNUSED(arg);
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void qs_worker_free(qs_worker *w)
{
    if (!w)
        return;
    /* A worker that never ran (start-up failed) still has open handles: close them all and
     * let their close callbacks run. */
    qs_socks_stop_listening(w->socks);
    uv_walk(&w->ctx.loop, close_handle, NULL);
    uv_run(&w->ctx.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->ctx.loop) != 0)
        qs_debug("worker %d: loop still had handles at exit", w->ctx.index);
    qs_socks_free(w->socks);
    qs_http1_free(w->http1);
    qs_http2_free(w->http2);
    qs_streams_free(w->ctx.streams);
    qs_index_free(w->ctx.subscribers);
    qs_ctx_inbox_free(&w->batch);
    qs_ctx_destroy(&w->ctx);
    free(w);
}
