/* SPDX-License-Identifier: MIT
 * jwt.c - JWS compact tokens: verification with a pinned algorithm, signing, Mercure claims.
 *
 * Compatibility notes (the reference hub uses golang-jwt v5 with one valid method):
 *  - Segments are unpadded base64url. Decoding is strict: '=', CR/LF and non-zero trailing
 *    bits are refused (Go's default RawURLEncoding tolerates the last two; no conforming
 *    signer emits them).
 *  - JSON is parsed like encoding/json in the ways that matter: duplicate keys keep the last
 *    value, trailing garbage is refused, and the registered claims must have the types Go
 *    decodes them into (exp/nbf/iat numbers, iss/sub/jti strings, aud string or string
 *    array; null everywhere means absent), otherwise the token is malformed.
 *  - "exp" and "nbf" are truncated to whole seconds as Go's NumericDate does, so with an
 *    integer `now` the token is expired when now >= exp and not yet valid when now < nbf.
 *  - The checks run in Go's order: structure, algorithm, signature, time, then claims.
 *  - PS* verification accepts any salt length (Go's PSSSaltLengthAuto); signing uses a salt
 *    as long as the digest, as RFC 7518 requires.
 *  - RSA keys shorter than 1024 bits are refused, as current Go releases do.
 */
#include "jwt.h"

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include "buf.h"

#define MAX_TOKEN_LEN (64 * 1024)
/* PEM material larger than this is certainly not a single key or certificate chain we want. */
#define MAX_PEM_LEN (1024 * 1024)
#define MIN_RSA_BITS 1024

enum alg_kind { KIND_HMAC, KIND_RSA, KIND_PSS, KIND_EC, KIND_EDDSA };

static const struct alg_info {
    const char *name;
    enum alg_kind kind;
    const char *md;      /* digest name; NULL for EdDSA (the digest is part of the scheme) */
    int curve_nid;       /* ES* only */
    size_t half;         /* ES* only: length of R and of S in the JWS signature */
    const char *key_err; /* key of the wrong type */
} algs[] = {
    [QS_JWT_HS256] = {"HS256", KIND_HMAC, "SHA256", 0, 0, NULL},
    [QS_JWT_HS384] = {"HS384", KIND_HMAC, "SHA384", 0, 0, NULL},
    [QS_JWT_HS512] = {"HS512", KIND_HMAC, "SHA512", 0, 0, NULL},
    [QS_JWT_RS256] = {"RS256", KIND_RSA, "SHA256", 0, 0, "RS256 needs an RSA key"},
    [QS_JWT_RS384] = {"RS384", KIND_RSA, "SHA384", 0, 0, "RS384 needs an RSA key"},
    [QS_JWT_RS512] = {"RS512", KIND_RSA, "SHA512", 0, 0, "RS512 needs an RSA key"},
    [QS_JWT_PS256] = {"PS256", KIND_PSS, "SHA256", 0, 0, "PS256 needs an RSA or RSA-PSS key"},
    [QS_JWT_PS384] = {"PS384", KIND_PSS, "SHA384", 0, 0, "PS384 needs an RSA or RSA-PSS key"},
    [QS_JWT_PS512] = {"PS512", KIND_PSS, "SHA512", 0, 0, "PS512 needs an RSA or RSA-PSS key"},
    [QS_JWT_ES256] = {"ES256", KIND_EC, "SHA256", NID_X9_62_prime256v1, 32,
                      "ES256 needs a P-256 key"},
    [QS_JWT_ES384] = {"ES384", KIND_EC, "SHA384", NID_secp384r1, 48, "ES384 needs a P-384 key"},
    [QS_JWT_ES512] = {"ES512", KIND_EC, "SHA512", NID_secp521r1, 66, "ES512 needs a P-521 key"},
    [QS_JWT_EDDSA] = {"EdDSA", KIND_EDDSA, NULL, 0, 0, "EdDSA needs an Ed25519 key"},
};

struct qs_jwt_key {
    enum qs_jwt_alg alg;
    bool can_sign;
    /* HMAC: a context already keyed; each operation works on a copy, so a key can be shared
     * by threads and the digest is fetched only once. */
    EVP_MAC_CTX *mac;
    EVP_PKEY *pkey;
    EVP_MD *md;
};

