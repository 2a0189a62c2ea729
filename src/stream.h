/* SPDX-License-Identifier: MIT
 * stream.h - the event stream of one subscriber: its bounded queue of frames, batched
 * writes, heartbeats, end of stream and slow-consumer checks, whatever protocol carries it.
 *
 *   qs_streams (one per worker)      qs_stream (one per subscriber)
 *     pending: streams to write        queue: ring of frame references
 *     timer lists and deadline heap      front region: history being replayed
 *     idle handle for later slices     ostream (http.h): where the bytes go
 *
 * Frames (update.h) are shared and immutable; a queue holds references. Frames queued for
 * one stream leave together, up to 64 per write, each already framed as a chunk when the
 * stream is chunked. A stream whose live queue goes over subscriber_queue_size events or
 * subscriber_queue_bytes bytes, or whose write stalls longer than dispatch_timeout, is
 * dropped (closed and counted); publishers and other subscribers never wait for it.
 *
 * History being replayed sits in the front region, before live frames, which wait until
 * the owner ends the replay: the bounds apply to live frames only, the owner paces the
 * history (it fetches more when told the front region is written).
 *
 * Lifetime: closing a stream (drop, end, error, the peer leaving) only starts it; the
 * owner's `closed` callback runs later from the loop, and the owner then calls
 * qs_stream_destroy. Until then a closing stream accepts and writes nothing. Workers'
 * streams are touched only by their worker's thread.
 */
#ifndef QS_STREAM_H
#define QS_STREAM_H

#include "ctx.h"
#include "heap.h"
#include "http.h"
#include "list.h"
#include "update.h"

typedef struct qs_streams qs_streams;
typedef struct qs_stream qs_stream;

/** What a stream's owner hears from it (on the worker's thread, from loop callbacks). */
typedef struct qs_stream_owner {
    /** The stream is gone: the owner calls qs_stream_destroy and frees it. */
    void (*closed)(qs_stream *s);
    /** While replaying: the history in the front region is written; fetch more or call
     *  qs_stream_replay_done. */
    void (*drained)(qs_stream *s);
} qs_stream_owner;

struct qs_stream {
    qs_streams *ss;
    qs_http_ostream *os;
    const qs_stream_owner *owner;
    const char *label; /* names the subscriber in logs */

    /* queue of frames not yet written: ring buffer */
    qs_frame **q;
    uint32_t q_head, q_len, q_cap;
    size_t q_bytes;
    /* the batch being written: the first batch_n frames of the queue */
    uint32_t batch_n;
    size_t batch_len;     /* bytes in the batch */
    size_t batch_written; /* bytes of the batch already written */
    bool opened;          /* the head is sent: bytes may follow */
    bool write_pending;   /* a queued write is in flight */
    bool ending;          /* the final frame is queued: nothing more is accepted */
    bool closing;         /* closed or dropped: waiting for the closed callback */
    bool replaying;       /* only the front region may be written */
    uint32_t front_n;     /* history frames at the front of the queue */
    size_t front_bytes;
    uint32_t pending_idx; /* slot in ss->pending, UINT32_MAX when not listed */

    qs_list heartbeat_node; /* every stream of the worker, by time of last write */
    uint64_t last_write_ms;
    qs_list blocked_node; /* streams whose write is queued, oldest first */
    uint64_t blocked_since_ms;
    qs_heap_node deadline; /* end of stream: write_timeout with jitter, token exp */
};

qs_streams *qs_streams_new(qs_ctx *ctx);
/** Closes the idle handle (the worker is exiting). */
void qs_streams_close(qs_streams *ss);
/** Frees the per-worker state; every stream must have been destroyed. */
void qs_streams_free(qs_streams *ss);

/**
 * Turns req into an event stream owned by `owner`; deadline_ms (monotonic, 0 = none) ends
 * it cleanly. Nothing is written before qs_stream_open. Returns -1 when the connection is
 * already closing (nothing was set up).
 */
int qs_stream_init(qs_stream *s, qs_ctx *ctx, qs_http_req *req, const qs_stream_owner *owner,
                   const char *label, uint64_t deadline_ms);
/** Sends the response head, then the opening comment, then what is queued. */
void qs_stream_open(qs_stream *s, qs_http_response *head);
/** Answers with `res` (taken; not a 200) instead of a stream, then closes: for a stream that
 *  could not open. */
void qs_stream_refuse(qs_stream *s, qs_http_response *res);
/** Releases what the stream holds (from the owner's closed callback). */
void qs_stream_destroy(qs_stream *s);

/** Queues a live frame; false when a bound would be exceeded (the caller drops it). */
bool qs_stream_push(qs_stream *s, qs_frame *f);
/** Puts history frames (references taken over) after the front region, before live
 *  frames. */
void qs_stream_push_history(qs_stream *s, qs_frame **frames, uint32_t n);
/** Removes queued live frames of updates up to seq (the client already has them). */
void qs_stream_discard_until(qs_stream *s, uint64_t seq);
/** Starts (true) or ends (false) the replay: while it lasts only history is written. */
void qs_stream_set_replaying(qs_stream *s, bool replaying);

/** Ends the stream cleanly once what is queued has been written. */
void qs_stream_end(qs_stream *s);
/** Closes the stream now: a slow consumer (counted under `why`). */
void qs_stream_drop(qs_stream *s, enum qs_drop_reason why);
/** Closes the stream now, without counting (an error of the hub's own). */
void qs_stream_close(qs_stream *s);
/** Writes what is queued, as far as the socket takes it. */
void qs_stream_flush(qs_stream *s);

/** Most streams written per slice of a flush. */
#define QS_FLUSH_SLICE 128
/** Writes the streams with queued frames, QS_FLUSH_SLICE at a time: the next slices run
 *  from an idle handle, after the loop has turned once. */
void qs_streams_flush(qs_streams *ss);
/** Writes everything queued at once (shutdown). */
void qs_streams_flush_all(qs_streams *ss);
/** Heartbeats, deadlines, stalled writes. */
void qs_streams_check_timers(qs_streams *ss, uint64_t now);
/** Ends every stream cleanly (shutdown). */
void qs_streams_end_all(qs_streams *ss);
/** Ends every stream cleanly at a random moment of the next window_ms, after a `retry:`
 *  hint (a random delay up to the window, at least a second) so that clients spread their
 *  reconnections instead of coming back all at once (a rolling restart). */
void qs_streams_drain(qs_streams *ss, uint64_t window_ms);

#endif
