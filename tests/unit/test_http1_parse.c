/* SPDX-License-Identifier: MIT
 * test_http1_parse.c - request-head parser and chunked decoder: vectors for every framing rule,
 * smuggling cases, limits, and properties that must hold however the input is split.
 */
#include "harness.h"
#include "http1_parse.h"

#include <stdlib.h>

#define ASSERT_SLICE(expected, slice)                                                              \
    ASSERT_EQ_MEM((expected), strlen(expected), (slice).p, (slice).n)

static qs_http1_head req;

static void check_incremental(const char *s, size_t len, size_t max_head);

static enum qs_http1_status parse_n(const char *s, size_t n, size_t max_head, const char **err)
{
    qs_http1_parser p = {0};
    *err = NULL;
    enum qs_http1_status st = qs_http1_parse_head(&p, s, n, max_head, &req, err);
    if (st != QS_HTTP1_OK && st != QS_HTTP1_AGAIN)
        ASSERT(*err != NULL && (*err)[0] != '\0');
    return st;
}

static enum qs_http1_status parse(const char *s)
{
    const char *err;
    return parse_n(s, strlen(s), 65536, &err);
}

TEST(simple_get)
{
    const char *s = "GET /.well-known/mercure?topic=a&topic=b HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "Accept: text/event-stream\r\n"
                    "\r\n";
    ASSERT_EQ_INT(QS_HTTP1_OK, parse(s));
    ASSERT_SLICE("GET", req.method);
    ASSERT_SLICE("/.well-known/mercure?topic=a&topic=b", req.target);
    ASSERT_SLICE("/.well-known/mercure", req.path);
    ASSERT_SLICE("topic=a&topic=b", req.query);
    ASSERT_EQ_INT(1, req.minor_version);
    ASSERT_EQ_INT(2, req.n_headers);
    ASSERT_SLICE("Host", req.headers[0].name);
    ASSERT_SLICE("example.com", req.headers[0].value);
    ASSERT_SLICE("Accept", req.headers[1].name);
    ASSERT_SLICE("text/event-stream", req.headers[1].value);
    ASSERT_EQ_INT(strlen(s), req.head_len);
    ASSERT(req.keep_alive);
    ASSERT(!req.chunked);
    ASSERT(!req.has_content_length);
    ASSERT(!req.expect_continue);
    /* Slices point into the caller's buffer. */
    ASSERT(req.method.p == s);
    ASSERT(req.headers[0].value.p > s && req.headers[0].value.p < s + strlen(s));
}

TEST(post_with_body_after_head)
{
    const char *s = "POST /.well-known/mercure HTTP/1.1\r\nHost: h\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: 11\r\n\r\ntopic=a&x=1";
    ASSERT_EQ_INT(QS_HTTP1_OK, parse(s));
    ASSERT(req.has_content_length);
    ASSERT_EQ_INT(11, req.content_length);
    ASSERT_EQ_INT(strlen(s) - 11, req.head_len);
    ASSERT_SLICE("", req.query);
}

TEST(header_values_trimmed)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHost:h\r\nA: \t x  y \t \r\nB:\r\n"
                                     "C:   \r\nD: caf\xc3\xa9\r\nE:\tt\tt\r\n\r\n"));
    ASSERT_EQ_INT(6, req.n_headers);
    ASSERT_SLICE("h", req.headers[0].value);
    ASSERT_SLICE("x  y", req.headers[1].value);
    ASSERT_SLICE("", req.headers[2].value);
    ASSERT_SLICE("", req.headers[3].value);
    ASSERT_SLICE("caf\xc3\xa9", req.headers[4].value);
    ASSERT_SLICE("t\tt", req.headers[5].value);
}

TEST(find_and_count_headers)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHost: h\r\ncookie: a=1\r\nX: 1\r\n"
                                     "COOKIE: b=2\r\n\r\n"));
    const qs_header *h = qs_headers_find(req.headers, req.n_headers, "Cookie");
    ASSERT(h != NULL);
    ASSERT_SLICE("a=1", h->value);
    ASSERT_EQ_INT(2, qs_headers_count(req.headers, req.n_headers, "cookie"));
    ASSERT_EQ_INT(1, qs_headers_count(req.headers, req.n_headers, "x"));
    ASSERT_EQ_INT(0, qs_headers_count(req.headers, req.n_headers, "Authorization"));
    ASSERT(qs_headers_find(req.headers, req.n_headers, "Authorization") == NULL);
    ASSERT(qs_headers_find(req.headers, req.n_headers, "Cooki") == NULL);
}

TEST(query_split)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET /p? HTTP/1.0\r\n\r\n"));
    ASSERT_SLICE("/p", req.path);
    ASSERT_SLICE("", req.query);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET /p?x?y=/z HTTP/1.0\r\n\r\n"));
    ASSERT_SLICE("/p", req.path);
    ASSERT_SLICE("x?y=/z", req.query);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.0\r\n\r\n"));
    ASSERT_SLICE("/", req.path);
    ASSERT_SLICE("", req.query);
    ASSERT_EQ_INT(0, req.minor_version);
    ASSERT_EQ_INT(0, req.n_headers);
    /* Bytes >= 0x80 pass, as in Go. */
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET /caf\xc3\xa9?q=\xff HTTP/1.0\r\n\r\n"));
    ASSERT_SLICE("/caf\xc3\xa9", req.path);
    ASSERT_SLICE("q=\xff", req.query);
}

