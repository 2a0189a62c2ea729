/* SPDX-License-Identifier: MIT
 * test_postgres.c - the pure pieces of the PostgreSQL transport: settings from a URL, a
 * key-value string and a block; masked passwords; text made storable; arrays and rows in
 * the binary format; presence rows and their order; SQLSTATE classes. (The transport
 * against a real server is covered by tests/integration/test_postgres.py.)
 */
#include "harness.h"
#include "transport/postgres.h"

static int load_url(const char *url, qs_pg_settings *s, char **err)
{
    qs_config_transport cfg = {.url = (char *)url, .source = "MERCURE_TRANSPORT_URL", .line = 1};
    return qs_pg_settings_load(&cfg, s, err);
}

/* A `transport postgres { … }` block: pairs of key, value (value NULL = bare flag), one per
 * line starting at line 10. */
static int load_block(const char *const *kv, size_t n, qs_pg_settings *s, char **err)
{
    qs_config_option opts[16];
    char *values[16];
    for (size_t i = 0; i < n; i++) {
        values[i] = (char *)kv[2 * i + 1];
        opts[i] = (qs_config_option){(char *)kv[2 * i], &values[i], values[i] ? 1 : 0, "Caddyfile",
                                     (int)(10 + i)};
    }
    qs_config_transport cfg = {
        .name = "postgres", .options = opts, .n_options = n, .source = "Caddyfile", .line = 9};
    return qs_pg_settings_load(&cfg, s, err);
}

static const char *param(const qs_pg_settings *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keywords[i], key) == 0)
            return s->values[i];
    return NULL;
}

static void expect_error(int rc, char **err, const char *const *needles, size_t n)
{
    ASSERT_EQ_INT(-1, rc);
    ASSERT(*err != NULL);
    for (size_t i = 0; i < n; i++)
        if (!strstr(*err, needles[i]))
            qs_test_fail(__FILE__, __LINE__, "\"%s\" not in \"%s\"", needles[i], *err);
    free(*err);
    *err = NULL;
}

/* ------------------------------------------------------------ settings */

TEST(url_with_credentials_hub_options_and_libpq_options)
{
    qs_pg_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("postgres://alice:s%40cret@db.internal:5433/mercure-ha?"
                              "sslmode=verify-full&mercure_size=5000&sslrootcert=/etc/ca.pem&"
                              "mercure_max_age=1h&mercure_presence_ttl=3s&mercure_timeout=750ms&"
                              "mercure_table_prefix=qs_&mercure_start_timeout=0s&"
                              "application_name=edge",
                              &s, &err));
    ASSERT_EQ_STR("db.internal", param(&s, "host"));
    ASSERT_EQ_STR("5433", param(&s, "port"));
    ASSERT_EQ_STR("alice", param(&s, "user"));
    ASSERT_EQ_STR("s@cret", param(&s, "password"));
    ASSERT_EQ_STR("mercure-ha", param(&s, "dbname"));
    ASSERT_EQ_STR("verify-full", param(&s, "sslmode"));
    ASSERT_EQ_STR("/etc/ca.pem", param(&s, "sslrootcert"));
    ASSERT_EQ_STR("edge", param(&s, "application_name"));
    ASSERT_EQ_STR("UTF8", param(&s, "client_encoding"));
    ASSERT_EQ_STR("quicksilver", param(&s, "fallback_application_name"));
    ASSERT(param(&s, "mercure_size") == NULL);
    ASSERT(s.keywords[s.n] == NULL && s.values[s.n] == NULL);
    ASSERT_EQ_INT(5000, s.size);
    ASSERT_EQ_INT(3600000, s.max_age_ms);
    ASSERT_EQ_INT(3000, s.presence_ttl_ms);
    ASSERT_EQ_INT(750, s.timeout_ms);
    ASSERT_EQ_INT(750, s.connect_timeout_ms);
    ASSERT_EQ_INT(0, s.start_timeout_ms);
    ASSERT_EQ_STR("qs_", s.prefix);
    ASSERT(strstr(s.display, "alice:***@db.internal") != NULL);
    ASSERT(strstr(s.display, "cret") == NULL);
    qs_pg_settings_free(&s);
}

TEST(defaults_environment_and_postgresql_scheme)
{
    qs_pg_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("postgresql://", &s, &err));
    ASSERT(param(&s, "host") == NULL); /* libpq's defaults and PG* apply at connection */
    ASSERT(param(&s, "dbname") == NULL);
    ASSERT_EQ_STR("mercure_", s.prefix);
    ASSERT_EQ_INT(0, s.size);
    ASSERT_EQ_INT(0, s.max_age_ms);
    ASSERT_EQ_INT(15000, s.presence_ttl_ms);
    ASSERT_EQ_INT(5000, s.timeout_ms);
    ASSERT_EQ_INT(30000, s.start_timeout_ms);
    ASSERT_EQ_STR("postgresql://", s.display);
    qs_pg_settings_free(&s);

    /* Hub options alone leave an empty URL to libpq; connect_timeout bounds connections. */
    ASSERT_EQ_INT(0, load_url("postgres://?mercure_size=7&connect_timeout=1", &s, &err));
    ASSERT_EQ_INT(7, s.size);
    ASSERT_EQ_INT(2000, s.connect_timeout_ms); /* libpq waits 2 s at least */
    qs_pg_settings_free(&s);
}

