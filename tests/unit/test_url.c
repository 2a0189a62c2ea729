/* SPDX-License-Identifier: MIT
 * test_url.c - transport URL parsing.
 */
#include "harness.h"
#include "url.h"

TEST(redis_url_with_credentials_and_query)
{
    qs_url u;
    const char *err = NULL;
    ASSERT_EQ_INT(0, qs_url_parse("redis://us%40r:p%3Ass@127.0.0.1:6380/mercure-ha?tls=1&"
                                  "max_len_approx=1000",
                                  &u, &err));
    ASSERT_EQ_STR("redis", u.scheme);
    ASSERT_EQ_STR("us@r", u.user);
    ASSERT_EQ_STR("p:ss", u.password);
    ASSERT_EQ_STR("127.0.0.1", u.host);
    ASSERT_EQ_INT(6380, u.port);
    ASSERT_EQ_STR("/mercure-ha", u.path);
    ASSERT_EQ_STR("1", qs_form_get(&u.query, "tls")->value);
    ASSERT_EQ_STR("1000", qs_form_get(&u.query, "max_len_approx")->value);
    qs_url_free(&u);
}

TEST(file_urls_keep_the_opaque_path)
{
    qs_url u;
    const char *err = NULL;
    ASSERT_EQ_INT(0, qs_url_parse("bolt://relative.db?size=10", &u, &err));
    ASSERT_EQ_STR("relative.db", u.opaque);
    ASSERT_EQ_STR("10", qs_form_get(&u.query, "size")->value);
    qs_url_free(&u);
    ASSERT_EQ_INT(0, qs_url_parse("LMDB:///var/lib/mercure.db", &u, &err));
    ASSERT_EQ_STR("lmdb", u.scheme);
    ASSERT_EQ_STR("/var/lib/mercure.db", u.opaque);
    ASSERT_EQ_STR("", u.host);
    ASSERT_EQ_STR("/var/lib/mercure.db", u.path);
    qs_url_free(&u);
}

TEST(ipv6_host_and_errors)
{
    qs_url u;
    const char *err = NULL;
    ASSERT_EQ_INT(0, qs_url_parse("redis://[::1]:6379", &u, &err));
    ASSERT_EQ_STR("::1", u.host);
    ASSERT_EQ_INT(6379, u.port);
    qs_url_free(&u);
    ASSERT_EQ_INT(-1, qs_url_parse("redis//x", &u, &err));
    ASSERT_EQ_INT(-1, qs_url_parse("://x", &u, &err));
    ASSERT_EQ_INT(-1, qs_url_parse("redis://h:99999", &u, &err));
    ASSERT_EQ_INT(-1, qs_url_parse("redis://h:", &u, &err));
    ASSERT_EQ_INT(-1, qs_url_parse("redis://[::1", &u, &err));
    ASSERT_EQ_INT(-1, qs_url_parse("redis://h/%zz", &u, &err));
    ASSERT_EQ_INT(-1, qs_url_parse("redis://h?a=%zz", &u, &err));
    ASSERT_EQ_INT(-1, qs_url_parse("1redis://h", &u, &err));
}
