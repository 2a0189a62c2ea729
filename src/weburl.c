/* SPDX-License-Identifier: MIT
 * weburl.c - the WHATWG basic URL parser (no state override), its host parser (domains,
 * IPv4 with its hexadecimal and octal forms, IPv6, opaque hosts) and the URL Pattern
 * canonicalizers (see weburl.h).
 *
 * The input is first cleaned: leading and trailing C0 controls and spaces are trimmed, tabs
 * and newlines removed, and every byte that does not belong to valid UTF-8 replaced by the
 * UTF-8 of U+FFFD. The state machine then reads bytes: every byte the standard treats
 * specially is ASCII, and the bytes of a non-ASCII code point are only ever percent-encoded
 * one by one (exactly what encoding the code point's UTF-8 gives) or handed to the host
 * parser whole.
 */
#include "weburl.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- percent-encode sets: which printable ASCII bytes are encoded (C0 controls, DEL and
 * bytes >= 0x80 always are) ---- */

enum pe_set { PE_C0, PE_FRAGMENT, PE_QUERY, PE_SPECIAL_QUERY, PE_PATH, PE_USERINFO };

static bool pe_member(enum pe_set set, unsigned char c)
{
    if (c < 0x20 || c > 0x7E)
        return true;
    switch (set) {
    case PE_C0:
        return false;
    case PE_FRAGMENT:
        return c == ' ' || c == '"' || c == '<' || c == '>' || c == '`';
    case PE_SPECIAL_QUERY:
        if (c == '\'')
            return true;
        /* fall through */
    case PE_QUERY:
        return c == ' ' || c == '"' || c == '#' || c == '<' || c == '>';
    case PE_USERINFO:
        if (c == '/' || c == ':' || c == ';' || c == '=' || c == '@' || c == '[' || c == '\\' ||
            c == ']' || c == '^' || c == '|')
            return true;
        /* fall through */
    case PE_PATH:
        return c == ' ' || c == '"' || c == '#' || c == '<' || c == '>' || c == '?' || c == '`' ||
               c == '{' || c == '}';
    }
    return true;
}

static void pe_append(qs_buf *b, enum pe_set set, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!pe_member(set, c)) {
        qs_buf_append_char(b, (char)c);
        return;
    }
    char t[3] = {'%', hex[c >> 4], hex[c & 15]};
    qs_buf_append(b, t, 3);
}

/* ---- schemes ---- */

static const struct {
    const char *name;
    const char *port;
} special_schemes[] = {
    {"ftp", "21"}, {"file", NULL}, {"http", "80"}, {"https", "443"}, {"ws", "80"}, {"wss", "443"},
};

static int special_index(const char *s, size_t n)
{
    for (size_t i = 0; i < QS_ARRAY_LEN(special_schemes); i++)
        if (strlen(special_schemes[i].name) == n && memcmp(special_schemes[i].name, s, n) == 0)
            return (int)i;
    return -1;
}

bool qs_weburl_scheme_is_special(const char *scheme, size_t n)
{
    return special_index(scheme, n) >= 0;
}

const char *qs_weburl_default_port(const char *scheme, size_t n)
{
    int i = special_index(scheme, n);
    return i < 0 ? NULL : special_schemes[i].port;
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* ---- hosts ---- */

/* Code points that may not appear in an opaque host; a domain also refuses "%" and DEL, and
 * every C0 control. */
static bool forbidden_host_byte(unsigned char c)
{
    switch (c) {
    case 0:
    case '\t':
    case '\n':
    case '\r':
    case ' ':
    case '#':
    case '/':
    case ':':
    case '<':
    case '>':
    case '?':
    case '@':
    case '[':
    case '\\':
    case ']':
    case '^':
    case '|':
        return true;
    default:
        return false;
    }
}

static bool forbidden_domain_byte(unsigned char c)
{
    return forbidden_host_byte(c) || c < 0x20 || c == '%' || c == 0x7F;
}

/* Parses an IPv6 address (without brackets) into 8 pieces, as the standard does. */
static bool parse_ipv6(const unsigned char *s, size_t n, uint16_t piece[8])
{
    memset(piece, 0, 8 * sizeof(uint16_t));
    int idx = 0, compress = -1;
    size_t i = 0;
#define AT(k) ((k) < n ? (int)s[k] : -1)
    if (AT(i) == ':') {
        if (AT(i + 1) != ':')
            return false;
        i += 2;
        compress = ++idx;
    }
    while (AT(i) != -1) {
        if (idx == 8)
            return false;
        if (AT(i) == ':') {
            if (compress != -1)
                return false;
            i++;
            compress = ++idx;
            continue;
        }
        unsigned value = 0, length = 0;
        while (length < 4 && AT(i) != -1 && qs_hex_value(s[i]) >= 0) {
            value = value * 16 + (unsigned)qs_hex_value(s[i]);
            i++;
            length++;
        }
        if (AT(i) == '.') {
            if (length == 0)
                return false;
            i -= length;
            if (idx > 6)
                return false;
            int seen = 0;
            while (AT(i) != -1) {
                int v4 = -1;
                if (seen > 0) {
                    if (AT(i) == '.' && seen < 4)
                        i++;
                    else
                        return false;
                }
                if (!is_digit(AT(i)))
                    return false;
                while (is_digit(AT(i))) {
                    int d = s[i] - '0';
                    if (v4 == -1)
                        v4 = d;
                    else if (v4 == 0)
                        return false;
                    else
                        v4 = v4 * 10 + d;
                    if (v4 > 255)
                        return false;
                    i++;
                }
                piece[idx] = (uint16_t)(piece[idx] * 0x100 + v4);
                seen++;
                if (seen == 2 || seen == 4)
                    idx++;
            }
            if (seen != 4)
                return false;
            break;
        } else if (AT(i) == ':') {
            i++;
            if (AT(i) == -1)
                return false;
        } else if (AT(i) != -1) {
            return false;
        }
        piece[idx++] = (uint16_t)value;
    }
#undef AT
    if (compress != -1) {
        int swaps = idx - compress;
        idx = 7;
        while (idx != 0 && swaps > 0) {
            uint16_t t = piece[idx];
            piece[idx] = piece[compress + swaps - 1];
            piece[compress + swaps - 1] = t;
            idx--;
            swaps--;
        }
    } else if (idx != 8) {
        return false;
    }
    return true;
}

static void serialize_ipv6(const uint16_t piece[8], qs_buf *out)
{
    /* The first longest run of two or more zero pieces is compressed. */
    int compress = -1, best = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && piece[j] == 0)
            j++;
        if (j - i > best) {
            best = j - i;
            compress = i;
        }
        i = j > i ? j : i + 1;
    }
    qs_buf_append_char(out, '[');
    bool ignore0 = false;
    for (int i = 0; i < 8; i++) {
        if (ignore0 && piece[i] == 0)
            continue;
        ignore0 = false;
        if (compress == i) {
            qs_buf_append_str(out, i == 0 ? "::" : ":");
            ignore0 = true;
            continue;
        }
        qs_buf_appendf(out, "%x", piece[i]);
        if (i != 7)
            qs_buf_append_char(out, ':');
    }
    qs_buf_append_char(out, ']');
}

