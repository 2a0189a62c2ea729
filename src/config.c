/* SPDX-License-Identifier: MIT
 * config.c - Caddyfile-subset parser for the hub's configuration (see config.h).
 *
 * Pipeline: `{$VAR}` substitution on the raw text (remembering where every byte came from),
 * tokenizing like Caddy's lexer, `{env.VAR}` replacement inside each token, then a
 * line-oriented recursive walk of the blocks: global options, one site block, the `mercure`
 * block. The site's addresses become listeners once the whole site is read, because its
 * `tls` directive decides which of them use TLS (resolve_listeners()). Directives of the
 * `mercure` block are described once, in `directives[]`, which also provides the defaults.
 */
#include "config.h"

#include "buf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* Deeper nesting than any real Caddyfile; bounds the recursion on hostile input. */
#define MAX_DEPTH 32
/* A configuration file larger than this is certainly a mistake (wrong file passed). */
#define MAX_FILE_SIZE (16u << 20)
/* Values quoted in error messages are cut here so one bad token cannot flood the log. */
#define MAX_ERR_VALUE 120

#define DEFAULT_SOURCE "built-in default"

/* The reference's own Caddyfile (0.x), minus what only Caddy can serve (log filter, encode,
 * respond): CADDY_EXTRA_CONFIG and CADDY_SERVER_EXTRA_DIRECTIVES are kept so that a
 * deployment setting them gets an error for what Quicksilver cannot do instead of having it
 * silently dropped. Line numbers in errors refer to this text. */
static const char default_caddyfile[] =
    "{\n"
    "\t{$GLOBAL_OPTIONS}\n"
    "}\n"
    "\n"
    "{$CADDY_EXTRA_CONFIG}\n"
    "\n"
    "{$SERVER_NAME:localhost} {\n"
    "\tmercure {\n"
    "\t\tpublisher_jwt {env.MERCURE_PUBLISHER_JWT_KEY} {env.MERCURE_PUBLISHER_JWT_ALG}\n"
    "\t\tsubscriber_jwt {env.MERCURE_SUBSCRIBER_JWT_KEY} {env.MERCURE_SUBSCRIBER_JWT_ALG}\n"
    "\t\t{$MERCURE_EXTRA_DIRECTIVES}\n"
    "\t}\n"
    "\n"
    "\t{$CADDY_SERVER_EXTRA_DIRECTIVES}\n"
    "}\n";

/*-------- Parser state --------*/

enum tok_kind { TOK_WORD, TOK_OPEN, TOK_CLOSE };

struct tok {
    char *text; /* NUL-terminated, after {env.X} replacement */
    enum tok_kind kind;
    /* Lines in the substituted text: they decide what is "the same line", because a value
     * from {$VAR} sits on the line of the file where the variable was written. */
    int eline, eline_end;
    /* Origin for error messages: the file (or variable) and the line inside it. */
    const char *source;
    int line;
    const char *env; /* first {env.NAME} the token used, or NULL */
};

/* A run of substituted text that starts at `start` and came from `source`, line `line`. */
struct seg {
    size_t start;
    const char *source;
    int line;
};

struct line {
    size_t first; /* index of the directive token */
    size_t n;     /* directive + arguments */
    bool block;   /* the line ended with '{'; the cursor is inside the block */
    size_t open;  /* index of that '{' */
};

struct site_addr;

struct parser {
    qs_config *cfg;
    qs_getenv_fn getenv_fn;
    void *ud;
    char *err;

    char **names; /* owned strings that tokens point to: sources, env names */
    size_t n_names;
    struct seg *segs;
    size_t n_segs;
    char *text; /* the substituted text */
    size_t text_len;
    struct tok *toks;
    size_t n_toks, cap_toks;

    const char *source; /* the interned main source name */
    size_t pos;
    int depth;

    bool have_site, have_mercure;
    size_t site_idx, mercure_idx, pub_idx, sub_idx, transport_idx, transport_url_idx;

    struct site_addr *addrs; /* the site's addresses, until resolve_listeners() */
    size_t n_addrs;
    char *site_text;                /* the site's address list as written, for errors */
    size_t tls_idx, protocols_idx;  /* the `tls` and first `protocols` lines */
    const struct tok *inside_route; /* the route-like directive being walked, if any */
};

#define NO_TOK ((size_t)-1)

static const char *env_get(struct parser *p, const char *name)
{
    if (p->getenv_fn)
        return p->getenv_fn(name, p->ud);
    return getenv(name);
}

static const char *intern(struct parser *p, const char *s, size_t n)
{
    for (size_t i = 0; i < p->n_names; i++)
        if (strlen(p->names[i]) == n && memcmp(p->names[i], s, n) == 0)
            return p->names[i];
    p->names = qs_xrealloc(p->names, (p->n_names + 1) * sizeof(*p->names));
    return p->names[p->n_names++] = qs_xstrndup(s, n);
}

/*-------- Errors --------*/

/* Appends s in double-quote-safe form so that every error stays on one line. */
static void append_escaped(qs_buf *b, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n && i < MAX_ERR_VALUE; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            qs_buf_appendf(b, "\\%c", c);
        else if (c == '\n')
            qs_buf_append_str(b, "\\n");
        else if (c == '\t')
            qs_buf_append_str(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            qs_buf_appendf(b, "\\x%02x", c);
        else
            qs_buf_append_char(b, (char)c);
    }
    if (n > MAX_ERR_VALUE)
        qs_buf_append_str(b, "...");
}

/* Records "<source>:<line>: <message>[ "<value>"]" (first error wins) and returns -1. */
static int failv(struct parser *p, const struct tok *t, const char *value, const char *fmt,
                 va_list ap)
{
    if (p->err)
        return -1;
    qs_buf b = QS_BUF_INIT;
    if (t)
        qs_buf_appendf(&b, "%s:%d: ", t->source, t->line);
    else
        qs_buf_appendf(&b, "%s: ", p->source);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        qs_panic("out of memory formatting an error");
    qs_buf_append_str(&b, msg);
    free(msg);
    if (value) {
        qs_buf_append_str(&b, " \"");
        append_escaped(&b, value);
        qs_buf_append_char(&b, '"');
    }
    p->err = qs_buf_steal(&b);
    return -1;
}

