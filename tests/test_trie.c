/* test_trie.c - the compiled filter trie: pattern matching, every operator
 * through the predicate index, interning and release, pruning, no allocation
 * while matching, and a seeded differential test against the naive matcher
 * (rc_topic_match + rc_filter_eval). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/topic.h"
#include "ringcast/trie.h"

#define MAX_HITS 8192

struct hits {
    size_t n;
    uintptr_t v[MAX_HITS];
};

static void collect(void *ctx, void *owner)
{
    struct hits *h = ctx;
    if (h->n < MAX_HITS)
        h->v[h->n] = (uintptr_t)owner;
    h->n++;
}

static int cmp_uptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static struct rc_filter *filter(const char *text)
{
    struct rc_filter *f = NULL;
    struct rc_err err = {0};
    if (!text)
        return NULL;
    if (rc_filter_parse_text(text, strlen(text), NULL, &f, &err))
        fail_msg("filter %s: %s", text, err.msg);
    return f;
}

static struct rc_trie_sub *add(struct rc_trie *t, const char *pattern, const char *ftext,
                               uintptr_t owner)
{
    struct rc_err err = {0};
    struct rc_filter *f = filter(ftext);
    struct rc_trie_sub *s = rc_trie_add(t, pattern, strlen(pattern), f, (void *)owner, &err);
    if (!s)
        fail_msg("add %s: %s", pattern, err.msg);
    rc_filter_free(f);
    return s;
}

/* Match and return the owners, sorted, as a string like "1,3,3". */
static const char *match(struct rc_trie *t, const char *topic, const char *data)
{
    static char out[256];
    static struct hits h;
    json_error_t jerr;
    json_t *d = data ? json_loads(data, JSON_DECODE_ANY, &jerr) : NULL;
    size_t len = 0;

    h.n = 0;
    size_t calls = rc_trie_match(t, topic, strlen(topic), d, collect, &h);
    assert_int_equal(calls, h.n);
    json_decref(d);
    qsort(h.v, h.n, sizeof(h.v[0]), cmp_uptr);
    out[0] = 0;
    for (size_t i = 0; i < h.n; i++)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%lu", i ? "," : "",
                                (unsigned long)h.v[i]);
    return out;
}

static int setup(void **state)
{
    *state = rc_trie_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    rc_trie_free(*state);
    return 0;
}

/* ---- patterns ---------------------------------------------------------------------- */

static void test_trie_exact_pattern_matches_only_its_topic(void **state)
{
    struct rc_trie *t = *state;
    add(t, "a.b.c", NULL, 1);
    add(t, "a.b", NULL, 2);
    assert_string_equal(match(t, "a.b.c", NULL), "1");
    assert_string_equal(match(t, "a.b", NULL), "2");
    assert_string_equal(match(t, "a.b.d", NULL), "");
    assert_string_equal(match(t, "a", NULL), "");
}

static void test_trie_star_matches_one_token(void **state)
{
    struct rc_trie *t = *state;
    add(t, "a.*.c", NULL, 1);
    add(t, "*", NULL, 2);
    add(t, "*.*", NULL, 3);
    assert_string_equal(match(t, "a.b.c", NULL), "1");
    assert_string_equal(match(t, "a.c", NULL), "3");
    assert_string_equal(match(t, "posts", NULL), "2");
    assert_string_equal(match(t, "a.b.b.c", NULL), "");
}

static void test_trie_gt_matches_one_or_more_tokens(void **state)
{
    struct rc_trie *t = *state;
    add(t, "a.>", NULL, 1);
    add(t, ">", NULL, 2);
    add(t, "a.*.>", NULL, 3);
    assert_string_equal(match(t, "a", NULL), "2");
    assert_string_equal(match(t, "a.b", NULL), "1,2");
    assert_string_equal(match(t, "a.b.c.d", NULL), "1,2,3");
    assert_string_equal(match(t, "b.c", NULL), "2");
}

static void test_trie_each_subscription_is_a_separate_call(void **state)
{
    struct rc_trie *t = *state;
    add(t, "a", NULL, 7);
    add(t, "a", "{\"x\": 1}", 7);
    add(t, "*", NULL, 7);
    assert_string_equal(match(t, "a", "{\"x\": 1}"), "7,7,7");
    assert_string_equal(match(t, "a", "{\"x\": 2}"), "7,7");
}