TEST(key_value_strings)
{
    qs_pg_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_url("host=10.0.0.7 port = 6000 dbname='my db' password='it\\'s'"
                              " mercure_table_prefix=kv_ user=bob\\ smith",
                              &s, &err));
    ASSERT_EQ_STR("10.0.0.7", param(&s, "host"));
    ASSERT_EQ_STR("6000", param(&s, "port"));
    ASSERT_EQ_STR("my db", param(&s, "dbname"));
    ASSERT_EQ_STR("it's", param(&s, "password"));
    ASSERT_EQ_STR("bob smith", param(&s, "user"));
    ASSERT_EQ_STR("kv_", s.prefix);
    ASSERT(strstr(s.display, "password=***") != NULL);
    ASSERT(strstr(s.display, "it\\'s") == NULL);
    qs_pg_settings_free(&s);
}

TEST(block_with_url_then_libpq_lines_and_hub_options)
{
    static const char *const kv[] = {
        "mercure_size",
        "20",
        "url",
        "postgres://bob:pw@db:7000/from-url?mercure_size=10&sslmode=require",
        "dbname",
        "from-block",
        "password",
        "pw2",
        "mercure_table_prefix",
        "blk_",
        "sslmode",
        "verify-ca",
    };
    qs_pg_settings s;
    char *err = NULL;
    ASSERT_EQ_INT(0, load_block(kv, 6, &s, &err));
    ASSERT_EQ_STR("db", param(&s, "host"));
    ASSERT_EQ_STR("7000", param(&s, "port"));
    ASSERT_EQ_STR("from-block", param(&s, "dbname"));
    ASSERT_EQ_STR("bob", param(&s, "user"));
    ASSERT_EQ_STR("pw2", param(&s, "password"));
    ASSERT_EQ_STR("verify-ca", param(&s, "sslmode"));
    ASSERT_EQ_INT(20, s.size); /* the block's line wins over the URL's, whatever the order */
    ASSERT_EQ_STR("blk_", s.prefix);
    ASSERT_EQ_STR("postgres://bob:***@db:7000/from-url?mercure_size=10&sslmode=require", s.display);
    qs_pg_settings_free(&s);

    /* Without a URL, the display is built from the parameters (password masked). */
    static const char *const lines[] = {"host", "127.0.0.1", "dbname", "ha", "password", "x y"};
    ASSERT_EQ_INT(0, load_block(lines, 3, &s, &err));
    ASSERT_EQ_STR("host='127.0.0.1' dbname='ha' password=***", s.display);
    qs_pg_settings_free(&s);
}

TEST(errors_name_the_source_the_option_and_the_value)
{
    qs_pg_settings s;
    char *err = NULL;
    {
        const char *n[] = {"MERCURE_TRANSPORT_URL:1", "transport postgres", "mercure_size",
                           "\"many\""};
        expect_error(load_url("postgres://h/db?mercure_size=many", &s, &err), &err, n, 4);
    }
    {
        const char *n[] = {"unknown option \"mercure_bogus\""};
        expect_error(load_url("postgres://h/db?mercure_bogus=1", &s, &err), &err, n, 1);
    }
    {
        const char *n[] = {"postgres://u:***@h/db?bogus=1", "invalid URI query parameter", "bogus"};
        expect_error(load_url("postgres://u:secret@h/db?bogus=1", &s, &err), &err, n, 3);
        ASSERT(err == NULL);
    }
    {
        const char *n[] = {"mercure_table_prefix", "\"Bad-Name\""};
        expect_error(load_url("postgres://h/db?mercure_table_prefix=Bad-Name", &s, &err), &err, n,
                     2);
    }
    {
        const char *n[] = {"mercure_presence_ttl", "at least 1s"};
        expect_error(load_url("postgres://h/db?mercure_presence_ttl=10ms", &s, &err), &err, n, 2);
    }
    {
        const char *n[] = {"mercure_timeout", "invalid duration"};
        expect_error(load_url("postgres://h/db?mercure_timeout=soon", &s, &err), &err, n, 2);
    }
    {
        const char *n[] = {"host=h ***", "unterminated quoted string"};
        expect_error(load_url("host=h password='secret", &s, &err), &err, n, 2);
    }
    {
        const char *n[] = {"missing \"=\""};
        expect_error(load_url("host=h dbname", &s, &err), &err, n, 1);
    }
    {
        const char *n[] = {"invalid connection option", "nonsense"};
        expect_error(load_url("host=h nonsense=1", &s, &err), &err, n, 2);
    }
    {
        const char *n[] = {"connect_timeout", "invalid number"};
        expect_error(load_url("postgres://h/db?connect_timeout=soon", &s, &err), &err, n, 2);
    }
    {
        static const char *const kv[] = {"host", "h", "size", "10"};
        const char *n[] = {"Caddyfile:11", "unknown option \"size\"", "mercure_"};
        expect_error(load_block(kv, 2, &s, &err), &err, n, 3);
    }
    {
        static const char *const kv[] = {"host", NULL};
        const char *n[] = {"Caddyfile:10", "host", "a value is required"};
        expect_error(load_block(kv, 1, &s, &err), &err, n, 3);
    }
}

