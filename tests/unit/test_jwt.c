/* SPDX-License-Identifier: MIT
 * test_jwt.c - JWT verification and signing: every algorithm, published and externally
 * produced vectors, algorithm pinning, malformed input, time claims and Mercure claims.
 */
#include "harness.h"
#include "jwt.h"

#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define NOW INT64_C(1700000000)
#define DEV_SECRET "!ChangeThisMercureHubJWTSecretKey!"

/* ---- helpers ------------------------------------------------------------------------------ */

static qs_jwt_key *hs_key(const char *secret)
{
    const char *err = NULL;
    qs_jwt_key *k = qs_jwt_key_new(QS_JWT_HS256, secret, strlen(secret), &err);
    if (!k)
        qs_test_fail(__FILE__, __LINE__, "HS256 key: %s", err);
    return k;
}

static qs_jwt_key *pem_key(enum qs_jwt_alg alg, const char *pem, bool private)
{
    const char *err = NULL;
    qs_jwt_key *k = private ? qs_jwt_key_new_private(alg, pem, strlen(pem), &err)
                            : qs_jwt_key_new(alg, pem, strlen(pem), &err);
    if (!k)
        qs_test_fail(__FILE__, __LINE__, "%s key: %s", qs_jwt_alg_name(alg), err);
    return k;
}

/* Returns the error of a key construction that must fail. */
static const char *key_error(enum qs_jwt_alg alg, const char *material, size_t len)
{
    const char *err = NULL;
    qs_jwt_key *k = qs_jwt_key_new(alg, material, len, &err);
    if (k)
        qs_test_fail(__FILE__, __LINE__, "key unexpectedly accepted for %s", qs_jwt_alg_name(alg));
    if (!err || !*err)
        qs_test_fail(__FILE__, __LINE__, "no error message");
    return err;
}

static char *b64(const char *s)
{
    return qs_base64url_encode(s, strlen(s));
}

/* Builds an HS256 token from raw header and claims text, so tests control every byte. */
static char *hs_token_raw(const char *secret, const char *header, const char *claims)
{
    char *h = b64(header), *c = b64(claims);
    char *input = qs_xasprintf("%s.%s", h, c);
    unsigned char mac[64];
    size_t mac_len = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
                   (const unsigned char *)input, strlen(input), mac, sizeof(mac), &mac_len))
        qs_test_fail(__FILE__, __LINE__, "HMAC failed");
    char *sig = qs_base64url_encode(mac, mac_len);
    char *token = qs_xasprintf("%s.%s", input, sig);
    free(h);
    free(c);
    free(input);
    free(sig);
    return token;
}

static char *sign_json(const qs_jwt_key *key, const char *claims_json)
{
    json_error_t jerr;
    json_t *claims = json_loads(claims_json, 0, &jerr);
    if (!claims)
        qs_test_fail(__FILE__, __LINE__, "bad test JSON: %s", jerr.text);
    const char *err = NULL;
    char *token = qs_jwt_sign(key, claims, &err);
    json_decref(claims);
    if (!token)
        qs_test_fail(__FILE__, __LINE__, "sign: %s", err);
    return token;
}

static enum qs_jwt_status verify(const qs_jwt_key *key, const char *token, int64_t now,
                                 qs_jwt_claims *claims)
{
    qs_jwt_claims local;
    qs_jwt_claims *c = claims ? claims : &local;
    enum qs_jwt_status st = qs_jwt_verify(key, token, strlen(token), now, c);
    if (st != QS_JWT_OK) {
        /* The contract: on failure the claims are zeroed. */
        static const qs_jwt_claims zero;
        if (memcmp(c, &zero, sizeof(zero)) != 0)
            qs_test_fail(__FILE__, __LINE__, "claims not zeroed after failure");
    } else if (!claims) {
        qs_jwt_claims_free(&local);
    }
    return st;
}

/* Signs claims with an HS256 dev key and verifies them at NOW. */
static enum qs_jwt_status hs_roundtrip(const char *claims_json, qs_jwt_claims *claims)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    char *token = sign_json(k, claims_json);
    enum qs_jwt_status st = verify(k, token, NOW, claims);
    free(token);
    qs_jwt_key_free(k);
    return st;
}

static EVP_PKEY *gen_rsa(size_t bits)
{
    EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
    ASSERT(p);
    return p;
}

static EVP_PKEY *gen_ec(const char *curve)
{
    EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    ASSERT(p);
    return p;
}

static EVP_PKEY *gen_plain(const char *type)
{
    EVP_PKEY *p = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    ASSERT(ctx);
    ASSERT(EVP_PKEY_keygen_init(ctx) == 1);
    ASSERT(EVP_PKEY_keygen(ctx, &p) == 1);
    EVP_PKEY_CTX_free(ctx);
    return p;
}

static char *bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    ASSERT(n > 0);
    char *s = qs_xstrndup(data, (size_t)n);
    BIO_free(bio);
    return s;
}

static char *pem_public(EVP_PKEY *p)
{
    BIO *bio = BIO_new(BIO_s_mem());
    ASSERT(PEM_write_bio_PUBKEY(bio, p) == 1);
    return bio_string(bio);
}

static char *pem_private(EVP_PKEY *p)
{
    BIO *bio = BIO_new(BIO_s_mem());
    ASSERT(PEM_write_bio_PrivateKey(bio, p, NULL, NULL, 0, NULL, NULL) == 1);
    return bio_string(bio);
}

/* Replaces one dot-separated segment (0, 1 or 2) of a token. */
static char *replace_segment(const char *token, int index, const char *seg)
{
    const char *d1 = strchr(token, '.');
    const char *d2 = strchr(d1 + 1, '.');
    if (index == 0)
        return qs_xasprintf("%s%s", seg, d1);
    if (index == 1)
        return qs_xasprintf("%.*s.%s%s", (int)(d1 - token), token, seg, d2);
    return qs_xasprintf("%.*s.%s", (int)(d2 - token), token, seg);
}

static unsigned char *decode_sig(const char *token, size_t *len)
{
    const char *sig = strrchr(token, '.') + 1;
    unsigned char *raw = NULL;
    ASSERT_EQ_INT(0, qs_base64url_decode(sig, strlen(sig), &raw, len));
    return raw;
}

/* ---- algorithm names ---------------------------------------------------------------------- */

TEST(alg_names_round_trip)
{
    static const char *names[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
                                  "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"};
    for (size_t i = 0; i < QS_ARRAY_LEN(names); i++) {
        enum qs_jwt_alg alg;
        ASSERT_EQ_INT(0, qs_jwt_alg_parse(names[i], &alg));
        ASSERT_EQ_INT(i, alg);
        ASSERT_EQ_STR(names[i], qs_jwt_alg_name(alg));
        ASSERT(qs_jwt_alg_is_hmac(alg) == (i < 3));
    }
    enum qs_jwt_alg alg = QS_JWT_ES256;
    ASSERT_EQ_INT(0, qs_jwt_alg_parse(NULL, &alg));
    ASSERT_EQ_INT(QS_JWT_HS256, alg);
    alg = QS_JWT_ES256;
    ASSERT_EQ_INT(0, qs_jwt_alg_parse("", &alg));
    ASSERT_EQ_INT(QS_JWT_HS256, alg);
    ASSERT_EQ_INT(-1, qs_jwt_alg_parse("none", &alg));
    ASSERT_EQ_INT(-1, qs_jwt_alg_parse("hs256", &alg));
    ASSERT_EQ_INT(-1, qs_jwt_alg_parse("EDDSA", &alg));
    ASSERT_EQ_INT(-1, qs_jwt_alg_parse("HS256 ", &alg));
    ASSERT_EQ_INT(-1, qs_jwt_alg_parse("ES256K", &alg));
}

