/* SPDX-License-Identifier: MIT
 * kafka.c - the cluster transport over Apache Kafka (librdkafka): any number of hub
 * processes sharing one topic behave as one hub. Here: start-up (connection, topics, the
 * id index, the registry), publishing, the bus, history reads, presence, health, stop.
 * The pure parts (options, topic checks, messages, index, registry) are in kafka.h.
 *
 * The order. The topic of updates has exactly one partition: its offsets are the one order
 * every node delivers in, and an update's bus seq is its offset + 1. A message's value is
 * the update's record (record.h); its header "mercure-id" is the update's id.
 *
 * Handles (librdkafka clients, each with its own connections and threads):
 *  - the producer: idempotent, acks=all; publishes leave in bursts, one at a time (what
 *    comes while a burst awaits its acknowledgements leaves as the next one, see
 *    send_held); a publish completes from its delivery report, served by the writer
 *    thread (rd_kafka_poll). It also writes the presence records.
 *  - the bus consumer: the bus thread reads the partition from this node's position and
 *    hands every update to host->deliver, the node's own publishes included, indexing ids.
 *    It never joins its consumer group (it assigns the partition itself); it commits its
 *    position to the group so that the group's lag shows how far the node is behind.
 *  - the history consumer: the reader thread serves replays, seeking to offsets found in
 *    the index.
 *  - the presence consumer: the presence thread follows the compacted presence topic,
 *    heartbeats, claims dead nodes, and probes the brokers while a link is down.
 *
 * Start (create): reach the brokers (or fail naming the option), check or create both
 * topics, read the topic of updates from its first retained offset to its end once to
 * build the id index (the bus thread keeps it up to date afterwards), and read the
 * presence topic whole. The node delivers what follows; the rest is history.
 *
 * Locking: the transport's lock (base.mu) guards the links' states, the bus position, the
 * index, the registry, this node's entries and the reader's queue; no thread holds it while
 * it waits for the brokers (producev never blocks: it only queues).
 *
 * Failures: librdkafka reconnects by itself. A link is down when its client reports that no
 * broker is reachable (or a publish timed out); the presence thread probes every 250 ms
 * until it is back. While the producer or the bus is down the transport is unhealthy and
 * publishes fail at once with -EAGAIN (503); otherwise an unacknowledged publish fails
 * after publish_timeout. The bus resumes from its own position, so nothing is delivered
 * twice, and with acks=all nothing acknowledged is lost.
 */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "record.h"
#include "transport/kafka.h"
#include "uuid.h"

#define POLL_MS 100          /* the threads check for stop at least this often */
#define PROBE_MS 250         /* a link that is down is probed this often */
#define PRUNE_EVERY_MS 60000 /* the index forgets offsets removed by retention */
#define COMMIT_EVERY_MS 1000 /* the bus commits its position at most this often (when idle) */
#define MAX_CANDIDATES 8     /* offsets read to resolve one Last-Event-ID */
#define CLOSE_BOUND_MS 10000 /* the clients' destruction at stop, at most (see close_clients) */

/* ------------------------------------------------------------ types */

typedef struct link_state {
    const char *name;
    bool up;
    uint64_t down_ms;           /* when it went down (presence clock) */
    char reason[QS_REASON_MAX]; /* why it is down */
} link_state;

typedef struct kafka_transport kafka_transport;

/* The opaque of each client: which link its errors concern, its last error (for start-up
 * messages). */
typedef struct client_ctx {
    kafka_transport *t;
    link_state *link;
    rd_kafka_resp_err_t last_err;
    char last_reason[QS_REASON_MAX];
} client_ctx;

enum { P_PUBLISH = 1, P_PRESENCE };

/* The opaque of a produced message, completed by its delivery report. */
typedef struct pending {
    int kind;
    qs_update *u;
    qs_publish_cb cb;
    void *arg;
    struct pending *next;        /* P_PUBLISH: in the held queue, or a list of failures */
    qs_buf rec;                  /* P_PUBLISH: its record, until produced */
    rd_kafka_resp_err_t refused; /* P_PUBLISH: why librdkafka did not take it */
} pending;

struct kafka_transport {
    qs_transport base;
    qs_transport_host host;
    qs_kafka_settings s;
    char node[40];
    char *group;
    rd_kafka_t *producer, *bus, *reader, *pres;
    client_ctx pctx, bctx, rctx, prctx;
    link_state plink, blink, rlink, prlink;

    /* Publishing, under mu (see send_held): publishes waiting for the next burst, and how
     * many of the burst in flight are not reported yet (0: none in flight). */
    pending *held, **held_tail;
    size_t burst_left;

    uv_cond_t reader_cond;
    bool stopping;    /* publishes refused, threads exit */
    bool writer_stop; /* the writer flushes and exits (after the presence thread) */
    bool threads_started;
    uv_thread_t writer_t, bus_t, reader_t, presence_t;
    uv_cond_t closed_cond; /* signalled when the clients are destroyed (close_clients) */
    bool clients_closed;   /* under mu */
    const char *closing;   /* the client being destroyed, under mu (for the log) */

    /* The bus (base.seq, base.last_id: the last delivered update). */
    uint64_t base_seq;    /* the position the node started at */
    qs_kafka_index index; /* under mu */
    uint64_t bus_skipped; /* foreign messages skipped (bus thread) */

    /* The reader's queue and consumer position (reader thread). */
    qs_replay **jobs;
    size_t jn, jcap;
    int64_t rpos;              /* next offset the history consumer returns; -1 unassigned */
    rd_kafka_message_t *rheld; /* a message read past a replay's end, at rpos */

    /* Presence: this node's entries (subscriber -> qs_presence_entry *), the registry read
     * from the presence topic, under mu. */
    qs_strmap local;
    uint64_t last_order;
    qs_kafka_registry reg;
    bool presence_dirty; /* a presence write failed: rewrite this node's entries */
};

/* ------------------------------------------------------------ links */

static void link_up(kafka_transport *t, link_state *l)
{
    uv_mutex_lock(&t->base.mu);
    bool restored = !l->up;
    l->up = true;
    l->reason[0] = '\0';
    uv_mutex_unlock(&t->base.mu);
    if (restored)
        qs_info("kafka %s: %s link restored", t->s.brokers, l->name);
}

static void link_down_locked(kafka_transport *t, link_state *l, const char *reason)
{
    bool changed = l->up || strcmp(l->reason, reason) != 0;
    if (l->up)
        l->down_ms = qs_now_ms();
    l->up = false;
    snprintf(l->reason, sizeof(l->reason), "%s", reason);
    if (changed)
        qs_error("kafka %s: %s link: %s", t->s.brokers, l->name, reason);
}

static void link_down(kafka_transport *t, link_state *l, const char *reason)
{
    uv_mutex_lock(&t->base.mu);
    link_down_locked(t, l, reason);
    uv_mutex_unlock(&t->base.mu);
}

/* Why publishes are refused now (under mu). */
static void down_reason(kafka_transport *t, char reason[QS_REASON_MAX])
{
    const char *why = !t->plink.up ? t->plink.reason : t->blink.reason;
    snprintf(reason, QS_REASON_MAX, "%s", why[0] ? why : "kafka unavailable");
}

static bool is_stopping(kafka_transport *t)
{
    uv_mutex_lock(&t->base.mu);
    bool s = t->stopping;
    uv_mutex_unlock(&t->base.mu);
    return s;
}

