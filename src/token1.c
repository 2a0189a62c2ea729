/* SPDX-License-Identifier: MIT
 * token1.c - protocol 1.0 access tokens (see token1.h).
 *
 * The checks run in the reference's order, although every failure gets the same answer:
 * structure and claim types (Go decodes the claims before anything else), the issuer (the
 * unverified "iss" selects the keys), the role's key, the algorithm and the signature, then
 * exp, nbf and aud (golang-jwt's validator), the header's typ, and the authorization details.
 */
#include "token1.h"

#include "gojson.h"
#include "pstring.h"

#include <stdio.h>
#include <stdlib.h>

const char *qs_token1_status_str(enum qs_token1_status st)
{
    switch (st) {
    case QS_TOKEN1_OK:
        return "token is valid";
    case QS_TOKEN1_E_MALFORMED:
        return "token is malformed";
    case QS_TOKEN1_E_ISSUER:
        return "token issuer is not trusted";
    case QS_TOKEN1_E_ROLE:
        return "token issuer has no key for this role";
    case QS_TOKEN1_E_ALG:
        return "token algorithm does not match the configured one";
    case QS_TOKEN1_E_SIGNATURE:
        return "token signature is invalid";
    case QS_TOKEN1_E_NO_EXP:
        return "token has no expiration time";
    case QS_TOKEN1_E_EXPIRED:
        return "token is expired";
    case QS_TOKEN1_E_NOT_YET_VALID:
        return "token is not valid yet";
    case QS_TOKEN1_E_AUDIENCE:
        return "token audience does not contain the resource identifier";
    case QS_TOKEN1_E_TYP:
        return "token type is not at+jwt";
    case QS_TOKEN1_E_DETAILS:
        return "token authorization_details claim is invalid";
    }
    return "unknown token status";
}

/* ---- reading JSON as Go reads it into a struct ---- */

/* Go matches a JSON member to a struct field exactly or under simple case folding; for the
 * ASCII field names used here, that is ASCII case plus U+017F (folds to s) and U+212A (folds
 * to k). */
static bool fold_equal(const char *key, const char *field)
{
    const unsigned char *k = (const unsigned char *)key;
    for (; *field; field++) {
        char f = *field;
        if (k[0] == 0xC5 && k[1] == 0xBF && f == 's') {
            k += 2;
            continue;
        }
        if (k[0] == 0xE2 && k[1] == 0x84 && k[2] == 0xAA && f == 'k') {
            k += 3;
            continue;
        }
        unsigned char c = *k;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)f)
            return false;
        k++;
    }
    return *k == 0;
}

/* The value Go would decode into the field (lower-case name): an exact member, else the last
 * member matching under folding; NULL when absent or null. */
static json_t *field(json_t *obj, const char *name)
{
    json_t *exact = json_object_get(obj, name);
    if (exact)
        return json_is_null(exact) ? NULL : exact;
    const char *key;
    json_t *v, *found = NULL;
    json_object_foreach(obj, key, v)
    {
        if (fold_equal(key, name))
            found = v;
    }
    return found && !json_is_null(found) ? found : NULL;
}

/* A string field: absent/null or a string. */
static bool string_field(json_t *obj, const char *name, const char **out)
{
    json_t *v = field(obj, name);
    *out = NULL;
    if (!v)
        return true;
    if (!json_is_string(v))
        return false;
    *out = json_string_value(v);
    return true;
}

/* The JSON number grammar, which Go's json.Number requires of a string. */
static bool is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* A NumericDate: a number, or a string holding a JSON number (Go decodes it through
 * json.Number); truncated to whole seconds towards zero, as math.Modf does. */
static bool date_field(json_t *obj, const char *name, bool *has, int64_t *out)
{
    json_t *v = field(obj, name);
    *has = false;
    if (!v)
        return true;
    double d;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        *has = true;
        return true;
    }
    if (json_is_real(v)) {
        d = json_real_value(v);
    } else if (json_is_string(v)) {
        if (!is_json_number(json_string_value(v)))
            return false;
        d = strtod(json_string_value(v), NULL);
    } else {
        return false;
    }
    if (d >= 9.2e18 || d <= -9.2e18)
        *out = d > 0 ? INT64_MAX : INT64_MIN;
    else
        *out = (int64_t)d;
    *has = true;
    return true;
}