TEST(asterisk_form)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_SLICE("*", req.target);
    ASSERT_SLICE("*", req.path);
    ASSERT_SLICE("", req.query);
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("OPTIONS ** HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n"));
}

TEST(absolute_form)
{
    ASSERT_EQ_INT(
        QS_HTTP1_OK,
        parse("GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"));
    ASSERT_SLICE("http://example.com:8080/a/b?x=1", req.target);
    ASSERT_SLICE("/a/b", req.path);
    ASSERT_SLICE("x=1", req.query);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET https://h HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_SLICE("", req.path);
    ASSERT_SLICE("", req.query);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET HTTP://h?x HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_SLICE("", req.path);
    ASSERT_SLICE("x", req.query);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET web+x.y-z://u@h/p HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_SLICE("/p", req.path);
}

TEST(invalid_targets)
{
    static const char *const bad[] = {
        "GET foo HTTP/1.1\r\nHost: h\r\n\r\n",        "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n",    "GET http:x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET 1http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", "GET ://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET ?x HTTP/1.1\r\nHost: h\r\n\r\n",         "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /a\001b HTTP/1.1\r\nHost: h\r\n\r\n",    "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",      "GET  HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        if (parse(bad[i]) != QS_HTTP1_E_BAD_REQUEST)
            qs_test_fail(__FILE__, __LINE__, "accepted target in case %zu", i);
    }
    const char *err;
    const char nul[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse_n(nul, sizeof(nul) - 1, 1000, &err));
}

TEST(methods)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_SLICE("M-SEARCH", req.method);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("get / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_SLICE("get", req.method);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("!#$%&'*+-.^_`|~09azAZ / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("G\xc3\x89T / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse(" / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET /\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / \r\nHost: h\r\n\r\n"));
}

TEST(request_line_spacing)
{
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",  "GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
        " GET / HTTP/1.1\r\nHost: h\r\n\r\n",  "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",  "GET /\tHTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\t\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        if (parse(bad[i]) != QS_HTTP1_E_BAD_REQUEST)
            qs_test_fail(__FILE__, __LINE__, "accepted request line in case %zu", i);
    }
}

TEST(versions)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.0\r\n\r\n"));
    ASSERT_EQ_INT(0, req.minor_version);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(1, req.minor_version);

    static const char *const unsupported[] = {"HTTP/2.0", "HTTP/1.2", "HTTP/0.9",
                                              "HTTP/3.0", "HTTP/9.9", "HTTP/1.9"};
    for (size_t i = 0; i < QS_ARRAY_LEN(unsupported); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "GET / %s\r\nHost: h\r\n\r\n", unsupported[i]);
        if (parse(buf) != QS_HTTP1_E_VERSION)
            qs_test_fail(__FILE__, __LINE__, "%s not refused with 505", unsupported[i]);
    }
    static const char *const garbage[] = {"HTTP/1",   "HTTP/1.10", "http/1.1", "HTTP/1.1x",
                                          "HTTP/a.b", "HTTP/11",   "HTTP/1,1", "HTTPS/1.1",
                                          "HTTP/2",   "1.1",       "HTTP/-.1", "HTTP/ 1.1"};
    for (size_t i = 0; i < QS_ARRAY_LEN(garbage); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "GET / %s\r\nHost: h\r\n\r\n", garbage[i]);
        if (parse(buf) != QS_HTTP1_E_BAD_REQUEST)
            qs_test_fail(__FILE__, __LINE__, "%s not refused with 400", garbage[i]);
    }
    ASSERT_EQ_INT(QS_HTTP1_E_VERSION, parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
}

TEST(bare_lf_line_endings)
{
    const char *s = "GET /x HTTP/1.1\nHost: h\nA: 1\r\nB: 2\n\nbody";
    ASSERT_EQ_INT(QS_HTTP1_OK, parse(s));
    ASSERT_EQ_INT(3, req.n_headers);
    ASSERT_SLICE("1", req.headers[1].value);
    ASSERT_SLICE("2", req.headers[2].value);
    ASSERT_EQ_INT(strlen(s) - 4, req.head_len);
    /* An LF followed by CRLF also ends the head. */
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.0\n\r\n"));
    ASSERT_EQ_INT(17, req.head_len);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.0\r\n\n"));
    ASSERT_EQ_INT(17, req.head_len);
}

TEST(bare_cr_rejected)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\rHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX\r: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: y\r\r\n\r\n",
        "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n",
        "\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        if (parse(bad[i]) != QS_HTTP1_E_BAD_REQUEST)
            qs_test_fail(__FILE__, __LINE__, "accepted bare CR in case %zu", i);
    }
}

