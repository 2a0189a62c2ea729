/* SPDX-License-Identifier: MIT
 * test_topic.c - selector kinds and matching, the interning table and its match cache.
 */
#include "harness.h"
#include "topic.h"

#include <stdio.h>

#define S(lit) lit, sizeof(lit) - 1

TEST(selector_kinds)
{
    static const struct {
        const char *s;
        enum qs_selector_kind kind;
    } cases[] = {
        {"*", QS_SEL_ANY},
        {"**", QS_SEL_EXACT},
        {"", QS_SEL_EXACT},
        {"https://example.com/books/1", QS_SEL_EXACT},
        {"https://example.com/books/{id}", QS_SEL_TEMPLATE},
        {"https://example.com/books/{id", QS_SEL_EXACT}, /* "{" but no valid template */
        {"{}", QS_SEL_EXACT},
        {"{*}", QS_SEL_EXACT},
        {"a}b", QS_SEL_EXACT},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        qs_selector *sel = qs_selector_compile(cases[i].s, strlen(cases[i].s));
        ASSERT_EQ_INT(cases[i].kind, sel->kind);
        ASSERT_EQ_STR(cases[i].s, sel->str);
        ASSERT_EQ_INT(strlen(cases[i].s), sel->len);
        ASSERT_EQ_INT(1, sel->refs);
        ASSERT_EQ_INT(0, sel->id);
        ASSERT((sel->tpl != NULL) == (cases[i].kind == QS_SEL_TEMPLATE));
        qs_selector_release(sel);
    }
}

TEST(selector_matching_rules)
{
    qs_selector *any = qs_selector_compile(S("*"));
    ASSERT(qs_selector_match(any, S("")));
    ASSERT(qs_selector_match(any, S("https://example.com/anything")));
    qs_selector_release(any);

    qs_selector *exact = qs_selector_compile(S("https://example.com/books/1"));
    ASSERT(qs_selector_match(exact, S("https://example.com/books/1")));
    ASSERT(!qs_selector_match(exact, S("https://example.com/books/10")));
    ASSERT(!qs_selector_match(exact, S("https://example.com/books/")));
    qs_selector_release(exact);

    qs_selector *tpl = qs_selector_compile(S("https://example.com/books/{id}"));
    ASSERT(qs_selector_match(tpl, S("https://example.com/books/1")));
    ASSERT(!qs_selector_match(tpl, S("https://example.com/books/1/2")));
    /* Equality wins even where the template itself would not match ("{" is no class). */
    ASSERT(qs_selector_match(tpl, S("https://example.com/books/{id}")));
    qs_selector_release(tpl);

    qs_selector *broken = qs_selector_compile(S("https://example.com/{id"));
    ASSERT(qs_selector_match(broken, S("https://example.com/{id")));
    ASSERT(!qs_selector_match(broken, S("https://example.com/1")));
    qs_selector_release(broken);

    /* Selectors and topics are byte strings: NUL is an ordinary byte. */
    qs_selector *nul = qs_selector_compile(S("a\0b"));
    ASSERT(nul->kind == QS_SEL_EXACT);
    ASSERT(qs_selector_match(nul, S("a\0b")));
    ASSERT(!qs_selector_match(nul, S("a")));
    qs_selector_release(nul);
}

TEST(standalone_refcount)
{
    qs_selector *sel = qs_selector_compile(S("x/{a}"));
    sel->refs++;
    qs_selector_release(sel);
    ASSERT_EQ_INT(1, sel->refs);
    ASSERT(qs_selector_match(sel, S("x/1")));
    qs_selector_release(sel);
    qs_selector_release(NULL);
}

/* Releases 256 fresh selectors, which pushes every earlier one out of the parking FIFO. */
static void push_out_parked(qs_selector_table *t)
{
    char buf[32];
    for (int i = 0; i < 256; i++) {
        int n = snprintf(buf, sizeof(buf), "filler/%d/{x}", i);
        qs_selector_table_release(t, qs_selector_table_acquire(t, buf, (size_t)n));
    }
}