static bool alg_valid(enum qs_jwt_alg alg)
{
    return (unsigned)alg < QS_ARRAY_LEN(algs);
}

int qs_jwt_alg_parse(const char *name, enum qs_jwt_alg *out)
{
    if (!name || !*name) {
        *out = QS_JWT_HS256;
        return 0;
    }
    for (size_t i = 0; i < QS_ARRAY_LEN(algs); i++) {
        if (strcmp(name, algs[i].name) == 0) {
            *out = (enum qs_jwt_alg)i;
            return 0;
        }
    }
    return -1;
}

const char *qs_jwt_alg_name(enum qs_jwt_alg alg)
{
    return alg_valid(alg) ? algs[alg].name : "unknown";
}

enum qs_jwt_alg qs_jwt_key_alg(const qs_jwt_key *key)
{
    return key->alg;
}

void qs_jwt_key_free(qs_jwt_key *key)
{
    if (!key)
        return;
    EVP_MAC_CTX_free(key->mac);
    EVP_PKEY_free(key->pkey);
    EVP_MD_free(key->md);
    free(key);
}

/* ---- base64url ---------------------------------------------------------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *qs_base64url_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    if (len > (SIZE_MAX - 4) / 4 * 3)
        qs_panic("base64url input too large (%zu bytes)", len);
    size_t out_len = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
    char *out = qs_xmalloc(out_len + 1);
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64url_alphabet[v >> 18];
        *o++ = b64url_alphabet[(v >> 12) & 63];
        *o++ = b64url_alphabet[(v >> 6) & 63];
        *o++ = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = b64url_alphabet[v >> 18];
        *o++ = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = b64url_alphabet[v >> 18];
        *o++ = b64url_alphabet[(v >> 12) & 63];
        *o++ = b64url_alphabet[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

/* Value of one base64url character, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int qs_base64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    /* A single leftover character carries only 6 bits: never a whole byte. */
    if (len % 4 == 1)
        return -1;
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    unsigned char *buf = qs_xmalloc(n);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            goto bad;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* The unused low bits of the last character must be zero so each byte string has exactly
     * one encoding (signatures cannot be re-encoded into a distinct accepted token). */
    if (bits && (acc & ((1u << bits) - 1)))
        goto bad;
    *out = buf;
    *out_len = o;
    return 0;
bad:
    free(buf);
    return -1;
}

/* ---- keys --------------------------------------------------------------------------------- */

/* Never prompt on a terminal for the passphrase of an encrypted PEM key: fail instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    QS_UNUSED(buf);
    QS_UNUSED(size);
    QS_UNUSED(rwflag);
    QS_UNUSED(u);
    return -1;
}

static BIO *pem_bio(const char *material, size_t len)
{
    return BIO_new_mem_buf(material, (int)len);
}

static EVP_PKEY *read_private_pem(const char *material, size_t len)
{
    BIO *bio = pem_bio(material, len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    return pkey;
}

/* Keeps only the public half of a key, so a private key given for verification does not stay
 * in memory longer than needed. */
static EVP_PKEY *public_half(EVP_PKEY *pkey)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0)
        return NULL;
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    return pub;
}

/* Reads a public key, an "RSA PUBLIC KEY", a certificate, or a private key, in that order. */
static EVP_PKEY *read_any_pem(const char *material, size_t len)
{
    BIO *bio = pem_bio(material, len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (pkey)
        return pkey;

    /* OpenSSL 3.0 reads PKCS#1 blocks above already; this keeps them working should a later
     * release restrict PEM_read_bio_PUBKEY to SubjectPublicKeyInfo. */
    bio = pem_bio(material, len);
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", "type-specific", "RSA",
                                                           EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (bio && dctx && OSSL_DECODER_from_bio(dctx, bio) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    BIO_free(bio);
    if (pkey)
        return pkey;

    bio = pem_bio(material, len);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (cert) {
        pkey = X509_get_pubkey(cert);
        X509_free(cert);
        return pkey;
    }
    return read_private_pem(material, len);
}

static EVP_PKEY *read_public_pem(const char *material, size_t len)
{
    EVP_PKEY *pkey = read_any_pem(material, len);
    if (!pkey)
        return NULL;
    EVP_PKEY *pub = public_half(pkey);
    EVP_PKEY_free(pkey);
    return pub;
}

static int ec_curve_nid(EVP_PKEY *pkey)
{
    char name[80];
    size_t n = 0;
    if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &n) != 1)
        return NID_undef;
    int nid = OBJ_txt2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    return nid;
}

