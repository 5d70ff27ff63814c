/* test_presence.c - joined/left reporting, anonymous connections, caps,
 * paged listing, freeing empty topics, and random joins/leaves checked
 * against a naive model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/presence.h"

static struct rc_slice S(const char *s) {
    return rc_slice_make(s, s ? strlen(s) : 0);
}

static const struct rc_slice ANON = {NULL, 0};

static int join(struct rc_presence *p, const char *topic, const char *user, uint64_t conn,
                bool *joined)
{
    return rc_presence_join(p, S(topic), user ? S(user) : ANON, conn, joined);
}

static int leave(struct rc_presence *p, const char *topic, const char *user, uint64_t conn,
                 bool *left)
{
    return rc_presence_leave(p, S(topic), user ? S(user) : ANON, conn, left);
}

static void expect_counts(struct rc_presence *p, const char *topic, size_t users, size_t conns)
{
    size_t u = 99, c = 99;
    rc_presence_count(p, S(topic), &u, &c);
    assert_int_equal(u, users);
    assert_int_equal(c, conns);
}

static void test_presence_first_connection_joins(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    bool j = false;
    assert_int_equal(join(p, "room.1", "alice", 1, &j), 0);
    assert_true(j);
    assert_int_equal(join(p, "room.1", "alice", 1, &j), 0); /* second subscription */
    assert_false(j);
    assert_int_equal(join(p, "room.1", "alice", 2, &j), 0); /* second connection */
    assert_false(j);
    assert_int_equal(join(p, "room.1", "bob", 2, &j), 0); /* another user, same conn */
    assert_true(j);
    assert_int_equal(join(p, "room.2", "alice", 1, &j), 0); /* another topic */
    assert_true(j);
    expect_counts(p, "room.1", 2, 3);
    expect_counts(p, "room.2", 1, 1);
    assert_int_equal(rc_presence_topics(p), 2);
    rc_presence_free(p);
}

static void test_presence_last_connection_leaves(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    bool j, l = true;
    assert_int_equal(join(p, "t", "alice", 1, &j), 0);
    assert_int_equal(join(p, "t", "alice", 1, &j), 0);
    assert_int_equal(join(p, "t", "alice", 2, &j), 0);
    assert_int_equal(leave(p, "t", "alice", 1, &l), 0); /* one of two subscriptions */
    assert_false(l);
    expect_counts(p, "t", 1, 2);
    assert_int_equal(leave(p, "t", "alice", 1, &l), 0); /* conn 1 gone, conn 2 stays */
    assert_false(l);
    expect_counts(p, "t", 1, 1);
    assert_int_equal(leave(p, "t", "alice", 2, &l), 0);
    assert_true(l);
    expect_counts(p, "t", 0, 0);
    rc_presence_free(p);
}

static void test_presence_anonymous_connections_count_by_id(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    bool j, l;
    assert_int_equal(join(p, "t", NULL, 7, &j), 0);
    assert_true(j);
    assert_int_equal(join(p, "t", NULL, 8, &j), 0);
    assert_true(j);
    assert_int_equal(join(p, "t", NULL, 7, &j), 0);
    assert_false(j);
    assert_int_equal(rc_presence_join(p, S("t"), S(""), 9, &j), 0); /* empty id = anonymous */
    assert_true(j);
    expect_counts(p, "t", 3, 3);
    assert_int_equal(leave(p, "t", NULL, 8, &l), 0);
    assert_true(l);
    assert_int_equal(leave(p, "t", NULL, 8, &l), -ENOENT);
    assert_false(l);
    rc_presence_free(p);
}

static void test_presence_empty_topic_is_freed(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    bool j, l;
    assert_int_equal(join(p, "a", "u", 1, &j), 0);
    assert_int_equal(join(p, "b", "u", 1, &j), 0);
    assert_int_equal(rc_presence_topics(p), 2);
    assert_int_equal(leave(p, "a", "u", 1, &l), 0);
    assert_int_equal(rc_presence_topics(p), 1);
    assert_int_equal(leave(p, "b", "u", 1, &l), 0);
    assert_int_equal(rc_presence_topics(p), 0);
    assert_int_equal(leave(p, "b", "u", 1, &l), -ENOENT);
    rc_presence_free(p);
}

