/* SPDX-License-Identifier: MIT
 * record.h - the stored form of an update (history in the embedded store and, later, in
 * cluster transports): a compact binary record, versioned.
 *
 *   u8 version (1) | u8 flags (bit 0: private) | varint retry
 *   varint id_len id | varint type_len type | varint n_topics (varint len topic)*
 *   varint data_len data
 *
 * Varints are little-endian base 128, at most 64 bits. The id (never empty) and the type
 * never hold NUL, CR or LF (they are SSE lines; the publish handler refuses them), and
 * there is at least one topic: a record breaking any of these is corrupt.
 *
 * Pure: bytes in, update out, or an error for truncated/corrupt input.
 */
#ifndef QS_RECORD_H
#define QS_RECORD_H

#include "buf.h"
#include "update.h"

/** Appends the record of u to out. */
void qs_record_encode(const qs_update *u, qs_buf *out);
/** Decodes a record into a new update (refs 1, not finalized). NULL when malformed. */
qs_update *qs_record_decode(const void *data, size_t len);
/** Reads only the id of a record (points into data). false when malformed. */
bool qs_record_id(const void *data, size_t len, qs_slice *id);

#endif
