/* test_deliver.c - the delivery hot path (rc_broker_deliver): matching
 * subscriptions get the shared frame plus their own suffix, and steady-state
 * delivery allocates nothing (malloc/calloc/realloc are wrapped with
 * -Wl,--wrap and counted).
 *
 * The shard here is a plain struct without a ring: delivery only queues
 * iovecs; sending is the shard loop's job. The few loop functions the broker
 * and conn modules call on other paths (posting, answering) are defined below
 * and fail the test if the delivery path reaches them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "ringcast/answer.h"
#include "ringcast/broker.h"
#include "ringcast/config.h"
#include "ringcast/shard.h"

/* ---- allocation counting ----------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static unsigned long g_allocs;

void *__wrap_malloc(size_t n)
{
    g_allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    g_allocs++;
    return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    g_allocs++;
    return __real_realloc(p, n);
}

/* ---- what the delivery path must not reach ----------------------------------------- */

/* Answers go through the connection's ops (conn.h); delivery answers nothing.
 * These connections have only that op: the broker needs no session here. */
static void answer_fails(struct rc_conn *c, const struct rc_ticket *t, const struct rc_answer *a)
{
    (void)c, (void)t, (void)a;
    fail_msg("delivery answered a request");
}

static const struct rc_conn_ops test_ops = {.name = "test", .answer = answer_fails};

/* Posts on other paths (a subscribe's hold on its exact topic) are dropped
 * as an inbox left at shutdown drops them; delivery posts nothing. */
static bool g_delivering;

void rc_shard_post(struct rc_shard *s, struct rc_post *p)
{
    (void)s;
    if (g_delivering)
        fail_msg("delivery posted to a shard");
    p->discard(p);
}

static size_t deliver(struct rc_shard *s, struct rc_evbuf *ev)
{
    g_delivering = true;
    size_t n = rc_broker_deliver(s, ev);
    g_delivering = false;
    return n;
}

struct rc_conn *rc_shard_conn(struct rc_shard *s, uint64_t id)
{
    (void)s, (void)id;
    return NULL;
}

void rc_shard_arm_timer(struct rc_shard *s, struct rc_conn *c, uint64_t deadline_ms)
{
    rc_timer_arm(&s->timers, &c->timer, deadline_ms);
}

void rc_shard_conn_closed(struct rc_shard *s, struct rc_conn *c)
{
    (void)s, (void)c;
}

/* ---- fixture ---------------------------------------------------------------------- */

#define NCONNS 64

struct fixture {
    struct rc_config cfg;
    struct rc_server srv;
    struct rc_shard shard;
    struct rc_shard *shards[1];
    struct rc_conn conns[NCONNS];
};

static int setup(void **state)
{
    struct fixture *f = __real_calloc(1, sizeof(*f));
    rc_config_defaults(&f->cfg);
    f->srv.cfg = &f->cfg;
    f->srv.nshards = 1;
    f->shards[0] = &f->shard;
    f->srv.shards = f->shards;
    f->shard.cfg = &f->cfg;
    f->shard.srv = &f->srv;
    rc_timer_wheel_init(&f->shard.timers, 0);
    assert_int_equal(rc_broker_init(&f->shard), 0);
    for (int i = 0; i < NCONNS; i++) {
        struct rc_conn *c = &f->conns[i];
        c->shard = &f->shard;
        c->id = (uint64_t)i;
        c->fd = -1;
        c->proto = i % 2 ? RC_PROTO_WS : RC_PROTO_SSE;
        c->state = RC_CONN_OPEN;
        c->ops = &test_ops;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < NCONNS; i++) {
        rc_broker_conn_gone(&f->conns[i]);
        rc_outq_release_all(&f->conns[i].out);
    }
    rc_broker_fini(&f->shard);
    rc_config_fini(&f->cfg);
    free(f);
    return 0;
}

static struct rc_evbuf *make_event(const char *topic, const char *data_json, uint64_t seq)
{
    struct rc_evbuf *ev = rc_evbuf_new(1);
    assert_non_null(ev);
    ev->kind = RC_EVENT_TOPIC;
    ev->topic = strdup(topic);
    ev->topic_len = strlen(topic);
    snprintf(ev->id, sizeof(ev->id), "t-%llu", (unsigned long long)seq);
    json_t *data = json_loads(data_json, JSON_DECODE_ANY, NULL);
    assert_non_null(data);
    assert_int_equal(rc_evbuf_encode(ev, "m", data, NULL, NULL), 0);
    ev->data = data;
    return ev;
}

