/* SPDX-License-Identifier: MIT
 * loadgen.c - load generator for Mercure hubs (and, for comparison, nchan and the raw
 * write floor): SSE subscribers over topics, publishers at a rate, and the figures that
 * matter: subscribe ramp, publish latency, publish-to-delivery latency percentiles,
 * deliveries per second, losses, the hub's memory per subscriber and CPU per delivery.
 *
 * Subscribers can be spread over several processes (--procs) so that the generator is
 * never the bottleneck and the open-file limit of one process is not a ceiling; each
 * child reports its counts and latency histogram to the parent through a pipe.
 *
 * Every event's data starts with "<publish monotonic ns> " so that receivers measure
 * publish-to-delivery latency on the same clock. With --pub-port, publishers and
 * subscribers use different hubs (cluster transports: the latency across nodes).
 *
 * --tls speaks TLS (OpenSSL, through a BIO of our own that reads records straight from the
 * read buffer: no per-connection buffer but OpenSSL's), --h2 HTTP/2 (nghttp2; over TLS
 * with ALPN "h2", else h2c with prior knowledge) with --streams-per-conn subscriber streams
 * on each connection. Publishers always speak HTTP/1.1 (over TLS with --tls): they are few,
 * and what is measured is the fan-out.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "hist.h"
#include "jwt.h"
#include "util.h"

enum profile { PROFILE_MERCURE, PROFILE_NCHAN };

static struct options {
    const char *host;
    int port;
    int pub_port; /* publishers' hub when it is not the subscribers' (0 = same) */
    const char *key;
    enum profile profile;
    int subscribers;
    int topics;
    bool templates;   /* subscribe with URI templates matching several topics */
    bool urlpatterns; /* subscribe (protocol 1.0) with URL patterns of the same shape */
    int publishers;
    long updates;
    double rate;
    int size;
    bool churn; /* one connection per publish */
    int procs;
    int hub_pid;
    int hub_pids[16]; /* --hub-pid 12,13,14: a server with several processes (nginx) */
    int n_hub_pids;
    double drain_s;
    bool replay;
    double sub_churn;   /* subscribers opened (and closed once open) per second */
    double publish_for; /* stop issuing publishes after this many seconds (0 = no cap) */
    double duration;
    int sources; /* 127.0.0.x source addresses for subscribers */
    bool json;
    const char *label;
    bool tls;             /* TLS on every connection */
    const char *ca;       /* verify the server against this CA file (default: no checks) */
    bool h2;              /* subscribers over HTTP/2 */
    int streams_per_conn; /* HTTP/2 subscriber streams per connection */
    double settle_s;      /* wait after the subscribers opened before sampling the hub's RSS */
} opt = {
    .host = "127.0.0.1",
    .port = 3000,
    .key = "!ChangeThisMercureHubJWTSecretKey!",
    .topics = 1,
    .publishers = 1,
    .size = 100,
    .procs = 1,
    .drain_s = 10,
    .sources = 1,
    .duration = 10,
    .streams_per_conn = 1,
    .settle_s = 0.3,
};

static char *pub_token, *sub_token;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void topic_name(char *out, size_t cap, long i)
{
    snprintf(out, cap, "https://bench.example/t/%ld", i % opt.topics);
}

/* ------------------------------------------------------------ connections */

/* A connection as its owner sees it: plaintext in, plaintext out, over TCP or TLS. With
 * TLS, OpenSSL reads ciphertext straight from the read buffer (tio.in) and writes records
 * into tio.out, which goes to the kernel before the call that made them returns: the
 * process is single-threaded, so one pair of buffers serves every connection. */
typedef struct netconn netconn;

typedef struct link_ops {
    void (*ready)(netconn *l); /* connected (and the handshake done) */
    void (*read)(netconn *l, const char *p, size_t n);
    /* the connection failed or the peer closed it (once); the owner closes it */
    void (*ended)(netconn *l, int status);
    void (*closed)(netconn *l); /* may be NULL */
} link_ops;

struct netconn {
    uv_tcp_t tcp;
    uv_connect_t conn_req;
    const link_ops *ops;
    void *owner;
    SSL *ssl; /* NULL: plain TCP */
    bool connected, ready, ended, closing;
};

/* A write the kernel did not take at once: its bytes, copied. */
typedef struct link_wreq {
    uv_write_t req;
    char data[];
} link_wreq;

static SSL_CTX *tls_ctx;
static BIO_METHOD *tls_bio;
static struct {
    const char *in;
    size_t in_len;
    qs_buf out;
} tio;
static char read_buf[1 << 16];
static char plain_buf[16384]; /* one record's plaintext */

static int tio_write(BIO *b, const char *data, int len)
{
    QS_UNUSED(b);
    qs_buf_append(&tio.out, data, (size_t)len);
    return len;
}

static int tio_read(BIO *b, char *out, int len)
{
    BIO_clear_retry_flags(b);
    if (!tio.in_len) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = QS_MIN((size_t)len, tio.in_len);
    memcpy(out, tio.in, n);
    tio.in += n;
    tio.in_len -= n;
    return (int)n;
}

static long tio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    QS_UNUSED(b);
    QS_UNUSED(num);
    QS_UNUSED(ptr);
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* The client context, made once before the subscriber processes fork. */
static void tls_setup(void)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx)
        qs_panic("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    /* Thousands of idle connections: keep no record buffers between reads. */
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
    if (opt.ca) {
        if (SSL_CTX_load_verify_locations(tls_ctx, opt.ca, NULL) != 1)
            qs_panic("cannot load the CA file %s", opt.ca);
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    }
    tls_bio = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "loadgen");
    BIO_meth_set_write(tls_bio, tio_write);
    BIO_meth_set_read(tls_bio, tio_read);
    BIO_meth_set_ctrl(tls_bio, tio_ctrl);
    BIO_meth_set_create(tls_bio, tio_create);
}

static SSL *tls_new(const char *alpn)
{
    SSL *ssl = SSL_new(tls_ctx);
    BIO *b = BIO_new(tls_bio);
    SSL_set_bio(ssl, b, b);
    SSL_set_connect_state(ssl);
    unsigned char wire[16];
    size_t n = strlen(alpn);
    wire[0] = (unsigned char)n;
    memcpy(wire + 1, alpn, n);
    SSL_set_alpn_protos(ssl, wire, (unsigned)n + 1);
    struct in_addr ip4;
    bool is_ip = inet_pton(AF_INET, opt.host, &ip4) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, opt.host);
    if (opt.ca) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(param, opt.host);
        else
            SSL_set1_host(ssl, opt.host);
    }
    return ssl;
}

static void link_end(netconn *l, int status)
{
    if (l->ended || l->closing)
        return;
    l->ended = true;
    l->ops->ended(l, status);
}

