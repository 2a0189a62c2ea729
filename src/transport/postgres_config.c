/* SPDX-License-Identifier: MIT
 * postgres_config.c - the PostgreSQL transport's settings (postgres.h): a URL, a libpq
 * key-value string or a `transport postgres { … }` block, split into libpq's connection
 * parameters and the hub's own options, and connection strings with their password masked.
 *
 * The hub's options all start with "mercure_": libpq refuses parameters it does not know,
 * so they are taken out of the string before libpq parses it, and a prefix libpq will never
 * use keeps the two sets apart in future releases too. Everything else is libpq's: its
 * own parser (PQconninfoParse) validates it, and parameters left out keep libpq's defaults
 * and the PG* environment variables at connection time.
 */
#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "transport/postgres.h"

#define HUB_PREFIX "mercure_"

/* ------------------------------------------------------------ key-value strings */

/* One "key = value" of a libpq key-value string: the value unquoted and unescaped, and
 * where its raw text is in the string (for masking). */
typedef struct kv_token {
    char *key;
    char *value;
    const char *raw_start, *raw_end;
} kv_token;

/* Reads the next token at *pp, as libpq's parser does: keys end at '=' or a space, values
 * are single-quoted (with backslash escapes) or run to the next space (backslash escapes
 * too). Returns 1 with a token, 0 at the end, -1 when malformed (*why set; *pp is where the
 * token started). */
static int kv_next(const char **pp, kv_token *t, const char **why)
{
    const char *p = *pp;
    while (*p && isspace((unsigned char)*p))
        p++;
    *pp = p;
    if (!*p)
        return 0;
    const char *key = p;
    while (*p && *p != '=' && !isspace((unsigned char)*p))
        p++;
    size_t klen = (size_t)(p - key);
    while (*p && isspace((unsigned char)*p))
        p++;
    if (*p != '=' || !klen) {
        *why = "missing \"=\" after a parameter's name";
        return -1;
    }
    p++;
    while (*p && isspace((unsigned char)*p))
        p++;
    qs_buf v = QS_BUF_INIT;
    const char *raw = p;
    if (*p == '\'') {
        p++;
        for (;;) {
            if (!*p) {
                qs_buf_free(&v);
                *why = "unterminated quoted string";
                return -1;
            }
            if (*p == '\\' && p[1]) {
                qs_buf_append_char(&v, p[1]);
                p += 2;
            } else if (*p == '\'') {
                p++;
                break;
            } else {
                qs_buf_append_char(&v, *p++);
            }
        }
    } else {
        while (*p && !isspace((unsigned char)*p)) {
            if (*p == '\\' && p[1]) {
                qs_buf_append_char(&v, p[1]);
                p += 2;
            } else {
                qs_buf_append_char(&v, *p++);
            }
        }
    }
    t->key = qs_xstrndup(key, klen);
    t->value = qs_xstrdup(qs_buf_cstr(&v));
    qs_buf_free(&v);
    t->raw_start = raw;
    t->raw_end = p;
    *pp = p;
    return 1;
}

static void kv_token_free(kv_token *t)
{
    free(t->key);
    free(t->value);
}

/* Appends value as a key-value string's value: quoted, with ' and \ escaped. */
static void kv_append_value(qs_buf *b, const char *value)
{
    qs_buf_append_char(b, '\'');
    for (const char *p = value; *p; p++) {
        if (*p == '\'' || *p == '\\')
            qs_buf_append_char(b, '\\');
        qs_buf_append_char(b, *p);
    }
    qs_buf_append_char(b, '\'');
}

static bool is_secret(const char *key)
{
    return strcmp(key, "password") == 0 || strcmp(key, "sslpassword") == 0;
}

/* ------------------------------------------------------------ URLs */

static bool is_uri(const char *s)
{
    return strncasecmp(s, "postgresql://", 13) == 0 || strncasecmp(s, "postgres://", 11) == 0;
}

