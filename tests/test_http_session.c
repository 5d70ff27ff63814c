/* test_http_session.c - the HTTP session (src/session/http.c with the real conn.c
 * output queue and the real parser) under randomized pipelines: requests
 * answered at once or deferred, deferred answers completing in random order,
 * input split at random points, the client reading its answers in random
 * amounts. Checks every answer arrives once, in request order, the answer
 * ring never holds more than 64, reading stops while 64 answers are owed, and
 * a connection-ending error behind a full ring is written last.
 *
 * The shard is a plain struct without a ring: the few shard, broker, WebSocket
 * and SSE functions the session calls are defined below. "Reading" is
 * modelled: while the session has paused reading (rc_shard_recv_pause), only
 * a bounded residual of bytes the kernel had already delivered still
 * arrives. Route handlers are fake and tiny: /now/N answers N at once,
 * /defer/N answers N later, /big/N answers a body larger than
 * max_pending_bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcast/api.h"
#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/config.h"
#include "ringcast/http.h"
#include "ringcast/session.h"
#include "ringcast/shard.h"
#include "ringcast/sse.h"
#include "ringcast/ws.h"

#define MAX_REQ 4096
#define RING 64
#define BIG_BODY (3 * 16384 + 17)

static struct rc_config g_cfg;
static struct rc_shard g_shard;
static struct rc_conn g_conn;
static uint64_t g_deadline;
static bool g_closed;
static uint64_t g_rng;

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return n ? (uint32_t)(g_rng % n) : 0;
}

/* ---- what the session calls outside http.c / conn.c ------------------------------- */

/* deferred requests taken and not answered yet, in no order */
static struct {
    uint32_t serial;
    unsigned idx;
} g_owed[MAX_REQ];
static unsigned g_nowed, g_max_owed;

void rc_api_route(struct rc_http_ctx *x)
{
    const struct rc_slice path = x->req->path;
    char p[64];
    size_t n = path.n < sizeof(p) - 1 ? path.n : sizeof(p) - 1;
    memcpy(p, path.p, n);
    p[n] = '\0';
    unsigned idx;
    if (sscanf(p, "/now/%u", &idx) == 1) {
        char body[32];
        int k = snprintf(body, sizeof(body), "%u", idx);
        /* a POST body is the request's index repeated: check it arrived whole */
        for (size_t i = 0; i < x->body_len; i++)
            assert_int_equal(x->body[i], 'a' + (char)(idx % 26));
        rc_http_json(x, 200, body, (size_t)k);
    } else if (sscanf(p, "/defer/%u", &idx) == 1) {
        uint32_t serial = rc_http_defer(x);
        assert_true(serial != 0);
        assert_true(g_nowed < RING);
        g_owed[g_nowed].serial = serial;
        g_owed[g_nowed].idx = idx;
        g_nowed++;
        if (g_nowed > g_max_owed)
            g_max_owed = g_nowed;
    } else if (sscanf(p, "/big/%u", &idx) == 1) {
        static char big[BIG_BODY];
        int k = snprintf(big, sizeof(big), "%u:", idx);
        memset(big + k, 'z', sizeof(big) - (size_t)k);
        rc_http_json(x, 200, big, sizeof(big));
    } else {
        rc_http_error(x, 404, "not_found", "no route %s", p);
    }
}

/* the session reaches the fake router through its route hook, as main wires the real one */
static const struct rc_session_hooks g_hooks = {.route = rc_api_route};

void rc_shard_arm_timer(struct rc_shard *s, struct rc_conn *c, uint64_t deadline_ms)
{
    (void)s, (void)c;
    g_deadline = deadline_ms;
}

void rc_shard_recv_pause(struct rc_shard *s, struct rc_conn *c)
{
    (void)s;
    c->recv_paused = true;
}

void rc_shard_recv_resume(struct rc_shard *s, struct rc_conn *c)
{
    (void)s;
    c->recv_paused = false;
}

void rc_shard_conn_closed(struct rc_shard *s, struct rc_conn *c)
{
    (void)s, (void)c;
    g_closed = true;
}

void rc_ws_send_error(struct rc_conn *c, const json_t *id, const char *code, const char *msg)
{
    (void)c, (void)id, (void)code, (void)msg;
}

void rc_broker_conn_gone(struct rc_conn *c)
{
    (void)c;
}

