/* SPDX-License-Identifier: MIT
 * loadgen.c - load generator for Mercure hubs (and, for comparison, nchan and the raw
 * write floor): SSE subscribers over topics, publishers at a rate, and the figures that
 * matter: subscribe ramp, publish latency, publish-to-delivery latency percentiles,
 * deliveries per second, losses, the hub's memory per subscriber and CPU per delivery.
 *
 * Subscribers can be spread over several processes (--procs) so that the generator is
 * never the bottleneck and the open-file limit of one process is not a ceiling; each
 * child reports its counts and latency histogram to the parent through a pipe.
 *
 * Every event's data starts with "<publish monotonic ns> " so that receivers measure
 * publish-to-delivery latency on the same clock. With --pub-port, publishers and
 * subscribers use different hubs (cluster transports: the latency across nodes).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "hist.h"
#include "jwt.h"
#include "util.h"

enum profile { PROFILE_MERCURE, PROFILE_NCHAN };

static struct options {
    const char *host;
    int port;
    int pub_port; /* publishers' hub when it is not the subscribers' (0 = same) */
    const char *key;
    enum profile profile;
    int subscribers;
    int topics;
    bool templates;   /* subscribe with URI templates matching several topics */
    bool urlpatterns; /* subscribe (protocol 1.0) with URL patterns of the same shape */
    int publishers;
    long updates;
    double rate;
    int size;
    bool churn; /* one connection per publish */
    int procs;
    int hub_pid;
    int hub_pids[16]; /* --hub-pid 12,13,14: a server with several processes (nginx) */
    int n_hub_pids;
    double drain_s;
    bool replay;
    double sub_churn;   /* subscribers opened (and closed once open) per second */
    double publish_for; /* stop issuing publishes after this many seconds (0 = no cap) */
    double duration;
    int sources; /* 127.0.0.x source addresses for subscribers */
    bool json;
    const char *label;
} opt = {
    .host = "127.0.0.1",
    .port = 3000,
    .key = "!ChangeThisMercureHubJWTSecretKey!",
    .topics = 1,
    .publishers = 1,
    .size = 100,
    .procs = 1,
    .drain_s = 10,
    .sources = 1,
    .duration = 10,
};

static char *pub_token, *sub_token;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void topic_name(char *out, size_t cap, long i)
{
    snprintf(out, cap, "https://bench.example/t/%ld", i % opt.topics);
}

/* ------------------------------------------------------------ subscribers */

typedef struct sub {
    uv_tcp_t tcp;
    uv_connect_t conn_req;
    uv_write_t write_req;
    char request[1024];
    int index;
    bool connected; /* stream open: ":" preamble received */
    bool head_done;
    /* incremental parsing of the chunked SSE stream */
    char line[256];
    size_t line_len;
    int chunk_state; /* 0 size line, 1 data, 2 CRLF after data */
    uint64_t chunk_left;
    bool chunked;
    char head_tail[4];
    char head_start[1024]; /* the response head, enough of it to read its headers */
    size_t head_start_len;
    uint64_t events;
    uint64_t started_ns;
} sub;

static struct {
    uv_loop_t *loop;
    sub *subs;
    int n;
    int opened;
    int failed;
    uint64_t events;
    hist latency;
    int report_fd;
    uint64_t first_open_ns, all_open_ns;
} S;

static uint64_t replay_target; /* replay mode: stop the loop after this many events */

static void churn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sub_event_data(sub *s, const char *data, size_t len)
{
    /* "data: <ns> ..." — one data line per event in this benchmark. */
    uint64_t sent = strtoull(data, NULL, 10);
    uint64_t now = now_ns();
    s->events++;
    S.events++;
    if (sent && now > sent)
        hist_add(&S.latency, (now - sent) / 1000);
    QS_UNUSED(len);
    if (replay_target && S.events == replay_target)
        uv_stop(S.loop);
}

static void sub_line(sub *s, const char *line, size_t len)
{
    if (len >= 6 && memcmp(line, "data: ", 6) == 0)
        sub_event_data(s, line + 6, len - 6);
    else if (len >= 5 && memcmp(line, "data:", 5) == 0)
        sub_event_data(s, line + 5, len - 5);
}

static void sub_payload(sub *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\n') {
            /* The first comment opens the stream (":" from Mercure, ": hi" from nchan). */
            if (!s->connected && s->line_len >= 1 && s->line[0] == ':') {
                s->connected = true;
                S.opened++;
                if (opt.sub_churn > 0) {
                    /* Churn: the stream is open, leave at once. */
                    hist_add(&S.latency, (now_ns() - s->started_ns) / 1000);
                    s->line_len = 0;
                    uv_read_stop((uv_stream_t *)&s->tcp);
                    uv_close((uv_handle_t *)&s->tcp, churn_closed);
                    return;
                }
                uint64_t t = now_ns();
                if (!S.first_open_ns)
                    S.first_open_ns = t;
                if (S.opened == S.n)
                    S.all_open_ns = t;
            }
            sub_line(s, s->line, s->line_len);
            s->line_len = 0;
        } else if (s->line_len < sizeof(s->line) - 1) {
            s->line[s->line_len++] = c;
        }
    }
}

