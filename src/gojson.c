/* SPDX-License-Identifier: MIT
 * gojson.c - Go encoding/json compatible output.
 */
#include "gojson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void qs_gojson_indent(qs_buf *out, int depth)
{
    qs_buf_append_char(out, '\n');
    for (int i = 0; i < depth; i++)
        qs_buf_append(out, "  ", 2);
}

void qs_gojson_string(qs_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    qs_buf_append_char(out, '"');
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                qs_buf_append_char(out, (char)c);
            } else if (c == '"' || c == '\\') {
                qs_buf_append_char(out, '\\');
                qs_buf_append_char(out, (char)c);
            } else if (c == '\n') {
                qs_buf_append(out, "\\n", 2);
            } else if (c == '\r') {
                qs_buf_append(out, "\\r", 2);
            } else if (c == '\t') {
                qs_buf_append(out, "\\t", 2);
            } else {
                /* Other control characters, and <, >, & (HTML-safe escaping). */
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                qs_buf_append(out, u, 6);
            }
            i++;
            continue;
        }
        uint32_t cp;
        int n = (int)qs_utf8_decode(p + i, len - i, &cp);
        if (!n) {
            qs_buf_append(out, "\\ufffd", 6);
            i++;
            continue;
        }
        if (cp == 0x2028 || cp == 0x2029) {
            qs_buf_append(out, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
        } else {
            qs_buf_append(out, s + i, (size_t)n);
        }
        i += (size_t)n;
    }
    qs_buf_append_char(out, '"');
}

/* Shortest %.*e / %.*f representation of f that reads back as f. */
static int shortest_digits(double f, char fmt, char *buf, size_t cap)
{
    for (int prec = 0; prec <= 17; prec++) {
        char spec[8];
        snprintf(spec, sizeof(spec), "%%.%d%c", prec, fmt);
        snprintf(buf, cap, spec, f);
        if (strtod(buf, NULL) == f)
            return prec;
    }
    return 17;
}

void qs_gojson_number(qs_buf *out, double f)
{
    char buf[64];
    if (!isfinite(f)) {
        qs_buf_append(out, "null", 4); /* Go refuses; never produced from parsed JSON */
        return;
    }
    double a = fabs(f);
    if (a != 0 && (a < 1e-6 || a >= 1e21)) {
        /* strconv 'e' format with the shortest mantissa, then Go's cleanup of the
         * exponent: "e-07" becomes "e-7". */
        shortest_digits(f, 'e', buf, sizeof(buf));
        char *e = strchr(buf, 'e');
        if (e && (e[1] == '-' || e[1] == '+') && e[2] == '0' && e[3] != '\0')
            memmove(e + 2, e + 3, strlen(e + 3) + 1);
        qs_buf_append_str(out, buf);
        return;
    }
    /* 'f' with the fewest digits that round-trip: find the shortest 'g' mantissa, then
     * print it in positional form. */
    char g[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(g, sizeof(g), "%.*g", prec, f);
        if (strtod(g, NULL) == f)
            break;
    }
    /* Digits after the point needed in positional notation for that precision. */
    int exp10 = a == 0 ? 0 : (int)floor(log10(a));
    int decimals = prec - 1 - exp10;
    if (decimals < 0)
        decimals = 0;
    snprintf(buf, sizeof(buf), "%.*f", decimals, f);
    if (strtod(buf, NULL) != f) /* log10 rounding at a power of ten: one more digit */
        snprintf(buf, sizeof(buf), "%.*f", decimals + 1, f);
    if (strchr(buf, '.')) {
        size_t n = strlen(buf);
        while (buf[n - 1] == '0')
            buf[--n] = '\0';
        if (buf[n - 1] == '.')
            buf[--n] = '\0';
    }
    qs_buf_append_str(out, buf);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void qs_gojson_value(qs_buf *out, json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v);
        if (!n) {
            qs_buf_append(out, "{}", 2);
            return;
        }
        const char **keys = qs_xmalloc(n * sizeof(*keys));
        size_t i = 0;
        const char *k;
        json_t *val;
        json_object_foreach(v, k, val) keys[i++] = k;
        qsort(keys, n, sizeof(*keys), cmp_keys); /* Go writes map keys sorted */
        qs_buf_append_char(out, '{');
        for (i = 0; i < n; i++) {
            qs_gojson_indent(out, depth + 1);
            qs_gojson_string(out, keys[i], strlen(keys[i]));
            qs_buf_append(out, ": ", 2);
            qs_gojson_value(out, json_object_get(v, keys[i]), depth + 1);
            if (i + 1 < n)
                qs_buf_append_char(out, ',');
        }
        qs_gojson_indent(out, depth);
        qs_buf_append_char(out, '}');
        free(keys);
        return;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (!n) {
            qs_buf_append(out, "[]", 2);
            return;
        }
        qs_buf_append_char(out, '[');
        for (size_t i = 0; i < n; i++) {
            qs_gojson_indent(out, depth + 1);
            qs_gojson_value(out, json_array_get(v, i), depth + 1);
            if (i + 1 < n)
                qs_buf_append_char(out, ',');
        }
        qs_gojson_indent(out, depth);
        qs_buf_append_char(out, ']');
        return;
    }
    case JSON_STRING:
        qs_gojson_string(out, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        /* Go decodes every number into a float64. */
        qs_gojson_number(out, (double)json_integer_value(v));
        return;
    case JSON_REAL:
        qs_gojson_number(out, json_real_value(v));
        return;
    case JSON_TRUE:
        qs_buf_append(out, "true", 4);
        return;
    case JSON_FALSE:
        qs_buf_append(out, "false", 5);
        return;
    case JSON_NULL:
    default:
        qs_buf_append(out, "null", 4);
        return;
    }
}
