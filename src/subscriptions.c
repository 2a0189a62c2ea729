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

#include <ctype.h>
#include <stdlib.h>

#include "async.h"
#include "auth.h"
#include "endpoint.h"
#include "form.h"
#include "gojson.h"
#include "log.h"
#include "pstring.h"
#include "topic.h"

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

/* ------------------------------------------------------- 1.0 documents */

/* Go's url.QueryEscape with "+" written "%20", as the 1.0 reference escapes a segment. */
static void escape_segment(qs_buf *out, const char *s, size_t len)
{
    qs_buf q = QS_BUF_INIT;
    qs_form_escape(&q, s, len);
    for (size_t i = 0; i < q.len; i++) {
        if (q.p[i] == '+')
            qs_buf_append_str(out, "%20");
        else
            qs_buf_append_char(out, q.p[i]);
    }
    qs_buf_free(&q);
}

static const char *syntax_name(uint8_t syntax)
{
    return syntax == QS_SYNTAX_URLPATTERN ? "urlpattern" : "exact";
}

void qs_subscription1_id(qs_buf *out, uint8_t syntax, const char *pattern, size_t len,
                         const char *subscriber)
{
    qs_buf_append_str(out, SUBSCRIPTIONS_PATH "/");
    if (syntax != QS_SYNTAX_TOPIC) {
        qs_buf_append_str(out, syntax_name(syntax));
        qs_buf_append_char(out, '/');
    }
    escape_segment(out, pattern, len);
    qs_buf_append_char(out, '/');
    escape_segment(out, subscriber, strlen(subscriber));
}