TEST(status_strings_are_distinct)
{
    for (int a = QS_JWT_OK; a <= QS_JWT_E_CLAIMS; a++) {
        const char *sa = qs_jwt_status_str((enum qs_jwt_status)a);
        ASSERT(sa && *sa && !strchr(sa, '\n'));
        for (int b = a + 1; b <= QS_JWT_E_CLAIMS; b++)
            ASSERT(strcmp(sa, qs_jwt_status_str((enum qs_jwt_status)b)) != 0);
    }
    ASSERT_EQ_STR("token signature is invalid", qs_jwt_status_str(QS_JWT_E_SIGNATURE));
}

/* ---- base64url ---------------------------------------------------------------------------- */

TEST(base64url_known_vectors)
{
    static const struct {
        const char *raw, *enc;
    } v[] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff\xbf", "-_-_"},
        {"\xff\xfe", "__4"}};
    for (size_t i = 0; i < QS_ARRAY_LEN(v); i++) {
        char *enc = b64(v[i].raw);
        ASSERT_EQ_STR(v[i].enc, enc);
        free(enc);
        unsigned char *dec = NULL;
        size_t n = 99;
        ASSERT_EQ_INT(0, qs_base64url_decode(v[i].enc, strlen(v[i].enc), &dec, &n));
        ASSERT(dec != NULL);
        ASSERT_EQ_MEM(v[i].raw, strlen(v[i].raw), dec, n);
        free(dec);
    }
}

TEST(base64url_round_trips_all_lengths)
{
    unsigned char data[300];
    unsigned seed = 7;
    for (size_t len = 0; len <= sizeof(data); len++) {
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            data[i] = (unsigned char)(seed >> 16);
        }
        char *enc = qs_base64url_encode(data, len);
        ASSERT_EQ_INT((len * 4 + 2) / 3, strlen(enc));
        ASSERT(strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
               strlen(enc));
        unsigned char *dec = NULL;
        size_t n = 0;
        ASSERT_EQ_INT(0, qs_base64url_decode(enc, strlen(enc), &dec, &n));
        ASSERT_EQ_MEM(data, len, dec, n);
        free(dec);
        free(enc);
    }
}

TEST(base64url_rejects_invalid)
{
    static const char *bad[] = {
        "Zg==",   "Zm8=", "Z",    "Zm9vY", "Zh",   "Zm9",   "Zm9v ",
        "Zm9v\n", "Zm+v", "Zm/v", "Zm.v",  "====", "Zm9v=", "\xc3\xa9\xc3\xa9"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        unsigned char *dec = (unsigned char *)"x";
        size_t n = 5;
        if (qs_base64url_decode(bad[i], strlen(bad[i]), &dec, &n) != -1)
            qs_test_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
        ASSERT(dec == NULL);
        ASSERT_EQ_INT(0, n);
    }
    /* An embedded NUL is just another invalid character; the length is what counts. */
    unsigned char *dec = NULL;
    size_t n = 0;
    ASSERT_EQ_INT(-1, qs_base64url_decode("Zm\0v", 4, &dec, &n));
    ASSERT_EQ_INT(0, qs_base64url_decode("Zm9vYmFy", 4, &dec, &n));
    ASSERT_EQ_MEM("foo", 3, dec, n);
    free(dec);
}

/* ---- round trips with every algorithm ----------------------------------------------------- */

#define ROUNDTRIP_CLAIMS                                                                           \
    "{\"mercure\":{\"publish\":[\"https://example.com/a\"],\"subscribe\":[\"b\",\"c\"],"           \
    "\"payload\":{\"user\":\"x\"}},\"exp\":1700000060}"

/* Signs with the private key, verifies with a key read from the public PEM (and one read from
 * the private PEM), and checks the signature size the algorithm mandates. */
static void roundtrip(enum qs_jwt_alg alg, EVP_PKEY *pkey, size_t sig_size)
{
    char *priv_pem = pem_private(pkey), *pub_pem = pem_public(pkey);
    qs_jwt_key *signer = pem_key(alg, priv_pem, true);
    qs_jwt_key *verifier = pem_key(alg, pub_pem, false);
    qs_jwt_key *from_private = pem_key(alg, priv_pem, false);
    ASSERT_EQ_INT(alg, qs_jwt_key_alg(signer));
    ASSERT_EQ_INT(alg, qs_jwt_key_alg(verifier));

    char *token = sign_json(signer, ROUNDTRIP_CLAIMS);
    size_t sig_len = 0;
    free(decode_sig(token, &sig_len));
    if (sig_size)
        ASSERT_EQ_INT(sig_size, sig_len);

    /* The header is exactly {"alg":…,"typ":"JWT"}. */
    char *header = qs_xasprintf("{\"alg\":\"%s\",\"typ\":\"JWT\"}", qs_jwt_alg_name(alg));
    char *h64 = b64(header);
    ASSERT(strncmp(token, h64, strlen(h64)) == 0 && token[strlen(h64)] == '.');

    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, verify(verifier, token, NOW, &c));
    ASSERT(c.has_mercure && c.has_publish && c.has_subscribe);
    ASSERT_EQ_INT(1, c.n_publish);
    ASSERT_EQ_STR("https://example.com/a", c.publish[0]);
    ASSERT_EQ_INT(2, c.n_subscribe);
    ASSERT_EQ_STR("b", c.subscribe[0]);
    ASSERT_EQ_STR("c", c.subscribe[1]);
    ASSERT_EQ_STR("x", json_string_value(json_object_get(c.payload, "user")));
    ASSERT(c.has_exp && c.exp == 1700000060 && !c.has_nbf);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, verify(from_private, token, NOW, NULL));
    ASSERT_EQ_INT(QS_JWT_OK, verify(signer, token, NOW, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, verify(verifier, token, 1700000060, NULL));

    /* Keys built for verification cannot sign, even from a private PEM. */
    const char *err = NULL;
    json_t *claims = json_object();
    ASSERT(qs_jwt_sign(verifier, claims, &err) == NULL);
    ASSERT(err && *err);
    err = NULL;
    ASSERT(qs_jwt_sign(from_private, claims, &err) == NULL);
    ASSERT(err && *err);
    json_decref(claims);

    /* Flipping any signature byte breaks it. */
    unsigned char *raw = decode_sig(token, &sig_len);
    raw[sig_len / 2] ^= 0x01;
    char *sig64 = qs_base64url_encode(raw, sig_len);
    char *forged = replace_segment(token, 2, sig64);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(verifier, forged, NOW, NULL));

    free(forged);
    free(sig64);
    free(raw);
    free(h64);
    free(header);
    free(token);
    qs_jwt_key_free(from_private);
    qs_jwt_key_free(verifier);
    qs_jwt_key_free(signer);
    free(pub_pem);
    free(priv_pem);
}

TEST(hmac_algorithms_round_trip)
{
    static const struct {
        enum qs_jwt_alg alg;
        size_t mac;
    } v[] = {{QS_JWT_HS256, 32}, {QS_JWT_HS384, 48}, {QS_JWT_HS512, 64}};
    for (size_t i = 0; i < QS_ARRAY_LEN(v); i++) {
        const char *err = NULL;
        qs_jwt_key *k = qs_jwt_key_new(v[i].alg, "secret\0with nul", 15, &err);
        ASSERT(k);
        char *token = sign_json(k, ROUNDTRIP_CLAIMS);
        size_t n = 0;
        free(decode_sig(token, &n));
        ASSERT_EQ_INT(v[i].mac, n);
        qs_jwt_claims c;
        ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, &c));
        ASSERT_EQ_INT(2, c.n_subscribe);
        qs_jwt_claims_free(&c);

        /* The whole secret counts, bytes after a NUL included. */
        qs_jwt_key *other = qs_jwt_key_new(v[i].alg, "secret\0with nux", 15, &err);
        ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(other, token, NOW, NULL));
        qs_jwt_key_free(other);
        free(token);
        qs_jwt_key_free(k);
    }
}

