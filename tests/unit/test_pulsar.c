/* SPDX-License-Identifier: MIT
 * test_pulsar.c - the pure pieces of the Pulsar transport: options from a URL and from a
 * block, topic names, CRC32C, the frame parser on frames a real broker sent (recorded,
 * pulsar_frames.h) and on truncated or corrupted ones, frames the hub encodes read back,
 * the request for a topic's partitions and the broker's answers, message ids as bus
 * positions, and messages as updates. The transport against a real broker is covered by
 * tests/integration/test_pulsar.py.
 */
#include "harness.h"
#include "pulsar_frames.h"
#include "record.h"
#include "transport/pulsar.h"

static int load_url(const char *url, qs_pulsar_settings *s, char **err)
{
    qs_config_transport cfg = {.url = (char *)url, .source = "MERCURE_TRANSPORT_URL", .line = 1};
    return qs_pulsar_settings_load(&cfg, s, err);
}

static int load_block(const char *const *kv, size_t n, qs_pulsar_settings *s, char **err)
{
    qs_config_option opts[16];
    char *values[16];
    for (size_t i = 0; i < n; i++) {
        values[i] = (char *)kv[2 * i + 1];
        opts[i] = (qs_config_option){(char *)kv[2 * i], &values[i], values[i] ? 1 : 0, "Caddyfile",
                                     (int)(10 + i)};
    }
    qs_config_transport cfg = {
        .name = "pulsar", .options = opts, .n_options = n, .source = "Caddyfile", .line = 9};
    return qs_pulsar_settings_load(&cfg, s, err);
}

static void expect_error(int rc, char **err, const char *needle, const char *absent)
{
    ASSERT_EQ_INT(-1, rc);
    ASSERT(*err != NULL);
    if (!strstr(*err, needle))
        qs_test_fail(__FILE__, __LINE__, "\"%s\" not in \"%s\"", needle, *err);
    if (absent && strstr(*err, absent))
        qs_test_fail(__FILE__, __LINE__, "\"%s\" in \"%s\"", absent, *err);
    free(*err);
    *err = NULL;
}

/* ------------------------------------------------------------ options */

TEST(url_in_the_paid_editions_format)
{
    qs_pulsar_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("pulsar://localhost:6650?topic=mercure-ha&subscription_name=the-"
                              "node-id&token=abc&presence_ttl=3s&timeout=2s&publish_timeout=1500ms",
                              &s, &err));
    ASSERT_EQ_STR("localhost", s.host);
    ASSERT_EQ_INT(6650, s.port);
    ASSERT(!s.tls);
    ASSERT_EQ_STR("pulsar://localhost:6650", s.service_url);
    ASSERT_EQ_STR("persistent://public/default/mercure-ha", s.topic);
    ASSERT_EQ_STR("persistent://public/default/mercure-ha-presence", s.presence_topic);
    ASSERT_EQ_STR("the-node-id", s.subscription_name);
    ASSERT_EQ_STR("abc", s.token);
    ASSERT_EQ_INT(3000, s.presence_ttl_ms);
    ASSERT_EQ_INT(2000, s.timeout_ms);
    ASSERT_EQ_INT(1500, s.publish_timeout_ms);
    qs_pulsar_settings_free(&s);
}

TEST(defaults_and_tls_url)
{
    qs_pulsar_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("pulsar+ssl://broker.example?tls_trust_certs_file=/ca.pem&topic="
                              "persistent://acme/hub/updates",
                              &s, &err));
    ASSERT(s.tls);
    ASSERT_EQ_INT(QS_PULSAR_DEFAULT_TLS_PORT, s.port);
    ASSERT_EQ_STR("/ca.pem", s.tls_ca);
    ASSERT_EQ_STR("persistent://acme/hub/updates", s.topic);
    ASSERT_EQ_STR("persistent://acme/hub/updates-presence", s.presence_topic);
    ASSERT(s.subscription_name == NULL); /* derived at start */
    ASSERT_EQ_INT(QS_PULSAR_DEFAULT_TIMEOUT_MS, s.timeout_ms);
    qs_pulsar_settings_free(&s);
    ASSERT_EQ_INT(0, load_url("pulsar://h", &s, &err));
    ASSERT_EQ_INT(QS_PULSAR_DEFAULT_PORT, s.port);
    ASSERT_EQ_STR("persistent://public/default/mercure", s.topic);
    qs_pulsar_settings_free(&s);
}

