/* SPDX-License-Identifier: MIT
 * postgres_schema.h - the tables of the PostgreSQL transport, and their creation and
 * migration at start-up (docs/postgres.md describes them for users who query them).
 *
 *   <prefix>schema         one row: the version of the tables below
 *   <prefix>updates        one row per update, in the cluster's one order (seq)
 *   <prefix>head           one row: the last seq handed out. Publishes take it with an
 *                          UPDATE that holds its row lock until they commit, so seqs are
 *                          handed out in commit order (see postgres.c)
 *   <prefix>nodes          the hubs that registered subscribers, and their leases
 *   <prefix>subscriptions  the active subscriptions of every node
 *
 * The notification channel is <prefix>updates_<OID of that table>: hubs of a table of the
 * same name in another schema of the database never hear of these updates. The prefix is
 * checked to be a plain lower-case identifier (qs_pg_prefix_valid), so statements name
 * tables without quoting.
 */
#ifndef QS_TRANSPORT_POSTGRES_SCHEMA_H
#define QS_TRANSPORT_POSTGRES_SCHEMA_H

#include "transport/postgres_client.h"

/** The version of the tables this release creates and uses. */
#define QS_PG_SCHEMA_VERSION 1

/** Keys of advisory locks (the same on every node for a prefix): schema changes, and the
 *  retention runs (one node at a time). */
int64_t qs_pg_lock_key(const char *prefix, const char *purpose);

/**
 * Makes sure the tables exist at QS_PG_SCHEMA_VERSION: reads the version (no lock and no
 * privilege needed when it is current); otherwise, under an advisory lock held around the
 * transaction (so that hubs starting at once do not race), creates the tables or migrates
 * them. Also
 * checks the server: PostgreSQL 10 or later, a UTF8 (or SQL_ASCII) database.
 * Returns 0; 1 when the server refused (c->err: the reason, e.g. a missing privilege, or a
 * version newer than this release knows); -1 when the connection failed (c->err).
 */
int qs_pg_schema_ensure(qs_pg_client *c, const char *prefix);

/** The OID of <prefix>updates as the connection's search path finds it: 0, 1 (refused) or
 *  -1, as qs_pg_schema_ensure. */
int qs_pg_schema_updates_oid(qs_pg_client *c, const char *prefix, uint32_t *oid);

#endif
