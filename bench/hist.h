/* SPDX-License-Identifier: MIT
 * hist.h - a log-linear latency histogram (microseconds, ~1.6 % precision), mergeable,
 * fixed size, for the load generator.
 */
#ifndef QS_BENCH_HIST_H
#define QS_BENCH_HIST_H

#include <stdint.h>
#include <string.h>

#define HIST_SUB 64    /* sub-buckets per power of two */
#define HIST_POWERS 40 /* up to 2^40 us: far beyond any run */
#define HIST_SIZE (HIST_SUB * HIST_POWERS)

typedef struct hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t buckets[HIST_SIZE];
} hist;

static inline void hist_add(hist *h, uint64_t us)
{
    unsigned idx;
    if (us < HIST_SUB) {
        idx = (unsigned)us;
    } else {
        unsigned p = 63 - (unsigned)__builtin_clzll(us); /* us in [2^p, 2^(p+1)) */
        unsigned shift = p - 5;                          /* keep 6 significant bits */
        idx = (p - 5) * 32 + (unsigned)(us >> shift);    /* 32..63 within each power */
        if (idx >= HIST_SIZE)
            idx = HIST_SIZE - 1;
    }
    h->buckets[idx]++;
    h->count++;
    h->sum += us;
    if (us > h->max)
        h->max = us;
}

/* The lower bound of a bucket, inverse of hist_add's index. */
static inline uint64_t hist_bucket_value(unsigned idx)
{
    if (idx < HIST_SUB)
        return idx;
    unsigned p = idx / 32 + 4; /* idx = (p-5)*32 + m, m in [32,64) */
    unsigned m = idx % 32 + 32;
    return (uint64_t)m << (p - 5);
}

static inline uint64_t hist_percentile(const hist *h, double q)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_SIZE; i++) {
        seen += h->buckets[i];
        if (seen > rank)
            return hist_bucket_value(i);
    }
    return h->max;
}

static inline void hist_merge(hist *into, const hist *from)
{
    for (unsigned i = 0; i < HIST_SIZE; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
}

#endif
