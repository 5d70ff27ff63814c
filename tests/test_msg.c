/* test_msg.c - client message parsing (every action, every error code, every
 * field's type check, size and depth limits) and the reply/error encoder
 * (escaping, invalid UTF-8, -ENOSPC at every capacity). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/msg.h"

#define KNOWN "auth subscribe unsubscribe publish presence pong ping message"

/* ---- helpers ------------------------------------------------------------ */

static int parse(const char *s, struct rc_client_msg *m, struct rc_err *e)
{
    return rc_msg_parse(s, strlen(s), NULL, m, e);
}

/* Parse s, which must succeed with action a; the caller finishes m. */
static void parse_ok(const char *s, enum rc_action a, struct rc_client_msg *m)
{
    struct rc_err e = {0};
    int rc = parse(s, m, &e);

    if (rc != 0)
        fail_msg("%s -> %s: %s", s, e.code, e.msg);
    assert_int_equal(m->action, a);
}

/* Parse s, which must fail with exactly this code and message. */
static void parse_fails(const char *s, const char *code, const char *msg)
{
    struct rc_client_msg m;
    struct rc_err e = {0};

    assert_int_equal(parse(s, &m, &e), -EINVAL);
    assert_string_equal(e.code, code);
    if (msg)
        assert_string_equal(e.msg, msg);
    rc_msg_fini(&m);
}

static void assert_topic(const struct rc_client_msg *m, const char *t)
{
    assert_non_null(m->topic);
    assert_string_equal(m->topic, t);
    assert_int_equal(m->topic_len, strlen(t));
}

/* Encoder output is not NUL-terminated: compare length and bytes. */
static void assert_out(const char *buf, ssize_t n, const char *want)
{
    assert_true(n >= 0);
    if ((size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0)
        fail_msg("got  %.*s\nwant %s", (int)n, buf, want);
}

/* ---- happy paths ---------------------------------------------------------- */

static void test_msg_auth_reads_token(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"auth\",\"token\":\"a.b.c\"}", RC_ACT_AUTH, &m);
    assert_string_equal(m.token, "a.b.c");
    assert_null(m.id);
    rc_msg_fini(&m);
}

static void test_msg_subscribe_topic_only_has_defaults(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"subscribe\",\"topic\":\"project.42.models\"}", RC_ACT_SUBSCRIBE, &m);
    assert_topic(&m, "project.42.models");
    assert_false(m.via_collection);
    assert_null(m.filter);
    assert_null(m.since);
    assert_false(m.include_initial);
    assert_null(m.id);
    rc_msg_fini(&m);
}

static void test_msg_subscribe_reads_all_fields(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"id\":\"req-1\",\"action\":\"subscribe\",\"topic\":\"a.*.>\","
             "\"filter\":{\"published\":true},\"since\":\"42-7\",\"include_initial\":true}",
             RC_ACT_SUBSCRIBE, &m);
    assert_topic(&m, "a.*.>");
    assert_true(json_is_string(m.id));
    assert_string_equal(json_string_value(m.id), "req-1");
    assert_true(json_is_object(m.filter));
    assert_true(json_is_true(json_object_get(m.filter, "published")));
    assert_string_equal(m.since, "42-7");
    assert_true(m.include_initial);
    rc_msg_fini(&m);
}

static void test_msg_subscribe_collection_alias_sets_via_collection(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\": \"subscribe\", \"collection\": \"posts\", \"filter\": {\"published\": "
             "true}}",
             RC_ACT_SUBSCRIBE, &m);
    assert_topic(&m, "posts");
    assert_true(m.via_collection);
    assert_non_null(m.filter);
    rc_msg_fini(&m);
}

static void test_msg_subscribe_lone_star_is_a_pattern(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\": \"subscribe\", \"collection\": \"*\"}", RC_ACT_SUBSCRIBE, &m);
    assert_topic(&m, "*");
    rc_msg_fini(&m);
}

static void test_msg_subscribe_equal_topic_and_collection_is_accepted(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"subscribe\",\"topic\":\"posts\",\"collection\":\"posts\"}",
             RC_ACT_SUBSCRIBE, &m);
    assert_topic(&m, "posts");
    assert_false(m.via_collection);
    rc_msg_fini(&m);
}

static void test_msg_subscribe_null_fields_count_as_absent(void **state)
{
    (void)state;
    struct rc_client_msg m;

    /* seed 003's React hook sends filter: null */
    parse_ok("{\"action\":\"subscribe\",\"collection\":\"posts\",\"filter\":null,\"since\":null,"
             "\"include_initial\":null,\"topic\":null,\"id\":null}",
             RC_ACT_SUBSCRIBE, &m);
    assert_topic(&m, "posts");
    assert_true(m.via_collection);
    assert_null(m.filter);
    assert_null(m.since);
    assert_false(m.include_initial);
    assert_null(m.id);
    rc_msg_fini(&m);
}

static void test_msg_subscribe_include_initial_false(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"subscribe\",\"topic\":\"a\",\"include_initial\":false}",
             RC_ACT_SUBSCRIBE, &m);
    assert_false(m.include_initial);
    rc_msg_fini(&m);
}

static void test_msg_unsubscribe_by_subscription(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"unsubscribe\",\"subscription\":\"s-12\",\"id\":5}", RC_ACT_UNSUBSCRIBE,
             &m);
    assert_string_equal(m.subscription, "s-12");
    assert_null(m.topic);
    assert_true(json_is_integer(m.id));
    assert_int_equal(json_integer_value(m.id), 5);
    rc_msg_fini(&m);
}

