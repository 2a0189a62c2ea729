/* SPDX-License-Identifier: MIT
 * server.h - the hub process: workers, connections, subscribers (internal header).
 *
 *   qs_hub ── config, JWT keys, transport, metrics
 *     └── qs_worker[workers]   one thread, one libuv loop, one SO_REUSEPORT listener each
 *           ├── connections (qs_conn): HTTP/1.1 requests, then maybe an SSE stream
 *           ├── subscriber index: selector string → group of subscribers;
 *           │     "*" group, template groups (matched through the selector cache)
 *           ├── inbox: committed updates and tasks posted by other threads
 *           └── timers: one tick; lists/heap for heartbeats, deadlines, slow writes
 *
 * Threading: everything reachable from a worker is touched only by its thread, except the
 * inbox (mutex) and the hub's immutable configuration. The transport delivers each
 * committed update once to qs_hub_deliver(), which posts a reference to every worker.
 *
 * Lifetime: a connection is freed only in its libuv close callback, and only when no
 * asynchronous operation (a publish awaiting the transport) still refers to it (refs).
 * A subscriber is owned by its connection. Nothing is freed while a loop over it runs:
 * fan-out collects subscribers to disconnect and closes them afterwards.
 */
#ifndef QS_SERVER_H
#define QS_SERVER_H

#include <jansson.h>
#include <uv.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "form.h"
#include "heap.h"
#include "http1_parse.h"
#include "jwt.h"
#include "list.h"
#include "metrics.h"
#include "strmap.h"
#include "topic.h"
#include "transport/transport.h"
#include "update.h"

typedef struct qs_hub qs_hub;
typedef struct qs_worker qs_worker;
typedef struct qs_conn qs_conn;
typedef struct qs_subscriber qs_subscriber;

/* ------------------------------------------------------------------ hub */

struct qs_hub {
    qs_config *cfg;
    qs_jwt_key *publisher_key;  /* NULL: publishing disabled */
    qs_jwt_key *subscriber_key; /* NULL: tokens of subscribers are not checked (anonymous) */
    qs_transport *transport;
    qs_worker *workers;
    int n_workers;
    int listen_port;    /* actual port (after binding port 0) */
    uint64_t max_conns; /* over this many open connections, new ones are closed at once */
    bool started;
    atomic_bool stopping;
};

/** Builds the hub from a validated configuration: keys, transport, workers, listeners.
 *  Returns 0, or -1 with a malloc'd one-line message. */
int qs_hub_init(qs_hub *hub, qs_config *cfg, char **err);
/** Starts the worker threads; returns once they are accepting. */
int qs_hub_start(qs_hub *hub, char **err);
/** Stops accepting, ends every stream cleanly, waits for the workers to exit. */
void qs_hub_stop(qs_hub *hub);
void qs_hub_destroy(qs_hub *hub);
/** The transport's bus callback: posts u to every worker. */
void qs_hub_deliver(void *hub, qs_update *u);

/* --------------------------------------------------------------- worker */

typedef void (*qs_task_fn)(qs_worker *w, void *arg);

typedef struct qs_task {
    qs_task_fn fn;
    void *arg;
} qs_task;

/** A distinct selector some subscribers of this worker use, and those subscribers. */
typedef struct qs_sub_group {
    qs_selector *sel;
    struct qs_group_member *members;
    uint32_t n;
    uint32_t cap;
    uint32_t template_idx; /* position in worker->template_groups (template selectors) */
} qs_sub_group;

typedef struct qs_group_member {
    qs_subscriber *sub;
    uint32_t entry; /* which of sub->entries points back here */
} qs_group_member;

/** Subscribers with identical subscribe claims share one claim set; its memo caches the
 *  private-update decision for the update being fanned out. */
typedef struct qs_claimset {
    uint32_t refs;
    bool all; /* contains "*" */
    qs_selector **sels;
    uint32_t n;
    uint64_t memo_seq;
    bool memo;
    char *key;
    size_t key_len;
} qs_claimset;

struct qs_worker {
    qs_hub *hub;
    int index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_tcp_t listener;
    int listen_fd;
    uv_async_t wakeup;
    uv_timer_t tick;
    uint64_t tick_ms;

