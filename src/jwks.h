/* SPDX-License-Identifier: MIT
 * jwks.h - JSON Web Key Sets (RFC 7517/7518): a document in, an immutable set of
 * verification keys out, and the choice of a token's key by its "kid" and "alg".
 *
 * Accepted keys: RSA (n, e) for RS256/384/512 and PS256/384/512; EC P-256, P-384, P-521
 * (x, y) for ES256/384/512; OKP Ed25519 (x) for EdDSA; oct (k) for HS256/384/512. A key's
 * "alg", when present, pins it to that algorithm; without it the key serves every algorithm
 * its type allows. Keys whose "use" is not "sig", whose "key_ops" lack "verify", or whose
 * type, curve or algorithm the hub does not support are skipped with a warning; private
 * members ("d"…) are ignored. A set with no usable key is an error.
 *
 * Bounds: the document is at most QS_JWKS_MAX_DOC bytes and QS_JWKS_MAX_KEYS keys, a kid
 * at most QS_JWT_MAX_KID bytes, RSA moduli between 1024 and 16384 bits.
 *
 * A set is reference-counted and never changes once built, so any thread may use it while
 * it holds a reference. Each set gets a serial number never given to another set in the
 * process: caches of verified tokens key their entries by it, so an entry can never be
 * used with a set that was not the one that verified it.
 *
 * Pure: bytes in, set or error out; no I/O.
 */
#ifndef QS_JWKS_H
#define QS_JWKS_H

#include "buf.h"
#include "jwt.h"

#define QS_JWKS_MAX_DOC (1024 * 1024)
#define QS_JWKS_MAX_KEYS 256

typedef struct qs_jwks qs_jwks;

/**
 * Parses a JWK Set ({"keys":[…]}; a single JWK object is taken as a set of one). Returns the
 * set with one reference, or NULL with *err set to a malloc'd one-line reason. Keys skipped
 * are described in `warnings` (one line each, "\n"-terminated) when it is not NULL.
 */
qs_jwks *qs_jwks_parse(const char *doc, size_t len, qs_buf *warnings, char **err);

qs_jwks *qs_jwks_ref(qs_jwks *set);
/** Drops a reference; the last one frees the set (any thread). NULL is allowed. */
void qs_jwks_unref(qs_jwks *set);

/** The set's serial number: unique in the process, increasing with each set parsed. */
uint64_t qs_jwks_serial(const qs_jwks *set);
/** Number of keys of the document in use. */
size_t qs_jwks_count(const qs_jwks *set);
/** True when both sets hold the same keys, kids and algorithms in the same order (a refresh
 *  that brings nothing new then keeps the set in use, and the caches built on it). */
bool qs_jwks_same(const qs_jwks *a, const qs_jwks *b);

/** Why no key was found for a token. */
enum qs_jwks_miss {
    QS_JWKS_HIT = 0,
    QS_JWKS_UNKNOWN_KID,  /* no key has this kid: the set may have rotated, fetch it again */
    QS_JWKS_ALG_MISMATCH, /* keys with this kid exist, none for the token's algorithm */
    QS_JWKS_NO_KID,       /* no kid, and no single key for the algorithm to default to */
    QS_JWKS_BAD_ALG,      /* the token's algorithm is unsupported */
};

/**
 * The key that must verify a token whose header is `h`: the key with the same kid (absent
 * matches absent) serving h->alg; a token without kid also gets the only key of the set
 * serving its algorithm, when there is exactly one. Returns NULL with *miss set otherwise.
 */
const qs_jwt_key *qs_jwks_find(const qs_jwks *set, const qs_jwt_header *h, enum qs_jwks_miss *miss);

/** One-line reason for a miss, e.g. "token key id (kid) is unknown". */
const char *qs_jwks_miss_str(enum qs_jwks_miss miss);

#endif
