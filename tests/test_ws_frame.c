/* test_ws_frame.c - unit tests for the RFC 6455 frame layer (ws_frame.h).
 * Frame streams are checked whole, split at every byte position and fed byte
 * by byte; all three must give the same messages and the same outcome. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ringcast/ws_frame.h"

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- frame builders ------------------------------------------------------ */

/* Append a masked client frame with first header byte b0 (FIN|RSV|opcode). */
static size_t put_b0(uint8_t *out, size_t at, uint8_t b0, const void *payload, size_t n)
{
    size_t h = rc_ws_frame_header_masked(out + at, b0 & 0x0F, n, false, MASK);

    out[at] = b0;
    if (n)
        memcpy(out + at + h, payload, n);
    rc_ws_mask(out + at + h, n, MASK, 0);
    return at + h + n;
}

static size_t put_frame(uint8_t *out, size_t at, unsigned opcode, bool fin, const void *payload,
                        size_t n)
{
    return put_b0(out, at, (uint8_t)((fin ? 0x80 : 0) | opcode), payload, n);
}

static size_t put_str(uint8_t *out, size_t at, unsigned opcode, bool fin, const char *s)
{
    return put_frame(out, at, opcode, fin, s, strlen(s));
}

static size_t put_close(uint8_t *out, size_t at, uint16_t code, const char *reason)
{
    uint8_t p[125];
    size_t n = rc_ws_close_payload(p, code, reason);

    return put_frame(out, at, RC_WS_OP_CLOSE, true, p, n);
}

/* ---- tracing a reader ---------------------------------------------------- */

#define ARENA (1u << 18)

struct event {
    enum rc_ws_chunk_kind kind;
    uint16_t close_code;
    size_t off, len; /* into trace.data */
};

struct trace {
    struct event ev[64];
    size_t n_ev;
    size_t n_chunks;
    uint8_t data[ARENA]; /* payloads of completed messages and control frames */
    size_t data_len;
    uint8_t msg[ARENA]; /* the data message being assembled */
    size_t msg_len;
    bool in_msg;
    enum rc_ws_chunk_kind msg_kind;
    enum rc_parse last;
    struct rc_err err;
};

static struct trace tr_a, tr_b;
static uint8_t work[ARENA];

static void trace_reset(struct trace *t)
{
    t->n_ev = 0;
    t->n_chunks = 0;
    t->data_len = 0;
    t->msg_len = 0;
    t->in_msg = false;
    t->last = RC_PARSE_MORE;
    memset(&t->err, 0, sizeof(t->err));
}

static void trace_push(struct trace *t, enum rc_ws_chunk_kind kind, uint16_t code, const uint8_t *p,
                       size_t n)
{
    assert_true(t->n_ev < RC_ARRAY_LEN(t->ev));
    assert_true(t->data_len + n <= ARENA);
    if (n)
        memcpy(t->data + t->data_len, p, n);
    t->ev[t->n_ev++] = (struct event){kind, code, t->data_len, n};
    t->data_len += n;
}

static void trace_chunk(struct trace *t, const struct rc_ws_chunk *c)
{
    t->n_chunks++;
    if (c->kind != RC_WS_CHUNK_TEXT && c->kind != RC_WS_CHUNK_BINARY) {
        assert_false(c->msg_end);
        trace_push(t, c->kind, c->close_code, c->data, c->len);
        return;
    }
    if (!t->in_msg) {
        t->in_msg = true;
        t->msg_kind = c->kind;
        t->msg_len = 0;
    }
    assert_int_equal(c->kind, t->msg_kind);
    assert_true(t->msg_len + c->len <= ARENA);
    if (c->len)
        memcpy(t->msg + t->msg_len, c->data, c->len);
    t->msg_len += c->len;
    if (c->msg_end) {
        t->in_msg = false;
        trace_push(t, c->kind, 0, t->msg, t->msg_len);
    }
}

static bool inside(const uint8_t *p, size_t n, const void *base, size_t size)
{
    const uint8_t *b = base;
    return p >= b && n <= size && p - b <= (ptrdiff_t)(size - n);
}

/* Feed buf[0..len) until the reader needs more or fails. */
static enum rc_parse feed(struct rc_ws_reader *r, struct trace *t, uint8_t *buf, size_t len)
{
    size_t pos = 0;

    for (;;) {
        struct rc_ws_chunk c;
        size_t used = SIZE_MAX;
        enum rc_parse res = rc_ws_read(r, buf + pos, len - pos, &used, &c, &t->err);

        t->last = res;
        if (res == RC_PARSE_FAIL)
            return res;
        assert_true(used <= len - pos);
        pos += used;
        if (res == RC_PARSE_MORE) {
            assert_int_equal(pos, len);
            return res;
        }
        assert_true(used > 0);
        assert_true(inside(c.data, c.len, buf, len) || inside(c.data, c.len, r, sizeof(*r)));
        trace_chunk(t, &c);
    }
}

static void run_split(const uint8_t *in, size_t n, size_t k, const struct rc_ws_limits *lim,
                      struct trace *t)
{
    struct rc_ws_reader r;

    rc_ws_reader_init(&r, lim);
    trace_reset(t);
    memcpy(work, in, n);
    if (feed(&r, t, work, k) == RC_PARSE_FAIL)
        return;
    feed(&r, t, work + k, n - k);
}

static void run_bytes(const uint8_t *in, size_t n, const struct rc_ws_limits *lim, struct trace *t)
{
    struct rc_ws_reader r;

    rc_ws_reader_init(&r, lim);
    trace_reset(t);
    memcpy(work, in, n);
    for (size_t i = 0; i < n; i++)
        if (feed(&r, t, work + i, 1) == RC_PARSE_FAIL)
            return;
}

static void assert_same_trace(const struct trace *a, const struct trace *b)
{
    assert_int_equal(a->last, b->last);
    assert_int_equal(a->err.status, b->err.status);
    if (a->last == RC_PARSE_FAIL)
        assert_string_equal(a->err.code, b->err.code);
    assert_int_equal(a->n_ev, b->n_ev);
    for (size_t i = 0; i < a->n_ev; i++) {
        assert_int_equal(a->ev[i].kind, b->ev[i].kind);
        assert_int_equal(a->ev[i].close_code, b->ev[i].close_code);
        assert_int_equal(a->ev[i].len, b->ev[i].len);
        assert_memory_equal(a->data + a->ev[i].off, b->data + b->ev[i].off, a->ev[i].len);
    }
}

/* Whole into tr_a; byte by byte must match. */
static const struct trace *run_whole_and_bytes(const uint8_t *in, size_t n,
                                               const struct rc_ws_limits *lim)
{
    run_split(in, n, n, lim, &tr_a);
    run_bytes(in, n, lim, &tr_b);
    assert_same_trace(&tr_a, &tr_b);
    return &tr_a;
}

/* Whole into tr_a; every split position and byte by byte must match. */
static const struct trace *run_all_ways(const uint8_t *in, size_t n, const struct rc_ws_limits *lim)
{
    run_split(in, n, n, lim, &tr_a);
    for (size_t k = 0; k < n; k++) {
        run_split(in, n, k, lim, &tr_b);
        assert_same_trace(&tr_a, &tr_b);
    }
    return run_whole_and_bytes(in, n, lim);
}

