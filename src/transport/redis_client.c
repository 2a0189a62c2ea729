/* SPDX-License-Identifier: MIT
 * redis_client.c - one connection to Redis (redis_client.h): connecting over TCP or TLS,
 * AUTH, blocking I/O on a non-blocking socket with poll() and deadlines, RESP formatting,
 * replies read with hiredis's redisReader, and Lua scripts by SHA-1 with a NOSCRIPT
 * fallback.
 *
 * Threading: a qs_redis_client is used by one thread at a time and locks nothing; its
 * context is read-only once set up, and only its wake fd is written (by
 * qs_redis_client_ctx_wake, from any thread). Every wait polls the connection's fd and,
 * when wakeable, the wake fd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tls.h"
#include "transport/redis_client.h"

#define READ_CHUNK (64 * 1024)

/* ------------------------------------------------------------ errors */

int qs_redis_client_fail(qs_redis_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return -1;
}

const char *qs_redis_client_reply_error(char *buf, size_t cap, const char *what,
                                        const redisReply *r)
{
    snprintf(buf, cap, "%s: %.*s", what, (int)QS_MIN(r->len, (size_t)200), r->str);
    return buf;
}

int qs_redis_client_fail_reply(qs_redis_client *c, const char *what, const redisReply *r)
{
    qs_redis_client_reply_error(c->err, sizeof(c->err), what, r);
    return -1;
}

const char *qs_redis_client_err_detail(const qs_redis_client *c)
{
    static const char prefix[] = "redis unavailable: ";
    return strncmp(c->err, prefix, sizeof(prefix) - 1) == 0 ? c->err + sizeof(prefix) - 1 : c->err;
}

bool qs_redis_client_is_transient(const redisReply *r)
{
    static const char *const prefixes[] = {"LOADING",    "BUSY",     "OOM",        "READONLY",
                                           "MASTERDOWN", "TRYAGAIN", "NOREPLICAS", "CLUSTERDOWN"};
    for (size_t i = 0; i < QS_ARRAY_LEN(prefixes); i++) {
        size_t l = strlen(prefixes[i]);
        if (r->len >= l && memcmp(r->str, prefixes[i], l) == 0)
            return true;
    }
    return false;
}

/* strerror, starting in lower case to fit in a sentence. */
static const char *errno_text(int e, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] + 32);
    return buf;
}

static int fail_errno(qs_redis_client *c, int e)
{
    char buf[96];
    return qs_redis_client_fail(c, "redis unavailable: connection lost (%s)",
                                errno_text(e, buf, sizeof(buf)));
}

/* ------------------------------------------------------------ the shared context */

static int make_ssl_ctx(qs_redis_client_ctx *ctx, char **err)
{
    const qs_redis_client_options *o = &ctx->o;
    const char *src = o->source ? o->source : "config";
    ctx->ssl_ctx = qs_tls_client_ctx("redis", src, o->line, o->tls_insecure, o->tls_ca, err);
    if (!ctx->ssl_ctx)
        return -1;
    if (o->tls_cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, o->tls_cert) != 1) {
            *err = qs_xasprintf("%s:%d: transport redis: tls_cert: cannot load \"%s\"", src,
                                o->line, o->tls_cert);
            return -1;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx->ssl_ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx->ssl_ctx) != 1) {
            *err = qs_xasprintf("%s:%d: transport redis: tls_key: cannot load \"%s\" (or it "
                                "does not match tls_cert)",
                                src, o->line, o->tls_key);
            return -1;
        }
    }
    ERR_clear_error();
    return 0;
}

int qs_redis_client_ctx_init(qs_redis_client_ctx *ctx, const qs_redis_client_options *o, char **err)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->o = *o;
    ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->wake_fd < 0) {
        *err = qs_xasprintf("transport redis: eventfd: %s", strerror(errno));
        return -1;
    }
    if (o->tls && make_ssl_ctx(ctx, err) < 0) {
        qs_redis_client_ctx_destroy(ctx);
        return -1;
    }
    return 0;
}

void qs_redis_client_ctx_destroy(qs_redis_client_ctx *ctx)
{
    if (ctx->ssl_ctx)
        SSL_CTX_free(ctx->ssl_ctx);
    ctx->ssl_ctx = NULL;
    if (ctx->wake_fd >= 0)
        close(ctx->wake_fd);
    ctx->wake_fd = -1;
}

void qs_redis_client_ctx_wake(qs_redis_client_ctx *ctx)
{
    if (ctx->wake_fd < 0)
        return;
    uint64_t one = 1;
    if (write(ctx->wake_fd, &one, sizeof(one)) < 0)
        qs_debug("redis: eventfd write: %s", strerror(errno));
}

