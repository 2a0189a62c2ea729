/* SPDX-License-Identifier: MIT
 * test_tls13.c - the hub's TLS 1.3 record layer against OpenSSL's: a real handshake in
 * memory (the server's context from tls.c, `tls internal`), then the server's SSL freed and
 * its records opened and sealed by tls13.c while an OpenSSL client reads and writes, key
 * updates and close_notify included; and what a hostile peer may send.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "tls.h"
#include "tls13.h"

typedef struct pair {
    char dir[64];
    qs_tls *tls;
    SSL_CTX *client_ctx;
    SSL *client;
    BIO *to_server, *to_client; /* memory BIOs, one per direction */
    qs_tls13 rl;
    qs_tls13_ciphers *ciphers;
    bool left; /* the server left OpenSSL */
} pair;

static size_t pending(BIO *b, const uint8_t **p)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    if (p)
        *p = (const uint8_t *)data;
    return n > 0 ? (size_t)n : 0;
}

/* Handshakes a client (restricted to `suites`, or to TLS 1.2 when NULL) with the hub's
 * server context; the client writes `first` right after its Finished, before the server
 * has read it. Then the server leaves OpenSSL (p->left says whether it did). */
static void connect_pair(pair *p, const char *suites, const char *first)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/qs-tls13-XXXXXX");
    ASSERT(mkdtemp(p->dir) != NULL);
    qs_config cfg = {0};
    cfg.tls_internal = true;
    cfg.proto_h1 = true;
    char *err = NULL;
    p->tls = qs_tls_new(&cfg, p->dir, &err);
    if (!p->tls)
        qs_test_fail(__FILE__, __LINE__, "qs_tls_new: %s", err);
    SSL *server = qs_tls_new_ssl(p->tls);
    ASSERT(server != NULL);
    qs_tls_secrets *secrets = malloc(sizeof(*secrets));
    qs_tls_keep_secrets(server, secrets);

    p->client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(p->client_ctx, SSL_VERIFY_NONE, NULL);
    if (suites) {
        ASSERT(SSL_CTX_set_ciphersuites(p->client_ctx, suites) == 1);
        SSL_CTX_set_min_proto_version(p->client_ctx, TLS1_3_VERSION);
    } else {
        SSL_CTX_set_max_proto_version(p->client_ctx, TLS1_2_VERSION);
    }
    p->client = SSL_new(p->client_ctx);
    SSL_set_connect_state(p->client);
    p->to_server = BIO_new(BIO_s_mem());
    p->to_client = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(p->to_server, -1);
    BIO_set_mem_eof_return(p->to_client, -1);
    /* Each BIO: one reference for each SSL, one for the test. */
    for (int i = 0; i < 2; i++) {
        BIO_up_ref(p->to_server);
        BIO_up_ref(p->to_client);
    }
    SSL_set_bio(server, p->to_server, p->to_client);
    SSL_set_bio(p->client, p->to_client, p->to_server);

    int server_done = 0, client_done = 0;
    uint64_t sent = 0;
    for (int round = 0; round < 10 && server_done != 1; round++) {
        if (client_done != 1) {
            client_done = SSL_do_handshake(p->client);
            if (client_done == 1 && first)
                ASSERT(SSL_write(p->client, first, (int)strlen(first)) > 0);
        }
        size_t before = pending(p->to_client, NULL);
        server_done = SSL_do_handshake(server);
        if (server_done == 1) {
            const uint8_t *out;
            size_t n = pending(p->to_client, &out);
            sent = qs_tls13_count_records(out + before, n - before);
        }
    }
    ASSERT_EQ_INT(1, server_done);
    ERR_clear_error();
    p->left = qs_tls_leave_openssl(server, secrets, sent, &p->rl) == 0;
    free(secrets);
    SSL_free(server);
    p->ciphers = qs_tls13_ciphers_new();
}

static void free_pair(pair *p)
{
    qs_tls13_ciphers_free(p->ciphers);
    SSL_free(p->client);
    BIO_free(p->to_server);
    BIO_free(p->to_client);
    SSL_CTX_free(p->client_ctx);
    qs_tls_free(p->tls);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", p->dir);
    ASSERT(system(cmd) == 0);
}

/* Opens every record the client has sent so far; their data goes into `data`. Returns the
 * last status (NEED_MORE once everything was opened). */
