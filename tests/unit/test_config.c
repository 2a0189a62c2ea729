/* SPDX-License-Identifier: MIT
 * test_config.c - the Caddyfile-subset parser: official Caddyfiles, environment variables,
 * every directive's good and bad values, error messages, durations, sizes, site addresses.
 */
#include "buf.h"
#include "config.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/*-------- Helpers --------*/

/* A fake environment: NULL-terminated name/value pairs. */
#define ENV(...) ((const char *[]){__VA_ARGS__, NULL})
static const char *no_env[] = {NULL};

static const char *fake_getenv(const char *name, void *ud)
{
    const char **kv = ud;
    for (; kv && *kv; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static int parse_env(qs_config *cfg, const char *text, const char **env, char **err)
{
    return qs_config_parse(cfg, text, strlen(text), "Caddyfile", fake_getenv, (void *)env, err);
}

/* Parses and fails the test, printing the error, when parsing fails. */
static void must_parse(qs_config *cfg, const char *text, const char **env)
{
    char *err = NULL;
    if (parse_env(cfg, text, env, &err) != 0)
        qs_test_fail(__FILE__, __LINE__, "unexpected error: %s\n--- input:\n%s", err, text);
    ASSERT(err == NULL);
}

/* Parses, expects failure with exactly this message; cfg must be left freeable. */
static void must_fail(const char *text, const char **env, const char *expected)
{
    qs_config cfg;
    char *err = NULL;
    int rc = parse_env(&cfg, text, env, &err);
    if (rc == 0)
        qs_test_fail(__FILE__, __LINE__, "expected error \"%s\", parsed fine:\n%s", expected, text);
    ASSERT_EQ_INT(-1, rc);
    ASSERT(err != NULL);
    ASSERT(strchr(err, '\n') == NULL);
    ASSERT_EQ_STR(expected, err);
    free(err);
    qs_config_free(&cfg);
}

/* A minimal valid configuration with extra lines on line 5 of the mercure block. */
static char *with_lines(const char *lines)
{
    return qs_xasprintf(":3000 {\n"
                        "\tmercure {\n"
                        "\t\tpublisher_jwt pub\n"
                        "\t\tsubscriber_jwt sub\n"
                        "\t\t%s\n"
                        "\t}\n"
                        "}\n",
                        lines);
}

static void directive_ok(qs_config *cfg, const char *lines)
{
    char *text = with_lines(lines);
    must_parse(cfg, text, no_env);
    free(text);
}

static void directive_err(const char *lines, const char *expected)
{
    char *text = with_lines(lines);
    must_fail(text, no_env, expected);
    free(text);
}

static const char *keys_env[] = {"MERCURE_PUBLISHER_JWT_KEY", "!ChangeMe!",
                                 "MERCURE_SUBSCRIBER_JWT_KEY", "!ChangeMe!", NULL};

/*-------- Official Caddyfiles --------*/

/* The reference's 0.x Caddyfile, as shipped in the Docker image. */
static const char official_caddyfile[] =
    "# Learn how to configure the Mercure.rocks Hub on https://mercure.rocks/docs/hub/config\n"
    "{\n"
    "\t{$GLOBAL_OPTIONS}\n"
    "}\n"
    "\n"
    "{$CADDY_EXTRA_CONFIG}\n"
    "\n"
    "{$SERVER_NAME:localhost} {\n"
    "\tlog {\n"
    "\t\tformat filter {\n"
    "\t\t\twrap console\n"
    "\t\t\tfields {\n"
    "\t\t\t\turi query {\n"
    "\t\t\t\t\treplace authorization REDACTED\n"
    "\t\t\t\t}\n"
    "\t\t\t}\n"
    "\t\t}\n"
    "\t}\n"
    "\n"
    "\tencode zstd gzip\n"
    "\n"
    "\tmercure {\n"
    "\t\t# Publisher JWT key\n"
    "\t\tpublisher_jwt {env.MERCURE_PUBLISHER_JWT_KEY} {env.MERCURE_PUBLISHER_JWT_ALG}\n"
    "\t\t# Subscriber JWT key\n"
    "\t\tsubscriber_jwt {env.MERCURE_SUBSCRIBER_JWT_KEY} {env.MERCURE_SUBSCRIBER_JWT_ALG}\n"
    "\t\t# Extra directives\n"
    "\t\t{$MERCURE_EXTRA_DIRECTIVES}\n"
    "\t}\n"
    "\n"
    "\t{$CADDY_SERVER_EXTRA_DIRECTIVES}\n"
    "\n"
    "\theader / Content-Type \"text/html; charset=utf-8\"\n"
    "\trespond / `<!DOCTYPE html>\n"
    "<html lang=en>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"robots\" content=\"noindex\">\n"
    "<title>Welcome to Mercure</title>\n"
    "<h1>Welcome to Mercure</h1>\n"
    "<p>The URL of your hub is <code>/.well-known/mercure</code>.\n"
    "Read the documentation on <a href=\"https://mercure.rocks\">Mercure.rocks, real-time apps "
    "made easy</a>.`\n"
    "\trespond /robots.txt `User-agent: *\n"
    "Disallow: /`\n"
    "\trespond /healthz 200\n"
    "\trespond \"Not Found\" 404\n"
    "}\n";

/* The 0.x dev.Caddyfile: permissive settings and the UI redirect. */
static const char dev_caddyfile[] =
    "# Learn how to configure the Mercure.rocks Hub on https://mercure.rocks/docs/hub/config\n"
    "{\n"
    "\t{$GLOBAL_OPTIONS}\n"
    "}\n"
    "\n"
    "{$CADDY_EXTRA_CONFIG}\n"
    "\n"
    "{$SERVER_NAME:localhost} {\n"
    "\tlog {\n"
    "\t\tformat filter {\n"
    "\t\t\twrap console\n"
    "\t\t\tfields {\n"
    "\t\t\t\turi query {\n"
    "\t\t\t\t\treplace authorization REDACTED\n"
    "\t\t\t\t}\n"
    "\t\t\t}\n"
    "\t\t}\n"
    "\t}\n"
    "\n"
    "\tencode zstd gzip\n"
    "\n"
    "\tmercure {\n"
    "\t\t# Publisher JWT key\n"
    "\t\tpublisher_jwt {env.MERCURE_PUBLISHER_JWT_KEY} {env.MERCURE_PUBLISHER_JWT_ALG}\n"
    "\t\t# Subscriber JWT key\n"
    "\t\tsubscriber_jwt {env.MERCURE_SUBSCRIBER_JWT_KEY} {env.MERCURE_SUBSCRIBER_JWT_ALG}\n"
    "\t\t# Permissive configuration for the development environment\n"
    "\t\tcors_origins *\n"
    "\t\tpublish_origins *\n"
    "\t\tdemo\n"
    "\t\tanonymous\n"
    "\t\tsubscriptions\n"
    "\t\t# Extra directives\n"
    "\t\t{$MERCURE_EXTRA_DIRECTIVES}\n"
    "\t}\n"
    "\n"
    "\t{$CADDY_SERVER_EXTRA_DIRECTIVES}\n"
    "\n"
    "\tredir / /.well-known/mercure/ui/\n"
    "\n"
    "\trespond /healthz 200\n"
    "\trespond /robots.txt `User-agent: *\n"
    "\tDisallow: /`\n"
    "\trespond \"Not Found\" 404\n"
    "}\n";

TEST(official_caddyfile)
{
    qs_config cfg;
    must_parse(&cfg, official_caddyfile, keys_env);
    ASSERT_EQ_STR("localhost", cfg.site_address);
    ASSERT(cfg.listen_host == NULL);
    ASSERT_EQ_INT(80, cfg.listen_port);
    ASSERT_EQ_STR("!ChangeMe!", cfg.publisher_key);
    ASSERT(cfg.publisher_alg == NULL);
    ASSERT_EQ_STR("!ChangeMe!", cfg.subscriber_key);
    ASSERT(cfg.subscriber_alg == NULL);
    ASSERT(!cfg.anonymous && !cfg.demo && !cfg.subscriptions && !cfg.debug);
    ASSERT_EQ_STR("mercureAuthorization", cfg.cookie_name);
    ASSERT_EQ_STR("default", cfg.hub_name);
    ASSERT(cfg.transport.name == NULL && cfg.transport.url == NULL);
    qs_config_free(&cfg);
}

TEST(official_caddyfile_with_docker_env)
{
    qs_config cfg;
    const char **env =
        ENV("SERVER_NAME", ":80", "GLOBAL_OPTIONS", "debug\nadmin 0.0.0.0:2019",
            "MERCURE_PUBLISHER_JWT_KEY", "pk", "MERCURE_PUBLISHER_JWT_ALG", "HS512",
            "MERCURE_SUBSCRIBER_JWT_KEY", "sk", "MERCURE_SUBSCRIBER_JWT_ALG", "",
            "MERCURE_EXTRA_DIRECTIVES",
            "cors_origins https://a.example https://b.example\nsubscriptions",
            "CADDY_SERVER_EXTRA_DIRECTIVES", "encode gzip", "MERCURE_LICENSE", "ignored");
    must_parse(&cfg, official_caddyfile, env);
    ASSERT_EQ_STR(":80", cfg.site_address);
    ASSERT(cfg.listen_host == NULL);
    ASSERT_EQ_INT(80, cfg.listen_port);
    ASSERT(cfg.debug);
    ASSERT_EQ_STR("pk", cfg.publisher_key);
    ASSERT_EQ_STR("HS512", cfg.publisher_alg);
    ASSERT_EQ_STR("sk", cfg.subscriber_key);
    ASSERT(cfg.subscriber_alg == NULL);
    ASSERT_EQ_INT(2, cfg.n_cors_origins);
    ASSERT_EQ_STR("https://a.example", cfg.cors_origins[0]);
    ASSERT_EQ_STR("https://b.example", cfg.cors_origins[1]);
    ASSERT(cfg.subscriptions);
    qs_config_free(&cfg);
}

TEST(dev_caddyfile)
{
    qs_config cfg;
    must_parse(&cfg, dev_caddyfile, ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "SERVER_NAME", ":3000"));
    ASSERT_EQ_INT(3000, cfg.listen_port);
    ASSERT(cfg.anonymous && cfg.demo && cfg.subscriptions);
    ASSERT_EQ_INT(1, cfg.n_cors_origins);
    ASSERT_EQ_STR("*", cfg.cors_origins[0]);
    ASSERT_EQ_INT(1, cfg.n_publish_origins);
    ASSERT_EQ_STR("*", cfg.publish_origins[0]);
    ASSERT(cfg.subscriber_key == NULL); /* anonymous: no subscriber key needed */
    qs_config_free(&cfg);
}

/* An older official Caddyfile: transport_url with a {$VAR:default}, skip_log lines. */
TEST(official_caddyfile_with_transport_url_and_skip_log)
{
    static const char text[] =
        "{\n"
        "\t{$GLOBAL_OPTIONS}\n"
        "}\n"
        "{$SERVER_NAME:localhost} {\n"
        "\tmercure {\n"
        "\t\t# Transport to use (default to Bolt)\n"
        "\t\ttransport_url {$MERCURE_TRANSPORT_URL:bolt://mercure.db}\n"
        "\t\tpublisher_jwt {env.MERCURE_PUBLISHER_JWT_KEY} {env.MERCURE_PUBLISHER_JWT_ALG}\n"
        "\t\tsubscriber_jwt {env.MERCURE_SUBSCRIBER_JWT_KEY} {env.MERCURE_SUBSCRIBER_JWT_ALG}\n"
        "\t}\n"
        "\tskip_log /robots.txt\n"
        "\tskip_log /healthz\n"
        "}\n";
    qs_config cfg;
    must_parse(&cfg, text, keys_env);
    ASSERT_EQ_STR("bolt://mercure.db", cfg.transport.url);
    ASSERT_EQ_STR("Caddyfile", cfg.transport.source);
    ASSERT_EQ_INT(7, cfg.transport.line);
    qs_config_free(&cfg);

    must_parse(&cfg, text,
               ENV("MERCURE_PUBLISHER_JWT_KEY", "a", "MERCURE_SUBSCRIBER_JWT_KEY", "b",
                   "MERCURE_TRANSPORT_URL", "bolt:///data/x.db?size=10"));
    ASSERT_EQ_STR("bolt:///data/x.db?size=10", cfg.transport.url);
    ASSERT_EQ_STR("Caddyfile", cfg.transport.source);
    qs_config_free(&cfg);
}

/*-------- The built-in default and the environment --------*/

TEST(default_config_with_env)
{
    qs_config cfg;
    char *err = NULL;
    const char **env =
        ENV("SERVER_NAME", "http://127.0.0.1:8080", "MERCURE_PUBLISHER_JWT_KEY", "pub",
            "MERCURE_PUBLISHER_JWT_ALG", "RS256", "MERCURE_SUBSCRIBER_JWT_KEY", "sub",
            "MERCURE_SUBSCRIBER_JWT_ALG", "ES384");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT(err == NULL);
    ASSERT_EQ_STR("http://127.0.0.1:8080", cfg.site_address);
    ASSERT_EQ_STR("127.0.0.1", cfg.listen_host);
    ASSERT_EQ_INT(8080, cfg.listen_port);
    ASSERT_EQ_STR("pub", cfg.publisher_key);
    ASSERT_EQ_STR("RS256", cfg.publisher_alg);
    ASSERT_EQ_STR("sub", cfg.subscriber_key);
    ASSERT_EQ_STR("ES384", cfg.subscriber_alg);
    ASSERT_EQ_INT(40000, cfg.heartbeat_ms);
    qs_config_free(&cfg);
}

TEST(default_config_defaults)
{
    qs_config cfg;
    char *err = NULL;
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)keys_env, &err));
    ASSERT_EQ_STR("localhost", cfg.site_address);
    ASSERT(cfg.listen_host == NULL);
    ASSERT_EQ_INT(80, cfg.listen_port);
    ASSERT(!cfg.anonymous && !cfg.subscriptions && !cfg.ui && !cfg.demo && !cfg.debug);
    ASSERT_EQ_INT(0, cfg.n_cors_origins);
    ASSERT_EQ_INT(0, cfg.n_publish_origins);
    ASSERT_EQ_STR("mercureAuthorization", cfg.cookie_name);
    ASSERT_EQ_STR("default", cfg.hub_name);
    ASSERT_EQ_INT(0, cfg.protocol_version_compatibility);
    ASSERT_EQ_INT(40000, cfg.heartbeat_ms);
    ASSERT_EQ_INT(600000, cfg.write_timeout_ms);
    ASSERT_EQ_INT(5000, cfg.dispatch_timeout_ms);
    ASSERT(cfg.transport.name == NULL && cfg.transport.url == NULL);
    ASSERT_EQ_INT(0, cfg.transport.n_options);
    ASSERT_EQ_INT(100000, cfg.topic_selector_cache);
    ASSERT_EQ_INT(100000, cfg.subscriber_list_cache_size);
    ASSERT_EQ_INT(0, cfg.workers);
    ASSERT_EQ_INT(1048576, cfg.max_request_body_size);
    ASSERT_EQ_INT(65536, cfg.max_header_size);
    ASSERT_EQ_INT(1000, cfg.max_topics);
    ASSERT_EQ_INT(0, cfg.max_connections);
    ASSERT_EQ_INT(1000, cfg.subscriber_queue_size);
    ASSERT_EQ_INT(16777216, cfg.subscriber_queue_bytes);
    ASSERT_EQ_INT(30000, cfg.request_timeout_ms);
    ASSERT_EQ_INT(120000, cfg.idle_timeout_ms);
    ASSERT_EQ_INT(4096, cfg.max_selector_length);
    ASSERT_EQ_INT(64, cfg.max_selector_expressions);
    ASSERT_EQ_INT(1024, cfg.max_selector_states);
    ASSERT_EQ_INT(4096, cfg.max_subscriber_states);
    qs_config_free(&cfg);
}

