/* SPDX-License-Identifier: MIT
 * pulsar_settings.c - the Pulsar transport's options, from a URL or a block (pulsar.h).
 * Pure: no broker, no I/O.
 */
#include "transport/pulsar.h"

#include <stdio.h>
#include <stdlib.h>

void qs_pulsar_settings_free(qs_pulsar_settings *s)
{
    free(s->host);
    free(s->service_url);
    free(s->topic);
    free(s->presence_topic);
    free(s->subscription_name);
    free(s->token);
    free(s->token_file);
    free(s->tls_ca);
    memset(s, 0, sizeof(*s));
}

/* The options whose values an error never shows. */
static const char *const secrets[] = {"token", NULL};

static int read_common(qs_topts *o, qs_pulsar_settings *s, char **err)
{
    if (qs_topts_copy(o, "topic", &s->topic, err) < 0 ||
        qs_topts_copy(o, "presence_topic", &s->presence_topic, err) < 0 ||
        qs_topts_copy(o, "subscription_name", &s->subscription_name, err) < 0 ||
        qs_topts_copy(o, "token", &s->token, err) < 0 ||
        qs_topts_copy(o, "token_file", &s->token_file, err) < 0 ||
        qs_topts_copy(o, "tls_ca", &s->tls_ca, err) < 0 ||
        qs_topts_copy(o, "tls_trust_certs_file", &s->tls_ca, err) < 0 ||
        qs_topts_bool(o, "tls_insecure", &s->tls_insecure, err) < 0 ||
        qs_topts_bool(o, "tls_allow_insecure_connection", &s->tls_insecure, err) < 0 ||
        qs_topts_duration_min(o, "timeout", 100, &s->timeout_ms, err) < 0 ||
        qs_topts_duration_min(o, "publish_timeout", 100, &s->publish_timeout_ms, err) < 0 ||
        qs_topts_duration_min(o, "presence_ttl", 1000, &s->presence_ttl_ms, err) < 0)
        return -1;
    return 0;
}

/* pulsar://host[:port][/]?options, pulsar+ssl:// for TLS. */
static int read_url(qs_topts *o, qs_pulsar_settings *s, char **err)
{
    const qs_url *u = &o->url;
    bool tls = !strcmp(u->scheme, "pulsar+ssl");
    if (!tls && strcmp(u->scheme, "pulsar") != 0) {
        *err = qs_xasprintf("%s:%d: transport %s: the URL scheme must be pulsar:// or "
                            "pulsar+ssl://, not \"%s://\"",
                            o->source, o->line, o->transport, u->scheme);
        return -1;
    }
    if (!u->host || !*u->host) {
        *err = qs_xasprintf("%s:%d: transport %s: the URL names no broker (pulsar://host:port)",
                            o->source, o->line, o->transport);
        return -1;
    }
    if (u->path && *u->path && strcmp(u->path, "/") != 0) {
        *err = qs_xasprintf("%s:%d: transport %s: the URL has a path \"%s\": the topic is given "
                            "with ?topic=",
                            o->source, o->line, o->transport, u->path);
        return -1;
    }
    s->tls = tls;
    qs_topts_set(&s->host, u->host);
    s->port = u->port ? u->port : tls ? QS_PULSAR_DEFAULT_TLS_PORT : QS_PULSAR_DEFAULT_PORT;
    if (read_common(o, s, err) < 0)
        return -1;
    return qs_topts_finish(o, err);
}

static int read_block(qs_topts *o, const char *name, qs_pulsar_settings *s, char **err)
{
    const qs_topt *url = qs_topts_get(o, "url");
    if (!url) {
        *err = qs_xasprintf("%s:%d: transport %s: url: the broker's URL is required "
                            "(url pulsar://host:6650)",
                            o->source, o->line, name);
        return -1;
    }
    if (!url->value || !*url->value)
        return qs_topts_fail(o, url, "a value is required", secrets, err);
    qs_config_transport sub = {.name = (char *)name,
                               .url = (char *)url->value,
                               .source = (char *)url->source,
                               .line = url->line};
    qs_topts uo;
    if (qs_topts_load(&sub, name, &uo, err) < 0)
        return -1;
    int rc = read_url(&uo, s, err);
    qs_topts_free(&uo);
    if (rc < 0)
        return -1;
    if (read_common(o, s, err) < 0)
        return -1;
    return qs_topts_finish(o, err);
}

static bool name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '=' || c == ':';
}

