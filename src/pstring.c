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

bool qs_unicode_is_cf(uint32_t cp)
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
        if (k == 0 || cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F) || qs_unicode_is_cf(cp))
            return false;
        i += k;
    }
    return true;
}

/* Not printable in Go's sense, as far as known without the full tables (see pstring.h). */
static bool not_printable(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || qs_unicode_is_cf(cp))
        return true;
    if (cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return true; /* spaces and separators other than U+0020 */
    if ((cp >= 0xE000 && cp <= 0xF8FF) || cp >= 0xF0000)
        return true;                                                  /* private use */
    return (cp & 0xFFFE) == 0xFFFE || (cp >= 0xFDD0 && cp <= 0xFDEF); /* noncharacters */
}

void qs_go_quote(qs_buf *out, const char *s, size_t n)
{
    static const char esc[] = "abtnvfr"; /* \a \b \t \n \v \f \r */
    qs_buf_append_char(out, '"');
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                qs_buf_append_char(out, '\\');
                qs_buf_append_char(out, (char)c);
            } else if (c >= 7 && c <= 13) {
                qs_buf_append_char(out, '\\');
                qs_buf_append_char(out, esc[c - 7]);
            } else if (c < 0x20 || c == 0x7F) {
                qs_buf_appendf(out, "\\x%02x", c);
            } else {
                qs_buf_append_char(out, (char)c);
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = qs_utf8_decode(p + i, n - i, &cp);
        if (k == 0) {
            qs_buf_appendf(out, "\\x%02x", c);
            i++;
        } else if (not_printable(cp)) {
            if (cp < 0x10000)
                qs_buf_appendf(out, "\\u%04x", (unsigned)cp);
            else
                qs_buf_appendf(out, "\\U%08x", (unsigned)cp);
            i += k;
        } else {
            qs_buf_append(out, s + i, k);
            i += k;
        }
    }
    qs_buf_append_char(out, '"');
}
