/* test_history.c - event ids, the history ring (wrap-around, ttl, since at
 * every position, retain, references) and the resume seam (ordered replay
 * then live, randomized interleavings, overflow, holes, include_initial). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/history.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static uint32_t refs(struct rc_evbuf *ev)
{
    return atomic_load(&ev->refs);
}

static struct rc_evbuf *ev_new(const char *topic)
{
    struct rc_evbuf *ev = rc_evbuf_new(1);
    assert_non_null(ev);
    ev->kind = RC_EVENT_TOPIC;
    if (topic) {
        ev->topic = strdup(topic);
        assert_non_null(ev->topic);
        ev->topic_len = strlen(topic);
    }
    return ev;
}

/* evs[i] is the event with seq i + 1; the test keeps one reference to each. */
static struct rc_evbuf **evs_new(size_t n, const char *topic)
{
    struct rc_evbuf **evs = calloc(n, sizeof(*evs));
    assert_non_null(evs);
    for (size_t i = 0; i < n; i++)
        evs[i] = ev_new(topic);
    return evs;
}

static void evs_free(struct rc_evbuf **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(refs(evs[i]), 1); /* nobody else holds one any more */
        rc_evbuf_unref(evs[i]);
    }
    free(evs);
}

struct seen {
    uint64_t seq[256];
    struct rc_evbuf *ev[256];
    size_t n;
    int stop_after; /* 0 = never */
};

static int collect(void *ctx, uint64_t seq, struct rc_evbuf *ev, uint64_t at_ms)
{
    (void)at_ms;
    struct seen *s = ctx;
    assert_true(s->n < RC_ARRAY_LEN(s->seq));
    s->seq[s->n] = seq;
    s->ev[s->n] = ev;
    s->n++;
    return s->stop_after && (int)s->n >= s->stop_after;
}

static void hist_init(struct rc_history *h, uint32_t size, uint64_t ttl_ms, bool retain)
{
    struct rc_history_cfg cfg = {size, ttl_ms, retain};
    assert_int_equal(rc_history_init(h, &cfg), 0);
}

static void append_range(struct rc_history *h, struct rc_evbuf **evs, uint64_t from, uint64_t to,
                         uint64_t now_ms)
{
    for (uint64_t s = from; s <= to; s++)
        assert_int_equal(rc_history_append(h, s, evs[s - 1], now_ms), 0);
}

/* ---- event ids ------------------------------------------------------------------------------ */

static int parse(const char *s, char *epoch, uint64_t *seq, struct rc_err *err)
{
    return rc_event_id_parse(s, strlen(s), epoch, RC_EPOCH_MAX, seq, err);
}

static void test_event_id_parse_accepts_ids(void **state)
{
    (void)state;
    char epoch[RC_EPOCH_MAX];
    uint64_t seq = 99;
    struct rc_err err = {0};
    assert_int_equal(parse("t3k9x2-42", epoch, &seq, &err), 0);
    assert_string_equal(epoch, "t3k9x2");
    assert_int_equal(seq, 42);
    assert_int_equal(parse("0-0", epoch, &seq, &err), 0);
    assert_string_equal(epoch, "0");
    assert_int_equal(seq, 0);
    assert_int_equal(parse("zzzzzzzzzzzzzzz-18446744073709551615", epoch, &seq, &err), 0);
    assert_string_equal(epoch, "zzzzzzzzzzzzzzz");
    assert_true(seq == UINT64_MAX);
}

static void expect_bad_id(const char *s, const char *msg_start)
{
    char epoch[RC_EPOCH_MAX];
    uint64_t seq = 7;
    struct rc_err err = {0};
    assert_int_equal(parse(s, epoch, &seq, &err), -EINVAL);
    assert_int_equal(seq, 7);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "bad_event_id");
    assert_memory_equal(err.msg, msg_start, strlen(msg_start));
    assert_non_null(strstr(err.msg, "use the id of an event you received"));
}

static void test_event_id_parse_rejects_malformed(void **state)
{
    (void)state;
    expect_bad_id("", "event id is empty");
    expect_bad_id("abc", "event id does not start with a base-36 epoch and '-'");
    expect_bad_id("-5", "event id does not start with a base-36 epoch and '-'");
    expect_bad_id("ABC-5", "event id does not start with a base-36 epoch and '-'");
    expect_bad_id("abc_5", "event id does not start with a base-36 epoch and '-'");
    expect_bad_id("abc-", "event id has no sequence number after '-'");
    expect_bad_id("abc-b1-5", "event id is a broadcast's, which cannot be resumed from");
    expect_bad_id("abc-05", "event id sequence number has a leading zero");
    expect_bad_id("abc-5x", "event id sequence number is not decimal digits");
    expect_bad_id("abc-5-6", "event id sequence number is not decimal digits");
    expect_bad_id("abc- 5", "event id sequence number is not decimal digits");
    expect_bad_id("abc-18446744073709551616", "event id sequence number is too large");
    expect_bad_id("abc-123456789012345678901", "event id sequence number is too large");
    expect_bad_id("0123456789abcdef-1", "event id epoch has more than 15 digits");
    expect_bad_id("a-1234567890123456789012345678901234567890123456",
                  "event id is longer than 47 bytes");
}

