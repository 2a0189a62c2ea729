/* SPDX-License-Identifier: MIT
 * sock.c - connections as byte streams: accepting, TLS through a memory-less BIO, choosing
 * the protocol, writes with and without TLS.
 *
 * TLS goes through a BIO of our own rather than a socket BIO: OpenSSL reads the records of
 * the current read straight from the worker's read buffer and writes records into the
 * socket's `cipher` buffer, which is handed to the kernel as a whole. Once a TLS 1.3
 * handshake is over, the connection leaves OpenSSL: its SSL is freed and the hub's record
 * layer (tls13.h) opens records in place in the read buffer and seals them into `cipher`.
 * Nothing stays allocated while a connection is idle but its keys (or, for TLS 1.2,
 * OpenSSL's session state).
 */
#include "sock.h"

#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "log.h"
#include "metrics.h"

/* Connections accepted beyond max_connections for health checks and metrics alone (the
 * limit and this reserve count every worker's connections). */
#define MONITORING_RESERVE 16
/* Plaintext encrypted per record: the most a TLS record carries. */
#define RECORD_PLAINTEXT 16384
/* Most buffers one write may hold (a stream's batch and a pending head). */
#define MAX_HELD 66
/* Handshakes after which the free pages they leave are given back, once none has ended for
 * a while (see trim_after_handshakes). */
#define TRIM_AFTER_HANDSHAKES 256
#define TRIM_QUIET_MS 1000

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const char plain_on_tls[] = "HTTP/1.0 400 Bad Request\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Connection: close\r\n\r\n"
                                   "Client sent an HTTP request to an HTTPS server.\n";

typedef struct listener {
    uv_tcp_t tcp;
    qs_socks *ss;
    bool tls, h1, h2c;
} listener;

struct qs_socks {
    qs_ctx *ctx;
    qs_tls *tls;
    qs_sock_protocols protocols;
    listener **listeners;
    size_t n_listeners;
    qs_list starting; /* handshakes and first bytes, oldest first */
    uint64_t n_open;
    char *plaintext;           /* decrypted records land here, one read at a time */
    char *record;              /* plaintext gathered into one record before it is encrypted */
    qs_tls13_ciphers *ciphers; /* the AEAD contexts of the hub's record layer */
};

struct sock_tls {
    SSL *ssl;                /* until a TLS 1.3 handshake is over (then rl), or for good */
    qs_tls_secrets *secrets; /* during the handshake */
    qs_tls13 *rl;            /* after a TLS 1.3 handshake: the hub's record layer */
    qs_buf partial;          /* rl: the start of a record whose end has not arrived */
    bool seen;               /* a first read arrived */
    bool handshaken;
    char *in; /* the ciphertext of the read being handled (in the worker's buffer) */
    size_t in_len;
    qs_buf cipher;   /* records not handed to the kernel yet */
    qs_buf inflight; /* records of the write in flight */
    uv_buf_t *held;  /* plaintext queued while records were in flight (its buffers, not
                        copied: they stay valid until `written`) */
    unsigned n_held;
    bool writing; /* a uv_write of `inflight` is in flight */
    bool notify;  /* `written` is owed to the protocol when the records are out */
    bool fin_due; /* a shutdown waits for the records in flight, then close_notify and FIN */
};

static void sock_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* ------------------------------------------------------------- BIO */

static BIO_METHOD *bio_method;
static uv_once_t bio_once = UV_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
    struct sock_tls *t = BIO_get_data(b);
    qs_buf_append(&t->cipher, data, (size_t)len);
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct sock_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t->in_len) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = QS_MIN((size_t)len, t->in_len);
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    QS_UNUSED(b);
    QS_UNUSED(num);
    QS_UNUSED(ptr);
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_bio_method(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "quicksilver");
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    BIO_meth_set_create(bio_method, bio_create);
}

/* ---------------------------------------------------------- lifetime */

static void tls_free(struct sock_tls *t)
{
    if (!t)
        return;
    free(t->held);
    SSL_free(t->ssl);
    if (t->secrets) {
        OPENSSL_cleanse(t->secrets, sizeof(*t->secrets));
        free(t->secrets);
    }
    if (t->rl) {
        qs_tls13_wipe(t->rl);
        free(t->rl);
    }
    qs_buf_free(&t->partial);
    qs_buf_free(&t->cipher);
    qs_buf_free(&t->inflight);
    free(t);
}

