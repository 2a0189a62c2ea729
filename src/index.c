/* SPDX-License-Identifier: MIT
 * index.c - the per-worker subscriber index and fan-out.
 *
 * Fan-out touches only subscribers an update can match: the group of each topic (a hash
 * lookup), the "*" group, the groups of templates and URL patterns whose selector matches
 * (through the selector cache, the update's topics parsed as URLs at most once), tried one
 * by one, except URL patterns whose pathname has a fixed end: those are found by looking
 * that end up in a map, for each length such ends have (`https://e.com/:kind/42` is found by
 * "/42" for a topic whose path ends so), so that many distinct patterns cost a few lookups
 * per update instead of one try each. Each matching subscriber's stream gets a reference to
 * the update's frame.
 */
#include "index.h"

#include <stdlib.h>

#include "auth.h"
#include "metrics.h"
#include "strmap.h"

/** A distinct selector some subscribers of this worker use, and those subscribers. */
typedef struct qs_sub_group {
    qs_selector *sel;
    struct member_slot *members;
    uint32_t n;
    uint32_t cap;
    uint32_t template_idx;        /* position in x->templates, or in its suffix bucket */
    struct suffix_bucket *bucket; /* a URL pattern found by the fixed end of its path */
} qs_sub_group;

/** The URL pattern groups whose pathname ends with the same fixed text. */
typedef struct suffix_bucket {
    qs_sub_group **v;
    uint32_t n, cap;
    size_t key_len;
    char key[]; /* the fixed text */
} suffix_bucket;

typedef struct member_slot {
    qs_index_member *m;
    uint32_t entry; /* which of m->entries points back here */
} member_slot;

/** Subscribers with identical subscribe claims share one claim set; its memo caches the
 *  private-update decision for the update being fanned out. */
typedef struct qs_claimset {
    uint32_t refs;
    bool all; /* contains "*" */
    qs_selector **sels;
    uint32_t n;
    uint64_t memo_seq;
    bool memo;
    char *key;
    size_t key_len;
} qs_claimset;

struct qs_index {
    qs_ctx *ctx;
    qs_selector_table *selectors;
    qs_strmap groups[QS_SYNTAXES]; /* per interned syntax: selector string → qs_sub_group */
    qs_sub_group **templates;      /* the groups matched one by one */
    uint32_t n_templates, cap_templates;
    qs_strmap suffixes; /* a fixed pathname end → suffix_bucket */
    struct {
        size_t len;     /* a length fixed ends have */
        uint32_t count; /* buckets with a key of that length */
    } suffix_lens[32];
    uint32_t n_suffix_lens;
    const qs_weburl *base; /* what URL patterns resolve topics against */
    qs_strmap claimsets;   /* joined claims → qs_claimset */
    uint64_t bus_seq;      /* seq of the last update fanned out here */
};

qs_index *qs_index_new(qs_ctx *ctx)
{
    qs_index *x = qs_xcalloc(1, sizeof(*x));
    x->ctx = ctx;
    x->selectors = ctx->selectors;
    for (int i = 0; i < QS_SYNTAXES; i++)
        qs_strmap_init(&x->groups[i]);
    qs_strmap_init(&x->claimsets);
    qs_strmap_init(&x->suffixes);
    x->base = &ctx->hub->base;
    return x;
}

void qs_index_free(qs_index *x)
{
    /* Every member was removed with its subscriber, so the maps are empty. */
    for (int i = 0; i < QS_SYNTAXES; i++)
        qs_strmap_free(&x->groups[i]);
    qs_strmap_free(&x->claimsets);
    qs_strmap_free(&x->suffixes);
    free(x->templates);
    free(x);
}

uint64_t qs_index_position(const qs_index *x)
{
    return x->bus_seq;
}

void qs_index_set_position(qs_index *x, uint64_t seq)
{
    x->bus_seq = seq;
}

/* --------------------------------------------------------------- groups */

static bool scanned(const qs_selector *sel)
{
    return sel->kind == QS_SEL_TEMPLATE || sel->kind == QS_SEL_URLPATTERN;
}

/* The fixed end of a URL pattern's pathname, when it can index the group (not too many
 * distinct lengths: past them, groups are tried one by one). */
static bool suffix_key(qs_index *x, const qs_selector *sel, qs_slice *key)
{
    if (sel->kind != QS_SEL_URLPATTERN || !sel->pat)
        return false;
    *key = qs_urlpattern_path_suffix(sel->pat);
    if (!key->n)
        return false;
    for (uint32_t i = 0; i < x->n_suffix_lens; i++)
        if (x->suffix_lens[i].len == key->n)
            return true;
    return x->n_suffix_lens < QS_ARRAY_LEN(x->suffix_lens);
}

