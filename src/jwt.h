/* SPDX-License-Identifier: MIT
 * jwt.h - JSON Web Tokens (JWS compact serialization): verification, signing, Mercure claims.
 *
 * The algorithm is pinned by configuration: a token is accepted only when its header's
 * "alg" equals the key's algorithm exactly, so "none" and an HMAC token presented
 * against a public key are always refused. Signatures are checked with OpenSSL; MACs
 * are compared in constant time (CRYPTO_memcmp).
 *
 * Claims follow the reference hub (protocol 0.x): the "mercure" claim holds
 * {publish:[...], subscribe:[...], payload:any}; when a "https://mercure.rocks/" claim is
 * present (not null) it replaces "mercure", as the reference does. "exp" and "nbf" are checked only
 * when present, without leeway; "aud", "iss" and "typ" are not checked.
 *
 * Everything here is pure: bytes in, struct or status out; no I/O, no globals.
 */
#ifndef QS_JWT_H
#define QS_JWT_H

#include <jansson.h>

#include "util.h"

enum qs_jwt_alg {
    QS_JWT_HS256,
    QS_JWT_HS384,
    QS_JWT_HS512,
    QS_JWT_RS256,
    QS_JWT_RS384,
    QS_JWT_RS512,
    QS_JWT_PS256,
    QS_JWT_PS384,
    QS_JWT_PS512,
    QS_JWT_ES256,
    QS_JWT_ES384,
    QS_JWT_ES512,
    QS_JWT_EDDSA,
};

/** Most selectors accepted in one claim array (the reference's limit). */
#define QS_JWT_MAX_CLAIM_SELECTORS 1000

/** Parses an algorithm name ("HS256" … "EdDSA"); NULL or "" means HS256.
 *  Returns 0, or -1 for an unknown or unsupported name ("none" included). */
int qs_jwt_alg_parse(const char *name, enum qs_jwt_alg *out);
const char *qs_jwt_alg_name(enum qs_jwt_alg alg);
static inline bool qs_jwt_alg_is_hmac(enum qs_jwt_alg alg)
{
    return alg <= QS_JWT_HS512;
}

typedef struct qs_jwt_key qs_jwt_key;

/**
 * Builds a verification key. For HS* the material is the raw secret (any bytes, at least
 * one). For RS*, PS*, ES* and EdDSA it is a PEM public key ("PUBLIC KEY" or "RSA PUBLIC
 * KEY"), a PEM certificate, or a PEM private key (its public half is used); the key type must
 * fit the algorithm (RSA for RS/PS, P-256/P-384/P-521 for ES256/384/512, Ed25519 for EdDSA).
 * Returns NULL with *err set to a static one-line reason on failure.
 */
qs_jwt_key *qs_jwt_key_new(enum qs_jwt_alg alg, const char *material, size_t len, const char **err);
/** Builds a signing key: HS* raw secret, or a PEM private key of the right type. */
qs_jwt_key *qs_jwt_key_new_private(enum qs_jwt_alg alg, const char *material, size_t len,
                                   const char **err);
/** Builds a verification key from a DER SubjectPublicKeyInfo (what a JWK's public parameters
 *  become); the same type checks as qs_jwt_key_new. Asymmetric algorithms only. */
qs_jwt_key *qs_jwt_key_new_spki(enum qs_jwt_alg alg, const unsigned char *der, size_t len,
                                const char **err);
/** The algorithm a PEM key is most naturally used with: RS256 for RSA, ES256/384/512 by
 *  curve, EdDSA for Ed25519. Returns 0, or -1 when the material is not a usable PEM key. */
int qs_jwt_alg_for_pem(const char *pem, size_t len, enum qs_jwt_alg *out);
enum qs_jwt_alg qs_jwt_key_alg(const qs_jwt_key *key);
void qs_jwt_key_free(qs_jwt_key *key);

/** Claims extracted from a verified token. All strings are owned, NUL-terminated. */
typedef struct qs_jwt_claims {
    bool has_mercure; /* a "mercure" (or namespaced) claim object was present */
    bool has_publish; /* "publish" present (possibly empty): nil vs [] matters for publishing */
    char **publish;
    size_t n_publish;
    bool has_subscribe;
    char **subscribe;
    size_t n_subscribe;
    json_t *payload; /* owned reference to "payload", NULL when absent or JSON null */
    bool has_exp;
    int64_t exp; /* seconds since the epoch */
    bool has_nbf;
    int64_t nbf;
} qs_jwt_claims;