TEST(defaults_function_and_free_reset)
{
    qs_config cfg;
    qs_config_defaults(&cfg);
    ASSERT(cfg.cookie_name == NULL && cfg.hub_name == NULL && cfg.site_address == NULL);
    ASSERT_EQ_INT(40000, cfg.heartbeat_ms);
    ASSERT_EQ_INT(1000, cfg.max_topics);
    qs_config_free(&cfg); /* freeing defaults is harmless */
    directive_ok(&cfg, "heartbeat 1s");
    qs_config_free(&cfg);
    ASSERT(cfg.publisher_key == NULL);
    ASSERT_EQ_INT(40000, cfg.heartbeat_ms);
    qs_config_free(&cfg); /* twice is harmless too */
}

TEST(default_config_without_keys_names_the_variable)
{
    qs_config cfg;
    char *err = NULL;
    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv, (void *)no_env, &err));
    ASSERT_EQ_STR("built-in default:9: publisher_jwt: a JWT key for publishers must be provided "
                  "(MERCURE_PUBLISHER_JWT_KEY)",
                  err);
    free(err);
    qs_config_free(&cfg);

    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv,
                                             (void *)ENV("MERCURE_PUBLISHER_JWT_KEY", "x"), &err));
    ASSERT_EQ_STR("built-in default:10: subscriber_jwt: a JWT key for subscribers must be "
                  "provided (MERCURE_SUBSCRIBER_JWT_KEY)",
                  err);
    free(err);
    qs_config_free(&cfg);
}

TEST(extra_directives_several_lines)
{
    qs_config cfg;
    char *err = NULL;
    const char **env = ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_EXTRA_DIRECTIVES",
                           "anonymous\ncors_origins *\nheartbeat 10ms");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT(cfg.anonymous);
    ASSERT_EQ_INT(1, cfg.n_cors_origins);
    ASSERT_EQ_STR("*", cfg.cors_origins[0]);
    ASSERT_EQ_INT(10, cfg.heartbeat_ms);
    ASSERT(cfg.subscriber_key == NULL);
    qs_config_free(&cfg);
}

TEST(extra_directives_errors_name_the_variable_and_its_line)
{
    qs_config cfg;
    char *err = NULL;
    const char **env = ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_SUBSCRIBER_JWT_KEY", "k",
                           "MERCURE_EXTRA_DIRECTIVES", "anonymous\nfoo bar");
    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("MERCURE_EXTRA_DIRECTIVES:2: unknown directive \"foo\"", err);
    free(err);
    qs_config_free(&cfg);

    env = ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_SUBSCRIBER_JWT_KEY", "k",
              "MERCURE_EXTRA_DIRECTIVES", "\n\n  heartbeat   4O");
    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("MERCURE_EXTRA_DIRECTIVES:3: heartbeat: invalid duration \"4O\"", err);
    free(err);
    qs_config_free(&cfg);

    /* Mercure 1.0's dev start gets a hint. */
    env = ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_SUBSCRIBER_JWT_KEY", "k",
              "MERCURE_EXTRA_DIRECTIVES", "playground");
    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("MERCURE_EXTRA_DIRECTIVES:1: unknown directive \"playground\" (a Mercure 1.0 "
                  "directive; Quicksilver implements the 0.x configuration)",
                  err);
    free(err);
    qs_config_free(&cfg);
}

TEST(file_lines_stay_right_after_a_multiline_variable)
{
    static const char text[] = "{$SERVER_NAME:localhost} {\n" /* 1 */
                               "\tmercure {\n"                /* 2 */
                               "\t\t{$EXTRA}\n"               /* 3 */
                               "\t\tpublisher_jwt k\n"        /* 4 */
                               "\t\tbogus\n"                  /* 5 */
                               "\t}\n"
                               "}\n";
    must_fail(text, ENV("EXTRA", "anonymous\nsubscriptions\nui\n"),
              "Caddyfile:5: unknown directive \"bogus\"");
    must_fail(text, no_env, "Caddyfile:5: unknown directive \"bogus\"");
    /* A variable in the middle of a line: the rest of the line is still the file's. */
    must_fail(":80 {\n mercure {\n  publisher_jwt {$K} HS999\n }\n}\n", ENV("K", "key"),
              "Caddyfile:3: publisher_jwt: unsupported algorithm \"HS999\"");
    must_fail(":80 {\n mercure {\n  publisher_jwt {$K}\n }\n}\n", ENV("K", "key\nbogus"),
              "K:2: unknown directive \"bogus\"");
}

