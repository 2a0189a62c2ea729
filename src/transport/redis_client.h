/* SPDX-License-Identifier: MIT
 * redis_client.h - one connection to Redis, as the Redis transport's threads use it:
 * TCP or TLS (OpenSSL), blocking I/O with deadlines, commands formatted in RESP and replies
 * read with hiredis's redisReader, AUTH, and Lua scripts run by SHA-1 with a fallback to
 * their text when Redis's script cache lost them (NOSCRIPT).
 *
 * Two objects, as OpenSSL's SSL_CTX and SSL:
 *  - qs_redis_client_ctx: what the connections of one transport share: where Redis is, the
 *    credentials, the timeout, the TLS context, and the wake fd that interrupts blocking
 *    waits when the transport stops. Read-only once set up, but for qs_redis_client_ctx_wake:
 *    any thread may use it.
 *  - qs_redis_client: one connection. It belongs to one thread at a time (the transport
 *    gives each of its threads its own); nothing in it is locked.
 *
 * Errors: a call that fails returns -1 and leaves why in c->err, one line of text that is
 * a whole reason ("redis unavailable: connection refused", "redis AUTH failed: …"); the
 * connection is then unusable until it is closed and opened again. A reply that is an
 * error (REDIS_REPLY_ERROR) is a reply, not a failure: the call returns 0 with it.
 *
 * Waits are "wakeable" or not: a wakeable one gives up, with the reason "redis unavailable:
 * the hub is shutting down", once qs_redis_client_ctx_wake was called; a non-wakeable one
 * runs to its deadline (the writer's, so that queued publishes get their real outcome).
 */
#ifndef QS_TRANSPORT_REDIS_CLIENT_H
#define QS_TRANSPORT_REDIS_CLIENT_H

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "util.h"

/** Room for a connection's failure reason, terminating NUL included (as QS_REASON_MAX). */
#define QS_REDIS_CLIENT_ERR_MAX 256

/** Where Redis is and how to speak to it. The strings are borrowed: they must outlive the
 *  context. */
typedef struct qs_redis_client_options {
    const char *host;
    int port;
    const char *username; /* NULL: AUTH with the password only */
    const char *password; /* NULL: no AUTH (PING instead) */
    uint64_t timeout_ms;  /* connecting, and waiting for a reply */
    bool tls;
    bool tls_insecure;    /* do not verify the server's certificate */
    const char *tls_ca;   /* NULL: the system's CAs */
    const char *tls_cert; /* client certificate and key, or NULL */
    const char *tls_key;  /* (both or neither) */
    const char *source;   /* where the options were given, for errors */
    int line;
} qs_redis_client_options;

/** What the connections of one transport share (see above). */
typedef struct qs_redis_client_ctx {
    qs_redis_client_options o;
    SSL_CTX *ssl_ctx; /* NULL without TLS */
    int wake_fd;      /* an eventfd, readable once qs_redis_client_ctx_wake was called */
} qs_redis_client_ctx;

/**
 * Sets up a context: the wake fd and, with TLS, the TLS context (CA, client certificate).
 * Returns 0, or -1 with a malloc'd message naming the option (and o->source:o->line);
 * the context is then left as after qs_redis_client_ctx_destroy.
 */
int qs_redis_client_ctx_init(qs_redis_client_ctx *ctx, const qs_redis_client_options *o,
                             char **err);
void qs_redis_client_ctx_destroy(qs_redis_client_ctx *ctx);
/** Interrupts every wakeable wait, now and from now on (the transport is stopping). */
void qs_redis_client_ctx_wake(qs_redis_client_ctx *ctx);
/** Sleeps ms milliseconds, or less once qs_redis_client_ctx_wake was called. */
void qs_redis_client_ctx_sleep(const qs_redis_client_ctx *ctx, uint64_t ms);

/** One connection (see above). The fields are the client's; read only err. */
typedef struct qs_redis_client {
    const qs_redis_client_ctx *ctx;
    int fd; /* -1 when closed */
    SSL *ssl;
    redisReader *reader;
    char *rbuf;
    char err[QS_REDIS_CLIENT_ERR_MAX]; /* why the last call failed, as a whole reason */
} qs_redis_client;

