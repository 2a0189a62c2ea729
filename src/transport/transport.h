/* SPDX-License-Identifier: MIT
 * transport.h - the contract between the hub and its transports (local, LMDB, Redis, …).
 *
 * A transport never sees HTTP. It offers:
 *  - publish: make an update durable (commit, XADD, INSERT, Kafka ack…) and only then
 *    report success; the hub answers 200 after that.
 *  - the bus: every committed update — the node's own and other nodes' — is handed to
 *    host->deliver() in one order, with strictly increasing `seq`, from one thread at a
 *    time. Ids and order are therefore the same on every node.
 *  - replay: the stored updates after an id (or "earliest"), in bus order, in batches the
 *    hub pulls, so a long history streams at the subscriber's pace.
 *  - the last event id, and a health check.
 *
 * Threading: callbacks (publish completion, replay completion, deliver) may run on any
 * thread, possibly before the call that started them returns; they must be quick and
 * thread-safe. publish, replay and presence_list return nothing: each completes exactly
 * once through its callback, with success or a failure and its reason.
 *
 * Failure reasons are one line of text owned by what carries them: the publish callback's
 * `reason` is valid during the call only (copy it to keep it); a replay and a presence
 * query hold theirs in their own buffer; healthy() writes into the caller's.
 */
#ifndef QS_TRANSPORT_H
#define QS_TRANSPORT_H

#include "config.h"
#include "presence.h"
#include "update.h"
#include "url.h"

#include <uv.h>

typedef struct qs_transport qs_transport;

/** What the hub gives a transport. */
typedef struct qs_transport_host {
    /** Receives a committed update (finalized, seq set). The callee takes its own refs. */
    void (*deliver)(void *ctx, qs_update *u);
    /** Optional (cluster transports): the entries of a node that died without saying
     *  goodbye, taken from the shared registry by this node alone; the hub publishes their
     *  departures. Called on a transport thread; the entries stay the caller's. */
    void (*presence_lost)(void *ctx, const qs_presence_entry *entries, size_t n);
    void *ctx;
} qs_transport_host;

/** Room for a failure reason, terminating NUL included (longer ones are cut). */
#define QS_REASON_MAX 256

/** Publish completion: status 0 = durable; otherwise a negative errno (-EAGAIN: the backend
 *  is unavailable, try later) and a reason valid during the call only. */
typedef void (*qs_publish_cb)(void *arg, int status, const char *reason);

/** A pull of stored history. Filled by the hub, completed by the transport. */
typedef struct qs_replay {
    /* in */
    const char *after_id; /* first pull: the requested Last-Event-ID ("earliest" = all) */
    bool continuation;    /* later pulls: resume after after_seq */
    uint64_t after_seq;
    uint64_t until_seq; /* inclusive upper bound: the subscriber's bus position */
    size_t max_events;
    size_t max_bytes;
    void (*done)(struct qs_replay *r); /* any thread */
    void *arg;
    /* out */
    int status; /* 0, or -1 with reason */
    char reason[QS_REASON_MAX];
    bool id_found;       /* first pull: after_id is known (always true for "earliest") */
    qs_update **updates; /* references owned by this struct until taken */
    size_t n_updates;
    uint64_t next_seq; /* resume cursor */
    bool finished;     /* nothing left up to until_seq */
} qs_replay;

/** A read of the registry of active subscriptions, completed by the transport. */
typedef struct qs_presence_query {
    void (*done)(struct qs_presence_query *q); /* any thread */
    void *arg;
    int status; /* 0, or -1 with reason */
    char reason[QS_REASON_MAX];
    qs_presence_entry *entries; /* owned by the query once done */
    size_t n;
} qs_presence_query;

/** Frees the updates still held by a replay result. */
void qs_replay_clear(qs_replay *r);

typedef struct qs_transport_ops {
    const char *name;
    /** True when the transport stores history (replay is available). */
    bool has_history;
    /** Creates the transport; reports option errors naming the directive and line. */
    int (*create)(const qs_config_transport *cfg, const qs_transport_host *host, qs_transport **out,
                  char **err);
    /** Starts delivering (threads, connections). */
    int (*start)(qs_transport *t, char **err);
    /** Takes a reference to u (finalized, id set) and makes it durable. */
    void (*publish)(qs_transport *t, qs_update *u, qs_publish_cb cb, void *arg);
    /** Starts a history pull; completes through r->done. NULL when !has_history. */
    void (*replay)(qs_transport *t, qs_replay *r);
    /** False, with its reason written into `reason`, when the backend cannot take
     *  publishes. */
    bool (*healthy)(qs_transport *t, char reason[QS_REASON_MAX]);
    /** Presence (optional; NULL = the single-node registry of the base struct): registers
     *  an active subscriber, forgets one, reads them all. A cluster transport shares the
     *  registry between nodes and forgets the entries of a node that died. */
    void (*presence_add)(qs_transport *t, const qs_presence_entry *e);
    void (*presence_remove)(qs_transport *t, const char *subscriber);
    void (*presence_list)(qs_transport *t, qs_presence_query *q);
    /** Stops delivering; in-flight publishes complete (callbacks run) before it returns. */
    void (*stop)(qs_transport *t);
    void (*destroy)(qs_transport *t);
} qs_transport_ops;