static void test_trie_rejects_bad_pattern(void **state)
{
    struct rc_trie *t = *state;
    struct rc_err err = {0};
    assert_null(rc_trie_add(t, "a..b", 4, NULL, NULL, &err));
    assert_string_equal(err.code, "bad_topic");
    assert_string_equal(err.msg,
                        "topic \"a..b\": token 2 is empty; tokens are separated by single dots");
    struct rc_trie_stats st;
    rc_trie_stats(t, &st);
    assert_int_equal(st.nodes, 1);
    assert_int_equal(st.subs, 0);
}

static void test_trie_invalid_topic_matches_nothing(void **state)
{
    struct rc_trie *t = *state;
    add(t, ">", NULL, 1);
    add(t, "*", NULL, 2);
    assert_string_equal(match(t, "", NULL), "");
    assert_string_equal(match(t, "a..b", NULL), "");
    assert_string_equal(match(t, "a.*", NULL), "");
}

/* ---- predicates ------------------------------------------------------------------- */

static void test_trie_equality_filters(void **state)
{
    struct rc_trie *t = *state;
    add(t, "t", "{\"id\": 1}", 1);
    add(t, "t", "{\"id\": \"1\"}", 2);
    add(t, "t", "{\"id\": 2, \"ok\": true}", 3);
    add(t, "t", "{\"id\": null}", 4);
    assert_string_equal(match(t, "t", "{\"id\": 1.0}"), "1");
    assert_string_equal(match(t, "t", "{\"id\": \"1\"}"), "2");
    assert_string_equal(match(t, "t", "{\"id\": 2}"), "");
    assert_string_equal(match(t, "t", "{\"id\": 2, \"ok\": true}"), "3");
    assert_string_equal(match(t, "t", "{\"id\": null}"), "4");
    assert_string_equal(match(t, "t", "{}"), "");
    assert_string_equal(match(t, "t", NULL), "");
}

static void test_trie_in_filters(void **state)
{
    struct rc_trie *t = *state;
    add(t, "t", "{\"id\": {\"$in\": [1, 2, 3]}}", 1);
    add(t, "t", "{\"id\": {\"$in\": [3, \"x\"]}}", 2);
    add(t, "t", "{\"id\": {\"$in\": []}}", 3);
    add(t, "t", "{\"id\": {\"$in\": [3], \"$eq\": 3}}", 4);
    assert_string_equal(match(t, "t", "{\"id\": 2}"), "1");
    assert_string_equal(match(t, "t", "{\"id\": 3}"), "1,2,4");
    assert_string_equal(match(t, "t", "{\"id\": \"x\"}"), "2");
    assert_string_equal(match(t, "t", "{\"id\": [3]}"), "");
}

static void test_trie_range_filters(void **state)
{
    struct rc_trie *t = *state;
    add(t, "t", "{\"p\": {\"$gt\": 1}}", 1);
    add(t, "t", "{\"p\": {\"$gte\": 2}}", 2);
    add(t, "t", "{\"p\": {\"$lt\": 2}}", 3);
    add(t, "t", "{\"p\": {\"$lte\": 2}}", 4);
    add(t, "t", "{\"p\": {\"$gt\": 1, \"$lt\": 3}}", 5);
    add(t, "t", "{\"p\": {\"$gte\": \"b\"}}", 6);
    assert_string_equal(match(t, "t", "{\"p\": 2}"), "1,2,4,5");
    assert_string_equal(match(t, "t", "{\"p\": 1}"), "3,4");
    assert_string_equal(match(t, "t", "{\"p\": 3}"), "1,2");
    assert_string_equal(match(t, "t", "{\"p\": 1.5}"), "1,3,4,5");
    assert_string_equal(match(t, "t", "{\"p\": \"b\"}"), "6");
    assert_string_equal(match(t, "t", "{\"p\": \"a\"}"), "");
    assert_string_equal(match(t, "t", "{\"p\": true}"), "");
}

static void test_trie_exists_filters(void **state)
{
    struct rc_trie *t = *state;
    add(t, "t", "{\"p\": {\"$exists\": true}}", 1);
    add(t, "t", "{\"p\": {\"$exists\": false}}", 2);
    add(t, "t", "{\"p.q\": {\"$exists\": true}}", 3);
    assert_string_equal(match(t, "t", "{\"p\": null}"), "1");
    assert_string_equal(match(t, "t", "{}"), "2");
    assert_string_equal(match(t, "t", "{\"p\": {\"q\": [1]}}"), "1,3");
}