static bool audience_ok(json_t *claims, const char *expected)
{
    json_t *v = field(claims, "aud");
    if (!v)
        return false;
    if (json_is_string(v))
        return strcmp(json_string_value(v), expected) == 0 && *expected;
    size_t i;
    json_t *e;
    bool found = false;
    json_array_foreach(v, i, e)
    {
        if (strcmp(json_string_value(e), expected) == 0)
            found = true;
    }
    return found;
}

static bool audience_type_ok(json_t *claims)
{
    json_t *v = field(claims, "aud");
    if (!v || json_is_string(v))
        return true;
    if (!json_is_array(v))
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return false;
    }
    return true;
}

/* The legacy claim as the reference's official builds decode it: an object whose publish and
 * subscribe are arrays of strings or of objects with a string "match". */
static bool legacy_matchers_ok(json_t *list)
{
    if (!list)
        return true;
    if (!json_is_array(list))
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (json_is_string(e))
            continue;
        const char *s;
        if (!json_is_object(e) || !field(e, "match") || !string_field(e, "match", &s) ||
            !string_field(e, "match_type", &s))
            return false;
    }
    return true;
}

static bool legacy_claim_ok(json_t *m)
{
    if (!m)
        return true;
    return json_is_object(m) && legacy_matchers_ok(field(m, "publish")) &&
           legacy_matchers_ok(field(m, "subscribe"));
}

/* The registered claims and the shapes Go decodes before validating anything. */
static bool claim_types_ok(json_t *claims)
{
    const char *s;
    bool has;
    int64_t t;
    if (!string_field(claims, "iss", &s) || !string_field(claims, "sub", &s) ||
        !string_field(claims, "jti", &s) || !audience_type_ok(claims) ||
        !date_field(claims, "exp", &has, &t) || !date_field(claims, "nbf", &has, &t) ||
        !date_field(claims, "iat", &has, &t))
        return false;
    if (!legacy_claim_ok(field(claims, "mercure")) ||
        !legacy_claim_ok(json_object_get(claims, "https://mercure.rocks/")))
        return false;
    json_t *ad = field(claims, "authorization_details");
    if (!ad)
        return true;
    if (!json_is_array(ad))
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(ad, i, e)
    {
        if (json_is_null(e))
            continue;
        if (!json_is_object(e) || !string_field(e, "type", &s))
            return false;
    }
    return true;
}

/* ---- authorization details ---- */

static void topic_free(qs_token1_topic *t)
{
    free(t->match);
    qs_urlpattern_free(t->pat);
}

static void detail_free(qs_token1_detail *d)
{
    for (size_t i = 0; i < d->n_topics; i++)
        topic_free(&d->topics[i]);
    free(d->topics);
    json_decref(d->payload);
}

void qs_token1_claims_free(qs_token1_claims *c)
{
    if (!c)
        return;
    free(c->issuer);
    for (size_t i = 0; i < c->n_details; i++)
        detail_free(&c->details[i]);
    free(c->details);
    memset(c, 0, sizeof(*c));
}

static bool parse_topic(const qs_token1_params *p, json_t *e, qs_token1_topic *t)
{
    if (!json_is_object(e))
        return false;
    json_t *m = field(e, "match");
    const char *type;
    if (!m || !json_is_string(m) || !string_field(e, "match_type", &type))
        return false;
    size_t n = json_string_length(m);
    const char *s = json_string_value(m);
    if (n == 0 || n > QS_URLPATTERN_MAX_LENGTH || !qs_protocol_string_valid(s, n))
        return false;
    if (!type || !*type || strcmp(type, "exact") == 0)
        t->type = QS_MATCHER_EXACT;
    else if (strcmp(type, "urlpattern") == 0)
        t->type = QS_MATCHER_URLPATTERN;
    else
        return false;
    t->match = qs_xstrndup(s, n);
    t->len = n;
    if (t->type == QS_MATCHER_URLPATTERN && !(n == 1 && s[0] == '*')) {
        t->pat = qs_urlpattern_compile(s, n, p->base, p->max_states, NULL, NULL);
        if (!t->pat)
            return false;
    }
    return true;
}