TEST(block_options_override_its_url)
{
    const char *kv[] = {
        "url", "pulsar://a:1?topic=x&token=t1", "topic", "y", "token_file", "/run/token", "token",
        NULL};
    qs_pulsar_settings s;
    char *err = NULL;
    /* token without value: a value is required */
    expect_error(load_block(kv, 4, &s, &err), &err, "token", NULL);
    ASSERT_EQ_INT(0, load_block(kv, 2, &s, &err));
    ASSERT_EQ_STR("persistent://public/default/y", s.topic);
    ASSERT_EQ_STR("t1", s.token);
    qs_pulsar_settings_free(&s);
    /* token from the URL and token_file from the block contradict each other */
    expect_error(load_block(kv, 3, &s, &err), &err, "Caddyfile:9: transport pulsar: token_file",
                 "t1");
}

TEST(errors_name_the_option_and_hide_the_token)
{
    qs_pulsar_settings s;
    char *err = NULL;
    expect_error(load_url("pulsar://h?bogus=1", &s, &err), &err, "unknown option \"bogus\"", NULL);
    expect_error(load_url("kafka://h", &s, &err), &err, "pulsar://", NULL);
    expect_error(load_url("pulsar:///?topic=t", &s, &err), &err, "names no broker", NULL);
    expect_error(load_url("pulsar://h/path", &s, &err), &err, "path", NULL);
    expect_error(load_url("pulsar://h?topic=non-persistent://a/b/c", &s, &err), &err,
                 "transport pulsar: topic", NULL);
    expect_error(load_url("pulsar://h?topic=a%2Fb", &s, &err), &err, "topic", NULL);
    expect_error(load_url("pulsar://h?topic=persistent://a/b", &s, &err), &err, "topic", NULL);
    expect_error(load_url("pulsar://h?topic=t&presence_topic=t", &s, &err), &err,
                 "presence_topic: must differ", NULL);
    expect_error(load_url("pulsar://h?subscription_name=a%20b", &s, &err), &err,
                 "subscription_name", NULL);
    expect_error(load_url("pulsar://h?tls_ca=/ca.pem", &s, &err), &err, "tls_ca: TLS options",
                 NULL);
    expect_error(load_url("pulsar://h?token=s3cret&token_file=/t", &s, &err), &err, "token_file",
                 "s3cret");
    expect_error(load_url("pulsar://h?timeout=soon&token=s3cret", &s, &err), &err,
                 "timeout: invalid duration \"soon\"", "s3cret");
    expect_error(load_url("pulsar://h?presence_ttl=10ms", &s, &err), &err, "presence_ttl", NULL);
    const char *kv[] = {"topic", "t"};
    expect_error(load_block(kv, 1, &s, &err), &err, "url: the broker's URL is required", NULL);
}

TEST(topic_names)
{
    char *n = qs_pulsar_topic_full_name("a.b-c_d=e:f");
    ASSERT_EQ_STR("persistent://public/default/a.b-c_d=e:f", n);
    free(n);
    n = qs_pulsar_topic_full_name("persistent://t/ns/x");
    ASSERT_EQ_STR("persistent://t/ns/x", n);
    free(n);
    ASSERT(qs_pulsar_topic_full_name("") == NULL);
    ASSERT(qs_pulsar_topic_full_name("a b") == NULL);
    ASSERT(qs_pulsar_topic_full_name("t/ns/x") == NULL);
    ASSERT(qs_pulsar_topic_full_name("persistent://t/ns/x/y") == NULL);
    ASSERT(qs_pulsar_topic_full_name("persistent://t//x") == NULL);
    ASSERT(qs_pulsar_topic_full_name("non-persistent://t/ns/x") == NULL);
}

/* ------------------------------------------------------------ framing */

