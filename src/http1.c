/* SPDX-License-Identifier: MIT
 * http1.c - HTTP/1.x connections: requests in, responses and event streams out.
 *
 * A connection reads a head (http1_parse.c), then its body (Content-Length or chunked),
 * routes the request, and waits for the answer: written at once, held by a handler that
 * answers later (a publish awaiting the transport), or turned into an event stream.
 * Pipelined bytes received meanwhile wait in the connection; the next request is parsed
 * once the answer is written.
 */
#include "http1.h"

#include <stdlib.h>

#include "http1_parse.h"
#include "list.h"
#include "log.h"
#include "metrics.h"

/* How long a closing connection keeps reading what its client still sends. */
#define LINGER_MS 2000
/* Most buffers a stream hands to one write, plus the pending response head. */
#define MAX_IOV 65

enum conn_state {
    CONN_HEAD,      /* reading a request head */
    CONN_BODY,      /* reading a request body */
    CONN_HANDLING,  /* a handler is working (maybe asynchronously) */
    CONN_WRITING,   /* the response is being written */
    CONN_STREAMING, /* an event stream */
    CONN_LINGERING, /* the last response is sent: discard input until EOF, then close */
};

enum timer_list { TIMER_NONE, TIMER_READING, TIMER_IDLE, TIMER_LINGER };

struct qs_http1 {
    qs_ctx *ctx;
    const qs_http_router *router;
    qs_list conns;     /* every open connection */
    qs_list reading;   /* receiving a request, oldest first (request_timeout) */
    qs_list idle;      /* keep-alive between requests, oldest first (idle_timeout) */
    qs_list lingering; /* closing after an error response, oldest first */
};

/* A request being received or answered: what the handler sees and the head it points
 * into. Freed once answered (or with its connection). */
typedef struct exchange {
    qs_http_req req;
    struct conn *c;
    bool held;     /* a handler answers later */
    bool answered; /* responded or turned into a stream */
    qs_http1_head head;
} exchange;

typedef struct conn {
    qs_sock *sock; /* NULL once closed */
    qs_http1 *srv;
    qs_list node;       /* in srv->conns */
    qs_list timer_node; /* in one of srv's timer lists */
    uint64_t timer_start_ms;
    uint8_t timer_list; /* enum timer_list */
    uint8_t minor_version;
    enum conn_state state;
    uint32_t refs;    /* held requests */
    bool closing;     /* the socket is closing */
    bool closed;      /* the socket's close callback ran */
    bool keep_alive;  /* another request may follow the current one */
    bool in_process;  /* inside conn_process: responses must not re-enter it */
    bool in_handler;  /* inside the handler call: it frees the exchange */
    bool head_method; /* the request being answered is HEAD: no body */
    bool over_limit;  /* accepted from the reserve beyond max_connections */
    qs_buf in;        /* unprocessed input (empty most of the time) */
    qs_buf head;      /* the head of a request still receiving its body */
    size_t lingered;  /* bytes discarded while lingering */
    qs_http1_parser parser;
    exchange *x; /* while a request is being read or answered */
    qs_buf body;
    qs_http1_chunked chunked;
    uint64_t body_left; /* Content-Length bytes still to read */
    /* An event stream: its response head waits in `pending` (not yet written from
     * pending_off) so that it leaves with the first bytes of the stream. */
    qs_http_ostream os;
    char *pending;
    uint32_t pending_len, pending_off;
    bool write_queued; /* a write waits for the socket's `written` */
    bool close_after;  /* the queued write is the last response: linger, then close */
    qs_buf out;        /* the part of a response the socket did not take at once */
} conn;

static void conn_process(conn *c, const char *data, size_t len);
static void conn_linger(conn *c);
static void conn_after_response(conn *c);

/* ----------------------------------------------------------- lifetime */

/* Puts the connection on the list of the timeout that now applies to it. The lists are
 * ordered by start time because every entry of a list has the same timeout. */
