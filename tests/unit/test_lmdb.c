/* SPDX-License-Identifier: MIT
 * test_lmdb.c - the embedded store: group commit and bus order, replay by id, retention,
 * restarts, duplicate ids, refusal of corrupt and locked stores.
 */
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "harness.h"
#include "transport/transport.h"

typedef struct sink {
    uv_mutex_t mu;
    uv_cond_t cond;
    uint64_t seqs[4096];
    char *ids[4096];
    size_t n;
    size_t published;
    int failures;
} sink;

static void on_deliver(void *ctx, qs_update *u)
{
    sink *s = ctx;
    uv_mutex_lock(&s->mu);
    s->seqs[s->n] = u->seq;
    s->ids[s->n] = strdup(u->id);
    s->n++;
    uv_mutex_unlock(&s->mu);
}

static void on_published(void *arg, int status, const char *reason)
{
    sink *s = arg;
    uv_mutex_lock(&s->mu);
    if (status)
        s->failures++;
    s->published++;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
}

static char dir[64];

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", dir);
}

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/qs-lmdb-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    atexit(remove_dir); /* each test runs in its own process */
}

static qs_transport *open_store(sink *s, const char *extra_key, const char *extra_value, char **err)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/store.db", dir);
    qs_config_option opts[2];
    char *pv[] = {path}, *ev[] = {(char *)extra_value};
    opts[0] = (qs_config_option){"path", pv, 1, "test", 1};
    opts[1] = (qs_config_option){(char *)extra_key, ev, 1, "test", 2};
    qs_config_transport cfg = {.name = "lmdb",
                               .options = opts,
                               .n_options = extra_key ? 2 : 1,
                               .source = "test",
                               .line = 1};
    qs_transport_host host = {.deliver = on_deliver, .ctx = s};
    qs_transport *t = NULL;
    if (qs_transport_open(&cfg, &host, &t, err) < 0)
        return NULL;
    ASSERT_EQ_INT(0, t->ops->start(t, err));
    return t;
}

static void sink_init(sink *s)
{
    memset(s, 0, sizeof(*s));
    uv_mutex_init(&s->mu);
    uv_cond_init(&s->cond);
}

static void publish_wait(qs_transport *t, sink *s, const char *id, const char *topic)
{
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, topic, strlen(topic));
    if (id)
        qs_update_set_id(u, id, strlen(id));
    qs_update_set_data(u, "payload", 7);
    qs_update_finalize(u);
    uv_mutex_lock(&s->mu);
    size_t before = s->published;
    uv_mutex_unlock(&s->mu);
    t->ops->publish(t, u, on_published, s);
    qs_update_unref(u);
    uv_mutex_lock(&s->mu);
    while (s->published == before)
        uv_cond_wait(&s->cond, &s->mu);
    uv_mutex_unlock(&s->mu);
}

typedef struct pull {
    qs_replay r;
    uv_mutex_t mu;
    uv_cond_t cond;
    bool done;
} pull;

static void on_pulled(qs_replay *r)
{
    pull *p = (pull *)r;
    uv_mutex_lock(&p->mu);
    p->done = true;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
}

/* Pulls everything after `after_id` up to `until`, in batches of `batch`; returns ids. */
static size_t replay_all(qs_transport *t, const char *after_id, uint64_t until, size_t batch,
                         char ids[][64], bool *found)
{
    size_t n = 0;
    uint64_t cursor = 0;
    bool first = true;
    for (;;) {
        pull p;
        memset(&p, 0, sizeof(p));
        uv_mutex_init(&p.mu);
        uv_cond_init(&p.cond);
        p.r.after_id = after_id;
        p.r.continuation = !first;
        p.r.after_seq = cursor;
        p.r.until_seq = until;
        p.r.max_events = batch;
        p.r.max_bytes = 1 << 20;
        p.r.done = on_pulled;
        t->ops->replay(t, &p.r);
        uv_mutex_lock(&p.mu);
        while (!p.done)
            uv_cond_wait(&p.cond, &p.mu);
        uv_mutex_unlock(&p.mu);
        ASSERT_EQ_INT(0, p.r.status);
        if (first)
            *found = p.r.id_found;
        for (size_t i = 0; i < p.r.n_updates; i++)
            snprintf(ids[n++], 64, "%s", p.r.updates[i]->id);
        cursor = p.r.next_seq;
        bool finished = p.r.finished;
        qs_replay_clear(&p.r);
        uv_mutex_destroy(&p.mu);
        uv_cond_destroy(&p.cond);
        first = false;
        if (finished)
            return n;
    }
}

static void close_store(qs_transport *t)
{
    t->ops->stop(t);
    qs_transport_destroy(t);
}

static void sink_free(sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
}

TEST(concurrent_publishes_are_delivered_in_commit_order_with_increasing_seqs)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    qs_transport *t = open_store(&s, NULL, NULL, &err);
    ASSERT(t != NULL);
    enum { N = 500 };
    for (int i = 0; i < N; i++) {
        qs_update *u = qs_update_new();
        qs_update_add_topic(u, "t", 1);
        qs_update_finalize(u);
        t->ops->publish(t, u, on_published, &s);
        qs_update_unref(u);
    }
    uv_mutex_lock(&s.mu);
    while (s.published < N)
        uv_cond_wait(&s.cond, &s.mu);
    uv_mutex_unlock(&s.mu);
    ASSERT_EQ_INT(0, s.failures);
    ASSERT_EQ_INT(N, s.n);
    for (size_t i = 0; i < s.n; i++)
        ASSERT_EQ_INT(i + 1, s.seqs[i]);
    ASSERT_EQ_INT(N, qs_transport_last_seq(t));
    char *last = qs_transport_last_event_id(t);
    ASSERT_EQ_STR(s.ids[N - 1], last);
    free(last);
    close_store(t);
    sink_free(&s);
}

