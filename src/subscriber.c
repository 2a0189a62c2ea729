/* SPDX-License-Identifier: MIT
 * subscriber.c - the per-worker subscriber index, fan-out, bounded queues and writes.
 *
 * Fan-out touches only subscribers an update can match: the group of each topic (a hash
 * lookup: exact selectors, and any selector spelled like the topic), the "*" group, and
 * the template groups whose selector matches (through the selector cache). Each matching
 * subscriber gets a reference to the update's frame; frames queued for one subscriber
 * leave in one writev, framed as one HTTP chunk.
 */
#include <stdlib.h>

#include "auth.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "uuid.h"

#define MAX_BATCH_FRAMES 64

/* ----------------------------------------------------------------- index */

void qs_worker_index_init(qs_worker *w)
{
    w->selectors = qs_selector_table_new((size_t)QS_MAX(w->hub->cfg->topic_selector_cache, 0));
    qs_strmap_init(&w->groups);
    qs_strmap_init(&w->claimsets);
    qs_list_init(&w->heartbeat_list);
    qs_list_init(&w->blocked_list);
    qs_heap_init(&w->deadlines);
}

void qs_worker_index_free(qs_worker *w)
{
    /* Every subscriber was freed with its connection, so the maps are empty. */
    qs_strmap_free(&w->groups);
    qs_strmap_free(&w->claimsets);
    free(w->template_groups);
    qs_heap_free(&w->deadlines);
    qs_selector_table_free(w->selectors);
    free(w->doomed);
}

static void group_add(qs_worker *w, qs_subscriber *s, uint32_t entry, const char *sel, size_t len)
{
    void **slot = qs_strmap_upsert(&w->groups, sel, len);
    qs_sub_group *g = *slot;
    if (!g) {
        g = qs_xcalloc(1, sizeof(*g));
        g->sel = qs_selector_table_acquire(w->selectors, sel, len);
        *slot = g;
        if (g->sel->kind == QS_SEL_TEMPLATE) {
            if (w->n_template_groups == w->cap_template_groups) {
                w->cap_template_groups = w->cap_template_groups ? w->cap_template_groups * 2 : 8;
                w->template_groups = qs_xrealloc(
                    w->template_groups, w->cap_template_groups * sizeof(*w->template_groups));
            }
            g->template_idx = w->n_template_groups;
            w->template_groups[w->n_template_groups++] = g;
        }
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->members = qs_xrealloc(g->members, g->cap * sizeof(*g->members));
    }
    g->members[g->n] = (qs_group_member){s, entry};
    s->entries[entry] = (qs_sub_entry){g, g->n};
    g->n++;
}

static void group_remove(qs_worker *w, qs_sub_entry *e)
{
    qs_sub_group *g = e->group;
    uint32_t i = e->idx;
    g->n--;
    if (i != g->n) {
        /* Move the last member into the hole and tell it where it now is. */
        g->members[i] = g->members[g->n];
        qs_group_member *moved = &g->members[i];
        moved->sub->entries[moved->entry].idx = i;
    }
    if (g->n)
        return;
    qs_strmap_remove(&w->groups, g->sel->str, g->sel->len);
    if (g->sel->kind == QS_SEL_TEMPLATE) {
        uint32_t t = g->template_idx;
        w->n_template_groups--;
        if (t != w->n_template_groups) {
            w->template_groups[t] = w->template_groups[w->n_template_groups];
            w->template_groups[t]->template_idx = t;
        }
    }
    qs_selector_table_release(w->selectors, g->sel);
    free(g->members);
    free(g);
}

/* Subscribers with the same subscribe claims share a claim set, so a private update is
 * authorized once per distinct claim list rather than once per subscriber. */
