/* SPDX-License-Identifier: MIT
 * history.c - pulling a subscriber's history from the transport, batch by batch.
 */
#include "history.h"

#include <stdlib.h>

#include "async.h"
#include "log.h"
#include "metrics.h"

#define PULL_MAX_EVENTS 1024
#define PULL_MAX_BYTES (1u << 20)
#define MATCH_BUDGET 4096 /* (selector, topic) pairs tried per slice of a batch */

struct qs_history {
    qs_async async;
    qs_ctx *ctx;
    qs_index_member *m; /* NULL once the subscriber is gone */
    qs_replay pull;     /* the pull in flight, or the last one */
    bool in_flight;     /* a pull, or the matching of its batch, is under way */
    bool first;         /* the first answer is awaited: the head is not sent yet */
    uint64_t until;     /* the subscriber's bus position when it registered */
    uint64_t cursor;    /* seq of the last stored update read */
    size_t pos;         /* updates of the pull's batch matched so far */
    char *id;           /* the requested Last-Event-ID */
    qs_http_response head;
};

static void history_free(qs_history *h)
{
    qs_replay_clear(&h->pull);
    if (h->first)
        qs_http_response_free(&h->head);
    free(h->id);
    free(h);
}

static void pull_done(qs_replay *r)
{
    qs_history *h = qs_container_of(r, qs_history, pull);
    qs_async_complete(&h->async);
}

/* The answer to the first pull: the head names the cursor. */
static void send_head(qs_history *h)
{
    qs_http_response_header(&h->head, "Last-Event-Id", h->pull.id_found ? h->id : "earliest");
    qs_stream_open(h->m->stream, &h->head);
    h->first = false;
}

static void match_slice(qs_history *h);
static void next_slice(void *arg);

static void pull_finish(qs_async *a)
{
    qs_history *h = qs_container_of(a, qs_history, async);
    qs_replay *r = &h->pull;
    h->in_flight = false;
    if (!h->m) {
        history_free(h); /* the subscriber left meanwhile */
        return;
    }
    qs_stream *s = h->m->stream;
    if (r->status != 0) {
        qs_error("history replay failed: %s", r->reason[0] ? r->reason : "unknown error");
        qs_replay_clear(r);
        if (h->first) {
            /* Nothing was sent yet: answer as the reference does when it cannot add a
             * subscriber. */
            h->first = false;
            h->head.status = 503;
            h->head.content_type = "text/plain; charset=utf-8";
            qs_buf_append_str(&h->head.body, "Service Unavailable\n");
            qs_stream_refuse(s, &h->head);
        } else {
            qs_stream_close(s);
        }
        return;
    }
    if (h->first) {
        send_head(h);
        if (r->id_found && r->next_seq > h->until) {
            /* The requested id is ahead of this worker's bus when the subscriber registered
             * (published on another node an instant before): updates up to it that were
             * queued live since, or will arrive, are ones the client already has. (Compared
             * with the registration position, not with what is queued now: the worker may
             * have queued the id's own update meanwhile.) */
            qs_stream_discard_until(s, r->next_seq);
            if (r->next_seq > h->m->last_seq)
                h->m->last_seq = r->next_seq;
        }
    }
    h->pos = 0;
    match_slice(h);
}

/* Matches the next slice of the batch against the subscriber's selectors and claims, and
 * queues what it may receive. A slice is bounded by the (selector, topic) pairs it may try:
 * the next one runs a loop turn later, so a long history matched against many selectors
 * never holds the worker. */
static void match_slice(qs_history *h)
{
    qs_replay *r = &h->pull;
    qs_stream *s = h->m->stream;
    qs_frame **frames = qs_xmalloc((r->n_updates - h->pos + 1) * sizeof(*frames));
    uint32_t n = 0;
    size_t budget = MATCH_BUDGET, start = h->pos;
    while (h->pos < r->n_updates) {
        const qs_update *u = r->updates[h->pos];
        size_t cost = (size_t)h->m->n_entries * u->n_topics + 1;
        if (cost > budget && h->pos > start)
            break;
        budget = budget > cost ? budget - cost : 0;
        h->pos++;
        if (qs_index_wants(h->ctx->subscribers, h->m, u)) {
            frames[n++] = qs_frame_ref(u->frame);
            qs_counter_bump(&h->ctx->counters.deliveries, 1);
        }
    }
    qs_stream_push_history(s, frames, n);
    free(frames);
    if (h->pos < r->n_updates) {
        h->in_flight = true; /* no pull before this batch is matched */
        qs_ctx_defer(h->ctx, next_slice, h);
        qs_stream_flush(s);
        return;
    }
    h->in_flight = false;
    h->cursor = r->next_seq;
    if (r->finished)
        qs_stream_set_replaying(s, false);
    qs_replay_clear(r);
    qs_stream_flush(s);
}

static void next_slice(void *arg)
{
    qs_history *h = arg;
    if (!h->m) {
        history_free(h); /* the subscriber left meanwhile */
        return;
    }
    match_slice(h);
}

static void pull(qs_history *h)
{
    qs_transport *t = h->ctx->hub->transport;
    qs_replay *r = &h->pull;
    memset(r, 0, sizeof(*r));
    r->after_id = h->first ? h->id : NULL;
    r->continuation = !h->first;
    r->after_seq = h->cursor;
    r->until_seq = h->until;
    r->max_events = PULL_MAX_EVENTS;
    r->max_bytes = PULL_MAX_BYTES;
    r->done = pull_done;
    h->in_flight = true;
    qs_async_begin(&h->async, h->ctx, pull_finish);
    t->ops->replay(t, r);
    qs_async_started(&h->async);
}

void qs_history_start(qs_ctx *ctx, qs_index_member *m, const char *last_event_id,
                      qs_http_response *head, qs_history **out)
{
    qs_history *h = qs_xcalloc(1, sizeof(*h));
    h->ctx = ctx;
    h->m = m;
    h->first = true;
    h->id = qs_xstrdup(last_event_id);
    h->until = m->last_seq;
    h->head = *head;
    qs_stream_set_replaying(m->stream, true);
    *out = h;
    pull(h);
}

void qs_history_next(qs_history *h)
{
    if (h->in_flight || h->first)
        return;
    if (h->m->stream->ending) {
        /* The stream is ending: fetch no more history, write what is queued, end. */
        qs_stream_set_replaying(h->m->stream, false);
        qs_stream_flush(h->m->stream);
        return;
    }
    pull(h);
}

void qs_history_stop(qs_history *h)
{
    if (h->in_flight) {
        h->m = NULL; /* pull_finish frees it */
        return;
    }
    history_free(h);
}
