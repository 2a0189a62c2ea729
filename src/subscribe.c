/* SPDX-License-Identifier: MIT
 * subscribe.c - GET (HEAD, QUERY) /.well-known/mercure: authorize, register, open the event
 * stream, in the protocol generation the request speaks.
 *
 * A request with a parameter whose name starts with "match" in any case speaks 1.0; any
 * other speaks 0.x (when the hub serves it). 0.x: `topic` selectors, `lastEventID`, the
 * Last-Event-Id response header, plain 401s. 1.0: `match` and `match_<type>` matchers read
 * in sorted name order, `last_event_id`, the Mercure-Last-Event-Id response header, RFC 6750
 * errors, a QUERY form body, and the reference's exact 400 bodies. Either way the token's
 * shape decides how its claims are read (endpoint.h), and both kinds of subscribers share the
 * index, the history and presence.
 */
#include "subscribe.h"

#include <stdlib.h>

#include "ctx.h"
#include "endpoint.h"
#include "log.h"
#include "pstring.h"
#include "subscriber.h"

/* 80–100 % of d, so that subscribers connected together do not all reconnect together. */
static uint64_t jitter(uint64_t d)
{
    uint64_t min = d * 8 / 10;
    uint32_t r;
    qs_random_bytes(&r, sizeof(r));
    return min + (d - min ? r % (d - min + 1) : 0);
}

/* The Last-Event-ID a 0.x subscriber asks for: header, then `lastEventID`, then (protocol 7)
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
 * or before the token expires (exp in seconds; has_exp false: no token expiry); 0 = never.
 * One dispatch_timeout before that deadline; when that is already past, 0.x ends the stream
 * at once, as its reference does, and 1.0 keeps the deadline itself, as its reference does
 * (a token expiring within dispatch_timeout still gets the time it grants). */
static uint64_t stream_deadline(const qs_config *cfg, bool has_exp, int64_t exp, bool v1)
{
    uint64_t now_ms = qs_now_ms();
    uint64_t deadline = 0;
    if (cfg->write_timeout_ms)
        deadline = now_ms + jitter(cfg->write_timeout_ms);
    if (has_exp) {
        /* Milliseconds, not seconds: a truncated clock would let the stream outlive the
         * token by up to a second. */
        const int64_t ten_years_ms = 10LL * 366 * 24 * 3600 * 1000;
        int64_t now_wall = qs_wall_ms();
        int64_t left =
            exp > (now_wall + ten_years_ms) / 1000 ? ten_years_ms : exp * 1000 - now_wall;
        uint64_t left_ms = left > 0 ? (uint64_t)left : 0;
        if (!deadline || now_ms + left_ms < deadline)
            deadline = now_ms + jitter(left_ms);
    }
    if (deadline) {
        deadline = deadline > cfg->dispatch_timeout_ms + now_ms
                       ? deadline - cfg->dispatch_timeout_ms
                   : v1 ? deadline
                        : now_ms;
        if (deadline == 0)
            deadline = 1;
    }
    return deadline;
}

/* The response head of the stream, as the reference sends it; the cursor, when one was
 * asked for, in the header of the request's generation. */
static void stream_head(qs_http_req *req, const char *cursor_header, const char *last_event_id,
                        qs_http_response *r)
{
    qs_http_response_init(r, 200);
    r->content_type = "text/event-stream";
    qs_buf_append_str(&r->headers, "Cache-Control: private, no-cache, no-store, "
                                   "must-revalidate, max-age=0\r\n"
                                   "Expire: 0\r\n"
                                   "Pragma: no-cache\r\n"
                                   "X-Accel-Buffering: no\r\n");
    if (last_event_id)
        qs_http_response_header(r, cursor_header, last_event_id);
    qs_endpoint_headers(req, &r->headers);
}

/* ------------------------------------------------------------ who subscribes */

/* A subscriber's claims, whichever generation its token is. */
typedef struct who {
    bool has_claims;
    qs_jwt_claims claims0;           /* a 0.x token's (owned) */
    const qs_token1_claims *claims1; /* an access token's (the worker cache's) */
} who;

static void who_clear(who *w)
{
    qs_jwt_claims_free(&w->claims0);
    memset(w, 0, sizeof(*w));
}