/* Returns NULL when the key fits the algorithm, else the reason. */
static const char *check_key_type(const struct alg_info *ai, EVP_PKEY *pkey)
{
    switch (ai->kind) {
    case KIND_RSA:
    case KIND_PSS:
        if (!EVP_PKEY_is_a(pkey, "RSA") &&
            !(ai->kind == KIND_PSS && EVP_PKEY_is_a(pkey, "RSA-PSS")))
            return ai->key_err;
        if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS)
            return "RSA key is shorter than 1024 bits";
        return NULL;
    case KIND_EC:
        if (!EVP_PKEY_is_a(pkey, "EC") || ec_curve_nid(pkey) != ai->curve_nid)
            return ai->key_err;
        return NULL;
    case KIND_EDDSA:
        return EVP_PKEY_is_a(pkey, "ED25519") ? NULL : ai->key_err;
    case KIND_HMAC:
        break;
    }
    return "unsupported JWT algorithm";
}

/* Checks that key->pkey fits the key's algorithm and fetches its digest. */
static bool fit_public_key(qs_jwt_key *key, const char **err)
{
    const struct alg_info *ai = &algs[key->alg];
    const char *type_err = check_key_type(ai, key->pkey);
    if (type_err) {
        *err = type_err;
        return false;
    }
    if (ai->md) {
        key->md = EVP_MD_fetch(NULL, ai->md, NULL);
        if (!key->md) {
            *err = "digest is unavailable in OpenSSL";
            return false;
        }
    }
    return true;
}

static qs_jwt_key *key_new(enum qs_jwt_alg alg, const char *material, size_t len, bool for_signing,
                           const char **err)
{
    const char *dummy;
    if (!err)
        err = &dummy;
    if (!alg_valid(alg)) {
        *err = "unsupported JWT algorithm";
        return NULL;
    }
    const struct alg_info *ai = &algs[alg];
    qs_jwt_key *key = qs_xcalloc(1, sizeof(*key));
    key->alg = alg;

    if (ai->kind == KIND_HMAC) {
        if (!material || len == 0) {
            *err = "HMAC secret is empty";
            goto fail;
        }
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        key->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
        EVP_MAC_free(mac);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)ai->md, 0),
            OSSL_PARAM_construct_end(),
        };
        if (!key->mac ||
            EVP_MAC_init(key->mac, (const unsigned char *)material, len, params) != 1) {
            *err = "OpenSSL refused the HMAC key";
            goto fail;
        }
        key->can_sign = true;
        return key;
    }

    if (!material || len == 0) {
        *err = for_signing ? "key is not a valid PEM private key" : "key is empty";
        goto fail;
    }
    if (len > MAX_PEM_LEN) {
        *err = "key material is too large";
        goto fail;
    }
    key->pkey = for_signing ? read_private_pem(material, len) : read_public_pem(material, len);
    if (!key->pkey) {
        *err = for_signing ? "key is not a valid PEM private key"
                           : "key is not a valid PEM public key, certificate or private key";
        goto fail;
    }
    if (!fit_public_key(key, err))
        goto fail;
    key->can_sign = for_signing;
    ERR_clear_error();
    return key;

fail:
    /* Failed PEM attempts leave entries on this thread's OpenSSL error queue. */
    ERR_clear_error();
    qs_jwt_key_free(key);
    return NULL;
}

qs_jwt_key *qs_jwt_key_new(enum qs_jwt_alg alg, const char *material, size_t len, const char **err)
{
    return key_new(alg, material, len, false, err);
}

qs_jwt_key *qs_jwt_key_new_private(enum qs_jwt_alg alg, const char *material, size_t len,
                                   const char **err)
{
    return key_new(alg, material, len, true, err);
}

