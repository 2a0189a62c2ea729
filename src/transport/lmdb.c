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
 * Room is counted in pages, as LMDB allocates it. Deleting needs pages too (copy-on-write),
 * and pages freed by a commit can be reused only after the next one, so a store filled to
 * its last page could never trim itself again. After every commit the writer measures the
 * pages the next transaction can get (the map's untouched tail and the reusable freelist)
 * and keeps a reserve that publishes never take: enough for two retention transactions.
 * Under a size or max_bytes limit the map is a limit too: the oldest records are trimmed,
 * ahead of time and on demand, so publishes always find room. Without any limit nothing may
 * be trimmed: publishes are refused once only the reserve is left, so that a restart with a
 * limit can trim. docs/store.md tells the whole story.
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

/* Room, in pages (see "room in the map" below). */
#define RESERVE_SLACK 8       /* added to the reserve for what the estimates cannot see */
#define HEADROOM_MIN 32       /* free pages retention keeps beyond the reserve, at least… */
#define HEADROOM_FRACTION 64  /* …or this fraction of the map, when the map limits history */
#define SMALL_RECORD 256      /* bytes: the publish whose refusal makes the store "full" */
#define PAGE_HEADER 16        /* LMDB's page header */
#define NODE_HEADER 8         /* LMDB's node header */
#define MAKE_ROOM_STEPS 10000 /* bound of the steps a publish waits for (never reached) */

typedef struct pub_item {
    qs_update *u;
    qs_publish_cb cb;
    void *arg;
    qs_buf rec; /* the update's record, encoded by the publisher's thread */
} pub_item;

/* What the writer knows of the map, measured after every commit. */
typedef struct store_space {
    bool valid;            /* false when it could not be measured: LMDB alone decides */
    uint64_t psize;        /* bytes in a page */
    uint64_t map_pages;    /* pages in the map */
    uint64_t usable;       /* pages the next write transaction can allocate */
    uint64_t pending;      /* freed by the last commit: reusable after the next one */
    uint64_t largest_free; /* pages listed in the largest freelist record */
    uint64_t snapshot;     /* the last commit's transaction id */
    MDB_stat updates, ids; /* shapes of the trees, for the estimates */
    MDB_stat meta, main, freedb;
} store_space;

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
    uv_cond_t snapshot_cond;  /* signalled when a history pull ends */
    uint64_t reader_snapshot; /* of the history pull under way; 0 = none */
    pub_item *queue;
    size_t qn, qcap;
    qs_replay **replays;
    size_t rn, rcap;
    bool stopping;
    bool threads_started;
    uv_thread_t writer, reader;

    /* Writer state (base.seq and base.last_id too). */
    uint64_t count, bytes;
    store_space space;
    const char *commit_error; /* why the last commit failed, other than for room; NULL once
                                 one succeeds */
    bool retention_failing;   /* said once, until retention runs again */
    bool paging_said;         /* "the map limits history" is said once */

    /* What healthy() answers, under base.mu; changed (and logged) by the writer only. */
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

/* The documented default location: mercure.db in the hub's data directory. */
static char *default_path(void)
{
    char *dir = qs_data_dir();
    char *path = qs_xasprintf("%s/mercure.db", dir);
    free(dir);
    return path;
}

/* ------------------------------------------------------------ room in the map */

/*
 * LMDB never writes a page in place: a transaction copies every page it changes, deleting
 * included, and the old copies join the freelist when it commits. A page on the freelist is
 * reused only once no snapshot needs it, and the previous snapshot stays intact until the
 * next commit, so the pages a commit frees are reusable only after one more commit. A
 * transaction fails with MDB_MAP_FULL, changing nothing, when the freelist and the map's
 * untouched tail cannot give it the pages it needs.
 *
 * The writer therefore measures, after every commit, how many pages the next transaction
 * can get, and estimates from the shapes of the trees how many a transaction may need at
 * most. The estimates are upper bounds: wrong in the safe direction, by a few pages.
 */

/* Measures t->space (the writer's thread, or create before it starts). */
static int measure_space(lmdb_transport *t)
{
    store_space *s = &t->space;
    s->valid = false;
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    MDB_envinfo info;
    MDB_stat env_stat;
    mdb_env_info(t->env, &info);
    mdb_env_stat(t->env, &env_stat);
    s->psize = env_stat.ms_psize;
    s->map_pages = info.me_mapsize / s->psize;
    /* LMDB allocates below the map's last page only. */
    uint64_t next = (uint64_t)info.me_last_pgno + 1;
    uint64_t tail = s->map_pages > next + 1 ? s->map_pages - next - 1 : 0;

    /* The freelist (database 0) maps the id of the transaction that freed pages to their
     * list, whose first word is its length. The next write transaction may reuse the pages
     * freed before this snapshot's transaction, not those it freed itself. */
    uint64_t snapshot = mdb_txn_id(txn);
    s->snapshot = snapshot;
    s->usable = tail;
    s->pending = 0;
    s->largest_free = 0;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, 0, &cur)) == 0) {
        MDB_val k, v;
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            size_t freed_by, n;
            if (k.mv_size != sizeof(freed_by) || v.mv_size < sizeof(n))
                continue;
            memcpy(&freed_by, k.mv_data, sizeof(freed_by));
            memcpy(&n, v.mv_data, sizeof(n));
            if (freed_by < snapshot)
                s->usable += n;
            else
                s->pending += n;
            s->largest_free = QS_MAX(s->largest_free, (uint64_t)n);
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (!rc)
        rc = mdb_stat(txn, t->db_updates, &s->updates);
    if (!rc)
        rc = mdb_stat(txn, t->db_ids, &s->ids);
    if (!rc)
        rc = mdb_stat(txn, t->db_meta, &s->meta);
    if (!rc)
        rc = mdb_stat(txn, 1, &s->main); /* the database of named databases */
    if (!rc)
        rc = mdb_stat(txn, 0, &s->freedb);
    mdb_txn_abort(txn);
    s->valid = rc == 0;
    return rc;
}

