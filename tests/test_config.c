/* test_config.c - unit tests for the configuration module. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringcast/config.h"

#ifndef RC_TEST_DATA_DIR
#define RC_TEST_DATA_DIR "tests/data"
#endif
#define DATA(f) RC_TEST_DATA_DIR "/config/" f

/* One config per test, freed in teardown whatever happened. */
struct fixture {
    struct rc_config c;
    struct rc_err err;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    rc_config_defaults(&fx->c);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    rc_config_fini(&fx->c);
    free(fx);
    return 0;
}

/* Set one key and expect success. */
static void set_ok(struct fixture *fx, const char *key, const char *value)
{
    int rc = rc_config_set(&fx->c, key, value, &fx->err);
    if (rc != 0)
        fail_msg("%s=%s: %s", key, value, fx->err.msg);
}

/* Set one key and expect -EINVAL. */
static void set_bad(struct fixture *fx, const char *key, const char *value)
{
    memset(&fx->err, 0, sizeof(fx->err));
    assert_int_equal(rc_config_set(&fx->c, key, value, &fx->err), -EINVAL);
    assert_string_equal(fx->err.code, "bad_config");
}

static int load(struct fixture *fx, char **argv, char **envp)
{
    int argc = 0;

    while (argv[argc])
        argc++;
    rc_config_fini(&fx->c);
    memset(&fx->err, 0, sizeof(fx->err));
    return rc_config_load(&fx->c, argc, argv, envp, &fx->err);
}

/* ---- defaults ---------------------------------------------------------------- */

static void test_config_defaults_match_the_documented_values(void **state)
{
    struct fixture *fx = *state;
    const struct rc_config *c = &fx->c;

    assert_string_equal(c->listen_address, "0.0.0.0");
    assert_int_equal(c->port, 8080);
    assert_int_equal(c->shards, 0);
    assert_int_equal(c->log_level, RC_LOG_INFO);
    assert_int_equal(c->log_format, RC_LOG_LOGFMT);
    assert_string_equal(c->log_file, "");
    assert_int_equal(c->max_request_line, 8192);
    assert_int_equal(c->max_header_bytes, 16384);
    assert_int_equal(c->max_headers, 64);
    assert_int_equal(c->max_body_bytes, 1048576);
    assert_int_equal(c->max_connections, 100000);
    assert_int_equal(c->max_connections_per_ip, 0);
    assert_int_equal(c->request_timeout, 10000);
    assert_int_equal(c->keepalive_timeout, 75000);
    assert_int_equal(c->handshake_timeout, 10000);
    assert_int_equal(c->drain_timeout, 10000);
    assert_int_equal(c->ws_max_message, 65536);
    assert_int_equal(c->heartbeat_interval, 30000);
    assert_int_equal(c->heartbeat_timeout, 90000);
    assert_int_equal(c->allowed_origins.n, 0);
    assert_null(c->allowed_origins.items);
    assert_int_equal(c->max_subscriptions, 1000);
    assert_int_equal(c->max_pending_bytes, 4194304);
    assert_false(c->client_publish);
    assert_int_equal(c->api_keys.n, 0);
    assert_int_equal(c->sse_retry, 3000);
    assert_int_equal(c->recv_buffer_size, 16384);
    assert_int_equal(c->recv_buffers, 256);
    assert_int_equal(c->ring_entries, 1024);
    assert_string_equal(c->data_dir, "./data");
    assert_int_equal(c->store_synchronous, RC_CONFIG_STORE_SYNC_FULL);
    assert_int_equal(c->store_purge_interval, 60000);
    assert_int_equal(c->store_max_batch, 4096);
    assert_int_equal(c->max_user_subscriptions, 1000);
    assert_string_equal(c->jwt_secret, "");
    assert_string_equal(c->jwt_public_key_file, "");
    assert_int_equal(c->jwt_leeway, 30000);
    assert_string_equal(c->jwt_issuer, "");
    assert_string_equal(c->jwt_audience, "");
    assert_false(c->auth_required);
    assert_int_equal(c->auth_timeout, 10000);
    assert_int_equal(c->anonymous, RC_CONFIG_ANON_SUBSCRIBE);
    assert_int_equal(c->token_grace, 30000);
    assert_string_equal(c->personal_topics, "user.{sub}.>");
    assert_int_equal(c->rules.n, 0);
    assert_int_equal(c->message_rate, 200);
    assert_int_equal(c->message_burst, 2000);
    assert_int_equal(c->rate_limit_close_after, 100);
    assert_int_equal(c->rate_limit_window, 10000);
    assert_int_equal(c->handshake_rate_per_ip, 0);
    assert_false(c->help);
    assert_false(c->version);
    assert_false(c->check_config);
    assert_string_equal(c->config_path, "");
}

static void test_config_defaults_pass_validation(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_validate(&fx->c, &fx->err), 0);
}

/* ---- bool -------------------------------------------------------------------- */

static void test_config_bool_accepts_all_spellings(void **state)
{
    struct fixture *fx = *state;
    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", "ON"};
    static const char *const no[] = {"false", "no", "off", "0", "False", "NO", "Off"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        set_ok(fx, "client_publish", "false");
        set_ok(fx, "client_publish", yes[i]);
        assert_true(fx->c.client_publish);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        set_ok(fx, "client_publish", "true");
        set_ok(fx, "client_publish", no[i]);
        assert_false(fx->c.client_publish);
    }
}

static void test_config_bool_rejects_other_words(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "client_publish", "maybe");
    assert_string_equal(fx->err.msg, "config: client_publish=maybe is not a boolean; use true or "
                                     "false (or yes/no, on/off, 1/0)");
    set_bad(fx, "client_publish", "");
    set_bad(fx, "client_publish", "true ");
    set_bad(fx, "client_publish", "2");
    assert_false(fx->c.client_publish);
}

/* ---- uint ---------------------------------------------------------------------- */

static void test_config_uint_parses_decimal_within_range(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "shards", "256");
    assert_int_equal(fx->c.shards, 256);
    set_ok(fx, "shards", "0");
    assert_int_equal(fx->c.shards, 0);
    set_ok(fx, "shards", "007");
    assert_int_equal(fx->c.shards, 7);
    set_ok(fx, "max_connections", "10000000");
    assert_int_equal(fx->c.max_connections, 10000000);
}

static void test_config_uint_rejects_non_numbers_naming_the_key(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "shards", "0x");
    assert_string_equal(fx->err.msg,
                        "config: shards=0x is not a number; use 0..256 (0 = one per CPU)");
    set_bad(fx, "shards", "-1");
    set_bad(fx, "shards", "+1");
    set_bad(fx, "shards", " 1");
    set_bad(fx, "shards", "");
    set_bad(fx, "shards", "1.5");
    assert_int_equal(fx->c.shards, 0);
}

static void test_config_uint_rejects_out_of_range(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "shards", "257");
    assert_string_equal(fx->err.msg,
                        "config: shards=257 is out of range; use 0..256 (0 = one per CPU)");
    set_bad(fx, "max_headers", "0");
    assert_string_equal(fx->err.msg, "config: max_headers=0 is out of range; use 1..64");
    set_bad(fx, "shards", "99999999999999999999999");
    assert_string_equal(fx->err.msg, "config: shards=99999999999999999999999 is not a number; "
                                     "use 0..256 (0 = one per CPU)");
    set_bad(fx, "max_connections", "4294967296");
    assert_int_equal(fx->c.max_connections, 100000);
}

