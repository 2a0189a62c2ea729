/* SPDX-License-Identifier: MIT
 * topic.c - topic selectors, their per-thread interning table and match cache (see topic.h).
 *
 * The match cache maps (selector id, topic) to the answer. It stores no topic bytes: an
 * entry is a 128-bit fingerprint computed with two SipHash-1-3 runs under two independent
 * random keys, 125 bits of which are compared (3 bits carry the answer, a reference bit and
 * an occupied bit). A false hit needs two different topics whose fingerprints agree on all
 * 125 bits; with secret keys that is about entries * 2^-125 per lookup, far below the
 * hardware error rate, and a peer cannot aim for it without breaking SipHash. In exchange
 * an entry costs 16 bytes whatever the topic length (storing topics would cost the topic
 * plus about 40 bytes of bookkeeping, i.e. several MB more per worker at the default 100000
 * entries).
 *
 * A bijective mix of the selector id is XORed into the first half of the fingerprint, so
 * the same topic under two different ids never collides. Ids come from one process-wide
 * counter and are never reused, so entries left behind by a released selector can never
 * answer for a later one, even one allocated at the same address. Those stale entries are
 * never hit again and second chance evicts them as their buckets fill (until then they are
 * counted in the "entries" statistic). A global counter also keeps ids unique across tables,
 * so a selector from another table cannot be confused with one of ours.
 *
 * Layout: 4-way set-associative buckets of 64 bytes (one cache line), chosen from the
 * fingerprint. Lookup and insertion touch one bucket: O(1). Eviction is second chance
 * (CLOCK) within the bucket: hits set the reference bit, the victim is the first way without
 * it, clearing bits on the way. Memory: 16 bytes per entry, allocated on first use; the
 * capacity is cache_entries rounded down to a multiple of 4 (or cache_entries itself below 4).
 *
 * Only dear answers are cached: when a template's literal prefix or suffix rules the topic
 * out (the usual case for an application's templates and topics), or when its automaton is
 * small and the topic short, matching directly costs about what a lookup does, and caching
 * the answer would only evict dearer ones.
 */
#include "topic.h"
#include "strmap.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* ---- topics parsed on demand ---- */

void qs_topics_free(qs_topics *v)
{
    if (v->ts)
        for (size_t i = 0; i < v->n; i++)
            if (v->ts[i].parse == 1)
                qs_weburl_free(&v->ts[i].url);
    free(v->ts);
    v->ts = NULL;
}

static qs_topic_state *topic_state(qs_topics *v, size_t i)
{
    if (!v->ts)
        v->ts = qs_xcalloc(v->n, sizeof(*v->ts));
    return &v->ts[i];
}

const qs_weburl *qs_topics_url(qs_topics *v, size_t i, const qs_weburl *base)
{
    qs_topic_state *ts = topic_state(v, i);
    if (ts->parse == 0)
        ts->parse = qs_weburl_parse(v->topics[i], v->lens[i], base, &ts->url) == 0 ? 1 : 2;
    return ts->parse == 1 ? &ts->url : NULL;
}

/* ---- selectors ---- */

static _Atomic uint64_t selector_ids = 1;

/* The namespace a selector lives in: a 1.0 exact matcher without "{", and "*" of any syntax,
 * read exactly as the 0.x selector of the same text. */
static enum qs_selector_syntax normalized(enum qs_selector_syntax syntax, const char *s, size_t len)
{
    if (len == 1 && s[0] == '*')
        return QS_SYNTAX_TOPIC;
    if (syntax == QS_SYNTAX_EXACT && !memchr(s, '{', len))
        return QS_SYNTAX_TOPIC;
    return syntax;
}

