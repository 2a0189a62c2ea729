/* SPDX-License-Identifier: MIT
 * postgres.c - cluster mode over PostgreSQL: any number of hub processes sharing one
 * database behave as one hub, and every update is a row users can query with SQL. Here:
 * start-up (waiting for the database, the tables), the writer and its group commits, the
 * bus, the reader (history, presence reads, retention), health, and the transport's
 * operations. One connection is postgres_client.c; the tables are postgres_schema.c; the
 * registry of the cluster's subscriptions is postgres_presence.c; settings and values are
 * postgres_config.c and postgres_codec.c (postgres.h).
 *
 * One order for every node, safe by design. A publish is one statement: it adds the
 * group's size to the single row of <prefix>head and inserts the group's rows with the
 * seqs it got, then notifies the table's channel, in one implicit transaction. The UPDATE
 * holds the head row's lock until the transaction ends, so the next publishing
 * transaction, on any node, waits for it: seqs are handed out in commit order, and a
 * transaction that rolls back hands back its seqs with its lock. PostgreSQL makes a
 * committed transaction visible before it releases its locks, so once a row with seq n is
 * visible, every row with a smaller seq is visible too. A node reading "the rows after
 * the last seq I delivered" therefore never skips one: there are no gaps to wait for and
 * no late commits to miss. (The price is that publishing transactions commit one after
 * another across the cluster; each carries a whole group, so the rate grows with the
 * group size.)
 *
 * Threads, each with its own connection, libpq's asynchronous API with deadlines (never a
 * worker):
 *  - the writer takes every queued publish (up to a group's limit) and runs them as one
 *    statement (group commit: one WAL flush for the group), then completes them: 200 only
 *    once the server reported the transaction over. It also writes this node's presence
 *    entries, pushes its lease ahead and reaps dead nodes.
 *  - the bus LISTENs on the channel and hands every update, in seq order, to
 *    host->deliver: the node's own publishes come back this way. A group's notification
 *    carries its updates when they fit in one (the common case): those that come right
 *    after the last seq delivered are delivered from it, when the notification's sender
 *    may insert into the table (any session may NOTIFY). Otherwise (a large group, a gap,
 *    a reconnection, and every second anyway, which also checks the connection) the bus
 *    reads the rows after the last one it read.
 *  - the reader serves history pulls and presence reads, and applies retention.
 * The transport's lock (base.mu) guards the queues, the links' states, the bus position and
 * this node's presence entries; no thread holds it during I/O. stop() wakes the threads'
 * waits (qs_pg_client_ctx_wake) and joins them.
 *
 * Failures: a connection that fails is retried (at once, then after 100 ms doubling to 2 s).
 * While the writer or the bus is down the transport is unhealthy with a reason, publishes
 * fail at once with -EAGAIN (503), subscribers stay connected, and the bus resumes after the
 * last row it read: nothing is delivered twice, and nothing committed is skipped. A publish
 * whose outcome never came (the connection broke or the deadline passed after it was sent)
 * is answered 503 although it may have committed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "log.h"
#include "transport/postgres.h"
#include "transport/postgres_client.h"
#include "transport/postgres_presence.h"
#include "transport/postgres_schema.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define BUS_POLL_MS 1000       /* the bus reads (and checks its connection) at least this often */
#define BUS_BATCH 1000         /* rows per read of the bus */
#define GROUP_MAX 1024         /* publishes in one transaction, at most */
#define GROUP_BYTES (8u << 20) /* …and about this many bytes of updates */
#define TRIM_EVERY_MS 1000     /* retention runs this often */
#define TRIM_BATCH 10000       /* rows deleted by one retention statement, at most */

static const char update_columns[] = "seq, id, topics, private, type, retry, data";

/* ------------------------------------------------------------ types */

/* The state of one connection, for health, logs and backoff; guarded by base.mu. */
typedef struct link_state {
    const char *name;
    bool up;
    char reason[QS_REASON_MAX]; /* why it is down; empty when it never failed */
    uint64_t backoff_ms;
    uint64_t retry_at_ms;
} link_state;

typedef struct pitem {
    qs_update *u;
    qs_publish_cb cb;
    void *arg;
} pitem;

typedef struct rjob {
    qs_replay *r;         /* a history pull, or */
    qs_presence_query *q; /* a read of the registry */
} rjob;

typedef struct pg_transport {
    qs_transport base;
    qs_transport_host host;
    qs_pg_settings s;
    const char *name; /* "transport postgres" for messages */
    qs_pg_client_ctx ctx;
    char *sql_publish, *sql_fetch, *sql_range, *sql_lookup, *sql_head, *sql_listen, *sql_trim;

    uv_cond_t writer_cond, reader_cond;
    bool stopping, threads_started;
    uv_thread_t writer, bus, reader;

    /* The writer: its queue, connection and parameters. */
    pitem *queue;
    size_t qn, qcap;
    qs_pg_client wconn;
    link_state wlink;
    qs_pg_params group; /* writer thread only */
    bool presence_on;   /* subscriptions are on: this node holds a lease and reaps */

    /* The bus: its connection, and how far it read (base.seq, base.last_id: the last
     * delivered update). */
    qs_pg_client bconn;
    link_state blink;
    uint64_t cursor;      /* the last seq read (an unreadable row is skipped, not re-read) */
    uint32_t updates_oid; /* of <prefix>updates: names the channel */
    struct {
        int pid;
        uint64_t until_ms;
        bool trusted;
    } senders[32]; /* whose notifications the bus believes (bus thread only) */

    /* The reader's jobs and connection. */
    rjob *jobs;
    size_t jn, jcap;
    qs_pg_client rconn;
    link_state rlink;
    size_t avg_record;     /* bytes, to size history reads (reader thread only) */
    uint64_t next_trim_ms; /* under mu */

    /* The cluster's registry of subscriptions: this node's entries are under mu. */
    qs_pg_presence presence;
} pg_transport;

/* ------------------------------------------------------------ the connections' states */