static void test_trie_ne_and_nin_filters(void **state)
{
    struct rc_trie *t = *state;
    add(t, "t", "{\"s\": {\"$ne\": \"draft\"}}", 1);
    add(t, "t", "{\"s\": {\"$nin\": [\"draft\", \"gone\"]}}", 2);
    add(t, "t", "{\"s\": {\"$ne\": \"draft\"}, \"n\": 1}", 3);
    add(t, "t", "{\"s\": {\"$nin\": []}}", 4);
    assert_string_equal(match(t, "t", "{}"), "1,2,4");
    assert_string_equal(match(t, "t", "{\"s\": \"draft\"}"), "4");
    assert_string_equal(match(t, "t", "{\"s\": \"gone\", \"n\": 1}"), "1,3,4");
    assert_string_equal(match(t, "t", "{\"s\": \"live\", \"n\": 1}"), "1,2,3,4");
    assert_string_equal(match(t, "t", "{\"s\": [\"draft\"], \"n\": 1}"), "1,2,3,4");
}

static void test_trie_nested_paths(void **state)
{
    struct rc_trie *t = *state;
    add(t, "t", "{\"author.id\": 5}", 1);
    add(t, "t", "{\"author.id\": {\"$gt\": 4}, \"author.name\": \"x\"}", 2);
    assert_string_equal(match(t, "t", "{\"author\": {\"id\": 5, \"name\": \"x\"}}"), "1,2");
    assert_string_equal(match(t, "t", "{\"author\": {\"id\": 6}}"), "");
    assert_string_equal(match(t, "t", "{\"author\": 5}"), "");
}

/* ---- interning, release, pruning, memory --------------------------------------------- */

static void test_trie_equal_filters_share_one_entry(void **state)
{
    struct rc_trie *t = *state;
    struct rc_trie_stats st;
    struct rc_trie_sub *a = add(t, "t", "{\"a\": 1.0, \"b\": 2}", 1);
    struct rc_trie_sub *b = add(t, "t", "{\"b\": 2, \"a\": 1}", 2);
    rc_trie_stats(t, &st);
    assert_int_equal(st.subs, 2);
    assert_int_equal(st.filters, 1);
    assert_ptr_equal(rc_trie_sub_filter(a), rc_trie_sub_filter(b));
    assert_string_equal(rc_filter_canonical(rc_trie_sub_filter(a)),
                        "{\"a\":{\"$eq\":1},\"b\":{\"$eq\":2}}");
    assert_string_equal(match(t, "t", "{\"a\": 1, \"b\": 2}"), "1,2");
    rc_trie_remove(t, a);
    rc_trie_stats(t, &st);
    assert_int_equal(st.filters, 1);
    assert_string_equal(match(t, "t", "{\"a\": 1, \"b\": 2}"), "2");
    rc_trie_remove(t, b);
    rc_trie_stats(t, &st);
    assert_int_equal(st.filters, 0);
    assert_int_equal(st.paths, 0);
}

static void test_trie_null_and_empty_filter_share_one_entry(void **state)
{
    struct rc_trie *t = *state;
    struct rc_trie_stats st;
    struct rc_trie_sub *a = add(t, "t", NULL, 1);
    add(t, "t", "{}", 2);
    rc_trie_stats(t, &st);
    assert_int_equal(st.filters, 1);
    assert_null(rc_trie_sub_filter(a));
    assert_ptr_equal(rc_trie_sub_owner(a), (void *)1);
}

static void test_trie_same_filter_on_two_patterns_are_two_entries(void **state)
{
    struct rc_trie *t = *state;
    struct rc_trie_stats st;
    add(t, "a", "{\"x\": 1}", 1);
    add(t, "b", "{\"x\": 1}", 2);
    rc_trie_stats(t, &st);
    assert_int_equal(st.filters, 2);
    assert_int_equal(st.paths, 1);
}

