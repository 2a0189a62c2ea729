/* SPDX-License-Identifier: MIT
 * pulsar.h - the pure parts of the Pulsar transport (pulsar.c), unit-tested without a
 * broker and fuzzed: its options, the framing of Apache Pulsar's binary protocol (sizes,
 * magic number, CRC32C, commands encoded with protobuf-c from pulsar.proto), message ids
 * as bus positions, and messages read as updates.
 *
 * Every function here may be called from any thread; none does I/O.
 *
 * Framing, as the protocol defines it (all integers big-endian):
 *   simple command:  [total size u32][command size u32][BaseCommand]
 *   with a payload:  [total size u32][command size u32][BaseCommand]
 *                    [magic 0x0e01 u16][CRC32C u32][metadata size u32][MessageMetadata][payload]
 * The total size counts everything after itself; the CRC32C covers everything after itself.
 * A broker may put [magic 0x0e02 u16][size u32][broker entry metadata] before the 0x0e01
 * part (only when a client asks for it; skipped here).
 */
#ifndef QS_TRANSPORT_PULSAR_H
#define QS_TRANSPORT_PULSAR_H

#include <sys/types.h>

#include "buf.h"
#include "transport.h"
#include "transport/pulsar.pb-c.h"

/* ------------------------------------------------------------ options */

#define QS_PULSAR_DEFAULT_PORT 6650
#define QS_PULSAR_DEFAULT_TLS_PORT 6651
#define QS_PULSAR_DEFAULT_TOPIC "mercure"
#define QS_PULSAR_DEFAULT_TIMEOUT_MS 10000
#define QS_PULSAR_DEFAULT_PUBLISH_TIMEOUT_MS 5000
#define QS_PULSAR_DEFAULT_PRESENCE_TTL_MS 15000
/** The message property that carries an update's id. */
#define QS_PULSAR_ID_PROPERTY "mercure-id"

typedef struct qs_pulsar_settings {
    char *host;
    int port;
    bool tls;          /* pulsar+ssl:// */
    char *service_url; /* "pulsar://host:port" (for messages) */
    char *topic;       /* full name: persistent://tenant/namespace/name */
    char *presence_topic;
    char *subscription_name;     /* NULL: derived per node at start */
    char *token;                 /* authentication token, or NULL */
    char *token_file;            /* a file holding the token (read at each connection) */
    char *tls_ca;                /* NULL: the system's CAs */
    bool tls_insecure;           /* do not verify the broker's certificate */
    uint64_t timeout_ms;         /* connecting, requests, history reads */
    uint64_t publish_timeout_ms; /* a publish not acknowledged by then is answered 503 */
    uint64_t presence_ttl_ms;    /* a node not heard of for that long is dead */
    const char *source;          /* where the options came from, for messages (borrowed) */
    int line;
} qs_pulsar_settings;

/**
 * Reads `pulsar://host:port?topic=…&subscription_name=…` (or pulsar+ssl://) or a
 * `transport pulsar { … }` block (whose `url` option takes such a URL, its other options
 * overriding it). 0, or -1 with a malloc'd message naming the option (a token never
 * appears in it).
 */
int qs_pulsar_settings_load(const qs_config_transport *cfg, qs_pulsar_settings *s, char **err);
void qs_pulsar_settings_free(qs_pulsar_settings *s);

/** "name" -> "persistent://public/default/name"; a full name is checked and kept
 *  (malloc'd), NULL when malformed. */
char *qs_pulsar_topic_full_name(const char *topic);

/* ------------------------------------------------------------ framing */

/** CRC32C (Castagnoli), as the protocol's checksum: crc = 0 to start. */
uint32_t qs_pulsar_crc32c(uint32_t crc, const void *p, size_t n);

/** Appends a frame with one command (cmd->type set, with its one field). */
void qs_pulsar_frame_command(qs_buf *out, const Qspulsar__BaseCommand *cmd);
/** Appends a frame with a command, message metadata and a payload (SEND). */
void qs_pulsar_frame_payload(qs_buf *out, const Qspulsar__BaseCommand *cmd,
                             const Qspulsar__MessageMetadata *meta, const void *payload,
                             size_t len);

/** A frame read from a broker. The command and metadata are unpacked copies (free them with
 *  qs_pulsar_frame_clear); the payload points into the parsed buffer. */
