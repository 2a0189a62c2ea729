/* SPDX-License-Identifier: MIT
 * stream.c - subscribers' event streams: bounded queues, batched writes, timers.
 */
#include "stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "metrics.h"

#define MAX_BATCH_FRAMES 64

struct qs_streams {
    qs_ctx *ctx;
    uint64_t drain_window_ms; /* draining: streams end with a retry hint at their deadline */
    uint64_t drain_end_ms;    /* draining: the end of the window */
    /* streams with queued frames to write: pending[pending_pos..n_pending) are still to be
     * written in this round; fan-out appends between slices, never during one */
    qs_stream **pending;
    size_t n_pending, cap_pending, pending_pos;
    uv_idle_t flush_idle; /* runs the next slice after the loop has turned once */
    qs_list heartbeats;   /* every stream, by time of last write, oldest first */
    qs_list blocked;      /* writes in progress, oldest first (dispatch_timeout) */
    qs_heap deadlines;    /* end of stream: write_timeout with jitter / token exp */
};

static void on_flush_idle(uv_idle_t *h);
static void push_retry_hint(qs_stream *s, uint64_t window_ms);
static uint64_t drain_deadline(qs_streams *ss, uint64_t now);

qs_streams *qs_streams_new(qs_ctx *ctx)
{
    qs_streams *ss = qs_xcalloc(1, sizeof(*ss));
    ss->ctx = ctx;
    uv_idle_init(&ctx->loop, &ss->flush_idle);
    ss->flush_idle.data = ss;
    qs_list_init(&ss->heartbeats);
    qs_list_init(&ss->blocked);
    qs_heap_init(&ss->deadlines);
    return ss;
}

void qs_streams_close(qs_streams *ss)
{
    if (!uv_is_closing((uv_handle_t *)&ss->flush_idle))
        uv_close((uv_handle_t *)&ss->flush_idle, NULL);
}

void qs_streams_free(qs_streams *ss)
{
    qs_heap_free(&ss->deadlines);
    free(ss->pending);
    free(ss);
}

/* ------------------------------------------------------------- lifetime */

static void on_written(void *owner, int status);
static void on_closed(void *owner);

static const qs_http_stream_owner http_owner = {.written = on_written, .closed = on_closed};

int qs_stream_init(qs_stream *s, qs_ctx *ctx, qs_http_req *req, const qs_stream_owner *owner,
                   const char *label, uint64_t deadline_ms)
{
    memset(s, 0, sizeof(*s));
    s->os = qs_http_open_stream(req, &http_owner, s);
    if (!s->os)
        return -1;
    s->ss = ctx->streams;
    s->owner = owner;
    s->label = label;
    s->pending_idx = UINT32_MAX;
    s->last_write_ms = qs_now_ms();
    qs_list_push_back(&s->ss->heartbeats, &s->heartbeat_node);
    qs_list_init(&s->blocked_node);
    if (s->ss->drain_window_ms) {
        /* Opened once the drain began (an HTTP/2 request whose header block ended after
         * the GOAWAY): it ends within what is left of the window, like the others. */
        uint64_t at = drain_deadline(s->ss, s->last_write_ms);
        if (!deadline_ms || at < deadline_ms)
            deadline_ms = at;
    }
    if (deadline_ms)
        qs_heap_push(&s->ss->deadlines, &s->deadline, deadline_ms);
    return 0;
}

void qs_stream_destroy(qs_stream *s)
{
    qs_streams *ss = s->ss;
    for (uint32_t i = 0; i < s->q_len; i++)
        qs_frame_unref(s->q[(s->q_head + i) % s->q_cap]);
    free(s->q);
    qs_list_unlink(&s->heartbeat_node);
    qs_list_unlink(&s->blocked_node);
    qs_heap_remove(&ss->deadlines, &s->deadline);
    if (s->pending_idx != UINT32_MAX)
        ss->pending[s->pending_idx] = NULL;
}

static void on_closed(void *owner)
{
    qs_stream *s = owner;
    s->closing = true;
    s->owner->closed(s);
}

