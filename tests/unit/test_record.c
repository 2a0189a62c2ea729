/* SPDX-License-Identifier: MIT
 * test_record.c - stored update records round-trip and reject corrupt bytes.
 */
#include "harness.h"
#include "record.h"

static qs_update *sample(void)
{
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, "https://example.com/a", 21);
    qs_update_add_topic(u, "alt\0nul", 7);
    qs_update_set_id(u, "urn:uuid:1", 10);
    qs_update_set_type(u, "custom", 6);
    qs_update_set_data(u, "line1\nline2\0bin", 15);
    u->retry = 300000;
    u->is_private = true;
    return u;
}

TEST(round_trip_keeps_every_field)
{
    qs_update *u = sample();
    qs_buf b = QS_BUF_INIT;
    qs_record_encode(u, &b);
    qs_update *d = qs_record_decode(b.p, b.len);
    ASSERT(d != NULL);
    ASSERT_EQ_STR("urn:uuid:1", d->id);
    ASSERT_EQ_STR("custom", d->type);
    ASSERT_EQ_INT(300000, d->retry);
    ASSERT(d->is_private);
    ASSERT_EQ_INT(2, d->n_topics);
    ASSERT_EQ_MEM("alt\0nul", 7, d->topics[1], d->topic_lens[1]);
    ASSERT_EQ_MEM("line1\nline2\0bin", 15, d->data, d->data_len);
    qs_slice id;
    ASSERT(qs_record_id(b.p, b.len, &id));
    ASSERT_EQ_MEM("urn:uuid:1", 10, id.p, id.n);
    qs_update_unref(d);
    qs_update_unref(u);
    qs_buf_free(&b);
}

TEST(every_truncation_and_bit_flip_is_handled)
{
    qs_update *u = sample();
    qs_buf b = QS_BUF_INIT;
    qs_record_encode(u, &b);
    for (size_t n = 0; n < b.len; n++)
        ASSERT(qs_record_decode(b.p, n) == NULL);
    for (size_t i = 0; i < b.len; i++)
        for (int bit = 0; bit < 8; bit++) {
            b.p[i] ^= (char)(1 << bit);
            qs_update *d = qs_record_decode(b.p, b.len); /* may decode; must not crash */
            if (d)
                qs_update_unref(d);
            b.p[i] ^= (char)(1 << bit);
        }
    qs_update_unref(u);
    qs_buf_free(&b);
}
