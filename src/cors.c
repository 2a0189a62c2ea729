/* SPDX-License-Identifier: MIT
 * cors.c - the CORS headers of actual requests and preflights.
 */
#include "cors.h"

#include "auth.h"

static void lower_copy(char *dst, size_t cap, qs_slice s)
{
    size_t n = QS_MIN(s.n, cap - 1);
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        dst[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    dst[n] = '\0';
}

static bool origin_allowed(const qs_config *cfg, qs_slice origin)
{
    char lower[512];
    if (origin.n >= sizeof(lower))
        return false;
    lower_copy(lower, sizeof(lower), origin);
    return qs_origin_allowed(lower, origin.n, cfg->cors_origins, cfg->n_cors_origins);
}

static bool allows_all(const qs_config *cfg)
{
    for (size_t i = 0; i < cfg->n_cors_origins; i++)
        if (strcmp(cfg->cors_origins[i], "*") == 0)
            return true;
    return false;
}

/* GET, HEAD, POST; and QUERY, 1.0's subscription method, when 1.0 is served. */
static bool method_allowed(const qs_config *cfg, qs_slice m)
{
    return qs_slice_ieq(m, "GET") || qs_slice_ieq(m, "POST") || qs_slice_ieq(m, "HEAD") ||
           (cfg->protocol_1 && qs_slice_ieq(m, "QUERY"));
}

/* The 0.x reference always allows credentials (browsers ignore it beside "*"); the 1.0
 * reference only with an explicit list of origins. Serving both, 0.x's header stays. */
static bool credentials(const qs_config *cfg)
{
    return cfg->protocol_0x || !allows_all(cfg);
}

static void allow_origin(const qs_config *cfg, qs_slice origin, qs_buf *out)
{
    qs_buf_append_str(out, "Access-Control-Allow-Origin: ");
    if (allows_all(cfg))
        qs_buf_append_char(out, '*');
    else
        qs_buf_append(out, origin.p, origin.n);
    qs_buf_append_str(out, "\r\n");
}

void qs_cors_headers(const qs_config *cfg, qs_slice method, const qs_header *h, size_t n,
                     qs_buf *out)
{
    if (!cfg->n_cors_origins)
        return;
    qs_buf_append_str(out, "Vary: Origin\r\n");
    const qs_header *o = qs_headers_find(h, n, "Origin");
    if (!o || !o->value.n || !origin_allowed(cfg, o->value) || !method_allowed(cfg, method))
        return;
    allow_origin(cfg, o->value, out);
    if (credentials(cfg))
        qs_buf_append_str(out, "Access-Control-Allow-Credentials: true\r\n");
    /* 1.0's subscription API carries its cursor in Link, which scripts must be able to read. */
    if (cfg->protocol_1)
        qs_buf_append_str(out, "Access-Control-Expose-Headers: Link\r\n");
}

bool qs_cors_is_preflight(const qs_config *cfg, qs_slice method, const qs_header *h, size_t n)
{
    return cfg->n_cors_origins && qs_slice_eq(method, "OPTIONS") &&
           qs_headers_find(h, n, "Access-Control-Request-Method");
}

/* Requested headers must all be in the allowed list (case-insensitive, comma-separated). */
static bool headers_allowed(qs_slice list)
{
    static const char *const allowed[] = {"authorization", "cache-control", "last-event-id",
                                          "origin"};
    size_t i = 0;
    while (i < list.n) {
        while (i < list.n && (list.p[i] == ' ' || list.p[i] == ',' || list.p[i] == '\t'))
            i++;
        size_t start = i;
        while (i < list.n && list.p[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list.p[end - 1] == ' ' || list.p[end - 1] == '\t'))
            end--;
        if (end == start)
            continue;
        qs_slice name = {list.p + start, end - start};
        bool ok = false;
        for (size_t k = 0; k < QS_ARRAY_LEN(allowed) && !ok; k++)
            ok = qs_slice_ieq(name, allowed[k]);
        if (!ok)
            return false;
    }
    return true;
}

void qs_cors_preflight(const qs_config *cfg, const qs_header *h, size_t n, qs_buf *out)
{
    qs_buf_append_str(out, "Vary: Origin, Access-Control-Request-Method, "
                           "Access-Control-Request-Headers\r\n");
    const qs_header *o = qs_headers_find(h, n, "Origin");
    const qs_header *m = qs_headers_find(h, n, "Access-Control-Request-Method");
    const qs_header *rh = qs_headers_find(h, n, "Access-Control-Request-Headers");
    bool method_ok = m && (method_allowed(cfg, m->value) || qs_slice_ieq(m->value, "OPTIONS"));
    if (!o || !o->value.n || !origin_allowed(cfg, o->value) || !method_ok ||
        (rh && !headers_allowed(rh->value)))
        return;
    allow_origin(cfg, o->value, out);
    qs_buf_append_str(out, "Access-Control-Allow-Methods: ");
    for (size_t i = 0; i < m->value.n; i++) {
        char ch = m->value.p[i];
        qs_buf_append_char(out, (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch));
    }
    qs_buf_append_str(out, "\r\n");
    if (rh && rh->value.n) {
        qs_buf_append_str(out, "Access-Control-Allow-Headers: ");
        qs_buf_append(out, rh->value.p, rh->value.n);
        qs_buf_append_str(out, "\r\n");
    }
    if (credentials(cfg))
        qs_buf_append_str(out, "Access-Control-Allow-Credentials: true\r\n");
}
