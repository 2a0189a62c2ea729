/* SPDX-License-Identifier: MIT
 * kafka.h - the pure parts of the Kafka transport (kafka.c), unit-tested without a broker
 * and fuzzed: its options, the checks of a topic's layout, messages as updates, the
 * id -> offset index, and the records of the presence topic with the registry they build.
 *
 * Every function here may be called from any thread; none does I/O. The index and the
 * registry are not thread-safe by themselves: the transport guards them with its lock.
 */
#ifndef QS_TRANSPORT_KAFKA_H
#define QS_TRANSPORT_KAFKA_H

#include "buf.h"
#include "strmap.h"
#include "transport.h"

/* ------------------------------------------------------------ options */

#define QS_KAFKA_DEFAULT_TOPIC "mercure"
#define QS_KAFKA_DEFAULT_TIMEOUT_MS 10000
#define QS_KAFKA_DEFAULT_PUBLISH_TIMEOUT_MS 5000
#define QS_KAFKA_DEFAULT_PRESENCE_TTL_MS 15000
/* How long the broker may hold a node's read of the topic of updates for more to come. */
#define QS_KAFKA_DEFAULT_FETCH_WAIT_MS 2
#define QS_KAFKA_MAX_FETCH_WAIT_MS 1000
/** The header that carries an update's id on every message. */
#define QS_KAFKA_ID_HEADER "mercure-id"

typedef struct qs_kafka_settings {
    char **addrs; /* brokers, "host:port" each */
    size_t n_addrs;
    char *brokers;        /* the same, comma-separated (bootstrap.servers) */
    char *topic;          /* the topic of updates, shared by every node */
    char *presence_topic; /* the compacted topic of the registry ("<topic>-presence") */
    char *consumer_group; /* NULL: derived per node at start */
    char *user, *password;
    char *sasl_mechanism; /* "PLAIN" (default), "SCRAM-SHA-256", "SCRAM-SHA-512" */
    bool tls, tls_insecure;
    char *tls_ca, *tls_cert, *tls_key;
    uint64_t timeout_ms;         /* start, sockets, history reads */
    uint64_t publish_timeout_ms; /* a publish not acknowledged by then is answered 503 */
    uint64_t presence_ttl_ms;    /* a node not heard of for that long is dead */
    uint64_t fetch_wait_ms;      /* the bus's reads wait that long for 16 KiB; 0: answered
                                    at the first update (and held 100 ms when idle) */
    int replication_factor;      /* for topics the hub creates; -1 = the broker's default */
    const char *source;          /* where the options came from, for messages (borrowed) */
    int line;
} qs_kafka_settings;

/**
 * Reads `kafka://ignored/?addr=host:port&addr=…&topic=…` or a `transport kafka { … }` block
 * (whose `url` option takes such a URL, its other options overriding it). 0, or -1 with a
 * malloc'd message naming the option (a password never appears in it).
 */
int qs_kafka_settings_load(const qs_config_transport *cfg, qs_kafka_settings *s, char **err);
void qs_kafka_settings_free(qs_kafka_settings *s);

/** True when s is a valid Kafka topic name: 1 to 249 of [A-Za-z0-9._-], not "." or "..". */
bool qs_kafka_topic_name_ok(const char *s);

/**
 * What the hub needs of a topic. For the topic of updates (presence = false): exactly one
 * partition (its offsets are the bus order) and no compaction (it would drop updates). For
 * the presence topic: one partition and compaction (it keeps the last record per key).
 * `cleanup_policy` is the topic's (NULL when unknown: not checked). NULL when fine, else a
 * static sentence saying why the topic is refused.
 */
const char *qs_kafka_topic_refusal(bool presence, int partitions, const char *cleanup_policy);

/* ------------------------------------------------------------ the brokers' refusals */

/**
 * The option a librdkafka configuration error (rd_kafka_conf_set's or rd_kafka_new's errstr)
 * is about, for messages: "sasl_mechanism", "tls_ca", "tls_cert", "tls_key", else "addr".
 */
const char *qs_kafka_conf_error_option(const char *errstr);

/** librdkafka 2.6.1 as rd_kafka_version() gives it (0xMMmmrrpp, pp the pre-release). */
#define QS_KAFKA_SCRAM_NONCE_FIXED 0x02060100

/**
 * True when `mechanism` (NULL: PLAIN) is a SCRAM one and librdkafka `version`
 * (rd_kafka_version()) is older than 2.6.1: such a librdkafka repeats its own nonce in the
 * final message of a SCRAM login (its issue 4895), which Kafka brokers 4.0 and later, which
 * compare the nonce exactly, refuse whatever the password.
 */
bool qs_kafka_scram_nonce_repeated(int version, const char *mechanism);