/* One IPv4 number: decimal, 0x hexadecimal or 0 octal. Returns false when it is not one;
 * *big when it does not fit 64 bits (still "a number" for ends_in_a_number). */
static bool ipv4_number(const char *s, size_t n, uint64_t *out, bool *big)
{
    *big = false;
    if (n == 0)
        return false;
    unsigned radix = 10;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        radix = 16;
        s += 2;
        n -= 2;
    } else if (n >= 2 && s[0] == '0') {
        radix = 8;
        s++;
        n--;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = qs_hex_value((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= radix)
            return false;
        if (v > (UINT64_MAX - (uint64_t)d) / radix)
            *big = true;
        else
            v = v * radix + (uint64_t)d;
    }
    *out = v;
    return true;
}

/* The last label of a domain (a trailing "." ends an empty label, which is dropped). */
static size_t last_label(const char *s, size_t n, size_t *start)
{
    if (n && s[n - 1] == '.')
        n--;
    size_t i = n;
    while (i > 0 && s[i - 1] != '.')
        i--;
    *start = i;
    return n - i;
}

static bool ends_in_a_number(const char *s, size_t n)
{
    size_t start;
    size_t len = last_label(s, n, &start);
    if (len == 0)
        return false;
    bool digits = true;
    for (size_t i = 0; i < len; i++)
        digits &= is_digit(s[start + i]);
    if (digits)
        return true;
    uint64_t v;
    bool big;
    return ipv4_number(s + start, len, &v, &big);
}

static bool parse_ipv4(const char *s, size_t n, qs_buf *out)
{
    if (n && s[n - 1] == '.')
        n--;
    uint64_t parts[4];
    size_t count = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (count == 4)
            return false;
        bool big;
        if (!ipv4_number(s + start, i - start, &parts[count], &big) || big)
            return false;
        count++;
        start = i + 1;
    }
    for (size_t i = 0; i + 1 < count; i++)
        if (parts[i] > 255)
            return false;
    uint64_t limit = (uint64_t)1 << (8 * (5 - count));
    if (parts[count - 1] >= limit)
        return false;
    uint64_t addr = parts[count - 1];
    for (size_t i = 0; i + 1 < count; i++)
        addr += parts[i] << (8 * (3 - i));
    qs_buf_appendf(out, "%u.%u.%u.%u", (unsigned)(addr >> 24) & 255, (unsigned)(addr >> 16) & 255,
                   (unsigned)(addr >> 8) & 255, (unsigned)addr & 255);
    return true;
}

/* The host parser: input is the host text as written (not empty for special schemes). */
static bool parse_host(const char *in, size_t n, bool special, qs_buf *out)
{
    if (n && in[0] == '[') {
        uint16_t piece[8];
        if (in[n - 1] != ']' || !parse_ipv6((const unsigned char *)in + 1, n - 2, piece))
            return false;
        serialize_ipv6(piece, out);
        return true;
    }
    if (!special) {
        for (size_t i = 0; i < n; i++) {
            if (forbidden_host_byte((unsigned char)in[i]))
                return false;
            pe_append(out, PE_C0, (unsigned char)in[i]);
        }
        return true;
    }
    /* A domain: percent-decoded, then to ASCII (lower-cased; see weburl.h for what is not
     * done), then checked. */
    qs_buf d = QS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%' && i + 2 < n && qs_hex_value((unsigned char)in[i + 1]) >= 0 &&
            qs_hex_value((unsigned char)in[i + 2]) >= 0) {
            c = (unsigned char)(qs_hex_value((unsigned char)in[i + 1]) * 16 +
                                qs_hex_value((unsigned char)in[i + 2]));
            i += 2;
        }
        if (c >= 0x80) {
            qs_buf_free(&d);
            return false;
        }
        qs_buf_append_char(&d, lower((char)c));
    }
    bool ok = d.len > 0;
    for (size_t i = 0; ok && i < d.len; i++)
        ok = !forbidden_domain_byte((unsigned char)d.p[i]);
    if (ok) {
        if (ends_in_a_number(d.p, d.len))
            ok = parse_ipv4(d.p, d.len, out);
        else
            qs_buf_append(out, d.p, d.len);
    }
    qs_buf_free(&d);
    return ok;
}