    /* inbox: filled by any thread under inbox_mu, drained by this worker */
    uv_mutex_t inbox_mu;
    qs_update **inbox_updates;
    size_t inbox_n, inbox_cap;
    qs_task *inbox_tasks;
    size_t tasks_n, tasks_cap;

    char *read_buf; /* shared by every connection of this worker: reads land here */
    size_t read_buf_size;

    /* connections */
    qs_list conns;           /* every open connection */
    qs_list conns_reading;   /* receiving a request, oldest first (request_timeout) */
    qs_list conns_idle;      /* keep-alive between requests, oldest first (idle_timeout) */
    qs_list conns_lingering; /* closing after an error response, oldest first */
    uint64_t n_conns;

    /* subscriber index */
    qs_selector_table *selectors;
    qs_strmap groups; /* selector string → qs_sub_group */
    qs_sub_group **template_groups;
    uint32_t n_template_groups, cap_template_groups;
    qs_strmap claimsets; /* joined claims → qs_claimset */
    uint64_t bus_seq;    /* seq of the last update fanned out here */

    /* subscribers with queued frames to write before the loop sleeps */
    qs_subscriber **pending;
    size_t n_pending, cap_pending;
    qs_conn **doomed; /* subscribers dropped during a fan-out, closed after it */
    size_t n_doomed, cap_doomed;

    /* subscriber timers */
    qs_list heartbeat_list; /* by time of last write, oldest first */
    qs_list blocked_list;   /* writes in progress, oldest first (dispatch_timeout) */
    qs_heap deadlines;      /* end of stream: write_timeout with jitter / token exp */

    qs_worker_counters counters;
    struct qs_token_cache *tokens; /* verified tokens of this worker's clients */

    /* Flushing in slices (worker.c): w->pending[pending_pos..n_pending) are still to be
     * written; the idle handle runs the next slice after the loop has turned once. */
    uv_idle_t flush_idle;
    size_t pending_pos;

    bool stopping;
    bool exiting;
    uint64_t stop_deadline_ms;
    uint32_t async_pending; /* publishes awaiting the transport */
};

/** Posts a task to a worker (any thread). fn runs on the worker's thread. */
void qs_worker_post(qs_worker *w, qs_task_fn fn, void *arg);
/** Posts a committed update (takes a reference) to a worker (any thread). */
void qs_worker_post_update(qs_worker *w, qs_update *u);
/** Sets up a worker's loop and listener (port 0 = ephemeral; the bound port is returned). */
int qs_worker_init(qs_worker *w, qs_hub *hub, int index, int *port, char **err);
int qs_worker_start(qs_worker *w, char **err);
/** Asks a worker to stop (any thread); qs_worker_join() waits for its thread. */
void qs_worker_request_stop(qs_worker *w);
void qs_worker_join(qs_worker *w);
void qs_worker_destroy(qs_worker *w);

/* --------------------------------------------------------- connections */

enum qs_conn_state {
    QS_CONN_HEAD,      /* reading a request head */
    QS_CONN_BODY,      /* reading a request body */
    QS_CONN_HANDLING,  /* a handler is working (maybe asynchronously) */
    QS_CONN_WRITING,   /* the response is being written */
    QS_CONN_STREAMING, /* an SSE stream */
    QS_CONN_LINGERING, /* the last response is sent: discard input until EOF, then close */
};

enum qs_timer_list { QS_TIMER_NONE, QS_TIMER_READING, QS_TIMER_IDLE, QS_TIMER_LINGER };

struct qs_conn {
    uv_tcp_t tcp;
    qs_worker *w;
    qs_list node;       /* in w->conns */
    qs_list timer_node; /* in w->conns_reading or w->conns_idle */
    uint64_t timer_start_ms;
    uint8_t timer_list; /* enum qs_timer_list */
    enum qs_conn_state state;
    uint32_t refs; /* async operations holding the connection */
    bool closing;  /* uv_close called */
    bool closed;   /* close callback ran */
    bool keep_alive;
    bool reading;     /* uv_read_start active */
    bool in_process;  /* inside conn_process: responses must not re-enter it */
    bool head_method; /* the request being answered is HEAD: no body */
    uint8_t minor_version;
    qs_buf in;       /* unprocessed input (empty most of the time) */
    qs_buf head;     /* the head of a request still receiving its body */
    size_t lingered; /* bytes discarded while lingering */
    qs_http1_parser parser;
    qs_http1_head *req; /* while a request is being read/handled */
    qs_buf body;
    qs_http1_chunked chunked;
    uint64_t body_left; /* Content-Length bytes still to read */
    qs_subscriber *sub;
    char remote[48];
};

