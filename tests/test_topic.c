/* test_topic.c - topic/pattern syntax (every error with its message),
 * tokenising and the naive pattern matcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>

#include "ringcast/topic.h"

static int validate(const char *s, enum rc_topic_kind kind, struct rc_err *err)
{
    return rc_topic_validate(s, strlen(s), kind, err);
}

static void expect_bad(const char *s, enum rc_topic_kind kind, const char *msg)
{
    struct rc_err err = {0};
    assert_int_equal(validate(s, kind, &err), -EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "bad_topic");
    assert_string_equal(err.msg, msg);
}

static void test_topic_accepts_names(void **state)
{
    (void)state;
    struct rc_err err = {0};
    assert_int_equal(validate("a", RC_TOPIC_NAME, &err), 0);
    assert_int_equal(validate("project.42.models", RC_TOPIC_NAME, &err), 0);
    assert_int_equal(validate("A-b_c:d/e!~", RC_TOPIC_NAME, &err), 0);
    assert_int_equal(validate("project.42.models", RC_TOPIC_PATTERN, &err), 0);
}

static void test_topic_accepts_patterns(void **state)
{
    (void)state;
    struct rc_err err = {0};
    assert_int_equal(validate("*", RC_TOPIC_PATTERN, &err), 0);
    assert_int_equal(validate(">", RC_TOPIC_PATTERN, &err), 0);
    assert_int_equal(validate("a.*.c", RC_TOPIC_PATTERN, &err), 0);
    assert_int_equal(validate("a.>", RC_TOPIC_PATTERN, &err), 0);
    assert_int_equal(validate("*.*.>", RC_TOPIC_PATTERN, &err), 0);
}

static void test_topic_rejects_empty_topic(void **state)
{
    (void)state;
    expect_bad("", RC_TOPIC_NAME,
               "topic \"\": token 1 is empty; tokens are separated by single dots");
}

static void test_topic_rejects_empty_tokens(void **state)
{
    (void)state;
    expect_bad("a..b", RC_TOPIC_NAME,
               "topic \"a..b\": token 2 is empty; tokens are separated by single dots");
    expect_bad(".a", RC_TOPIC_PATTERN,
               "topic \".a\": token 1 is empty; tokens are separated by single dots");
    expect_bad("a.", RC_TOPIC_NAME,
               "topic \"a.\": token 2 is empty; tokens are separated by single dots");
}

static void test_topic_rejects_too_long(void **state)
{
    (void)state;
    char buf[RC_TOPIC_MAX_LEN + 2];
    struct rc_err err = {0};
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(rc_topic_validate(buf, RC_TOPIC_MAX_LEN, RC_TOPIC_NAME, &err), 0);
    assert_int_equal(rc_topic_validate(buf, RC_TOPIC_MAX_LEN + 1, RC_TOPIC_NAME, &err), -EINVAL);
    assert_string_equal(err.code, "bad_topic");
    assert_string_equal(err.msg,
                        "topic is 256 bytes long; the limit is 255 bytes, use a shorter topic");
}

static void test_topic_rejects_too_many_tokens(void **state)
{
    (void)state;
    char buf[128] = "";
    struct rc_err err = {0};
    for (int i = 0; i < RC_TOPIC_MAX_TOKENS; i++)
        strcat(buf, i ? ".a" : "a");
    assert_int_equal(validate(buf, RC_TOPIC_NAME, &err), 0);
    strcat(buf, ".a");
    assert_int_equal(validate(buf, RC_TOPIC_NAME, &err), -EINVAL);
    /* The message quotes the first 64 bytes ("a." 32 times) and elides the rest. */
    assert_string_equal(err.msg, "topic \"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
                                 "a.a.a.a....\": token 33 is one too many; use at most 32 tokens");
}

