/* SPDX-License-Identifier: MIT
 * history.h - replaying stored updates to a subscriber that reconnects with a
 * Last-Event-ID, before its live updates, with no gap and no duplicate.
 *
 * The subscriber is registered first (its live updates queue up from its bus position);
 * the history after the requested id and up to that position is then pulled from the
 * transport in batches (1024 events or 1 MiB) and put at the front of the stream's queue.
 * A batch is pulled only once the previous one is written, so a long history streams at
 * the subscriber's pace. The response head waits for the first answer: it names the
 * cursor (Last-Event-Id: the id when found, "earliest" otherwise).
 */
#ifndef QS_HISTORY_H
#define QS_HISTORY_H

#include "ctx.h"
#include "http.h"
#include "index.h"
#include "stream.h"

typedef struct qs_history qs_history;

/** Starts the replay after last_event_id ("earliest": everything kept) to m's stream; head
 *  (taken) is sent with the first answer, the cursor in the header named cursor_header
 *  (0.x: Last-Event-Id, 1.0: Mercure-Last-Event-Id). *out is set before the first pull starts
 *  (it may complete inside the call, and the stream may then ask for the next one). */
void qs_history_start(qs_ctx *ctx, qs_index_member *m, const char *last_event_id,
                      const char *cursor_header, qs_http_response *head, qs_history **out);
/** The stream wrote the history fetched so far: pull the next batch, or end the replay
 *  when the stream is ending. */
void qs_history_next(qs_history *h);
/** The subscriber is gone: a pull in flight completes into nothing; h is freed. */
void qs_history_stop(qs_history *h);

#endif