/* ------------------------------------------------------------ client callbacks */

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    client_ctx *c = opaque;
    kafka_transport *t = c->t;
    char why[QS_REASON_MAX];
    uv_mutex_lock(&t->base.mu);
    /* An authentication or TLS failure says more than the loss of brokers it causes. */
    bool telling = err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL;
    if (telling || (c->last_err != RD_KAFKA_RESP_ERR__AUTHENTICATION &&
                    c->last_err != RD_KAFKA_RESP_ERR__SSL)) {
        c->last_err = (rd_kafka_resp_err_t)err;
        snprintf(c->last_reason, sizeof(c->last_reason), "%s", reason);
    }
    switch (err) {
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        snprintf(why, sizeof(why), "kafka unavailable: no broker reachable (%s)", reason);
        link_down_locked(t, c->link, why);
        break;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        snprintf(why, sizeof(why), "kafka authentication failed: %s", reason);
        link_down_locked(t, c->link, why);
        break;
    case RD_KAFKA_RESP_ERR__SSL:
        snprintf(why, sizeof(why), "kafka TLS handshake failed: %s", reason);
        link_down_locked(t, c->link, why);
        break;
    case RD_KAFKA_RESP_ERR__FATAL: {
        char fatal[QS_REASON_MAX - 64];
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        snprintf(why, sizeof(why), "kafka producer failed for good (restart the hub): %s", fatal);
        link_down_locked(t, c->link, why);
        break;
    }
    default:
        break; /* a broker's connection came and went: ALL_BROKERS_DOWN follows if all did */
    }
    uv_mutex_unlock(&t->base.mu);
}

/* librdkafka's own log: its errors reach us through on_error too, and are logged once per
 * change there; the rest is for debugging. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 2)
        qs_error("kafka: %s: %s", fac, buf);
    else
        qs_debug("kafka: %s: %s", fac, buf);
}

static void publish_reason(kafka_transport *t, rd_kafka_resp_err_t err, char why[QS_REASON_MAX])
{
    if (err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
        uv_mutex_lock(&t->base.mu);
        const char *last = t->pctx.last_reason;
        snprintf(why, QS_REASON_MAX,
                 "kafka unavailable: the publish was not acknowledged within %" PRIu64
                 " ms%s%.120s%s",
                 t->s.publish_timeout_ms, last[0] ? " (" : "", last, last[0] ? ")" : "");
        uv_mutex_unlock(&t->base.mu);
    } else if (err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        snprintf(why, QS_REASON_MAX, "the hub is shutting down");
    } else {
        snprintf(why, QS_REASON_MAX, "kafka refused the publish: %s", rd_kafka_err2str(err));
    }
}

static void burst_reported(kafka_transport *t);

/* Completes a produced message: a publish's callback, or a presence record's failure. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka_transport *t = ((client_ctx *)opaque)->t;
    pending *p = m->_private;
    if (!p)
        return;
    if (p->kind == P_PUBLISH) {
        if (!m->err) {
            link_up(t, &t->plink);
            p->cb(p->arg, 0, NULL);
        } else {
            char why[QS_REASON_MAX];
            publish_reason(t, m->err, why);
            bool timed_out = m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
            if (timed_out)
                link_down(t, &t->plink, why);
            bool again = timed_out || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                         m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT ||
                         m->err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                         m->err == RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS ||
                         m->err == RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND ||
                         m->err == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT ||
                         m->err == RD_KAFKA_RESP_ERR__FATAL;
            if (!timed_out && m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
                m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
                qs_warn("kafka %s: publish %s failed: %s", t->s.brokers, p->u->id, why);
            p->cb(p->arg, again ? -EAGAIN : -EIO, why);
        }
        qs_update_unref(p->u);
        free(p);
        burst_reported(t);
        return;
    } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
               m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        /* A presence record was lost: this node's entries are written again once the
         * brokers take them. */
        uv_mutex_lock(&t->base.mu);
        t->presence_dirty = true;
        uv_mutex_unlock(&t->base.mu);
    }
    free(p);
}

/* ------------------------------------------------------------ clients */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                    size_t size)
{
    return rd_kafka_conf_set(conf, key, value, errstr, size) == RD_KAFKA_CONF_OK ? 0 : -1;
}

/* A client: the settings every client shares, then `extra` (key, value pairs). */
static rd_kafka_t *new_client(kafka_transport *t, rd_kafka_type_t type, client_ctx *ctx,
                              const char *role, const char *const *extra, size_t n_extra,
                              char **err)
{
    qs_kafka_settings *s = &t->s;
    char errstr[512] = "";
    char client_id[96], socket_timeout[24];
    snprintf(client_id, sizeof(client_id), "quicksilver-%.8s-%s", t->node, role);
    snprintf(socket_timeout, sizeof(socket_timeout), "%" PRIu64,
             QS_MAX(s->timeout_ms, (uint64_t)10));
    const char *protocol =
        s->user ? (s->tls ? "SASL_SSL" : "SASL_PLAINTEXT") : (s->tls ? "SSL" : "PLAINTEXT");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[64];
    size_t n = 0;
#define KV(k, v) (kv[n++] = (k), kv[n++] = (v))
    KV("bootstrap.servers", s->brokers);
    KV("client.id", client_id);
    KV("security.protocol", protocol);
    KV("socket.timeout.ms", socket_timeout);
    KV("reconnect.backoff.ms", "100");
    KV("reconnect.backoff.max.ms", "2000");
    KV("allow.auto.create.topics", "false");
    KV("log.connection.close", "false");
    KV("socket.nagle.disable", "true"); /* small requests leave at once: latency */
    KV("api.version.request", "true");
    if (s->user) {
        KV("sasl.mechanisms", s->sasl_mechanism ? s->sasl_mechanism : "PLAIN");
        KV("sasl.username", s->user);
        KV("sasl.password", s->password);
    }
    if (s->tls) {
        if (s->tls_ca)
            KV("ssl.ca.location", s->tls_ca);
        if (s->tls_cert)
            KV("ssl.certificate.location", s->tls_cert);
        if (s->tls_key)
            KV("ssl.key.location", s->tls_key);
        KV("enable.ssl.certificate.verification", s->tls_insecure ? "false" : "true");
        KV("ssl.endpoint.identification.algorithm", s->tls_insecure ? "none" : "https");
    }
#undef KV
    for (size_t i = 0; i + 1 < n_extra; i += 2) {
        kv[n++] = extra[i];
        kv[n++] = extra[i + 1];
    }
    for (size_t i = 0; i < n; i += 2)
        if (conf_set(conf, kv[i], kv[i + 1], errstr, sizeof(errstr)) < 0) {
            rd_kafka_conf_destroy(conf);
            *err = qs_xasprintf("%s:%d: transport kafka: %s: %s", s->source, s->line,
                                qs_kafka_conf_error_option(errstr), errstr);
            return NULL;
        }
    ctx->t = t;
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        *err = qs_xasprintf("%s:%d: transport kafka: %s: %s", s->source, s->line,
                            qs_kafka_conf_error_option(errstr), errstr);
        return NULL;
    }
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* session.timeout.ms: the consumers never join their group (they assign the partition
 * themselves), so librdkafka uses it for one thing only: how long a request for the group's
 * coordinator (the bus's commits) waits for one, also when the client is destroyed. With
 * the default (45 s), a commit sent as the brokers died held rd_kafka_destroy for 45 s at
 * stop (its consumer group stays in query-coord, "waiting for 1 commit(s)"); a commit is
 * only a progress report, so it gives up after 3 s.
 *
 * fetch_wait_ms: 0 has the broker answer a read at the first update there is, and hold it
 * up to 100 ms when there is none (cheap when idle). The bus's reads use `fetch_wait` instead:
 * the broker holds each read until 16 KiB have come or that long has passed. At high rates
 * that makes reads fewer and fuller: each read costs the broker about as much whatever it
 * carries, and 2 ms took the broker's CPU per publish down by 30 to 40 % under load
 * (bench/README.md). The price is up to fetch_wait per update, and an idle node reading
 * 1/fetch_wait times a second. */
static rd_kafka_t *new_consumer(kafka_transport *t, client_ctx *ctx, const char *role,
                                const char *reset, bool commit, uint64_t fetch_wait_ms, char **err)
{
    char wait_ms[24];
    snprintf(wait_ms, sizeof(wait_ms), "%" PRIu64, fetch_wait_ms ? fetch_wait_ms : 100);
    const char *extra[] = {"session.timeout.ms",
                           "3000",
                           "group.id",
                           t->group,
                           "enable.auto.commit",
                           commit ? "true" : "false",
                           "enable.auto.offset.store",
                           "false",
                           "auto.commit.interval.ms",
                           "1000",
                           "auto.offset.reset",
                           reset,
                           "enable.partition.eof",
                           "true",
                           "fetch.wait.max.ms",
                           wait_ms,
                           "fetch.min.bytes",
                           fetch_wait_ms ? "16384" : "1",
                           "fetch.error.backoff.ms",
                           "100",
                           "isolation.level",
                           "read_uncommitted",
                           "queued.max.messages.kbytes",
                           "16384"};
    return new_client(t, RD_KAFKA_CONSUMER, ctx, role, extra, QS_ARRAY_LEN(extra), err);
}

/* Assigns partition 0 of topic at offset to a consumer. */
static rd_kafka_resp_err_t assign_at(rd_kafka_t *rk, const char *topic, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e;
}

/* The value of a message's id header (NULL when absent). */
static const void *id_header(const rd_kafka_message_t *m, size_t *len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    *len = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, QS_KAFKA_ID_HEADER, &v, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return v;
}

/* ------------------------------------------------------------ start-up */

/* Why the brokers could not be used, naming the option to look at (never the password). */
static char *connect_error(kafka_transport *t, const char *what)
{
    qs_kafka_settings *s = &t->s;
    rd_kafka_poll(t->producer, 0); /* serves the error events queued meanwhile */
    uv_mutex_lock(&t->base.mu);
    rd_kafka_resp_err_t e = t->pctx.last_err;
    char reason[QS_REASON_MAX];
    snprintf(reason, sizeof(reason), "%s", t->pctx.last_reason[0] ? t->pctx.last_reason : what);
    uv_mutex_unlock(&t->base.mu);
    if (e == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        return qs_kafka_login_error(s, reason, rd_kafka_version(), rd_kafka_version_str());
    if (e == RD_KAFKA_RESP_ERR__SSL)
        return qs_xasprintf("%s:%d: transport kafka: tls: TLS with the brokers failed (see tls_ca, "
                            "tls_cert, tls_key): %s",
                            s->source, s->line, reason);
    return qs_xasprintf("%s:%d: transport kafka: addr: no broker reachable at %s within %" PRIu64
                        " ms: %s",
                        s->source, s->line, s->brokers, s->timeout_ms, reason);
}

/* Waits for the brokers to answer a metadata request. */
static int reach_brokers(kafka_transport *t, char **err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(t->producer, 0, NULL, &md, (int)t->s.timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* An authentication or TLS failure may still be reported for one broker while the
         * metadata came from another: the producer's answer is what counts. */
        return 0;
    }
    *err = connect_error(t, rd_kafka_err2str(e));
    return -1;
}

/* Partitions of a topic: >= 0, -1 when it does not exist, -2 on another error (why set). */
static int topic_partitions(kafka_transport *t, const char *topic, char *why, size_t size)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(t->producer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(t->producer, 0, rkt, &md, (int)t->s.timeout_ms);
    rd_kafka_topic_destroy(rkt);
    int n = -2;
    if (e) {
        snprintf(why, size, "%s", rd_kafka_err2str(e));
    } else if (md->topic_cnt != 1) {
        snprintf(why, size, "unexpected metadata");
    } else if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
               md->topics[0].err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        n = -1;
    } else if (md->topics[0].err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
        n = 0; /* being created: no leader yet */
    } else if (md->topics[0].err) {
        snprintf(why, size, "%s", rd_kafka_err2str(md->topics[0].err));
    } else {
        n = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    return n;
}

/* Runs one admin request on the producer and waits for its result event. */
static rd_kafka_event_t *admin_wait(kafka_transport *t, rd_kafka_queue_t *q)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)t->s.timeout_ms + 1000);
    return ev;
}