TEST(table_interns_selectors)
{
    qs_selector_table *t = qs_selector_table_new(100);
    qs_selector *a = qs_selector_table_acquire(t, S("https://example.com/{id}"));
    qs_selector *b = qs_selector_table_acquire(t, S("https://example.com/{id}"));
    qs_selector *c = qs_selector_table_acquire(t, S("https://example.com/1"));
    qs_selector *d = qs_selector_table_acquire(t, S("*"));
    ASSERT(a == b);
    ASSERT(a != c);
    ASSERT_EQ_INT(2, a->refs);
    ASSERT_EQ_INT(1, c->refs);
    ASSERT(a->id != 0 && c->id != 0 && d->id != 0);
    ASSERT(a->id != c->id && a->id != d->id && c->id != d->id);
    ASSERT_EQ_INT(QS_SEL_TEMPLATE, a->kind);
    ASSERT_EQ_INT(QS_SEL_EXACT, c->kind);
    ASSERT_EQ_INT(QS_SEL_ANY, d->kind);

    qs_selector_table_release(t, b);
    ASSERT_EQ_INT(1, a->refs);
    qs_selector *a2 = qs_selector_table_acquire(t, S("https://example.com/{id}"));
    ASSERT(a2 == a);
    ASSERT_EQ_INT(2, a->refs);
    qs_selector_table_release(t, a2);
    uint64_t old_id = a->id;
    qs_selector_table_release(t, a);

    /* Released to zero, it stays parked: coming back, it keeps its id (and its cache). */
    qs_selector *a3 = qs_selector_table_acquire(t, S("https://example.com/{id}"));
    ASSERT_EQ_INT(1, a3->refs);
    ASSERT(a3->id == old_id);
    qs_selector_table_release(t, a3);
    /* Once 256 other selectors were released after it, it is gone: a new id. */
    push_out_parked(t);
    qs_selector *a4 = qs_selector_table_acquire(t, S("https://example.com/{id}"));
    ASSERT_EQ_INT(1, a4->refs);
    ASSERT(a4->id != old_id);
    qs_selector_table_release(t, a4);
    qs_selector_table_release(t, c);
    qs_selector_table_release(t, d);
    qs_selector_table_free(t);
}

TEST(table_ids_are_unique_across_churn)
{
    qs_selector_table *t = qs_selector_table_new(0);
    enum { N = 200 };
    qs_selector *live[N] = {0};
    uint64_t seen_max = 0;
    char s[32];
    unsigned seed = 7;
    for (int step = 0; step < 5000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % N);
        if (live[k]) {
            qs_selector_table_release(t, live[k]);
            live[k] = NULL;
        } else {
            int n = snprintf(s, sizeof(s), "s/{%d}", k % 7);
            live[k] = qs_selector_table_acquire(t, s, (size_t)n);
            /* A fresh selector always gets an id larger than any seen before. */
            if (live[k]->refs == 1) {
                ASSERT(live[k]->id > seen_max);
                seen_max = live[k]->id;
            }
        }
    }
    for (int k = 0; k < N; k++)
        qs_selector_table_release(t, live[k]);
    qs_selector_table_free(t);
}

/* Topics whose part between a template's literal prefix and suffix is long enough for the
 * table to consult the cache rather than run the automaton directly. */
#define BOOK "https://example.com/books/0123456789abcdefghij0123456789abcdefghij"
#define PAD "-0123456789abcdef0123456789abcdef"
#define LONG_X "x/0123456789abcdefghij0123456789abcdefghij"