TEST(bare_cr_rejected_before_head_ends)
{
    const char *err;
    const char *s = "GET / HTTP/1.1\r\nX: a\rb";
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse_n(s, strlen(s), 1000, &err));
    ASSERT_EQ_STR("bare CR in request head", err);
    /* A CR at the end may still be followed by LF. */
    ASSERT_EQ_INT(QS_HTTP1_AGAIN, parse_n(s, strlen(s) - 1, 1000, &err));
    /* Past max_head the size limit wins, however the bytes arrived. */
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, parse_n(s, strlen(s), 20, &err));
    check_incremental(s, strlen(s), 1000);
}

TEST(obs_fold_rejected)
{
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST,
                  parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\n Host: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.0\r\n \r\n\r\n"));
    const char *err;
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n";
    parse_n(s, strlen(s), 1000, &err);
    ASSERT_EQ_STR("obsolete line folding", err);
}

TEST(header_name_rules)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX(Y): 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX Y: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX/Y: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\xc3\xa9: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\"X\": 1\r\n\r\n",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        if (parse(bad[i]) != QS_HTTP1_E_BAD_REQUEST)
            qs_test_fail(__FILE__, __LINE__, "accepted header name in case %zu", i);
    }
    const char *err;
    const char *s = "GET / HTTP/1.1\r\nHost : h\r\n\r\n";
    parse_n(s, strlen(s), 1000, &err);
    ASSERT_EQ_STR("invalid header name", err);
    ASSERT_EQ_INT(QS_HTTP1_OK,
                  parse("GET / HTTP/1.1\r\nHost: h\r\nX-A_b.c~!#$%&'*+^`|: 1\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHost: h\r\nX::y\r\n\r\n"));
    ASSERT_SLICE(":y", req.headers[1].value);
}

TEST(header_value_rules)
{
    const char *err;
    static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse_n(nul, sizeof(nul) - 1, 1000, &err));
    ASSERT_EQ_STR("invalid header value", err);
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[0m\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHost: h\r\nX: \x80\xff ~!\r\n\r\n"));
}

TEST(leading_empty_line)
{
    const char *s = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    ASSERT_EQ_INT(QS_HTTP1_OK, parse(s));
    ASSERT_SLICE("GET", req.method);
    ASSERT_EQ_INT(strlen(s), req.head_len);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse(" \r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    /* A lone leading CRLF is an incomplete head, not an error. */
    const char *err;
    ASSERT_EQ_INT(QS_HTTP1_AGAIN, parse_n("\r\n", 2, 1000, &err));
}

static size_t build_with_headers(char *buf, size_t cap, int n_extra)
{
    size_t n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < n_extra; i++)
        n += (size_t)snprintf(buf + n, cap - n, "X-%d: %d\r\n", i, i);
    n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    return n;
}

TEST(header_count_limit)
{
    static char buf[8192];
    const char *err;
    size_t n = build_with_headers(buf, sizeof(buf), QS_HTTP1_MAX_HEADERS - 1);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse_n(buf, n, sizeof(buf), &err));
    ASSERT_EQ_INT(QS_HTTP1_MAX_HEADERS, req.n_headers);
    ASSERT_SLICE("98", req.headers[QS_HTTP1_MAX_HEADERS - 1].value);
    n = build_with_headers(buf, sizeof(buf), QS_HTTP1_MAX_HEADERS);
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, parse_n(buf, n, sizeof(buf), &err));
    ASSERT_EQ_STR("too many headers", err);
}

TEST(head_size_limit)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\n\r\nBODY";
    size_t head = strlen(s) - 4;
    const char *err;
    /* Exactly max_head bytes of head is fine, even with more bytes buffered after it. */
    ASSERT_EQ_INT(QS_HTTP1_OK, parse_n(s, strlen(s), head, &err));
    ASSERT_EQ_INT(head, req.head_len);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse_n(s, head, head, &err));
    /* One byte over. */
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, parse_n(s, strlen(s), head - 1, &err));
    ASSERT_EQ_STR("request head too large", err);
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, parse_n(s, head, head - 1, &err));
    /* Incomplete: too large as soon as max_head bytes arrived without the end. */
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, parse_n(s, head - 1, head - 1, &err));
    ASSERT_EQ_INT(QS_HTTP1_AGAIN, parse_n(s, head - 1, head, &err));
    ASSERT_EQ_INT(QS_HTTP1_AGAIN, parse_n(s, 0, head, &err));
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, parse_n(s, 0, 0, &err));
    /* Bare-LF terminator exactly at the limit. */
    const char *lf = "GET / HTTP/1.0\n\n";
    ASSERT_EQ_INT(QS_HTTP1_OK, parse_n(lf, strlen(lf), strlen(lf), &err));
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, parse_n(lf, strlen(lf), strlen(lf) - 1, &err));
}

/* Feeds s one byte at a time into one parser: AGAIN until the head is complete, then the same
 * result as a one-shot parse. */
