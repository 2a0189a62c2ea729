/* SPDX-License-Identifier: MIT
 * tls13.c - TLS 1.3 record protection after OpenSSL's handshake (see tls13.h).
 *
 * Keys (RFC 8446, 7.1 and 7.3): key = HKDF-Expand-Label(secret, "key", "", key length),
 * iv = HKDF-Expand-Label(secret, "iv", "", 12), and a KeyUpdate replaces a secret with
 * HKDF-Expand-Label(secret, "traffic upd", "", hash length). Every output here is at most
 * one hash long, so HKDF-Expand is a single HMAC.
 *
 * A record (RFC 8446, 5.2): header {23, 3, 3, length}, then the AEAD of (content, type,
 * zero padding) under the nonce iv XOR the sequence number, the header being the
 * additional data. The hub sends no padding.
 */
#include "tls13.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define TAG_LEN 16
#define IV_LEN 12
#define KEY_UPDATE 24 /* the handshake message's type */

typedef struct suite_info {
    uint16_t id;
    uint8_t key_len;
    uint8_t hash_len;
    const EVP_MD *(*digest)(void); /* HKDF's hash */
    const EVP_CIPHER *(*cipher)(void);
} suite_info;

static const suite_info suites[] = {
    {0x1301, 16, 32, EVP_sha256, EVP_aes_128_gcm},
    {0x1302, 32, 48, EVP_sha384, EVP_aes_256_gcm},
    {0x1303, 32, 32, EVP_sha256, EVP_chacha20_poly1305},
};
#define N_SUITES (sizeof(suites) / sizeof(suites[0]))

struct qs_tls13_ciphers {
    EVP_CIPHER_CTX *ctx[N_SUITES];
};

qs_tls13_ciphers *qs_tls13_ciphers_new(void)
{
    return qs_xcalloc(1, sizeof(qs_tls13_ciphers));
}

void qs_tls13_ciphers_free(qs_tls13_ciphers *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < N_SUITES; i++)
        EVP_CIPHER_CTX_free(c->ctx[i]);
    free(c);
}

/* The thread's context for a suite, its cipher chosen once; each record sets key and IV. */
static EVP_CIPHER_CTX *cipher_ctx(qs_tls13_ciphers *c, uint8_t suite)
{
    if (!c->ctx[suite]) {
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        if (!ctx || EVP_CipherInit_ex(ctx, suites[suite].cipher(), NULL, NULL, NULL, 1) != 1) {
            EVP_CIPHER_CTX_free(ctx);
            return NULL;
        }
        c->ctx[suite] = ctx;
    }
    return c->ctx[suite];
}

bool qs_tls13_supports(uint16_t suite)
{
    for (size_t i = 0; i < N_SUITES; i++)
        if (suites[i].id == suite)
            return true;
    return false;
}

/* ------------------------------------------------------------ keys */

/* HKDF-Expand-Label(secret, label, "", out_len) for out_len up to one hash. */
static int expand_label(const suite_info *s, const uint8_t *secret, size_t secret_len,
                        const char *label, uint8_t *out, size_t out_len)
{
    uint8_t info[2 + 1 + 6 + 16 + 1 + 1];
    size_t label_len = strlen(label), n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + label_len);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, label_len);
    n += label_len;
    info[n++] = 0; /* no context */
    info[n++] = 1; /* HKDF-Expand's block counter: T(1) */
    uint8_t block[EVP_MAX_MD_SIZE];
    unsigned block_len = 0;
    if (!HMAC(s->digest(), secret, (int)secret_len, info, n, block, &block_len) ||
        block_len < out_len)
        return -1;
    memcpy(out, block, out_len);
    OPENSSL_cleanse(block, sizeof(block));
    return 0;
}

/* The key and IV of a direction, from its secret. */
static int derive(const qs_tls13 *t, qs_tls13_keys *k)
{
    const suite_info *s = &suites[t->suite];
    if (expand_label(s, k->secret, t->secret_len, "key", k->key, s->key_len) < 0 ||
        expand_label(s, k->secret, t->secret_len, "iv", k->iv, IV_LEN) < 0)
        return -1;
    return 0;
}

/* A KeyUpdate: the next secret of a direction, its key and IV, and sequence numbers again
 * from 0. */
static int update_keys(const qs_tls13 *t, qs_tls13_keys *k)
{
    uint8_t next[QS_TLS13_MAX_SECRET];
    if (expand_label(&suites[t->suite], k->secret, t->secret_len, "traffic upd", next,
                     t->secret_len) < 0)
        return -1;
    memcpy(k->secret, next, t->secret_len);
    OPENSSL_cleanse(next, sizeof(next));
    k->seq = 0;
    return derive(t, k);
}

