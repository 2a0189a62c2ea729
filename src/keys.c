/* SPDX-License-Identifier: MIT
 * keys.c - a role's verification keys: a single key, or a JWK Set kept up to date by a
 * refresher thread of its own.
 */
#include "keys.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "fetch.h"
#include "log.h"

/* A worker's reference to the set in use, alone on its cache line (the array is aligned). */
typedef struct keys_slot {
    qs_jwks *set;
    uint64_t serial;
    char pad[64 - sizeof(qs_jwks *) - sizeof(uint64_t)];
} keys_slot;

struct qs_keys {
    qs_jwt_key *key; /* a single key; NULL for a JWK Set source */

    char *name, *url, *ca_file;
    qs_keys_options opt;
    keys_slot *slots;

    uv_mutex_t mu;
    uv_cond_t cond;
    qs_jwks *current;              /* under mu */
    atomic_uint_fast64_t serial;   /* current's serial, read without the lock */
    atomic_uint_fast64_t next_ask; /* qs_now_ms() before which unknown kids ask nothing */
    bool asked, reload, stopping;  /* under mu */
    atomic_bool abort;             /* cancels a fetch in progress */
    uv_thread_t thread;
    bool started;
};

qs_keys *qs_keys_new_static(qs_jwt_key *key)
{
    qs_keys *k = qs_xcalloc(1, sizeof(*k));
    k->key = key;
    return k;
}

bool qs_keys_is_jwks(const qs_keys *k)
{
    return !k->key;
}

/* Logs the keys a document skipped, one line each. */
static void log_skipped(const qs_keys *k, qs_buf *warnings)
{
    char *line = warnings->p, *end;
    while (line && (end = strchr(line, '\n'))) {
        *end = '\0';
        qs_warn("%s: %s: %s", k->name, k->url, line);
        line = end + 1;
    }
    qs_buf_reset(warnings);
}

/* Fetches and parses the set; returns it, or NULL with *err set. Keys skipped are described
 * in `warnings`. Blocking. */
static qs_jwks *fetch_set(qs_keys *k, qs_buf *warnings, char **err)
{
    qs_fetch_options fo = {.max_bytes = QS_JWKS_MAX_DOC,
                           .timeout_ms = k->opt.timeout_ms,
                           .ca_file = k->ca_file,
                           .abort = &k->abort};
    qs_buf doc = QS_BUF_INIT;
    qs_jwks *set = NULL;
    *err = NULL;
    qs_buf_reset(warnings);
    if (qs_fetch(k->url, &fo, &doc, err) == 0)
        set = qs_jwks_parse(doc.p ? doc.p : "", doc.len, warnings, err);
    qs_buf_free(&doc);
    return set;
}

qs_keys *qs_keys_new_jwks(const char *name, const char *url, const qs_keys_options *o, char **err)
{
    qs_keys *k = qs_xcalloc(1, sizeof(*k));
    k->name = qs_xstrdup(name);
    k->url = qs_xstrdup(url);
    k->ca_file = o->ca_file ? qs_xstrdup(o->ca_file) : NULL;
    k->opt = *o;
    k->opt.ca_file = k->ca_file;
    size_t n_slots = (size_t)(o->n_slots > 0 ? o->n_slots : 1);
    k->slots = aligned_alloc(64, n_slots * sizeof(*k->slots));
    if (!k->slots)
        qs_panic("out of memory");
    memset(k->slots, 0, n_slots * sizeof(*k->slots));
    uv_mutex_init(&k->mu);
    uv_cond_init(&k->cond);
    atomic_init(&k->abort, false);
    char *why = NULL;
    qs_buf warnings = QS_BUF_INIT;
    k->current = fetch_set(k, &warnings, &why);
    log_skipped(k, &warnings);
    qs_buf_free(&warnings);
    if (!k->current) {
        *err = qs_xasprintf("%s: the JWK Set at %s cannot be used: %s", name, url, why);
        free(why);
        qs_keys_free(k);
        return NULL;
    }
    atomic_store(&k->serial, qs_jwks_serial(k->current));
    qs_info("%s: %zu key%s from %s", name, qs_jwks_count(k->current),
            qs_jwks_count(k->current) == 1 ? "" : "s", url);
    return k;
}

/* Puts a freshly fetched set in use, unless it holds the same keys as the current one. */
static void publish_set(qs_keys *k, qs_jwks *set, qs_buf *warnings)
{
    uv_mutex_lock(&k->mu);
    qs_jwks *old = k->current;
    bool same = qs_jwks_same(old, set);
    if (!same) {
        k->current = set;
        atomic_store_explicit(&k->serial, qs_jwks_serial(set), memory_order_release);
    }
    uv_mutex_unlock(&k->mu);
    if (same) {
        qs_debug("%s: %s unchanged", k->name, k->url);
        qs_jwks_unref(set);
        return;
    }
    qs_info("%s: the key set changed: %zu key%s from %s (was %zu)", k->name, qs_jwks_count(set),
            qs_jwks_count(set) == 1 ? "" : "s", k->url, qs_jwks_count(old));
    log_skipped(k, warnings);
    qs_jwks_unref(old);
}

