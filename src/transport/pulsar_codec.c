/* SPDX-License-Identifier: MIT
 * pulsar_codec.c - the framing of Pulsar's binary protocol, CRC32C, message ids as bus
 * positions, and messages read as updates (pulsar.h). Pure: no I/O. What a broker sends
 * goes through qs_pulsar_frame_parse, which is fuzzed (fuzz/fuzz_pulsar.c).
 */
#include "transport/pulsar.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "record.h"

#define MAGIC_CRC32C 0x0e01
#define MAGIC_BROKER_ENTRY 0x0e02
/* Room for the headers around a broker's largest message (its max_message_size). */
#define FRAME_SLACK (64u * 1024)

/* ------------------------------------------------------------ CRC32C */

static uint32_t crc_table[8][256];
static uv_once_t crc_once = UV_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t qs_pulsar_crc32c(uint32_t crc, const void *p, size_t n)
{
    uv_once(&crc_once, crc_init);
    const uint8_t *b = p;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][b[4]] ^
              crc_table[2][b[5]] ^ crc_table[1][b[6]] ^ crc_table[0][b[7]];
        b += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *b++) & 0xff];
    return ~crc;
}

/* ------------------------------------------------------------ encoding */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void qs_pulsar_frame_command(qs_buf *out, const Qspulsar__BaseCommand *cmd)
{
    size_t clen = qspulsar__base_command__get_packed_size(cmd);
    qs_buf_reserve(out, 8 + clen);
    uint8_t *p = (uint8_t *)out->p + out->len;
    put32(p, (uint32_t)(4 + clen));
    put32(p + 4, (uint32_t)clen);
    qspulsar__base_command__pack(cmd, p + 8);
    out->len += 8 + clen;
}

void qs_pulsar_frame_payload(qs_buf *out, const Qspulsar__BaseCommand *cmd,
                             const Qspulsar__MessageMetadata *meta, const void *payload, size_t len)
{
    size_t clen = qspulsar__base_command__get_packed_size(cmd);
    size_t mlen = qspulsar__message_metadata__get_packed_size(meta);
    size_t total = 4 + clen + 2 + 4 + 4 + mlen + len;
    qs_buf_reserve(out, 4 + total);
    uint8_t *p = (uint8_t *)out->p + out->len;
    put32(p, (uint32_t)total);
    put32(p + 4, (uint32_t)clen);
    qspulsar__base_command__pack(cmd, p + 8);
    uint8_t *q = p + 8 + clen;
    q[0] = MAGIC_CRC32C >> 8;
    q[1] = MAGIC_CRC32C & 0xff;
    uint8_t *crc = q + 2, *m = q + 6;
    put32(m, (uint32_t)mlen);
    qspulsar__message_metadata__pack(meta, m + 4);
    if (len)
        memcpy(m + 4 + mlen, payload, len);
    put32(crc, qs_pulsar_crc32c(0, m, 4 + mlen + len));
    out->len += 4 + total;
}

/* ------------------------------------------------------------ parsing */

void qs_pulsar_frame_clear(qs_pulsar_frame *f)
{
    if (f->cmd)
        qspulsar__base_command__free_unpacked(f->cmd, NULL);
    if (f->meta)
        qspulsar__message_metadata__free_unpacked(f->meta, NULL);
    memset(f, 0, sizeof(*f));
}

static ssize_t bad(qs_pulsar_frame *f, const char **why, const char *what)
{
    qs_pulsar_frame_clear(f);
    *why = what;
    return -1;
}

