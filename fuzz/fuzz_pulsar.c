/* SPDX-License-Identifier: MIT
 * fuzz_pulsar.c - libFuzzer target for what the Pulsar transport reads from a broker: the
 * input is a byte stream as it would arrive on a connection, parsed frame after frame
 * (qs_pulsar_frame_parse) the way the client does, fed in pieces whose sizes come from the
 * first byte (a frame split across reads must parse the same). The messages of every
 * MESSAGE frame (one, or those of a batch: qs_pulsar_msgs_next) are read as updates
 * (qs_pulsar_message_update), whose id must then be the id property. The answer of every
 * PARTITIONED_METADATA_RESPONSE frame is read (qs_pulsar_partitions_of).
 */
#include "check.h"
#include "transport/pulsar.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FUZZ_INPUT 65536
#define MAX_FRAME 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size || size > MAX_FUZZ_INPUT)
        return 0;
    size_t step = (size_t)data[0] + 1; /* bytes that arrive per read */
    const uint8_t *in = data + 1;
    size_t n = size - 1, have = 0, off = 0;
    while (off < n) {
        if (have < n)
            have = have + step < n ? have + step : n;
        qs_pulsar_frame f;
        const char *why = NULL;
        ssize_t used = qs_pulsar_frame_parse(in + off, have - off, MAX_FRAME, &f, &why);
        if (used < 0) {
            CHECK(why != NULL && f.cmd == NULL && f.meta == NULL);
            break;
        }
        if (used == 0) {
            CHECK(f.cmd == NULL);
            if (have == n)
                break; /* truncated at the end */
            continue;
        }
        CHECK((size_t)used <= have - off && f.cmd != NULL);
        /* The same frame with every byte present parses the same way. */
        qs_pulsar_frame g;
        CHECK(qs_pulsar_frame_parse(in + off, n - off, MAX_FRAME, &g, &why) == used);
        CHECK(g.cmd->type == f.cmd->type && (g.meta == NULL) == (f.meta == NULL));
        qs_pulsar_frame_clear(&g);
        if (f.meta) {
            CHECK(f.payload >= in + off && f.payload + f.payload_len == in + off + used);
            if (f.cmd->type == 9 && f.cmd->message) {
                const Qspulsar__MessageId *id = f.cmd->message->message_id;
                qs_pulsar_msgs it;
                qs_pulsar_msg m;
                qs_pulsar_msgs_init(&it, &f);
                int rc;
                int64_t last = -1;
                while ((rc = qs_pulsar_msgs_next(&it, &m, &why)) == 1) {
                    CHECK(m.batch_index > last && m.batch_index < QS_PULSAR_MAX_BATCH);
                    last = m.batch_index;
                    CHECK(!m.payload || (m.payload >= f.payload &&
                                         m.payload + m.len <= f.payload + f.payload_len));
                    uint64_t seq;
                    if (!qs_pulsar_seq_of(id->ledger, id->entry, m.batch_index, &seq))
                        continue;
                    qs_update *u = qs_pulsar_message_update(&m, seq);
                    if (u) {
                        const char *want =
                            qs_pulsar_property(m.properties, m.n_properties, QS_PULSAR_ID_PROPERTY);
                        CHECK(want && !strcmp(want, u->id) && u->seq == seq && u->frame);
                        qs_update_unref(u);
                    }
                }
                CHECK(rc == 0 || why != NULL);
                qs_pulsar_msgs_clear(&it);
            }
        }
        if (f.cmd->type == QS_PULSAR_PARTITIONED_METADATA_RESPONSE) {
            const Qspulsar__PartitionedTopicMetadataResponse *r =
                f.cmd->partition_metadata_response;
            uint32_t parts = 1;
            int code = -1;
            int rc = qs_pulsar_partitions_of(r, &parts, &code);
            CHECK(rc >= -1 && rc <= 1);
            CHECK(rc == 1 || parts == 0);
            CHECK(rc != 1 || (r && code == 0 && parts == (r->has_partitions ? r->partitions : 0)));
            CHECK(rc != 0 || code == QS_PULSAR_ERR_TOPIC_NOT_FOUND);
            CHECK(r || rc == -1);
        }
        char nb[24];
        CHECK(qs_pulsar_command_name(f.cmd->type, nb) != NULL);
        qs_pulsar_frame_clear(&f);
        off += (size_t)used;
    }
    return 0;
}