static void assert_event(const struct trace *t, size_t i, enum rc_ws_chunk_kind kind,
                         const void *data, size_t len)
{
    assert_true(i < t->n_ev);
    assert_int_equal(t->ev[i].kind, kind);
    assert_int_equal(t->ev[i].len, len);
    assert_memory_equal(t->data + t->ev[i].off, data, len);
}

static void assert_str_event(const struct trace *t, size_t i, enum rc_ws_chunk_kind kind,
                             const char *s)
{
    assert_event(t, i, kind, s, strlen(s));
}

/* The stream fails the same way whole, split anywhere and byte by byte. */
static const struct trace *expect_fail(const uint8_t *in, size_t n, const struct rc_ws_limits *lim,
                                       int status, const char *code, const char *words)
{
    const struct trace *t = run_all_ways(in, n, lim);

    assert_int_equal(t->last, RC_PARSE_FAIL);
    assert_int_equal(t->err.status, status);
    assert_string_equal(t->err.code, code);
    if (!strstr(t->err.msg, words))
        fail_msg("error message \"%s\" does not mention \"%s\"", t->err.msg, words);
    return t;
}

static const struct rc_ws_limits LIM_BIG = {ARENA};

/* ---- reader: basics ------------------------------------------------------ */

static void test_ws_frame_reads_rfc_masked_hello(void **state)
{
    (void)state;
    /* RFC 6455 5.7: a single-frame masked text message "Hello". */
    uint8_t buf[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, sizeof(buf), &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, sizeof(buf));
    assert_int_equal(c.kind, RC_WS_CHUNK_TEXT);
    assert_ptr_equal(c.data, buf + 6); /* unmasked in place */
    assert_int_equal(c.len, 5);
    assert_memory_equal(c.data, "Hello", 5);
    assert_true(c.msg_end);
    assert_false(rc_ws_reader_in_message(&r));
}

/* RFC 6455 5.7: the unmasked "Hello" a server sends, read by the client-side reader,
 * whole and byte by byte. */
static void test_ws_frame_client_reads_unmasked_hello(void **state)
{
    (void)state;
    const uint8_t frame[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    uint8_t buf[sizeof(frame)];
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    memcpy(buf, frame, sizeof(buf));
    rc_ws_reader_init_client(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, sizeof(buf), &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, sizeof(buf));
    assert_int_equal(c.kind, RC_WS_CHUNK_TEXT);
    assert_int_equal(c.len, 5);
    assert_memory_equal(c.data, "Hello", 5);
    assert_true(c.msg_end);

    memcpy(buf, frame, sizeof(buf));
    rc_ws_reader_init_client(&r, NULL);
    char got[8] = "";
    size_t have = 0;
    for (size_t i = 0; i < sizeof(buf); i++) {
        enum rc_parse p = rc_ws_read(&r, buf + i, 1, &used, &c, &err);
        assert_int_equal(used, 1);
        if (p == RC_PARSE_DONE && c.len) {
            memcpy(got + have, c.data, c.len);
            have += c.len;
        }
    }
    assert_int_equal(have, 5);
    assert_memory_equal(got, "Hello", 5);
}

/* An empty unmasked close, then a 256-byte binary frame (16-bit length). */
static void test_ws_frame_client_reads_close_and_16bit_length(void **state)
{
    (void)state;
    uint8_t buf[4 + 256];
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    buf[0] = 0x82;
    buf[1] = 126;
    buf[2] = 0x01;
    buf[3] = 0x00;
    memset(buf + 4, 'x', 256);
    rc_ws_reader_init_client(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, sizeof(buf), &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(c.kind, RC_WS_CHUNK_BINARY);
    assert_int_equal(c.len, 256);
    assert_int_equal(c.data[255], 'x');
    uint8_t cl[] = {0x88, 0x00};
    assert_int_equal(rc_ws_read(&r, cl, sizeof(cl), &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(c.kind, RC_WS_CHUNK_CLOSE);
    assert_int_equal(c.close_code, 1005);
}

/* RFC 6455 5.1: a server must not mask; the client closes with 1002. */
static void test_ws_frame_client_refuses_masked_frame(void **state)
{
    (void)state;
    uint8_t buf[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err = {0};
    size_t used = 0;

    rc_ws_reader_init_client(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, sizeof(buf), &used, &c, &err), RC_PARSE_FAIL);
    assert_int_equal(err.status, 1002);
    assert_non_null(strstr(err.msg, "server frame is masked"));
}

static void test_ws_frame_returns_more_on_empty_input(void **state)
{
    (void)state;
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 7;
    uint8_t b = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, &b, 0, &used, &c, &err), RC_PARSE_MORE);
    assert_int_equal(used, 0);
}

static void test_ws_frame_keeps_partial_header(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_BINARY, true, "abc");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, 3, &used, &c, &err), RC_PARSE_MORE);
    assert_int_equal(used, 3);
    assert_int_equal(rc_ws_read(&r, buf + 3, n - 3, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, n - 3);
    assert_int_equal(c.kind, RC_WS_CHUNK_BINARY);
    assert_int_equal(c.len, 3);
    assert_memory_equal(c.data, "abc", 3);
    assert_true(c.msg_end);
}

static void test_ws_frame_delivers_payload_in_pieces(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, true, "Hello");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, 8, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, 8);
    assert_int_equal(c.len, 2);
    assert_ptr_equal(c.data, buf + 6);
    assert_memory_equal(c.data, "He", 2);
    assert_false(c.msg_end);
    assert_true(rc_ws_reader_in_message(&r));
    assert_int_equal(rc_ws_read(&r, buf + 8, n - 8, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, 3);
    assert_ptr_equal(c.data, buf + 8);
    assert_memory_equal(c.data, "llo", 3);
    assert_true(c.msg_end);
}

static void test_ws_frame_reads_several_frames_in_one_buffer(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, true, "a");
    size_t n1 = n;
    n = put_str(buf, n, RC_WS_OP_BINARY, true, "bc");
    size_t n2 = n;
    n = put_str(buf, n, RC_WS_OP_PING, true, "p");
    size_t n3 = n;
    n = put_close(buf, n, 1000, "bye");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, n, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, n1);
    assert_int_equal(c.kind, RC_WS_CHUNK_TEXT);
    assert_memory_equal(c.data, "a", 1);
    assert_int_equal(rc_ws_read(&r, buf + n1, n - n1, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, n2 - n1);
    assert_int_equal(c.kind, RC_WS_CHUNK_BINARY);
    assert_memory_equal(c.data, "bc", 2);
    assert_int_equal(rc_ws_read(&r, buf + n2, n - n2, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, n3 - n2);
    assert_int_equal(c.kind, RC_WS_CHUNK_PING);
    assert_ptr_equal(c.data, buf + n2 + 6); /* whole in buf: unmasked in place */
    assert_memory_equal(c.data, "p", 1);
    assert_int_equal(rc_ws_read(&r, buf + n3, n - n3, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, n - n3);
    assert_int_equal(c.kind, RC_WS_CHUNK_CLOSE);
    assert_int_equal(c.close_code, 1000);
    assert_int_equal(c.len, 5);
    assert_memory_equal(c.data + 2, "bye", 3);
}

/* A stream that exercises most paths: fragments, a UTF-8 character split across
 * fragments, control frames in between, 16-bit lengths, empty frames. */
static size_t rich_stream(uint8_t *buf)
{
    uint8_t bin[300];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 7);
    n = put_str(buf, n, RC_WS_OP_TEXT, false, "caf\xC3");
    n = put_str(buf, n, RC_WS_OP_PING, true, "are you there");
    n = put_str(buf, n, RC_WS_OP_CONT, false, "\xA9 \xE2\x82");
    n = put_str(buf, n, RC_WS_OP_PONG, true, "");
    n = put_str(buf, n, RC_WS_OP_CONT, true, "\xAC!");
    n = put_frame(buf, n, RC_WS_OP_BINARY, true, bin, sizeof(bin));
    n = put_str(buf, n, RC_WS_OP_TEXT, false, "");
    n = put_str(buf, n, RC_WS_OP_CONT, true, "");
    n = put_close(buf, n, 1001, "going \xF0\x9F\x91\x8B");
    return n;
}

static void assert_rich_trace(const struct trace *t)
{
    uint8_t bin[300];
    const uint8_t close[] = "\x03\xE9going \xF0\x9F\x91\x8B";

    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 7);
    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_int_equal(t->n_ev, 6);
    assert_str_event(t, 0, RC_WS_CHUNK_PING, "are you there");
    assert_str_event(t, 1, RC_WS_CHUNK_PONG, "");
    assert_str_event(t, 2, RC_WS_CHUNK_TEXT, "caf\xC3\xA9 \xE2\x82\xAC!");
    assert_event(t, 3, RC_WS_CHUNK_BINARY, bin, sizeof(bin));
    assert_str_event(t, 4, RC_WS_CHUNK_TEXT, "");
    assert_event(t, 5, RC_WS_CHUNK_CLOSE, close, sizeof(close) - 1);
    assert_int_equal(t->ev[5].close_code, 1001);
}