static bool parse_details(const qs_token1_params *p, json_t *claims, qs_token1_claims *out)
{
    json_t *ad = field(claims, "authorization_details");
    size_t count = 0, topics = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ad, i, e)
    {
        const char *type;
        if (json_is_null(e) || !string_field(e, "type", &type) || !type ||
            strcmp(type, QS_TOKEN1_DETAIL_TYPE) != 0)
            continue;
        if (++count > QS_TOKEN1_MAX_DETAILS)
            return false;
        json_t *actions = field(e, "actions");
        json_t *tl = field(e, "topics");
        if ((actions && !json_is_array(actions)) || (tl && !json_is_array(tl)))
            return false;
        topics += json_array_size(tl);
        if (topics > QS_TOKEN1_MAX_TOPICS)
            return false;
        out->details = qs_xrealloc(out->details, count * sizeof(qs_token1_detail));
        qs_token1_detail *d = &out->details[count - 1];
        memset(d, 0, sizeof(*d));
        out->n_details = count;
        json_t *payload = field(e, "payload");
        if (payload)
            d->payload = json_incref(payload);
        size_t k;
        json_t *a;
        json_array_foreach(actions, k, a)
        {
            if (json_is_null(a))
                continue; /* decodes to "": an unknown action */
            if (!json_is_string(a))
                return false;
            if (strcmp(json_string_value(a), "publish") == 0)
                d->publish = true;
            else if (strcmp(json_string_value(a), "subscribe") == 0)
                d->subscribe = true;
        }
        if (json_array_size(actions) == 0 || json_array_size(tl) == 0)
            return false;
        d->topics = qs_xcalloc(json_array_size(tl), sizeof(qs_token1_topic));
        json_t *t;
        json_array_foreach(tl, k, t)
        {
            d->n_topics = k + 1;
            if (!parse_topic(p, t, &d->topics[k]))
                return false;
        }
    }
    return true;
}

/* "at+jwt" or "application/at+jwt", case-insensitively. */
static bool typ_ok(json_t *header)
{
    json_t *typ = json_object_get(header, "typ");
    if (!json_is_string(typ))
        return false;
    const char *s = json_string_value(typ);
    if (strncasecmp(s, "application/", 12) == 0)
        s += 12;
    return strcasecmp(s, "at+jwt") == 0;
}