/**
 * The start-up error for a login the brokers refused, from librdkafka's `reason`: names the
 * option to look at (sasl_mechanism when the brokers do not offer the mechanism, else
 * password), the user and the mechanism, never the password; when the librdkafka in use
 * (`version`, `version_str`: rd_kafka_version() and rd_kafka_version_str()) repeats its
 * SCRAM nonce, says so. malloc'd.
 */
char *qs_kafka_login_error(const qs_kafka_settings *s, const char *reason, int version,
                           const char *version_str);

/* ------------------------------------------------------------ messages */

/**
 * The update a message of the topic carries: its value is the update's record (record.h),
 * its id header the update's id, which must agree with the record's. offset is the
 * message's: the update's bus seq is offset + 1. NULL when the message is not one of ours
 * (no or another id header, a value that is not a record).
 */
qs_update *qs_kafka_message_update(const void *value, size_t len, const void *id_header,
                                   size_t id_len, int64_t offset);

/* ------------------------------------------------------------ the id index */

/**
 * Where each update id is in the topic: a hash table from a 64-bit keyed hash of the id to
 * the offsets of the messages carrying it (16 bytes per update). Lookups return candidate
 * offsets, earliest first; the caller reads those messages and compares their ids, so a
 * hash collision costs a read, never a wrong answer. Offsets below the topic's first
 * retained one are dropped by qs_kafka_index_prune.
 */
typedef struct qs_kafka_index {
    struct qs_kafka_index_slot *slots; /* open addressing, linear probing */
    size_t cap;                        /* power of two, or 0 */
    size_t count;
    uint64_t seed[2];
    int64_t floor; /* offsets below it were pruned */
} qs_kafka_index;

void qs_kafka_index_init(qs_kafka_index *x);
void qs_kafka_index_free(qs_kafka_index *x);
/** Records that `id` is at `offset` (offsets are added in increasing order). */
void qs_kafka_index_add(qs_kafka_index *x, const char *id, size_t len, int64_t offset);
/** Up to max candidate offsets of id, earliest first; returns how many. */
size_t qs_kafka_index_find(const qs_kafka_index *x, const char *id, size_t len, int64_t *out,
                           size_t max);
/** Forgets every offset below `floor` (the topic's retention removed them). */
void qs_kafka_index_prune(qs_kafka_index *x, int64_t floor);

/* ------------------------------------------------------------ the presence registry */

/*
 * The presence topic is compacted and keyed; every node reads it whole at start, then
 * follows it:
 *   n/<node>              heartbeat: {"ttl":ms}, every third of presence_ttl
 *   s/<node>/<subscriber> an active subscription: {"topics":[…],"payload":…,"order":n}, and
 *                         for a 1.0 subscriber its selectors' "syntaxes" and "payloads"
 *                         (presence.h)
 *   c/<node>              a claim on a dead node: {"by":"<claimer>","hb":<offset>}
 * A tombstone (no value) deletes a key. Every record except claims and tombstones comes
 * from the node it names, and refreshes that node's lease in every reader's view (measured
 * with the reader's own clock, so clocks need not agree). A node whose lease expired is
 * dead: its entries are no longer listed, and each live node that publishes subscription
 * events claims it. Every node reads the claims in the topic's order, so all agree on the
 * first valid one (naming the dead node's last heartbeat, made while no live node had
 * claimed it); only its author takes the entries, publishes their departures and writes
 * their tombstones.
 */

typedef enum qs_kafka_presence_kind {
    QS_KAFKA_PRESENCE_NONE = 0, /* not a presence key */
    QS_KAFKA_PRESENCE_HEARTBEAT,
    QS_KAFKA_PRESENCE_ENTRY,
    QS_KAFKA_PRESENCE_CLAIM,
} qs_kafka_presence_kind;

/** The key of a record: "n/<node>", "s/<node>/<subscriber>", "c/<node>" (malloc'd). */
char *qs_kafka_presence_key(qs_kafka_presence_kind kind, const char *node, const char *subscriber);
/** Splits a key; node and subscriber are malloc'd (subscriber only for entries). */
qs_kafka_presence_kind qs_kafka_presence_parse_key(const void *key, size_t len, char **node,
                                                   char **subscriber);
/** An entry's value, and back (0, or -1 when it is not one). */
char *qs_kafka_presence_encode_entry(const qs_presence_entry *e);
int qs_kafka_presence_decode_entry(const char *subscriber, const void *json, size_t len,
                                   qs_presence_entry *out);
/** A claim's value, and back (0, or -1; *by malloc'd). */
char *qs_kafka_presence_encode_claim(const char *by, int64_t heartbeat_offset);
int qs_kafka_presence_decode_claim(const void *json, size_t len, char **by,
                                   int64_t *heartbeat_offset);

