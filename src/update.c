/* SPDX-License-Identifier: MIT
 * update.c - updates and their shared SSE frames.
 */
#include "update.h"

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "sse.h"
#include "uuid.h"

/* A flexible array member cannot be initialised statically in ISO C, so the static
 * frames live in aligned static storage filled once at start-up. */
static _Alignas(qs_frame) char comment_storage[sizeof(qs_frame) + 8];
static _Alignas(qs_frame) char last_chunk_storage[sizeof(qs_frame) + 5];
static _Alignas(qs_frame) char end_storage[sizeof(qs_frame)];

static void init_static(char *storage, const char *bytes, uint32_t len, uint16_t head,
                        uint16_t flags)
{
    qs_frame *f = (qs_frame *)storage;
    atomic_init(&f->refs, 1);
    f->len = len;
    f->seq = 0;
    f->head = head;
    f->flags = (uint16_t)(QS_FRAME_STATIC | flags);
    memcpy(f->data, bytes, len);
}

__attribute__((constructor)) static void init_static_frames(void)
{
    init_static(comment_storage, "2\r\n:\n\r\n", 7, 3, 0);
    init_static(last_chunk_storage, "0\r\n\r\n", 5, 0, QS_FRAME_RAW | QS_FRAME_FINAL);
    init_static(end_storage, "", 0, 0, QS_FRAME_RAW | QS_FRAME_FINAL);
}

qs_frame *qs_frame_comment(void)
{
    return (qs_frame *)comment_storage;
}

qs_frame *qs_frame_last_chunk(void)
{
    return (qs_frame *)last_chunk_storage;
}

qs_frame *qs_frame_end(void)
{
    return (qs_frame *)end_storage;
}

static qs_frame *frame_alloc(size_t len)
{
    if (len >= UINT32_MAX)
        qs_panic("frame too large: %zu bytes", len);
    qs_frame *f = qs_xmalloc(sizeof(*f) + len);
    atomic_init(&f->refs, 1);
    f->len = (uint32_t)len;
    f->flags = 0;
    f->head = 0;
    f->seq = 0;
    return f;
}

qs_frame *qs_frame_new(const char *event, size_t len)
{
    char prefix[20];
    int head = snprintf(prefix, sizeof(prefix), "%zx\r\n", len);
    qs_frame *f = frame_alloc((size_t)head + len + 2);
    f->head = (uint16_t)head;
    memcpy(f->data, prefix, (size_t)head);
    memcpy(f->data + head, event, len);
    memcpy(f->data + head + len, "\r\n", 2);
    return f;
}

qs_frame *qs_frame_new_raw(const char *data, size_t len)
{
    qs_frame *f = frame_alloc(len);
    f->flags = QS_FRAME_RAW;
    memcpy(f->data, data, len);
    return f;
}

void qs_frame_unref(qs_frame *f)
{
    if (f->flags & QS_FRAME_STATIC)
        return;
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

qs_update *qs_update_new(void)
{
    qs_update *u = qs_xcalloc(1, sizeof(*u));
    atomic_init(&u->refs, 1);
    return u;
}

void qs_update_add_topic(qs_update *u, const char *topic, size_t len)
{
    u->topics = qs_xrealloc(u->topics, (u->n_topics + 1) * sizeof(*u->topics));
    u->topic_lens = qs_xrealloc(u->topic_lens, (u->n_topics + 1) * sizeof(*u->topic_lens));
    u->topics[u->n_topics] = qs_xstrndup(topic, len);
    u->topic_lens[u->n_topics] = len;
    u->n_topics++;
}

static void set_str(char **field, const char *s, size_t len)
{
    free(*field);
    *field = s ? qs_xstrndup(s, len) : NULL;
}

void qs_update_set_id(qs_update *u, const char *id, size_t len)
{
    set_str(&u->id, id, len);
}

void qs_update_set_type(qs_update *u, const char *type, size_t len)
{
    set_str(&u->type, type, len);
}

void qs_update_set_data(qs_update *u, const char *data, size_t len)
{
    set_str(&u->data, data, len);
    u->data_len = data ? len : 0;
}

void qs_update_ensure_id(qs_update *u)
{
    if (u->id && *u->id)
        return;
    char urn[QS_UUID_URN_LEN + 1];
    qs_uuid7_urn(urn);
    set_str(&u->id, urn, QS_UUID_URN_LEN);
}

void qs_update_finalize(qs_update *u)
{
    qs_update_ensure_id(u);
    qs_buf b = QS_BUF_INIT;
    qs_buf_reserve(&b, u->data_len + 64);
    qs_sse_encode(&b, u->type, u->retry, u->id, u->data ? u->data : "", u->data_len);
    if (u->frame)
        qs_frame_unref(u->frame);
    u->frame = qs_frame_new(b.p, b.len);
    qs_buf_free(&b);
}

void qs_update_unref(qs_update *u)
{
    if (atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < u->n_topics; i++)
        free(u->topics[i]);
    free(u->topics);
    free(u->topic_lens);
    free(u->id);
    free(u->type);
    free(u->data);
    if (u->frame)
        qs_frame_unref(u->frame);
    free(u);
}

size_t qs_update_size(const qs_update *u)
{
    size_t n = sizeof(*u) + u->data_len + (u->frame ? u->frame->len : 0);
    for (size_t i = 0; i < u->n_topics; i++)
        n += u->topic_lens[i] + 1 + sizeof(char *) + sizeof(size_t);
    return n;
}