void qs_subscription1_json(qs_buf *out, uint8_t syntax, const char *pattern, size_t len,
                           const char *subscriber, bool active, json_t *payload, int depth)
{
    bool first = true;
    qs_buf_append_char(out, '{');
    qs_buf id = QS_BUF_INIT;
    qs_subscription1_id(&id, syntax, pattern, len, subscriber);
    string_field(out, "id", id.p, id.len, depth + 1, &first);
    qs_buf_free(&id);
    string_field(out, "type", "subscription", 12, depth + 1, &first);
    string_field(out, "subscriber", subscriber, strlen(subscriber), depth + 1, &first);
    /* Go omits empty strings here (omitempty). */
    if (syntax == QS_SYNTAX_TOPIC) {
        if (len)
            string_field(out, "topic", pattern, len, depth + 1, &first);
    } else {
        if (len)
            string_field(out, "match", pattern, len, depth + 1, &first);
        const char *type = syntax_name(syntax);
        string_field(out, "match_type", type, strlen(type), depth + 1, &first);
    }
    field_start(out, "active", depth + 1, &first);
    qs_buf_append_str(out, active ? "true" : "false");
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

/* Publishes one subscription event (a private update) through the transport, in the 0.x
 * format or in 1.0's. */
static void publish_event(qs_transport *t, bool v1, uint8_t syntax, const char *topic,
                          size_t topic_len, const char *subscriber, bool active, json_t *payload)
{
    qs_update *u = qs_update_new();
    qs_buf id = QS_BUF_INIT, data = QS_BUF_INIT;
    if (v1) {
        qs_subscription1_id(&id, syntax, topic, topic_len, subscriber);
        qs_subscription1_json(&data, syntax, topic, topic_len, subscriber, active, payload, 0);
        qs_update_set_type(u, "mercure", 7); /* reserved to the hub in 1.0 */
    } else {
        qs_subscription_id(&id, topic, topic_len, subscriber);
        qs_subscription_json(&data, topic, topic_len, subscriber, active, NULL, payload, true, 0);
    }
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

/* The payload of selector k: its own, else the subscriber's (a new reference or NULL). */
static json_t *selector_payload(const qs_presence_entry *e, size_t k)
{
    if (e->payloads && e->payloads[k])
        return parse_payload(e->payloads[k]);
    return parse_payload(e->payload);
}

static uint8_t selector_syntax(const qs_presence_entry *e, size_t k)
{
    return e->syntaxes ? e->syntaxes[k] : QS_SYNTAX_TOPIC;
}

/* Publishes the events of one subscriber: per selector, one per format the hub serves. */
static void publish_events(const qs_hub *hub, const qs_presence_entry *e, bool active)
{
    for (size_t k = 0; k < e->n_topics; k++) {
        json_t *payload = selector_payload(e, k);
        const char *topic = e->topics[k];
        uint8_t syntax = selector_syntax(e, k);
        if (hub->cfg->protocol_0x)
            publish_event(hub->transport, false, syntax, topic, strlen(topic), e->subscriber,
                          active, payload);
        if (hub->cfg->protocol_1)
            publish_event(hub->transport, true, syntax, topic, strlen(topic), e->subscriber, active,
                          payload);
        json_decref(payload);
    }
}

void qs_subscriptions_arrive(qs_ctx *ctx, const qs_presence_entry *e, bool v1)
{
    qs_transport *t = ctx->hub->transport;
    if (v1) {
        /* As the 1.0 reference: registered, then announced. */
        qs_transport_presence_add(t, e);
        publish_events(ctx->hub, e, true);
        return;
    }
    /* As the 0.x reference: the events first, then the registry. */
    publish_events(ctx->hub, e, true);
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
    publish_events(d->hub, &d->e, false);
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
    for (size_t i = 0; i < n; i++)
        publish_events(hub, &entries[i], false);
}

/* -------------------------------------------------------------- the API */

/* A read of the registry in progress. */
typedef struct api_query {
    qs_presence_query q;
    qs_async async;
    qs_http_req *req;  /* held until the answer */
    bool v1;           /* answered in protocol 1.0's documents */
    char *request_uri; /* the document's id: 0.x: path and query; 1.0: the escaped path */
    char *topic;       /* 0.x filter, NULL = all */
    char *match;       /* 1.0 filter (with syntax), NULL = all */
    uint8_t syntax;
    char *subscriber; /* single document, NULL = collection */
    char *if_none_match;
    qs_buf headers; /* hub headers computed while the request was readable */
} api_query;

/* The selectors of an entry a 1.0 filter keeps (a 0.x selector never: it has no type). */
static bool match_filter(const api_query *a, const qs_presence_entry *e, size_t k)
{
    if (a->v1)
        return !a->match ||
               (selector_syntax(e, k) == a->syntax && strcmp(e->topics[k], a->match) == 0);
    return !a->topic || strcmp(e->topics[k], a->topic) == 0;
}

/* One listed subscription, in the request's generation. */
static void item_json(qs_buf *out, const api_query *a, const qs_presence_entry *e, size_t k)
{
    json_t *payload = selector_payload(e, k);
    const char *t = e->topics[k];
    if (a->v1)
        qs_subscription1_json(out, selector_syntax(e, k), t, strlen(t), e->subscriber, true,
                              payload, 2);
    else
        qs_subscription_json(out, t, strlen(t), e->subscriber, true, NULL, payload, false, 2);
    json_decref(payload);
}

/* The collection document: every entry's subscriptions (those the filter keeps). */
static void collection_json(qs_buf *out, const api_query *a, const char *last_id)
{
    bool first = true;
    qs_buf_append_char(out, '{');
    if (!a->v1)
        string_field(out, "@context", "https://mercure.rocks/", 22, 1, &first);
    string_field(out, "id", a->request_uri, strlen(a->request_uri), 1, &first);
    if (a->v1) {
        string_field(out, "type", "subscriptions", 13, 1, &first);
    } else {
        string_field(out, "type", "Subscriptions", 13, 1, &first);
        string_field(out, "lastEventID", last_id, strlen(last_id), 1, &first);
    }
    field_start(out, "subscriptions", 1, &first);
    size_t written = 0;
    for (size_t i = 0; i < a->q.n; i++) {
        const qs_presence_entry *e = &a->q.entries[i];
        for (size_t k = 0; k < e->n_topics; k++) {
            if (!match_filter(a, e, k))
                continue;
            qs_buf_append_str(out, written ? "," : "[");
            qs_gojson_indent(out, 2);
            item_json(out, a, e, k);
            written++;
        }
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

/* The requested subscriber's first subscription the filter keeps, or NULL (*k: which). */
static const qs_presence_entry *find_subscription(const api_query *a, size_t *k)
{
    for (size_t i = 0; i < a->q.n; i++)
        if (strcmp(a->q.entries[i].subscriber, a->subscriber) == 0)
            for (*k = 0; *k < a->q.entries[i].n_topics; (*k)++)
                if (match_filter(a, &a->q.entries[i], *k))
                    return &a->q.entries[i];
    return NULL;
}

/* 1.0's entity tag: the id quoted, its bytes outside etagc (and "%") percent-encoded. */
static void etag_1(qs_buf *out, const char *id)
{
    qs_buf_append_char(out, '"');
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        if (*p < 0x21 || *p == '"' || *p == '%' || *p == 0x7F)
            qs_buf_appendf(out, "%%%02X", *p);
        else
            qs_buf_append_char(out, (char)*p);
    }
    qs_buf_append_char(out, '"');
}

/* 1.0's Link header: the hub, the cursor and what its events are. */
static void link_1(qs_buf *out, const char *id)
{
    qs_buf_append_str(out, "Link: </.well-known/mercure>; rel=\"mercure\"; last-event-id=\"");
    for (const char *p = id; *p; p++) {
        if (*p == '"' || *p == '\\')
            qs_buf_append_char(out, '\\');
        qs_buf_append_char(out, *p);
    }
    qs_buf_append_str(out, "\"; type=\"mercure\"; content-type=\"application/json\"\r\n");
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
    qs_buf etag = QS_BUF_INIT;
    if (a->v1)
        etag_1(&etag, last_id);
    else
        qs_buf_append_str(&etag, last_id);
    qs_http_response r;
    if (a->if_none_match && strcmp(a->if_none_match, qs_buf_cstr(&etag)) == 0) {
        qs_http_response_init(&r, 304);
        qs_buf_append(&r.headers, a->headers.p, a->headers.len);
        if (a->v1) /* a 304 carries the tag a 200 would */
            qs_http_response_header(&r, "ETag", qs_buf_cstr(&etag));
        qs_http_respond(req, &r);
        qs_buf_free(&etag);
        free(last_id);
        return;
    }
    const qs_presence_entry *found = NULL;
    size_t k = 0;
    if (a->subscriber && !(found = find_subscription(a, &k))) {
        qs_http_error(req, 404, "404 page not found", extra);
        qs_buf_free(&etag);
        free(last_id);
        return;
    }
    qs_http_response_init(&r, 200);
    qs_buf_append(&r.headers, a->headers.p, a->headers.len);
    if (found && a->v1) {
        json_t *payload = selector_payload(found, k);
        const char *t = found->topics[k];
        qs_subscription1_json(&r.body, selector_syntax(found, k), t, strlen(t), found->subscriber,
                              true, payload, 0);
        json_decref(payload);
    } else if (found) {
        json_t *payload = parse_payload(found->payload);
        qs_subscription_json(&r.body, a->topic, strlen(a->topic), found->subscriber, true, last_id,
                             payload, true, 0);
        json_decref(payload);
    } else {
        collection_json(&r.body, a, last_id);
    }
    r.content_type = a->v1 ? "application/json" : "application/ld+json";
    qs_http_response_header(&r, "ETag", qs_buf_cstr(&etag));
    if (a->v1)
        link_1(&r.headers, last_id);
    qs_buf_free(&etag);
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
    free(a->match);
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

/* Go's url.QueryUnescape, whose error the 0.x reference ignores: an invalid segment is "". */
static char *unescape_segment(const char *s, size_t len)
{
    qs_buf b = QS_BUF_INIT;
    if (qs_form_unescape(s, len, true, &b) < 0)
        qs_buf_reset(&b);
    return qs_buf_steal(&b);
}

/* Go's url.PathUnescape ("+" stays "+"); NULL with Go's error text in err when an escape is
 * invalid: invalid URL escape "%zz". */
static char *path_unescape(qs_slice s, qs_buf *err)
{
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] != '%')
            continue;
        bool ok = i + 2 < s.n && isxdigit((unsigned char)s.p[i + 1]) &&
                  isxdigit((unsigned char)s.p[i + 2]);
        if (!ok) {
            size_t n = s.n - i < 3 ? s.n - i : 3;
            qs_buf_append_str(err, "invalid URL escape ");
            qs_go_quote(err, s.p + i, n);
            return NULL;
        }
    }
    qs_buf b = QS_BUF_INIT;
    qs_form_unescape(s.p, s.n, false, &b);
    return qs_buf_steal(&b);
}

/* Splits /subscriptions and up to three more segments below it, each one percent-encoded
 * path segment; -1 for anything else. */
static int split_path(qs_slice path, qs_slice seg[3])
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
        if (i == start || n == 3)
            return -1;
        seg[n++] = (qs_slice){rest + start, i - start};
        if (i == rest_len)
            return n;
        i++;
    }
}

