/* SPDX-License-Identifier: MIT
 * worker.c - a worker thread: its loop, listener, inbox and timers.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "server.h"

void qs_worker_post(qs_worker *w, qs_task_fn fn, void *arg)
{
    uv_mutex_lock(&w->inbox_mu);
    if (w->tasks_n == w->tasks_cap) {
        w->tasks_cap = w->tasks_cap ? w->tasks_cap * 2 : 16;
        w->inbox_tasks = qs_xrealloc(w->inbox_tasks, w->tasks_cap * sizeof(*w->inbox_tasks));
    }
    w->inbox_tasks[w->tasks_n++] = (qs_task){fn, arg};
    uv_mutex_unlock(&w->inbox_mu);
    uv_async_send(&w->wakeup);
}

/* Called by the transport's bus (any thread, one at a time, in order). */
void qs_worker_post_update(qs_worker *w, qs_update *u)
{
    uv_mutex_lock(&w->inbox_mu);
    if (w->inbox_n == w->inbox_cap) {
        w->inbox_cap = w->inbox_cap ? w->inbox_cap * 2 : 64;
        w->inbox_updates = qs_xrealloc(w->inbox_updates, w->inbox_cap * sizeof(*w->inbox_updates));
    }
    w->inbox_updates[w->inbox_n++] = qs_update_ref(u);
    uv_mutex_unlock(&w->inbox_mu);
    uv_async_send(&w->wakeup);
}

static void worker_maybe_exit(qs_worker *w);

/* Flushing in slices. A worker writes to at most QS_FLUSH_SLICE subscribers, then lets
 * its loop run (new publishes, reads, fan-out of new updates) before the next slice. With
 * a large fan-out this keeps the worker responsive, and it is also what batches writes
 * under load: while a round over thousands of subscribers goes on, the events published
 * meanwhile join the queues of the subscribers not yet written, and leave with them in one
 * write. With small fan-outs a round is one slice and nothing waits. */
static void on_flush_idle(uv_idle_t *h)
{
    qs_worker *w = h->data;
    if (!qs_worker_flush_pending(w))
        uv_idle_stop(h);
}

static void flush_soon(qs_worker *w)
{
    if (w->n_pending && qs_worker_flush_pending(w))
        uv_idle_start(&w->flush_idle, on_flush_idle);
}

/* Drains the inbox: updates are fanned out, tasks run, then queued frames are written.
 * The arrays are swapped out under the lock so producers never wait for the fan-out. */
static void on_wakeup(uv_async_t *a)
{
    qs_worker *w = a->data;
    for (;;) {
        uv_mutex_lock(&w->inbox_mu);
        qs_update **updates = w->inbox_updates;
        size_t n = w->inbox_n, cap = w->inbox_cap;
        qs_task *tasks = w->inbox_tasks;
        size_t nt = w->tasks_n, tcap = w->tasks_cap;
        w->inbox_updates = NULL;
        w->inbox_n = w->inbox_cap = 0;
        w->inbox_tasks = NULL;
        w->tasks_n = w->tasks_cap = 0;
        uv_mutex_unlock(&w->inbox_mu);
        if (!n && !nt)
            break;
        for (size_t i = 0; i < n; i++) {
            qs_worker_fanout(w, updates[i]);
            qs_update_unref(updates[i]);
        }
        for (size_t i = 0; i < nt; i++)
            tasks[i].fn(w, tasks[i].arg);
        QS_UNUSED(cap);
        QS_UNUSED(tcap);
        free(updates);
        free(tasks);
    }
    flush_soon(w);
    if (w->stopping)
        worker_maybe_exit(w);
}

static void on_tick(uv_timer_t *t)
{
    qs_worker *w = t->data;
    uint64_t now = qs_now_ms();
    qs_conn_check_timeouts(w, now);
    qs_subscribers_check_timers(w, now);
    flush_soon(w);
    if (w->stopping) {
        if (now >= w->stop_deadline_ms) {
            /* Clients that did not take their last bytes in time are cut off. */
            qs_list *n;
            while ((n = qs_list_front(&w->conns)))
                qs_conn_close(qs_list_entry(n, qs_conn, node));
        }
        worker_maybe_exit(w);
    }
}

static void worker_maybe_exit(qs_worker *w)
{
    if (w->n_conns || w->async_pending || w->exiting)
        return;
    w->exiting = true;
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->flush_idle, NULL);
}

static void on_listener_closed(uv_handle_t *h)
{
    QS_UNUSED(h);
}

/* Runs on the worker: stop accepting, end streams, let requests in progress finish. */
static void worker_stop_task(qs_worker *w, void *arg)
{
    QS_UNUSED(arg);
    if (w->stopping)
        return;
    w->stopping = true;
    uint64_t grace = w->hub->cfg->dispatch_timeout_ms ? w->hub->cfg->dispatch_timeout_ms : 5000;
    w->stop_deadline_ms = qs_now_ms() + grace;
    uv_close((uv_handle_t *)&w->listener, on_listener_closed);
    qs_subscribers_end_all(w);
    /* Idle keep-alive connections and connections still receiving a request go now;
     * those whose request is being handled close after their response. */
    qs_list *n, *next;
    for (n = w->conns.next; n != &w->conns; n = next) {
        next = n->next;
        qs_conn *c = qs_list_entry(n, qs_conn, node);
        if (c->state == QS_CONN_HEAD || c->state == QS_CONN_BODY || c->state == QS_CONN_LINGERING)
            qs_conn_close(c);
    }
    worker_maybe_exit(w);
}

