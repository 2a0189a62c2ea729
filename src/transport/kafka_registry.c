/* SPDX-License-Identifier: MIT
 * kafka_registry.c - the records of the Kafka transport's presence topic and the
 * registry of the cluster's subscriptions that every node builds by reading them (kafka.h
 * says what the records are and how a dead node's entries are claimed), and this node's own
 * records, which the Kafka and Pulsar transports both write. Pure: the caller reads and
 * writes the topic (handing its writer to the functions that make records), passes its
 * clock, and holds the lock.
 */
#include "transport/kafka.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------ keys and values */

char *qs_kafka_presence_key(qs_kafka_presence_kind kind, const char *node, const char *subscriber)
{
    switch (kind) {
    case QS_KAFKA_PRESENCE_HEARTBEAT:
        return qs_xasprintf("n/%s", node);
    case QS_KAFKA_PRESENCE_ENTRY:
        return qs_xasprintf("s/%s/%s", node, subscriber);
    case QS_KAFKA_PRESENCE_CLAIM:
        return qs_xasprintf("c/%s", node);
    default:
        return NULL;
    }
}

qs_kafka_presence_kind qs_kafka_presence_parse_key(const void *key, size_t len, char **node,
                                                   char **subscriber)
{
    const char *k = key;
    *node = NULL;
    if (subscriber)
        *subscriber = NULL;
    if (!k || len < 3 || k[1] != '/' || memchr(k, '\0', len))
        return QS_KAFKA_PRESENCE_NONE;
    qs_kafka_presence_kind kind = k[0] == 'n'   ? QS_KAFKA_PRESENCE_HEARTBEAT
                                  : k[0] == 's' ? QS_KAFKA_PRESENCE_ENTRY
                                  : k[0] == 'c' ? QS_KAFKA_PRESENCE_CLAIM
                                                : QS_KAFKA_PRESENCE_NONE;
    if (kind == QS_KAFKA_PRESENCE_NONE)
        return kind;
    const char *rest = k + 2, *end = k + len;
    const char *slash = memchr(rest, '/', (size_t)(end - rest));
    if (kind == QS_KAFKA_PRESENCE_ENTRY) {
        /* Node ids never hold '/'; subscriber ids may. */
        if (!slash || slash == rest || slash + 1 == end)
            return QS_KAFKA_PRESENCE_NONE;
        *node = qs_xstrndup(rest, (size_t)(slash - rest));
        if (subscriber)
            *subscriber = qs_xstrndup(slash + 1, (size_t)(end - slash - 1));
        return kind;
    }
    if (slash)
        return QS_KAFKA_PRESENCE_NONE;
    *node = qs_xstrndup(rest, (size_t)(end - rest));
    return kind;
}

/* JSON strings must be UTF-8: invalid bytes become U+FFFD, as Go's encoding/json does. */
static json_t *json_text(const char *s)
{
    size_t n = strlen(s);
    qs_buf b = QS_BUF_INIT;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = qs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        qs_buf_append(&b, l ? s + i : "\xef\xbf\xbd", l ? l : 3);
        i += l ? l : 1;
    }
    json_t *j = json_stringn(b.p ? b.p : "", b.len);
    qs_buf_free(&b);
    return j;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        qs_panic("out of memory");
    return s;
}