/* Marks a connection up (under mu); true when it was down after a failure (worth a log). */
static bool link_up_locked(link_state *l)
{
    bool restored = !l->up && l->reason[0];
    l->up = true;
    l->reason[0] = '\0';
    l->backoff_ms = 0;
    l->retry_at_ms = 0;
    return restored;
}

static void link_up(pg_transport *t, link_state *l)
{
    uv_mutex_lock(&t->base.mu);
    bool restored = link_up_locked(l);
    uv_mutex_unlock(&t->base.mu);
    if (restored)
        qs_info("postgres %s: %s connection restored", t->s.display, l->name);
}

/* Marks a connection down: the first retry after a working connection is immediate (the
 * server may just have restarted), then the delay doubles up to BACKOFF_MAX_MS. */
static void link_down(pg_transport *t, link_state *l, const char *reason)
{
    uint64_t now = qs_now_ms();
    uv_mutex_lock(&t->base.mu);
    bool changed = l->up || strcmp(l->reason, reason) != 0;
    if (l->up) {
        l->backoff_ms = 0;
        l->retry_at_ms = now;
    } else {
        l->backoff_ms =
            l->backoff_ms ? QS_MIN(l->backoff_ms * 2, (uint64_t)BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
        l->retry_at_ms = now + l->backoff_ms;
    }
    l->up = false;
    snprintf(l->reason, sizeof(l->reason), "%s", reason);
    uv_mutex_unlock(&t->base.mu);
    if (changed)
        qs_error("postgres %s: %s connection: %s", t->s.display, l->name, reason);
}

/* Why publishes are refused now (under mu): the writer's reason, else the bus's. */
static void down_reason(pg_transport *t, char reason[QS_REASON_MAX])
{
    const char *why = !t->wlink.up ? t->wlink.reason : t->blink.reason;
    snprintf(reason, QS_REASON_MAX, "%s", why[0] ? why : "postgres unavailable");
}

static bool is_stopping(pg_transport *t)
{
    uv_mutex_lock(&t->base.mu);
    bool s = t->stopping;
    uv_mutex_unlock(&t->base.mu);
    return s;
}

/* ------------------------------------------------------------ statements */

/* The statements, once the updates table is known: its notification channel is named
 * after it and its OID, so that hubs of another table (another schema, same prefix) never
 * hear of these updates. */
static void build_statements(pg_transport *t, uint32_t oid)
{
    const char *p = t->s.prefix;
    char channel[QS_PG_PREFIX_MAX + 24];
    snprintf(channel, sizeof(channel), "%supdates_%" PRIu32, p, oid);
    /* See the top of this file: the head row's lock orders the commits. */
    t->sql_publish = qs_xasprintf(
        "WITH head AS ("
        " UPDATE %1$shead SET last_seq = last_seq + $1 RETURNING last_seq - $1 AS base),"
        " ins AS ("
        " INSERT INTO %1$supdates (seq, id, topics, private, type, retry, data)"
        " SELECT head.base + r.ord, r.id, $3[r.tfrom:r.tto], r.private, r.type, r.retry, r.data"
        " FROM head, unnest($2, $4, $5, $6, $7, $8, $9) WITH ORDINALITY"
        " AS r(id, tfrom, tto, private, type, retry, data, ord))"
        /* The group's records ride on the notification when they fit ($10): the other
         * nodes then deliver without reading the table. */
        " SELECT base, pg_notify('%2$s', CASE WHEN $10 = '' THEN (base + $1)::text"
        " ELSE (base + 1)::text || ' ' || $10 END) FROM head",
        p, channel);
    t->sql_fetch = qs_xasprintf("SELECT %s FROM %supdates WHERE seq > $1::int8 ORDER BY seq"
                                " LIMIT %d",
                                update_columns, p, BUS_BATCH);
    /* The shapes of these two queries keep the planner on the right index whatever the
     * table's statistics say (a table filled since its last ANALYZE has none that fit):
     * - a range read has no upper bound in SQL (the reader stops at it): with two bounds,
     *   the planner's default guess for a range is a handful of rows, and it chose to
     *   collect every row after the first bound and sort them for each batch (28 ms per
     *   batch of 1 024 with 50 000 rows after it, against 0.4 ms in key order);
     * - an id is looked up in a subquery that ORDER BY cannot reach: with ORDER BY seq
     *   LIMIT 1 the planner walked the primary key in order, testing every row's id. */
    t->sql_range = qs_xasprintf("SELECT %s FROM %supdates WHERE seq > $1::int8"
                                " ORDER BY seq LIMIT $2::int8",
                                update_columns, p);
    t->sql_lookup = qs_xasprintf("SELECT min(seq) FROM (SELECT seq FROM %supdates"
                                 " WHERE id = $1::text OFFSET 0) AS matches",
                                 p);
    t->sql_head = qs_xasprintf("SELECT h.last_seq, u.id FROM %1$shead h"
                               " LEFT JOIN %1$supdates u ON u.seq = h.last_seq",
                               p);
    t->sql_listen = qs_xasprintf("LISTEN %s", channel);
    /* Retention: among the oldest rows, those past a limit; one node at a time (the others
     * skip their turn while it holds the lock). */
    qs_buf cond = QS_BUF_INIT;
    if (t->s.size)
        qs_buf_appendf(&cond, "old.seq <= (SELECT last_seq FROM %shead) - %" PRIu64, p, t->s.size);
    if (t->s.max_age_ms)
        qs_buf_appendf(&cond, "%sold.published_at < now() - interval '%" PRIu64 " milliseconds'",
                       cond.len ? " OR " : "", t->s.max_age_ms);
    if (cond.len)
        t->sql_trim = qs_xasprintf(
            "WITH turn AS (SELECT pg_try_advisory_xact_lock(%2$" PRId64 ") AS mine),"
            " old AS (SELECT seq, published_at FROM %1$supdates ORDER BY seq LIMIT %3$d)"
            " DELETE FROM %1$supdates u USING old, turn"
            " WHERE turn.mine AND u.seq = old.seq AND (%4$s)",
            p, qs_pg_lock_key(p, "retention"), TRIM_BATCH, qs_buf_cstr(&cond));
    qs_buf_free(&cond);
}

static const Oid publish_types[QS_PG_PUBLISH_NPARAMS] = {
    QS_PG_INT8,       QS_PG_TEXT_ARRAY, QS_PG_TEXT_ARRAY, QS_PG_INT4_ARRAY, QS_PG_INT4_ARRAY,
    QS_PG_BOOL_ARRAY, QS_PG_TEXT_ARRAY, QS_PG_INT8_ARRAY, QS_PG_TEXT_ARRAY, QS_PG_TEXT};

/* "postgres unavailable: x" -> "x", for messages that say it otherwise. */
static const char *detail(const char *err)
{
    static const char prefix[] = "postgres unavailable: ";
    return strncmp(err, prefix, sizeof(prefix) - 1) == 0 ? err + sizeof(prefix) - 1 : err;
}

/* ------------------------------------------------------------ the bus */

/* LISTEN first, then read: a commit after the read notifies this connection. */
static int bus_listen(pg_transport *t, qs_pg_client *c)
{
    int rc = qs_pg_client_run(c, t->sql_listen, true);
    if (rc > 0) {
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "%s", c->err);
        qs_pg_client_fail(c, "postgres unavailable: %s", why);
    }
    return rc ? -1 : 0;
}

