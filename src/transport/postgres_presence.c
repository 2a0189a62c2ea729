/* SPDX-License-Identifier: MIT
 * postgres_presence.c - the cluster's registry of subscriptions in PostgreSQL
 * (postgres_presence.h): this node's entries, its lease, the write of what changed, the
 * reaping of dead nodes, and reads.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "transport/postgres_presence.h"
#include "uuid.h"

/* Writes this node's entries. $1 node, $2 lease (ms), $3 everything (bool), $4 the
 * subscribers removed (delta only), then the entries to upsert: $5 subscribers, $6 all their
 * topics in a row, $7 and $8 the first and last position of each entry's topics in $6, $9
 * payloads, $10 registration times, $11 protocol 1.0's selectors (JSON, NULL for 0.x
 * entries). In a full write, the node's lease is taken and the
 * node's rows that are not in $5 are deleted. The deleted rows and the upserted ones are
 * never the same (one statement may not touch a row twice). */
static const char sync_sql[] =
    "WITH lease AS ("
    " INSERT INTO %1$snodes (node, lease_until)"
    " SELECT $1::uuid, now() + $2::int8 * interval '1 millisecond' WHERE $3::bool"
    " ON CONFLICT (node) DO UPDATE SET lease_until = EXCLUDED.lease_until),"
    " gone AS ("
    " DELETE FROM %1$ssubscriptions WHERE node = $1::uuid AND CASE WHEN $3::bool"
    " THEN NOT (subscriber = ANY ($5::text[])) ELSE subscriber = ANY ($4::text[]) END)"
    " INSERT INTO %1$ssubscriptions (subscriber, node, topics, payload, registered_at,"
    " selectors)"
    " SELECT r.subscriber, $1::uuid, ($6::text[])[r.tfrom:r.tto], r.payload::json, r.registered,"
    " r.selectors::json"
    " FROM unnest($5::text[], $7::int4[], $8::int4[], $9::text[], $10::timestamptz[],"
    " $11::text[])"
    " AS r(subscriber, tfrom, tto, payload, registered, selectors)"
    " ON CONFLICT (subscriber) DO UPDATE SET node = EXCLUDED.node, topics = EXCLUDED.topics,"
    " payload = EXCLUDED.payload, registered_at = EXCLUDED.registered_at,"
    " selectors = EXCLUDED.selectors";

static const char refresh_sql[] =
    "UPDATE %1$snodes SET lease_until = now() + $2::int8 * interval '1 millisecond'"
    " WHERE node = $1::uuid";

/* Takes the entries of the nodes whose lease passed ($1: this node; $2: the TTL in ms),
 * and those of no node at all that are older than a TTL (a node whose lease was taken, then
 * wrote a change and died before writing its lease again). The row locks make a second
 * reaper running at once find nothing. */
static const char reap_sql[] =
    "WITH dead AS ("
    " DELETE FROM %1$snodes WHERE lease_until < now() AND node <> $1::uuid RETURNING node)"
    " DELETE FROM %1$ssubscriptions s WHERE s.node <> $1::uuid AND (s.node IN (SELECT node FROM "
    "dead)"
    " OR (NOT EXISTS (SELECT 1 FROM %1$snodes n WHERE n.node = s.node)"
    " AND s.registered_at < now() - $2::int8 * interval '1 millisecond'))"
    " RETURNING s.subscriber, s.topics, s.payload::text, s.registered_at, s.node::text,"
    " s.selectors::text";

static const char list_sql[] =
    "SELECT s.subscriber, s.topics, s.payload::text, s.registered_at, s.node::text,"
    " s.selectors::text FROM %1$ssubscriptions s JOIN %1$snodes n ON n.node = s.node"
    " WHERE n.lease_until > now() AND s.node <> $1::uuid";

static const char forget_sql[] =
    "WITH gone AS (DELETE FROM %1$ssubscriptions WHERE node = $1::uuid)"
    " DELETE FROM %1$snodes WHERE node = $1::uuid";

/* ------------------------------------------------------------ set up */