static void test_event_id_parse_every_prefix(void **state)
{
    (void)state;
    const char *id = "t3k9x2-4217";
    for (size_t n = 0; n <= strlen(id); n++) {
        char epoch[RC_EPOCH_MAX];
        uint64_t seq = 0;
        struct rc_err err = {0};
        int rc = rc_event_id_parse(id, n, epoch, sizeof(epoch), &seq, &err);
        if (n <= 7) {
            assert_int_equal(rc, -EINVAL); /* no epoch-dash-digit yet */
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(epoch, "t3k9x2");
        const uint64_t want[] = {4, 42, 421, 4217};
        assert_int_equal(seq, want[n - 8]);
    }
}

static void test_event_id_parse_respects_epoch_cap(void **state)
{
    (void)state;
    char epoch[4];
    uint64_t seq = 0;
    struct rc_err err = {0};
    assert_int_equal(rc_event_id_parse("abc-1", 5, epoch, sizeof(epoch), &seq, &err), 0);
    assert_string_equal(epoch, "abc");
    assert_int_equal(rc_event_id_parse("abcd-1", 6, epoch, sizeof(epoch), &seq, &err), -EINVAL);
    assert_memory_equal(err.msg, "event id epoch does not fit", 27);
}

static void test_event_id_format_round_trips(void **state)
{
    (void)state;
    char id[RC_EVENT_ID_MAX];
    assert_int_equal(rc_event_id_format(id, "t3k9x2", 42), 9);
    assert_string_equal(id, "t3k9x2-42");
    char epoch[RC_EPOCH_MAX];
    uint64_t seq = 0;
    assert_int_equal(parse(id, epoch, &seq, NULL), 0);
    assert_string_equal(epoch, "t3k9x2");
    assert_int_equal(seq, 42);
    assert_int_equal(rc_event_id_format(id, "zzzzzzzzzzzzzzz", UINT64_MAX), 36);
    assert_string_equal(id, "zzzzzzzzzzzzzzz-18446744073709551615");
    assert_int_equal(rc_event_id_format(id, "", 1), -EINVAL);
    assert_int_equal(rc_event_id_format(id, "T3", 1), -EINVAL);
    assert_int_equal(rc_event_id_format(id, "0123456789abcdef", 1), -EINVAL);
}

static void test_stream_id_round_trips_known_positions_only(void **state)
{
    (void)state;
    struct rc_stream_pos pos[4] = {{"kx1-3"}, {""}, {"kx2-0"}, {"zz9-18446744073709551615"}};
    char out[RC_STREAM_ID_MAX];
    ssize_t n = rc_stream_id_format(out, sizeof(out), pos, 4);
    assert_string_equal(out, "0:kx1-3,2:kx2-0,3:zz9-18446744073709551615");
    assert_int_equal(n, (ssize_t)strlen(out));
    struct rc_stream_pos back[4] = {{""}, {"keep-1"}, {""}, {""}};
    struct rc_err err = {0};
    assert_int_equal(rc_stream_id_parse(out, (size_t)n, back, 4, &err), 0);
    assert_string_equal(back[0].id, "kx1-3");
    assert_string_equal(back[1].id, "keep-1"); /* not listed: left alone */
    assert_string_equal(back[2].id, "kx2-0");
    assert_string_equal(back[3].id, "zz9-18446744073709551615");
    struct rc_stream_pos none[2] = {{""}, {""}};
    assert_int_equal(rc_stream_id_format(out, sizeof(out), none, 2), 0);
    assert_string_equal(out, "");
    assert_int_equal(rc_stream_id_format(out, 5, pos, 4), -ENOSPC);
}

static void test_stream_id_of_every_topic_fits_the_bound(void **state)
{
    (void)state;
    struct rc_stream_pos pos[RC_STREAM_TOPICS_MAX];
    for (size_t i = 0; i < RC_STREAM_TOPICS_MAX; i++) {
        memset(pos[i].id, 'z', 15);
        snprintf(pos[i].id + 15, sizeof(pos[i].id) - 15, "-%llu", (unsigned long long)UINT64_MAX);
    }
    char out[RC_STREAM_ID_MAX];
    ssize_t n = rc_stream_id_format(out, sizeof(out), pos, RC_STREAM_TOPICS_MAX);
    assert_true(n > 0 && n < RC_STREAM_ID_MAX);
    struct rc_stream_pos back[RC_STREAM_TOPICS_MAX];
    memset(back, 0, sizeof(back));
    struct rc_err err = {0};
    assert_int_equal(rc_stream_id_parse(out, (size_t)n, back, RC_STREAM_TOPICS_MAX, &err), 0);
    for (size_t i = 0; i < RC_STREAM_TOPICS_MAX; i++)
        assert_string_equal(back[i].id, pos[i].id);
}

static void test_stream_id_parse_rejects_garbage_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *id;
        const char *why;
    } bad[] = {
        {"", "is empty"},
        {"garbage", "does not start with a topic index"},
        {"0:kx1-3,", "does not start with a topic index"},
        {":kx1-3", "does not start with a topic index"},
        {"0kx1-3", "does not start with a topic index"},
        {"2:kx1-3", "names a topic index this stream does not have"},
        {"1000:kx1-3", "does not start with a topic index"},
        {"0:kx1-3,0:kx1-4", "repeats a topic index"},
        {"0:kx1", "has no valid event id"},
        {"0:kx1-b0-1", "has no valid event id"},
        {"0:KX1-3", "has no valid event id"},
        {"kx1-3", "does not start with a topic index"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        struct rc_stream_pos pos[2] = {{""}, {""}};
        struct rc_err err = {0};
        assert_int_equal(rc_stream_id_parse(bad[i].id, strlen(bad[i].id), pos, 2, &err), -EINVAL);
        assert_string_equal(err.code, "bad_event_id");
        if (!strstr(err.msg, bad[i].why))
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].id, err.msg, bad[i].why);
    }
    char big[RC_STREAM_ID_MAX + 10];
    memset(big, '1', sizeof(big));
    struct rc_stream_pos pos[2] = {{""}, {""}};
    struct rc_err err = {0};
    assert_int_equal(rc_stream_id_parse(big, sizeof(big), pos, 2, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "longer than"));
}

static void test_stream_id_parse_every_prefix(void **state)
{
    (void)state;
    const char *id = "0:kx1-3,1:kx2-44";
    for (size_t n = 0; n <= strlen(id); n++) {
        struct rc_stream_pos pos[2] = {{""}, {""}};
        struct rc_err err = {0};
        int rc = rc_stream_id_parse(id, n, pos, 2, &err);
        /* complete: "0:kx1-3" (7 bytes), then the second entry once it has a seq digit */
        bool ok = n == 7 || n >= 15;
        assert_int_equal(rc, ok ? 0 : -EINVAL);
    }
}

static void test_event_cursor_tells_other_runs_apart(void **state)
{
    (void)state;
    uint64_t after = 5;
    struct rc_err err = {0};
    assert_int_equal(rc_event_cursor("t3k9x2-42", 9, "t3k9x2", &after, &err), 0);
    assert_int_equal(after, 42);
    after = 5;
    assert_int_equal(rc_event_cursor("t3k9x1-42", 9, "t3k9x2", &after, &err), -ESTALE);
    assert_int_equal(after, 5);
    assert_int_equal(rc_event_cursor("t3k9x2", 6, "t3k9x2", &after, &err), -EINVAL);
    assert_string_equal(err.code, "bad_event_id");
}

/* ---- history ring -----------------------------------------------------------------------------
 */

