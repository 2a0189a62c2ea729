/* SPDX-License-Identifier: MIT
 * main.c - the `mercure` command: run, validate, healthcheck, token, version, help.
 */
#include <netdb.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "issuers.h"
#include "log.h"
#include "server.h"
#include "tls.h"
#include "token.h"

extern char **environ;

static const char usage[] =
    "Quicksilver " QS_VERSION " — a Mercure hub written in C, compatible with the reference hub\n"
    "\n"
    "Usage:\n"
    "  mercure run [--config FILE] [--adapter caddyfile] [--environ]\n"
    "                            run the hub (without --config: ./Caddyfile if present, else\n"
    "                            the built-in configuration read from the environment)\n"
    "  mercure validate [--config FILE]\n"
    "                            check a configuration and exit\n"
    "  mercure healthcheck [--config FILE] [--ready]\n"
    "                            ask the hub running with this configuration for\n"
    "                            /mercure/health/live (or /ready) on its first plain HTTP\n"
    "                            address (else TLS); exit 0 when it answers 200 (for\n"
    "                            container health checks)\n"
    "  mercure token (--key KEY | --key-file FILE) [--alg ALG] [--kid KID]\n"
    "                [--publish TOPIC]... [--subscribe TOPIC]... [--payload JSON] [--exp 1h]\n"
    "                            print a JWT the hub accepts (mercure token --help)\n"
    "  mercure version           print the version\n"
    "  mercure help              print this help\n"
    "\n"
    "Environment (as the reference hub): SERVER_NAME, MERCURE_PUBLISHER_JWT_KEY,\n"
    "MERCURE_PUBLISHER_JWT_ALG, MERCURE_SUBSCRIBER_JWT_KEY, MERCURE_SUBSCRIBER_JWT_ALG,\n"
    "MERCURE_EXTRA_DIRECTIVES, MERCURE_TRANSPORT_URL, GLOBAL_OPTIONS. MERCURE_LICENSE is\n"
    "accepted and ignored: Quicksilver has no licence.\n";

static const char *real_getenv(const char *name, void *ud)
{
    QS_UNUSED(ud);
    return getenv(name);
}

typedef struct options {
    const char *config;
    bool environ_dump;
} options;

static int parse_options(int argc, char **argv, options *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--config") || !strcmp(a, "-c")) && i + 1 < argc) {
            o->config = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            o->config = a + 9;
        } else if (!strcmp(a, "--adapter") && i + 1 < argc) {
            if (strcmp(argv[++i], "caddyfile") != 0) {
                fprintf(stderr, "mercure: --adapter: only \"caddyfile\" is supported\n");
                return -1;
            }
        } else if (!strcmp(a, "--environ")) {
            o->environ_dump = true;
        } else if (!strcmp(a, "--watch")) {
            fprintf(stderr, "mercure: --watch is not supported; restart the hub to reload\n");
            return -1;
        } else {
            fprintf(stderr, "mercure: unknown option \"%s\" (see mercure help)\n", a);
            return -1;
        }
    }
    return 0;
}

static int load_config(const options *o, qs_config *cfg)
{
    char *err = NULL;
    int rc;
    qs_config_defaults(cfg);
    if (o->config) {
        rc = qs_config_load_file(cfg, o->config, real_getenv, NULL, &err);
    } else if (access("Caddyfile", R_OK) == 0) {
        qs_info("using ./Caddyfile");
        rc = qs_config_load_file(cfg, "Caddyfile", real_getenv, NULL, &err);
    } else {
        rc = qs_config_load_default(cfg, real_getenv, NULL, &err);
    }
    if (rc < 0) {
        fprintf(stderr, "mercure: configuration error: %s\n", err ? err : "unknown error");
        free(err);
        return -1;
    }
    return 0;
}

static qs_server server;

/* SIGHUP: certificates and keys are read again, JWK Sets fetched again; streams stay up. */
static void on_reload(uv_signal_t *sig, int signum)
{
    QS_UNUSED(sig);
    QS_UNUSED(signum);
    char *err = NULL;
    bool jwks = (server.hub.publisher_keys && qs_keys_is_jwks(server.hub.publisher_keys)) ||
                (server.hub.subscriber_keys && qs_keys_is_jwks(server.hub.subscriber_keys)) ||
                qs_issuers_have_sets(&server.hub.issuers);
    if (jwks) {
        qs_info("received SIGHUP: fetching the JWK Sets again");
        qs_server_reload_keys(&server);
    }
    if (!server.tls) {
        if (!jwks)
            qs_info("received SIGHUP: nothing to reload (no TLS listener, no JWK Set)");
    } else if (qs_server_reload_tls(&server, &err) < 0) {
        qs_error("received SIGHUP: certificates not reloaded: %s (the previous ones stay)", err);
        free(err);
    } else {
        qs_info("received SIGHUP: certificates reloaded");
    }
}