static void test_trie_remove_releases_everything(void **state)
{
    struct rc_trie *t = *state;
    struct rc_trie_stats empty, st;
    struct rc_trie_sub *s[6];
    rc_trie_stats(t, &empty);
    s[0] = add(t, "a.b.c", "{\"x\": {\"$in\": [1, 2]}, \"y\": {\"$ne\": 3}}", 1);
    s[1] = add(t, "a.*.>", "{\"x\": {\"$gt\": 1, \"$lte\": \"z\"}}", 2);
    s[2] = add(t, "a.b", "{\"x\": {\"$exists\": false}}", 3);
    s[3] = add(t, ">", NULL, 4);
    s[4] = add(t, "a.b.c", "{\"y\": {\"$in\": [1, 2]}, \"x\": {\"$ne\": 3}}", 5);
    s[5] = add(t, "a.b.c", "{\"x\": {\"$in\": [2, 1]}, \"y\": {\"$ne\": 3}}", 6);
    rc_trie_stats(t, &st);
    assert_int_equal(st.nodes, 7);
    assert_int_equal(st.subs, 6);
    assert_int_equal(st.filters, 5);
    assert_int_equal(st.paths, 2);
    assert_true(st.bytes > empty.bytes);
    for (int i = 0; i < 6; i++)
        rc_trie_remove(t, s[i]);
    rc_trie_stats(t, &st);
    assert_int_equal(st.nodes, 1);
    assert_int_equal(st.subs, 0);
    assert_int_equal(st.filters, 0);
    assert_int_equal(st.paths, 0);
    assert_int_equal(st.bytes, empty.bytes);
    assert_string_equal(match(t, "a.b.c", "{\"x\": 1}"), "");
}

static void test_trie_match_allocates_nothing(void **state)
{
    struct rc_trie *t = *state;
    struct rc_trie_stats before, after;
    add(t, "t.*", "{\"a\": {\"$in\": [1, 2]}, \"b\": {\"$gt\": 0}}", 1);
    add(t, "t.>", "{\"a\": {\"$ne\": 1}}", 2);
    add(t, "t.x", "{\"c\": {\"$exists\": false}}", 3);
    rc_trie_stats(t, &before);
    assert_string_equal(match(t, "t.x", "{\"a\": 1, \"b\": 5}"), "1,3");
    assert_string_equal(match(t, "t.x", "{\"a\": 3, \"b\": 5}"), "2,3");
    rc_trie_stats(t, &after);
    assert_int_equal(after.allocs, before.allocs);
    assert_int_equal(after.bytes, before.bytes);
}

/* ---- differential test ---------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic for a given seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() >> 33) % n;
}

static const char *const tokens[] = {"a", "b", "c", "dd"};
static const char *const paths[] = {"x", "y", "z.w", "z.v"};
static const char *const values[] = {"0",     "1",    "2",    "2.5",   "-1",   "\"a\"",
                                     "\"b\"", "\"\"", "true", "false", "null", "1.0"};
static const char *const range_values[] = {"0", "1", "2", "2.5", "-1", "\"a\"", "\"b\"", "\"\""};
static const char *const ops[] = {"$eq",  "$ne", "$in",  "$nin",   "$gt",
                                  "$gte", "$lt", "$lte", "$exists"};

static void random_topic(char *buf, size_t cap, bool pattern)
{
    unsigned n = 1 + pick(4);
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *tok = tokens[pick(4)];
        if (pattern && pick(5) == 0)
            tok = "*";
        if (pattern && i == n - 1 && pick(6) == 0)
            tok = ">";
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "." : "", tok);
    }
}

static void random_list(char *buf, size_t cap)
{
    unsigned n = pick(4);
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (unsigned i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", values[pick(12)]);
    snprintf(buf + len, cap - len, "]");
}

/* A random filter text, or NULL (match all). */
static const char *random_filter(char *buf, size_t cap)
{
    unsigned nfields = pick(4);
    size_t len;
    if (nfields == 0 && pick(2))
        return NULL;
    len = (size_t)snprintf(buf, cap, "{");
    unsigned used = 0;
    for (unsigned f = 0; f < nfields; f++) {
        unsigned p = pick(4);
        if (used & (1u << p))
            continue;
        used |= 1u << p;
        len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\":", len > 1 ? "," : "", paths[p]);
        if (pick(4) == 0) {
            len += (size_t)snprintf(buf + len, cap - len, "%s", values[pick(12)]);
            continue;
        }
        unsigned nops = 1 + pick(2), usedops = 0;
        len += (size_t)snprintf(buf + len, cap - len, "{");
        for (unsigned k = 0; k < nops; k++) {
            unsigned o = pick(9);
            char val[128];
            if (usedops & (1u << o))
                continue;
            if (o == 2 || o == 3)
                random_list(val, sizeof(val));
            else if (o == 8)
                snprintf(val, sizeof(val), "%s", pick(2) ? "true" : "false");
            else if (o >= 4)
                snprintf(val, sizeof(val), "%s", range_values[pick(8)]);
            else
                snprintf(val, sizeof(val), "%s", values[pick(12)]);
            len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\":%s", usedops ? "," : "", ops[o],
                                    val);
            usedops |= 1u << o;
        }
        len += (size_t)snprintf(buf + len, cap - len, "}");
    }
    snprintf(buf + len, cap - len, "}");
    return buf;
}

