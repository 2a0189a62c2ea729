/* SPDX-License-Identifier: MIT
 * lmdb.c - the embedded, durable, single-node store (the default transport).
 *
 * Layout of the LMDB file (one file, MDB_NOSUBDIR, plus its "-lock" file):
 *   <bucket>.updates  key: seq (8 bytes, big-endian)  value: record (record.h)
 *   <bucket>.ids      key: SHA-256(id)[0..16]          values: seqs (DUPSORT, ascending)
 *   <bucket>.meta     "seq", "count", "bytes" (8 bytes each)
 *
 * One writer thread owns every write transaction. Publishes queue up while it commits, and
 * the next transaction takes all of them: concurrent publishes share one fsync (group
 * commit). After the commit the writer hands each update to the bus, in commit order, and
 * only then completes its publish. Retention (a count and a byte budget) trims the oldest
 * records in small transactions between group commits, so it never stalls publishes for
 * long. A reader thread serves history pulls with read-only transactions, which LMDB runs
 * without blocking the writer.
 *
 * Last-Event-ID lookups go through the ids index (an O(log n) B-tree lookup, any depth);
 * ids are hashed because LMDB keys are limited to 511 bytes, and every candidate record's
 * id is compared, so hash collisions cannot return a wrong position. A duplicated custom id
 * resolves to its earliest occurrence still stored.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "record.h"
#include "transport.h"

#define TRIM_BATCH 2048           /* records deleted per retention transaction */
#define DEFAULT_MAX_COUNT 1000000 /* `size` */
#define DEFAULT_MAX_BYTES (512ull << 20)
#define DEFAULT_MAP_SIZE (2ull << 30)

typedef struct pub_item {
    qs_update *u;
    qs_publish_cb cb;
    void *arg;
    qs_buf rec; /* the update's record, encoded by the publisher's thread */
} pub_item;

typedef struct lmdb_transport {
    qs_transport base;
    qs_transport_host host;
    char *path;
    char *bucket;
    uint64_t max_count; /* 0 = no count limit */
    uint64_t max_bytes; /* 0 = no byte limit */
    uint64_t map_size;
    MDB_env *env;
    MDB_dbi db_updates, db_ids, db_meta;

    uv_cond_t writer_cond;
    uv_cond_t reader_cond;
    pub_item *queue;
    size_t qn, qcap;
    qs_replay **replays;
    size_t rn, rcap;
    bool stopping;
    bool threads_started;
    uv_thread_t writer, reader;

    /* Writer state (base.seq and base.last_id too). */
    uint64_t count, bytes;
    bool healthy;
    const char *unhealthy_reason;
} lmdb_transport;

/* ------------------------------------------------------------ helpers */

static void put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const void *p)
{
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void id_hash(const char *id, size_t len, unsigned char out[16])
{
    unsigned char full[32];
    unsigned int n = 0;
    EVP_Digest(id, len, full, &n, EVP_sha256(), NULL);
    memcpy(out, full, 16);
}

static int meta_put(lmdb_transport *t, MDB_txn *txn, const char *name, uint64_t v)
{
    unsigned char b[8];
    put_be64(b, v);
    MDB_val k = {strlen(name), (void *)name}, d = {8, b};
    return mdb_put(txn, t->db_meta, &k, &d, 0);
}

static uint64_t meta_get(lmdb_transport *t, MDB_txn *txn, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    if (mdb_get(txn, t->db_meta, &k, &d) != 0 || d.mv_size != 8)
        return 0;
    return get_be64(d.mv_data);
}

/* Creates the directories leading to path (like mkdir -p on its dirname). */
static int make_parent_dirs(const char *path)
{
    char *copy = qs_xstrdup(path);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
            int e = errno;
            free(copy);
            return -e;
        }
        *p = '/';
    }
    free(copy);
    return 0;
}

/* The documented default location: $XDG_DATA_HOME/quicksilver/mercure.db, else
 * $HOME/.local/share/quicksilver/mercure.db, else ./mercure.db. */
static char *default_path(void)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg)
        return qs_xasprintf("%s/quicksilver/mercure.db", xdg);
    const char *home = getenv("HOME");
    if (home && *home)
        return qs_xasprintf("%s/.local/share/quicksilver/mercure.db", home);
    return qs_xstrdup("mercure.db");
}