/* ---- the URL being built ---- */

typedef struct url_b {
    qs_buf scheme, username, password, host, port, query, fragment, opaque;
    qs_buf path;               /* segments' bytes */
    size_t *seg, nseg, capseg; /* segment i is path[seg[i], seg[i + 1] or path.len) */
    bool has_host, has_query, has_fragment, opaque_path;
    bool special; /* the scheme is special: kept in step with `scheme` (set_scheme) */
} url_b;

static void url_b_free(url_b *u)
{
    qs_buf_free(&u->scheme);
    qs_buf_free(&u->username);
    qs_buf_free(&u->password);
    qs_buf_free(&u->host);
    qs_buf_free(&u->port);
    qs_buf_free(&u->query);
    qs_buf_free(&u->fragment);
    qs_buf_free(&u->opaque);
    qs_buf_free(&u->path);
    free(u->seg);
}

static void seg_push(url_b *u, const char *s, size_t n)
{
    if (u->nseg == u->capseg) {
        u->capseg = u->capseg ? 2 * u->capseg : 8;
        u->seg = qs_xrealloc(u->seg, u->capseg * sizeof(size_t));
    }
    u->seg[u->nseg++] = u->path.len;
    if (n)
        qs_buf_append(&u->path, s, n);
}

static qs_slice seg_at(const url_b *u, size_t i)
{
    size_t end = i + 1 < u->nseg ? u->seg[i + 1] : u->path.len;
    /* Only empty segments so far: the path has no buffer, and NULL + 0 is undefined. */
    if (!u->path.p)
        return (qs_slice){"", 0};
    return (qs_slice){u->path.p + u->seg[i], end - u->seg[i]};
}

static void set_buf(qs_buf *b, const char *s, size_t n)
{
    qs_buf_reset(b);
    if (n)
        qs_buf_append(b, s, n);
}

static bool is_special(const url_b *u)
{
    return u->special;
}

/* Sets the scheme; whether it is special is decided once here, not at every byte. */
static void set_scheme(url_b *u, const char *s, size_t n)
{
    set_buf(&u->scheme, s, n);
    u->special = special_index(s ? s : "", n) >= 0;
}

static bool scheme_is(const url_b *u, const char *name)
{
    return u->scheme.len == strlen(name) && memcmp(u->scheme.p, name, u->scheme.len) == 0;
}

static bool normalized_drive_letter(qs_slice s)
{
    return s.n == 2 && is_alpha(s.p[0]) && s.p[1] == ':';
}

static bool drive_letter(const char *s, size_t n)
{
    return n == 2 && is_alpha(s[0]) && (s[1] == ':' || s[1] == '|');
}

static bool starts_with_drive_letter(const char *s, size_t n)
{
    return n >= 2 && drive_letter(s, 2) &&
           (n == 2 || s[2] == '/' || s[2] == '\\' || s[2] == '?' || s[2] == '#');
}

static void shorten_path(url_b *u)
{
    if (scheme_is(u, "file") && u->nseg == 1 && normalized_drive_letter(seg_at(u, 0)))
        return;
    if (u->nseg) {
        u->path.len = u->seg[--u->nseg];
    }
}

static bool single_dot(const char *s, size_t n)
{
    return (n == 1 && s[0] == '.') || (n == 3 && s[0] == '%' && s[1] == '2' && lower(s[2]) == 'e');
}

static bool double_dot(const char *s, size_t n)
{
    if (n == 2)
        return s[0] == '.' && s[1] == '.';
    if (n == 4)
        return (s[0] == '.' && single_dot(s + 1, 3)) || (single_dot(s, 3) && s[3] == '.');
    return n == 6 && single_dot(s, 3) && single_dot(s + 3, 3);
}

/* Copies base's parts (from a parsed qs_weburl) into u, as the relative states do. */
static void copy_base_authority(url_b *u, const qs_weburl *b)
{
    qs_slice s;
    s = qs_weburl_get(b, QS_WEBURL_USERNAME);
    set_buf(&u->username, s.p, s.n);
    s = qs_weburl_get(b, QS_WEBURL_PASSWORD);
    set_buf(&u->password, s.p, s.n);
    s = qs_weburl_get(b, QS_WEBURL_HOSTNAME);
    set_buf(&u->host, s.p, s.n);
    u->has_host = b->has_host;
    s = qs_weburl_get(b, QS_WEBURL_PORT);
    set_buf(&u->port, s.p, s.n);
}

static void copy_base_path(url_b *u, const qs_weburl *b)
{
    qs_slice p = qs_weburl_get(b, QS_WEBURL_PATHNAME);
    u->nseg = 0;
    qs_buf_reset(&u->path);
    if (b->opaque_path) {
        u->opaque_path = true;
        set_buf(&u->opaque, p.p, p.n);
        return;
    }
    /* "/a/b" holds the segments a and b; segments never contain "/". */
    size_t i = 0;
    while (i < p.n) {
        size_t j = i + 1;
        while (j < p.n && p.p[j] != '/')
            j++;
        seg_push(u, p.p + i + 1, j - i - 1);
        i = j;
    }
}

static void copy_base_query(url_b *u, const qs_weburl *b)
{
    qs_slice q = qs_weburl_get(b, QS_WEBURL_SEARCH);
    set_buf(&u->query, q.p, q.n);
    u->has_query = b->has_query;
}