TEST(cache_counts_hits_and_misses)
{
    qs_selector_table *t = qs_selector_table_new(100);
    qs_selector *tpl = qs_selector_table_acquire(t, S("https://example.com/books/{id}"));
    qs_selector *exact = qs_selector_table_acquire(t, S("https://example.com/books/1"));
    qs_selector *any = qs_selector_table_acquire(t, S("*"));
    uint64_t hits, misses;
    size_t entries;

    ASSERT(qs_selector_table_match(t, tpl, S(BOOK)));
    qs_selector_table_stats(t, &hits, &misses, &entries);
    ASSERT_EQ_INT(0, hits);
    ASSERT_EQ_INT(1, misses);
    ASSERT_EQ_INT(1, entries);

    ASSERT(qs_selector_table_match(t, tpl, S(BOOK)));
    ASSERT(!qs_selector_table_match(t, tpl, S(BOOK "/2")));
    ASSERT(!qs_selector_table_match(t, tpl, S(BOOK "/2")));
    qs_selector_table_stats(t, &hits, &misses, &entries);
    ASSERT_EQ_INT(2, hits);
    ASSERT_EQ_INT(2, misses);
    ASSERT_EQ_INT(2, entries);

    /* Exact and "*" selectors, a template equal to the topic, a topic that the template's
     * literal prefix rules out and a short one bypass the cache. */
    ASSERT(qs_selector_table_match(t, exact, S("https://example.com/books/1")));
    ASSERT(!qs_selector_table_match(t, exact, S("https://example.com/books/2")));
    ASSERT(qs_selector_table_match(t, any, S("whatever")));
    ASSERT(qs_selector_table_match(t, tpl, S("https://example.com/books/{id}")));
    ASSERT(!qs_selector_table_match(
        t, tpl, S("https://example.org/books/0123456789abcdefghij0123456789abcdefghij")));
    ASSERT(qs_selector_table_match(t, tpl, S("https://example.com/books/1")));
    ASSERT(!qs_selector_table_match(t, tpl, S("https://example.com/books/1/2")));
    qs_selector_table_stats(t, &hits, &misses, &entries);
    ASSERT_EQ_INT(2, hits);
    ASSERT_EQ_INT(2, misses);
    ASSERT_EQ_INT(2, entries);

    /* Standalone selectors (id 0) are matched directly, never cached. */
    qs_selector *standalone = qs_selector_compile(S("https://example.com/books/{id}"));
    ASSERT(qs_selector_table_match(t, standalone, S(BOOK)));
    ASSERT(qs_selector_table_match(t, standalone, S(BOOK)));
    qs_selector_table_stats(t, &hits, &misses, &entries);
    ASSERT_EQ_INT(2, hits);
    ASSERT_EQ_INT(2, misses);
    qs_selector_release(standalone);

    /* Null outputs are allowed. */
    qs_selector_table_stats(t, NULL, NULL, NULL);

    qs_selector_table_release(t, tpl);
    qs_selector_table_release(t, exact);
    qs_selector_table_release(t, any);
    qs_selector_table_free(t);
}

/* Answers that cost less than a lookup are not cached: a topic ruled out by the literal
 * prefix or suffix whatever its length, a short one, and a long one under a small automaton
 * up to 32 steps. */
TEST(cheap_answers_bypass_the_cache)
{
    qs_selector_table *t = qs_selector_table_new(100);
    qs_selector *tpl = qs_selector_table_acquire(t, S("x/{a}/y"));
    ASSERT(!qs_selector_table_match(t, tpl, S("z/" PAD "/y")));
    ASSERT(!qs_selector_table_match(t, tpl, S("x/" PAD "/z")));
    ASSERT(qs_selector_table_match(t, tpl, S("x/0123456789abcdef0123456789abcdef/y"))); /* 32 */
    ASSERT(!qs_selector_table_match(t, tpl, S("x/0123456789abcdef0123456789abc/ef/y")));
    uint64_t hits, misses;
    qs_selector_table_stats(t, &hits, &misses, NULL);
    ASSERT_EQ_INT(0, hits + misses);
    ASSERT(qs_selector_table_match(t, tpl, S("x/0123456789abcdef0123456789abcdefg/y"))); /* 33 */
    qs_selector_table_stats(t, &hits, &misses, NULL);
    ASSERT_EQ_INT(1, misses);
    qs_selector_table_release(t, tpl);
    qs_selector_table_free(t);
}

/* The same topic under a selector freed and one created after it (possibly at the same
 * address): the old answer must not come back. */
TEST(parked_selectors_keep_their_cached_answers)
{
    qs_selector_table *t = qs_selector_table_new(1000);
    for (int round = 0; round < 10; round++) {
        qs_selector *sel = qs_selector_table_acquire(t, S("x/{a}"));
        ASSERT(qs_selector_table_match(t, sel, S(LONG_X)));
        qs_selector_table_release(t, sel);
    }
    uint64_t hits, misses;
    size_t entries;
    qs_selector_table_stats(t, &hits, &misses, &entries);
    ASSERT_EQ_INT(9, hits);
    ASSERT_EQ_INT(1, misses);
    qs_selector_table_free(t);
}

