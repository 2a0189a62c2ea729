/* SPDX-License-Identifier: MIT
 * postgres_schema.c - creating and migrating the PostgreSQL transport's tables
 * (postgres_schema.h).
 *
 * Migrations are numbered: migration i brings the tables from version i to version i + 1
 * (migration 0 creates them). A release that changes the tables appends one; every hub
 * starting runs the missing ones under the advisory lock, in one transaction with the new
 * version number, so a failed migration leaves the previous version intact.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "transport/postgres_schema.h"

/* %1$s is the prefix. */
static const char *const migrations[] = {
    /* 0 -> 1: the tables. */
    "CREATE TABLE %1$supdates ("
    " seq bigint PRIMARY KEY,"
    " id text NOT NULL,"
    " topics text[] NOT NULL,"
    " private boolean NOT NULL DEFAULT false,"
    " type text,"
    " retry bigint,"
    " data text NOT NULL,"
    " published_at timestamptz NOT NULL DEFAULT now());"
    /* Ids are looked up by equality only, and a custom id may be longer than a B-tree
     * entry allows: a hash index takes any length. */
    "CREATE INDEX %1$supdates_id ON %1$supdates USING hash (id);"
    "COMMENT ON TABLE %1$supdates IS 'Mercure updates published through Quicksilver, one row "
    "per update, in the order every hub delivered them (seq)';"
    "CREATE TABLE %1$shead ("
    " one boolean PRIMARY KEY DEFAULT true CHECK (one),"
    " last_seq bigint NOT NULL);"
    "INSERT INTO %1$shead (last_seq) VALUES (0);"
    "COMMENT ON TABLE %1$shead IS 'The last seq handed out to an update (Quicksilver)';"
    "CREATE TABLE %1$snodes ("
    " node uuid PRIMARY KEY,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " lease_until timestamptz NOT NULL);"
    "COMMENT ON TABLE %1$snodes IS 'Quicksilver hubs with subscriptions, and how long their "
    "lease lasts';"
    "CREATE TABLE %1$ssubscriptions ("
    " subscriber text PRIMARY KEY,"
    " node uuid NOT NULL,"
    " topics text[] NOT NULL,"
    " payload json,"
    " registered_at timestamptz NOT NULL);"
    "CREATE INDEX %1$ssubscriptions_node ON %1$ssubscriptions (node);"
    "COMMENT ON TABLE %1$ssubscriptions IS 'Active Mercure subscriptions of every Quicksilver "
    "hub';",
};

_Static_assert(QS_ARRAY_LEN(migrations) == QS_PG_SCHEMA_VERSION,
               "one migration per schema version");

int64_t qs_pg_lock_key(const char *prefix, const char *purpose)
{
    /* FNV-1a over "quicksilver:<purpose>:<prefix>": any stable 64-bit value does. */
    uint64_t h = UINT64_C(14695981039346656037);
    const char *parts[] = {"quicksilver:", purpose, ":", prefix};
    for (size_t i = 0; i < QS_ARRAY_LEN(parts); i++)
        for (const char *p = parts[i]; *p; p++) {
            h ^= (unsigned char)*p;
            h *= UINT64_C(1099511628211);
        }
    return (int64_t)h;
}

/* The version of the tables: 0 when there are none. Returns 0, 1 (refused) or -1. */
static int read_version(qs_pg_client *c, const char *prefix, int *version)
{
    char *sql = qs_xasprintf("SELECT to_regclass('%sschema') IS NOT NULL", prefix);
    PGresult *r = NULL;
    qs_pg_stmt st = {.sql = sql, .binary = false};
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    free(sql);
    if (rc)
        return rc;
    bool exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    *version = 0;
    if (!exists)
        return 0;
    sql = qs_xasprintf("SELECT coalesce(max(version), 0) FROM %sschema", prefix);
    st.sql = sql;
    rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    free(sql);
    if (rc)
        return rc;
    *version = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return 0;
}

static int refuse(qs_pg_client *c, const char *fmt, ...) QS_PRINTF(2, 3);
static int refuse(qs_pg_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return 1;
}