void qs_redis_client_ctx_sleep(const qs_redis_client_ctx *ctx, uint64_t ms)
{
    struct pollfd p = {ctx->wake_fd, POLLIN, 0};
    poll(&p, 1, (int)ms);
}

/* ------------------------------------------------------------ waiting and I/O */

/* Waits until fd is ready for `events`: 1 ready, 0 deadline passed, -2 woken (only when
 * wakeable), -1 error. */
static int wait_fd(const qs_redis_client_ctx *ctx, int fd, short events, uint64_t deadline,
                   bool wakeable)
{
    for (;;) {
        uint64_t now = qs_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p[2] = {{fd, events, 0}, {ctx->wake_fd, POLLIN, 0}};
        uint64_t wait = deadline - now;
        int n = poll(p, wakeable ? 2 : 1, (int)QS_MIN(wait, (uint64_t)60000));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (wakeable && p[1].revents)
            return -2;
        if (n > 0)
            return 1;
    }
}

/* The failure that wait_fd's result w (not 1) means. Returns -1. */
static int wait_result(qs_redis_client *c, int w)
{
    if (w == 0)
        return qs_redis_client_fail(c, "redis unavailable: timeout (no answer in time)");
    if (w == -2)
        return qs_redis_client_fail(c, "redis unavailable: the hub is shutting down");
    char e[96];
    return qs_redis_client_fail(c, "redis unavailable: poll: %s", errno_text(errno, e, sizeof(e)));
}

/* Waits for the connection's fd; 0 when ready, else -1 with the reason. */
static int wait_ready(qs_redis_client *c, short events, uint64_t deadline, bool wakeable)
{
    int w = wait_fd(c->ctx, c->fd, events, deadline, wakeable);
    return w == 1 ? 0 : wait_result(c, w);
}

static int ssl_fail(qs_redis_client *c, int ssl_err, int ret, const char *what)
{
    unsigned long e = ERR_get_error();
    if (e) {
        char buf[160];
        ERR_error_string_n(e, buf, sizeof(buf));
        return qs_redis_client_fail(c, "redis unavailable: TLS %s: %s", what, buf);
    }
    if (ssl_err == SSL_ERROR_ZERO_RETURN || (ssl_err == SSL_ERROR_SYSCALL && ret == 0) ||
        (ssl_err == SSL_ERROR_SYSCALL && !errno))
        return qs_redis_client_fail(c, "redis unavailable: connection closed by redis");
    return fail_errno(c, errno);
}

/* One attempt to move bytes with TLS: SSL_read into rbuf when it is set, else SSL_write of
 * wbuf. Returns the count moved (> 0), 0 when it must wait for *ev, or -1 (c->err). */
static ssize_t tls_io(qs_redis_client *c, void *rbuf, const void *wbuf, size_t n, short *ev)
{
    ERR_clear_error();
    errno = 0;
    bool reading = rbuf != NULL;
    int len = (int)QS_MIN(n, (size_t)1 << 30);
    int r = reading ? SSL_read(c->ssl, rbuf, len) : SSL_write(c->ssl, wbuf, len);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        *ev = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        *ev = POLLOUT;
    else
        return ssl_fail(c, e, r, reading ? "read" : "write");
    return 0;
}

/* One attempt to move bytes over plain TCP, as tls_io. */
static ssize_t tcp_io(qs_redis_client *c, void *rbuf, const void *wbuf, size_t n)
{
    for (;;) {
        ssize_t r = rbuf ? recv(c->fd, rbuf, n, 0) : send(c->fd, wbuf, n, MSG_NOSIGNAL);
        if (r > 0)
            return r;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r == 0 && rbuf)
            return qs_redis_client_fail(c, "redis unavailable: connection closed by redis");
        return fail_errno(c, r == 0 ? EPIPE : errno);
    }
}

/* One attempt to move bytes, with TLS or without: as tls_io. */
static ssize_t conn_io(qs_redis_client *c, void *rbuf, const void *wbuf, size_t n, short *ev)
{
    return c->ssl ? tls_io(c, rbuf, wbuf, n, ev) : tcp_io(c, rbuf, wbuf, n);
}

int qs_redis_client_send(qs_redis_client *c, const char *p, size_t n, uint64_t deadline,
                         bool wakeable)
{
    while (n) {
        short ev = POLLOUT;
        ssize_t r = conn_io(c, NULL, p, n, &ev);
        if (r < 0)
            return -1;
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (wait_ready(c, ev, deadline, wakeable) < 0) {
            return -1;
        }
    }
    return 0;
}

