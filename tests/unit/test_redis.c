/* SPDX-License-Identifier: MIT
 * test_redis.c - the pure pieces of the Redis transport: options from a URL and from a
 * block, stream ids, stream entries as updates, presence entries as JSON and the merged,
 * ordered registry. (The transport against a real redis-server is covered by
 * tests/integration/test_redis.py.)
 */
#include <hiredis/hiredis.h>

#include "harness.h"
#include "record.h"
#include "transport/redis.h"
#include "transport/redis_presence.h"

static int load_url(const char *url, qs_redis_settings *s, char **err)
{
    qs_config_transport cfg = {.url = (char *)url, .source = "MERCURE_TRANSPORT_URL", .line = 1};
    return qs_redis_settings_load(&cfg, s, err);
}

/* A `transport redis { … }` block: pairs of key, value (value NULL = bare flag), one per
 * line starting at line 10. */
static int load_block(const char *const *kv, size_t n, qs_redis_settings *s, char **err)
{
    qs_config_option opts[16];
    char *values[16];
    for (size_t i = 0; i < n; i++) {
        values[i] = (char *)kv[2 * i + 1];
        opts[i] = (qs_config_option){(char *)kv[2 * i], &values[i], values[i] ? 1 : 0, "Caddyfile",
                                     (int)(10 + i)};
    }
    qs_config_transport cfg = {
        .name = "redis", .options = opts, .n_options = n, .source = "Caddyfile", .line = 9};
    return qs_redis_settings_load(&cfg, s, err);
}

/* err is read after rc is computed: the call's arguments are evaluated in any order. */
static void expect_error(int rc, char **err, const char *const *needles, size_t n)
{
    ASSERT_EQ_INT(-1, rc);
    ASSERT(*err != NULL);
    for (size_t i = 0; i < n; i++)
        if (!strstr(*err, needles[i]))
            qs_test_fail(__FILE__, __LINE__, "\"%s\" not in \"%s\"", needles[i], *err);
    free(*err);
    *err = NULL;
}

TEST(url_with_credentials_stream_and_options)
{
    qs_redis_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("redis://alice:s%40cret@10.0.0.5:6380/mercure-ha?tls=1&"
                              "max_len_approx=5000&tls_ca=/etc/ca.pem&tls_insecure=0&"
                              "presence_ttl=3s&timeout=750ms",
                              &s, &err));
    ASSERT_EQ_STR("10.0.0.5", s.host);
    ASSERT_EQ_INT(6380, s.port);
    ASSERT_EQ_STR("alice", s.username);
    ASSERT_EQ_STR("s@cret", s.password);
    ASSERT_EQ_STR("mercure-ha", s.stream);
    ASSERT_EQ_INT(5000, s.max_length);
    ASSERT(s.tls);
    ASSERT(!s.tls_insecure);
    ASSERT_EQ_STR("/etc/ca.pem", s.tls_ca);
    ASSERT_EQ_INT(3000, s.presence_ttl_ms);
    ASSERT_EQ_INT(750, s.timeout_ms);
    qs_redis_settings_free(&s);
}

TEST(url_defaults_and_rediss)
{
    qs_redis_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("redis://", &s, &err));
    ASSERT_EQ_STR("127.0.0.1", s.host);
    ASSERT_EQ_INT(6379, s.port);
    ASSERT_EQ_STR("mercure", s.stream);
    ASSERT(s.username == NULL && s.password == NULL);
    ASSERT_EQ_INT(QS_REDIS_DEFAULT_MAX_LENGTH, s.max_length);
    ASSERT_EQ_INT(15000, s.presence_ttl_ms);
    ASSERT(!s.tls);
    qs_redis_settings_free(&s);

    ASSERT_EQ_INT(0, load_url("rediss://:only-password@[::1]/s?max_len_approx=0", &s, &err));
    ASSERT(s.tls);
    ASSERT_EQ_STR("::1", s.host);
    ASSERT(s.username == NULL);
    ASSERT_EQ_STR("only-password", s.password);
    ASSERT_EQ_INT(0, s.max_length); /* unbounded */
    qs_redis_settings_free(&s);
}