/* Reads the head: the position a starting node delivers after. 0, 1 (refused), -1. */
static int read_head(pg_transport *t, qs_pg_client *c)
{
    qs_pg_stmt st = {.sql = t->sql_head, .binary = true, .params = NULL};
    /* Binary results need the extended protocol: give it an empty parameter list. */
    qs_pg_params none = {0};
    qs_pg_params_seal(&none);
    st.params = &none;
    PGresult *r = NULL;
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    if (rc)
        return rc;
    int64_t last = 0;
    qs_pg_value v[2] = {{NULL, -1}, {NULL, -1}};
    if (PQntuples(r) == 1 && PQnfields(r) == 2)
        qs_pg_client_row(r, 0, v, 2);
    if (!qs_pg_get_i64(v[0], &last) || last < 0) {
        PQclear(r);
        snprintf(c->err, sizeof(c->err), "the table %shead has no row: it was modified by hand",
                 t->s.prefix);
        return 1;
    }
    char *id = v[1].len >= 0 ? qs_xstrndup(v[1].p, (size_t)v[1].len) : NULL;
    PQclear(r);
    uv_mutex_lock(&t->base.mu);
    qs_transport_set_position(&t->base, (uint64_t)last, id);
    t->cursor = (uint64_t)last;
    uv_mutex_unlock(&t->base.mu);
    free(id);
    return 0;
}

static int bus_connect(pg_transport *t)
{
    qs_pg_client *c = &t->bconn;
    if (qs_pg_client_open(c, true) < 0 || bus_listen(t, c) < 0) {
        if (!is_stopping(t))
            link_down(t, &t->blink, c->err);
        return -1;
    }
    link_up(t, &t->blink);
    return 0;
}

/* Reads the rows after the cursor and delivers them in order: the number of rows read, or
 * -1 when the connection failed (or the server refused the read). */
static int bus_fetch(pg_transport *t)
{
    qs_pg_client *c = &t->bconn;
    qs_pg_params params = {0};
    uv_mutex_lock(&t->base.mu);
    qs_pg_put_i64(qs_pg_params_next(&params), (int64_t)t->cursor);
    uv_mutex_unlock(&t->base.mu);
    qs_pg_params_seal(&params);
    /* Planned at every read, not prepared: a plan made while the table was small (a
     * sequential scan and a sort) was kept by PostgreSQL's plan cache as the table grew,
     * and each read cost 20-35 ms at 100 000 rows, growing with the table. */
    qs_pg_stmt st = {.sql = t->sql_fetch, .params = &params, .binary = true};
    PGresult *r = NULL;
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    qs_pg_params_free(&params);
    if (rc > 0) {
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "%s", c->err);
        qs_pg_client_fail(c, "postgres unavailable: reading new updates: %s", why);
    }
    if (rc)
        return -1;
    int rows = PQnfields(r) == QS_PG_UPDATE_COLS ? PQntuples(r) : 0;
    for (int i = 0; i < rows; i++) {
        qs_pg_value cols[QS_PG_UPDATE_COLS];
        qs_pg_client_row(r, i, cols, QS_PG_UPDATE_COLS);
        uint64_t seq = 0;
        qs_update *u = qs_pg_update_from_row(cols, &seq);
        uv_mutex_lock(&t->base.mu);
        if (seq > t->cursor)
            t->cursor = seq;
        bool fresh = u && seq > t->base.seq;
        if (fresh)
            qs_transport_set_position(&t->base, seq, u->id);
        uv_mutex_unlock(&t->base.mu);
        if (!u) {
            qs_warn("postgres %s: skipping row seq=%" PRIu64 " of %supdates: not a valid update",
                    t->s.display, seq, t->s.prefix);
            continue;
        }
        if (fresh)
            t->host.deliver(t->host.ctx, u);
        qs_update_unref(u);
    }
    PQclear(r);
    return rows;
}

/* A notification, kept until the wait that brought it is over. */
typedef struct bus_note {
    char *payload;
    int sender; /* the PID of the server process that sent it */
} bus_note;

typedef struct bus_notes {
    bus_note *v;
    size_t n, cap;
} bus_notes;

static void bus_collect(void *arg, const char *payload, int sender)
{
    bus_notes *notes = arg;
    if (notes->n == notes->cap) {
        notes->cap = notes->cap ? notes->cap * 2 : 16;
        notes->v = qs_xrealloc(notes->v, notes->cap * sizeof(*notes->v));
    }
    notes->v[notes->n++] = (bus_note){qs_xstrdup(payload), sender};
}

/* Any session of the database may NOTIFY any channel: updates riding on a notification are
 * believed only when its sender's role may insert into the updates table (it could then
 * write them there anyway). The answer for a PID is kept SENDER_TTL_MS (PIDs are reused):
 * 1 trusted, 0 not, -1 when the connection failed. */