static qs_tls13_status server_reads(pair *p, qs_buf *data)
{
    const uint8_t *in;
    size_t n = pending(p->to_server, &in);
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, in, n);
    size_t at = 0;
    qs_tls13_status st = QS_TLS13_NEED_MORE;
    qs_buf reply = QS_BUF_INIT;
    for (;;) {
        qs_tls13_opened o;
        st = qs_tls13_open(&p->rl, p->ciphers, copy + at, n - at, &o, &reply);
        if (st == QS_TLS13_NEED_MORE)
            break;
        if (st != QS_TLS13_DATA) {
            at += o.used;
            break;
        }
        qs_buf_append(data, o.data, o.len);
        at += o.used;
    }
    char sink[32768];
    if (at)
        ASSERT_EQ_INT(at, BIO_read(p->to_server, sink, (int)at));
    if (reply.len)
        BIO_write(p->to_client, reply.p, (int)reply.len);
    qs_buf_free(&reply);
    free(copy);
    return st;
}

static void server_writes(pair *p, uint8_t type, const void *data, size_t n)
{
    qs_buf out = QS_BUF_INIT;
    ASSERT_EQ_INT(0, qs_tls13_seal(&p->rl, p->ciphers, type, data, n, &out));
    BIO_write(p->to_client, out.p, (int)out.len);
    qs_buf_free(&out);
}

/* What the client reads (everything the server sent). */
static void client_reads(pair *p, const char *expected)
{
    size_t n = strlen(expected), got = 0;
    char buf[32768];
    while (got < n) {
        int r = SSL_read(p->client, buf + got, (int)(sizeof(buf) - got));
        if (r <= 0) {
            char why[256] = "";
            ERR_error_string_n(ERR_peek_error(), why, sizeof(why));
            qs_test_fail(__FILE__, __LINE__, "client SSL_read of %.12s: error %d: %s", expected,
                         SSL_get_error(p->client, r), why);
        }
        got += (size_t)r;
    }
    ASSERT_EQ_MEM(expected, n, buf, got);
}

static void client_writes(pair *p, const char *data)
{
    ASSERT_EQ_INT((int)strlen(data), SSL_write(p->client, data, (int)strlen(data)));
}

static void converse(const char *suite)
{
    pair p;
    connect_pair(&p, suite, "GET / HTTP/1.1\r\n\r\n");
    ASSERT(p.left);
    qs_buf data = QS_BUF_INIT;
    /* What the client wrote right after its Finished was left for the record layer. */
    ASSERT_EQ_INT(QS_TLS13_NEED_MORE, server_reads(&p, &data));
    ASSERT_EQ_MEM("GET / HTTP/1.1\r\n\r\n", 18, data.p, data.len);
    /* The client reads the session tickets, then this: the write sequence numbers
     * continued after the tickets. */
    server_writes(&p, QS_TLS13_APPLICATION_DATA, "hello", 5);
    server_writes(&p, QS_TLS13_APPLICATION_DATA, " world", 6);
    client_reads(&p, "hello world");
    client_writes(&p, "ping");
    qs_buf_reset(&data);
    server_reads(&p, &data);
    ASSERT_EQ_MEM("ping", 4, data.p, data.len);

    /* The client updates its key and asks for ours: both directions go on. */
    ASSERT_EQ_INT(1, SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED));
    client_writes(&p, "after update");
    qs_buf_reset(&data);
    server_reads(&p, &data);
    ASSERT_EQ_MEM("after update", 12, data.p, data.len);
    ASSERT_EQ_INT(1, p.rl.read.seq);  /* the data record, under the new key */
    ASSERT_EQ_INT(0, p.rl.write.seq); /* our KeyUpdate went under the old one */
    server_writes(&p, QS_TLS13_APPLICATION_DATA, "new key", 7);
    client_reads(&p, "new key");

    /* A key at its limit is replaced before the next record. */
    ASSERT_EQ_INT(QS_TLS13_REKEY_AFTER, p.rl.rekey_after);
    p.rl.rekey_after = p.rl.write.seq;
    server_writes(&p, QS_TLS13_APPLICATION_DATA, "rekeyed", 7);
    ASSERT_EQ_INT(1, p.rl.write.seq);
    client_reads(&p, "rekeyed");
    p.rl.rekey_after = QS_TLS13_REKEY_AFTER;

    /* A full record. */
    static char big[QS_TLS13_MAX_PLAINTEXT + 1];
    memset(big, 'x', QS_TLS13_MAX_PLAINTEXT);
    server_writes(&p, QS_TLS13_APPLICATION_DATA, big, QS_TLS13_MAX_PLAINTEXT);
    client_reads(&p, big);
    qs_buf over = QS_BUF_INIT;
    ASSERT_EQ_INT(-1, qs_tls13_seal(&p.rl, p.ciphers, QS_TLS13_APPLICATION_DATA, big,
                                    QS_TLS13_MAX_PLAINTEXT + 1, &over));

    /* close_notify both ways. */
    ASSERT(SSL_shutdown(p.client) >= 0);
    ASSERT_EQ_INT(QS_TLS13_CLOSED, server_reads(&p, &data));
    const uint8_t close_notify[2] = {1, QS_TLS13_CLOSE_NOTIFY};
    server_writes(&p, QS_TLS13_ALERT, close_notify, 2);
    char c;
    int r = SSL_read(p.client, &c, 1);
    ASSERT(r <= 0);
    ASSERT_EQ_INT(SSL_ERROR_ZERO_RETURN, SSL_get_error(p.client, r));
    qs_buf_free(&data);
    free_pair(&p);
}