/* ---- the state machine ---- */

enum st {
    S_SCHEME_START,
    S_SCHEME,
    S_NO_SCHEME,
    S_SPECIAL_RELATIVE_OR_AUTHORITY,
    S_PATH_OR_AUTHORITY,
    S_RELATIVE,
    S_RELATIVE_SLASH,
    S_SPECIAL_AUTHORITY_SLASHES,
    S_SPECIAL_AUTHORITY_IGNORE_SLASHES,
    S_AUTHORITY,
    S_HOST,
    S_PORT,
    S_FILE,
    S_FILE_SLASH,
    S_FILE_HOST,
    S_PATH_START,
    S_PATH,
    S_OPAQUE_PATH,
    S_QUERY,
    S_FRAGMENT,
};

/* The cleaned input: trimmed, without tabs and newlines, invalid UTF-8 replaced. */
static void clean_input(const unsigned char *s, size_t n, qs_buf *out)
{
    while (n && s[0] <= 0x20) {
        s++;
        n--;
    }
    while (n && s[n - 1] <= 0x20)
        n--;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '\t' || c == '\n' || c == '\r') {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = qs_utf8_decode(s + i, n - i, &cp);
        if (k == 0) {
            qs_buf_append(out, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            qs_buf_append(out, s + i, k);
            i += k;
        }
    }
}