/* The user information of a URI: from after "://" to its '@' (*at), or false when it has
 * none. libpq ends it at the first '@' before any '/', and wants '@', '/' and '?' in a
 * password percent-encoded; to never show a password written without encoding, the '@'
 * taken here is the last one before the first '?' that follows an '@' (a password may
 * hold '?', '/' and '@', a host name none of them). */
static bool uri_userinfo(const char *s, const char **start, const char **at)
{
    const char *p = strstr(s, "://") + 3, *first = strchr(p, '@');
    if (!first)
        return false;
    const char *q = strchr(first, '?'), *last = first;
    for (const char *c = first; *c && (!q || c < q); c++)
        if (*c == '@')
            last = c;
    *start = p;
    *at = last;
    return true;
}

/* Where the query of a URI starts ('?'), or its end, as libpq reads it: after the user
 * information, which ends at the first '@' before any '/'. */
static const char *uri_query(const char *s)
{
    const char *p = strstr(s, "://") + 3, *at = p;
    while (*at && *at != '@' && *at != '/')
        at++;
    if (*at == '@')
        p = at + 1;
    const char *q = strchr(p, '?');
    return q ? q : p + strlen(p);
}

/* Percent-decodes s[0..n) (libpq does not read '+' as a space either). */
static char *percent_decode(const char *s, size_t n)
{
    qs_buf b = QS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = qs_hex_value((unsigned char)s[i + 1])) >= 0 &&
            (lo = qs_hex_value((unsigned char)s[i + 2])) >= 0) {
            qs_buf_append_char(&b, (char)(hi * 16 + lo));
            i += 2;
        } else {
            qs_buf_append_char(&b, s[i]);
        }
    }
    char *out = qs_xstrdup(qs_buf_cstr(&b));
    qs_buf_free(&b);
    return out;
}

char *qs_pg_mask_password(const char *s)
{
    qs_buf b = QS_BUF_INIT;
    if (is_uri(s)) {
        const char *p = s, *user = NULL, *at = NULL, *colon = NULL, *q = NULL;
        if (uri_userinfo(s, &user, &at))
            colon = memchr(user, ':', (size_t)(at - user));
        if (colon) {
            qs_buf_append(&b, s, (size_t)(colon + 1 - s));
            qs_buf_append_str(&b, "***");
            p = at;
            q = strchr(at, '?');
            q = q ? q : at + strlen(at);
        } else {
            q = uri_query(s);
        }
        qs_buf_append(&b, p, (size_t)(q - p));
        /* The query: key=value pairs separated by '&'. */
        while (*q) {
            qs_buf_append_char(&b, *q++); /* '?' or '&' */
            const char *end = strchr(q, '&');
            size_t len = end ? (size_t)(end - q) : strlen(q);
            const char *eq = memchr(q, '=', len);
            char *key = percent_decode(q, eq ? (size_t)(eq - q) : len);
            if (eq && is_secret(key)) {
                qs_buf_append(&b, q, (size_t)(eq + 1 - q));
                qs_buf_append_str(&b, "***");
            } else {
                qs_buf_append(&b, q, len);
            }
            free(key);
            q += len;
        }
        return qs_buf_steal(&b);
    }
    /* A key-value string: every token is copied as written, but for secret values; from a
     * malformed token on, nothing more is shown (it may be a password without its "="). */
    const char *p = s, *copied = s, *why = NULL;
    kv_token t;
    int rc;
    while ((rc = kv_next(&p, &t, &why)) == 1) {
        if (is_secret(t.key)) {
            qs_buf_append(&b, copied, (size_t)(t.raw_start - copied));
            qs_buf_append_str(&b, "***");
            copied = t.raw_end;
        }
        kv_token_free(&t);
    }
    if (rc < 0) {
        qs_buf_append(&b, copied, (size_t)(p - copied));
        qs_buf_append_str(&b, "***");
    } else {
        qs_buf_append_str(&b, copied);
    }
    return qs_buf_steal(&b);
}

