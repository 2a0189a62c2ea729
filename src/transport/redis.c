/* SPDX-License-Identifier: MIT
 * redis.c - the cluster transport: any number of hub processes sharing one Redis behave as
 * one hub. Here: its options, the publish script and the writer, the bus, the reader
 * (history and presence reads), health, and the transport's operations. One connection to
 * Redis is redis_client.c; the registry of the cluster's subscriptions is
 * redis_presence.c.
 *
 * Keys (the stream's name is the configured stream; every other key is prefixed by it):
 *   <stream>                  the stream of updates: entry id "<n>-0", field "r" = record
 *                             (record.h), where n is the bus seq every node delivers it with
 *   <stream>:seq              the counter that hands out n
 *   <stream>:ids              sorted set: event id -> n (Last-Event-ID lookups)
 *   <stream>:nodes, <stream>:presence:<node>, <stream>:alive:<node>: the presence registry
 *                             (redis_presence.h)
 *
 * Publishes run one Lua script call per group of queued publishes, atomically: INCRBY the
 * counter, then per update XADD with the explicit id "<n>-0" (MAXLEN ~ retention) and ZADD
 * NX the event id (so a duplicated custom id resolves to its earliest occurrence), and every
 * 256 positions trim the index below the stream's first entry, so the index follows the
 * stream's retention. The stream id encodes the seq, so the
 * order, the ids and the seqs are the same on every node, and a lookup is ZSCORE + XRANGE
 * (an index, never a scan).
 *
 * Threads, each with its own connection (blocking I/O with timeouts; never a worker):
 *  - the writer takes the publish queue and pipelines it: every queued EVALSHA is sent,
 *    then every reply read, then the callbacks run. It also writes this node's presence
 *    entries, refreshes its lease and takes dead nodes' entries.
 *  - the bus tails the stream with XREAD BLOCK and hands every entry, in stream order, to
 *    host->deliver: the node's own publishes come back this way too.
 *  - the reader serves history pulls and reads of the cluster's presence registry.
 * The transport's lock (base.mu) guards the queues, the links' states, the bus position and
 * this node's presence entries; no thread holds it during I/O. The hub's threads only
 * queue work (publish, replay, presence) and read health; stop() wakes the threads' waits
 * (qs_redis_client_ctx_wake) and joins them.
 *
 * Failures: a connection that fails is retried with a backoff (100 ms doubling to 2 s).
 * While the writer or the bus is down the transport is unhealthy with a reason (/healthz
 * answers 503 with it), publishes fail at once with -EAGAIN (503), subscribers stay
 * connected, and the bus resumes XREAD after the last entry it delivered: nothing is
 * delivered twice and, with Redis persisting its writes (appendfsync always), nothing
 * acknowledged is lost. A publish whose reply never came (Redis died in between) is
 * answered 503 although it may have been stored: delivery is at least once for publishes
 * that a client retries after a 503. While the writer is down, presence changes are kept
 * in memory only; it rewrites this node's hash when it reconnects.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "log.h"
#include "record.h"
#include "transport/redis.h"
#include "transport/redis_client.h"
#include "transport/redis_presence.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define BUS_BLOCK_MS 1000    /* XREAD BLOCK: the bus checks for stop at least this often */
#define BUS_COUNT 1000       /* entries per XREAD, at most */
#define BUS_BYTES (8u << 20) /* …and about this many bytes (COUNT follows the entries' size) */
#define MAX_PIPELINE 4096    /* queued items sent in one round trip, at most */
#define MAX_PIPELINE_BYTES (8u << 20) /* …and about this many bytes of updates */

/* Publishes a group of updates in one call. KEYS: stream, seq, ids. ARGV: max length (0 =
 * unbounded), floor (the node's last seq), then an event id and a record per update.
 * Returns an array with, per update, its n or an error. The floor and the XADD retry keep
 * n above every id the stream ever had, even if the counter was lost (evicted, deleted,
 * Redis restored from an older snapshot). One call per group rather than per update: the
 * script's own overhead is most of what a publish costs Redis. */
static const char publish_script[] =
    "local k = (#ARGV - 2) / 2\n"
    "local n = redis.call('INCRBY', KEYS[2], k) - k\n"
    "local floor = tonumber(ARGV[2])\n"
    "if n < floor then n = floor end\n"
    "local function add(seq, rec)\n"
    "  local id = string.format('%d-0', seq)\n"
    "  if ARGV[1] ~= '0' then\n"
    "    return redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id, 'r', rec)\n"
    "  end\n"
    "  return redis.pcall('XADD', KEYS[1], id, 'r', rec)\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, k do\n"
    "  local rec = ARGV[2 + 2 * i]\n"
    "  n = n + 1\n"
    "  local r = add(n, rec)\n"
    "  if type(r) == 'table' and r.err then\n"
    "    local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)\n"
    "    if top[1] then\n"
    "      n = tonumber(string.match(top[1][1], '^(%d+)')) + 1\n"
    "      r = add(n, rec)\n"
    "    end\n"
    "  end\n"
    "  if type(r) == 'table' and r.err then\n"
    "    out[i] = r\n"
    "  else\n"
    "    redis.call('ZADD', KEYS[3], 'NX', n, ARGV[1 + 2 * i])\n"
    "    out[i] = n\n"
    "    if n % 256 == 0 then\n"
    "      local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)\n"
    "      if first[1] then\n"
    "        local f = tonumber(string.match(first[1][1], '^(%d+)'))\n"
    "        redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.format('%d', f))\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if n > tonumber(redis.call('GET', KEYS[2])) then redis.call('SET', KEYS[2], n) end\n"
    "return out\n";

/* ------------------------------------------------------------ types */

/* The state of one connection, for health, logs and backoff; guarded by the mutex. */
typedef struct link_state {
    const char *name;
    bool up;
    char reason[QS_REASON_MAX]; /* why it is down; empty when it never failed */
    uint64_t backoff_ms;
    uint64_t retry_at_ms;
} link_state;

enum { W_DONE = 0, W_PUBLISH, W_PRESENCE }; /* W_DONE: completed */

typedef struct witem {
    int kind;
    qs_update *u; /* W_PUBLISH */
    qs_publish_cb cb;
    void *arg;
    qs_buf cmds;    /* W_PRESENCE: the commands of a presence change, in RESP */
    size_t replies; /* …and how many replies they produce */
} witem;

typedef struct rjob {
    qs_replay *r;         /* a history pull, or */
    qs_presence_query *q; /* a read of the registry */
} rjob;

