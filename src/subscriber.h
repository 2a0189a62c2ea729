/* SPDX-License-Identifier: MIT
 * subscriber.h - a subscriber: its place in the worker's index, its event stream, its
 * history replay and its presence.
 *
 * Created by the subscribe handler on an HTTP request that becomes the stream; freed when
 * the stream is gone (the `closed` callback of stream.h, from the loop), whoever ended it.
 * With `subscriptions`, its arrival is announced when it is created, and its departure is
 * posted as a task of the worker, never published inside the close.
 */
#ifndef QS_SUBSCRIBER_H
#define QS_SUBSCRIBER_H

#include <jansson.h>

#include "history.h"
#include "index.h"
#include "jwt.h"
#include "stream.h"

typedef struct qs_subscriber {
    qs_index_member member;
    qs_stream stream;
    qs_ctx *ctx;
    qs_history *history; /* while a replay may still pull */
    json_t *payload;     /* the token's mercure.payload */
    bool presence_registered;
    char id[46]; /* "urn:uuid:…" */
} qs_subscriber;

/**
 * Turns req into a subscriber to the given topic selectors, with the token's claims (NULL:
 * anonymous) and a deadline (monotonic ms, 0 = none) that ends its stream. It is in the
 * worker's index from now on; nothing is written before qs_subscriber_start or
 * qs_subscriber_replay. NULL when the client is already gone.
 */
qs_subscriber *qs_subscriber_new(qs_ctx *ctx, qs_http_req *req, const qs_slice *selectors, size_t n,
                                 const qs_jwt_claims *claims, uint64_t deadline_ms);
/** Sends the response head (taken) and opens the stream. */
void qs_subscriber_start(qs_subscriber *s, qs_http_response *head);
/** Replays the history after last_event_id first; the head (taken) is sent with the first
 *  answer of the transport. */
void qs_subscriber_replay(qs_subscriber *s, const char *last_event_id, qs_http_response *head);

#endif