static void check_incremental(const char *s, size_t len, size_t max_head)
{
    static qs_http1_head one;
    const char *err1 = NULL, *err2 = NULL;
    qs_http1_parser p = {0};
    enum qs_http1_status st1 = qs_http1_parse_head(&p, s, len, max_head, &one, &err1);
    qs_http1_parser_reset(&p);
    enum qs_http1_status st2 = QS_HTTP1_AGAIN;
    size_t k = 0;
    for (size_t n = 0; n <= len && st2 == QS_HTTP1_AGAIN; n++) {
        k = n;
        st2 = qs_http1_parse_head(&p, s, n, max_head, &req, &err2);
        /* The resume point never trails the end by more than a partial terminator. */
        if (st2 == QS_HTTP1_AGAIN)
            ASSERT(p.scanned + 2 >= n);
    }
    ASSERT_EQ_INT(st1, st2);
    if (st1 == QS_HTTP1_OK) {
        ASSERT_EQ_INT(one.head_len, req.head_len);
        ASSERT_EQ_INT(k, req.head_len);
        ASSERT_EQ_INT(one.n_headers, req.n_headers);
        ASSERT_EQ_INT(one.content_length, req.content_length);
        ASSERT_EQ_INT(one.keep_alive, req.keep_alive);
        ASSERT(one.method.p == req.method.p && one.path.n == req.path.n);
    } else if (st1 != QS_HTTP1_AGAIN) {
        ASSERT_EQ_STR(err1, err2);
    }
}

TEST(incremental_one_byte_at_a_time)
{
    static const char *const heads[] = {
        "GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        "\r\nPOST / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
        "GET / HTTP/1.0\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "\r\n\r\n",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(heads); i++)
        check_incremental(heads[i], strlen(heads[i]), 4096);
    /* Against a limit, too. */
    check_incremental(heads[0], strlen(heads[0]), 30);
    check_incremental(heads[0], strlen(heads[0]), 62);
}

TEST(pipelined_requests)
{
    const char *s = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                    "GET /c HTTP/1.1\nHost: h\n\n";
    size_t len = strlen(s), off = 0;
    const char *err;
    ASSERT_EQ_INT(QS_HTTP1_OK, parse_n(s, len, 4096, &err));
    ASSERT_SLICE("/a", req.path);
    off = req.head_len + req.content_length;
    ASSERT_EQ_INT(QS_HTTP1_OK, parse_n(s + off, len - off, 4096, &err));
    ASSERT_SLICE("/b", req.path);
    ASSERT(req.method.p == s + off);
    off += req.head_len;
    ASSERT_EQ_INT(QS_HTTP1_OK, parse_n(s + off, len - off, 4096, &err));
    ASSERT_SLICE("/c", req.path);
    ASSERT_EQ_INT(len, off + req.head_len);
}

static bool keep_alive_of(const char *version, const char *conn_headers)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "GET / %s\r\nHost: h\r\n%s\r\n", version, conn_headers);
    ASSERT_EQ_INT(QS_HTTP1_OK, parse(buf));
    return req.keep_alive;
}

TEST(keep_alive_matrix)
{
    ASSERT(keep_alive_of("HTTP/1.1", ""));
    ASSERT(!keep_alive_of("HTTP/1.1", "Connection: close\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.1", "Connection: CLOSE\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.1", "Connection: keep-alive, Close\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.1", "Connection: upgrade,close\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.1", "Connection: upgrade\r\nConnection: close\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.1", "Connection: , \t close \t ,\r\n"));
    ASSERT(keep_alive_of("HTTP/1.1", "Connection: keep-alive\r\n"));
    ASSERT(keep_alive_of("HTTP/1.1", "Connection: upgrade\r\n"));
    ASSERT(keep_alive_of("HTTP/1.1", "Connection: closed\r\n"));
    ASSERT(keep_alive_of("HTTP/1.1", "Connection: x-close\r\n"));
    ASSERT(keep_alive_of("HTTP/1.1", "Connection: clo se\r\n"));
    ASSERT(keep_alive_of("HTTP/1.1", "X-Connection: close\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.0", ""));
    ASSERT(keep_alive_of("HTTP/1.0", "Connection: keep-alive\r\n"));
    ASSERT(keep_alive_of("HTTP/1.0", "Connection: Keep-Alive\r\n"));
    ASSERT(keep_alive_of("HTTP/1.0", "Connection: foo, KEEP-ALIVE\r\n"));
    ASSERT(keep_alive_of("HTTP/1.0", "Connection: foo\r\nConnection: keep-alive\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.0", "Connection: keep-alive, close\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.0", "Connection: close\r\nConnection: keep-alive\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.0", "Connection: keep-alives\r\n"));
    ASSERT(!keep_alive_of("HTTP/1.0", "Keep-Alive: timeout=5\r\n"));
}

TEST(host_rules)
{
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.0\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.0\r\nHost: a\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHOST: [::1]:8080\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHost:\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_OK, parse("GET / HTTP/1.1\r\nHost: a-b_c.d~e%25!$&'()*+,;=:1\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, parse("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"));
}

static enum qs_http1_status with_headers(const char *version, const char *headers)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "POST / %s\r\nHost: h\r\n%s\r\n", version, headers);
    return parse(buf);
}

