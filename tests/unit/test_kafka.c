/* SPDX-License-Identifier: MIT
 * test_kafka.c - the pure pieces of the Kafka transport: options from a URL and from a
 * block, the topic checks, messages as updates, the id index, presence records and the
 * registry's decisions (expiry, claims in topic order, the winner taking the entries). The
 * transport against a real broker is covered by tests/integration/test_kafka.py.
 */
#include "harness.h"
#include "record.h"
#include "transport/kafka.h"

static int load_url(const char *url, qs_kafka_settings *s, char **err)
{
    qs_config_transport cfg = {.url = (char *)url, .source = "MERCURE_TRANSPORT_URL", .line = 1};
    return qs_kafka_settings_load(&cfg, s, err);
}

static int load_block(const char *const *kv, size_t n, qs_kafka_settings *s, char **err)
{
    qs_config_option opts[16];
    char *values[16];
    for (size_t i = 0; i < n; i++) {
        values[i] = (char *)kv[2 * i + 1];
        opts[i] = (qs_config_option){(char *)kv[2 * i], &values[i], values[i] ? 1 : 0, "Caddyfile",
                                     (int)(10 + i)};
    }
    qs_config_transport cfg = {
        .name = "kafka", .options = opts, .n_options = n, .source = "Caddyfile", .line = 9};
    return qs_kafka_settings_load(&cfg, s, err);
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

TEST(url_in_the_paid_editions_format)
{
    qs_kafka_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("kafka://kafka/?addr=localhost:9092&addr=10.0.0.2:9093,[::1]&"
                              "topic=mercure-ha&consumer_group=node-1&user=alice&password=s%40c&"
                              "tls=1&tls_ca=/ca.pem&presence_ttl=3s&timeout=2s&"
                              "publish_timeout=1500ms&sasl_mechanism=SCRAM-SHA-512&fetch_wait=5ms",
                              &s, &err));
    ASSERT_EQ_INT(3, s.n_addrs);
    ASSERT_EQ_STR("localhost:9092,10.0.0.2:9093,[::1]:9092", s.brokers);
    ASSERT_EQ_STR("mercure-ha", s.topic);
    ASSERT_EQ_STR("mercure-ha-presence", s.presence_topic);
    ASSERT_EQ_STR("node-1", s.consumer_group);
    ASSERT_EQ_STR("alice", s.user);
    ASSERT_EQ_STR("s@c", s.password);
    ASSERT_EQ_STR("SCRAM-SHA-512", s.sasl_mechanism);
    ASSERT(s.tls);
    ASSERT_EQ_STR("/ca.pem", s.tls_ca);
    ASSERT_EQ_INT(3000, s.presence_ttl_ms);
    ASSERT_EQ_INT(2000, s.timeout_ms);
    ASSERT_EQ_INT(1500, s.publish_timeout_ms);
    ASSERT_EQ_INT(5, s.fetch_wait_ms);
    ASSERT_EQ_INT(-1, s.replication_factor);
    qs_kafka_settings_free(&s);
}

TEST(block_with_url_then_overrides)
{
    static const char *const kv[] = {
        "url",
        "kafka://x/?addr=a:1&topic=from-url",
        "addr",
        "b:2",
        "addr",
        "c:3",
        "topic",
        "from-block",
        "tls",
        NULL,
        "replication_factor",
        "3",
        "fetch_wait",
        "0",
    };
    qs_kafka_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_block(kv, 7, &s, &err));
    ASSERT_EQ_STR("b:2,c:3", s.brokers);
    ASSERT_EQ_STR("from-block", s.topic);
    ASSERT_EQ_STR("from-block-presence", s.presence_topic);
    ASSERT(s.tls);
    ASSERT_EQ_INT(3, s.replication_factor);
    ASSERT_EQ_INT(0, s.fetch_wait_ms);
    qs_kafka_settings_free(&s);
    ASSERT_EQ_INT(0, load_url("kafka://k/?addr=h", &s, &err));
    ASSERT_EQ_INT(QS_KAFKA_DEFAULT_FETCH_WAIT_MS, s.fetch_wait_ms);
    qs_kafka_settings_free(&s);
}

