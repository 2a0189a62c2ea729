/* SPDX-License-Identifier: MIT
 * server.c - assembling the hub: keys, transport, workers; the bus; shutdown.
 */
#include "server.h"

#include <inttypes.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "index.h"
#include "log.h"
#include "routes.h"
#include "subscriptions.h"
#include "tls.h"
#include "worker.h"

static int load_key(const char *directive, const char *material, const char *alg_name,
                    qs_keys **out, char **err)
{
    enum qs_jwt_alg alg;
    if (qs_jwt_alg_parse(alg_name, &alg) < 0) {
        *err = qs_xasprintf("%s: unsupported algorithm \"%s\"", directive, alg_name);
        return -1;
    }
    const char *why = NULL;
    qs_jwt_key *key = qs_jwt_key_new(alg, material, strlen(material), &why);
    if (!key) {
        *err = qs_xasprintf("%s: the %s key cannot be used: %s", directive, qs_jwt_alg_name(alg),
                            why ? why : "invalid key");
        return -1;
    }
    *out = qs_keys_new_static(key);
    if (qs_jwt_alg_is_hmac(alg) && strstr(material, "-----BEGIN "))
        qs_warn("%s: the key looks like a PEM document but the algorithm is %s: it is used as "
                "a shared secret; set the algorithm (e.g. RS256) to use it as a public key",
                directive, qs_jwt_alg_name(alg));
    return 0;
}

static void lowercase_all(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (char *p = list[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
}

/* Go raises the soft open-file limit to the hard one at start-up; so do we, since every
 * subscriber is a file descriptor. */
static uint64_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (uint64_t)rl.rlim_cur;
}

/* The transport's bus callback: posts u to every worker. */
static void deliver(void *ctx, qs_update *u)
{
    qs_server *s = ctx;
    /* The frame learns its bus position before any worker sees it (history.c compares
     * queued frames with a replay's cursor). */
    u->frame->seq = u->seq;
    for (int i = 0; i < s->hub.n_workers; i++)
        qs_ctx_post_update(s->hub.contexts[i], u);
}

/* A role's keys: its JWK Set when it has one (the reference ignores the static key then),
 * else its static key. */
static int load_role_keys(const qs_config *cfg, bool publisher, int n_workers, qs_keys **out,
                          char **err)
{
    const char *jwks_url = publisher ? cfg->publisher_jwks_url : cfg->subscriber_jwks_url;
    const char *material = publisher ? cfg->publisher_key : cfg->subscriber_key;
    const char *alg = publisher ? cfg->publisher_alg : cfg->subscriber_alg;
    const char *jwt_directive = publisher ? "publisher_jwt" : "subscriber_jwt";
    if (!jwks_url)
        return material && *material ? load_key(jwt_directive, material, alg, out, err) : 0;
    if (material && *material)
        qs_warn("%s is ignored: %s_jwks_url gives the keys", jwt_directive,
                publisher ? "publisher" : "subscriber");
    qs_keys_options o = {.refresh_ms = cfg->jwks_refresh_ms,
                         .min_refresh_ms = cfg->jwks_min_refresh_ms,
                         .timeout_ms = QS_JWKS_FETCH_TIMEOUT_MS,
                         .ca_file = cfg->jwks_ca_file,
                         .n_slots = n_workers};
    *out = qs_keys_new_jwks(publisher ? "publisher_jwks_url" : "subscriber_jwks_url", jwks_url, &o,
                            err);
    return *out ? 0 : -1;
}

int qs_server_init(qs_server *s, qs_config *cfg, char **err)
{
    memset(s, 0, sizeof(*s));
    qs_hub *hub = &s->hub;
    hub->cfg = cfg;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cfg->workers > 0 ? cfg->workers : (int)(cpus > 0 ? cpus : 1);

    if (load_role_keys(cfg, true, n, &hub->publisher_keys, err) < 0)
        return -1;
    /* One JWK Set for both roles is one source: one fetch, one refresher. */
    if (cfg->subscriber_jwks_url && cfg->publisher_jwks_url &&
        strcmp(cfg->subscriber_jwks_url, cfg->publisher_jwks_url) == 0)
        hub->subscriber_keys = hub->publisher_keys;
    else if (load_role_keys(cfg, false, n, &hub->subscriber_keys, err) < 0)
        return -1;
    lowercase_all(cfg->cors_origins, cfg->n_cors_origins);
    lowercase_all(cfg->publish_origins, cfg->n_publish_origins);

    qs_transport_host host = {.deliver = deliver,
                              .presence_lost = cfg->subscriptions ? qs_subscriptions_lost : NULL,
                              .ctx = s};
    if (qs_transport_open(&cfg->transport, &host, &hub->transport, err) < 0)
        return -1;

    uint64_t nofile = raise_nofile();
    hub->max_conns = cfg->max_connections > 0 ? (uint64_t)cfg->max_connections
                                              : (nofile > 64 ? nofile - 64 : nofile);

    bool any_tls = false;
    s->ports = qs_xcalloc(cfg->n_listeners + 1, sizeof(*s->ports));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        s->ports[i] = cfg->listeners[i].port;
        any_tls |= cfg->listeners[i].tls;
    }
    if (any_tls) {
        char *dir = qs_data_dir();
        s->tls = qs_tls_new(cfg, dir, err);
        free(dir);
        if (!s->tls)
            return -1;
    }
    s->workers = qs_xcalloc((size_t)n, sizeof(*s->workers));
    hub->contexts = qs_xcalloc((size_t)n, sizeof(*hub->contexts));
    for (int i = 0; i < n; i++) {
        s->workers[i] = qs_worker_new(hub, i, &qs_routes, s->tls, s->ports, err);
        if (!s->workers[i])
            return -1;
        hub->contexts[i] = qs_worker_ctx(s->workers[i]);
        hub->n_workers = i + 1;
    }
    /* Workers start at the bus position the transport restarts from, so that replays of
     * history stored before a restart are bounded correctly. */
    uint64_t seq = qs_transport_last_seq(hub->transport);
    for (int i = 0; i < n; i++)
        qs_index_set_position(hub->contexts[i]->subscribers, seq);
    return 0;
}