static void test_history_ring_wraps_around(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(10, "t");
    hist_init(&h, 4, 0, false);
    append_range(&h, evs, 1, 10, 1000);
    assert_int_equal(rc_history_seq(&h), 10);
    assert_int_equal(rc_history_len(&h), 4);
    for (int i = 0; i < 6; i++)
        assert_int_equal(refs(evs[i]), 1); /* pushed out: released */
    for (int i = 6; i < 10; i++)
        assert_int_equal(refs(evs[i]), 2);
    struct seen s = {0};
    uint64_t cur = 0;
    assert_int_equal(rc_history_since(&h, 6, 1000, collect, &s, &cur), RC_HISTORY_OK);
    assert_int_equal(cur, 10);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s.seq[i], 7 + i);
        assert_ptr_equal(s.ev[i], evs[6 + i]);
    }
    rc_history_fini(&h);
    evs_free(evs, 10);
}

/* Cursor positions around a ring holding 7..10 (oldest 7). */
static void test_history_since_at_every_position(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(10, "t");
    hist_init(&h, 4, 0, false);
    append_range(&h, evs, 1, 10, 1000);
    for (uint64_t after = 0; after <= 12; after++) {
        struct seen s = {0};
        uint64_t cur = 0;
        enum rc_history_result res = rc_history_since(&h, after, 1000, collect, &s, &cur);
        assert_int_equal(cur, 10);
        if (after < 6) { /* older than oldest - 1 */
            assert_int_equal(res, RC_HISTORY_GAP);
            assert_int_equal(s.n, 0);
        } else if (after > 10) {
            assert_int_equal(res, RC_HISTORY_FUTURE);
            assert_int_equal(s.n, 0);
        } else { /* oldest-1 (6), oldest (7), middle, newest (10) */
            assert_int_equal(res, RC_HISTORY_OK);
            assert_int_equal(s.n, 10 - after);
            for (size_t i = 0; i < s.n; i++)
                assert_int_equal(s.seq[i], after + 1 + i);
        }
    }
    rc_history_fini(&h);
    evs_free(evs, 10);
}

static void test_history_since_before_wrap_serves_everything(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(3, "t");
    hist_init(&h, 8, 0, false);
    struct seen s = {0};
    assert_int_equal(rc_history_since(&h, 0, 0, collect, &s, NULL), RC_HISTORY_OK);
    assert_int_equal(rc_history_since(&h, 1, 0, collect, &s, NULL), RC_HISTORY_FUTURE);
    append_range(&h, evs, 1, 3, 0);
    assert_int_equal(rc_history_since(&h, 0, 0, collect, &s, NULL), RC_HISTORY_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.seq[0], 1);
    assert_int_equal(s.seq[2], 3);
    rc_history_fini(&h);
    evs_free(evs, 3);
}

static void test_history_callback_can_stop(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(5, "t");
    hist_init(&h, 8, 0, false);
    append_range(&h, evs, 1, 5, 0);
    struct seen s = {.stop_after = 2};
    assert_int_equal(rc_history_since(&h, 1, 0, collect, &s, NULL), RC_HISTORY_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.seq[1], 3);
    rc_history_fini(&h);
    evs_free(evs, 5);
}