int qs_redis_client_read(qs_redis_client *c, redisReply **out, uint64_t deadline, bool wakeable)
{
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK)
            return qs_redis_client_fail(c, "redis unavailable: protocol error (%s)",
                                        c->reader->errstr);
        if (reply) {
            *out = reply;
            return 0;
        }
        short ev = POLLIN;
        ssize_t r = conn_io(c, c->rbuf, NULL, READ_CHUNK, &ev);
        if (r < 0)
            return -1;
        if (r > 0)
            redisReaderFeed(c->reader, c->rbuf, (size_t)r);
        else if (wait_ready(c, ev, deadline, wakeable) < 0)
            return -1;
    }
}

uint64_t qs_redis_client_deadline(const qs_redis_client *c)
{
    return qs_now_ms() + c->ctx->o.timeout_ms;
}

/* ------------------------------------------------------------ commands */

void qs_redis_client_format_begin(qs_buf *b, size_t argc)
{
    qs_buf_append_char(b, '*');
    qs_buf_append_u64(b, argc);
    qs_buf_append(b, "\r\n", 2);
}

void qs_redis_client_format_arg(qs_buf *b, const char *p, size_t len)
{
    qs_buf_append_char(b, '$');
    qs_buf_append_u64(b, len);
    qs_buf_append(b, "\r\n", 2);
    qs_buf_append(b, p, len);
    qs_buf_append(b, "\r\n", 2);
}

void qs_redis_client_format_str(qs_buf *b, const char *s)
{
    qs_redis_client_format_arg(b, s, strlen(s));
}

void qs_redis_client_format(qs_buf *b, int argc, const char *const *argv)
{
    qs_redis_client_format_begin(b, (size_t)argc);
    for (int i = 0; i < argc; i++)
        qs_redis_client_format_str(b, argv[i]);
}

int qs_redis_client_call(qs_redis_client *c, int argc, const char *const *argv, redisReply **out,
                         bool wakeable)
{
    qs_buf b = QS_BUF_INIT;
    qs_redis_client_format(&b, argc, argv);
    uint64_t deadline = qs_redis_client_deadline(c);
    int rc = qs_redis_client_send(c, b.p, b.len, deadline, wakeable);
    qs_buf_free(&b);
    if (rc == 0)
        rc = qs_redis_client_read(c, out, deadline, wakeable);
    return rc;
}

int qs_redis_client_pipeline(qs_redis_client *c, const qs_buf *cmds, size_t replies)
{
    uint64_t deadline = qs_redis_client_deadline(c);
    if (qs_redis_client_send(c, cmds->p, cmds->len, deadline, false) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < replies; i++) {
        redisReply *r = NULL;
        if (qs_redis_client_read(c, &r, deadline, false) < 0)
            return -1;
        if (r->type == REDIS_REPLY_ERROR && !rc)
            rc = qs_redis_client_fail_reply(c, "redis unavailable", r);
        freeReplyObject(r);
    }
    return rc;
}

/* ------------------------------------------------------------ connections */

void qs_redis_client_init(qs_redis_client *c, const qs_redis_client_ctx *ctx)
{
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
    c->fd = -1;
}

void qs_redis_client_close(qs_redis_client *c)
{
    if (c->ssl) {
        SSL_free(c->ssl); /* no close_notify: the peer is gone or we are leaving */
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->reader) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    free(c->rbuf);
    c->rbuf = NULL;
}

bool qs_redis_client_is_open(const qs_redis_client *c)
{
    return c->fd >= 0;
}

/* Redis never speaks unasked, so anything readable on an idle connection is an EOF, an
 * error, or a TLS record such as a session ticket. */
bool qs_redis_client_alive(qs_redis_client *c)
{
    if (c->fd < 0)
        return false;
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
        return true;
    char b;
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_peek(c->ssl, &b, 1);
        if (r > 0)
            return false;
        int e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        return e == SSL_ERROR_WANT_READ;
    }
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int tls_handshake(qs_redis_client *c, uint64_t deadline, bool wakeable)
{
    const qs_redis_client_options *o = &c->ctx->o;
    c->ssl = SSL_new(c->ctx->ssl_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd))
        return qs_redis_client_fail(c, "redis TLS handshake failed: cannot set up TLS");
    qs_tls_client_host(c->ssl, o->host, o->tls_insecure);
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        short ev;
        if (e == SSL_ERROR_WANT_READ) {
            ev = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            ev = POLLOUT;
        } else {
            long v = SSL_get_verify_result(c->ssl);
            if (v != X509_V_OK)
                return qs_redis_client_fail(c, "redis TLS handshake failed: %s",
                                            X509_verify_cert_error_string(v));
            unsigned long ec = ERR_get_error();
            if (ec) {
                const char *why = ERR_reason_error_string(ec);
                return qs_redis_client_fail(c, "redis TLS handshake failed: %s",
                                            why ? why : "unknown error");
            }
            return qs_redis_client_fail(c, "redis TLS handshake failed: connection closed (is "
                                           "the port a TLS port?)");
        }
        if (wait_ready(c, ev, deadline, wakeable) < 0)
            return -1;
    }
}