TEST(block_with_url_then_overrides)
{
    static const char *const kv[] = {
        "url",        "redis://bob:pw@cache:7000/from-url?max_len_approx=10",
        "stream",     "from-block",
        "max_length", "20",
        "username",   "carol",
        "password",   "pw2",
        "tls",        NULL,
        "tls_ca",     "/ca.pem",
    };
    qs_redis_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_block(kv, 7, &s, &err));
    ASSERT_EQ_STR("cache", s.host);
    ASSERT_EQ_INT(7000, s.port);
    ASSERT_EQ_STR("from-block", s.stream);
    ASSERT_EQ_INT(20, s.max_length);
    ASSERT_EQ_STR("carol", s.username);
    ASSERT_EQ_STR("pw2", s.password);
    ASSERT(s.tls);
    ASSERT_EQ_STR("/ca.pem", s.tls_ca);
    qs_redis_settings_free(&s);
}

TEST(block_addresses)
{
    static const char *const cases[][3] = {
        {"redis.local:6400", "redis.local", "6400"},
        {"redis.local", "redis.local", "6379"},
        {"[2001:db8::1]:7001", "2001:db8::1", "7001"},
        {"[::1]", "::1", "6379"},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        const char *kv[] = {"address", cases[i][0]};
        qs_redis_settings s;
        char *err = NULL;
        ASSERT_EQ_INT(0, load_block(kv, 1, &s, &err));
        ASSERT_EQ_STR(cases[i][1], s.host);
        ASSERT_EQ_INT(atoi(cases[i][2]), s.port);
        qs_redis_settings_free(&s);
    }
    static const char *const bad[] = {"",         "host:", "host:0", "host:65536", "host:12x",
                                      "::1:6379", "[::1",  "[]:1",   "[::1]x"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        const char *kv[] = {"address", bad[i]};
        qs_redis_settings s;
        char *err = NULL;
        const char *needles[] = {"Caddyfile:10", "transport redis", "address"};
        expect_error(load_block(kv, 1, &s, &err), &err, needles, 3);
    }
}

TEST(errors_name_the_option_the_value_and_the_line)
{
    qs_redis_settings s;
    char *err = NULL;
    const char *n1[] = {"MERCURE_TRANSPORT_URL:1", "max_len_approx", "\"lots\""};
    expect_error(load_url("redis://h/s?max_len_approx=lots", &s, &err), &err, n1, 3);
    const char *n2[] = {"MERCURE_TRANSPORT_URL:1", "unknown option \"db\""};
    expect_error(load_url("redis://h/s?db=2", &s, &err), &err, n2, 2);
    const char *n3[] = {"tls", "\"maybe\""};
    expect_error(load_url("redis://h/s?tls=maybe", &s, &err), &err, n3, 2);
    const char *n4[] = {"presence_ttl", "\"500ms\""};
    expect_error(load_url("redis://h/s?presence_ttl=500ms", &s, &err), &err, n4, 2);
    const char *n5[] = {"TLS options need TLS"};
    expect_error(load_url("redis://h/s?tls_ca=/x.pem", &s, &err), &err, n5, 1);
    const char *n6[] = {"without a password"};
    expect_error(load_url("redis://alice@h/s", &s, &err), &err, n6, 1);

    const char *kv[] = {"stream", "s", "max_length", "-1"};
    const char *n7[] = {"Caddyfile:11", "max_length", "\"-1\""};
    expect_error(load_block(kv, 2, &s, &err), &err, n7, 3);
    const char *kv2[] = {"stream", "s", "database", "1"};
    const char *n8[] = {"Caddyfile:11", "unknown option \"database\""};
    expect_error(load_block(kv2, 2, &s, &err), &err, n8, 2);
    const char *kv3[] = {"url", "redis://h/s?nope=1"};
    const char *n9[] = {"Caddyfile:10", "unknown option \"nope\""};
    expect_error(load_block(kv3, 1, &s, &err), &err, n9, 2);
    const char *kv4[] = {"url", "http://h/s"};
    const char *n10[] = {"redis:// or rediss://"};
    expect_error(load_block(kv4, 1, &s, &err), &err, n10, 1);
    const char *kv5[] = {"tls", NULL, "tls_cert", "/c.pem"};
    const char *n11[] = {"tls_cert and tls_key"};
    expect_error(load_block(kv5, 2, &s, &err), &err, n11, 1);
}