static void test_history_ttl_trims_old_events(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(6, "t");
    hist_init(&h, 8, 100, false);
    for (uint64_t s = 1; s <= 6; s++) /* published at 10, 20, ..., 60 */
        assert_int_equal(rc_history_append(&h, s, evs[s - 1], s * 10), 0);
    assert_int_equal(rc_history_trim(&h, 110), 0); /* age of seq 1 is exactly ttl: kept */
    assert_int_equal(rc_history_trim(&h, 131), 3); /* 10, 20, 30 are older than 100 ms */
    assert_int_equal(rc_history_len(&h), 3);
    assert_int_equal(refs(evs[2]), 1);
    assert_int_equal(refs(evs[3]), 2);
    struct seen s = {0};
    assert_int_equal(rc_history_since(&h, 2, 131, collect, &s, NULL), RC_HISTORY_GAP);
    assert_int_equal(rc_history_since(&h, 3, 131, collect, &s, NULL), RC_HISTORY_OK);
    assert_int_equal(s.n, 3);
    /* since trims too: at 1000 everything expired, only the current seq is servable */
    s.n = 0;
    assert_int_equal(rc_history_since(&h, 5, 1000, collect, &s, NULL), RC_HISTORY_GAP);
    assert_int_equal(rc_history_since(&h, 6, 1000, collect, &s, NULL), RC_HISTORY_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(rc_history_len(&h), 0);
    assert_int_equal(refs(evs[5]), 1);
    /* a clock that went back never expires anything */
    struct rc_evbuf *ev7 = ev_new("t");
    assert_int_equal(rc_history_append(&h, 7, ev7, 5000), 0);
    assert_int_equal(rc_history_trim(&h, 10), 0);
    rc_history_fini(&h);
    assert_int_equal(refs(ev7), 1);
    rc_evbuf_unref(ev7);
    evs_free(evs, 6);
}

static void test_history_size_zero_keeps_only_the_seq(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(3, "t");
    hist_init(&h, 0, 0, false);
    append_range(&h, evs, 1, 3, 0);
    assert_int_equal(refs(evs[2]), 1);
    assert_null(rc_history_latest(&h, NULL));
    struct seen s = {0};
    uint64_t cur = 0;
    assert_int_equal(rc_history_since(&h, 3, 0, collect, &s, &cur), RC_HISTORY_OK);
    assert_int_equal(cur, 3);
    assert_int_equal(rc_history_since(&h, 2, 0, collect, &s, &cur), RC_HISTORY_GAP);
    assert_int_equal(rc_history_since(&h, 4, 0, collect, &s, &cur), RC_HISTORY_FUTURE);
    assert_int_equal(s.n, 0);
    rc_history_fini(&h);
    evs_free(evs, 3);
}

static void test_history_retain_keeps_latest_beyond_size_and_ttl(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(3, "t");
    hist_init(&h, 0, 10, true);
    uint64_t seq = 99;
    assert_null(rc_history_latest(&h, &seq));
    assert_int_equal(seq, 0);
    assert_int_equal(rc_history_append(&h, 1, evs[0], 0), 0);
    assert_int_equal(refs(evs[0]), 2);
    assert_int_equal(rc_history_append(&h, 2, evs[1], 5), 0);
    assert_int_equal(refs(evs[0]), 1); /* replaced: released */
    assert_int_equal(refs(evs[1]), 2);
    rc_history_trim(&h, 100000);
    assert_ptr_equal(rc_history_latest(&h, &seq), evs[1]);
    assert_int_equal(seq, 2);
    rc_history_fini(&h);
    assert_int_equal(refs(evs[1]), 1);
    evs_free(evs, 3);
}

static void test_history_retain_with_ring_holds_two_refs(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(3, "t");
    hist_init(&h, 2, 0, true);
    append_range(&h, evs, 1, 3, 0);
    assert_int_equal(refs(evs[0]), 1);
    assert_int_equal(refs(evs[1]), 2);
    assert_int_equal(refs(evs[2]), 3); /* ring + latest + test */
    rc_history_fini(&h);
    evs_free(evs, 3);
}

static void test_history_append_requires_the_next_seq(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(3, "t");
    hist_init(&h, 4, 0, true);
    assert_int_equal(rc_history_append(&h, 2, evs[1], 0), -EINVAL);
    assert_int_equal(rc_history_append(&h, 1, evs[0], 0), 0);
    assert_int_equal(rc_history_append(&h, 1, evs[0], 0), -EINVAL);
    assert_int_equal(rc_history_append(&h, 3, evs[2], 0), -EINVAL);
    assert_int_equal(rc_history_append(&h, 2, NULL, 0), -EINVAL);
    assert_int_equal(refs(evs[1]), 1);
    assert_int_equal(refs(evs[2]), 1);
    assert_int_equal(rc_history_seq(&h), 1);
    rc_history_fini(&h);
    evs_free(evs, 3);
}

static void test_history_items_since_takes_references(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_evbuf **evs = evs_new(6, "t");
    hist_init(&h, 4, 0, false);
    append_range(&h, evs, 1, 6, 0);
    assert_int_equal(rc_history_floor(&h), 2);
    struct rc_resume_item it[4];
    size_t n = 99;
    uint64_t cur = 0;
    assert_int_equal(rc_history_items_since(&h, 3, 0, it, 4, &n, &cur), RC_HISTORY_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cur, 6);
    assert_int_equal(it[0].seq, 4);
    assert_ptr_equal(it[2].ev, evs[5]);
    assert_int_equal(refs(evs[3]), 3); /* test + ring + answer */
    rc_history_fini(&h);
    assert_int_equal(refs(evs[3]), 2);
    rc_resume_items_release(it, n);
    assert_null(it[0].ev);
    /* a short array gets the oldest; the gap answer gets nothing */
    hist_init(&h, 4, 0, false);
    append_range(&h, evs, 1, 6, 0);
    assert_int_equal(rc_history_items_since(&h, 2, 0, it, 2, &n, &cur), RC_HISTORY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(it[1].seq, 4);
    rc_resume_items_release(it, n);
    assert_int_equal(rc_history_items_since(&h, 1, 0, it, 4, &n, &cur), RC_HISTORY_GAP);
    assert_int_equal(n, 0);
    rc_history_fini(&h);
    evs_free(evs, 6);
}

static void test_history_init_refuses_oversized_ring(void **state)
{
    (void)state;
    struct rc_history h;
    struct rc_history_cfg cfg = {RC_HISTORY_SIZE_MAX + 1, 0, false};
    assert_int_equal(rc_history_init(&h, &cfg), -EINVAL);
}

/* ---- resume seam ------------------------------------------------------------------------------
 */

struct outlog {
    struct rc_resume_out o[1024];
    size_t n;
};

static void record(void *ctx, const struct rc_resume_out *o)
{
    struct outlog *l = ctx;
    assert_true(l->n < RC_ARRAY_LEN(l->o));
    l->o[l->n++] = *o;
}

static void resume_init(struct rc_resume *r, enum rc_resume_mode mode, enum rc_resume_seqs seqs,
                        uint64_t after, uint32_t answers, uint32_t cap, struct outlog *l)
{
    struct rc_resume_cfg cfg = {mode, seqs, after, answers, cap, 0};
    assert_int_equal(rc_resume_init(r, &cfg, record, l), 0);
}

static void expect_out(const struct outlog *l, size_t i, enum rc_resume_out_kind kind, uint64_t seq)
{
    assert_true(i < l->n);
    assert_int_equal(l->o[i].kind, kind);
    assert_int_equal(l->o[i].seq, seq);
}

/* The owner's answer of the randomized cases: (after, S] with references. */
struct items {
    struct rc_resume_item v[256];
    size_t n;
};

static void test_resume_replays_then_buffered_live_without_dups(void **state)
{
    (void)state;
    struct rc_evbuf **evs = evs_new(8, "t");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 2, 1, 0, &l);
    /* live 5, 6 arrive before the answer (S = 5), then 7 after */
    assert_int_equal(rc_resume_live(&r, 5, evs[4]), 0);
    assert_int_equal(rc_resume_live(&r, 6, evs[5]), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(refs(evs[4]), 2);
    struct rc_resume_item it[] = {{3, evs[2]}, {4, evs[3]}, {5, evs[4]}};
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_OK, it, 3, 5), 0);
    assert_false(rc_resume_is_waiting(&r));
    assert_int_equal(rc_resume_live(&r, 7, evs[6]), 0);
    assert_int_equal(l.n, 6);
    expect_out(&l, 0, RC_RESUME_OUT_REPLAY, 3);
    expect_out(&l, 1, RC_RESUME_OUT_REPLAY, 4);
    expect_out(&l, 2, RC_RESUME_OUT_REPLAY, 5);
    expect_out(&l, 3, RC_RESUME_OUT_LIVE, 6);
    expect_out(&l, 4, RC_RESUME_OUT_CAUGHT_UP, 5);
    expect_out(&l, 5, RC_RESUME_OUT_LIVE, 7);
    assert_ptr_equal(l.o[3].ev, evs[5]);
    assert_int_equal(r.dups, 1);
    /* buffered references were released at the switch */
    assert_int_equal(refs(evs[4]), 1);
    assert_int_equal(refs(evs[5]), 1);
    rc_resume_fini(&r);
    evs_free(evs, 8);
}

static void test_resume_drops_late_duplicates_while_passing(void **state)
{
    (void)state;
    struct rc_evbuf **evs = evs_new(4, "t");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 1, 1, 0, &l);
    struct rc_resume_item it[] = {{2, evs[1]}, {3, evs[2]}};
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_OK, it, 2, 3), 0);
    assert_int_equal(rc_resume_live(&r, 3, evs[2]), 0); /* came after the answer */
    assert_int_equal(rc_resume_live(&r, 4, evs[3]), 0);
    assert_int_equal(l.n, 4);
    expect_out(&l, 2, RC_RESUME_OUT_CAUGHT_UP, 3);
    expect_out(&l, 3, RC_RESUME_OUT_LIVE, 4);
    assert_int_equal(r.dups, 1);
    rc_resume_fini(&r);
    evs_free(evs, 4);
}