TEST(passwords_are_masked)
{
    static const char *const cases[][2] = {
        {"postgres://u:p@h/db", "postgres://u:***@h/db"},
        {"postgres://u@h/db", "postgres://u@h/db"},
        {"postgres://h/db?password=p&sslmode=require",
         "postgres://h/db?password=***&sslmode=require"},
        {"postgresql://u:p%40w@h1:1,h2:2/db?sslpassword=k",
         "postgresql://u:***@h1:1,h2:2/db?sslpassword=***"},
        /* Passwords libpq cannot read (unencoded '?', '/', '@') are not shown either. */
        {"postgres://u:a?b/c@h/db?x=1", "postgres://u:***@h/db?x=1"},
        {"postgres://u:a@b@h/db", "postgres://u:***@h/db"},
        {"postgres://u:pw@h/db?application_name=a@b", "postgres://u:***@h/db?application_name=a@b"},
        {"postgres://h/db?password=p@ss&x=1", "postgres://h/db?password=***&x=1"},
        {"POSTGRES://u:p@h", "POSTGRES://u:***@h"},
        {"postgres://h/db?pass%77ord=p", "postgres://h/db?pass%77ord=***"},
        {"host=h password=p user=u", "host=h password=*** user=u"},
        {"password = 'a b\\' c' host=h", "password = *** host=h"},
        {"host=h sslpassword='k'", "host=h sslpassword=***"},
        {"host=h password", "host=h ***"},
        {"", ""},
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(cases); i++) {
        char *m = qs_pg_mask_password(cases[i][0]);
        ASSERT_EQ_STR(cases[i][1], m);
        free(m);
    }
}

TEST(table_prefixes)
{
    ASSERT(qs_pg_prefix_valid("mercure_"));
    ASSERT(qs_pg_prefix_valid("_x9"));
    ASSERT(!qs_pg_prefix_valid(""));
    ASSERT(!qs_pg_prefix_valid("9x"));
    ASSERT(!qs_pg_prefix_valid("Upper"));
    ASSERT(!qs_pg_prefix_valid("a-b"));
    ASSERT(!qs_pg_prefix_valid("a.b"));
    ASSERT(!qs_pg_prefix_valid("x\"; DROP TABLE y; --"));
    ASSERT(qs_pg_prefix_valid("abcdefghijabcdefghijabcdefghijabcdefghij"));
    ASSERT(!qs_pg_prefix_valid("abcdefghijabcdefghijabcdefghijabcdefghijk"));
}

/* ------------------------------------------------------------ values */

TEST(text_is_made_storable)
{
    ASSERT(qs_pg_text_ok("", 0));
    ASSERT(qs_pg_text_ok("héllo ✓ 😀", strlen("héllo ✓ 😀")));
    ASSERT(!qs_pg_text_ok("a\0b", 3));
    ASSERT(!qs_pg_text_ok("\xff", 1));
    ASSERT(!qs_pg_text_ok("\xed\xa0\x80", 3)); /* a surrogate */
    ASSERT(!qs_pg_text_ok("\xc3", 1));         /* cut short */
    qs_buf b = QS_BUF_INIT;
    qs_pg_text_append(&b, "a\0b\xffz\xc3", 6);
    ASSERT_EQ_MEM("a\xef\xbf\xbd"
                  "b\xef\xbf\xbdz\xef\xbf\xbd",
                  12, b.p, b.len);
    qs_buf_reset(&b);
    qs_pg_text_append(&b, "é", 2);
    ASSERT_EQ_MEM("é", 2, b.p, b.len);
    qs_buf_free(&b);
}

