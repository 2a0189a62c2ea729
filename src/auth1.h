/* SPDX-License-Identifier: MIT
 * auth1.h - protocol 1.0 authorization around token1.h: where a request's token is, and the
 * verified access tokens a worker keeps until they expire.
 *
 * Token sources, as the reference's 1.0 hub reads them: the Authorization header (exactly
 * one, at least 48 bytes, "Bearer " in any case), else the first of the configured cookies
 * present. No query parameter: a URL is logged and shared, a token must not be in one. A
 * cookie used for a POST is subject to the same CSRF rule as in 0.x (auth.h), answered
 * invalid_request.
 *
 * The cache: publishers and subscribers present the same token again and again; a hit
 * skips base64, JSON, the signature and compiling the grants' URL patterns. Keyed by the
 * role, the serial of the issuers' key sets (a token verified with a set no longer in use is
 * verified again), the expected audience (it is derived from each request) and the exact
 * token bytes; an entry is used only while its exp and nbf allow; refusals are never cached;
 * full, it starts over. Touched by its worker only.
 */
#ifndef QS_AUTH1_H
#define QS_AUTH1_H

#include "headers.h"
#include "token1.h"

enum qs_token_where {
    QS_TOKEN_NONE,       /* no token: anonymous */
    QS_TOKEN_HEADER,     /* from the Authorization header */
    QS_TOKEN_COOKIE,     /* from a cookie (cookie says which) */
    QS_TOKEN_BAD_HEADER, /* an Authorization header that carries no bearer token */
};

typedef struct qs_token_found {
    enum qs_token_where where;
    qs_slice token;     /* QS_TOKEN_HEADER, QS_TOKEN_COOKIE: points into the headers */
    const char *cookie; /* QS_TOKEN_COOKIE: the cookie's name (one of the names given) */
} qs_token_found;

/** Finds a request's token (see above); cookie names in order of preference, NULL ones
 *  skipped. */
qs_token_found qs_auth1_find(const qs_header *headers, size_t n_headers,
                             const char *const *cookie_names, size_t n_names);

typedef struct qs_token1_cache qs_token1_cache;
qs_token1_cache *qs_token1_cache_new(size_t max_entries);
void qs_token1_cache_free(qs_token1_cache *c);

/** Verifies a token through the cache (NULL: no cache; then *claims must be freed by the
 *  caller with qs_token1_claims_free and free). On QS_TOKEN1_OK, *claims points to the
 *  verified claims, valid until the next call with the same cache. */
enum qs_token1_status qs_auth1_verify(qs_token1_cache *c, const qs_token1_params *p,
                                      const char *token, size_t len,
                                      const qs_token1_claims **claims);

#endif