static void test_resume_overflow_gives_a_gap_then_live(void **state)
{
    (void)state;
    struct rc_evbuf **evs = evs_new(40, "t");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 0, 1, 32, &l);
    for (uint64_t s = 1; s <= 32; s++)
        assert_int_equal(rc_resume_live(&r, s, evs[s - 1]), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(rc_resume_live(&r, 33, evs[32]), -ENOBUFS);
    assert_int_equal(refs(evs[0]), 1); /* the buffer was released */
    assert_int_equal(rc_resume_live(&r, 34, evs[33]), 0);
    assert_int_equal(l.n, 4);
    expect_out(&l, 0, RC_RESUME_OUT_GAP, 0);
    assert_int_equal(l.o[0].reason, RC_RESUME_GAP_OVERFLOW);
    expect_out(&l, 1, RC_RESUME_OUT_CAUGHT_UP, 0);
    expect_out(&l, 2, RC_RESUME_OUT_LIVE, 33);
    expect_out(&l, 3, RC_RESUME_OUT_LIVE, 34);
    /* the answer that still comes is ignored */
    struct rc_resume_item it[] = {{1, evs[0]}};
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_OK, it, 1, 32), -EALREADY);
    assert_int_equal(l.n, 4);
    rc_resume_fini(&r);
    evs_free(evs, 40);
}

static void test_resume_history_gap_is_reported_then_live(void **state)
{
    (void)state;
    struct rc_evbuf **evs = evs_new(12, "t");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 3, 1, 0, &l);
    assert_int_equal(rc_resume_live(&r, 10, evs[9]), 0);
    assert_int_equal(rc_resume_live(&r, 11, evs[10]), 0);
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_GAP, NULL, 0, 10), 0);
    assert_int_equal(l.n, 3);
    expect_out(&l, 0, RC_RESUME_OUT_GAP, 3);
    assert_int_equal(l.o[0].reason, RC_RESUME_GAP_TOO_OLD);
    expect_out(&l, 1, RC_RESUME_OUT_LIVE, 11);
    expect_out(&l, 2, RC_RESUME_OUT_CAUGHT_UP, 10);
    rc_resume_fini(&r);
    evs_free(evs, 12);
}

static void test_resume_future_cursor_is_reported(void **state)
{
    (void)state;
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 50, 1, 0, &l);
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_FUTURE, NULL, 0, 7), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.o[0].kind, RC_RESUME_OUT_GAP);
    assert_int_equal(l.o[0].reason, RC_RESUME_GAP_FUTURE);
    expect_out(&l, 1, RC_RESUME_OUT_CAUGHT_UP, 7);
    struct rc_evbuf *ev = ev_new("t");
    assert_int_equal(rc_resume_live(&r, 8, ev), 0); /* live continues from S */
    expect_out(&l, 2, RC_RESUME_OUT_LIVE, 8);
    rc_resume_fini(&r);
    rc_evbuf_unref(ev);
}

static void test_resume_detects_a_hole_after_the_replay(void **state)
{
    (void)state;
    struct rc_evbuf **evs = evs_new(8, "t");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 2, 1, 0, &l);
    assert_int_equal(rc_resume_live(&r, 6, evs[5]), 0); /* 5 never came */
    struct rc_resume_item it[] = {{3, evs[2]}, {4, evs[3]}};
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_OK, it, 2, 4), 0);
    assert_int_equal(l.n, 5);
    expect_out(&l, 0, RC_RESUME_OUT_REPLAY, 3);
    expect_out(&l, 1, RC_RESUME_OUT_REPLAY, 4);
    expect_out(&l, 2, RC_RESUME_OUT_GAP, 4);
    assert_int_equal(l.o[2].reason, RC_RESUME_GAP_HOLE);
    expect_out(&l, 3, RC_RESUME_OUT_LIVE, 6);
    rc_resume_fini(&r);
    evs_free(evs, 8);
}

static void test_resume_detects_a_short_replay(void **state)
{
    (void)state;
    struct rc_evbuf **evs = evs_new(8, "t");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 2, 1, 0, &l);
    struct rc_resume_item it[] = {{4, evs[3]}}; /* 3 missing, and S = 5 but 5 missing */
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_OK, it, 1, 5), 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.o[0].kind, RC_RESUME_OUT_GAP);
    expect_out(&l, 1, RC_RESUME_OUT_REPLAY, 4);
    assert_int_equal(l.o[2].kind, RC_RESUME_OUT_GAP);
    expect_out(&l, 3, RC_RESUME_OUT_CAUGHT_UP, 5);
    rc_resume_fini(&r);
    evs_free(evs, 8);
}

static void test_resume_subset_mode_allows_holes(void **state)
{
    (void)state;
    struct rc_evbuf **evs = evs_new(9, "t");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_SINCE, RC_RESUME_SUBSET, 2, 1, 0, &l);
    assert_int_equal(rc_resume_live(&r, 7, evs[6]), 0);
    struct rc_resume_item it[] = {{3, evs[2]}, {4, evs[3]}};
    assert_int_equal(rc_resume_answer(&r, RC_HISTORY_OK, it, 2, 4), 0);
    assert_int_equal(rc_resume_live(&r, 9, evs[8]), 0);
    assert_int_equal(l.n, 5);
    expect_out(&l, 2, RC_RESUME_OUT_LIVE, 7);
    expect_out(&l, 3, RC_RESUME_OUT_CAUGHT_UP, 4);
    expect_out(&l, 4, RC_RESUME_OUT_LIVE, 9);
    rc_resume_fini(&r);
    evs_free(evs, 9);
}

