/* SPDX-License-Identifier: MIT
 * test_uritemplate.c - URI template matching against the reference hub's answers.
 *
 * The vectors in uritemplate_vectors.h were produced by the reference implementation
 * (yosida95/uritemplate v3 through the hub's matching rule); the explicit cases below
 * restate the important ones so that a failure reads as a sentence.
 */
#include "harness.h"
#include "topic.h"
#include "uritemplate.h"
#include "uritemplate_vectors.h"

#include <stdint.h>
#include <stdio.h>

#define S_(lit) lit, sizeof(lit) - 1

static bool ut_compiles(const char *tpl)
{
    const char *err = NULL;
    qs_uritemplate *t = qs_uritemplate_compile(tpl, strlen(tpl), &err);
    bool ok = t != NULL;
    if (!ok && (!err || !*err))
        qs_test_fail(__FILE__, __LINE__, "no reason given for rejecting \"%s\"", tpl);
    qs_uritemplate_free(t);
    return ok;
}

static bool ut_match(const char *tpl, const char *topic)
{
    const char *err = NULL;
    qs_uritemplate *t = qs_uritemplate_compile(tpl, strlen(tpl), &err);
    if (!t)
        qs_test_fail(__FILE__, __LINE__, "\"%s\" does not compile: %s", tpl, err);
    bool m = qs_uritemplate_match(t, topic, strlen(topic));
    qs_uritemplate_free(t);
    return m;
}

/* Escapes bytes for failure messages. */
static const char *esc(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* The hub's rule, applied with this module: "*", equality, then a compiled template. */
static void check_vectors(const struct qs_ut_vector *v, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++) {
        qs_uritemplate *t = NULL;
        if (memchr(v[i].sel, '{', v[i].sel_len))
            t = qs_uritemplate_compile(v[i].sel, v[i].sel_len, NULL);
        bool m =
            (v[i].sel_len == 1 && v[i].sel[0] == '*') ||
            (v[i].sel_len == v[i].topic_len && memcmp(v[i].sel, v[i].topic, v[i].topic_len) == 0) ||
            (t && qs_uritemplate_match(t, v[i].topic, v[i].topic_len));
        bool is_tpl = t != NULL;
        /* Measuring agrees with compiling, and the cheap path with the full one. */
        size_t states = 0;
        bool measured = memchr(v[i].sel, '{', v[i].sel_len) &&
                        qs_uritemplate_measure(v[i].sel, v[i].sel_len, NULL, &states, NULL);
        if (measured != is_tpl || (t && states != qs_uritemplate_states(t)))
            qs_test_fail(__FILE__, __LINE__, "%s[%zu]: measured %d/%zu, compiled %d", set, i,
                         measured, states, is_tpl);
        if (t) {
            bool full = qs_uritemplate_match(t, v[i].topic, v[i].topic_len);
            int q = qs_uritemplate_quick_match(t, v[i].topic, v[i].topic_len, SIZE_MAX);
            int q0 = qs_uritemplate_quick_match(t, v[i].topic, v[i].topic_len, 0);
            if (q != full || (q0 != -1 && q0 != full))
                qs_test_fail(__FILE__, __LINE__, "%s[%zu]: quick %d/%d, full %d", set, i, q, q0,
                             full);
        }
        qs_uritemplate_free(t);

        /* The selector module must agree with the direct computation. */
        qs_selector *sel = qs_selector_compile(v[i].sel, v[i].sel_len);
        bool sm = qs_selector_match(sel, v[i].topic, v[i].topic_len);
        bool skind = sel->kind == QS_SEL_TEMPLATE;
        qs_selector_release(sel);

        if (is_tpl != (v[i].is_template == 1) || m != (v[i].matches == 1) || sm != m ||
            skind != is_tpl) {
            char a[512], b[512];
            qs_test_fail(__FILE__, __LINE__,
                         "%s[%zu]: selector \"%s\" topic \"%s\": expected template=%d match=%d, "
                         "got template=%d match=%d (selector module: template=%d match=%d)",
                         set, i, esc(v[i].sel, v[i].sel_len, a, sizeof(a)),
                         esc(v[i].topic, v[i].topic_len, b, sizeof(b)), v[i].is_template,
                         v[i].matches, is_tpl, m, skind, sm);
        }
    }
}

