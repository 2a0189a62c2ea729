/* SPDX-License-Identifier: MIT
 * fuzz_topic.c - libFuzzer target for topic selectors and URI template matching.
 *
 * Input: the selector, then "\n", then the topic (without "\n" the input is both). Checks
 * the selector kind rules, that matching is deterministic, that a selector matches its own
 * text, that matching through a table with a tiny cache (so that entries are evicted and
 * replaced all the time) always agrees with uncached matching, that measuring a template
 * agrees with compiling it, that the cheap path agrees with the full one, and that the
 * subscribe handler's check accepts or refuses by the numbers it reports.
 */
#include "topic.h"
#include "uritemplate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Matching is linear in the topic and the automaton is linear in the template; the bound
 * keeps a single run in the microseconds-to-milliseconds range. */
#define MAX_INPUT 4096
#define PREFIXES 16

static void check(bool cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    const char *in = (const char *)data;
    const char *nl = size ? memchr(in, '\n', size) : NULL;
    size_t sel_len = nl ? (size_t)(nl - in) : size;
    const char *topic = nl ? nl + 1 : in;
    size_t topic_len = nl ? size - sel_len - 1 : size;

    qs_selector *sel = qs_selector_compile(in, sel_len);
    bool has_brace = sel_len && memchr(in, '{', sel_len);
    check((sel->kind == QS_SEL_ANY) == (sel_len == 1 && in[0] == '*'));
    if (sel->kind == QS_SEL_TEMPLATE)
        check(has_brace && sel->tpl);
    if (has_brace && sel->kind != QS_SEL_ANY) {
        const char *err = NULL;
        qs_uritemplate *t = qs_uritemplate_compile(in, sel_len, &err);
        check((t != NULL) == (sel->kind == QS_SEL_TEMPLATE));
        check(t || (err && *err));
        size_t expressions = 0, states = 0;
        bool measured = qs_uritemplate_measure(in, sel_len, &expressions, &states, NULL);
        check(measured == (t != NULL));
        if (t) {
            check(states == qs_uritemplate_states(t) && states >= 1);
            check(expressions >= 1 && expressions <= sel_len / 2);
            bool full = qs_uritemplate_match(t, topic, topic_len);
            for (size_t steps = 0; steps <= 64; steps += 16) {
                int q = qs_uritemplate_quick_match(t, topic, topic_len, steps);
                check(q == -1 || q == full);
            }
            check(qs_uritemplate_quick_match(t, topic, topic_len, SIZE_MAX) == full);

            /* The handler's check: inclusive limits on what measure reports. */
            char why[QS_SELECTOR_REASON_SIZE];
            size_t total = 0;
            qs_selector_limits at = {sel_len, expressions, states, (states + 63) / 64 * 64};
            check(qs_selector_check(&at, in, sel_len, &total, why) == NULL);
            check(total == (states + 63) / 64 * 64);
            qs_selector_limits under = {0, expressions - 1, 0, 0};
            if (expressions > 1)
                check(qs_selector_check(&under, in, sel_len, &total, why) == why &&
                      !strchr(why, '\n'));
        }
        qs_uritemplate_free(t);
    }

    bool m = qs_selector_match(sel, topic, topic_len);
    check(qs_selector_match(sel, topic, topic_len) == m);
    check(qs_selector_match(sel, in, sel_len));
    bool equal = topic_len == sel_len && memcmp(topic, in, sel_len) == 0;
    if (sel->kind == QS_SEL_TEMPLATE && !equal)
        check(qs_uritemplate_match(sel->tpl, topic, topic_len) == m);
    if (sel->kind == QS_SEL_EXACT)
        check(m == equal);

    /* A tiny cache (a single bucket of 3 or 4 ways) so that entries are constantly
     * replaced by the prefixes matched below. */
    qs_selector_table *tab = qs_selector_table_new(size % 2 ? 5 : 3);
    qs_selector *ts = qs_selector_table_acquire(tab, in, sel_len);
    qs_selector *ts2 = qs_selector_table_acquire(tab, in, sel_len);
    check(ts == ts2 && ts->refs == 2 && ts->kind == sel->kind);
    for (int round = 0; round < 2; round++) {
        check(qs_selector_table_match(tab, ts, topic, topic_len) == m);
        for (size_t k = 0; k < PREFIXES; k++) {
            size_t n = topic_len * k / PREFIXES;
            check(qs_selector_table_match(tab, ts, topic, n) == qs_selector_match(sel, topic, n));
        }
    }
    uint64_t hits, misses;
    size_t entries;
    qs_selector_table_stats(tab, &hits, &misses, &entries);
    check(entries <= 5);
    if (sel->kind != QS_SEL_TEMPLATE)
        check(hits == 0 && misses == 0 && entries == 0);
    qs_selector_table_release(tab, ts2);
    qs_selector_table_release(tab, ts);
    qs_selector_table_free(tab);
    qs_selector_release(sel);
    return 0;
}