/* ---- port ---------------------------------------------------------------------- */

static void test_config_port_accepts_0_to_65535(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "port", "0");
    assert_int_equal(fx->c.port, 0);
    set_ok(fx, "port", "65535");
    assert_int_equal(fx->c.port, 65535);
    set_ok(fx, "port", "1");
    assert_int_equal(fx->c.port, 1);
}

static void test_config_port_rejects_65536_and_words(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "port", "65536");
    assert_string_equal(fx->err.msg,
                        "config: port=65536 is out of range; use 0..65535 (0 = ephemeral)");
    set_bad(fx, "port", "http");
    assert_string_equal(fx->err.msg,
                        "config: port=http is not a number; use 0..65535 (0 = ephemeral)");
    assert_int_equal(fx->c.port, 8080);
}

/* ---- size ---------------------------------------------------------------------- */

static void test_config_size_accepts_binary_and_decimal_units(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *text;
        size_t bytes;
    } cases[] = {
        {"300", 300},        {"300B", 300},     {"8KiB", 8192},   {"8KB", 8000},
        {"8 KiB", 8192},     {"1MiB", 1048576}, {"1MB", 1000000}, {"1GiB", 1073741824},
        {"1GB", 1000000000}, {"16kib", 16384},  {"0", 0},         {"2\tMiB", 2097152},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        set_ok(fx, "max_body_bytes", cases[i].text);
        assert_int_equal(fx->c.max_body_bytes, cases[i].bytes);
    }
}

static void test_config_size_rejects_ambiguous_k_m_g(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "max_body_bytes", "8k");
    assert_string_equal(fx->err.msg, "config: max_body_bytes=8k has an ambiguous unit \"k\"; use "
                                     "KiB (1024s) or KB (1000s)");
    set_bad(fx, "max_body_bytes", "8M");
    assert_string_equal(fx->err.msg, "config: max_body_bytes=8M has an ambiguous unit \"M\"; use "
                                     "MiB (1024s) or MB (1000s)");
    set_bad(fx, "max_body_bytes", "1G");
    assert_int_equal(fx->c.max_body_bytes, 1048576);
}

static void test_config_size_rejects_bad_units_and_overflow(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "max_body_bytes", "8XB");
    assert_string_equal(fx->err.msg, "config: max_body_bytes=8XB is not a size; use bytes or a "
                                     "number with B, KB, MB, GB, KiB, MiB or GiB, in 0..1GiB");
    set_bad(fx, "max_body_bytes", "KiB");
    set_bad(fx, "max_body_bytes", "");
    set_bad(fx, "max_body_bytes", "-1");
    set_bad(fx, "max_body_bytes", "1.5MiB");
    set_bad(fx, "max_body_bytes", "18446744073709551615GiB");
    assert_string_equal(fx->err.msg, "config: max_body_bytes=18446744073709551615GiB is out of "
                                     "range; use 0..1GiB");
    set_bad(fx, "max_request_line", "255");
    assert_string_equal(fx->err.msg, "config: max_request_line=255 is out of range; use 256..1MiB");
    assert_int_equal(fx->c.max_body_bytes, 1048576);
    assert_int_equal(fx->c.max_request_line, 8192);
}

/* ---- duration ------------------------------------------------------------------ */

static void test_config_duration_accepts_ms_s_m_h(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "drain_timeout", "1500ms");
    assert_int_equal(fx->c.drain_timeout, 1500);
    set_ok(fx, "drain_timeout", "10s");
    assert_int_equal(fx->c.drain_timeout, 10000);
    set_ok(fx, "drain_timeout", "2m");
    assert_int_equal(fx->c.drain_timeout, 120000);
    set_ok(fx, "drain_timeout", "1h");
    assert_int_equal(fx->c.drain_timeout, 3600000);
    set_ok(fx, "drain_timeout", "0");
    assert_int_equal(fx->c.drain_timeout, 0);
    set_ok(fx, "drain_timeout", "5 s");
    assert_int_equal(fx->c.drain_timeout, 5000);
}

static void test_config_duration_requires_a_unit_except_zero(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "drain_timeout", "10");
    assert_string_equal(fx->err.msg, "config: drain_timeout=10 needs a unit; use ms, s, m or h "
                                     "(e.g. 10s), in 0..1h");
    assert_int_equal(fx->c.drain_timeout, 10000);
}

static void test_config_duration_rejects_bad_units_and_range(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "drain_timeout", "1d");
    assert_string_equal(fx->err.msg, "config: drain_timeout=1d is not a duration; use a number "
                                     "with ms, s, m or h (e.g. 10s), in 0..1h");
    set_bad(fx, "drain_timeout", "10S");
    set_bad(fx, "drain_timeout", "s");
    set_bad(fx, "drain_timeout", "61m");
    assert_string_equal(fx->err.msg, "config: drain_timeout=61m is out of range; use 0..1h");
    set_bad(fx, "request_timeout", "0");
    assert_string_equal(fx->err.msg, "config: request_timeout=0 is out of range; use 100ms..1h");
    set_bad(fx, "drain_timeout", "18446744073709551615h");
    assert_int_equal(fx->c.drain_timeout, 10000);
    assert_int_equal(fx->c.request_timeout, 10000);
}

/* ---- string, address, enum ------------------------------------------------------- */

static void test_config_string_accepts_text_up_to_its_limit(void **state)
{
    struct fixture *fx = *state;
    char long_path[RC_CONFIG_PATH_MAX];

    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    set_ok(fx, "log_file", long_path);
    assert_int_equal(strlen(fx->c.log_file), RC_CONFIG_PATH_MAX - 1);
    set_ok(fx, "log_file", "/var/log/ringcast é.log");
    assert_string_equal(fx->c.log_file, "/var/log/ringcast é.log");
    set_ok(fx, "log_file", "");
    assert_string_equal(fx->c.log_file, "");
}

static void test_config_string_rejects_too_long_and_control_chars(void **state)
{
    struct fixture *fx = *state;
    char long_path[RC_CONFIG_PATH_MAX + 1];

    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    set_bad(fx, "log_file", long_path);
    assert_string_equal(fx->err.msg,
                        "config: log_file is too long (1024 bytes); use at most 1023 bytes");
    set_bad(fx, "log_file", "/tmp/a\tb");
    assert_string_equal(fx->err.msg,
                        "config: log_file contains a control character (byte 6); remove it");
    assert_string_equal(fx->c.log_file, "");
}

static void test_config_address_accepts_ipv4_ipv6_localhost(void **state)
{
    struct fixture *fx = *state;
    static const char *const ok[] = {"127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1:2", "localhost"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        set_ok(fx, "listen_address", ok[i]);
        assert_string_equal(fx->c.listen_address, ok[i]);
    }
}

static void test_config_address_rejects_names_brackets_and_bad_octets(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "listen_address", "[::1]");
    assert_string_equal(fx->err.msg, "config: listen_address=[::1] is not an IP address; use an "
                                     "IPv4 or IPv6 literal without brackets (e.g. 0.0.0.0 or ::) "
                                     "or localhost");
    set_bad(fx, "listen_address", "256.0.0.1");
    set_bad(fx, "listen_address", "example.com");
    set_bad(fx, "listen_address", "");
    set_bad(fx, "listen_address", "127.0.0.1:80");
    assert_string_equal(fx->c.listen_address, "0.0.0.0");
}