TEST(pem_key_with_newlines_stays_one_token)
{
    static const char pem[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexample+key+material==\n"
                              "second line with spaces\n"
                              "-----END PUBLIC KEY-----\n";
    qs_config cfg;
    char *err = NULL;
    const char **env = ENV("MERCURE_PUBLISHER_JWT_KEY", pem, "MERCURE_PUBLISHER_JWT_ALG", "ES256",
                           "MERCURE_SUBSCRIBER_JWT_KEY", pem);
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR(pem, cfg.publisher_key);
    ASSERT_EQ_STR("ES256", cfg.publisher_alg);
    ASSERT_EQ_STR(pem, cfg.subscriber_key);
    ASSERT(cfg.subscriber_alg == NULL);
    qs_config_free(&cfg);
}

TEST(env_placeholder_inside_a_token)
{
    qs_config cfg;
    must_parse(&cfg,
               ":80 {\n mercure {\n  publisher_jwt k\n  anonymous\n"
               "  cookie_name pre_{env.SUFFIX}_post\n  name {env.UNSET}x\n }\n}\n",
               ENV("SUFFIX", "mid"));
    ASSERT_EQ_STR("pre_mid_post", cfg.cookie_name);
    ASSERT_EQ_STR("x", cfg.hub_name);
    qs_config_free(&cfg);
    /* An unterminated placeholder is literal text. */
    must_parse(&cfg, ":80 {\n mercure {\n  publisher_jwt k{env.X\n  anonymous\n }\n}\n",
               ENV("X", "no"));
    ASSERT_EQ_STR("k{env.X", cfg.publisher_key);
    qs_config_free(&cfg);
}

TEST(var_with_default)
{
    static const char text[] =
        "{$ADDR:127.0.0.1:4000} {\n mercure {\n  publisher_jwt {$PK:fallback}\n  anonymous\n"
        "  {$MORE:}\n }\n}\n";
    qs_config cfg;
    must_parse(&cfg, text, no_env);
    ASSERT_EQ_STR("127.0.0.1:4000", cfg.site_address);
    ASSERT_EQ_STR("127.0.0.1", cfg.listen_host);
    ASSERT_EQ_INT(4000, cfg.listen_port);
    ASSERT_EQ_STR("fallback", cfg.publisher_key);
    qs_config_free(&cfg);

    must_parse(&cfg, text, ENV("ADDR", ":5000", "PK", "set", "MORE", "ui"));
    ASSERT_EQ_STR(":5000", cfg.site_address);
    ASSERT_EQ_STR("set", cfg.publisher_key);
    ASSERT(cfg.ui);
    qs_config_free(&cfg);

    /* Set but empty is not unset: Caddy uses the default only when the variable is unset. */
    must_fail(text, ENV("PK", ""), "Caddyfile:3: publisher_jwt: missing key");

    /* `{$}` is not a variable; a `{$` without '}' is left alone. */
    must_parse(&cfg, ":80 {\n mercure {\n  publisher_jwt a{$}b\n  anonymous\n }\n}\n", no_env);
    ASSERT_EQ_STR("a{$}b", cfg.publisher_key);
    qs_config_free(&cfg);
    must_parse(&cfg, ":80 {\n mercure {\n  publisher_jwt k\n  anonymous\n }\n}\n# {$B", no_env);
    ASSERT_EQ_STR("k", cfg.publisher_key);
    qs_config_free(&cfg);
}

/*-------- Tokens: comments, quotes, heredocs --------*/

TEST(comments_and_quoting)
{
    qs_config cfg;
    must_parse(&cfg,
               "# comment\n"
               ":80 { # trailing comment\n"
               "\tmercure {\n"
               "\t\tpublisher_jwt \"a key with spaces and \\\"quotes\\\"\" HS256 # comment\n"
               "\t\tsubscriber_jwt `raw \\n \"key\"`\n"
               "\t\tcookie_name a#b\n"
               "\t\tname \"multi\n"
               "line\"\n"
               "\t\tcors_origins \"a\\b\" x\n"
               "\t\t#heartbeat bad\n"
               "\t}\n"
               "}\n",
               no_env);
    ASSERT_EQ_STR("a key with spaces and \"quotes\"", cfg.publisher_key);
    ASSERT_EQ_STR("HS256", cfg.publisher_alg);
    ASSERT_EQ_STR("raw \\n \"key\"", cfg.subscriber_key);
    ASSERT_EQ_STR("a#b", cfg.cookie_name);
    ASSERT_EQ_STR("multi\nline", cfg.hub_name);
    ASSERT_EQ_INT(2, cfg.n_cors_origins);
    ASSERT_EQ_STR("a\\b", cfg.cors_origins[0]);
    ASSERT_EQ_INT(40000, cfg.heartbeat_ms);
    qs_config_free(&cfg);
}

TEST(quoted_braces_are_values)
{
    qs_config cfg;
    must_parse(&cfg, ":80 {\n mercure {\n  publisher_jwt \"{\"\n  subscriber_jwt \"}\"\n }\n}\n",
               no_env);
    ASSERT_EQ_STR("{", cfg.publisher_key);
    ASSERT_EQ_STR("}", cfg.subscriber_key);
    qs_config_free(&cfg);
}

TEST(argument_after_a_multiline_token_is_on_the_same_line)
{
    qs_config cfg;
    must_parse(&cfg, ":80 {\n mercure {\n  publisher_jwt \"a\nb\" RS512\n  anonymous\n }\n}\n",
               no_env);
    ASSERT_EQ_STR("a\nb", cfg.publisher_key);
    ASSERT_EQ_STR("RS512", cfg.publisher_alg);
    qs_config_free(&cfg);
}

TEST(heredoc)
{
    qs_config cfg;
    must_parse(&cfg,
               ":80 {\n"
               "\tmercure {\n"
               "\t\tpublisher_jwt <<PEM\n"
               "\t\t\t-----BEGIN PUBLIC KEY-----\n"
               "\t\t\t  indented\n"
               "\n"
               "\t\t\t-----END PUBLIC KEY-----\n"
               "\t\t\tPEM RS256\n"
               "\t\tanonymous\n"
               "\t}\n"
               "\trespond <<HTML\n"
               "\t\t<html>\n"
               "\t\tHTML 200\n"
               "}\n",
               no_env);
    ASSERT_EQ_STR("-----BEGIN PUBLIC KEY-----\n  indented\n\n-----END PUBLIC KEY-----",
                  cfg.publisher_key);
    ASSERT_EQ_STR("RS256", cfg.publisher_alg);
    ASSERT(cfg.anonymous);
    qs_config_free(&cfg);
    must_fail(":80 {\n mercure {\n  publisher_jwt <<EOF\n  abc\n", no_env,
              "Caddyfile:3: unterminated heredoc: no closing EOF marker");
    must_fail(":80 {\n mercure {\n  publisher_jwt <<EOF\nabc\n  EOF\n }\n}\n", no_env,
              "Caddyfile:3: heredoc line does not start with the indentation of the closing "
              "marker");
    /* `<<` not followed by a marker and a newline is an ordinary token. */
    must_parse(&cfg, ":80 {\n mercure {\n  publisher_jwt <<x.y\n  anonymous\n }\n}\n", no_env);
    ASSERT_EQ_STR("<<x.y", cfg.publisher_key);
    qs_config_free(&cfg);
}

TEST(lexer_errors)
{
    must_fail(":80 {\n mercure {\n  publisher_jwt \"abc\n", no_env,
              "Caddyfile:3: unterminated quoted string");
    must_fail(":80 {\n mercure {\n  publisher_jwt `abc\n", no_env,
              "Caddyfile:3: unterminated backtick string");
    static const char nul[] = ":80 {\n mercure {\n\0 }\n}\n";
    qs_config cfg;
    char *err = NULL;
    ASSERT_EQ_INT(-1, qs_config_parse(&cfg, nul, sizeof(nul) - 1, "Caddyfile", fake_getenv,
                                      (void *)no_env, &err));
    ASSERT_EQ_STR("Caddyfile:3: invalid NUL byte", err);
    free(err);
    qs_config_free(&cfg);
}

/*-------- Structure --------*/

TEST(block_structure_errors)
{
    must_fail(":80 {\n mercure {\n  anonymous\n", no_env,
              "Caddyfile:2: '{' is never closed: missing '}'");
    must_fail(":80 {\n mercure { anonymous\n }\n}\n", no_env,
              "Caddyfile:2: a block's content must start on the line after '{'; found "
              "\"anonymous\"");
    must_fail(":80 {\n mercure {\n  anonymous\n } ui\n}\n", no_env,
              "Caddyfile:4: unexpected token after '}' on the same line \"ui\"");
    must_fail(":80 {\n mercure\n {\n  anonymous\n }\n}\n", no_env,
              "Caddyfile:3: unexpected '{': a block must open at the end of its directive's "
              "line");
    must_fail(":80 {\n mercure {\n }\n}\n}\n", no_env,
              "Caddyfile:5: unexpected token at the top level \"}\"");
    must_fail("", no_env, "Caddyfile: empty configuration: no site block and no mercure block");
    must_fail("# only a comment\n", no_env,
              "Caddyfile: empty configuration: no site block and no mercure block");
    must_fail("{\n debug\n}\n", no_env, "Caddyfile: no site block and no mercure block");
    must_fail(":80 {\n encode gzip\n}\n", no_env, "Caddyfile:1: no mercure block in site \":80\"");
    must_fail(":80 {\n mercure {\n  anonymous\n  publisher_jwt k\n }\n mercure {\n }\n}\n", no_env,
              "Caddyfile:6: mercure: more than one mercure block (the first is at "
              "Caddyfile:2)");
    must_fail(":80 {\n mercure {\n  publisher_jwt k\n  anonymous\n }\n}\n:81 {\n}\n", no_env,
              "Caddyfile:7: only one site block is supported: list every address before the "
              "first block's '{' (\":80, :443 {\"); found another site \":81\"");
    must_fail("(snip) {\n encode gzip\n}\n:80 {\n mercure {\n }\n}\n", no_env,
              "Caddyfile:1: snippets and named routes are not supported \"(snip)\"");
    must_fail(":80 {\n reverse_proxy localhost:9000\n}\n", no_env,
              "Caddyfile:2: unknown site directive \"reverse_proxy\"");
    must_fail(":80 {\n mercure /hub {\n }\n}\n", no_env,
              "Caddyfile:2: mercure: matchers and arguments are not supported \"/hub\"");
    must_fail(":80 {\n mercure {\n  anonymous {\n  }\n }\n}\n", no_env,
              "Caddyfile:3: anonymous: unexpected block");
}

TEST(deep_nesting_is_bounded)
{
    qs_buf b = QS_BUF_INIT;
    qs_buf_append_str(&b, ":80 {\n");
    for (int i = 0; i < 100; i++)
        qs_buf_append_str(&b, "route {\n");
    qs_config cfg;
    char *err = NULL;
    ASSERT_EQ_INT(-1, parse_env(&cfg, qs_buf_cstr(&b), no_env, &err));
    ASSERT(strstr(err, "blocks are nested too deeply") != NULL);
    free(err);
    qs_config_free(&cfg);
    qs_buf_free(&b);
}

TEST(global_options)
{
    qs_config cfg;
    must_parse(&cfg,
               "{\n"
               "\tdebug\n"
               "\tadmin 0.0.0.0:2019\n"
               "\tauto_https off\n"
               "\thttp_port 8080\n"
               "\thttps_port 8443\n"
               "\torder mercure after encode\n"
               "\tservers {\n"
               "\t\tmetrics\n"
               "\t\tprotocols h1 h2\n"
               "\t}\n"
               "\tlog {\n"
               "\t\tlevel DEBUG\n"
               "\t}\n"
               "\temail admin@example.com\n"
               "\tlocal_certs\n"
               "\tskip_install_trust\n"
               "\tmetrics\n"
               "\tgrace_period 10s\n"
               "\tshutdown_delay 5s\n"
               "}\n"
               ":80 {\n mercure {\n  publisher_jwt k\n  anonymous\n }\n}\n",
               no_env);
    ASSERT(cfg.debug);
    qs_config_free(&cfg);
    must_fail("{\n\tstorage file_system /data\n}\n:80 {\n mercure {\n }\n}\n", no_env,
              "Caddyfile:2: unknown global option \"storage\"");
    must_fail("{\n\tdebug on\n}\n", no_env, "Caddyfile:2: debug: takes no value \"on\"");
    must_fail("{ debug\n}\n", no_env,
              "Caddyfile:1: a block's content must start on the line after '{'; found "
              "\"debug\"");
    /* An empty global block (GLOBAL_OPTIONS unset) is fine; so is an empty `{ }`. */
    must_parse(&cfg, "{ }\n:80 {\n mercure {\n  publisher_jwt k\n  anonymous\n }\n}\n", no_env);
    ASSERT(!cfg.debug);
    qs_config_free(&cfg);
    /* GLOBAL_OPTIONS errors name the variable. */
    must_fail("{\n\t{$GLOBAL_OPTIONS}\n}\n:80 {\n}\n", ENV("GLOBAL_OPTIONS", "debug\nfrobnicate"),
              "GLOBAL_OPTIONS:2: unknown global option \"frobnicate\"");
}

TEST(site_directives_are_ignored_and_mercure_found_in_routes)
{
    qs_config cfg;
    must_parse(&cfg,
               "example.com {\n"
               "\tencode zstd gzip\n"
               "\ttls internal\n"
               "\tfile_server\n"
               "\theader / X-Foo bar\n"
               "\trequest_body {\n"
               "\t\tmax_size 10MB\n"
               "\t}\n"
               "\t@hub path /.well-known/mercure*\n"
               "\t@post {\n"
               "\t\tmethod POST\n"
               "\t}\n"
               "\tredir / /.well-known/mercure/ui/\n"
               "\thandle /foo {\n"
               "\t\trespond 404\n"
               "\t}\n"
               "\troute {\n"
               "\t\thandle_path /x/* {\n"
               "\t\t\tmercure {\n"
               "\t\t\t\tpublisher_jwt k\n"
               "\t\t\t\tanonymous\n"
               "\t\t\t}\n"
               "\t\t}\n"
               "\t}\n"
               "\tlog_skip /healthz\n"
               "}\n",
               no_env);
    ASSERT_EQ_STR("k", cfg.publisher_key);
    ASSERT(cfg.anonymous);
    ASSERT_EQ_STR("example.com", cfg.site_address);
    qs_config_free(&cfg);
}

TEST(site_without_braces)
{
    qs_config cfg;
    must_parse(&cfg, ":9000\nencode gzip\nmercure {\n publisher_jwt k\n anonymous\n}\n", no_env);
    ASSERT_EQ_INT(9000, cfg.listen_port);
    ASSERT(cfg.anonymous);
    qs_config_free(&cfg);
    must_fail(":9000\nmercure {\n anonymous\n}\n}\n", no_env, "Caddyfile:5: unexpected '}'");
}

TEST(bare_mercure_block)
{
    static const char text[] = "mercure {\n\tpublisher_jwt k\n\tanonymous\n}\n";
    qs_config cfg;
    must_parse(&cfg, text, no_env);
    ASSERT_EQ_STR("localhost", cfg.site_address);
    ASSERT(cfg.listen_host == NULL);
    ASSERT_EQ_INT(80, cfg.listen_port);
    ASSERT(cfg.anonymous);
    qs_config_free(&cfg);

    must_parse(&cfg, text, ENV("SERVER_NAME", "localhost:3000"));
    ASSERT_EQ_STR("localhost:3000", cfg.site_address);
    ASSERT_EQ_STR("localhost", cfg.listen_host);
    ASSERT_EQ_INT(3000, cfg.listen_port);
    qs_config_free(&cfg);

    /* There is no site block to hold a tls directive. */
    must_fail(text, ENV("SERVER_NAME", "https://example.com"),
              "SERVER_NAME:1: site address: https:// is served over TLS, which needs a "
              "certificate: add tls CERT_FILE KEY_FILE or tls internal to the site block "
              "(Quicksilver cannot get certificates from ACME) \"https://example.com\"");
    must_parse(&cfg, text, ENV("SERVER_NAME", "a:1, b:2"));
    ASSERT_EQ_INT(2, cfg.n_listeners);
    ASSERT_EQ_STR("a:1", cfg.listeners[0].address);
    ASSERT_EQ_STR("b:2", cfg.listeners[1].address);
    ASSERT_EQ_INT(2, cfg.listeners[1].port);
    ASSERT_EQ_STR("SERVER_NAME", cfg.listeners[1].source);
    ASSERT_EQ_INT(1, cfg.listeners[1].line);
    qs_config_free(&cfg);
    must_fail(text, ENV("SERVER_NAME", " , "), "SERVER_NAME:1: site address: empty site address");

    /* With a global block in front. */
    must_parse(&cfg, "{\n debug\n}\nmercure {\n publisher_jwt k\n anonymous\n}\n", no_env);
    ASSERT(cfg.debug && cfg.anonymous);
    qs_config_free(&cfg);
}

TEST(site_named_mercure_is_a_site)
{
    /* SERVER_NAME=mercure (a Compose service name) with the default Caddyfile. */
    qs_config cfg;
    char *err = NULL;
    const char **env = ENV("SERVER_NAME", "mercure", "MERCURE_PUBLISHER_JWT_KEY", "k",
                           "MERCURE_EXTRA_DIRECTIVES", "anonymous");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("mercure", cfg.site_address);
    ASSERT(cfg.listen_host == NULL);
    ASSERT_EQ_INT(80, cfg.listen_port);
    ASSERT(cfg.anonymous);
    qs_config_free(&cfg);
}

/*-------- Site addresses --------*/

TEST(site_address_forms)
{
    static const struct {
        const char *addr;
        const char *host; /* NULL: every interface */
        int port;
    } cases[] = {
        {":3000", NULL, 3000},
        {"localhost", NULL, 80},
        {"example.com", NULL, 80},
        {"localhost:3000", "localhost", 3000},
        {"127.0.0.1:3000", "127.0.0.1", 3000},
        {"127.0.0.1", "127.0.0.1", 80},
        {"[::1]:3000", "::1", 3000},
        {"[::]:8080", "::", 8080},
        {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
        {"http://localhost:3000", "localhost", 3000},
        {"http://:3000", NULL, 3000},
        {"http://example.com", NULL, 80},
        {"http://example.com:8080", NULL, 8080},
        {"http://0.0.0.0:8080/", "0.0.0.0", 8080},
        {"HTTP://localhost", NULL, 80},
        {"*.example.com", NULL, 80},
        {":0", NULL, 0},
        {":65535", NULL, 65535},
        {":80,", NULL, 80},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        qs_config cfg;
        char *text = qs_xasprintf("%s {\n mercure {\n  publisher_jwt k\n  anonymous\n }\n}\n",
                                  cases[i].addr);
        must_parse(&cfg, text, no_env);
        if (cases[i].host)
            ASSERT_EQ_STR(cases[i].host, cfg.listen_host);
        else if (cfg.listen_host)
            qs_test_fail(__FILE__, __LINE__, "%s: expected every interface, got %s", cases[i].addr,
                         cfg.listen_host);
        ASSERT_EQ_INT(cases[i].port, cfg.listen_port);
        /* One plain listener, the same as the old fields. */
        ASSERT_EQ_INT(1, cfg.n_listeners);
        ASSERT(!cfg.listeners[0].tls);
        ASSERT_EQ_INT(cases[i].port, cfg.listeners[0].port);
        ASSERT_EQ_STR(cfg.site_address, cfg.listeners[0].address);
        free(text);
        qs_config_free(&cfg);
    }
}

TEST(site_address_errors)
{
    static const struct {
        const char *addr;
        const char *err;
    } cases[] = {
        {"ws://x", "Caddyfile:1: site address: unsupported scheme (http:// or https://) "
                   "\"ws://x\""},
        {":65536", "Caddyfile:1: site address: invalid port (0 to 65535) \":65536\""},
        {":-1", "Caddyfile:1: site address: invalid port (0 to 65535) \":-1\""},
        {"localhost:", "Caddyfile:1: site address: invalid port (0 to 65535) \"localhost:\""},
        {"localhost:http", "Caddyfile:1: site address: invalid port (0 to 65535) "
                           "\"localhost:http\""},
        {"::1", "Caddyfile:1: site address: IPv6 addresses must be written in brackets \"::1\""},
        {"[::1", "Caddyfile:1: site address: missing ']' in IPv6 address \"[::1\""},
        {"[zz]:80", "Caddyfile:1: site address: invalid IPv6 address \"[zz]:80\""},
        {"[::1]x", "Caddyfile:1: site address: invalid site address \"[::1]x\""},
        {"exa$mple.com", "Caddyfile:1: site address: invalid host name \"exa$mple.com\""},
        {"localhost/path", "Caddyfile:1: site address: paths in site addresses are not "
                           "supported \"localhost/path\""},
        {"\"\"", "Caddyfile:1: site address: empty site address"},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        char *text = qs_xasprintf("%s {\n mercure {\n  publisher_jwt k\n  anonymous\n }\n}\n",
                                  cases[i].addr);
        must_fail(text, no_env, cases[i].err);
        free(text);
    }
    /* Errors from SERVER_NAME name the variable. */
    must_fail("{$SERVER_NAME:localhost} {\n mercure {\n }\n}\n",
              ENV("SERVER_NAME", "localhost:3000 mercure.example.com:x"),
              "SERVER_NAME:1: site address: invalid port (0 to 65535) "
              "\"mercure.example.com:x\"");
}

/*-------- Several addresses, TLS, protocols --------*/

/* A site with these addresses and site-level lines (e.g. "tls c.pem k.pem"). */
static char *site_with(const char *addrs, const char *site_lines)
{
    return qs_xasprintf("%s {\n"
                        "\t%s\n"
                        "\tmercure {\n"
                        "\t\tpublisher_jwt k\n"
                        "\t\tanonymous\n"
                        "\t}\n"
                        "}\n",
                        addrs, site_lines);
}

static void site_ok(qs_config *cfg, const char *addrs, const char *site_lines)
{
    char *text = site_with(addrs, site_lines);
    must_parse(cfg, text, no_env);
    free(text);
}

static void site_err(const char *addrs, const char *site_lines, const char *expected)
{
    char *text = site_with(addrs, site_lines);
    must_fail(text, no_env, expected);
    free(text);
}

static void assert_listener(const qs_config_listener *l, const char *address, const char *host,
                            int port, bool tls)
{
    ASSERT_EQ_STR(address, l->address);
    if (host)
        ASSERT_EQ_STR(host, l->host);
    else if (l->host)
        qs_test_fail(__FILE__, __LINE__, "%s: expected every interface, got %s", address, l->host);
    ASSERT_EQ_INT(port, l->port);
    if (l->tls != tls)
        qs_test_fail(__FILE__, __LINE__, "%s: expected tls=%d", address, tls);
}

TEST(several_site_addresses)
{
    qs_config cfg;
    site_ok(&cfg, ":80, :443", "tls cert.pem key.pem");
    ASSERT_EQ_INT(2, cfg.n_listeners);
    assert_listener(&cfg.listeners[0], ":80", NULL, 80, false);
    assert_listener(&cfg.listeners[1], ":443", NULL, 443, true);
    ASSERT_EQ_STR("Caddyfile", cfg.listeners[1].source);
    ASSERT_EQ_INT(1, cfg.listeners[1].line);
    /* The old fields describe the first listener. */
    ASSERT_EQ_STR(":80", cfg.site_address);
    ASSERT(cfg.listen_host == NULL);
    ASSERT_EQ_INT(80, cfg.listen_port);
    qs_config_free(&cfg);

    /* Space-separated, continued on the next line after a comma, mixed forms. */
    must_parse(&cfg,
               "127.0.0.1:8080 https://example.com:8443,\n"
               "  [::1]:9000 {\n"
               " tls internal\n"
               " mercure {\n  publisher_jwt k\n  anonymous\n }\n}\n",
               no_env);
    ASSERT_EQ_INT(3, cfg.n_listeners);
    assert_listener(&cfg.listeners[0], "127.0.0.1:8080", "127.0.0.1", 8080, true);
    assert_listener(&cfg.listeners[1], "https://example.com:8443", NULL, 8443, true);
    assert_listener(&cfg.listeners[2], "[::1]:9000", "::1", 9000, true);
    ASSERT_EQ_INT(1, cfg.listeners[1].line);
    ASSERT_EQ_INT(2, cfg.listeners[2].line);
    ASSERT_EQ_STR("127.0.0.1", cfg.listen_host);
    ASSERT_EQ_INT(8080, cfg.listen_port);
    qs_config_free(&cfg);

    /* Several names on one port share a bind: not duplicates. */
    site_ok(&cfg, "a.example.com, b.example.com", "");
    ASSERT_EQ_INT(2, cfg.n_listeners);
    assert_listener(&cfg.listeners[0], "a.example.com", NULL, 80, false);
    assert_listener(&cfg.listeners[1], "b.example.com", NULL, 80, false);
    qs_config_free(&cfg);

    /* Port 0 picks a free port for each listener: never a duplicate or a conflict. */
    site_ok(&cfg, "127.0.0.1:0 http://127.0.0.1:0 https://127.0.0.1:0", "tls internal");
    ASSERT_EQ_INT(3, cfg.n_listeners);
    assert_listener(&cfg.listeners[0], "127.0.0.1:0", "127.0.0.1", 0, true);
    assert_listener(&cfg.listeners[1], "http://127.0.0.1:0", "127.0.0.1", 0, false);
    assert_listener(&cfg.listeners[2], "https://127.0.0.1:0", "127.0.0.1", 0, true);
    qs_config_free(&cfg);
}

TEST(several_site_addresses_from_server_name)
{
    qs_config cfg;
    char *err = NULL;
    const char **env =
        ENV("SERVER_NAME", ":80 :443", "MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_EXTRA_DIRECTIVES",
            "anonymous", "CADDY_SERVER_EXTRA_DIRECTIVES", "tls /etc/certs/c.pem /etc/certs/k.pem");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_INT(2, cfg.n_listeners);
    assert_listener(&cfg.listeners[0], ":80", NULL, 80, false);
    assert_listener(&cfg.listeners[1], ":443", NULL, 443, true);
    ASSERT_EQ_STR("SERVER_NAME", cfg.listeners[0].source);
    ASSERT_EQ_INT(1, cfg.listeners[0].line);
    ASSERT_EQ_STR("SERVER_NAME", cfg.listeners[1].source);
    ASSERT_EQ_STR("/etc/certs/c.pem", cfg.tls_cert_file);
    ASSERT_EQ_STR("/etc/certs/k.pem", cfg.tls_key_file);
    ASSERT(!cfg.tls_internal);
    ASSERT_EQ_STR("CADDY_SERVER_EXTRA_DIRECTIVES", cfg.tls_source);
    ASSERT_EQ_INT(1, cfg.tls_line);
    qs_config_free(&cfg);

    /* The README's example. */
    env = ENV("SERVER_NAME", "https://example.com:8443", "MERCURE_PUBLISHER_JWT_KEY", "k",
              "MERCURE_SUBSCRIBER_JWT_KEY", "s", "CADDY_SERVER_EXTRA_DIRECTIVES",
              "tls /etc/certs/c.pem /etc/certs/k.pem");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_INT(1, cfg.n_listeners);
    assert_listener(&cfg.listeners[0], "https://example.com:8443", NULL, 8443, true);
    qs_config_free(&cfg);

    /* A comma-separated SERVER_NAME in the default Caddyfile, and its errors. */
    env = ENV("SERVER_NAME", "localhost:3000, 127.0.0.1:3001", "MERCURE_PUBLISHER_JWT_KEY", "k",
              "MERCURE_EXTRA_DIRECTIVES", "anonymous");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_INT(2, cfg.n_listeners);
    assert_listener(&cfg.listeners[0], "localhost:3000", "localhost", 3000, false);
    assert_listener(&cfg.listeners[1], "127.0.0.1:3001", "127.0.0.1", 3001, false);
    qs_config_free(&cfg);

    env = ENV("SERVER_NAME", ":80 :443", "MERCURE_PUBLISHER_JWT_KEY", "k",
              "MERCURE_EXTRA_DIRECTIVES", "anonymous");
    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("SERVER_NAME:1: site address: port 443 is served over TLS, which needs a "
                  "certificate: add tls CERT_FILE KEY_FILE or tls internal to the site block "
                  "(Quicksilver cannot get certificates from ACME) \":443\"",
                  err);
    free(err);
    qs_config_free(&cfg);

    env = ENV("SERVER_NAME", ":80 :80", "MERCURE_PUBLISHER_JWT_KEY", "k",
              "MERCURE_EXTRA_DIRECTIVES", "anonymous");
    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("SERVER_NAME:1: site address: same host and port as \":80\" (SERVER_NAME:1) "
                  "\":80\"",
                  err);
    free(err);
    qs_config_free(&cfg);
}

TEST(which_addresses_use_tls)
{
    static const struct {
        const char *addr;
        const char *tls_line; /* the site's tls directive, or "" */
        const char *host;     /* NULL: every interface */
        int port;
        bool tls;
    } cases[] = {
        {"https://example.com", "tls c.pem k.pem", NULL, 443, true},
        {"https://example.com:8443", "tls c.pem k.pem", NULL, 8443, true},
        {"HTTPS://example.com", "tls internal", NULL, 443, true},
        {"https://:8443", "tls internal", NULL, 8443, true},
        {"https://127.0.0.1", "tls internal", "127.0.0.1", 443, true},
        {"http://example.com", "tls c.pem k.pem", NULL, 80, false},
        {"http://example.com:8443", "tls c.pem k.pem", NULL, 8443, false},
        {"http://:3000", "tls internal", NULL, 3000, false},
        {":443", "tls internal", NULL, 443, true},
        {"example.com:443", "tls internal", NULL, 443, true},
        {":80", "tls internal", NULL, 80, false},
        {":80", "", NULL, 80, false},
        {":8443", "tls internal", NULL, 8443, true},
        {":8443", "", NULL, 8443, false},
        {"example.com", "tls internal", NULL, 443, true},
        {"example.com", "", NULL, 80, false},
        {"localhost", "tls internal", NULL, 443, true},
        {"localhost", "", NULL, 80, false},
        {"localhost:8443", "tls internal", "localhost", 8443, true},
        {"127.0.0.1", "tls internal", "127.0.0.1", 443, true},
        {"127.0.0.1", "", "127.0.0.1", 80, false},
        {"[::1]:8443", "tls internal", "::1", 8443, true},
        {":0", "tls internal", NULL, 0, true},
        {":0", "", NULL, 0, false},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        qs_config cfg;
        site_ok(&cfg, cases[i].addr, cases[i].tls_line);
        ASSERT_EQ_INT(1, cfg.n_listeners);
        assert_listener(&cfg.listeners[0], cases[i].addr, cases[i].host, cases[i].port,
                        cases[i].tls);
        ASSERT_EQ_INT(cases[i].port, cfg.listen_port);
        qs_config_free(&cfg);
    }
}

TEST(tls_address_without_tls_directive)
{
    site_err("https://example.com", "",
             "Caddyfile:1: site address: https:// is served over TLS, which needs a certificate: "
             "add tls CERT_FILE KEY_FILE or tls internal to the site block (Quicksilver cannot "
             "get certificates from ACME) \"https://example.com\"");
    site_err("https://:8443", "",
             "Caddyfile:1: site address: https:// is served over TLS, which needs a certificate: "
             "add tls CERT_FILE KEY_FILE or tls internal to the site block (Quicksilver cannot "
             "get certificates from ACME) \"https://:8443\"");
    site_err("localhost:443", "",
             "Caddyfile:1: site address: port 443 is served over TLS, which needs a certificate: "
             "add tls CERT_FILE KEY_FILE or tls internal to the site block (Quicksilver cannot "
             "get certificates from ACME) \"localhost:443\"");
    /* The second address, on the second line, is the one named. */
    site_err(":80,\n:443", "",
             "Caddyfile:2: site address: port 443 is served over TLS, which needs a certificate: "
             "add tls CERT_FILE KEY_FILE or tls internal to the site block (Quicksilver cannot "
             "get certificates from ACME) \":443\"");
    /* A tls directive with only plain addresses does nothing, and is no error. */
    qs_config cfg;
    site_ok(&cfg, ":80, http://example.com:8080", "tls internal");
    ASSERT_EQ_INT(2, cfg.n_listeners);
    ASSERT(!cfg.listeners[0].tls && !cfg.listeners[1].tls);
    ASSERT(cfg.tls_internal);
    qs_config_free(&cfg);
}

TEST(scheme_and_port_must_agree)
{
    site_err("https://example.com:80", "tls internal",
             "Caddyfile:1: site address: https:// on port 80, the plain HTTP port "
             "\"https://example.com:80\"");
    site_err("http://:443", "tls internal",
             "Caddyfile:1: site address: http:// on port 443, the TLS port \"http://:443\"");
}

TEST(duplicate_site_addresses)
{
    site_err(":80, :80", "",
             "Caddyfile:1: site address: same host and port as \":80\" (Caddyfile:1) \":80\"");
    /* The same port written or implied, host names compared without case. */
    site_err("localhost, LOCALHOST:80", "",
             "Caddyfile:1: site address: same host and port as \"localhost\" (Caddyfile:1) "
             "\"LOCALHOST:80\"");
    site_err("https://example.com, example.com:443", "tls internal",
             "Caddyfile:1: site address: same host and port as \"https://example.com\" "
             "(Caddyfile:1) \"example.com:443\"");
    site_err("example.com, https://example.com", "tls internal",
             "Caddyfile:1: site address: same host and port as \"example.com\" (Caddyfile:1) "
             "\"https://example.com\"");
    site_err("[::1]:8080,\n[::1]:8080", "",
             "Caddyfile:2: site address: same host and port as \"[::1]:8080\" (Caddyfile:1) "
             "\"[::1]:8080\"");
    /* One port cannot be TLS for one address and plain for another. */
    site_err(":8443, http://example.com:8443", "tls internal",
             "Caddyfile:1: site address: port 8443 is TLS for \":8443\" (Caddyfile:1): one port "
             "cannot serve both TLS and plain HTTP \"http://example.com:8443\"");
    site_err("http://a.example.com:8443 https://b.example.com:8443", "tls internal",
             "Caddyfile:1: site address: port 8443 is plain HTTP for "
             "\"http://a.example.com:8443\" (Caddyfile:1): one port cannot serve both TLS and "
             "plain HTTP \"https://b.example.com:8443\"");
}

TEST(site_addresses_are_bounded)
{
    qs_buf b = QS_BUF_INIT;
    for (int i = 1; i <= 257; i++)
        qs_buf_appendf(&b, ":%d ", i);
    char *text = site_with(qs_buf_cstr(&b), "");
    must_fail(text, no_env, "Caddyfile:1: site address: more than 256 site addresses \":257\"");
    free(text);
    qs_buf_free(&b);
}

TEST(second_site_block)
{
    must_fail(":80 {\n mercure {\n  publisher_jwt k\n  anonymous\n }\n}\nexample.com {\n}\n",
              no_env,
              "Caddyfile:7: only one site block is supported: list every address before the "
              "first block's '{' (\":80, :443 {\"); found another site \"example.com\"");
}

TEST(tls_directive)
{
    qs_config cfg;
    site_ok(&cfg, ":443", "tls cert.pem key.pem");
    ASSERT_EQ_STR("cert.pem", cfg.tls_cert_file);
    ASSERT_EQ_STR("key.pem", cfg.tls_key_file);
    ASSERT(!cfg.tls_internal);
    ASSERT_EQ_STR("Caddyfile", cfg.tls_source);
    ASSERT_EQ_INT(2, cfg.tls_line);
    qs_config_free(&cfg);

    site_ok(&cfg, ":443", "tls internal");
    ASSERT(cfg.tls_internal);
    ASSERT(cfg.tls_cert_file == NULL && cfg.tls_key_file == NULL);
    ASSERT_EQ_INT(2, cfg.tls_line);
    qs_config_free(&cfg);

    /* Placeholders and quoting work as everywhere; an empty block is harmless. */
    must_parse(&cfg,
               ":443 {\n"
               " mercure {\n  publisher_jwt k\n  anonymous\n }\n"
               " tls {env.CERT} \"{$KEY_DIR}/my key.pem\" {\n"
               " }\n"
               "}\n",
               ENV("CERT", "/certs/c.pem", "KEY_DIR", "/keys"));
    ASSERT_EQ_STR("/certs/c.pem", cfg.tls_cert_file);
    ASSERT_EQ_STR("/keys/my key.pem", cfg.tls_key_file);
    ASSERT_EQ_INT(6, cfg.tls_line);
    qs_config_free(&cfg);

    /* From CADDY_SERVER_EXTRA_DIRECTIVES, which lands in the default Caddyfile's site. */
    char *err = NULL;
    const char **env =
        ENV("SERVER_NAME", ":8443", "MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_EXTRA_DIRECTIVES",
            "anonymous", "CADDY_SERVER_EXTRA_DIRECTIVES", "encode gzip\ntls internal");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT(cfg.tls_internal);
    ASSERT_EQ_STR("CADDY_SERVER_EXTRA_DIRECTIVES", cfg.tls_source);
    ASSERT_EQ_INT(2, cfg.tls_line);
    assert_listener(&cfg.listeners[0], ":8443", NULL, 8443, true);
    qs_config_free(&cfg);

    /* Without tls, the fields stay empty. */
    site_ok(&cfg, ":80", "");
    ASSERT(cfg.tls_cert_file == NULL && cfg.tls_key_file == NULL && !cfg.tls_internal);
    ASSERT(cfg.tls_source == NULL);
    ASSERT_EQ_INT(0, cfg.tls_line);
    qs_config_free(&cfg);
}

TEST(tls_directive_errors)
{
    site_err(":443", "tls admin@example.com",
             "Caddyfile:2: tls: automatic certificates (ACME) are not supported: use tls "
             "CERT_FILE KEY_FILE or tls internal \"admin@example.com\"");
    site_err(":443", "tls force_automate",
             "Caddyfile:2: tls: automatic certificates (ACME) are not supported: use tls "
             "CERT_FILE KEY_FILE or tls internal \"force_automate\"");
    site_err(":443", "tls cert.pem",
             "Caddyfile:2: tls: a certificate file needs its key file after it (use tls "
             "CERT_FILE KEY_FILE or tls internal) \"cert.pem\"");
    site_err(":443", "tls",
             "Caddyfile:2: tls: missing value (use tls CERT_FILE KEY_FILE or tls internal)");
    site_err(":443", "tls a.pem b.pem c.pem",
             "Caddyfile:2: tls: too many values (use tls CERT_FILE KEY_FILE or tls internal) "
             "\"a.pem b.pem c.pem\"");
    site_err(":443", "tls {\n\t\tprotocols tls1.3\n\t}",
             "Caddyfile:3: tls: options blocks are not supported (use tls CERT_FILE KEY_FILE or "
             "tls internal) \"protocols\"");
    site_err(":443", "tls internal {\n\t\ton_demand\n\t}",
             "Caddyfile:3: tls: options blocks are not supported (use tls CERT_FILE KEY_FILE or "
             "tls internal) \"on_demand\"");
    site_err(":443", "tls internal\n\ttls c.pem k.pem",
             "Caddyfile:3: tls: given twice (first at Caddyfile:2)");
    site_err(":443", "route {\n\t\ttls internal\n\t}",
             "Caddyfile:3: tls: belongs at the top of the site block, not inside \"route\"");
    site_err(":443", "tls \"\" k.pem", "Caddyfile:2: tls: empty certificate file");
    site_err(":443", "tls c.pem {env.KEY_UNSET}",
             "Caddyfile:2: tls: empty key file (from KEY_UNSET)");
    site_err(":443", "tls {env.TLS_UNSET}", "Caddyfile:2: tls: empty value (from TLS_UNSET)");

    /* From CADDY_SERVER_EXTRA_DIRECTIVES: the variable and its line are named. */
    qs_config cfg;
    char *err = NULL;
    const char **env =
        ENV("SERVER_NAME", ":443", "MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_EXTRA_DIRECTIVES",
            "anonymous", "CADDY_SERVER_EXTRA_DIRECTIVES", "encode gzip\ntls me@example.com");
    ASSERT_EQ_INT(-1, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("CADDY_SERVER_EXTRA_DIRECTIVES:2: tls: automatic certificates (ACME) are not "
                  "supported: use tls CERT_FILE KEY_FILE or tls internal \"me@example.com\"",
                  err);
    free(err);
    qs_config_free(&cfg);
}

TEST(protocols_option)
{
    qs_config cfg;
    /* Defaults: h1 and h2, no h2c. */
    site_ok(&cfg, ":80", "");
    ASSERT(cfg.proto_h1 && cfg.proto_h2 && !cfg.proto_h2c);
    qs_config_free(&cfg);
    ASSERT(cfg.proto_h1 && cfg.proto_h2 && !cfg.proto_h2c); /* reset by free */

    static const char site[] = ":80, :443 {\n tls internal\n mercure {\n  publisher_jwt k\n"
                               "  anonymous\n }\n}\n";
    static const struct {
        const char *global;
        bool h1, h2, h2c;
    } cases[] = {
        {"protocols h1 h2 h2c", true, true, true},
        {"protocols h1", true, false, false},
        {"protocols h2c h2", false, true, true},
        {"protocols h1 h1 h2c", true, false, true},
        {"servers {\n\t\tprotocols h1 h2c\n\t}", true, false, true},
        {"servers :443 {\n\t\tmetrics\n\t\ttimeouts {\n\t\t\tread_body 10s\n\t\t}\n"
         "\t\tprotocols h2 h1\n\t}",
         true, true, false},
        {"servers {\n\t\tmetrics\n\t}", true, true, false},
        /* The same setting twice is fine. */
        {"protocols h1 h2c\n\tservers :443 {\n\t\tprotocols h2c h1\n\t}", true, false, true},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        char *text = qs_xasprintf("{\n\t%s\n}\n%s", cases[i].global, site);
        must_parse(&cfg, text, no_env);
        if (cfg.proto_h1 != cases[i].h1 || cfg.proto_h2 != cases[i].h2 ||
            cfg.proto_h2c != cases[i].h2c)
            qs_test_fail(__FILE__, __LINE__, "%s: got h1=%d h2=%d h2c=%d", cases[i].global,
                         cfg.proto_h1, cfg.proto_h2, cfg.proto_h2c);
        free(text);
        qs_config_free(&cfg);
    }

    /* h2c alone: plain listeners speak HTTP/2 with prior knowledge only. */
    must_parse(&cfg,
               "{\n protocols h2c\n}\n:80 {\n mercure {\n  publisher_jwt k\n  anonymous\n"
               " }\n}\n",
               no_env);
    ASSERT(!cfg.proto_h1 && !cfg.proto_h2 && cfg.proto_h2c);
    qs_config_free(&cfg);

    /* From GLOBAL_OPTIONS. */
    char *err = NULL;
    const char **env = ENV("GLOBAL_OPTIONS", "protocols h1 h2 h2c", "MERCURE_PUBLISHER_JWT_KEY",
                           "k", "MERCURE_EXTRA_DIRECTIVES", "anonymous");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT(cfg.proto_h1 && cfg.proto_h2 && cfg.proto_h2c);
    qs_config_free(&cfg);
}

TEST(protocols_errors)
{
    static const char site[] = ":80, :443 {\n tls internal\n mercure {\n  publisher_jwt k\n"
                               "  anonymous\n }\n}\n";
    static const struct {
        const char *global;
        const char *err;
    } cases[] = {
        {"protocols h1 h3", "Caddyfile:2: protocols: HTTP/3 is not supported \"h3\""},
        {"protocols h1 http/1.1",
         "Caddyfile:2: protocols: unknown protocol (h1, h2, h2c) \"http/1.1\""},
        {"protocols", "Caddyfile:2: protocols: missing value (h1, h2, h2c)"},
        {"protocols h1 {\n\t}", "Caddyfile:2: protocols: unexpected block"},
        {"servers {\n\t\tprotocols h1 h2 h3\n\t}",
         "Caddyfile:3: protocols: HTTP/3 is not supported \"h3\""},
        {"servers :443 {\n\t\tprotocols\n\t}",
         "Caddyfile:3: protocols: missing value (h1, h2, h2c)"},
        {"protocols h1 h2\n\tservers :80 {\n\t\tprotocols h1\n\t}",
         "Caddyfile:4: protocols: differs from the protocols at Caddyfile:2 (one setting "
         "applies to every listener)"},
        /* A listener that could speak nothing. */
        {"protocols h2", "Caddyfile:2: protocols: the plain HTTP listener \":80\" (Caddyfile:4) "
                         "needs h1 or h2c"},
        {"protocols h2c", "Caddyfile:2: protocols: the TLS listener \":443\" (Caddyfile:4) "
                          "needs h1 or h2"},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        char *text = qs_xasprintf("{\n\t%s\n}\n%s", cases[i].global, site);
        must_fail(text, no_env, cases[i].err);
        free(text);
    }
    /* From GLOBAL_OPTIONS: the variable and its line are named. */
    must_fail("{\n\t{$GLOBAL_OPTIONS}\n}\n:80 {\n}\n", ENV("GLOBAL_OPTIONS", "debug\nprotocols h3"),
              "GLOBAL_OPTIONS:2: protocols: HTTP/3 is not supported \"h3\"");
}

TEST(listeners_and_tls_are_freed_and_reset)
{
    qs_config cfg;
    site_ok(&cfg, ":80 :443", "tls c.pem k.pem");
    qs_config_free(&cfg);
    ASSERT(cfg.listeners == NULL);
    ASSERT_EQ_INT(0, cfg.n_listeners);
    ASSERT(cfg.tls_cert_file == NULL && cfg.tls_key_file == NULL && cfg.tls_source == NULL);
    ASSERT(!cfg.tls_internal);
    ASSERT(cfg.proto_h1 && cfg.proto_h2 && !cfg.proto_h2c);

    /* An error after some listeners were made leaves nothing behind (run under ASan). */
    char *err = NULL;
    char *text = site_with("{$SITES}", "tls c.pem k.pem");
    ASSERT_EQ_INT(-1, parse_env(&cfg, text, ENV("SITES", ":80 :443 http://:443"), &err));
    ASSERT_EQ_STR("SITES:1: site address: http:// on port 443, the TLS port \"http://:443\"", err);
    free(err);
    ASSERT(cfg.listeners == NULL && cfg.tls_cert_file == NULL);
    qs_config_free(&cfg);
    ASSERT_EQ_INT(-1, parse_env(&cfg, text, ENV("SITES", ":80 :443 :8080 :443"), &err));
    ASSERT_EQ_STR("SITES:1: site address: same host and port as \":443\" (SITES:1) \":443\"", err);
    free(err);
    ASSERT(cfg.listeners == NULL && cfg.tls_cert_file == NULL);
    qs_config_free(&cfg);
    free(text);
}

/*-------- Directives --------*/

TEST(jwt_directives)
{
    qs_config cfg;
    directive_ok(&cfg, "publisher_jwt other EdDSA");
    ASSERT_EQ_STR("other", cfg.publisher_key); /* a repeated directive: the later one wins */
    ASSERT_EQ_STR("EdDSA", cfg.publisher_alg);
    qs_config_free(&cfg);
    static const char *algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
                                 "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"};
    for (size_t i = 0; i < QS_ARRAY_LEN(algs); i++) {
        char *line = qs_xasprintf("subscriber_jwt s %s", algs[i]);
        directive_ok(&cfg, line);
        ASSERT_EQ_STR(algs[i], cfg.subscriber_alg);
        qs_config_free(&cfg);
        free(line);
    }
    directive_ok(&cfg, "subscriber_jwt s \"\"");
    ASSERT(cfg.subscriber_alg == NULL);
    qs_config_free(&cfg);

    directive_err("publisher_jwt", "Caddyfile:5: publisher_jwt: missing key");
    directive_err("publisher_jwt k hs256",
                  "Caddyfile:5: publisher_jwt: unsupported algorithm \"hs256\"");
    directive_err("publisher_jwt k none",
                  "Caddyfile:5: publisher_jwt: unsupported algorithm \"none\"");
    /* Something that may be the second half of an unquoted secret is not echoed. */
    directive_err("subscriber_jwt my-secret-first-half second-half-of-it",
                  "Caddyfile:5: subscriber_jwt: unsupported algorithm (value not shown: quote a "
                  "key that contains spaces)");
    directive_err("publisher_jwt a b c",
                  "Caddyfile:5: publisher_jwt: too many arguments (expected a key and an "
                  "optional algorithm; quote a key that contains spaces)");
    /* An empty key means no key: validation then asks for one. */
    must_fail(":80 {\n mercure {\n  publisher_jwt \"\"\n  anonymous\n }\n}\n", no_env,
              "Caddyfile:3: publisher_jwt: a JWT key for publishers must be provided (empty "
              "key)");
}

TEST(missing_keys)
{
    must_fail(":80 {\n mercure {\n  anonymous\n }\n}\n", no_env,
              "Caddyfile:2: mercure: a JWT key for publishers must be provided (publisher_jwt "
              "or publisher_jwks_url)");
    must_fail(":80 {\n mercure {\n  publisher_jwt k\n }\n}\n", no_env,
              "Caddyfile:2: mercure: a JWT key for subscribers must be provided (subscriber_jwt, "
              "subscriber_jwks_url or anonymous)");
    must_fail(":80 {\n mercure\n}\n", no_env,
              "Caddyfile:2: mercure: a JWT key for publishers must be provided (publisher_jwt "
              "or publisher_jwks_url)");
    must_fail(":80 {\n mercure {\n  publisher_jwt k\n  subscriber_jwt {env.SUBKEY}\n }\n}\n",
              no_env,
              "Caddyfile:4: subscriber_jwt: a JWT key for subscribers must be provided (SUBKEY)");
    qs_config cfg;
    must_parse(&cfg,
               ":80 {\n mercure {\n  publisher_jwks_url file:///etc/jwks.json\n"
               "  subscriber_jwks_url FILE:///etc/sub.json\n }\n}\n",
               no_env);
    ASSERT(cfg.publisher_key == NULL && cfg.subscriber_key == NULL);
    ASSERT_EQ_STR("file:///etc/jwks.json", cfg.publisher_jwks_url);
    ASSERT_EQ_STR("FILE:///etc/sub.json", cfg.subscriber_jwks_url);
    qs_config_free(&cfg);
}

TEST(jwks_url)
{
    directive_err("publisher_jwks_url ftp://example.com/jwks.json",
                  "Caddyfile:5: publisher_jwks_url: a JWKS URL starts with https://, http:// or "
                  "file:// \"ftp://example.com/jwks.json\"");
    directive_err("subscriber_jwks_url file://",
                  "Caddyfile:5: subscriber_jwks_url: a JWKS URL starts with https://, http:// or "
                  "file:// \"file://\"");
    directive_err("subscriber_jwks_url file://example.com/keys.json",
                  "Caddyfile:5: subscriber_jwks_url: a file:// URL names a local file "
                  "(file:///path) \"file://example.com/keys.json\"");
    directive_err("jwks_refresh_interval 500ms",
                  "Caddyfile:5: jwks_refresh_interval: must be at least 1000ms \"500ms\"");
    directive_err("jwks_min_refresh_interval soon",
                  "Caddyfile:5: jwks_min_refresh_interval: invalid duration \"soon\"");
    directive_err("subscriber_jwks_url", "Caddyfile:5: subscriber_jwks_url: missing value");
    directive_err("subscriber_jwks_url file:///a file:///b",
                  "Caddyfile:5: subscriber_jwks_url: expected 1 value \"file:///a file:///b\"");
}

TEST(flags)
{
    qs_config cfg;
    directive_ok(&cfg, "anonymous\n\t\tsubscriptions\n\t\tui\n\t\tdemo");
    ASSERT(cfg.anonymous && cfg.subscriptions && cfg.ui && cfg.demo);
    qs_config_free(&cfg);
    directive_err("anonymous true", "Caddyfile:5: anonymous: takes no value \"true\"");
    directive_err("subscriptions 1", "Caddyfile:5: subscriptions: takes no value \"1\"");
    directive_err("ui x", "Caddyfile:5: ui: takes no value \"x\"");
    directive_err("demo x", "Caddyfile:5: demo: takes no value \"x\"");
}

TEST(origins_and_names)
{
    qs_config cfg;
    directive_ok(&cfg, "publish_origins https://a.example null\n"
                       "\t\tcors_origins x\n"
                       "\t\tcors_origins https://b.example *\n"
                       "\t\tcookie_name my_cookie\n"
                       "\t\tname hub1");
    ASSERT_EQ_INT(2, cfg.n_publish_origins);
    ASSERT_EQ_STR("https://a.example", cfg.publish_origins[0]);
    ASSERT_EQ_STR("null", cfg.publish_origins[1]);
    ASSERT_EQ_INT(2, cfg.n_cors_origins); /* the later directive replaces the list */
    ASSERT_EQ_STR("https://b.example", cfg.cors_origins[0]);
    ASSERT_EQ_STR("*", cfg.cors_origins[1]);
    ASSERT_EQ_STR("my_cookie", cfg.cookie_name);
    ASSERT_EQ_STR("hub1", cfg.hub_name);
    qs_config_free(&cfg);
    directive_err("publish_origins", "Caddyfile:5: publish_origins: missing value");
    directive_err("cors_origins", "Caddyfile:5: cors_origins: missing value");
    directive_err("cors_origins a \"\"", "Caddyfile:5: cors_origins: empty value");
    directive_err("cookie_name", "Caddyfile:5: cookie_name: missing value");
    directive_err("cookie_name a b", "Caddyfile:5: cookie_name: expected 1 value \"a b\"");
    directive_err("cookie_name \"\"", "Caddyfile:5: cookie_name: empty value");
    directive_err("name", "Caddyfile:5: name: missing value");
}

TEST(protocol_version_compatibility)
{
    qs_config cfg;
    directive_ok(&cfg, "protocol_version_compatibility 7");
    ASSERT_EQ_INT(7, cfg.protocol_version_compatibility);
    qs_config_free(&cfg);
    directive_err("protocol_version_compatibility 8",
                  "Caddyfile:5: protocol_version_compatibility: only version 7 is supported "
                  "\"8\"");
    directive_err("protocol_version_compatibility",
                  "Caddyfile:5: protocol_version_compatibility: missing value");
}

TEST(duration_directives)
{
    qs_config cfg;
    directive_ok(&cfg, "heartbeat 15s\n\t\twrite_timeout 0s\n\t\tdispatch_timeout 1m30s\n"
                       "\t\trequest_timeout 500ms\n\t\tidle_timeout 1h");
    ASSERT_EQ_INT(15000, cfg.heartbeat_ms);
    ASSERT_EQ_INT(0, cfg.write_timeout_ms);
    ASSERT_EQ_INT(90000, cfg.dispatch_timeout_ms);
    ASSERT_EQ_INT(500, cfg.request_timeout_ms);
    ASSERT_EQ_INT(3600000, cfg.idle_timeout_ms);
    qs_config_free(&cfg);
    directive_ok(&cfg, "heartbeat 0");
    ASSERT_EQ_INT(0, cfg.heartbeat_ms);
    qs_config_free(&cfg);
    directive_err("heartbeat \"4O s\"", "Caddyfile:5: heartbeat: invalid duration \"4O s\"");
    directive_err("heartbeat 40", "Caddyfile:5: heartbeat: invalid duration \"40\"");
    directive_err("write_timeout -1s", "Caddyfile:5: write_timeout: invalid duration \"-1s\"");
    directive_err("dispatch_timeout", "Caddyfile:5: dispatch_timeout: missing value");
    directive_err("heartbeat 1s 2s", "Caddyfile:5: heartbeat: expected 1 value \"1s 2s\"");
    directive_err("request_timeout 0s",
                  "Caddyfile:5: request_timeout: must be greater than 0 \"0s\"");
    directive_err("idle_timeout 0", "Caddyfile:5: idle_timeout: must be greater than 0 \"0\"");
}

TEST(size_directives)
{
    qs_config cfg;
    directive_ok(&cfg, "max_request_body_size 0\n\t\tmax_header_size 8KiB\n"
                       "\t\tsubscriber_queue_bytes \"2 MB\"");
    ASSERT_EQ_INT(0, cfg.max_request_body_size);
    ASSERT_EQ_INT(8192, cfg.max_header_size);
    ASSERT_EQ_INT(2000000, cfg.subscriber_queue_bytes);
    qs_config_free(&cfg);
    directive_err("max_request_body_size lots",
                  "Caddyfile:5: max_request_body_size: invalid size \"lots\"");
    directive_err("max_header_size 1000",
                  "Caddyfile:5: max_header_size: must be at least 1024 bytes \"1000\"");
    directive_err("subscriber_queue_bytes 1KB",
                  "Caddyfile:5: subscriber_queue_bytes: must be at least 1024 bytes \"1KB\"");
    directive_err("max_header_size -5", "Caddyfile:5: max_header_size: invalid size \"-5\"");
}

TEST(integer_directives)
{
    qs_config cfg;
    directive_ok(&cfg, "subscriber_list_cache_size 0\n\t\tmax_topics 100000\n"
                       "\t\tmax_connections 50000\n\t\tsubscriber_queue_size 1\n\t\tworkers 8");
    ASSERT_EQ_INT(0, cfg.subscriber_list_cache_size);
    ASSERT_EQ_INT(100000, cfg.max_topics);
    ASSERT_EQ_INT(50000, cfg.max_connections);
    ASSERT_EQ_INT(1, cfg.subscriber_queue_size);
    ASSERT_EQ_INT(8, cfg.workers);
    qs_config_free(&cfg);
    directive_ok(&cfg, "workers auto");
    ASSERT_EQ_INT(0, cfg.workers);
    qs_config_free(&cfg);
    directive_ok(&cfg, "workers 0");
    ASSERT_EQ_INT(0, cfg.workers);
    qs_config_free(&cfg);
    directive_ok(&cfg, "workers 1024");
    ASSERT_EQ_INT(1024, cfg.workers);
    qs_config_free(&cfg);
    directive_err("workers 1025",
                  "Caddyfile:5: workers: must be auto, 0 or between 1 and 1024 \"1025\"");
    directive_err("workers -1", "Caddyfile:5: workers: must be auto, 0 or between 1 and 1024 "
                                "\"-1\"");
    directive_err("workers many",
                  "Caddyfile:5: workers: must be auto, 0 or between 1 and 1024 \"many\"");
    directive_err("max_topics 0", "Caddyfile:5: max_topics: must be between 1 and 100000 \"0\"");
    directive_err("max_topics 100001",
                  "Caddyfile:5: max_topics: must be between 1 and 100000 \"100001\"");
    directive_err("max_topics 1e3", "Caddyfile:5: max_topics: invalid integer \"1e3\"");
    directive_err("max_connections -1", "Caddyfile:5: max_connections: must be at least 0 \"-1\"");
    directive_err("subscriber_queue_size 0",
                  "Caddyfile:5: subscriber_queue_size: must be at least 1 \"0\"");
    directive_err("subscriber_list_cache_size -3",
                  "Caddyfile:5: subscriber_list_cache_size: must be at least 0 \"-3\"");
    directive_err("max_connections 99999999999999999999",
                  "Caddyfile:5: max_connections: invalid integer \"99999999999999999999\"");
    directive_err("max_topics +5", "Caddyfile:5: max_topics: invalid integer \"+5\"");
}

TEST(selector_limit_directives)
{
    qs_config cfg;
    directive_ok(&cfg, "max_selector_length 16KiB\n\t\tmax_selector_expressions 10\n"
                       "\t\tmax_selector_states 200\n\t\tmax_subscriber_states 100000");
    ASSERT_EQ_INT(16384, cfg.max_selector_length);
    ASSERT_EQ_INT(10, cfg.max_selector_expressions);
    ASSERT_EQ_INT(200, cfg.max_selector_states);
    ASSERT_EQ_INT(100000, cfg.max_subscriber_states);
    qs_config_free(&cfg);
    /* 0 lifts a limit. */
    directive_ok(&cfg, "max_selector_length 0\n\t\tmax_selector_expressions 0\n"
                       "\t\tmax_selector_states 0\n\t\tmax_subscriber_states 0");
    ASSERT_EQ_INT(0, cfg.max_selector_length);
    ASSERT_EQ_INT(0, cfg.max_selector_expressions);
    ASSERT_EQ_INT(0, cfg.max_selector_states);
    ASSERT_EQ_INT(0, cfg.max_subscriber_states);
    qs_config_free(&cfg);
    directive_err("max_selector_length long",
                  "Caddyfile:5: max_selector_length: invalid size \"long\"");
    directive_err("max_selector_length", "Caddyfile:5: max_selector_length: missing value");
    directive_err("max_selector_expressions -1",
                  "Caddyfile:5: max_selector_expressions: must be at least 0 \"-1\"");
    directive_err("max_selector_expressions 1e3",
                  "Caddyfile:5: max_selector_expressions: invalid integer \"1e3\"");
    directive_err("max_selector_states 1 2",
                  "Caddyfile:5: max_selector_states: expected 1 value \"1 2\"");
    directive_err("max_subscriber_states -5",
                  "Caddyfile:5: max_subscriber_states: must be at least 0 \"-5\"");
    directive_err("max_selector_state 5", "Caddyfile:5: unknown directive \"max_selector_state\"");
}

TEST(topic_selector_cache)
{
    qs_config cfg;
    directive_ok(&cfg, "topic_selector_cache 5000");
    ASSERT_EQ_INT(5000, cfg.topic_selector_cache);
    qs_config_free(&cfg);
    directive_ok(&cfg, "topic_selector_cache 10000 256"); /* the stale docs' syntax */
    ASSERT_EQ_INT(10000, cfg.topic_selector_cache);
    qs_config_free(&cfg);
    directive_ok(&cfg, "topic_selector_cache 0"); /* <= 0 keeps the default, as the reference */
    ASSERT_EQ_INT(100000, cfg.topic_selector_cache);
    qs_config_free(&cfg);
    directive_ok(&cfg, "topic_selector_cache -1");
    ASSERT_EQ_INT(100000, cfg.topic_selector_cache);
    qs_config_free(&cfg);
    directive_err("topic_selector_cache", "Caddyfile:5: topic_selector_cache: missing value");
    directive_err("topic_selector_cache big",
                  "Caddyfile:5: topic_selector_cache: invalid integer \"big\"");
    directive_err("topic_selector_cache 1 x",
                  "Caddyfile:5: topic_selector_cache: invalid integer \"x\"");
    directive_err("topic_selector_cache 1 2 3",
                  "Caddyfile:5: topic_selector_cache: expected at most 2 values \"1 2 3\"");
}

TEST(transport_blocks)
{
    qs_config cfg;
    must_parse(&cfg,
               ":80 {\n"                            /* 1 */
               "\tmercure {\n"                      /* 2 */
               "\t\tpublisher_jwt k\n"              /* 3 */
               "\t\tanonymous\n"                    /* 4 */
               "\t\ttransport bolt {\n"             /* 5 */
               "\t\t\tpath /var/lib/mercure.db\n"   /* 6 */
               "\n"                                 /* 7 */
               "\t\t\tbucket_name \"my updates\"\n" /* 8 */
               "\t\t\tsize 1000\n"                  /* 9 */
               "\t\t\tcleanup_frequency 0.3\n"      /* 10 */
               "\t\t\tflag\n"                       /* 11 */
               "\t\t\taddr h1:9092 h2:9092\n"       /* 12 */
               "\t\t}\n"
               "\t}\n"
               "}\n",
               ENV("MERCURE_TRANSPORT_URL", "bolt://ignored.db"));
    qs_config_transport *t = &cfg.transport;
    ASSERT_EQ_STR("bolt", t->name);
    ASSERT(t->url == NULL); /* a transport directive wins over MERCURE_TRANSPORT_URL */
    ASSERT_EQ_STR("Caddyfile", t->source);
    ASSERT_EQ_INT(5, t->line);
    ASSERT_EQ_INT(6, t->n_options);
    ASSERT_EQ_STR("path", t->options[0].key);
    ASSERT_EQ_INT(1, t->options[0].n_values);
    ASSERT_EQ_STR("/var/lib/mercure.db", t->options[0].values[0]);
    ASSERT_EQ_INT(6, t->options[0].line);
    ASSERT_EQ_STR("Caddyfile", t->options[0].source);
    ASSERT_EQ_STR("bucket_name", t->options[1].key);
    ASSERT_EQ_STR("my updates", t->options[1].values[0]);
    ASSERT_EQ_INT(8, t->options[1].line);
    ASSERT_EQ_STR("size", t->options[2].key);
    ASSERT_EQ_INT(9, t->options[2].line);
    ASSERT_EQ_STR("0.3", t->options[3].values[0]);
    ASSERT_EQ_STR("flag", t->options[4].key);
    ASSERT_EQ_INT(0, t->options[4].n_values);
    ASSERT_EQ_INT(2, t->options[5].n_values);
    ASSERT_EQ_STR("h2:9092", t->options[5].values[1]);
    qs_config_free(&cfg);

    /* Without a block; every known name; a repeated transport replaces the earlier one. */
    static const char *names[] = {"local", "bolt", "lmdb", "redis", "postgres", "kafka", "pulsar"};
    for (size_t i = 0; i < QS_ARRAY_LEN(names); i++) {
        char *line =
            qs_xasprintf("transport bolt {\n\t\t\tpath x\n\t\t}\n\t\ttransport %s", names[i]);
        directive_ok(&cfg, line);
        ASSERT_EQ_STR(names[i], cfg.transport.name);
        ASSERT_EQ_INT(0, cfg.transport.n_options);
        ASSERT_EQ_INT(8, cfg.transport.line);
        qs_config_free(&cfg);
        free(line);
    }

    /* Options from MERCURE_EXTRA_DIRECTIVES name the variable. */
    char *err = NULL;
    const char **env = ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_EXTRA_DIRECTIVES",
                           "anonymous\ntransport redis {\n  url redis://r:6379\n}");
    ASSERT_EQ_INT(0, qs_config_load_default(&cfg, fake_getenv, (void *)env, &err));
    ASSERT_EQ_STR("redis", cfg.transport.name);
    ASSERT_EQ_STR("MERCURE_EXTRA_DIRECTIVES", cfg.transport.source);
    ASSERT_EQ_INT(2, cfg.transport.line);
    ASSERT_EQ_STR("MERCURE_EXTRA_DIRECTIVES", cfg.transport.options[0].source);
    ASSERT_EQ_INT(3, cfg.transport.options[0].line);
    qs_config_free(&cfg);

    directive_err("transport", "Caddyfile:5: transport: missing value");
    directive_err("transport mysql", "Caddyfile:5: transport: unknown transport (local, bolt, "
                                     "lmdb, redis, postgres, kafka, pulsar) \"mysql\"");
    directive_err("transport local extra",
                  "Caddyfile:5: transport: expected 1 value \"local extra\"");
    directive_err("transport bolt {\n\t\t\tnested {\n\t\t\t}\n\t\t}",
                  "Caddyfile:6: transport: an option cannot open a block \"nested\"");
    directive_err("transport_url bolt://x.db\n\t\ttransport local",
                  "Caddyfile:6: transport: cannot be combined with transport_url (line 5)");
    directive_err("transport local\n\t\ttransport_url bolt://x.db",
                  "Caddyfile:6: transport_url: cannot be combined with transport (line 5)");
    directive_err("transport_url", "Caddyfile:5: transport_url: missing value");
    directive_err("transport_url \"\"", "Caddyfile:5: transport_url: empty value");
}

TEST(transport_url_and_env)
{
    qs_config cfg;
    directive_ok(&cfg, "transport_url bolt://a.db\n\t\ttransport_url local://local");
    ASSERT_EQ_STR("local://local", cfg.transport.url);
    ASSERT(cfg.transport.name == NULL);
    ASSERT_EQ_INT(6, cfg.transport.line);
    qs_config_free(&cfg);

    /* MERCURE_TRANSPORT_URL fills in when nothing names a transport, for files too. */
    char *text = with_lines("");
    must_parse(&cfg, text, ENV("MERCURE_TRANSPORT_URL", "redis://r:6379/stream"));
    ASSERT_EQ_STR("redis://r:6379/stream", cfg.transport.url);
    ASSERT_EQ_STR("MERCURE_TRANSPORT_URL", cfg.transport.source);
    ASSERT_EQ_INT(1, cfg.transport.line);
    qs_config_free(&cfg);
    must_parse(&cfg, text, ENV("MERCURE_TRANSPORT_URL", ""));
    ASSERT(cfg.transport.url == NULL);
    qs_config_free(&cfg);
    free(text);

    char *err = NULL;
    ASSERT_EQ_INT(0, qs_config_load_default(
                         &cfg, fake_getenv,
                         (void *)ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_SUBSCRIBER_JWT_KEY",
                                     "k", "MERCURE_TRANSPORT_URL", "bolt:///data/mercure.db"),
                         &err));
    ASSERT_EQ_STR("bolt:///data/mercure.db", cfg.transport.url);
    qs_config_free(&cfg);
    /* transport_url in MERCURE_EXTRA_DIRECTIVES wins over MERCURE_TRANSPORT_URL. */
    ASSERT_EQ_INT(0, qs_config_load_default(
                         &cfg, fake_getenv,
                         (void *)ENV("MERCURE_PUBLISHER_JWT_KEY", "k", "MERCURE_EXTRA_DIRECTIVES",
                                     "anonymous\ntransport_url local://", "MERCURE_TRANSPORT_URL",
                                     "bolt:///data/mercure.db"),
                         &err));
    ASSERT_EQ_STR("local://", cfg.transport.url);
    ASSERT_EQ_STR("MERCURE_EXTRA_DIRECTIVES", cfg.transport.source);
    ASSERT_EQ_INT(2, cfg.transport.line);
    qs_config_free(&cfg);
}

