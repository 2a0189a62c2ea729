/* SPDX-License-Identifier: MIT
 * endpoint.h - what every endpoint of the hub answers with: the security headers of the
 * reference's middleware and the CORS headers, errors carrying them (RFC 6750 challenges
 * for protocol 1.0), and authorization against this worker's token caches.
 */
#ifndef QS_ENDPOINT_H
#define QS_ENDPOINT_H

#include "auth.h"
#include "auth1.h"
#include "http.h"

/** Appends the header lines of every hub response: security headers, then CORS. */
void qs_endpoint_headers(qs_http_req *req, qs_buf *out);
/** The security headers alone (a preflight's answer carries them without the CORS lines
 *  of an actual request). */
void qs_endpoint_security_headers(qs_buf *out);
/** qs_http_error with the hub's headers. */
void qs_endpoint_error(qs_http_req *req, int status, const char *message);
/** 405 with the hub's headers and "Allow: <allow>". */
void qs_endpoint_method_not_allowed(qs_http_req *req, const char *allow);
/** Finds and verifies the request's token with the publisher's key and the CSRF rule
 *  (publish) or the subscriber's key; see qs_authorize. */
enum qs_auth_status qs_endpoint_authorize(qs_http_req *req, bool publish, qs_jwt_claims *claims,
                                          const char **reason);

/* ---- protocol 1.0 ---- */

/** The hub's identity for this request: the resource identifier access tokens must name
 *  and the URL of its metadata document (malloc'd, NULL when unknown): the configured
 *  resource_identifier, else derived from the request's scheme and host. */
void qs_endpoint_identity(qs_http_req *req, char **identifier, char **metadata_url);
/** An RFC 6750 error: its status, "WWW-Authenticate: Bearer …" and the status text. */
void qs_endpoint_bearer_error(qs_http_req *req, enum qs_bearer_error e);

/** Who a request is, in a hub that serves protocol 1.0. */
typedef struct qs_access {
    enum qs_access_status {
        QS_ACCESS_ANONYMOUS,   /* no token */
        QS_ACCESS_OK,          /* a valid token: claims0 or claims1 */
        QS_ACCESS_BAD_REQUEST, /* a header without a bearer token, a cookie POST's origin */
        QS_ACCESS_INVALID,     /* a token that does not verify */
    } status;
    bool v1_token;                   /* an access token (claims1), else a 0.x token (claims0) */
    qs_jwt_claims claims0;           /* owned */
    const qs_token1_claims *claims1; /* the worker's cache's: valid until the next
                                        authorization on this worker */
    const char *reason;              /* for logs */
} qs_access;

/** Which rules apply to a request's token. */
enum qs_token_rules {
    QS_RULES_0X,    /* a 0.x request: 0.x lookup, then the token's shape decides */
    QS_RULES_1,     /* a 1.0 request: no query parameter, then the token's shape decides */
    QS_RULES_TOKEN, /* nothing in the request says: the query parameter is 0.x's */
};

/**
 * Authorizes a request as a publisher or a subscriber in a hub serving protocol 1.0 (alone
 * or beside 0.x). The token is looked for as 1.0 does (header, cookies), and as 0.x does
 * (the `authorization` query parameter) when 0.x is served and the request is not a 1.0
 * one. An access token (typ at+jwt; any token when 0.x is not served) is verified with the
 * trusted issuers' keys and 1.0's rules; any other token with 0.x's keys and rules.
 */
void qs_endpoint_access(qs_http_req *req, bool publish, enum qs_token_rules rules, qs_access *out);
void qs_access_clear(qs_access *a);
/** True when the request's token (header or cookie) is an access token (typ at+jwt). */
bool qs_endpoint_access_token_sent(qs_http_req *req);

#endif