static void suffix_add(qs_index *x, qs_sub_group *g, qs_slice key)
{
    void **slot = qs_strmap_upsert(&x->suffixes, key.p, key.n);
    suffix_bucket *b = *slot;
    if (!b) {
        b = qs_xcalloc(1, sizeof(*b) + key.n + 1);
        memcpy(b->key, key.p, key.n);
        b->key_len = key.n;
        *slot = b;
        uint32_t i = 0;
        while (i < x->n_suffix_lens && x->suffix_lens[i].len != key.n)
            i++;
        if (i == x->n_suffix_lens)
            x->suffix_lens[x->n_suffix_lens++].len = key.n;
        x->suffix_lens[i].count++;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        b->v = qs_xrealloc(b->v, b->cap * sizeof(*b->v));
    }
    g->bucket = b;
    g->template_idx = b->n;
    b->v[b->n++] = g;
}

static void suffix_remove(qs_index *x, qs_sub_group *g)
{
    suffix_bucket *b = g->bucket;
    uint32_t t = g->template_idx;
    if (t != --b->n) {
        b->v[t] = b->v[b->n];
        b->v[t]->template_idx = t;
    }
    if (b->n)
        return;
    qs_strmap_remove(&x->suffixes, b->key, b->key_len);
    for (uint32_t i = 0; i < x->n_suffix_lens; i++) {
        if (x->suffix_lens[i].len == b->key_len && --x->suffix_lens[i].count == 0) {
            x->suffix_lens[i] = x->suffix_lens[--x->n_suffix_lens];
            break;
        }
    }
    free(b->v);
    free(b);
}

static void group_add(qs_index *x, qs_index_member *m, uint32_t entry, const qs_selector_spec *spec)
{
    /* The selector decides the group's map: the same text under another syntax may be
     * another selector (a 1.0 exact "{…}" is not a template). */
    qs_selector *sel = qs_selector_table_acquire_as(x->selectors, spec->syntax, spec->s, spec->len);
    void **slot = qs_strmap_upsert(&x->groups[sel->syntax], spec->s, spec->len);
    qs_sub_group *g = *slot;
    if (g) {
        qs_selector_table_release(x->selectors, sel);
    } else {
        g = qs_xcalloc(1, sizeof(*g));
        g->sel = sel;
        *slot = g;
        qs_slice key;
        if (suffix_key(x, sel, &key)) {
            suffix_add(x, g, key);
        } else if (scanned(g->sel)) {
            if (x->n_templates == x->cap_templates) {
                x->cap_templates = x->cap_templates ? x->cap_templates * 2 : 8;
                x->templates = qs_xrealloc(x->templates, x->cap_templates * sizeof(*x->templates));
            }
            g->template_idx = x->n_templates;
            x->templates[x->n_templates++] = g;
        }
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->members = qs_xrealloc(g->members, g->cap * sizeof(*g->members));
    }
    g->members[g->n] = (member_slot){m, entry};
    m->entries[entry] = (qs_index_entry){g, g->n, (uint8_t)spec->syntax};
    g->n++;
}

static void group_remove(qs_index *x, qs_index_entry *e)
{
    qs_sub_group *g = e->group;
    uint32_t i = e->idx;
    g->n--;
    if (i != g->n) {
        /* Move the last member into the hole and tell it where it now is. */
        g->members[i] = g->members[g->n];
        member_slot *moved = &g->members[i];
        moved->m->entries[moved->entry].idx = i;
    }
    if (g->n)
        return;
    qs_strmap_remove(&x->groups[g->sel->syntax], g->sel->str, g->sel->len);
    if (g->bucket) {
        suffix_remove(x, g);
    } else if (scanned(g->sel)) {
        uint32_t t = g->template_idx;
        x->n_templates--;
        if (t != x->n_templates) {
            x->templates[t] = x->templates[x->n_templates];
            x->templates[t]->template_idx = t;
        }
    }
    qs_selector_table_release(x->selectors, g->sel);
    free(g->members);
    free(g);
}

/* ----------------------------------------------------------- claim sets */

/* Subscribers with the same subscribe claims share a claim set, so a private update is
 * authorized once per distinct claim list rather than once per subscriber. */