static qs_claimset *claimset_acquire(qs_worker *w, char *const *claims, size_t n)
{
    qs_buf key = QS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(claims[i]);
        qs_buf_append_u64(&key, len);
        qs_buf_append_char(&key, ':');
        qs_buf_append(&key, claims[i], len);
    }
    void **slot = qs_strmap_upsert(&w->claimsets, key.p ? key.p : "", key.len);
    qs_claimset *cs = *slot;
    if (!cs) {
        cs = qs_xcalloc(1, sizeof(*cs));
        cs->sels = qs_xcalloc(n, sizeof(*cs->sels));
        cs->n = (uint32_t)n;
        for (size_t i = 0; i < n; i++) {
            cs->sels[i] = qs_selector_table_acquire(w->selectors, claims[i], strlen(claims[i]));
            if (cs->sels[i]->kind == QS_SEL_ANY)
                cs->all = true;
        }
        cs->key_len = key.len;
        cs->key = qs_buf_steal(&key);
        *slot = cs;
    }
    qs_buf_free(&key);
    cs->refs++;
    return cs;
}

static void claimset_release(qs_worker *w, qs_claimset *cs)
{
    if (--cs->refs)
        return;
    for (uint32_t i = 0; i < cs->n; i++)
        qs_selector_table_release(w->selectors, cs->sels[i]);
    qs_strmap_remove(&w->claimsets, cs->key, cs->key_len);
    free(cs->sels);
    free(cs->key);
    free(cs);
}

static bool claimset_allows(qs_worker *w, qs_claimset *cs, const qs_update *u)
{
    if (cs->all)
        return true;
    if (cs->memo_seq != u->seq) {
        cs->memo_seq = u->seq;
        cs->memo = qs_can_receive(w->selectors, cs->sels, cs->n, u);
    }
    return cs->memo;
}

/* ------------------------------------------------------------- lifetime */

qs_subscriber *qs_subscriber_new(qs_conn *conn, const qs_form *query, const qs_jwt_claims *claims,
                                 uint64_t deadline_ms)
{
    qs_worker *w = conn->w;
    qs_subscriber *s = qs_xcalloc(1, sizeof(*s));
    s->conn = conn;
    s->w = w;
    s->chunked = conn->minor_version >= 1;
    s->last_seq = w->bus_seq;
    s->pending_idx = UINT32_MAX;
    qs_uuid4_urn(s->id);
    qs_list_init(&s->heartbeat_node);
    qs_list_init(&s->blocked_node);

    uint32_t n = (uint32_t)qs_form_count(query, "topic");
    s->entries = qs_xcalloc(n, sizeof(*s->entries));
    for (size_t i = 0; i < query->n; i++) {
        const qs_form_pair *p = &query->pairs[i];
        if (p->key_len == 5 && memcmp(p->key, "topic", 5) == 0)
            group_add(w, s, s->n_entries++, p->value, p->value_len);
    }
    if (claims && claims->has_subscribe && claims->n_subscribe)
        s->claims = claimset_acquire(w, claims->subscribe, claims->n_subscribe);
    if (claims && claims->payload)
        s->payload = json_incref(claims->payload);

    s->last_write_ms = qs_now_ms();
    qs_list_push_back(&w->heartbeat_list, &s->heartbeat_node);
    if (deadline_ms)
        qs_heap_push(&w->deadlines, &s->deadline, deadline_ms);
    qs_metric_add(&qs_metrics_global.subscribers_connected, 1);
    qs_metric_add(&qs_metrics_global.subscribers_total, 1);
    return s;
}

static void on_subscriber_write(uv_write_t *req, int status);
static void replay_next(qs_subscriber *s);

void qs_subscriber_free(qs_subscriber *s)
{
    qs_worker *w = s->w;
    qs_subscriptions_disconnected(s);
    for (uint32_t i = 0; i < s->n_entries; i++)
        group_remove(w, &s->entries[i]);
    free(s->entries);
    if (s->claims)
        claimset_release(w, s->claims);
    if (s->payload)
        json_decref(s->payload);
    for (uint32_t i = 0; i < s->q_len; i++)
        qs_frame_unref(s->q[(s->q_head + i) % s->q_cap]);
    free(s->q);
    qs_list_unlink(&s->heartbeat_node);
    qs_list_unlink(&s->blocked_node);
    qs_heap_remove(&w->deadlines, &s->deadline);
    if (s->pending_idx != UINT32_MAX)
        w->pending[s->pending_idx] = NULL;
    if (s->wreq && s->write_pending)
        s->wreq->data = NULL; /* the cancelled write's callback only frees the request */
    else
        free(s->wreq);
    free(s->head);
    free(s->replay_id);
    qs_metric_sub(&qs_metrics_global.subscribers_connected, 1);
    free(s);
}

