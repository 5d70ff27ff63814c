/* test_redis_bridge.c - two bridges (two nodes) on one real redis-server:
 * publishes from both nodes reach both in one order with no duplicate; after
 * the subscriber connections are killed, events published meanwhile are
 * caught up from the history, in order, once; with Redis down a publish is
 * answered 503 broker_unavailable at once and the bridge reports why; after a
 * restart it publishes again (a new epoch: Redis kept nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "ringcast/redis_bridge.h"
#include "redis_test_server.h"

#define MAXEV 4096

struct node {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t seqs[MAXEV];
    char epochs[MAXEV][RC_EPOCH_MAX];
    size_t n;
    unsigned done_ok, done_fail;
    char last_code[64], last_why[160];
    struct rc_redis_bridge *b;
};

static void on_event(void *arg, const char *topic, size_t len, const struct rc_redis_event *ev)
{
    struct node *nd = arg;
    (void)topic, (void)len;
    pthread_mutex_lock(&nd->mu);
    if (nd->n < MAXEV) {
        nd->seqs[nd->n] = ev->seq;
        memcpy(nd->epochs[nd->n], ev->epoch, RC_EPOCH_MAX);
        nd->n++;
    }
    pthread_cond_broadcast(&nd->cv);
    pthread_mutex_unlock(&nd->mu);
}

static void on_done(void *arg, struct rc_redis_req *req)
{
    struct node *nd = arg;
    pthread_mutex_lock(&nd->mu);
    if (req->status < 400) {
        nd->done_ok++;
    } else {
        nd->done_fail++;
        snprintf(nd->last_code, sizeof(nd->last_code), "%s", req->code ? req->code : "");
        snprintf(nd->last_why, sizeof(nd->last_why), "%s", req->why);
    }
    pthread_cond_broadcast(&nd->cv);
    pthread_mutex_unlock(&nd->mu);
    rc_redis_req_free(req);
}

static uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait (up to ms) until pred(nd) holds; true when it did. */
static bool wait_for(struct node *nd, bool (*pred)(struct node *, uint64_t), uint64_t arg,
                     unsigned ms)
{
    uint64_t end = mono() + ms;
    pthread_mutex_lock(&nd->mu);
    bool ok;
    while (!(ok = pred(nd, arg)) && mono() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&nd->cv, &nd->mu, &ts);
    }
    pthread_mutex_unlock(&nd->mu);
    return ok;
}

static bool has_seq(struct node *nd, uint64_t seq)
{
    return nd->n && nd->seqs[nd->n - 1] >= seq;
}

static uint64_t last_seq(struct node *nd)
{
    pthread_mutex_lock(&nd->mu);
    uint64_t v = nd->n ? nd->seqs[nd->n - 1] : 0;
    pthread_mutex_unlock(&nd->mu);
    return v;
}

static void last_epoch(struct node *nd, char out[RC_EPOCH_MAX])
{
    pthread_mutex_lock(&nd->mu);
    memcpy(out, nd->n ? nd->epochs[nd->n - 1] : "", nd->n ? RC_EPOCH_MAX : 1);
    pthread_mutex_unlock(&nd->mu);
}

static bool more_than(struct node *nd, uint64_t n)
{
    return nd->n > n;
}

static bool answered(struct node *nd, uint64_t k)
{
    return nd->done_ok + nd->done_fail >= k;
}