static void sub_body(sub *s, const char *p, size_t n)
{
    if (!s->chunked) {
        sub_payload(s, p, n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        if (s->chunk_state == 0) {
            char c = p[i++];
            if (c == '\n') {
                s->chunk_state = s->chunk_left ? 1 : 0;
            } else if (c != '\r') {
                int v = (c >= '0' && c <= '9')   ? c - '0'
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : -1;
                if (v >= 0)
                    s->chunk_left = s->chunk_left * 16 + (uint64_t)v;
            }
        } else if (s->chunk_state == 1) {
            size_t take = (size_t)QS_MIN((uint64_t)(n - i), s->chunk_left);
            sub_payload(s, p + i, take);
            i += take;
            s->chunk_left -= take;
            if (!s->chunk_left)
                s->chunk_state = 2;
        } else {
            if (p[i++] == '\n')
                s->chunk_state = 0;
        }
    }
}

static char read_buf[1 << 16];

static void sub_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    QS_UNUSED(h);
    QS_UNUSED(suggested);
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void sub_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sub *s = st->data;
    if (nread < 0) {
        if (!s->connected)
            S.failed++;
        uv_close((uv_handle_t *)st, opt.sub_churn > 0 ? churn_closed : NULL);
        return;
    }
    const char *p = buf->base;
    size_t n = (size_t)nread;
    if (!s->head_done) {
        /* Skip the response head; look for the blank line, across reads. */
        size_t i = 0;
        for (; i < n; i++) {
            memmove(s->head_tail, s->head_tail + 1, 3);
            s->head_tail[3] = p[i];
            if (s->head_start_len < sizeof(s->head_start) - 1)
                s->head_start[s->head_start_len++] = p[i];
            if (memcmp(s->head_tail, "\r\n\r\n", 4) == 0) {
                s->head_done = true;
                i++;
                break;
            }
        }
        if (!s->head_done)
            return;
        /* nchan's streams are close-delimited, Mercure's chunked: read the head. */
        s->head_start[s->head_start_len] = '\0';
        s->chunked = strcasestr(s->head_start, "transfer-encoding: chunked") != NULL;
        p += i;
        n -= i;
    }
    sub_body(s, p, n);
}

static void sub_written(uv_write_t *w, int status)
{
    sub *s = w->data;
    if (status < 0) {
        S.failed++;
        uv_close((uv_handle_t *)&s->tcp, NULL);
    }
}

static void sub_connected(uv_connect_t *c, int status)
{
    sub *s = c->data;
    if (status < 0) {
        S.failed++;
        fprintf(stderr, "loadgen: subscriber connect failed: %s\n", uv_strerror(status));
        uv_close((uv_handle_t *)&s->tcp, NULL);
        return;
    }
    char topic[128];
    int len;
    if (opt.profile == PROFILE_NCHAN) {
        snprintf(topic, sizeof(topic), "%ld", (long)(s->index % opt.topics));
        len = snprintf(s->request, sizeof(s->request),
                       "GET /sub/%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
                       topic, opt.host);
    } else {
        if (opt.templates) /* one template per topic group: .../{kind}/N matches .../t/N */
            snprintf(topic, sizeof(topic), "https://bench.example/%%7Bkind%%7D/%d",
                     s->index % opt.topics);
        else if (opt.urlpatterns) /* the same with a URL pattern: .../:kind/N */
            snprintf(topic, sizeof(topic), "https://bench.example/%%3Akind/%d",
                     s->index % opt.topics);
        else
            topic_name(topic, sizeof(topic), s->index);
        len = snprintf(s->request, sizeof(s->request),
                       "GET /.well-known/mercure?%s=%s%s HTTP/1.1\r\nHost: %s\r\n"
                       "Authorization: Bearer %s\r\n\r\n",
                       opt.urlpatterns ? "match_urlpattern" : "topic", topic,
                       opt.replay
                           ? (opt.urlpatterns ? "&last_event_id=earliest" : "&lastEventID=earliest")
                           : "",
                       opt.host, sub_token);
    }
    uv_buf_t b = uv_buf_init(s->request, (unsigned)len);
    s->write_req.data = s;
    uv_read_start((uv_stream_t *)&s->tcp, sub_alloc, sub_read);
    uv_write(&s->write_req, (uv_stream_t *)&s->tcp, &b, 1, sub_written);
}