static void test_resume_init_validates(void **state)
{
    (void)state;
    struct rc_resume r;
    struct outlog l = {0};
    struct rc_resume_cfg cfg = {RC_RESUME_SINCE, RC_RESUME_EVERY_SEQ, 0, 0, 0, 0};
    assert_int_equal(rc_resume_init(&r, &cfg, record, &l), -EINVAL); /* answers 0 */
    cfg.answers = 2;
    assert_int_equal(rc_resume_init(&r, &cfg, record, &l), -EINVAL); /* since: one owner */
    cfg.answers = 1;
    cfg.buffer_max = RC_RESUME_BUFFER_MAX + 1;
    assert_int_equal(rc_resume_init(&r, &cfg, record, &l), -EINVAL);
    cfg.buffer_max = 0;
    assert_int_equal(rc_resume_init(&r, &cfg, NULL, &l), -EINVAL);
    assert_int_equal(rc_resume_init(&r, &cfg, record, &l), 0);
    assert_int_equal(r.buffer_max, RC_RESUME_BUFFER_DEFAULT);
    rc_resume_fini(&r);
}

/* ---- randomized seam: owner history + live stream + an answer at any point ------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n) /* xorshift64*, uniform enough for 0..n-1 */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

/* SUBSET mode: the subscription's filter lets these seqs through. */
static bool passes(uint64_t seq)
{
    return seq % 3 != 0;
}

/* Emit callback of the randomized cases: filters replays like the broker would. */
struct sink {
    uint64_t seq[256];
    size_t n;
    size_t gaps, caught_up;
    enum rc_resume_gap reason;
    bool filtered;
};

static void sink_emit(void *ctx, const struct rc_resume_out *o)
{
    struct sink *k = ctx;
    switch (o->kind) {
    case RC_RESUME_OUT_REPLAY:
    case RC_RESUME_OUT_LIVE:
    case RC_RESUME_OUT_INITIAL:
        if (o->kind == RC_RESUME_OUT_REPLAY && k->filtered && !passes(o->seq))
            return;
        assert_true(k->n < RC_ARRAY_LEN(k->seq));
        /* nothing but live events after CAUGHT_UP */
        assert_true(k->caught_up == 0 || o->kind == RC_RESUME_OUT_LIVE);
        k->seq[k->n++] = o->seq;
        break;
    case RC_RESUME_OUT_GAP:
        k->gaps++;
        k->reason = o->reason;
        break;
    case RC_RESUME_OUT_CAUGHT_UP:
        k->caught_up++;
        break;
    }
}

/* One case: N events; the subscription is registered after seq R (live gets
 * R+1..N, filtered in SUBSET mode); the owner answers when its seq is S with
 * its history of H events; the answer reaches the seam after `at` live events.
 * The cursor X is anywhere in 0..S. Checks the output against the model. */
static void run_case(uint32_t cap, enum rc_resume_seqs seqs)
{
    uint32_t n = 1 + rnd(60), H = rnd(20), R = rnd(n + 1);
    uint32_t S = R + rnd(n - R + 1), X = rnd(S + 1);
    struct rc_evbuf **evs = evs_new(n, "t");
    struct rc_history h;
    hist_init(&h, H, 0, false);
    append_range(&h, evs, 1, S, 0);
    struct items it = {0};
    uint64_t cur = 0;
    enum rc_history_result res =
        rc_history_items_since(&h, X, 0, it.v, RC_ARRAY_LEN(it.v), &it.n, &cur);
    assert_int_equal(cur, S);
    append_range(&h, evs, S + 1, n, 0);

    /* the live stream the seam sees */
    uint64_t live[64];
    size_t nlive = 0;
    for (uint64_t s = R + 1; s <= n; s++)
        if (seqs == RC_RESUME_EVERY_SEQ || passes(s))
            live[nlive++] = s;
    size_t at = rnd((uint32_t)nlive + 1);

    struct sink k = {.filtered = seqs == RC_RESUME_SUBSET};
    struct rc_resume r;
    struct rc_resume_cfg cfg = {RC_RESUME_SINCE, seqs, X, 1, cap, 0};
    assert_int_equal(rc_resume_init(&r, &cfg, sink_emit, &k), 0);
    size_t overflow_at = SIZE_MAX;
    for (size_t i = 0; i <= nlive; i++) {
        if (i == at) {
            int rc = rc_resume_answer(&r, res, it.v, it.n, cur);
            assert_int_equal(rc, overflow_at == SIZE_MAX ? 0 : -EALREADY);
        }
        if (i == nlive)
            break;
        int rc = rc_resume_live(&r, live[i], evs[live[i] - 1]);
        if (rc == -ENOBUFS)
            overflow_at = i;
        else
            assert_int_equal(rc, 0);
    }
    rc_resume_items_release(it.v, it.n);
    rc_resume_fini(&r);
    rc_history_fini(&h);
    assert_int_equal(k.caught_up, 1);

    /* the model */
    uint64_t want[64];
    size_t nwant = 0;
    if (at > cap) {
        /* more than cap live events before the answer: gap, then live from the overflow */
        assert_int_equal(overflow_at, cap);
        assert_int_equal(k.gaps, 1);
        assert_int_equal(k.reason, RC_RESUME_GAP_OVERFLOW);
        for (size_t i = overflow_at; i < nlive; i++)
            want[nwant++] = live[i];
    } else if (res != RC_HISTORY_OK) {
        /* older than the history: gap, then everything after S */
        assert_int_equal(res, RC_HISTORY_GAP);
        assert_true(X + H < S);
        assert_int_equal(k.gaps, 1);
        assert_int_equal(k.reason, RC_RESUME_GAP_TOO_OLD);
        for (uint64_t s = S + 1; s <= n; s++)
            if (seqs == RC_RESUME_EVERY_SEQ || passes(s))
                want[nwant++] = s;
    } else {
        /* exactly X+1..n, in order, no duplicate, no gap */
        assert_true(X + H >= S);
        assert_int_equal(k.gaps, 0);
        for (uint64_t s = X + 1; s <= n; s++)
            if (seqs == RC_RESUME_EVERY_SEQ || passes(s))
                want[nwant++] = s;
    }
    assert_int_equal(k.n, nwant);
    for (size_t i = 0; i < nwant; i++)
        assert_int_equal(k.seq[i], want[i]);
    evs_free(evs, n);
}

static void test_resume_random_interleavings_are_exact(void **state)
{
    (void)state;
    rng_state = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 5000; i++)
        run_case(RC_RESUME_BUFFER_DEFAULT, RC_RESUME_EVERY_SEQ);
}

static void test_resume_random_interleavings_with_filter(void **state)
{
    (void)state;
    rng_state = 0x1234567887654321ULL;
    for (int i = 0; i < 5000; i++)
        run_case(RC_RESUME_BUFFER_DEFAULT, RC_RESUME_SUBSET);
}