void qs_stream_close(qs_stream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    s->os->ops->close(s->os, false);
}

/* The last frame is written (or the refusal that replaces the stream): end gracefully. */
static void stream_finish(qs_stream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    s->os->ops->close(s->os, true);
}

void qs_stream_drop(qs_stream *s, enum qs_drop_reason why)
{
    if (s->closing)
        return;
    qs_metric_add(&qs_metrics_global.subscribers_dropped[why], 1);
    qs_info("subscriber %s dropped: %s", s->label,
            why == QS_DROP_QUEUE_FULL ? "unable to receive updates fast enough"
                                      : "write did not complete within dispatch_timeout");
    qs_stream_close(s);
}

/* ---------------------------------------------------------------- queue */

static void mark_pending(qs_stream *s)
{
    qs_streams *ss = s->ss;
    if (s->pending_idx != UINT32_MAX)
        return;
    if (ss->n_pending == ss->cap_pending) {
        ss->cap_pending = ss->cap_pending ? ss->cap_pending * 2 : 64;
        ss->pending = qs_xrealloc(ss->pending, ss->cap_pending * sizeof(*ss->pending));
    }
    s->pending_idx = (uint32_t)ss->n_pending;
    ss->pending[ss->n_pending++] = s;
}

/* Makes room for n more frames, unwrapping the ring into a bigger array when needed. */
static void queue_reserve(qs_stream *s, uint32_t n)
{
    if (s->q_len + n <= s->q_cap)
        return;
    uint32_t cap = s->q_cap ? s->q_cap : 4;
    while (cap < s->q_len + n)
        cap *= 2;
    qs_frame **q = qs_xmalloc(cap * sizeof(*q));
    for (uint32_t i = 0; i < s->q_len; i++)
        q[i] = s->q[(s->q_head + i) % s->q_cap];
    free(s->q);
    s->q = q;
    s->q_head = 0;
    s->q_cap = cap;
}

static inline qs_frame *queue_at(const qs_stream *s, uint32_t i)
{
    return s->q[(s->q_head + i) % s->q_cap];
}

/* Appends a frame; false when a bound would be exceeded. */
static bool enqueue(qs_stream *s, qs_frame *f)
{
    if (s->ending || s->closing)
        return true; /* nothing goes after the end of the stream */
    const qs_config *cfg = s->ss->ctx->hub->cfg;
    bool control = f->flags & (QS_FRAME_RAW | QS_FRAME_FINAL);
    /* The bounds apply to live frames; history being replayed is paced by its owner.
     * The byte bound is about a backlog: one update bigger than it still goes through
     * when nothing is waiting (its size is bounded by max_request_body_size). */
    uint32_t live = s->q_len - s->front_n;
    if (!control && ((long)live >= cfg->subscriber_queue_size ||
                     (live && s->q_bytes - s->front_bytes + f->len > cfg->subscriber_queue_bytes)))
        return false;
    queue_reserve(s, 1);
    s->q[(s->q_head + s->q_len) % s->q_cap] = qs_frame_ref(f);
    s->q_len++;
    s->q_bytes += f->len;
    if (f->flags & QS_FRAME_FINAL)
        s->ending = true;
    mark_pending(s);
    return true;
}

bool qs_stream_push(qs_stream *s, qs_frame *f)
{
    return enqueue(s, f);
}

static void queue_pop(qs_stream *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        qs_frame *f = queue_at(s, i);
        s->q_bytes -= f->len;
        if (s->front_n) {
            s->front_n--;
            s->front_bytes -= f->len;
        }
        qs_frame_unref(f);
    }
    s->q_head = (s->q_head + n) % s->q_cap;
    s->q_len -= n;
    if (!s->q_len && s->q_cap > 16) {
        /* A burst grew the ring; give the memory back once it drained. */
        free(s->q);
        s->q = NULL;
        s->q_cap = 0;
        s->q_head = 0;
    }
}

