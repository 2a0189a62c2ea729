/* SPDX-License-Identifier: MIT
 * subscriptions.c - presence: subscription events and the active subscriptions API.
 *
 * Events: for each topic selector of a subscriber, a private update on
 * /.well-known/mercure/subscriptions/{topic}/{subscriber} when it connects (active: true)
 * and when it leaves (active: false), published through the transport like any update, so
 * it is stored in history and reaches every node. The registry of active subscriptions
 * lives behind the transport too (transport.h), so the API shows every node's.
 */
#include "subscriptions.h"

#include <stdlib.h>

#include "async.h"
#include "auth.h"
#include "endpoint.h"
#include "form.h"
#include "gojson.h"
#include "log.h"

#define SUBSCRIPTIONS_PATH "/.well-known/mercure/subscriptions"

void qs_subscription_id(qs_buf *out, const char *topic, size_t topic_len, const char *subscriber)
{
    qs_buf_append_str(out, SUBSCRIPTIONS_PATH "/");
    qs_form_escape(out, topic, topic_len);
    qs_buf_append_char(out, '/');
    qs_form_escape(out, subscriber, strlen(subscriber));
}

/* One "key": value line of a Go struct, with its comma when more fields follow. */
static void field_start(qs_buf *out, const char *key, int depth, bool *first)
{
    if (!*first)
        qs_buf_append_char(out, ',');
    *first = false;
    qs_gojson_indent(out, depth);
    qs_buf_append_char(out, '"');
    qs_buf_append_str(out, key);
    qs_buf_append(out, "\": ", 3);
}

static void string_field(qs_buf *out, const char *key, const char *v, size_t len, int depth,
                         bool *first)
{
    field_start(out, key, depth, first);
    qs_gojson_string(out, v, len);
}

void qs_subscription_json(qs_buf *out, const char *topic, size_t topic_len, const char *subscriber,
                          bool active, const char *last_event_id, json_t *payload, bool context,
                          int depth)
{
    bool first = true;
    qs_buf_append_char(out, '{');
    if (context)
        string_field(out, "@context", "https://mercure.rocks/", 22, depth + 1, &first);
    qs_buf id = QS_BUF_INIT;
    qs_subscription_id(&id, topic, topic_len, subscriber);
    string_field(out, "id", id.p, id.len, depth + 1, &first);
    qs_buf_free(&id);
    string_field(out, "type", "Subscription", 12, depth + 1, &first);
    string_field(out, "subscriber", subscriber, strlen(subscriber), depth + 1, &first);
    string_field(out, "topic", topic, topic_len, depth + 1, &first);
    field_start(out, "active", depth + 1, &first);
    qs_buf_append_str(out, active ? "true" : "false");
    if (last_event_id)
        string_field(out, "lastEventID", last_event_id, strlen(last_event_id), depth + 1, &first);
    if (payload) {
        field_start(out, "payload", depth + 1, &first);
        qs_gojson_value(out, payload, depth + 1);
    }
    qs_gojson_indent(out, depth);
    qs_buf_append_char(out, '}');
}

/* ------------------------------------------------------------ events */

static void ignore_result(void *arg, int status, const char *reason)
{
    QS_UNUSED(arg);
    if (status)
        qs_warn("subscription event not published: %s", reason ? reason : "transport error");
}

/* Publishes one subscription event (a private update) through the transport. */
static void publish_event(qs_transport *t, const char *topic, size_t topic_len,
                          const char *subscriber, bool active, json_t *payload)
{
    qs_update *u = qs_update_new();
    qs_buf id = QS_BUF_INIT, data = QS_BUF_INIT;
    qs_subscription_id(&id, topic, topic_len, subscriber);
    qs_subscription_json(&data, topic, topic_len, subscriber, active, NULL, payload, true, 0);
    qs_update_add_topic(u, id.p, id.len);
    qs_update_set_data(u, data.p, data.len);
    u->is_private = true; /* presence is only for subscribers authorized to see it */
    qs_update_finalize(u);
    t->ops->publish(t, u, ignore_result, NULL);
    qs_update_unref(u);
    qs_buf_free(&id);
    qs_buf_free(&data);
}

static json_t *parse_payload(const char *s)
{
    return s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
}

/* Publishes the events of one subscriber, one per topic selector. */
static void publish_events(qs_transport *t, const qs_presence_entry *e, bool active,
                           json_t *payload)
{
    for (size_t k = 0; k < e->n_topics; k++)
        publish_event(t, e->topics[k], strlen(e->topics[k]), e->subscriber, active, payload);
}

void qs_subscriptions_arrive(qs_ctx *ctx, const qs_presence_entry *e, json_t *payload)
{
    qs_transport *t = ctx->hub->transport;
    /* As the reference: the events first, then the registry. */
    publish_events(t, e, true, payload);
    qs_transport_presence_add(t, e);
}

typedef struct departure {
    qs_presence_entry e;
    const qs_hub *hub;
} departure;

