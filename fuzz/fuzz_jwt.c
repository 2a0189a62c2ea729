/* SPDX-License-Identifier: MIT
 * fuzz_jwt.c - libFuzzer target for jwt.c.
 *
 * Each input is used four ways:
 *  1. verified as a token against an HS256 key and an ES256 key;
 *  2. its first two segments re-signed with the HS256 secret and verified again, so header and
 *     claims parsing is explored past the signature check (such a token can never fail with
 *     a signature error);
 *  3. base64url-decoded: accepted input must re-encode to exactly the same text;
 *  4. base64url-encoded and decoded back.
 * The ES256 key is fixed so the seed corpus can hold genuinely signed ES256 tokens.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "jwt.h"

#define NOW INT64_C(1700000000)
#define HS_SECRET "!ChangeThisMercureHubJWTSecretKey!"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_jwt: invariant failed at line %d: %s\n", __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char es256_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNvMZiS7hlc+T3mVS\n"
                                "9YCmbjFVMFR76xlNUYS4GaMERTahRANCAASdKkzPFd24xcPZusqxzqlLmzcYZT0e\n"
                                "Tx7jALfq/5LeqVh/TPFr9WO1yNZDVv3AFrBrv4zMJPezlXI5WRUTYp4x\n"
                                "-----END PRIVATE KEY-----\n";

static qs_jwt_key *hs_key;
static qs_jwt_key *es_key;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *err = NULL;
    hs_key = qs_jwt_key_new(QS_JWT_HS256, HS_SECRET, strlen(HS_SECRET), &err);
    es_key = qs_jwt_key_new(QS_JWT_ES256, es256_pem, strlen(es256_pem), &err);
    if (!hs_key || !es_key) {
        fprintf(stderr, "fuzz_jwt: key setup failed: %s\n", err);
        abort();
    }
    return 0;
}

static void check_list(bool has, char **list, size_t n)
{
    CHECK(has == (list != NULL));
    CHECK(has || n == 0);
    CHECK(n <= QS_JWT_MAX_CLAIM_SELECTORS);
    for (size_t i = 0; i < n; i++) {
        CHECK(list[i] != NULL);
        (void)strlen(list[i]); /* ASan reports a missing terminator */
    }
}

static enum qs_jwt_status verify_checked(const qs_jwt_key *key, const char *token, size_t len)
{
    qs_jwt_claims c;
    memset(&c, 0xa5, sizeof(c)); /* verify must overwrite everything */
    enum qs_jwt_status st = qs_jwt_verify(key, token, len, NOW, &c);
    CHECK(st >= QS_JWT_OK && st <= QS_JWT_E_CLAIMS);
    CHECK(qs_jwt_status_str(st) != NULL);
    if (st != QS_JWT_OK) {
        static const qs_jwt_claims zero;
        CHECK(memcmp(&c, &zero, sizeof(c)) == 0);
        return st;
    }
    CHECK(len <= 64 * 1024);
    check_list(c.has_publish, c.publish, c.n_publish);
    check_list(c.has_subscribe, c.subscribe, c.n_subscribe);
    if (!c.has_mercure)
        CHECK(!c.has_publish && !c.has_subscribe && !c.payload);
    CHECK(!c.payload || !json_is_null(c.payload));
    CHECK(!c.has_exp || NOW < c.exp);
    CHECK(!c.has_nbf || NOW >= c.nbf);
    qs_jwt_claims_free(&c);
    return st;
}

/* Signs everything before the second dot with the HS256 secret. */
static void verify_resigned(const char *in, size_t size)
{
    const char *dot = memchr(in, '.', size);
    if (!dot)
        return;
    const char *dot2 = memchr(dot + 1, '.', size - (size_t)(dot + 1 - in));
    size_t n = dot2 ? (size_t)(dot2 - in) : size;
    unsigned char mac[32];
    size_t mac_len = 0;
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, HS_SECRET, strlen(HS_SECRET),
                    (const unsigned char *)in, n, mac, sizeof(mac), &mac_len) != NULL);
    char *sig = qs_base64url_encode(mac, mac_len);
    size_t sig_len = strlen(sig);
    char *token = malloc(n + 1 + sig_len);
    CHECK(token != NULL);
    memcpy(token, in, n);
    token[n] = '.';
    memcpy(token + n + 1, sig, sig_len);
    enum qs_jwt_status st = verify_checked(hs_key, token, n + 1 + sig_len);
    CHECK(st != QS_JWT_E_SIGNATURE);
    free(token);
    free(sig);
}

static void base64_properties(const char *in, size_t size)
{
    unsigned char *out = NULL;
    size_t out_len = 0;
    if (qs_base64url_decode(in, size, &out, &out_len) == 0) {
        CHECK(out != NULL);
        CHECK(out_len == size / 4 * 3 + (size % 4 ? size % 4 - 1 : 0));
        /* Canonical: only one text decodes to given bytes. */
        char *again = qs_base64url_encode(out, out_len);
        CHECK(strlen(again) == size && memcmp(again, in, size) == 0);
        free(again);
        free(out);
    } else {
        CHECK(out == NULL && out_len == 0);
    }

    char *enc = qs_base64url_encode(in, size);
    size_t enc_len = strlen(enc);
    CHECK(qs_base64url_decode(enc, enc_len, &out, &out_len) == 0);
    CHECK(out_len == size && memcmp(out, in, size) == 0);
    free(out);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!hs_key)
        LLVMFuzzerInitialize(NULL, NULL);
    /* memcmp and memchr want a valid pointer even for zero bytes. */
    const char *in = size ? (const char *)data : "";
    CHECK(verify_checked(hs_key, in, size) != QS_JWT_OK || memchr(in, '.', size));
    verify_checked(es_key, in, size);
    verify_resigned(in, size);
    base64_properties(in, size);
    return 0;
}
