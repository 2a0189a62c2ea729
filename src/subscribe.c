/* SPDX-License-Identifier: MIT
 * subscribe.c - GET /.well-known/mercure: authorize, register, open the event stream.
 */
#include "subscribe.h"

#include <stdlib.h>

#include "ctx.h"
#include "endpoint.h"
#include "log.h"
#include "subscriber.h"

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
static bool requested_last_event_id(const qs_config *cfg, const qs_http_req *req,
                                    const qs_form *query, qs_slice *out)
{
    const qs_header *hdr = qs_http_find(req, "Last-Event-ID");
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

/* When the stream ends (cleanly, before the write deadline): at write_timeout with jitter,
 * or before the token expires; 0 = never. */
static uint64_t stream_deadline(const qs_config *cfg, const qs_jwt_claims *claims)
{
    uint64_t now_ms = qs_now_ms();
    uint64_t deadline = 0;
    if (cfg->write_timeout_ms)
        deadline = now_ms + jitter(cfg->write_timeout_ms);
    if (claims && claims->has_exp) {
        /* Milliseconds, not seconds: a truncated clock would let the stream outlive the
         * token by up to a second. */
        const int64_t ten_years_ms = 10LL * 366 * 24 * 3600 * 1000;
        int64_t now_wall = qs_wall_ms();
        int64_t left = claims->exp > (now_wall + ten_years_ms) / 1000
                           ? ten_years_ms
                           : claims->exp * 1000 - now_wall;
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
    return deadline;
}

/* The response head of the stream, as the reference sends it. */
static void stream_head(qs_http_req *req, const char *last_event_id, qs_http_response *r)
{
    qs_http_response_init(r, 200);
    r->content_type = "text/event-stream";
    qs_buf_append_str(&r->headers, "Cache-Control: private, no-cache, no-store, "
                                   "must-revalidate, max-age=0\r\n"
                                   "Expire: 0\r\n"
                                   "Pragma: no-cache\r\n"
                                   "X-Accel-Buffering: no\r\n");
    if (last_event_id)
        qs_http_response_header(r, "Last-Event-Id", last_event_id);
    qs_endpoint_headers(req, &r->headers);
}

void qs_subscribe_handle(qs_http_req *req)
{
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    const qs_config *cfg = hub->cfg;
    const qs_form *query = qs_http_query(req);

    qs_jwt_claims claims = {0};
    bool have_claims = false;
    if (hub->subscriber_keys) {
        const char *reason = NULL;
        enum qs_auth_status st = qs_endpoint_authorize(req, false, &claims, &reason);
        if (st == QS_AUTH_INVALID || (st == QS_AUTH_ANONYMOUS && !cfg->anonymous)) {
            qs_debug("subscriber unauthorized from %s: %s", req->peer,
                     st == QS_AUTH_INVALID ? reason : "no token");
            qs_jwt_claims_free(&claims);
            qs_endpoint_error(req, 401, "Unauthorized");
            return;
        }
        have_claims = st == QS_AUTH_OK;
    }

    size_t n_topics = qs_form_count(query, "topic");
    if (!n_topics || (long)n_topics > cfg->max_topics) {
        qs_jwt_claims_free(&claims);
        qs_endpoint_error(
            req, 400, n_topics ? "Too many \"topic\" parameters." : "Missing \"topic\" parameter.");
        return;
    }
    /* URI templates are bounded, so that no subscriber can make matching costly for all. */
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
            qs_endpoint_error(req, 400, why);
            return;
        }
    }

    qs_slice requested;
    const char *response_last_id = NULL;
    bool replay = false;
    if (requested_last_event_id(cfg, req, query, &requested)) {
        /* Without history nothing can be replayed: the cursor is "earliest". */
        response_last_id = "earliest";
        replay = hub->transport->ops->has_history;
    }

    qs_http_response head;
    if (req->head) {
        /* HEAD gets the stream's headers and no stream. */
        qs_jwt_claims_free(&claims);
        stream_head(req, response_last_id, &head);
        qs_http_respond(req, &head);
        return;
    }

    qs_slice *selectors = qs_xmalloc(n_topics * sizeof(*selectors));
    size_t n = 0;
    for (size_t i = 0; i < query->n; i++) {
        const qs_form_pair *p = &query->pairs[i];
        if (p->key_len == 5 && memcmp(p->key, "topic", 5) == 0)
            selectors[n++] = (qs_slice){p->value, p->value_len};
    }
    const qs_jwt_claims *c = have_claims ? &claims : NULL;
    qs_subscriber *s = qs_subscriber_new(ctx, req, selectors, n, c, stream_deadline(cfg, c));
    free(selectors);
    if (!s) {
        qs_jwt_claims_free(&claims);
        return; /* the client is already gone */
    }
    /* Registered first, then the history up to this worker's bus position: live updates
     * queue behind the replay, so nothing is missed and nothing is doubled. */
    stream_head(req, replay ? NULL : response_last_id, &head);
    qs_jwt_claims_free(&claims);
    if (replay) {
        char *id = qs_xstrndup(requested.p, requested.n);
        qs_debug("new subscriber %s from %s (%zu topics), replaying after %s", s->id, req->peer,
                 n_topics, id);
        qs_subscriber_replay(s, id, &head);
        free(id);
        return;
    }
    qs_debug("new subscriber %s from %s (%zu topics)", s->id, req->peer, n_topics);
    qs_subscriber_start(s, &head);
}
