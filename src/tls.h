/* SPDX-License-Identifier: MIT
 * tls.h - TLS for the hub's listeners: certificates loaded and checked at start, a local CA
 * for `tls internal`, ALPN, and reloads without dropping a connection.
 *
 * One qs_tls serves every TLS listener of the hub. It holds the current SSL_CTX and
 * replaces it as a whole on reload (SIGHUP): connections keep the context they started
 * with (their SSL objects hold a reference), new ones get the new one.
 *
 * Protocol versions TLS 1.2 and 1.3 only; for 1.2, forward-secret AEAD suites only. ALPN
 * offers "h2" (when HTTP/2 is enabled) and "http/1.1". Record buffers are released while a
 * connection is idle (SSL_MODE_RELEASE_BUFFERS). After a TLS 1.3 handshake, the
 * connection leaves OpenSSL for the hub's own record layer (tls13.h), keeping some 200
 * bytes of keys instead of OpenSSL's 14 KB of state; TLS 1.2 connections stay with OpenSSL.
 *
 * Threading: qs_tls_new_ssl may be called from any worker; qs_tls_reload from any thread.
 *
 * The client side below serves the transports that speak TLS to their brokers themselves
 * (Redis, Pulsar), so they set up contexts and check a server's name the same way.
 */
#ifndef QS_TLS_H
#define QS_TLS_H

#include <openssl/ssl.h>

#include "config.h"
#include "tls13.h"

typedef struct qs_tls qs_tls;

/**
 * Builds the TLS context the configuration describes: the certificate chain and key of
 * `tls CERT_FILE KEY_FILE` (readable, the key matching the certificate, the certificate
 * valid now), or, for `tls internal`, a certificate for the site's names signed by a local
 * CA kept under data_dir/pki (made on first use; its root certificate's path is logged).
 * Returns NULL with a malloc'd one-line message naming the file on error.
 */
qs_tls *qs_tls_new(const qs_config *cfg, const char *data_dir, char **err);
/** Loads the certificates again into a new context; on error the old one stays and -1 is
 *  returned with a malloc'd message. */
int qs_tls_reload(qs_tls *t, char **err);
/** An SSL object in server mode for an accepted connection. */
SSL *qs_tls_new_ssl(qs_tls *t);
void qs_tls_free(qs_tls *t);

/** The TLS 1.3 application traffic secrets of a handshake, as OpenSSL reports them. */
typedef struct qs_tls_secrets {
    uint8_t client[QS_TLS13_MAX_SECRET], server[QS_TLS13_MAX_SECRET];
    uint8_t client_len, server_len;
} qs_tls_secrets;

/** Before the handshake of an SSL made by qs_tls_new_ssl: its traffic secrets are to be
 *  written into s (which outlives the handshake). */
void qs_tls_keep_secrets(SSL *ssl, qs_tls_secrets *s);

/**
 * After a successful handshake: when it negotiated TLS 1.3 with a suite tls13.h supports,
 * sets up rl so that the connection goes on without OpenSSL, and returns 0 (the caller
 * frees the SSL); otherwise returns -1 and the connection stays with OpenSSL. `sent` is the
 * number of records written by the SSL_do_handshake call that completed the handshake (the
 * session tickets, sent under the first sequence numbers of the write key). The secrets
 * are erased either way.
 */
int qs_tls_leave_openssl(SSL *ssl, qs_tls_secrets *s, uint64_t sent, qs_tls13 *rl);

/** True when ALPN chose HTTP/2 on this connection. */
bool qs_tls_negotiated_h2(SSL *ssl);

/**
 * A client context: TLS 1.2 at least, partial writes allowed; unless insecure, the server's
 * certificate is verified against ca (a PEM file) or, when ca is NULL, the system's CAs.
 * NULL on error with a malloc'd message "SOURCE:LINE: transport NAME: …" (naming tls_ca when
 * the CAs cannot be loaded).
 */
SSL_CTX *qs_tls_client_ctx(const char *transport, const char *source, int line, bool insecure,
                           const char *ca, char **err);
/** Before a client handshake: names host to the server (SNI) unless it is an IP address and,
 *  unless insecure, has the handshake check the certificate against that name or address. */
void qs_tls_client_host(SSL *ssl, const char *host, bool insecure);

#endif