TEST(content_length_rules)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "Content-Length: 0\r\n"));
    ASSERT(req.has_content_length);
    ASSERT_EQ_INT(0, req.content_length);
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "content-length:  007 \r\n"));
    ASSERT_EQ_INT(7, req.content_length);
    ASSERT_EQ_INT(QS_HTTP1_OK,
                  with_headers("HTTP/1.1", "Content-Length: 18446744073709551615\r\n"));
    ASSERT(req.content_length == UINT64_MAX);
    ASSERT_EQ_INT(QS_HTTP1_OK,
                  with_headers("HTTP/1.0", "Content-Length: 5\r\nContent-Length: 5\r\n"));
    ASSERT_EQ_INT(5, req.content_length);

    static const char *const bad[] = {
        "Content-Length: 18446744073709551616\r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +1\r\n",
        "Content-Length: 0x10\r\n",
        "Content-Length: 1 2\r\n",
        "Content-Length: 1.0\r\n",
        "Content-Length:\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5,5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\nContent-Length: 05\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\nContent-Length: 50\r\n",
        "Content-Length: 5\r\nContent-Length: x\r\n",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        if (with_headers("HTTP/1.1", bad[i]) != QS_HTTP1_E_BAD_REQUEST)
            qs_test_fail(__FILE__, __LINE__, "accepted Content-Length case %zu", i);
    }
    const char *err;
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    parse_n(s, strlen(s), 1000, &err);
    ASSERT_EQ_STR("conflicting Content-Length", err);
}

TEST(transfer_encoding_rules)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "Transfer-Encoding: chunked\r\n"));
    ASSERT(req.chunked);
    ASSERT(!req.has_content_length);
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "transfer-encoding: Chunked \r\n"));
    ASSERT(req.chunked);
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "Transfer-Encoding: CHUNKED\r\n"));

    static const char *const unsupported[] = {
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked;q=1\r\n",
        "Transfer-Encoding:\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(unsupported); i++) {
        if (with_headers("HTTP/1.1", unsupported[i]) != QS_HTTP1_E_NOT_IMPLEMENTED)
            qs_test_fail(__FILE__, __LINE__, "TE case %zu not refused with 501", i);
    }
    const char *err;
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n";
    parse_n(s, strlen(s), 1000, &err);
    ASSERT_EQ_STR("unsupported Transfer-Encoding", err);

    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST,
                  with_headers("HTTP/1.0", "Transfer-Encoding: chunked\r\n"));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, with_headers("HTTP/1.0", "Transfer-Encoding: gzip\r\n"));
}

/* Requests that two parsers could frame differently: all must be refused. */
TEST(smuggling_vectors)
{
    static const struct {
        const char *headers;
        enum qs_http1_status want;
    } cases[] = {
        {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Content-Length: 5\r\nTransfer-Encoding: gzip\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Content-Length: 5\r\nContent-Length: 7\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Content-Length: 5, 7\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer-Encoding: chunked, identity\r\n", QS_HTTP1_E_NOT_IMPLEMENTED},
        {"Transfer-Encoding : chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer-Encoding\t: chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Content-Length : 5\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"X: y\r\n Transfer-Encoding: chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer-Encoding: x\r\n chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer-Encoding: chunked\rX: y\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"X: y\rTransfer-Encoding: chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer-Encoding: \013chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer-Encoding: \014chunked\r\n", QS_HTTP1_E_BAD_REQUEST},
        {"Transfer_Encoding: chunked\r\nContent-Length: 3\r\n", QS_HTTP1_OK},
        {"Content-Length: 5\r\nContent-Length: +5\r\n", QS_HTTP1_E_BAD_REQUEST},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        enum qs_http1_status st = with_headers("HTTP/1.1", cases[i].headers);
        if (st != cases[i].want)
            qs_test_fail(__FILE__, __LINE__, "case %zu: want %d, got %d", i, cases[i].want, st);
    }
}

TEST(expect_continue)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "Expect: 100-continue\r\n"));
    ASSERT(req.expect_continue);
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "expect:  100-Continue \r\n"));
    ASSERT(req.expect_continue);
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "Expect: 100-continue, foo\r\n"));
    ASSERT(!req.expect_continue);
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", "Expect: foo\r\n"));
    ASSERT(!req.expect_continue);
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.1", ""));
    ASSERT(!req.expect_continue);
    /* RFC 9110: ignored for HTTP/1.0 clients. */
    ASSERT_EQ_INT(QS_HTTP1_OK, with_headers("HTTP/1.0", "Expect: 100-continue\r\n"));
    ASSERT(!req.expect_continue);
}

TEST(parser_resets_after_result)
{
    const char *a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    qs_http1_parser p = {0};
    const char *err;
    ASSERT_EQ_INT(QS_HTTP1_AGAIN, qs_http1_parse_head(&p, a, 20, 100, &req, &err));
    ASSERT(p.scanned > 0);
    ASSERT_EQ_INT(QS_HTTP1_OK, qs_http1_parse_head(&p, a, strlen(a), 100, &req, &err));
    ASSERT_EQ_INT(0, p.scanned);
}

/* ---- chunked decoder ---- */

static enum qs_http1_status decode_all(const char *in, size_t len, size_t max_body, qs_buf *out,
                                       size_t *consumed, const char **err)
{
    qs_http1_chunked d;
    qs_http1_chunked_reset(&d);
    *err = NULL;
    enum qs_http1_status st = qs_http1_parse_chunked(&d, in, len, consumed, out, max_body, err);
    if (st != QS_HTTP1_OK && st != QS_HTTP1_AGAIN)
        ASSERT(*err != NULL);
    return st;
}