TEST(unknown_directive_errors)
{
    directive_err("frobnicate 1", "Caddyfile:5: unknown directive \"frobnicate\"");
    directive_err("issuer https://x {\n\t\t}",
                  "Caddyfile:5: unknown directive \"issuer\" (a Mercure 1.0 directive; "
                  "Quicksilver implements the 0.x configuration)");
    directive_err("\"bad\\\"name\"", "Caddyfile:5: unknown directive \"bad\\\"name\"");
}

TEST(error_values_are_escaped_and_truncated)
{
    directive_err("heartbeat \"a\tb\x01\"",
                  "Caddyfile:5: heartbeat: invalid duration \"a\\tb\\x01\"");
    char long_value[300];
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    char *line = qs_xasprintf("heartbeat %s", long_value);
    char *text = with_lines(line);
    qs_config cfg;
    char *err = NULL;
    ASSERT_EQ_INT(-1, parse_env(&cfg, text, no_env, &err));
    ASSERT(strlen(err) < 200);
    ASSERT(strstr(err, "...\"") != NULL);
    free(err);
    free(text);
    free(line);
    qs_config_free(&cfg);
}

TEST(errors_leave_the_config_freeable_and_reset)
{
    /* Fail late, after many fields were set: nothing may leak (LSan) and cfg is defaults. */
    qs_config cfg;
    char *err = NULL;
    char *text = with_lines("cors_origins a b c\n\t\tpublish_origins d\n\t\tcookie_name c\n"
                            "\t\tname n\n\t\ttransport bolt {\n\t\t\tpath p\n\t\t}\n"
                            "\t\tpublisher_jwks_url file:///x\n\t\tbogus");
    ASSERT_EQ_INT(-1, parse_env(&cfg, text, no_env, &err));
    ASSERT_EQ_STR("Caddyfile:13: unknown directive \"bogus\"", err);
    ASSERT(cfg.cors_origins == NULL && cfg.transport.name == NULL && cfg.site_address == NULL);
    ASSERT_EQ_INT(40000, cfg.heartbeat_ms);
    free(err);
    free(text);
    qs_config_free(&cfg);
    /* err may be NULL. */
    ASSERT_EQ_INT(-1, qs_config_parse(&cfg, "x", 1, "c", fake_getenv, (void *)no_env, NULL));
    qs_config_free(&cfg);
}

