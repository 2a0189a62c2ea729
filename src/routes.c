/* SPDX-License-Identifier: MIT
 * routes.c - request routing, the small endpoints, CORS and security headers.
 */
#include <stdlib.h>

#include "auth.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

#define HUB_PATH "/.well-known/mercure"

/* What the reference's security middleware adds to every hub response. */
#define SECURITY_HEADERS                                                                           \
    "Content-Security-Policy: default-src 'self'\r\n"                                              \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "X-Xss-Protection: 1; mode=block\r\n"

qs_auth_params qs_conn_auth_params(qs_conn *c, bool publish)
{
    qs_hub *hub = c->w->hub;
    const qs_config *cfg = hub->cfg;
    return (qs_auth_params){
        .key = publish ? hub->publisher_key : hub->subscriber_key,
        .cache = c->w->tokens,
        .cookie_name = cfg->cookie_name,
        .is_post = publish,
        .publish_origins = cfg->publish_origins,
        .n_publish_origins = cfg->n_publish_origins,
        .now = qs_wall_seconds(),
    };
}

const qs_form *qs_request_query(qs_request *req)
{
    if (!req->query_parsed) {
        const char *err = NULL;
        req->query_parsed = true;
        /* Lenient like Go's URL.Query(): invalid pairs are dropped. The pair bound keeps a
         * hostile query string from costing more than the header limit already allows. */
        req->query_status = qs_form_parse(&req->query, req->http->query.p, req->http->query.n,
                                          (size_t)req->conn->w->hub->cfg->max_topics + 64, &err);
    }
    return &req->query;
}

