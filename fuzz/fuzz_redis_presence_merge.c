/* SPDX-License-Identifier: MIT
 * fuzz_redis_presence_merge.c - libFuzzer target for the cluster's presence registry read
 * from the reply of the list script (qs_redis_presence_merge).
 *
 * Input: RESP bytes, parsed by hiredis (resp_input.h); each reply is merged with this
 * node's ("self") local entries, 0 to 2 of them depending on the input. Checks:
 *  1. the merge fails exactly when the reply is not [node, [field, value, …], …] (an array
 *     of pairs, each a string and an array of even length), and then returns nothing;
 *  2. otherwise the result is, as a multiset, the local entries plus every other node's
 *     (field, value) pair of strings whose value decodes (entries named "self" are this
 *     node's stale copy and skipped), each entry equal to its decoded form;
 *  3. it is sorted by (order, node, subscriber): the (order, subscriber) sequence is the one
 *     of the expected entries sorted that way.
 * Unreadable entries are logged as warnings: the log level is raised to keep runs quiet.
 */
#include <stdlib.h>

#include "log.h"
#include "presence_check.h"
#include "resp_input.h"
#include "transport/redis.h"

#define SELF "self"
#define MAX_REPLIES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *local_topics_1[] = {"urn:l1"};
static char *local_topics_2[] = {"https://example.com/{id}", "urn:b"};
static const qs_presence_entry locals[] = {
    {.subscriber = "urn:uuid:local-1", .topics = local_topics_1, .n_topics = 1, .order = 20},
    {.subscriber = "urn:uuid:local-2",
     .topics = local_topics_2,
     .n_topics = 2,
     .payload = "{\"u\":1}",
     .order = 1796062997297717},
};

typedef struct expected {
    qs_presence_entry e;
    const char *node;
    char *key; /* the whole entry as text, to compare multisets */
} expected;

static char *entry_key(const qs_presence_entry *e)
{
    char *json = qs_redis_presence_encode(e);
    char *key = qs_xasprintf("%s\n%s", e->subscriber, json);
    free(json);
    return key;
}

static int by_order_node_sub(const void *a, const void *b)
{
    const expected *x = a, *y = b;
    if (x->e.order != y->e.order)
        return x->e.order < y->e.order ? -1 : 1;
    int c = strcmp(x->node, y->node);
    return c ? c : strcmp(x->e.subscriber, y->e.subscriber);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool well_formed(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return false;
    for (size_t i = 0; i < r->elements; i += 2)
        if (r->element[i]->type != REDIS_REPLY_STRING ||
            r->element[i + 1]->type != REDIS_REPLY_ARRAY || r->element[i + 1]->elements % 2)
            return false;
    return true;
}

static void check_merge(const redisReply *r, size_t n_local)
{
    qs_presence_entry *out = (qs_presence_entry *)1;
    size_t n = 99;
    int rc = qs_redis_presence_merge(r, SELF, locals, n_local, &out, &n);
    CHECK(rc == 0 || rc == -1);
    CHECK((rc == 0) == well_formed(r));
    if (rc) {
        CHECK(out == NULL && n == 0);
        return;
    }
    CHECK(out != NULL);

    size_t cap = n_local, k = 0;
    for (size_t i = 0; i < r->elements; i += 2)
        cap += r->element[i + 1]->elements / 2;
    expected *want = calloc(cap ? cap : 1, sizeof(*want));
    CHECK(want != NULL);
    for (size_t i = 0; i < n_local; i++) {
        qs_presence_entry_copy(&want[k].e, &locals[i]);
        want[k++].node = SELF;
    }
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *node = r->element[i], *h = r->element[i + 1];
        if (strcmp(node->str, SELF) == 0)
            continue;
        for (size_t j = 0; j < h->elements; j += 2) {
            const redisReply *f = h->element[j], *v = h->element[j + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            char *sub = qs_xstrndup(f->str, f->len);
            if (qs_redis_presence_decode(sub, v->str, v->len, &want[k].e) == 0)
                want[k++].node = node->str;
            free(sub);
        }
    }
    CHECK(n == k);

    /* The same entries... */
    char **got_keys = calloc(k ? k : 1, sizeof(char *));
    char **want_keys = calloc(k ? k : 1, sizeof(char *));
    CHECK(got_keys && want_keys);
    for (size_t i = 0; i < k; i++) {
        presence_check_shape(&out[i]);
        got_keys[i] = entry_key(&out[i]);
        want_keys[i] = want[i].key = entry_key(&want[i].e);
    }
    qsort(got_keys, k, sizeof(char *), by_string);
    qsort(want_keys, k, sizeof(char *), by_string);
    for (size_t i = 0; i < k; i++)
        CHECK(strcmp(got_keys[i], want_keys[i]) == 0);
    /* ...in (order, node, subscriber) order. */
    qsort(want, k, sizeof(*want), by_order_node_sub);
    for (size_t i = 0; i < k; i++)
        CHECK(out[i].order == want[i].e.order &&
              strcmp(out[i].subscriber, want[i].e.subscriber) == 0);

    for (size_t i = 0; i < k; i++) {
        free(got_keys[i]);
        free(want[i].key);
        qs_presence_entry_clear(&want[i].e);
    }
    free(got_keys);
    free(want_keys);
    free(want);
    qs_presence_entries_free(out, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qs_log_set_level(QS_LOG_ERROR);
    redisReply *replies[MAX_REPLIES];
    size_t n = resp_parse(data, size, replies, MAX_REPLIES);
    for (size_t i = 0; i < n; i++) {
        check_merge(replies[i], (size + i) % 3);
        freeReplyObject(replies[i]);
    }
    if (!n) { /* the merge of nothing at all */
        redisReply *empty = resp_parse_one("*0\r\n", 4);
        check_merge(empty, size % 3);
        freeReplyObject(empty);
    }
    return 0;
}
