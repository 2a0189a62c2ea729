/* SPDX-License-Identifier: MIT
 * presence_check.h - comparing presence entries, for the fuzz targets of the Redis presence
 * registry.
 */
#ifndef QS_FUZZ_PRESENCE_CHECK_H
#define QS_FUZZ_PRESENCE_CHECK_H

#include <string.h>

#include "check.h"
#include "presence.h"

static inline bool same_text(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0);
}

static inline bool presence_equal(const qs_presence_entry *a, const qs_presence_entry *b)
{
    if (!same_text(a->subscriber, b->subscriber) || !same_text(a->payload, b->payload) ||
        a->order != b->order || a->n_topics != b->n_topics)
        return false;
    for (size_t i = 0; i < a->n_topics; i++)
        if (strcmp(a->topics[i], b->topics[i]) != 0)
            return false;
    return true;
}

/* A decoded entry owns NUL-terminated copies of everything. */
static inline void presence_check_shape(const qs_presence_entry *e)
{
    CHECK(e->subscriber != NULL);
    CHECK(e->n_topics == 0 || e->topics != NULL);
    for (size_t i = 0; i < e->n_topics; i++)
        CHECK(e->topics[i] != NULL);
    CHECK(!e->payload || e->payload[0]);
    CHECK(e->order <= INT64_MAX);
}

#endif
