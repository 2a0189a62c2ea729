/* SPDX-License-Identifier: MIT
 * test_lmdb.c - the embedded store: group commit and bus order, replay by id, retention,
 * restarts, duplicate ids, refusal of corrupt and locked stores, a full store that heals.
 */
#include <errno.h>
#include <fcntl.h>
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
    int last_status;
    char last_reason[QS_REASON_MAX];
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
    s->last_status = status;
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", status && reason ? reason : "");
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

/* Opens the store in `dir` with options given as key, value pairs (after its path). */
static qs_transport *open_store_with(sink *s, const char *const *kv, size_t n_kv, char **err)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/store.db", dir);
    enum { MAX_OPTS = 8 };
    qs_config_option opts[MAX_OPTS];
    char *values[MAX_OPTS];
    ASSERT(n_kv / 2 + 1 <= MAX_OPTS);
    values[0] = path;
    opts[0] = (qs_config_option){"path", &values[0], 1, "test", 1};
    size_t n = 1;
    for (size_t i = 0; i + 1 < n_kv; i += 2, n++) {
        values[n] = (char *)kv[i + 1];
        opts[n] = (qs_config_option){(char *)kv[i], &values[n], 1, "test", (int)n + 1};
    }
    qs_config_transport cfg = {
        .name = "lmdb", .options = opts, .n_options = n, .source = "test", .line = 1};
    qs_transport_host host = {.deliver = on_deliver, .ctx = s};
    qs_transport *t = NULL;
    if (qs_transport_open(&cfg, &host, &t, err) < 0)
        return NULL;
    ASSERT_EQ_INT(0, t->ops->start(t, err));
    return t;
}

static qs_transport *open_store(sink *s, const char *extra_key, const char *extra_value, char **err)
{
    const char *kv[] = {extra_key, extra_value};
    return open_store_with(s, kv, extra_key ? 2 : 0, err);
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

/* ------------------------------------------------------------ a full store */

/* Publishes an update carrying `size` bytes of data; returns its outcome (0 or -errno). */
static int publish_sized(qs_transport *t, sink *s, const char *id, size_t size)
{
    char *data = malloc(size);
    memset(data, 'x', size);
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, "t", 1);
    qs_update_set_id(u, id, strlen(id));
    qs_update_set_data(u, data, size);
    qs_update_finalize(u);
    free(data);
    uv_mutex_lock(&s->mu);
    size_t before = s->published;
    uv_mutex_unlock(&s->mu);
    t->ops->publish(t, u, on_published, s);
    qs_update_unref(u);
    uv_mutex_lock(&s->mu);
    while (s->published == before)
        uv_cond_wait(&s->cond, &s->mu);
    int status = s->last_status;
    uv_mutex_unlock(&s->mu);
    return status;
}

/* The reproduction of issue 11: 2 KB updates until one is refused, then smaller and smaller
 * ones until even 10 bytes are. Returns how many were accepted; their ids are f-0, f-1… */
static size_t fill_store(qs_transport *t, sink *s)
{
    static const size_t sizes[] = {2000, 1000, 500, 100, 10};
    size_t accepted = 0;
    char id[32];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int bound = 0; bound < 4000; bound++) {
            snprintf(id, sizeof(id), "f-%zu", accepted);
            if (publish_sized(t, s, id, sizes[i]) != 0)
                break;
            accepted++;
        }
    }
    return accepted;
}

/* Sends the log (stderr) to a file until log_end(), which returns what was written. */
static int log_begin(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/log", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ASSERT(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static char *log_end(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char path[128];
    snprintf(path, sizeof(path), "%s/log", dir);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    fputs(text, stderr); /* still shown with the test's output */
    return text;
}

static size_t lines_containing(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *hit = strstr(line, needle);
        if (hit && hit < line + len)
            n++;
        line += len + (end != NULL);
    }
    return n;
}

static bool wait_healthy(qs_transport *t, int seconds)
{
    char reason[QS_REASON_MAX];
    for (int i = 0; i < seconds * 100; i++) {
        if (t->ops->healthy(t, reason))
            return true;
        usleep(10000);
    }
    return false;
}

static char history[4096][64];