static void link_written(uv_write_t *req, int status)
{
    netconn *l = req->data;
    free(qs_container_of(req, link_wreq, req));
    if (status < 0 && status != UV_ECANCELED)
        link_end(l, status);
}

/* Hands bytes to the kernel: at once as far as it takes them, the rest (copied) queued
 * behind what is queued already. */
static void link_send(netconn *l, const char *p, size_t n)
{
    if (!n || l->closing || l->ended)
        return;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);
        if (w < 0 && w != UV_EAGAIN) {
            link_end(l, w);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        if (!n)
            return;
    }
    link_wreq *r = qs_xmalloc(sizeof(*r) + n);
    memcpy(r->data, p, n);
    r->req.data = l;
    uv_buf_t b = uv_buf_init(r->data, (unsigned)n);
    int rc = uv_write(&r->req, (uv_stream_t *)&l->tcp, &b, 1, link_written);
    if (rc < 0) {
        free(r);
        link_end(l, rc);
    }
}

/* Sends the records OpenSSL just made. */
static void link_flush_tls(netconn *l)
{
    if (tio.out.len) {
        link_send(l, tio.out.p, tio.out.len);
        tio.out.len = 0;
    }
}

static void link_write(netconn *l, const char *p, size_t n)
{
    if (!n || l->closing || l->ended)
        return;
    if (!l->ssl) {
        link_send(l, p, n);
        return;
    }
    if (SSL_write(l->ssl, p, (int)n) <= 0) {
        ERR_clear_error();
        tio.out.len = 0;
        link_end(l, UV_EPROTO);
        return;
    }
    link_flush_tls(l);
}

static void link_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    QS_UNUSED(h);
    QS_UNUSED(suggested);
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

/* TLS: the handshake, then every record the read completed. */
static void link_read_tls(netconn *l, const char *p, size_t n)
{
    tio.in = p;
    tio.in_len = n;
    if (!l->ready) {
        int r = SSL_do_handshake(l->ssl);
        link_flush_tls(l);
        if (r != 1) {
            int e = SSL_get_error(l->ssl, r);
            if (e != SSL_ERROR_WANT_READ) {
                static bool told;
                char why[160];
                ERR_error_string_n(ERR_peek_error(), why, sizeof(why));
                if (!told)
                    fprintf(stderr, "loadgen: TLS handshake failed: %s\n", why);
                told = true;
                link_end(l, UV_EPROTO);
            }
            ERR_clear_error();
            tio.in_len = 0;
            return;
        }
        l->ready = true;
        l->ops->ready(l);
    }
    while (!l->closing && !l->ended) {
        int r = SSL_read(l->ssl, plain_buf, sizeof(plain_buf));
        if (r > 0) {
            l->ops->read(l, plain_buf, (size_t)r);
            continue;
        }
        int e = SSL_get_error(l->ssl, r);
        ERR_clear_error();
        if (e != SSL_ERROR_WANT_READ)
            link_end(l, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO);
        break;
    }
    tio.in_len = 0;
    link_flush_tls(l); /* what reading made: key updates, alerts */
}

static void link_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    netconn *l = st->data;
    if (nread == 0 || l->closing || l->ended)
        return;
    if (nread < 0) {
        link_end(l, (int)nread);
        return;
    }
    if (l->ssl)
        link_read_tls(l, buf->base, (size_t)nread);
    else
        l->ops->read(l, buf->base, (size_t)nread);
}

static void link_connected(uv_connect_t *req, int status)
{
    netconn *l = req->data;
    if (l->closing)
        return;
    if (status < 0) {
        link_end(l, status);
        return;
    }
    l->connected = true;
    uv_read_start((uv_stream_t *)&l->tcp, link_alloc, link_read);
    if (!l->ssl) {
        l->ready = true;
        l->ops->ready(l);
        return;
    }
    SSL_do_handshake(l->ssl); /* the ClientHello */
    ERR_clear_error();
    link_flush_tls(l);
}

/* Connects to the host at port, from 127.0.0.x when src > 0; alpn names the protocol
 * offered over TLS. */
static void link_open(netconn *l, uv_loop_t *loop, int port, int src, const char *alpn,
                      const link_ops *ops, void *owner)
{
    memset(l, 0, sizeof(*l));
    l->ops = ops;
    l->owner = owner;
    uv_tcp_init(loop, &l->tcp);
    uv_tcp_nodelay(&l->tcp, 1);
    l->tcp.data = l;
    if (src > 0) {
        /* Several loopback source addresses multiply the ephemeral ports available. */
        struct sockaddr_in sa;
        char ip[32];
        snprintf(ip, sizeof(ip), "127.0.0.%d", src);
        uv_ip4_addr(ip, 0, &sa);
        uv_tcp_bind(&l->tcp, (struct sockaddr *)&sa, 0);
    }
    if (opt.tls)
        l->ssl = tls_new(alpn);
    struct sockaddr_in dst;
    uv_ip4_addr(opt.host, port, &dst);
    l->conn_req.data = l;
    int rc = uv_tcp_connect(&l->conn_req, &l->tcp, (struct sockaddr *)&dst, link_connected);
    if (rc < 0) {
        /* Reported from the loop, like any other failure. */
        l->conn_req.data = NULL;
        fprintf(stderr, "loadgen: connect: %s\n", uv_strerror(rc));
    }
}

static void link_on_close(uv_handle_t *h)
{
    netconn *l = h->data;
    if (l->ssl)
        SSL_free(l->ssl);
    l->ssl = NULL;
    if (l->ops->closed)
        l->ops->closed(l);
}

static void link_close(netconn *l)
{
    if (l->closing)
        return;
    l->closing = true;
    uv_read_stop((uv_stream_t *)&l->tcp);
    uv_close((uv_handle_t *)&l->tcp, link_on_close);
}

/* ------------------------------------------------------------ subscribers */

typedef struct subconn subconn;

typedef struct sub {
    subconn *c;
    int32_t stream_id; /* HTTP/2 */
    int index;
    bool connected; /* stream open: ":" preamble received */
    bool done;      /* failed before it opened: counted once */
    bool head_done;
    /* incremental parsing of the chunked SSE stream */
    char line[256];
    size_t line_len;
    int chunk_state; /* 0 size line, 1 data, 2 CRLF after data */
    uint64_t chunk_left;
    bool chunked;
    char head_tail[4];
    char head_start[1024]; /* the response head, enough of it to read its headers */
    size_t head_start_len;
    uint64_t events;
    uint64_t started_ns;
} sub;

/* A subscriber's connection (HTTP/1.1), or the connection of n subscriber streams
 * (HTTP/2). */
