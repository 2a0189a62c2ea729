/* SPDX-License-Identifier: MIT
 * tls13.h - the TLS 1.3 record layer the hub runs itself once OpenSSL has finished a
 * handshake.
 *
 * Why: an OpenSSL 3.0 `SSL` keeps about 14 KB per connection after its handshake (its
 * object, record-layer slots, two cipher contexts, the session), while all that an
 * established TLS 1.3 connection needs is, for each direction, a traffic secret, the key
 * and IV derived from it and a record sequence number: some 200 bytes. OpenSSL does the
 * handshake (certificates, key exchange, ALPN); the hub takes the traffic secrets it
 * reports (its key-log callback), frees the `SSL` and protects records itself (RFC 8446,
 * section 5), with AEAD contexts shared by every connection of a thread. This is what the
 * kernel's TLS offload (kTLS) does, in user space: the handshake stays in OpenSSL.
 *
 * What it does after the handshake: application data both ways; the peer's KeyUpdate
 * (RFC 8446, 4.6.3), answered with one of its own when asked; a KeyUpdate of its own before
 * a key has protected QS_TLS13_REKEY_AFTER records (AES-GCM's usage limit, RFC 8446, 5.5);
 * close_notify both ways; every other alert or unexpected message fails the connection
 * with the alert RFC 8446 names. The three TLS 1.3 cipher suites of RFC 8446 (AES-128-GCM,
 * AES-256-GCM, ChaCha20-Poly1305) are supported; a connection that negotiated anything
 * else (TLS 1.2 included) stays with OpenSSL.
 *
 * qs_tls13_open is a parser of what a peer sends: bytes in, a verdict out, bounded by the
 * protocol's record size; it never reads past the length it is given.
 *
 * Threading: a qs_tls13 belongs to one connection; a qs_tls13_ciphers to one thread.
 */
#ifndef QS_TLS13_H
#define QS_TLS13_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define QS_TLS13_HEADER 5
#define QS_TLS13_MAX_PLAINTEXT 16384
/* A record's ciphertext (its content type, padding and tag included) is at most this. */
#define QS_TLS13_MAX_CIPHERTEXT (QS_TLS13_MAX_PLAINTEXT + 256)
#define QS_TLS13_MAX_SECRET 48
/* Records a key protects before the hub replaces it (below AES-GCM's 2^24.5 limit). */
#define QS_TLS13_REKEY_AFTER ((uint64_t)1 << 24)

/* Record content types. */
enum {
    QS_TLS13_CHANGE_CIPHER_SPEC = 20,
    QS_TLS13_ALERT = 21,
    QS_TLS13_HANDSHAKE = 22,
    QS_TLS13_APPLICATION_DATA = 23,
};

/* The alerts the record layer sends. */
enum {
    QS_TLS13_CLOSE_NOTIFY = 0,
    QS_TLS13_UNEXPECTED_MESSAGE = 10,
    QS_TLS13_BAD_RECORD_MAC = 20,
    QS_TLS13_RECORD_OVERFLOW = 22,
    QS_TLS13_DECODE_ERROR = 50,
    QS_TLS13_INTERNAL_ERROR = 80,
    QS_TLS13_USER_CANCELED = 90,
};

/** One direction: its traffic secret, the key and IV derived from it, its next record. */
typedef struct qs_tls13_keys {
    uint8_t secret[QS_TLS13_MAX_SECRET];
    uint8_t key[32];
    uint8_t iv[12];
    uint64_t seq;
} qs_tls13_keys;

/** A connection's record protection: what the peer sends (read), what the hub sends
 *  (write). */
typedef struct qs_tls13 {
    uint8_t suite;      /* index into the supported suites */
    uint8_t secret_len; /* the suite's hash length */
    qs_tls13_keys read, write;
    uint64_t rekey_after; /* QS_TLS13_REKEY_AFTER (lower in tests) */
} qs_tls13;

/** One thread's AEAD contexts (made when first needed, re-keyed for every record). */
typedef struct qs_tls13_ciphers qs_tls13_ciphers;
qs_tls13_ciphers *qs_tls13_ciphers_new(void);
void qs_tls13_ciphers_free(qs_tls13_ciphers *c);

/** True when the record layer supports this cipher suite (its IANA number, 0x1301…). */
bool qs_tls13_supports(uint16_t suite);

/**
 * Sets up both directions from their traffic secrets (secret_len bytes each: the suite's
 * hash length) and next sequence numbers. Returns 0, or -1 for an unsupported suite or a
 * secret of the wrong length.
 */
int qs_tls13_init(qs_tls13 *t, uint16_t suite, const uint8_t *read_secret,
                  const uint8_t *write_secret, size_t secret_len, uint64_t read_seq,
                  uint64_t write_seq);
/** Erases the keys (before the memory is freed). */
void qs_tls13_wipe(qs_tls13 *t);

/**
 * Appends to out one record of content type `type` carrying n bytes (at most
 * QS_TLS13_MAX_PLAINTEXT), preceded by a KeyUpdate record when the write key has reached
 * its limit. Returns 0, or -1 when encryption failed.
 */
int qs_tls13_seal(qs_tls13 *t, qs_tls13_ciphers *c, uint8_t type, const void *p, size_t n,
                  qs_buf *out);

typedef enum qs_tls13_status {
    QS_TLS13_NEED_MORE, /* the record at the head is incomplete */
    QS_TLS13_DATA,      /* a record was opened: application data (possibly none) */
    QS_TLS13_CLOSED,    /* the peer sent close_notify */
    QS_TLS13_FAILED,    /* the connection must end (with `alert` sent, unless it is 0xff) */
} qs_tls13_status;

typedef struct qs_tls13_opened {
    size_t used;   /* DATA, CLOSED: the bytes the record took */
    uint8_t *data; /* DATA: the plaintext, decrypted in place inside the input */
    size_t len;
    uint8_t alert;   /* FAILED: the alert to send (0xff: none, the peer sent one) */
    const char *why; /* FAILED: one line, static */
} qs_tls13_opened;

/**
 * Opens the record at the head of in[0..len), decrypting it in place. A KeyUpdate from the
 * peer is applied (DATA with no data); when the peer asks for one in return, the hub's
 * KeyUpdate record is appended to `reply`, which must be the stream the hub's next records
 * go to (records are sent in the order they are sealed).
 */
qs_tls13_status qs_tls13_open(qs_tls13 *t, qs_tls13_ciphers *c, uint8_t *in, size_t len,
                              qs_tls13_opened *o, qs_buf *reply);

/** The size of the record whose header begins p[0..n), or 0 when n < QS_TLS13_HEADER. */
size_t qs_tls13_record_size(const uint8_t *p, size_t n);
/** The number of whole records in p[0..n). */
size_t qs_tls13_count_records(const uint8_t *p, size_t n);

#endif