static void expect_body(const char *in, const char *want)
{
    qs_buf out = QS_BUF_INIT;
    size_t consumed;
    const char *err;
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_all(in, strlen(in), 1 << 20, &out, &consumed, &err));
    ASSERT_EQ_INT(strlen(in), consumed);
    ASSERT_EQ_MEM(want, strlen(want), out.p, out.len);
    qs_buf_free(&out);
}

static enum qs_http1_status decode_status(const char *in, size_t max_body)
{
    qs_buf out = QS_BUF_INIT;
    size_t consumed;
    const char *err;
    enum qs_http1_status st = decode_all(in, strlen(in), max_body, &out, &consumed, &err);
    qs_buf_free(&out);
    return st;
}

TEST(chunked_basic)
{
    expect_body("5\r\nhello\r\n0\r\n\r\n", "hello");
    expect_body("0\r\n\r\n", "");
    expect_body("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    expect_body("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
    expect_body("0005\r\nhello\r\n000\r\n\r\n", "hello");
    expect_body("00000000000000000000001\r\nx\r\n0\r\n\r\n", "x");
    /* Data is binary. */
    qs_buf out = QS_BUF_INIT;
    size_t consumed;
    const char *err;
    static const char nul[] = "3\r\n\0\r\n\r\n0\r\n\r\n";
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_all(nul, sizeof(nul) - 1, 100, &out, &consumed, &err));
    ASSERT_EQ_MEM("\0\r\n", 3, out.p, out.len);
    qs_buf_free(&out);
}

TEST(chunked_extensions)
{
    expect_body("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
    expect_body("5;a;b=\"q;\\\"x\"\r\nhello\r\n0\r\n\r\n", "hello");
    expect_body("5 ;a\r\nhello\r\n0\t; a = b\r\n\r\n", "hello");
    expect_body("5;\r\nhello\r\n0\r\n\r\n", "hello");
    expect_body("5;\xc3\xa9\r\nhello\r\n0\r\n\r\n", "hello");
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5 \r\nhello\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5 x\r\nhello\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5;a\x01\r\nhello\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5;a\x7f\r\nhello\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5;a\rb\r\nhello\r\n0\r\n\r\n", 100));
}

TEST(chunked_trailers)
{
    expect_body("5\r\nhello\r\n0\r\nX-Checksum: 1\r\nY: 2\r\n\r\n", "hello");
    expect_body("0\r\nX: 1\n\n", "");
    /* Bytes after the body belong to the next request and are not consumed. */
    const char *s = "3\r\nabc\r\n0\r\nT: x\r\n\r\nGET / HTTP/1.1\r\n";
    qs_buf out = QS_BUF_INIT;
    size_t consumed;
    const char *err;
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_all(s, strlen(s), 100, &out, &consumed, &err));
    ASSERT_EQ_INT(strlen("3\r\nabc\r\n0\r\nT: x\r\n\r\n"), consumed);
    ASSERT_EQ_MEM("abc", 3, out.p, out.len);
    qs_buf_free(&out);
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("0\r\nX: 1\rY\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("0\r\n\r\r\n", 100));
}

/* A bare LF ending a chunk-size line is refused (request smuggling, CVE-2025-22871);
 * trailer lines may still end with a bare LF, as Go's textproto reads them. */
TEST(chunked_bare_lf)
{
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\nhello\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5;x\nhello\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\r\nhello\r\n0\n\n", 100));
    expect_body("5\r\nhello\r\n0\r\n\n", "hello");
    expect_body("5;x\r\nhello\r\n0\r\nT: 1\n\n", "hello");
}

TEST(chunked_size_errors)
{
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status(";x\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("x\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("-1\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("+1\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("0x5\r\nhello\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status(" 5\r\nhello\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\rX", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\r\r\n", 100));
    /* 2^64 does not fit. */
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("10000000000000000\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("FFFFFFFFFFFFFFFFF\r\n", 100));
    /* 2^64 - 1 fits but exceeds any body limit. */
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, decode_status("FFFFFFFFFFFFFFFF\r\n", 1u << 30));
    /* A truncated body is not an error, only incomplete. */
    const char *err;
    size_t consumed;
    qs_buf out = QS_BUF_INIT;
    ASSERT_EQ_INT(QS_HTTP1_AGAIN, decode_all("5\r\nhel", 6, 100, &out, &consumed, &err));
    ASSERT_EQ_INT(6, consumed);
    ASSERT_EQ_MEM("hel", 3, out.p, out.len);
    qs_buf_free(&out);
}

TEST(chunked_data_must_end_with_crlf)
{
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\r\nhelloX\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\r\nhello\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\r\nhello\r0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\r\nhello world\r\n0\r\n\r\n", 100));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_status("5\r\nhello\r\r\n0\r\n\r\n", 100));
    const char *err;
    qs_buf out = QS_BUF_INIT;
    decode_all("5\r\nhelloX", 9, 100, &out, &(size_t){0}, &err);
    qs_buf_free(&out);
    ASSERT_EQ_STR("missing CRLF after chunk data", err);
}

TEST(chunked_max_body)
{
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_status("5\r\nhello\r\n0\r\n\r\n", 5));
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, decode_status("5\r\nhello\r\n0\r\n\r\n", 4));
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_status("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 5));
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, decode_status("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 5));
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_status("0\r\n\r\n", 0));
    /* Refused when the size line ends, before any data arrives. */
    const char *err;
    size_t consumed;
    qs_buf out = QS_BUF_INIT;
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, decode_all("400\r\n", 5, 1023, &out, &consumed, &err));
    ASSERT_EQ_INT(0, out.len);
    ASSERT_EQ_STR("request body too large", err);
    /* What is already in out counts against the limit. */
    qs_buf_append(&out, "xyz", 3);
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE,
                  decode_all("3\r\nabc\r\n0\r\n\r\n", 13, 5, &out, &consumed, &err));
    qs_buf_free(&out);
}

