/* SPDX-License-Identifier: MIT
 * fuzz_http1.c - the request-head parser and chunked decoder on arbitrary bytes.
 *
 * The first three input bytes pick the head limit and the split points; the rest is the
 * stream. Besides memory errors this checks that results never depend on how the stream was
 * split across reads, and that successful results respect the documented invariants.
 */
#include "http1_parse.h"

#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static bool slice_within(qs_slice s, const char *base, size_t len)
{
    return s.p >= base && s.n <= len && (size_t)(s.p - base) <= len - s.n;
}

static size_t offset_of(qs_slice s, const char *base)
{
    return (size_t)(s.p - base);
}

static void check_request(const qs_http1_head *r, const char *buf, size_t len, size_t max_head)
{
    CHECK(r->head_len > 0 && r->head_len <= len && r->head_len <= max_head);
    CHECK(buf[r->head_len - 1] == '\n');
    CHECK(slice_within(r->method, buf, r->head_len) && r->method.n > 0);
    CHECK(slice_within(r->target, buf, r->head_len) && r->target.n > 0);
    CHECK(slice_within(r->path, r->target.p, r->target.n));
    CHECK(slice_within(r->query, r->target.p, r->target.n));
    CHECK(r->minor_version == 0 || r->minor_version == 1);
    CHECK(r->n_headers <= QS_HTTP1_MAX_HEADERS);
    for (size_t i = 0; i < r->n_headers; i++) {
        const qs_header *h = &r->headers[i];
        CHECK(slice_within(h->name, buf, r->head_len) && h->name.n > 0);
        CHECK(slice_within(h->value, buf, r->head_len));
        CHECK(memchr(h->value.p, '\r', h->value.n) == NULL);
        CHECK(memchr(h->value.p, '\n', h->value.n) == NULL);
        if (h->value.n)
            CHECK(h->value.p[0] != ' ' && h->value.p[h->value.n - 1] != ' ');
    }
    CHECK(!(r->chunked && r->has_content_length));
    CHECK(!r->chunked || r->minor_version == 1);
    CHECK(qs_headers_count(r->headers, r->n_headers, "host") <= 1);
    CHECK(r->minor_version == 0 || qs_headers_count(r->headers, r->n_headers, "host") == 1);
    CHECK(!r->expect_continue || r->minor_version == 1);
}

/* Same result, compared by offsets since the two runs may use different buffers. */
static void check_same(const qs_http1_head *a, const char *abuf, const qs_http1_head *b,
                       const char *bbuf)
{
    CHECK(a->head_len == b->head_len && a->n_headers == b->n_headers);
    CHECK(offset_of(a->method, abuf) == offset_of(b->method, bbuf) && a->method.n == b->method.n);
    CHECK(offset_of(a->path, abuf) == offset_of(b->path, bbuf) && a->path.n == b->path.n);
    CHECK(offset_of(a->query, abuf) == offset_of(b->query, bbuf) && a->query.n == b->query.n);
    for (size_t i = 0; i < a->n_headers; i++) {
        CHECK(offset_of(a->headers[i].value, abuf) == offset_of(b->headers[i].value, bbuf));
        CHECK(a->headers[i].value.n == b->headers[i].value.n);
    }
    CHECK(a->keep_alive == b->keep_alive && a->chunked == b->chunked);
    CHECK(a->has_content_length == b->has_content_length);
    CHECK(a->content_length == b->content_length);
    CHECK(a->expect_continue == b->expect_continue);
    CHECK(a->minor_version == b->minor_version);
}

/* Runs the head parser on growing prefixes, each in its own exactly-sized allocation so that
 * a read past `len` is caught even though the fuzzer's buffer is longer. */