static void test_ws_frame_same_messages_at_every_split(void **state)
{
    (void)state;
    static uint8_t buf[1024];
    size_t n = rich_stream(buf);
    const struct trace *t;

    t = run_all_ways(buf, n, NULL);
    assert_rich_trace(t);
}

static void test_ws_frame_same_messages_byte_by_byte(void **state)
{
    (void)state;
    static uint8_t buf[1024];
    size_t n = rich_stream(buf);

    run_bytes(buf, n, NULL, &tr_b);
    assert_rich_trace(&tr_b);
    /* one chunk per payload byte of a data frame, plus the final empty one */
    assert_int_equal(tr_b.n_chunks, 4 + 1 + 4 + 1 + 2 + 300 + 0 + 1 + 1);
}

static void check_length(size_t len, size_t header_len)
{
    static uint8_t payload[70000];
    static uint8_t buf[70100];
    const struct trace *t;
    size_t n;

    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i ^ (i >> 8));
    n = put_frame(buf, 0, RC_WS_OP_BINARY, true, payload, len);
    assert_int_equal(n, header_len + len);
    t = len < 300 ? run_all_ways(buf, n, &LIM_BIG) : run_whole_and_bytes(buf, n, &LIM_BIG);
    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_int_equal(t->n_ev, 1);
    assert_event(t, 0, RC_WS_CHUNK_BINARY, payload, len);
}

static void test_ws_frame_reads_7bit_lengths(void **state)
{
    (void)state;
    check_length(0, 6);
    check_length(1, 6);
    check_length(125, 6);
}

static void test_ws_frame_reads_16bit_lengths(void **state)
{
    (void)state;
    check_length(126, 8);
    check_length(127, 8);
    check_length(65535, 8);
}

static void test_ws_frame_reads_64bit_lengths(void **state)
{
    (void)state;
    check_length(65536, 14);
    check_length(65537, 14);
}

static void test_ws_frame_accepts_non_minimal_length(void **state)
{
    (void)state;
    /* "Hello" with its length in a 16-bit field, then in a 64-bit field. */
    uint8_t buf[64] = {0x81, 0xFE, 0x00, 0x05, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                       0x51, 0x58, 0x81, 0xFF, 0,    0,    0,    0,    0,    0,    0,
                       0x05, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const struct trace *t = run_all_ways(buf, 32, NULL);

    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_int_equal(t->n_ev, 2);
    assert_str_event(t, 0, RC_WS_CHUNK_TEXT, "Hello");
    assert_str_event(t, 1, RC_WS_CHUNK_TEXT, "Hello");
}

static void test_ws_frame_uses_default_limit_without_limits(void **state)
{
    (void)state;
    uint8_t hdr[14];
    size_t n =
        rc_ws_frame_header_masked(hdr, RC_WS_OP_BINARY, RC_WS_DEFAULT_MAX_MESSAGE + 1, true, MASK);

    expect_fail(hdr, n, NULL, 1009, "ws_too_big", "max_message");
}

/* ---- reader: rule violations --------------------------------------------- */

static void test_ws_frame_rejects_unmasked_client_frame(void **state)
{
    (void)state;
    uint8_t buf[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};

    expect_fail(buf, sizeof(buf), NULL, 1002, "ws_protocol", "not masked");
}

static void test_ws_frame_rejects_rsv_bits(void **state)
{
    (void)state;
    uint8_t buf[32];

    for (unsigned bit = 0x10; bit <= 0x40; bit <<= 1) {
        size_t n = put_b0(buf, 0, (uint8_t)(0x81 | bit), "x", 1);
        expect_fail(buf, n, NULL, 1002, "ws_protocol", "RSV1-3");
    }
}

/* Read buf whole with permessage-deflate agreed; the chunks' compressed flags
 * go to flags (one per data chunk), the outcome is returned. */
static enum rc_parse read_compressed(uint8_t *buf, size_t n, bool *flags, size_t *nflags,
                                     struct rc_err *err)
{
    struct rc_ws_reader r;
    size_t pos = 0;
    rc_ws_reader_init(&r, NULL);
    rc_ws_reader_allow_compressed(&r);
    *nflags = 0;
    while (pos < n) {
        struct rc_ws_chunk c;
        size_t used = 0;
        enum rc_parse res = rc_ws_read(&r, buf + pos, n - pos, &used, &c, err);
        if (res != RC_PARSE_DONE)
            return res;
        pos += used;
        if (c.kind == RC_WS_CHUNK_TEXT || c.kind == RC_WS_CHUNK_BINARY)
            flags[(*nflags)++] = c.compressed;
    }
    return RC_PARSE_DONE;
}

static void test_ws_frame_compressed_rsv1_marks_the_message(void **state)
{
    (void)state;
    uint8_t buf[64];
    bool flags[8];
    size_t nf = 0;
    struct rc_err err = {0};
    /* RSV1 on the first frame, continuation without it; bytes that are not
     * UTF-8 pass (they are deflate data); then a plain message */
    size_t n = put_b0(buf, 0, 0x41, "\xff\xfe", 2);
    n = put_b0(buf, n, 0x80, "\xc0", 1);
    n = put_b0(buf, n, 0x81, "ok", 2);
    assert_int_equal(read_compressed(buf, n, flags, &nf, &err), RC_PARSE_DONE);
    assert_int_equal(nf, 3);
    assert_true(flags[0]);
    assert_true(flags[1]);
    assert_false(flags[2]);
}

static void test_ws_frame_compressed_rsv1_refused_on_control_and_continuation(void **state)
{
    (void)state;
    uint8_t buf[64];
    bool flags[8];
    size_t nf = 0;
    struct rc_err err = {0};
    size_t n = put_b0(buf, 0, 0xC9, "p", 1); /* ping with RSV1 */
    assert_int_equal(read_compressed(buf, n, flags, &nf, &err), RC_PARSE_FAIL);
    assert_int_equal(err.status, 1002);
    assert_non_null(strstr(err.msg, "control"));
    n = put_b0(buf, 0, 0x01, "a", 1);
    n = put_b0(buf, n, 0xC0, "b", 1); /* continuation with RSV1 */
    assert_int_equal(read_compressed(buf, n, flags, &nf, &err), RC_PARSE_FAIL);
    assert_int_equal(err.status, 1002);
    assert_non_null(strstr(err.msg, "continuation"));
    n = put_b0(buf, 0, 0xA1, "a", 1); /* RSV2: still no extension for it */
    assert_int_equal(read_compressed(buf, n, flags, &nf, &err), RC_PARSE_FAIL);
    assert_non_null(strstr(err.msg, "RSV1-3"));
}

static void test_ws_frame_rejects_reserved_opcodes(void **state)
{
    (void)state;
    uint8_t buf[32];
    static const unsigned ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};

    for (size_t i = 0; i < RC_ARRAY_LEN(ops); i++) {
        size_t n = put_b0(buf, 0, (uint8_t)(0x80 | ops[i]), "x", 1);
        expect_fail(buf, n, NULL, 1002, "ws_protocol", "is reserved");
    }
}