TEST(reference_named_vectors)
{
    check_vectors(qs_ut_named_vectors, QS_ARRAY_LEN(qs_ut_named_vectors), "named");
}

TEST(reference_class_vectors)
{
    check_vectors(qs_ut_class_vectors, QS_ARRAY_LEN(qs_ut_class_vectors), "classes");
}

TEST(reference_random_vectors)
{
    check_vectors(qs_ut_random_vectors, QS_ARRAY_LEN(qs_ut_random_vectors), "random");
}

TEST(simple_expression_is_one_optional_segment)
{
    const char *tpl = "https://example.com/books/{id}";
    ASSERT(ut_match(tpl, "https://example.com/books/1"));
    ASSERT(ut_match(tpl, "https://example.com/books/"));
    ASSERT(!ut_match(tpl, "https://example.com/books/1/2"));
    ASSERT(!ut_match(tpl, "https://example.com/books"));
    ASSERT(ut_match(tpl, "https://example.com/books/a,b"));   /* "," is in the class */
    ASSERT(!ut_match(tpl, "https://example.com/books/a=b"));  /* "=" only when named */
    ASSERT(ut_match(tpl, "https://example.com/books/a%2Fb")); /* %XX triplets */
    ASSERT(!ut_match(tpl, "https://example.com/books/a%2"));
    ASSERT(!ut_match(tpl, "https://example.com/books/a%zz"));
    ASSERT(!ut_match(tpl, "https://example.com/books/\xc3\xa9"));
}

TEST(reserved_and_fragment_expressions)
{
    ASSERT(ut_match("{+path}/here", "/foo/bar/here"));
    ASSERT(ut_match("{+path}/here", "/here"));
    ASSERT(!ut_match("{+path}/here", "here"));
    ASSERT(ut_match("https://x/{+path}", "https://x/a/b/c?d=e#f"));
    ASSERT(!ut_match("{+path}", "a b"));
    ASSERT(ut_match("{#frag}", ""));
    ASSERT(ut_match("{#frag}", "#a/b?c"));
    ASSERT(!ut_match("{#frag}", "a"));
}

TEST(separators_are_counted)
{
    ASSERT(ut_match("{/a,b}", ""));
    ASSERT(ut_match("{/a,b}", "/1"));
    ASSERT(ut_match("{/a,b}", "/1/2"));
    ASSERT(!ut_match("{/a,b}", "/1/2/3"));
    ASSERT(ut_match("{/a,b,c}", "/1/2/3"));
    ASSERT(ut_match("{?x,y}", "?x=1&y=2"));
    ASSERT(!ut_match("{?x,y}", "?x=1&y=2&z=3"));
    ASSERT(ut_match("{;x}", ";x=1"));
    ASSERT(!ut_match("{;x}", ";x=1;y=2"));
    ASSERT(ut_match("{.ext}", ".tar.gz")); /* "." is unreserved: no count */
    ASSERT(ut_match("{&k,j}", "&k=v&j=w"));
    ASSERT(!ut_match("{&k,j}", "&k=v&j=w&i=x"));
}

TEST(explode_removes_the_bound_and_allows_equals)
{
    ASSERT(ut_match("{/list*}", "/a/b/c/d/e"));
    ASSERT(ut_match("{/list*}", "/a=1/b=2"));
    ASSERT(!ut_match("{/a,list*}", "/a=1/b=2")); /* the first variable is not exploded */
    ASSERT(ut_match("{/a,list*}", "/x/b=2"));
    ASSERT(ut_match("{?x*}", "?a=1&b=2&c=3"));
}

TEST(prefix_modifier_does_not_bound_length)
{
    /* The reference's regexp ignores ":N"; so do we. */
    ASSERT(ut_match("{var:3}", "value"));
    ASSERT(ut_match("{var:1}", "a-very-long-value"));
    ASSERT(!ut_match("{var:3}", "a/b"));
}

