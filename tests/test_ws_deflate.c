/* test_ws_deflate.c - unit tests for permessage-deflate (ws_deflate.h): the
 * negotiation of Sec-WebSocket-Extensions offers, the compressed image's
 * shape, and the bounds of inflation (a deflate bomb stops at max). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ringcast/ws_deflate.h"

/* Negotiate over the given field values; the answer, or NULL when declined. */
static const char *nego(struct rc_ws_deflate_agreed *a, size_t n, const char *const *vals)
{
    static char answer[RC_WS_DEFLATE_ANSWER_MAX];
    struct rc_slice s[8];
    for (size_t i = 0; i < n; i++)
        s[i] = rc_slice_make(vals[i], strlen(vals[i]));
    memset(a, 0, sizeof(*a));
    return rc_ws_deflate_negotiate(s, n, a, answer) ? answer : NULL;
}

static const char *nego1(struct rc_ws_deflate_agreed *a, const char *v)
{
    return nego(a, 1, &v);
}

static void test_ws_deflate_accepts_plain_offer(void **state)
{
    (void)state;
    struct rc_ws_deflate_agreed a;
    assert_string_equal(nego1(&a, "permessage-deflate"),
                        "permessage-deflate; server_no_context_takeover");
    assert_false(a.client_no_context_takeover);
    assert_int_equal(a.server_window_bits, 15);
}

static void test_ws_deflate_accepts_browser_offer_with_client_window(void **state)
{
    (void)state;
    struct rc_ws_deflate_agreed a;
    assert_string_equal(nego1(&a, "permessage-deflate; client_max_window_bits"),
                        "permessage-deflate; server_no_context_takeover");
    assert_string_equal(nego1(&a, "permessage-deflate; client_max_window_bits=10"),
                        "permessage-deflate; server_no_context_takeover");
}

static void test_ws_deflate_answers_client_no_context_takeover_and_window(void **state)
{
    (void)state;
    struct rc_ws_deflate_agreed a;
    assert_string_equal(
        nego1(&a, "Permessage-Deflate ; client_no_context_takeover ;server_max_window_bits=\"9\""),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9");
    assert_true(a.client_no_context_takeover);
    assert_int_equal(a.server_window_bits, 9);
    assert_non_null(nego1(&a, "permessage-deflate; server_max_window_bits=8"));
    assert_int_equal(a.server_window_bits, 8);
    assert_non_null(nego1(&a, "permessage-deflate; server_no_context_takeover"));
}

static void test_ws_deflate_declines_bad_params(void **state)
{
    (void)state;
    struct rc_ws_deflate_agreed a;
    static const char *const bad[] = {
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; server_no_context_takeover=true",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=\"9",
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate;",
        "permessage-deflate x",
        "deflate-frame",
        "",
        ",,",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *got = nego1(&a, bad[i]);
        if (got)
            fail_msg("offer \"%s\" was accepted: %s", bad[i], got);
    }
}

static void test_ws_deflate_first_acceptable_offer_wins(void **state)
{
    (void)state;
    struct rc_ws_deflate_agreed a;
    assert_string_equal(nego1(&a, "x-foo, permessage-deflate; bar=1, permessage-deflate; "
                                  "client_no_context_takeover, permessage-deflate"),
                        "permessage-deflate; server_no_context_takeover; "
                        "client_no_context_takeover");
    /* over two field lines: the first line has none acceptable */
    static const char *const two[] = {"permessage-deflate; x=1", "permessage-deflate"};
    assert_string_equal(nego(&a, 2, two), "permessage-deflate; server_no_context_takeover");
    /* a list that breaks stops being read; the next field line still counts */
    static const char *const broken[] = {"permessage-deflate; a=\"b c\", permessage-deflate",
                                         "permessage-deflate; server_max_window_bits=12"};
    assert_string_equal(nego(&a, 2, broken), "permessage-deflate; server_no_context_takeover; "
                                             "server_max_window_bits=12");
}

/* ---- compression and inflation ---------------------------------------------- */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static struct rc_ws_outbuf ob(struct buf *b)
{
    return (struct rc_ws_outbuf){&b->p, &b->len, &b->cap};
}

static void test_ws_deflate_compress_round_trips(void **state)
{
    (void)state;
    char msg[1024];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = "{\"a\":\"ringcast\"}"[i % 16];
    uint8_t *z = NULL;
    size_t zn = 0;
    assert_int_equal(rc_ws_deflate_compress((const uint8_t *)msg, sizeof(msg), 6, &z, &zn), 0);
    assert_true(zn < 200);
    assert_memory_equal(z + zn - 4, "\x00\x00\xff\xff", 4);
    struct rc_ws_inflater *zi = rc_ws_inflater_new();
    assert_non_null(zi);
    struct buf b = {0};
    /* the message without its tail, in two pieces, as a client would frame it */
    assert_int_equal(rc_ws_inflate(zi, z, 5, false, false, ob(&b), 4096), 0);
    assert_int_equal(rc_ws_inflate(zi, z + 5, zn - 9, true, false, ob(&b), 4096), 0);
    assert_int_equal(b.len, sizeof(msg));
    assert_memory_equal(b.p, msg, sizeof(msg));
    free(b.p);
    free(z);
    rc_ws_inflater_free(zi);
}

static void test_ws_deflate_inflate_bomb_stops_at_max(void **state)
{
    (void)state;
    size_t n = 4 << 20;
    uint8_t *zeros = calloc(1, n);
    uint8_t *z = NULL;
    size_t zn = 0;
    assert_non_null(zeros);
    assert_int_equal(rc_ws_deflate_compress(zeros, n, 9, &z, &zn), 0);
    free(zeros);
    struct rc_ws_inflater *zi = rc_ws_inflater_new();
    struct buf b = {0};
    assert_int_equal(rc_ws_inflate(zi, z, zn - 4, true, false, ob(&b), 65536), -E2BIG);
    assert_true(b.cap <= 65537); /* never grew past max + 1 */
    free(b.p);
    free(z);
    rc_ws_inflater_free(zi);
}

static void test_ws_deflate_inflate_exactly_max_is_fine(void **state)
{
    (void)state;
    uint8_t msg[1000];
    memset(msg, 'x', sizeof(msg));
    uint8_t *z = NULL;
    size_t zn = 0;
    assert_int_equal(rc_ws_deflate_compress(msg, sizeof(msg), 6, &z, &zn), 0);
    struct rc_ws_inflater *zi = rc_ws_inflater_new();
    struct buf b = {0};
    assert_int_equal(rc_ws_inflate(zi, z, zn - 4, true, true, ob(&b), 1000), 0);
    assert_int_equal(b.len, 1000);
    b.len = 0; /* reset: the next message inflates from a fresh window */
    assert_int_equal(rc_ws_inflate(zi, z, zn - 4, true, true, ob(&b), 999), -E2BIG);
    free(b.p);
    free(z);
    rc_ws_inflater_free(zi);
}

static void test_ws_deflate_inflate_bad_data_is_ebadmsg(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34};
    struct rc_ws_inflater *zi = rc_ws_inflater_new();
    struct buf b = {0};
    assert_int_equal(rc_ws_inflate(zi, junk, sizeof(junk), true, false, ob(&b), 4096), -EBADMSG);
    free(b.p);
    rc_ws_inflater_free(zi);
}

