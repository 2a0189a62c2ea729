/* SPDX-License-Identifier: MIT
 * pulsar_client.c - one connection to a Pulsar broker (pulsar_client.h): TCP or TLS,
 * blocking I/O on a non-blocking socket with poll() and deadlines, the handshake, the
 * topic lookup, requests and keep-alive.
 */
#include "transport/pulsar_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/err.h>
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

#define READ_CHUNK 65536
#define PING_IDLE_MS 10000 /* a link silent this long is probed with a PING */
#define MAX_REDIRECTS 8
#define DEFAULT_MAX_FRAME (5u << 20) /* the broker's default maxMessageSize */

/* ------------------------------------------------------------ the shared context */

int qs_pulsar_client_ctx_init(qs_pulsar_client_ctx *ctx, const qs_pulsar_settings *s, char **err)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->s = s;
    ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->wake_fd < 0) {
        *err = qs_xasprintf("transport pulsar: eventfd: %s", strerror(errno));
        return -1;
    }
    if (!s->tls)
        return 0;
    ctx->ssl_ctx = qs_tls_client_ctx("pulsar", s->source, s->line, s->tls_insecure, s->tls_ca, err);
    if (!ctx->ssl_ctx)
        goto fail;
    return 0;
fail:
    qs_pulsar_client_ctx_destroy(ctx);
    return -1;
}

void qs_pulsar_client_ctx_destroy(qs_pulsar_client_ctx *ctx)
{
    if (ctx->ssl_ctx)
        SSL_CTX_free(ctx->ssl_ctx);
    ctx->ssl_ctx = NULL;
    if (ctx->wake_fd >= 0)
        close(ctx->wake_fd);
    ctx->wake_fd = -1;
}

void qs_pulsar_client_ctx_wake(qs_pulsar_client_ctx *ctx)
{
    uint64_t one = 1;
    if (ctx->wake_fd >= 0 && write(ctx->wake_fd, &one, sizeof(one)) < 0)
        qs_debug("pulsar: eventfd write: %s", strerror(errno));
}

void qs_pulsar_client_ctx_sleep(const qs_pulsar_client_ctx *ctx, uint64_t ms)
{
    struct pollfd p = {ctx->wake_fd, POLLIN, 0};
    poll(&p, 1, (int)ms);
}

/* ------------------------------------------------------------ failures */

static int fail_kind(qs_pulsar_conn *c, qs_pulsar_fail kind, const char *option, const char *fmt,
                     va_list ap)
{
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    c->kind = kind;
    c->option = option;
    qs_pulsar_conn_close(c);
    return -1;
}