TEST(errors_name_the_option_and_never_the_password)
{
    qs_kafka_settings s;
    char *err = NULL;
    expect_error(load_url("kafka://kafka/?topic=t", &s, &err), &err,
                 "transport kafka: addr:", NULL);
    expect_error(load_url("kafka://k/?addr=h:0", &s, &err), &err, "addr: expected host:port", NULL);
    expect_error(load_url("kafka://k/?addr=h:1:2", &s, &err), &err, "expected host:port", NULL);
    expect_error(load_url("kafka://k/?addr=h&topic=a%20b", &s, &err), &err, "topic: not a valid",
                 NULL);
    expect_error(load_url("kafka://k/?addr=h&presence_topic=mercure", &s, &err), &err,
                 "presence_topic: must differ", NULL);
    expect_error(load_url("kafka://k/?addr=h&user=u", &s, &err), &err, "password: user and", NULL);
    expect_error(load_url("kafka://k/?addr=h&password=hunter2", &s, &err), &err, "user: user and",
                 "hunter2");
    expect_error(load_url("kafka://k/?addr=h&password=", &s, &err), &err, "password", NULL);
    expect_error(
        load_url("kafka://k/?addr=h&user=u&password=hunter2&sasl_mechanism=GSSAPI", &s, &err), &err,
        "sasl_mechanism", "hunter2");
    expect_error(load_url("kafka://k/?addr=h&tls_cert=/c.pem", &s, &err), &err, "tls_cert", NULL);
    expect_error(load_url("kafka://k/?addr=h&tls=1&tls_key=/k.pem", &s, &err), &err,
                 "tls_cert and tls_key go together", NULL);
    expect_error(load_url("kafka://k/?addr=h&presence_ttl=10ms", &s, &err), &err, "presence_ttl",
                 NULL);
    expect_error(load_url("kafka://k/?addr=h&fetch_wait=2s", &s, &err), &err,
                 "fetch_wait: at most 1s", NULL);
    expect_error(load_url("kafka://k/?addr=h&fetch_wait=soon", &s, &err), &err,
                 "fetch_wait: invalid duration", NULL);
    expect_error(load_url("kafka://k/?addr=h&replication_factor=0", &s, &err), &err,
                 "replication_factor", NULL);
    expect_error(load_url("kafka://k/?addr=h&nope=1", &s, &err), &err, "unknown option \"nope\"",
                 NULL);
    expect_error(load_url("redis://k/?addr=h", &s, &err), &err, "must be kafka://", NULL);
}

TEST(topic_names_and_requirements)
{
    ASSERT(qs_kafka_topic_name_ok("mercure-ha.v1_x"));
    ASSERT(!qs_kafka_topic_name_ok(""));
    ASSERT(!qs_kafka_topic_name_ok(".."));
    ASSERT(!qs_kafka_topic_name_ok("a/b"));
    ASSERT(qs_kafka_topic_refusal(false, 1, "delete") == NULL);
    ASSERT(qs_kafka_topic_refusal(false, 1, NULL) == NULL);
    ASSERT(strstr(qs_kafka_topic_refusal(false, 3, "delete"), "exactly one partition"));
    ASSERT(strstr(qs_kafka_topic_refusal(false, 1, "compact"), "compaction"));
    ASSERT(strstr(qs_kafka_topic_refusal(false, 1, "delete,compact"), "compaction"));
    ASSERT(qs_kafka_topic_refusal(true, 1, "compact") == NULL);
    ASSERT(qs_kafka_topic_refusal(true, 1, "delete") != NULL);
    ASSERT(qs_kafka_topic_refusal(true, 1, "compact,delete") != NULL);
    ASSERT(qs_kafka_topic_refusal(true, 2, "compact") != NULL);
}

TEST(librdkafka_errors_name_the_option)
{
    ASSERT_EQ_STR("sasl_mechanism",
                  qs_kafka_conf_error_option("Unsupported SASL mechanism: SCRAM-SHA-256"));
    ASSERT_EQ_STR("sasl_mechanism",
                  qs_kafka_conf_error_option("Invalid value for configuration property "
                                             "\"sasl.mechanisms\""));
    ASSERT_EQ_STR("tls_ca", qs_kafka_conf_error_option("ssl.ca.location failed: No such file"));
    ASSERT_EQ_STR("tls_cert", qs_kafka_conf_error_option("ssl.certificate.location failed"));
    ASSERT_EQ_STR("tls_key", qs_kafka_conf_error_option("ssl.key.location failed"));
    ASSERT_EQ_STR("addr", qs_kafka_conf_error_option("Invalid value \"x\" for bootstrap.servers"));
}

