/* SPDX-License-Identifier: MIT
 * regex.c - Go regular expressions over ASCII subjects: a parser that accepts what Go's
 * regexp/syntax accepts (with the Perl flags regexp.Compile uses), a Thompson automaton built
 * from its tree, and a simulation that keeps the set of live states (see regex.h).
 *
 * Parsing builds a small tree (classes, assertions, concatenations, alternations,
 * repetitions). Capture groups are plain groups: only whether a match exists matters.
 * Greedy and non-greedy operators match the same strings. Flags: i (case folding), s (dot
 * matches \n), m (^ and $ at line boundaries), U (ungreedy: no effect here); a flag group
 * "(?i)" lasts until the end of the enclosing group, as in Go.
 *
 * Go's rules reproduced where they decide between accepting and refusing:
 *  - "*", "+", "?" or a valid "{n,m}" with nothing before it in its group is an error, and
 *    so is a repetition operator right after another one ("a**", "a{2}{3}");
 *  - a "{" that does not start a valid repetition ("{", "{a}", "{01}", "{,2}") is a literal;
 *  - counts above 1000, min > max, and nested counted repetitions whose product exceeds
 *    1000 are errors;
 *  - escapes: \a \f \t \n \r \v, octal \0.. and \1..\7 followed by an octal digit (a lone
 *    \1..\9 would be a backreference: error), \xHH, \x{H…}, any ASCII punctuation; other
 *    letters are errors;
 *  - groups nest at most 1000 deep.
 * Go also refuses expressions whose compiled program would exceed its size limit; the
 * caller's bound on states is far below it.
 *
 * The automaton is built backwards, each node compiled with the index of its continuation,
 * so no patch lists are needed; a counted repetition compiles its body once per copy. States
 * are counted as they are made and the build stops past the bound.
 */
#include "regex.h"

#include "regex_classes.h"

#include <stdlib.h>

/* ---- character sets: bit c of w[c >> 6] is ASCII character c ---- */

typedef struct cset {
    uint64_t w[2];
} cset;

static void cset_add(cset *s, unsigned c)
{
    if (c < 128)
        s->w[c >> 6] |= (uint64_t)1 << (c & 63);
}

static bool cset_has(const cset *s, unsigned c)
{
    return c < 128 && (s->w[c >> 6] >> (c & 63) & 1);
}

static void cset_add_range(cset *s, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi && c < 128; c++)
        cset_add(s, c);
}

static void cset_union(cset *s, const cset *t)
{
    s->w[0] |= t->w[0];
    s->w[1] |= t->w[1];
}

static cset cset_not(cset s)
{
    s.w[0] = ~s.w[0];
    s.w[1] = ~s.w[1];
    return s;
}

/* Adds the case-folding orbits of what s holds and of the code points lo..hi (which may lie
 * beyond ASCII): ASCII letters pair up, and U+017F (long s) and U+212A (Kelvin sign) fold
 * onto s and k, the only non-ASCII code points whose orbit reaches ASCII. */
static void cset_fold(cset *s, uint32_t lo, uint32_t hi)
{
    for (unsigned c = 'A'; c <= 'Z'; c++) {
        if (cset_has(s, c) || cset_has(s, c + 32)) {
            cset_add(s, c);
            cset_add(s, c + 32);
        }
    }
    if (lo <= 0x17F && 0x17F <= hi) {
        cset_add(s, 's');
        cset_add(s, 'S');
    }
    if (lo <= 0x212A && 0x212A <= hi) {
        cset_add(s, 'k');
        cset_add(s, 'K');
    }
}

/* The set of code points lo..hi, folded when asked. */
static cset cset_of_range(uint32_t lo, uint32_t hi, bool fold)
{
    cset s = {{0, 0}};
    if (lo < 128)
        cset_add_range(&s, lo, hi < 128 ? hi : 127);
    if (fold)
        cset_fold(&s, lo, hi);
    return s;
}

/* ---- the tree ---- */

enum node_kind { N_EMPTY, N_CLASS, N_ASSERT, N_CAT, N_ALT, N_REPEAT };

enum assert_kind { A_BEGIN_TEXT, A_END_TEXT, A_BEGIN_LINE, A_END_LINE, A_WORD, A_NOT_WORD };

typedef struct node {
    uint8_t kind;
    uint8_t assertion;
    bool counted;   /* N_REPEAT written {n,m} (Go's OpRepeat), not * + ? */
    int min, max;   /* N_REPEAT; max -1 = unbounded */
    cset cls;       /* N_CLASS */
    uint32_t first; /* N_CAT, N_ALT, N_REPEAT: children are kids[first, first + n) */
    uint32_t n;
} node;

enum { F_FOLD = 1, F_DOTNL = 2, F_MULTILINE = 4 };

#define MAX_DEPTH 1000
#define MAX_REPEAT 1000

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    unsigned flags;
    int depth;
    node *nodes;
    size_t nnodes, cap_nodes;
    uint32_t *kids;
    size_t nkids, cap_kids;
    const char *err;
} parser;

static uint32_t new_node(parser *p, uint8_t kind)
{
    if (p->nnodes == p->cap_nodes) {
        p->cap_nodes = p->cap_nodes ? 2 * p->cap_nodes : 32;
        p->nodes = qs_xrealloc(p->nodes, p->cap_nodes * sizeof(node));
    }
    node *n = &p->nodes[p->nnodes];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    return (uint32_t)p->nnodes++;
}

/* Appends the children of a new N_CAT or N_ALT node. */
static uint32_t new_parent(parser *p, uint8_t kind, const uint32_t *items, size_t count)
{
    uint32_t id = new_node(p, kind);
    if (p->nkids + count > p->cap_kids) {
        p->cap_kids = QS_MAX(p->cap_kids * 2, p->nkids + count + 16);
        p->kids = qs_xrealloc(p->kids, p->cap_kids * sizeof(uint32_t));
    }
    if (count)
        memcpy(p->kids + p->nkids, items, count * sizeof(uint32_t));
    p->nodes[id].first = (uint32_t)p->nkids;
    p->nodes[id].n = (uint32_t)count;
    p->nkids += count;
    return id;
}

static uint32_t new_class(parser *p, cset s)
{
    uint32_t id = new_node(p, N_CLASS);
    p->nodes[id].cls = s;
    return id;
}

static uint32_t new_assert(parser *p, enum assert_kind a)
{
    uint32_t id = new_node(p, N_ASSERT);
    p->nodes[id].assertion = (uint8_t)a;
    return id;
}

/* A growable list of node ids, for the items of a concatenation or an alternation. */
typedef struct idlist {
    uint32_t *v;
    size_t n, cap;
} idlist;

static void idlist_push(idlist *l, uint32_t id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = qs_xrealloc(l->v, l->cap * sizeof(uint32_t));
    }
    l->v[l->n++] = id;
}

static bool at_end(const parser *p)
{
    return p->pos >= p->len;
}

static int peek(const parser *p, size_t ahead)
{
    return p->pos + ahead < p->len ? p->s[p->pos + ahead] : -1;
}

static bool fail(parser *p, const char *why)
{
    if (!p->err)
        p->err = why;
    return false;
}

/* Reads one code point of the expression (Go refuses invalid UTF-8). */
static bool next_rune(parser *p, uint32_t *r)
{
    size_t n = qs_utf8_decode(p->s + p->pos, p->len - p->pos, r);
    if (n == 0)
        return fail(p, "invalid UTF-8 in the expression");
    p->pos += n;
    return true;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Parses a decimal repetition count as Go does: no leading zero (then the "{" is a literal),
 * and a count of 8 digits or more is reported as -2 (too big). Returns -1 when no digits. */
static long repeat_number(const unsigned char *s, size_t len, size_t *i)
{
    size_t start = *i;
    while (*i < len && is_digit(s[*i]))
        (*i)++;
    size_t n = *i - start;
    if (n == 0)
        return -1;
    if (n >= 2 && s[start] == '0')
        return -3; /* leading zero: not a repetition */
    if (n >= 8)
        return -2;
    long v = 0;
    for (size_t k = start; k < *i; k++)
        v = v * 10 + (s[k] - '0');
    return v;
}

/* Tries to read "{n}", "{n,}" or "{n,m}" at pos. Returns false (a literal "{") when the text
 * is not a repetition; on success *end is past the "}", *min and *max are the counts (max -1
 * for unbounded, -2 when too big to read). */
static bool read_repeat(const parser *p, size_t pos, long *min, long *max, size_t *end)
{
    const unsigned char *s = p->s;
    size_t i = pos + 1;
    if (pos >= p->len || s[pos] != '{')
        return false;
    long lo = repeat_number(s, p->len, &i);
    if (lo == -1 || lo == -3)
        return false;
    long hi = lo;
    if (i < p->len && s[i] == ',') {
        i++;
        if (i < p->len && s[i] == '}') {
            hi = -1;
        } else {
            hi = repeat_number(s, p->len, &i);
            if (hi == -1 || hi == -3)
                return false;
        }
    }
    if (i >= p->len || s[i] != '}')
        return false;
    *min = lo;
    *max = hi;
    *end = i + 1;
    return true;
}

static bool is_repeat_op_at(const parser *p, size_t pos)
{
    if (pos >= p->len)
        return false;
    unsigned char c = p->s[pos];
    long lo, hi;
    size_t end;
    return c == '*' || c == '+' || c == '?' || (c == '{' && read_repeat(p, pos, &lo, &hi, &end));
}

/* Go's repeatIsValid: the copies that nested counted repetitions make of their innermost
 * expression stay within n. */
static bool repeat_valid(const parser *p, uint32_t id, long n)
{
    const node *nd = &p->nodes[id];
    if (nd->kind == N_REPEAT && nd->counted) {
        long m = nd->max;
        if (m == 0)
            return true;
        if (m < 0)
            m = nd->min;
        if (m > n)
            return false;
        if (m > 0)
            n /= m;
    }
    if (nd->kind == N_CAT || nd->kind == N_ALT || nd->kind == N_REPEAT)
        for (uint32_t k = 0; k < nd->n; k++)
            if (!repeat_valid(p, p->kids[nd->first + k], n))
                return false;
    return true;
}

/* ---- escapes and classes ---- */

static const struct {
    const char *name;
    const char *ranges; /* pairs lo,hi */
} posix_classes[] = {
    {"alnum", "09AZaz"},
    {"alpha", "AZaz"},
    {"ascii", "\x01\x7f"},
    {"blank", "\t\t  "},
    {"cntrl", "\x01\x1f\x7f\x7f"},
    {"digit", "09"},
    {"graph", "!~"},
    {"lower", "az"},
    {"print", " ~"},
    {"punct", "!/:@[`{~"},
    {"space", "\t\r  "},
    {"upper", "AZ"},
    {"word", "09AZaz__"},
    {"xdigit", "09AFaf"},
};

static cset cset_of_pairs(const char *pairs)
{
    cset s = {{0, 0}};
    for (size_t i = 0; pairs[i] && pairs[i + 1]; i += 2)
        cset_add_range(&s, (unsigned char)pairs[i], (unsigned char)pairs[i + 1]);
    return s;
}

static cset posix_set(size_t i)
{
    cset s = cset_of_pairs(posix_classes[i].ranges);
    if (strcmp(posix_classes[i].name, "ascii") == 0 || strcmp(posix_classes[i].name, "cntrl") == 0)
        cset_add(&s, 0); /* the pair tables cannot hold a NUL */
    return s;
}

/* The set of \d, \s or \w (for c in d, s, w or D, S, W: the caller negates the capitals);
 * false when c is none of them. */
static bool perl_class(int c, cset *out)
{
    const char *pairs;
    switch (c | 0x20) {
    case 'd':
        pairs = "09";
        break;
    case 's':
        pairs = "\t\n\f\r  ";
        break;
    case 'w':
        pairs = "09AZaz__";
        break;
    default:
        return false;
    }
    *out = cset_of_pairs(pairs);
    return true;
}

/* A group (named class, Perl class) as Go appends it: folded first when folding, then
 * negated when it is a negated group. */
static cset group_set(cset s, bool negated, bool fold)
{
    if (fold)
        cset_fold(&s, 1, 0);
    return negated ? cset_not(s) : s;
}

/* Go's canonical form of a Unicode class name: separators dropped, first letter upper, the
 * rest lower. */
static size_t canonical_class_name(const unsigned char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '_' || c == '-' || c == ' ')
            continue;
        if (first) {
            if (c >= 'a' && c <= 'z')
                c = (unsigned char)(c - 32);
            first = false;
        } else if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + 32);
        }
        if (o + 1 >= cap)
            return 0;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return o;
}

static const qs_regex_class_entry *unicode_class(const unsigned char *name, size_t n)
{
    char canon[64];
    if (n == 0 || canonical_class_name(name, n, canon, sizeof(canon)) == 0)
        return NULL;
    size_t lo = 0, hi = QS_ARRAY_LEN(qs_regex_classes);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(canon, qs_regex_classes[mid].name);
        if (c == 0)
            return &qs_regex_classes[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* \pX, \p{Name}, \PX, \P{Name}, \p{^Name} at pos (which holds the backslash). */
static bool parse_unicode_class(parser *p, cset *out)
{
    bool negated = p->s[p->pos + 1] == 'P';
    p->pos += 2;
    if (at_end(p))
        return fail(p, "invalid character class range");
    const unsigned char *name;
    size_t n;
    if (p->s[p->pos] == '{') {
        const unsigned char *close = memchr(p->s + p->pos, '}', p->len - p->pos);
        if (!close)
            return fail(p, "invalid character class range");
        name = p->s + p->pos + 1;
        n = (size_t)(close - name);
        p->pos = (size_t)(close - p->s) + 1;
    } else {
        uint32_t r;
        name = p->s + p->pos;
        if (!next_rune(p, &r))
            return false;
        n = (size_t)(p->s + p->pos - name);
    }
    if (n && name[0] == '^') {
        negated = !negated;
        name++;
        n--;
    }
    const qs_regex_class_entry *e = unicode_class(name, n);
    if (!e)
        return fail(p, "invalid character class range");
    const uint64_t *w = (p->flags & F_FOLD) ? e->folded : e->plain;
    cset s = {{w[0], w[1]}};
    *out = negated ? cset_not(s) : s;
    return true;
}

/* An escape that stands for one code point (Go's parseEscape); pos holds the backslash. */
static bool parse_escape(parser *p, uint32_t *r)
{
    p->pos++;
    if (at_end(p))
        return fail(p, "trailing backslash at end of expression");
    uint32_t c;
    if (!next_rune(p, &c))
        return false;
    switch (c) {
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
        /* A lone digit would be a backreference. */
        if (peek(p, 0) < '0' || peek(p, 0) > '7')
            return fail(p, "invalid escape sequence");
        /* fall through */
    case '0':
        *r = c - '0';
        for (int i = 1; i < 3 && peek(p, 0) >= '0' && peek(p, 0) <= '7'; i++)
            *r = *r * 8 + (uint32_t)(p->s[p->pos++] - '0');
        return true;
    case 'x': {
        if (at_end(p))
            return fail(p, "invalid escape sequence");
        if (p->s[p->pos] == '{') {
            p->pos++;
            uint32_t v = 0;
            size_t digits = 0;
            while (!at_end(p) && qs_hex_value(p->s[p->pos]) >= 0) {
                v = v * 16 + (uint32_t)qs_hex_value(p->s[p->pos++]);
                if (v > 0x10FFFF)
                    return fail(p, "invalid escape sequence");
                digits++;
            }
            if (digits == 0 || at_end(p) || p->s[p->pos] != '}')
                return fail(p, "invalid escape sequence");
            p->pos++;
            *r = v;
            return true;
        }
        if (p->len - p->pos < 2 || qs_hex_value(p->s[p->pos]) < 0 ||
            qs_hex_value(p->s[p->pos + 1]) < 0)
            return fail(p, "invalid escape sequence");
        *r = (uint32_t)(qs_hex_value(p->s[p->pos]) * 16 + qs_hex_value(p->s[p->pos + 1]));
        p->pos += 2;
        return true;
    }
    case 'a':
        *r = 7;
        return true;
    case 'f':
        *r = 12;
        return true;
    case 'n':
        *r = 10;
        return true;
    case 'r':
        *r = 13;
        return true;
    case 't':
        *r = 9;
        return true;
    case 'v':
        *r = 11;
        return true;
    default:
        if (c < 0x80 && !is_alnum((int)c)) {
            *r = c;
            return true;
        }
        return fail(p, "invalid escape sequence");
    }
}

/* One character of a bracketed class: an escape or a code point. */
static bool class_char(parser *p, uint32_t *r)
{
    if (at_end(p))
        return fail(p, "missing closing ]");
    if (p->s[p->pos] == '\\')
        return parse_escape(p, r);
    return next_rune(p, r);
}

static bool parse_class(parser *p, cset *out)
{
    p->pos++; /* [ */
    bool negated = false;
    bool fold = p->flags & F_FOLD;
    if (peek(p, 0) == '^') {
        negated = true;
        p->pos++;
    }
    cset s = {{0, 0}};
    bool first = true;
    while (at_end(p) || p->s[p->pos] != ']' || first) {
        if (at_end(p))
            return fail(p, "missing closing ]");
        first = false;
        /* [:name:] and [:^name:] */
        if (peek(p, 0) == '[' && peek(p, 1) == ':') {
            const unsigned char *start = p->s + p->pos + 2;
            const unsigned char *end = NULL;
            for (const unsigned char *q = start; q + 1 < p->s + p->len; q++)
                if (q[0] == ':' && q[1] == ']') {
                    end = q;
                    break;
                }
            if (end) {
                bool neg = start < end && start[0] == '^';
                const unsigned char *name = start + neg;
                size_t n = (size_t)(end - name);
                size_t found = QS_ARRAY_LEN(posix_classes);
                for (size_t i = 0; i < QS_ARRAY_LEN(posix_classes); i++)
                    if (strlen(posix_classes[i].name) == n &&
                        memcmp(posix_classes[i].name, name, n) == 0)
                        found = i;
                if (found == QS_ARRAY_LEN(posix_classes))
                    return fail(p, "invalid character class range");
                cset g = group_set(posix_set(found), neg, fold);
                cset_union(&s, &g);
                p->pos = (size_t)(end - p->s) + 2;
                continue;
            }
        }
        if (peek(p, 0) == '\\' && (peek(p, 1) == 'p' || peek(p, 1) == 'P')) {
            cset g;
            if (!parse_unicode_class(p, &g))
                return false;
            cset_union(&s, &g);
            continue;
        }
        cset g;
        if (peek(p, 0) == '\\' && perl_class(peek(p, 1), &g)) {
            bool neg = peek(p, 1) >= 'A' && peek(p, 1) <= 'Z';
            g = group_set(g, neg, fold);
            cset_union(&s, &g);
            p->pos += 2;
            continue;
        }
        uint32_t lo, hi;
        if (!class_char(p, &lo))
            return false;
        hi = lo;
        /* "a-" before the closing bracket is a and -. */
        if (peek(p, 0) == '-' && peek(p, 1) != -1 && peek(p, 1) != ']') {
            p->pos++;
            if (!class_char(p, &hi))
                return false;
            if (hi < lo)
                return fail(p, "invalid character class range");
        }
        cset r = cset_of_range(lo, hi, fold);
        cset_union(&s, &r);
    }
    p->pos++; /* ] */
    *out = negated ? cset_not(s) : s;
    return true;
}

/* ---- the grammar ---- */

static bool parse_alternation(parser *p, uint32_t *out);

static bool valid_capture_name(const unsigned char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_' && !is_alnum(s[i]))
            return false;
    return true;
}

/* A parenthesized group at pos. *out is set to the group's node, or left at UINT32_MAX for a
 * flag group "(?i)" that only changes the flags. */
static bool parse_group(parser *p, uint32_t *out)
{
    *out = UINT32_MAX;
    if (p->depth >= MAX_DEPTH)
        return fail(p, "expression nests too deeply");
    unsigned saved = p->flags;
    p->pos++; /* ( */
    if (peek(p, 0) == '?') {
        /* Named groups: (?P<name>…) and (?<name>…). */
        size_t name_at = 0;
        if (peek(p, 1) == 'P' && peek(p, 2) == '<')
            name_at = p->pos + 3;
        else if (peek(p, 1) == '<')
            name_at = p->pos + 2;
        else if (peek(p, 1) == 'P')
            return fail(p, "invalid or unsupported Perl syntax");
        if (name_at) {
            const unsigned char *gt = memchr(p->s + name_at, '>', p->len - name_at);
            if (!gt)
                return fail(p, "invalid named capture");
            size_t n = (size_t)(gt - (p->s + name_at));
            if (!valid_capture_name(p->s + name_at, n))
                return fail(p, "invalid named capture");
            p->pos = name_at + n + 1;
        } else {
            /* Flags: (?flags) or (?flags:re), "-" negating those after it. */
            p->pos++;
            unsigned flags = p->flags;
            bool negative = false, saw = false;
            for (;;) {
                int c = peek(p, 0);
                if (c == -1)
                    return fail(p, "missing closing )");
                p->pos++;
                unsigned bit = c == 'i' ? F_FOLD : c == 's' ? F_DOTNL : c == 'm' ? F_MULTILINE : 0;
                if (bit || c == 'U') {
                    if (negative)
                        flags &= ~bit;
                    else
                        flags |= bit;
                    saw = true;
                } else if (c == '-' && !negative) {
                    negative = true;
                    saw = false;
                } else if ((c == ':' || c == ')') && !(negative && !saw)) {
                    p->flags = flags;
                    if (c == ')')
                        return true; /* the flags last until the enclosing group ends */
                    break;
                } else {
                    return fail(p, "invalid or unsupported Perl syntax");
                }
            }
        }
    }
    p->depth++;
    uint32_t inner;
    bool ok = parse_alternation(p, &inner);
    p->depth--;
    if (!ok)
        return false;
    if (at_end(p) || p->s[p->pos] != ')')
        return fail(p, "missing closing )");
    p->pos++;
    p->flags = saved;
    *out = inner;
    return true;
}

/* One atom at pos (never a repetition operator). *out = UINT32_MAX when the atom produced
 * nothing (a flag group). */
static bool parse_atom(parser *p, uint32_t *out)
{
    unsigned char c = p->s[p->pos];
    bool fold = p->flags & F_FOLD;
    *out = UINT32_MAX;
    switch (c) {
    case '(':
        return parse_group(p, out);
    case '[': {
        cset s;
        if (!parse_class(p, &s))
            return false;
        *out = new_class(p, s);
        return true;
    }
    case '.': {
        cset s = cset_of_range(0, 127, false);
        if (!(p->flags & F_DOTNL))
            s.w[0] &= ~((uint64_t)1 << '\n');
        p->pos++;
        *out = new_class(p, s);
        return true;
    }
    case '^':
        p->pos++;
        *out = new_assert(p, (p->flags & F_MULTILINE) ? A_BEGIN_LINE : A_BEGIN_TEXT);
        return true;
    case '$':
        p->pos++;
        *out = new_assert(p, (p->flags & F_MULTILINE) ? A_END_LINE : A_END_TEXT);
        return true;
    case ')':
        return fail(p, "unexpected )");
    case '\\': {
        int e = peek(p, 1);
        switch (e) {
        case 'A':
            p->pos += 2;
            *out = new_assert(p, A_BEGIN_TEXT);
            return true;
        case 'z':
            p->pos += 2;
            *out = new_assert(p, A_END_TEXT);
            return true;
        case 'b':
            p->pos += 2;
            *out = new_assert(p, A_WORD);
            return true;
        case 'B':
            p->pos += 2;
            *out = new_assert(p, A_NOT_WORD);
            return true;
        case 'C':
            return fail(p, "invalid escape sequence");
        case 'p':
        case 'P': {
            cset s;
            if (!parse_unicode_class(p, &s))
                return false;
            *out = new_class(p, s);
            return true;
        }
        default: {
            cset s;
            if (e != -1 && perl_class(e, &s)) {
                bool neg = e >= 'A' && e <= 'Z';
                p->pos += 2;
                *out = new_class(p, group_set(s, neg, fold));
                return true;
            }
            uint32_t r;
            if (!parse_escape(p, &r))
                return false;
            *out = new_class(p, cset_of_range(r, r, fold));
            return true;
        }
        }
    }
    default: {
        uint32_t r;
        if (!next_rune(p, &r))
            return false;
        *out = new_class(p, cset_of_range(r, r, fold));
        return true;
    }
    }
}

/* Applies the repetition operator at pos to items' last entry. */
static bool parse_repeat(parser *p, idlist *items)
{
    long min, max;
    size_t end;
    bool counted = false;
    unsigned char c = p->s[p->pos];
    if (c == '{') {
        if (!read_repeat(p, p->pos, &min, &max, &end))
            return fail(p, "internal error: not a repetition");
        counted = true;
    } else {
        min = c == '+' ? 1 : 0;
        max = c == '?' ? 1 : -1;
        end = p->pos + 1;
    }
    if (items->n == 0)
        return fail(p, "missing argument to repetition operator");
    if (counted &&
        (min < 0 || min > MAX_REPEAT || max > MAX_REPEAT || max == -2 || (max >= 0 && min > max)))
        return fail(p, "invalid repeat count");
    p->pos = end;
    if (peek(p, 0) == '?')
        p->pos++; /* non-greedy: the same strings match */
    uint32_t sub = items->v[items->n - 1];
    uint32_t id = new_parent(p, N_REPEAT, &sub, 1);
    p->nodes[id].min = (int)min;
    p->nodes[id].max = (int)max;
    p->nodes[id].counted = counted;
    items->v[items->n - 1] = id;
    if (counted && (min >= 2 || max >= 2) && !repeat_valid(p, id, MAX_REPEAT))
        return fail(p, "invalid repeat count");
    return true;
}

static bool parse_concatenation(parser *p, uint32_t *out)
{
    idlist items = {0};
    bool after_repeat = false;
    while (!at_end(p) && p->s[p->pos] != '|' && p->s[p->pos] != ')') {
        if (is_repeat_op_at(p, p->pos)) {
            if (after_repeat) {
                free(items.v);
                return fail(p, "invalid nested repetition operator");
            }
            if (!parse_repeat(p, &items)) {
                free(items.v);
                return false;
            }
            after_repeat = true;
            continue;
        }
        after_repeat = false;
        if (p->s[p->pos] == '\\' && peek(p, 1) == 'Q') {
            /* Literal text up to \E or the end, each character its own item (a repetition
             * after it applies to the last one, as in Go). */
            p->pos += 2;
            size_t end = p->len;
            for (size_t i = p->pos; i + 1 < p->len; i++)
                if (p->s[i] == '\\' && p->s[i + 1] == 'E') {
                    end = i;
                    break;
                }
            bool fold = p->flags & F_FOLD;
            while (p->pos < end) {
                uint32_t r;
                if (!next_rune(p, &r)) {
                    free(items.v);
                    return false;
                }
                idlist_push(&items, new_class(p, cset_of_range(r, r, fold)));
            }
            if (end < p->len)
                p->pos = end + 2;
            continue;
        }
        if (p->s[p->pos] == '{') { /* not a repetition: a literal */
            p->pos++;
            idlist_push(&items, new_class(p, cset_of_range('{', '{', false)));
            continue;
        }
        uint32_t atom;
        if (!parse_atom(p, &atom)) {
            free(items.v);
            return false;
        }
        if (atom != UINT32_MAX)
            idlist_push(&items, atom);
    }
    *out = new_parent(p, N_CAT, items.v, items.n);
    free(items.v);
    return true;
}

static bool parse_alternation(parser *p, uint32_t *out)
{
    idlist alts = {0};
    for (;;) {
        uint32_t cat;
        if (!parse_concatenation(p, &cat)) {
            free(alts.v);
            return false;
        }
        idlist_push(&alts, cat);
        if (at_end(p) || p->s[p->pos] != '|')
            break;
        p->pos++;
    }
    *out = alts.n == 1 ? alts.v[0] : new_parent(p, N_ALT, alts.v, alts.n);
    free(alts.v);
    return true;
}

/* ---- the automaton ---- */

enum op { OP_CLASS, OP_SPLIT, OP_ASSERT, OP_NOP, OP_MATCH };

typedef struct state {
    uint8_t op;
    uint8_t assertion;
    uint32_t out, out1;
    cset cls;
} state;

struct qs_regex {
    uint32_t nstates;
    uint32_t start;
    bool anchored; /* begins with \A: only a match starting at 0 is possible */
    state st[];
};

typedef struct builder {
    state *st;
    size_t n, cap, max;
    bool over;
} builder;

static uint32_t emit(builder *b, uint8_t op, uint32_t out, uint32_t out1)
{
    if (b->max && b->n >= b->max) {
        b->over = true;
        b->n++;
        return 0;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 32;
        b->st = qs_xrealloc(b->st, b->cap * sizeof(state));
    }
    state *s = &b->st[b->n];
    memset(s, 0, sizeof(*s));
    s->op = op;
    s->out = out;
    s->out1 = out1;
    return (uint32_t)b->n++;
}

/* Compiles node id so that it continues to state next; returns its entry state. */
static uint32_t compile_node(const parser *p, builder *b, uint32_t id, uint32_t next)
{
    if (b->over)
        return 0;
    const node *nd = &p->nodes[id];
    switch (nd->kind) {
    case N_EMPTY:
        return next;
    case N_CLASS: {
        uint32_t s = emit(b, OP_CLASS, next, 0);
        if (!b->over)
            b->st[s].cls = nd->cls;
        return s;
    }
    case N_ASSERT: {
        uint32_t s = emit(b, OP_ASSERT, next, 0);
        if (!b->over)
            b->st[s].assertion = nd->assertion;
        return s;
    }
    case N_CAT:
        for (uint32_t k = nd->n; k-- > 0 && !b->over;)
            next = compile_node(p, b, p->kids[nd->first + k], next);
        return next;
    case N_ALT: {
        uint32_t s = compile_node(p, b, p->kids[nd->first + nd->n - 1], next);
        for (uint32_t k = nd->n - 1; k-- > 0 && !b->over;) {
            uint32_t alt = compile_node(p, b, p->kids[nd->first + k], next);
            s = emit(b, OP_SPLIT, alt, s);
        }
        return s;
    }
    case N_REPEAT: {
        uint32_t sub = p->kids[nd->first];
        uint32_t tail = next;
        if (nd->max < 0) {
            /* sub*: a loop state that either enters the body or leaves. */
            uint32_t loop = emit(b, OP_SPLIT, 0, next);
            uint32_t body = compile_node(p, b, sub, loop);
            if (b->over)
                return 0;
            b->st[loop].out = body;
            tail = loop;
        } else {
            /* (sub(sub(…)?)?)? for the optional copies. */
            for (int k = nd->min; k < nd->max && !b->over; k++) {
                uint32_t body = compile_node(p, b, sub, tail);
                tail = emit(b, OP_SPLIT, body, next);
            }
        }
        for (int k = 0; k < nd->min && !b->over; k++)
            tail = compile_node(p, b, sub, tail);
        return tail;
    }
    }
    return next;
}

/* True when the tree starts with \A on every path that matters: its first item is \A. */
static bool starts_anchored(const parser *p, uint32_t id)
{
    const node *nd = &p->nodes[id];
    if (nd->kind == N_ASSERT)
        return nd->assertion == A_BEGIN_TEXT;
    if (nd->kind == N_CAT && nd->n > 0)
        return starts_anchored(p, p->kids[nd->first]);
    return false;
}

static void parser_free(parser *p)
{
    free(p->nodes);
    free(p->kids);
}

qs_regex *qs_regex_compile(const char *re, size_t len, size_t max_states, size_t *states,
                           const char **err)
{
    parser p = {.s = (const unsigned char *)re, .len = len};
    uint32_t root;
    bool ok = parse_alternation(&p, &root);
    if (ok && !at_end(&p))
        ok = fail(&p, "unexpected )");
    if (!ok) {
        if (err)
            *err = p.err;
        parser_free(&p);
        return NULL;
    }
    builder b = {.max = max_states};
    uint32_t match = emit(&b, OP_MATCH, 0, 0);
    uint32_t start = compile_node(&p, &b, root, match);
    bool anchored = starts_anchored(&p, root);
    parser_free(&p);
    if (states)
        *states = b.n;
    if (b.over) {
        free(b.st);
        if (err)
            *err = "the expression needs too many automaton states";
        return NULL;
    }
    qs_regex *r = qs_xmalloc(sizeof(*r) + b.n * sizeof(state));
    r->nstates = (uint32_t)b.n;
    r->start = start;
    r->anchored = anchored;
    memcpy(r->st, b.st, b.n * sizeof(state));
    free(b.st);
    return r;
}

void qs_regex_free(qs_regex *r)
{
    free(r);
}

size_t qs_regex_states(const qs_regex *r)
{
    return r->nstates;
}

/* ---- simulation ---- */

static bool is_word_byte(int c)
{
    return c == '_' || is_alnum(c);
}

static bool assertion_holds(uint8_t a, const unsigned char *s, size_t len, size_t pos)
{
    int prev = pos > 0 ? s[pos - 1] : -1;
    int next = pos < len ? s[pos] : -1;
    switch (a) {
    case A_BEGIN_TEXT:
        return pos == 0;
    case A_END_TEXT:
        return pos == len;
    case A_BEGIN_LINE:
        return pos == 0 || prev == '\n';
    case A_END_LINE:
        return pos == len || next == '\n';
    case A_WORD:
        return is_word_byte(prev) != is_word_byte(next);
    case A_NOT_WORD:
        return is_word_byte(prev) == is_word_byte(next);
    }
    return false;
}

/* Work memory of one match: a list of live class states per position, a visit mark per state
 * and the closure stack. */
typedef struct sim {
    uint32_t *mark; /* generation that last visited the state */
    uint32_t *cur, *nxt;
    size_t ncur, nnxt;
    uint32_t *stack;
    uint32_t gen;
} sim;

/* Adds the closure of state s at position pos to the next list. Returns true when it reaches
 * the match state. */
static bool add_closure(const qs_regex *r, sim *m, uint32_t s0, const unsigned char *s, size_t len,
                        size_t pos)
{
    size_t top = 0;
    m->stack[top++] = s0;
    while (top) {
        uint32_t id = m->stack[--top];
        if (m->mark[id] == m->gen)
            continue;
        m->mark[id] = m->gen;
        const state *st = &r->st[id];
        switch (st->op) {
        case OP_MATCH:
            return true;
        case OP_CLASS:
            m->nxt[m->nnxt++] = id;
            break;
        case OP_SPLIT:
            m->stack[top++] = st->out1;
            m->stack[top++] = st->out;
            break;
        case OP_NOP:
            m->stack[top++] = st->out;
            break;
        case OP_ASSERT:
            if (assertion_holds(st->assertion, s, len, pos))
                m->stack[top++] = st->out;
            break;
        }
    }
    return false;
}

/* Automatons up to this size simulate with memory on the stack. */
#define SIM_STACK_STATES 256

bool qs_regex_match(const qs_regex *r, const char *subject, size_t len)
{
    const unsigned char *s = (const unsigned char *)subject;
    size_t n = r->nstates;
    uint32_t local[5 * SIM_STACK_STATES + 1];
    /* mark, cur, nxt, and a stack of twice the states plus one (a split pushes two). */
    uint32_t *mem = n <= SIM_STACK_STATES ? local : qs_xmalloc((5 * n + 1) * sizeof(uint32_t));
    sim m = {mem, mem + n, mem + 2 * n, 0, 0, mem + 3 * n, 1};
    memset(m.mark, 0, n * sizeof(uint32_t));
    bool matched = add_closure(r, &m, r->start, s, len, 0);
    for (size_t i = 0; i < len && !matched; i++) {
        uint32_t *t = m.cur;
        m.cur = m.nxt;
        m.nxt = t;
        m.ncur = m.nnxt;
        m.nnxt = 0;
        m.gen++;
        unsigned c = s[i];
        for (size_t k = 0; k < m.ncur && !matched; k++) {
            const state *st = &r->st[m.cur[k]];
            if (cset_has(&st->cls, c))
                matched = add_closure(r, &m, st->out, s, len, i + 1);
        }
        if (!matched && !r->anchored)
            matched = add_closure(r, &m, r->start, s, len, i + 1);
        if (!matched && m.nnxt == 0 && r->anchored)
            break;
    }
    if (mem != local)
        free(mem);
    return matched;
}