struct subconn {
    netconn l;
    nghttp2_session *h2; /* NULL: HTTP/1.1 */
    sub *subs;
    int n;
    bool churn; /* a churn_sub's: freed once closed */
};

/* Subscriber churn: each subscriber has a connection of its own, freed once closed. */
typedef struct churn_sub {
    subconn c;
    sub s;
} churn_sub;

static struct {
    uv_loop_t *loop;
    sub *subs;
    int n;
    subconn *conns;
    int n_conns;
    int opened;
    int failed;
    uint64_t events;
    hist latency;
    int report_fd;
    uint64_t first_open_ns, all_open_ns;
} S;

static uint64_t replay_target; /* replay mode: stop the loop after this many events */

static void sub_fail(sub *s)
{
    if (!s->connected && !s->done)
        S.failed++;
    s->done = true;
}

static void sub_event_data(sub *s, const char *data, size_t len)
{
    /* "data: <ns> ..." — one data line per event in this benchmark. */
    uint64_t sent = strtoull(data, NULL, 10);
    uint64_t now = now_ns();
    s->events++;
    S.events++;
    if (sent && now > sent)
        hist_add(&S.latency, (now - sent) / 1000);
    QS_UNUSED(len);
    if (replay_target && S.events == replay_target)
        uv_stop(S.loop);
}

static void sub_line(sub *s, const char *line, size_t len)
{
    if (len >= 6 && memcmp(line, "data: ", 6) == 0)
        sub_event_data(s, line + 6, len - 6);
    else if (len >= 5 && memcmp(line, "data:", 5) == 0)
        sub_event_data(s, line + 5, len - 5);
}

/* The stream's lines: only their start is kept (enough for "data: <ns>" and the opening
 * comment), found with memchr (the generator reads a million events a second). */
static void sub_payload(sub *s, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        size_t keep = QS_MIN(len, sizeof(s->line) - 1 - s->line_len);
        memcpy(s->line + s->line_len, p, keep);
        s->line_len += keep;
        if (!nl)
            return;
        p = nl + 1;
        n -= len + 1;
        /* The first comment opens the stream (":" from Mercure, ": hi" from nchan). */
        if (!s->connected && s->line_len >= 1 && s->line[0] == ':') {
            s->connected = true;
            S.opened++;
            if (opt.sub_churn > 0) {
                /* Churn: the stream is open, leave at once. */
                hist_add(&S.latency, (now_ns() - s->started_ns) / 1000);
                s->line_len = 0;
                link_close(&s->c->l);
                return;
            }
            uint64_t t = now_ns();
            if (!S.first_open_ns)
                S.first_open_ns = t;
            if (S.opened == S.n)
                S.all_open_ns = t;
        }
        s->line[s->line_len] = '\0'; /* strtoull stops there */
        sub_line(s, s->line, s->line_len);
        s->line_len = 0;
    }
}

static void sub_body(sub *s, const char *p, size_t n)
{
    if (!s->chunked) {
        sub_payload(s, p, n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        if (s->chunk_state == 0) {
            char c = p[i++];
            if (c == '\n') {
                s->chunk_state = s->chunk_left ? 1 : 0;
            } else if (c != '\r') {
                int v = (c >= '0' && c <= '9')   ? c - '0'
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : -1;
                if (v >= 0)
                    s->chunk_left = s->chunk_left * 16 + (uint64_t)v;
            }
        } else if (s->chunk_state == 1) {
            size_t take = (size_t)QS_MIN((uint64_t)(n - i), s->chunk_left);
            sub_payload(s, p + i, take);
            i += take;
            s->chunk_left -= take;
            if (!s->chunk_left)
                s->chunk_state = 2;
        } else {
            if (p[i++] == '\n')
                s->chunk_state = 0;
        }
    }
}

/* HTTP/1.1: the response head, then the body. */
static void sub_h1_read(sub *s, const char *p, size_t n)
{
    if (!s->head_done) {
        /* Skip the response head; look for the blank line, across reads. */
        size_t i = 0;
        for (; i < n; i++) {
            memmove(s->head_tail, s->head_tail + 1, 3);
            s->head_tail[3] = p[i];
            if (s->head_start_len < sizeof(s->head_start) - 1)
                s->head_start[s->head_start_len++] = p[i];
            if (memcmp(s->head_tail, "\r\n\r\n", 4) == 0) {
                s->head_done = true;
                i++;
                break;
            }
        }
        if (!s->head_done)
            return;
        /* nchan's streams are close-delimited, Mercure's chunked: read the head. */
        s->head_start[s->head_start_len] = '\0';
        s->chunked = strcasestr(s->head_start, "transfer-encoding: chunked") != NULL;
        p += i;
        n -= i;
    }
    sub_body(s, p, n);
}

/* The subscription's path (HTTP/2's :path; HTTP/1.1's request target). */
static void sub_path(const sub *s, char *out, size_t cap)
{
    char topic[128];
    if (opt.profile == PROFILE_NCHAN) {
        snprintf(out, cap, "/sub/%ld", (long)(s->index % opt.topics));
        return;
    }
    if (opt.templates) /* one template per topic group: .../{kind}/N matches .../t/N */
        snprintf(topic, sizeof(topic), "https://bench.example/%%7Bkind%%7D/%d",
                 s->index % opt.topics);
    else if (opt.urlpatterns) /* the same with a URL pattern: .../:kind/N */
        snprintf(topic, sizeof(topic), "https://bench.example/%%3Akind/%d", s->index % opt.topics);
    else
        topic_name(topic, sizeof(topic), s->index);
    snprintf(out, cap, "/.well-known/mercure?%s=%s%s",
             opt.urlpatterns ? "match_urlpattern" : "topic", topic,
             opt.replay ? (opt.urlpatterns ? "&last_event_id=earliest" : "&lastEventID=earliest")
                        : "");
}

static void sub_h1_request(sub *s)
{
    char path[512], request[1024];
    int len;
    sub_path(s, path, sizeof(path));
    if (opt.profile == PROFILE_NCHAN)
        len = snprintf(request, sizeof(request),
                       "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path,
                       opt.host);
    else
        len = snprintf(request, sizeof(request),
                       "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", path,
                       opt.host, sub_token);
    link_write(&s->c->l, request, (size_t)len);
}

/* HTTP/2: events arrive as DATA of the subscriber's stream. */
static nghttp2_session_callbacks *h2_callbacks;

static int h2_on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                      size_t len, void *user)
{
    QS_UNUSED(flags);
    QS_UNUSED(user);
    sub *s = nghttp2_session_get_stream_user_data(session, id);
    if (s)
        sub_payload(s, (const char *)data, len);
    return 0;
}