bool qs_pg_prefix_valid(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n < 1 || n > QS_PG_PREFIX_MAX || (prefix[0] >= '0' && prefix[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = prefix[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------ loading */

/* What is gathered while reading: libpq's parameters in order, and the hub's options (as
 * qs_topt entries, so that the qs_topts getters read them). */
typedef struct loader {
    const char *transport;
    char **kw, **val;
    size_t n, cap;
    qs_topt *hub;
    size_t n_hub, cap_hub;
    char **owned; /* strings the hub's options point to */
    size_t n_owned, cap_owned;
} loader;

static char *own(loader *l, char *s)
{
    if (l->n_owned == l->cap_owned) {
        l->cap_owned = l->cap_owned ? l->cap_owned * 2 : 16;
        l->owned = qs_xrealloc(l->owned, l->cap_owned * sizeof(*l->owned));
    }
    l->owned[l->n_owned++] = s;
    return s;
}

/* Sets a libpq parameter, replacing an earlier value. */
static void set_param(loader *l, const char *key, const char *value)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->kw[i], key) == 0) {
            free(l->val[i]);
            l->val[i] = qs_xstrdup(value);
            return;
        }
    if (l->n + 1 >= l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->kw = qs_xrealloc(l->kw, l->cap * sizeof(*l->kw));
        l->val = qs_xrealloc(l->val, l->cap * sizeof(*l->val));
    }
    l->kw[l->n] = qs_xstrdup(key);
    l->val[l->n] = qs_xstrdup(value);
    l->n++;
    l->kw[l->n] = l->val[l->n] = NULL;
}

static const char *get_param(const loader *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->kw[i], key) == 0)
            return l->val[i];
    return NULL;
}

static void add_hub_option(loader *l, const char *key, const char *value, const char *source,
                           int line)
{
    if (l->n_hub == l->cap_hub) {
        l->cap_hub = l->cap_hub ? l->cap_hub * 2 : 8;
        l->hub = qs_xrealloc(l->hub, l->cap_hub * sizeof(*l->hub));
    }
    l->hub[l->n_hub++] = (qs_topt){key, value, source, line, false};
}

static bool is_hub_option(const char *key)
{
    return strncmp(key, HUB_PREFIX, sizeof(HUB_PREFIX) - 1) == 0;
}

/* Adds the parameters libpq parsed from a cleaned string. */
static int add_parsed(loader *l, const char *conninfo, const char *display, const char *source,
                      int line, char **err)
{
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
    if (!opts) {
        char msg[QS_REASON_MAX];
        *err = qs_xasprintf("%s:%d: transport %s: %s: %s", source, line, l->transport, display,
                            qs_pg_one_line(msg, sizeof(msg), why ? why : "out of memory"));
        PQfreemem(why);
        return -1;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val)
            set_param(l, o->keyword, o->val);
    PQconninfoFree(opts);
    return 0;
}

/* Reads a URL or a key-value string: the hub's options are taken out, the rest goes to
 * libpq's parser. */
static int load_conninfo(loader *l, const char *conninfo, const char *display, const char *source,
                         int line, char **err)
{
    qs_buf clean = QS_BUF_INIT;
    if (is_uri(conninfo)) {
        const char *q = uri_query(conninfo);
        qs_buf_append(&clean, conninfo, (size_t)(q - conninfo));
        bool first = true;
        while (*q) {
            q++; /* '?' or '&' */
            const char *end = strchr(q, '&');
            size_t len = end ? (size_t)(end - q) : strlen(q);
            const char *eq = memchr(q, '=', len);
            char *key = percent_decode(q, eq ? (size_t)(eq - q) : len);
            if (is_hub_option(key)) {
                char *value = eq ? percent_decode(eq + 1, (size_t)(q + len - eq - 1)) : NULL;
                add_hub_option(l, own(l, key), value ? own(l, value) : NULL, source, line);
            } else {
                free(key);
                if (len) {
                    qs_buf_append_char(&clean, first ? '?' : '&');
                    qs_buf_append(&clean, q, len);
                    first = false;
                }
            }
            q += len;
        }
    } else {
        const char *p = conninfo, *why = NULL;
        kv_token t;
        int rc;
        while ((rc = kv_next(&p, &t, &why)) == 1) {
            if (is_hub_option(t.key)) {
                add_hub_option(l, own(l, t.key), own(l, t.value), source, line);
                continue;
            }
            qs_buf_appendf(&clean, "%s%s=", clean.len ? " " : "", t.key);
            kv_append_value(&clean, t.value);
            kv_token_free(&t);
        }
        if (rc < 0) {
            *err = qs_xasprintf("%s:%d: transport %s: %s: %s", source, line, l->transport, display,
                                why);
            qs_buf_free(&clean);
            return -1;
        }
    }
    int rc = add_parsed(l, qs_buf_cstr(&clean), display, source, line, err);
    qs_buf_free(&clean);
    return rc;
}