static int fail(struct parser *p, const struct tok *t, const char *fmt, ...) QS_PRINTF(3, 4);
static int fail(struct parser *p, const struct tok *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(p, t, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

/* Like fail(), with an offending value appended in quotes. */
static int failval(struct parser *p, const struct tok *t, const char *value, const char *fmt, ...)
    QS_PRINTF(4, 5);
static int failval(struct parser *p, const struct tok *t, const char *value, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(p, t, value, fmt, ap);
    va_end(ap);
    return -1;
}

/*-------- {$VAR} substitution --------*/

static void push_seg(struct parser *p, size_t start, const char *source, int line)
{
    /* A segment that would start where the previous one starts replaces it (empty run). */
    if (p->n_segs && p->segs[p->n_segs - 1].start == start) {
        p->segs[p->n_segs - 1].source = source;
        p->segs[p->n_segs - 1].line = line;
        return;
    }
    p->segs = qs_xrealloc(p->segs, (p->n_segs + 1) * sizeof(*p->segs));
    p->segs[p->n_segs++] = (struct seg){start, source, line};
}

static int count_newlines(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += s[i] == '\n';
    return c;
}

/* Names of variables become error sources; keep them printable. */
static const char *intern_var_name(struct parser *p, const char *s, size_t n)
{
    char *tmp = qs_xstrndup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tmp[i] < 0x20 || tmp[i] == 0x7f)
            tmp[i] = '?';
    const char *r = intern(p, tmp, n);
    free(tmp);
    return r;
}

/*
 * Replaces `{$NAME}` and `{$NAME:default}` like Caddy does before lexing: the closing brace
 * is the next '}' wherever it is, an empty name is left alone, an unset variable takes the
 * default (or nothing), and replaced text is not scanned again.
 */
static void substitute_vars(struct parser *p, const char *in, size_t n)
{
    qs_buf out = QS_BUF_INIT;
    int fline = 1;
    size_t pos = 0;
    push_seg(p, 0, p->source, 1);
    while (pos < n) {
        const char *open = memmem(in + pos, n - pos, "{$", 2);
        if (!open)
            break;
        size_t begin = (size_t)(open - in);
        const char *close = memchr(in + begin + 2, '}', n - begin - 2);
        if (!close)
            break;
        size_t end = (size_t)(close - in); /* index of '}' */
        if (end == begin + 2) {
            /* `{$}`: not a variable, kept as written. */
            qs_buf_append(&out, in + pos, end + 1 - pos);
            fline += count_newlines(in + pos, end + 1 - pos);
            pos = end + 1;
            continue;
        }
        qs_buf_append(&out, in + pos, begin - pos);
        fline += count_newlines(in + pos, begin - pos);

        const char *name = in + begin + 2;
        const char *colon = memchr(name, ':', end - (begin + 2));
        size_t name_len = colon ? (size_t)(colon - name) : end - (begin + 2);
        char *cname = qs_xstrndup(name, name_len);
        const char *value = env_get(p, cname);
        free(cname);
        if (value) {
            if (*value) {
                push_seg(p, out.len, intern_var_name(p, name, name_len), 1);
                qs_buf_append_str(&out, value);
            }
        } else if (colon && colon + 1 < in + end) {
            /* The default is text of the file: errors point at the file line. */
            push_seg(p, out.len, p->source, fline + count_newlines(name, name_len + 1));
            qs_buf_append(&out, colon + 1, (size_t)(in + end - colon - 1));
        }
        fline += count_newlines(in + begin, end + 1 - begin);
        push_seg(p, out.len, p->source, fline);
        pos = end + 1;
    }
    if (pos < n)
        qs_buf_append(&out, in + pos, n - pos);
    p->text_len = out.len;
    p->text = qs_buf_steal(&out);
}

/*-------- Lexer --------*/

struct lexer {
    struct parser *p;
    const char *s;
    size_t n, pos;
    size_t k; /* current segment */
    int eline, oline;
};

static void lx_adv(struct lexer *lx)
{
    if (lx->s[lx->pos] == '\n') {
        lx->eline++;
        lx->oline++;
    }
    lx->pos++;
    while (lx->k + 1 < lx->p->n_segs && lx->p->segs[lx->k + 1].start <= lx->pos) {
        lx->k++;
        lx->oline = lx->p->segs[lx->k].line;
    }
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_marker_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static void push_tok(struct parser *p, qs_buf *b, enum tok_kind kind, int eline, int eline_end,
                     const char *source, int line)
{
    if (p->n_toks == p->cap_toks) {
        p->cap_toks = p->cap_toks ? p->cap_toks * 2 : 64;
        p->toks = qs_xrealloc(p->toks, p->cap_toks * sizeof(*p->toks));
    }
    p->toks[p->n_toks++] = (struct tok){
        .text = qs_xstrndup(b->p, b->len),
        .kind = kind,
        .eline = eline,
        .eline_end = eline_end,
        .source = source,
        .line = line,
    };
}

/*
 * A heredoc (`<<MARKER` then newline) ends at a line holding only indentation and MARKER
 * (arguments may follow on that line); that indentation is removed from every line of the
 * text and the newline before the closing line is dropped, as in Caddy. Returns 0 with the
 * text in b, 1 when this is not a heredoc opener, -1 on error.
 */
static int lex_heredoc(struct lexer *lx, qs_buf *b, const struct tok *at)
{
    const char *s = lx->s;
    size_t m0 = lx->pos + 2, m1 = m0;
    while (m1 < lx->n && is_marker_char(s[m1]))
        m1++;
    size_t body = m1;
    if (m1 == m0 || m1 >= lx->n)
        return 1;
    if (s[body] == '\r' && body + 1 < lx->n)
        body++;
    if (s[body] != '\n')
        return 1;
    body++;
    size_t mlen = m1 - m0;

    /* Find the closing line first: its indentation applies to all the lines before it. */
    size_t ls = body, close_ls = 0, indent = 0;
    bool found = false;
    while (ls <= lx->n) {
        const char *nl = memchr(s + ls, '\n', lx->n - ls);
        size_t le = nl ? (size_t)(nl - s) : lx->n;
        size_t w = 0;
        while (ls + w < le && (s[ls + w] == ' ' || s[ls + w] == '\t'))
            w++;
        size_t after = ls + w + mlen;
        if (le - ls - w >= mlen && memcmp(s + ls + w, s + m0, mlen) == 0 &&
            (after == le || is_space(s[after]))) {
            close_ls = ls;
            indent = w;
            found = true;
            break;
        }
        if (!nl)
            break;
        ls = le + 1;
    }
    if (!found)
        return fail(lx->p, at, "unterminated heredoc: no closing %.*s marker", (int)mlen, s + m0);

    for (ls = body; ls < close_ls;) {
        const char *nl = memchr(s + ls, '\n', close_ls - ls);
        size_t le = (size_t)(nl - s); /* every line before the closing one ends with '\n' */
        size_t len = le - ls;
        if (len >= indent && memcmp(s + ls, s + close_ls, indent) == 0) {
            qs_buf_append(b, s + ls + indent, len - indent);
        } else {
            for (size_t i = ls; i < le; i++)
                if (!is_space(s[i]))
                    return fail(lx->p, at,
                                "heredoc line does not start with the indentation of the "
                                "closing marker");
        }
        if (le + 1 < close_ls)
            qs_buf_append_char(b, '\n');
        ls = le + 1;
    }
    size_t stop = close_ls + indent + mlen;
    while (lx->pos < stop)
        lx_adv(lx);
    return 0;
}

static int lex(struct parser *p)
{
    struct lexer lx = {.p = p, .s = p->text, .n = p->text_len, .eline = 1, .oline = 1};
    qs_buf b = QS_BUF_INIT;
    int rc = 0;
    while (lx.pos < lx.n) {
        char c = lx.s[lx.pos];
        if (is_space(c)) {
            lx_adv(&lx);
            continue;
        }
        if (c == '#') { /* a comment only at the start of a token, as in Caddy */
            while (lx.pos < lx.n && lx.s[lx.pos] != '\n')
                lx_adv(&lx);
            continue;
        }
        int eline = lx.eline;
        struct tok at = {.source = p->segs[lx.k].source, .line = lx.oline};
        enum tok_kind kind = TOK_WORD;
        qs_buf_reset(&b);
        if (c == '"') {
            lx_adv(&lx);
            for (;;) {
                if (lx.pos >= lx.n) {
                    rc = fail(p, &at, "unterminated quoted string");
                    goto out;
                }
                char ch = lx.s[lx.pos];
                /* Only \" and \<newline> are escapes; any other backslash is kept. */
                if (ch == '\\' && lx.pos + 1 < lx.n &&
                    (lx.s[lx.pos + 1] == '"' || lx.s[lx.pos + 1] == '\n')) {
                    lx_adv(&lx);
                    qs_buf_append_char(&b, lx.s[lx.pos]);
                    lx_adv(&lx);
                    continue;
                }
                lx_adv(&lx);
                if (ch == '"')
                    break;
                qs_buf_append_char(&b, ch);
            }
        } else if (c == '`') {
            lx_adv(&lx);
            for (;;) {
                if (lx.pos >= lx.n) {
                    rc = fail(p, &at, "unterminated backtick string");
                    goto out;
                }
                char ch = lx.s[lx.pos];
                lx_adv(&lx);
                if (ch == '`')
                    break;
                qs_buf_append_char(&b, ch);
            }
        } else {
            int h = 1;
            if (c == '<' && lx.pos + 1 < lx.n && lx.s[lx.pos + 1] == '<') {
                h = lex_heredoc(&lx, &b, &at);
                if (h < 0) {
                    rc = -1;
                    goto out;
                }
            }
            if (h == 1) {
                while (lx.pos < lx.n && !is_space(lx.s[lx.pos])) {
                    qs_buf_append_char(&b, lx.s[lx.pos]);
                    lx_adv(&lx);
                }
                if (b.len == 1 && b.p[0] == '{')
                    kind = TOK_OPEN;
                else if (b.len == 1 && b.p[0] == '}')
                    kind = TOK_CLOSE;
            }
        }
        push_tok(p, &b, kind, eline, lx.eline, at.source, at.line);
    }
out:
    qs_buf_free(&b);
    return rc;
}

/*
 * Replaces `{env.NAME}` placeholders inside a token (unset → empty). This runs after
 * tokenizing so that a value with spaces or newlines (a PEM key) stays one token, which is
 * what the reference gets from Caddy's runtime replacer.
 */
static void replace_env_placeholders(struct parser *p, struct tok *t)
{
    if (t->kind != TOK_WORD || !strstr(t->text, "{env."))
        return;
    qs_buf out = QS_BUF_INIT;
    const char *s = t->text;
    for (;;) {
        const char *ph = strstr(s, "{env.");
        const char *end = ph ? strchr(ph + 5, '}') : NULL;
        if (!end) {
            qs_buf_append_str(&out, s);
            break;
        }
        qs_buf_append(&out, s, (size_t)(ph - s));
        char *name = qs_xstrndup(ph + 5, (size_t)(end - ph - 5));
        const char *v = env_get(p, name);
        if (!t->env)
            t->env = intern_var_name(p, name, strlen(name));
        free(name);
        if (v)
            qs_buf_append_str(&out, v);
        s = end + 1;
    }
    OPENSSL_cleanse(t->text, strlen(t->text));
    free(t->text);
    t->text = qs_buf_steal(&out);
}

/*-------- Line and block walking --------*/

/* True when token i continues the line of token i-1. */
static bool same_line(const struct parser *p, size_t i)
{
    return i > 0 && i < p->n_toks && p->toks[i].eline == p->toks[i - 1].eline_end;
}

/* After '{' nothing but '}' may follow on the same line (Caddy has no one-line blocks). */
static int check_after_open(struct parser *p, size_t open)
{
    if (open + 1 < p->n_toks && same_line(p, open + 1) && p->toks[open + 1].kind != TOK_CLOSE)
        return failval(p, &p->toks[open + 1], p->toks[open + 1].text,
                       "a block's content must start on the line after '{'; found");
    return 0;
}

/* Reads the tokens of one line from p->pos (a word), up to the end of the line, a '{' that
 * opens a block, or a '}' that closes the enclosing one. */
static int read_line(struct parser *p, struct line *ln)
{
    size_t i = p->pos;
    *ln = (struct line){.first = i};
    while (i < p->n_toks) {
        const struct tok *t = &p->toks[i];
        if (ln->n > 0 && !same_line(p, i))
            break;
        if (t->kind == TOK_CLOSE)
            break;
        if (t->kind == TOK_OPEN) {
            if (check_after_open(p, i) < 0)
                return -1;
            ln->block = true;
            ln->open = i++;
            break;
        }
        ln->n++;
        i++;
    }
    p->pos = i;
    return 0;
}

typedef int (*line_fn)(struct parser *p, const struct line *ln, void *ud);

/*
 * Walks the lines of a block whose '{' (index open) was just consumed, calling fn on each,
 * and consumes the matching '}'. With open == NO_TOK it walks to the end of the input (the
 * body of a site written without braces). fn must consume any block its line opens.
 */
static int walk_block(struct parser *p, size_t open, line_fn fn, void *ud)
{
    const struct tok *ot = open == NO_TOK ? NULL : &p->toks[open];
    if (++p->depth > MAX_DEPTH)
        return fail(p, ot, "blocks are nested too deeply (more than %d levels)", MAX_DEPTH);
    for (;;) {
        if (p->pos >= p->n_toks) {
            if (!ot)
                break;
            return fail(p, ot, "'{' is never closed: missing '}'");
        }
        const struct tok *t = &p->toks[p->pos];
        if (t->kind == TOK_CLOSE) {
            if (!ot)
                return fail(p, t, "unexpected '}'");
            p->pos++;
            if (same_line(p, p->pos))
                return failval(p, &p->toks[p->pos], p->toks[p->pos].text,
                               "unexpected token after '}' on the same line");
            break;
        }
        if (t->kind == TOK_OPEN)
            return fail(p, t,
                        "unexpected '{': a block must open at the end of its directive's line");
        struct line ln;
        if (read_line(p, &ln) < 0 || fn(p, &ln, ud) < 0)
            return -1;
    }
    p->depth--;
    return 0;
}

static int skip_line(struct parser *p, const struct line *ln, void *ud)
{
    return ln->block ? walk_block(p, ln->open, skip_line, ud) : 0;
}

static inline const struct tok *ltok(const struct parser *p, const struct line *ln, size_t i)
{
    return &p->toks[ln->first + i];
}

static inline size_t nargs(const struct line *ln)
{
    return ln->n - 1;
}

static inline const char *arg(const struct parser *p, const struct line *ln, size_t i)
{
    return p->toks[ln->first + 1 + i].text;
}

/*-------- Value parsers --------*/

/* Decimal integer with an optional '-'; nothing else allowed. */
static int parse_ll(const char *s, long long *out)
{
    const char *q = s;
    bool neg = *q == '-';
    if (neg)
        q++;
    if (!isdigit((unsigned char)*q))
        return -1;
    unsigned long long v = 0;
    for (; *q; q++) {
        if (!isdigit((unsigned char)*q))
            return -1;
        unsigned d = (unsigned)(*q - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
        return -1;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

int qs_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1ULL},
        {"us", 1000ULL},
        {"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000ULL}, /* U+03BC Greek mu */
        {"ms", 1000000ULL},
        {"s", 1000000000ULL},
        {"m", 60000000000ULL},
        {"h", 3600000000000ULL},
        {"d", 86400000000000ULL}, /* Caddy's extension to Go's syntax */
    };
    const uint64_t max = (uint64_t)INT64_MAX; /* Go's time.Duration range */
    if (!s || !*s)
        return -1;
    const char *q = s;
    if (*q == '+')
        q++;
    if (strcmp(q, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    if (!*q)
        return -1;
    uint64_t total = 0;
    while (*q) {
        uint64_t v = 0, f = 0;
        double scale = 1;
        bool digits = false;
        for (; isdigit((unsigned char)*q); q++) {
            unsigned d = (unsigned)(*q - '0');
            if (v > (max - d) / 10)
                return -1;
            v = v * 10 + d;
            digits = true;
        }
        if (*q == '.') {
            q++;
            for (; isdigit((unsigned char)*q); q++) {
                digits = true;
                if (f < 100000000000000000ULL) { /* further digits are below a nanosecond */
                    f = f * 10 + (unsigned)(*q - '0');
                    scale *= 10;
                }
            }
        }
        if (!digits)
            return -1;
        const char *u = q;
        while (*q && *q != '.' && !isdigit((unsigned char)*q))
            q++;
        size_t ulen = (size_t)(q - u);
        uint64_t unit = 0;
        for (size_t i = 0; i < QS_ARRAY_LEN(units); i++)
            if (strlen(units[i].name) == ulen && memcmp(units[i].name, u, ulen) == 0)
                unit = units[i].ns;
        if (!unit)
            return -1; /* missing or unknown unit */
        if (v > max / unit)
            return -1;
        v *= unit;
        if (f) {
            double extra = (double)f * ((double)unit / scale);
            if (extra >= (double)(max - v))
                return -1;
            v += (uint64_t)extra;
        }
        if (v > max - total)
            return -1;
        total += v;
    }
    /* Rounded up so that a tiny non-zero duration never turns into 0, which means "off". */
    *out_ms = total / 1000000 + (total % 1000000 != 0);
    return 0;
}

int qs_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1000ULL},
        {"kb", 1000ULL},
        {"ki", 1ULL << 10},
        {"kib", 1ULL << 10},
        {"m", 1000000ULL},
        {"mb", 1000000ULL},
        {"mi", 1ULL << 20},
        {"mib", 1ULL << 20},
        {"g", 1000000000ULL},
        {"gb", 1000000000ULL},
        {"gi", 1ULL << 30},
        {"gib", 1ULL << 30},
        {"t", 1000000000000ULL},
        {"tb", 1000000000000ULL},
        {"ti", 1ULL << 40},
        {"tib", 1ULL << 40},
        {"p", 1000000000000000ULL},
        {"pb", 1000000000000000ULL},
        {"pi", 1ULL << 50},
        {"pib", 1ULL << 50},
        {"e", 1000000000000000000ULL},
        {"eb", 1000000000000000000ULL},
        {"ei", 1ULL << 60},
        {"eib", 1ULL << 60},
    };
    if (!s)
        return -1;
    /* go-humanize's ParseBytes: a number (digits, '.', ',' separators), optional spaces, and
     * a case-insensitive unit; decimal and binary multiples. */
    char num[64];
    size_t n = 0, i = 0;
    int dots = 0, digits = 0;
    for (; isdigit((unsigned char)s[i]) || s[i] == '.' || s[i] == ','; i++) {
        if (s[i] == ',')
            continue;
        if (n + 1 >= sizeof(num))
            return -1;
        dots += s[i] == '.';
        digits += s[i] != '.';
        num[n++] = s[i];
    }
    num[n] = '\0';
    if (!digits || dots > 1)
        return -1;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    char unit[4];
    size_t ulen = 0;
    for (; s[i] && s[i] != ' ' && s[i] != '\t'; i++) {
        if (ulen + 1 >= sizeof(unit))
            return -1;
        unit[ulen++] = (char)tolower((unsigned char)s[i]);
    }
    unit[ulen] = '\0';
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    if (s[i])
        return -1;
    uint64_t mult = 0;
    for (size_t k = 0; k < QS_ARRAY_LEN(units); k++)
        if (strcmp(units[k].name, unit) == 0)
            mult = units[k].mult;
    if (!mult)
        return -1;
    if (!dots) { /* exact integer arithmetic: doubles lose precision above 2^53 */
        uint64_t v = 0;
        for (size_t k = 0; k < n; k++) {
            unsigned d = (unsigned)(num[k] - '0');
            if (v > (UINT64_MAX - d) / 10)
                return -1;
            v = v * 10 + d;
        }
        if (v && v > UINT64_MAX / mult)
            return -1;
        *out = v * mult;
        return 0;
    }
    long double v = strtold(num, NULL) * (long double)mult;
    if (!(v < 18446744073709551616.0L)) /* 2^64 */
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/*-------- Site addresses --------*/

/* More addresses than any real site lists; bounds the pairwise checks on hostile input. */
#define MAX_SITE_ADDRESSES 256

enum scheme { SCHEME_NONE, SCHEME_HTTP, SCHEME_HTTPS };

/* A site address as written. Whether it uses TLS, and its port when none is written, depend
 * on the site's `tls` directive, so it becomes a listener once the whole site is read. */
struct site_addr {
    char *address;
    char *host; /* as written, without IPv6 brackets; "" when absent */
    int port;   /* -1 when absent */
    enum scheme scheme;
    struct tok at; /* source and line only, for errors */
};

/* IPv4, or IPv6 with an optional %zone. */
static bool is_ip_literal(const char *h)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, h, buf) == 1)
        return true;
    const char *zone = strchr(h, '%');
    char *tmp = qs_xstrndup(h, zone ? (size_t)(zone - h) : strlen(h));
    bool ok = inet_pton(AF_INET6, tmp, buf) == 1;
    free(tmp);
    return ok;
}

