/* test_limits.c - token bucket (rate, burst, refill, time going backwards) and the per-IP
 * counter table (acquire/release, freeing at zero, the bound, rate windows and sweeps,
 * and a randomised run against a naive model to exercise backward-shift deletion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "ringcast/limits.h"

/* ---- connection budget ----------------------------------------------------------------- */

static void test_limits_connbudget_admits_exactly_max(void **state)
{
    (void)state;
    struct rc_connbudget b;
    rc_connbudget_init(&b, 3);
    assert_true(rc_connbudget_take(&b));
    assert_true(rc_connbudget_take(&b));
    assert_true(rc_connbudget_take(&b));
    assert_false(rc_connbudget_take(&b));
    assert_int_equal(rc_connbudget_used(&b), 3);
    rc_connbudget_put(&b);
    assert_int_equal(rc_connbudget_used(&b), 2);
    assert_true(rc_connbudget_take(&b));
    assert_false(rc_connbudget_take(&b));
}

#define RACE_THREADS 4
#define RACE_TRIES 20000

static void *race_take(void *arg)
{
    struct rc_connbudget *b = arg;
    uintptr_t got = 0;
    for (int i = 0; i < RACE_TRIES; i++)
        got += rc_connbudget_take(b);
    return (void *)got;
}

/* Shards racing on accept: the sum of successful takes is the budget, never more. */
static void test_limits_connbudget_is_exact_across_threads(void **state)
{
    (void)state;
    struct rc_connbudget b;
    rc_connbudget_init(&b, 1000);
    pthread_t t[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_take, &b), 0);
    uintptr_t total = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        void *got;
        assert_int_equal(pthread_join(t[i], &got), 0);
        total += (uintptr_t)got;
    }
    assert_int_equal(total, 1000);
    assert_int_equal(rc_connbudget_used(&b), 1000);
}

/* ---- bucket ---------------------------------------------------------------------- */

static void test_limits_bucket_starts_full_with_burst(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 50, 100, 1000);
    assert_int_equal(rc_bucket_tokens(&b, 1000), 100);
}

static void test_limits_bucket_refuses_past_burst(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 50, 3, 0);
    assert_true(rc_bucket_take(&b, 0, 1));
    assert_true(rc_bucket_take(&b, 0, 1));
    assert_true(rc_bucket_take(&b, 0, 1));
    assert_false(rc_bucket_take(&b, 0, 1));
    assert_int_equal(rc_bucket_tokens(&b, 0), 0);
}

static void test_limits_bucket_refills_at_rate(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 50, 1, 0); /* one token per 20 ms */
    assert_true(rc_bucket_take(&b, 0, 1));
    assert_false(rc_bucket_take(&b, 19, 1));
    assert_true(rc_bucket_take(&b, 20, 1));
    assert_false(rc_bucket_take(&b, 20, 1));
    assert_true(rc_bucket_take(&b, 40, 1));
}

static void test_limits_bucket_refill_keeps_fractions(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 3, 1, 0); /* 1 token per 333.3 ms */
    assert_true(rc_bucket_take(&b, 0, 1));
    assert_false(rc_bucket_take(&b, 200, 1));
    assert_false(rc_bucket_take(&b, 333, 1)); /* 0.999 tokens */
    assert_true(rc_bucket_take(&b, 334, 1));  /* 1.002 tokens */
}

static void test_limits_bucket_refill_caps_at_burst(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 1000, 5, 0);
    assert_true(rc_bucket_take(&b, 0, 5));
    assert_int_equal(rc_bucket_tokens(&b, 1000000), 5);
    assert_true(rc_bucket_take(&b, 1000000, 5));
    assert_false(rc_bucket_take(&b, 1000000, 1));
}

static void test_limits_bucket_takes_n_at_once_or_nothing(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 10, 4, 0);
    assert_false(rc_bucket_take(&b, 0, 5));
    assert_int_equal(rc_bucket_tokens(&b, 0), 4);
    assert_true(rc_bucket_take(&b, 0, 4));
    assert_true(rc_bucket_take(&b, 0, 0));
}

static void test_limits_bucket_time_backwards_adds_nothing(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 50, 1, 1000);
    assert_true(rc_bucket_take(&b, 1000, 1));
    assert_false(rc_bucket_take(&b, 0, 1));    /* clock jumped back */
    assert_false(rc_bucket_take(&b, 1019, 1)); /* measured from 1000, not from 0 */
    assert_true(rc_bucket_take(&b, 1020, 1));
}

