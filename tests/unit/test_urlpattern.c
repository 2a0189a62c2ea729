/* SPDX-License-Identifier: MIT
 * test_urlpattern.c - URL Pattern selectors: parsing, resolution against the hub's base URL,
 * matching, limits.
 *
 * The cases restate, in our own words, the WHATWG test data cases that apply to a hub (string
 * patterns matched against string inputs, with a base URL) and the reference hub's own
 * cases; every expected answer is what the reference library answers.
 */
#include "harness.h"
#include "urlpattern.h"

#define FALLBACK QS_URLPATTERN_FALLBACK_BASE
#define HUB "https://hub.example.com/.well-known/mercure"

/* -1: the pattern is refused; 0 / 1: the topic does not / does match. */
static int up(const char *base, const char *pattern, const char *topic)
{
    qs_weburl b;
    if (qs_weburl_parse(base, strlen(base), NULL, &b) != 0)
        qs_test_fail(__FILE__, __LINE__, "base %s does not parse", base);
    const char *err = NULL;
    qs_urlpattern *p = qs_urlpattern_compile(pattern, strlen(pattern), &b, 0, NULL, &err);
    int r = -1;
    if (p) {
        r = qs_urlpattern_match(p, topic, strlen(topic));
        qs_urlpattern_free(p);
    } else if (!err || !*err) {
        qs_test_fail(__FILE__, __LINE__, "no reason for refusing %s", pattern);
    }
    qs_weburl_free(&b);
    return r;
}

struct vec {
    const char *pattern, *topic;
    int expected;
};

static void run(const char *base, const struct vec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int got = up(base, v[i].pattern, v[i].topic);
        if (got != v[i].expected)
            qs_test_fail(__FILE__, __LINE__,
                         "base %s, pattern \"%s\", topic \"%s\": expected %d, got %d", base,
                         v[i].pattern, v[i].topic, v[i].expected, got);
    }
}

TEST(named_groups_and_wildcards)
{
    static const struct vec v[] = {
        {"https://example.com/books/:id", "https://example.com/books/1", 1},
        {"https://example.com/books/:id", "https://example.com/books/",
         0}, /* a group needs a character */
        {"https://example.com/books/:id", "https://example.com/books/1/2",
         0}, /* and stops at "/" */
        {"https://example.com/books/:id", "https://EXAMPLE.com/books/1?x#y",
         1}, /* host lower-cased; search and hash unspecified */
        {"https://example.com/books/:id", "https://example.com:443/books/1", 1}, /* default port */
        {"https://example.com/books/:id", "https://example.com:8443/books/1", 0},
        {"https://example.com/books/:id", "http://example.com/books/1", 0},
        {"https://example.com/Books/:id", "https://example.com/books/1",
         0}, /* paths keep their case */
        {"https://example.com/books/:id(\\d+)", "https://example.com/books/12", 1},
        {"https://example.com/books/:id(\\d+)", "https://example.com/books/1a", 0},
        {"https://example.com/*", "https://example.com/a/b?c=d", 1},
        {"https://example.com/*.json", "https://example.com/a/b.json", 1},
        {"https://example.com/:a/:b?", "https://example.com/x", 1},
        {"https://example.com/:a/:b?", "https://example.com/x/y", 1},
        {"https://example.com/:a/:b?", "https://example.com/x/y/z", 0},
        {"https://example.com/:a+", "https://example.com/x/y/z", 1},
        {"https://example.com/:a+", "https://example.com/", 0},
        {"https://example.com/:a*", "https://example.com/x/y", 1},
        {"https://example.com/{books}?", "https://example.com/", 1},
        {"https://example.com/{books}?", "https://example.com/books", 1},
        {"https://example.com/(foo|bar)", "https://example.com/bar", 1},
        {"https://example.com/(foo|bar)", "https://example.com/baz", 0},
        {"https://example.com/:id.json", "https://example.com/7.json", 1},
        {"https://:sub.example.com/", "https://api.example.com/", 1},
        {"https://:sub.example.com/", "https://example.com/", 0},
        {"https://*.example.com/*", "https://a.b.example.com/x", 1},
        {"*", "/at/all", 1}, /* "*" is a relative path: the base gives the rest */
        {"*", "https://anything.example/at/all", 0},
        {"https://example.com/b\xc3\xa9/:id", "https://example.com/b%C3%A9/1",
         1}, /* literal text is percent-encoded like the topic */
        {"https://example.com/b\xc3\xa9/:id", "https://example.com/b\xc3\xa9/1", 1},
        {"https://example.com/?q=:v", "https://example.com/?q=1", 1},
        {"https://example.com/#:frag", "https://example.com/#top", 1},
        {"http://example.com:80/x", "http://example.com/x", 1},
        {"https://user:pass@example.com/", "https://example.com/", 0},
    };
    run(FALLBACK, v, sizeof(v) / sizeof(v[0]));
}

