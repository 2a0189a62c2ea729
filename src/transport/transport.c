/* SPDX-License-Identifier: MIT
 * transport.c - transport registry: picks the implementation a configuration names.
 */
#include "transport.h"

#include <stdatomic.h>
#include <stdlib.h>

static const struct {
    const char *name; /* transport name and URL scheme */
    const qs_transport_ops *ops;
} registry[] = {
    {"local", &qs_transport_local_ops},
    {"lmdb", &qs_transport_lmdb_ops},
    {"bolt", &qs_transport_lmdb_ops}, /* the reference's default store, by name and scheme */
    {"redis", &qs_transport_redis_ops},
    {"rediss", &qs_transport_redis_ops}, /* redis over TLS */
    {"postgres", &qs_transport_postgres_ops},
    {"postgresql", &qs_transport_postgres_ops},
    {"kafka", &qs_transport_kafka_ops},
    {"pulsar", &qs_transport_pulsar_ops},
    {"pulsar+ssl", &qs_transport_pulsar_ops}, /* pulsar over TLS */
};

/* A libpq key-value string ("host=db dbname=mercure …") rather than a URL: it selects the
 * PostgreSQL transport. */
static bool is_conninfo(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    const char *key = s;
    while ((*s >= 'a' && *s <= 'z') || *s == '_')
        s++;
    if (s == key)
        return false;
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '=';
}

void qs_replay_clear(qs_replay *r)
{
    for (size_t i = 0; i < r->n_updates; i++)
        if (r->updates[i])
            qs_update_unref(r->updates[i]);
    free(r->updates);
    r->updates = NULL;
    r->n_updates = 0;
}

char *qs_transport_url_scheme(const char *url)
{
    const char *colon = strstr(url, "://");
    if (!colon || colon == url)
        return NULL;
    for (const char *p = url; p < colon; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (p > url && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
        if (!ok)
            return NULL;
    }
    char *scheme = qs_xstrndup(url, (size_t)(colon - url));
    for (char *p = scheme; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return scheme;
}

static const qs_transport_ops *find_ops(const char *name)
{
    for (size_t i = 0; i < QS_ARRAY_LEN(registry); i++)
        if (strcmp(registry[i].name, name) == 0)
            return registry[i].ops;
    return NULL;
}

int qs_transport_open(const qs_config_transport *cfg, const qs_transport_host *host,
                      qs_transport **out, char **err)
{
    const char *name = cfg->name;
    char *scheme = NULL;
    const char *what = "transport";
    if (!name && cfg->url) {
        scheme = qs_transport_url_scheme(cfg->url);
        if (!scheme && is_conninfo(cfg->url))
            scheme = qs_xstrdup("postgres");
        if (!scheme) {
            *err = qs_xasprintf("%s:%d: transport_url: not a URL \"%s\"",
                                cfg->source ? cfg->source : "config", cfg->line, cfg->url);
            return -1;
        }
        name = scheme;
        what = "transport_url";
    }
    if (!name)
        name = "lmdb"; /* the default, like the reference's BoltDB: a durable embedded store */
    const qs_transport_ops *ops = find_ops(name);
    if (!ops) {
        *err = qs_xasprintf("%s:%d: %s: transport \"%s\" is not available in this build",
                            cfg->source ? cfg->source : "config", cfg->line, what, name);
        free(scheme);
        return -1;
    }
    free(scheme);
    if (ops->create(cfg, host, out, err) < 0)
        return -1;
    if (!ops->presence_list)
        (*out)->presence = qs_presence_new();
    return 0;
}

/* ----------------------------------------------------------- options */

int qs_topts_load(const qs_config_transport *cfg, const char *transport, qs_topts *o, char **err)
{
    memset(o, 0, sizeof(*o));
    o->transport = transport;
    o->source = cfg->source ? cfg->source : "config";
    o->line = cfg->line;
    if (cfg->url) {
        const char *why = NULL;
        if (qs_url_parse(cfg->url, &o->url, &why) < 0) {
            *err = qs_xasprintf("%s:%d: transport_url: %s", o->source, o->line, why);
            return -1;
        }
        o->has_url = true;
        o->v = qs_xcalloc(o->url.query.n + 1, sizeof(*o->v));
        for (size_t i = 0; i < o->url.query.n; i++) {
            const qs_form_pair *p = &o->url.query.pairs[i];
            o->v[o->n++] = (qs_topt){p->key, p->value, o->source, o->line, false};
        }
        return 0;
    }
    o->v = qs_xcalloc(cfg->n_options + 1, sizeof(*o->v));
    for (size_t i = 0; i < cfg->n_options; i++) {
        const qs_config_option *c = &cfg->options[i];
        if (c->n_values > 1) {
            *err = qs_xasprintf("%s:%d: transport %s: %s: expected one value", c->source, c->line,
                                transport, c->key);
            free(o->v);
            return -1;
        }
        o->v[o->n++] =
            (qs_topt){c->key, c->n_values ? c->values[0] : NULL, c->source, c->line, false};
    }
    return 0;
}

void qs_topts_free(qs_topts *o)
{
    free(o->v);
    if (o->has_url)
        qs_url_free(&o->url);
    memset(o, 0, sizeof(*o));
}

const qs_topt *qs_topts_get(qs_topts *o, const char *key)
{
    qs_topt *found = NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->v[i].key, key) == 0) {
            o->v[i].used = true;
            found = &o->v[i];
        }
    return found;
}

int qs_topts_fail(const qs_topts *o, const qs_topt *t, const char *what, const char *const *secrets,
                  char **err)
{
    bool secret = false;
    for (size_t i = 0; secrets && secrets[i]; i++)
        secret = secret || strcmp(t->key, secrets[i]) == 0;
    *err = qs_xasprintf("%s:%d: transport %s: %s: %s \"%s\"", t->source, t->line, o->transport,
                        t->key, what,
                        secret     ? "****"
                        : t->value ? t->value
                                   : "");
    return -1;
}

