/* SPDX-License-Identifier: MIT
 * test_token1.c - protocol 1.0 access tokens, checked as the reference hub checks them, and
 * the RFC 6750 challenges and RFC 9728 document it writes. The tokens are those of the
 * recorded exchanges with the reference hub (same claims, same key), and the expected header
 * values and document bytes are the reference's.
 */
#include "harness.h"
#include "token1.h"

#define KEY "!ChangeThisMercureHubJWTSecretKey!"
#define AUD "http://127.0.0.1:38084/.well-known/mercure"
#define NOW 1796061526 /* ten seconds after the tokens were issued */

static qs_jwt_key *key(void)
{
    return qs_jwt_key_new_private(QS_JWT_HS256, KEY, strlen(KEY), NULL);
}

/* Signs claims (JSON text) with the header typ (NULL: none). */
static char *mint(const char *typ, const char *claims_json)
{
    json_error_t e;
    json_t *c = json_loads(claims_json, 0, &e);
    if (!c)
        qs_test_fail(__FILE__, __LINE__, "bad test JSON: %s", e.text);
    qs_jwt_key *k = key();
    char *t = qs_jwt_sign_typ(k, c, typ, NULL);
    qs_jwt_key_free(k);
    json_decref(c);
    return t;
}

#define DETAIL(actions, topics)                                                                    \
    "{\"type\":\"https://mercure.rocks/authorization-detail\",\"actions\":" actions                \
    ",\"topics\":" topics "}"
#define CLAIMS(details)                                                                            \
    "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\",\"exp\":1796065116,"                       \
    "\"authorization_details\":[" details "]}"
#define ALL                                                                                        \
    CLAIMS(DETAIL("[\"publish\"]", "[{\"match\":\"*\"}]") "," DETAIL("[\"subscribe\"]",            \
                                                                     "[{\"match\":\"*\"}]"))
#define BOOKS                                                                                      \
    CLAIMS(DETAIL(                                                                                 \
        "[\"publish\"]",                                                                           \
        "[{\"match\":\"https://example.com/books/"                                                 \
        ":id\",\"match_type\":\"urlpattern\"}]") "," DETAIL("[\"subscribe\"]",                     \
                                                            "[{\"match\":\"https://example.com/"   \
                                                            "books/:id\","                         \
                                                            "\"match_type\":\"urlpattern\"}]"))

static qs_weburl base;
static qs_jwt_key *hub_key;
static qs_token1_issuer issuer;

static void setup(void)
{
    if (hub_key)
        return;
    const char *b = QS_URLPATTERN_FALLBACK_BASE;
    if (qs_weburl_parse(b, strlen(b), NULL, &base) != 0)
        qs_test_fail(__FILE__, __LINE__, "base");
    hub_key = qs_jwt_key_new(QS_JWT_HS256, KEY, strlen(KEY), NULL);
    issuer = (qs_token1_issuer){"https://localhost", hub_key, hub_key, false};
}

static enum qs_token1_status verify(const char *typ, const char *claims, bool publish,
                                    qs_token1_claims *out)
{
    setup();
    char *t = mint(typ, claims);
    qs_token1_params p = {&issuer, 1, publish, AUD, NOW, &base, 0};
    enum qs_token1_status st = qs_token1_verify(&p, t, strlen(t), out);
    free(t);
    return st;
}

static enum qs_token1_status status_of(const char *typ, const char *claims)
{
    qs_token1_claims c;
    enum qs_token1_status st = verify(typ, claims, true, &c);
    qs_token1_claims_free(&c);
    return st;
}

