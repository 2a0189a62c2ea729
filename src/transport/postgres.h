/* SPDX-License-Identifier: MIT
 * postgres.h - the pure pieces of the PostgreSQL transport (postgres.c), exposed for unit
 * tests and fuzzing:
 *  - its settings (postgres_config.c): a postgres:// or postgresql:// URL, a libpq
 *    key-value string, or a `transport postgres { … }` block, split into libpq's connection
 *    parameters and the hub's own options (named mercure_…, so that they never clash with
 *    libpq's), and the connection string with its password masked for logs and errors;
 *  - values in PostgreSQL's binary format (postgres_codec.c): the arrays a group of
 *    publishes or of presence entries is sent as, a stored row read back as an update or a
 *    presence entry, text made acceptable to a UTF8 database, and the classification of
 *    SQLSTATEs.
 *
 * Nothing here does I/O or keeps state, so any thread may call it. (Parsing a connection
 * string uses libpq's own parser, PQconninfoParse, which does no I/O either.)
 */
#ifndef QS_TRANSPORT_POSTGRES_H
#define QS_TRANSPORT_POSTGRES_H

#include "buf.h"
#include "presence.h"
#include "transport.h"

/* ------------------------------------------------------------ settings */

#define QS_PG_DEFAULT_PREFIX "mercure_"
#define QS_PG_PREFIX_MAX 40 /* identifiers are at most 63 bytes; the longest suffix is 20 */
#define QS_PG_DEFAULT_TIMEOUT_MS 5000
#define QS_PG_DEFAULT_START_TIMEOUT_MS 30000
#define QS_PG_DEFAULT_PRESENCE_TTL_MS 15000
#define QS_PG_APPLICATION_NAME "quicksilver"

typedef struct qs_pg_settings {
    /* libpq's connection parameters, as PQconnectStartParams takes them: parallel arrays
     * ending with NULL (n entries before it). Parameters left out take libpq's defaults
     * and the PG* environment variables. */
    char **keywords;
    char **values;
    size_t n;
    /* How logs and errors name the database: the URL or key-value string as given, with
     * its password replaced by "***" (or the block's parameters, likewise masked). */
    char *display;
    char *prefix;                /* of the tables and of the notification channel */
    uint64_t size;               /* updates kept; 0 = all */
    uint64_t max_age_ms;         /* updates kept for this long; 0 = forever */
    uint64_t presence_ttl_ms;    /* a dead node's subscriptions are listed this long at most */
    uint64_t timeout_ms;         /* the longest wait for the server, once connected */
    uint64_t connect_timeout_ms; /* the longest connection attempt (libpq's connect_timeout) */
    uint64_t start_timeout_ms;   /* how long a starting hub waits for its database */
} qs_pg_settings;

/**
 * Reads `transport postgres { … }` or a postgres://, postgresql:// URL or key-value string
 * (cfg->url). Errors name the source, the line, the connection string (password masked),
 * the option and the value.
 */
int qs_pg_settings_load(const qs_config_transport *cfg, qs_pg_settings *s, char **err);
void qs_pg_settings_free(qs_pg_settings *s);

/** A copy of a URL or key-value connection string with the values of `password` and
 *  `sslpassword`, and the password of a URL's user information, replaced by "***". */
char *qs_pg_mask_password(const char *conninfo);

/** True for a table prefix this transport accepts: [a-z_][a-z0-9_]*, 1 to
 *  QS_PG_PREFIX_MAX bytes (an unquoted identifier, so SQL can name the tables as is). */
bool qs_pg_prefix_valid(const char *prefix);

/* ------------------------------------------------------------ values */

/* Type OIDs of the binary values exchanged (fixed in every PostgreSQL release). */
#define QS_PG_BOOL 16
#define QS_PG_INT8 20
#define QS_PG_INT4 23
#define QS_PG_TEXT 25
#define QS_PG_BOOL_ARRAY 1000
#define QS_PG_INT4_ARRAY 1007
#define QS_PG_TEXT_ARRAY 1009
#define QS_PG_INT8_ARRAY 1016
#define QS_PG_TIMESTAMPTZ 1184
#define QS_PG_TIMESTAMPTZ_ARRAY 1185

