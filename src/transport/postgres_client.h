/* SPDX-License-Identifier: MIT
 * postgres_client.h - one connection to PostgreSQL, as the PostgreSQL transport's threads
 * use it: libpq's asynchronous API (PQconnectStartParams and PQconnectPoll, PQsend…,
 * PQflush, PQconsumeInput, PQisBusy, PQgetResult, PQnotifies) on a non-blocking socket,
 * with poll() and a deadline for every wait, and a wake fd that interrupts waits when the
 * transport stops. Nothing here blocks without a deadline, but name resolution inside
 * PQconnectPoll (libpq resolves host names itself).
 *
 * Two objects, as the Redis client's:
 *  - qs_pg_client_ctx: what the connections of one transport share: libpq's connection
 *    parameters, the timeouts, the masked connection string for messages, and the wake
 *    fd. Read-only once set up, but for qs_pg_client_ctx_wake: any thread may use it.
 *  - qs_pg_client: one connection, used by one thread at a time; nothing in it is locked.
 *
 * Outcomes of a statement: it succeeded (0, with its result); the server refused it (1: an
 * error reply with an SQLSTATE, the connection stays usable; c->err holds the server's
 * message and its SQLSTATE, c->sqlstate the code); or the connection failed or the
 * deadline passed (-1: c->err is a whole reason starting "postgres unavailable: ", and
 * the connection is closed).
 *
 * A statement's result is returned only once the server said it is ready for the next
 * one (PQgetResult returned NULL): for a statement run in its own implicit transaction,
 * that is after its COMMIT, so a success is durable.
 */
#ifndef QS_TRANSPORT_POSTGRES_CLIENT_H
#define QS_TRANSPORT_POSTGRES_CLIENT_H

#include <libpq-fe.h>

#include "transport/postgres.h"

/** What the connections of one transport share (see above). */
typedef struct qs_pg_client_ctx {
    const char *const *keywords; /* borrowed from the settings, as the display */
    const char *const *values;
    const char *display;
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    int wake_fd; /* an eventfd, readable once qs_pg_client_ctx_wake was called */
} qs_pg_client_ctx;

/** Sets up a context over s (which must outlive it): 0, or -1 with a malloc'd message. */
int qs_pg_client_ctx_init(qs_pg_client_ctx *ctx, const qs_pg_settings *s, char **err);
void qs_pg_client_ctx_destroy(qs_pg_client_ctx *ctx);
/** Interrupts every wakeable wait, now and from now on (the transport is stopping). */
void qs_pg_client_ctx_wake(qs_pg_client_ctx *ctx);
/** Sleeps ms milliseconds, or less once qs_pg_client_ctx_wake was called. */
void qs_pg_client_ctx_sleep(const qs_pg_client_ctx *ctx, uint64_t ms);

/** One connection (see above). The fields are the client's; read err and sqlstate. */
typedef struct qs_pg_client {
    const qs_pg_client_ctx *ctx;
    PGconn *conn;            /* NULL when closed */
    char err[QS_REASON_MAX]; /* why the last call failed */
    char sqlstate[6];        /* of the last refusal; "" when the connection failed */
} qs_pg_client;

void qs_pg_client_init(qs_pg_client *c, const qs_pg_client_ctx *ctx);
/** Connects (closing first) within the connect timeout: 0, or -1 (c->err), closed. */
int qs_pg_client_open(qs_pg_client *c, bool wakeable);
/** After a failed open: true when a server answered (it refused the credentials, the
 *  database or the role: retrying will not help), false when none did or it is starting
 *  up or shutting down. Blocks up to the connect timeout (libpq's PQpingParams): for the
 *  start-up only. */
bool qs_pg_client_server_answered(const qs_pg_client_ctx *ctx);
void qs_pg_client_close(qs_pg_client *c);
bool qs_pg_client_is_open(const qs_pg_client *c);
/** True when an idle open connection still looks usable: the server has not closed it
 *  (after a restart, say). Otherwise it is closed, with the reason in c->err. */
bool qs_pg_client_alive(qs_pg_client *c);

/** now + the configured timeout: the deadline of a statement sent now. */
uint64_t qs_pg_client_deadline(const qs_pg_client *c);

/** A statement: SQL text with $n parameters, or the name of a prepared statement. SQL
 *  without parameters and with text results goes through the simple protocol, so it may
 *  hold several statements separated by semicolons. */
typedef struct qs_pg_stmt {
    const char *sql;
    const char *prepared;
    const qs_pg_params *params; /* binary parameters; NULL: none */
    bool binary;                /* results in binary format */
} qs_pg_stmt;

/** Runs a statement to its end by the deadline (see the outcomes above). On 0, *out is
 *  its last result (PQclear it); on 1 and -1 there is none. */
int qs_pg_client_exec(qs_pg_client *c, const qs_pg_stmt *st, PGresult **out, uint64_t deadline,
                      bool wakeable);
/** SQL text, no parameters, text results, within the timeout; the result is dropped. */
int qs_pg_client_run(qs_pg_client *c, const char *sql, bool wakeable);
/** Prepares a named statement with parameter types (within the timeout). */
int qs_pg_client_prepare(qs_pg_client *c, const char *name, const char *sql, int nparams,
                         const Oid *types);

/** Waits for notifications until the deadline: 1 when some arrived (every pending one is
 *  handed to on_notify with its payload and the PID of the server process that sent it,
 *  in the order they came), 0 at the deadline or when woken, -1 when the connection failed
 *  (c->err, closed). on_notify must not use the connection. */
int qs_pg_client_wait_notify(qs_pg_client *c, uint64_t deadline, bool wakeable,
                             void (*on_notify)(void *arg, const char *payload, int sender),
                             void *arg);

/** Marks the connection failed: closes it, c->err = the formatted reason. Returns -1. */
int qs_pg_client_fail(qs_pg_client *c, const char *fmt, ...) QS_PRINTF(2, 3);

/** Reads a row's columns into v (n of them, binary results). */
void qs_pg_client_row(const PGresult *r, int row, qs_pg_value *v, int n);

#endif
