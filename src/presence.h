/* SPDX-License-Identifier: MIT
 * presence.h - the registry of active subscriptions (the subscriptions API reads it).
 *
 * The single-node registry below serves the local and LMDB transports: a mutex-protected
 * map from subscriber id to its entry, in registration order. Cluster transports keep a
 * registry shared by every node instead and expose it through the same transport calls
 * (transport.h). Entries are plain copies: nothing points into a worker's memory.
 */
#ifndef QS_PRESENCE_H
#define QS_PRESENCE_H

#include <jansson.h>

#include "strmap.h"
#include "util.h"

typedef struct qs_presence_entry {
    char *subscriber; /* "urn:uuid:…" */
    char **topics;    /* the subscriber's topic selectors, in request order */
    size_t n_topics;
    char *payload;  /* the token's mercure.payload as compact JSON, NULL when absent */
    uint64_t order; /* registration order (set by the registry) */
    /* Protocol 1.0 subscribers: each selector's syntax (enum qs_selector_syntax; NULL: all
     * 0.x topic selectors) and its own payload (compact JSON, NULL: payload; a NULL array:
     * payload for all), resolved from the token's grants when it arrived. */
    uint8_t *syntaxes;
    char **payloads;
} qs_presence_entry;

/**
 * Protocol 1.0's parts of an entry as cluster registries store them (Redis, PostgreSQL,
 * Kafka): members "syntaxes" (each selector's syntax as a number) and "payloads" (each
 * selector's payload, null for the token's) of the JSON object o, set only when the entry has
 * them, so 0.x entries read as before. qs_presence_v1_from_json reads them back for an entry
 * whose topics are filled: an array of another length than the topics is ignored, a syntax
 * out of range reads as a 0.x topic selector.
 */
void qs_presence_v1_to_json(const qs_presence_entry *e, json_t *o);
void qs_presence_v1_from_json(const json_t *o, qs_presence_entry *e);

/** Deep copy of e into out. */
void qs_presence_entry_copy(qs_presence_entry *out, const qs_presence_entry *e);
void qs_presence_entry_clear(qs_presence_entry *e);
void qs_presence_entries_free(qs_presence_entry *v, size_t n);

/*
 * A node's own entries as the cluster transports keep them beside the shared registry (to
 * write them again after an outage, to list them without a round trip): a map from
 * subscriber id to a malloc'd entry it owns. Not thread-safe: the caller holds the lock that
 * guards the map.
 */
/** Puts e (malloc'd; taken) under its subscriber, freeing the entry it replaces. */
void qs_presence_map_put(qs_strmap *m, qs_presence_entry *e);
/** Forgets subscriber; false when the map did not hold it. */
bool qs_presence_map_remove(qs_strmap *m, const char *subscriber);
/** Copies of the map's entries (*n of them), for qs_presence_entries_free; never NULL. */
qs_presence_entry *qs_presence_map_copy(const qs_strmap *m, size_t *n);
/** Frees the entries and the map. */
void qs_presence_map_free(qs_strmap *m);

typedef struct qs_presence qs_presence;

qs_presence *qs_presence_new(void);
void qs_presence_free(qs_presence *p);
/** Registers (or replaces) an active subscriber (copied). Thread-safe. */
void qs_presence_add(qs_presence *p, const qs_presence_entry *e);
/** Forgets a subscriber. Thread-safe. */
void qs_presence_remove(qs_presence *p, const char *subscriber);
/** A copy of every entry, in registration order. Thread-safe. */
qs_presence_entry *qs_presence_snapshot(qs_presence *p, size_t *n);
size_t qs_presence_count(qs_presence *p);

#endif
