/* SPDX-License-Identifier: MIT
 * url.h - transport URLs: scheme://[user[:password]@]host[:port][/path][?query].
 *
 * Pure: bytes in, struct out. Percent-escapes in user, password and path are decoded; the
 * query is parsed like a form (Go's url.ParseQuery). Bracketed IPv6 hosts are supported.
 */
#ifndef QS_URL_H
#define QS_URL_H

#include "form.h"

typedef struct qs_url {
    char *scheme;   /* lower-cased */
    char *user;     /* NULL when absent */
    char *password; /* NULL when absent */
    char *host;     /* may be empty ("bolt:///abs/path") */
    int port;       /* 0 when absent */
    char *path;     /* decoded, "" when absent; starts with '/' when present */
    char *opaque;   /* everything between "://" and "?" or "#", undecoded: file transports
                       read their path from it ("bolt://relative.db") */
    qs_form query;
} qs_url;

/** Parses s. Returns 0, or -1 with *err set to a static reason (out is then freed). */
int qs_url_parse(const char *s, qs_url *out, const char **err);
void qs_url_free(qs_url *u);

#endif