/* Checks one address's syntax and records it; see resolve_listeners() for its meaning. */
static int add_site_address(struct parser *p, const struct tok *t, const char *addr)
{
    const char *what = "site address";
    if (!*addr)
        return fail(p, t, "%s: empty site address", what);
    if (p->n_addrs == MAX_SITE_ADDRESSES)
        return failval(p, t, addr, "%s: more than %d site addresses", what, MAX_SITE_ADDRESSES);
    const char *rest = addr;
    enum scheme scheme = SCHEME_NONE;
    const char *sep = strstr(addr, "://");
    if (sep) {
        size_t sl = (size_t)(sep - addr);
        if (sl == 5 && strncasecmp(addr, "https", 5) == 0)
            scheme = SCHEME_HTTPS;
        else if (sl == 4 && strncasecmp(addr, "http", 4) == 0)
            scheme = SCHEME_HTTP;
        else
            return failval(p, t, addr, "%s: unsupported scheme (http:// or https://)", what);
        rest = sep + 3;
    }
    const char *slash = strchr(rest, '/');
    size_t hp_len = slash ? (size_t)(slash - rest) : strlen(rest);
    if (slash && strcmp(slash, "/") != 0)
        return failval(p, t, addr, "%s: paths in site addresses are not supported", what);

    char *hp = qs_xstrndup(rest, hp_len);
    char *host = NULL;
    const char *port_s = NULL;
    int rc = -1;
    if (hp[0] == '[') {
        char *rb = strchr(hp, ']');
        if (!rb) {
            failval(p, t, addr, "%s: missing ']' in IPv6 address", what);
            goto out;
        }
        host = qs_xstrndup(hp + 1, (size_t)(rb - hp - 1));
        if (rb[1] == ':')
            port_s = rb + 2;
        else if (rb[1]) {
            failval(p, t, addr, "%s: invalid site address", what);
            goto out;
        }
        if (!strchr(host, ':') || !is_ip_literal(host)) {
            failval(p, t, addr, "%s: invalid IPv6 address", what);
            goto out;
        }
    } else {
        char *colon = strchr(hp, ':');
        if (colon && strchr(colon + 1, ':')) {
            failval(p, t, addr, "%s: IPv6 addresses must be written in brackets", what);
            goto out;
        }
        host = qs_xstrndup(hp, colon ? (size_t)(colon - hp) : strlen(hp));
        if (colon)
            port_s = colon + 1;
        for (const char *c = host; *c; c++)
            if (!isalnum((unsigned char)*c) && !strchr(".-_*", *c)) {
                failval(p, t, addr, "%s: invalid host name", what);
                goto out;
            }
    }
    long long port = -1;
    if (port_s &&
        (parse_ll(port_s, &port) < 0 || port_s[0] == '-' || port > 65535 || strlen(port_s) > 5)) {
        failval(p, t, addr, "%s: invalid port (0 to 65535)", what);
        goto out;
    }
    /* Caddy refuses these too: the scheme and the port would say opposite things. */
    if (scheme == SCHEME_HTTPS && port == 80) {
        failval(p, t, addr, "%s: https:// on port 80, the plain HTTP port", what);
        goto out;
    }
    if (scheme == SCHEME_HTTP && port == 443) {
        failval(p, t, addr, "%s: http:// on port 443, the TLS port", what);
        goto out;
    }
    p->addrs = qs_xrealloc(p->addrs, (p->n_addrs + 1) * sizeof(*p->addrs));
    p->addrs[p->n_addrs++] = (struct site_addr){
        .address = qs_xstrdup(addr),
        .host = host,
        .port = (int)port,
        .scheme = scheme,
        .at = {.source = t->source, .line = t->line},
    };
    host = NULL;
    rc = 0;
out:
    free(hp);
    free(host);
    return rc;
}