int qs_tls13_init(qs_tls13 *t, uint16_t suite, const uint8_t *read_secret,
                  const uint8_t *write_secret, size_t secret_len, uint64_t read_seq,
                  uint64_t write_seq)
{
    memset(t, 0, sizeof(*t));
    size_t i = 0;
    while (i < N_SUITES && suites[i].id != suite)
        i++;
    if (i == N_SUITES)
        return -1;
    if (secret_len != suites[i].hash_len)
        return -1;
    t->suite = (uint8_t)i;
    t->secret_len = (uint8_t)secret_len;
    memcpy(t->read.secret, read_secret, secret_len);
    memcpy(t->write.secret, write_secret, secret_len);
    t->read.seq = read_seq;
    t->write.seq = write_seq;
    t->rekey_after = QS_TLS13_REKEY_AFTER;
    if (derive(t, &t->read) < 0 || derive(t, &t->write) < 0) {
        qs_tls13_wipe(t);
        return -1;
    }
    return 0;
}

void qs_tls13_wipe(qs_tls13 *t)
{
    OPENSSL_cleanse(t, sizeof(*t));
}

/* ------------------------------------------------------------ records */

static void nonce_for(const qs_tls13_keys *k, uint8_t nonce[IV_LEN])
{
    memcpy(nonce, k->iv, IV_LEN);
    for (int i = 0; i < 8; i++)
        nonce[IV_LEN - 1 - i] ^= (uint8_t)(k->seq >> (8 * i));
}

static void put_header(uint8_t h[QS_TLS13_HEADER], size_t ciphertext_len)
{
    h[0] = QS_TLS13_APPLICATION_DATA;
    h[1] = 3;
    h[2] = 3;
    h[3] = (uint8_t)(ciphertext_len >> 8);
    h[4] = (uint8_t)ciphertext_len;
}

/* Seals one record with the current write key. */
static int seal_record(qs_tls13 *t, qs_tls13_ciphers *c, uint8_t type, const void *p, size_t n,
                       qs_buf *out)
{
    EVP_CIPHER_CTX *ctx = cipher_ctx(c, t->suite);
    if (!ctx || n > QS_TLS13_MAX_PLAINTEXT || t->write.seq == UINT64_MAX)
        return -1;
    size_t ct_len = n + 1 + TAG_LEN;
    qs_buf_reserve(out, QS_TLS13_HEADER + ct_len);
    uint8_t *h = (uint8_t *)out->p + out->len;
    put_header(h, ct_len);
    uint8_t *body = h + QS_TLS13_HEADER;
    uint8_t nonce[IV_LEN];
    nonce_for(&t->write, nonce);
    int l = 0, total = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, t->write.key, nonce, 1) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &l, h, QS_TLS13_HEADER) != 1 ||
        (n && EVP_CipherUpdate(ctx, body, &l, p, (int)n) != 1))
        return -1;
    total = n ? l : 0;
    if (EVP_CipherUpdate(ctx, body + total, &l, &type, 1) != 1)
        return -1;
    total += l;
    if (EVP_CipherFinal_ex(ctx, body + total, &l) != 1)
        return -1;
    total += l;
    if ((size_t)total != n + 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, body + total) != 1)
        return -1;
    out->len += QS_TLS13_HEADER + ct_len;
    t->write.seq++;
    return 0;
}

/* Our KeyUpdate (sent under the old key), then the new write key. */
static int send_key_update(qs_tls13 *t, qs_tls13_ciphers *c, qs_buf *out)
{
    static const uint8_t msg[5] = {KEY_UPDATE, 0, 0, 1, 0}; /* update_not_requested */
    if (seal_record(t, c, QS_TLS13_HANDSHAKE, msg, sizeof(msg), out) < 0)
        return -1;
    return update_keys(t, &t->write);
}

int qs_tls13_seal(qs_tls13 *t, qs_tls13_ciphers *c, uint8_t type, const void *p, size_t n,
                  qs_buf *out)
{
    if (n > QS_TLS13_MAX_PLAINTEXT)
        return -1;
    if (t->write.seq >= t->rekey_after && send_key_update(t, c, out) < 0)
        return -1;
    return seal_record(t, c, type, p, n, out);
}

size_t qs_tls13_record_size(const uint8_t *p, size_t n)
{
    if (n < QS_TLS13_HEADER)
        return 0;
    return QS_TLS13_HEADER + ((size_t)p[3] << 8 | p[4]);
}

size_t qs_tls13_count_records(const uint8_t *p, size_t n)
{
    size_t count = 0, size;
    while ((size = qs_tls13_record_size(p, n)) && size <= n) {
        count++;
        p += size;
        n -= size;
    }
    return count;
}

static qs_tls13_status fail(qs_tls13_opened *o, uint8_t alert, const char *why)
{
    o->alert = alert;
    o->why = why;
    return QS_TLS13_FAILED;
}

