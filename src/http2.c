/* SPDX-License-Identifier: MIT
 * http2.c - HTTP/2 through nghttp2: streams become requests, answers become frames.
 *
 * Input is handed to nghttp2 as it arrives (a socket read callback); output is written when
 * the loop comes back to the connection: after that read, or from the worker's idle handle
 * when a handler or a stream added something. Everything a stream writes is copied into its
 * own buffer (bounded) or held (a queued write) until nghttp2 takes it into DATA frames, as
 * the peer's flow-control windows allow.
 */
#include "http2.h"

#include "http2_request.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>

#include "list.h"
#include "log.h"
#include "metrics.h"

#define MAX_CONCURRENT_STREAMS 250
#define HPACK_TABLE_SIZE 4096
/* Bytes a stream may have copied and not yet framed; beyond, its writes wait (and a stream
 * whose window stays shut is dropped as a slow subscriber). */
#define STREAM_BUFFER (64 * 1024)
/* Session output gathered before one socket write. */
#define WRITE_GATHER (64 * 1024)
/* Empty DATA frames a connection may send without ending a stream. */
#define MAX_EMPTY_DATA 256
/* A connection the hub is done with reads and discards what the peer still sends, for up to
 * this long or this many bytes, before it closes. */
#define LINGER_MS 2000
#define LINGER_BYTES (1u << 20)
#define MAX_HELD 66

struct qs_http2 {
    qs_ctx *ctx;
    const qs_http_router *router;
    qs_list conns;   /* every connection */
    qs_list dirty;   /* connections with output to write */
    uv_idle_t flush; /* writes the dirty connections once the loop turns */
    bool flush_active;
    bool stopping;
};

typedef struct h2conn {
    qs_sock *sock; /* NULL once closed */
    qs_http2 *srv;
    nghttp2_session *session;
    qs_list node;         /* in srv->conns */
    qs_list dirty_node;   /* in srv->dirty */
    qs_list streams;      /* every stream we track */
    qs_buf out;           /* session output the socket has not taken yet */
    uint64_t idle_since;  /* no stream open since */
    uint64_t write_since; /* the queued write started */
    uint64_t linger_since;
    size_t lingered; /* bytes discarded while lingering */
    uint32_t refs;   /* held requests */
    uint32_t n_open; /* streams nghttp2 still has open */
    uint32_t empty_data;
    bool closing, closed, write_queued, goaway;
    bool lingering; /* done: FIN sent, input discarded until EOF or LINGER_MS */
    bool over_limit;
} h2conn;

typedef struct h2stream {
    qs_http_req req;
    h2conn *c;
    int32_t id;
    qs_list node; /* in c->streams */
    /* the request as it arrives */
    qs_http2_request fields;
    qs_buf body;
    uint64_t started_ms;
    int refuse; /* status to answer instead of routing (413, 431) */
    bool dispatched, held, answered;
    bool gone; /* nghttp2 closed the stream */
    /* a complete response */
    qs_buf res_body;
    size_t res_off;
    /* an event stream */
    qs_http_ostream os;
    bool streaming, ending, write_queued, written_due;
    qs_buf out; /* copied by try_write, not framed yet */
    size_t out_off;
    uv_buf_t *held_iov; /* a queued write's buffers (copied array, not the bytes) */
    unsigned n_held, held_i;
    size_t held_off;
} h2stream;

static void conn_schedule(h2conn *c);
static void conn_flush(h2conn *c);
static void stream_free(h2stream *st);

/* ------------------------------------------------------------ lifetime */

static void conn_free(h2conn *c)
{
    nghttp2_session_del(c->session);
    qs_buf_free(&c->out);
    free(c);
}

static void conn_unref(h2conn *c)
{
    if (--c->refs == 0 && c->closed)
        conn_free(c);
}

static void conn_close(h2conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    qs_list_unlink(&c->dirty_node);
    qs_sock_close(c->sock);
}

/* Nothing more to read or write (GOAWAY sent or received, no stream left): FIN after what is
 * written, then what the peer still sends is read and discarded for a moment. Closing at
 * once would make the kernel answer the unread bytes with a reset, which can destroy the
 * last frames (a GOAWAY saying why) before the peer reads them. */
