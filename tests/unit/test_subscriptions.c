/* SPDX-License-Identifier: MIT
 * test_subscriptions.c - subscription documents byte for byte as the reference writes them
 * (expected bytes produced by Go's json.MarshalIndent of the reference's struct), and the
 * single-node registry of active subscriptions.
 */
#include <uv.h>

#include "harness.h"
#include "presence.h"
#include "subscriptions.h"

static const struct {
    const char *topic, *subscriber, *last_event_id, *payload;
    bool active, context;
    const char *expected;
} docs[] = {
    {"https://example.com/books/{id}", "urn:uuid:0d4b4a7b-7a1c-4c8e-9f0a-1c2d3e4f5a6b", "", "",
     true, true,
     "{\n  \"@context\": \"https://mercure.rocks/\",\n  \"id\": "
     "\"/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/"
     "urn%3Auuid%3A0d4b4a7b-7a1c-4c8e-9f0a-1c2d3e4f5a6b\",\n  \"type\": \"Subscription\",\n  "
     "\"subscriber\": \"urn:uuid:0d4b4a7b-7a1c-4c8e-9f0a-1c2d3e4f5a6b\",\n  \"topic\": "
     "\"https://example.com/books/{id}\",\n  \"active\": true\n}"},
    {"<b>&amp; \303\251 \342\230\203 a b+c", "urn:uuid:00000000-0000-4000-8000-000000000000", "",
     "{\"user\":\"https://example.com/users/"
     "dunglas\",\"remoteAddr\":\"127.0.0.1\",\"n\":[1,2.5,1e21],\"o\":{}}",
     false, true,
     "{\n  \"@context\": \"https://mercure.rocks/\",\n  \"id\": "
     "\"/.well-known/mercure/subscriptions/%3Cb%3E%26amp%3B+%C3%A9+%E2%98%83+a+b%2Bc/"
     "urn%3Auuid%3A00000000-0000-4000-8000-000000000000\",\n  \"type\": \"Subscription\",\n  "
     "\"subscriber\": \"urn:uuid:00000000-0000-4000-8000-000000000000\",\n  \"topic\": "
     "\"\\u003cb\\u003e\\u0026amp; \303\251 \342\230\203 a b+c\",\n  \"active\": false,\n  "
     "\"payload\": {\n    \"n\": [\n      1,\n      2.5,\n      1e+21\n    ],\n    \"o\": {},\n    "
     "\"remoteAddr\": \"127.0.0.1\",\n    \"user\": \"https://example.com/users/dunglas\"\n  }\n}"},
    {"x", "urn:uuid:11111111-1111-4111-8111-111111111111", "urn:uuid:01a2-last",
     "\"just a string\"", true, true,
     "{\n  \"@context\": \"https://mercure.rocks/\",\n  \"id\": "
     "\"/.well-known/mercure/subscriptions/x/"
     "urn%3Auuid%3A11111111-1111-4111-8111-111111111111\",\n  \"type\": \"Subscription\",\n  "
     "\"subscriber\": \"urn:uuid:11111111-1111-4111-8111-111111111111\",\n  \"topic\": \"x\",\n  "
     "\"active\": true,\n  \"lastEventID\": \"urn:uuid:01a2-last\",\n  \"payload\": \"just a "
     "string\"\n}"},
    {"/.well-known/mercure/subscriptions{/topic}{/subscriber}",
     "urn:uuid:22222222-2222-4222-8222-222222222222", "", "null", true, false,
     "{\n  \"id\": "
     "\"/.well-known/mercure/subscriptions/"
     "%2F.well-known%2Fmercure%2Fsubscriptions%7B%2Ftopic%7D%7B%2Fsubscriber%7D/"
     "urn%3Auuid%3A22222222-2222-4222-8222-222222222222\",\n  \"type\": \"Subscription\",\n  "
     "\"subscriber\": \"urn:uuid:22222222-2222-4222-8222-222222222222\",\n  \"topic\": "
     "\"/.well-known/mercure/subscriptions{/topic}{/subscriber}\",\n  \"active\": true\n}"},
};

TEST(documents_match_go_marshal_indent)
{
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *payload =
            *docs[i].payload ? json_loads(docs[i].payload, JSON_DECODE_ANY, NULL) : NULL;
        if (payload && json_is_null(payload)) {
            json_decref(payload); /* Go omits a nil payload */
            payload = NULL;
        }
        qs_buf out = QS_BUF_INIT;
        qs_subscription_json(&out, docs[i].topic, strlen(docs[i].topic), docs[i].subscriber,
                             docs[i].active, *docs[i].last_event_id ? docs[i].last_event_id : NULL,
                             payload, docs[i].context, 0);
        ASSERT_EQ_MEM(docs[i].expected, strlen(docs[i].expected), out.p, out.len);
        qs_buf_free(&out);
        json_decref(payload);
    }
}

TEST(registry_keeps_registration_order_and_forgets)
{
    qs_presence *p = qs_presence_new();
    char *topics_a[] = {"t1", "t2"}, *topics_b[] = {"t3"};
    qs_presence_entry a = {"urn:uuid:a", topics_a, 2, "{\"u\":1}", 0, NULL, NULL};
    qs_presence_entry b = {"urn:uuid:b", topics_b, 1, NULL, 0, NULL, NULL};
    qs_presence_add(p, &a);
    qs_presence_add(p, &b);
    size_t n;
    qs_presence_entry *v = qs_presence_snapshot(p, &n);
    ASSERT_EQ_INT(2, n);
    ASSERT_EQ_STR("urn:uuid:a", v[0].subscriber);
    ASSERT_EQ_INT(2, v[0].n_topics);
    ASSERT_EQ_STR("t2", v[0].topics[1]);
    ASSERT_EQ_STR("{\"u\":1}", v[0].payload);
    ASSERT_EQ_STR("urn:uuid:b", v[1].subscriber);
    ASSERT(v[1].payload == NULL);
    qs_presence_entries_free(v, n);
    qs_presence_remove(p, "urn:uuid:a");
    qs_presence_remove(p, "urn:uuid:unknown");
    ASSERT_EQ_INT(1, qs_presence_count(p));
    qs_presence_free(p);
}

static void churn(void *arg)
{
    qs_presence *p = arg;
    char id[64];
    char *topics[] = {"t"};
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "urn:uuid:%p-%d", (void *)&id, i);
        qs_presence_entry e = {id, topics, 1, NULL, 0, NULL, NULL};
        qs_presence_add(p, &e);
        if (i % 2)
            qs_presence_remove(p, id);
    }
}

TEST(registry_is_safe_from_several_threads)
{
    qs_presence *p = qs_presence_new();
    uv_thread_t t[4];
    for (int i = 0; i < 4; i++)
        uv_thread_create(&t[i], churn, p);
    for (int i = 0; i < 4; i++)
        uv_thread_join(&t[i]);
    ASSERT_EQ_INT(4 * 1000, qs_presence_count(p));
    qs_presence_free(p);
}
