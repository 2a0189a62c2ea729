/* SPDX-License-Identifier: MIT
 * pulsar_presence.c - the Pulsar transport's registry of the cluster's active
 * subscriptions, on a second topic (presence_topic, "<topic>-presence" by default).
 *
 * The records and the registry they build are the Kafka transport's (kafka.h: heartbeats
 * "n/<node>", entries "s/<node>/<subscriber>", claims "c/<node>", tombstones), with the
 * registry's code shared: a record's key travels as the message's partition key, its value
 * as the payload, and a tombstone as an empty payload with the property "tombstone". A
 * record's "offset" is its message's seq (pulsar.h), the same on every node, so that every
 * node agrees on the first valid claim of a dead node.
 *
 * The presence thread has its own connection with a producer and a non-durable
 * subscription on the presence topic: it follows the topic, heartbeats every third of
 * presence_ttl, claims the nodes whose lease expired, and writes the records queued by
 * presence_add/remove (which never wait). A node that is not heard of for presence_ttl is
 * dead; the one live node whose claim comes first takes its entries and publishes their
 * departures, so a SIGKILLed node's subscriptions end at most presence_ttl plus a third of
 * it after its last heartbeat.
 *
 * The presence topic is not compacted: every node reads it whole at start (heartbeats
 * included). Its retention (the namespace's) bounds that read; the registry only needs the
 * last presence_ttl of it plus the live entries, which nodes write again when they
 * reconnect.
 */
#include "transport/pulsar_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define POLL_MS 100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define PERMITS 1000
#define PRODUCER_ID 1
#define CONSUMER_ID 1
#define TOMBSTONE_PROPERTY "tombstone"

void qs_pulsar_presence_init(pulsar_transport *t)
{
    qs_strmap_init(&t->local);
    qs_kafka_registry_init(&t->reg, t->node, t->s.presence_ttl_ms);
    qs_pulsar_conn_init(&t->pconn, &t->cctx);
    t->presence_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->presence_fd < 0)
        qs_panic("eventfd: out of file descriptors");
    t->presence_seqid = 1;
}

void qs_pulsar_presence_free(pulsar_transport *t)
{
    qs_pulsar_conn_free(&t->pconn);
    if (t->presence_fd >= 0)
        close(t->presence_fd);
    t->presence_fd = -1;
    for (size_t i = 0; i < t->pqn; i++) {
        free(t->pq[i].key);
        free(t->pq[i].value);
    }
    free(t->pq);
    qs_presence_map_free(&t->local);
    qs_kafka_registry_free(&t->reg);
    free(t->presence_producer);
}

/* ------------------------------------------------------------ records */

/* Queues one record (value NULL = tombstone); under mu. The registry's writer
 * (qs_kafka_presence_write), ctx being the transport. */
static void write_locked(void *ctx, const char *key, const char *value)
{
    pulsar_transport *t = ctx;
    if (t->pqn == t->pqcap) {
        t->pqcap = t->pqcap ? t->pqcap * 2 : 64;
        t->pq = qs_xrealloc(t->pq, t->pqcap * sizeof(*t->pq));
    }
    t->pq[t->pqn++] = (presence_record){qs_xstrdup(key), value ? qs_xstrdup(value) : NULL};
    if (t->pqn == 1) {
        uint64_t one = 1;
        if (write(t->presence_fd, &one, sizeof(one)) < 0)
            qs_debug("pulsar: eventfd write: %s", strerror(errno));
    }
}

/* Writes this node's entries again, deleting those the topic holds but the node forgot. */
static void rewrite_locked(pulsar_transport *t)
{
    qs_kafka_registry_write_again(&t->reg, &t->local, write_locked, t);
    t->presence_dirty = false;
}

/* This node won the claim on a dead node: publish the departures, then delete its keys. */
static void taken(pulsar_transport *t, const char *node, qs_presence_entry *v, size_t n)
{
    if (n)
        qs_info("pulsar %s: %zu subscriptions of node %s, which stopped heartbeating, are gone",
                t->s.service_url, n, node);
    if (n && t->host.presence_lost)
        t->host.presence_lost(t->host.ctx, v, n);
    uv_mutex_lock(&t->base.mu);
    qs_kafka_registry_write_tombstones(node, v, n, write_locked, t);
    uv_mutex_unlock(&t->base.mu);
}