static rd_kafka_AdminOptions_t *admin_options(kafka_transport *t, rd_kafka_admin_op_t op)
{
    char errstr[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(t->producer, op);
    rd_kafka_AdminOptions_set_request_timeout(o, (int)t->s.timeout_ms, errstr, sizeof(errstr));
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
        rd_kafka_AdminOptions_set_operation_timeout(o, (int)t->s.timeout_ms, errstr,
                                                    sizeof(errstr));
    return o;
}

/* Creates a topic with one partition; 0, or -1 with why (an existing topic is fine). */
static int create_topic(kafka_transport *t, const char *topic, bool presence, char *why,
                        size_t size)
{
    char errstr[256] = "";
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, 1, t->s.replication_factor, errstr, sizeof(errstr));
    if (!nt) {
        snprintf(why, size, "%s", errstr);
        return -1;
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", presence ? "compact" : "delete");
    if (presence) /* tombstones and old heartbeats go soon: the registry stays small */
        rd_kafka_NewTopic_set_config(nt, "segment.ms", "3600000");
    rd_kafka_queue_t *q = rd_kafka_queue_new(t->producer);
    rd_kafka_AdminOptions_t *o = admin_options(t, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(t->producer, &nt, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(t, q);
    int rc = -1;
    if (!ev) {
        snprintf(why, size, "no answer within %" PRIu64 " ms", t->s.timeout_ms);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(why, size, "%s", rd_kafka_event_error_string(ev));
    } else {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **r =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        rd_kafka_resp_err_t e = cnt ? rd_kafka_topic_result_error(r[0]) : RD_KAFKA_RESP_ERR__FAIL;
        if (!e || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = 0;
        else
            snprintf(why, size, "%s",
                     cnt && rd_kafka_topic_result_error_string(r[0])
                         ? rd_kafka_topic_result_error_string(r[0])
                         : rd_kafka_err2str(e));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* The topic's cleanup.policy (malloc'd), or NULL when it cannot be read (then unchecked). */
static char *topic_cleanup_policy(kafka_transport *t, const char *topic)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(t->producer);
    rd_kafka_AdminOptions_t *o = admin_options(t, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(t->producer, &res, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(t, q);
    char *policy = NULL;
    if (ev && !rd_kafka_event_error(ev)) {
        size_t cnt = 0;
        const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &cnt);
        if (cnt && !rd_kafka_ConfigResource_error(rs[0])) {
            size_t n = 0;
            const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rs[0], &n);
            for (size_t i = 0; i < n; i++)
                if (!strcmp(rd_kafka_ConfigEntry_name(es[i]), "cleanup.policy") &&
                    rd_kafka_ConfigEntry_value(es[i]))
                    policy = qs_xstrdup(rd_kafka_ConfigEntry_value(es[i]));
        }
    }
    if (!policy)
        qs_warn("kafka %s: cannot read the cleanup.policy of topic \"%s\" (not checked)",
                t->s.brokers, topic);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    return policy;
}

/* Checks a topic against what the hub needs, creating it when it does not exist. */
static int ensure_topic(kafka_transport *t, const char *topic, bool presence, char **err)
{
    const char *option = presence ? "presence_topic" : "topic";
    char why[QS_REASON_MAX] = "";
    uint64_t deadline = qs_now_ms() + t->s.timeout_ms;
    bool created = false;
    int parts;
    for (;;) {
        parts = topic_partitions(t, topic, why, sizeof(why));
        if (parts == -1 && !created) {
            if (create_topic(t, topic, presence, why, sizeof(why)) < 0) {
                *err = qs_xasprintf("%s:%d: transport kafka: %s: cannot create topic \"%s\": %s",
                                    t->s.source, t->s.line, option, topic, why);
                return -1;
            }
            created = true;
            qs_info("kafka %s: created topic \"%s\" (1 partition, cleanup.policy %s)", t->s.brokers,
                    topic, presence ? "compact" : "delete");
            continue;
        }
        if (parts > 0 || parts == -2 || qs_now_ms() >= deadline)
            break;
        usleep(100 * 1000); /* created a moment ago: its leader is being elected */
    }
    if (parts < 0 || parts == 0) {
        *err = qs_xasprintf("%s:%d: transport kafka: %s: cannot read topic \"%s\": %s", t->s.source,
                            t->s.line, option, topic, why[0] ? why : "it has no leader");
        return -1;
    }
    char *policy = topic_cleanup_policy(t, topic);
    const char *refusal = qs_kafka_topic_refusal(presence, parts, policy);
    if (refusal) {
        *err = qs_xasprintf("%s:%d: transport kafka: %s: topic \"%s\" (%d partition%s, "
                            "cleanup.policy %s) cannot be used: %s",
                            t->s.source, t->s.line, option, topic, parts, parts == 1 ? "" : "s",
                            policy ? policy : "unknown", refusal);
        free(policy);
        return -1;
    }
    free(policy);
    return 0;
}

/* Reads a consumer's assigned partition from `from` up to `to` (exclusive), handing each
 * message to fn. 0, or -1 when no message came for the timeout. */
static int read_range(kafka_transport *t, rd_kafka_t *rk, const char *topic, int64_t from,
                      int64_t to, void (*fn)(kafka_transport *, rd_kafka_message_t *), char *why,
                      size_t size)
{
    if (assign_at(rk, topic, from)) {
        snprintf(why, size, "cannot assign the partition");
        return -1;
    }
    int64_t next = from;
    uint64_t last_progress = qs_now_ms(), last_log = last_progress;
    while (next < to) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_MS);
        uint64_t now = qs_now_ms();
        if (!m) {
            if (now - last_progress > t->s.timeout_ms) {
                snprintf(why, size,
                         "no message for %" PRIu64 " ms at offset %" PRId64 " of %" PRId64,
                         t->s.timeout_ms, next, to);
                return -1;
            }
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->offset >= to)
                next = to;
        } else if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                snprintf(why, size, "%s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                return -1;
            }
        } else if (m->offset >= next) {
            fn(t, m);
            next = m->offset + 1;
            last_progress = now;
            if (now - last_log >= 5000) {
                last_log = now;
                qs_info("kafka %s: reading topic \"%s\": offset %" PRId64 " of %" PRId64,
                        t->s.brokers, topic, next, to);
            }
        }
        rd_kafka_message_destroy(m);
    }
    return 0;
}