static json_t *random_scalar_or_container(void)
{
    json_error_t jerr;
    switch (pick(14)) {
    case 12:
        return json_pack("{s:i}", "w", 1);
    case 13:
        return json_pack("[i]", 1);
    default:
        return json_loads(values[pick(12)], JSON_DECODE_ANY, &jerr);
    }
}

static json_t *random_event(void)
{
    json_t *d = json_object(), *z = NULL;
    if (pick(3))
        json_object_set_new(d, "x", random_scalar_or_container());
    if (pick(3))
        json_object_set_new(d, "y", random_scalar_or_container());
    switch (pick(4)) {
    case 0:
        break;
    case 1:
        json_object_set_new(d, "z", random_scalar_or_container());
        break;
    default:
        z = json_object();
        if (pick(3))
            json_object_set_new(z, "w", random_scalar_or_container());
        if (pick(3))
            json_object_set_new(z, "v", random_scalar_or_container());
        json_object_set_new(d, "z", z);
    }
    return d;
}

struct ref_sub {
    char pattern[64];
    struct rc_filter *f;
    uintptr_t owner;
    struct rc_trie_sub *s;
};

#define DIFF_SUBS 3000
#define DIFF_EVENTS 1500

static size_t naive(const struct ref_sub *subs, size_t n, const char *topic, const json_t *d,
                    uintptr_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!subs[i].s)
            continue;
        if (!rc_topic_match(subs[i].pattern, strlen(subs[i].pattern), topic, strlen(topic)))
            continue;
        if (subs[i].f && !rc_filter_eval(subs[i].f, d))
            continue;
        out[k++] = subs[i].owner;
    }
    qsort(out, k, sizeof(*out), cmp_uptr);
    return k;
}

static size_t check_events(struct rc_trie *t, const struct ref_sub *subs, size_t nsubs,
                           unsigned nevents)
{
    static uintptr_t want[DIFF_SUBS];
    static struct hits h;
    size_t total = 0;
    char topic[64];

    for (unsigned e = 0; e < nevents; e++) {
        random_topic(topic, sizeof(topic), false);
        json_t *d = random_event();
        size_t k = naive(subs, nsubs, topic, d, want);
        h.n = 0;
        size_t got = rc_trie_match(t, topic, strlen(topic), d, collect, &h);
        qsort(h.v, h.n, sizeof(h.v[0]), cmp_uptr);
        if (got != k || memcmp(h.v, want, k * sizeof(want[0])) != 0) {
            char *ds = json_dumps(d, JSON_COMPACT);
            fail_msg("event %u topic %s data %s: trie %zu matches, naive %zu", e, topic, ds, got,
                     k);
        }
        total += k;
        json_decref(d);
    }
    return total;
}

static void test_trie_differential_against_naive(void **state)
{
    struct rc_trie *t = *state;
    static struct ref_sub subs[DIFF_SUBS];
    struct rc_trie_stats empty, st;
    char fbuf[512];

    rc_trie_stats(t, &empty);
    rng_state = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < DIFF_SUBS; i++) {
        struct rc_err err = {0};
        random_topic(subs[i].pattern, sizeof(subs[i].pattern), true);
        subs[i].f = filter(random_filter(fbuf, sizeof(fbuf)));
        subs[i].owner = 1 + i % (DIFF_SUBS / 2); /* owners repeat: results are multisets */
        subs[i].s = rc_trie_add(t, subs[i].pattern, strlen(subs[i].pattern), subs[i].f,
                                (void *)subs[i].owner, &err);
        assert_non_null(subs[i].s);
    }
    rc_trie_stats(t, &st);
    assert_true(st.filters < DIFF_SUBS); /* some interning happened */
    size_t matched = check_events(t, subs, DIFF_SUBS, DIFF_EVENTS);
    assert_true(matched > DIFF_EVENTS); /* the test exercises real matches */

    for (size_t i = 0; i < DIFF_SUBS; i++) {
        if (pick(2)) {
            rc_trie_remove(t, subs[i].s);
            subs[i].s = NULL;
        }
    }
    check_events(t, subs, DIFF_SUBS, DIFF_EVENTS);

    for (size_t i = 0; i < DIFF_SUBS; i++) {
        if (subs[i].s)
            rc_trie_remove(t, subs[i].s);
        rc_filter_free(subs[i].f);
    }
    rc_trie_stats(t, &st);
    assert_int_equal(st.nodes, 1);
    assert_int_equal(st.filters, 0);
    assert_int_equal(st.paths, 0);
    assert_int_equal(st.bytes, empty.bytes);
}

