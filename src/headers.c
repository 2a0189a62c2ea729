/* SPDX-License-Identifier: MIT
 * headers.c - lookups in a list of HTTP header fields.
 */
#include "headers.h"

const qs_header *qs_headers_find(const qs_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (qs_slice_ieq(h[i].name, name))
            return &h[i];
    return NULL;
}

size_t qs_headers_count(const qs_header *h, size_t n, const char *name)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (qs_slice_ieq(h[i].name, name))
            count++;
    return count;
}