/* True when key is one of libpq's connection parameters. */
static bool libpq_knows(const char *key)
{
    PQconninfoOption *defaults = PQconndefaults();
    bool found = false;
    for (PQconninfoOption *o = defaults; o && o->keyword && !found; o++)
        found = strcmp(o->keyword, key) == 0;
    PQconninfoFree(defaults);
    return found;
}

static int read_hub_options(loader *l, qs_pg_settings *s, const char *source, int line, char **err)
{
    qs_topts o = {
        .transport = l->transport, .v = l->hub, .n = l->n_hub, .source = source, .line = line};
    const char *prefix = NULL;
    if (qs_topts_string(&o, HUB_PREFIX "table_prefix", &prefix, err) < 0 ||
        qs_topts_u64(&o, HUB_PREFIX "size", &s->size, err) < 0 ||
        qs_topts_duration_min(&o, HUB_PREFIX "max_age", 0, &s->max_age_ms, err) < 0 ||
        qs_topts_duration_min(&o, HUB_PREFIX "presence_ttl", 1000, &s->presence_ttl_ms, err) < 0 ||
        qs_topts_duration_min(&o, HUB_PREFIX "timeout", 100, &s->timeout_ms, err) < 0 ||
        qs_topts_duration_min(&o, HUB_PREFIX "start_timeout", 0, &s->start_timeout_ms, err) < 0)
        return -1;
    if (prefix) {
        if (!qs_pg_prefix_valid(prefix))
            return qs_topts_fail(&o, qs_topts_get(&o, HUB_PREFIX "table_prefix"),
                                 "expected lower-case letters, digits and _ (at most 40, not "
                                 "starting with a digit)",
                                 NULL, err);
        free(s->prefix);
        s->prefix = qs_xstrdup(prefix);
    }
    return qs_topts_finish(&o, err);
}

/* The block's parameters as a key-value string, for logs (password masked afterwards). */
static char *describe_params(const loader *l)
{
    qs_buf b = QS_BUF_INIT;
    static const char *const shown[] = {"host", "hostaddr", "port", "dbname", "user", "password"};
    for (size_t i = 0; i < QS_ARRAY_LEN(shown); i++) {
        const char *v = get_param(l, shown[i]);
        if (!v)
            continue;
        qs_buf_appendf(&b, "%s%s=", b.len ? " " : "", shown[i]);
        kv_append_value(&b, v);
    }
    if (!b.len)
        qs_buf_append_str(&b, "(libpq defaults)");
    char *plain = qs_buf_steal(&b);
    char *masked = qs_pg_mask_password(plain);
    free(plain);
    return masked;
}

static void loader_free(loader *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->kw[i]);
        free(l->val[i]);
    }
    free(l->kw);
    free(l->val);
    free(l->hub);
    for (size_t i = 0; i < l->n_owned; i++)
        free(l->owned[i]);
    free(l->owned);
}

