/* SPDX-License-Identifier: MIT
 * test_http2_request.c - gathering an HTTP/2 request's header fields.
 */
#include "harness.h"
#include "http2_request.h"

#include <stdlib.h>

static void add(qs_http2_request *r, const char *name, const char *value)
{
    qs_http2_request_add(r, name, strlen(name), value, strlen(value));
}

TEST(parts_of_a_request)
{
    qs_http2_request r;
    qs_http2_request_init(&r, 65536);
    add(&r, ":method", "GET");
    add(&r, ":scheme", "https");
    add(&r, ":authority", "example.com");
    add(&r, ":path", "/.well-known/mercure?topic=a&topic=b");
    add(&r, "cookie", "a=1");
    add(&r, "cookie", "mercureAuthorization=t");
    add(&r, "last-event-id", "x");
    qs_http2_request_parts p;
    const char *why = NULL;
    ASSERT_EQ_INT(0, qs_http2_request_finish(&r, &p, &why));
    ASSERT(qs_slice_eq(p.method, "GET"));
    ASSERT(qs_slice_eq(p.path, "/.well-known/mercure"));
    ASSERT(qs_slice_eq(p.query, "topic=a&topic=b"));
    ASSERT(qs_slice_eq(p.target, "/.well-known/mercure?topic=a&topic=b"));
    ASSERT_EQ_INT(3, p.n_headers); /* pseudo-headers are not fields */
    ASSERT_EQ_INT(2, qs_headers_count(p.headers, p.n_headers, "Cookie"));
    ASSERT(qs_slice_eq(qs_headers_find(p.headers, p.n_headers, "Last-Event-ID")->value, "x"));
    free(p.headers);
    qs_http2_request_free(&r);
}

TEST(a_path_without_a_query)
{
    qs_http2_request r;
    qs_http2_request_init(&r, 65536);
    add(&r, ":method", "POST");
    add(&r, ":path", "/x");
    qs_http2_request_parts p;
    const char *why = NULL;
    ASSERT_EQ_INT(0, qs_http2_request_finish(&r, &p, &why));
    ASSERT(qs_slice_eq(p.path, "/x"));
    ASSERT_EQ_INT(0, p.query.n);
    free(p.headers);
    qs_http2_request_free(&r);
}

TEST(malformed_requests_are_refused)
{
    const char *cases[][2] = {{":path", "/x"}, {":method", "GET"}};
    for (size_t i = 0; i < 2; i++) {
        qs_http2_request r;
        qs_http2_request_init(&r, 65536);
        add(&r, cases[i][0], cases[i][1]);
        qs_http2_request_parts p;
        const char *why = NULL;
        ASSERT_EQ_INT(-1, qs_http2_request_finish(&r, &p, &why));
        ASSERT(why != NULL);
        free(p.headers);
        qs_http2_request_free(&r);
    }
    qs_http2_request r;
    qs_http2_request_init(&r, 65536);
    add(&r, ":method", "GET");
    add(&r, ":path", "relative");
    qs_http2_request_parts p;
    const char *why = NULL;
    ASSERT_EQ_INT(-1, qs_http2_request_finish(&r, &p, &why));
    ASSERT_EQ_STR("invalid :path", why);
    free(p.headers);
    qs_http2_request_free(&r);
}

TEST(the_header_list_is_bounded_as_http2_counts_it)
{
    qs_http2_request r;
    qs_http2_request_init(&r, 100);
    ASSERT(qs_http2_request_add(&r, "a", 1, "12345678", 8)); /* 41 */
    ASSERT(qs_http2_request_add(&r, "b", 1, "12345678", 8)); /* 82 */
    ASSERT(!r.too_large);
    ASSERT(!qs_http2_request_add(&r, "c", 1, "12345678", 8)); /* 123 > 100 */
    ASSERT(r.too_large);
    ASSERT_EQ_INT(2, r.n);
    qs_http2_request_free(&r);
}