typedef struct qs_pulsar_frame {
    Qspulsar__BaseCommand *cmd;
    Qspulsar__MessageMetadata *meta; /* frames with a payload only; else NULL */
    const uint8_t *payload;
    size_t payload_len;
} qs_pulsar_frame;

/**
 * Parses the frame at the start of buf[0..len). Returns the bytes it takes (> 0) with *f
 * filled, 0 when more bytes are needed, or -1 with *why (a static sentence) when the bytes
 * are not a valid frame: a size over max_frame (plus room for the headers), a command that
 * does not decode, a bad magic number, a wrong checksum, metadata that does not decode.
 */
ssize_t qs_pulsar_frame_parse(const void *buf, size_t len, size_t max_frame, qs_pulsar_frame *f,
                              const char **why);
void qs_pulsar_frame_clear(qs_pulsar_frame *f);

/** A command's name for messages ("SEND_RECEIPT"), or "command <n>". */
const char *qs_pulsar_command_name(int type, char buf[24]);
/** A broker's error code's name ("AuthenticationError"), or "error <n>". */
const char *qs_pulsar_error_name(int code, char buf[24]);

/* Command types (BaseCommand.type) and other enumerations of the protocol. */
enum {
    QS_PULSAR_CONNECT = 2,
    QS_PULSAR_CONNECTED = 3,
    QS_PULSAR_SUBSCRIBE = 4,
    QS_PULSAR_PRODUCER = 5,
    QS_PULSAR_SEND = 6,
    QS_PULSAR_SEND_RECEIPT = 7,
    QS_PULSAR_SEND_ERROR = 8,
    QS_PULSAR_MESSAGE = 9,
    QS_PULSAR_FLOW = 11,
    QS_PULSAR_SUCCESS = 13,
    QS_PULSAR_ERROR = 14,
    QS_PULSAR_CLOSE_PRODUCER = 15,
    QS_PULSAR_CLOSE_CONSUMER = 16,
    QS_PULSAR_PRODUCER_SUCCESS = 17,
    QS_PULSAR_PING = 18,
    QS_PULSAR_PONG = 19,
    QS_PULSAR_PARTITIONED_METADATA = 21,
    QS_PULSAR_PARTITIONED_METADATA_RESPONSE = 22,
    QS_PULSAR_LOOKUP = 23,
    QS_PULSAR_LOOKUP_RESPONSE = 24,
    QS_PULSAR_REACHED_END_OF_TOPIC = 27,
    QS_PULSAR_GET_LAST_MESSAGE_ID = 29,
    QS_PULSAR_GET_LAST_MESSAGE_ID_RESPONSE = 30,
    QS_PULSAR_ACTIVE_CONSUMER_CHANGE = 31,
    QS_PULSAR_AUTH_CHALLENGE = 36,
    QS_PULSAR_AUTH_RESPONSE = 37,
};
enum { QS_PULSAR_LOOKUP_REDIRECT = 0, QS_PULSAR_LOOKUP_CONNECT = 1, QS_PULSAR_LOOKUP_FAILED = 2 };
enum { QS_PULSAR_PARTITIONED_SUCCESS = 0, QS_PULSAR_PARTITIONED_FAILED = 1 };
enum { QS_PULSAR_SUB_EXCLUSIVE = 0 };
enum { QS_PULSAR_POSITION_LATEST = 0, QS_PULSAR_POSITION_EARLIEST = 1 };
enum {
    QS_PULSAR_ERR_AUTHENTICATION = 3,
    QS_PULSAR_ERR_AUTHORIZATION = 4,
    QS_PULSAR_ERR_CONSUMER_BUSY = 5,
    QS_PULSAR_ERR_SERVICE_NOT_READY = 6,
    QS_PULSAR_ERR_TOPIC_NOT_FOUND = 11,
    QS_PULSAR_ERR_TOO_MANY_REQUESTS = 14,
    QS_PULSAR_ERR_TOPIC_TERMINATED = 15,
    QS_PULSAR_ERR_PRODUCER_BUSY = 16,
    QS_PULSAR_ERR_INVALID_TOPIC_NAME = 17,
    QS_PULSAR_ERR_NOT_ALLOWED = 22,
};
/** The protocol version the hub speaks (it needs nothing newer). */
#define QS_PULSAR_PROTOCOL_VERSION 15