TEST(rsa_algorithms_round_trip)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    roundtrip(QS_JWT_RS256, rsa, 256);
    roundtrip(QS_JWT_RS384, rsa, 256);
    roundtrip(QS_JWT_RS512, rsa, 256);
    roundtrip(QS_JWT_PS256, rsa, 256);
    roundtrip(QS_JWT_PS384, rsa, 256);
    roundtrip(QS_JWT_PS512, rsa, 256);
    EVP_PKEY_free(rsa);
}

TEST(rsa_pss_keys_work_for_ps_only)
{
    EVP_PKEY *pss = gen_plain("RSA-PSS");
    roundtrip(QS_JWT_PS256, pss, 256);
    char *pub = pem_public(pss);
    ASSERT_EQ_STR("RS256 needs an RSA key", key_error(QS_JWT_RS256, pub, strlen(pub)));
    free(pub);
    EVP_PKEY_free(pss);
}

TEST(ecdsa_algorithms_round_trip)
{
    EVP_PKEY *p256 = gen_ec("P-256"), *p384 = gen_ec("P-384"), *p521 = gen_ec("P-521");
    /* JWS uses fixed-width R||S: 2 x 32, 2 x 48 and 2 x 66 bytes. */
    for (int i = 0; i < 8; i++) {
        roundtrip(QS_JWT_ES256, p256, 64);
        roundtrip(QS_JWT_ES384, p384, 96);
        roundtrip(QS_JWT_ES512, p521, 132);
    }
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(p521);
}

TEST(eddsa_round_trip)
{
    EVP_PKEY *ed = gen_plain("ED25519");
    roundtrip(QS_JWT_EDDSA, ed, 64);
    EVP_PKEY_free(ed);
}

/* ---- fixed vectors ------------------------------------------------------------------------ */

/* RFC 7515 appendix A.1: HS256 with a JWK "oct" key; exp is 1300819380. */
TEST(rfc7515_hs256_vector)
{
    static const unsigned char secret[] = {
        3,   35,  53, 75,  43,  15, 165, 188, 131, 126, 6,   101, 119, 123, 166, 143,
        90,  179, 40, 230, 240, 84, 201, 40,  169, 15,  132, 178, 210, 80,  46,  191,
        211, 251, 90, 146, 210, 6,  71,  239, 150, 138, 180, 195, 119, 98,  61,  34,
        61,  46,  33, 114, 5,   46, 79,  8,   192, 205, 154, 245, 103, 208, 128, 163};
    static const char token[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290"
        "Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const char *err = NULL;
    qs_jwt_key *k = qs_jwt_key_new(QS_JWT_HS256, (const char *)secret, sizeof(secret), &err);
    ASSERT(k);
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, 1300819379, &c));
    ASSERT(c.has_exp && c.exp == 1300819380);
    ASSERT(!c.has_mercure && !c.has_publish && !c.has_subscribe && !c.payload);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, verify(k, token, 1300819380, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, verify(k, token, NOW, NULL));
    qs_jwt_key_free(k);
}

/* RFC 7515 appendix A.3: ES256, built from the JWK's x and y coordinates. */
TEST(rfc7515_es256_vector)
{
    static const char x64[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    static const char y64[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    static const char token[] =
        "eyJhbGciOiJFUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290"
        "Ijp0cnVlfQ"
        ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    unsigned char *x, *y;
    size_t xn, yn;
    ASSERT_EQ_INT(0, qs_base64url_decode(x64, strlen(x64), &x, &xn));
    ASSERT_EQ_INT(0, qs_base64url_decode(y64, strlen(y64), &y, &yn));
    ASSERT(xn == 32 && yn == 32);
    unsigned char point[65] = {0x04};
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    free(x);
    free(y);

    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    ASSERT(EVP_PKEY_fromdata_init(ctx) == 1);
    ASSERT(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1);
    EVP_PKEY_CTX_free(ctx);
    char *pem = pem_public(pkey);
    qs_jwt_key *k = pem_key(QS_JWT_ES256, pem, false);
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, 1300819379, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, verify(k, token, 1300819380, NULL));
    qs_jwt_key_free(k);
    free(pem);
    EVP_PKEY_free(pkey);
}

/* The reference hub's documented development token, signature computed with openssl dgst. */
TEST(mercure_dev_token_vector)
{
    static const char token[] = "eyJhbGciOiJIUzI1NiJ9"
                                ".eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdLCJzdWJzY3JpYmUiOlsiKiJdfX0"
                                ".bVXdlWXwfw9ySx7-iV5OpUSHo34RkjUdVzDLBcc6l_g";
    qs_jwt_key *k = hs_key(DEV_SECRET);
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, &c));
    ASSERT(c.has_mercure && c.has_publish && c.has_subscribe);
    ASSERT_EQ_INT(1, c.n_publish);
    ASSERT_EQ_STR("*", c.publish[0]);
    ASSERT_EQ_INT(1, c.n_subscribe);
    ASSERT_EQ_STR("*", c.subscribe[0]);
    ASSERT(!c.payload && !c.has_exp && !c.has_nbf);
    qs_jwt_claims_free(&c);
    qs_jwt_key_free(k);

    qs_jwt_key *wrong = hs_key("!ChangeThisMercureHubJWTSecretKey?");
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(wrong, token, NOW, NULL));
    qs_jwt_key_free(wrong);
}

/* Tokens made by the openssl command line (dgst -sign, pkeyutl -rawin) from independent keys. */
static const char openssl_claims_check[] = "https://example.com/books/{id}";

TEST(openssl_cli_rs256_vector)
{
    static const char pub[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArc/cHoy1IltLiITRkQTM\n"
                              "7NlEixoPYBe8AsBhFtLzOLwV/evyxZu4uflPIAFx1jAbSwRldPP8ReadVr8JodgU\n"
                              "M0e/uZtl7y4zDQVzeabQxREbN3z2O+a5/U2lrluYTA+cEIIqclWmJwusvs9IZwqu\n"
                              "9/aFeL7ZK89RgGPsVPRJLZLFQE5IUtASo1ViN58WD1VGB79SjpDN15QkKmAqkb4I\n"
                              "XFbtMupU/Y0QYbyKf9z8lNf0K04LsIhHqhxd4IiJQxHQpXaYg4WkD/YVG4oSRObi\n"
                              "EiLRVPg0Sj6VijCWEdoAf/HWvOPxgIiXxzxxWZOmc1JjLolTAd0djA2YeJmkFzBs\n"
                              "oQIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";
    static const char token[] =
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
        ".eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiaHR0cHM6Ly9leGFtcGxlLmNvbS9ib29rcy97aWR9Il19LCJzdWIiOiJv"
        "cGVuc3NsIn0"
        ".Q-kOq9ZRH-MgeQQJhug89jTQo7evFC7HV8s_C0c60lIzz_69SioAdk5vl_"
        "FBesuEVqse6svamozeRNJ1xGlF97Z5a5"
        "JE9LqUruzK8UMA72tlVTo8gjyF69gDV9uoXAnEpsdKk1BzZnI_"
        "Dh2Niv6w3cLfALkjO32B6QcFAgFUM5sm8eZaIxQEQ"
        "J1vVT9sri-O0CnLzwFIJyWBy-u_dYhQNxpqK6_-iwmT-y16J5aGMhZfX0EWEGE-mmNIhhFaeg4DqsC71_"
        "XYUTsF8uZ_"
        "sPpli72H1Z_zPBg-1dW19MMiGr6JfJbFySp-luOceOoktx7vrTKJhedqd-xAzOLQVlIuWg";
    qs_jwt_key *k = pem_key(QS_JWT_RS256, pub, false);
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, &c));
    ASSERT(c.has_publish && c.n_publish == 1 && !c.has_subscribe);
    ASSERT_EQ_STR(openssl_claims_check, c.publish[0]);
    qs_jwt_claims_free(&c);
    qs_jwt_key_free(k);

    /* Same key pinned to PS256: the header says RS256, so the algorithm is refused. */
    k = pem_key(QS_JWT_PS256, pub, false);
    ASSERT_EQ_INT(QS_JWT_E_ALG, verify(k, token, NOW, NULL));
    qs_jwt_key_free(k);
}

