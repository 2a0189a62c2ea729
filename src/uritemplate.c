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
 * Triplets as tokens: "%" is in no class, and a literal "%" is always followed by two hex
 * digits (the parser requires it), so in any match every "%" of the topic starts a three-byte
 * unit consumed whole, by a class loop (any %XX) or by a literal triplet (exactly those
 * bytes). The automaton therefore reads the topic as tokens, a byte or a %XX triplet, and a
 * "%" not followed by two hex digits ends the match at once.
 *
 * The automaton: a leading and a trailing literal are compared with memcmp. What lies between
 * becomes a chain of nodes (the gaps between consumed tokens), each with at most:
 *   - an edge to the next node taking one token (a literal byte or triplet, an expression's
 *     FIRST or SEP);
 *   - loops that keep it live: class loops (C1, C2; adjacent bare loops such as "{a}{+b}"
 *     share a node, since C1* C2* = C2* when C1 is within C2 and the classes nest), and the
 *     separator of an exploded group (after a first SEP, (SEP C2)* is any mix of SEP and C2);
 * and every expression is a block of consecutive nodes [start, exit) from each of which the
 * exit is reachable without consuming (the expression is optional, C1 is, every level of
 * the group is). There are no other empty moves, and each construct gets a fresh exit node so
 * that no loop leaks out of it.
 *
 * Simulation is bit-parallel (shift-and): the live nodes are a bitmap; a token moves the live
 * nodes whose edge takes it one bit up (the edges taking byte c are the and of two masks,
 * one per nibble of c), keeps those with a loop that takes it, then closes over the blocks:
 * adding the block mask to the live nodes inside it carries from the lowest live node of
 * each run of adjacent blocks to the run's end, and every exit on the way becomes live. A
 * token costs about twenty word operations per 64 nodes whatever the template: no
 * backtracking, no per-state work, no allocation below 4096 nodes. The builder also runs dry
 * (counting only), so the template is one allocation of exact size (header, masks, literals), and
 * qs_uritemplate_measure() tells a caller the size without building anything (the nodes are
 * what the interface calls states).
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

struct qs_uritemplate {
    size_t size; /* bytes of this allocation */
    uint32_t nodes;
    uint32_t words;    /* of 64 nodes */
    size_t prefix_len; /* leading literal: lit[0, prefix_len) */
    size_t suffix_len; /* trailing literal: lit[prefix_len, prefix_len + suffix_len) */
    const char *lit;   /* in the same allocation, after the masks */
    uint64_t masks[];  /* MASKS words for each word of nodes (see below) */
};

/* ---- parsing (the template grammar accepted by the reference) ---- */

enum part_kind { PART_LITERAL, PART_EXPR };

typedef struct part {
    enum part_kind kind;
    char op; /* 0 (simple) or one of + # . / ; ? & */
    bool first_explode, any_explode;
    uint32_t nvars;
    size_t off, len; /* literal bytes in the template */
} part;