#define SENDER_TTL_MS 10000
static int sender_trusted(pg_transport *t, int pid)
{
    uint64_t now = qs_now_ms();
    for (size_t i = 0; i < QS_ARRAY_LEN(t->senders); i++)
        if (t->senders[i].pid == pid && now < t->senders[i].until_ms)
            return t->senders[i].trusted;
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT has_table_privilege(usesysid, %" PRIu32 "::oid, 'INSERT')"
             " FROM pg_stat_activity WHERE pid = %d",
             t->updates_oid, pid);
    PGresult *r = NULL;
    qs_pg_stmt st = {.sql = sql};
    int rc = qs_pg_client_exec(&t->bconn, &st, &r, qs_pg_client_deadline(&t->bconn), true);
    if (rc < 0)
        return -1;
    bool trusted = rc == 0 && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!trusted)
        qs_warn("postgres %s: a notification on the updates' channel came from a session that "
                "may not insert updates (server process %d): what it carried is ignored",
                t->s.display, pid);
    /* The oldest answer makes room. */
    size_t slot = 0;
    for (size_t i = 1; i < QS_ARRAY_LEN(t->senders); i++)
        if (t->senders[i].until_ms < t->senders[slot].until_ms)
            slot = i;
    t->senders[slot].pid = pid;
    t->senders[slot].until_ms = now + SENDER_TTL_MS;
    t->senders[slot].trusted = trusted;
    return trusted;
}

/* The notifications of one wait, in order. A group's updates that rode on a notification
 * from a trusted sender and come right after the cursor are delivered at once; anything
 * else (only a seq, a gap, something unreadable, an untrusted sender) makes the bus read
 * the table after the cursor. Either way the cursor moves one seq at a time, so nothing is
 * skipped or delivered twice. Returns 1 when the table must be read, 0 when not, -1 when
 * the connection failed. */
static int bus_take_notes(pg_transport *t, bus_notes *notes)
{
    bool read = false;
    int rc = 0;
    for (size_t k = 0; k < notes->n; k++) {
        uint64_t seq = 0;
        qs_update **us = NULL;
        size_t n = 0;
        int got = rc < 0 ? -1 : qs_pg_notify_parse(notes->v[k].payload, &seq, &us, &n);
        free(notes->v[k].payload);
        if (got == 1 && !read) {
            int trusted = sender_trusted(t, notes->v[k].sender);
            if (trusted < 0)
                rc = -1;
            if (trusted <= 0)
                got = -1;
        }
        if (got <= 0) {
            uv_mutex_lock(&t->base.mu);
            read = read || got < 0 || seq > t->cursor;
            uv_mutex_unlock(&t->base.mu);
        }
        for (size_t i = 0; i < n; i++) {
            qs_update *u = us[i];
            bool next = false;
            if (got == 1) {
                uv_mutex_lock(&t->base.mu);
                next = !read && u->seq == t->cursor + 1;
                if (next) {
                    t->cursor = u->seq;
                    qs_transport_set_position(&t->base, u->seq, u->id);
                } else if (u->seq > t->cursor) {
                    read = true; /* a gap: the table has what came between */
                }
                uv_mutex_unlock(&t->base.mu);
            }
            if (next)
                t->host.deliver(t->host.ctx, u);
            qs_update_unref(u);
        }
        free(us);
    }
    notes->n = 0;
    return rc < 0 ? -1 : read;
}

static void bus_main(void *arg)
{
    pg_transport *t = arg;
    qs_pg_client *c = &t->bconn;
    bool read_now = true; /* at start and after a reconnection: catch up at once */
    bus_notes notes = {0};
    while (!is_stopping(t)) {
        if (!qs_pg_client_is_open(c)) {
            uv_mutex_lock(&t->base.mu);
            uint64_t at = t->blink.retry_at_ms;
            uv_mutex_unlock(&t->base.mu);
            uint64_t now = qs_now_ms();
            if (now < at) {
                qs_pg_client_ctx_sleep(&t->ctx, at - now);
                continue;
            }
            if (bus_connect(t) < 0)
                continue;
            read_now = true;
        }
        if (read_now) {
            int n = bus_fetch(t);
            if (n < 0) {
                if (!is_stopping(t))
                    link_down(t, &t->blink, c->err);
                continue;
            }
            read_now = n >= BUS_BATCH; /* more may be waiting */
            if (read_now)
                continue;
        }
        int w = qs_pg_client_wait_notify(c, qs_now_ms() + BUS_POLL_MS, true, bus_collect, &notes);
        int read = w < 0 ? -1 : bus_take_notes(t, &notes);
        if (w < 0 || read < 0) {
            notes.n = 0;
            if (!is_stopping(t))
                link_down(t, &t->blink, c->err);
            continue;
        }
        /* A quiet second: read anyway, which checks the connection. */
        read_now = w == 0 || read;
    }
    free(notes.v);
    qs_pg_client_close(c);
}

/* ------------------------------------------------------------ the writer */

static void pitem_finish(pitem *w, int status, const char *reason)
{
    w->cb(w->arg, status, reason);
    qs_update_unref(w->u);
    w->u = NULL;
}

/* Opens the writer's connection and prepares the publish statement. The link goes up in
 * the same lock as presence is marked for a full write. (The connection phase can be
 * interrupted by stop(); statements are not, so queued publishes get their real
 * outcome.) */
static bool writer_connect(pg_transport *t)
{
    qs_pg_client *c = &t->wconn;
    int rc = -1;
    if (qs_pg_client_open(c, true) == 0)
        rc = qs_pg_client_prepare(c, "qs_publish", t->sql_publish, QS_PG_PUBLISH_NPARAMS,
                                  publish_types);
    if (rc > 0) {
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "%s", c->err);
        qs_pg_client_fail(c, "postgres unavailable: preparing the publish statement: %s", why);
    }
    if (rc) {
        if (!is_stopping(t))
            link_down(t, &t->wlink, c->err);
        return false;
    }
    uv_mutex_lock(&t->base.mu);
    if (t->presence_on || qs_strmap_count(&t->presence.local))
        qs_pg_presence_rewrite(&t->presence);
    bool restored = link_up_locked(&t->wlink);
    uv_mutex_unlock(&t->base.mu);
    if (restored)
        qs_info("postgres %s: %s connection restored", t->s.display, t->wlink.name);
    return true;
}

