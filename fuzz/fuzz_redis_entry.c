/* SPDX-License-Identifier: MIT
 * fuzz_redis_entry.c - libFuzzer target for Redis stream entries read as updates
 * (qs_redis_entry_update) and for stream ids (qs_redis_parse_stream_id).
 *
 * Input: RESP bytes, parsed by hiredis into replies (resp_input.h). Every array in every
 * reply is tried as an entry, so a whole XRANGE or XREAD reply explores entries where they
 * really are. For each, the answer is compared with what the entry holds, worked out here:
 *  - *seq is the first part of a well-formed id, else 0;
 *  - an update comes back exactly when the id is "<n>-0" and the first "r" field with a
 *    string value holds a record that decodes; it is that record's update, with seq n,
 *    finalized (update_check.h: shape, and a frame that is exactly its one SSE event);
 *  - the update, re-encoded into a fresh entry with the same id, reads back identically,
 *    frame included.
 * Stream ids (the first element of each array, and the input itself when short) are
 * checked against a digit-by-digit oracle: "<digits>-<digits>", each part at most 2^64-1.
 */
#include <inttypes.h>

#include "record.h"
#include "resp_input.h"
#include "transport/redis.h"
#include "update_check.h"

#define MAX_REPLIES 8
#define MAX_ENTRIES 512 /* arrays tried as entries per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Is the digit string d[0..n) (n >= 1) at most 2^64-1? */
static bool fits_u64(const char *d, size_t n)
{
    while (n > 1 && *d == '0')
        d++, n--;
    return n < 20 || (n == 20 && memcmp(d, "18446744073709551615", 20) <= 0);
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void check_stream_id(const char *s, size_t len)
{
    uint64_t ms = 1, seq = 2;
    bool ok = qs_redis_parse_stream_id(s, len, &ms, &seq);
    const char *dash = len ? memchr(s, '-', len) : NULL;
    size_t a = dash ? (size_t)(dash - s) : 0, b = dash ? len - a - 1 : 0;
    bool want = dash && a && b && all_digits(s, a) && all_digits(dash + 1, b) && fits_u64(s, a) &&
                fits_u64(dash + 1, b);
    CHECK(ok == want);
    if (!ok)
        return;
    char text[48];
    int n = snprintf(text, sizeof(text), "%" PRIu64 "-%" PRIu64, ms, seq);
    uint64_t ms2, seq2;
    CHECK(qs_redis_parse_stream_id(text, (size_t)n, &ms2, &seq2) && ms2 == ms && seq2 == seq);
}

/* The record the entry should be read from: the value of its first "r" field whose value is
 * a string, when the entry is [id, [field, value, …]]; NULL otherwise. */
static const redisReply *record_field(const redisReply *e)
{
    const redisReply *fields = e->element[1];
    if (fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && k->len == 1 && k->str[0] == 'r' &&
            v->type == REDIS_REPLY_STRING)
            return v;
    }
    return NULL;
}

/* The update, written back as a stream entry "<seq>-0" r <record> and read again. */
static void check_round_trip(const qs_update *u)
{
    qs_buf rec = QS_BUF_INIT;
    qs_record_encode(u, &rec);
    char id[32];
    int n = snprintf(id, sizeof(id), "%" PRIu64 "-0", u->seq);
    char *resp = NULL;
    size_t len = 0;
    resp_raw(&resp, &len, "*2\r\n");
    resp_bulk(&resp, &len, id, (size_t)n);
    resp_raw(&resp, &len, "*2\r\n");
    resp_bulk(&resp, &len, "r", 1);
    resp_bulk(&resp, &len, rec.p, rec.len);
    redisReply *e = resp_parse_one(resp, len);
    uint64_t seq = 0;
    qs_update *again = qs_redis_entry_update(e, &seq);
    CHECK(again && seq == u->seq && again->seq == u->seq && updates_equal(u, again));
    CHECK(again->frame->len == u->frame->len &&
          memcmp(again->frame->data, u->frame->data, u->frame->len) == 0);
    qs_update_unref(again);
    freeReplyObject(e);
    free(resp);
    qs_buf_free(&rec);
}

static void check_entry(const redisReply *e)
{
    uint64_t seq = 77;
    qs_update *u = qs_redis_entry_update(e, &seq);

    uint64_t ms = 0, sub = 0;
    bool shaped = e->type == REDIS_REPLY_ARRAY && e->elements == 2;
    bool id_ok = shaped && e->element[0]->type == REDIS_REPLY_STRING &&
                 qs_redis_parse_stream_id(e->element[0]->str, e->element[0]->len, &ms, &sub);
    CHECK(seq == (id_ok ? ms : 0));
    const redisReply *rec = id_ok && sub == 0 ? record_field(e) : NULL;
    if (!rec) {
        CHECK(u == NULL);
        return;
    }
    qs_update *want = qs_record_decode(rec->str, rec->len);
    CHECK((u != NULL) == (want != NULL));
    if (u) {
        CHECK(u->seq == ms && atomic_load(&u->refs) == 1);
        CHECK(updates_equal(u, want));
        update_check_shape(u);
        update_check_frame(u);
        check_round_trip(u);
        qs_update_unref(u);
        qs_update_unref(want);
    }
}

/* Every array of the reply tree, depth first, as an entry. */
static void walk(const redisReply *r, size_t *budget)
{
    if (r->type != REDIS_REPLY_ARRAY || !*budget)
        return;
    (*budget)--;
    check_entry(r);
    if (r->elements && r->element[0]->type == REDIS_REPLY_STRING)
        check_stream_id(r->element[0]->str, r->element[0]->len);
    for (size_t i = 0; i < r->elements; i++)
        walk(r->element[i], budget);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size <= 64)
        check_stream_id(size ? (const char *)data : "", size);
    redisReply *replies[MAX_REPLIES];
    size_t n = resp_parse(data, size, replies, MAX_REPLIES);
    size_t budget = MAX_ENTRIES;
    for (size_t i = 0; i < n; i++) {
        if (replies[i]->type != REDIS_REPLY_ARRAY)
            check_entry(replies[i]); /* any reply, not only arrays */
        walk(replies[i], &budget);
        freeReplyObject(replies[i]);
    }
    return 0;
}