TEST(subscription_topic_template)
{
    const char *tpl = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    ASSERT(ut_match(tpl, "/.well-known/mercure/subscriptions/"
                         "https%3A%2F%2Fexample.com%2Ffoo/urn%3Auuid%3Aabc"));
    ASSERT(ut_match(tpl, "/.well-known/mercure/subscriptions"));
    ASSERT(!ut_match(tpl, "/.well-known/mercure/subscriptions/a/b/c"));
    ASSERT(!ut_match(tpl, "/.well-known/mercure/subscriptions/https://example.com/foo/x"));
}

TEST(invalid_templates_do_not_compile)
{
    static const char *const bad[] = {
        "https://example.com/{id",
        "{i-d}",
        "{}",
        "{{a}}",
        "{a{b}}",
        "{a}}",
        "x}{a}",
        "{var:0}",
        "{var:10000}",
        "{var:}",
        "{var:01}",
        "{var:1*}",
        "{var*:1}",
        "{=var}",
        "{,var}",
        "{!var}",
        "{@var}",
        "{|var}",
        "{$var}",
        "{.a..b}",
        "{.a.}",
        "{..a}",
        "{%4}",
        "{a%zz}",
        "{\xc3\xa9}",
        "a b{x}",
        "a<b{x}",
        "a%{x}",
        "a%2{x}",
        "\xff{x}",
        "\xed\xa0\x80{x}",
        "\xc0\xaf{x}",
        "\xef\xbf\xbd{x}",
        "\xef\xb7\x90{x}",
        "{a,}",
        "{a,,b}",
        "{a b}",
        "{+}",
        "{/a",
        "{a:5",
        "{a*",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++)
        if (ut_compiles(bad[i]))
            qs_test_fail(__FILE__, __LINE__, "\"%s\" compiled", bad[i]);
    ASSERT(!qs_uritemplate_compile("a\0{x}", 5, NULL)); /* NUL is not a literal character */

    static const char *const good[] = {
        "{var:9999}",
        "{a.b.c}",
        "{%41b}",
        "a%2F{x}",
        "a'b{x}",
        "\xc3\xa9{x}",
        "\xf0\x9f\x98\x80{x}",
        "{x,y:3,z*}",
        "{+a}{#b}{.c}{/d}{;e}{?f}{&g}",
        "",
        "plain",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(good); i++)
        if (!ut_compiles(good[i]))
            qs_test_fail(__FILE__, __LINE__, "\"%s\" did not compile", good[i]);
}

TEST(literal_only_templates)
{
    ASSERT(ut_match("", ""));
    ASSERT(!ut_match("", "a"));
    ASSERT(ut_match("plain", "plain"));
    ASSERT(!ut_match("plain", "plai"));
    ASSERT(!ut_match("plain", "plainx"));
    ASSERT(ut_match("a%2Fb", "a%2Fb")); /* literal triplets are compared as text */
    ASSERT(!ut_match("a%2Fb", "a/b"));
}

/* Go's regexp parser rejects x{0,N} for N > 1000, so the reference cannot compile an
 * expression with more than 1001 variables unless one is exploded. */
TEST(variable_count_limit_follows_the_reference)
{
    char tpl[16384];
    for (int nv = 1001; nv <= 1002; nv++) {
        size_t o = 0;
        tpl[o++] = '{';
        tpl[o++] = '/';
        for (int i = 0; i < nv; i++) {
            if (i)
                tpl[o++] = ',';
            tpl[o++] = 'a';
        }
        tpl[o++] = '}';
        tpl[o] = '\0';
        qs_uritemplate *t = qs_uritemplate_compile(tpl, o, NULL);
        ASSERT((t != NULL) == (nv == 1001));
        if (t) {
            /* 1001 segments match, 1002 do not. */
            char topic[4096];
            size_t n = 0;
            for (int i = 0; i < 1002; i++) {
                topic[n++] = '/';
                topic[n++] = 'x';
                ASSERT(qs_uritemplate_match(t, topic, n) == (i < 1001));
            }
            qs_uritemplate_free(t);
        }
        tpl[o - 1] = '*'; /* "{/a,...,a*}" has no bound at all */
        tpl[o++] = '}';
        t = qs_uritemplate_compile(tpl, o, NULL);
        ASSERT(t != NULL);
        qs_uritemplate_free(t);
    }
}

