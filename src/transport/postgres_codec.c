/* SPDX-License-Identifier: MIT
 * postgres_codec.c - values in PostgreSQL's binary format (postgres.h): the arrays a group
 * of publishes is sent as, rows read back as updates and presence entries, text made
 * acceptable to a UTF8 database, SQLSTATE classes and one-line messages.
 *
 * The binary format is used both ways: no escaping to get wrong on the way in, no text
 * array syntax to parse on the way out, and integers as they are. A one-dimensional array
 * is: int32 number of dimensions (0 for an empty array, else 1), int32 "has NULLs", uint32
 * element type, then per dimension int32 size and int32 lower bound, then per element an
 * int32 length (-1 = NULL) and its bytes. Integers are big-endian; a timestamptz is an
 * int8 of microseconds since 2000-01-01 UTC.
 */
#include <jansson.h>
#include <stdlib.h>

#include "jwt.h"
#include "record.h"
#include "transport/postgres.h"

/* Seconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define PG_EPOCH_OFFSET_US (INT64_C(946684800) * 1000000)

int64_t qs_pg_timestamp_from_unix_us(int64_t us)
{
    return us - PG_EPOCH_OFFSET_US;
}

int64_t qs_pg_timestamp_to_unix_us(int64_t ts)
{
    return ts + PG_EPOCH_OFFSET_US;
}

/* ------------------------------------------------------------ integers */

void qs_pg_put_i32(qs_buf *b, int32_t v)
{
    uint32_t u = (uint32_t)v;
    unsigned char x[4] = {(unsigned char)(u >> 24), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 8), (unsigned char)u};
    qs_buf_append(b, x, 4);
}

void qs_pg_put_i64(qs_buf *b, int64_t v)
{
    qs_pg_put_i32(b, (int32_t)(uint32_t)((uint64_t)v >> 32));
    qs_pg_put_i32(b, (int32_t)(uint32_t)(uint64_t)v);
}

static uint32_t read_u32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

bool qs_pg_get_i64(qs_pg_value v, int64_t *out)
{
    if (v.len != 8)
        return false;
    *out = (int64_t)((uint64_t)read_u32(v.p) << 32 | read_u32(v.p + 4));
    return true;
}

bool qs_pg_get_bool(qs_pg_value v, bool *out)
{
    if (v.len != 1)
        return false;
    *out = v.p[0] != 0;
    return true;
}

/* Overwrites 4 bytes at b->p + at with v. */
static void patch_i32(qs_buf *b, size_t at, int32_t v)
{
    uint32_t u = (uint32_t)v;
    unsigned char *p = (unsigned char *)b->p + at;
    p[0] = (unsigned char)(u >> 24);
    p[1] = (unsigned char)(u >> 16);
    p[2] = (unsigned char)(u >> 8);
    p[3] = (unsigned char)u;
}

/* ------------------------------------------------------------ text */

bool qs_pg_text_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x01 && c < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = c ? qs_utf8_decode((const unsigned char *)p + i, n - i, &cp) : 0;
        if (!l)
            return false;
        i += l;
    }
    return true;
}