TEST(a_full_store_without_limits_keeps_every_update_and_heals_when_restarted_with_a_limit)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    static const char *const unlimited[] = {"map_size", "1MiB", "size", "0", "max_bytes", "0"};
    int log = log_begin();
    qs_transport *t = open_store_with(&s, unlimited, 6, &err);
    ASSERT(t != NULL);
    size_t accepted = fill_store(t, &s);
    int last_status = s.last_status;
    char last_reason[QS_REASON_MAX];
    snprintf(last_reason, sizeof(last_reason), "%s", s.last_reason);
    /* Full is a state: healthy() says so, steadily, as long as nothing changes. */
    char reason[QS_REASON_MAX];
    int healthy_answers = 0;
    for (int i = 0; i < 30; i++) {
        healthy_answers += t->ops->healthy(t, reason);
        usleep(10000);
    }
    int late = publish_sized(t, &s, "late", 10);
    close_store(t);
    char *text = log_end(log);
    ASSERT(accepted > 100);
    ASSERT_EQ_INT(-EAGAIN, last_status);
    ASSERT(strstr(last_reason, "full") != NULL);
    ASSERT_EQ_INT(0, healthy_answers);
    ASSERT(strstr(reason, "full") != NULL);
    ASSERT(late != 0);
    /* One line when the store became full, none per refused publish. */
    ASSERT_EQ_INT(1, lines_containing(text, "full"));

    /* Nothing acknowledged was dropped to make room: there is no limit. */
    t = open_store_with(&s, unlimited, 6, &err);
    ASSERT(t != NULL);
    ASSERT(!t->ops->healthy(t, reason)); /* still full, from the start */
    bool found;
    size_t n = replay_all(t, "earliest", qs_transport_last_seq(t), 1000, history, &found);
    ASSERT_EQ_INT(accepted, n);
    ASSERT_EQ_STR("f-0", history[0]);
    close_store(t);

    /* With a limit, retention finds the pages it needs, and publishes are accepted again. */
    static const char *const limited[] = {"map_size", "1MiB", "size", "50", "max_bytes", "0"};
    log = log_begin();
    t = open_store_with(&s, limited, 6, &err);
    bool healed = t && wait_healthy(t, 5);
    int after_1 = t ? publish_sized(t, &s, "after-1", 2000) : -1;
    int after_2 = t ? publish_sized(t, &s, "after-2", 10) : -1;
    if (t)
        close_store(t);
    text = log_end(log);
    ASSERT(healed);
    ASSERT_EQ_INT(0, after_1);
    ASSERT_EQ_INT(0, after_2);
    ASSERT_EQ_INT(0, lines_containing(text, "retention failed"));
    t = open_store_with(&s, limited, 6, &err);
    for (int i = 0; i < 500; i++) {
        n = replay_all(t, "earliest", qs_transport_last_seq(t), 1000, history, &found);
        if (n <= 50)
            break;
        usleep(10000);
    }
    ASSERT(n <= 50 && n >= 2);
    ASSERT_EQ_STR("after-1", history[n - 2]);
    ASSERT_EQ_STR("after-2", history[n - 1]);
    close_store(t);
    sink_free(&s);
}

TEST(a_store_whose_limits_do_not_fit_its_map_trims_by_pages_and_accepts_every_publish)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    /* 900 KiB of records would fit in 1 MiB if records took what they weigh; 2 KB records
     * take a 4 KiB overflow page each, so the map is what limits history. */
    static const char *const opts[] = {"map_size", "1MiB", "size", "0", "max_bytes", "900KiB"};
    int log = log_begin();
    qs_transport *t = open_store_with(&s, opts, 6, &err);
    if (!t)
        log_end(log);
    ASSERT(t != NULL);
    char id[32];
    int refused = 0;
    for (int i = 0; i < 700; i++) {
        snprintf(id, sizeof(id), "big-%d", i);
        refused += publish_sized(t, &s, id, 2000) != 0;
    }
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "small-%d", i);
        refused += publish_sized(t, &s, id, 10) != 0;
    }
    char reason[QS_REASON_MAX];
    bool healthy = t->ops->healthy(t, reason);
    close_store(t);
    char *text = log_end(log);
    ASSERT_EQ_INT(0, refused);
    ASSERT(healthy);
    ASSERT_EQ_INT(0, lines_containing(text, "retention failed"));
    ASSERT_EQ_INT(0, lines_containing(text, "full"));

    /* The newest updates are the ones kept, without a gap. */
    t = open_store_with(&s, opts, 6, &err);
    bool found;
    size_t n = replay_all(t, "earliest", qs_transport_last_seq(t), 1000, history, &found);
    ASSERT(n >= 300);
    ASSERT_EQ_STR("small-299", history[n - 1]);
    int first = atoi(strchr(history[0], '-') + 1);
    for (size_t i = 0; i < n; i++) {
        if (i + first < 700)
            snprintf(id, sizeof(id), "big-%zu", i + first);
        else
            snprintf(id, sizeof(id), "small-%zu", i + first - 700);
        ASSERT_EQ_STR(id, history[i]);
    }
    close_store(t);
    sink_free(&s);
}

TEST(an_update_larger_than_the_map_is_refused_and_the_store_stays_writable)
{
    make_dir();
    sink s;
    sink_init(&s);
    char *err = NULL;
    qs_transport *t = open_store(&s, "map_size", "1MiB", &err);
    ASSERT(t != NULL);
    ASSERT_EQ_INT(0, publish_sized(t, &s, "before", 100));
    ASSERT_EQ_INT(-EAGAIN, publish_sized(t, &s, "huge", 1500000));
    ASSERT(strstr(s.last_reason, "map_size") != NULL);
    char reason[QS_REASON_MAX];
    ASSERT(t->ops->healthy(t, reason));
    ASSERT_EQ_INT(0, publish_sized(t, &s, "after", 100));
    /* Nothing was trimmed to make room for what could never fit. */
    static char got[10][64];
    bool found;
    ASSERT_EQ_INT(2, replay_all(t, "earliest", qs_transport_last_seq(t), 10, got, &found));
    close_store(t);
    sink_free(&s);
}
