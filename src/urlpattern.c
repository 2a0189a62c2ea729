/* SPDX-License-Identifier: MIT
 * urlpattern.c - the URL Pattern standard's algorithms (see urlpattern.h): the tokenizer,
 * the constructor-string parser that splits a pattern into components, the processing of a
 * pattern against its base URL, the pattern-string parser that turns each component into
 * parts, and the generation of each component's regular expression, compiled by regex.c.
 *
 * The algorithms follow the standard's steps and the reference library's choices where it
 * departs from them (it resolves a relative pathname against the base's path even when the
 * base has no opaque path, it canonicalizes hostnames with special-scheme rules when the
 * protocol is "*", and it refuses a ":" in a hostname). Positions are byte offsets where the
 * standard counts code points: the pattern is valid UTF-8 and every position the algorithms
 * look at starts a code point, so the slices are the same.
 *
 * Components are classified once compiled: "*" alone matches anything, a component of fixed
 * text only is compared byte for byte, and only the others run an automaton.
 */
#include "urlpattern.h"

#include "regex.h"
#include "strmap.h"

#include <stdio.h>
#include <stdlib.h>

const char *qs_urlpattern_base_for(const char *resource_identifier)
{
    static const char suffix[] = "/.well-known/mercure";
    size_t n = resource_identifier ? strlen(resource_identifier) : 0;
    if (n >= sizeof(suffix) - 1 &&
        memcmp(resource_identifier + n - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) == 0)
        return resource_identifier;
    return QS_URLPATTERN_FALLBACK_BASE;
}

/* ---- tokens ---- */

enum tok_type {
    T_OPEN,           /* { */
    T_CLOSE,          /* } */
    T_REGEXP,         /* (…): the value is what is between the parentheses */
    T_NAME,           /* :name: the value is the name */
    T_CHAR,           /* any other code point */
    T_ESCAPED_CHAR,   /* \c: the value is c */
    T_OTHER_MODIFIER, /* ? or + */
    T_ASTERISK,       /* * */
    T_END,
    T_INVALID_CHAR, /* lenient tokenizing only: something the strict tokenizer refuses */
};

typedef struct token {
    enum tok_type type;
    size_t index;    /* byte offset of the token in the input */
    size_t off, len; /* the value */
} token;

typedef struct tokens {
    token *v;
    size_t n, cap;
} tokens;

static void tok_push(tokens *t, enum tok_type type, size_t index, size_t off, size_t len)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->v = qs_xrealloc(t->v, t->cap * sizeof(token));
    }
    t->v[t->n++] = (token){type, index, off, len};
}

static bool is_ascii_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool name_start(int c)
{
    return is_ascii_alpha(c);
}

static bool name_part(int c)
{
    return is_ascii_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* Length of the UTF-8 sequence at s[i] (the input is valid UTF-8). */
static size_t cp_len(const unsigned char *s, size_t n, size_t i)
{
    uint32_t cp;
    size_t k = qs_utf8_decode(s + i, n - i, &cp);
    return k ? k : 1;
}

/* The standard's tokenizer. Strict: errors fail; lenient: they become T_INVALID_CHAR. */
static const char *tokenize(const unsigned char *s, size_t n, bool strict, tokens *out)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t next = i + cp_len(s, n, i);
        switch (c) {
        case '*':
            tok_push(out, T_ASTERISK, i, i, 1);
            i = next;
            continue;
        case '+':
        case '?':
            tok_push(out, T_OTHER_MODIFIER, i, i, 1);
            i = next;
            continue;
        case '\\':
            if (next >= n) {
                if (strict)
                    return "a pattern cannot end with a backslash";
                tok_push(out, T_INVALID_CHAR, i, i, 1);
                i = next;
                continue;
            }
            tok_push(out, T_ESCAPED_CHAR, i, next, cp_len(s, n, next));
            i = next + cp_len(s, n, next);
            continue;
        case '{':
            tok_push(out, T_OPEN, i, i, 1);
            i = next;
            continue;
        case '}':
            tok_push(out, T_CLOSE, i, i, 1);
            i = next;
            continue;
        case ':': {
            size_t k = next;
            while (k < n && (k == next ? name_start(s[k]) : name_part(s[k])))
                k++;
            /* Go's identifier tables decide whether a non-ASCII code point continues the
             * name; without them, refuse rather than guess. */
            if (k < n && s[k] >= 0x80)
                return "non-ASCII group names are not supported";
            if (k == next) {
                if (strict)
                    return "a \":\" is not followed by a group name";
                tok_push(out, T_INVALID_CHAR, i, i, 1);
                i = next;
                continue;
            }
            tok_push(out, T_NAME, i, next, k - next);
            i = k;
            continue;
        }
        case '(': {
            int depth = 1;
            size_t k = next, start = next;
            bool bad = false;
            while (k < n) {
                unsigned char r = s[k];
                if (r >= 0x80 || (k == start && r == '?')) {
                    bad = true;
                    break;
                }
                if (r == '\\') {
                    if (k + 1 >= n || s[k + 1] >= 0x80) {
                        bad = true;
                        break;
                    }
                    k += 2;
                    continue;
                }
                if (r == ')') {
                    if (--depth == 0) {
                        k++;
                        break;
                    }
                } else if (r == '(') {
                    depth++;
                    if (k + 1 >= n || s[k + 1] != '?') {
                        bad = true;
                        break;
                    }
                }
                k++;
            }
            if (!bad && (depth != 0 || k - start - 1 == 0))
                bad = true;
            if (bad) {
                if (strict)
                    return "invalid regexp group";
                tok_push(out, T_INVALID_CHAR, i, i, 1);
                i = next;
                continue;
            }
            tok_push(out, T_REGEXP, i, start, k - start - 1);
            i = k;
            continue;
        }
        default:
            tok_push(out, T_CHAR, i, i, next - i);
            i = next;
            continue;
        }
    }
    tok_push(out, T_END, n, n, 0);
    return NULL;
}