static void conn_set_timer(conn *c, enum timer_list which)
{
    qs_list_unlink(&c->timer_node);
    c->timer_list = which;
    if (which == TIMER_NONE)
        return;
    c->timer_start_ms = qs_now_ms();
    qs_list_push_back(which == TIMER_READING ? &c->srv->reading
                      : which == TIMER_IDLE  ? &c->srv->idle
                                             : &c->srv->lingering,
                      &c->timer_node);
}

static void exchange_free(exchange *x)
{
    if (!x)
        return;
    qs_http_req_release(&x->req);
    free(x);
}

static void conn_free(conn *c)
{
    qs_buf_free(&c->in);
    qs_buf_free(&c->body);
    qs_buf_free(&c->head);
    qs_buf_free(&c->out);
    exchange_free(c->x);
    free(c->pending);
    free(c);
}

static void ev_closed(qs_sock *s)
{
    conn *c = s->conn;
    c->closing = true;
    c->closed = true;
    c->sock = NULL;
    qs_list_unlink(&c->node);
    qs_list_unlink(&c->timer_node);
    if (c->os.owner_ops) /* a stream: its owner frees what it had */
        c->os.owner_ops->closed(c->os.owner);
    if (c->refs == 0)
        conn_free(c);
    /* else: the last held request's answer frees it */
}

