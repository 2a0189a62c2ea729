/* SPDX-License-Identifier: MIT
 * auth.c - token extraction, CSRF origin rule, publish/receive authorization.
 */
#include "auth.h"

#include <stdlib.h>

#include "strmap.h"

#define BEARER_PREFIX "Bearer "
#define MIN_HEADER_LEN 48 /* "Bearer " + the shortest plausible JWT, as the reference */
#define MIN_QUERY_LEN 41

/* What the "*" of a publish_origins pattern may stand for: characters of one host label
 * (letters, digits, "-", and "_" which browsers accept in host names). Never ".", so that
 * it cannot span labels, nor ":", "/", "@", "?", "#", "%" or anything else that would let
 * another host or a port pass for the label. */
static bool is_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* The origin matches a pattern holding a "*" (pre before it, suf after it, the first "*";
 * any other is literal) when it starts with pre, ends with suf, and what lies between is
 * one or more label characters. */
static bool wildcard_match(const char *origin, size_t len, const char *pattern, size_t pre,
                           size_t suf)
{
    if (len <= pre + suf || memcmp(origin, pattern, pre) != 0 ||
        memcmp(origin + len - suf, pattern + pre + 1, suf) != 0)
        return false;
    for (size_t i = pre; i < len - suf; i++)
        if (!is_label_char(origin[i]))
            return false;
    return true;
}

bool qs_origin_allowed(const char *origin, size_t len, char *const *allowed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *a = allowed[i];
        if (strcmp(a, "*") == 0)
            return true;
        size_t alen = strlen(a);
        const char *star = strchr(a, '*');
        if (star ? wildcard_match(origin, len, a, (size_t)(star - a), alen - (size_t)(star - a) - 1)
                 : alen == len && memcmp(a, origin, len) == 0)
            return true;
    }
    return false;
}

/* The origin of a Referer, as Go's fmt.Sprintf("%s://%s", u.Scheme, u.Host) builds it. */
static size_t referer_origin(const char *ref, size_t len, char *out, size_t cap)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < len; i++) {
        if (ref[i] == ':' && ref[i + 1] == '/' && ref[i + 2] == '/') {
            sep = ref + i;
            break;
        }
        if (ref[i] == '/' || ref[i] == '?' || ref[i] == '#')
            break;
    }
    size_t n = 0;
    if (!sep) {
        if (cap > 3)
            memcpy(out, "://", 3), n = 3;
        return n;
    }
    const char *host = sep + 3, *end = ref + len, *p = host;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
        p++;
    /* Go drops userinfo from Host. */
    const char *at = host;
    for (const char *q = host; q < p; q++)
        if (*q == '@')
            at = q + 1;
    size_t scheme_len = (size_t)(sep - ref), host_len = (size_t)(p - at);
    if (scheme_len + 3 + host_len >= cap)
        return 0;
    for (size_t i = 0; i < scheme_len; i++) {
        char c = ref[i];
        out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c); /* Go lower-cases the scheme */
    }
    memcpy(out + n, "://", 3);
    n += 3;
    memcpy(out + n, at, host_len);
    return n + host_len;
}

struct qs_token_cache {
    qs_strmap map; /* key pointer + token bytes -> qs_jwt_claims* */
    size_t max;
};

qs_token_cache *qs_token_cache_new(size_t max_entries)
{
    qs_token_cache *c = qs_xcalloc(1, sizeof(*c));
    qs_strmap_init(&c->map);
    c->max = max_entries;
    return c;
}

static void cache_clear(qs_token_cache *c)
{
    const qs_strmap_entry *e;
    for (size_t i = 0; qs_strmap_next(&c->map, &i, &e);) {
        qs_jwt_claims_free(e->value);
        free(e->value);
    }
    qs_strmap_free(&c->map);
    qs_strmap_init(&c->map);
}

void qs_token_cache_free(qs_token_cache *c)
{
    if (!c)
        return;
    cache_clear(c);
    qs_strmap_free(&c->map);
    free(c);
}

/* Verification without the cache: the key set's key for this token, or the single key. */
static enum qs_jwt_status verify_uncached(const qs_auth_params *p, const char *token, size_t len,
                                          qs_jwt_claims *claims, const char **reason)
{
    const qs_jwt_key *key = p->key;
    if (!key) {
        qs_jwt_header h;
        enum qs_jwks_miss miss = QS_JWKS_UNKNOWN_KID;
        if (!p->jwks || qs_jwt_peek_header(token, len, &h) < 0) {
            memset(claims, 0, sizeof(*claims));
            *reason = qs_jwt_status_str(QS_JWT_E_MALFORMED);
            return QS_JWT_E_MALFORMED;
        }
        key = qs_jwks_find(p->jwks, &h, &miss);
        if (!key) {
            /* A kid too long for any set is not worth fetching the set again for. */
            if (miss == QS_JWKS_UNKNOWN_KID && !h.kid_too_long && p->unknown_kid)
                *p->unknown_kid = true;
            memset(claims, 0, sizeof(*claims));
            *reason = qs_jwks_miss_str(miss);
            return QS_JWT_E_SIGNATURE;
        }
    }
    enum qs_jwt_status st = qs_jwt_verify(key, token, len, p->now, claims);
    *reason = qs_jwt_status_str(st);
    return st;
}