typedef struct parts {
    part *v;
    size_t n, cap;
    size_t expressions; /* {...} in the template, before merging */
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
                e->kind = PART_EXPR;
                ps->expressions++;
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

/* ---- expression shapes ---- */

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

/* What an expression compiles to: [FIRST] C1 [(SEP C2) repeated]. */
typedef struct expr_shape {
    char first; /* 0: none */
    char sep;
    uint8_t m1, m2; /* classes of C1 and C2 */
    bool group;     /* the (SEP C2) repetition is present */
} expr_shape;

static expr_shape shape_of(const part *e)
{
    expr_shape sh = {0, ',', 0, 0, false};
    bool named = false;
    switch (e->op) {
    case '#':
        sh.first = '#';
        break;
    case '.':
    case '/':
        sh.first = sh.sep = e->op;
        break;
    case ';':
        sh.first = sh.sep = ';';
        named = true;
        break;
    case '?':
        sh.first = '?';
        sh.sep = '&';
        named = true;
        break;
    case '&':
        sh.first = sh.sep = '&';
        named = true;
        break;
    default: /* simple and "+" */
        break;
    }
    sh.m1 = class_mask(e->op, named || e->first_explode);
    sh.m2 = class_mask(e->op, named || e->any_explode);
    /* When SEP is itself in C2 and C2 is within C1, C1 (SEP C2)* is just C1: no group (this
     * is the case for simple, "+", "#" and "." expressions). */
    sh.group = (e->nvars > 1 || e->first_explode) &&
               !((byte_class[(unsigned char)sh.sep] & sh.m2) && mask_subset(sh.m2, sh.m1));
    return sh;
}

/* ---- the automaton: nodes in bit-parallel form ---- */

/* The masks kept for each word of 64 nodes (bit i of word w is node 64 w + i). */
enum {
    M_EDGE_HIGH = 0,   /* ..15: the high nibble of the node's edge byte (or first digit of a
                        * triplet) is k: the nodes whose edge is byte c are then
                        * HIGH[c >> 4] & LOW[c & 15], two loads and an and */
    M_EDGE_LOW = 16,   /* ..31: the low nibble is k */
    M_EDGE2_BIT0 = 32, /* ..39: bit k of the second digit of a triplet edge */
    M_EDGE_BYTE = 40,  /* the node has a byte edge to the next node */
    M_EDGE_TRIPLET,    /* the node has a triplet edge to the next node */
    M_SELF_U,          /* a class loop on the node takes CL_U bytes (and triplets) */
    M_SELF_UN,         /* ... CL_UN bytes */
    M_SELF_UR,         /* ... CL_UR bytes */
    M_SELF_ANY,        /* some class loop: takes any triplet */
    M_SELF_SLASH,      /* an exploded group's separator loops on the node: "/" */
    M_SELF_SEMI,       /* ... ";" */
    M_SELF_AMP,        /* ... "&" */
    M_BLOCK,           /* the node lies in an expression's block [start, exit) */
    M_EXIT,            /* the node is an expression's exit */
    MASKS
};

/* With m == NULL the builder only counts the nodes it would create. */
typedef struct builder {
    uint64_t *m;
    uint32_t n; /* nodes created; the current one is n - 1 */
} builder;

static void set_bit(builder *b, unsigned mask, uint32_t node)
{
    if (b->m)
        b->m[(size_t)(node / 64) * MASKS + mask] |= (uint64_t)1 << (node % 64);
}

static uint32_t new_node(builder *b)
{
    return b->n++;
}

/* An edge from node to node + 1 (created here) taking byte c, or the triplet %c c2. */
static uint32_t edge(builder *b, uint32_t node, unsigned char c, bool triplet, unsigned char c2)
{
    set_bit(b, triplet ? M_EDGE_TRIPLET : M_EDGE_BYTE, node);
    set_bit(b, M_EDGE_HIGH + (c >> 4), node);
    set_bit(b, M_EDGE_LOW + (c & 15), node);
    for (unsigned k = 0; triplet && k < 8; k++)
        if (c2 & (1u << k))
            set_bit(b, M_EDGE2_BIT0 + k, node);
    return new_node(b);
}

static void self_loop(builder *b, uint32_t node, uint8_t mask)
{
    if (mask & CL_U)
        set_bit(b, M_SELF_U, node);
    if (mask & CL_UN)
        set_bit(b, M_SELF_UN, node);
    if (mask & CL_UR)
        set_bit(b, M_SELF_UR, node);
    set_bit(b, M_SELF_ANY, node);
}

static uint32_t build_literal(builder *b, uint32_t node, const unsigned char *s, size_t n)
{
    /* The parser only accepts "%" followed by two hex digits. */
    for (size_t i = 0; i < n;) {
        if (s[i] == '%') {
            node = edge(b, node, s[i + 1], true, s[i + 2]);
            i += 3;
        } else {
            node = edge(b, node, s[i++], false, 0);
        }
    }
    return node;
}

static uint32_t build_expr(builder *b, uint32_t node, const part *e)
{
    expr_shape sh = shape_of(e);
    if (!sh.first && !sh.group) {
        /* A bare loop: it shares the node with the loops around it (C1* C2* = C2* when C1 is
         * within C2, and the classes nest). */
        self_loop(b, node, sh.m1);
        return node;
    }
    uint32_t start = node;
    if (sh.first)
        node = edge(b, node, (unsigned char)sh.first, false, 0);
    self_loop(b, node, sh.m1);
    if (sh.group && e->any_explode) {
        /* (SEP C2)*: after a first SEP, any mix of SEP and C2. */
        node = edge(b, node, (unsigned char)sh.sep, false, 0);
        self_loop(b, node, sh.m2);
        if (!(byte_class[(unsigned char)sh.sep] & sh.m2)) {
            if (sh.sep == '/')
                set_bit(b, M_SELF_SLASH, node);
            else if (sh.sep == ';')
                set_bit(b, M_SELF_SEMI, node);
            else if (sh.sep == '&')
                set_bit(b, M_SELF_AMP, node);
            else
                qs_panic("uritemplate: separator %c outside its class", sh.sep);
        }
    } else if (sh.group) {
        /* (SEP C2){0,k}: one node per level, each may stop. */
        for (uint32_t k = 0; k + 1 < e->nvars; k++) {
            node = edge(b, node, (unsigned char)sh.sep, false, 0);
            self_loop(b, node, sh.m2);
        }
    }
    /* Every node from start on can reach the exit without consuming: the expression is
     * optional as a whole, C1 is, and so is every level of the group. */
    uint32_t exit = new_node(b);
    for (uint32_t i = start; i < exit; i++)
        set_bit(b, M_BLOCK, i);
    set_bit(b, M_EXIT, exit);
    return exit;
}

/* A parsed template: parts [first, last) go into the automaton, the others are the literal
 * prefix and suffix. */
typedef struct plan {
    parts ps;
    size_t first, last;
    size_t prefix_len, suffix_len;
    size_t nodes;
} plan;

static void build_all(builder *b, const unsigned char *s, const plan *pl)
{
    uint32_t node = new_node(b);
    for (size_t i = pl->first; i < pl->last; i++) {
        const part *p = &pl->ps.v[i];
        node = p->kind == PART_EXPR ? build_expr(b, node, p)
                                    : build_literal(b, node, s + p->off, p->len);
    }
}

/* Templates longer than this are refused before parsing: the node count then fits in 32 bits
 * with room to spare (under two nodes per template byte). */
#define MAX_TEMPLATE_LEN ((size_t)1 << 28)

static const char *plan_template(const unsigned char *s, size_t len, plan *pl)
{
    memset(pl, 0, sizeof(*pl));
    if (len > MAX_TEMPLATE_LEN)
        return "template too long";
    const char *why = parse(s, len, &pl->ps);
    if (why)
        return why;
    pl->last = pl->ps.n;
    if (pl->first < pl->last && pl->ps.v[pl->first].kind == PART_LITERAL)
        pl->prefix_len = pl->ps.v[pl->first++].len;
    if (pl->first < pl->last && pl->ps.v[pl->last - 1].kind == PART_LITERAL)
        pl->suffix_len = pl->ps.v[--pl->last].len;
    builder dry = {NULL, 0};
    build_all(&dry, s, pl);
    pl->nodes = dry.n;
    return NULL;
}

bool qs_uritemplate_measure(const char *tpl, size_t len, size_t *expressions, size_t *states,
                            const char **err)
{
    plan pl;
    const char *why = plan_template((const unsigned char *)tpl, len, &pl);
    if (!why) {
        if (expressions)
            *expressions = pl.ps.expressions;
        if (states)
            *states = pl.nodes;
    } else if (err) {
        *err = why;
    }
    free(pl.ps.v);
    return why == NULL;
}

qs_uritemplate *qs_uritemplate_compile(const char *tpl, size_t len, const char **err)
{
    const unsigned char *s = (const unsigned char *)tpl;
    plan pl;
    const char *why = plan_template(s, len, &pl);
    if (why) {
        free(pl.ps.v);
        if (err)
            *err = why;
        return NULL;
    }
    uint32_t words = (uint32_t)((pl.nodes + 63) / 64);
    size_t mask_bytes = (size_t)words * MASKS * sizeof(uint64_t);
    size_t size = sizeof(qs_uritemplate) + mask_bytes + pl.prefix_len + pl.suffix_len;
    qs_uritemplate *t = qs_xcalloc(1, size);
    t->size = size;
    t->nodes = (uint32_t)pl.nodes;
    t->words = words;
    t->prefix_len = pl.prefix_len;
    t->suffix_len = pl.suffix_len;
    char *lit = (char *)t->masks + mask_bytes;
    if (pl.prefix_len)
        memcpy(lit, s + pl.ps.v[0].off, pl.prefix_len);
    if (pl.suffix_len)
        memcpy(lit + pl.prefix_len, s + pl.ps.v[pl.ps.n - 1].off, pl.suffix_len);
    t->lit = lit;
    builder b = {t->masks, 0};
    build_all(&b, s, &pl);
    if (b.n != pl.nodes)
        qs_panic("uritemplate: %u nodes built, %zu counted", b.n, pl.nodes);
    free(pl.ps.v);
    return t;
}

void qs_uritemplate_free(qs_uritemplate *t)
{
    free(t);
}

size_t qs_uritemplate_states(const qs_uritemplate *t)
{
    return t->nodes;
}

size_t qs_uritemplate_size(const qs_uritemplate *t)
{
    return t->size;
}

/* ---- simulation ---- */

static bool is_hex_byte(unsigned char c)
{
    return byte_class[c] & CL_HEX;
}

/* The next token: a byte, or a triplet's two digits. */
typedef struct token {
    unsigned char c, c2;
    bool triplet;
} token;

/* The nodes (of one word) whose second-digit planes differ from c somewhere. Written out:
 * compilers do not unroll it at -O2. */
static inline uint64_t planes_differ(const uint64_t *m, unsigned c)
{
#define PLANE(k) (m[M_EDGE2_BIT0 + (k)] ^ -(uint64_t)((c >> (k)) & 1))
    return PLANE(0) | PLANE(1) | PLANE(2) | PLANE(3) | PLANE(4) | PLANE(5) | PLANE(6) | PLANE(7);
#undef PLANE
}

/* The nodes (of one word) whose edge takes the token. */
static inline uint64_t edges_taking(const uint64_t *m, const token *k)
{
    uint64_t first = m[M_EDGE_HIGH + (k->c >> 4)] & m[M_EDGE_LOW + (k->c & 15)];
    if (!k->triplet)
        return m[M_EDGE_BYTE] & first;
    return m[M_EDGE_TRIPLET] & first & ~planes_differ(m, k->c2);
}

/* The nodes (of one word) with a loop that takes the token. */
static inline uint64_t loops_taking(const uint64_t *m, const token *k)
{
    if (k->triplet)
        return m[M_SELF_ANY]; /* every class loop takes any triplet */
    uint8_t cl = byte_class[k->c];
    return (m[M_SELF_U] & -(uint64_t)(cl & CL_U)) |
           (m[M_SELF_UN] & -(uint64_t)((cl & CL_UN) >> 1)) |
           (m[M_SELF_UR] & -(uint64_t)((cl & CL_UR) >> 2)) |
           (m[M_SELF_SLASH] & -(uint64_t)(k->c == '/')) |
           (m[M_SELF_SEMI] & -(uint64_t)(k->c == ';')) | (m[M_SELF_AMP] & -(uint64_t)(k->c == '&'));
}

/* The closure of one word: adding the block mask to the live nodes inside blocks carries from
 * the lowest live node of each run of adjacent blocks to the end of the run (into the next
 * word through *carry); every exit on the way becomes live. */
static inline uint64_t close_blocks(const uint64_t *m, uint64_t live, uint64_t *carry)
{
    uint64_t block = m[M_BLOCK], in_block = live & block;
    uint64_t sum = in_block + block;
    uint64_t out = sum < in_block;
    sum += *carry;
    out |= sum < *carry;
    *carry = out;
    return live | (((sum ^ block) | in_block) & m[M_EXIT]);
}

/* One token: edges shift their node's bit to the next node, loops keep it, then the closure.
 * Returns false when no node is live any more. */
static bool step(const qs_uritemplate *t, uint64_t *live, const token *k)
{
    uint64_t shift_carry = 0, add_carry = 0, any = 0;
    for (uint32_t w = 0; w < t->words; w++) {
        const uint64_t *m = t->masks + (size_t)w * MASKS;
        uint64_t d = live[w];
        uint64_t moving = edges_taking(m, k) & d;
        uint64_t n = (moving << 1) | shift_carry | (d & loops_taking(m, k));
        shift_carry = moving >> 63;
        n = close_blocks(m, n, &add_carry);
        live[w] = n;
        any |= n;
    }
    return any != 0;
}

/* The initial closure: node 0 and the exits it reaches. */
static void start(const qs_uritemplate *t, uint64_t *live)
{
    memset(live, 0, t->words * sizeof(uint64_t));
    live[0] = 1;
    uint64_t add_carry = 0;
    for (uint32_t w = 0; w < t->words; w++)
        live[w] = close_blocks(t->masks + (size_t)w * MASKS, live[w], &add_carry);
}

/* Live-node words kept on the stack: automatons of up to 4096 nodes. */
#define SIM_STACK_WORDS 64

/* Reads the token at p[*i] and moves *i past it; false for a "%" that starts no triplet (it
 * can match nothing). */
static inline bool next_token(const unsigned char *p, size_t n, size_t *i, token *k)
{
    k->c = p[*i];
    k->c2 = 0;
    k->triplet = k->c == '%';
    if (!k->triplet) {
        ++*i;
        return true;
    }
    if (n - *i < 3 || !is_hex_byte(p[*i + 1]) || !is_hex_byte(p[*i + 2]))
        return false;
    k->c = p[*i + 1];
    k->c2 = p[*i + 2];
    *i += 3;
    return true;
}

/* match_middle for automatons of one word (most templates: up to 64 nodes), with the live
 * nodes in a register. */
static bool match_one_word(const qs_uritemplate *t, const unsigned char *p, size_t n)
{
    const uint64_t *m = t->masks;
    uint64_t carry = 0;
    uint64_t live = close_blocks(m, 1, &carry);
    for (size_t i = 0; i < n && live;) {
        token k;
        if (!next_token(p, n, &i, &k))
            return false;
        uint64_t moving = edges_taking(m, &k) & live;
        carry = 0;
        live = close_blocks(m, (moving << 1) | (live & loops_taking(m, &k)), &carry);
    }
    return live >> (t->nodes - 1) & 1;
}

/* Runs the automaton over p[0, n) (the topic between the literal prefix and suffix). */
static bool match_middle(const qs_uritemplate *t, const unsigned char *p, size_t n)
{
    if (t->words == 1)
        return match_one_word(t, p, n);
    uint64_t local[SIM_STACK_WORDS];
    uint64_t *live = t->words <= SIM_STACK_WORDS ? local : qs_xmalloc(t->words * sizeof(uint64_t));
    start(t, live);
    bool alive = true;
    for (size_t i = 0; i < n && alive;) {
        token k;
        alive = next_token(p, n, &i, &k) && step(t, live, &k);
    }
    uint32_t last = t->nodes - 1;
    bool matched = alive && (live[last / 64] >> (last % 64) & 1);
    if (live != local)
        free(live);
    return matched;
}

/* The literal prefix and suffix are in place; *n receives the length between them. */
static bool literals_fit(const qs_uritemplate *t, const char *s, size_t len, size_t *n)
{
    if (len < t->prefix_len + t->suffix_len)
        return false;
    if (t->prefix_len && memcmp(s, t->lit, t->prefix_len) != 0)
        return false;
    if (t->suffix_len && memcmp(s + len - t->suffix_len, t->lit + t->prefix_len, t->suffix_len))
        return false;
    *n = len - t->prefix_len - t->suffix_len;
    return true;
}

bool qs_uritemplate_match(const qs_uritemplate *t, const char *s, size_t len)
{
    size_t n;
    if (!literals_fit(t, s, len, &n))
        return false;
    return match_middle(t, (const unsigned char *)s + t->prefix_len, n);
}

int qs_uritemplate_quick_match(const qs_uritemplate *t, const char *s, size_t len, size_t max_steps)
{
    size_t n;
    if (!literals_fit(t, s, len, &n))
        return 0;
    if (n > max_steps / t->words)
        return -1;
    return match_middle(t, (const unsigned char *)s + t->prefix_len, n);
}
