/* SPDX-License-Identifier: MIT
 * conn.c - HTTP/1.x connections: reading requests, writing responses, keep-alive,
 * pipelining, timeouts and limits.
 *
 * Reads land in the worker's shared buffer; only the unprocessed tail of a partial
 * request is copied into the connection, so an idle connection (a subscriber, a
 * keep-alive client) holds no input buffer at all.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "log.h"
#include "metrics.h"
#include "server.h"

/* A response larger than this is copied into a write request; below it is the common
 * case, written straight from the caller's buffer when the socket takes it all. */
typedef struct conn_write {
    uv_write_t req;
    qs_conn *conn;
    bool close_after;
    size_t len;
    char data[];
} conn_write;

/* How long a closing connection keeps reading what its client still sends. */
#define LINGER_MS 2000

static void conn_process(qs_conn *c, const char *data, size_t len);
static void conn_linger(qs_conn *c);
static void conn_start_reading(qs_conn *c);
static void conn_after_response(qs_conn *c);

/* ----------------------------------------------------------- lifetime */

/* Puts the connection on the list of the timeout that now applies to it. The lists are
 * ordered by start time because every entry of a list has the same timeout. */
static void conn_set_timer(qs_conn *c, enum qs_timer_list which)
{
    qs_list_unlink(&c->timer_node);
    c->timer_list = which;
    if (which == QS_TIMER_NONE)
        return;
    c->timer_start_ms = qs_now_ms();
    qs_list_push_back(which == QS_TIMER_READING ? &c->w->conns_reading
                      : which == QS_TIMER_IDLE  ? &c->w->conns_idle
                                                : &c->w->conns_lingering,
                      &c->timer_node);
}

static void conn_free(qs_conn *c)
{
    qs_buf_free(&c->in);
    qs_buf_free(&c->body);
    qs_buf_free(&c->head);
    free(c->req);
    free(c);
}

static void on_close(uv_handle_t *h)
{
    qs_conn *c = qs_container_of((uv_tcp_t *)h, qs_conn, tcp);
    qs_metric_sub(&qs_metrics_global.connections_open, 1);
    c->w->n_conns--;
    c->closed = true;
    if (c->refs == 0)
        conn_free(c);
    /* else: the last qs_conn_unref() frees it */
}

void qs_conn_ref(qs_conn *c)
{
    c->refs++;
}

void qs_conn_unref(qs_conn *c)
{
    if (--c->refs == 0 && c->closed)
        conn_free(c);
}

void qs_conn_close(qs_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    qs_list_unlink(&c->node);
    qs_list_unlink(&c->timer_node);
    if (c->sub) {
        qs_subscriber_free(c->sub);
        c->sub = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* ------------------------------------------------------------ writing */

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
    QS_UNUSED(status);
    free(req);
}

/* After a response that ends the connection (an error, often sent before the request body
 * was read): send FIN, then read and discard what the client still sends for a moment.
 * Closing at once would make the kernel answer the unread bytes with a reset, which can
 * destroy the response before the client reads it. */
static void conn_linger(qs_conn *c)
{
    if (c->closing)
        return;
    c->state = QS_CONN_LINGERING;
    uv_shutdown_t *req = qs_xmalloc(sizeof(*req));
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_linger_shutdown) < 0) {
        free(req);
        qs_conn_close(c);
        return;
    }
    conn_set_timer(c, QS_TIMER_LINGER);
    conn_start_reading(c);
}

static void on_write_done(uv_write_t *req, int status)
{
    conn_write *cw = qs_container_of(req, conn_write, req);
    qs_conn *c = cw->conn;
    bool close_after = cw->close_after;
    free(cw);
    if (!c->closing) {
        if (status < 0)
            qs_conn_close(c);
        else if (close_after)
            conn_linger(c);
        else
            conn_after_response(c);
    }
    qs_conn_unref(c);
}