TEST(refused_logins_name_the_option_and_librdkafkas_scram_nonce_defect)
{
    /* librdkafka before 2.6.1 repeats its nonce in SCRAM logins; PLAIN is unaffected. */
    ASSERT(qs_kafka_scram_nonce_repeated(0x020002ff, "SCRAM-SHA-256"));
    ASSERT(qs_kafka_scram_nonce_repeated(0x020600ff, "SCRAM-SHA-512"));
    ASSERT(!qs_kafka_scram_nonce_repeated(0x020601ff, "SCRAM-SHA-512"));
    ASSERT(!qs_kafka_scram_nonce_repeated(0x021000ff, "SCRAM-SHA-256"));
    ASSERT(!qs_kafka_scram_nonce_repeated(0x020002ff, "PLAIN"));
    ASSERT(!qs_kafka_scram_nonce_repeated(0x020002ff, NULL));

    qs_kafka_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("kafka://k/?addr=h&user=carol&password=hunter2&"
                              "sasl_mechanism=SCRAM-SHA-256",
                              &s, &err));
    const char *invalid = "sasl_plaintext://h:9092/bootstrap: SASL authentication error: "
                          "Authentication failed during authentication due to invalid "
                          "credentials with SASL mechanism SCRAM-SHA-256";
    char *m = qs_kafka_login_error(&s, invalid, 0x021000ff, "2.16.0");
    ASSERT(strstr(m, "MERCURE_TRANSPORT_URL:1: transport kafka: password: the brokers refused "
                     "user \"carol\" (SASL SCRAM-SHA-256, password ****): sasl_plaintext://"));
    ASSERT(!strstr(m, "hunter2") && !strstr(m, "note:"));
    free(m);
    m = qs_kafka_login_error(&s, invalid, 0x020002ff, "2.0.2");
    ASSERT(strstr(m, "transport kafka: password: the brokers refused user \"carol\""));
    ASSERT(strstr(m, "note: librdkafka 2.0.2 repeats its nonce in SCRAM logins"));
    ASSERT(strstr(m, "librdkafka 2.6.1 or later, or sasl_mechanism PLAIN over tls"));
    ASSERT(!strstr(m, "hunter2"));
    free(m);
    /* A mechanism the brokers do not offer is about sasl_mechanism, whatever librdkafka. */
    m = qs_kafka_login_error(&s,
                             "SASL SCRAM-SHA-256 mechanism handshake failed: Broker: Unsupported "
                             "SASL mechanism: broker's supported mechanisms: PLAIN",
                             0x020002ff, "2.0.2");
    ASSERT(strstr(m, "transport kafka: sasl_mechanism: the brokers do not offer SASL "
                     "SCRAM-SHA-256 (user \"carol\", password ****): "));
    ASSERT(!strstr(m, "hunter2") && !strstr(m, "note:"));
    free(m);
    qs_kafka_settings_free(&s);
    ASSERT_EQ_INT(0, load_url("kafka://k/?addr=h&user=alice&password=hunter2", &s, &err));
    m = qs_kafka_login_error(&s, invalid, 0x020002ff, "2.0.2");
    ASSERT(strstr(m, "(SASL PLAIN, password ****)") && !strstr(m, "note:"));
    free(m);
    qs_kafka_settings_free(&s);
}

TEST(messages_are_updates_when_record_and_header_agree)
{
    qs_update *u = qs_update_new();
    qs_update_set_id(u, "urn:uuid:1", 10);
    qs_update_add_topic(u, "urn:t", 5);
    qs_update_set_data(u, "hello", 5);
    qs_buf rec = QS_BUF_INIT;
    qs_record_encode(u, &rec);
    qs_update_unref(u);
    qs_update *got = qs_kafka_message_update(rec.p, rec.len, "urn:uuid:1", 10, 41);
    ASSERT(got != NULL);
    ASSERT_EQ_INT(42, got->seq);
    ASSERT_EQ_STR("urn:uuid:1", got->id);
    ASSERT(got->frame != NULL);
    qs_update_unref(got);
    ASSERT(qs_kafka_message_update(rec.p, rec.len, "urn:uuid:2", 10, 0) == NULL);
    ASSERT(qs_kafka_message_update(rec.p, rec.len, NULL, 0, 0) == NULL);
    ASSERT(qs_kafka_message_update(rec.p, rec.len - 1, "urn:uuid:1", 10, 0) == NULL);
    ASSERT(qs_kafka_message_update("plain text", 10, "urn:uuid:1", 10, 0) == NULL);
    qs_buf_free(&rec);
}