/* The connection failed: the publishes not completed fail with `reason`. */
static void writer_lost(pg_transport *t, pitem *items, size_t n, const char *reason)
{
    link_down(t, &t->wlink, reason);
    for (size_t i = 0; i < n; i++)
        if (items[i].u)
            pitem_finish(&items[i], -EAGAIN, reason);
}

/* Publishes a group in one transaction, and completes it. */
static void run_group(pg_transport *t, pitem *items, size_t n)
{
    qs_pg_client *c = &t->wconn;
    qs_update **us = qs_xmalloc(n * sizeof(*us));
    for (size_t i = 0; i < n; i++)
        us[i] = items[i].u;
    qs_pg_publish_params(&t->group, us, n);
    free(us);
    qs_pg_stmt st = {.prepared = "qs_publish", .params = &t->group};
    PGresult *r = NULL;
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), false);
    if (rc == 0) {
        bool ok = PQntuples(r) == 1;
        PQclear(r);
        for (size_t i = 0; i < n; i++) {
            if (ok)
                pitem_finish(&items[i], 0, NULL);
            else
                pitem_finish(&items[i], -EIO,
                             "postgres: the publish inserted nothing: the head table has no row");
        }
    } else if (rc > 0) {
        /* Refused: by the server, before or at its commit; nothing was stored. */
        bool again = qs_pg_sqlstate_transient(c->sqlstate);
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "postgres refused the publish: %.200s", c->err);
        qs_warn("postgres %s: a group of %zu publishes failed: %s", t->s.display, n, why);
        for (size_t i = 0; i < n; i++)
            pitem_finish(&items[i], again ? -EAGAIN : -EIO, why);
    } else {
        /* The outcome is unknown: the transaction may have committed. */
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why),
                 "postgres unavailable: connection lost before the publish was confirmed (%.170s)",
                 detail(c->err));
        writer_lost(t, items, n, why);
    }
}

static void writer_main(void *arg)
{
    pg_transport *t = arg;
    pitem *batch = NULL;
    size_t cap = 0;
    uint64_t refresh_ms = qs_pg_presence_refresh_ms(&t->presence);
    uint64_t next_refresh = qs_now_ms() + refresh_ms;
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        if (!qs_pg_client_is_open(&t->wconn)) {
            /* Disconnected: what is queued cannot be sent. */
            if (t->qn) {
                char why[QS_REASON_MAX];
                down_reason(t, why);
                pitem *q = t->queue;
                size_t n = t->qn;
                t->queue = NULL;
                t->qn = t->qcap = 0;
                uv_mutex_unlock(&t->base.mu);
                for (size_t i = 0; i < n; i++)
                    pitem_finish(&q[i], -EAGAIN, why);
                free(q);
                uv_mutex_lock(&t->base.mu);
                continue;
            }
            if (t->stopping)
                break;
            uint64_t now = qs_now_ms();
            if (now < t->wlink.retry_at_ms) {
                uv_cond_timedwait(&t->writer_cond, &t->base.mu,
                                  (t->wlink.retry_at_ms - now) * 1000000);
                continue;
            }
            uv_mutex_unlock(&t->base.mu);
            writer_connect(t);
            uv_mutex_lock(&t->base.mu);
            continue;
        }
        uint64_t now = qs_now_ms();
        bool pending = qs_pg_presence_pending(&t->presence);
        if (!t->qn && !pending && !t->stopping && now < next_refresh) {
            uv_cond_timedwait(&t->writer_cond, &t->base.mu, (next_refresh - now) * 1000000);
            continue;
        }
        if (!t->qn && !pending && t->stopping)
            break;
        /* Take up to a group's worth of queued publishes: one transaction. */
        size_t n = 0, bytes = 0;
        while (n < t->qn && n < GROUP_MAX && bytes < GROUP_BYTES)
            bytes += 64 + t->queue[n++].u->frame->len;
        if (n > cap) {
            cap = QS_MAX(n, cap * 2);
            batch = qs_xrealloc(batch, cap * sizeof(*batch));
        }
        if (n) {
            memcpy(batch, t->queue, n * sizeof(*batch));
            memmove(t->queue, t->queue + n, (t->qn - n) * sizeof(*t->queue));
            t->qn -= n;
        }
        bool refresh = t->presence_on && now >= next_refresh;
        if (now >= next_refresh)
            next_refresh = now + refresh_ms;
        uv_mutex_unlock(&t->base.mu);
        if (n && !qs_pg_client_alive(&t->wconn) && !writer_connect(t)) {
            /* Found dead while idle (the server restarted) and not back: these publishes
             * were not sent. */
            char why[QS_REASON_MAX];
            uv_mutex_lock(&t->base.mu);
            down_reason(t, why);
            uv_mutex_unlock(&t->base.mu);
            for (size_t i = 0; i < n; i++)
                pitem_finish(&batch[i], -EAGAIN, why);
            n = 0;
        }
        if (n)
            run_group(t, batch, n);
        if (pending && qs_pg_client_is_open(&t->wconn) &&
            qs_pg_presence_write(&t->presence, &t->wconn) < 0)
            writer_lost(t, NULL, 0, t->wconn.err);
        /* Only a node that publishes subscription events takes dead nodes' entries: one
         * that does not would drop their departures. */
        if (refresh && qs_pg_client_is_open(&t->wconn) &&
            (qs_pg_presence_refresh(&t->presence, &t->wconn) < 0 ||
             qs_pg_presence_reap(&t->presence, &t->wconn, &t->host) < 0))
            writer_lost(t, NULL, 0, t->wconn.err);
        uv_mutex_lock(&t->base.mu);
    }
    uv_mutex_unlock(&t->base.mu);
    if (qs_pg_client_is_open(&t->wconn) && t->presence_on)
        qs_pg_presence_forget(&t->presence, &t->wconn);
    qs_pg_client_close(&t->wconn);
    free(batch);
}

/* ------------------------------------------------------------ the reader */

