/* SPDX-License-Identifier: MIT
 * fuzz_http2_conn.c - arbitrary bytes on a real HTTP/2 connection to a real hub.
 *
 * A whole hub runs in this process (qs_server, one worker, the local transport, h2c on a
 * loopback port), started once. Each input is sent on a new connection after the client
 * preface and an empty SETTINGS frame, followed by a PING whose acknowledgement (or the
 * connection's end) says the hub has read and handled everything before it; the
 * connection is then reset. So every input goes through sock.c's protocol choice, http2.c
 * (nghttp2's callbacks, streams, requests, event streams, flow control, the flood
 * defences) and the handlers behind them, and a crash or sanitizer report is found in the
 * worker's thread. When the PING gets no quick answer (the input may have begun a frame
 * that swallowed it), the client ends its side: the hub must then end the connection within
 * 5 s. Every 1000 inputs, a health check on a new connection must be answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const char hub_config[] = "{\n"
                                 "    protocols h1 h2c\n"
                                 "}\n"
                                 "127.0.0.1:0 {\n"
                                 "    mercure {\n"
                                 "        publisher_jwt fuzz-publisher-key-0123456789abcdef\n"
                                 "        subscriber_jwt fuzz-subscriber-key-0123456789abcdef\n"
                                 "        anonymous\n"
                                 "        subscriptions\n"
                                 "        cors_origins *\n"
                                 "        transport local\n"
                                 "        workers 1\n"
                                 "        max_header_size 16KiB\n"
                                 "        max_request_body_size 64KiB\n"
                                 "        request_timeout 2s\n"
                                 "    }\n"
                                 "}\n";

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                              "\x00\x00\x00\x04\x00\x00\x00\x00\x00"; /* SETTINGS, empty */

static qs_server server;
static qs_config cfg;
static int port;
static uint64_t ping_count, inputs;

static const char *no_env(const char *name, void *ud)
{
    (void)name;
    (void)ud;
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qs_log_set_level(QS_LOG_ERROR);
    qs_config_defaults(&cfg);
    char *err = NULL;
    if (qs_config_parse(&cfg, hub_config, sizeof(hub_config) - 1, "fuzz", no_env, NULL, &err) < 0 ||
        qs_server_init(&server, &cfg, &err) < 0 || qs_server_start(&server, &err) < 0) {
        fprintf(stderr, "fuzz_http2_conn: cannot start the hub: %s\n", err ? err : "?");
        abort();
    }
    port = server.ports[0];
    return 0;
}

static int connect_hub(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The machine's loopback can refuse for a moment (ephemeral ports all in TIME_WAIT after
     * thousands of runs, a busy accept queue): that says nothing about the input. */
    int tries = 0;
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno == EISCONN)
            break;
        if (++tries == 200 || (errno != EADDRNOTAVAIL && errno != ECONNREFUSED && errno != EAGAIN &&
                               errno != EINTR && errno != ETIMEDOUT)) {
            fprintf(stderr, "fuzz_http2_conn: cannot connect to the hub: %s\n", strerror(errno));
            abort();
        }
        close(fd);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        usleep(10000);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends everything, unless the hub closed the connection meanwhile. */
static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads frames until the PING with `opaque` is acknowledged (true) or the connection ends
 * (true), for up to `ms` (false: the hub may be waiting for the rest of a frame the input
 * began, which swallowed the PING). */
static bool await_ack(int fd, const uint8_t opaque[8], int ms)
{
    static uint8_t buf[1 << 16];
    size_t have = 0;
    uint64_t deadline = now_ms() + (uint64_t)ms;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t r = recv(fd, buf + have, sizeof(buf) - have, 0);
        if (r <= 0)
            return true; /* closed or reset: everything before was handled */
        have += (size_t)r;
        size_t pos = 0;
        while (have - pos >= 9) {
            size_t len = (size_t)buf[pos] << 16 | (size_t)buf[pos + 1] << 8 | buf[pos + 2];
            if (have - pos < 9 + len)
                break;
            const uint8_t *h = buf + pos;
            if (h[3] == 0x6 && (h[4] & 0x1) && len == 8 && memcmp(h + 9, opaque, 8) == 0)
                return true;
            pos += 9 + len;
        }
        if (pos == 0 && have == sizeof(buf))
            pos = have; /* a frame larger than the buffer: skip what we hold */
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
}

/* The hub still answers a new connection (HTTP/1.1 health check) within 5 s. */
static void check_alive(void)
{
    int fd = connect_hub();
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n";
    CHECK(send_all(fd, req, sizeof(req) - 1));
    char buf[64];
    size_t have = 0;
    uint64_t deadline = now_ms() + 5000;
    while (have < 12) {
        uint64_t now = now_ms();
        CHECK(now < deadline);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t r = recv(fd, buf + have, sizeof(buf) - have, 0);
        CHECK(r > 0);
        have += (size_t)r;
    }
    CHECK(memcmp(buf, "HTTP/1.1 200", 12) == 0);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = connect_hub();
    uint8_t ping[17] = {0, 0, 8, 0x6, 0, 0, 0, 0, 0};
    uint64_t id = ++ping_count;
    memcpy(ping + 9, &id, 8);
    if (send_all(fd, preface, sizeof(preface) - 1) && send_all(fd, data, size) &&
        send_all(fd, ping, sizeof(ping)) && !await_ack(fd, ping + 9, 20)) {
        /* No answer yet: the input may have begun a frame that swallowed the PING, or left
         * a request waiting. The end of our side must end the connection. */
        shutdown(fd, SHUT_WR);
        CHECK(await_ack(fd, ping + 9, 5000));
    }
    /* A reset, so that no TIME_WAIT is left behind per input. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    if (++inputs % 1000 == 0)
        check_alive();
    return 0;
}