/* The selectors the token lets the subscriber receive privately. */
static qs_selector_spec *private_selectors(const who *w, size_t *n)
{
    *n = 0;
    if (!w->has_claims)
        return NULL;
    if (!w->claims1) {
        if (!w->claims0.has_subscribe)
            return NULL;
        qs_selector_spec *v = qs_xcalloc(w->claims0.n_subscribe + 1, sizeof(*v));
        for (size_t i = 0; i < w->claims0.n_subscribe; i++)
            v[(*n)++] = (qs_selector_spec){QS_SYNTAX_TOPIC, w->claims0.subscribe[i],
                                           strlen(w->claims0.subscribe[i])};
        return v;
    }
    size_t total = 0;
    for (size_t i = 0; i < w->claims1->n_details; i++)
        if (w->claims1->details[i].subscribe)
            total += w->claims1->details[i].n_topics;
    if (!total)
        return NULL;
    qs_selector_spec *v = qs_xcalloc(total, sizeof(*v));
    for (size_t i = 0; i < w->claims1->n_details; i++) {
        const qs_token1_detail *d = &w->claims1->details[i];
        if (!d->subscribe)
            continue;
        for (size_t k = 0; k < d->n_topics; k++)
            v[(*n)++] = (qs_selector_spec){
                d->topics[k].type == QS_MATCHER_URLPATTERN ? QS_SYNTAX_URLPATTERN : QS_SYNTAX_EXACT,
                d->topics[k].match, d->topics[k].len};
    }
    return v;
}

/* Each selector's payload, for an access token whose grants carry payloads: the payload of
 * the first subscribe grant that matches the selector's own text (the reference's rule).
 * NULL when there is none to tell apart (the token-wide payload serves). */
static json_t **selector_payloads(const who *w, const qs_selector_spec *sel, size_t n)
{
    if (!w->has_claims || !w->claims1)
        return NULL;
    bool any = false;
    for (size_t i = 0; i < w->claims1->n_details; i++)
        any |= w->claims1->details[i].payload != NULL;
    if (!any)
        return NULL;
    json_t **v = qs_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        bool found;
        v[i] = qs_token1_subscribe_payload(w->claims1, sel[i].s, sel[i].len, &found);
    }
    return v;
}

/* Registers the subscriber and opens its stream (after the history it asked for). */
static void start(qs_http_req *req, const who *w, const qs_selector_spec *sel, size_t n, bool v1,
                  bool cursor_asked, const char *cursor, size_t cursor_len)
{
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    const qs_config *cfg = hub->cfg;
    const char *cursor_header = v1 ? "Mercure-Last-Event-Id" : "Last-Event-Id";
    /* Without history nothing can be replayed: the cursor is "earliest"; an empty one (1.0
     * answers whenever one was sent) is found nowhere. */
    bool replay = cursor_asked && cursor_len && hub->transport->ops->has_history;
    qs_http_response head;
    if (req->head) {
        /* HEAD gets the stream's headers and no stream. */
        stream_head(req, cursor_header, cursor_asked ? "earliest" : NULL, &head);
        qs_http_respond(req, &head);
        return;
    }
    size_t n_private = 0;
    qs_selector_spec *private = private_selectors(w, &n_private);
    json_t **payloads = selector_payloads(w, sel, n);
    bool has_exp = w->claims1 ? true : w->has_claims && w->claims0.has_exp;
    int64_t exp = w->claims1 ? w->claims1->exp : w->claims0.exp;
    qs_subscriber_params p = {
        .selectors = sel,
        .n = n,
        .claims = private,
        .n_claims = n_private,
        .payload = w->has_claims && !w->claims1 ? w->claims0.payload : NULL,
        .payloads = payloads,
        .v1 = v1,
        .deadline_ms = stream_deadline(cfg, w->has_claims && has_exp, exp, v1),
    };
    qs_subscriber *s = qs_subscriber_new(ctx, req, &p);
    free(private);
    free(payloads); /* borrowed references: the subscriber took its own */
    if (!s)
        return; /* the client is already gone */
    /* Registered first, then the history up to this worker's bus position: live updates
     * queue behind the replay, so nothing is missed and nothing is doubled. */
    stream_head(req, cursor_header, replay || !cursor_asked ? NULL : "earliest", &head);
    if (replay) {
        char *id = qs_xstrndup(cursor, cursor_len);
        qs_debug("new subscriber %s from %s (%zu selectors), replaying after %s", s->id, req->peer,
                 n, id);
        qs_subscriber_replay(s, id, cursor_header, &head);
        free(id);
        return;
    }
    qs_debug("new subscriber %s from %s (%zu selectors)", s->id, req->peer, n);
    qs_subscriber_start(s, &head);
}

