/* SPDX-License-Identifier: MIT
 * test_auth1.c - protocol 1.0 token sources (header in any case, cookies in order, never the
 * query) and the worker's cache of verified access tokens.
 */
#include "auth1.h"
#include "harness.h"

#define KEY "!ChangeThisMercureHubJWTSecretKey!"
#define AUD "https://hub.example/.well-known/mercure"
#define NOW 1796061526
#define TOKEN "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmE"

#define H(name, value) ((qs_header){{name, sizeof(name) - 1}, {value, sizeof(value) - 1}})

TEST(token_sources)
{
    const char *names[] = {"__Secure-mercure_access_token", NULL, "mercureAuthorization"};
    qs_header h1[] = {H("Authorization", "bearer " TOKEN), H("Cookie", "mercureAuthorization=x")};
    qs_token_found f = qs_auth1_find(h1, 2, names, 3);
    ASSERT_EQ_INT(QS_TOKEN_HEADER, f.where);
    ASSERT_EQ_MEM(TOKEN, strlen(TOKEN), f.token.p, f.token.n);

    qs_header h2[] = {H("Authorization", "Basic Zm9vOmJhcg==")};
    ASSERT_EQ_INT(QS_TOKEN_BAD_HEADER, qs_auth1_find(h2, 1, names, 3).where);
    qs_header h3[] = {H("Authorization", "Bearer short")};
    ASSERT_EQ_INT(QS_TOKEN_BAD_HEADER, qs_auth1_find(h3, 1, names, 3).where);
    qs_header h4[] = {H("Authorization", "Bearer " TOKEN), H("Authorization", "Bearer " TOKEN)};
    ASSERT_EQ_INT(QS_TOKEN_BAD_HEADER, qs_auth1_find(h4, 2, names, 3).where);

    /* Cookies in order of preference, across Cookie headers. */
    qs_header h5[] = {H("Cookie", "mercureAuthorization=old"),
                      H("Cookie", "a=b; __Secure-mercure_access_token=new")};
    f = qs_auth1_find(h5, 2, names, 3);
    ASSERT_EQ_INT(QS_TOKEN_COOKIE, f.where);
    ASSERT_EQ_MEM("new", 3, f.token.p, f.token.n);
    ASSERT_EQ_STR("__Secure-mercure_access_token", f.cookie);
    f = qs_auth1_find(h5, 1, names, 3);
    ASSERT_EQ_MEM("old", 3, f.token.p, f.token.n);
    ASSERT_EQ_STR("mercureAuthorization", f.cookie);
    ASSERT_EQ_INT(QS_TOKEN_NONE, qs_auth1_find(h5, 1, names, 1).where);
    ASSERT_EQ_INT(QS_TOKEN_NONE, qs_auth1_find(NULL, 0, names, 3).where);
}

static char *mint(const char *claims_json)
{
    json_t *c = json_loads(claims_json, 0, NULL);
    qs_jwt_key *k = qs_jwt_key_new_private(QS_JWT_HS256, KEY, strlen(KEY), NULL);
    char *t = qs_jwt_sign_typ(k, c, "at+jwt", NULL);
    qs_jwt_key_free(k);
    json_decref(c);
    return t;
}

TEST(cache)
{
    qs_weburl base;
    const char *b = QS_URLPATTERN_FALLBACK_BASE;
    ASSERT_EQ_INT(0, qs_weburl_parse(b, strlen(b), NULL, &base));
    qs_jwt_key *k = qs_jwt_key_new(QS_JWT_HS256, KEY, strlen(KEY), NULL);
    qs_token1_issuer is = {.identifier = "https://localhost", .publisher = k, .subscriber = k};
    char *t = mint("{\"iss\":\"https://localhost\",\"aud\":\"" AUD "\",\"exp\":1796065116,"
                   "\"authorization_details\":[{\"type\":\"https://mercure.rocks/"
                   "authorization-detail\",\"actions\":[\"publish\"],\"topics\":[{\"match\":"
                   "\"https://e.com/:id\",\"match_type\":\"urlpattern\"}]}]}");
    qs_token1_params p = {.issuers = &is,
                          .n_issuers = 1,
                          .publish = true,
                          .audience = AUD,
                          .now = NOW,
                          .base = &base};
    qs_token1_cache *c = qs_token1_cache_new(2);
    const qs_token1_claims *a, *a2;
    ASSERT_EQ_INT(QS_TOKEN1_OK, qs_auth1_verify(c, &p, t, strlen(t), &a));
    ASSERT(qs_token1_grants(a, true, "https://e.com/1", 15));
    ASSERT_EQ_INT(QS_TOKEN1_OK, qs_auth1_verify(c, &p, t, strlen(t), &a2));
    ASSERT(a == a2); /* a hit */
    /* Another audience or role is another entry, verified on its own. */
    p.publish = false;
    ASSERT_EQ_INT(QS_TOKEN1_OK, qs_auth1_verify(c, &p, t, strlen(t), &a2));
    ASSERT(a2 != a);
    p.audience = "https://other.example/.well-known/mercure";
    ASSERT_EQ_INT(QS_TOKEN1_E_AUDIENCE, qs_auth1_verify(c, &p, t, strlen(t), &a2));
    ASSERT(a2 == NULL);
    /* Once expired, the cached entry is not used. */
    p.audience = AUD;
    p.publish = true;
    p.now = 1796065116;
    ASSERT_EQ_INT(QS_TOKEN1_E_EXPIRED, qs_auth1_verify(c, &p, t, strlen(t), &a2));
    /* Another set of keys in use: verified again, not taken from the cache. */
    p.now = NOW;
    ASSERT_EQ_INT(QS_TOKEN1_OK, qs_auth1_verify(c, &p, t, strlen(t), &a));
    ASSERT_EQ_INT(QS_TOKEN1_OK, qs_auth1_verify(c, &p, t, strlen(t), &a2));
    ASSERT(a == a2);
    p.keys_serial = 7;
    ASSERT_EQ_INT(QS_TOKEN1_OK, qs_auth1_verify(c, &p, t, strlen(t), &a2));
    ASSERT(a2 != a);
    /* Without a cache the caller owns the claims. */
    p.now = NOW;
    qs_token1_claims *own;
    ASSERT_EQ_INT(QS_TOKEN1_OK,
                  qs_auth1_verify(NULL, &p, t, strlen(t), (const qs_token1_claims **)&own));
    qs_token1_claims_free(own);
    free(own);
    qs_token1_cache_free(c);
    qs_jwt_key_free(k);
    qs_weburl_free(&base);
    free(t);
}
