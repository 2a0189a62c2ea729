/* SPDX-License-Identifier: MIT
 * tls.c - TLS contexts: certificates, the local CA of `tls internal`, ALPN, reloads.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "log.h"
#include "tls13.h"

/* Forward-secret AEAD suites for TLS 1.2 (TLS 1.3's own suites are all of that kind). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define ROOT_DAYS (10 * 365)
#define LEAF_DAYS 30

struct qs_tls {
    uv_mutex_t mu;
    SSL_CTX *ctx; /* under mu */
    /* what to load again on reload */
    char *cert_file, *key_file;
    bool internal;
    char *pki_dir;
    char **names; /* host names and addresses the internal certificate is for */
    size_t n_names;
    bool h1, h2;
};

/* The first OpenSSL error of the queue, as text (the queue is emptied). */
static const char *ssl_error_text(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (!e)
        snprintf(buf, cap, "unknown error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

/* --------------------------------------------------------------- ALPN */

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    QS_UNUSED(ssl);
    const qs_tls *t = arg;
    bool h1 = false, h2 = false;
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        const unsigned char *p = in + i + 1;
        if (n == 2 && memcmp(p, "h2", 2) == 0)
            h2 = true;
        else if (n == 8 && memcmp(p, "http/1.1", 8) == 0)
            h1 = true;
        i += 1 + n;
    }
    if (h2 && t->h2) {
        *out = (const unsigned char *)"h2";
        *outlen = 2;
        return SSL_TLSEXT_ERR_OK;
    }
    if (h1 && t->h1) {
        *out = (const unsigned char *)"http/1.1";
        *outlen = 8;
        return SSL_TLSEXT_ERR_OK;
    }
    /* No protocol in common: HTTP/1.1 is what a client without ALPN speaks. */
    return t->h1 ? SSL_TLSEXT_ERR_NOACK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

bool qs_tls_negotiated_h2(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

/* ------------------------------------------- leaving OpenSSL after the handshake */

/* Decodes the hex digits of p (up to a space or the end) into out; their count, or 0 when
 * they are not hex or too many. */
static size_t unhex(const char *p, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; *p && *p != ' '; p += 2) {
        int hi = qs_hex_value((unsigned char)p[0]);
        int lo = hi < 0 ? -1 : qs_hex_value((unsigned char)p[1]);
        if (lo < 0 || n == cap)
            return 0;
        out[n++] = (uint8_t)(hi << 4 | lo);
    }
    return n;
}

/* OpenSSL's key-log callback: "LABEL CLIENT_RANDOM SECRET", in hex. Only the application
 * traffic secrets are kept, and only for connections that asked (qs_tls_keep_secrets). */
static void keep_traffic_secret(const SSL *ssl, const char *line)
{
    qs_tls_secrets *s = SSL_get_app_data(ssl);
    if (!s)
        return;
    static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
    uint8_t *into;
    uint8_t *len;
    if (strncmp(line, client, sizeof(client) - 1) == 0)
        into = s->client, len = &s->client_len;
    else if (strncmp(line, server, sizeof(server) - 1) == 0)
        into = s->server, len = &s->server_len;
    else
        return;
    const char *secret = strchr(line + sizeof(client) - 1, ' ');
    *len = secret ? (uint8_t)unhex(secret + 1, into, QS_TLS13_MAX_SECRET) : 0;
}

void qs_tls_keep_secrets(SSL *ssl, qs_tls_secrets *s)
{
    memset(s, 0, sizeof(*s));
    SSL_set_app_data(ssl, s);
}

int qs_tls_leave_openssl(SSL *ssl, qs_tls_secrets *s, uint64_t sent, qs_tls13 *rl)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int rc = -1;
    /* Data OpenSSL has read but not handed over would be lost: there is none after a
     * handshake (it reads records one at a time), but it is checked. */
    if (SSL_version(ssl) == TLS1_3_VERSION && cipher && s->client_len &&
        s->client_len == s->server_len && SSL_pending(ssl) == 0 && !SSL_has_pending(ssl))
        rc = qs_tls13_init(rl, SSL_CIPHER_get_protocol_id(cipher), s->client, s->server,
                           s->client_len, 0, sent);
    SSL_set_app_data(ssl, NULL);
    OPENSSL_cleanse(s, sizeof(*s));
    return rc;
}

