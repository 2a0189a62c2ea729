/* SPDX-License-Identifier: MIT
 * routes.h - the hub's URL space: which handler answers which path, and the small
 * endpoints (health, metrics, robots.txt, the welcome page, 404s and 405s).
 */
#ifndef QS_ROUTES_H
#define QS_ROUTES_H

#include "http.h"

/** The router every protocol of every worker dispatches through. */
extern const qs_http_router qs_routes;

#endif
