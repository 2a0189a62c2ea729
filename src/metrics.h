/* SPDX-License-Identifier: MIT
 * metrics.h - process-wide counters and gauges, rendered in the Prometheus text format.
 *
 * Each counter is owned by the module that increments it (relaxed atomics: any thread).
 * No label has unbounded cardinality: topics and subscribers never become labels.
 */
#ifndef QS_METRICS_H
#define QS_METRICS_H

#include <stdatomic.h>

#include "buf.h"

/** Reasons a publish is refused, one counter each (label "reason"). */
enum qs_publish_error {
    QS_PUBERR_UNAUTHORIZED, /* 401 */
    QS_PUBERR_FORBIDDEN,    /* 403 reserved topic */
    QS_PUBERR_BAD_REQUEST,  /* 400 */
    QS_PUBERR_TOO_LARGE,    /* 413 */
    QS_PUBERR_TRANSPORT,    /* 500/503 */
    QS_PUBERR_COUNT,
};

/** Why a subscriber was disconnected by the hub (label "reason"). */
enum qs_drop_reason {
    QS_DROP_QUEUE_FULL,       /* did not read fast enough: queue bound reached */
    QS_DROP_DISPATCH_TIMEOUT, /* a write did not complete within dispatch_timeout */
    QS_DROP_COUNT,
};

typedef struct qs_metrics {
    atomic_uint_fast64_t subscribers_connected; /* gauge */
    atomic_uint_fast64_t subscribers_total;
    atomic_uint_fast64_t updates_total;
    atomic_uint_fast64_t publish_errors[QS_PUBERR_COUNT];
    atomic_uint_fast64_t subscribers_dropped[QS_DROP_COUNT];
    atomic_uint_fast64_t connections_open; /* gauge */
    atomic_uint_fast64_t connections_total;
    atomic_uint_fast64_t connections_rejected; /* over max_connections */
    atomic_uint_fast64_t requests_total;
    atomic_uint_fast64_t bad_requests_total; /* malformed HTTP (4xx from the parser) */
} qs_metrics;

extern qs_metrics qs_metrics_global;

static inline void qs_metric_add(atomic_uint_fast64_t *m, uint64_t n)
{
    atomic_fetch_add_explicit(m, n, memory_order_relaxed);
}
static inline void qs_metric_sub(atomic_uint_fast64_t *m, uint64_t n)
{
    atomic_fetch_sub_explicit(m, n, memory_order_relaxed);
}
static inline uint64_t qs_metric_get(atomic_uint_fast64_t *m)
{
    return atomic_load_explicit(m, memory_order_relaxed);
}

/** Counters bumped for every delivery: one set per worker, written only by that worker
 *  (a plain add, no locked instruction, no cache line shared between threads) and summed
 *  when /metrics is read. */
typedef struct qs_worker_counters {
    atomic_uint_fast64_t deliveries; /* events queued to subscribers */
    atomic_uint_fast64_t bytes_sent; /* bytes written to subscribers */
} qs_worker_counters;

static inline void qs_counter_bump(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/** Appends the exposition text. transport_healthy feeds mercure_transport_healthy;
 *  the per-worker counters are summed. */
void qs_metrics_render(qs_buf *out, bool transport_healthy, const char *transport_name,
                       qs_worker_counters *const *workers, size_t n_workers);

#endif