static int run(url_b *u, const char *in, size_t n, const qs_weburl *base)
{
    enum st state = S_SCHEME_START;
    qs_buf buf = QS_BUF_INIT;
    bool at_seen = false, bracket = false, password_seen = false;
    int rc = -1;
    ptrdiff_t i = 0;
    for (;; i++) {
        int c = i < (ptrdiff_t)n ? (unsigned char)in[i] : -1;
        bool special = is_special(u);
        bool slash = c == '/' || (special && c == '\\');
        switch (state) {
        case S_SCHEME_START:
            if (is_alpha(c)) {
                qs_buf_append_char(&buf, lower((char)c));
                state = S_SCHEME;
            } else {
                state = S_NO_SCHEME;
                i--;
            }
            break;
        case S_SCHEME:
            if (is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.') {
                qs_buf_append_char(&buf, lower((char)c));
            } else if (c == ':') {
                set_scheme(u, buf.p, buf.len);
                qs_buf_reset(&buf);
                const char *rest = in + i + 1;
                size_t rest_n = n - (size_t)i - 1;
                if (scheme_is(u, "file")) {
                    state = S_FILE;
                } else if (is_special(u) && base &&
                           base->len[QS_WEBURL_PROTOCOL] == u->scheme.len &&
                           memcmp(base->text + base->off[QS_WEBURL_PROTOCOL], u->scheme.p,
                                  u->scheme.len) == 0) {
                    state = S_SPECIAL_RELATIVE_OR_AUTHORITY;
                } else if (is_special(u)) {
                    state = S_SPECIAL_AUTHORITY_SLASHES;
                } else if (rest_n && rest[0] == '/') {
                    state = S_PATH_OR_AUTHORITY;
                    i++;
                } else {
                    u->opaque_path = true;
                    qs_buf_reset(&u->opaque);
                    state = S_OPAQUE_PATH;
                }
            } else {
                qs_buf_reset(&buf);
                state = S_NO_SCHEME;
                i = -1;
            }
            break;
        case S_NO_SCHEME:
            if (!base || (base->opaque_path && c != '#'))
                goto out;
            if (base->opaque_path && c == '#') {
                qs_slice s = qs_weburl_get(base, QS_WEBURL_PROTOCOL);
                set_scheme(u, s.p, s.n);
                copy_base_path(u, base);
                copy_base_query(u, base);
                u->has_fragment = true;
                state = S_FRAGMENT;
            } else {
                qs_slice s = qs_weburl_get(base, QS_WEBURL_PROTOCOL);
                state = (s.n == 4 && memcmp(s.p, "file", 4) == 0) ? S_FILE : S_RELATIVE;
                i--;
            }
            break;
        case S_SPECIAL_RELATIVE_OR_AUTHORITY:
            if (c == '/' && i + 1 < (ptrdiff_t)n && in[i + 1] == '/') {
                state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
                i++;
            } else {
                state = S_RELATIVE;
                i--;
            }
            break;
        case S_PATH_OR_AUTHORITY:
            if (c == '/') {
                state = S_AUTHORITY;
            } else {
                state = S_PATH;
                i--;
            }
            break;
        case S_RELATIVE: {
            qs_slice s = qs_weburl_get(base, QS_WEBURL_PROTOCOL);
            set_scheme(u, s.p, s.n);
            special = is_special(u);
            if (c == '/' || (special && c == '\\')) {
                state = S_RELATIVE_SLASH;
            } else {
                copy_base_authority(u, base);
                copy_base_path(u, base);
                copy_base_query(u, base);
                if (c == '?') {
                    set_buf(&u->query, "", 0);
                    u->has_query = true;
                    state = S_QUERY;
                } else if (c == '#') {
                    u->has_fragment = true;
                    state = S_FRAGMENT;
                } else if (c != -1) {
                    qs_buf_reset(&u->query);
                    u->has_query = false;
                    shorten_path(u);
                    state = S_PATH;
                    i--;
                }
            }
            break;
        }
        case S_RELATIVE_SLASH:
            if (special && (c == '/' || c == '\\')) {
                state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
            } else if (c == '/') {
                state = S_AUTHORITY;
            } else {
                copy_base_authority(u, base);
                state = S_PATH;
                i--;
            }
            break;
        case S_SPECIAL_AUTHORITY_SLASHES:
            if (c == '/' && i + 1 < (ptrdiff_t)n && in[i + 1] == '/') {
                state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
                i++;
            } else {
                state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
                i--;
            }
            break;
        case S_SPECIAL_AUTHORITY_IGNORE_SLASHES:
            if (c != '/' && c != '\\') {
                state = S_AUTHORITY;
                i--;
            }
            break;
        case S_AUTHORITY:
            if (c == '@') {
                if (at_seen) {
                    qs_buf t = QS_BUF_INIT;
                    qs_buf_append(&t, "%40", 3);
                    qs_buf_append(&t, buf.p, buf.len);
                    qs_buf_free(&buf);
                    buf = t;
                }
                at_seen = true;
                for (size_t k = 0; k < buf.len; k++) {
                    unsigned char b = (unsigned char)buf.p[k];
                    if (b == ':' && !password_seen) {
                        password_seen = true;
                        continue;
                    }
                    pe_append(password_seen ? &u->password : &u->username, PE_USERINFO, b);
                }
                qs_buf_reset(&buf);
            } else if (c == -1 || slash || c == '?' || c == '#') {
                if (at_seen && buf.len == 0)
                    goto out;
                i -= (ptrdiff_t)buf.len + 1;
                qs_buf_reset(&buf);
                state = S_HOST;
            } else {
                qs_buf_append_char(&buf, (char)c);
            }
            break;
        case S_HOST:
            if (c == ':' && !bracket) {
                if (buf.len == 0)
                    goto out;
                qs_buf_reset(&u->host);
                if (!parse_host(buf.p, buf.len, special, &u->host))
                    goto out;
                u->has_host = true;
                qs_buf_reset(&buf);
                state = S_PORT;
            } else if (c == -1 || slash || c == '?' || c == '#') {
                i--;
                if (special && buf.len == 0)
                    goto out;
                qs_buf_reset(&u->host);
                if (!parse_host(buf.p ? buf.p : "", buf.len, special, &u->host))
                    goto out;
                u->has_host = true;
                qs_buf_reset(&buf);
                state = S_PATH_START;
            } else {
                if (c == '[')
                    bracket = true;
                else if (c == ']')
                    bracket = false;
                qs_buf_append_char(&buf, (char)c);
            }
            break;
        case S_PORT:
            if (is_digit(c)) {
                if (!(c == '0' && buf.len == 1 && buf.p[0] == '0')) /* leading zeros */
                    qs_buf_append_char(&buf, (char)c);
                if (buf.len > 6) /* certainly above 65535 */
                    goto out;
            } else if (c == -1 || slash || c == '?' || c == '#') {
                if (buf.len) {
                    unsigned long v = strtoul(qs_buf_cstr(&buf), NULL, 10);
                    if (v > 65535)
                        goto out;
                    qs_buf_reset(&u->port);
                    const char *dp = qs_weburl_default_port(u->scheme.p, u->scheme.len);
                    char num[8];
                    snprintf(num, sizeof(num), "%lu", v);
                    if (!dp || strcmp(dp, num) != 0)
                        qs_buf_append_str(&u->port, num);
                    qs_buf_reset(&buf);
                }
                state = S_PATH_START;
                i--;
            } else {
                goto out;
            }
            break;
        case S_FILE:
            set_scheme(u, "file", 4);
            qs_buf_reset(&u->host);
            u->has_host = true;
            if (c == '/' || c == '\\') {
                state = S_FILE_SLASH;
            } else if (base && base->len[QS_WEBURL_PROTOCOL] == 4 &&
                       memcmp(base->text + base->off[QS_WEBURL_PROTOCOL], "file", 4) == 0) {
                qs_slice h = qs_weburl_get(base, QS_WEBURL_HOSTNAME);
                set_buf(&u->host, h.p, h.n);
                u->has_host = base->has_host;
                copy_base_path(u, base);
                copy_base_query(u, base);
                if (c == '?') {
                    set_buf(&u->query, "", 0);
                    u->has_query = true;
                    state = S_QUERY;
                } else if (c == '#') {
                    u->has_fragment = true;
                    state = S_FRAGMENT;
                } else if (c != -1) {
                    qs_buf_reset(&u->query);
                    u->has_query = false;
                    if (!starts_with_drive_letter(in + i, n - (size_t)i))
                        shorten_path(u);
                    else {
                        u->nseg = 0;
                        qs_buf_reset(&u->path);
                    }
                    state = S_PATH;
                    i--;
                }
            } else {
                state = S_PATH;
                i--;
            }
            break;
        case S_FILE_SLASH:
            if (c == '/' || c == '\\') {
                state = S_FILE_HOST;
            } else {
                if (base && base->len[QS_WEBURL_PROTOCOL] == 4 &&
                    memcmp(base->text + base->off[QS_WEBURL_PROTOCOL], "file", 4) == 0) {
                    qs_slice h = qs_weburl_get(base, QS_WEBURL_HOSTNAME);
                    set_buf(&u->host, h.p, h.n);
                    u->has_host = base->has_host;
                    qs_slice bp = qs_weburl_get(base, QS_WEBURL_PATHNAME);
                    if (!starts_with_drive_letter(in + i, n - (size_t)i) && !base->opaque_path &&
                        bp.n >= 3 && normalized_drive_letter((qs_slice){bp.p + 1, 2}) &&
                        (bp.n == 3 || bp.p[3] == '/'))
                        seg_push(u, bp.p + 1, 2);
                }
                state = S_PATH;
                i--;
            }
            break;
        case S_FILE_HOST:
            if (c == -1 || c == '/' || c == '\\' || c == '?' || c == '#') {
                i--;
                if (drive_letter(buf.p ? buf.p : "", buf.len)) {
                    state = S_PATH;
                } else if (buf.len == 0) {
                    qs_buf_reset(&u->host);
                    u->has_host = true;
                    state = S_PATH_START;
                } else {
                    qs_buf_reset(&u->host);
                    if (!parse_host(buf.p, buf.len, true, &u->host))
                        goto out;
                    if (u->host.len == 9 && memcmp(u->host.p, "localhost", 9) == 0)
                        qs_buf_reset(&u->host);
                    u->has_host = true;
                    qs_buf_reset(&buf);
                    state = S_PATH_START;
                }
            } else {
                qs_buf_append_char(&buf, (char)c);
            }
            break;
        case S_PATH_START:
            if (special) {
                state = S_PATH;
                if (c != '/' && c != '\\')
                    i--;
            } else if (c == '?') {
                set_buf(&u->query, "", 0);
                u->has_query = true;
                state = S_QUERY;
            } else if (c == '#') {
                u->has_fragment = true;
                state = S_FRAGMENT;
            } else if (c != -1) {
                state = S_PATH;
                if (c != '/')
                    i--;
            }
            break;
        case S_PATH:
            if (c == -1 || slash || c == '?' || c == '#') {
                const char *b = buf.p ? buf.p : "";
                if (double_dot(b, buf.len)) {
                    shorten_path(u);
                    if (!slash)
                        seg_push(u, "", 0);
                } else if (single_dot(b, buf.len) && !slash) {
                    seg_push(u, "", 0);
                } else if (!single_dot(b, buf.len)) {
                    if (scheme_is(u, "file") && u->nseg == 0 && drive_letter(b, buf.len))
                        buf.p[1] = ':';
                    seg_push(u, b, buf.len);
                }
                qs_buf_reset(&buf);
                if (c == '?') {
                    set_buf(&u->query, "", 0);
                    u->has_query = true;
                    state = S_QUERY;
                } else if (c == '#') {
                    u->has_fragment = true;
                    state = S_FRAGMENT;
                }
            } else {
                pe_append(&buf, PE_PATH, (unsigned char)c);
            }
            break;
        case S_OPAQUE_PATH:
            if (c == '?') {
                set_buf(&u->query, "", 0);
                u->has_query = true;
                state = S_QUERY;
            } else if (c == '#') {
                u->has_fragment = true;
                state = S_FRAGMENT;
            } else if (c != -1) {
                pe_append(&u->opaque, PE_C0, (unsigned char)c);
            }
            break;
        case S_QUERY:
            if (c == '#') {
                u->has_fragment = true;
                state = S_FRAGMENT;
            } else if (c != -1) {
                pe_append(&u->query, special ? PE_SPECIAL_QUERY : PE_QUERY, (unsigned char)c);
            }
            break;
        case S_FRAGMENT:
            if (c != -1)
                pe_append(&u->fragment, PE_FRAGMENT, (unsigned char)c);
            break;
        }
        if (i >= (ptrdiff_t)n)
            break;
    }
    rc = 0;
out:
    qs_buf_free(&buf);
    return rc;
}