/* ---- strings ---- */

/* An optional component string. */
typedef struct ostr {
    bool set;
    qs_buf b;
} ostr;

static void ostr_set(ostr *o, const char *s, size_t n)
{
    qs_buf_reset(&o->b);
    if (n)
        qs_buf_append(&o->b, s, n);
    o->set = true;
}

static qs_slice ostr_get(const ostr *o)
{
    return (qs_slice){o->b.p ? o->b.p : "", o->b.len};
}

/* The standard's "escape a pattern string" and "escape a regexp string". */
static void escape_pattern(qs_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\+*?(){}:", s[i]) && s[i])
            qs_buf_append_char(out, '\\');
        qs_buf_append_char(out, s[i]);
    }
}

static void escape_regexp(qs_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] && strchr("\\.+*?()|[]{}^$/", s[i]))
            qs_buf_append_char(out, '\\');
        qs_buf_append_char(out, s[i]);
    }
}

/* ---- components ---- */

enum comp_index { PROTOCOL, USERNAME, PASSWORD, HOSTNAME, PORT, PATHNAME, SEARCH, HASH, NCOMP };

typedef int (*canon_fn)(const char *s, size_t n, qs_buf *out);

/* The standard's options: the segment delimiter and the prefix code point (-1: none). */
typedef struct options {
    int delimiter;
    int prefix;
} options;

enum part_type { P_FIXED, P_REGEXP, P_SEGMENT_WILDCARD, P_FULL_WILDCARD };
enum modifier { M_NONE, M_OPTIONAL, M_ZERO_OR_MORE, M_ONE_OR_MORE };

typedef struct part {
    enum part_type type;
    enum modifier modifier;
    qs_buf value, prefix, suffix;
} part;

typedef struct parts {
    part *v;
    size_t n, cap;
} parts;

static part *parts_push(parts *ps)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 8;
        ps->v = qs_xrealloc(ps->v, ps->cap * sizeof(part));
    }
    part *p = &ps->v[ps->n++];
    memset(p, 0, sizeof(*p));
    return p;
}

static void parts_free(parts *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        qs_buf_free(&ps->v[i].value);
        qs_buf_free(&ps->v[i].prefix);
        qs_buf_free(&ps->v[i].suffix);
    }
    free(ps->v);
}

/* The pattern-string parser's state. */
typedef struct pparser {
    const char *in;
    tokens tk;
    size_t index;
    canon_fn canon;
    options opt;
    qs_buf segment_wildcard; /* the regexp of a segment wildcard under these options */
    qs_buf pending;          /* pending fixed value */
    parts ps;
    qs_strmap names;
    unsigned next_numeric;
    const char *err;
} pparser;

static const token *try_consume(pparser *p, enum tok_type type)
{
    const token *t = &p->tk.v[p->index];
    if (t->type != type)
        return NULL;
    p->index++;
    return t;
}

static const token *try_regexp_or_wildcard(pparser *p, const token *name)
{
    const token *t = try_consume(p, T_REGEXP);
    if (!name && !t)
        t = try_consume(p, T_ASTERISK);
    return t;
}

static const token *try_modifier(pparser *p)
{
    const token *t = try_consume(p, T_OTHER_MODIFIER);
    return t ? t : try_consume(p, T_ASTERISK);
}

static bool encode(pparser *p, const char *s, size_t n, qs_buf *out)
{
    if (n == 0)
        return true;
    if (p->canon(s, n, out) != 0) {
        p->err = "a literal part of the pattern is not valid in its component";
        return false;
    }
    return true;
}

static bool add_pending(pparser *p)
{
    if (p->pending.len == 0)
        return true;
    part *pt = parts_push(&p->ps);
    pt->type = P_FIXED;
    bool ok = encode(p, p->pending.p, p->pending.len, &pt->value);
    qs_buf_reset(&p->pending);
    return ok;
}

static void consume_text(pparser *p, qs_buf *out)
{
    for (;;) {
        const token *t = try_consume(p, T_CHAR);
        if (!t)
            t = try_consume(p, T_ESCAPED_CHAR);
        if (!t)
            return;
        qs_buf_append(out, p->in + t->off, t->len);
    }
}

