/* SPDX-License-Identifier: MIT
 * jwks.c - JWK Sets: parsing into verification keys, and the choice of a token's key.
 *
 * Each JWK becomes one entry per algorithm it may serve (an RSA key without "alg" serves
 * six), so choosing a key is a comparison of (kid, alg) pairs. Public parameters become a
 * DER SubjectPublicKeyInfo that jwt.c turns into a key with its usual type checks; OpenSSL
 * checks the public key itself (a point on its curve, a sane RSA modulus) before that.
 */
#include "jwks.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdlib.h>

#define MIN_RSA_BYTES 128  /* 1024 bits, as jwt.c */
#define MAX_RSA_BYTES 2048 /* 16384 bits: bounds what one verification costs */
#define MAX_SECRET_BYTES 4096

typedef struct jwks_entry {
    bool has_kid;
    char *kid;
    size_t kid_len;
    enum qs_jwt_alg alg;
    qs_jwt_key *key;
} jwks_entry;

struct qs_jwks {
    atomic_uint refs;
    uint64_t serial;
    size_t n_keys; /* JWKs in use */
    jwks_entry *entries;
    size_t n_entries;
    unsigned char digest[32]; /* SHA-256 of every entry's kid, alg and material */
};

static atomic_uint_fast64_t next_serial = 1;

/* ---- parsing helpers ---------------------------------------------------------------------- */

/* A base64url member, decoded. Trailing '=' padding is tolerated (some producers emit it);
 * anything else that is not strict base64url is refused. */
static bool b64_member(json_t *jwk, const char *name, unsigned char **out, size_t *len)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    while (n && s[n - 1] == '=')
        n--;
    return n && qs_base64url_decode(s, n, out, len) == 0;
}

/* Drops the leading zero bytes of a big-endian unsigned integer. */
static void strip_zeros(const unsigned char **p, size_t *n)
{
    while (*n > 1 && **p == 0) {
        (*p)++;
        (*n)--;
    }
}

/* Builds the public key from OpenSSL parameters, checks it with OpenSSL when `check` is set,
 * and returns its DER SubjectPublicKeyInfo (OPENSSL_malloc'd), or NULL. */
static unsigned char *spki_from_params(const char *type, OSSL_PARAM *params, bool check,
                                       size_t *der_len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    unsigned char *der = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!ctx || (check && EVP_PKEY_public_check(ctx) != 1))
        goto out;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0) {
        der = NULL;
        goto out;
    }
    *der_len = (size_t)n;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return der;
}

