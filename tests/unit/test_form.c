/* SPDX-License-Identifier: MIT
 * test_form.c - query/form parsing, percent-encoding and Cookie lookup against Go's behaviour.
 *
 * Expected values were produced by Go's net/url and net/http (go1.26) and pasted in.
 */
#include "form.h"
#include "harness.h"

#include <stdlib.h>

#define ASSERT_SLICE(expected, slice)                                                              \
    ASSERT_EQ_MEM((expected), strlen(expected), (slice).p, (slice).n)

struct kv {
    const char *k;
    const char *v;
};

/* Parses s and checks status, error and the stored pairs (in order). */
static void check_form(const char *s, size_t len, enum qs_form_status want_st, const char *want_err,
                       const struct kv *want, size_t n_want)
{
    qs_form f = QS_FORM_INIT;
    const char *err = NULL;
    enum qs_form_status st = qs_form_parse(&f, s, len, 1000, &err);
    if (st != want_st)
        qs_test_fail(__FILE__, __LINE__, "\"%s\": status %d, want %d", s, st, want_st);
    if (want_err)
        ASSERT_EQ_STR(want_err, err);
    else
        ASSERT(err == NULL);
    if (f.n != n_want)
        qs_test_fail(__FILE__, __LINE__, "\"%s\": %zu pairs, want %zu", s, f.n, n_want);
    for (size_t i = 0; i < n_want; i++) {
        ASSERT_EQ_MEM(want[i].k, strlen(want[i].k), f.pairs[i].key, f.pairs[i].key_len);
        ASSERT_EQ_MEM(want[i].v, strlen(want[i].v), f.pairs[i].value, f.pairs[i].value_len);
        /* Owned strings are NUL-terminated. */
        ASSERT(f.pairs[i].key[f.pairs[i].key_len] == '\0');
        ASSERT(f.pairs[i].value[f.pairs[i].value_len] == '\0');
    }
    qs_form_free(&f);
    ASSERT(f.pairs == NULL && f.n == 0);
}

#define CHECK_FORM(s, st, err, ...)                                                                \
    do {                                                                                           \
        static const struct kv want_[] = {__VA_ARGS__};                                            \
        check_form((s), strlen(s), (st), (err), want_, QS_ARRAY_LEN(want_) - 1);                   \
    } while (0)

/* The trailing {NULL, NULL} in each list only keeps the array non-empty. */
#define END                                                                                        \
    {                                                                                              \
        NULL, NULL                                                                                 \
    }
#define BAD_ESC "invalid URL escape"
#define BAD_SEMI "invalid semicolon separator in query"