/* ------------------------------------------------------------ create */

static void lmdb_destroy(qs_transport *base);

static int open_env(lmdb_transport *t, char **err)
{
    int rc = make_parent_dirs(t->path);
    if (rc < 0) {
        *err = qs_xasprintf("transport lmdb: cannot create the directory of \"%s\": %s", t->path,
                            strerror(-rc));
        return -1;
    }
    if ((rc = mdb_env_create(&t->env)) != 0) {
        *err = qs_xasprintf("transport lmdb: %s", mdb_strerror(rc));
        return -1;
    }
    mdb_env_set_maxdbs(t->env, 4);
    mdb_env_set_mapsize(t->env, (size_t)t->map_size);
    rc = mdb_env_open(t->env, t->path, MDB_NOSUBDIR | MDB_NOTLS, 0600);
    if (rc != 0) {
        const char *hint = "";
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
            hint = " (not an LMDB store: a BoltDB file of the reference hub cannot be read; "
                   "move it away or set another path)";
        else if (rc == MDB_CORRUPTED || rc == MDB_PANIC)
            hint = " (the store is corrupt: restore it from a backup or move it away)";
        *err = qs_xasprintf("transport lmdb: cannot open the store \"%s\": %s%s", t->path,
                            mdb_strerror(rc), hint);
        return -1;
    }
    /* LMDB lets several processes share a store; two hubs on one store would each deliver
     * only their own commits, so the store is exclusive, as BoltDB's file lock makes it. */
    int fd = -1;
    if (mdb_env_get_fd(t->env, &fd) == 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
        *err = qs_xasprintf("transport lmdb: the store \"%s\" is locked by another process "
                            "(another hub using the same path?)",
                            t->path);
        return -1;
    }

    MDB_txn *txn;
    if ((rc = mdb_txn_begin(t->env, NULL, 0, &txn)) != 0) {
        *err = qs_xasprintf("transport lmdb: cannot use the store \"%s\": %s", t->path,
                            mdb_strerror(rc));
        return -1;
    }
    char name[256];
    snprintf(name, sizeof(name), "%s.updates", t->bucket);
    rc = mdb_dbi_open(txn, name, MDB_CREATE, &t->db_updates);
    if (!rc) {
        snprintf(name, sizeof(name), "%s.ids", t->bucket);
        rc = mdb_dbi_open(txn, name, MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &t->db_ids);
    }
    if (!rc) {
        snprintf(name, sizeof(name), "%s.meta", t->bucket);
        rc = mdb_dbi_open(txn, name, MDB_CREATE, &t->db_meta);
    }
    if (rc) {
        mdb_txn_abort(txn);
        *err = qs_xasprintf("transport lmdb: cannot open the databases of \"%s\": %s", t->path,
                            mdb_strerror(rc));
        return -1;
    }
    t->base.seq = meta_get(t, txn, "seq");
    t->count = meta_get(t, txn, "count");
    t->bytes = meta_get(t, txn, "bytes");

    /* The last record gives the last event id, and proves the data is readable. */
    MDB_cursor *cur;
    MDB_val k, v;
    mdb_cursor_open(txn, t->db_updates, &cur);
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0) {
        qs_slice id;
        if (k.mv_size != 8 || !qs_record_id(v.mv_data, v.mv_size, &id)) {
            mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            *err = qs_xasprintf("transport lmdb: the store \"%s\" is corrupt (unreadable last "
                                "record)",
                                t->path);
            return -1;
        }
        t->base.last_id = qs_xstrndup(id.p, id.n);
        if (get_be64(k.mv_data) > t->base.seq)
            t->base.seq = get_be64(k.mv_data);
    } else if (rc != MDB_NOTFOUND) {
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        *err = qs_xasprintf("transport lmdb: cannot read \"%s\": %s", t->path, mdb_strerror(rc));
        return -1;
    }
    mdb_cursor_close(cur);
    if ((rc = mdb_txn_commit(txn)) != 0) {
        *err = qs_xasprintf("transport lmdb: cannot use the store \"%s\": %s", t->path,
                            mdb_strerror(rc));
        return -1;
    }
    return 0;
}

