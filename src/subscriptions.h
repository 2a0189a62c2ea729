/* SPDX-License-Identifier: MIT
 * subscriptions.h - presence: subscription events and the active subscriptions API
 * (`subscriptions` directive), documents byte for byte as the reference writes them, in
 * the formats of the protocol generations the hub serves.
 *
 * A subscriber's arrival publishes one private update per selector and per format, then
 * registers it in the transport's registry (shared by every node in cluster mode); its
 * departure does the reverse, from a task of its worker. Events go through the transport
 * like any update, so they are stored and reach every node.
 *  - 0.x: /.well-known/mercure/subscriptions/{topic}/{subscriber}, JSON-LD, no event type;
 *  - 1.0: /.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}, plain JSON,
 *    event type "mercure"; a 0.x selector is written as the reference's compatibility mode
 *    writes it: /subscriptions/{topic}/{subscriber} and a "topic" member.
 * Serving both generations, every arrival and departure is published in both formats, so
 * that watchers of either generation see every subscriber; index.h delivers each format to
 * its own generation's subscribers only.
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

/** Appends the 1.0 subscription id: "/.well-known/mercure/subscriptions/" then
 *  "<match_type>/<match>" (or "<topic>" for a 0.x selector), then "/<subscriber>", each
 *  segment escaped as QueryEscape with "%20" for spaces. */
void qs_subscription1_id(qs_buf *out, uint8_t syntax, const char *pattern, size_t len,
                         const char *subscriber);
/** Appends a 1.0 subscription document (MarshalIndent at nesting `depth`); payload: NULL to
 *  omit. */
void qs_subscription1_json(qs_buf *out, uint8_t syntax, const char *pattern, size_t len,
                           const char *subscriber, bool active, json_t *payload, int depth);

/** A subscriber arrived (worker thread): its events and the registry, in the order of its
 *  generation (0.x: events first, as the reference never shows a subscriber its own; 1.0:
 *  registry first). */
void qs_subscriptions_arrive(qs_ctx *ctx, const qs_presence_entry *e, bool v1);
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
