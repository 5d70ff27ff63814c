/* test_filter.c - the filter language: compile every operator, refuse every
 * error with its message, canonical form, clone, and the naive evaluator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/filter.h"

static struct rc_filter *compile(const char *text)
{
    struct rc_filter *f = NULL;
    struct rc_err err = {0};
    int rc = rc_filter_parse_text(text, strlen(text), NULL, &f, &err);
    if (rc)
        fail_msg("compile %s: %s", text, err.msg);
    return f;
}

static void expect_canonical(const char *text, const char *canon)
{
    struct rc_filter *f = compile(text);
    assert_string_equal(rc_filter_canonical(f), canon);
    assert_int_equal(f->canonical_len, strlen(canon));
    rc_filter_free(f);
}

static void expect_bad_lim(const char *text, const struct rc_filter_limits *lim, const char *msg)
{
    struct rc_filter *f = (struct rc_filter *)1;
    struct rc_err err = {0};
    assert_int_equal(rc_filter_parse_text(text, strlen(text), lim, &f, &err), -EINVAL);
    assert_null(f);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "bad_filter");
    assert_string_equal(err.msg, msg);
}

static void expect_bad(const char *text, const char *msg)
{
    expect_bad_lim(text, NULL, msg);
}

static bool eval(const char *filter, const char *data)
{
    struct rc_filter *f = compile(filter);
    json_error_t jerr;
    json_t *d = json_loads(data, JSON_DECODE_ANY, &jerr);
    assert_non_null(d);
    bool r = rc_filter_eval(f, d);
    json_decref(d);
    rc_filter_free(f);
    return r;
}

/* ---- compile: every operator ------------------------------------------------- */

static void test_filter_compiles_shorthand_equality(void **state)
{
    (void)state;
    struct rc_filter *f = compile("{\"published\": true}");
    assert_int_equal(f->npreds, 1);
    assert_string_equal(f->preds[0].path, "published");
    assert_int_equal(f->preds[0].path_len, 9);
    assert_int_equal(f->preds[0].op, RC_FOP_EQ);
    assert_int_equal(f->preds[0].nvals, 1);
    assert_int_equal(f->preds[0].vals[0].type, RC_FVAL_TRUE);
    assert_string_equal(rc_filter_canonical(f), "{\"published\":{\"$eq\":true}}");
    rc_filter_free(f);
}

static void test_filter_compiles_every_scalar_operator(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum rc_fop op;
    } ops[] = {{"$eq", RC_FOP_EQ},   {"$ne", RC_FOP_NE}, {"$gt", RC_FOP_GT},
               {"$gte", RC_FOP_GTE}, {"$lt", RC_FOP_LT}, {"$lte", RC_FOP_LTE}};
    for (size_t i = 0; i < RC_ARRAY_LEN(ops); i++) {
        char text[64], canon[64];
        snprintf(text, sizeof(text), "{\"a.b\": {\"%s\": 2.5}}", ops[i].name);
        snprintf(canon, sizeof(canon), "{\"a.b\":{\"%s\":2.5}}", ops[i].name);
        struct rc_filter *f = compile(text);
        assert_int_equal(f->npreds, 1);
        assert_string_equal(f->preds[0].path, "a.b");
        assert_int_equal(f->preds[0].op, ops[i].op);
        assert_int_equal(f->preds[0].vals[0].type, RC_FVAL_NUM);
        assert_true(f->preds[0].vals[0].num == 2.5);
        assert_string_equal(rc_filter_canonical(f), canon);
        assert_string_equal(rc_fop_name(ops[i].op), ops[i].name);
        rc_filter_free(f);
    }
}