static void depart_task(void *arg)
{
    departure *d = arg;
    qs_transport *t = d->hub->transport;
    qs_transport_presence_remove(t, d->e.subscriber);
    json_t *payload = parse_payload(d->e.payload);
    publish_events(t, &d->e, false, payload);
    json_decref(payload);
    qs_presence_entry_clear(&d->e);
    free(d);
}

void qs_subscriptions_depart(qs_ctx *ctx, qs_presence_entry *e)
{
    departure *d = qs_xmalloc(sizeof(*d));
    d->e = *e;
    d->hub = ctx->hub;
    free(e);
    qs_ctx_defer(ctx, depart_task, d);
}

void qs_subscriptions_lost(void *ctx, const qs_presence_entry *entries, size_t n)
{
    const qs_hub *hub = ctx;
    for (size_t i = 0; i < n; i++) {
        json_t *payload = parse_payload(entries[i].payload);
        publish_events(hub->transport, &entries[i], false, payload);
        json_decref(payload);
    }
}

/* -------------------------------------------------------------- the API */

/* A read of the registry in progress. */
typedef struct api_query {
    qs_presence_query q;
    qs_async async;
    qs_http_req *req; /* held until the answer */
    char *request_uri;
    char *topic;      /* filter, NULL = all */
    char *subscriber; /* single document, NULL = collection */
    char *if_none_match;
    qs_buf headers; /* hub headers computed while the request was readable */
} api_query;

/* The collection document: every entry's subscriptions (those to `topic` when set). */
static void collection_json(qs_buf *out, const api_query *a, const char *last_id)
{
    bool first = true;
    qs_buf_append_char(out, '{');
    string_field(out, "@context", "https://mercure.rocks/", 22, 1, &first);
    string_field(out, "id", a->request_uri, strlen(a->request_uri), 1, &first);
    string_field(out, "type", "Subscriptions", 13, 1, &first);
    string_field(out, "lastEventID", last_id, strlen(last_id), 1, &first);
    field_start(out, "subscriptions", 1, &first);
    size_t written = 0;
    for (size_t i = 0; i < a->q.n; i++) {
        const qs_presence_entry *e = &a->q.entries[i];
        json_t *payload = NULL;
        for (size_t k = 0; k < e->n_topics; k++) {
            if (a->topic && strcmp(e->topics[k], a->topic) != 0)
                continue;
            if (!payload && e->payload)
                payload = parse_payload(e->payload);
            qs_buf_append_str(out, written ? "," : "[");
            qs_gojson_indent(out, 2);
            qs_subscription_json(out, e->topics[k], strlen(e->topics[k]), e->subscriber, true, NULL,
                                 payload, false, 2);
            written++;
        }
        json_decref(payload);
    }
    if (written) {
        qs_gojson_indent(out, 1);
        qs_buf_append_char(out, ']');
    } else {
        qs_buf_append(out, "[]", 2);
    }
    qs_gojson_indent(out, 0);
    qs_buf_append_char(out, '}');
}

/* The entry of the requested subscriber with the requested topic, or NULL. */
static const qs_presence_entry *find_subscription(const api_query *a)
{
    for (size_t i = 0; i < a->q.n; i++)
        if (strcmp(a->q.entries[i].subscriber, a->subscriber) == 0)
            for (size_t k = 0; k < a->q.entries[i].n_topics; k++)
                if (strcmp(a->q.entries[i].topics[k], a->topic) == 0)
                    return &a->q.entries[i];
    return NULL;
}

static void api_answer(api_query *a)
{
    qs_http_req *req = a->req;
    const qs_hub *hub = req->ctx->hub;
    const char *extra = qs_buf_cstr(&a->headers);
    if (a->q.status != 0) {
        qs_error("subscriptions API: %s", a->q.reason[0] ? a->q.reason : "registry unavailable");
        qs_http_error(req, 500, "Internal Server Error", extra);
        return;
    }
    char *last_id = qs_transport_last_event_id(hub->transport);
    qs_http_response r;
    if (a->if_none_match && strcmp(a->if_none_match, last_id) == 0) {
        qs_http_response_init(&r, 304);
        qs_buf_append(&r.headers, a->headers.p, a->headers.len);
        qs_http_respond(req, &r);
        free(last_id);
        return;
    }
    const qs_presence_entry *found = NULL;
    if (a->subscriber && !(found = find_subscription(a))) {
        qs_http_error(req, 404, "404 page not found", extra);
        free(last_id);
        return;
    }
    qs_http_response_init(&r, 200);
    qs_buf_append(&r.headers, a->headers.p, a->headers.len);
    if (found) {
        json_t *payload = parse_payload(found->payload);
        qs_subscription_json(&r.body, a->topic, strlen(a->topic), found->subscriber, true, last_id,
                             payload, true, 0);
        json_decref(payload);
    } else {
        collection_json(&r.body, a, last_id);
    }
    r.content_type = "application/ld+json";
    qs_http_response_header(&r, "ETag", last_id);
    free(last_id);
    qs_http_respond(req, &r);
}

