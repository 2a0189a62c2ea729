/* SPDX-License-Identifier: MIT
 * pulsar.c - the cluster transport over Apache Pulsar, speaking its binary protocol
 * (pulsar_client.h, pulsar.h): any number of hub processes sharing one topic behave as one
 * hub. Here: start-up (connections, the id index), publishing, the bus, history reads,
 * health, stop. The registry of the cluster's subscriptions is pulsar_presence.c.
 *
 * The order. The topic of updates is one non-partitioned persistent topic: the order in
 * which the broker stores its messages is the one order every node delivers in, and an
 * update's bus seq is its message id (ledger, entry, index in its batch) as one number
 * (pulsar.h), the same on every node. A message's payload is the update's record
 * (record.h); its property "mercure-id" is the update's id.
 *
 * Threads, each with its own connection (blocking I/O with deadlines; never a worker):
 *  - the writer: a producer on the topic. The publishes queued since its last write go out
 *    together as batches (one SEND, one stored entry, up to 1 000 updates each) while fewer
 *    than two batches await their receipts; a publish completes when the broker's
 *    SEND_RECEIPT says its batch is stored.
 *  - the bus: a non-durable exclusive subscription named subscription_name, from this
 *    node's position. Every message, in order, goes to host->deliver (the node's own
 *    publishes too) and its id into the index. Flow permits are given back in halves.
 *  - the reader: history pulls; each pull is a short-lived non-durable subscription that
 *    starts at the message the index names.
 *  - the presence thread (pulsar_presence.c).
 *
 * Start (create): reach the broker (or fail naming the option), refuse a partitioned topic
 * or presence topic (pulsar.h), subscribe from the topic's first retained message, ask for
 * its last message id, and read up to it once to build the id index (in memory; the bus
 * keeps it up to date). The node delivers what follows; the rest is history.
 *
 * Failures: a connection that fails is opened again with a backoff (100 ms doubling to
 * 2 s). While the producer or the bus is down the transport is unhealthy and publishes fail
 * at once with -EAGAIN (503); a publish not acknowledged within publish_timeout fails too
 * (its connection is then opened again). The bus resumes after the last message it
 * delivered: nothing is delivered twice, and what the broker acknowledged is stored.
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
#include "record.h"
#include "uuid.h"

#define POLL_MS 100 /* the threads check for stop at least this often */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define BUS_PERMITS 4000         /* messages the bus lets the broker push ahead */
#define HISTORY_PERMITS 2000     /* …and a history reader */
#define READER_IDLE_MS 1000      /* a history reader left open between pulls closes then */
#define MAX_BATCH 4096           /* publishes sent in one write, at most */
#define BATCH_MSGS 1000          /* updates in one batch (one stored entry), at most */
#define BATCH_BYTES (512u << 10) /* …and about this many bytes */
#define MAX_BATCHES_IN_FLIGHT 2  /* batches sent and not yet acknowledged, at most */
#define STALL_CHECK_MS 5000      /* the bus's watchdog (bus_check) */
#define MAX_CANDIDATES 8         /* messages read to resolve one Last-Event-ID */
#define QUIET_MS 3000            /* a history read that gets nothing for this long is done */
#define PRODUCER_ID 1
#define BUS_CONSUMER_ID 1

/* Under mu: why publishes are refused. */
static void down_reason_locked(pulsar_transport *t, char reason[QS_REASON_MAX])
{
    const link_state *l = !t->plink.up ? &t->plink : &t->blink;
    snprintf(reason, QS_REASON_MAX, "%s",
             l->reason[0] ? l->reason : "pulsar unavailable: not connected");
}

static void drain_fd(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) > 0) {
    }
}

/* Sleeps ms, or less when the writer is poked or the transport wakes its waits. */
static void nap(pulsar_transport *t, int fd, uint64_t ms)
{
    struct pollfd p[2] = {{t->cctx.wake_fd, POLLIN, 0}, {fd, POLLIN, 0}};
    poll(p, fd >= 0 ? 2 : 1, (int)ms);
}

/* ------------------------------------------------------------ messages */

/* Subscribes `consumer_id` on c to the topic (non-durable, exclusive), starting after the
 * message of seq `after` (0 = from the first retained message). No permits yet. */
static int subscribe(pulsar_transport *t, qs_pulsar_conn *c, const char *topic, const char *sub,
                     uint64_t consumer_id, uint64_t after_ledger, uint64_t after_entry)
{
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Subscribe sc = QSPULSAR__SUBSCRIBE__INIT;
    Qspulsar__MessageId start = QSPULSAR__MESSAGE_ID__INIT;
    cmd.type = QS_PULSAR_SUBSCRIBE;
    cmd.subscribe = &sc;
    sc.topic = (char *)topic;
    sc.subscription = (char *)sub;
    sc.sub_type = QS_PULSAR_SUB_EXCLUSIVE;
    sc.consumer_id = consumer_id;
    sc.request_id = qs_pulsar_conn_request_id(c);
    sc.consumer_name = t->node;
    sc.has_durable = true;
    sc.durable = false;
    sc.has_initial_position = true;
    sc.initial_position = QS_PULSAR_POSITION_EARLIEST;
    start.ledger = after_ledger;
    start.entry = after_entry;
    sc.start_message_id = &start;
    qs_pulsar_frame *f;
    return qs_pulsar_conn_request(c, &cmd, sc.request_id, "the subscription", &f) < 0 ? -1 : 0;
}

static int close_consumer(qs_pulsar_conn *c, uint64_t consumer_id)
{
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__CloseConsumer cc = QSPULSAR__CLOSE_CONSUMER__INIT;
    cmd.type = QS_PULSAR_CLOSE_CONSUMER;
    cmd.close_consumer = &cc;
    cc.consumer_id = consumer_id;
    cc.request_id = qs_pulsar_conn_request_id(c);
    qs_pulsar_frame *f;
    return qs_pulsar_conn_request(c, &cmd, cc.request_id, "closing a history reader", &f) < 0 ? -1
                                                                                              : 0;
}

