/* SPDX-License-Identifier: MIT
 * form.c - query strings and urlencoded forms, percent-encoding and Cookie lookup.
 *
 * Everything here mirrors Go's net/url and net/http behaviour byte for byte, because the
 * hub must accept and refuse exactly what the reference implementation does.
 */
#include "form.h"

#include <stdlib.h>

/* Go's readCookies returns nothing when a header holds more than this many cookies. */
#define QS_COOKIE_MAX_NUM 3000

int qs_form_unescape(const char *s, size_t len, bool plus_is_space, qs_buf *out)
{
    size_t i = 0, run = 0;

    if (len == 0)
        return 0;
    qs_buf_reserve(out, len);
    while (i < len) {
        char c = s[i];
        if (c != '%' && (c != '+' || !plus_is_space)) {
            i++;
            continue;
        }
        qs_buf_append(out, s + run, i - run);
        if (c == '+') {
            qs_buf_append_char(out, ' ');
            i++;
        } else {
            int hi = i + 2 < len ? qs_hex_value((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < len ? qs_hex_value((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            qs_buf_append_char(out, (char)(hi << 4 | lo));
            i += 3;
        }
        run = i;
    }
    qs_buf_append(out, s + run, i - run);
    return 0;
}

void qs_form_escape(qs_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";

    qs_buf_reserve(out, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            qs_buf_append_char(out, (char)c);
        } else if (c == ' ') {
            qs_buf_append_char(out, '+');
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            qs_buf_append(out, esc, sizeof(esc));
        }
    }
}

/* Copies the scratch buffer into an owned NUL-terminated string. */
static char *take_string(qs_buf *scratch, size_t *len)
{
    *len = scratch->len;
    return qs_xstrndup(qs_buf_cstr(scratch), scratch->len);
}

static void add_pair(qs_form *f, qs_buf *key, qs_buf *value)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->pairs = qs_xrealloc(f->pairs, f->cap * sizeof(*f->pairs));
    }
    qs_form_pair *p = &f->pairs[f->n++];
    p->key = take_string(key, &p->key_len);
    p->value = take_string(value, &p->value_len);
}

enum qs_form_status qs_form_parse(qs_form *f, const char *s, size_t len, size_t max_pairs,
                                  const char **err)
{
    enum qs_form_status st = QS_FORM_OK;
    /* (NULL, 0) is a valid empty input; NULL + 0 is not valid C. */
    const char *why = NULL, *p = s, *end = len ? s + len : s;
    bool bad_semicolon = false;
    size_t added = 0;
    qs_buf key = QS_BUF_INIT, value = QS_BUF_INIT;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *piece = p;
        size_t n = (size_t)(pe - piece);
        p = amp ? amp + 1 : end;

        /* Go 1.17 stopped treating ';' as a separator and rejects such pairs instead, so a
         * proxy splitting on ';' and the hub cannot see different parameters. */
        if (memchr(piece, ';', n)) {
            bad_semicolon = true;
            continue;
        }
        if (n == 0)
            continue;

        const char *eq = memchr(piece, '=', n);
        size_t klen = eq ? (size_t)(eq - piece) : n;
        key.len = 0;
        value.len = 0;
        if (qs_form_unescape(piece, klen, true, &key) != 0 ||
            (eq && qs_form_unescape(eq + 1, n - klen - 1, true, &value) != 0)) {
            /* Go keeps the first escape error but lets any semicolon error override it. */
            if (!why)
                why = "invalid URL escape";
            continue;
        }
        if (added == max_pairs) {
            st = QS_FORM_E_TOO_MANY;
            why = "too many parameters";
            goto out;
        }
        add_pair(f, &key, &value);
        added++;
    }

    if (bad_semicolon)
        why = "invalid semicolon separator in query";
    if (why)
        st = QS_FORM_E_INVALID;
out:
    qs_buf_free(&key);
    qs_buf_free(&value);
    if (st != QS_FORM_OK && err)
        *err = why;
    return st;
}

const qs_form_pair *qs_form_get(const qs_form *f, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < f->n; i++) {
        if (f->pairs[i].key_len == n && memcmp(f->pairs[i].key, key, n) == 0)
            return &f->pairs[i];
    }
    return NULL;
}

size_t qs_form_count(const qs_form *f, const char *key)
{
    size_t n = strlen(key), count = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->pairs[i].key_len == n && memcmp(f->pairs[i].key, key, n) == 0)
            count++;
    }
    return count;
}

void qs_form_free(qs_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->pairs[i].key);
        free(f->pairs[i].value);
    }
    free(f->pairs);
    *f = QS_FORM_INIT;
}

/* textproto.TrimString's notion of space. */
static bool is_cookie_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static qs_slice trim_cookie_space(const char *b, const char *e)
{
    while (b < e && is_cookie_space(*b))
        b++;
    while (e > b && is_cookie_space(e[-1]))
        e--;
    return (qs_slice){b, (size_t)(e - b)};
}

static bool is_token(qs_slice s)
{
    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

/* Go's validCookieValueByte: printable ASCII and space, minus '"', ';' and '\\'. */
static bool is_cookie_value_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != ';' && c != '\\';
}

bool qs_form_cookie(const char *header, size_t len, const char *name, qs_slice *value)
{
    const char *p = header, *end = len ? header + len : header;
    size_t name_len = strlen(name), parts = 1;

    /* http.Request.Cookie("") never matches. */
    if (name_len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        parts += header[i] == ';';
    if (parts > QS_COOKIE_MAX_NUM)
        return false;

    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        qs_slice part = trim_cookie_space(p, pe);
        p = semi ? semi + 1 : end;
        if (part.n == 0)
            continue;

        const char *eq = memchr(part.p, '=', part.n);
        const char *part_end = part.p + part.n;
        qs_slice nm = trim_cookie_space(part.p, eq ? eq : part_end);
        if (!is_token(nm) || nm.n != name_len || memcmp(nm.p, name, name_len) != 0)
            continue;

        /* The value keeps leading spaces after '=': Go only trims the whole pair. */
        qs_slice v = eq ? (qs_slice){eq + 1, (size_t)(part_end - eq - 1)} : (qs_slice){part_end, 0};
        if (v.n > 1 && v.p[0] == '"' && v.p[v.n - 1] == '"')
            v = (qs_slice){v.p + 1, v.n - 2};
        bool ok = true;
        for (size_t i = 0; i < v.n && ok; i++)
            ok = is_cookie_value_byte((unsigned char)v.p[i]);
        if (!ok)
            continue;
        *value = v;
        return true;
    }
    return false;
}
