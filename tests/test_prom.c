/* test_prom.c - the Prometheus text writer and the log2 histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringcast/histo.h"
#include "ringcast/prom.h"

static void test_histo_bucket_is_smallest_power_of_two_at_or_above(void **state)
{
    (void)state;
    assert_int_equal(rc_histo_bucket(0), 0);
    assert_int_equal(rc_histo_bucket(1), 0);
    assert_int_equal(rc_histo_bucket(2), 1);
    assert_int_equal(rc_histo_bucket(3), 2);
    assert_int_equal(rc_histo_bucket(4), 2);
    assert_int_equal(rc_histo_bucket(5), 3);
    assert_int_equal(rc_histo_bucket(1024), 10);
    assert_int_equal(rc_histo_bucket(1025), 11);
    assert_int_equal(rc_histo_bucket(UINT64_MAX), RC_HISTO_BUCKETS - 1);
}

static void test_histo_merge_adds_counts_and_sums(void **state)
{
    (void)state;
    struct rc_histo a = {0}, b = {0};
    rc_histo_add(&a, 3);
    rc_histo_add(&b, 3);
    rc_histo_add(&b, 100);
    rc_histo_merge(&a, &b);
    assert_int_equal(a.count, 3);
    assert_int_equal(a.sum, 106);
    assert_int_equal(a.b[2], 2);
    assert_int_equal(a.b[7], 1);
}

static char *render(struct rc_prom *p, size_t *len)
{
    char *txt = rc_prom_take(p, len);
    assert_non_null(txt);
    assert_int_equal(strlen(txt), *len);
    return txt;
}

static void test_prom_family_and_escaped_labels(void **state)
{
    (void)state;
    struct rc_prom p;
    rc_prom_init(&p);
    const struct rc_prom_label l[] = {{"shard", "0"}, {"v", "a\"b\\c\nd"}};
    rc_prom_family(&p, "ringcast_x_total", RC_PROM_COUNTER, "Things.");
    rc_prom_u64(&p, "ringcast_x_total", l, 2, 42);
    rc_prom_f64(&p, "ringcast_y", NULL, 0, 0.5);
    size_t len;
    char *txt = render(&p, &len);
    assert_string_equal(txt, "# HELP ringcast_x_total Things.\n"
                             "# TYPE ringcast_x_total counter\n"
                             "ringcast_x_total{shard=\"0\",v=\"a\\\"b\\\\c\\nd\"} 42\n"
                             "ringcast_y 0.5\n");
    free(txt);
    rc_prom_fini(&p);
}

static void test_prom_histogram_is_cumulative_and_folds_small_buckets(void **state)
{
    (void)state;
    struct rc_histo h = {0};
    rc_histo_add(&h, 1); /* folded into le=4 */
    rc_histo_add(&h, 3);
    rc_histo_add(&h, 8);
    rc_histo_add(&h, 1000); /* above le=16: only +Inf */
    struct rc_prom p;
    rc_prom_init(&p);
    const struct rc_prom_label l[] = {{"shard", "1"}};
    rc_prom_histo(&p, "h", l, 1, &h, 2, 4, 1.0);
    size_t len;
    char *txt = render(&p, &len);
    assert_string_equal(txt, "h_bucket{shard=\"1\",le=\"4\"} 2\n"
                             "h_bucket{shard=\"1\",le=\"8\"} 3\n"
                             "h_bucket{shard=\"1\",le=\"16\"} 3\n"
                             "h_bucket{shard=\"1\",le=\"+Inf\"} 4\n"
                             "h_sum{shard=\"1\"} 1012\n"
                             "h_count{shard=\"1\"} 4\n");
    free(txt);
    rc_prom_fini(&p);
}

static void test_prom_histogram_scales_nanoseconds_to_seconds(void **state)
{
    (void)state;
    struct rc_histo h = {0};
    rc_histo_add(&h, 1000);
    struct rc_prom p;
    rc_prom_init(&p);
    rc_prom_histo(&p, "t_seconds", NULL, 0, &h, 10, 10, 1e-9);
    size_t len;
    char *txt = render(&p, &len);
    assert_string_equal(txt, "t_seconds_bucket{le=\"1.024e-06\"} 1\n"
                             "t_seconds_bucket{le=\"+Inf\"} 1\n"
                             "t_seconds_sum 1e-06\n"
                             "t_seconds_count 1\n");
    free(txt);
    rc_prom_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histo_bucket_is_smallest_power_of_two_at_or_above),
        cmocka_unit_test(test_histo_merge_adds_counts_and_sums),
        cmocka_unit_test(test_prom_family_and_escaped_labels),
        cmocka_unit_test(test_prom_histogram_is_cumulative_and_folds_small_buckets),
        cmocka_unit_test(test_prom_histogram_scales_nanoseconds_to_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
