/* SPDX-License-Identifier: MIT
 * token.h - `mercure token`: a JWT the hub accepts, signed locally, so that nobody pastes a
 * secret into a web site to make one.
 *
 *   mercure token (--key K | --key-file F) [--alg ALG] [--kid KID] [--publish T]…
 *                 [--subscribe T]… [--payload JSON] [--exp DURATION|@UNIX] [--verbose]
 *
 * The claims are the hub's: {"mercure":{"publish":[…],"subscribe":[…],"payload":…}} and
 * "exp" when asked for. The key is an HMAC secret (HS256 unless --alg says otherwise) or a
 * PEM private key, whose type gives the default algorithm (RS256 for RSA, ES256/384/512 by
 * curve, EdDSA for Ed25519).
 */
#ifndef QS_TOKEN_H
#define QS_TOKEN_H

#include "util.h"

typedef struct qs_token_request {
    const char *key; /* secret or PEM private key (len bytes) */
    size_t key_len;
    const char *alg; /* NULL: from the key */
    const char *kid; /* NULL: no kid */
    const char *const *publish;
    size_t n_publish;
    const char *const *subscribe;
    size_t n_subscribe;
    const char *payload; /* JSON text, NULL: none */
    bool has_exp;
    int64_t exp; /* seconds since the epoch */
} qs_token_request;

/** Signs the token a request describes. Returns it (malloc'd), or NULL with a malloc'd
 *  one-line reason in *err. Pure but for the key parsing OpenSSL does. */
char *qs_token_make(const qs_token_request *r, char **err);

/** The `mercure token` command: argv[0] is "token". Prints the token on stdout; returns the
 *  process's exit code (0, 1 for a key or claim error, 2 for a usage error). */
int qs_token_main(int argc, char **argv);

#endif