int qs_pulsar_conn_fail(qs_pulsar_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_kind(c, QS_PULSAR_FAIL_UNAVAILABLE, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

static int QS_PRINTF(4, 5)
    fail_as(qs_pulsar_conn *c, qs_pulsar_fail kind, const char *option, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_kind(c, kind, option, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_errno(qs_pulsar_conn *c, int e)
{
    return qs_pulsar_conn_fail(c, "pulsar unavailable: connection lost (%s)", strerror(e));
}

/* ------------------------------------------------------------ waiting and I/O */

/* Waits until fd is ready for `events` (or notify_fd readable): 1 ready, 2 notified, 0
 * deadline passed, -2 woken, -1 error. */
static int wait_fd(const qs_pulsar_client_ctx *ctx, int fd, short events, uint64_t deadline,
                   int notify_fd)
{
    for (;;) {
        uint64_t now = qs_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p[3] = {{fd, events, 0}, {ctx->wake_fd, POLLIN, 0}, {notify_fd, POLLIN, 0}};
        int n = poll(p, notify_fd >= 0 ? 3 : 2, (int)QS_MIN(deadline - now, (uint64_t)60000));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (p[1].revents)
            return -2;
        if (p[0].revents)
            return 1;
        if (notify_fd >= 0 && p[2].revents)
            return 2;
    }
}

static int wait_result(qs_pulsar_conn *c, int w)
{
    if (w == 0)
        return qs_pulsar_conn_fail(c, "pulsar unavailable: timeout (no answer from %s:%d in time)",
                                   c->host, c->port);
    if (w == -2)
        return qs_pulsar_conn_fail(c, "pulsar unavailable: the hub is shutting down");
    return qs_pulsar_conn_fail(c, "pulsar unavailable: poll: %s", strerror(errno));
}

static int ssl_fail(qs_pulsar_conn *c, int ssl_err, int ret, const char *what)
{
    unsigned long e = ERR_get_error();
    if (e) {
        char buf[160];
        ERR_error_string_n(e, buf, sizeof(buf));
        return qs_pulsar_conn_fail(c, "pulsar unavailable: TLS %s: %s", what, buf);
    }
    if (ssl_err == SSL_ERROR_ZERO_RETURN || (ssl_err == SSL_ERROR_SYSCALL && (ret == 0 || !errno)))
        return qs_pulsar_conn_fail(c, "pulsar unavailable: connection closed by the broker");
    return fail_errno(c, errno);
}

/* One attempt to move bytes: > 0 moved, 0 must wait for *ev, -1 failed. */
static ssize_t conn_io(qs_pulsar_conn *c, void *rbuf, const void *wbuf, size_t n, short *ev)
{
    if (c->ssl) {
        ERR_clear_error();
        errno = 0;
        int len = (int)QS_MIN(n, (size_t)1 << 30);
        int r = rbuf ? SSL_read(c->ssl, rbuf, len) : SSL_write(c->ssl, wbuf, len);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            *ev = POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
            *ev = POLLOUT;
        else
            return ssl_fail(c, e, r, rbuf ? "read" : "write");
        return 0;
    }
    for (;;) {
        ssize_t r = rbuf ? recv(c->fd, rbuf, n, 0) : send(c->fd, wbuf, n, MSG_NOSIGNAL);
        if (r > 0)
            return r;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *ev = rbuf ? POLLIN : POLLOUT;
            return 0;
        }
        if (r == 0 && rbuf)
            return qs_pulsar_conn_fail(c, "pulsar unavailable: connection closed by the broker");
        return fail_errno(c, r == 0 ? EPIPE : errno);
    }
}

int qs_pulsar_conn_send(qs_pulsar_conn *c, const void *p, size_t n, uint64_t deadline)
{
    const char *b = p;
    if (c->fd < 0)
        return qs_pulsar_conn_fail(c, "pulsar unavailable: not connected");
    while (n) {
        short ev = POLLOUT;
        ssize_t r = conn_io(c, NULL, b, n, &ev);
        if (r < 0)
            return -1;
        if (r > 0) {
            b += r;
            n -= (size_t)r;
            continue;
        }
        int w = wait_fd(c->ctx, c->fd, ev, deadline, -1);
        if (w != 1)
            return wait_result(c, w);
    }
    return 0;
}

int qs_pulsar_conn_send_command(qs_pulsar_conn *c, const Qspulsar__BaseCommand *cmd,
                                uint64_t deadline)
{
    qs_buf b = QS_BUF_INIT;
    qs_pulsar_frame_command(&b, cmd);
    int rc = qs_pulsar_conn_send(c, b.p, b.len, deadline);
    qs_buf_free(&b);
    return rc;
}

static int send_simple(qs_pulsar_conn *c, int type, uint64_t deadline)
{
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Ping ping = QSPULSAR__PING__INIT;
    Qspulsar__Pong pong = QSPULSAR__PONG__INIT;
    cmd.type = type;
    if (type == QS_PULSAR_PING)
        cmd.ping = &ping;
    else
        cmd.pong = &pong;
    return qs_pulsar_conn_send_command(c, &cmd, deadline);
}

/* Reads the token to send (the option's, or the file's, trimmed); NULL when none. */
static char *read_token(qs_pulsar_conn *c)
{
    const qs_pulsar_settings *s = c->ctx->s;
    if (s->token)
        return qs_xstrdup(s->token);
    if (!s->token_file)
        return NULL;
    FILE *f = fopen(s->token_file, "r");
    if (!f) {
        fail_as(c, QS_PULSAR_FAIL_AUTH, "token_file", "pulsar: token_file: cannot read \"%s\": %s",
                s->token_file, strerror(errno));
        return NULL;
    }
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    size_t len = strlen(p);
    while (len &&
           (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (!len) {
        fail_as(c, QS_PULSAR_FAIL_AUTH, "token_file", "pulsar: token_file: \"%s\" is empty",
                s->token_file);
        return NULL;
    }
    return qs_xstrndup(p, len);
}

static int answer_challenge(qs_pulsar_conn *c, uint64_t deadline)
{
    char *token = read_token(c);
    if (!token && c->fd < 0)
        return -1;
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__AuthResponse ar = QSPULSAR__AUTH_RESPONSE__INIT;
    Qspulsar__AuthData ad = QSPULSAR__AUTH_DATA__INIT;
    cmd.type = QS_PULSAR_AUTH_RESPONSE;
    cmd.auth_response = &ar;
    ar.client_version = "Quicksilver " QS_VERSION;
    ar.has_protocol_version = true;
    ar.protocol_version = QS_PULSAR_PROTOCOL_VERSION;
    ar.response = &ad;
    ad.auth_method_name = token ? "token" : "none";
    ad.has_auth_data = true;
    ad.auth_data.data = (uint8_t *)(token ? token : "");
    ad.auth_data.len = token ? strlen(token) : 0;
    int rc = qs_pulsar_conn_send_command(c, &cmd, deadline);
    free(token);
    return rc;
}

int qs_pulsar_conn_next(qs_pulsar_conn *c, uint64_t deadline, int notify_fd, qs_pulsar_frame **f)
{
    qs_pulsar_frame_clear(&c->frame);
    uint64_t timeout = c->ctx->s->timeout_ms;
    for (;;) {
        if (c->fd < 0)
            return qs_pulsar_conn_fail(c, "pulsar unavailable: not connected");
        const char *why = NULL;
        ssize_t used =
            qs_pulsar_frame_parse(c->in + c->off, c->len - c->off, c->max_frame, &c->frame, &why);
        if (used < 0)
            return qs_pulsar_conn_fail(c, "pulsar protocol error from %s:%d: %s", c->host, c->port,
                                       why);
        if (used > 0) {
            c->off += (size_t)used;
            int type = c->frame.cmd->type;
            if (type == QS_PULSAR_PING) {
                qs_pulsar_frame_clear(&c->frame);
                if (send_simple(c, QS_PULSAR_PONG, qs_now_ms() + timeout) < 0)
                    return -1;
                continue;
            }
            if (type == QS_PULSAR_PONG) {
                qs_pulsar_frame_clear(&c->frame);
                continue;
            }
            if (type == QS_PULSAR_AUTH_CHALLENGE) {
                qs_pulsar_frame_clear(&c->frame);
                if (answer_challenge(c, qs_now_ms() + timeout) < 0)
                    return -1;
                continue;
            }
            *f = &c->frame;
            return 1;
        }
        /* Keep-alive: a silent link gets a PING, and fails when that goes unanswered. */
        uint64_t now = qs_now_ms();
        if (c->ping_ms && now - c->ping_ms >= timeout)
            return qs_pulsar_conn_fail(c,
                                       "pulsar unavailable: %s:%d does not answer (no PONG in "
                                       "%" PRIu64 " ms)",
                                       c->host, c->port, timeout);
        if (!c->ping_ms && now - c->last_rx_ms >= PING_IDLE_MS) {
            if (send_simple(c, QS_PULSAR_PING, now + timeout) < 0)
                return -1;
            c->ping_ms = now;
        }
        /* More bytes. */
        if (c->off == c->len)
            c->off = c->len = 0;
        if (c->cap - c->len < READ_CHUNK) {
            if (c->off) {
                memmove(c->in, c->in + c->off, c->len - c->off);
                c->len -= c->off;
                c->off = 0;
            }
            if (c->cap - c->len < READ_CHUNK) {
                c->cap = c->cap ? c->cap * 2 : 2 * READ_CHUNK;
                c->in = qs_xrealloc(c->in, c->cap);
            }
        }
        short ev = POLLIN;
        ssize_t r = conn_io(c, c->in + c->len, NULL, c->cap - c->len, &ev);
        if (r < 0)
            return -1;
        if (r > 0) {
            c->len += (size_t)r;
            c->last_rx_ms = qs_now_ms();
            c->ping_ms = 0;
            continue;
        }
        if (qs_now_ms() >= deadline)
            return 0;
        uint64_t until =
            QS_MIN(deadline, c->ping_ms ? c->ping_ms + timeout : c->last_rx_ms + PING_IDLE_MS);
        if (until <= qs_now_ms())
            until = qs_now_ms() + 1;
        int w = wait_fd(c->ctx, c->fd, ev, until, notify_fd);
        if (w == 2)
            return 0;
        if (w < 0)
            return wait_result(c, w);
    }
}

static uint64_t answer_request_id(const Qspulsar__BaseCommand *cmd, bool *has)
{
    *has = true;
    switch (cmd->type) {
    case QS_PULSAR_SUCCESS:
        if (cmd->success)
            return cmd->success->request_id;
        break;
    case QS_PULSAR_ERROR:
        if (cmd->error)
            return cmd->error->request_id;
        break;
    case QS_PULSAR_PRODUCER_SUCCESS:
        if (cmd->producer_success)
            return cmd->producer_success->request_id;
        break;
    case QS_PULSAR_LOOKUP_RESPONSE:
        if (cmd->lookup_topic_response)
            return cmd->lookup_topic_response->request_id;
        break;
    case QS_PULSAR_GET_LAST_MESSAGE_ID_RESPONSE:
        if (cmd->get_last_message_id_response)
            return cmd->get_last_message_id_response->request_id;
        break;
    case QS_PULSAR_PARTITIONED_METADATA_RESPONSE:
        if (cmd->partition_metadata_response)
            return cmd->partition_metadata_response->request_id;
        break;
    default:
        break;
    }
    *has = false;
    return 0;
}

static const char *error_option(int code)
{
    switch (code) {
    case QS_PULSAR_ERR_AUTHENTICATION:
    case QS_PULSAR_ERR_AUTHORIZATION:
        return "token";
    case QS_PULSAR_ERR_TOPIC_NOT_FOUND:
    case QS_PULSAR_ERR_INVALID_TOPIC_NAME:
    case QS_PULSAR_ERR_TOPIC_TERMINATED:
    case QS_PULSAR_ERR_NOT_ALLOWED:
        return "topic";
    case QS_PULSAR_ERR_CONSUMER_BUSY:
        return "subscription_name";
    default:
        return NULL;
    }
}

/* The kind of failure a refusal with this error code is. */
static qs_pulsar_fail error_kind(int code)
{
    if (code == QS_PULSAR_ERR_AUTHENTICATION || code == QS_PULSAR_ERR_AUTHORIZATION)
        return QS_PULSAR_FAIL_AUTH;
    if (code == QS_PULSAR_ERR_SERVICE_NOT_READY || code == QS_PULSAR_ERR_TOO_MANY_REQUESTS ||
        code <= 2)
        return QS_PULSAR_FAIL_UNAVAILABLE;
    return QS_PULSAR_FAIL_REFUSED;
}

int qs_pulsar_conn_request(qs_pulsar_conn *c, const Qspulsar__BaseCommand *cmd, uint64_t request_id,
                           const char *what, qs_pulsar_frame **f)
{
    uint64_t deadline = qs_now_ms() + c->ctx->s->timeout_ms;
    if (qs_pulsar_conn_send_command(c, cmd, deadline) < 0)
        return -1;
    for (;;) {
        int r = qs_pulsar_conn_next(c, deadline, -1, f);
        if (r < 0)
            return -1;
        if (r == 0)
            return qs_pulsar_conn_fail(c,
                                       "pulsar unavailable: %s: no answer from %s:%d within "
                                       "%" PRIu64 " ms",
                                       what, c->host, c->port, c->ctx->s->timeout_ms);
        bool has;
        uint64_t id = answer_request_id((*f)->cmd, &has);
        if (!has || id != request_id)
            continue;
        if ((*f)->cmd->type == QS_PULSAR_ERROR) {
            const Qspulsar__Error *e = (*f)->cmd->error;
            char nb[24];
            snprintf(c->err, sizeof(c->err), "pulsar refused %s: %s: %s", what,
                     qs_pulsar_error_name(e->error, nb), e->message ? e->message : "");
            c->error_code = e->error;
            c->option = error_option(e->error);
            c->kind = error_kind(e->error);
            return -1;
        }
        if ((*f)->cmd->type == QS_PULSAR_PRODUCER_SUCCESS && (*f)->cmd->producer_success &&
            (*f)->cmd->producer_success->has_producer_ready &&
            !(*f)->cmd->producer_success->producer_ready)
            continue; /* queued for exclusive access: the next answer is the real one */
        return 1;
    }
}

uint64_t qs_pulsar_conn_request_id(qs_pulsar_conn *c)
{
    return ++c->next_request;
}

int qs_pulsar_conn_partitions(qs_pulsar_conn *c, const char *topic, uint32_t *partitions)
{
    Qspulsar__BaseCommand cmd;
    Qspulsar__PartitionedTopicMetadata pm;
    uint64_t id = qs_pulsar_conn_request_id(c);
    qs_pulsar_partitions_request(&cmd, &pm, topic, id);
    qs_pulsar_frame *f;
    if (qs_pulsar_conn_request(c, &cmd, id, "the request for the topic's partitions", &f) < 0)
        return -1;
    const Qspulsar__PartitionedTopicMetadataResponse *r = f->cmd->partition_metadata_response;
    int code;
    if (qs_pulsar_partitions_of(r, partitions, &code) >= 0)
        return 0;
    char nb[24];
    snprintf(c->err, sizeof(c->err),
             "pulsar refused the request for the partitions of \"%s\": %s: %s", topic,
             qs_pulsar_error_name(code, nb), r && r->message ? r->message : "");
    c->error_code = code;
    c->option = error_option(code);
    c->kind = error_kind(code);
    return -1;
}

int qs_pulsar_open_when_ready(qs_pulsar_conn *c, int (*open)(void *arg), void *arg,
                              uint64_t deadline)
{
    for (;;) {
        if (open(arg) == 0)
            return 0;
        /* A refusal the broker gave (error_code) that is of the "unavailable" kind: it is
         * up, but cannot serve yet. Unreachable brokers and other refusals stop the start. */
        bool not_ready = c->error_code >= 0 && c->kind == QS_PULSAR_FAIL_UNAVAILABLE;
        if (!not_ready || qs_now_ms() + 250 >= deadline)
            return -1;
        qs_info("pulsar: %s; trying again", c->err);
        qs_pulsar_client_ctx_sleep(c->ctx, 250);
    }
}

/* ------------------------------------------------------------ connections */

void qs_pulsar_conn_init(qs_pulsar_conn *c, const qs_pulsar_client_ctx *ctx)
{
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
    c->fd = -1;
    c->error_code = -1;
}

void qs_pulsar_conn_close(qs_pulsar_conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    qs_pulsar_frame_clear(&c->frame);
    free(c->in);
    c->in = NULL;
    c->len = c->off = c->cap = 0;
}

void qs_pulsar_conn_free(qs_pulsar_conn *c)
{
    qs_pulsar_conn_close(c);
    free(c->host);
    c->host = NULL;
}

bool qs_pulsar_conn_is_open(const qs_pulsar_conn *c)
{
    return c->fd >= 0;
}

static int tls_handshake(qs_pulsar_conn *c, uint64_t deadline)
{
    const qs_pulsar_settings *s = c->ctx->s;
    c->ssl = SSL_new(c->ctx->ssl_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd))
        return fail_as(c, QS_PULSAR_FAIL_TLS, "tls_ca",
                       "pulsar TLS handshake failed: cannot set "
                       "up TLS");
    qs_tls_client_host(c->ssl, c->host, s->tls_insecure);
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
                return fail_as(c, QS_PULSAR_FAIL_TLS, "tls_ca",
                               "pulsar TLS handshake with %s:%d failed: %s (see tls_ca)", c->host,
                               c->port, X509_verify_cert_error_string(v));
            unsigned long ec = ERR_get_error();
            const char *why = ec ? ERR_reason_error_string(ec) : NULL;
            return fail_as(c, QS_PULSAR_FAIL_TLS, "tls_ca",
                           "pulsar TLS handshake with %s:%d failed: %s", c->host, c->port,
                           why ? why : "connection closed (is the port a TLS port?)");
        }
        int w = wait_fd(c->ctx, c->fd, ev, deadline, -1);
        if (w != 1)
            return wait_result(c, w);
    }
}

static int tcp_connect(qs_pulsar_conn *c, uint64_t deadline)
{
    char port[8];
    snprintf(port, sizeof(port), "%d", c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(c->host, port, &hints, &res);
    if (gai)
        return qs_pulsar_conn_fail(c, "pulsar unavailable: cannot resolve %s (%s)", c->host,
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
        int w = wait_fd(c->ctx, fd, POLLOUT, deadline, -1);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (w != 1 || soerr) {
            close(fd);
            if (w == -2) {
                freeaddrinfo(res);
                return wait_result(c, w);
            }
            last = w == 0 ? ETIMEDOUT : soerr ? soerr : errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
        c->fd = fd;
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return qs_pulsar_conn_fail(c, "pulsar unavailable: cannot connect to %s:%d (%s)", c->host,
                                   c->port, strerror(last));
    return 0;
}

/* CONNECT, then CONNECTED (answering auth challenges on the way). */
static int handshake(qs_pulsar_conn *c, const char *proxy_to, uint64_t deadline)
{
    char *token = read_token(c);
    if (!token && c->fd < 0)
        return -1;
    Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
    Qspulsar__Connect cn = QSPULSAR__CONNECT__INIT;
    cmd.type = QS_PULSAR_CONNECT;
    cmd.connect = &cn;
    cn.client_version = "Quicksilver " QS_VERSION;
    cn.has_protocol_version = true;
    cn.protocol_version = QS_PULSAR_PROTOCOL_VERSION;
    if (token) {
        cn.auth_method_name = "token";
        cn.has_auth_data = true;
        cn.auth_data.data = (uint8_t *)token;
        cn.auth_data.len = strlen(token);
    }
    cn.proxy_to_broker_url = (char *)proxy_to;
    int rc = qs_pulsar_conn_send_command(c, &cmd, deadline);
    free(token);
    if (rc < 0)
        return -1;
    for (;;) {
        qs_pulsar_frame *f;
        int r = qs_pulsar_conn_next(c, deadline, -1, &f);
        if (r < 0) {
            if (c->kind == QS_PULSAR_FAIL_UNAVAILABLE && strstr(c->err, "closed by the broker") &&
                (c->ctx->s->token || c->ctx->s->token_file))
                return fail_as(c, QS_PULSAR_FAIL_AUTH, c->ctx->s->token ? "token" : "token_file",
                               "pulsar refused the connection to %s:%d: it closed it after "
                               "CONNECT (the token was probably refused)",
                               c->host, c->port);
            return -1;
        }
        if (r == 0)
            return qs_pulsar_conn_fail(c, "pulsar unavailable: no CONNECTED from %s:%d in time",
                                       c->host, c->port);
        if (f->cmd->type == QS_PULSAR_CONNECTED) {
            const Qspulsar__Connected *ok = f->cmd->connected;
            c->max_frame = ok && ok->has_max_message_size && ok->max_message_size > 0
                               ? (size_t)ok->max_message_size
                               : DEFAULT_MAX_FRAME;
            return 0;
        }
        if (f->cmd->type == QS_PULSAR_ERROR && f->cmd->error) {
            char nb[24];
            int code = f->cmd->error->error;
            const char *opt =
                code == QS_PULSAR_ERR_AUTHENTICATION || code == QS_PULSAR_ERR_AUTHORIZATION
                    ? (c->ctx->s->token_file ? "token_file" : "token")
                    : NULL;
            return fail_as(c, opt ? QS_PULSAR_FAIL_AUTH : QS_PULSAR_FAIL_UNAVAILABLE, opt,
                           "pulsar refused the connection to %s:%d: %s: %s", c->host, c->port,
                           qs_pulsar_error_name(code, nb),
                           f->cmd->error->message ? f->cmd->error->message : "");
        }
    }
}

/* Splits "pulsar://host:port" or "pulsar+ssl://host:port"; false when malformed. */
static bool parse_broker_url(const char *url, char **host, int *port)
{
    const char *p = strstr(url, "://");
    if (!p)
        return false;
    p += 3;
    const char *end = p + strcspn(p, "/?");
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return false;
        colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
        *host = qs_xstrndup(p + 1, (size_t)(close - p - 1));
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        *host = qs_xstrndup(p, (size_t)((colon ? colon : end) - p));
    }
    *port = colon ? atoi(colon + 1) : QS_PULSAR_DEFAULT_PORT;
    if (!**host || *port <= 0 || *port > 65535) {
        free(*host);
        return false;
    }
    return true;
}

static int connect_to(qs_pulsar_conn *c, const char *host, int port, const char *proxy_to)
{
    qs_pulsar_conn_close(c);
    if (c->host != host) {
        free(c->host);
        c->host = qs_xstrdup(host);
    }
    c->port = port;
    c->max_frame = DEFAULT_MAX_FRAME;
    c->last_rx_ms = qs_now_ms();
    c->ping_ms = 0;
    c->error_code = -1;
    c->option = NULL;
    uint64_t deadline = qs_now_ms() + c->ctx->s->timeout_ms;
    if (tcp_connect(c, deadline) < 0)
        return -1;
    if (c->ctx->ssl_ctx && tls_handshake(c, deadline) < 0)
        return -1;
    return handshake(c, proxy_to, deadline);
}

int qs_pulsar_conn_open(qs_pulsar_conn *c, const char *topic)
{
    const qs_pulsar_settings *s = c->ctx->s;
    if (connect_to(c, s->host, s->port, NULL) < 0)
        return -1;
    bool authoritative = false;
    for (int hop = 0; hop < MAX_REDIRECTS; hop++) {
        Qspulsar__BaseCommand cmd = QSPULSAR__BASE_COMMAND__INIT;
        Qspulsar__LookupTopic lk = QSPULSAR__LOOKUP_TOPIC__INIT;
        cmd.type = QS_PULSAR_LOOKUP;
        cmd.lookup_topic = &lk;
        lk.topic = (char *)topic;
        lk.request_id = qs_pulsar_conn_request_id(c);
        lk.has_authoritative = true;
        lk.authoritative = authoritative;
        qs_pulsar_frame *f;
        if (qs_pulsar_conn_request(c, &cmd, lk.request_id, "the topic lookup", &f) < 0) {
            if (c->fd >= 0)
                qs_pulsar_conn_close(c);
            return -1;
        }
        const Qspulsar__LookupTopicResponse *r = f->cmd->lookup_topic_response;
        int type = r->has_response ? r->response : QS_PULSAR_LOOKUP_FAILED;
        if (type == QS_PULSAR_LOOKUP_FAILED) {
            char nb[24];
            int code = r->has_error ? r->error : 0;
            fail_as(c,
                    code == QS_PULSAR_ERR_AUTHENTICATION || code == QS_PULSAR_ERR_AUTHORIZATION
                        ? QS_PULSAR_FAIL_AUTH
                    : code == QS_PULSAR_ERR_SERVICE_NOT_READY || code <= 2
                        ? QS_PULSAR_FAIL_UNAVAILABLE
                        : QS_PULSAR_FAIL_REFUSED,
                    error_option(code), "pulsar refused the lookup of topic \"%s\": %s: %s", topic,
                    qs_pulsar_error_name(code, nb), r->message ? r->message : "");
            c->error_code = code;
            return -1;
        }
        const char *url = s->tls ? r->broker_service_url_tls : r->broker_service_url;
        char *host = NULL;
        int port = 0;
        if (!url || !parse_broker_url(url, &host, &port))
            return qs_pulsar_conn_fail(c,
                                       "pulsar lookup of \"%s\" named no usable broker URL "
                                       "(%s)",
                                       topic, url ? url : "none");
        bool proxy = r->has_proxy_through_service_url && r->proxy_through_service_url;
        authoritative = r->has_authoritative && r->authoritative;
        bool same = !strcmp(host, c->host) && port == c->port;
        int rc = 0;
        if (type == QS_PULSAR_LOOKUP_CONNECT) {
            if (proxy) {
                char *target = qs_xasprintf("%s:%d", host, port);
                rc = connect_to(c, s->host, s->port, target);
                free(target);
            } else if (!same) {
                rc = connect_to(c, host, port, NULL);
            }
            free(host);
            return rc;
        }
        /* A redirect: ask the named broker (or, through a proxy, the service URL again). */
        if (!proxy && !same)
            rc = connect_to(c, host, port, NULL);
        free(host);
        if (rc < 0)
            return -1;
    }
    return qs_pulsar_conn_fail(c, "pulsar lookup of \"%s\": more than %d redirects", topic,
                               MAX_REDIRECTS);
}