static void fail_replay(qs_replay *r, const char *reason)
{
    qs_replay_clear(r);
    r->status = -1;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

/* Looks up the seq of the earliest update with this id: 1 found, 0 not, -1 (connection
 * failed) or 2 (refused: c->err). */
static int lookup_id(pg_transport *t, const char *id, uint64_t *seq)
{
    qs_pg_client *c = &t->rconn;
    qs_pg_params params = {0};
    /* Stored ids went through the same conversion, so a sanitized id matches. */
    qs_pg_text_append(qs_pg_params_next(&params), id, strlen(id));
    qs_pg_params_seal(&params);
    qs_pg_stmt st = {.sql = t->sql_lookup, .params = &params, .binary = true};
    PGresult *r = NULL;
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    qs_pg_params_free(&params);
    if (rc)
        return rc < 0 ? -1 : 2;
    int64_t v = 0;
    bool found = PQntuples(r) == 1 && PQnfields(r) == 1 && !PQgetisnull(r, 0, 0) &&
                 qs_pg_get_i64((qs_pg_value){PQgetvalue(r, 0, 0), PQgetlength(r, 0, 0)}, &v) &&
                 v > 0;
    PQclear(r);
    *seq = (uint64_t)v;
    return found ? 1 : 0;
}

/* Fills r; returns -1 when the connection failed (r may be retried), 0 otherwise. */
static int serve_replay(pg_transport *t, qs_replay *r)
{
    qs_pg_client *c = &t->rconn;
    qs_replay_clear(r);
    r->status = 0;
    r->finished = false;
    uint64_t until = r->until_seq;
    uint64_t after = r->after_seq;
    if (!r->continuation) {
        r->id_found = true;
        after = 0;
        if (strcmp(r->after_id, "earliest") != 0) {
            int rc = lookup_id(t, r->after_id, &after);
            if (rc < 0)
                return -1;
            if (rc == 2) {
                char why[QS_REASON_MAX];
                snprintf(why, sizeof(why), "postgres refused the history lookup: %.200s", c->err);
                fail_replay(r, why);
                return 0;
            }
            if (rc == 0) {
                /* Unknown (never stored, or trimmed): nothing is replayed, as lmdb.c. */
                r->id_found = false;
                r->finished = true;
                r->next_seq = 0;
                return 0;
            }
        }
    }
    r->next_seq = after;
    if (after >= until) {
        r->finished = true; /* nothing between the id and the subscriber's position */
        return 0;
    }
    size_t max_events = r->max_events ? r->max_events : 1024;
    size_t max_bytes = r->max_bytes ? r->max_bytes : (size_t)1 << 20;
    size_t avg = t->avg_record ? t->avg_record : 256;
    size_t count = QS_MIN(QS_MAX((size_t)16, max_bytes / avg + 1), max_events);
    qs_pg_params params = {0};
    qs_pg_put_i64(qs_pg_params_next(&params), (int64_t)after);
    qs_pg_put_i64(qs_pg_params_next(&params), (int64_t)count);
    qs_pg_params_seal(&params);
    qs_pg_stmt st = {.sql = t->sql_range, .params = &params, .binary = true};
    PGresult *res = NULL;
    int rc = qs_pg_client_exec(c, &st, &res, qs_pg_client_deadline(c), true);
    qs_pg_params_free(&params);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "postgres refused the history read: %.200s", c->err);
        fail_replay(r, why);
        return 0;
    }
    int rows = PQnfields(res) == QS_PG_UPDATE_COLS ? PQntuples(res) : 0;
    size_t cap = 0, bytes = 0;
    bool past_until = false;
    int i = 0;
    for (; i < rows; i++) {
        if (r->n_updates >= max_events || bytes >= max_bytes)
            break;
        qs_pg_value cols[QS_PG_UPDATE_COLS];
        qs_pg_client_row(res, i, cols, QS_PG_UPDATE_COLS);
        uint64_t seq = 0;
        int64_t row_seq = 0;
        if (qs_pg_get_i64(cols[QS_PG_COL_SEQ], &row_seq) && (uint64_t)row_seq > until) {
            past_until = true; /* the subscriber's bus delivers the rest */
            break;
        }
        qs_update *u = qs_pg_update_from_row(cols, &seq);
        if (u) {
            if (r->n_updates == cap) {
                cap = cap ? cap * 2 : 64;
                r->updates = qs_xrealloc(r->updates, cap * sizeof(*r->updates));
            }
            r->updates[r->n_updates++] = u;
            bytes += u->frame->len;
        } else {
            qs_warn("postgres %s: skipping row seq=%" PRIu64 " of %supdates in a replay: not a "
                    "valid update",
                    t->s.display, seq, t->s.prefix);
        }
        if (seq > r->next_seq)
            r->next_seq = seq;
    }
    /* Every row read and fewer than asked for: the range is exhausted up to `until`. */
    r->finished = past_until || (i == rows && (size_t)rows < count) || r->next_seq >= until;
    if (r->n_updates)
        t->avg_record = QS_MAX(bytes / r->n_updates, (size_t)1);
    PQclear(res);
    return 0;
}

/* The reader connects on demand; while the database is away, requests fail at once until
 * the backoff delay has passed. */
static bool reader_ready(pg_transport *t, char why[QS_REASON_MAX])
{
    qs_pg_client *c = &t->rconn;
    if (qs_pg_client_is_open(c))
        return true;
    uv_mutex_lock(&t->base.mu);
    bool wait = !t->rlink.up && t->rlink.reason[0] && qs_now_ms() < t->rlink.retry_at_ms;
    if (wait)
        snprintf(why, QS_REASON_MAX, "%s", t->rlink.reason);
    uv_mutex_unlock(&t->base.mu);
    if (wait)
        return false;
    if (qs_pg_client_open(c, true) < 0) {
        snprintf(why, QS_REASON_MAX, "%s", c->err);
        if (!is_stopping(t))
            link_down(t, &t->rlink, why);
        return false;
    }
    link_up(t, &t->rlink);
    return true;
}

