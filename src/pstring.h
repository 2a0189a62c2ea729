/* SPDX-License-Identifier: MIT
 * pstring.h - the protocol's constraint on topics, matcher patterns and the id and type of
 * updates (protocol 1.0): valid UTF-8 without control characters (C0, DEL, C1) and without
 * Unicode format characters (category Cf: bidirectional and zero-width controls), as the
 * reference hub's validProtocolString checks it.
 */
#ifndef QS_PSTRING_H
#define QS_PSTRING_H

#include "buf.h"

/** True when s[0, n) is a valid protocol string (see above). */
bool qs_protocol_string_valid(const char *s, size_t n);
/** True for a Unicode format character (category Cf). */
bool qs_unicode_is_cf(uint32_t cp);

/**
 * Appends s[0, n) quoted as Go's %q (strconv.Quote) writes it, for error messages that name
 * a value as the reference does: quotes and backslashes escaped, \a \b \f \n \r \t \v,
 * other ASCII controls and invalid UTF-8 bytes as \xNN, characters that are not printable as
 * \uNNNN or \UNNNNNNNN. Printable is approximated without Unicode's tables: controls, format
 * characters, spaces other than U+0020, separators and private use are not; unassigned code
 * points are written as they are (Go escapes them).
 */
void qs_go_quote(qs_buf *out, const char *s, size_t n);

#endif