void qs_pg_presence_init(qs_pg_presence *p, const char *prefix, uint64_t ttl_ms, uv_mutex_t *mu,
                         const char *display)
{
    memset(p, 0, sizeof(*p));
    char urn[QS_UUID_URN_LEN + 1];
    qs_uuid4_urn(urn);
    snprintf(p->node, sizeof(p->node), "%s", urn + 9);
    for (size_t i = 0, k = 0; p->node[i] && k < 16; i++) {
        if (p->node[i] == '-')
            continue;
        p->node_bytes[k++] = (unsigned char)(qs_hex_value((unsigned char)p->node[i]) * 16 +
                                             qs_hex_value((unsigned char)p->node[i + 1]));
        i++;
    }
    p->display = display;
    p->ttl_ms = ttl_ms;
    p->sql_sync = qs_xasprintf(sync_sql, prefix);
    p->sql_refresh = qs_xasprintf(refresh_sql, prefix);
    p->sql_reap = qs_xasprintf(reap_sql, prefix);
    p->sql_list = qs_xasprintf(list_sql, prefix);
    p->sql_forget = qs_xasprintf(forget_sql, prefix);
    p->mu = mu;
    qs_strmap_init(&p->local);
    qs_strmap_init(&p->dirty);
}

void qs_pg_presence_destroy(qs_pg_presence *p)
{
    qs_presence_map_free(&p->local);
    qs_strmap_free(&p->dirty);
    free(p->sql_sync);
    free(p->sql_refresh);
    free(p->sql_reap);
    free(p->sql_list);
    free(p->sql_forget);
}

uint64_t qs_pg_presence_refresh_ms(const qs_pg_presence *p)
{
    return QS_MAX(p->ttl_ms / 3, (uint64_t)100);
}

/* ------------------------------------------------------------ this node's entries */

/* Registration order across nodes: wall-clock microseconds, strictly increasing here. */
static uint64_t next_order(qs_pg_presence *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (us <= p->last_order)
        us = p->last_order + 1;
    p->last_order = us;
    return us;
}

static void mark_dirty(qs_pg_presence *p, const char *subscriber)
{
    void **slot = qs_strmap_upsert(&p->dirty, subscriber, strlen(subscriber));
    *slot = p; /* any non-NULL value */
}

void qs_pg_presence_add(qs_pg_presence *p, const qs_presence_entry *e)
{
    qs_presence_entry *copy = qs_xcalloc(1, sizeof(*copy));
    qs_presence_entry_copy(copy, e);
    copy->order = next_order(p);
    qs_presence_map_put(&p->local, copy);
    mark_dirty(p, copy->subscriber);
}

void qs_pg_presence_remove(qs_pg_presence *p, const char *subscriber)
{
    if (!qs_presence_map_remove(&p->local, subscriber))
        return;
    mark_dirty(p, subscriber);
}

bool qs_pg_presence_pending(const qs_pg_presence *p)
{
    return p->rewrite || qs_strmap_count(&p->dirty) > 0;
}

void qs_pg_presence_rewrite(qs_pg_presence *p)
{
    p->rewrite = true;
}

/* ------------------------------------------------------------ writes */

static void put_node(const qs_pg_presence *p, qs_pg_params *params)
{
    qs_buf_append(qs_pg_params_next(params), p->node_bytes, sizeof(p->node_bytes));
}