TEST(arrays_round_trip)
{
    qs_buf b = QS_BUF_INIT;
    qs_pg_array a;
    qs_pg_array_begin(&a, &b, QS_PG_TEXT);
    qs_pg_array_text(&a, "one", 3);
    qs_pg_array_null(&a);
    qs_pg_array_text(&a, "", 0);
    qs_pg_array_text(&a, "x\xff", 2);
    qs_pg_array_end(&a);
    qs_pg_array_reader r;
    ASSERT(qs_pg_array_open((qs_pg_value){b.p, (int)b.len}, QS_PG_TEXT, &r));
    ASSERT(!qs_pg_array_open((qs_pg_value){b.p, (int)b.len}, QS_PG_INT8, &r));
    ASSERT(qs_pg_array_open((qs_pg_value){b.p, (int)b.len}, QS_PG_TEXT, &r));
    ASSERT_EQ_INT(4, r.left);
    qs_pg_value e;
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT_EQ_MEM("one", 3, e.p, (size_t)e.len);
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT_EQ_INT(-1, e.len);
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT_EQ_INT(0, e.len);
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT_EQ_MEM("x\xef\xbf\xbd", 4, e.p, (size_t)e.len);
    ASSERT_EQ_INT(0, qs_pg_array_next(&r, &e));
    /* The header says there are NULLs. */
    ASSERT_EQ_MEM("\0\0\0\1\0\0\0\1\0\0\0\x19\0\0\0\4\0\0\0\1", 20, b.p, 20);

    /* Integers and booleans. */
    qs_buf_reset(&b);
    qs_pg_array_begin(&a, &b, QS_PG_INT8);
    qs_pg_array_i64(&a, -2);
    qs_pg_array_i64(&a, INT64_MAX);
    qs_pg_array_end(&a);
    ASSERT(qs_pg_array_open((qs_pg_value){b.p, (int)b.len}, QS_PG_INT8, &r));
    int64_t v = 0;
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT(qs_pg_get_i64(e, &v) && v == -2);
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT(qs_pg_get_i64(e, &v) && v == INT64_MAX);
    ASSERT_EQ_INT(0, qs_pg_array_next(&r, &e));
    qs_buf_reset(&b);
    qs_pg_array_begin(&a, &b, QS_PG_BOOL);
    qs_pg_array_bool(&a, true);
    qs_pg_array_i32(&a, 7); /* any element type can be written; the reader checks it */
    qs_pg_array_end(&a);
    ASSERT(qs_pg_array_open((qs_pg_value){b.p, (int)b.len}, QS_PG_BOOL, &r));
    bool flag = false;
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT(qs_pg_get_bool(e, &flag) && flag);
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT(!qs_pg_get_bool(e, &flag));

    /* An empty array has no dimensions. */
    qs_buf_reset(&b);
    qs_pg_array_begin(&a, &b, QS_PG_TEXT);
    qs_pg_array_end(&a);
    ASSERT_EQ_MEM("\0\0\0\0\0\0\0\0\0\0\0\x19", 12, b.p, b.len);
    ASSERT(qs_pg_array_open((qs_pg_value){b.p, (int)b.len}, QS_PG_TEXT, &r));
    ASSERT_EQ_INT(0, qs_pg_array_next(&r, &e));
    qs_buf_free(&b);
}

TEST(malformed_arrays_are_refused)
{
    static const struct {
        const char *bytes;
        int len;
    } bad[] = {
        {"", 0},
        {"\0\0\0\1\0\0\0\0\0\0\0\x19", 12},                         /* no dimension */
        {"\0\0\0\2\0\0\0\0\0\0\0\x19\0\0\0\1\0\0\0\1", 20},         /* two dimensions */
        {"\xff\xff\xff\xff\0\0\0\0\0\0\0\x19", 12},                 /* negative */
        {"\0\0\0\1\0\0\0\0\0\0\0\x19\x80\0\0\0\0\0\0\1", 20},       /* negative size */
        {"\0\0\0\0\0\0\0\0\0\0\0\x19x", 13},                        /* bytes after nothing */
        {"\0\0\0\1\0\0\0\0\0\0\0\x19\0\0\0\2\0\0\0\1\0\0\0\0", 24}, /* 2 in 4 bytes */
        {NULL, -1},                                                 /* NULL */
    };
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++) {
        qs_pg_array_reader r;
        qs_pg_value e;
        if (qs_pg_array_open((qs_pg_value){bad[i].bytes, bad[i].len}, QS_PG_TEXT, &r))
            ASSERT_EQ_INT(-1, qs_pg_array_next(&r, &e));
    }
    /* A size the bytes cannot hold is refused at once: callers allocate by it. */
    static const char huge[] = "\0\0\0\1\0\0\0\0\0\0\0\x19\x7f\0\0\0\0\0\0\1\0\0\0\0";
    qs_pg_array_reader big;
    ASSERT(!qs_pg_array_open((qs_pg_value){huge, (int)sizeof(huge) - 1}, QS_PG_TEXT, &big));
    /* Elements that run past the end, or a bad length. */
    static const char past[] = "\0\0\0\1\0\0\0\0\0\0\0\x19\0\0\0\1\0\0\0\1\0\0\0\5ab";
    static const char neg[] = "\0\0\0\1\0\0\0\0\0\0\0\x19\0\0\0\1\0\0\0\1\xff\xff\xff\xfe";
    static const char extra[] = "\0\0\0\1\0\0\0\0\0\0\0\x19\0\0\0\1\0\0\0\1\0\0\0\1ab";
    qs_pg_array_reader r;
    qs_pg_value e;
    ASSERT(qs_pg_array_open((qs_pg_value){past, (int)sizeof(past) - 1}, QS_PG_TEXT, &r));
    ASSERT_EQ_INT(-1, qs_pg_array_next(&r, &e));
    ASSERT(qs_pg_array_open((qs_pg_value){neg, (int)sizeof(neg) - 1}, QS_PG_TEXT, &r));
    ASSERT_EQ_INT(-1, qs_pg_array_next(&r, &e));
    ASSERT(qs_pg_array_open((qs_pg_value){extra, (int)sizeof(extra) - 1}, QS_PG_TEXT, &r));
    ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    ASSERT_EQ_INT(-1, qs_pg_array_next(&r, &e)); /* a byte after the last element */
}

