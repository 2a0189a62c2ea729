/* SPDX-License-Identifier: MIT
 * publish.c - POST /.well-known/mercure: authorize, validate, hand to the transport,
 * answer with the id once the transport reports the update durable.
 *
 * The publisher's token decides the generation of the answer when the hub serves 1.0: an
 * access token is checked with 1.0's rules (grants for every topic, 403 insufficient_scope,
 * the protocol's string rules, reserved namespace and values, 400 bodies as the reference
 * writes them); a 0.x token with 0.x's. An update published either way reaches subscribers
 * of both generations.
 */
#include "publish.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#include "async.h"
#include "ctx.h"
#include "endpoint.h"
#include "log.h"
#include "metrics.h"
#include "pstring.h"

/* A publish awaiting the transport. */
typedef struct pending_publish {
    qs_async async;
    qs_http_req *req; /* held until the answer */
    qs_update *u;
    qs_buf headers; /* hub headers computed while the request was still readable */
    int status;
    char reason[QS_REASON_MAX]; /* copied: the transport's is valid during its callback */
} pending_publish;

static void publish_fail(qs_http_req *req, int status, enum qs_publish_error why,
                         const char *message)
{
    qs_metric_add(&qs_metrics_global.publish_errors[why], 1);
    qs_endpoint_error(req, status, message);
}

/* Sends the outcome of a publish (on the worker thread). */
static void publish_finish(qs_async *a)
{
    pending_publish *p = qs_container_of(a, pending_publish, async);
    qs_http_response r;
    if (p->status == 0) {
        qs_metric_add(&qs_metrics_global.updates_total, 1);
        qs_http_response_init(&r, 200);
        r.content_type = "text/plain; charset=utf-8";
        qs_buf_append(&r.headers, p->headers.p, p->headers.len);
        qs_buf_append_str(&r.body, p->u->id);
    } else {
        qs_metric_add(&qs_metrics_global.publish_errors[QS_PUBERR_TRANSPORT], 1);
        /* The transport logs when its backend goes away and comes back: each publish refused
         * meanwhile is not news. A refusal while it is healthy is. */
        qs_transport *t = p->req->ctx->hub->transport;
        char why[QS_REASON_MAX];
        if (p->status == -EAGAIN && !t->ops->healthy(t, why))
            qs_debug("publish refused: %s", p->reason[0] ? p->reason : why);
        else
            qs_warn("publish failed: %s", p->reason[0] ? p->reason : "transport error");
        qs_http_response_init(&r, p->status == -EAGAIN ? 503 : 500);
        r.content_type = "text/plain; charset=utf-8";
        qs_buf_append(&r.headers, p->headers.p, p->headers.len);
        qs_buf_appendf(&r.body, "%s\n", p->reason[0] ? p->reason : "500 internal server error");
    }
    qs_http_respond(p->req, &r);
    qs_update_unref(p->u);
    qs_buf_free(&p->headers);
    free(p);
}

static void on_published(void *arg, int status, const char *reason)
{
    pending_publish *p = arg;
    p->status = status;
    if (status)
        snprintf(p->reason, sizeof(p->reason), "%s", reason ? reason : "");
    qs_async_complete(&p->async);
}

