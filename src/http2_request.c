/* SPDX-License-Identifier: MIT
 * http2_request.c - gathering an HTTP/2 request's header fields.
 */
#include "http2_request.h"

#include <stdlib.h>

void qs_http2_request_init(qs_http2_request *r, size_t max_list_bytes)
{
    memset(r, 0, sizeof(*r));
    r->max_list_bytes = max_list_bytes;
}

bool qs_http2_request_add(qs_http2_request *r, const char *name, size_t nlen, const char *value,
                          size_t vlen)
{
    r->list_bytes += nlen + vlen + 32;
    if (r->list_bytes > r->max_list_bytes) {
        r->too_large = true;
        return false;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->offsets = qs_xrealloc(r->offsets, r->cap * 3 * sizeof(*r->offsets));
    }
    size_t *o = &r->offsets[r->n++ * 3];
    o[0] = r->fields.len;
    qs_buf_append(&r->fields, name, nlen);
    qs_buf_append_char(&r->fields, '\0');
    o[1] = r->fields.len;
    o[2] = vlen;
    qs_buf_append(&r->fields, value, vlen);
    qs_buf_append_char(&r->fields, '\0');
    return true;
}

int qs_http2_request_finish(qs_http2_request *r, qs_http2_request_parts *out, const char **reason)
{
    memset(out, 0, sizeof(*out));
    out->headers = qs_xcalloc(r->n + 1, sizeof(*out->headers));
    bool have_method = false, have_path = false;
    for (size_t i = 0; i < r->n; i++) {
        const size_t *o = &r->offsets[i * 3];
        qs_slice name = {r->fields.p + o[0], o[1] - o[0] - 1};
        qs_slice value = {r->fields.p + o[1], o[2]};
        if (name.n && name.p[0] == ':') {
            if (qs_slice_eq(name, ":method") && !have_method) {
                out->method = value;
                have_method = true;
            } else if (qs_slice_eq(name, ":path") && !have_path) {
                out->target = value;
                have_path = true;
            } else if (qs_slice_eq(name, ":authority") && !out->authority.p) {
                out->authority = value; /* protocol 1.0's resource identifier needs it */
            }
            continue; /* :scheme: nothing the hub needs */
        }
        out->headers[out->n_headers++] = (qs_header){name, value};
    }
    if (!have_method || !out->method.n) {
        *reason = "missing :method";
        return -1;
    }
    if (!have_path || !out->target.n ||
        (out->target.p[0] != '/' && !qs_slice_eq(out->target, "*"))) {
        *reason = "invalid :path";
        return -1;
    }
    const char *q = memchr(out->target.p, '?', out->target.n);
    size_t path_len = q ? (size_t)(q - out->target.p) : out->target.n;
    out->path = (qs_slice){out->target.p, path_len};
    out->query = q ? (qs_slice){q + 1, out->target.n - path_len - 1} : (qs_slice){"", 0};
    return 0;
}

void qs_http2_request_free(qs_http2_request *r)
{
    qs_buf_free(&r->fields);
    free(r->offsets);
    memset(r, 0, sizeof(*r));
}