static void test_config_hostport_splits_ipv4_bracketed_ipv6_and_localhost(void **state)
{
    (void)state;
    struct rc_err err = {0};
    char host[RC_CONFIG_ADDR_MAX];
    uint16_t port = 1;

    assert_int_equal(rc_config_hostport("10.0.0.5:9464", host, &port, &err), 0);
    assert_string_equal(host, "10.0.0.5");
    assert_int_equal(port, 9464);
    assert_int_equal(rc_config_hostport("[::1]:0", host, &port, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(rc_config_hostport("localhost:65535", host, &port, &err), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 65535);
}

static void test_config_hostport_rejects_names_missing_ports_and_bare_ipv6(void **state)
{
    (void)state;
    struct rc_err err = {0};
    char host[RC_CONFIG_ADDR_MAX];
    uint16_t port = 7;
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:",      ":9464",        "example.com:80", "::1:9464",
        "[::1]",     "127.0.0.1:65536", "127.0.0.1:8x", "[127.0.0.1]:80", "1.2.3.4:-1"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rc_config_hostport(bad[i], host, &port, &err), -EINVAL);
    assert_int_equal(port, 7);
    assert_string_equal(err.msg, "config: metrics_address=1.2.3.4:-1 is not host:port; use an IP "
                                 "literal and a port, e.g. 10.0.0.5:9464 or [::1]:9464, or leave "
                                 "it empty");
}

static void test_config_enum_accepts_listed_words(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "log_level", "debug");
    assert_int_equal(fx->c.log_level, RC_LOG_DEBUG);
    set_ok(fx, "log_level", "warn");
    assert_int_equal(fx->c.log_level, RC_LOG_WARN);
    set_ok(fx, "log_level", "error");
    assert_int_equal(fx->c.log_level, RC_LOG_ERROR);
    set_ok(fx, "log_format", "json");
    assert_int_equal(fx->c.log_format, RC_LOG_JSON);
    assert_string_equal(rc_config_log_level_name(RC_LOG_WARN), "warn");
    assert_string_equal(rc_config_log_format_name(RC_LOG_JSON), "json");
    assert_string_equal(rc_config_log_level_name((enum rc_log_level)9), "?");
}

static void test_config_enum_rejects_other_words_listing_the_allowed(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "log_level", "verbose");
    assert_string_equal(
        fx->err.msg, "config: log_level=verbose is not allowed; use one of: debug info warn error");
    set_bad(fx, "log_level", "DEBUG");
    set_bad(fx, "log_format", "xml");
    assert_string_equal(fx->err.msg,
                        "config: log_format=xml is not allowed; use one of: logfmt json");
    assert_int_equal(fx->c.log_level, RC_LOG_INFO);
}

/* ---- lists ------------------------------------------------------------------------ */

static void test_config_list_splits_commas_and_appends(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "allowed_origins", "https://a.example , http://b.example:8080");
    set_ok(fx, "allowed_origins", "https://c.example");
    assert_int_equal(fx->c.allowed_origins.n, 3);
    assert_string_equal(fx->c.allowed_origins.items[0], "https://a.example");
    assert_string_equal(fx->c.allowed_origins.items[1], "http://b.example:8080");
    assert_string_equal(fx->c.allowed_origins.items[2], "https://c.example");
}

static void test_config_list_empty_value_clears(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "allowed_origins", "https://a.example");
    set_ok(fx, "allowed_origins", "");
    assert_int_equal(fx->c.allowed_origins.n, 0);
}

static void test_config_list_rejects_empty_items_and_bad_origins(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "allowed_origins", "https://a.example,,https://b.example");
    assert_string_equal(fx->err.msg, "config: allowed_origins item 2 is empty; separate items "
                                     "with single commas");
    set_bad(fx, "allowed_origins", "https://a.example,");
    assert_string_equal(fx->err.msg, "config: allowed_origins ends with a comma; remove it");
    set_bad(fx, "allowed_origins", "https://a.example/");
    assert_string_equal(fx->err.msg, "config: allowed_origins item \"https://a.example/\" is not "
                                     "an origin; give scheme://host[:port] only, without a path "
                                     "or a trailing slash");
    set_bad(fx, "allowed_origins", "a.example");
    assert_int_equal(fx->c.allowed_origins.n, 0);
}

static void test_config_list_caps_the_item_count(void **state)
{
    struct fixture *fx = *state;

    for (int i = 0; i < RC_CONFIG_LIST_MAX; i++)
        set_ok(fx, "allowed_origins", "https://a.example");
    set_bad(fx, "allowed_origins", "https://b.example");
    assert_string_equal(fx->err.msg, "config: allowed_origins has more than 256 items; use fewer");
    assert_int_equal(fx->c.allowed_origins.n, RC_CONFIG_LIST_MAX);
}

static void test_config_api_key_errors_do_not_echo_the_key(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "api_keys", "0123456789abcdef0,short-secret");
    assert_string_equal(fx->err.msg, "config: api_keys item 2 is shorter than 16 characters; use "
                                     "a long random key");
    assert_null(strstr(fx->err.msg, "short-secret"));
    set_ok(fx, "api_keys", "0123456789abcdef0");
    assert_int_equal(fx->c.api_keys.n, 1);
}

static void test_config_set_unknown_key_suggests_the_nearest(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "prot", "1");
    assert_string_equal(fx->err.msg, "config: unknown key \"prot\" (did you mean port?); see "
                                     "ringcast --help for the keys");
    set_bad(fx, "zzzzzzzz", "1");
    assert_string_equal(fx->err.msg,
                        "config: unknown key \"zzzzzzzz\"; see ringcast --help for the keys");
    set_bad(fx, "help", "1");
    set_bad(fx, "config_path", "/x");
}

/* ---- file ------------------------------------------------------------------------- */

static void test_config_file_reads_comments_quotes_and_lists(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("good.conf"), &fx->err), 0);
    assert_string_equal(fx->c.listen_address, "127.0.0.1");
    assert_int_equal(fx->c.port, 9001);
    assert_int_equal(fx->c.shards, 4);
    assert_int_equal(fx->c.log_level, RC_LOG_DEBUG);
    assert_int_equal(fx->c.log_format, RC_LOG_JSON);
    assert_string_equal(fx->c.log_file, "/var/log/ring cast/#1 \"main\" \\ log");
    assert_int_equal(fx->c.max_body_bytes, 2 * 1048576);
    assert_int_equal(fx->c.request_timeout, 1500);
    assert_int_equal(fx->c.keepalive_timeout, 0);
    assert_true(fx->c.client_publish);
    assert_int_equal(fx->c.allowed_origins.n, 3);
    assert_string_equal(fx->c.allowed_origins.items[0], "https://a.example");
    assert_string_equal(fx->c.allowed_origins.items[1], "https://b.example:8443");
    assert_string_equal(fx->c.allowed_origins.items[2], "http://c.example");
    assert_int_equal(fx->c.api_keys.n, 1);
    assert_string_equal(fx->c.api_keys.items[0], "0123456789abcdef0123");
    assert_int_equal(fx->c.max_subscriptions, 50);
    assert_string_equal(fx->c.config_path, DATA("good.conf"));
}