static void on_close(uv_handle_t *h)
{
    qs_sock *s = qs_container_of((uv_tcp_t *)h, qs_sock, tcp);
    s->ss->n_open--;
    qs_metric_sub(&qs_metrics_global.connections_open, 1);
    if (s->events)
        s->events->closed(s);
    tls_free(s->tls);
    free(s->wreq);
    free(s->early);
    free(s);
}

void qs_sock_close(qs_sock *s)
{
    if (s->closing)
        return;
    s->closing = true;
    qs_list_unlink(&s->start_node);
    uv_close((uv_handle_t *)&s->tcp, on_close);
}

/* ------------------------------------------------------------ writes */

static void tls_on_written(uv_write_t *req, int status);
static int tls_send_queued(qs_sock *s);
static void send_fin(qs_sock *s);

/* Hands what `cipher` holds to the kernel: at once as far as it takes it, the rest in a
 * queued write. Returns a negative libuv error when the connection failed. */
static int tls_flush(qs_sock *s)
{
    struct sock_tls *t = s->tls;
    if (t->writing || !t->cipher.len)
        return 0;
    uv_buf_t b = uv_buf_init(t->cipher.p, (unsigned)t->cipher.len);
    int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0)
        return n;
    if ((size_t)n < t->cipher.len) {
        /* The rest leaves in a queued write; `cipher` collects what is written meanwhile. */
        memmove(t->cipher.p, t->cipher.p + n, t->cipher.len - (size_t)n);
        t->cipher.len -= (size_t)n;
        return tls_send_queued(s);
    }
    qs_buf_free(&t->cipher); /* an idle connection keeps nothing */
    return 0;
}

/* Seals one record of application data. */
static int seal(qs_sock *s, const char *p, size_t n)
{
    struct sock_tls *t = s->tls;
    if (t->rl)
        return qs_tls13_seal(t->rl, s->ss->ciphers, QS_TLS13_APPLICATION_DATA, p, n, &t->cipher) < 0
                   ? UV_EPROTO
                   : 0;
    if (SSL_write(t->ssl, p, (int)n) <= 0) {
        ERR_clear_error();
        return UV_EPROTO;
    }
    return 0;
}

/* Encrypts iov into records of up to 16 KiB of plaintext each: many small buffers share a
 * record. Returns the bytes encrypted, or a negative libuv error. */
static int tls_encrypt(qs_sock *s, const uv_buf_t *iov, unsigned n)
{
    char *record = s->ss->record;
    size_t total = 0, fill = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *p = iov[i].base;
        size_t left = iov[i].len;
        while (left) {
            size_t take = QS_MIN(left, (size_t)RECORD_PLAINTEXT - fill);
            memcpy(record + fill, p, take);
            fill += take;
            p += take;
            left -= take;
            if (fill == RECORD_PLAINTEXT) {
                if (seal(s, record, fill) < 0)
                    return UV_EPROTO;
                total += fill;
                fill = 0;
            }
        }
    }
    if (fill) {
        if (seal(s, record, fill) < 0)
            return UV_EPROTO;
        total += fill;
    }
    return (int)total;
}

/* Hands every record of `cipher` to a queued write (whose completion tells the protocol). */
static int tls_send_queued(qs_sock *s)
{
    struct sock_tls *t = s->tls;
    qs_buf_free(&t->inflight);
    t->inflight = t->cipher;
    t->cipher = QS_BUF_INIT;
    if (!s->wreq)
        s->wreq = qs_xmalloc(sizeof(*s->wreq));
    s->wreq->data = s;
    uv_buf_t b = uv_buf_init(t->inflight.p ? t->inflight.p : (char *)"", (unsigned)t->inflight.len);
    int rc = uv_write(s->wreq, (uv_stream_t *)&s->tcp, &b, 1, tls_on_written);
    if (rc == 0)
        t->writing = true;
    return rc;
}

