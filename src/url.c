/* SPDX-License-Identifier: MIT
 * url.c - transport URL parsing.
 */
#include "url.h"

#include <stdlib.h>

static char *decode(const char *s, size_t n, bool *ok)
{
    qs_buf b = QS_BUF_INIT;
    if (qs_form_unescape(s, n, false, &b) < 0)
        *ok = false;
    return qs_buf_steal(&b);
}

void qs_url_free(qs_url *u)
{
    free(u->scheme);
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->path);
    free(u->opaque);
    qs_form_free(&u->query);
    memset(u, 0, sizeof(*u));
}

int qs_url_parse(const char *s, qs_url *u, const char **err)
{
    memset(u, 0, sizeof(*u));
    const char *sep = strstr(s, "://");
    if (!sep || sep == s) {
        *err = "missing scheme (expected scheme://…)";
        return -1;
    }
    for (const char *p = s; p < sep; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (p > s && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
        if (!ok) {
            *err = "invalid scheme";
            return -1;
        }
    }
    u->scheme = qs_xstrndup(s, (size_t)(sep - s));
    for (char *p = u->scheme; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);

    const char *rest = sep + 3;
    size_t rest_len = strcspn(rest, "?#");
    u->opaque = qs_xstrndup(rest, rest_len);
    bool ok = true;
    if (rest[rest_len] == '?') {
        const char *q = rest + rest_len + 1;
        size_t qn = strcspn(q, "#");
        const char *qerr = NULL;
        if (qs_form_parse(&u->query, q, qn, 1000, &qerr) != QS_FORM_OK) {
            *err = "invalid query string";
            qs_url_free(u);
            return -1;
        }
    }

    size_t auth_len = strcspn(u->opaque, "/");
    const char *auth = u->opaque;
    u->path = decode(auth + auth_len, strlen(auth + auth_len), &ok);
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (auth[i] == '@')
            at = auth + i;
    const char *hostport = auth;
    if (at) {
        size_t ui_len = (size_t)(at - auth);
        const char *colon = memchr(auth, ':', ui_len);
        if (colon) {
            u->user = decode(auth, (size_t)(colon - auth), &ok);
            u->password = decode(colon + 1, (size_t)(at - colon - 1), &ok);
        } else {
            u->user = decode(auth, ui_len, &ok);
        }
        hostport = at + 1;
    }
    size_t hp_len = (size_t)(auth + auth_len - hostport);
    const char *port = NULL;
    if (hp_len && hostport[0] == '[') {
        const char *close = memchr(hostport, ']', hp_len);
        if (!close) {
            *err = "unterminated IPv6 address";
            qs_url_free(u);
            return -1;
        }
        u->host = qs_xstrndup(hostport + 1, (size_t)(close - hostport - 1));
        if (close + 1 < hostport + hp_len) {
            if (close[1] != ':') {
                *err = "invalid host";
                qs_url_free(u);
                return -1;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hostport, ':', hp_len);
        u->host = qs_xstrndup(hostport, colon ? (size_t)(colon - hostport) : hp_len);
        if (colon)
            port = colon + 1;
    }
    if (port) {
        const char *end = auth + auth_len;
        long v = 0;
        if (port == end) {
            *err = "empty port";
            qs_url_free(u);
            return -1;
        }
        for (const char *p = port; p < end; p++) {
            if (*p < '0' || *p > '9' || (v = v * 10 + (*p - '0')) > 65535) {
                *err = "invalid port";
                qs_url_free(u);
                return -1;
            }
        }
        u->port = (int)v;
    }
    if (!ok) {
        *err = "invalid percent-encoding";
        qs_url_free(u);
        return -1;
    }
    return 0;
}
