/* SPDX-License-Identifier: MIT
 * pstring.c - protocol strings (see pstring.h). The Cf ranges are those of Unicode 15.0, the
 * version Go 1.26's unicode package carries.
 */
#include "pstring.h"

static const uint32_t cf_ranges[][2] = {
    {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},
    {0x070F, 0x070F},   {0x0890, 0x0891},   {0x08E2, 0x08E2},   {0x180E, 0x180E},
    {0x200B, 0x200F},   {0x202A, 0x202E},   {0x2060, 0x2064},   {0x2066, 0x206F},
    {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD}, {0x110CD, 0x110CD},
    {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
    {0xE0020, 0xE007F},
};

static bool is_cf(uint32_t cp)
{
    for (size_t i = 0; i < QS_ARRAY_LEN(cf_ranges); i++)
        if (cp >= cf_ranges[i][0] && cp <= cf_ranges[i][1])
            return true;
    return false;
}

bool qs_protocol_string_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = qs_utf8_decode(p + i, n - i, &cp);
        if (k == 0 || cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F) || is_cf(cp))
            return false;
        i += k;
    }
    return true;
}