/* The matcher type a 1.0 path segment names, or -1 (after unescaping). */
static int matcher_type(const char *s)
{
    if (strcmp(s, "exact") == 0)
        return QS_SYNTAX_EXACT;
    if (strcmp(s, "urlpattern") == 0)
        return QS_SYNTAX_URLPATTERN;
    return -1;
}

/* True when a subscribe claim or grant of the request's token covers `resource`. */
static bool covers(qs_ctx *ctx, const qs_jwt_claims *c0, const qs_token1_claims *c1,
                   const char *resource, size_t len)
{
    if (c1)
        return qs_token1_grants(c1, false, resource, len);
    if (!c0->has_subscribe)
        return false;
    char *topics[1] = {(char *)resource};
    qs_topics v;
    qs_topics_init(&v, topics, &len, 1);
    bool ok = false;
    for (size_t i = 0; i < c0->n_subscribe && !ok; i++) {
        qs_selector *sel =
            qs_selector_table_acquire(ctx->selectors, c0->subscribe[i], strlen(c0->subscribe[i]));
        ok = qs_can_receive(ctx->selectors, &sel, 1, &v);
        qs_selector_table_release(ctx->selectors, sel);
    }
    qs_topics_free(&v);
    return ok;
}

/* 0.x: the token's subscribe claim must match the request URI (path and query); every
 * refusal is a plain 401. */