qs_jwt_key *qs_jwt_key_new_spki(enum qs_jwt_alg alg, const unsigned char *der, size_t len,
                                const char **err)
{
    const char *dummy;
    if (!err)
        err = &dummy;
    if (!alg_valid(alg) || algs[alg].kind == KIND_HMAC) {
        *err = "a public key needs an asymmetric algorithm";
        return NULL;
    }
    if (len > MAX_PEM_LEN) {
        *err = "key material is too large";
        return NULL;
    }
    qs_jwt_key *key = qs_xcalloc(1, sizeof(*key));
    key->alg = alg;
    const unsigned char *p = der;
    key->pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (!key->pkey || p != der + len) {
        *err = "key is not a valid SubjectPublicKeyInfo";
        goto fail;
    }
    if (!fit_public_key(key, err))
        goto fail;
    ERR_clear_error();
    return key;
fail:
    ERR_clear_error();
    qs_jwt_key_free(key);
    return NULL;
}

int qs_jwt_alg_for_pem(const char *pem, size_t len, enum qs_jwt_alg *out)
{
    if (!pem || len == 0 || len > MAX_PEM_LEN)
        return -1;
    EVP_PKEY *pkey = read_any_pem(pem, len);
    ERR_clear_error();
    if (!pkey)
        return -1;
    int rc = 0;
    if (EVP_PKEY_is_a(pkey, "RSA"))
        *out = QS_JWT_RS256;
    else if (EVP_PKEY_is_a(pkey, "RSA-PSS"))
        *out = QS_JWT_PS256;
    else if (EVP_PKEY_is_a(pkey, "ED25519"))
        *out = QS_JWT_EDDSA;
    else if (EVP_PKEY_is_a(pkey, "EC") && ec_curve_nid(pkey) == NID_X9_62_prime256v1)
        *out = QS_JWT_ES256;
    else if (EVP_PKEY_is_a(pkey, "EC") && ec_curve_nid(pkey) == NID_secp384r1)
        *out = QS_JWT_ES384;
    else if (EVP_PKEY_is_a(pkey, "EC") && ec_curve_nid(pkey) == NID_secp521r1)
        *out = QS_JWT_ES512;
    else
        rc = -1;
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- signatures --------------------------------------------------------------------------- */

/* Writes the MAC of data into out (EVP_MAX_MD_SIZE bytes). */
static bool hmac_compute(const qs_jwt_key *key, const char *data, size_t n, unsigned char *out,
                         size_t *out_len)
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(key->mac);
    bool ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)data, n) == 1 &&
              EVP_MAC_final(ctx, out, out_len, EVP_MAX_MD_SIZE) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

/* Sets RSA-PSS padding; salt_len is RSA_PSS_SALTLEN_DIGEST or RSA_PSS_SALTLEN_AUTO. */
static bool setup_pss(const qs_jwt_key *key, EVP_PKEY_CTX *pctx, int salt_len)
{
    if (algs[key->alg].kind != KIND_PSS)
        return true;
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt_len) == 1;
}

/* JWS carries ECDSA signatures as fixed-width R||S; OpenSSL speaks DER. */
static unsigned char *ecdsa_raw_to_der(const unsigned char *raw, size_t half, size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(raw + half, (int)half, NULL);
    unsigned char *der = NULL;
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return NULL;
    }
    int n = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (n <= 0)
        return NULL;
    *der_len = (size_t)n;
    return der;
}

static bool ecdsa_der_to_raw(const unsigned char *der, size_t der_len, size_t half,
                             unsigned char *raw)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (!sig)
        return false;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    bool ok = BN_bn2binpad(r, raw, (int)half) == (int)half &&
              BN_bn2binpad(s, raw + half, (int)half) == (int)half;
    ECDSA_SIG_free(sig);
    return ok;
}