/* Connects a socket to one of the host's addresses; 0 with c->fd, or -1. */
static int tcp_connect(qs_redis_client *c, uint64_t deadline, bool wakeable)
{
    const qs_redis_client_options *o = &c->ctx->o;
    char port[8], ebuf[96];
    snprintf(port, sizeof(port), "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(o->host, port, &hints, &res);
    if (gai)
        return qs_redis_client_fail(c, "redis unavailable: cannot resolve %s (%s)", o->host,
                                    gai_strerror(gai));
    int last = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            last = errno;
            close(fd);
            continue;
        }
        int w = wait_fd(c->ctx, fd, POLLOUT, deadline, wakeable);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (w != 1 || soerr) {
            close(fd);
            if (w != 1) {
                freeaddrinfo(res);
                return w == 0 ? qs_redis_client_fail(c, "redis unavailable: connection timed out")
                              : wait_result(c, w);
            }
            last = soerr;
            continue;
        }
        c->fd = fd;
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return qs_redis_client_fail(c, "redis unavailable: %s",
                                    errno_text(last, ebuf, sizeof(ebuf)));
    return 0;
}

int qs_redis_client_open(qs_redis_client *c, bool wakeable)
{
    const qs_redis_client_options *o = &c->ctx->o;
    qs_redis_client_close(c);
    uint64_t deadline = qs_redis_client_deadline(c);
    if (tcp_connect(c, deadline, wakeable) < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    c->reader = redisReaderCreate();
    c->rbuf = qs_xmalloc(READ_CHUNK);
    if (!c->reader)
        qs_panic("out of memory");
    if (c->ctx->ssl_ctx && tls_handshake(c, deadline, wakeable) < 0) {
        qs_redis_client_close(c);
        return -1;
    }

    /* AUTH when a password is set, else PING: either proves the server answers. */
    const char *argv[3];
    int argc = 0;
    if (o->password) {
        argv[argc++] = "AUTH";
        if (o->username)
            argv[argc++] = o->username;
        argv[argc++] = o->password;
    } else {
        argv[argc++] = "PING";
    }
    redisReply *r = NULL;
    if (qs_redis_client_call(c, argc, argv, &r, wakeable) < 0) {
        qs_redis_client_close(c);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (qs_redis_client_is_transient(r))
            rc = qs_redis_client_fail_reply(c, "redis unavailable", r);
        else if (o->password)
            rc = qs_redis_client_fail_reply(c, "redis AUTH failed", r);
        else
            rc = qs_redis_client_fail_reply(
                c, "redis refused the connection (a password may be needed)", r);
    }
    freeReplyObject(r);
    if (rc)
        qs_redis_client_close(c);
    return rc;
}

/* ------------------------------------------------------------ scripts */

void qs_redis_client_script_init(qs_redis_client_script *s, const char *text)
{
    s->text = text;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL);
    for (unsigned int i = 0; i < n && i < 20; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
}

int qs_redis_client_script_load(qs_redis_client *c, const qs_redis_client_script *s)
{
    const char *argv[] = {"SCRIPT", "LOAD", s->text};
    redisReply *r = NULL;
    if (qs_redis_client_call(c, 3, argv, &r, true) < 0)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR)
        rc = qs_redis_client_fail_reply(c, "redis unavailable: SCRIPT LOAD", r);
    freeReplyObject(r);
    return rc;
}

bool qs_redis_client_is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && !memcmp(r->str, "NOSCRIPT", 8);
}

int qs_redis_client_eval(qs_redis_client *c, const qs_redis_client_script *s, int nargs,
                         const char *const *args, redisReply **out)
{
    const char *argv[8];
    if (nargs + 2 > 8)
        qs_panic("qs_redis_client_eval: too many arguments");
    for (int i = 0; i < nargs; i++)
        argv[i + 2] = args[i];
    for (int full = 0; full < 2; full++) {
        argv[0] = full ? "EVAL" : "EVALSHA";
        argv[1] = full ? s->text : s->sha;
        if (qs_redis_client_call(c, nargs + 2, argv, out, false) < 0)
            return -1;
        if (!qs_redis_client_is_noscript(*out))
            break;
        if (!full) {
            freeReplyObject(*out);
            *out = NULL;
        }
    }
    return 0;
}