static void test_msg_unsubscribe_by_topic_or_collection(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"unsubscribe\",\"topic\":\"a.>\"}", RC_ACT_UNSUBSCRIBE, &m);
    assert_topic(&m, "a.>");
    assert_null(m.subscription);
    assert_false(m.via_collection);
    rc_msg_fini(&m);

    parse_ok("{\"action\":\"unsubscribe\",\"collection\":\"posts\"}", RC_ACT_UNSUBSCRIBE, &m);
    assert_topic(&m, "posts");
    assert_true(m.via_collection);
    rc_msg_fini(&m);
}

static void test_msg_publish_defaults_type_and_data(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"publish\",\"topic\":\"chat.room1\"}", RC_ACT_PUBLISH, &m);
    assert_topic(&m, "chat.room1");
    assert_string_equal(m.type, "message");
    assert_true(json_is_null(m.data));
    rc_msg_fini(&m);
}

static void test_msg_publish_reads_type_and_data(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"publish\",\"id\":-9,\"topic\":\"posts\",\"type\":\"record.created\","
             "\"data\":{\"id\":1,\"tags\":[\"x\"]}}",
             RC_ACT_PUBLISH, &m);
    assert_string_equal(m.type, "record.created");
    assert_true(json_is_object(m.data));
    assert_int_equal(json_integer_value(json_object_get(m.data, "id")), 1);
    assert_int_equal(json_integer_value(m.id), -9);
    rc_msg_fini(&m);

    parse_ok("{\"action\":\"publish\",\"topic\":\"posts\",\"data\":\"plain\"}", RC_ACT_PUBLISH, &m);
    assert_string_equal(json_string_value(m.data), "plain");
    rc_msg_fini(&m);
}

static void test_msg_publish_event_is_an_alias_of_type(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"publish\",\"collection\":\"posts\",\"event\":\"UPDATED\"}",
             RC_ACT_PUBLISH, &m);
    assert_string_equal(m.type, "UPDATED");
    assert_true(m.via_collection);
    rc_msg_fini(&m);

    parse_ok("{\"action\":\"publish\",\"topic\":\"p\",\"event\":\"x\",\"type\":\"x\"}",
             RC_ACT_PUBLISH, &m);
    assert_string_equal(m.type, "x");
    rc_msg_fini(&m);
}

static void test_msg_pong_and_ping_need_nothing(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\": \"pong\"}", RC_ACT_PONG, &m);
    assert_null(m.id);
    rc_msg_fini(&m);

    parse_ok("{\"action\":\"ping\",\"id\":\"p1\"}", RC_ACT_PING, &m);
    assert_string_equal(json_string_value(m.id), "p1");
    rc_msg_fini(&m);
}

static void test_msg_presence_reads_topic(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"presence\",\"topic\":\"room.7\",\"id\":1}", RC_ACT_PRESENCE, &m);
    assert_topic(&m, "room.7");
    rc_msg_fini(&m);
}

static void test_msg_message_action_reads_payload(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"message\",\"payload\":{\"k\":[1,2]}}", RC_ACT_MESSAGE, &m);
    assert_true(json_is_object(m.payload));
    rc_msg_fini(&m);

    parse_ok("{\"action\":\"message\",\"payload\":null}", RC_ACT_MESSAGE, &m);
    assert_true(json_is_null(m.payload));
    rc_msg_fini(&m);
}

static void test_msg_seed001_type_message_without_action(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"type\": \"message\", \"payload\": \"Hello, server!\"}", RC_ACT_MESSAGE, &m);
    assert_string_equal(json_string_value(m.payload), "Hello, server!");
    rc_msg_fini(&m);
}

static void test_msg_ignores_unknown_fields(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"v\":2,\"action\":\"pong\",\"extra\":{\"deep\":[1,{\"x\":null}]},\"filter\":7}",
             RC_ACT_PONG, &m);
    assert_null(m.filter);
    rc_msg_fini(&m);
}

static void test_msg_id_accepts_string_up_to_64_bytes_and_integers(void **state)
{
    (void)state;
    struct rc_client_msg m;
    char buf[160];
    char id64[65];

    memset(id64, 'i', 64);
    id64[64] = '\0';
    snprintf(buf, sizeof(buf), "{\"action\":\"pong\",\"id\":\"%s\"}", id64);
    parse_ok(buf, RC_ACT_PONG, &m);
    assert_string_equal(json_string_value(m.id), id64);
    rc_msg_fini(&m);

    parse_ok("{\"action\":\"pong\",\"id\":9223372036854775807}", RC_ACT_PONG, &m);
    assert_true(json_integer_value(m.id) == INT64_MAX);
    rc_msg_fini(&m);

    parse_ok("{\"action\":\"pong\",\"id\":\"\"}", RC_ACT_PONG, &m);
    assert_string_equal(json_string_value(m.id), "");
    rc_msg_fini(&m);
}

static void test_msg_action_names(void **state)
{
    (void)state;
    assert_string_equal(rc_action_name(RC_ACT_AUTH), "auth");
    assert_string_equal(rc_action_name(RC_ACT_SUBSCRIBE), "subscribe");
    assert_string_equal(rc_action_name(RC_ACT_UNSUBSCRIBE), "unsubscribe");
    assert_string_equal(rc_action_name(RC_ACT_PUBLISH), "publish");
    assert_string_equal(rc_action_name(RC_ACT_PONG), "pong");
    assert_string_equal(rc_action_name(RC_ACT_PING), "ping");
    assert_string_equal(rc_action_name(RC_ACT_PRESENCE), "presence");
    assert_string_equal(rc_action_name(RC_ACT_MESSAGE), "message");
    assert_string_equal(rc_action_name((enum rc_action)99), "unknown");
}

