/* SPDX-License-Identifier: MIT
 * topic.h - topic selectors: "*", exact strings and URI templates, and their matching.
 *
 * A selector matches a topic when (in order): the selector is "*"; the selector equals the
 * topic byte for byte; the selector contains "{", compiles as a URI template, and the
 * topic matches it. A selector with "{" that does not compile is a plain string.
 *
 *   qs_selector_table (one per worker thread, not thread-safe)
 *     interned selectors: string -> qs_selector {kind, str, template, id, refs}
 *     match cache: (selector id, topic) -> bool, bounded, for template selectors only
 *
 * Exact and "*" selectors never touch the cache. Standalone selectors (from a token's
 * claims, compiled per request) can be matched without a table.
 */
#ifndef QS_TOPIC_H
#define QS_TOPIC_H

#include "uritemplate.h"
#include "util.h"

enum qs_selector_kind { QS_SEL_ANY, QS_SEL_EXACT, QS_SEL_TEMPLATE };

typedef struct qs_selector {
    enum qs_selector_kind kind;
    uint32_t refs;
    bool parked;         /* released, kept interned for a while by its table */
    uint64_t id;         /* unique within its table (0 for standalone selectors) */
    qs_uritemplate *tpl; /* QS_SEL_TEMPLATE only */
    size_t len;
    char str[]; /* NUL-terminated copy of the selector */
} qs_selector;

/** Compiles a standalone selector (refs = 1). */
qs_selector *qs_selector_compile(const char *s, size_t len);
/** Drops a reference to a standalone selector. */
void qs_selector_release(qs_selector *sel);
/** Uncached match. */
bool qs_selector_match(const qs_selector *sel, const char *topic, size_t len);

typedef struct qs_selector_table qs_selector_table;

/** cache_entries bounds the (selector, topic) cache; 0 disables caching. */
qs_selector_table *qs_selector_table_new(size_t cache_entries);
/** Frees the table; every acquired selector must have been released. */
void qs_selector_table_free(qs_selector_table *t);
/** Returns the interned selector for s with one more reference. */
qs_selector *qs_selector_table_acquire(qs_selector_table *t, const char *s, size_t len);
/** Drops a reference. At zero the selector stays interned among the last 256 released,
 *  with its cached answers, and is freed when it leaves that FIFO unused. */
void qs_selector_table_release(qs_selector_table *t, qs_selector *sel);
/** Match through the cache (template selectors) or directly (others). */
bool qs_selector_table_match(qs_selector_table *t, const qs_selector *sel, const char *topic,
                             size_t len);
/** Counters for metrics: cache hits, misses, entries. */
void qs_selector_table_stats(const qs_selector_table *t, uint64_t *hits, uint64_t *misses,
                             size_t *entries);

#endif