static bool add_part(pparser *p, const char *prefix, size_t prefix_len, const token *name,
                     const token *rw, const char *suffix, size_t suffix_len, const token *mod)
{
    enum modifier m = M_NONE;
    if (mod) {
        char c = p->in[mod->off];
        m = c == '?' ? M_OPTIONAL : c == '*' ? M_ZERO_OR_MORE : M_ONE_OR_MORE;
    }
    if (!name && !rw && m == M_NONE) {
        qs_buf_append(&p->pending, prefix, prefix_len);
        return true;
    }
    if (!add_pending(p))
        return false;
    if (!name && !rw) {
        if (suffix_len) {
            p->err = "invalid group";
            return false;
        }
        if (prefix_len == 0)
            return true;
        part *pt = parts_push(&p->ps);
        pt->type = P_FIXED;
        pt->modifier = m;
        return encode(p, prefix, prefix_len, &pt->value);
    }
    const char *rv;
    size_t rv_len;
    if (!rw) {
        rv = p->segment_wildcard.p;
        rv_len = p->segment_wildcard.len;
    } else if (rw->type == T_ASTERISK) {
        rv = ".*";
        rv_len = 2;
    } else {
        rv = p->in + rw->off;
        rv_len = rw->len;
    }
    enum part_type type = P_REGEXP;
    if (rv_len == p->segment_wildcard.len && memcmp(rv, p->segment_wildcard.p, rv_len) == 0)
        type = P_SEGMENT_WILDCARD;
    else if (rv_len == 2 && memcmp(rv, ".*", 2) == 0)
        type = P_FULL_WILDCARD;
    char numeric[24];
    const char *nm;
    size_t nm_len;
    if (name) {
        nm = p->in + name->off;
        nm_len = name->len;
    } else {
        nm_len = (size_t)snprintf(numeric, sizeof(numeric), "%u", p->next_numeric++);
        nm = numeric;
    }
    if (qs_strmap_get(&p->names, nm, nm_len)) {
        p->err = "a group name is used twice";
        return false;
    }
    part *pt = parts_push(&p->ps);
    pt->type = type;
    pt->modifier = m;
    if (type == P_REGEXP)
        qs_buf_append(&pt->value, rv, rv_len);
    if (!encode(p, prefix, prefix_len, &pt->prefix) || !encode(p, suffix, suffix_len, &pt->suffix))
        return false;
    qs_strmap_put(&p->names, nm, nm_len, (void *)1);
    return true;
}

/* The standard's "parse a pattern string". */
static bool parse_pattern_string(pparser *p, const char *in, size_t n)
{
    p->in = in;
    const char *why = tokenize((const unsigned char *)in, n, true, &p->tk);
    if (why) {
        p->err = why;
        return false;
    }
    while (p->index < p->tk.n) {
        const token *ch = try_consume(p, T_CHAR);
        const token *name = try_consume(p, T_NAME);
        const token *rw = try_regexp_or_wildcard(p, name);
        if (name || rw) {
            const char *prefix = ch ? in + ch->off : "";
            size_t prefix_len = ch ? ch->len : 0;
            if (prefix_len && !(prefix_len == 1 && (unsigned char)prefix[0] == p->opt.prefix)) {
                qs_buf_append(&p->pending, prefix, prefix_len);
                prefix_len = 0;
            }
            if (!add_pending(p))
                return false;
            const token *mod = try_modifier(p);
            if (!add_part(p, prefix, prefix_len, name, rw, "", 0, mod))
                return false;
            continue;
        }
        const token *fixed = ch ? ch : try_consume(p, T_ESCAPED_CHAR);
        if (fixed) {
            qs_buf_append(&p->pending, in + fixed->off, fixed->len);
            continue;
        }
        if (try_consume(p, T_OPEN)) {
            qs_buf prefix = QS_BUF_INIT, suffix = QS_BUF_INIT;
            consume_text(p, &prefix);
            const token *gname = try_consume(p, T_NAME);
            const token *grw = try_regexp_or_wildcard(p, gname);
            consume_text(p, &suffix);
            bool ok = try_consume(p, T_CLOSE) != NULL;
            if (!ok)
                p->err = "a group is not closed";
            if (ok) {
                const token *mod = try_modifier(p);
                ok = add_part(p, prefix.p ? prefix.p : "", prefix.len, gname, grw,
                              suffix.p ? suffix.p : "", suffix.len, mod);
            }
            qs_buf_free(&prefix);
            qs_buf_free(&suffix);
            if (!ok)
                return false;
            continue;
        }
        if (!add_pending(p))
            return false;
        if (!try_consume(p, T_END)) {
            p->err = "unexpected character in the pattern";
            return false;
        }
    }
    return true;
}

static const char *modifier_str(enum modifier m)
{
    return m == M_OPTIONAL ? "?" : m == M_ZERO_OR_MORE ? "*" : m == M_ONE_OR_MORE ? "+" : "";
}

