/* SPDX-License-Identifier: MIT
 * fuzz_kafka.c - libFuzzer target for what the Kafka transport decodes from messages: an
 * update from a message's value and id header, and presence records (keys, entries,
 * claims, tombstones) applied to a registry.
 *
 * Input: a first byte choosing the mode, then fields separated by "\n":
 *   even: "<id header>\n<value>"            -> qs_kafka_message_update
 *   odd:  records "<key>\t<value>" per line  -> a registry (no tab = tombstone), then its
 *         list and claims; an update's id must be its header, a registry never crashes and
 *         lists only well-formed entries.
 */
#include "transport/kafka.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FUZZ_INPUT 8192

static void check(bool cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size || size > MAX_FUZZ_INPUT)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        const char *nl = memchr(in, '\n', n);
        size_t id_len = nl ? (size_t)(nl - in) : n;
        const char *value = nl ? nl + 1 : in;
        size_t vlen = nl ? n - id_len - 1 : n;
        qs_update *u = qs_kafka_message_update(value, vlen, in, id_len, (int64_t)data[0]);
        if (u) {
            check(strlen(u->id) == id_len && !memcmp(u->id, in, id_len));
            check(u->seq == (uint64_t)data[0] + 1 && u->frame);
            qs_update_unref(u);
        }
        return 0;
    }
    qs_kafka_registry g;
    qs_kafka_registry_init(&g, "self", 1000);
    int64_t offset = 0;
    uint64_t now = 0;
    for (const char *p = in, *end = in + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *tab = memchr(p, '\t', (size_t)(line_end - p));
        qs_presence_entry *taken = NULL;
        size_t n_taken = 0;
        char *node = NULL;
        qs_kafka_registry_apply(&g, p, (size_t)((tab ? tab : line_end) - p), tab ? tab + 1 : NULL,
                                tab ? (size_t)(line_end - tab - 1) : 0, offset++, now, &taken,
                                &n_taken, &node);
        check(!n_taken || node);
        qs_presence_entries_free(taken, n_taken);
        free(node);
        now += 300;
        p = nl ? nl + 1 : end;
    }
    size_t listed = 0;
    qs_presence_entry *v = qs_kafka_registry_list(&g, now, NULL, 0, &listed);
    for (size_t i = 0; i < listed; i++)
        check(v[i].subscriber && (v[i].topics || !v[i].n_topics));
    qs_presence_entries_free(v, listed);
    char **keys = NULL, **values = NULL;
    size_t k = qs_kafka_registry_claims(&g, now + 5000, &keys, &values);
    for (size_t i = 0; i < k; i++) {
        char *by = NULL;
        int64_t hb = 0;
        check(qs_kafka_presence_decode_claim(values[i], strlen(values[i]), &by, &hb) == 0);
        free(by);
        free(keys[i]);
        free(values[i]);
    }
    free(keys);
    free(values);
    qs_kafka_registry_free(&g);
    return 0;
}