TEST(stream_ids)
{
    uint64_t ms = 9, seq = 9;
    ASSERT(qs_redis_parse_stream_id("42-0", 4, &ms, &seq));
    ASSERT_EQ_INT(42, ms);
    ASSERT_EQ_INT(0, seq);
    ASSERT(qs_redis_parse_stream_id("18446744073709551615-7", 22, &ms, &seq));
    ASSERT(ms == UINT64_MAX);
    ASSERT_EQ_INT(7, seq);
    static const char *const bad[] = {
        "", "42", "-1", "42-", "4a-0", "1-2-3", "18446744073709551616-0"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++)
        ASSERT(!qs_redis_parse_stream_id(bad[i], strlen(bad[i]), &ms, &seq));
}

/* Parses RESP bytes with hiredis' reader, as the transport does. */
static redisReply *parse_resp(const char *bytes, size_t len)
{
    redisReader *rd = redisReaderCreate();
    ASSERT(redisReaderFeed(rd, bytes, len) == REDIS_OK);
    void *reply = NULL;
    ASSERT(redisReaderGetReply(rd, &reply) == REDIS_OK);
    ASSERT(reply != NULL);
    redisReaderFree(rd);
    return reply;
}

static void entry_resp(qs_buf *out, const char *id, const char *field, const qs_buf *value)
{
    qs_buf_appendf(out, "*2\r\n$%zu\r\n%s\r\n*2\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(id), id,
                   strlen(field), field, value->len);
    qs_buf_append(out, value->p, value->len);
    qs_buf_append_str(out, "\r\n");
}

TEST(stream_entries_become_updates)
{
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, "https://example.com/books/1", 27);
    qs_update_add_topic(u, "urn:alt", 7);
    qs_update_set_id(u, "custom-id", 9);
    qs_update_set_type(u, "created", 7);
    qs_update_set_data(u, "line1\nline2", 11);
    u->is_private = true;
    u->retry = 1500;
    qs_update_finalize(u);
    qs_buf rec = QS_BUF_INIT, resp = QS_BUF_INIT;
    qs_record_encode(u, &rec);

    entry_resp(&resp, "12345-0", "r", &rec);
    redisReply *r = parse_resp(resp.p, resp.len);
    uint64_t seq = 0;
    qs_update *got = qs_redis_entry_update(r, &seq);
    ASSERT(got != NULL);
    ASSERT_EQ_INT(12345, seq);
    ASSERT_EQ_INT(12345, got->seq);
    ASSERT_EQ_STR("custom-id", got->id);
    ASSERT_EQ_STR("created", got->type);
    ASSERT_EQ_INT(2, got->n_topics);
    ASSERT_EQ_STR("urn:alt", got->topics[1]);
    ASSERT(got->is_private);
    ASSERT_EQ_INT(1500, got->retry);
    ASSERT_EQ_MEM(u->frame->data, u->frame->len, got->frame->data, got->frame->len);
    qs_update_unref(got);
    freeReplyObject(r);

    /* Not ours: another field, a non-zero sequence part, a corrupt record. */
    qs_buf_reset(&resp);
    entry_resp(&resp, "7-0", "x", &rec);
    r = parse_resp(resp.p, resp.len);
    ASSERT(qs_redis_entry_update(r, &seq) == NULL);
    ASSERT_EQ_INT(7, seq); /* the position is still known */
    freeReplyObject(r);
    qs_buf_reset(&resp);
    entry_resp(&resp, "8-1", "r", &rec);
    r = parse_resp(resp.p, resp.len);
    ASSERT(qs_redis_entry_update(r, &seq) == NULL);
    freeReplyObject(r);
    qs_buf bad = QS_BUF_INIT;
    qs_buf_append(&bad, rec.p, rec.len - 3);
    qs_buf_reset(&resp);
    entry_resp(&resp, "9-0", "r", &bad);
    r = parse_resp(resp.p, resp.len);
    ASSERT(qs_redis_entry_update(r, &seq) == NULL);
    freeReplyObject(r);
    r = parse_resp(":5\r\n", 4);
    ASSERT(qs_redis_entry_update(r, &seq) == NULL);
    freeReplyObject(r);

    qs_buf_free(&bad);
    qs_buf_free(&rec);
    qs_buf_free(&resp);
    qs_update_unref(u);
}

