/* SPDX-License-Identifier: MIT
 * fuzz_jwks.c - libFuzzer target for jwks.c (and the header peek of jwt.c).
 *
 * Each input is used three ways:
 *  1. parsed as a JWK Set: a set comes with no error and 1 to QS_JWKS_MAX_KEYS keys, a
 *     failure with an error and no set; parsing it again gives the same set, with a greater
 *     serial number;
 *  2. when it parses, keys are looked up for fixed token headers (with and without kid, of
 *     every family) and each key found verifies a fixed token without crashing;
 *  3. peeked as a token header: the kid copied is bounded and its length consistent.
 */
#include <stdio.h>
#include <stdlib.h>

#include "jwks.h"

#define NOW INT64_C(1700000000)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_jwks: invariant failed at line %d: %s\n", __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Headers a hub meets: {"alg":…,"kid":…}; the signature part is garbage on purpose. */
static const char *const tokens[] = {
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsifQ.eyJtZXJjdXJlIjp7fX0.c2ln",  /* HS256, kid "k" */
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InIxIn0.eyJtZXJjdXJlIjp7fX0.c2ln", /* RS256, kid "r1" */
    "eyJhbGciOiJQUzUxMiIsImtpZCI6InIxIn0.eyJtZXJjdXJlIjp7fX0.c2ln", /* PS512, kid "r1" */
    "eyJhbGciOiJFUzI1NiJ9.eyJtZXJjdXJlIjp7fX0.c2ln",                /* ES256, no kid */
    "eyJhbGciOiJFZERTQSIsImtpZCI6IiJ9.eyJtZXJjdXJlIjp7fX0.c2ln",    /* EdDSA, kid "" */
    "eyJhbGciOiJFUzUxMiIsImtpZCI6ImUifQ.eyJtZXJjdXJlIjp7fX0.c2ln",  /* ES512, kid "e" */
};

static void lookups(const qs_jwks *set)
{
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        qs_jwt_header h;
        CHECK(qs_jwt_peek_header(tokens[i], strlen(tokens[i]), &h) == 0);
        enum qs_jwks_miss miss = QS_JWKS_HIT;
        const qs_jwt_key *key = qs_jwks_find(set, &h, &miss);
        CHECK((key != NULL) == (miss == QS_JWKS_HIT));
        CHECK(qs_jwks_miss_str(miss) != NULL);
        if (!key)
            continue;
        CHECK(qs_jwt_key_alg(key) == h.alg);
        qs_jwt_claims c;
        enum qs_jwt_status st = qs_jwt_verify(key, tokens[i], strlen(tokens[i]), NOW, &c);
        CHECK(st != QS_JWT_OK); /* nobody can sign "sig" */
    }
}

static void peek(const char *in, size_t size)
{
    qs_jwt_header h;
    memset(&h, 0xa5, sizeof(h));
    if (qs_jwt_peek_header(in, size, &h) < 0)
        return;
    CHECK(h.kid_len <= QS_JWT_MAX_KID);
    CHECK(h.has_kid || h.kid_len == 0);
    CHECK(!h.kid_too_long || (h.has_kid && h.kid_len == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = size ? (const char *)data : "";
    char *err = NULL;
    qs_buf warnings = QS_BUF_INIT;
    qs_jwks *set = qs_jwks_parse(in, size, &warnings, &err);
    CHECK((set == NULL) == (err != NULL));
    if (set) {
        CHECK(qs_jwks_count(set) >= 1 && qs_jwks_count(set) <= QS_JWKS_MAX_KEYS);
        char *err2 = NULL;
        qs_jwks *again = qs_jwks_parse(in, size, NULL, &err2);
        CHECK(again != NULL && err2 == NULL);
        CHECK(qs_jwks_same(set, again));
        CHECK(qs_jwks_serial(again) > qs_jwks_serial(set));
        lookups(set);
        qs_jwks_unref(again);
        qs_jwks_unref(set);
    }
    free(err);
    qs_buf_free(&warnings);
    peek(in, size);
    return 0;
}
