/* SPDX-License-Identifier: MIT
 * form.h - application/x-www-form-urlencoded and query strings, percent-encoding, cookies.
 *
 * Parsing follows Go's net/url.ParseQuery, which the reference hub uses: pairs are split on
 * "&"; a pair containing ";" is invalid; keys and values are unescaped with "+" as space;
 * an invalid %-escape makes the pair invalid; empty pairs are skipped; a pair without "="
 * has an empty value. Invalid pairs are dropped and reported, valid ones are kept, so a
 * caller can be strict (publish: 400) or lenient (subscribe: Go's URL.Query()).
 */
#ifndef QS_FORM_H
#define QS_FORM_H

#include "buf.h"
#include "util.h"

typedef struct qs_form_pair {
    char *key; /* decoded, owned, NUL-terminated (may contain NUL bytes: use the lengths) */
    size_t key_len;
    char *value;
    size_t value_len;
} qs_form_pair;

typedef struct qs_form {
    qs_form_pair *pairs;
    size_t n;
    size_t cap;
} qs_form;

#define QS_FORM_INIT ((qs_form){NULL, 0, 0})

enum qs_form_status {
    QS_FORM_OK = 0,
    QS_FORM_E_INVALID = -1,  /* some pairs were invalid and dropped; *err says why */
    QS_FORM_E_TOO_MANY = -2, /* more than max_pairs pairs: parsing stopped */
};

/** Parses s[0..len) into f (appending). */
enum qs_form_status qs_form_parse(qs_form *f, const char *s, size_t len, size_t max_pairs,
                                  const char **err);
/** First pair with this key, or NULL. */
const qs_form_pair *qs_form_get(const qs_form *f, const char *key);
/** Number of pairs with this key. */
size_t qs_form_count(const qs_form *f, const char *key);
/** True when some pair has this key. */
static inline bool qs_form_has(const qs_form *f, const char *key)
{
    return qs_form_get(f, key) != NULL;
}
void qs_form_free(qs_form *f);

/** Percent-decodes s into out (appending); plus_is_space maps '+' to ' '.
 *  Returns 0, or -1 on an invalid escape (out then holds a partial result). */
int qs_form_unescape(const char *s, size_t len, bool plus_is_space, qs_buf *out);
/** Appends s escaped like Go's url.QueryEscape (space as '+', unreserved kept). */
void qs_form_escape(qs_buf *out, const char *s, size_t len);

/**
 * Finds cookie `name` in one Cookie header value, parsed as Go's http.Request.Cookie does:
 * "; "-separated name=value pairs, optional surrounding double quotes stripped, pairs with
 * invalid names or values skipped. Returns true and sets *value (pointing into header).
 */
bool qs_form_cookie(const char *header, size_t len, const char *name, qs_slice *value);

#endif