static int lmdb_create(const qs_config_transport *cfg, const qs_transport_host *host,
                       qs_transport **out, char **err)
{
    const char *name = cfg->name ? cfg->name : "lmdb";
    qs_topts o;
    if (qs_topts_load(cfg, name, &o, err) < 0)
        return -1;
    lmdb_transport *t = qs_xcalloc(1, sizeof(*t));
    qs_transport_base_init(&t->base, &qs_transport_lmdb_ops);
    t->host = *host;
    t->max_count = DEFAULT_MAX_COUNT;
    t->max_bytes = DEFAULT_MAX_BYTES;
    t->map_size = DEFAULT_MAP_SIZE;
    t->healthy = true;
    uv_cond_init(&t->writer_cond);
    uv_cond_init(&t->reader_cond);

    const char *path = NULL, *bucket = "updates";
    double cleanup_frequency = 0;
    int rc = 0;
    if (o.has_url && *o.url.opaque)
        path = o.url.opaque;
    rc |= qs_topts_string(&o, "path", &path, err);
    if (!rc)
        rc |= qs_topts_string(&o, "bucket_name", &bucket, err);
    if (!rc)
        rc |= qs_topts_u64(&o, "size", &t->max_count, err);
    if (!rc)
        rc |= qs_topts_size(&o, "max_bytes", &t->max_bytes, err);
    if (!rc)
        rc |= qs_topts_size(&o, "map_size", &t->map_size, err);
    /* Accepted for compatibility: retention runs after every commit, not by chance. */
    if (!rc)
        rc |= qs_topts_double(&o, "cleanup_frequency", 0, 1, &cleanup_frequency, err);
    if (!rc)
        rc |= qs_topts_finish(&o, err);
    if (!rc && t->map_size < (1u << 20)) {
        *err = qs_xasprintf("%s:%d: transport %s: map_size: at least 1MiB is needed", o.source,
                            o.line, name);
        rc = -1;
    }
    if (!rc && strlen(bucket) > 200) {
        *err = qs_xasprintf("%s:%d: transport %s: bucket_name: too long", o.source, o.line, name);
        rc = -1;
    }
    if (!rc) {
        t->path = path ? qs_xstrdup(path) : default_path();
        t->bucket = qs_xstrdup(bucket);
    }
    qs_topts_free(&o);
    if (rc || open_env(t, err) < 0) {
        lmdb_destroy(&t->base);
        return -1;
    }
    qs_info("store %s: %" PRIu64 " updates kept (limits: %" PRIu64 " updates, %" PRIu64
            " bytes), last event id %s",
            t->path, t->count, t->max_count, t->max_bytes,
            t->base.last_id ? t->base.last_id : "none");
    *out = &t->base;
    return 0;
}

/* ------------------------------------------------------------ writer */

/* Deletes up to `limit` of the oldest records. */
static int trim_oldest(lmdb_transport *t, MDB_txn *txn, uint64_t limit)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, t->db_updates, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    uint64_t n = 0;
    while (n < limit && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        qs_slice id;
        size_t size = v.mv_size;
        if (qs_record_id(v.mv_data, v.mv_size, &id)) {
            unsigned char h[16];
            id_hash(id.p, id.n, h);
            MDB_val hk = {16, h}, hv = {8, k.mv_data};
            int drc = mdb_del(txn, t->db_ids, &hk, &hv);
            if (drc && drc != MDB_NOTFOUND) {
                rc = drc;
                break;
            }
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        t->count = t->count ? t->count - 1 : 0;
        t->bytes = t->bytes > size ? t->bytes - size : 0;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (!rc)
        rc = meta_put(t, txn, "count", t->count);
    if (!rc)
        rc = meta_put(t, txn, "bytes", t->bytes);
    return rc;
}

static bool over_limits(const lmdb_transport *t)
{
    return (t->max_count && t->count > t->max_count) || (t->max_bytes && t->bytes > t->max_bytes);
}

/* One retention transaction. The counters are restored if it fails. */
static int trim_step(lmdb_transport *t, uint64_t limit)
{
    uint64_t count = t->count, bytes = t->bytes;
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, 0, &txn);
    if (rc)
        return rc;
    if ((rc = trim_oldest(t, txn, limit)) == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc) {
        t->count = count;
        t->bytes = bytes;
    }
    return rc;
}