static bool signature_valid(const qs_jwt_key *key, const char *data, size_t n,
                            const unsigned char *sig, size_t sig_len)
{
    const struct alg_info *ai = &algs[key->alg];
    if (ai->kind == KIND_HMAC) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t mac_len = 0;
        if (!hmac_compute(key, data, n, mac, &mac_len))
            return false;
        /* The length is public (it depends on the algorithm only); the bytes are not. */
        return sig_len == mac_len && CRYPTO_memcmp(sig, mac, mac_len) == 0;
    }

    /* Go checks the exact length before any arithmetic; OpenSSL would pad short RSA-PSS
     * signatures with leading zeros. */
    if ((ai->kind == KIND_RSA || ai->kind == KIND_PSS) &&
        sig_len != (size_t)EVP_PKEY_get_size(key->pkey))
        return false;
    if (ai->kind == KIND_EC && sig_len != 2 * ai->half)
        return false;

    unsigned char *der = NULL;
    if (ai->kind == KIND_EC) {
        der = ecdsa_raw_to_der(sig, ai->half, &sig_len);
        if (!der)
            return false;
        sig = der;
    }
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = mctx && EVP_DigestVerifyInit(mctx, &pctx, key->md, NULL, key->pkey) == 1 &&
              setup_pss(key, pctx, RSA_PSS_SALTLEN_AUTO) &&
              EVP_DigestVerify(mctx, sig, sig_len, (const unsigned char *)data, n) == 1;
    EVP_MD_CTX_free(mctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

/* Returns a malloc'd signature, or NULL. */
static unsigned char *sign_bytes(const qs_jwt_key *key, const char *data, size_t n, size_t *sig_len)
{
    const struct alg_info *ai = &algs[key->alg];
    if (ai->kind == KIND_HMAC) {
        unsigned char *mac = qs_xmalloc(EVP_MAX_MD_SIZE);
        if (!hmac_compute(key, data, n, mac, sig_len)) {
            free(mac);
            return NULL;
        }
        return mac;
    }

    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    size_t len = 0;
    if (!mctx || EVP_DigestSignInit(mctx, &pctx, key->md, NULL, key->pkey) != 1 ||
        !setup_pss(key, pctx, RSA_PSS_SALTLEN_DIGEST) ||
        EVP_DigestSign(mctx, NULL, &len, (const unsigned char *)data, n) != 1)
        goto out;
    sig = qs_xmalloc(len);
    if (EVP_DigestSign(mctx, sig, &len, (const unsigned char *)data, n) != 1) {
        free(sig);
        sig = NULL;
        goto out;
    }
    if (ai->kind == KIND_EC) {
        unsigned char *raw = qs_xmalloc(2 * ai->half);
        if (!ecdsa_der_to_raw(sig, len, ai->half, raw)) {
            free(raw);
            raw = NULL;
        }
        free(sig);
        sig = raw;
        len = 2 * ai->half;
    }
    *sig_len = len;
out:
    EVP_MD_CTX_free(mctx);
    ERR_clear_error();
    return sig;
}

/* ---- verification ------------------------------------------------------------------------- */

const char *qs_jwt_status_str(enum qs_jwt_status st)
{
    switch (st) {
    case QS_JWT_OK:
        return "token is valid";
    case QS_JWT_E_MALFORMED:
        return "token is malformed";
    case QS_JWT_E_ALG:
        return "token algorithm does not match the configured one";
    case QS_JWT_E_SIGNATURE:
        return "token signature is invalid";
    case QS_JWT_E_EXPIRED:
        return "token is expired";
    case QS_JWT_E_NOT_YET_VALID:
        return "token is not valid yet";
    case QS_JWT_E_CLAIMS:
        return "token mercure claim is malformed";
    }
    return "unknown token status";
}

/* Decodes one base64url segment and parses it as a JSON object. */
static json_t *segment_object(const char *p, size_t n)
{
    unsigned char *raw;
    size_t raw_len;
    if (qs_base64url_decode(p, n, &raw, &raw_len) != 0)
        return NULL;
    json_t *v = json_loadb((const char *)raw, raw_len, 0, NULL);
    free(raw);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Whole seconds of a NumericDate, truncated downwards like Go and clamped to int64. Written
 * without libm so that callers need not link it. */
static int64_t seconds_floor(double d)
{
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    int64_t t = (int64_t)d;
    if ((double)t > d)
        t--;
    return t;
}

/* A NumericDate claim: absent or null is fine, a number is read, anything else is malformed. */
static bool numeric_date(json_t *claims, const char *name, bool *has, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    if (!v || json_is_null(v))
        return true;
    if (json_is_integer(v))
        *out = (int64_t)json_integer_value(v);
    else if (json_is_real(v))
        *out = seconds_floor(json_real_value(v));
    else
        return false;
    if (has)
        *has = true;
    return true;
}

static bool string_claim_ok(json_t *claims, const char *name)
{
    json_t *v = json_object_get(claims, name);
    return !v || json_is_null(v) || json_is_string(v);
}

/* True when every element of the array is a string. */
static bool all_strings(json_t *array)
{
    size_t i;
    json_t *e;
    json_array_foreach(array, i, e)
    {
        if (!json_is_string(e))
            return false;
    }
    return true;
}

/* "aud" decodes into Go's ClaimStrings: a string or an array made only of strings. */
static bool audience_ok(json_t *claims)
{
    json_t *v = json_object_get(claims, "aud");
    if (!v || json_is_null(v) || json_is_string(v))
        return true;
    return json_is_array(v) && all_strings(v);
}

static bool registered_claims_ok(json_t *root, qs_jwt_claims *out)
{
    int64_t iat;
    return numeric_date(root, "exp", &out->has_exp, &out->exp) &&
           numeric_date(root, "nbf", &out->has_nbf, &out->nbf) &&
           numeric_date(root, "iat", NULL, &iat) && string_claim_ok(root, "iss") &&
           string_claim_ok(root, "sub") && string_claim_ok(root, "jti") && audience_ok(root);
}

/* Checks a selector list: absent/null, or an array of at most the limit of strings. */
static bool selectors_ok(json_t *v)
{
    if (!v || json_is_null(v))
        return true;
    return json_is_array(v) && json_array_size(v) <= QS_JWT_MAX_CLAIM_SELECTORS && all_strings(v);
}

static bool mercure_claim_ok(json_t *m)
{
    if (!m || json_is_null(m))
        return true;
    return json_is_object(m) && selectors_ok(json_object_get(m, "publish")) &&
           selectors_ok(json_object_get(m, "subscribe"));
}

/* Copies a checked selector list; JSON null or absence leaves *has false. */
static void copy_selectors(json_t *v, bool *has, char ***list, size_t *n)
{
    if (!v || json_is_null(v))
        return;
    size_t count = json_array_size(v);
    char **items = qs_xcalloc(count ? count : 1, sizeof(char *));
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(v, i);
        items[i] = qs_xstrndup(json_string_value(e), json_string_length(e));
    }
    *has = true;
    *list = items;
    *n = count;
}

/* Fills the Mercure part of *out. The namespaced claim wins over "mercure" whenever it is
 * present, as in the reference; both must be well-formed when present: Go decodes both. */
static bool extract_mercure(json_t *root, qs_jwt_claims *out)
{
    json_t *m = json_object_get(root, "mercure");
    json_t *ns = json_object_get(root, "https://mercure.rocks/");
    if (!mercure_claim_ok(m) || !mercure_claim_ok(ns))
        return false;
    /* The reference copies the namespaced claim over "mercure" whenever it is present. */
    if (ns && !json_is_null(ns))
        m = ns;
    if (!m || json_is_null(m))
        return true;
    out->has_mercure = true;
    copy_selectors(json_object_get(m, "publish"), &out->has_publish, &out->publish,
                   &out->n_publish);
    copy_selectors(json_object_get(m, "subscribe"), &out->has_subscribe, &out->subscribe,
                   &out->n_subscribe);
    json_t *payload = json_object_get(m, "payload");
    if (payload && !json_is_null(payload))
        out->payload = json_incref(payload);
    return true;
}

enum qs_jwt_status qs_jwt_verify(const qs_jwt_key *key, const char *token, size_t len, int64_t now,
                                 qs_jwt_claims *claims)
{
    memset(claims, 0, sizeof(*claims));
    if (!token || len > MAX_TOKEN_LEN)
        return QS_JWT_E_MALFORMED;

    const char *end = token + len;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return QS_JWT_E_MALFORMED;

    enum qs_jwt_status st = QS_JWT_E_MALFORMED;
    qs_jwt_claims out = {0};
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    json_t *header = segment_object(token, (size_t)(dot1 - token));
    json_t *root = header ? segment_object(dot1 + 1, (size_t)(dot2 - dot1 - 1)) : NULL;
    if (!root)
        goto out;
    json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || !registered_claims_ok(root, &out))
        goto out;
    st = QS_JWT_E_ALG;
    if (strcmp(json_string_value(alg), algs[key->alg].name) != 0)
        goto out;
    st = QS_JWT_E_MALFORMED;
    if (qs_base64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), &sig, &sig_len) != 0)
        goto out;
    st = QS_JWT_E_SIGNATURE;
    if (!signature_valid(key, token, (size_t)(dot2 - token), sig, sig_len))
        goto out;
    st = QS_JWT_E_EXPIRED;
    if (out.has_exp && now >= out.exp)
        goto out;
    st = QS_JWT_E_NOT_YET_VALID;
    if (out.has_nbf && now < out.nbf)
        goto out;
    st = QS_JWT_E_CLAIMS;
    if (!extract_mercure(root, &out))
        goto out;
    st = QS_JWT_OK;
    *claims = out;