/* A message of the topic of updates, read at start: its id goes to the index. */
static void index_message(kafka_transport *t, rd_kafka_message_t *m)
{
    size_t len;
    const void *id = id_header(m, &len);
    if (!id)
        return;
    uv_mutex_lock(&t->base.mu);
    qs_kafka_index_add(&t->index, id, len, m->offset);
    /* The last message before the start position: the stream's last event id. */
    if ((uint64_t)m->offset + 1 == t->base_seq) {
        char *copy = qs_xstrndup(id, len);
        qs_transport_set_position(&t->base, t->base_seq, copy);
        free(copy);
    }
    uv_mutex_unlock(&t->base.mu);
}

static void presence_taken(kafka_transport *t, const char *node, qs_presence_entry *v, size_t n);

/* A record of the presence topic (any time): applied to the registry. */
static void presence_message(kafka_transport *t, rd_kafka_message_t *m)
{
    qs_presence_entry *taken = NULL;
    size_t n_taken = 0;
    char *taken_node = NULL;
    uv_mutex_lock(&t->base.mu);
    uint64_t now = qs_now_ms();
    bool ok = qs_kafka_registry_apply(&t->reg, m->key, m->key_len, m->payload, m->len, m->offset,
                                      now, &taken, &n_taken, &taken_node);
    uv_mutex_unlock(&t->base.mu);
    if (!ok)
        qs_debug("kafka %s: skipping a record of \"%s\" that is not a presence record",
                 t->s.brokers, t->s.presence_topic);
    if (taken_node)
        presence_taken(t, taken_node, taken, n_taken);
    qs_presence_entries_free(taken, n_taken);
    free(taken_node);
}

/* ------------------------------------------------------------ publishing */