TEST(crc32c_check_values)
{
    ASSERT_EQ_INT(0xe3069283u, qs_pulsar_crc32c(0, "123456789", 9));
    ASSERT_EQ_INT(0, qs_pulsar_crc32c(0, "", 0));
    /* Incremental, across the 8-byte steps. */
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t whole = qs_pulsar_crc32c(0, s, strlen(s));
    ASSERT_EQ_INT(0x22620404u, whole);
    ASSERT_EQ_INT(whole, qs_pulsar_crc32c(qs_pulsar_crc32c(0, s, 13), s + 13, strlen(s) - 13));
}

/* Parses every frame of buf; returns their command types (and checks every prefix of each
 * frame asks for more bytes). */
static size_t parse_all(const uint8_t *buf, size_t len, int *types, size_t max,
                        qs_pulsar_frame *last_message)
{
    size_t n = 0, off = 0;
    while (off < len) {
        qs_pulsar_frame f;
        const char *why = NULL;
        ssize_t used = qs_pulsar_frame_parse(buf + off, len - off, 5u << 20, &f, &why);
        if (used <= 0)
            qs_test_fail(__FILE__, __LINE__, "frame %zu at %zu: %zd (%s)", n, off, used,
                         why ? why : "needs more");
        for (size_t k = 0; k < (size_t)used; k++) {
            qs_pulsar_frame g;
            ASSERT_EQ_INT(0, qs_pulsar_frame_parse(buf + off, k, 5u << 20, &g, &why));
        }
        ASSERT(n < max);
        types[n++] = f.cmd->type;
        if (f.cmd->type == QS_PULSAR_MESSAGE && last_message) {
            qs_pulsar_frame_clear(last_message);
            *last_message = f;
        } else {
            qs_pulsar_frame_clear(&f);
        }
        off += (size_t)used;
    }
    return n;
}

TEST(recorded_connected_and_lookup)
{
    qs_pulsar_frame f;
    const char *why = NULL;
    ssize_t used =
        qs_pulsar_frame_parse(recorded_lookup, sizeof(recorded_lookup), 5u << 20, &f, &why);
    ASSERT(used > 0);
    ASSERT_EQ_INT(QS_PULSAR_CONNECTED, f.cmd->type);
    ASSERT_EQ_STR("Pulsar Server4.0.7", f.cmd->connected->server_version);
    ASSERT(f.cmd->connected->has_max_message_size);
    ASSERT_EQ_INT(5 << 20, f.cmd->connected->max_message_size);
    qs_pulsar_frame_clear(&f);
    ssize_t used2 = qs_pulsar_frame_parse(recorded_lookup + used, sizeof(recorded_lookup) - used,
                                          5u << 20, &f, &why);
    ASSERT_EQ_INT(sizeof(recorded_lookup) - used, used2);
    ASSERT_EQ_INT(QS_PULSAR_LOOKUP_RESPONSE, f.cmd->type);
    const Qspulsar__LookupTopicResponse *r = f.cmd->lookup_topic_response;
    ASSERT_EQ_STR("pulsar://127.0.0.1:54135", r->broker_service_url);
    ASSERT_EQ_INT(QS_PULSAR_LOOKUP_CONNECT, r->response);
    ASSERT_EQ_INT(1, r->request_id);
    ASSERT(r->authoritative && r->proxy_through_service_url);
    qs_pulsar_frame_clear(&f);
}