void rc_conn_limit_release(struct rc_conn *c); /* conn_limit.c, not linked here */
void rc_conn_limit_release(struct rc_conn *c)
{
    (void)c;
}

void rc_sub_ref(struct rc_sub *sub)
{
    (void)sub;
}

void rc_sub_unref(struct rc_sub *sub)
{
    (void)sub;
}

void rc_auth_identity_free(struct rc_auth_identity *id)
{
    (void)id;
}

/* ---- the client ---------------------------------------------------------------------- */

static char *g_in; /* every byte the client sends */
static size_t g_in_len, g_fed;
static unsigned g_expect[MAX_REQ + 1]; /* index answered by the k-th answer */
static int g_expect_status[MAX_REQ + 1];
static unsigned g_nreq;
static char *g_rx; /* answer bytes read, not parsed yet */
static size_t g_rx_len, g_rx_cap;
static unsigned g_answers;
static bool g_saw_close;

static void setup_conn(void)
{
    memset(&g_cfg, 0, sizeof(g_cfg));
    g_cfg.max_request_line = 1024;
    g_cfg.max_header_bytes = 2048;
    g_cfg.max_headers = 16;
    g_cfg.max_body_bytes = 4096;
    g_cfg.request_timeout = 1000000;
    g_cfg.keepalive_timeout = 1000000;
    g_cfg.handshake_timeout = 1000000;
    g_cfg.max_pending_bytes = 16384;
    g_cfg.recv_buffers = 2;
    g_cfg.recv_buffer_size = 2048;
    memset(&g_shard, 0, sizeof(g_shard));
    g_shard.cfg = &g_cfg;
    g_shard.now_ms = 1;
    rc_timer_wheel_init(&g_shard.timers, 1);
    rc_session_set_hooks(&g_hooks);
    memset(&g_conn, 0, sizeof(g_conn));
    g_conn.shard = &g_shard;
    g_conn.fd = -1;
    g_conn.proto = RC_PROTO_HTTP;
    g_conn.ops = &rc_http_conn_ops;
    g_conn.state = RC_CONN_OPEN;
    g_conn.recv_armed = true;
    g_nowed = g_max_owed = 0;
    g_closed = false;
    g_in_len = g_fed = 0;
    g_nreq = 0;
    g_rx_len = 0;
    g_answers = 0;
    g_saw_close = false;
    rc_conn_on_open(&g_conn);
}

static void add_bytes(const char *p, size_t n)
{
    g_in = realloc(g_in, g_in_len + n);
    assert_non_null(g_in);
    memcpy(g_in + g_in_len, p, n);
    g_in_len += n;
}

static void add_request(unsigned kind)
{
    char head[256];
    unsigned i = g_nreq;
    int k;
    size_t blen = 0;
    switch (kind) {
    case 0:
        k = snprintf(head, sizeof(head), "GET /now/%u HTTP/1.1\r\nHost: t\r\n\r\n", i);
        break;
    case 1:
        k = snprintf(head, sizeof(head), "GET /defer/%u HTTP/1.1\r\nHost: t\r\n\r\n", i);
        break;
    case 2:
        blen = rnd(600);
        k = snprintf(head, sizeof(head),
                     "POST /defer/%u HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", i, blen);
        break;
    case 3:
        k = snprintf(head, sizeof(head), "GET /big/%u HTTP/1.1\r\nHost: t\r\n\r\n", i);
        break;
    default: {
        /* chunked POST answered at once, its body split in two chunks */
        size_t a = 1 + rnd(299), b = 1 + rnd(299);
        char body[300];
        memset(body, 'a' + (char)(i % 26), sizeof(body));
        k = snprintf(head, sizeof(head),
                     "POST /now/%u HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", i);
        add_bytes(head, (size_t)k);
        k = snprintf(head, sizeof(head), "%zx\r\n", a);
        add_bytes(head, (size_t)k);
        add_bytes(body, a);
        k = snprintf(head, sizeof(head), "\r\n%zx\r\n", b);
        add_bytes(head, (size_t)k);
        add_bytes(body, b);
        add_bytes("\r\n0\r\n\r\n", 7);
        g_expect[g_nreq] = i;
        g_expect_status[g_nreq++] = 200;
        return;
    }
    }
    add_bytes(head, (size_t)k);
    if (blen) {
        char body[600];
        memset(body, 'a' + (char)(i % 26), blen);
        add_bytes(body, blen);
    }
    g_expect[g_nreq] = i;
    g_expect_status[g_nreq++] = 200;
}