/* Go's strconv.ParseUint(s, 10, 64). */
static bool parse_uint64(const char *s, size_t len, uint64_t *out)
{
    if (!len)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool has_forbidden_char(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return true;
    return false;
}

/* The body is form data only with that media type (parameters such as charset allowed). */
static bool is_form_content_type(const qs_http_req *req)
{
    const qs_header *ct = qs_http_find(req, "Content-Type");
    if (!ct)
        return false;
    static const char type[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(type) - 1;
    if (ct->value.n < n)
        return false;
    qs_slice head = {ct->value.p, n};
    if (!qs_slice_ieq(head, type))
        return false;
    for (size_t i = n; i < ct->value.n; i++) {
        char c = ct->value.p[i];
        if (c == ';')
            return true;
        if (c != ' ' && c != '\t')
            return false;
    }
    return true;
}

/* Hands a validated update to the transport; the answer follows from the worker. */
static void publish_update(qs_http_req *req, qs_update *u)
{
    qs_ctx *ctx = req->ctx;
    qs_transport *t = ctx->hub->transport;
    qs_update_finalize(u);
    pending_publish *p = qs_xcalloc(1, sizeof(*p));
    p->req = req;
    p->u = u;
    qs_endpoint_headers(req, &p->headers);
    qs_http_hold(req);
    qs_async_begin(&p->async, ctx, publish_finish);
    t->ops->publish(t, u, on_published, p);
    qs_async_started(&p->async);
}

/* The form, as Go's ParseForm reads it (400 when it cannot be read); false when answered. */
static bool read_form(qs_http_req *req, qs_form *form)
{
    const qs_config *cfg = req->ctx->hub->cfg;
    *form = QS_FORM_INIT;
    /* Go's ParseForm fails on a malformed query string as well as on a malformed body. */
    if (req->query_status == QS_FORM_E_INVALID) {
        publish_fail(req, 400, QS_PUBERR_BAD_REQUEST, "Bad Request");
        return false;
    }
    const char *form_err = NULL;
    enum qs_form_status fst = QS_FORM_OK;
    if (is_form_content_type(req))
        fst = qs_form_parse(form, req->body.p, req->body.n, (size_t)cfg->max_topics * 2 + 64,
                            &form_err);
    if (fst != QS_FORM_OK) {
        qs_form_free(form);
        publish_fail(req, 400, QS_PUBERR_BAD_REQUEST,
                     fst == QS_FORM_E_TOO_MANY ? "Too many form fields" : "Bad Request");
        return false;
    }
    return true;
}

/* A 0.x publisher, its token verified (claims taken). */
/* A new update holding the form's topics, in their order (both generations' publishers). */
static qs_update *update_with_topics(const qs_form *form)
{
    qs_update *u = qs_update_new();
    for (size_t i = 0; i < form->n; i++) {
        const qs_form_pair *p = &form->pairs[i];
        if (p->key_len == 5 && memcmp(p->key, "topic", 5) == 0)
            qs_update_add_topic(u, p->value, p->value_len);
    }
    return u;
}

static void publish_0x(qs_http_req *req, qs_jwt_claims *claims_in)
{
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    const qs_config *cfg = hub->cfg;
    qs_jwt_claims claims = *claims_in;
    memset(claims_in, 0, sizeof(*claims_in));

    qs_form form;
    if (!read_form(req, &form)) {
        qs_jwt_claims_free(&claims);
        return;
    }

    size_t n_topics = qs_form_count(&form, "topic");
    const char *error = NULL;
    int status = 400;
    uint64_t retry = 0;
    const qs_form_pair *retry_pair = qs_form_get(&form, "retry");
    if (!n_topics)
        error = "Missing \"topic\" parameter";
    else if ((long)n_topics > cfg->max_topics)
        error = "Too many \"topic\" parameters";
    else if (retry_pair && retry_pair->value_len &&
             !parse_uint64(retry_pair->value, retry_pair->value_len, &retry))
        error = "Invalid \"retry\" parameter";
    if (error) {
        qs_form_free(&form);
        qs_jwt_claims_free(&claims);
        publish_fail(req, status, QS_PUBERR_BAD_REQUEST, error);
        return;
    }

    qs_update *u = update_with_topics(&form);
    u->is_private = qs_form_has(&form, "private");
    u->retry = retry;
    const qs_form_pair *data = qs_form_get(&form, "data");
    const qs_form_pair *id = qs_form_get(&form, "id");
    const qs_form_pair *type = qs_form_get(&form, "type");
    if (data)
        qs_update_set_data(u, data->value, data->value_len);
    if (id && id->value_len)
        qs_update_set_id(u, id->value, id->value_len);
    if (type && type->value_len)
        qs_update_set_type(u, type->value, type->value_len);

    enum qs_publish_error why = QS_PUBERR_BAD_REQUEST;
    if (!qs_can_publish(ctx->selectors, claims.publish, claims.n_publish, u)) {
        if (u->is_private || cfg->protocol_version_compatibility != 7) {
            error = "Unauthorized";
            status = 401;
            why = QS_PUBERR_UNAUTHORIZED;
        } else {
            qs_info("deprecated: publishing a public update to topics not listed in the "
                    "\"mercure.publish\" claim (protocol_version_compatibility 7)");
        }
    }
    for (size_t i = 0; !error && i < u->n_topics; i++)
        if (memmem(u->topics[i], u->topic_lens[i], "/.well-known/mercure", 20)) {
            error = "Publishing to \"/.well-known/mercure\" topics is forbidden";
            status = 403;
            why = QS_PUBERR_FORBIDDEN;
        }
    if (!error && id && has_forbidden_char(id->value, id->value_len))
        error = "Invalid \"id\" parameter: it must not contain NUL, CR or LF";
    if (!error && type && has_forbidden_char(type->value, type->value_len))
        error = "Invalid \"type\" parameter: it must not contain NUL, CR or LF";
    /* Beside 1.0, its subscribers listen for the hub's events under this type. */
    if (!error && cfg->protocol_1 && type && type->value_len == 7 &&
        memcmp(type->value, "mercure", 7) == 0)
        error = "\"type\" field uses the reserved value \"mercure\"";
    qs_form_free(&form);
    qs_jwt_claims_free(&claims);
    if (error) {
        qs_update_unref(u);
        publish_fail(req, status, why, error);
        return;
    }
    publish_update(req, u);
}

/* ----------------------------------------------------------------- 1.0 */

/* The decoding of %XX triplets of unreserved characters the reference applies to a path
 * before comparing it with the hub's (RFC 3986 §6.2.2.2). */
static void decode_unreserved(const char *s, size_t n, qs_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char c = (char)strtol(hex, NULL, 16);
            if (isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || c == '~') {
                qs_buf_append_char(out, c);
                i += 2;
                continue;
            }
        }
        qs_buf_append_char(out, s[i]);
    }
}

