/* test_redis_keys.c - the Redis engine's pure parts (redis_url, the jump
 * hash's placement, names, the event message) and its publish script, run
 * against a real redis-server that the test starts on its own port and
 * directory (Debian's redis-server; scripts/deps.sh installs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringcast/redis_keys.h"
#include "redis_test_server.h"

static int url(const char *s, struct rc_redis_endpoint *ep, struct rc_err *err)
{
    return rc_redis_url_parse(s, strlen(s), ep, err);
}

static void test_url_good(void **state)
{
    (void)state;
    struct rc_redis_endpoint ep;
    struct rc_err err = {0};
    assert_int_equal(url("redis://127.0.0.1:6379", &ep, &err), 0);
    assert_string_equal(ep.host, "127.0.0.1");
    assert_int_equal(ep.port, 6379);
    assert_int_equal(ep.db, 0);
    assert_string_equal(ep.password, "");
    assert_int_equal(url("redis://:s3cr:et@redis.example:7000/3", &ep, &err), 0);
    assert_string_equal(ep.host, "redis.example");
    assert_int_equal(ep.port, 7000);
    assert_int_equal(ep.db, 3);
    assert_string_equal(ep.password, "s3cr:et");
    char name[300];
    rc_redis_endpoint_name(&ep, name, sizeof(name));
    assert_string_equal(name, "redis.example:7000/3");
    assert_int_equal(url("redis://[::1]:6380", &ep, &err), 0);
    assert_string_equal(ep.host, "[::1]");
    assert_int_equal(ep.port, 6380);
}

static void expect_bad_url(const char *s, const char *part)
{
    struct rc_redis_endpoint ep;
    struct rc_err err = {0};
    assert_int_equal(url(s, &ep, &err), -EINVAL);
    assert_string_equal(err.code, "bad_value");
    if (!strstr(err.msg, part))
        fail_msg("%s: message \"%s\" lacks \"%s\"", s, err.msg, part);
    assert_null(strstr(err.msg, "hunter2")); /* never echo a password */
}

static void test_url_bad(void **state)
{
    (void)state;
    expect_bad_url("", "redis://[:password@]host:port");
    expect_bad_url("rediss://h:1", "redis://[:password@]host:port");
    expect_bad_url("http://h:1", "redis://[:password@]host:port");
    expect_bad_url("redis://h", "host:port");
    expect_bad_url("redis://h:", "host:port");
    expect_bad_url("redis://:6379", "host:port");
    expect_bad_url("redis://h:0", "host:port");
    expect_bad_url("redis://h:65536", "host:port");
    expect_bad_url("redis://h:12x", "host:port");
    expect_bad_url("redis://h:1/16", "0..15");
    expect_bad_url("redis://h:1/", "0..15");
    expect_bad_url("redis://user:hunter2@h:1", "not a user name");
    expect_bad_url("redis://:@h:1", "password is empty");
    expect_bad_url("redis://h\x01:1", "not allowed");
    char big[400];
    memset(big, 'a', sizeof(big));
    memcpy(big, "redis://", 8);
    memcpy(big + 300, ":1", 3);
    expect_bad_url(big, "host is longer");
}

static void test_jump_hash(void **state)
{
    (void)state;
    enum { KEYS = 20000 };
    unsigned count[5] = {0};
    unsigned moved = 0;
    for (uint64_t k = 0; k < KEYS; k++) {
        uint64_t key = k * 0x9e3779b97f4a7c15ull;
        assert_int_equal(rc_jump_hash(key, 1), 0);
        uint32_t a = rc_jump_hash(key, 4), b = rc_jump_hash(key, 5);
        assert_true(a < 4 && b < 5);
        count[b]++;
        if (a != b) {
            assert_int_equal(b, 4); /* a key that moves goes to the new bucket */
            moved++;
        }
    }
    /* about 1/5 move; every bucket gets about 1/5 */
    assert_in_range(moved, KEYS / 5 - KEYS / 50, KEYS / 5 + KEYS / 50);
    for (int i = 0; i < 5; i++)
        assert_in_range(count[i], KEYS / 5 - KEYS / 50, KEYS / 5 + KEYS / 50);
    assert_int_equal(rc_redis_instance_for("a.b", 3, 1), 0);
    uint32_t i3 = rc_redis_instance_for("project.42.models", 17, 3);
    assert_true(i3 < 3);
    assert_int_equal(rc_redis_instance_for("project.42.models", 17, 3), i3);
}