/* The standard's "generate a regular expression and name list" (names are not needed). */
static void generate_regexp(const parts *ps, const pparser *p, qs_buf *re)
{
    qs_buf_append_str(re, "\\A(?:");
    for (size_t i = 0; i < ps->n; i++) {
        const part *pt = &ps->v[i];
        const char *mod = modifier_str(pt->modifier);
        if (pt->type == P_FIXED) {
            if (pt->modifier == M_NONE) {
                escape_regexp(re, pt->value.p, pt->value.len);
            } else {
                qs_buf_append_str(re, "(?:");
                escape_regexp(re, pt->value.p, pt->value.len);
                qs_buf_append_char(re, ')');
                qs_buf_append_str(re, mod);
            }
            continue;
        }
        qs_buf rv = QS_BUF_INIT;
        if (pt->type == P_SEGMENT_WILDCARD)
            qs_buf_append(&rv, p->segment_wildcard.p, p->segment_wildcard.len);
        else if (pt->type == P_FULL_WILDCARD)
            qs_buf_append_str(&rv, ".*");
        else
            qs_buf_append(&rv, pt->value.p, pt->value.len);
        const char *v = rv.p;
        size_t vn = rv.len;
        if (pt->prefix.len == 0 && pt->suffix.len == 0) {
            if (pt->modifier == M_NONE || pt->modifier == M_OPTIONAL) {
                qs_buf_append_char(re, '(');
                qs_buf_append(re, v, vn);
                qs_buf_append_char(re, ')');
                qs_buf_append_str(re, mod);
            } else {
                qs_buf_append_str(re, "((?:");
                qs_buf_append(re, v, vn);
                qs_buf_append_char(re, ')');
                qs_buf_append_str(re, mod);
                qs_buf_append_char(re, ')');
            }
        } else if (pt->modifier == M_NONE || pt->modifier == M_OPTIONAL) {
            qs_buf_append_str(re, "(?:");
            escape_regexp(re, pt->prefix.p, pt->prefix.len);
            qs_buf_append_char(re, '(');
            qs_buf_append(re, v, vn);
            qs_buf_append_char(re, ')');
            escape_regexp(re, pt->suffix.p, pt->suffix.len);
            qs_buf_append_char(re, ')');
            qs_buf_append_str(re, mod);
        } else {
            qs_buf_append_str(re, "(?:");
            escape_regexp(re, pt->prefix.p, pt->prefix.len);
            qs_buf_append_str(re, "((?:");
            qs_buf_append(re, v, vn);
            qs_buf_append_str(re, ")(?:");
            escape_regexp(re, pt->suffix.p, pt->suffix.len);
            escape_regexp(re, pt->prefix.p, pt->prefix.len);
            qs_buf_append_str(re, "(?:");
            qs_buf_append(re, v, vn);
            qs_buf_append_str(re, "))*)");
            escape_regexp(re, pt->suffix.p, pt->suffix.len);
            qs_buf_append_char(re, ')');
            if (pt->modifier == M_ZERO_OR_MORE)
                qs_buf_append_char(re, '?');
        }
        qs_buf_free(&rv);
    }
    qs_buf_append_str(re, ")\\z");
}

enum comp_kind { C_ANY, C_EXACT, C_REGEX };

typedef struct component {
    enum comp_kind kind;
    char *text; /* C_EXACT */
    size_t len;
    qs_regex *re; /* C_REGEX */
} component;

/* The standard's "compile a component". budget: states still allowed (0: no bound, else
 * at least 1); *used receives the states this component took. */
static const char *compile_component(const char *in, size_t n, canon_fn canon, options opt,
                                     size_t budget, size_t *used, component *out)
{
    memset(out, 0, sizeof(*out));
    *used = 0;
    pparser p;
    memset(&p, 0, sizeof(p));
    p.canon = canon;
    p.opt = opt;
    qs_strmap_init(&p.names);
    /* "[^" + the escaped delimiter + "]+?" (a NUL delimiter when the options have none) */
    qs_buf_append_str(&p.segment_wildcard, "[^");
    char d = (char)(opt.delimiter < 0 ? 0 : opt.delimiter);
    escape_regexp(&p.segment_wildcard, &d, 1);
    qs_buf_append_str(&p.segment_wildcard, "]+?");
    const char *why = NULL;
    if (!parse_pattern_string(&p, in, n)) {
        why = p.err ? p.err : "invalid pattern";
        goto done;
    }
    bool fixed = true;
    for (size_t i = 0; i < p.ps.n; i++)
        fixed &= p.ps.v[i].type == P_FIXED && p.ps.v[i].modifier == M_NONE;
    if (p.ps.n == 1 && p.ps.v[0].type == P_FULL_WILDCARD && p.ps.v[0].modifier == M_NONE &&
        p.ps.v[0].prefix.len == 0 && p.ps.v[0].suffix.len == 0) {
        out->kind = C_ANY;
    } else if (fixed) {
        qs_buf t = QS_BUF_INIT;
        for (size_t i = 0; i < p.ps.n; i++)
            if (p.ps.v[i].value.len)
                qs_buf_append(&t, p.ps.v[i].value.p, p.ps.v[i].value.len);
        out->kind = C_EXACT;
        out->len = t.len;
        qs_buf_cstr(&t);
        out->text = qs_buf_steal(&t);
    } else {
        qs_buf re = QS_BUF_INIT;
        generate_regexp(&p.ps, &p, &re);
        const char *rerr = NULL;
        out->re = qs_regex_compile(re.p, re.len, budget, used, &rerr);
        qs_buf_free(&re);
        if (!out->re)
            why = rerr ? rerr : "invalid regular expression";
        else
            out->kind = C_REGEX;
    }
done:
    free(p.tk.v);
    qs_buf_free(&p.segment_wildcard);
    qs_buf_free(&p.pending);
    parts_free(&p.ps);
    qs_strmap_free(&p.names);
    return why;
}

