/* SPDX-License-Identifier: MIT
 * local.c - the in-memory transport: no history, one node.
 *
 * Publishing commits nothing to storage; it only orders the update on the bus. The mutex
 * makes "assign seq, deliver" atomic, so every worker sees updates in one order even when
 * several workers publish at once.
 */
#include <stdlib.h>
#include <uv.h>

#include "transport.h"

typedef struct local_transport {
    qs_transport base;
    qs_transport_host host;
    bool stopped;
} local_transport;

static int local_create(const qs_config_transport *cfg, const qs_transport_host *host,
                        qs_transport **out, char **err)
{
    qs_topts opts;
    if (qs_topts_load(cfg, "local", &opts, err) < 0)
        return -1;
    int rc = qs_topts_finish(&opts, err);
    qs_topts_free(&opts);
    if (rc < 0)
        return -1;
    local_transport *t = qs_xcalloc(1, sizeof(*t));
    qs_transport_base_init(&t->base, &qs_transport_local_ops);
    t->host = *host;
    *out = &t->base;
    return 0;
}

static int local_start(qs_transport *base, char **err)
{
    QS_UNUSED(base);
    QS_UNUSED(err);
    return 0;
}

static void local_publish(qs_transport *base, qs_update *u, qs_publish_cb cb, void *arg)
{
    local_transport *t = (local_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (t->stopped) {
        uv_mutex_unlock(&t->base.mu);
        cb(arg, -1, "the hub is shutting down");
        return;
    }
    u->seq = t->base.seq + 1;
    qs_transport_set_position(&t->base, u->seq, u->id);
    t->host.deliver(t->host.ctx, u);
    uv_mutex_unlock(&t->base.mu);
    cb(arg, 0, NULL);
}

static bool local_healthy(qs_transport *base, char reason[QS_REASON_MAX])
{
    QS_UNUSED(base);
    QS_UNUSED(reason);
    return true;
}

static void local_stop(qs_transport *base)
{
    local_transport *t = (local_transport *)base;
    uv_mutex_lock(&t->base.mu);
    t->stopped = true;
    uv_mutex_unlock(&t->base.mu);
}

static void local_destroy(qs_transport *base)
{
    local_transport *t = (local_transport *)base;
    qs_transport_base_destroy(&t->base);
    free(t);
}

const qs_transport_ops qs_transport_local_ops = {
    .name = "local",
    .has_history = false,
    .create = local_create,
    .start = local_start,
    .publish = local_publish,
    .replay = NULL,
    .healthy = local_healthy,
    .stop = local_stop,
    .destroy = local_destroy,
};
