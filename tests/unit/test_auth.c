/* SPDX-License-Identifier: MIT
 * test_auth.c - token sources and their precedence, the cookie CSRF rule, origin patterns,
 * publish/receive rules, and the verified-token cache.
 */
#include "auth.h"
#include "http1_parse.h"
#include "harness.h"

static qs_jwt_key *hmac(const char *secret)
{
    const char *err = NULL;
    qs_jwt_key *k = qs_jwt_key_new_private(QS_JWT_HS256, secret, strlen(secret), &err);
    ASSERT(k != NULL);
    return k;
}

static char *token(qs_jwt_key *k, const char *claims_json)
{
    json_t *claims = json_loads(claims_json, 0, NULL);
    ASSERT(claims != NULL);
    const char *err = NULL;
    char *t = qs_jwt_sign(k, claims, &err);
    json_decref(claims);
    ASSERT(t != NULL);
    return t;
}

/* Parses a request head written as text. */
static void parse(const char *text, qs_http1_head *req)
{
    qs_http1_parser p = {0};
    const char *err = NULL;
    ASSERT_EQ_INT(QS_HTTP1_OK, qs_http1_parse_head(&p, text, strlen(text), 65536, req, &err));
}

static enum qs_auth_status authorize(qs_auth_params *ap, const char *head, qs_jwt_claims *claims)
{
    static qs_http1_head req;
    parse(head, &req);
    qs_form q = QS_FORM_INIT;
    const char *err = NULL;
    qs_form_parse(&q, req.query.p, req.query.n, 100, &err);
    const char *reason = NULL;
    enum qs_auth_status st = qs_authorize(ap, req.headers, req.n_headers, &q, claims, &reason);
    qs_form_free(&q);
    return st;
}

TEST(header_then_query_then_cookie)
{
    qs_jwt_key *k = hmac("secret");
    char *good = token(k, "{\"mercure\":{\"publish\":[\"h\"]}}");
    char head[4096];
    qs_auth_params ap = {.key = k, .cookie_name = "mercureAuthorization", .now = 1000};
    qs_jwt_claims c;
    snprintf(head, sizeof(head),
             "GET /?authorization=garbage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Cookie: mercureAuthorization=garbage\r\n\r\n",
             good);
    ASSERT_EQ_INT(QS_AUTH_OK, authorize(&ap, head, &c)); /* the header wins */
    ASSERT_EQ_STR("h", c.publish[0]);
    qs_jwt_claims_free(&c);
    snprintf(head, sizeof(head),
             "GET /?authorization=%s HTTP/1.1\r\nHost: x\r\nCookie: mercureAuthorization=bad\r\n"
             "\r\n",
             good);
    ASSERT_EQ_INT(QS_AUTH_OK, authorize(&ap, head, &c)); /* then the query parameter */
    qs_jwt_claims_free(&c);
    snprintf(head, sizeof(head),
             "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b; mercureAuthorization=%s"
             "\r\n\r\n",
             good);
    ASSERT_EQ_INT(QS_AUTH_OK, authorize(&ap, head, &c)); /* then the cookie */
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_AUTH_ANONYMOUS, authorize(&ap, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &c));
    /* A malformed header is an error, not anonymous. */
    ASSERT_EQ_INT(
        QS_AUTH_INVALID,
        authorize(&ap, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic abc\r\n\r\n", &c));
    snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: bearer %s\r\n\r\n",
             good);
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap, head, &c)); /* "Bearer " is case-sensitive */
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap,
                                             "GET /?authorization=short HTTP/1.1\r\nHost: x\r\n"
                                             "\r\n",
                                             &c));
    free(good);
    qs_jwt_key_free(k);
}

TEST(cookie_posts_need_an_allowed_origin)
{
    qs_jwt_key *k = hmac("secret");
    char *good = token(k, "{\"mercure\":{\"publish\":[\"*\"]}}");
    char *origins[] = {"https://app.example.com", "https://*.example.org"};
    qs_auth_params ap = {.key = k,
                         .cookie_name = "mercureAuthorization",
                         .is_post = true,
                         .publish_origins = origins,
                         .n_publish_origins = 2,
                         .now = 1000};
    qs_jwt_claims c;
    char head[4096];
    const char *cases[][2] = {
        {"", "3"},
        {"Origin: https://app.example.com\r\n", "1"},
        {"Origin: https://evil.example.com\r\n", "3"},
        {"Origin: https://a.example.org\r\n", "1"},
        {"Origin: https://a.b.example.org\r\n", "3"}, /* "*" is one label */
        {"Origin: https://evil.com/.example.org\r\n", "3"},
        {"Referer: https://app.example.com/page?x=1\r\n", "1"},
        {"Referer: https://user@app.example.com/page\r\n", "1"},
        {"Referer: https://other.example.com/\r\n", "3"},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        snprintf(head, sizeof(head),
                 "POST / HTTP/1.1\r\nHost: x\r\n%sCookie: mercureAuthorization=%s"
                 "\r\n\r\n",
                 cases[i][0], good);
        enum qs_auth_status st = authorize(&ap, head, &c);
        ASSERT_EQ_INT(cases[i][1][0] == '1' ? QS_AUTH_OK : QS_AUTH_INVALID, st);
        qs_jwt_claims_free(&c);
    }
    free(good);
    qs_jwt_key_free(k);
}

