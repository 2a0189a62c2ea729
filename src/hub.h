/* SPDX-License-Identifier: MIT
 * hub.h - the hub's shared state: what every worker reads and nobody changes after start.
 *
 * Built by server.c before the workers start, then immutable: the configuration, the key
 * sources (a JWK Set source changes its set behind its own lock, keys.h), the transport
 * (thread-safe behind its own interface) and the workers' contexts (read only for their
 * relaxed counters, by /metrics). Handlers reach it through their worker's context
 * (ctx->hub). One flag changes, atomically: `draining`, set once when the hub begins to
 * shut down.
 */
#ifndef QS_HUB_H
#define QS_HUB_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "keys.h"
#include "transport/transport.h"

struct qs_ctx;

typedef struct qs_hub {
    qs_config *cfg;
    qs_keys *publisher_keys;  /* NULL: publishing disabled */
    qs_keys *subscriber_keys; /* NULL: tokens of subscribers are not checked (anonymous);
                                 may be publisher_keys itself (one JWK Set for both) */
    qs_transport *transport;
    struct qs_ctx **contexts; /* one per worker */
    int n_workers;
    uint64_t max_conns;   /* over this many open connections, new ones are closed at once */
    atomic_bool draining; /* shutting down: not ready for new clients */
} qs_hub;

#endif