TEST(recorded_presence_session_with_messages)
{
    int types[16];
    qs_pulsar_frame m = {0};
    const char *why_unused = NULL;
    size_t n = parse_all(recorded_presence, sizeof(recorded_presence), types, 16, &m);
    const int want[] = {QS_PULSAR_CONNECTED,    QS_PULSAR_PRODUCER_SUCCESS,
                        QS_PULSAR_SUCCESS,      QS_PULSAR_GET_LAST_MESSAGE_ID_RESPONSE,
                        QS_PULSAR_SEND_RECEIPT, QS_PULSAR_MESSAGE,
                        QS_PULSAR_SEND_RECEIPT, QS_PULSAR_MESSAGE};
    ASSERT_EQ_INT(QS_ARRAY_LEN(want), n);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ_INT(want[i], types[i]);
    ASSERT(m.meta != NULL);
    ASSERT_EQ_STR("standalone-0-1", m.meta->producer_name);
    ASSERT(m.meta->partition_key && !strncmp(m.meta->partition_key, "n/", 2));
    ASSERT(m.payload_len > 8 && !memcmp(m.payload, "{\"ttl\":", 7));
    /* One message (not a batch), with its key; not an update: no id property. */
    qs_pulsar_msgs it;
    qs_pulsar_msg one;
    qs_pulsar_msgs_init(&it, &m);
    ASSERT_EQ_INT(1, qs_pulsar_msgs_next(&it, &one, &why_unused));
    ASSERT_EQ_INT(0, one.batch_index);
    ASSERT_EQ_STR(m.meta->partition_key, one.key);
    ASSERT(one.payload == m.payload && one.len == m.payload_len);
    ASSERT(qs_pulsar_message_update(&one, 1) == NULL);
    ASSERT_EQ_INT(0, qs_pulsar_msgs_next(&it, &one, &why_unused));
    qs_pulsar_msgs_clear(&it);
    uint64_t seq;
    const Qspulsar__MessageId *id = m.cmd->message->message_id;
    ASSERT(qs_pulsar_seq_of(id->ledger, id->entry, -1, &seq));
    qs_pulsar_frame_clear(&m);
}

/* ------------------------------------------------------------ partitions */

TEST(partitions_request_encoding)
{
    Qspulsar__BaseCommand cmd;
    Qspulsar__PartitionedTopicMetadata pm;
    const char *topic = "persistent://public/default/mercure-ha";
    qs_pulsar_partitions_request(&cmd, &pm, topic, 2);
    qs_buf out = QS_BUF_INIT;
    qs_pulsar_frame_command(&out, &cmd);
    /* [total 53][command 49] type 21, field 21 (44 bytes): topic (38 bytes), request id 2,
     * metadata_auto_creation_enabled (field 6) false. */
    uint8_t want[57];
    const uint8_t head[] = {0, 0, 0, 0x35, 0, 0, 0, 0x31, 0x08, 0x15, 0xaa, 0x01, 0x2c, 0x0a, 0x26};
    const uint8_t tail[] = {0x10, 0x02, 0x30, 0x00};
    ASSERT_EQ_INT(38, strlen(topic));
    memcpy(want, head, sizeof(head));
    memcpy(want + sizeof(head), topic, 38);
    memcpy(want + sizeof(head) + 38, tail, sizeof(tail));
    ASSERT_EQ_MEM(want, sizeof(want), out.p, out.len);
    /* Read back. */
    qs_pulsar_frame f;
    const char *why = NULL;
    ASSERT_EQ_INT(out.len, qs_pulsar_frame_parse(out.p, out.len, 5u << 20, &f, &why));
    ASSERT_EQ_INT(QS_PULSAR_PARTITIONED_METADATA, f.cmd->type);
    const Qspulsar__PartitionedTopicMetadata *back = f.cmd->partition_metadata;
    ASSERT(back != NULL);
    ASSERT_EQ_STR(topic, back->topic);
    ASSERT_EQ_INT(2, back->request_id);
    ASSERT(back->has_metadata_auto_creation_enabled && !back->metadata_auto_creation_enabled);
    qs_pulsar_frame_clear(&f);
    qs_buf_free(&out);
}

/* The PARTITIONED_METADATA_RESPONSE frames of a recorded stream (after its CONNECTED). */
static size_t partition_answers(const uint8_t *buf, size_t len, qs_pulsar_frame *out, size_t max)
{
    int types[8];
    size_t n = parse_all(buf, len, types, 8, NULL), k = 0, off = 0;
    ASSERT_EQ_INT(QS_PULSAR_CONNECTED, types[0]);
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        ssize_t used = qs_pulsar_frame_parse(buf + off, len - off, 5u << 20, &out[k], &why);
        ASSERT(used > 0);
        off += (size_t)used;
        if (i == 0) {
            qs_pulsar_frame_clear(&out[k]);
            continue;
        }
        ASSERT_EQ_INT(QS_PULSAR_PARTITIONED_METADATA_RESPONSE, types[i]);
        ASSERT(out[k].cmd->partition_metadata_response != NULL);
        ASSERT(k < max);
        k++;
    }
    return k;
}