TEST(origin_patterns)
{
    char *list[] = {"https://a.com", "http://*.b.com"};
    ASSERT(qs_origin_allowed("https://a.com", 13, list, 2));
    ASSERT(!qs_origin_allowed("https://a.co", 12, list, 2));
    ASSERT(qs_origin_allowed("http://x.b.com", 14, list, 2));
    ASSERT(!qs_origin_allowed("http://b.com", 12, list, 2));
    char *all[] = {"*"};
    ASSERT(qs_origin_allowed("anything", 8, all, 1));
}

static bool origin_ok(const char *pattern, const char *origin, size_t len)
{
    char *list[] = {(char *)pattern};
    return qs_origin_allowed(origin, len, list, 1);
}

TEST(wildcard_stands_for_one_host_label)
{
    static const struct {
        const char *pattern, *origin;
        bool allowed;
    } cases[] = {
        {"https://*.wild.example", "https://a.wild.example", true},
        {"https://*.wild.example", "https://Z-9_x.wild.example", true},
        {"https://*.wild.example", "https://xn--bcher-kva.wild.example", true},
        /* a single label: no dot, and not empty */
        {"https://*.wild.example", "https://a.b.wild.example", false},
        {"https://*.wild.example", "https://.wild.example", false},
        {"https://*.wild.example", "https://wild.example", false},
        /* another host passed off as the label: path, port, userinfo, query, fragment */
        {"https://*.wild.example", "https://evil.com/.wild.example", false},
        {"https://*.wild.example", "https://evil/.wild.example", false},
        {"https://*.wild.example", "https://evil:1.wild.example", false},
        {"https://*.wild.example", "https://evil.com:443/.wild.example", false},
        {"https://*.wild.example", "https://user@evil.wild.example", false},
        {"https://*.wild.example", "https://evil?.wild.example", false},
        {"https://*.wild.example", "https://evil#.wild.example", false},
        {"https://*.wild.example", "https://evil%2f.wild.example", false},
        {"https://*.wild.example", "https://evil\\.wild.example", false},
        {"https://*.wild.example", "https://e vil.wild.example", false},
        /* the suffix and the prefix still have to match exactly */
        {"https://*.wild.example", "https://a.wild.example:8443", false},
        {"https://*.wild.example", "https://a.wild.example.evil.com", false},
        {"https://*.wild.example", "http://a.wild.example", false},
        {"https://*.wild.example", "https://a.wild.examplf", false},
        /* a pattern is never an origin itself */
        {"https://*.wild.example", "https://*.wild.example", false},
        /* "*" inside a label, and for a port */
        {"https://preview-*.example.com", "https://preview-42.example.com", true},
        {"https://preview-*.example.com", "https://preview-.example.com", false},
        {"https://preview-*.example.com", "https://preview-a.b.example.com", false},
        {"http://localhost:*", "http://localhost:3000", true},
        {"http://localhost:*", "http://localhost:", false},
        {"http://localhost:*", "http://localhost:3000@evil.com", false},
        {"http://localhost:*", "http://localhost:3000.evil.com", false},
        {"http://localhost:*", "http://localhost:80/x", false},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++)
        if (origin_ok(cases[i].pattern, cases[i].origin, strlen(cases[i].origin)) !=
            cases[i].allowed)
            qs_test_fail(__FILE__, __LINE__, "%s against %s: expected %s", cases[i].origin,
                         cases[i].pattern, cases[i].allowed ? "allowed" : "refused");
    /* Bytes a header value may hold but a host never does. */
    ASSERT(!origin_ok("https://*.wild.example", "https://a\0.wild.example", 23));
    ASSERT(!origin_ok("https://*.wild.example", "https://a\r.wild.example", 23));
    ASSERT(!origin_ok("https://*.wild.example", "https://\xc3\xa9.wild.example", 24));
    /* The length given is what is compared, not up to a NUL. */
    ASSERT(!origin_ok("https://*.wild.example", "https://a.wild.example.evil", 26));
    ASSERT(origin_ok("https://*.wild.example", "https://a.wild.example.evil", 22));
}

TEST(publish_and_receive_rules)
{
    qs_selector_table *t = qs_selector_table_new(100);
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, "https://example.com/books/1", 27);
    qs_update_add_topic(u, "https://example.com/alt", 23);
    char *exact[] = {"https://example.com/books/1"};
    char *tpl[] = {"https://example.com/books/{id}", "https://example.com/alt"};
    char *star[] = {"*"};
    ASSERT(!qs_can_publish(t, exact, 1, u)); /* every topic must be covered */
    ASSERT(qs_can_publish(t, tpl, 2, u));
    ASSERT(qs_can_publish(t, star, 1, u));
    qs_selector *alt = qs_selector_table_acquire(t, "https://example.com/alt", 23);
    ASSERT(qs_can_receive(t, &alt, 1, u)); /* one topic is enough to receive */
    qs_selector_table_release(t, alt);
    qs_update_unref(u);
    qs_selector_table_free(t);
}