/*-------- Durations and sizes --------*/

TEST(durations)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {
        {"0", 0},
        {"0s", 0},
        {"+5s", 5000},
        {"40s", 40000},
        {"300ms", 300},
        {"1.5h", 5400000},
        {"2h45m", 9900000},
        {"1m30s", 90000},
        {"1h0m0.5s", 3600500},
        {".5s", 500},
        {"1.s", 1000},
        {"2d", 172800000},
        {"1d12h", 129600000},
        {"0.5d", 43200000},
        {"1500us", 2},     /* rounded up to whole milliseconds */
        {"1\xc2\xb5s", 1}, /* µs (micro sign) */
        {"1\xce\xbcs", 1}, /* μs (Greek mu) */
        {"1ns", 1},
        {"999999ns", 1},
        {"1000000ns", 1},
        {"1000001ns", 2},
        {"2562047h", 9223369200000ULL},
        {"106751d", 9223286400000ULL},
        {"1.000000000000000000001s", 1000},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(good); i++) {
        uint64_t ms = 12345;
        if (qs_parse_duration_ms(good[i].s, &ms) != 0)
            qs_test_fail(__FILE__, __LINE__, "\"%s\" rejected", good[i].s);
        if (ms != good[i].ms)
            qs_test_fail(__FILE__, __LINE__, "\"%s\": expected %llu ms, got %llu", good[i].s,
                         (unsigned long long)good[i].ms, (unsigned long long)ms);
    }
    static const char *bad[] = {"",
                                "40",
                                "-1s",
                                "-0",
                                "s",
                                "1x",
                                "1 s",
                                "4O s",
                                "1.5",
                                ".s",
                                "1..5s",
                                "1sm",
                                "1mss",
                                "++1s",
                                "1S",
                                "1H",
                                "5m-3s",
                                " 1s",
                                "1s ",
                                "2562048h",
                                "106752d",
                                "9223372036854775808ns",
                                "99999999999999999999s",
                                "+",
                                "."};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        uint64_t ms = 7;
        if (qs_parse_duration_ms(bad[i], &ms) == 0)
            qs_test_fail(__FILE__, __LINE__, "\"%s\" accepted as %llu ms", bad[i],
                         (unsigned long long)ms);
        ASSERT_EQ_INT(7, ms);
    }
    uint64_t ms;
    ASSERT_EQ_INT(-1, qs_parse_duration_ms(NULL, &ms));
}