/* A message read at start: its id goes to the index, the position moves to it. */
static void index_message(pulsar_transport *t, const qs_pulsar_msg *m, uint64_t seq)
{
    const char *id = qs_pulsar_property(m->properties, m->n_properties, QS_PULSAR_ID_PROPERTY);
    uv_mutex_lock(&t->base.mu);
    if (seq <= t->base.seq) {
        /* read already (the subscription may start at the last entry read) */
    } else if (id) {
        qs_kafka_index_add(&t->index, id, strlen(id), (int64_t)seq);
        qs_transport_set_position(&t->base, seq, id);
    } else {
        t->base.seq = seq; /* not an update: the last event id stays */
    }
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ publishing */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void complete(pending *p, int status, const char *reason)
{
    p->cb(p->arg, status, reason);
    qs_update_unref(p->u);
    free(p);
}

static void pulsar_publish(qs_transport *base, qs_update *u, qs_publish_cb cb, void *arg)
{
    pulsar_transport *t = (pulsar_transport *)base;
    pending *p = qs_xcalloc(1, sizeof(*p));
    *p = (pending){.u = qs_update_ref(u),
                   .cb = cb,
                   .arg = arg,
                   .deadline = qs_now_ms() + t->s.publish_timeout_ms};
    char why[QS_REASON_MAX] = "";
    uv_mutex_lock(&t->base.mu);
    if (t->stopping) {
        snprintf(why, sizeof(why), "the hub is shutting down");
    } else if (!t->plink.up || !t->blink.up) {
        down_reason_locked(t, why);
    } else {
        if (t->qn == t->qcap) {
            t->qcap = t->qcap ? t->qcap * 2 : 256;
            t->queue = qs_xrealloc(t->queue, t->qcap * sizeof(*t->queue));
        }
        t->queue[t->qn++] = p;
    }
    bool poke = !why[0] && t->qn == 1;
    uv_mutex_unlock(&t->base.mu);
    if (why[0]) {
        complete(p, -EAGAIN, why);
        return;
    }
    if (poke) {
        uint64_t one = 1;
        if (write(t->writer_fd, &one, sizeof(one)) < 0)
            qs_debug("pulsar: eventfd write: %s", strerror(errno));
    }
}

/* Fails every publish in flight (the connection failed, or they timed out). */
static void fail_inflight(pulsar_transport *t, const char *reason)
{
    for (size_t i = t->ihead; i < t->in_n; i++)
        complete(t->inflight[i], -EAGAIN, reason);
    t->in_n = t->ihead = 0;
}

static void fail_queued(pulsar_transport *t, const char *reason)
{
    uv_mutex_lock(&t->base.mu);
    pending **q = t->queue;
    size_t n = t->qn;
    t->queue = NULL;
    t->qn = t->qcap = 0;
    uv_mutex_unlock(&t->base.mu);
    for (size_t i = 0; i < n; i++)
        complete(q[i], -EAGAIN, reason);
    free(q);
}

/* Publishes still queued past their publish_timeout (behind batches in flight) fail: every
 * publish is answered within publish_timeout. */
static void expire_queued(pulsar_transport *t)
{
    uint64_t now = qs_now_ms();
    pending **gone = NULL;
    uv_mutex_lock(&t->base.mu);
    size_t k = 0;
    while (k < t->qn && t->queue[k]->deadline <= now)
        k++;
    if (k) {
        gone = qs_xmalloc(k * sizeof(*gone));
        memcpy(gone, t->queue, k * sizeof(*gone));
        memmove(t->queue, t->queue + k, (t->qn - k) * sizeof(*t->queue));
        t->qn -= k;
    }
    uv_mutex_unlock(&t->base.mu);
    for (size_t i = 0; i < k; i++)
        complete(gone[i], -EAGAIN,
                 "pulsar unavailable: the publish could not be sent within publish_timeout");
    free(gone);
}

/* Opens the producer's connection (the topic looked up), at start. */
static int writer_connect(void *arg)
{
    pulsar_transport *t = arg;
    return qs_pulsar_conn_open(&t->wconn, t->s.topic);
}

/* Creates the producer, on the connection already open (at start) or on a new one. */
static int producer_open(void *arg)
{
    pulsar_transport *t = arg;
    qs_pulsar_conn *c = &t->wconn;
    if (!qs_pulsar_conn_is_open(c) && qs_pulsar_conn_open(c, t->s.topic) < 0)
        return -1;
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Producer pr = QSPULSAR__PRODUCER__INIT;
    cmd.type = QS_PULSAR_PRODUCER;
    cmd.producer = &pr;
    pr.topic = t->s.topic;
    pr.producer_id = PRODUCER_ID;
    pr.request_id = qs_pulsar_conn_request_id(c);
    qs_pulsar_frame *f;
    if (qs_pulsar_conn_request(c, &cmd, pr.request_id, "the producer", &f) < 0) {
        qs_pulsar_conn_close(c);
        return -1;
    }
    free(t->producer_name);
    t->producer_name = qs_xstrdup(f->cmd->producer_success->producer_name);
    return 0;
}

/* Appends the SEND frame of a batch of publishes: one stored entry, one sequence id shared
 * by all, so that its receipt completes them all. */
static void encode_send(pulsar_transport *t, pending **batch, size_t n, uint64_t seqid, qs_buf *out)
{
    qs_buf rec = QS_BUF_INIT, payload = QS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        rec.len = 0;
        qs_record_encode(batch[i]->u, &rec);
        qs_pulsar_batch_append(&payload, batch[i]->u->id, rec.p, rec.len);
    }
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Send sd = QSPULSAR__SEND__INIT;
    Qspulsar__MessageMetadata md = QSPULSAR__MESSAGE_METADATA__INIT;
    cmd.type = QS_PULSAR_SEND;
    cmd.send = &sd;
    sd.producer_id = PRODUCER_ID;
    sd.sequence_id = seqid;
    sd.has_num_messages = true;
    sd.num_messages = (int32_t)n;
    md.producer_name = t->producer_name;
    md.sequence_id = seqid;
    md.publish_time = wall_ms();
    md.has_num_messages_in_batch = true;
    md.num_messages_in_batch = (int32_t)n;
    md.has_uncompressed_size = true;
    md.uncompressed_size = (uint32_t)payload.len;
    qs_pulsar_frame_payload(out, &cmd, &md, payload.p, payload.len);
    qs_buf_free(&rec);
    qs_buf_free(&payload);
}