/* Pages a transaction may allocate in one tree when it changes entries in `touched` of its
 * leaves and adds `grown` new leaves: the path from the root to each changed leaf is copied
 * once (copy-on-write), each copy may split, or take in a neighbour when it falls under a
 * quarter full (copying the neighbour), and a split root adds one. */
static uint64_t tree_write_pages(const MDB_stat *st, uint64_t touched, uint64_t grown)
{
    uint64_t depth = QS_MAX(st->ms_depth, 1u);
    touched = QS_MIN(QS_MAX(touched, 1), QS_MAX((uint64_t)st->ms_leaf_pages, 1));
    uint64_t branches = QS_MIN(touched * (depth - 1), (uint64_t)st->ms_branch_pages);
    return 2 * (touched + branches) + 1 + 2 * grown;
}

/* A rewrite of fixed-size values (the counters, the records of the named databases) copies
 * its path and nothing more. */
static uint64_t tree_rewrite_pages(const MDB_stat *st)
{
    return QS_MAX(st->ms_depth, 1u);
}

/* Overflow pages a value of `len` bytes takes: none when it shares a leaf (LMDB's limit is
 * about half a page; this one is a little lower, to be safe). */
static uint64_t overflow_pages(const store_space *s, uint64_t len)
{
    if (NODE_HEADER + 8 + len + 2 <= (s->psize - PAGE_HEADER) / 2 - 16)
        return 0;
    return (PAGE_HEADER + len) / s->psize + 1;
}

/* Pages the commit of a transaction that frees `freed` pages may add to save the freelist:
 * the changes to its tree, the list of what it frees, and what is left of a freelist record
 * it took pages from, written back. */
static uint64_t freelist_pages(const store_space *s, uint64_t freed)
{
    return tree_write_pages(&s->freedb, 2, 0) + overflow_pages(s, 8 * (freed + 1)) +
           overflow_pages(s, 8 * (s->largest_free + 1));
}

/* Pages committing n records may allocate, given their footprint in the updates tree: the
 * bytes they add to leaves, and their overflow pages. */