TEST(the_recorded_tokens)
{
    qs_token1_claims c;
    ASSERT_EQ_INT(QS_TOKEN1_OK, verify("at+jwt", ALL, true, &c));
    ASSERT(qs_token1_grants(&c, true, "https://example.com/books/1", 27));
    ASSERT(qs_token1_grants(&c, false, "anything", 8));
    ASSERT_EQ_STR("https://localhost", c.issuer);
    qs_token1_claims_free(&c);

    ASSERT_EQ_INT(QS_TOKEN1_OK, verify("at+jwt", BOOKS, true, &c));
    ASSERT(qs_token1_grants(&c, true, "https://example.com/books/1", 27));
    ASSERT(!qs_token1_grants(&c, true, "https://example.com/authors/1", 29));        /* 403 */
    ASSERT(!qs_token1_grants(&c, true, "https://example.com/users/42/books/1", 36)); /* 403 */
    ASSERT(qs_token1_grants(&c, false, "https://example.com/books/2", 27));
    qs_token1_claims_free(&c);

    /* Another audience, a 0.x token, a typ of JWT: 401 invalid_token. */
    ASSERT_EQ_INT(QS_TOKEN1_E_AUDIENCE,
                  status_of("at+jwt", "{\"aud\":\"https://other.example/.well-known/mercure\","
                                      "\"iss\":\"https://localhost\",\"exp\":1796065116}"));
    ASSERT_EQ_INT(QS_TOKEN1_E_ISSUER,
                  status_of(NULL, "{\"mercure\":{\"publish\":[\"*\"],\"subscribe\":[\"*\"]}}"));
    ASSERT_EQ_INT(QS_TOKEN1_E_TYP, status_of("JWT", ALL));
    ASSERT_EQ_INT(QS_TOKEN1_OK, status_of("application/AT+JWT", ALL));
}

TEST(registered_claims)
{
    ASSERT_EQ_INT(QS_TOKEN1_E_NO_EXP,
                  status_of("at+jwt", "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\"}"));
    ASSERT_EQ_INT(QS_TOKEN1_E_EXPIRED,
                  status_of("at+jwt", "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\","
                                      "\"exp\":1796061526}"));
    ASSERT_EQ_INT(QS_TOKEN1_E_NOT_YET_VALID,
                  status_of("at+jwt", "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\","
                                      "\"exp\":1796065116,\"nbf\":1796061527}"));
    /* aud as an array, exp as a string holding a number, names in another case: Go's
     * decoding accepts all three. */
    ASSERT_EQ_INT(QS_TOKEN1_OK, status_of("at+jwt", "{\"aud\":[\"x\",\"" AUD "\"],"
                                                    "\"ISS\":\"https://localhost\","
                                                    "\"exp\":\"1796065116\"}"));
    ASSERT_EQ_INT(
        QS_TOKEN1_E_MALFORMED,
        status_of("at+jwt", "{\"aud\":[1],\"iss\":\"https://localhost\",\"exp\":1796065116}"));
    ASSERT_EQ_INT(QS_TOKEN1_E_MALFORMED,
                  status_of("at+jwt", "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\","
                                      "\"exp\":\" 1796065116\"}"));
    ASSERT_EQ_INT(QS_TOKEN1_E_ISSUER,
                  status_of("at+jwt", "{\"aud\":\"" AUD "\",\"iss\":\"https://LOCALHOST\","
                                      "\"exp\":1796065116}"));
    /* The legacy claim is still decoded: malformed, it refuses the token. */
    ASSERT_EQ_INT(QS_TOKEN1_E_MALFORMED,
                  status_of("at+jwt", "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\","
                                      "\"exp\":1796065116,\"mercure\":{\"publish\":[null]}}"));
}

TEST(keys_and_roles)
{
    setup();
    char *t = mint("at+jwt", ALL);
    qs_token1_claims c;
    qs_token1_issuer only_sub = {"https://localhost", NULL, hub_key, false};
    qs_token1_params p = {&only_sub, 1, true, AUD, NOW, &base, 0};
    ASSERT_EQ_INT(QS_TOKEN1_E_ROLE, qs_token1_verify(&p, t, strlen(t), &c));
    p.publish = false;
    ASSERT_EQ_INT(QS_TOKEN1_OK, qs_token1_verify(&p, t, strlen(t), &c));
    qs_token1_claims_free(&c);
    qs_jwt_key *other = qs_jwt_key_new(QS_JWT_HS256, "another secret", 14, NULL);
    qs_jwt_key *hs384 = qs_jwt_key_new(QS_JWT_HS384, KEY, strlen(KEY), NULL);
    qs_token1_issuer two[] = {{"https://a.example", hs384, hs384, false},
                              {"https://localhost", other, other, false}};
    qs_token1_params q = {two, 2, true, AUD, NOW, &base, 0};
    ASSERT_EQ_INT(QS_TOKEN1_E_SIGNATURE, qs_token1_verify(&q, t, strlen(t), &c));
    two[1].publisher = hs384;
    ASSERT_EQ_INT(QS_TOKEN1_E_ALG, qs_token1_verify(&q, t, strlen(t), &c));
    t[strlen(t) - 1] ^= 1;
    ASSERT(qs_token1_verify(&p, t, strlen(t), &c) != QS_TOKEN1_OK);
    ASSERT_EQ_INT(QS_TOKEN1_E_MALFORMED, qs_token1_verify(&p, "a.b", 3, &c));
    qs_jwt_key_free(other);
    qs_jwt_key_free(hs384);
    free(t);
}