static void test_ws_frame_rejects_control_payload_over_125(void **state)
{
    (void)state;
    static uint8_t payload[126];
    uint8_t buf[200];
    static const unsigned ops[] = {RC_WS_OP_CLOSE, RC_WS_OP_PING, RC_WS_OP_PONG};

    for (size_t i = 0; i < RC_ARRAY_LEN(ops); i++) {
        size_t n = put_frame(buf, 0, ops[i], true, payload, 126);
        expect_fail(buf, n, NULL, 1002, "ws_protocol", "longer than 125");
    }
    /* The 64-bit length form is refused too. */
    assert_int_equal(put_frame(buf, 0, RC_WS_OP_PING, true, payload, 3), 9);
    buf[1] = 0x80 | 127;
    expect_fail(buf, 2, NULL, 1002, "ws_protocol", "longer than 125");
}

static void test_ws_frame_accepts_control_payload_of_125(void **state)
{
    (void)state;
    uint8_t payload[125];
    uint8_t buf[200];
    size_t n;
    const struct trace *t;

    memset(payload, 'p', sizeof(payload));
    n = put_frame(buf, 0, RC_WS_OP_PING, true, payload, 125);
    t = run_all_ways(buf, n, NULL);
    assert_int_equal(t->n_ev, 1);
    assert_event(t, 0, RC_WS_CHUNK_PING, payload, 125);
}

static void test_ws_frame_rejects_fragmented_control_frame(void **state)
{
    (void)state;
    uint8_t buf[32];
    static const unsigned ops[] = {RC_WS_OP_CLOSE, RC_WS_OP_PING, RC_WS_OP_PONG};

    for (size_t i = 0; i < RC_ARRAY_LEN(ops); i++) {
        size_t n = put_str(buf, 0, ops[i], false, "x");
        expect_fail(buf, n, NULL, 1002, "ws_protocol", "must not be fragmented");
    }
}

static void test_ws_frame_rejects_continuation_without_message(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_CONT, true, "x");

    expect_fail(buf, n, NULL, 1002, "ws_protocol", "no fragmented message in progress");
}

static void test_ws_frame_rejects_continuation_after_finished_message(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, true, "done");
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_CONT, true, "x");
    t = expect_fail(buf, n, NULL, 1002, "ws_protocol", "no fragmented message in progress");
    assert_int_equal(t->n_ev, 1);
    assert_str_event(t, 0, RC_WS_CHUNK_TEXT, "done");
}

static void test_ws_frame_rejects_new_text_during_fragmented_message(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, false, "a");

    n = put_str(buf, n, RC_WS_OP_TEXT, true, "b");
    expect_fail(buf, n, NULL, 1002, "ws_protocol", "still in progress");
}

static void test_ws_frame_rejects_new_binary_during_fragmented_message(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, false, "a");

    n = put_str(buf, n, RC_WS_OP_BINARY, true, "b");
    expect_fail(buf, n, NULL, 1002, "ws_protocol", "still in progress");
}

static void test_ws_frame_rejects_64bit_length_with_msb_set(void **state)
{
    (void)state;
    uint8_t buf[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x37, 0xfa, 0x21, 0x3d};

    expect_fail(buf, sizeof(buf), NULL, 1002, "ws_protocol", "most significant bit");
}

static void test_ws_frame_rejects_declared_length_over_max_before_payload(void **state)
{
    (void)state;
    const struct rc_ws_limits lim = {10};
    uint8_t hdr[14];
    /* Only the header: the payload never arrives, the limit still applies. */
    size_t n = rc_ws_frame_header_masked(hdr, RC_WS_OP_TEXT, 11, true, MASK);

    expect_fail(hdr, n, &lim, 1009, "ws_too_big", "over the limit of 10");
}

static void test_ws_frame_rejects_fragments_summing_over_max(void **state)
{
    (void)state;
    const struct rc_ws_limits lim = {10};
    uint8_t buf[64];
    size_t n = put_str(buf, 0, RC_WS_OP_BINARY, false, "123456");
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_CONT, true, "78901");
    t = expect_fail(buf, n, &lim, 1009, "ws_too_big", "6+5 bytes");
    assert_true(t->n_chunks >= 1); /* the first fragment was delivered */
    assert_int_equal(t->n_ev, 0);
}

static void test_ws_frame_accepts_message_of_exactly_max(void **state)
{
    (void)state;
    const struct rc_ws_limits lim = {10};
    uint8_t buf[64];
    size_t n = put_str(buf, 0, RC_WS_OP_BINARY, false, "123456");
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_CONT, true, "7890");
    n = put_str(buf, n, RC_WS_OP_TEXT, true, "abcdefghij"); /* the count restarts */
    t = run_all_ways(buf, n, &lim);
    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_int_equal(t->n_ev, 2);
    assert_str_event(t, 0, RC_WS_CHUNK_BINARY, "1234567890");
    assert_str_event(t, 1, RC_WS_CHUNK_TEXT, "abcdefghij");
}

static void test_ws_frame_control_frames_do_not_count_toward_max(void **state)
{
    (void)state;
    const struct rc_ws_limits lim = {4};
    uint8_t buf[64];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, false, "ab");
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_PING, true, "0123456789");
    n = put_str(buf, n, RC_WS_OP_CONT, true, "cd");
    t = run_all_ways(buf, n, &lim);
    assert_int_equal(t->n_ev, 2);
    assert_str_event(t, 1, RC_WS_CHUNK_TEXT, "abcd");
}

/* ---- reader: UTF-8 ------------------------------------------------------- */

static void test_ws_frame_rejects_invalid_utf8_text(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, true, "ab\xC0\xAF");

    expect_fail(buf, n, NULL, 1007, "ws_bad_utf8", "not valid UTF-8");
}

static void test_ws_frame_fails_fast_on_bad_utf8_before_frame_end(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, true, "\xFFrest of a long frame");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    /* header + the first payload byte only */
    assert_int_equal(rc_ws_read(&r, buf, 7, &used, &c, &err), RC_PARSE_FAIL);
    assert_int_equal(err.status, 1007);
    assert_true(n > 7);
}

