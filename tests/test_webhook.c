/* test_webhook.c - what a webhook POST carries: the batch body's fields, the
 * words of the types and close reasons, the HMAC-SHA256 signature (checked
 * against Python's hmac for the same input), and the webhook keys' checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../src/webhook/webhook_internal.h"
#include "ringcast/shard.h"

/* conn.c (linked for rc_conn_id_format) names these; no connection runs here */
void rc_shard_arm_timer(struct rc_shard *s, struct rc_conn *c, uint64_t deadline_ms)
{
    (void)s, (void)c, (void)deadline_ms;
}

void rc_shard_conn_closed(struct rc_shard *s, struct rc_conn *c)
{
    (void)s, (void)c;
}

static void test_webhook_sign_matches_reference_hmac(void **state)
{
    (void)state;
    char sig[WH_SIG_LEN + 1];
    const char body[] = "{\"a\":1}";
    assert_int_equal(rc_webhook_sign("key-0123", 8, 1700000000, body, strlen(body), sig), 0);
    /* python3: hmac.new(b'key-0123', b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
    assert_string_equal(sig,
                        "sha256=036ba6a40a3191a584c6c46f080fa12e698e92733cc62f08230e1a513c305389");
    /* another timestamp, another signature */
    char other[WH_SIG_LEN + 1];
    assert_int_equal(rc_webhook_sign("key-0123", 8, 1700000001, body, strlen(body), other), 0);
    assert_string_not_equal(sig, other);
}

static void test_webhook_body_carries_each_events_fields(void **state)
{
    (void)state;
    struct wh_item a = {.seq = 7,
                        .conn_id = 0x0100000002ull,
                        .time_ms = 1700000000123ull,
                        .type = RC_WEBHOOK_SUBSCRIBE};
    snprintf(a.user_id, sizeof(a.user_id), "alice");
    snprintf(a.topic, sizeof(a.topic), "chat.>");
    struct wh_item b = {.seq = 8,
                        .conn_id = 3,
                        .time_ms = 5,
                        .type = RC_WEBHOOK_DISCONNECT,
                        .reason = RC_CLOSE_HEARTBEAT_TIMEOUT};
    a.next = &b;
    char *txt = rc_webhook_body("n1", "n1-abc", 4, &a, 2);
    assert_non_null(txt);
    json_t *j = json_loads(txt, 0, NULL);
    free(txt);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "node")), "n1");
    assert_int_equal(json_integer_value(json_object_get(j, "dropped")), 4);
    json_t *ev = json_object_get(j, "events");
    assert_int_equal(json_array_size(ev), 2);
    json_t *e0 = json_array_get(ev, 0), *e1 = json_array_get(ev, 1);
    assert_string_equal(json_string_value(json_object_get(e0, "id")), "n1-abc-7");
    assert_string_equal(json_string_value(json_object_get(e0, "type")), "subscribe");
    assert_string_equal(json_string_value(json_object_get(e0, "user_id")), "alice");
    assert_string_equal(json_string_value(json_object_get(e0, "topic")), "chat.>");
    assert_string_equal(json_string_value(json_object_get(e0, "connection_id")),
                        "0000000100000002");
    assert_int_equal(json_integer_value(json_object_get(e0, "time")), 1700000000123);
    assert_null(json_object_get(e0, "reason"));
    assert_string_equal(json_string_value(json_object_get(e1, "type")), "disconnect");
    assert_true(json_is_null(json_object_get(e1, "user_id")));
    assert_string_equal(json_string_value(json_object_get(e1, "reason")), "heartbeat_timeout");
    assert_null(json_object_get(e1, "topic"));
    json_decref(j);
    /* n bounds the events taken */
    txt = rc_webhook_body("n1", "p", 0, &a, 1);
    j = json_loads(txt, 0, NULL);
    free(txt);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
    json_decref(j);
}

static void test_webhook_every_reason_and_type_has_a_word(void **state)
{
    (void)state;
    for (int r = 0; r < RC_CLOSE_NREASONS; r++)
        assert_non_null(rc_webhook_reason_name((enum rc_conn_close_reason)r));
    assert_string_equal(rc_webhook_reason_name(RC_CLOSE_CLIENT), "client_close");
    assert_string_equal(rc_webhook_reason_name(RC_CLOSE_SLOW_CONSUMER), "slow_consumer");
    assert_string_equal(rc_webhook_reason_name(RC_CLOSE_DRAIN), "drain");
    assert_string_equal(rc_webhook_reason_name((enum rc_conn_close_reason)200), "server_close");
    for (int t = 0; t < RC_WEBHOOK_NTYPES; t++)
        assert_string_not_equal(rc_webhook_type_name((enum rc_webhook_type)t), "?");
    assert_string_equal(rc_webhook_type_name(RC_WEBHOOK_PRESENCE_JOIN), "presence_join");
}

static void test_webhook_check_refuses_bad_urls(void **state)
{
    (void)state;
    struct rc_config cfg = {0};
    struct rc_err err = {0};
    assert_int_equal(rc_webhook_check(&cfg, &err), 0); /* off */
    snprintf(cfg.webhook_url, sizeof(cfg.webhook_url), "https://backend.example.com/hooks");
    assert_int_equal(rc_webhook_check(&cfg, &err), 0);
    snprintf(cfg.webhook_url, sizeof(cfg.webhook_url), "ftp://backend.example.com/hooks");
    assert_int_equal(rc_webhook_check(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "webhook_url"));
    snprintf(cfg.webhook_url, sizeof(cfg.webhook_url), "http://");
    assert_int_equal(rc_webhook_check(&cfg, &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_webhook_sign_matches_reference_hmac),
        cmocka_unit_test(test_webhook_body_carries_each_events_fields),
        cmocka_unit_test(test_webhook_every_reason_and_type_has_a_word),
        cmocka_unit_test(test_webhook_check_refuses_bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