/* -------------------------------------------------------- certificates */

static char *asn1_time_text(const ASN1_TIME *t)
{
    BIO *b = BIO_new(BIO_s_mem());
    ASN1_TIME_print(b, t);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = qs_xstrndup(data, n > 0 ? (size_t)n : 0);
    BIO_free(b);
    return s;
}

/* The certificate must be valid now: an expired one would only fail in every client. */
static int check_validity(X509 *cert, const char *file, char **err)
{
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
        char *when = asn1_time_text(X509_get0_notAfter(cert));
        *err = qs_xasprintf("tls: the certificate %s expired on %s", file, when);
        free(when);
        return -1;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
        char *when = asn1_time_text(X509_get0_notBefore(cert));
        *err = qs_xasprintf("tls: the certificate %s is not valid before %s", file, when);
        free(when);
        return -1;
    }
    return 0;
}

/* A readable file, or a message that says why not (OpenSSL's own would be obscure). */
static int check_readable(const char *what, const char *file, char **err)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = qs_xasprintf("tls: cannot read the %s %s: %s", what, file, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

static int use_files(SSL_CTX *ctx, const char *cert_file, const char *key_file, char **err)
{
    char why[256];
    if (check_readable("certificate", cert_file, err) < 0 ||
        check_readable("key", key_file, err) < 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        *err = qs_xasprintf("tls: %s is not a PEM certificate chain (%s)", cert_file,
                            ssl_error_text(why, sizeof(why)));
        return -1;
    }
    /* The key is read apart from the context: SSL_CTX_use_PrivateKey_file also compares it
     * with the certificate, and a mismatch would then read as a key that is not PEM. */
    BIO *b = BIO_new_file(key_file, "r");
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, SSL_CTX_get_default_passwd_cb(ctx),
                                                SSL_CTX_get_default_passwd_cb_userdata(ctx))
                      : NULL;
    BIO_free(b);
    if (!key) {
        *err = qs_xasprintf("tls: %s is not a PEM private key (%s)", key_file,
                            ssl_error_text(why, sizeof(why)));
        return -1;
    }
    int match = X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) == 1;
    ERR_clear_error();
    if (!match || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        EVP_PKEY_free(key);
        ERR_clear_error();
        *err =
            qs_xasprintf("tls: the key %s does not match the certificate %s", key_file, cert_file);
        return -1;
    }
    EVP_PKEY_free(key);
    return check_validity(SSL_CTX_get0_certificate(ctx), cert_file, err);
}

/* ---------------------------------------------------------- local CA */

static EVP_PKEY *new_p256_key(void)
{
    return EVP_EC_gen("P-256");
}

static void set_serial(X509 *x)
{
    unsigned char raw[16];
    qs_random_bytes(raw, sizeof(raw));
    raw[0] &= 0x7f; /* a positive serial */
    BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext) {
        X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
}

/* A certificate for `key`, issued by `issuer` (NULL: self-signed) with `issuer_key`. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long days,
                       bool ca, const char *san)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    set_serial(x);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600); /* tolerate clocks a little behind */
    X509_gmtime_adj(X509_getm_notAfter(x), days * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Quicksilver", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509 *signer = issuer ? issuer : x;
    X509_set_issuer_name(x, X509_get_subject_name(signer));
    if (ca) {
        add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, signer, NID_key_usage, "critical,digitalSignature");
        add_ext(x, signer, NID_ext_key_usage, "serverAuth");
        add_ext(x, signer, NID_subject_alt_name, san);
    }
    add_ext(x, signer, NID_subject_key_identifier, "hash");
    if (issuer)
        add_ext(x, signer, NID_authority_key_identifier, "keyid:always");
    if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key, char **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, key ? 0600 : 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        *err = qs_xasprintf("tls internal: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fclose(f) != 0 || !ok) {
        *err = qs_xasprintf("tls internal: cannot write %s", path);
        return -1;
    }
    return 0;
}