static qs_selector *selector_new(enum qs_selector_syntax syntax, const char *s, size_t len,
                                 const qs_weburl *base, size_t max_states)
{
    qs_selector *sel = qs_xmalloc(sizeof(*sel) + len + 1);
    sel->refs = 1;
    sel->parked = false;
    sel->id = 0;
    sel->tpl = NULL;
    sel->pat = NULL;
    sel->syntax = (uint8_t)normalized(syntax, s, len);
    sel->len = len;
    if (len)
        memcpy(sel->str, s, len);
    sel->str[len] = '\0';
    if (len == 1 && s[0] == '*') {
        sel->kind = QS_SEL_ANY;
    } else if (sel->syntax == QS_SYNTAX_URLPATTERN) {
        sel->kind = QS_SEL_URLPATTERN;
        if (base && len <= QS_URLPATTERN_MAX_LENGTH)
            sel->pat = qs_urlpattern_compile(s, len, base, max_states, NULL, NULL);
    } else if (sel->syntax == QS_SYNTAX_TOPIC && len && memchr(s, '{', len) &&
               (sel->tpl = qs_uritemplate_compile(s, len, NULL))) {
        sel->kind = QS_SEL_TEMPLATE;
    } else {
        /* Without "{" the reference does not even try; with one that does not parse, the
         * selector is a plain string (and a 1.0 exact matcher is one anyway). */
        sel->kind = QS_SEL_EXACT;
    }
    return sel;
}

static void selector_free(qs_selector *sel)
{
    qs_uritemplate_free(sel->tpl);
    qs_urlpattern_free(sel->pat);
    free(sel);
}

qs_selector *qs_selector_compile(const char *s, size_t len)
{
    return selector_new(QS_SYNTAX_TOPIC, s, len, NULL, 0);
}

void qs_selector_release(qs_selector *sel)
{
    if (sel && --sel->refs == 0)
        selector_free(sel);
}

bool qs_selector_match(const qs_selector *sel, const char *topic, size_t len)
{
    char *topics[1] = {(char *)topic};
    qs_topics v;
    qs_topics_init(&v, topics, &len, 1);
    bool m = qs_selector_match_in(sel, &v, 0);
    qs_topics_free(&v);
    return m;
}

/* A URL pattern's answer for topic i, computed (the cache is the caller's business). */
static bool pattern_match(const qs_selector *sel, qs_topics *v, size_t i)
{
    const qs_weburl *u = qs_topics_url(v, i, qs_urlpattern_base(sel->pat));
    return u && qs_urlpattern_match_url(sel->pat, u);
}

bool qs_selector_match_in(const qs_selector *sel, qs_topics *v, size_t i)
{
    const char *topic = v->topics[i];
    size_t len = v->lens[i];
    switch (sel->kind) {
    case QS_SEL_ANY:
        return true;
    case QS_SEL_EXACT:
        return len == sel->len && (len == 0 || memcmp(topic, sel->str, len) == 0);
    case QS_SEL_TEMPLATE:
        if (len == sel->len && (len == 0 || memcmp(topic, sel->str, len) == 0))
            return true;
        return qs_uritemplate_match(sel->tpl, topic, len);
    case QS_SEL_URLPATTERN:
        if (!sel->pat || qs_urlpattern_quick_reject(sel->pat, topic, len))
            return false;
        return pattern_match(sel, v, i);
    }
    return false;
}

/* ---- limits ---- */

/* The matcher advances 64 states per word operation: a template's cost is its states rounded
 * up to this. */
#define STATES_PER_WORD 64

const char *qs_selector_check(const qs_selector_limits *lim, const char *s, size_t len,
                              size_t *states, char reason[QS_SELECTOR_REASON_SIZE])
{
    if (!len || !memchr(s, '{', len))
        return NULL;
    if (lim->max_length && len > lim->max_length) {
        snprintf(reason, QS_SELECTOR_REASON_SIZE,
                 "Topic selector too long: %zu bytes (max_selector_length %" PRIu64 ").", len,
                 lim->max_length);
        return reason;
    }
    size_t expressions, n;
    if (!qs_uritemplate_measure(s, len, &expressions, &n, NULL))
        return NULL; /* not a template: a plain string, matched by equality */
    if (lim->max_expressions && expressions > lim->max_expressions) {
        snprintf(reason, QS_SELECTOR_REASON_SIZE,
                 "Topic selector has too many expressions: %zu (max_selector_expressions %zu).",
                 expressions, lim->max_expressions);
        return reason;
    }
    if (lim->max_states && n > lim->max_states) {
        snprintf(reason, QS_SELECTOR_REASON_SIZE,
                 "Topic selector too complex: %zu automaton states (max_selector_states %zu).", n,
                 lim->max_states);
        return reason;
    }
    size_t cost = (n + STATES_PER_WORD - 1) / STATES_PER_WORD * STATES_PER_WORD;
    if (lim->max_subscriber_states &&
        (*states > lim->max_subscriber_states || cost > lim->max_subscriber_states - *states)) {
        snprintf(reason, QS_SELECTOR_REASON_SIZE,
                 "Topic selectors too complex together: %zu automaton states "
                 "(max_subscriber_states %zu).",
                 *states + cost, lim->max_subscriber_states);
        return reason;
    }
    *states += cost;
    return NULL;
}