/* Writes data; on completion either closes or goes back to reading requests. */
static void conn_write_response(qs_conn *c, const char *data, size_t len, bool close_after)
{
    c->state = QS_CONN_WRITING;
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n == (int)len) {
        if (close_after)
            conn_linger(c);
        else
            conn_after_response(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        qs_conn_close(c);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    conn_write *cw = qs_xmalloc(sizeof(*cw) + (len - done));
    cw->conn = c;
    cw->close_after = close_after;
    cw->len = len - done;
    memcpy(cw->data, data + done, len - done);
    uv_buf_t rest = uv_buf_init(cw->data, (unsigned)cw->len);
    qs_conn_ref(c);
    if (uv_write(&cw->req, (uv_stream_t *)&c->tcp, &rest, 1, on_write_done) < 0) {
        free(cw);
        qs_conn_unref(c);
        qs_conn_close(c);
    }
}

int qs_conn_write_raw(qs_conn *c, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    return uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
}

static const char *status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request URI Too Long";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

void qs_response_init(qs_response *r, int status)
{
    r->status = status;
    r->headers = QS_BUF_INIT;
    r->body = QS_BUF_INIT;
    r->content_type = NULL;
}

void qs_response_header(qs_response *r, const char *name, const char *value)
{
    qs_buf_append_str(&r->headers, name);
    qs_buf_append(&r->headers, ": ", 2);
    qs_buf_append_str(&r->headers, value);
    qs_buf_append(&r->headers, "\r\n", 2);
}

void qs_response_free(qs_response *r)
{
    qs_buf_free(&r->headers);
    qs_buf_free(&r->body);
}

void qs_append_status_line(qs_buf *b, int minor, int status)
{
    qs_buf_append_str(b, minor ? "HTTP/1.1 " : "HTTP/1.0 ");
    qs_buf_append_u64(b, (uint64_t)status);
    qs_buf_append_char(b, ' ');
    qs_buf_append_str(b, status_text(status));
    qs_buf_append(b, "\r\n", 2);
}

void qs_append_date_header(qs_buf *b)
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

void qs_conn_send(qs_conn *c, const qs_request *req, qs_response *r)
{
    QS_UNUSED(req);
    bool head_method = c->head_method;
    bool close_after = !c->keep_alive || c->w->stopping;
    int minor = c->minor_version;
    qs_buf out = QS_BUF_INIT;
    qs_buf_reserve(&out, 256 + r->headers.len + r->body.len);
    qs_append_status_line(&out, minor, r->status);
    qs_append_date_header(&out);
    if (r->content_type) {
        qs_buf_append_str(&out, "Content-Type: ");
        qs_buf_append_str(&out, r->content_type);
        qs_buf_append(&out, "\r\n", 2);
    }
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
    if (!head_method)
        qs_buf_append(&out, r->body.p, r->body.len);
    qs_response_free(r);
    c->keep_alive = !close_after;
    conn_write_response(c, out.p, out.len, close_after);
    qs_buf_free(&out);
}

void qs_conn_send_error(qs_conn *c, const qs_request *req, int status, const char *message,
                        const char *extra_headers)
{
    qs_response r;
    qs_response_init(&r, status);
    r.content_type = "text/plain; charset=utf-8";
    if (!extra_headers || !strstr(extra_headers, "X-Content-Type-Options"))
        qs_response_header(&r, "X-Content-Type-Options", "nosniff");
    if (extra_headers)
        qs_buf_append_str(&r.headers, extra_headers);
    qs_buf_append_str(&r.body, message ? message : status_text(status));
    qs_buf_append_char(&r.body, '\n');
    qs_conn_send(c, req, &r);
}

/* An error found before a request could be routed: answer and close. */
static void conn_fail(qs_conn *c, int status, const char *reason)
{
    qs_metric_add(&qs_metrics_global.bad_requests_total, 1);
    qs_debug("bad request from %s: %d %s", c->remote, status, reason);
    c->keep_alive = false;
    qs_conn_send_error(c, NULL, status, reason, NULL);
}

/* ------------------------------------------------------------ reading */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    QS_UNUSED(suggested);
    qs_conn *c = qs_container_of((uv_tcp_t *)h, qs_conn, tcp);
    /* Every read lands in the worker's buffer; reads are processed before the next one
     * starts, so one buffer serves every connection of the thread. */
    *buf = uv_buf_init(c->w->read_buf, (unsigned)c->w->read_buf_size);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    qs_conn *c = qs_container_of((uv_tcp_t *)stream, qs_conn, tcp);
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        /* EOF or error: a subscriber went away, or a client closed between requests. A
         * timeout is the kernel giving up on a peer that stopped acknowledging. */
        if (nread == UV_ETIMEDOUT && c->sub)
            qs_metric_add(&qs_metrics_global.subscribers_dropped[QS_DROP_DISPATCH_TIMEOUT], 1);
        qs_conn_close(c);
        return;
    }
    if (c->state == QS_CONN_STREAMING)
        return; /* a subscriber has nothing more to say; ignore what it sends */
    if (c->state == QS_CONN_LINGERING) {
        c->lingered += (size_t)nread; /* discarded; bounded so a sender cannot keep it open */
        if (c->lingered > (1u << 20))
            qs_conn_close(c);
        return;
    }
    if (c->state == QS_CONN_HANDLING || c->state == QS_CONN_WRITING) {
        /* Pipelined bytes while a response is pending: keep them, bounded, for later. */
        const qs_config *cfg = c->w->hub->cfg;
        if (c->in.len + (size_t)nread > cfg->max_header_size + cfg->max_request_body_size) {
            qs_conn_close(c);
            return;
        }
        qs_buf_append(&c->in, buf->base, (size_t)nread);
        return;
    }
    if (c->in.len) {
        qs_buf_append(&c->in, buf->base, (size_t)nread);
        qs_buf pending = c->in;
        c->in = QS_BUF_INIT;
        conn_process(c, pending.p, pending.len);
        qs_buf_free(&pending);
    } else {
        conn_process(c, buf->base, (size_t)nread);
    }
}

