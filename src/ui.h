/* SPDX-License-Identifier: MIT
 * ui.h - everything under /.well-known/mercure/ui: the debugging UI (with `ui` or `demo`)
 * and, with `demo`, the reference's demo endpoint under …/ui/demo/ (demo.h).
 *
 * The UI is a page, a script, a style sheet and an icon embedded in the binary
 * (ui_assets.h), loaded from the hub alone, so the hub's Content-Security-Policy
 * (default-src 'self') holds. Files carry an ETag and "Cache-Control: no-cache": a browser
 * revalidates and gets 304 until the binary changes. Without `ui` and `demo` the path is
 * the hub's, and answers 404 like any unknown hub path.
 */
#ifndef QS_UI_H
#define QS_UI_H

#include "http.h"

/** The UI path's prefix, without its final slash. */
#define QS_UI_PATH "/.well-known/mercure/ui"

/** Answers a request whose path is QS_UI_PATH or below it. */
void qs_ui_handle(qs_http_req *req);

#endif
