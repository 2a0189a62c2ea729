/* SPDX-License-Identifier: MIT
 * postgres_client.c - one connection to PostgreSQL (postgres_client.h): libpq's
 * asynchronous API driven with poll() and deadlines, on the thread that owns the
 * connection.
 *
 * Threading: a qs_pg_client is used by one thread at a time and locks nothing; its context
 * is read-only once set up, and only its wake fd is written (by qs_pg_client_ctx_wake, from
 * any thread). Every wait polls the connection's socket and, when wakeable, the wake fd.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "transport/postgres_client.h"

#define UNAVAILABLE "postgres unavailable: "

/* ------------------------------------------------------------ the shared context */

int qs_pg_client_ctx_init(qs_pg_client_ctx *ctx, const qs_pg_settings *s, char **err)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->keywords = (const char *const *)s->keywords;
    ctx->values = (const char *const *)s->values;
    ctx->display = s->display;
    ctx->timeout_ms = s->timeout_ms;
    ctx->connect_timeout_ms = s->connect_timeout_ms;
    ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->wake_fd < 0) {
        *err = qs_xasprintf("transport postgres: eventfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void qs_pg_client_ctx_destroy(qs_pg_client_ctx *ctx)
{
    if (ctx->wake_fd >= 0)
        close(ctx->wake_fd);
    ctx->wake_fd = -1;
}

void qs_pg_client_ctx_wake(qs_pg_client_ctx *ctx)
{
    uint64_t one = 1;
    ssize_t n = write(ctx->wake_fd, &one, sizeof(one));
    QS_UNUSED(n); /* the counter cannot overflow with one write per stop */
}

void qs_pg_client_ctx_sleep(const qs_pg_client_ctx *ctx, uint64_t ms)
{
    struct pollfd p = {.fd = ctx->wake_fd, .events = POLLIN};
    uint64_t end = qs_now_ms() + ms;
    for (uint64_t now = qs_now_ms(); now < end; now = qs_now_ms()) {
        int n = poll(&p, 1, (int)QS_MIN(end - now, (uint64_t)INT_MAX));
        if (n > 0 || (n < 0 && errno != EINTR))
            return;
    }
}

/* ------------------------------------------------------------ errors */

int qs_pg_client_fail(qs_pg_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    c->sqlstate[0] = '\0';
    qs_pg_client_close(c);
    return -1;
}

/* The connection's own message, on one line ("connection to server at … failed: …"). */
static int fail_conn(qs_pg_client *c, const char *fallback)
{
    char line[QS_REASON_MAX];
    const char *msg = c->conn ? PQerrorMessage(c->conn) : NULL;
    qs_pg_one_line(line, sizeof(line), msg && *msg ? msg : fallback);
    return qs_pg_client_fail(c, UNAVAILABLE "%s", line);
}

/* ------------------------------------------------------------ waits */

enum { WAIT_READY = 1, WAIT_TIMEOUT = 0, WAIT_WOKEN = -1, WAIT_ERROR = -2 };

/* Waits for events on the connection's socket until the deadline; *revents = what came. */
static int wait_socket(qs_pg_client *c, short events, uint64_t deadline, bool wakeable,
                       short *revents)
{
    struct pollfd p[2] = {{.fd = PQsocket(c->conn), .events = events},
                          {.fd = c->ctx->wake_fd, .events = POLLIN}};
    if (p[0].fd < 0)
        return WAIT_ERROR;
    for (;;) {
        uint64_t now = qs_now_ms();
        if (now >= deadline)
            return WAIT_TIMEOUT;
        int n = poll(p, wakeable ? 2 : 1, (int)QS_MIN(deadline - now, (uint64_t)INT_MAX));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return WAIT_ERROR;
        if (wakeable && p[1].revents)
            return WAIT_WOKEN;
        if (n > 0) {
            *revents = p[0].revents;
            return WAIT_READY;
        }
    }
}

/* A wait that did not end with the socket ready: the connection is given up. */
static int fail_wait(qs_pg_client *c, int w, const char *what)
{
    if (w == WAIT_WOKEN)
        return qs_pg_client_fail(c, UNAVAILABLE "the hub is shutting down");
    if (w == WAIT_TIMEOUT)
        return qs_pg_client_fail(c, UNAVAILABLE "no answer within %" PRIu64 " ms (%s)",
                                 c->ctx->timeout_ms, what);
    return fail_conn(c, "connection lost");
}

/* ------------------------------------------------------------ connecting */

/* The server's notices and warnings go to the hub's log (libpq would print them on stderr
 * as they are, on several lines). */
static void log_notice(void *arg, const char *message)
{
    const qs_pg_client_ctx *ctx = arg;
    char line[QS_REASON_MAX];
    qs_pg_one_line(line, sizeof(line), message);
    qs_warn("postgres %s: %s", ctx->display, line);
}

void qs_pg_client_init(qs_pg_client *c, const qs_pg_client_ctx *ctx)
{
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
}

void qs_pg_client_close(qs_pg_client *c)
{
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
}

bool qs_pg_client_is_open(const qs_pg_client *c)
{
    return c->conn && PQstatus(c->conn) == CONNECTION_OK;
}

bool qs_pg_client_alive(qs_pg_client *c)
{
    if (!qs_pg_client_is_open(c))
        return false;
    /* Something on an idle connection is a notice, or the server's goodbye (an error,
     * then EOF, which a second read sees). */
    for (int reads = 0; reads < 4; reads++) {
        struct pollfd p = {.fd = PQsocket(c->conn), .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            return true; /* nothing (more) to read */
        bool ok = PQconsumeInput(c->conn) != 0;
        if (ok) {
            PQisBusy(c->conn); /* parses what came */
            ok = PQstatus(c->conn) == CONNECTION_OK;
        }
        if (!ok) {
            fail_conn(c, "connection lost");
            return false;
        }
    }
    return true;
}

uint64_t qs_pg_client_deadline(const qs_pg_client *c)
{
    return qs_now_ms() + c->ctx->timeout_ms;
}

int qs_pg_client_open(qs_pg_client *c, bool wakeable)
{
    qs_pg_client_close(c);
    c->sqlstate[0] = '\0';
    c->conn = PQconnectStartParams(c->ctx->keywords, c->ctx->values, 0);
    if (!c->conn)
        return qs_pg_client_fail(c, UNAVAILABLE "out of memory");
    if (PQstatus(c->conn) == CONNECTION_BAD)
        return fail_conn(c, "cannot connect");
    uint64_t deadline = qs_now_ms() + c->ctx->connect_timeout_ms;
    /* As libpq documents it: start as if PQconnectPoll had asked to write. The socket may
     * change between calls (another host of a list, another address of a name). */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED)
            return fail_conn(c, "cannot connect");
        short revents = 0;
        int w = wait_socket(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline, wakeable,
                            &revents);
        if (w == WAIT_TIMEOUT)
            return qs_pg_client_fail(
                c, UNAVAILABLE "the connection attempt timed out after %" PRIu64 " ms",
                c->ctx->connect_timeout_ms);
        if (w != WAIT_READY)
            return fail_wait(c, w, "connecting");
        st = PQconnectPoll(c->conn);
    }
    if (PQsetnonblocking(c->conn, 1) != 0)
        return fail_conn(c, "cannot make the connection non-blocking");
    PQsetNoticeProcessor(c->conn, log_notice, (void *)c->ctx);
    return 0;
}

bool qs_pg_client_server_answered(const qs_pg_client_ctx *ctx)
{
    /* PQpingParams blocks: bound it with connect_timeout (whole seconds, 2 at least). */
    size_t n = 0;
    while (ctx->keywords[n])
        n++;
    const char **kw = qs_xcalloc(n + 2, sizeof(*kw)), **val = qs_xcalloc(n + 2, sizeof(*val));
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%" PRIu64,
             QS_MAX((ctx->connect_timeout_ms + 999) / 1000, (uint64_t)2));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ctx->keywords[i], "connect_timeout") != 0) {
            kw[k] = ctx->keywords[i];
            val[k++] = ctx->values[i];
        }
    kw[k] = "connect_timeout";
    val[k] = timeout;
    PGPing ping = PQpingParams(kw, val, 0);
    free(kw);
    free(val);
    return ping == PQPING_OK;
}