static int h2_on_close(nghttp2_session *session, int32_t id, uint32_t code, void *user)
{
    QS_UNUSED(code);
    QS_UNUSED(user);
    sub *s = nghttp2_session_get_stream_user_data(session, id);
    if (s)
        sub_fail(s);
    return 0;
}

static void h2_setup(void)
{
    nghttp2_session_callbacks_new(&h2_callbacks);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h2_callbacks, h2_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(h2_callbacks, h2_on_close);
}

/* Writes what the session has to send, in one piece. */
static void subconn_h2_flush(subconn *c)
{
    static qs_buf out;
    out.len = 0;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            link_end(&c->l, UV_EPROTO);
            return;
        }
        if (n == 0)
            break;
        qs_buf_append(&out, data, (size_t)n);
    }
    link_write(&c->l, out.p, out.len);
}

#define NV(n, v, vlen)                                                                             \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NONE                \
    }

static void subconn_h2_start(subconn *c)
{
    if (opt.tls) {
        const unsigned char *alpn = NULL;
        unsigned alpn_len = 0;
        SSL_get0_alpn_selected(c->l.ssl, &alpn, &alpn_len);
        if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
            static bool told;
            if (!told)
                fprintf(stderr, "loadgen: the server did not choose h2 by ALPN\n");
            told = true;
            link_end(&c->l, UV_EPROTO);
            return;
        }
    }
    nghttp2_session_client_new(&c->h2, h2_callbacks, c);
    /* Windows wide enough that flow control never holds the server back. */
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, QS_ARRAY_LEN(settings));
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    char authority[300], bearer[2048];
    int alen = snprintf(authority, sizeof(authority), "%s:%d", opt.host, opt.port);
    int blen = snprintf(bearer, sizeof(bearer), "Bearer %s", sub_token ? sub_token : "");
    const char *scheme = opt.tls ? "https" : "http";
    for (int i = 0; i < c->n; i++) {
        sub *s = &c->subs[i];
        char path[512];
        sub_path(s, path, sizeof(path));
        nghttp2_nv nva[] = {
            NV(":method", "GET", 3),
            NV(":scheme", scheme, strlen(scheme)),
            NV(":authority", authority, (size_t)alen),
            NV(":path", path, strlen(path)),
            opt.profile == PROFILE_NCHAN ? (nghttp2_nv)NV("accept", "text/event-stream", 17)
                                         : (nghttp2_nv)NV("authorization", bearer, (size_t)blen),
        };
        s->stream_id = nghttp2_submit_request(c->h2, NULL, nva, QS_ARRAY_LEN(nva), NULL, s);
        if (s->stream_id < 0)
            sub_fail(s);
    }
    subconn_h2_flush(c);
}

static int connecting; /* opened, not ready yet (see sub_wave_cb) */

static void subconn_ready(netconn *l)
{
    subconn *c = l->owner;
    connecting--;
    if (opt.h2)
        subconn_h2_start(c);
    else
        sub_h1_request(&c->subs[0]);
}

static void subconn_read(netconn *l, const char *p, size_t n)
{
    subconn *c = l->owner;
    if (!c->h2) {
        sub_h1_read(&c->subs[0], p, n);
        return;
    }
    ssize_t rv = nghttp2_session_mem_recv(c->h2, (const uint8_t *)p, n);
    if (rv < 0) {
        link_end(l, UV_EPROTO);
        return;
    }
    if (!l->closing)
        subconn_h2_flush(c); /* WINDOW_UPDATE, SETTINGS and PING acknowledgements */
}

static void subconn_ended(netconn *l, int status)
{
    subconn *c = l->owner;
    if (!l->ready)
        connecting--;
    if (!l->connected)
        fprintf(stderr, "loadgen: subscriber connect failed: %s\n", uv_strerror(status));
    for (int i = 0; i < c->n; i++)
        sub_fail(&c->subs[i]);
    link_close(l);
}

static void subconn_closed(netconn *l)
{
    subconn *c = l->owner;
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    if (c->churn)
        free(qs_container_of(c, churn_sub, c));
}

static const link_ops subconn_ops = {
    .ready = subconn_ready,
    .read = subconn_read,
    .ended = subconn_ended,
    .closed = subconn_closed,
};

static void subconn_open(subconn *c)
{
    connecting++;
    int src = opt.sources > 1 ? 1 + c->subs[0].index % opt.sources : 0;
    link_open(&c->l, S.loop, opt.port, src, opt.h2 ? "h2" : "http/1.1", &subconn_ops, c);
}

/* Spreads count subscribers (from S.subs) over connections: one each over HTTP/1.1,
 * --streams-per-conn each over HTTP/2. */
static void subconns_make(int count)
{
    int per = opt.h2 ? opt.streams_per_conn : 1;
    S.n_conns = (count + per - 1) / per;
    S.conns = calloc((size_t)S.n_conns, sizeof(*S.conns));
    for (int i = 0; i < S.n_conns; i++) {
        subconn *c = &S.conns[i];
        c->subs = &S.subs[i * per];
        c->n = QS_MIN(per, count - i * per);
        for (int j = 0; j < c->n; j++)
            c->subs[j].c = c;
    }
}

/* Opens subscribers in waves so the hub's accept queue is not flooded all at once. Over TLS,
 * at most TLS_CONNECTING connections of a process wait for their handshake: a server that
 * closes connections whose handshake takes too long (the hub after request_timeout, counted
 * from the accept) would otherwise see thousands queued at once and drop the last ones. */
#define TLS_CONNECTING 128
static int sub_next; /* next connection to open */
static uv_timer_t sub_wave;

static void sub_wave_cb(uv_timer_t *t)
{
    for (int budget = 500; budget > 0 && sub_next < S.n_conns;) {
        if (opt.tls && connecting >= TLS_CONNECTING)
            break;
        subconn *c = &S.conns[sub_next++];
        budget -= c->n;
        subconn_open(c);
    }
    if (sub_next == S.n_conns)
        uv_timer_stop(t);
}

/* A child process: open subscribers, tell the parent when all are open, count until told
 * to stop (SIGUSR1), then write counts and the histogram to the pipe. */
static uv_signal_t stop_signal;
static uv_timer_t ready_check;
static bool ready_reported;

typedef struct report {
    int opened, failed;
    uint64_t events;
    uint64_t ramp_ns;
    hist latency;
} report;

static void ready_cb(uv_timer_t *t)
{
    if (!ready_reported && S.opened + S.failed >= S.n) {
        ready_reported = true;
        char c = 'R';
        if (write(S.report_fd, &c, 1) != 1)
            exit(1);
    }
    QS_UNUSED(t);
}