TEST(recorded_partitions_answers)
{
    qs_pulsar_frame f[2];
    uint32_t n;
    int code;
    /* A topic created with 3 partitions: refused by the hub. */
    ASSERT_EQ_INT(1, partition_answers(recorded_partitioned, sizeof(recorded_partitioned), f, 2));
    const Qspulsar__PartitionedTopicMetadataResponse *r = f[0].cmd->partition_metadata_response;
    ASSERT_EQ_INT(2, r->request_id);
    ASSERT_EQ_INT(1, qs_pulsar_partitions_of(r, &n, &code));
    ASSERT_EQ_INT(3, n);
    ASSERT_EQ_INT(0, code);
    qs_pulsar_frame_clear(&f[0]);
    /* A topic that does not exist yet (not created by the request), then one that is not
     * partitioned. */
    ASSERT_EQ_INT(
        2, partition_answers(recorded_not_partitioned, sizeof(recorded_not_partitioned), f, 2));
    r = f[0].cmd->partition_metadata_response;
    ASSERT_EQ_INT(2, r->request_id);
    ASSERT_EQ_INT(QS_PULSAR_PARTITIONED_FAILED, r->response);
    ASSERT_EQ_INT(0, qs_pulsar_partitions_of(r, &n, &code));
    ASSERT_EQ_INT(0, n);
    ASSERT_EQ_INT(QS_PULSAR_ERR_TOPIC_NOT_FOUND, code);
    r = f[1].cmd->partition_metadata_response;
    ASSERT_EQ_INT(3, r->request_id);
    ASSERT_EQ_INT(1, qs_pulsar_partitions_of(r, &n, &code));
    ASSERT_EQ_INT(0, n);
    qs_pulsar_frame_clear(&f[0]);
    qs_pulsar_frame_clear(&f[1]);
}

TEST(partitions_answers_that_fail)
{
    Qspulsar__PartitionedTopicMetadataResponse r =
        QSPULSAR__PARTITIONED_TOPIC_METADATA_RESPONSE__INIT;
    uint32_t n = 9;
    int code = 9;
    ASSERT_EQ_INT(-1, qs_pulsar_partitions_of(NULL, &n, &code));
    ASSERT_EQ_INT(0, n);
    /* Success without the count: not partitioned (the count is optional). */
    ASSERT_EQ_INT(1, qs_pulsar_partitions_of(&r, &n, &code));
    ASSERT_EQ_INT(0, n);
    /* A refusal, with its code; then one without a code. */
    r.has_response = true;
    r.response = QS_PULSAR_PARTITIONED_FAILED;
    r.has_error = true;
    r.error = QS_PULSAR_ERR_AUTHORIZATION;
    r.has_partitions = true;
    r.partitions = 4; /* a failed answer's count is not one */
    ASSERT_EQ_INT(-1, qs_pulsar_partitions_of(&r, &n, &code));
    ASSERT_EQ_INT(QS_PULSAR_ERR_AUTHORIZATION, code);
    ASSERT_EQ_INT(0, n);
    r.has_error = false;
    ASSERT_EQ_INT(-1, qs_pulsar_partitions_of(&r, &n, &code));
    ASSERT_EQ_INT(0, code);
    /* A response type this hub does not know is no success. */
    r.response = 7;
    ASSERT_EQ_INT(-1, qs_pulsar_partitions_of(&r, &n, &code));
    r.response = QS_PULSAR_PARTITIONED_SUCCESS;
    ASSERT_EQ_INT(1, qs_pulsar_partitions_of(&r, &n, &code));
    ASSERT_EQ_INT(4, n);
}