TEST(relative_patterns_resolve_against_the_base)
{
    static const struct vec v[] = {
        {"/books/:id", "/books/1", 1},
        {"/books/:id", "http://mercure.invalid/books/1", 1}, /* the same URL once resolved */
        {"/books/:id", "https://example.com/books/1", 0},    /* absolute topic, relative pattern */
        {"/books/:id", "books/1", 1},                        /* relative to the base's path "/" */
        {"/books/:id", "/books/../books/3", 1},              /* dot segments are resolved */
        {"/books/:id", "/books/1?x=1#y", 1},
        {"/.well-known/mercure/subscriptions/:type/:match/:subscriber",
         "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fbooks%2F9/"
         "urn%3Auuid%3A886f7c80-f23b-4c8d-9361-3fdb38f0e65e",
         1},
        {"?q=:v", "/?q=1", 1},
        {"#frag", "/#frag", 1},
    };
    run(FALLBACK, v, sizeof(v) / sizeof(v[0]));
    static const struct vec hub[] = {
        {"/books/:id", "https://hub.example.com/books/1", 1}, /* a real base joins both worlds */
        {"/books/:id", "/books/1", 1},
        {"https://hub.example.com/books/:id", "/books/2", 1},
        {"books/:id", "https://hub.example.com/.well-known/books/1",
         1}, /* relative to the hub URL's directory */
        {"/books/:id", "http://mercure.invalid/books/1", 0},
    };
    run(HUB, hub, sizeof(hub) / sizeof(hub[0]));
}

TEST(topics_parse_as_urls)
{
    static const struct vec v[] = {
        {"https://127.0.0.1/", "https://0x7f.1/", 1}, /* IPv4 in its other spellings */
        {"https://127.0.0.1/", "https://2130706433/", 1},
        {"https://example.com/a%2Fb", "https://example.com/a%2Fb", 1},
        {"https://example.com/a/b", "https://example.com/a\\b",
         1}, /* backslash is a slash for http */
        {"https://example.com/x", "https://example.com:65536/x", 0}, /* unparsable: no match */
        {"*", "https://exa mple.com/", 0},
        {"urn\\:isbn\\:*", "urn:isbn:1", 0},
        {"https://example.com/ a", "https://example.com/%20a", 1},
    };
    run(FALLBACK, v, sizeof(v) / sizeof(v[0]));
}

TEST(invalid_patterns)
{
    const char *bad[] = {
        "https://example.com/(",            /* unclosed regexp group */
        "https://example.com/:id(",         /* the reference's "invalid topic matcher pattern" */
        "https://example.com/()",           /* an empty regexp */
        "https://example.com/(?:a)",        /* a regexp may not start with "?" */
        "https://example.com/(a(b))",       /* a nested group must start with "?" */
        "https://example.com/:id/:id",      /* a name used twice */
        "https://example.com/{a",           /* an unclosed group */
        "https://example.com/\\",           /* a trailing backslash */
        "https://example.com/(\\1)",        /* Go refuses backreferences */
        "https://exa mple.com/",            /* not a hostname */
        "http://[::1]:8080/*",              /* the reference refuses this one too */
        "https://example.com/:caf\xc3\xa9", /* non-ASCII group names are not supported */
        ("https://b\xc3\xbc"
         "cher.example/"), /* nor non-ASCII hostnames */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (up(FALLBACK, bad[i], "https://example.com/") != -1)
            qs_test_fail(__FILE__, __LINE__, "\"%s\" should be refused", bad[i]);
}

TEST(base_choice)
{
    ASSERT_EQ_STR(FALLBACK, qs_urlpattern_base_for(NULL));
    ASSERT_EQ_STR(FALLBACK, qs_urlpattern_base_for(""));
    ASSERT_EQ_STR(FALLBACK, qs_urlpattern_base_for("https://hub.example.com/"));
    ASSERT_EQ_STR(HUB, qs_urlpattern_base_for(HUB));
}

TEST(state_bound_and_costs)
{
    qs_weburl b;
    ASSERT(qs_weburl_parse(FALLBACK, strlen(FALLBACK), NULL, &b) == 0);
    const char *err = NULL;
    size_t states = 0;
    /* Only components with groups cost states: fixed text and "*" cost none. */
    qs_urlpattern *p =
        qs_urlpattern_compile("https://example.com/books/1", 27, &b, 1, &states, &err);
    ASSERT(p != NULL && qs_urlpattern_states(p) == 0 && states == 0);
    qs_urlpattern_free(p);
    const char *big = "https://example.com/:id((?:a|b){500})";
    p = qs_urlpattern_compile(big, strlen(big), &b, 1024, &states, &err);
    ASSERT(p == NULL && states > 1024 && err && strstr(err, "states"));
    p = qs_urlpattern_compile(big, strlen(big), &b, 0, &states, &err);
    ASSERT(p != NULL && qs_urlpattern_states(p) == states && states > 1024);
    ASSERT(qs_urlpattern_match(p, "https://example.com/ab", 22) == 0);
    ASSERT(qs_urlpattern_size(p) > states);
    qs_urlpattern_free(p);
    qs_weburl_free(&b);
}

TEST(one_parse_many_patterns)
{
    qs_weburl b, t;
    ASSERT(qs_weburl_parse(FALLBACK, strlen(FALLBACK), NULL, &b) == 0);
    const char *topic = "https://example.com/books/42?lang=fr";
    ASSERT(qs_weburl_parse(topic, strlen(topic), &b, &t) == 0);
    const char *pats[] = {"https://example.com/books/:id", "https://example.com/books/*",
                          "https://example.com/books/:id(\\d+)"};
    for (size_t i = 0; i < 3; i++) {
        qs_urlpattern *p = qs_urlpattern_compile(pats[i], strlen(pats[i]), &b, 0, NULL, NULL);
        ASSERT(p && qs_urlpattern_match_url(p, &t) && qs_urlpattern_match(p, topic, strlen(topic)));
        qs_urlpattern_free(p);
    }
    qs_weburl_free(&t);
    qs_weburl_free(&b);
}
