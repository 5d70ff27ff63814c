/* test_redis_conn.c - the non-blocking Redis connection against a real
 * redis-server: pipelined replies in order, AUTH and SELECT, the reply
 * deadline (a stopped server), a killed server failing every pending
 * command, reconnection by itself with backoff, and the subscriber mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <string.h>

#include "ringcast/redis_conn.h"
#include "redis_test_server.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Drive c until cond(arg) holds or ms pass; true when it held. */
static bool drive(struct rc_redis_conn *c, bool (*cond)(void *), void *arg, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (!cond(arg)) {
        uint64_t now = now_ms();
        if (now >= end)
            return false;
        struct pollfd p = {.fd = rc_redis_conn_fd(c), .events = rc_redis_conn_events(c)};
        uint64_t wake = rc_redis_conn_wake_ms(c);
        int to = wake <= now ? 0 : wake - now > 20 ? 20 : (int)(wake - now);
        int n = p.fd >= 0 ? poll(&p, 1, to) : poll(NULL, 0, to);
        rc_redis_conn_step(c, n > 0 ? p.revents : 0, now_ms());
    }
    return true;
}

static bool is_ready(void *arg)
{
    return rc_redis_conn_ready(arg);
}

static bool is_down(void *arg)
{
    return ((struct rc_redis_conn *)arg)->state == RC_REDIS_DOWN;
}

struct tally {
    long long next; /* expected next INCR value */
    unsigned ok, failed, out_of_order;
    char why[200];
};

static void on_incr(void *arg, struct redisReply *r, const char *why)
{
    struct tally *t = arg;
    if (!r) {
        t->failed++;
        snprintf(t->why, sizeof(t->why), "%s", why);
        return;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer != t->next)
        t->out_of_order++;
    t->next++;
    t->ok++;
}

static struct tally *g_t;
static unsigned g_want;
static bool all_answered(void *arg)
{
    (void)arg;
    return g_t->ok + g_t->failed >= g_want;
}

static void endpoint(struct rc_redis_endpoint *ep, const struct redis_test_server *s,
                     const char *extra)
{
    char url[128];
    snprintf(url, sizeof(url), "redis://%s127.0.0.1:%d%s", extra ? extra : "", s->port, "");
    struct rc_err err = {0};
    assert_int_equal(rc_redis_url_parse(url, strlen(url), ep, &err), 0);
}

/* Start a server (salt picks its port) and connect c to it; ready on return. */
static void open_ready(struct redis_test_server *s, int salt, struct rc_redis_conn *c,
                       uint32_t timeout_ms, uint32_t max_pending)
{
    assert_int_equal(rts_start(s, NULL, salt), 0);
    struct rc_redis_endpoint ep;
    endpoint(&ep, s, NULL);
    assert_int_equal(rc_redis_conn_init(c, &ep, timeout_ms, max_pending), 0);
    assert_true(drive(c, is_ready, c, 3000));
}

/* Drive c until t has n answers (ok or failed) or ms pass. */
static bool answers(struct rc_redis_conn *c, struct tally *t, unsigned n, unsigned ms)
{
    g_t = t;
    g_want = n;
    return drive(c, all_answered, NULL, ms);
}

static void test_pipeline_in_order(void **state)
{
    (void)state;
    struct redis_test_server s;
    assert_int_equal(rts_start(&s, NULL, 2), 0);
    struct rc_redis_endpoint ep;
    endpoint(&ep, &s, NULL);
    struct rc_redis_conn c;
    assert_int_equal(rc_redis_conn_init(&c, &ep, 2000, 100000), 0);
    const char *argv[] = {"INCR", "k"};
    assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, NULL), -ENOTCONN);
    assert_true(drive(&c, is_ready, &c, 3000));
    struct tally t = {.next = 1};
    enum { N = 20000 };
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), 0);
    assert_true(answers(&c, &t, N, 10000));
    assert_int_equal(t.ok, N);
    assert_int_equal(t.out_of_order, 0);
    assert_int_equal(c.connects, 1);
    rc_redis_conn_fini(&c);
    rts_stop(&s);
}