/* ------------------------------------------------------------ statements */

/* Sends what libpq buffered (a large statement does not fit in the socket at once),
 * reading meanwhile so that the server never waits on us. */
static int flush(qs_pg_client *c, uint64_t deadline, bool wakeable)
{
    for (;;) {
        int f = PQflush(c->conn);
        if (f == 0)
            return 0;
        if (f < 0)
            return fail_conn(c, "cannot send");
        short revents = 0;
        int w = wait_socket(c, POLLIN | POLLOUT, deadline, wakeable, &revents);
        if (w != WAIT_READY)
            return fail_wait(c, w, "sending");
        if ((revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(c->conn))
            return fail_conn(c, "connection lost");
    }
}

/* Keeps the server's refusal (the first one) as c->err and c->sqlstate. */
static void note_refusal(qs_pg_client *c, const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    char line[QS_REASON_MAX - 24];
    qs_pg_one_line(line, sizeof(line), primary ? primary : PQresultErrorMessage(r));
    snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
    if (state)
        snprintf(c->err, sizeof(c->err), "%s (SQLSTATE %s)", line, state);
    else
        snprintf(c->err, sizeof(c->err), "%s", line);
}

int qs_pg_client_exec(qs_pg_client *c, const qs_pg_stmt *st, PGresult **out, uint64_t deadline,
                      bool wakeable)
{
    if (out)
        *out = NULL;
    if (!c->conn)
        return qs_pg_client_fail(c, UNAVAILABLE "not connected");
    c->sqlstate[0] = '\0';
    const qs_pg_params *p = st->params;
    int n = p ? p->n : 0;
    const char *const *values = p ? p->values : NULL;
    const int *lengths = p ? p->lengths : NULL, *formats = p ? p->formats : NULL;
    int sent;
    if (st->prepared)
        sent = PQsendQueryPrepared(c->conn, st->prepared, n, values, lengths, formats,
                                   st->binary ? 1 : 0);
    else if (!p && !st->binary)
        sent = PQsendQuery(c->conn, st->sql); /* the simple protocol: several statements */
    else
        sent = PQsendQueryParams(c->conn, st->sql, n, NULL, values, lengths, formats,
                                 st->binary ? 1 : 0);
    if (!sent)
        return fail_conn(c, "cannot send");
    if (flush(c, deadline, wakeable) < 0)
        return -1;
    PGresult *keep = NULL;
    bool refused = false;
    for (;;) {
        while (PQisBusy(c->conn)) {
            short revents = 0;
            int w = wait_socket(c, POLLIN, deadline, wakeable, &revents);
            if (w != WAIT_READY) {
                PQclear(keep);
                return fail_wait(c, w, "waiting for a result");
            }
            if (!PQconsumeInput(c->conn)) {
                PQclear(keep);
                return fail_conn(c, "connection lost");
            }
        }
        PGresult *r = PQgetResult(c->conn);
        if (!r)
            break; /* ready for the next statement: an implicit transaction has ended */
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY) {
            PQclear(keep);
            keep = r;
        } else {
            if (!refused)
                note_refusal(c, r);
            refused = true;
            PQclear(r);
        }
    }
    if (PQstatus(c->conn) != CONNECTION_OK || (refused && !c->sqlstate[0])) {
        /* The connection broke (a refusal without SQLSTATE is libpq's own error). */
        PQclear(keep);
        char line[QS_REASON_MAX];
        snprintf(line, sizeof(line), "%s", c->err);
        return refused ? qs_pg_client_fail(c, UNAVAILABLE "%s", line)
                       : fail_conn(c, "connection lost");
    }
    if (refused) {
        PQclear(keep);
        return 1;
    }
    if (out)
        *out = keep;
    else
        PQclear(keep);
    return 0;
}

