/* SPDX-License-Identifier: MIT
 * update.h - a Mercure update and its encoded SSE frame, shared by every recipient.
 *
 * An update is built by a publisher (or decoded from a transport), then frozen by
 * qs_update_finalize(), which encodes the SSE event once into a refcounted frame.
 * After that it is immutable and may be shared across threads: workers, subscriber
 * queues and transports hold references; the last qs_update_unref() frees it.
 *
 *   qs_update ──frame──▶ qs_frame {refs, len, "id: …\ndata: …\n\n"}
 *        ▲                    ▲
 *   worker inboxes       subscriber queues (only the frame is needed to write)
 */
#ifndef QS_UPDATE_H
#define QS_UPDATE_H

#include <stdatomic.h>

#include "util.h"

/**
 * Refcounted immutable bytes written to subscribers. An event frame is stored already
 * framed as one HTTP/1.1 chunk — "<hex size>\r\n" event "\r\n" — so that a delivery to a
 * chunked stream is one contiguous buffer; `head` is the size of the chunk prefix, and
 * close-delimited (HTTP/1.0) streams write only the event in the middle. RAW frames (a
 * response head, the last chunk) are written as they are.
 */
typedef struct qs_frame {
    atomic_uint refs;
    uint32_t len; /* bytes in data */
    uint16_t flags;
    uint16_t head; /* chunk prefix length (0 for RAW frames) */
    uint64_t seq;  /* bus position of the update (set when delivered; 0 = not an update) */
    char data[];
} qs_frame;

#define QS_FRAME_STATIC 1u /* never freed */
#define QS_FRAME_RAW 2u    /* written as is (response head, last chunk), never chunk-framed */
#define QS_FRAME_FINAL 4u  /* the stream ends once this frame is written */

/** An event frame: a copy of the event, framed as a chunk (refs = 1). */
qs_frame *qs_frame_new(const char *event, size_t len);
/** A RAW frame: a copy of bytes written as they are (refs = 1). */
qs_frame *qs_frame_new_raw(const char *data, size_t len);
/** The bytes to write for a chunked or a close-delimited stream. */
static inline const char *qs_frame_bytes(const qs_frame *f, bool chunked, size_t *len)
{
    if (chunked || (f->flags & QS_FRAME_RAW)) {
        *len = f->len;
        return f->data;
    }
    *len = f->len - f->head - 2;
    return f->data + f->head;
}
static inline qs_frame *qs_frame_ref(qs_frame *f)
{
    if (!(f->flags & QS_FRAME_STATIC))
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}
void qs_frame_unref(qs_frame *f);

/** The ":\n" SSE comment (stream opening and heartbeat); static, never freed. */
qs_frame *qs_frame_comment(void);
/** The last chunk of a chunked stream, "0\r\n\r\n" (RAW|FINAL); static. */
qs_frame *qs_frame_last_chunk(void);
/** An empty FINAL frame: ends a close-delimited (HTTP/1.0) stream; static. */
qs_frame *qs_frame_end(void);

typedef struct qs_update {
    atomic_uint refs;
    bool is_private;
    uint64_t retry; /* 0 = no retry line */
    uint64_t seq;   /* position on the node's bus, set by the transport */
    char *id;       /* never NULL once finalized */
    char *type;     /* NULL = no event line */
    char **topics;  /* topics[0] is canonical, the rest are alternates */
    size_t *topic_lens;
    size_t n_topics;
    char *data;
    size_t data_len;
    qs_frame *frame; /* encoded SSE event, set by qs_update_finalize() */
} qs_update;

/** Allocates an empty update (refs = 1). */
qs_update *qs_update_new(void);
/** Appends a topic (copied). */
void qs_update_add_topic(qs_update *u, const char *topic, size_t len);
/** Sets fields (copied; NULL/0 leave them unset). */
void qs_update_set_id(qs_update *u, const char *id, size_t len);
void qs_update_set_type(qs_update *u, const char *type, size_t len);
void qs_update_set_data(qs_update *u, const char *data, size_t len);
/** Assigns a fresh urn:uuid UUIDv7 id when none is set. */
void qs_update_ensure_id(qs_update *u);
/** Encodes the SSE frame; the update must not be modified afterwards. */
void qs_update_finalize(qs_update *u);

static inline qs_update *qs_update_ref(qs_update *u)
{
    atomic_fetch_add_explicit(&u->refs, 1, memory_order_relaxed);
    return u;
}
void qs_update_unref(qs_update *u);

/** Approximate heap bytes held by the update (for queue accounting). */
size_t qs_update_size(const qs_update *u);

#endif
