/* SPDX-License-Identifier: MIT
 * subscribe.c - GET /.well-known/mercure: authorize, register, open the SSE stream.
 */
#include <stdlib.h>

#include "auth.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

/* 80–100 % of d, so that subscribers connected together do not all reconnect together. */
static uint64_t jitter(uint64_t d)
{
    uint64_t min = d * 8 / 10;
    uint32_t r;
    qs_random_bytes(&r, sizeof(r));
    return min + (d - min ? r % (d - min + 1) : 0);
}

/* The Last-Event-ID a subscriber asks for: header, then `lastEventID`, then (protocol 7)
 * the `Last-Event-ID` query parameter. */
static bool requested_last_event_id(const qs_config *cfg, const qs_http_request *h,
                                    const qs_form *query, qs_slice *out)
{
    const qs_http_header *hdr = qs_http_find_header(h, "Last-Event-ID");
    if (hdr && hdr->value.n) {
        *out = hdr->value;
        return true;
    }
    const qs_form_pair *q = qs_form_get(query, "lastEventID");
    if (q && q->value_len) {
        *out = (qs_slice){q->value, q->value_len};
        return true;
    }
    if (cfg->protocol_version_compatibility == 7) {
        q = qs_form_get(query, "Last-Event-ID");
        if (q && q->value_len) {
            *out = (qs_slice){q->value, q->value_len};
            return true;
        }
    }
    return false;
}

/* The response head and the stream's opening comment, as the reference sends them. When
 * split is not NULL, it receives the offset where a Last-Event-Id line belongs. */
static void build_head(qs_conn *c, const qs_request *req, const char *last_event_id, qs_buf *out,
                       size_t *split)
{
    qs_append_status_line(out, c->minor_version, 200);
    qs_append_date_header(out);
    qs_buf_append_str(out, "Cache-Control: private, no-cache, no-store, must-revalidate, "
                           "max-age=0\r\n"
                           "Connection: keep-alive\r\n"
                           "Content-Type: text/event-stream\r\n"
                           "Expire: 0\r\n"
                           "Pragma: no-cache\r\n"
                           "X-Accel-Buffering: no\r\n");
    if (split)
        *split = out->len;
    if (last_event_id) {
        qs_buf_append_str(out, "Last-Event-Id: ");
        qs_buf_append_str(out, last_event_id);
        qs_buf_append_str(out, "\r\n");
    }
    qs_hub_headers(c, req, out);
    if (c->minor_version >= 1)
        qs_buf_append_str(out, "Transfer-Encoding: chunked\r\n\r\n2\r\n:\n\r\n");
    else
        qs_buf_append_str(out, "\r\n:\n");
}

