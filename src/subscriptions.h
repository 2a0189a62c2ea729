/* SPDX-License-Identifier: MIT
 * subscriptions.h - presence: subscription events and the active subscriptions API
 * (protocol 0.x, `subscriptions` directive), documents byte for byte as the reference.
 */
#ifndef QS_SUBSCRIPTIONS_H
#define QS_SUBSCRIPTIONS_H

#include <jansson.h>

#include "buf.h"

/** Appends "/.well-known/mercure/subscriptions/<QueryEscape(topic)>/<QueryEscape(id)>". */
void qs_subscription_id(qs_buf *out, const char *topic, size_t topic_len, const char *subscriber);

/**
 * Appends a subscription document as Go's json.MarshalIndent writes it, at nesting `depth`.
 * context: include "@context"; last_event_id: NULL to omit; payload: NULL to omit.
 */
void qs_subscription_json(qs_buf *out, const char *topic, size_t topic_len, const char *subscriber,
                          bool active, const char *last_event_id, json_t *payload, bool context,
                          int depth);

#endif
