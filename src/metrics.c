/* SPDX-License-Identifier: MIT
 * metrics.c - Prometheus text exposition of the hub's counters.
 */
#include "metrics.h"

#include <stddef.h>

qs_metrics qs_metrics_global;

static const char *const publish_error_names[QS_PUBERR_COUNT] = {
    [QS_PUBERR_UNAUTHORIZED] = "unauthorized", [QS_PUBERR_FORBIDDEN] = "forbidden",
    [QS_PUBERR_BAD_REQUEST] = "bad_request",   [QS_PUBERR_TOO_LARGE] = "too_large",
    [QS_PUBERR_TRANSPORT] = "transport",
};

static const char *const drop_names[QS_DROP_COUNT] = {
    [QS_DROP_QUEUE_FULL] = "queue_full",
    [QS_DROP_DISPATCH_TIMEOUT] = "dispatch_timeout",
};

static void metric(qs_buf *out, const char *name, const char *type, const char *help,
                   atomic_uint_fast64_t *value)
{
    qs_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
    qs_buf_append_u64(out, qs_metric_get(value));
    qs_buf_append_char(out, '\n');
}

static void summed(qs_buf *out, const char *name, const char *help,
                   qs_worker_counters *const *workers, size_t n, size_t offset)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += qs_metric_get((atomic_uint_fast64_t *)((char *)workers[i] + offset));
    qs_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n%s ", name, help, name, name);
    qs_buf_append_u64(out, sum);
    qs_buf_append_char(out, '\n');
}

void qs_metrics_render(qs_buf *out, bool transport_healthy, const char *transport_name,
                       qs_worker_counters *const *workers, size_t n_workers)
{
    qs_metrics *m = &qs_metrics_global;
    metric(out, "mercure_subscribers_connected", "gauge", "The current number of subscribers",
           &m->subscribers_connected);
    metric(out, "mercure_subscribers_total", "counter", "Total number of handled subscribers",
           &m->subscribers_total);
    metric(out, "mercure_updates_total", "counter", "Total number of handled updates",
           &m->updates_total);
    qs_buf_append_str(out, "# HELP mercure_publish_errors_total Publishes refused, by reason\n"
                           "# TYPE mercure_publish_errors_total counter\n");
    for (int i = 0; i < QS_PUBERR_COUNT; i++) {
        qs_buf_appendf(out, "mercure_publish_errors_total{reason=\"%s\"} ", publish_error_names[i]);
        qs_buf_append_u64(out, qs_metric_get(&m->publish_errors[i]));
        qs_buf_append_char(out, '\n');
    }
    qs_buf_append_str(out,
                      "# HELP mercure_subscribers_dropped_total Subscribers disconnected by the "
                      "hub, by reason\n# TYPE mercure_subscribers_dropped_total counter\n");
    for (int i = 0; i < QS_DROP_COUNT; i++) {
        qs_buf_appendf(out, "mercure_subscribers_dropped_total{reason=\"%s\"} ", drop_names[i]);
        qs_buf_append_u64(out, qs_metric_get(&m->subscribers_dropped[i]));
        qs_buf_append_char(out, '\n');
    }
    summed(out, "mercure_deliveries_total", "Events queued to subscribers", workers, n_workers,
           offsetof(qs_worker_counters, deliveries));
    summed(out, "mercure_sent_bytes_total", "Bytes written to subscribers", workers, n_workers,
           offsetof(qs_worker_counters, bytes_sent));
    metric(out, "mercure_connections_open", "gauge", "Open client connections",
           &m->connections_open);
    metric(out, "mercure_connections_total", "counter", "Accepted client connections",
           &m->connections_total);
    metric(out, "mercure_connections_rejected_total", "counter",
           "Connections refused over max_connections", &m->connections_rejected);
    metric(out, "mercure_http_requests_total", "counter", "HTTP requests handled",
           &m->requests_total);
    metric(out, "mercure_http_bad_requests_total", "counter",
           "Malformed or oversized HTTP requests", &m->bad_requests_total);
    qs_buf_appendf(out,
                   "# HELP mercure_transport_healthy 1 when the transport accepts publishes\n"
                   "# TYPE mercure_transport_healthy gauge\n"
                   "mercure_transport_healthy{transport=\"%s\"} %d\n",
                   transport_name, transport_healthy ? 1 : 0);
}