/* A frame on the producer's connection: receipts complete publishes. -1 when the
 * connection must be opened again. */
static int writer_frame(pulsar_transport *t, const qs_pulsar_frame *f)
{
    char nb[24];
    switch (f->cmd->type) {
    case QS_PULSAR_SEND_RECEIPT: {
        uint64_t seqid = f->cmd->send_receipt->sequence_id;
        /* Receipts come in the order of the sends. */
        while (t->ihead < t->in_n && t->inflight[t->ihead]->seqid <= seqid) {
            pending *p = t->inflight[t->ihead++];
            if (p->seqid == seqid)
                complete(p, 0, NULL);
            else
                complete(p, -EAGAIN, "pulsar unavailable: the broker skipped this publish");
        }
        if (t->ihead == t->in_n)
            t->ihead = t->in_n = 0;
        return 0;
    }
    case QS_PULSAR_SEND_ERROR: {
        const Qspulsar__SendError *e = f->cmd->send_error;
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "pulsar refused the publish: %s: %s",
                 qs_pulsar_error_name(e->error, nb), e->message);
        qs_warn("pulsar %s: %s", t->s.service_url, why);
        fail_inflight(t, why); /* the broker closes the connection after a send error */
        return -1;
    }
    case QS_PULSAR_CLOSE_PRODUCER:
        fail_inflight(t, "pulsar unavailable: the broker closed the producer (topic moved or "
                         "unloaded)");
        return -1;
    default:
        return 0;
    }
}