TEST(index_finds_every_occurrence_earliest_first_and_prunes)
{
    qs_kafka_index x;
    qs_kafka_index_init(&x);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(id, sizeof(id), "id-%d", i);
        qs_kafka_index_add(&x, id, (size_t)n, i);
    }
    qs_kafka_index_add(&x, "id-7", 4, 6000); /* a custom id used again */
    int64_t out[4];
    ASSERT_EQ_INT(2, qs_kafka_index_find(&x, "id-7", 4, out, 4));
    ASSERT_EQ_INT(7, out[0]);
    ASSERT_EQ_INT(6000, out[1]);
    ASSERT_EQ_INT(1, qs_kafka_index_find(&x, "id-4999", 7, out, 4));
    ASSERT_EQ_INT(4999, out[0]);
    ASSERT_EQ_INT(0, qs_kafka_index_find(&x, "nope", 4, out, 4));
    qs_kafka_index_prune(&x, 100);
    ASSERT_EQ_INT(1, qs_kafka_index_find(&x, "id-7", 4, out, 4));
    ASSERT_EQ_INT(6000, out[0]);
    ASSERT_EQ_INT(0, qs_kafka_index_find(&x, "id-99", 5, out, 4));
    ASSERT_EQ_INT(1, qs_kafka_index_find(&x, "id-100", 6, out, 4));
    ASSERT_EQ_INT(4901, x.count);
    qs_kafka_index_add(&x, "old", 3, 50); /* below the floor: ignored */
    ASSERT_EQ_INT(0, qs_kafka_index_find(&x, "old", 3, out, 4));
    qs_kafka_index_free(&x);
}

TEST(presence_keys_and_values_round_trip)
{
    char *node = NULL, *sub = NULL;
    char *k = qs_kafka_presence_key(QS_KAFKA_PRESENCE_ENTRY, "n1", "urn:a/b");
    ASSERT_EQ_STR("s/n1/urn:a/b", k);
    ASSERT_EQ_INT(QS_KAFKA_PRESENCE_ENTRY, qs_kafka_presence_parse_key(k, strlen(k), &node, &sub));
    ASSERT_EQ_STR("n1", node);
    ASSERT_EQ_STR("urn:a/b", sub);
    free(k);
    free(node);
    free(sub);
    ASSERT_EQ_INT(QS_KAFKA_PRESENCE_HEARTBEAT, qs_kafka_presence_parse_key("n/x", 3, &node, NULL));
    free(node);
    ASSERT_EQ_INT(QS_KAFKA_PRESENCE_NONE, qs_kafka_presence_parse_key("n/x/y", 5, &node, NULL));
    ASSERT_EQ_INT(QS_KAFKA_PRESENCE_NONE, qs_kafka_presence_parse_key("s/x", 3, &node, &sub));
    ASSERT_EQ_INT(QS_KAFKA_PRESENCE_NONE, qs_kafka_presence_parse_key("q/x", 3, &node, NULL));

    char *topics[] = {"urn:t", "bad\xff"};
    qs_presence_entry e = {.subscriber = "urn:uuid:s",
                           .topics = topics,
                           .n_topics = 2,
                           .payload = "{\"a\":1}",
                           .order = 77};
    char *json = qs_kafka_presence_encode_entry(&e);
    qs_presence_entry back;
    ASSERT_EQ_INT(0, qs_kafka_presence_decode_entry("urn:uuid:s", json, strlen(json), &back));
    ASSERT_EQ_INT(2, back.n_topics);
    ASSERT_EQ_STR("bad\xef\xbf\xbd", back.topics[1]);
    ASSERT_EQ_STR("{\"a\":1}", back.payload);
    ASSERT_EQ_INT(77, back.order);
    ASSERT(back.syntaxes == NULL && back.payloads == NULL);
    qs_presence_entry_clear(&back);
    free(json);
    /* A 1.0 subscriber's selectors keep their syntax and payload. */
    uint8_t syntaxes[] = {2, 1};
    char *payloads[] = {NULL, "{\"b\":2}"};
    e.syntaxes = syntaxes;
    e.payloads = payloads;
    json = qs_kafka_presence_encode_entry(&e);
    ASSERT_EQ_INT(0, qs_kafka_presence_decode_entry("urn:uuid:s", json, strlen(json), &back));
    ASSERT(back.syntaxes && back.syntaxes[0] == 2 && back.syntaxes[1] == 1);
    ASSERT(back.payloads && back.payloads[0] == NULL);
    ASSERT_EQ_STR("{\"b\":2}", back.payloads[1]);
    qs_presence_entry_clear(&back);
    free(json);
    ASSERT_EQ_INT(-1, qs_kafka_presence_decode_entry("s", "{\"topics\":1}", 12, &back));

    char *by = NULL;
    int64_t hb = 0;
    char *claim = qs_kafka_presence_encode_claim("n2", 12);
    ASSERT_EQ_INT(0, qs_kafka_presence_decode_claim(claim, strlen(claim), &by, &hb));
    ASSERT_EQ_STR("n2", by);
    ASSERT_EQ_INT(12, hb);
    free(by);
    free(claim);
    ASSERT_EQ_INT(-1, qs_kafka_presence_decode_claim("{\"by\":\"\"}", 9, &by, &hb));
}