void qs_pg_text_append(qs_buf *b, const char *p, size_t n)
{
    if (qs_pg_text_ok(p, n)) {
        qs_buf_append(b, p, n);
        return;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = p[i] ? qs_utf8_decode((const unsigned char *)p + i, n - i, &cp) : 0;
        if (l) {
            qs_buf_append(b, p + i, l);
            i += l;
        } else {
            qs_buf_append(b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
}

/* ------------------------------------------------------------ arrays, written */

void qs_pg_array_begin(qs_pg_array *a, qs_buf *b, uint32_t elem_oid)
{
    a->b = b;
    a->start = b->len;
    a->n = 0;
    a->nulls = false;
    qs_pg_put_i32(b, 1);                 /* dimensions */
    qs_pg_put_i32(b, 0);                 /* has NULLs: patched */
    qs_pg_put_i32(b, (int32_t)elem_oid); /* element type */
    qs_pg_put_i32(b, 0);                 /* size: patched */
    qs_pg_put_i32(b, 1);                 /* lower bound */
}

void qs_pg_array_null(qs_pg_array *a)
{
    qs_pg_put_i32(a->b, -1);
    a->nulls = true;
    a->n++;
}

void qs_pg_array_text(qs_pg_array *a, const char *p, size_t n)
{
    size_t at = a->b->len;
    qs_pg_put_i32(a->b, 0);
    qs_pg_text_append(a->b, p, n);
    patch_i32(a->b, at, (int32_t)(a->b->len - at - 4));
    a->n++;
}

void qs_pg_array_i64(qs_pg_array *a, int64_t v)
{
    qs_pg_put_i32(a->b, 8);
    qs_pg_put_i64(a->b, v);
    a->n++;
}

void qs_pg_array_i32(qs_pg_array *a, int32_t v)
{
    qs_pg_put_i32(a->b, 4);
    qs_pg_put_i32(a->b, v);
    a->n++;
}

void qs_pg_array_bool(qs_pg_array *a, bool v)
{
    qs_pg_put_i32(a->b, 1);
    qs_buf_append_char(a->b, v ? 1 : 0);
    a->n++;
}

void qs_pg_array_end(qs_pg_array *a)
{
    if (!a->n) {
        /* An empty array has no dimensions: drop the size and the lower bound. */
        patch_i32(a->b, a->start, 0);
        a->b->len = a->start + 12;
        return;
    }
    patch_i32(a->b, a->start + 4, a->nulls ? 1 : 0);
    patch_i32(a->b, a->start + 12, a->n);
}

/* ------------------------------------------------------------ arrays, read */

bool qs_pg_array_open(qs_pg_value v, uint32_t elem_oid, qs_pg_array_reader *r)
{
    if (v.len < 12)
        return false;
    int32_t ndim = (int32_t)read_u32(v.p);
    uint32_t oid = read_u32(v.p + 8);
    if (oid != elem_oid || ndim < 0 || ndim > 1)
        return false;
    r->end = v.p + v.len;
    if (ndim == 0) {
        r->p = v.p + 12;
        r->left = 0;
        return true;
    }
    if (v.len < 20)
        return false;
    int32_t size = (int32_t)read_u32(v.p + 12);
    /* Every element takes 4 bytes at least: a size that cannot fit is a lie (and callers
     * may allocate by it). */
    if (size < 0 || size > (v.len - 20) / 4)
        return false;
    r->p = v.p + 20;
    r->left = size;
    return true;
}

int qs_pg_array_next(qs_pg_array_reader *r, qs_pg_value *e)
{
    if (!r->left)
        return r->p == r->end ? 0 : -1;
    if (r->end - r->p < 4)
        return -1;
    int32_t len = (int32_t)read_u32(r->p);
    r->p += 4;
    if (len < -1 || (len > 0 && r->end - r->p < len))
        return -1;
    e->p = r->p;
    e->len = len;
    if (len > 0)
        r->p += len;
    r->left--;
    return 1;
}

/* ------------------------------------------------------------ parameters */

void qs_pg_params_reset(qs_pg_params *p)
{
    for (int i = 0; i < p->n; i++)
        qs_buf_reset(&p->bufs[i]);
    p->n = 0;
}

qs_buf *qs_pg_params_next(qs_pg_params *p)
{
    if (p->n >= QS_PG_MAX_PARAMS)
        qs_panic("postgres: too many statement parameters");
    qs_buf *b = &p->bufs[p->n++];
    qs_buf_reset(b);
    return b;
}

void qs_pg_params_seal(qs_pg_params *p)
{
    for (int i = 0; i < p->n; i++) {
        if (p->bufs[i].len > INT32_MAX)
            qs_panic("postgres: a statement parameter is over 2 GiB");
        p->values[i] = p->bufs[i].p ? p->bufs[i].p : "";
        p->lengths[i] = (int)p->bufs[i].len;
        p->formats[i] = 1;
    }
}

void qs_pg_params_free(qs_pg_params *p)
{
    for (int i = 0; i < QS_PG_MAX_PARAMS; i++)
        qs_buf_free(&p->bufs[i]);
    memset(p, 0, sizeof(*p));
}

void qs_pg_publish_params(qs_pg_params *p, qs_update *const *updates, size_t n)
{
    qs_pg_params_reset(p);
    qs_pg_put_i64(qs_pg_params_next(p), (int64_t)n);
    qs_pg_array ids, topics, from, to, priv, type, retry, data;
    qs_pg_array_begin(&ids, qs_pg_params_next(p), QS_PG_TEXT);
    qs_pg_array_begin(&topics, qs_pg_params_next(p), QS_PG_TEXT);
    qs_pg_array_begin(&from, qs_pg_params_next(p), QS_PG_INT4);
    qs_pg_array_begin(&to, qs_pg_params_next(p), QS_PG_INT4);
    qs_pg_array_begin(&priv, qs_pg_params_next(p), QS_PG_BOOL);
    qs_pg_array_begin(&type, qs_pg_params_next(p), QS_PG_TEXT);
    qs_pg_array_begin(&retry, qs_pg_params_next(p), QS_PG_INT8);
    qs_pg_array_begin(&data, qs_pg_params_next(p), QS_PG_TEXT);
    for (size_t i = 0; i < n; i++) {
        const qs_update *u = updates[i];
        qs_pg_array_text(&ids, u->id, strlen(u->id));
        qs_pg_array_i32(&from, topics.n + 1);
        for (size_t k = 0; k < u->n_topics; k++)
            qs_pg_array_text(&topics, u->topics[k], u->topic_lens[k]);
        qs_pg_array_i32(&to, topics.n);
        qs_pg_array_bool(&priv, u->is_private);
        if (u->type)
            qs_pg_array_text(&type, u->type, strlen(u->type));
        else
            qs_pg_array_null(&type);
        if (u->retry && u->retry <= (uint64_t)INT64_MAX)
            qs_pg_array_i64(&retry, (int64_t)u->retry);
        else
            qs_pg_array_null(&retry);
        qs_pg_array_text(&data, u->data ? u->data : "", u->data_len);
    }
    qs_pg_array *all[] = {&ids, &topics, &from, &to, &priv, &type, &retry, &data};
    for (size_t i = 0; i < QS_ARRAY_LEN(all); i++)
        qs_pg_array_end(all[i]);
    qs_pg_notify_records(updates, n, qs_pg_params_next(p));
    qs_pg_params_seal(p);
}

/* ------------------------------------------------------------ notifications */

/* A text value usable as an SSE field (id, event type): no NUL, CR or LF. */
static bool field_ok(qs_pg_value v)
{
    for (int i = 0; i < v.len; i++)
        if (v.p[i] == '\0' || v.p[i] == '\r' || v.p[i] == '\n')
            return false;
    return true;
}

/* The update as the table stores it: itself when every text is storable and its retry
 * fits a bigint, else a copy with the text made storable (qs_pg_text_append) and no retry.
 * A reference either way. */
static qs_update *stored_form(qs_update *u)
{
    bool ok = qs_pg_text_ok(u->id, strlen(u->id)) && u->retry <= (uint64_t)INT64_MAX &&
              (!u->type || qs_pg_text_ok(u->type, strlen(u->type))) &&
              (!u->data || qs_pg_text_ok(u->data, u->data_len));
    for (size_t k = 0; ok && k < u->n_topics; k++)
        ok = qs_pg_text_ok(u->topics[k], u->topic_lens[k]);
    if (ok)
        return qs_update_ref(u);
    qs_update *c = qs_update_new();
    qs_buf b = QS_BUF_INIT;
    qs_pg_text_append(&b, u->id, strlen(u->id));
    qs_update_set_id(c, b.p ? b.p : "", b.len);
    for (size_t k = 0; k < u->n_topics; k++) {
        qs_buf_reset(&b);
        qs_pg_text_append(&b, u->topics[k], u->topic_lens[k]);
        qs_update_add_topic(c, b.p ? b.p : "", b.len);
    }
    if (u->type) {
        qs_buf_reset(&b);
        qs_pg_text_append(&b, u->type, strlen(u->type));
        qs_update_set_type(c, b.p, b.len);
    }
    qs_buf_reset(&b);
    qs_pg_text_append(&b, u->data ? u->data : "", u->data_len);
    qs_update_set_data(c, b.p ? b.p : "", b.len);
    qs_buf_free(&b);
    c->is_private = u->is_private;
    c->retry = u->retry <= (uint64_t)INT64_MAX ? u->retry : 0;
    return c;
}

void qs_pg_notify_records(qs_update *const *updates, size_t n, qs_buf *out)
{
    qs_buf raw = QS_BUF_INIT;
    /* base64 takes 4 bytes for 3: stop as soon as the raw bytes cannot fit any more. */
    size_t limit = QS_PG_NOTIFY_RECORDS_MAX / 4 * 3;
    for (size_t i = 0; i < n && raw.len <= limit; i++) {
        qs_update *s = stored_form(updates[i]);
        size_t at = raw.len;
        qs_pg_put_i32(&raw, 0);
        qs_record_encode(s, &raw);
        patch_i32(&raw, at, (int32_t)(raw.len - at - 4));
        qs_update_unref(s);
    }
    if (n && raw.len <= limit) {
        char *text = qs_base64url_encode(raw.p, raw.len);
        qs_buf_append_str(out, text);
        free(text);
    }
    qs_buf_free(&raw);
}

int qs_pg_notify_parse(const char *payload, uint64_t *seq, qs_update ***updates, size_t *n)
{
    *updates = NULL;
    *n = 0;
    uint64_t v = 0;
    const char *p = payload;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p == payload || v == 0 || v > (uint64_t)INT64_MAX)
        return -1;
    *seq = v;
    if (!*p)
        return 0;
    if (*p != ' ' || !p[1])
        return -1;
    unsigned char *raw = NULL;
    size_t len = 0;
    if (qs_base64url_decode(p + 1, strlen(p + 1), &raw, &len) != 0)
        return -1;
    qs_update **v_out = NULL;
    size_t k = 0, cap = 0;
    int rc = 1;
    for (size_t at = 0; at < len;) {
        if (len - at < 4) {
            rc = -1;
            break;
        }
        uint32_t rlen = read_u32((const char *)raw + at);
        at += 4;
        qs_update *u = rlen <= len - at ? qs_record_decode(raw + at, rlen) : NULL;
        at += rlen;
        /* The same checks as a row's: what the bus delivers from a notification is what
         * it would have read from the table. */
        bool ok = u && qs_pg_text_ok(u->id, strlen(u->id)) &&
                  field_ok((qs_pg_value){u->id, (int)strlen(u->id)}) &&
                  (!u->type || field_ok((qs_pg_value){u->type, (int)strlen(u->type)})) &&
                  u->retry <= (uint64_t)INT64_MAX && v + k < (uint64_t)INT64_MAX;
        if (!ok) {
            if (u)
                qs_update_unref(u);
            rc = -1;
            break;
        }
        u->seq = v + k;
        qs_update_finalize(u);
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            v_out = qs_xrealloc(v_out, cap * sizeof(*v_out));
        }
        v_out[k++] = u;
    }
    free(raw);
    if (rc < 0 || !k) {
        for (size_t i = 0; i < k; i++)
            qs_update_unref(v_out[i]);
        free(v_out);
        return -1;
    }
    *updates = v_out;
    *n = k;
    return 1;
}

/* ------------------------------------------------------------ rows */

qs_update *qs_pg_update_from_row(const qs_pg_value cols[QS_PG_UPDATE_COLS], uint64_t *seq)
{
    *seq = 0;
    int64_t s = 0, retry = 0;
    bool priv = false;
    if (!qs_pg_get_i64(cols[QS_PG_COL_SEQ], &s) || s <= 0)
        return NULL;
    *seq = (uint64_t)s;
    qs_pg_value id = cols[QS_PG_COL_ID], type = cols[QS_PG_COL_TYPE], data = cols[QS_PG_COL_DATA];
    if (id.len < 0 || !field_ok(id) || data.len < 0 ||
        !qs_pg_get_bool(cols[QS_PG_COL_PRIVATE], &priv) || (type.len >= 0 && !field_ok(type)))
        return NULL;
    if (cols[QS_PG_COL_RETRY].len >= 0 &&
        (!qs_pg_get_i64(cols[QS_PG_COL_RETRY], &retry) || retry < 0))
        return NULL;
    qs_pg_array_reader r;
    if (!qs_pg_array_open(cols[QS_PG_COL_TOPICS], QS_PG_TEXT, &r) || !r.left)
        return NULL;
    qs_update *u = qs_update_new();
    qs_pg_value t;
    int rc;
    while ((rc = qs_pg_array_next(&r, &t)) == 1 && t.len >= 0)
        qs_update_add_topic(u, t.p, (size_t)t.len);
    if (rc != 0) {
        qs_update_unref(u);
        return NULL;
    }
    qs_update_set_id(u, id.p, (size_t)id.len);
    if (type.len > 0)
        qs_update_set_type(u, type.p, (size_t)type.len);
    qs_update_set_data(u, data.p, (size_t)data.len);
    u->is_private = priv;
    u->retry = (uint64_t)retry;
    u->seq = (uint64_t)s;
    qs_update_finalize(u);
    return u;
}

int qs_pg_presence_from_row(const qs_pg_value cols[QS_PG_PRESENCE_COLS], qs_pg_ranked *out)
{
    memset(out, 0, sizeof(*out));
    qs_pg_value sub = cols[QS_PG_PCOL_SUBSCRIBER], payload = cols[QS_PG_PCOL_PAYLOAD],
                node = cols[QS_PG_PCOL_NODE];
    int64_t ts = 0;
    qs_pg_array_reader r;
    if (sub.len < 0 || node.len < 0 || !qs_pg_get_i64(cols[QS_PG_PCOL_REGISTERED], &ts) ||
        qs_pg_timestamp_to_unix_us(ts) < 0 ||
        !qs_pg_array_open(cols[QS_PG_PCOL_TOPICS], QS_PG_TEXT, &r))
        return -1;
    json_t *json = NULL;
    if (payload.len >= 0) {
        json = json_loadb(payload.p, (size_t)payload.len, JSON_DECODE_ANY, NULL);
        if (!json)
            return -1;
    }
    qs_presence_entry *e = &out->e;
    e->topics = qs_xcalloc((size_t)r.left + 1, sizeof(*e->topics));
    qs_pg_value t;
    int rc;
    while ((rc = qs_pg_array_next(&r, &t)) == 1 && t.len >= 0)
        e->topics[e->n_topics++] = qs_xstrndup(t.p, (size_t)t.len);
    if (rc != 0) {
        json_decref(json);
        qs_presence_entry_clear(e);
        return -1;
    }
    if (json && !json_is_null(json)) {
        e->payload = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!e->payload)
            qs_panic("out of memory");
    }
    json_decref(json);
    e->subscriber = qs_xstrndup(sub.p, (size_t)sub.len);
    e->order = (uint64_t)qs_pg_timestamp_to_unix_us(ts);
    out->node = qs_xstrndup(node.p, (size_t)node.len);
    return 0;
}

