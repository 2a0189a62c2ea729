/* SPDX-License-Identifier: MIT
 * config.h - the hub's configuration: a Caddyfile-style file with a `mercure { … }` block,
 * the reference hub's environment variables, defaults and validation.
 *
 * Sources, as the reference hub reads them:
 *  - `mercure run --config FILE`: FILE is parsed.
 *  - no --config: ./Caddyfile when it exists, else the built-in default Caddyfile, which is
 *    the reference's own:  {$SERVER_NAME:localhost} { mercure { publisher_jwt
 *    {env.MERCURE_PUBLISHER_JWT_KEY} {env.MERCURE_PUBLISHER_JWT_ALG}; subscriber_jwt …;
 *    {$MERCURE_EXTRA_DIRECTIVES} } }, plus MERCURE_TRANSPORT_URL and GLOBAL_OPTIONS.
 *
 * The site block lists one or more addresses (`:80, :443 { … }`, or several in SERVER_NAME);
 * they become `listeners` (see qs_config_listener for which use TLS). A second site block is
 * an error: Quicksilver serves one hub.
 *
 * `{$VAR}` / `{$VAR:default}` are replaced in the text before tokenizing (so one variable can
 * hold several directive lines); `{env.VAR}` is replaced after tokenizing and stays a single
 * token (so a multi-line PEM key works). Every error names the source (file name or
 * environment variable), the line, the directive and the offending value. Unknown directives
 * are errors (unlike the reference, which ignores them).
 *
 * Parsing is pure: environment lookups go through a callback so tests need no real env.
 */
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include "util.h"

/** One `key value…` line inside a `transport NAME { … }` block. */
typedef struct qs_config_option {
    char *key;
    char **values;
    size_t n_values;
    char *source; /* file name or variable the line came from */
    int line;
} qs_config_option;

typedef struct qs_config_transport {
    char *name;                /* from `transport NAME`; NULL when unset */
    char *url;                 /* from `transport_url` or MERCURE_TRANSPORT_URL; NULL when unset */
    qs_config_option *options; /* the block's lines, in order */
    size_t n_options;
    char *source; /* where `transport`/`transport_url` was given */
    int line;
} qs_config_transport;

/*
 * One address of the site block (or of SERVER_NAME), all serving the same hub.
 *
 * Which addresses use TLS: `https://` → TLS (port 443 when none is written); `http://` →
 * plain (port 80); no scheme: port 443 → TLS, port 80 → plain, any other port or no port →
 * TLS when the site has a `tls` directive, else plain (no port: 443 with `tls`, 80 without).
 * A TLS address needs `tls CERT_FILE KEY_FILE` or `tls internal` (no ACME).
 *
 * Several entries may bind the same (host, port): `a.example.com, b.example.com` are two
 * names on every interface, port 80. Entries on one port (other than 0) agree on `tls`.
 */
typedef struct qs_config_listener {
    char *address; /* as written: ":443", "https://example.com:8443", "localhost" */
    char *host;    /* bind address; NULL = every interface (a host name is a virtual-host
                      name, not a bind address, except IP literals and "localhost" with an
                      explicit port) */
    int port;
    bool tls;     /* served over TLS */
    char *source; /* where it was written (file or variable) and its line, for errors */
    int line;
} qs_config_listener;