/** A node as its records describe it. */
typedef struct qs_kafka_node {
    char *id;
    uint64_t seen_ms;    /* the reader's clock when the node last wrote a record */
    int64_t hb_offset;   /* offset of its last heartbeat, -1 when none */
    char *claimed_by;    /* the winning claim since its last heartbeat, NULL = none */
    uint64_t claimed_ms; /* when this reader sent its own claim (0 = never) */
    bool taken;          /* this reader won the claim and took the entries */
    qs_strmap entries;   /* subscriber -> qs_presence_entry * */
} qs_kafka_node;

typedef struct qs_kafka_registry {
    char *self; /* this node's id */
    uint64_t ttl_ms;
    qs_strmap nodes; /* id -> qs_kafka_node * (this node's too: what the topic says of it) */
    bool self_taken; /* another node took this node's entries: they must be written again */
} qs_kafka_registry;

void qs_kafka_registry_init(qs_kafka_registry *g, const char *self, uint64_t ttl_ms);
void qs_kafka_registry_free(qs_kafka_registry *g);

/**
 * Applies one record (value NULL = tombstone) read at `offset` at time now_ms. When it is
 * a claim that this node wins, the dead node's entries are moved to *taken (n_taken set):
 * the caller publishes their departures and writes their tombstones
 * (qs_kafka_registry_tombstones). Returns false when the key is not a presence key.
 */
bool qs_kafka_registry_apply(qs_kafka_registry *g, const void *key, size_t klen, const void *value,
                             size_t vlen, int64_t offset, uint64_t now_ms,
                             qs_presence_entry **taken, size_t *n_taken, char **taken_node);
/** Every other node is heard of now (after this reader could not hear them: an outage, the
 *  start), so none is declared dead for the silence of this reader's own link. */
void qs_kafka_registry_touch_all(qs_kafka_registry *g, uint64_t now_ms);
/** The entries of the live nodes other than this one (copies), sorted by (order, node). */
qs_presence_entry *qs_kafka_registry_list(const qs_kafka_registry *g, uint64_t now_ms,
                                          const qs_presence_entry *local, size_t n_local,
                                          size_t *n);
/**
 * The dead nodes this node should claim now: expired, with something left to take, with no
 * live claimer, and not claimed by this node within the last ttl. Their claimed_ms is set;
 * returns malloc'd claim records to write: keys[i] and values[i] (both malloc'd).
 */
size_t qs_kafka_registry_claims(qs_kafka_registry *g, uint64_t now_ms, char ***keys,
                                char ***values);
/** The keys to delete once the entries of `node` were taken (its entries, heartbeat and
 *  claim); malloc'd array of malloc'd keys. */
size_t qs_kafka_registry_tombstones(const char *node, const qs_presence_entry *entries, size_t n,
                                    char ***keys);

/*
 * The records this node writes, made here and handed to the transport's own writer (Kafka's
 * producer, Pulsar's presence queue), so every transport over this registry writes the same
 * records in the same order. Called with the caller's lock held; `write` is too.
 */
/** Writes one record to the presence topic (value NULL = a tombstone). */
typedef void (*qs_kafka_presence_write)(void *ctx, const char *key, const char *value);
/** This node's entry e. */
void qs_kafka_registry_write_entry(const qs_kafka_registry *g, const qs_presence_entry *e,
                                   qs_kafka_presence_write write, void *ctx);
/** The tombstone of this node's entry for subscriber. */
void qs_kafka_registry_write_removal(const qs_kafka_registry *g, const char *subscriber,
                                     qs_kafka_presence_write write, void *ctx);
/** This node's heartbeat, naming its ttl. */
void qs_kafka_registry_write_heartbeat(const qs_kafka_registry *g, qs_kafka_presence_write write,
                                       void *ctx);
/** This node's entries again (local: subscriber -> qs_presence_entry *; after a failed write,
 *  or after another node took them while this one stalled), tombstones for those the topic
 *  still holds but local forgot, then a heartbeat; clears self_taken. */
void qs_kafka_registry_write_again(qs_kafka_registry *g, const qs_strmap *local,
                                   qs_kafka_presence_write write, void *ctx);
/** A clean stop: the tombstones of this node's entries (local) and heartbeat. */
void qs_kafka_registry_write_goodbye(const qs_kafka_registry *g, const qs_strmap *local,
                                     qs_kafka_presence_write write, void *ctx);
/** The claims qs_kafka_registry_claims says to make now. */
void qs_kafka_registry_write_claims(qs_kafka_registry *g, uint64_t now_ms,
                                    qs_kafka_presence_write write, void *ctx);
/** The tombstones of qs_kafka_registry_tombstones, once this node took node's entries. */
void qs_kafka_registry_write_tombstones(const char *node, const qs_presence_entry *entries,
                                        size_t n, qs_kafka_presence_write write, void *ctx);

#endif