static int by_order_node(const void *a, const void *b)
{
    const qs_pg_ranked *x = a, *y = b;
    if (x->e.order != y->e.order)
        return x->e.order < y->e.order ? -1 : 1;
    int c = strcmp(x->node, y->node);
    return c ? c : strcmp(x->e.subscriber, y->e.subscriber);
}

void qs_pg_presence_sort(qs_pg_ranked *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), by_order_node);
}

/* ------------------------------------------------------------ errors */

bool qs_pg_sqlstate_transient(const char *s)
{
    if (!s || strlen(s) != 5)
        return false;
    static const char *const classes[] = {"08", "40", "53", "58"};
    for (size_t i = 0; i < QS_ARRAY_LEN(classes); i++)
        if (strncmp(s, classes[i], 2) == 0)
            return true;
    static const char *const codes[] = {
        "57P01", /* admin_shutdown */
        "57P02", /* crash_shutdown */
        "57P03", /* cannot_connect_now */
        "57P05", /* idle_session_timeout */
        "57014", /* query_canceled (statement_timeout) */
        "55P03", /* lock_not_available (lock_timeout) */
        "55006", /* object_in_use */
        "25006", /* read_only_sql_transaction: a standby, after a failover */
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(codes); i++)
        if (strcmp(s, codes[i]) == 0)
            return true;
    return false;
}

char *qs_pg_one_line(char *dst, size_t cap, const char *msg)
{
    if (!cap)
        return dst;
    size_t n = 0;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && n + 1 < cap; p++) {
        char c = *p;
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = n > 0;
            continue;
        }
        if (space) {
            if (n + 2 >= cap)
                break; /* no room for the space and a character after it */
            dst[n++] = ' ';
            space = false;
        }
        dst[n++] = c;
    }
    dst[n] = '\0';
    return dst;
}
