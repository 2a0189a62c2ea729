/* SPDX-License-Identifier: MIT
 * pulsar_client.h - one connection to an Apache Pulsar broker, as the Pulsar transport's
 * threads use it: TCP or TLS (OpenSSL), blocking I/O on a non-blocking socket with poll()
 * and deadlines, the CONNECT handshake (token authentication, auth challenges), the topic
 * lookup (following redirects to the broker that owns the topic), requests matched to
 * their answers by request id, and keep-alive (the broker's PINGs answered, the client's
 * own PINGs sent on a silent link, which is declared dead when they go unanswered).
 *
 * Two objects, as OpenSSL's SSL_CTX and SSL:
 *  - qs_pulsar_client_ctx: what the connections of one transport share (settings, TLS
 *    context, the wake fd that interrupts waits when the transport stops). Read-only once
 *    set up, but for qs_pulsar_client_ctx_wake.
 *  - qs_pulsar_conn: one connection; it belongs to one thread at a time.
 *
 * Errors: a call that fails returns -1 and leaves in c->err a whole one-line reason, in
 * c->kind what kind of failure it is and in c->option the option that a user should look
 * at (NULL when none: the broker is merely unreachable). The connection is then closed.
 */
#ifndef QS_TRANSPORT_PULSAR_CLIENT_H
#define QS_TRANSPORT_PULSAR_CLIENT_H

#include <openssl/ssl.h>

#include "transport/pulsar.h"

#define QS_PULSAR_CLIENT_ERR_MAX 256

typedef struct qs_pulsar_client_ctx {
    const qs_pulsar_settings *s; /* borrowed: outlives the context */
    SSL_CTX *ssl_ctx;            /* NULL without TLS */
    int wake_fd;                 /* readable once qs_pulsar_client_ctx_wake was called */
} qs_pulsar_client_ctx;

/** Sets up a context; 0, or -1 with a malloc'd message naming the option. */
int qs_pulsar_client_ctx_init(qs_pulsar_client_ctx *ctx, const qs_pulsar_settings *s, char **err);
void qs_pulsar_client_ctx_destroy(qs_pulsar_client_ctx *ctx);
/** Interrupts every wait, now and from now on (the transport is stopping). */
void qs_pulsar_client_ctx_wake(qs_pulsar_client_ctx *ctx);
/** Sleeps ms milliseconds, or less once woken. */
void qs_pulsar_client_ctx_sleep(const qs_pulsar_client_ctx *ctx, uint64_t ms);

typedef enum qs_pulsar_fail {
    QS_PULSAR_FAIL_UNAVAILABLE = 0, /* unreachable, connection lost, timeout, stopping */
    QS_PULSAR_FAIL_AUTH,            /* the broker refused the credentials */
    QS_PULSAR_FAIL_TLS,             /* the TLS handshake failed */
    QS_PULSAR_FAIL_REFUSED,         /* the broker refused a request (topic, subscription…) */
} qs_pulsar_fail;

typedef struct qs_pulsar_conn {
    const qs_pulsar_client_ctx *ctx;
    int fd; /* -1 when closed */
    SSL *ssl;
    char *host; /* the broker connected to (after lookup) */
    int port;
    uint8_t *in; /* bytes read, not yet parsed: in[off..len) */
    size_t len, off, cap;
    qs_pulsar_frame frame; /* the last frame returned */
    uint64_t next_request;
    size_t max_frame;
    uint64_t last_rx_ms, ping_ms; /* last bytes received; our PING in flight since (0: none) */
    char err[QS_PULSAR_CLIENT_ERR_MAX];
    qs_pulsar_fail kind;
    int error_code;     /* the broker's error code of a refusal, -1 otherwise */
    const char *option; /* the option to look at, or NULL */
} qs_pulsar_conn;

void qs_pulsar_conn_init(qs_pulsar_conn *c, const qs_pulsar_client_ctx *ctx);
/** Connects to the service URL, handshakes, looks `topic` up and connects to the broker that
 *  serves it: 0, or -1 (c->err). */
int qs_pulsar_conn_open(qs_pulsar_conn *c, const char *topic);
void qs_pulsar_conn_close(qs_pulsar_conn *c);
/** Closes it and frees what it kept (the broker's name). */
void qs_pulsar_conn_free(qs_pulsar_conn *c);
bool qs_pulsar_conn_is_open(const qs_pulsar_conn *c);
/**
 * Runs open(arg), which opens something on c, again every 250 ms while it fails because the
 * broker answered that it is not ready (ServiceNotReady, or a storage error such as "Not
 * enough non-faulty bookies available" while a restarted broker recovers), until `deadline`
 * (qs_now_ms()). 0, or open's last -1 (c->err). Any other failure returns at once.
 */
int qs_pulsar_open_when_ready(qs_pulsar_conn *c, int (*open)(void *arg), void *arg,
                              uint64_t deadline);
/** A new request id. */
uint64_t qs_pulsar_conn_request_id(qs_pulsar_conn *c);
/** Sends bytes (frames) by the deadline: 0, or -1 (c->err). */
int qs_pulsar_conn_send(qs_pulsar_conn *c, const void *p, size_t n, uint64_t deadline);
int qs_pulsar_conn_send_command(qs_pulsar_conn *c, const Qspulsar__BaseCommand *cmd,
                                uint64_t deadline);
/**
 * The next frame from the broker other than keep-alive (answered here): 1 with *f (valid
 * until the next call), 0 when the deadline passed or notify_fd (when >= 0) became readable
 * (it is not drained), -1 (c->err) when the connection failed or the transport stops. A
 * link silent for longer than the timeout fails it.
 */
int qs_pulsar_conn_next(qs_pulsar_conn *c, uint64_t deadline, int notify_fd, qs_pulsar_frame **f);
/**
 * Sends a request (its request id set to `request_id`) and waits, within the timeout, for
 * its answer (SUCCESS, PRODUCER_SUCCESS, LOOKUP_RESPONSE, GET_LAST_MESSAGE_ID_RESPONSE…),
 * skipping other frames. An ERROR answer fails it: -1 with c->err naming `what`, and the
 * connection stays open. 1 with *f the answer.
 */
int qs_pulsar_conn_request(qs_pulsar_conn *c, const Qspulsar__BaseCommand *cmd, uint64_t request_id,
                           const char *what, qs_pulsar_frame **f);
/**
 * Asks the broker how many partitions `topic` has (pulsar.h): 0 with *partitions (0 when the
 * topic is not partitioned or does not exist yet), or -1 (c->err) when the broker does not
 * answer in time or refuses (the connection then stays open).
 */
int qs_pulsar_conn_partitions(qs_pulsar_conn *c, const char *topic, uint32_t *partitions);
/** Marks the connection failed with a reason (kind UNAVAILABLE) and closes it. -1. */
int qs_pulsar_conn_fail(qs_pulsar_conn *c, const char *fmt, ...) QS_PRINTF(2, 3);

#endif
