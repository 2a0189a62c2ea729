/* SPDX-License-Identifier: MIT
 * redis_presence.c - the cluster-wide registry of active subscriptions over Redis
 * (redis_presence.h): this node's entries in memory and in its hash, its lease, the list
 * and reap scripts, and the JSON of an entry.
 *
 * Threading: this node's entries (p->local, p->last_order) are guarded by the lock given to
 * qs_redis_presence_init, the transport's; the functions said to run with it held do no
 * I/O. The others do I/O on the connection they are given, on the thread that owns it, and
 * hold the lock only to copy the entries.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "transport/redis_presence.h"
#include "uuid.h"

/* KEYS: the nodes set. ARGV: the prefix of presence hashes, the prefix of leases. Returns
 * [node, [field, value, …], …] for every node whose lease lives, and forgets the nodes that
 * have neither a lease nor a hash (their entries were taken), atomically so a node
 * registering its first entry is never dropped. */
static const char list_script[] = "local out = {}\n"
                                  "for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
                                  "  if redis.call('EXISTS', ARGV[2] .. node) == 1 then\n"
                                  "    local h = redis.call('HGETALL', ARGV[1] .. node)\n"
                                  "    if #h > 0 then\n"
                                  "      out[#out + 1] = node\n"
                                  "      out[#out + 1] = h\n"
                                  "    end\n"
                                  "  elseif redis.call('EXISTS', ARGV[1] .. node) == 0 then\n"
                                  "    redis.call('SREM', KEYS[1], node)\n"
                                  "  end\n"
                                  "end\n"
                                  "return out\n";

/* KEYS: the nodes set. ARGV: the prefix of presence hashes, the prefix of leases, this
 * node. Takes the entries of every other node whose lease expired (it died): returns them
 * as [node, [field, value, …], …] and deletes them, atomically, so exactly one node takes
 * each dead node's entries and publishes their departures. */
static const char reap_script[] =
    "local out = {}\n"
    "for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if node ~= ARGV[3] and redis.call('EXISTS', ARGV[2] .. node) == 0 then\n"
    "    local h = redis.call('HGETALL', ARGV[1] .. node)\n"
    "    redis.call('DEL', ARGV[1] .. node)\n"
    "    redis.call('SREM', KEYS[1], node)\n"
    "    if #h > 0 then\n"
    "      out[#out + 1] = node\n"
    "      out[#out + 1] = h\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ------------------------------------------------------------ entries as stored, merged */

/* JSON strings must be UTF-8: invalid bytes become U+FFFD (as Go's encoding/json does). */
static json_t *json_text(const char *s)
{
    size_t n = strlen(s);
    qs_buf b = QS_BUF_INIT;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = qs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l) {
            qs_buf_append(&b, s + i, l);
            i += l;
        } else {
            qs_buf_append(&b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    json_t *j = json_stringn(b.p ? b.p : "", b.len);
    qs_buf_free(&b);
    return j;
}

char *qs_redis_presence_encode(const qs_presence_entry *e)
{
    json_t *o = json_object(), *topics = json_array();
    for (size_t i = 0; i < e->n_topics; i++)
        json_array_append_new(topics, json_text(e->topics[i]));
    json_object_set_new(o, "topics", topics);
    json_t *payload = e->payload ? json_loads(e->payload, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(o, "payload", payload ? payload : json_null());
    json_object_set_new(o, "order", json_integer((json_int_t)e->order));
    qs_presence_v1_to_json(e, o);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        qs_panic("out of memory");
    return s;
}

int qs_redis_presence_decode(const char *subscriber, const char *json, size_t len,
                             qs_presence_entry *out)
{
    memset(out, 0, sizeof(*out));
    json_t *o = json_loadb(json, len, 0, NULL);
    json_t *topics = json_object_get(o, "topics"), *payload = json_object_get(o, "payload");
    json_t *order = json_object_get(o, "order");
    if (!json_is_object(o) || !json_is_array(topics) || !json_is_integer(order) ||
        json_integer_value(order) < 0) {
        json_decref(o);
        return -1;
    }
    size_t n = json_array_size(topics);
    out->topics = qs_xcalloc(n ? n : 1, sizeof(*out->topics));
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(topics, i);
        if (!json_is_string(t)) {
            json_decref(o);
            qs_presence_entry_clear(out);
            return -1;
        }
        out->topics[out->n_topics++] = qs_xstrndup(json_string_value(t), json_string_length(t));
    }
    if (payload && !json_is_null(payload)) {
        out->payload = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!out->payload)
            qs_panic("out of memory");
    }
    qs_presence_v1_from_json(o, out);
    out->order = (uint64_t)json_integer_value(order);
    out->subscriber = qs_xstrdup(subscriber);
    json_decref(o);
    return 0;
}