static void refresher_main(void *arg)
{
    qs_keys *k = arg;
    uint64_t last = qs_now_ms(); /* the last fetch started then (the first at start-up) */
    uint64_t next = last + k->opt.refresh_ms;
    /* Retries start at the shorter of the two intervals: never later than a refresh. */
    const uint64_t first_retry = QS_MIN(k->opt.min_refresh_ms, k->opt.refresh_ms);
    uint64_t backoff = first_retry;
    bool failing = false;
    qs_buf warnings = QS_BUF_INIT;
    uv_mutex_lock(&k->mu);
    for (;;) {
        uint64_t now = qs_now_ms();
        /* An unknown kid asks for a fetch no sooner than min_refresh_ms after the last. */
        uint64_t due = k->reload  ? now
                       : k->asked ? QS_MIN(next, QS_MAX(now, last + k->opt.min_refresh_ms))
                                  : next;
        if (k->stopping)
            break;
        if (now < due) {
            uv_cond_timedwait(&k->cond, &k->mu, (due - now) * 1000000);
            continue;
        }
        const char *why_now = k->reload ? "reload" : k->asked && now < next ? "unknown kid" : NULL;
        k->asked = k->reload = false;
        uv_mutex_unlock(&k->mu);

        if (why_now)
            qs_debug("%s: fetching %s (%s)", k->name, k->url, why_now);
        last = now;
        char *err = NULL;
        qs_jwks *set = fetch_set(k, &warnings, &err);
        if (set) {
            if (failing)
                qs_info("%s: %s can be fetched again", k->name, k->url);
            failing = false;
            backoff = first_retry;
            next = qs_now_ms() + k->opt.refresh_ms;
            publish_set(k, set, &warnings);
        } else if (!atomic_load(&k->abort)) {
            /* Said once per outage at warning level: a server down for hours is one line
             * and a retry every few minutes. */
            if (!failing) {
                qs_warn("%s: %s cannot be used: %s; the keys fetched before stay in use", k->name,
                        k->url, err);
                log_skipped(k, &warnings);
            } else {
                qs_debug("%s: %s still cannot be used: %s", k->name, k->url, err);
            }
            failing = true;
            next = qs_now_ms() + backoff;
            backoff = QS_MIN(backoff * 2, k->opt.refresh_ms);
        }
        free(err);
        uv_mutex_lock(&k->mu);
    }
    uv_mutex_unlock(&k->mu);
    qs_buf_free(&warnings);
}

int qs_keys_start(qs_keys *k, char **err)
{
    if (!qs_keys_is_jwks(k) || k->started)
        return 0;
    if (uv_thread_create(&k->thread, refresher_main, k) != 0) {
        *err = qs_xasprintf("%s: cannot start the key refresher thread", k->name);
        return -1;
    }
    k->started = true;
    return 0;
}

void qs_keys_stop(qs_keys *k)
{
    if (!k || !k->started)
        return;
    atomic_store(&k->abort, true);
    uv_mutex_lock(&k->mu);
    k->stopping = true;
    uv_cond_signal(&k->cond);
    uv_mutex_unlock(&k->mu);
    uv_thread_join(&k->thread);
    k->started = false;
}

void qs_keys_free(qs_keys *k)
{
    if (!k)
        return;
    qs_keys_stop(k);
    if (qs_keys_is_jwks(k)) {
        for (int i = 0; i < (k->opt.n_slots > 0 ? k->opt.n_slots : 1); i++)
            qs_jwks_unref(k->slots[i].set);
        qs_jwks_unref(k->current);
        uv_cond_destroy(&k->cond);
        uv_mutex_destroy(&k->mu);
    }
    qs_jwt_key_free(k->key);
    free(k->slots);
    free(k->name);
    free(k->url);
    free(k->ca_file);
    free(k);
}

void qs_keys_get(qs_keys *k, int slot, const qs_jwt_key **key, const qs_jwks **jwks)
{
    *key = k->key;
    *jwks = NULL;
    if (k->key)
        return;
    keys_slot *s = &k->slots[slot >= 0 && slot < k->opt.n_slots ? slot : 0];
    if (atomic_load_explicit(&k->serial, memory_order_acquire) != s->serial) {
        uv_mutex_lock(&k->mu);
        qs_jwks *set = qs_jwks_ref(k->current);
        uv_mutex_unlock(&k->mu);
        qs_jwks_unref(s->set);
        s->set = set;
        s->serial = qs_jwks_serial(set);
    }
    *jwks = s->set;
}

void qs_keys_unknown_kid(qs_keys *k)
{
    if (!k || k->key)
        return;
    /* Tokens with made-up kids must not turn into a stream of fetches, nor of lock
     * acquisitions: one caller per interval gets through this gate. */
    uint64_t now = qs_now_ms();
    uint64_t gate = atomic_load_explicit(&k->next_ask, memory_order_relaxed);
    if (now < gate ||
        !atomic_compare_exchange_strong(&k->next_ask, &gate, now + k->opt.min_refresh_ms))
        return;
    uv_mutex_lock(&k->mu);
    k->asked = true;
    uv_cond_signal(&k->cond);
    uv_mutex_unlock(&k->mu);
}

void qs_keys_reload(qs_keys *k)
{
    if (!k || k->key)
        return;
    uv_mutex_lock(&k->mu);
    k->reload = true;
    uv_cond_signal(&k->cond);
    uv_mutex_unlock(&k->mu);
}