out:
    free(sig);
    json_decref(header);
    json_decref(root);
    return st;
}

int qs_jwt_peek_header(const char *token, size_t len, qs_jwt_header *out)
{
    memset(out, 0, sizeof(*out));
    if (!token || len > MAX_TOKEN_LEN)
        return -1;
    const char *dot = memchr(token, '.', len);
    if (!dot)
        return -1;
    json_t *header = segment_object(token, (size_t)(dot - token));
    if (!header)
        return -1;
    int rc = -1;
    json_t *alg = json_object_get(header, "alg");
    json_t *kid = json_object_get(header, "kid");
    if (!json_is_string(alg) || (kid && !json_is_null(kid) && !json_is_string(kid)))
        goto out;
    if (qs_jwt_alg_parse(json_string_value(alg), &out->alg) < 0 || !json_string_length(alg))
        out->alg_known = false;
    else
        out->alg_known = true;
    if (json_is_string(kid)) {
        out->has_kid = true;
        size_t n = json_string_length(kid);
        if (n > QS_JWT_MAX_KID) {
            out->kid_too_long = true;
        } else {
            memcpy(out->kid, json_string_value(kid), n);
            out->kid_len = n;
        }
    }
    rc = 0;
out:
    json_decref(header);
    return rc;
}

/* Splits a token at its two dots; false unless there are exactly two. */
static bool split_token(const char *token, size_t len, const char **dot1, const char **dot2)
{
    const char *end = token + len;
    *dot1 = memchr(token, '.', len);
    *dot2 = *dot1 ? memchr(*dot1 + 1, '.', (size_t)(end - *dot1 - 1)) : NULL;
    return *dot2 && !memchr(*dot2 + 1, '.', (size_t)(end - *dot2 - 1));
}