ssize_t qs_pulsar_frame_parse(const void *buf, size_t len, size_t max_frame, qs_pulsar_frame *f,
                              const char **why)
{
    const uint8_t *b = buf;
    memset(f, 0, sizeof(*f));
    if (len < 4)
        return 0;
    uint32_t total = get32(b);
    if (total < 4)
        return bad(f, why, "a frame shorter than its command size");
    if (total > max_frame + FRAME_SLACK)
        return bad(f, why, "a frame larger than the largest message allowed");
    if (len < 4 + (size_t)total)
        return 0;
    const uint8_t *end = b + 4 + total;
    uint32_t clen = get32(b + 4);
    if (clen > total - 4)
        return bad(f, why, "a command size beyond the frame");
    f->cmd = qspulsar__base_command__unpack(NULL, clen, b + 8);
    if (!f->cmd)
        return bad(f, why, "a command that does not decode");
    const uint8_t *p = b + 8 + clen;
    if (p == end)
        return (ssize_t)(4 + total);
    /* A payload follows: optional broker entry metadata, then the checksummed part. */
    if (end - p >= 2 && ((p[0] << 8) | p[1]) == MAGIC_BROKER_ENTRY) {
        if (end - p < 6)
            return bad(f, why, "truncated broker entry metadata");
        uint32_t blen = get32(p + 2);
        if (blen > (size_t)(end - p) - 6)
            return bad(f, why, "broker entry metadata beyond the frame");
        p += 6 + blen;
    }
    if (end - p < 10)
        return bad(f, why, "a payload without its checksum and metadata size");
    if (((p[0] << 8) | p[1]) != MAGIC_CRC32C)
        return bad(f, why, "a payload without the CRC32C magic number");
    uint32_t crc = get32(p + 2);
    const uint8_t *m = p + 6;
    if (qs_pulsar_crc32c(0, m, (size_t)(end - m)) != crc)
        return bad(f, why, "a payload whose CRC32C checksum is wrong");
    uint32_t mlen = get32(m);
    if (mlen > (size_t)(end - m) - 4)
        return bad(f, why, "message metadata beyond the frame");
    f->meta = qspulsar__message_metadata__unpack(NULL, mlen, m + 4);
    if (!f->meta)
        return bad(f, why, "message metadata that does not decode");
    f->payload = m + 4 + mlen;
    f->payload_len = (size_t)(end - f->payload);
    return (ssize_t)(4 + total);
}

/* ------------------------------------------------------------ names */

const char *qs_pulsar_command_name(int type, char buf[24])
{
    static const char *const names[] = {
        [QS_PULSAR_CONNECT] = "CONNECT",
        [QS_PULSAR_CONNECTED] = "CONNECTED",
        [QS_PULSAR_SUBSCRIBE] = "SUBSCRIBE",
        [QS_PULSAR_PRODUCER] = "PRODUCER",
        [QS_PULSAR_SEND] = "SEND",
        [QS_PULSAR_SEND_RECEIPT] = "SEND_RECEIPT",
        [QS_PULSAR_SEND_ERROR] = "SEND_ERROR",
        [QS_PULSAR_MESSAGE] = "MESSAGE",
        [QS_PULSAR_FLOW] = "FLOW",
        [QS_PULSAR_SUCCESS] = "SUCCESS",
        [QS_PULSAR_ERROR] = "ERROR",
        [QS_PULSAR_CLOSE_PRODUCER] = "CLOSE_PRODUCER",
        [QS_PULSAR_CLOSE_CONSUMER] = "CLOSE_CONSUMER",
        [QS_PULSAR_PRODUCER_SUCCESS] = "PRODUCER_SUCCESS",
        [QS_PULSAR_PING] = "PING",
        [QS_PULSAR_PONG] = "PONG",
        [QS_PULSAR_PARTITIONED_METADATA] = "PARTITIONED_METADATA",
        [QS_PULSAR_PARTITIONED_METADATA_RESPONSE] = "PARTITIONED_METADATA_RESPONSE",
        [QS_PULSAR_LOOKUP] = "LOOKUP",
        [QS_PULSAR_LOOKUP_RESPONSE] = "LOOKUP_RESPONSE",
        [QS_PULSAR_REACHED_END_OF_TOPIC] = "REACHED_END_OF_TOPIC",
        [QS_PULSAR_GET_LAST_MESSAGE_ID] = "GET_LAST_MESSAGE_ID",
        [QS_PULSAR_GET_LAST_MESSAGE_ID_RESPONSE] = "GET_LAST_MESSAGE_ID_RESPONSE",
        [QS_PULSAR_ACTIVE_CONSUMER_CHANGE] = "ACTIVE_CONSUMER_CHANGE",
        [QS_PULSAR_AUTH_CHALLENGE] = "AUTH_CHALLENGE",
        [QS_PULSAR_AUTH_RESPONSE] = "AUTH_RESPONSE",
    };
    if (type >= 0 && (size_t)type < QS_ARRAY_LEN(names) && names[type])
        return names[type];
    snprintf(buf, 24, "command %d", type);
    return buf;
}