typedef struct redis_transport {
    qs_transport base;
    qs_transport_host host;
    qs_redis_settings s;
    char *addr; /* "host:port" for logs */
    char *k_seq, *k_ids;
    qs_redis_client_script publish;
    char max_length_arg[24];
    qs_redis_client_ctx rctx; /* shared by the connections; woken when stop() begins */

    uv_cond_t writer_cond, reader_cond;
    bool stopping, threads_started;
    uv_thread_t writer, bus, reader;

    /* The writer's queue and connection. */
    witem *queue;
    size_t qn, qcap;
    qs_redis_client wconn;
    link_state wlink;

    /* The bus: its connection, and its position (base.seq, base.last_id: the last
     * delivered update, or the start position). */
    qs_redis_client bconn;
    link_state blink;
    bool have_position;
    char cursor[64];   /* the stream id XREAD continues after */
    size_t bus_avg;    /* bytes per delivered entry, to size XREAD (bus thread only) */
    uint64_t base_seq; /* the position the bus started at */

    /* The reader's jobs and connection. */
    rjob *jobs;
    size_t jn, jcap;
    qs_redis_client hconn; /* history and presence reads */
    link_state rlink;
    size_t avg_record; /* bytes, to size XRANGE pulls (reader thread only) */

    /* The cluster's registry of subscriptions: this node's entries are under mu. */
    qs_redis_presence presence;
} redis_transport;

/* ------------------------------------------------------------ options and stream entries */

static void settings_defaults(qs_redis_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->port = QS_REDIS_DEFAULT_PORT;
    s->max_length = QS_REDIS_DEFAULT_MAX_LENGTH;
    s->timeout_ms = QS_REDIS_DEFAULT_TIMEOUT_MS;
    s->presence_ttl_ms = QS_REDIS_DEFAULT_PRESENCE_TTL_MS;
}

void qs_redis_settings_free(qs_redis_settings *s)
{
    free(s->host);
    free(s->username);
    free(s->password);
    free(s->stream);
    free(s->tls_ca);
    free(s->tls_cert);
    free(s->tls_key);
    memset(s, 0, sizeof(*s));
}

/* Parses "host", "host:port", "[v6]" or "[v6]:port". */
static bool parse_address(const char *a, char **host, int *port)
{
    const char *h = a, *colon = NULL;
    size_t hlen;
    if (*a == '[') {
        const char *close = strchr(a, ']');
        if (!close || close == a + 1)
            return false;
        h = a + 1;
        hlen = (size_t)(close - h);
        if (close[1] == ':')
            colon = close + 1;
        else if (close[1])
            return false;
    } else {
        colon = strrchr(a, ':');
        if (colon && strchr(a, ':') != colon)
            return false; /* a bare IPv6 address needs brackets */
        hlen = colon ? (size_t)(colon - a) : strlen(a);
    }
    if (!hlen)
        return false;
    int p = QS_REDIS_DEFAULT_PORT;
    if (colon) {
        const char *d = colon + 1;
        if (!*d)
            return false;
        long v = 0;
        for (; *d; d++) {
            if (*d < '0' || *d > '9' || v > 65535)
                return false;
            v = v * 10 + (*d - '0');
        }
        if (v < 1 || v > 65535)
            return false;
        p = (int)v;
    }
    free(*host);
    *host = qs_xstrndup(h, hlen);
    *port = p;
    return true;
}

/* Options accepted both in a URL's query and in a block. */
static int read_common(qs_topts *o, qs_redis_settings *s, char **err)
{
    if (qs_topts_u64(o, "max_len_approx", &s->max_length, err) < 0 ||
        qs_topts_u64(o, "max_length", &s->max_length, err) < 0 ||
        qs_topts_bool(o, "tls", &s->tls, err) < 0 ||
        qs_topts_bool(o, "tls_insecure", &s->tls_insecure, err) < 0 ||
        qs_topts_copy(o, "tls_ca", &s->tls_ca, err) < 0 ||
        qs_topts_copy(o, "tls_cert", &s->tls_cert, err) < 0 ||
        qs_topts_copy(o, "tls_key", &s->tls_key, err) < 0 ||
        qs_topts_duration_min(o, "timeout", 100, &s->timeout_ms, err) < 0 ||
        qs_topts_duration_min(o, "presence_ttl", 1000, &s->presence_ttl_ms, err) < 0)
        return -1;
    return 0;
}

/* redis://[user[:password]@]host[:port][/stream][?options]; rediss:// is TLS. */
static int read_url(qs_topts *o, qs_redis_settings *s, char **err)
{
    const qs_url *u = &o->url;
    if (strcmp(u->scheme, "redis") != 0 && strcmp(u->scheme, "rediss") != 0) {
        *err = qs_xasprintf("%s:%d: transport %s: the URL scheme must be redis:// or rediss://, "
                            "not \"%s://\"",
                            o->source, o->line, o->transport, u->scheme);
        return -1;
    }
    if (strcmp(u->scheme, "rediss") == 0)
        s->tls = true;
    if (u->host && *u->host)
        qs_topts_set(&s->host, u->host);
    if (u->port)
        s->port = u->port;
    if (u->user && *u->user)
        qs_topts_set(&s->username, u->user);
    if (u->password)
        qs_topts_set(&s->password, u->password);
    const char *stream = u->path && u->path[0] == '/' ? u->path + 1 : u->path;
    if (stream && *stream)
        qs_topts_set(&s->stream, stream);
    if (read_common(o, s, err) < 0)
        return -1;
    if (o->has_url && !s->password && s->username) {
        /* redis://user@host: the user alone cannot authenticate. */
        *err = qs_xasprintf("%s:%d: transport %s: the URL names user \"%s\" without a password",
                            o->source, o->line, o->transport, s->username);
        return -1;
    }
    return qs_topts_finish(o, err);
}

static int read_block(qs_topts *o, const char *name, qs_redis_settings *s, char **err)
{
    const qs_topt *url = qs_topts_get(o, "url");
    if (url) {
        if (!url->value || !*url->value)
            return qs_topts_fail(o, url, "a value is required", NULL, err);
        qs_config_transport sub = {.name = (char *)name,
                                   .url = (char *)url->value,
                                   .source = (char *)url->source,
                                   .line = url->line};
        qs_topts uo;
        if (qs_topts_load(&sub, name, &uo, err) < 0)
            return -1;
        int rc = read_url(&uo, s, err);
        qs_topts_free(&uo);
        if (rc < 0)
            return -1;
    }
    const qs_topt *addr = qs_topts_get(o, "address");
    if (addr && (!addr->value || !parse_address(addr->value, &s->host, &s->port)))
        return qs_topts_fail(o, addr, "expected host:port", NULL, err);
    if (qs_topts_copy(o, "stream", &s->stream, err) < 0 ||
        qs_topts_copy(o, "username", &s->username, err) < 0 ||
        qs_topts_copy(o, "password", &s->password, err) < 0 || read_common(o, s, err) < 0)
        return -1;
    return qs_topts_finish(o, err);
}

