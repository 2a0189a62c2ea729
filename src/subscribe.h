/* SPDX-License-Identifier: MIT
 * subscribe.h - GET /.well-known/mercure: authorize, register, open the event stream.
 */
#ifndef QS_SUBSCRIBE_H
#define QS_SUBSCRIBE_H

#include "http.h"

/** Answers a subscription request (GET, or HEAD for the stream's headers alone). */
void qs_subscribe_handle(qs_http_req *req);

#endif
