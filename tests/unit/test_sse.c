/* SPDX-License-Identifier: MIT
 * test_sse.c - SSE framing against the reference hub's golden bytes.
 */
#include "harness.h"
#include "sse.h"
#include "update.h"

static void check(const char *type, uint64_t retry, const char *id, const char *data,
                  const char *expected)
{
    qs_buf b = QS_BUF_INIT;
    qs_sse_encode(&b, type, retry, id, data, strlen(data));
    ASSERT_EQ_MEM(expected, strlen(expected), b.p, b.len);
    qs_buf_free(&b);
}

/* The reference's subscribe test: two events, one with a type, one with retry. */
TEST(golden_stream_from_reference_test)
{
    qs_buf b = QS_BUF_INIT;
    qs_buf_append_str(&b, ":\n");
    qs_sse_encode(&b, "test", 0, "b", "Hello World", 11);
    qs_sse_encode(&b, NULL, 1, "c", "Great", 5);
    const char *expected = ":\nevent: test\nid: b\ndata: Hello World\n\nretry: 1\nid: c\n"
                           "data: Great\n\n";
    ASSERT_EQ_MEM(expected, strlen(expected), b.p, b.len);
    qs_buf_free(&b);
}

TEST(multiline_data_from_conformance_suite)
{
    check(NULL, 0, "id-1", "data for\n\n        raw string",
          "id: id-1\ndata: data for\ndata: \ndata:         raw string\n\n");
}

TEST(line_endings_cr_lf_crlf_each_end_one_line)
{
    check(NULL, 0, "x", "a\r\nb\rc\nd", "id: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    check(NULL, 0, "x", "a\r\n", "id: x\ndata: a\ndata: \n\n");
    check(NULL, 0, "x", "\r\r\n\n", "id: x\ndata: \ndata: \ndata: \ndata: \n\n");
}

TEST(empty_data_still_has_a_data_line)
{
    check(NULL, 0, "x", "", "id: x\ndata: \n\n");
}

TEST(field_order_event_retry_id_data)
{
    check("message", 5000, "urn:uuid:1", "{}",
          "event: message\nretry: 5000\nid: urn:uuid:1\ndata: {}\n\n");
}

TEST(empty_type_and_zero_retry_are_omitted)
{
    check("", 0, "x", "d", "id: x\ndata: d\n\n");
}

TEST(update_frame_is_encoded_once_with_generated_uuid7)
{
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, "https://example.com/books/1", 27);
    qs_update_set_data(u, "hello", 5);
    qs_update_finalize(u);
    ASSERT(u->id != NULL);
    ASSERT_EQ_INT(45, strlen(u->id));
    ASSERT(strncmp(u->id, "urn:uuid:", 9) == 0);
    ASSERT_EQ_INT('7', u->id[9 + 14]); /* version nibble */
    char expected[128];
    snprintf(expected, sizeof(expected), "id: %s\ndata: hello\n\n", u->id);
    ASSERT_EQ_MEM(expected, strlen(expected), u->frame->data, u->frame->len);
    qs_frame *f = qs_frame_ref(u->frame);
    qs_update_unref(u);
    ASSERT_EQ_MEM(expected, strlen(expected), f->data, f->len); /* the frame outlives it */
    qs_frame_unref(f);
}

TEST(static_frames)
{
    ASSERT_EQ_MEM(":\n", 2, qs_frame_comment()->data, qs_frame_comment()->len);
    ASSERT_EQ_MEM("0\r\n\r\n", 5, qs_frame_last_chunk()->data, qs_frame_last_chunk()->len);
    ASSERT(qs_frame_last_chunk()->flags & QS_FRAME_FINAL);
    qs_frame_unref(qs_frame_ref(qs_frame_comment())); /* static frames are never freed */
    ASSERT_EQ_INT(2, qs_frame_comment()->len);
}
