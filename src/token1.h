/* SPDX-License-Identifier: MIT
 * token1.h - protocol 1.0 access tokens, validated as the reference hub (main branch)
 * validates them, and the RFC 6750 / RFC 9728 pieces around them.
 *
 * A 1.0 token is an RFC 9068 JWT access token: header "typ" at+jwt or application/at+jwt
 * (case-insensitive); "iss" equal to one of the trusted issuers, each with its own publisher
 * and subscriber keys (the unverified "iss" only selects among them); "aud" (a string or an
 * array of strings) containing the hub's resource identifier; "exp" required; "nbf" honoured;
 * the key's algorithm only. Its grants are the RFC 9396 "authorization_details" entries of
 * type https://mercure.rocks/authorization-detail:
 *
 *   {"type": "https://mercure.rocks/authorization-detail",
 *    "actions": ["publish", "subscribe"],
 *    "topics": [{"match": "…", "match_type": "exact" | "urlpattern"}],
 *    "payload": any}
 *
 * Entries of other types are ignored, unknown actions too. The whole token is refused (401
 * invalid_token) when a Mercure entry has no action or no topic, a topic that is not an
 * object with a non-empty string "match", an unknown "match_type", a pattern longer than 4096
 * bytes or that is not a protocol string (pstring.h) or not a valid URL pattern, or when
 * there are more than 100 Mercure entries or more than 100 topics across them.
 *
 * Claims are read as Go's encoding/json reads them into the reference's structs: member
 * names match case-insensitively, null is absence, a registered date may be a number or a
 * string holding one, and a member of the wrong type makes the token malformed. (With
 * several members differing only by case, Go keeps the last one in the text; jansson keeps
 * the last of each exact name in first-insertion order, so such a token may read
 * differently: no issuer produces one.) The legacy "mercure" claim is not used in 1.0, but
 * the reference's official builds still decode it, so a malformed one refuses the token.
 *
 * Pure: bytes and configuration in, claims or a status out.
 */
#ifndef QS_TOKEN1_H
#define QS_TOKEN1_H

#include "jwt.h"
#include "urlpattern.h"

#define QS_TOKEN1_DETAIL_TYPE "https://mercure.rocks/authorization-detail"
#define QS_TOKEN1_MAX_DETAILS 100
#define QS_TOKEN1_MAX_TOPICS 100

/** A trusted issuer: the exact "iss" value and its keys per role (NULL: role refused). */
typedef struct qs_token1_issuer {
    const char *identifier;
    const qs_jwt_key *publisher;
    const qs_jwt_key *subscriber;
    bool authorization_server; /* advertised in the metadata document */
} qs_token1_issuer;

enum qs_matcher_type { QS_MATCHER_EXACT, QS_MATCHER_URLPATTERN };

typedef struct qs_token1_topic {
    enum qs_matcher_type type;
    char *match; /* NUL-terminated */
    size_t len;
    qs_urlpattern *pat; /* QS_MATCHER_URLPATTERN, unless match is "*" */
} qs_token1_topic;

/** One Mercure authorization detail. */
typedef struct qs_token1_detail {
    bool publish, subscribe;
    qs_token1_topic *topics;
    size_t n_topics;
    json_t *payload; /* owned reference, NULL when absent or null */
} qs_token1_detail;

typedef struct qs_token1_claims {
    char *issuer;
    int64_t exp;
    bool has_nbf;
    int64_t nbf;
    qs_token1_detail *details; /* the Mercure entries, in order */
    size_t n_details;
} qs_token1_claims;

enum qs_token1_status {
    QS_TOKEN1_OK = 0,
    QS_TOKEN1_E_MALFORMED,     /* structure, JSON, or a claim of the wrong type */
    QS_TOKEN1_E_ISSUER,        /* "iss" is not a trusted issuer */
    QS_TOKEN1_E_ROLE,          /* the issuer has no key for this role */
    QS_TOKEN1_E_ALG,           /* the header's alg is not the key's */
    QS_TOKEN1_E_SIGNATURE,     /* the signature does not verify */
    QS_TOKEN1_E_NO_EXP,        /* "exp" is missing */
    QS_TOKEN1_E_EXPIRED,       /* now >= exp */
    QS_TOKEN1_E_NOT_YET_VALID, /* now < nbf */
    QS_TOKEN1_E_AUDIENCE,      /* "aud" lacks the resource identifier */
    QS_TOKEN1_E_TYP,           /* the header's typ is not at+jwt */
    QS_TOKEN1_E_DETAILS,       /* an invalid Mercure authorization detail */
};

