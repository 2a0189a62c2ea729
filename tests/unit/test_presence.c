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