static void conn_linger(h2conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = true;
    c->linger_since = qs_now_ms();
    qs_list_unlink(&c->dirty_node);
    qs_sock_shutdown(c->sock);
}

static void stream_free(h2stream *st)
{
    qs_list_unlink(&st->node);
    qs_http_req_release(&st->req);
    qs_http2_request_free(&st->fields);
    qs_buf_free(&st->body);
    qs_buf_free(&st->res_body);
    qs_buf_free(&st->out);
    free(st->held_iov);
    free(st);
}

/* nghttp2 is done with the stream, or the connection is gone: its owner hears of it, and it
 * is freed unless a handler still holds its request. */
static void stream_gone(h2stream *st)
{
    if (st->gone)
        return;
    st->gone = true;
    if (st->streaming && st->os.owner_ops)
        st->os.owner_ops->closed(st->os.owner);
    if (!st->held)
        stream_free(st);
}

static void ev_closed(qs_sock *s)
{
    h2conn *c = s->conn;
    c->closing = c->closed = true;
    c->sock = NULL;
    qs_list_unlink(&c->node);
    qs_list_unlink(&c->dirty_node);
    qs_list *n;
    while ((n = qs_list_front(&c->streams))) {
        h2stream *st = qs_list_entry(n, h2stream, node);
        qs_list_unlink(&st->node);
        qs_list_init(&st->node);
        stream_gone(st);
    }
    if (c->refs == 0)
        conn_free(c);
}

/* ------------------------------------------------------------ writing */

static void on_flush(uv_idle_t *h)
{
    qs_http2 *srv = h->data;
    qs_list *n;
    /* A connection flushed here may be marked again by what its flush completes: it waits
     * for the next turn, behind the others. */
    qs_list batch;
    qs_list_init(&batch);
    while ((n = qs_list_front(&srv->dirty))) {
        qs_list_unlink(n);
        qs_list_push_back(&batch, n);
    }
    while ((n = qs_list_front(&batch))) {
        qs_list_unlink(n);
        qs_list_init(n);
        conn_flush(qs_list_entry(n, h2conn, dirty_node));
    }
    if (!qs_list_front(&srv->dirty)) {
        uv_idle_stop(h);
        srv->flush_active = false;
    }
}

/* Output waits for the loop: nghttp2's callbacks then never run inside a handler's or a
 * stream's call into this file. */
static void conn_schedule(h2conn *c)
{
    qs_http2 *srv = c->srv;
    if (c->closing || c->lingering || !qs_list_empty(&c->dirty_node))
        return;
    qs_list_push_back(&srv->dirty, &c->dirty_node);
    if (!srv->flush_active) {
        srv->flush_active = true;
        uv_idle_start(&srv->flush, on_flush);
    }
}

/* The streams whose queued write nghttp2 took entirely hear of it after the session's
 * output was produced, not from inside nghttp2. */
static void notify_written(h2conn *c)
{
    qs_list *n, *next;
    for (n = c->streams.next; n != &c->streams; n = next) {
        next = n->next;
        h2stream *st = qs_list_entry(n, h2stream, node);
        if (!st->written_due)
            continue;
        st->written_due = false;
        st->write_queued = false;
        if (!st->gone && st->os.owner_ops)
            st->os.owner_ops->written(st->os.owner, 0);
    }
}

static void conn_flush(h2conn *c)
{
    if (c->closing || c->lingering || c->write_queued)
        return;
    for (;;) {
        while (c->out.len < WRITE_GATHER) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->session, &data);
            if (n < 0) {
                conn_close(c);
                return;
            }
            if (n == 0)
                break;
            qs_buf_append(&c->out, data, (size_t)n);
        }
        if (!c->out.len)
            break;
        uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
        int w = qs_sock_try_write(c->sock, &b, 1);
        if (w < 0) {
            conn_close(c);
            return;
        }
        if ((size_t)w < c->out.len) {
            memmove(c->out.p, c->out.p + w, c->out.len - (size_t)w);
            c->out.len -= (size_t)w;
            b = uv_buf_init(c->out.p, (unsigned)c->out.len);
            if (qs_sock_write(c->sock, &b, 1) < 0) {
                conn_close(c);
                return;
            }
            c->write_queued = true;
            c->write_since = qs_now_ms();
            break;
        }
        qs_buf_free(&c->out);
    }
    notify_written(c);
    if (!c->closing && !nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session) && !c->write_queued)
        conn_linger(c); /* GOAWAY sent and every stream over, or a fatal protocol error */
}