int qs_redis_settings_load(const qs_config_transport *cfg, qs_redis_settings *s, char **err)
{
    settings_defaults(s);
    const char *name = cfg->name ? cfg->name : "redis";
    qs_topts o;
    if (qs_topts_load(cfg, name, &o, err) < 0)
        return -1;
    int rc = o.has_url ? read_url(&o, s, err) : read_block(&o, name, s, err);
    if (!rc) {
        if (!s->host)
            s->host = qs_xstrdup(QS_REDIS_DEFAULT_HOST);
        if (!s->stream)
            s->stream = qs_xstrdup(QS_REDIS_DEFAULT_STREAM);
        const char *what = NULL;
        if (strlen(s->stream) > 512)
            what = "the stream name is longer than 512 bytes";
        else if (!s->tls && (s->tls_ca || s->tls_cert || s->tls_key || s->tls_insecure))
            what = "TLS options need TLS (rediss:// or tls)";
        else if (!s->tls_cert != !s->tls_key)
            what = "tls_cert and tls_key go together";
        if (what) {
            *err = qs_xasprintf("%s:%d: transport %s: %s", o.source, o.line, name, what);
            rc = -1;
        }
    }
    qs_topts_free(&o);
    if (rc)
        qs_redis_settings_free(s);
    return rc;
}

bool qs_redis_parse_stream_id(const char *s, size_t len, uint64_t *ms, uint64_t *seq)
{
    uint64_t parts[2] = {0, 0};
    int part = 0;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '-' && part == 0 && digits) {
            part = 1;
            digits = 0;
            continue;
        }
        if (c < '0' || c > '9' || parts[part] > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
            return false;
        parts[part] = parts[part] * 10 + (uint64_t)(c - '0');
        digits++;
    }
    if (part != 1 || !digits)
        return false;
    *ms = parts[0];
    *seq = parts[1];
    return true;
}

qs_update *qs_redis_entry_update(const redisReply *e, uint64_t *seq)
{
    *seq = 0;
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2)
        return NULL;
    const redisReply *id = e->element[0], *fields = e->element[1];
    uint64_t ms, sub;
    if (id->type != REDIS_REPLY_STRING || !qs_redis_parse_stream_id(id->str, id->len, &ms, &sub))
        return NULL;
    *seq = ms;
    if (sub != 0 || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || k->len != 1 || k->str[0] != 'r' ||
            v->type != REDIS_REPLY_STRING)
            continue;
        qs_update *u = qs_record_decode(v->str, v->len);
        if (!u)
            return NULL;
        u->seq = ms;
        qs_update_finalize(u);
        return u;
    }
    return NULL;
}

/* ------------------------------------------------------------ the connections' states */

/* Marks a connection up (under mu); true when it was down after a failure (worth a log). */
static bool link_up_locked(link_state *l)
{
    bool restored = !l->up && l->reason[0];
    l->up = true;
    l->reason[0] = '\0';
    l->backoff_ms = 0;
    l->retry_at_ms = 0;
    return restored;
}

static void link_up(redis_transport *t, link_state *l)
{
    uv_mutex_lock(&t->base.mu);
    bool restored = link_up_locked(l);
    uv_mutex_unlock(&t->base.mu);
    if (restored)
        qs_info("redis %s: %s connection restored", t->addr, l->name);
}

/* Marks a connection down: the first retry after a working connection is immediate (Redis
 * may just have restarted), then the delay doubles up to BACKOFF_MAX_MS. */
static void link_down(redis_transport *t, link_state *l, const char *reason)
{
    uint64_t now = qs_now_ms();
    uv_mutex_lock(&t->base.mu);
    bool changed = l->up || strcmp(l->reason, reason) != 0;
    if (l->up) {
        l->backoff_ms = 0;
        l->retry_at_ms = now;
    } else {
        l->backoff_ms =
            l->backoff_ms ? QS_MIN(l->backoff_ms * 2, (uint64_t)BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
        l->retry_at_ms = now + l->backoff_ms;
    }
    l->up = false;
    snprintf(l->reason, sizeof(l->reason), "%s", reason);
    uv_mutex_unlock(&t->base.mu);
    if (changed)
        qs_error("redis %s: %s connection: %s", t->addr, l->name, reason);
}

/* Why publishes are refused now (under mu): the writer's reason, else the bus's. */
static void down_reason(redis_transport *t, char reason[QS_REASON_MAX])
{
    const char *why = !t->wlink.up ? t->wlink.reason : t->blink.reason;
    snprintf(reason, QS_REASON_MAX, "%s", why[0] ? why : "redis unavailable");
}

/* ------------------------------------------------------------ the bus */

/* Reads the last entry: the position a fresh node starts delivering after. */
static int read_tail(redis_transport *t, qs_redis_client *c)
{
    const char *argv[] = {"XREVRANGE", t->s.stream, "+", "-", "COUNT", "1"};
    redisReply *r = NULL;
    if (qs_redis_client_call(c, 6, argv, &r, true) < 0)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        rc = qs_redis_client_fail_reply(c, "redis unavailable", r);
    } else if (r->type != REDIS_REPLY_ARRAY) {
        rc = qs_redis_client_fail(c, "redis unavailable: unexpected reply to XREVRANGE");
    } else {
        uint64_t n = 0;
        char cursor[64] = "0-0";
        qs_update *last = NULL;
        if (r->elements) {
            const redisReply *e = r->element[0];
            last = qs_redis_entry_update(e, &n);
            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < sizeof(cursor))
                snprintf(cursor, sizeof(cursor), "%.*s", (int)e->element[0]->len,
                         e->element[0]->str);
        }
        uv_mutex_lock(&t->base.mu);
        qs_transport_set_position(&t->base, n, last ? last->id : NULL);
        t->base_seq = n;
        snprintf(t->cursor, sizeof(t->cursor), "%s", cursor);
        t->have_position = true;
        uv_mutex_unlock(&t->base.mu);
        if (last)
            qs_update_unref(last);
    }
    freeReplyObject(r);
    return rc;
}

static int bus_connect(redis_transport *t)
{
    qs_redis_client *c = &t->bconn;
    uv_mutex_lock(&t->base.mu);
    bool positioned = t->have_position;
    uv_mutex_unlock(&t->base.mu);
    if (qs_redis_client_open(c, true) < 0 || (!positioned && read_tail(t, c) < 0)) {
        qs_redis_client_close(c);
        link_down(t, &t->blink, c->err);
        return -1;
    }
    link_up(t, &t->blink);
    return 0;
}