TEST(authorization_details)
{
    /* Each of these refuses the whole token. */
    const char *bad[] = {
        CLAIMS(DETAIL("[]", "[{\"match\":\"*\"}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[]")),
        CLAIMS(DETAIL("[\"publish\"]", "[\"https://example.com/\"]")),
        CLAIMS(DETAIL("[\"publish\"]", "[{\"match_type\":\"exact\"}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[{\"match\":null}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[{\"match\":\"\"}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[{\"match\":\"x\",\"match_type\":\"regex\"}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[{\"match\":\"x\",\"match_type\":\"URLPattern\"}]")),
        CLAIMS(DETAIL("[\"publish\"]",
                      "[{\"match\":\"https://e.com/(\",\"match_type\":\"urlpattern\"}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[{\"match\":\"a\\u0007b\"}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[{\"match\":\"a\\u200bb\"}]")),
        CLAIMS(DETAIL("[\"publish\"]", "[null]")),
        CLAIMS(DETAIL("\"publish\"", "[{\"match\":\"*\"}]")),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum qs_token1_status st = status_of("at+jwt", bad[i]);
        if (st != QS_TOKEN1_E_DETAILS && st != QS_TOKEN1_E_MALFORMED)
            qs_test_fail(__FILE__, __LINE__, "case %zu accepted (%d)", i, st);
    }
    /* Other types are ignored, unknown actions too, null actions decode to "". */
    qs_token1_claims c;
    ASSERT_EQ_INT(QS_TOKEN1_OK,
                  verify("at+jwt",
                         CLAIMS("{\"type\":\"payment\",\"topics\":\"whatever\"},null," DETAIL(
                             "[\"read\",null,\"subscribe\"]",
                             "[{\"match\":\"/books/:id\",\"match_type\":\"urlpattern\"}]")),
                         false, &c));
    ASSERT_EQ_INT(1, c.n_details);
    ASSERT(!c.details[0].publish && c.details[0].subscribe);
    ASSERT(qs_token1_grants(&c, false, "/books/7", 8));
    ASSERT(!qs_token1_grants(&c, true, "/books/7", 8));
    qs_token1_claims_free(&c);

    /* 100 details and 100 topics at most. */
    char *many = malloc(64 * 1024);
    strcpy(many, "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\",\"exp\":1796065116,"
                 "\"authorization_details\":[");
    for (int i = 0; i < 101; i++)
        strcat(many, i ? "," DETAIL("[\"publish\"]", "[{\"match\":\"a\"}]")
                       : DETAIL("[\"publish\"]", "[{\"match\":\"a\"}]"));
    strcat(many, "]}");
    ASSERT_EQ_INT(QS_TOKEN1_E_DETAILS, status_of("at+jwt", many));
    strcpy(many, "{\"aud\":\"" AUD "\",\"iss\":\"https://localhost\",\"exp\":1796065116,"
                 "\"authorization_details\":[{\"type\":\"https://mercure.rocks/"
                 "authorization-detail\",\"actions\":[\"publish\"],\"topics\":[");
    for (int i = 0; i < 101; i++)
        strcat(many, i ? ",{\"match\":\"a\"}" : "{\"match\":\"a\"}");
    strcat(many, "]}]}");
    ASSERT_EQ_INT(QS_TOKEN1_E_DETAILS, status_of("at+jwt", many));
    free(many);
}