static void test_msg_fini_is_idempotent(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"pong\"}", RC_ACT_PONG, &m);
    rc_msg_fini(&m);
    assert_null(m.root);
    rc_msg_fini(&m);
    rc_msg_fini(NULL);
}

/* ---- errors --------------------------------------------------------------- */

static void test_msg_bad_json_reports_line_and_column(void **state)
{
    (void)state;
    parse_fails("{\"action\":\"pong\",}", "bad_json",
                "invalid JSON at line 1, column 18: string or '}' expected near '}'");
    parse_fails("{\"action\":\n  pong}", "bad_json",
                "invalid JSON at line 2, column 6: invalid token near 'pong'");
    parse_fails("{\"action\":\"pong\"} x", "bad_json",
                "invalid JSON at line 1, column 19: end of file expected near 'x'");
    parse_fails("", "bad_json",
                "message is empty; send one JSON object like {\"action\":\"pong\"}");
}

static void test_msg_bad_json_for_non_objects(void **state)
{
    (void)state;
    parse_fails("[{\"action\":\"pong\"}]", "bad_json",
                "message must be a JSON object like {\"action\":\"subscribe\",...}, got array");
    parse_fails("\"pong\"", "bad_json",
                "message must be a JSON object like {\"action\":\"subscribe\",...}, got string");
    parse_fails("42", "bad_json",
                "message must be a JSON object like {\"action\":\"subscribe\",...}, got integer");
    parse_fails("null", "bad_json",
                "message must be a JSON object like {\"action\":\"subscribe\",...}, got null");
}

static void test_msg_bad_json_for_duplicate_keys(void **state)
{
    (void)state;
    parse_fails("{\"action\":\"subscribe\",\"topic\":\"a\",\"topic\":\"b\"}", "bad_json",
                "invalid JSON at line 1, column 41: duplicate object key near '\"topic\"'");
}

static void test_msg_bad_json_for_nul_and_invalid_utf8(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    static const char nul[] = "{\"action\":\"pong\"}\0";
    static const char bad_utf8[] = "{\"action\":\"auth\",\"token\":\"\xC3\x28\"}";

    parse_fails("{\"action\":\"auth\",\"token\":\"a\\u0000b\"}", "bad_json", NULL);
    assert_int_equal(rc_msg_parse(nul, sizeof(nul) - 1, NULL, &m, &e), -EINVAL);
    assert_string_equal(e.code, "bad_json");
    rc_msg_fini(&m);
    parse_fails(bad_utf8, "bad_json", NULL);
}

static void test_msg_too_large_is_checked_before_parsing(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    struct rc_msg_limits lim = {.max_bytes = 17};
    const char *s = "{\"action\":\"pong\"}"; /* 17 bytes */

    assert_int_equal(rc_msg_parse(s, 17, &lim, &m, &e), 0);
    rc_msg_fini(&m);
    lim.max_bytes = 16;
    assert_int_equal(rc_msg_parse(s, 17, &lim, &m, &e), -EINVAL);
    assert_string_equal(e.code, "too_large");
    assert_int_equal(e.status, 413);
    assert_string_equal(e.msg, "message is 17 bytes; the limit is 16");
    assert_null(m.root);
    rc_msg_fini(&m);
}

static void test_msg_huge_message_is_refused_by_default_limit(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    size_t n = RC_MSG_DEFAULT_MAX_BYTES + 1;
    char *big = malloc(n);

    assert_non_null(big);
    memset(big, ' ', n); /* not even JSON: the size check comes first */
    assert_int_equal(rc_msg_parse(big, n, NULL, &m, &e), -EINVAL);
    assert_string_equal(e.code, "too_large");
    assert_string_equal(e.msg, "message is 65537 bytes; the limit is 65536");
    rc_msg_fini(&m);

    /* a valid message of exactly the limit passes */
    n = RC_MSG_DEFAULT_MAX_BYTES;
    static const char head[] = "{\"action\":\"publish\",\"topic\":\"t\",\"data\":\"";
    memcpy(big, head, sizeof(head) - 1);
    memset(big + sizeof(head) - 1, 't', n - (sizeof(head) - 1) - 2);
    memcpy(big + n - 2, "\"}", 2);
    assert_int_equal(rc_msg_parse(big, n, NULL, &m, &e), 0);
    assert_int_equal(json_string_length(m.data), n - (sizeof(head) - 1) - 2);
    rc_msg_fini(&m);
    free(big);
}

/* {"action":"publish","topic":"t","data":[[...]]} with depth levels in total. */
static char *nested(unsigned depth, size_t *len)
{
    static const char head[] = "{\"action\":\"publish\",\"topic\":\"t\",\"data\":";
    size_t inner = depth - 1, n = sizeof(head) - 1 + 2 * inner + 1;
    char *s = malloc(n + 1);

    assert_non_null(s);
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, '[', inner);
    memset(s + sizeof(head) - 1 + inner, ']', inner);
    s[n - 1] = '}';
    s[n] = '\0';
    *len = n;
    return s;
}

static void test_msg_depth_limit_counts_root_as_one(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    size_t n;
    char *s = nested(RC_MSG_DEFAULT_MAX_DEPTH, &n);

    assert_int_equal(rc_msg_parse(s, n, NULL, &m, &e), 0);
    rc_msg_fini(&m);
    free(s);

    s = nested(RC_MSG_DEFAULT_MAX_DEPTH + 1, &n);
    assert_int_equal(rc_msg_parse(s, n, NULL, &m, &e), -EINVAL);
    assert_string_equal(e.code, "too_deep");
    assert_string_equal(e.msg, "arrays/objects nest deeper than 32 levels; flatten the message");
    assert_null(m.root);
    rc_msg_fini(&m);
    free(s);
}

