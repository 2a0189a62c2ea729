/* SPDX-License-Identifier: MIT
 * issuers.h - the trusted issuers of protocol 1.0 access tokens, their keys loaded, built
 * from the configuration once (at start-up, and by `mercure validate` to check the keys).
 *
 * Each `issuer` block becomes one issuer with its publisher and subscriber keys. Under
 * `protocol_version_compatibility`, the legacy publisher_jwt/subscriber_jwt keys become one
 * more issuer without an identifier, as the reference builds its implicit issuer; under
 * compatibility the only issuer verifies access tokens whatever their "iss" (sole_any_iss),
 * as the reference falls back to it. JWK Sets
 * (`jwks_uri`) are refused for now with a message saying so.
 */
#ifndef QS_ISSUERS_H
#define QS_ISSUERS_H

#include "config.h"
#include "token1.h"

typedef struct qs_issuers {
    qs_token1_issuer *v; /* the issuers, in configuration order (the implicit one last) */
    size_t n;
    bool sole_any_iss;
    const char **authorization_servers; /* identifiers of those marked authorization_server */
    size_t n_authorization_servers;
    qs_jwt_key **keys; /* owned: every key the issuers point to */
    size_t n_keys;
} qs_issuers;

/** Builds the issuers of cfg (none when protocol 1.0 is not served). Returns 0, or -1 with
 *  a malloc'd one-line message naming the issuer and the role. */
int qs_issuers_load(qs_issuers *out, const qs_config *cfg, char **err);
void qs_issuers_free(qs_issuers *is);

#endif