static void ev_written(qs_sock *s, int status)
{
    h2conn *c = s->conn;
    c->write_queued = false;
    qs_buf_free(&c->out);
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_flush(c);
}

/* ---------------------------------------------------- answering requests */

static h2stream *req_stream(qs_http_req *req)
{
    return qs_container_of(req, h2stream, req);
}

static ssize_t read_response(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                             uint32_t *flags, nghttp2_data_source *source, void *user)
{
    QS_UNUSED(session);
    QS_UNUSED(id);
    QS_UNUSED(user);
    h2stream *st = source->ptr;
    size_t n = QS_MIN(length, st->res_body.len - st->res_off);
    memcpy(buf, st->res_body.p + st->res_off, n);
    st->res_off += n;
    if (st->res_off == st->res_body.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        qs_buf_free(&st->res_body);
        st->res_off = 0;
    }
    return (ssize_t)n;
}

/* Connection-specific fields have no place in HTTP/2 (RFC 9113 §8.2.2). */
static bool connection_specific(const char *name, size_t n)
{
    static const char *const banned[] = {"connection", "keep-alive", "proxy-connection",
                                         "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < QS_ARRAY_LEN(banned); i++)
        if (strlen(banned[i]) == n && strncasecmp(banned[i], name, n) == 0)
            return true;
    return false;
}

/* The response's fields as nghttp2 wants them: names in lower case (lowered in place in
 * res->headers, which stays alive until the headers are submitted). */
static nghttp2_nv *response_fields(qs_http_response *res, char *status, char *length,
                                   bool with_length, size_t *n_out)
{
    size_t lines = 0;
    for (size_t i = 0; i < res->headers.len; i++)
        lines += res->headers.p[i] == '\n';
    nghttp2_nv *nv = qs_xcalloc(lines + 3, sizeof(*nv));
    size_t n = 0;
    int code = res->status >= 100 && res->status <= 999 ? res->status : 500;
    status[0] = (char)('0' + code / 100);
    status[1] = (char)('0' + code / 10 % 10);
    status[2] = (char)('0' + code % 10);
    status[3] = '\0';
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    if (res->content_type)
        nv[n++] = (nghttp2_nv){(uint8_t *)"content-type", (uint8_t *)res->content_type, 12,
                               strlen(res->content_type), NGHTTP2_NV_FLAG_NO_COPY_NAME};
    if (with_length) {
        snprintf(length, 24, "%zu", res->body.len);
        nv[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)length, 14, strlen(length),
                               NGHTTP2_NV_FLAG_NO_COPY_NAME};
    }
    char *p = res->headers.p, *end = p ? p + res->headers.len : NULL;
    while (p && p < end) {
        char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            break;
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            size_t name_len = (size_t)(colon - p);
            char *value = colon + 1;
            while (value < eol && *value == ' ')
                value++;
            for (char *q = p; q < colon; q++)
                if (*q >= 'A' && *q <= 'Z')
                    *q = (char)(*q + 32);
            if (!connection_specific(p, name_len))
                nv[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)value, name_len,
                                       (size_t)(eol - value), NGHTTP2_NV_FLAG_NONE};
        }
        p = eol + 2;
    }
    *n_out = n;
    return nv;
}