static void test_msg_depth_ignores_brackets_inside_strings(void **state)
{
    (void)state;
    struct rc_client_msg m;

    parse_ok("{\"action\":\"auth\",\"token\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{"
             "{{{{{{{{{{{{{{{{{{{{{{{{{\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}",
             RC_ACT_AUTH, &m);
    rc_msg_fini(&m);
}

static void test_msg_jansson_depth_cap_is_refused_cleanly(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    struct rc_msg_limits lim = {.max_depth = 100000};
    size_t n;
    char *s = nested(5000, &n);

    assert_int_equal(rc_msg_parse(s, n, &lim, &m, &e), -EINVAL);
    assert_string_equal(e.code, "bad_json");
    assert_non_null(strstr(e.msg, "maximum parsing depth reached"));
    rc_msg_fini(&m);
    free(s);
}

static void test_msg_deep_but_allowed_message_parses_and_encodes(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    struct rc_msg_limits lim = {.max_depth = 2048};
    size_t n;
    char *s = nested(2048, &n);
    char *out = malloc(2 * n);

    assert_non_null(out);
    assert_int_equal(rc_msg_parse(s, n, &lim, &m, &e), 0);
    assert_true(json_is_array(m.data));
    /* data is 2047 levels: 2047 '[' and ']' */
    assert_int_equal(rc_msg_reply(out, 2 * n, "echo", NULL, m.data),
                     strlen("{\"type\":\"echo\",\"data\":}") + 2 * 2047);
    rc_msg_fini(&m);
    free(out);
    free(s);
}

static void test_msg_missing_action(void **state)
{
    (void)state;
    parse_fails("{}", "missing_field", "message needs \"action\"; known: " KNOWN);
    parse_fails("{\"type\":\"subscribe\",\"topic\":\"a\"}", "missing_field",
                "message needs \"action\"; known: " KNOWN);
}

static void test_msg_unknown_action_lists_known_ones(void **state)
{
    (void)state;
    parse_fails("{\"action\":\"subscrbe\",\"topic\":\"a\"}", "unknown_action",
                "unknown action \"subscrbe\"; known: " KNOWN);
    parse_fails("{\"action\":\"Subscribe\"}", "unknown_action",
                "unknown action \"Subscribe\"; known: " KNOWN);
    parse_fails("{\"action\":\"\"}", "unknown_action", "unknown action \"\"; known: " KNOWN);
}

static void test_msg_unknown_action_is_quoted_short_and_printable(void **state)
{
    (void)state;
    /* 40 bytes: cut at 32 */
    parse_fails("{\"action\":\"abcdefghijabcdefghijabcdefghijabcdefghij\"}", "unknown_action",
                "unknown action \"abcdefghijabcdefghijabcdefghijab...\"; known: " KNOWN);
    /* control characters shown as '?' */
    parse_fails("{\"action\":\"a\\nb\\u0001\"}", "unknown_action",
                "unknown action \"a?b?\"; known: " KNOWN);
    /* cut on a character boundary: 31 x 'a' then U+00E9 (2 bytes) */
    parse_fails("{\"action\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xC3\xA9zz\"}", "unknown_action",
                "unknown action \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"; known: " KNOWN);
}

static void test_msg_missing_fields_are_named(void **state)
{
    (void)state;
    parse_fails("{\"action\":\"subscribe\"}", "missing_field",
                "subscribe needs \"topic\" (or \"collection\")");
    parse_fails("{\"action\":\"subscribe\",\"topic\":null}", "missing_field",
                "subscribe needs \"topic\" (or \"collection\")");
    parse_fails("{\"action\":\"publish\",\"data\":1}", "missing_field",
                "publish needs \"topic\" (or \"collection\")");
    parse_fails("{\"action\":\"presence\"}", "missing_field",
                "presence needs \"topic\" (or \"collection\")");
    parse_fails("{\"action\":\"unsubscribe\"}", "missing_field",
                "unsubscribe needs \"subscription\" or \"topic\" (or \"collection\")");
    parse_fails("{\"action\":\"auth\"}", "missing_field", "auth needs \"token\" (a JWT)");
    parse_fails("{\"action\":\"message\"}", "missing_field",
                "message needs \"payload\" (any JSON value)");
}

/* Every field with a type, given the wrong one. */
static void test_msg_wrong_type_for_every_field(void **state)
{
    (void)state;
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"{\"action\":1}", "\"action\" must be a string, got integer"},
        {"{\"action\":[\"pong\"]}", "\"action\" must be a string, got array"},
        {"{\"action\":\"auth\",\"token\":true}", "\"token\" must be a string, got boolean"},
        {"{\"action\":\"subscribe\",\"topic\":5}", "\"topic\" must be a string, got integer"},
        {"{\"action\":\"subscribe\",\"collection\":{}}",
         "\"collection\" must be a string, got object"},
        {"{\"action\":\"subscribe\",\"topic\":\"a\",\"since\":17}",
         "\"since\" must be a string, got integer"},
        {"{\"action\":\"subscribe\",\"topic\":\"a\",\"include_initial\":\"yes\"}",
         "\"include_initial\" must be a boolean, got string"},
        {"{\"action\":\"subscribe\",\"topic\":\"a\",\"include_initial\":1}",
         "\"include_initial\" must be a boolean, got integer"},
        {"{\"action\":\"unsubscribe\",\"subscription\":1.5}",
         "\"subscription\" must be a string, got number"},
        {"{\"action\":\"unsubscribe\",\"topic\":false}", "\"topic\" must be a string, got boolean"},
        {"{\"action\":\"publish\",\"topic\":[]}", "\"topic\" must be a string, got array"},
        {"{\"action\":\"publish\",\"topic\":\"a\",\"type\":3}",
         "\"type\" must be a string, got integer"},
        {"{\"action\":\"publish\",\"topic\":\"a\",\"event\":{}}",
         "\"event\" must be a string, got object"},
        {"{\"action\":\"presence\",\"collection\":0.5}",
         "\"collection\" must be a string, got number"},
    };

    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++)
        parse_fails(cases[i].json, "bad_type", cases[i].msg);
}