static qs_update *sample_update(const char *id, bool with_type)
{
    qs_update *u = qs_update_new();
    qs_update_add_topic(u, "https://example.com/books/1", 27);
    qs_update_add_topic(u, "urn:alt", 7);
    qs_update_set_id(u, id, strlen(id));
    if (with_type)
        qs_update_set_type(u, "created", 7);
    qs_update_set_data(u, "line1\nline2", 11);
    u->is_private = with_type;
    u->retry = with_type ? 2500 : 0;
    qs_update_finalize(u);
    return u;
}

/* The n-th element (0-based) of a binary array parameter. */
static qs_pg_value element(const qs_pg_params *p, int param, int n, uint32_t oid)
{
    qs_pg_array_reader r;
    qs_pg_value e = {NULL, -2};
    ASSERT(qs_pg_array_open((qs_pg_value){p->values[param], p->lengths[param]}, oid, &r));
    for (int i = 0; i <= n; i++)
        ASSERT_EQ_INT(1, qs_pg_array_next(&r, &e));
    return e;
}

TEST(publish_parameters)
{
    qs_update *u[2] = {sample_update("a", true), sample_update("b\xff", false)};
    qs_pg_params p = {0};
    qs_pg_publish_params(&p, u, 2);
    ASSERT_EQ_INT(QS_PG_PUBLISH_NPARAMS, p.n);
    for (int i = 0; i < p.n; i++)
        ASSERT_EQ_INT(1, p.formats[i]);
    int64_t v = 0;
    ASSERT(qs_pg_get_i64((qs_pg_value){p.values[0], p.lengths[0]}, &v) && v == 2);
    qs_pg_value e = element(&p, 1, 1, QS_PG_TEXT);
    ASSERT_EQ_MEM("b\xef\xbf\xbd", 4, e.p, (size_t)e.len);
    e = element(&p, 2, 3, QS_PG_TEXT); /* the second update's second topic */
    ASSERT_EQ_MEM("urn:alt", 7, e.p, (size_t)e.len);
    /* Topic ranges: [1, 2] then [3, 4]. */
    static const int32_t ranges[2][2] = {{1, 3}, {2, 4}};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++) {
            e = element(&p, 3 + k, i, QS_PG_INT4);
            ASSERT_EQ_INT(4, e.len);
            ASSERT_EQ_INT(ranges[k][i],
                          (int32_t)((uint32_t)(unsigned char)e.p[0] << 24 |
                                    (uint32_t)(unsigned char)e.p[1] << 16 |
                                    (uint32_t)(unsigned char)e.p[2] << 8 | (unsigned char)e.p[3]));
        }
    bool flag = false;
    ASSERT(qs_pg_get_bool(element(&p, 5, 0, QS_PG_BOOL), &flag) && flag);
    ASSERT(qs_pg_get_bool(element(&p, 5, 1, QS_PG_BOOL), &flag) && !flag);
    e = element(&p, 6, 0, QS_PG_TEXT);
    ASSERT_EQ_MEM("created", 7, e.p, (size_t)e.len);
    ASSERT_EQ_INT(-1, element(&p, 6, 1, QS_PG_TEXT).len);
    ASSERT(qs_pg_get_i64(element(&p, 7, 0, QS_PG_INT8), &v) && v == 2500);
    ASSERT_EQ_INT(-1, element(&p, 7, 1, QS_PG_INT8).len);
    e = element(&p, 8, 1, QS_PG_TEXT);
    ASSERT_EQ_MEM("line1\nline2", 11, e.p, (size_t)e.len);
    ASSERT(p.lengths[9] > 0); /* the records for the notification */
    /* Parameters are reused for the next group. */
    qs_pg_publish_params(&p, u, 1);
    ASSERT(qs_pg_get_i64((qs_pg_value){p.values[0], p.lengths[0]}, &v) && v == 1);
    qs_pg_params_free(&p);
    qs_update_unref(u[0]);
    qs_update_unref(u[1]);
}

/* A row as the server returns it for an update. */
typedef struct row {
    qs_buf seq, topics, priv, retry;
    qs_pg_value cols[QS_PG_UPDATE_COLS];
} row;

