/* SPDX-License-Identifier: MIT
 * uuid.h - RFC 9562 UUIDs as the reference hub uses them: v7 for update ids, v4 for
 * subscriber ids, both written "urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
 */
#ifndef QS_UUID_H
#define QS_UUID_H

#include "util.h"

/** Length of "urn:uuid:" + 36 characters. */
#define QS_UUID_URN_LEN 45

/** Writes a UUIDv7 URN (48-bit Unix milliseconds, then random bits) and a NUL into out. */
void qs_uuid7_urn(char out[QS_UUID_URN_LEN + 1]);
/** Writes a random UUIDv4 URN and a NUL into out. */
void qs_uuid4_urn(char out[QS_UUID_URN_LEN + 1]);
/** Formats 16 raw bytes as a URN (helper for the two above and for tests). */
void qs_uuid_format_urn(const unsigned char bytes[16], char out[QS_UUID_URN_LEN + 1]);

#endif