static void test_msg_filter_that_is_not_an_object_is_bad_filter(void **state)
{
    (void)state;
    parse_fails("{\"action\":\"subscribe\",\"topic\":\"a\",\"filter\":[1]}", "bad_filter",
                "filter must be a JSON object like {\"published\": true}, got array");
    parse_fails("{\"action\":\"subscribe\",\"topic\":\"a\",\"filter\":\"x=1\"}", "bad_filter",
                "filter must be a JSON object like {\"published\": true}, got string");
    parse_fails("{\"action\":\"subscribe\",\"topic\":\"a\",\"filter\":7}", "bad_filter",
                "filter must be a JSON object like {\"published\": true}, got integer");
}

/* The verifier owns the token size limit (refused as unauthorized): the parser passes a
 * long token through so that it is answered, counted and closed like any refused token. */
static void test_msg_auth_passes_a_long_token_to_the_verifier(void **state)
{
    (void)state;
    static const size_t n = 20000;
    char *buf = malloc(n + 64);
    struct rc_client_msg m;

    assert_non_null(buf);
    int k = snprintf(buf, 64, "{\"action\":\"auth\",\"token\":\"");
    memset(buf + k, 'a', n);
    memcpy(buf + k + n, "\"}", 3);
    parse_ok(buf, RC_ACT_AUTH, &m);
    assert_int_equal(strlen(m.token), n);
    rc_msg_fini(&m);
    free(buf);
}

static void test_msg_bad_id(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    char buf[160];

    parse_fails("{\"action\":\"pong\",\"id\":1.5}", "bad_id",
                "\"id\" must be a string of at most 64 bytes or an integer, got number");
    parse_fails("{\"action\":\"pong\",\"id\":{\"a\":1}}", "bad_id",
                "\"id\" must be a string of at most 64 bytes or an integer, got object");
    parse_fails("{\"action\":\"pong\",\"id\":true}", "bad_id",
                "\"id\" must be a string of at most 64 bytes or an integer, got boolean");
    snprintf(buf, sizeof(buf), "{\"action\":\"pong\",\"id\":\"%065d\"}", 0);
    assert_int_equal(parse(buf, &m, &e), -EINVAL);
    assert_string_equal(e.code, "bad_id");
    assert_string_equal(e.msg,
                        "\"id\" is 65 bytes; use a string of at most 64 bytes or an integer");
    assert_null(m.id);
    rc_msg_fini(&m);
    /* too big for an integer: jansson refuses it */
    parse_fails("{\"action\":\"pong\",\"id\":99999999999999999999}", "bad_json", NULL);
}

static void test_msg_id_is_kept_when_a_later_check_fails(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};

    assert_int_equal(parse("{\"action\":\"nope\",\"id\":7}", &m, &e), -EINVAL);
    assert_string_equal(e.code, "unknown_action");
    assert_int_equal(json_integer_value(m.id), 7);
    assert_non_null(m.root);
    rc_msg_fini(&m);

    assert_int_equal(parse("{\"id\":\"q\",\"action\":\"subscribe\",\"topic\":\"a..b\"}", &m, &e),
                     -EINVAL);
    assert_string_equal(e.code, "bad_topic");
    assert_string_equal(json_string_value(m.id), "q");
    rc_msg_fini(&m);
}

static void test_msg_topic_and_collection_that_differ(void **state)
{
    (void)state;
    parse_fails("{\"action\":\"subscribe\",\"topic\":\"a\",\"collection\":\"b\"}", "bad_value",
                "subscribe: \"topic\" \"a\" and \"collection\" \"b\" differ; give only one");
    parse_fails("{\"action\":\"publish\",\"topic\":\"ab\",\"collection\":\"a\"}", "bad_value",
                "publish: \"topic\" \"ab\" and \"collection\" \"a\" differ; give only one");
}

static void test_msg_bad_topics_come_from_the_topic_validator(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"action\":\"subscribe\",\"topic\":\"\"}",
        "{\"action\":\"subscribe\",\"topic\":\"a..b\"}",
        "{\"action\":\"subscribe\",\"topic\":\"a.>.b\"}",
        "{\"action\":\"subscribe\",\"collection\":\"has space\"}",
        "{\"action\":\"subscribe\",\"topic\":\"caf\xC3\xA9\"}",
        "{\"action\":\"publish\",\"topic\":\"a.*\"}",
        "{\"action\":\"publish\",\"topic\":\">\"}",
        "{\"action\":\"presence\",\"topic\":\"room.*\"}",
        "{\"action\":\"unsubscribe\",\"topic\":\"a.\"}",
    };
    struct rc_client_msg m;
    struct rc_err e = {0};

    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        assert_int_equal(parse(bad[i], &m, &e), -EINVAL);
        assert_string_equal(e.code, "bad_topic");
        assert_int_equal(strncmp(e.msg, "topic ", 6), 0);
        assert_null(m.topic);
        rc_msg_fini(&m);
    }
}

static void test_msg_unsubscribe_refuses_both_subscription_and_topic(void **state)
{
    (void)state;
    parse_fails("{\"action\":\"unsubscribe\",\"subscription\":\"s1\",\"topic\":\"a\"}", "bad_value",
                "unsubscribe takes \"subscription\" or \"topic\" (or \"collection\"), not both");
}

