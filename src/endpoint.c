/* SPDX-License-Identifier: MIT
 * endpoint.c - the hub's headers, errors and authorization for every endpoint.
 */
#include "endpoint.h"

#include "cors.h"
#include "ctx.h"
#include "urlpattern.h"

#include <stdlib.h>
#include <strings.h>

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

/* ---- protocol 1.0 ---- */

void qs_endpoint_identity(qs_http_req *req, char **identifier, char **metadata_url)
{
    const qs_config *cfg = req->ctx->hub->cfg;
    qs_slice host = req->authority;
    if (!host.n) {
        const qs_header *h = qs_http_find(req, "Host");
        host = h ? h->value : (qs_slice){"", 0};
    }
    char *hs = qs_xstrndup(host.p ? host.p : "", host.n);
    qs_token1_identity(cfg->resource_identifier, req->secure ? "https" : "http", hs, identifier,
                       metadata_url);
    free(hs);
}

void qs_endpoint_bearer_error(qs_http_req *req, enum qs_bearer_error e)
{
    char *id, *metadata;
    qs_endpoint_identity(req, &id, &metadata);
    char *challenge = qs_bearer_challenge(e, metadata);
    qs_buf extra = QS_BUF_INIT;
    qs_endpoint_headers(req, &extra);
    qs_buf_append_str(&extra, "Www-Authenticate: ");
    qs_buf_append_str(&extra, challenge);
    qs_buf_append_str(&extra, "\r\n");
    int status = qs_bearer_status(e);
    qs_http_error(req, status, qs_http_status_text(status), qs_buf_cstr(&extra));
    qs_buf_free(&extra);
    free(challenge);
    free(id);
    free(metadata);
}

/* Only the header says whether a token is an access token: decoding it alone is cheaper
 * than decoding the whole token. */
static bool is_access_token(qs_slice token)
{
    const char *dot = memchr(token.p, '.', token.n);
    if (!dot)
        return false;
    unsigned char *raw;
    size_t n;
    if (qs_base64url_decode(token.p, (size_t)(dot - token.p), &raw, &n) < 0)
        return false;
    json_t *h = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    const char *typ = json_string_value(json_object_get(h, "typ"));
    bool at = false;
    if (typ) {
        if (strncasecmp(typ, "application/", 12) == 0)
            typ += 12;
        at = strcasecmp(typ, "at+jwt") == 0;
    }
    json_decref(h);
    return at;
}

/* A 0.x token, with 0.x's lookup and rules (the cookie: the one it was found in). */
static void access_0x(qs_http_req *req, bool publish, const char *cookie, qs_access *out)
{
    const qs_hub *hub = req->ctx->hub;
    const qs_config *cfg = hub->cfg;
    qs_keys *keys = publish ? hub->publisher_keys : hub->subscriber_keys;
    if (!keys) {
        out->status = QS_ACCESS_INVALID;
        out->reason = "no key verifies protocol 0.x tokens for this role";
        return;
    }
    const qs_jwt_key *key = NULL;
    const qs_jwks *jwks = NULL;
    qs_keys_get(keys, req->ctx->index, &key, &jwks);
    bool unknown_kid = false;
    qs_auth_params p = {
        .key = key,
        .jwks = jwks,
        .cache = req->ctx->tokens,
        .cookie_name = cookie ? cookie : cfg->cookie_name,
        .is_post = publish,
        .publish_origins = cfg->publish_origins,
        .n_publish_origins = cfg->n_publish_origins,
        .now = qs_wall_seconds(),
        .unknown_kid = &unknown_kid,
    };
    enum qs_auth_status st = qs_authorize(&p, req->headers, req->n_headers, qs_http_query(req),
                                          &out->claims0, &out->reason);
    if (unknown_kid)
        qs_keys_unknown_kid(keys);
    out->status = st == QS_AUTH_OK          ? QS_ACCESS_OK
                  : st == QS_AUTH_ANONYMOUS ? QS_ACCESS_ANONYMOUS
                                            : QS_ACCESS_INVALID;
}

void qs_endpoint_access(qs_http_req *req, bool publish, enum qs_token_rules rules, qs_access *out)
{
    memset(out, 0, sizeof(*out));
    qs_ctx *ctx = req->ctx;
    const qs_hub *hub = ctx->hub;
    const qs_config *cfg = hub->cfg;
    const char *names[] = {cfg->cookie_name, cfg->cookie_name_fallback};
    qs_token_found f = qs_auth1_find(req->headers, req->n_headers, names, 2);
    if (f.where == QS_TOKEN_BAD_HEADER) {
        out->status = QS_ACCESS_BAD_REQUEST;
        out->reason = "invalid \"Authorization\" HTTP header";
        return;
    }
    if (f.where == QS_TOKEN_NONE || (f.where == QS_TOKEN_COOKIE && cfg->protocol_0x)) {
        /* 0.x looks at its query parameter before cookies. */
        const qs_form *q = qs_http_query(req);
        if (cfg->protocol_0x && rules != QS_RULES_1 && q && qs_form_has(q, "authorization")) {
            access_0x(req, publish, NULL, out);
            return;
        }
    }
    if (f.where == QS_TOKEN_NONE) {
        out->status = QS_ACCESS_ANONYMOUS;
        return;
    }
    bool v1 = !cfg->protocol_0x || is_access_token(f.token);
    if (!v1) {
        access_0x(req, publish, f.cookie, out);
        return;
    }
    out->v1_token = true; /* whatever follows is answered as 1.0 answers it */
    if (f.where == QS_TOKEN_COOKIE && publish &&
        !qs_cookie_post_allowed(req->headers, req->n_headers, cfg->publish_origins,
                                cfg->n_publish_origins, &out->reason)) {
        out->status = QS_ACCESS_BAD_REQUEST;
        return;
    }
    char *audience, *metadata;
    qs_endpoint_identity(req, &audience, &metadata);
    const qs_token1_issuer *unknown_kid = NULL;
    qs_token1_params p = {
        .issuers = ctx->issuers,
        .n_issuers = hub->issuers.n,
        .publish = publish,
        .audience = audience,
        .now = qs_wall_seconds(),
        .base = &hub->base,
        .max_states = (size_t)QS_MAX(cfg->max_selector_states, 0),
        .sole_issuer_any_iss = hub->issuers.sole_any_iss,
        .unknown_kid = &unknown_kid,
        .keys_serial = qs_issuers_view(&hub->issuers, ctx->index, publish, ctx->issuers),
    };
    enum qs_token1_status st =
        qs_auth1_verify(ctx->tokens1, &p, f.token.p, f.token.n, &out->claims1);
    /* The token is refused now; its key may be in the set once fetched again (keys.h). */
    if (unknown_kid)
        qs_issuers_unknown_kid(&hub->issuers, ctx->issuers, unknown_kid, publish);
    free(audience);
    free(metadata);
    if (st != QS_TOKEN1_OK) {
        out->status = QS_ACCESS_INVALID;
        out->reason = qs_token1_status_str(st);
        return;
    }
    out->status = QS_ACCESS_OK;
}

bool qs_endpoint_access_token_sent(qs_http_req *req)
{
    const qs_config *cfg = req->ctx->hub->cfg;
    const char *names[] = {cfg->cookie_name, cfg->cookie_name_fallback};
    qs_token_found f = qs_auth1_find(req->headers, req->n_headers, names, 2);
    return (f.where == QS_TOKEN_HEADER || f.where == QS_TOKEN_COOKIE) && is_access_token(f.token);
}

void qs_access_clear(qs_access *a)
{
    qs_jwt_claims_free(&a->claims0);
    memset(a, 0, sizeof(*a));
}