/* Parse the answers read so far; check each is the next one expected. */
static void parse_answers(void)
{
    for (;;) {
        char *end = memmem(g_rx, g_rx_len, "\r\n\r\n", 4);
        if (!end)
            return;
        size_t head_len = (size_t)(end - g_rx) + 4;
        int status = atoi(g_rx + 9);
        char *cl = memmem(g_rx, head_len, "Content-Length: ", 16);
        assert_non_null(cl);
        size_t blen = strtoul(cl + 16, NULL, 10);
        if (g_rx_len < head_len + blen)
            return;
        assert_false(g_saw_close); /* nothing after a Connection: close answer */
        bool close = memmem(g_rx, head_len, "Connection: close", 17) != NULL;
        assert_true(g_answers < g_nreq);
        if (status != g_expect_status[g_answers])
            print_error("answer %u: %.*s\n", g_answers, (int)(head_len + blen), g_rx);
        assert_int_equal(status, g_expect_status[g_answers]);
        if (status == 200) {
            char want[32];
            int k = snprintf(want, sizeof(want), "%u", g_expect[g_answers]);
            assert_true(blen >= (size_t)k);
            assert_memory_equal(g_rx + head_len, want, (size_t)k);
            assert_true(blen == (size_t)k || g_rx[head_len + (size_t)k] == ':');
        }
        g_answers++;
        g_saw_close = close;
        memmove(g_rx, g_rx + head_len + blen, g_rx_len - head_len - blen);
        g_rx_len -= head_len + blen;
    }
}

/* The client reads up to n bytes of what the server queued. */
static void client_read(size_t n)
{
    struct rc_outq *q = &g_conn.out;
    size_t got = 0;
    for (uint32_t i = q->head; i != q->tail && got < n; i++) {
        struct iovec *v = &q->iov[i & (q->cap - 1)];
        size_t take = v->iov_len < n - got ? v->iov_len : n - got;
        if (g_rx_len + take > g_rx_cap) {
            g_rx_cap = (g_rx_len + take) * 2;
            g_rx = realloc(g_rx, g_rx_cap);
            assert_non_null(g_rx);
        }
        memcpy(g_rx + g_rx_len, v->iov_base, take);
        g_rx_len += take;
        got += take;
    }
    if (!got)
        return;
    rc_outq_consume(q, got);
    parse_answers();
    rc_conn_on_sent(&g_conn);
}

static void answer_one(void)
{
    unsigned k = rnd(g_nowed);
    uint32_t serial = g_owed[k].serial;
    char body[32];
    int n = snprintf(body, sizeof(body), "%u", g_owed[k].idx);
    g_owed[k] = g_owed[--g_nowed];
    rc_http_deferred_json(&g_conn, serial, 200, body, (size_t)n);
}

/* Bytes the kernel may still deliver after a pause (a loop turn's worth). */
static size_t g_residual;
static bool g_was_paused;

static void feed(size_t n)
{
    if (g_fed + n > g_in_len)
        n = g_in_len - g_fed;
    if (g_conn.recv_paused) {
        if (!g_was_paused)
            g_residual = rnd(3) * 700;
        if (n > g_residual)
            n = g_residual;
        g_residual -= n;
    }
    g_was_paused = g_conn.recv_paused;
    if (!n)
        return;
    char *buf = malloc(n); /* a private copy: the session may not keep it */
    assert_non_null(buf);
    memcpy(buf, g_in + g_fed, n);
    g_fed += n;
    rc_conn_on_data(&g_conn, buf, n);
    free(buf);
}

static void check_invariants(void)
{
    assert_true(g_nowed <= RING);
    /* backpressure: 64 answers owed means the connection is not read */
    if (g_nowed == RING && g_conn.state == RC_CONN_OPEN)
        assert_true(g_conn.recv_paused);
    /* input is bounded by one request plus one residual delivery */
    assert_true(g_conn.in_len <= g_cfg.max_header_bytes + g_cfg.max_body_bytes + 64 * 1024 +
                                     (size_t)g_cfg.recv_buffers * g_cfg.recv_buffer_size);
    /* answers queued: max_pending_bytes, plus answers already owed */
    assert_true(g_conn.out.bytes <= g_cfg.max_pending_bytes + (RING + 1) * (BIG_BODY + 256));
}

