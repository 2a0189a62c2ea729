/* SPDX-License-Identifier: MIT
 * kafka_index.c - the id -> offset index of the Kafka transport (kafka.h): where each
 * update id is in the topic, so that Last-Event-ID reads from the right offset instead of
 * scanning the topic.
 *
 * Each slot holds a 64-bit SipHash of an id and one offset; an id published several times
 * (a custom id used again) has one slot per occurrence. A slot's hash is never 0 (0 marks an
 * empty slot). The table keeps at most half its slots full. Deletion happens only in bulk
 * (prune), by rebuilding, so probing never meets a hole.
 */
#include "transport/kafka.h"

#include <stdlib.h>

typedef struct qs_kafka_index_slot {
    uint64_t hash; /* 0 = empty */
    int64_t offset;
} qs_kafka_index_slot;

static uint64_t id_hash(const qs_kafka_index *x, const char *id, size_t len)
{
    uint64_t h = qs_siphash13(x->seed, id, len);
    return h ? h : 1;
}

void qs_kafka_index_init(qs_kafka_index *x)
{
    memset(x, 0, sizeof(*x));
    qs_random_bytes(x->seed, sizeof(x->seed));
}

void qs_kafka_index_free(qs_kafka_index *x)
{
    free(x->slots);
    x->slots = NULL;
    x->cap = x->count = 0;
}

static void put(qs_kafka_index_slot *slots, size_t cap, uint64_t hash, int64_t offset)
{
    size_t i = (size_t)hash & (cap - 1);
    while (slots[i].hash)
        i = (i + 1) & (cap - 1);
    slots[i].hash = hash;
    slots[i].offset = offset;
}

/* Rebuilds the table with `cap` slots, keeping the offsets at or above the floor. */
static void rebuild(qs_kafka_index *x, size_t cap)
{
    qs_kafka_index_slot *slots = qs_xcalloc(cap, sizeof(*slots));
    size_t count = 0;
    for (size_t i = 0; i < x->cap; i++)
        if (x->slots[i].hash && x->slots[i].offset >= x->floor) {
            put(slots, cap, x->slots[i].hash, x->slots[i].offset);
            count++;
        }
    free(x->slots);
    x->slots = slots;
    x->cap = cap;
    x->count = count;
}

void qs_kafka_index_add(qs_kafka_index *x, const char *id, size_t len, int64_t offset)
{
    if (offset < x->floor)
        return;
    if ((x->count + 1) * 2 > x->cap)
        rebuild(x, x->cap ? x->cap * 2 : 1024);
    put(x->slots, x->cap, id_hash(x, id, len), offset);
    x->count++;
}

static int by_offset(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

size_t qs_kafka_index_find(const qs_kafka_index *x, const char *id, size_t len, int64_t *out,
                           size_t max)
{
    if (!x->cap || !max)
        return 0;
    uint64_t h = id_hash(x, id, len);
    size_t n = 0;
    /* Every occurrence is in the run of full slots starting at the hash's home slot; keep
     * the earliest `max` of them. */
    for (size_t i = (size_t)h & (x->cap - 1); x->slots[i].hash; i = (i + 1) & (x->cap - 1)) {
        if (x->slots[i].hash != h || x->slots[i].offset < x->floor)
            continue;
        if (n < max) {
            out[n++] = x->slots[i].offset;
            qsort(out, n, sizeof(*out), by_offset);
        } else if (x->slots[i].offset < out[n - 1]) {
            out[n - 1] = x->slots[i].offset;
            qsort(out, n, sizeof(*out), by_offset);
        }
    }
    return n;
}

void qs_kafka_index_prune(qs_kafka_index *x, int64_t floor)
{
    if (floor <= x->floor)
        return;
    x->floor = floor;
    if (!x->cap)
        return;
    size_t live = 0;
    for (size_t i = 0; i < x->cap; i++)
        if (x->slots[i].hash && x->slots[i].offset >= floor)
            live++;
    size_t cap = 1024;
    while (cap < live * 2 + 2)
        cap *= 2;
    rebuild(x, QS_MIN(cap, x->cap));
}