static void test_msg_string_lengths_are_capped(void **state)
{
    (void)state;
    char buf[512];

    parse_fails("{\"action\":\"auth\",\"token\":\"\"}", "bad_value",
                "auth: \"token\" is empty; send a JWT");
    parse_fails("{\"action\":\"unsubscribe\",\"subscription\":\"\"}", "bad_value",
                "unsubscribe: \"subscription\" is 0 bytes; use 1..64 bytes");
    snprintf(buf, sizeof(buf), "{\"action\":\"unsubscribe\",\"subscription\":\"%065d\"}", 0);
    parse_fails(buf, "bad_value", "unsubscribe: \"subscription\" is 65 bytes; use 1..64 bytes");
    parse_fails("{\"action\":\"subscribe\",\"topic\":\"a\",\"since\":\"\"}", "bad_value",
                "subscribe: \"since\" is 0 bytes; use 1..128 bytes");
    snprintf(buf, sizeof(buf), "{\"action\":\"subscribe\",\"topic\":\"a\",\"since\":\"%0129d\"}",
             0);
    parse_fails(buf, "bad_value", "subscribe: \"since\" is 129 bytes; use 1..128 bytes");
}

static void test_msg_publish_event_type_is_checked(void **state)
{
    (void)state;
    char buf[256];

    parse_fails("{\"action\":\"publish\",\"topic\":\"a\",\"type\":\"\"}", "bad_value",
                "publish: event type \"\" must be 1..64 printable ASCII characters without spaces, "
                "like \"record.created\"");
    parse_fails("{\"action\":\"publish\",\"topic\":\"a\",\"type\":\"two words\"}", "bad_value",
                "publish: event type \"two words\" must be 1..64 printable ASCII characters "
                "without spaces, like \"record.created\"");
    parse_fails("{\"action\":\"publish\",\"topic\":\"a\",\"event\":\"x\\ny\"}", "bad_value",
                "publish: event type \"x?y\" must be 1..64 printable ASCII characters without "
                "spaces, like \"record.created\"");
    snprintf(buf, sizeof(buf), "{\"action\":\"publish\",\"topic\":\"a\",\"type\":\"%065d\"}", 0);
    parse_fails(buf, "bad_value",
                "publish: event type \"00000000000000000000000000000000...\" must be 1..64 "
                "printable ASCII characters without spaces, like \"record.created\"");
    parse_fails("{\"action\":\"publish\",\"topic\":\"a\",\"type\":\"x\",\"event\":\"y\"}",
                "bad_value",
                "publish: \"type\" and \"event\" differ; give only one (\"event\" is an alias)");
}

/* A whole-message parser: every proper prefix of a valid message is refused
 * cleanly as bad_json (the WebSocket layer hands over complete messages). */
static void test_msg_every_prefix_of_valid_messages_is_bad_json(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{\"id\":\"r1\",\"action\":\"subscribe\",\"collection\":\"posts\",\"filter\":{\"a\":[1,"
        "2.5,\"x\\\"y\",null,true]},\"since\":\"9\",\"include_initial\":true}",
        "{\"action\":\"publish\",\"id\":12,\"topic\":\"a.b\",\"type\":\"t\",\"data\":{\"k\":"
        "\"\\u00e9"
        "\"}}",
        "{\"type\":\"message\",\"payload\":\"Hello, server!\"}",
        " { \"action\" : \"pong\" } ",
    };

    for (size_t g = 0; g < RC_ARRAY_LEN(good); g++) {
        size_t n = strlen(good[g]);
        struct rc_client_msg m;
        struct rc_err e = {0};

        assert_int_equal(rc_msg_parse(good[g], n, NULL, &m, &e), 0);
        rc_msg_fini(&m);
        for (size_t k = 0; k < n; k++) {
            int rc = rc_msg_parse(good[g], k, NULL, &m, &e);

            /* " { \"action\" : \"pong\" } " minus its trailing space still parses */
            if (g == 3 && k == n - 1) {
                assert_int_equal(rc, 0);
            } else {
                assert_int_equal(rc, -EINVAL);
                assert_string_equal(e.code, "bad_json");
            }
            rc_msg_fini(&m);
        }
    }
}

/* ---- replies ---------------------------------------------------------------- */

static void test_msg_error_encodes_without_and_with_ids(void **state)
{
    (void)state;
    char out[256];
    json_t *sid = json_string("req-1"), *iid = json_integer(-42);

    assert_out(out, rc_msg_error(out, sizeof(out), NULL, "bad_json", "oops"),
               "{\"type\":\"error\",\"data\":{\"code\":\"bad_json\",\"message\":\"oops\"}}");
    assert_out(out, rc_msg_error(out, sizeof(out), sid, "forbidden", "no"),
               "{\"type\":\"error\",\"data\":{\"code\":\"forbidden\",\"message\":\"no\",\"id\":"
               "\"req-1\"}}");
    assert_out(out, rc_msg_error(out, sizeof(out), iid, "x", NULL),
               "{\"type\":\"error\",\"data\":{\"code\":\"x\",\"message\":\"\",\"id\":-42}}");
    json_decref(sid);
    json_decref(iid);
}

static void test_msg_error_ignores_ids_of_other_types(void **state)
{
    (void)state;
    char out[128];
    json_t *arr = json_array();

    assert_out(out, rc_msg_error(out, sizeof(out), arr, "c", "m"),
               "{\"type\":\"error\",\"data\":{\"code\":\"c\",\"message\":\"m\"}}");
    json_decref(arr);
}