/* how a pipeline ends */
enum tail { TAIL_NONE, TAIL_FRAMING_ERROR, TAIL_CLOSE };

static void run_pipeline(uint64_t seed, enum tail tail)
{
    g_rng = seed * 0x9e3779b97f4a7c15ull + 1;
    setup_conn();
    unsigned n = 1 + rnd(600);
    unsigned mix = rnd(4);                      /* 0: mostly deferred, else a mix */
    unsigned slow = mix == 0 ? 20 : 1 + rnd(3); /* deferred answers come 1 in `slow` turns */
    for (unsigned i = 0; i < n; i++) {
        unsigned kind = mix == 0 ? (rnd(10) ? 1 : rnd(3)) : rnd(5);
        if (kind == 3 && rnd(4))
            kind = 0; /* big answers are rarer (and none when mostly deferred) */
        add_request(kind);
    }
    if (tail == TAIL_FRAMING_ERROR) {
        static const char bad[] = "GET / HTTP/2.0\r\nHost: t\r\n\r\n";
        add_bytes(bad, sizeof(bad) - 1);
        g_expect[g_nreq] = 0;
        g_expect_status[g_nreq++] = 505;
    } else if (tail == TAIL_CLOSE) {
        /* a deferred Connection: close request, then bytes that are never parsed */
        char head[128];
        int k = snprintf(head, sizeof(head),
                         "GET /defer/%u HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", g_nreq);
        add_bytes(head, (size_t)k);
        g_expect[g_nreq] = g_nreq;
        g_expect_status[g_nreq++] = 200;
        for (unsigned i = 0; i < 50; i++)
            add_bytes("GET /now/9999 HTTP/1.1\r\n\r\nnot even HTTP\r\n", 41);
    }
    /* some clients read little at a time */
    size_t read_chunk = rnd(3) == 0 ? 64 : 20000;
    unsigned step;
    for (step = 0; step < 2000000; step++) {
        if (g_conn.state != RC_CONN_OPEN && g_conn.state != RC_CONN_FLUSHING)
            break;
        bool input_left = g_fed < g_in_len && g_conn.state == RC_CONN_OPEN;
        if (!input_left && g_nowed == 0 && g_conn.out.bytes == 0)
            break;
        switch (rnd(4)) {
        case 0:
            if (input_left)
                feed(rnd(4) ? 1 + rnd(1500) : 1);
            break;
        case 1:
            if (g_nowed && rnd(slow) == 0)
                answer_one();
            break;
        case 2:
            client_read(1 + rnd((uint32_t)read_chunk));
            break;
        default:
            /* no progress from the client for a while, then a burst of input */
            if (input_left && !g_conn.recv_paused)
                feed(4096);
            break;
        }
        check_invariants();
    }
    client_read(SIZE_MAX);
    if (g_nowed || g_answers != g_nreq)
        print_error("seed %llu: state %u owed %u answers %u of %u fed %zu of %zu in_len %zu "
                    "paused %d aw %d sw %d sa %d out %zu step %u\n",
                    (unsigned long long)seed, g_conn.state, g_nowed, g_answers, g_nreq, g_fed,
                    g_in_len, g_conn.in_len, g_conn.recv_paused, g_conn.http.awaiting,
                    g_conn.http.stream_wait, g_conn.http.stop_after, g_conn.out.bytes, step);
    assert_int_equal(g_nowed, 0);
    assert_int_equal(g_answers, g_nreq);
    assert_int_equal(g_rx_len, 0);
    rc_http_release(&g_conn);
    rc_outq_release_all(&g_conn.out);
    free(g_conn.in);
}

static void test_http_session_random_pipelines_answer_in_order(void **state)
{
    (void)state;
    unsigned saw_full = 0;
    for (uint64_t seed = 1; seed <= 400; seed++) {
        run_pipeline(seed, TAIL_NONE);
        saw_full += g_max_owed == RING;
    }
    /* the generator must reach the interesting case often */
    if (saw_full <= 20)
        print_error("only %u pipelines filled the ring\n", saw_full);
    assert_true(saw_full > 20);
}