/* Submits a complete response (its body from st->res_body). */
static void submit_response(h2stream *st, qs_http_response *res)
{
    h2conn *c = st->c;
    char status[4], length[24];
    bool bodiless = st->req.head || res->status == 204 || res->status == 304;
    size_t n;
    nghttp2_nv *nv =
        response_fields(res, status, length, res->status != 204 && res->status != 304, &n);
    qs_buf_free(&st->res_body);
    st->res_off = 0;
    if (!bodiless && res->body.len) {
        st->res_body = res->body;
        res->body = QS_BUF_INIT;
    }
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_response};
    int rv = nghttp2_submit_response(c->session, st->id, nv, n, st->res_body.len ? &prd : NULL);
    free(nv);
    qs_http_response_free(res);
    if (rv < 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    conn_schedule(c);
}

static void req_respond(qs_http_req *req, qs_http_response *res)
{
    h2stream *st = req_stream(req);
    h2conn *c = st->c;
    bool held = st->held;
    st->answered = true;
    st->held = false;
    if (st->gone || c->closing) {
        qs_http_response_free(res); /* the client left while the answer was prepared */
        if (st->gone)
            stream_free(st);
    } else {
        submit_response(st, res);
    }
    if (held)
        conn_unref(c);
}

static void req_hold(qs_http_req *req)
{
    h2stream *st = req_stream(req);
    st->held = true;
    st->c->refs++;
}

static const qs_http_ostream_ops stream_ops;

static qs_http_ostream *req_open_stream(qs_http_req *req)
{
    h2stream *st = req_stream(req);
    if (st->gone || st->c->closing)
        return NULL;
    st->answered = true;
    st->streaming = true;
    qs_sock_watch_peer(st->c->sock);
    st->os = (qs_http_ostream){.ops = &stream_ops, .chunked = false};
    return &st->os;
}

static const qs_http_req_ops req_ops = {
    .respond = req_respond,
    .open_stream = req_open_stream,
    .hold = req_hold,
};

/* ------------------------------------------------------- event streams */

static h2stream *os_stream(qs_http_ostream *os)
{
    return qs_container_of(os, h2stream, os);
}

/* DATA for an event stream: what try_write copied, then what a queued write holds. */
static ssize_t read_stream(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                           uint32_t *flags, nghttp2_data_source *source, void *user)
{
    QS_UNUSED(session);
    QS_UNUSED(id);
    QS_UNUSED(user);
    h2stream *st = source->ptr;
    size_t n = 0;
    if (st->out_off < st->out.len) {
        n = QS_MIN(length, st->out.len - st->out_off);
        memcpy(buf, st->out.p + st->out_off, n);
        st->out_off += n;
        if (st->out_off == st->out.len) {
            qs_buf_free(&st->out);
            st->out_off = 0;
        }
    }
    while (n < length && st->held_i < st->n_held) {
        const uv_buf_t *b = &st->held_iov[st->held_i];
        size_t take = QS_MIN(length - n, b->len - st->held_off);
        memcpy(buf + n, b->base + st->held_off, take);
        n += take;
        st->held_off += take;
        if (st->held_off == b->len) {
            st->held_i++;
            st->held_off = 0;
        }
    }
    if (st->n_held && st->held_i == st->n_held) {
        free(st->held_iov);
        st->held_iov = NULL;
        st->n_held = st->held_i = 0;
        st->written_due = true; /* told after the session's output is out of nghttp2 */
    }
    if (n)
        return (ssize_t)n;
    if (st->ending && !st->n_held) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    return NGHTTP2_ERR_DEFERRED;
}

static void stream_head(qs_http_ostream *os, qs_http_response *head)
{
    h2stream *st = os_stream(os);
    h2conn *c = st->c;
    if (st->gone || c->closing) {
        qs_http_response_free(head);
        return;
    }
    if (head->status != 200) {
        submit_response(st, head); /* no stream after all: a complete answer */
        st->ending = true;
        return;
    }
    char status[4], length[24];
    size_t n;
    nghttp2_nv *nv = response_fields(head, status, length, false, &n);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_stream};
    if (nghttp2_submit_response(c->session, st->id, nv, n, &prd) < 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    free(nv);
    qs_http_response_free(head);
    conn_schedule(c);
}