static qs_claimset *claimset_acquire(qs_index *x, const qs_selector_spec *claims, size_t n)
{
    qs_buf key = QS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        qs_buf_append_u64(&key, claims[i].len);
        qs_buf_append_char(&key, (char)('a' + claims[i].syntax));
        qs_buf_append(&key, claims[i].s, claims[i].len);
    }
    void **slot = qs_strmap_upsert(&x->claimsets, key.p ? key.p : "", key.len);
    qs_claimset *cs = *slot;
    if (!cs) {
        cs = qs_xcalloc(1, sizeof(*cs));
        cs->sels = qs_xcalloc(n, sizeof(*cs->sels));
        cs->n = (uint32_t)n;
        for (size_t i = 0; i < n; i++) {
            cs->sels[i] = qs_selector_table_acquire_as(x->selectors, claims[i].syntax, claims[i].s,
                                                       claims[i].len);
            if (cs->sels[i]->kind == QS_SEL_ANY)
                cs->all = true;
        }
        cs->key_len = key.len;
        cs->key = qs_buf_steal(&key);
        *slot = cs;
    }
    qs_buf_free(&key);
    cs->refs++;
    return cs;
}

static void claimset_release(qs_index *x, qs_claimset *cs)
{
    if (--cs->refs)
        return;
    for (uint32_t i = 0; i < cs->n; i++)
        qs_selector_table_release(x->selectors, cs->sels[i]);
    qs_strmap_remove(&x->claimsets, cs->key, cs->key_len);
    free(cs->sels);
    free(cs->key);
    free(cs);
}

/* The claim set's decision for u (whose topics are v), computed once per update. */
static bool claimset_allows(qs_index *x, qs_claimset *cs, const qs_update *u, qs_topics *v)
{
    if (cs->all)
        return true;
    if (cs->memo_seq != u->seq) {
        cs->memo_seq = u->seq;
        cs->memo = qs_can_receive(x->selectors, cs->sels, cs->n, v);
    }
    return cs->memo;
}

/* -------------------------------------------------------------- members */

void qs_index_add(qs_index *x, qs_index_member *m, const qs_selector_spec *selectors, size_t n,
                  const qs_selector_spec *claims, size_t n_claims)
{
    m->last_seq = x->bus_seq;
    m->entries = qs_xcalloc(n ? n : 1, sizeof(*m->entries));
    m->n_entries = 0;
    for (size_t i = 0; i < n; i++)
        group_add(x, m, m->n_entries++, &selectors[i]);
    m->claims = n_claims ? claimset_acquire(x, claims, n_claims) : NULL;
}

void qs_index_remove(qs_index *x, qs_index_member *m)
{
    for (uint32_t i = 0; i < m->n_entries; i++)
        group_remove(x, &m->entries[i]);
    free(m->entries);
    m->entries = NULL;
    m->n_entries = 0;
    if (m->claims)
        claimset_release(x, m->claims);
    m->claims = NULL;
}

const char *qs_index_selector(const qs_index_member *m, uint32_t i, size_t *len)
{
    const qs_selector *sel = m->entries[i].group->sel;
    *len = sel->len;
    return sel->str;
}

enum qs_selector_syntax qs_index_selector_syntax(const qs_index_member *m, uint32_t i)
{
    return (enum qs_selector_syntax)m->entries[i].syntax;
}

/* -------------------------------------------------------------- fan-out */

/* Which presence events an update is: none, the 0.x format, or 1.0's (typed "mercure").
 * Only the hub publishes topics under the subscriptions path: both generations refuse them
 * to publishers. */
enum presence_format { NOT_PRESENCE, PRESENCE_0X, PRESENCE_1 };

static enum presence_format presence_format(const qs_update *u)
{
    static const char prefix[] = "/.well-known/mercure/subscriptions/";
    if (!u->is_private || u->n_topics != 1 || u->topic_lens[0] < sizeof(prefix) - 1 ||
        memcmp(u->topics[0], prefix, sizeof(prefix) - 1) != 0)
        return NOT_PRESENCE;
    return u->type && strcmp(u->type, "mercure") == 0 ? PRESENCE_1 : PRESENCE_0X;
}

/* True for a subscription event about m itself: as in the reference, a subscriber never
 * sees its own arrival (its events are published before it is registered there). The
 * event's topic ends with "/" + QueryEscape(id), and the id is "urn:uuid:" + 36 characters
 * that need no escaping. */
static bool own_presence_event(const qs_update *u, const qs_index_member *m)
{
    static const char tail[] = "/urn%3Auuid%3A";
    const size_t uuid_len = 36, n = sizeof(tail) - 1 + uuid_len;
    if (u->n_topics != 1 || u->topic_lens[0] < n)
        return false;
    const char *end = u->topics[0] + u->topic_lens[0] - n;
    return memcmp(end, tail, sizeof(tail) - 1) == 0 &&
           memcmp(end + sizeof(tail) - 1, m->id + 9, uuid_len) == 0;
}