/* True when the topic, resolved against the hub's URL as a WHATWG URL, has the path
 * /.well-known/mercure or one under it, whatever its scheme and host: the namespace of the
 * events the hub writes itself. */
static bool reserved_topic(const char *topic, size_t len)
{
    static const char base_text[] = "https://mercure.invalid/.well-known/mercure";
    qs_weburl base, u;
    if (qs_weburl_parse(base_text, sizeof(base_text) - 1, NULL, &base) < 0)
        return false;
    bool reserved = false;
    if (qs_weburl_parse(topic, len, &base, &u) == 0) {
        qs_slice path = qs_weburl_get(&u, QS_WEBURL_PATHNAME);
        qs_buf d = QS_BUF_INIT;
        decode_unreserved(path.p, path.n, &d);
        const char *p = qs_buf_cstr(&d);
        reserved =
            strcmp(p, "/.well-known/mercure") == 0 || strncmp(p, "/.well-known/mercure/", 21) == 0;
        qs_buf_free(&d);
        qs_weburl_free(&u);
    }
    qs_weburl_free(&base);
    return reserved;
}

static bool utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = qs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

/* An error naming a topic as Go's %q: "<topic>": <what>. */
static void topic_error(qs_http_req *req, const char *topic, size_t len, const char *what)
{
    qs_buf b = QS_BUF_INIT;
    qs_go_quote(&b, topic, len);
    qs_buf_append_str(&b, ": ");
    qs_buf_append_str(&b, what);
    publish_fail(req, 400, QS_PUBERR_BAD_REQUEST, qs_buf_cstr(&b));
    qs_buf_free(&b);
}

