/* SPDX-License-Identifier: MIT
 * fuzz_config.c - libFuzzer target: the Caddyfile parser with a fixed fake environment, plus
 * the duration and size parsers on the same bytes. Every path must free what it allocates.
 */
#include "config.h"

#include <stdlib.h>

/* Variables that exercise every substitution path: multi-line directives, a PEM-like key with
 * spaces and newlines, braces inside values, an empty value, several site addresses. */
static const char *const fake_env[] = {
    "SERVER_NAME",
    ":3000",
    "GLOBAL_OPTIONS",
    "debug\nadmin off",
    "MERCURE_PUBLISHER_JWT_KEY",
    "-----BEGIN KEY-----\nab cd\n-----END KEY-----",
    "MERCURE_SUBSCRIBER_JWT_KEY",
    "sub",
    "MERCURE_PUBLISHER_JWT_ALG",
    "",
    "MERCURE_EXTRA_DIRECTIVES",
    "anonymous\ncors_origins *\nheartbeat 10ms\ntransport bolt {\n path x.db\n}",
    "MERCURE_TRANSPORT_URL",
    "bolt://fuzz.db",
    "CADDY_SERVER_EXTRA_DIRECTIVES",
    "encode gzip\ntls cert.pem key.pem",
    "SITES",
    ":80 https://[::1]:8443, localhost:3000",
    "B",
    "{",
    "C",
    "}",
    "Q",
    "\"",
    NULL,
};

static const char *fuzz_getenv(const char *name, void *ud)
{
    (void)ud;
    for (size_t i = 0; fake_env[i]; i += 2)
        if (strcmp(fake_env[i], name) == 0)
            return fake_env[i + 1];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qs_config cfg;
    char *err = NULL;
    int rc = qs_config_parse(&cfg, (const char *)data, size, "fuzz", fuzz_getenv, NULL, &err);
    if ((rc == 0) != (err == NULL))
        abort();
    if (err && strchr(err, '\n'))
        abort(); /* errors are one line */
    free(err);
    qs_config_free(&cfg);

    /* The value parsers on a NUL-terminated copy of a short prefix. */
    if (size <= 64) {
        char s[65];
        memcpy(s, data, size);
        s[size] = '\0';
        uint64_t v;
        qs_parse_duration_ms(s, &v);
        qs_parse_size(s, &v);
    }
    return 0;
}