TEST(form_go_vectors)
{
    CHECK_FORM("a=1&b=2", QS_FORM_OK, NULL, {"a", "1"}, {"b", "2"}, END);
    CHECK_FORM("a", QS_FORM_OK, NULL, {"a", ""}, END);
    CHECK_FORM("a=", QS_FORM_OK, NULL, {"a", ""}, END);
    CHECK_FORM("&&a=1", QS_FORM_OK, NULL, {"a", "1"}, END);
    CHECK_FORM("a=%zz&b=2", QS_FORM_E_INVALID, BAD_ESC, {"b", "2"}, END);
    CHECK_FORM("a;b=1", QS_FORM_E_INVALID, BAD_SEMI, END);
    CHECK_FORM("+%20=+%20", QS_FORM_OK, NULL, {"  ", "  "}, END);
    CHECK_FORM("%E2%82%AC=%e2%82%ac", QS_FORM_OK, NULL, {"\xe2\x82\xac", "\xe2\x82\xac"}, END);
    CHECK_FORM("a=1&a=2&a=3", QS_FORM_OK, NULL, {"a", "1"}, {"a", "2"}, {"a", "3"}, END);
    CHECK_FORM("a=1;b=2&c=3", QS_FORM_E_INVALID, BAD_SEMI, {"c", "3"}, END);
    CHECK_FORM("a=%&b=%4", QS_FORM_E_INVALID, BAD_ESC, END);
    /* A semicolon error wins over an earlier escape error, as in Go. */
    CHECK_FORM("a=%zz&c;d&e=1", QS_FORM_E_INVALID, BAD_SEMI, {"e", "1"}, END);
    CHECK_FORM("c;d&a=%zz&e=1", QS_FORM_E_INVALID, BAD_SEMI, {"e", "1"}, END);
    CHECK_FORM("=v", QS_FORM_OK, NULL, {"", "v"}, END);
    CHECK_FORM("=", QS_FORM_OK, NULL, {"", ""}, END);
    CHECK_FORM("a==b", QS_FORM_OK, NULL, {"a", "=b"}, END);
    CHECK_FORM("a=1&", QS_FORM_OK, NULL, {"a", "1"}, END);
    CHECK_FORM("&", QS_FORM_OK, NULL, END);
    CHECK_FORM("", QS_FORM_OK, NULL, END);
    CHECK_FORM("caf\xc3\xa9=\xc3\xa9t\xc3\xa9", QS_FORM_OK, NULL,
               {"caf\xc3\xa9", "\xc3\xa9t\xc3\xa9"}, END);
    CHECK_FORM("%41%4a=%4a%41", QS_FORM_OK, NULL, {"AJ", "JA"}, END);
    CHECK_FORM("x=%2", QS_FORM_E_INVALID, BAD_ESC, END);
    CHECK_FORM("x=%", QS_FORM_E_INVALID, BAD_ESC, END);
    CHECK_FORM("%zz=1&ok=1", QS_FORM_E_INVALID, BAD_ESC, {"ok", "1"}, END);
    CHECK_FORM("q=a%2Bb+c", QS_FORM_OK, NULL, {"q", "a+b c"}, END);
    CHECK_FORM("topic=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D&topic=*", QS_FORM_OK, NULL,
               {"topic", "https://example.com/books/{id}"}, {"topic", "*"}, END);
    CHECK_FORM("b=1&a=2&b=3", QS_FORM_OK, NULL, {"b", "1"}, {"a", "2"}, {"b", "3"}, END);
    CHECK_FORM("a=%20%", QS_FORM_E_INVALID, BAD_ESC, END);
    CHECK_FORM("a=%%41", QS_FORM_E_INVALID, BAD_ESC, END);
    CHECK_FORM("a=b;", QS_FORM_E_INVALID, BAD_SEMI, END);
    CHECK_FORM("a=%3B", QS_FORM_OK, NULL, {"a", ";"}, END);
    CHECK_FORM("a=%26b&c", QS_FORM_OK, NULL, {"a", "&b"}, {"c", ""}, END);
    CHECK_FORM("a=\x01\x7f\xff", QS_FORM_OK, NULL, {"a", "\x01\x7f\xff"}, END);
}

TEST(form_nul_bytes)
{
    qs_form f = QS_FORM_INIT;
    const char *err = NULL;
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, "k%00=%00v%00", 12, 10, &err));
    ASSERT_EQ_INT(1, f.n);
    ASSERT_EQ_MEM("k\0", 2, f.pairs[0].key, f.pairs[0].key_len);
    ASSERT_EQ_MEM("\0v\0", 3, f.pairs[0].value, f.pairs[0].value_len);
    /* A key with an embedded NUL is not found by its C-string prefix. */
    ASSERT(qs_form_get(&f, "k") == NULL);
    qs_form_free(&f);

    /* Raw NUL bytes in the input are plain data. */
    static const char raw[] = "a\0=b\0&c=d";
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, raw, sizeof(raw) - 1, 10, &err));
    ASSERT_EQ_INT(2, f.n);
    ASSERT_EQ_MEM("a\0", 2, f.pairs[0].key, f.pairs[0].key_len);
    ASSERT_EQ_MEM("b\0", 2, f.pairs[0].value, f.pairs[0].value_len);
    ASSERT(qs_form_get(&f, "c") != NULL);
    qs_form_free(&f);
}

TEST(form_lookup_and_append)
{
    qs_form f = QS_FORM_INIT;
    const char *err = NULL;
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, "topic=a&x=1&topic=b", 19, 10, &err));
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, "topic=c", 7, 10, &err));
    ASSERT_EQ_INT(4, f.n);
    ASSERT_EQ_INT(3, qs_form_count(&f, "topic"));
    ASSERT_EQ_INT(1, qs_form_count(&f, "x"));
    ASSERT_EQ_INT(0, qs_form_count(&f, "y"));
    ASSERT_EQ_INT(0, qs_form_count(&f, "Topic"));
    ASSERT(qs_form_has(&f, "x"));
    ASSERT(!qs_form_has(&f, "topi"));
    ASSERT(!qs_form_has(&f, ""));
    const qs_form_pair *p = qs_form_get(&f, "topic");
    ASSERT(p == &f.pairs[0]);
    ASSERT_EQ_STR("a", p->value);
    ASSERT_EQ_STR("c", f.pairs[3].value);
    qs_form_free(&f);
    qs_form_free(&f);

    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, "=x", 2, 10, &err));
    ASSERT(qs_form_has(&f, ""));
    qs_form_free(&f);
}