TEST(corrupted_frames_are_refused)
{
    /* The presence session's first MESSAGE frame, a byte of its payload flipped. */
    uint8_t buf[sizeof(recorded_presence)];
    memcpy(buf, recorded_presence, sizeof(buf));
    size_t off = 0;
    int k = 0;
    while (off < sizeof(buf)) { /* find the 6th frame (the first MESSAGE) */
        uint32_t total =
            (uint32_t)buf[off] << 24 | buf[off + 1] << 16 | buf[off + 2] << 8 | buf[off + 3];
        if (++k == 6)
            break;
        off += 4 + total;
    }
    uint32_t total =
        (uint32_t)buf[off] << 24 | buf[off + 1] << 16 | buf[off + 2] << 8 | buf[off + 3];
    qs_pulsar_frame f;
    const char *why = NULL;
    ASSERT_EQ_INT(4 + total, qs_pulsar_frame_parse(buf + off, 4 + total, 5u << 20, &f, &why));
    qs_pulsar_frame_clear(&f);
    buf[off + 4 + total - 1] ^= 0x20;
    ASSERT_EQ_INT(-1, qs_pulsar_frame_parse(buf + off, 4 + total, 5u << 20, &f, &why));
    ASSERT(strstr(why, "CRC32C"));
    buf[off + 4 + total - 1] ^= 0x20;
    /* A bad magic number. */
    uint32_t clen =
        (uint32_t)buf[off + 4] << 24 | buf[off + 5] << 16 | buf[off + 6] << 8 | buf[off + 7];
    buf[off + 8 + clen] = 0x0f;
    ASSERT_EQ_INT(-1, qs_pulsar_frame_parse(buf + off, 4 + total, 5u << 20, &f, &why));
    ASSERT(strstr(why, "magic"));
    /* Sizes that lie. */
    const uint8_t tiny[] = {0, 0, 0, 3, 0, 0, 0};
    ASSERT_EQ_INT(-1, qs_pulsar_frame_parse(tiny, sizeof(tiny), 1024, &f, &why));
    const uint8_t huge[] = {0x7f, 0, 0, 0, 0, 0, 0, 0};
    ASSERT_EQ_INT(-1, qs_pulsar_frame_parse(huge, sizeof(huge), 1024, &f, &why));
    const uint8_t over[] = {0, 0, 0, 6, 0, 0, 0, 9, 8, 3};
    ASSERT_EQ_INT(-1, qs_pulsar_frame_parse(over, sizeof(over), 1024, &f, &why));
    const uint8_t garbage[] = {0, 0, 0, 6, 0, 0, 0, 2, 0xff, 0xff};
    ASSERT_EQ_INT(-1, qs_pulsar_frame_parse(garbage, sizeof(garbage), 1024, &f, &why));
    ASSERT(strstr(why, "does not decode"));
}

static qs_update *make_update(const char *id, const char *data)
{
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, "urn:a", 5);
    qs_update_set_id(u, id, strlen(id));
    qs_update_set_data(u, data, strlen(data));
    qs_update_finalize(u);
    return u;
}

/* A MESSAGE frame as a broker sends it to a consumer, for a batch of `n` updates (n = 0:
 * one update outside a batch, with its id property `prop`). */
static void message_frame(qs_buf *out, qs_update **u, size_t n, const char *prop)
{
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Message msg = QSPULSAR__MESSAGE__INIT;
    Qspulsar__MessageId mid = QSPULSAR__MESSAGE_ID__INIT;
    Qspulsar__MessageMetadata md = QSPULSAR__MESSAGE_METADATA__INIT;
    Qspulsar__KeyValue kv = QSPULSAR__KEY_VALUE__INIT;
    Qspulsar__KeyValue *props[1] = {&kv};
    cmd.type = QS_PULSAR_MESSAGE;
    cmd.message = &msg;
    msg.consumer_id = 7;
    msg.message_id = &mid;
    mid.ledger = 12;
    mid.entry = 34;
    md.producer_name = "p";
    md.sequence_id = 1;
    md.publish_time = 1;
    qs_buf rec = QS_BUF_INIT, payload = QS_BUF_INIT;
    if (!n) {
        kv.key = QS_PULSAR_ID_PROPERTY;
        kv.value = (char *)prop;
        md.n_properties = 1;
        md.properties = props;
        qs_record_encode(u[0], &payload);
    } else {
        md.has_num_messages_in_batch = true;
        md.num_messages_in_batch = (int32_t)n;
        for (size_t i = 0; i < n; i++) {
            rec.len = 0;
            qs_record_encode(u[i], &rec);
            qs_pulsar_batch_append(&payload, u[i]->id, rec.p, rec.len);
        }
    }
    out->len = 0;
    qs_pulsar_frame_payload(out, &cmd, &md, payload.p, payload.len);
    qs_buf_free(&rec);
    qs_buf_free(&payload);
}

