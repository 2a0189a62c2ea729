/* SPDX-License-Identifier: MIT
 * pulsar_internal.h - the Pulsar transport's state, shared by its files: pulsar.c
 * (start-up, publishing, the bus, history, health, stop), pulsar_presence.c (the
 * cluster's registry of subscriptions, used by pulsar.c) and pulsar_state.c (links, stop,
 * flow permits, used by both). Not an interface for the rest of the hub, which
 * sees only qs_transport_pulsar_ops.
 *
 * Locking: the transport's lock (base.mu) guards the links' states, the queues (publishes,
 * history pulls, presence records), the bus position, the index, the registry and this
 * node's entries. No thread holds it while it waits for the broker. Each connection belongs
 * to one thread.
 */
#ifndef QS_TRANSPORT_PULSAR_INTERNAL_H
#define QS_TRANSPORT_PULSAR_INTERNAL_H

#include <uv.h>

#include "transport/kafka.h"
#include "transport/pulsar.h"
#include "transport/pulsar_client.h"

typedef struct link_state {
    const char *name;
    bool up;
    uint64_t down_ms;           /* when it went down */
    char reason[QS_REASON_MAX]; /* why it is down */
} link_state;

/* A publish waiting for its receipt. */
typedef struct pending {
    qs_update *u;
    qs_publish_cb cb;
    void *arg;
    uint64_t seqid;    /* the producer's sequence id */
    uint64_t deadline; /* publish_timeout */
} pending;

/* A presence record waiting to be sent: key, value (NULL = tombstone). */
typedef struct presence_record {
    char *key;
    char *value;
} presence_record;

typedef struct pulsar_transport {
    qs_transport base;
    qs_transport_host host;
    qs_pulsar_settings s;
    qs_pulsar_client_ctx cctx;
    char node[40];
    char *subscription; /* the bus's subscription */

    bool stopping;    /* publishes refused, threads exit */
    bool writer_stop; /* the writer completes what is in flight and exits */
    bool threads_started;
    uv_thread_t writer_t, bus_t, reader_t, presence_t;
    link_state plink, blink, prlink;

    /* The writer: the queue (under mu), then what is in flight (writer thread). */
    int writer_fd; /* eventfd: publishes queued */
    pending **queue;
    size_t qn, qcap;
    qs_pulsar_conn wconn;
    char *producer_name;
    pending **inflight; /* inflight[ihead..in_n) await receipts, in send order */
    size_t ihead, in_n, in_cap;
    uint64_t next_seqid;

    /* The bus (base.seq, base.last_id: the last delivered update). */
    qs_pulsar_conn bconn;
    uint32_t bus_received; /* messages since the last permits given */
    uint64_t base_seq;     /* the position the node started at */
    qs_kafka_index index;  /* id -> seq, under mu */
    uint64_t bus_skipped;

    /* The reader: the queue of pulls (under mu), its connection and current consumer. */
    uv_cond_t reader_cond;
    qs_replay **jobs;
    size_t jn, jcap;
    qs_pulsar_conn rconn;
    uint64_t rconsumer;
    uint32_t rpermits, rreceived; /* its permits, and messages since some were given back */
    bool ropen;                   /* a history reader is open (between pulls too) */
    bool rit_active;              /* messages of its current frame left to read in rit */
    qs_pulsar_msgs rit;
    uint64_t rit_ledger, rit_entry;
    uint64_t rafter; /* the seq of the last message it read */

    /* Presence (pulsar_presence.c). */
    qs_pulsar_conn pconn;
    int presence_fd; /* eventfd: records queued */
    char *presence_producer;
    uint64_t presence_seqid;
    uint64_t presence_pos; /* seq of the last presence record applied */
    uint32_t presence_received;
    presence_record *pq; /* under mu */
    size_t pqn, pqcap;
    qs_strmap local; /* this node's entries: subscriber -> qs_presence_entry * */
    uint64_t last_order;
    qs_kafka_registry reg;
    bool presence_dirty; /* this node's entries must be written again */
} pulsar_transport;

/* pulsar_state.c */
void qs_pulsar_link_up(pulsar_transport *t, link_state *l);
void qs_pulsar_link_down(pulsar_transport *t, link_state *l, const char *reason);
bool qs_pulsar_is_stopping(pulsar_transport *t);
/** Calls fn for each message of a MESSAGE frame (one, or those of a batch) with its seq;
 *  returns how many messages the frame holds (what it took of the flow permits). */
uint32_t qs_pulsar_each_message(pulsar_transport *t, const qs_pulsar_frame *f, const char *topic,
                                void (*fn)(pulsar_transport *t, const qs_pulsar_msg *m,
                                           uint64_t seq));
/** Gives `permits` more messages to a consumer. */
int qs_pulsar_flow(qs_pulsar_conn *c, uint64_t consumer_id, uint32_t permits);

/* pulsar_presence.c */
void qs_pulsar_presence_init(pulsar_transport *t);
/** At start: reads the presence topic whole (after the bus is set up). */
int qs_pulsar_presence_create(pulsar_transport *t, char **err);
void qs_pulsar_presence_main(void *arg);
void qs_pulsar_presence_free(pulsar_transport *t);
void qs_pulsar_presence_add(qs_transport *base, const qs_presence_entry *e);
void qs_pulsar_presence_remove(qs_transport *base, const char *subscriber);
void qs_pulsar_presence_list(qs_transport *base, qs_presence_query *q);

#endif