static void put_part(qs_buf *t, qs_weburl *out, enum qs_weburl_part part, const char *s, size_t n)
{
    out->off[part] = t->len;
    out->len[part] = n;
    if (n)
        qs_buf_append(t, s, n);
    qs_buf_append_char(t, '\0');
}

/* ---- the fast path ---- */

/* A path byte the path state keeps as it is, for special URLs ("%" included: it is never
 * re-encoded; dot segments written with it are looked for apart). */
static bool plain_path_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7F && !strchr("\"#<>?`{}\\", c);
}

static bool plain_query_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7F && !strchr("\"#<>'", c);
}

static bool plain_fragment_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7F && !strchr("\"<>`", c);
}

/*
 * The URLs topics usually are, parsed without the state machine: "<special scheme>://<host>
 * /path[?query][#fragment]" already in canonical form (a lower-case scheme other than file;
 * a host of lower-case letters, digits and hyphens in non-empty labels that is not an IPv4
 * address; no userinfo, no port; a path, query and fragment of bytes parsing keeps as they
 * are, without dot segments), or "/path[?query][#fragment]" of the same kind against a base
 * with a host. Their parts are then substrings of the input (and of the base), written in
 * one buffer. Returns false when the input is anything else: the state machine parses it.
 */
static bool fast_parse(const char *s, size_t n, const qs_weburl *base, qs_weburl *out)
{
    qs_slice scheme, host;
    size_t i = 0;
    if (n && s[0] == '/') {
        if ((n > 1 && s[1] == '/') || !base || !base->special || !base->has_host ||
            base->opaque_path || base->len[QS_WEBURL_PORT] || base->len[QS_WEBURL_USERNAME] ||
            base->len[QS_WEBURL_PASSWORD])
            return false;
        scheme = qs_weburl_get(base, QS_WEBURL_PROTOCOL);
        host = qs_weburl_get(base, QS_WEBURL_HOSTNAME);
        if (scheme.n == 4 && memcmp(scheme.p, "file", 4) == 0)
            return false;
    } else {
        while (i < n &&
               ((s[i] >= 'a' && s[i] <= 'z') ||
                (i && ((s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '-' || s[i] == '.'))))
            i++;
        scheme = (qs_slice){s, i};
        int k = special_index(s, i);
        if (k < 0 || (i == 4 && memcmp(s, "file", 4) == 0) || n - i < 3 ||
            memcmp(s + i, "://", 3) != 0)
            return false;
        i += 3;
        size_t h = i, label = i;
        for (; i < n && s[i] != '/'; i++) {
            char c = s[i];
            if (c == '.') {
                if (i == label)
                    return false; /* an empty label */
                label = i + 1;
            } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
                return false; /* a port, userinfo, upper case, an end without a path… */
            }
        }
        if (i == h || i == n || label == i)
            return false;
        bool digits = true; /* a numeric last label makes the host an IPv4 address */
        for (size_t k2 = label; k2 < i; k2++)
            digits &= s[k2] >= '0' && s[k2] <= '9';
        if (digits || (i - label >= 2 && s[label] == '0' && s[label + 1] == 'x'))
            return false;
        host = (qs_slice){s + h, i - h};
    }
    /* The path: from i (a "/") to "?", "#" or the end. */
    size_t path = i, seg = i + 1;
    for (i++;; i++) {
        bool end = i == n || s[i] == '?' || s[i] == '#';
        if (end || s[i] == '/') {
            if (single_dot(s + seg, i - seg) || double_dot(s + seg, i - seg))
                return false;
            if (end)
                break;
            seg = i + 1;
        } else if (!plain_path_byte((unsigned char)s[i])) {
            return false;
        }
    }
    size_t path_end = i, query = n, query_end = n, frag = n;
    bool has_query = false, has_fragment = false;
    if (i < n && s[i] == '?') {
        has_query = true;
        query = ++i;
        while (i < n && s[i] != '#' && plain_query_byte((unsigned char)s[i]))
            i++;
        if (i < n && s[i] != '#')
            return false;
        query_end = i;
    }
    if (i < n) { /* "#" */
        has_fragment = true;
        frag = ++i;
        while (i < n && plain_fragment_byte((unsigned char)s[i]))
            i++;
        if (i < n)
            return false;
    }
    qs_buf t = QS_BUF_INIT;
    qs_buf_reserve(&t, scheme.n + host.n + n + 8);
    put_part(&t, out, QS_WEBURL_PROTOCOL, scheme.p, scheme.n);
    put_part(&t, out, QS_WEBURL_USERNAME, "", 0);
    put_part(&t, out, QS_WEBURL_PASSWORD, "", 0);
    put_part(&t, out, QS_WEBURL_HOSTNAME, host.p, host.n);
    put_part(&t, out, QS_WEBURL_PORT, "", 0);
    put_part(&t, out, QS_WEBURL_PATHNAME, s + path, path_end - path);
    put_part(&t, out, QS_WEBURL_SEARCH, s + query, query_end - query);
    put_part(&t, out, QS_WEBURL_HASH, s + frag, n - frag);
    out->text = qs_buf_steal(&t);
    out->special = out->has_host = true;
    out->has_query = has_query;
    out->has_fragment = has_fragment;
    return true;
}

