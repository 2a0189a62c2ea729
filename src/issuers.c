/* SPDX-License-Identifier: MIT
 * issuers.c - trusted issuers and their key sources (see issuers.h).
 */
#include "issuers.h"

#include <stdlib.h>

/* The source built here for url, when an earlier role of an issuer named it. */
static qs_keys *shared_set(const qs_issuers *is, const char *const *urls, const char *url)
{
    for (size_t i = 0; i < is->n_owned; i++)
        if (urls[i] && strcmp(urls[i], url) == 0)
            return is->owned[i];
    return NULL;
}

static void own(qs_issuers *is, const char ***urls, qs_keys *k, const char *url)
{
    is->owned = qs_xrealloc(is->owned, (is->n_owned + 1) * sizeof(*is->owned));
    *urls = qs_xrealloc(*urls, (is->n_owned + 1) * sizeof(**urls));
    is->owned[is->n_owned] = k;
    (*urls)[is->n_owned++] = url;
}

/* Builds one role's source; *out stays NULL when the role has none. urls: the URL of each
 * owned source (NULL for a single key), for sharing. */
static int load_role(qs_issuers *is, const qs_config *cfg, const char ***urls, int n_slots,
                     const char *issuer, const char *role, const qs_config_verifier *v,
                     qs_keys **out, char **err)
{
    *out = NULL;
    if (v->jwks_uri) {
        if ((*out = shared_set(is, *urls, v->jwks_uri)))
            return 0;
        qs_keys_options o = {.refresh_ms = cfg->jwks_refresh_ms,
                             .min_refresh_ms = cfg->jwks_min_refresh_ms,
                             .timeout_ms = QS_JWKS_FETCH_TIMEOUT_MS,
                             .ca_file = cfg->jwks_ca_file,
                             .n_slots = n_slots};
        char *name = qs_xasprintf("issuer \"%s\": %s: jwks_uri", issuer, role);
        *out = qs_keys_new_jwks(name, v->jwks_uri, &o, err);
        free(name);
        if (!*out)
            return -1;
        own(is, urls, *out, v->jwks_uri);
        return 0;
    }
    if (!v->key)
        return 0;
    enum qs_jwt_alg alg;
    if (qs_jwt_alg_parse(v->alg, &alg) < 0) {
        *err = qs_xasprintf("issuer \"%s\": %s: unsupported algorithm \"%s\"", issuer, role,
                            v->alg ? v->alg : "");
        return -1;
    }
    const char *why = NULL;
    qs_jwt_key *k = qs_jwt_key_new(alg, v->key, strlen(v->key), &why);
    if (!k) {
        *err = qs_xasprintf("issuer \"%s\": %s: the %s key cannot be used: %s", issuer, role,
                            qs_jwt_alg_name(alg), why ? why : "invalid key");
        return -1;
    }
    *out = qs_keys_new_static(k);
    own(is, urls, *out, NULL);
    return 0;
}

static void set_algs(qs_token1_set *set, const qs_config_verifier *v)
{
    set->algs = v->jwks_algs;
    set->n_algs = v->n_jwks_algs;
}

int qs_issuers_load(qs_issuers *out, const qs_config *cfg, qs_keys *legacy_publisher,
                    qs_keys *legacy_subscriber, int n_slots, char **err)
{
    memset(out, 0, sizeof(*out));
    if (!cfg->protocol_1)
        return 0;
    bool implicit = cfg->protocol_version_compatibility && (legacy_publisher || legacy_subscriber);
    size_t cap = cfg->n_issuers + 1;
    out->v = qs_xcalloc(cap, sizeof(*out->v));
    out->publisher = qs_xcalloc(cap, sizeof(*out->publisher));
    out->subscriber = qs_xcalloc(cap, sizeof(*out->subscriber));
    out->authorization_servers = qs_xcalloc(cap, sizeof(char *));
    const char **urls = NULL;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_issuers && rc == 0; i++) {
        const qs_config_issuer *c = &cfg->issuers[i];
        qs_token1_issuer *t = &out->v[out->n];
        t->identifier = c->identifier;
        t->authorization_server = c->authorization_server;
        set_algs(&t->publisher_set, &c->publisher);
        set_algs(&t->subscriber_set, &c->subscriber);
        if (load_role(out, cfg, &urls, n_slots, c->identifier, "publisher", &c->publisher,
                      &out->publisher[out->n], err) < 0 ||
            load_role(out, cfg, &urls, n_slots, c->identifier, "subscriber", &c->subscriber,
                      &out->subscriber[out->n], err) < 0)
            rc = -1;
        out->n++;
        if (c->authorization_server)
            out->authorization_servers[out->n_authorization_servers++] = c->identifier;
    }
    free(urls);
    if (rc < 0) {
        qs_issuers_free(out);
        return -1;
    }
    if (implicit) {
        /* Its sets serve every algorithm they hold, as 0.x's do. */
        out->v[out->n].identifier = "";
        out->publisher[out->n] = legacy_publisher;
        out->subscriber[out->n] = legacy_subscriber;
        out->n++;
    }
    /* The reference's compatibility mode falls back to the sole issuer, whichever it is. */
    out->sole_any_iss = cfg->protocol_version_compatibility && out->n == 1;
    return 0;
}

void qs_issuers_free(qs_issuers *is)
{
    for (size_t i = 0; i < is->n_owned; i++)
        qs_keys_free(is->owned[i]);
    free(is->owned);
    free(is->publisher);
    free(is->subscriber);
    free(is->v);
    free(is->authorization_servers);
    memset(is, 0, sizeof(*is));
}

int qs_issuers_start(qs_issuers *is, char **err)
{
    for (size_t i = 0; i < is->n_owned; i++)
        if (qs_keys_start(is->owned[i], err) < 0)
            return -1;
    return 0;
}

void qs_issuers_stop(qs_issuers *is)
{
    for (size_t i = 0; i < is->n_owned; i++)
        qs_keys_stop(is->owned[i]);
}

void qs_issuers_reload(qs_issuers *is)
{
    for (size_t i = 0; i < is->n_owned; i++)
        qs_keys_reload(is->owned[i]);
}

bool qs_issuers_have_sets(const qs_issuers *is)
{
    for (size_t i = 0; i < is->n_owned; i++)
        if (qs_keys_is_jwks(is->owned[i]))
            return true;
    return false;
}

uint64_t qs_issuers_view(const qs_issuers *is, int slot, bool publish, qs_token1_issuer *view)
{
    qs_keys *const *sources = publish ? is->publisher : is->subscriber;
    uint64_t serial = 0;
    for (size_t i = 0; i < is->n; i++) {
        qs_token1_issuer *t = &view[i];
        *t = is->v[i];
        const qs_jwt_key **key = publish ? &t->publisher : &t->subscriber;
        qs_token1_set *set = publish ? &t->publisher_set : &t->subscriber_set;
        if (!sources[i])
            continue;
        qs_keys_get(sources[i], slot, key, &set->jwks);
        if (set->jwks)
            serial += qs_jwks_serial(set->jwks);
    }
    return serial;
}

void qs_issuers_unknown_kid(const qs_issuers *is, const qs_token1_issuer *view,
                            const qs_token1_issuer *issuer, bool publish)
{
    if (!issuer || issuer < view || issuer >= view + is->n)
        return;
    size_t i = (size_t)(issuer - view);
    qs_keys_unknown_kid(publish ? is->publisher[i] : is->subscriber[i]);
}