/* A client keeping its context: one zlib stream, a sync flush per message; the
 * second message refers back into the first. */
static size_t client_stream(uint8_t *out, size_t cap, const char *m, size_t *first)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    for (int i = 0; i < 2; i++) {
        z.next_in = (Bytef *)(uintptr_t)m;
        z.avail_in = (uInt)strlen(m);
        assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
        if (i == 0)
            *first = cap - z.avail_out;
    }
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

static void test_ws_deflate_inflate_keeps_context_between_messages(void **state)
{
    (void)state;
    static const char m[] = "{\"action\":\"publish\",\"topic\":\"news/sport\",\"data\":1}";
    uint8_t z[512];
    size_t first = 0, n = client_stream(z, sizeof(z), m, &first);
    assert_true(n - first < first); /* the second message is mostly a back-reference */
    struct rc_ws_inflater *zi = rc_ws_inflater_new();
    struct buf b = {0};
    assert_int_equal(rc_ws_inflate(zi, z, first - 4, true, false, ob(&b), 4096), 0);
    b.len = 0;
    assert_int_equal(rc_ws_inflate(zi, z + first, n - first - 4, true, false, ob(&b), 4096), 0);
    assert_int_equal(b.len, strlen(m));
    assert_memory_equal(b.p, m, b.len);
    rc_ws_inflater_free(zi);

    /* client_no_context_takeover agreed (reset): the same second message
     * reaches before the start of its window and is refused */
    zi = rc_ws_inflater_new();
    b.len = 0;
    assert_int_equal(rc_ws_inflate(zi, z, first - 4, true, true, ob(&b), 4096), 0);
    b.len = 0;
    assert_int_equal(rc_ws_inflate(zi, z + first, n - first - 4, true, true, ob(&b), 4096),
                     -EBADMSG);
    free(b.p);
    rc_ws_inflater_free(zi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_deflate_accepts_plain_offer),
        cmocka_unit_test(test_ws_deflate_accepts_browser_offer_with_client_window),
        cmocka_unit_test(test_ws_deflate_answers_client_no_context_takeover_and_window),
        cmocka_unit_test(test_ws_deflate_declines_bad_params),
        cmocka_unit_test(test_ws_deflate_first_acceptable_offer_wins),
        cmocka_unit_test(test_ws_deflate_compress_round_trips),
        cmocka_unit_test(test_ws_deflate_inflate_bomb_stops_at_max),
        cmocka_unit_test(test_ws_deflate_inflate_exactly_max_is_fine),
        cmocka_unit_test(test_ws_deflate_inflate_bad_data_is_ebadmsg),
        cmocka_unit_test(test_ws_deflate_inflate_keeps_context_between_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
