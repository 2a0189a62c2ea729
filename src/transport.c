/* SPDX-License-Identifier: MIT
 * transport.c - transport registry: picks the implementation a configuration names.
 */
#include "transport.h"

#include <stdlib.h>

static const qs_transport_ops *const registry[] = {
    &qs_transport_local_ops,
};

void qs_replay_clear(qs_replay *r)
{
    for (size_t i = 0; i < r->n_updates; i++)
        if (r->updates[i])
            qs_update_unref(r->updates[i]);
    free(r->updates);
    r->updates = NULL;
    r->n_updates = 0;
}

char *qs_transport_url_scheme(const char *url)
{
    const char *colon = strstr(url, "://");
    if (!colon || colon == url)
        return NULL;
    for (const char *p = url; p < colon; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (p > url && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
        if (!ok)
            return NULL;
    }
    char *scheme = qs_xstrndup(url, (size_t)(colon - url));
    for (char *p = scheme; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return scheme;
}

static const qs_transport_ops *find_ops(const char *name)
{
    for (size_t i = 0; i < QS_ARRAY_LEN(registry); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int qs_transport_open(const qs_config_transport *cfg, const qs_transport_host *host,
                      qs_transport **out, char **err)
{
    const char *name = cfg->name;
    char *scheme = NULL;
    const char *what = "transport";
    if (!name && cfg->url) {
        scheme = qs_transport_url_scheme(cfg->url);
        if (!scheme) {
            *err = qs_xasprintf("%s:%d: transport_url: not a URL \"%s\"",
                                cfg->source ? cfg->source : "config", cfg->line, cfg->url);
            return -1;
        }
        name = scheme;
        what = "transport_url";
    }
    if (!name)
        name = "local"; /* until the embedded store lands, the default is in memory */
    const qs_transport_ops *ops = find_ops(name);
    if (!ops) {
        *err = qs_xasprintf("%s:%d: %s: transport \"%s\" is not available in this build",
                            cfg->source ? cfg->source : "config", cfg->line, what, name);
        free(scheme);
        return -1;
    }
    free(scheme);
    return ops->create(cfg, host, out, err);
}
