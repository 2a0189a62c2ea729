/* SPDX-License-Identifier: MIT
 * list.h - intrusive circular doubly linked list.
 *
 * A node embedded in a struct links it into one list without an allocation;
 * qs_list_entry() gets the struct back. An unlinked node points to itself, so
 * qs_list_unlink() is idempotent and qs_list_linked() is a cheap test.
 */
#ifndef QS_LIST_H
#define QS_LIST_H

#include "util.h"

typedef struct qs_list {
    struct qs_list *prev, *next;
} qs_list;

#define qs_list_entry(node, type, member) qs_container_of(node, type, member)

static inline void qs_list_init(qs_list *l)
{
    l->prev = l->next = l;
}

static inline bool qs_list_empty(const qs_list *l)
{
    return l->next == l;
}

static inline bool qs_list_linked(const qs_list *n)
{
    return n->next != n;
}

/** Inserts n at the tail of list l (n must be unlinked). */
static inline void qs_list_push_back(qs_list *l, qs_list *n)
{
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

static inline void qs_list_unlink(qs_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/** Moves n (linked or not) to the tail of l. */
static inline void qs_list_move_back(qs_list *l, qs_list *n)
{
    qs_list_unlink(n);
    qs_list_push_back(l, n);
}

static inline qs_list *qs_list_front(const qs_list *l)
{
    return l->next == l ? NULL : l->next;
}

#endif