static void tls_on_written(uv_write_t *req, int status)
{
    qs_sock *s = req->data;
    struct sock_tls *t = s->tls;
    t->writing = false;
    qs_buf_free(&t->inflight);
    if (s->closing)
        return;
    int rc = status;
    if (rc == 0 && t->n_held) {
        /* Plaintext queued meanwhile: its records go now, and the protocol hears of them
         * once they are out. */
        rc = tls_encrypt(s, t->held, t->n_held);
        free(t->held);
        t->held = NULL;
        t->n_held = 0;
        if (rc >= 0)
            rc = tls_send_queued(s);
        if (rc == 0)
            return;
    }
    if (rc == 0)
        rc = tls_flush(s); /* records made meanwhile (handshake, key updates) */
    if (rc < 0) {
        if (s->events)
            s->events->ended(s, rc);
        else
            qs_sock_close(s);
        return;
    }
    if (t->fin_due && !t->writing) {
        t->fin_due = false;
        send_fin(s);
        if (s->closing)
            return;
    }
    if (t->notify && !t->writing) {
        t->notify = false;
        s->events->written(s, 0);
    }
}

static void plain_on_written(uv_write_t *req, int status)
{
    qs_sock *s = req->data;
    if (!s->closing)
        s->events->written(s, status);
}

int qs_sock_try_write(qs_sock *s, const uv_buf_t *iov, unsigned n)
{
    if (s->closing)
        return UV_ECANCELED;
    if (!s->tls) {
        int w = uv_try_write((uv_stream_t *)&s->tcp, iov, n);
        return w == UV_EAGAIN ? 0 : w;
    }
    struct sock_tls *t = s->tls;
    if (t->writing || t->cipher.len)
        return 0;
    int total = tls_encrypt(s, iov, n);
    if (total < 0)
        return total;
    int rc = tls_flush(s);
    return rc < 0 ? rc : total;
}

int qs_sock_write(qs_sock *s, const uv_buf_t *iov, unsigned n)
{
    if (s->closing)
        return UV_ECANCELED;
    if (!s->wreq)
        s->wreq = qs_xmalloc(sizeof(*s->wreq));
    s->wreq->data = s;
    if (!s->tls)
        return uv_write(s->wreq, (uv_stream_t *)&s->tcp, iov, n, plain_on_written);
    struct sock_tls *t = s->tls;
    if (n > MAX_HELD || t->notify)
        return UV_EINVAL;
    t->notify = true;
    if (t->writing) {
        t->held = qs_xmalloc(n * sizeof(*iov));
        memcpy(t->held, iov, n * sizeof(*iov));
        t->n_held = n;
        return 0;
    }
    /* The socket was full a moment ago: no use trying it first. */
    int rc = tls_encrypt(s, iov, n);
    if (rc >= 0)
        rc = tls_send_queued(s);
    if (rc < 0)
        t->notify = false;
    return rc < 0 ? rc : 0;
}

/* Seals an alert (level 1 warning, 2 fatal) after the records sealed so far. */
static void send_alert(qs_sock *s, uint8_t level, uint8_t description)
{
    struct sock_tls *t = s->tls;
    if (t->rl) {
        const uint8_t alert[2] = {level, description};
        qs_tls13_seal(t->rl, s->ss->ciphers, QS_TLS13_ALERT, alert, sizeof(alert), &t->cipher);
    } else if (description == QS_TLS13_CLOSE_NOTIFY) {
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    QS_UNUSED(status);
    free(req);
}

/* FIN after everything queued (libuv orders it after the writes in flight). */
static void send_fin(qs_sock *s)
{
    if (s->tls) {
        send_alert(s, 1, QS_TLS13_CLOSE_NOTIFY); /* the last record */
        if (tls_flush(s) < 0) {
            qs_sock_close(s);
            return;
        }
    }
    uv_shutdown_t *req = qs_xmalloc(sizeof(*req));
    if (uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown) < 0) {
        free(req);
        qs_sock_close(s);
    }
}

void qs_sock_shutdown(qs_sock *s)
{
    if (s->closing)
        return;
    if (s->tls && (s->tls->writing || s->tls->n_held)) {
        /* Records are in flight: close_notify must follow them, not go with a write that a
         * shutdown would refuse. */
        s->tls->fin_due = true;
        return;
    }
    send_fin(s);
}