/** A closed connection to the server of ctx. */
void qs_redis_client_init(qs_redis_client *c, const qs_redis_client_ctx *ctx);
/** Connects (closing first), negotiates TLS, then AUTH (or PING): 0, or -1 (c->err), closed. */
int qs_redis_client_open(qs_redis_client *c, bool wakeable);
/** Closes the connection (no-op when closed). */
void qs_redis_client_close(qs_redis_client *c);
/** True when open (it may have broken since: see qs_redis_client_alive). */
bool qs_redis_client_is_open(const qs_redis_client *c);
/** True when an idle open connection still looks usable (Redis has not closed it). */
bool qs_redis_client_alive(qs_redis_client *c);

/** now + the configured timeout: the deadline of a command sent now. */
uint64_t qs_redis_client_deadline(const qs_redis_client *c);
/** Sends bytes (commands in RESP) by the deadline (qs_now_ms clock): 0 or -1 (c->err). */
int qs_redis_client_send(qs_redis_client *c, const char *p, size_t n, uint64_t deadline,
                         bool wakeable);
/** Reads the next reply by the deadline: 0 with *out (free it with freeReplyObject), or -1
 *  (c->err). Replies come in the order the commands were sent. */
int qs_redis_client_read(qs_redis_client *c, redisReply **out, uint64_t deadline, bool wakeable);
/** Sends one command (C-string arguments) and reads its reply, within the timeout. */
int qs_redis_client_call(qs_redis_client *c, int argc, const char *const *argv, redisReply **out,
                         bool wakeable);
/** Sends `cmds` (not wakeable) and reads `replies` replies: 0, or -1 (c->err) when the
 *  connection failed or a reply was an error ("redis unavailable: <error>"). */
int qs_redis_client_pipeline(qs_redis_client *c, const qs_buf *cmds, size_t replies);

/** Commands in RESP: qs_redis_client_format appends one of C strings; for others (binary
 *  arguments), _format_begin with the number of arguments, then one _format_arg each. */
void qs_redis_client_format(qs_buf *b, int argc, const char *const *argv);
void qs_redis_client_format_begin(qs_buf *b, size_t argc);
void qs_redis_client_format_arg(qs_buf *b, const char *p, size_t len);
void qs_redis_client_format_str(qs_buf *b, const char *s);

/** Marks the connection failed: c->err = the formatted reason. Returns -1. */
int qs_redis_client_fail(qs_redis_client *c, const char *fmt, ...) QS_PRINTF(2, 3);
/** Marks it failed by an error reply: c->err = "<what>: <Redis's error>". Returns -1. */
int qs_redis_client_fail_reply(qs_redis_client *c, const char *what, const redisReply *r);
/** Writes "<what>: <Redis's error>" into buf (cap bytes, cut) and returns buf. */
const char *qs_redis_client_reply_error(char *buf, size_t cap, const char *what,
                                        const redisReply *r);
/** c->err without the "redis unavailable: " that starts it. */
const char *qs_redis_client_err_detail(const qs_redis_client *c);
/** True for an error reply that means "try again later" (LOADING, BUSY, READONLY, …) rather
 *  than a refused request. */
bool qs_redis_client_is_transient(const redisReply *r);

/** A Lua script and its SHA-1 (the name EVALSHA calls it by). */
typedef struct qs_redis_client_script {
    const char *text; /* borrowed: a string literal */
    char sha[41];
} qs_redis_client_script;

void qs_redis_client_script_init(qs_redis_client_script *s, const char *text);
/** SCRIPT LOAD (wakeable): 0, or -1 (c->err) also when Redis refused it. */
int qs_redis_client_script_load(qs_redis_client *c, const qs_redis_client_script *s);
/** EVALSHA with args (the number of keys, the keys, the other arguments; 6 at most), then
 *  EVAL with the text when Redis answers NOSCRIPT. Not wakeable. 0 with the reply (an error
 *  reply included), or -1 (c->err) when the connection failed. */
int qs_redis_client_eval(qs_redis_client *c, const qs_redis_client_script *s, int nargs,
                         const char *const *args, redisReply **out);
/** True for Redis's answer to EVALSHA of a script its cache does not hold. */
bool qs_redis_client_is_noscript(const redisReply *r);

#endif
