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

#include <stdatomic.h>
#include <stdlib.h>

#include "auth.h"
#include "form.h"
#include "gojson.h"
#include "log.h"
#include "server.h"

#define SUBSCRIPTIONS_PATH "/.well-known/mercure/subscriptions"

void qs_subscription_id(qs_buf *out, const char *topic, size_t topic_len, const char *subscriber)
{
    qs_buf_append_str(out, SUBSCRIPTIONS_PATH "/");
    qs_url_query_escape(out, topic, topic_len);
    qs_buf_append_char(out, '/');
    qs_url_query_escape(out, subscriber, strlen(subscriber));
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

/* Publishes the events of one subscriber (active or not), one per topic selector. */
static void publish_events(qs_subscriber *s, bool active)
{
    qs_transport *t = s->w->hub->transport;
    for (uint32_t i = 0; i < s->n_entries; i++) {
        const qs_selector *sel = s->entries[i].group->sel;
        publish_event(t, sel->str, sel->len, s->id, active, s->payload);
    }
}

static json_t *parse_payload(const char *s)
{
    return s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
}

void qs_subscriptions_lost(void *ctx, const qs_presence_entry *entries, size_t n)
{
    qs_hub *hub = ctx;
    for (size_t i = 0; i < n; i++) {
        const qs_presence_entry *e = &entries[i];
        json_t *payload = parse_payload(e->payload);
        for (size_t k = 0; k < e->n_topics; k++)
            publish_event(hub->transport, e->topics[k], strlen(e->topics[k]), e->subscriber, false,
                          payload);
        json_decref(payload);
    }
}

static char *payload_json(json_t *payload)
{
    return payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

void qs_subscriptions_connected(qs_subscriber *s)
{
    qs_hub *hub = s->w->hub;
    if (!hub->cfg->subscriptions)
        return;
    /* As the reference: the events first, then the registry. */
    publish_events(s, true);
    qs_presence_entry e = {0};
    e.subscriber = s->id;
    e.n_topics = s->n_entries;
    e.topics = qs_xcalloc(s->n_entries ? s->n_entries : 1, sizeof(*e.topics));
    for (uint32_t i = 0; i < s->n_entries; i++)
        e.topics[i] = s->entries[i].group->sel->str;
    e.payload = payload_json(s->payload);
    qs_transport_presence_add(hub->transport, &e);
    free(e.payload);
    free(e.topics);
    s->presence_registered = true;
}

void qs_subscriptions_disconnected(qs_subscriber *s)
{
    qs_hub *hub = s->w->hub;
    if (!s->presence_registered)
        return;
    qs_transport_presence_remove(hub->transport, s->id);
    publish_events(s, false);
}

/* -------------------------------------------------------------- the API */

/* A registry read in progress; like a publish, it may complete inside the call or later
 * on another thread. */
enum { Q_IN_CALL, Q_DONE_IN_CALL, Q_ASYNC };

typedef struct api_query {
    qs_presence_query q;
    qs_conn *conn;
    qs_worker *w;
    atomic_int state;
    char *request_uri;
    char *topic;      /* filter, NULL = all */
    char *subscriber; /* single document, NULL = collection */
    char *if_none_match;
    qs_buf headers; /* hub headers computed while the request was readable */
} api_query;

static void api_respond(api_query *a)
{
    qs_conn *c = a->conn;
    qs_hub *hub = c->w->hub;
    if (c->closing)
        goto out;
    if (a->q.status != 0) {
        qs_error("subscriptions API: %s", a->q.reason[0] ? a->q.reason : "registry unavailable");
        qs_response r;
        qs_response_init(&r, 500);
        r.content_type = "text/plain; charset=utf-8";
        qs_buf_append(&r.headers, a->headers.p, a->headers.len);
        qs_buf_append_str(&r.body, "Internal Server Error\n");
        qs_conn_send(c, NULL, &r);
        goto out;
    }
    char *last_id = qs_transport_last_event_id(hub->transport);
    qs_response r;
    if (a->if_none_match && strcmp(a->if_none_match, last_id) == 0) {
        qs_response_init(&r, 304);
        qs_buf_append(&r.headers, a->headers.p, a->headers.len);
        qs_conn_send(c, NULL, &r);
        free(last_id);
        goto out;
    }
    qs_response_init(&r, 200);
    qs_buf_append(&r.headers, a->headers.p, a->headers.len);
    if (a->subscriber) {
        const qs_presence_entry *found = NULL;
        for (size_t i = 0; i < a->q.n && !found; i++)
            if (strcmp(a->q.entries[i].subscriber, a->subscriber) == 0)
                for (size_t k = 0; k < a->q.entries[i].n_topics && !found; k++)
                    if (strcmp(a->q.entries[i].topics[k], a->topic) == 0)
                        found = &a->q.entries[i];
        if (!found) {
            qs_response_free(&r);
            qs_buf extra = QS_BUF_INIT;
            qs_buf_append(&extra, a->headers.p, a->headers.len);
            qs_conn_send_error(c, NULL, 404, "404 page not found", qs_buf_cstr(&extra));
            qs_buf_free(&extra);
            free(last_id);
            goto out;
        }
        json_t *payload = parse_payload(found->payload);
        qs_subscription_json(&r.body, a->topic, strlen(a->topic), found->subscriber, true, last_id,
                             payload, true, 0);
        json_decref(payload);
    } else {
        bool first = true;
        qs_buf_append_char(&r.body, '{');
        string_field(&r.body, "@context", "https://mercure.rocks/", 22, 1, &first);
        string_field(&r.body, "id", a->request_uri, strlen(a->request_uri), 1, &first);
        string_field(&r.body, "type", "Subscriptions", 13, 1, &first);
        string_field(&r.body, "lastEventID", last_id, strlen(last_id), 1, &first);
        field_start(&r.body, "subscriptions", 1, &first);
        size_t written = 0;
        for (size_t i = 0; i < a->q.n; i++) {
            const qs_presence_entry *e = &a->q.entries[i];
            json_t *payload = NULL;
            for (size_t k = 0; k < e->n_topics; k++) {
                if (a->topic && strcmp(e->topics[k], a->topic) != 0)
                    continue;
                if (!payload && e->payload)
                    payload = parse_payload(e->payload);
                qs_buf_append_str(&r.body, written ? "," : "[");
                qs_gojson_indent(&r.body, 2);
                qs_subscription_json(&r.body, e->topics[k], strlen(e->topics[k]), e->subscriber,
                                     true, NULL, payload, false, 2);
                written++;
            }
            json_decref(payload);
        }
        if (written) {
            qs_gojson_indent(&r.body, 1);
            qs_buf_append_char(&r.body, ']');
        } else {
            qs_buf_append(&r.body, "[]", 2);
        }
        qs_gojson_indent(&r.body, 0);
        qs_buf_append_char(&r.body, '}');
    }
    r.content_type = "application/ld+json";
    qs_response_header(&r, "ETag", last_id);
    free(last_id);
    qs_conn_send(c, NULL, &r);
out:
    qs_conn_unref(c);
    qs_presence_entries_free(a->q.entries, a->q.n);
    free(a->request_uri);
    free(a->topic);
    free(a->subscriber);
    free(a->if_none_match);
    qs_buf_free(&a->headers);
    free(a);
}

static void api_task(qs_worker *w, void *arg)
{
    w->async_pending--;
    api_respond(arg);
}

static void api_done(qs_presence_query *q)
{
    api_query *a = (api_query *)q;
    int expected = Q_IN_CALL;
    if (atomic_compare_exchange_strong(&a->state, &expected, Q_DONE_IN_CALL))
        return;
    qs_worker_post(a->w, api_task, a);
}

/* Go's url.QueryUnescape, whose error the reference ignores: an invalid segment is "". */
static char *unescape_segment(const char *s, size_t len)
{
    qs_buf b = QS_BUF_INIT;
    if (qs_url_unescape(s, len, true, &b) < 0)
        qs_buf_reset(&b);
    return qs_buf_steal(&b);
}

void qs_handle_subscriptions_api(qs_conn *c, qs_request *req)
{
    qs_hub *hub = c->w->hub;
    const qs_config *cfg = hub->cfg;
    const qs_http1_head *h = req->http;
    if (!cfg->subscriptions) {
        qs_hub_send_error(c, req, 404, "404 page not found");
        return;
    }
    /* /subscriptions, /subscriptions/{topic} or /subscriptions/{topic}/{subscriber}, where
     * each variable is one percent-encoded path segment. */
    const char *rest = h->path.p + sizeof(SUBSCRIPTIONS_PATH) - 1;
    size_t rest_len = h->path.n - (sizeof(SUBSCRIPTIONS_PATH) - 1);
    qs_slice seg[3];
    int n_seg = 0;
    bool bad = false;
    if (rest_len) {
        if (rest[0] != '/') {
            bad = true;
        } else {
            size_t i = 1;
            while (!bad) {
                size_t start = i;
                while (i < rest_len && rest[i] != '/')
                    i++;
                if (i == start || n_seg == 2) {
                    bad = true;
                    break;
                }
                seg[n_seg++] = (qs_slice){rest + start, i - start};
                if (i == rest_len)
                    break;
                i++;
            }
        }
    }
    if (bad) {
        qs_hub_send_error(c, req, 404, "404 page not found");
        return;
    }
    if (!qs_slice_eq(h->method, "GET") && !qs_slice_eq(h->method, "HEAD")) {
        qs_buf extra = QS_BUF_INIT;
        qs_hub_headers(c, req, &extra);
        qs_buf_append_str(&extra, "Allow: GET, HEAD\r\n");
        qs_conn_send_error(c, req, 405, "Method Not Allowed", qs_buf_cstr(&extra));
        qs_buf_free(&extra);
        return;
    }

    /* The request URI (path and query) is what the token's subscribe claim must match. */
    qs_buf uri = QS_BUF_INIT;
    qs_buf_append(&uri, h->path.p, h->path.n);
    if (h->query.n || memchr(h->target.p, '?', h->target.n)) {
        qs_buf_append_char(&uri, '?');
        qs_buf_append(&uri, h->query.p, h->query.n);
    }
    if (hub->subscriber_key) {
        qs_auth_params ap = qs_conn_auth_params(c, false);
        qs_jwt_claims claims;
        const char *reason = NULL;
        enum qs_auth_status st =
            qs_authorize(&ap, h->headers, h->n_headers, qs_request_query(req), &claims, &reason);
        bool ok = st == QS_AUTH_OK && claims.has_subscribe;
        if (ok) {
            qs_update probe = {0};
            char *topics[1] = {(char *)qs_buf_cstr(&uri)};
            size_t lens[1] = {uri.len};
            probe.topics = topics;
            probe.topic_lens = lens;
            probe.n_topics = 1;
            /* The claim's selectors are matched against the request URI. */
            ok = false;
            for (size_t i = 0; i < claims.n_subscribe && !ok; i++) {
                qs_selector *sel = qs_selector_table_acquire(c->w->selectors, claims.subscribe[i],
                                                             strlen(claims.subscribe[i]));
                ok = qs_can_receive(c->w->selectors, &sel, 1, &probe);
                qs_selector_table_release(c->w->selectors, sel);
            }
        }
        qs_jwt_claims_free(&claims);
        if (!ok) {
            qs_buf_free(&uri);
            qs_hub_send_error(c, req, 401, "Unauthorized");
            return;
        }
    }

    api_query *a = qs_xcalloc(1, sizeof(*a));
    a->conn = c;
    a->w = c->w;
    a->request_uri = qs_buf_steal(&uri);
    if (n_seg >= 1)
        a->topic = unescape_segment(seg[0].p, seg[0].n);
    if (n_seg == 2)
        a->subscriber = unescape_segment(seg[1].p, seg[1].n);
    if (a->topic && !*a->topic && !a->subscriber) {
        free(a->topic); /* an invalid escape filters nothing, as in the reference */
        a->topic = NULL;
    }
    const qs_header *inm = qs_headers_find(h->headers, h->n_headers, "If-None-Match");
    if (inm)
        a->if_none_match = qs_xstrndup(inm->value.p, inm->value.n);
    qs_hub_headers(c, req, &a->headers);
    a->q.done = api_done;
    atomic_init(&a->state, Q_IN_CALL);
    qs_conn_ref(c);
    qs_transport_presence_list(hub->transport, &a->q);
    int expected = Q_IN_CALL;
    if (atomic_compare_exchange_strong(&a->state, &expected, Q_ASYNC)) {
        c->w->async_pending++;
        return;
    }
    api_respond(a);
}