static void component_free(component *c)
{
    free(c->text);
    qs_regex_free(c->re);
    memset(c, 0, sizeof(*c));
}

static bool component_match(const component *c, qs_slice s)
{
    switch (c->kind) {
    case C_ANY:
        return true;
    case C_EXACT:
        return s.n == c->len && (s.n == 0 || memcmp(s.p, c->text, s.n) == 0);
    case C_REGEX:
        return qs_regex_match(c->re, s.p, s.n);
    }
    return false;
}

static const char *const special_schemes[] = {"ftp", "http", "https", "ws", "wss"};

static bool matches_special_scheme(const component *protocol)
{
    for (size_t i = 0; i < QS_ARRAY_LEN(special_schemes); i++)
        if (component_match(protocol, (qs_slice){special_schemes[i], strlen(special_schemes[i])}))
            return true;
    return false;
}

/* ---- canonicalizers as encoding callbacks ---- */

static int canon_hostname_special(const char *s, size_t n, qs_buf *out)
{
    return qs_weburl_canon_hostname(s, n, true, out);
}

static int canon_hostname_opaque(const char *s, size_t n, qs_buf *out)
{
    return qs_weburl_canon_hostname(s, n, false, out);
}

static int canon_ipv6_hostname(const char *s, size_t n, qs_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c != '[' && c != ']' && c != ':' && qs_hex_value((unsigned char)c) < 0)
            return -1;
        qs_buf_append_char(out, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
    }
    return 0;
}

/* ---- the constructor-string parser ---- */

enum cstate {
    CS_INIT,
    CS_PROTOCOL,
    CS_AUTHORITY,
    CS_USERNAME,
    CS_PASSWORD,
    CS_HOSTNAME,
    CS_PORT,
    CS_PATHNAME,
    CS_SEARCH,
    CS_HASH,
    CS_DONE
};

typedef struct cparser {
    const char *in;
    tokens tk;
    ostr result[NCOMP];
    size_t component_start, token_index, token_increment;
    int group_depth, ipv6_depth;
    bool protocol_special;
    enum cstate state;
    const char *err;
} cparser;

static const token *safe_token(const cparser *p, size_t i)
{
    return i < p->tk.n ? &p->tk.v[i] : &p->tk.v[p->tk.n - 1];
}

static bool non_special_char(const cparser *p, size_t i, char value)
{
    const token *t = safe_token(p, i);
    if (t->len != 1 || p->in[t->off] != value)
        return false;
    return t->type == T_CHAR || t->type == T_ESCAPED_CHAR || t->type == T_INVALID_CHAR;
}

static bool is_search_prefix(const cparser *p)
{
    if (non_special_char(p, p->token_index, '?'))
        return true;
    const token *t = &p->tk.v[p->token_index];
    if (t->len != 1 || p->in[t->off] != '?')
        return false;
    if (p->token_index == 0)
        return true;
    enum tok_type prev = safe_token(p, p->token_index - 1)->type;
    return !(prev == T_NAME || prev == T_REGEXP || prev == T_CLOSE || prev == T_ASTERISK);
}

static void rewind_parser(cparser *p)
{
    p->token_index = p->component_start;
    p->token_increment = 0;
}

static qs_slice component_string(const cparser *p)
{
    size_t start = safe_token(p, p->component_start)->index;
    size_t end = p->tk.v[p->token_index].index;
    return (qs_slice){p->in + start, end > start ? end - start : 0};
}

static void change_state(cparser *p, enum cstate next, size_t skip)
{
    qs_slice v = component_string(p);
    static const int slot[] = {
        [CS_PROTOCOL] = PROTOCOL, [CS_USERNAME] = USERNAME, [CS_PASSWORD] = PASSWORD,
        [CS_HOSTNAME] = HOSTNAME, [CS_PORT] = PORT,         [CS_PATHNAME] = PATHNAME,
        [CS_SEARCH] = SEARCH,     [CS_HASH] = HASH,
    };
    if (p->state != CS_INIT && p->state != CS_AUTHORITY && p->state != CS_DONE)
        ostr_set(&p->result[slot[p->state]], v.p, v.n);
    if (p->state != CS_INIT && next != CS_DONE) {
        bool early = p->state == CS_PROTOCOL || p->state == CS_AUTHORITY ||
                     p->state == CS_USERNAME || p->state == CS_PASSWORD;
        if (!p->result[HOSTNAME].set && early &&
            (next == CS_PORT || next == CS_PATHNAME || next == CS_SEARCH || next == CS_HASH))
            ostr_set(&p->result[HOSTNAME], "", 0);
        if (!p->result[PATHNAME].set && (early || p->state == CS_HOSTNAME || p->state == CS_PORT) &&
            (next == CS_SEARCH || next == CS_HASH)) {
            if (p->protocol_special)
                ostr_set(&p->result[PATHNAME], "/", 1);
            else
                ostr_set(&p->result[PATHNAME], "", 0);
        }
        if (!p->result[SEARCH].set &&
            (early || p->state == CS_HOSTNAME || p->state == CS_PORT || p->state == CS_PATHNAME) &&
            next == CS_HASH)
            ostr_set(&p->result[SEARCH], "", 0);
    }
    p->state = next;
    p->token_index += skip;
    p->component_start = p->token_index;
    p->token_increment = 0;
}