char *qs_kafka_presence_encode_entry(const qs_presence_entry *e)
{
    json_t *o = json_object(), *topics = json_array();
    for (size_t i = 0; i < e->n_topics; i++)
        json_array_append_new(topics, json_text(e->topics[i]));
    json_object_set_new(o, "topics", topics);
    json_t *payload = e->payload ? json_loads(e->payload, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(o, "payload", payload ? payload : json_null());
    json_object_set_new(o, "order", json_integer((json_int_t)e->order));
    qs_presence_v1_to_json(e, o);
    return dump(o);
}

int qs_kafka_presence_decode_entry(const char *subscriber, const void *json, size_t len,
                                   qs_presence_entry *out)
{
    memset(out, 0, sizeof(*out));
    json_t *o = json ? json_loadb(json, len, 0, NULL) : NULL;
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
        if (!json_is_string(t) || memchr(json_string_value(t), '\0', json_string_length(t))) {
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

char *qs_kafka_presence_encode_claim(const char *by, int64_t heartbeat_offset)
{
    json_t *o = json_object();
    json_object_set_new(o, "by", json_text(by));
    json_object_set_new(o, "hb", json_integer((json_int_t)heartbeat_offset));
    return dump(o);
}

int qs_kafka_presence_decode_claim(const void *json, size_t len, char **by,
                                   int64_t *heartbeat_offset)
{
    *by = NULL;
    json_t *o = json ? json_loadb(json, len, 0, NULL) : NULL;
    json_t *b = json_object_get(o, "by"), *hb = json_object_get(o, "hb");
    if (!json_is_object(o) || !json_is_string(b) || !json_string_length(b) ||
        memchr(json_string_value(b), '\0', json_string_length(b)) || !json_is_integer(hb) ||
        json_integer_value(hb) < -1) {
        json_decref(o);
        return -1;
    }
    *by = qs_xstrdup(json_string_value(b));
    *heartbeat_offset = (int64_t)json_integer_value(hb);
    json_decref(o);
    return 0;
}

/* ------------------------------------------------------------ the registry */

static void entry_free(qs_presence_entry *e)
{
    if (e) {
        qs_presence_entry_clear(e);
        free(e);
    }
}

static void node_free(qs_kafka_node *n)
{
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(&n->entries, &pos, &me);)
        entry_free(me->value);
    qs_strmap_free(&n->entries);
    free(n->id);
    free(n->claimed_by);
    free(n);
}

void qs_kafka_registry_init(qs_kafka_registry *g, const char *self, uint64_t ttl_ms)
{
    memset(g, 0, sizeof(*g));
    g->self = qs_xstrdup(self);
    g->ttl_ms = ttl_ms;
    qs_strmap_init(&g->nodes);
}

void qs_kafka_registry_free(qs_kafka_registry *g)
{
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(&g->nodes, &pos, &me);)
        node_free(me->value);
    qs_strmap_free(&g->nodes);
    free(g->self);
    memset(g, 0, sizeof(*g));
}

static qs_kafka_node *get_node(qs_kafka_registry *g, const char *id, bool create)
{
    qs_kafka_node *n = qs_strmap_get(&g->nodes, id, strlen(id));
    if (n || !create)
        return n;
    n = qs_xcalloc(1, sizeof(*n));
    n->id = qs_xstrdup(id);
    n->hb_offset = -1;
    qs_strmap_init(&n->entries);
    qs_strmap_put(&g->nodes, n->id, strlen(n->id), n);
    return n;
}

/* Forgets a node the topic no longer says anything about. */
static void drop_if_empty(qs_kafka_registry *g, qs_kafka_node *n)
{
    if (n->hb_offset < 0 && !n->claimed_by && !qs_strmap_count(&n->entries)) {
        qs_strmap_remove(&g->nodes, n->id, strlen(n->id));
        node_free(n);
    }
}

static bool alive(const qs_kafka_registry *g, const qs_kafka_node *n, uint64_t now_ms)
{
    return n->seen_ms + g->ttl_ms > now_ms;
}

/* True when the node named `id` is alive (this node always is). */
static bool claimer_alive(const qs_kafka_registry *g, const char *id, uint64_t now_ms)
{
    if (!strcmp(id, g->self))
        return true;
    const qs_kafka_node *n = qs_strmap_get(&g->nodes, id, strlen(id));
    return n && alive(g, n, now_ms);
}

/* Moves the entries of n out (sorted by order), for the caller to publish and delete. */
static void take_entries(qs_kafka_node *n, qs_presence_entry **out, size_t *count)
{
    size_t k = qs_strmap_count(&n->entries), i = 0;
    qs_presence_entry *v = qs_xcalloc(k ? k : 1, sizeof(*v));
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(&n->entries, &pos, &me);) {
        qs_presence_entry *e = me->value;
        v[i++] = *e; /* moved */
        free(e);
    }
    qs_strmap_free(&n->entries);
    qs_strmap_init(&n->entries);
    *out = v;
    *count = i;
}

static void apply_claim(qs_kafka_registry *g, qs_kafka_node *n, const void *value, size_t vlen,
                        uint64_t now_ms, qs_presence_entry **taken, size_t *n_taken,
                        char **taken_node)
{
    if (!value) { /* the claim is settled: its author deleted what it took */
        free(n->claimed_by);
        n->claimed_by = NULL;
        n->claimed_ms = 0;
        n->taken = false;
        return;
    }
    char *by = NULL;
    int64_t hb = -1;
    if (qs_kafka_presence_decode_claim(value, vlen, &by, &hb) < 0)
        return;
    /* Valid: about the node's last heartbeat (it has not spoken since), and no live node
     * holds an earlier claim. Every reader decides this at the same place in the topic. */
    bool valid = hb == n->hb_offset && (!n->claimed_by || !claimer_alive(g, n->claimed_by, now_ms));
    if (!valid) {
        free(by);
        return;
    }
    free(n->claimed_by);
    n->claimed_by = by;
    if (!strcmp(n->id, g->self)) {
        g->self_taken = strcmp(by, g->self) != 0;
        return;
    }
    if (!strcmp(by, g->self) && !n->taken) {
        n->taken = true;
        take_entries(n, taken, n_taken);
        *taken_node = qs_xstrdup(n->id);
    }
}

