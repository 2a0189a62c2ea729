/* SPDX-License-Identifier: MIT
 * strmap.h - hash map from byte-string keys to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion. Keys are
 * copied into the map. The hash is SipHash-1-3 keyed with a random per-map
 * seed, so peers that choose keys (topics, selectors) cannot force collisions.
 * Not thread-safe: each map belongs to one thread.
 */
#ifndef QS_STRMAP_H
#define QS_STRMAP_H

#include "util.h"

typedef struct qs_strmap_entry {
    char *key; /* NULL = empty slot; owned, NUL-terminated copy */
    size_t key_len;
    uint64_t hash;
    void *value;
} qs_strmap_entry;

typedef struct qs_strmap {
    qs_strmap_entry *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
    uint64_t seed[2];
} qs_strmap;

void qs_strmap_init(qs_strmap *m);
/** Frees the map's storage and keys (not the values). */
void qs_strmap_free(qs_strmap *m);
/** Returns the value for key, or NULL. */
void *qs_strmap_get(const qs_strmap *m, const char *key, size_t len);
/** Returns a pointer to the value slot for key, inserting a NULL value if absent.
 *  The pointer is valid until the next insertion or removal. */
void **qs_strmap_upsert(qs_strmap *m, const char *key, size_t len);
/** Sets key to value (inserting or replacing). */
void qs_strmap_put(qs_strmap *m, const char *key, size_t len, void *value);
/** Removes key; returns its value or NULL. */
void *qs_strmap_remove(qs_strmap *m, const char *key, size_t len);
static inline size_t qs_strmap_count(const qs_strmap *m)
{
    return m->count;
}

/** Iteration: for (size_t i = 0; qs_strmap_next(m, &i, &e);) { ... } — no mutation while iterating.
 */
bool qs_strmap_next(const qs_strmap *m, size_t *pos, const qs_strmap_entry **e);

/** SipHash-1-3 of data with a 128-bit key. */
uint64_t qs_siphash13(const uint64_t key[2], const void *data, size_t len);

#endif
