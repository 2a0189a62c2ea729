/* SPDX-License-Identifier: MIT
 * http.c - the protocol-neutral side of requests: responses, queries, routing.
 */
#include "http.h"

#include <stdlib.h>

#include "ctx.h"
#include "gojson.h"
#include "log.h"
#include "metrics.h"

const char *qs_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
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

void qs_http_response_init(qs_http_response *r, int status)
{
    r->status = status;
    r->content_type = NULL;
    r->headers = QS_BUF_INIT;
    r->body = QS_BUF_INIT;
}

void qs_http_response_header(qs_http_response *r, const char *name, const char *value)
{
    qs_buf_append_str(&r->headers, name);
    qs_buf_append(&r->headers, ": ", 2);
    qs_buf_append_str(&r->headers, value);
    qs_buf_append(&r->headers, "\r\n", 2);
}

void qs_http_response_free(qs_http_response *r)
{
    qs_buf_free(&r->headers);
    qs_buf_free(&r->body);
}

void qs_http_response_error(qs_http_response *r, int status, const char *message,
                            const char *extra_headers)
{
    qs_http_response_init(r, status);
    r->content_type = "text/plain; charset=utf-8";
    if (!extra_headers || !strstr(extra_headers, "X-Content-Type-Options"))
        qs_http_response_header(r, "X-Content-Type-Options", "nosniff");
    if (extra_headers)
        qs_buf_append_str(&r->headers, extra_headers);
    qs_buf_append_str(&r->body, message ? message : qs_http_status_text(status));
    qs_buf_append_char(&r->body, '\n');
}

/* ------------------------------------------------------------ access logs */

/* The request target with the value of `authorization` query parameters replaced, as the
 * reference's Caddyfile filters its access logs: tokens never reach a log. */
static void append_redacted_target(qs_buf *out, qs_slice target)
{
    const char *q = memchr(target.p, '?', target.n);
    if (!q) {
        qs_buf_append(out, target.p, target.n);
        return;
    }
    qs_buf_append(out, target.p, (size_t)(q - target.p) + 1);
    const char *p = q + 1, *end = target.p + target.n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        qs_slice key = {p, (size_t)((eq ? eq : pair_end) - p)};
        if (eq && qs_slice_eq(key, "authorization")) {
            qs_buf_append(out, p, (size_t)(eq - p) + 1);
            qs_buf_append_str(out, "REDACTED");
        } else {
            qs_buf_append(out, p, (size_t)(pair_end - p));
        }
        if (amp)
            qs_buf_append_char(out, '&');
        p = pair_end + (amp ? 1 : 0);
    }
}

/* At dispatch: what the line needs, copied (the request's slices go with the call). */
static void access_begin(qs_http_req *req)
{
    qs_buf b = QS_BUF_INIT;
    qs_buf_append(&b, req->method.p, req->method.n);
    qs_buf_append_char(&b, ' ');
    append_redacted_target(&b, req->target);
    req->access = qs_buf_steal(&b);
    req->access_start_ns = qs_now_ns();
}

static void access_end(qs_http_req *req, int status, size_t size, bool stream)
{
    if (!req->access)
        return;
    double ms = (double)(qs_now_ns() - req->access_start_ns) / 1e6;
    char *sp = strchr(req->access, ' ');
    qs_buf json = QS_BUF_INIT, text = QS_BUF_INIT;
    qs_buf_append_str(&json, "\"request\":{\"remote_ip\":");
    qs_gojson_string(&json, req->peer, strlen(req->peer));
    qs_buf_append_str(&json, ",\"proto\":");
    qs_gojson_string(&json, req->proto, strlen(req->proto));
    qs_buf_append_str(&json, ",\"method\":");
    qs_gojson_string(&json, req->access, (size_t)(sp - req->access));
    qs_buf_append_str(&json, ",\"uri\":");
    qs_gojson_string(&json, sp + 1, strlen(sp + 1));
    qs_buf_appendf(&json, "},\"status\":%d,\"size\":%zu,\"duration\":%.6f%s", status, size,
                   ms / 1000, stream ? ",\"stream\":true" : "");
    qs_buf_appendf(&text, "%s %s \"%s\" %s %d %zuB %.2fms%s", req->peer, req->proto, req->access,
                   "->", status, size, ms, stream ? " (stream)" : "");
    qs_log_fields(QS_LOG_INFO, "http.log.access", "handled request", qs_buf_cstr(&json),
                  qs_buf_cstr(&text));
    qs_buf_free(&json);
    qs_buf_free(&text);
    free(req->access);
    req->access = NULL;
}

void qs_http_respond(qs_http_req *req, qs_http_response *res)
{
    access_end(req, res->status, res->body.len, false);
    req->ops->respond(req, res);
}

void qs_http_error(qs_http_req *req, int status, const char *message, const char *extra_headers)
{
    qs_http_response r;
    qs_http_response_error(&r, status, message, extra_headers);
    qs_http_respond(req, &r);
}

void qs_http_hold(qs_http_req *req)
{
    req->ops->hold(req);
}

qs_http_ostream *qs_http_open_stream(qs_http_req *req, const qs_http_stream_owner *owner_ops,
                                     void *owner)
{
    access_end(req, 200, 0, true);
    qs_http_ostream *os = req->ops->open_stream(req);
    if (os) {
        os->owner_ops = owner_ops;
        os->owner = owner;
    }
    return os;
}

const qs_header *qs_http_find(const qs_http_req *req, const char *name)
{
    return qs_headers_find(req->headers, req->n_headers, name);
}

const qs_form *qs_http_query(qs_http_req *req)
{
    if (!req->query_parsed) {
        const char *err = NULL;
        req->query_parsed = true;
        /* Lenient like Go's URL.Query(): invalid pairs are dropped. The pair bound keeps a
         * hostile query string from costing more than the header limit already allows. */
        req->query_status = qs_form_parse(&req->query, req->query_string.p, req->query_string.n,
                                          req->max_query_pairs, &err);
    }
    return &req->query;
}

void qs_http_req_finish(qs_http_req *req)
{
    qs_form_free(&req->query);
    req->query_parsed = false;
}

void qs_http_req_release(qs_http_req *req)
{
    qs_http_req_finish(req);
    free(req->access); /* a request never answered (its connection went away) */
    req->access = NULL;
}

static bool route_matches(const qs_http_route *r, qs_slice path)
{
    size_t n = strlen(r->path);
    bool prefix = path.n >= n && memcmp(path.p, r->path, n) == 0;
    switch (r->match) {
    case QS_HTTP_EXACT:
        return prefix && path.n == n;
    case QS_HTTP_TREE:
        return prefix && (path.n == n || path.p[n] == '/');
    case QS_HTTP_BELOW:
        return prefix && path.n > n && path.p[n] == '/';
    case QS_HTTP_PREFIX:
        return prefix;
    }
    return false;
}

void qs_http_dispatch(const qs_http_router *router, qs_http_req *req)
{
    const qs_http_route *r = router->routes;
    while (r->path && !route_matches(r, req->path))
        r++;
    if (req->ctx->hub->cfg->access_log)
        access_begin(req);
    if (req->over_limit && !r->monitoring) {
        qs_metric_add(&qs_metrics_global.connections_rejected, 1);
        qs_http_error(req, 503, "too many connections", NULL);
        return;
    }
    r->handler(req);
}
