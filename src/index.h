/* SPDX-License-Identifier: MIT
 * index.h - a worker's index of its subscribers, and the fan-out of committed updates.
 *
 * Subscribers are grouped by topic selector: one group per distinct selector string,
 * found by a hash lookup for a topic (exact selectors, and any selector spelled like the
 * topic), the "*" group, and the template groups, tried one by one through the worker's
 * (selector, topic) cache. An update reaches each matching subscriber once (last_seq),
 * private updates only those whose claims allow it: subscribers with identical claims
 * share one claim set, which decides once per update.
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
    uint32_t idx; /* position in the group's members */
} qs_index_entry;

typedef struct qs_index_member {
    qs_index_entry *entries; /* one per topic selector */
    uint32_t n_entries;
    struct qs_claimset *claims; /* NULL: public updates only */
    uint64_t last_seq;          /* last update queued (dedupe across matching selectors) */
    const char *id;             /* the subscriber's id, "urn:uuid:…" */
    qs_stream *stream;
} qs_index_member;

qs_index *qs_index_new(qs_ctx *ctx);
/** Frees the index; every member must have been removed. */
void qs_index_free(qs_index *x);

/** Adds m (id and stream set) under each selector, with the subscribe claims (n_claims 0:
 *  public updates only). m starts at the worker's bus position. */
void qs_index_add(qs_index *x, qs_index_member *m, const qs_slice *selectors, size_t n,
                  char *const *claims, size_t n_claims);
void qs_index_remove(qs_index *x, qs_index_member *m);
/** The i-th topic selector of m. */
const char *qs_index_selector(const qs_index_member *m, uint32_t i, size_t *len);

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