/* A message of the presence topic: applied to the registry. */
static void apply(pulsar_transport *t, const qs_pulsar_msg *m, uint64_t seq)
{
    if (seq <= t->presence_pos)
        return;
    t->presence_pos = seq;
    const char *key = m->key;
    if (!key)
        return;
    bool tomb = qs_pulsar_property(m->properties, m->n_properties, TOMBSTONE_PROPERTY) != NULL;
    qs_presence_entry *got = NULL;
    size_t n_got = 0;
    char *got_node = NULL;
    uv_mutex_lock(&t->base.mu);
    bool ok = qs_kafka_registry_apply(&t->reg, key, strlen(key), tomb ? NULL : m->payload,
                                      tomb ? 0 : m->len, (int64_t)seq, qs_now_ms(), &got, &n_got,
                                      &got_node);
    uv_mutex_unlock(&t->base.mu);
    if (!ok)
        qs_debug("pulsar %s: skipping a record of \"%s\" that is not a presence record",
                 t->s.service_url, t->s.presence_topic);
    if (got_node)
        taken(t, got_node, got, n_got);
    qs_presence_entries_free(got, n_got);
    free(got_node);
}

/* Sends the queued records; -1 when the connection failed (they are then lost: the node's
 * entries are written again once it is back). */
static int send_queued(pulsar_transport *t)
{
    uv_mutex_lock(&t->base.mu);
    presence_record *q = t->pq;
    size_t n = t->pqn;
    t->pq = NULL;
    t->pqn = t->pqcap = 0;
    uv_mutex_unlock(&t->base.mu);
    if (!n)
        return 0;
    qs_buf out = QS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
        Qspulsar__Send sd = QSPULSAR__SEND__INIT;
        Qspulsar__MessageMetadata md = QSPULSAR__MESSAGE_METADATA__INIT;
        Qspulsar__KeyValue kv = QSPULSAR__KEY_VALUE__INIT;
        Qspulsar__KeyValue *props[1] = {&kv};
        cmd.type = QS_PULSAR_SEND;
        cmd.send = &sd;
        sd.producer_id = PRODUCER_ID;
        sd.sequence_id = t->presence_seqid++;
        md.producer_name = t->presence_producer;
        md.sequence_id = sd.sequence_id;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        md.publish_time = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
        md.partition_key = q[i].key;
        if (!q[i].value) {
            kv.key = TOMBSTONE_PROPERTY;
            kv.value = "1";
            md.n_properties = 1;
            md.properties = props;
        }
        qs_pulsar_frame_payload(&out, &cmd, &md, q[i].value ? q[i].value : "",
                                q[i].value ? strlen(q[i].value) : 0);
        free(q[i].key);
        free(q[i].value);
    }
    free(q);
    int rc = qs_pulsar_conn_send(&t->pconn, out.p, out.len, qs_now_ms() + t->s.timeout_ms);
    qs_buf_free(&out);
    return rc;
}

/* Connects, creates the producer and subscribes after the last record applied. */
static int presence_open(void *arg)
{
    pulsar_transport *t = arg;
    qs_pulsar_conn *c = &t->pconn;
    if (qs_pulsar_conn_open(c, t->s.presence_topic) < 0)
        return -1;
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Producer pr = QSPULSAR__PRODUCER__INIT;
    cmd.type = QS_PULSAR_PRODUCER;
    cmd.producer = &pr;
    pr.topic = t->s.presence_topic;
    pr.producer_id = PRODUCER_ID;
    pr.request_id = qs_pulsar_conn_request_id(c);
    qs_pulsar_frame *f;
    if (qs_pulsar_conn_request(c, &cmd, pr.request_id, "the presence producer", &f) < 0)
        goto fail;
    free(t->presence_producer);
    t->presence_producer = qs_xstrdup(f->cmd->producer_success->producer_name);

    Qspulsar__BaseCommand sub = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Subscribe sc = QSPULSAR__SUBSCRIBE__INIT;
    Qspulsar__MessageId start = QSPULSAR__MESSAGE_ID__INIT;
    char name[96];
    snprintf(name, sizeof(name), "quicksilver-presence-%s", t->node);
    sub.type = QS_PULSAR_SUBSCRIBE;
    sub.subscribe = &sc;
    sc.topic = t->s.presence_topic;
    sc.subscription = name;
    sc.sub_type = QS_PULSAR_SUB_EXCLUSIVE;
    sc.consumer_id = CONSUMER_ID;
    sc.request_id = qs_pulsar_conn_request_id(c);
    sc.consumer_name = t->node;
    sc.has_durable = true;
    sc.durable = false;
    sc.has_initial_position = true;
    sc.initial_position = QS_PULSAR_POSITION_EARLIEST;
    start.ledger = start.entry = QS_PULSAR_ID_NONE;
    if (t->presence_pos)
        qs_pulsar_msgid_of(t->presence_pos, &start.ledger, &start.entry);
    sc.start_message_id = &start;
    if (qs_pulsar_conn_request(c, &sub, sc.request_id, "the presence subscription", &f) < 0)
        goto fail;
    t->presence_received = 0;
    return 0;
fail:
    qs_pulsar_conn_close(c);
    return -1;
}