static void test_resume_random_interleavings_small_buffer(void **state)
{
    (void)state;
    rng_state = 0x0badc0ffee0ddf00ULL;
    for (int i = 0; i < 5000; i++)
        run_case(8, RC_RESUME_EVERY_SEQ);
}

/* ---- include_initial --------------------------------------------------------------------------
 */

static void test_resume_initial_dedups_per_topic(void **state)
{
    (void)state;
    /* topics a (retained, S=5, owner 1), b (retained, S=3, owner 2), c (not retained) */
    struct rc_evbuf *a4 = ev_new("a"), *a5 = ev_new("a"), *a6 = ev_new("a");
    struct rc_evbuf *b3 = ev_new("b"), *b4 = ev_new("b"), *c9 = ev_new("c");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_INITIAL, RC_RESUME_EVERY_SEQ, 0, 2, 0, &l);
    assert_int_equal(rc_resume_live(&r, 4, a4), 0); /* before owner 1 answered: dup */
    assert_int_equal(rc_resume_live(&r, 9, c9), 0); /* no retained state: kept */
    struct rc_resume_item one[] = {{5, a5}};
    assert_int_equal(rc_resume_initial(&r, one, 1), 0);
    assert_true(rc_resume_is_waiting(&r));
    assert_int_equal(rc_resume_live(&r, 6, a6), 0); /* after owner 1: kept */
    assert_int_equal(rc_resume_live(&r, 4, b4), 0); /* owner 2 has not answered */
    struct rc_resume_item two[] = {{4, b4}, {99, c9}};
    /* b's latest is 4 (b4 was published before the answer); c9 as initial to
     * check a mark with a higher seq dedups the buffered c9 too */
    assert_int_equal(rc_resume_initial(&r, two, 2), 0);
    assert_false(rc_resume_is_waiting(&r));
    assert_int_equal(l.n, 5);
    expect_out(&l, 0, RC_RESUME_OUT_INITIAL, 5);
    assert_ptr_equal(l.o[0].ev, a5);
    expect_out(&l, 1, RC_RESUME_OUT_INITIAL, 4);
    expect_out(&l, 2, RC_RESUME_OUT_INITIAL, 99);
    expect_out(&l, 3, RC_RESUME_OUT_LIVE, 6);
    assert_ptr_equal(l.o[3].ev, a6);
    expect_out(&l, 4, RC_RESUME_OUT_CAUGHT_UP, 0);
    assert_int_equal(r.dups, 3);
    rc_resume_fini(&r);
    struct rc_evbuf *all[] = {a4, a5, a6, b3, b4, c9};
    for (size_t i = 0; i < RC_ARRAY_LEN(all); i++) {
        assert_int_equal(refs(all[i]), 1);
        rc_evbuf_unref(all[i]);
    }
}

static void test_resume_initial_keeps_unretained_topics_live(void **state)
{
    (void)state;
    struct rc_evbuf *c1 = ev_new("c"), *c2 = ev_new("c");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_INITIAL, RC_RESUME_EVERY_SEQ, 0, 1, 0, &l);
    assert_int_equal(rc_resume_live(&r, 1, c1), 0);
    assert_int_equal(rc_resume_initial(&r, NULL, 0), 0);
    assert_int_equal(rc_resume_live(&r, 2, c2), 0);
    assert_int_equal(l.n, 3);
    expect_out(&l, 0, RC_RESUME_OUT_LIVE, 1);
    expect_out(&l, 1, RC_RESUME_OUT_CAUGHT_UP, 0);
    expect_out(&l, 2, RC_RESUME_OUT_LIVE, 2);
    assert_int_equal(rc_resume_initial(&r, NULL, 0), -EALREADY);
    rc_resume_fini(&r);
    rc_evbuf_unref(c1);
    rc_evbuf_unref(c2);
}

static void test_resume_initial_detects_a_hole(void **state)
{
    (void)state;
    struct rc_evbuf *a5 = ev_new("a"), *a7 = ev_new("a");
    struct outlog l = {0};
    struct rc_resume r;
    resume_init(&r, RC_RESUME_INITIAL, RC_RESUME_EVERY_SEQ, 0, 1, 0, &l);
    assert_int_equal(rc_resume_live(&r, 7, a7), 0);
    struct rc_resume_item one[] = {{5, a5}};
    assert_int_equal(rc_resume_initial(&r, one, 1), 0);
    assert_int_equal(l.n, 4);
    expect_out(&l, 0, RC_RESUME_OUT_INITIAL, 5);
    assert_int_equal(l.o[1].kind, RC_RESUME_OUT_GAP);
    assert_int_equal(l.o[1].reason, RC_RESUME_GAP_HOLE);
    expect_out(&l, 2, RC_RESUME_OUT_LIVE, 7);
    rc_resume_fini(&r);
    rc_evbuf_unref(a5);
    rc_evbuf_unref(a7);
}

static void test_resume_initial_caps_topics(void **state)
{
    (void)state;
    char name[8];
    struct rc_evbuf *ev[5];
    struct rc_resume_item it[5];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        ev[i] = ev_new(name);
        it[i] = (struct rc_resume_item){1, ev[i]};
    }
    struct outlog l = {0};
    struct rc_resume r;
    struct rc_resume_cfg cfg = {RC_RESUME_INITIAL, RC_RESUME_EVERY_SEQ, 0, 1, 0, 3};
    assert_int_equal(rc_resume_init(&r, &cfg, record, &l), 0);
    assert_int_equal(rc_resume_initial(&r, it, 5), 0);
    assert_int_equal(l.n, 5);
    expect_out(&l, 0, RC_RESUME_OUT_INITIAL, 1);
    expect_out(&l, 2, RC_RESUME_OUT_INITIAL, 1);
    assert_int_equal(l.o[3].kind, RC_RESUME_OUT_GAP);
    assert_int_equal(l.o[3].reason, RC_RESUME_GAP_TOO_MANY);
    expect_out(&l, 4, RC_RESUME_OUT_CAUGHT_UP, 0);
    rc_resume_fini(&r);
    for (int i = 0; i < 5; i++)
        rc_evbuf_unref(ev[i]);
}

/* Randomized include_initial: T topics over O owners, each posting its
 * topic's events and its answer in FIFO order, interleaved at random into the
 * subscriber's inbox. Per topic the output must be: the retained latest at the
 * owner's answer (if any), then every later event, in order. */