TEST(subscribe_payload)
{
    qs_token1_claims c;
    ASSERT_EQ_INT(QS_TOKEN1_OK,
                  verify("at+jwt",
                         CLAIMS("{\"type\":\"https://mercure.rocks/authorization-detail\","
                                "\"actions\":[\"subscribe\"],\"topics\":[{\"match\":\"/a\"}],"
                                "\"payload\":{\"n\":1}},"
                                "{\"type\":\"https://mercure.rocks/authorization-detail\","
                                "\"actions\":[\"subscribe\"],\"topics\":[{\"match\":\"*\"}],"
                                "\"payload\":{\"n\":2}}"),
                         false, &c));
    bool found;
    json_t *p = qs_token1_subscribe_payload(&c, "/a", 2, &found);
    ASSERT(found && json_integer_value(json_object_get(p, "n")) == 1);
    p = qs_token1_subscribe_payload(&c, "/b", 2, &found);
    ASSERT(found && json_integer_value(json_object_get(p, "n")) == 2);
    qs_token1_claims_free(&c);
}

TEST(shape)
{
    char *t = mint("at+jwt", ALL);
    ASSERT(qs_token1_is_access_token(t, strlen(t)));
    free(t);
    t = mint(NULL, "{\"mercure\":{\"publish\":[\"*\"]}}");
    ASSERT(!qs_token1_is_access_token(t, strlen(t)));
    free(t);
    ASSERT(!qs_token1_is_access_token("garbage", 7));
}

TEST(challenges_and_metadata)
{
    const char *md =
        "http://127.0.0.1:38084/.well-known/oauth-protected-resource/.well-known/mercure";
    char *h = qs_bearer_challenge(QS_BEARER_CHALLENGE, md);
    ASSERT_EQ_STR("Bearer resource_metadata=\"http://127.0.0.1:38084/.well-known/"
                  "oauth-protected-resource/.well-known/mercure\"",
                  h);
    free(h);
    h = qs_bearer_challenge(QS_BEARER_INSUFFICIENT_SCOPE, md);
    ASSERT_EQ_STR("Bearer error=\"insufficient_scope\", resource_metadata=\"http://127.0.0.1:38084/"
                  ".well-known/oauth-protected-resource/.well-known/mercure\"",
                  h);
    free(h);
    h = qs_bearer_challenge(QS_BEARER_INVALID_TOKEN, NULL);
    ASSERT_EQ_STR("Bearer error=\"invalid_token\"", h);
    free(h);
    ASSERT_EQ_INT(400, qs_bearer_status(QS_BEARER_INVALID_REQUEST));
    ASSERT_EQ_INT(403, qs_bearer_status(QS_BEARER_INSUFFICIENT_SCOPE));
    ASSERT_EQ_INT(401, qs_bearer_status(QS_BEARER_INVALID_TOKEN));

    char *id, *url;
    qs_token1_identity(NULL, "http", "127.0.0.1:38084", &id, &url);
    ASSERT_EQ_STR(AUD, id);
    ASSERT_EQ_STR(md, url);
    free(id);
    free(url);
    qs_token1_identity("https://localhost/.well-known/mercure", "http", "127.0.0.1:38081", &id,
                       &url);
    ASSERT_EQ_STR("https://localhost/.well-known/mercure", id);
    ASSERT_EQ_STR("https://localhost/.well-known/oauth-protected-resource/.well-known/mercure",
                  url);
    free(id);
    free(url);

    qs_buf b = QS_BUF_INIT;
    qs_resource_metadata m = {AUD, NULL, 0, "__Secure-mercure_access_token", true};
    qs_resource_metadata_json(&m, &b);
    const char *want =
        "{\"resource\":\"http://127.0.0.1:38084/.well-known/mercure\",\"bearer_methods_supported\":"
        "[\"header\"],\"authorization_details_types_supported\":[\"https://mercure.rocks/"
        "authorization-detail\"],\"mercure_cookie\":\"__Secure-mercure_access_token\","
        "\"mercure_subscriptions\":true}\n";
    ASSERT_EQ_MEM(want, strlen(want), b.p, b.len);
    ASSERT_EQ_INT(261, b.len); /* the recorded Content-Length */
    qs_buf_free(&b);
    const char *servers[] = {"https://auth.example"};
    qs_resource_metadata m2 = {AUD, servers, 1, NULL, false};
    qs_resource_metadata_json(&m2, &b);
    ASSERT(strstr(qs_buf_cstr(&b), "\"authorization_servers\":[\"https://auth.example\"],") &&
           !strstr(b.p, "mercure_cookie") && !strstr(b.p, "mercure_subscriptions"));
    qs_buf_free(&b);
}