enum qs_jwt_status qs_jwt_decode(const char *token, size_t len, json_t **header, json_t **claims)
{
    *header = *claims = NULL;
    const char *dot1, *dot2;
    if (!token || len > MAX_TOKEN_LEN || !split_token(token, len, &dot1, &dot2))
        return QS_JWT_E_MALFORMED;
    json_t *h = segment_object(token, (size_t)(dot1 - token));
    json_t *c = h ? segment_object(dot1 + 1, (size_t)(dot2 - dot1 - 1)) : NULL;
    if (!c) {
        json_decref(h);
        return QS_JWT_E_MALFORMED;
    }
    *header = h;
    *claims = c;
    return QS_JWT_OK;
}

enum qs_jwt_status qs_jwt_check_signature(const qs_jwt_key *key, const char *token, size_t len,
                                          json_t *header)
{
    const char *dot1, *dot2;
    if (!token || len > MAX_TOKEN_LEN || !split_token(token, len, &dot1, &dot2))
        return QS_JWT_E_MALFORMED;
    json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), algs[key->alg].name) != 0)
        return QS_JWT_E_ALG;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    const char *end = token + len;
    if (qs_base64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), &sig, &sig_len) != 0)
        return QS_JWT_E_MALFORMED;
    bool ok = signature_valid(key, token, (size_t)(dot2 - token), sig, sig_len);
    free(sig);
    return ok ? QS_JWT_OK : QS_JWT_E_SIGNATURE;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void qs_jwt_claims_free(qs_jwt_claims *claims)
{
    if (!claims)
        return;
    free_list(claims->publish, claims->n_publish);
    free_list(claims->subscribe, claims->n_subscribe);
    json_decref(claims->payload);
    memset(claims, 0, sizeof(*claims));
}