static void conn_start_reading(qs_conn *c)
{
    if (!c->reading && !c->closing) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) == 0)
            c->reading = true;
    }
}

/* Runs the request whose head and body are complete. The head's slices are valid only
 * during this call: what a response needs later is copied into the connection first. */
static void conn_dispatch(qs_conn *c)
{
    qs_request req = {0};
    req.conn = c;
    req.http = c->req;
    req.body = (qs_slice){c->body.p ? c->body.p : "", c->body.len};
    conn_set_timer(c, QS_TIMER_NONE);
    c->state = QS_CONN_HANDLING;
    c->head_method = qs_slice_eq(c->req->method, "HEAD");
    c->minor_version = (uint8_t)c->req->minor_version;
    qs_metric_add(&qs_metrics_global.requests_total, 1);
    qs_route(c, &req);
    qs_form_free(&req.query);
    if (c->state == QS_CONN_STREAMING && !c->closing) {
        /* A subscriber keeps nothing of its request: the parsed head alone is 3 KiB. */
        free(c->req);
        c->req = NULL;
        qs_buf_free(&c->body);
        qs_buf_free(&c->head);
        qs_buf_free(&c->in);
    }
}

/* A publish refused for its size counts as a publish error too. */
static void count_too_large(qs_conn *c)
{
    if (qs_slice_eq(c->req->method, "POST") && qs_slice_eq(c->req->path, "/.well-known/mercure"))
        qs_metric_add(&qs_metrics_global.publish_errors[QS_PUBERR_TOO_LARGE], 1);
}

/* Consumes body bytes; returns how many were used, or -1 when the connection failed. */
static ssize_t conn_feed_body(qs_conn *c, const char *data, size_t len)
{
    qs_hub *hub = c->w->hub;
    if (c->req->chunked) {
        size_t used = 0;
        const char *err = NULL;
        enum qs_http1_status st = qs_http1_parse_chunked(&c->chunked, data, len, &used, &c->body,
                                                         hub->cfg->max_request_body_size, &err);
        if (st == QS_HTTP1_OK) {
            c->body_left = 0;
            return (ssize_t)used;
        }
        if (st == QS_HTTP1_AGAIN)
            return (ssize_t)used;
        if (st == QS_HTTP1_E_TOO_LARGE)
            count_too_large(c);
        conn_fail(c, st == QS_HTTP1_E_TOO_LARGE ? 413 : 400, err);
        return -1;
    }
    size_t take = (size_t)QS_MIN((uint64_t)len, c->body_left);
    qs_buf_append(&c->body, data, take);
    c->body_left -= take;
    return (ssize_t)take;
}