static void row_init(row *r, int64_t seq, const char *id, const char *type, int64_t retry)
{
    memset(r, 0, sizeof(*r));
    qs_pg_put_i64(&r->seq, seq);
    qs_pg_array a;
    qs_pg_array_begin(&a, &r->topics, QS_PG_TEXT);
    qs_pg_array_text(&a, "https://example.com/books/1", 27);
    qs_pg_array_text(&a, "urn:alt", 7);
    qs_pg_array_end(&a);
    qs_buf_append_char(&r->priv, 1);
    qs_pg_put_i64(&r->retry, retry);
    r->cols[QS_PG_COL_SEQ] = (qs_pg_value){r->seq.p, (int)r->seq.len};
    r->cols[QS_PG_COL_ID] = (qs_pg_value){id, (int)strlen(id)};
    r->cols[QS_PG_COL_TOPICS] = (qs_pg_value){r->topics.p, (int)r->topics.len};
    r->cols[QS_PG_COL_PRIVATE] = (qs_pg_value){r->priv.p, 1};
    r->cols[QS_PG_COL_TYPE] =
        type ? (qs_pg_value){type, (int)strlen(type)} : (qs_pg_value){NULL, -1};
    r->cols[QS_PG_COL_RETRY] = retry ? (qs_pg_value){r->retry.p, 8} : (qs_pg_value){NULL, -1};
    r->cols[QS_PG_COL_DATA] = (qs_pg_value){"line1\nline2", 11};
}

static void row_free(row *r)
{
    qs_buf_free(&r->seq);
    qs_buf_free(&r->topics);
    qs_buf_free(&r->priv);
    qs_buf_free(&r->retry);
}

TEST(rows_become_updates)
{
    row r;
    row_init(&r, 42, "custom-id", "created", 2500);
    uint64_t seq = 0;
    qs_update *got = qs_pg_update_from_row(r.cols, &seq);
    ASSERT(got != NULL);
    ASSERT_EQ_INT(42, seq);
    ASSERT_EQ_INT(42, got->seq);
    qs_update *want = sample_update("custom-id", true);
    ASSERT_EQ_STR(want->id, got->id);
    ASSERT_EQ_INT(2, got->n_topics);
    ASSERT_EQ_STR("urn:alt", got->topics[1]);
    ASSERT(got->is_private);
    ASSERT_EQ_INT(2500, got->retry);
    ASSERT_EQ_MEM(want->frame->data, want->frame->len, got->frame->data, got->frame->len);
    qs_update_unref(want);
    qs_update_unref(got);
    row_free(&r);

    /* No type and no retry. */
    row_init(&r, 1, "x", NULL, 0);
    got = qs_pg_update_from_row(r.cols, &seq);
    ASSERT(got && got->type == NULL && got->retry == 0);
    qs_update_unref(got);
    row_free(&r);
}

TEST(rows_that_are_not_events_are_refused)
{
    row r;
    uint64_t seq = 7;
    /* Ids and types written by hand with a line break would break the event stream. */
    static const char *const bad_ids[] = {"a\nb", "a\rb"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad_ids); i++) {
        row_init(&r, 5, bad_ids[i], NULL, 0);
        ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
        ASSERT_EQ_INT(5, seq); /* the seq is still read: the bus moves past it */
        row_free(&r);
    }
    row_init(&r, 5, "id", "a\nb", 0);
    ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
    row_free(&r);
    /* NULL columns, bad widths, a seq that is not positive. */
    for (int col = 0; col < QS_PG_UPDATE_COLS; col++) {
        if (col == QS_PG_COL_TYPE || col == QS_PG_COL_RETRY)
            continue;
        row_init(&r, 5, "id", NULL, 0);
        r.cols[col] = (qs_pg_value){NULL, -1};
        ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
        row_free(&r);
    }
    row_init(&r, 5, "id", NULL, 0);
    r.cols[QS_PG_COL_PRIVATE].len = 4;
    ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
    row_free(&r);
    row_init(&r, 0, "id", NULL, 0);
    ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
    ASSERT_EQ_INT(0, seq);
    row_free(&r);
    row_init(&r, 5, "id", NULL, -1);
    r.cols[QS_PG_COL_RETRY] = (qs_pg_value){r.retry.p, 8};
    ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
    row_free(&r);
    /* No topic, or a NULL topic. */
    row_init(&r, 5, "id", NULL, 0);
    qs_buf_reset(&r.topics);
    qs_pg_array a;
    qs_pg_array_begin(&a, &r.topics, QS_PG_TEXT);
    qs_pg_array_end(&a);
    r.cols[QS_PG_COL_TOPICS] = (qs_pg_value){r.topics.p, (int)r.topics.len};
    ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
    qs_buf_reset(&r.topics);
    qs_pg_array_begin(&a, &r.topics, QS_PG_TEXT);
    qs_pg_array_text(&a, "t", 1);
    qs_pg_array_null(&a);
    qs_pg_array_end(&a);
    r.cols[QS_PG_COL_TOPICS] = (qs_pg_value){r.topics.p, (int)r.topics.len};
    ASSERT(qs_pg_update_from_row(r.cols, &seq) == NULL);
    row_free(&r);
}