TEST(chunked_line_limits)
{
    static char buf[16384];
    qs_buf out = QS_BUF_INIT;
    size_t consumed;
    const char *err;
    /* A size line of exactly 4096 bytes passes, 4097 does not. */
    buf[0] = '1';
    buf[1] = ';';
    memset(buf + 2, 'e', 4094);
    strcpy(buf + 4096, "\r\nx\r\n0\r\n\r\n");
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_all(buf, strlen(buf), 100, &out, &consumed, &err));
    memset(buf + 2, 'e', 4095);
    strcpy(buf + 4097, "\r\nx\r\n0\r\n\r\n");
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_all(buf, strlen(buf), 100, &out, &consumed, &err));
    /* Same for a trailer line. */
    strcpy(buf, "0\r\n");
    memset(buf + 3, 't', 4096);
    strcpy(buf + 3 + 4096, "\r\n\r\n");
    ASSERT_EQ_INT(QS_HTTP1_OK, decode_all(buf, strlen(buf), 100, &out, &consumed, &err));
    memset(buf + 3, 't', 4097);
    strcpy(buf + 3 + 4097, "\r\n\r\n");
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST, decode_all(buf, strlen(buf), 100, &out, &consumed, &err));
    /* Many short trailer lines are bounded as a whole. */
    qs_buf big = QS_BUF_INIT;
    qs_buf_append_str(&big, "0\r\n");
    for (int i = 0; i < 20000; i++)
        qs_buf_append_str(&big, "T: 12\r\n");
    qs_buf_append_str(&big, "\r\n");
    ASSERT_EQ_INT(QS_HTTP1_E_TOO_LARGE, decode_all(big.p, big.len, 100, &out, &consumed, &err));
    qs_buf_free(&big);
    qs_buf_free(&out);
}

TEST(chunked_done_and_failed_are_sticky)
{
    qs_http1_chunked d;
    qs_http1_chunked_reset(&d);
    qs_buf out = QS_BUF_INIT;
    size_t consumed;
    const char *err = NULL;
    ASSERT_EQ_INT(QS_HTTP1_OK,
                  qs_http1_parse_chunked(&d, "0\r\n\r\nX", 6, &consumed, &out, 10, &err));
    ASSERT_EQ_INT(5, consumed);
    ASSERT_EQ_INT(QS_HTTP1_OK, qs_http1_parse_chunked(&d, "X", 1, &consumed, &out, 10, &err));
    ASSERT_EQ_INT(0, consumed);
    qs_http1_chunked_reset(&d);
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST,
                  qs_http1_parse_chunked(&d, "Z", 1, &consumed, &out, 10, &err));
    ASSERT_EQ_INT(QS_HTTP1_E_BAD_REQUEST,
                  qs_http1_parse_chunked(&d, "0\r\n\r\n", 5, &consumed, &out, 10, &err));
    /* Empty input is just "need more". */
    qs_http1_chunked_reset(&d);
    ASSERT_EQ_INT(QS_HTTP1_AGAIN, qs_http1_parse_chunked(&d, "", 0, &consumed, &out, 10, &err));
    ASSERT_EQ_INT(0, consumed);
    qs_buf_free(&out);
}

/* xorshift64*: deterministic pseudo-random numbers for the property tests. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Builds a random, mostly valid chunked body (with the decoded data in *want), sometimes
 * followed by extra bytes; mutate flips a few bytes to cover error paths. */
