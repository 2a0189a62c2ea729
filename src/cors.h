/* SPDX-License-Identifier: MIT
 * cors.h - cross-origin requests, answered as the reference hub answers them with
 * `cors_origins` (origins compared in lower case; "*" allows any; credentials allowed).
 *
 * Pure: reads the configuration and the request's header fields, appends header lines
 * ("Name: value\r\n") to a buffer.
 */
#ifndef QS_CORS_H
#define QS_CORS_H

#include "buf.h"
#include "config.h"
#include "headers.h"

/** The CORS header lines of an actual (non-preflight) request: nothing without
 *  cors_origins, else "Vary: Origin" and, for an allowed origin and method, the
 *  Access-Control-Allow-Origin and -Credentials lines. */
void qs_cors_headers(const qs_config *cfg, qs_slice method, const qs_header *h, size_t n,
                     qs_buf *out);
/** True for a preflight the hub answers: OPTIONS with Access-Control-Request-Method while
 *  cors_origins is set. */
bool qs_cors_is_preflight(const qs_config *cfg, qs_slice method, const qs_header *h, size_t n);
/** The CORS header lines of the answer to a preflight (204). */
void qs_cors_preflight(const qs_config *cfg, const qs_header *h, size_t n, qs_buf *out);

#endif