/* ---------------------------------------------------------------- queue */

static void mark_pending(qs_subscriber *s)
{
    qs_worker *w = s->w;
    if (s->pending_idx != UINT32_MAX)
        return;
    if (w->n_pending == w->cap_pending) {
        w->cap_pending = w->cap_pending ? w->cap_pending * 2 : 64;
        w->pending = qs_xrealloc(w->pending, w->cap_pending * sizeof(*w->pending));
    }
    s->pending_idx = (uint32_t)w->n_pending;
    w->pending[w->n_pending++] = s;
}

static void doom(qs_subscriber *s, enum qs_drop_reason reason)
{
    qs_worker *w = s->w;
    if (s->doomed)
        return;
    s->doomed = true;
    qs_metric_add(&qs_metrics_global.subscribers_dropped[reason], 1);
    qs_info("subscriber %s dropped: %s", s->conn->remote,
            reason == QS_DROP_QUEUE_FULL ? "unable to receive updates fast enough"
                                         : "write did not complete within dispatch_timeout");
    if (w->n_doomed == w->cap_doomed) {
        w->cap_doomed = w->cap_doomed ? w->cap_doomed * 2 : 16;
        w->doomed = qs_xrealloc(w->doomed, w->cap_doomed * sizeof(*w->doomed));
    }
    w->doomed[w->n_doomed++] = s->conn;
}

/* Closes the connections of subscribers dropped during a fan-out, after it. */
static void close_doomed(qs_worker *w)
{
    for (size_t i = 0; i < w->n_doomed; i++)
        qs_conn_close(w->doomed[i]);
    w->n_doomed = 0;
}

/* Makes room for n more frames, unwrapping the ring into a bigger array when needed. */
static void queue_reserve(qs_subscriber *s, uint32_t n)
{
    if (s->q_len + n <= s->q_cap)
        return;
    uint32_t cap = s->q_cap ? s->q_cap : 4;
    while (cap < s->q_len + n)
        cap *= 2;
    qs_frame **q = qs_xmalloc(cap * sizeof(*q));
    for (uint32_t i = 0; i < s->q_len; i++)
        q[i] = s->q[(s->q_head + i) % s->q_cap];
    free(s->q);
    s->q = q;
    s->q_head = 0;
    s->q_cap = cap;
}

/* Appends a frame to the queue; false when a bound would be exceeded. */
static bool enqueue(qs_subscriber *s, qs_frame *f)
{
    const qs_config *cfg = s->w->hub->cfg;
    if (s->ending)
        return true; /* nothing goes after the end of the stream */
    bool control = f->flags & (QS_FRAME_RAW | QS_FRAME_FINAL);
    /* The bounds apply to live frames; history being replayed is paced by the pulls. */
    /* The byte bound is about a backlog: one update bigger than it still goes through
     * when nothing is waiting (its size is bounded by max_request_body_size). */
    uint32_t live = s->q_len - s->front_n;
    if (!control && ((long)live >= cfg->subscriber_queue_size ||
                     (live && s->q_bytes - s->front_bytes + f->len > cfg->subscriber_queue_bytes)))
        return false;
    queue_reserve(s, 1);
    s->q[(s->q_head + s->q_len) % s->q_cap] = qs_frame_ref(f);
    s->q_len++;
    s->q_bytes += f->len;
    if (f->flags & QS_FRAME_FINAL)
        s->ending = true;
    mark_pending(s);
    return true;
}

static inline qs_frame *queue_at(const qs_subscriber *s, uint32_t i)
{
    return s->q[(s->q_head + i) % s->q_cap];
}

static void queue_pop(qs_subscriber *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        qs_frame *f = queue_at(s, i);
        s->q_bytes -= f->len;
        if (s->front_n) {
            s->front_n--;
            s->front_bytes -= f->len;
        }
        qs_frame_unref(f);
    }
    s->q_head = (s->q_head + n) % s->q_cap;
    s->q_len -= n;
    if (!s->q_len && s->q_cap > 16) {
        /* A burst grew the ring; give the memory back once it drained. */
        free(s->q);
        s->q = NULL;
        s->q_cap = 0;
        s->q_head = 0;
    }
}