static void test_http_session_random_pipelines_with_a_framing_error_last(void **state)
{
    (void)state;
    for (uint64_t seed = 1000; seed <= 1200; seed++)
        run_pipeline(seed, TAIL_FRAMING_ERROR);
}

static void test_http_session_random_pipelines_ending_with_connection_close(void **state)
{
    (void)state;
    for (uint64_t seed = 2000; seed <= 2200; seed++) {
        run_pipeline(seed, TAIL_CLOSE);
        assert_true(g_saw_close);
        assert_int_equal(g_conn.state, RC_CONN_FLUSHING);
    }
}

/* 64 deferred requests owed, then more input than the connection may buffer
 * (the kernel delivered it before the pause took effect): the 413 that ends
 * the connection is written after the 64 answers, never into a 65th slot. */
static void test_http_session_input_cap_with_full_ring_answers_413_last(void **state)
{
    (void)state;
    g_rng = 7;
    setup_conn();
    for (unsigned i = 0; i < RING + 200; i++)
        add_request(1);
    size_t cap = g_cfg.max_header_bytes + g_cfg.max_body_bytes + 64 * 1024 +
                 (size_t)g_cfg.recv_buffers * g_cfg.recv_buffer_size;
    while (g_in_len < cap + 4096)
        add_request(1);
    /* deliver everything regardless of the pause, as a misbehaving kernel would */
    while (g_fed < g_in_len && g_conn.state == RC_CONN_OPEN) {
        size_t n = g_in_len - g_fed < 2048 ? g_in_len - g_fed : 2048;
        char *buf = malloc(n);
        memcpy(buf, g_in + g_fed, n);
        g_fed += n;
        rc_conn_on_data(&g_conn, buf, n);
        free(buf);
        assert_true(g_conn.in_len <= cap);
    }
    assert_int_equal(g_nowed, RING);
    assert_int_equal(g_conn.out.bytes, 0); /* the 413 waits behind the 64 */
    g_expect_status[RING] = 413;
    g_nreq = RING + 1;
    while (g_nowed)
        answer_one();
    client_read(SIZE_MAX);
    assert_int_equal(g_answers, RING + 1);
    assert_true(g_saw_close);
    assert_int_equal(g_conn.state, RC_CONN_FLUSHING);
    rc_http_release(&g_conn);
    rc_outq_release_all(&g_conn.out);
    free(g_conn.in);
}

/* A connection that keeps completing requests re-arms its deadline as each
 * completes: a deadline armed for an earlier request (here the first one's)
 * never cuts it. One request every 7 ms, answered before the next, for 1.4 s
 * against a 100 ms request_timeout; a timer that fires must not close it. */
static void test_http_session_deadline_follows_completed_requests(void **state)
{
    (void)state;
    g_rng = 9;
    setup_conn();
    g_cfg.request_timeout = 100;
    g_conn.http.in_request = false;
    rc_conn_on_open(&g_conn); /* the first request's deadline, with the short timeout */
    size_t ends[200];
    for (unsigned i = 0; i < 200; i++) {
        add_request(i % 3 == 0 ? 0 : 1);
        ends[i] = g_in_len;
    }
    for (unsigned i = 0; i < 200; i++) {
        g_shard.now_ms += 7;
        if (g_deadline <= g_shard.now_ms)
            rc_conn_on_timer(&g_conn);
        assert_int_equal(g_conn.state, RC_CONN_OPEN);
        feed(ends[i] - g_fed);
        while (g_nowed)
            answer_one();
        client_read(SIZE_MAX);
        assert_int_equal(g_answers, i + 1);
    }
    assert_true(g_deadline > g_shard.now_ms + 1000); /* idle now: the keep-alive deadline */
    rc_http_release(&g_conn);
    rc_outq_release_all(&g_conn.out);
    free(g_conn.in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_session_random_pipelines_answer_in_order),
        cmocka_unit_test(test_http_session_random_pipelines_with_a_framing_error_last),
        cmocka_unit_test(test_http_session_random_pipelines_ending_with_connection_close),
        cmocka_unit_test(test_http_session_input_cap_with_full_ring_answers_413_last),
        cmocka_unit_test(test_http_session_deadline_follows_completed_requests),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_in);
    free(g_rx);
    return rc;
}
