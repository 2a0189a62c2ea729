/* SPDX-License-Identifier: MIT
 * pstring.h - the protocol's constraint on topics, matcher patterns and the id and type of
 * updates (protocol 1.0): valid UTF-8 without control characters (C0, DEL, C1) and without
 * Unicode format characters (category Cf: bidirectional and zero-width controls), as the
 * reference hub's validProtocolString checks it.
 */
#ifndef QS_PSTRING_H
#define QS_PSTRING_H

#include "util.h"

/** True when s[0, n) is a valid protocol string (see above). */
bool qs_protocol_string_valid(const char *s, size_t n);

#endif
