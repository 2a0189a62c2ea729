/* SPDX-License-Identifier: MIT
 * routes.c - the hub's route table and its small endpoints.
 */
#include "routes.h"

#include <stdlib.h>

#include "cors.h"
#include "ctx.h"
#include "endpoint.h"
#include "gojson.h"
#include "metrics.h"
#include "publish.h"
#include "subscribe.h"
#include "subscriptions.h"
#include "ui.h"

#define HUB_PATH "/.well-known/mercure"

static bool is_get(const qs_http_req *req)
{
    return qs_slice_eq(req->method, "GET") || qs_slice_eq(req->method, "HEAD");
}

static void send_text(qs_http_req *req, int status, const char *content_type, const char *body)
{
    qs_http_response r;
    qs_http_response_init(&r, status);
    r.content_type = content_type;
    qs_buf_append_str(&r.body, body);
    qs_http_respond(req, &r);
}

static void not_found(qs_http_req *req)
{
    qs_http_error(req, 404, "Not Found", NULL);
}

static void preflight(qs_http_req *req)
{
    qs_http_response r;
    qs_http_response_init(&r, 204);
    qs_endpoint_security_headers(&r.headers);
    qs_cors_preflight(req->ctx->hub->cfg, req->headers, req->n_headers, &r.headers);
    qs_http_respond(req, &r);
}

/* CORS wraps every path of the hub, as in the reference: a preflight is answered before
 * routing. */
static bool answered_preflight(qs_http_req *req)
{
    if (!qs_cors_is_preflight(req->ctx->hub->cfg, req->method, req->headers, req->n_headers))
        return false;
    preflight(req);
    return true;
}

/* /.well-known/mercure: the method chooses the endpoint. */
static void hub_endpoint(qs_http_req *req)
{
    if (answered_preflight(req))
        return;
    if (is_get(req))
        qs_subscribe_handle(req);
    else if (qs_slice_eq(req->method, "POST"))
        qs_publish_handle(req);
    else
        qs_endpoint_method_not_allowed(req, "GET, HEAD, POST");
}

static void subscriptions_endpoint(qs_http_req *req)
{
    if (!answered_preflight(req))
        qs_subscriptions_handle(req);
}

static void ui_endpoint(qs_http_req *req)
{
    if (!answered_preflight(req))
        qs_ui_handle(req);
}

/* Every path that starts with the hub's belongs to the hub (the reference never lets such
 * a request fall through to other handlers). */
static void hub_not_found(qs_http_req *req)
{
    if (!answered_preflight(req))
        qs_endpoint_error(req, 404, "404 page not found");
}

/* Ready for new clients: the transport takes publishes and the hub is not shutting down.
 * Otherwise false with the reason. */
static bool ready(const qs_hub *hub, char reason[QS_REASON_MAX])
{
    if (atomic_load(&hub->draining)) {
        snprintf(reason, QS_REASON_MAX, "the hub is shutting down");
        return false;
    }
    char why[QS_REASON_MAX] = "";
    if (!hub->transport->ops->healthy(hub->transport, why)) {
        snprintf(reason, QS_REASON_MAX, "transport unavailable: %.200s", why[0] ? why : "unknown");
        return false;
    }
    return true;
}

static void healthz(qs_http_req *req)
{
    char reason[QS_REASON_MAX];
    if (ready(req->ctx->hub, reason)) {
        send_text(req, 200, NULL, "");
        return;
    }
    qs_http_response r;
    qs_http_response_init(&r, 503);
    r.content_type = "text/plain; charset=utf-8";
    qs_buf_appendf(&r.body, "%s\n", reason);
    qs_http_respond(req, &r);
}

/* The reference's health checks (served by its admin API, here on the hub's own port):
 * /mercure/health/live, /mercure/health/ready and the same under /mercure/health/{name}/. */