static void test_filter_compiles_in_sorted_and_deduplicated(void **state)
{
    (void)state;
    struct rc_filter *f = compile("{\"id\": {\"$in\": [\"b\", 3, null, 1.0, \"a\", 1, true]}}");
    assert_int_equal(f->preds[0].op, RC_FOP_IN);
    assert_int_equal(f->preds[0].nvals, 6);
    assert_int_equal(f->preds[0].vals[0].type, RC_FVAL_NULL);
    assert_int_equal(f->preds[0].vals[1].type, RC_FVAL_TRUE);
    assert_true(f->preds[0].vals[2].num == 1);
    assert_true(f->preds[0].vals[3].num == 3);
    assert_string_equal(f->preds[0].vals[4].str, "a");
    assert_string_equal(f->preds[0].vals[5].str, "b");
    assert_string_equal(rc_filter_canonical(f), "{\"id\":{\"$in\":[null,true,1,3,\"a\",\"b\"]}}");
    rc_filter_free(f);
}

static void test_filter_compiles_nin_and_empty_lists(void **state)
{
    (void)state;
    expect_canonical("{\"x\": {\"$nin\": [2, 1, 2]}}", "{\"x\":{\"$nin\":[1,2]}}");
    expect_canonical("{\"x\": {\"$in\": []}}", "{\"x\":{\"$in\":[]}}");
    expect_canonical("{\"x\": {\"$nin\": []}}", "{\"x\":{\"$nin\":[]}}");
}

static void test_filter_compiles_exists(void **state)
{
    (void)state;
    struct rc_filter *f = compile("{\"x\": {\"$exists\": false}}");
    assert_int_equal(f->preds[0].op, RC_FOP_EXISTS);
    assert_int_equal(f->preds[0].vals[0].type, RC_FVAL_FALSE);
    assert_string_equal(rc_filter_canonical(f), "{\"x\":{\"$exists\":false}}");
    rc_filter_free(f);
}

static void test_filter_compiles_several_operators_on_one_field(void **state)
{
    (void)state;
    struct rc_filter *f = compile("{\"p\": {\"$lt\": 5, \"$gt\": 1}, \"a\": \"x\"}");
    assert_int_equal(f->npreds, 3);
    assert_string_equal(f->preds[0].path, "a");
    assert_int_equal(f->preds[1].op, RC_FOP_GT);
    assert_int_equal(f->preds[2].op, RC_FOP_LT);
    assert_string_equal(rc_filter_canonical(f),
                        "{\"a\":{\"$eq\":\"x\"},\"p\":{\"$gt\":1,\"$lt\":5}}");
    rc_filter_free(f);
}

static void test_filter_empty_object_has_no_conditions(void **state)
{
    (void)state;
    struct rc_filter *f = compile("{}");
    assert_int_equal(f->npreds, 0);
    assert_string_equal(rc_filter_canonical(f), "{}");
    rc_filter_free(f);
}

static void test_filter_compile_from_json_value(void **state)
{
    (void)state;
    struct rc_err err = {0};
    json_t *j = json_pack("{s:{s:i}}", "n", "$gte", 3);
    struct rc_filter *f = rc_filter_compile(j, NULL, &err);
    assert_non_null(f);
    assert_string_equal(rc_filter_canonical(f), "{\"n\":{\"$gte\":3}}");
    rc_filter_free(f);
    json_decref(j);
    assert_null(rc_filter_compile(NULL, NULL, &err));
    assert_string_equal(err.msg,
                        "filter: must be a JSON object like {\"published\": true}, got nothing");
}

/* ---- canonical form ------------------------------------------------------------ */

static void test_filter_canonical_sorts_keys_and_normalises_numbers(void **state)
{
    (void)state;
    struct rc_filter *a = compile("{\"a\": 1.0, \"b\": 2}");
    struct rc_filter *b = compile("{\"b\": 2, \"a\": {\"$eq\": 1}}");
    assert_string_equal(rc_filter_canonical(a), "{\"a\":{\"$eq\":1},\"b\":{\"$eq\":2}}");
    assert_string_equal(rc_filter_canonical(a), rc_filter_canonical(b));
    assert_true(a->hash == b->hash);
    rc_filter_free(a);
    rc_filter_free(b);
}