static void stop_cb(uv_signal_t *h, int sig)
{
    QS_UNUSED(sig);
    report *r = calloc(1, sizeof(*r));
    r->opened = S.opened;
    r->failed = S.failed;
    r->events = S.events;
    r->ramp_ns = S.all_open_ns && S.first_open_ns ? S.all_open_ns - S.first_open_ns : 0;
    r->latency = S.latency;
    const char *p = (const char *)r;
    size_t left = sizeof(*r);
    while (left) {
        ssize_t w = write(S.report_fd, p, left);
        if (w <= 0)
            exit(1);
        p += w;
        left -= (size_t)w;
    }
    free(r);
    uv_stop(h->loop);
}

static void child_run(int first, int count, int fd)
{
    memset(&S, 0, sizeof(S));
    S.loop = uv_default_loop();
    S.n = count;
    S.report_fd = fd;
    S.subs = calloc((size_t)count, sizeof(*S.subs));
    for (int i = 0; i < count; i++)
        S.subs[i].index = first + i;
    subconns_make(count);
    uv_signal_init(S.loop, &stop_signal);
    uv_signal_start(&stop_signal, stop_cb, SIGUSR1);
    uv_timer_init(S.loop, &sub_wave);
    uv_timer_start(&sub_wave, sub_wave_cb, 0, 10);
    uv_timer_init(S.loop, &ready_check);
    uv_timer_start(&ready_check, ready_cb, 5, 5);
    uv_run(S.loop, UV_RUN_DEFAULT);
    _exit(0);
}

/* ------------------------------------------------------------ hub sampling */

/* CPU time of every thread of pid, in ns (precise: schedstat, not clock ticks). */
static uint64_t hub_cpu_ns(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    uv_fs_t req;
    if (uv_fs_scandir(NULL, &req, path, 0, NULL) < 0)
        return 0;
    uv_dirent_t ent;
    uint64_t total = 0;
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        char p[128];
        snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", pid, ent.name);
        FILE *f = fopen(p, "r");
        unsigned long long ns = 0;
        if (f && fscanf(f, "%llu", &ns) == 1)
            total += ns;
        if (f)
            fclose(f);
    }
    uv_fs_req_cleanup(&req);
    return total;
}