/** One-line reason for logs, e.g. "token audience does not contain the resource identifier". */
const char *qs_token1_status_str(enum qs_token1_status st);

typedef struct qs_token1_params {
    const qs_token1_issuer *issuers;
    size_t n_issuers;
    bool publish;          /* the role: publisher or subscriber keys */
    const char *audience;  /* the resource identifier; NULL or "": not checked */
    int64_t now;           /* seconds since the epoch */
    const qs_weburl *base; /* URL patterns in grants are compiled against it (it must outlive
                              the claims) */
    size_t max_states;     /* bound on each grant pattern's automaton (0: none) */
} qs_token1_params;

/** Validates a token (len bytes) and fills *out on QS_TOKEN1_OK; otherwise *out is left
 *  zeroed. Every failure is answered 401 invalid_token by the hub. */
enum qs_token1_status qs_token1_verify(const qs_token1_params *p, const char *token, size_t len,
                                       qs_token1_claims *out);
void qs_token1_claims_free(qs_token1_claims *c);

/** True when the token's header says it is an access token (typ at+jwt or
 *  application/at+jwt): how a hub serving both generations tells which rules apply. Nothing
 *  is verified. */
bool qs_token1_is_access_token(const char *token, size_t len);

/** True when a detail with the action grants the topic: a topic matcher "*" grants every
 *  topic, "exact" compares bytes, "urlpattern" matches the topic parsed against the base. */
bool qs_token1_grants(const qs_token1_claims *c, bool publish, const char *topic, size_t len);
/** The payload of the first subscribe detail one of whose matchers matches the subscription's
 *  own pattern text (the reference's rule for subscription events); NULL when none (or no
 *  payload). *found tells whether a detail matched. */
json_t *qs_token1_subscribe_payload(const qs_token1_claims *c, const char *pattern, size_t len,
                                    bool *found);

/* ---- RFC 6750 and RFC 9728 ---- */

enum qs_bearer_error {
    QS_BEARER_CHALLENGE,          /* no token: 401, bare challenge */
    QS_BEARER_INVALID_REQUEST,    /* malformed header, cookie CSRF failure: 400 */
    QS_BEARER_INVALID_TOKEN,      /* any token defect: 401 */
    QS_BEARER_INSUFFICIENT_SCOPE, /* a valid token without the grant: 403 */
};

/** The HTTP status of each error. */
int qs_bearer_status(enum qs_bearer_error e);
/** The WWW-Authenticate value, e.g. Bearer error="invalid_token", resource_metadata="…"
 *  (metadata_url NULL or "": omitted). Malloc'd. */
char *qs_bearer_challenge(enum qs_bearer_error e, const char *metadata_url);

#define QS_RESOURCE_METADATA_PATH "/.well-known/oauth-protected-resource/.well-known/mercure"

/**
 * The hub's resource identifier and metadata URL for a request (malloc'd): the configured
 * identifier when there is one (its metadata URL is built from its scheme and host, NULL when
 * it is not an absolute URL), else derived from the request's scheme and host:
 * "<scheme>://<host>/.well-known/mercure" and "<scheme>://<host>" QS_RESOURCE_METADATA_PATH.
 * Both NULL when neither is available.
 */
void qs_token1_identity(const char *configured, const char *scheme, const char *host,
                        char **identifier, char **metadata_url);

typedef struct qs_resource_metadata {
    const char *resource;
    const char *const *authorization_servers; /* the issuers marked authorization_server */
    size_t n_authorization_servers;
    const char *cookie_name; /* omitted when NULL or "" */
    bool subscriptions;      /* "mercure_subscriptions": true, omitted when false */
} qs_resource_metadata;

/** Appends the RFC 9728 document as the reference writes it (compact JSON, Go's escaping,
 *  a final newline). */
void qs_resource_metadata_json(const qs_resource_metadata *m, qs_buf *out);

#endif
