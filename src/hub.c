/* SPDX-License-Identifier: MIT
 * hub.c - assembling the hub: keys, transport, workers; the bus; shutdown.
 */
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

static int load_key(const char *directive, const char *material, const char *alg_name,
                    qs_jwt_key **out, char **err)
{
    enum qs_jwt_alg alg;
    if (qs_jwt_alg_parse(alg_name, &alg) < 0) {
        *err = qs_xasprintf("%s: unsupported algorithm \"%s\"", directive, alg_name);
        return -1;
    }
    const char *why = NULL;
    *out = qs_jwt_key_new(alg, material, strlen(material), &why);
    if (!*out) {
        *err = qs_xasprintf("%s: the %s key cannot be used: %s", directive, qs_jwt_alg_name(alg),
                            why ? why : "invalid key");
        return -1;
    }
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

int qs_hub_init(qs_hub *hub, qs_config *cfg, char **err)
{
    memset(hub, 0, sizeof(*hub));
    hub->cfg = cfg;
    if (cfg->publisher_jwks_url || cfg->subscriber_jwks_url) {
        *err = qs_xstrdup("publisher_jwks_url/subscriber_jwks_url: JWKS keys are not supported "
                          "yet; configure publisher_jwt/subscriber_jwt with a PEM key instead");
        return -1;
    }
    if (cfg->publisher_key && *cfg->publisher_key &&
        load_key("publisher_jwt", cfg->publisher_key, cfg->publisher_alg, &hub->publisher_key,
                 err) < 0)
        return -1;
    if (cfg->subscriber_key && *cfg->subscriber_key &&
        load_key("subscriber_jwt", cfg->subscriber_key, cfg->subscriber_alg, &hub->subscriber_key,
                 err) < 0)
        return -1;
    lowercase_all(cfg->cors_origins, cfg->n_cors_origins);
    lowercase_all(cfg->publish_origins, cfg->n_publish_origins);

    qs_transport_host host = {.deliver = qs_hub_deliver,
                              .presence_lost = cfg->subscriptions ? qs_subscriptions_lost : NULL,
                              .ctx = hub};
    if (qs_transport_open(&cfg->transport, &host, &hub->transport, err) < 0)
        return -1;

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    hub->n_workers = cfg->workers > 0 ? cfg->workers : (int)(cpus > 0 ? cpus : 1);
    uint64_t nofile = raise_nofile();
    uint64_t max_conns = cfg->max_connections > 0 ? (uint64_t)cfg->max_connections
                                                  : (nofile > 64 ? nofile - 64 : nofile);
    hub->max_conns = max_conns;

    hub->workers = qs_xcalloc((size_t)hub->n_workers, sizeof(*hub->workers));
    int port = cfg->listen_port;
    for (int i = 0; i < hub->n_workers; i++) {
        if (qs_worker_init(&hub->workers[i], hub, i, &port, err) < 0) {
            hub->n_workers = i + 1; /* destroy what was set up */
            return -1;
        }
    }
    hub->listen_port = port;
    /* Workers start at the bus position the transport restarts from, so that replays of
     * history stored before a restart are bounded correctly. */
    uint64_t seq = qs_transport_last_seq(hub->transport);
    for (int i = 0; i < hub->n_workers; i++)
        hub->workers[i].bus_seq = seq;
    return 0;
}

int qs_hub_start(qs_hub *hub, char **err)
{
    if (hub->transport->ops->start(hub->transport, err) < 0)
        return -1;
    for (int i = 0; i < hub->n_workers; i++)
        if (qs_worker_start(&hub->workers[i], err) < 0)
            return -1;
    hub->started = true;
    return 0;
}

void qs_hub_deliver(void *ctx, qs_update *u)
{
    qs_hub *hub = ctx;
    /* The frame learns its bus position before any worker sees it (see replay_task). */
    u->frame->seq = u->seq;
    for (int i = 0; i < hub->n_workers; i++)
        qs_worker_post_update(&hub->workers[i], u);
}

void qs_hub_stop(qs_hub *hub)
{
    if (atomic_exchange(&hub->stopping, true) || !hub->started)
        return;
    for (int i = 0; i < hub->n_workers; i++)
        qs_worker_request_stop(&hub->workers[i]);
    for (int i = 0; i < hub->n_workers; i++)
        qs_worker_join(&hub->workers[i]);
    hub->transport->ops->stop(hub->transport);
}

void qs_hub_destroy(qs_hub *hub)
{
    for (int i = 0; i < hub->n_workers; i++)
        qs_worker_destroy(&hub->workers[i]);
    free(hub->workers);
    qs_transport_destroy(hub->transport);
    if (hub->publisher_key)
        qs_jwt_key_free(hub->publisher_key);
    if (hub->subscriber_key)
        qs_jwt_key_free(hub->subscriber_key);
    memset(hub, 0, sizeof(*hub));
}