static void test_config_file_list_first_mention_replaces_earlier_value(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "allowed_origins", "https://old.example");
    assert_int_equal(rc_config_load_file(&fx->c, DATA("good.conf"), &fx->err), 0);
    assert_int_equal(fx->c.allowed_origins.n, 3);
    assert_string_equal(fx->c.allowed_origins.items[0], "https://a.example");
}

static void test_config_file_rejects_duplicate_scalar_key(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("dup_scalar.conf"), &fx->err), -EINVAL);
    assert_string_equal(
        fx->err.msg,
        "config file " DATA(
            "dup_scalar.conf") " line 7: key "
                               "\"port\" given twice (first on line 2); only list keys may "
                               "repeat");
}

static void test_config_file_unknown_key_names_the_line(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("unknown_key.conf"), &fx->err), -EINVAL);
    assert_string_equal(
        fx->err.msg,
        "config file " DATA(
            "unknown_key.conf") " line 7: unknown key "
                                "\"prot\" (did you mean port?); see ringcast --help for the "
                                "keys");
}

static void test_config_file_bad_value_names_key_and_line(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("bad_value.conf"), &fx->err), -EINVAL);
    assert_string_equal(
        fx->err.msg,
        "config file " DATA("bad_value.conf") " line 1: shards=0x is "
                                              "not a number; use 0..256 (0 = one per CPU)");
}

static void test_config_file_missing_is_enoent(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("no_such.conf"), &fx->err), -ENOENT);
    assert_string_equal(
        fx->err.msg, "config file " DATA(
                         "no_such.conf") ": cannot open: No such "
                                         "file or directory; check the path given with --config or "
                                         "RINGCAST_CONFIG");
}

static void test_config_file_rejects_line_over_4096_bytes(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("long_line.conf"), &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg,
                        "config file " DATA("long_line.conf") " line 2: the line is "
                                                              "longer than 4096 bytes; shorten it");
}

static void test_config_file_rejects_file_over_1mib(void **state)
{
    struct fixture *fx = *state;
    char path[] = "/tmp/test_config_bigXXXXXX";
    int fd = mkstemp(path);
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    for (int i = 0; i < RC_CONFIG_FILE_MAX / 64 + 1; i++)
        fprintf(f, "# %061d\n", i);
    fclose(f);
    assert_int_equal(rc_config_load_file(&fx->c, path, &fx->err), -EINVAL);
    unlink(path);
    assert_non_null(strstr(fx->err.msg, "is larger than 1 MiB"));
}

/* genconfig's file: every key once, and loading it over other values gives the defaults. */
static void test_config_template_loads_as_the_defaults(void **state)
{
    struct fixture *fx = *state;
    char path[] = "/tmp/test_config_templateXXXXXX";
    int fd = mkstemp(path);
    struct rc_config d;

    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    rc_config_template(f);
    fclose(f);
    assert_int_equal(rc_config_set(&fx->c, "port", "9999", &fx->err), 0);
    assert_int_equal(rc_config_set(&fx->c, "rules", "a.> subscribe=none", &fx->err), 0);
    assert_int_equal(rc_config_load_file(&fx->c, path, &fx->err), 0);
    unlink(path);
    rc_config_defaults(&d);
    assert_true(rc_config_equal(&fx->c, &d));
    rc_config_fini(&d);
}

static void test_config_file_accepts_crlf_and_bom(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("crlf.conf"), &fx->err), 0);
    assert_int_equal(fx->c.port, 7000);
    assert_int_equal(fx->c.log_level, RC_LOG_WARN);
}

static void test_config_file_rejects_unterminated_quote(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("bad_quote.conf"), &fx->err), -EINVAL);
    assert_string_equal(
        fx->err.msg,
        "config file " DATA("bad_quote.conf") " line 2: the quoted "
                                              "value has no closing quote; add \" at the end");
}

static void test_config_file_rejects_unknown_escape(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("bad_escape.conf"), &fx->err), -EINVAL);
    assert_string_equal(
        fx->err.msg,
        "config file " DATA(
            "bad_escape.conf") " line 1: unknown "
                               "escape \"\\n\" in a quoted value; only \\\" and \\\\ are "
                               "allowed");
}

static void test_config_file_rejects_line_without_equals(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("no_equals.conf"), &fx->err), -EINVAL);
    assert_string_equal(
        fx->err.msg, "config file " DATA(
                         "no_equals.conf") " line 1: expected "
                                           "\"key = value\"; see ringcast --help for the format");
}

static void test_config_file_rejects_nul_byte(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(rc_config_load_file(&fx->c, DATA("nul.conf"), &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg,
                        "config file " DATA("nul.conf") " line 2: the line contains "
                                                        "a NUL byte; the file must be text");
}

/* Write text to a temporary file; returns its path (static buffer). */
static const char *write_temp(const char *text, size_t n)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_config_file_every_prefix_loads_or_fails_cleanly(void **state)
{
    struct fixture *fx = *state;
    FILE *f = fopen(DATA("good.conf"), "rb");
    char text[4096];
    size_t n;

    assert_non_null(f);
    n = fread(text, 1, sizeof(text), f);
    fclose(f);
    assert_true(n > 0 && n < sizeof(text));
    for (size_t len = 0; len <= n; len++) {
        struct rc_config c;
        const char *path = write_temp(text, len);
        int rc;

        rc_config_defaults(&c);
        memset(&fx->err, 0, sizeof(fx->err));
        rc = rc_config_load_file(&c, path, &fx->err);
        unlink(path);
        if (rc != 0) {
            assert_int_equal(rc, -EINVAL);
            assert_true(strncmp(fx->err.msg, "config file ", 12) == 0);
        }
        rc_config_fini(&c);
    }
}

static void test_config_file_hash_starts_a_comment_only_after_whitespace(void **state)
{
    struct fixture *fx = *state;
    static const char text[] = "log_file = # stderr\n"
                               "shards=3#4\n";
    const char *path = write_temp(text, sizeof(text) - 1);
    int rc;

    set_ok(fx, "log_file", "/tmp/x");
    rc = rc_config_load_file(&fx->c, path, &fx->err);
    unlink(path);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(fx->c.log_file, "");
    assert_non_null(strstr(fx->err.msg, " line 2: shards=3#4 is not a number"));
}

/* ---- environment ------------------------------------------------------------------ */

static void test_config_env_sets_keys(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", NULL};
    char *envp[] = {"HOME=/root", "RINGCAST_PORT=9000", "RINGCAST_LOG_LEVEL=debug",
                    "RINGCAST_ALLOWED_ORIGINS=https://a.example,https://b.example", NULL};

    assert_int_equal(load(fx, argv, envp), 0);
    assert_int_equal(fx->c.port, 9000);
    assert_int_equal(fx->c.log_level, RC_LOG_DEBUG);
    assert_int_equal(fx->c.allowed_origins.n, 2);
}

static void test_config_env_unknown_ringcast_var_is_an_error(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", NULL};
    char *envp[] = {"RINGCAST_PROT=9000", NULL};
    char *envp_lower[] = {"RINGCAST_port=9000", NULL};

    assert_int_equal(load(fx, argv, envp), -EINVAL);
    assert_string_equal(fx->err.msg, "config: unknown environment variable RINGCAST_PROT (did you "
                                     "mean RINGCAST_PORT?); unset it, or see ringcast --help for "
                                     "the keys (as RINGCAST_<KEY>)");
    assert_int_equal(load(fx, argv, envp_lower), -EINVAL);
}

static void test_config_env_bad_value_names_the_variable(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", NULL};
    char *envp[] = {"RINGCAST_SHARDS=0x", NULL};

    assert_int_equal(load(fx, argv, envp), -EINVAL);
    assert_string_equal(fx->err.msg,
                        "config: RINGCAST_SHARDS=0x is not a number; use 0..256 (0 = one per CPU)");
}

static void test_config_env_config_names_the_file(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", NULL};
    char *envp[] = {"RINGCAST_CONFIG=" DATA("precedence.conf"), NULL};

    assert_int_equal(load(fx, argv, envp), 0);
    assert_int_equal(fx->c.port, 1000);
    assert_string_equal(fx->c.config_path, DATA("precedence.conf"));
}

/* ---- flags ------------------------------------------------------------------------ */

static void test_config_flags_accept_equals_and_space_forms(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast",         "--port=9000", "--shards",         "3",
                    "--max-body-bytes", "2MiB",        "--log_level=warn", NULL};

    assert_int_equal(load(fx, argv, (char *[]){NULL}), 0);
    assert_int_equal(fx->c.port, 9000);
    assert_int_equal(fx->c.shards, 3);
    assert_int_equal(fx->c.max_body_bytes, 2097152);
    assert_int_equal(fx->c.log_level, RC_LOG_WARN);
}