TEST(messages_and_batches_read_back_as_updates)
{
    qs_update *u[3] = {make_update("custom-1", "hello"), make_update("urn:uuid:x", "second"),
                       make_update("third", "")};
    qs_buf out = QS_BUF_INIT;
    qs_pulsar_frame f;
    qs_pulsar_msgs it;
    qs_pulsar_msg m;
    const char *why = NULL;

    /* One update outside a batch. */
    message_frame(&out, u, 0, "custom-1");
    ASSERT_EQ_INT(out.len, qs_pulsar_frame_parse(out.p, out.len, 5u << 20, &f, &why));
    ASSERT_EQ_INT(7, f.cmd->message->consumer_id);
    qs_pulsar_msgs_init(&it, &f);
    ASSERT_EQ_INT(1, qs_pulsar_msgs_next(&it, &m, &why));
    uint64_t seq;
    ASSERT(qs_pulsar_seq_of(12, 34, m.batch_index, &seq));
    qs_update *back = qs_pulsar_message_update(&m, seq);
    ASSERT(back != NULL);
    ASSERT_EQ_STR("custom-1", back->id);
    ASSERT_EQ_INT(seq, back->seq);
    ASSERT_EQ_MEM(u[0]->frame->data, u[0]->frame->len, back->frame->data, back->frame->len);
    qs_update_unref(back);
    ASSERT_EQ_INT(0, qs_pulsar_msgs_next(&it, &m, &why));
    qs_pulsar_msgs_clear(&it);
    qs_pulsar_frame_clear(&f);

    /* An id property that disagrees with the record: not ours. */
    message_frame(&out, u, 0, "forged");
    ASSERT(qs_pulsar_frame_parse(out.p, out.len, 5u << 20, &f, &why) > 0);
    qs_pulsar_msgs_init(&it, &f);
    ASSERT_EQ_INT(1, qs_pulsar_msgs_next(&it, &m, &why));
    ASSERT(qs_pulsar_message_update(&m, seq) == NULL);
    qs_pulsar_msgs_clear(&it);
    qs_pulsar_frame_clear(&f);

    /* A batch of three, each with its own id and seq, in order. */
    message_frame(&out, u, 3, NULL);
    ASSERT(qs_pulsar_frame_parse(out.p, out.len, 5u << 20, &f, &why) > 0);
    qs_pulsar_msgs_init(&it, &f);
    uint64_t last = 0;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_INT(1, qs_pulsar_msgs_next(&it, &m, &why));
        ASSERT_EQ_INT(i, m.batch_index);
        ASSERT(qs_pulsar_seq_of(12, 34, m.batch_index, &seq));
        ASSERT(seq > last);
        last = seq;
        back = qs_pulsar_message_update(&m, seq);
        ASSERT(back != NULL);
        ASSERT_EQ_STR(u[i]->id, back->id);
        ASSERT_EQ_MEM(u[i]->frame->data, u[i]->frame->len, back->frame->data, back->frame->len);
        qs_update_unref(back);
    }
    ASSERT_EQ_INT(0, qs_pulsar_msgs_next(&it, &m, &why));
    qs_pulsar_msgs_clear(&it);
    qs_pulsar_frame_clear(&f);

    /* A batch that says it holds more messages than its payload: refused at the end. */
    message_frame(&out, u, 2, NULL);
    ASSERT(qs_pulsar_frame_parse(out.p, out.len, 5u << 20, &f, &why) > 0);
    f.meta->num_messages_in_batch = 3;
    qs_pulsar_msgs_init(&it, &f);
    ASSERT_EQ_INT(1, qs_pulsar_msgs_next(&it, &m, &why));
    ASSERT_EQ_INT(1, qs_pulsar_msgs_next(&it, &m, &why));
    ASSERT_EQ_INT(-1, qs_pulsar_msgs_next(&it, &m, &why));
    ASSERT(strstr(why, "batch"));
    qs_pulsar_msgs_clear(&it);
    /* A compressed one: not readable here. */
    f.meta->has_compression = true;
    f.meta->compression = 1;
    qs_pulsar_msgs_init(&it, &f);
    ASSERT_EQ_INT(-1, qs_pulsar_msgs_next(&it, &m, &why));
    ASSERT(strstr(why, "compressed"));
    qs_pulsar_msgs_clear(&it);
    qs_pulsar_frame_clear(&f);

    /* A simple command, with the sizes the protocol defines. */
    Qspulsar__BaseCommand ping = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Ping p = QSPULSAR__PING__INIT;
    ping.type = QS_PULSAR_PING;
    ping.ping = &p;
    out.len = 0;
    qs_pulsar_frame_command(&out, &ping);
    const uint8_t want[] = {0, 0, 0, 9, 0, 0, 0, 5, 0x08, 0x12, 0x92, 0x01, 0x00};
    ASSERT_EQ_MEM(want, sizeof(want), out.p, out.len);
    qs_buf_free(&out);
    for (int i = 0; i < 3; i++)
        qs_update_unref(u[i]);
}