TEST(openssl_cli_eddsa_vector)
{
    static const char pub[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MCowBQYDK2VwAyEAtYfayOccPEPBnmJykrpb+f5EGb7042WQq7j6U6SyBVg=\n"
                              "-----END PUBLIC KEY-----\n";
    static const char token[] =
        "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9"
        ".eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiaHR0cHM6Ly9leGFtcGxlLmNvbS9ib29rcy97aWR9Il19LCJzdWIiOiJv"
        "cGVuc3NsIn0"
        ".Mn5nrbnfXQGEQwlGq3W6FOOBXWJyr1s90nUyw5Po7mcd7HRFrZY9X-6lrrSdLogRYod0c8ROWGWfPNyu00qzBQ";
    qs_jwt_key *k = pem_key(QS_JWT_EDDSA, pub, false);
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, &c));
    ASSERT_EQ_STR(openssl_claims_check, c.publish[0]);
    qs_jwt_claims_free(&c);
    qs_jwt_key_free(k);
}

/* ---- algorithm pinning -------------------------------------------------------------------- */

TEST(alg_mismatch_is_refused)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    char *pub = pem_public(rsa);
    qs_jwt_key *rs = pem_key(QS_JWT_RS256, pub, false);
    qs_jwt_key *hs = hs_key(DEV_SECRET);

    /* An HS256 token against an RS256 key. */
    char *token = sign_json(hs, "{}");
    ASSERT_EQ_INT(QS_JWT_E_ALG, verify(rs, token, NOW, NULL));
    free(token);

    /* The classic confusion attack: HMAC keyed with the public key's PEM text. */
    qs_jwt_key *confused = hs_key(pub);
    token = sign_json(confused, "{\"mercure\":{\"publish\":[\"*\"]}}");
    ASSERT_EQ_INT(QS_JWT_E_ALG, verify(rs, token, NOW, NULL));
    free(token);
    qs_jwt_key_free(confused);

    /* An HS384 token against an HS256 key, even with the same secret. */
    const char *err;
    qs_jwt_key *hs384 = qs_jwt_key_new(QS_JWT_HS384, DEV_SECRET, strlen(DEV_SECRET), &err);
    token = sign_json(hs384, "{}");
    ASSERT_EQ_INT(QS_JWT_E_ALG, verify(hs, token, NOW, NULL));
    free(token);
    qs_jwt_key_free(hs384);

    /* "none", with or without a signature, and case variants. */
    static const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
                                    "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}",
                                    "{\"alg\":\"\"}"};
    for (size_t i = 0; i < QS_ARRAY_LEN(headers); i++) {
        token = hs_token_raw(DEV_SECRET, headers[i], "{}");
        ASSERT_EQ_INT(QS_JWT_E_ALG, verify(hs, token, NOW, NULL));
        ASSERT_EQ_INT(QS_JWT_E_ALG, verify(rs, token, NOW, NULL));
        char *unsigned_token = replace_segment(token, 2, "");
        ASSERT_EQ_INT(QS_JWT_E_ALG, verify(hs, unsigned_token, NOW, NULL));
        free(unsigned_token);
        free(token);
    }

    qs_jwt_key_free(hs);
    qs_jwt_key_free(rs);
    free(pub);
    EVP_PKEY_free(rsa);
}

TEST(header_parsing_follows_go)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    /* Extra members, whitespace, and duplicate keys (the last one wins, as in Go). */
    static const char *ok[] = {
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"1\",\"crit\":[\"x\"]}",
        " {\r\n\t\"alg\" : \"HS256\" } ",
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(ok); i++) {
        char *token = hs_token_raw(DEV_SECRET, ok[i], "{}");
        ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));
        free(token);
    }
    char *token = hs_token_raw(DEV_SECRET, "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}");
    ASSERT_EQ_INT(QS_JWT_E_ALG, verify(k, token, NOW, NULL));
    free(token);
    qs_jwt_key_free(k);
}

/* ---- tampering ---------------------------------------------------------------------------- */

TEST(tampered_tokens_fail_signature)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    char *token = sign_json(k, "{\"mercure\":{\"subscribe\":[\"a\"]}}");
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));

    char *claims = b64("{\"mercure\":{\"subscribe\":[\"*\"]}}");
    char *t = replace_segment(token, 1, claims);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, t, NOW, NULL));
    free(t);
    free(claims);

    char *header = b64("{\"alg\":\"HS256\",\"typ\":\"JWS\"}");
    t = replace_segment(token, 0, header);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, t, NOW, NULL));
    free(t);
    free(header);

    t = replace_segment(token, 2, "");
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, t, NOW, NULL));
    free(t);

    /* A truncated MAC (a valid base64url length) and an extended one. */
    size_t n;
    unsigned char *sig = decode_sig(token, &n);
    char *short_sig = qs_base64url_encode(sig, n - 1);
    t = replace_segment(token, 2, short_sig);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, t, NOW, NULL));
    free(t);
    free(short_sig);
    unsigned char longer[65];
    memcpy(longer, sig, n);
    longer[n] = 0;
    char *long_sig = qs_base64url_encode(longer, n + 1);
    t = replace_segment(token, 2, long_sig);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, t, NOW, NULL));
    free(t);
    free(long_sig);
    free(sig);

    /* A valid signature on an expired token is still checked first: bad signature wins. */
    char *expired = sign_json(k, "{\"exp\":1}");
    char *forged_sig = qs_xstrdup(strrchr(token, '.') + 1);
    t = replace_segment(expired, 2, forged_sig);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, t, NOW, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, verify(k, expired, NOW, NULL));
    free(t);
    free(forged_sig);
    free(expired);
    free(token);
    qs_jwt_key_free(k);
}

TEST(wrong_size_asymmetric_signatures_fail)
{
    EVP_PKEY *ec = gen_ec("P-256"), *rsa = gen_rsa(2048);
    char *ec_priv = pem_private(ec), *rsa_priv = pem_private(rsa);
    qs_jwt_key *es = pem_key(QS_JWT_ES256, ec_priv, true);
    qs_jwt_key *ps = pem_key(QS_JWT_PS256, rsa_priv, true);
    qs_jwt_key *keys[] = {es, ps};
    for (size_t i = 0; i < 2; i++) {
        char *token = sign_json(keys[i], "{}");
        size_t n;
        unsigned char *sig = decode_sig(token, &n);
        /* A leading zero byte keeps the numeric value but not the width; Go refuses it. */
        unsigned char *padded = qs_xmalloc(n + 1);
        padded[0] = 0;
        memcpy(padded + 1, sig, n);
        char *s64 = qs_base64url_encode(padded, n + 1);
        char *t = replace_segment(token, 2, s64);
        ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(keys[i], t, NOW, NULL));
        free(t);
        free(s64);
        s64 = qs_base64url_encode(sig, n - 1);
        t = replace_segment(token, 2, s64);
        ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(keys[i], t, NOW, NULL));
        free(t);
        free(s64);
        /* All zeros: never valid (R = S = 0 for ECDSA, a zero RSA signature). */
        memset(sig, 0, n);
        s64 = qs_base64url_encode(sig, n);
        t = replace_segment(token, 2, s64);
        ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(keys[i], t, NOW, NULL));
        free(t);
        free(s64);
        free(padded);
        free(sig);
        free(token);
    }
    qs_jwt_key_free(es);
    qs_jwt_key_free(ps);
    free(ec_priv);
    free(rsa_priv);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}

