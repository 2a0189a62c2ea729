/* SPDX-License-Identifier: MIT
 * endpoint.h - what every endpoint of the hub answers with: the security headers of the
 * reference's middleware and the CORS headers, errors carrying them, and authorization
 * against this worker's token cache.
 */
#ifndef QS_ENDPOINT_H
#define QS_ENDPOINT_H

#include "auth.h"
#include "http.h"

/** Appends the header lines of every hub response: security headers, then CORS. */
void qs_endpoint_headers(qs_http_req *req, qs_buf *out);
/** The security headers alone (a preflight's answer carries them without the CORS lines
 *  of an actual request). */
void qs_endpoint_security_headers(qs_buf *out);
/** qs_http_error with the hub's headers. */
void qs_endpoint_error(qs_http_req *req, int status, const char *message);
/** 405 with the hub's headers and "Allow: <allow>". */
void qs_endpoint_method_not_allowed(qs_http_req *req, const char *allow);
/** Finds and verifies the request's token with the publisher's key and the CSRF rule
 *  (publish) or the subscriber's key; see qs_authorize. */
enum qs_auth_status qs_endpoint_authorize(qs_http_req *req, bool publish, qs_jwt_claims *claims,
                                          const char **reason);

#endif