static void test_presence_refuses_members_beyond_cap(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(3);
    assert_non_null(p);
    bool j = true;
    assert_int_equal(join(p, "t", "a", 1, &j), 0);
    assert_int_equal(join(p, "t", "a", 2, &j), 0);
    assert_int_equal(join(p, "t", NULL, 3, &j), 0);
    assert_int_equal(join(p, "t", "b", 4, &j), -ENOSPC);
    assert_false(j);
    assert_int_equal(join(p, "t", "a", 5, &j), -ENOSPC);
    assert_int_equal(join(p, "t", "a", 1, &j), 0); /* an existing pair may subscribe again */
    expect_counts(p, "t", 2, 3);
    assert_int_equal(join(p, "other", "b", 4, &j), 0); /* the cap is per topic */
    assert_true(j);
    rc_presence_free(p);
}

static void test_presence_rejects_bad_input(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    bool j = true, l = true;
    char big[RC_PRESENCE_USER_MAX + 2];
    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(join(p, "t", big, 1, &j), -EINVAL);
    assert_false(j);
    big[RC_PRESENCE_USER_MAX] = '\0'; /* exactly the maximum */
    assert_int_equal(join(p, "t", big, 1, &j), 0);
    assert_int_equal(join(p, "", "u", 1, &j), -EINVAL);
    char topic[RC_PRESENCE_TOPIC_MAX + 2];
    memset(topic, 't', sizeof(topic) - 1);
    topic[sizeof(topic) - 1] = '\0';
    assert_int_equal(join(p, topic, "u", 1, &j), -EINVAL);
    assert_int_equal(leave(p, "", "u", 1, &l), -ENOENT);
    assert_false(l);
    assert_int_equal(leave(p, "t", "nobody", 1, &l), -ENOENT);
    assert_int_equal(leave(p, "t", big, 2, &l), -ENOENT); /* right user, wrong conn */
    assert_int_equal(rc_presence_topics(p), 1);
    rc_presence_free(p);
}

struct listing {
    char names[64][16];
    uint32_t conns[64];
    uint64_t anon[64];
    size_t n;
    size_t stop_after;
};

static int list_cb(void *ctx, const struct rc_presence_user *u)
{
    struct listing *ls = ctx;
    assert_true(ls->n < 64);
    if (u->user.p) {
        assert_true(u->user.n < 16);
        memcpy(ls->names[ls->n], u->user.p, u->user.n);
        ls->names[ls->n][u->user.n] = '\0';
        assert_int_equal(u->conn, 0);
    } else {
        ls->names[ls->n][0] = '\0';
    }
    ls->anon[ls->n] = u->user.p ? 0 : u->conn;
    ls->conns[ls->n] = u->connections;
    ls->n++;
    return ls->stop_after && ls->n >= ls->stop_after;
}

static void test_presence_lists_users_in_pages(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    bool j;
    char name[16];
    for (int i = 0; i < 24; i++) {
        snprintf(name, sizeof(name), "user%02d", i);
        for (int c = 0; c <= i % 3; c++) /* user i has i % 3 + 1 connections */
            assert_int_equal(join(p, "t", name, (uint64_t)(100 * i + c), &j), 0);
    }
    assert_int_equal(join(p, "t", NULL, 5000, &j), 0);
    struct listing ls = {0};
    size_t next = 99, off = 0, pages = 0;
    do {
        size_t got = rc_presence_list(p, S("t"), off, 10, list_cb, &ls, &next);
        assert_int_equal(got, pages < 2 ? 10 : 5);
        assert_int_equal(next, pages < 2 ? off + 10 : 0);
        off = next;
        pages++;
    } while (next);
    assert_int_equal(pages, 3);
    assert_int_equal(ls.n, 25);
    bool seen[24] = {false};
    size_t anon = 0;
    for (size_t k = 0; k < ls.n; k++) {
        if (!ls.names[k][0]) {
            assert_int_equal(ls.anon[k], 5000);
            assert_int_equal(ls.conns[k], 1);
            anon++;
            continue;
        }
        int i = atoi(ls.names[k] + 4);
        assert_false(seen[i]);
        seen[i] = true;
        assert_int_equal(ls.conns[k], i % 3 + 1);
    }
    assert_int_equal(anon, 1);
    /* past the end, and an unknown topic */
    assert_int_equal(rc_presence_list(p, S("t"), 25, 10, list_cb, &ls, &next), 0);
    assert_int_equal(next, 0);
    assert_int_equal(rc_presence_list(p, S("nope"), 0, 10, list_cb, &ls, &next), 0);
    rc_presence_free(p);
}