/* golang-jwt verifies PS* with rsa.PSSSaltLengthAuto, so other salt lengths are accepted. */
TEST(pss_verification_accepts_any_salt_length)
{
    EVP_PKEY *rsa = gen_rsa(2048);
    char *pub = pem_public(rsa);
    qs_jwt_key *k = pem_key(QS_JWT_PS256, pub, false);
    char *h = b64("{\"alg\":\"PS256\"}"), *c = b64("{\"sub\":\"salty\"}");
    char *input = qs_xasprintf("%s.%s", h, c);
    static const int salts[] = {RSA_PSS_SALTLEN_MAX, 0, 20, 32};
    for (size_t i = 0; i < QS_ARRAY_LEN(salts); i++) {
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        unsigned char sig[256];
        size_t n = sizeof(sig);
        ASSERT(EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL, rsa) == 1);
        ASSERT(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
        ASSERT(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salts[i]) == 1);
        ASSERT(EVP_DigestSign(mctx, sig, &n, (unsigned char *)input, strlen(input)) == 1);
        EVP_MD_CTX_free(mctx);
        char *s64 = qs_base64url_encode(sig, n);
        char *token = qs_xasprintf("%s.%s", input, s64);
        ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));
        free(token);
        free(s64);
    }
    /* A PKCS#1 v1.5 signature over the same input is not a PSS one. */
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    unsigned char sig[256];
    size_t n = sizeof(sig);
    ASSERT(EVP_DigestSignInit(mctx, NULL, EVP_sha256(), NULL, rsa) == 1);
    ASSERT(EVP_DigestSign(mctx, sig, &n, (unsigned char *)input, strlen(input)) == 1);
    EVP_MD_CTX_free(mctx);
    char *s64 = qs_base64url_encode(sig, n);
    char *token = qs_xasprintf("%s.%s", input, s64);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, token, NOW, NULL));
    free(token);
    free(s64);
    free(input);
    free(h);
    free(c);
    qs_jwt_key_free(k);
    free(pub);
    EVP_PKEY_free(rsa);
}

/* ---- malformed tokens --------------------------------------------------------------------- */

TEST(malformed_structure)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    char *good = sign_json(k, "{\"mercure\":{}}");
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, good, NOW, NULL));
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');

    char *cases[] = {
        qs_xstrdup(""),
        qs_xstrdup("."),
        qs_xstrdup(".."),
        qs_xstrdup("..."),
        qs_xstrndup(good, (size_t)(d2 - good)),             /* two parts */
        qs_xasprintf("%s.", good),                          /* four parts, last empty */
        qs_xasprintf("%s.%s", good, d2 + 1),                /* four parts */
        qs_xasprintf("%.*s%s", (int)(d1 - good), good, d2), /* empty claims */
        qs_xasprintf("%s", d1),                             /* empty header */
        qs_xasprintf("%s=", good),                          /* padding on the signature */
        qs_xasprintf(" %s", good),
        qs_xasprintf("%s ", good),
        qs_xasprintf("%s\n", good),
        qs_xasprintf("Bearer %s", good),
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        if (verify(k, cases[i], NOW, NULL) != QS_JWT_E_MALFORMED)
            qs_test_fail(__FILE__, __LINE__, "case %zu (\"%s\") not malformed", i, cases[i]);
        free(cases[i]);
    }

    /* Bad characters in each segment, including the standard alphabet's '+' and '/'. */
    static const char subst[] = {'+', '/', '=', '*', ' ', '%', '\0'};
    size_t glen = strlen(good);
    size_t positions[] = {1, (size_t)(d1 - good) + 2, (size_t)(d2 - good) + 2, glen - 1};
    for (size_t p = 0; p < QS_ARRAY_LEN(positions); p++) {
        for (size_t s = 0; s < sizeof(subst); s++) {
            char *t = qs_xstrdup(good);
            t[positions[p]] = subst[s];
            qs_jwt_claims c;
            ASSERT_EQ_INT(QS_JWT_E_MALFORMED, qs_jwt_verify(k, t, glen, NOW, &c));
            free(t);
        }
    }

    /* Padded header and claims segments (a JSON text whose encoding needs "="). */
    char *h = b64("{\"alg\":\"HS256\" }");
    ASSERT(strlen(h) % 4 != 0);
    char *padded = qs_xasprintf("%s=", h);
    char *t = replace_segment(good, 0, padded);
    ASSERT_EQ_INT(QS_JWT_E_MALFORMED, verify(k, t, NOW, NULL));
    free(t);
    t = replace_segment(good, 1, padded);
    ASSERT_EQ_INT(QS_JWT_E_MALFORMED, verify(k, t, NOW, NULL));
    free(t);
    free(padded);
    free(h);

    /* The length argument is authoritative: a valid token cut short or read past a NUL. */
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_E_MALFORMED, qs_jwt_verify(k, good, (size_t)(d2 - good), NOW, &c));
    ASSERT_EQ_INT(QS_JWT_E_MALFORMED, qs_jwt_verify(k, good, glen + 1, NOW, &c));
    ASSERT_EQ_INT(QS_JWT_E_MALFORMED, qs_jwt_verify(k, NULL, 0, NOW, &c));

    free(good);
    qs_jwt_key_free(k);
}

TEST(malformed_json)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    static const char *headers[] = {
        "[]",
        "\"HS256\"",
        "null",
        "{}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":\"HS256\"} x",
        "{\"alg\":\"HS256\"}{}",
        "{\"alg\":\"HS256\"",
        "{alg:\"HS256\"}",
        "{\"alg\":\"HS\\u0000256\"}",
        "{\"alg\":\"HS256\",}",
        "",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(headers); i++) {
        char *token = hs_token_raw(DEV_SECRET, headers[i], "{}");
        if (verify(k, token, NOW, NULL) != QS_JWT_E_MALFORMED)
            qs_test_fail(__FILE__, __LINE__, "header %s not malformed", headers[i]);
        free(token);
    }
    static const char *claims[] = {
        "[]", "[{}]",  "\"claims\"", "null",     "1",
        "",   "{} {}", "{\"a\":1,}", "{\"a\":1", "{\"a\":\"\xff\"}",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(claims); i++) {
        char *token = hs_token_raw(DEV_SECRET, "{\"alg\":\"HS256\"}", claims[i]);
        if (verify(k, token, NOW, NULL) != QS_JWT_E_MALFORMED)
            qs_test_fail(__FILE__, __LINE__, "claims %s not malformed", claims[i]);
        free(token);
    }
    /* A payload nested deeper than the parser allows is refused rather than recursed into. */
    char deep[6000];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "{\"p\":");
    for (int i = 0; i < 2500; i++)
        deep[n++] = '[';
    for (int i = 0; i < 2500; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    char *token = hs_token_raw(DEV_SECRET, "{\"alg\":\"HS256\"}", deep);
    ASSERT_EQ_INT(QS_JWT_E_MALFORMED, verify(k, token, NOW, NULL));
    free(token);
    qs_jwt_key_free(k);
}

TEST(token_size_limit)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    /* Find payload sizes that land the signed token just under and just over 64 KiB. */
    char *big = qs_xmalloc(70000);
    size_t lo_len = 0, hi_len = 0;
    for (size_t fill = 48000; fill < 50000 && (!lo_len || !hi_len); fill++) {
        int m = snprintf(big, 70000, "{\"mercure\":{\"payload\":\"%*s\"}}", (int)fill, "");
        ASSERT(m > 0);
        json_t *claims = json_loads(big, 0, NULL);
        const char *err;
        char *token = qs_jwt_sign(k, claims, &err);
        json_decref(claims);
        size_t tl = strlen(token);
        qs_jwt_claims c;
        enum qs_jwt_status st = qs_jwt_verify(k, token, tl, NOW, &c);
        if (tl <= 65536) {
            ASSERT_EQ_INT(QS_JWT_OK, st);
            ASSERT_EQ_INT(fill, json_string_length(c.payload));
            qs_jwt_claims_free(&c);
            if (tl > 65530)
                lo_len = tl;
        } else {
            ASSERT_EQ_INT(QS_JWT_E_MALFORMED, st);
            hi_len = tl;
        }
        free(token);
    }
    ASSERT(lo_len && hi_len);
    free(big);

    /* Length alone decides, before anything is decoded. */
    char *huge = qs_xmalloc(1 << 20);
    memset(huge, 'A', 1 << 20);
    huge[100] = '.';
    huge[200] = '.';
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_E_MALFORMED, qs_jwt_verify(k, huge, 1 << 20, NOW, &c));
    free(huge);
    qs_jwt_key_free(k);
}