/* Handshake messages after the handshake: only KeyUpdate, alone at the end of its record
 * (a key change must fall on a record boundary, RFC 8446, 5.1). */
static qs_tls13_status handshake_messages(qs_tls13 *t, qs_tls13_ciphers *c, const uint8_t *p,
                                          size_t n, qs_tls13_opened *o, qs_buf *reply)
{
    if (n < 4 || p[0] != KEY_UPDATE)
        return fail(o, QS_TLS13_UNEXPECTED_MESSAGE,
                    n < 4 ? "a handshake message split across records"
                          : "a handshake message other than KeyUpdate after the handshake");
    size_t len = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (len != 1 || (p[4] != 0 && p[4] != 1))
        return fail(o, QS_TLS13_DECODE_ERROR, "a malformed KeyUpdate");
    if (n != 5)
        return fail(o, QS_TLS13_UNEXPECTED_MESSAGE, "data after a KeyUpdate in its record");
    if (update_keys(t, &t->read) < 0)
        return fail(o, QS_TLS13_INTERNAL_ERROR, "the next read key could not be derived");
    if (p[4] == 1 && send_key_update(t, c, reply) < 0)
        return fail(o, QS_TLS13_INTERNAL_ERROR, "the KeyUpdate asked for could not be sent");
    return QS_TLS13_DATA;
}

qs_tls13_status qs_tls13_open(qs_tls13 *t, qs_tls13_ciphers *c, uint8_t *in, size_t len,
                              qs_tls13_opened *o, qs_buf *reply)
{
    memset(o, 0, sizeof(*o));
    if (len < QS_TLS13_HEADER)
        return QS_TLS13_NEED_MORE;
    size_t ct_len = (size_t)in[3] << 8 | in[4];
    if (in[0] != QS_TLS13_APPLICATION_DATA)
        return fail(o, QS_TLS13_UNEXPECTED_MESSAGE,
                    in[0] == QS_TLS13_ALERT ? "an unprotected alert after the handshake"
                                            : "an unprotected record after the handshake");
    if (ct_len > QS_TLS13_MAX_CIPHERTEXT)
        return fail(o, QS_TLS13_RECORD_OVERFLOW, "a record longer than TLS allows");
    if (ct_len < 1 + TAG_LEN)
        return fail(o, QS_TLS13_DECODE_ERROR, "a record too short to hold its tag");
    if (len < QS_TLS13_HEADER + ct_len)
        return QS_TLS13_NEED_MORE;
    EVP_CIPHER_CTX *ctx = cipher_ctx(c, t->suite);
    if (!ctx || t->read.seq == UINT64_MAX)
        return fail(o, QS_TLS13_INTERNAL_ERROR, "no cipher context");
    uint8_t *body = in + QS_TLS13_HEADER;
    size_t body_len = ct_len - TAG_LEN;
    uint8_t nonce[IV_LEN];
    nonce_for(&t->read, nonce);
    int l = 0, total = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, t->read.key, nonce, 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, body + body_len) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &l, in, QS_TLS13_HEADER) != 1 ||
        EVP_CipherUpdate(ctx, body, &l, body, (int)body_len) != 1)
        return fail(o, QS_TLS13_INTERNAL_ERROR, "decryption could not start");
    total = l;
    if (EVP_CipherFinal_ex(ctx, body + total, &l) != 1)
        return fail(o, QS_TLS13_BAD_RECORD_MAC, "a record that does not authenticate");
    total += l;
    t->read.seq++;
    o->used = QS_TLS13_HEADER + ct_len;
    if ((size_t)total > QS_TLS13_MAX_PLAINTEXT + 1)
        return fail(o, QS_TLS13_RECORD_OVERFLOW, "a record longer than TLS allows");
    /* The content type is the last non-zero byte; zeros after it are padding. */
    size_t n = (size_t)total;
    while (n && body[n - 1] == 0)
        n--;
    if (!n)
        return fail(o, QS_TLS13_UNEXPECTED_MESSAGE, "a record without a content type");
    uint8_t type = body[--n];
    switch (type) {
    case QS_TLS13_APPLICATION_DATA:
        o->data = body;
        o->len = n;
        return QS_TLS13_DATA;
    case QS_TLS13_HANDSHAKE:
        return handshake_messages(t, c, body, n, o, reply);
    case QS_TLS13_ALERT:
        if (n != 2)
            return fail(o, QS_TLS13_DECODE_ERROR, "a malformed alert");
        if (body[1] == QS_TLS13_CLOSE_NOTIFY)
            return QS_TLS13_CLOSED;
        if (body[1] == QS_TLS13_USER_CANCELED)
            return QS_TLS13_DATA; /* close_notify follows */
        return fail(o, 0xff, "the peer sent an alert");
    default:
        return fail(o, QS_TLS13_UNEXPECTED_MESSAGE, "a record of an unexpected content type");
    }
}