/** A parsed request as handlers see it. */
typedef struct qs_request {
    qs_conn *conn;
    const qs_http1_head *http;
    qs_slice body;
    qs_form query; /* parsed lazily by handlers that need it */
    bool query_parsed;
    enum qs_form_status query_status;
} qs_request;

/** Extra response headers: a list of "Name: value" lines built by the handler. */
typedef struct qs_response {
    int status;
    qs_buf headers; /* each line ends with CRLF */
    const char *content_type;
    qs_buf body;
} qs_response;

void qs_response_init(qs_response *r, int status);
void qs_response_header(qs_response *r, const char *name, const char *value);
void qs_response_free(qs_response *r);

/** Sends a complete response and frees r's buffers; the connection then reads the next
 *  request (keep-alive) or closes. HEAD requests get no body. */
void qs_conn_send(qs_conn *c, const qs_request *req, qs_response *r);
/** Sends a Go-style http.Error: text/plain, body "<message>\n". */
void qs_conn_send_error(qs_conn *c, const qs_request *req, int status, const char *message,
                        const char *extra_headers);
/** Appends "Date: …\r\n" (HTTP date, now). */
void qs_append_date_header(qs_buf *b);
/** Appends "HTTP/1.<minor> <status> <reason>\r\n". */
void qs_append_status_line(qs_buf *b, int minor, int status);
/** Arms the detection of a vanished peer on a streaming connection (TCP user timeout and
 *  keep-alive), so that a subscriber lost without a FIN is dropped. */
void qs_conn_watch_peer(qs_conn *c);
/** Closes the connection (idempotent; freed in the close callback). */
void qs_conn_close(qs_conn *c);
void qs_conn_ref(qs_conn *c);
void qs_conn_unref(qs_conn *c);
/** Accept callback for a worker's listener. */
void qs_conn_on_accept(uv_stream_t *listener, int status);
/** Closes connections whose request or keep-alive timeout has passed. */
void qs_conn_check_timeouts(qs_worker *w, uint64_t now);
/** Writes raw bytes on an SSE connection (headers, final chunk) — used by subscriber.c. */
int qs_conn_write_raw(qs_conn *c, const char *data, size_t len);

/* --------------------------------------------------------- subscribers */

typedef struct qs_sub_entry {
    qs_sub_group *group;
    uint32_t idx; /* position in group->members */
} qs_sub_entry;

struct qs_subscriber {
    qs_conn *conn;
    qs_worker *w;
    qs_sub_entry *entries; /* one per subscribed selector */
    uint32_t n_entries;
    qs_claimset *claims; /* NULL: no subscribe claims (public updates only) */
    json_t *payload;     /* the token's mercure.payload */
    uint64_t last_seq;   /* last update queued (dedupe across matching selectors) */

    /* queue of frames not yet written: ring buffer */
    qs_frame **q;
    uint32_t q_head, q_len, q_cap;
    size_t q_bytes;
    /* the batch being written: the first batch_n frames of the queue, chunk-framed */
    uint32_t batch_n;
    size_t batch_len;     /* bytes in the batch including chunk framing */
    size_t batch_written; /* bytes of the batch already written */
    bool chunked;         /* HTTP/1.1 chunked framing (HTTP/1.0: raw, close-delimited) */
    bool write_pending;   /* a uv_write is in flight */
    bool ending;          /* the final frame is queued: nothing more is accepted */
    bool doomed;          /* dropped; its connection closes after the current fan-out */
    uint32_t pending_idx; /* slot in w->pending, UINT32_MAX when not listed */
    uv_write_t *wreq;