static void random_chunked(qs_buf *in, qs_buf *want, bool mutate)
{
    int chunks = (int)(rnd() % 6);
    for (int c = 0; c < chunks; c++) {
        size_t n = 1 + rnd() % 40;
        qs_buf_appendf(in, rnd() % 2 ? "%zx" : "%03zX", n);
        if (rnd() % 3 == 0)
            qs_buf_append_str(in, rnd() % 2 ? ";ext=1" : " ; a=\"b\"");
        qs_buf_append_str(in, "\r\n"); /* chunk-size lines need CRLF */
        for (size_t i = 0; i < n; i++) {
            char ch = (char)(rnd() & 0xff);
            qs_buf_append_char(in, ch);
            qs_buf_append_char(want, ch);
        }
        qs_buf_append_str(in, "\r\n");
    }
    qs_buf_append_str(in, "0\r\n");
    int trailers = (int)(rnd() % 3);
    for (int t = 0; t < trailers; t++)
        qs_buf_append_str(in, rnd() % 2 ? "X-T: 1\r\n" : "Y: z\n");
    qs_buf_append_str(in, rnd() % 4 ? "\r\n" : "\n");
    if (rnd() % 2)
        qs_buf_append_str(in, "GET / HTTP/1.1\r\n");
    if (mutate) {
        int flips = 1 + (int)(rnd() % 3);
        for (int f = 0; f < flips; f++) {
            static const char pick[] = "\r\n;0aF \tzx";
            in->p[rnd() % in->len] = pick[rnd() % (sizeof(pick) - 1)];
        }
    }
}

/* Feeds in[] in pieces cut at `cuts` and returns the final status, consumed total and data. */
static enum qs_http1_status decode_split(const qs_buf *in, const size_t *cuts, size_t ncuts,
                                         size_t max_body, qs_buf *out, size_t *total)
{
    qs_http1_chunked d;
    qs_http1_chunked_reset(&d);
    const char *err = NULL;
    size_t pos = 0;
    enum qs_http1_status st = QS_HTTP1_AGAIN;
    for (size_t c = 0; c <= ncuts && st == QS_HTTP1_AGAIN; c++) {
        size_t end = c < ncuts ? cuts[c] : in->len;
        size_t consumed = 0;
        st = qs_http1_parse_chunked(&d, in->p + pos, end - pos, &consumed, out, max_body, &err);
        /* "Need more" always means every byte offered was used. */
        if (st == QS_HTTP1_AGAIN)
            ASSERT_EQ_INT(end - pos, consumed);
        ASSERT(consumed <= end - pos);
        pos += consumed;
    }
    *total = pos;
    return st;
}

static void check_splits(const qs_buf *in, size_t max_body)
{
    qs_buf whole = QS_BUF_INIT, part = QS_BUF_INIT;
    size_t total_whole, total_part;
    enum qs_http1_status st = decode_split(in, NULL, 0, max_body, &whole, &total_whole);

    /* Every byte on its own. */
    size_t *cuts = malloc((in->len + 1) * sizeof(*cuts));
    for (size_t i = 0; i < in->len; i++)
        cuts[i] = i + 1;
    ASSERT_EQ_INT(st, decode_split(in, cuts, in->len, max_body, &part, &total_part));
    ASSERT_EQ_INT(total_whole, total_part);
    ASSERT_EQ_MEM(whole.p, whole.len, part.p, part.len);

    /* Random cut points. */
    for (int round = 0; round < 8; round++) {
        size_t ncuts = in->len ? rnd() % (in->len + 1) : 0, prev = 0;
        for (size_t i = 0; i < ncuts; i++) {
            prev += rnd() % (in->len - prev + 1);
            cuts[i] = prev;
        }
        part.len = 0;
        ASSERT_EQ_INT(st, decode_split(in, cuts, ncuts, max_body, &part, &total_part));
        ASSERT_EQ_INT(total_whole, total_part);
        ASSERT_EQ_MEM(whole.p, whole.len, part.p, part.len);
    }
    free(cuts);
    qs_buf_free(&whole);
    qs_buf_free(&part);
}

TEST(chunked_split_feeding_valid)
{
    for (int iter = 0; iter < 400; iter++) {
        qs_buf in = QS_BUF_INIT, want = QS_BUF_INIT, out = QS_BUF_INIT;
        random_chunked(&in, &want, false);
        size_t consumed;
        const char *err;
        ASSERT_EQ_INT(QS_HTTP1_OK, decode_all(in.p, in.len, 1 << 20, &out, &consumed, &err));
        ASSERT_EQ_MEM(want.p, want.len, out.p, out.len);
        check_splits(&in, 1 << 20);
        /* A limit just below the body size is hit however the input is split. */
        if (want.len > 0)
            check_splits(&in, want.len - 1);
        qs_buf_free(&in);
        qs_buf_free(&want);
        qs_buf_free(&out);
    }
}

TEST(chunked_split_feeding_mutated)
{
    for (int iter = 0; iter < 1500; iter++) {
        qs_buf in = QS_BUF_INIT, want = QS_BUF_INIT;
        random_chunked(&in, &want, true);
        check_splits(&in, 64);
        qs_buf_free(&in);
        qs_buf_free(&want);
    }
}

/* The head parser, too, must not depend on how the bytes arrive. */
TEST(head_split_feeding_mutated)
{
    static const char base[] = "POST /a?b=c HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n"
                               "Connection: keep-alive, close\r\nX: \t y \r\n\r\nabc";
    char buf[sizeof(base)];
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, base, sizeof(base));
        int flips = (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) {
            static const char pick[] = "\r\n :\t\x01/\x80?";
            buf[rnd() % (sizeof(base) - 1)] = pick[rnd() % (sizeof(pick) - 1)];
        }
        check_incremental(buf, sizeof(base) - 1, 40 + rnd() % 80);
    }
}