static int stream_try_write(qs_http_ostream *os, const uv_buf_t *iov, unsigned n)
{
    h2stream *st = os_stream(os);
    if (st->gone || st->c->closing)
        return UV_ECANCELED;
    if (st->write_queued)
        return 0;
    size_t room =
        st->out.len - st->out_off < STREAM_BUFFER ? STREAM_BUFFER - (st->out.len - st->out_off) : 0;
    size_t taken = 0;
    for (unsigned i = 0; i < n && taken < room; i++) {
        size_t take = QS_MIN(iov[i].len, room - taken);
        qs_buf_append(&st->out, iov[i].base, take);
        taken += take;
    }
    if (taken) {
        nghttp2_session_resume_data(st->c->session, st->id);
        conn_schedule(st->c);
    }
    return (int)taken;
}

static int stream_write(qs_http_ostream *os, const uv_buf_t *iov, unsigned n)
{
    h2stream *st = os_stream(os);
    if (st->gone || st->c->closing)
        return UV_ECANCELED;
    if (n > MAX_HELD || st->write_queued)
        return UV_EINVAL;
    st->held_iov = qs_xmalloc(n * sizeof(*iov));
    memcpy(st->held_iov, iov, n * sizeof(*iov));
    st->n_held = n;
    st->held_i = 0;
    st->held_off = 0;
    st->write_queued = true;
    nghttp2_session_resume_data(st->c->session, st->id);
    conn_schedule(st->c);
    return 0;
}

static void stream_close(qs_http_ostream *os, bool graceful)
{
    h2stream *st = os_stream(os);
    h2conn *c = st->c;
    if (st->gone || c->closing)
        return;
    if (graceful) {
        st->ending = true; /* END_STREAM once what was written is framed */
        nghttp2_session_resume_data(c->session, st->id);
    } else {
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    }
    conn_schedule(c);
}

static const qs_http_ostream_ops stream_ops = {
    .head = stream_head,
    .try_write = stream_try_write,
    .write = stream_write,
    .close = stream_close,
};

/* ------------------------------------------------------- reading requests */

static h2stream *stream_of(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    h2conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2stream *st = qs_xcalloc(1, sizeof(*st));
    st->c = c;
    st->id = frame->hd.stream_id;
    st->started_ms = qs_now_ms();
    qs_http2_request_init(&st->fields, c->srv->ctx->hub->cfg->max_header_size);
    qs_list_push_back(&c->streams, &st->node);
    c->n_open++;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    QS_UNUSED(flags);
    QS_UNUSED(user);
    h2stream *st = stream_of(session, frame->hd.stream_id);
    if (!st || st->dispatched)
        return 0;
    /* Bounded like an HTTP/1 head: past the limit the request is refused with 431. */
    if (!qs_http2_request_add(&st->fields, (const char *)name, nlen, (const char *)value, vlen))
        st->refuse = 431;
    return 0;
}