static void serve_job(pg_transport *t, rjob *j)
{
    char why[QS_REASON_MAX] = "postgres unavailable";
    /* A second attempt on a fresh connection: an idle one may be stale after a restart. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!reader_ready(t, why))
            break;
        int rc = j->r ? serve_replay(t, j->r) : qs_pg_presence_list(&t->presence, &t->rconn, j->q);
        if (rc == 0) {
            if (j->r)
                j->r->done(j->r);
            else
                j->q->done(j->q);
            return;
        }
        snprintf(why, sizeof(why), "%s", t->rconn.err);
        if (!is_stopping(t))
            link_down(t, &t->rlink, why);
    }
    if (j->r) {
        fail_replay(j->r, why);
        j->r->done(j->r);
    } else {
        j->q->status = -1;
        snprintf(j->q->reason, sizeof(j->q->reason), "%s", why);
        j->q->done(j->q);
    }
}

/* Deletes updates past the retention limits: the number of rows deleted, or -1. */
static long run_trim(pg_transport *t)
{
    char why[QS_REASON_MAX];
    if (!reader_ready(t, why))
        return -1;
    qs_pg_client *c = &t->rconn;
    PGresult *r = NULL;
    qs_pg_stmt st = {.sql = t->sql_trim};
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    if (rc < 0) {
        if (!is_stopping(t))
            link_down(t, &t->rlink, c->err);
        return -1;
    }
    if (rc > 0) {
        qs_warn("postgres %s: retention: %s", t->s.display, c->err);
        return -1;
    }
    long n = atol(PQcmdTuples(r));
    PQclear(r);
    if (n)
        qs_debug("postgres %s: retention deleted %ld updates", t->s.display, n);
    return n;
}

static void reader_main(void *arg)
{
    pg_transport *t = arg;
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        uint64_t now = qs_now_ms();
        bool trim = t->sql_trim && now >= t->next_trim_ms;
        if (!t->jn && !t->stopping && !trim) {
            if (t->sql_trim)
                uv_cond_timedwait(&t->reader_cond, &t->base.mu, (t->next_trim_ms - now) * 1000000);
            else
                uv_cond_wait(&t->reader_cond, &t->base.mu);
            continue;
        }
        if (t->jn) {
            rjob j = t->jobs[0];
            memmove(t->jobs, t->jobs + 1, (t->jn - 1) * sizeof(*t->jobs));
            t->jn--;
            uv_mutex_unlock(&t->base.mu);
            serve_job(t, &j);
            uv_mutex_lock(&t->base.mu);
            continue;
        }
        if (t->stopping)
            break;
        uv_mutex_unlock(&t->base.mu);
        long n = run_trim(t);
        uv_mutex_lock(&t->base.mu);
        /* A full batch: more is due, after the jobs queued meanwhile. */
        t->next_trim_ms = n >= TRIM_BATCH ? now : now + TRIM_EVERY_MS;
    }
    uv_mutex_unlock(&t->base.mu);
    qs_pg_client_close(&t->rconn);
}