TEST(presence_rows_and_their_order)
{
    qs_buf topics = QS_BUF_INIT, ts = QS_BUF_INIT;
    qs_pg_array a;
    qs_pg_array_begin(&a, &topics, QS_PG_TEXT);
    qs_pg_array_text(&a, "urn:a", 5);
    qs_pg_array_text(&a, "urn:b", 5);
    qs_pg_array_end(&a);
    int64_t us = INT64_C(1764500000123456);
    qs_pg_put_i64(&ts, qs_pg_timestamp_from_unix_us(us));
    const char *payload = "{ \"b\": 1,\n \"a\": [true, null] }";
    qs_pg_value cols[QS_PG_PRESENCE_COLS] = {
        {"urn:uuid:s1", 11},
        {topics.p, (int)topics.len},
        {payload, (int)strlen(payload)},
        {ts.p, 8},
        {"node-b", 6},
    };
    qs_pg_ranked v[3];
    ASSERT_EQ_INT(0, qs_pg_presence_from_row(cols, &v[0]));
    ASSERT_EQ_STR("urn:uuid:s1", v[0].e.subscriber);
    ASSERT_EQ_INT(2, v[0].e.n_topics);
    ASSERT_EQ_STR("urn:b", v[0].e.topics[1]);
    ASSERT_EQ_STR("{\"b\":1,\"a\":[true,null]}", v[0].e.payload);
    ASSERT_EQ_INT(us, v[0].e.order);
    ASSERT_EQ_STR("node-b", v[0].node);
    /* No payload; the same time on another node; an earlier one. */
    cols[QS_PG_PCOL_PAYLOAD] = (qs_pg_value){NULL, -1};
    cols[QS_PG_PCOL_NODE] = (qs_pg_value){"node-a", 6};
    cols[QS_PG_PCOL_SUBSCRIBER] = (qs_pg_value){"urn:uuid:s2", 11};
    ASSERT_EQ_INT(0, qs_pg_presence_from_row(cols, &v[1]));
    ASSERT(v[1].e.payload == NULL);
    qs_buf_reset(&ts);
    qs_pg_put_i64(&ts, qs_pg_timestamp_from_unix_us(us - 1));
    cols[QS_PG_PCOL_REGISTERED] = (qs_pg_value){ts.p, 8};
    cols[QS_PG_PCOL_NODE] = (qs_pg_value){"node-z", 6};
    cols[QS_PG_PCOL_SUBSCRIBER] = (qs_pg_value){"urn:uuid:s3", 11};
    ASSERT_EQ_INT(0, qs_pg_presence_from_row(cols, &v[2]));
    qs_pg_presence_sort(v, 3);
    ASSERT_EQ_STR("urn:uuid:s3", v[0].e.subscriber);
    ASSERT_EQ_STR("urn:uuid:s2", v[1].e.subscriber); /* same time: node-a before node-b */
    ASSERT_EQ_STR("urn:uuid:s1", v[2].e.subscriber);
    for (int i = 0; i < 3; i++) {
        qs_presence_entry_clear(&v[i].e);
        free(v[i].node);
    }
    /* Malformed: not JSON, a NULL topic, no time. */
    qs_pg_ranked bad;
    cols[QS_PG_PCOL_PAYLOAD] = (qs_pg_value){"{nope", 5};
    ASSERT_EQ_INT(-1, qs_pg_presence_from_row(cols, &bad));
    cols[QS_PG_PCOL_PAYLOAD] = (qs_pg_value){NULL, -1};
    cols[QS_PG_PCOL_REGISTERED] = (qs_pg_value){NULL, -1};
    ASSERT_EQ_INT(-1, qs_pg_presence_from_row(cols, &bad));
    cols[QS_PG_PCOL_REGISTERED] = (qs_pg_value){ts.p, 8};
    qs_buf_reset(&topics);
    qs_pg_array_begin(&a, &topics, QS_PG_TEXT);
    qs_pg_array_null(&a);
    qs_pg_array_end(&a);
    cols[QS_PG_PCOL_TOPICS] = (qs_pg_value){topics.p, (int)topics.len};
    ASSERT_EQ_INT(-1, qs_pg_presence_from_row(cols, &bad));
    qs_buf_free(&topics);
    qs_buf_free(&ts);
}

