/* SPDX-License-Identifier: MIT
 * fuzz_form.c - form/query parsing, percent-encoding and Cookie lookup on arbitrary bytes.
 *
 * Checks, beyond memory safety: every stored pair survives an escape/parse round trip,
 * unescape(query_escape(x)) == x, escaped output uses only the characters Go emits, and
 * cookie values are slices of the header made of valid cookie bytes.
 */
#include "form.h"

#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static void check_escape_round_trip(const char *s, size_t n)
{
    qs_buf esc = QS_BUF_INIT, back = QS_BUF_INIT;
    qs_form_escape(&esc, s, n);
    CHECK(esc.len >= n && esc.len <= 3 * n);
    for (size_t i = 0; i < esc.len; i++) {
        unsigned char c = (unsigned char)esc.p[i];
        CHECK(is_unreserved(c) || c == '+' || c == '%');
        if (c == '%') {
            CHECK(i + 2 < esc.len);
            CHECK(strchr("0123456789ABCDEF", esc.p[i + 1]) && esc.p[i + 1]);
            CHECK(strchr("0123456789ABCDEF", esc.p[i + 2]) && esc.p[i + 2]);
        }
    }
    CHECK(qs_form_unescape(esc.p, esc.len, true, &back) == 0);
    CHECK(back.len == n && (n == 0 || memcmp(back.p, s, n) == 0));
    qs_buf_free(&esc);
    qs_buf_free(&back);
}

static void check_form(const char *s, size_t n)
{
    enum { MAX_PAIRS = 32 };
    qs_form f = QS_FORM_INIT, again = QS_FORM_INIT;
    const char *err = NULL;
    enum qs_form_status st = qs_form_parse(&f, s, n, MAX_PAIRS, &err);
    CHECK(st == QS_FORM_OK || err != NULL);
    CHECK(f.n <= MAX_PAIRS);
    CHECK(st != QS_FORM_E_TOO_MANY || f.n == MAX_PAIRS);
    /* Lookup by a C string finds keys without NUL bytes, and the first of equal keys. */
    for (size_t i = 0; i < f.n; i++) {
        if (strlen(f.pairs[i].key) != f.pairs[i].key_len)
            continue;
        const qs_form_pair *first = qs_form_get(&f, f.pairs[i].key);
        CHECK(first != NULL && first <= &f.pairs[i]);
        CHECK(qs_form_count(&f, f.pairs[i].key) >= 1);
    }

    /* Re-encode the pairs and parse them again: the same pairs must come back. */
    qs_buf enc = QS_BUF_INIT;
    for (size_t i = 0; i < f.n; i++) {
        const qs_form_pair *p = &f.pairs[i];
        CHECK(p->key[p->key_len] == '\0' && p->value[p->value_len] == '\0');
        CHECK(p->key_len <= n && p->value_len <= n);
        if (i)
            qs_buf_append_char(&enc, '&');
        qs_form_escape(&enc, p->key, p->key_len);
        qs_buf_append_char(&enc, '=');
        qs_form_escape(&enc, p->value, p->value_len);
    }
    err = NULL;
    CHECK(qs_form_parse(&again, enc.p, enc.len, MAX_PAIRS, &err) == QS_FORM_OK);
    CHECK(again.n == f.n);
    for (size_t i = 0; i < f.n; i++) {
        CHECK(again.pairs[i].key_len == f.pairs[i].key_len);
        CHECK(memcmp(again.pairs[i].key, f.pairs[i].key, f.pairs[i].key_len) == 0);
        CHECK(again.pairs[i].value_len == f.pairs[i].value_len);
        CHECK(memcmp(again.pairs[i].value, f.pairs[i].value, f.pairs[i].value_len) == 0);
    }
    qs_buf_free(&enc);
    qs_form_free(&again);
    qs_form_free(&f);
}

static void check_cookie(const char *h, size_t n, const char *name)
{
    qs_slice v = {NULL, 0};
    if (!qs_form_cookie(h, n, name, &v))
        return;
    CHECK(name[0] != '\0');
    CHECK(v.p >= h && v.n <= n && (size_t)(v.p - h) <= n - v.n);
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        CHECK(c >= 0x20 && c < 0x7f && c != '"' && c != ';' && c != '\\');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly-sized copy, so reads past the end are caught. */
    char *s = malloc(size ? size : 1);
    memcpy(s, data, size);

    check_form(s, size);
    check_escape_round_trip(s, size);

    qs_buf out = QS_BUF_INIT;
    if (qs_form_unescape(s, size, false, &out) == 0)
        CHECK(out.len <= size);
    out.len = 0;
    if (qs_form_unescape(s, size, true, &out) == 0)
        CHECK(out.len <= size);
    qs_buf_free(&out);

    /* Cookie names: a fixed one, and the input's first name so lookups can succeed. */
    char name[33];
    size_t k = 0;
    while (k < size && k < sizeof(name) - 1 && s[k] != '=' && s[k] != ';')
        k++;
    memcpy(name, s, k);
    name[k] = '\0';
    check_cookie(s, size, "a");
    check_cookie(s, size, name);
    check_cookie(s, size, "");

    free(s);
    return 0;
}