static void rewind_and_set(cparser *p, enum cstate s)
{
    rewind_parser(p);
    p->state = s;
}

static bool compute_protocol_special(cparser *p)
{
    qs_slice v = component_string(p);
    component c;
    size_t used;
    const char *why =
        compile_component(v.p, v.n, qs_weburl_canon_protocol, (options){-1, -1}, 0, &used, &c);
    if (why) {
        p->err = why;
        return false;
    }
    p->protocol_special = matches_special_scheme(&c);
    component_free(&c);
    return true;
}

/* The standard's "parse a constructor string". */
static bool parse_constructor_string(cparser *p, const char *in, size_t n)
{
    p->in = in;
    const char *why = tokenize((const unsigned char *)in, n, false, &p->tk);
    if (why) {
        p->err = why;
        return false;
    }
    p->token_increment = 1;
    while (p->token_index < p->tk.n) {
        p->token_increment = 1;
        if (p->tk.v[p->token_index].type == T_END) {
            if (p->state == CS_INIT) {
                rewind_parser(p);
                if (non_special_char(p, p->token_index, '#'))
                    change_state(p, CS_HASH, 1);
                else if (is_search_prefix(p))
                    change_state(p, CS_SEARCH, 1);
                else
                    change_state(p, CS_PATHNAME, 0);
                p->token_index += p->token_increment;
                continue;
            }
            if (p->state == CS_AUTHORITY) {
                rewind_and_set(p, CS_HOSTNAME);
                p->token_index += p->token_increment;
                continue;
            }
            change_state(p, CS_DONE, 0);
            break;
        }
        if (p->tk.v[p->token_index].type == T_OPEN) {
            p->group_depth++;
            p->token_index += p->token_increment;
            continue;
        }
        if (p->group_depth > 0) {
            if (p->tk.v[p->token_index].type == T_CLOSE) {
                p->group_depth--;
            } else {
                p->token_index += p->token_increment;
                continue;
            }
        }
        size_t ti = p->token_index;
        switch (p->state) {
        case CS_INIT:
            if (non_special_char(p, ti, ':'))
                rewind_and_set(p, CS_PROTOCOL);
            break;
        case CS_PROTOCOL:
            if (non_special_char(p, ti, ':')) {
                if (!compute_protocol_special(p))
                    return false;
                enum cstate next = CS_PATHNAME;
                size_t skip = 1;
                if (non_special_char(p, ti + 1, '/') && non_special_char(p, ti + 2, '/')) {
                    next = CS_AUTHORITY;
                    skip = 3;
                } else if (p->protocol_special) {
                    next = CS_AUTHORITY;
                }
                change_state(p, next, skip);
            }
            break;
        case CS_AUTHORITY:
            if (non_special_char(p, ti, '@'))
                rewind_and_set(p, CS_USERNAME);
            else if (non_special_char(p, ti, '/') || is_search_prefix(p) ||
                     non_special_char(p, ti, '#'))
                rewind_and_set(p, CS_HOSTNAME);
            break;
        case CS_USERNAME:
            if (non_special_char(p, ti, ':'))
                change_state(p, CS_PASSWORD, 1);
            else if (non_special_char(p, ti, '@'))
                change_state(p, CS_HOSTNAME, 1);
            break;
        case CS_PASSWORD:
            if (non_special_char(p, ti, '@'))
                change_state(p, CS_HOSTNAME, 1);
            break;
        case CS_HOSTNAME:
            if (non_special_char(p, ti, '['))
                p->ipv6_depth++;
            else if (non_special_char(p, ti, ']'))
                p->ipv6_depth--;
            else if (non_special_char(p, ti, ':') && p->ipv6_depth == 0)
                change_state(p, CS_PORT, 1);
            else if (non_special_char(p, ti, '/'))
                change_state(p, CS_PATHNAME, 0);
            else if (is_search_prefix(p))
                change_state(p, CS_SEARCH, 1);
            else if (non_special_char(p, ti, '#'))
                change_state(p, CS_HASH, 1);
            break;
        case CS_PORT:
            if (non_special_char(p, ti, '/'))
                change_state(p, CS_PATHNAME, 0);
            else if (is_search_prefix(p))
                change_state(p, CS_SEARCH, 1);
            else if (non_special_char(p, ti, '#'))
                change_state(p, CS_HASH, 1);
            break;
        case CS_PATHNAME:
            if (is_search_prefix(p))
                change_state(p, CS_SEARCH, 1);
            else if (non_special_char(p, ti, '#'))
                change_state(p, CS_HASH, 1);
            break;
        case CS_SEARCH:
            if (non_special_char(p, ti, '#'))
                change_state(p, CS_HASH, 1);
            break;
        case CS_HASH:
        case CS_DONE:
            break;
        }
        p->token_index += p->token_increment;
    }
    if (p->result[HOSTNAME].set && !p->result[PORT].set)
        ostr_set(&p->result[PORT], "", 0);
    return true;
}