/* The verification, through the cache when there is one. */
static enum qs_jwt_status verify(const qs_auth_params *p, const char *token, size_t len,
                                 qs_jwt_claims *claims, const char **reason)
{
    if (!p->cache || len > 8192)
        return verify_uncached(p, token, len, claims, reason);
    /* What verified the token is part of the key: the same token may meet another key. */
    qs_buf k = QS_BUF_INIT;
    if (p->key) {
        qs_buf_append_char(&k, 'K');
        qs_buf_append(&k, &p->key, sizeof(p->key));
    } else {
        uint64_t serial = p->jwks ? qs_jwks_serial(p->jwks) : 0;
        qs_buf_append_char(&k, 'S');
        qs_buf_append(&k, &serial, sizeof(serial));
    }
    qs_buf_append(&k, token, len);
    qs_jwt_claims *hit = qs_strmap_get(&p->cache->map, k.p, k.len);
    if (hit && (!hit->has_exp || p->now < hit->exp) && (!hit->has_nbf || p->now >= hit->nbf)) {
        qs_buf_free(&k);
        qs_jwt_claims_copy(claims, hit);
        *reason = qs_jwt_status_str(QS_JWT_OK);
        return QS_JWT_OK;
    }
    enum qs_jwt_status st = verify_uncached(p, token, len, claims, reason);
    if (st == QS_JWT_OK) {
        if (qs_strmap_count(&p->cache->map) >= p->cache->max)
            cache_clear(p->cache);
        qs_jwt_claims *copy = qs_xmalloc(sizeof(*copy));
        qs_jwt_claims_copy(copy, claims);
        qs_jwt_claims *old = qs_strmap_get(&p->cache->map, k.p, k.len);
        if (old) {
            qs_jwt_claims_free(old);
            free(old);
        }
        qs_strmap_put(&p->cache->map, k.p, k.len, copy);
    }
    qs_buf_free(&k);
    return st;
}

enum qs_auth_status qs_authorize(const qs_auth_params *p, const qs_header *headers,
                                 size_t n_headers, const qs_form *query, qs_jwt_claims *claims,
                                 const char **reason)
{
    memset(claims, 0, sizeof(*claims));
    const char *token = NULL;
    size_t token_len = 0;
    bool from_cookie = false;

    size_t n_auth = qs_headers_count(headers, n_headers, "Authorization");
    if (n_auth) {
        const qs_header *h = qs_headers_find(headers, n_headers, "Authorization");
        if (n_auth != 1 || h->value.n < MIN_HEADER_LEN ||
            memcmp(h->value.p, BEARER_PREFIX, 7) != 0) {
            *reason = "invalid \"Authorization\" HTTP header";
            return QS_AUTH_INVALID;
        }
        token = h->value.p + 7;
        token_len = h->value.n - 7;
    } else if (query && qs_form_has(query, "authorization")) {
        const qs_form_pair *q = qs_form_get(query, "authorization");
        if (qs_form_count(query, "authorization") != 1 || q->value_len < MIN_QUERY_LEN) {
            *reason = "invalid \"authorization\" query parameter";
            return QS_AUTH_INVALID;
        }
        token = q->value;
        token_len = q->value_len;
    } else {
        qs_slice value;
        bool found = false;
        for (size_t i = 0; i < n_headers && !found; i++)
            if (qs_slice_ieq(headers[i].name, "Cookie"))
                found =
                    qs_form_cookie(headers[i].value.p, headers[i].value.n, p->cookie_name, &value);
        if (!found)
            return QS_AUTH_ANONYMOUS;
        token = value.p;
        token_len = value.n;
        from_cookie = true;
    }

    if (from_cookie && p->is_post) {
        /* Cookies travel with cross-site requests: a cookie-authenticated publish must come
         * from an allowed origin. */
        char buf[512];
        const char *origin;
        size_t origin_len;
        const qs_header *o = qs_headers_find(headers, n_headers, "Origin");
        if (o && o->value.n) {
            origin = o->value.p;
            origin_len = o->value.n;
        } else {
            const qs_header *r = qs_headers_find(headers, n_headers, "Referer");
            if (!r || !r->value.n) {
                *reason = "an \"Origin\" or a \"Referer\" HTTP header must be present to use "
                          "the cookie-based authorization mechanism";
                return QS_AUTH_INVALID;
            }
            origin_len = referer_origin(r->value.p, r->value.n, buf, sizeof(buf));
            origin = buf;
        }
        if (!qs_origin_allowed(origin, origin_len, p->publish_origins, p->n_publish_origins)) {
            *reason = "origin not allowed to post updates";
            return QS_AUTH_INVALID;
        }
    }

    if (verify(p, token, token_len, claims, reason) != QS_JWT_OK)
        return QS_AUTH_INVALID;
    return QS_AUTH_OK;
}

bool qs_can_publish(qs_selector_table *t, char *const *selectors, size_t n, const qs_update *u)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(selectors[i], "*") == 0)
            return true;
    for (size_t k = 0; k < u->n_topics; k++) {
        bool matched = false;
        for (size_t i = 0; i < n && !matched; i++) {
            qs_selector *sel = qs_selector_table_acquire(t, selectors[i], strlen(selectors[i]));
            matched = qs_selector_table_match(t, sel, u->topics[k], u->topic_lens[k]);
            qs_selector_table_release(t, sel);
        }
        if (!matched)
            return false;
    }
    return true;
}

bool qs_can_receive(qs_selector_table *t, qs_selector *const *selectors, size_t n,
                    const qs_update *u)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < u->n_topics; k++)
            if (qs_selector_table_match(t, selectors[i], u->topics[k], u->topic_lens[k]))
                return true;
    return false;
}