    /* history replay: fetched history sits at the front of the queue (front_n frames),
     * before live frames, which wait until the replay is over */
    bool replaying;
    bool replay_stop;  /* the stream is ending: fetch no more history */
    qs_replay *replay; /* pull in flight */
    uint32_t front_n;
    size_t front_bytes;
    uint64_t replay_until;  /* bus position when the subscriber registered */
    uint64_t replay_cursor; /* seq of the last history record read */
    char *replay_id;        /* the requested Last-Event-ID */
    char *head;             /* the response head, sent once the cursor is known */
    size_t head_split;      /* where its Last-Event-Id line goes */

    bool presence_registered; /* announced to the registry (subscriptions enabled) */

    qs_list heartbeat_node;
    uint64_t last_write_ms;
    qs_list blocked_node;
    uint64_t blocked_since_ms;
    qs_heap_node deadline;
    char id[46];
};

/** Creates a subscriber for conn with the given topic selectors and claims; registers it
 *  in the worker's index. */
qs_subscriber *qs_subscriber_new(qs_conn *conn, const qs_form *query, const qs_jwt_claims *claims,
                                 uint64_t deadline_ms);
/** Queues raw bytes (the response head) before any event. */
void qs_subscriber_start(qs_subscriber *s, const char *head, size_t head_len);
/** Ends the stream cleanly once what is queued has been written. */
void qs_subscriber_end(qs_subscriber *s);
/** Starts a history replay after last_event_id; head (owned) is sent with a Last-Event-Id
 *  line inserted at split once the transport has answered. */
void qs_subscriber_replay(qs_subscriber *s, const char *last_event_id, char *head, size_t split);
/** Removes a subscriber from the index and frees it (its connection is closing). */
void qs_subscriber_free(qs_subscriber *s);
/** Write completion plumbing used by conn.c. */
void qs_subscriber_flush(qs_subscriber *s);
/** Fans one committed update out to this worker's subscribers (queues frames). */
void qs_worker_fanout(qs_worker *w, qs_update *u);
/** Most subscribers written per slice of a flush. */
#define QS_FLUSH_SLICE 128
/** Writes what fan-out queued to the next QS_FLUSH_SLICE subscribers; true when some are
 *  still pending. */
bool qs_worker_flush_pending(qs_worker *w);
/** Writes everything queued at once (shutdown). */
void qs_worker_flush_all(qs_worker *w);
/** Heartbeats, deadlines, dispatch timeouts. */
void qs_subscribers_check_timers(qs_worker *w, uint64_t now);
/** Ends every stream cleanly (shutdown). */
void qs_subscribers_end_all(qs_worker *w);
void qs_worker_index_init(qs_worker *w);
void qs_worker_index_free(qs_worker *w);

/* --------------------------------------------------------------- routes */

/** Dispatches a complete request. */
void qs_route(qs_conn *c, qs_request *req);
void qs_handle_publish(qs_conn *c, qs_request *req);
void qs_handle_subscribe(qs_conn *c, qs_request *req);
/** GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]. */
void qs_handle_subscriptions_api(qs_conn *c, qs_request *req);
/** Presence hooks: a subscriber's stream opened / it is being freed. */
void qs_subscriptions_connected(qs_subscriber *s);
void qs_subscriptions_disconnected(qs_subscriber *s);
/** Transport host callback (any thread): publishes the departures of the subscribers of a
 *  node that died, whose entries the transport took from the cluster's registry. */
void qs_subscriptions_lost(void *hub, const qs_presence_entry *entries, size_t n);
/** Appends the headers of every hub response: security headers, then CORS. */
void qs_hub_headers(qs_conn *c, const qs_request *req, qs_buf *out);
/** qs_conn_send_error with the hub headers. */
void qs_hub_send_error(qs_conn *c, const qs_request *req, int status, const char *message);
/** Adds CORS headers for an actual (non-preflight) request when cors_origins is set. */
void qs_add_cors_headers(qs_hub *hub, const qs_http1_head *req, qs_buf *headers);
/** The authorization parameters of a publish (publisher key, CSRF rule) or of a subscriber
 *  request (subscriber key), with this worker's token cache. */
qs_auth_params qs_conn_auth_params(qs_conn *c, bool publish);
/** Parses the query string of req once (lenient, like Go's URL.Query()). */
const qs_form *qs_request_query(qs_request *req);

#endif