int qs_weburl_parse(const char *s, size_t n, const qs_weburl *base, qs_weburl *out)
{
    memset(out, 0, sizeof(*out));
    if (n > QS_WEBURL_MAX_INPUT)
        return -1;
    if (fast_parse(s, n, base, out))
        return 0;
    return qs_weburl_parse_general(s, n, base, out);
}

int qs_weburl_parse_general(const char *s, size_t n, const qs_weburl *base, qs_weburl *out)
{
    memset(out, 0, sizeof(*out));
    if (n > QS_WEBURL_MAX_INPUT)
        return -1;
    qs_buf in = QS_BUF_INIT;
    clean_input((const unsigned char *)s, n, &in);
    url_b u;
    memset(&u, 0, sizeof(u));
    int rc = run(&u, in.p ? in.p : "", in.len, base);
    qs_buf_free(&in);
    if (rc == 0) {
        qs_buf t = QS_BUF_INIT;
        put_part(&t, out, QS_WEBURL_PROTOCOL, u.scheme.p, u.scheme.len);
        put_part(&t, out, QS_WEBURL_USERNAME, u.username.p, u.username.len);
        put_part(&t, out, QS_WEBURL_PASSWORD, u.password.p, u.password.len);
        put_part(&t, out, QS_WEBURL_HOSTNAME, u.host.p, u.host.len);
        put_part(&t, out, QS_WEBURL_PORT, u.port.p, u.port.len);
        if (u.opaque_path) {
            put_part(&t, out, QS_WEBURL_PATHNAME, u.opaque.p, u.opaque.len);
        } else {
            qs_buf p = QS_BUF_INIT;
            for (size_t i = 0; i < u.nseg; i++) {
                qs_slice sg = seg_at(&u, i);
                qs_buf_append_char(&p, '/');
                if (sg.n)
                    qs_buf_append(&p, sg.p, sg.n);
            }
            put_part(&t, out, QS_WEBURL_PATHNAME, p.p, p.len);
            qs_buf_free(&p);
        }
        put_part(&t, out, QS_WEBURL_SEARCH, u.query.p, u.query.len);
        put_part(&t, out, QS_WEBURL_HASH, u.fragment.p, u.fragment.len);
        out->text = qs_buf_steal(&t);
        out->special = is_special(&u);
        out->has_host = u.has_host;
        out->opaque_path = u.opaque_path;
        out->has_query = u.has_query;
        out->has_fragment = u.has_fragment;
    }
    url_b_free(&u);
    return rc;
}

void qs_weburl_free(qs_weburl *u)
{
    free(u->text);
    memset(u, 0, sizeof(*u));
}

/* ---- canonicalizers ---- */

/* s without ASCII tabs and newlines. */
static void strip_tab_newline(const char *s, size_t n, qs_buf *out)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            qs_buf_append_char(out, s[i]);
}