/* ---- the pattern ---- */

struct qs_urlpattern {
    component c[NCOMP];
    const qs_weburl *base;
    size_t states;
    size_t size;
};

static bool absolute_pathname(qs_slice s)
{
    if (s.n == 0)
        return false;
    if (s.p[0] == '/')
        return true;
    return s.n >= 2 && (s.p[0] == '\\' || s.p[0] == '{') && s.p[1] == '/';
}

/* The standard's "process a URLPatternInit" for patterns, with a base URL. */
static void process_init(ostr init[NCOMP], const qs_weburl *base, ostr out[NCOMP])
{
    bool has[NCOMP];
    for (int i = 0; i < NCOMP; i++)
        has[i] = init[i].set;
    /* What the pattern lacks comes from the base, escaped as pattern text; the port is
     * taken as it is. */
    static const enum qs_weburl_part from[NCOMP] = {
        [PROTOCOL] = QS_WEBURL_PROTOCOL, [HOSTNAME] = QS_WEBURL_HOSTNAME, [PORT] = QS_WEBURL_PORT,
        [PATHNAME] = QS_WEBURL_PATHNAME, [SEARCH] = QS_WEBURL_SEARCH,     [HASH] = QS_WEBURL_HASH,
    };
    bool inherit = !has[PROTOCOL];
    for (int i = PROTOCOL; i < NCOMP && inherit; i++) {
        if (i == USERNAME || i == PASSWORD)
            continue; /* taken from the base only for URLs, not patterns */
        if (i != PROTOCOL && has[i])
            break;
        qs_slice b = qs_weburl_get(base, from[i]);
        out[i].set = true;
        if (i == PORT)
            qs_buf_append(&out[i].b, b.p, b.n);
        else
            escape_pattern(&out[i].b, b.p, b.n);
    }
    for (int i = 0; i < NCOMP; i++) {
        if (!has[i])
            continue;
        qs_slice v = ostr_get(&init[i]);
        if (i == PROTOCOL && v.n && v.p[v.n - 1] == ':')
            v.n--;
        if ((i == SEARCH && v.n && v.p[0] == '?') || (i == HASH && v.n && v.p[0] == '#')) {
            v.p++;
            v.n--;
        }
        qs_buf_reset(&out[i].b);
        out[i].set = true;
        if (i == PATHNAME && !base->opaque_path && !absolute_pathname(v)) {
            qs_buf bp = QS_BUF_INIT;
            qs_slice b = qs_weburl_get(base, QS_WEBURL_PATHNAME);
            escape_pattern(&bp, b.p, b.n);
            size_t slash = bp.len;
            while (slash > 0 && bp.p[slash - 1] != '/')
                slash--;
            if (slash > 0)
                qs_buf_append(&out[i].b, bp.p, slash);
            qs_buf_free(&bp);
        }
        if (v.n)
            qs_buf_append(&out[i].b, v.p, v.n);
    }
}

static bool ipv6_hostname_pattern(qs_slice s)
{
    if (s.n < 2)
        return false;
    return s.p[0] == '[' || ((s.p[0] == '{' || s.p[0] == '\\') && s.p[1] == '[');
}

qs_urlpattern *qs_urlpattern_compile(const char *pattern, size_t len, const qs_weburl *base,
                                     size_t max_states, size_t *states, const char **err)
{
    const char *why = NULL;
    const char *dummy;
    size_t used = 0, total = 0;
    if (!err)
        err = &dummy;
    if (states)
        *states = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = qs_utf8_decode((const unsigned char *)pattern + i, len - i, &cp);
        if (k == 0) {
            *err = "the pattern is not valid UTF-8";
            return NULL;
        }
        i += k;
    }
    cparser cp;
    memset(&cp, 0, sizeof(cp));
    ostr proc[NCOMP];
    memset(proc, 0, sizeof(proc));
    qs_urlpattern *p = qs_xcalloc(1, sizeof(*p));
    p->base = base;
    if (!parse_constructor_string(&cp, pattern, len)) {
        why = cp.err ? cp.err : "invalid pattern";
        goto done;
    }
    process_init(cp.result, base, proc);
    for (int i = 0; i < NCOMP; i++)
        if (!proc[i].set)
            ostr_set(&proc[i], "*", 1);
    /* A special scheme's default port is no port. */
    {
        qs_slice proto = ostr_get(&proc[PROTOCOL]);
        char lowered[8];
        if (proto.n < sizeof(lowered)) {
            for (size_t i = 0; i < proto.n; i++)
                lowered[i] =
                    (char)(proto.p[i] >= 'A' && proto.p[i] <= 'Z' ? proto.p[i] + 32 : proto.p[i]);
            const char *dp = strncmp(lowered, "file", proto.n) == 0 && proto.n == 4
                                 ? NULL
                                 : qs_weburl_default_port(lowered, proto.n);
            qs_slice port = ostr_get(&proc[PORT]);
            if (dp && port.n == strlen(dp) && memcmp(port.p, dp, port.n) == 0)
                ostr_set(&proc[PORT], "", 0);
        }
    }