static void test_filter_canonical_numbers(void **state)
{
    (void)state;
    expect_canonical("{\"a\": -0.0}", "{\"a\":{\"$eq\":0}}");
    expect_canonical("{\"a\": 1e2}", "{\"a\":{\"$eq\":100}}");
    expect_canonical("{\"a\": 0.5}", "{\"a\":{\"$eq\":0.5}}");
    expect_canonical("{\"a\": -7}", "{\"a\":{\"$eq\":-7}}");
    expect_canonical("{\"a\": 9007199254740992}", "{\"a\":{\"$eq\":9007199254740992}}");
    expect_canonical("{\"a\": 1e300}", "{\"a\":{\"$eq\":1.0000000000000001e300}}");
}

static void test_filter_canonical_recompiles_to_itself(void **state)
{
    (void)state;
    const char *texts[] = {
        "{\"z\": {\"$in\": [3, \"q\\u0000r\", false]}, \"a.b\": 0.1, \"m\": {\"$exists\": true}}",
        "{\"s\": {\"$gte\": \"caf\\u00e9\", \"$ne\": null}, \"big\": 123456789012345678}",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(texts); i++) {
        struct rc_filter *a = compile(texts[i]);
        struct rc_filter *b = compile(rc_filter_canonical(a));
        assert_string_equal(rc_filter_canonical(a), rc_filter_canonical(b));
        rc_filter_free(a);
        rc_filter_free(b);
    }
}