/* Runs the missing migrations, in the transaction the caller opened. */
static int migrate(qs_pg_client *c, const char *prefix, int from)
{
    for (int v = from; v < QS_PG_SCHEMA_VERSION; v++) {
        char *sql = qs_xasprintf(migrations[v], prefix);
        int rc = qs_pg_client_run(c, sql, true);
        free(sql);
        if (rc)
            return rc;
    }
    char *sql =
        from == 0 ? qs_xasprintf("CREATE TABLE %1$sschema (version integer NOT NULL);"
                                 "INSERT INTO %1$sschema VALUES (%2$d)",
                                 prefix, QS_PG_SCHEMA_VERSION)
                  : qs_xasprintf("UPDATE %sschema SET version = %d", prefix, QS_PG_SCHEMA_VERSION);
    int rc = qs_pg_client_run(c, sql, true);
    free(sql);
    return rc;
}

static int check_server(qs_pg_client *c)
{
    int version = PQserverVersion(c->conn);
    if (version < 100000)
        return refuse(c, "PostgreSQL %d.%d is too old: version 10 or later is needed",
                      version / 10000, version / 100 % 100);
    const char *enc = PQparameterStatus(c->conn, "server_encoding");
    if (enc && strcmp(enc, "UTF8") != 0 && strcmp(enc, "SQL_ASCII") != 0)
        return refuse(c,
                      "the database's encoding is %s: Quicksilver stores UTF-8 text, so it "
                      "needs a UTF8 database (CREATE DATABASE … ENCODING 'UTF8')",
                      enc);
    return 0;
}

int qs_pg_schema_ensure(qs_pg_client *c, const char *prefix)
{
    int rc = check_server(c);
    int version = 0;
    if (rc || (rc = read_version(c, prefix, &version)) != 0)
        return rc;
    if (version == QS_PG_SCHEMA_VERSION)
        return 0;
    if (version > QS_PG_SCHEMA_VERSION)
        return refuse(c,
                      "the tables %s* are at schema version %d, newer than this release's (%d): "
                      "run a newer Quicksilver",
                      prefix, version, QS_PG_SCHEMA_VERSION);
    /* A session lock, taken before the transaction: the transaction then starts after the
     * previous holder committed, and sees its tables (a transaction reads the catalog as
     * of its start for names it looked up before). */
    char lock[96], unlock[96];
    int64_t key = qs_pg_lock_key(prefix, "schema");
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%" PRId64 ")", key);
    snprintf(unlock, sizeof(unlock), "SELECT pg_advisory_unlock(%" PRId64 ")", key);
    if ((rc = qs_pg_client_run(c, lock, true)) != 0)
        return rc;
    if ((rc = qs_pg_client_run(c, "BEGIN", true)) != 0 ||
        (rc = read_version(c, prefix, &version)) != 0)
        goto fail;
    /* Another hub may have done it while this one waited for the lock. */
    if (version < QS_PG_SCHEMA_VERSION) {
        qs_info("postgres %s: %s the tables %s* (schema version %d)", c->ctx->display,
                version ? "migrating" : "creating", prefix, QS_PG_SCHEMA_VERSION);
        if ((rc = migrate(c, prefix, version)) != 0)
            goto fail;
    }
    if ((rc = qs_pg_client_run(c, "COMMIT", true)) == 0)
        return qs_pg_client_run(c, unlock, true);
fail:
    if (rc > 0) {
        char why[QS_REASON_MAX];
        snprintf(why, sizeof(why), "%s", c->err);
        qs_pg_client_run(c, "ROLLBACK", true);
        qs_pg_client_run(c, unlock, true);
        snprintf(c->err, sizeof(c->err), "cannot create the tables %s*: %.180s", prefix, why);
    }
    return rc;
}

int qs_pg_schema_updates_oid(qs_pg_client *c, const char *prefix, uint32_t *oid)
{
    char *sql = qs_xasprintf("SELECT '%supdates'::regclass::oid", prefix);
    PGresult *r = NULL;
    qs_pg_stmt st = {.sql = sql};
    int rc = qs_pg_client_exec(c, &st, &r, qs_pg_client_deadline(c), true);
    free(sql);
    if (rc)
        return rc;
    char *end = NULL;
    unsigned long v = PQntuples(r) == 1 ? strtoul(PQgetvalue(r, 0, 0), &end, 10) : 0;
    PQclear(r);
    if (!v || v > UINT32_MAX)
        return refuse(c, "cannot find the table %supdates", prefix);
    *oid = (uint32_t)v;
    return 0;
}