typedef struct qs_config {
    /* Where to listen: the site's addresses, in the order written (at least one). */
    qs_config_listener *listeners;
    size_t n_listeners;
    /* The first listener again, for code that reads only one (to be removed). */
    char *site_address; /* as written, e.g. ":3000", "localhost", "http://0.0.0.0:3000" */
    char *listen_host;  /* NULL = every interface */
    int listen_port;

    /* The site's `tls` directive: certificate and key files, or `tls internal` (a local CA
     * issues the certificate). All NULL/false without `tls`. */
    char *tls_cert_file, *tls_key_file;
    bool tls_internal;
    char *tls_source; /* where `tls` was given */
    int tls_line;

    /* Global `protocols` (or `servers { protocols … }`), for every listener: h1; h2 on TLS
     * listeners (ALPN); h2c on plain ones (prior knowledge). Default h1 and h2. */
    bool proto_h1, proto_h2, proto_h2c;

    /* JWT: key material and algorithm name (NULL alg = HS256). */
    char *publisher_key;
    char *publisher_alg;
    char *subscriber_key;
    char *subscriber_alg;
    /* JWK Sets (https://, http:// or file://): when set, they replace the role's key. */
    char *publisher_jwks_url;
    char *subscriber_jwks_url;
    uint64_t jwks_refresh_ms;     /* default 5 min: how often the sets are fetched again */
    uint64_t jwks_min_refresh_ms; /* default 30 s: the least time between two fetches of a set
                                     (unknown kids, retries) */
    char *jwks_ca_file;           /* PEM CA certificates for HTTPS JWKS servers; NULL: the
                                     system's */

    bool anonymous;
    char **publish_origins;
    size_t n_publish_origins;
    char **cors_origins;
    size_t n_cors_origins;
    char *cookie_name; /* default "mercureAuthorization" */
    bool subscriptions;
    bool ui;                            /* serve the debugging UI under /.well-known/mercure/ui/ */
    bool demo;                          /* the UI and the demo endpoint under …/ui/demo/ */
    char *hub_name;                     /* `name`, default "default" */
    int protocol_version_compatibility; /* 0 or 7 */

    uint64_t heartbeat_ms;        /* default 40 s; 0 disables */
    uint64_t write_timeout_ms;    /* default 600 s; 0 disables */
    uint64_t dispatch_timeout_ms; /* default 5 s; 0 disables */

    qs_config_transport transport;

    long topic_selector_cache;       /* default 100000 entries; 0 disables */
    long subscriber_list_cache_size; /* accepted for compatibility */

    /* Quicksilver additions. */
    int workers;                     /* default 0 = number of CPUs */
    uint64_t max_request_body_size;  /* default 1 MiB */
    uint64_t max_header_size;        /* default 64 KiB: request line + headers */
    long max_topics;                 /* default 1000, per subscribe and per publish */
    long max_connections;            /* default 0 = derived from the open-file limit */
    long subscriber_queue_size;      /* default 1000 events queued per subscriber */
    uint64_t subscriber_queue_bytes; /* default 16 MiB queued per subscriber */
    uint64_t request_timeout_ms;     /* default 30 s to receive a whole request */
    uint64_t idle_timeout_ms;        /* default 120 s between keep-alive requests */
    /* A subscriber's URI-template selectors (those with "{"), see qs_selector_check();
     * 0 = no limit. */
    uint64_t max_selector_length;  /* default 4 KiB per selector */
    long max_selector_expressions; /* default 64 {...} per selector */
    long max_selector_states;      /* default 1024 automaton states per selector */
    long max_subscriber_states;    /* default 4096 states for all of a request's templates */

    bool debug; /* GLOBAL_OPTIONS `debug` */
    /* Global `shutdown_delay`: after SIGTERM the hub reports itself not ready and goes on
     * serving this long before it stops; `grace_period`: its streams end spread over this
     * long, each with a retry hint (0: all at once). */
    uint64_t shutdown_delay_ms;
    uint64_t grace_period_ms;
    bool log_json;   /* global `log { format json }`: one JSON object per line */
    bool access_log; /* a site-level `log`: one line per request answered */
} qs_config;

/** Looks an environment variable up; returns NULL when unset. */
typedef const char *(*qs_getenv_fn)(const char *name, void *ud);

/** Fills cfg with the defaults above (heap fields NULL). */
void qs_config_defaults(qs_config *cfg);

/**
 * Parses Caddyfile text. source names it in errors ("Caddyfile", "built-in default"…).
 * Returns 0, or -1 with a malloc'd one-line message in *err, e.g.
 * "Caddyfile:7: heartbeat: invalid duration \"4O s\"". The structure is validated too
 * (publisher key required, subscriber key required unless anonymous, known algorithms…).
 */
int qs_config_parse(qs_config *cfg, const char *text, size_t len, const char *source,
                    qs_getenv_fn getenv_fn, void *ud, char **err);

/** Reads and parses a file; errors name the file. */
int qs_config_load_file(qs_config *cfg, const char *path, qs_getenv_fn getenv_fn, void *ud,
                        char **err);

/** Parses the built-in default Caddyfile (see above) with the given environment. */
int qs_config_load_default(qs_config *cfg, qs_getenv_fn getenv_fn, void *ud, char **err);

/** Frees every heap field and resets to defaults. */
void qs_config_free(qs_config *cfg);

/** Parses a Go/Caddy duration ("40s", "1m30s", "500ms", "1.5h", "2d", "0"). 0 or -1. */
int qs_parse_duration_ms(const char *s, uint64_t *out_ms);
/** Parses a byte size ("1048576", "1MiB", "1MB", "512KiB", "2 GB"). 0 or -1. */
int qs_parse_size(const char *s, uint64_t *out);

#endif
