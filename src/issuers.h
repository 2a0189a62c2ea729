/* SPDX-License-Identifier: MIT
 * issuers.h - the trusted issuers of protocol 1.0 access tokens and their key sources, built
 * from the configuration once (at start-up, and by `mercure validate` to check the keys).
 *
 * Each `issuer` block becomes one issuer with a key source per role (keys.h): a single key
 * (`jwt KEY [ALG]`) or a JWK Set (`jwks_uri URL [ALG…]`) fetched at start and kept up to
 * date by a refresher thread, as 0.x's `*_jwks_url` sets are. Roles of any issuers that
 * name the same URL share one source (one fetch, one refresher). Under
 * `protocol_version_compatibility`, the legacy keys become one more issuer without an
 * identifier, as the reference builds its implicit issuer: its sources are 0.x's own
 * (publisher_jwt or publisher_jwks_url…), given by the caller and not owned. Under
 * compatibility the only issuer verifies access tokens whatever their "iss" (sole_any_iss),
 * as the reference falls back to it.
 *
 * Threading: built and freed by the thread that owns the hub; qs_issuers_view by the
 * worker of its slot; qs_issuers_unknown_kid and qs_issuers_reload from any thread.
 */
#ifndef QS_ISSUERS_H
#define QS_ISSUERS_H

#include "config.h"
#include "keys.h"
#include "token1.h"

typedef struct qs_issuers {
    qs_token1_issuer *v; /* the issuers, in configuration order (the implicit one last); their
                            keys and sets are filled by qs_issuers_view */
    size_t n;
    bool sole_any_iss;
    const char **authorization_servers; /* identifiers of those marked authorization_server */
    size_t n_authorization_servers;
    qs_keys **publisher, **subscriber; /* per issuer: its role's source, NULL: none */
    qs_keys **owned;                   /* the sources built here */
    size_t n_owned;
} qs_issuers;

/**
 * Builds the issuers of cfg (none when protocol 1.0 is not served). Under compatibility the
 * implicit issuer's sources are legacy_publisher and legacy_subscriber (0.x's, not owned;
 * none: no implicit issuer). JWK Sets are fetched before returning (blocking, each bounded
 * by QS_JWKS_FETCH_TIMEOUT_MS); n_slots is the number of workers that call
 * qs_issuers_view. Returns 0, or -1 with a malloc'd one-line message naming the issuer and
 * the role.
 */
int qs_issuers_load(qs_issuers *out, const qs_config *cfg, qs_keys *legacy_publisher,
                    qs_keys *legacy_subscriber, int n_slots, char **err);
void qs_issuers_free(qs_issuers *is);

/** Starts the refresher threads of the JWK Sets built here. */
int qs_issuers_start(qs_issuers *is, char **err);
/** Stops them (before qs_issuers_free). */
void qs_issuers_stop(qs_issuers *is);
/** Fetches every JWK Set built here again now (SIGHUP). */
void qs_issuers_reload(qs_issuers *is);
/** True when some issuer's source is a JWK Set built here. */
bool qs_issuers_have_sets(const qs_issuers *is);

/**
 * Fills view (is->n entries, the worker's own copy of is->v) with the keys and sets of the
 * role in use for the worker of `slot`: one relaxed load per JWK Set when nothing changed.
 * Returns the token1 params' keys_serial for the role: the sum of the serials of the sets
 * in use, 0 without sets. A set put in use has a larger serial than the one it replaces
 * (serials grow with each set parsed), so the sum grows whenever one of the sets changes and
 * never comes back to a value the worker saw before.
 */
uint64_t qs_issuers_view(const qs_issuers *is, int slot, bool publish, qs_token1_issuer *view);

/** A token named a kid that the set of `issuer` (an entry of a view) lacks for the role:
 *  fetch that set again, within its source's limits (keys.h). */
void qs_issuers_unknown_kid(const qs_issuers *is, const qs_token1_issuer *view,
                            const qs_token1_issuer *issuer, bool publish);

#endif