static void sub_open(sub *s)
{
    uv_tcp_init(S.loop, &s->tcp);
    s->tcp.data = s;
    if (opt.sources > 1) {
        /* Several loopback source addresses multiply the ephemeral ports available. */
        struct sockaddr_in src;
        char ip[32];
        snprintf(ip, sizeof(ip), "127.0.0.%d", 1 + s->index % opt.sources);
        uv_ip4_addr(ip, 0, &src);
        uv_tcp_bind(&s->tcp, (struct sockaddr *)&src, 0);
    }
    struct sockaddr_in dst;
    uv_ip4_addr(opt.host, opt.port, &dst);
    s->conn_req.data = s;
    uv_tcp_connect(&s->conn_req, &s->tcp, (struct sockaddr *)&dst, sub_connected);
}

/* Opens subscribers in waves so the hub's accept queue is not flooded all at once. */
static int sub_next;
static uv_timer_t sub_wave;

static void sub_wave_cb(uv_timer_t *t)
{
    for (int i = 0; i < 500 && sub_next < S.n; i++)
        sub_open(&S.subs[sub_next++]);
    if (sub_next == S.n)
        uv_timer_stop(t);
}

/* A child process: open subscribers, tell the parent when all are open, count until told
 * to stop (SIGUSR1), then write counts and the histogram to the pipe. */
static uv_signal_t stop_signal;
static uv_timer_t ready_check;
static bool ready_reported;

typedef struct report {
    int opened, failed;
    uint64_t events;
    uint64_t ramp_ns;
    hist latency;
} report;

static void ready_cb(uv_timer_t *t)
{
    if (!ready_reported && S.opened + S.failed >= S.n) {
        ready_reported = true;
        char c = 'R';
        if (write(S.report_fd, &c, 1) != 1)
            exit(1);
    }
    QS_UNUSED(t);
}

static void stop_cb(uv_signal_t *h, int sig)
{
    QS_UNUSED(sig);
    report *r = calloc(1, sizeof(*r));
    r->opened = S.opened;
    r->failed = S.failed;
    r->events = S.events;
    r->ramp_ns = S.all_open_ns && S.first_open_ns ? S.all_open_ns - S.first_open_ns : 0;
    r->latency = S.latency;
    const char *p = (const char *)r;
    size_t left = sizeof(*r);
    while (left) {
        ssize_t w = write(S.report_fd, p, left);
        if (w <= 0)
            exit(1);
        p += w;
        left -= (size_t)w;
    }
    free(r);
    uv_stop(h->loop);
}

static void child_run(int first, int count, int fd)
{
    memset(&S, 0, sizeof(S));
    S.loop = uv_default_loop();
    S.n = count;
    S.report_fd = fd;
    S.subs = calloc((size_t)count, sizeof(*S.subs));
    for (int i = 0; i < count; i++)
        S.subs[i].index = first + i;
    uv_signal_init(S.loop, &stop_signal);
    uv_signal_start(&stop_signal, stop_cb, SIGUSR1);
    uv_timer_init(S.loop, &sub_wave);
    uv_timer_start(&sub_wave, sub_wave_cb, 0, 10);
    uv_timer_init(S.loop, &ready_check);
    uv_timer_start(&ready_check, ready_cb, 5, 5);
    uv_run(S.loop, UV_RUN_DEFAULT);
    _exit(0);
}

/* ------------------------------------------------------------ hub sampling */

/* CPU time of every thread of pid, in ns (precise: schedstat, not clock ticks). */
static uint64_t hub_cpu_ns(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    uv_fs_t req;
    if (uv_fs_scandir(NULL, &req, path, 0, NULL) < 0)
        return 0;
    uv_dirent_t ent;
    uint64_t total = 0;
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        char p[128];
        snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", pid, ent.name);
        FILE *f = fopen(p, "r");
        unsigned long long ns = 0;
        if (f && fscanf(f, "%llu", &ns) == 1)
            total += ns;
        if (f)
            fclose(f);
    }
    uv_fs_req_cleanup(&req);
    return total;
}

