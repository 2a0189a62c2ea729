/* SPDX-License-Identifier: MIT
 * kafka_settings.c - the Kafka transport's options (from a URL or a block), the checks of
 * a topic's layout, and messages read as updates (kafka.h). Pure: no broker, no I/O.
 */
#include "transport/kafka.h"

#include <stdio.h>
#include <stdlib.h>

#include "record.h"

void qs_kafka_settings_free(qs_kafka_settings *s)
{
    for (size_t i = 0; i < s->n_addrs; i++)
        free(s->addrs[i]);
    free(s->addrs);
    free(s->brokers);
    free(s->topic);
    free(s->presence_topic);
    free(s->consumer_group);
    free(s->user);
    free(s->password);
    free(s->sasl_mechanism);
    free(s->tls_ca);
    free(s->tls_cert);
    free(s->tls_key);
    memset(s, 0, sizeof(*s));
}

/* The options whose values an error never shows. */
static const char *const secrets[] = {"password", NULL};

/* "host", "host:port", "[v6]" or "[v6]:port" (Kafka's port 9092 by default), normalized to
 * "host:port"; NULL when malformed. */
static char *normalize_address(const char *a, size_t len)
{
    char *copy = qs_xstrndup(a, len);
    const char *h = copy, *port = NULL;
    size_t hlen;
    bool v6 = copy[0] == '[';
    if (v6) {
        const char *close = strchr(copy, ']');
        if (!close || close == copy + 1 || (close[1] && close[1] != ':'))
            goto bad;
        h = copy + 1;
        hlen = (size_t)(close - h);
        port = close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = strchr(copy, ':');
        if (colon && strchr(colon + 1, ':'))
            goto bad; /* a bare IPv6 address needs brackets */
        hlen = colon ? (size_t)(colon - copy) : len;
        port = colon ? colon + 1 : NULL;
    }
    if (!hlen)
        goto bad;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c == ',' || c == '/' || c == '@' || c >= 0x7f)
            goto bad;
    }
    long p = 9092;
    if (port) {
        if (!*port)
            goto bad;
        p = 0;
        for (const char *d = port; *d; d++) {
            if (*d < '0' || *d > '9' || p > 65535)
                goto bad;
            p = p * 10 + (*d - '0');
        }
        if (p < 1 || p > 65535)
            goto bad;
    }
    char *out = qs_xasprintf("%s%.*s%s:%ld", v6 ? "[" : "", (int)hlen, h, v6 ? "]" : "", p);
    free(copy);
    return out;
bad:
    free(copy);
    return NULL;
}

/* Every `addr` (each may be a comma-separated list) is a broker; the last source that
 * names brokers replaces those of an earlier one (a block's over its URL's). */