/* Inserts frames after the front region (history not yet written), before live frames. */
static void queue_insert_front(qs_subscriber *s, qs_frame **frames, uint32_t n)
{
    if (!n)
        return;
    queue_reserve(s, n);
    uint32_t live = s->q_len - s->front_n;
    /* Shift the live frames back by n, last first, then fill the gap. */
    for (uint32_t i = live; i-- > 0;) {
        uint32_t from = (s->q_head + s->front_n + i) % s->q_cap;
        uint32_t to = (s->q_head + s->front_n + n + i) % s->q_cap;
        s->q[to] = s->q[from];
    }
    for (uint32_t i = 0; i < n; i++) {
        s->q[(s->q_head + s->front_n + i) % s->q_cap] = frames[i];
        s->q_bytes += frames[i]->len;
        s->front_bytes += frames[i]->len;
    }
    s->q_len += n;
    s->front_n += n;
}

/* Removes queued live frames of updates up to seq (the front region is left alone). */
static void drop_live_until(qs_subscriber *s, uint64_t seq)
{
    uint32_t keep = s->front_n;
    for (uint32_t i = s->front_n; i < s->q_len; i++) {
        qs_frame *f = queue_at(s, i);
        if (f->seq && f->seq <= seq) {
            s->q_bytes -= f->len;
            qs_frame_unref(f);
            continue;
        }
        s->q[(s->q_head + keep) % s->q_cap] = f;
        keep++;
    }
    s->q_len = keep;
}

/* The frames the next write may take: while history is being replayed, only the front. */
static inline uint32_t writable(const qs_subscriber *s)
{
    return s->replaying ? s->front_n : s->q_len;
}

void qs_subscriber_start(qs_subscriber *s, const char *head, size_t head_len)
{
    qs_frame *f = qs_frame_new_raw(head, head_len);
    enqueue(s, f);
    qs_frame_unref(f);
}

void qs_subscriber_end(qs_subscriber *s)
{
    if (s->ending)
        return;
    s->replay_stop = true; /* no more history pulls: finish what was fetched, then end */
    enqueue(s, s->chunked ? qs_frame_last_chunk() : qs_frame_end());
}

/* --------------------------------------------------------------- writes */

/* Chooses the frames of the next batch: a RAW frame alone, or up to MAX_BATCH_FRAMES event
 * frames, each already framed as its own chunk. */
static void batch_begin(qs_subscriber *s)
{
    qs_frame *first = queue_at(s, 0);
    s->batch_written = 0;
    size_t len;
    if (first->flags & QS_FRAME_RAW) {
        s->batch_n = 1;
        qs_frame_bytes(first, s->chunked, &s->batch_len);
        return;
    }
    uint32_t n = 0;
    size_t total = 0;
    uint32_t avail = writable(s);
    while (n < avail && n < MAX_BATCH_FRAMES) {
        qs_frame *f = queue_at(s, n);
        if (f->flags & QS_FRAME_RAW)
            break;
        qs_frame_bytes(f, s->chunked, &len);
        total += len;
        n++;
    }
    s->batch_n = n;
    s->batch_len = total;
}

/* Fills iov with the unwritten part of the batch; returns the count. */
static unsigned batch_iov(qs_subscriber *s, uv_buf_t *iov)
{
    unsigned n = 0;
    size_t skip = s->batch_written;
    for (uint32_t i = 0; i < s->batch_n; i++) {
        size_t len;
        const char *p = qs_frame_bytes(queue_at(s, i), s->chunked, &len);
        if (skip >= len) {
            skip -= len;
            continue;
        }
        iov[n++] = uv_buf_init((char *)p + skip, (unsigned)(len - skip));
        skip = 0;
    }
    return n;
}

/* The batch is fully written: drop its frames; true when the stream must end now. */
static bool batch_done(qs_subscriber *s)
{
    bool final = queue_at(s, s->batch_n - 1)->flags & QS_FRAME_FINAL;
    qs_counter_bump(&s->w->counters.bytes_sent, s->batch_len);
    queue_pop(s, s->batch_n);
    s->batch_n = 0;
    s->last_write_ms = qs_now_ms();
    qs_list_move_back(&s->w->heartbeat_list, &s->heartbeat_node);
    return final;
}

