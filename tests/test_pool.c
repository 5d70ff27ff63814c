/* test_pool.c - the object pool reuses freed objects, returns them zeroed,
 * and honours its cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ringcast/pool.h"

struct obj {
    uint64_t a, b, c;
};

static void test_pool_get_returns_zeroed_distinct_objects(void **state)
{
    (void)state;
    struct rc_pool p;
    rc_pool_init(&p, sizeof(struct obj), 4, 0);
    struct obj *o[10];
    for (int i = 0; i < 10; i++) {
        o[i] = rc_pool_get(&p);
        assert_non_null(o[i]);
        assert_int_equal(o[i]->a + o[i]->b + o[i]->c, 0);
        o[i]->a = (uint64_t)i + 1;
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(o[i], o[j]);
    }
    assert_int_equal(p.in_use, 10);
    assert_int_equal(p.capacity, 12);
    rc_pool_fini(&p);
}

static void test_pool_put_then_get_reuses_and_zeroes(void **state)
{
    (void)state;
    struct rc_pool p;
    rc_pool_init(&p, sizeof(struct obj), 8, 0);
    struct obj *a = rc_pool_get(&p);
    assert_non_null(a);
    a->b = 77;
    rc_pool_put(&p, a);
    assert_int_equal(p.in_use, 0);
    struct obj *b = rc_pool_get(&p);
    assert_ptr_equal(a, b);
    assert_int_equal(b->b, 0);
    rc_pool_fini(&p);
}

static void test_pool_cap_refuses_past_max(void **state)
{
    (void)state;
    struct rc_pool p;
    rc_pool_init(&p, sizeof(struct obj), 4, 6);
    void *o[6];
    for (int i = 0; i < 6; i++) {
        o[i] = rc_pool_get(&p);
        assert_non_null(o[i]);
    }
    void *extra = rc_pool_get(&p);
    assert_null(extra);
    rc_pool_put(&p, o[3]);
    void *again = rc_pool_get(&p);
    assert_ptr_equal(again, o[3]);
    assert_int_equal(p.capacity, 6);
    rc_pool_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_get_returns_zeroed_distinct_objects),
        cmocka_unit_test(test_pool_put_then_get_reuses_and_zeroes),
        cmocka_unit_test(test_pool_cap_refuses_past_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
