/* fuzz_http_session.c - libFuzzer harness for the HTTP session (src/session/http.c
 * with the real conn.c output queue and the real parser), not only the parser:
 * the input is a script of connection events. Each record is one op byte and,
 * for input, a length byte and that many bytes sent by the client:
 *   op % 8 == 0..2  the client sends the bytes (split where the script says)
 *   op % 8 == 3     a deferred answer completes (which one: the next byte)
 *   op % 8 == 4     the client reads up to 64 x (next byte) bytes of answers
 *   op % 8 == 5     the connection's timer fires
 *   op % 8 == 6     the client half-closes (EOF)
 *   op % 8 == 7     the shard starts draining
 * Routes are fake: a path starting /d is deferred, /b answers more than
 * max_pending_bytes, a GET of a path starting /s is a stream request (waits for
 * every earlier answer), anything else is answered at once. While the session has
 * paused reading, only a bounded residual of bytes still arrives (what the
 * kernel had delivered). Checked: ASan/UBSan, at most 64 answers owed,
 * reading paused whenever 64 are owed, buffered input within its cap, and at
 * the end (every answer given, every byte read) nothing is left queued.
 * Seeds: fuzz/corpus/fuzz_http_session/. The randomized cmocka counterpart,
 * which also checks answer order, is tests/test_http_session.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/api.h"
#include "ringcast/auth.h"
#include "ringcast/broker.h"
#include "ringcast/config.h"
#include "ringcast/http.h"
#include "ringcast/session.h"
#include "ringcast/shard.h"
#include "ringcast/sse.h"
#include "ringcast/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define RING 64
#define BIG_BODY 9000

static struct rc_config g_cfg;
static struct rc_shard g_shard;
static struct rc_conn g_conn;
static uint64_t g_deadline;
static uint32_t g_owed[RING + 1];
static unsigned g_nowed;

/* ---- what the session calls outside http.c / conn.c ------------------------------- */

void rc_api_route(struct rc_http_ctx *x)
{
    const struct rc_slice path = x->req->path;
    if (path.n >= 2 && path.p[1] == 'd') {
        uint32_t serial = rc_http_defer(x);
        CHECK(serial != 0);
        CHECK(g_nowed < RING);
        g_owed[g_nowed++] = serial;
    } else if (path.n >= 2 && path.p[1] == 'b') {
        static char big[BIG_BODY];
        memset(big, 'z', sizeof(big));
        rc_http_json(x, 200, big, sizeof(big));
    } else {
        rc_http_json(x, 200, path.p, path.n);
    }
}

/* the router's part: which requests take the connection over */
static bool fake_is_stream(const struct rc_http_request *req)
{
    return req->method == RC_HTTP_GET && req->path.n >= 2 && req->path.p[1] == 's';
}
/* the session reaches the fake router through its route hook, as main wires the real one */
static const struct rc_session_hooks g_hooks = {.route = rc_api_route, .is_stream = fake_is_stream};

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

static size_t g_residual;
static bool g_was_paused;

static void setup(void)
{
    memset(&g_cfg, 0, sizeof(g_cfg));
    g_cfg.max_request_line = 256;
    g_cfg.max_header_bytes = 1024;
    g_cfg.max_headers = 16;
    g_cfg.max_body_bytes = 2048;
    g_cfg.request_timeout = 1000;
    g_cfg.keepalive_timeout = 5000;
    g_cfg.handshake_timeout = 500;
    g_cfg.max_pending_bytes = 4096;
    g_cfg.recv_buffers = 2;
    g_cfg.recv_buffer_size = 1024;
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
    g_nowed = 0;
    g_residual = 0;
    g_was_paused = false;
    rc_conn_on_open(&g_conn);
}

static bool is_open(void)
{
    return g_conn.state == RC_CONN_OPEN || g_conn.state == RC_CONN_FLUSHING;
}

static void feed(const uint8_t *p, size_t n)
{
    if (g_conn.recv_paused) {
        if (!g_was_paused)
            g_residual = 1500;
        if (n > g_residual)
            n = g_residual;
        g_residual -= n;
    }
    g_was_paused = g_conn.recv_paused;
    if (!n || g_conn.state != RC_CONN_OPEN)
        return;
    char *buf = malloc(n); /* a private, writable copy: the session may not keep it */
    if (!buf)
        return;
    memcpy(buf, p, n);
    rc_conn_on_data(&g_conn, buf, n);
    free(buf);
}

static void client_read(size_t n)
{
    struct rc_outq *q = &g_conn.out;
    size_t got = 0;
    for (uint32_t i = q->head; i != q->tail && got < n; i++) {
        size_t len = q->iov[i & (q->cap - 1)].iov_len;
        got += len < n - got ? len : n - got;
    }
    if (!got || !is_open())
        return;
    rc_outq_consume(q, got);
    rc_conn_on_sent(&g_conn);
}

static void answer(unsigned k)
{
    if (!g_nowed || !is_open())
        return;
    k %= g_nowed;
    uint32_t serial = g_owed[k];
    g_owed[k] = g_owed[--g_nowed];
    if (k & 1)
        rc_http_deferred_error(&g_conn, serial, 503, "unavailable", "fuzz");
    else
        rc_http_deferred_json(&g_conn, serial, 200, "{}", 2);
}

static void check_invariants(void)
{
    CHECK(g_nowed <= RING);
    if (g_nowed == RING && g_conn.state == RC_CONN_OPEN && !g_conn.http.stop_after)
        CHECK(g_conn.recv_paused);
    CHECK(g_conn.in_len <= g_cfg.max_header_bytes + g_cfg.max_body_bytes + 64 * 1024 +
                               (size_t)g_cfg.recv_buffers * g_cfg.recv_buffer_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    size_t i = 0;
    while (i < size && is_open()) {
        uint8_t op = data[i++];
        uint8_t arg = i < size ? data[i] : 0;
        switch (op % 8) {
        case 0:
        case 1:
        case 2: {
            size_t n = arg;
            i++;
            if (n > size - i)
                n = size - i;
            feed(data + i, n);
            i += n;
            break;
        }
        case 3:
            i++;
            answer(arg);
            break;
        case 4:
            i++;
            client_read((size_t)arg * 64 + 1);
            break;
        case 5:
            g_shard.now_ms = g_deadline > g_shard.now_ms ? g_deadline : g_shard.now_ms + 1;
            rc_conn_on_timer(&g_conn);
            break;
        case 6:
            if (g_conn.state == RC_CONN_OPEN && !g_conn.peer_closed)
                rc_conn_on_eof(&g_conn);
            break;
        default:
            if (!g_shard.draining && g_conn.state == RC_CONN_OPEN) {
                g_shard.draining = true;
                rc_conn_on_drain(&g_conn);
            }
            break;
        }
        check_invariants();
    }
    /* every answer given and read: nothing may be left queued */
    while (g_nowed && is_open()) {
        answer(0);
        check_invariants();
    }
    for (int k = 0; k < 1000 && is_open() && g_conn.out.bytes; k++)
        client_read(SIZE_MAX);
    if (is_open())
        CHECK(g_conn.out.bytes == 0);
    rc_http_release(&g_conn);
    rc_outq_release_all(&g_conn.out);
    free(g_conn.in);
    return 0;
}