static void add_job(pg_transport *t, rjob j)
{
    uv_mutex_lock(&t->base.mu);
    if (t->jn == t->jcap) {
        t->jcap = t->jcap ? t->jcap * 2 : 16;
        t->jobs = qs_xrealloc(t->jobs, t->jcap * sizeof(*t->jobs));
    }
    t->jobs[t->jn++] = j;
    uv_cond_signal(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ start-up */

/* Connects the bus, waiting up to start_timeout for a database that is not up yet, and
 * makes sure of the tables: 0, or -1 with *err. Credentials, a missing database or role, a
 * missing privilege stop the start at once: waiting would not help. */
static int connect_at_start(pg_transport *t, const qs_config_transport *cfg, char **err)
{
    qs_pg_client *c = &t->bconn;
    const char *source = cfg->source ? cfg->source : "config";
    uint64_t deadline = qs_now_ms() + t->s.start_timeout_ms, backoff = BACKOFF_MIN_MS;
    bool said = false;
    for (;;) {
        int rc = qs_pg_client_open(c, true);
        if (rc < 0 && qs_pg_client_server_answered(&t->ctx)) {
            *err = qs_xasprintf("%s:%d: %s: %s: cannot connect: %s", source, cfg->line, t->name,
                                t->s.display, detail(c->err));
            return -1;
        }
        if (rc == 0)
            rc = qs_pg_schema_ensure(c, t->s.prefix);
        uint32_t oid = 0;
        if (rc == 0)
            rc = qs_pg_schema_updates_oid(c, t->s.prefix, &oid);
        if (rc == 0 && !t->sql_publish) {
            t->updates_oid = oid;
            build_statements(t, oid);
        }
        if (rc == 0)
            rc = bus_listen(t, c);
        if (rc == 0)
            rc = read_head(t, c);
        if (rc == 0)
            return 0;
        if (rc > 0) {
            *err =
                qs_xasprintf("%s:%d: %s: %s: %s", source, cfg->line, t->name, t->s.display, c->err);
            return -1;
        }
        /* Nobody answered, or the server is starting or stopping: wait for it. */
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "%s", detail(c->err));
        uint64_t now = qs_now_ms();
        if (now >= deadline) {
            *err =
                qs_xasprintf("%s:%d: %s: %s: cannot connect (gave up after "
                             "mercure_start_timeout, %" PRIu64 " ms): %s",
                             source, cfg->line, t->name, t->s.display, t->s.start_timeout_ms, why);
            return -1;
        }
        if (!said)
            qs_warn("postgres %s: waiting for the database (%s), at most %" PRIu64 " ms",
                    t->s.display, why, t->s.start_timeout_ms);
        said = true;
        qs_pg_client_ctx_sleep(&t->ctx, QS_MIN(backoff, deadline - now));
        backoff = QS_MIN(backoff * 2, (uint64_t)1000);
    }
}

/* ------------------------------------------------------------ operations */

static void pg_destroy(qs_transport *base);

static int pg_create(const qs_config_transport *cfg, const qs_transport_host *host,
                     qs_transport **out, char **err)
{
    qs_pg_settings s;
    if (qs_pg_settings_load(cfg, &s, err) < 0)
        return -1;
    pg_transport *t = qs_xcalloc(1, sizeof(*t));
    qs_transport_base_init(&t->base, &qs_transport_postgres_ops);
    t->host = *host;
    t->s = s;
    t->name = "transport postgres";
    t->presence_on = host->presence_lost != NULL;
    uv_cond_init(&t->writer_cond);
    uv_cond_init(&t->reader_cond);
    t->wlink.name = "publish";
    t->blink.name = "bus";
    t->rlink.name = "history";
    qs_pg_presence_init(&t->presence, s.prefix, s.presence_ttl_ms, &t->base.mu, t->s.display);
    if (qs_pg_client_ctx_init(&t->ctx, &t->s, err) < 0) {
        pg_destroy(&t->base);
        return -1;
    }
    qs_pg_client_init(&t->wconn, &t->ctx);
    qs_pg_client_init(&t->bconn, &t->ctx);
    qs_pg_client_init(&t->rconn, &t->ctx);
    if (connect_at_start(t, cfg, err) < 0) {
        pg_destroy(&t->base);
        return -1;
    }
    link_up(t, &t->blink);
    /* The writer connects now too: publishes are taken as soon as the hub listens. */
    writer_connect(t);
    qs_info("postgres %s: tables %s*, node %s, last event id %s (position %" PRIu64
            "), retention %s",
            t->s.display, s.prefix, t->presence.node, t->base.last_id ? t->base.last_id : "none",
            t->base.seq, t->sql_trim ? "on" : "off (every update is kept)");
    *out = &t->base;
    return 0;
}

static int pg_start(qs_transport *base, char **err)
{
    pg_transport *t = (pg_transport *)base;
    if (uv_thread_create(&t->writer, writer_main, t) || uv_thread_create(&t->bus, bus_main, t) ||
        uv_thread_create(&t->reader, reader_main, t)) {
        *err = qs_xstrdup("transport postgres: cannot start its threads");
        return -1;
    }
    t->threads_started = true;
    return 0;
}

static void pg_publish(qs_transport *base, qs_update *u, qs_publish_cb cb, void *arg)
{
    pg_transport *t = (pg_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (t->stopping) {
        uv_mutex_unlock(&t->base.mu);
        cb(arg, -EAGAIN, "the hub is shutting down");
        return;
    }
    if (!t->wlink.up || !t->blink.up) {
        char why[QS_REASON_MAX];
        down_reason(t, why);
        uv_mutex_unlock(&t->base.mu);
        cb(arg, -EAGAIN, why);
        return;
    }
    if (t->qn == t->qcap) {
        t->qcap = t->qcap ? t->qcap * 2 : 64;
        t->queue = qs_xrealloc(t->queue, t->qcap * sizeof(*t->queue));
    }
    t->queue[t->qn++] = (pitem){.u = qs_update_ref(u), .cb = cb, .arg = arg};
    uv_cond_signal(&t->writer_cond);
    uv_mutex_unlock(&t->base.mu);
}

static void pg_replay(qs_transport *base, qs_replay *r)
{
    add_job((pg_transport *)base, (rjob){.r = r});
}

static void pg_presence_list(qs_transport *base, qs_presence_query *q)
{
    add_job((pg_transport *)base, (rjob){.q = q});
}

static void pg_presence_add(qs_transport *base, const qs_presence_entry *e)
{
    pg_transport *t = (pg_transport *)base;
    uv_mutex_lock(&t->base.mu);
    qs_pg_presence_add(&t->presence, e);
    uv_cond_signal(&t->writer_cond);
    uv_mutex_unlock(&t->base.mu);
}

static void pg_presence_remove(qs_transport *base, const char *subscriber)
{
    pg_transport *t = (pg_transport *)base;
    uv_mutex_lock(&t->base.mu);
    qs_pg_presence_remove(&t->presence, subscriber);
    uv_cond_signal(&t->writer_cond);
    uv_mutex_unlock(&t->base.mu);
}

static bool pg_healthy(qs_transport *base, char reason[QS_REASON_MAX])
{
    pg_transport *t = (pg_transport *)base;
    uv_mutex_lock(&t->base.mu);
    bool ok = t->wlink.up && t->blink.up;
    if (!ok)
        down_reason(t, reason);
    uv_mutex_unlock(&t->base.mu);
    return ok;
}

static void pg_stop(qs_transport *base)
{
    pg_transport *t = (pg_transport *)base;
    uv_mutex_lock(&t->base.mu);
    t->stopping = true;
    uv_cond_broadcast(&t->writer_cond);
    uv_cond_broadcast(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
    qs_pg_client_ctx_wake(&t->ctx);
    if (t->threads_started) {
        uv_thread_join(&t->bus);
        uv_thread_join(&t->reader);
        uv_thread_join(&t->writer);
        t->threads_started = false;
    }
}

static void pg_destroy(qs_transport *base)
{
    pg_transport *t = (pg_transport *)base;
    pg_stop(base);
    qs_pg_client_close(&t->wconn);
    qs_pg_client_close(&t->bconn);
    qs_pg_client_close(&t->rconn);
    for (size_t i = 0; i < t->qn; i++)
        pitem_finish(&t->queue[i], -EAGAIN, "the hub is shutting down");
    free(t->queue);
    free(t->jobs);
    qs_pg_params_free(&t->group);
    qs_pg_presence_destroy(&t->presence);
    qs_pg_client_ctx_destroy(&t->ctx);
    qs_transport_base_destroy(&t->base);
    uv_cond_destroy(&t->writer_cond);
    uv_cond_destroy(&t->reader_cond);
    free(t->sql_publish);
    free(t->sql_fetch);
    free(t->sql_range);
    free(t->sql_lookup);
    free(t->sql_head);
    free(t->sql_listen);
    free(t->sql_trim);
    qs_pg_settings_free(&t->s);
    free(t);
}

const qs_transport_ops qs_transport_postgres_ops = {
    .name = "postgres",
    .has_history = true,
    .create = pg_create,
    .start = pg_start,
    .publish = pg_publish,
    .replay = pg_replay,
    .healthy = pg_healthy,
    .presence_add = pg_presence_add,
    .presence_remove = pg_presence_remove,
    .presence_list = pg_presence_list,
    .stop = pg_stop,
    .destroy = pg_destroy,
};