static void test_topic_rejects_space_control_and_non_ascii(void **state)
{
    (void)state;
    expect_bad("a.b c", RC_TOPIC_NAME,
               "topic \"a.b c\": token 2 has a space, control or non-ASCII byte; use printable "
               "ASCII without spaces");
    expect_bad("a\tb", RC_TOPIC_PATTERN,
               "topic \"a\tb\": token 1 has a space, control or non-ASCII byte; use printable "
               "ASCII without spaces");
    expect_bad("caf\xc3\xa9", RC_TOPIC_NAME,
               "topic \"caf\xc3\xa9\": token 1 has a space, control or non-ASCII byte; use "
               "printable ASCII without spaces");
    struct rc_err err = {0};
    assert_int_equal(rc_topic_validate("a\0b", 3, RC_TOPIC_NAME, &err), -EINVAL);
}

static void test_topic_rejects_wildcards_in_names(void **state)
{
    (void)state;
    expect_bad("a.*", RC_TOPIC_NAME,
               "topic \"a.*\": token 2 has a wildcard; wildcards '*' and '>' are only allowed in "
               "subscription patterns");
    expect_bad(">", RC_TOPIC_NAME,
               "topic \">\": token 1 has a wildcard; wildcards '*' and '>' are only allowed in "
               "subscription patterns");
}

static void test_topic_rejects_partial_wildcard_tokens(void **state)
{
    (void)state;
    expect_bad("a.b*", RC_TOPIC_PATTERN,
               "topic \"a.b*\": token 2 mixes a wildcard with other characters; '*' and '>' must "
               "be whole tokens (\"a.*.c\", \"a.>\")");
    expect_bad(">>", RC_TOPIC_PATTERN,
               "topic \">>\": token 1 mixes a wildcard with other characters; '*' and '>' must "
               "be whole tokens (\"a.*.c\", \"a.>\")");
}

static void test_topic_rejects_gt_before_last(void **state)
{
    (void)state;
    expect_bad("a.>.c", RC_TOPIC_PATTERN,
               "topic \"a.>.c\": token 2 is '>' but is not the last; '>' may only be the last "
               "token");
}

static void test_topic_long_topic_is_elided_in_message(void **state)
{
    (void)state;
    char buf[200];
    struct rc_err err = {0};
    memset(buf, 'x', sizeof(buf));
    buf[150] = ' ';
    assert_int_equal(rc_topic_validate(buf, sizeof(buf), RC_TOPIC_NAME, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "xxx...\": token 1 has a space"));
}

/* Every prefix of a valid name is valid unless it ends in a dot. */
static void test_topic_every_prefix(void **state)
{
    (void)state;
    const char *s = "project.42.models.x";
    struct rc_err err;
    for (size_t i = 1; i <= strlen(s); i++) {
        int want = s[i - 1] == '.' ? -EINVAL : 0;
        assert_int_equal(rc_topic_validate(s, i, RC_TOPIC_NAME, &err), want);
    }
}

/* Every single byte: which are valid one-byte names and patterns. */
static void test_topic_every_byte(void **state)
{
    (void)state;
    struct rc_err err;
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        bool printable = c >= 0x21 && c <= 0x7e;
        bool wild = c == '*' || c == '>';
        assert_int_equal(rc_topic_validate(&b, 1, RC_TOPIC_NAME, &err) == 0,
                         printable && !wild && c != '.');
        assert_int_equal(rc_topic_validate(&b, 1, RC_TOPIC_PATTERN, &err) == 0,
                         printable && c != '.');
    }
}

static void test_topic_is_pattern(void **state)
{
    (void)state;
    assert_true(rc_topic_is_pattern("*", 1));
    assert_true(rc_topic_is_pattern("a.>", 3));
    assert_true(rc_topic_is_pattern("a.*.b", 5));
    assert_false(rc_topic_is_pattern("a.b", 3));
    assert_false(rc_topic_is_pattern("a*.b", 4));
    assert_false(rc_topic_is_pattern("", 0));
}

