/* SPDX-License-Identifier: MIT
 * test_strmap.c - the hash map against a brute-force model, and SipHash vectors.
 */
#include "harness.h"
#include "strmap.h"

#include <stdio.h>

TEST(siphash13_is_stable_and_keyed)
{
    uint64_t k1[2] = {1, 2}, k2[2] = {1, 3};
    ASSERT(qs_siphash13(k1, "abc", 3) == qs_siphash13(k1, "abc", 3));
    ASSERT(qs_siphash13(k1, "abc", 3) != qs_siphash13(k2, "abc", 3));
    ASSERT(qs_siphash13(k1, "abc", 3) != qs_siphash13(k1, "abd", 3));
    ASSERT(qs_siphash13(k1, "", 0) != qs_siphash13(k1, "\0", 1));
}

TEST(put_get_remove)
{
    qs_strmap m;
    qs_strmap_init(&m);
    int a = 1, b = 2;
    qs_strmap_put(&m, "alpha", 5, &a);
    qs_strmap_put(&m, "beta", 4, &b);
    ASSERT(qs_strmap_get(&m, "alpha", 5) == &a);
    ASSERT(qs_strmap_get(&m, "beta", 4) == &b);
    ASSERT(qs_strmap_get(&m, "gamma", 5) == NULL);
    ASSERT(qs_strmap_get(&m, "alph", 4) == NULL);
    ASSERT(qs_strmap_remove(&m, "alpha", 5) == &a);
    ASSERT(qs_strmap_get(&m, "alpha", 5) == NULL);
    ASSERT_EQ_INT(1, qs_strmap_count(&m));
    qs_strmap_free(&m);
}

/* Random inserts and removals checked against a plain array of flags. */
TEST(matches_model_under_churn)
{
    enum { N = 3000 };
    static int present[N];
    static int values[N];
    qs_strmap m;
    qs_strmap_init(&m);
    unsigned seed = 12345;
    char key[32];
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % N);
        int len = snprintf(key, sizeof(key), "topic/%d", k);
        if ((seed >> 4) & 1) {
            qs_strmap_put(&m, key, (size_t)len, &values[k]);
            present[k] = 1;
        } else {
            void *v = qs_strmap_remove(&m, key, (size_t)len);
            ASSERT(v == (present[k] ? &values[k] : NULL));
            present[k] = 0;
        }
    }
    size_t count = 0;
    for (int k = 0; k < N; k++) {
        int len = snprintf(key, sizeof(key), "topic/%d", k);
        ASSERT(qs_strmap_get(&m, key, (size_t)len) == (present[k] ? &values[k] : NULL));
        count += (size_t)present[k];
    }
    ASSERT_EQ_INT(count, qs_strmap_count(&m));
    size_t iterated = 0;
    const qs_strmap_entry *e;
    for (size_t pos = 0; qs_strmap_next(&m, &pos, &e);)
        iterated++;
    ASSERT_EQ_INT(count, iterated);
    qs_strmap_free(&m);
}