struct qs_transport {
    const qs_transport_ops *ops;
    qs_presence *presence; /* the single-node registry, for transports without their own */
    /* The transport's lock (it guards the transport's own state too) and, under it, the
     * position of its stream: the bus seq and the id of the last update committed or
     * delivered (NULL = none yet). Set up by qs_transport_base_init, moved forward by
     * qs_transport_set_position. */
    uv_mutex_t mu;
    uint64_t seq;
    char *last_id;
};

/** For a transport's create and destroy: sets up (tears down) the base struct's lock and
 *  stream position. The presence registry is the caller of create's business. */
void qs_transport_base_init(qs_transport *t, const qs_transport_ops *ops);
void qs_transport_base_destroy(qs_transport *t);
/** With t->mu held: the stream is now at seq, the last update's id being id (copied). */
void qs_transport_set_position(qs_transport *t, uint64_t seq, const char *id);
/** The id of the last committed update, or "earliest"; malloc'd. */
char *qs_transport_last_event_id(qs_transport *t);
/** The bus position of the last delivered update (0 = none). */
uint64_t qs_transport_last_seq(qs_transport *t);

/** Presence calls through a transport: its own registry, or the single-node one. */
void qs_transport_presence_add(qs_transport *t, const qs_presence_entry *e);
void qs_transport_presence_remove(qs_transport *t, const char *subscriber);
void qs_transport_presence_list(qs_transport *t, qs_presence_query *q);

/**
 * Creates the transport the configuration names (`transport NAME`, `transport_url`,
 * MERCURE_TRANSPORT_URL), or the default one. Returns 0, or -1 with a malloc'd message.
 */
int qs_transport_open(const qs_config_transport *cfg, const qs_transport_host *host,
                      qs_transport **out, char **err);

/** Destroys a transport made by qs_transport_open (and its single-node registry). */
void qs_transport_destroy(qs_transport *t);

/** For a transport's destroy that gave up waiting for threads it cannot end (a client
 *  library's, stuck): they may still use the transport, which is then left allocated, and
 *  the process must end without running its exit handlers under them
 *  (qs_transport_threads_left tells main so). */
void qs_transport_left_running(void);
bool qs_transport_threads_left(void);

/** Scheme of a transport URL ("local" for "local://x"), malloc'd; NULL when malformed. */
char *qs_transport_url_scheme(const char *url);

/**
 * A transport's options, read the same way from a `transport NAME { key value }` block and
 * from the query string of a transport URL. Getters validate values and remember which keys
 * were used, so qs_topts_finish() can refuse unknown options; every error names the source,
 * the line, the transport, the option and the value.
 */
typedef struct qs_topt {
    const char *key;
    const char *value; /* NULL for a flag without value */
    const char *source;
    int line;
    bool used;
} qs_topt;

typedef struct qs_topts {
    const char *transport; /* name used in messages */
    qs_topt *v;
    size_t n;
    qs_url url; /* when configured by URL */
    bool has_url;
    const char *source;
    int line;
} qs_topts;

int qs_topts_load(const qs_config_transport *cfg, const char *transport, qs_topts *o, char **err);
/** Returns the last value of key (NULL when absent); has_value false for bare flags. */
const qs_topt *qs_topts_get(qs_topts *o, const char *key);
int qs_topts_string(qs_topts *o, const char *key, const char **out, char **err);
int qs_topts_u64(qs_topts *o, const char *key, uint64_t *out, char **err);
int qs_topts_size(qs_topts *o, const char *key, uint64_t *out, char **err);
int qs_topts_double(qs_topts *o, const char *key, double min, double max, double *out, char **err);
/** A flag: present without value, or "1"/"true"/"on" vs "0"/"false"/"off". */
int qs_topts_bool(qs_topts *o, const char *key, bool *out, char **err);
/** A duration ("500ms", "2s"…) of at least min_ms; below it the error says "at least 1s is
 *  needed" (min_ms >= 1000) or "too short". *out is untouched when key is absent. */
int qs_topts_duration_min(qs_topts *o, const char *key, uint64_t min_ms, uint64_t *out, char **err);
/** A string option replacing the malloc'd *dst with a copy; *dst is untouched when absent. */
int qs_topts_copy(qs_topts *o, const char *key, char **dst, char **err);
/** Replaces the malloc'd string *dst with a copy of v (NULL: clears it). */
void qs_topts_set(char **dst, const char *v);
/** Fails on option t in the getters' style ("source:line: transport T: key: what "value"");
 *  for transports' own checks. The value of a key in `secrets` (NULL-terminated, or NULL for
 *  none) shows as "****", so a password never reaches a log. Returns -1. */
int qs_topts_fail(const qs_topts *o, const qs_topt *t, const char *what, const char *const *secrets,
                  char **err);
/** Errors on the first option that no getter used. */
int qs_topts_finish(qs_topts *o, char **err);
void qs_topts_free(qs_topts *o);

extern const qs_transport_ops qs_transport_local_ops;
extern const qs_transport_ops qs_transport_lmdb_ops;
extern const qs_transport_ops qs_transport_redis_ops;
extern const qs_transport_ops qs_transport_kafka_ops;
extern const qs_transport_ops qs_transport_postgres_ops;
extern const qs_transport_ops qs_transport_pulsar_ops;

#endif
