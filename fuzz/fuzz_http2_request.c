/* SPDX-License-Identifier: MIT
 * fuzz_http2_request.c - an HTTP/2 request's fields (what nghttp2 hands the hub one by one)
 * gathered under the header-list bound, then split for the handlers.
 *
 * Input: two bytes pick the bound (0..65535 bytes), then fields, each a name length (one
 * byte), the name, a value length (two bytes, big-endian), the value, until the input ends
 * (a truncated field takes what is left). Names and values are arbitrary bytes, NUL and
 * ':' included. Checked against a model kept here:
 *   - a field is accepted iff the list, counted as HTTP/2 counts it (name + value + 32 per
 *     field, refused ones included), stays within the bound; the accepted ones never exceed
 *     it, and too_large says whether one was refused;
 *   - finish succeeds iff the first :method accepted is non-empty and the first :path is
 *     "*" or starts with '/'; then method and target are those fields, path + '?' + query
 *     (when there is a '?') is the target, the path holds no '?';
 *   - the handler's headers are the accepted fields not starting with ':', in order, with
 *     their exact bytes.
 */
#include "http2_request.h"

#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

typedef struct field {
    const char *name, *value;
    size_t nlen, vlen;
} field;

static bool slice_is(qs_slice s, const char *p, size_t n)
{
    return s.n == n && (n == 0 || memcmp(s.p, p, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = (size_t)data[0] << 8 | data[1];
    const uint8_t *p = data + 2, *end = data + size;

    qs_http2_request r;
    qs_http2_request_init(&r, max);
    field *accepted = calloc(size + 1, sizeof(*accepted)); /* at most one field per byte */
    size_t n_accepted = 0, counted = 0, kept_bytes = 0;
    bool refused = false;
    while (p < end) {
        size_t nlen = *p++;
        nlen = nlen < (size_t)(end - p) ? nlen : (size_t)(end - p);
        const char *name = (const char *)p;
        p += nlen;
        size_t vlen = 0;
        if (end - p >= 2) {
            vlen = (size_t)p[0] << 8 | p[1];
            p += 2;
        } else {
            p = end;
        }
        vlen = vlen < (size_t)(end - p) ? vlen : (size_t)(end - p);
        const char *value = (const char *)p;
        p += vlen;

        /* Each copy exactly sized, so a read past a field is caught. */
        char *n_copy = malloc(nlen + 1), *v_copy = malloc(vlen + 1);
        memcpy(n_copy, name, nlen);
        memcpy(v_copy, value, vlen);
        counted += nlen + vlen + 32;
        bool ok = qs_http2_request_add(&r, n_copy, nlen, v_copy, vlen);
        free(n_copy);
        free(v_copy);
        CHECK(ok == (counted <= max));
        if (ok) {
            accepted[n_accepted++] = (field){name, value, nlen, vlen};
            kept_bytes += nlen + vlen + 32;
        } else {
            refused = true;
        }
        CHECK(r.too_large == refused);
        CHECK(kept_bytes <= max);
        CHECK(r.n == n_accepted);
    }

    /* The model's expectations. */
    const field *method = NULL, *path = NULL;
    size_t regular = 0;
    for (size_t i = 0; i < n_accepted; i++) {
        const field *f = &accepted[i];
        if (f->nlen && f->name[0] == ':') {
            if (!method && f->nlen == 7 && memcmp(f->name, ":method", 7) == 0)
                method = f;
            else if (!path && f->nlen == 5 && memcmp(f->name, ":path", 5) == 0)
                path = f;
        } else {
            regular++;
        }
    }
    bool valid = method && method->vlen && path && path->vlen &&
                 (path->value[0] == '/' || (path->vlen == 1 && path->value[0] == '*'));

    qs_http2_request_parts parts;
    const char *reason = NULL;
    int rc = qs_http2_request_finish(&r, &parts, &reason);
    CHECK((rc == 0) == valid);
    CHECK(rc == 0 ? reason == NULL : reason != NULL && *reason);
    CHECK(parts.n_headers == regular);
    for (size_t i = 0, k = 0; i < n_accepted; i++) {
        const field *f = &accepted[i];
        if (f->nlen && f->name[0] == ':')
            continue;
        CHECK(slice_is(parts.headers[k].name, f->name, f->nlen));
        CHECK(slice_is(parts.headers[k].value, f->value, f->vlen));
        k++;
    }
    if (rc == 0) {
        CHECK(slice_is(parts.method, method->value, method->vlen));
        CHECK(slice_is(parts.target, path->value, path->vlen));
        const qs_slice t = parts.target;
        CHECK(parts.path.p == t.p && parts.path.n <= t.n);
        CHECK(memchr(parts.path.p, '?', parts.path.n) == NULL);
        if (parts.path.n == t.n) {
            CHECK(parts.query.n == 0);
        } else {
            CHECK(t.p[parts.path.n] == '?');
            CHECK(parts.query.p == t.p + parts.path.n + 1);
            CHECK(parts.path.n + 1 + parts.query.n == t.n);
        }
    }
    free(parts.headers);
    qs_http2_request_free(&r);
    free(accepted);
    return 0;
}