/* A subscriber whose network vanished sends no FIN: without help the kernel keeps
 * retransmitting for many minutes and the subscriber stays "active". Unacknowledged data
 * (the heartbeat, at the latest) now aborts the connection after dispatch_timeout, and
 * keep-alive probes do the same when heartbeats are off. */
void qs_sock_watch_peer(qs_sock *s)
{
    const qs_config *cfg = s->ss->ctx->hub->cfg;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0)
        return;
    /* Twice dispatch_timeout: a write stuck in the hub is dropped by the hub's own check
     * first (and counted as such); the kernel's limit is for bytes it already took. */
    unsigned user_timeout =
        (unsigned)(cfg->dispatch_timeout_ms ? 2 * cfg->dispatch_timeout_ms : 30000);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
    int on = 1;
    int idle = cfg->heartbeat_ms ? (int)QS_MAX(cfg->heartbeat_ms / 1000, (uint64_t)1) : 60;
    int interval = (int)QS_MAX(user_timeout / 3000, 1u), count = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

/* -------------------------------------------------- choosing a protocol */

static void start(qs_sock *s, bool h2, const char *initial, size_t len)
{
    qs_socks *ss = s->ss;
    s->starting = false;
    qs_list_unlink(&s->start_node);
    if (h2)
        ss->protocols.http2(ss->protocols.http2_state, s, initial, len);
    else
        ss->protocols.http1(ss->protocols.http1_state, s, initial, len);
}

/* A plain listener with h2c: the first bytes tell the HTTP/2 preface from HTTP/1. */
static void choose_plain(qs_sock *s, const char *data, size_t len)
{
    size_t take = QS_MIN(len, sizeof(h2_preface) - 1 - s->early_len);
    memcpy(s->early + s->early_len, data, take);
    s->early_len += (uint8_t)take;
    bool preface_so_far = memcmp(s->early, h2_preface, s->early_len) == 0;
    if (preface_so_far && s->early_len < sizeof(h2_preface) - 1)
        return; /* undecided */
    if (!preface_so_far && !s->allow_h1) {
        qs_sock_close(s); /* not HTTP/2, and HTTP/1 is off */
        return;
    }
    /* The bytes held so far, then the rest of this read, go to the protocol. */
    qs_buf all = QS_BUF_INIT;
    qs_buf_append(&all, s->early, s->early_len);
    qs_buf_append(&all, data + take, len - take);
    free(s->early);
    s->early = NULL;
    start(s, preface_so_far, all.p, all.len);
    qs_buf_free(&all);
}

/* With the hub's record layer: how many bytes the record kept in `partial` needs to be
 * opened (its header first; a length TLS does not allow is left for open to refuse). */
static size_t partial_wants(const qs_buf *b)
{
    size_t size = qs_tls13_record_size((const uint8_t *)b->p, b->len);
    if (!size)
        return QS_TLS13_HEADER;
    return size > QS_TLS13_HEADER + QS_TLS13_MAX_CIPHERTEXT ? b->len : size;
}

/* With the hub's record layer: opens the records of the current read (after the piece of
 * one kept from the reads before) in place and hands their data to the protocol. */
static void tls13_read_records(qs_sock *s)
{
    struct sock_tls *t = s->tls;
    while (!s->closing && s->events) {
        bool kept = t->partial.len > 0;
        uint8_t *p = (uint8_t *)t->in;
        size_t n = t->in_len, want;
        if (kept) {
            while ((want = partial_wants(&t->partial)) > t->partial.len && t->in_len) {
                size_t take = QS_MIN(want - t->partial.len, t->in_len);
                qs_buf_append(&t->partial, t->in, take);
                t->in += take;
                t->in_len -= take;
            }
            if (want > t->partial.len)
                return; /* the rest comes with a later read */
            p = (uint8_t *)t->partial.p;
            n = t->partial.len;
        } else if (!n) {
            return;
        }
        qs_tls13_opened o;
        qs_tls13_status st = qs_tls13_open(t->rl, s->ss->ciphers, p, n, &o, &t->cipher);
        if (st == QS_TLS13_NEED_MORE) {
            /* Only without a kept piece: the rest of this read is less than one record
             * (whose header has a length TLS allows), kept until its end arrives. */
            qs_buf_append(&t->partial, t->in, t->in_len);
            t->in_len = 0;
            return;
        }
        if (!kept) {
            t->in += o.used;
            t->in_len -= o.used;
        }
        if (st == QS_TLS13_DATA) {
            if (o.len)
                s->events->read(s, (const char *)o.data, o.len);
            if (kept)
                qs_buf_free(&t->partial); /* after the protocol read from it */
            continue;
        }
        if (kept)
            qs_buf_free(&t->partial);
        if (st == QS_TLS13_FAILED) {
            qs_debug("TLS with %s: %s", s->peer, o.why);
            if (o.alert != 0xff) {
                send_alert(s, 2, o.alert);
                tls_flush(s); /* at once: the protocol closes the connection next */
            }
        }
        s->events->ended(s, st == QS_TLS13_CLOSED ? UV_EOF : UV_EPROTO);
        return;
    }
}