/* ----------------------------------------------------------------- 0.x */

static void subscribe_0x(qs_http_req *req)
{
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    const qs_config *cfg = hub->cfg;
    const qs_form *query = qs_http_query(req);

    who w = {0};
    if (!cfg->protocol_1 && hub->subscriber_keys) {
        const char *reason = NULL;
        enum qs_auth_status st = qs_endpoint_authorize(req, false, &w.claims0, &reason);
        if (st == QS_AUTH_INVALID || (st == QS_AUTH_ANONYMOUS && !cfg->anonymous)) {
            qs_debug("subscriber unauthorized from %s: %s", req->peer,
                     st == QS_AUTH_INVALID ? reason : "no token");
            who_clear(&w);
            qs_endpoint_error(req, 401, "Unauthorized");
            return;
        }
        w.has_claims = st == QS_AUTH_OK;
    } else if (cfg->protocol_1 && hub->subscribers_verified) {
        /* Both generations: the token's shape decides how it is read; errors as 0.x. */
        qs_access a;
        qs_endpoint_access(req, false, QS_RULES_0X, &a);
        if (a.status == QS_ACCESS_INVALID || a.status == QS_ACCESS_BAD_REQUEST ||
            (a.status == QS_ACCESS_ANONYMOUS && !cfg->anonymous)) {
            qs_debug("subscriber unauthorized from %s: %s", req->peer,
                     a.status == QS_ACCESS_ANONYMOUS ? "no token" : a.reason);
            qs_access_clear(&a);
            qs_endpoint_error(req, 401, "Unauthorized");
            return;
        }
        w.has_claims = a.status == QS_ACCESS_OK;
        w.claims1 = a.v1_token ? a.claims1 : NULL;
        w.claims0 = a.claims0; /* moved */
        memset(&a.claims0, 0, sizeof(a.claims0));
    }

    size_t n_topics = qs_form_count(query, "topic");
    if (!n_topics || (long)n_topics > cfg->max_topics) {
        who_clear(&w);
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
            who_clear(&w);
            qs_endpoint_error(req, 400, why);
            return;
        }
    }

    qs_slice requested = {NULL, 0};
    bool asked = requested_last_event_id(cfg, req, query, &requested);

    qs_selector_spec *selectors = qs_xmalloc(n_topics * sizeof(*selectors));
    size_t n = 0;
    for (size_t i = 0; i < query->n; i++) {
        const qs_form_pair *p = &query->pairs[i];
        if (p->key_len == 5 && memcmp(p->key, "topic", 5) == 0)
            selectors[n++] = (qs_selector_spec){QS_SYNTAX_TOPIC, p->value, p->value_len};
    }
    start(req, &w, selectors, n, false, asked, requested.p, requested.n);
    free(selectors);
    who_clear(&w);
}

/* ----------------------------------------------------------------- 1.0 */

/* True when a parameter's name is in the reserved "match" namespace (any case). */
static bool match_namespace(const char *key, size_t len)
{
    return len >= 5 && strncasecmp(key, "match", 5) == 0;
}

/* The request's parameters, as the reference reads them: the query, with a QUERY request's
 * form body appended (its pairs after the query's of the same name). */
static int subscribe_values(qs_http_req *req, qs_form *values)
{
    const qs_form *query = qs_http_query(req);
    *values = QS_FORM_INIT;
    for (size_t i = 0; i < query->n; i++) {
        const qs_form_pair *p = &query->pairs[i];
        if (values->n == values->cap) {
            values->cap = values->cap ? values->cap * 2 : 16;
            values->pairs = qs_xrealloc(values->pairs, values->cap * sizeof(*values->pairs));
        }
        values->pairs[values->n++] =
            (qs_form_pair){qs_xstrndup(p->key, p->key_len), p->key_len,
                           qs_xstrndup(p->value, p->value_len), p->value_len};
    }
    if (!qs_slice_eq(req->method, "QUERY"))
        return 0;
    const char *err = NULL;
    size_t max = (size_t)req->ctx->hub->cfg->max_topics * 2 + 64;
    return qs_form_parse(values, req->body.p, req->body.n, max, &err) == QS_FORM_OK ? 0 : -1;
}