TEST(form_max_pairs)
{
    qs_form f = QS_FORM_INIT;
    const char *err = NULL;
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, "a=1&b=2&c=3", 11, 3, &err));
    ASSERT_EQ_INT(3, f.n);
    qs_form_free(&f);

    ASSERT_EQ_INT(QS_FORM_E_TOO_MANY, qs_form_parse(&f, "a=1&b=2&c=3", 11, 2, &err));
    ASSERT_EQ_STR("too many parameters", err);
    ASSERT_EQ_INT(2, f.n);
    ASSERT_EQ_STR("b", f.pairs[1].key);
    qs_form_free(&f);

    ASSERT_EQ_INT(QS_FORM_E_TOO_MANY, qs_form_parse(&f, "a=1", 3, 0, &err));
    ASSERT_EQ_INT(0, f.n);
    qs_form_free(&f);

    /* Dropped and empty pairs are not counted; the limit applies per call. */
    err = NULL;
    ASSERT_EQ_INT(QS_FORM_E_INVALID, qs_form_parse(&f, "&&x;y&a=1&%zz&b=2", 17, 2, &err));
    ASSERT_EQ_INT(2, f.n);
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, "c=3&d=4", 7, 2, &err));
    ASSERT_EQ_INT(4, f.n);
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, "", 0, 0, &err));
    qs_form_free(&f);

    /* Many pairs: storage grows. */
    qs_buf b = QS_BUF_INIT;
    for (int i = 0; i < 5000; i++)
        qs_buf_appendf(&b, "%sk%d=v%d", i ? "&" : "", i, i);
    ASSERT_EQ_INT(QS_FORM_OK, qs_form_parse(&f, b.p, b.len, 5000, &err));
    ASSERT_EQ_INT(5000, f.n);
    ASSERT_EQ_STR("v4999", qs_form_get(&f, "k4999")->value);
    qs_form_free(&f);
    ASSERT_EQ_INT(QS_FORM_E_TOO_MANY, qs_form_parse(&f, b.p, b.len, 4999, &err));
    ASSERT_EQ_INT(4999, f.n);
    qs_form_free(&f);
    qs_buf_free(&b);
}

TEST(form_err_may_be_null)
{
    qs_form f = QS_FORM_INIT;
    ASSERT_EQ_INT(QS_FORM_E_INVALID, qs_form_parse(&f, "a=%", 3, 10, NULL));
    ASSERT_EQ_INT(QS_FORM_E_TOO_MANY, qs_form_parse(&f, "a", 1, 0, NULL));
    qs_form_free(&f);
}

static void check_unescape(const char *in, bool plus, int want_rc, const char *want,
                           size_t want_len)
{
    qs_buf out = QS_BUF_INIT;
    qs_buf_append_str(&out, "pre:");
    ASSERT_EQ_INT(want_rc, qs_form_unescape(in, strlen(in), plus, &out));
    if (want_rc == 0)
        ASSERT_EQ_MEM(want, want_len, out.p + 4, out.len - 4);
    ASSERT_EQ_MEM("pre:", 4, out.p, 4);
    qs_buf_free(&out);
}

TEST(unescape)
{
    check_unescape("", true, 0, "", 0);
    check_unescape("abc", true, 0, "abc", 3);
    check_unescape("a+b", true, 0, "a b", 3);
    check_unescape("a+b", false, 0, "a+b", 3);
    check_unescape("%2B%2b+", false, 0, "+++", 3);
    check_unescape("%41%62%7e%7E", true, 0, "Ab~~", 4);
    check_unescape("%00%ff%FF%80", true, 0, "\0\xff\xff\x80", 4);
    check_unescape("%25", true, 0, "%", 1);
    check_unescape("%2525", true, 0, "%25", 3);
    check_unescape("%", true, -1, NULL, 0);
    check_unescape("a%", true, -1, NULL, 0);
    check_unescape("%4", true, -1, NULL, 0);
    check_unescape("%4g", true, -1, NULL, 0);
    check_unescape("%g4", true, -1, NULL, 0);
    check_unescape("% 41", true, -1, NULL, 0);
    check_unescape("%-1", true, -1, NULL, 0);
    check_unescape("abc%zzdef", false, -1, NULL, 0);
}