static void test_config_flags_bare_bool_means_true(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", "--client-publish", "--port", "1", NULL};
    char *argv_no[] = {"ringcast", "--client-publish", "no", NULL};
    char *argv_last[] = {"ringcast", "--client_publish", NULL};

    assert_int_equal(load(fx, argv, NULL), 0);
    assert_true(fx->c.client_publish);
    assert_int_equal(fx->c.port, 1);
    assert_int_equal(load(fx, argv_no, NULL), 0);
    assert_false(fx->c.client_publish);
    assert_int_equal(load(fx, argv_last, NULL), 0);
    assert_true(fx->c.client_publish);
}

static void test_config_flags_unknown_flag_suggests_help(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", "--prot=1", NULL};
    char *argv_far[] = {"ringcast", "--frobnicate", NULL};

    assert_int_equal(load(fx, argv, NULL), -EINVAL);
    assert_string_equal(
        fx->err.msg, "config: unknown flag \"--prot\" (did you mean --port?); see ringcast --help");
    assert_int_equal(load(fx, argv_far, NULL), -EINVAL);
    assert_string_equal(fx->err.msg, "config: unknown flag \"--frobnicate\"; see ringcast --help");
}

static void test_config_flags_reject_missing_value_and_positional(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", "--port", NULL};
    char *argv_pos[] = {"ringcast", "serve", NULL};
    char *argv_help_eq[] = {"ringcast", "--help=yes", NULL};

    assert_int_equal(load(fx, argv, NULL), -EINVAL);
    assert_string_equal(fx->err.msg, "config: --port needs a value; use --port=VALUE");
    assert_int_equal(load(fx, argv_pos, NULL), -EINVAL);
    assert_string_equal(fx->err.msg, "config: unexpected argument \"serve\"; flags look like "
                                     "--key=value (see ringcast --help)");
    assert_int_equal(load(fx, argv_help_eq, NULL), -EINVAL);
}

static void test_config_flags_bad_value_names_the_flag(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", "--heartbeat-interval=30", NULL};

    assert_int_equal(load(fx, argv, NULL), -EINVAL);
    assert_string_equal(fx->err.msg, "config: --heartbeat-interval=30 needs a unit; use ms, s, m "
                                     "or h (e.g. 30s), in 1s..1h");
}

static void test_config_flags_set_help_version_check_config(void **state)
{
    struct fixture *fx = *state;
    char *argv_h[] = {"ringcast", "-h", NULL};
    char *argv_help[] = {"ringcast", "--help", NULL};
    char *argv_v[] = {"ringcast", "--version", NULL};
    char *argv_c[] = {"ringcast", "--check-config", NULL};
    char *argv_c2[] = {"ringcast", "--check_config", NULL};

    assert_int_equal(load(fx, argv_h, NULL), 0);
    assert_true(fx->c.help);
    assert_int_equal(load(fx, argv_help, NULL), 0);
    assert_true(fx->c.help);
    assert_false(fx->c.version);
    assert_int_equal(load(fx, argv_v, NULL), 0);
    assert_true(fx->c.version);
    assert_false(fx->c.help);
    assert_int_equal(load(fx, argv_c, NULL), 0);
    assert_true(fx->c.check_config);
    assert_false(fx->c.help);
    assert_int_equal(load(fx, argv_c2, NULL), 0);
    assert_true(fx->c.check_config);
}

static void test_config_help_skips_a_broken_environment(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", "--help", NULL};
    char *envp[] = {"RINGCAST_PROT=1", "RINGCAST_CONFIG=/nonexistent.conf", NULL};

    assert_int_equal(load(fx, argv, envp), 0);
    assert_true(fx->c.help);
}

static void test_config_flags_config_in_both_forms(void **state)
{
    struct fixture *fx = *state;
    char *argv_eq[] = {"ringcast", "--config=" DATA("precedence.conf"), NULL};
    char *argv_sp[] = {"ringcast", "--config", DATA("precedence.conf"), NULL};
    char *argv_missing[] = {"ringcast", "--config", DATA("no_such.conf"), NULL};

    assert_int_equal(load(fx, argv_eq, NULL), 0);
    assert_int_equal(fx->c.port, 1000);
    assert_int_equal(load(fx, argv_sp, NULL), 0);
    assert_int_equal(fx->c.port, 1000);
    assert_string_equal(fx->c.config_path, DATA("precedence.conf"));
    assert_int_equal(load(fx, argv_missing, NULL), -ENOENT);
}

/* ---- precedence -------------------------------------------------------------------- */

static void test_config_precedence_flags_over_env_over_file_over_defaults(void **state)
{
    struct fixture *fx = *state;
    char *argv_none[] = {"ringcast", NULL};
    char *argv_file[] = {"ringcast", "--config", DATA("precedence.conf"), NULL};
    char *argv_all[] = {"ringcast", "--config", DATA("precedence.conf"), "--port=3000", NULL};
    char *envp[] = {"RINGCAST_PORT=2000", NULL};

    assert_int_equal(load(fx, argv_none, NULL), 0);
    assert_int_equal(fx->c.port, 8080); /* default */
    assert_int_equal(load(fx, argv_file, NULL), 0);
    assert_int_equal(fx->c.port, 1000); /* file over default */
    assert_int_equal(load(fx, argv_file, envp), 0);
    assert_int_equal(fx->c.port, 2000); /* env over file */
    assert_int_equal(load(fx, argv_all, envp), 0);
    assert_int_equal(fx->c.port, 3000);             /* flag over env */
    assert_int_equal(fx->c.log_level, RC_LOG_WARN); /* untouched file key stays */
}

static void test_config_precedence_list_is_replaced_by_higher_source(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast",
                    "--config",
                    DATA("precedence.conf"),
                    "--allowed-origins",
                    "https://flag1.example",
                    "--allowed-origins=https://flag2.example",
                    NULL};
    char *envp[] = {"RINGCAST_ALLOWED_ORIGINS=https://env.example", NULL};

    assert_int_equal(load(fx, argv, envp), 0);
    assert_int_equal(fx->c.allowed_origins.n, 2);
    assert_string_equal(fx->c.allowed_origins.items[0], "https://flag1.example");
    assert_string_equal(fx->c.allowed_origins.items[1], "https://flag2.example");
}