/* ---- registered claims -------------------------------------------------------------------- */

static enum qs_jwt_status at(const char *claims_json, int64_t now, qs_jwt_claims *out)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    char *token = hs_token_raw(DEV_SECRET, "{\"alg\":\"HS256\"}", claims_json);
    enum qs_jwt_status st = verify(k, token, now, out);
    free(token);
    qs_jwt_key_free(k);
    return st;
}

TEST(exp_boundaries)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":1000}", 999, &c));
    ASSERT(c.has_exp && c.exp == 1000 && !c.has_nbf);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"exp\":1000}", 1000, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"exp\":1000}", 1001, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"exp\":0}", 0, NULL));
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":-5}", -6, NULL));
    /* Fractions are truncated to whole seconds like Go's NumericDate. */
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":1000.9}", 999, &c));
    ASSERT_EQ_INT(1000, c.exp);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"exp\":1000.9}", 1000, NULL));
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":1e3}", 999, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"exp\":1e3}", 1000, NULL));
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":-1.5}", -3, &c));
    ASSERT_EQ_INT(-2, c.exp);
    qs_jwt_claims_free(&c);
    /* Far-future values clamp instead of overflowing. */
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":1e300}", NOW, &c));
    ASSERT(c.exp == INT64_MAX);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":9223372036854775807}", NOW, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"exp\":-1e300}", INT64_MIN, NULL));
    /* null is absent. */
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":null}", NOW, &c));
    ASSERT(!c.has_exp);
    qs_jwt_claims_free(&c);
}

TEST(nbf_boundaries)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_E_NOT_YET_VALID, at("{\"nbf\":1000}", 999, NULL));
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"nbf\":1000}", 1000, &c));
    ASSERT(c.has_nbf && c.nbf == 1000 && !c.has_exp);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"nbf\":1000.5}", 1000, NULL));
    ASSERT_EQ_INT(QS_JWT_E_NOT_YET_VALID, at("{\"nbf\":1000.5}", 999, NULL));
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"nbf\":1000,\"exp\":1001}", 1000, NULL));
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"nbf\":1000,\"exp\":1000}", 1000, NULL));
    /* Both wrong: expiry is reported, as Go checks it first. */
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"nbf\":2000,\"exp\":500}", 1000, NULL));
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"nbf\":null}", 0, NULL));
    /* iat is not checked, even far in the future. */
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"iat\":99999999999}", NOW, NULL));
}

TEST(registered_claim_types)
{
    static const char *malformed[] = {
        "{\"exp\":\"1000\"}", "{\"exp\":true}",  "{\"exp\":[1]}",
        "{\"exp\":{}}",       "{\"nbf\":\"0\"}", "{\"iat\":\"now\"}",
        "{\"iss\":5}",        "{\"sub\":[]}",    "{\"jti\":{}}",
        "{\"aud\":5}",        "{\"aud\":[1]}",   "{\"aud\":[\"a\",null]}",
        "{\"aud\":{}}",       "{\"exp\":1e999}", "{\"exp\":99999999999999999999}",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(malformed); i++) {
        if (at(malformed[i], NOW, NULL) != QS_JWT_E_MALFORMED)
            qs_test_fail(__FILE__, __LINE__, "%s not malformed", malformed[i]);
    }
    static const char *ok[] = {
        "{\"iss\":\"a\",\"sub\":\"b\",\"jti\":\"c\",\"aud\":\"d\",\"iat\":1.5}",
        "{\"iss\":null,\"sub\":null,\"jti\":null,\"aud\":null,\"iat\":null}",
        "{\"aud\":[]}",
        "{\"aud\":[\"a\",\"b\"]}",
        "{\"typ\":5,\"other\":{\"exp\":\"x\"}}",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(ok); i++) {
        if (at(ok[i], NOW, NULL) != QS_JWT_OK)
            qs_test_fail(__FILE__, __LINE__, "%s refused", ok[i]);
    }
}

/* ---- Mercure claims ----------------------------------------------------------------------- */

TEST(no_mercure_claim)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"sub\":\"x\"}", &c));
    ASSERT(!c.has_mercure && !c.has_publish && !c.has_subscribe);
    ASSERT(!c.publish && !c.subscribe && !c.payload && c.n_publish == 0 && c.n_subscribe == 0);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":null}", &c));
    ASSERT(!c.has_mercure);
    qs_jwt_claims_free(&c);
}

TEST(null_and_empty_selector_lists_differ)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":{}}", &c));
    ASSERT(c.has_mercure && !c.has_publish && !c.has_subscribe && !c.payload);
    qs_jwt_claims_free(&c);

    ASSERT_EQ_INT(QS_JWT_OK,
                  hs_roundtrip("{\"mercure\":{\"publish\":null,\"subscribe\":null}}", &c));
    ASSERT(c.has_mercure && !c.has_publish && !c.has_subscribe);
    ASSERT(c.n_publish == 0 && c.n_subscribe == 0);
    qs_jwt_claims_free(&c);

    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":{\"publish\":[],\"subscribe\":[]}}", &c));
    ASSERT(c.has_publish && c.n_publish == 0 && c.has_subscribe && c.n_subscribe == 0);
    qs_jwt_claims_free(&c);

    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":{\"subscribe\":[\"\",\"/é/{x}\"]}}", &c));
    ASSERT(!c.has_publish && c.has_subscribe && c.n_subscribe == 2);
    ASSERT_EQ_STR("", c.subscribe[0]);
    ASSERT_EQ_STR("/é/{x}", c.subscribe[1]);
    qs_jwt_claims_free(&c);
    /* Freeing twice is harmless: the struct is zeroed. */
    qs_jwt_claims_free(&c);
    qs_jwt_claims_free(NULL);
}

TEST(namespaced_claim_wins_when_present)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK,
                  hs_roundtrip("{\"https://mercure.rocks/\":{\"publish\":[\"ns\"]}}", &c));
    ASSERT(c.has_mercure && c.has_publish && !c.has_subscribe);
    ASSERT_EQ_STR("ns", c.publish[0]);
    qs_jwt_claims_free(&c);

    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":null,"
                                          "\"https://mercure.rocks/\":{\"subscribe\":[\"ns\"]}}",
                                          &c));
    ASSERT(c.has_mercure && c.has_subscribe && c.n_subscribe == 1);
    qs_jwt_claims_free(&c);

    /* Both present: the namespaced claim wins, as in the reference (authorization.go copies
     * it over "mercure"); "mercure" must still be well-formed. */
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"https://mercure.rocks/\":{\"publish\":[\"ns\"]},"
                                          "\"mercure\":{\"publish\":[\"m\"]}}",
                                          &c));
    ASSERT_EQ_INT(1, c.n_publish);
    ASSERT_EQ_STR("ns", c.publish[0]);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_E_CLAIMS,
                  hs_roundtrip("{\"mercure\":{},\"https://mercure.rocks/\":{\"publish\":3}}", &c));

    /* Near misses of the namespace are ordinary claims. */
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"https://mercure.rocks\":{\"publish\":[\"x\"]},"
                                          "\"Mercure\":{\"publish\":[\"y\"]}}",
                                          &c));
    ASSERT(!c.has_mercure);
    qs_jwt_claims_free(&c);
}

TEST(duplicate_claim_keys_keep_the_last)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"mercure\":{\"publish\":[\"a\"]},"
                                "\"mercure\":{\"publish\":[\"b\"],\"publish\":[\"c\",\"d\"]}}",
                                NOW, &c));
    ASSERT_EQ_INT(2, c.n_publish);
    ASSERT_EQ_STR("c", c.publish[0]);
    ASSERT_EQ_STR("d", c.publish[1]);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, at("{\"exp\":\"bad\",\"exp\":5000}", 4999, NULL));
}

