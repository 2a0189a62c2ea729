/* SPDX-License-Identifier: MIT
 * test_demo.c - the demo endpoint's pure parts: content types by extension as Go's mime
 * package answers, sniffing as Go's http.DetectContentType does, cookies as Go writes them.
 */
#include "demo.h"
#include "harness.h"

static const char *type_of(const char *path)
{
    return qs_demo_type_by_extension(path, strlen(path));
}

TEST(types_by_extension)
{
    ASSERT_EQ_STR("application/ld+json", type_of("/.well-known/mercure/ui/demo/books/1.jsonld"));
    ASSERT_EQ_STR("application/json", type_of("/x/a.json"));
    ASSERT_EQ_STR("application/json", type_of("/x/a.JSON")); /* Go retries in lower case */
    ASSERT_EQ_STR("text/html; charset=utf-8", type_of("a.html"));
    ASSERT_EQ_STR("text/javascript; charset=utf-8", type_of("/a.b.js"));
    ASSERT_EQ_STR("image/vnd.microsoft.icon", type_of("/favicon.ico"));
    ASSERT(type_of("/x/noext") == NULL);
    ASSERT(type_of("/x.json/noext") == NULL); /* the last element's extension only */
    ASSERT(type_of("/x/a.") == NULL);
    ASSERT(type_of("/x/a.unknown") == NULL);
    ASSERT(type_of("") == NULL);
}

TEST(sniffing)
{
    struct {
        const char *body, *type;
    } cases[] = {
        {"<!DOCTYPE html><p>", "text/html; charset=utf-8"},
        {" \n<html>", "text/html; charset=utf-8"},
        {"<p>x</p>", "text/html; charset=utf-8"},
        {"<b ", "text/html; charset=utf-8"},
        {"<!-- c -->", "text/html; charset=utf-8"},
        {"<bx>", "text/plain; charset=utf-8"}, /* <B must end the tag */
        {"<?xml version=\"1.0\"?>", "text/xml; charset=utf-8"},
        {"%PDF-1.4", "application/pdf"},
        {"\xEF\xBB\xBFtext", "text/plain; charset=utf-8"},
        {"{\"a\": 1}", "text/plain; charset=utf-8"},
        {"plain text\n", "text/plain; charset=utf-8"},
        {"bin\x01"
         "ary",
         "application/octet-stream"},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++)
        ASSERT_EQ_STR(cases[i].type, qs_demo_sniff(cases[i].body, strlen(cases[i].body)));
    /* Only the first 512 bytes are looked at. */
    char big[600];
    memset(big, 'a', sizeof(big));
    big[550] = '\x01';
    ASSERT_EQ_STR("text/plain; charset=utf-8", qs_demo_sniff(big, sizeof(big)));
}

static void cookie(const char *value, bool http_only, const char *want)
{
    qs_buf b = QS_BUF_INIT;
    qs_demo_cookie(&b, "mercureAuthorization", value, strlen(value), http_only);
    ASSERT_EQ_STR(want, qs_buf_cstr(&b));
    qs_buf_free(&b);
}

TEST(cookies)
{
    cookie("a.b.c", false,
           "mercureAuthorization=a.b.c; Path=/.well-known/mercure; SameSite=Strict");
    cookie("a.b.c", true,
           "mercureAuthorization=a.b.c; Path=/.well-known/mercure; HttpOnly; SameSite=Strict");
    cookie("", false,
           "mercureAuthorization=; Path=/.well-known/mercure; Expires=Thu, 01 Jan 1970 00:00:00 "
           "GMT; SameSite=Strict");
    cookie("x,y", false,
           "mercureAuthorization=\"x,y\"; Path=/.well-known/mercure; SameSite=Strict");
    cookie("a\"b;c\\d\x7f\n", false,
           "mercureAuthorization=abcd; Path=/.well-known/mercure; SameSite=Strict");
}