TEST(token_cache_respects_expiry_and_keys)
{
    qs_jwt_key *k1 = hmac("one"), *k2 = hmac("two");
    char *tok = token(k1, "{\"exp\":2000,\"mercure\":{\"subscribe\":[\"s\"]}}");
    qs_token_cache *cache = qs_token_cache_new(4);
    char head[4096];
    snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             tok);
    qs_auth_params ap = {.key = k1, .cache = cache, .cookie_name = "c", .now = 1000};
    qs_jwt_claims c;
    for (int i = 0; i < 3; i++) { /* the second and third come from the cache */
        ASSERT_EQ_INT(QS_AUTH_OK, authorize(&ap, head, &c));
        ASSERT_EQ_STR("s", c.subscribe[0]);
        qs_jwt_claims_free(&c);
    }
    ap.now = 2000; /* expired: the cached entry must not be used */
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap, head, &c));
    ap.now = 1000;
    ap.key = k2; /* another key: the token's signature does not hold */
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap, head, &c));
    /* Filling the cache past its bound starts it over, and still verifies correctly. */
    ap.key = k1;
    for (int i = 0; i < 10; i++) {
        char claims[64];
        snprintf(claims, sizeof(claims), "{\"mercure\":{\"subscribe\":[\"t%d\"]}}", i);
        char *t = token(k1, claims);
        snprintf(head, sizeof(head),
                 "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", t);
        ASSERT_EQ_INT(QS_AUTH_OK, authorize(&ap, head, &c));
        qs_jwt_claims_free(&c);
        free(t);
    }
    qs_token_cache_free(cache);
    free(tok);
    qs_jwt_key_free(k1);
    qs_jwt_key_free(k2);
}

static char *kid_token(const char *secret, const char *kid, const char *claims_json)
{
    qs_jwt_key *k = hmac(secret);
    json_t *claims = json_loads(claims_json, 0, NULL);
    const char *err = NULL;
    char *t = qs_jwt_sign_kid(k, kid, claims, &err);
    json_decref(claims);
    qs_jwt_key_free(k);
    ASSERT(t != NULL);
    return t;
}

static qs_jwks *oct_set(const char *doc)
{
    char *err = NULL;
    qs_jwks *set = qs_jwks_parse(doc, strlen(doc), NULL, &err);
    ASSERT(set != NULL);
    return set;
}

TEST(key_sets_choose_by_kid_and_rotation_empties_the_cache)
{
    /* "one" and "two" in base64url. */
    qs_jwks *before = oct_set("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"b25l\"}]}");
    qs_jwks *after = oct_set("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"b\",\"k\":\"dHdv\"}]}");
    char *tok_a = kid_token("one", "a", "{\"mercure\":{\"subscribe\":[\"s\"]}}");
    char *tok_b = kid_token("two", "b", "{\"mercure\":{\"subscribe\":[\"s\"]}}");
    qs_token_cache *cache = qs_token_cache_new(16);
    bool unknown = false;
    qs_auth_params ap = {
        .jwks = before, .cache = cache, .cookie_name = "c", .now = 1000, .unknown_kid = &unknown};
    char head_a[4096], head_b[4096];
    snprintf(head_a, sizeof(head_a),
             "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok_a);
    snprintf(head_b, sizeof(head_b),
             "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok_b);
    qs_jwt_claims c;
    for (int i = 0; i < 3; i++) { /* verified once, then from the cache */
        ASSERT_EQ_INT(QS_AUTH_OK, authorize(&ap, head_a, &c));
        qs_jwt_claims_free(&c);
    }
    ASSERT(!unknown);
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap, head_b, &c)); /* b is not in the set yet */
    ASSERT(unknown);

    /* The set rotated: a is gone, b arrived. The cached entry for a's token belongs to the
     * old set's serial and is never used with the new one. */
    unknown = false;
    ap.jwks = after;
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap, head_a, &c));
    ASSERT(unknown);
    ASSERT_EQ_INT(QS_AUTH_OK, authorize(&ap, head_b, &c));
    qs_jwt_claims_free(&c);

    /* A set that is freed and replaced by one reusing its memory still gets a new serial. */
    qs_jwks_unref(before);
    qs_jwks *again = oct_set("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"dHdv\"}]}");
    ap.jwks = again; /* kid a now holds "two": the token signed with "one" must fail */
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap, head_a, &c));

    /* Neither a key nor a set: nothing verifies. */
    ap.jwks = NULL;
    ASSERT_EQ_INT(QS_AUTH_INVALID, authorize(&ap, head_b, &c));
    qs_jwks_unref(again);
    qs_jwks_unref(after);
    qs_token_cache_free(cache);
    free(tok_a);
    free(tok_b);
}