TEST(cache_forgets_released_selectors)
{
    qs_selector_table *t = qs_selector_table_new(1000);
    uint64_t hits, misses, hits0, misses0;
    size_t entries;
    for (int round = 0; round < 50; round++) {
        qs_selector_table_stats(t, &hits0, &misses0, &entries);
        qs_selector *yes = qs_selector_table_acquire(t, S("x/{a}"));
        ASSERT(qs_selector_table_match(t, yes, S(LONG_X)));
        ASSERT(qs_selector_table_match(t, yes, S(LONG_X)));
        qs_selector_table_release(t, yes);
        qs_selector *no = qs_selector_table_acquire(t, S("x/{a}.{b}"));
        ASSERT(!qs_selector_table_match(t, no, S(LONG_X)));
        ASSERT(!qs_selector_table_match(t, no, S(LONG_X)));
        qs_selector_table_release(t, no);
        /* Both were freed by the pushing out: each round starts from scratch. */
        push_out_parked(t);
        qs_selector_table_stats(t, &hits, &misses, &entries);
        ASSERT_EQ_INT(2, hits - hits0);
        ASSERT_EQ_INT(2, misses - misses0);
    }
    ASSERT(entries <= 1000);
    qs_selector_table_free(t);
}

/* Many selectors and topics through a small cache, with selectors coming and going: every
 * answer must equal the uncached one, and the cache must stay within its capacity. The
 * padding makes the answers dear enough to be cached. */

static void churn(size_t capacity)
{
    qs_selector_table *t = qs_selector_table_new(capacity);
    enum { NSEL = 40, NTOPIC = 300 };
    static const char *const shapes[] = {
        "https://ex.com/{a}",     "https://ex.com/{/a,b}", "https://ex.com{+p}",
        "https://ex.com/{a}/{b}", "https://ex.com/x{?q*}", "https://ex.com/b/{id}",
    };
    qs_selector *sel[NSEL] = {0};
    char s[64], topic[128];
    unsigned seed = 99;
    uint64_t checks = 0;
    for (int step = 0; step < 60000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        int k = (int)(r % NSEL);
        if (!sel[k] || (r >> 12) % 64 == 0) {
            if (sel[k])
                qs_selector_table_release(t, sel[k]);
            const char *shape = shapes[(r >> 6) % QS_ARRAY_LEN(shapes)];
            int n = snprintf(s, sizeof(s), "%s%s", shape, (r >> 9) % 2 ? "" : "/tail");
            sel[k] = qs_selector_table_acquire(t, s, (size_t)n);
        }
        seed = seed * 1103515245u + 12345u;
        unsigned v = (seed >> 8) % NTOPIC;
        int n;
        switch (v % 5) {
        case 0:
            n = snprintf(topic, sizeof(topic), "https://ex.com/%u" PAD, v);
            break;
        case 1:
            n = snprintf(topic, sizeof(topic), "https://ex.com/%u" PAD "/%u/tail", v, v / 3);
            break;
        case 2:
            n = snprintf(topic, sizeof(topic), "https://ex.com/x?q=%u" PAD "&r=%u", v, v);
            break;
        case 3:
            n = snprintf(topic, sizeof(topic), "https://ex.com/b/%u" PAD "/tail", v);
            break;
        default:
            n = snprintf(topic, sizeof(topic), "https://ex.com/%u%%2F" PAD "/tail", v);
            break;
        }
        bool want = qs_selector_match(sel[k], topic, (size_t)n);
        bool got = qs_selector_table_match(t, sel[k], topic, (size_t)n);
        if (want != got)
            qs_test_fail(__FILE__, __LINE__, "capacity %zu: %s vs %s: cached %d, direct %d",
                         capacity, sel[k]->str, topic, got, want);
        checks++;
    }
    uint64_t hits, misses;
    size_t entries;
    qs_selector_table_stats(t, &hits, &misses, &entries);
    ASSERT(entries <= capacity);
    ASSERT(hits + misses <= checks);
    ASSERT(hits + misses >= checks / 4); /* the others were ruled out by prefix or suffix */
    if (capacity >= 100000)
        ASSERT(hits > 5 * misses); /* the working set fits: misses are first sightings */
    else
        ASSERT(hits > 0);
    if (capacity <= 1000)
        ASSERT(entries >= capacity - capacity % 4); /* churn fills every way */
    for (int k = 0; k < NSEL; k++)
        qs_selector_table_release(t, sel[k]);
    qs_selector_table_free(t);
}

