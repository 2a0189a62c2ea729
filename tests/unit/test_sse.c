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
    char expected[128], chunk[160];
    int n = snprintf(expected, sizeof(expected), "id: %s\ndata: hello\n\n", u->id);
    snprintf(chunk, sizeof(chunk), "%x\r\n%s\r\n", n, expected);
    size_t len;
    /* A chunked stream gets the event framed as one chunk, a close-delimited one the event. */
    const char *p = qs_frame_bytes(u->frame, true, &len);
    ASSERT_EQ_MEM(chunk, strlen(chunk), p, len);
    p = qs_frame_bytes(u->frame, false, &len);
    ASSERT_EQ_MEM(expected, strlen(expected), p, len);
    qs_frame *f = qs_frame_ref(u->frame);
    qs_update_unref(u);
    p = qs_frame_bytes(f, false, &len);
    ASSERT_EQ_MEM(expected, strlen(expected), p, len); /* the frame outlives the update */
    qs_frame_unref(f);
}

TEST(static_frames)
{
    size_t len;
    const char *p = qs_frame_bytes(qs_frame_comment(), false, &len);
    ASSERT_EQ_MEM(":\n", 2, p, len);
    p = qs_frame_bytes(qs_frame_comment(), true, &len);
    ASSERT_EQ_MEM("2\r\n:\n\r\n", 7, p, len);
    p = qs_frame_bytes(qs_frame_last_chunk(), false, &len);
    ASSERT_EQ_MEM("0\r\n\r\n", 5, p, len);
    ASSERT(qs_frame_last_chunk()->flags & QS_FRAME_FINAL);
    qs_frame_unref(qs_frame_ref(qs_frame_comment())); /* static frames are never freed */
    ASSERT_EQ_INT(7, qs_frame_comment()->len);
}
