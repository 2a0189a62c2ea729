/* SPDX-License-Identifier: MIT
 * test_regex.c - Go regular expressions over ASCII subjects: what Go accepts and refuses, and
 * what matches. Expected answers are those of Go's regexp (MatchString).
 */
#include "harness.h"
#include "regex.h"

static int rx(const char *re, const char *subject)
{
    const char *err = NULL;
    qs_regex *r = qs_regex_compile(re, strlen(re), 10000, NULL, &err);
    if (!r) {
        if (!err || !*err)
            qs_test_fail(__FILE__, __LINE__, "no reason for refusing %s", re);
        return -1;
    }
    int m = qs_regex_match(r, subject, strlen(subject));
    qs_regex_free(r);
    return m;
}

TEST(literals_classes_and_anchors)
{
    ASSERT_EQ_INT(1, rx("\\A(?:/books/([^/]+?))\\z", "/books/12"));
    ASSERT_EQ_INT(0, rx("\\A(?:/books/([^/]+?))\\z", "/books/12/x"));
    ASSERT_EQ_INT(0, rx("\\A(?:/books/([^/]+?))\\z", "/books/"));
    ASSERT_EQ_INT(1, rx("b", "abc")); /* a substring suffices, as MatchString */
    ASSERT_EQ_INT(0, rx("^b", "abc"));
    ASSERT_EQ_INT(1, rx("\\d+$", "ab12"));
    ASSERT_EQ_INT(1, rx("[[:alpha:]]\\w*", "_x"));
    ASSERT_EQ_INT(0, rx("\\A[^\\x00]+?\\z", ""));
    ASSERT_EQ_INT(1, rx("\\bword\\b", "a word here"));
    ASSERT_EQ_INT(0, rx("\\bword\\b", "swordfish"));
    ASSERT_EQ_INT(1, rx("\\Bor\\B", "word"));
    ASSERT_EQ_INT(0, rx("(?s:.)", "")); /* nothing to match */
    ASSERT_EQ_INT(0, rx("\\A.\\z", "\n"));
    ASSERT_EQ_INT(1, rx("\\A(?s:.)\\z", "\n"));
    ASSERT_EQ_INT(1, rx("\\A\\Q.*\\E\\z", ".*"));
    ASSERT_EQ_INT(1, rx("\\A\\Q.*\\E*\\z", ".")); /* the star applies to the last one */
    ASSERT_EQ_INT(1, rx("\\A\\x41\\101\\x{42}\\z", "AAB"));
}

TEST(case_folding)
{
    ASSERT_EQ_INT(1, rx("(?i)abc", "xAbC"));
    ASSERT_EQ_INT(0, rx("(?i:a)b", "AB"));
    ASSERT_EQ_INT(1, rx("(?i)\\x{212A}", "k")); /* the Kelvin sign folds onto k */
    ASSERT_EQ_INT(1, rx("(?i)\\x{17F}", "S"));  /* and the long s onto s */
    ASSERT_EQ_INT(0, rx("\\x{212A}", "k"));
    ASSERT_EQ_INT(1, rx("(?i)\\p{Lu}", "a"));
    ASSERT_EQ_INT(0, rx("\\p{Lu}", "a"));
    ASSERT_EQ_INT(1, rx("\\A(?:(?i)a|b)\\z", "B")); /* a flag lasts to the group's end */
    ASSERT_EQ_INT(1, rx("(?i)[^k]", "x"));
    ASSERT_EQ_INT(0, rx("\\A(?i)[^k]\\z", "K"));
}

TEST(unicode_classes_keep_their_ascii_part)
{
    ASSERT_EQ_INT(1, rx("\\A\\pL+\\z", "Latin"));
    ASSERT_EQ_INT(0, rx("\\p{Greek}", "abc"));
    ASSERT_EQ_INT(1, rx("\\A\\p{latin}\\z", "q")); /* names are canonicalized as Go does */
    ASSERT_EQ_INT(1, rx("\\A\\p{^L}\\z", "1"));
    ASSERT_EQ_INT(1, rx("\\A\\P{Nd}\\z", "x"));
    ASSERT_EQ_INT(-1, rx("\\p{Klingon}", "x"));
}

TEST(repetitions)
{
    ASSERT_EQ_INT(1, rx("\\Aa{2,3}\\z", "aaa"));
    ASSERT_EQ_INT(0, rx("\\Aa{2,3}\\z", "aaaa"));
    ASSERT_EQ_INT(1, rx("\\Aa{2,}\\z", "aaaaa"));
    ASSERT_EQ_INT(1, rx("\\Aa{0}\\z", ""));
    ASSERT_EQ_INT(1, rx("\\Aa{,2}\\z", "a{,2}")); /* not a repetition: literal text */
    ASSERT_EQ_INT(1, rx("\\Aa{01}\\z", "a{01}"));
    ASSERT_EQ_INT(1, rx("\\A(a*)*\\z", "aaa")); /* an empty loop ends */
    ASSERT_EQ_INT(1, rx("\\A(?:a|)+\\z", ""));
    ASSERT_EQ_INT(0, rx("\\A(a{10}){100}\\z", "")); /* 1000 copies: allowed */
}

TEST(what_go_refuses)
{
    const char *bad[] = {
        "*a",    "a**",   "a{2}{3}",   "(a",          "a)",     "[a",      "[z-a]",  "\\1",
        "\\8",   "(?=a)", "(?P=n)",    "\\C",         "\\Z",    "x{1001}", "a{3,2}", "(a{100}){11}",
        "(?i-)", "(?x)",  "\\p{Nope}", "\\x{110000}", "(?<>a)", "|*",      "\\",     "[[:nope:]]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rx(bad[i], "") != -1)
            qs_test_fail(__FILE__, __LINE__, "%s should be refused", bad[i]);
    /* Accepted by Go although they look odd. */
    ASSERT_EQ_INT(1, rx("(?)", ""));
    ASSERT_EQ_INT(1, rx("^*", ""));
    ASSERT_EQ_INT(1, rx("a*?", ""));
    ASSERT_EQ_INT(1, rx("(?P<n>a)(?P<n>b)", "ab"));
    ASSERT_EQ_INT(1, rx("[]a]", "]"));
    ASSERT_EQ_INT(1, rx("[a-]", "-"));
}

TEST(state_bound)
{
    const char *err = NULL;
    size_t states = 0;
    qs_regex *r = qs_regex_compile("a{1000}", 7, 500, &states, &err);
    ASSERT(r == NULL && states > 500 && err);
    r = qs_regex_compile("a{100}", 6, 500, &states, &err);
    ASSERT(r != NULL && qs_regex_states(r) == states && states == 101);
    qs_regex_free(r);
}

TEST(long_subjects_take_linear_time)
{
    /* The classic backtracking trap: (a*)*b against a long run of a. */
    size_t n = 200000;
    char *s = malloc(n + 1);
    memset(s, 'a', n);
    s[n] = '\0';
    ASSERT_EQ_INT(0, rx("\\A(a*)*b\\z", s));
    ASSERT_EQ_INT(0, rx("\\A(a|aa)+c\\z", s));
    free(s);
}