void qs_stream_push_history(qs_stream *s, qs_frame **frames, uint32_t n)
{
    if (!n)
        return;
    queue_reserve(s, n);
    uint32_t live = s->q_len - s->front_n;
    /* Shift the live frames back by n, last first, then fill the gap. */
    for (uint32_t i = live; i-- > 0;) {
        uint32_t from = (s->q_head + s->front_n + i) % s->q_cap;
        uint32_t to = (s->q_head + s->front_n + n + i) % s->q_cap;
        s->q[to] = s->q[from];
    }
    for (uint32_t i = 0; i < n; i++) {
        s->q[(s->q_head + s->front_n + i) % s->q_cap] = frames[i];
        s->q_bytes += frames[i]->len;
        s->front_bytes += frames[i]->len;
    }
    s->q_len += n;
    s->front_n += n;
    mark_pending(s);
}

void qs_stream_discard_until(qs_stream *s, uint64_t seq)
{
    uint32_t keep = s->front_n;
    for (uint32_t i = s->front_n; i < s->q_len; i++) {
        qs_frame *f = queue_at(s, i);
        if (f->seq && f->seq <= seq) {
            s->q_bytes -= f->len;
            qs_frame_unref(f);
            continue;
        }
        s->q[(s->q_head + keep) % s->q_cap] = f;
        keep++;
    }
    s->q_len = keep;
}

void qs_stream_set_replaying(qs_stream *s, bool replaying)
{
    s->replaying = replaying;
    mark_pending(s);
}

/* The frames the next write may take: while history is being replayed, only the front. */
static inline uint32_t writable(const qs_stream *s)
{
    return s->replaying ? s->front_n : s->q_len;
}

void qs_stream_open(qs_stream *s, qs_http_response *head)
{
    if (s->closing) {
        qs_http_response_free(head);
        return;
    }
    s->os->ops->head(s->os, head);
    s->opened = true;
    /* The opening comment goes before anything already queued (history included). */
    qs_frame *comment = qs_frame_comment();
    qs_stream_push_history(s, &comment, 1);
    qs_stream_flush(s);
}

void qs_stream_refuse(qs_stream *s, qs_http_response *res)
{
    if (s->closing || s->opened) {
        qs_http_response_free(res);
        qs_stream_close(s);
        return;
    }
    s->os->ops->head(s->os, res);
    s->opened = true;
    stream_finish(s);
}

void qs_stream_end(qs_stream *s)
{
    if (s->ending)
        return;
    enqueue(s, s->os->chunked ? qs_frame_last_chunk() : qs_frame_end());
}

/* --------------------------------------------------------------- writes */

/* Chooses the frames of the next batch: a RAW frame alone, or up to MAX_BATCH_FRAMES event
 * frames, each already framed as its own chunk. */
static void batch_begin(qs_stream *s)
{
    bool chunked = s->os->chunked;
    qs_frame *first = queue_at(s, 0);
    s->batch_written = 0;
    size_t len;
    if (first->flags & QS_FRAME_RAW) {
        s->batch_n = 1;
        qs_frame_bytes(first, chunked, &s->batch_len);
        return;
    }
    uint32_t n = 0;
    size_t total = 0;
    uint32_t avail = writable(s);
    while (n < avail && n < MAX_BATCH_FRAMES) {
        qs_frame *f = queue_at(s, n);
        if (f->flags & QS_FRAME_RAW)
            break;
        qs_frame_bytes(f, chunked, &len);
        total += len;
        n++;
    }
    s->batch_n = n;
    s->batch_len = total;
}

/* Fills iov with the unwritten part of the batch; returns the count. */
static unsigned batch_iov(qs_stream *s, uv_buf_t *iov)
{
    unsigned n = 0;
    size_t skip = s->batch_written;
    for (uint32_t i = 0; i < s->batch_n; i++) {
        size_t len;
        const char *p = qs_frame_bytes(queue_at(s, i), s->os->chunked, &len);
        if (skip >= len) {
            skip -= len;
            continue;
        }
        iov[n++] = uv_buf_init((char *)p + skip, (unsigned)(len - skip));
        skip = 0;
    }
    return n;
}