/* ------------------------------------------------------------ partitions */

/*
 * The hub needs non-partitioned topics (the order of one topic is the order every node
 * delivers in). At start it asks the broker how many partitions its topics have, without
 * letting the broker create a topic that does not exist yet (which the namespace's
 * auto-creation policy could make partitioned): the hub's producer creates it, not
 * partitioned.
 */

/** Fills cmd, with *pm, as the PARTITIONED_METADATA request of `topic` (borrowed). */
void qs_pulsar_partitions_request(Qspulsar__BaseCommand *cmd,
                                  Qspulsar__PartitionedTopicMetadata *pm, const char *topic,
                                  uint64_t request_id);
/**
 * Reads the answer (NULL: the command had none): 1 with *partitions (0 for a topic that is
 * not partitioned), 0 when the topic does not exist yet (TopicNotFound), -1 with *error (the
 * broker's error code, UnknownError when it gave none) when the broker failed the request;
 * r->message, when not NULL, says why.
 */
int qs_pulsar_partitions_of(const Qspulsar__PartitionedTopicMetadataResponse *r,
                            uint32_t *partitions, int *error);

/* ------------------------------------------------------------ positions */

/*
 * A message id (ledger, entry, index in its batch) is a bus position:
 * seq = ledger * 2^36 + entry * 2^12 + index + 1 (index 0 for a message outside a batch).
 * Ledger and entry ids only grow along a non-partitioned topic, so seqs do too, and every
 * node computes the same seq for the same message. A ledger id of 2^27 or more, an entry id
 * of 2^24 - 1 or more or a batch index of 4096 or more has no seq (such a message is
 * skipped, with an error logged).
 */
#define QS_PULSAR_MAX_BATCH 4096
bool qs_pulsar_seq_of(uint64_t ledger, uint64_t entry, int64_t batch_index, uint64_t *seq);
/** The entry of a seq (seq >= 1): its ledger and entry ids. */
void qs_pulsar_msgid_of(uint64_t seq, uint64_t *ledger, uint64_t *entry);
/** "Earliest" as a message id, and the entry id "before the ledger's first" (-1). */
#define QS_PULSAR_ID_NONE UINT64_MAX

/* ------------------------------------------------------------ messages and batches */

/**
 * A batch's payload is its messages one after the other, each
 * [size u32][SingleMessageMetadata][payload]. The hub publishes its updates in batches (one
 * SEND, one stored entry, for the publishes that queued up together).
 */
void qs_pulsar_batch_append(qs_buf *out, const char *id, const void *payload, size_t len);

/** One message of a MESSAGE frame (borrowed from the frame and the iterator). */
typedef struct qs_pulsar_msg {
    int64_t batch_index; /* 0 outside a batch */
    Qspulsar__KeyValue **properties;
    size_t n_properties;
    const char *key; /* partition key, or NULL */
    const uint8_t *payload;
    size_t len;
} qs_pulsar_msg;

/** Iterates the messages of a MESSAGE frame: one, or those of its batch. */
typedef struct qs_pulsar_msgs {
    const qs_pulsar_frame *f;
    size_t off;
    int64_t index, count;
    Qspulsar__SingleMessageMetadata *single;
} qs_pulsar_msgs;

void qs_pulsar_msgs_init(qs_pulsar_msgs *it, const qs_pulsar_frame *f);
/** 1 with *m the next message, 0 when there is none left, -1 with *why when the payload is
 *  malformed or unreadable here (compressed, encrypted, chunked). */
int qs_pulsar_msgs_next(qs_pulsar_msgs *it, qs_pulsar_msg *m, const char **why);
void qs_pulsar_msgs_clear(qs_pulsar_msgs *it);

/**
 * The update a message carries: its payload is the update's record (record.h), its
 * property "mercure-id" the update's id, which must agree with the record's. NULL when the
 * message is not one of ours (no id property, a record that does not decode).
 */
qs_update *qs_pulsar_message_update(const qs_pulsar_msg *m, uint64_t seq);
/** The value of a property, or NULL (borrowed). */
const char *qs_pulsar_property(Qspulsar__KeyValue *const *props, size_t n, const char *key);

#endif