static void conn_unref(conn *c)
{
    if (--c->refs == 0 && c->closed)
        conn_free(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    qs_list_unlink(&c->node);
    qs_list_unlink(&c->timer_node);
    qs_sock_close(c->sock);
}

/* ------------------------------------------------------------ writing */

/* After a response that ends the connection (an error, often sent before the request body
 * was read): send FIN, then read and discard what the client still sends for a moment.
 * Closing at once would make the kernel answer the unread bytes with a reset, which can
 * destroy the response before the client reads it. */
static void conn_linger(conn *c)
{
    if (c->closing)
        return;
    c->state = CONN_LINGERING;
    qs_sock_shutdown(c->sock);
    if (!c->closing)
        conn_set_timer(c, TIMER_LINGER);
}

/* The rest of a response is written. */
static void response_written(conn *c, int status)
{
    qs_buf_free(&c->out);
    if (status < 0)
        conn_close(c);
    else if (c->close_after)
        conn_linger(c);
    else
        conn_after_response(c);
}

/* Writes a response; once written the connection lingers and closes, or reads the next
 * request. */
static void conn_write_response(conn *c, const char *data, size_t len, bool close_after)
{
    c->state = CONN_WRITING;
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int n = qs_sock_try_write(c->sock, &buf, 1);
    if (n == (int)len) {
        if (close_after)
            conn_linger(c);
        else
            conn_after_response(c);
        return;
    }
    if (n < 0) {
        conn_close(c);
        return;
    }
    qs_buf_reset(&c->out);
    qs_buf_append(&c->out, data + n, len - (size_t)n);
    uv_buf_t rest = uv_buf_init(c->out.p, (unsigned)c->out.len);
    c->close_after = close_after;
    c->write_queued = true;
    if (qs_sock_write(c->sock, &rest, 1) < 0) {
        c->write_queued = false;
        conn_close(c);
    }
}

static void append_status_line(qs_buf *b, int minor, int status)
{
    qs_buf_append_str(b, minor ? "HTTP/1.1 " : "HTTP/1.0 ");
    qs_buf_append_u64(b, (uint64_t)status);
    qs_buf_append_char(b, ' ');
    qs_buf_append_str(b, qs_http_status_text(status));
    qs_buf_append(b, "\r\n", 2);
}

static void append_date(qs_buf *b)
{
    /* Formatted once a second per thread: every response carries it. */
    static _Thread_local time_t formatted_at = -1;
    static _Thread_local char line[64];
    static _Thread_local size_t line_len;
    time_t now = time(NULL);
    if (now != formatted_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        line_len = strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        formatted_at = now;
    }
    qs_buf_append(b, line, line_len);
}

static void append_content_type(qs_buf *b, const char *type)
{
    if (!type)
        return;
    qs_buf_append_str(b, "Content-Type: ");
    qs_buf_append_str(b, type);
    qs_buf_append(b, "\r\n", 2);
}

/* Sends a complete response and frees r's buffers. */
static void conn_send(conn *c, qs_http_response *r)
{
    bool close_after = !c->keep_alive || c->srv->ctx->stopping;
    int minor = c->minor_version;
    qs_buf out = QS_BUF_INIT;
    qs_buf_reserve(&out, 256 + r->headers.len + r->body.len);
    append_status_line(&out, minor, r->status);
    append_date(&out);
    append_content_type(&out, r->content_type);
    if (r->status != 204 && r->status != 304 && r->status >= 200) {
        qs_buf_append_str(&out, "Content-Length: ");
        qs_buf_append_u64(&out, r->body.len);
        qs_buf_append(&out, "\r\n", 2);
    }
    if (close_after)
        qs_buf_append_str(&out, "Connection: close\r\n");
    else if (minor == 0)
        qs_buf_append_str(&out, "Connection: keep-alive\r\n");
    qs_buf_append(&out, r->headers.p, r->headers.len);
    qs_buf_append(&out, "\r\n", 2);
    if (!c->head_method)
        qs_buf_append(&out, r->body.p, r->body.len);
    qs_http_response_free(r);
    c->keep_alive = !close_after;
    conn_write_response(c, out.p, out.len, close_after);
    qs_buf_free(&out);
}

/* An error found before a request could be routed: answer and close. */
static void conn_fail(conn *c, int status, const char *reason)
{
    qs_metric_add(&qs_metrics_global.bad_requests_total, 1);
    qs_debug("bad request from %s: %d %s", c->sock->peer, status, reason);
    c->keep_alive = false;
    qs_http_response r;
    qs_http_response_error(&r, status, reason, NULL);
    conn_send(c, &r);
}

/* ---------------------------------------------------- answering a request */

static exchange *req_exchange(qs_http_req *req)
{
    return qs_container_of(req, exchange, req);
}

/* The exchange is answered: it is freed now, unless the handler call that owns it is still
 * running (conn_dispatch frees it when the call returns). */
static void exchange_answered(conn *c, exchange *x)
{
    x->answered = true;
    if (c->in_handler && c->x == x)
        return;
    if (c->x == x)
        c->x = NULL;
    exchange_free(x);
}

static void req_respond(qs_http_req *req, qs_http_response *res)
{
    exchange *x = req_exchange(req);
    conn *c = x->c;
    bool held = x->held;
    /* Done with the exchange before the answer is written: writing it may start the next
     * pipelined request. */
    exchange_answered(c, x);
    if (c->closing)
        qs_http_response_free(res); /* the client left while the answer was prepared */
    else
        conn_send(c, res);
    if (held)
        conn_unref(c);
}

static void req_hold(qs_http_req *req)
{
    exchange *x = req_exchange(req);
    x->held = true;
    x->c->refs++;
}

static const qs_http_ostream_ops stream_ops;

static qs_http_ostream *req_open_stream(qs_http_req *req)
{
    exchange *x = req_exchange(req);
    conn *c = x->c;
    if (c->closing)
        return NULL;
    c->state = CONN_STREAMING;
    c->keep_alive = false;
    qs_sock_watch_peer(c->sock);
    c->os = (qs_http_ostream){.ops = &stream_ops, .chunked = c->minor_version >= 1};
    exchange_answered(c, x);
    return &c->os;
}

static const qs_http_req_ops req_ops = {
    .respond = req_respond,
    .open_stream = req_open_stream,
    .hold = req_hold,
};

/* ------------------------------------------------------- event streams */

static conn *stream_conn(qs_http_ostream *os)
{
    return qs_container_of(os, conn, os);
}

static void stream_head(qs_http_ostream *os, qs_http_response *head)
{
    conn *c = stream_conn(os);
    qs_buf b = QS_BUF_INIT;
    append_status_line(&b, c->minor_version, head->status);
    append_date(&b);
    append_content_type(&b, head->content_type);
    if (head->status == 200) {
        qs_buf_append_str(&b, "Connection: keep-alive\r\n");
        qs_buf_append(&b, head->headers.p, head->headers.len);
        qs_buf_append_str(&b,
                          c->minor_version >= 1 ? "Transfer-Encoding: chunked\r\n\r\n" : "\r\n");
    } else {
        /* No stream after all: a complete answer, then the connection closes. */
        qs_buf_append_str(&b, "Content-Length: ");
        qs_buf_append_u64(&b, head->body.len);
        qs_buf_append_str(&b, "\r\nConnection: close\r\n");
        qs_buf_append(&b, head->headers.p, head->headers.len);
        qs_buf_append_str(&b, "\r\n");
        qs_buf_append(&b, head->body.p, head->body.len);
    }
    qs_http_response_free(head);
    free(c->pending);
    c->pending_len = (uint32_t)b.len;
    c->pending_off = 0;
    c->pending = qs_buf_steal(&b);
}

/* iov with the unwritten part of the pending head in front; returns the count. */
static unsigned with_pending(conn *c, const uv_buf_t *iov, unsigned n, uv_buf_t *out)
{
    unsigned k = 0;
    if (c->pending)
        out[k++] = uv_buf_init(c->pending + c->pending_off, c->pending_len - c->pending_off);
    for (unsigned i = 0; i < n && k < MAX_IOV; i++)
        out[k++] = iov[i];
    return k;
}

/* Of `written` bytes, those that belonged to the pending head; returns the rest. */
static size_t consume_pending(conn *c, size_t written)
{
    if (!c->pending)
        return written;
    size_t left = c->pending_len - c->pending_off;
    if (written < left) {
        c->pending_off += (uint32_t)written;
        return 0;
    }
    free(c->pending);
    c->pending = NULL;
    return written - left;
}

static int stream_try_write(qs_http_ostream *os, const uv_buf_t *iov, unsigned n)
{
    conn *c = stream_conn(os);
    if (c->closing)
        return UV_ECANCELED;
    uv_buf_t all[MAX_IOV];
    unsigned k = with_pending(c, iov, n, all);
    int w = qs_sock_try_write(c->sock, all, k);
    if (w < 0)
        return w;
    return (int)consume_pending(c, (size_t)w);
}

static void stream_written(conn *c, int status)
{
    if (status == 0) {
        free(c->pending); /* a head that was part of this write is out */
        c->pending = NULL;
    }
    c->os.owner_ops->written(c->os.owner, status);
}

static int stream_write(qs_http_ostream *os, const uv_buf_t *iov, unsigned n)
{
    conn *c = stream_conn(os);
    if (c->closing)
        return UV_ECANCELED;
    uv_buf_t all[MAX_IOV];
    unsigned k = with_pending(c, iov, n, all);
    int rc = qs_sock_write(c->sock, all, k);
    c->write_queued = rc == 0;
    return rc;
}

static void stream_close(qs_http_ostream *os, bool graceful)
{
    conn *c = stream_conn(os);
    if (graceful && c->pending && !c->closing && !c->write_queued) {
        /* A head (or a refusal) nothing was written after: it goes first. */
        char *p = c->pending;
        c->pending = NULL;
        conn_write_response(c, p + c->pending_off, c->pending_len - c->pending_off, true);
        free(p);
        return;
    }
    conn_close(c);
}

static const qs_http_ostream_ops stream_ops = {
    .head = stream_head,
    .try_write = stream_try_write,
    .write = stream_write,
    .close = stream_close,
};

/* ------------------------------------------------------------ reading */

static void ev_read(qs_sock *s, const char *data, size_t len)
{
    conn *c = s->conn;
    if (c->closing)
        return;
    if (c->state == CONN_STREAMING)
        return; /* a subscriber has nothing more to say; ignore what it sends */
    if (c->state == CONN_LINGERING) {
        c->lingered += len; /* discarded; bounded so a sender cannot keep it open */
        if (c->lingered > (1u << 20))
            conn_close(c);
        return;
    }
    if (c->state == CONN_HANDLING || c->state == CONN_WRITING) {
        /* Pipelined bytes while a response is pending: keep them, bounded, for later. */
        const qs_config *cfg = c->srv->ctx->hub->cfg;
        if (c->in.len + len > cfg->max_header_size + cfg->max_request_body_size) {
            conn_close(c);
            return;
        }
        qs_buf_append(&c->in, data, len);
        return;
    }
    if (c->in.len) {
        qs_buf_append(&c->in, data, len);
        qs_buf pending = c->in;
        c->in = QS_BUF_INIT;
        conn_process(c, pending.p, pending.len);
        qs_buf_free(&pending);
    } else {
        conn_process(c, data, len);
    }
}

/* EOF or error: a subscriber went away, or a client closed between requests. A timeout is
 * the kernel giving up on a peer that stopped acknowledging. */
static void ev_ended(qs_sock *s, int status)
{
    conn *c = s->conn;
    if (status == UV_ETIMEDOUT && c->state == CONN_STREAMING)
        qs_metric_add(&qs_metrics_global.subscribers_dropped[QS_DROP_DISPATCH_TIMEOUT], 1);
    conn_close(c);
}

static void ev_written(qs_sock *s, int status)
{
    conn *c = s->conn;
    c->write_queued = false;
    if (c->closing)
        return; /* the owner hears of it from the close callback */
    if (c->state == CONN_STREAMING && c->os.owner_ops)
        stream_written(c, status);
    else
        response_written(c, status);
}

static const qs_sock_events events = {
    .read = ev_read,
    .ended = ev_ended,
    .written = ev_written,
    .closed = ev_closed,
};

/* Runs the request whose head and body are complete. The head's slices are valid only
 * during the handler call. */
static void conn_dispatch(conn *c)
{
    exchange *x = c->x;
    const qs_http1_head *h = &x->head;
    const qs_config *cfg = c->srv->ctx->hub->cfg;
    conn_set_timer(c, TIMER_NONE);
    c->state = CONN_HANDLING;
    c->head_method = qs_slice_eq(h->method, "HEAD");
    c->minor_version = (uint8_t)h->minor_version;
    x->req = (qs_http_req){
        .ops = &req_ops,
        .ctx = c->srv->ctx,
        .method = h->method,
        .target = h->target,
        .path = h->path,
        .query_string = h->query,
        .headers = h->headers,
        .n_headers = h->n_headers,
        .body = {c->body.p ? c->body.p : "", c->body.len},
        .peer = c->sock->peer,
        .proto = h->minor_version ? "HTTP/1.1" : "HTTP/1.0",
        .over_limit = c->over_limit,
        .secure = qs_sock_is_tls(c->sock),
        .head = c->head_method,
        .max_query_pairs = (size_t)cfg->max_topics + 64,
    };
    qs_metric_add(&qs_metrics_global.requests_total, 1);
    c->in_handler = true;
    qs_http_dispatch(c->srv->router, &x->req);
    c->in_handler = false;
    qs_http_req_finish(&x->req);
    if (x->answered) {
        if (c->x == x)
            c->x = NULL;
        exchange_free(x);
    }
    if (c->state == CONN_STREAMING && !c->closing) {
        /* A stream keeps nothing of its request. */
        qs_buf_free(&c->body);
        qs_buf_free(&c->head);
        qs_buf_free(&c->in);
    }
}

/* Consumes body bytes; returns how many were used, or -1 when the connection failed. */
static ssize_t conn_feed_body(conn *c, const char *data, size_t len)
{
    const qs_config *cfg = c->srv->ctx->hub->cfg;
    const qs_http1_head *h = &c->x->head;
    if (h->chunked) {
        size_t used = 0;
        const char *err = NULL;
        enum qs_http1_status st = qs_http1_parse_chunked(&c->chunked, data, len, &used, &c->body,
                                                         cfg->max_request_body_size, &err);
        if (st == QS_HTTP1_OK) {
            c->body_left = 0;
            return (ssize_t)used;
        }
        if (st == QS_HTTP1_AGAIN)
            return (ssize_t)used;
        if (st == QS_HTTP1_E_TOO_LARGE)
            c->srv->router->refused(h->method, h->path, 413);
        conn_fail(c, st == QS_HTTP1_E_TOO_LARGE ? 413 : 400, err);
        return -1;
    }
    size_t take = (size_t)QS_MIN((uint64_t)len, c->body_left);
    qs_buf_append(&c->body, data, take);
    c->body_left -= take;
    return (ssize_t)take;
}

/* Copies the parsed head into the connection so its slices survive this read. */
static void conn_own_head(conn *c, const char *head)
{
    qs_http1_head *r = &c->x->head;
    qs_buf_reset(&c->head);
    qs_buf_append(&c->head, head, r->head_len);
    ptrdiff_t delta = c->head.p - head;
    r->method.p += delta;
    r->target.p += delta;
    r->path.p += delta;
    r->query.p += delta;
    for (size_t i = 0; i < r->n_headers; i++) {
        r->headers[i].name.p += delta;
        r->headers[i].value.p += delta;
    }
}

static void conn_begin_body(conn *c)
{
    const qs_config *cfg = c->srv->ctx->hub->cfg;
    const qs_http1_head *h = &c->x->head;
    qs_http1_parser_reset(&c->parser);
    c->keep_alive = h->keep_alive && !c->over_limit;
    qs_buf_reset(&c->body);
    c->state = CONN_BODY;
    c->body_left = 0;
    if (h->chunked) {
        qs_http1_chunked_reset(&c->chunked);
        c->body_left = 1; /* unknown until the last chunk */
    } else if (h->has_content_length) {
        if (h->content_length > cfg->max_request_body_size) {
            c->srv->router->refused(h->method, h->path, 413);
            conn_fail(c, 413, "request body too large");
            return;
        }
        c->body_left = h->content_length;
    }
    if (c->body_left && h->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        qs_sock_try_write(c->sock, &b, 1);
    }
}

/* Parses and runs the requests in data[0..len). data belongs to the caller and is valid
 * only during the call (often it is the worker's shared read buffer): whatever must
 * outlive the call — a partial head, a head awaiting its body, pipelined bytes behind a
 * pending response — is copied into the connection. */
static void conn_process(conn *c, const char *data, size_t len)
{
    const qs_config *cfg = c->srv->ctx->hub->cfg;
    c->in_process = true;
    while (!c->closing) {
        if (c->state == CONN_HANDLING || c->state == CONN_WRITING) {
            qs_buf_append(&c->in, data, len); /* processed after the response */
            break;
        }
        if (c->state == CONN_STREAMING || c->state == CONN_LINGERING || !len)
            break;
        if (c->state == CONN_HEAD) {
            if (!c->x) {
                /* Zeroed: the request is empty until its head is parsed (not the head's
                 * own fields, which the parser fills). */
                c->x = qs_xmalloc(sizeof(*c->x));
                memset(c->x, 0, offsetof(exchange, head));
                c->x->c = c;
            }
            if (c->timer_list != TIMER_READING) {
                /* First bytes of a request: its timeout starts now. */
                conn_set_timer(c, TIMER_READING);
            }
            const char *err = NULL;
            enum qs_http1_status st =
                qs_http1_parse_head(&c->parser, data, len, cfg->max_header_size, &c->x->head, &err);
            if (st == QS_HTTP1_AGAIN) {
                qs_buf_append(&c->in, data, len);
                break;
            }
            if (st != QS_HTTP1_OK) {
                int status = st == QS_HTTP1_E_TOO_LARGE         ? 431
                             : st == QS_HTTP1_E_NOT_IMPLEMENTED ? 501
                             : st == QS_HTTP1_E_VERSION         ? 505
                                                                : 400;
                conn_fail(c, status, err);
                break;
            }
            const char *head = data;
            data += c->x->head.head_len;
            len -= c->x->head.head_len;
            conn_begin_body(c);
            if (c->closing || c->state != CONN_BODY)
                break;
            if (c->body_left) {
                ssize_t used = conn_feed_body(c, data, len);
                if (used < 0)
                    break;
                data += used;
                len -= (size_t)used;
                if (c->body_left) {
                    conn_own_head(c, head); /* wait for the rest of the body */
                    break;
                }
            }
            conn_dispatch(c);
            continue;
        }
        /* CONN_BODY: the head is owned by c->head; more body arrived. */
        ssize_t used = conn_feed_body(c, data, len);
        if (used < 0)
            break;
        data += used;
        len -= (size_t)used;
        if (c->body_left)
            break;
        conn_dispatch(c);
    }
    c->in_process = false;
}

/* After a response was fully written on a keep-alive connection. */
static void conn_after_response(conn *c)
{
    if (c->closing)
        return;
    qs_buf_reset(&c->body);
    if (c->body.cap > 64 * 1024)
        qs_buf_free(&c->body);
    qs_buf_free(&c->head);
    c->state = CONN_HEAD;
    conn_set_timer(c, TIMER_IDLE);
    if (c->in_process)
        return; /* the loop in conn_process goes on with the bytes it holds */
    if (c->in.len) {
        qs_buf pending = c->in;
        c->in = QS_BUF_INIT;
        conn_process(c, pending.p, pending.len);
        qs_buf_free(&pending);
    }
}

/* ------------------------------------------------------------ accept */

void qs_http1_start(void *state, qs_sock *s, const char *initial, size_t len)
{
    qs_http1 *srv = state;
    conn *c = qs_xcalloc(1, sizeof(*c));
    c->sock = s;
    c->srv = srv;
    s->events = &events;
    s->conn = c;
    qs_list_init(&c->node);
    qs_list_init(&c->timer_node);
    qs_list_push_back(&srv->conns, &c->node);
    c->state = CONN_HEAD;
    c->over_limit = s->over_limit;
    c->keep_alive = !c->over_limit;
    c->minor_version = 1;
    conn_set_timer(c, TIMER_READING);
    if (len)
        conn_process(c, initial, len);
}

/* ------------------------------------------------------------- worker */

qs_http1 *qs_http1_new(qs_ctx *ctx, const qs_http_router *router)
{
    qs_http1 *h = qs_xcalloc(1, sizeof(*h));
    h->ctx = ctx;
    h->router = router;
    qs_list_init(&h->conns);
    qs_list_init(&h->reading);
    qs_list_init(&h->idle);
    qs_list_init(&h->lingering);
    return h;
}

void qs_http1_close_idle(qs_http1 *h)
{
    qs_list *n, *next;
    for (n = h->conns.next; n != &h->conns; n = next) {
        next = n->next;
        conn *c = qs_list_entry(n, conn, node);
        if (c->state == CONN_HEAD || c->state == CONN_BODY || c->state == CONN_LINGERING)
            conn_close(c);
    }
}

void qs_http1_close_all(qs_http1 *h)
{
    qs_list *n;
    while ((n = qs_list_front(&h->conns)))
        conn_close(qs_list_entry(n, conn, node));
}

void qs_http1_check_timeouts(qs_http1 *h, uint64_t now)
{
    const qs_config *cfg = h->ctx->hub->cfg;
    qs_list *n;
    while ((n = qs_list_front(&h->reading))) {
        conn *c = qs_list_entry(n, conn, timer_node);
        if (now - c->timer_start_ms < cfg->request_timeout_ms)
            break;
        conn_set_timer(c, TIMER_NONE);
        if (c->in.len || c->state == CONN_BODY) {
            c->keep_alive = false;
            conn_fail(c, 408, "request timeout");
        } else {
            conn_close(c);
        }
    }
    while ((n = qs_list_front(&h->idle))) {
        conn *c = qs_list_entry(n, conn, timer_node);
        if (now - c->timer_start_ms < cfg->idle_timeout_ms)
            break;
        conn_close(c);
    }
    while ((n = qs_list_front(&h->lingering))) {
        conn *c = qs_list_entry(n, conn, timer_node);
        if (now - c->timer_start_ms < LINGER_MS)
            break;
        conn_close(c);
    }
}

void qs_http1_free(qs_http1 *h)
{
    free(h);
}