/* ---- cross-key validation ------------------------------------------------------------ */

static void test_config_validate_heartbeat_timeout_must_exceed_interval(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", "--heartbeat-interval=30s", "--heartbeat-timeout=30s", NULL};

    assert_int_equal(load(fx, argv, NULL), -EINVAL);
    assert_string_equal(fx->err.msg, "config: heartbeat_timeout=30s must be longer than "
                                     "heartbeat_interval=30s; raise heartbeat_timeout (3 intervals "
                                     "is usual)");
}

static void test_config_validate_header_bytes_must_hold_request_line(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "max_request_line", "32KiB");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg, "config: max_header_bytes=16KiB is smaller than "
                                     "max_request_line=32KiB; the request line counts toward the "
                                     "header bytes, so raise max_header_bytes");
}

static void test_config_validate_ring_entries_power_of_two(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "ring_entries", "1000");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg,
                        "config: ring_entries=1000 is not a power of two; use e.g. 1024 or 2048");
    set_ok(fx, "ring_entries", "2048");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), 0);
}

static void test_config_validate_per_ip_cap_within_total(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "max_connections", "10");
    set_ok(fx, "max_connections_per_ip", "11");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg, "config: max_connections_per_ip=11 exceeds "
                                     "max_connections=10; lower it, or use 0 for unlimited");
}

/* ---- print / usage ------------------------------------------------------------------- */

static char *print_to_string(const struct rc_config *c, size_t *n)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, n);

    assert_non_null(f);
    rc_config_print(c, f);
    fclose(f);
    return text;
}

static void test_config_validate_store_postgres_needs_postgres_url(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"ringcast", "--store=postgres", NULL};
    char *argv_url_only[] = {"ringcast", "--postgres-url=postgresql://u@db/x", NULL};
    char *argv_ok[] = {"ringcast", "--store=postgres", "--postgres-url=postgresql://u@db/x", NULL};
    char *envp[] = {"RINGCAST_POSTGRES_PASSWORD=pw-from-env", NULL};

    assert_int_equal(fx->c.store, RC_CONFIG_STORE_SQLITE);
    assert_int_equal(load(fx, argv, NULL), -EINVAL);
    assert_string_equal(fx->err.msg, "config: store=postgres needs postgres_url "
                                     "(postgresql://user@host:port/db or a libpq connection "
                                     "string)");
    assert_int_equal(load(fx, argv_url_only, NULL), -EINVAL);
    assert_string_equal(fx->err.msg, "config: postgres_url is set but store=sqlite; set "
                                     "store=postgres to use it");
    assert_int_equal(load(fx, argv_ok, envp), 0);
    assert_int_equal(fx->c.store, RC_CONFIG_STORE_POSTGRES);
    assert_string_equal(fx->c.postgres_url, "postgresql://u@db/x");
    assert_string_equal(fx->c.postgres_password, "pw-from-env");
    set_bad(fx, "store", "mysql");
    assert_non_null(strstr(fx->err.msg, "use one of: sqlite postgres"));
}

static void test_config_print_redacts_postgres_url_and_password(void **state)
{
    struct fixture *fx = *state;
    size_t n;
    set_ok(fx, "store", "postgres");
    set_ok(fx, "postgres_url", "postgresql://u:url-secret@db/x");
    set_ok(fx, "postgres_password", "pw-secret");
    char *text = print_to_string(&fx->c, &n);
    assert_null(strstr(text, "url-secret"));
    assert_null(strstr(text, "pw-secret"));
    assert_non_null(strstr(text, "\n# postgres_url = (set, redacted)\n"));
    assert_non_null(strstr(text, "\n# postgres_password = (set, redacted)\n"));
    assert_non_null(strstr(text, "\nstore = postgres\n"));
    free(text);
}

static void test_config_print_round_trips(void **state)
{
    struct fixture *fx = *state;
    struct rc_config back;
    size_t n;
    char *text;
    const char *path;

    set_ok(fx, "listen_address", "::1");
    set_ok(fx, "port", "0");
    set_ok(fx, "log_file", "/tmp/a \"quoted\" \\ # path");
    set_ok(fx, "max_body_bytes", "1000001");
    set_ok(fx, "max_request_line", "3KB");
    set_ok(fx, "request_timeout", "1500ms");
    set_ok(fx, "drain_timeout", "90s");
    set_ok(fx, "heartbeat_timeout", "2h");
    set_ok(fx, "keepalive_timeout", "0");
    set_ok(fx, "allowed_origins", "https://a.example,http://b.example:81");
    set_ok(fx, "client_publish", "on");
    set_ok(fx, "log_format", "json");
    text = print_to_string(&fx->c, &n);
    path = write_temp(text, n);
    free(text);
    rc_config_defaults(&back);
    assert_int_equal(rc_config_load_file(&back, path, &fx->err), 0);
    unlink(path);
    assert_true(rc_config_equal(&fx->c, &back));
    assert_string_equal(back.log_file, "/tmp/a \"quoted\" \\ # path");
    rc_config_fini(&back);
}

static void test_config_print_round_trips_defaults(void **state)
{
    struct fixture *fx = *state;
    struct rc_config back;
    size_t n;
    char *text = print_to_string(&fx->c, &n);
    const char *path = write_temp(text, n);

    free(text);
    rc_config_defaults(&back);
    back.port = 1; /* the file, not rc_config_defaults, must set it back */
    assert_int_equal(rc_config_load_file(&back, path, &fx->err), 0);
    unlink(path);
    assert_int_equal(back.port, 8080);
    assert_true(rc_config_equal(&fx->c, &back));
    rc_config_fini(&back);
}

static void test_config_print_redacts_api_keys(void **state)
{
    struct fixture *fx = *state;
    size_t n;
    char *text;

    set_ok(fx, "api_keys", "secret-key-0123456789,secret-key-abcdefghij");
    text = print_to_string(&fx->c, &n);
    assert_null(strstr(text, "secret-key"));
    assert_non_null(strstr(text, "\n# api_keys = (2 set, redacted)\n"));
    free(text);
}

static void test_config_equal_detects_each_difference(void **state)
{
    struct fixture *fx = *state;
    struct rc_config other;

    rc_config_defaults(&other);
    assert_true(rc_config_equal(&fx->c, &other));
    set_ok(fx, "sse_retry", "4s");
    assert_false(rc_config_equal(&fx->c, &other));
    set_ok(fx, "sse_retry", "3s");
    set_ok(fx, "api_keys", "0123456789abcdef0");
    assert_false(rc_config_equal(&fx->c, &other));
    rc_config_fini(&other);
}

/* ---- identity, rules and limits keys ---------------------------------------------- */

#define SECRET32 "0123456789abcdef0123456789abcdef"

