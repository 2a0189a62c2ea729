/* SPDX-License-Identifier: MIT
 * endpoint.c - the hub's headers, errors and authorization for every endpoint.
 */
#include "endpoint.h"

#include "cors.h"
#include "ctx.h"

/* What the reference's security middleware adds to every hub response. */
#define SECURITY_HEADERS                                                                           \
    "Content-Security-Policy: default-src 'self'\r\n"                                              \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "X-Xss-Protection: 1; mode=block\r\n"

void qs_endpoint_security_headers(qs_buf *out)
{
    qs_buf_append_str(out, SECURITY_HEADERS);
}

void qs_endpoint_headers(qs_http_req *req, qs_buf *out)
{
    qs_buf_append_str(out, SECURITY_HEADERS);
    qs_cors_headers(req->ctx->hub->cfg, req->method, req->headers, req->n_headers, out);
}

void qs_endpoint_error(qs_http_req *req, int status, const char *message)
{
    qs_buf extra = QS_BUF_INIT;
    qs_endpoint_headers(req, &extra);
    qs_http_error(req, status, message, qs_buf_cstr(&extra));
    qs_buf_free(&extra);
}

void qs_endpoint_method_not_allowed(qs_http_req *req, const char *allow)
{
    qs_buf extra = QS_BUF_INIT;
    qs_endpoint_headers(req, &extra);
    qs_buf_append_str(&extra, "Allow: ");
    qs_buf_append_str(&extra, allow);
    qs_buf_append_str(&extra, "\r\n");
    qs_http_error(req, 405, "Method Not Allowed", qs_buf_cstr(&extra));
    qs_buf_free(&extra);
}

enum qs_auth_status qs_endpoint_authorize(qs_http_req *req, bool publish, qs_jwt_claims *claims,
                                          const char **reason)
{
    const qs_hub *hub = req->ctx->hub;
    const qs_config *cfg = hub->cfg;
    qs_keys *keys = publish ? hub->publisher_keys : hub->subscriber_keys;
    const qs_jwt_key *key = NULL;
    const qs_jwks *jwks = NULL;
    if (keys)
        qs_keys_get(keys, req->ctx->index, &key, &jwks);
    bool unknown_kid = false;
    qs_auth_params p = {
        .key = key,
        .jwks = jwks,
        .cache = req->ctx->tokens,
        .cookie_name = cfg->cookie_name,
        .is_post = publish,
        .publish_origins = cfg->publish_origins,
        .n_publish_origins = cfg->n_publish_origins,
        .now = qs_wall_seconds(),
        .unknown_kid = &unknown_kid,
    };
    enum qs_auth_status st =
        qs_authorize(&p, req->headers, req->n_headers, qs_http_query(req), claims, reason);
    /* The token is refused now; its key may be in the set once fetched again (keys.h). */
    if (unknown_kid)
        qs_keys_unknown_kid(keys);
    return st;
}