/* The reference matches runes and turns every invalid byte of the topic into U+FFFD, which
 * no compiled template can match (U+FFFD is rejected in templates). Matching bytes gives the
 * same answers: a topic with invalid UTF-8 never matches a template. */
TEST(invalid_utf8_topics_never_match_templates)
{
    ASSERT(ut_match("\xc3\xa9{x}\xc3\xa9", "\xc3\xa9"
                                           "1\xc3\xa9"));
    ASSERT(!ut_match("\xc3\xa9{x}\xc3\xa9", "\xc3\xa9\xff\xc3\xa9"));
    ASSERT(!ut_match("{x}\xc3\xa9", "\xc3\xc3\xa9"));
    ASSERT(!ut_match("{+x}", "\xff"));
    ASSERT(!ut_match("{+x}", "\xef\xbf\xbd"));
    ASSERT(!ut_match("a{x}", "a\xed\xa0\x80"));
    ASSERT(!ut_compiles("\xef\xbf\xbd{x}"));
}

/* Many optional expressions and a long topic that almost matches: a backtracking matcher
 * would take exponential time; this must finish well within the harness timeout. */
TEST(matching_is_linear)
{
    char tpl[64 * 3 + 2];
    size_t o = 0;
    for (int i = 0; i < 64; i++) {
        tpl[o++] = '{';
        tpl[o++] = (char)('a' + i % 26);
        tpl[o++] = '}';
    }
    tpl[o++] = '!';
    qs_uritemplate *t = qs_uritemplate_compile(tpl, o, NULL);
    ASSERT(t != NULL);
    size_t n = 1 << 18;
    char *topic = malloc(n + 1);
    memset(topic, 'a', n);
    ASSERT(!qs_uritemplate_match(t, topic, n));
    topic[n] = '!';
    ASSERT(qs_uritemplate_match(t, topic, n + 1));
    free(topic);
    qs_uritemplate_free(t);
}

static size_t ut_states(const char *tpl)
{
    qs_uritemplate *t = qs_uritemplate_compile(tpl, strlen(tpl), NULL);
    if (!t)
        qs_test_fail(__FILE__, __LINE__, "\"%s\" does not compile", tpl);
    size_t n = qs_uritemplate_states(t);
    size_t measured = 0, expressions = 0;
    ASSERT(qs_uritemplate_measure(tpl, strlen(tpl), &expressions, &measured, NULL));
    ASSERT_EQ_INT(n, measured);
    qs_uritemplate_free(t);
    return n;
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
    size_t u = strlen(unit), n = strlen(tail);
    char *s = malloc(u * times + n + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * u, unit, u);
    memcpy(s + u * times, tail, n + 1);
    return s;
}

/* The sizes the limits of the subscribe handler are expressed in. */
TEST(states_count_what_matching_costs)
{
    ASSERT_EQ_INT(1, ut_states("https://example.com/books/{id}")); /* literals are memcmp'd */
    ASSERT_EQ_INT(1, ut_states("{a}{+b}{c}"));                     /* adjacent loops merge */
    ASSERT_EQ_INT(3, ut_states("{/a}"));                           /* start, after "/", exit */
    ASSERT_EQ_INT(3, ut_states("{a}/{b}/{c}"));                    /* one per literal byte... */
    ASSERT_EQ_INT(3, ut_states("{a}%2F{b}/{c}"));                  /* ...or triplet */
    ASSERT_EQ_INT(5, ut_states("{?a,b,c}"));                       /* levels of the group */
    ASSERT_EQ_INT(4, ut_states("{?a,b*,c}"));                      /* (SEP C2)* is one node */
    ASSERT_EQ_INT(201, ut_states("{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"
                                 "{/a}{/b}{/c}{/d}{/e}{/f}{/g}{/h}{/i}{/j}"));

    size_t expressions = 0, states = 0;
    const char *err = NULL;
    ASSERT(qs_uritemplate_measure(S_("x{a}y{/b,c}{?d}z"), &expressions, &states, &err));
    ASSERT_EQ_INT(3, expressions);
    ASSERT(!qs_uritemplate_measure(S_("x{a"), &expressions, &states, &err));
    ASSERT(err && *err);
}