/* The first SIGTERM or SIGINT stops the hub. The handlers stay installed until the process
 * is about to exit: a second signal during the stop (a supervisor repeating itself, or one
 * arriving during shutdown_delay or the grace period) must not kill the hub with the
 * default action and turn a clean stop into a failure. It is not acted on: the stop is
 * already bounded (shutdown_delay + grace_period + dispatch_timeout). */
static void on_signal(uv_signal_t *sig, int signum)
{
    static bool stopping;
    if (stopping)
        return;
    stopping = true;
    qs_info("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_stop(sig->loop);
}

/* The exit status of `run`. When a broker client's threads still run (a transport gave up
 * waiting for them: qs_transport_left_running), the process ends here, so that no exit
 * handler (OpenSSL's, the sanitizers') runs under them. */
static int finish(int rc)
{
    if (qs_transport_threads_left()) {
        fflush(NULL);
        _exit(rc);
    }
    return rc;
}

static int cmd_run(const options *o)
{
    qs_config cfg;
    if (load_config(o, &cfg) < 0)
        return 1;
    if (cfg.debug)
        qs_log_set_level(QS_LOG_DEBUG);
    qs_log_set_json(cfg.log_json);
    if (o->environ_dump)
        for (char **e = environ; *e; e++)
            puts(*e);
    /* Signals are caught before the hub says it listens: a SIGTERM right after that line
     * must stop it cleanly, not kill it. */
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t sigterm, sigint, sighup;
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sighup);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sighup, on_reload, SIGHUP);
    char *err = NULL;
    if (qs_server_init(&server, &cfg, &err) < 0 || qs_server_start(&server, &err) < 0) {
        fprintf(stderr, "mercure: %s\n", err ? err : "cannot start");
        free(err);
        qs_server_destroy(&server);
        qs_config_free(&cfg);
        return finish(1);
    }
    const qs_config_listener *first = &cfg.listeners[0];
    qs_info("Quicksilver %s listening on %s:%d (%d workers, transport %s)", QS_VERSION,
            first->host ? first->host : "*", server.ports[0], server.hub.n_workers,
            server.hub.transport->ops->name);
    for (size_t i = 0; i < cfg.n_listeners; i++)
        qs_info("serving %s on %s:%d (site address %s)", cfg.listeners[i].tls ? "https" : "http",
                cfg.listeners[i].host ? cfg.listeners[i].host : "*", server.ports[i],
                cfg.listeners[i].address);
    uv_run(loop, UV_RUN_DEFAULT);

    qs_server_stop(&server);
    qs_server_destroy(&server);
    qs_config_free(&cfg);
    /* Closing a signal handle restores the default action: from here until exit the
     * signals that stop the hub are ignored instead. */
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    qs_info("stopped");
    return finish(0);
}

static int cmd_validate(const options *o)
{
    qs_config cfg;
    if (load_config(o, &cfg) < 0)
        return 1;
    /* Keys are parsed here too, so a bad PEM is caught without starting. */
    char *err = NULL;
    const struct {
        const char *directive, *key, *alg, *jwks_directive, *jwks_url;
    } keys[] = {{"publisher_jwt", cfg.publisher_key, cfg.publisher_alg, "publisher_jwks_url",
                 cfg.publisher_jwks_url},
                {"subscriber_jwt", cfg.subscriber_key, cfg.subscriber_alg, "subscriber_jwks_url",
                 cfg.subscriber_jwks_url}};
    /* JWK Sets are fetched and parsed, as the hub does before it starts. */
    for (size_t i = 0; i < QS_ARRAY_LEN(keys) && !err; i++) {
        if (!keys[i].jwks_url)
            continue;
        qs_keys_options ko = {.refresh_ms = cfg.jwks_refresh_ms,
                              .min_refresh_ms = cfg.jwks_min_refresh_ms,
                              .timeout_ms = QS_JWKS_FETCH_TIMEOUT_MS,
                              .ca_file = cfg.jwks_ca_file,
                              .n_slots = 1};
        qs_keys_free(qs_keys_new_jwks(keys[i].jwks_directive, keys[i].jwks_url, &ko, &err));
    }
    for (size_t i = 0; i < QS_ARRAY_LEN(keys) && !err; i++) {
        if (!keys[i].key || !*keys[i].key || keys[i].jwks_url)
            continue;
        enum qs_jwt_alg alg;
        const char *why = NULL;
        qs_jwt_key *k = NULL;
        if (qs_jwt_alg_parse(keys[i].alg, &alg) == 0)
            k = qs_jwt_key_new(alg, keys[i].key, strlen(keys[i].key), &why);
        if (!k) {
            err = qs_xasprintf("%s: the key cannot be used: %s", keys[i].directive,
                               why ? why : "unsupported algorithm");
            break;
        }
        qs_jwt_key_free(k);
    }
    /* Protocol 1.0's issuers and their keys; their JWK Sets are fetched and parsed (the
     * implicit issuer's keys are 0.x's, checked above). */
    qs_issuers issuers;
    if (!err && qs_issuers_load(&issuers, &cfg, NULL, NULL, 1, &err) == 0)
        qs_issuers_free(&issuers);
    /* Certificates too (`tls internal` is only parsed: checking it would make the CA). */
    bool tls = false;
    for (size_t i = 0; i < cfg.n_listeners; i++)
        tls |= cfg.listeners[i].tls;
    if (!err && tls && !cfg.tls_internal) {
        qs_tls *t = qs_tls_new(&cfg, ".", &err);
        qs_tls_free(t);
    }
    if (err) {
        fprintf(stderr, "mercure: %s\n", err);
        free(err);
        qs_config_free(&cfg);
        return 1;
    }
    printf("Valid configuration\n");
    qs_config_free(&cfg);
    return 0;
}