static unsigned char *rsa_spki(json_t *jwk, size_t *der_len, const char **why)
{
    unsigned char *n_raw = NULL, *e_raw = NULL, *der = NULL;
    size_t n_len = 0, e_len = 0;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *n = NULL, *e = NULL;
    *why = "RSA key without valid \"n\" and \"e\"";
    if (!b64_member(jwk, "n", &n_raw, &n_len) || !b64_member(jwk, "e", &e_raw, &e_len))
        goto out;
    const unsigned char *np = n_raw, *ep = e_raw;
    strip_zeros(&np, &n_len);
    strip_zeros(&ep, &e_len);
    if (n_len < MIN_RSA_BYTES || n_len > MAX_RSA_BYTES) {
        *why = "RSA modulus is shorter than 1024 or longer than 16384 bits";
        goto out;
    }
    if (e_len > 8) {
        *why = "RSA exponent is too large";
        goto out;
    }
    /* OpenSSL's check of an RSA public key runs a randomized primality test on the modulus,
     * whose verdict on a crafted composite can differ from one call to the next (found by
     * fuzz_jwks): a set must parse the same at every refresh. These checks are exact; a
     * modulus that is wrong otherwise only makes every signature fail to verify. */
    if (e_len == 0 || !(np[n_len - 1] & 1) || !(ep[e_len - 1] & 1) || (e_len == 1 && ep[0] < 3)) {
        *why = "RSA modulus or exponent is even, or the exponent is below 3";
        goto out;
    }
    n = BN_bin2bn(np, (int)n_len, NULL);
    e = BN_bin2bn(ep, (int)e_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!n || !e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    *why = "OpenSSL refused the RSA public key";
    if (params)
        der = spki_from_params("RSA", params, false, der_len);
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(n_raw);
    free(e_raw);
    return der;
}

static const struct curve {
    const char *jwk_name, *group;
    size_t len;
    enum qs_jwt_alg alg;
} curves[] = {
    {"P-256", "P-256", 32, QS_JWT_ES256},
    {"P-384", "P-384", 48, QS_JWT_ES384},
    {"P-521", "P-521", 66, QS_JWT_ES512},
};

static unsigned char *ec_spki(json_t *jwk, const struct curve *c, size_t *der_len, const char **why)
{
    unsigned char *x = NULL, *y = NULL, *der = NULL;
    size_t x_len = 0, y_len = 0;
    *why = "EC key without valid \"x\" and \"y\"";
    if (!b64_member(jwk, "x", &x, &x_len) || !b64_member(jwk, "y", &y, &y_len))
        goto out;
    /* RFC 7518 wants full-length coordinates; shorter ones (leading zeros dropped by some
     * producers) are padded, longer ones refused. */
    if (x_len > c->len || y_len > c->len)
        goto out;
    unsigned char point[1 + 2 * 66] = {0x04};
    memcpy(point + 1 + (c->len - x_len), x, x_len);
    memcpy(point + 1 + c->len + (c->len - y_len), y, y_len);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)c->group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * c->len),
        OSSL_PARAM_construct_end(),
    };
    *why = "EC point is not on its curve";
    der = spki_from_params("EC", params, true, der_len);
out:
    free(x);
    free(y);
    return der;
}

static unsigned char *ed25519_spki(json_t *jwk, size_t *der_len, const char **why)
{
    unsigned char *x = NULL, *der = NULL;
    size_t x_len = 0;
    *why = "Ed25519 key without a valid 32-byte \"x\"";
    if (!b64_member(jwk, "x", &x, &x_len) || x_len != 32)
        goto out;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, x_len);
    int n = pkey ? i2d_PUBKEY(pkey, &der) : 0;
    if (n <= 0)
        der = NULL;
    else
        *der_len = (size_t)n;
    EVP_PKEY_free(pkey);
    ERR_clear_error();
out:
    free(x);
    return der;
}

/* True when a string member is absent, or present and equal to `want`. */
static bool member_absent_or(json_t *jwk, const char *name, const char *want, bool *bad_type)
{
    json_t *v = json_object_get(jwk, name);
    if (!v)
        return true;
    if (!json_is_string(v)) {
        *bad_type = true;
        return false;
    }
    return strcmp(json_string_value(v), want) == 0;
}

/* "key_ops", when present, must allow "verify". */
static bool ops_allow_verify(json_t *jwk, bool *bad_type)
{
    json_t *ops = json_object_get(jwk, "key_ops");
    if (!ops)
        return true;
    if (!json_is_array(ops)) {
        *bad_type = true;
        return false;
    }
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
            return true;
    }
    return false;
}

/* ---- building the set --------------------------------------------------------------------- */

typedef struct builder {
    qs_jwks *set;
    size_t cap;
    EVP_MD_CTX *sha;
} builder;