static void test_ws_frame_accepts_utf8_split_across_fragments(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, false, "\xF0\x9F");
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_CONT, false, "\x98");
    n = put_str(buf, n, RC_WS_OP_CONT, true, "\x80");
    t = run_all_ways(buf, n, NULL);
    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_int_equal(t->n_ev, 1);
    assert_str_event(t, 0, RC_WS_CHUNK_TEXT, "\xF0\x9F\x98\x80");
}

static void test_ws_frame_rejects_invalid_utf8_split_across_fragments(void **state)
{
    (void)state;
    uint8_t buf[64];
    /* ED A0 80 would be the surrogate U+D800; A0 after ED is the bad byte. */
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, false, "ok\xED");
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_CONT, true, "\xA0\x80");
    t = expect_fail(buf, n, NULL, 1007, "ws_bad_utf8", "not valid UTF-8");
    assert_int_equal(t->n_chunks, 1); /* "ok\xED" was valid so far */
}

static void test_ws_frame_rejects_truncated_utf8_at_message_end(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, true, "a\xE2\x82");

    expect_fail(buf, n, NULL, 1007, "ws_bad_utf8", "ends inside a UTF-8 sequence");
}

static void test_ws_frame_rejects_truncated_utf8_at_empty_final_fragment(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, false, "a\xC3");

    n = put_str(buf, n, RC_WS_OP_CONT, true, "");
    expect_fail(buf, n, NULL, 1007, "ws_bad_utf8", "ends inside a UTF-8 sequence");
}

static void test_ws_frame_does_not_check_utf8_in_binary(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_BINARY, true, "\xFF\xC0\xED\xA0\x80\xE2");
    const struct trace *t = run_all_ways(buf, n, NULL);

    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_str_event(t, 0, RC_WS_CHUNK_BINARY, "\xFF\xC0\xED\xA0\x80\xE2");
}

/* ---- reader: control frames ---------------------------------------------- */

static void test_ws_frame_allows_control_frames_between_fragments(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, false, "He");
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_PING, true, "x");
    n = put_str(buf, n, RC_WS_OP_CONT, false, "l");
    n = put_str(buf, n, RC_WS_OP_PONG, true, "y");
    n = put_str(buf, n, RC_WS_OP_CONT, true, "lo");
    t = run_all_ways(buf, n, NULL);
    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_int_equal(t->n_ev, 3);
    assert_str_event(t, 0, RC_WS_CHUNK_PING, "x");
    assert_str_event(t, 1, RC_WS_CHUNK_PONG, "y");
    assert_str_event(t, 2, RC_WS_CHUNK_TEXT, "Hello");
}

static void test_ws_frame_allows_close_between_fragments(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = put_str(buf, 0, RC_WS_OP_BINARY, false, "He");
    const struct trace *t;

    n = put_close(buf, n, 1000, "");
    t = run_all_ways(buf, n, NULL);
    assert_int_equal(t->n_ev, 1);
    assert_int_equal(t->ev[0].kind, RC_WS_CHUNK_CLOSE);
    assert_int_equal(t->ev[0].close_code, 1000);
}

static void test_ws_frame_copies_split_control_payload_into_reader(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_PING, true, "ping!");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, 8, &used, &c, &err), RC_PARSE_MORE);
    assert_int_equal(used, 8);
    assert_int_equal(rc_ws_read(&r, buf + 8, n - 8, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, n - 8);
    assert_int_equal(c.kind, RC_WS_CHUNK_PING);
    assert_true(inside(c.data, c.len, &r, sizeof(r)));
    assert_int_equal(c.len, 5);
    assert_memory_equal(c.data, "ping!", 5);
}

static void test_ws_frame_reads_close_with_code_and_reason(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = put_close(buf, 0, 4001, "bye now");
    const struct trace *t = run_all_ways(buf, n, NULL);

    assert_int_equal(t->n_ev, 1);
    assert_event(t, 0, RC_WS_CHUNK_CLOSE,
                 "\x0F\xA1"
                 "bye now",
                 9);
    assert_int_equal(t->ev[0].close_code, 4001);
}

static void test_ws_frame_reads_close_with_iana_codes_1012_to_1014(void **state)
{
    (void)state;
    static const uint16_t codes[] = {1012, 1013, 1014};
    uint8_t buf[64];

    for (size_t i = 0; i < RC_ARRAY_LEN(codes); i++) {
        size_t n = put_close(buf, 0, codes[i], "restart");
        const struct trace *t = run_all_ways(buf, n, NULL);
        char want[9] = {(char)(codes[i] >> 8), (char)codes[i], 'r', 'e', 's', 't', 'a', 'r', 't'};

        assert_int_equal(t->n_ev, 1);
        assert_event(t, 0, RC_WS_CHUNK_CLOSE, want, 9);
        assert_int_equal(t->ev[0].close_code, codes[i]);
    }
}

static void test_ws_frame_reads_empty_close_as_1005(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_frame(buf, 0, RC_WS_OP_CLOSE, true, "", 0);
    const struct trace *t = run_all_ways(buf, n, NULL);

    assert_int_equal(t->n_ev, 1);
    assert_event(t, 0, RC_WS_CHUNK_CLOSE, "", 0);
    assert_int_equal(t->ev[0].close_code, 1005);
}

static void test_ws_frame_rejects_close_with_one_byte(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_frame(buf, 0, RC_WS_OP_CLOSE, true, "\x03", 1);

    expect_fail(buf, n, NULL, 1002, "ws_protocol", "close payload of 1 byte");
}

static void test_ws_frame_rejects_close_with_bad_code(void **state)
{
    (void)state;
    static const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    uint8_t buf[32];

    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        size_t n = put_frame(buf, 0, RC_WS_OP_CLOSE, true, p, 2);
        char words[32];
        snprintf(words, sizeof(words), "close code %u", (unsigned)bad[i]);
        expect_fail(buf, n, NULL, 1002, "ws_protocol", words);
    }
}

static void test_ws_frame_rejects_close_with_bad_utf8_reason(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_frame(buf, 0, RC_WS_OP_CLOSE, true, "\x03\xE8\xCE\xBA\xFF", 5);

    expect_fail(buf, n, NULL, 1007, "ws_bad_utf8", "close reason");
}

static void test_ws_frame_ignores_input_after_close(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = put_close(buf, 0, 1000, NULL);
    const struct trace *t;

    n = put_str(buf, n, RC_WS_OP_TEXT, true, "late");
    buf[n++] = 0x00; /* even garbage: unmasked, nothing is checked */
    t = run_all_ways(buf, n, NULL);
    assert_int_equal(t->last, RC_PARSE_MORE);
    assert_int_equal(t->n_ev, 1);
    assert_int_equal(t->ev[0].kind, RC_WS_CHUNK_CLOSE);
}

static void test_ws_frame_stays_failed_after_error(void **state)
{
    (void)state;
    uint8_t bad[] = {0x81, 0x05};
    uint8_t good[32];
    size_t n = put_str(good, 0, RC_WS_OP_TEXT, true, "ok");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, bad, sizeof(bad), &used, &c, &err), RC_PARSE_FAIL);
    memset(&err, 0, sizeof(err));
    assert_int_equal(rc_ws_read(&r, good, n, &used, &c, &err), RC_PARSE_FAIL);
    assert_int_equal(err.status, 1002);
    assert_string_equal(err.code, "ws_protocol");
    assert_non_null(strstr(err.msg, "already failed"));
}