/* Feeds one record to a registry. */
static void feed(qs_kafka_registry *g, const char *key, const char *value, int64_t offset,
                 uint64_t now, size_t *n_taken, char **taken_node)
{
    qs_presence_entry *taken = NULL;
    size_t n = 0;
    char *node = NULL;
    ASSERT(qs_kafka_registry_apply(g, key, strlen(key), value, value ? strlen(value) : 0, offset,
                                   now, &taken, &n, &node));
    if (n_taken)
        *n_taken = n;
    if (taken_node)
        *taken_node = node;
    else
        free(node);
    qs_presence_entries_free(taken, n);
}

static const char entry_json[] = "{\"topics\":[\"urn:t\"],\"payload\":null,\"order\":5}";

TEST(registry_lists_live_nodes_and_one_claim_wins)
{
    /* Two readers, "a" and "b", see the same records; node "x" dies. */
    qs_kafka_registry a, b;
    qs_kafka_registry_init(&a, "a", 1000);
    qs_kafka_registry_init(&b, "b", 1000);
    qs_kafka_registry *both[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        feed(both[i], "n/x", "{\"ttl\":1000}", 0, 100, NULL, NULL);
        feed(both[i], "s/x/urn:uuid:1", entry_json, 1, 100, NULL, NULL);
        feed(both[i], "n/a", "{}", 2, 100, NULL, NULL);
        feed(both[i], "n/b", "{}", 3, 100, NULL, NULL);
    }
    size_t n = 0;
    qs_presence_entry *v = qs_kafka_registry_list(&a, 500, NULL, 0, &n);
    ASSERT_EQ_INT(1, n);
    ASSERT_EQ_STR("urn:uuid:1", v[0].subscriber);
    qs_presence_entries_free(v, n);
    char **keys, **values;
    ASSERT_EQ_INT(0, qs_kafka_registry_claims(&a, 500, &keys, &values));

    /* x is silent past its TTL: not listed, and both claim it (a and b kept heartbeating). */
    feed(&a, "n/a", "{}", 4, 1050, NULL, NULL);
    feed(&a, "n/b", "{}", 5, 1050, NULL, NULL);
    feed(&b, "n/a", "{}", 4, 1050, NULL, NULL);
    feed(&b, "n/b", "{}", 5, 1050, NULL, NULL);
    v = qs_kafka_registry_list(&a, 1200, NULL, 0, &n);
    ASSERT_EQ_INT(0, n);
    qs_presence_entries_free(v, n);
    char **ka, **va, **kb, **vb;
    ASSERT_EQ_INT(1, qs_kafka_registry_claims(&a, 1200, &ka, &va));
    ASSERT_EQ_INT(1, qs_kafka_registry_claims(&b, 1200, &kb, &vb));
    ASSERT_EQ_STR("c/x", ka[0]);
    /* Not again while the claim is on its way. */
    ASSERT_EQ_INT(0, qs_kafka_registry_claims(&a, 1300, &keys, &values));

    /* The topic orders b's claim first: b takes the entries, a does not. */
    size_t ta = 9, tb = 9;
    char *na = NULL, *nb = NULL;
    feed(&a, kb[0], vb[0], 6, 1250, &ta, &na);
    feed(&b, kb[0], vb[0], 6, 1250, &tb, &nb);
    ASSERT_EQ_INT(0, ta);
    ASSERT(na == NULL);
    ASSERT_EQ_INT(1, tb);
    ASSERT_EQ_STR("x", nb);
    free(nb);
    feed(&a, ka[0], va[0], 7, 1260, &ta, &na); /* late: b holds the claim and lives */
    feed(&b, ka[0], va[0], 7, 1260, &tb, NULL);
    ASSERT_EQ_INT(0, ta);
    ASSERT(na == NULL);
    ASSERT_EQ_INT(0, tb);

    /* b writes the tombstones; x is forgotten everywhere. */
    char **tomb;
    size_t k = qs_kafka_registry_tombstones("x", &(qs_presence_entry){.subscriber = "urn:uuid:1"},
                                            1, &tomb);
    ASSERT_EQ_INT(3, k);
    for (size_t i = 0; i < k; i++) {
        feed(&a, tomb[i], NULL, 8 + (int64_t)i, 1300, NULL, NULL);
        feed(&b, tomb[i], NULL, 8 + (int64_t)i, 1300, NULL, NULL);
        free(tomb[i]);
    }
    free(tomb);
    ASSERT(qs_strmap_get(&a.nodes, "x", 1) == NULL);
    ASSERT(qs_strmap_get(&b.nodes, "x", 1) == NULL);
    /* Much later b is silent too: a claims it, and only it. */
    ASSERT_EQ_INT(1, qs_kafka_registry_claims(&a, 5000, &keys, &values));
    ASSERT_EQ_STR("c/b", keys[0]);
    free(keys[0]);
    free(values[0]);
    free(keys);
    free(values);
    free(ka[0]);
    free(va[0]);
    free(kb[0]);
    free(vb[0]);
    free(ka);
    free(va);
    free(kb);
    free(vb);
    qs_kafka_registry_free(&a);
    qs_kafka_registry_free(&b);
}