TEST(cache_is_exact_under_churn)
{
    churn(1);
    churn(3);
    churn(4);
    churn(64);
    churn(1001);
    churn(100000);
}

/* One topic under many selectors: the entries must spread over buckets, not fight over the
 * ways of one. */
TEST(cache_spreads_one_topic_over_selectors)
{
    enum { N = 200 };
    qs_selector_table *t = qs_selector_table_new(4 * N);
    qs_selector *sel[N];
    char s[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(s, sizeof(s), "https://ex.com/{a}/%d/{b}", i);
        sel[i] = qs_selector_table_acquire(t, s, (size_t)n);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++)
            ASSERT(!qs_selector_table_match(t, sel[i], S("https://ex.com/" PAD)));
    uint64_t hits, misses;
    size_t entries;
    qs_selector_table_stats(t, &hits, &misses, &entries);
    ASSERT_EQ_INT(2 * N, hits + misses);
    ASSERT(hits >= N * 9 / 10); /* a few may share a full bucket; most must survive */
    for (int i = 0; i < N; i++)
        qs_selector_table_release(t, sel[i]);
    qs_selector_table_free(t);
}

/* Large selectors are freed as soon as nobody uses them: coming back, they are compiled again
 * (a new id), while a small one is still parked with its id. */
TEST(large_selectors_are_not_parked)
{
    qs_selector_table *t = qs_selector_table_new(100);
    char big[2100];
    size_t n = (size_t)snprintf(big, sizeof(big), "{a}");
    while (n < 2000)
        big[n++] = 'x';
    big[n++] = '{';
    big[n++] = 'b';
    big[n++] = '}';
    qs_selector *sel = qs_selector_table_acquire(t, big, n);
    ASSERT_EQ_INT(QS_SEL_TEMPLATE, sel->kind);
    uint64_t id = sel->id;
    qs_selector_table_release(t, sel);
    sel = qs_selector_table_acquire(t, big, n);
    ASSERT(sel->id != id);
    qs_selector_table_release(t, sel);

    /* A long exact selector is not kept either. */
    qs_selector *exact = qs_selector_table_acquire(t, big + 3, 2100 - 3 - 3 - 16);
    ASSERT_EQ_INT(QS_SEL_EXACT, exact->kind);
    id = exact->id;
    qs_selector_table_release(t, exact);
    exact = qs_selector_table_acquire(t, big + 3, 2100 - 3 - 3 - 16);
    ASSERT(exact->id != id);
    qs_selector_table_release(t, exact);

    qs_selector *small = qs_selector_table_acquire(t, S("https://example.com/{id}"));
    id = small->id;
    qs_selector_table_release(t, small);
    small = qs_selector_table_acquire(t, S("https://example.com/{id}"));
    ASSERT(small->id == id);
    qs_selector_table_release(t, small);
    qs_selector_table_free(t);
}

static const qs_selector_limits default_limits = {4096, 64, 1024, 4096};

/* Runs qs_selector_check on one selector alone; returns its reason or NULL. */
static const char *check_one(const qs_selector_limits *lim, const char *s, size_t len)
{
    static char why[QS_SELECTOR_REASON_SIZE];
    size_t states = 0;
    return qs_selector_check(lim, s, len, &states, why);
}

static char *repeated(const char *unit, size_t times)
{
    size_t u = strlen(unit);
    char *s = malloc(u * times + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * u, unit, u);
    s[u * times] = '\0';
    return s;
}

