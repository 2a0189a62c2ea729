/* SPDX-License-Identifier: MIT
 * subscriptions.h - presence: subscription events and the active subscriptions API
 * (protocol 0.x, `subscriptions` directive), documents byte for byte as the reference.
 *
 * A subscriber's arrival publishes one private update per topic selector on
 * /.well-known/mercure/subscriptions/{topic}/{subscriber}, then registers it in the
 * transport's registry (shared by every node in cluster mode); its departure does the
 * reverse, from a task of its worker. Events go through the transport like any update, so
 * they are stored and reach every node.
 */
#ifndef QS_SUBSCRIPTIONS_H
#define QS_SUBSCRIPTIONS_H

#include <jansson.h>

#include "buf.h"
#include "ctx.h"
#include "http.h"
#include "presence.h"

/** Appends "/.well-known/mercure/subscriptions/<QueryEscape(topic)>/<QueryEscape(id)>". */
void qs_subscription_id(qs_buf *out, const char *topic, size_t topic_len, const char *subscriber);

/**
 * Appends a subscription document as Go's json.MarshalIndent writes it, at nesting `depth`.
 * context: include "@context"; last_event_id: NULL to omit; payload: NULL to omit.
 */
void qs_subscription_json(qs_buf *out, const char *topic, size_t topic_len, const char *subscriber,
                          bool active, const char *last_event_id, json_t *payload, bool context,
                          int depth);

/** A subscriber arrived (worker thread): its events, then the registry. payload: the
 *  token's mercure.payload (NULL: none); e->payload is the same as compact JSON. */
void qs_subscriptions_arrive(qs_ctx *ctx, const qs_presence_entry *e, json_t *payload);
/** A subscriber left (worker thread): e (heap-allocated, taken) is removed from the
 *  registry and its events are published from a task of the worker. */
void qs_subscriptions_depart(qs_ctx *ctx, qs_presence_entry *e);
/** Transport host callback (any thread): publishes the departures of the subscribers of a
 *  node that died, whose entries the transport took from the cluster's registry. ctx is the
 *  hub (qs_hub). */
void qs_subscriptions_lost(void *ctx, const qs_presence_entry *entries, size_t n);
/** GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]. */
void qs_subscriptions_handle(qs_http_req *req);

#endif
