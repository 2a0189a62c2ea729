/* SPDX-License-Identifier: MIT
 * gojson.h - JSON written byte for byte as Go's encoding/json writes it, for documents
 * clients compare with the reference hub's (subscription events and the subscriptions
 * API): json.MarshalIndent(v, "", "  ").
 *
 * Go's rules reproduced: "<", ">", "&", U+2028 and U+2029 escaped as \u003c…; control
 * characters as \n \r \t or \u00XX; invalid UTF-8 as \ufffd; numbers decoded into float64
 * and written in the shortest form that round-trips (exponent form below 1e-6 and from
 * 1e21, like Go); keys of decoded objects (Go maps) sorted; empty objects and arrays as
 * {} and []. Pure: appends to a buffer.
 */
#ifndef QS_GOJSON_H
#define QS_GOJSON_H

#include <jansson.h>

#include "buf.h"

/** Appends a JSON string literal of s (len bytes) with Go's escaping. */
void qs_gojson_string(qs_buf *out, const char *s, size_t len);
/** Appends v indented as MarshalIndent does at nesting depth `depth` (2 spaces each). */
void qs_gojson_value(qs_buf *out, json_t *v, int depth);
/** Appends a float64 as Go's encoding/json writes it. */
void qs_gojson_number(qs_buf *out, double f);
/** Newline + 2*depth spaces. */
void qs_gojson_indent(qs_buf *out, int depth);

#endif