/* Lock held. The parameters of the sync statement for what is to be written now. */
static void sync_params(qs_pg_presence *p, qs_pg_params *params, bool full)
{
    qs_pg_params_reset(params);
    put_node(p, params);
    qs_pg_put_i64(qs_pg_params_next(params), (int64_t)p->ttl_ms);
    qs_buf_append_char(qs_pg_params_next(params), full ? 1 : 0);
    qs_pg_array removed, subs, topics, from, to, payloads, times, selectors;
    qs_pg_array_begin(&removed, qs_pg_params_next(params), QS_PG_TEXT);
    qs_pg_array_begin(&subs, qs_pg_params_next(params), QS_PG_TEXT);
    qs_pg_array_begin(&topics, qs_pg_params_next(params), QS_PG_TEXT);
    qs_pg_array_begin(&from, qs_pg_params_next(params), QS_PG_INT4);
    qs_pg_array_begin(&to, qs_pg_params_next(params), QS_PG_INT4);
    qs_pg_array_begin(&payloads, qs_pg_params_next(params), QS_PG_TEXT);
    qs_pg_array_begin(&times, qs_pg_params_next(params), QS_PG_TIMESTAMPTZ);
    qs_pg_array_begin(&selectors, qs_pg_params_next(params), QS_PG_TEXT);
    const qs_strmap_entry *me;
    const qs_strmap *which = full ? &p->local : &p->dirty;
    for (size_t pos = 0; qs_strmap_next(which, &pos, &me);) {
        const qs_presence_entry *e =
            full ? me->value : qs_strmap_get(&p->local, me->key, me->key_len);
        if (!e) {
            qs_pg_array_text(&removed, me->key, me->key_len);
            continue;
        }
        qs_pg_array_text(&subs, e->subscriber, strlen(e->subscriber));
        qs_pg_array_i32(&from, topics.n + 1);
        for (size_t k = 0; k < e->n_topics; k++)
            qs_pg_array_text(&topics, e->topics[k], strlen(e->topics[k]));
        qs_pg_array_i32(&to, topics.n);
        if (e->payload)
            qs_pg_array_text(&payloads, e->payload, strlen(e->payload));
        else
            qs_pg_array_null(&payloads);
        qs_pg_array_i64(&times, qs_pg_timestamp_from_unix_us((int64_t)e->order));
        char *v1 = qs_pg_presence_selectors(e);
        if (v1)
            qs_pg_array_text(&selectors, v1, strlen(v1));
        else
            qs_pg_array_null(&selectors);
        free(v1);
    }
    qs_pg_array *all[] = {&removed, &subs, &topics, &from, &to, &payloads, &times, &selectors};
    for (size_t i = 0; i < QS_ARRAY_LEN(all); i++)
        qs_pg_array_end(all[i]);
    qs_pg_params_seal(params);
}

int qs_pg_presence_write(qs_pg_presence *p, qs_pg_client *c)
{
    qs_pg_params params = {0};
    uv_mutex_lock(p->mu);
    bool full = p->rewrite;
    sync_params(p, &params, full);
    /* What changed from now on is written next time. */
    qs_strmap_free(&p->dirty);
    qs_strmap_init(&p->dirty);
    p->rewrite = false;
    uv_mutex_unlock(p->mu);
    qs_pg_stmt st = {.sql = p->sql_sync, .params = &params};
    int rc = qs_pg_client_exec(c, &st, NULL, qs_pg_client_deadline(c), false);
    qs_pg_params_free(&params);
    if (rc > 0) /* not retried now (it would be refused again): the next full write repairs */
        qs_warn("postgres %s: presence update refused: %s", p->display, c->err);
    if (rc < 0) {
        uv_mutex_lock(p->mu);
        p->rewrite = true; /* everything is written after the next connection */
        uv_mutex_unlock(p->mu);
    }
    return rc < 0 ? -1 : 0;
}

int qs_pg_presence_refresh(qs_pg_presence *p, qs_pg_client *c)
{
    qs_pg_params params = {0};
    put_node(p, &params);
    qs_pg_put_i64(qs_pg_params_next(&params), (int64_t)p->ttl_ms);
    qs_pg_params_seal(&params);
    qs_pg_stmt st = {.sql = p->sql_refresh, .params = &params};
    PGresult *r = NULL;
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), false);
    qs_pg_params_free(&params);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        qs_warn("postgres %s: presence lease refused: %s", p->display, c->err);
        return 0;
    }
    bool alive = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    if (alive)
        return 0;
    /* The lease had passed (this node stalled longer than its TTL; another node may have
     * taken its entries and published their departures): write them again. */
    qs_warn("postgres %s: the presence lease of this node had expired; rewriting its entries",
            p->display);
    uv_mutex_lock(p->mu);
    p->rewrite = true;
    uv_mutex_unlock(p->mu);
    return qs_pg_presence_write(p, c);
}

/* ------------------------------------------------------------ reads */