/* Decrypts what the current read brought and hands it to the protocol. */
static void tls_read_records(qs_sock *s)
{
    struct sock_tls *t = s->tls;
    if (t->rl) {
        tls13_read_records(s);
        return;
    }
    char *buf = s->ss->plaintext;
    while (!s->closing && s->events) {
        int n = SSL_read(t->ssl, buf, RECORD_PLAINTEXT);
        if (n > 0) {
            s->events->read(s, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ)
            break;
        s->events->ended(s, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO);
        return;
    }
}

/* A TLS handshake holds some 20 KiB that it frees when it ends (OpenSSL's handshake buffer of
 * 16 KiB, key shares, the transcript); the state a connection keeps is allocated meanwhile,
 * between those blocks. After a crowd of clients connected, glibc keeps the heap at its
 * high-water mark: with 10 000 idle TLS subscribers, the RSS was about half free memory.
 * Once no handshake has ended in the hub for TRIM_QUIET_MS and this worker has none in
 * progress, malloc_trim() gives the free pages back (a few milliseconds; only after
 * TRIM_AFTER_HANDSHAKES handshakes since the last time). */
static _Atomic unsigned handshakes_since_trim;
static _Atomic uint64_t last_handshake_ms;

static void trim_after_handshakes(qs_socks *ss, uint64_t now)
{
#ifdef __GLIBC__
    uint64_t last = atomic_load_explicit(&last_handshake_ms, memory_order_relaxed);
    if (!qs_list_empty(&ss->starting) || last > now || now - last < TRIM_QUIET_MS ||
        atomic_load_explicit(&handshakes_since_trim, memory_order_relaxed) < TRIM_AFTER_HANDSHAKES)
        return;
    if (atomic_exchange(&handshakes_since_trim, 0) >= TRIM_AFTER_HANDSHAKES)
        malloc_trim(0); /* one worker does it for all */
#else
    QS_UNUSED(ss);
    QS_UNUSED(now);
#endif
}

/* After a TLS 1.3 handshake, the connection goes on with the hub's record layer and its SSL
 * is freed; `sent` records were written by the call that completed the handshake. */
static void leave_openssl(struct sock_tls *t, uint64_t sent)
{
    qs_tls13 *rl = qs_xmalloc(sizeof(*rl));
    if (qs_tls_leave_openssl(t->ssl, t->secrets, sent, rl) == 0) {
        SSL_free(t->ssl);
        t->ssl = NULL;
        t->rl = rl;
    } else {
        free(rl);
    }
    free(t->secrets);
    t->secrets = NULL;
}

/* The TLS handshake, then the protocol ALPN chose. */
static void tls_handshake(qs_sock *s)
{
    struct sock_tls *t = s->tls;
    size_t before = t->cipher.len;
    int r = SSL_do_handshake(t->ssl);
    uint64_t sent = r == 1 ? qs_tls13_count_records((const uint8_t *)t->cipher.p + before,
                                                    t->cipher.len - before)
                           : 0;
    if (tls_flush(s) < 0) {
        qs_sock_close(s);
        return;
    }
    if (r != 1) {
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return;
        }
        char why[160];
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        ERR_clear_error();
        qs_debug("TLS handshake with %s failed: %s", s->peer, why);
        qs_sock_close(s); /* the alert, if any, is already in the records sent */
        return;
    }
    t->handshaken = true;
    atomic_fetch_add_explicit(&handshakes_since_trim, 1, memory_order_relaxed);
    atomic_store_explicit(&last_handshake_ms, qs_now_ms(), memory_order_relaxed);
    bool h2 = qs_tls_negotiated_h2(t->ssl);
    leave_openssl(t, sent);
    start(s, h2, NULL, 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    QS_UNUSED(suggested);
    qs_sock *s = qs_container_of((uv_tcp_t *)h, qs_sock, tcp);
    /* Every read lands in the worker's buffer; reads are handled before the next one
     * starts, so one buffer serves every connection of the thread. */
    *buf = uv_buf_init(s->ss->ctx->read_buf, (unsigned)s->ss->ctx->read_buf_size);
}

static void sock_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    qs_sock *s = qs_container_of((uv_tcp_t *)stream, qs_sock, tcp);
    if (nread == 0 || s->closing)
        return;
    if (nread < 0) {
        if (s->events)
            s->events->ended(s, (int)nread);
        else
            qs_sock_close(s);
        return;
    }
    if (!s->tls) {
        if (s->starting)
            choose_plain(s, buf->base, (size_t)nread);
        else
            s->events->read(s, buf->base, (size_t)nread);
        return;
    }
    struct sock_tls *t = s->tls;
    if (!t->seen && buf->base[0] != 0x16) {
        /* Not a TLS handshake record: someone speaks plain HTTP to a TLS port. */
        uv_buf_t b = uv_buf_init((char *)plain_on_tls, sizeof(plain_on_tls) - 1);
        uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
        qs_sock_close(s);
        return;
    }
    t->seen = true;
    t->in = buf->base;
    t->in_len = (size_t)nread;
    if (s->starting)
        tls_handshake(s);
    if (!s->closing && !s->starting)
        tls_read_records(s);
    t->in_len = 0; /* the read buffer is the worker's: nothing of it is kept */
    if (!s->closing && tls_flush(s) < 0 && s->events)
        s->events->ended(s, UV_EPIPE);
}

