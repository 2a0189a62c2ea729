/* SPDX-License-Identifier: MIT
 * record.c - binary records of updates.
 */
#include "record.h"

#include <stdlib.h>

#define RECORD_VERSION 1
#define FLAG_PRIVATE 1

static void put_varint(qs_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = (unsigned char)(byte | (v ? 0x80 : 0));
    } while (v);
    qs_buf_append(b, tmp, n);
}

static void put_bytes(qs_buf *b, const char *p, size_t n)
{
    put_varint(b, n);
    qs_buf_append(b, p, n);
}

void qs_record_encode(const qs_update *u, qs_buf *out)
{
    qs_buf_append_char(out, RECORD_VERSION);
    qs_buf_append_char(out, (char)(u->is_private ? FLAG_PRIVATE : 0));
    put_varint(out, u->retry);
    put_bytes(out, u->id ? u->id : "", u->id ? strlen(u->id) : 0);
    put_bytes(out, u->type ? u->type : "", u->type ? strlen(u->type) : 0);
    put_varint(out, u->n_topics);
    for (size_t i = 0; i < u->n_topics; i++)
        put_bytes(out, u->topics[i], u->topic_lens[i]);
    put_bytes(out, u->data ? u->data : "", u->data_len);
}

typedef struct reader {
    const unsigned char *p, *end;
    bool bad;
} reader;

static uint64_t get_varint(reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        unsigned char byte = *r->p++;
        if (shift == 63 && byte > 1)
            break; /* more than 64 bits */
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static const char *get_bytes(reader *r, size_t *len)
{
    uint64_t n = get_varint(r);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        *len = 0;
        return NULL;
    }
    const char *p = (const char *)r->p;
    r->p += n;
    *len = (size_t)n;
    return p;
}

/* An id or a type is written on an SSE line: the publish handler refuses NUL, CR and LF in
 * them, so a record holding one is corrupt (it would add fields or events to streams). */
static const char *get_line(reader *r, size_t *len)
{
    const char *p = get_bytes(r, len);
    if (!r->bad && *len &&
        (memchr(p, '\0', *len) || memchr(p, '\r', *len) || memchr(p, '\n', *len)))
        r->bad = true;
    return p;
}

static bool read_header(reader *r, unsigned *flags, uint64_t *retry)
{
    if (r->end - r->p < 2 || r->p[0] != RECORD_VERSION)
        return false;
    *flags = r->p[1];
    r->p += 2;
    *retry = get_varint(r);
    return !r->bad;
}

bool qs_record_id(const void *data, size_t len, qs_slice *id)
{
    reader r = {data, (const unsigned char *)data + len, false};
    unsigned flags;
    uint64_t retry;
    if (!read_header(&r, &flags, &retry))
        return false;
    id->p = get_line(&r, &id->n);
    return !r.bad;
}

qs_update *qs_record_decode(const void *data, size_t len)
{
    reader r = {data, (const unsigned char *)data + len, false};
    unsigned flags;
    uint64_t retry;
    if (!read_header(&r, &flags, &retry))
        return NULL;
    qs_update *u = qs_update_new();
    u->is_private = flags & FLAG_PRIVATE;
    u->retry = retry;
    size_t n;
    const char *p = get_line(&r, &n);
    if (!r.bad && n)
        qs_update_set_id(u, p, n);
    p = get_line(&r, &n);
    if (!r.bad && n)
        qs_update_set_type(u, p, n);
    uint64_t topics = get_varint(&r);
    /* Each topic needs at least one byte: a count beyond the remaining bytes is corrupt. */
    if (!r.bad && topics > (uint64_t)(r.end - r.p))
        r.bad = true;
    for (uint64_t i = 0; !r.bad && i < topics; i++) {
        p = get_bytes(&r, &n);
        if (!r.bad)
            qs_update_add_topic(u, p, n);
    }
    p = get_bytes(&r, &n);
    if (!r.bad)
        qs_update_set_data(u, p, n);
    if (r.bad || r.p != r.end || !u->id || !u->n_topics) {
        qs_update_unref(u);
        return NULL;
    }
    return u;
}