static void test_key_names(void **state)
{
    (void)state;
    char k[16];
    assert_int_equal(rc_redis_key(k, sizeof(k), 'e', "a.b.c", 5), 10);
    assert_string_equal(k, "rc:e:a.b.c");
    assert_int_equal(rc_redis_key(k, 10, 'e', "a.b.c", 5), -ENOSPC);
    assert_int_equal(rc_redis_key(k, 11, 'h', "a.b.c", 5), 10);
    assert_string_equal(k, "rc:h:a.b.c");
}

static void test_event_parse(void **state)
{
    (void)state;
    struct rc_redis_event ev;
    static const char m[] = "k3x9q1\n42\nmodel.updated\n{\"u\":[\"a\"]}\n{\"x\":1}";
    assert_int_equal(rc_redis_event_parse(m, sizeof(m) - 1, &ev), 0);
    assert_string_equal(ev.epoch, "k3x9q1");
    assert_int_equal(ev.seq, 42);
    assert_int_equal(ev.type.n, 13);
    assert_memory_equal(ev.type.p, "model.updated", 13);
    assert_int_equal(ev.targeting.n, 11);
    assert_int_equal(ev.data.n, 7);
    assert_memory_equal(ev.data.p, "{\"x\":1}", 7);
    static const char m2[] = "e\n1\nmessage\n\nnull";
    assert_int_equal(rc_redis_event_parse(m2, sizeof(m2) - 1, &ev), 0);
    assert_int_equal(ev.targeting.n, 0);
    static const char *const bad[] = {
        "",
        "e",
        "e\n",
        "e\n1",
        "e\n1\nt",
        "e\n1\nt\n",
        "e\n1\nt\n\n",
        "E\n1\nt\n\nx",
        "e\n0\nt\n\nx",
        "e\n-1\nt\n\nx",
        "e\n1\n\n\nx",
        "\n1\nt\n\nx",
        "e\n99999999999999999999\nt\n\nx",
        "eeeeeeeeeeeeeeee\n1\nt\n\nx",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rc_redis_event_parse(bad[i], strlen(bad[i]), &ev) != -EINVAL)
            fail_msg("accepted bad message %zu", i);
    assert_int_equal(rc_redis_entry_seq("0-17", 4), 17);
    assert_int_equal(rc_redis_entry_seq("1-17", 4), 0);
    assert_int_equal(rc_redis_entry_seq("0-", 2), 0);
    assert_int_equal(rc_redis_entry_seq("0-1x", 4), 0);
}

/* ---- the script against a real redis-server ------------------------------------------- */

static struct redis_test_server g_srv;

static redisContext *connect_wait(void)
{
    return rts_connect(&g_srv);
}

static int start_redis(void **state)
{
    (void)state;
    return rts_start(&g_srv, NULL, 1);
}

static int stop_redis(void **state)
{
    (void)state;
    return rts_stop(&g_srv);
}

struct pub_result {
    char epoch[RC_EPOCH_MAX];
    long long seq;
    long long dup;
};