typedef struct ranked {
    qs_presence_entry e;
    const char *node;
} ranked;

static int by_order_node(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->e.order != y->e.order)
        return x->e.order < y->e.order ? -1 : 1;
    int c = strcmp(x->node, y->node);
    return c ? c : strcmp(x->e.subscriber, y->e.subscriber);
}

int qs_redis_presence_merge(const redisReply *reply, const char *self,
                            const qs_presence_entry *local, size_t n_local, qs_presence_entry **out,
                            size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2)
        return -1;
    size_t cap = n_local;
    for (size_t i = 0; i < reply->elements; i += 2) {
        const redisReply *node = reply->element[i], *h = reply->element[i + 1];
        if (node->type != REDIS_REPLY_STRING || h->type != REDIS_REPLY_ARRAY || h->elements % 2)
            return -1;
        cap += h->elements / 2;
    }
    ranked *v = qs_xcalloc(cap ? cap : 1, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < n_local; i++) {
        qs_presence_entry_copy(&v[k].e, &local[i]);
        v[k++].node = self;
    }
    for (size_t i = 0; i < reply->elements; i += 2) {
        const redisReply *node = reply->element[i], *h = reply->element[i + 1];
        if (strcmp(node->str, self) == 0)
            continue; /* this node's own entries come from its local copy */
        for (size_t j = 0; j < h->elements; j += 2) {
            const redisReply *f = h->element[j], *val = h->element[j + 1];
            if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
                continue;
            char *sub = qs_xstrndup(f->str, f->len);
            if (qs_redis_presence_decode(sub, val->str, val->len, &v[k].e) == 0)
                v[k++].node = node->str;
            else
                qs_warn("redis: skipping an unreadable presence entry of node %s", node->str);
            free(sub);
        }
    }
    qsort(v, k, sizeof(*v), by_order_node);
    qs_presence_entry *res = qs_xcalloc(k ? k : 1, sizeof(*res));
    for (size_t i = 0; i < k; i++)
        res[i] = v[i].e; /* moved */
    free(v);
    *out = res;
    *n = k;
    return 0;
}

/* ------------------------------------------------------------ set up */

void qs_redis_presence_init(qs_redis_presence *p, const char *stream, uint64_t ttl_ms,
                            uv_mutex_t *mu, const char *addr)
{
    memset(p, 0, sizeof(*p));
    char urn[QS_UUID_URN_LEN + 1];
    qs_uuid4_urn(urn);
    snprintf(p->node, sizeof(p->node), "%s", urn + 9);
    p->addr = addr;
    p->k_nodes = qs_xasprintf("%s:nodes", stream);
    p->presence_prefix = qs_xasprintf("%s:presence:", stream);
    p->alive_prefix = qs_xasprintf("%s:alive:", stream);
    p->k_presence = qs_xasprintf("%s%s", p->presence_prefix, p->node);
    p->k_alive = qs_xasprintf("%s%s", p->alive_prefix, p->node);
    p->ttl_ms = ttl_ms;
    snprintf(p->ttl_arg, sizeof(p->ttl_arg), "%" PRIu64, ttl_ms);
    qs_redis_client_script_init(&p->list, list_script);
    qs_redis_client_script_init(&p->reap, reap_script);
    p->mu = mu;
    qs_strmap_init(&p->local);
}

void qs_redis_presence_destroy(qs_redis_presence *p)
{
    qs_presence_map_free(&p->local);
    free(p->k_nodes);
    free(p->k_presence);
    free(p->presence_prefix);
    free(p->k_alive);
    free(p->alive_prefix);
}

uint64_t qs_redis_presence_refresh_ms(const qs_redis_presence *p)
{
    return QS_MAX(p->ttl_ms / 3, (uint64_t)100);
}

