/* SPDX-License-Identifier: MIT
 * pulsar_state.c - what the Pulsar transport's two files (pulsar.c, pulsar_presence.c)
 * both use of its state: the links' health, the stop flag, flow permits, and the walk over
 * the messages of a MESSAGE frame (pulsar_internal.h).
 */
#include "transport/pulsar_internal.h"

#include <inttypes.h>
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

/* ------------------------------------------------------------ messages */

uint32_t qs_pulsar_each_message(pulsar_transport *t, const qs_pulsar_frame *f, const char *topic,
                                void (*fn)(pulsar_transport *t, const qs_pulsar_msg *m,
                                           uint64_t seq))
{
    const Qspulsar__MessageId *id = f->cmd->message->message_id;
    qs_pulsar_msgs it;
    qs_pulsar_msgs_init(&it, f);
    qs_pulsar_msg m;
    const char *why = NULL;
    int rc;
    uint32_t n = 0;
    while ((rc = qs_pulsar_msgs_next(&it, &m, &why)) == 1) {
        n++;
        uint64_t seq;
        if (qs_pulsar_seq_of(id->ledger, id->entry, m.batch_index, &seq))
            fn(t, &m, seq);
        else
            qs_error("pulsar %s: message (%" PRIu64 ", %" PRIu64 ", %" PRId64 ") of \"%s\" has "
                     "an id beyond what the hub orders (ledger < 2^27, entry < 2^24 - 1, batch "
                     "index < 4096); skipped",
                     t->s.service_url, id->ledger, id->entry, m.batch_index, topic);
    }
    if (rc < 0)
        qs_warn("pulsar %s: skipping message (%" PRIu64 ", %" PRIu64 ") of \"%s\": %s",
                t->s.service_url, id->ledger, id->entry, topic, why);
    qs_pulsar_msgs_clear(&it);
    /* What the broker counts against the permits: the batch's size. */
    int64_t count = it.count > 0 ? QS_MIN(it.count, (int64_t)QS_PULSAR_MAX_BATCH) : 1;
    return QS_MAX(n, (uint32_t)count);
}
