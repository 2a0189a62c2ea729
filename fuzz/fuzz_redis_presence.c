/* SPDX-License-Identifier: MIT
 * fuzz_redis_presence.c - libFuzzer target for presence entries as stored in Redis
 * (qs_redis_presence_decode and qs_redis_presence_encode).
 *
 * Input: the JSON of one entry, as a node's hash holds it. Checks:
 *  1. decoding succeeds exactly for a JSON object with a "topics" array of strings and a
 *     non-negative integer "order" (checked against jansson directly); a failure leaves the
 *     entry zeroed; a success holds the subscriber, every topic, the payload as compact
 *     JSON (NULL when absent or null) and the order;
 *  2. a decoded entry re-encodes to JSON that decodes to the same entry, and that encoding
 *     is a fixed point (the second entry encodes to the same text);
 *  3. the same bytes as an entry written by this node: topics are the input's lines (any
 *     bytes: invalid UTF-8 is replaced, valid text kept as is), the payload is the first
 *     line (kept when it is JSON other than null, dropped otherwise), the order comes from the
 * input; it encodes to JSON that decodes back to that entry.
 */
#include <jansson.h>

#include "presence_check.h"
#include "transport/redis.h"

#define SUBSCRIBER "urn:uuid:0190b0a4-2d3e-7c1d-9f00-123456789abc"
#define MAX_TOPICS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What decoding should accept, from jansson's own view of the text. */
static bool is_presence_json(const char *in, size_t size)
{
    json_t *o = json_loadb(in, size, 0, NULL);
    json_t *topics = json_object_get(o, "topics"), *order = json_object_get(o, "order");
    bool ok = json_is_object(o) && json_is_array(topics) && json_is_integer(order) &&
              json_integer_value(order) >= 0;
    for (size_t i = 0; ok && i < json_array_size(topics); i++)
        ok = json_is_string(json_array_get(topics, i));
    json_decref(o);
    return ok;
}

static void check_fields(const char *in, size_t size, const qs_presence_entry *e)
{
    json_t *o = json_loadb(in, size, 0, NULL);
    CHECK(o != NULL);
    json_t *topics = json_object_get(o, "topics"), *payload = json_object_get(o, "payload");
    CHECK(strcmp(e->subscriber, SUBSCRIBER) == 0);
    CHECK(e->n_topics == json_array_size(topics));
    for (size_t i = 0; i < e->n_topics; i++) {
        json_t *t = json_array_get(topics, i);
        CHECK(strlen(e->topics[i]) == json_string_length(t));
        CHECK(memcmp(e->topics[i], json_string_value(t), json_string_length(t)) == 0);
    }
    if (!payload || json_is_null(payload)) {
        CHECK(e->payload == NULL);
    } else {
        char *want = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        CHECK(want && e->payload && strcmp(want, e->payload) == 0);
        free(want);
    }
    CHECK(e->order == (uint64_t)json_integer_value(json_object_get(o, "order")));
    json_decref(o);
}

/* encode(e) decodes to an entry; returns the JSON (caller frees) and that entry. */
static char *encode_decode(const qs_presence_entry *e, qs_presence_entry *back)
{
    char *json = qs_redis_presence_encode(e);
    CHECK(json != NULL);
    json_t *o = json_loads(json, 0, NULL);
    CHECK(json_is_object(o) && json_object_size(o) == 3);
    json_decref(o);
    CHECK(qs_redis_presence_decode(e->subscriber, json, strlen(json), back) == 0);
    presence_check_shape(back);
    return json;
}

static void check_decode(const char *in, size_t size)
{
    qs_presence_entry e;
    memset(&e, 0xa5, sizeof(e)); /* decode must overwrite everything */
    int rc = qs_redis_presence_decode(SUBSCRIBER, in, size, &e);
    CHECK(rc == 0 || rc == -1);
    CHECK((rc == 0) == is_presence_json(in, size));
    if (rc) {
        static const qs_presence_entry zero;
        CHECK(memcmp(&e, &zero, sizeof(e)) == 0);
        return;
    }
    presence_check_shape(&e);
    check_fields(in, size, &e);

    qs_presence_entry back, again;
    char *json = encode_decode(&e, &back);
    CHECK(presence_equal(&e, &back));
    char *json2 = encode_decode(&back, &again);
    CHECK(strcmp(json, json2) == 0 && presence_equal(&back, &again));
    free(json2);
    free(json);
    qs_presence_entry_clear(&again);
    qs_presence_entry_clear(&back);
    qs_presence_entry_clear(&e);
}

static bool valid_utf8(const char *s)
{
    json_t *j = json_string(s); /* NULL when s is not UTF-8 */
    json_decref(j);
    return j != NULL;
}

static void check_encode(const char *in, size_t size)
{
    char *copy = qs_xstrndup(in, size);
    char *topics[MAX_TOPICS];
    size_t n = 0;
    for (char *p = copy; n < MAX_TOPICS;) {
        topics[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    uint64_t order = 0;
    memcpy(&order, in, size < sizeof(order) ? size : sizeof(order));
    qs_presence_entry e = {.subscriber = SUBSCRIBER,
                           .topics = topics,
                           .n_topics = size ? n : 0,
                           .payload = topics[0][0] ? topics[0] : NULL,
                           .order = order & INT64_MAX};
    qs_presence_entry back;
    char *json = encode_decode(&e, &back);
    CHECK(strcmp(back.subscriber, e.subscriber) == 0 && back.order == e.order);
    CHECK(back.n_topics == e.n_topics);
    for (size_t i = 0; i < e.n_topics; i++) {
        CHECK(valid_utf8(back.topics[i]));
        if (valid_utf8(e.topics[i]))
            CHECK(strcmp(back.topics[i], e.topics[i]) == 0);
        else
            CHECK(strstr(back.topics[i], "\xef\xbf\xbd") != NULL);
    }
    json_t *p = e.payload ? json_loads(e.payload, JSON_DECODE_ANY, NULL) : NULL;
    if (p && !json_is_null(p)) {
        char *want = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
        CHECK(back.payload && strcmp(back.payload, want) == 0);
        free(want);
    } else {
        CHECK(back.payload == NULL);
    }
    json_decref(p);
    free(json);
    qs_presence_entry_clear(&back);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = size ? (const char *)data : "";
    check_decode(in, size);
    check_encode(in, size);
    return 0;
}