static void test_presence_list_callback_can_stop(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    bool j;
    assert_int_equal(join(p, "t", "a", 1, &j), 0);
    assert_int_equal(join(p, "t", "b", 2, &j), 0);
    assert_int_equal(join(p, "t", "c", 3, &j), 0);
    struct listing ls = {.stop_after = 2};
    size_t next = 0;
    assert_int_equal(rc_presence_list(p, S("t"), 0, 10, list_cb, &ls, &next), 2);
    assert_int_equal(next, 2);
    ls.stop_after = 0;
    assert_int_equal(rc_presence_list(p, S("t"), next, 10, list_cb, &ls, &next), 1);
    assert_int_equal(next, 0);
    rc_presence_free(p);
}

/* ---- random joins and leaves against a naive model ----------------------------------------------
 */

enum { NT = 4, NU = 7, NC = 12 }; /* topics, users (the last one = anonymous), connections */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

struct model {
    uint32_t subs[NT][NU][NC]; /* subscriptions of (user, conn) on topic */
};

static uint32_t model_user_conns(const struct model *m, int t, int u)
{
    uint32_t n = 0;
    for (int c = 0; c < NC; c++)
        n += m->subs[t][u][c] > 0;
    return n;
}

/* Users as presence sees them: each anonymous connection is a user. */
static void model_counts(const struct model *m, int t, size_t *users, size_t *conns)
{
    *users = *conns = 0;
    for (int u = 0; u < NU; u++) {
        uint32_t n = model_user_conns(m, t, u);
        *conns += n;
        *users += u == NU - 1 ? n : n > 0;
    }
}

