/* SPDX-License-Identifier: MIT
 * fuzz_record.c - libFuzzer target for stored update records (record.c): what the embedded
 * store and the Redis stream hand back is read with qs_record_decode and qs_record_id.
 *
 * Input: the bytes of one record. Checks:
 *  1. qs_record_id agrees with qs_record_decode: a record that decodes has a readable id,
 *     the same as the update's;
 *  2. a decoded update is one the publish handler could have accepted (update_check.h) and,
 *     finalized, its SSE frame is exactly one event with its fields;
 *  3. it re-encodes to bytes that decode to the same update; that encoding is a fixed point
 *     (encoding the second decode gives the same bytes) and is never longer than the input;
 *     when it has the input's length and the flags byte is one the encoder writes, it is
 *     the input itself (so a value that does not fit is never silently changed).
 */
#include "record.h"

#include <string.h>

#include "update_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A non-NULL pointer even for no bytes. */
    const uint8_t *in = size ? data : (const uint8_t *)"";
    qs_slice id = {NULL, 0};
    bool has_id = qs_record_id(in, size, &id);
    qs_update *u = qs_record_decode(in, size);
    if (!u)
        return 0;

    CHECK(has_id && id.n == strlen(u->id) && memcmp(id.p, u->id, id.n) == 0);
    CHECK(atomic_load(&u->refs) == 1 && u->frame == NULL);
    update_check_shape(u);

    qs_buf again = QS_BUF_INIT;
    qs_record_encode(u, &again);
    CHECK(again.len <= size);
    if (again.len == size && in[1] <= 1)
        CHECK(memcmp(again.p, in, size) == 0);
    qs_update *d = qs_record_decode(again.p, again.len);
    CHECK(d != NULL && updates_equal(u, d));
    qs_buf third = QS_BUF_INIT;
    qs_record_encode(d, &third);
    CHECK(third.len == again.len && memcmp(third.p, again.p, again.len) == 0);

    qs_update_finalize(u);
    CHECK(strcmp(u->id, d->id) == 0); /* finalize keeps a stored id */
    update_check_frame(u);

    qs_buf_free(&third);
    qs_buf_free(&again);
    qs_update_unref(d);
    qs_update_unref(u);
    return 0;
}