static void test_limits_bucket_huge_gap_does_not_overflow(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, UINT32_MAX, 7, INT64_MIN / 2);
    assert_true(rc_bucket_take(&b, INT64_MIN / 2, 7));
    assert_int_equal(rc_bucket_tokens(&b, INT64_MAX / 2), 7);
}

static void test_limits_bucket_rate_zero_is_unlimited(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 0, 0, 0);
    for (int i = 0; i < 1000; i++)
        assert_true(rc_bucket_take(&b, 0, 1));
}

static void test_limits_bucket_zero_burst_means_one(void **state)
{
    (void)state;
    struct rc_bucket b;
    rc_bucket_init(&b, 10, 0, 0);
    assert_true(rc_bucket_take(&b, 0, 1));
    assert_false(rc_bucket_take(&b, 0, 1));
}

/* ---- keys ------------------------------------------------------------------------ */

static struct rc_ipkey v4(const char *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct rc_ipkey k;
    assert_int_equal(inet_pton(AF_INET, s, &sa.sin_addr), 1);
    assert_int_equal(rc_ipkey_from_sockaddr((struct sockaddr *)&sa, &k), 0);
    return k;
}

static struct rc_ipkey v6(const char *s)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    struct rc_ipkey k;
    assert_int_equal(inet_pton(AF_INET6, s, &sa.sin6_addr), 1);
    assert_int_equal(rc_ipkey_from_sockaddr((struct sockaddr *)&sa, &k), 0);
    return k;
}

static void test_limits_ipkey_v4_and_mapped_v6_are_equal(void **state)
{
    (void)state;
    struct rc_ipkey a = v4("192.0.2.7"), b = v6("::ffff:192.0.2.7"), c = v4("192.0.2.8");
    char buf[64];
    assert_memory_equal(&a, &b, sizeof(a));
    assert_memory_not_equal(&a, &c, sizeof(a));
    rc_ipkey_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "192.0.2.7");
}

static void test_limits_ipkey_v6_keys_by_slash64(void **state)
{
    (void)state;
    struct rc_ipkey a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2:ffff::9"),
                    c = v6("2001:db8:1:3::1");
    char buf[64];
    assert_memory_equal(&a, &b, sizeof(a));
    assert_memory_not_equal(&a, &c, sizeof(a));
    rc_ipkey_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "2001:db8:1:2::/64");
}

static void test_limits_ipkey_refuses_unix_sockets(void **state)
{
    (void)state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct rc_ipkey k;
    assert_int_equal(rc_ipkey_from_sockaddr((struct sockaddr *)&sa, &k), -EAFNOSUPPORT);
}

/* ---- table: concurrent use ---------------------------------------------------------- */

static void test_limits_iptable_new_refuses_bad_bound(void **state)
{
    (void)state;
    struct rc_err err = {0};
    assert_null(rc_iptable_new(0, &err));
    assert_string_equal(err.msg, "per-IP table bound 0 is out of range; use 1..16777216");
    assert_null(rc_iptable_new(RC_IPTABLE_MAX_BOUND + 1, &err));
}

static void test_limits_iptable_acquire_increments(void **state)
{
    (void)state;
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(8, &err);
    struct rc_ipkey a = v4("10.0.0.1"), b = v4("10.0.0.2");
    assert_non_null(t);
    assert_int_equal(rc_iptable_acquire(t, &a, 0), 0);
    assert_int_equal(rc_iptable_acquire(t, &a, 0), 0);
    assert_int_equal(rc_iptable_acquire(t, &b, 0), 0);
    assert_int_equal(rc_iptable_count(t, &a), 2);
    assert_int_equal(rc_iptable_count(t, &b), 1);
    assert_int_equal(rc_iptable_size(t), 2);
    rc_iptable_free(t);
}

static void test_limits_iptable_acquire_stops_at_limit(void **state)
{
    (void)state;
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(8, &err);
    struct rc_ipkey a = v4("10.0.0.1"), b = v4("10.0.0.2");
    assert_int_equal(rc_iptable_acquire(t, &a, 2), 0);
    assert_int_equal(rc_iptable_acquire(t, &a, 2), 0);
    assert_int_equal(rc_iptable_acquire(t, &a, 2), -EBUSY);
    assert_int_equal(rc_iptable_count(t, &a), 2);
    assert_int_equal(rc_iptable_acquire(t, &b, 2), 0); /* other addresses unaffected */
    rc_iptable_free(t);
}