static int read_addrs(qs_topts *o, qs_kafka_settings *s, char **err)
{
    bool replaced = false;
    for (size_t i = 0; i < o->n; i++) {
        qs_topt *t = &o->v[i];
        if (strcmp(t->key, "addr") != 0)
            continue;
        t->used = true;
        if (!t->value || !*t->value)
            return qs_topts_fail(o, t, "a broker address is required", secrets, err);
        if (!replaced) {
            for (size_t k = 0; k < s->n_addrs; k++)
                free(s->addrs[k]);
            s->n_addrs = 0;
            replaced = true;
        }
        for (const char *p = t->value;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char *a = normalize_address(p, len);
            if (!a)
                return qs_topts_fail(o, t, "expected host:port", secrets, err);
            s->addrs = qs_xrealloc(s->addrs, (s->n_addrs + 1) * sizeof(*s->addrs));
            s->addrs[s->n_addrs++] = a;
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    return 0;
}

static int read_common(qs_topts *o, qs_kafka_settings *s, char **err)
{
    uint64_t rf = 0;
    const qs_topt *rft = qs_topts_get(o, "replication_factor");
    if (read_addrs(o, s, err) < 0 || qs_topts_copy(o, "topic", &s->topic, err) < 0 ||
        qs_topts_copy(o, "presence_topic", &s->presence_topic, err) < 0 ||
        qs_topts_copy(o, "consumer_group", &s->consumer_group, err) < 0 ||
        qs_topts_copy(o, "user", &s->user, err) < 0 ||
        qs_topts_copy(o, "password", &s->password, err) < 0 ||
        qs_topts_copy(o, "sasl_mechanism", &s->sasl_mechanism, err) < 0 ||
        qs_topts_bool(o, "tls", &s->tls, err) < 0 ||
        qs_topts_bool(o, "tls_insecure", &s->tls_insecure, err) < 0 ||
        qs_topts_copy(o, "tls_ca", &s->tls_ca, err) < 0 ||
        qs_topts_copy(o, "tls_cert", &s->tls_cert, err) < 0 ||
        qs_topts_copy(o, "tls_key", &s->tls_key, err) < 0 ||
        qs_topts_duration_min(o, "timeout", 100, &s->timeout_ms, err) < 0 ||
        qs_topts_duration_min(o, "publish_timeout", 100, &s->publish_timeout_ms, err) < 0 ||
        qs_topts_duration_min(o, "presence_ttl", 1000, &s->presence_ttl_ms, err) < 0 ||
        qs_topts_duration_min(o, "fetch_wait", 0, &s->fetch_wait_ms, err) < 0 ||
        qs_topts_u64(o, "replication_factor", &rf, err) < 0)
        return -1;
    const qs_topt *fw = qs_topts_get(o, "fetch_wait");
    if (fw && s->fetch_wait_ms > QS_KAFKA_MAX_FETCH_WAIT_MS)
        return qs_topts_fail(o, fw, "at most 1s: every update may wait that long", secrets, err);
    if (rft) {
        if (rf < 1 || rf > 32767)
            return qs_topts_fail(o, rft, "expected a number of replicas from 1 to 32767", secrets,
                                 err);
        s->replication_factor = (int)rf;
    }
    return 0;
}

/* kafka://anything/?addr=…; the URL's host is not a broker (the paid edition's format
 * names them in `addr`), but user and password in the URL are taken. */
static int read_url(qs_topts *o, qs_kafka_settings *s, char **err)
{
    const qs_url *u = &o->url;
    if (strcmp(u->scheme, "kafka") != 0) {
        *err = qs_xasprintf("%s:%d: transport %s: the URL scheme must be kafka://, not \"%s://\"",
                            o->source, o->line, o->transport, u->scheme);
        return -1;
    }
    if (u->user && *u->user)
        qs_topts_set(&s->user, u->user);
    if (u->password)
        qs_topts_set(&s->password, u->password);
    if (read_common(o, s, err) < 0)
        return -1;
    return qs_topts_finish(o, err);
}

static int read_block(qs_topts *o, const char *name, qs_kafka_settings *s, char **err)
{
    const qs_topt *url = qs_topts_get(o, "url");
    if (url) {
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
    }
    if (read_common(o, s, err) < 0)
        return -1;
    return qs_topts_finish(o, err);
}

bool qs_kafka_topic_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 249 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The first contradiction between the options, as "option: why", or NULL. */
static const char *check(const qs_kafka_settings *s, const char **option)
{
    if (!s->n_addrs) {
        *option = "addr";
        return "at least one broker is required (addr=host:port, repeatable)";
    }
    if (!qs_kafka_topic_name_ok(s->topic)) {
        *option = "topic";
        return "not a valid Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-')";
    }
    if (!qs_kafka_topic_name_ok(s->presence_topic)) {
        *option = "presence_topic";
        return "not a valid Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-')";
    }
    if (!strcmp(s->topic, s->presence_topic)) {
        *option = "presence_topic";
        return "must differ from topic (the registry's topic is compacted)";
    }
    if (s->consumer_group && (!*s->consumer_group || strlen(s->consumer_group) > 255)) {
        *option = "consumer_group";
        return "expected a name of 1 to 255 bytes";
    }
    if (!s->user != !s->password) {
        *option = s->user ? "password" : "user";
        return "user and password go together (SASL)";
    }
    if (s->sasl_mechanism) {
        *option = "sasl_mechanism";
        if (strcmp(s->sasl_mechanism, "PLAIN") && strcmp(s->sasl_mechanism, "SCRAM-SHA-256") &&
            strcmp(s->sasl_mechanism, "SCRAM-SHA-512"))
            return "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512";
        if (!s->user)
            return "needs user and password";
    }
    if (!s->tls && (s->tls_ca || s->tls_cert || s->tls_key || s->tls_insecure)) {
        *option = s->tls_ca     ? "tls_ca"
                  : s->tls_cert ? "tls_cert"
                  : s->tls_key  ? "tls_key"
                                : "tls_insecure";
        return "TLS options need tls=1";
    }
    if (!s->tls_cert != !s->tls_key) {
        *option = s->tls_cert ? "tls_key" : "tls_cert";
        return "tls_cert and tls_key go together";
    }
    return NULL;
}

int qs_kafka_settings_load(const qs_config_transport *cfg, qs_kafka_settings *s, char **err)
{
    memset(s, 0, sizeof(*s));
    s->timeout_ms = QS_KAFKA_DEFAULT_TIMEOUT_MS;
    s->publish_timeout_ms = QS_KAFKA_DEFAULT_PUBLISH_TIMEOUT_MS;
    s->presence_ttl_ms = QS_KAFKA_DEFAULT_PRESENCE_TTL_MS;
    s->fetch_wait_ms = QS_KAFKA_DEFAULT_FETCH_WAIT_MS;
    s->replication_factor = -1;
    s->source = cfg->source ? cfg->source : "config";
    s->line = cfg->line;
    const char *name = cfg->name ? cfg->name : "kafka";
    qs_topts o;
    if (qs_topts_load(cfg, name, &o, err) < 0)
        return -1;
    int rc = o.has_url ? read_url(&o, s, err) : read_block(&o, name, s, err);
    if (!rc) {
        if (!s->topic)
            s->topic = qs_xstrdup(QS_KAFKA_DEFAULT_TOPIC);
        if (!s->presence_topic)
            s->presence_topic = qs_xasprintf("%s-presence", s->topic);
        const char *option = NULL, *why = check(s, &option);
        if (why) {
            *err = qs_xasprintf("%s:%d: transport %s: %s: %s", o.source, o.line, name, option, why);
            rc = -1;
        }
    }
    if (!rc) {
        qs_buf b = QS_BUF_INIT;
        for (size_t i = 0; i < s->n_addrs; i++) {
            if (i)
                qs_buf_append_char(&b, ',');
            qs_buf_append(&b, s->addrs[i], strlen(s->addrs[i]));
        }
        qs_buf_append_char(&b, '\0');
        s->brokers = qs_xstrdup(b.p);
        qs_buf_free(&b);
    }
    qs_topts_free(&o);
    if (rc)
        qs_kafka_settings_free(s);
    return rc;
}

/* ------------------------------------------------------------ topics */

const char *qs_kafka_topic_refusal(bool presence, int partitions, const char *cleanup_policy)
{
    if (partitions != 1)
        return presence ? "it must have exactly one partition (every node reads the whole "
                          "registry in one order)"
                        : "it must have exactly one partition (its offsets are the one order "
                          "in which every node delivers updates)";
    if (!cleanup_policy)
        return NULL;
    bool compact = strstr(cleanup_policy, "compact") != NULL;
    if (!presence && compact)
        return "its cleanup.policy must be \"delete\": compaction would remove updates from "
               "history and break Last-Event-ID";
    if (presence && !compact)
        return "its cleanup.policy must be \"compact\": the registry keeps the last record of "
               "each key, and deleting by age would forget live subscriptions";
    if (presence && strstr(cleanup_policy, "delete"))
        return "its cleanup.policy must be \"compact\" alone: deleting by age would forget "
               "live subscriptions";
    return NULL;
}

/* ------------------------------------------------------------ the brokers' refusals */

const char *qs_kafka_conf_error_option(const char *errstr)
{
    /* librdkafka writes "SASL" in capitals too: "Unsupported SASL mechanism: …" from a
     * build without SCRAM. */
    if (strcasestr(errstr, "sasl"))
        return "sasl_mechanism";
    if (strstr(errstr, "ssl.ca") || strstr(errstr, "CA"))
        return "tls_ca";
    if (strstr(errstr, "ssl.certificate") || strstr(errstr, "certificate"))
        return "tls_cert";
    if (strstr(errstr, "ssl.key") || strstr(errstr, "private key"))
        return "tls_key";
    return "addr";
}

bool qs_kafka_scram_nonce_repeated(int version, const char *mechanism)
{
    return mechanism && !strncmp(mechanism, "SCRAM-", 6) && version >= 0 &&
           version < QS_KAFKA_SCRAM_NONCE_FIXED;
}

char *qs_kafka_login_error(const qs_kafka_settings *s, const char *reason, int version,
                           const char *version_str)
{
    const char *mechanism = s->sasl_mechanism ? s->sasl_mechanism : "PLAIN";
    const char *user = s->user ? s->user : "";
    /* The brokers' answer to a mechanism they do not offer (SaslHandshake's error). */
    if (strstr(reason, "Unsupported SASL mechanism"))
        return qs_xasprintf("%s:%d: transport kafka: sasl_mechanism: the brokers do not offer "
                            "SASL %s (user \"%s\", password ****): %s",
                            s->source, s->line, mechanism, user, reason);
    char note[320] = "";
    if (qs_kafka_scram_nonce_repeated(version, s->sasl_mechanism))
        snprintf(note, sizeof(note),
                 "; note: librdkafka %s repeats its nonce in SCRAM logins, which Kafka brokers 4.0 "
                 "and later refuse whatever the password (fixed in librdkafka 2.6.1): with such "
                 "brokers, use librdkafka 2.6.1 or later, or sasl_mechanism PLAIN over tls",
                 version_str ? version_str : "?");
    return qs_xasprintf("%s:%d: transport kafka: password: the brokers refused user \"%s\" (SASL "
                        "%s, password ****): %s%s",
                        s->source, s->line, user, mechanism, reason, note);
}

/* ------------------------------------------------------------ messages */

qs_update *qs_kafka_message_update(const void *value, size_t len, const void *id_header,
                                   size_t id_len, int64_t offset)
{
    qs_slice rid;
    if (!value || !id_header || offset < 0 || !qs_record_id(value, len, &rid) || rid.n != id_len ||
        memcmp(rid.p, id_header, id_len) != 0)
        return NULL;
    qs_update *u = qs_record_decode(value, len);
    if (!u)
        return NULL;
    u->seq = (uint64_t)offset + 1;
    qs_update_finalize(u);
    return u;
}