/** One value of a row in binary format: len < 0 is SQL NULL. */
typedef struct qs_pg_value {
    const char *p;
    int len;
} qs_pg_value;

/** Microseconds since the Unix epoch to PostgreSQL's timestamp (since 2000-01-01), and
 *  back. */
int64_t qs_pg_timestamp_from_unix_us(int64_t us);
int64_t qs_pg_timestamp_to_unix_us(int64_t ts);

/** Appends big-endian integers, as the binary format has them. */
void qs_pg_put_i32(qs_buf *b, int32_t v);
void qs_pg_put_i64(qs_buf *b, int64_t v);
/** Reads an int8 (8 bytes), an int4, a bool: false when the value is NULL or malformed. */
bool qs_pg_get_i64(qs_pg_value v, int64_t *out);
bool qs_pg_get_bool(qs_pg_value v, bool *out);

/** True when p[0..n) can be stored as PostgreSQL text: valid UTF-8, no NUL byte. */
bool qs_pg_text_ok(const char *p, size_t n);
/** Appends p[0..n) as PostgreSQL text: each invalid UTF-8 byte and each NUL becomes
 *  U+FFFD, as an EventSource client would decode it. */
void qs_pg_text_append(qs_buf *b, const char *p, size_t n);

/** Builds a one-dimensional array in binary format, element by element. */
typedef struct qs_pg_array {
    qs_buf *b;
    size_t start; /* of the array in b */
    int32_t n;
    bool nulls;
} qs_pg_array;

void qs_pg_array_begin(qs_pg_array *a, qs_buf *b, uint32_t elem_oid);
void qs_pg_array_null(qs_pg_array *a);
/** Text (through qs_pg_text_append), int8, int4, bool and timestamptz elements. */
void qs_pg_array_text(qs_pg_array *a, const char *p, size_t n);
void qs_pg_array_i64(qs_pg_array *a, int64_t v);
void qs_pg_array_i32(qs_pg_array *a, int32_t v);
void qs_pg_array_bool(qs_pg_array *a, bool v);
/** Writes the array's size into its header. */
void qs_pg_array_end(qs_pg_array *a);

/** Reads a one-dimensional array in binary format (or an empty one), element by element. */
typedef struct qs_pg_array_reader {
    const char *p, *end;
    int32_t left;
} qs_pg_array_reader;

/** Opens an array whose elements must be of elem_oid: false when malformed (r->left, the
 *  number of elements, is then at most a quarter of the value's bytes). */
bool qs_pg_array_open(qs_pg_value v, uint32_t elem_oid, qs_pg_array_reader *r);
/** The next element: 1 (e set; e->len < 0 for NULL), 0 at the end, -1 when malformed. */
int qs_pg_array_next(qs_pg_array_reader *r, qs_pg_value *e);

/** Parameters of a statement in binary format, as PQsendQueryPrepared takes them. */
#define QS_PG_MAX_PARAMS 12
typedef struct qs_pg_params {
    int n;
    qs_buf bufs[QS_PG_MAX_PARAMS];
    const char *values[QS_PG_MAX_PARAMS];
    int lengths[QS_PG_MAX_PARAMS];
    int formats[QS_PG_MAX_PARAMS];
} qs_pg_params;

/** Empties p for a new statement (keeping its buffers). */
void qs_pg_params_reset(qs_pg_params *p);
/** The next parameter's buffer: write its binary value there, then qs_pg_params_seal. */
qs_buf *qs_pg_params_next(qs_pg_params *p);
/** Fixes the values, lengths and formats once every parameter is written. */
void qs_pg_params_seal(qs_pg_params *p);
void qs_pg_params_free(qs_pg_params *p);

