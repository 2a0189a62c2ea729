/* SPDX-License-Identifier: MIT
 * heap.c - binary min-heap of intrusive nodes.
 */
#include "heap.h"

#include <stdlib.h>

void qs_heap_init(qs_heap *h)
{
    memset(h, 0, sizeof(*h));
}

void qs_heap_free(qs_heap *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        h->nodes[i]->idx = 0;
    free(h->nodes);
    memset(h, 0, sizeof(*h));
}

static void place(qs_heap *h, uint32_t i, qs_heap_node *node)
{
    h->nodes[i] = node;
    node->idx = i + 1;
}

static void sift_up(qs_heap *h, uint32_t i)
{
    qs_heap_node *node = h->nodes[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->nodes[parent]->key <= node->key)
            break;
        place(h, i, h->nodes[parent]);
        i = parent;
    }
    place(h, i, node);
}

static void sift_down(qs_heap *h, uint32_t i)
{
    qs_heap_node *node = h->nodes[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->nodes[child + 1]->key < h->nodes[child]->key)
            child++;
        if (node->key <= h->nodes[child]->key)
            break;
        place(h, i, h->nodes[child]);
        i = child;
    }
    place(h, i, node);
}

void qs_heap_push(qs_heap *h, qs_heap_node *node, uint64_t key)
{
    if (node->idx)
        qs_heap_remove(h, node);
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->nodes = qs_xrealloc(h->nodes, h->cap * sizeof(*h->nodes));
    }
    node->key = key;
    place(h, h->n++, node);
    sift_up(h, h->n - 1);
}

void qs_heap_remove(qs_heap *h, qs_heap_node *node)
{
    if (!node->idx)
        return;
    uint32_t i = node->idx - 1;
    node->idx = 0;
    h->n--;
    if (i == h->n)
        return;
    qs_heap_node *last = h->nodes[h->n];
    place(h, i, last);
    if (i > 0 && h->nodes[(i - 1) / 2]->key > last->key)
        sift_up(h, i);
    else
        sift_down(h, i);
}