/* ------------------------------------------------------------ this node's entries */

/* Registration order across nodes: wall-clock microseconds, strictly increasing here. */
static uint64_t next_order(qs_redis_presence *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (us <= p->last_order)
        us = p->last_order + 1;
    p->last_order = us;
    return us;
}

/* Appends the two commands that (re)take this node's lease and list it in the nodes set:
 * while the lease lives, the node's entries are listed; once it expires (the node died),
 * another node takes them (reap_script). */
static void lease_cmds(const qs_redis_presence *p, qs_buf *out)
{
    const char *set[] = {"SET", p->k_alive, "1", "PX", p->ttl_arg};
    const char *add[] = {"SADD", p->k_nodes, p->node};
    qs_redis_client_format(out, 5, set);
    qs_redis_client_format(out, 3, add);
}

size_t qs_redis_presence_add(qs_redis_presence *p, const qs_presence_entry *e, qs_buf *cmds)
{
    qs_presence_entry *copy = qs_xcalloc(1, sizeof(*copy));
    qs_presence_entry_copy(copy, e);
    copy->order = next_order(p);
    qs_presence_map_put(&p->local, copy);
    if (!cmds)
        return 0;
    char *json = qs_redis_presence_encode(copy);
    const char *hset[] = {"HSET", p->k_presence, copy->subscriber, json};
    qs_redis_client_format(cmds, 4, hset);
    free(json);
    lease_cmds(p, cmds);
    return 3;
}

size_t qs_redis_presence_remove(qs_redis_presence *p, const char *subscriber, qs_buf *cmds)
{
    if (!qs_presence_map_remove(&p->local, subscriber))
        return 0;
    if (!cmds)
        return 0;
    const char *hdel[] = {"HDEL", p->k_presence, subscriber};
    qs_redis_client_format(cmds, 3, hdel);
    return 1;
}

size_t qs_redis_presence_count(qs_redis_presence *p)
{
    return qs_strmap_count(&p->local);
}

size_t qs_redis_presence_rewrite_cmds(qs_redis_presence *p, qs_buf *cmds)
{
    const char *del[] = {"DEL", p->k_presence};
    qs_redis_client_format(cmds, 2, del);
    size_t replies = 1;
    size_t total = qs_strmap_count(&p->local);
    if (!total)
        return replies;
    /* HSET in chunks: one command per 256 entries keeps each command small. */
    const qs_strmap_entry *me;
    size_t pos = 0, left = total;
    while (left) {
        size_t chunk = QS_MIN(left, (size_t)256);
        const char **argv = qs_xcalloc(2 + 2 * chunk, sizeof(*argv));
        char **json = qs_xcalloc(chunk, sizeof(*json));
        argv[0] = "HSET";
        argv[1] = p->k_presence;
        size_t k = 0;
        while (k < chunk && qs_strmap_next(&p->local, &pos, &me)) {
            const qs_presence_entry *e = me->value;
            json[k] = qs_redis_presence_encode(e);
            argv[2 + 2 * k] = e->subscriber;
            argv[3 + 2 * k] = json[k];
            k++;
        }
        qs_redis_client_format(cmds, 2 + 2 * (int)k, argv);
        replies++;
        for (size_t i = 0; i < k; i++)
            free(json[i]);
        free(json);
        free(argv);
        left = k == chunk ? left - chunk : 0;
    }
    lease_cmds(p, cmds);
    return replies + 2;
}

void qs_redis_presence_refresh_cmds(const qs_redis_presence *p, qs_buf *cmds)
{
    /* PEXPIRE answers 0 when the lease is gone: see qs_redis_presence_refreshed. */
    const char *exp[] = {"PEXPIRE", p->k_alive, p->ttl_arg};
    const char *add[] = {"SADD", p->k_nodes, p->node};
    qs_redis_client_format(cmds, 3, exp);
    qs_redis_client_format(cmds, 3, add);
}

/* ------------------------------------------------------------ replies and reads */