/* Drop what delivery queued, as a completed send would. */
static void drain_output(struct fixture *f)
{
    for (int i = 0; i < NCONNS; i++)
        rc_outq_consume(&f->conns[i].out, f->conns[i].out.bytes);
    f->shard.dirty = NULL;
    for (int i = 0; i < NCONNS; i++) {
        f->conns[i].dirty = false;
        f->conns[i].dirty_next = NULL;
    }
}

static void test_deliver_queues_shared_frame_and_own_suffix(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    struct rc_sub *ws_sub = rc_broker_subscribe(&f->conns[1], "a.*", 3, NULL, &err);
    struct rc_sub *sse_sub = rc_broker_subscribe(&f->conns[2], "a.b", 3, NULL, &err);
    assert_non_null(ws_sub);
    assert_non_null(sse_sub);
    assert_non_null(rc_broker_subscribe(&f->conns[3], "x.>", 3, NULL, &err));

    struct rc_evbuf *ev = make_event("a.b", "{\"k\":1}", 1);
    assert_int_equal(deliver(&f->shard, ev), 2);

    struct rc_outq *q = &f->conns[1].out;
    assert_int_equal(q->tail - q->head, 2);
    assert_ptr_equal(q->iov[0].iov_base, ev->ws); /* shared, not copied */
    assert_int_equal(q->iov[0].iov_len, ev->ws_len);
    assert_ptr_equal(q->iov[1].iov_base, ws_sub->ws_suffix);
    assert_memory_equal(q->iov[1].iov_base, "\"", 1);
    assert_memory_equal((char *)q->iov[1].iov_base + 1, ws_sub->id, RC_SUB_ID_LEN);

    q = &f->conns[2].out;
    assert_int_equal(q->tail - q->head, 2);
    assert_ptr_equal(q->iov[0].iov_base, ev->sse);
    assert_ptr_equal(q->iov[1].iov_base, sse_sub->sse_suffix);
    assert_int_equal(f->conns[3].out.tail - f->conns[3].out.head, 0);
    /* one reference per queued shared segment, plus ours */
    assert_int_equal(atomic_load(&ev->refs), 3);
    drain_output(f);
    assert_int_equal(atomic_load(&ev->refs), 1);
    rc_evbuf_unref(ev);
}

static void test_deliver_steady_state_allocates_nothing(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    json_t *filter = json_loads("{\"n\":{\"$gte\":0}}", 0, NULL);
    for (int i = 0; i < NCONNS; i++) {
        assert_non_null(rc_broker_subscribe(&f->conns[i], "room.*", 6, NULL, &err));
        assert_non_null(rc_broker_subscribe(&f->conns[i], "room.1", 6, filter, &err));
    }
    json_decref(filter);
    struct rc_evbuf *evs[32];
    for (int i = 0; i < 32; i++)
        evs[i] = make_event("room.1", "{\"n\":5}", (uint64_t)i);

    /* warm-up: the iovec rings grow to their working size */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 32; i++)
            assert_int_equal(deliver(&f->shard, evs[i]), 2 * NCONNS);
        drain_output(f);
    }
    unsigned long before = g_allocs;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 32; i++)
            deliver(&f->shard, evs[i]);
        drain_output(f);
    }
    assert_int_equal(g_allocs - before, 0);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(atomic_load(&evs[i]->refs), 1);
        rc_evbuf_unref(evs[i]);
    }
}

static void test_deliver_skips_closing_connections(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_non_null(rc_broker_subscribe(&f->conns[5], "z", 1, NULL, &err));
    assert_non_null(rc_broker_subscribe(&f->conns[7], "z", 1, NULL, &err));
    f->conns[7].state = RC_CONN_FLUSHING;
    struct rc_evbuf *ev = make_event("z", "null", 1);
    assert_int_equal(deliver(&f->shard, ev), 1);
    assert_int_equal(f->shard.ctr.drops, 1);
    f->conns[7].state = RC_CONN_OPEN;
    drain_output(f);
    rc_evbuf_unref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliver_queues_shared_frame_and_own_suffix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_steady_state_allocates_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_skips_closing_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
