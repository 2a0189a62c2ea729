/* SPDX-License-Identifier: MIT
 * publish.c - POST /.well-known/mercure: authorize, validate, hand to the transport,
 * answer with the id once the transport reports the update durable.
 */
#include "publish.h"

#include <errno.h>
#include <stdlib.h>

#include "async.h"
#include "ctx.h"
#include "endpoint.h"
#include "log.h"
#include "metrics.h"

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

void qs_publish_handle(qs_http_req *req)
{
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    const qs_config *cfg = hub->cfg;

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

    /* Go's ParseForm fails on a malformed query string as well as on a malformed body. */
    if (req->query_status == QS_FORM_E_INVALID) {
        qs_jwt_claims_free(&claims);
        publish_fail(req, 400, QS_PUBERR_BAD_REQUEST, "Bad Request");
        return;
    }
    qs_form form = QS_FORM_INIT;
    const char *form_err = NULL;
    enum qs_form_status fst = QS_FORM_OK;
    if (is_form_content_type(req))
        fst = qs_form_parse(&form, req->body.p, req->body.n, (size_t)cfg->max_topics * 2 + 64,
                            &form_err);
    if (fst != QS_FORM_OK) {
        qs_form_free(&form);
        qs_jwt_claims_free(&claims);
        publish_fail(req, 400, QS_PUBERR_BAD_REQUEST,
                     fst == QS_FORM_E_TOO_MANY ? "Too many form fields" : "Bad Request");
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

    qs_update *u = qs_update_new();
    for (size_t i = 0; i < form.n; i++) {
        qs_form_pair *p = &form.pairs[i];
        if (p->key_len == 5 && memcmp(p->key, "topic", 5) == 0)
            qs_update_add_topic(u, p->value, p->value_len);
    }
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
    qs_form_free(&form);
    qs_jwt_claims_free(&claims);
    if (error) {
        qs_update_unref(u);
        publish_fail(req, status, why, error);
        return;
    }

    qs_update_finalize(u);
    pending_publish *p = qs_xcalloc(1, sizeof(*p));
    p->req = req;
    p->u = u;
    qs_endpoint_headers(req, &p->headers);
    qs_http_hold(req);
    qs_async_begin(&p->async, ctx, publish_finish);
    hub->transport->ops->publish(hub->transport, u, on_published, p);
    qs_async_started(&p->async);
}