/* Site addresses are separated by spaces and/or commas, within a token too: a value
 * substituted from SERVER_NAME can hold several. */
static int add_site_addresses(struct parser *p, const struct tok *t, const char *text)
{
    const char *a = text;
    for (;;) {
        while (*a == ',' || is_space(*a))
            a++;
        if (!*a)
            return 0;
        size_t n = 0;
        while (a[n] && a[n] != ',' && !is_space(a[n]))
            n++;
        char *one = qs_xstrndup(a, n);
        int rc = add_site_address(p, t, one);
        free(one);
        if (rc < 0)
            return -1;
        a += n;
    }
}

static char *escaped(const char *s)
{
    qs_buf b = QS_BUF_INIT;
    append_escaped(&b, s);
    return qs_buf_steal(&b);
}

/*
 * Turns the site's addresses into listeners, once the site's `tls` directive is known.
 *
 * TLS: `https://` → TLS, port 443 unless written; `http://` → plain, port 80 unless written;
 * no scheme: port 443 → TLS, port 80 → plain, another port or none → TLS when the site has a
 * `tls` directive, else plain (no port: 443 with `tls`, 80 without). A TLS listener needs
 * `tls CERT_FILE KEY_FILE` or `tls internal`: Quicksilver does not speak ACME. This differs
 * from Caddy's automatic HTTPS, which turns TLS on for any address naming a host or an IP on
 * a port other than 80 (so `localhost` and `example.com` mean HTTPS on 443 there, with
 * certificates Caddy fetches or issues itself and a redirect from port 80): here such an
 * address is plain HTTP on port 80 unless the site says `tls`, and no redirect is added.
 *
 * Where to bind: like Caddy, a host name is a virtual-host name, not a bind address, so the
 * hub listens on every interface, except for an IP literal (bound as given) and for
 * "localhost" with an explicit port (bound to localhost). A bare "localhost" (the reference's
 * default SERVER_NAME) listens everywhere, which is what containers expect.
 *
 * Two addresses naming the same host (as written, ignoring case) on the same port are an
 * error; so is one port serving TLS for one address and plain HTTP for another. Port 0 picks
 * a free port for each listener, so it is exempt from both.
 */
static int resolve_listeners(struct parser *p)
{
    qs_config *cfg = p->cfg;
    bool have_tls = p->tls_idx != NO_TOK;
    cfg->listeners = qs_xcalloc(p->n_addrs, sizeof(*cfg->listeners));
    for (size_t i = 0; i < p->n_addrs; i++) {
        const struct site_addr *a = &p->addrs[i];
        bool tls = a->scheme == SCHEME_HTTPS ||
                   (a->scheme == SCHEME_NONE && (a->port == 443 || (a->port != 80 && have_tls)));
        int port = a->port >= 0 ? a->port : tls ? 443 : 80;
        if (tls && !have_tls)
            return failval(p, &a->at, a->address,
                           "site address: %s is served over TLS, which needs a certificate: add "
                           "tls CERT_FILE KEY_FILE or tls internal to the site block (Quicksilver "
                           "cannot get certificates from ACME)",
                           a->scheme == SCHEME_HTTPS ? "https://" : "port 443");
        for (size_t j = 0; j < i; j++) {
            const qs_config_listener *o = &cfg->listeners[j];
            if (o->port != port || port == 0)
                continue;
            char *other = escaped(o->address);
            int rc = 0;
            if (strcasecmp(p->addrs[j].host, a->host) == 0)
                rc = failval(p, &a->at, a->address,
                             "site address: same host and port as \"%s\" (%s:%d)", other, o->source,
                             o->line);
            else if (o->tls != tls)
                rc = failval(p, &a->at, a->address,
                             "site address: port %d is %s for \"%s\" (%s:%d): one port cannot "
                             "serve both TLS and plain HTTP",
                             port, o->tls ? "TLS" : "plain HTTP", other, o->source, o->line);
            free(other);
            if (rc < 0)
                return -1;
        }
        qs_config_listener *l = &cfg->listeners[cfg->n_listeners++];
        l->address = qs_xstrdup(a->address);
        if (*a->host &&
            (is_ip_literal(a->host) || (a->port >= 0 && strcasecmp(a->host, "localhost") == 0)))
            l->host = qs_xstrdup(a->host);
        l->port = port;
        l->tls = tls;
        l->source = qs_xstrdup(a->at.source);
        l->line = a->at.line;
    }

    /* A listener that can speak none of the protocols would refuse every client. */
    if (p->protocols_idx != NO_TOK) {
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            const qs_config_listener *l = &cfg->listeners[i];
            if (l->tls ? cfg->proto_h1 || cfg->proto_h2 : cfg->proto_h1 || cfg->proto_h2c)
                continue;
            char *addr = escaped(l->address);
            fail(p, &p->toks[p->protocols_idx],
                 "protocols: the %s listener \"%s\" (%s:%d) needs h1 or %s",
                 l->tls ? "TLS" : "plain HTTP", addr, l->source, l->line, l->tls ? "h2" : "h2c");
            free(addr);
            return -1;
        }
    }

    const qs_config_listener *first = &cfg->listeners[0];
    cfg->site_address = qs_xstrdup(first->address);
    cfg->listen_host = first->host ? qs_xstrdup(first->host) : NULL;
    cfg->listen_port = first->port;
    return 0;
}

/*-------- Directives of the mercure block --------*/

enum dtype { V_NONE, V_BOOL, V_STR, V_STRS, V_MS, V_BYTES, V_LONG, V_INT };

struct directive;
typedef int (*directive_fn)(struct parser *p, const struct directive *d, const struct line *ln);

/* One directive: how its value is stored (drives the default and the generic handler), its
 * bounds, and an optional handler for the irregular ones. */
struct directive {
    const char *name;
    enum dtype type;
    size_t off, off2; /* field; off2: count of a V_STRS list, or the JWT algorithm */
    long long def, min, max;
    directive_fn fn; /* NULL: generic handling by type */
    bool block;      /* accepts a `{ … }` block */
    const char *doc;
};

#define F(field) offsetof(qs_config, field)

static int h_jwt(struct parser *p, const struct directive *d, const struct line *ln);
static int h_jwks(struct parser *p, const struct directive *d, const struct line *ln);
static int h_protocol(struct parser *p, const struct directive *d, const struct line *ln);
static int h_transport(struct parser *p, const struct directive *d, const struct line *ln);
static int h_transport_url(struct parser *p, const struct directive *d, const struct line *ln);
static int h_tsc(struct parser *p, const struct directive *d, const struct line *ln);
static int h_workers(struct parser *p, const struct directive *d, const struct line *ln);

#define KIB 1024LL
#define MIB (1024LL * 1024)