int qs_server_start(qs_server *s, char **err)
{
    qs_transport *t = s->hub.transport;
    if (t->ops->start(t, err) < 0)
        return -1;
    if ((s->hub.publisher_keys && qs_keys_start(s->hub.publisher_keys, err) < 0) ||
        (s->hub.subscriber_keys && qs_keys_start(s->hub.subscriber_keys, err) < 0))
        return -1;
    for (int i = 0; i < s->hub.n_workers; i++)
        if (qs_worker_start(s->workers[i], err) < 0)
            return -1;
    s->started = true;
    return 0;
}

void qs_server_reload_keys(qs_server *s)
{
    qs_keys_reload(s->hub.publisher_keys);
    qs_keys_reload(s->hub.subscriber_keys);
}

int qs_server_reload_tls(qs_server *s, char **err)
{
    if (!s->tls)
        return 0;
    return qs_tls_reload(s->tls, err);
}

void qs_server_stop(qs_server *s)
{
    if (atomic_exchange(&s->stopping, true) || !s->started)
        return;
    /* Not ready at once, so load balancers send no one new; still serving meanwhile. */
    atomic_store(&s->hub.draining, true);
    uint64_t delay = s->hub.cfg->shutdown_delay_ms;
    if (delay) {
        qs_info("draining: reporting not ready, serving for %" PRIu64 " ms before stopping", delay);
        uv_sleep((unsigned)QS_MIN(delay, (uint64_t)UINT32_MAX));
    }
    for (int i = 0; i < s->hub.n_workers; i++)
        qs_worker_request_stop(s->workers[i]);
    for (int i = 0; i < s->hub.n_workers; i++)
        qs_worker_join(s->workers[i]);
    s->hub.transport->ops->stop(s->hub.transport);
    qs_keys_stop(s->hub.publisher_keys);
    qs_keys_stop(s->hub.subscriber_keys);
}

void qs_server_destroy(qs_server *s)
{
    qs_hub *hub = &s->hub;
    for (int i = 0; i < hub->n_workers; i++)
        qs_worker_free(s->workers[i]);
    free(s->workers);
    free(hub->contexts);
    qs_tls_free(s->tls);
    free(s->ports);
    qs_transport_destroy(hub->transport);
    if (hub->subscriber_keys != hub->publisher_keys)
        qs_keys_free(hub->subscriber_keys);
    qs_keys_free(hub->publisher_keys);
    memset(s, 0, sizeof(*s));
}