static void test_ws_frame_empty_final_frame_yields_empty_chunk(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_TEXT, true, "");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, n, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, 6);
    assert_int_equal(c.kind, RC_WS_CHUNK_TEXT);
    assert_int_equal(c.len, 0);
    assert_true(c.msg_end);
}

static void test_ws_frame_empty_non_final_fragment_yields_no_chunk(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t n = put_str(buf, 0, RC_WS_OP_BINARY, false, "");
    struct rc_ws_reader r;
    struct rc_ws_chunk c;
    struct rc_err err;
    size_t used = 0;

    n = put_str(buf, n, RC_WS_OP_CONT, true, "ab");
    rc_ws_reader_init(&r, NULL);
    assert_int_equal(rc_ws_read(&r, buf, 6, &used, &c, &err), RC_PARSE_MORE);
    assert_int_equal(used, 6);
    assert_true(rc_ws_reader_in_message(&r));
    assert_int_equal(rc_ws_read(&r, buf + 6, n - 6, &used, &c, &err), RC_PARSE_DONE);
    assert_int_equal(used, n - 6);
    assert_int_equal(c.kind, RC_WS_CHUNK_BINARY);
    assert_int_equal(c.len, 2);
    assert_memory_equal(c.data, "ab", 2);
    assert_true(c.msg_end);
}

/* ---- header encoding and masking ----------------------------------------- */

static void test_ws_frame_header_encodes_lengths(void **state)
{
    (void)state;
    uint8_t h[10];

    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_TEXT, 0, true), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_TEXT, 125, true), 2);
    assert_memory_equal(h, "\x81\x7D", 2);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_BINARY, 126, true), 4);
    assert_memory_equal(h, "\x82\x7E\x00\x7E", 4);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_BINARY, 65535, true), 4);
    assert_memory_equal(h, "\x82\x7E\xFF\xFF", 4);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_BINARY, 65536, true), 10);
    assert_memory_equal(h, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_BINARY, 0x0102030405060708ull, true), 10);
    assert_memory_equal(h, "\x82\x7F\x01\x02\x03\x04\x05\x06\x07\x08", 10);
}

static void test_ws_frame_header_encodes_fin_and_opcode(void **state)
{
    (void)state;
    uint8_t h[10];

    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_TEXT, 3, false), 2);
    assert_memory_equal(h, "\x01\x03", 2);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_CONT, 3, true), 2);
    assert_memory_equal(h, "\x80\x03", 2);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_PONG, 0, true), 2);
    assert_memory_equal(h, "\x8A\x00", 2);
    assert_int_equal(rc_ws_frame_header(h, RC_WS_OP_CLOSE, 2, true), 2);
    assert_memory_equal(h, "\x88\x02", 2);
}

static void test_ws_frame_masked_header_encodes_mask(void **state)
{
    (void)state;
    uint8_t h[14];

    assert_int_equal(rc_ws_frame_header_masked(h, RC_WS_OP_TEXT, 5, true, MASK), 6);
    assert_memory_equal(h, "\x81\x85\x37\xfa\x21\x3d", 6);
    assert_int_equal(rc_ws_frame_header_masked(h, RC_WS_OP_BINARY, 256, true, MASK), 8);
    assert_memory_equal(h, "\x82\xFE\x01\x00\x37\xfa\x21\x3d", 8);
    assert_int_equal(rc_ws_frame_header_masked(h, RC_WS_OP_BINARY, 65536, false, MASK), 14);
    assert_memory_equal(h, "\x02\xFF\x00\x00\x00\x00\x00\x01\x00\x00\x37\xfa\x21\x3d", 14);
}

static void test_ws_frame_mask_matches_rfc_example(void **state)
{
    (void)state;
    uint8_t d[] = "Hello";

    rc_ws_mask(d, 5, MASK, 0);
    assert_memory_equal(d, "\x7f\x9f\x4d\x51\x58", 5);
    rc_ws_mask(d, 5, MASK, 0);
    assert_memory_equal(d, "Hello", 5);
}

static void test_ws_frame_mask_honours_offset(void **state)
{
    (void)state;
    uint8_t d[40], ref[40];

    for (size_t off = 0; off < 9; off++) {
        for (size_t len = 0; len <= sizeof(d); len++) {
            for (size_t i = 0; i < len; i++)
                d[i] = ref[i] = (uint8_t)(i * 13 + 1);
            for (size_t i = 0; i < len; i++)
                ref[i] ^= MASK[(off + i) % 4];
            rc_ws_mask(d, len, MASK, off);
            assert_memory_equal(d, ref, len);
        }
    }
}

static void test_ws_frame_mask_in_pieces_equals_one_pass(void **state)
{
    (void)state;
    uint8_t whole[37], parts[37];

    for (size_t k = 0; k <= sizeof(whole); k++) {
        for (size_t i = 0; i < sizeof(whole); i++)
            whole[i] = parts[i] = (uint8_t)(0xA5 ^ i);
        rc_ws_mask(whole, sizeof(whole), MASK, 0);
        rc_ws_mask(parts, k, MASK, 0);
        rc_ws_mask(parts + k, sizeof(parts) - k, MASK, k);
        assert_memory_equal(whole, parts, sizeof(whole));
    }
}

/* ---- accept key ---------------------------------------------------------- */

