/* SPDX-License-Identifier: MIT
 * topic.h - topic selectors of both protocol generations, and their matching.
 *
 * A protocol 0.x selector (QS_SYNTAX_TOPIC) matches a topic when (in order): the selector
 * is "*"; the selector equals the topic byte for byte; the selector contains "{", compiles
 * as a URI template, and the topic matches it. A selector with "{" that does not compile is
 * a plain string. Protocol 1.0 matchers are "*" (every topic, whatever the type), exact
 * (QS_SYNTAX_EXACT: bytes) or URL patterns (QS_SYNTAX_URLPATTERN: a WHATWG URL pattern
 * resolved against the table's base, matched against the topic parsed as a URL, see
 * urlpattern.h; a topic that is not a URL never matches).
 *
 *   qs_selector_table (one per worker thread, not thread-safe)
 *     interned selectors, one namespace per syntax: string -> qs_selector {kind, str,
 *       template or pattern, id, refs}; a 1.0 exact matcher without "{" (or "*" of any
 *       syntax) means what the same 0.x selector means, and is that selector
 *     match cache: (selector id, topic) -> bool, bounded, for templates and URL patterns
 *
 * Exact and "*" selectors never touch the cache, and neither do templates whose literal
 * prefix or suffix rules the topic out or whose automaton is cheaper to run than the cache
 * is to consult, nor URL patterns whose fixed beginning rules a canonical topic out. A
 * topic is parsed as a URL only on a cache miss, and once per update however many patterns
 * need it (qs_topics). Standalone selectors (from a token's claims, compiled per request)
 * can be matched without a table.
 *
 * What one subscriber can cost is bounded by qs_selector_check() (the subscribe handler's
 * gate): matching a topic against a template costs a few nanoseconds per topic byte and per
 * 64 automaton states (see uritemplate.h), so the limits on states bound the work per
 * update, and the length limit bounds the memory.
 */
#ifndef QS_TOPIC_H
#define QS_TOPIC_H

#include "uritemplate.h"
#include "urlpattern.h"
#include "util.h"

enum qs_selector_kind { QS_SEL_ANY, QS_SEL_EXACT, QS_SEL_TEMPLATE, QS_SEL_URLPATTERN };

/** How a selector's text is read (see above). */
enum qs_selector_syntax { QS_SYNTAX_TOPIC, QS_SYNTAX_EXACT, QS_SYNTAX_URLPATTERN };
#define QS_SYNTAXES 3

/** A selector as a request or a token gives it: its syntax and its text. */
typedef struct qs_selector_spec {
    enum qs_selector_syntax syntax;
    const char *s;
    size_t len;
} qs_selector_spec;

typedef struct qs_selector {
    enum qs_selector_kind kind;
    uint8_t syntax; /* the namespace it is interned in (normalized, see above) */
    uint32_t refs;
    bool parked;         /* released, kept interned for a while by its table */
    uint64_t id;         /* unique within its table (0 for standalone selectors) */
    qs_uritemplate *tpl; /* QS_SEL_TEMPLATE only */
    qs_urlpattern *pat;  /* QS_SEL_URLPATTERN only; NULL: an invalid pattern, matches nothing */
    size_t len;
    char str[]; /* NUL-terminated copy of the selector */
} qs_selector;

/** What is known of one topic of an update, computed at most once for all its selectors. */
typedef struct qs_topic_state {
    uint8_t parse;    /* 0 not parsed yet, 1 parsed (url), 2 not a URL */
    bool hashed;      /* h1, h2 are set */
    uint16_t lookups; /* cache lookups made for it so far */
    uint64_t h1, h2;  /* its SipHash fingerprints under the table's keys */
    qs_weburl url;
} qs_topic_state;

/**
 * The topics of one update, each hashed for the cache and parsed as a URL at most once
 * however many selectors it meets: hashed on its first cache lookup, parsed on a URL
 * pattern's cache miss, or at once when it has met more than a few patterns (then each
 * pattern's fixed texts rule it out without a lookup). On the stack of whoever matches an
 * update, used with one selector table; qs_topics_free releases the parses.
 */
typedef struct qs_topics {
    char *const *topics;
    const size_t *lens;
    size_t n;
    qs_topic_state *ts; /* allocated on first need */
} qs_topics;