TEST(check_accepts_what_applications_send)
{
    static const char *const ok[] = {
        "*",
        "https://example.com/books/1",
        "https://example.com/books/{id}",
        "https://example.com/users/{user}/conversations/{conv}/messages{/message}{?page,limit}",
        "/.well-known/mercure/subscriptions{/topic}{/subscriber}",
        "{+base}/api/v2/organizations/{org}/repositories/{repo}/issues/{number}/comments/{id}",
        "https://example.com/{id", /* "{" but not a template: a plain string */
        "",
    };
    size_t states = 0;
    char why[QS_SELECTOR_REASON_SIZE];
    for (size_t i = 0; i < QS_ARRAY_LEN(ok); i++) {
        const char *r = qs_selector_check(&default_limits, ok[i], strlen(ok[i]), &states, why);
        if (r)
            qs_test_fail(__FILE__, __LINE__, "\"%s\" refused: %s", ok[i], r);
    }
    /* Four templates, each within one word of 64 states. */
    ASSERT_EQ_INT(4 * 64, states);

    /* An exact topic of any length is not limited. */
    char *exact = repeated("x", 100000);
    ASSERT(check_one(&default_limits, exact, 100000) == NULL);
    free(exact);
}

TEST(check_refuses_the_attack)
{
    /* The selector of issue 11: "{+a}" ten thousand times. */
    char *attack = repeated("{+a}", 10000);
    const char *r = check_one(&default_limits, attack, strlen(attack));
    ASSERT(r != NULL);
    ASSERT_EQ_STR("Topic selector too long: 40000 bytes (max_selector_length 4096).", r);
    ASSERT(!strchr(r, '\n'));
    free(attack);

    /* The same within the length: too many expressions. */
    attack = repeated("{+a}", 1000);
    ASSERT_EQ_STR("Topic selector has too many expressions: 1000 (max_selector_expressions 64).",
                  check_one(&default_limits, attack, strlen(attack)));
    free(attack);

    /* Few expressions, many states. */
    attack = repeated("{?a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z}", 60);
    ASSERT_EQ_STR("Topic selector too complex: 1621 automaton states (max_selector_states 1024).",
                  check_one(&default_limits, attack, strlen(attack)));
    free(attack);

    /* A string with "{" that is not a template is only limited by its length. */
    char *broken = repeated("{", 4096);
    ASSERT(check_one(&default_limits, broken, 4096) == NULL);
    free(broken);
    broken = repeated("{", 4097);
    ASSERT_EQ_STR("Topic selector too long: 4097 bytes (max_selector_length 4096).",
                  check_one(&default_limits, broken, 4097));
    free(broken);
}

TEST(check_limits_are_inclusive_and_zero_is_none)
{
    qs_selector_limits lim = {16, 2, 3, 0};
    ASSERT(check_one(&lim, S("{a}/{b}/12345678")) == NULL); /* 16 bytes, 2 expressions */
    ASSERT(check_one(&lim, S("{a}/{b}/123456789")) != NULL);
    ASSERT(check_one(&lim, S("{a}{b}{c}")) != NULL);
    ASSERT(check_one(&lim, S("{a}/{b}/{c}")) != NULL); /* 3 expressions */
    ASSERT(check_one(&lim, S("{/a}")) == NULL);        /* 3 states */
    ASSERT(check_one(&lim, S("{/a,b}")) != NULL);      /* 4 */
    lim.max_expressions = 0;
    ASSERT(check_one(&lim, S("{/a}{b}{c}")) == NULL); /* 3 states, 3 expressions */
    ASSERT(check_one(&lim, S("{/a}{/b}")) != NULL);
    lim = (qs_selector_limits){0, 0, 0, 0};
    char *huge = repeated("{/a}", 5000);
    ASSERT(check_one(&lim, huge, strlen(huge)) == NULL);
    free(huge);
}