static bool is_stopping(redis_transport *t)
{
    uv_mutex_lock(&t->base.mu);
    bool s = t->stopping;
    uv_mutex_unlock(&t->base.mu);
    return s;
}

/* Delivers the entries of one XREAD reply, in order. */
static void bus_deliver(redis_transport *t, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *st = r->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
            st->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *entries = st->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            const redisReply *e = entries->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[0]->len >= sizeof(t->cursor))
                continue;
            uint64_t seq;
            qs_update *u = qs_redis_entry_update(e, &seq);
            uv_mutex_lock(&t->base.mu);
            snprintf(t->cursor, sizeof(t->cursor), "%.*s", (int)e->element[0]->len,
                     e->element[0]->str);
            bool fresh = u && seq > t->base.seq;
            if (fresh)
                qs_transport_set_position(&t->base, seq, u->id);
            uv_mutex_unlock(&t->base.mu);
            if (!u) {
                qs_warn("redis %s: skipping stream entry %s of \"%s\": not a Quicksilver update",
                        t->addr, t->cursor, t->s.stream);
                continue;
            }
            if (fresh) {
                size_t size = u->frame->len + 64;
                t->bus_avg = t->bus_avg ? (t->bus_avg * 15 + size) / 16 : size;
                t->host.deliver(t->host.ctx, u);
            }
            qs_update_unref(u);
        }
    }
}

static void bus_main(void *arg)
{
    redis_transport *t = arg;
    qs_redis_client *c = &t->bconn;
    while (!is_stopping(t)) {
        if (!qs_redis_client_is_open(c)) {
            uv_mutex_lock(&t->base.mu);
            uint64_t at = t->blink.retry_at_ms;
            uv_mutex_unlock(&t->base.mu);
            uint64_t now = qs_now_ms();
            if (now < at) {
                qs_redis_client_ctx_sleep(&t->rctx, at - now);
                continue;
            }
            if (bus_connect(t) < 0)
                continue;
        }
        char cursor[64], block[16], count[16];
        uv_mutex_lock(&t->base.mu);
        snprintf(cursor, sizeof(cursor), "%s", t->cursor);
        uv_mutex_unlock(&t->base.mu);
        snprintf(block, sizeof(block), "%d", BUS_BLOCK_MS);
        size_t avg = t->bus_avg ? t->bus_avg : 256;
        snprintf(count, sizeof(count), "%zu",
                 QS_MAX((size_t)1, QS_MIN((size_t)BUS_COUNT, BUS_BYTES / avg)));
        const char *argv[] = {"XREAD", "BLOCK",   block,       "COUNT",
                              count,   "STREAMS", t->s.stream, cursor};
        qs_buf b = QS_BUF_INIT;
        qs_redis_client_format(&b, 8, argv);
        uint64_t deadline = qs_redis_client_deadline(c) + BUS_BLOCK_MS;
        redisReply *r = NULL;
        int rc = qs_redis_client_send(c, b.p, b.len, deadline, true);
        qs_buf_free(&b);
        if (rc == 0)
            rc = qs_redis_client_read(c, &r, deadline, true);
        if (rc < 0) {
            qs_redis_client_close(c);
            if (!is_stopping(t))
                link_down(t, &t->blink, c->err);
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            qs_redis_client_close(c);
            char why[QS_REASON_MAX];
            link_down(t, &t->blink,
                      qs_redis_client_reply_error(why, QS_REASON_MAX, "redis unavailable", r));
        } else {
            bus_deliver(t, r);
        }
        freeReplyObject(r);
    }
    qs_redis_client_close(c);
}

/* ------------------------------------------------------------ the writer */

static void witem_free(witem *w)
{
    if (w->u)
        qs_update_unref(w->u);
    qs_buf_free(&w->cmds);
    memset(w, 0, sizeof(*w));
}

/* Completes a publish and releases the item. */
static void witem_finish(witem *w, int status, const char *reason)
{
    if (w->kind == W_PUBLISH)
        w->cb(w->arg, status, reason);
    witem_free(w);
}

/* Opens the writer's connection, loads the publish script and rewrites this node's
 * presence hash. The link goes up in the same lock as the presence snapshot is taken:
 * presence changes made after it are queued, and sent after the rewrite. (The connection
 * phase can be interrupted by stop(); a connected writer is never interrupted, so queued
 * publishes get their real outcome.) */
static bool writer_connect(redis_transport *t)
{
    qs_redis_client *c = &t->wconn;
    if (qs_redis_client_open(c, true) < 0 || qs_redis_client_script_load(c, &t->publish) < 0) {
        qs_redis_client_close(c);
        link_down(t, &t->wlink, c->err);
        return false;
    }
    qs_buf cmds = QS_BUF_INIT;
    uv_mutex_lock(&t->base.mu);
    size_t replies = qs_redis_presence_rewrite_cmds(&t->presence, &cmds);
    bool restored = link_up_locked(&t->wlink);
    uv_mutex_unlock(&t->base.mu);
    int rc = qs_redis_client_pipeline(c, &cmds, replies);
    qs_buf_free(&cmds);
    if (rc < 0) {
        qs_redis_client_close(c);
        link_down(t, &t->wlink, c->err);
        return false;
    }
    if (restored)
        qs_info("redis %s: %s connection restored", t->addr, t->wlink.name);
    return true;
}

/* Most updates published by one script call. */
#define PUBLISH_GROUP 64

/* Appends one script call publishing items[0..n) (all W_PUBLISH). */
static void append_publish_group(redis_transport *t, qs_buf *out, qs_buf *rec, const witem *items,
                                 size_t n, const char *floor, bool full_script)
{
    qs_redis_client_format_begin(out, 8 + 2 * n);
    qs_redis_client_format_str(out, full_script ? "EVAL" : "EVALSHA");
    qs_redis_client_format_str(out, full_script ? t->publish.text : t->publish.sha);
    qs_redis_client_format_str(out, "3");
    qs_redis_client_format_str(out, t->s.stream);
    qs_redis_client_format_str(out, t->k_seq);
    qs_redis_client_format_str(out, t->k_ids);
    qs_redis_client_format_str(out, t->max_length_arg);
    qs_redis_client_format_str(out, floor);
    for (size_t i = 0; i < n; i++) {
        qs_redis_client_format_str(out, items[i].u->id);
        qs_buf_reset(rec);
        qs_record_encode(items[i].u, rec);
        qs_redis_client_format_arg(out, rec->p ? rec->p : "", rec->len);
    }
}

