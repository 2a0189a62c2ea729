/* SPDX-License-Identifier: MIT
 * test_uuid.c - UUID URNs: the text form, the version and variant bits, UUIDv7's time
 * prefix, and that ids do not repeat.
 */
#include "harness.h"
#include "uuid.h"

#include <string.h>
#include <time.h>

/* "urn:uuid:" then 8-4-4-4-12 lowercase hex digits. */
static bool well_formed(const char *u)
{
    if (strlen(u) != QS_UUID_URN_LEN || memcmp(u, "urn:uuid:", 9) != 0)
        return false;
    for (int i = 9; i < QS_UUID_URN_LEN; i++) {
        int pos = i - 9;
        bool dash = pos == 8 || pos == 13 || pos == 18 || pos == 23;
        bool lower_hex = qs_hex_value((unsigned char)u[i]) >= 0 && !(u[i] >= 'A' && u[i] <= 'F');
        if (dash ? u[i] != '-' : !lower_hex)
            return false;
    }
    return true;
}

TEST(format_writes_lowercase_hex_with_dashes)
{
    const unsigned char b[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
    char out[QS_UUID_URN_LEN + 1];
    qs_uuid_format_urn(b, out);
    ASSERT_EQ_STR("urn:uuid:01234567-89ab-cdef-fedc-ba9876543210", out);
}

TEST(v4_and_v7_carry_their_version_and_the_rfc_variant)
{
    char u[QS_UUID_URN_LEN + 1];
    for (int i = 0; i < 1000; i++) {
        qs_uuid4_urn(u);
        ASSERT(well_formed(u));
        ASSERT(u[9 + 14] == '4');
        ASSERT(strchr("89ab", u[9 + 19]) != NULL);
        qs_uuid7_urn(u);
        ASSERT(well_formed(u));
        ASSERT(u[9 + 14] == '7');
        ASSERT(strchr("89ab", u[9 + 19]) != NULL);
    }
}

TEST(v7_starts_with_the_current_unix_milliseconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t before = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    char u[QS_UUID_URN_LEN + 1];
    qs_uuid7_urn(u);
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t after = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t ms = 0;
    for (int i = 9; i < 9 + 13; i++)
        if (u[i] != '-')
            ms = ms << 4 | (uint64_t)qs_hex_value((unsigned char)u[i]);
    ASSERT(ms >= before && ms <= after);
}

TEST(ids_do_not_repeat)
{
    enum { N = 4096 };
    static char ids[N][QS_UUID_URN_LEN + 1];
    for (int i = 0; i < N; i++)
        (i % 2 ? qs_uuid4_urn : qs_uuid7_urn)(ids[i]);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            ASSERT(strcmp(ids[i], ids[j]) != 0);
}