/* Logs once when the hub reaches max_connections, and once when it is well below again
 * (any worker may see either). */
static void note_limit(uint64_t max, uint64_t open)
{
    static atomic_bool at_limit;
    if (open > max) {
        if (!atomic_exchange(&at_limit, true))
            qs_warn("max_connections (%" PRIu64 ") reached: new connections are refused, "
                    "except %d kept for /healthz and /metrics",
                    max, MONITORING_RESERVE);
    } else if (open <= max - max / 10 && atomic_load(&at_limit)) {
        if (atomic_exchange(&at_limit, false))
            qs_info("connections below max_connections (%" PRIu64 ") again", max);
    }
}

static void free_unaccepted(uv_handle_t *h)
{
    free(qs_container_of((uv_tcp_t *)h, qs_sock, tcp));
}

static void on_accept(uv_stream_t *server, int status)
{
    listener *l = server->data;
    qs_socks *ss = l->ss;
    qs_ctx *ctx = ss->ctx;
    if (status < 0) {
        qs_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    qs_sock *s = qs_xcalloc(1, sizeof(*s));
    s->ss = ss;
    qs_list_init(&s->start_node);
    uv_tcp_init(&ctx->loop, &s->tcp);
    if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
        uv_close((uv_handle_t *)&s->tcp, free_unaccepted);
        return;
    }
    ss->n_open++;
    qs_metric_add(&qs_metrics_global.connections_total, 1);
    /* The limit is for the whole hub: the kernel does not spread connections evenly. */
    uint64_t open = atomic_fetch_add(&qs_metrics_global.connections_open, 1) + 1;
    uint64_t max = ctx->hub->max_conns;
    if (max)
        note_limit(max, open);
    if (ctx->stopping || (max && open > max + MONITORING_RESERVE)) {
        qs_metric_add(&qs_metrics_global.connections_rejected, 1);
        qs_sock_close(s);
        return;
    }
    s->over_limit = max && open > max; /* one request, for health checks and metrics only */
    uv_tcp_nodelay(&s->tcp, 1);
    struct sockaddr_storage sa;
    int sl = sizeof(sa);
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&sa, &sl) == 0) {
        if (sa.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&sa, s->peer, sizeof(s->peer));
        else
            uv_ip6_name((struct sockaddr_in6 *)&sa, s->peer, sizeof(s->peer));
    }
    s->allow_h1 = l->h1;
    s->allow_h2c = l->h2c;
    if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, sock_read) < 0) {
        qs_sock_close(s);
        return;
    }
    if (l->tls) {
        s->tls = qs_xcalloc(1, sizeof(*s->tls));
        s->tls->ssl = qs_tls_new_ssl(ss->tls);
        if (!s->tls->ssl) {
            qs_sock_close(s);
            return;
        }
        uv_once(&bio_once, make_bio_method);
        BIO *bio = BIO_new(bio_method);
        BIO_set_data(bio, s->tls);
        SSL_set_bio(s->tls->ssl, bio, bio);
        s->tls->secrets = qs_xmalloc(sizeof(*s->tls->secrets));
        qs_tls_keep_secrets(s->tls->ssl, s->tls->secrets);
    } else if (!l->h2c) {
        start(s, false, NULL, 0);
        return;
    } else {
        s->early = qs_xmalloc(sizeof(h2_preface) - 1);
    }
    /* Until a protocol takes it: a handshake, or the first bytes of a plain connection. */
    s->starting = true;
    s->start_ms = qs_now_ms();
    qs_list_push_back(&ss->starting, &s->start_node);
}