TEST(a_heartbeat_voids_a_claim_and_a_node_taken_while_alive_knows)
{
    qs_kafka_registry g;
    qs_kafka_registry_init(&g, "me", 1000);
    feed(&g, "n/me", "{}", 0, 0, NULL, NULL);
    feed(&g, "s/me/urn:uuid:9", entry_json, 1, 0, NULL, NULL);
    /* Another node claimed this one on heartbeat 0 (it stalled): it must write again. */
    feed(&g, "c/me", "{\"by\":\"other\",\"hb\":0}", 2, 10, NULL, NULL);
    ASSERT(g.self_taken);
    /* A claim on an earlier heartbeat is void once the node spoke again. */
    qs_kafka_registry h;
    qs_kafka_registry_init(&h, "r", 1000);
    feed(&h, "n/x", "{}", 0, 0, NULL, NULL);
    feed(&h, "s/x/urn:uuid:1", entry_json, 1, 0, NULL, NULL);
    feed(&h, "n/x", "{}", 5, 2000, NULL, NULL);
    size_t n = 9;
    char *node = NULL;
    feed(&h, "c/x", "{\"by\":\"r\",\"hb\":0}", 6, 2100, &n, &node);
    ASSERT_EQ_INT(0, n);
    ASSERT(node == NULL);
    /* While the reader was deaf, nobody expires. */
    qs_kafka_registry_touch_all(&h, 9000);
    size_t listed = 0;
    qs_presence_entry *v = qs_kafka_registry_list(&h, 9500, NULL, 0, &listed);
    ASSERT_EQ_INT(1, listed);
    qs_presence_entries_free(v, listed);
    qs_kafka_registry_free(&g);
    qs_kafka_registry_free(&h);
}