long long qs_redis_presence_read_reply(const qs_redis_presence *p, qs_redis_client *c,
                                       uint64_t deadline)
{
    redisReply *r = NULL;
    if (qs_redis_client_read(c, &r, deadline, false) < 0)
        return -1;
    long long v = 0;
    if (r->type == REDIS_REPLY_ERROR)
        qs_warn("redis %s: presence update refused: %.*s", p->addr,
                (int)QS_MIN(r->len, (size_t)200), r->str);
    else if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    return v;
}

int qs_redis_presence_refreshed(qs_redis_presence *p, qs_redis_client *c, uint64_t deadline)
{
    long long alive = qs_redis_presence_read_reply(p, c, deadline);
    if (alive < 0 || qs_redis_presence_read_reply(p, c, deadline) < 0)
        return -1;
    if (alive)
        return 0;
    /* The lease expired (this node stalled longer than its TTL; another node may have
     * taken its entries and published their departures): write them again. */
    qs_warn("redis %s: the presence lease of this node had expired; rewriting its entries",
            p->addr);
    qs_buf cmds = QS_BUF_INIT;
    uv_mutex_lock(p->mu);
    size_t replies = qs_redis_presence_rewrite_cmds(p, &cmds);
    uv_mutex_unlock(p->mu);
    int rc = qs_redis_client_pipeline(c, &cmds, replies);
    qs_buf_free(&cmds);
    return rc;
}

int qs_redis_presence_reap(qs_redis_presence *p, qs_redis_client *c, const qs_transport_host *host)
{
    redisReply *rep = NULL;
    const char *args[] = {"1", p->k_nodes, p->presence_prefix, p->alive_prefix, p->node};
    if (qs_redis_client_eval(c, &p->reap, 5, args, &rep) < 0)
        return -1;
    qs_presence_entry *v = NULL;
    size_t n = 0;
    char why[QS_REASON_MAX];
    if (rep->type == REDIS_REPLY_ERROR)
        qs_warn("redis %s: %s", p->addr,
                qs_redis_client_reply_error(why, sizeof(why), "reading dead nodes' presence", rep));
    else if (qs_redis_presence_merge(rep, p->node, NULL, 0, &v, &n) < 0)
        qs_warn("redis %s: unexpected reply to the presence reaper", p->addr);
    if (n) {
        qs_info("redis %s: %zu subscriptions of %zu node(s) that stopped refreshing their "
                "lease are gone",
                p->addr, n, rep->elements / 2);
        if (host->presence_lost)
            host->presence_lost(host->ctx, v, n);
    }
    qs_presence_entries_free(v, n);
    freeReplyObject(rep);
    return 0;
}

void qs_redis_presence_forget(qs_redis_presence *p, qs_redis_client *c)
{
    qs_buf cmds = QS_BUF_INIT;
    const char *del[] = {"DEL", p->k_presence, p->k_alive};
    const char *rem[] = {"SREM", p->k_nodes, p->node};
    qs_redis_client_format(&cmds, 3, del);
    qs_redis_client_format(&cmds, 3, rem);
    if (qs_redis_client_pipeline(c, &cmds, 2) < 0)
        qs_warn("redis %s: could not remove this node's presence entries: %s", p->addr, c->err);
    qs_buf_free(&cmds);
}

int qs_redis_presence_list(qs_redis_presence *p, qs_redis_client *c, qs_presence_query *q)
{
    redisReply *rep = NULL;
    const char *args[] = {"1", p->k_nodes, p->presence_prefix, p->alive_prefix};
    if (qs_redis_client_eval(c, &p->list, 4, args, &rep) < 0)
        return -1;
    if (rep->type == REDIS_REPLY_ERROR) {
        q->status = -1;
        qs_redis_client_reply_error(q->reason, sizeof(q->reason), "redis refused the presence read",
                                    rep);
        freeReplyObject(rep);
        return 0;
    }
    uv_mutex_lock(p->mu);
    size_t n_local;
    qs_presence_entry *local = qs_presence_map_copy(&p->local, &n_local);
    uv_mutex_unlock(p->mu);
    if (qs_redis_presence_merge(rep, p->node, local, n_local, &q->entries, &q->n) < 0) {
        q->status = -1;
        snprintf(q->reason, sizeof(q->reason), "redis: unexpected reply to the presence read");
    } else {
        q->status = 0;
    }
    qs_presence_entries_free(local, n_local);
    freeReplyObject(rep);
    return 0;
}