TEST(sizes)
{
    static const struct {
        const char *s;
        uint64_t n;
    } good[] = {
        {"0", 0},
        {"1048576", 1048576},
        {"1MiB", 1048576},
        {"1mib", 1048576},
        {"1MB", 1000000},
        {"512KiB", 524288},
        {"2 GB", 2000000000},
        {"1.5MiB", 1572864},
        {"1.5 mb", 1500000},
        {"10B", 10},
        {"10b", 10},
        {"1k", 1000},
        {"1Ki", 1024},
        {"1KB", 1000},
        {"1kib", 1024},
        {"3GiB", 3221225472ULL},
        {"1TB", 1000000000000ULL},
        {"1TiB", 1099511627776ULL},
        {"1,000", 1000},
        {"1,000 KB", 1000000},
        {".5KiB", 512},
        {"16EiB", 0}, /* placeholder replaced below: overflows */
        {"18446744073709551615", 18446744073709551615ULL},
        {"15EiB", 17293822569102704640ULL},
        {"4 KiB ", 4096},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(good); i++) {
        if (strcmp(good[i].s, "16EiB") == 0)
            continue;
        uint64_t n = 12345;
        if (qs_parse_size(good[i].s, &n) != 0)
            qs_test_fail(__FILE__, __LINE__, "\"%s\" rejected", good[i].s);
        if (n != good[i].n)
            qs_test_fail(__FILE__, __LINE__, "\"%s\": expected %llu, got %llu", good[i].s,
                         (unsigned long long)good[i].n, (unsigned long long)n);
    }
    static const char *bad[] = {
        "",        "MB",      "-1",   "-1MB", "1XB", "1 M B", "1.2.3",
        "1e6",     " 1",      "1MBB", "abc",  ".",   "16EiB", "18446744073709551616",
        "20000PB", "1.5EB x", "1 2"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        uint64_t n = 7;
        if (qs_parse_size(bad[i], &n) == 0)
            qs_test_fail(__FILE__, __LINE__, "\"%s\" accepted as %llu", bad[i],
                         (unsigned long long)n);
        ASSERT_EQ_INT(7, n);
    }
}

