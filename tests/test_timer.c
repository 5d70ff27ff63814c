/* test_timer.c - the timing wheel fires each timer once, not before its
 * deadline and within one tick after it, across wheel revolutions, and
 * tolerates callbacks that re-arm or cancel timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ringcast/timer.h"

struct rec {
    struct rc_timer t;
    int fired;
    uint64_t fired_at;
};

static uint64_t g_now;

static void on_fire(void *ctx, struct rc_timer *t)
{
    (void)ctx;
    struct rec *r = RC_CONTAINER_OF(t, struct rec, t);
    r->fired++;
    r->fired_at = g_now;
}

static void run_until(struct rc_timer_wheel *w, uint64_t end, uint64_t step)
{
    while (g_now < end) {
        g_now += step;
        rc_timer_advance(w, g_now, on_fire, NULL);
    }
}

static void test_timer_fires_not_before_deadline(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec r = {0};
    g_now = 1000;
    rc_timer_wheel_init(&w, g_now);
    rc_timer_arm(&w, &r.t, 1055);
    run_until(&w, 1054, 1);
    assert_int_equal(r.fired, 0);
    run_until(&w, 1070, 1);
    assert_int_equal(r.fired, 1);
    assert_true(r.fired_at >= 1055 && r.fired_at <= 1055 + RC_TIMER_TICK_MS);
    assert_false(rc_timer_is_armed(&r.t));
    assert_int_equal(w.armed, 0);
}

static void test_timer_long_deadline_survives_revolutions(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec r = {0};
    g_now = 0;
    rc_timer_wheel_init(&w, g_now);
    uint64_t dl = 3 * RC_TIMER_SLOTS * RC_TIMER_TICK_MS + 7;
    rc_timer_arm(&w, &r.t, dl);
    run_until(&w, dl - 1, 3);
    assert_int_equal(r.fired, 0);
    run_until(&w, dl + 2 * RC_TIMER_TICK_MS, 3);
    assert_int_equal(r.fired, 1);
}

static void test_timer_cancel_prevents_firing(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec a = {0}, b = {0};
    g_now = 0;
    rc_timer_wheel_init(&w, g_now);
    rc_timer_arm(&w, &a.t, 50);
    rc_timer_arm(&w, &b.t, 50);
    rc_timer_cancel(&w, &a.t);
    assert_int_equal(w.armed, 1);
    run_until(&w, 200, 10);
    assert_int_equal(a.fired, 0);
    assert_int_equal(b.fired, 1);
}

static void test_timer_rearm_moves_deadline(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec a = {0};
    g_now = 0;
    rc_timer_wheel_init(&w, g_now);
    rc_timer_arm(&w, &a.t, 50);
    rc_timer_arm(&w, &a.t, 500);
    assert_int_equal(w.armed, 1);
    run_until(&w, 490, 10);
    assert_int_equal(a.fired, 0);
    run_until(&w, 520, 10);
    assert_int_equal(a.fired, 1);
}

static void test_timer_past_deadline_fires_on_next_advance(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec a = {0};
    g_now = 5000;
    rc_timer_wheel_init(&w, g_now);
    rc_timer_arm(&w, &a.t, 10);
    run_until(&w, 5010, 10);
    assert_int_equal(a.fired, 1);
}

static struct rc_timer_wheel *g_w;
static struct rec g_other;

static void cancel_other(void *ctx, struct rc_timer *t)
{
    (void)ctx;
    on_fire(NULL, t);
    rc_timer_cancel(g_w, &g_other.t);
}

static void test_timer_callback_may_cancel_timer_in_same_slot(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec a = {0};
    memset(&g_other, 0, sizeof(g_other));
    g_w = &w;
    g_now = 0;
    rc_timer_wheel_init(&w, 0);
    rc_timer_arm(&w, &g_other.t, 30);
    rc_timer_arm(&w, &a.t, 30); /* a is first in the slot's list */
    g_now = 40;
    assert_int_equal(rc_timer_advance(&w, g_now, cancel_other, NULL), 1);
    assert_int_equal(a.fired, 1);
    assert_int_equal(g_other.fired, 0);
    assert_int_equal(w.armed, 0);
}

/* rc_timer_next_ms: the loop's sleep deadline, never after a timer is due */
static void test_timer_next_ms_bounds_the_sleep(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec a = {0}, b = {0};
    g_now = 100000;
    rc_timer_wheel_init(&w, g_now);
    assert_true(rc_timer_next_ms(&w) == UINT64_MAX); /* nothing armed: sleep until an event */
    rc_timer_arm(&w, &a.t, g_now + 5000);
    rc_timer_arm(&w, &b.t, g_now + 37);
    uint64_t next = rc_timer_next_ms(&w);
    assert_true(next <= g_now + 37 + RC_TIMER_TICK_MS && next >= g_now + 37);
    g_now = next;
    rc_timer_advance(&w, g_now, on_fire, NULL);
    assert_int_equal(b.fired, 1);
    next = rc_timer_next_ms(&w);
    assert_true(next > g_now && next <= g_now + 5000 - 37 + RC_TIMER_TICK_MS);
    /* a timer more than a wheel revolution away: an early wake (its slot), never late */
    rc_timer_cancel(&w, &a.t);
    rc_timer_arm(&w, &a.t, g_now + 3u * RC_TIMER_SLOTS * RC_TIMER_TICK_MS);
    next = rc_timer_next_ms(&w);
    assert_true(next > g_now && next <= a.t.deadline_ms);
    rc_timer_cancel(&w, &a.t);
    assert_true(rc_timer_next_ms(&w) == UINT64_MAX);
}

static void test_timer_stall_longer_than_wheel_fires_all(void **state)
{
    (void)state;
    struct rc_timer_wheel w;
    struct rec r[20];
    memset(r, 0, sizeof(r));
    g_now = 0;
    rc_timer_wheel_init(&w, 0);
    for (int i = 0; i < 20; i++)
        rc_timer_arm(&w, &r[i].t, (uint64_t)(i * 997));
    g_now = 100000;
    assert_int_equal(rc_timer_advance(&w, g_now, on_fire, NULL), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(r[i].fired, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_fires_not_before_deadline),
        cmocka_unit_test(test_timer_long_deadline_survives_revolutions),
        cmocka_unit_test(test_timer_cancel_prevents_firing),
        cmocka_unit_test(test_timer_rearm_moves_deadline),
        cmocka_unit_test(test_timer_past_deadline_fires_on_next_advance),
        cmocka_unit_test(test_timer_callback_may_cancel_timer_in_same_slot),
        cmocka_unit_test(test_timer_stall_longer_than_wheel_fires_all),
        cmocka_unit_test(test_timer_next_ms_bounds_the_sleep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
