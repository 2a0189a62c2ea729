/* SPDX-License-Identifier: MIT
 * index.h - a worker's index of its subscribers, and the fan-out of committed updates.
 *
 * Subscribers of both protocol generations share one index. They are grouped by selector:
 * one group per distinct interned selector (topic.h), found by a hash lookup for a topic
 * (exact selectors of either generation, and any selector spelled like the topic), the "*"
 * group, and the groups of URI templates and URL patterns, tried one by one through the
 * worker's (selector, topic) cache with the update's topics parsed once. An update reaches
 * each matching subscriber once (last_seq), private updates only those whose claims allow
 * it: subscribers with identical claims share one claim set, which decides once per update.
 *
 * Presence events exist in two formats when both generations are served (the hub publishes
 * each arrival and departure in both): a 0.x subscriber gets those without an event type, a
 * 1.0 subscriber those typed "mercure". A 0.x subscriber never gets the events about itself
 * (the 0.x reference publishes them before registering it); a 1.0 subscriber does (the 1.0
 * reference publishes them after).
 *
 * A member is embedded in its subscriber and points to the subscriber's stream, where
 * fan-out queues frames (dropping streams over their bounds). Touched only by the worker.
 */
#ifndef QS_INDEX_H
#define QS_INDEX_H

#include "ctx.h"
#include "stream.h"

typedef struct qs_index qs_index;
struct qs_sub_group;
struct qs_claimset;

typedef struct qs_index_entry {
    struct qs_sub_group *group;
    uint32_t idx;   /* position in the group's members */
    uint8_t syntax; /* the selector's syntax as the subscriber gave it (enum qs_selector_syntax) */
} qs_index_entry;

typedef struct qs_index_member {
    qs_index_entry *entries; /* one per topic selector */
    uint32_t n_entries;
    struct qs_claimset *claims; /* NULL: public updates only */
    uint64_t last_seq;          /* last update queued (dedupe across matching selectors) */
    const char *id;             /* the subscriber's id, "urn:uuid:…" */
    qs_stream *stream;
    bool v1; /* a protocol 1.0 subscriber (set before qs_index_add) */
} qs_index_member;

qs_index *qs_index_new(qs_ctx *ctx);
/** Frees the index; every member must have been removed. */
void qs_index_free(qs_index *x);

/** Adds m (id, stream and generation set) under each selector, with the selectors of its
 *  subscribe claims (n_claims 0: public updates only). m starts at the worker's bus
 *  position. */
void qs_index_add(qs_index *x, qs_index_member *m, const qs_selector_spec *selectors, size_t n,
                  const qs_selector_spec *claims, size_t n_claims);
void qs_index_remove(qs_index *x, qs_index_member *m);
/** The i-th topic selector of m, and its syntax as given. */
const char *qs_index_selector(const qs_index_member *m, uint32_t i, size_t *len);
enum qs_selector_syntax qs_index_selector_syntax(const qs_index_member *m, uint32_t i);

/** Queues u's frame to every matching member's stream; u->seq becomes the position. */
void qs_index_fanout(qs_index *x, qs_update *u);
/** True when m would receive u live: a selector matches and, for a private update, the
 *  claims allow it (history is authorized the same way). */
bool qs_index_wants(qs_index *x, const qs_index_member *m, const qs_update *u);
/** The seq of the last update fanned out here (the worker's bus position). */
uint64_t qs_index_position(const qs_index *x);
/** Sets the position the worker starts at (the transport's, at start-up). */
void qs_index_set_position(qs_index *x, uint64_t seq);

#endif