static void lower_copy(char *dst, size_t cap, qs_slice s)
{
    size_t n = QS_MIN(s.n, cap - 1);
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        dst[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    dst[n] = '\0';
}

static bool cors_origin_allowed(const qs_config *cfg, qs_slice origin)
{
    char lower[512];
    if (origin.n >= sizeof(lower))
        return false;
    lower_copy(lower, sizeof(lower), origin);
    return qs_origin_allowed(lower, origin.n, cfg->cors_origins, cfg->n_cors_origins);
}

static bool cors_all(const qs_config *cfg)
{
    for (size_t i = 0; i < cfg->n_cors_origins; i++)
        if (strcmp(cfg->cors_origins[i], "*") == 0)
            return true;
    return false;
}

static void cors_allow_origin(const qs_config *cfg, qs_slice origin, qs_buf *h)
{
    qs_buf_append_str(h, "Access-Control-Allow-Origin: ");
    if (cors_all(cfg))
        qs_buf_append_char(h, '*');
    else
        qs_buf_append(h, origin.p, origin.n);
    /* The reference enables credentials unconditionally (browsers ignore it with "*"). */
    qs_buf_append_str(h, "\r\nAccess-Control-Allow-Credentials: true\r\n");
}

static bool cors_method_allowed(qs_slice m)
{
    return qs_slice_ieq(m, "GET") || qs_slice_ieq(m, "POST") || qs_slice_ieq(m, "HEAD");
}

void qs_add_cors_headers(qs_hub *hub, const qs_http1_head *req, qs_buf *headers)
{
    const qs_config *cfg = hub->cfg;
    if (!cfg->n_cors_origins)
        return;
    qs_buf_append_str(headers, "Vary: Origin\r\n");
    const qs_header *o = qs_headers_find(req->headers, req->n_headers, "Origin");
    if (!o || !o->value.n || !cors_origin_allowed(cfg, o->value) ||
        !cors_method_allowed(req->method))
        return;
    cors_allow_origin(cfg, o->value, headers);
}

/* Requested headers must all be in the allowed list (case-insensitive, comma-separated). */
static bool cors_headers_allowed(qs_slice list)
{
    static const char *const allowed[] = {"authorization", "cache-control", "last-event-id",
                                          "origin"};
    size_t i = 0;
    while (i < list.n) {
        while (i < list.n && (list.p[i] == ' ' || list.p[i] == ',' || list.p[i] == '\t'))
            i++;
        size_t start = i;
        while (i < list.n && list.p[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list.p[end - 1] == ' ' || list.p[end - 1] == '\t'))
            end--;
        if (end == start)
            continue;
        qs_slice name = {list.p + start, end - start};
        bool ok = false;
        for (size_t k = 0; k < QS_ARRAY_LEN(allowed) && !ok; k++)
            ok = qs_slice_ieq(name, allowed[k]);
        if (!ok)
            return false;
    }
    return true;
}

static void handle_preflight(qs_conn *c, qs_request *req)
{
    const qs_config *cfg = c->w->hub->cfg;
    const qs_http1_head *h = req->http;
    qs_response r;
    qs_response_init(&r, 204);
    qs_buf_append_str(&r.headers, SECURITY_HEADERS);
    qs_response_header(&r, "Vary",
                       "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    const qs_header *o = qs_headers_find(h->headers, h->n_headers, "Origin");
    const qs_header *m = qs_headers_find(h->headers, h->n_headers, "Access-Control-Request-Method");
    const qs_header *rh =
        qs_headers_find(h->headers, h->n_headers, "Access-Control-Request-Headers");
    bool method_ok = m && (cors_method_allowed(m->value) || qs_slice_ieq(m->value, "OPTIONS"));
    if (o && o->value.n && cors_origin_allowed(cfg, o->value) && method_ok &&
        (!rh || cors_headers_allowed(rh->value))) {
        qs_buf_append_str(&r.headers, "Access-Control-Allow-Origin: ");
        if (cors_all(cfg))
            qs_buf_append_char(&r.headers, '*');
        else
            qs_buf_append(&r.headers, o->value.p, o->value.n);
        qs_buf_append_str(&r.headers, "\r\nAccess-Control-Allow-Methods: ");
        for (size_t i = 0; i < m->value.n; i++) {
            char ch = m->value.p[i];
            qs_buf_append_char(&r.headers, (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch));
        }
        qs_buf_append_str(&r.headers, "\r\n");
        if (rh && rh->value.n) {
            qs_buf_append_str(&r.headers, "Access-Control-Allow-Headers: ");
            qs_buf_append(&r.headers, rh->value.p, rh->value.n);
            qs_buf_append_str(&r.headers, "\r\n");
        }
        qs_buf_append_str(&r.headers, "Access-Control-Allow-Credentials: true\r\n");
    }
    qs_conn_send(c, req, &r);
}

static void send_text(qs_conn *c, qs_request *req, int status, const char *content_type,
                      const char *body)
{
    qs_response r;
    qs_response_init(&r, status);
    r.content_type = content_type;
    qs_buf_append_str(&r.body, body);
    qs_conn_send(c, req, &r);
}

static void handle_healthz(qs_conn *c, qs_request *req)
{
    qs_transport *t = c->w->hub->transport;
    char reason[QS_REASON_MAX] = "";
    if (t->ops->healthy(t, reason)) {
        send_text(c, req, 200, NULL, "");
        return;
    }
    qs_response r;
    qs_response_init(&r, 503);
    r.content_type = "text/plain; charset=utf-8";
    qs_buf_appendf(&r.body, "transport unavailable: %s\n", reason[0] ? reason : "unknown");
    qs_conn_send(c, req, &r);
}

static void handle_metrics(qs_conn *c, qs_request *req)
{
    qs_transport *t = c->w->hub->transport;
    char reason[QS_REASON_MAX];
    qs_response r;
    qs_response_init(&r, 200);
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    qs_hub *hub = c->w->hub;
    qs_worker_counters **counters = qs_xcalloc((size_t)hub->n_workers, sizeof(*counters));
    for (int i = 0; i < hub->n_workers; i++)
        counters[i] = &hub->workers[i].counters;
    qs_metrics_render(&r.body, t->ops->healthy(t, reason), t->ops->name, counters,
                      (size_t)hub->n_workers);
    free(counters);
    qs_conn_send(c, req, &r);
}

static const char welcome_page[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Quicksilver, a "
    "Mercure hub</title></head>\n<body><h1>Welcome to Quicksilver</h1>\n<p>This is a <a "
    "href=\"https://mercure.rocks\">Mercure</a> hub. Subscribe and publish at <code>"
    "/.well-known/mercure</code>.</p></body>\n</html>\n";

static void route_hub(qs_conn *c, qs_request *req)
{
    const qs_http1_head *h = req->http;
    qs_slice m = h->method;
    if (qs_slice_eq(m, "GET") || qs_slice_eq(m, "HEAD")) {
        qs_handle_subscribe(c, req);
    } else if (qs_slice_eq(m, "POST")) {
        qs_handle_publish(c, req);
    } else if (qs_slice_eq(m, "OPTIONS") && c->w->hub->cfg->n_cors_origins &&
               qs_headers_find(h->headers, h->n_headers, "Access-Control-Request-Method")) {
        handle_preflight(c, req);
    } else {
        qs_buf extra = QS_BUF_INIT;
        qs_hub_headers(c, req, &extra);
        qs_buf_append_str(&extra, "Allow: GET, HEAD, POST\r\n");
        qs_conn_send_error(c, req, 405, "Method Not Allowed", qs_buf_cstr(&extra));
        qs_buf_free(&extra);
    }
}

void qs_route(qs_conn *c, qs_request *req)
{
    const qs_http1_head *h = req->http;
    qs_slice path = h->path;
    static const size_t hub_len = sizeof(HUB_PATH) - 1;
    if (path.n == hub_len && memcmp(path.p, HUB_PATH, hub_len) == 0) {
        route_hub(c, req);
        return;
    }
    static const char subs[] = HUB_PATH "/subscriptions";
    if (path.n >= sizeof(subs) - 1 && memcmp(path.p, subs, sizeof(subs) - 1) == 0 &&
        (path.n == sizeof(subs) - 1 || path.p[sizeof(subs) - 1] == '/')) {
        qs_handle_subscriptions_api(c, req);
        return;
    }
    if (path.n > hub_len && memcmp(path.p, HUB_PATH "/", hub_len + 1) == 0) {
        /* Everything under the hub path belongs to the hub (the reference never lets
         * such a request fall through to other handlers). */
        qs_hub_send_error(c, req, 404, "404 page not found");
        return;
    }
    bool get = qs_slice_eq(h->method, "GET") || qs_slice_eq(h->method, "HEAD");
    if (qs_slice_eq(path, "/healthz")) {
        handle_healthz(c, req);
    } else if (qs_slice_eq(path, "/metrics") && get) {
        handle_metrics(c, req);
    } else if (qs_slice_eq(path, "/robots.txt") && get) {
        send_text(c, req, 200, "text/plain; charset=utf-8", "User-agent: *\nDisallow: /\n");
    } else if (qs_slice_eq(path, "/") && get) {
        send_text(c, req, 200, "text/html; charset=utf-8", welcome_page);
    } else {
        qs_conn_send_error(c, req, 404, "Not Found", NULL);
    }
}

void qs_hub_headers(qs_conn *c, const qs_request *req, qs_buf *out)
{
    qs_buf_append_str(out, SECURITY_HEADERS);
    qs_add_cors_headers(c->w->hub, req->http, out);
}

void qs_hub_send_error(qs_conn *c, const qs_request *req, int status, const char *message)
{
    qs_buf extra = QS_BUF_INIT;
    qs_hub_headers(c, req, &extra);
    qs_conn_send_error(c, req, status, message, qs_buf_cstr(&extra));
    qs_buf_free(&extra);
}