static uint64_t trim_amount(const lmdb_transport *t)
{
    uint64_t n = 0;
    if (t->max_count && t->count > t->max_count)
        n = t->count - t->max_count;
    if (t->max_bytes && t->bytes > t->max_bytes) {
        /* Estimate from the average record size; the loop comes back if it was short. */
        uint64_t avg = t->count ? t->bytes / t->count + 1 : 1;
        n = QS_MAX(n, (t->bytes - t->max_bytes) / avg + 1);
    }
    return QS_MIN(n, (uint64_t)TRIM_BATCH);
}

/* Writes the batch in one transaction; on success assigns seqs. */
static int commit_batch(lmdb_transport *t, pub_item *items, size_t n)
{
    uint64_t seq = t->base.seq, count = t->count, bytes = t->bytes;
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, 0, &txn);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        qs_update *u = items[i].u;
        unsigned char key[8], h[16];
        put_be64(key, seq + 1);
        MDB_val k = {8, key}, v = {items[i].rec.len, items[i].rec.p};
        rc = mdb_put(txn, t->db_updates, &k, &v, MDB_APPEND);
        if (rc)
            break;
        id_hash(u->id, strlen(u->id), h);
        MDB_val hk = {16, h}, hv = {8, key};
        rc = mdb_put(txn, t->db_ids, &hk, &hv, 0);
        seq++;
        count++;
        bytes += items[i].rec.len;
    }
    if (!rc)
        rc = meta_put(t, txn, "seq", seq);
    if (!rc)
        rc = meta_put(t, txn, "count", count);
    if (!rc)
        rc = meta_put(t, txn, "bytes", bytes);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        items[i].u->seq = t->base.seq + 1 + i;
    t->count = count;
    t->bytes = bytes;
    uv_mutex_lock(&t->base.mu);
    qs_transport_set_position(&t->base, seq, items[n - 1].u->id);
    uv_mutex_unlock(&t->base.mu);
    return 0;
}

static void set_health(lmdb_transport *t, bool ok, const char *reason)
{
    uv_mutex_lock(&t->base.mu);
    if (t->healthy != ok)
        qs_log(ok ? QS_LOG_INFO : QS_LOG_ERROR, "store %s: %s", t->path,
               ok ? "writable again" : reason);
    t->healthy = ok;
    t->unhealthy_reason = reason;
    uv_mutex_unlock(&t->base.mu);
}

static const char *commit_error(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL:
        return "the store is full (map_size reached)";
    case ENOSPC:
        return "the store's disk is full";
    case EFBIG:
        return "the store file cannot grow (file size limit)";
    case EIO:
        return "I/O error while writing the store";
    default:
        return "the store cannot be written";
    }
}

static void complete(pub_item *it, int status, const char *reason)
{
    it->cb(it->arg, status, reason);
    qs_update_unref(it->u);
    qs_buf_free(&it->rec);
}

/* Commits a group of publishes, then delivers and completes them in order. When the map is
 * full, the oldest history makes room; what still does not fit fails with 503. */
static void write_group(lmdb_transport *t, pub_item *items, size_t n)
{
    int rc = commit_batch(t, items, n);
    if (rc == MDB_MAP_FULL && t->count) {
        trim_step(t, QS_MAX(t->count / 10, (uint64_t)1));
        rc = commit_batch(t, items, n);
    }
    if (rc && n > 1) {
        /* Isolate what cannot be written: commit the rest one by one. */
        for (size_t i = 0; i < n; i++)
            write_group(t, items + i, 1);
        return;
    }
    if (rc) {
        const char *reason = commit_error(rc);
        qs_error("store %s: publish failed: %s (%s)", t->path, mdb_strerror(rc), reason);
        set_health(t, false, reason);
        complete(&items[0], -EAGAIN, reason);
        return;
    }
    if (!t->healthy)
        set_health(t, true, NULL);
    for (size_t i = 0; i < n; i++) {
        t->host.deliver(t->host.ctx, items[i].u);
        complete(&items[i], 0, NULL);
    }
}

static void writer_main(void *arg)
{
    lmdb_transport *t = arg;
    pub_item *batch = NULL;
    size_t cap = 0;
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        while (!t->qn && !t->stopping && !over_limits(t))
            uv_cond_wait(&t->writer_cond, &t->base.mu);
        if (!t->qn && t->stopping)
            break;
        if (t->qn) {
            /* Take every queued publish: they share this transaction's fsync. */
            pub_item *q = t->queue;
            size_t n = t->qn, qcap = t->qcap;
            t->queue = batch;
            t->qcap = cap;
            t->qn = 0;
            batch = q;
            cap = qcap;
            uv_mutex_unlock(&t->base.mu);
            write_group(t, batch, n);
            uv_mutex_lock(&t->base.mu);
            continue;
        }
        /* No publish waiting: one retention step, then look at the queue again. */
        uv_mutex_unlock(&t->base.mu);
        int rc = trim_step(t, trim_amount(t));
        if (rc) {
            qs_error("store %s: retention failed: %s", t->path, mdb_strerror(rc));
            uv_sleep(100);
        }
        uv_mutex_lock(&t->base.mu);
    }
    uv_mutex_unlock(&t->base.mu);
    free(batch);
}

static void lmdb_publish(qs_transport *base, qs_update *u, qs_publish_cb cb, void *arg)
{
    lmdb_transport *t = (lmdb_transport *)base;
    /* Encoded here, on the publisher's thread: the writer needs its size before it
     * commits, and has enough to do. */
    pub_item item = {qs_update_ref(u), cb, arg, QS_BUF_INIT};
    qs_record_encode(u, &item.rec);
    uv_mutex_lock(&t->base.mu);
    if (t->stopping) {
        uv_mutex_unlock(&t->base.mu);
        complete(&item, -EAGAIN, "the hub is shutting down");
        return;
    }
    if (t->qn == t->qcap) {
        t->qcap = t->qcap ? t->qcap * 2 : 64;
        t->queue = qs_xrealloc(t->queue, t->qcap * sizeof(*t->queue));
    }
    t->queue[t->qn++] = item;
    uv_cond_signal(&t->writer_cond);
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ reader */

/* Finds the seq of the earliest stored update whose id is `id`; 0 when none. */
static uint64_t find_id(lmdb_transport *t, MDB_txn *txn, const char *id)
{
    unsigned char h[16];
    id_hash(id, strlen(id), h);
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, t->db_ids, &cur))
        return 0;
    MDB_val k = {16, h}, v;
    uint64_t found = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    while (rc == 0 && !found) {
        if (v.mv_size == 8) {
            MDB_val rk = {8, v.mv_data}, rv;
            qs_slice rid;
            if (mdb_get(txn, t->db_updates, &rk, &rv) == 0 &&
                qs_record_id(rv.mv_data, rv.mv_size, &rid) && rid.n == strlen(id) &&
                memcmp(rid.p, id, rid.n) == 0)
                found = get_be64(v.mv_data);
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    return found;
}

static void serve_replay(lmdb_transport *t, qs_replay *r)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        r->status = -1;
        snprintf(r->reason, sizeof(r->reason), "cannot read the store");
        return;
    }
    uint64_t after = r->after_seq;
    if (!r->continuation) {
        r->id_found = true;
        after = 0;
        if (strcmp(r->after_id, "earliest") != 0) {
            after = find_id(t, txn, r->after_id);
            r->id_found = after != 0;
        }
    }
    if (!r->continuation && !r->id_found) {
        /* An unknown id (never stored, or trimmed away) replays nothing and the cursor is
         * "earliest", as the reference does: the client sees that its id was not found,
         * and one stale cursor cannot make the hub resend its whole history. */
        r->finished = true;
        r->next_seq = 0;
        mdb_txn_abort(txn);
        r->status = 0;
        return;
    }
    MDB_cursor *cur;
    mdb_cursor_open(txn, t->db_updates, &cur);
    unsigned char key[8];
    put_be64(key, after + 1);
    MDB_val k = {8, key}, v;
    size_t cap = 0, bytes = 0;
    r->next_seq = after;
    r->finished = false;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        uint64_t seq = get_be64(k.mv_data);
        if (seq > r->until_seq)
            break;
        if (r->n_updates >= r->max_events || bytes >= r->max_bytes)
            goto out; /* more to come */
        qs_update *u = qs_record_decode(v.mv_data, v.mv_size);
        if (u) {
            u->seq = seq;
            qs_update_finalize(u);
            if (r->n_updates == cap) {
                cap = cap ? cap * 2 : 64;
                r->updates = qs_xrealloc(r->updates, cap * sizeof(*r->updates));
            }
            r->updates[r->n_updates++] = u;
            bytes += u->frame->len;
        } else {
            qs_warn("store %s: skipping unreadable record %" PRIu64, t->path, seq);
        }
        r->next_seq = seq;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    r->finished = true;
out:
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    r->status = 0;
}

static void reader_main(void *arg)
{
    lmdb_transport *t = arg;
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        while (!t->rn && !t->stopping)
            uv_cond_wait(&t->reader_cond, &t->base.mu);
        if (!t->rn)
            break;
        qs_replay *r = t->replays[0];
        memmove(t->replays, t->replays + 1, (t->rn - 1) * sizeof(*t->replays));
        t->rn--;
        uv_mutex_unlock(&t->base.mu);
        serve_replay(t, r);
        r->done(r);
        uv_mutex_lock(&t->base.mu);
    }
    uv_mutex_unlock(&t->base.mu);
}

static void lmdb_replay(qs_transport *base, qs_replay *r)
{
    lmdb_transport *t = (lmdb_transport *)base;
    uv_mutex_lock(&t->base.mu);
    if (t->rn == t->rcap) {
        t->rcap = t->rcap ? t->rcap * 2 : 16;
        t->replays = qs_xrealloc(t->replays, t->rcap * sizeof(*t->replays));
    }
    t->replays[t->rn++] = r;
    uv_cond_signal(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
}

/* ------------------------------------------------------------ the rest */

static int lmdb_start(qs_transport *base, char **err)
{
    lmdb_transport *t = (lmdb_transport *)base;
    if (uv_thread_create(&t->writer, writer_main, t) ||
        uv_thread_create(&t->reader, reader_main, t)) {
        *err = qs_xstrdup("transport lmdb: cannot start its threads");
        return -1;
    }
    t->threads_started = true;
    return 0;
}

static bool lmdb_healthy(qs_transport *base, char reason[QS_REASON_MAX])
{
    lmdb_transport *t = (lmdb_transport *)base;
    uv_mutex_lock(&t->base.mu);
    bool ok = t->healthy;
    if (!ok)
        snprintf(reason, QS_REASON_MAX, "%s", t->unhealthy_reason);
    uv_mutex_unlock(&t->base.mu);
    return ok;
}

static void lmdb_stop(qs_transport *base)
{
    lmdb_transport *t = (lmdb_transport *)base;
    uv_mutex_lock(&t->base.mu);
    t->stopping = true;
    uv_cond_broadcast(&t->writer_cond);
    uv_cond_broadcast(&t->reader_cond);
    uv_mutex_unlock(&t->base.mu);
    if (t->threads_started) {
        uv_thread_join(&t->writer);
        uv_thread_join(&t->reader);
        t->threads_started = false;
    }
}

static void lmdb_destroy(qs_transport *base)
{
    lmdb_transport *t = (lmdb_transport *)base;
    lmdb_stop(base);
    if (t->env)
        mdb_env_close(t->env);
    qs_transport_base_destroy(&t->base);
    uv_cond_destroy(&t->writer_cond);
    uv_cond_destroy(&t->reader_cond);
    free(t->queue);
    free(t->replays);
    free(t->path);
    free(t->bucket);
    free(t);
}

const qs_transport_ops qs_transport_lmdb_ops = {
    .name = "lmdb",
    .has_history = true,
    .create = lmdb_create,
    .start = lmdb_start,
    .publish = lmdb_publish,
    .replay = lmdb_replay,
    .healthy = lmdb_healthy,
    .stop = lmdb_stop,
    .destroy = lmdb_destroy,
};