/* The batch is fully written: drop its frames; true when the stream must end now. */
static bool batch_done(qs_stream *s)
{
    qs_streams *ss = s->ss;
    bool final = queue_at(s, s->batch_n - 1)->flags & QS_FRAME_FINAL;
    qs_counter_bump(&ss->ctx->counters.bytes_sent, s->batch_len);
    queue_pop(s, s->batch_n);
    s->batch_n = 0;
    s->last_write_ms = qs_now_ms();
    qs_list_move_back(&ss->heartbeats, &s->heartbeat_node);
    return final;
}

void qs_stream_flush(qs_stream *s)
{
    uv_buf_t iov[MAX_BATCH_FRAMES];
    for (;;) {
        if (s->write_pending || s->closing || !s->opened)
            return;
        if (!writable(s)) {
            if (s->replaying)
                s->owner->drained(s); /* the fetched history is written: fetch more */
            return;
        }
        if (!s->batch_n)
            batch_begin(s);
        if (s->batch_len == 0) { /* the end of a close-delimited stream: nothing to write */
            if (batch_done(s)) {
                stream_finish(s);
                return;
            }
            continue;
        }
        unsigned n = batch_iov(s, iov);
        int written = s->os->ops->try_write(s->os, iov, n);
        if (written < 0) {
            qs_stream_close(s);
            return;
        }
        s->batch_written += (size_t)written;
        if (s->batch_written == s->batch_len) {
            if (batch_done(s)) {
                stream_finish(s);
                return;
            }
            continue;
        }
        /* The socket is full: let the protocol finish the batch when it becomes
         * writable. */
        n = batch_iov(s, iov);
        if (s->os->ops->write(s->os, iov, n) < 0) {
            qs_stream_close(s);
            return;
        }
        s->write_pending = true;
        s->blocked_since_ms = qs_now_ms();
        qs_list_push_back(&s->ss->blocked, &s->blocked_node);
    }
}

static void on_written(void *owner, int status)
{
    qs_stream *s = owner;
    s->write_pending = false;
    qs_list_unlink(&s->blocked_node);
    if (status < 0) {
        qs_stream_close(s);
        return;
    }
    s->batch_written = s->batch_len;
    if (batch_done(s)) {
        stream_finish(s);
        return;
    }
    qs_stream_flush(s);
}

/* Writes the next slice of pending streams; true when some are still pending. */
static bool flush_slice(qs_streams *ss)
{
    /* Flushing can close streams, which clears nothing yet (they are destroyed from the
     * loop); fan-out appends to the array only between slices, never during this loop. */
    size_t end = QS_MIN(ss->n_pending, ss->pending_pos + QS_FLUSH_SLICE);
    for (; ss->pending_pos < end; ss->pending_pos++) {
        qs_stream *s = ss->pending[ss->pending_pos];
        if (!s)
            continue;
        ss->pending[ss->pending_pos] = NULL;
        s->pending_idx = UINT32_MAX;
        qs_stream_flush(s);
    }
    if (ss->pending_pos == ss->n_pending) {
        ss->n_pending = ss->pending_pos = 0;
        return false;
    }
    /* Under a steady stream of updates a round may never end: streams written early in it
     * are appended again behind the cursor. Once the written part is the larger half,
     * slide what is left to the front so the array stays within twice the number of
     * streams. */
    if (ss->pending_pos >= QS_FLUSH_SLICE && ss->pending_pos * 2 >= ss->n_pending) {
        size_t left = 0;
        for (size_t i = ss->pending_pos; i < ss->n_pending; i++) {
            qs_stream *s = ss->pending[i];
            if (!s)
                continue;
            s->pending_idx = (uint32_t)left;
            ss->pending[left++] = s;
        }
        ss->n_pending = left;
        ss->pending_pos = 0;
        return left > 0;
    }
    return true;
}

/* Flushing in slices. A worker writes to at most QS_FLUSH_SLICE streams, then lets its
 * loop run (new publishes, reads, fan-out of new updates) before the next slice. With a
 * large fan-out this keeps the worker responsive, and it is also what batches writes under
 * load: while a round over thousands of streams goes on, the events published meanwhile
 * join the queues of the streams not yet written, and leave with them in one write. With
 * small fan-outs a round is one slice and nothing waits. */