TEST(notifications_carry_a_group_as_stored)
{
    qs_update *u[2] = {sample_update("a", true), sample_update("b\xff", false)};
    qs_buf rec = QS_BUF_INIT;
    qs_pg_notify_records(u, 2, &rec);
    ASSERT(rec.len > 0 && rec.len <= QS_PG_NOTIFY_RECORDS_MAX);
    char *payload = qs_xasprintf("41 %s", qs_buf_cstr(&rec));
    uint64_t seq = 0;
    qs_update **got = NULL;
    size_t n = 0;
    ASSERT_EQ_INT(1, qs_pg_notify_parse(payload, &seq, &got, &n));
    ASSERT_EQ_INT(41, seq);
    ASSERT_EQ_INT(2, n);
    ASSERT_EQ_INT(41, got[0]->seq);
    ASSERT_EQ_INT(42, got[1]->seq);
    /* What a notification carries is what the row holds: the same frame as the row's. */
    ASSERT_EQ_MEM(u[0]->frame->data, u[0]->frame->len, got[0]->frame->data, got[0]->frame->len);
    ASSERT_EQ_STR("b\xef\xbf\xbd", got[1]->id);
    row r;
    row_init(&r, 42, "b\xef\xbf\xbd", NULL, 0);
    qs_buf_reset(&r.priv);
    qs_buf_append_char(&r.priv, 0);
    uint64_t rseq = 0;
    qs_update *from_row = qs_pg_update_from_row(r.cols, &rseq);
    ASSERT(from_row != NULL);
    ASSERT_EQ_MEM(from_row->frame->data, from_row->frame->len, got[1]->frame->data,
                  got[1]->frame->len);
    qs_update_unref(from_row);
    row_free(&r);
    for (size_t i = 0; i < n; i++)
        qs_update_unref(got[i]);
    free(got);
    free(payload);

    /* Only the seq of the last update. */
    ASSERT_EQ_INT(0, qs_pg_notify_parse("12345", &seq, &got, &n));
    ASSERT_EQ_INT(12345, seq);
    ASSERT(got == NULL && n == 0);
    /* Malformed. */
    static const char *const bad[] = {"",
                                      "0",
                                      "x",
                                      "12 ",
                                      "12  AAAA",
                                      "-1",
                                      "12x",
                                      "12 !!!!",
                                      "12 AAAAAAA",
                                      "99999999999999999999",
                                      "9223372036854775808"};
    for (size_t i = 0; i < QS_ARRAY_LEN(bad); i++)
        ASSERT_EQ_INT(-1, qs_pg_notify_parse(bad[i], &seq, &got, &n));
    /* A record with a line break in its id is not delivered from a notification. */
    qs_update *crlf = qs_update_new();
    qs_update_add_topic(crlf, "t", 1);
    qs_update_set_id(crlf, "a\nb", 3);
    qs_update_finalize(crlf);
    qs_buf_reset(&rec);
    qs_pg_notify_records(&crlf, 1, &rec);
    payload = qs_xasprintf("7 %s", qs_buf_cstr(&rec));
    ASSERT_EQ_INT(-1, qs_pg_notify_parse(payload, &seq, &got, &n));
    free(payload);
    qs_update_unref(crlf);

    /* A group too large for a notification sends none. */
    qs_update *big = qs_update_new();
    qs_update_add_topic(big, "t", 1);
    qs_update_set_id(big, "big", 3);
    char data[7000];
    memset(data, 'x', sizeof(data));
    qs_update_set_data(big, data, sizeof(data));
    qs_update_finalize(big);
    qs_buf_reset(&rec);
    qs_pg_notify_records(&big, 1, &rec);
    ASSERT_EQ_INT(0, rec.len);
    qs_update_unref(big);
    qs_buf_free(&rec);
    qs_update_unref(u[0]);
    qs_update_unref(u[1]);
}

TEST(timestamps)
{
    ASSERT_EQ_INT(0, qs_pg_timestamp_from_unix_us(INT64_C(946684800000000)));
    ASSERT_EQ_INT(INT64_C(946684800000000), qs_pg_timestamp_to_unix_us(0));
    ASSERT_EQ_INT(-1000000, qs_pg_timestamp_from_unix_us(INT64_C(946684799000000)));
}

/* ------------------------------------------------------------ errors */

TEST(sqlstates)
{
    static const char *const transient[] = {"08006", "08001", "40001", "40P01", "53300", "57P01",
                                            "57P03", "57014", "55P03", "25006", "58030"};
    for (size_t i = 0; i < QS_ARRAY_LEN(transient); i++)
        ASSERT(qs_pg_sqlstate_transient(transient[i]));
    static const char *const refused[] = {"42501", "42P01", "23505", "22021",
                                          "XX000", "",      "0800",  NULL};
    for (size_t i = 0; i < QS_ARRAY_LEN(refused); i++)
        ASSERT(!qs_pg_sqlstate_transient(refused[i]));
}

TEST(messages_on_one_line)
{
    char out[64];
    ASSERT_EQ_STR("connection to server failed: FATAL: no",
                  qs_pg_one_line(out, sizeof(out), "connection to server failed:\n\tFATAL:  no\n"));
    ASSERT_EQ_STR("", qs_pg_one_line(out, sizeof(out), NULL));
    ASSERT_EQ_STR("abc", qs_pg_one_line(out, 4, "abcdef"));
    ASSERT_EQ_STR("ab", qs_pg_one_line(out, 4, "ab    cd"));
}
