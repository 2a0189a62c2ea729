/* SPDX-License-Identifier: MIT
 * publish.h - POST /.well-known/mercure: authorize, validate, hand the update to the
 * transport, answer with its id once the transport reports it durable.
 */
#ifndef QS_PUBLISH_H
#define QS_PUBLISH_H

#include "http.h"

/** Answers a publish (later, once the transport has answered). */
void qs_publish_handle(qs_http_req *req);

#endif