/* Thousands of range predicates on one path of one node: the sorted blocks
 * split and empty again; results still equal the naive matcher's. */
#define RANGE_SUBS 6000

static void test_trie_many_ranges_on_one_node(void **state)
{
    struct rc_trie *t = *state;
    static struct ref_sub subs[RANGE_SUBS];
    static uintptr_t want[RANGE_SUBS];
    static struct hits h;
    struct rc_trie_stats empty, st;
    char text[128];

    rc_trie_stats(t, &empty);
    rng_state = 0x1234567887654321ULL;
    for (size_t i = 0; i < RANGE_SUBS; i++) {
        struct rc_err err = {0};
        unsigned v = pick(300);
        if (pick(8) == 0)
            snprintf(text, sizeof(text), "{\"p\": {\"%s\": \"s%u\"}}", ops[4 + pick(4)], v);
        else if (pick(4) == 0)
            snprintf(text, sizeof(text), "{\"p\": {\"$gte\": %u, \"$lt\": %u}}", v, v + pick(50));
        else
            snprintf(text, sizeof(text), "{\"p\": {\"%s\": %u}}", ops[4 + pick(4)], v);
        strcpy(subs[i].pattern, "t");
        subs[i].f = filter(text);
        subs[i].owner = i + 1;
        subs[i].s = rc_trie_add(t, "t", 1, subs[i].f, (void *)subs[i].owner, &err);
        assert_non_null(subs[i].s);
    }
    for (int round = 0; round < 3; round++) {
        for (unsigned e = 0; e < 300; e++) {
            json_t *d = pick(6) == 0
                            ? json_pack("{s:s+}", "p", "s", "12")
                            : json_pack("{s:f}", "p", (double)pick(320) - 10 + 0.5 * pick(2));
            size_t k = naive(subs, RANGE_SUBS, "t", d, want);
            h.n = 0;
            size_t got = rc_trie_match(t, "t", 1, d, collect, &h);
            qsort(h.v, h.n > MAX_HITS ? MAX_HITS : h.n, sizeof(h.v[0]), cmp_uptr);
            assert_int_equal(got, k);
            assert_true(k > MAX_HITS || memcmp(h.v, want, k * sizeof(want[0])) == 0);
            json_decref(d);
        }
        for (size_t i = 0; i < RANGE_SUBS; i++) {
            if (subs[i].s && pick(2)) {
                rc_trie_remove(t, subs[i].s);
                subs[i].s = NULL;
            }
        }
    }
    for (size_t i = 0; i < RANGE_SUBS; i++) {
        if (subs[i].s)
            rc_trie_remove(t, subs[i].s);
        rc_filter_free(subs[i].f);
    }
    rc_trie_stats(t, &st);
    assert_int_equal(st.filters, 0);
    assert_int_equal(st.bytes, empty.bytes);
}

static void test_trie_free_releases_live_subscriptions(void **state)
{
    (void)state;
    struct rc_trie *t = rc_trie_new();
    add(t, "a.b", "{\"x\": {\"$gt\": 1}}", 1);
    add(t, "a.*", "{\"x\": {\"$ne\": 1}}", 2);
    add(t, "a.>", NULL, 3);
    add(t, "q", NULL, 4);
    rc_trie_free(t); /* ASan reports anything left behind */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_trie_exact_pattern_matches_only_its_topic),
        T(test_trie_star_matches_one_token),
        T(test_trie_gt_matches_one_or_more_tokens),
        T(test_trie_each_subscription_is_a_separate_call),
        T(test_trie_rejects_bad_pattern),
        T(test_trie_invalid_topic_matches_nothing),
        T(test_trie_equality_filters),
        T(test_trie_in_filters),
        T(test_trie_range_filters),
        T(test_trie_exists_filters),
        T(test_trie_ne_and_nin_filters),
        T(test_trie_nested_paths),
        T(test_trie_equal_filters_share_one_entry),
        T(test_trie_null_and_empty_filter_share_one_entry),
        T(test_trie_same_filter_on_two_patterns_are_two_entries),
        T(test_trie_remove_releases_everything),
        T(test_trie_match_allocates_nothing),
        T(test_trie_differential_against_naive),
        T(test_trie_many_ranges_on_one_node),
        cmocka_unit_test(test_trie_free_releases_live_subscriptions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
