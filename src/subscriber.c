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

static char *compact(json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* The subscriber's registry entry (presence_entry_clear frees the parts it owns: the
 * payloads; the selectors are borrowed from the index). */
static qs_presence_entry presence_entry(const qs_subscriber *s, const char **topics,
                                        uint8_t *syntaxes)
{
    bool any_v1 = false;
    for (uint32_t i = 0; i < s->member.n_entries; i++) {
        size_t len;
        topics[i] = qs_index_selector(&s->member, i, &len);
        syntaxes[i] = (uint8_t)qs_index_selector_syntax(&s->member, i);
        any_v1 |= syntaxes[i] != QS_SYNTAX_TOPIC;
    }
    qs_presence_entry e = {.subscriber = (char *)s->id,
                           .topics = (char **)topics,
                           .n_topics = s->member.n_entries,
                           .syntaxes = any_v1 ? syntaxes : NULL,
                           .payload = compact(s->payload)};
    if (s->payloads) {
        e.payloads = qs_xcalloc(s->member.n_entries + 1, sizeof(char *));
        for (uint32_t i = 0; i < s->member.n_entries; i++)
            e.payloads[i] = compact(s->payloads[i]);
    }
    return e;
}

static void presence_entry_done(qs_presence_entry *e)
{
    if (e->payloads)
        for (size_t i = 0; i < e->n_topics; i++)
            free(e->payloads[i]);
    free(e->payloads);
    free(e->payload);
}

static void announce(qs_subscriber *s, bool active)
{
    const char **topics = qs_xcalloc(s->member.n_entries + 1, sizeof(*topics));
    uint8_t *syntaxes = qs_xcalloc(s->member.n_entries + 1, 1);
    qs_presence_entry e = presence_entry(s, topics, syntaxes);
    if (active) {
        qs_subscriptions_arrive(s->ctx, &e, s->member.v1);
    } else {
        qs_presence_entry *copy = qs_xmalloc(sizeof(*copy));
        qs_presence_entry_copy(copy, &e);
        qs_subscriptions_depart(s->ctx, copy);
    }
    presence_entry_done(&e);
    free(syntaxes);
    free(topics);
}

qs_subscriber *qs_subscriber_new(qs_ctx *ctx, qs_http_req *req, const qs_subscriber_params *p)
{
    qs_subscriber *s = qs_xcalloc(1, sizeof(*s));
    qs_uuid4_urn(s->id);
    if (qs_stream_init(&s->stream, ctx, req, &owner, s->id, p->deadline_ms) < 0) {
        free(s);
        return NULL;
    }
    s->ctx = ctx;
    s->member.id = s->id;
    s->member.stream = &s->stream;
    s->member.v1 = p->v1;
    qs_index_add(ctx->subscribers, &s->member, p->selectors, p->n, p->claims, p->n_claims);
    if (p->payload)
        s->payload = json_incref(p->payload);
    if (p->payloads) {
        s->payloads = qs_xcalloc(p->n + 1, sizeof(json_t *));
        for (size_t i = 0; i < p->n; i++)
            s->payloads[i] = p->payloads[i] ? json_incref(p->payloads[i]) : NULL;
    }
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

void qs_subscriber_replay(qs_subscriber *s, const char *last_event_id, const char *cursor_header,
                          qs_http_response *head)
{
    qs_history_start(s->ctx, &s->member, last_event_id, cursor_header, head, &s->history);
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
    if (s->payloads)
        for (uint32_t i = 0; i < s->member.n_entries; i++)
            json_decref(s->payloads[i]);
    free(s->payloads);
    qs_index_remove(s->ctx->subscribers, &s->member);
    qs_stream_destroy(&s->stream);
    if (s->payload)
        json_decref(s->payload);
    qs_metric_sub(&qs_metrics_global.subscribers_connected, 1);
    free(s);
}