/* ---- table and cache ---- */

#define CACHE_WAYS 4
#define FP_RESULT ((uint64_t)1) /* the cached answer */
#define FP_REF ((uint64_t)2)    /* hit since the last eviction scan of its bucket */
#define FP_USED ((uint64_t)4)   /* set in every occupied way: an all-zero way is empty */
#define FP_FLAGS (FP_RESULT | FP_REF)

typedef struct cache_entry {
    uint64_t lo; /* SipHash(key1, topic) ^ mix_id(selector id) */
    uint64_t hi; /* SipHash(key2, topic) with the three low bits replaced by FP_* */
} cache_entry;

typedef struct cache_bucket {
    cache_entry way[CACHE_WAYS];
} cache_bucket;

#define PARKED_MAX 256
/* Only selectors this small are parked (a usual template takes 500 to 900 bytes): a large one
 * is expensive to keep and cheap to rebuild compared with what its subscriber sent. This
 * bounds the parked memory at 512 KiB per table. */
#define PARK_MAX_BYTES 2048

struct qs_selector_table {
    qs_strmap selectors[QS_SYNTAXES]; /* per syntax: selector string -> qs_selector */
    const qs_weburl *base;            /* URL patterns resolve against it */
    size_t max_states;                /* per URL pattern (0: no bound) */
    cache_bucket *buckets;
    void *buckets_mem; /* what calloc returned; buckets is aligned to 64 bytes within it */
    size_t nbuckets;
    unsigned ways; /* CACHE_WAYS, fewer only when fewer entries were asked for */
    size_t capacity;
    size_t entries;
    uint64_t hits, misses;
    uint64_t key1[2], key2[2];
    /* Recently released selectors stay interned (with their cache entries) for a while:
     * a selector that comes back — a publisher's claim on every request, a subscriber
     * reconnecting — keeps its id and its cached answers. FIFO of up to PARKED_MAX. */
    qs_selector *parked[PARKED_MAX];
    size_t parked_head, parked_n;
};

qs_selector_table *qs_selector_table_new(size_t cache_entries)
{
    qs_selector_table *t = qs_xcalloc(1, sizeof(*t));
    for (int i = 0; i < QS_SYNTAXES; i++)
        qs_strmap_init(&t->selectors[i]);
    if (cache_entries > 0) {
        t->ways = cache_entries < CACHE_WAYS ? (unsigned)cache_entries : CACHE_WAYS;
        t->nbuckets = cache_entries / t->ways;
        if (t->nbuckets > UINT32_MAX) /* the bucket index is computed in 32 bits */
            t->nbuckets = UINT32_MAX;
        t->capacity = t->nbuckets * t->ways;
        qs_random_bytes(t->key1, sizeof(t->key1));
        qs_random_bytes(t->key2, sizeof(t->key2));
    }
    return t;
}

void qs_selector_table_free(qs_selector_table *t)
{
    if (!t)
        return;
    /* Parked selectors (and stragglers never released) are freed with the table. */
    for (int k = 0; k < QS_SYNTAXES; k++) {
        const qs_strmap_entry *e;
        for (size_t i = 0; qs_strmap_next(&t->selectors[k], &i, &e);)
            selector_free(e->value);
        qs_strmap_free(&t->selectors[k]);
    }
    free(t->buckets_mem);
    free(t);
}

void qs_selector_table_set_base(qs_selector_table *t, const qs_weburl *base, size_t max_states)
{
    t->base = base;
    t->max_states = max_states;
}

qs_selector *qs_selector_table_acquire_as(qs_selector_table *t, enum qs_selector_syntax syntax,
                                          const char *s, size_t len)
{
    syntax = normalized(syntax, s, len);
    void **slot = qs_strmap_upsert(&t->selectors[syntax], s, len);
    qs_selector *sel = *slot;
    if (sel) {
        if (sel->refs == UINT32_MAX)
            qs_panic("selector reference count overflow");
        sel->refs++;
        return sel;
    }
    sel = selector_new(syntax, s, len, t->base, t->max_states);
    sel->id = atomic_fetch_add_explicit(&selector_ids, 1, memory_order_relaxed);
    *slot = sel;
    return sel;
}