static char **copy_list(char *const *list, size_t n)
{
    if (!list)
        return NULL;
    char **out = qs_xcalloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = qs_xstrdup(list[i]);
    return out;
}

void qs_jwt_claims_copy(qs_jwt_claims *out, const qs_jwt_claims *in)
{
    *out = *in;
    out->publish = copy_list(in->publish, in->n_publish);
    out->subscribe = copy_list(in->subscribe, in->n_subscribe);
    /* The payload is never modified after parsing: sharing it is enough. */
    if (in->payload)
        json_incref(in->payload);
}

/* ---- signing ------------------------------------------------------------------------------ */

static int dump_to_buf(const char *p, size_t n, void *data)
{
    qs_buf_append(data, p, n);
    return 0;
}

static char *sign_token(const qs_jwt_key *key, json_t *claims, const char *typ, const char *kid,
                        const char **err);

char *qs_jwt_sign(const qs_jwt_key *key, json_t *claims, const char **err)
{
    return sign_token(key, claims, "JWT", NULL, err);
}

char *qs_jwt_sign_typ(const qs_jwt_key *key, json_t *claims, const char *typ, const char **err)
{
    return sign_token(key, claims, typ, NULL, err);
}

char *qs_jwt_sign_kid(const qs_jwt_key *key, const char *kid, json_t *claims, const char **err)
{
    return sign_token(key, claims, "JWT", kid, err);
}

/* The header is written by hand when it holds only names the hub chose, so that tokens stay
 * byte for byte what they were; a kid comes from a user and is escaped by jansson. */
static char *sign_token(const qs_jwt_key *key, json_t *claims, const char *typ, const char *kid,
                        const char **err)
{
    const char *dummy;
    if (!err)
        err = &dummy;
    if (!key->can_sign) {
        *err = "key cannot sign: it holds no private key";
        return NULL;
    }
    if (!json_is_object(claims)) {
        *err = "claims must be a JSON object";
        return NULL;
    }
    qs_buf body = QS_BUF_INIT;
    if (json_dump_callback(claims, dump_to_buf, &body, JSON_COMPACT) != 0) {
        qs_buf_free(&body);
        *err = "claims cannot be serialized";
        return NULL;
    }

    qs_buf b = QS_BUF_INIT;
    char *header = NULL;
    if (kid) {
        json_t *h = json_pack("{s:s,s:s}", "alg", algs[key->alg].name, "kid", kid);
        if (h && typ)
            json_object_set_new(h, "typ", json_string(typ));
        header = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(h);
        if (!header) {
            *err = "the key id (kid) cannot be serialized";
            qs_buf_free(&body);
            return NULL;
        }
    } else {
        header = typ ? qs_xasprintf("{\"alg\":\"%s\",\"typ\":\"%s\"}", algs[key->alg].name, typ)
                     : qs_xasprintf("{\"alg\":\"%s\"}", algs[key->alg].name);
    }
    char *part = qs_base64url_encode(header, strlen(header));
    qs_buf_append_str(&b, part);
    free(part);
    free(header);
    qs_buf_append_char(&b, '.');
    part = qs_base64url_encode(body.p, body.len);
    qs_buf_append_str(&b, part);
    free(part);
    qs_buf_free(&body);

    size_t sig_len = 0;
    unsigned char *sig = sign_bytes(key, b.p, b.len, &sig_len);
    if (!sig) {
        *err = "signing failed";
        qs_buf_free(&b);
        return NULL;
    }
    qs_buf_append_char(&b, '.');
    part = qs_base64url_encode(sig, sig_len);
    qs_buf_append_str(&b, part);
    free(part);
    free(sig);
    return qs_buf_steal(&b);
}