/* A 1.0 publisher, its access token verified. */
static void publish_1(qs_http_req *req, const qs_token1_claims *claims)
{
    const qs_config *cfg = req->ctx->hub->cfg;
    qs_form form;
    if (!read_form(req, &form))
        return;
    size_t n_topics = qs_form_count(&form, "topic");
    const char *error = NULL;
    if (!n_topics)
        error = "Missing \"topic\" parameter";
    else if ((long)n_topics > cfg->max_topics)
        error = "too many topics in update";
    if (error) {
        qs_form_free(&form);
        publish_fail(req, 400, QS_PUBERR_BAD_REQUEST, error);
        return;
    }
    qs_update *u = update_with_topics(&form);
    /* Before the grants are matched: a topic the protocol refuses never reaches the cache. */
    for (size_t i = 0; i < u->n_topics; i++) {
        if (!qs_protocol_string_valid(u->topics[i], u->topic_lens[i])) {
            topic_error(req, u->topics[i], u->topic_lens[i],
                        "topic contains a forbidden control character or invalid UTF-8");
            goto out;
        }
    }
    const qs_form_pair *retry = qs_form_get(&form, "retry");
    if (retry && retry->value_len && !parse_uint64(retry->value, retry->value_len, &u->retry)) {
        publish_fail(req, 400, QS_PUBERR_BAD_REQUEST, "Invalid \"retry\" parameter");
        goto out;
    }
    u->is_private = qs_form_has(&form, "private");
    bool granted = true;
    for (size_t i = 0; i < u->n_topics && granted; i++)
        granted = qs_token1_grants(claims, true, u->topics[i], u->topic_lens[i]);
    if (!granted) {
        if (u->is_private || cfg->protocol_version_compatibility != 7) {
            qs_metric_add(&qs_metrics_global.publish_errors[QS_PUBERR_FORBIDDEN], 1);
            qs_endpoint_bearer_error(req, QS_BEARER_INSUFFICIENT_SCOPE);
            goto out;
        }
        qs_info("deprecated: publishing a public update to topics not granted to the token "
                "(protocol_version_compatibility 7)");
    }
    for (size_t i = 0; i < u->n_topics; i++) {
        if (reserved_topic(u->topics[i], u->topic_lens[i])) {
            topic_error(req, u->topics[i], u->topic_lens[i],
                        "topic value resolves into the reserved \"/.well-known/mercure\" "
                        "namespace");
            goto out;
        }
        if (u->topic_lens[i] == 1 && u->topics[i][0] == '*') {
            topic_error(req, "*", 1,
                        "topic value \"*\" is reserved for the wildcard matcher and cannot be "
                        "published");
            goto out;
        }
    }
    const qs_form_pair *data = qs_form_get(&form, "data");
    const qs_form_pair *id = qs_form_get(&form, "id");
    const qs_form_pair *type = qs_form_get(&form, "type");
    if (id && (!qs_protocol_string_valid(id->value, id->value_len) ||
               (id->value_len && id->value[0] == '#') ||
               (id->value_len == 8 && memcmp(id->value, "earliest", 8) == 0)))
        error = "\"id\" field contains a forbidden control character or invalid UTF-8, starts "
                "with \"#\", or is the reserved value \"earliest\"";
    else if (type && !qs_protocol_string_valid(type->value, type->value_len))
        error = "\"type\" field contains a forbidden control character or invalid UTF-8";
    else if (type && type->value_len == 7 && memcmp(type->value, "mercure", 7) == 0)
        error = "\"type\" field uses the reserved value \"mercure\"";
    else if (data && !utf8_valid(data->value, data->value_len))
        error = "\"data\" field is not valid UTF-8";
    if (error) {
        publish_fail(req, 400, QS_PUBERR_BAD_REQUEST, error);
        goto out;
    }
    if (data)
        qs_update_set_data(u, data->value, data->value_len);
    if (id && id->value_len)
        qs_update_set_id(u, id->value, id->value_len);
    if (type && type->value_len)
        qs_update_set_type(u, type->value, type->value_len);
    qs_form_free(&form);
    publish_update(req, u);
    return;
out:
    qs_form_free(&form);
    qs_update_unref(u);
}

void qs_publish_handle(qs_http_req *req)
{
    const qs_hub *hub = req->ctx->hub;
    const qs_config *cfg = hub->cfg;
    if (!cfg->protocol_1) {
        qs_jwt_claims claims;
        const char *reason = NULL;
        enum qs_auth_status st = qs_endpoint_authorize(req, true, &claims, &reason);
        if (st != QS_AUTH_OK || !claims.has_publish) {
            qs_debug("publish unauthorized from %s: %s", req->peer,
                     st == QS_AUTH_INVALID     ? reason
                     : st == QS_AUTH_ANONYMOUS ? "no token"
                                               : "no mercure.publish claim");
            qs_jwt_claims_free(&claims);
            publish_fail(req, 401, QS_PUBERR_UNAUTHORIZED, "Unauthorized");
            return;
        }
        publish_0x(req, &claims);
        return;
    }
    qs_access a;
    qs_endpoint_access(req, true, QS_RULES_TOKEN, &a);
    bool v1 = a.v1_token || !cfg->protocol_0x;
    if (a.status != QS_ACCESS_OK || (!v1 && !a.claims0.has_publish)) {
        qs_debug("publish unauthorized from %s: %s", req->peer,
                 a.status == QS_ACCESS_ANONYMOUS ? "no token"
                 : a.status == QS_ACCESS_OK      ? "no mercure.publish claim"
                                                 : a.reason);
        enum qs_access_status st = a.status;
        qs_access_clear(&a);
        qs_metric_add(&qs_metrics_global.publish_errors[QS_PUBERR_UNAUTHORIZED], 1);
        /* Without a token, the challenge tells 1.0 clients where the metadata is; a 0.x
         * client reads the same 401. */
        if (st == QS_ACCESS_ANONYMOUS)
            qs_endpoint_bearer_error(req, QS_BEARER_CHALLENGE);
        else if (!v1)
            qs_endpoint_error(req, 401, "Unauthorized");
        else
            qs_endpoint_bearer_error(req, st == QS_ACCESS_BAD_REQUEST ? QS_BEARER_INVALID_REQUEST
                                                                      : QS_BEARER_INVALID_TOKEN);
        return;
    }
    if (v1)
        publish_1(req, a.claims1);
    else
        publish_0x(req, &a.claims0);
    qs_access_clear(&a);
}