static inline void qs_topics_init(qs_topics *v, char *const *topics, const size_t *lens, size_t n)
{
    *v = (qs_topics){topics, lens, n, NULL};
}
void qs_topics_free(qs_topics *v);
/** Topic i parsed against base, or NULL when it is not a URL. */
const qs_weburl *qs_topics_url(qs_topics *v, size_t i, const qs_weburl *base);

/** Compiles a standalone 0.x selector (refs = 1). */
qs_selector *qs_selector_compile(const char *s, size_t len);
/** Drops a reference to a standalone selector. */
void qs_selector_release(qs_selector *sel);
/** Uncached match (a URL pattern parses the topic against the base it was compiled with). */
bool qs_selector_match(const qs_selector *sel, const char *topic, size_t len);
/** Uncached match of topic i of v (a URL pattern uses v's parse). */
bool qs_selector_match_in(const qs_selector *sel, qs_topics *v, size_t i);

/** Limits on the topic selectors of one subscribe request (the max_selector_length,
 *  max_selector_expressions, max_selector_states and max_subscriber_states directives);
 *  0 means no limit. */
typedef struct qs_selector_limits {
    uint64_t max_length;          /* bytes of one URI-template selector */
    size_t max_expressions;       /* {…} expressions of one selector */
    size_t max_states;            /* automaton states of one selector */
    size_t max_subscriber_states; /* of all of a request's templates, each rounded up to 64 */
} qs_selector_limits;

/** Room for the reason qs_selector_check() writes. */
#define QS_SELECTOR_REASON_SIZE 160

/**
 * Checks one `topic` selector of a subscribe request before anything is compiled, so that the
 * handler refuses the request with 400 and the reason:
 *
 *     size_t states = 0;
 *     char why[QS_SELECTOR_REASON_SIZE];
 *     for each `topic` selector s of the request:
 *         if (qs_selector_check(&limits, s, len, &states, why))
 *             answer 400 with why
 *
 * Only selectors containing "{" (the ones that may be URI templates) are limited: "*" and
 * exact topics cost one hash lookup per update whatever their length. In order: the length;
 * then, when the selector compiles as a template, its number of expressions, its automaton
 * states, and the running total *states of the request's templates, each rounded up to 64
 * states (the matcher's word: a tiny template costs as much as 64 states). A selector with
 * "{" that is not a valid template is a plain string: only its length is limited.
 *
 * Returns NULL when the selector is within the limits, else reason, filled with a one-line
 * message naming the directive. O(len); builds no automaton.
 */
const char *qs_selector_check(const qs_selector_limits *lim, const char *s, size_t len,
                              size_t *states, char reason[QS_SELECTOR_REASON_SIZE]);

typedef struct qs_selector_table qs_selector_table;

/** cache_entries bounds the (selector, topic) cache; 0 disables caching. */
qs_selector_table *qs_selector_table_new(size_t cache_entries);
/** URL patterns are resolved against base (a parsed absolute URL that outlives the table),
 *  their automata bounded by max_states each (0: no bound). Without a base, URL patterns
 *  match nothing. Set before the first acquire. */
void qs_selector_table_set_base(qs_selector_table *t, const qs_weburl *base, size_t max_states);
/** Frees the table; every acquired selector must have been released. */
void qs_selector_table_free(qs_selector_table *t);
/** Returns the interned 0.x selector for s with one more reference. */
qs_selector *qs_selector_table_acquire(qs_selector_table *t, const char *s, size_t len);
/** The same for a selector of any syntax. */
qs_selector *qs_selector_table_acquire_as(qs_selector_table *t, enum qs_selector_syntax syntax,
                                          const char *s, size_t len);
/** Drops a reference. At zero a small selector (2 KiB at most, automaton included) stays
 *  interned among the last 256 released, with its cached answers, and is freed when it
 *  leaves that FIFO unused; a larger one is freed at once. */
void qs_selector_table_release(qs_selector_table *t, qs_selector *sel);
/** Match through the cache (templates and URL patterns) or directly (others). */
bool qs_selector_table_match(qs_selector_table *t, const qs_selector *sel, const char *topic,
                             size_t len);
/** The same for topic i of v: a URL pattern that misses the cache uses v's parse. */
bool qs_selector_table_match_in(qs_selector_table *t, const qs_selector *sel, qs_topics *v,
                                size_t i);
/** Counters for metrics: cache hits, misses, entries. */
void qs_selector_table_stats(const qs_selector_table *t, uint64_t *hits, uint64_t *misses,
                             size_t *entries);

#endif
