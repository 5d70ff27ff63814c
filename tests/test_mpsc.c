/* test_mpsc.c - the MPSC queue: FIFO per producer, nothing lost or doubled
 * under concurrent producers (run under TSan by scripts/test), and the
 * batched wake-up writes the eventfd once per sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ringcast/mpsc.h"

struct item {
    struct rc_mpsc_node node;
    unsigned producer;
    unsigned seq;
};

static void test_mpsc_empty_pop_returns_null(void **state)
{
    (void)state;
    struct rc_mpsc q;
    rc_mpsc_init(&q, -1);
    assert_null(rc_mpsc_pop(&q));
    assert_true(rc_mpsc_is_empty(&q));
}

static void test_mpsc_single_thread_fifo(void **state)
{
    (void)state;
    struct rc_mpsc q;
    struct item it[5];
    rc_mpsc_init(&q, -1);
    for (unsigned i = 0; i < 5; i++) {
        it[i].seq = i;
        rc_mpsc_push(&q, &it[i].node);
        assert_false(rc_mpsc_is_empty(&q));
    }
    for (unsigned i = 0; i < 5; i++) {
        struct rc_mpsc_node *n = rc_mpsc_pop(&q);
        assert_non_null(n);
        assert_int_equal(RC_CONTAINER_OF(n, struct item, node)->seq, i);
    }
    assert_null(rc_mpsc_pop(&q));
    assert_true(rc_mpsc_is_empty(&q));
}

static void test_mpsc_interleaved_push_pop_keeps_order(void **state)
{
    (void)state;
    struct rc_mpsc q;
    struct item it[3];
    rc_mpsc_init(&q, -1);
    it[0].seq = 0;
    rc_mpsc_push(&q, &it[0].node);
    assert_int_equal(RC_CONTAINER_OF(rc_mpsc_pop(&q), struct item, node)->seq, 0);
    assert_true(rc_mpsc_is_empty(&q));
    it[1].seq = 1;
    it[2].seq = 2;
    rc_mpsc_push(&q, &it[1].node);
    rc_mpsc_push(&q, &it[2].node);
    assert_int_equal(RC_CONTAINER_OF(rc_mpsc_pop(&q), struct item, node)->seq, 1);
    assert_false(rc_mpsc_is_empty(&q));
    assert_int_equal(RC_CONTAINER_OF(rc_mpsc_pop(&q), struct item, node)->seq, 2);
    assert_null(rc_mpsc_pop(&q));
}

static uint64_t efd_read(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

static void test_mpsc_wakes_once_per_sleep(void **state)
{
    (void)state;
    struct rc_mpsc q;
    struct item it[10];
    int efd = eventfd(0, EFD_NONBLOCK);
    assert_true(efd >= 0);
    rc_mpsc_init(&q, efd);

    /* awake consumer: producers never write the eventfd */
    assert_false(rc_mpsc_push(&q, &it[0].node));
    assert_int_equal(efd_read(efd), 0);
    assert_false(rc_mpsc_prepare_sleep(&q)); /* not empty: must not sleep */
    assert_non_null(rc_mpsc_pop(&q));
    assert_true(rc_mpsc_prepare_sleep(&q));

    /* asleep: the first push writes once, the next nine do not */
    assert_true(rc_mpsc_push(&q, &it[1].node));
    for (int i = 2; i < 10; i++)
        assert_false(rc_mpsc_push(&q, &it[i].node));
    assert_int_equal(efd_read(efd), 1);
    rc_mpsc_awake(&q);
    int n = 0;
    while (rc_mpsc_pop(&q))
        n++;
    assert_int_equal(n, 9);
    close(efd);
}

#define PRODUCERS 4
#define PER_PRODUCER 200000

struct producer_arg {
    struct rc_mpsc *q;
    struct item *items;
    unsigned id;
};

static void *producer(void *arg)
{
    struct producer_arg *a = arg;
    for (unsigned i = 0; i < PER_PRODUCER; i++) {
        struct item *it = &a->items[i];
        it->producer = a->id;
        it->seq = i;
        rc_mpsc_push(a->q, &it->node);
    }
    return NULL;
}

/* Four producers race one consumer that sleeps on an eventfd whenever the
 * queue looks empty: every item arrives exactly once, in order per producer,
 * and the consumer is never left asleep with items queued. */
static void test_mpsc_stress_four_producers_lose_nothing(void **state)
{
    (void)state;
    static struct rc_mpsc q;
    struct producer_arg args[PRODUCERS];
    pthread_t th[PRODUCERS];
    unsigned next_seq[PRODUCERS] = {0};
    int efd = eventfd(0, 0);
    assert_true(efd >= 0);
    rc_mpsc_init(&q, efd);

    for (unsigned p = 0; p < PRODUCERS; p++) {
        args[p].q = &q;
        args[p].id = p;
        args[p].items = calloc(PER_PRODUCER, sizeof(struct item));
        assert_non_null(args[p].items);
        assert_int_equal(pthread_create(&th[p], NULL, producer, &args[p]), 0);
    }
    size_t got = 0;
    unsigned sleeps = 0;
    while (got < (size_t)PRODUCERS * PER_PRODUCER) {
        struct rc_mpsc_node *n = rc_mpsc_pop(&q);
        if (!n) {
            if (rc_mpsc_prepare_sleep(&q)) {
                efd_read(efd); /* blocks until a producer wakes us */
                sleeps++;
            }
            rc_mpsc_awake(&q);
            continue;
        }
        struct item *it = RC_CONTAINER_OF(n, struct item, node);
        assert_true(it->producer < PRODUCERS);
        assert_int_equal(it->seq, next_seq[it->producer]);
        next_seq[it->producer]++;
        got++;
    }
    for (unsigned p = 0; p < PRODUCERS; p++) {
        pthread_join(th[p], NULL);
        assert_int_equal(next_seq[p], PER_PRODUCER);
        free(args[p].items);
    }
    assert_null(rc_mpsc_pop(&q));
    close(efd);
    (void)sleeps;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpsc_empty_pop_returns_null),
        cmocka_unit_test(test_mpsc_single_thread_fifo),
        cmocka_unit_test(test_mpsc_interleaved_push_pop_keeps_order),
        cmocka_unit_test(test_mpsc_wakes_once_per_sleep),
        cmocka_unit_test(test_mpsc_stress_four_producers_lose_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