TEST(malformed_mercure_claims)
{
    static const char *bad[] = {
        "{\"mercure\":\"*\"}",
        "{\"mercure\":[]}",
        "{\"mercure\":true}",
        "{\"mercure\":1}",
        "{\"mercure\":{\"publish\":\"*\"}}",
        "{\"mercure\":{\"publish\":{}}}",
        "{\"mercure\":{\"publish\":[1]}}",
        "{\"mercure\":{\"publish\":[\"a\",null]}}",
        "{\"mercure\":{\"subscribe\":[[\"a\"]]}}",
        "{\"mercure\":{\"subscribe\":[{\"a\":1}]}}",
        "{\"mercure\":{\"subscribe\":true}}",
        "{\"https://mercure.rocks/\":\"x\"}",
        "{\"https://mercure.rocks/\":{\"subscribe\":[false]}}",
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        qs_jwt_claims c;
        if (hs_roundtrip(bad[i], &c) != QS_JWT_E_CLAIMS)
            qs_test_fail(__FILE__, __LINE__, "%s accepted", bad[i]);
    }
    /* The signature is checked before the claim: a forged bad claim is a signature error. */
    qs_jwt_key *k = hs_key(DEV_SECRET);
    char *token = hs_token_raw("other secret", "{\"alg\":\"HS256\"}", bad[0]);
    ASSERT_EQ_INT(QS_JWT_E_SIGNATURE, verify(k, token, NOW, NULL));
    free(token);
    /* So is expiry. */
    ASSERT_EQ_INT(QS_JWT_E_EXPIRED, at("{\"exp\":1,\"mercure\":\"x\"}", NOW, NULL));
    qs_jwt_key_free(k);
}

static enum qs_jwt_status n_selectors(const char *field, size_t n, qs_jwt_claims *c)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char s[48];
        snprintf(s, sizeof(s), "https://example.com/%zu", i);
        json_array_append_new(list, json_string(s));
    }
    json_t *m = json_object();
    json_object_set_new(m, field, list);
    json_t *claims = json_object();
    json_object_set_new(claims, "mercure", m);
    qs_jwt_key *k = hs_key(DEV_SECRET);
    const char *err;
    char *token = qs_jwt_sign(k, claims, &err);
    json_decref(claims);
    enum qs_jwt_status st = verify(k, token, NOW, c);
    free(token);
    qs_jwt_key_free(k);
    return st;
}

TEST(selector_limit)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, n_selectors("publish", QS_JWT_MAX_CLAIM_SELECTORS, &c));
    ASSERT_EQ_INT(QS_JWT_MAX_CLAIM_SELECTORS, c.n_publish);
    ASSERT_EQ_STR("https://example.com/999", c.publish[999]);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, n_selectors("subscribe", QS_JWT_MAX_CLAIM_SELECTORS, &c));
    ASSERT_EQ_INT(QS_JWT_MAX_CLAIM_SELECTORS, c.n_subscribe);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_E_CLAIMS, n_selectors("publish", QS_JWT_MAX_CLAIM_SELECTORS + 1, &c));
    ASSERT_EQ_INT(QS_JWT_E_CLAIMS, n_selectors("subscribe", QS_JWT_MAX_CLAIM_SELECTORS + 1, &c));
}

TEST(payload_is_kept_as_json)
{
    qs_jwt_claims c;
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":{\"payload\":"
                                          "{\"user\":\"https://example.com/u/1\","
                                          "\"n\":[1,2.5,{\"deep\":null}],\"ok\":true}}}",
                                          &c));
    json_t *expected = json_loads(
        "{\"ok\":true,\"n\":[1,2.5,{\"deep\":null}],\"user\":\"https://example.com/u/1\"}", 0,
        NULL);
    ASSERT(c.payload && json_equal(expected, c.payload));
    /* The payload outlives the token's JSON tree and belongs to the claims. */
    ASSERT_EQ_INT(1, c.payload->refcount);
    json_decref(expected);
    qs_jwt_claims_free(&c);

    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":{\"payload\":null}}", &c));
    ASSERT(c.payload == NULL && c.has_mercure);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":{\"payload\":0}}", &c));
    ASSERT(json_is_integer(c.payload) && json_integer_value(c.payload) == 0);
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK, hs_roundtrip("{\"mercure\":{\"payload\":\"text\"}}", &c));
    ASSERT_EQ_STR("text", json_string_value(c.payload));
    qs_jwt_claims_free(&c);
    ASSERT_EQ_INT(QS_JWT_OK,
                  hs_roundtrip("{\"https://mercure.rocks/\":{\"payload\":[\"ns\"]}}", &c));
    ASSERT_EQ_STR("ns", json_string_value(json_array_get(c.payload, 0)));
    qs_jwt_claims_free(&c);
}

/* ---- keys --------------------------------------------------------------------------------- */

TEST(hmac_key_errors)
{
    const char *err = NULL;
    ASSERT(qs_jwt_key_new(QS_JWT_HS256, "", 0, &err) == NULL);
    ASSERT_EQ_STR("HMAC secret is empty", err);
    err = NULL;
    ASSERT(qs_jwt_key_new(QS_JWT_HS512, NULL, 0, &err) == NULL);
    ASSERT_EQ_STR("HMAC secret is empty", err);
    err = NULL;
    ASSERT(qs_jwt_key_new_private(QS_JWT_HS384, "", 0, &err) == NULL);
    ASSERT_EQ_STR("HMAC secret is empty", err);
    err = NULL;
    ASSERT(qs_jwt_key_new((enum qs_jwt_alg)99, "x", 1, &err) == NULL);
    ASSERT_EQ_STR("unsupported JWT algorithm", err);
    /* A one-byte secret is legal, and a NULL err pointer is tolerated. */
    qs_jwt_key *k = qs_jwt_key_new(QS_JWT_HS256, "k", 1, NULL);
    ASSERT(k);
    qs_jwt_key_free(k);
    qs_jwt_key_free(NULL);
}