bool qs_kafka_registry_apply(qs_kafka_registry *g, const void *key, size_t klen, const void *value,
                             size_t vlen, int64_t offset, uint64_t now_ms,
                             qs_presence_entry **taken, size_t *n_taken, char **taken_node)
{
    *taken = NULL;
    *n_taken = 0;
    *taken_node = NULL;
    char *id = NULL, *sub = NULL;
    qs_kafka_presence_kind kind = qs_kafka_presence_parse_key(key, klen, &id, &sub);
    if (kind == QS_KAFKA_PRESENCE_NONE)
        return false;
    qs_kafka_node *n = get_node(g, id, value != NULL);
    free(id);
    if (!n) { /* a tombstone about a node that is already forgotten */
        free(sub);
        return true;
    }
    switch (kind) {
    case QS_KAFKA_PRESENCE_HEARTBEAT:
        if (value) {
            n->seen_ms = now_ms;
            n->hb_offset = offset;
            /* It spoke again: any claim on its earlier silence is void. */
            free(n->claimed_by);
            n->claimed_by = NULL;
            n->claimed_ms = 0;
            n->taken = false;
        } else {
            n->hb_offset = -1;
        }
        break;
    case QS_KAFKA_PRESENCE_ENTRY: {
        qs_presence_entry *e = NULL;
        if (value) {
            e = qs_xcalloc(1, sizeof(*e));
            if (qs_kafka_presence_decode_entry(sub, value, vlen, e) < 0) {
                free(e);
                break;
            }
            n->seen_ms = now_ms;
        }
        if (e) {
            void **slot = qs_strmap_upsert(&n->entries, sub, strlen(sub));
            entry_free(*slot);
            *slot = e;
        } else {
            entry_free(qs_strmap_remove(&n->entries, sub, strlen(sub)));
        }
        break;
    }
    case QS_KAFKA_PRESENCE_CLAIM:
        apply_claim(g, n, value, vlen, now_ms, taken, n_taken, taken_node);
        break;
    default:
        break;
    }
    free(sub);
    drop_if_empty(g, n);
    return true;
}

void qs_kafka_registry_touch_all(qs_kafka_registry *g, uint64_t now_ms)
{
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(&g->nodes, &pos, &me);) {
        qs_kafka_node *n = me->value;
        if (n->seen_ms < now_ms)
            n->seen_ms = now_ms;
    }
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

qs_presence_entry *qs_kafka_registry_list(const qs_kafka_registry *g, uint64_t now_ms,
                                          const qs_presence_entry *local, size_t n_local, size_t *n)
{
    size_t cap = n_local;
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(&g->nodes, &pos, &me);)
        cap += qs_strmap_count(&((const qs_kafka_node *)me->value)->entries);
    ranked *v = qs_xcalloc(cap ? cap : 1, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < n_local; i++) {
        qs_presence_entry_copy(&v[k].e, &local[i]);
        v[k++].node = g->self;
    }
    for (size_t pos = 0; qs_strmap_next(&g->nodes, &pos, &me);) {
        const qs_kafka_node *node = me->value;
        if (!strcmp(node->id, g->self) || !alive(g, node, now_ms))
            continue; /* this node's entries come from `local`, fresher than the topic */
        const qs_strmap_entry *ee;
        for (size_t p2 = 0; qs_strmap_next(&node->entries, &p2, &ee);) {
            qs_presence_entry_copy(&v[k].e, ee->value);
            v[k++].node = node->id;
        }
    }
    qsort(v, k, sizeof(*v), by_order_node);
    qs_presence_entry *out = qs_xcalloc(k ? k : 1, sizeof(*out));
    for (size_t i = 0; i < k; i++)
        out[i] = v[i].e; /* moved */
    free(v);
    *n = k;
    return out;
}