static void test_limits_iptable_release_decrements_and_frees_at_zero(void **state)
{
    (void)state;
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(8, &err);
    struct rc_ipkey a = v4("10.0.0.1");
    assert_int_equal(rc_iptable_acquire(t, &a, 0), 0);
    assert_int_equal(rc_iptable_acquire(t, &a, 0), 0);
    assert_true(rc_iptable_release(t, &a));
    assert_int_equal(rc_iptable_count(t, &a), 1);
    assert_int_equal(rc_iptable_size(t), 1);
    assert_true(rc_iptable_release(t, &a));
    assert_int_equal(rc_iptable_count(t, &a), 0);
    assert_int_equal(rc_iptable_size(t), 0);
    assert_false(rc_iptable_release(t, &a));
    rc_iptable_free(t);
}

static void test_limits_iptable_refuses_new_address_at_bound(void **state)
{
    (void)state;
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(2, &err);
    struct rc_ipkey a = v4("10.0.0.1"), b = v4("10.0.0.2"), c = v4("10.0.0.3");
    assert_int_equal(rc_iptable_acquire(t, &a, 0), 0);
    assert_int_equal(rc_iptable_acquire(t, &b, 0), 0);
    assert_int_equal(rc_iptable_acquire(t, &c, 0), -ENOSPC);
    assert_int_equal(rc_iptable_acquire(t, &a, 0), 0); /* known addresses still count */
    assert_true(rc_iptable_release(t, &b));
    assert_int_equal(rc_iptable_acquire(t, &c, 0), 0); /* room again once b is freed */
    assert_int_equal(rc_iptable_size(t), 2);
    rc_iptable_free(t);
}

/* Random acquire/release against a plain array: every count must agree after each step,
 * which fails if backward-shift deletion ever loses or duplicates an entry. */
static void test_limits_iptable_matches_model_under_churn(void **state)
{
    (void)state;
    enum { ADDRS = 300, STEPS = 20000 };
    uint32_t model[ADDRS] = {0};
    struct rc_ipkey keys[ADDRS];
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(ADDRS, &err);
    size_t live = 0;
    unsigned seed = 12345;

    for (int i = 0; i < ADDRS; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        assert_int_equal(rc_ipkey_from_sockaddr((struct sockaddr *)&sa, &keys[i]), 0);
    }
    for (int step = 0; step < STEPS; step++) {
        int i = rand_r(&seed) % ADDRS;
        if (rand_r(&seed) % 2) {
            assert_int_equal(rc_iptable_acquire(t, &keys[i], 3), model[i] < 3 ? 0 : -EBUSY);
            if (model[i] < 3)
                live += model[i]++ == 0;
        } else {
            assert_int_equal(rc_iptable_release(t, &keys[i]), model[i] > 0);
            if (model[i] > 0)
                live -= --model[i] == 0;
        }
        assert_int_equal(rc_iptable_size(t), live);
        if (step % 997 == 0)
            for (int j = 0; j < ADDRS; j++)
                assert_int_equal(rc_iptable_count(t, &keys[j]), model[j]);
    }
    for (int j = 0; j < ADDRS; j++)
        assert_int_equal(rc_iptable_count(t, &keys[j]), model[j]);
    rc_iptable_free(t);
}

/* ---- table: rate use ----------------------------------------------------------------- */

static void test_limits_iptable_rate_limits_within_window(void **state)
{
    (void)state;
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(8, &err);
    struct rc_ipkey a = v4("10.0.0.1"), b = v4("10.0.0.2");
    assert_int_equal(rc_iptable_rate_hit(t, &a, 5000, 2), 0);
    assert_int_equal(rc_iptable_rate_hit(t, &a, 5500, 2), 0);
    assert_int_equal(rc_iptable_rate_hit(t, &a, 5999, 2), -EBUSY);
    assert_int_equal(rc_iptable_rate_hit(t, &b, 5999, 2), 0);
    assert_int_equal(rc_iptable_rate_hit(t, &a, 6000, 2), 0); /* a new window */
    assert_int_equal(rc_iptable_count(t, &a), 1);
    rc_iptable_free(t);
}

