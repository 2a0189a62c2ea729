/* SPDX-License-Identifier: MIT
 * redis.h - the pure pieces of the Redis transport (redis.c), exposed for unit tests and
 * fuzzing: options, stream ids, and stream entries as updates. Presence entries as stored in
 * Redis are redis_presence.h's (qs_redis_presence_encode/decode/merge), included here for
 * the tests and fuzz targets that reach them through this header; one connection to Redis
 * is redis_client.h.
 *
 * Nothing here does I/O or keeps state, so any thread may call it; replies are hiredis reply
 * objects (its RESP reader builds them).
 */
#ifndef QS_TRANSPORT_REDIS_H
#define QS_TRANSPORT_REDIS_H

#include <hiredis/hiredis.h>

#include "transport.h"
#include "transport/redis_presence.h"

#define QS_REDIS_DEFAULT_HOST "127.0.0.1"
#define QS_REDIS_DEFAULT_PORT 6379
#define QS_REDIS_DEFAULT_STREAM "mercure"
#define QS_REDIS_DEFAULT_MAX_LENGTH 1000000 /* like the embedded store's `size` */
#define QS_REDIS_DEFAULT_TIMEOUT_MS 5000
#define QS_REDIS_DEFAULT_PRESENCE_TTL_MS 15000

typedef struct qs_redis_settings {
    char *host;
    int port;
    char *username;      /* NULL: AUTH with the password only (the "default" user) */
    char *password;      /* NULL: no AUTH */
    char *stream;        /* the stream's key; the other keys are "<stream>:…" */
    uint64_t max_length; /* XADD MAXLEN ~; 0 = unbounded */
    uint64_t timeout_ms; /* connect, and wait for a reply */
    uint64_t presence_ttl_ms;
    bool tls;
    bool tls_insecure;
    char *tls_ca;             /* CA file; NULL = the system's */
    char *tls_cert, *tls_key; /* client certificate, for servers that ask for one */
} qs_redis_settings;

/**
 * Reads the options of `transport redis { … }` or of a redis:// / rediss:// URL (path =
 * stream, query = options). Errors name the source, line, option and value.
 */
int qs_redis_settings_load(const qs_config_transport *cfg, qs_redis_settings *s, char **err);
void qs_redis_settings_free(qs_redis_settings *s);

/** Parses a stream id "<ms>-<seq>". */
bool qs_redis_parse_stream_id(const char *s, size_t len, uint64_t *ms, uint64_t *seq);

/**
 * The update stored in a stream entry ([id, [field, value, …]]): decoded from its "r"
 * field, seq = the id's first part, finalized. NULL when the entry is not one of ours or
 * is unreadable; *seq is set whenever the id is well formed.
 */
qs_update *qs_redis_entry_update(const redisReply *entry, uint64_t *seq);

#endif