size_t qs_kafka_registry_claims(qs_kafka_registry *g, uint64_t now_ms, char ***keys, char ***values)
{
    size_t k = 0;
    *keys = *values = NULL;
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(&g->nodes, &pos, &me);) {
        qs_kafka_node *n = me->value;
        if (!strcmp(n->id, g->self) || alive(g, n, now_ms) || n->taken)
            continue;
        if (!qs_strmap_count(&n->entries) && n->hb_offset < 0)
            continue; /* nothing left to take */
        if (n->claimed_by && claimer_alive(g, n->claimed_by, now_ms))
            continue;
        if (n->claimed_ms && now_ms < n->claimed_ms + g->ttl_ms)
            continue; /* this node's claim is on its way */
        n->claimed_ms = now_ms ? now_ms : 1;
        *keys = qs_xrealloc(*keys, (k + 1) * sizeof(**keys));
        *values = qs_xrealloc(*values, (k + 1) * sizeof(**values));
        (*keys)[k] = qs_kafka_presence_key(QS_KAFKA_PRESENCE_CLAIM, n->id, NULL);
        (*values)[k] = qs_kafka_presence_encode_claim(g->self, n->hb_offset);
        k++;
    }
    return k;
}

size_t qs_kafka_registry_tombstones(const char *node, const qs_presence_entry *entries, size_t n,
                                    char ***keys)
{
    char **v = qs_xcalloc(n + 2, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = qs_kafka_presence_key(QS_KAFKA_PRESENCE_ENTRY, node, entries[i].subscriber);
    v[n] = qs_kafka_presence_key(QS_KAFKA_PRESENCE_HEARTBEAT, node, NULL);
    /* The claim goes last: whoever reads it knows the rest is gone. */
    v[n + 1] = qs_kafka_presence_key(QS_KAFKA_PRESENCE_CLAIM, node, NULL);
    *keys = v;
    return n + 2;
}

/* ------------------------------------------------------------ this node's records */

void qs_kafka_registry_write_entry(const qs_kafka_registry *g, const qs_presence_entry *e,
                                   qs_kafka_presence_write write, void *ctx)
{
    char *key = qs_kafka_presence_key(QS_KAFKA_PRESENCE_ENTRY, g->self, e->subscriber);
    char *json = qs_kafka_presence_encode_entry(e);
    write(ctx, key, json);
    free(key);
    free(json);
}

void qs_kafka_registry_write_removal(const qs_kafka_registry *g, const char *subscriber,
                                     qs_kafka_presence_write write, void *ctx)
{
    char *key = qs_kafka_presence_key(QS_KAFKA_PRESENCE_ENTRY, g->self, subscriber);
    write(ctx, key, NULL);
    free(key);
}

void qs_kafka_registry_write_heartbeat(const qs_kafka_registry *g, qs_kafka_presence_write write,
                                       void *ctx)
{
    char *key = qs_kafka_presence_key(QS_KAFKA_PRESENCE_HEARTBEAT, g->self, NULL);
    char value[48];
    snprintf(value, sizeof(value), "{\"ttl\":%" PRIu64 "}", g->ttl_ms);
    write(ctx, key, value);
    free(key);
}

void qs_kafka_registry_write_again(qs_kafka_registry *g, const qs_strmap *local,
                                   qs_kafka_presence_write write, void *ctx)
{
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(local, &pos, &me);)
        qs_kafka_registry_write_entry(g, me->value, write, ctx);
    const qs_kafka_node *self = qs_strmap_get(&g->nodes, g->self, strlen(g->self));
    if (self)
        for (size_t pos = 0; qs_strmap_next(&self->entries, &pos, &me);)
            if (!qs_strmap_get(local, me->key, me->key_len))
                qs_kafka_registry_write_removal(g, me->key, write, ctx);
    qs_kafka_registry_write_heartbeat(g, write, ctx);
    g->self_taken = false;
}

void qs_kafka_registry_write_goodbye(const qs_kafka_registry *g, const qs_strmap *local,
                                     qs_kafka_presence_write write, void *ctx)
{
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(local, &pos, &me);)
        qs_kafka_registry_write_removal(g, me->key, write, ctx);
    char *key = qs_kafka_presence_key(QS_KAFKA_PRESENCE_HEARTBEAT, g->self, NULL);
    write(ctx, key, NULL);
    free(key);
}

void qs_kafka_registry_write_claims(qs_kafka_registry *g, uint64_t now_ms,
                                    qs_kafka_presence_write write, void *ctx)
{
    char **keys = NULL, **values = NULL;
    size_t n = qs_kafka_registry_claims(g, now_ms, &keys, &values);
    for (size_t i = 0; i < n; i++) {
        write(ctx, keys[i], values[i]);
        free(keys[i]);
        free(values[i]);
    }
    free(keys);
    free(values);
}

void qs_kafka_registry_write_tombstones(const char *node, const qs_presence_entry *entries,
                                        size_t n, qs_kafka_presence_write write, void *ctx)
{
    char **keys = NULL;
    size_t k = qs_kafka_registry_tombstones(node, entries, n, &keys);
    for (size_t i = 0; i < k; i++) {
        write(ctx, keys[i], NULL);
        free(keys[i]);
    }
    free(keys);
}