void qs_handle_subscribe(qs_conn *c, qs_request *req)
{
    qs_hub *hub = c->w->hub;
    const qs_config *cfg = hub->cfg;
    const qs_http_request *h = req->http;
    const qs_form *query = qs_request_query(req);

    qs_jwt_claims claims = {0};
    bool have_claims = false;
    if (hub->subscriber_key) {
        qs_auth_params ap = qs_conn_auth_params(c, false);
        const char *reason = NULL;
        enum qs_auth_status st = qs_authorize(&ap, h, query, &claims, &reason);
        if (st == QS_AUTH_INVALID || (st == QS_AUTH_ANONYMOUS && !cfg->anonymous)) {
            qs_debug("subscriber unauthorized from %s: %s", c->remote,
                     st == QS_AUTH_INVALID ? reason : "no token");
            qs_jwt_claims_free(&claims);
            qs_hub_send_error(c, req, 401, "Unauthorized");
            return;
        }
        have_claims = st == QS_AUTH_OK;
    }

    size_t n_topics = qs_form_count(query, "topic");
    if (!n_topics || (long)n_topics > cfg->max_topics) {
        qs_jwt_claims_free(&claims);
        qs_hub_send_error(c, req, 400,
                          n_topics ? "Too many \"topic\" parameters."
                                   : "Missing \"topic\" parameter.");
        return;
    }
    /* Bounded URI templates (issue 11): the work and memory one subscriber can cause. */
    const qs_selector_limits lim = {cfg->max_selector_length, (size_t)cfg->max_selector_expressions,
                                    (size_t)cfg->max_selector_states,
                                    (size_t)cfg->max_subscriber_states};
    size_t states = 0;
    char why[QS_SELECTOR_REASON_SIZE];
    for (size_t i = 0; i < query->n; i++) {
        const qs_form_pair *p = &query->pairs[i];
        if (p->key_len == 5 && memcmp(p->key, "topic", 5) == 0 &&
            qs_selector_check(&lim, p->value, p->value_len, &states, why)) {
            qs_jwt_claims_free(&claims);
            qs_hub_send_error(c, req, 400, why);
            return;
        }
    }

    qs_slice requested;
    const char *response_last_id = NULL;
    bool replay = false;
    if (requested_last_event_id(cfg, h, query, &requested)) {
        /* Without history nothing can be replayed: the cursor is "earliest". */
        response_last_id = "earliest";
        replay = hub->transport->ops->has_history;
    }

    if (c->head_method) {
        /* HEAD gets the stream's headers and no stream. */
        qs_response r;
        qs_response_init(&r, 200);
        qs_jwt_claims_free(&claims);
        r.content_type = "text/event-stream";
        qs_buf_append_str(&r.headers, "Cache-Control: private, no-cache, no-store, "
                                      "must-revalidate, max-age=0\r\n");
        if (response_last_id)
            qs_response_header(&r, "Last-Event-Id", response_last_id);
        qs_hub_headers(c, req, &r.headers);
        qs_conn_send(c, req, &r);
        return;
    }

    /* The stream ends (cleanly, before the write deadline) at write_timeout with jitter,
     * or before the token expires. */
    uint64_t now_ms = qs_now_ms();
    uint64_t deadline = 0;
    if (cfg->write_timeout_ms)
        deadline = now_ms + jitter(cfg->write_timeout_ms);
    if (have_claims && claims.has_exp) {
        /* Milliseconds, not seconds: a truncated clock would let the stream outlive the
         * token by up to a second. */
        const int64_t ten_years_ms = 10LL * 366 * 24 * 3600 * 1000;
        int64_t now_wall = qs_wall_ms();
        int64_t left = claims.exp > (now_wall + ten_years_ms) / 1000 ? ten_years_ms
                                                                     : claims.exp * 1000 - now_wall;
        uint64_t left_ms = left > 0 ? (uint64_t)left : 0;
        if (!deadline || now_ms + left_ms < deadline)
            deadline = now_ms + jitter(left_ms);
    }
    if (deadline) {
        deadline = deadline > cfg->dispatch_timeout_ms + now_ms
                       ? deadline - cfg->dispatch_timeout_ms
                       : now_ms;
        if (deadline == 0)
            deadline = 1;
    }

    qs_buf head = QS_BUF_INIT;
    size_t split = 0;
    build_head(c, req, replay ? NULL : response_last_id, &head, &split);
    qs_subscriber *s = qs_subscriber_new(c, query, have_claims ? &claims : NULL, deadline);
    qs_jwt_claims_free(&claims);
    c->sub = s;
    c->state = QS_CONN_STREAMING;
    c->keep_alive = false;
    qs_conn_watch_peer(c);
    qs_subscriptions_connected(s);
    if (replay) {
        /* Registered first, then the history up to this worker's bus position: live
         * updates queue behind the replay, so nothing is missed and nothing is doubled. */
        char *id = qs_xstrndup(requested.p, requested.n);
        qs_debug("new subscriber %s from %s (%zu topics), replaying after %s", s->id, c->remote,
                 n_topics, id);
        qs_subscriber_replay(s, id, qs_buf_steal(&head), split);
        free(id);
        return;
    }
    qs_subscriber_start(s, head.p, head.len);
    qs_buf_free(&head);
    qs_debug("new subscriber %s from %s (%zu topics)", s->id, c->remote, n_topics);
    qs_subscriber_flush(s);
}