static uint64_t publish_pages_for(const store_space *s, uint64_t leaf_bytes, uint64_t overflow,
                                  uint64_t n)
{
    uint64_t room = s->psize - PAGE_HEADER;
    /* Appended at the right end; each node is at most half a page, so every new leaf is at
     * least half used. */
    uint64_t pages = overflow + tree_write_pages(&s->updates, 1, 2 * leaf_bytes / room);
    /* Ids are hashed: each lands in any leaf of the ids tree (a node of about 34 bytes, more
     * when a duplicated id nests its positions). */
    pages += tree_write_pages(&s->ids, n, 2 * 48 * n / room);
    pages += tree_rewrite_pages(&s->meta) + tree_rewrite_pages(&s->main);
    return pages + freelist_pages(s, pages);
}

static void record_footprint(const store_space *s, uint64_t len, uint64_t *leaf_bytes,
                             uint64_t *overflow)
{
    uint64_t pages = overflow_pages(s, len);
    *overflow += pages;
    *leaf_bytes += NODE_HEADER + 8 + (pages ? 8 : len) + 2;
}

static uint64_t publish_pages(const store_space *s, const pub_item *items, size_t n)
{
    uint64_t leaf_bytes = 0, overflow = 0;
    for (size_t i = 0; i < n; i++)
        record_footprint(s, items[i].rec.len, &leaf_bytes, &overflow);
    return publish_pages_for(s, leaf_bytes, overflow, n);
}

static uint64_t small_publish_pages(const store_space *s)
{
    uint64_t leaf_bytes = 0, overflow = 0;
    record_footprint(s, SMALL_RECORD, &leaf_bytes, &overflow);
    return publish_pages_for(s, leaf_bytes, overflow, 1);
}

/* Pages a retention transaction deleting the k oldest records may allocate. */
static uint64_t trim_pages(const store_space *s, uint64_t k)
{
    /* They are at the left end of the updates tree, in leaves at least a quarter full. */
    uint64_t leaves = QS_MAX((uint64_t)s->updates.ms_leaf_pages, 1);
    uint64_t per_leaf = QS_MAX(s->updates.ms_entries / leaves / 4, 1);
    uint64_t pages = tree_write_pages(&s->updates, k / per_leaf + 1, 0);
    /* Their ids are anywhere in the ids tree. */
    pages += tree_write_pages(&s->ids, k, 0);
    pages += tree_rewrite_pages(&s->meta) + tree_rewrite_pages(&s->main);
    /* It frees what it copied, and the records' pages. */
    uint64_t held = (uint64_t)s->updates.ms_leaf_pages + s->updates.ms_overflow_pages;
    uint64_t records = held * k / QS_MAX(s->updates.ms_entries, 1) + 1;
    return pages + freelist_pages(s, pages + records);
}

/* Pages a commit that only rewrites a counter may allocate (see nudge()). */
static uint64_t nudge_pages(const store_space *s)
{
    uint64_t pages = tree_rewrite_pages(&s->meta) + tree_rewrite_pages(&s->main);
    return pages + freelist_pages(s, pages);
}

/* The pages publishes leave alone: two retention transactions, since the second one
 * cannot use what the first one frees. After them, trimming pays for itself: a retention
 * transaction frees the pages it copied, and the records' pages besides. */
static uint64_t reserve_pages(const store_space *s)
{
    return 2 * trim_pages(s, 1) + RESERVE_SLACK;
}

/* Free pages retention keeps beyond the reserve when the map, not size or max_bytes, is
 * what limits history, so that publishes seldom wait for a trim. */
static uint64_t headroom_pages(const store_space *s)
{
    return QS_MAX((uint64_t)HEADROOM_MIN, s->map_pages / HEADROOM_FRACTION);
}

/* Whether a transaction needing `need` pages can commit and leave the reserve whole. */
static bool room_for(const store_space *s, uint64_t need)
{
    return !s->valid || s->usable >= need + reserve_pages(s);
}

/* Whether a nudge (a commit of nothing) is worth its pages: it makes the pages freed by
 * the last commit reusable, which must be more than it takes. */
static bool nudge_helps(const store_space *s)
{
    uint64_t cost = nudge_pages(s);
    return s->valid && s->pending > cost && s->usable >= cost;
}