static void test_config_auth_keys_accept_good_values(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "jwt_secret", SECRET32);
    set_ok(fx, "jwt_public_key_file", "/etc/ringcast/jwt.pem");
    set_ok(fx, "jwt_leeway", "0");
    set_ok(fx, "jwt_issuer", "https://issuer.example");
    set_ok(fx, "jwt_audience", "ringcast");
    set_ok(fx, "auth_required", "yes");
    set_ok(fx, "auth_timeout", "500ms");
    set_ok(fx, "anonymous", "none");
    set_ok(fx, "token_grace", "0");
    set_ok(fx, "personal_topics", "");
    assert_string_equal(fx->c.jwt_secret, SECRET32);
    assert_string_equal(fx->c.jwt_public_key_file, "/etc/ringcast/jwt.pem");
    assert_int_equal(fx->c.jwt_leeway, 0);
    assert_string_equal(fx->c.jwt_issuer, "https://issuer.example");
    assert_string_equal(fx->c.jwt_audience, "ringcast");
    assert_true(fx->c.auth_required);
    assert_int_equal(fx->c.auth_timeout, 500);
    assert_int_equal(fx->c.anonymous, RC_CONFIG_ANON_NONE);
    assert_int_equal(fx->c.token_grace, 0);
    assert_string_equal(fx->c.personal_topics, "");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), 0);
}

static void test_config_auth_keys_reject_bad_values(void **state)
{
    struct fixture *fx = *state;

    set_bad(fx, "anonymous", "read");
    assert_string_equal(fx->err.msg,
                        "config: anonymous=read is not allowed; use one of: none subscribe");
    set_bad(fx, "auth_timeout", "50ms");
    assert_string_equal(fx->err.msg, "config: auth_timeout=50ms is out of range; use 100ms..1h");
    set_bad(fx, "jwt_leeway", "30");
    set_bad(fx, "token_grace", "2h");
    set_bad(fx, "auth_required", "maybe");
    set_bad(fx, "jwt_issuer", "tab\there");
}

static void test_config_jwt_secret_errors_do_not_echo_it(void **state)
{
    struct fixture *fx = *state;
    char long_secret[RC_CONFIG_SECRET_MAX + 1];

    memset(long_secret, 'S', sizeof(long_secret) - 1);
    long_secret[sizeof(long_secret) - 1] = '\0';
    set_bad(fx, "jwt_secret", long_secret);
    assert_string_equal(fx->err.msg,
                        "config: jwt_secret is too long (1025 bytes); use at most 1024 bytes");
    set_ok(fx, "jwt_secret", "short-secret");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg, "config: jwt_secret is shorter than 32 bytes; use a random "
                                     "secret of at least 32 bytes (e.g. openssl rand -base64 48)");
    assert_null(strstr(fx->err.msg, "short-secret"));
}

static void test_config_validate_auth_required_needs_a_key(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "auth_required", "true");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg, "config: auth_required=true but neither jwt_secret nor "
                                     "jwt_public_key_file is set, so no token could verify; set "
                                     "one of them");
    set_ok(fx, "jwt_public_key_file", "/k.pem");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), 0);
}

static void test_config_validate_anonymous_none_needs_a_key(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "anonymous", "none");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), -EINVAL);
    assert_string_equal(fx->err.msg, "config: anonymous=none but neither jwt_secret nor "
                                     "jwt_public_key_file is set, so nobody could subscribe; set "
                                     "a key or use anonymous=subscribe");
    set_ok(fx, "jwt_secret", SECRET32);
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), 0);
}

static void test_config_validate_personal_topics_needs_one_sub(void **state)
{
    struct fixture *fx = *state;
    static const char *const bad[] = {"user.*.>", "user.{sub}.{sub}", "user.x{sub}.>", "{sub}x"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        set_ok(fx, "personal_topics", bad[i]);
        assert_int_equal(rc_config_validate(&fx->c, &fx->err), -EINVAL);
    }
    assert_string_equal(fx->err.msg, "config: personal_topics={sub}x must hold {sub} exactly once "
                                     "as a whole token (e.g. user.{sub}.>), or be empty for no "
                                     "personal topics");
    set_ok(fx, "personal_topics", "{sub}.private");
    assert_int_equal(rc_config_validate(&fx->c, &fx->err), 0);
}

static void test_config_rules_items_keep_their_spaces(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "rules", "chat.> subscribe=authenticated publish=claim , secret.> subscribe=none");
    set_ok(fx, "rules", "news.>   history_size=10");
    assert_int_equal(fx->c.rules.n, 3);
    assert_string_equal(fx->c.rules.items[0], "chat.> subscribe=authenticated publish=claim");
    assert_string_equal(fx->c.rules.items[1], "secret.> subscribe=none");
    assert_string_equal(fx->c.rules.items[2], "news.>   history_size=10");
}

static void test_config_api_keys_accept_scopes(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "api_keys",
           "0123456789abcdef0:publish,0123456789abcdef1:notify+admin,"
           "0123456789abcdef2");
    assert_int_equal(fx->c.api_keys.n, 3);
    set_bad(fx, "api_keys", "0123456789abcdef0:publish+write");
    assert_string_equal(fx->err.msg, "config: api_keys item 1 has an unknown or empty scope "
                                     "after ':'; write KEY:publish+notify+admin with any of "
                                     "publish, notify, admin (no suffix = all scopes)");
    assert_null(strstr(fx->err.msg, "0123456789abcdef0"));
    set_bad(fx, "api_keys", "short:publish");
    assert_string_equal(fx->err.msg, "config: api_keys item 1 is shorter than 16 characters; use "
                                     "a long random key");
}

static void test_config_limit_keys_ranges(void **state)
{
    struct fixture *fx = *state;

    set_ok(fx, "message_rate", "0");
    set_ok(fx, "message_burst", "1");
    set_ok(fx, "rate_limit_close_after", "0");
    set_ok(fx, "handshake_rate_per_ip", "20");
    assert_int_equal(fx->c.message_rate, 0);
    assert_int_equal(fx->c.message_burst, 1);
    assert_int_equal(fx->c.rate_limit_close_after, 0);
    assert_int_equal(fx->c.handshake_rate_per_ip, 20);
    set_ok(fx, "rate_limit_window", "250ms");
    assert_int_equal(fx->c.rate_limit_window, 250);
    set_bad(fx, "rate_limit_window", "50ms");
    assert_non_null(strstr(fx->err.msg, "rate_limit_window"));
    set_bad(fx, "message_burst", "0");
    assert_string_equal(fx->err.msg, "config: message_burst=0 is out of range; use 1..1000000");
    set_bad(fx, "message_rate", "1000001");
    assert_string_equal(fx->err.msg, "config: message_rate=1000001 is out of range; use "
                                     "0..1000000 (0 = unlimited)");
    set_bad(fx, "handshake_rate_per_ip", "-1");
}

static void test_config_print_redacts_jwt_secret(void **state)
{
    struct fixture *fx = *state;
    size_t n;
    char *text;

    text = print_to_string(&fx->c, &n);
    assert_non_null(strstr(text, "\njwt_secret = \"\"\n"));
    free(text);
    set_ok(fx, "jwt_secret", SECRET32);
    text = print_to_string(&fx->c, &n);
    assert_null(strstr(text, "0123456789abcdef"));
    assert_non_null(strstr(text, "\n# jwt_secret = (set, redacted)\n"));
    free(text);
}