static void dispatch(h2conn *c, h2stream *st)
{
    st->dispatched = true;
    const qs_config *cfg = c->srv->ctx->hub->cfg;
    qs_http2_request_parts parts;
    const char *reason = NULL;
    if (qs_http2_request_finish(&st->fields, &parts, &reason) < 0 && !st->refuse)
        st->refuse = 400;
    st->req = (qs_http_req){
        .ops = &req_ops,
        .ctx = c->srv->ctx,
        .method = parts.method,
        .target = parts.target,
        .path = parts.path,
        .query_string = parts.query,
        .headers = parts.headers,
        .n_headers = parts.n_headers,
        .body = {st->body.p ? st->body.p : "", st->body.len},
        .peer = c->sock->peer,
        .proto = "HTTP/2.0",
        .over_limit = c->over_limit,
        .secure = qs_sock_is_tls(c->sock),
        .head = qs_slice_eq(parts.method, "HEAD"),
        .max_query_pairs = (size_t)cfg->max_topics + 64,
    };
    qs_metric_add(&qs_metrics_global.requests_total, 1);
    if (st->refuse) {
        /* Counted as HTTP/1 counts the requests it refuses before routing them. */
        qs_metric_add(&qs_metrics_global.bad_requests_total, 1);
        qs_debug("bad HTTP/2 request from %s: %d", c->sock->peer, st->refuse);
        if (st->refuse == 413)
            c->srv->router->refused(st->req.method, st->req.path, 413);
        qs_http_error(&st->req, st->refuse,
                      st->refuse == 413   ? "request body too large"
                      : st->refuse == 431 ? "request head too large"
                                          : reason,
                      NULL);
    } else {
        qs_http_dispatch(c->srv->router, &st->req);
    }
    /* The request's slices are gone with the call: its fields are no longer needed. */
    free(parts.headers);
    st->req.headers = NULL;
    st->req.n_headers = 0;
    qs_http_req_finish(&st->req);
    qs_http2_request_free(&st->fields);
    qs_buf_free(&st->body);
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    QS_UNUSED(flags);
    h2conn *c = user;
    h2stream *st = stream_of(session, id);
    if (!st || st->dispatched || st->refuse)
        return 0;
    if (st->body.len + len > c->srv->ctx->hub->cfg->max_request_body_size) {
        st->refuse = 413;
        qs_buf_free(&st->body);
        return 0;
    }
    qs_buf_append(&st->body, data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    h2conn *c = user;
    if (frame->hd.type == NGHTTP2_DATA && frame->hd.length == 0 &&
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && ++c->empty_data > MAX_EMPTY_DATA) {
        /* Empty DATA frames cost the hub and carry nothing: a flood ends the connection. */
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
        return 0;
    }
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2stream *st = stream_of(session, frame->hd.stream_id);
    if (st && !st->dispatched)
        dispatch(c, st);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *user)
{
    QS_UNUSED(code);
    h2conn *c = user;
    h2stream *st = stream_of(session, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    if (c->n_open && --c->n_open == 0)
        c->idle_since = qs_now_ms();
    qs_list_unlink(&st->node);
    qs_list_init(&st->node);
    stream_gone(st);
    return 0;
}

static void ev_read(qs_sock *s, const char *data, size_t len)
{
    h2conn *c = s->conn;
    if (c->closing)
        return;
    if (c->lingering) {
        c->lingered += len; /* discarded; bounded so a sender cannot keep it open */
        if (c->lingered > LINGER_BYTES)
            conn_close(c);
        return;
    }
    ssize_t rv = nghttp2_session_mem_recv(c->session, (const uint8_t *)data, len);
    if (rv < 0) {
        qs_debug("HTTP/2 connection from %s: %s", s->peer, nghttp2_strerror((int)rv));
        /* A flood is told apart from a broken peer: the GOAWAY says which. */
        bool flood = rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ||
                     rv == NGHTTP2_ERR_TOO_MANY_SETTINGS;
        if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
            /* Not HTTP/2 at all: no frame is owed to such a peer (RFC 9113 §3.4). */
            conn_close(c);
            return;
        }
        nghttp2_session_terminate_session(c->session, flood ? NGHTTP2_ENHANCE_YOUR_CALM
                                                            : NGHTTP2_PROTOCOL_ERROR);
    }
    /* The answers go once the whole read is in: over TLS a read comes as several records,
     * each handed here, and their frames should share writes. */
    conn_schedule(c);
}

static void ev_ended(qs_sock *s, int status)
{
    h2conn *c = s->conn;
    if (status == UV_ETIMEDOUT && c->n_open)
        qs_metric_add(&qs_metrics_global.subscribers_dropped[QS_DROP_DISPATCH_TIMEOUT], 1);
    conn_close(c);
}

static const qs_sock_events events = {
    .read = ev_read,
    .ended = ev_ended,
    .written = ev_written,
    .closed = ev_closed,
};

/* --------------------------------------------------------- connections */

static nghttp2_session_callbacks *shared_callbacks;
static nghttp2_option *shared_options;
static uv_once_t shared_once = UV_ONCE_INIT;

static void make_shared(void)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    shared_callbacks = cbs;
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* Closed streams are not kept for priority: memory stays with open streams. */
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, HPACK_TABLE_SIZE);
    /* Floods: SETTINGS per frame, queued ACKs (PING, SETTINGS), resets (CVE-2023-44487),
     * CONTINUATION frames per header block (CVE-2024-27316). */
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_continuations(opt, 8);
    shared_options = opt;
}