static void on_flush_idle(uv_idle_t *h)
{
    if (!flush_slice(h->data))
        uv_idle_stop(h);
}

void qs_streams_flush(qs_streams *ss)
{
    if (ss->n_pending && flush_slice(ss))
        uv_idle_start(&ss->flush_idle, on_flush_idle);
}

void qs_streams_flush_all(qs_streams *ss)
{
    while (ss->n_pending && flush_slice(ss)) {
    }
}

/* --------------------------------------------------------------- timers */

void qs_streams_check_timers(qs_streams *ss, uint64_t now)
{
    const qs_config *cfg = ss->ctx->hub->cfg;
    qs_list *n;
    if (cfg->dispatch_timeout_ms) {
        while ((n = qs_list_front(&ss->blocked))) {
            qs_stream *s = qs_list_entry(n, qs_stream, blocked_node);
            if (now - s->blocked_since_ms < cfg->dispatch_timeout_ms)
                break;
            qs_list_unlink(n);
            qs_stream_drop(s, QS_DROP_DISPATCH_TIMEOUT);
        }
    }
    qs_heap_node *top;
    while ((top = qs_heap_top(&ss->deadlines)) && top->key <= now) {
        qs_stream *s = qs_container_of(top, qs_stream, deadline);
        qs_heap_remove(&ss->deadlines, top);
        if (ss->drain_window_ms)
            push_retry_hint(s, ss->drain_window_ms);
        qs_stream_end(s); /* write_timeout, token expiry or shutdown: end cleanly */
    }
    if (cfg->heartbeat_ms) {
        while ((n = qs_list_front(&ss->heartbeats))) {
            qs_stream *s = qs_list_entry(n, qs_stream, heartbeat_node);
            if (now - s->last_write_ms < cfg->heartbeat_ms)
                break;
            /* Requeue at the back; a write in progress counts as activity. */
            s->last_write_ms = now;
            qs_list_move_back(&ss->heartbeats, n);
            if (s->opened && !s->write_pending && !s->q_len && !s->replaying)
                enqueue(s, qs_frame_comment());
        }
    }
}

static uint64_t random_below(uint64_t n)
{
    uint64_t r;
    qs_random_bytes(&r, sizeof(r));
    return n ? r % n : 0;
}

/* "retry: N": the client waits N ms before reconnecting, instead of the browser's default. */
static void push_retry_hint(qs_stream *s, uint64_t window_ms)
{
    if (s->ending || s->closing)
        return;
    char event[48];
    uint64_t ms = 1000 + random_below(QS_MAX(window_ms, (uint64_t)1000) - 1000 + 1);
    int n = snprintf(event, sizeof(event), "retry: %" PRIu64 "\n\n", ms);
    qs_frame *f = qs_frame_new(event, (size_t)n);
    enqueue(s, f);
    qs_frame_unref(f);
}

/* A random moment between now and the end of the drain window. */
static uint64_t drain_deadline(qs_streams *ss, uint64_t now)
{
    return now + random_below(ss->drain_end_ms > now ? ss->drain_end_ms - now : 0);
}

void qs_streams_drain(qs_streams *ss, uint64_t window_ms)
{
    uint64_t now = qs_now_ms();
    ss->drain_window_ms = window_ms;
    ss->drain_end_ms = now + window_ms;
    for (qs_list *n = ss->heartbeats.next; n != &ss->heartbeats; n = n->next) {
        qs_stream *s = qs_list_entry(n, qs_stream, heartbeat_node);
        uint64_t at = drain_deadline(ss, now);
        if (!qs_heap_contains(&s->deadline) || s->deadline.key > at)
            qs_heap_push(&ss->deadlines, &s->deadline, at);
    }
}

void qs_streams_end_all(qs_streams *ss)
{
    for (qs_list *n = ss->heartbeats.next; n != &ss->heartbeats; n = n->next)
        qs_stream_end(qs_list_entry(n, qs_stream, heartbeat_node));
    qs_streams_flush_all(ss);
}