static const struct directive directives[] = {
    {"publisher_jwt", V_STR, F(publisher_key), F(publisher_alg), 0, 0, 0, h_jwt, false,
     "<key> [alg]: key (or PEM) to verify publishers' JWTs; alg defaults to HS256"},
    {"subscriber_jwt", V_STR, F(subscriber_key), F(subscriber_alg), 0, 0, 0, h_jwt, false,
     "<key> [alg]: key (or PEM) to verify subscribers' JWTs; alg defaults to HS256"},
    {"publisher_jwks_url", V_STR, F(publisher_jwks_url), 0, 0, 0, 0, h_jwks, false,
     "<https://…|http://…|file://…>: JWK Set for publishers' JWTs, kept up to date"},
    {"subscriber_jwks_url", V_STR, F(subscriber_jwks_url), 0, 0, 0, 0, h_jwks, false,
     "<https://…|http://…|file://…>: JWK Set for subscribers' JWTs, kept up to date"},
    {"jwks_refresh_interval", V_MS, F(jwks_refresh_ms), 0, 300000, 1000, 0, NULL, false,
     "<duration>: how often JWK Sets are fetched again (default 5m)"},
    {"jwks_min_refresh_interval", V_MS, F(jwks_min_refresh_ms), 0, 30000, 1000, 0, NULL, false,
     "<duration>: least time between two fetches of a JWK Set, for unknown kids and retries"},
    {"jwks_ca_file", V_STR, F(jwks_ca_file), 0, 0, 0, 0, NULL, false,
     "<file>: PEM CA certificates to verify HTTPS JWK Set servers (default: the system's)"},
    {"anonymous", V_BOOL, F(anonymous), 0, 0, 0, 0, NULL, false,
     "allow subscribers without a JWT (public updates only)"},
    {"publish_origins", V_STRS, F(publish_origins), F(n_publish_origins), 0, 0, 0, NULL, false,
     "<origin>…: origins allowed to publish with the authorization cookie"},
    {"cors_origins", V_STRS, F(cors_origins), F(n_cors_origins), 0, 0, 0, NULL, false,
     "<origin>…: origins allowed by CORS (`*` for any)"},
    {"cookie_name", V_STR, F(cookie_name), 0, 0, 0, 0, NULL, false,
     "<name>: authorization cookie (default mercureAuthorization)"},
    {"subscriptions", V_BOOL, F(subscriptions), 0, 0, 0, 0, NULL, false,
     "publish subscription events and serve the subscription API"},
    {"ui", V_BOOL, F(ui), 0, 0, 0, 0, NULL, false, "serve the UI"},
    {"demo", V_BOOL, F(demo), 0, 0, 0, 0, NULL, false, "serve the UI and the demo endpoints"},
    {"name", V_STR, F(hub_name), 0, 0, 0, 0, NULL, false,
     "<name>: hub name for health endpoints (default \"default\")"},
    {"protocol_version_compatibility", V_INT, F(protocol_version_compatibility), 0, 0, 7, 7,
     h_protocol, false, "7: accept the protocol's version 7 (draft-07) clients"},
    {"heartbeat", V_MS, F(heartbeat_ms), 0, 40000, 0, 0, NULL, false,
     "<duration>: comment sent after this idle time (0 disables)"},
    {"write_timeout", V_MS, F(write_timeout_ms), 0, 600000, 0, 0, NULL, false,
     "<duration>: maximum lifetime of a subscription (0 disables)"},
    {"dispatch_timeout", V_MS, F(dispatch_timeout_ms), 0, 5000, 0, 0, NULL, false,
     "<duration>: maximum time to deliver one update (0 disables)"},
    {"transport_url", V_NONE, 0, 0, 0, 0, 0, h_transport_url, false,
     "<url>: transport as a URL (deprecated in the reference)"},
    {"transport", V_NONE, 0, 0, 0, 0, 0, h_transport, true,
     "<name> [{ options }]: local, bolt, lmdb, redis, postgres, kafka or pulsar"},
    {"topic_selector_cache", V_LONG, F(topic_selector_cache), 0, 100000, 0, 0, h_tsc, false,
     "<entries> [shards]: topic-matching cache; <= 0 keeps the default (as the reference)"},
    {"subscriber_list_cache_size", V_LONG, F(subscriber_list_cache_size), 0, 100000, 0, LLONG_MAX,
     NULL, false, "<n>: accepted for compatibility"},
    {"workers", V_INT, F(workers), 0, 0, 1, 1024, h_workers, false,
     "<n>|auto: worker threads (default: one per CPU)"},
    {"max_request_body_size", V_BYTES, F(max_request_body_size), 0, 1 * MIB, 0, 0, NULL, false,
     "<size>: largest publish body (0: no limit)"},
    {"max_header_size", V_BYTES, F(max_header_size), 0, 64 * KIB, 1024, 0, NULL, false,
     "<size>: largest request line + headers"},
    {"max_topics", V_LONG, F(max_topics), 0, 1000, 1, 100000, NULL, false,
     "<n>: most topics per subscribe and per publish"},
    {"max_connections", V_LONG, F(max_connections), 0, 0, 0, LLONG_MAX, NULL, false,
     "<n>: most simultaneous connections (0: from the open-file limit)"},
    {"subscriber_queue_size", V_LONG, F(subscriber_queue_size), 0, 1000, 1, LLONG_MAX, NULL, false,
     "<n>: updates queued for a subscriber before it is disconnected"},
    {"subscriber_queue_bytes", V_BYTES, F(subscriber_queue_bytes), 0, 16 * MIB, 1024, 0, NULL,
     false, "<size>: bytes queued for a subscriber before it is disconnected"},
    {"request_timeout", V_MS, F(request_timeout_ms), 0, 30000, 1, 0, NULL, false,
     "<duration>: time allowed to receive a whole request"},
    {"idle_timeout", V_MS, F(idle_timeout_ms), 0, 120000, 1, 0, NULL, false,
     "<duration>: keep-alive time between requests"},
    {"max_selector_length", V_BYTES, F(max_selector_length), 0, 4 * KIB, 0, 0, NULL, false,
     "<size>: longest URI-template topic selector of a subscriber (0: no limit)"},
    {"max_selector_expressions", V_LONG, F(max_selector_expressions), 0, 64, 0, LLONG_MAX, NULL,
     false, "<n>: most {…} expressions in one topic selector (0: no limit)"},
    {"max_selector_states", V_LONG, F(max_selector_states), 0, 1024, 0, LLONG_MAX, NULL, false,
     "<n>: largest automaton of one URI-template selector, in states (0: no limit)"},
    {"max_subscriber_states", V_LONG, F(max_subscriber_states), 0, 4096, 0, LLONG_MAX, NULL, false,
     "<n>: states of all of a subscriber's URI templates, each rounded up to 64 (0: no "
     "limit)"},
};

#define FIELD(cfg, off, type) ((type *)(void *)((char *)(cfg) + (off)))

void qs_config_defaults(qs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < QS_ARRAY_LEN(directives); i++) {
        const struct directive *d = &directives[i];
        switch (d->type) {
        case V_MS:
        case V_BYTES:
            *FIELD(cfg, d->off, uint64_t) = (uint64_t)d->def;
            break;
        case V_LONG:
            *FIELD(cfg, d->off, long) = (long)d->def;
            break;
        case V_INT:
            *FIELD(cfg, d->off, int) = (int)d->def;
            break;
        default:
            break;
        }
    }
    cfg->proto_h1 = cfg->proto_h2 = true;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void transport_clear(qs_config_transport *t)
{
    for (size_t i = 0; i < t->n_options; i++) {
        free(t->options[i].key);
        free_strv(t->options[i].values, t->options[i].n_values);
        free(t->options[i].source);
    }
    free(t->options);
    free(t->name);
    free_secret(t->url); /* a DSN can carry a password */
    free(t->source);
    memset(t, 0, sizeof(*t));
}

void qs_config_free(qs_config *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        free(cfg->listeners[i].address);
        free(cfg->listeners[i].host);
        free(cfg->listeners[i].source);
    }
    free(cfg->listeners);
    free(cfg->site_address);
    free(cfg->listen_host);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->tls_source);
    free_secret(cfg->publisher_key);
    free(cfg->publisher_alg);
    free_secret(cfg->subscriber_key);
    free(cfg->subscriber_alg);
    free(cfg->publisher_jwks_url);
    free(cfg->subscriber_jwks_url);
    free(cfg->jwks_ca_file);
    free_strv(cfg->publish_origins, cfg->n_publish_origins);
    free_strv(cfg->cors_origins, cfg->n_cors_origins);
    free(cfg->cookie_name);
    free(cfg->hub_name);
    transport_clear(&cfg->transport);
    qs_config_defaults(cfg);
}

/* Checks the argument count: between min and max (max < 0: unbounded). */
static int want_args(struct parser *p, const struct line *ln, size_t min, long max)
{
    const char *name = ltok(p, ln, 0)->text;
    if (nargs(ln) < min)
        return fail(p, ltok(p, ln, 0), "%s: missing value", name);
    if (max >= 0 && nargs(ln) > (size_t)max) {
        /* Quote every argument: "heartbeat 4O s" is one mistyped value, not two. */
        qs_buf all = QS_BUF_INIT;
        for (size_t i = 0; i < nargs(ln); i++) {
            if (i)
                qs_buf_append_char(&all, ' ');
            qs_buf_append_str(&all, arg(p, ln, i));
        }
        int rc = max == 0
                     ? failval(p, ltok(p, ln, 1), qs_buf_cstr(&all), "%s: takes no value", name)
                     : failval(p, ltok(p, ln, 1), qs_buf_cstr(&all), "%s: expected %s%ld value%s",
                               name, max == (long)min ? "" : "at most ", max, max == 1 ? "" : "s");
        qs_buf_free(&all);
        return rc;
    }
    return 0;
}

static int h_generic(struct parser *p, const struct directive *d, const struct line *ln)
{
    qs_config *cfg = p->cfg;
    const char *name = d->name;
    const struct tok *at = nargs(ln) ? ltok(p, ln, 1) : ltok(p, ln, 0);
    if (d->type == V_BOOL) {
        if (want_args(p, ln, 0, 0) < 0)
            return -1;
        *FIELD(cfg, d->off, bool) = true;
        return 0;
    }
    if (d->type == V_STRS) {
        if (want_args(p, ln, 1, -1) < 0)
            return -1;
        for (size_t i = 0; i < nargs(ln); i++)
            if (!*arg(p, ln, i))
                return fail(p, ltok(p, ln, 1 + i), "%s: empty value", name);
        char ***v = FIELD(cfg, d->off, char **);
        size_t *n = FIELD(cfg, d->off2, size_t);
        free_strv(*v, *n); /* a repeated directive replaces the list, as in Caddy */
        *v = qs_xcalloc(nargs(ln), sizeof(char *));
        for (size_t i = 0; i < nargs(ln); i++)
            (*v)[i] = qs_xstrdup(arg(p, ln, i));
        *n = nargs(ln);
        return 0;
    }
    if (want_args(p, ln, 1, 1) < 0)
        return -1;
    const char *v = arg(p, ln, 0);
    switch (d->type) {
    case V_STR: {
        if (!*v)
            return fail(p, at, "%s: empty value", name);
        char **f = FIELD(cfg, d->off, char *);
        free(*f);
        *f = qs_xstrdup(v);
        return 0;
    }
    case V_MS: {
        uint64_t ms;
        if (qs_parse_duration_ms(v, &ms) < 0)
            return failval(p, at, v, "%s: invalid duration", name);
        if (d->min > 1 && ms < (uint64_t)d->min)
            return failval(p, at, v, "%s: must be at least %lldms", name, d->min);
        if (d->min > 0 && ms < (uint64_t)d->min)
            return failval(p, at, v, "%s: must be greater than 0", name);
        *FIELD(cfg, d->off, uint64_t) = ms;
        return 0;
    }
    case V_BYTES: {
        uint64_t n;
        if (qs_parse_size(v, &n) < 0)
            return failval(p, at, v, "%s: invalid size", name);
        if (n < (uint64_t)d->min)
            return failval(p, at, v, "%s: must be at least %lld bytes", name, d->min);
        *FIELD(cfg, d->off, uint64_t) = n;
        return 0;
    }
    case V_LONG:
    case V_INT: {
        long long n;
        if (parse_ll(v, &n) < 0)
            return failval(p, at, v, "%s: invalid integer", name);
        if (n < d->min || n > d->max) {
            if (d->max == LLONG_MAX)
                return failval(p, at, v, "%s: must be at least %lld", name, d->min);
            return failval(p, at, v, "%s: must be between %lld and %lld", name, d->min, d->max);
        }
        if (d->type == V_LONG)
            *FIELD(cfg, d->off, long) = (long)n;
        else
            *FIELD(cfg, d->off, int) = (int)n;
        return 0;
    }
    default:
        return fail(p, at, "%s: internal error: no handler", name);
    }
}

static bool valid_alg(const char *alg)
{
    static const char *const algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                       "RS512", "PS256", "PS384", "PS512", "ES256",
                                       "ES384", "ES512", "EdDSA"};
    for (size_t i = 0; i < QS_ARRAY_LEN(algs); i++)
        if (strcmp(alg, algs[i]) == 0)
            return true;
    return false;
}

