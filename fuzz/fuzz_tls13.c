/* SPDX-License-Identifier: MIT
 * fuzz_tls13.c - libFuzzer target for the hub's TLS 1.3 record layer (tls13.c): what a
 * client sends after the handshake is opened with qs_tls13_open, record after record, as
 * sock.c does.
 *
 * Input: byte 0 picks the cipher suite (bits 0-1) and the mode (bit 2).
 *  - raw: the rest is the byte stream as received; records rarely authenticate, so this
 *    exercises the header checks, lengths and incomplete records;
 *  - sealed: the rest is a list of (type, length, content) entries that a peer holding the
 *    keys seals into records, so that the content checks (types, padding, alerts,
 *    KeyUpdate) are reached.
 * Checks: open never takes more bytes than it was given nor hands out data outside them;
 * data is at most a record's worth; a record of application data sealed by the peer opens
 * to exactly its content; an incomplete record is never consumed; a KeyUpdate asking for
 * ours puts exactly one record in the reply; the read sequence number counts the records
 * opened.
 */
#include "tls13.h"

#include <string.h>

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t suites[] = {0x1301, 0x1302, 0x1303, 0x1301};

/* Opens every record of in[0..n) as sock.c does; returns the number of records opened. */
static size_t open_all(qs_tls13 *t, qs_tls13_ciphers *c, uint8_t *in, size_t n,
                       const uint8_t *const *expected, const size_t *expected_len, size_t n_exp)
{
    size_t at = 0, opened = 0;
    while (at < n) {
        qs_tls13_opened o;
        qs_buf reply = QS_BUF_INIT;
        uint64_t seq = t->read.seq;
        qs_tls13_status st = qs_tls13_open(t, c, in + at, n - at, &o, &reply);
        if (st == QS_TLS13_NEED_MORE) {
            size_t size = qs_tls13_record_size(in + at, n - at);
            CHECK(size == 0 || size > n - at);
            CHECK(t->read.seq == seq && reply.len == 0);
            break;
        }
        if (st == QS_TLS13_FAILED) {
            CHECK(o.why != NULL);
            qs_buf_free(&reply);
            break;
        }
        CHECK(o.used >= QS_TLS13_HEADER && o.used <= n - at);
        CHECK(o.used == qs_tls13_record_size(in + at, n - at));
        CHECK(t->read.seq == seq + 1 || t->read.seq == 0); /* 0: after a KeyUpdate */
        if (reply.len)
            CHECK(qs_tls13_count_records((const uint8_t *)reply.p, reply.len) == 1);
        if (st == QS_TLS13_DATA && o.len) {
            CHECK(o.len <= QS_TLS13_MAX_PLAINTEXT);
            CHECK(o.data >= in + at + QS_TLS13_HEADER && o.data + o.len <= in + at + o.used);
        }
        if (expected && opened < n_exp && expected[opened]) {
            CHECK(st == QS_TLS13_DATA && o.len == expected_len[opened]);
            CHECK(o.len == 0 || memcmp(o.data, expected[opened], o.len) == 0);
        }
        qs_buf_free(&reply);
        at += o.used;
        opened++;
        if (st == QS_TLS13_CLOSED)
            break;
    }
    return opened;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static qs_tls13_ciphers *ciphers;
    if (!ciphers)
        ciphers = qs_tls13_ciphers_new();
    uint16_t suite = suites[data[0] & 3];
    size_t secret_len = suite == 0x1302 ? 48 : 32;
    uint8_t client[48], server[48];
    memset(client, 0xc1, sizeof(client));
    memset(server, 0x5e, sizeof(server));
    qs_tls13 hub, peer;
    CHECK(qs_tls13_init(&hub, suite, client, server, secret_len, 0, 0) == 0);
    CHECK(qs_tls13_init(&peer, suite, server, client, secret_len, 0, 0) == 0);
    const uint8_t *p = data + 1;
    size_t n = size - 1;

    if (!(data[0] & 4)) {
        uint8_t *in = malloc(n ? n : 1);
        memcpy(in, p, n);
        open_all(&hub, ciphers, in, n, NULL, NULL, 0);
        free(in);
        return 0;
    }

    /* Sealed by the peer: entries of (type, length high, length low, content). */
    qs_buf stream = QS_BUF_INIT;
    const uint8_t *expected[64];
    size_t expected_len[64], n_exp = 0;
    while (n >= 3 && n_exp < 64) {
        uint8_t type = p[0];
        size_t len = ((size_t)p[1] << 8 | p[2]) % (QS_TLS13_MAX_PLAINTEXT + 1);
        p += 3;
        n -= 3;
        len = len < n ? len : n;
        CHECK(qs_tls13_seal(&peer, ciphers, type, p, len, &stream) == 0);
        /* Application data opens to its content, as long as every record before it did
         * (a KeyUpdate or an alert from the peer changes what follows). */
        expected[n_exp] = type == QS_TLS13_APPLICATION_DATA ? p : NULL;
        expected_len[n_exp++] = len;
        p += len;
        n -= len;
    }
    size_t opened =
        open_all(&hub, ciphers, (uint8_t *)stream.p, stream.len, expected, expected_len, n_exp);
    /* Records of application data alone all open. */
    bool all_data = true;
    for (size_t i = 0; i < n_exp; i++)
        all_data = all_data && expected[i];
    if (all_data)
        CHECK(opened == n_exp && hub.read.seq == n_exp);
    qs_buf_free(&stream);
    return 0;
}