int qs_weburl_canon_protocol(const char *s, size_t n, qs_buf *out)
{
    if (n == 0)
        return 0;
    qs_buf t = QS_BUF_INIT;
    qs_buf_append(&t, s, n);
    qs_buf_append_str(&t, "://dummy.test");
    qs_weburl u;
    int rc = qs_weburl_parse(t.p, t.len, NULL, &u);
    qs_buf_free(&t);
    if (rc != 0)
        return -1;
    qs_slice p = qs_weburl_get(&u, QS_WEBURL_PROTOCOL);
    qs_buf_append(out, p.p, p.n);
    qs_weburl_free(&u);
    return 0;
}

int qs_weburl_canon_userinfo(const char *s, size_t n, qs_buf *out)
{
    for (size_t i = 0; i < n; i++)
        pe_append(out, PE_USERINFO, (unsigned char)s[i]);
    return 0;
}

int qs_weburl_canon_hostname(const char *s, size_t n, bool special, qs_buf *out)
{
    if (n == 0)
        return 0;
    if (s[0] != '[' && memchr(s, ':', n))
        return -1;
    qs_buf t = QS_BUF_INIT;
    strip_tab_newline(s, n, &t);
    /* The hostname state with an override: the host ends at a ":" outside brackets (an
     * error here), or at "/", "?", "#" (and "\" for special schemes). */
    size_t end = 0;
    bool bracket = false;
    int rc = 0;
    for (; end < t.len; end++) {
        char c = t.p[end];
        if (c == ':' && !bracket) {
            rc = -1;
            break;
        }
        if (c == '/' || c == '?' || c == '#' || (special && c == '\\'))
            break;
        if (c == '[')
            bracket = true;
        else if (c == ']')
            bracket = false;
    }
    if (rc == 0 && special && end == 0)
        rc = -1;
    if (rc == 0 && !parse_host(t.p ? t.p : "", end, special, out))
        rc = -1;
    qs_buf_free(&t);
    return rc;
}

int qs_weburl_canon_port(const char *s, size_t n, qs_buf *out)
{
    if (n == 0)
        return 0;
    qs_buf t = QS_BUF_INIT;
    strip_tab_newline(s, n, &t);
    size_t digits = 0, zeros = 0;
    while (digits < t.len && is_digit(t.p[digits]))
        digits++;
    while (zeros + 1 < digits && t.p[zeros] == '0')
        zeros++;
    int rc = -1;
    if (digits > 0 && digits - zeros <= 6) {
        unsigned long v = strtoul(qs_buf_cstr(&t) + zeros, NULL, 10);
        if (v <= 65535) {
            qs_buf_appendf(out, "%lu", v);
            rc = 0;
        }
    }
    qs_buf_free(&t);
    return rc;
}

int qs_weburl_canon_pathname(const char *s, size_t n, qs_buf *out)
{
    if (n == 0)
        return 0;
    bool leading_slash = s[0] == '/';
    qs_buf t = QS_BUF_INIT;
    if (!leading_slash)
        qs_buf_append(&t, "/-", 2);
    strip_tab_newline(s, n, &t);
    /* The path start and path states of a non-special URL, with an override: "?" and "#"
     * are path characters (percent-encoded), only "/" separates segments. */
    url_b u;
    memset(&u, 0, sizeof(u));
    qs_buf seg = QS_BUF_INIT;
    size_t i = t.len && t.p[0] == '/' ? 1 : 0;
    for (;; i++) {
        int c = i < t.len ? (unsigned char)t.p[i] : -1;
        if (c == -1 || c == '/') {
            const char *b = seg.p ? seg.p : "";
            if (double_dot(b, seg.len)) {
                shorten_path(&u);
                if (c != '/')
                    seg_push(&u, "", 0);
            } else if (single_dot(b, seg.len) && c != '/') {
                seg_push(&u, "", 0);
            } else if (!single_dot(b, seg.len)) {
                seg_push(&u, b, seg.len);
            }
            qs_buf_reset(&seg);
            if (c == -1)
                break;
        } else {
            pe_append(&seg, PE_PATH, (unsigned char)c);
        }
    }
    qs_buf p = QS_BUF_INIT;
    for (size_t k = 0; k < u.nseg; k++) {
        qs_slice sg = seg_at(&u, k);
        qs_buf_append_char(&p, '/');
        if (sg.n)
            qs_buf_append(&p, sg.p, sg.n);
    }
    /* Without a leading "/", the "/-" added above is taken off again; dot segments may have
     * removed it, which the reference does not survive either (its slice panics). */
    size_t skip = leading_slash ? 0 : 2;
    int rc = p.len >= skip ? 0 : -1;
    if (rc == 0 && p.len > skip)
        qs_buf_append(out, p.p + skip, p.len - skip);
    qs_buf_free(&p);
    qs_buf_free(&seg);
    qs_buf_free(&t);
    url_b_free(&u);
    return rc;
}

int qs_weburl_canon_opaque_pathname(const char *s, size_t n, qs_buf *out)
{
    for (size_t i = 0; i < n && s[i] != '?' && s[i] != '#'; i++)
        if (s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            pe_append(out, PE_C0, (unsigned char)s[i]);
    return 0;
}

int qs_weburl_canon_search(const char *s, size_t n, qs_buf *out)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            pe_append(out, PE_QUERY, (unsigned char)s[i]);
    return 0;
}

int qs_weburl_canon_hash(const char *s, size_t n, qs_buf *out)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            pe_append(out, PE_FRAGMENT, (unsigned char)s[i]);
    return 0;
}