static int make_dirs(const char *path, char **err)
{
    char *p = qs_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        mkdir(p, 0700);
        *s = '/';
    }
    int rc = mkdir(p, 0700);
    if (rc < 0 && errno != EEXIST) {
        *err = qs_xasprintf("tls internal: cannot create %s: %s", p, strerror(errno));
        free(p);
        return -1;
    }
    free(p);
    return 0;
}

/* The local CA: loaded from pki_dir, or made and saved there the first time. */
static int load_or_make_root(const char *pki_dir, X509 **root, EVP_PKEY **root_key, char **err)
{
    char *crt = qs_xasprintf("%s/root.crt", pki_dir);
    char *key = qs_xasprintf("%s/root.key", pki_dir);
    int rc = -1;
    FILE *fc = fopen(crt, "r"), *fk = fopen(key, "r");
    if (fc && fk) {
        *root = PEM_read_X509(fc, NULL, NULL, NULL);
        *root_key = PEM_read_PrivateKey(fk, NULL, NULL, NULL);
        if (*root && *root_key && X509_check_private_key(*root, *root_key) == 1 &&
            X509_cmp_current_time(X509_get0_notAfter(*root)) > 0) {
            rc = 0;
            goto out;
        }
        qs_warn("tls internal: the local CA in %s is unreadable or expired: making a new one",
                pki_dir);
        X509_free(*root);
        EVP_PKEY_free(*root_key);
    }
    *root_key = new_p256_key();
    *root = *root_key ? make_cert(*root_key, "Quicksilver Local Authority", NULL, NULL, ROOT_DAYS,
                                  true, NULL)
                      : NULL;
    if (!*root) {
        *err = qs_xstrdup("tls internal: cannot make the local CA");
        goto out;
    }
    if (make_dirs(pki_dir, err) < 0 || write_pem(key, NULL, *root_key, err) < 0 ||
        write_pem(crt, *root, NULL, err) < 0)
        goto out;
    qs_info("tls internal: made a local CA; trust %s to avoid certificate warnings", crt);
    rc = 0;
out:
    if (fc)
        fclose(fc);
    if (fk)
        fclose(fk);
    if (rc < 0) {
        X509_free(*root);
        EVP_PKEY_free(*root_key);
        *root = NULL;
        *root_key = NULL;
    }
    free(crt);
    free(key);
    return rc;
}

/* "DNS:a,IP:127.0.0.1,…" for the site's names, plus the loopback names. */
static char *san_list(const qs_tls *t)
{
    qs_buf b = QS_BUF_INIT;
    const char *always[] = {"localhost", "127.0.0.1", "::1"};
    for (size_t i = 0; i < t->n_names + QS_ARRAY_LEN(always); i++) {
        const char *n = i < t->n_names ? t->names[i] : always[i - t->n_names];
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, n, ip) == 1 || inet_pton(AF_INET6, n, ip) == 1;
        if (strstr(qs_buf_cstr(&b), n))
            continue; /* listed already (a loopback name of the site) */
        qs_buf_appendf(&b, "%s%s:%s", b.len ? "," : "", is_ip ? "IP" : "DNS", n);
    }
    return qs_buf_steal(&b);
}

static int use_internal(qs_tls *t, SSL_CTX *ctx, char **err)
{
    X509 *root = NULL, *leaf = NULL;
    EVP_PKEY *root_key = NULL, *key = NULL;
    int rc = -1;
    if (load_or_make_root(t->pki_dir, &root, &root_key, err) < 0)
        return -1;
    char *san = san_list(t);
    key = new_p256_key();
    leaf = key ? make_cert(key, t->n_names ? t->names[0] : "localhost", root, root_key, LEAF_DAYS,
                           false, san)
               : NULL;
    free(san);
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1 ||
        SSL_CTX_add1_chain_cert(ctx, root) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        char why[256];
        *err = qs_xasprintf("tls internal: cannot make a certificate (%s)",
                            ssl_error_text(why, sizeof(why)));
        goto out;
    }
    rc = 0;
out:
    X509_free(leaf);
    EVP_PKEY_free(key);
    X509_free(root);
    EVP_PKEY_free(root_key);
    return rc;
}

/* ------------------------------------------------------------ contexts */