static void test_msg_encoder_escapes_json_specials(void **state)
{
    (void)state;
    char out[256];

    assert_out(out,
               rc_msg_error(out, sizeof(out), NULL, "c",
                            "q\" b\\ n\n r\r t\t b\b f\f 1\x01 1f\x1f del\x7f /"),
               "{\"type\":\"error\",\"data\":{\"code\":\"c\",\"message\":\"q\\\" b\\\\ n\\n r\\r "
               "t\\t b\\b f\\f 1\\u0001 1f\\u001f del\x7f /\"}}");
}

static void test_msg_encoder_keeps_valid_utf8(void **state)
{
    (void)state;
    char out[256];

    /* U+00E9, U+20AC, U+1F600, U+10FFFF, U+FFFD itself */
    assert_out(out,
               rc_msg_error(out, sizeof(out), NULL, "c",
                            "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\xEF\xBF\xBD"),
               "{\"type\":\"error\",\"data\":{\"code\":\"c\",\"message\":\"\xC3\xA9\xE2\x82\xAC\xF0"
               "\x9F\x98\x80\xF4\x8F\xBF\xBF\xEF\xBF\xBD\"}}");
}

static void test_msg_encoder_replaces_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\x80z", "a\xEF\xBF\xBDz"},                                 /* lone continuation */
        {"a\xC0\xAFz", "a\xEF\xBF\xBD\xEF\xBF\xBDz"},                 /* overlong: 2 bad bytes */
        {"a\xE2\x82z", "a\xEF\xBF\xBDz"},                             /* truncated: 1 subpart */
        {"a\xED\xA0\x80z", "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz"}, /* surrogate */
        {"a\xF4\x90\x80\x80z",
         "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz"},   /* > U+10FFFF */
        {"a\xF5z", "a\xEF\xBF\xBDz"},                             /* never a lead byte */
        {"a\xF0\x9F\x98", "a\xEF\xBF\xBD"},                       /* cut at the end */
        {"\xE0\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong 3-byte */
    };
    char out[128], want[128];

    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        snprintf(want, sizeof(want),
                 "{\"type\":\"error\",\"data\":{\"code\":\"c\",\"message\":\"%s\"}}", cases[i].out);
        assert_out(out, rc_msg_error(out, sizeof(out), NULL, "c", cases[i].in), want);
    }
}

static void test_msg_encoder_escapes_string_ids(void **state)
{
    (void)state;
    char out[128];
    json_t *id = json_string("a\"b\n");

    assert_out(out, rc_msg_reply(out, sizeof(out), "pong", id, NULL),
               "{\"type\":\"pong\",\"id\":\"a\\\"b\\n\",\"data\":{}}");
    json_decref(id);
}

static void test_msg_reply_encodes_data(void **state)
{
    (void)state;
    char out[256];
    json_t *id = json_integer(3);
    json_t *data = json_pack("{s:s, s:s, s:[i,b,n], s:s}", "subscription", "s-1", "topic", "posts",
                             "list", 1, 1, "text", "\xC3\xA9\n");

    assert_non_null(data);
    assert_out(out, rc_msg_reply(out, sizeof(out), "subscribed", id, data),
               "{\"type\":\"subscribed\",\"id\":3,\"data\":{\"subscription\":\"s-1\",\"topic\":"
               "\"posts\",\"list\":[1,true,null],\"text\":\"\xC3\xA9\\n\"}}");
    assert_out(out, rc_msg_reply(out, sizeof(out), "unsubscribed", NULL, data),
               "{\"type\":\"unsubscribed\",\"data\":{\"subscription\":\"s-1\",\"topic\":"
               "\"posts\",\"list\":[1,true,null],\"text\":\"\xC3\xA9\\n\"}}");
    json_decref(data);
    data = json_string("plain");
    assert_out(out, rc_msg_reply(out, sizeof(out), "x", NULL, data),
               "{\"type\":\"x\",\"data\":\"plain\"}");
    json_decref(data);
    json_decref(id);
}

static void test_msg_reply_refuses_data_jansson_cannot_encode(void **state)
{
    (void)state;
    char out[128];
    json_t *data = json_stringn_nocheck("\xFF", 1);

    assert_int_equal(rc_msg_reply(out, sizeof(out), "x", NULL, data), -EINVAL);
    json_decref(data);
}

/* Every capacity short of the full length gives -ENOSPC and writes nothing
 * past cap; the exact length fits. */
static void check_every_cap(ssize_t (*enc)(char *, size_t, const void *), const void *arg)
{
    char full[512], buf[512 + 16];
    ssize_t n = enc(full, sizeof(full), arg);

    assert_true(n > 0);
    for (size_t cap = 0; cap < (size_t)n; cap++) {
        memset(buf, '#', sizeof(buf));
        assert_int_equal(enc(buf, cap, arg), -ENOSPC);
        for (size_t i = cap; i < sizeof(buf); i++)
            assert_int_equal(buf[i], '#');
    }
    memset(buf, '#', sizeof(buf));
    assert_int_equal(enc(buf, (size_t)n, arg), n);
    assert_memory_equal(buf, full, (size_t)n);
    assert_int_equal(buf[n], '#');
}

static ssize_t enc_error(char *out, size_t cap, const void *arg)
{
    return rc_msg_error(out, cap, arg, "bad\"code", "line\nbreak \xC3\xA9 \xFF end");
}

static ssize_t enc_reply(char *out, size_t cap, const void *arg)
{
    const json_t *const *v = arg;

    return rc_msg_reply(out, cap, "subscribed", v[0], v[1]);
}