/* How many of the oldest records hold about `pages` pages of the two trees. */
static uint64_t records_for_pages(const store_space *s, uint64_t pages)
{
    uint64_t held =
        (uint64_t)s->updates.ms_leaf_pages + s->updates.ms_overflow_pages + s->ids.ms_leaf_pages;
    return pages * s->updates.ms_entries / QS_MAX(held, 1) + 1;
}

/* The most records (up to `want`) one retention transaction may delete with the pages it
 * can get, leaving enough for the next one; 0 when even one record is out of reach. */
static uint64_t trim_cap(const store_space *s, uint64_t want)
{
    want = QS_MIN(want, (uint64_t)TRIM_BATCH);
    if (!s->valid)
        return want;
    uint64_t one = trim_pages(s, 1);
    if (s->usable < one)
        return 0;
    uint64_t budget = s->usable >= 2 * one ? s->usable - one : one;
    uint64_t k = want;
    while (k > 1 && trim_pages(s, k) > budget)
        k /= 2;
    return k;
}

/* Retention may trim to make room: a limit is set (the map then limits history too, see
 * docs/store.md) and there is something to trim. */
static bool may_trim(const lmdb_transport *t)
{
    return (t->max_count || t->max_bytes) && t->count > 0;
}

/* Below the reserve plus the headroom: retention trims ahead of publishes. Pages the last
 * commit freed do not count: the next publish could not use them. */
static bool short_of_pages(const lmdb_transport *t)
{
    const store_space *s = &t->space;
    return s->valid && may_trim(t) && s->usable < reserve_pages(s) + headroom_pages(s);
}

/* Full: a small publish would be refused, and nothing the store may do makes room. */
static bool store_full(const lmdb_transport *t)
{
    const store_space *s = &t->space;
    if (!s->valid)
        return false;
    uint64_t want = small_publish_pages(s) + reserve_pages(s);
    if (s->usable >= want)
        return false;
    if (nudge_helps(s) && s->usable + s->pending - nudge_pages(s) >= want)
        return false;
    return !(may_trim(t) && (s->usable >= trim_pages(s, 1) || nudge_helps(s)));
}

static const char *full_reason(const lmdb_transport *t)
{
    if (t->max_count || t->max_bytes)
        return "the store is full (map_size reached, and retention cannot free pages)";
    return "the store is full (map_size reached; without a size or max_bytes limit, nothing "
           "may be trimmed)";
}

#define TOO_LARGE "the update is too large for the store (map_size)"

/* Whether a record needing `need` pages could not fit even in an empty store. */
static bool too_large(const store_space *s, uint64_t need)
{
    /* The meta pages, LMDB's unusable last page, and the roots of the five trees. */
    return s->valid && need + reserve_pages(s) + 8 > s->map_pages;
}

/* Tells healthy() what the writer knows, and logs once per change of state. */
static void update_health(lmdb_transport *t, int rc)
{
    const char *reason = t->commit_error;
    if (!reason && store_full(t))
        reason = full_reason(t);
    uv_mutex_lock(&t->base.mu);
    if (!reason && !t->healthy)
        qs_info("store %s: writable again", t->path);
    else if (reason && reason != t->unhealthy_reason && rc)
        qs_error("store %s: %s (%s)", t->path, reason, mdb_strerror(rc));
    else if (reason && reason != t->unhealthy_reason)
        qs_error("store %s: %s", t->path, reason);
    t->healthy = reason == NULL;
    t->unhealthy_reason = reason;
    uv_mutex_unlock(&t->base.mu);
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
    uv_cond_init(&t->snapshot_cond);

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
    /* A store that is full says so from the start. */
    measure_space(t);
    update_health(t, 0);
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

/* Waits, a while at most, for a history pull whose snapshot is older than the last commit:
 * until it ends, LMDB cannot reuse the pages freed since, which measure_space() counts as
 * usable. True when there was one (the transaction that failed for want of pages may be
 * tried again). */
static bool wait_for_old_snapshot(lmdb_transport *t)
{
    bool found = false;
    uint64_t deadline = uv_hrtime() + 2000000000ull;
    uv_mutex_lock(&t->base.mu);
    while (t->reader_snapshot && t->reader_snapshot < t->space.snapshot && uv_hrtime() < deadline) {
        found = true;
        uv_cond_timedwait(&t->snapshot_cond, &t->base.mu, 100000000ull);
    }
    uv_mutex_unlock(&t->base.mu);
    return found;
}

/* One retention transaction. The counters are restored if it fails. */
static int trim_once(lmdb_transport *t, uint64_t limit)
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
        return rc;
    }
    measure_space(t);
    return 0;
}

static int trim_step(lmdb_transport *t, uint64_t limit)
{
    int rc = trim_once(t, limit);
    if (rc == MDB_MAP_FULL && wait_for_old_snapshot(t))
        rc = trim_once(t, limit);
    return rc;
}

/* A commit that rewrites a counter and nothing else: its only use is to make the pages the
 * last commit freed reusable by the next transaction. */
static int nudge_once(lmdb_transport *t)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(t->env, NULL, 0, &txn);
    if (rc)
        return rc;
    if ((rc = meta_put(t, txn, "seq", t->base.seq)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return rc;
    measure_space(t);
    return 0;
}

static int nudge(lmdb_transport *t)
{
    int rc = nudge_once(t);
    if (rc == MDB_MAP_FULL && wait_for_old_snapshot(t))
        rc = nudge_once(t);
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

/* Retention failing is a state: said when it starts, and when it ends. */
static void retention_outcome(lmdb_transport *t, int rc, const char *why)
{
    if (rc && !t->retention_failing)
        qs_error("store %s: retention failed: %s", t->path, why ? why : mdb_strerror(rc));
    else if (!rc && t->retention_failing)
        qs_info("store %s: retention runs again", t->path);
    t->retention_failing = rc != 0;
}

/* Said once: the map, not size or max_bytes, is what limits history. */
static void say_paging(lmdb_transport *t)
{
    if (t->paging_said)
        return;
    t->paging_said = true;
    qs_warn("store %s: map_size, not size or max_bytes, limits the history: the oldest "
            "updates are trimmed to keep about %" PRIu64 " KiB free (raise map_size or lower "
            "max_bytes to silence this)",
            t->path,
            (reserve_pages(&t->space) + headroom_pages(&t->space)) * t->space.psize / 1024);
}

/* One step towards room for a transaction needing `need` pages, the reserve left whole: a
 * nudge when the pages the last commit freed are enough, else (when a limit allows it) a
 * retention transaction sized by what it may allocate, or a nudge when even that is out of
 * reach. False when nothing can help. */
static bool make_room(lmdb_transport *t, uint64_t need)
{
    const store_space *s = &t->space;
    if (!s->valid)
        return false;
    uint64_t want = need + reserve_pages(s);
    if (nudge_helps(s) && s->usable + s->pending - nudge_pages(s) >= want)
        return nudge(t) == 0;
    if (may_trim(t)) {
        /* Towards the headroom, as retention goes, and the limits: one record at a time
         * would take a commit or two for each page. */
        uint64_t target = want + headroom_pages(s), have = s->usable + s->pending;
        uint64_t k = trim_amount(t);
        if (have < target)
            k = QS_MAX(k, records_for_pages(s, target - have));
        k = trim_cap(s, QS_MAX(k, 1));
        if (k) {
            say_paging(t);
            int rc = trim_step(t, k);
            retention_outcome(t, rc, NULL);
            return rc == 0;
        }
        return nudge_helps(s) && nudge(t) == 0;
    }
    return false;
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
    measure_space(t);
    return 0;
}

static const char *commit_error(int rc)
{
    switch (rc) {
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

/* Commits a group of publishes, then delivers and completes them in order. A group is
 * committed only when it leaves the reserve whole; under a limit, the oldest history makes
 * room first. What still does not fit fails with 503. */
static void write_group(lmdb_transport *t, pub_item *items, size_t n)
{
    const char *refusal = NULL;
    int rc = 0;
    for (int step = 0;; step++) {
        uint64_t need = publish_pages(&t->space, items, n);
        if (room_for(&t->space, need)) {
            rc = commit_batch(t, items, n);
            if (rc != MDB_MAP_FULL)
                break; /* committed, or failed for another reason */
            rc = 0;
            if (wait_for_old_snapshot(t))
                continue;
            /* It needed more than estimated: make room as if it had not fitted. */
        }
        if (too_large(&t->space, need)) {
            /* Nothing is trimmed for what cannot fit; a group is tried one by one. */
            refusal = TOO_LARGE;
            break;
        }
        /* Without a limit, a group that does not fit is tried one by one (below). */
        if ((n > 1 && !may_trim(t)) || step == MAKE_ROOM_STEPS || !make_room(t, need)) {
            refusal = full_reason(t);
            break;
        }
    }
    if ((rc || refusal) && n > 1) {
        /* Isolate what cannot be written: commit the rest one by one. */
        for (size_t i = 0; i < n; i++)
            write_group(t, items + i, 1);
        return;
    }
    if (refusal) {
        update_health(t, 0);
        complete(&items[0], -EAGAIN, refusal);
        return;
    }
    if (rc) {
        t->commit_error = commit_error(rc);
        update_health(t, rc);
        complete(&items[0], -EAGAIN, t->commit_error);
        return;
    }
    t->commit_error = NULL;
    update_health(t, 0);
    for (size_t i = 0; i < n; i++) {
        t->host.deliver(t->host.ctx, items[i].u);
        complete(&items[i], 0, NULL);
    }
}

/* Trims ahead of publishes: for the count and byte limits, and for pages when the map is
 * what limits history. */
static bool retention_due(const lmdb_transport *t)
{
    return over_limits(t) || short_of_pages(t);
}

/* One retention transaction, sized by what it may allocate; or a nudge, when the pages the
 * last one freed are enough. */
static void retention_step(lmdb_transport *t)
{
    const store_space *s = &t->space;
    uint64_t k = trim_amount(t);
    if (short_of_pages(t)) {
        uint64_t target = reserve_pages(s) + 2 * headroom_pages(s), have = s->usable + s->pending;
        if (have < target && records_for_pages(s, target - have) > k) {
            say_paging(t);
            k = records_for_pages(s, target - have);
        } else if (!k && !nudge_helps(s)) {
            k = 1;
        }
    }
    k = trim_cap(s, k);
    int rc;
    if (k)
        rc = trim_step(t, k);
    else if (nudge_helps(s))
        rc = nudge(t);
    else
        rc = MDB_MAP_FULL;
    retention_outcome(t, rc,
                      k || rc != MDB_MAP_FULL ? NULL : "no free pages left (raise map_size)");
    update_health(t, 0);
    if (rc)
        uv_sleep(100);
}

static void writer_main(void *arg)
{
    lmdb_transport *t = arg;
    pub_item *batch = NULL;
    size_t cap = 0;
    uv_mutex_lock(&t->base.mu);
    for (;;) {
        while (!t->qn && !t->stopping && !retention_due(t))
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
        retention_step(t);
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

static void serve_replay(lmdb_transport *t, MDB_txn *txn, qs_replay *r)
{
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
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
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
    r->status = 0;
}

/* Serves a pull in a read-only transaction. While it lasts, LMDB cannot reuse the pages
 * freed after its snapshot, so the snapshot is published: the writer, short of pages, waits
 * for the pull to end (see wait_for_old_snapshot). */
static void pull_history(lmdb_transport *t, qs_replay *r)
{
    MDB_txn *txn;
    if (mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn) != 0) {
        r->status = -1;
        snprintf(r->reason, sizeof(r->reason), "cannot read the store");
        return;
    }
    uv_mutex_lock(&t->base.mu);
    t->reader_snapshot = mdb_txn_id(txn);
    uv_mutex_unlock(&t->base.mu);
    serve_replay(t, txn, r);
    mdb_txn_abort(txn);
    uv_mutex_lock(&t->base.mu);
    t->reader_snapshot = 0;
    uv_cond_broadcast(&t->snapshot_cond);
    uv_mutex_unlock(&t->base.mu);
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
        pull_history(t, r);
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
    uv_cond_destroy(&t->snapshot_cond);
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