void qs_subscriber_flush(qs_subscriber *s)
{
    qs_conn *c = s->conn;
    uv_buf_t iov[MAX_BATCH_FRAMES];
    for (;;) {
        if (s->write_pending || c->closing)
            return;
        if (!writable(s)) {
            if (s->replaying && !s->replay)
                replay_next(s); /* the fetched history is written: fetch more */
            return;
        }
        if (!s->batch_n)
            batch_begin(s);
        if (s->batch_len == 0) { /* the end of a close-delimited stream: nothing to write */
            if (batch_done(s)) {
                qs_conn_close(c);
                return;
            }
            continue;
        }
        unsigned n = batch_iov(s, iov);
        int written = uv_try_write((uv_stream_t *)&c->tcp, iov, n);
        if (written < 0 && written != UV_EAGAIN) {
            qs_conn_close(c);
            return;
        }
        if (written > 0)
            s->batch_written += (size_t)written;
        if (s->batch_written == s->batch_len) {
            if (batch_done(s)) {
                qs_conn_close(c);
                return;
            }
            continue;
        }
        /* The socket is full: let libuv finish the batch when it becomes writable. */
        n = batch_iov(s, iov);
        if (!s->wreq)
            s->wreq = qs_xmalloc(sizeof(*s->wreq));
        s->wreq->data = s;
        if (uv_write(s->wreq, (uv_stream_t *)&c->tcp, iov, n, on_subscriber_write) < 0) {
            qs_conn_close(c);
            return;
        }
        s->write_pending = true;
        s->blocked_since_ms = qs_now_ms();
        qs_list_push_back(&s->w->blocked_list, &s->blocked_node);
    }
}

static void on_subscriber_write(uv_write_t *req, int status)
{
    qs_subscriber *s = req->data;
    if (!s) {
        free(req); /* the subscriber went away while this write was in flight */
        return;
    }
    s->write_pending = false;
    qs_list_unlink(&s->blocked_node);
    if (status < 0) {
        qs_conn_close(s->conn);
        return;
    }
    s->batch_written = s->batch_len;
    if (batch_done(s)) {
        qs_conn_close(s->conn);
        return;
    }
    qs_subscriber_flush(s);
}

bool qs_worker_flush_pending(qs_worker *w)
{
    /* Flushing can close connections, which clears their slots; fan-out appends to the
     * array only between slices, never during this loop. */
    size_t end = QS_MIN(w->n_pending, w->pending_pos + QS_FLUSH_SLICE);
    for (; w->pending_pos < end; w->pending_pos++) {
        qs_subscriber *s = w->pending[w->pending_pos];
        if (!s)
            continue;
        w->pending[w->pending_pos] = NULL;
        s->pending_idx = UINT32_MAX;
        qs_subscriber_flush(s);
    }
    if (w->pending_pos == w->n_pending) {
        w->n_pending = w->pending_pos = 0;
        return false;
    }
    /* Under a steady stream of updates a round may never end: subscribers written early
     * in it are appended again behind the cursor. Once the written part is the larger
     * half, slide what is left to the front so the array stays within twice the number
     * of subscribers. */
    if (w->pending_pos >= QS_FLUSH_SLICE && w->pending_pos * 2 >= w->n_pending) {
        size_t left = 0;
        for (size_t i = w->pending_pos; i < w->n_pending; i++) {
            qs_subscriber *s = w->pending[i];
            if (!s)
                continue;
            s->pending_idx = (uint32_t)left;
            w->pending[left++] = s;
        }
        w->n_pending = left;
        w->pending_pos = 0;
        return left > 0;
    }
    return true;
}

void qs_worker_flush_all(qs_worker *w)
{
    while (qs_worker_flush_pending(w)) {
    }
}

/* -------------------------------------------------------------- fan-out */

/* True for a subscription event about s itself: as in the reference, a subscriber never
 * sees its own arrival (its events are published before it is registered there). The
 * event's topic ends with "/" + QueryEscape(id), and the id is "urn:uuid:" + 36 characters
 * that need no escaping. */