static struct node *node_new(const struct redis_test_server *s)
{
    struct node *nd = calloc(1, sizeof(*nd));
    assert_non_null(nd);
    pthread_mutex_init(&nd->mu, NULL);
    pthread_cond_init(&nd->cv, NULL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", s->port);
    struct rc_redis_endpoint ep;
    struct rc_err err = {0};
    assert_int_equal(rc_redis_url_parse(url, strlen(url), &ep, &err), 0);
    struct rc_redis_bridge_cfg cfg = {
        .ep = &ep, .nep = 1, .timeout_ms = 500, .max_pending = 10000, .seen_max = 100};
    struct rc_redis_bridge_cb cb = {.event = on_event, .done = on_done, .arg = nd};
    assert_int_equal(rc_redis_bridge_open(&nd->b, &cfg, &cb, &err), 0);
    assert_int_equal(rc_redis_bridge_start(nd->b, &err), 0);
    return nd;
}

static void node_free(struct node *nd, struct rc_redis_counters *ctr)
{
    rc_redis_bridge_stop_counters(nd->b, ctr);
    pthread_mutex_destroy(&nd->mu);
    pthread_cond_destroy(&nd->cv);
    free(nd);
}

static void submit(struct node *nd, enum rc_redis_op op, const char *topic, unsigned i)
{
    struct rc_redis_req *r = rc_redis_req_new(op, topic, strlen(topic));
    assert_non_null(r);
    if (op == RC_REDIS_PUBLISH) {
        char d[32];
        snprintf(d, sizeof(d), "{\"i\":%u}", i);
        r->type = strdup("message");
        r->data = strdup(d);
        r->maxlen = 1000;
    }
    rc_redis_bridge_submit(nd->b, r);
}

/* Every seq from the node's first to its last, once, in order. */
static void assert_contiguous(struct node *nd, const char *who)
{
    pthread_mutex_lock(&nd->mu);
    for (size_t i = 1; i < nd->n; i++)
        if (nd->seqs[i] != nd->seqs[i - 1] + 1 || strcmp(nd->epochs[i], nd->epochs[0]) != 0)
            fail_msg("%s: event %zu has seq %llu after %llu", who, i,
                     (unsigned long long)nd->seqs[i], (unsigned long long)nd->seqs[i - 1]);
    pthread_mutex_unlock(&nd->mu);
}

/* Publish probes through a until both nodes receive events (their
 * subscriptions are confirmed); returns the probes' last seq. */
static uint64_t warm_up(struct node *a, struct node *b)
{
    for (unsigned i = 0; i < 200; i++) {
        submit(a, RC_REDIS_PUBLISH, "t.order", i);
        if (wait_for(a, has_seq, 1, 20) && wait_for(b, has_seq, 1, 20))
            break;
    }
    assert_true(wait_for(a, answered, 1, 3000));
    pthread_mutex_lock(&a->mu);
    unsigned sent = a->done_ok;
    pthread_mutex_unlock(&a->mu);
    /* all probes answered, and both nodes have the last one */
    assert_true(wait_for(a, has_seq, sent, 3000));
    assert_true(wait_for(b, has_seq, sent, 3000));
    return sent;
}

/* Patterns become Redis globs: wildcard tokens as '*', glob specials in
 * names escaped, too long refused. */
static void test_pattern_glob(void **state)
{
    (void)state;
    char g[RC_REDIS_GLOB_MAX];
    assert_int_equal(rc_redis_pattern_glob(g, sizeof(g), "a.*.c", 5), 10);
    assert_string_equal(g, "rc:e:a.*.c");
    assert_true(rc_redis_pattern_glob(g, sizeof(g), "a.>", 3) > 0);
    assert_string_equal(g, "rc:e:a.*");
    assert_true(rc_redis_pattern_glob(g, sizeof(g), "x?.[y].*", 8) > 0);
    assert_string_equal(g, "rc:e:x\\?.\\[y\\].*");
    assert_true(rc_redis_pattern_glob(g, sizeof(g), "ab*.>", 5) > 0); /* '*' inside a name */
    assert_string_equal(g, "rc:e:ab\\*.*");
    char small[8];
    assert_int_equal(rc_redis_pattern_glob(small, sizeof(small), "abcdef", 6), -ENOSPC);
    char big[300];
    memset(big, 'a', sizeof(big));
    assert_true(rc_redis_pattern_glob(g, sizeof(g), big, 255) > 0);
}

static void test_two_nodes_one_order_and_gap(void **state)
{
    (void)state;
    struct redis_test_server s;
    assert_int_equal(rts_start(&s, NULL, 11), 0);
    struct node *a = node_new(&s), *b = node_new(&s);
    char why[200] = "";
    for (int i = 0; i < 300 && !rc_redis_bridge_up(a->b, why, sizeof(why)); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_true(rc_redis_bridge_up(a->b, why, sizeof(why)));
    submit(a, RC_REDIS_SUBSCRIBE, "t.order", 0);
    submit(b, RC_REDIS_SUBSCRIBE, "t.order", 0);
    uint64_t base = warm_up(a, b);
    /* 1,000 publishes, alternating between the nodes */
    for (unsigned i = 0; i < 1000; i++)
        submit(i % 2 ? a : b, RC_REDIS_PUBLISH, "t.order", i);
    assert_true(wait_for(a, has_seq, base + 1000, 10000));
    assert_true(wait_for(b, has_seq, base + 1000, 10000));
    assert_contiguous(a, "node a");
    assert_contiguous(b, "node b");
    /* the same events on both, from the first both have */
    assert_int_equal(last_seq(a), last_seq(b));

    /* both subscriber connections die; another publisher goes on meanwhile */
    redisContext *c = rts_connect(&s);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "CLIENT KILL TYPE pubsub");
    assert_true(r && r->type == REDIS_REPLY_INTEGER && r->integer == 2);
    freeReplyObject(r);
    r = redisCommand(c, "HGET rc:t:t.order epoch");
    char epoch[RC_EPOCH_MAX];
    snprintf(epoch, sizeof(epoch), "%s", r->str);
    freeReplyObject(r);
    for (unsigned i = 0; i < 200; i++) {
        const char *argv[] = {"EVAL",
                              rc_redis_publish_script,
                              "2",
                              "rc:t:t.order",
                              "rc:h:t.order",
                              "rc:e:t.order",
                              "1000",
                              "message",
                              "{}",
                              "",
                              "",
                              "0",
                              "1"};
        r = redisCommandArgv(c, 13, argv, NULL);
        assert_true(r && r->type == REDIS_REPLY_ARRAY);
        freeReplyObject(r);
    }
    /* then more through the nodes once they are back */
    uint64_t top = base + 1000 + 200;
    for (unsigned i = 0; i < 10; i++)
        submit(a, RC_REDIS_PUBLISH, "t.order", i);
    top += 10;
    assert_true(wait_for(a, answered, base + 1000 / 2 + 10, 5000));
    assert_true(wait_for(a, has_seq, top, 10000));
    assert_true(wait_for(b, has_seq, top, 10000));
    assert_contiguous(a, "node a after the reconnect");
    assert_contiguous(b, "node b after the reconnect");
    char last[RC_EPOCH_MAX];
    last_epoch(a, last);
    assert_string_equal(last, epoch);
    redisFree(c);
    struct rc_redis_counters ca, cb;
    node_free(a, &ca);
    node_free(b, &cb);
    assert_true(ca.reconnects >= 1 && cb.reconnects >= 1);
    /* each node read what it missed from the history: the first of the 200 is
     * published right after the kill, well inside the 100 ms before a
     * reconnect; how many of them came that way rather than live depends on
     * how fast the reconnect was (contiguous delivery above is the invariant) */
    assert_true(ca.gap_filled > 0 && cb.gap_filled > 0);
    assert_true(ca.gaps > 0 && cb.gaps > 0);
    assert_int_equal(ca.gap_lost, 0);
    assert_int_equal(cb.gap_lost, 0);
    rts_stop(&s);
}

static void test_redis_down_and_back(void **state)
{
    (void)state;
    struct redis_test_server s;
    assert_int_equal(rts_start(&s, NULL, 12), 0);
    struct node *a = node_new(&s);
    char why[200] = "";
    for (int i = 0; i < 300 && !rc_redis_bridge_up(a->b, why, sizeof(why)); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_true(rc_redis_bridge_up(a->b, why, sizeof(why)));
    submit(a, RC_REDIS_SUBSCRIBE, "t.down", 0);
    /* publish until the subscription is confirmed (an event comes back) */
    for (unsigned i = 0; i < 200 && !wait_for(a, has_seq, 1, 20); i++)
        submit(a, RC_REDIS_PUBLISH, "t.down", 0);
    assert_true(wait_for(a, has_seq, 1, 3000));
    pthread_mutex_lock(&a->mu);
    unsigned ok_before = a->done_ok + a->done_fail;
    pthread_mutex_unlock(&a->mu);
    assert_true(wait_for(a, answered, ok_before, 3000));
    rts_kill(&s, SIGKILL);
    for (int i = 0; i < 300 && rc_redis_bridge_up(a->b, why, sizeof(why)); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_false(rc_redis_bridge_up(a->b, why, sizeof(why)));
    assert_non_null(strstr(why, "is not connected"));
    uint64_t t0 = mono();
    pthread_mutex_lock(&a->mu);
    unsigned answered_before = a->done_ok + a->done_fail;
    pthread_mutex_unlock(&a->mu);
    submit(a, RC_REDIS_PUBLISH, "t.down", 1);
    assert_true(wait_for(a, answered, answered_before + 1, 2000));
    assert_true(mono() - t0 < 1000); /* answered at once, not after a timeout */
    assert_int_equal(a->done_fail, 1);
    assert_string_equal(a->last_code, "broker_unavailable");
    assert_non_null(strstr(a->last_why, "not connected"));
    /* back (empty: no persistence): publishes and deliveries resume */
    assert_true(rts_restart(&s));
    for (int i = 0; i < 700 && !rc_redis_bridge_up(a->b, why, sizeof(why)); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_true(rc_redis_bridge_up(a->b, why, sizeof(why)));
    pthread_mutex_lock(&a->mu);
    size_t before = a->n;
    pthread_mutex_unlock(&a->mu);
    for (unsigned i = 0; i < 100 && !wait_for(a, more_than, before, 20); i++)
        submit(a, RC_REDIS_PUBLISH, "t.down", 2);
    assert_true(wait_for(a, more_than, before, 3000));
    char last[RC_EPOCH_MAX];
    last_epoch(a, last);
    pthread_mutex_lock(&a->mu);
    bool new_epoch = strcmp(last, a->epochs[0]) != 0;
    pthread_mutex_unlock(&a->mu);
    assert_true(new_epoch);
    struct rc_redis_counters ca;
    node_free(a, &ca);
    assert_true(ca.epochs >= 1);
    assert_true(ca.publish_refused >= 1);
    rts_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_glob),
        cmocka_unit_test(test_two_nodes_one_order_and_gap),
        cmocka_unit_test(test_redis_down_and_back),
    };
    return cmocka_run_group_tests_name("redis_bridge", tests, NULL, NULL);
}