enum qs_jwt_status {
    QS_JWT_OK = 0,
    QS_JWT_E_MALFORMED,     /* not three base64url parts, bad JSON, wrong claim types */
    QS_JWT_E_ALG,           /* header alg differs from the key's (includes "none") */
    QS_JWT_E_SIGNATURE,     /* signature does not verify */
    QS_JWT_E_EXPIRED,       /* now >= exp */
    QS_JWT_E_NOT_YET_VALID, /* now < nbf */
    QS_JWT_E_CLAIMS,        /* mercure claim malformed: not an object, non-string selectors,
                               more than QS_JWT_MAX_CLAIM_SELECTORS entries */
};

/** One-line reason, e.g. "token signature is invalid". */
const char *qs_jwt_status_str(enum qs_jwt_status st);

/**
 * Verifies `token` (len bytes, not necessarily NUL-terminated) with `key` at time `now`
 * (seconds since the epoch) and fills *claims on QS_JWT_OK. On any other status *claims is
 * left zeroed and needs no freeing. Tokens longer than 64 KiB are QS_JWT_E_MALFORMED.
 */
enum qs_jwt_status qs_jwt_verify(const qs_jwt_key *key, const char *token, size_t len, int64_t now,
                                 qs_jwt_claims *claims);
void qs_jwt_claims_free(qs_jwt_claims *claims);

/** Longest key id ("kid") kept from a header; longer ones can match no key. */
#define QS_JWT_MAX_KID 256

/** What a token's header says before anything is verified: which key should check it. */
typedef struct qs_jwt_header {
    bool alg_known; /* "alg" names an algorithm the hub supports (alg is set) */
    enum qs_jwt_alg alg;
    bool has_kid;      /* "kid" is present (a string, possibly empty) */
    bool kid_too_long; /* longer than QS_JWT_MAX_KID: kid is left empty */
    char kid[QS_JWT_MAX_KID + 1];
    size_t kid_len;
} qs_jwt_header;

/**
 * Reads the header of a token (nothing is verified: a key set uses it to choose the key).
 * Returns -1 when the header is not base64url JSON with a string "alg" (and a string or
 * null "kid"), which verification would refuse as malformed anyway.
 */
int qs_jwt_peek_header(const char *token, size_t len, qs_jwt_header *out);
/** Deep copy (the payload is shared by reference: it is never modified). */
void qs_jwt_claims_copy(qs_jwt_claims *out, const qs_jwt_claims *in);

/**
 * Lower-level pieces for other token profiles (protocol 1.0 access tokens, token1.h), which
 * read claims the 0.x rules above do not know:
 *  - qs_jwt_decode: the structure only (three base64url segments, header and claims JSON
 *    objects, at most 64 KiB), nothing verified. Returns QS_JWT_OK with two new references,
 *    or QS_JWT_E_MALFORMED.
 *  - qs_jwt_check_signature: the header's "alg" equals the key's algorithm (QS_JWT_E_ALG)
 *    and the signature verifies (QS_JWT_E_SIGNATURE, or QS_JWT_E_MALFORMED when it is not
 *    base64url).
 */
enum qs_jwt_status qs_jwt_decode(const char *token, size_t len, json_t **header, json_t **claims);
enum qs_jwt_status qs_jwt_check_signature(const qs_jwt_key *key, const char *token, size_t len,
                                          json_t *header);

/**
 * Signs a token: header {"alg":…,"typ":"JWT"} and the given claims object (not stolen).
 * Returns a malloc'd NUL-terminated token, or NULL with *err set. Used by tests, the load
 * generator and tooling.
 */
char *qs_jwt_sign(const qs_jwt_key *key, json_t *claims, const char **err);
/** qs_jwt_sign with a chosen "typ" header value (NULL: no "typ"), e.g. "at+jwt". */
char *qs_jwt_sign_typ(const qs_jwt_key *key, json_t *claims, const char *typ, const char **err);
/** qs_jwt_sign with a "kid" (key id) in the header after "alg", when kid is not NULL (UTF-8). */
char *qs_jwt_sign_kid(const qs_jwt_key *key, const char *kid, json_t *claims, const char **err);

/** base64url without padding. Decode returns -1 on invalid input. */
char *qs_base64url_encode(const void *data, size_t len);
int qs_base64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif
