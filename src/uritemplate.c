/* SPDX-License-Identifier: MIT
 * uritemplate.c - RFC 6570 URI templates compiled into Thompson NFAs (see uritemplate.h).
 *
 * What is matched is the language of the regular expression the reference hub builds with
 * yosida95/uritemplate v3 (Template.Regexp(), anchored at both ends), reproduced without a
 * regex engine:
 *
 *   literal text      the bytes themselves ("%2F" in a literal is the three bytes %, 2, F)
 *   {op v1,...,vn}    optional as a whole: FIRST C1 (SEP C2){0,n-1}
 *                     or, when a variable is exploded: FIRST C1 (SEP C2)*
 *                     (the group is absent for a single variable that is not exploded)
 *   C                 ([class] | %XX)*  with X a hex digit; the prefix modifier ":N" does not
 *                     bound anything (the reference ignores it when building the regexp)
 *
 *   op     FIRST SEP  class of C1 / C2
 *   none         ,    U (C1 gets "=" when v1 is exploded, C2 when any variable is)
 *   +            ,    U+R
 *   #      #     ,    U+R
 *   .      .     .    U (same "=" rule as "none")
 *   /      /     /    U (same "=" rule)
 *   ;      ;     ;    U and "="
 *   ?      ?     &    U and "="
 *   &      &     &    U and "="
 *
 * where U is the unreserved set plus "," and R the reserved set. Nothing else (in particular
 * no byte >= 0x80) is in any class, so non-ASCII topic bytes can only match literal text.
 *
 * UTF-8: the reference matches runes and decodes each invalid byte of the topic as U+FFFD.
 * Its parser rejects templates that are not valid UTF-8 or that contain U+FFFD (the decoder
 * reports both the same way), so a compiled template's language is a set of valid UTF-8
 * strings without U+FFFD. Matching bytes is then exactly equivalent: a topic with invalid
 * UTF-8 (or U+FFFD) is rejected both by the rune matcher and by this byte matcher.
 *
 * Limits of the reference reproduced here: an expression whose regexp would repeat the
 * separator group more than 1000 times (more than 1001 variables, none exploded) makes the
 * reference's regexp.MustCompile panic; such templates do not compile here. Go's overall
 * regexp size limit (reached only by templates of several hundred KiB, far above what the
 * hub's request limits let a selector be) is not modelled.
 *
 * The automaton: a leading and a trailing literal are compared with memcmp; what lies
 * between is an array of states (consume one given byte / consume one byte of a class /
 * loop over a class and %XX triplets / split / match), built back to front so that every
 * state already knows its successor. It is simulated with the set-of-states method: each
 * topic byte visits each state at most once, there is no backtracking, and the scratch
 * memory is four 32-bit words per state. The automaton has at most about three states per
 * template byte.
 */
#include "uritemplate.h"

#include <stdlib.h>

enum {
    CL_U = 1,   /* unreserved and "," */
    CL_UN = 2,  /* CL_U and "=" (named operators, exploded variables) */
    CL_UR = 4,  /* unreserved and reserved ("+" and "#" expressions) */
    CL_HEX = 8, /* the two digits of a %XX triplet */
};

/* CL_* bits of every byte. unreserved = - . 0-9 A-Z _ a-z ~ ;
 * reserved = ! # $ & ' ( ) * + , / : ; = ? @ [ ]. Bytes >= 0x80 are in no class. */
static const uint8_t byte_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 0, 0, 0, 0, 0, /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 0, 0, 0, 0, 0, /* 0x10 */
    0,  4,  0,  4,  4,  0,  4,  4,  4,  4,  4, 4, 7, 7, 7, 4, /* 0x20  !"#$%&'()*+,-./ */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 4, 4, 0, 6, 0, 4, /* 0x30 0-9:;<=>? */
    4,  15, 15, 15, 15, 15, 15, 7,  7,  7,  7, 7, 7, 7, 7, 7, /* 0x40 @A-O */
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7, 4, 0, 4, 0, 7, /* 0x50 P-Z[\]^_ */
    0,  15, 15, 15, 15, 15, 15, 7,  7,  7,  7, 7, 7, 7, 7, 7, /* 0x60 `a-o */
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7, 0, 0, 0, 7, 0, /* 0x70 p-z{|}~ */
};

enum {
    NFA_BYTE,  /* consume arg, go to out */
    NFA_SET,   /* consume a byte of class arg, go to out */
    NFA_LOOP,  /* ([arg] | %XX)*: consume a byte of class arg and stay, or consume "%" and go
                * to out1 (two hex digits that lead back here); or leave for out without
                * consuming. No class contains "%", so the two transitions never overlap. */
    NFA_SPLIT, /* go to out and out1 without consuming */
    NFA_MATCH,
};

typedef struct nfa_state {
    uint8_t op;
    uint8_t arg;   /* NFA_BYTE: the byte; NFA_SET, NFA_LOOP: CL_* mask */
    uint32_t out;  /* successor */
    uint32_t out1; /* NFA_SPLIT: second branch; NFA_LOOP: first hex digit of a triplet */
} nfa_state;

struct qs_uritemplate {
    nfa_state *states;
    uint32_t nstates;
    uint32_t start;
    size_t prefix_len; /* leading literal: lit[0, prefix_len) */
    size_t suffix_len; /* trailing literal: lit[prefix_len, prefix_len + suffix_len) */
    char *lit;
};

/* ---- parsing (the template grammar accepted by the reference) ---- */

typedef struct part {
    bool is_expr;
    char op; /* 0 (simple) or one of + # . / ; ? & */
    bool first_explode, any_explode;
    uint32_t nvars;
    size_t off, len; /* literal bytes in the template */
} part;

typedef struct parts {
    part *v;
    size_t n, cap;
} parts;

static part *parts_push(parts *ps)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 8;
        ps->v = qs_xrealloc(ps->v, ps->cap * sizeof(*ps->v));
    }
    part *p = &ps->v[ps->n++];
    memset(p, 0, sizeof(*p));
    return p;
}

static void push_literal(parts *ps, size_t off, size_t len)
{
    if (len == 0)
        return;
    part *p = parts_push(ps);
    p->off = off;
    p->len = len;
}

/* Characters allowed unencoded in literal text: RFC 6570's literals production with "'"
 * allowed (as the reference does, following erratum 6937). "%" and "{" are handled apart. */
static bool is_literal_char(uint32_t r)
{
    if (r < 0x80) {
        switch (r) {
        case '!':
        case '#':
        case '$':
        case '=':
        case ']':
        case '_':
        case '~':
            return true;
        default:
            return (r >= 0x26 && r <= 0x3B) || (r >= 0x3F && r <= 0x5B) || (r >= 'a' && r <= 'z');
        }
    }
    if (r < 0x10000)
        return (r >= 0xA0 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFDCF) ||
               (r >= 0xFDF0 && r <= 0xFFEF);
    /* Supplementary planes: ucschar and iprivate exclude the last two code points of each
     * plane and U+E0000..U+E0FFF. */
    if ((r & 0xFFFF) > 0xFFFD)
        return false;
    return r <= 0x10FFFD && !(r >= 0xE0000 && r <= 0xE0FFF);
}

static bool is_varchar(uint32_t r)
{
    return (r >= '0' && r <= '9') || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || r == '_';
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool pct_triplet_at(const unsigned char *s, size_t n, size_t pos)
{
    return n - pos >= 3 && s[pos] == '%' && is_hex(s[pos + 1]) && is_hex(s[pos + 2]);
}

/* A name is non-empty, does not start or end with "." and has no "..". */
static bool valid_varname(const unsigned char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 1; i < n; i++)
        if (s[i] == '.' && s[i - 1] == '.')
            return false;
    return true;
}

/* The reference's regexp repeats the separator group {0,n-1}; Go rejects counts over 1000. */
#define MAX_REPEAT 1000

static const char *parse(const unsigned char *s, size_t n, parts *ps)
{
    enum { ST_LITERAL, ST_OPERATOR, ST_VARNAME, ST_VARLIST, ST_PREFIX } st = ST_LITERAL;
    size_t pos = 0, start = 0;
    unsigned maxlen = 0;
    part *e = NULL;

    while (pos < n) {
        uint32_t r;
        size_t sz = qs_utf8_decode(s + pos, n - pos, &r);
        if (sz == 0 || r == 0xFFFD)
            return "invalid UTF-8";
        switch (st) {
        case ST_LITERAL:
            if (r == '{') {
                push_literal(ps, start, pos - start);
                e = parts_push(ps);
                e->is_expr = true;
                st = ST_OPERATOR;
                pos++;
            } else if (r == '%') {
                if (!pct_triplet_at(s, n, pos))
                    return "incomplete %XX in a literal";
                pos += 3;
            } else if (is_literal_char(r)) {
                pos += sz;
            } else {
                return "character not allowed in a literal";
            }
            break;
        case ST_OPERATOR:
            switch (r) {
            case '+':
            case '#':
            case '.':
            case '/':
            case ';':
            case '?':
            case '&':
                e->op = (char)r;
                pos++;
                break;
            case '=':
            case ',':
            case '!':
            case '@':
            case '|':
                return "reserved operator";
            default: /* simple expression: this character starts the first name */
                break;
            }
            st = ST_VARNAME;
            start = pos;
            break;
        case ST_VARNAME:
            if (r == ':' || r == '*' || r == ',' || r == '}') {
                if (!valid_varname(s + start, pos - start))
                    return "invalid variable name";
                if (e->nvars == UINT32_MAX)
                    return "too many variables";
                if (r == '*') {
                    if (e->nvars == 0)
                        e->first_explode = true;
                    e->any_explode = true;
                }
                e->nvars++;
                if (r == ':' || r == '*')
                    pos++;
                st = r == ':' ? ST_PREFIX : ST_VARLIST;
                maxlen = 0;
            } else if (r == '%') {
                if (!pct_triplet_at(s, n, pos))
                    return "incomplete %XX in a variable name";
                pos += 3;
            } else if (r == '.') {
                if (pos == start || s[pos - 1] == '.')
                    return "invalid variable name";
                pos++;
            } else if (is_varchar(r)) {
                pos++;
            } else {
                return "invalid variable name";
            }
            break;
        case ST_VARLIST:
            if (r == ',') {
                pos++;
                st = ST_VARNAME;
                start = pos;
            } else if (r == '}') {
                pos++;
                if (e->nvars - 1 > MAX_REPEAT && !e->any_explode)
                    return "too many variables in one expression";
                e = NULL;
                st = ST_LITERAL;
                start = pos;
            } else {
                return "expected \",\" or \"}\" after a variable";
            }
            break;
        case ST_PREFIX:
            if (r >= '0' && r <= '9') {
                maxlen = maxlen * 10 + (r - '0');
                if (maxlen == 0 || maxlen > 9999)
                    return "prefix length must be 1..9999";
                pos++;
            } else {
                if (maxlen == 0)
                    return "prefix length must be 1..9999";
                st = ST_VARLIST;
            }
            break;
        }
    }
    if (st != ST_LITERAL)
        return "unterminated expression";
    push_literal(ps, start, pos - start);
    return NULL;
}

/* ---- NFA construction, back to front ---- */

typedef struct builder {
    nfa_state *s;
    uint32_t n, cap;
} builder;

static uint32_t emit(builder *b, uint8_t op, uint8_t arg, uint32_t out, uint32_t out1)
{
    if (b->n == b->cap) {
        if (b->cap > UINT32_MAX / 4)
            qs_panic("uritemplate: automaton too large");
        b->cap = b->cap ? b->cap * 2 : 16;
        b->s = qs_xrealloc(b->s, (size_t)b->cap * sizeof(*b->s));
    }
    b->s[b->n] = (nfa_state){op, arg, out, out1};
    return b->n++;
}

/* ([mask] | %XX)* followed by next. */
static uint32_t build_class_loop(builder *b, uint8_t mask, uint32_t next)
{
    uint32_t loop = emit(b, NFA_LOOP, mask, next, 0);
    uint32_t hex2 = emit(b, NFA_SET, CL_HEX, loop, 0);
    uint32_t hex1 = emit(b, NFA_SET, CL_HEX, hex2, 0);
    b->s[loop].out1 = hex1;
    return loop;
}

static uint32_t build_literal(builder *b, const unsigned char *s, size_t n, uint32_t next)
{
    while (n > 0)
        next = emit(b, NFA_BYTE, s[--n], next, 0);
    return next;
}

static uint8_t class_mask(char op, bool named)
{
    if (op == '+' || op == '#')
        return CL_UR;
    return named ? CL_UN : CL_U;
}

static bool mask_subset(uint8_t a, uint8_t b)
{
    for (unsigned c = 0; c < 256; c++)
        if ((byte_class[c] & a) && !(byte_class[c] & b))
            return false;
    return true;
}

static uint32_t build_expr(builder *b, const part *e, uint32_t next)
{
    char first = 0, sep = ',';
    bool named = false;
    switch (e->op) {
    case '#':
        first = '#';
        break;
    case '.':
    case '/':
        first = sep = e->op;
        break;
    case ';':
        first = sep = ';';
        named = true;
        break;
    case '?':
        first = '?';
        sep = '&';
        named = true;
        break;
    case '&':
        first = sep = '&';
        named = true;
        break;
    default: /* simple and "+" */
        break;
    }
    uint8_t m1 = class_mask(e->op, named || e->first_explode);
    uint8_t m2 = class_mask(e->op, named || e->any_explode);

    uint32_t tail = next;
    /* When SEP is itself in C2 and C2 is within C1, C1 (SEP C2)* is just C1: skip the
     * group (this is the case for simple, "+", "#" and "." expressions). */
    bool group = e->nvars > 1 || e->first_explode;
    if (group && !((byte_class[(unsigned char)sep] & m2) && mask_subset(m2, m1))) {
        if (e->any_explode) {
            uint32_t rep = emit(b, NFA_SPLIT, 0, 0, next);
            uint32_t body = build_class_loop(b, m2, rep);
            uint32_t s = emit(b, NFA_BYTE, (uint8_t)sep, body, 0); /* may move b->s */
            b->s[rep].out = s;
            tail = rep;
        } else {
            /* {0,k} as nested options: (SEP C2 (SEP C2 (...)?)?)? */
            for (uint32_t k = 0; k < e->nvars - 1; k++) {
                uint32_t body = build_class_loop(b, m2, tail);
                uint32_t s = emit(b, NFA_BYTE, (uint8_t)sep, body, 0);
                tail = emit(b, NFA_SPLIT, 0, s, next);
            }
        }
    }
    uint32_t entry = build_class_loop(b, m1, tail);
    if (first) {
        uint32_t f = emit(b, NFA_BYTE, (uint8_t)first, entry, 0);
        entry = emit(b, NFA_SPLIT, 0, f, next);
    }
    return entry;
}

qs_uritemplate *qs_uritemplate_compile(const char *tpl, size_t len, const char **err)
{
    const unsigned char *s = (const unsigned char *)tpl;
    const char *why = NULL;
    parts ps = {0};

    if (len > ((size_t)1 << 28))
        why = "template too long";
    else
        why = parse(s, len, &ps);
    if (why) {
        free(ps.v);
        if (err)
            *err = why;
        return NULL;
    }

    qs_uritemplate *t = qs_xcalloc(1, sizeof(*t));
    size_t first = 0, last = ps.n; /* parts [first, last) go into the automaton */
    if (first < last && !ps.v[first].is_expr)
        t->prefix_len = ps.v[first++].len;
    if (first < last && !ps.v[last - 1].is_expr)
        t->suffix_len = ps.v[--last].len;
    if (t->prefix_len + t->suffix_len > 0) {
        t->lit = qs_xmalloc(t->prefix_len + t->suffix_len);
        if (t->prefix_len)
            memcpy(t->lit, s + ps.v[0].off, t->prefix_len);
        if (t->suffix_len)
            memcpy(t->lit + t->prefix_len, s + ps.v[ps.n - 1].off, t->suffix_len);
    }

    builder b = {0};
    uint32_t next = emit(&b, NFA_MATCH, 0, 0, 0);
    for (size_t i = last; i > first; i--) {
        const part *p = &ps.v[i - 1];
        next = p->is_expr ? build_expr(&b, p, next) : build_literal(&b, s + p->off, p->len, next);
    }
    t->states = b.s;
    t->nstates = b.n;
    t->start = next;
    free(ps.v);
    return t;
}