static struct pub_result publish(redisContext *c, const char *topic, const char *maxlen,
                                 const char *data, const char *key)
{
    char m[128], h[128], ch[128];
    rc_redis_key(m, sizeof(m), 't', topic, strlen(topic));
    rc_redis_key(h, sizeof(h), 'h', topic, strlen(topic));
    rc_redis_key(ch, sizeof(ch), 'e', topic, strlen(topic));
    const char *argv[] = {
        "EVAL", rc_redis_publish_script, "2", m, h, ch, maxlen, "message", data, "", key,
        "0",    "1700000000000"};
    redisReply *r = redisCommandArgv(c, 13, argv, NULL);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("script error: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    struct pub_result out = {0};
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    assert_true(r->element[0]->len < sizeof(out.epoch));
    memcpy(out.epoch, r->element[0]->str, r->element[0]->len);
    out.seq = r->element[1]->integer;
    out.dup = r->element[2]->integer;
    freeReplyObject(r);
    return out;
}

static void test_script_sequence_history_publish(void **state)
{
    (void)state;
    redisContext *c = connect_wait(), *sub = connect_wait();
    assert_non_null(c);
    assert_non_null(sub);
    redisReply *r = redisCommand(sub, "SUBSCRIBE rc:e:t.one");
    freeReplyObject(r);
    struct pub_result a = publish(c, "t.one", "3", "{\"n\":1}", "");
    assert_int_equal(a.seq, 1);
    assert_int_equal(a.dup, 0);
    struct rc_err err = {0};
    uint64_t s = 0;
    char e2[RC_EPOCH_MAX];
    char id[RC_EVENT_ID_MAX];
    assert_true(rc_event_id_format(id, a.epoch, 1) > 0); /* a valid epoch */
    assert_int_equal(rc_event_id_parse(id, strlen(id), e2, sizeof(e2), &s, &err), 0);
    for (int i = 2; i <= 5; i++) {
        struct pub_result b = publish(c, "t.one", "3", "{\"n\":2}", "");
        assert_int_equal(b.seq, i);
        assert_string_equal(b.epoch, a.epoch);
    }
    /* the subscriber saw every one, in order, as rc_redis_event */
    for (int i = 1; i <= 5; i++) {
        void *vr = NULL;
        assert_int_equal(redisGetReply(sub, &vr), REDIS_OK);
        r = vr;
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        assert_string_equal(r->element[1]->str, "rc:e:t.one");
        struct rc_redis_event ev;
        assert_int_equal(rc_redis_event_parse(r->element[2]->str, r->element[2]->len, &ev), 0);
        assert_int_equal(ev.seq, i);
        assert_string_equal(ev.epoch, a.epoch);
        assert_int_equal(ev.type.n, 7);
        freeReplyObject(r);
    }
    /* history: MAXLEN 3 keeps seqs 3..5, with entry ids 0-<seq> */
    r = redisCommand(c, "XRANGE rc:h:t.one - +");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(
            rc_redis_entry_seq(r->element[i]->element[0]->str, r->element[i]->element[0]->len),
            3 + i);
    freeReplyObject(r);
    /* maxlen 0: a sequence, no history */
    struct pub_result z = publish(c, "t.none", "0", "1", "");
    assert_int_equal(z.seq, 1);
    r = redisCommand(c, "EXISTS rc:h:t.none");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    redisFree(sub);
    redisFree(c);
}

static void test_script_idempotency_and_lost_epoch(void **state)
{
    (void)state;
    redisContext *c = connect_wait();
    assert_non_null(c);
    struct pub_result a = publish(c, "t.idem", "10", "1", "k1");
    struct pub_result b = publish(c, "t.idem", "10", "2", "k1");
    assert_int_equal(a.dup, 0);
    assert_int_equal(b.dup, 1);
    assert_int_equal(b.seq, a.seq);
    struct pub_result d = publish(c, "t.idem", "10", "3", "k2");
    assert_int_equal(d.seq, a.seq + 1);
    redisReply *r = redisCommand(c, "TTL rc:k:t.idem:k1");
    assert_in_range(r->integer, 1, RC_REDIS_IDEM_TTL_S);
    freeReplyObject(r);
    /* the meta hash is lost (flush, restart without persistence): a new epoch,
     * the stale history is gone, and the old idempotency key no longer counts */
    r = redisCommand(c, "DEL rc:t:t.idem");
    freeReplyObject(r);
    nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL); /* a later microsecond */
    struct pub_result e = publish(c, "t.idem", "10", "4", "k1");
    assert_int_equal(e.seq, 1);
    assert_int_equal(e.dup, 0);
    assert_string_not_equal(e.epoch, a.epoch);
    r = redisCommand(c, "XLEN rc:h:t.idem");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_jump_hash),
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_event_parse),
        cmocka_unit_test(test_script_sequence_history_publish),
        cmocka_unit_test(test_script_idempotency_and_lost_epoch),
    };
    /* the group's setup starts the redis-server the script tests use */
    return cmocka_run_group_tests_name("redis_keys", tests, start_redis, stop_redis);
}