enum qs_token1_status qs_token1_verify(const qs_token1_params *p, const char *token, size_t len,
                                       qs_token1_claims *out)
{
    memset(out, 0, sizeof(*out));
    json_t *header, *claims;
    if (qs_jwt_decode(token, len, &header, &claims) != QS_JWT_OK)
        return QS_TOKEN1_E_MALFORMED;
    enum qs_token1_status st = QS_TOKEN1_E_MALFORMED;
    qs_token1_claims c = {0};
    const char *iss;
    if (!json_is_string(json_object_get(header, "alg")) || !claim_types_ok(claims) ||
        !string_field(claims, "iss", &iss))
        goto out;
    const qs_token1_issuer *issuer = NULL;
    for (size_t i = 0; i < p->n_issuers && !issuer; i++)
        if (strcmp(p->issuers[i].identifier, iss ? iss : "") == 0)
            issuer = &p->issuers[i];
    st = QS_TOKEN1_E_ISSUER;
    if (!issuer)
        goto out;
    const qs_jwt_key *key = p->publish ? issuer->publisher : issuer->subscriber;
    st = QS_TOKEN1_E_ROLE;
    if (!key)
        goto out;
    switch (qs_jwt_check_signature(key, token, len, header)) {
    case QS_JWT_OK:
        break;
    case QS_JWT_E_ALG:
        st = QS_TOKEN1_E_ALG;
        goto out;
    case QS_JWT_E_SIGNATURE:
        st = QS_TOKEN1_E_SIGNATURE;
        goto out;
    default:
        st = QS_TOKEN1_E_MALFORMED;
        goto out;
    }
    bool has_exp;
    date_field(claims, "exp", &has_exp, &c.exp);
    date_field(claims, "nbf", &c.has_nbf, &c.nbf);
    st = QS_TOKEN1_E_NO_EXP;
    if (!has_exp)
        goto out;
    st = QS_TOKEN1_E_EXPIRED;
    if (p->now >= c.exp)
        goto out;
    st = QS_TOKEN1_E_NOT_YET_VALID;
    if (c.has_nbf && p->now < c.nbf)
        goto out;
    st = QS_TOKEN1_E_AUDIENCE;
    if (p->audience && *p->audience && !audience_ok(claims, p->audience))
        goto out;
    st = QS_TOKEN1_E_TYP;
    if (!typ_ok(header))
        goto out;
    st = QS_TOKEN1_E_DETAILS;
    if (!parse_details(p, claims, &c))
        goto out;
    c.issuer = qs_xstrdup(iss ? iss : "");
    st = QS_TOKEN1_OK;
    *out = c;
    memset(&c, 0, sizeof(c));
out:
    qs_token1_claims_free(&c);
    json_decref(header);
    json_decref(claims);
    return st;
}

bool qs_token1_is_access_token(const char *token, size_t len)
{
    json_t *header, *claims;
    if (qs_jwt_decode(token, len, &header, &claims) != QS_JWT_OK)
        return false;
    bool at = typ_ok(header);
    json_decref(header);
    json_decref(claims);
    return at;
}

static bool topic_matches(const qs_token1_topic *t, const char *topic, size_t len)
{
    if (t->len == 1 && t->match[0] == '*')
        return true;
    if (t->type == QS_MATCHER_EXACT)
        return t->len == len && memcmp(t->match, topic, len) == 0;
    return t->pat && qs_urlpattern_match(t->pat, topic, len);
}

bool qs_token1_grants(const qs_token1_claims *c, bool publish, const char *topic, size_t len)
{
    for (size_t i = 0; i < c->n_details; i++) {
        const qs_token1_detail *d = &c->details[i];
        if (publish ? !d->publish : !d->subscribe)
            continue;
        for (size_t k = 0; k < d->n_topics; k++)
            if (topic_matches(&d->topics[k], topic, len))
                return true;
    }
    return false;
}

json_t *qs_token1_subscribe_payload(const qs_token1_claims *c, const char *pattern, size_t len,
                                    bool *found)
{
    *found = false;
    for (size_t i = 0; i < c->n_details; i++) {
        const qs_token1_detail *d = &c->details[i];
        if (!d->subscribe)
            continue;
        for (size_t k = 0; k < d->n_topics; k++) {
            if (topic_matches(&d->topics[k], pattern, len)) {
                *found = true;
                return d->payload;
            }
        }
    }
    return NULL;
}

/* ---- RFC 6750 and RFC 9728 ---- */

int qs_bearer_status(enum qs_bearer_error e)
{
    switch (e) {
    case QS_BEARER_INVALID_REQUEST:
        return 400;
    case QS_BEARER_INSUFFICIENT_SCOPE:
        return 403;
    case QS_BEARER_CHALLENGE:
    case QS_BEARER_INVALID_TOKEN:
        break;
    }
    return 401;
}

/* Go's %q for the ASCII strings written here: quotes and backslashes escaped, controls as
 * \xNN (or \n, \r, \t). */
static void go_quote(qs_buf *b, const char *s)
{
    qs_buf_append_char(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            qs_buf_append_char(b, '\\');
            qs_buf_append_char(b, (char)c);
        } else if (c == '\n') {
            qs_buf_append_str(b, "\\n");
        } else if (c == '\r') {
            qs_buf_append_str(b, "\\r");
        } else if (c == '\t') {
            qs_buf_append_str(b, "\\t");
        } else if (c < 0x20 || c == 0x7F) {
            qs_buf_appendf(b, "\\x%02x", c);
        } else {
            qs_buf_append_char(b, (char)c);
        }
    }
    qs_buf_append_char(b, '"');
}