/* A frame on the presence connection; -1 when it must be opened again. */
static int presence_frame(pulsar_transport *t, const qs_pulsar_frame *f)
{
    switch (f->cmd->type) {
    case QS_PULSAR_MESSAGE:
        if (f->cmd->message->consumer_id != CONSUMER_ID)
            return 0;
        t->presence_received += qs_pulsar_each_message(t, f, t->s.presence_topic, apply);
        if (t->presence_received >= PERMITS / 2) {
            uint32_t give = t->presence_received; /* exactly what was taken */
            t->presence_received = 0;
            if (qs_pulsar_flow(&t->pconn, CONSUMER_ID, give) < 0)
                return -1;
        }
        return 0;
    case QS_PULSAR_SEND_ERROR:
    case QS_PULSAR_CLOSE_PRODUCER:
    case QS_PULSAR_CLOSE_CONSUMER:
        return -1;
    default:
        return 0;
    }
}

int qs_pulsar_presence_create(pulsar_transport *t, char **err)
{
    qs_pulsar_conn *c = &t->pconn;
    if (qs_pulsar_open_when_ready(c, presence_open, t, qs_now_ms() + t->s.timeout_ms) < 0)
        goto fail;
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__GetLastMessageId gl = QSPULSAR__GET_LAST_MESSAGE_ID__INIT;
    cmd.type = QS_PULSAR_GET_LAST_MESSAGE_ID;
    cmd.get_last_message_id = &gl;
    gl.consumer_id = CONSUMER_ID;
    gl.request_id = qs_pulsar_conn_request_id(c);
    qs_pulsar_frame *f;
    if (qs_pulsar_conn_request(c, &cmd, gl.request_id, "the presence topic's last message id", &f) <
        0)
        goto fail;
    const Qspulsar__MessageId *last = f->cmd->get_last_message_id_response->last_message_id;
    uint64_t target = 0;
    bool known = last->entry != QS_PULSAR_ID_NONE &&
                 qs_pulsar_seq_of(last->ledger, last->entry,
                                  last->has_batch_index ? last->batch_index : 0, &target);
    bool maybe = !known && last->ledger != QS_PULSAR_ID_NONE;
    if (qs_pulsar_flow(c, CONSUMER_ID, PERMITS) < 0)
        goto fail;
    while (known ? t->presence_pos < target : maybe) {
        uint64_t wait = known ? t->s.timeout_ms : 1000;
        int r = qs_pulsar_conn_next(c, qs_now_ms() + wait, -1, &f);
        if (r < 0)
            goto fail;
        if (r == 0) {
            if (!known)
                break;
            qs_pulsar_conn_fail(c, "no record for %" PRIu64 " ms while reading the registry", wait);
            goto fail;
        }
        if (presence_frame(t, f) < 0) {
            qs_pulsar_conn_fail(c, "the broker closed the presence topic's reader");
            goto fail;
        }
    }
    uv_mutex_lock(&t->base.mu);
    qs_kafka_registry_touch_all(&t->reg, qs_now_ms());
    uv_mutex_unlock(&t->base.mu);
    return 0;
fail:
    *err = qs_xasprintf("%s:%d: transport pulsar: presence_topic: cannot read \"%s\": %s",
                        t->s.source, t->s.line, t->s.presence_topic, c->err);
    return -1;
}

static uint64_t clock_locked(pulsar_transport *t)
{
    return t->prlink.up ? qs_now_ms() : t->prlink.down_ms;
}