/* url.QueryEscape(string([]byte{b})) for b = 0..255. */
static const char *const go_query_escape[256] = {
    "%00", "%01", "%02", "%03", "%04", "%05", "%06", "%07", "%08", "%09", "%0A", "%0B", "%0C",
    "%0D", "%0E", "%0F", "%10", "%11", "%12", "%13", "%14", "%15", "%16", "%17", "%18", "%19",
    "%1A", "%1B", "%1C", "%1D", "%1E", "%1F", "+",   "%21", "%22", "%23", "%24", "%25", "%26",
    "%27", "%28", "%29", "%2A", "%2B", "%2C", "-",   ".",   "%2F", "0",   "1",   "2",   "3",
    "4",   "5",   "6",   "7",   "8",   "9",   "%3A", "%3B", "%3C", "%3D", "%3E", "%3F", "%40",
    "A",   "B",   "C",   "D",   "E",   "F",   "G",   "H",   "I",   "J",   "K",   "L",   "M",
    "N",   "O",   "P",   "Q",   "R",   "S",   "T",   "U",   "V",   "W",   "X",   "Y",   "Z",
    "%5B", "%5C", "%5D", "%5E", "_",   "%60", "a",   "b",   "c",   "d",   "e",   "f",   "g",
    "h",   "i",   "j",   "k",   "l",   "m",   "n",   "o",   "p",   "q",   "r",   "s",   "t",
    "u",   "v",   "w",   "x",   "y",   "z",   "%7B", "%7C", "%7D", "~",   "%7F", "%80", "%81",
    "%82", "%83", "%84", "%85", "%86", "%87", "%88", "%89", "%8A", "%8B", "%8C", "%8D", "%8E",
    "%8F", "%90", "%91", "%92", "%93", "%94", "%95", "%96", "%97", "%98", "%99", "%9A", "%9B",
    "%9C", "%9D", "%9E", "%9F", "%A0", "%A1", "%A2", "%A3", "%A4", "%A5", "%A6", "%A7", "%A8",
    "%A9", "%AA", "%AB", "%AC", "%AD", "%AE", "%AF", "%B0", "%B1", "%B2", "%B3", "%B4", "%B5",
    "%B6", "%B7", "%B8", "%B9", "%BA", "%BB", "%BC", "%BD", "%BE", "%BF", "%C0", "%C1", "%C2",
    "%C3", "%C4", "%C5", "%C6", "%C7", "%C8", "%C9", "%CA", "%CB", "%CC", "%CD", "%CE", "%CF",
    "%D0", "%D1", "%D2", "%D3", "%D4", "%D5", "%D6", "%D7", "%D8", "%D9", "%DA", "%DB", "%DC",
    "%DD", "%DE", "%DF", "%E0", "%E1", "%E2", "%E3", "%E4", "%E5", "%E6", "%E7", "%E8", "%E9",
    "%EA", "%EB", "%EC", "%ED", "%EE", "%EF", "%F0", "%F1", "%F2", "%F3", "%F4", "%F5", "%F6",
    "%F7", "%F8", "%F9", "%FA", "%FB", "%FC", "%FD", "%FE", "%FF"};

TEST(query_escape_every_byte)
{
    qs_buf out = QS_BUF_INIT, all = QS_BUF_INIT, want_all = QS_BUF_INIT;
    char in[256];
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        in[b] = c;
        out.len = 0;
        qs_form_escape(&out, &c, 1);
        ASSERT_EQ_MEM(go_query_escape[b], strlen(go_query_escape[b]), out.p, out.len);
        qs_buf_append_str(&want_all, go_query_escape[b]);
    }
    qs_form_escape(&all, in, sizeof(in));
    ASSERT_EQ_MEM(want_all.p, want_all.len, all.p, all.len);

    /* And back. */
    out.len = 0;
    ASSERT_EQ_INT(0, qs_form_unescape(all.p, all.len, true, &out));
    ASSERT_EQ_MEM(in, sizeof(in), out.p, out.len);
    qs_buf_free(&out);
    qs_buf_free(&all);
    qs_buf_free(&want_all);
}

TEST(query_escape_strings)
{
    qs_buf out = QS_BUF_INIT;
    qs_buf_append_str(&out, "x=");
    qs_form_escape(&out, "https://example.com/books/{id} a&b=c?", 37);
    ASSERT_EQ_STR("x=https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D+a%26b%3Dc%3F", qs_buf_cstr(&out));
    out.len = 0;
    qs_form_escape(&out, "", 0);
    ASSERT_EQ_INT(0, out.len);
    qs_form_escape(&out, "caf\xc3\xa9 ~-._", 10);
    ASSERT_EQ_STR("caf%C3%A9+~-._", qs_buf_cstr(&out));
    qs_buf_free(&out);
}

