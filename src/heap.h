/* SPDX-License-Identifier: MIT
 * heap.h - binary min-heap of intrusive nodes keyed by a 64-bit deadline.
 *
 * Each node remembers its index in the heap, so removal and re-keying are O(log n)
 * without a search. Used for per-connection deadlines: one array slot (8 bytes) per
 * connection instead of one libuv timer (152 bytes) per connection.
 */
#ifndef QS_HEAP_H
#define QS_HEAP_H

#include "util.h"

typedef struct qs_heap_node {
    uint64_t key;
    uint32_t idx; /* position + 1; 0 = not in a heap */
} qs_heap_node;

typedef struct qs_heap {
    qs_heap_node **nodes;
    uint32_t n;
    uint32_t cap;
} qs_heap;

void qs_heap_init(qs_heap *h);
void qs_heap_free(qs_heap *h);
void qs_heap_push(qs_heap *h, qs_heap_node *node, uint64_t key);
/** Removes node if it is in the heap. */
void qs_heap_remove(qs_heap *h, qs_heap_node *node);
static inline qs_heap_node *qs_heap_top(const qs_heap *h)
{
    return h->n ? h->nodes[0] : NULL;
}
static inline bool qs_heap_contains(const qs_heap_node *node)
{
    return node->idx != 0;
}

#endif