static void test_config_print_round_trips_auth_keys(void **state)
{
    struct fixture *fx = *state;
    struct rc_config back;
    size_t n;
    char *text;
    const char *path;

    set_ok(fx, "jwt_public_key_file", "/etc/ringcast/jwt.pem");
    set_ok(fx, "jwt_issuer", "https://issuer.example");
    set_ok(fx, "jwt_leeway", "5s");
    set_ok(fx, "anonymous", "none");
    set_ok(fx, "personal_topics", "u.{sub}.>");
    set_ok(fx, "rules", "chat.> subscribe=claim publish=claim,secret.> subscribe=none");
    set_ok(fx, "message_rate", "7");
    set_ok(fx, "handshake_rate_per_ip", "3");
    text = print_to_string(&fx->c, &n);
    path = write_temp(text, n);
    free(text);
    rc_config_defaults(&back);
    assert_int_equal(rc_config_load_file(&back, path, &fx->err), 0);
    unlink(path);
    assert_true(rc_config_equal(&fx->c, &back));
    assert_int_equal(back.rules.n, 2);
    rc_config_fini(&back);
}

static void test_config_usage_lists_every_key_and_flag(void **state)
{
    static const char *const want[] = {
        "--check-config",
        "--version",
        "--help",
        "--config=PATH",
        "RINGCAST_<KEY>",
        "\n  listen_address ",
        "\n  port ",
        "\n  shards ",
        "\n  log_level ",
        "\n  log_format ",
        "\n  log_file ",
        "\n  max_request_line ",
        "\n  max_header_bytes ",
        "\n  max_headers ",
        "\n  max_body_bytes ",
        "\n  max_connections ",
        "\n  max_connections_per_ip ",
        "\n  request_timeout ",
        "\n  keepalive_timeout ",
        "\n  handshake_timeout ",
        "\n  drain_timeout ",
        "\n  ws_max_message ",
        "\n  heartbeat_interval ",
        "\n  heartbeat_timeout ",
        "\n  allowed_origins ",
        "\n  max_subscriptions ",
        "\n  max_pending_bytes ",
        "\n  client_publish ",
        "\n  api_keys ",
        "\n  sse_retry ",
        "\n  recv_buffer_size ",
        "\n  recv_buffers ",
        "\n  ring_entries ",
        "\n  jwt_secret ",
        "\n  jwt_public_key_file ",
        "\n  jwt_leeway ",
        "\n  jwt_issuer ",
        "\n  jwt_audience ",
        "\n  auth_required ",
        "\n  auth_timeout ",
        "\n  anonymous ",
        "\n  token_grace ",
        "\n  personal_topics ",
        "\n  rules ",
        "\n  message_rate ",
        "\n  message_burst ",
        "\n  rate_limit_close_after ",
        "\n  rate_limit_window ",
        "\n  handshake_rate_per_ip ",
        "default subscribe; none|subscribe",
        "first match wins",
        "default 8KiB; 256..1MiB",
        "default info; debug|info|warn|error",
    };
    char *text = NULL;
    size_t n;
    FILE *f = open_memstream(&text, &n);

    (void)state;
    assert_non_null(f);
    rc_config_usage(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(text, want[i]))
            fail_msg("usage lacks \"%s\"", want[i]);
    free(text);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_defaults_match_the_documented_values),
        T(test_config_defaults_pass_validation),
        T(test_config_template_loads_as_the_defaults),
        T(test_config_bool_accepts_all_spellings),
        T(test_config_bool_rejects_other_words),
        T(test_config_uint_parses_decimal_within_range),
        T(test_config_uint_rejects_non_numbers_naming_the_key),
        T(test_config_uint_rejects_out_of_range),
        T(test_config_port_accepts_0_to_65535),
        T(test_config_port_rejects_65536_and_words),
        T(test_config_size_accepts_binary_and_decimal_units),
        T(test_config_size_rejects_ambiguous_k_m_g),
        T(test_config_size_rejects_bad_units_and_overflow),
        T(test_config_duration_accepts_ms_s_m_h),
        T(test_config_duration_requires_a_unit_except_zero),
        T(test_config_duration_rejects_bad_units_and_range),
        T(test_config_string_accepts_text_up_to_its_limit),
        T(test_config_string_rejects_too_long_and_control_chars),
        T(test_config_address_accepts_ipv4_ipv6_localhost),
        T(test_config_address_rejects_names_brackets_and_bad_octets),
        T(test_config_hostport_splits_ipv4_bracketed_ipv6_and_localhost),
        T(test_config_hostport_rejects_names_missing_ports_and_bare_ipv6),
        T(test_config_enum_accepts_listed_words),
        T(test_config_enum_rejects_other_words_listing_the_allowed),
        T(test_config_list_splits_commas_and_appends),
        T(test_config_list_empty_value_clears),
        T(test_config_list_rejects_empty_items_and_bad_origins),
        T(test_config_list_caps_the_item_count),
        T(test_config_api_key_errors_do_not_echo_the_key),
        T(test_config_set_unknown_key_suggests_the_nearest),
        T(test_config_file_reads_comments_quotes_and_lists),
        T(test_config_file_list_first_mention_replaces_earlier_value),
        T(test_config_file_rejects_duplicate_scalar_key),
        T(test_config_file_unknown_key_names_the_line),
        T(test_config_file_bad_value_names_key_and_line),
        T(test_config_file_missing_is_enoent),
        T(test_config_file_rejects_line_over_4096_bytes),
        T(test_config_file_rejects_file_over_1mib),
        T(test_config_file_accepts_crlf_and_bom),
        T(test_config_file_rejects_unterminated_quote),
        T(test_config_file_rejects_unknown_escape),
        T(test_config_file_rejects_line_without_equals),
        T(test_config_file_rejects_nul_byte),
        T(test_config_file_every_prefix_loads_or_fails_cleanly),
        T(test_config_file_hash_starts_a_comment_only_after_whitespace),
        T(test_config_env_sets_keys),
        T(test_config_env_unknown_ringcast_var_is_an_error),
        T(test_config_env_bad_value_names_the_variable),
        T(test_config_env_config_names_the_file),
        T(test_config_flags_accept_equals_and_space_forms),
        T(test_config_flags_bare_bool_means_true),
        T(test_config_flags_unknown_flag_suggests_help),
        T(test_config_flags_reject_missing_value_and_positional),
        T(test_config_flags_bad_value_names_the_flag),
        T(test_config_flags_set_help_version_check_config),
        T(test_config_help_skips_a_broken_environment),
        T(test_config_flags_config_in_both_forms),
        T(test_config_precedence_flags_over_env_over_file_over_defaults),
        T(test_config_precedence_list_is_replaced_by_higher_source),
        T(test_config_validate_heartbeat_timeout_must_exceed_interval),
        T(test_config_validate_header_bytes_must_hold_request_line),
        T(test_config_validate_ring_entries_power_of_two),
        T(test_config_validate_per_ip_cap_within_total),
        T(test_config_validate_store_postgres_needs_postgres_url),
        T(test_config_print_redacts_postgres_url_and_password),
        T(test_config_print_round_trips),
        T(test_config_print_round_trips_defaults),
        T(test_config_print_redacts_api_keys),
        T(test_config_equal_detects_each_difference),
        T(test_config_usage_lists_every_key_and_flag),
        T(test_config_auth_keys_accept_good_values),
        T(test_config_auth_keys_reject_bad_values),
        T(test_config_jwt_secret_errors_do_not_echo_it),
        T(test_config_validate_auth_required_needs_a_key),
        T(test_config_validate_anonymous_none_needs_a_key),
        T(test_config_validate_personal_topics_needs_one_sub),
        T(test_config_rules_items_keep_their_spaces),
        T(test_config_api_keys_accept_scopes),
        T(test_config_limit_keys_ranges),
        T(test_config_print_redacts_jwt_secret),
        T(test_config_print_round_trips_auth_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