static void writer_main(void *arg)
{
    pulsar_transport *t = arg;
    uint64_t backoff = BACKOFF_MIN_MS;
    qs_buf out = QS_BUF_INIT;
    for (;;) {
        uv_mutex_lock(&t->base.mu);
        bool stop = t->writer_stop, queued = t->qn > 0;
        uv_mutex_unlock(&t->base.mu);
        bool idle = !queued && t->ihead == t->in_n;
        if (stop && idle)
            break;
        if (!qs_pulsar_conn_is_open(&t->wconn)) {
            if (stop) {
                fail_queued(t, "the hub is shutting down");
                break;
            }
            if (producer_open(t) < 0) {
                qs_pulsar_link_down(t, &t->plink, t->wconn.err);
                fail_queued(t, t->wconn.err);
                nap(t, t->writer_fd, backoff);
                drain_fd(t->writer_fd);
                backoff = QS_MIN(backoff * 2, (uint64_t)BACKOFF_MAX_MS);
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            qs_pulsar_link_up(t, &t->plink);
        }
        /* Send what is queued, unless MAX_BATCHES_IN_FLIGHT batches await their receipts:
         * what queues meanwhile goes in the next batch (the broker's cost is per batch). */
        size_t in_flight_batches =
            t->ihead < t->in_n
                ? (size_t)(t->inflight[t->in_n - 1]->seqid - t->inflight[t->ihead]->seqid + 1)
                : 0;
        uv_mutex_lock(&t->base.mu);
        size_t n = in_flight_batches < MAX_BATCHES_IN_FLIGHT ? QS_MIN(t->qn, (size_t)MAX_BATCH) : 0;
        pending **batch = NULL;
        if (n) {
            batch = qs_xmalloc(n * sizeof(*batch));
            memcpy(batch, t->queue, n * sizeof(*batch));
            memmove(t->queue, t->queue + n, (t->qn - n) * sizeof(*t->queue));
            t->qn -= n;
        }
        uv_mutex_unlock(&t->base.mu);
        if (n) {
            uint64_t now = qs_now_ms();
            out.len = 0;
            if (t->in_n + n > t->in_cap) {
                t->in_cap = QS_MAX(t->in_cap * 2, t->in_n + n);
                t->inflight = qs_xrealloc(t->inflight, t->in_cap * sizeof(*t->inflight));
            }
            /* Batches of up to BATCH_MSGS updates and about BATCH_BYTES. */
            for (size_t i = 0; i < n;) {
                size_t k = 0, bytes = 0;
                uint64_t seqid = t->next_seqid++;
                while (i + k < n && k < BATCH_MSGS && bytes < BATCH_BYTES) {
                    pending *p = batch[i + k];
                    p->seqid = seqid; /* its deadline runs from when it was queued */
                    bytes += p->u->frame->len;
                    t->inflight[t->in_n++] = p;
                    k++;
                }
                encode_send(t, batch + i, k, seqid, &out);
                i += k;
            }
            free(batch);
            if (qs_pulsar_conn_send(&t->wconn, out.p, out.len, now + t->s.publish_timeout_ms) < 0) {
                qs_pulsar_link_down(t, &t->plink, t->wconn.err);
                fail_inflight(t, t->wconn.err);
                continue;
            }
        }
        /* Wait for receipts, or for more publishes. */
        uint64_t now = qs_now_ms();
        uint64_t deadline = now + POLL_MS;
        if (t->ihead < t->in_n)
            deadline = QS_MIN(deadline, t->inflight[t->ihead]->deadline);
        qs_pulsar_frame *f;
        int r = deadline > now ? qs_pulsar_conn_next(&t->wconn, deadline, t->writer_fd, &f) : 0;
        drain_fd(t->writer_fd);
        if (r < 0) {
            qs_pulsar_link_down(t, &t->plink, t->wconn.err);
            fail_inflight(t, t->wconn.err);
            fail_queued(t, t->wconn.err);
            continue;
        }
        if (r == 1 && writer_frame(t, f) < 0) {
            qs_pulsar_conn_close(&t->wconn);
            continue;
        }
        if (t->ihead < t->in_n && qs_now_ms() >= t->inflight[t->ihead]->deadline) {
            char why[QS_REASON_MAX];
            snprintf(why, sizeof(why),
                     "pulsar unavailable: the broker did not acknowledge the publish within "
                     "%" PRIu64 " ms (publish_timeout)",
                     t->s.publish_timeout_ms);
            qs_pulsar_link_down(t, &t->plink, why);
            fail_inflight(t, why);
            fail_queued(t, why);
            qs_pulsar_conn_close(&t->wconn);
        }
        expire_queued(t);
    }
    qs_buf_free(&out);
    fail_inflight(t, "the hub is shutting down");
    qs_pulsar_conn_close(&t->wconn);
}

/* ------------------------------------------------------------ the bus */

static int bus_open(void *arg)
{
    pulsar_transport *t = arg;
    qs_pulsar_conn *c = &t->bconn;
    if (qs_pulsar_conn_open(c, t->s.topic) < 0)
        return -1;
    uv_mutex_lock(&t->base.mu);
    uint64_t pos = t->base.seq;
    uv_mutex_unlock(&t->base.mu);
    uint64_t ledger = QS_PULSAR_ID_NONE, entry = QS_PULSAR_ID_NONE;
    if (pos)
        qs_pulsar_msgid_of(pos, &ledger, &entry);
    if (subscribe(t, c, t->s.topic, t->subscription, BUS_CONSUMER_ID, ledger, entry) < 0) {
        qs_pulsar_conn_close(c);
        return -1;
    }
    return 0;
}

/* A message on the bus: indexed, then delivered when it is past the node's position. */
static void bus_message(pulsar_transport *t, const qs_pulsar_msg *m, uint64_t seq)
{
    qs_update *u = qs_pulsar_message_update(m, seq);
    const char *id = qs_pulsar_property(m->properties, m->n_properties, QS_PULSAR_ID_PROPERTY);
    uv_mutex_lock(&t->base.mu);
    bool fresh = seq > t->base.seq;
    if (fresh && id)
        qs_kafka_index_add(&t->index, id, strlen(id), (int64_t)seq);
    if (fresh && u)
        qs_transport_set_position(&t->base, seq, u->id);
    else if (fresh)
        t->base.seq = seq; /* not an update: the last event id stays */
    uv_mutex_unlock(&t->base.mu);
    if (!u && fresh && t->bus_skipped++ % 1000 == 0)
        qs_warn("pulsar %s: skipping a message of \"%s\": not a Quicksilver update (%" PRIu64
                " so far)",
                t->s.service_url, t->s.topic, t->bus_skipped);
    if (u && fresh)
        t->host.deliver(t->host.ctx, u);
    if (u)
        qs_update_unref(u);
}

/* The bus's watchdog: every STALL_CHECK_MS it asks the broker for the topic's last message
 * id; when the topic holds messages past the node's position and none came for as long,
 * the subscription is stuck (a broker restarted after a crash was seen to position a
 * resumed non-durable subscription past the messages of its new ledger): it subscribes
 * again from the node's position. */
static void bus_check(pulsar_transport *t, const Qspulsar__GetLastMessageIdResponse *r,
                      uint64_t quiet_ms)
{
    const Qspulsar__MessageId *last = r->last_message_id;
    uint64_t end = 0;
    if (last->entry == QS_PULSAR_ID_NONE ||
        !qs_pulsar_seq_of(last->ledger, last->entry, last->has_batch_index ? last->batch_index : 0,
                          &end))
        return;
    uv_mutex_lock(&t->base.mu);
    uint64_t pos = t->base.seq;
    uv_mutex_unlock(&t->base.mu);
    if (end <= pos || quiet_ms < STALL_CHECK_MS)
        return;
    uint64_t l, e;
    qs_pulsar_msgid_of(pos, &l, &e);
    qs_warn("pulsar %s: bus: no message for %" PRIu64 " ms at (%" PRIu64 ", %" PRIu64 ") while "
            "the topic goes on to (%" PRIu64 ", %" PRIu64 "): subscribing again",
            t->s.service_url, quiet_ms, l, e, last->ledger, last->entry);
    qs_pulsar_conn_close(&t->bconn);
}

static void bus_main(void *arg)
{
    pulsar_transport *t = arg;
    uint64_t backoff = BACKOFF_MIN_MS;
    uint64_t last_msg_ms = 0, next_check_ms = 0, check_req = 0;
    while (!qs_pulsar_is_stopping(t)) {
        if (!qs_pulsar_conn_is_open(&t->bconn)) {
            if (bus_open(t) < 0 || qs_pulsar_flow(&t->bconn, BUS_CONSUMER_ID, BUS_PERMITS) < 0) {
                qs_pulsar_link_down(t, &t->blink, t->bconn.err);
                qs_pulsar_conn_close(&t->bconn);
                nap(t, -1, backoff);
                backoff = QS_MIN(backoff * 2, (uint64_t)BACKOFF_MAX_MS);
                continue;
            }
            t->bus_received = 0;
            backoff = BACKOFF_MIN_MS;
            qs_pulsar_link_up(t, &t->blink);
            last_msg_ms = qs_now_ms();
            next_check_ms = last_msg_ms + STALL_CHECK_MS;
            check_req = 0;
        }
        uint64_t now = qs_now_ms();
        if (now >= next_check_ms) {
            Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
            Qspulsar__GetLastMessageId gl = QSPULSAR__GET_LAST_MESSAGE_ID__INIT;
            cmd.type = QS_PULSAR_GET_LAST_MESSAGE_ID;
            cmd.get_last_message_id = &gl;
            gl.consumer_id = BUS_CONSUMER_ID;
            gl.request_id = check_req = qs_pulsar_conn_request_id(&t->bconn);
            next_check_ms = now + STALL_CHECK_MS;
            if (qs_pulsar_conn_send_command(&t->bconn, &cmd, now + t->s.timeout_ms) < 0) {
                qs_pulsar_link_down(t, &t->blink, t->bconn.err);
                continue;
            }
        }
        qs_pulsar_frame *f;
        int r = qs_pulsar_conn_next(&t->bconn, qs_now_ms() + POLL_MS, -1, &f);
        if (r < 0) {
            if (!qs_pulsar_is_stopping(t))
                qs_pulsar_link_down(t, &t->blink, t->bconn.err);
            continue;
        }
        if (r == 0)
            continue;
        int type = f->cmd->type;
        if (type == QS_PULSAR_GET_LAST_MESSAGE_ID_RESPONSE && check_req &&
            f->cmd->get_last_message_id_response->request_id == check_req) {
            check_req = 0;
            bus_check(t, f->cmd->get_last_message_id_response, qs_now_ms() - last_msg_ms);
        } else if (type == QS_PULSAR_MESSAGE && f->cmd->message->consumer_id == BUS_CONSUMER_ID) {
            last_msg_ms = qs_now_ms();
            t->bus_received += qs_pulsar_each_message(t, f, t->s.topic, bus_message);
            if (t->bus_received >= BUS_PERMITS / 2) {
                /* Exactly what was taken is given back (a batch takes its size). */
                uint32_t k = t->bus_received;
                t->bus_received = 0;
                if (qs_pulsar_flow(&t->bconn, BUS_CONSUMER_ID, k) < 0)
                    qs_pulsar_link_down(t, &t->blink, t->bconn.err);
            }
        } else if (type == QS_PULSAR_CLOSE_CONSUMER) {
            qs_pulsar_link_down(t, &t->blink,
                                "pulsar unavailable: the broker closed the bus's "
                                "subscription (topic moved or unloaded)");
            qs_pulsar_conn_close(&t->bconn);
        } else if (type == QS_PULSAR_REACHED_END_OF_TOPIC) {
            qs_error("pulsar %s: topic \"%s\" was terminated: no update can be published to it",
                     t->s.service_url, t->s.topic);
        }
    }
    qs_pulsar_conn_close(&t->bconn);
}

/* Reads the topic from its first retained message to its last (asked for after
 * subscribing), indexing ids: the node's start position. */
static int catch_up(pulsar_transport *t, char **err)
{
    qs_pulsar_conn *c = &t->bconn;
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__GetLastMessageId gl = QSPULSAR__GET_LAST_MESSAGE_ID__INIT;
    cmd.type = QS_PULSAR_GET_LAST_MESSAGE_ID;
    cmd.get_last_message_id = &gl;
    gl.consumer_id = BUS_CONSUMER_ID;
    gl.request_id = qs_pulsar_conn_request_id(c);
    qs_pulsar_frame *f;
    if (qs_pulsar_conn_request(c, &cmd, gl.request_id, "the topic's last message id", &f) < 0)
        goto fail;
    const Qspulsar__MessageId *last = f->cmd->get_last_message_id_response->last_message_id;
    uint64_t target = 0;
    /* (ledger, -1): no message in the current ledger; earlier ledgers may hold some, so the
     * read ends when the topic stays quiet. */
    bool known = last->entry != QS_PULSAR_ID_NONE &&
                 qs_pulsar_seq_of(last->ledger, last->entry,
                                  last->has_batch_index ? last->batch_index : 0, &target);
    bool maybe = !known && last->ledger != QS_PULSAR_ID_NONE;
    if (qs_pulsar_flow(c, BUS_CONSUMER_ID, BUS_PERMITS) < 0)
        goto fail;
    t->bus_received = 0;
    uint64_t last_log = qs_now_ms(), n = 0;
    for (;;) {
        uv_mutex_lock(&t->base.mu);
        uint64_t pos = t->base.seq;
        uv_mutex_unlock(&t->base.mu);
        if (known ? pos >= target : !maybe)
            break;
        uint64_t wait = known ? t->s.timeout_ms : 1000;
        int r = qs_pulsar_conn_next(c, qs_now_ms() + wait, -1, &f);
        if (r < 0)
            goto fail;
        if (r == 0) {
            if (!known)
                break; /* quiet: nothing more in the earlier ledgers */
            qs_pulsar_conn_fail(c, "no message for %" PRIu64 " ms while reading the history", wait);
            goto fail;
        }
        if (f->cmd->type != QS_PULSAR_MESSAGE || f->cmd->message->consumer_id != BUS_CONSUMER_ID)
            continue;
        uint32_t k = qs_pulsar_each_message(t, f, t->s.topic, index_message);
        n += k;
        t->bus_received += k;
        if (t->bus_received >= BUS_PERMITS / 2) {
            uint32_t give = t->bus_received;
            t->bus_received = 0;
            if (qs_pulsar_flow(c, BUS_CONSUMER_ID, give) < 0)
                goto fail;
        }
        if (qs_now_ms() - last_log >= 5000) {
            last_log = qs_now_ms();
            qs_info("pulsar %s: reading topic \"%s\" to index its ids: %" PRIu64 " messages so "
                    "far",
                    t->s.service_url, t->s.topic, n);
        }
    }
    return 0;
fail:
    *err = qs_xasprintf("%s:%d: transport pulsar: topic: cannot read the history of \"%s\" to "
                        "index its ids: %s",
                        t->s.source, t->s.line, t->s.topic, c->err);
    return -1;
}

/* ------------------------------------------------------------ history */

static void fail_replay(qs_replay *r, const char *reason)
{
    qs_replay_clear(r);
    r->status = -1;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

/* Starts a history reader positioned so that its first message is the one of seq `first`
 * (0: the topic's first retained message). */
static int reader_start(pulsar_transport *t, uint64_t first, uint32_t permits)
{
    qs_pulsar_conn *c = &t->rconn;
    if (!qs_pulsar_conn_is_open(c) && qs_pulsar_conn_open(c, t->s.topic) < 0)
        return -1;
    uint64_t ledger = QS_PULSAR_ID_NONE, entry = QS_PULSAR_ID_NONE;
    if (first) {
        qs_pulsar_msgid_of(first, &ledger, &entry);
        /* One before: whether the broker starts at the id or after it, nothing is missed. */
        entry = entry ? entry - 1 : QS_PULSAR_ID_NONE;
    }
    t->rconsumer++;
    char sub[96];
    snprintf(sub, sizeof(sub), "quicksilver-history-%s-%" PRIu64, t->node, t->rconsumer);
    t->rreceived = 0;
    t->rpermits = permits;
    t->ropen = true;
    if (subscribe(t, c, t->s.topic, sub, t->rconsumer, ledger, entry) < 0 ||
        qs_pulsar_flow(c, t->rconsumer, permits) < 0) {
        qs_pulsar_conn_close(c);
        return -1;
    }
    return 0;
}

/* Forgets the messages left of the history reader's current frame. */
static void reader_drop(pulsar_transport *t)
{
    if (t->rit_active)
        qs_pulsar_msgs_clear(&t->rit);
    t->rit_active = false;
}

/* The next message of the history reader: 1 (*m, *seq; valid until the next call), 0 when
 * the topic stays quiet, -1. */
static int reader_next(pulsar_transport *t, uint64_t deadline, qs_pulsar_msg *m, uint64_t *seq)
{
    for (;;) {
        if (t->rit_active) {
            const char *why = NULL;
            int rc = qs_pulsar_msgs_next(&t->rit, m, &why);
            if (rc == 1) {
                if (qs_pulsar_seq_of(t->rit_ledger, t->rit_entry, m->batch_index, seq))
                    return 1;
                continue;
            }
            reader_drop(t);
            continue;
        }
        uint64_t until = QS_MIN(deadline, qs_now_ms() + QUIET_MS);
        qs_pulsar_frame *f;
        int r = qs_pulsar_conn_next(&t->rconn, until, -1, &f);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (qs_now_ms() >= deadline)
                return qs_pulsar_conn_fail(&t->rconn,
                                           "pulsar unavailable: history not read "
                                           "within %" PRIu64 " ms",
                                           t->s.timeout_ms);
            return 0;
        }
        if (f->cmd->type != QS_PULSAR_MESSAGE || f->cmd->message->consumer_id != t->rconsumer)
            continue;
        /* Permits given back in halves, so that a long read never stalls; a batch counts
         * as its messages. */
        int64_t k = f->meta && f->meta->has_num_messages_in_batch
                        ? QS_MAX((int64_t)f->meta->num_messages_in_batch, (int64_t)1)
                        : 1;
        t->rreceived += (uint32_t)QS_MIN(k, (int64_t)QS_PULSAR_MAX_BATCH);
        if (t->rreceived >= t->rpermits / 2) {
            uint32_t give = t->rreceived; /* exactly what was taken */
            t->rreceived = 0;
            if (qs_pulsar_flow(&t->rconn, t->rconsumer, give) < 0)
                return -1;
        }
        if (!f->meta)
            continue;
        qs_pulsar_msgs_init(&t->rit, f);
        t->rit_ledger = f->cmd->message->message_id->ledger;
        t->rit_entry = f->cmd->message->message_id->entry;
        t->rit_active = true;
    }
}

static void reader_stop(pulsar_transport *t)
{
    reader_drop(t);
    t->ropen = false;
    if (qs_pulsar_conn_is_open(&t->rconn) && close_consumer(&t->rconn, t->rconsumer) < 0)
        qs_pulsar_conn_close(&t->rconn);
}

static void serve_replay(pulsar_transport *t, qs_replay *r)
{
    uint64_t deadline = qs_now_ms() + t->s.timeout_ms;
    uv_mutex_lock(&t->base.mu);
    uint64_t until = QS_MAX(r->until_seq, t->base_seq);
    uv_mutex_unlock(&t->base.mu);
    qs_replay_clear(r);
    r->status = 0;
    r->finished = false;
    size_t max_events = r->max_events ? r->max_events : 1024;
    size_t max_bytes = r->max_bytes ? r->max_bytes : (size_t)1 << 20;
    uint32_t permits = HISTORY_PERMITS;
    uint64_t after = 0; /* replay the updates of seq > after */
    bool started = false;
    qs_pulsar_msg m;
    uint64_t seq = 0;
    if (!r->continuation) {
        r->id_found = true;
        if (strcmp(r->after_id, "earliest") != 0) {
            int64_t cand[MAX_CANDIDATES];
            uv_mutex_lock(&t->base.mu);
            size_t n = qs_kafka_index_find(&t->index, r->after_id, strlen(r->after_id), cand,
                                           MAX_CANDIDATES);
            uv_mutex_unlock(&t->base.mu);
            bool found = false;
            if (t->ropen)
                reader_stop(t);
            for (size_t i = 0; i < n && !found; i++) {
                if (reader_start(t, (uint64_t)cand[i], permits) < 0)
                    goto unavailable;
                /* The broker may start at the message before (its start position is
                 * inclusive or not depending on its version): what precedes is skipped. */
                int rc;
                do
                    rc = reader_next(t, deadline, &m, &seq);
                while (rc == 1 && seq < (uint64_t)cand[i]);
                if (rc < 0)
                    goto unavailable;
                const char *id = rc == 1 ? qs_pulsar_property(m.properties, m.n_properties,
                                                              QS_PULSAR_ID_PROPERTY)
                                         : NULL;
                found = rc == 1 && seq == (uint64_t)cand[i] && id && !strcmp(id, r->after_id);
                if (found) {
                    after = t->rafter = seq;
                    started = true; /* the reader goes on from there */
                } else {
                    reader_stop(t);
                }
            }
            if (!found) {
                r->id_found = false; /* never stored, or removed by retention */
                r->finished = true;
                r->next_seq = 0;
                return;
            }
        }
    } else {
        after = r->after_seq;
        /* The reader left open by the previous pull goes on where it stopped. */
        started = t->ropen && t->rafter == after;
    }
    if (t->ropen && !started)
        reader_stop(t);
    r->next_seq = after;
    if (after >= until) {
        if (started)
            reader_stop(t);
        r->finished = true;
        return;
    }
    if (!started && reader_start(t, after ? after + 1 : 0, permits) < 0)
        goto unavailable;
    size_t cap = 0, bytes = 0;
    while (r->n_updates < max_events && bytes < max_bytes) {
        int rc = reader_next(t, deadline, &m, &seq);
        if (rc < 0)
            goto unavailable;
        if (rc == 0) { /* nothing more (retention removed the end of the range) */
            r->finished = true;
            break;
        }
        t->rafter = seq;
        if (seq <= after)
            continue;
        if (seq > until) {
            r->finished = true;
            break;
        }
        qs_update *u = qs_pulsar_message_update(&m, seq);
        if (u) {
            if (r->n_updates == cap) {
                cap = cap ? cap * 2 : 64;
                r->updates = qs_xrealloc(r->updates, cap * sizeof(*r->updates));
            }
            r->updates[r->n_updates++] = u;
            bytes += u->frame->len;
        }
        r->next_seq = seq;
        if (seq >= until) {
            r->finished = true;
            break;
        }
    }
    if (r->finished)
        reader_stop(t); /* else left open for the next pull, which goes on from rafter */
    return;
unavailable:
    fail_replay(r, t->rconn.err[0] ? t->rconn.err : "pulsar unavailable");
    reader_drop(t);
    qs_pulsar_conn_close(&t->rconn);
    t->ropen = false;
}

static void reader_main(void *arg)
{
    pulsar_transport *t = arg;
    uint64_t idle_since = qs_now_ms();
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        while (!t->jn && !t->stopping) {
            if (!t->ropen) {
                uv_cond_wait(&t->reader_cond, &t->base.mu);
                continue;
            }
            uv_cond_timedwait(&t->reader_cond, &t->base.mu, (uint64_t)READER_IDLE_MS * 1000000);
            if (!t->jn && !t->stopping && qs_now_ms() - idle_since >= READER_IDLE_MS) {
                uv_mutex_unlock(&t->base.mu);
                reader_stop(t); /* no pull came to go on with it */
                uv_mutex_lock(&t->base.mu);
            }
        }
        if (!t->jn)
            break;
        qs_replay *r = t->jobs[0];
        memmove(t->jobs, t->jobs + 1, (t->jn - 1) * sizeof(*t->jobs));
        t->jn--;
        bool stopping = t->stopping;
        uv_mutex_unlock(&t->base.mu);
        if (stopping)
            fail_replay(r, "the hub is shutting down");
        else
            serve_replay(t, r);
        r->done(r);
        idle_since = qs_now_ms();
        uv_mutex_lock(&t->base.mu);
    }
    uv_mutex_unlock(&t->base.mu);
    reader_drop(t);
    qs_pulsar_conn_close(&t->rconn);
}