TEST(presence_entries_round_trip)
{
    char *topics[] = {"https://example.com/{id}", "urn:a\xff"
                                                  "b"};
    qs_presence_entry e = {.subscriber = "urn:uuid:0f3c5a7e-1111-4222-8333-944455556666",
                           .topics = topics,
                           .n_topics = 2,
                           .payload = "{\"user\":\"u1\",\"n\":[1,2.5,null]}",
                           .order = 1732572000123456ull};
    char *json = qs_redis_presence_encode(&e);
    ASSERT_EQ_STR("{\"topics\":[\"https://example.com/{id}\",\"urn:a\xef\xbf\xbd"
                  "b\"],"
                  "\"payload\":{\"user\":\"u1\",\"n\":[1,2.5,null]},\"order\":1732572000123456}",
                  json);
    qs_presence_entry d;
    ASSERT_EQ_INT(0, qs_redis_presence_decode(e.subscriber, json, strlen(json), &d));
    ASSERT_EQ_STR(e.subscriber, d.subscriber);
    ASSERT_EQ_INT(2, d.n_topics);
    ASSERT_EQ_STR("https://example.com/{id}", d.topics[0]);
    ASSERT_EQ_STR(e.payload, d.payload);
    ASSERT(d.order == e.order);
    qs_presence_entry_clear(&d);
    free(json);

    e.payload = NULL;
    e.n_topics = 1;
    json = qs_redis_presence_encode(&e);
    ASSERT_EQ_INT(0, qs_redis_presence_decode("s", json, strlen(json), &d));
    ASSERT(d.payload == NULL);
    qs_presence_entry_clear(&d);
    free(json);

    static const char *const bad[] = {"",
                                      "[]",
                                      "{\"topics\":[1],\"order\":1}",
                                      "{\"topics\":[],\"order\":-1}",
                                      "{\"order\":1}",
                                      "{\"topics\":[\"a\"]}"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++)
        ASSERT_EQ_INT(-1, qs_redis_presence_decode("s", bad[i], strlen(bad[i]), &d));
}

static void bulk(qs_buf *b, const char *s)
{
    qs_buf_appendf(b, "$%zu\r\n%s\r\n", strlen(s), s);
}

TEST(presence_merge_orders_nodes_and_prefers_the_local_copy)
{
    /* Two other nodes, and this node ("self") whose Redis copy is stale. */
    qs_buf resp = QS_BUF_INIT;
    qs_buf_append_str(&resp, "*6\r\n");
    bulk(&resp, "node-b");
    qs_buf_append_str(&resp, "*4\r\n");
    bulk(&resp, "sub-b1");
    bulk(&resp, "{\"topics\":[\"t1\"],\"payload\":null,\"order\":30}");
    bulk(&resp, "sub-b2");
    bulk(&resp, "{\"topics\":[\"t2\"],\"payload\":{\"u\":1},\"order\":10}");
    bulk(&resp, "self");
    qs_buf_append_str(&resp, "*2\r\n");
    bulk(&resp, "stale");
    bulk(&resp, "{\"topics\":[\"t\"],\"payload\":null,\"order\":1}");
    bulk(&resp, "node-a");
    qs_buf_append_str(&resp, "*4\r\n");
    bulk(&resp, "sub-a1");
    bulk(&resp, "{\"topics\":[\"t3\"],\"payload\":null,\"order\":30}");
    bulk(&resp, "broken");
    bulk(&resp, "not json");
    redisReply *r = parse_resp(resp.p, resp.len);

    char *lt[] = {"t-local"};
    qs_presence_entry local = {.subscriber = "sub-self", .topics = lt, .n_topics = 1, .order = 20};
    qs_presence_entry *out = NULL;
    size_t n = 0;
    ASSERT_EQ_INT(0, qs_redis_presence_merge(r, "self", &local, 1, &out, &n));
    ASSERT_EQ_INT(4, n);
    ASSERT_EQ_STR("sub-b2", out[0].subscriber);
    ASSERT_EQ_STR("{\"u\":1}", out[0].payload);
    ASSERT_EQ_STR("sub-self", out[1].subscriber);
    ASSERT_EQ_STR("sub-a1", out[2].subscriber); /* order 30: node-a before node-b */
    ASSERT_EQ_STR("sub-b1", out[3].subscriber);
    qs_presence_entries_free(out, n);
    freeReplyObject(r);

    r = parse_resp("*1\r\n$1\r\nx\r\n", 11);
    ASSERT_EQ_INT(-1, qs_redis_presence_merge(r, "self", NULL, 0, &out, &n));
    freeReplyObject(r);
    r = parse_resp("*0\r\n", 4);
    ASSERT_EQ_INT(0, qs_redis_presence_merge(r, "self", NULL, 0, &out, &n));
    ASSERT_EQ_INT(0, n);
    qs_presence_entries_free(out, n);
    freeReplyObject(r);
    qs_buf_free(&resp);
}
