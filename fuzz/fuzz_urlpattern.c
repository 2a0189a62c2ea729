/* SPDX-License-Identifier: MIT
 * fuzz_urlpattern.c - libFuzzer target for URL Pattern selectors, the URL parser and the
 * regex engine under them.
 *
 * Input: the pattern, then "\n", then the topic (without "\n" the input is both). Checks
 * that the URL parser writes only ASCII and agrees with itself, that compiling is
 * deterministic and honours the bound on states exactly (a pattern that needed N states
 * compiles with the bound N and not with N - 1), that matching a topic parsed once agrees
 * with matching its text, and that the pattern's text, taken as a Go regular expression,
 * compiles or not the same way twice and matches deterministically.
 */
#include "regex.h"
#include "urlpattern.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Patterns are at most 4096 bytes in the hub; topics are bounded by request limits. */
#define MAX_INPUT 8192

static void check(bool cond)
{
    if (!cond)
        abort();
}

static void check_ascii(const qs_weburl *u)
{
    for (int i = 0; i < QS_WEBURL_PARTS; i++) {
        qs_slice s = qs_weburl_get(u, (enum qs_weburl_part)i);
        for (size_t k = 0; k < s.n; k++)
            check((unsigned char)s.p[k] < 0x80);
    }
}

static qs_weburl bases[2];
static bool bases_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    if (!bases_ready) {
        const char *b0 = QS_URLPATTERN_FALLBACK_BASE;
        const char *b1 = "https://hub.example.com/.well-known/mercure";
        check(qs_weburl_parse(b0, strlen(b0), NULL, &bases[0]) == 0);
        check(qs_weburl_parse(b1, strlen(b1), NULL, &bases[1]) == 0);
        bases_ready = true;
    }
    const char *in = (const char *)data;
    const char *nl = size ? memchr(in, '\n', size) : NULL;
    size_t pat_len = nl ? (size_t)(nl - in) : size;
    const char *topic = nl ? nl + 1 : in;
    size_t topic_len = nl ? size - pat_len - 1 : size;
    const qs_weburl *base = &bases[size % 2];

    /* The URL parser: ASCII out, and the same answer twice. */
    qs_weburl t1, t2;
    int r1 = qs_weburl_parse(topic, topic_len, base, &t1);
    int r2 = qs_weburl_parse(topic, topic_len, base, &t2);
    check(r1 == r2);
    if (r1 == 0) {
        check_ascii(&t1);
        for (int i = 0; i < QS_WEBURL_PARTS; i++) {
            qs_slice a = qs_weburl_get(&t1, (enum qs_weburl_part)i);
            qs_slice b = qs_weburl_get(&t2, (enum qs_weburl_part)i);
            check(a.n == b.n && memcmp(a.p, b.p, a.n) == 0);
        }
        qs_weburl_free(&t2);
    }

    size_t states = 0, again = 0;
    const char *err = NULL;
    qs_urlpattern *p = qs_urlpattern_compile(in, pat_len, base, 0, &states, &err);
    qs_urlpattern *q = qs_urlpattern_compile(in, pat_len, base, 0, &again, NULL);
    check((p != NULL) == (q != NULL));
    check(p || (err && *err));
    if (p) {
        check(states == again && states == qs_urlpattern_states(p));
        bool m = qs_urlpattern_match(p, topic, topic_len);
        check(qs_urlpattern_match(q, topic, topic_len) == m);
        check(r1 != 0 || qs_urlpattern_match_url(p, &t1) == m);
        check(r1 == 0 || !m); /* an unparsable topic never matches */
        if (states > 0) {
            qs_urlpattern *at = qs_urlpattern_compile(in, pat_len, base, states, NULL, NULL);
            qs_urlpattern *under = qs_urlpattern_compile(in, pat_len, base, states - 1, NULL, NULL);
            check(at != NULL && under == NULL);
            check(qs_urlpattern_match(at, topic, topic_len) == m);
            qs_urlpattern_free(at);
        }
    }
    qs_urlpattern_free(p);
    qs_urlpattern_free(q);
    if (r1 == 0)
        qs_weburl_free(&t1);

    /* The regex engine on its own, with a bound that keeps each run short. */
    size_t rs = 0;
    qs_regex *re = qs_regex_compile(in, pat_len, 4096, &rs, NULL);
    qs_regex *re2 = qs_regex_compile(in, pat_len, 4096, NULL, NULL);
    check((re != NULL) == (re2 != NULL));
    if (re) {
        check(qs_regex_states(re) == rs);
        bool m = qs_regex_match(re, topic, topic_len);
        check(qs_regex_match(re2, topic, topic_len) == m);
    }
    qs_regex_free(re);
    qs_regex_free(re2);
    return 0;
}
