/* SPDX-License-Identifier: MIT
 * rawfloor.c - the raw write floor for the fan-out benchmarks: the least work a server can
 * do to deliver an event over SSE. It speaks just enough HTTP for the load generator (a GET
 * on /.well-known/mercure?topic=T opens a chunked event stream, a form POST with topic and
 * data publishes), keeps subscribers in a per-topic array, and writes every delivery with
 * one write() of the same bytes a Mercure hub sends (chunk header, SSE event, CRLF). No
 * authorization, no matching beyond byte equality, no batching, no buffering: a write that
 * does not complete drops the subscriber. Single-threaded epoll.
 *
 *   rawfloor PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD (1 << 20)

typedef struct client {
    char *in;
    size_t len, cap;
    int topic; /* index of its topic, -1 when not a subscriber */
} client;

static client *clients[MAX_FD];
static char **topic_names;
static int **topic_subs;
static int *topic_n, *topic_cap;
static int n_topics;
static unsigned long long seq;

static int topic_index(const char *name, size_t len)
{
    for (int i = 0; i < n_topics; i++)
        if (strlen(topic_names[i]) == len && memcmp(topic_names[i], name, len) == 0)
            return i;
    topic_names = realloc(topic_names, (size_t)(n_topics + 1) * sizeof(*topic_names));
    topic_subs = realloc(topic_subs, (size_t)(n_topics + 1) * sizeof(*topic_subs));
    topic_n = realloc(topic_n, (size_t)(n_topics + 1) * sizeof(*topic_n));
    topic_cap = realloc(topic_cap, (size_t)(n_topics + 1) * sizeof(*topic_cap));
    topic_names[n_topics] = strndup(name, len);
    topic_subs[n_topics] = NULL;
    topic_n[n_topics] = topic_cap[n_topics] = 0;
    return n_topics++;
}

static size_t url_decode(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len) {
            char h[3] = {s[i + 1], s[i + 2], 0};
            s[o++] = (char)strtol(h, NULL, 16);
            i += 2;
        } else {
            s[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    return o;
}

static void drop(int epfd, int fd)
{
    client *c = clients[fd];
    if (c && c->topic >= 0) {
        int t = c->topic;
        for (int i = 0; i < topic_n[t]; i++)
            if (topic_subs[t][i] == fd) {
                topic_subs[t][i] = topic_subs[t][--topic_n[t]];
                break;
            }
    }
    if (c) {
        free(c->in);
        free(c);
        clients[fd] = NULL;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

/* Finds "name=" in a form and returns the decoded value in place. */
static char *form_value(char *form, size_t len, const char *name, size_t *out_len)
{
    size_t nl = strlen(name);
    char *p = form, *end = form + len;
    while (p < end) {
        char *amp = memchr(p, '&', (size_t)(end - p));
        char *pe = amp ? amp : end;
        if ((size_t)(pe - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            char *v = p + nl + 1;
            *out_len = url_decode(v, (size_t)(pe - v));
            return v;
        }
        p = pe + 1;
    }
    return NULL;
}

static void publish(int epfd, char *topic, size_t tlen, char *data, size_t dlen)
{
    int t = topic_index(topic, tlen);
    char frame[65536];
    char event[65000];
    int elen =
        snprintf(event, sizeof(event), "id: urn:uuid:%llu\ndata: %.*s\n\n", ++seq, (int)dlen, data);
    int flen = snprintf(frame, sizeof(frame), "%x\r\n", elen);
    memcpy(frame + flen, event, (size_t)elen);
    flen += elen;
    memcpy(frame + flen, "\r\n", 2);
    flen += 2;
    for (int i = 0; i < topic_n[t];) {
        int fd = topic_subs[t][i];
        /* One write per delivery: the floor a hub cannot go below without batching. */
        if (write(fd, frame, (size_t)flen) != flen) {
            drop(epfd, fd);
            continue;
        }
        i++;
    }
}

static void handle(int epfd, int fd)
{
    client *c = clients[fd];
    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap ? c->cap * 2 : 8192;
            c->in = realloc(c->in, c->cap);
        }
        ssize_t n = read(fd, c->in + c->len, c->cap - c->len - 1);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            drop(epfd, fd);
            return;
        }
        if (n < 0)
            break;
        c->len += (size_t)n;
    }
    for (;;) {
        c->in[c->len] = '\0';
        char *end = strstr(c->in, "\r\n\r\n");
        if (!end)
            return;
        size_t head = (size_t)(end + 4 - c->in);
        if (!strncmp(c->in, "GET ", 4)) {
            char *q = strstr(c->in, "topic=");
            char *sp = q ? strchr(q, ' ') : NULL;
            char *amp = q ? strchr(q, '&') : NULL;
            if (amp && amp < sp)
                sp = amp;
            if (!q || !sp) {
                drop(epfd, fd);
                return;
            }
            size_t tlen = url_decode(q + 6, (size_t)(sp - q - 6));
            int t = topic_index(q + 6, tlen);
            static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n2\r\n:\n\r\n";
            if (write(fd, resp, sizeof(resp) - 1) != sizeof(resp) - 1) {
                drop(epfd, fd);
                return;
            }
            if (topic_n[t] == topic_cap[t]) {
                topic_cap[t] = topic_cap[t] ? topic_cap[t] * 2 : 64;
                topic_subs[t] = realloc(topic_subs[t], (size_t)topic_cap[t] * sizeof(int));
            }
            topic_subs[t][topic_n[t]++] = fd;
            c->topic = t;
            c->len = 0;
            return;
        }
        char *cl = strcasestr(c->in, "content-length:");
        size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
        if (c->len < head + body)
            return;
        /* Decode topic and data from separate copies: decoding shortens in place. */
        char *copy = strndup(c->in + head, body);
        char *copy2 = strndup(c->in + head, body);
        size_t tlen = 0, dlen = 0;
        char *topic = form_value(copy, body, "topic", &tlen);
        char *data = form_value(copy2, body, "data", &dlen);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (write(fd, ok, sizeof(ok) - 1) < 0) {
            free(copy);
            free(copy2);
            drop(epfd, fd);
            return;
        }
        if (topic)
            publish(epfd, topic, tlen, data ? data : "", dlen);
        free(copy);
        free(copy2);
        memmove(c->in, c->in + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 3100;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0) {
        perror("rawfloor: listen");
        return 1;
    }
    int epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
    fprintf(stderr, "rawfloor listening on 127.0.0.1:%d\n", port);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_FD) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    clients[cfd] = calloc(1, sizeof(client));
                    clients[cfd]->topic = -1;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            if (clients[fd])
                handle(epfd, fd);
        }
    }
}
