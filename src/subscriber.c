/* SPDX-License-Identifier: MIT
 * subscriber.c - a subscriber's parts put together, and taken apart when its stream ends.
 */
#include "subscriber.h"

#include <stdlib.h>

#include "log.h"
#include "metrics.h"
#include "subscriptions.h"
#include "uuid.h"

static void on_closed(qs_stream *stream);
static void on_drained(qs_stream *stream);

static const qs_stream_owner owner = {.closed = on_closed, .drained = on_drained};

/* The subscriber's registry entry; its strings are borrowed from the subscriber. */
static qs_presence_entry presence_entry(const qs_subscriber *s, const char **topics)
{
    for (uint32_t i = 0; i < s->member.n_entries; i++) {
        size_t len;
        topics[i] = qs_index_selector(&s->member, i, &len);
    }
    return (qs_presence_entry){
        .subscriber = (char *)s->id, .topics = (char **)topics, .n_topics = s->member.n_entries};
}

static void announce(qs_subscriber *s, bool active)
{
    const char **topics = qs_xcalloc(s->member.n_entries + 1, sizeof(*topics));
    qs_presence_entry e = presence_entry(s, topics);
    e.payload = s->payload ? json_dumps(s->payload, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (active) {
        qs_subscriptions_arrive(s->ctx, &e, s->payload);
        free(e.payload);
    } else {
        qs_presence_entry *copy = qs_xmalloc(sizeof(*copy));
        qs_presence_entry_copy(copy, &e);
        free(e.payload);
        qs_subscriptions_depart(s->ctx, copy);
    }
    free(topics);
}

qs_subscriber *qs_subscriber_new(qs_ctx *ctx, qs_http_req *req, const qs_slice *selectors, size_t n,
                                 const qs_jwt_claims *claims, uint64_t deadline_ms)
{
    qs_subscriber *s = qs_xcalloc(1, sizeof(*s));
    qs_uuid4_urn(s->id);
    if (qs_stream_init(&s->stream, ctx, req, &owner, s->id, deadline_ms) < 0) {
        free(s);
        return NULL;
    }
    s->ctx = ctx;
    s->member.id = s->id;
    s->member.stream = &s->stream;
    bool subscribe = claims && claims->has_subscribe;
    qs_index_add(ctx->subscribers, &s->member, selectors, n, subscribe ? claims->subscribe : NULL,
                 subscribe ? claims->n_subscribe : 0);
    if (claims && claims->payload)
        s->payload = json_incref(claims->payload);
    qs_metric_add(&qs_metrics_global.subscribers_connected, 1);
    qs_metric_add(&qs_metrics_global.subscribers_total, 1);
    if (ctx->hub->cfg->subscriptions) {
        announce(s, true);
        s->presence_registered = true;
    }
    return s;
}

void qs_subscriber_start(qs_subscriber *s, qs_http_response *head)
{
    qs_stream_open(&s->stream, head);
}

void qs_subscriber_replay(qs_subscriber *s, const char *last_event_id, qs_http_response *head)
{
    qs_history_start(s->ctx, &s->member, last_event_id, head, &s->history);
}

static void on_drained(qs_stream *stream)
{
    qs_subscriber *s = qs_container_of(stream, qs_subscriber, stream);
    if (s->history)
        qs_history_next(s->history);
}

static void on_closed(qs_stream *stream)
{
    qs_subscriber *s = qs_container_of(stream, qs_subscriber, stream);
    if (s->history)
        qs_history_stop(s->history);
    if (s->presence_registered)
        announce(s, false);
    qs_index_remove(s->ctx->subscribers, &s->member);
    qs_stream_destroy(&s->stream);
    if (s->payload)
        json_decref(s->payload);
    qs_metric_sub(&qs_metrics_global.subscribers_connected, 1);
    free(s);
}