/* `mercure healthcheck`: a container image has no curl, so the hub asks itself. The
 * configuration is read as `run` reads it, to find where the hub listens: the first plain
 * HTTP address, else the first TLS one (its certificate is not verified: this is the hub's
 * own, reached on this machine). A host bound to every interface is reached on 127.0.0.1.
 * Exit 0 on a 200 answer, 1 otherwise; the whole check is bounded by a 5 s alarm. */
static int cmd_healthcheck(int argc, char **argv)
{
    options o = {0};
    const char *path = "/mercure/health/live";
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) && i + 1 < argc) {
            o.config = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            o.config = argv[i] + 9;
        } else if (!strcmp(argv[i], "--ready")) {
            path = "/mercure/health/ready";
        } else {
            fprintf(stderr, "mercure: unknown option \"%s\" (see mercure help)\n", argv[i]);
            return 2;
        }
    }
    alarm(5);
    qs_config cfg;
    qs_log_set_level(QS_LOG_WARN);
    if (load_config(&o, &cfg) < 0)
        return 1;
    const qs_config_listener *l = &cfg.listeners[0];
    for (size_t i = 0; i < cfg.n_listeners; i++)
        if (!cfg.listeners[i].tls) {
            l = &cfg.listeners[i];
            break;
        }
    const char *host = l->host && *l->host ? l->host : "127.0.0.1";
    char port[16];
    snprintf(port, sizeof(port), "%d", l->port);
    bool tls = l->tls;
    int rc = 1, fd = -1;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (l->port <= 0 || getaddrinfo(host, port, &hints, &res) != 0) {
        fprintf(stderr, "mercure: healthcheck: cannot reach %s port %s\n", host, port);
        goto out;
    }
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        fprintf(stderr, "mercure: healthcheck: cannot connect to %s port %s\n", host, port);
        goto out;
    }
    char req[256], resp[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, host);
    ssize_t got;
    if (tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        ssl = ctx ? SSL_new(ctx) : NULL;
        if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1 || SSL_write(ssl, req, n) != n) {
            fprintf(stderr, "mercure: healthcheck: TLS handshake with %s port %s failed\n", host,
                    port);
            goto out;
        }
        got = SSL_read(ssl, resp, sizeof(resp) - 1);
    } else {
        if (write(fd, req, (size_t)n) != n) {
            fprintf(stderr, "mercure: healthcheck: cannot send to %s port %s\n", host, port);
            goto out;
        }
        got = read(fd, resp, sizeof(resp) - 1);
    }
    resp[got > 0 ? got : 0] = '\0';
    char *eol = strstr(resp, "\r\n");
    if (eol)
        *eol = '\0';
    rc = strncmp(resp, "HTTP/1.1 200 ", 13) == 0 ? 0 : 1;
    printf("%s://%s:%s%s: %s\n", tls ? "https" : "http", host, port, path,
           *resp ? resp : "no answer");
out:
    if (ssl)
        SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    if (res)
        freeaddrinfo(res);
    qs_config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit makes the store fail its write (EFBIG, answered 503), not the hub. */
    signal(SIGXFSZ, SIG_IGN);
    setvbuf(stderr, NULL, _IOLBF, 0);
    const char *cmd = argc > 1 ? argv[1] : "help";
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "-v")) {
        printf("Quicksilver mercure %s (Mercure protocol: reference hub v0.24 compatible; "
               "libuv %s, %s)\n",
               QS_VERSION, uv_version_string(), OPENSSL_VERSION_TEXT);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "healthcheck"))
        return cmd_healthcheck(argc, argv);
    if (!strcmp(cmd, "token"))
        return qs_token_main(argc - 1, argv + 1);
    options o = {0};
    if (!strcmp(cmd, "run") || !strcmp(cmd, "validate")) {
        if (parse_options(argc, argv, &o) < 0)
            return 2;
        return !strcmp(cmd, "run") ? cmd_run(&o) : cmd_validate(&o);
    }
    fprintf(stderr, "mercure: unknown command \"%s\"\n\n%s", cmd, usage);
    return 2;
}
