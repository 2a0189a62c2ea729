/* SPDX-License-Identifier: MIT
 * util.c - allocation wrappers, clocks, randomness.
 */
#include "util.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void qs_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("quicksilver: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

size_t qs_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need + 1)
        return 0;
    for (size_t i = 1; i <= need; i++) {
        unsigned char b = s[i];
        if (b < lo || b > hi)
            return 0;
        lo = 0x80; /* only the first continuation byte has a narrower range */
        hi = 0xBF;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

void *qs_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        qs_panic("out of memory allocating %zu bytes", n);
    return p;
}

void *qs_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        qs_panic("out of memory allocating %zu x %zu bytes", count, n);
    return p;
}

void *qs_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        qs_panic("out of memory reallocating %zu bytes", n);
    return q;
}

char *qs_xstrdup(const char *s)
{
    return qs_xstrndup(s, strlen(s));
}

char *qs_xstrndup(const char *s, size_t n)
{
    char *d = qs_xmalloc(n + 1);
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *qs_xasprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        qs_panic("vsnprintf failed");
    char *s = qs_xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

bool qs_slice_ieq(qs_slice a, const char *s)
{
    size_t n = strlen(s);
    if (a.n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a.p[i], y = (unsigned char)s[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

uint64_t qs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t qs_now_ms(void)
{
    return qs_now_ns() / 1000000u;
}

int64_t qs_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t qs_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qs_random_bytes(void *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1)
        qs_panic("RAND_bytes failed");
}

char *qs_data_dir(void)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg)
        return qs_xasprintf("%s/quicksilver", xdg);
    const char *home = getenv("HOME");
    if (home && *home)
        return qs_xasprintf("%s/.local/share/quicksilver", home);
    return qs_xstrdup(".");
}