static long hub_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The server may be several processes (nginx's workers): sum them. */
static long hubs_rss_kb(void)
{
    long kb = 0;
    for (int i = 0; i < opt.n_hub_pids; i++)
        kb += hub_rss_kb(opt.hub_pids[i]);
    return kb;
}

static uint64_t hubs_cpu_ns(void)
{
    uint64_t ns = 0;
    for (int i = 0; i < opt.n_hub_pids; i++)
        ns += hub_cpu_ns(opt.hub_pids[i]);
    return ns;
}

/* ------------------------------------------------------------ publishers */

typedef struct pubconn {
    netconn l;
    qs_buf out;
    char resp[4096];
    size_t resp_len;
    bool busy, connected, closing;
    uint64_t sent_ns;
} pubconn;

static struct {
    uv_loop_t *loop;
    pubconn *conns;
    long next; /* next update number to publish */
    long done; /* answered 200 */
    long errors;
    uint64_t start_ns, end_ns;
    hist latency;
    uv_timer_t pacer;
    bool finished;
} P;

static void pub_send(pubconn *c);
static void pub_connect(pubconn *c);

static void pub_build(pubconn *c, long n)
{
    char topic[128], data[64];
    topic_name(topic, sizeof(topic), n);
    c->sent_ns = now_ns();
    int dl = snprintf(data, sizeof(data), "%" PRIu64 " ", c->sent_ns);
    qs_buf body = QS_BUF_INIT;
    if (opt.profile == PROFILE_NCHAN) {
        qs_buf_append(&body, data, (size_t)dl);
        for (int i = dl; i < opt.size; i++)
            qs_buf_append_char(&body, 'x');
        qs_buf_reset(&c->out);
        qs_buf_appendf(
            &c->out, "POST /pub/%ld HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n%s\r\n",
            n % opt.topics, opt.host, body.len, opt.churn ? "Connection: close\r\n" : "");
    } else {
        qs_buf_append_str(&body, "topic=");
        for (const char *p = topic; *p; p++) {
            if (*p == ':' || *p == '/')
                qs_buf_appendf(&body, "%%%02X", (unsigned char)*p);
            else
                qs_buf_append_char(&body, *p);
        }
        qs_buf_append_str(&body, "&data=");
        qs_buf_append(&body, data, (size_t)dl - 1);
        qs_buf_append_str(&body, "+");
        for (int i = dl; i < opt.size; i++)
            qs_buf_append_char(&body, 'x');
        qs_buf_reset(&c->out);
        qs_buf_appendf(&c->out,
                       "POST /.well-known/mercure HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer "
                       "%s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                       "Content-Length: %zu\r\n%s\r\n",
                       opt.host, pub_token, body.len, opt.churn ? "Connection: close\r\n" : "");
    }
    qs_buf_append(&c->out, body.p, body.len);
    qs_buf_free(&body);
}

static void pub_closed(netconn *l)
{
    pubconn *c = l->owner;
    c->closing = false;
    c->connected = false;
    if (P.finished || P.next >= opt.updates)
        return;
    /* Churn without a rate: the next publish opens the next connection (with a rate, the
     * pacer opens them). Keep-alive: the server closed the connection (nginx does after
     * keepalive_requests): open another, or this publisher would stop for good. */
    if (!opt.churn || opt.rate <= 0)
        pub_connect(c);
}

static void pub_close(pubconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    link_close(&c->l);
}

static void pub_maybe_finish(void)
{
    if (P.done + P.errors >= opt.updates && !P.finished) {
        P.finished = true;
        P.end_ns = now_ns();
        uv_timer_stop(&P.pacer);
        for (int i = 0; i < opt.publishers; i++)
            if (P.conns[i].connected && !P.conns[i].closing)
                pub_close(&P.conns[i]);
    }
}

/* The connection failed, or the server closed it. */
static void pub_ended(netconn *l, int status)
{
    pubconn *c = l->owner;
    if (!l->ready) {
        /* Not even connected (or no TLS): counted, so that a broken server ends the run. */
        if (!l->connected)
            fprintf(stderr, "loadgen: publisher connect failed: %s\n", uv_strerror(status));
        P.errors++;
    } else if (c->busy) {
        P.errors++;
    }
    c->busy = false;
    pub_close(c);
    pub_maybe_finish();
}

/* One response per request: the status line and Content-Length body. */
static void pub_read(netconn *l, const char *data, size_t len)
{
    pubconn *c = l->owner;
    if (len > sizeof(c->resp) - 1 - c->resp_len) {
        link_end(l, UV_ENOBUFS); /* no answer of a hub is that long */
        return;
    }
    memcpy(c->resp + c->resp_len, data, len);
    c->resp_len += len;
    c->resp[c->resp_len] = '\0';
    char *end = strstr(c->resp, "\r\n\r\n");
    if (!end)
        return;
    char *cl = strcasestr(c->resp, "content-length:");
    size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
    size_t total = (size_t)(end + 4 - c->resp) + body;
    if (c->resp_len < total)
        return;
    int status = atoi(c->resp + 9);
    bool ok = opt.profile == PROFILE_NCHAN ? (status >= 200 && status < 300) : status == 200;
    if (ok) {
        P.done++;
        hist_add(&P.latency, (now_ns() - c->sent_ns) / 1000);
    } else {
        P.errors++;
        if (P.errors < 5)
            fprintf(stderr, "loadgen: publish answered %d\n", status);
    }
    memmove(c->resp, c->resp + total, c->resp_len - total);
    c->resp_len -= total;
    c->busy = false;
    pub_maybe_finish();
    if (opt.churn) {
        pub_close(c);
        return;
    }
    if (opt.rate <= 0 && !P.finished)
        pub_send(c);
}

static void pub_maybe_finish(void);

/* A server too slow for the requested load still ends the run: past --publish-for, no new
 * publish is issued and the run ends once the ones in flight are answered. */
static bool pub_time_is_up(void)
{
    if (opt.publish_for <= 0 || now_ns() - P.start_ns < (uint64_t)(opt.publish_for * 1e9))
        return false;
    if (opt.updates > P.next)
        opt.updates = P.next;
    return true;
}

static void pub_send(pubconn *c)
{
    if (c->busy || !c->connected || c->closing || P.next >= opt.updates || pub_time_is_up())
        return;
    c->busy = true;
    pub_build(c, P.next++);
    link_write(&c->l, c->out.p, c->out.len);
}

static void pub_ready(netconn *l)
{
    pubconn *c = l->owner;
    c->connected = true;
    c->resp_len = 0;
    if (opt.rate <= 0 || opt.churn)
        pub_send(c);
}

static const link_ops pub_ops = {
    .ready = pub_ready,
    .read = pub_read,
    .ended = pub_ended,
    .closed = pub_closed,
};

static void pub_connect(pubconn *c)
{
    link_open(&c->l, P.loop, opt.pub_port ? opt.pub_port : opt.port, 0, "http/1.1", &pub_ops, c);
}

/* Rate mode: a timer releases the updates due since the start on idle connections. */
static void pacer_cb(uv_timer_t *t)
{
    QS_UNUSED(t);
    if (pub_time_is_up()) {
        pub_maybe_finish();
        return;
    }
    double elapsed = (double)(now_ns() - P.start_ns) / 1e9;
    long due = (long)(elapsed * opt.rate) + 1;
    if (due > opt.updates)
        due = opt.updates;
    for (int i = 0; i < opt.publishers && P.next < due; i++) {
        pubconn *c = &P.conns[i];
        if (opt.churn) {
            if (!c->connected && !c->closing && !c->busy) {
                c->busy = false;
                pub_connect(c);
            }
            continue;
        }
        pub_send(c);
    }
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    fputs("usage: loadgen [--host H] [--port P] [--key K] [--profile mercure|nchan]\n"
          "  [--pub-port P (publishers' hub, default --port)]\n"
          "  [--subscribers N] [--topics T] [--templates | --urlpatterns] [--procs K]\n"
          "  [--sources S]\n"
          "  [--publishers P] [--updates M] [--rate R] [--size B] [--churn]\n"
          "  [--hub-pid PID] [--drain S] [--replay] [--json] [--label L]\n"
          "  [--sub-churn PER_S --duration S]\n"
          "  [--tls [--ca FILE]] [--h2 [--streams-per-conn N]] [--settle S (before the RSS "
          "sample)]\n",
          stderr);
    exit(2);
}

static char *mint(json_t *claims)
{
    const char *err = NULL;
    qs_jwt_key *k = qs_jwt_key_new_private(QS_JWT_HS256, opt.key, strlen(opt.key), &err);
    if (!k)
        qs_panic("key: %s", err);
    char *t = qs_jwt_sign(k, claims, &err);
    qs_jwt_key_free(k);
    json_decref(claims);
    return t;
}

static int wait_ready(int *fds, int n, double timeout_s)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
    for (int i = 0; i < n; i++) {
        for (;;) {
            fd_set set;
            FD_ZERO(&set);
            FD_SET(fds[i], &set);
            struct timeval tv = {0, 100000};
            if (select(fds[i] + 1, &set, NULL, NULL, &tv) > 0) {
                char c;
                if (read(fds[i], &c, 1) == 1)
                    break;
                return -1;
            }
            if (now_ns() > deadline)
                return -1;
        }
    }
    return 0;
}