static void test_limits_iptable_rate_zero_is_unlimited(void **state)
{
    (void)state;
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(1, &err);
    struct rc_ipkey a = v4("10.0.0.1");
    for (int i = 0; i < 100; i++)
        assert_int_equal(rc_iptable_rate_hit(t, &a, 0, 0), 0);
    assert_int_equal(rc_iptable_size(t), 0);
    rc_iptable_free(t);
}

static void test_limits_iptable_rate_refuses_new_address_at_bound(void **state)
{
    (void)state;
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(1, &err);
    struct rc_ipkey a = v4("10.0.0.1"), b = v4("10.0.0.2");
    assert_int_equal(rc_iptable_rate_hit(t, &a, 0, 5), 0);
    assert_int_equal(rc_iptable_rate_hit(t, &b, 0, 5), -ENOSPC);
    assert_int_equal(rc_iptable_rate_sweep(t, 1000), 1);
    assert_int_equal(rc_iptable_rate_hit(t, &b, 1000, 5), 0);
    rc_iptable_free(t);
}

static void test_limits_iptable_sweep_frees_finished_windows(void **state)
{
    (void)state;
    enum { N = 200 };
    struct rc_err err = {0};
    struct rc_iptable *t = rc_iptable_new(N, &err);
    struct rc_ipkey k;

    for (int i = 0; i < N; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        assert_int_equal(rc_ipkey_from_sockaddr((struct sockaddr *)&sa, &k), 0);
        /* even addresses start at 0, odd ones at 500 */
        assert_int_equal(rc_iptable_rate_hit(t, &k, (i % 2) * 500, 10), 0);
    }
    assert_int_equal(rc_iptable_rate_sweep(t, 999), 0);
    assert_int_equal(rc_iptable_rate_sweep(t, 1000), N / 2);
    assert_int_equal(rc_iptable_size(t), N / 2);
    for (int i = 0; i < N; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        assert_int_equal(rc_ipkey_from_sockaddr((struct sockaddr *)&sa, &k), 0);
        assert_int_equal(rc_iptable_count(t, &k), (unsigned)(i % 2));
    }
    assert_int_equal(rc_iptable_rate_sweep(t, 1500), N / 2);
    assert_int_equal(rc_iptable_size(t), 0);
    rc_iptable_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_bucket_starts_full_with_burst),
        cmocka_unit_test(test_limits_bucket_refuses_past_burst),
        cmocka_unit_test(test_limits_bucket_refills_at_rate),
        cmocka_unit_test(test_limits_bucket_refill_keeps_fractions),
        cmocka_unit_test(test_limits_bucket_refill_caps_at_burst),
        cmocka_unit_test(test_limits_bucket_takes_n_at_once_or_nothing),
        cmocka_unit_test(test_limits_bucket_time_backwards_adds_nothing),
        cmocka_unit_test(test_limits_bucket_huge_gap_does_not_overflow),
        cmocka_unit_test(test_limits_bucket_rate_zero_is_unlimited),
        cmocka_unit_test(test_limits_bucket_zero_burst_means_one),
        cmocka_unit_test(test_limits_ipkey_v4_and_mapped_v6_are_equal),
        cmocka_unit_test(test_limits_ipkey_v6_keys_by_slash64),
        cmocka_unit_test(test_limits_ipkey_refuses_unix_sockets),
        cmocka_unit_test(test_limits_iptable_new_refuses_bad_bound),
        cmocka_unit_test(test_limits_iptable_acquire_increments),
        cmocka_unit_test(test_limits_iptable_acquire_stops_at_limit),
        cmocka_unit_test(test_limits_iptable_release_decrements_and_frees_at_zero),
        cmocka_unit_test(test_limits_iptable_refuses_new_address_at_bound),
        cmocka_unit_test(test_limits_iptable_matches_model_under_churn),
        cmocka_unit_test(test_limits_iptable_rate_limits_within_window),
        cmocka_unit_test(test_limits_iptable_rate_zero_is_unlimited),
        cmocka_unit_test(test_limits_iptable_rate_refuses_new_address_at_bound),
        cmocka_unit_test(test_limits_iptable_sweep_frees_finished_windows),
        cmocka_unit_test(test_limits_connbudget_admits_exactly_max),
        cmocka_unit_test(test_limits_connbudget_is_exact_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
