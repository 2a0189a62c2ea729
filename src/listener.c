/* SPDX-License-Identifier: MIT
 * listener.c - listening TCP sockets.
 */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "util.h"

int qs_listener_open(const char *host, int port, bool reuseport, int *out_fd, int *bound_port,
                     char **err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int family = AF_INET6;
    if (!host || !*host) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons((uint16_t)port);
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0) {
        family = AF_INET;
    } else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        family = AF_INET6;
    } else if (strcmp(host, "localhost") == 0) {
        uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&ss);
        family = AF_INET;
    } else {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons((uint16_t)port);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && family == AF_INET6 && (!host || !*host)) {
        /* No IPv6 on this machine: fall back to IPv4 any. */
        family = AF_INET;
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&ss);
        fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        *err = qs_xasprintf("cannot create a socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        *err = qs_xasprintf("cannot listen on %s:%d: %s", host && *host ? host : "*", port,
                            strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 4096) < 0) {
        *err = qs_xasprintf("listen failed: %s", strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t got_len = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &got_len);
    *bound_port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                 : ((struct sockaddr_in6 *)&got)->sin6_port);
    *out_fd = fd;
    return 0;
}