qs_selector *qs_selector_table_acquire(qs_selector_table *t, const char *s, size_t len)
{
    return qs_selector_table_acquire_as(t, QS_SYNTAX_TOPIC, s, len);
}

static size_t selector_bytes(const qs_selector *sel)
{
    return sizeof(*sel) + sel->len + 1 + (sel->tpl ? qs_uritemplate_size(sel->tpl) : 0) +
           (sel->pat ? qs_urlpattern_size(sel->pat) : 0);
}

/* glibc keeps what is freed in its arenas, and the many blocks a crowd of subscribers leaves
 * behind when it goes (selectors, group keys, connections) are mostly not at the top of a
 * heap, so they are never returned by themselves: after 1000 subscribers at the limits left,
 * about 80 % of the memory they had taken stayed resident. malloc_trim() gives the free pages
 * back (a few milliseconds for such a heap, on the worker that calls it); it runs whenever
 * tables have freed this many bytes of selectors since the last time, which is rare for an
 * application whose subscribers come and go with the same small selectors (they are parked
 * and reused). */
#define TRIM_AFTER_BYTES ((size_t)4 << 20)

static _Atomic size_t freed_since_trim;

static void count_freed(size_t bytes)
{
    size_t before = atomic_fetch_add_explicit(&freed_since_trim, bytes, memory_order_relaxed);
    if (before < TRIM_AFTER_BYTES && before + bytes >= TRIM_AFTER_BYTES) {
        atomic_store_explicit(&freed_since_trim, 0, memory_order_relaxed);
#ifdef __GLIBC__
        malloc_trim(0);
#endif
    }
}

/* Frees a selector nobody uses and no parking slot refers to. */
static void forget_if_unused(qs_selector_table *t, qs_selector *sel)
{
    if (sel->refs || sel->parked)
        return;
    void *v = qs_strmap_remove(&t->selectors[sel->syntax], sel->str, sel->len);
    if (v != sel)
        qs_panic("selector released to a table that does not hold it");
    size_t bytes = selector_bytes(sel);
    selector_free(sel);
    count_freed(bytes);
}

void qs_selector_table_release(qs_selector_table *t, qs_selector *sel)
{
    if (!sel || --sel->refs > 0)
        return;
    if (sel->parked) /* already waiting in the FIFO */
        return;
    if (selector_bytes(sel) > PARK_MAX_BYTES) {
        forget_if_unused(t, sel);
        return;
    }
    if (t->parked_n == PARKED_MAX) {
        qs_selector *old = t->parked[t->parked_head];
        t->parked_head = (t->parked_head + 1) % PARKED_MAX;
        t->parked_n--;
        old->parked = false;
        forget_if_unused(t, old);
    }
    t->parked[(t->parked_head + t->parked_n++) % PARKED_MAX] = sel;
    sel->parked = true;
}

/* A bijection (the splitmix64 finalizer) that spreads an id over all 64 bits: different ids
 * still give different values, and the same topic under different selectors lands in
 * different buckets instead of crowding one. */
