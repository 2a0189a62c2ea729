/* SPDX-License-Identifier: MIT
 * http.c - the protocol-neutral side of requests: responses, queries, routing.
 */
#include "http.h"

#include <stdlib.h>

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

void qs_http_respond(qs_http_req *req, qs_http_response *res)
{
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

static bool route_matches(const qs_http_route *r, qs_slice path)
{
    size_t n = strlen(r->path);
    bool prefix = path.n >= n && memcmp(path.p, r->path, n) == 0;
    switch (r->match) {
    case QS_HTTP_EXACT:
        return prefix && path.n == n;
    case QS_HTTP_TREE:
        return prefix && (path.n == n || path.p[n] == '/');
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
    if (req->over_limit && !r->monitoring) {
        qs_metric_add(&qs_metrics_global.connections_rejected, 1);
        qs_http_error(req, 503, "too many connections", NULL);
        return;
    }
    r->handler(req);
}