static bool own_presence_event(const qs_update *u, const qs_subscriber *s)
{
    static const char tail[] = "/urn%3Auuid%3A";
    const size_t uuid_len = 36, n = sizeof(tail) - 1 + uuid_len;
    if (u->n_topics != 1 || u->topic_lens[0] < n)
        return false;
    const char *end = u->topics[0] + u->topic_lens[0] - n;
    return memcmp(end, tail, sizeof(tail) - 1) == 0 &&
           memcmp(end + sizeof(tail) - 1, s->id + 9, uuid_len) == 0;
}

static void deliver_group(qs_worker *w, qs_sub_group *g, qs_update *u)
{
    for (uint32_t i = 0; i < g->n; i++) {
        qs_subscriber *s = g->members[i].sub;
        if (s->last_seq >= u->seq)
            continue; /* already queued through another selector, or subscribed later */
        s->last_seq = u->seq;
        if (s->doomed)
            continue;
        if (u->is_private &&
            (!s->claims || !claimset_allows(w, s->claims, u) || own_presence_event(u, s)))
            continue;
        if (!enqueue(s, u->frame)) {
            doom(s, QS_DROP_QUEUE_FULL);
            continue;
        }
        qs_counter_bump(&w->counters.deliveries, 1);
    }
}

void qs_worker_fanout(qs_worker *w, qs_update *u)
{
    w->bus_seq = u->seq;
    for (size_t i = 0; i < u->n_topics; i++) {
        qs_sub_group *g = qs_strmap_get(&w->groups, u->topics[i], u->topic_lens[i]);
        if (g)
            deliver_group(w, g, u);
    }
    qs_sub_group *any = qs_strmap_get(&w->groups, "*", 1);
    if (any)
        deliver_group(w, any, u);
    for (uint32_t t = 0; t < w->n_template_groups; t++) {
        qs_sub_group *g = w->template_groups[t];
        for (size_t i = 0; i < u->n_topics; i++) {
            if (qs_selector_table_match(w->selectors, g->sel, u->topics[i], u->topic_lens[i])) {
                deliver_group(w, g, u);
                break;
            }
        }
    }
    close_doomed(w);
}

/* --------------------------------------------------------------- timers */

void qs_subscribers_check_timers(qs_worker *w, uint64_t now)
{
    const qs_config *cfg = w->hub->cfg;
    qs_list *n;
    if (cfg->dispatch_timeout_ms) {
        while ((n = qs_list_front(&w->blocked_list))) {
            qs_subscriber *s = qs_list_entry(n, qs_subscriber, blocked_node);
            if (now - s->blocked_since_ms < cfg->dispatch_timeout_ms)
                break;
            qs_list_unlink(n);
            doom(s, QS_DROP_DISPATCH_TIMEOUT);
        }
        close_doomed(w);
    }
    qs_heap_node *top;
    while ((top = qs_heap_top(&w->deadlines)) && top->key <= now) {
        qs_subscriber *s = qs_container_of(top, qs_subscriber, deadline);
        qs_heap_remove(&w->deadlines, top);
        qs_subscriber_end(s); /* write_timeout or token expiry: end the stream cleanly */
    }
    if (cfg->heartbeat_ms) {
        while ((n = qs_list_front(&w->heartbeat_list))) {
            qs_subscriber *s = qs_list_entry(n, qs_subscriber, heartbeat_node);
            if (now - s->last_write_ms < cfg->heartbeat_ms)
                break;
            /* Requeue at the back; a write in progress counts as activity. */
            s->last_write_ms = now;
            qs_list_move_back(&w->heartbeat_list, n);
            if (!s->write_pending && !s->q_len && !s->replaying)
                enqueue(s, qs_frame_comment());
        }
    }
}

void qs_subscribers_end_all(qs_worker *w)
{
    for (qs_list *n = w->conns.next; n != &w->conns; n = n->next) {
        qs_conn *c = qs_list_entry(n, qs_conn, node);
        if (c->sub)
            qs_subscriber_end(c->sub);
    }
    qs_worker_flush_all(w);
}

/* --------------------------------------------------------------- history */

#define REPLAY_MAX_EVENTS 1024
#define REPLAY_MAX_BYTES (1u << 20)

/* A history pull holds a reference to the connection (not the subscriber, which its
 * connection frees when it closes) and keeps the worker from exiting until it returns. */