TEST(check_totals_a_subscribers_templates)
{
    qs_selector_limits lim = {4096, 64, 1024, 256};
    size_t states = 0;
    char why[QS_SELECTOR_REASON_SIZE];
    /* Exact selectors are free; each template counts at least 64 states. */
    for (int i = 0; i < 10; i++)
        ASSERT(qs_selector_check(&lim, S("https://example.com/1"), &states, why) == NULL);
    for (int i = 0; i < 4; i++)
        ASSERT(qs_selector_check(&lim, S("https://example.com/{id}"), &states, why) == NULL);
    ASSERT_EQ_INT(256, states);
    const char *r = qs_selector_check(&lim, S("https://example.com/{id}"), &states, why);
    ASSERT_EQ_STR("Topic selectors too complex together: 320 automaton states "
                  "(max_subscriber_states 256).",
                  r);
    ASSERT(r == why);
    ASSERT_EQ_INT(256, states); /* a refused selector adds nothing */

    /* 65 states take two words. */
    states = 0;
    char *tpl = repeated("/", 63);
    char sel[80];
    int n = snprintf(sel, sizeof(sel), "{a}%s{b}/{c}", tpl);
    ASSERT(qs_selector_check(&lim, sel, (size_t)n, &states, why) == NULL);
    ASSERT_EQ_INT(128, states);
    free(tpl);
}

/*-------- Protocol 1.0 matchers --------*/

static qs_weburl *parse_base(const char *s)
{
    qs_weburl *u = qs_xmalloc(sizeof(*u));
    ASSERT_EQ_INT(0, qs_weburl_parse(s, strlen(s), NULL, u));
    return u;
}

static void free_base(qs_weburl *u)
{
    qs_weburl_free(u);
    free(u);
}

/* Each syntax has its namespace, except where two texts mean the same thing. */
TEST(syntaxes_intern_apart)
{
    qs_weburl *base = parse_base("http://mercure.invalid");
    qs_selector_table *t = qs_selector_table_new(100);
    qs_selector_table_set_base(t, base, 0);
    qs_selector *topic = qs_selector_table_acquire(t, S("https://e.com/{id}"));
    qs_selector *exact = qs_selector_table_acquire_as(t, QS_SYNTAX_EXACT, S("https://e.com/{id}"));
    qs_selector *pat =
        qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("https://e.com/:id"));
    qs_selector *plain = qs_selector_table_acquire_as(t, QS_SYNTAX_EXACT, S("https://e.com/1"));
    qs_selector *plain0 = qs_selector_table_acquire(t, S("https://e.com/1"));
    qs_selector *star = qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("*"));
    qs_selector *star0 = qs_selector_table_acquire(t, S("*"));
    ASSERT_EQ_INT(QS_SEL_TEMPLATE, topic->kind);
    ASSERT_EQ_INT(QS_SEL_EXACT, exact->kind); /* 1.0 exact: never a template */
    ASSERT(topic != exact);
    ASSERT_EQ_INT(QS_SYNTAX_EXACT, exact->syntax);
    ASSERT_EQ_INT(QS_SEL_URLPATTERN, pat->kind);
    ASSERT(pat->pat != NULL);
    ASSERT(plain == plain0); /* the same meaning, one selector */
    ASSERT_EQ_INT(QS_SYNTAX_TOPIC, plain->syntax);
    ASSERT(star == star0);
    ASSERT_EQ_INT(QS_SEL_ANY, star->kind);

    ASSERT(qs_selector_table_match(t, topic, S("https://e.com/1")));
    ASSERT(!qs_selector_table_match(t, exact, S("https://e.com/1")));
    ASSERT(qs_selector_table_match(t, exact, S("https://e.com/{id}")));
    ASSERT(qs_selector_table_match(t, pat, S("https://e.com/1")));
    ASSERT(qs_selector_table_match(t, pat, S("HTTPS://E.COM:443/1"))); /* parsed as a URL */
    ASSERT(!qs_selector_table_match(t, pat, S("https://e.com/1/2")));
    ASSERT(!qs_selector_table_match(t, pat, S("not a url")));

    qs_selector *all[] = {topic, exact, pat, plain, plain0, star, star0};
    for (size_t i = 0; i < QS_ARRAY_LEN(all); i++)
        qs_selector_table_release(t, all[i]);
    qs_selector_table_free(t);
    free_base(base);
}

/* Relative patterns and topics resolve against the base: with the synthetic one, relative
 * meets relative only; with a real one, both spellings of a URL meet. */
