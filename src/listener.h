/* SPDX-License-Identifier: MIT
 * listener.h - listening TCP sockets.
 *
 * Every worker listens on its own socket bound to the same address with SO_REUSEPORT, so
 * the kernel spreads new connections over the workers' accept queues. Names other than
 * literal addresses and "localhost" are not resolved (that would block): such a host
 * listens on every interface, as a name-based virtual host would.
 */
#ifndef QS_LISTENER_H
#define QS_LISTENER_H

#include <stdbool.h>

/** Opens a non-blocking listening socket on host:port (NULL or "" = every interface; port
 *  0 = an ephemeral port, returned in *bound_port). Returns 0, or -1 with a malloc'd
 *  one-line message. */
int qs_listener_open(const char *host, int port, bool reuseport, int *fd, int *bound_port,
                     char **err);

#endif