static rd_kafka_resp_err_t produce(kafka_transport *t, const char *topic, const void *key,
                                   size_t klen, const void *value, size_t vlen, const char *id,
                                   pending *p)
{
    rd_kafka_resp_err_t e;
    if (id)
        e = rd_kafka_producev(t->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                              RD_KAFKA_V_VALUE((void *)value, vlen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADER(QS_KAFKA_ID_HEADER, id, (ssize_t)strlen(id)),
                              RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    else
        e = rd_kafka_producev(
            t->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
            RD_KAFKA_V_KEY((void *)key, klen), RD_KAFKA_V_VALUE((void *)value, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    return e;
}

/* Publishes are produced in bursts, one awaiting the brokers' acknowledgements at a time;
 * what comes meanwhile is held here and leaves as the next burst. Why:
 * librdkafka 2.0 lets an idempotent producer send a request only while fewer than five
 * *messages* (not requests) are in flight on the partition, and while others wait its
 * producer thread polls its sockets with no timeout, in a loop. At 10 000 publishes/s
 * that loop took most of a CPU core of this machine's two (1.6 million poll calls in 4 s).
 * Held here instead, the publishes leave together when the burst before them is
 * acknowledged (as one or two requests), and the producer thread sleeps meanwhile.
 * With the lock held: the held publishes that could not be queued are returned in *failed,
 * with librdkafka's error. */
static void send_held(kafka_transport *t, pending **failed)
{
    if (!t->held || t->burst_left)
        return;
    pending *p;
    while ((p = t->held)) {
        t->held = p->next;
        p->next = NULL;
        rd_kafka_resp_err_t e = produce(t, t->s.topic, NULL, 0, p->rec.p, p->rec.len, p->u->id, p);
        qs_buf_free(&p->rec);
        if (e) {
            p->refused = e;
            p->next = *failed;
            *failed = p;
        } else {
            t->burst_left++;
        }
    }
    t->held_tail = &t->held;
}

/* With the lock held: every held publish fails (the brokers are away, or the hub stops). */
static void fail_held(kafka_transport *t, pending **failed)
{
    pending *p;
    while ((p = t->held)) {
        t->held = p->next;
        p->next = *failed;
        *failed = p;
    }
    t->held_tail = &t->held;
}

/* Completes publishes that did not leave: with `why`, or (NULL) librdkafka's refusal. */
static void fail_publishes(pending *list, const char *why)
{
    pending *p;
    while ((p = list)) {
        list = p->next;
        char reason[QS_REASON_MAX];
        if (why)
            snprintf(reason, sizeof(reason), "%s", why);
        else
            snprintf(reason, sizeof(reason), "kafka unavailable: %s", rd_kafka_err2str(p->refused));
        p->cb(p->arg, -EAGAIN, reason);
        qs_update_unref(p->u);
        qs_buf_free(&p->rec);
        free(p);
    }
}

/* A publish of the burst in flight was acknowledged or failed: when it was the burst's
 * last, the held publishes leave (or fail, while the brokers are away or the hub stops). */
static void burst_reported(kafka_transport *t)
{
    pending *failed = NULL, *refused = NULL;
    char why[QS_REASON_MAX] = "";
    uv_mutex_lock(&t->base.mu);
    if (t->burst_left && !--t->burst_left) {
        if (t->stopping) {
            snprintf(why, sizeof(why), "the hub is shutting down");
            fail_held(t, &failed);
        } else if (!t->plink.up || !t->blink.up) {
            down_reason(t, why);
            fail_held(t, &failed);
        } else {
            send_held(t, &refused);
        }
    }
    uv_mutex_unlock(&t->base.mu);
    fail_publishes(failed, why);
    fail_publishes(refused, NULL);
}

static void kafka_publish(qs_transport *base, qs_update *u, qs_publish_cb cb, void *arg)
{
    kafka_transport *t = (kafka_transport *)base;
    pending *p = qs_xcalloc(1, sizeof(*p));
    *p = (pending){.kind = P_PUBLISH, .u = qs_update_ref(u), .cb = cb, .arg = arg};
    qs_record_encode(u, &p->rec);
    char why[QS_REASON_MAX] = "";
    pending *refused = NULL;
    uv_mutex_lock(&t->base.mu);
    if (t->stopping) {
        snprintf(why, sizeof(why), "the hub is shutting down");
    } else if (!t->plink.up || !t->blink.up) {
        down_reason(t, why);
    } else {
        *t->held_tail = p;
        t->held_tail = &p->next;
        send_held(t, &refused);
    }
    uv_mutex_unlock(&t->base.mu);
    if (why[0]) {
        p->next = NULL;
        fail_publishes(p, why);
    }
    fail_publishes(refused, NULL);
}

static void writer_main(void *arg)
{
    kafka_transport *t = arg;
    for (;;) {
        uv_mutex_lock(&t->base.mu);
        bool stop = t->writer_stop;
        uv_mutex_unlock(&t->base.mu);
        if (stop)
            break;
        rd_kafka_poll(t->producer, POLL_MS);
    }
    /* In-flight publishes get their real outcome when the brokers answer in time; what is
     * left is purged, and its callbacks run here. */
    rd_kafka_flush(t->producer, (int)t->s.publish_timeout_ms);
    rd_kafka_purge(t->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && rd_kafka_outq_len(t->producer) > 0; i++)
        rd_kafka_poll(t->producer, POLL_MS);
    rd_kafka_poll(t->producer, 0);
    /* Held behind a burst whose reports never came: they fail too. */
    pending *failed = NULL;
    uv_mutex_lock(&t->base.mu);
    fail_held(t, &failed);
    uv_mutex_unlock(&t->base.mu);
    fail_publishes(failed, "the hub is shutting down");
}

/* ------------------------------------------------------------ the bus */

/* Commits the bus's position to its consumer group, asynchronously, and only while the
 * brokers answer: a commit in flight would hold the client's destruction at stop. The group
 * never has members; its committed offsets only show how far behind the node is. */
static void bus_store(kafka_transport *t, int64_t offset)
{
    uv_mutex_lock(&t->base.mu);
    bool up = t->blink.up && !t->stopping;
    uv_mutex_unlock(&t->base.mu);
    if (!up)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, t->s.topic, 0)->offset = offset + 1;
    rd_kafka_commit(t->bus, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

/* The bus's position is outside the topic's retained range. Never blocks (the watermarks
 * are the client's cached ones): when they are unknown, the bus restarts at the beginning
 * and delivers only what is past its position. */
static void bus_reposition(kafka_transport *t, const rd_kafka_message_t *m)
{
    int64_t lo = -1, hi = -1;
    uv_mutex_lock(&t->base.mu);
    int64_t pos = (int64_t)t->base.seq;
    uv_mutex_unlock(&t->base.mu);
    bool known =
        !rd_kafka_get_watermark_offsets(t->bus, t->s.topic, 0, &lo, &hi) && lo >= 0 && hi >= lo;
    if (known && pos < lo) {
        qs_error("kafka %s: bus: updates %" PRId64 " to %" PRId64 " were removed by the topic's "
                 "retention before this node delivered them; resuming at %" PRId64,
                 t->s.brokers, pos, lo - 1, lo);
        assign_at(t->bus, t->s.topic, lo);
    } else if (known && pos > hi) {
        qs_error("kafka %s: bus: the topic ends at offset %" PRId64 ", before this node's "
                 "position %" PRId64 ": it lost updates (deleted and created again, or its log "
                 "was lost); updates are delivered again once past this node's position",
                 t->s.brokers, hi, pos);
        assign_at(t->bus, t->s.topic, hi);
    } else {
        qs_warn("kafka %s: bus: %s; reading the topic again from its start (only updates past "
                "this node's position are delivered)",
                t->s.brokers, rd_kafka_message_errstr(m));
        assign_at(t->bus, t->s.topic, RD_KAFKA_OFFSET_BEGINNING);
    }
}

static void bus_main(void *arg)
{
    kafka_transport *t = arg;
    uint64_t next_prune = qs_now_ms() + PRUNE_EVERY_MS;
    int64_t unstored = -1;
    uint64_t next_commit = 0;
    while (!is_stopping(t)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(t->bus, POLL_MS);
        if (!m) {
            uint64_t now = qs_now_ms();
            if (unstored >= 0 && now >= next_commit) {
                bus_store(t, unstored);
                unstored = -1;
                next_commit = now + COMMIT_EVERY_MS;
            }
            if (now >= next_prune) {
                next_prune = now + PRUNE_EVERY_MS;
                int64_t lo = -1, hi = -1;
                if (!rd_kafka_get_watermark_offsets(t->bus, t->s.topic, 0, &lo, &hi) && lo > 0) {
                    uv_mutex_lock(&t->base.mu);
                    qs_kafka_index_prune(&t->index, lo);
                    uv_mutex_unlock(&t->base.mu);
                }
            }
            continue;
        }
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                link_up(t, &t->blink);
            else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                     m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
                bus_reposition(t, m);
            else
                qs_debug("kafka %s: bus: %s", t->s.brokers, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        size_t id_len;
        const void *id = id_header(m, &id_len);
        qs_update *u = qs_kafka_message_update(m->payload, m->len, id, id_len, m->offset);
        uint64_t seq = (uint64_t)m->offset + 1;
        uv_mutex_lock(&t->base.mu);
        bool restored = !t->blink.up; /* data flows: the brokers are back */
        t->blink.up = true;
        if (id)
            qs_kafka_index_add(&t->index, id, id_len, m->offset);
        bool fresh = u && seq > t->base.seq;
        if (fresh)
            qs_transport_set_position(&t->base, seq, u->id);
        uv_mutex_unlock(&t->base.mu);
        if (restored)
            qs_info("kafka %s: %s link restored", t->s.brokers, t->blink.name);
        if (!u && t->bus_skipped++ % 1000 == 0)
            qs_warn("kafka %s: skipping message %" PRId64 " of \"%s\": not a Quicksilver update "
                    "(%" PRIu64 " so far)",
                    t->s.brokers, m->offset, t->s.topic, t->bus_skipped);
        if (fresh)
            t->host.deliver(t->host.ctx, u);
        if (u)
            qs_update_unref(u);
        unstored = m->offset;
        uint64_t now = qs_now_ms();
        if (now >= next_commit) {
            bus_store(t, unstored);
            unstored = -1;
            next_commit = now + COMMIT_EVERY_MS;
        }
        rd_kafka_message_destroy(m);
    }
}

/* ------------------------------------------------------------ history */

enum { R_MSG, R_EOF, R_GONE, R_TIMEOUT };

static void reader_drop_held(kafka_transport *t)
{
    if (t->rheld)
        rd_kafka_message_destroy(t->rheld);
    t->rheld = NULL;
}

/* Positions the history consumer at offset (a no-op when it is there already). */
static void reader_seek(kafka_transport *t, int64_t offset)
{
    if (t->rpos == offset)
        return;
    reader_drop_held(t);
    assign_at(t->reader, t->s.topic, offset);
    t->rpos = offset;
}

/* The next message at or after the reader's position. */
static int reader_next(kafka_transport *t, uint64_t deadline, rd_kafka_message_t **out,
                       char why[QS_REASON_MAX])
{
    if (t->rheld) {
        *out = t->rheld;
        t->rheld = NULL;
        t->rpos = (*out)->offset + 1;
        return R_MSG;
    }
    for (;;) {
        uint64_t now = qs_now_ms();
        if (now >= deadline)
            return R_TIMEOUT;
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(t->reader, (int)QS_MIN(deadline - now, (uint64_t)POLL_MS));
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            bool eof = t->rpos == RD_KAFKA_OFFSET_BEGINNING || m->offset >= t->rpos;
            rd_kafka_message_destroy(m);
            if (eof)
                return R_EOF;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
            m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
            rd_kafka_message_destroy(m);
            t->rpos = -1;
            return R_GONE;
        }
        if (m->err) {
            snprintf(why, QS_REASON_MAX, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (t->rpos >= 0 && m->offset < t->rpos) { /* from an earlier assignment */
            rd_kafka_message_destroy(m);
            continue;
        }
        t->rpos = m->offset + 1;
        *out = m;
        return R_MSG;
    }
}

static void fail_replay(qs_replay *r, const char *reason)
{
    qs_replay_clear(r);
    r->status = -1;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

static void replay_timeout(kafka_transport *t, qs_replay *r, const char *detail)
{
    char why[QS_REASON_MAX];
    snprintf(why, sizeof(why),
             "kafka unavailable: history not read within %" PRIu64 " ms%s%.120s%s", t->s.timeout_ms,
             detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
    fail_replay(r, why);
    t->rpos = -1;
    reader_drop_held(t);
}

/* Finds the offset after which a replay starts; false when the id is unknown. */
static bool resolve_id(kafka_transport *t, qs_replay *r, uint64_t deadline, int64_t *from,
                       bool *failed)
{
    int64_t cand[MAX_CANDIDATES];
    size_t id_len = strlen(r->after_id);
    uv_mutex_lock(&t->base.mu);
    size_t n = qs_kafka_index_find(&t->index, r->after_id, id_len, cand, MAX_CANDIDATES);
    uv_mutex_unlock(&t->base.mu);
    char why[QS_REASON_MAX] = "";
    for (size_t i = 0; i < n; i++) {
        reader_seek(t, cand[i]);
        rd_kafka_message_t *m = NULL;
        int rc = reader_next(t, deadline, &m, why);
        if (rc == R_TIMEOUT) {
            replay_timeout(t, r, why);
            *failed = true;
            return false;
        }
        if (rc != R_MSG)
            continue; /* removed by retention */
        size_t len;
        const void *id = id_header(m, &len);
        bool match = m->offset == cand[i] && id && len == id_len && !memcmp(id, r->after_id, len);
        rd_kafka_message_destroy(m);
        if (match) {
            *from = cand[i] + 1;
            return true;
        }
    }
    return false;
}

static void serve_replay(kafka_transport *t, qs_replay *r)
{
    uint64_t deadline = qs_now_ms() + t->s.timeout_ms;
    uv_mutex_lock(&t->base.mu);
    uint64_t until = QS_MAX(r->until_seq, t->base_seq);
    uv_mutex_unlock(&t->base.mu);
    qs_replay_clear(r);
    r->status = 0;
    r->finished = false;
    char why[QS_REASON_MAX] = "";
    int64_t from = 0;
    if (!r->continuation) {
        r->id_found = true;
        if (!strcmp(r->after_id, "earliest")) {
            from = RD_KAFKA_OFFSET_BEGINNING; /* wherever the topic's retention starts */
        } else {
            bool failed = false;
            if (!resolve_id(t, r, deadline, &from, &failed)) {
                if (failed)
                    return;
                r->id_found = false; /* never stored, or removed by retention */
                r->finished = true;
                r->next_seq = 0;
                return;
            }
        }
    } else {
        from = (int64_t)r->after_seq; /* the offset after seq s is s */
    }
    r->next_seq = from < 0 ? 0 : (uint64_t)from;
    if (from >= 0 && (uint64_t)from >= until) {
        r->finished = true;
        return;
    }
    bool restarted = false;
    size_t max_events = r->max_events ? r->max_events : 1024;
    size_t max_bytes = r->max_bytes ? r->max_bytes : (size_t)1 << 20;
    size_t cap = 0, bytes = 0;
    reader_seek(t, from);
    while (r->n_updates < max_events && bytes < max_bytes) {
        rd_kafka_message_t *m = NULL;
        int rc = reader_next(t, deadline, &m, why);
        if (rc == R_TIMEOUT) {
            replay_timeout(t, r, why);
            return;
        }
        if (rc == R_EOF) {
            r->finished = true;
            break;
        }
        if (rc == R_GONE) {
            /* Retention removed what was next: resume at the first retained update. */
            if (restarted) {
                r->finished = true;
                break;
            }
            restarted = true;
            reader_seek(t, RD_KAFKA_OFFSET_BEGINNING);
            continue;
        }
        uint64_t seq = (uint64_t)m->offset + 1;
        if (seq > until) { /* kept for the next pull of this subscriber */
            t->rheld = m;
            t->rpos = m->offset;
            r->finished = true;
            break;
        }
        size_t id_len;
        const void *id = id_header(m, &id_len);
        qs_update *u = qs_kafka_message_update(m->payload, m->len, id, id_len, m->offset);
        rd_kafka_message_destroy(m);
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
}

static void reader_main(void *arg)
{
    kafka_transport *t = arg;
    uint64_t idle_since = qs_now_ms();
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        if (!t->jn && !t->stopping) {
            uv_cond_timedwait(&t->reader_cond, &t->base.mu, (uint64_t)500 * 1000000);
            if (!t->jn && !t->stopping) {
                uv_mutex_unlock(&t->base.mu);
                /* Idle: stop fetching after a second, and serve the client's events. */
                if (t->rpos != -1 && qs_now_ms() - idle_since > 1000) {
                    reader_drop_held(t);
                    rd_kafka_assign(t->reader, NULL);
                    t->rpos = -1;
                }
                rd_kafka_message_t *m = rd_kafka_consumer_poll(t->reader, 0);
                if (m)
                    rd_kafka_message_destroy(m);
                uv_mutex_lock(&t->base.mu);
                continue;
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
    reader_drop_held(t);
}

static void kafka_replay(qs_transport *base, qs_replay *r)
{
    kafka_transport *t = (kafka_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (t->jn == t->jcap) {
        t->jcap = t->jcap ? t->jcap * 2 : 16;
        t->jobs = qs_xrealloc(t->jobs, t->jcap * sizeof(*t->jobs));
    }
    t->jobs[t->jn++] = r;
    uv_cond_signal(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ presence */

/* Writes one presence record (value NULL = tombstone); under mu. The registry's writer
 * (qs_kafka_presence_write), ctx being the transport. */
static void presence_write_locked(void *ctx, const char *key, const char *value)
{
    kafka_transport *t = ctx;
    pending *p = qs_xcalloc(1, sizeof(*p));
    p->kind = P_PRESENCE;
    if (produce(t, t->s.presence_topic, key, strlen(key), value, value ? strlen(value) : 0, NULL,
                p)) {
        free(p);
        t->presence_dirty = true;
    }
}

/* Writes this node's entries again (after a failed write, or after another node took them
 * while this one stalled), deleting those the topic still holds but the node forgot. */
static void rewrite_locked(kafka_transport *t)
{
    qs_kafka_registry_write_again(&t->reg, &t->local, presence_write_locked, t);
    t->presence_dirty = false;
}

/* This node won the claim on a dead node: publish the departures, then delete its keys. */
static void presence_taken(kafka_transport *t, const char *node, qs_presence_entry *v, size_t n)
{
    if (n)
        qs_info("kafka %s: %zu subscriptions of node %s, which stopped heartbeating, are gone",
                t->s.brokers, n, node);
    if (n && t->host.presence_lost)
        t->host.presence_lost(t->host.ctx, v, n);
    uv_mutex_lock(&t->base.mu);
    qs_kafka_registry_write_tombstones(node, v, n, presence_write_locked, t);
    uv_mutex_unlock(&t->base.mu);
}

/* Registration order across nodes: wall-clock microseconds, strictly increasing here. */
static uint64_t next_order(kafka_transport *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (us <= t->last_order)
        us = t->last_order + 1;
    t->last_order = us;
    return us;
}

static void kafka_presence_add(qs_transport *base, const qs_presence_entry *e)
{
    kafka_transport *t = (kafka_transport *)base;
    qs_presence_entry *copy = qs_xcalloc(1, sizeof(*copy));
    qs_presence_entry_copy(copy, e);
    uv_mutex_lock(&t->base.mu);
    copy->order = next_order(t);
    qs_presence_map_put(&t->local, copy);
    if (!t->stopping)
        qs_kafka_registry_write_entry(&t->reg, copy, presence_write_locked, t);
    uv_mutex_unlock(&t->base.mu);
}

static void kafka_presence_remove(qs_transport *base, const char *subscriber)
{
    kafka_transport *t = (kafka_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (qs_presence_map_remove(&t->local, subscriber))
        qs_kafka_registry_write_removal(&t->reg, subscriber, presence_write_locked, t);
    uv_mutex_unlock(&t->base.mu);
}

/* The registry's clock: while this node cannot hear the others, it stands still, so no node
 * is declared dead for this node's own deafness. */
static uint64_t presence_clock_locked(kafka_transport *t)
{
    return t->prlink.up ? qs_now_ms() : t->prlink.down_ms;
}

static void kafka_presence_list(qs_transport *base, qs_presence_query *q)
{
    kafka_transport *t = (kafka_transport *)base;
    uv_mutex_lock(&t->base.mu);
    size_t n_local;
    qs_presence_entry *local = qs_presence_map_copy(&t->local, &n_local);
    q->entries = qs_kafka_registry_list(&t->reg, presence_clock_locked(t), local, n_local, &q->n);
    uv_mutex_unlock(&t->base.mu);
    qs_presence_entries_free(local, n_local);
    q->status = 0;
    q->done(q);
}

/* True when a broker answers a metadata request of this client within `ms` (librdkafka
 * keeps this timeout even when no broker is up, unlike a watermark query). */
static bool answers(rd_kafka_t *rk, int ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* While a link is down: asks the brokers whether they answer again (briefly: the presence
 * thread must notice stop soon). */
static void probe(kafka_transport *t)
{
    uv_mutex_lock(&t->base.mu);
    bool p = !t->plink.up, b = !t->blink.up;
    uv_mutex_unlock(&t->base.mu);
    if (b && answers(t->bus, PROBE_MS * 2))
        link_up(t, &t->blink);
    if (p && answers(t->producer, PROBE_MS * 2))
        link_up(t, &t->plink);
}

static void presence_main(void *arg)
{
    kafka_transport *t = arg;
    uint64_t refresh = QS_MAX(t->s.presence_ttl_ms / 3, (uint64_t)100);
    uint64_t next_beat = 0, next_probe = 0;
    while (!is_stopping(t)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(t->pres, POLL_MS);
        if (m) {
            if (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                uv_mutex_lock(&t->base.mu);
                bool was_down = !t->prlink.up;
                uv_mutex_unlock(&t->base.mu);
                if (was_down) {
                    link_up(t, &t->prlink);
                    uv_mutex_lock(&t->base.mu);
                    qs_kafka_registry_touch_all(&t->reg, qs_now_ms());
                    uv_mutex_unlock(&t->base.mu);
                }
            }
            if (!m->err)
                presence_message(t, m);
            rd_kafka_message_destroy(m);
        }
        uint64_t now = qs_now_ms();
        uv_mutex_lock(&t->base.mu);
        bool down = !t->plink.up || !t->blink.up;
        uv_mutex_unlock(&t->base.mu);
        if (down && now >= next_probe) {
            next_probe = now + PROBE_MS;
            probe(t);
        }
        if (now < next_beat)
            continue;
        next_beat = now + refresh;
        uv_mutex_lock(&t->base.mu);
        if (t->presence_dirty || t->reg.self_taken) {
            if (t->reg.self_taken)
                qs_warn("kafka %s: another node took this node's presence entries (it was not "
                        "heard of for presence_ttl); writing them again",
                        t->s.brokers);
            if (t->plink.up)
                rewrite_locked(t);
        } else {
            qs_kafka_registry_write_heartbeat(&t->reg, presence_write_locked, t);
        }
        /* Only a node that publishes subscription events claims dead nodes: one that does
         * not would drop their departures. */
        if (t->host.presence_lost && t->prlink.up && t->plink.up)
            qs_kafka_registry_write_claims(&t->reg, now, presence_write_locked, t);
        uv_mutex_unlock(&t->base.mu);
    }
    /* A clean stop: this node's entries and heartbeat are deleted. */
    uv_mutex_lock(&t->base.mu);
    qs_kafka_registry_write_goodbye(&t->reg, &t->local, presence_write_locked, t);
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ operations */

static void kafka_destroy(qs_transport *base);

static char *derive_group(const char *node)
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

static int kafka_create(const qs_config_transport *cfg, const qs_transport_host *host,
                        qs_transport **out, char **err)
{
    qs_kafka_settings s;
    if (qs_kafka_settings_load(cfg, &s, err) < 0)
        return -1;
    if (qs_kafka_scram_nonce_repeated(rd_kafka_version(), s.sasl_mechanism))
        qs_warn("kafka %s: sasl_mechanism %s with librdkafka %s, which repeats its nonce in SCRAM "
                "logins: Kafka brokers 4.0 and later refuse them whatever the password (fixed in "
                "librdkafka 2.6.1)",
                s.brokers, s.sasl_mechanism, rd_kafka_version_str());
    kafka_transport *t = qs_xcalloc(1, sizeof(*t));
    qs_transport_base_init(&t->base, &qs_transport_kafka_ops);
    t->host = *host;
    t->s = s;
    uv_cond_init(&t->reader_cond);
    uv_cond_init(&t->closed_cond);
    qs_kafka_index_init(&t->index);
    qs_strmap_init(&t->local);
    char urn[QS_UUID_URN_LEN + 1];
    qs_uuid4_urn(urn);
    snprintf(t->node, sizeof(t->node), "%s", urn + 9);
    qs_kafka_registry_init(&t->reg, t->node, s.presence_ttl_ms);
    t->group = s.consumer_group ? qs_xstrdup(s.consumer_group) : derive_group(t->node);
    t->rpos = -1;
    t->held_tail = &t->held;
    t->plink = (link_state){.name = "publish", .up = true};
    t->blink = (link_state){.name = "bus", .up = true};
    t->rlink = (link_state){.name = "history", .up = true};
    t->prlink = (link_state){.name = "presence", .up = true};
    t->pctx.link = &t->plink;
    t->bctx.link = &t->blink;
    t->rctx.link = &t->rlink;
    t->prctx.link = &t->prlink;
    uint64_t t0 = qs_now_ms();

    char msg_timeout[24];
    snprintf(msg_timeout, sizeof(msg_timeout), "%" PRIu64, t->s.publish_timeout_ms);
    const char *producer_conf[] = {"enable.idempotence", "true", "acks", "all",
                                   /* no wait: the bursts (send_held) are the batches */
                                   "linger.ms", "0", "message.timeout.ms", msg_timeout,
                                   "batch.num.messages", "10000", "queue.buffering.max.messages",
                                   "1000000", "queue.buffering.max.kbytes", "1048576"};
    t->pctx.t = t;
    t->producer = new_client(t, RD_KAFKA_PRODUCER, &t->pctx, "producer", producer_conf,
                             QS_ARRAY_LEN(producer_conf), err);
    if (!t->producer || reach_brokers(t, err) < 0 || ensure_topic(t, s.topic, false, err) < 0 ||
        ensure_topic(t, s.presence_topic, true, err) < 0)
        goto fail;
    t->bus = new_consumer(t, &t->bctx, "bus", "error", false, t->s.fetch_wait_ms, err);
    t->reader = t->bus ? new_consumer(t, &t->rctx, "history", "error", false, 0, err) : NULL;
    t->pres = t->reader ? new_consumer(t, &t->prctx, "presence", "earliest", false, 0, err) : NULL;
    if (!t->pres)
        goto fail;

    /* The topic of updates: this node starts at its end; what it holds is indexed. */
    int64_t lo = 0, hi = 0, plo = 0, phi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(t->bus, s.topic, 0, &lo, &hi, (int)s.timeout_ms);
    if (!e)
        e = rd_kafka_query_watermark_offsets(t->pres, s.presence_topic, 0, &plo, &phi,
                                             (int)s.timeout_ms);
    if (e) {
        *err = qs_xasprintf("%s:%d: transport kafka: topic: cannot read the offsets of \"%s\": %s",
                            s.source, s.line, s.topic, rd_kafka_err2str(e));
        goto fail;
    }
    t->base_seq = (uint64_t)hi;
    uv_mutex_lock(&t->base.mu);
    qs_transport_set_position(&t->base, (uint64_t)hi, NULL);
    uv_mutex_unlock(&t->base.mu);
    char why[QS_REASON_MAX] = "";
    if (read_range(t, t->bus, s.topic, lo, hi, index_message, why, sizeof(why)) < 0) {
        *err = qs_xasprintf("%s:%d: transport kafka: topic: cannot read the history of \"%s\" to "
                            "index its ids: %s",
                            s.source, s.line, s.topic, why);
        goto fail;
    }
    uint64_t t_index = qs_now_ms() - t0;
    /* The registry: the presence topic, read whole. */
    if (read_range(t, t->pres, s.presence_topic, RD_KAFKA_OFFSET_BEGINNING, phi, presence_message,
                   why, sizeof(why)) < 0) {
        *err = qs_xasprintf("%s:%d: transport kafka: presence_topic: cannot read \"%s\": %s",
                            s.source, s.line, s.presence_topic, why);
        goto fail;
    }
    uv_mutex_lock(&t->base.mu);
    qs_kafka_registry_touch_all(&t->reg, qs_now_ms());
    uv_mutex_unlock(&t->base.mu);
    qs_info("kafka %s: topic \"%s\" holds offsets %" PRId64 " to %" PRId64 " (%zu ids indexed "
            "in %" PRIu64 " ms), presence topic \"%s\", node %s, consumer group %s%s",
            s.brokers, s.topic, lo, hi, t->index.count, t_index, s.presence_topic, t->node,
            t->group, s.consumer_group ? "" : " (derived: set consumer_group to choose it)");
    *out = &t->base;
    return 0;
fail:
    kafka_destroy(&t->base);
    return -1;
}

static int kafka_start(qs_transport *base, char **err)
{
    kafka_transport *t = (kafka_transport *)base;
    if (uv_thread_create(&t->writer_t, writer_main, t) ||
        uv_thread_create(&t->bus_t, bus_main, t) ||
        uv_thread_create(&t->reader_t, reader_main, t) ||
        uv_thread_create(&t->presence_t, presence_main, t)) {
        *err = qs_xstrdup("transport kafka: cannot start its threads");
        return -1;
    }
    t->threads_started = true;
    return 0;
}

static bool kafka_healthy(qs_transport *base, char reason[QS_REASON_MAX])
{
    kafka_transport *t = (kafka_transport *)base;
    uv_mutex_lock(&t->base.mu);
    bool ok = t->plink.up && t->blink.up;
    if (!ok)
        down_reason(t, reason);
    uv_mutex_unlock(&t->base.mu);
    return ok;
}

static void kafka_stop(qs_transport *base)
{
    kafka_transport *t = (kafka_transport *)base;
    uv_mutex_lock(&t->base.mu);
    t->stopping = true;
    uv_cond_broadcast(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
    if (!t->threads_started)
        return;
    /* The presence thread writes this node's tombstones, then the writer flushes them with
     * the publishes still in flight. */
    uv_thread_join(&t->presence_t);
    uv_thread_join(&t->bus_t);
    uv_thread_join(&t->reader_t);
    uv_mutex_lock(&t->base.mu);
    t->writer_stop = true;
    uv_mutex_unlock(&t->base.mu);
    uv_thread_join(&t->writer_t);
    t->threads_started = false;
}

static void destroy_client(kafka_transport *t, rd_kafka_t *rk, const char *what)
{
    if (!rk)
        return;
    uv_mutex_lock(&t->base.mu);
    t->closing = what;
    uv_mutex_unlock(&t->base.mu);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* The closer thread: destroys every client, then says so. */
static void close_main(void *arg)
{
    kafka_transport *t = arg;
    destroy_client(t, t->bus, "the bus consumer");
    destroy_client(t, t->reader, "the history consumer");
    destroy_client(t, t->pres, "the presence consumer");
    if (t->producer) {
        /* Publishes never started (a failed create) or left over: complete them. */
        rd_kafka_purge(t->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(t->producer, 0);
        destroy_client(t, t->producer, "the producer");
    }
    uv_mutex_lock(&t->base.mu);
    t->clients_closed = true;
    uv_cond_signal(&t->closed_cond);
    uv_mutex_unlock(&t->base.mu);
}

/* Destroys the clients within CLOSE_BOUND_MS; false when they did not all end in time.
 *
 * rd_kafka_destroy waits for the client's own threads, which wait for the consumer group
 * to terminate: after the brokers died, a destruction was seen still spinning 45 s later
 * (a commit waiting for a coordinator, now given up after session.timeout.ms, see
 * new_consumer), and librdkafka 2.0 has reports of such waits that never end (issues 4131,
 * 4674). A stopping hub must not hang on it: the destruction runs on a thread of its own,
 * and when it outlasts the bound the hub says so and exits without it (the transport and
 * the clients are left to the exit). */
static bool close_clients(kafka_transport *t)
{
    uv_thread_t closer;
    if (uv_thread_create(&closer, close_main, t) != 0) {
        close_main(t);
        return true;
    }
    uint64_t deadline = qs_now_ms() + CLOSE_BOUND_MS;
    uv_mutex_lock(&t->base.mu);
    for (uint64_t now; !t->clients_closed && (now = qs_now_ms()) < deadline;)
        uv_cond_timedwait(&t->closed_cond, &t->base.mu, (deadline - now) * 1000000u);
    bool closed = t->clients_closed;
    const char *what = t->closing;
    uv_mutex_unlock(&t->base.mu);
    if (closed) {
        uv_thread_join(&closer);
        return true;
    }
    qs_warn("kafka %s: librdkafka did not finish destroying %s within %d ms; stopping "
            "without waiting for it",
            t->s.brokers, what, CLOSE_BOUND_MS);
    qs_transport_left_running();
    return false;
}

static void kafka_destroy(qs_transport *base)
{
    kafka_transport *t = (kafka_transport *)base;
    kafka_stop(base);
    for (size_t i = 0; i < t->jn; i++) {
        fail_replay(t->jobs[i], "the hub is shutting down");
        t->jobs[i]->done(t->jobs[i]);
    }
    reader_drop_held(t);
    if (!close_clients(t))
        return; /* its threads may still use the transport: left to the exit */
    free(t->jobs);
    qs_presence_map_free(&t->local);
    qs_kafka_registry_free(&t->reg);
    qs_kafka_index_free(&t->index);
    qs_transport_base_destroy(&t->base);
    uv_cond_destroy(&t->reader_cond);
    uv_cond_destroy(&t->closed_cond);
    qs_kafka_settings_free(&t->s);
    free(t->group);
    free(t);
}

const qs_transport_ops qs_transport_kafka_ops = {
    .name = "kafka",
    .has_history = true,
    .create = kafka_create,
    .start = kafka_start,
    .publish = kafka_publish,
    .replay = kafka_replay,
    .healthy = kafka_healthy,
    .presence_add = kafka_presence_add,
    .presence_remove = kafka_presence_remove,
    .presence_list = kafka_presence_list,
    .stop = kafka_stop,
    .destroy = kafka_destroy,
};