/* Copies the parsed head into the connection so its slices survive this read. */
static void conn_own_head(qs_conn *c, const char *head)
{
    qs_http1_head *r = c->req;
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

static void conn_begin_body(qs_conn *c)
{
    qs_hub *hub = c->w->hub;
    qs_http1_parser_reset(&c->parser);
    c->keep_alive = c->req->keep_alive;
    qs_buf_reset(&c->body);
    c->state = QS_CONN_BODY;
    c->body_left = 0;
    if (c->req->chunked) {
        qs_http1_chunked_reset(&c->chunked);
        c->body_left = 1; /* unknown until the last chunk */
    } else if (c->req->has_content_length) {
        if (c->req->content_length > hub->cfg->max_request_body_size) {
            count_too_large(c);
            conn_fail(c, 413, "request body too large");
            return;
        }
        c->body_left = c->req->content_length;
    }
    if (c->body_left && c->req->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        qs_conn_write_raw(c, cont, sizeof(cont) - 1);
    }
}

/* Parses and runs the requests in data[0..len). data belongs to the caller and is valid
 * only during the call (often it is the worker's shared read buffer): whatever must
 * outlive the call — a partial head, a head awaiting its body, pipelined bytes behind a
 * pending response — is copied into the connection. */
static void conn_process(qs_conn *c, const char *data, size_t len)
{
    qs_hub *hub = c->w->hub;
    c->in_process = true;
    while (!c->closing) {
        if (c->state == QS_CONN_HANDLING || c->state == QS_CONN_WRITING) {
            qs_buf_append(&c->in, data, len); /* processed after the response */
            break;
        }
        if (c->state == QS_CONN_STREAMING || c->state == QS_CONN_LINGERING || !len)
            break;
        if (c->state == QS_CONN_HEAD) {
            if (!c->req)
                c->req = qs_xmalloc(sizeof(*c->req));
            if (c->timer_list != QS_TIMER_READING) {
                /* First bytes of a request: its timeout starts now. */
                conn_set_timer(c, QS_TIMER_READING);
            }
            const char *err = NULL;
            enum qs_http1_status st =
                qs_http1_parse_head(&c->parser, data, len, hub->cfg->max_header_size, c->req, &err);
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
            data += c->req->head_len;
            len -= c->req->head_len;
            conn_begin_body(c);
            if (c->closing || c->state != QS_CONN_BODY)
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
        /* QS_CONN_BODY: the head is owned by c->head; more body arrived. */
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
static void conn_after_response(qs_conn *c)
{
    if (c->closing)
        return;
    free(c->req);
    c->req = NULL;
    qs_buf_reset(&c->body);
    if (c->body.cap > 64 * 1024)
        qs_buf_free(&c->body);
    qs_buf_free(&c->head);
    c->state = QS_CONN_HEAD;
    conn_set_timer(c, QS_TIMER_IDLE);
    if (c->in_process)
        return; /* the loop in conn_process goes on with the bytes it holds */
    if (c->in.len) {
        qs_buf pending = c->in;
        c->in = QS_BUF_INIT;
        conn_process(c, pending.p, pending.len);
        qs_buf_free(&pending);
    }
    if (!c->closing)
        conn_start_reading(c);
}

/* ------------------------------------------------------------ accept */

void qs_conn_on_accept(uv_stream_t *listener, int status)
{
    qs_worker *w = listener->data;
    if (status < 0) {
        qs_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    qs_conn *c = qs_xcalloc(1, sizeof(*c));
    c->w = w;
    qs_list_init(&c->node);
    qs_list_init(&c->timer_node);
    uv_tcp_init(&w->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        free(c);
        return;
    }
    w->n_conns++;
    qs_metric_add(&qs_metrics_global.connections_total, 1);
    /* The limit is for the whole hub: the kernel does not spread connections evenly. */
    uint64_t open = atomic_fetch_add(&qs_metrics_global.connections_open, 1) + 1;
    if (w->stopping || (w->hub->max_conns && open > w->hub->max_conns)) {
        qs_metric_add(&qs_metrics_global.connections_rejected, 1);
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof(c->remote));
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof(c->remote));
    }
    qs_list_push_back(&w->conns, &c->node);
    c->state = QS_CONN_HEAD;
    c->keep_alive = true;
    c->minor_version = 1;
    conn_set_timer(c, QS_TIMER_READING);
    conn_start_reading(c);
}

void qs_conn_check_timeouts(qs_worker *w, uint64_t now)
{
    const qs_config *cfg = w->hub->cfg;
    qs_list *n;
    while ((n = qs_list_front(&w->conns_reading))) {
        qs_conn *c = qs_list_entry(n, qs_conn, timer_node);
        if (now - c->timer_start_ms < cfg->request_timeout_ms)
            break;
        conn_set_timer(c, QS_TIMER_NONE);
        if (c->in.len || c->req) {
            c->keep_alive = false;
            conn_fail(c, 408, "request timeout");
        } else {
            qs_conn_close(c);
        }
    }
    while ((n = qs_list_front(&w->conns_idle))) {
        qs_conn *c = qs_list_entry(n, qs_conn, timer_node);
        if (now - c->timer_start_ms < cfg->idle_timeout_ms)
            break;
        qs_conn_close(c);
    }
    while ((n = qs_list_front(&w->conns_lingering))) {
        qs_conn *c = qs_list_entry(n, qs_conn, timer_node);
        if (now - c->timer_start_ms < LINGER_MS)
            break;
        qs_conn_close(c);
    }
}

/* A subscriber whose network vanished sends no FIN: without help the kernel keeps
 * retransmitting for many minutes and the subscriber stays "active". Unacknowledged data
 * (the heartbeat, at the latest) now aborts the connection after dispatch_timeout, and
 * keep-alive probes do the same when heartbeats are off. */
void qs_conn_watch_peer(qs_conn *c)
{
    const qs_config *cfg = c->w->hub->cfg;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
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