/* ------------------------------------------------------------ positions */

TEST(message_ids_as_bus_positions)
{
    uint64_t seq, ledger, entry;
    ASSERT(qs_pulsar_seq_of(0, 0, -1, &seq));
    ASSERT_EQ_INT(1, seq);
    ASSERT(qs_pulsar_seq_of(5, 7, 3, &seq));
    qs_pulsar_msgid_of(seq, &ledger, &entry);
    ASSERT_EQ_INT(5, ledger);
    ASSERT_EQ_INT(7, entry);
    uint64_t a, b, c, d, e;
    ASSERT(qs_pulsar_seq_of(5, 0xfffffd, 4095, &a));
    ASSERT(qs_pulsar_seq_of(6, 0, -1, &b)); /* a later ledger sorts after every entry of 5 */
    ASSERT(qs_pulsar_seq_of(6, 0, 1, &c));  /* and batch indexes within their entry */
    ASSERT(qs_pulsar_seq_of(6, 1, 0, &d));
    ASSERT(qs_pulsar_seq_of(6, 1, 1, &e));
    ASSERT(a < b && b < c && c < d && d < e);
    ASSERT(!qs_pulsar_seq_of(QS_PULSAR_ID_NONE, QS_PULSAR_ID_NONE, 0, &seq)); /* "earliest" */
    ASSERT(!qs_pulsar_seq_of(5, QS_PULSAR_ID_NONE, 0, &seq));                 /* (5, -1) */
    ASSERT(!qs_pulsar_seq_of(UINT64_C(1) << 27, 0, 0, &seq));
    ASSERT(!qs_pulsar_seq_of(5, 0xffffff, 0, &seq));
    ASSERT(!qs_pulsar_seq_of(5, 0, QS_PULSAR_MAX_BATCH, &seq));
}

TEST(names_of_commands_and_errors)
{
    char b[24];
    ASSERT_EQ_STR("SEND_RECEIPT", qs_pulsar_command_name(QS_PULSAR_SEND_RECEIPT, b));
    ASSERT_EQ_STR("command 99", qs_pulsar_command_name(99, b));
    ASSERT_EQ_STR("PARTITIONED_METADATA_RESPONSE",
                  qs_pulsar_command_name(QS_PULSAR_PARTITIONED_METADATA_RESPONSE, b));
    ASSERT_EQ_STR("AuthenticationError", qs_pulsar_error_name(QS_PULSAR_ERR_AUTHENTICATION, b));
    ASSERT_EQ_STR("TopicNotFound", qs_pulsar_error_name(QS_PULSAR_ERR_TOPIC_NOT_FOUND, b));
    ASSERT_EQ_STR("error -3", qs_pulsar_error_name(-3, b));
}
