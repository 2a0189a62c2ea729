/* SPDX-License-Identifier: MIT
 * transport_tput.c - publishes/s through a transport alone, without HTTP: the ceiling of
 * the transport (Redis round trips, LMDB commits), apart from the hub's request handling
 * and the load generator, which share the CPUs in an end-to-end benchmark.
 *
 *   transport_tput URL [UPDATES] [IN_FLIGHT] [DATA_BYTES]
 *
 * Keeps IN_FLIGHT publishes outstanding (like as many concurrent HTTP publishers), waits
 * until every update came back on the transport's bus, and prints one JSON line.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "transport/transport.h"

static atomic_long completed, failed, delivered;
static uv_mutex_t mu;
static uv_cond_t cond;
static long in_flight;

static void on_deliver(void *ctx, qs_update *u)
{
    QS_UNUSED(ctx);
    QS_UNUSED(u);
    atomic_fetch_add(&delivered, 1);
}

static void on_published(void *arg, int status, const char *reason)
{
    QS_UNUSED(arg);
    if (status && atomic_fetch_add(&failed, 1) == 0)
        fprintf(stderr, "transport_tput: publish failed: %s\n", reason ? reason : "?");
    atomic_fetch_add(&completed, 1);
    uv_mutex_lock(&mu);
    in_flight--;
    uv_cond_signal(&cond);
    uv_mutex_unlock(&mu);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: transport_tput URL [UPDATES] [IN_FLIGHT] [DATA_BYTES]\n", stderr);
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 100000;
    long window = argc > 3 ? atol(argv[3]) : 64;
    size_t size = argc > 4 ? (size_t)atol(argv[4]) : 100;
    if (n < 1 || window < 1)
        return 2;
    uv_mutex_init(&mu);
    uv_cond_init(&cond);
    qs_config_transport cfg = {.url = argv[1], .source = "argv", .line = 1};
    qs_transport_host host = {.deliver = on_deliver};
    qs_transport *t = NULL;
    char *err = NULL;
    if (qs_transport_open(&cfg, &host, &t, &err) < 0 || t->ops->start(t, &err) < 0) {
        fprintf(stderr, "transport_tput: %s\n", err);
        return 1;
    }
    char *data = qs_xmalloc(size + 1);
    memset(data, 'x', size);
    uint64_t t0 = qs_now_ns();
    for (long i = 0; i < n; i++) {
        uv_mutex_lock(&mu);
        while (in_flight >= window)
            uv_cond_wait(&cond, &mu);
        in_flight++;
        uv_mutex_unlock(&mu);
        qs_update *u = qs_update_new();
        qs_update_add_topic(u, "https://bench.example/t/0", 25);
        qs_update_set_data(u, data, size);
        qs_update_finalize(u);
        t->ops->publish(t, u, on_published, NULL);
        qs_update_unref(u);
    }
    while (atomic_load(&completed) < n)
        usleep(100);
    uint64_t t1 = qs_now_ns();
    while (atomic_load(&delivered) < n - atomic_load(&failed) && qs_now_ns() - t1 < 10000000000ull)
        usleep(100);
    uint64_t t2 = qs_now_ns();
    printf("{\"transport\":\"%s\",\"updates\":%ld,\"in_flight\":%ld,\"failed\":%ld,"
           "\"publishes_per_s\":%.0f,\"delivered\":%ld,\"delivered_after_s\":%.3f}\n",
           t->ops->name, n, window, atomic_load(&failed), (double)n / ((double)(t1 - t0) / 1e9),
           atomic_load(&delivered), (double)(t2 - t0) / 1e9);
    t->ops->stop(t);
    qs_transport_destroy(t); /* and its single-node registry */
    free(data);
    return atomic_load(&failed) ? 3 : 0;
}