void qs_pulsar_presence_main(void *arg)
{
    pulsar_transport *t = arg;
    uint64_t refresh = QS_MAX(t->s.presence_ttl_ms / 3, (uint64_t)100);
    uint64_t next_beat = 0, backoff = BACKOFF_MIN_MS;
    uv_mutex_lock(&t->base.mu);
    t->presence_dirty = true; /* heartbeat and entries written once connected */
    uv_mutex_unlock(&t->base.mu);
    while (!qs_pulsar_is_stopping(t)) {
        if (!qs_pulsar_conn_is_open(&t->pconn)) {
            if (presence_open(t) < 0 || qs_pulsar_flow(&t->pconn, CONSUMER_ID, PERMITS) < 0) {
                qs_pulsar_link_down(t, &t->prlink, t->pconn.err);
                qs_pulsar_conn_close(&t->pconn);
                struct pollfd p = {t->cctx.wake_fd, POLLIN, 0};
                poll(&p, 1, (int)backoff);
                backoff = QS_MIN(backoff * 2, (uint64_t)BACKOFF_MAX_MS);
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            uv_mutex_lock(&t->base.mu);
            bool was_down = !t->prlink.up;
            t->presence_dirty = true;
            if (was_down)
                qs_kafka_registry_touch_all(&t->reg, qs_now_ms());
            uv_mutex_unlock(&t->base.mu);
            qs_pulsar_link_up(t, &t->prlink);
            next_beat = 0;
        }
        uint64_t now = qs_now_ms();
        if (now >= next_beat) {
            next_beat = now + refresh;
            uv_mutex_lock(&t->base.mu);
            if (t->presence_dirty || t->reg.self_taken) {
                if (t->reg.self_taken)
                    qs_warn("pulsar %s: another node took this node's presence entries (it was "
                            "not heard of for presence_ttl); writing them again",
                            t->s.service_url);
                rewrite_locked(t);
            } else {
                qs_kafka_registry_write_heartbeat(&t->reg, write_locked, t);
            }
            /* Only a node that publishes subscription events claims dead nodes. */
            if (t->host.presence_lost && t->plink.up)
                qs_kafka_registry_write_claims(&t->reg, clock_locked(t), write_locked, t);
            uv_mutex_unlock(&t->base.mu);
        }
        uint64_t one;
        while (read(t->presence_fd, &one, sizeof(one)) > 0) {
        }
        if (send_queued(t) < 0) {
            qs_pulsar_link_down(t, &t->prlink, t->pconn.err);
            uv_mutex_lock(&t->base.mu);
            t->presence_dirty = true;
            uv_mutex_unlock(&t->base.mu);
            continue;
        }
        qs_pulsar_frame *f;
        uint64_t deadline = QS_MIN(qs_now_ms() + POLL_MS, next_beat);
        int r = qs_pulsar_conn_next(&t->pconn, deadline, t->presence_fd, &f);
        if (r < 0 || (r == 1 && presence_frame(t, f) < 0)) {
            if (!qs_pulsar_is_stopping(t))
                qs_pulsar_link_down(t, &t->prlink,
                                    r < 0 ? t->pconn.err
                                          : "pulsar unavailable: the broker closed the presence "
                                            "topic's producer or reader");
            qs_pulsar_conn_close(&t->pconn);
            uv_mutex_lock(&t->base.mu);
            t->presence_dirty = true;
            uv_mutex_unlock(&t->base.mu);
        }
    }
    /* A clean stop: this node's entries and heartbeat are deleted. */
    uv_mutex_lock(&t->base.mu);
    qs_kafka_registry_write_goodbye(&t->reg, &t->local, write_locked, t);
    uv_mutex_unlock(&t->base.mu);
    if (qs_pulsar_conn_is_open(&t->pconn) && send_queued(t) == 0) {
        /* Wait briefly for the receipts, so that the records are stored before we leave. */
        uint64_t deadline = qs_now_ms() + QS_MIN(t->s.timeout_ms, (uint64_t)2000);
        uint64_t last = t->presence_seqid - 1;
        for (;;) {
            qs_pulsar_frame *f;
            int r = qs_pulsar_conn_next(&t->pconn, deadline, -1, &f);
            if (r <= 0)
                break;
            if (f->cmd->type == QS_PULSAR_SEND_RECEIPT && f->cmd->send_receipt->sequence_id >= last)
                break;
        }
    }
    qs_pulsar_conn_close(&t->pconn);
}

/* Registration order across nodes: wall-clock microseconds, strictly increasing here. */
static uint64_t next_order(pulsar_transport *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (us <= t->last_order)
        us = t->last_order + 1;
    t->last_order = us;
    return us;
}

void qs_pulsar_presence_add(qs_transport *base, const qs_presence_entry *e)
{
    pulsar_transport *t = (pulsar_transport *)base;
    qs_presence_entry *copy = qs_xcalloc(1, sizeof(*copy));
    qs_presence_entry_copy(copy, e);
    uv_mutex_lock(&t->base.mu);
    copy->order = next_order(t);
    qs_presence_map_put(&t->local, copy);
    if (!t->stopping)
        qs_kafka_registry_write_entry(&t->reg, copy, write_locked, t);
    uv_mutex_unlock(&t->base.mu);
}

void qs_pulsar_presence_remove(qs_transport *base, const char *subscriber)
{
    pulsar_transport *t = (pulsar_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (qs_presence_map_remove(&t->local, subscriber))
        qs_kafka_registry_write_removal(&t->reg, subscriber, write_locked, t);
    uv_mutex_unlock(&t->base.mu);
}

void qs_pulsar_presence_list(qs_transport *base, qs_presence_query *q)
{
    pulsar_transport *t = (pulsar_transport *)base;
    uv_mutex_lock(&t->base.mu);
    size_t n_local;
    qs_presence_entry *local = qs_presence_map_copy(&t->local, &n_local);
    q->entries = qs_kafka_registry_list(&t->reg, clock_locked(t), local, n_local, &q->n);
    uv_mutex_unlock(&t->base.mu);
    qs_presence_entries_free(local, n_local);
    q->status = 0;
    q->done(q);
}