static void api_finish(qs_async *async)
{
    api_query *a = qs_container_of(async, api_query, async);
    api_answer(a);
    qs_presence_entries_free(a->q.entries, a->q.n);
    free(a->request_uri);
    free(a->topic);
    free(a->subscriber);
    free(a->if_none_match);
    qs_buf_free(&a->headers);
    free(a);
}

static void api_done(qs_presence_query *q)
{
    api_query *a = (api_query *)q;
    qs_async_complete(&a->async);
}

/* Go's url.QueryUnescape, whose error the reference ignores: an invalid segment is "". */
static char *unescape_segment(const char *s, size_t len)
{
    qs_buf b = QS_BUF_INIT;
    if (qs_form_unescape(s, len, true, &b) < 0)
        qs_buf_reset(&b);
    return qs_buf_steal(&b);
}

/* Splits /subscriptions, /subscriptions/{topic} or /subscriptions/{topic}/{subscriber},
 * where each variable is one percent-encoded path segment; -1 for anything else. */
static int split_path(qs_slice path, qs_slice seg[2])
{
    const char *rest = path.p + sizeof(SUBSCRIPTIONS_PATH) - 1;
    size_t rest_len = path.n - (sizeof(SUBSCRIPTIONS_PATH) - 1);
    int n = 0;
    if (!rest_len)
        return 0;
    if (rest[0] != '/')
        return -1;
    size_t i = 1;
    for (;;) {
        size_t start = i;
        while (i < rest_len && rest[i] != '/')
            i++;
        if (i == start || n == 2)
            return -1;
        seg[n++] = (qs_slice){rest + start, i - start};
        if (i == rest_len)
            return n;
        i++;
    }
}

/* The token's subscribe claim must match the request URI (path and query). */
static bool authorized(qs_http_req *req, qs_buf *uri)
{
    qs_ctx *ctx = req->ctx;
    qs_jwt_claims claims;
    const char *reason = NULL;
    enum qs_auth_status st = qs_endpoint_authorize(req, false, &claims, &reason);
    bool ok = false;
    if (st == QS_AUTH_OK && claims.has_subscribe) {
        qs_update probe = {0};
        char *topics[1] = {(char *)qs_buf_cstr(uri)};
        size_t lens[1] = {uri->len};
        probe.topics = topics;
        probe.topic_lens = lens;
        probe.n_topics = 1;
        for (size_t i = 0; i < claims.n_subscribe && !ok; i++) {
            qs_selector *sel = qs_selector_table_acquire(ctx->selectors, claims.subscribe[i],
                                                         strlen(claims.subscribe[i]));
            ok = qs_can_receive(ctx->selectors, &sel, 1, &probe);
            qs_selector_table_release(ctx->selectors, sel);
        }
    }
    qs_jwt_claims_free(&claims);
    return ok;
}

void qs_subscriptions_handle(qs_http_req *req)
{
    const qs_hub *hub = req->ctx->hub;
    qs_slice seg[2];
    int n_seg = split_path(req->path, seg);
    if (!hub->cfg->subscriptions || n_seg < 0) {
        qs_endpoint_error(req, 404, "404 page not found");
        return;
    }
    if (!qs_slice_eq(req->method, "GET")) {
        qs_endpoint_method_not_allowed(req, "GET"); /* the reference routes GET alone here */
        return;
    }
    qs_buf uri = QS_BUF_INIT;
    qs_buf_append(&uri, req->path.p, req->path.n);
    if (req->query_string.n || memchr(req->target.p, '?', req->target.n)) {
        qs_buf_append_char(&uri, '?');
        qs_buf_append(&uri, req->query_string.p, req->query_string.n);
    }
    if (hub->subscriber_keys && !authorized(req, &uri)) {
        qs_buf_free(&uri);
        qs_endpoint_error(req, 401, "Unauthorized");
        return;
    }

    api_query *a = qs_xcalloc(1, sizeof(*a));
    a->req = req;
    a->request_uri = qs_buf_steal(&uri);
    if (n_seg >= 1)
        a->topic = unescape_segment(seg[0].p, seg[0].n);
    if (n_seg == 2)
        a->subscriber = unescape_segment(seg[1].p, seg[1].n);
    if (a->topic && !*a->topic && !a->subscriber) {
        free(a->topic); /* an invalid escape filters nothing, as in the reference */
        a->topic = NULL;
    }
    const qs_header *inm = qs_http_find(req, "If-None-Match");
    if (inm)
        a->if_none_match = qs_xstrndup(inm->value.p, inm->value.n);
    qs_endpoint_headers(req, &a->headers);
    a->q.done = api_done;
    qs_http_hold(req);
    qs_async_begin(&a->async, req->ctx, api_finish);
    qs_transport_presence_list(hub->transport, &a->q);
    qs_async_started(&a->async);
}