void qs_http2_start(void *state, qs_sock *s, const char *initial, size_t len)
{
    qs_http2 *srv = state;
    uv_once(&shared_once, make_shared);
    h2conn *c = qs_xcalloc(1, sizeof(*c));
    c->sock = s;
    c->srv = srv;
    c->over_limit = s->over_limit;
    c->idle_since = qs_now_ms();
    qs_list_init(&c->node);
    qs_list_init(&c->dirty_node);
    qs_list_init(&c->streams);
    s->events = &events;
    s->conn = c;
    qs_list_push_back(&srv->conns, &c->node);
    if (nghttp2_session_server_new2(&c->session, shared_callbacks, c, shared_options) != 0) {
        conn_close(c);
        return;
    }
    const qs_config *cfg = srv->ctx->hub->cfg;
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->over_limit ? 1 : MAX_CONCURRENT_STREAMS},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, HPACK_TABLE_SIZE},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)QS_MIN(cfg->max_header_size, UINT32_MAX)},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, QS_ARRAY_LEN(settings));
    if (srv->stopping) {
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
        c->goaway = true;
    }
    if (len)
        ev_read(s, initial, len);
    else
        conn_flush(c);
}

/* ------------------------------------------------------------- worker */

qs_http2 *qs_http2_new(qs_ctx *ctx, const qs_http_router *router)
{
    qs_http2 *h = qs_xcalloc(1, sizeof(*h));
    h->ctx = ctx;
    h->router = router;
    qs_list_init(&h->conns);
    qs_list_init(&h->dirty);
    uv_idle_init(&ctx->loop, &h->flush);
    h->flush.data = h;
    return h;
}

void qs_http2_shutdown(qs_http2 *h)
{
    h->stopping = true;
    qs_list *n, *next;
    for (n = h->conns.next; n != &h->conns; n = next) {
        next = n->next;
        h2conn *c = qs_list_entry(n, h2conn, node);
        if (c->goaway || c->closing || c->lingering)
            continue;
        c->goaway = true;
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                              NULL, 0);
        conn_schedule(c);
    }
}

void qs_http2_close_all(qs_http2 *h)
{
    qs_list *n;
    while ((n = qs_list_front(&h->conns))) {
        h2conn *c = qs_list_entry(n, h2conn, node);
        qs_list_unlink(n);
        qs_list_init(n);
        conn_close(c);
    }
}

void qs_http2_check_timeouts(qs_http2 *h, uint64_t now)
{
    const qs_config *cfg = h->ctx->hub->cfg;
    qs_list *n, *next;
    for (n = h->conns.next; n != &h->conns; n = next) {
        next = n->next;
        h2conn *c = qs_list_entry(n, h2conn, node);
        if (c->closing)
            continue;
        if (c->lingering) {
            if (now - c->linger_since >= LINGER_MS)
                conn_close(c);
            continue;
        }
        if (c->write_queued && cfg->dispatch_timeout_ms &&
            now - c->write_since >= 2 * cfg->dispatch_timeout_ms) {
            conn_close(c); /* the peer reads nothing at all, for any stream */
            continue;
        }
        if (!c->n_open && now - c->idle_since >= cfg->idle_timeout_ms) {
            conn_close(c);
            continue;
        }
        /* Requests that do not arrive in time are reset, one by one. */
        qs_list *sn;
        for (sn = c->streams.next; sn != &c->streams; sn = sn->next) {
            h2stream *st = qs_list_entry(sn, h2stream, node);
            if (!st->dispatched && now - st->started_ms >= cfg->request_timeout_ms) {
                st->dispatched = true; /* nothing more is read for it */
                nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
                conn_schedule(c);
            }
        }
    }
}

void qs_http2_close(qs_http2 *h)
{
    if (!uv_is_closing((uv_handle_t *)&h->flush))
        uv_close((uv_handle_t *)&h->flush, NULL);
}

void qs_http2_free(qs_http2 *h)
{
    free(h);
}