static long hub_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The server may be several processes (nginx's workers): sum them. */
static long hubs_rss_kb(void)
{
    long kb = 0;
    for (int i = 0; i < opt.n_hub_pids; i++)
        kb += hub_rss_kb(opt.hub_pids[i]);
    return kb;
}

static uint64_t hubs_cpu_ns(void)
{
    uint64_t ns = 0;
    for (int i = 0; i < opt.n_hub_pids; i++)
        ns += hub_cpu_ns(opt.hub_pids[i]);
    return ns;
}

/* ------------------------------------------------------------ publishers */

typedef struct pubconn {
    uv_tcp_t tcp;
    uv_connect_t conn_req;
    uv_write_t write_req;
    qs_buf out;
    char resp[4096];
    size_t resp_len;
    bool busy, connected, closing;
    uint64_t sent_ns;
} pubconn;

static struct {
    uv_loop_t *loop;
    pubconn *conns;
    long next; /* next update number to publish */
    long done; /* answered 200 */
    long errors;
    uint64_t start_ns, end_ns;
    hist latency;
    uv_timer_t pacer;
    bool finished;
} P;

static void pub_send(pubconn *c);
static void pub_connect(pubconn *c);

static void pub_build(pubconn *c, long n)
{
    char topic[128], data[64];
    topic_name(topic, sizeof(topic), n);
    c->sent_ns = now_ns();
    int dl = snprintf(data, sizeof(data), "%" PRIu64 " ", c->sent_ns);
    qs_buf body = QS_BUF_INIT;
    if (opt.profile == PROFILE_NCHAN) {
        qs_buf_append(&body, data, (size_t)dl);
        for (int i = dl; i < opt.size; i++)
            qs_buf_append_char(&body, 'x');
        qs_buf_reset(&c->out);
        qs_buf_appendf(
            &c->out, "POST /pub/%ld HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n%s\r\n",
            n % opt.topics, opt.host, body.len, opt.churn ? "Connection: close\r\n" : "");
    } else {
        qs_buf_append_str(&body, "topic=");
        for (const char *p = topic; *p; p++) {
            if (*p == ':' || *p == '/')
                qs_buf_appendf(&body, "%%%02X", (unsigned char)*p);
            else
                qs_buf_append_char(&body, *p);
        }
        qs_buf_append_str(&body, "&data=");
        qs_buf_append(&body, data, (size_t)dl - 1);
        qs_buf_append_str(&body, "+");
        for (int i = dl; i < opt.size; i++)
            qs_buf_append_char(&body, 'x');
        qs_buf_reset(&c->out);
        qs_buf_appendf(&c->out,
                       "POST /.well-known/mercure HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer "
                       "%s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                       "Content-Length: %zu\r\n%s\r\n",
                       opt.host, pub_token, body.len, opt.churn ? "Connection: close\r\n" : "");
    }
    qs_buf_append(&c->out, body.p, body.len);
    qs_buf_free(&body);
}

static void pub_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pubconn *c = h->data;
    QS_UNUSED(suggested);
    *buf = uv_buf_init(c->resp + c->resp_len, (unsigned)(sizeof(c->resp) - c->resp_len - 1));
}

static void pub_closed(uv_handle_t *h)
{
    pubconn *c = h->data;
    c->closing = false;
    c->connected = false;
    if (P.finished || P.next >= opt.updates)
        return;
    /* Churn without a rate: the next publish opens the next connection (with a rate, the
     * pacer opens them). Keep-alive: the server closed the connection (nginx does after
     * keepalive_requests): open another, or this publisher would stop for good. */
    if (!opt.churn || opt.rate <= 0)
        pub_connect(c);
}

static void pub_maybe_finish(void)
{
    if (P.done + P.errors >= opt.updates && !P.finished) {
        P.finished = true;
        P.end_ns = now_ns();
        uv_timer_stop(&P.pacer);
        for (int i = 0; i < opt.publishers; i++)
            if (P.conns[i].connected && !P.conns[i].closing) {
                P.conns[i].closing = true;
                uv_close((uv_handle_t *)&P.conns[i].tcp, pub_closed);
            }
    }
}

/* One response per request: the status line and Content-Length body. */
static void pub_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    pubconn *c = st->data;
    QS_UNUSED(buf);
    if (nread < 0) {
        if (c->busy) {
            P.errors++;
            c->busy = false;
        }
        if (!c->closing) {
            c->closing = true;
            uv_close((uv_handle_t *)st, pub_closed);
        }
        pub_maybe_finish();
        return;
    }
    c->resp_len += (size_t)nread;
    c->resp[c->resp_len] = '\0';
    char *end = strstr(c->resp, "\r\n\r\n");
    if (!end)
        return;
    char *cl = strcasestr(c->resp, "content-length:");
    size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
    size_t total = (size_t)(end + 4 - c->resp) + body;
    if (c->resp_len < total)
        return;
    int status = atoi(c->resp + 9);
    bool ok = opt.profile == PROFILE_NCHAN ? (status >= 200 && status < 300) : status == 200;
    if (ok) {
        P.done++;
        hist_add(&P.latency, (now_ns() - c->sent_ns) / 1000);
    } else {
        P.errors++;
        if (P.errors < 5)
            fprintf(stderr, "loadgen: publish answered %d\n", status);
    }
    memmove(c->resp, c->resp + total, c->resp_len - total);
    c->resp_len -= total;
    c->busy = false;
    pub_maybe_finish();
    if (opt.churn) {
        if (!c->closing) {
            c->closing = true;
            uv_close((uv_handle_t *)st, pub_closed);
        }
        return;
    }
    if (opt.rate <= 0 && !P.finished)
        pub_send(c);
}

