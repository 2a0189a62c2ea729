/* SPDX-License-Identifier: MIT
 * sock.h - the byte stream under every protocol: a TCP connection, or TLS over one; the
 * listeners that accept them, the TLS handshake, and the choice of protocol.
 *
 *   qs_socks (one per worker): its listeners, the sockets still choosing a protocol, the
 *                              count of open sockets (the worker exits when none is left)
 *   qs_sock (one per connection): libuv's TCP handle, the TLS state when there is one
 *
 * A socket starts here: a TLS handshake (its ALPN result chooses HTTP/2 or HTTP/1.1), or on
 * a plain listener with h2c the first bytes (the HTTP/2 preface, or HTTP/1). It is then
 * handed to a protocol through the starters given at creation, which sets its events; from
 * then on the protocol reads plaintext through them and writes with qs_sock_try_write and
 * qs_sock_write. A plain request on a TLS listener is answered 400 and never served.
 *
 * Writing over TLS encrypts at once: what qs_sock_try_write accepted is the protocol's no
 * longer, even if the socket took only part of the records (the rest leaves by itself).
 * Many small writes of one call share TLS records of up to 16 KiB.
 *
 * Lifetime: a socket is freed after its libuv close callback has told its protocol
 * (`closed`); a socket never calls its protocol from inside one of the protocol's calls
 * into it, only from loop callbacks. Touched only by its worker's thread.
 */
#ifndef QS_SOCK_H
#define QS_SOCK_H

#include <openssl/ssl.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "ctx.h"
#include "list.h"
#include "tls.h"

typedef struct qs_sock qs_sock;
typedef struct qs_socks qs_socks;

/** What a protocol hears from its socket (loop callbacks). */
typedef struct qs_sock_events {
    /** Plaintext arrived; valid during the call only. */
    void (*read)(qs_sock *s, const char *data, size_t len);
    /** The peer closed (UV_EOF), the connection failed, or the kernel gave up on the peer
     *  (UV_ETIMEDOUT). The protocol closes the socket. */
    void (*ended)(qs_sock *s, int status);
    /** What qs_sock_write queued is written (status 0) or failed. */
    void (*written)(qs_sock *s, int status);
    /** The socket is closed: the protocol frees its connection; `s` is gone after this. */
    void (*closed)(qs_sock *s);
} qs_sock_events;

/** Starts a protocol on a socket; `initial` holds bytes already read (valid during the
 *  call only). The starter sets s->events and s->conn. */
typedef void (*qs_sock_starter)(void *state, qs_sock *s, const char *initial, size_t len);

typedef struct qs_sock_protocols {
    qs_sock_starter http1;
    void *http1_state;
    qs_sock_starter http2;
    void *http2_state;
} qs_sock_protocols;

struct sock_tls;

struct qs_sock {
    uv_tcp_t tcp;
    qs_socks *ss;
    const qs_sock_events *events; /* NULL until a protocol starts */
    void *conn;                   /* the protocol's connection */
    struct sock_tls *tls;         /* NULL: plain TCP */
    qs_list start_node;           /* in ss->starting while choosing a protocol */
    uint64_t start_ms;
    uv_write_t *wreq; /* allocated when the socket first fills */
    char *early;      /* h2c: the first bytes, to tell the preface from HTTP/1 */
    uint8_t early_len;
    bool starting : 1;   /* no protocol yet */
    bool allow_h1 : 1;   /* the listener's protocols */
    bool allow_h2c : 1;  /* plain listener: HTTP/2 with prior knowledge */
    bool over_limit : 1; /* accepted from the reserve beyond max_connections */
    bool closing : 1;
    char peer[46];
};

/** The sockets of a worker; tls may be NULL (no TLS listener). */
qs_socks *qs_socks_new(qs_ctx *ctx, qs_tls *tls, const qs_sock_protocols *protocols);
/** Accepts connections on a listening socket (its fd is adopted) for listener l, with the
 *  protocols cfg enables. */
int qs_socks_listen(qs_socks *ss, const qs_config_listener *l, const qs_config *cfg, int fd,
                    char **err);
/** Stops accepting (shutdown). */
void qs_socks_stop_listening(qs_socks *ss);
/** Closes the sockets still choosing a protocol (shutdown; the protocols close theirs). */
void qs_socks_close_starting(qs_socks *ss);
/** Sockets open (closed ones count until their close callback ran). */
uint64_t qs_socks_count(const qs_socks *ss);
/** Closes sockets whose handshake or first bytes take longer than request_timeout. */
void qs_socks_check_timeouts(qs_socks *ss, uint64_t now);
/** Frees the state, once the loop has run every close callback. */
void qs_socks_free(qs_socks *ss);

/** Writes what the peer takes now; returns the bytes of iov taken (0 when none, e.g. while a
 *  write is queued) or a negative libuv error. */
int qs_sock_try_write(qs_sock *s, const uv_buf_t *iov, unsigned n);
/** Queues iov (which must stay valid until `written`); one queued write at a time. Returns 0
 *  or a negative libuv error (then no `written`). */
int qs_sock_write(qs_sock *s, const uv_buf_t *iov, unsigned n);
/** Sends FIN after what is queued (TLS: close_notify first); reading goes on. */
void qs_sock_shutdown(qs_sock *s);
/** Closes the connection (idempotent); `closed` follows from the loop. */
void qs_sock_close(qs_sock *s);
/** Arms the detection of a vanished peer (TCP user timeout and keep-alive probes), for a
 *  connection that will carry event streams. */
void qs_sock_watch_peer(qs_sock *s);
/** True for a TLS connection. */
static inline bool qs_sock_is_tls(const qs_sock *s)
{
    return s->tls != NULL;
}

#endif