static void run_random(uint64_t seed, int ops, uint32_t cap)
{
    static const char *topics[NT] = {"room.a", "room.b", "doc.1", "doc.2"};
    static const char *users[NU] = {"alice", "bob", "carol", "dave", "erin", "frank", NULL};
    struct rc_presence *p = rc_presence_new(cap);
    assert_non_null(p);
    struct model m = {0};
    size_t joined = 0, left = 0, want_joined = 0, want_left = 0;
    rng_state = seed;
    for (int i = 0; i < ops; i++) {
        int t = (int)rnd(NT), u = (int)rnd(NU), c = (int)rnd(NC);
        bool anon = u == NU - 1, flag = false;
        /* the model's view before the change */
        bool user_here = anon ? m.subs[t][u][c] > 0 : model_user_conns(&m, t, u) > 0;
        if (rnd(2)) {
            size_t mu, mc;
            model_counts(&m, t, &mu, &mc);
            int rc = join(p, topics[t], users[u], (uint64_t)c + 1, &flag);
            if (m.subs[t][u][c] == 0 && mc >= cap) {
                assert_int_equal(rc, -ENOSPC);
                assert_false(flag);
                continue;
            }
            assert_int_equal(rc, 0);
            assert_int_equal(flag, !user_here);
            want_joined += !user_here;
            joined += flag;
            m.subs[t][u][c]++;
        } else {
            int rc = leave(p, topics[t], users[u], (uint64_t)c + 1, &flag);
            if (m.subs[t][u][c] == 0) {
                assert_int_equal(rc, -ENOENT);
                continue;
            }
            assert_int_equal(rc, 0);
            m.subs[t][u][c]--;
            bool gone = anon ? m.subs[t][u][c] == 0 : model_user_conns(&m, t, u) == 0;
            assert_int_equal(flag, gone);
            want_left += gone;
            left += flag;
        }
    }
    assert_int_equal(joined, want_joined);
    assert_int_equal(left, want_left);
    size_t live_topics = 0;
    for (int t = 0; t < NT; t++) {
        size_t mu, mc;
        model_counts(&m, t, &mu, &mc);
        expect_counts(p, topics[t], mu, mc);
        live_topics += mc > 0;
        /* the listing agrees user by user */
        struct listing ls = {0};
        size_t next;
        assert_int_equal(rc_presence_list(p, S(topics[t]), 0, 64, list_cb, &ls, &next), mu);
        for (size_t k = 0; k < ls.n; k++) {
            if (!ls.names[k][0]) {
                int c = (int)ls.anon[k] - 1;
                assert_true(m.subs[t][NU - 1][c] > 0);
                assert_int_equal(ls.conns[k], 1);
                continue;
            }
            int u = 0;
            while (u < NU - 1 && strcmp(users[u], ls.names[k]) != 0)
                u++;
            assert_true(u < NU - 1);
            assert_int_equal(ls.conns[k], model_user_conns(&m, t, u));
        }
    }
    assert_int_equal(rc_presence_topics(p), live_topics);
    /* everyone leaves: every topic is freed and the left count matches */
    for (int t = 0; t < NT; t++)
        for (int u = 0; u < NU; u++)
            for (int c = 0; c < NC; c++)
                while (m.subs[t][u][c]) {
                    bool flag;
                    assert_int_equal(leave(p, topics[t], users[u], (uint64_t)c + 1, &flag), 0);
                    m.subs[t][u][c]--;
                    left += flag;
                }
    assert_int_equal(rc_presence_topics(p), 0);
    assert_int_equal(left, joined);
    rc_presence_free(p);
}

static void test_presence_500_random_joins_and_leaves_match_model(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 200; seed++)
        run_random(seed * 0x9e3779b97f4a7c15ULL, 500, 1000);
}

static void test_presence_random_with_cap_matches_model(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 200; seed++)
        run_random(seed * 0xd1b54a32d192ed03ULL, 2000, 9);
}

/* Many members in one topic: exercises growth and backward-shift deletion. */
static void test_presence_many_members_survive_churn(void **state)
{
    (void)state;
    struct rc_presence *p = rc_presence_new(0);
    assert_non_null(p);
    char name[16];
    bool f;
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "u%d", i % 1000);
        assert_int_equal(join(p, "big", name, (uint64_t)i, &f), 0);
        assert_int_equal(f, i < 1000);
    }
    expect_counts(p, "big", 1000, 3000);
    for (int i = 0; i < 3000; i += 2) {
        snprintf(name, sizeof(name), "u%d", i % 1000);
        assert_int_equal(leave(p, "big", name, (uint64_t)i, &f), 0);
        assert_int_equal(f, i >= 2000); /* connections 0..1999 of even users leave first */
    }
    expect_counts(p, "big", 500, 1500);
    for (int i = 1; i < 3000; i += 2) {
        snprintf(name, sizeof(name), "u%d", i % 1000);
        assert_int_equal(leave(p, "big", name, (uint64_t)i, &f), 0);
        assert_int_equal(f, i >= 2000);
    }
    assert_int_equal(rc_presence_topics(p), 0);
    rc_presence_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presence_first_connection_joins),
        cmocka_unit_test(test_presence_last_connection_leaves),
        cmocka_unit_test(test_presence_anonymous_connections_count_by_id),
        cmocka_unit_test(test_presence_empty_topic_is_freed),
        cmocka_unit_test(test_presence_refuses_members_beyond_cap),
        cmocka_unit_test(test_presence_rejects_bad_input),
        cmocka_unit_test(test_presence_lists_users_in_pages),
        cmocka_unit_test(test_presence_list_callback_can_stop),
        cmocka_unit_test(test_presence_500_random_joins_and_leaves_match_model),
        cmocka_unit_test(test_presence_random_with_cap_matches_model),
        cmocka_unit_test(test_presence_many_members_survive_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