/* "{+a}" ten thousand times is the language of "{+a}": one state, matched in the time of one. */
TEST(repeated_loops_are_one_state)
{
    char *tpl = repeat("{+a}", 10000, "");
    qs_uritemplate *t = qs_uritemplate_compile(tpl, strlen(tpl), NULL);
    ASSERT(t != NULL);
    ASSERT_EQ_INT(1, qs_uritemplate_states(t));
    ASSERT(qs_uritemplate_match(t, S_("https://example.com/a/b?c=d#e")));
    ASSERT(!qs_uritemplate_match(t, S_("https://example.com/a b")));
    qs_uritemplate_free(t);
    free(tpl);
}

/* Automatons of several 64-state words: a chain of optional expressions crosses words both
 * through the edges (shifts) and through the closure (carries). */
TEST(chains_cross_words)
{
    enum { N = 100 };
    char *tpl = repeat("{/a}", N, "!");
    qs_uritemplate *t = qs_uritemplate_compile(tpl, strlen(tpl), NULL);
    ASSERT(t != NULL);
    ASSERT_EQ_INT(2 * N + 1, qs_uritemplate_states(t));
    char topic[4 * N + 8];
    size_t n = 0;
    for (int k = 0; k <= N + 1; k++) {
        topic[n] = '!';
        ASSERT(qs_uritemplate_match(t, topic, n + 1) == (k <= N));
        ASSERT(!qs_uritemplate_match(t, topic, n)); /* the "!" is required */
        topic[n++] = '/';
        if (k % 3)
            topic[n++] = (char)('a' + k % 26);
    }
    qs_uritemplate_free(t);
    free(tpl);

    /* Literal bytes across words, after a loop that can start anywhere. */
    tpl = repeat("ab", 70, "{x}");
    char *full = malloc(4 * N);
    for (int lead = 0; lead < 3; lead++) {
        char *pre = repeat("{+p}", 1, tpl);
        qs_uritemplate *u = qs_uritemplate_compile(pre, strlen(pre), NULL);
        ASSERT(u != NULL);
        ASSERT_EQ_INT(141, qs_uritemplate_states(u));
        size_t m = 0;
        for (int i = 0; i < lead; i++)
            full[m++] = "ab"[i % 2];
        for (int i = 0; i < 140; i++)
            full[m++] = "ab"[i % 2];
        ASSERT(qs_uritemplate_match(u, full, m));
        full[m++] = 'z';
        ASSERT(qs_uritemplate_match(u, full, m));
        full[m - 1] = '/';
        ASSERT(!qs_uritemplate_match(u, full, m));
        ASSERT(!qs_uritemplate_match(u, full, 139));
        qs_uritemplate_free(u);
        free(pre);
    }
    free(full);
    free(tpl);
}

TEST(quick_match_answers_only_when_cheap)
{
    qs_uritemplate *t = qs_uritemplate_compile(S_("x/{a}/y"), NULL);
    ASSERT(t != NULL);
    ASSERT_EQ_INT(0, qs_uritemplate_quick_match(t, S_("z/12345/y"), 0)); /* prefix */
    ASSERT_EQ_INT(0, qs_uritemplate_quick_match(t, S_("x/12345/z"), 0)); /* suffix */
    ASSERT_EQ_INT(0, qs_uritemplate_quick_match(t, S_("x//"), 0));       /* too short */
    ASSERT_EQ_INT(-1, qs_uritemplate_quick_match(t, S_("x/12345/y"), 4));
    ASSERT_EQ_INT(1, qs_uritemplate_quick_match(t, S_("x/12345/y"), 5));
    ASSERT_EQ_INT(0, qs_uritemplate_quick_match(t, S_("x/12/45/y"), 5));
    ASSERT_EQ_INT(1, qs_uritemplate_quick_match(t, S_("x//y"), 0));
    qs_uritemplate_free(t);
}
