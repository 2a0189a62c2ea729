/* SPDX-License-Identifier: MIT
 * demo.h - the reference hub's demo endpoint (`demo`), INSECURE by design: it lets a
 * browser test discovery and cookie authorization without a server of its own.
 *
 * GET or HEAD /.well-known/mercure/ui/demo/<anything>?body=…&jwt=… answers, as the
 * reference does:
 *  - the `body` query parameter as the body;
 *  - Content-Type from the path's extension (the types Go knows without a system table,
 *    and .jsonld as application/ld+json); without one, the type Go's sniffing gives a
 *    non-empty body (HTML, XML, PDF, text or binary), none for an empty body;
 *  - `Link: </.well-known/mercure>; rel="mercure"` (with `; cookie-name="…"` when
 *    cookie_name is not the default) and `Link: <request URI>; rel="self"`;
 *  - the `jwt` parameter as the authorization cookie (Path=/.well-known/mercure,
 *    SameSite=Strict, HttpOnly over TLS), or that cookie expired when `jwt` is empty.
 */
#ifndef QS_DEMO_H
#define QS_DEMO_H

#include "http.h"

/** The demo path's prefix. */
#define QS_DEMO_PATH "/.well-known/mercure/ui/demo/"

void qs_demo_handle(qs_http_req *req);

/** The content type of a path by its extension, as Go's mime.TypeByExtension answers
 *  without a system table (plus .jsonld); NULL when unknown. */
const char *qs_demo_type_by_extension(const char *path, size_t len);
/** The content type Go's http.DetectContentType gives these bytes, for the cases a demo
 *  body meets (HTML, XML, PDF, byte-order marks, text, else binary). */
const char *qs_demo_sniff(const char *body, size_t len);
/** Go's Set-Cookie value for a cookie (value sanitized as Go does). */
void qs_demo_cookie(qs_buf *out, const char *name, const char *value, size_t value_len,
                    bool http_only);

#endif
