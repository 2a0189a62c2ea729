/* SPDX-License-Identifier: MIT
 * uuid.c - UUIDv4 and UUIDv7 URNs.
 */
#include "uuid.h"

#include <time.h>

void qs_uuid_format_urn(const unsigned char b[16], char out[QS_UUID_URN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "urn:uuid:", 9);
    char *p = out + 9;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

void qs_uuid7_urn(char out[QS_UUID_URN_LEN + 1])
{
    unsigned char b[16];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    qs_random_bytes(b + 6, 10);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* RFC 9562 variant */
    qs_uuid_format_urn(b, out);
}

void qs_uuid4_urn(char out[QS_UUID_URN_LEN + 1])
{
    unsigned char b[16];
    qs_random_bytes(b, sizeof(b));
    b[6] = (unsigned char)(0x40 | (b[6] & 0x0f));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    qs_uuid_format_urn(b, out);
}