#define BUDGET() (max_states ? (total < max_states ? max_states - total : 1) : 0)
#define COMPILE(idx, fn, o)                                                                        \
    do {                                                                                           \
        qs_slice v_ = ostr_get(&proc[idx]);                                                        \
        why = compile_component(v_.p, v_.n, fn, o, BUDGET(), &used, &p->c[idx]);                   \
        total += used;                                                                             \
        if (why)                                                                                   \
            goto done;                                                                             \
    } while (0)
    options none = {-1, -1};
    COMPILE(PROTOCOL, qs_weburl_canon_protocol, none);
    COMPILE(USERNAME, qs_weburl_canon_userinfo, none);
    COMPILE(PASSWORD, qs_weburl_canon_userinfo, none);
    bool special = matches_special_scheme(&p->c[PROTOCOL]);
    qs_slice proto = ostr_get(&proc[PROTOCOL]);
    qs_slice host = ostr_get(&proc[HOSTNAME]);
    options host_opt = {'.', -1};
    if (ipv6_hostname_pattern(host))
        COMPILE(HOSTNAME, canon_ipv6_hostname, host_opt);
    else if (special || (proto.n == 1 && proto.p[0] == '*'))
        COMPILE(HOSTNAME, canon_hostname_special, host_opt);
    else
        COMPILE(HOSTNAME, canon_hostname_opaque, host_opt);
    COMPILE(PORT, qs_weburl_canon_port, none);
    if (special)
        COMPILE(PATHNAME, qs_weburl_canon_pathname, ((options){'/', '/'}));
    else
        COMPILE(PATHNAME, qs_weburl_canon_opaque_pathname, none);
    COMPILE(SEARCH, qs_weburl_canon_search, none);
    COMPILE(HASH, qs_weburl_canon_hash, none);
#undef COMPILE
#undef BUDGET
done:
    if (states)
        *states = total;
    if (!why && max_states && total > max_states)
        why = "the expression needs too many automaton states";
    free(cp.tk.v);
    for (int i = 0; i < NCOMP; i++) {
        qs_buf_free(&cp.result[i].b);
        qs_buf_free(&proc[i].b);
    }
    if (why) {
        *err = why;
        qs_urlpattern_free(p);
        return NULL;
    }
    p->states = total;
    p->size = sizeof(*p);
    for (int i = 0; i < NCOMP; i++) {
        p->size += p->c[i].len + (p->c[i].text ? 1 : 0);
        if (p->c[i].re)
            p->size += 16 + 40 * qs_regex_states(p->c[i].re);
    }
    return p;
}

bool qs_urlpattern_match_url(const qs_urlpattern *p, const qs_weburl *topic)
{
    /* The path first: it is where patterns differ most. */
    static const enum comp_index order[NCOMP] = {PATHNAME, HOSTNAME, PROTOCOL, PORT,
                                                 SEARCH,   HASH,     USERNAME, PASSWORD};
    static const enum qs_weburl_part part_of[NCOMP] = {
        [PROTOCOL] = QS_WEBURL_PROTOCOL, [USERNAME] = QS_WEBURL_USERNAME,
        [PASSWORD] = QS_WEBURL_PASSWORD, [HOSTNAME] = QS_WEBURL_HOSTNAME,
        [PORT] = QS_WEBURL_PORT,         [PATHNAME] = QS_WEBURL_PATHNAME,
        [SEARCH] = QS_WEBURL_SEARCH,     [HASH] = QS_WEBURL_HASH,
    };
    for (int k = 0; k < NCOMP; k++) {
        enum comp_index i = order[k];
        if (!component_match(&p->c[i], qs_weburl_get(topic, part_of[i])))
            return false;
    }
    return true;
}

bool qs_urlpattern_match(const qs_urlpattern *p, const char *topic, size_t len)
{
    qs_weburl u;
    if (qs_weburl_parse(topic, len, p->base, &u) != 0)
        return false;
    bool m = qs_urlpattern_match_url(p, &u);
    qs_weburl_free(&u);
    return m;
}

size_t qs_urlpattern_states(const qs_urlpattern *p)
{
    return p->states;
}

size_t qs_urlpattern_size(const qs_urlpattern *p)
{
    return p->size;
}

void qs_urlpattern_free(qs_urlpattern *p)
{
    if (!p)
        return;
    for (int i = 0; i < NCOMP; i++)
        component_free(&p->c[i]);
    free(p);
}
