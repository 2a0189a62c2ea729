/* SPDX-License-Identifier: MIT
 * buf.c - growable byte buffer.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void qs_buf_reserve(qs_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->p = qs_xrealloc(b->p, cap);
    b->cap = cap;
}

void qs_buf_append(qs_buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    qs_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void qs_buf_append_str(qs_buf *b, const char *s)
{
    qs_buf_append(b, s, strlen(s));
}

void qs_buf_append_char(qs_buf *b, char c)
{
    qs_buf_reserve(b, 1);
    b->p[b->len++] = c;
}

void qs_buf_appendf(qs_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        qs_buf_reserve(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void qs_buf_append_u64(qs_buf *b, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    qs_buf_append(b, tmp + i, sizeof(tmp) - i);
}

const char *qs_buf_cstr(qs_buf *b)
{
    qs_buf_reserve(b, 0);
    b->p[b->len] = '\0';
    return b->p;
}

char *qs_buf_steal(qs_buf *b)
{
    qs_buf_cstr(b);
    char *p = b->p;
    *b = QS_BUF_INIT;
    return p;
}

void qs_buf_consume(qs_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void qs_buf_reset(qs_buf *b)
{
    b->len = 0;
}

void qs_buf_free(qs_buf *b)
{
    free(b->p);
    *b = QS_BUF_INIT;
}
