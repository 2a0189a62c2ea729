/* SPDX-License-Identifier: MIT
 * token.c - the `mercure token` command: options, claims, signing.
 */
#include "token.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "config.h"
#include "jwt.h"

#define MAX_KEY_FILE (1024 * 1024)

static const char token_usage[] =
    "Usage: mercure token (--key KEY | --key-file FILE) [options]\n"
    "\n"
    "Prints a JWT that a hub configured with the matching key accepts.\n"
    "\n"
    "  --key KEY            an HMAC secret, or a PEM private key\n"
    "  --key-file FILE      the same, read from FILE (\"-\": standard input); a secret's\n"
    "                       final newline is dropped\n"
    "  --alg ALG            HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256\n"
    "                       ES384 ES512 EdDSA (default: HS256 for a secret; for a PEM key,\n"
    "                       RS256, ES256/384/512 by curve, or EdDSA)\n"
    "  --kid KID            the key id, for hubs that take their keys from a JWK Set\n"
    "  --publish TOPIC      a topic or URI template the token may publish to (repeatable)\n"
    "  --subscribe TOPIC    a topic or URI template the token may receive private updates\n"
    "                       of (repeatable)\n"
    "  --payload JSON       mercure.payload, shown to subscribers of presence events\n"
    "  --exp DURATION       expires after DURATION (1h, 30m, 7d) or at @UNIX_SECONDS;\n"
    "                       without it the token never expires\n"
    "  --verbose            also print the header and claims on standard error\n";

static bool looks_like_pem(const char *key, size_t len)
{
    static const char mark[] = "-----BEGIN ";
    for (size_t i = 0; i + sizeof(mark) - 1 <= len; i++)
        if (memcmp(key + i, mark, sizeof(mark) - 1) == 0)
            return true;
    return false;
}

