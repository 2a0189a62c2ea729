/* SPDX-License-Identifier: MIT
 * auth1.c - protocol 1.0 token sources and the cache of verified access tokens (see
 * auth1.h).
 */
#include "auth1.h"

#include <stdlib.h>
#include <strings.h>

#include "form.h"
#include "strmap.h"

#define BEARER_PREFIX "Bearer "
#define MIN_HEADER_LEN 48 /* "Bearer " + the shortest plausible compact JWS (41 bytes) */
#define MAX_CACHED_TOKEN 8192

qs_token_found qs_auth1_find(const qs_header *headers, size_t n_headers,
                             const char *const *cookie_names, size_t n_names)
{
    qs_token_found f = {QS_TOKEN_NONE, {NULL, 0}, NULL};
    size_t n_auth = qs_headers_count(headers, n_headers, "Authorization");
    if (n_auth) {
        const qs_header *h = qs_headers_find(headers, n_headers, "Authorization");
        /* The scheme is case-insensitive (RFC 9110 §11.1), unlike 0.x's check. */
        if (n_auth != 1 || h->value.n < MIN_HEADER_LEN ||
            strncasecmp(h->value.p, BEARER_PREFIX, 7) != 0) {
            f.where = QS_TOKEN_BAD_HEADER;
            return f;
        }
        f.where = QS_TOKEN_HEADER;
        f.token = (qs_slice){h->value.p + 7, h->value.n - 7};
        return f;
    }
    for (size_t k = 0; k < n_names; k++) {
        if (!cookie_names[k])
            continue;
        for (size_t i = 0; i < n_headers; i++) {
            qs_slice value;
            if (qs_slice_ieq(headers[i].name, "Cookie") &&
                qs_form_cookie(headers[i].value.p, headers[i].value.n, cookie_names[k], &value)) {
                f.where = QS_TOKEN_COOKIE;
                f.token = value;
                f.cookie = cookie_names[k];
                return f;
            }
        }
    }
    return f;
}

struct qs_token1_cache {
    qs_strmap map; /* role + audience + NUL + token -> qs_token1_claims * */
    size_t max;
};

qs_token1_cache *qs_token1_cache_new(size_t max_entries)
{
    qs_token1_cache *c = qs_xcalloc(1, sizeof(*c));
    qs_strmap_init(&c->map);
    c->max = max_entries;
    return c;
}

static void cache_clear(qs_token1_cache *c)
{
    const qs_strmap_entry *e;
    for (size_t i = 0; qs_strmap_next(&c->map, &i, &e);) {
        qs_token1_claims_free(e->value);
        free(e->value);
    }
    qs_strmap_free(&c->map);
    qs_strmap_init(&c->map);
}

void qs_token1_cache_free(qs_token1_cache *c)
{
    if (!c)
        return;
    cache_clear(c);
    qs_strmap_free(&c->map);
    free(c);
}

static bool still_valid(const qs_token1_claims *c, int64_t now)
{
    return now < c->exp && (!c->has_nbf || now >= c->nbf);
}

enum qs_token1_status qs_auth1_verify(qs_token1_cache *c, const qs_token1_params *p,
                                      const char *token, size_t len,
                                      const qs_token1_claims **claims)
{
    *claims = NULL;
    qs_token1_claims *fresh = qs_xmalloc(sizeof(*fresh));
    if (!c || len > MAX_CACHED_TOKEN) {
        enum qs_token1_status st = qs_token1_verify(p, token, len, fresh);
        if (st == QS_TOKEN1_OK && c) {
            /* Too long to be worth keeping: held under an empty key (which no other entry
             * has) until the next call, like a cached one. */
            qs_token1_claims *old = qs_strmap_remove(&c->map, "", 0);
            if (old) {
                qs_token1_claims_free(old);
                free(old);
            }
            qs_strmap_put(&c->map, "", 0, fresh);
        } else if (st != QS_TOKEN1_OK) {
            free(fresh);
            return st;
        }
        *claims = fresh;
        return st;
    }
    qs_buf k = QS_BUF_INIT;
    qs_buf_append_char(&k, p->publish ? 'p' : 's');
    /* A token verified with a key set that is no longer in use must be verified again. */
    qs_buf_append(&k, &p->keys_serial, sizeof(p->keys_serial));
    if (p->audience)
        qs_buf_append_str(&k, p->audience);
    qs_buf_append_char(&k, '\0');
    qs_buf_append(&k, token, len);
    qs_token1_claims *hit = qs_strmap_get(&c->map, k.p, k.len);
    if (hit && still_valid(hit, p->now)) {
        qs_buf_free(&k);
        free(fresh);
        *claims = hit;
        return QS_TOKEN1_OK;
    }
    enum qs_token1_status st = qs_token1_verify(p, token, len, fresh);
    if (st != QS_TOKEN1_OK) {
        free(fresh);
        qs_buf_free(&k);
        return st;
    }
    if (hit) { /* expired or not valid yet: replaced */
        qs_strmap_remove(&c->map, k.p, k.len);
        qs_token1_claims_free(hit);
        free(hit);
    }
    if (qs_strmap_count(&c->map) >= c->max)
        cache_clear(c);
    qs_strmap_put(&c->map, k.p, k.len, fresh);
    qs_buf_free(&k);
    *claims = fresh;
    return QS_TOKEN1_OK;
}