/* The cursor a 1.0 subscriber asks for: the Last-Event-ID header, then `last_event_id`,
 * then (protocol 7) the `Last-Event-ID` parameter; asked when the header or `last_event_id`
 * was present at all, even empty. */
static bool requested_cursor(const qs_config *cfg, const qs_http_req *req, const qs_form *values,
                             qs_slice *out)
{
    *out = (qs_slice){NULL, 0};
    const qs_header *hdr = qs_http_find(req, "Last-Event-ID");
    if (hdr && hdr->value.n) {
        *out = hdr->value;
        return true;
    }
    const qs_form_pair *q = qs_form_get(values, "last_event_id");
    if (q && q->value_len) {
        *out = (qs_slice){q->value, q->value_len};
        return true;
    }
    const qs_form_pair *legacy = qs_form_get(values, "Last-Event-ID");
    if (legacy && cfg->protocol_version_compatibility == 7) {
        *out = (qs_slice){legacy->value, legacy->value_len};
        return true;
    }
    return hdr != NULL || q != NULL;
}

static int by_key(const void *a, const void *b)
{
    const qs_form_pair *x = *(const qs_form_pair *const *)a, *y = *(const qs_form_pair *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    if (x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    return x < y ? -1 : x > y; /* the same name: in request order */
}

/* Reads the matchers, in sorted parameter-name order (subscription ids depend on it), as the
 * reference does; NULL with the 400 message in *error. */
static qs_selector_spec *parse_matchers(qs_http_req *req, const qs_form *values, size_t *n,
                                        qs_buf *error)
{
    const qs_hub *hub = req->ctx->hub;
    const qs_config *cfg = hub->cfg;
    const qs_form_pair **sorted = qs_xcalloc(values->n + 1, sizeof(*sorted));
    for (size_t i = 0; i < values->n; i++)
        sorted[i] = &values->pairs[i];
    qsort(sorted, values->n, sizeof(*sorted), by_key);
    qs_selector_spec *v = qs_xcalloc(QS_URLPATTERN_MAX_MATCHERS + 1, sizeof(*v));
    *n = 0;
    const qs_selector_limits lim = {cfg->max_selector_length, (size_t)cfg->max_selector_expressions,
                                    (size_t)cfg->max_selector_states,
                                    (size_t)cfg->max_subscriber_states};
    size_t states = 0;
    char why[QS_SELECTOR_REASON_SIZE];
    for (size_t i = 0; i < values->n; i++) {
        const qs_form_pair *p = sorted[i];
        enum qs_selector_syntax syntax;
        if (p->key_len == 5 && memcmp(p->key, "topic", 5) == 0) {
            if (!cfg->protocol_0x) {
                qs_buf_append_str(error, "unknown topic matcher query parameter: \"topic\" (use "
                                         "\"match\" or \"match_urlpattern\")");
                goto fail;
            }
            syntax = QS_SYNTAX_TOPIC; /* a 0.x selector, as the reference's compatibility */
        } else if (p->key_len == 5 && memcmp(p->key, "match", 5) == 0) {
            syntax = QS_SYNTAX_EXACT;
        } else if (p->key_len == 11 && memcmp(p->key, "match_exact", 11) == 0) {
            syntax = QS_SYNTAX_EXACT;
        } else if (p->key_len == 16 && memcmp(p->key, "match_urlpattern", 16) == 0) {
            syntax = QS_SYNTAX_URLPATTERN;
        } else if (match_namespace(p->key, p->key_len)) {
            qs_buf_append_str(error, "unknown topic matcher query parameter: ");
            qs_go_quote(error, p->key, p->key_len);
            goto fail;
        } else {
            continue;
        }
        if (*n >= QS_URLPATTERN_MAX_MATCHERS) {
            qs_buf_append_str(error, "too many matchers (max 100)");
            goto fail;
        }
        if (p->value_len > QS_URLPATTERN_MAX_LENGTH) {
            qs_buf_append_str(error, "pattern too long (max 4096 bytes)");
            goto fail;
        }
        if (!qs_protocol_string_valid(p->value, p->value_len)) {
            qs_buf_append_str(error, "topic matcher values must be valid UTF-8 without control "
                                     "characters");
            goto fail;
        }
        bool star = p->value_len == 1 && p->value[0] == '*';
        if (syntax == QS_SYNTAX_URLPATTERN && !star) {
            size_t used = 0;
            const char *err = NULL;
            qs_urlpattern *pat =
                qs_urlpattern_compile(p->value, p->value_len, &hub->base,
                                      (size_t)QS_MAX(cfg->max_selector_states, 0), &used, &err);
            qs_urlpattern_free(pat);
            if (!pat && lim.max_states && used > lim.max_states) {
                qs_buf_appendf(error,
                               "Topic matcher pattern too complex: more than %zu automaton "
                               "states (max_selector_states %zu).",
                               lim.max_states, lim.max_states);
                goto fail;
            }
            if (!pat) {
                qs_debug("invalid topic matcher pattern from %s: %s", req->peer, err);
                qs_buf_append_str(error, "invalid topic matcher pattern");
                goto fail;
            }
            size_t cost = (used + 63) / 64 * 64;
            if (lim.max_subscriber_states && states + cost > lim.max_subscriber_states) {
                qs_buf_appendf(error,
                               "Topic matchers too complex together: %zu automaton states "
                               "(max_subscriber_states %zu).",
                               states + cost, lim.max_subscriber_states);
                goto fail;
            }
            states += cost;
        } else if (syntax == QS_SYNTAX_TOPIC &&
                   qs_selector_check(&lim, p->value, p->value_len, &states, why)) {
            qs_buf_append_str(error, why);
            goto fail;
        }
        v[(*n)++] = (qs_selector_spec){syntax, p->value, p->value_len};
    }
    free(sorted);
    if (*n == 0) {
        qs_buf_append_str(error, "missing \"match\" subscription parameter");
        free(v);
        return NULL;
    }
    return v;
fail:
    free(sorted);
    free(v);
    return NULL;
}

static void subscribe_1(qs_http_req *req, qs_form *values)
{
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    const qs_config *cfg = hub->cfg;

    qs_slice cursor;
    bool asked = requested_cursor(cfg, req, values, &cursor);

    who w = {0};
    if (hub->subscribers_verified) {
        qs_access a;
        qs_endpoint_access(req, false, QS_RULES_1, &a);
        if (a.status != QS_ACCESS_OK && (a.status != QS_ACCESS_ANONYMOUS || !cfg->anonymous)) {
            qs_debug("subscriber unauthorized from %s: %s", req->peer,
                     a.status == QS_ACCESS_ANONYMOUS ? "no token" : a.reason);
            enum qs_bearer_error e = a.status == QS_ACCESS_ANONYMOUS     ? QS_BEARER_CHALLENGE
                                     : a.status == QS_ACCESS_BAD_REQUEST ? QS_BEARER_INVALID_REQUEST
                                                                         : QS_BEARER_INVALID_TOKEN;
            qs_access_clear(&a);
            qs_endpoint_bearer_error(req, e);
            return;
        }
        w.has_claims = a.status == QS_ACCESS_OK;
        w.claims1 = a.v1_token ? a.claims1 : NULL;
        w.claims0 = a.claims0; /* moved */
        memset(&a.claims0, 0, sizeof(a.claims0));
    }

    size_t n = 0;
    qs_buf error = QS_BUF_INIT;
    qs_selector_spec *matchers = parse_matchers(req, values, &n, &error);
    if (!matchers) {
        who_clear(&w);
        qs_endpoint_error(req, 400, qs_buf_cstr(&error));
        qs_buf_free(&error);
        return;
    }
    start(req, &w, matchers, n, true, asked, cursor.p, cursor.n);
    free(matchers);
    who_clear(&w);
}

void qs_subscribe_handle(qs_http_req *req)
{
    const qs_config *cfg = req->ctx->hub->cfg;
    if (!cfg->protocol_1) {
        subscribe_0x(req);
        return;
    }
    qs_form values;
    if (subscribe_values(req, &values) < 0) {
        qs_form_free(&values);
        qs_endpoint_error(req, 400, "Bad Request");
        return;
    }
    bool v1 = !cfg->protocol_0x;
    for (size_t i = 0; i < values.n && !v1; i++)
        v1 = match_namespace(values.pairs[i].key, values.pairs[i].key_len);
    if (v1)
        subscribe_1(req, &values);
    else
        subscribe_0x(req);
    qs_form_free(&values);
}