static int read_report(int fd, report *r)
{
    char *p = (char *)r;
    size_t left = sizeof(*r);
    while (left) {
        ssize_t n = read(fd, p, left);
        if (n <= 0)
            return -1;
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct option longopts[] = {
        {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},
        {"key", 1, 0, 'k'},         {"profile", 1, 0, 'f'},
        {"subscribers", 1, 0, 's'}, {"topics", 1, 0, 't'},
        {"templates", 0, 0, 'T'},   {"urlpatterns", 0, 0, 'U'},
        {"publishers", 1, 0, 'P'},  {"updates", 1, 0, 'm'},
        {"rate", 1, 0, 'r'},        {"size", 1, 0, 'b'},
        {"churn", 0, 0, 'c'},       {"procs", 1, 0, 'K'},
        {"hub-pid", 1, 0, 'h'},     {"drain", 1, 0, 'd'},
        {"replay", 0, 0, 'R'},      {"sources", 1, 0, 'S'},
        {"json", 0, 0, 'j'},        {"label", 1, 0, 'l'},
        {"sub-churn", 1, 0, 'C'},   {"duration", 1, 0, 'D'},
        {"pub-port", 1, 0, 'o'},    {"publish-for", 1, 0, 'F'},
        {"tls", 0, 0, 'L'},         {"ca", 1, 0, 'A'},
        {"h2", 0, 0, '2'},          {"streams-per-conn", 1, 0, 'N'},
        {"settle", 1, 0, 'e'},      {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'o':
            opt.pub_port = atoi(optarg);
            break;
        case 'k':
            opt.key = optarg;
            break;
        case 'f':
            opt.profile = strcmp(optarg, "nchan") == 0 ? PROFILE_NCHAN : PROFILE_MERCURE;
            break;
        case 's':
            opt.subscribers = atoi(optarg);
            break;
        case 't':
            opt.topics = atoi(optarg);
            break;
        case 'T':
            opt.templates = true;
            break;
        case 'U':
            opt.urlpatterns = true;
            break;
        case 'P':
            opt.publishers = atoi(optarg);
            break;
        case 'm':
            opt.updates = atol(optarg);
            break;
        case 'r':
            opt.rate = atof(optarg);
            break;
        case 'b':
            opt.size = atoi(optarg);
            break;
        case 'c':
            opt.churn = true;
            break;
        case 'K':
            opt.procs = atoi(optarg);
            break;
        case 'h':
            for (char *p = optarg; *p && opt.n_hub_pids < 16;
                 p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
                opt.hub_pids[opt.n_hub_pids++] = atoi(p);
            opt.hub_pid = opt.hub_pids[0];
            break;
        case 'd':
            opt.drain_s = atof(optarg);
            break;
        case 'R':
            opt.replay = true;
            break;
        case 'S':
            opt.sources = atoi(optarg);
            break;
        case 'j':
            opt.json = true;
            break;
        case 'l':
            opt.label = optarg;
            break;
        case 'C':
            opt.sub_churn = atof(optarg);
            break;
        case 'D':
            opt.duration = atof(optarg);
            break;
        case 'F':
            opt.publish_for = atof(optarg);
            break;
        case 'L':
            opt.tls = true;
            break;
        case 'A':
            opt.ca = optarg;
            break;
        case '2':
            opt.h2 = true;
            break;
        case 'N':
            opt.streams_per_conn = atoi(optarg);
            break;
        case 'e':
            opt.settle_s = atof(optarg);
            break;
        default:
            usage();
        }
    }
    if (opt.topics < 1 || opt.publishers < 1 || opt.procs < 1 || opt.size < 24 ||
        opt.streams_per_conn < 1 || (opt.h2 && opt.sub_churn > 0))
        usage();
    if (opt.tls)
        tls_setup();
    if (opt.h2)
        h2_setup();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);

    pub_token = mint(json_pack("{s:{s:[s]}}", "mercure", "publish", "*"));
    sub_token = mint(json_pack("{s:{s:[s]}}", "mercure", "subscribe", "*"));

    /* Subscribers: children, each with a pipe for "ready" and the final report. */
    int procs = opt.subscribers ? QS_MIN(opt.procs, opt.subscribers) : 0;
    pid_t *pids = calloc((size_t)procs + 1, sizeof(*pids));
    int *fds = calloc((size_t)procs + 1, sizeof(*fds));
    long rss_before = opt.hub_pid ? hubs_rss_kb() : 0;
    uint64_t ramp_start = now_ns();
    for (int i = 0; i < procs; i++) {
        int pipefd[2];
        if (pipe(pipefd) < 0)
            qs_panic("pipe");
        int first = (int)((long)opt.subscribers * i / procs);
        int last = (int)((long)opt.subscribers * (i + 1) / procs);
        pid_t pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            child_run(first, last - first, pipefd[1]);
        }
        close(pipefd[1]);
        pids[i] = pid;
        fds[i] = pipefd[0];
    }
    if (procs && wait_ready(fds, procs, 120) < 0) {
        fprintf(stderr, "loadgen: subscribers did not all connect\n");
        for (int i = 0; i < procs; i++)
            kill(pids[i], SIGKILL);
        return 1;
    }
    double ramp_s = (double)(now_ns() - ramp_start) / 1e9;
    usleep((useconds_t)(opt.settle_s * 1e6)); /* let the hub settle before sampling its memory */
    long rss_subs = opt.hub_pid ? hubs_rss_kb() : 0;

    if (opt.sub_churn > 0) {
        /* Subscriber churn: open sub_churn subscribers per second for `duration` seconds,
         * each leaving as soon as its stream is open. */
        memset(&S, 0, sizeof(S));
        S.loop = uv_default_loop();
        uint64_t cpu0 = opt.hub_pid ? hubs_cpu_ns() : 0;
        uint64_t t0 = now_ns(), end = t0 + (uint64_t)(opt.duration * 1e9);
        long started = 0;
        while (now_ns() < end) {
            long due = (long)((double)(now_ns() - t0) / 1e9 * opt.sub_churn);
            for (; started < due; started++) {
                churn_sub *cs = calloc(1, sizeof(*cs));
                cs->c.subs = &cs->s;
                cs->c.n = 1;
                cs->c.churn = true;
                cs->s.c = &cs->c;
                cs->s.index = (int)started;
                cs->s.started_ns = now_ns();
                subconn_open(&cs->c);
            }
            uv_run(S.loop, UV_RUN_NOWAIT);
            usleep(500);
        }
        uint64_t drain = now_ns() + 5000000000ull;
        while (S.opened + S.failed < started && now_ns() < drain) {
            uv_run(S.loop, UV_RUN_NOWAIT);
            usleep(500);
        }
        double secs = (double)(now_ns() - t0) / 1e9;
        double cpu = opt.hub_pid ? (double)(hubs_cpu_ns() - cpu0) / 1e9 : 0;
        printf("{\"label\":\"%s\",\"churn_started\":%ld,\"churn_opened\":%d,\"failed\":%d,"
               "\"churn_per_s\":%.0f,\"open_p50_us\":%" PRIu64 ",\"open_p99_us\":%" PRIu64
               ",\"hub_cpu_s\":%.3f,\"hub_cpu_per_cycle_us\":%.1f}\n",
               opt.label ? opt.label : "", started, S.opened, S.failed, S.opened / secs,
               hist_percentile(&S.latency, 0.5), hist_percentile(&S.latency, 0.99), cpu,
               S.opened ? cpu * 1e6 / S.opened : 0);
        return S.failed ? 3 : 0;
    }

    /* Publishers, in this process. */
    memset(&P, 0, sizeof(P));
    P.loop = uv_default_loop();
    P.conns = calloc((size_t)opt.publishers, sizeof(*P.conns));
    uint64_t cpu_before = opt.hub_pid ? hubs_cpu_ns() : 0;
    P.start_ns = now_ns();
    uv_timer_init(P.loop, &P.pacer);
    if (opt.updates > 0) {
        if (!opt.churn || opt.rate <= 0)
            for (int i = 0; i < opt.publishers; i++)
                pub_connect(&P.conns[i]);
        if (opt.rate > 0) {
            uint64_t period = (uint64_t)QS_MAX(1.0, QS_MIN(10.0, 1000.0 / opt.rate));
            uv_timer_start(&P.pacer, pacer_cb, 0, period);
        }
        uv_run(P.loop, UV_RUN_DEFAULT);
    }
    if (!P.end_ns)
        P.end_ns = now_ns();
    double pub_s = (double)(P.end_ns - P.start_ns) / 1e9;

    if (opt.replay) {
        /* One subscriber asks for everything from the start: the time to receive it all is
         * the replay speed. */
        memset(&S, 0, sizeof(S));
        S.loop = P.loop;
        S.n = 1;
        S.subs = calloc(1, sizeof(*S.subs));
        subconns_make(1);
        replay_target = (uint64_t)P.done;
        uint64_t t0 = now_ns();
        subconn_open(&S.conns[0]);
        uv_run(S.loop, UV_RUN_DEFAULT);
        double secs = (double)(now_ns() - t0) / 1e9;
        if (opt.json)
            printf("{\"label\":\"%s\",\"replayed\":%" PRIu64 ",\"replay_s\":%.3f,"
                   "\"replay_events_per_s\":%.0f,\"publishes_per_s\":%.1f}\n",
                   opt.label ? opt.label : "", S.events, secs, (double)S.events / secs,
                   pub_s > 0 ? (double)P.done / pub_s : 0);
        else
            printf("replayed %" PRIu64 " events in %.3fs = %.0f events/s (published %.0f/s)\n",
                   S.events, secs, (double)S.events / secs, (double)P.done / pub_s);
        return S.events == (uint64_t)P.done ? 0 : 3;
    }

    /* Expected deliveries: every subscriber of the update's topic. */
    uint64_t expected = 0;
    if (opt.subscribers) {
        for (long t = 0; t < opt.topics; t++) {
            long subs_t = opt.subscribers / opt.topics + (t < opt.subscribers % opt.topics);
            long upd_t = P.done / opt.topics + (t < P.done % opt.topics);
            expected += (uint64_t)(subs_t * upd_t);
        }
    }
    /* Wait for delivery to drain (bounded), then collect the children's reports. */
    report total;
    memset(&total, 0, sizeof(total));
    uint64_t drain_deadline = now_ns() + (uint64_t)(opt.drain_s * 1e9);
    uint64_t deliver_end = P.end_ns;
    for (;;) {
        usleep(100000);
        /* Without a side channel for progress, wait a fixed share of the drain budget
         * scaled by the volume, bounded by --drain. */
        uint64_t budget = (uint64_t)(QS_MIN(opt.drain_s, 0.5 + (double)expected / 2e6) * 1e9);
        if (now_ns() >= P.end_ns + budget || now_ns() >= drain_deadline)
            break;
    }
    uint64_t cpu_after = opt.hub_pid ? hubs_cpu_ns() : 0;
    for (int i = 0; i < procs; i++) {
        report r;
        kill(pids[i], SIGUSR1);
        if (read_report(fds[i], &r) < 0) {
            fprintf(stderr, "loadgen: a subscriber process died\n");
            return 1;
        }
        total.opened += r.opened;
        total.failed += r.failed;
        total.events += r.events;
        hist_merge(&total.latency, &r.latency);
        waitpid(pids[i], NULL, 0);
    }
    deliver_end = QS_MAX(deliver_end, P.end_ns);
    double cpu_s = (double)(cpu_after - cpu_before) / 1e9;
    uint64_t losses = expected > total.events ? expected - total.events : 0;
    double mem_per_sub = opt.subscribers && rss_subs
                             ? (double)(rss_subs - rss_before) * 1024.0 / opt.subscribers
                             : 0;
    double deliveries_per_s = pub_s > 0 ? (double)total.events / pub_s : 0;
    double cpu_per_delivery_us = total.events ? cpu_s * 1e6 / (double)total.events : 0;

    if (opt.json) {
        printf("{\"label\":\"%s\",\"subscribers\":%d,\"opened\":%d,\"failed\":%d,"
               "\"ramp_s\":%.3f,\"published\":%ld,\"publish_errors\":%ld,\"publish_s\":%.3f,"
               "\"publishes_per_s\":%.1f,\"publish_p50_us\":%" PRIu64 ",\"publish_p99_us\":%" PRIu64
               ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64 ",\"losses\":%" PRIu64
               ",\"deliveries_per_s\":%.1f,\"lat_p50_us\":%" PRIu64 ",\"lat_p90_us\":%" PRIu64
               ",\"lat_p99_us\":%" PRIu64 ",\"lat_p999_us\":%" PRIu64 ",\"lat_max_us\":%" PRIu64
               ",\"hub_rss_before_kb\":%ld,\"hub_rss_subs_kb\":%ld,\"mem_per_sub_bytes\":%.0f,"
               "\"hub_cpu_s\":%.3f,\"cpu_per_delivery_us\":%.3f,"
               "\"deliveries_per_cpu_s\":%.0f}\n",
               opt.label ? opt.label : "", opt.subscribers, total.opened, total.failed, ramp_s,
               P.done, P.errors, pub_s, pub_s > 0 ? (double)P.done / pub_s : 0,
               hist_percentile(&P.latency, 0.5), hist_percentile(&P.latency, 0.99), expected,
               total.events, losses, deliveries_per_s, hist_percentile(&total.latency, 0.5),
               hist_percentile(&total.latency, 0.9), hist_percentile(&total.latency, 0.99),
               hist_percentile(&total.latency, 0.999), total.latency.max, rss_before, rss_subs,
               mem_per_sub, cpu_s, cpu_per_delivery_us,
               cpu_s > 0 ? (double)total.events / cpu_s : 0);
    } else {
        printf("subscribers %d opened %d failed %d ramp %.2fs\n", opt.subscribers, total.opened,
               total.failed, ramp_s);
        printf("published %ld (%ld errors) in %.2fs = %.0f/s; publish latency p50 %" PRIu64
               "us p99 %" PRIu64 "us\n",
               P.done, P.errors, pub_s, pub_s > 0 ? (double)P.done / pub_s : 0,
               hist_percentile(&P.latency, 0.5), hist_percentile(&P.latency, 0.99));
        printf(
            "deliveries %" PRIu64 "/%" PRIu64 " (losses %" PRIu64 "), %.0f/s; latency p50 %" PRIu64
            "us p90 %" PRIu64 "us p99 %" PRIu64 "us p999 %" PRIu64 "us max %" PRIu64 "us\n",
            total.events, expected, losses, deliveries_per_s, hist_percentile(&total.latency, 0.5),
            hist_percentile(&total.latency, 0.9), hist_percentile(&total.latency, 0.99),
            hist_percentile(&total.latency, 0.999), total.latency.max);
        if (opt.hub_pid)
            printf("hub rss %ld kB -> %ld kB (%.0f B/subscriber); cpu %.3fs (%.3f us/delivery)\n",
                   rss_before, rss_subs, mem_per_sub, cpu_s, cpu_per_delivery_us);
    }
    free(pids);
    free(fds);
    return losses ? 3 : 0;
}