TEST(pem_key_errors)
{
    static const char garbage[] =
        "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n";
    ASSERT(strstr(key_error(QS_JWT_RS256, garbage, strlen(garbage)), "not a valid PEM"));
    ASSERT(strstr(key_error(QS_JWT_ES256, "hello", 5), "not a valid PEM"));
    ASSERT(key_error(QS_JWT_EDDSA, "", 0));
    ASSERT(key_error(QS_JWT_RS256, NULL, 0));
    /* The HMAC secret is not a PEM key. */
    ASSERT(strstr(key_error(QS_JWT_RS256, DEV_SECRET, strlen(DEV_SECRET)), "not a valid PEM"));

    EVP_PKEY *rsa = gen_rsa(2048), *p256 = gen_ec("P-256"), *p384 = gen_ec("P-384");
    EVP_PKEY *p521 = gen_ec("P-521"), *k1 = gen_ec("secp256k1"), *ed = gen_plain("ED25519");
    EVP_PKEY *ed448 = gen_plain("ED448"), *x25519 = gen_plain("X25519");
    EVP_PKEY *small = gen_rsa(768);
    char *rsa_pem = pem_public(rsa), *p256_pem = pem_public(p256), *p384_pem = pem_public(p384);
    char *p521_pem = pem_public(p521), *k1_pem = pem_public(k1), *ed_pem = pem_public(ed);
    char *ed448_pem = pem_public(ed448), *x25519_pem = pem_public(x25519);
    char *small_pem = pem_public(small);

    ASSERT_EQ_STR("ES256 needs a P-256 key", key_error(QS_JWT_ES256, p384_pem, strlen(p384_pem)));
    ASSERT_EQ_STR("ES256 needs a P-256 key", key_error(QS_JWT_ES256, k1_pem, strlen(k1_pem)));
    ASSERT_EQ_STR("ES256 needs a P-256 key", key_error(QS_JWT_ES256, ed_pem, strlen(ed_pem)));
    ASSERT_EQ_STR("ES256 needs a P-256 key", key_error(QS_JWT_ES256, rsa_pem, strlen(rsa_pem)));
    ASSERT_EQ_STR("ES384 needs a P-384 key", key_error(QS_JWT_ES384, p521_pem, strlen(p521_pem)));
    ASSERT_EQ_STR("ES512 needs a P-521 key", key_error(QS_JWT_ES512, p256_pem, strlen(p256_pem)));
    ASSERT_EQ_STR("EdDSA needs an Ed25519 key", key_error(QS_JWT_EDDSA, rsa_pem, strlen(rsa_pem)));
    ASSERT_EQ_STR("EdDSA needs an Ed25519 key",
                  key_error(QS_JWT_EDDSA, ed448_pem, strlen(ed448_pem)));
    ASSERT_EQ_STR("EdDSA needs an Ed25519 key",
                  key_error(QS_JWT_EDDSA, x25519_pem, strlen(x25519_pem)));
    ASSERT_EQ_STR("RS256 needs an RSA key", key_error(QS_JWT_RS256, p256_pem, strlen(p256_pem)));
    ASSERT_EQ_STR("PS512 needs an RSA or RSA-PSS key",
                  key_error(QS_JWT_PS512, ed_pem, strlen(ed_pem)));
    ASSERT_EQ_STR("RSA key is shorter than 1024 bits",
                  key_error(QS_JWT_RS256, small_pem, strlen(small_pem)));
    /* HMAC algorithms take any bytes as the secret, PEM text included. */
    qs_jwt_key *hs = hs_key(rsa_pem);
    qs_jwt_key_free(hs);

    /* A public key cannot be a signing key. */
    const char *err = NULL;
    ASSERT(qs_jwt_key_new_private(QS_JWT_RS256, rsa_pem, strlen(rsa_pem), &err) == NULL);
    ASSERT_EQ_STR("key is not a valid PEM private key", err);
    char *ed_priv = pem_private(ed);
    err = NULL;
    ASSERT(qs_jwt_key_new_private(QS_JWT_ES256, ed_priv, strlen(ed_priv), &err) == NULL);
    ASSERT_EQ_STR("ES256 needs a P-256 key", err);

    /* An encrypted private key fails without prompting for a passphrase. */
    BIO *bio = BIO_new(BIO_s_mem());
    ASSERT(PEM_write_bio_PKCS8PrivateKey(bio, p256, EVP_aes_128_cbc(), "pw", 2, NULL, NULL) == 1);
    char *enc = bio_string(bio);
    ASSERT(strstr(key_error(QS_JWT_ES256, enc, strlen(enc)), "not a valid PEM"));
    err = NULL;
    ASSERT(qs_jwt_key_new_private(QS_JWT_ES256, enc, strlen(enc), &err) == NULL);
    ASSERT_EQ_STR("key is not a valid PEM private key", err);

    free(enc);
    free(ed_priv);
    free(rsa_pem);
    free(p256_pem);
    free(p384_pem);
    free(p521_pem);
    free(k1_pem);
    free(ed_pem);
    free(ed448_pem);
    free(x25519_pem);
    free(small_pem);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ed448);
    EVP_PKEY_free(x25519);
    EVP_PKEY_free(small);
}

/* Accepted PEM forms: PKCS#1 "RSA PUBLIC KEY", a certificate, a traditional private key. */
TEST(pem_key_forms)
{
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    char *priv = pem_private(rsa);
    qs_jwt_key *signer = pem_key(QS_JWT_RS256, priv, true);
    char *token = sign_json(signer, "{\"sub\":\"forms\"}");

    /* PKCS#1 public key. */
    OSSL_ENCODER_CTX *ectx =
        OSSL_ENCODER_CTX_new_for_pkey(rsa, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", NULL);
    unsigned char *data = NULL;
    size_t len = 0;
    ASSERT(ectx && OSSL_ENCODER_to_data(ectx, &data, &len) == 1);
    OSSL_ENCODER_CTX_free(ectx);
    char *pkcs1 = qs_xstrndup((char *)data, len);
    OPENSSL_free(data);
    ASSERT(strncmp(pkcs1, "-----BEGIN RSA PUBLIC KEY-----", 30) == 0);
    qs_jwt_key *k = pem_key(QS_JWT_RS256, pkcs1, false);
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));
    qs_jwt_key_free(k);

    /* Traditional "RSA PRIVATE KEY" for both uses. */
    data = NULL; /* a non-NULL pointer would be taken as an output buffer */
    len = 0;
    ectx = OSSL_ENCODER_CTX_new_for_pkey(rsa, EVP_PKEY_KEYPAIR, "PEM", "type-specific", NULL);
    ASSERT(ectx && OSSL_ENCODER_to_data(ectx, &data, &len) == 1);
    OSSL_ENCODER_CTX_free(ectx);
    char *trad = qs_xstrndup((char *)data, len);
    OPENSSL_free(data);
    ASSERT(strncmp(trad, "-----BEGIN RSA PRIVATE KEY-----", 31) == 0);
    k = pem_key(QS_JWT_RS256, trad, false);
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));
    qs_jwt_key_free(k);
    k = pem_key(QS_JWT_RS256, trad, true);
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));
    qs_jwt_key_free(k);

    /* A self-signed certificate, preceded by unrelated text as in bundle files. */
    X509 *cert = X509_new();
    ASSERT(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"hub", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, rsa);
    ASSERT(X509_sign(cert, ec, EVP_sha256()) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    BIO_puts(bio, "subject=CN = hub\n");
    ASSERT(PEM_write_bio_X509(bio, cert) == 1);
    X509_free(cert);
    char *cert_pem = bio_string(bio);
    k = pem_key(QS_JWT_RS256, cert_pem, false);
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));
    qs_jwt_key_free(k);
    ASSERT_EQ_STR("ES256 needs a P-256 key", key_error(QS_JWT_ES256, cert_pem, strlen(cert_pem)));

    /* Material need not be NUL-terminated: the length bounds the read. */
    char *pub = pem_public(rsa);
    size_t pub_len = strlen(pub);
    char *copy = qs_xmalloc(pub_len);
    memcpy(copy, pub, pub_len);
    const char *err;
    k = qs_jwt_key_new(QS_JWT_RS256, copy, pub_len, &err);
    ASSERT(k);
    ASSERT_EQ_INT(QS_JWT_OK, verify(k, token, NOW, NULL));
    qs_jwt_key_free(k);
    free(copy);

    free(pub);
    free(cert_pem);
    free(trad);
    free(pkcs1);
    free(token);
    qs_jwt_key_free(signer);
    free(priv);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

TEST(sign_errors)
{
    qs_jwt_key *k = hs_key(DEV_SECRET);
    const char *err = NULL;
    json_t *arr = json_array();
    ASSERT(qs_jwt_sign(k, arr, &err) == NULL);
    ASSERT_EQ_STR("claims must be a JSON object", err);
    err = NULL;
    ASSERT(qs_jwt_sign(k, NULL, &err) == NULL);
    ASSERT(err);
    json_decref(arr);

    /* The claims object is not stolen, and its serialization is compact. */
    json_t *claims = json_pack("{s:{s:[s]}}", "mercure", "publish", "a b");
    char *token = qs_jwt_sign(k, claims, &err);
    ASSERT(token);
    ASSERT_EQ_INT(1, claims->refcount);
    const char *d1 = strchr(token, '.');
    const char *d2 = strchr(d1 + 1, '.');
    unsigned char *raw;
    size_t n;
    ASSERT_EQ_INT(0, qs_base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, &n));
    ASSERT_EQ_MEM("{\"mercure\":{\"publish\":[\"a b\"]}}", 31, raw, n);
    free(raw);
    free(token);
    json_decref(claims);
    qs_jwt_key_free(k);
}
