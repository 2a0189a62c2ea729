/* SPDX-License-Identifier: MIT
 * update_check.h - invariants of an update decoded from storage (a record, a Redis stream
 * entry), shared by the fuzz targets that decode them.
 *
 *  - update_check_shape: what the publish handler guarantees of every update it accepts
 *    also holds for a decoded one: an id and a type (when set) without NUL, CR or LF, at
 *    least one topic, NUL-terminated copies with the lengths recorded;
 *  - update_check_frame: the finalized SSE frame, read line by line as an EventSource reads
 *    it (CR, LF and CRLF all end a line), is exactly one event carrying the update's type,
 *    retry, id and data, so nothing stored can add fields or events to a stream;
 *  - updates_equal: field by field.
 */
#ifndef QS_FUZZ_UPDATE_CHECK_H
#define QS_FUZZ_UPDATE_CHECK_H

#include <inttypes.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "update.h"

static inline bool text_is_clean(const char *s, size_t n)
{
    return !memchr(s, '\0', n) && !memchr(s, '\r', n) && !memchr(s, '\n', n);
}

static inline void update_check_shape(const qs_update *u)
{
    CHECK(u->id && u->id[0]);
    CHECK(text_is_clean(u->id, strlen(u->id)));
    CHECK(!u->type || (u->type[0] && text_is_clean(u->type, strlen(u->type))));
    CHECK(u->n_topics >= 1 && u->topics && u->topic_lens);
    for (size_t i = 0; i < u->n_topics; i++)
        CHECK(u->topics[i] && u->topics[i][u->topic_lens[i]] == '\0');
    CHECK(u->data && u->data[u->data_len] == '\0');
}

static inline bool updates_equal(const qs_update *a, const qs_update *b)
{
    if (a->is_private != b->is_private || a->retry != b->retry || strcmp(a->id, b->id) != 0)
        return false;
    if ((a->type == NULL) != (b->type == NULL) || (a->type && strcmp(a->type, b->type) != 0))
        return false;
    if (a->n_topics != b->n_topics)
        return false;
    for (size_t i = 0; i < a->n_topics; i++)
        if (a->topic_lens[i] != b->topic_lens[i] ||
            memcmp(a->topics[i], b->topics[i], a->topic_lens[i]) != 0)
            return false;
    return a->data_len == b->data_len && memcmp(a->data, b->data, a->data_len) == 0;
}

/* The fields of one SSE event, as an EventSource collects them. */
typedef struct sse_fields {
    size_t events;       /* blank lines (dispatches) */
    bool after_dispatch; /* a line after the first dispatch */
    bool unterminated;   /* the last line has no line ending */
    size_t n_event, n_retry, n_id, n_data, n_other;
    qs_buf event, retry, id, data;
} sse_fields;

static inline void sse_field_set(qs_buf *b, const char *v, size_t n)
{
    qs_buf_reset(b);
    qs_buf_append(b, v, n);
}

static inline void sse_read(const char *p, size_t len, sse_fields *f)
{
    memset(f, 0, sizeof(*f));
    const char *end = p + len;
    while (p < end) {
        const char *le = p;
        while (le < end && *le != '\r' && *le != '\n')
            le++;
        if (le == end)
            f->unterminated = true;
        size_t n = (size_t)(le - p);
        if (f->events)
            f->after_dispatch = true;
        if (n == 0) {
            f->events++;
        } else if (p[0] != ':') {
            const char *colon = memchr(p, ':', n);
            size_t name = colon ? (size_t)(colon - p) : n;
            const char *v = colon ? colon + 1 : le;
            if (v < le && *v == ' ')
                v++;
            size_t vn = (size_t)(le - v);
            if (name == 5 && memcmp(p, "event", 5) == 0) {
                f->n_event++;
                sse_field_set(&f->event, v, vn);
            } else if (name == 5 && memcmp(p, "retry", 5) == 0) {
                f->n_retry++;
                sse_field_set(&f->retry, v, vn);
            } else if (name == 2 && memcmp(p, "id", 2) == 0) {
                f->n_id++;
                sse_field_set(&f->id, v, vn);
            } else if (name == 4 && memcmp(p, "data", 4) == 0) {
                if (f->n_data++)
                    qs_buf_append_char(&f->data, '\n');
                qs_buf_append(&f->data, v, vn);
            } else {
                f->n_other++;
            }
        }
        p = le;
        if (p < end)
            p += (*p == '\r' && p + 1 < end && p[1] == '\n') ? 2 : 1;
    }
}

static inline bool buf_is(const qs_buf *b, const char *s, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->p, s, n) == 0);
}

static inline void update_check_frame(const qs_update *u)
{
    const qs_frame *fr = u->frame;
    CHECK(fr != NULL && !(fr->flags & QS_FRAME_RAW));
    size_t len;
    const char *ev = qs_frame_bytes(fr, false, &len);
    size_t chunked_len;
    qs_frame_bytes(fr, true, &chunked_len);
    char head[24];
    int h = snprintf(head, sizeof(head), "%zx\r\n", len);
    CHECK(fr->head == h && memcmp(fr->data, head, (size_t)h) == 0);
    CHECK(chunked_len == (size_t)h + len + 2 && memcmp(fr->data + h + len, "\r\n", 2) == 0);

    sse_fields f;
    sse_read(ev, len, &f);
    CHECK(f.events == 1 && !f.after_dispatch && !f.unterminated && f.n_other == 0);
    if (u->type) {
        CHECK(f.n_event == 1 && buf_is(&f.event, u->type, strlen(u->type)));
    } else {
        CHECK(f.n_event == 0);
    }
    if (u->retry) {
        char r[24];
        int rn = snprintf(r, sizeof(r), "%" PRIu64, u->retry);
        CHECK(f.n_retry == 1 && buf_is(&f.retry, r, (size_t)rn));
    } else {
        CHECK(f.n_retry == 0);
    }
    CHECK(f.n_id == 1 && buf_is(&f.id, u->id, strlen(u->id)));
    /* The data, with CRLF and CR turned into LF as the reader joins its lines. */
    qs_buf want = QS_BUF_INIT;
    for (size_t i = 0; i < u->data_len; i++) {
        char c = u->data[i];
        if (c == '\r' && i + 1 < u->data_len && u->data[i + 1] == '\n')
            continue;
        qs_buf_append_char(&want, c == '\r' ? '\n' : c);
    }
    CHECK(f.n_data >= 1 && buf_is(&f.data, want.p, want.len));
    qs_buf_free(&want);
    qs_buf_free(&f.event);
    qs_buf_free(&f.retry);
    qs_buf_free(&f.id);
    qs_buf_free(&f.data);
}

#endif