static uint64_t mix_id(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void cache_alloc(qs_selector_table *t)
{
    /* calloc'd memory of this size comes from fresh zero pages: untouched buckets cost
     * nothing until used. */
    size_t size = t->nbuckets * sizeof(cache_bucket) + 63;
    t->buckets_mem = qs_xcalloc(1, size);
    uintptr_t p = ((uintptr_t)t->buckets_mem + 63) & ~(uintptr_t)63;
    t->buckets = (cache_bucket *)p;
}

/* Templates are matched without the cache when their literal prefix or suffix rules the topic
 * out, or when the automaton needs at most this many steps (topic bytes x 64-state words):
 * about what hashing the topic twice and reading a bucket costs. Such answers would only
 * push dearer ones out of the cache. */
#define DIRECT_MATCH_STEPS 32

/* A topic is parsed for URL patterns once it has needed this many cache lookups in one
 * update: a parse of a canonical URL costs about as much as four lookups, and then each
 * pattern's fixed texts rule most topics out without one. */
#define EAGER_PARSE_LOOKUPS 4

bool qs_selector_table_match(qs_selector_table *t, const qs_selector *sel, const char *topic,
                             size_t len)
{
    char *topics[1] = {(char *)topic};
    qs_topics v;
    qs_topics_init(&v, topics, &len, 1);
    bool m = qs_selector_table_match_in(t, sel, &v, 0);
    qs_topics_free(&v);
    return m;
}

bool qs_selector_table_match_in(qs_selector_table *t, const qs_selector *sel, qs_topics *v,
                                size_t i)
{
    const char *topic = v->topics[i];
    size_t len = v->lens[i];
    if (sel->kind == QS_SEL_URLPATTERN) {
        if (!sel->pat || qs_urlpattern_quick_reject(sel->pat, topic, len))
            return false;
        /* A topic that has met a few patterns already is parsed now: each pattern's fixed
         * texts then settle most of them for less than a cache lookup. */
        qs_topic_state *ts = topic_state(v, i);
        if (ts->parse == 0 && ts->lookups >= EAGER_PARSE_LOOKUPS)
            qs_topics_url(v, i, qs_urlpattern_base(sel->pat));
        if (ts->parse == 2 ||
            (ts->parse == 1 && qs_urlpattern_quick_reject_url(sel->pat, &ts->url)))
            return false;
    } else if (sel->kind == QS_SEL_TEMPLATE) {
        if (len == sel->len && (len == 0 || memcmp(topic, sel->str, len) == 0))
            return true;
        if (t->capacity) {
            int quick = qs_uritemplate_quick_match(sel->tpl, topic, len, DIRECT_MATCH_STEPS);
            if (quick >= 0)
                return quick;
        }
    }
    if ((sel->kind != QS_SEL_TEMPLATE && sel->kind != QS_SEL_URLPATTERN) || t->capacity == 0 ||
        sel->id == 0)
        return qs_selector_match_in(sel, v, i);
    if (!t->buckets)
        cache_alloc(t);

    /* The topic's fingerprints do not depend on the selector: hashed once per update. */
    qs_topic_state *ts = topic_state(v, i);
    if (!ts->hashed) {
        ts->h1 = qs_siphash13(t->key1, topic, len);
        ts->h2 = qs_siphash13(t->key2, topic, len);
        ts->hashed = true;
    }
    if (ts->lookups < UINT16_MAX)
        ts->lookups++;
    uint64_t lo = ts->h1 ^ mix_id(sel->id);
    uint64_t hi = (ts->h2 & ~(FP_FLAGS | FP_USED)) | FP_USED;
    /* Lemire's multiply-shift maps the top 32 bits onto [0, nbuckets) without a division. */
    cache_bucket *b = &t->buckets[((lo >> 32) * (uint64_t)t->nbuckets) >> 32];
    for (unsigned w = 0; w < t->ways; w++) {
        cache_entry *e = &b->way[w];
        if (e->lo == lo && (e->hi & ~FP_FLAGS) == hi) {
            e->hi |= FP_REF;
            t->hits++;
            return e->hi & FP_RESULT;
        }
    }
    t->misses++;
    bool result = sel->kind == QS_SEL_TEMPLATE ? qs_uritemplate_match(sel->tpl, topic, len)
                                               : pattern_match(sel, v, i);

    unsigned victim = t->ways;
    for (unsigned w = 0; w < t->ways && victim == t->ways; w++)
        if (!(b->way[w].hi & FP_USED))
            victim = w;
    if (victim == t->ways) {
        /* Second chance, starting from a fingerprint-derived way so that no way is
         * systematically preferred. */
        unsigned start = (unsigned)(hi >> 40) % t->ways;
        for (unsigned k = 0; k < t->ways && victim == t->ways; k++) {
            cache_entry *e = &b->way[(start + k) % t->ways];
            if (e->hi & FP_REF)
                e->hi &= ~FP_REF;
            else
                victim = (start + k) % t->ways;
        }
        if (victim == t->ways)
            victim = start;
    } else {
        t->entries++;
    }
    /* New entries start unreferenced: a topic seen once is the first to be replaced. */
    b->way[victim].lo = lo;
    b->way[victim].hi = hi | (result ? FP_RESULT : 0);
    return result;
}

void qs_selector_table_stats(const qs_selector_table *t, uint64_t *hits, uint64_t *misses,
                             size_t *entries)
{
    if (hits)
        *hits = t->hits;
    if (misses)
        *misses = t->misses;
    if (entries)
        *entries = t->entries;
}