char *qs_bearer_challenge(enum qs_bearer_error e, const char *metadata_url)
{
    static const char *const codes[] = {
        [QS_BEARER_CHALLENGE] = NULL,
        [QS_BEARER_INVALID_REQUEST] = "invalid_request",
        [QS_BEARER_INVALID_TOKEN] = "invalid_token",
        [QS_BEARER_INSUFFICIENT_SCOPE] = "insufficient_scope",
    };
    qs_buf b = QS_BUF_INIT;
    qs_buf_append_str(&b, "Bearer");
    const char *sep = " ";
    if (codes[e]) {
        qs_buf_append_str(&b, sep);
        qs_buf_append_str(&b, "error=");
        go_quote(&b, codes[e]);
        sep = ", ";
    }
    if (metadata_url && *metadata_url) {
        qs_buf_append_str(&b, sep);
        qs_buf_append_str(&b, "resource_metadata=");
        go_quote(&b, metadata_url);
    }
    return qs_buf_steal(&b);
}

void qs_token1_identity(const char *configured, const char *scheme, const char *host,
                        char **identifier, char **metadata_url)
{
    *identifier = *metadata_url = NULL;
    if (configured && *configured) {
        *identifier = qs_xstrdup(configured);
        /* Absolute with a host: scheme "://" host, then the metadata path. */
        qs_weburl u;
        if (qs_weburl_parse(configured, strlen(configured), NULL, &u) == 0) {
            qs_slice s = qs_weburl_get(&u, QS_WEBURL_PROTOCOL);
            const char *sep = strstr(configured, "://");
            if (sep && (size_t)(sep - configured) == s.n) {
                const char *h = sep + 3;
                size_t hn = strcspn(h, "/?#");
                const char *at = memchr(h, '@', hn);
                if (at) {
                    hn -= (size_t)(at + 1 - h);
                    h = at + 1;
                }
                if (hn)
                    *metadata_url = qs_xasprintf("%.*s://%.*s%s", (int)s.n, configured, (int)hn, h,
                                                 QS_RESOURCE_METADATA_PATH);
            }
            qs_weburl_free(&u);
        }
        return;
    }
    if (!host || !*host)
        return;
    *identifier = qs_xasprintf("%s://%s/.well-known/mercure", scheme, host);
    *metadata_url = qs_xasprintf("%s://%s%s", scheme, host, QS_RESOURCE_METADATA_PATH);
}

void qs_resource_metadata_json(const qs_resource_metadata *m, qs_buf *out)
{
    qs_buf_append_str(out, "{\"resource\":");
    qs_gojson_string(out, m->resource ? m->resource : "", m->resource ? strlen(m->resource) : 0);
    qs_buf_append_str(out, ",\"bearer_methods_supported\":[\"header\"]");
    if (m->n_authorization_servers) {
        qs_buf_append_str(out, ",\"authorization_servers\":[");
        for (size_t i = 0; i < m->n_authorization_servers; i++) {
            if (i)
                qs_buf_append_char(out, ',');
            qs_gojson_string(out, m->authorization_servers[i], strlen(m->authorization_servers[i]));
        }
        qs_buf_append_char(out, ']');
    }
    qs_buf_append_str(out,
                      ",\"authorization_details_types_supported\":[\"" QS_TOKEN1_DETAIL_TYPE "\"]");
    if (m->cookie_name && *m->cookie_name) {
        qs_buf_append_str(out, ",\"mercure_cookie\":");
        qs_gojson_string(out, m->cookie_name, strlen(m->cookie_name));
    }
    if (m->subscriptions)
        qs_buf_append_str(out, ",\"mercure_subscriptions\":true");
    qs_buf_append_str(out, "}\n");
}
