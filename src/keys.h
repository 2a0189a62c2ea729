/* SPDX-License-Identifier: MIT
 * keys.h - the keys that verify one role's tokens (publishers' or subscribers'): a single
 * key from the configuration, or a JWK Set fetched from a URL and kept up to date.
 *
 * A JWK Set source owns a refresher thread. It fetches the set every `refresh_ms`, when a
 * token names a kid the set lacks (at most once per `min_refresh_ms`, whatever the tokens
 * say), and on qs_keys_reload; a failed fetch is retried after `min_refresh_ms` (or
 * `refresh_ms` when shorter), doubling up to `refresh_ms`. A document that cannot be fetched or
 * parsed changes nothing: the last good set stays in use. A set equal to the one in use is dropped,
 * so the workers' caches of verified tokens stay warm; a different one is published with a new
 * serial number.
 *
 * Threading: the set in use is an immutable, reference-counted qs_jwks behind a mutex. Each
 * worker keeps its own reference in a slot of its own (its index), refreshed only when the
 * atomic serial of the set in use changed: the fast path is one relaxed load, no lock and no
 * shared write. A worker's reference keeps an old set alive until its next authorization.
 * qs_keys_get is called by the slot's worker only; qs_keys_unknown_kid and qs_keys_reload
 * from any thread; the rest from the thread that owns the hub.
 */
#ifndef QS_KEYS_H
#define QS_KEYS_H

#include "jwks.h"

typedef struct qs_keys qs_keys;

/** The time one fetch of a JWK Set may take, connection included. */
#define QS_JWKS_FETCH_TIMEOUT_MS 10000

typedef struct qs_keys_options {
    uint64_t refresh_ms;     /* scheduled refresh period */
    uint64_t min_refresh_ms; /* least time between two fetches (unknown kids, retries) */
    uint64_t timeout_ms;     /* one fetch, connection included */
    const char *ca_file;     /* for https:// (copied); NULL: the system's CA certificates */
    int n_slots;             /* workers that call qs_keys_get (slots 0 … n_slots - 1) */
} qs_keys_options;

/** A single key (taken). */
qs_keys *qs_keys_new_static(qs_jwt_key *key);

/**
 * A JWK Set source for `url`, fetched and parsed once before returning (blocking, bounded
 * by o->timeout_ms): a set that cannot be fetched or parsed is an error, with a malloc'd
 * reason in *err naming the URL. `name` names the source in logs (the directive).
 */
qs_keys *qs_keys_new_jwks(const char *name, const char *url, const qs_keys_options *o, char **err);

/** Starts the refresher thread of a JWK Set source (nothing for a single key). */
int qs_keys_start(qs_keys *k, char **err);
/** Stops the refresher thread (a fetch in progress is cancelled). */
void qs_keys_stop(qs_keys *k);
void qs_keys_free(qs_keys *k);

/** The key, or the key set in use, for the worker of `slot` (exactly one is non-NULL). */
void qs_keys_get(qs_keys *k, int slot, const qs_jwt_key **key, const qs_jwks **jwks);

/** A token named a kid the set lacks: fetch the set again, unless one was fetched or asked
 *  for less than min_refresh_ms ago (any thread; never blocks). */
void qs_keys_unknown_kid(qs_keys *k);
/** Fetch the set again now (SIGHUP). */
void qs_keys_reload(qs_keys *k);
/** True for a JWK Set source. */
bool qs_keys_is_jwks(const qs_keys *k);

#endif