static void worker_main(void *arg)
{
    qs_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* Opens a listening socket with SO_REUSEPORT so that every worker has its own accept
 * queue and the kernel spreads connections over them. */
static int open_listener(const char *host, int port, bool reuseport, int *out_fd, int *bound_port,
                         char **err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int family = AF_INET6;
    if (!host || !*host) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons((uint16_t)port);
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0) {
        family = AF_INET;
    } else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        family = AF_INET6;
    } else if (strcmp(host, "localhost") == 0) {
        uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&ss);
        family = AF_INET;
    } else {
        /* Name resolution would block; a host name other than localhost listens on every
         * interface, as a name-based virtual host would. */
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons((uint16_t)port);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && family == AF_INET6 && (!host || !*host)) {
        /* No IPv6 on this machine: fall back to IPv4 any. */
        family = AF_INET;
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&ss);
        fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        *err = qs_xasprintf("cannot create a socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        *err = qs_xasprintf("cannot listen on %s:%d: %s", host && *host ? host : "*", port,
                            strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 4096) < 0) {
        *err = qs_xasprintf("listen failed: %s", strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t got_len = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &got_len);
    *bound_port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                 : ((struct sockaddr_in6 *)&got)->sin6_port);
    *out_fd = fd;
    return 0;
}

int qs_worker_init(qs_worker *w, qs_hub *hub, int index, int *port, char **err)
{
    memset(w, 0, sizeof(*w));
    w->hub = hub;
    w->index = index;
    uv_loop_init(&w->loop);
    uv_mutex_init(&w->inbox_mu);
    qs_list_init(&w->conns);
    qs_list_init(&w->conns_reading);
    qs_list_init(&w->conns_idle);
    qs_list_init(&w->conns_lingering);
    w->read_buf_size = 64 * 1024;
    w->read_buf = qs_xmalloc(w->read_buf_size);
    qs_worker_index_init(w);
    w->tokens = qs_token_cache_new(1024);

    int fd, bound;
    if (index == 0) {
        /* SO_REUSEPORT would let this hub share its port with another process, which would
         * then receive part of the connections and none of the updates: bind once without
         * it first, so a port in use is an error. */
        int probe;
        if (open_listener(hub->cfg->listen_host, *port, false, &probe, port, err) < 0)
            return -1;
        close(probe);
    }
    if (open_listener(hub->cfg->listen_host, *port, true, &fd, &bound, err) < 0)
        return -1;
    *port = bound; /* later workers bind the port the first one got (port 0 = ephemeral) */
    w->listen_fd = fd;
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    if (uv_tcp_open(&w->listener, fd) < 0 ||
        uv_listen((uv_stream_t *)&w->listener, 4096, qs_conn_on_accept) < 0) {
        *err = qs_xasprintf("cannot listen on port %d", bound);
        return -1;
    }
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_idle_init(&w->loop, &w->flush_idle);
    w->flush_idle.data = w;

    /* One coarse timer per worker drives every per-connection timeout; its period follows
     * the shortest configured interval so short heartbeats stay accurate. */
    const qs_config *cfg = hub->cfg;
    uint64_t shortest = 250;
    uint64_t candidates[] = {cfg->heartbeat_ms, cfg->dispatch_timeout_ms, cfg->write_timeout_ms};
    for (size_t i = 0; i < QS_ARRAY_LEN(candidates); i++)
        if (candidates[i] && candidates[i] / 4 < shortest)
            shortest = candidates[i] / 4;
    w->tick_ms = QS_MAX(shortest, (uint64_t)5);
    uv_timer_start(&w->tick, on_tick, w->tick_ms, w->tick_ms);
    return 0;
}

int qs_worker_start(qs_worker *w, char **err)
{
    if (uv_thread_create(&w->thread, worker_main, w) != 0) {
        *err = qs_xasprintf("cannot start worker thread %d", w->index);
        return -1;
    }
    return 0;
}

void qs_worker_request_stop(qs_worker *w)
{
    qs_worker_post(w, worker_stop_task, NULL);
}

void qs_worker_join(qs_worker *w)
{
    uv_thread_join(&w->thread);
}

static void close_if_open(uv_handle_t *h)
{
    if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
        uv_close(h, NULL);
}

void qs_worker_destroy(qs_worker *w)
{
    if (!w->read_buf)
        return; /* never initialised */
    /* A worker that never ran (start-up failed) still owns open handles. */
    if (!w->exiting) {
        close_if_open((uv_handle_t *)&w->listener);
        close_if_open((uv_handle_t *)&w->wakeup);
        close_if_open((uv_handle_t *)&w->tick);
        close_if_open((uv_handle_t *)&w->flush_idle);
    }
    /* Let the close callbacks of handles closed at exit run. */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        qs_debug("worker %d: loop still had handles at exit", w->index);
    for (size_t i = 0; i < w->inbox_n; i++)
        qs_update_unref(w->inbox_updates[i]);
    free(w->inbox_updates);
    free(w->inbox_tasks);
    uv_mutex_destroy(&w->inbox_mu);
    qs_worker_index_free(w);
    qs_token_cache_free(w->tokens);
    free(w->read_buf);
    free(w->pending);
}