int qs_pg_client_run(qs_pg_client *c, const char *sql, bool wakeable)
{
    qs_pg_stmt st = {.sql = sql};
    return qs_pg_client_exec(c, &st, NULL, qs_pg_client_deadline(c), wakeable);
}

int qs_pg_client_prepare(qs_pg_client *c, const char *name, const char *sql, int nparams,
                         const Oid *types)
{
    if (!c->conn)
        return qs_pg_client_fail(c, UNAVAILABLE "not connected");
    uint64_t deadline = qs_pg_client_deadline(c);
    if (!PQsendPrepare(c->conn, name, sql, nparams, types))
        return fail_conn(c, "cannot send");
    if (flush(c, deadline, true) < 0)
        return -1;
    bool refused = false;
    for (;;) {
        while (PQisBusy(c->conn)) {
            short revents = 0;
            int w = wait_socket(c, POLLIN, deadline, true, &revents);
            if (w != WAIT_READY)
                return fail_wait(c, w, "preparing a statement");
            if (!PQconsumeInput(c->conn))
                return fail_conn(c, "connection lost");
        }
        PGresult *r = PQgetResult(c->conn);
        if (!r)
            break;
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            if (!refused)
                note_refusal(c, r);
            refused = true;
        }
        PQclear(r);
    }
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail_conn(c, "connection lost");
    return refused ? 1 : 0;
}

/* ------------------------------------------------------------ notifications */

int qs_pg_client_wait_notify(qs_pg_client *c, uint64_t deadline, bool wakeable,
                             void (*on_notify)(void *arg, const char *payload, int sender),
                             void *arg)
{
    if (!c->conn)
        return qs_pg_client_fail(c, UNAVAILABLE "not connected");
    bool got = false;
    for (;;) {
        PGnotify *n;
        while ((n = PQnotifies(c->conn)) != NULL) {
            on_notify(arg, n->extra ? n->extra : "", n->be_pid);
            got = true;
            PQfreemem(n);
        }
        if (got)
            return 1;
        short revents = 0;
        int w = wait_socket(c, POLLIN, deadline, wakeable, &revents);
        if (w == WAIT_TIMEOUT || w == WAIT_WOKEN)
            return 0;
        if (w != WAIT_READY || !PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK)
            return fail_conn(c, "connection lost");
    }
}

void qs_pg_client_row(const PGresult *r, int row, qs_pg_value *v, int n)
{
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(r, row, i)) {
            v[i] = (qs_pg_value){NULL, -1};
        } else {
            v[i] = (qs_pg_value){PQgetvalue(r, row, i), PQgetlength(r, row, i)};
        }
    }
}