/* An unquoted key with a space spills into the algorithm argument: quote the value only
 * when it looks like an algorithm name, never a fragment of a secret. */
static bool alg_printable(const char *alg)
{
    size_t n = strlen(alg);
    if (n > 8)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)alg[i]))
            return false;
    return true;
}

static int h_jwt(struct parser *p, const struct directive *d, const struct line *ln)
{
    if (nargs(ln) == 0)
        return fail(p, ltok(p, ln, 0), "%s: missing key", d->name);
    if (nargs(ln) > 2)
        return fail(p, ltok(p, ln, 3),
                    "%s: too many arguments (expected a key and an optional algorithm; quote a "
                    "key that contains spaces)",
                    d->name);
    const char *key = arg(p, ln, 0);
    const char *alg = nargs(ln) == 2 ? arg(p, ln, 1) : "";
    if (*alg && !valid_alg(alg)) {
        const struct tok *at = ltok(p, ln, 2);
        if (alg_printable(alg) && at->env)
            return failval(p, at, alg, "%s: unsupported algorithm (from %s)", d->name, at->env);
        if (alg_printable(alg))
            return failval(p, at, alg, "%s: unsupported algorithm", d->name);
        return fail(p, ltok(p, ln, 2),
                    "%s: unsupported algorithm (value not shown: quote a key that contains "
                    "spaces)",
                    d->name);
    }
    char **kf = FIELD(p->cfg, d->off, char *), **af = FIELD(p->cfg, d->off2, char *);
    free_secret(*kf);
    free(*af);
    /* Empty values come from unset {env.…} placeholders: no key, default algorithm. */
    *kf = *key ? qs_xstrdup(key) : NULL;
    *af = *alg ? qs_xstrdup(alg) : NULL;
    if (d->off == F(publisher_key))
        p->pub_idx = ln->first;
    else
        p->sub_idx = ln->first;
    return 0;
}

static int h_jwks(struct parser *p, const struct directive *d, const struct line *ln)
{
    if (want_args(p, ln, 1, 1) < 0)
        return -1;
    const char *url = arg(p, ln, 0);
    size_t scheme = !strncasecmp(url, "https://", 8)  ? 8
                    : !strncasecmp(url, "http://", 7) ? 7
                    : !strncasecmp(url, "file://", 7) ? 7
                                                      : 0;
    if (!scheme || !url[scheme])
        return failval(p, ltok(p, ln, 1), url,
                       "%s: a JWKS URL starts with https://, http:// or file://", d->name);
    /* file://HOST/path names another machine's file: only the local host is readable. */
    if (!strncasecmp(url, "file://", 7) && url[7] != '/' &&
        strncasecmp(url + 7, "localhost/", 10) != 0)
        return failval(p, ltok(p, ln, 1), url,
                       "%s: a file:// URL names a local file (file:///path)", d->name);
    char **f = FIELD(p->cfg, d->off, char *);
    free(*f);
    *f = qs_xstrdup(url);
    return 0;
}

static int h_protocol(struct parser *p, const struct directive *d, const struct line *ln)
{
    if (want_args(p, ln, 1, 1) < 0)
        return -1;
    if (strcmp(arg(p, ln, 0), "7") != 0)
        return failval(p, ltok(p, ln, 1), arg(p, ln, 0), "%s: only version 7 is supported",
                       d->name);
    p->cfg->protocol_version_compatibility = 7;
    return 0;
}

static int h_tsc(struct parser *p, const struct directive *d, const struct line *ln)
{
    if (want_args(p, ln, 1, 2) < 0)
        return -1;
    long long n;
    for (size_t i = 0; i < nargs(ln); i++)
        if (parse_ll(arg(p, ln, i), &n) < 0)
            return failval(p, ltok(p, ln, 1 + i), arg(p, ln, i), "%s: invalid integer", d->name);
    /* The reference takes one number and keeps its default for values <= 0; the optional
     * second number is the shard count of the stale 0.x docs syntax, accepted and unused. */
    parse_ll(arg(p, ln, 0), &n);
    if (n > 0)
        p->cfg->topic_selector_cache = n > LONG_MAX ? LONG_MAX : (long)n;
    return 0;
}

static int h_workers(struct parser *p, const struct directive *d, const struct line *ln)
{
    if (want_args(p, ln, 1, 1) < 0)
        return -1;
    const char *v = arg(p, ln, 0);
    long long n;
    if (strcmp(v, "auto") == 0) {
        n = 0;
    } else if (parse_ll(v, &n) < 0 || n < 0 || n > d->max) {
        return failval(p, ltok(p, ln, 1), v, "%s: must be auto, 0 or between %lld and %lld",
                       d->name, d->min, d->max);
    }
    p->cfg->workers = (int)n;
    return 0;
}

static int h_transport_url(struct parser *p, const struct directive *d, const struct line *ln)
{
    if (want_args(p, ln, 1, 1) < 0)
        return -1;
    if (p->transport_idx != NO_TOK)
        return fail(p, ltok(p, ln, 0), "%s: cannot be combined with transport (line %d)", d->name,
                    p->toks[p->transport_idx].line);
    const char *url = arg(p, ln, 0);
    if (!*url)
        return fail(p, ltok(p, ln, 1), "%s: empty value", d->name);
    qs_config_transport *t = &p->cfg->transport;
    transport_clear(t);
    t->url = qs_xstrdup(url);
    t->source = qs_xstrdup(ltok(p, ln, 0)->source);
    t->line = ltok(p, ln, 0)->line;
    p->transport_url_idx = ln->first;
    return 0;
}

static int transport_option(struct parser *p, const struct line *ln, void *ud)
{
    qs_config_transport *t = &p->cfg->transport;
    const struct tok *k = ltok(p, ln, 0);
    if (ln->block)
        return failval(p, k, k->text, "transport: an option cannot open a block");
    t->options = qs_xrealloc(t->options, (t->n_options + 1) * sizeof(*t->options));
    qs_config_option *o = &t->options[t->n_options++];
    o->key = qs_xstrdup(k->text);
    o->n_values = nargs(ln);
    o->values = qs_xcalloc(o->n_values ? o->n_values : 1, sizeof(char *));
    for (size_t i = 0; i < o->n_values; i++)
        o->values[i] = qs_xstrdup(arg(p, ln, i));
    o->source = qs_xstrdup(k->source);
    o->line = k->line;
    return 0;
}

static int h_transport(struct parser *p, const struct directive *d, const struct line *ln)
{
    static const char *const names[] = {"local",    "bolt",  "lmdb",  "redis",
                                        "postgres", "kafka", "pulsar"};
    if (want_args(p, ln, 1, 1) < 0)
        return -1;
    if (p->transport_url_idx != NO_TOK)
        return fail(p, ltok(p, ln, 0), "%s: cannot be combined with transport_url (line %d)",
                    d->name, p->toks[p->transport_url_idx].line);
    const char *name = arg(p, ln, 0);
    bool known = false;
    for (size_t i = 0; i < QS_ARRAY_LEN(names); i++)
        known |= strcmp(name, names[i]) == 0;
    if (!known)
        return failval(p, ltok(p, ln, 1), name,
                       "%s: unknown transport (local, bolt, lmdb, redis, postgres, kafka, "
                       "pulsar)",
                       d->name);
    qs_config_transport *t = &p->cfg->transport;
    transport_clear(t); /* a repeated transport replaces the previous one */
    t->name = qs_xstrdup(name);
    t->source = qs_xstrdup(ltok(p, ln, 0)->source);
    t->line = ltok(p, ln, 0)->line;
    p->transport_idx = ln->first;
    return ln->block ? walk_block(p, ln->open, transport_option, NULL) : 0;
}

/* Mercure 1.0 directives get a hint instead of a bare "unknown directive". */
static const char *v1_hint(const char *name)
{
    static const char *const v1[] = {"issuer",      "playground",          "debugger",
                                     "public_urls", "resource_identifier", "topic_matcher_cache"};
    for (size_t i = 0; i < QS_ARRAY_LEN(v1); i++)
        if (strcmp(name, v1[i]) == 0)
            return " (a Mercure 1.0 directive; Quicksilver implements the 0.x configuration)";
    return "";
}

static int mercure_line(struct parser *p, const struct line *ln, void *ud)
{
    const struct tok *t = ltok(p, ln, 0);
    const struct directive *d = NULL;
    for (size_t i = 0; i < QS_ARRAY_LEN(directives) && !d; i++)
        if (strcmp(directives[i].name, t->text) == 0)
            d = &directives[i];
    if (!d) {
        char *v = NULL;
        qs_buf b = QS_BUF_INIT;
        append_escaped(&b, t->text);
        v = qs_buf_steal(&b);
        fail(p, t, "unknown directive \"%s\"%s", v, v1_hint(t->text));
        free(v);
        return -1;
    }
    if (ln->block && !d->block)
        return fail(p, &p->toks[ln->open], "%s: unexpected block", d->name);
    return d->fn ? d->fn(p, d, ln) : h_generic(p, d, ln);
}

static int mercure_block(struct parser *p, const struct line *ln)
{
    const struct tok *t = ltok(p, ln, 0);
    if (p->have_mercure)
        return fail(p, t, "mercure: more than one mercure block (the first is at %s:%d)",
                    p->toks[p->mercure_idx].source, p->toks[p->mercure_idx].line);
    if (nargs(ln))
        return failval(p, ltok(p, ln, 1), arg(p, ln, 0),
                       "mercure: matchers and arguments are not supported");
    p->have_mercure = true;
    p->mercure_idx = ln->first;
    return ln->block ? walk_block(p, ln->open, mercure_line, NULL) : 0;
}

/*-------- Site and global blocks --------*/

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static int site_line(struct parser *p, const struct line *ln, void *ud);

/*
 * `tls CERT_FILE KEY_FILE` or `tls internal`. Certificates from ACME (an e-mail argument, an
 * options block) cannot be had: Quicksilver has no ACME client. The files are only named
 * here; reading them is the server's job (parsing stays pure).
 */
