/* SPDX-License-Identifier: MIT
 * test_weburl.c - WHATWG URL parsing into the parts URL Pattern matches, and the component
 * canonicalizers. Expected values are what the WHATWG URL standard (and the reference's
 * parser) gives.
 */
#include "harness.h"
#include "weburl.h"

static void parts(const char *base, const char *in, const char *expect[QS_WEBURL_PARTS])
{
    qs_weburl b, u;
    const qs_weburl *bp = NULL;
    if (base) {
        ASSERT(qs_weburl_parse(base, strlen(base), NULL, &b) == 0);
        bp = &b;
    }
    if (qs_weburl_parse(in, strlen(in), bp, &u) != 0)
        qs_test_fail(__FILE__, __LINE__, "%s does not parse", in);
    for (int i = 0; i < QS_WEBURL_PARTS; i++) {
        qs_slice s = qs_weburl_get(&u, (enum qs_weburl_part)i);
        if (strlen(expect[i]) != s.n || memcmp(expect[i], s.p, s.n) != 0)
            qs_test_fail(__FILE__, __LINE__, "%s part %d: expected \"%s\", got \"%.*s\"", in, i,
                         expect[i], (int)s.n, s.p);
    }
    qs_weburl_free(&u);
    if (bp)
        qs_weburl_free(&b);
}

TEST(absolute_urls)
{
    parts(
        NULL, "HTTPS://User:P%40ss@EXAMPLE.com:443/a/./b/../c?q=1 2#f g",
        (const char *[]){"https", "User", "P%40ss", "example.com", "", "/a/c", "q=1%202", "f%20g"});
    parts(NULL, "http://0x7f.0.0.1:8080",
          (const char *[]){"http", "", "", "127.0.0.1", "8080", "/", "", ""});
    parts(NULL, "http://[0:0:0:0:0:0:0:1]/",
          (const char *[]){"http", "", "", "[::1]", "", "/", "", ""});
    parts(NULL, "urn:isbn:0451450523",
          (const char *[]){"urn", "", "", "", "", "isbn:0451450523", "", ""});
    parts(NULL, "https://h/\xc3\xa9?\xc3\xa9#\xc3\xa9",
          (const char *[]){"https", "", "", "h", "", "/%C3%A9", "%C3%A9", "%C3%A9"});
    parts(NULL, "https://h/'x'?'y'",
          (const char *[]){"https", "", "", "h", "", "/'x'", "%27y%27", ""});
    parts(NULL, "foo://H/'x'?'y'", (const char *[]){"foo", "", "", "H", "", "/'x'", "'y'", ""});
    parts(NULL, "  https://h/a\tb\n  ", (const char *[]){"https", "", "", "h", "", "/ab", "", ""});
    parts(NULL, "https://h/\xff", (const char *[]){"https", "", "", "h", "", "/%EF%BF%BD", "", ""});
    parts(NULL, "file:///C|/x", (const char *[]){"file", "", "", "", "", "/C:/x", "", ""});
}

TEST(relative_urls)
{
    const char *base = "https://hub.example.com/.well-known/mercure";
    parts(base, "/books/1",
          (const char *[]){"https", "", "", "hub.example.com", "", "/books/1", "", ""});
    parts(base, "books/1",
          (const char *[]){"https", "", "", "hub.example.com", "", "/.well-known/books/1", "", ""});
    parts(base, "//other/x", (const char *[]){"https", "", "", "other", "", "/x", "", ""});
    parts(
        base, "?q",
        (const char *[]){"https", "", "", "hub.example.com", "", "/.well-known/mercure", "q", ""});
    parts(base, "../../../x",
          (const char *[]){"https", "", "", "hub.example.com", "", "/x", "", ""});
}

TEST(unparsable)
{
    const char *bad[] = {"",
                         "relative/without/base",
                         "https://",
                         "https://h:65536/",
                         "https://h:x/",
                         "https://a b/",
                         "http://[::1/",
                         ("https://b\xc3\xbc"
                          "cher/"),
                         "https://256.256.256.256/",
                         "https://@/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        qs_weburl u;
        if (qs_weburl_parse(bad[i], strlen(bad[i]), NULL, &u) == 0)
            qs_test_fail(__FILE__, __LINE__, "\"%s\" should not parse", bad[i]);
    }
}

static const char *canon(int (*fn)(const char *, size_t, qs_buf *), const char *s, char *out)
{
    qs_buf b = QS_BUF_INIT;
    int rc = fn(s, strlen(s), &b);
    snprintf(out, 256, "%s%.*s", rc == 0 ? "" : "ERR:", (int)b.len, b.p ? b.p : "");
    qs_buf_free(&b);
    return out;
}

static int host_special(const char *s, size_t n, qs_buf *b)
{
    return qs_weburl_canon_hostname(s, n, true, b);
}

TEST(canonicalizers)
{
    char o[256];
    ASSERT_EQ_STR("https", canon(qs_weburl_canon_protocol, "HTTPS", o));
    ASSERT_EQ_STR("ERR:", canon(qs_weburl_canon_protocol, "1http", o));
    ASSERT_EQ_STR("a%20b%40", canon(qs_weburl_canon_userinfo, "a b@", o));
    ASSERT_EQ_STR("example.com", canon(host_special, "EXAMPLE.com", o));
    ASSERT_EQ_STR("ERR:", canon(host_special, "bad:host", o));
    ASSERT_EQ_STR("80", canon(qs_weburl_canon_port, "0080", o));
    ASSERT_EQ_STR("ERR:", canon(qs_weburl_canon_port, "x80", o));
    ASSERT_EQ_STR("/b", canon(qs_weburl_canon_pathname, "/a/../b", o));
    ASSERT_EQ_STR(".json", canon(qs_weburl_canon_pathname, ".json", o));
    ASSERT_EQ_STR("/%3F%23x%20y", canon(qs_weburl_canon_pathname, "/?#x y", o));
    ASSERT_EQ_STR("a b%7F", canon(qs_weburl_canon_opaque_pathname, "a b\x7f?c", o));
    ASSERT_EQ_STR("a=%22b%22%23", canon(qs_weburl_canon_search, "a=\"b\"#", o));
    ASSERT_EQ_STR("%60x%60", canon(qs_weburl_canon_hash, "`x`", o));
}
