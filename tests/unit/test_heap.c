/* SPDX-License-Identifier: MIT
 * test_heap.c - the deadline heap against a sorted model under random pushes/removals.
 */
#include "harness.h"
#include "heap.h"

TEST(pops_in_key_order_with_random_removals)
{
    enum { N = 2000 };
    static qs_heap_node nodes[N];
    static int in_heap[N];
    qs_heap h;
    qs_heap_init(&h);
    unsigned seed = 7;
    for (int step = 0; step < 50000; step++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % N);
        if ((seed >> 3) % 3) {
            qs_heap_push(&h, &nodes[i], (seed >> 12) % 100000);
            in_heap[i] = 1;
        } else {
            qs_heap_remove(&h, &nodes[i]);
            in_heap[i] = 0;
        }
        ASSERT_EQ_INT(in_heap[i], qs_heap_contains(&nodes[i]));
    }
    uint32_t expected = 0;
    for (int i = 0; i < N; i++)
        expected += (uint32_t)in_heap[i];
    ASSERT_EQ_INT(expected, h.n);
    uint64_t last = 0;
    uint32_t popped = 0;
    while (qs_heap_top(&h)) {
        qs_heap_node *top = qs_heap_top(&h);
        ASSERT(top->key >= last);
        last = top->key;
        qs_heap_remove(&h, top);
        popped++;
    }
    ASSERT_EQ_INT(expected, popped);
    qs_heap_free(&h);
}