static void test_msg_encoders_return_enospc_at_every_short_cap(void **state)
{
    (void)state;
    json_t *id = json_string("r\"1");
    json_t *data = json_pack("{s:s,s:[i,i]}", "subscription", "s-1", "n", 1, 2);
    const json_t *args[2] = {id, data};
    const json_t *args_null[2] = {NULL, NULL};

    check_every_cap(enc_error, id);
    check_every_cap(enc_error, NULL);
    check_every_cap(enc_reply, args);
    check_every_cap(enc_reply, args_null);
    json_decref(id);
    json_decref(data);
}

/* The error reply for a failed parse round-trips through a JSON parser. */
static void test_msg_error_reply_round_trips(void **state)
{
    (void)state;
    struct rc_client_msg m;
    struct rc_err e = {0};
    char out[512];
    ssize_t n;
    json_t *back;

    assert_int_equal(parse("{\"id\":\"x\\u0007\",\"action\":\"subscribe\",\"topic\":\"caf\\u00e9"
                           "\\t\"}",
                           &m, &e),
                     -EINVAL);
    n = rc_msg_error(out, sizeof(out), m.id, e.code, e.msg);
    assert_true(n > 0);
    back = json_loadb(out, (size_t)n, 0, NULL);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(back, "data"), "code")),
                        "bad_topic");
    assert_string_equal(json_string_value(json_object_get(json_object_get(back, "data"), "id")),
                        "x\a");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(back, "data"), "message")), e.msg);
    json_decref(back);
    rc_msg_fini(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_auth_reads_token),
        cmocka_unit_test(test_msg_subscribe_topic_only_has_defaults),
        cmocka_unit_test(test_msg_subscribe_reads_all_fields),
        cmocka_unit_test(test_msg_subscribe_collection_alias_sets_via_collection),
        cmocka_unit_test(test_msg_subscribe_lone_star_is_a_pattern),
        cmocka_unit_test(test_msg_subscribe_equal_topic_and_collection_is_accepted),
        cmocka_unit_test(test_msg_subscribe_null_fields_count_as_absent),
        cmocka_unit_test(test_msg_subscribe_include_initial_false),
        cmocka_unit_test(test_msg_unsubscribe_by_subscription),
        cmocka_unit_test(test_msg_unsubscribe_by_topic_or_collection),
        cmocka_unit_test(test_msg_publish_defaults_type_and_data),
        cmocka_unit_test(test_msg_publish_reads_type_and_data),
        cmocka_unit_test(test_msg_publish_event_is_an_alias_of_type),
        cmocka_unit_test(test_msg_pong_and_ping_need_nothing),
        cmocka_unit_test(test_msg_presence_reads_topic),
        cmocka_unit_test(test_msg_message_action_reads_payload),
        cmocka_unit_test(test_msg_seed001_type_message_without_action),
        cmocka_unit_test(test_msg_ignores_unknown_fields),
        cmocka_unit_test(test_msg_id_accepts_string_up_to_64_bytes_and_integers),
        cmocka_unit_test(test_msg_action_names),
        cmocka_unit_test(test_msg_fini_is_idempotent),
        cmocka_unit_test(test_msg_bad_json_reports_line_and_column),
        cmocka_unit_test(test_msg_bad_json_for_non_objects),
        cmocka_unit_test(test_msg_bad_json_for_duplicate_keys),
        cmocka_unit_test(test_msg_bad_json_for_nul_and_invalid_utf8),
        cmocka_unit_test(test_msg_too_large_is_checked_before_parsing),
        cmocka_unit_test(test_msg_huge_message_is_refused_by_default_limit),
        cmocka_unit_test(test_msg_depth_limit_counts_root_as_one),
        cmocka_unit_test(test_msg_depth_ignores_brackets_inside_strings),
        cmocka_unit_test(test_msg_jansson_depth_cap_is_refused_cleanly),
        cmocka_unit_test(test_msg_deep_but_allowed_message_parses_and_encodes),
        cmocka_unit_test(test_msg_missing_action),
        cmocka_unit_test(test_msg_unknown_action_lists_known_ones),
        cmocka_unit_test(test_msg_unknown_action_is_quoted_short_and_printable),
        cmocka_unit_test(test_msg_missing_fields_are_named),
        cmocka_unit_test(test_msg_wrong_type_for_every_field),
        cmocka_unit_test(test_msg_filter_that_is_not_an_object_is_bad_filter),
        cmocka_unit_test(test_msg_auth_passes_a_long_token_to_the_verifier),
        cmocka_unit_test(test_msg_bad_id),
        cmocka_unit_test(test_msg_id_is_kept_when_a_later_check_fails),
        cmocka_unit_test(test_msg_topic_and_collection_that_differ),
        cmocka_unit_test(test_msg_bad_topics_come_from_the_topic_validator),
        cmocka_unit_test(test_msg_unsubscribe_refuses_both_subscription_and_topic),
        cmocka_unit_test(test_msg_string_lengths_are_capped),
        cmocka_unit_test(test_msg_publish_event_type_is_checked),
        cmocka_unit_test(test_msg_every_prefix_of_valid_messages_is_bad_json),
        cmocka_unit_test(test_msg_error_encodes_without_and_with_ids),
        cmocka_unit_test(test_msg_error_ignores_ids_of_other_types),
        cmocka_unit_test(test_msg_encoder_escapes_json_specials),
        cmocka_unit_test(test_msg_encoder_keeps_valid_utf8),
        cmocka_unit_test(test_msg_encoder_replaces_invalid_utf8),
        cmocka_unit_test(test_msg_encoder_escapes_string_ids),
        cmocka_unit_test(test_msg_reply_encodes_data),
        cmocka_unit_test(test_msg_reply_refuses_data_jansson_cannot_encode),
        cmocka_unit_test(test_msg_encoders_return_enospc_at_every_short_cap),
        cmocka_unit_test(test_msg_error_reply_round_trips),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