static void pub_written(uv_write_t *w, int status)
{
    pubconn *c = w->data;
    if (status < 0 && !c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, pub_closed);
    }
}

static void pub_maybe_finish(void);

/* A server too slow for the requested load still ends the run: past --publish-for, no new
 * publish is issued and the run ends once the ones in flight are answered. */
static bool pub_time_is_up(void)
{
    if (opt.publish_for <= 0 || now_ns() - P.start_ns < (uint64_t)(opt.publish_for * 1e9))
        return false;
    if (opt.updates > P.next)
        opt.updates = P.next;
    return true;
}

static void pub_send(pubconn *c)
{
    if (c->busy || !c->connected || c->closing || P.next >= opt.updates || pub_time_is_up())
        return;
    c->busy = true;
    pub_build(c, P.next++);
    uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
    c->write_req.data = c;
    uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, pub_written);
}

static void pub_connected(uv_connect_t *req, int status)
{
    pubconn *c = req->data;
    if (status < 0) {
        fprintf(stderr, "loadgen: publisher connect failed: %s\n", uv_strerror(status));
        P.errors++;
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, pub_closed);
        pub_maybe_finish();
        return;
    }
    c->connected = true;
    c->resp_len = 0;
    uv_read_start((uv_stream_t *)&c->tcp, pub_alloc, pub_read);
    if (opt.rate <= 0 || opt.churn)
        pub_send(c);
}

static void pub_connect(pubconn *c)
{
    uv_tcp_init(P.loop, &c->tcp);
    uv_tcp_nodelay(&c->tcp, 1);
    c->tcp.data = c;
    c->conn_req.data = c;
    struct sockaddr_in dst;
    uv_ip4_addr(opt.host, opt.pub_port ? opt.pub_port : opt.port, &dst);
    uv_tcp_connect(&c->conn_req, &c->tcp, (struct sockaddr *)&dst, pub_connected);
}

/* Rate mode: a timer releases the updates due since the start on idle connections. */
static void pacer_cb(uv_timer_t *t)
{
    QS_UNUSED(t);
    if (pub_time_is_up()) {
        pub_maybe_finish();
        return;
    }
    double elapsed = (double)(now_ns() - P.start_ns) / 1e9;
    long due = (long)(elapsed * opt.rate) + 1;
    if (due > opt.updates)
        due = opt.updates;
    for (int i = 0; i < opt.publishers && P.next < due; i++) {
        pubconn *c = &P.conns[i];
        if (opt.churn) {
            if (!c->connected && !c->closing && !c->busy) {
                c->busy = false;
                pub_connect(c);
            }
            continue;
        }
        pub_send(c);
    }
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    fputs("usage: loadgen [--host H] [--port P] [--key K] [--profile mercure|nchan]\n"
          "  [--pub-port P (publishers' hub, default --port)]\n"
          "  [--subscribers N] [--topics T] [--templates | --urlpatterns] [--procs K]\n"
          "  [--sources S]\n"
          "  [--publishers P] [--updates M] [--rate R] [--size B] [--churn]\n"
          "  [--hub-pid PID] [--drain S] [--replay] [--json] [--label L]\n"
          "  [--sub-churn PER_S --duration S]\n",
          stderr);
    exit(2);
}

static char *mint(json_t *claims)
{
    const char *err = NULL;
    qs_jwt_key *k = qs_jwt_key_new_private(QS_JWT_HS256, opt.key, strlen(opt.key), &err);
    if (!k)
        qs_panic("key: %s", err);
    char *t = qs_jwt_sign(k, claims, &err);
    qs_jwt_key_free(k);
    json_decref(claims);
    return t;
}

static int wait_ready(int *fds, int n, double timeout_s)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
    for (int i = 0; i < n; i++) {
        for (;;) {
            fd_set set;
            FD_ZERO(&set);
            FD_SET(fds[i], &set);
            struct timeval tv = {0, 100000};
            if (select(fds[i] + 1, &set, NULL, NULL, &tv) > 0) {
                char c;
                if (read(fds[i], &c, 1) == 1)
                    break;
                return -1;
            }
            if (now_ns() > deadline)
                return -1;
        }
    }
    return 0;
}