static bool authorized_0x(qs_http_req *req, qs_buf *uri)
{
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    bool ok = false;
    if (!hub->cfg->protocol_1) {
        qs_jwt_claims claims;
        const char *reason = NULL;
        if (qs_endpoint_authorize(req, false, &claims, &reason) == QS_AUTH_OK)
            ok = covers(ctx, &claims, NULL, qs_buf_cstr(uri), uri->len);
        qs_jwt_claims_free(&claims);
        return ok;
    }
    qs_access a;
    qs_endpoint_access(req, false, QS_RULES_0X, &a);
    if (a.status == QS_ACCESS_OK)
        ok = covers(ctx, &a.claims0, a.v1_token ? a.claims1 : NULL, qs_buf_cstr(uri), uri->len);
    qs_access_clear(&a);
    return ok;
}

/* 1.0: a subscribe grant must match the escaped path (no query); refusals are answered as
 * RFC 6750 says. False when answered. */
static bool authorized_1(qs_http_req *req)
{
    qs_ctx *ctx = req->ctx;
    qs_access a;
    qs_endpoint_access(req, false, QS_RULES_1, &a);
    enum qs_bearer_error e = QS_BEARER_INSUFFICIENT_SCOPE;
    if (a.status == QS_ACCESS_ANONYMOUS)
        e = QS_BEARER_CHALLENGE;
    else if (a.status == QS_ACCESS_BAD_REQUEST)
        e = QS_BEARER_INVALID_REQUEST;
    else if (a.status == QS_ACCESS_INVALID)
        e = QS_BEARER_INVALID_TOKEN;
    else if (covers(ctx, &a.claims0, a.v1_token ? a.claims1 : NULL, req->path.p, req->path.n))
        e = (enum qs_bearer_error) - 1;
    qs_access_clear(&a);
    if ((int)e == -1)
        return true;
    qs_endpoint_bearer_error(req, e);
    return false;
}

/* Reads the registry and answers a (held). */
static void api_start(qs_http_req *req, api_query *a)
{
    const qs_header *inm = qs_http_find(req, "If-None-Match");
    if (inm)
        a->if_none_match = qs_xstrndup(inm->value.p, inm->value.n);
    qs_endpoint_headers(req, &a->headers);
    a->q.done = api_done;
    a->req = req;
    qs_http_hold(req);
    qs_async_begin(&a->async, req->ctx, api_finish);
    qs_transport_presence_list(req->ctx->hub->transport, &a->q);
    qs_async_started(&a->async);
}

