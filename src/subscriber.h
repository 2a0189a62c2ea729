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
    json_t *payload;     /* the token-wide payload (0.x's mercure.payload) */
    json_t **payloads;   /* per selector (from 1.0 grants), NULL: payload for all */
    bool presence_registered;
    char id[46]; /* "urn:uuid:…" */
} qs_subscriber;

/** What a subscriber is made of, read from its request and its token. */
typedef struct qs_subscriber_params {
    const qs_selector_spec *selectors;
    size_t n;
    const qs_selector_spec *claims; /* what its token lets it receive privately */
    size_t n_claims;
    json_t *payload;         /* token-wide (NULL: none); a reference is taken */
    json_t *const *payloads; /* per selector (NULL: payload for all); references are taken */
    bool v1;                 /* it speaks protocol 1.0 (index.h) */
    uint64_t deadline_ms;    /* monotonic ms that end its stream (0: none) */
} qs_subscriber_params;

/**
 * Turns req into a subscriber. It is in the worker's index from now on; nothing is written
 * before qs_subscriber_start or qs_subscriber_replay. NULL when the client is already gone.
 */
qs_subscriber *qs_subscriber_new(qs_ctx *ctx, qs_http_req *req, const qs_subscriber_params *p);
/** Sends the response head (taken) and opens the stream. */
void qs_subscriber_start(qs_subscriber *s, qs_http_response *head);
/** Replays the history after last_event_id first; the head (taken) is sent with the first
 *  answer of the transport, naming the cursor in the header `cursor_header`. */
void qs_subscriber_replay(qs_subscriber *s, const char *last_event_id, const char *cursor_header,
                          qs_http_response *head);

#endif