static void test_ws_accept_key_matches_rfc_example(void **state)
{
    (void)state;
    char out[29];

    assert_int_equal(rc_ws_accept_key(RC_SLICE_LIT("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_ws_accept_key_ignores_surrounding_whitespace(void **state)
{
    (void)state;
    char out[29];

    assert_int_equal(rc_ws_accept_key(RC_SLICE_LIT(" \tdGhlIHNhbXBsZSBub25jZQ== "), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_ws_accept_key_rejects_bad_keys(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 chars */
        "dGhlIHNhbXBsZSBub25jZQ",    /* no padding */
        "dGhlIHNhbXBsZSBub25j!Q==",  /* not base64 */
        "dGhlIHNhbXBsZSBub25jZ.==",  /* not base64, last data char */
        "dGhlIHNhbXBsZSBub25j=Q==",  /* padding inside */
        "dGhlIHNhbXBsZSBub25jZQA=",  /* 17 bytes */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes */
        "dGhlIHNhbXBs ZSBub25jZQ==", /* space inside */
        "c2hvcnQ=",                  /* 5 bytes */
    };
    char out[29];

    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        memset(out, 'x', sizeof(out));
        assert_int_equal(rc_ws_accept_key(rc_slice_make(bad[i], strlen(bad[i])), out), -EINVAL);
        assert_int_equal(out[0], '\0');
    }
}

/* ---- UTF-8 validator ----------------------------------------------------- */

static const char *const utf8_valid[] = {
    "",
    "plain ASCII text that is longer than sixteen bytes",
    "\xC2\x80",                                                /* U+0080 */
    "\xDF\xBF",                                                /* U+07FF */
    "\xE0\xA0\x80",                                            /* U+0800 */
    "\xED\x9F\xBF",                                            /* U+D7FF, below the surrogates */
    "\xEE\x80\x80",                                            /* U+E000, above the surrogates */
    "\xEF\xBF\xBF",                                            /* U+FFFF */
    "\xF0\x90\x80\x80",                                        /* U+10000 */
    "\xF4\x8F\xBF\xBF",                                        /* U+10FFFF */
    "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",            /* kosme */
    "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC-UTF-8!!", /* Autobahn-style */
};

struct bad_utf8 {
    const char *s;
    size_t fail_at; /* index of the first byte that must be refused */
};

static const struct bad_utf8 utf8_invalid[] = {
    {"\x80", 0},             /* lone continuation */
    {"\xBF", 0},             /* lone continuation */
    {"\xC0\x80", 0},         /* overlong U+0000 */
    {"\xC1\xBF", 0},         /* overlong U+007F */
    {"\xE0\x80\x80", 1},     /* overlong U+0000 */
    {"\xE0\x9F\xBF", 1},     /* overlong U+07FF */
    {"\xF0\x80\x80\x80", 1}, /* overlong U+0000 */
    {"\xF0\x8F\xBF\xBF", 1}, /* overlong U+FFFF */
    {"\xED\xA0\x80", 1},     /* U+D800 */
    {"\xED\xBF\xBF", 1},     /* U+DFFF */
    {"\xF4\x90\x80\x80", 1}, /* U+110000 */
    {"\xF5\x80\x80\x80", 0}, /* beyond U+10FFFF */
    {"\xFE", 0},
    {"\xFF", 0},
    {"\xC2\x41", 1}, /* sequence cut short by ASCII */
    {"\xE1\x80\x41", 2},
    {"\xF1\x80\x80\xC2", 3},
    {"abcdefghijklmnop\x80", 16}, /* after the ASCII fast path */
    {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80"
     "edited",
     12},
};

static void test_utf8_accepts_valid_sequences(void **state)
{
    (void)state;
    struct rc_utf8 u;

    for (size_t i = 0; i < RC_ARRAY_LEN(utf8_valid); i++) {
        const char *s = utf8_valid[i];
        rc_utf8_init(&u);
        assert_true(rc_utf8_feed(&u, (const uint8_t *)s, strlen(s)));
        assert_true(rc_utf8_complete(&u));
    }
}

static void test_utf8_accepts_valid_sequences_split_anywhere(void **state)
{
    (void)state;
    struct rc_utf8 u;

    for (size_t i = 0; i < RC_ARRAY_LEN(utf8_valid); i++) {
        const uint8_t *s = (const uint8_t *)utf8_valid[i];
        size_t n = strlen(utf8_valid[i]);
        for (size_t k = 0; k <= n; k++) {
            rc_utf8_init(&u);
            assert_true(rc_utf8_feed(&u, s, k));
            assert_true(rc_utf8_feed(&u, s + k, n - k));
            assert_true(rc_utf8_complete(&u));
        }
    }
}

static void test_utf8_rejects_invalid_sequences(void **state)
{
    (void)state;
    struct rc_utf8 u;

    for (size_t i = 0; i < RC_ARRAY_LEN(utf8_invalid); i++) {
        const char *s = utf8_invalid[i].s;
        rc_utf8_init(&u);
        if (rc_utf8_feed(&u, (const uint8_t *)s, strlen(s)))
            fail_msg("invalid UTF-8 case %zu was accepted", i);
        assert_false(rc_utf8_complete(&u));
    }
}

static void test_utf8_fails_at_first_impossible_byte(void **state)
{
    (void)state;
    struct rc_utf8 u;

    for (size_t i = 0; i < RC_ARRAY_LEN(utf8_invalid); i++) {
        const uint8_t *s = (const uint8_t *)utf8_invalid[i].s;
        size_t at = utf8_invalid[i].fail_at;
        rc_utf8_init(&u);
        assert_true(rc_utf8_feed(&u, s, at));
        if (rc_utf8_feed(&u, s + at, 1))
            fail_msg("invalid UTF-8 case %zu: byte %zu was accepted", i, at);
    }
}

static void test_utf8_fast_path_finds_bad_byte_anywhere(void **state)
{
    (void)state;
    uint8_t buf[41];
    struct rc_utf8 u;

    for (size_t pos = 0; pos < sizeof(buf); pos++) {
        memset(buf, 'a', sizeof(buf));
        buf[pos] = 0xFF;
        rc_utf8_init(&u);
        assert_false(rc_utf8_feed(&u, buf, sizeof(buf)));
    }
}

static void test_utf8_reports_truncated_sequence_incomplete(void **state)
{
    (void)state;
    static const char *const cut[] = {"\xC3", "a\xE2\x82", "\xF0\x9F\x98", "\xF4"};
    struct rc_utf8 u;

    for (size_t i = 0; i < RC_ARRAY_LEN(cut); i++) {
        rc_utf8_init(&u);
        assert_true(rc_utf8_feed(&u, (const uint8_t *)cut[i], strlen(cut[i])));
        assert_false(rc_utf8_complete(&u));
    }
}

static void test_utf8_stays_invalid_after_rejecting(void **state)
{
    (void)state;
    struct rc_utf8 u;

    rc_utf8_init(&u);
    assert_false(rc_utf8_feed(&u, (const uint8_t *)"\xFF", 1));
    assert_false(rc_utf8_feed(&u, (const uint8_t *)"a", 1));
    assert_false(rc_utf8_complete(&u));
}

/* ---- close payloads ------------------------------------------------------ */

static int validate_code(uint16_t code, uint16_t *out)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return rc_ws_close_validate(p, 2, out);
}

static void test_ws_close_validate_accepts_allowed_codes(void **state)
{
    (void)state;
    static const uint16_t ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    uint16_t code = 0;

    for (size_t i = 0; i < RC_ARRAY_LEN(ok); i++) {
        assert_int_equal(validate_code(ok[i], &code), 0);
        assert_int_equal(code, ok[i]);
    }
}

static void test_ws_close_validate_refuses_reserved_codes(void **state)
{
    (void)state;
    static const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
    uint16_t code = 0;

    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        assert_int_equal(validate_code(bad[i], &code), -EPROTO);
        assert_int_equal(code, bad[i]);
    }
}

static void test_ws_close_validate_empty_payload_is_1005(void **state)
{
    (void)state;
    uint16_t code = 0;

    assert_int_equal(rc_ws_close_validate((const uint8_t *)"", 0, &code), 0);
    assert_int_equal(code, 1005);
}

static void test_ws_close_validate_refuses_one_byte(void **state)
{
    (void)state;
    uint16_t code = 0;

    /* The byte after the payload would make a valid code if it were read. */
    const uint8_t buf[2] = {0x03, 0xE8};

    assert_int_equal(rc_ws_close_validate(buf, 1, &code), -EPROTO);
}

static void test_ws_close_validate_checks_reason_utf8(void **state)
{
    (void)state;
    uint16_t code = 0;

    assert_int_equal(rc_ws_close_validate((const uint8_t *)"\x03\xE8\xE2\x82\xAC", 5, &code), 0);
    assert_int_equal(code, 1000);
    assert_int_equal(rc_ws_close_validate((const uint8_t *)"\x03\xE8\xFF", 3, &code), -EILSEQ);
    assert_int_equal(rc_ws_close_validate((const uint8_t *)"\x03\xE8\xE2\x82", 4, &code), -EILSEQ);
}

static void test_ws_close_payload_builds_code_and_reason(void **state)
{
    (void)state;
    uint8_t p[125];

    assert_int_equal(rc_ws_close_payload(p, 1009, "too big"), 9);
    assert_memory_equal(p, "\x03\xF1too big", 9);
    assert_int_equal(rc_ws_close_payload(p, 4000, NULL), 2);
    assert_memory_equal(p, "\x0F\xA0", 2);
    assert_int_equal(rc_ws_close_payload(p, 1005, "ignored"), 0);
}

static void test_ws_close_payload_cuts_reason_at_character_boundary(void **state)
{
    (void)state;
    char reason[200];
    uint8_t p[125];
    uint16_t code = 0;

    /* 122 ASCII bytes then a 3-byte character: only 1 of its bytes would fit. */
    memset(reason, 'r', 122);
    memcpy(reason + 122, "\xE2\x82\xAC tail", 9);
    assert_int_equal(rc_ws_close_payload(p, 1000, reason), 2 + 122);
    assert_int_equal(rc_ws_close_validate(p, 2 + 122, &code), 0);
    /* Exactly 123 ASCII bytes fit whole. */
    memset(reason, 's', 150);
    reason[150] = '\0';
    assert_int_equal(rc_ws_close_payload(p, 1000, reason), 125);
    assert_int_equal(p[124], 's');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_frame_reads_rfc_masked_hello),
        cmocka_unit_test(test_ws_frame_returns_more_on_empty_input),
        cmocka_unit_test(test_ws_frame_keeps_partial_header),
        cmocka_unit_test(test_ws_frame_delivers_payload_in_pieces),
        cmocka_unit_test(test_ws_frame_reads_several_frames_in_one_buffer),
        cmocka_unit_test(test_ws_frame_same_messages_at_every_split),
        cmocka_unit_test(test_ws_frame_same_messages_byte_by_byte),
        cmocka_unit_test(test_ws_frame_reads_7bit_lengths),
        cmocka_unit_test(test_ws_frame_reads_16bit_lengths),
        cmocka_unit_test(test_ws_frame_reads_64bit_lengths),
        cmocka_unit_test(test_ws_frame_accepts_non_minimal_length),
        cmocka_unit_test(test_ws_frame_uses_default_limit_without_limits),
        cmocka_unit_test(test_ws_frame_rejects_unmasked_client_frame),
        cmocka_unit_test(test_ws_frame_rejects_rsv_bits),
        cmocka_unit_test(test_ws_frame_compressed_rsv1_marks_the_message),
        cmocka_unit_test(test_ws_frame_compressed_rsv1_refused_on_control_and_continuation),
        cmocka_unit_test(test_ws_frame_rejects_reserved_opcodes),
        cmocka_unit_test(test_ws_frame_rejects_control_payload_over_125),
        cmocka_unit_test(test_ws_frame_accepts_control_payload_of_125),
        cmocka_unit_test(test_ws_frame_rejects_fragmented_control_frame),
        cmocka_unit_test(test_ws_frame_rejects_continuation_without_message),
        cmocka_unit_test(test_ws_frame_rejects_continuation_after_finished_message),
        cmocka_unit_test(test_ws_frame_rejects_new_text_during_fragmented_message),
        cmocka_unit_test(test_ws_frame_rejects_new_binary_during_fragmented_message),
        cmocka_unit_test(test_ws_frame_rejects_64bit_length_with_msb_set),
        cmocka_unit_test(test_ws_frame_rejects_declared_length_over_max_before_payload),
        cmocka_unit_test(test_ws_frame_rejects_fragments_summing_over_max),
        cmocka_unit_test(test_ws_frame_accepts_message_of_exactly_max),
        cmocka_unit_test(test_ws_frame_control_frames_do_not_count_toward_max),
        cmocka_unit_test(test_ws_frame_rejects_invalid_utf8_text),
        cmocka_unit_test(test_ws_frame_fails_fast_on_bad_utf8_before_frame_end),
        cmocka_unit_test(test_ws_frame_accepts_utf8_split_across_fragments),
        cmocka_unit_test(test_ws_frame_rejects_invalid_utf8_split_across_fragments),
        cmocka_unit_test(test_ws_frame_rejects_truncated_utf8_at_message_end),
        cmocka_unit_test(test_ws_frame_rejects_truncated_utf8_at_empty_final_fragment),
        cmocka_unit_test(test_ws_frame_does_not_check_utf8_in_binary),
        cmocka_unit_test(test_ws_frame_allows_control_frames_between_fragments),
        cmocka_unit_test(test_ws_frame_allows_close_between_fragments),
        cmocka_unit_test(test_ws_frame_copies_split_control_payload_into_reader),
        cmocka_unit_test(test_ws_frame_reads_close_with_code_and_reason),
        cmocka_unit_test(test_ws_frame_reads_empty_close_as_1005),
        cmocka_unit_test(test_ws_frame_rejects_close_with_one_byte),
        cmocka_unit_test(test_ws_frame_reads_close_with_iana_codes_1012_to_1014),
        cmocka_unit_test(test_ws_frame_rejects_close_with_bad_code),
        cmocka_unit_test(test_ws_frame_rejects_close_with_bad_utf8_reason),
        cmocka_unit_test(test_ws_frame_ignores_input_after_close),
        cmocka_unit_test(test_ws_frame_stays_failed_after_error),
        cmocka_unit_test(test_ws_frame_empty_final_frame_yields_empty_chunk),
        cmocka_unit_test(test_ws_frame_empty_non_final_fragment_yields_no_chunk),
        cmocka_unit_test(test_ws_frame_header_encodes_lengths),
        cmocka_unit_test(test_ws_frame_header_encodes_fin_and_opcode),
        cmocka_unit_test(test_ws_frame_masked_header_encodes_mask),
        cmocka_unit_test(test_ws_frame_mask_matches_rfc_example),
        cmocka_unit_test(test_ws_frame_mask_honours_offset),
        cmocka_unit_test(test_ws_frame_mask_in_pieces_equals_one_pass),
        cmocka_unit_test(test_ws_accept_key_matches_rfc_example),
        cmocka_unit_test(test_ws_accept_key_ignores_surrounding_whitespace),
        cmocka_unit_test(test_ws_accept_key_rejects_bad_keys),
        cmocka_unit_test(test_utf8_accepts_valid_sequences),
        cmocka_unit_test(test_utf8_accepts_valid_sequences_split_anywhere),
        cmocka_unit_test(test_utf8_rejects_invalid_sequences),
        cmocka_unit_test(test_utf8_fails_at_first_impossible_byte),
        cmocka_unit_test(test_utf8_fast_path_finds_bad_byte_anywhere),
        cmocka_unit_test(test_utf8_reports_truncated_sequence_incomplete),
        cmocka_unit_test(test_utf8_stays_invalid_after_rejecting),
        cmocka_unit_test(test_ws_close_validate_accepts_allowed_codes),
        cmocka_unit_test(test_ws_close_validate_refuses_reserved_codes),
        cmocka_unit_test(test_ws_close_validate_empty_payload_is_1005),
        cmocka_unit_test(test_ws_close_validate_refuses_one_byte),
        cmocka_unit_test(test_ws_close_validate_checks_reason_utf8),
        cmocka_unit_test(test_ws_close_payload_builds_code_and_reason),
        cmocka_unit_test(test_ws_close_payload_cuts_reason_at_character_boundary),
        cmocka_unit_test(test_ws_frame_client_reads_unmasked_hello),
        cmocka_unit_test(test_ws_frame_client_reads_close_and_16bit_length),
        cmocka_unit_test(test_ws_frame_client_refuses_masked_frame),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
