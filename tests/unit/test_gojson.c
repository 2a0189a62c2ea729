/* SPDX-License-Identifier: MIT
 * test_gojson.c - JSON written as Go's json.MarshalIndent(v, "", "  ") writes it.
 * Expected outputs were produced by Go 1.26's encoding/json (decoding into `any`, then
 * MarshalIndent); -0 and integers beyond 64 bits are left out because jansson reads them
 * differently from Go (documented in gojson.h's users).
 */
#include "gojson.h"
#include "harness.h"

static const char *const vectors[][2] = {
    {"{\"user\":\"https://example.com/users/dunglas\",\"remoteAddr\":\"127.0.0.1\"}",
     "{\n  \"remoteAddr\": \"127.0.0.1\",\n  \"user\": \"https://example.com/users/dunglas\"\n}"},
    {"{\"b\":1,\"a\":[1,2.5,-1,1e21,1e20,0.000001,1e-7,3.0,1.5e300,100,0.1,-2.75e-10]}",
     "{\n  \"a\": [\n    1,\n    2.5,\n    -1,\n    1e+21,\n    100000000000000000000,\n    "
     "0.000001,\n    1e-7,\n    3,\n    1.5e+300,\n    100,\n    0.1,\n    -2.75e-10\n  ],\n  "
     "\"b\": 1\n}"},
    {"\"<script>&\\u2028\\u2029\\u0001\\n\\r\\t\\\"\\\\ \303\251 \342\234\223 \360\237\230\200\"",
     "\"\\u003cscript\\u003e\\u0026\\u2028\\u2029\\u0001\\n\\r\\t\\\"\\\\ \303\251 \342\234\223 "
     "\360\237\230\200\""},
    {"{\"nested\":{\"z\":null,\"y\":true,\"x\":false,\"w\":{},\"v\":[]}}",
     "{\n  \"nested\": {\n    \"v\": [],\n    \"w\": {},\n    \"x\": false,\n    \"y\": true,\n    "
     "\"z\": null\n  }\n}"},
    {"[{\"k\":\"v\"},[],{}]", "[\n  {\n    \"k\": \"v\"\n  },\n  [],\n  {}\n]"},
    {"12345678", "12345678"},
    {"\"\\u007f\\u0080\"", "\"\177\302\200\""},
    {"{\"A\":1,\"a\":2,\"_\":3,\"1\":4}",
     "{\n  \"1\": 4,\n  \"A\": 1,\n  \"_\": 3,\n  \"a\": 2\n}"},
    {"9007199254740993", "9007199254740992"},
    {"-1e-6", "-0.000001"},
    {"1e-6", "0.000001"},
    {"0.0000009999", "9.999e-7"},
    {"999999999999999999999.0", "1e+21"},
};

TEST(matches_go_marshal_indent)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        json_error_t e;
        json_t *v = json_loads(vectors[i][0], JSON_DECODE_ANY, &e);
        if (!v)
            qs_test_fail(__FILE__, __LINE__, "vector %zu does not parse: %s", i, e.text);
        qs_buf out = QS_BUF_INIT;
        qs_gojson_value(&out, v, 0);
        ASSERT_EQ_MEM(vectors[i][1], strlen(vectors[i][1]), out.p, out.len);
        qs_buf_free(&out);
        json_decref(v);
    }
}

TEST(invalid_utf8_becomes_replacement_character)
{
    qs_buf out = QS_BUF_INIT;
    qs_gojson_string(&out, "a\377\303b\355\240\200", 7);
    const char *expected = "\"a\\ufffd\\ufffdb\\ufffd\\ufffd\\ufffd\"";
    ASSERT_EQ_MEM(expected, strlen(expected), out.p, out.len);
    qs_buf_free(&out);
}