static void add_entry(builder *b, json_t *kid, enum qs_jwt_alg alg, qs_jwt_key *key,
                      const unsigned char *material, size_t material_len)
{
    qs_jwks *s = b->set;
    if (s->n_entries == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 8;
        s->entries = qs_xrealloc(s->entries, b->cap * sizeof(*s->entries));
    }
    jwks_entry *e = &s->entries[s->n_entries++];
    memset(e, 0, sizeof(*e));
    e->alg = alg;
    e->key = key;
    if (kid) {
        e->has_kid = true;
        e->kid_len = json_string_length(kid);
        e->kid = qs_xstrndup(json_string_value(kid), e->kid_len);
    }
    /* The digest names each entry unambiguously: lengths before variable-length fields. */
    uint64_t lens[2] = {e->has_kid ? e->kid_len + 1 : 0, material_len};
    unsigned char tag = (unsigned char)alg;
    EVP_DigestUpdate(b->sha, lens, sizeof(lens));
    if (e->has_kid)
        EVP_DigestUpdate(b->sha, e->kid, e->kid_len);
    EVP_DigestUpdate(b->sha, &tag, 1);
    EVP_DigestUpdate(b->sha, material, material_len);
}

/* The algorithms a key type may serve; the JWK's "alg" narrows them to one. */
static size_t candidate_algs(const char *kty, json_t *jwk, enum qs_jwt_alg *out,
                             const struct curve **curve, const char **why)
{
    size_t n = 0;
    if (strcmp(kty, "RSA") == 0) {
        for (enum qs_jwt_alg a = QS_JWT_RS256; a <= QS_JWT_PS512; a++)
            out[n++] = a;
    } else if (strcmp(kty, "EC") == 0) {
        json_t *crv = json_object_get(jwk, "crv");
        for (size_t i = 0; json_is_string(crv) && i < QS_ARRAY_LEN(curves); i++)
            if (strcmp(json_string_value(crv), curves[i].jwk_name) == 0)
                *curve = &curves[i];
        if (!*curve) {
            *why = "unsupported or missing EC curve (\"crv\")";
            return 0;
        }
        out[n++] = (*curve)->alg;
    } else if (strcmp(kty, "OKP") == 0) {
        json_t *crv = json_object_get(jwk, "crv");
        if (!json_is_string(crv) || strcmp(json_string_value(crv), "Ed25519") != 0) {
            *why = "unsupported or missing OKP curve (\"crv\"): only Ed25519 is";
            return 0;
        }
        out[n++] = QS_JWT_EDDSA;
    } else if (strcmp(kty, "oct") == 0) {
        for (enum qs_jwt_alg a = QS_JWT_HS256; a <= QS_JWT_HS512; a++)
            out[n++] = a;
    } else {
        *why = "unsupported key type (\"kty\")";
        return 0;
    }

    json_t *alg = json_object_get(jwk, "alg");
    if (!alg)
        return n;
    enum qs_jwt_alg pinned;
    if (!json_is_string(alg) || !json_string_length(alg) ||
        qs_jwt_alg_parse(json_string_value(alg), &pinned) < 0) {
        *why = "unsupported algorithm (\"alg\")";
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (out[i] == pinned) {
            out[0] = pinned;
            return 1;
        }
    *why = "its algorithm (\"alg\") does not fit its key type";
    return 0;
}

/* Adds the entries of one JWK; returns NULL, or why it was skipped. */
static const char *add_jwk(builder *b, json_t *jwk)
{
    if (!json_is_object(jwk))
        return "not a JSON object";
    json_t *kty = json_object_get(jwk, "kty");
    if (!json_is_string(kty))
        return "no key type (\"kty\")";
    json_t *kid = json_object_get(jwk, "kid");
    if (kid && !json_is_string(kid))
        return "its \"kid\" is not a string";
    if (kid && json_string_length(kid) > QS_JWT_MAX_KID)
        return "its \"kid\" is longer than 256 bytes";
    bool bad_type = false;
    if (!member_absent_or(jwk, "use", "sig", &bad_type))
        return bad_type ? "its \"use\" is not a string" : "its \"use\" is not \"sig\"";
    if (!ops_allow_verify(jwk, &bad_type))
        return bad_type ? "its \"key_ops\" is not an array" : "its \"key_ops\" lack \"verify\"";

    enum qs_jwt_alg algs[QS_JWT_PS512 - QS_JWT_RS256 + 1];
    const struct curve *curve = NULL;
    const char *why = NULL;
    size_t n_algs = candidate_algs(json_string_value(kty), jwk, algs, &curve, &why);
    if (!n_algs)
        return why;

    const char *kty_s = json_string_value(kty);
    if (strcmp(kty_s, "oct") == 0) {
        unsigned char *secret = NULL;
        size_t len = 0;
        if (!b64_member(jwk, "k", &secret, &len) || len == 0 || len > MAX_SECRET_BYTES) {
            free(secret);
            return "oct key without a valid \"k\"";
        }
        for (size_t i = 0; i < n_algs; i++) {
            qs_jwt_key *key = qs_jwt_key_new(algs[i], (const char *)secret, len, &why);
            if (!key) {
                OPENSSL_cleanse(secret, len);
                free(secret);
                return why;
            }
            add_entry(b, kid, algs[i], key, secret, len);
        }
        OPENSSL_cleanse(secret, len);
        free(secret);
        return NULL;
    }

    size_t der_len = 0;
    unsigned char *der = strcmp(kty_s, "RSA") == 0  ? rsa_spki(jwk, &der_len, &why)
                         : strcmp(kty_s, "EC") == 0 ? ec_spki(jwk, curve, &der_len, &why)
                                                    : ed25519_spki(jwk, &der_len, &why);
    if (!der)
        return why;
    for (size_t i = 0; i < n_algs; i++) {
        qs_jwt_key *key = qs_jwt_key_new_spki(algs[i], der, der_len, &why);
        if (!key) {
            OPENSSL_free(der);
            return why;
        }
        add_entry(b, kid, algs[i], key, der, der_len);
    }
    OPENSSL_free(der);
    return NULL;
}

static void set_free(qs_jwks *set)
{
    for (size_t i = 0; i < set->n_entries; i++) {
        free(set->entries[i].kid);
        qs_jwt_key_free(set->entries[i].key);
    }
    free(set->entries);
    free(set);
}

static void warn(qs_buf *warnings, size_t index, json_t *jwk, const char *why)
{
    if (!warnings)
        return;
    json_t *kid = json_is_object(jwk) ? json_object_get(jwk, "kid") : NULL;
    if (json_is_string(kid) && json_string_length(kid) <= 64)
        qs_buf_appendf(warnings, "key %zu (kid \"%s\") skipped: %s\n", index,
                       json_string_value(kid), why);
    else
        qs_buf_appendf(warnings, "key %zu skipped: %s\n", index, why);
}

qs_jwks *qs_jwks_parse(const char *doc, size_t len, qs_buf *warnings, char **err)
{
    *err = NULL;
    if (len > QS_JWKS_MAX_DOC) {
        *err = qs_xasprintf("the JWK Set is larger than %d bytes", QS_JWKS_MAX_DOC);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(doc, len, 0, &jerr);
    if (!root) {
        *err = qs_xasprintf("the JWK Set is not valid JSON (line %d: %s)", jerr.line, jerr.text);
        return NULL;
    }
    json_t *keys = NULL, *single = NULL;
    if (json_is_object(root) && json_object_get(root, "keys"))
        keys = json_object_get(root, "keys");
    else if (json_is_object(root) && json_object_get(root, "kty"))
        single = root;
    if (!single && !json_is_array(keys)) {
        *err = qs_xstrdup("the JWK Set has no \"keys\" array");
        json_decref(root);
        return NULL;
    }
    size_t n = single ? 1 : json_array_size(keys);
    if (n > QS_JWKS_MAX_KEYS) {
        *err = qs_xasprintf("the JWK Set has %zu keys, more than %d", n, QS_JWKS_MAX_KEYS);
        json_decref(root);
        return NULL;
    }

    builder b = {.set = qs_xcalloc(1, sizeof(qs_jwks)), .sha = EVP_MD_CTX_new()};
    if (!b.sha || EVP_DigestInit_ex(b.sha, EVP_sha256(), NULL) != 1)
        qs_panic("SHA-256 is unavailable in OpenSSL");
    for (size_t i = 0; i < n; i++) {
        json_t *jwk = single ? single : json_array_get(keys, i);
        size_t before = b.set->n_entries;
        const char *why = add_jwk(&b, jwk);
        if (why) {
            /* A key that failed half-way leaves no entry behind. */
            for (size_t k = before; k < b.set->n_entries; k++) {
                free(b.set->entries[k].kid);
                qs_jwt_key_free(b.set->entries[k].key);
            }
            b.set->n_entries = before;
            warn(warnings, i, jwk, why);
        } else {
            b.set->n_keys++;
        }
    }
    json_decref(root);
    unsigned int digest_len = 0;
    EVP_DigestFinal_ex(b.sha, b.set->digest, &digest_len);
    EVP_MD_CTX_free(b.sha);
    if (!b.set->n_keys) {
        *err = qs_xstrdup(n ? "the JWK Set has no usable signature verification key"
                            : "the JWK Set is empty");
        set_free(b.set);
        return NULL;
    }
    atomic_init(&b.set->refs, 1);
    b.set->serial = atomic_fetch_add(&next_serial, 1);
    return b.set;
}

qs_jwks *qs_jwks_ref(qs_jwks *set)
{
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    return set;
}

void qs_jwks_unref(qs_jwks *set)
{
    if (set && atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1)
        set_free(set);
}

uint64_t qs_jwks_serial(const qs_jwks *set)
{
    return set->serial;
}

size_t qs_jwks_count(const qs_jwks *set)
{
    return set->n_keys;
}

bool qs_jwks_same(const qs_jwks *a, const qs_jwks *b)
{
    return a->n_entries == b->n_entries && memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

/* ---- choosing a key ----------------------------------------------------------------------- */

static bool same_kid(const jwks_entry *e, const qs_jwt_header *h)
{
    if (e->has_kid != h->has_kid)
        return false;
    return !e->has_kid || (e->kid_len == h->kid_len && memcmp(e->kid, h->kid, h->kid_len) == 0);
}

const qs_jwt_key *qs_jwks_find(const qs_jwks *set, const qs_jwt_header *h, enum qs_jwks_miss *miss)
{
    if (!h->alg_known) {
        *miss = QS_JWKS_BAD_ALG;
        return NULL;
    }
    bool kid_known = false;
    const jwks_entry *only = NULL;
    size_t for_alg = 0;
    for (size_t i = 0; i < set->n_entries; i++) {
        const jwks_entry *e = &set->entries[i];
        if (e->alg == h->alg) {
            for_alg++;
            only = e;
        }
        if (h->kid_too_long || !same_kid(e, h))
            continue;
        kid_known = true;
        if (e->alg == h->alg) {
            *miss = QS_JWKS_HIT;
            return e->key;
        }
    }
    if (!h->has_kid && for_alg == 1) {
        *miss = QS_JWKS_HIT;
        return only->key;
    }
    *miss = kid_known ? QS_JWKS_ALG_MISMATCH : h->has_kid ? QS_JWKS_UNKNOWN_KID : QS_JWKS_NO_KID;
    return NULL;
}

const char *qs_jwks_miss_str(enum qs_jwks_miss miss)
{
    switch (miss) {
    case QS_JWKS_HIT:
        return "token key found";
    case QS_JWKS_UNKNOWN_KID:
        return "token key id (kid) is unknown";
    case QS_JWKS_ALG_MISMATCH:
        return "token algorithm does not match the key of its key id (kid)";
    case QS_JWKS_NO_KID:
        return "token has no key id (kid), and no single key of the set serves its algorithm";
    case QS_JWKS_BAD_ALG:
        return "token algorithm is not supported";
    }
    return "unknown key lookup status";
}