/*-------- Files --------*/

TEST(load_file)
{
    char path[] = "/tmp/qs_test_config_XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    static const char text[] = ":4000 {\n\tmercure {\n\t\tpublisher_jwt k\n\t\tanonymous\n"
                               "\t\theartbeat 2s\n\t}\n}\n";
    ASSERT_EQ_INT((long long)sizeof(text) - 1, write(fd, text, sizeof(text) - 1));
    close(fd);
    qs_config cfg;
    char *err = NULL;
    ASSERT_EQ_INT(0, qs_config_load_file(&cfg, path, fake_getenv, (void *)no_env, &err));
    ASSERT_EQ_INT(4000, cfg.listen_port);
    ASSERT_EQ_INT(2000, cfg.heartbeat_ms);
    qs_config_free(&cfg);

    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(":4000 {\n\tmercure {\n\t\theartbeat soon\n\t}\n}\n", f);
    fclose(f);
    ASSERT_EQ_INT(-1, qs_config_load_file(&cfg, path, fake_getenv, (void *)no_env, &err));
    char *expected = qs_xasprintf("%s:3: heartbeat: invalid duration \"soon\"", path);
    ASSERT_EQ_STR(expected, err);
    free(expected);
    free(err);
    qs_config_free(&cfg);
    unlink(path);

    ASSERT_EQ_INT(
        -1, qs_config_load_file(&cfg, "/nonexistent/Caddyfile", fake_getenv, (void *)no_env, &err));
    ASSERT_EQ_STR("/nonexistent/Caddyfile: cannot open: No such file or directory", err);
    free(err);
    qs_config_free(&cfg);
}

TEST(crlf_line_endings)
{
    qs_config cfg;
    must_parse(&cfg, ":80 {\r\n mercure {\r\n  publisher_jwt k\r\n  anonymous\r\n }\r\n}\r\n",
               no_env);
    ASSERT_EQ_STR("k", cfg.publisher_key);
    ASSERT(cfg.anonymous);
    qs_config_free(&cfg);
}

TEST(substituted_values_are_not_expanded_again)
{
    qs_config cfg;
    must_parse(&cfg, ":80 {\n mercure {\n  publisher_jwt {$K}\n  anonymous\n }\n}\n",
               ENV("K", "{$OTHER}", "OTHER", "no"));
    ASSERT_EQ_STR("{$OTHER}", cfg.publisher_key);
    qs_config_free(&cfg);
    /* Adjacent variables keep their own sources and lines. */
    must_fail(":80 {\n mercure {\n  publisher_jwt k\n  {$A}{$B}\n }\n}\n",
              ENV("A", "anonymous", "B", "\nbogus"), "B:2: unknown directive \"bogus\"");
    must_fail(":80 {\n mercure {\n  publisher_jwt k\n  {$A}{$B}\n }\n}\n",
              ENV("A", "bogus", "B", "\nanonymous"), "A:1: unknown directive \"bogus\"");
    /* An unset variable without default leaves nothing, and the file's lines go on. */
    must_fail("{$UNSET}\n:80 {\n mercure {\n  {$UNSET}bogus\n }\n}\n", no_env,
              "Caddyfile:4: unknown directive \"bogus\"");
}

TEST(real_environment_when_no_callback)
{
    setenv("QS_TEST_CFG_KEY", "from-env", 1);
    unsetenv("QS_TEST_CFG_UNSET");
    static const char text[] = ":80 {\n mercure {\n  publisher_jwt {env.QS_TEST_CFG_KEY}\n"
                               "  subscriber_jwt {$QS_TEST_CFG_KEY}\n"
                               "  name x{env.QS_TEST_CFG_UNSET}\n }\n}\n";
    qs_config cfg;
    char *err = NULL;
    ASSERT_EQ_INT(0, qs_config_parse(&cfg, text, strlen(text), NULL, NULL, NULL, &err));
    ASSERT_EQ_STR("from-env", cfg.publisher_key);
    ASSERT_EQ_STR("from-env", cfg.subscriber_key);
    ASSERT_EQ_STR("x", cfg.hub_name);
    qs_config_free(&cfg);
}

/*-------- Shutdown and logs --------*/

TEST(drain_and_log_options)
{
    qs_config cfg;
    must_parse(&cfg,
               "{\n\tshutdown_delay 5s\n\tgrace_period 1m\n\tlog {\n\t\tformat json\n"
               "\t\tlevel DEBUG\n\t\toutput stderr\n\t}\n}\n"
               ":3000 {\n\tlog\n\tmercure {\n\t\tpublisher_jwt pub\n\t\tanonymous\n\t}\n}\n",
               no_env);
    ASSERT_EQ_INT(5000, cfg.shutdown_delay_ms);
    ASSERT_EQ_INT(60000, cfg.grace_period_ms);
    ASSERT(cfg.log_json && cfg.debug && cfg.access_log);
    qs_config_free(&cfg);
    /* Defaults: stop at once, text logs, no access logs; the official Caddyfile's filtered
     * access log is accepted and turns access logs on. */
    must_parse(&cfg, official_caddyfile, keys_env);
    ASSERT_EQ_INT(0, cfg.shutdown_delay_ms);
    ASSERT_EQ_INT(0, cfg.grace_period_ms);
    ASSERT(!cfg.log_json && cfg.access_log);
    qs_config_free(&cfg);
    must_parse(&cfg, ":3000 {\n\tmercure {\n\t\tpublisher_jwt pub\n\t\tanonymous\n\t}\n}\n",
               no_env);
    ASSERT(!cfg.access_log);
    qs_config_free(&cfg);
}

TEST(drain_and_log_errors)
{
    const char *site = ":3000 {\n\tmercure {\n\t\tpublisher_jwt pub\n\t\tanonymous\n\t}\n}\n";
    char *text = qs_xasprintf("{\n\tgrace_period soon\n}\n%s", site);
    must_fail(text, no_env, "Caddyfile:2: grace_period: invalid duration \"soon\"");
    free(text);
    text = qs_xasprintf("{\n\tlog {\n\t\tformat yaml\n\t}\n}\n%s", site);
    must_fail(text, no_env, "Caddyfile:3: log: format: json or console \"yaml\"");
    free(text);
    text = qs_xasprintf("{\n\tlog {\n\t\toutput file /tmp/x\n\t}\n}\n%s", site);
    must_fail(text, no_env, "Caddyfile:3: output: expected 1 value \"file /tmp/x\"");
    free(text);
}
