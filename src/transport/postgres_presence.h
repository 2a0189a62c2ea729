/* SPDX-License-Identifier: MIT
 * postgres_presence.h - the cluster-wide registry of active subscriptions, kept in
 * PostgreSQL by the PostgreSQL transport (postgres.c), in the tables <prefix>nodes and
 * <prefix>subscriptions (postgres_schema.h).
 *
 * Each node holds a lease: its row in <prefix>nodes, whose lease_until it pushes
 * presence_ttl ahead every third of it. While the lease lives, the node's subscriptions
 * are listed by every node; once it has passed (the node died without saying goodbye, or
 * lost the database for longer than the TTL), one surviving node deletes that node's row
 * and subscriptions in one statement, and reports them to the hub, which publishes their
 * departures: the row locks make exactly one node get them. A node keeps its entries in
 * memory too (fresher than the tables: its writes may still be pending), so it lists
 * its own from memory and rewrites them all after a reconnection or a lost lease.
 *
 * Times are the database's (now()), so clocks of the hubs need not agree; registration
 * order is each hub's wall clock in microseconds, as with Redis.
 *
 * Threading: the entries in memory and the set of changes not written yet are guarded by
 * the lock given to init (the transport's own). Functions marked "lock held" are called
 * with it held; the others take it when they need it and do I/O on the connection they are
 * given, from the thread that owns it (writes and lease: the writer; reads: the reader).
 * Connection failures return -1 (reason in the connection's err); the server's refusals of
 * presence writes are logged, not returned.
 */
#ifndef QS_TRANSPORT_POSTGRES_PRESENCE_H
#define QS_TRANSPORT_POSTGRES_PRESENCE_H

#include <uv.h>

#include "strmap.h"
#include "transport/postgres_client.h"

typedef struct qs_pg_presence {
    /* Set by init, then read-only. */
    char node[37];                /* this node's id (a random UUID, text form) */
    unsigned char node_bytes[16]; /* …as the uuid parameter of statements */
    const char *display;          /* the database, for logs (borrowed) */
    uint64_t ttl_ms;
    char *sql_sync, *sql_refresh, *sql_reap, *sql_list, *sql_forget;
    /* This node's entries (subscriber -> qs_presence_entry *), the subscribers changed
     * since the last write (subscriber -> non-NULL), whether everything must be written,
     * and the last registration order handed out; under *mu. */
    uv_mutex_t *mu;
    qs_strmap local;
    qs_strmap dirty;
    bool rewrite;
    uint64_t last_order;
} qs_pg_presence;

/** Sets up the registry for a new node (a fresh node id); the strings and the lock are
 *  borrowed. */
void qs_pg_presence_init(qs_pg_presence *p, const char *prefix, uint64_t ttl_ms, uv_mutex_t *mu,
                         const char *display);
void qs_pg_presence_destroy(qs_pg_presence *p);

/** How often the lease is pushed ahead (and dead nodes reaped): a third of the TTL. */
uint64_t qs_pg_presence_refresh_ms(const qs_pg_presence *p);

/** Lock held. Registers a subscriber of this node (a copy of e, with a fresh registration
 *  order) or replaces its entry, to be written at the next write. */
void qs_pg_presence_add(qs_pg_presence *p, const qs_presence_entry *e);
/** Lock held. Forgets a subscriber of this node (the deletion is written at the next
 *  write). */
void qs_pg_presence_remove(qs_pg_presence *p, const char *subscriber);
/** Lock held. True when something is to be written. */
bool qs_pg_presence_pending(const qs_pg_presence *p);
/** Lock held. Everything is to be written at the next write (after a reconnection). */
void qs_pg_presence_rewrite(qs_pg_presence *p);

/** Writes what changed (or everything, with this node's lease): 0, or -1 when the
 *  connection failed (everything is then written after the next connection). */
int qs_pg_presence_write(qs_pg_presence *p, qs_pg_client *c);
/** Pushes the lease ahead; when it had been lost (this node stalled longer than the TTL,
 *  and another may have reaped its entries), writes everything again. 0, or -1. */
int qs_pg_presence_refresh(qs_pg_presence *p, qs_pg_client *c);
/** Takes the entries of nodes whose lease passed and reports them to host->presence_lost.
 *  0, or -1. */
int qs_pg_presence_reap(qs_pg_presence *p, qs_pg_client *c, const qs_transport_host *host);
/** Deletes this node's lease and entries (clean stop); failures are logged. */
void qs_pg_presence_forget(qs_pg_presence *p, qs_pg_client *c);
/** Reads every live node's entries, this node's from memory, sorted: 0 with q filled
 *  (q->status -1 with a reason when the server refused), or -1 when the connection
 *  failed. */
int qs_pg_presence_list(qs_pg_presence *p, qs_pg_client *c, qs_presence_query *q);

#endif
