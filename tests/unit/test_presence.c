/* SPDX-License-Identifier: MIT
 * test_presence.c - the single-node registry of active subscriptions: registration order,
 * replacement, removal, deep copies, and concurrent use from several threads.
 */
#include "harness.h"
#include "presence.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

/* An entry with one topic; `topic` must outlive it (the registry copies what it keeps). */
static qs_presence_entry entry(const char *subscriber, const char **topic, const char *payload)
{
    return (qs_presence_entry){.subscriber = (char *)subscriber,
                               .topics = (char **)topic,
                               .n_topics = 1,
                               .payload = (char *)payload};
}

TEST(snapshot_lists_entries_in_registration_order_as_copies)
{
    qs_presence *p = qs_presence_new();
    qs_presence_entry a = entry("urn:uuid:a", (const char *[]){"/books/1"}, NULL);
    qs_presence_add(p, &a);
    qs_presence_entry b = entry("urn:uuid:b", (const char *[]){"/books/{id}"}, "{\"user\":1}");
    qs_presence_add(p, &b);
    qs_presence_entry c = entry("urn:uuid:c", (const char *[]){"*"}, NULL);
    qs_presence_add(p, &c);
    ASSERT_EQ_INT(3, qs_presence_count(p));

    size_t n;
    qs_presence_entry *v = qs_presence_snapshot(p, &n);
    ASSERT_EQ_INT(3, n);
    ASSERT_EQ_STR("urn:uuid:a", v[0].subscriber);
    ASSERT_EQ_STR("urn:uuid:b", v[1].subscriber);
    ASSERT_EQ_STR("urn:uuid:c", v[2].subscriber);
    ASSERT_EQ_STR("/books/{id}", v[1].topics[0]);
    ASSERT_EQ_STR("{\"user\":1}", v[1].payload);
    ASSERT(v[0].payload == NULL);
    ASSERT(v[0].order < v[1].order && v[1].order < v[2].order);
    /* Copies: they outlive the registry and the caller's strings. */
    ASSERT(v[1].subscriber != b.subscriber && v[1].topics[0] != b.topics[0]);
    qs_presence_free(p);
    ASSERT_EQ_STR("urn:uuid:c", v[2].subscriber);
    qs_presence_entries_free(v, n);
}

TEST(re_adding_replaces_and_removing_forgets)
{
    qs_presence *p = qs_presence_new();
    qs_presence_entry a = entry("urn:uuid:a", (const char *[]){"/one"}, NULL);
    qs_presence_add(p, &a);
    qs_presence_entry a2 = entry("urn:uuid:a", (const char *[]){"/two"}, NULL);
    qs_presence_add(p, &a2);
    ASSERT_EQ_INT(1, qs_presence_count(p));
    size_t n;
    qs_presence_entry *v = qs_presence_snapshot(p, &n);
    ASSERT_EQ_INT(1, n);
    ASSERT_EQ_STR("/two", v[0].topics[0]);
    qs_presence_entries_free(v, n);

    qs_presence_remove(p, "urn:uuid:unknown"); /* forgetting an unknown id is harmless */
    ASSERT_EQ_INT(1, qs_presence_count(p));
    qs_presence_remove(p, "urn:uuid:a");
    ASSERT_EQ_INT(0, qs_presence_count(p));
    v = qs_presence_snapshot(p, &n);
    ASSERT_EQ_INT(0, n);
    qs_presence_entries_free(v, n);
    qs_presence_free(p);
}

TEST(entry_copy_is_deep)
{
    qs_presence_entry a = entry("urn:uuid:a", (const char *[]){"/one"}, "{}"), copy;
    qs_presence_entry_copy(&copy, &a);
    ASSERT(copy.subscriber != a.subscriber && copy.payload != a.payload);
    ASSERT_EQ_STR("urn:uuid:a", copy.subscriber);
    ASSERT_EQ_STR("/one", copy.topics[0]);
    ASSERT_EQ_STR("{}", copy.payload);
    qs_presence_entry_clear(&copy);
}

enum { THREADS = 4, PER_THREAD = 2000 };

typedef struct {
    qs_presence *p;
    int index;
} worker_arg;

/* Each thread adds its subscribers, reads snapshots meanwhile, and removes every other. */
static void churn(void *arg)
{
    worker_arg *w = arg;
    char id[64];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(id, sizeof id, "urn:uuid:%d-%d", w->index, i);
        qs_presence_entry e = entry(id, (const char *[]){"/t"}, NULL);
        qs_presence_add(w->p, &e);
        if (i % 2)
            qs_presence_remove(w->p, id);
        if (i % 500 == 0) {
            size_t n;
            qs_presence_entry *v = qs_presence_snapshot(w->p, &n);
            qs_presence_entries_free(v, n);
        }
    }
}

/* Protocol 1.0's parts as the cluster registries store them, and back. */
TEST(v1_parts_in_json)
{
    char *topics[] = {"https://e.com/:id", "urn:x", "urn:y"};
    uint8_t syntaxes[] = {2, 1, 0};
    char *payloads[] = {"{\"u\":1}", NULL, "[true]"};
    qs_presence_entry e = {.subscriber = "s",
                           .topics = topics,
                           .n_topics = 3,
                           .syntaxes = syntaxes,
                           .payloads = payloads};
    json_t *o = json_object();
    qs_presence_v1_to_json(&e, o);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_EQ_STR("{\"payloads\":[{\"u\":1},null,[true]],\"syntaxes\":[2,1,0]}", s);
    free(s);
    qs_presence_entry back = {.n_topics = 3};
    qs_presence_v1_from_json(o, &back);
    json_decref(o);
    ASSERT(back.syntaxes && back.payloads);
    ASSERT(memcmp(back.syntaxes, syntaxes, 3) == 0);
    ASSERT_EQ_STR("{\"u\":1}", back.payloads[0]);
    ASSERT(back.payloads[1] == NULL);
    ASSERT_EQ_STR("[true]", back.payloads[2]);
    for (size_t i = 0; i < 3; i++)
        free(back.payloads[i]);
    free(back.payloads);
    free(back.syntaxes);
    /* A 0.x entry adds nothing; arrays of another length and unknown syntaxes. */
    e.syntaxes = NULL;
    e.payloads = NULL;
    o = json_object();
    qs_presence_v1_to_json(&e, o);
    ASSERT_EQ_INT(0, json_object_size(o));
    json_decref(o);
    o = json_loads("{\"syntaxes\":[1,9,-1],\"payloads\":[null]}", 0, NULL);
    back = (qs_presence_entry){.n_topics = 3};
    qs_presence_v1_from_json(o, &back);
    json_decref(o);
    ASSERT(back.syntaxes && back.syntaxes[0] == 1 && back.syntaxes[1] == 0 &&
           back.syntaxes[2] == 0);
    ASSERT(back.payloads == NULL);
    free(back.syntaxes);
}

TEST(concurrent_adds_removes_and_snapshots_stay_consistent)
{
    qs_presence *p = qs_presence_new();
    uv_thread_t threads[THREADS];
    worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg){p, i};
        ASSERT_EQ_INT(0, uv_thread_create(&threads[i], churn, &args[i]));
    }
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&threads[i]);
    ASSERT_EQ_INT(THREADS * PER_THREAD / 2, qs_presence_count(p));
    size_t n;
    qs_presence_entry *v = qs_presence_snapshot(p, &n);
    ASSERT_EQ_INT(THREADS * PER_THREAD / 2, n);
    for (size_t i = 1; i < n; i++)
        ASSERT(v[i - 1].order < v[i].order);
    qs_presence_entries_free(v, n);
    qs_presence_free(p);
}