/* Completes one publish from its element of the script's reply. */
static void finish_one_publish(redis_transport *t, witem *w, const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        witem_finish(w, 0, NULL);
    } else if (r->type == REDIS_REPLY_ERROR) {
        bool again = qs_redis_client_is_transient(r);
        char why[QS_REASON_MAX];
        qs_redis_client_reply_error(why, QS_REASON_MAX, "redis refused the publish", r);
        qs_warn("redis %s: publish %s failed: %s", t->addr, w->u->id, why);
        witem_finish(w, again ? -EAGAIN : -EIO, why);
    } else {
        witem_finish(w, -EIO, "redis: unexpected reply to the publish script");
    }
}

/* Reads the reply of a group's script call and completes its n items; returns 1 when the
 * group must be sent again with the full script (NOSCRIPT), 0 when done, -1 when the
 * connection failed (the items are then still pending). */
static int finish_publish_group(redis_transport *t, qs_redis_client *c, witem *items, size_t n,
                                uint64_t deadline)
{
    redisReply *r = NULL;
    if (qs_redis_client_read(c, &r, deadline, false) < 0)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == n) {
        for (size_t i = 0; i < n; i++)
            finish_one_publish(t, &items[i], r->element[i]);
    } else if (qs_redis_client_is_noscript(r)) {
        rc = 1;
    } else {
        for (size_t i = 0; i < n; i++)
            finish_one_publish(t, &items[i], r);
    }
    freeReplyObject(r);
    return rc;
}

/* The length of the run of publishes starting at items[i], at most PUBLISH_GROUP. */
static size_t publish_run(const witem *items, size_t i, size_t n)
{
    size_t k = 0;
    while (i + k < n && k < PUBLISH_GROUP && items[i + k].kind == W_PUBLISH)
        k++;
    return k;
}

/* The connection failed: items not completed yet fail with `reason`. */
static void writer_lost(redis_transport *t, witem *items, size_t from, size_t n, const char *reason)
{
    qs_redis_client *c = &t->wconn;
    qs_redis_client_close(c);
    link_down(t, &t->wlink, c->err);
    for (size_t i = from; i < n; i++)
        if (items[i].kind != W_DONE)
            witem_finish(&items[i], -EAGAIN, reason);
}

/* The connection broke before a publish's reply: the update may have been stored. */
static void unconfirmed_reason(char why[QS_REASON_MAX], const qs_redis_client *c)
{
    snprintf(why, QS_REASON_MAX,
             "redis unavailable: connection lost before the publish was confirmed (%.180s)",
             qs_redis_client_err_detail(c));
}

/* One round trip: every item's commands, then every reply. */
static void run_batch(redis_transport *t, witem *items, size_t n, bool refresh)
{
    qs_redis_client *c = &t->wconn;
    char floor[24];
    uv_mutex_lock(&t->base.mu);
    snprintf(floor, sizeof(floor), "%" PRIu64, t->base.seq);
    bool has_entries = qs_redis_presence_count(&t->presence) > 0;
    uv_mutex_unlock(&t->base.mu);
    refresh = refresh && has_entries;

    qs_buf out = QS_BUF_INIT, rec = QS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        witem *w = &items[i];
        if (w->kind == W_PUBLISH) {
            size_t k = publish_run(items, i, n);
            append_publish_group(t, &out, &rec, w, k, floor, false);
            i += k - 1;
        } else if (w->kind == W_PRESENCE) {
            qs_buf_append(&out, w->cmds.p, w->cmds.len);
        }
    }
    if (refresh)
        qs_redis_presence_refresh_cmds(&t->presence, &out);

    uint64_t deadline = qs_redis_client_deadline(c);
    if (qs_redis_client_send(c, out.p, out.len, deadline, false) < 0) {
        writer_lost(t, items, 0, n, c->err);
        goto out;
    }
    /* Replies come in command order. Groups refused with NOSCRIPT (the script cache was
     * flushed) are retried below with the full script. */
    size_t n_retry = 0;
    for (size_t i = 0; i < n; i++) {
        witem *w = &items[i];
        int rc = 0;
        if (w->kind == W_PUBLISH) {
            size_t k = publish_run(items, i, n);
            rc = finish_publish_group(t, c, w, k, deadline);
            if (rc == 1) {
                /* n_retry <= i: compacts them to the front */
                for (size_t j = 0; j < k; j++) {
                    items[n_retry++] = items[i + j];
                    if (n_retry - 1 != i + j)
                        memset(&items[i + j], 0, sizeof(items[i + j]));
                }
                rc = 0;
            }
            if (rc == 0)
                i += k - 1;
        } else {
            for (size_t k = 0; k < w->replies && rc == 0; k++)
                rc = qs_redis_presence_read_reply(&t->presence, c, deadline) < 0 ? -1 : 0;
            if (rc == 0)
                witem_free(w);
        }
        if (rc < 0) {
            /* The connection broke before this reply: the update may have been stored. */
            char why[QS_REASON_MAX];
            unconfirmed_reason(why, c);
            for (size_t k = 0; k < n_retry; k++)
                witem_finish(&items[k], -EAGAIN, why);
            writer_lost(t, items, i, n, why);
            goto out;
        }
    }
    if (refresh && qs_redis_presence_refreshed(&t->presence, c, deadline) < 0) {
        writer_lost(t, items, 0, n_retry, c->err);
        goto out;
    }
    if (n_retry) {
        qs_buf_reset(&out);
        for (size_t i = 0; i < n_retry; i += publish_run(items, i, n_retry))
            append_publish_group(t, &out, &rec, &items[i], publish_run(items, i, n_retry), floor,
                                 true);
        deadline = qs_redis_client_deadline(c);
        if (qs_redis_client_send(c, out.p, out.len, deadline, false) < 0) {
            writer_lost(t, items, 0, n_retry, c->err);
            goto out;
        }
        for (size_t i = 0; i < n_retry;) {
            size_t k = publish_run(items, i, n_retry);
            int rc = finish_publish_group(t, c, &items[i], k, deadline);
            if (rc == 1)
                for (size_t j = 0; j < k; j++)
                    witem_finish(&items[i + j], -EIO, "redis: the publish script cannot be loaded");
            if (rc < 0) {
                char why[QS_REASON_MAX];
                unconfirmed_reason(why, c);
                writer_lost(t, items, i, n_retry, why);
                goto out;
            }
            i += k;
        }
    }
out:
    qs_buf_free(&out);
    qs_buf_free(&rec);
}