static void pulsar_replay(qs_transport *base, qs_replay *r)
{
    pulsar_transport *t = (pulsar_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (t->jn == t->jcap) {
        t->jcap = t->jcap ? t->jcap * 2 : 16;
        t->jobs = qs_xrealloc(t->jobs, t->jcap * sizeof(*t->jobs));
    }
    t->jobs[t->jn++] = r;
    uv_cond_signal(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ operations */

static void pulsar_destroy(qs_transport *base);

static char *derive_subscription(const char *node)
{
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        snprintf(host, sizeof(host), "node");
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            *p = '-';
    return qs_xasprintf("quicksilver-%s-%.8s", host, node);
}

/* The message for a failure at start, naming the option to look at. */
static char *start_error(pulsar_transport *t, const qs_pulsar_conn *c, const char *what)
{
    const char *option = c->option;
    if (!option && c->kind == QS_PULSAR_FAIL_UNAVAILABLE)
        return qs_xasprintf("%s:%d: transport pulsar: url: cannot %s at %s: %s", t->s.source,
                            t->s.line, what, t->s.service_url, c->err);
    if (!option)
        option = "url";
    return qs_xasprintf("%s:%d: transport pulsar: %s: cannot %s at %s: %s", t->s.source, t->s.line,
                        option, what, t->s.service_url, c->err);
}

/* At start, on the producer's connection: refuses a partitioned topic (or presence topic),
 * whose messages would have no one order. */
static int refuse_partitioned(pulsar_transport *t, bool presence, char **err)
{
    qs_pulsar_conn *c = &t->wconn;
    const char *topic = presence ? t->s.presence_topic : t->s.topic;
    const char *option = presence ? "presence_topic" : "topic";
    uint32_t n;
    if (qs_pulsar_conn_partitions(c, topic, &n) < 0) {
        if (c->option && !strcmp(c->option, "topic"))
            c->option = option;
        *err = start_error(t, c,
                           presence ? "ask for the presence topic's partitions"
                                    : "ask for the topic's partitions");
        return -1;
    }
    if (!n)
        return 0;
    *err = qs_xasprintf("%s:%d: transport pulsar: %s: \"%s\" is a partitioned topic (%" PRIu32
                        " partition%s); the hub needs a non-partitioned topic, whose single "
                        "order every node %s",
                        t->s.source, t->s.line, option, topic, n, n == 1 ? "" : "s",
                        presence ? "reads the registry of subscriptions in" : "delivers in");
    return -1;
}

static int pulsar_create(const qs_config_transport *cfg, const qs_transport_host *host,
                         qs_transport **out, char **err)
{
    qs_pulsar_settings s;
    if (qs_pulsar_settings_load(cfg, &s, err) < 0)
        return -1;
    pulsar_transport *t = qs_xcalloc(1, sizeof(*t));
    qs_transport_base_init(&t->base, &qs_transport_pulsar_ops);
    t->host = *host;
    t->s = s;
    t->writer_fd = -1;
    t->cctx.wake_fd = -1;
    uv_cond_init(&t->reader_cond);
    qs_kafka_index_init(&t->index);
    char urn[QS_UUID_URN_LEN + 1];
    qs_uuid4_urn(urn);
    snprintf(t->node, sizeof(t->node), "%s", urn + 9);
    qs_pulsar_presence_init(t);
    t->subscription =
        s.subscription_name ? qs_xstrdup(s.subscription_name) : derive_subscription(t->node);
    t->plink = (link_state){.name = "publish", .up = true};
    t->blink = (link_state){.name = "bus", .up = true};
    t->prlink = (link_state){.name = "presence", .up = true};
    t->next_seqid = 1;
    qs_pulsar_conn_init(&t->wconn, &t->cctx);
    qs_pulsar_conn_init(&t->bconn, &t->cctx);
    qs_pulsar_conn_init(&t->rconn, &t->cctx);
    t->writer_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->writer_fd < 0) {
        *err = qs_xasprintf("transport pulsar: eventfd: %s", strerror(errno));
        goto fail;
    }
    if (qs_pulsar_client_ctx_init(&t->cctx, &t->s, err) < 0)
        goto fail;
    uint64_t t0 = qs_now_ms();
    /* The producer first: it is what proves the topic can be written (and creates it). Its
     * connection first makes sure that neither topic is partitioned. */
    /* A broker still recovering (after a restart) is waited for, within timeout. */
    uint64_t ready_by = t0 + t->s.timeout_ms;
    if (qs_pulsar_open_when_ready(&t->wconn, writer_connect, t, ready_by) < 0) {
        *err = start_error(t, &t->wconn, "create a producer on the topic");
        goto fail;
    }
    if (refuse_partitioned(t, false, err) < 0 || refuse_partitioned(t, true, err) < 0)
        goto fail;
    if (qs_pulsar_open_when_ready(&t->wconn, producer_open, t, ready_by) < 0) {
        *err = start_error(t, &t->wconn, "create a producer on the topic");
        goto fail;
    }
    if (qs_pulsar_open_when_ready(&t->bconn, bus_open, t, ready_by) < 0) {
        *err = start_error(t, &t->bconn, "subscribe to the topic");
        goto fail;
    }
    if (catch_up(t, err) < 0)
        goto fail;
    uv_mutex_lock(&t->base.mu);
    t->base_seq = t->base.seq;
    uv_mutex_unlock(&t->base.mu);
    uint64_t t_index = qs_now_ms() - t0;
    if (qs_pulsar_presence_create(t, err) < 0)
        goto fail;
    qs_info("pulsar %s: topic \"%s\": %zu ids indexed in %" PRIu64 " ms, presence topic \"%s\", "
            "node %s, subscription %s%s",
            s.service_url, s.topic, t->index.count, t_index, s.presence_topic, t->node,
            t->subscription,
            s.subscription_name ? "" : " (derived: set subscription_name to choose it)");
    *out = &t->base;
    return 0;
fail:
    pulsar_destroy(&t->base);
    return -1;
}

static int pulsar_start(qs_transport *base, char **err)
{
    pulsar_transport *t = (pulsar_transport *)base;
    if (uv_thread_create(&t->writer_t, writer_main, t) ||
        uv_thread_create(&t->bus_t, bus_main, t) ||
        uv_thread_create(&t->reader_t, reader_main, t) ||
        uv_thread_create(&t->presence_t, qs_pulsar_presence_main, t)) {
        *err = qs_xstrdup("transport pulsar: cannot start its threads");
        return -1;
    }
    t->threads_started = true;
    return 0;
}

static bool pulsar_healthy(qs_transport *base, char reason[QS_REASON_MAX])
{
    pulsar_transport *t = (pulsar_transport *)base;
    uv_mutex_lock(&t->base.mu);
    bool ok = t->plink.up && t->blink.up;
    if (!ok)
        down_reason_locked(t, reason);
    uv_mutex_unlock(&t->base.mu);
    return ok;
}

static void pulsar_stop(qs_transport *base)
{
    pulsar_transport *t = (pulsar_transport *)base;
    uv_mutex_lock(&t->base.mu);
    t->stopping = true;
    uv_cond_broadcast(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
    if (!t->threads_started)
        return;
    /* The presence thread says goodbye (its own connection), then the writer completes the
     * publishes in flight; only then are the other threads' waits interrupted. */
    uv_thread_join(&t->presence_t);
    uv_mutex_lock(&t->base.mu);
    t->writer_stop = true;
    uv_mutex_unlock(&t->base.mu);
    uint64_t one = 1;
    if (write(t->writer_fd, &one, sizeof(one)) < 0)
        qs_debug("pulsar: eventfd write: %s", strerror(errno));
    uv_thread_join(&t->writer_t);
    qs_pulsar_client_ctx_wake(&t->cctx);
    uv_thread_join(&t->bus_t);
    uv_thread_join(&t->reader_t);
    t->threads_started = false;
}

static void pulsar_destroy(qs_transport *base)
{
    pulsar_transport *t = (pulsar_transport *)base;
    pulsar_stop(base);
    for (size_t i = 0; i < t->jn; i++) {
        fail_replay(t->jobs[i], "the hub is shutting down");
        t->jobs[i]->done(t->jobs[i]);
    }
    fail_inflight(t, "the hub is shutting down");
    fail_queued(t, "the hub is shutting down");
    free(t->inflight);
    free(t->jobs);
    qs_pulsar_conn_free(&t->wconn);
    qs_pulsar_conn_free(&t->bconn);
    qs_pulsar_conn_free(&t->rconn);
    qs_pulsar_presence_free(t);
    qs_pulsar_client_ctx_destroy(&t->cctx);
    if (t->writer_fd >= 0)
        close(t->writer_fd);
    qs_kafka_index_free(&t->index);
    qs_transport_base_destroy(&t->base);
    uv_cond_destroy(&t->reader_cond);
    qs_pulsar_settings_free(&t->s);
    free(t->subscription);
    free(t->producer_name);
    free(t);
}

const qs_transport_ops qs_transport_pulsar_ops = {
    .name = "pulsar",
    .has_history = true,
    .create = pulsar_create,
    .start = pulsar_start,
    .publish = pulsar_publish,
    .replay = pulsar_replay,
    .healthy = pulsar_healthy,
    .presence_add = qs_pulsar_presence_add,
    .presence_remove = qs_pulsar_presence_remove,
    .presence_list = qs_pulsar_presence_list,
    .stop = pulsar_stop,
    .destroy = pulsar_destroy,
};