static void test_limit_and_kill_and_reconnect(void **state)
{
    (void)state;
    struct redis_test_server s;
    struct rc_redis_conn c;
    open_ready(&s, 3, &c, 2000, 10);
    struct tally t = {.next = 1};
    const char *argv[] = {"INCR", "k2"};
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), 0);
    /* max_pending bounds what is in flight */
    assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), -ENOBUFS);
    assert_true(answers(&c, &t, 10, 3000));
    assert_int_equal(t.ok, 10);
    /* the server dies with commands pending: each fails, the connection goes down */
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), 0);
    rts_kill(&s, SIGKILL);
    assert_true(answers(&c, &t, 15, 5000));
    assert_int_equal(t.failed, 5);
    assert_non_null(strstr(t.why, "connection lost"));
    assert_int_equal(c.state, RC_REDIS_DOWN);
    assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), -ENOTCONN);
    /* attempts while it is down fail and back off */
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 700)
        (void)drive(&c, is_ready, &c, 50);
    assert_true(c.failures >= 2);
    assert_true(c.backoff_ms > RC_REDIS_BACKOFF_MIN_MS);
    /* back: it reconnects by itself */
    assert_true(rts_restart(&s));
    assert_true(drive(&c, is_ready, &c, RC_REDIS_BACKOFF_MAX_MS + 2000));
    assert_int_equal(c.connects, 2);
    assert_int_equal(c.backoff_ms, RC_REDIS_BACKOFF_MIN_MS);
    struct tally t2 = {.next = 1}; /* no persistence: the key starts again */
    assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t2), 0);
    assert_true(answers(&c, &t2, 1, 3000));
    assert_int_equal(t2.ok, 1);
    assert_int_equal(t2.out_of_order, 0);
    rc_redis_conn_fini(&c);
    rts_stop(&s);
}

static void test_reply_deadline(void **state)
{
    (void)state;
    struct redis_test_server s;
    struct rc_redis_conn c;
    open_ready(&s, 4, &c, 300, 100);
    rts_kill(&s, SIGSTOP); /* alive, never answers */
    struct tally t = {.next = 1};
    const char *argv[] = {"INCR", "k3"};
    assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), 0);
    uint64_t t0 = now_ms();
    assert_true(answers(&c, &t, 1, 3000));
    uint64_t took = now_ms() - t0;
    assert_int_equal(t.failed, 1);
    assert_true(took >= 250);
    assert_int_equal(c.timeouts, 1);
    assert_non_null(strstr(t.why, "no reply"));
    rts_kill(&s, SIGCONT);
    assert_true(drive(&c, is_ready, &c, 3000));
    rc_redis_conn_fini(&c);
    rts_stop(&s);
}

/* A command sent after the connection sat idle longer than timeout_ms gets
 * its own full deadline (it once timed out at once: the clock ran from the
 * last reply). */
static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void test_idle_then_command(void **state)
{
    (void)state;
    struct redis_test_server s;
    struct rc_redis_conn c;
    open_ready(&s, 8, &c, 200, 100);
    (void)drive(&c, never, NULL, 500); /* idle: 2.5 x timeout_ms */
    struct tally t = {.next = 1};
    const char *argv[] = {"INCR", "idle"};
    assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), 0);
    assert_true(answers(&c, &t, 1, 3000));
    assert_int_equal(t.ok, 1);
    assert_int_equal(t.failed, 0);
    assert_int_equal(c.timeouts, 0);
    rc_redis_conn_fini(&c);
    rts_stop(&s);
}