int qs_pg_settings_load(const qs_config_transport *cfg, qs_pg_settings *s, char **err)
{
    memset(s, 0, sizeof(*s));
    s->prefix = qs_xstrdup(QS_PG_DEFAULT_PREFIX);
    s->timeout_ms = QS_PG_DEFAULT_TIMEOUT_MS;
    s->start_timeout_ms = QS_PG_DEFAULT_START_TIMEOUT_MS;
    s->presence_ttl_ms = QS_PG_DEFAULT_PRESENCE_TTL_MS;
    loader l = {.transport = cfg->name ? cfg->name : "postgres"};
    const char *source = cfg->source ? cfg->source : "config";
    int rc = -1;
    if (cfg->url) {
        s->display = qs_pg_mask_password(cfg->url);
        if (load_conninfo(&l, cfg->url, s->display, source, cfg->line, err) < 0)
            goto out;
    } else {
        /* The URL first, whatever its line: the block's other lines override it. */
        for (size_t i = 0; i < cfg->n_options; i++) {
            const qs_config_option *c = &cfg->options[i];
            if (strcmp(c->key, "url") != 0)
                continue;
            if (c->n_values != 1 || !*c->values[0]) {
                *err = qs_xasprintf("%s:%d: transport %s: url: expected one value", c->source,
                                    c->line, l.transport);
                goto out;
            }
            free(s->display);
            s->display = qs_pg_mask_password(c->values[0]);
            if (load_conninfo(&l, c->values[0], s->display, c->source, c->line, err) < 0)
                goto out;
        }
        for (size_t i = 0; i < cfg->n_options; i++) {
            const qs_config_option *c = &cfg->options[i];
            if (strcmp(c->key, "url") == 0)
                continue;
            if (c->n_values > 1) {
                *err = qs_xasprintf("%s:%d: transport %s: %s: expected one value", c->source,
                                    c->line, l.transport, c->key);
                goto out;
            }
            const char *value = c->n_values ? c->values[0] : NULL;
            if (is_hub_option(c->key)) {
                add_hub_option(&l, c->key, value, c->source, c->line);
            } else if (!libpq_knows(c->key)) {
                *err = qs_xasprintf("%s:%d: transport %s: unknown option \"%s\" (neither a libpq "
                                    "connection parameter nor one of the hub's " HUB_PREFIX
                                    "… options)",
                                    c->source, c->line, l.transport, c->key);
                goto out;
            } else if (!value) {
                *err = qs_xasprintf("%s:%d: transport %s: %s: a value is required", c->source,
                                    c->line, l.transport, c->key);
                goto out;
            } else {
                set_param(&l, c->key, value);
            }
        }
        if (!s->display)
            s->display = describe_params(&l);
    }
    if (read_hub_options(&l, s, source, cfg->line, err) < 0)
        goto out;
    /* Text goes to the server as UTF-8, whatever the environment says. */
    set_param(&l, "client_encoding", "UTF8");
    if (!get_param(&l, "fallback_application_name"))
        set_param(&l, "fallback_application_name", QS_PG_APPLICATION_NAME);
    s->connect_timeout_ms = s->timeout_ms;
    const char *ct = get_param(&l, "connect_timeout");
    if (ct) {
        char *end = NULL;
        long v = strtol(ct, &end, 10);
        if (end == ct || *end || v < 0) {
            *err = qs_xasprintf("%s:%d: transport %s: connect_timeout: invalid number \"%s\"",
                                source, cfg->line, l.transport, ct);
            goto out;
        }
        if (v > 0) /* libpq waits at least 2 s; 0 means no limit, so the hub's applies */
            s->connect_timeout_ms = (uint64_t)QS_MAX(v, 2L) * 1000;
    }
    s->keywords = l.kw;
    s->values = l.val;
    s->n = l.n;
    l.kw = l.val = NULL;
    l.n = 0;
    rc = 0;
out:
    loader_free(&l);
    if (rc < 0)
        qs_pg_settings_free(s);
    return rc;
}

void qs_pg_settings_free(qs_pg_settings *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->keywords[i]);
        free(s->values[i]);
    }
    free(s->keywords);
    free(s->values);
    free(s->display);
    free(s->prefix);
    memset(s, 0, sizeof(*s));
}