static bool segment_ok(const char *p, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(p[i]))
            return false;
    return true;
}

char *qs_pulsar_topic_full_name(const char *topic)
{
    const char *rest = topic;
    if (!strncmp(topic, "persistent://", 13))
        rest = topic + 13;
    else if (strstr(topic, "://"))
        return NULL; /* non-persistent topics keep no history */
    else if (strchr(topic, '/'))
        return NULL; /* "tenant/namespace/name" needs its domain */
    if (rest == topic)
        return segment_ok(topic, strlen(topic)) && strlen(topic) <= 200
                   ? qs_xasprintf("persistent://public/default/%s", topic)
                   : NULL;
    const char *a = strchr(rest, '/');
    const char *b = a ? strchr(a + 1, '/') : NULL;
    if (!a || !b || strchr(b + 1, '/') || !segment_ok(rest, (size_t)(a - rest)) ||
        !segment_ok(a + 1, (size_t)(b - a - 1)) || !segment_ok(b + 1, strlen(b + 1)) ||
        strlen(topic) > 240)
        return NULL;
    return qs_xstrdup(topic);
}

static const char *check(qs_pulsar_settings *s, const char **option)
{
    char *full = qs_pulsar_topic_full_name(s->topic);
    if (!full) {
        *option = "topic";
        return "not a persistent Pulsar topic (\"name\" or persistent://tenant/namespace/name; "
               "name of a-z, A-Z, 0-9, '-', '_', '.', '=', ':')";
    }
    qs_topts_set(&s->topic, full);
    free(full);
    full = qs_pulsar_topic_full_name(s->presence_topic);
    if (!full) {
        *option = "presence_topic";
        return "not a persistent Pulsar topic (\"name\" or persistent://tenant/namespace/name)";
    }
    qs_topts_set(&s->presence_topic, full);
    free(full);
    if (!strcmp(s->topic, s->presence_topic)) {
        *option = "presence_topic";
        return "must differ from topic";
    }
    if (s->subscription_name && (!segment_ok(s->subscription_name, strlen(s->subscription_name)) ||
                                 strlen(s->subscription_name) > 200)) {
        *option = "subscription_name";
        return "expected 1 to 200 of a-z, A-Z, 0-9, '-', '_', '.', '=', ':'";
    }
    if (s->token && s->token_file) {
        *option = "token_file";
        return "token and token_file cannot be combined";
    }
    if (s->token && !*s->token) {
        *option = "token";
        return "the token is empty";
    }
    if (!s->tls && (s->tls_ca || s->tls_insecure)) {
        *option = s->tls_ca ? "tls_ca" : "tls_insecure";
        return "TLS options need a pulsar+ssl:// URL";
    }
    return NULL;
}

int qs_pulsar_settings_load(const qs_config_transport *cfg, qs_pulsar_settings *s, char **err)
{
    memset(s, 0, sizeof(*s));
    s->timeout_ms = QS_PULSAR_DEFAULT_TIMEOUT_MS;
    s->publish_timeout_ms = QS_PULSAR_DEFAULT_PUBLISH_TIMEOUT_MS;
    s->presence_ttl_ms = QS_PULSAR_DEFAULT_PRESENCE_TTL_MS;
    s->source = cfg->source ? cfg->source : "config";
    s->line = cfg->line;
    const char *name = cfg->name ? cfg->name : "pulsar";
    qs_topts o;
    if (qs_topts_load(cfg, name, &o, err) < 0)
        return -1;
    int rc = o.has_url ? read_url(&o, s, err) : read_block(&o, name, s, err);
    if (!rc) {
        if (!s->topic)
            s->topic = qs_xstrdup(QS_PULSAR_DEFAULT_TOPIC);
        if (!s->presence_topic)
            s->presence_topic = qs_xasprintf("%s-presence", s->topic);
        const char *option = NULL, *why = check(s, &option);
        if (why) {
            *err = qs_xasprintf("%s:%d: transport %s: %s: %s", o.source, o.line, name, option, why);
            rc = -1;
        }
    }
    if (!rc) {
        bool v6 = strchr(s->host, ':') != NULL;
        s->service_url = qs_xasprintf("%s://%s%s%s:%d", s->tls ? "pulsar+ssl" : "pulsar",
                                      v6 ? "[" : "", s->host, v6 ? "]" : "", s->port);
    }
    qs_topts_free(&o);
    if (rc)
        qs_pulsar_settings_free(s);
    return rc;
}
