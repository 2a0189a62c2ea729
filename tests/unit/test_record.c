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

/* A record with one topic "t" and no data, from raw id and type bytes (each < 128). */
static void raw_record(qs_buf *b, const char *id, size_t id_len, const char *type, size_t type_len)
{
    qs_buf_reset(b);
    qs_buf_append(b, "\x01\x00\x00", 3);
    qs_buf_append_char(b, (char)id_len);
    qs_buf_append(b, id, id_len);
    qs_buf_append_char(b, (char)type_len);
    qs_buf_append(b, type, type_len);
    qs_buf_append(b, "\x01\x01t\x00", 4);
}

TEST(ids_and_types_holding_nul_cr_or_lf_are_corrupt)
{
    /* Found by fuzz_record: the id "\0" decoded to an empty id, and "a\nb" would have added
     * a line to the SSE event. The publish handler never accepts them. */
    static const unsigned char nul_id[] = {1, 0, 0, 1, 0, 0, 1, 0, 0};
    ASSERT(qs_record_decode(nul_id, sizeof(nul_id)) == NULL);
    qs_slice id;
    ASSERT(!qs_record_id(nul_id, sizeof(nul_id), &id));

    qs_buf b = QS_BUF_INIT;
    static const char *const bad[] = {"a\nb", "a\rb", "ab\0", "\n"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        size_t n = i == 2 ? 3 : strlen(bad[i]);
        raw_record(&b, bad[i], n, "", 0);
        ASSERT(qs_record_decode(b.p, b.len) == NULL);
        ASSERT(!qs_record_id(b.p, b.len, &id));
        raw_record(&b, "id", 2, bad[i], n);
        ASSERT(qs_record_decode(b.p, b.len) == NULL);
        ASSERT(qs_record_id(b.p, b.len, &id)); /* the id itself is fine */
    }
    raw_record(&b, "id: x", 5, "a:b c", 5);
    qs_update *u = qs_record_decode(b.p, b.len);
    ASSERT(u != NULL);
    ASSERT_EQ_STR("id: x", u->id);
    ASSERT_EQ_STR("a:b c", u->type);
    qs_update_unref(u);
    qs_buf_free(&b);
}

TEST(varints_longer_than_64_bits_are_corrupt)
{
    /* Found by fuzz_record: a 10th byte above 1 lost its high bits, and the retry decoded
     * as another number instead of failing. */
    static const unsigned char found[] = {1,    0,    0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xa3,
                                          0xda, 0xda, 0x69, 1,    1,    0,    1,    0,    0};
    ASSERT(qs_record_decode(found, sizeof(found)) == NULL);

    unsigned char rec[] = {1,    0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                           0xff, 0x01, 1,    'i',  0,    1,    1,    't',  0};
    qs_update *u = qs_record_decode(rec, sizeof(rec));
    ASSERT(u != NULL);
    ASSERT(u->retry == UINT64_MAX);
    qs_update_unref(u);
    rec[11] = 0x02; /* bit 64 */
    ASSERT(qs_record_decode(rec, sizeof(rec)) == NULL);
    rec[11] = 0x81; /* an 11th byte */
    ASSERT(qs_record_decode(rec, sizeof(rec)) == NULL);
}
