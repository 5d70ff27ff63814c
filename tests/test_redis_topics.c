/* test_redis_topics.c - the bridge's channel references and delivered
 * offsets: first/last reference, message classification (new, next,
 * duplicate, gap, epoch), the seen_max bound on pattern-only topics, and a
 * table that grows and shrinks through many topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ringcast/redis_topics.h"

static enum rc_redis_seen seen(struct rc_redis_topics *t, const char *name, const char *epoch,
                               uint64_t seq, struct rc_redis_topic **e)
{
    return rc_redis_topics_seen(t, name, strlen(name), epoch, seq, e);
}

static void test_refs(void **state)
{
    (void)state;
    struct rc_redis_topics t;
    assert_int_equal(rc_redis_topics_init(&t, 16), 0);
    bool first = false, last = false;
    assert_int_equal(rc_redis_topics_ref(&t, "a.b", 3, &first), 0);
    assert_true(first);
    assert_int_equal(rc_redis_topics_ref(&t, "a.b", 3, &first), 0);
    assert_false(first);
    assert_int_equal(rc_redis_topics_unref(&t, "a.b", 3, &last), 0);
    assert_false(last);
    assert_int_equal(rc_redis_topics_unref(&t, "a.b", 3, &last), 0);
    assert_true(last);
    assert_int_equal(rc_redis_topics_unref(&t, "a.b", 3, &last), -ENOENT);
    assert_int_equal(rc_redis_topics_unref(&t, "zz", 2, &last), -ENOENT);
    /* kept as seen-only: a new reference is a first one again */
    assert_int_equal(t.unreferenced, 1);
    assert_int_equal(rc_redis_topics_ref(&t, "a.b", 3, &first), 0);
    assert_true(first);
    assert_int_equal(t.unreferenced, 0);
    rc_redis_topics_free(&t);
}

static void test_classify(void **state)
{
    (void)state;
    struct rc_redis_topics t;
    assert_int_equal(rc_redis_topics_init(&t, 16), 0);
    bool first;
    assert_int_equal(rc_redis_topics_ref(&t, "t", 1, &first), 0);
    struct rc_redis_topic *e = NULL;
    assert_int_equal(seen(&t, "t", "ep1", 5, &e), RC_REDIS_SEEN_NEW);
    assert_non_null(e);
    rc_redis_topics_delivered(&t, e, "ep1", 5);
    assert_int_equal(seen(&t, "t", "ep1", 6, &e), RC_REDIS_SEEN_NEXT);
    rc_redis_topics_delivered(&t, e, "ep1", 6);
    assert_int_equal(seen(&t, "t", "ep1", 6, &e), RC_REDIS_SEEN_DUP);
    assert_int_equal(seen(&t, "t", "ep1", 2, &e), RC_REDIS_SEEN_DUP);
    assert_int_equal(seen(&t, "t", "ep1", 9, &e), RC_REDIS_SEEN_GAP);
    /* classification changes nothing: still a gap until delivered */
    assert_int_equal(seen(&t, "t", "ep1", 9, &e), RC_REDIS_SEEN_GAP);
    rc_redis_topics_delivered(&t, e, "ep1", 9);
    assert_int_equal(seen(&t, "t", "ep1", 10, &e), RC_REDIS_SEEN_NEXT);
    assert_int_equal(seen(&t, "t", "ep2", 1, &e), RC_REDIS_SEEN_EPOCH);
    rc_redis_topics_delivered(&t, e, "ep2", 1);
    assert_int_equal(seen(&t, "t", "ep2", 2, &e), RC_REDIS_SEEN_NEXT);
    assert_int_equal(seen(&t, "t", "ep1", 11, &e), RC_REDIS_SEEN_EPOCH);
    /* a long epoch is cut to the field, never overflowing it */
    rc_redis_topics_delivered(&t, e, "0123456789abcdefghijklmnop", 1);
    assert_int_equal(strlen(e->epoch), RC_EPOCH_MAX - 1);
    rc_redis_topics_free(&t);
}

static void test_seen_max_bound(void **state)
{
    (void)state;
    struct rc_redis_topics t;
    assert_int_equal(rc_redis_topics_init(&t, 4), 0);
    bool first;
    assert_int_equal(rc_redis_topics_ref(&t, "kept", 4, &first), 0);
    struct rc_redis_topic *e;
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "p.%d", i);
        assert_int_equal(seen(&t, name, "e", 1, &e), RC_REDIS_SEEN_NEW);
        rc_redis_topics_delivered(&t, e, "e", 1);
        assert_true(t.unreferenced <= 4);
        /* "p.0" is seen again each round: the most recent, never forgotten */
        assert_int_equal(seen(&t, "p.0", "e", 1, &e),
                         i == 0 ? RC_REDIS_SEEN_DUP : RC_REDIS_SEEN_DUP);
    }
    assert_int_equal(t.unreferenced, 4);
    assert_int_equal(t.forgotten, 100 - 4); /* p.1 .. p.96 */
    assert_int_equal(t.n, 5);
    /* forgotten: new again; a referenced topic is never forgotten */
    assert_int_equal(seen(&t, "p.1", "e", 1, &e), RC_REDIS_SEEN_NEW);
    struct rc_redis_topic *k = rc_redis_topics_find(&t, "kept", 4);
    assert_non_null(k);
    assert_int_equal(k->refs, 1);
    /* seen_max 0: nothing unreferenced is tracked */
    struct rc_redis_topics z;
    assert_int_equal(rc_redis_topics_init(&z, 0), 0);
    assert_int_equal(seen(&z, "x", "e", 3, &e), RC_REDIS_SEEN_NEW);
    assert_null(e);
    assert_int_equal(z.n, 0);
    rc_redis_topics_free(&z);
    rc_redis_topics_free(&t);
}

struct count {
    size_t n, refs;
};
static void count_fn(void *arg, const struct rc_redis_topic *e)
{
    struct count *c = arg;
    c->n++;
    c->refs += e->refs;
}

static void test_many_topics(void **state)
{
    (void)state;
    struct rc_redis_topics t;
    assert_int_equal(rc_redis_topics_init(&t, 1000), 0);
    char name[32];
    bool first, last;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "topic.%d", i);
        assert_int_equal(rc_redis_topics_ref(&t, name, strlen(name), &first), 0);
        assert_true(first);
    }
    struct count c = {0};
    rc_redis_topics_each(&t, count_fn, &c);
    assert_int_equal(c.n, 5000);
    assert_int_equal(c.refs, 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "topic.%d", i);
        assert_int_equal(rc_redis_topics_unref(&t, name, strlen(name), &last), 0);
        assert_true(last);
    }
    /* all unreferenced now: bounded by seen_max, the rest forgotten, and
     * every remaining one still found through the table */
    assert_int_equal(t.n, 1000);
    assert_int_equal(t.forgotten, 4000);
    for (int i = 4000; i < 5000; i++) {
        snprintf(name, sizeof(name), "topic.%d", i);
        assert_non_null(rc_redis_topics_find(&t, name, strlen(name)));
    }
    snprintf(name, sizeof(name), "topic.%d", 10);
    assert_null(rc_redis_topics_find(&t, name, strlen(name)));
    rc_redis_topics_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_seen_max_bound),
        cmocka_unit_test(test_many_topics),
    };
    return cmocka_run_group_tests_name("redis_topics", tests, NULL, NULL);
}