/* Reads the presence rows of a result; malformed ones are skipped with a warning. */
static qs_pg_ranked *read_rows(const qs_pg_presence *p, const PGresult *r, size_t extra, size_t *n)
{
    int rows = PQnfields(r) == QS_PG_PRESENCE_COLS ? PQntuples(r) : 0;
    qs_pg_ranked *v = qs_xcalloc((size_t)rows + extra + 1, sizeof(*v));
    size_t k = 0;
    for (int i = 0; i < rows; i++) {
        qs_pg_value cols[QS_PG_PRESENCE_COLS];
        qs_pg_client_row(r, i, cols, QS_PG_PRESENCE_COLS);
        if (qs_pg_presence_from_row(cols, &v[k]) == 0)
            k++;
        else
            qs_warn("postgres %s: skipping an unreadable presence entry", p->display);
    }
    *n = k;
    return v;
}

static void ranked_free(qs_pg_ranked *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        qs_presence_entry_clear(&v[i].e);
        free(v[i].node);
    }
    free(v);
}

int qs_pg_presence_reap(qs_pg_presence *p, qs_pg_client *c, const qs_transport_host *host)
{
    qs_pg_params params = {0};
    put_node(p, &params);
    qs_pg_put_i64(qs_pg_params_next(&params), (int64_t)p->ttl_ms);
    qs_pg_params_seal(&params);
    qs_pg_stmt st = {.sql = p->sql_reap, .params = &params, .binary = true};
    PGresult *r = NULL;
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), false);
    qs_pg_params_free(&params);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        qs_warn("postgres %s: reading dead nodes' presence: %s", p->display, c->err);
        return 0;
    }
    size_t n = 0;
    qs_pg_ranked *v = read_rows(p, r, 0, &n);
    PQclear(r);
    if (n) {
        qs_pg_presence_sort(v, n);
        qs_presence_entry *entries = qs_xcalloc(n, sizeof(*entries));
        for (size_t i = 0; i < n; i++)
            entries[i] = v[i].e;
        qs_info("postgres %s: %zu subscriptions of node(s) whose lease passed are gone", p->display,
                n);
        if (host->presence_lost)
            host->presence_lost(host->ctx, entries, n);
        free(entries);
    }
    ranked_free(v, n);
    return 0;
}

void qs_pg_presence_forget(qs_pg_presence *p, qs_pg_client *c)
{
    qs_pg_params params = {0};
    put_node(p, &params);
    qs_pg_params_seal(&params);
    qs_pg_stmt st = {.sql = p->sql_forget, .params = &params};
    int rc = qs_pg_client_exec(c, &st, NULL, qs_pg_client_deadline(c), false);
    qs_pg_params_free(&params);
    if (rc)
        qs_warn("postgres %s: could not remove this node's presence entries: %s", p->display,
                c->err);
}

int qs_pg_presence_list(qs_pg_presence *p, qs_pg_client *c, qs_presence_query *q)
{
    qs_pg_params params = {0};
    put_node(p, &params);
    qs_pg_params_seal(&params);
    qs_pg_stmt st = {.sql = p->sql_list, .params = &params, .binary = true};
    PGresult *r = NULL;
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    qs_pg_params_free(&params);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        q->status = -1;
        snprintf(q->reason, sizeof(q->reason), "postgres refused the presence read: %.200s",
                 c->err);
        return 0;
    }
    uv_mutex_lock(p->mu);
    size_t n_local = qs_strmap_count(&p->local), n = 0;
    qs_pg_ranked *v = read_rows(p, r, n_local, &n);
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(&p->local, &pos, &me);) {
        qs_presence_entry_copy(&v[n].e, me->value);
        v[n++].node = qs_xstrdup(p->node);
    }
    uv_mutex_unlock(p->mu);
    PQclear(r);
    qs_pg_presence_sort(v, n);
    q->entries = qs_xcalloc(n ? n : 1, sizeof(*q->entries));
    for (size_t i = 0; i < n; i++) {
        q->entries[i] = v[i].e; /* moved */
        free(v[i].node);
    }
    q->n = n;
    q->status = 0;
    free(v);
    return 0;
}