TEST(aes_128_gcm_talks_with_openssl)
{
    converse("TLS_AES_128_GCM_SHA256");
}

TEST(aes_256_gcm_talks_with_openssl)
{
    converse("TLS_AES_256_GCM_SHA384");
}

TEST(chacha20_poly1305_talks_with_openssl)
{
    converse("TLS_CHACHA20_POLY1305_SHA256");
}

TEST(tls12_stays_with_openssl)
{
    pair p;
    connect_pair(&p, NULL, NULL);
    ASSERT(!p.left);
    free_pair(&p);
}

/* The client's next record, as bytes (taken out of its BIO). */
static size_t client_record(pair *p, const char *data, uint8_t *out, size_t cap)
{
    client_writes(p, data);
    const uint8_t *in;
    size_t n = pending(p->to_server, &in);
    ASSERT(n <= cap);
    memcpy(out, in, n);
    char sink[32768];
    BIO_read(p->to_server, sink, (int)n);
    return n;
}

TEST(a_record_in_pieces_waits_for_its_end)
{
    pair p;
    connect_pair(&p, "TLS_AES_128_GCM_SHA256", NULL);
    uint8_t rec[256];
    size_t n = client_record(&p, "split", rec, sizeof(rec));
    ASSERT_EQ_INT(n, qs_tls13_record_size(rec, n));
    qs_buf reply = QS_BUF_INIT;
    qs_tls13_opened o;
    for (size_t k = 0; k < n; k++)
        ASSERT_EQ_INT(QS_TLS13_NEED_MORE, qs_tls13_open(&p.rl, p.ciphers, rec, k, &o, &reply));
    ASSERT_EQ_INT(0, p.rl.read.seq);
    ASSERT_EQ_INT(QS_TLS13_DATA, qs_tls13_open(&p.rl, p.ciphers, rec, n, &o, &reply));
    ASSERT_EQ_MEM("split", 5, o.data, o.len);
    ASSERT_EQ_INT(n, o.used);
    ASSERT_EQ_INT(0, reply.len);
    free_pair(&p);
}

TEST(a_changed_byte_fails_the_record)
{
    pair p;
    connect_pair(&p, "TLS_AES_256_GCM_SHA384", NULL);
    uint8_t rec[256];
    size_t n = client_record(&p, "genuine", rec, sizeof(rec));
    qs_buf reply = QS_BUF_INIT;
    qs_tls13_opened o;
    for (size_t k = 0; k < n; k++) {
        uint8_t copy[256];
        memcpy(copy, rec, n);
        copy[k] ^= 0x40;
        qs_tls13 rl = p.rl;
        qs_tls13_status st = qs_tls13_open(&rl, p.ciphers, copy, n, &o, &reply);
        /* A changed length makes the record shorter (failed) or longer (incomplete). */
        ASSERT(st == QS_TLS13_FAILED || (k == 3 || k == 4));
        ASSERT(st != QS_TLS13_DATA);
    }
    /* The genuine record still opens: failures moved nothing. */
    ASSERT_EQ_INT(QS_TLS13_DATA, qs_tls13_open(&p.rl, p.ciphers, rec, n, &o, &reply));
    ASSERT_EQ_MEM("genuine", 7, o.data, o.len);
    free_pair(&p);
}

