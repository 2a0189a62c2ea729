/* SPDX-License-Identifier: MIT
 * auth.h - who may publish and subscribe (protocol 0.x, as the reference hub decides).
 *
 * Token sources, first present wins: the Authorization header (exactly one, "Bearer "
 * prefix, at least 48 bytes), the `authorization` query parameter (exactly one, at least
 * 41 bytes), the cookie named by `cookie_name`. A malformed header or parameter is an
 * error, not "anonymous". A cookie used for a POST must come with an Origin (or Referer)
 * listed in publish_origins, against CSRF.
 *
 * Pure: works on the request's header fields and query, whatever protocol carried them;
 * no I/O.
 */
#ifndef QS_AUTH_H
#define QS_AUTH_H

#include "form.h"
#include "headers.h"
#include "jwks.h"
#include "jwt.h"
#include "topic.h"
#include "update.h"

enum qs_auth_status {
    QS_AUTH_ANONYMOUS = 0, /* no token presented */
    QS_AUTH_OK,            /* a valid token; claims filled */
    QS_AUTH_INVALID,       /* a token (or its transport) is invalid; reason set */
};

/**
 * A per-thread cache of verified tokens: publishers and subscribers present the same token
 * again and again, and a hit skips base64, JSON and the signature. Keyed by the exact
 * token bytes and what verified them: a single key (by address: it lives as long as the
 * hub) or a key set (by serial number, never reused, so a rotated set never meets the
 * entries of the set it replaced). An entry is used only while the token's exp and nbf
 * allow it. Invalid tokens are never cached. Bounded: full, it starts over.
 */
typedef struct qs_token_cache qs_token_cache;
qs_token_cache *qs_token_cache_new(size_t max_entries);
void qs_token_cache_free(qs_token_cache *c);

typedef struct qs_auth_params {
    const qs_jwt_key *key; /* a single key, or (when NULL) */
    const qs_jwks *jwks;   /* a key set: the token's "kid" and "alg" choose the key */
    qs_token_cache *cache; /* optional */
    const char *cookie_name;
    bool is_post; /* the CSRF rule applies to cookie-authenticated POSTs */
    char *const *publish_origins;
    size_t n_publish_origins;
    int64_t now;
    /* Optional: set to true when the token names a kid that the key set lacks (the set may
     * have rotated: its owner may fetch it again). */
    bool *unknown_kid;
} qs_auth_params;

/** Finds and verifies the request's token. query may be NULL (no query string). */
enum qs_auth_status qs_authorize(const qs_auth_params *p, const qs_header *headers,
                                 size_t n_headers, const qs_form *query, qs_jwt_claims *claims,
                                 const char **reason);

/**
 * True when origin is allowed by the publish_origins list: "*" allows all; otherwise an
 * entry is an exact origin, or a pattern whose first "*" stands for one or more characters
 * of a single host label (letters, digits, "-", "_"), never compared literally. In a
 * pattern with the host "*.example.com", the "*" matches "a" of "a.example.com" but
 * nothing of "a.b.example.com", ".example.com" or "evil.com/.example.com". Case-sensitive,
 * like the exact comparison.
 */
bool qs_origin_allowed(const char *origin, size_t len, char *const *allowed, size_t n);

/** Publish rule: every topic of u matches some selector of the claim ("*" short-circuits). */
bool qs_can_publish(qs_selector_table *t, char *const *selectors, size_t n, const qs_update *u);

/** Receive rule: some topic of u matches some selector. */
bool qs_can_receive(qs_selector_table *t, qs_selector *const *selectors, size_t n,
                    const qs_update *u);

#endif
