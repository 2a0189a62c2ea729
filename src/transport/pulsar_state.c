/* SPDX-License-Identifier: MIT
 * pulsar_state.c - what the Pulsar transport's two files (pulsar.c, pulsar_presence.c)
 * both use of its state: the links' health, the stop flag, flow permits
 * (pulsar_internal.h).
 */
#include "transport/pulsar_internal.h"

#include <stdio.h>

#include "log.h"

/* ------------------------------------------------------------ links */

void qs_pulsar_link_up(pulsar_transport *t, link_state *l)
{
    uv_mutex_lock(&t->base.mu);
    bool restored = !l->up;
    l->up = true;
    l->reason[0] = '\0';
    uv_mutex_unlock(&t->base.mu);
    if (restored)
        qs_info("pulsar %s: %s link restored", t->s.service_url, l->name);
}

void qs_pulsar_link_down(pulsar_transport *t, link_state *l, const char *reason)
{
    uv_mutex_lock(&t->base.mu);
    bool changed = l->up || strcmp(l->reason, reason) != 0;
    if (l->up)
        l->down_ms = qs_now_ms();
    l->up = false;
    snprintf(l->reason, sizeof(l->reason), "%s", reason);
    uv_mutex_unlock(&t->base.mu);
    if (changed)
        qs_warn("pulsar %s: %s link down: %s", t->s.service_url, l->name, reason);
}

bool qs_pulsar_is_stopping(pulsar_transport *t)
{
    uv_mutex_lock(&t->base.mu);
    bool s = t->stopping;
    uv_mutex_unlock(&t->base.mu);
    return s;
}

int qs_pulsar_flow(qs_pulsar_conn *c, uint64_t consumer_id, uint32_t permits)
{
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Flow fl = QSPULSAR__FLOW__INIT;
    cmd.type = QS_PULSAR_FLOW;
    cmd.flow = &fl;
    fl.consumer_id = consumer_id;
    fl.message_permits = permits;
    return qs_pulsar_conn_send_command(c, &cmd, qs_now_ms() + c->ctx->s->timeout_ms);
}