static void writer_main(void *arg)
{
    redis_transport *t = arg;
    witem *batch = NULL;
    size_t cap = 0;
    uint64_t next_refresh = qs_now_ms() + qs_redis_presence_refresh_ms(&t->presence);
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        if (!qs_redis_client_is_open(&t->wconn)) {
            /* Disconnected: what is queued cannot be sent (publishes fail, presence changes
             * are rewritten in full after reconnecting). */
            if (t->qn) {
                char why[QS_REASON_MAX];
                snprintf(why, sizeof(why), "%s",
                         t->wlink.reason[0] ? t->wlink.reason : "redis unavailable");
                witem *q = t->queue;
                size_t n = t->qn;
                t->queue = NULL;
                t->qn = t->qcap = 0;
                uv_mutex_unlock(&t->base.mu);
                for (size_t i = 0; i < n; i++)
                    witem_finish(&q[i], -EAGAIN, why);
                free(q);
                uv_mutex_lock(&t->base.mu);
                continue;
            }
            if (t->stopping)
                break;
            uint64_t now = qs_now_ms();
            if (now < t->wlink.retry_at_ms) {
                uv_cond_timedwait(&t->writer_cond, &t->base.mu,
                                  (t->wlink.retry_at_ms - now) * 1000000);
                continue;
            }
            uv_mutex_unlock(&t->base.mu);
            writer_connect(t);
            uv_mutex_lock(&t->base.mu);
            continue;
        }
        uint64_t now = qs_now_ms();
        if (!t->qn && !t->stopping && now < next_refresh) {
            uv_cond_timedwait(&t->writer_cond, &t->base.mu, (next_refresh - now) * 1000000);
            continue;
        }
        if (!t->qn && t->stopping)
            break;
        /* Take up to MAX_PIPELINE queued items: they share one round trip. */
        size_t n = 0, bytes = 0;
        while (n < t->qn && n < MAX_PIPELINE && bytes < MAX_PIPELINE_BYTES) {
            const witem *w = &t->queue[n++];
            bytes += 128 + (w->u ? w->u->frame->len : 0) + w->cmds.len;
        }
        if (n > cap) {
            cap = QS_MAX(n, cap * 2);
            batch = qs_xrealloc(batch, cap * sizeof(*batch));
        }
        if (n) {
            memcpy(batch, t->queue, n * sizeof(*batch));
            memmove(t->queue, t->queue + n, (t->qn - n) * sizeof(*t->queue));
            t->qn -= n;
        }
        bool refresh = now >= next_refresh;
        if (refresh)
            next_refresh = now + qs_redis_presence_refresh_ms(&t->presence);
        uv_mutex_unlock(&t->base.mu);
        if (!qs_redis_client_alive(&t->wconn)) {
            /* Found dead while idle (Redis restarted): reconnect before sending anything,
             * so these items are not failed for nothing. */
            qs_redis_client_close(&t->wconn);
            if (writer_connect(t)) {
                run_batch(t, batch, n, refresh);
            } else {
                char why[QS_REASON_MAX];
                uv_mutex_lock(&t->base.mu);
                snprintf(why, sizeof(why), "%s", t->wlink.reason);
                uv_mutex_unlock(&t->base.mu);
                for (size_t i = 0; i < n; i++)
                    witem_finish(&batch[i], -EAGAIN, why);
            }
        } else {
            run_batch(t, batch, n, refresh);
        }
        /* Only a node that publishes subscription events takes dead nodes' entries: one
         * that does not would drop their departures. */
        if (refresh && qs_redis_client_is_open(&t->wconn) && t->host.presence_lost &&
            qs_redis_presence_reap(&t->presence, &t->wconn, &t->host) < 0)
            writer_lost(t, NULL, 0, 0, NULL);
        uv_mutex_lock(&t->base.mu);
    }
    uv_mutex_unlock(&t->base.mu);
    if (qs_redis_client_is_open(&t->wconn))
        qs_redis_presence_forget(&t->presence, &t->wconn);
    qs_redis_client_close(&t->wconn);
    free(batch);
}

/* ------------------------------------------------------------ the reader */