const char *qs_pulsar_error_name(int code, char buf[24])
{
    static const char *const names[] = {
        "UnknownError",
        "MetadataError",
        "PersistenceError",
        "AuthenticationError",
        "AuthorizationError",
        "ConsumerBusy",
        "ServiceNotReady",
        "ProducerBlockedQuotaExceededError",
        "ProducerBlockedQuotaExceededException",
        "ChecksumError",
        "UnsupportedVersionError",
        "TopicNotFound",
        "SubscriptionNotFound",
        "ConsumerNotFound",
        "TooManyRequests",
        "TopicTerminatedError",
        "ProducerBusy",
        "InvalidTopicName",
        "IncompatibleSchema",
        "ConsumerAssignError",
        "TransactionCoordinatorNotFound",
        "InvalidTxnStatus",
        "NotAllowedError",
        "TransactionConflict",
        "TransactionNotFound",
        "ProducerFenced",
    };
    if (code >= 0 && (size_t)code < QS_ARRAY_LEN(names))
        return names[code];
    snprintf(buf, 24, "error %d", code);
    return buf;
}

/* ------------------------------------------------------------ partitions */

void qs_pulsar_partitions_request(Qspulsar__BaseCommand *cmd,
                                  Qspulsar__PartitionedTopicMetadata *pm, const char *topic,
                                  uint64_t request_id)
{
    qspulsar__base_command__init(cmd);
    qspulsar__partitioned_topic_metadata__init(pm);
    cmd->type = QS_PULSAR_PARTITIONED_METADATA;
    cmd->partition_metadata = pm;
    pm->topic = (char *)topic;
    pm->request_id = request_id;
    pm->has_metadata_auto_creation_enabled = true;
    pm->metadata_auto_creation_enabled = false;
}

int qs_pulsar_partitions_of(const Qspulsar__PartitionedTopicMetadataResponse *r,
                            uint32_t *partitions, int *error)
{
    *partitions = 0;
    *error = 0;
    if (!r)
        return -1;
    if (r->has_response && r->response != QS_PULSAR_PARTITIONED_SUCCESS) {
        *error = r->has_error ? r->error : 0;
        return *error == QS_PULSAR_ERR_TOPIC_NOT_FOUND ? 0 : -1;
    }
    *partitions = r->has_partitions ? r->partitions : 0;
    return 1;
}

/* ------------------------------------------------------------ positions */

bool qs_pulsar_seq_of(uint64_t ledger, uint64_t entry, int64_t batch_index, uint64_t *seq)
{
    if (batch_index < 0)
        batch_index = 0;
    if (ledger >= (UINT64_C(1) << 27) || entry >= (UINT64_C(1) << 24) - 1 ||
        batch_index >= QS_PULSAR_MAX_BATCH)
        return false;
    *seq = (ledger << 36 | entry << 12 | (uint64_t)batch_index) + 1;
    return true;
}

void qs_pulsar_msgid_of(uint64_t seq, uint64_t *ledger, uint64_t *entry)
{
    uint64_t v = seq - 1;
    *ledger = v >> 36;
    *entry = (v >> 12) & 0xffffffu;
}

/* ------------------------------------------------------------ messages and batches */

void qs_pulsar_batch_append(qs_buf *out, const char *id, const void *payload, size_t len)
{
    Qspulsar__SingleMessageMetadata sm = QSPULSAR__SINGLE_MESSAGE_METADATA__INIT;
    Qspulsar__KeyValue kv = QSPULSAR__KEY_VALUE__INIT;
    Qspulsar__KeyValue *props[1] = {&kv};
    kv.key = QS_PULSAR_ID_PROPERTY;
    kv.value = (char *)id;
    sm.n_properties = 1;
    sm.properties = props;
    sm.payload_size = (int32_t)len;
    size_t mlen = qspulsar__single_message_metadata__get_packed_size(&sm);
    qs_buf_reserve(out, 4 + mlen + len);
    uint8_t *p = (uint8_t *)out->p + out->len;
    put32(p, (uint32_t)mlen);
    qspulsar__single_message_metadata__pack(&sm, p + 4);
    if (len)
        memcpy(p + 4 + mlen, payload, len);
    out->len += 4 + mlen + len;
}