static int site_tls(struct parser *p, const struct line *ln)
{
    static const char *const usage = "use tls CERT_FILE KEY_FILE or tls internal";
    qs_config *cfg = p->cfg;
    const struct tok *t = ltok(p, ln, 0);
    if (p->inside_route)
        return failval(p, t, p->inside_route->text,
                       "tls: belongs at the top of the site block, not inside");
    if (p->tls_idx != NO_TOK)
        return fail(p, t, "tls: given twice (first at %s:%d)", p->toks[p->tls_idx].source,
                    p->toks[p->tls_idx].line);
    if (ln->block) {
        const struct tok *sub = &p->toks[ln->open + 1];
        if (ln->open + 1 < p->n_toks && sub->kind == TOK_WORD)
            return failval(p, sub, sub->text, "tls: options blocks are not supported (%s)", usage);
        if (walk_block(p, ln->open, skip_line, NULL) < 0) /* an empty block */
            return -1;
    }
    size_t n = nargs(ln);
    if (n == 0)
        return fail(p, t, "tls: missing value (%s)", usage);
    if (n > 2) {
        qs_buf all = QS_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            if (i)
                qs_buf_append_char(&all, ' ');
            qs_buf_append_str(&all, arg(p, ln, i));
        }
        int rc = failval(p, ltok(p, ln, 1), qs_buf_cstr(&all), "tls: too many values (%s)", usage);
        qs_buf_free(&all);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const struct tok *v = ltok(p, ln, 1 + i);
        if (*v->text)
            continue;
        const char *what = n == 1 ? "value" : i == 0 ? "certificate file" : "key file";
        if (v->env)
            return fail(p, v, "tls: empty %s (from %s)", what, v->env);
        return fail(p, v, "tls: empty %s", what);
    }
    if (n == 1) {
        const char *v = arg(p, ln, 0);
        if (strcmp(v, "internal") == 0) {
            cfg->tls_internal = true;
        } else if (strchr(v, '@') || strcmp(v, "force_automate") == 0) {
            return failval(p, ltok(p, ln, 1), v,
                           "tls: automatic certificates (ACME) are not supported: %s", usage);
        } else {
            return failval(p, ltok(p, ln, 1), v,
                           "tls: a certificate file needs its key file after it (%s)", usage);
        }
    } else {
        cfg->tls_cert_file = qs_xstrdup(arg(p, ln, 0));
        cfg->tls_key_file = qs_xstrdup(arg(p, ln, 1));
    }
    cfg->tls_source = qs_xstrdup(t->source);
    cfg->tls_line = t->line;
    p->tls_idx = ln->first;
    return 0;
}

static int site_line(struct parser *p, const struct line *ln, void *ud)
{
    /* Directives of the official Caddyfiles that only Caddy needs (compression, logging,
     * static responses…): accepted so those files work, and ignored. */
    static const char *const ignored[] = {"encode", "skip_log", "log_skip",    "respond",
                                          "redir",  "header",   "file_server", "request_body"};
    /* Route-like directives can hold the mercure block. */
    static const char *const nesting[] = {"route", "handle", "handle_path"};
    const char *name = ltok(p, ln, 0)->text;
    if (strcmp(name, "log") == 0) {
        /* Access logs: one line per request answered. Their options (the official
         * Caddyfile's filter that redacts the authorization parameter) are Caddy's; the
         * hub always redacts that parameter. */
        p->cfg->access_log = true;
        return skip_line(p, ln, ud);
    }
    if (strcmp(name, "mercure") == 0)
        return mercure_block(p, ln);
    if (strcmp(name, "tls") == 0)
        return site_tls(p, ln);
    if (in_list(name, nesting, QS_ARRAY_LEN(nesting))) {
        if (!ln->block)
            return 0;
        const struct tok *outer = p->inside_route;
        if (!outer)
            p->inside_route = ltok(p, ln, 0);
        int rc = walk_block(p, ln->open, site_line, ud);
        p->inside_route = outer;
        return rc;
    }
    if (name[0] == '@' || in_list(name, ignored, QS_ARRAY_LEN(ignored)))
        return skip_line(p, ln, ud); /* named matchers too: only ignored directives use them */
    return failval(p, ltok(p, ln, 0), name, "unknown site directive");
}

/*
 * `protocols h1 h2 h2c`, in the global options or in Caddy's `servers [LISTENER] { … }`.
 * One setting applies to every listener, so a second one must say the same.
 */
static int global_protocols(struct parser *p, const struct line *ln)
{
    qs_config *cfg = p->cfg;
    const struct tok *t = ltok(p, ln, 0);
    if (ln->block)
        return fail(p, &p->toks[ln->open], "protocols: unexpected block");
    if (nargs(ln) == 0)
        return fail(p, t, "protocols: missing value (h1, h2, h2c)");
    bool h1 = false, h2 = false, h2c = false;
    for (size_t i = 0; i < nargs(ln); i++) {
        const char *v = arg(p, ln, i);
        if (strcmp(v, "h1") == 0)
            h1 = true;
        else if (strcmp(v, "h2") == 0)
            h2 = true;
        else if (strcmp(v, "h2c") == 0)
            h2c = true;
        else if (strcmp(v, "h3") == 0)
            return failval(p, ltok(p, ln, 1 + i), v, "protocols: HTTP/3 is not supported");
        else
            return failval(p, ltok(p, ln, 1 + i), v, "protocols: unknown protocol (h1, h2, h2c)");
    }
    if (p->protocols_idx != NO_TOK) {
        if (h1 == cfg->proto_h1 && h2 == cfg->proto_h2 && h2c == cfg->proto_h2c)
            return 0;
        const struct tok *first = &p->toks[p->protocols_idx];
        return fail(p, t,
                    "protocols: differs from the protocols at %s:%d (one setting applies to "
                    "every listener)",
                    first->source, first->line);
    }
    cfg->proto_h1 = h1;
    cfg->proto_h2 = h2;
    cfg->proto_h2c = h2c;
    p->protocols_idx = ln->first;
    return 0;
}

/* `shutdown_delay 5s`, `grace_period 30s`. */
static int global_duration(struct parser *p, const struct line *ln, uint64_t *out)
{
    const char *name = ltok(p, ln, 0)->text;
    if (want_args(p, ln, 1, 1) < 0)
        return -1;
    if (ln->block)
        return fail(p, &p->toks[ln->open], "%s: unexpected block", name);
    if (qs_parse_duration_ms(arg(p, ln, 0), out) < 0)
        return failval(p, ltok(p, ln, 1), arg(p, ln, 0), "%s: invalid duration", name);
    return 0;
}

/* Inside `log [NAME] { … }`: `format json|console`, `output stderr`, `level LEVEL`. */
static int log_line(struct parser *p, const struct line *ln, void *ud)
{
    bool *json = ud;
    const struct tok *t = ltok(p, ln, 0);
    const char *name = t->text;
    if (ln->block)
        return fail(p, &p->toks[ln->open], "log: %s: unexpected block", name);
    if (strcmp(name, "format") == 0) {
        if (want_args(p, ln, 1, 1) < 0)
            return -1;
        const char *v = arg(p, ln, 0);
        if (strcmp(v, "json") != 0 && strcmp(v, "console") != 0)
            return failval(p, ltok(p, ln, 1), v, "log: format: json or console");
        *json = strcmp(v, "json") == 0;
        return 0;
    }
    if (strcmp(name, "output") == 0) {
        if (want_args(p, ln, 1, 1) < 0)
            return -1;
        if (strcmp(arg(p, ln, 0), "stderr") != 0)
            return failval(p, ltok(p, ln, 1), arg(p, ln, 0),
                           "log: output: only stderr is supported");
        return 0;
    }
    if (strcmp(name, "level") == 0) {
        if (want_args(p, ln, 1, 1) < 0)
            return -1;
        const char *v = arg(p, ln, 0);
        if (strcasecmp(v, "debug") == 0)
            p->cfg->debug = true;
        else if (strcasecmp(v, "info") != 0 && strcasecmp(v, "warn") != 0 &&
                 strcasecmp(v, "error") != 0)
            return failval(p, ltok(p, ln, 1), v, "log: level: DEBUG, INFO, WARN or ERROR");
        return 0;
    }
    return failval(p, t, name, "log: unknown option (format, output, level)");
}

/* `log [NAME] { … }`: Caddy's logging block, globally for the hub's own log, at site level
 * for access logs. */
static int log_block(struct parser *p, const struct line *ln, bool *json)
{
    if (nargs(ln) > 1)
        return failval(p, ltok(p, ln, 2), arg(p, ln, 1), "log: unexpected value");
    return ln->block ? walk_block(p, ln->open, log_line, json) : 0;
}

/* Inside `servers [LISTENER] { … }`: protocols is read (for every listener, whatever the
 * LISTENER argument says); Caddy's other server options are ignored. */
static int servers_line(struct parser *p, const struct line *ln, void *ud)
{
    if (strcmp(ltok(p, ln, 0)->text, "protocols") == 0)
        return global_protocols(p, ln);
    return skip_line(p, ln, ud);
}

static int global_line(struct parser *p, const struct line *ln, void *ud)
{
    /* Caddy options that concern only Caddy (admin API, certificates, ports it would pick…). */
    static const char *const ignored[] = {"admin",       "auto_https", "http_port",
                                          "https_port",  "order",      "email",
                                          "local_certs", "metrics",    "skip_install_trust"};
    const struct tok *t = ltok(p, ln, 0);
    if (strcmp(t->text, "shutdown_delay") == 0)
        return global_duration(p, ln, &p->cfg->shutdown_delay_ms);
    if (strcmp(t->text, "grace_period") == 0)
        return global_duration(p, ln, &p->cfg->grace_period_ms);
    if (strcmp(t->text, "log") == 0)
        return log_block(p, ln, &p->cfg->log_json);
    if (strcmp(t->text, "debug") == 0) {
        if (want_args(p, ln, 0, 0) < 0)
            return -1;
        if (ln->block)
            return fail(p, &p->toks[ln->open], "debug: unexpected block");
        p->cfg->debug = true;
        return 0;
    }
    if (strcmp(t->text, "protocols") == 0)
        return global_protocols(p, ln);
    if (strcmp(t->text, "servers") == 0)
        return ln->block ? walk_block(p, ln->open, servers_line, ud) : 0;
    if (in_list(t->text, ignored, QS_ARRAY_LEN(ignored)))
        return skip_line(p, ln, ud);
    return failval(p, t, t->text, "unknown global option");
}