static void replay_task(qs_worker *w, void *arg);

static void replay_done(qs_replay *r)
{
    qs_conn *c = r->arg;
    qs_worker_post(c->w, replay_task, r);
}

static void replay_pull(qs_subscriber *s, bool first)
{
    qs_hub *hub = s->w->hub;
    qs_replay *r = qs_xcalloc(1, sizeof(*r));
    r->after_id = first ? s->replay_id : NULL;
    r->continuation = !first;
    r->after_seq = s->replay_cursor;
    r->until_seq = s->replay_until;
    r->max_events = REPLAY_MAX_EVENTS;
    r->max_bytes = REPLAY_MAX_BYTES;
    r->done = replay_done;
    r->arg = s->conn;
    s->replay = r;
    qs_conn_ref(s->conn);
    s->w->async_pending++;
    hub->transport->ops->replay(hub->transport, r);
}

static void replay_next(qs_subscriber *s)
{
    if (s->replay_stop) {
        s->replaying = false;
        mark_pending(s);
        return;
    }
    replay_pull(s, false);
}

/* True when the subscriber would receive u live: a selector matches and, for a private
 * update, the claims allow it. History is authorized again against the current token. */
static bool subscriber_wants(qs_subscriber *s, const qs_update *u)
{
    qs_worker *w = s->w;
    if (u->is_private &&
        (!s->claims ||
         !(s->claims->all || qs_can_receive(w->selectors, s->claims->sels, s->claims->n, u))))
        return false;
    for (uint32_t e = 0; e < s->n_entries; e++)
        for (size_t i = 0; i < u->n_topics; i++)
            if (qs_selector_table_match(w->selectors, s->entries[e].group->sel, u->topics[i],
                                        u->topic_lens[i]))
                return true;
    return false;
}

static void replay_task(qs_worker *w, void *arg)
{
    qs_replay *r = arg;
    qs_conn *c = r->arg;
    w->async_pending--;
    qs_subscriber *s = c->closing ? NULL : c->sub;
    if (s && r->status != 0) {
        qs_error("history replay failed: %s", r->reason[0] ? r->reason : "unknown error");
        qs_conn_close(c);
        s = NULL;
    }
    if (s) {
        bool first = !r->continuation;
        s->replay = NULL;
        qs_frame **frames = qs_xmalloc((r->n_updates + 1) * sizeof(*frames));
        uint32_t n = 0;
        if (first) {
            /* The response head waited for this answer: it names the replay cursor. */
            qs_buf head = QS_BUF_INIT;
            qs_buf_append(&head, s->head, s->head_split);
            qs_buf_append_str(&head, "Last-Event-Id: ");
            qs_buf_append_str(&head, r->id_found ? s->replay_id : "earliest");
            qs_buf_append_str(&head, "\r\n");
            qs_buf_append_str(&head, s->head + s->head_split);
            frames[n++] = qs_frame_new_raw(head.p, head.len);
            qs_buf_free(&head);
            free(s->head);
            s->head = NULL;
        }
        for (size_t i = 0; i < r->n_updates; i++)
            if (subscriber_wants(s, r->updates[i])) {
                frames[n++] = qs_frame_ref(r->updates[i]->frame);
                qs_counter_bump(&w->counters.deliveries, 1);
            }
        if (first && r->id_found && r->next_seq > s->last_seq) {
            /* The requested id is ahead of this worker's bus (published on another node an
             * instant ago): updates up to it that were queued live, or will arrive, are
             * ones the client already has. */
            drop_live_until(s, r->next_seq);
            s->last_seq = r->next_seq;
        }
        queue_insert_front(s, frames, n);
        free(frames);
        s->replay_cursor = r->next_seq;
        if (r->finished)
            s->replaying = false;
        mark_pending(s);
        qs_subscriber_flush(s);
    }
    qs_replay_clear(r);
    free(r);
    qs_conn_unref(c);
}

void qs_subscriber_replay(qs_subscriber *s, const char *last_event_id, char *head, size_t split)
{
    s->replaying = true;
    s->replay_id = qs_xstrdup(last_event_id);
    s->replay_until = s->w->bus_seq;
    s->head = head;
    s->head_split = split;
    replay_pull(s, true);
}