TEST(query_escape_round_trip_random)
{
    uint64_t x = 88172645463325252ull;
    for (int iter = 0; iter < 2000; iter++) {
        char in[64];
        size_t n = (size_t)(iter % 64);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            in[i] = (char)x;
        }
        qs_buf esc = QS_BUF_INIT, back = QS_BUF_INIT;
        qs_form_escape(&esc, in, n);
        ASSERT_EQ_INT(0, qs_form_unescape(esc.p ? esc.p : "", esc.len, true, &back));
        ASSERT_EQ_MEM(in, n, back.p, back.len);
        qs_buf_free(&esc);
        qs_buf_free(&back);
    }
}

/* Expected: Go's (&http.Request{Header: {"Cookie": {header}}}).Cookie(name); NULL = none. */
static const struct {
    const char *header;
    const char *name;
    const char *want;
} cookie_vectors[] = {
    {"a=1; b=2", "b", "2"},
    {"a=\"x y\"", "a", "x y"},
    {"a=\"x", "a", NULL},
    {"a=x\"", "a", NULL},
    {"a=\"\"", "a", ""},
    {"a=\"", "a", NULL},
    {"a= b", "a", " b"},
    {"a =b", "a", "b"},
    {"a=b c", "a", "b c"},
    {"a=b,c", "a", "b,c"},
    {"a=\\x; a=y", "a", "y"},
    {"a=1; a=2", "a", "1"},
    {";;a=1;;", "a", "1"},
    {"a", "a", ""},
    {"a=", "a", ""},
    {"A=1", "a", NULL},
    {"a b=1; c=2", "c", "2"},
    {"a=x\x7f; a=ok", "a", "ok"},
    {"a=x\x01", "a", NULL},
    {"  a=1  ;  b=2  ", "b", "2"},
    {"\ta=1\t", "a", "1"},
    {"a=\xc3\xa9; a=2", "a", "2"},
    {"b=1;a=2", "a", "2"},
    {"a=1;b", "b", ""},
    {"a=b=c", "a", "b=c"},
    {"(a)=1", "(a)", NULL},
    {"a=\"b;c\"", "a", NULL},
    {"a=\t1", "a", NULL},
    {"a=1\r\n", "a", "1"},
    {"=1; a=2", "a", "2"},
    {"a=\"\"\"", "a", NULL},
    {"a=1", "", NULL},
    {"", "a", NULL},
    {"mercureAuthorization=eyJ.eyJ.sig", "mercureAuthorization", "eyJ.eyJ.sig"},
};

TEST(cookie_go_vectors)
{
    for (size_t i = 0; i < QS_ARRAY_LEN(cookie_vectors); i++) {
        const char *h = cookie_vectors[i].header;
        qs_slice v = {NULL, 0};
        bool found = qs_form_cookie(h, strlen(h), cookie_vectors[i].name, &v);
        const char *want = cookie_vectors[i].want;
        if (found != (want != NULL))
            qs_test_fail(__FILE__, __LINE__, "case %zu (%s): found=%d", i, h, found);
        if (want) {
            ASSERT_EQ_MEM(want, strlen(want), v.p, v.n);
            ASSERT(v.p >= h && v.p + v.n <= h + strlen(h));
        }
    }
}

TEST(cookie_limit_matches_go)
{
    /* Go gives up on a header with more than 3000 cookies (counted as ';' + 1). */
    qs_buf b = QS_BUF_INIT;
    qs_buf_append_str(&b, "a=1");
    for (int i = 1; i < 3000; i++)
        qs_buf_append_str(&b, ";x=1");
    qs_slice v;
    ASSERT(qs_form_cookie(b.p, b.len, "a", &v));
    qs_buf_append_char(&b, ';');
    ASSERT(!qs_form_cookie(b.p, b.len, "a", &v));
    qs_buf_free(&b);
}

TEST(cookie_not_nul_terminated)
{
    const char buf[] = "a=1; b=22; c=3";
    qs_slice v;
    /* Only the first 8 bytes belong to the header: "b=2" is cut. */
    ASSERT(qs_form_cookie(buf, 8, "b", &v));
    ASSERT_SLICE("2", v);
    ASSERT(!qs_form_cookie(buf, 8, "c", &v));
}