static int read_report(int fd, report *r)
{
    char *p = (char *)r;
    size_t left = sizeof(*r);
    while (left) {
        ssize_t n = read(fd, p, left);
        if (n <= 0)
            return -1;
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct option longopts[] = {
        {"host", 1, 0, 'H'},
        {"port", 1, 0, 'p'},
        {"key", 1, 0, 'k'},
        {"profile", 1, 0, 'f'},
        {"subscribers", 1, 0, 's'},
        {"topics", 1, 0, 't'},
        {"templates", 0, 0, 'T'},
        {"urlpatterns", 0, 0, 'U'},
        {"publishers", 1, 0, 'P'},
        {"updates", 1, 0, 'm'},
        {"rate", 1, 0, 'r'},
        {"size", 1, 0, 'b'},
        {"churn", 0, 0, 'c'},
        {"procs", 1, 0, 'K'},
        {"hub-pid", 1, 0, 'h'},
        {"drain", 1, 0, 'd'},
        {"replay", 0, 0, 'R'},
        {"sources", 1, 0, 'S'},
        {"json", 0, 0, 'j'},
        {"label", 1, 0, 'l'},
        {"sub-churn", 1, 0, 'C'},
        {"duration", 1, 0, 'D'},
        {"pub-port", 1, 0, 'o'},
        {"publish-for", 1, 0, 'F'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'o':
            opt.pub_port = atoi(optarg);
            break;
        case 'k':
            opt.key = optarg;
            break;
        case 'f':
            opt.profile = strcmp(optarg, "nchan") == 0 ? PROFILE_NCHAN : PROFILE_MERCURE;
            break;
        case 's':
            opt.subscribers = atoi(optarg);
            break;
        case 't':
            opt.topics = atoi(optarg);
            break;
        case 'T':
            opt.templates = true;
            break;
        case 'U':
            opt.urlpatterns = true;
            break;
        case 'P':
            opt.publishers = atoi(optarg);
            break;
        case 'm':
            opt.updates = atol(optarg);
            break;
        case 'r':
            opt.rate = atof(optarg);
            break;
        case 'b':
            opt.size = atoi(optarg);
            break;
        case 'c':
            opt.churn = true;
            break;
        case 'K':
            opt.procs = atoi(optarg);
            break;
        case 'h':
            for (char *p = optarg; *p && opt.n_hub_pids < 16;
                 p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
                opt.hub_pids[opt.n_hub_pids++] = atoi(p);
            opt.hub_pid = opt.hub_pids[0];
            break;
        case 'd':
            opt.drain_s = atof(optarg);
            break;
        case 'R':
            opt.replay = true;
            break;
        case 'S':
            opt.sources = atoi(optarg);
            break;
        case 'j':
            opt.json = true;
            break;
        case 'l':
            opt.label = optarg;
            break;
        case 'C':
            opt.sub_churn = atof(optarg);
            break;
        case 'D':
            opt.duration = atof(optarg);
            break;
        case 'F':
            opt.publish_for = atof(optarg);
            break;
        default:
            usage();
        }
    }
    if (opt.topics < 1 || opt.publishers < 1 || opt.procs < 1 || opt.size < 24)
        usage();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);

    pub_token = mint(json_pack("{s:{s:[s]}}", "mercure", "publish", "*"));
    sub_token = mint(json_pack("{s:{s:[s]}}", "mercure", "subscribe", "*"));

    /* Subscribers: children, each with a pipe for "ready" and the final report. */
    int procs = opt.subscribers ? QS_MIN(opt.procs, opt.subscribers) : 0;
    pid_t *pids = calloc((size_t)procs + 1, sizeof(*pids));
    int *fds = calloc((size_t)procs + 1, sizeof(*fds));
    long rss_before = opt.hub_pid ? hubs_rss_kb() : 0;
    uint64_t ramp_start = now_ns();
    for (int i = 0; i < procs; i++) {
        int pipefd[2];
        if (pipe(pipefd) < 0)
            qs_panic("pipe");
        int first = (int)((long)opt.subscribers * i / procs);
        int last = (int)((long)opt.subscribers * (i + 1) / procs);
        pid_t pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            child_run(first, last - first, pipefd[1]);
        }
        close(pipefd[1]);
        pids[i] = pid;
        fds[i] = pipefd[0];
    }
    if (procs && wait_ready(fds, procs, 120) < 0) {
        fprintf(stderr, "loadgen: subscribers did not all connect\n");
        for (int i = 0; i < procs; i++)
            kill(pids[i], SIGKILL);
        return 1;
    }
    double ramp_s = (double)(now_ns() - ramp_start) / 1e9;
    usleep(300000); /* let the hub settle before sampling its memory */
    long rss_subs = opt.hub_pid ? hubs_rss_kb() : 0;

    if (opt.sub_churn > 0) {
        /* Subscriber churn: open sub_churn subscribers per second for `duration` seconds,
         * each leaving as soon as its stream is open. */
        memset(&S, 0, sizeof(S));
        S.loop = uv_default_loop();
        uint64_t cpu0 = opt.hub_pid ? hubs_cpu_ns() : 0;
        uint64_t t0 = now_ns(), end = t0 + (uint64_t)(opt.duration * 1e9);
        long started = 0;
        while (now_ns() < end) {
            long due = (long)((double)(now_ns() - t0) / 1e9 * opt.sub_churn);
            for (; started < due; started++) {
                sub *s = calloc(1, sizeof(*s));
                s->index = (int)started;
                s->started_ns = now_ns();
                sub_open(s);
            }
            uv_run(S.loop, UV_RUN_NOWAIT);
            usleep(500);
        }
        uint64_t drain = now_ns() + 5000000000ull;
        while (S.opened + S.failed < started && now_ns() < drain) {
            uv_run(S.loop, UV_RUN_NOWAIT);
            usleep(500);
        }
        double secs = (double)(now_ns() - t0) / 1e9;
        double cpu = opt.hub_pid ? (double)(hubs_cpu_ns() - cpu0) / 1e9 : 0;
        printf("{\"label\":\"%s\",\"churn_started\":%ld,\"churn_opened\":%d,\"failed\":%d,"
               "\"churn_per_s\":%.0f,\"open_p50_us\":%" PRIu64 ",\"open_p99_us\":%" PRIu64
               ",\"hub_cpu_s\":%.3f,\"hub_cpu_per_cycle_us\":%.1f}\n",
               opt.label ? opt.label : "", started, S.opened, S.failed, S.opened / secs,
               hist_percentile(&S.latency, 0.5), hist_percentile(&S.latency, 0.99), cpu,
               S.opened ? cpu * 1e6 / S.opened : 0);
        return S.failed ? 3 : 0;
    }

    /* Publishers, in this process. */
    memset(&P, 0, sizeof(P));
    P.loop = uv_default_loop();
    P.conns = calloc((size_t)opt.publishers, sizeof(*P.conns));
    uint64_t cpu_before = opt.hub_pid ? hubs_cpu_ns() : 0;
    P.start_ns = now_ns();
    uv_timer_init(P.loop, &P.pacer);
    if (opt.updates > 0) {
        if (!opt.churn || opt.rate <= 0)
            for (int i = 0; i < opt.publishers; i++)
                pub_connect(&P.conns[i]);
        if (opt.rate > 0) {
            uint64_t period = (uint64_t)QS_MAX(1.0, QS_MIN(10.0, 1000.0 / opt.rate));
            uv_timer_start(&P.pacer, pacer_cb, 0, period);
        }
        uv_run(P.loop, UV_RUN_DEFAULT);
    }
    if (!P.end_ns)
        P.end_ns = now_ns();
    double pub_s = (double)(P.end_ns - P.start_ns) / 1e9;

    if (opt.replay) {
        /* One subscriber asks for everything from the start: the time to receive it all is
         * the replay speed. */
        memset(&S, 0, sizeof(S));
        S.loop = P.loop;
        S.n = 1;
        S.subs = calloc(1, sizeof(*S.subs));
        replay_target = (uint64_t)P.done;
        uint64_t t0 = now_ns();
        sub_open(&S.subs[0]);
        uv_run(S.loop, UV_RUN_DEFAULT);
        double secs = (double)(now_ns() - t0) / 1e9;
        if (opt.json)
            printf("{\"label\":\"%s\",\"replayed\":%" PRIu64 ",\"replay_s\":%.3f,"
                   "\"replay_events_per_s\":%.0f,\"publishes_per_s\":%.1f}\n",
                   opt.label ? opt.label : "", S.events, secs, (double)S.events / secs,
                   pub_s > 0 ? (double)P.done / pub_s : 0);
        else
            printf("replayed %" PRIu64 " events in %.3fs = %.0f events/s (published %.0f/s)\n",
                   S.events, secs, (double)S.events / secs, (double)P.done / pub_s);
        return S.events == (uint64_t)P.done ? 0 : 3;
    }

    /* Expected deliveries: every subscriber of the update's topic. */
    uint64_t expected = 0;
    if (opt.subscribers) {
        for (long t = 0; t < opt.topics; t++) {
            long subs_t = opt.subscribers / opt.topics + (t < opt.subscribers % opt.topics);
            long upd_t = P.done / opt.topics + (t < P.done % opt.topics);
            expected += (uint64_t)(subs_t * upd_t);
        }
    }
    /* Wait for delivery to drain (bounded), then collect the children's reports. */
    report total;
    memset(&total, 0, sizeof(total));
    uint64_t drain_deadline = now_ns() + (uint64_t)(opt.drain_s * 1e9);
    uint64_t deliver_end = P.end_ns;
    for (;;) {
        usleep(100000);
        /* Without a side channel for progress, wait a fixed share of the drain budget
         * scaled by the volume, bounded by --drain. */
        uint64_t budget = (uint64_t)(QS_MIN(opt.drain_s, 0.5 + (double)expected / 2e6) * 1e9);
        if (now_ns() >= P.end_ns + budget || now_ns() >= drain_deadline)
            break;
    }
    uint64_t cpu_after = opt.hub_pid ? hubs_cpu_ns() : 0;
    for (int i = 0; i < procs; i++) {
        report r;
        kill(pids[i], SIGUSR1);
        if (read_report(fds[i], &r) < 0) {
            fprintf(stderr, "loadgen: a subscriber process died\n");
            return 1;
        }
        total.opened += r.opened;
        total.failed += r.failed;
        total.events += r.events;
        hist_merge(&total.latency, &r.latency);
        waitpid(pids[i], NULL, 0);
    }
    deliver_end = QS_MAX(deliver_end, P.end_ns);
    double cpu_s = (double)(cpu_after - cpu_before) / 1e9;
    uint64_t losses = expected > total.events ? expected - total.events : 0;
    double mem_per_sub = opt.subscribers && rss_subs
                             ? (double)(rss_subs - rss_before) * 1024.0 / opt.subscribers
                             : 0;
    double deliveries_per_s = pub_s > 0 ? (double)total.events / pub_s : 0;
    double cpu_per_delivery_us = total.events ? cpu_s * 1e6 / (double)total.events : 0;

    if (opt.json) {
        printf("{\"label\":\"%s\",\"subscribers\":%d,\"opened\":%d,\"failed\":%d,"
               "\"ramp_s\":%.3f,\"published\":%ld,\"publish_errors\":%ld,\"publish_s\":%.3f,"
               "\"publishes_per_s\":%.1f,\"publish_p50_us\":%" PRIu64 ",\"publish_p99_us\":%" PRIu64
               ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64 ",\"losses\":%" PRIu64
               ",\"deliveries_per_s\":%.1f,\"lat_p50_us\":%" PRIu64 ",\"lat_p90_us\":%" PRIu64
               ",\"lat_p99_us\":%" PRIu64 ",\"lat_p999_us\":%" PRIu64 ",\"lat_max_us\":%" PRIu64
               ",\"hub_rss_before_kb\":%ld,\"hub_rss_subs_kb\":%ld,\"mem_per_sub_bytes\":%.0f,"
               "\"hub_cpu_s\":%.3f,\"cpu_per_delivery_us\":%.3f,"
               "\"deliveries_per_cpu_s\":%.0f}\n",
               opt.label ? opt.label : "", opt.subscribers, total.opened, total.failed, ramp_s,
               P.done, P.errors, pub_s, pub_s > 0 ? (double)P.done / pub_s : 0,
               hist_percentile(&P.latency, 0.5), hist_percentile(&P.latency, 0.99), expected,
               total.events, losses, deliveries_per_s, hist_percentile(&total.latency, 0.5),
               hist_percentile(&total.latency, 0.9), hist_percentile(&total.latency, 0.99),
               hist_percentile(&total.latency, 0.999), total.latency.max, rss_before, rss_subs,
               mem_per_sub, cpu_s, cpu_per_delivery_us,
               cpu_s > 0 ? (double)total.events / cpu_s : 0);
    } else {
        printf("subscribers %d opened %d failed %d ramp %.2fs\n", opt.subscribers, total.opened,
               total.failed, ramp_s);
        printf("published %ld (%ld errors) in %.2fs = %.0f/s; publish latency p50 %" PRIu64
               "us p99 %" PRIu64 "us\n",
               P.done, P.errors, pub_s, pub_s > 0 ? (double)P.done / pub_s : 0,
               hist_percentile(&P.latency, 0.5), hist_percentile(&P.latency, 0.99));
        printf(
            "deliveries %" PRIu64 "/%" PRIu64 " (losses %" PRIu64 "), %.0f/s; latency p50 %" PRIu64
            "us p90 %" PRIu64 "us p99 %" PRIu64 "us p999 %" PRIu64 "us max %" PRIu64 "us\n",
            total.events, expected, losses, deliveries_per_s, hist_percentile(&total.latency, 0.5),
            hist_percentile(&total.latency, 0.9), hist_percentile(&total.latency, 0.99),
            hist_percentile(&total.latency, 0.999), total.latency.max);
        if (opt.hub_pid)
            printf("hub rss %ld kB -> %ld kB (%.0f B/subscriber); cpu %.3fs (%.3f us/delivery)\n",
                   rss_before, rss_subs, mem_per_sub, cpu_s, cpu_per_delivery_us);
    }
    free(pids);
    free(fds);
    return losses ? 3 : 0;
}