/* /subscriptions[/{topic}[/{subscriber}]], as 0.x. */
static void api_0x(qs_http_req *req, const qs_slice *seg, int n_seg)
{
    const qs_hub *hub = req->ctx->hub;
    qs_buf uri = QS_BUF_INIT;
    qs_buf_append(&uri, req->path.p, req->path.n);
    if (req->query_string.n || memchr(req->target.p, '?', req->target.n)) {
        qs_buf_append_char(&uri, '?');
        qs_buf_append(&uri, req->query_string.p, req->query_string.n);
    }
    bool verified = hub->cfg->protocol_1 ? hub->subscribers_verified : hub->subscriber_keys != NULL;
    if (verified && !authorized_0x(req, &uri)) {
        qs_buf_free(&uri);
        qs_endpoint_error(req, 401, "Unauthorized");
        return;
    }
    api_query *a = qs_xcalloc(1, sizeof(*a));
    a->request_uri = qs_buf_steal(&uri);
    if (n_seg >= 1)
        a->topic = unescape_segment(seg[0].p, seg[0].n);
    if (n_seg == 2)
        a->subscriber = unescape_segment(seg[1].p, seg[1].n);
    if (a->topic && !*a->topic && !a->subscriber) {
        free(a->topic); /* an invalid escape filters nothing, as in the reference */
        a->topic = NULL;
    }
    api_start(req, a);
}

/* /subscriptions[/{match_type}/{match}[/{subscriber}]], as 1.0: the path's shape is checked
 * (400) before the token, as the reference does. */
static void api_1(qs_http_req *req, const qs_slice *seg, int n_seg)
{
    const qs_hub *hub = req->ctx->hub;
    qs_buf err = QS_BUF_INIT, why = QS_BUF_INIT;
    char *subscriber = NULL, *match = NULL, *type = NULL;
    int syntax = -1;
    if (n_seg == 3 && !(subscriber = path_unescape(seg[2], &why)))
        qs_buf_append_str(&err, "invalid subscriber segment: ");
    else if (n_seg >= 2 && !(match = path_unescape(seg[1], &why)))
        qs_buf_append_str(&err, "invalid match segment: ");
    else if (n_seg >= 2 && !(type = path_unescape(seg[0], &why)))
        qs_buf_append_str(&err, "invalid match_type segment: ");
    else if (n_seg >= 2 && (syntax = matcher_type(type)) < 0)
        qs_buf_append_str(&err, "unsupported topic matcher type");
    qs_buf_append(&err, why.p, why.len);
    qs_buf_free(&why);
    free(type);
    if (err.len) {
        free(subscriber);
        free(match);
        qs_endpoint_error(req, 400, qs_buf_cstr(&err));
        qs_buf_free(&err);
        return;
    }
    if (hub->subscribers_verified && !authorized_1(req)) {
        free(subscriber);
        free(match);
        return;
    }
    api_query *a = qs_xcalloc(1, sizeof(*a));
    a->v1 = true;
    a->request_uri = qs_xstrndup(req->path.p, req->path.n);
    a->match = match;
    a->syntax = (uint8_t)(syntax < 0 ? 0 : syntax);
    a->subscriber = subscriber;
    api_start(req, a);
}

void qs_subscriptions_handle(qs_http_req *req)
{
    const qs_config *cfg = req->ctx->hub->cfg;
    qs_slice seg[3];
    int n_seg = split_path(req->path, seg);
    /* Which generation's routes: 0.x has /{topic}[/{subscriber}], 1.0
     * /{match_type}/{match}[/{subscriber}]; serving both, two segments are 1.0's when the
     * first names a matcher type (as the reference's compatibility mode routes them), and
     * the collection follows the token's shape. */
    bool v1 = cfg->protocol_1 && !cfg->protocol_0x;
    if (cfg->protocol_1 && cfg->protocol_0x) {
        if (n_seg == 3) {
            v1 = true;
        } else if (n_seg == 2) {
            qs_buf ignored = QS_BUF_INIT;
            char *t = path_unescape(seg[0], &ignored);
            v1 = t && matcher_type(t) >= 0;
            free(t);
            qs_buf_free(&ignored);
        } else if (n_seg == 0) {
            v1 = qs_endpoint_access_token_sent(req);
        }
    }
    if (!cfg->subscriptions || n_seg < 0 || (v1 && n_seg == 1) || (!v1 && n_seg == 3)) {
        qs_endpoint_error(req, 404, "404 page not found");
        return;
    }
    if (!qs_slice_eq(req->method, "GET")) {
        qs_endpoint_method_not_allowed(req, "GET"); /* the reference routes GET alone here */
        return;
    }
    if (v1)
        api_1(req, seg, n_seg);
    else
        api_0x(req, seg, n_seg);
}
