/* SPDX-License-Identifier: MIT
 * strmap.c - hash map from byte-string keys to pointers (see strmap.h).
 */
#include "strmap.h"

#include <stdlib.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = ROTL(v[2], 32);
}

uint64_t qs_siphash13(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v[4] = {key[0] ^ 0x736f6d6570736575ULL, key[1] ^ 0x646f72616e646f6dULL,
                     key[0] ^ 0x6c7967656e657261ULL, key[1] ^ 0x7465646279746573ULL};
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8); /* little-endian hosts only; the value is only used for hashing */
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[full + i] << (8 * i);
    v[3] ^= b;
    sip_round(v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sip_round(v);
    sip_round(v);
    sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

void qs_strmap_init(qs_strmap *m)
{
    memset(m, 0, sizeof(*m));
    qs_random_bytes(m->seed, sizeof(m->seed));
}

void qs_strmap_free(qs_strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static size_t find_slot(const qs_strmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const qs_strmap_entry *e = &m->slots[i];
        if (!e->key)
            return i;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
            return i;
    }
}

static void grow(qs_strmap *m)
{
    size_t old_cap = m->cap;
    qs_strmap_entry *old = m->slots;
    m->cap = old_cap ? old_cap * 2 : 8;
    m->slots = qs_xcalloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key)
            continue;
        size_t j = find_slot(m, old[i].key, old[i].key_len, old[i].hash);
        m->slots[j] = old[i];
    }
    free(old);
}

void *qs_strmap_get(const qs_strmap *m, const char *key, size_t len)
{
    if (!m->count)
        return NULL;
    uint64_t h = qs_siphash13(m->seed, key, len);
    size_t i = find_slot(m, key, len, h);
    return m->slots[i].key ? m->slots[i].value : NULL;
}

void **qs_strmap_upsert(qs_strmap *m, const char *key, size_t len)
{
    /* Keep the load factor under 3/4 so probe sequences stay short. */
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    uint64_t h = qs_siphash13(m->seed, key, len);
    size_t i = find_slot(m, key, len, h);
    qs_strmap_entry *e = &m->slots[i];
    if (!e->key) {
        e->key = qs_xstrndup(key, len);
        e->key_len = len;
        e->hash = h;
        e->value = NULL;
        m->count++;
    }
    return &e->value;
}

void qs_strmap_put(qs_strmap *m, const char *key, size_t len, void *value)
{
    *qs_strmap_upsert(m, key, len) = value;
}

void *qs_strmap_remove(qs_strmap *m, const char *key, size_t len)
{
    if (!m->count)
        return NULL;
    uint64_t h = qs_siphash13(m->seed, key, len);
    size_t i = find_slot(m, key, len, h);
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward-shift deletion: move later members of the probe run into the hole. */
    size_t mask = m->cap - 1;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* The entry at j may move to the hole if its home is not in (hole, j]. */
        bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = NULL;
            hole = j;
        }
    }
    return value;
}

bool qs_strmap_next(const qs_strmap *m, size_t *pos, const qs_strmap_entry **e)
{
    while (*pos < m->cap) {
        const qs_strmap_entry *s = &m->slots[(*pos)++];
        if (s->key) {
            *e = s;
            return true;
        }
    }
    return false;
}