static enum qs_http1_status parse_in_pieces(const char *data, size_t size, const size_t *cuts,
                                            size_t ncuts, size_t max_head, qs_http1_head *r,
                                            char **kept, const char **err)
{
    qs_http1_parser p = {0};
    enum qs_http1_status st = QS_HTTP1_AGAIN;
    char *prev = NULL;
    size_t prev_scanned = 0;
    for (size_t c = 0; c <= ncuts && st == QS_HTTP1_AGAIN; c++) {
        size_t len = c < ncuts ? cuts[c] : size;
        char *copy = malloc(len ? len : 1);
        memcpy(copy, data, len);
        st = qs_http1_parse_head(&p, copy, len, max_head, r, err);
        if (st == QS_HTTP1_AGAIN) {
            CHECK(len < max_head);
            CHECK(p.scanned <= len && p.scanned >= prev_scanned);
            prev_scanned = p.scanned;
        }
        free(prev);
        prev = copy;
    }
    *kept = prev;
    return st;
}

static enum qs_http1_status decode_in_pieces(const char *in, size_t len, const size_t *cuts,
                                             size_t ncuts, size_t max_body, qs_buf *out,
                                             size_t *total)
{
    qs_http1_chunked d;
    qs_http1_chunked_reset(&d);
    const char *err = NULL;
    size_t pos = 0;
    enum qs_http1_status st = QS_HTTP1_AGAIN;
    for (size_t c = 0; c <= ncuts && st == QS_HTTP1_AGAIN; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        if (end < pos)
            end = pos;
        size_t n = end - pos, consumed = 0;
        char *copy = malloc(n ? n : 1);
        memcpy(copy, in + pos, n);
        st = qs_http1_parse_chunked(&d, copy, n, &consumed, out, max_body, &err);
        free(copy);
        CHECK(consumed <= n);
        if (st == QS_HTTP1_AGAIN)
            CHECK(consumed == n);
        else if (st != QS_HTTP1_OK)
            CHECK(err != NULL);
        CHECK(out->len <= max_body);
        pos += consumed;
    }
    *total = pos;
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static qs_http1_head one, split;
    if (size < 3)
        return 0;
    size_t max_head = 16 + (size_t)data[0] * 4;
    unsigned s1 = data[1], s2 = data[2];
    const char *buf = (const char *)data + 3;
    size -= 3;

    size_t cuts[2];
    cuts[0] = size ? s1 % (size + 1) : 0;
    cuts[1] = cuts[0] + (size - cuts[0] ? s2 % (size - cuts[0] + 1) : 0);

    const char *err1 = NULL, *err2 = NULL;
    char *b1, *b2;
    enum qs_http1_status st1 = parse_in_pieces(buf, size, NULL, 0, max_head, &one, &b1, &err1);
    enum qs_http1_status st2 = parse_in_pieces(buf, size, cuts, 2, max_head, &split, &b2, &err2);
    CHECK(st1 == st2);
    if (st1 == QS_HTTP1_OK) {
        check_request(&one, b1, size, max_head);
        check_same(&one, b1, &split, b2);
    } else if (st1 != QS_HTTP1_AGAIN) {
        CHECK(err1 != NULL && err2 != NULL && strcmp(err1, err2) == 0);
    }
    free(b1);
    free(b2);

    /* The body after a good head, or the whole input otherwise, through the chunked decoder. */
    size_t off = st1 == QS_HTTP1_OK ? one.head_len : 0;
    const char *in = buf + off;
    size_t len = size - off, max_body = 1024, total1, total2;
    size_t bcuts[2] = {len ? s2 % (len + 1) : 0, len ? s1 % (len + 1) : 0};
    if (bcuts[1] < bcuts[0])
        bcuts[1] = bcuts[0];
    qs_buf out1 = QS_BUF_INIT, out2 = QS_BUF_INIT;
    enum qs_http1_status c1 = decode_in_pieces(in, len, NULL, 0, max_body, &out1, &total1);
    enum qs_http1_status c2 = decode_in_pieces(in, len, bcuts, 2, max_body, &out2, &total2);
    CHECK(c1 == c2 && total1 == total2);
    CHECK(out1.len == out2.len && (out1.len == 0 || memcmp(out1.p, out2.p, out1.len) == 0));
    /* Decoding never produces more bytes than it reads. */
    CHECK(out1.len <= total1);
    qs_buf_free(&out1);
    qs_buf_free(&out2);
    return 0;
}