/* ------------------------------------------------------------ worker */

qs_socks *qs_socks_new(qs_ctx *ctx, qs_tls *tls, const qs_sock_protocols *protocols)
{
    qs_socks *ss = qs_xcalloc(1, sizeof(*ss));
    ss->ctx = ctx;
    ss->tls = tls;
    ss->protocols = *protocols;
    qs_list_init(&ss->starting);
    ss->plaintext = qs_xmalloc(RECORD_PLAINTEXT);
    ss->record = qs_xmalloc(RECORD_PLAINTEXT);
    if (tls)
        ss->ciphers = qs_tls13_ciphers_new();
    return ss;
}

int qs_socks_listen(qs_socks *ss, const qs_config_listener *cl, const qs_config *cfg, int fd,
                    char **err)
{
    listener *l = qs_xcalloc(1, sizeof(*l));
    l->ss = ss;
    l->tls = cl->tls;
    l->h1 = cfg->proto_h1;
    l->h2c = !cl->tls && cfg->proto_h2c;
    uv_tcp_init(&ss->ctx->loop, &l->tcp);
    l->tcp.data = l;
    ss->listeners = qs_xrealloc(ss->listeners, (ss->n_listeners + 1) * sizeof(*ss->listeners));
    ss->listeners[ss->n_listeners++] = l;
    int rc = uv_tcp_open(&l->tcp, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 4096, on_accept);
    if (rc < 0) {
        *err = qs_xasprintf("cannot listen on %s: %s", cl->address, uv_strerror(rc));
        return -1;
    }
    return 0;
}

static void free_listener(uv_handle_t *h)
{
    free(h->data);
}

void qs_socks_stop_listening(qs_socks *ss)
{
    for (size_t i = 0; i < ss->n_listeners; i++)
        uv_close((uv_handle_t *)&ss->listeners[i]->tcp, free_listener);
    free(ss->listeners);
    ss->listeners = NULL;
    ss->n_listeners = 0;
}

void qs_socks_close_starting(qs_socks *ss)
{
    qs_list *n;
    while ((n = qs_list_front(&ss->starting)))
        qs_sock_close(qs_list_entry(n, qs_sock, start_node));
}

uint64_t qs_socks_count(const qs_socks *ss)
{
    return ss->n_open;
}

void qs_socks_check_timeouts(qs_socks *ss, uint64_t now)
{
    uint64_t limit = ss->ctx->hub->cfg->request_timeout_ms;
    qs_list *n;
    while ((n = qs_list_front(&ss->starting))) {
        qs_sock *s = qs_list_entry(n, qs_sock, start_node);
        if (now - s->start_ms < limit)
            break;
        qs_sock_close(s);
    }
    trim_after_handshakes(ss, now);
}

void qs_socks_free(qs_socks *ss)
{
    free(ss->listeners);
    free(ss->plaintext);
    free(ss->record);
    qs_tls13_ciphers_free(ss->ciphers);
    free(ss);
}