TEST(what_tls_1_3_forbids_after_the_handshake_is_refused)
{
    pair p;
    connect_pair(&p, "TLS_CHACHA20_POLY1305_SHA256", NULL);
    qs_buf reply = QS_BUF_INIT;
    qs_tls13_opened o;
    uint8_t ccs[] = {QS_TLS13_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1};
    ASSERT_EQ_INT(QS_TLS13_FAILED, qs_tls13_open(&p.rl, p.ciphers, ccs, sizeof(ccs), &o, &reply));
    ASSERT_EQ_INT(QS_TLS13_UNEXPECTED_MESSAGE, o.alert);
    uint8_t plain_alert[] = {QS_TLS13_ALERT, 3, 3, 0, 2, 2, 40};
    ASSERT_EQ_INT(QS_TLS13_FAILED,
                  qs_tls13_open(&p.rl, p.ciphers, plain_alert, sizeof(plain_alert), &o, &reply));
    uint8_t huge[] = {QS_TLS13_APPLICATION_DATA, 3, 3, 0x41, 0x01};
    ASSERT_EQ_INT(QS_TLS13_FAILED, qs_tls13_open(&p.rl, p.ciphers, huge, sizeof(huge), &o, &reply));
    ASSERT_EQ_INT(QS_TLS13_RECORD_OVERFLOW, o.alert);
    uint8_t tiny[] = {QS_TLS13_APPLICATION_DATA, 3, 3, 0, 16};
    ASSERT_EQ_INT(QS_TLS13_FAILED, qs_tls13_open(&p.rl, p.ciphers, tiny, sizeof(tiny), &o, &reply));
    ASSERT_EQ_INT(QS_TLS13_DECODE_ERROR, o.alert);

    /* Sealed by a peer that knows the keys (our own write side, mirrored): a handshake
     * message other than KeyUpdate, a KeyUpdate with more after it, a bad alert, a record
     * of padding only. */
    qs_tls13 peer;
    ASSERT_EQ_INT(
        0, qs_tls13_init(&peer, 0x1303, p.rl.write.secret, p.rl.read.secret, 32, 0, p.rl.read.seq));
    struct {
        uint8_t type;
        uint8_t body[8];
        size_t n;
        uint8_t alert;
    } cases[] = {
        {QS_TLS13_HANDSHAKE, {4, 0, 0, 0}, 4, QS_TLS13_UNEXPECTED_MESSAGE},
        {QS_TLS13_HANDSHAKE, {24, 0, 0, 1, 0, 24, 0, 0}, 8, QS_TLS13_UNEXPECTED_MESSAGE},
        {QS_TLS13_HANDSHAKE, {24, 0, 0, 1, 7}, 5, QS_TLS13_DECODE_ERROR},
        {QS_TLS13_ALERT, {2, 40, 0}, 3, QS_TLS13_DECODE_ERROR},
        {0, {0}, 0, QS_TLS13_UNEXPECTED_MESSAGE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        qs_buf rec = QS_BUF_INIT;
        ASSERT_EQ_INT(
            0, qs_tls13_seal(&peer, p.ciphers, cases[i].type, cases[i].body, cases[i].n, &rec));
        ASSERT_EQ_INT(QS_TLS13_FAILED,
                      qs_tls13_open(&p.rl, p.ciphers, (uint8_t *)rec.p, rec.len, &o, &reply));
        ASSERT_EQ_INT(cases[i].alert, o.alert);
        qs_buf_free(&rec);
    }
    /* A fatal alert from the peer ends the connection without one of ours. */
    qs_buf rec = QS_BUF_INIT;
    const uint8_t fatal[2] = {2, 40};
    ASSERT_EQ_INT(0, qs_tls13_seal(&peer, p.ciphers, QS_TLS13_ALERT, fatal, 2, &rec));
    ASSERT_EQ_INT(QS_TLS13_FAILED,
                  qs_tls13_open(&p.rl, p.ciphers, (uint8_t *)rec.p, rec.len, &o, &reply));
    ASSERT_EQ_INT(0xff, o.alert);
    qs_buf_free(&rec);
    ASSERT_EQ_INT(0, reply.len);
    free_pair(&p);
}

TEST(unsupported_suites_and_secret_lengths_are_refused)
{
    qs_tls13 rl;
    uint8_t secret[48] = {0};
    ASSERT(!qs_tls13_supports(0x1304)); /* TLS_AES_128_CCM_SHA256 */
    ASSERT_EQ_INT(-1, qs_tls13_init(&rl, 0x1304, secret, secret, 32, 0, 0));
    ASSERT_EQ_INT(-1, qs_tls13_init(&rl, 0x1302, secret, secret, 32, 0, 0));
    ASSERT_EQ_INT(0, qs_tls13_init(&rl, 0x1302, secret, secret, 48, 0, 0));
    qs_tls13_wipe(&rl);
    ASSERT_EQ_INT(0, rl.write.key[0] | rl.read.iv[0]);
}
