/* SPDX-License-Identifier: MIT
 * server.h - the hub process put together: keys, transport, workers; the bus; shutdown.
 *
 *   qs_server
 *     ├── hub (hub.h): configuration, keys, transport — shared, immutable once started
 *     └── workers (worker.h), each with its loop, connections and subscribers
 *
 * The transport delivers each committed update once to the server's bus callback, which
 * posts a reference to every worker.
 */
#ifndef QS_SERVER_H
#define QS_SERVER_H

#include <stdatomic.h>

#include "hub.h"

typedef struct qs_server {
    qs_hub hub;
    struct qs_worker **workers;
    struct qs_tls *tls; /* NULL: no TLS listener */
    int *ports;         /* the bound port of each listener (port 0 = ephemeral) */
    bool started;
    atomic_bool stopping;
} qs_server;

/** Builds the hub from a validated configuration: keys, transport, workers, listeners.
 *  Returns 0, or -1 with a malloc'd one-line message. */
int qs_server_init(qs_server *s, qs_config *cfg, char **err);
/** Starts the transport and the worker threads. */
int qs_server_start(qs_server *s, char **err);
/** Loads the TLS certificates and keys again (SIGHUP): new connections use them, open ones
 *  keep theirs. Returns -1 with a malloc'd message when they cannot be loaded (the old ones
 *  stay). Nothing to do without TLS. */
int qs_server_reload_tls(qs_server *s, char **err);
/** Fetches the JWK Sets again now (SIGHUP), in the background; nothing without them. */
void qs_server_reload_keys(qs_server *s);
/** Stops accepting, ends every stream cleanly, waits for the workers, stops the
 *  transport. */
void qs_server_stop(qs_server *s);
void qs_server_destroy(qs_server *s);

#endif