static void fail_replay(qs_replay *r, const char *reason)
{
    qs_replay_clear(r);
    r->status = -1;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

/* Fills r; returns -1 when the connection failed (r may be retried), 0 otherwise. */
static int serve_replay(redis_transport *t, qs_replay *r)
{
    qs_redis_client *c = &t->hconn;
    uv_mutex_lock(&t->base.mu);
    /* A node that started while Redis was away has workers at position 0 until its first
     * delivery: everything up to where its bus started is history for them. */
    uint64_t until = QS_MAX(r->until_seq, t->base_seq);
    uv_mutex_unlock(&t->base.mu);
    qs_replay_clear(r);
    r->status = 0;
    r->finished = false;
    uint64_t after = r->after_seq;
    bool check_first = false;
    redisReply *rep = NULL;
    if (!r->continuation) {
        r->id_found = true;
        after = 0;
        if (strcmp(r->after_id, "earliest") != 0) {
            const char *argv[] = {"ZSCORE", t->k_ids, r->after_id};
            if (qs_redis_client_call(c, 3, argv, &rep, false) < 0)
                return -1;
            double score = 0;
            char *end = NULL;
            if (rep->type == REDIS_REPLY_STRING)
                score = strtod(rep->str, &end);
            if (rep->type == REDIS_REPLY_ERROR) {
                char why[QS_REASON_MAX];
                fail_replay(r, qs_redis_client_reply_error(
                                   why, QS_REASON_MAX, "redis refused the history lookup", rep));
            } else if (rep->type != REDIS_REPLY_STRING || end == rep->str || score < 1 ||
                       score > 9007199254740992.0) {
                /* Unknown (never stored, or trimmed): nothing is replayed, as lmdb.c. */
                r->id_found = false;
                r->finished = true;
                r->next_seq = 0;
            } else {
                after = (uint64_t)score;
                check_first = true;
            }
            freeReplyObject(rep);
            rep = NULL;
            if (!check_first)
                return 0;
        }
    }
    r->next_seq = after;
    if (after >= until) {
        r->finished = true; /* nothing between the id and the subscriber's position */
        return 0;
    }
    size_t max_events = r->max_events ? r->max_events : 1024;
    size_t max_bytes = r->max_bytes ? r->max_bytes : (size_t)1 << 20;
    size_t avg = t->avg_record ? t->avg_record : 256;
    size_t count = QS_MIN(QS_MAX((size_t)16, max_bytes / avg + 1), max_events);
    char start[32], stop[32], cnt[24];
    /* From the id's own entry, to check it is still stored (the index trails retention). */
    snprintf(start, sizeof(start), "%" PRIu64 "-0", check_first ? after : after + 1);
    snprintf(stop, sizeof(stop), "%" PRIu64 "-0", until);
    snprintf(cnt, sizeof(cnt), "%zu", count + (check_first ? 1 : 0));
    const char *argv[] = {"XRANGE", t->s.stream, start, stop, "COUNT", cnt};
    if (qs_redis_client_call(c, 6, argv, &rep, false) < 0)
        return -1;
    if (rep->type == REDIS_REPLY_ERROR || rep->type != REDIS_REPLY_ARRAY) {
        char why[QS_REASON_MAX];
        fail_replay(r, rep->type == REDIS_REPLY_ERROR
                           ? qs_redis_client_reply_error(why, QS_REASON_MAX,
                                                         "redis refused the history read", rep)
                           : "redis: unexpected reply to XRANGE");
        freeReplyObject(rep);
        return 0;
    }
    size_t i = 0, cap = 0, bytes = 0;
    if (check_first) {
        uint64_t first = 0;
        qs_update *u = rep->elements ? qs_redis_entry_update(rep->element[0], &first) : NULL;
        if (u)
            qs_update_unref(u);
        if (first != after) {
            r->id_found = false; /* the entry itself was trimmed away */
            r->finished = true;
            r->next_seq = 0;
            freeReplyObject(rep);
            return 0;
        }
        i = 1;
    }
    size_t got = rep->elements - i;
    for (; i < rep->elements; i++) {
        if (r->n_updates >= max_events || bytes >= max_bytes)
            goto more;
        uint64_t seq = 0;
        qs_update *u = qs_redis_entry_update(rep->element[i], &seq);
        if (u) {
            if (r->n_updates == cap) {
                cap = cap ? cap * 2 : 64;
                r->updates = qs_xrealloc(r->updates, cap * sizeof(*r->updates));
            }
            r->updates[r->n_updates++] = u;
            bytes += u->frame->len;
        } else {
            qs_warn("redis %s: skipping an unreadable entry of \"%s\" in a replay", t->addr,
                    t->s.stream);
        }
        if (seq > r->next_seq)
            r->next_seq = seq;
    }
    /* Fewer entries than asked for: the range is exhausted up to `until`. */
    r->finished = got < count || r->next_seq >= until;
more:
    if (r->n_updates)
        t->avg_record = QS_MAX(bytes / r->n_updates, (size_t)1);
    freeReplyObject(rep);
    return 0;
}

/* The reader connects on demand; while Redis is away, requests fail at once until the
 * backoff delay has passed. */
static bool reader_ready(redis_transport *t, char why[QS_REASON_MAX])
{
    qs_redis_client *c = &t->hconn;
    if (qs_redis_client_alive(c))
        return true;
    qs_redis_client_close(c);
    uv_mutex_lock(&t->base.mu);
    bool wait = !t->rlink.up && t->rlink.reason[0] && qs_now_ms() < t->rlink.retry_at_ms;
    if (wait)
        snprintf(why, QS_REASON_MAX, "%s", t->rlink.reason);
    uv_mutex_unlock(&t->base.mu);
    if (wait)
        return false;
    if (qs_redis_client_open(c, false) < 0) {
        snprintf(why, QS_REASON_MAX, "%s", c->err);
        link_down(t, &t->rlink, why);
        return false;
    }
    link_up(t, &t->rlink);
    return true;
}

static void serve_job(redis_transport *t, rjob *j)
{
    char why[QS_REASON_MAX] = "redis unavailable";
    /* A second attempt on a fresh connection: an idle one may be stale after a restart. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!reader_ready(t, why))
            break;
        int rc =
            j->r ? serve_replay(t, j->r) : qs_redis_presence_list(&t->presence, &t->hconn, j->q);
        if (rc == 0) {
            if (j->r)
                j->r->done(j->r);
            else
                j->q->done(j->q);
            return;
        }
        snprintf(why, sizeof(why), "%s", t->hconn.err);
        qs_redis_client_close(&t->hconn);
        link_down(t, &t->rlink, why);
    }
    if (j->r) {
        fail_replay(j->r, why);
        j->r->done(j->r);
    } else {
        j->q->status = -1;
        snprintf(j->q->reason, sizeof(j->q->reason), "%s", why);
        j->q->done(j->q);
    }
}

static void reader_main(void *arg)
{
    redis_transport *t = arg;
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        while (!t->jn && !t->stopping)
            uv_cond_wait(&t->reader_cond, &t->base.mu);
        if (!t->jn)
            break;
        rjob j = t->jobs[0];
        memmove(t->jobs, t->jobs + 1, (t->jn - 1) * sizeof(*t->jobs));
        t->jn--;
        uv_mutex_unlock(&t->base.mu);
        serve_job(t, &j);
        uv_mutex_lock(&t->base.mu);
    }
    uv_mutex_unlock(&t->base.mu);
    qs_redis_client_close(&t->hconn);
}

static void add_job(redis_transport *t, rjob j)
{
    uv_mutex_lock(&t->base.mu);
    if (t->jn == t->jcap) {
        t->jcap = t->jcap ? t->jcap * 2 : 16;
        t->jobs = qs_xrealloc(t->jobs, t->jcap * sizeof(*t->jobs));
    }
    t->jobs[t->jn++] = j;
    uv_cond_signal(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ operations */

static void redis_destroy(qs_transport *base);

static int redis_create(const qs_config_transport *cfg, const qs_transport_host *host,
                        qs_transport **out, char **err)
{
    qs_redis_settings s;
    if (qs_redis_settings_load(cfg, &s, err) < 0)
        return -1;
    redis_transport *t = qs_xcalloc(1, sizeof(*t));
    qs_transport_base_init(&t->base, &qs_transport_redis_ops);
    t->host = *host;
    t->s = s;
    uv_cond_init(&t->writer_cond);
    uv_cond_init(&t->reader_cond);
    qs_redis_client_init(&t->wconn, &t->rctx);
    qs_redis_client_init(&t->bconn, &t->rctx);
    qs_redis_client_init(&t->hconn, &t->rctx);
    t->wlink.name = "publish";
    t->blink.name = "bus";
    t->rlink.name = "history";
    snprintf(t->cursor, sizeof(t->cursor), "0-0");
    bool v6 = strchr(s.host, ':') != NULL;
    t->addr = qs_xasprintf("%s%s%s:%d", v6 ? "[" : "", s.host, v6 ? "]" : "", s.port);
    t->k_seq = qs_xasprintf("%s:seq", s.stream);
    t->k_ids = qs_xasprintf("%s:ids", s.stream);
    qs_redis_client_script_init(&t->publish, publish_script);
    snprintf(t->max_length_arg, sizeof(t->max_length_arg), "%" PRIu64, s.max_length);
    qs_redis_presence_init(&t->presence, s.stream, s.presence_ttl_ms, &t->base.mu, t->addr);
    qs_redis_client_options o = {.host = s.host,
                                 .port = s.port,
                                 .username = s.username,
                                 .password = s.password,
                                 .timeout_ms = s.timeout_ms,
                                 .tls = s.tls,
                                 .tls_insecure = s.tls_insecure,
                                 .tls_ca = s.tls_ca,
                                 .tls_cert = s.tls_cert,
                                 .tls_key = s.tls_key,
                                 .source = cfg->source,
                                 .line = cfg->line};
    if (qs_redis_client_ctx_init(&t->rctx, &o, err) < 0) {
        redis_destroy(&t->base);
        return -1;
    }

    /* Connect now: the workers start at the stream's current end, and publishes are taken
     * as soon as the hub listens. If Redis is away, the hub starts unhealthy and the
     * threads keep trying. */
    bool bus_ok = bus_connect(t) == 0;
    bool writer_ok = bus_ok && writer_connect(t);
    if (!bus_ok) {
        /* No second attempt for the writer now (a dead host would double the wait): it
         * shares the bus's reason and retries from its thread. */
        memcpy(t->wlink.reason, t->blink.reason, sizeof(t->wlink.reason));
        t->wlink.backoff_ms = t->blink.backoff_ms;
        t->wlink.retry_at_ms = t->blink.retry_at_ms;
    }
    if (bus_ok && writer_ok)
        qs_info("redis %s: stream \"%s\", node %s, last event id %s (position %" PRIu64
                "), retention %s%" PRIu64,
                t->addr, s.stream, t->presence.node, t->base.last_id ? t->base.last_id : "none",
                t->base.seq, s.max_length ? "~" : "unbounded", s.max_length);
    else
        qs_warn("redis %s: not available at start (%s): the hub starts unhealthy and keeps "
                "retrying",
                t->addr, t->wlink.reason[0] ? t->wlink.reason : t->blink.reason);
    *out = &t->base;
    return 0;
}

static int redis_start(qs_transport *base, char **err)
{
    redis_transport *t = (redis_transport *)base;
    if (uv_thread_create(&t->writer, writer_main, t) || uv_thread_create(&t->bus, bus_main, t) ||
        uv_thread_create(&t->reader, reader_main, t)) {
        *err = qs_xstrdup("transport redis: cannot start its threads");
        return -1;
    }
    t->threads_started = true;
    return 0;
}

/* Queues an item for the writer (under mu). */
static void queue_push(redis_transport *t, witem w)
{
    if (t->qn == t->qcap) {
        t->qcap = t->qcap ? t->qcap * 2 : 64;
        t->queue = qs_xrealloc(t->queue, t->qcap * sizeof(*t->queue));
    }
    t->queue[t->qn++] = w;
    uv_cond_signal(&t->writer_cond);
}

static void redis_publish(qs_transport *base, qs_update *u, qs_publish_cb cb, void *arg)
{
    redis_transport *t = (redis_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (t->stopping) {
        uv_mutex_unlock(&t->base.mu);
        cb(arg, -EAGAIN, "the hub is shutting down");
        return;
    }
    if (!t->wlink.up || !t->blink.up) {
        char why[QS_REASON_MAX];
        down_reason(t, why);
        uv_mutex_unlock(&t->base.mu);
        cb(arg, -EAGAIN, why);
        return;
    }
    queue_push(t, (witem){.kind = W_PUBLISH, .u = qs_update_ref(u), .cb = cb, .arg = arg});
    uv_mutex_unlock(&t->base.mu);
}

static void redis_replay(qs_transport *base, qs_replay *r)
{
    add_job((redis_transport *)base, (rjob){.r = r});
}

static void redis_presence_list(qs_transport *base, qs_presence_query *q)
{
    add_job((redis_transport *)base, (rjob){.q = q});
}

/* Registers e, or forgets `subscriber` when e is NULL, and queues the write to Redis when
 * the writer is connected (otherwise the local copy is enough: it is written in full after
 * reconnecting). */
static void presence_change(redis_transport *t, const qs_presence_entry *e, const char *subscriber)
{
    witem w = {.kind = W_PRESENCE};
    uv_mutex_lock(&t->base.mu);
    qs_buf *cmds = t->wlink.up ? &w.cmds : NULL;
    w.replies = e ? qs_redis_presence_add(&t->presence, e, cmds)
                  : qs_redis_presence_remove(&t->presence, subscriber, cmds);
    if (w.replies)
        queue_push(t, w);
    uv_mutex_unlock(&t->base.mu);
}

static void redis_presence_add(qs_transport *base, const qs_presence_entry *e)
{
    presence_change((redis_transport *)base, e, NULL);
}

static void redis_presence_remove(qs_transport *base, const char *subscriber)
{
    presence_change((redis_transport *)base, NULL, subscriber);
}

static bool redis_healthy(qs_transport *base, char reason[QS_REASON_MAX])
{
    redis_transport *t = (redis_transport *)base;
    uv_mutex_lock(&t->base.mu);
    bool ok = t->wlink.up && t->blink.up;
    if (!ok)
        down_reason(t, reason);
    uv_mutex_unlock(&t->base.mu);
    return ok;
}

static void redis_stop(qs_transport *base)
{
    redis_transport *t = (redis_transport *)base;
    uv_mutex_lock(&t->base.mu);
    t->stopping = true;
    uv_cond_broadcast(&t->writer_cond);
    uv_cond_broadcast(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
    qs_redis_client_ctx_wake(&t->rctx);
    if (t->threads_started) {
        uv_thread_join(&t->bus);
        uv_thread_join(&t->reader);
        uv_thread_join(&t->writer);
        t->threads_started = false;
    }
}

static void redis_destroy(qs_transport *base)
{
    redis_transport *t = (redis_transport *)base;
    redis_stop(base);
    qs_redis_client_close(&t->wconn);
    qs_redis_client_close(&t->bconn);
    qs_redis_client_close(&t->hconn);
    for (size_t i = 0; i < t->qn; i++)
        witem_finish(&t->queue[i], -EAGAIN, "the hub is shutting down");
    free(t->queue);
    free(t->jobs);
    qs_redis_presence_destroy(&t->presence);
    qs_redis_client_ctx_destroy(&t->rctx);
    qs_transport_base_destroy(&t->base);
    uv_cond_destroy(&t->writer_cond);
    uv_cond_destroy(&t->reader_cond);
    qs_redis_settings_free(&t->s);
    free(t->addr);
    free(t->k_seq);
    free(t->k_ids);
    free(t);
}

const qs_transport_ops qs_transport_redis_ops = {
    .name = "redis",
    .has_history = true,
    .create = redis_create,
    .start = redis_start,
    .publish = redis_publish,
    .replay = redis_replay,
    .healthy = redis_healthy,
    .presence_add = redis_presence_add,
    .presence_remove = redis_presence_remove,
    .presence_list = redis_presence_list,
    .stop = redis_stop,
    .destroy = redis_destroy,
};