/**
 * The parameters of the publish statement (postgres.c) for a group of updates: $1 int8 the
 * group's size, then arrays with one element per update: $2 ids, $3 every topic of every
 * update in a row, $4 and $5 the first and last position of the update's topics in $3
 * (1-based, inclusive), $6 private flags, $7 types (NULL = none), $8 retries (NULL =
 * none), $9 data; and $10 text, the group's records for the notification
 * (qs_pg_notify_records), or '' when they do not fit in one.
 */
#define QS_PG_PUBLISH_NPARAMS 10
void qs_pg_publish_params(qs_pg_params *p, qs_update *const *updates, size_t n);

/* ------------------------------------------------------------ notifications */

/** The longest notification payload PostgreSQL takes is 7999 bytes; the records of a group
 *  go in one only when they fit with the seq in front. */
#define QS_PG_NOTIFY_RECORDS_MAX 7950

/**
 * The records of a group for its notification: the updates as they are stored (text made
 * storable, as in the table), each a 4-byte length and a record (record.h), all in
 * base64url. Leaves out empty when they take more than QS_PG_NOTIFY_RECORDS_MAX bytes. The
 * statement sends "<seq of the first> <records>", or "<seq of the last>" without them.
 */
void qs_pg_notify_records(qs_update *const *updates, size_t n, qs_buf *out);

/**
 * Reads a notification payload: 1 with the updates it carries (finalized, seq set: the
 * first's seq, then one more each; *seq = the first's) in *updates (malloc'd, n of them;
 * unref each and free the array), 0 when it carries only the seq of the last update of its
 * group (*seq), -1 when malformed. Updates that could not be sent as events (see
 * qs_pg_update_from_row) make it -1 too: the bus then reads the rows, and skips them there.
 */
int qs_pg_notify_parse(const char *payload, uint64_t *seq, qs_update ***updates, size_t *n);

/** Columns of a stored update, in the order the statements select them. */
enum {
    QS_PG_COL_SEQ,
    QS_PG_COL_ID,
    QS_PG_COL_TOPICS,
    QS_PG_COL_PRIVATE,
    QS_PG_COL_TYPE,
    QS_PG_COL_RETRY,
    QS_PG_COL_DATA,
    QS_PG_UPDATE_COLS
};

/**
 * The update stored in a row (binary format), finalized, with u->seq = its seq. NULL when
 * the row is malformed or cannot be sent as an event (no topic, a NUL, CR or LF in its id
 * or type: rows written by hand); *seq is set whenever the seq column is readable (else 0).
 */
qs_update *qs_pg_update_from_row(const qs_pg_value cols[QS_PG_UPDATE_COLS], uint64_t *seq);

/** Columns of a presence entry as the presence statements select them. */
enum {
    QS_PG_PCOL_SUBSCRIBER,
    QS_PG_PCOL_TOPICS,
    QS_PG_PCOL_PAYLOAD,
    QS_PG_PCOL_REGISTERED,
    QS_PG_PCOL_NODE,
    QS_PG_PRESENCE_COLS
};

/** A presence entry and the node that registered it. */
typedef struct qs_pg_ranked {
    qs_presence_entry e;
    char *node;
} qs_pg_ranked;

/** Reads a presence row into out (order = registration time in microseconds since the
 *  epoch; the payload as compact JSON): 0, or -1 when malformed (out is then empty). */
int qs_pg_presence_from_row(const qs_pg_value cols[QS_PG_PRESENCE_COLS], qs_pg_ranked *out);
/** Sorts entries by registration time, then node, then subscriber: every node lists the
 *  cluster's subscriptions in the same order. */
void qs_pg_presence_sort(qs_pg_ranked *v, size_t n);

/* ------------------------------------------------------------ errors */

/** True for an SQLSTATE that means "try again later" (connection lost, server shutting
 *  down or starting, out of resources, serialization failure, a standby that cannot take
 *  writes, statement cancelled) rather than a refused request. */
bool qs_pg_sqlstate_transient(const char *sqlstate);

/** Copies libpq's message into dst (cap bytes) as one line: newlines and tabs become
 *  spaces, runs of spaces one space, no trailing space. Returns dst. */
char *qs_pg_one_line(char *dst, size_t cap, const char *msg);

#endif