static int topt_fail(const qs_topts *o, const qs_topt *t, const char *what, char **err)
{
    return qs_topts_fail(o, t, what, NULL, err);
}

int qs_topts_string(qs_topts *o, const char *key, const char **out, char **err)
{
    const qs_topt *t = qs_topts_get(o, key);
    if (!t)
        return 0;
    if (!t->value || !*t->value)
        return topt_fail(o, t, "a value is required", err);
    *out = t->value;
    return 0;
}

int qs_topts_u64(qs_topts *o, const char *key, uint64_t *out, char **err)
{
    const qs_topt *t = qs_topts_get(o, key);
    if (!t)
        return 0;
    const char *s = t->value ? t->value : "";
    uint64_t v = 0;
    if (!*s)
        return topt_fail(o, t, "invalid number", err);
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return topt_fail(o, t, "invalid number", err);
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 0;
}

int qs_topts_size(qs_topts *o, const char *key, uint64_t *out, char **err)
{
    const qs_topt *t = qs_topts_get(o, key);
    if (!t)
        return 0;
    if (!t->value || qs_parse_size(t->value, out) < 0)
        return topt_fail(o, t, "invalid size", err);
    return 0;
}

int qs_topts_double(qs_topts *o, const char *key, double min, double max, double *out, char **err)
{
    const qs_topt *t = qs_topts_get(o, key);
    if (!t)
        return 0;
    char *end = NULL;
    double v = t->value ? strtod(t->value, &end) : 0;
    if (!t->value || !*t->value || *end || v < min || v > max)
        return topt_fail(o, t, "invalid value", err);
    *out = v;
    return 0;
}

int qs_topts_bool(qs_topts *o, const char *key, bool *out, char **err)
{
    const qs_topt *t = qs_topts_get(o, key);
    if (!t)
        return 0;
    const char *v = t->value;
    if (!v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "yes"))
        *out = true;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "no"))
        *out = false;
    else
        return topt_fail(o, t, "expected true or false", err);
    return 0;
}

int qs_topts_duration_min(qs_topts *o, const char *key, uint64_t min_ms, uint64_t *out, char **err)
{
    const qs_topt *t = qs_topts_get(o, key);
    if (!t)
        return 0;
    uint64_t ms = 0;
    if (!t->value || qs_parse_duration_ms(t->value, &ms) < 0)
        return topt_fail(o, t, "invalid duration", err);
    if (ms < min_ms)
        return topt_fail(o, t, min_ms >= 1000 ? "at least 1s is needed" : "too short", err);
    *out = ms;
    return 0;
}

void qs_topts_set(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? qs_xstrdup(v) : NULL;
}

int qs_topts_copy(qs_topts *o, const char *key, char **dst, char **err)
{
    const char *v = NULL;
    if (qs_topts_string(o, key, &v, err) < 0)
        return -1;
    if (v)
        qs_topts_set(dst, v);
    return 0;
}

int qs_topts_finish(qs_topts *o, char **err)
{
    for (size_t i = 0; i < o->n; i++)
        if (!o->v[i].used) {
            *err = qs_xasprintf("%s:%d: transport %s: unknown option \"%s\"", o->v[i].source,
                                o->v[i].line, o->transport, o->v[i].key);
            return -1;
        }
    return 0;
}

/* ----------------------------------------------------------- position */

void qs_transport_base_init(qs_transport *t, const qs_transport_ops *ops)
{
    t->ops = ops;
    uv_mutex_init(&t->mu);
}

void qs_transport_base_destroy(qs_transport *t)
{
    uv_mutex_destroy(&t->mu);
    free(t->last_id);
    t->last_id = NULL;
}

void qs_transport_set_position(qs_transport *t, uint64_t seq, const char *id)
{
    t->seq = seq;
    free(t->last_id);
    t->last_id = id ? qs_xstrdup(id) : NULL;
}

char *qs_transport_last_event_id(qs_transport *t)
{
    uv_mutex_lock(&t->mu);
    char *id = qs_xstrdup(t->last_id ? t->last_id : "earliest");
    uv_mutex_unlock(&t->mu);
    return id;
}

uint64_t qs_transport_last_seq(qs_transport *t)
{
    uv_mutex_lock(&t->mu);
    uint64_t seq = t->seq;
    uv_mutex_unlock(&t->mu);
    return seq;
}

/* ----------------------------------------------------------- presence */

void qs_transport_presence_add(qs_transport *t, const qs_presence_entry *e)
{
    if (t->ops->presence_add)
        t->ops->presence_add(t, e);
    else
        qs_presence_add(t->presence, e);
}

void qs_transport_presence_remove(qs_transport *t, const char *subscriber)
{
    if (t->ops->presence_remove)
        t->ops->presence_remove(t, subscriber);
    else
        qs_presence_remove(t->presence, subscriber);
}

void qs_transport_presence_list(qs_transport *t, qs_presence_query *q)
{
    if (t->ops->presence_list) {
        t->ops->presence_list(t, q);
        return;
    }
    q->entries = qs_presence_snapshot(t->presence, &q->n);
    q->status = 0;
    q->done(q);
}

void qs_transport_destroy(qs_transport *t)
{
    if (!t)
        return;
    qs_presence *presence = t->presence;
    t->ops->destroy(t);
    qs_presence_free(presence);
}

static atomic_bool threads_left;

void qs_transport_left_running(void)
{
    atomic_store(&threads_left, true);
}

bool qs_transport_threads_left(void)
{
    return atomic_load(&threads_left);
}
