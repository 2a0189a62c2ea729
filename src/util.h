/* SPDX-License-Identifier: MIT
 * util.h - allocation wrappers, string slices and small helpers used everywhere.
 *
 * Allocation policy: small internal allocations abort on out-of-memory (x*alloc);
 * sizes chosen by a peer are always checked against a configured limit first.
 */
#ifndef QS_UTIL_H
#define QS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QS_UNUSED(x) ((void)(x))
#define QS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define QS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define qs_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#define qs_likely(x) __builtin_expect(!!(x), 1)
#define qs_unlikely(x) __builtin_expect(!!(x), 0)
#define QS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define QS_NORETURN __attribute__((noreturn))
#else
#define qs_likely(x) (x)
#define qs_unlikely(x) (x)
#define QS_PRINTF(a, b)
#define QS_NORETURN
#endif

/** A borrowed byte range; not NUL-terminated unless stated. */
typedef struct qs_slice {
    const char *p;
    size_t n;
} qs_slice;

#define QS_SLICE_LIT(s) ((qs_slice){(s), sizeof(s) - 1})

/** Prints "quicksilver: fatal: <msg>" to stderr and aborts. */
QS_NORETURN void qs_panic(const char *fmt, ...) QS_PRINTF(1, 2);

/** malloc/calloc/realloc/strdup that abort on out-of-memory; never return NULL. */
void *qs_xmalloc(size_t n);
void *qs_xcalloc(size_t count, size_t n);
void *qs_xrealloc(void *p, size_t n);
char *qs_xstrdup(const char *s);
/** Copies n bytes of s and appends a NUL. */
char *qs_xstrndup(const char *s, size_t n);
/** asprintf that aborts on out-of-memory. */
char *qs_xasprintf(const char *fmt, ...) QS_PRINTF(1, 2);

/** True when the slice equals the NUL-terminated string. */
static inline bool qs_slice_eq(qs_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.n == n && memcmp(a.p, s, n) == 0;
}

/** ASCII case-insensitive comparison of a slice with a NUL-terminated string. */
bool qs_slice_ieq(qs_slice a, const char *s);

/** The value of a hexadecimal digit, or -1. */
static inline int qs_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/** Decodes one strict UTF-8 sequence (no overlong forms, surrogates or values above
 *  U+10FFFF), as Go decodes it. Returns its length (1..4), or 0 when s[0..n) does not start
 *  with a valid sequence. */
size_t qs_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/** Monotonic clock in milliseconds / nanoseconds. */
uint64_t qs_now_ms(void);
uint64_t qs_now_ns(void);
/** Wall clock, seconds / milliseconds since the epoch. */
int64_t qs_wall_seconds(void);
int64_t qs_wall_ms(void);

/** The hub's data directory (malloc'd): $XDG_DATA_HOME/quicksilver, else
 *  $HOME/.local/share/quicksilver, else the current directory. */
char *qs_data_dir(void);

/** Fills buf with n cryptographically secure random bytes (OpenSSL); aborts on failure. */
void qs_random_bytes(void *buf, size_t n);

#endif