static json_t *string_array(const char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

char *qs_token_make(const qs_token_request *r, char **err)
{
    *err = NULL;
    if (!r->key || !r->key_len) {
        *err = qs_xstrdup("the key is empty");
        return NULL;
    }
    bool pem = looks_like_pem(r->key, r->key_len);
    enum qs_jwt_alg alg;
    if (r->alg) {
        if (qs_jwt_alg_parse(r->alg, &alg) < 0 || !*r->alg) {
            *err = qs_xasprintf("unsupported algorithm \"%s\"", r->alg);
            return NULL;
        }
    } else if (pem) {
        if (qs_jwt_alg_for_pem(r->key, r->key_len, &alg) < 0) {
            *err = qs_xstrdup("the key is not a PEM private key of a supported type");
            return NULL;
        }
    } else {
        alg = QS_JWT_HS256;
    }
    if (qs_jwt_alg_is_hmac(alg) && pem) {
        *err = qs_xasprintf("%s signs with a shared secret, and the key is a PEM document: give "
                            "--alg (e.g. RS256) to sign with it as a private key",
                            qs_jwt_alg_name(alg));
        return NULL;
    }
    if (!qs_jwt_alg_is_hmac(alg) && !pem) {
        *err = qs_xasprintf("%s needs a PEM private key", qs_jwt_alg_name(alg));
        return NULL;
    }
    if (!r->n_publish && !r->n_subscribe) {
        *err = qs_xstrdup("the token would grant nothing: give --publish or --subscribe");
        return NULL;
    }

    json_t *mercure = json_object();
    if (r->n_publish)
        json_object_set_new(mercure, "publish", string_array(r->publish, r->n_publish));
    if (r->n_subscribe)
        json_object_set_new(mercure, "subscribe", string_array(r->subscribe, r->n_subscribe));
    if (r->payload) {
        json_error_t jerr;
        json_t *payload = json_loads(r->payload, JSON_DECODE_ANY, &jerr);
        if (!payload) {
            *err = qs_xasprintf("--payload is not JSON: %s", jerr.text);
            json_decref(mercure);
            return NULL;
        }
        json_object_set_new(mercure, "payload", payload);
    }
    json_t *claims = json_object();
    json_object_set_new(claims, "mercure", mercure);
    if (r->has_exp)
        json_object_set_new(claims, "exp", json_integer(r->exp));

    const char *why = NULL;
    qs_jwt_key *key = qs_jwt_key_new_private(alg, r->key, r->key_len, &why);
    char *token = NULL;
    if (!key)
        *err = qs_xasprintf("the key cannot sign %s tokens: %s", qs_jwt_alg_name(alg), why);
    else if (!(token = qs_jwt_sign_kid(key, r->kid, claims, &why)))
        *err = qs_xasprintf("cannot sign: %s", why);
    qs_jwt_key_free(key);
    json_decref(claims);
    return token;
}

/* ---- the command line --------------------------------------------------------------------- */

/* Reads a key file ("-": standard input), bounded. */
static char *read_key_file(const char *path, size_t *len, char **err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        *err = qs_xasprintf("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    qs_buf b = QS_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= MAX_KEY_FILE)
        qs_buf_append(&b, chunk, n);
    bool failed = ferror(f);
    if (f != stdin)
        fclose(f);
    if (failed || b.len > MAX_KEY_FILE) {
        *err = failed ? qs_xasprintf("cannot read %s", path)
                      : qs_xasprintf("%s is larger than %d bytes", path, MAX_KEY_FILE);
        qs_buf_free(&b);
        return NULL;
    }
    /* An editor's final newline is not part of a secret (a PEM document keeps it). */
    if (!looks_like_pem(b.p ? b.p : "", b.len)) {
        if (b.len && b.p[b.len - 1] == '\n')
            b.len--;
        if (b.len && b.p[b.len - 1] == '\r')
            b.len--;
    }
    *len = b.len;
    return b.p ? qs_buf_steal(&b) : qs_xstrdup("");
}

static int parse_exp(const char *v, int64_t *out)
{
    if (v[0] == '@') {
        char *end;
        errno = 0;
        long long t = strtoll(v + 1, &end, 10);
        if (errno || end == v + 1 || *end)
            return -1;
        *out = t;
        return 0;
    }
    uint64_t ms;
    if (qs_parse_duration_ms(v, &ms) < 0 || ms == 0)
        return -1;
    *out = qs_wall_seconds() + (int64_t)((ms + 999) / 1000);
    return 0;
}

static void print_part(const char *name, const char *token, size_t len)
{
    unsigned char *raw;
    size_t raw_len;
    if (qs_base64url_decode(token, len, &raw, &raw_len) != 0)
        return;
    json_t *v = json_loadb((const char *)raw, raw_len, 0, NULL);
    char *text = v ? json_dumps(v, JSON_INDENT(2)) : NULL;
    if (text)
        fprintf(stderr, "%s: %s\n", name, text);
    free(text);
    json_decref(v);
    free(raw);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mercure token: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", token_usage);
    return 2;
}

int qs_token_main(int argc, char **argv)
{
    qs_token_request r = {0};
    const char **publish = qs_xcalloc((size_t)argc, sizeof(*publish));
    const char **subscribe = qs_xcalloc((size_t)argc, sizeof(*subscribe));
    const char *key = NULL, *key_file = NULL;
    bool verbose = false;
    int rc = 2;
    char *material = NULL, *token = NULL, *err = NULL;
    size_t material_len = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(token_usage, stdout);
            rc = 0;
            goto out;
        }
        if (!strcmp(a, "--verbose")) {
            verbose = true;
            continue;
        }
        /* Every other option takes a value, as the next argument or after '='. */
        const char *names[] = {"--key",     "--key-file",  "--alg",     "--kid",
                               "--publish", "--subscribe", "--payload", "--exp"};
        const char *value = NULL;
        size_t which = QS_ARRAY_LEN(names);
        for (size_t k = 0; k < QS_ARRAY_LEN(names) && which == QS_ARRAY_LEN(names); k++) {
            size_t n = strlen(names[k]);
            if (!strcmp(a, names[k])) {
                if (i + 1 >= argc) {
                    rc = usage_error("%s needs a value", names[k]);
                    goto out;
                }
                which = k;
                value = argv[++i];
            } else if (!strncmp(a, names[k], n) && a[n] == '=') {
                which = k;
                value = a + n + 1;
            }
        }
        switch (which) {
        case 0:
            key = value;
            break;
        case 1:
            key_file = value;
            break;
        case 2:
            r.alg = value;
            break;
        case 3:
            r.kid = value;
            break;
        case 4:
            publish[r.n_publish++] = value;
            break;
        case 5:
            subscribe[r.n_subscribe++] = value;
            break;
        case 6:
            r.payload = value;
            break;
        case 7:
            if (parse_exp(value, &r.exp) < 0) {
                rc = usage_error("--exp: \"%s\" is neither a duration (1h) nor @UNIX_SECONDS",
                                 value);
                goto out;
            }
            r.has_exp = true;
            break;
        default:
            rc = usage_error("unknown option \"%s\"", a);
            goto out;
        }
    }
    if (!key == !key_file) {
        rc = usage_error("%s", key ? "give --key or --key-file, not both"
                                   : "a key is needed: --key or --key-file");
        goto out;
    }
    if (key_file) {
        material = read_key_file(key_file, &material_len, &err);
        if (!material) {
            rc = 1;
            goto out;
        }
    } else {
        material = qs_xstrdup(key);
        material_len = strlen(key);
    }
    r.key = material;
    r.key_len = material_len;
    r.publish = publish;
    r.subscribe = subscribe;
    token = qs_token_make(&r, &err);
    if (!token) {
        rc = 1;
        goto out;
    }
    if (verbose) {
        const char *dot1 = strchr(token, '.');
        const char *dot2 = strchr(dot1 + 1, '.');
        print_part("header", token, (size_t)(dot1 - token));
        print_part("claims", dot1 + 1, (size_t)(dot2 - dot1 - 1));
    }
    printf("%s\n", token);
    rc = 0;
out:
    if (err)
        fprintf(stderr, "mercure token: %s\n", err);
    if (material) {
        OPENSSL_cleanse(material, material_len);
        free(material);
    }
    free(token);
    free(err);
    free(publish);
    free(subscribe);
    return rc;
}