static SSL_CTX *build_ctx(qs_tls *t, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        *err = qs_xstrdup("tls: cannot create a context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections keep no record buffers; writes may come from a moved buffer. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_ENABLE_PARTIAL_WRITE);
    /* Resumption through tickets only: no session cache shared between workers. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, t);
    SSL_CTX_set_keylog_callback(ctx, keep_traffic_secret);
    int rc =
        t->internal ? use_internal(t, ctx, err) : use_files(ctx, t->cert_file, t->key_file, err);
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The host part of a site address ("https://example.com:8443" → "example.com"), or NULL
 * for an address without one (":443"). */
static char *address_host(const char *addr)
{
    const char *s = strstr(addr, "://");
    s = s ? s + 3 : addr;
    size_t n;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb)
            return NULL;
        s++;
        n = (size_t)(rb - s);
    } else {
        n = strcspn(s, ":/");
    }
    return n ? qs_xstrndup(s, n) : NULL;
}

qs_tls *qs_tls_new(const qs_config *cfg, const char *data_dir, char **err)
{
    qs_tls *t = qs_xcalloc(1, sizeof(*t));
    uv_mutex_init(&t->mu);
    t->internal = cfg->tls_internal;
    t->cert_file = cfg->tls_cert_file ? qs_xstrdup(cfg->tls_cert_file) : NULL;
    t->key_file = cfg->tls_key_file ? qs_xstrdup(cfg->tls_key_file) : NULL;
    t->pki_dir = qs_xasprintf("%s/pki", data_dir);
    t->h1 = cfg->proto_h1;
    t->h2 = cfg->proto_h2;
    t->names = qs_xcalloc(cfg->n_listeners + 1, sizeof(*t->names));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        char *h = cfg->listeners[i].tls ? address_host(cfg->listeners[i].address) : NULL;
        if (h && (!*h || strchr(h, '*')))
            free(h), h = NULL; /* no name, or a wildcard the local CA does not sign */
        if (h)
            t->names[t->n_names++] = h;
    }
    if (!t->internal && (!t->cert_file || !t->key_file)) {
        *err = qs_xstrdup("tls: a certificate and a key are required (tls CERT_FILE KEY_FILE)");
        qs_tls_free(t);
        return NULL;
    }
    t->ctx = build_ctx(t, err);
    if (!t->ctx) {
        qs_tls_free(t);
        return NULL;
    }
    return t;
}

int qs_tls_reload(qs_tls *t, char **err)
{
    SSL_CTX *ctx = build_ctx(t, err);
    if (!ctx)
        return -1;
    uv_mutex_lock(&t->mu);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    uv_mutex_unlock(&t->mu);
    SSL_CTX_free(old); /* connections made with it keep their reference */
    return 0;
}

SSL *qs_tls_new_ssl(qs_tls *t)
{
    uv_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->ctx);
    uv_mutex_unlock(&t->mu);
    if (ssl)
        SSL_set_accept_state(ssl);
    return ssl;
}

void qs_tls_free(qs_tls *t)
{
    if (!t)
        return;
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    for (size_t i = 0; i < t->n_names; i++)
        free(t->names[i]);
    free(t->names);
    free(t->cert_file);
    free(t->key_file);
    free(t->pki_dir);
    uv_mutex_destroy(&t->mu);
    free(t);
}

/* ------------------------------------------------------------ the client side */

SSL_CTX *qs_tls_client_ctx(const char *transport, const char *source, int line, bool insecure,
                           const char *ca, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        *err = qs_xasprintf("%s:%d: transport %s: cannot set up TLS", source, line, transport);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL)
                    : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            *err = qs_xasprintf("%s:%d: transport %s: tls_ca: cannot load \"%s\"", source, line,
                                transport, ca ? ca : "(system CAs)");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    ERR_clear_error();
    return ctx;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

void qs_tls_client_host(SSL *ssl, const char *host, bool insecure)
{
    bool ip = is_ip_literal(host);
    if (!ip)
        SSL_set_tlsext_host_name(ssl, host);
    if (!insecure) {
        if (ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
        else
            SSL_set1_host(ssl, host);
    }
}
