/* SPDX-License-Identifier: MIT
 * redis_presence.h - the cluster-wide registry of active subscriptions, kept in Redis by
 * the Redis transport (redis.c).
 *
 * Keys (<stream> is the transport's stream):
 *   <stream>:nodes            set of the node ids that registered subscribers
 *   <stream>:presence:<node>  hash: subscriber id -> {"topics":[…],"payload":…,"order":…}
 *   <stream>:alive:<node>     the node's lease, with a TTL the node keeps refreshing
 *
 * Each node writes its own entries to its hash and holds a lease (presence_ttl) that it
 * refreshes every third of it; while the lease lives, the node's entries are listed. A node
 * keeps its entries in memory too (fresher than Redis: its writes may still be queued), so
 * it can rewrite its hash after a reconnection, or after its lease expired. The entries of a
 * node whose lease expired (it died without cleaning up) are no longer listed, and one
 * surviving node takes them atomically (the reap script) and reports them to the hub,
 * which publishes their departures.
 *
 * Threading: the entries in memory are guarded by the lock given to init (the transport's
 * own, so that a presence change and the queueing of its write are one step). Functions
 * marked "lock held" are called with it held; the others take it themselves when they need
 * it, and do I/O on the connection they are given, from the thread that owns it.
 * Connection failures return -1 with the reason in the connection's err (redis_client.h);
 * Redis's refusals of presence writes are logged, not returned: the next rewrite repairs.
 */
#ifndef QS_TRANSPORT_REDIS_PRESENCE_H
#define QS_TRANSPORT_REDIS_PRESENCE_H

#include <hiredis/hiredis.h>
#include <uv.h>

#include "strmap.h"
#include "transport.h"
#include "transport/redis_client.h"

typedef struct qs_redis_presence {
    /* Set by init, then read-only. */
    char node[40];    /* this node's id (a random UUID) */
    const char *addr; /* "host:port" of Redis, for logs (borrowed) */
    char *k_nodes, *k_presence, *presence_prefix, *k_alive, *alive_prefix;
    uint64_t ttl_ms;
    char ttl_arg[24];
    qs_redis_client_script list, reap;
    /* This node's entries (subscriber -> qs_presence_entry *) and the last registration
     * order handed out, under *mu. */
    uv_mutex_t *mu;
    qs_strmap local;
    uint64_t last_order;
} qs_redis_presence;

/** Sets up the registry of the stream's cluster for a new node (a fresh node id). The
 *  strings and the lock are borrowed. */
void qs_redis_presence_init(qs_redis_presence *p, const char *stream, uint64_t ttl_ms,
                            uv_mutex_t *mu, const char *addr);
void qs_redis_presence_destroy(qs_redis_presence *p);

/** How often the lease is refreshed (and dead nodes reaped): a third of the TTL. */
uint64_t qs_redis_presence_refresh_ms(const qs_redis_presence *p);

/**
 * Lock held. Registers a subscriber of this node (a copy of e, with a fresh registration
 * order: wall-clock microseconds, strictly increasing) or replaces its entry. When cmds is
 * not NULL, appends the commands that write it to Redis. Returns how many replies they
 * produce.
 */
size_t qs_redis_presence_add(qs_redis_presence *p, const qs_presence_entry *e, qs_buf *cmds);
/** Lock held. Forgets a subscriber of this node; appends its deletion to cmds (when not
 *  NULL). Returns how many replies it produces: 0 when it was not registered. */
size_t qs_redis_presence_remove(qs_redis_presence *p, const char *subscriber, qs_buf *cmds);
/** Lock held. The number of this node's entries. */
size_t qs_redis_presence_count(qs_redis_presence *p);
/** Lock held. Appends the commands that rewrite this node's whole hash and retake its
 *  lease; returns how many replies they produce. */
size_t qs_redis_presence_rewrite_cmds(qs_redis_presence *p, qs_buf *cmds);
/** Appends the commands that refresh the lease (2 replies, to be read by
 *  qs_redis_presence_refreshed). */
void qs_redis_presence_refresh_cmds(const qs_redis_presence *p, qs_buf *cmds);

/** Reads the reply of one presence write: its integer (0 when refused, which is logged), or
 *  -1 when the connection failed. */
long long qs_redis_presence_read_reply(const qs_redis_presence *p, qs_redis_client *c,
                                       uint64_t deadline);
/** Reads the replies of the refresh commands; when the lease had expired (this node stalled
 *  longer than the TTL, and another node may have taken its entries), rewrites them. 0, or
 *  -1 when the connection failed. */
int qs_redis_presence_refreshed(qs_redis_presence *p, qs_redis_client *c, uint64_t deadline);
/** Takes the entries of the nodes whose lease expired and hands them to
 *  host->presence_lost (logging refusals). 0, or -1 when the connection failed. */
int qs_redis_presence_reap(qs_redis_presence *p, qs_redis_client *c, const qs_transport_host *host);
/** Removes this node from the registry (a clean stop); a failure is logged. */
void qs_redis_presence_forget(qs_redis_presence *p, qs_redis_client *c);
/** Fills q with the registry of the whole cluster (status -1 and a reason when Redis
 *  refused the read). 0, or -1 when the connection failed (q is then untouched). */
int qs_redis_presence_list(qs_redis_presence *p, qs_redis_client *c, qs_presence_query *q);

/* The pure pieces, for unit tests and fuzzing. */

/** A presence entry as stored in the node's hash: {"topics":[…],"payload":…,"order":n}. */
char *qs_redis_presence_encode(const qs_presence_entry *e);
/** The reverse; 0, or -1 when the JSON is not a presence entry. */
int qs_redis_presence_decode(const char *subscriber, const char *json, size_t len,
                             qs_presence_entry *out);

/**
 * The registry of the whole cluster: the entries of other nodes from the reply of the list
 * script ([node, [subscriber, json, …], …]), this node's from `local` (fresher than Redis:
 * its writes may still be queued), sorted by (order, node). Returns 0, or -1 when the reply
 * is malformed.
 */
int qs_redis_presence_merge(const redisReply *reply, const char *self,
                            const qs_presence_entry *local, size_t n_local, qs_presence_entry **out,
                            size_t *n);

#endif