static void test_resume_initial_random_owners(void **state)
{
    (void)state;
    rng_state = 0x5eed5eed5eed5eedULL;
    enum { T = 6, O = 3, N = 40 };
    for (int c = 0; c < 2000; c++) {
        struct rc_evbuf *tev[T];
        char name[8];
        for (int t = 0; t < T; t++) {
            snprintf(name, sizeof(name), "t%d", t);
            tev[t] = ev_new(name); /* one evbuf per topic stands for all its events */
        }
        bool retained[T];
        for (int t = 0; t < T; t++)
            retained[t] = rnd(2);
        /* each owner's queue: events (topic, seq) then its answer at a random point */
        uint64_t seq[T] = {0};
        struct {
            int topic; /* -1 = the answer */
            uint64_t seq;
        } q[O][N + 1];
        size_t qn[O] = {0}, qi[O] = {0};
        uint64_t answered_seq[T] = {0};
        size_t answer_at[O];
        for (int o = 0; o < O; o++)
            answer_at[o] = rnd(N / O + 1);
        for (int i = 0; i < N; i++) {
            int t = (int)rnd(T), o = t % O;
            if (qn[o] == answer_at[o]) {
                q[o][qn[o]++].topic = -1;
                for (int u = o; u < T; u += O)
                    answered_seq[u] = seq[u];
            }
            q[o][qn[o]].topic = t;
            q[o][qn[o]++].seq = ++seq[t];
        }
        for (int o = 0; o < O; o++) {
            if (answer_at[o] >= qn[o]) {
                q[o][qn[o]++].topic = -1;
                for (int u = o; u < T; u += O)
                    answered_seq[u] = seq[u];
            }
        }
        struct outlog l = {0};
        struct rc_resume r;
        resume_init(&r, RC_RESUME_INITIAL, RC_RESUME_EVERY_SEQ, 0, O, 0, &l);
        for (;;) {
            int o = (int)rnd(O), tries = 0;
            while (qi[o] == qn[o] && tries++ < O)
                o = (o + 1) % O;
            if (qi[o] == qn[o])
                break;
            int t = q[o][qi[o]].topic;
            if (t >= 0) {
                assert_int_equal(rc_resume_live(&r, q[o][qi[o]].seq, tev[t]), 0);
            } else {
                struct rc_resume_item it[T];
                size_t n = 0;
                for (int u = o; u < T; u += O)
                    if (retained[u] && answered_seq[u])
                        it[n++] = (struct rc_resume_item){answered_seq[u], tev[u]};
                assert_int_equal(rc_resume_initial(&r, it, n), 0);
            }
            qi[o]++;
        }
        rc_resume_fini(&r);
        /* check per topic */
        for (int t = 0; t < T; t++) {
            uint64_t next = 1;
            bool initial_seen = false;
            for (size_t i = 0; i < l.n; i++) {
                if (l.o[i].kind == RC_RESUME_OUT_GAP)
                    fail_msg("unexpected gap, case %d", c);
                if (!l.o[i].ev || l.o[i].ev != tev[t])
                    continue;
                if (l.o[i].kind == RC_RESUME_OUT_INITIAL) {
                    assert_false(initial_seen);
                    assert_true(retained[t]);
                    assert_int_equal(l.o[i].seq, answered_seq[t]);
                    initial_seen = true;
                    next = l.o[i].seq + 1;
                    continue;
                }
                if (retained[t] && answered_seq[t])
                    assert_true(initial_seen);
                /* unretained: every event since subscribe (all of them here) */
                assert_int_equal(l.o[i].seq, next);
                next++;
            }
            assert_int_equal(next, seq[t] + 1);
            assert_int_equal(initial_seen, retained[t] && answered_seq[t] > 0);
        }
        for (int t = 0; t < T; t++) {
            assert_int_equal(refs(tev[t]), 1);
            rc_evbuf_unref(tev[t]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_id_parse_accepts_ids),
        cmocka_unit_test(test_event_id_parse_rejects_malformed),
        cmocka_unit_test(test_event_id_parse_every_prefix),
        cmocka_unit_test(test_event_id_parse_respects_epoch_cap),
        cmocka_unit_test(test_event_id_format_round_trips),
        cmocka_unit_test(test_event_cursor_tells_other_runs_apart),
        cmocka_unit_test(test_stream_id_round_trips_known_positions_only),
        cmocka_unit_test(test_stream_id_of_every_topic_fits_the_bound),
        cmocka_unit_test(test_stream_id_parse_rejects_garbage_with_a_reason),
        cmocka_unit_test(test_stream_id_parse_every_prefix),
        cmocka_unit_test(test_history_ring_wraps_around),
        cmocka_unit_test(test_history_since_at_every_position),
        cmocka_unit_test(test_history_since_before_wrap_serves_everything),
        cmocka_unit_test(test_history_callback_can_stop),
        cmocka_unit_test(test_history_ttl_trims_old_events),
        cmocka_unit_test(test_history_size_zero_keeps_only_the_seq),
        cmocka_unit_test(test_history_retain_keeps_latest_beyond_size_and_ttl),
        cmocka_unit_test(test_history_retain_with_ring_holds_two_refs),
        cmocka_unit_test(test_history_append_requires_the_next_seq),
        cmocka_unit_test(test_history_items_since_takes_references),
        cmocka_unit_test(test_history_init_refuses_oversized_ring),
        cmocka_unit_test(test_resume_replays_then_buffered_live_without_dups),
        cmocka_unit_test(test_resume_drops_late_duplicates_while_passing),
        cmocka_unit_test(test_resume_overflow_gives_a_gap_then_live),
        cmocka_unit_test(test_resume_history_gap_is_reported_then_live),
        cmocka_unit_test(test_resume_future_cursor_is_reported),
        cmocka_unit_test(test_resume_detects_a_hole_after_the_replay),
        cmocka_unit_test(test_resume_detects_a_short_replay),
        cmocka_unit_test(test_resume_subset_mode_allows_holes),
        cmocka_unit_test(test_resume_init_validates),
        cmocka_unit_test(test_resume_random_interleavings_are_exact),
        cmocka_unit_test(test_resume_random_interleavings_with_filter),
        cmocka_unit_test(test_resume_random_interleavings_small_buffer),
        cmocka_unit_test(test_resume_initial_dedups_per_topic),
        cmocka_unit_test(test_resume_initial_keeps_unretained_topics_live),
        cmocka_unit_test(test_resume_initial_detects_a_hole),
        cmocka_unit_test(test_resume_initial_caps_topics),
        cmocka_unit_test(test_resume_initial_random_owners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