static void test_topic_split(void **state)
{
    (void)state;
    struct rc_slice t[3];
    assert_int_equal(rc_topic_split("a.bc.d", 6, t, 3), 3);
    assert_true(rc_slice_eq(t[0], "a"));
    assert_true(rc_slice_eq(t[1], "bc"));
    assert_true(rc_slice_eq(t[2], "d"));
    assert_int_equal(rc_topic_split("a.b.c.d", 7, t, 3), 4);
    assert_true(rc_slice_eq(t[2], "c"));
    assert_int_equal(rc_topic_split("", 0, t, 3), 1);
    assert_int_equal(t[0].n, 0);
    assert_int_equal(rc_topic_split("a..", 3, t, 3), 3);
    assert_int_equal(t[1].n, 0);
    assert_int_equal(t[2].n, 0);
}

static bool m(const char *pat, const char *topic)
{
    return rc_topic_match(pat, strlen(pat), topic, strlen(topic));
}

static void test_topic_match_exact(void **state)
{
    (void)state;
    assert_true(m("a.b.c", "a.b.c"));
    assert_false(m("a.b.c", "a.b.d"));
    assert_false(m("a.b", "a.b.c"));
    assert_false(m("a.b.c", "a.b"));
    assert_false(m("a.b", "a.bc"));
    assert_false(m("ab", "a"));
}

static void test_topic_match_star_is_one_token(void **state)
{
    (void)state;
    assert_true(m("a.*.c", "a.b.c"));
    assert_true(m("a.*.c", "a.xyz.c"));
    assert_false(m("a.*.c", "a.c"));
    assert_false(m("a.*.c", "a.b.b.c"));
    assert_true(m("*.*", "x.y"));
    assert_false(m("*.*", "x"));
}

static void test_topic_match_lone_star_matches_single_token_topics(void **state)
{
    (void)state;
    assert_true(m("*", "posts"));
    assert_false(m("*", "posts.1"));
}

static void test_topic_match_gt_matches_one_or_more_tokens(void **state)
{
    (void)state;
    assert_true(m("a.>", "a.b"));
    assert_true(m("a.>", "a.b.c.d"));
    assert_false(m("a.>", "a"));
    assert_false(m("a.>", "b.c"));
    assert_true(m("a.*.>", "a.b.c"));
    assert_false(m("a.*.>", "a.b"));
}

static void test_topic_match_lone_gt_matches_everything(void **state)
{
    (void)state;
    assert_true(m(">", "a"));
    assert_true(m(">", "a.b.c"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_accepts_names),
        cmocka_unit_test(test_topic_accepts_patterns),
        cmocka_unit_test(test_topic_rejects_empty_topic),
        cmocka_unit_test(test_topic_rejects_empty_tokens),
        cmocka_unit_test(test_topic_rejects_too_long),
        cmocka_unit_test(test_topic_rejects_too_many_tokens),
        cmocka_unit_test(test_topic_rejects_space_control_and_non_ascii),
        cmocka_unit_test(test_topic_rejects_wildcards_in_names),
        cmocka_unit_test(test_topic_rejects_partial_wildcard_tokens),
        cmocka_unit_test(test_topic_rejects_gt_before_last),
        cmocka_unit_test(test_topic_long_topic_is_elided_in_message),
        cmocka_unit_test(test_topic_every_prefix),
        cmocka_unit_test(test_topic_every_byte),
        cmocka_unit_test(test_topic_is_pattern),
        cmocka_unit_test(test_topic_split),
        cmocka_unit_test(test_topic_match_exact),
        cmocka_unit_test(test_topic_match_star_is_one_token),
        cmocka_unit_test(test_topic_match_lone_star_matches_single_token_topics),
        cmocka_unit_test(test_topic_match_gt_matches_one_or_more_tokens),
        cmocka_unit_test(test_topic_match_lone_gt_matches_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