TEST(urlpattern_base)
{
    qs_weburl *synthetic = parse_base("http://mercure.invalid");
    qs_weburl *real = parse_base("https://hub.example/.well-known/mercure");
    qs_selector_table *t = qs_selector_table_new(0);
    qs_selector_table_set_base(t, synthetic, 0);
    qs_selector *rel = qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("/books/:id"));
    ASSERT(qs_selector_table_match(t, rel, S("/books/1")));
    ASSERT(!qs_selector_table_match(t, rel, S("https://hub.example/books/1")));
    qs_selector_table_release(t, rel);
    qs_selector_table_free(t);

    t = qs_selector_table_new(0);
    qs_selector_table_set_base(t, real, 0);
    rel = qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("/books/:id"));
    ASSERT(qs_selector_table_match(t, rel, S("/books/1")));
    ASSERT(qs_selector_table_match(t, rel, S("https://hub.example/books/1")));
    ASSERT(!qs_selector_table_match(t, rel, S("https://other.example/books/1")));
    qs_selector_table_release(t, rel);
    qs_selector_table_free(t);

    /* Without a base, or invalid, a pattern matches nothing. */
    t = qs_selector_table_new(0);
    qs_selector *none = qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("/books/:id"));
    ASSERT(none->pat == NULL);
    ASSERT(!qs_selector_table_match(t, none, S("/books/1")));
    qs_selector_table_release(t, none);
    qs_selector_table_set_base(t, real, 0);
    qs_selector *bad = qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("https://e.com/("));
    ASSERT_EQ_INT(QS_SEL_URLPATTERN, bad->kind);
    ASSERT(!qs_selector_table_match(t, bad, S("https://e.com/(")));
    qs_selector_table_release(t, bad);
    qs_selector_table_free(t);
    free_base(synthetic);
    free_base(real);
}

/* URL patterns go through the cache; a canonical topic their fixed beginning rules out does
 * not, and a topic is parsed once for the patterns of one update. */
TEST(urlpattern_cache_and_parses)
{
    qs_weburl *base = parse_base("http://mercure.invalid");
    qs_selector_table *t = qs_selector_table_new(100);
    qs_selector_table_set_base(t, base, 0);
    qs_selector *a =
        qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("https://e.com/a/:id"));
    qs_selector *b =
        qs_selector_table_acquire_as(t, QS_SYNTAX_URLPATTERN, S("https://e.com/:kind/1"));
    uint64_t hits, misses;
    char *topics[] = {"https://e.com/a/1", "https://e.com/b/2"};
    size_t lens[] = {strlen(topics[0]), strlen(topics[1])};
    qs_topics v;
    qs_topics_init(&v, topics, lens, 2);
    ASSERT(qs_selector_table_match_in(t, a, &v, 0));
    ASSERT(!qs_selector_table_match_in(t, a, &v, 1)); /* ruled out by https://e.com/a/ */
    ASSERT(v.ts[1].parse == 0);                       /* not parsed */
    ASSERT(qs_selector_table_match_in(t, b, &v, 0));
    ASSERT(!qs_selector_table_match_in(t, b, &v, 1));
    ASSERT(v.ts[0].parse == 1 && v.ts[1].parse == 1);
    qs_selector_table_stats(t, &hits, &misses, NULL);
    ASSERT_EQ_INT(0, hits);
    ASSERT_EQ_INT(3, misses);
    ASSERT(qs_selector_table_match_in(t, a, &v, 0));
    qs_selector_table_stats(t, &hits, &misses, NULL);
    ASSERT_EQ_INT(1, hits);
    /* Once the topic is parsed, the fixed end of the pattern's path ("/1") settles it before
     * the cache: no lookup. */
    ASSERT(!qs_selector_table_match_in(t, b, &v, 1));
    qs_selector_table_stats(t, &hits, &misses, NULL);
    ASSERT_EQ_INT(1, hits);
    ASSERT_EQ_INT(3, misses);
    qs_topics_free(&v);
    /* A topic that is not canonical is parsed, and matches. */
    ASSERT(qs_selector_table_match(t, a, S("https://E.com/a/1")));
    ASSERT(qs_selector_table_match(t, a, S("https://e.com/b/../a/1")));
    qs_selector_table_release(t, a);
    qs_selector_table_release(t, b);
    qs_selector_table_free(t);
    free_base(base);
}