/* The update being fanned out, with what is computed once for it. */
typedef struct fanout {
    qs_update *u;
    qs_topics topics;
    enum presence_format presence;
} fanout;

/* Whether m may receive a presence event of that format (for any other update: yes). */
static bool presence_allowed(enum presence_format f, const qs_update *u, const qs_index_member *m)
{
    if (f == NOT_PRESENCE)
        return true;
    if (f == PRESENCE_1)
        return m->v1;
    return !m->v1 && !own_presence_event(u, m);
}

static void deliver_group(qs_index *x, qs_sub_group *g, fanout *f)
{
    qs_update *u = f->u;
    for (uint32_t i = 0; i < g->n; i++) {
        qs_index_member *m = g->members[i].m;
        if (m->last_seq >= u->seq)
            continue; /* already queued through another selector, or subscribed later */
        m->last_seq = u->seq;
        if (m->stream->closing)
            continue;
        if (u->is_private && (!m->claims || !claimset_allows(x, m->claims, u, &f->topics) ||
                              !presence_allowed(f->presence, u, m)))
            continue;
        if (!qs_stream_push(m->stream, u->frame)) {
            qs_stream_drop(m->stream, QS_DROP_QUEUE_FULL);
            continue;
        }
        qs_counter_bump(&x->ctx->counters.deliveries, 1);
    }
}

void qs_index_fanout(qs_index *x, qs_update *u)
{
    x->bus_seq = u->seq;
    fanout f = {.u = u, .presence = presence_format(u)};
    qs_topics_init(&f.topics, u->topics, u->topic_lens, u->n_topics);
    bool exact1 = qs_strmap_count(&x->groups[QS_SYNTAX_EXACT]) > 0;
    for (size_t i = 0; i < u->n_topics; i++) {
        qs_sub_group *g =
            qs_strmap_get(&x->groups[QS_SYNTAX_TOPIC], u->topics[i], u->topic_lens[i]);
        if (g)
            deliver_group(x, g, &f);
        /* 1.0 exact matchers with "{" (rare) have their own map: the 0.x selector of the same
         * text is a template. */
        g = exact1 ? qs_strmap_get(&x->groups[QS_SYNTAX_EXACT], u->topics[i], u->topic_lens[i])
                   : NULL;
        if (g)
            deliver_group(x, g, &f);
    }
    qs_sub_group *any = qs_strmap_get(&x->groups[QS_SYNTAX_TOPIC], "*", 1);
    if (any)
        deliver_group(x, any, &f);
    for (uint32_t t = 0; t < x->n_templates; t++) {
        qs_sub_group *g = x->templates[t];
        for (size_t i = 0; i < u->n_topics; i++) {
            if (qs_selector_table_match_in(x->selectors, g->sel, &f.topics, i)) {
                deliver_group(x, g, &f);
                break;
            }
        }
    }
    /* URL patterns found by the end of the topic's path, each length of fixed end looked
     * up once per topic (a group met twice delivers once: last_seq). */
    for (size_t i = 0; i < u->n_topics && x->n_suffix_lens; i++) {
        const qs_weburl *url = qs_topics_url(&f.topics, i, x->base);
        if (!url)
            continue;
        qs_slice path = qs_weburl_get(url, QS_WEBURL_PATHNAME);
        for (uint32_t k = 0; k < x->n_suffix_lens; k++) {
            size_t n = x->suffix_lens[k].len;
            suffix_bucket *b =
                n <= path.n ? qs_strmap_get(&x->suffixes, path.p + path.n - n, n) : NULL;
            for (uint32_t j = 0; b && j < b->n; j++)
                if (qs_selector_table_match_in(x->selectors, b->v[j]->sel, &f.topics, i))
                    deliver_group(x, b->v[j], &f);
        }
    }
    qs_topics_free(&f.topics);
}

bool qs_index_wants(qs_index *x, const qs_index_member *m, const qs_update *u)
{
    qs_topics v;
    qs_topics_init(&v, u->topics, u->topic_lens, u->n_topics);
    bool wants = false;
    if (u->is_private &&
        (!m->claims ||
         !(m->claims->all || qs_can_receive(x->selectors, m->claims->sels, m->claims->n, &v)) ||
         !presence_allowed(presence_format(u), u, m)))
        goto out;
    /* Uncached: history's topics are mostly ones live updates will not bring again, and
     * must not push the live answers out of the cache. */
    for (uint32_t e = 0; e < m->n_entries && !wants; e++)
        for (size_t i = 0; i < u->n_topics && !wants; i++)
            wants = qs_selector_match_in(m->entries[e].group->sel, &v, i);
out:
    qs_topics_free(&v);
    return wants;
}