static void test_filter_clone_is_independent(void **state)
{
    (void)state;
    struct rc_filter *a = compile("{\"s\": {\"$in\": [\"x\", \"yy\"]}, \"t\": 1}");
    struct rc_filter *b = rc_filter_clone(a);
    char canon[128];
    snprintf(canon, sizeof(canon), "%s", rc_filter_canonical(a));
    rc_filter_free(a);
    assert_string_equal(rc_filter_canonical(b), canon);
    assert_int_equal(b->npreds, 2);
    assert_string_equal(b->preds[0].path, "s");
    assert_string_equal(b->preds[0].vals[1].str, "yy");
    assert_int_equal(b->preds[0].vals[1].len, 2);
    assert_string_equal(b->preds[1].path, "t");
    rc_filter_free(b);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_filter_rejects_non_object(void **state)
{
    (void)state;
    expect_bad("[1]", "filter: must be a JSON object like {\"published\": true}, got an array");
    expect_bad("3", "filter: must be a JSON object like {\"published\": true}, got a number");
}

static void test_filter_rejects_unknown_operator(void **state)
{
    (void)state;
    expect_bad("{\"title\": {\"$regex\": \"a\"}}",
               "filter: unknown operator \"$regex\" at data.title; allowed: $eq $ne $in $nin $gt "
               "$gte $lt $lte $exists");
}

static void test_filter_rejects_top_level_operator(void **state)
{
    (void)state;
    expect_bad("{\"$or\": [{\"a\": 1}]}",
               "filter: top-level operator \"$or\" is not supported; conditions side by side are "
               "and-ed, use $in for alternatives of one field");
}

static void test_filter_rejects_object_value(void **state)
{
    (void)state;
    expect_bad("{\"author\": {\"id\": 5}}",
               "filter: value at data.author is an object; only scalar values (string, number, "
               "boolean, null) can be compared, reach nested fields with a dotted path (\"a.b\": "
               "1) or use operators ({\"$gt\": 1})");
    expect_bad("{\"author\": {}}",
               "filter: value at data.author is an object; only scalar values (string, number, "
               "boolean, null) can be compared, reach nested fields with a dotted path (\"a.b\": "
               "1) or use operators ({\"$gt\": 1})");
}

static void test_filter_rejects_mixed_operators_and_fields(void **state)
{
    (void)state;
    expect_bad("{\"a\": {\"$gt\": 1, \"b\": 2}}",
               "filter: operators at data.a are mixed with field names; use \"a.b\" paths for "
               "nested fields and operators alone in an object");
}

static void test_filter_rejects_array_equality(void **state)
{
    (void)state;
    expect_bad("{\"tags\": [1, 2]}",
               "filter: $eq at data.tags has an array; only scalar values (string, number, "
               "boolean, null) can be compared, use a dotted path to reach nested fields");
    expect_bad("{\"tags\": {\"$ne\": {}}}",
               "filter: $ne at data.tags has an object; only scalar values (string, number, "
               "boolean, null) can be compared, use a dotted path to reach nested fields");
}

static void test_filter_rejects_bad_in(void **state)
{
    (void)state;
    expect_bad("{\"id\": {\"$in\": 3}}",
               "filter: $in at data.id needs an array of values, got a number");
    expect_bad("{\"id\": {\"$nin\": [1, [2]]}}",
               "filter: $nin at data.id has an array; only scalar values (string, number, "
               "boolean, null) can be compared, use a dotted path to reach nested fields");
    struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
    lim.max_in = 2;
    expect_bad_lim("{\"id\": {\"$in\": [1, 2, 3]}}", &lim,
                   "filter: $in at data.id lists 3 values; the limit is 2");
}

static void test_filter_rejects_bad_range_value(void **state)
{
    (void)state;
    expect_bad("{\"p\": {\"$gt\": true}}",
               "filter: $gt at data.p needs a number or a string, got a boolean");
    expect_bad("{\"p\": {\"$lte\": null}}",
               "filter: $lte at data.p needs a number or a string, got null");
}

static void test_filter_rejects_bad_exists(void **state)
{
    (void)state;
    expect_bad("{\"p\": {\"$exists\": 1}}",
               "filter: $exists at data.p needs true or false, got a number");
}

static void test_filter_rejects_bad_paths(void **state)
{
    (void)state;
    expect_bad("{\"\": 1}",
               "filter: empty field name; name a field of data, e.g. {\"published\": true}");
    expect_bad(
        "{\"a..b\": 1}",
        "filter: path data.a..b has an empty segment; separate field names with single dots");
    expect_bad("{\"a.\": 1}",
               "filter: path data.a. has an empty segment; separate field names with single dots");
    expect_bad("{\".a\": 1}",
               "filter: path data..a has an empty segment; separate field names with single dots");
    expect_bad("{\"a\\tb\": 1}",
               "filter: path data.a\tb contains a control byte; use printable field names");
    expect_bad("{\"a.b.c.d.e.f.g.h.i\": 1}",
               "filter: path data.a.b.c.d.e.f.g.h.i has 9 segments; the limit is 8");
    struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
    lim.max_path_len = 3;
    expect_bad_lim("{\"abcd\": 1}", &lim, "filter: path data.abcd is 4 bytes; the limit is 3");
}

static void test_filter_rejects_too_many_conditions(void **state)
{
    (void)state;
    struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
    lim.max_conditions = 2;
    expect_bad_lim("{\"a\": {\"$gt\": 1, \"$lt\": 3}, \"b\": 1}", &lim,
                   "filter: more than 2 conditions (at data.b $eq); split the subscription");
}

static void test_filter_rejects_oversized_text_before_parsing(void **state)
{
    (void)state;
    struct rc_filter_limits lim = RC_FILTER_LIMITS_DEFAULT;
    lim.max_text = 8;
    expect_bad_lim("{\"abc\": 1}", &lim, "filter: text is 10 bytes; the limit is 8");
}

static void test_filter_rejects_invalid_json_and_duplicates(void **state)
{
    (void)state;
    expect_bad("{\"a\": }", "filter: not valid JSON at byte 7: unexpected token near '}'");
    expect_bad("{\"a\": 1, \"a\": 2}",
               "filter: not valid JSON at byte 12: duplicate object key near '\"a\"'");
}

/* A strict prefix of a filter text is never a filter. */
static void test_filter_every_prefix_is_refused(void **state)
{
    (void)state;
    const char *text = "{\"a.b\": {\"$in\": [1, \"x\"]}, \"c\": {\"$exists\": true}}";
    for (size_t i = 0; i < strlen(text); i++) {
        struct rc_filter *f = NULL;
        struct rc_err err = {0};
        assert_int_equal(rc_filter_parse_text(text, i, NULL, &f, &err), -EINVAL);
        assert_null(f);
        assert_string_equal(err.code, "bad_filter");
    }
    rc_filter_free(compile(text));
}

/* ---- evaluation ----------------------------------------------------------------- */

static void test_filter_eval_equality_types(void **state)
{
    (void)state;
    assert_true(eval("{\"a\": 1}", "{\"a\": 1.0}"));
    assert_true(eval("{\"a\": 1.0}", "{\"a\": 1}"));
    assert_false(eval("{\"a\": 1}", "{\"a\": \"1\"}"));
    assert_false(eval("{\"a\": \"1\"}", "{\"a\": 1}"));
    assert_true(eval("{\"a\": null}", "{\"a\": null}"));
    assert_false(eval("{\"a\": null}", "{}"));
    assert_false(eval("{\"a\": false}", "{\"a\": 0}"));
    assert_false(eval("{\"a\": true}", "{\"a\": {}}"));
    assert_true(eval("{\"a\": 0}", "{\"a\": -0.0}"));
}

static void test_filter_eval_ne_and_nin_hold_when_missing(void **state)
{
    (void)state;
    assert_true(eval("{\"a\": {\"$ne\": 1}}", "{}"));
    assert_true(eval("{\"a\": {\"$ne\": 1}}", "{\"a\": 2}"));
    assert_false(eval("{\"a\": {\"$ne\": 1}}", "{\"a\": 1.0}"));
    assert_true(eval("{\"a\": {\"$ne\": 1}}", "{\"a\": [1]}"));
    assert_true(eval("{\"a\": {\"$nin\": [1, 2]}}", "{}"));
    assert_false(eval("{\"a\": {\"$nin\": [1, 2]}}", "{\"a\": 2}"));
    assert_true(eval("{\"a\": {\"$nin\": []}}", "{\"a\": 2}"));
}

static void test_filter_eval_in(void **state)
{
    (void)state;
    assert_true(eval("{\"a\": {\"$in\": [1, \"x\"]}}", "{\"a\": \"x\"}"));
    assert_false(eval("{\"a\": {\"$in\": [1, \"x\"]}}", "{\"a\": \"y\"}"));
    assert_false(eval("{\"a\": {\"$in\": []}}", "{\"a\": 1}"));
    assert_false(eval("{\"a\": {\"$in\": [1]}}", "{}"));
}

static void test_filter_eval_ranges(void **state)
{
    (void)state;
    assert_true(eval("{\"p\": {\"$gt\": 1, \"$lt\": 5}}", "{\"p\": 3}"));
    assert_false(eval("{\"p\": {\"$gt\": 1, \"$lt\": 5}}", "{\"p\": 5}"));
    assert_true(eval("{\"p\": {\"$gte\": 1, \"$lte\": 5}}", "{\"p\": 5.0}"));
    assert_false(eval("{\"p\": {\"$gt\": 1}}", "{\"p\": \"9\"}"));
    assert_false(eval("{\"p\": {\"$lt\": \"b\"}}", "{\"p\": 1}"));
    assert_true(eval("{\"p\": {\"$lt\": \"b\"}}", "{\"p\": \"ab\"}"));
    assert_true(eval("{\"p\": {\"$gt\": \"ab\"}}", "{\"p\": \"abc\"}"));
    assert_false(eval("{\"p\": {\"$gt\": 1}}", "{}"));
    assert_false(eval("{\"p\": {\"$gte\": 0}}", "{\"p\": null}"));
}

static void test_filter_eval_exists(void **state)
{
    (void)state;
    assert_true(eval("{\"p\": {\"$exists\": true}}", "{\"p\": null}"));
    assert_true(eval("{\"p\": {\"$exists\": true}}", "{\"p\": {\"q\": 1}}"));
    assert_false(eval("{\"p\": {\"$exists\": true}}", "{}"));
    assert_true(eval("{\"p\": {\"$exists\": false}}", "{}"));
    assert_false(eval("{\"p\": {\"$exists\": false}}", "{\"p\": 0}"));
}

static void test_filter_eval_dotted_paths(void **state)
{
    (void)state;
    assert_true(eval("{\"author.id\": 5}", "{\"author\": {\"id\": 5}}"));
    assert_false(eval("{\"author.id\": 5}", "{\"author\": 5}"));
    assert_false(eval("{\"author.id\": 5}", "{\"author.id\": 5}"));
    assert_true(eval("{\"a.b.c\": {\"$exists\": false}}", "{\"a\": [1]}"));
}

static void test_filter_eval_all_conditions_must_hold(void **state)
{
    (void)state;
    assert_true(eval("{\"a\": 1, \"b\": \"x\"}", "{\"a\": 1, \"b\": \"x\", \"c\": 0}"));
    assert_false(eval("{\"a\": 1, \"b\": \"x\"}", "{\"a\": 1, \"b\": \"y\"}"));
    assert_true(eval("{}", "null"));
    assert_false(eval("{\"a\": 1}", "[1]"));
}

static void test_filter_value_hash_agrees_with_equality(void **state)
{
    (void)state;
    struct rc_fval a = {.type = RC_FVAL_NUM, .num = 0.0};
    struct rc_fval b = {.type = RC_FVAL_NUM, .num = -0.0};
    struct rc_fval s = {.type = RC_FVAL_STR, .len = 1, .str = "1"};
    assert_true(rc_fval_eq(&a, &b));
    assert_true(rc_fval_hash(&a) == rc_fval_hash(&b));
    assert_false(rc_fval_eq(&a, &s));
    assert_true(rc_fval_cmp(&a, &s) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_compiles_shorthand_equality),
        cmocka_unit_test(test_filter_compiles_every_scalar_operator),
        cmocka_unit_test(test_filter_compiles_in_sorted_and_deduplicated),
        cmocka_unit_test(test_filter_compiles_nin_and_empty_lists),
        cmocka_unit_test(test_filter_compiles_exists),
        cmocka_unit_test(test_filter_compiles_several_operators_on_one_field),
        cmocka_unit_test(test_filter_empty_object_has_no_conditions),
        cmocka_unit_test(test_filter_compile_from_json_value),
        cmocka_unit_test(test_filter_canonical_sorts_keys_and_normalises_numbers),
        cmocka_unit_test(test_filter_canonical_numbers),
        cmocka_unit_test(test_filter_canonical_recompiles_to_itself),
        cmocka_unit_test(test_filter_clone_is_independent),
        cmocka_unit_test(test_filter_rejects_non_object),
        cmocka_unit_test(test_filter_rejects_unknown_operator),
        cmocka_unit_test(test_filter_rejects_top_level_operator),
        cmocka_unit_test(test_filter_rejects_object_value),
        cmocka_unit_test(test_filter_rejects_mixed_operators_and_fields),
        cmocka_unit_test(test_filter_rejects_array_equality),
        cmocka_unit_test(test_filter_rejects_bad_in),
        cmocka_unit_test(test_filter_rejects_bad_range_value),
        cmocka_unit_test(test_filter_rejects_bad_exists),
        cmocka_unit_test(test_filter_rejects_bad_paths),
        cmocka_unit_test(test_filter_rejects_too_many_conditions),
        cmocka_unit_test(test_filter_rejects_oversized_text_before_parsing),
        cmocka_unit_test(test_filter_rejects_invalid_json_and_duplicates),
        cmocka_unit_test(test_filter_every_prefix_is_refused),
        cmocka_unit_test(test_filter_eval_equality_types),
        cmocka_unit_test(test_filter_eval_ne_and_nin_hold_when_missing),
        cmocka_unit_test(test_filter_eval_in),
        cmocka_unit_test(test_filter_eval_ranges),
        cmocka_unit_test(test_filter_eval_exists),
        cmocka_unit_test(test_filter_eval_dotted_paths),
        cmocka_unit_test(test_filter_eval_all_conditions_must_hold),
        cmocka_unit_test(test_filter_value_hash_agrees_with_equality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