static void health(qs_http_req *req)
{
    static const char prefix[] = "/mercure/health/";
    const qs_config *cfg = req->ctx->hub->cfg;
    qs_slice rest = {req->path.p + sizeof(prefix) - 1, req->path.n - (sizeof(prefix) - 1)};
    const char *name = cfg->hub_name ? cfg->hub_name : "default";
    size_t nl = strlen(name);
    if (rest.n > nl + 1 && memcmp(rest.p, name, nl) == 0 && rest.p[nl] == '/')
        rest = (qs_slice){rest.p + nl + 1, rest.n - nl - 1};
    bool live = qs_slice_eq(rest, "live");
    if (!live && !qs_slice_eq(rest, "ready")) {
        not_found(req);
        return;
    }
    if (!qs_slice_eq(req->method, "GET")) {
        qs_http_error(req, 405, "Method Not Allowed", "Allow: GET\r\n");
        return;
    }
    char reason[QS_REASON_MAX];
    qs_http_response r;
    if (live || ready(req->ctx->hub, reason)) {
        qs_http_response_init(&r, 200);
        qs_buf_append_str(&r.body, "{\"status\":\"ok\"}\n");
    } else {
        qs_http_response_init(&r, 503);
        qs_buf_append_str(&r.body, "{\"status\":\"error\",\"error\":");
        qs_gojson_string(&r.body, reason, strlen(reason));
        qs_buf_append_str(&r.body, "}\n");
    }
    r.content_type = "application/json";
    qs_http_respond(req, &r);
}

static void metrics(qs_http_req *req)
{
    if (!is_get(req)) {
        not_found(req);
        return;
    }
    const qs_hub *hub = req->ctx->hub;
    qs_transport *t = hub->transport;
    char reason[QS_REASON_MAX];
    qs_http_response r;
    qs_http_response_init(&r, 200);
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    qs_worker_counters **counters = qs_xcalloc((size_t)hub->n_workers, sizeof(*counters));
    for (int i = 0; i < hub->n_workers; i++)
        counters[i] = &hub->contexts[i]->counters;
    qs_metrics_render(&r.body, t->ops->healthy(t, reason), t->ops->name, counters,
                      (size_t)hub->n_workers);
    free(counters);
    qs_http_respond(req, &r);
}

static void robots(qs_http_req *req)
{
    if (is_get(req))
        send_text(req, 200, "text/plain; charset=utf-8", "User-agent: *\nDisallow: /\n");
    else
        not_found(req);
}

static const char welcome_page[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Quicksilver, a "
    "Mercure hub</title></head>\n<body><h1>Welcome to Quicksilver</h1>\n<p>This is a <a "
    "href=\"https://mercure.rocks\">Mercure</a> hub. Subscribe and publish at <code>"
    "/.well-known/mercure</code>.</p></body>\n</html>\n";

static void welcome(qs_http_req *req)
{
    if (is_get(req))
        send_text(req, 200, "text/html; charset=utf-8", welcome_page);
    else
        not_found(req);
}

/* A publish refused for its size before it could be routed counts as a publish error. */
static void refused(qs_slice method, qs_slice path, int status)
{
    if (status == 413 && qs_slice_eq(method, "POST") && qs_slice_eq(path, HUB_PATH))
        qs_metric_add(&qs_metrics_global.publish_errors[QS_PUBERR_TOO_LARGE], 1);
}

static const qs_http_route routes[] = {
    {HUB_PATH, QS_HTTP_EXACT, hub_endpoint, false},
    {HUB_PATH "/subscriptions", QS_HTTP_TREE, subscriptions_endpoint, false},
    {QS_UI_PATH, QS_HTTP_TREE, ui_endpoint, false},
    {HUB_PATH, QS_HTTP_PREFIX, hub_not_found, false},
    {"/healthz", QS_HTTP_EXACT, healthz, true},
    {"/metrics", QS_HTTP_EXACT, metrics, true},
    {"/mercure/health", QS_HTTP_BELOW, health, true},
    {"/robots.txt", QS_HTTP_EXACT, robots, false},
    {"/", QS_HTTP_EXACT, welcome, false},
    {NULL, QS_HTTP_EXACT, not_found, false},
};

const qs_http_router qs_routes = {.routes = routes, .refused = refused};