void qs_uritemplate_free(qs_uritemplate *t)
{
    if (!t)
        return;
    free(t->states);
    free(t->lit);
    free(t);
}

/* ---- simulation ---- */

typedef struct sim {
    const nfa_state *st;
    uint32_t *mark; /* mark[i] == gen: state i is already in the list being built */
    uint32_t *stack;
    uint32_t gen;
} sim;

static inline void push_unmarked(sim *m, uint32_t i, uint32_t *sp)
{
    /* Marking on push keeps the stack within nstates entries. */
    if (m->mark[i] != m->gen) {
        m->mark[i] = m->gen;
        m->stack[(*sp)++] = i;
    }
}

/* Adds state i and everything reachable from it without consuming to list (the states that
 * consume, and the match state). */
static void add_closure(sim *m, uint32_t i, uint32_t *list, uint32_t *n)
{
    uint32_t sp = 0;
    push_unmarked(m, i, &sp);
    while (sp > 0) {
        uint32_t k = m->stack[--sp];
        const nfa_state *x = &m->st[k];
        if (x->op == NFA_SPLIT) {
            push_unmarked(m, x->out1, &sp);
            push_unmarked(m, x->out, &sp);
            continue;
        }
        list[(*n)++] = k;
        if (x->op == NFA_LOOP)
            push_unmarked(m, x->out, &sp);
    }
}

/* Scratch for small automatons lives on the stack; larger ones use the heap. */
#define SIM_STACK_STATES 256

bool qs_uritemplate_match(const qs_uritemplate *t, const char *s, size_t len)
{
    if (len < t->prefix_len + t->suffix_len)
        return false;
    if (t->prefix_len && memcmp(s, t->lit, t->prefix_len) != 0)
        return false;
    if (t->suffix_len && memcmp(s + len - t->suffix_len, t->lit + t->prefix_len, t->suffix_len))
        return false;
    const unsigned char *p = (const unsigned char *)s + t->prefix_len;
    size_t n = len - t->prefix_len - t->suffix_len;
    if (t->nstates == 1) /* only the match state: the template was pure literal text */
        return n == 0;

    uint32_t local[4 * SIM_STACK_STATES];
    uint32_t *mem = local;
    if (t->nstates > SIM_STACK_STATES)
        mem = qs_xmalloc(4 * (size_t)t->nstates * sizeof(uint32_t));
    sim m = {t->states, mem, mem + t->nstates, 1};
    uint32_t *cur = mem + 2 * (size_t)t->nstates, *nxt = mem + 3 * (size_t)t->nstates;
    memset(m.mark, 0, t->nstates * sizeof(uint32_t));

    uint32_t ncur = 0;
    add_closure(&m, t->start, cur, &ncur);
    for (size_t i = 0; i < n && ncur > 0; i++) {
        unsigned char c = p[i];
        if (++m.gen == 0) { /* wrapped: forget every old mark */
            memset(m.mark, 0, t->nstates * sizeof(uint32_t));
            m.gen = 1;
        }
        uint32_t nnxt = 0;
        for (uint32_t k = 0; k < ncur; k++) {
            const nfa_state *x = &t->states[cur[k]];
            switch (x->op) {
            case NFA_BYTE:
                if (x->arg == c)
                    add_closure(&m, x->out, nxt, &nnxt);
                break;
            case NFA_SET:
                if (byte_class[c] & x->arg)
                    add_closure(&m, x->out, nxt, &nnxt);
                break;
            case NFA_LOOP:
                if (byte_class[c] & x->arg)
                    add_closure(&m, cur[k], nxt, &nnxt);
                else if (c == '%')
                    add_closure(&m, x->out1, nxt, &nnxt);
                break;
            default:
                break;
            }
        }
        uint32_t *tmp = cur;
        cur = nxt;
        nxt = tmp;
        ncur = nnxt;
    }
    bool matched = false;
    for (uint32_t k = 0; k < ncur && !matched; k++)
        matched = t->states[cur[k]].op == NFA_MATCH;
    if (mem != local)
        free(mem);
    return matched;
}
