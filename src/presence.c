/* SPDX-License-Identifier: MIT
 * presence.c - the single-node registry of active subscriptions, and the map of its own
 * entries that a cluster transport keeps (presence.h).
 */
#include "presence.h"

#include <stdlib.h>
#include <uv.h>

#include "strmap.h"

struct qs_presence {
    uv_mutex_t mu;
    qs_strmap by_id; /* subscriber id -> qs_presence_entry* */
    uint64_t next_order;
};

void qs_presence_entry_copy(qs_presence_entry *out, const qs_presence_entry *e)
{
    out->subscriber = qs_xstrdup(e->subscriber);
    out->n_topics = e->n_topics;
    out->topics = qs_xcalloc(e->n_topics, sizeof(*out->topics));
    for (size_t i = 0; i < e->n_topics; i++)
        out->topics[i] = qs_xstrdup(e->topics[i]);
    out->payload = e->payload ? qs_xstrdup(e->payload) : NULL;
    out->order = e->order;
    out->syntaxes = NULL;
    out->payloads = NULL;
    if (e->syntaxes) {
        out->syntaxes = qs_xmalloc(e->n_topics ? e->n_topics : 1);
        memcpy(out->syntaxes, e->syntaxes, e->n_topics);
    }
    if (e->payloads) {
        out->payloads = qs_xcalloc(e->n_topics ? e->n_topics : 1, sizeof(char *));
        for (size_t i = 0; i < e->n_topics; i++)
            out->payloads[i] = e->payloads[i] ? qs_xstrdup(e->payloads[i]) : NULL;
    }
}

void qs_presence_v1_to_json(const qs_presence_entry *e, json_t *o)
{
    if (e->syntaxes) {
        json_t *syn = json_array();
        for (size_t i = 0; i < e->n_topics; i++)
            json_array_append_new(syn, json_integer(e->syntaxes[i]));
        json_object_set_new(o, "syntaxes", syn);
    }
    if (e->payloads) {
        json_t *ps = json_array();
        for (size_t i = 0; i < e->n_topics; i++) {
            json_t *v = e->payloads[i] ? json_loads(e->payloads[i], JSON_DECODE_ANY, NULL) : NULL;
            json_array_append_new(ps, v ? v : json_null());
        }
        json_object_set_new(o, "payloads", ps);
    }
}

void qs_presence_v1_from_json(const json_t *o, qs_presence_entry *e)
{
    size_t n = e->n_topics;
    json_t *syn = json_object_get(o, "syntaxes"), *ps = json_object_get(o, "payloads");
    if (json_is_array(syn) && json_array_size(syn) == n) {
        e->syntaxes = qs_xcalloc(n ? n : 1, 1);
        for (size_t i = 0; i < n; i++) {
            json_int_t v = json_integer_value(json_array_get(syn, i));
            e->syntaxes[i] = (uint8_t)(v >= 0 && v <= 2 ? v : 0);
        }
    }
    if (json_is_array(ps) && json_array_size(ps) == n) {
        e->payloads = qs_xcalloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(ps, i);
            if (v && !json_is_null(v) &&
                !(e->payloads[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)))
                qs_panic("out of memory");
        }
    }
}

void qs_presence_entry_clear(qs_presence_entry *e)
{
    free(e->subscriber);
    for (size_t i = 0; i < e->n_topics; i++)
        free(e->topics[i]);
    free(e->topics);
    free(e->payload);
    if (e->payloads)
        for (size_t i = 0; i < e->n_topics; i++)
            free(e->payloads[i]);
    free(e->payloads);
    free(e->syntaxes);
    memset(e, 0, sizeof(*e));
}

void qs_presence_entries_free(qs_presence_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        qs_presence_entry_clear(&v[i]);
    free(v);
}

/* ------------------------------------------------------------ a node's own entries */

static void entry_free(qs_presence_entry *e)
{
    if (e) {
        qs_presence_entry_clear(e);
        free(e);
    }
}

void qs_presence_map_put(qs_strmap *m, qs_presence_entry *e)
{
    void **slot = qs_strmap_upsert(m, e->subscriber, strlen(e->subscriber));
    entry_free(*slot);
    *slot = e;
}

bool qs_presence_map_remove(qs_strmap *m, const char *subscriber)
{
    qs_presence_entry *old = qs_strmap_remove(m, subscriber, strlen(subscriber));
    entry_free(old);
    return old != NULL;
}

qs_presence_entry *qs_presence_map_copy(const qs_strmap *m, size_t *n)
{
    size_t count = qs_strmap_count(m), k = 0;
    qs_presence_entry *v = qs_xcalloc(count ? count : 1, sizeof(*v));
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(m, &pos, &me);)
        qs_presence_entry_copy(&v[k++], me->value);
    *n = count;
    return v;
}

void qs_presence_map_free(qs_strmap *m)
{
    const qs_strmap_entry *me;
    for (size_t pos = 0; qs_strmap_next(m, &pos, &me);)
        entry_free(me->value);
    qs_strmap_free(m);
}

/* ------------------------------------------------------------ the single-node registry */

qs_presence *qs_presence_new(void)
{
    qs_presence *p = qs_xcalloc(1, sizeof(*p));
    uv_mutex_init(&p->mu);
    qs_strmap_init(&p->by_id);
    return p;
}

void qs_presence_free(qs_presence *p)
{
    if (!p)
        return;
    qs_presence_map_free(&p->by_id);
    uv_mutex_destroy(&p->mu);
    free(p);
}

void qs_presence_add(qs_presence *p, const qs_presence_entry *e)
{
    qs_presence_entry *copy = qs_xcalloc(1, sizeof(*copy));
    qs_presence_entry_copy(copy, e);
    uv_mutex_lock(&p->mu);
    copy->order = ++p->next_order;
    void **slot = qs_strmap_upsert(&p->by_id, copy->subscriber, strlen(copy->subscriber));
    qs_presence_entry *old = *slot;
    *slot = copy;
    uv_mutex_unlock(&p->mu);
    if (old) {
        qs_presence_entry_clear(old);
        free(old);
    }
}

void qs_presence_remove(qs_presence *p, const char *subscriber)
{
    uv_mutex_lock(&p->mu);
    qs_presence_entry *old = qs_strmap_remove(&p->by_id, subscriber, strlen(subscriber));
    uv_mutex_unlock(&p->mu);
    if (old) {
        qs_presence_entry_clear(old);
        free(old);
    }
}

static int by_order(const void *a, const void *b)
{
    const qs_presence_entry *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

qs_presence_entry *qs_presence_snapshot(qs_presence *p, size_t *n)
{
    uv_mutex_lock(&p->mu);
    size_t count = qs_strmap_count(&p->by_id), i = 0;
    qs_presence_entry *v = qs_xcalloc(count ? count : 1, sizeof(*v));
    const qs_strmap_entry *e;
    for (size_t pos = 0; qs_strmap_next(&p->by_id, &pos, &e);)
        qs_presence_entry_copy(&v[i++], e->value);
    uv_mutex_unlock(&p->mu);
    qsort(v, count, sizeof(*v), by_order);
    *n = count;
    return v;
}

size_t qs_presence_count(qs_presence *p)
{
    uv_mutex_lock(&p->mu);
    size_t n = qs_strmap_count(&p->by_id);
    uv_mutex_unlock(&p->mu);
    return n;
}