const char *qs_pulsar_property(Qspulsar__KeyValue *const *props, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (props[i]->key && !strcmp(props[i]->key, key))
            return props[i]->value;
    return NULL;
}

void qs_pulsar_msgs_init(qs_pulsar_msgs *it, const qs_pulsar_frame *f)
{
    memset(it, 0, sizeof(*it));
    it->f = f;
    const Qspulsar__MessageMetadata *m = f->meta;
    it->count = m && m->has_num_messages_in_batch ? m->num_messages_in_batch : 1;
}

void qs_pulsar_msgs_clear(qs_pulsar_msgs *it)
{
    if (it->single)
        qspulsar__single_message_metadata__free_unpacked(it->single, NULL);
    it->single = NULL;
}

int qs_pulsar_msgs_next(qs_pulsar_msgs *it, qs_pulsar_msg *m, const char **why)
{
    const qs_pulsar_frame *f = it->f;
    const Qspulsar__MessageMetadata *md = f->meta;
    qs_pulsar_msgs_clear(it);
    if (!md || !f->payload) {
        *why = "a message without metadata";
        return -1;
    }
    if ((md->has_compression && md->compression != 0) || md->n_encryption_keys ||
        (md->has_num_chunks_from_msg && md->num_chunks_from_msg > 1)) {
        *why = "a compressed, encrypted or chunked message";
        return -1;
    }
    if (it->index >= it->count)
        return 0;
    memset(m, 0, sizeof(*m));
    if (!md->has_num_messages_in_batch) { /* not a batch: the one message */
        it->index++;
        m->properties = md->properties;
        m->n_properties = md->n_properties;
        m->key = md->partition_key;
        m->payload = f->payload;
        m->len = f->payload_len;
        return 1;
    }
    if (it->count < 0 || it->count > QS_PULSAR_MAX_BATCH) {
        *why = "a batch of more messages than the hub orders";
        return -1;
    }
    size_t left = f->payload_len - it->off;
    const uint8_t *p = f->payload + it->off;
    if (left < 4 || get32(p) > left - 4) {
        *why = "a batch shorter than its messages";
        return -1;
    }
    uint32_t mlen = get32(p);
    it->single = qspulsar__single_message_metadata__unpack(NULL, mlen, p + 4);
    if (!it->single) {
        *why = "a batched message's metadata that does not decode";
        return -1;
    }
    if (it->single->payload_size < 0 || (size_t)it->single->payload_size > left - 4 - mlen) {
        qs_pulsar_msgs_clear(it);
        *why = "a batched message beyond its batch";
        return -1;
    }
    m->batch_index = it->index++;
    m->properties = it->single->properties;
    m->n_properties = it->single->n_properties;
    m->key = it->single->partition_key;
    m->payload = p + 4 + mlen;
    m->len = (size_t)it->single->payload_size;
    it->off += 4 + mlen + m->len;
    if (it->single->has_compacted_out && it->single->compacted_out)
        m->len = 0, m->payload = NULL; /* removed by compaction */
    return 1;
}

qs_update *qs_pulsar_message_update(const qs_pulsar_msg *m, uint64_t seq)
{
    if (!m->payload || seq == 0)
        return NULL;
    const char *id = qs_pulsar_property(m->properties, m->n_properties, QS_PULSAR_ID_PROPERTY);
    qs_slice rid;
    if (!id || !qs_record_id(m->payload, m->len, &rid) || !qs_slice_eq(rid, id))
        return NULL;
    qs_update *u = qs_record_decode(m->payload, m->len);
    if (!u)
        return NULL;
    u->seq = seq;
    qs_update_finalize(u);
    return u;
}