TEST(replay_after_an_id_earliest_and_unknown)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    qs_transport *t = open_store(&s, NULL, NULL, &err);
    char id[32];
    for (int i = 1; i <= 50; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        publish_wait(t, &s, id, "t");
    }
    static char got[100][64];
    bool found = false;
    size_t n = replay_all(t, "id-40", 50, 3, got, &found);
    ASSERT(found);
    ASSERT_EQ_INT(10, n);
    ASSERT_EQ_STR("id-41", got[0]);
    ASSERT_EQ_STR("id-50", got[9]);
    /* The upper bound is the subscriber's bus position: nothing after it. */
    n = replay_all(t, "id-40", 45, 100, got, &found);
    ASSERT_EQ_INT(5, n);
    ASSERT_EQ_STR("id-45", got[4]);
    n = replay_all(t, "earliest", 50, 7, got, &found);
    ASSERT(found);
    ASSERT_EQ_INT(50, n);
    ASSERT_EQ_STR("id-1", got[0]);
    /* Unknown id: nothing is replayed and the cursor is "earliest", as the reference. */
    n = replay_all(t, "never-published", 50, 100, got, &found);
    ASSERT(!found);
    ASSERT_EQ_INT(0, n);
    n = replay_all(t, "id-50", 50, 100, got, &found);
    ASSERT(found);
    ASSERT_EQ_INT(0, n);
    close_store(t);
    sink_free(&s);
}

TEST(duplicate_custom_ids_resolve_to_the_earliest_kept)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    qs_transport *t = open_store(&s, "size", "4", &err);
    ASSERT(t != NULL);
    publish_wait(t, &s, "dup", "t");
    publish_wait(t, &s, "a", "t");
    publish_wait(t, &s, "dup", "t");
    publish_wait(t, &s, "b", "t");
    static char got[10][64];
    bool found;
    size_t n = replay_all(t, "dup", 4, 10, got, &found);
    ASSERT(found);
    ASSERT_EQ_INT(3, n); /* after the first "dup" */
    /* Trim the first "dup" away: the second one is found. */
    publish_wait(t, &s, "c", "t");
    for (int i = 0; i < 100 && replay_all(t, "earliest", 5, 10, got, &found) != 4; i++)
        usleep(10000);
    n = replay_all(t, "dup", 5, 10, got, &found);
    ASSERT(found);
    ASSERT_EQ_INT(2, n);
    ASSERT_EQ_STR("b", got[0]);
    close_store(t);
    sink_free(&s);
}

TEST(retention_keeps_the_newest_records)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    qs_transport *t = open_store(&s, "size", "10", &err);
    char id[32];
    for (int i = 1; i <= 100; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        publish_wait(t, &s, id, "t");
    }
    static char got[200][64];
    bool found;
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        n = replay_all(t, "earliest", 100, 1000, got, &found);
        if (n == 10)
            break;
        usleep(10000); /* retention runs between commits */
    }
    ASSERT_EQ_INT(10, n);
    ASSERT_EQ_STR("id-91", got[0]);
    close_store(t);
    sink_free(&s);
}

TEST(restart_keeps_history_last_id_and_seq)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    qs_transport *t = open_store(&s, NULL, NULL, &err);
    publish_wait(t, &s, "one", "t");
    publish_wait(t, &s, "two", "t");
    close_store(t);
    t = open_store(&s, NULL, NULL, &err);
    ASSERT(t != NULL);
    char *last = qs_transport_last_event_id(t);
    ASSERT_EQ_STR("two", last);
    free(last);
    ASSERT_EQ_INT(2, qs_transport_last_seq(t));
    publish_wait(t, &s, "three", "t");
    ASSERT_EQ_INT(3, s.seqs[2]);
    static char got[10][64];
    bool found;
    ASSERT_EQ_INT(2, replay_all(t, "one", 3, 10, got, &found));
    close_store(t);
    sink_free(&s);
}

TEST(corrupt_locked_and_bad_options_are_refused_with_a_reason)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    qs_transport *t = open_store(&s, NULL, NULL, &err);
    ASSERT(t != NULL);
    /* A second opener of the same store. */
    qs_transport *t2 = open_store(&s, NULL, NULL, &err);
    ASSERT(t2 == NULL);
    ASSERT(strstr(err, "locked") != NULL);
    free(err);
    close_store(t);

    err = NULL;
    ASSERT(open_store(&s, "size", "ten", &err) == NULL);
    ASSERT_EQ_STR("test:2: transport lmdb: size: invalid number \"ten\"", err);
    free(err);
    err = NULL;
    ASSERT(open_store(&s, "colour", "blue", &err) == NULL);
    ASSERT_EQ_STR("test:2: transport lmdb: unknown option \"colour\"", err);
    free(err);

    char path[128];
    snprintf(path, sizeof(path), "%s/store.db", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 4096; i++)
        fputs("garbage!", f);
    fclose(f);
    err = NULL;
    ASSERT(open_store(&s, NULL, NULL, &err) == NULL);
    ASSERT(strstr(err, "not an LMDB store") != NULL);
    free(err);
    sink_free(&s);
}
