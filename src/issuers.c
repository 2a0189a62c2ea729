/* SPDX-License-Identifier: MIT
 * issuers.c - trusted issuers and their keys (see issuers.h).
 */
#include "issuers.h"

#include <stdlib.h>

/* Loads one role's key; *out stays NULL when the role has none. */
static int load_role(qs_issuers *is, const char *issuer, const char *role,
                     const qs_config_verifier *v, const qs_jwt_key **out, char **err)
{
    *out = NULL;
    if (v->jwks_uri) {
        *err = qs_xasprintf("issuer \"%s\": %s: jwks_uri: JWK Sets are not supported yet; "
                            "configure jwt with the key (a PEM public key and its algorithm)",
                            issuer, role);
        return -1;
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
    is->keys = qs_xrealloc(is->keys, (is->n_keys + 1) * sizeof(*is->keys));
    is->keys[is->n_keys++] = k;
    *out = k;
    return 0;
}

int qs_issuers_load(qs_issuers *out, const qs_config *cfg, char **err)
{
    memset(out, 0, sizeof(*out));
    if (!cfg->protocol_1)
        return 0;
    bool implicit = cfg->protocol_version_compatibility &&
                    (cfg->publisher_key || cfg->subscriber_key || cfg->publisher_jwks_url ||
                     cfg->subscriber_jwks_url);
    out->v = qs_xcalloc(cfg->n_issuers + 1, sizeof(*out->v));
    out->authorization_servers = qs_xcalloc(cfg->n_issuers + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->n_issuers; i++) {
        const qs_config_issuer *c = &cfg->issuers[i];
        qs_token1_issuer *t = &out->v[out->n++];
        t->identifier = c->identifier;
        t->authorization_server = c->authorization_server;
        if (load_role(out, c->identifier, "publisher", &c->publisher, &t->publisher, err) < 0 ||
            load_role(out, c->identifier, "subscriber", &c->subscriber, &t->subscriber, err) < 0) {
            qs_issuers_free(out);
            return -1;
        }
        if (c->authorization_server)
            out->authorization_servers[out->n_authorization_servers++] = c->identifier;
    }
    if (implicit) {
        if (cfg->publisher_jwks_url || cfg->subscriber_jwks_url) {
            *err = qs_xstrdup("publisher_jwks_url/subscriber_jwks_url: JWK Sets are not "
                              "supported yet; configure publisher_jwt/subscriber_jwt with a PEM "
                              "key instead");
            qs_issuers_free(out);
            return -1;
        }
        qs_token1_issuer *t = &out->v[out->n++];
        t->identifier = "";
        const qs_config_verifier pub = {.key = cfg->publisher_key,
                                        .alg = cfg->publisher_alg ? cfg->publisher_alg : "HS256"};
        const qs_config_verifier sub = {.key = cfg->subscriber_key,
                                        .alg = cfg->subscriber_alg ? cfg->subscriber_alg : "HS256"};
        if (load_role(out, "", "publisher", &pub, &t->publisher, err) < 0 ||
            load_role(out, "", "subscriber", &sub, &t->subscriber, err) < 0) {
            qs_issuers_free(out);
            return -1;
        }
    }
    /* The reference's compatibility mode falls back to the sole issuer, whichever it is. */
    out->sole_any_iss = cfg->protocol_version_compatibility && out->n == 1;
    return 0;
}

void qs_issuers_free(qs_issuers *is)
{
    for (size_t i = 0; i < is->n_keys; i++)
        qs_jwt_key_free(is->keys[i]);
    free(is->keys);
    free(is->v);
    free(is->authorization_servers);
    memset(is, 0, sizeof(*is));
}