static void test_auth_and_select(void **state)
{
    (void)state;
    struct redis_test_server s;
    assert_int_equal(rts_start(&s, "pw-1", 5), 0);
    struct rc_redis_endpoint ep;
    endpoint(&ep, &s, ":wrong@");
    struct rc_redis_conn c;
    assert_int_equal(rc_redis_conn_init(&c, &ep, 2000, 100), 0);
    rc_redis_conn_step(&c, 0, now_ms());
    assert_false(drive(&c, is_ready, &c, 500));
    assert_true(c.failures >= 1);
    assert_non_null(strstr(c.last_error, "handshake refused"));
    assert_null(strstr(c.last_error, "wrong")); /* the password is never shown */
    rc_redis_conn_fini(&c);

    char url[128];
    snprintf(url, sizeof(url), "redis://:pw-1@127.0.0.1:%d/5", s.port);
    struct rc_err err = {0};
    assert_int_equal(rc_redis_url_parse(url, strlen(url), &ep, &err), 0);
    assert_int_equal(rc_redis_conn_init(&c, &ep, 2000, 100), 0);
    assert_true(drive(&c, is_ready, &c, 3000));
    struct tally t = {.next = 1};
    const char *argv[] = {"INCR", "in-db-5"};
    assert_int_equal(rc_redis_conn_command(&c, 2, argv, NULL, on_incr, &t), 0);
    assert_true(answers(&c, &t, 1, 3000));
    assert_int_equal(t.ok, 1);
    rc_redis_conn_fini(&c);
    /* it went to db 5 */
    redisContext *rc = rts_connect(&s);
    assert_non_null(rc);
    redisReply *r = redisCommand(rc, "SELECT 5");
    freeReplyObject(r);
    r = redisCommand(rc, "GET in-db-5");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "1");
    freeReplyObject(r);
    redisFree(rc);
    rts_stop(&s);
}

struct pushed {
    unsigned subscribed, messages;
    char last[64];
};

static void on_push(void *arg, struct redisReply *r, const char *why)
{
    (void)why;
    struct pushed *p = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0)
        p->subscribed++;
    if (strcmp(r->element[0]->str, "message") == 0) {
        p->messages++;
        snprintf(p->last, sizeof(p->last), "%s", r->element[2]->str);
    }
}

static struct pushed *g_p;
static unsigned g_pwant_sub, g_pwant_msg;
static bool pushed_enough(void *arg)
{
    (void)arg;
    return g_p->subscribed >= g_pwant_sub && g_p->messages >= g_pwant_msg;
}

static void test_subscriber_mode(void **state)
{
    (void)state;
    struct redis_test_server s;
    assert_int_equal(rts_start(&s, NULL, 6), 0);
    struct rc_redis_endpoint ep;
    endpoint(&ep, &s, NULL);
    struct rc_redis_conn c;
    assert_int_equal(rc_redis_conn_init(&c, &ep, 2000, 100), 0);
    struct pushed p = {0};
    c.push = on_push;
    c.push_arg = &p;
    assert_true(drive(&c, is_ready, &c, 3000));
    const char *argv[] = {"SUBSCRIBE", "a", "b", "c"};
    assert_int_equal(rc_redis_conn_command(&c, 4, argv, NULL, NULL, NULL), 0);
    g_p = &p;
    g_pwant_sub = 3;
    g_pwant_msg = 0;
    assert_true(drive(&c, pushed_enough, NULL, 3000));
    redisContext *pub = rts_connect(&s);
    redisReply *r = redisCommand(pub, "PUBLISH b hello");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    g_pwant_msg = 1;
    assert_true(drive(&c, pushed_enough, NULL, 3000));
    assert_string_equal(p.last, "hello");
    /* a quiet subscriber is not timed out */
    uint64_t t0 = now_ms();
    (void)drive(&c, is_down, &c, 2500);
    assert_true(now_ms() - t0 >= 2400);
    assert_true(rc_redis_conn_ready(&c));
    redisFree(pub);
    rc_redis_conn_fini(&c);
    rts_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_in_order),
        cmocka_unit_test(test_limit_and_kill_and_reconnect),
        cmocka_unit_test(test_reply_deadline),
        cmocka_unit_test(test_idle_then_command),
        cmocka_unit_test(test_auth_and_select),
        cmocka_unit_test(test_subscriber_mode),
    };
    return cmocka_run_group_tests_name("redis_conn", tests, NULL, NULL);
}