/* Does the block starting at token i contain a `mercure` directive at any depth? Tells a site
 * whose address is "mercure" from a bare `mercure { … }` block. */
static bool block_has_mercure(const struct parser *p, size_t i)
{
    int depth = 1;
    for (; i < p->n_toks; i++) {
        const struct tok *t = &p->toks[i];
        if (t->kind == TOK_OPEN)
            depth++;
        else if (t->kind == TOK_CLOSE && --depth == 0)
            return false;
        else if (t->kind == TOK_WORD && !same_line(p, i) && strcmp(t->text, "mercure") == 0)
            return true;
    }
    return false;
}

static int parse_top(struct parser *p)
{
    if (p->n_toks == 0)
        return fail(p, NULL, "empty configuration: no site block and no mercure block");
    if (p->toks[0].kind == TOK_OPEN) { /* global options */
        if (check_after_open(p, 0) < 0)
            return -1;
        p->pos = 1;
        if (walk_block(p, 0, global_line, NULL) < 0)
            return -1;
    }
    while (p->pos < p->n_toks) {
        size_t first = p->pos, i = first;
        const struct tok *t = &p->toks[first];
        if (t->kind != TOK_WORD)
            return failval(p, t, t->text, "unexpected token at the top level");
        /* Addresses: up to '{' or the end of the line; a trailing ',' continues the list. */
        bool block = false;
        for (; i < p->n_toks; i++) {
            const struct tok *a = &p->toks[i];
            if (i > first && !same_line(p, i)) {
                const char *prev = p->toks[i - 1].text;
                size_t pl = strlen(prev);
                if (!pl || prev[pl - 1] != ',' || p->toks[i - 1].kind != TOK_WORD)
                    break;
            }
            if (a->kind == TOK_CLOSE)
                return fail(p, a, "unexpected '}'");
            if (a->kind == TOK_OPEN) {
                if (check_after_open(p, i) < 0)
                    return -1;
                block = true;
                break;
            }
        }
        size_t n_addr = i - first;
        p->pos = block ? i + 1 : i;
        qs_buf joined = QS_BUF_INIT;
        for (size_t k = first; k < first + n_addr; k++) {
            if (k > first)
                qs_buf_append_char(&joined, ' ');
            qs_buf_append_str(&joined, p->toks[k].text);
        }
        const char *addr = qs_buf_cstr(&joined);
        int rc;
        if (addr[0] == '(' || (addr[0] == '&' && addr[1] == '(')) {
            rc = failval(p, t, addr, "snippets and named routes are not supported");
        } else if (p->have_site) {
            rc = failval(p, t, addr,
                         "only one site block is supported: list every address before the "
                         "first block's '{' (\":80, :443 {\"); found another site");
        } else if (n_addr == 1 && block && strcmp(addr, "mercure") == 0 &&
                   !block_has_mercure(p, p->pos)) {
            /* A bare `mercure { … }` file: listen where SERVER_NAME says. */
            p->have_site = true;
            p->site_idx = first;
            struct line ln = {.first = first, .n = 1, .block = true, .open = i};
            const char *sn = env_get(p, "SERVER_NAME");
            struct tok snt = {.source = "SERVER_NAME", .line = 1};
            rc = add_site_addresses(p, sn && *sn ? &snt : t, sn && *sn ? sn : "localhost");
            if (rc == 0 && p->n_addrs == 0)
                rc = fail(p, &snt, "site address: empty site address");
            if (rc == 0)
                rc = mercure_block(p, &ln);
        } else {
            p->have_site = true;
            p->site_idx = first;
            p->site_text = qs_xstrdup(addr);
            rc = 0;
            for (size_t k = first; k < first + n_addr && rc == 0; k++)
                rc = add_site_addresses(p, &p->toks[k], p->toks[k].text);
            if (rc == 0 && p->n_addrs == 0)
                rc = fail(p, t, "site address: empty site address");
            /* Without braces, the rest of the file is the body of the only site (Caddy). */
            if (rc == 0)
                rc = walk_block(p, block ? i : NO_TOK, site_line, NULL);
        }
        qs_buf_free(&joined);
        if (rc < 0)
            return -1;
    }
    if (!p->have_site)
        return fail(p, NULL, "no site block and no mercure block");
    if (!p->have_mercure)
        return failval(p, &p->toks[p->site_idx], p->site_text, "no mercure block in site");
    return resolve_listeners(p);
}

/*-------- Validation and defaults --------*/

static int finish(struct parser *p)
{
    qs_config *cfg = p->cfg;
    const struct tok *mt = &p->toks[p->mercure_idx];

    /* The reference reads MERCURE_TRANSPORT_URL when nothing else names a transport. */
    const char *tu = env_get(p, "MERCURE_TRANSPORT_URL");
    if (!cfg->transport.name && !cfg->transport.url && tu && *tu) {
        cfg->transport.url = qs_xstrdup(tu);
        cfg->transport.source = qs_xstrdup("MERCURE_TRANSPORT_URL");
        cfg->transport.line = 1;
    }

    if (!cfg->publisher_key && !cfg->publisher_jwks_url) {
        if (p->pub_idx == NO_TOK)
            return fail(p, mt,
                        "mercure: a JWT key for publishers must be provided (publisher_jwt or "
                        "publisher_jwks_url)");
        const struct tok *kt = &p->toks[p->pub_idx + 1];
        if (kt->env)
            return fail(p, &p->toks[p->pub_idx],
                        "publisher_jwt: a JWT key for publishers must be provided (%s)", kt->env);
        return fail(p, &p->toks[p->pub_idx],
                    "publisher_jwt: a JWT key for publishers must be provided (empty key)");
    }
    if (!cfg->subscriber_key && !cfg->subscriber_jwks_url && !cfg->anonymous) {
        if (p->sub_idx == NO_TOK)
            return fail(p, mt,
                        "mercure: a JWT key for subscribers must be provided (subscriber_jwt, "
                        "subscriber_jwks_url or anonymous)");
        const struct tok *kt = &p->toks[p->sub_idx + 1];
        if (kt->env)
            return fail(p, &p->toks[p->sub_idx],
                        "subscriber_jwt: a JWT key for subscribers must be provided (%s)", kt->env);
        return fail(p, &p->toks[p->sub_idx],
                    "subscriber_jwt: a JWT key for subscribers must be provided (empty key)");
    }
    /* Filled here so that users of a parsed configuration never see NULL for these. */
    if (!cfg->cookie_name)
        cfg->cookie_name = qs_xstrdup("mercureAuthorization");
    if (!cfg->hub_name)
        cfg->hub_name = qs_xstrdup("default");
    return 0;
}

/*-------- Entry points --------*/

static void parser_free(struct parser *p)
{
    for (size_t i = 0; i < p->n_toks; i++) {
        /* Tokens held key material: wipe before freeing. */
        OPENSSL_cleanse(p->toks[i].text, strlen(p->toks[i].text));
        free(p->toks[i].text);
    }
    free(p->toks);
    if (p->text) {
        OPENSSL_cleanse(p->text, p->text_len);
        free(p->text);
    }
    free(p->segs);
    for (size_t i = 0; i < p->n_addrs; i++) {
        free(p->addrs[i].address);
        free(p->addrs[i].host);
    }
    free(p->addrs);
    free(p->site_text);
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->names);
}

/*
 * cfg is an output: it is reset to the defaults first (previous heap fields are not freed).
 * On error it is left with the defaults, so qs_config_free() is harmless either way.
 */
int qs_config_parse(qs_config *cfg, const char *text, size_t len, const char *source,
                    qs_getenv_fn getenv_fn, void *ud, char **err)
{
    struct parser p = {
        .cfg = cfg,
        .getenv_fn = getenv_fn,
        .ud = ud,
        .site_idx = NO_TOK,
        .mercure_idx = NO_TOK,
        .pub_idx = NO_TOK,
        .sub_idx = NO_TOK,
        .transport_idx = NO_TOK,
        .transport_url_idx = NO_TOK,
        .tls_idx = NO_TOK,
        .protocols_idx = NO_TOK,
    };
    qs_config_defaults(cfg);
    if (err)
        *err = NULL;
    p.source = intern(&p, source ? source : "config", strlen(source ? source : "config"));

    int rc = -1;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        struct tok at = {.source = p.source,
                         .line = 1 + count_newlines(text, (size_t)(nul - text))};
        fail(&p, &at, "invalid NUL byte");
        goto out;
    }
    substitute_vars(&p, text, len);
    if (lex(&p) < 0)
        goto out;
    for (size_t i = 0; i < p.n_toks; i++)
        replace_env_placeholders(&p, &p.toks[i]);
    if (parse_top(&p) < 0 || finish(&p) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0) {
        qs_config_free(cfg);
        if (err)
            *err = p.err ? p.err : qs_xstrdup("invalid configuration");
        else
            free(p.err);
    }
    parser_free(&p);
    return rc;
}

int qs_config_load_file(qs_config *cfg, const char *path, qs_getenv_fn getenv_fn, void *ud,
                        char **err)
{
    qs_config_defaults(cfg);
    if (err)
        *err = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err)
            *err = qs_xasprintf("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    qs_buf b = QS_BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > MAX_FILE_SIZE) {
            fclose(f);
            qs_buf_free(&b);
            if (err)
                *err = qs_xasprintf("%s: file too large (more than %u bytes)", path, MAX_FILE_SIZE);
            return -1;
        }
        qs_buf_append(&b, chunk, n);
    }
    bool bad = ferror(f);
    int saved = errno;
    fclose(f);
    if (bad) {
        qs_buf_free(&b);
        if (err)
            *err = qs_xasprintf("%s: cannot read: %s", path, strerror(saved));
        return -1;
    }
    int rc = qs_config_parse(cfg, b.len ? b.p : "", b.len, path, getenv_fn, ud, err);
    if (b.p)
        OPENSSL_cleanse(b.p, b.len);
    qs_buf_free(&b);
    return rc;
}

int qs_config_load_default(qs_config *cfg, qs_getenv_fn getenv_fn, void *ud, char **err)
{
    return qs_config_parse(cfg, default_caddyfile, sizeof(default_caddyfile) - 1, DEFAULT_SOURCE,
                           getenv_fn, ud, err);
}
