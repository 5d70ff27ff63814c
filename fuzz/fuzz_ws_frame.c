/* fuzz_ws_frame.c - libFuzzer harness for the WebSocket frame reader.
 * Input: byte 0 picks max_message (low 7 bits) and the side (top bit: the client's
 * reader of unmasked server frames), byte 1 the split point (high 7 bits) and
 * permessage-deflate (low bit: RSV1 allowed; compressed messages are inflated
 * with rc_ws_inflate, bounded by max_message), the rest is the byte stream, fed
 * in two pieces. Checks: consumed <= len; DONE consumes;
 * MORE consumes all; chunk data lies inside the piece or inside the reader; a
 * data message never exceeds max_message; control payloads <= 125; TEXT pieces
 * are valid UTF-8 (checked again with a separate validator) and complete at
 * msg_end; failures carry a known close code and keep failing. Also checks
 * that the UTF-8 validator gives the same verdict whole and byte by byte. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/ws_deflate.h"
#include "ringcast/ws_frame.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct state {
    struct rc_ws_reader r;
    size_t max_message;
    size_t msg_bytes;
    bool in_msg;
    enum rc_ws_chunk_kind msg_kind;
    struct rc_utf8 text;
    bool failed;
    bool compressed; /* the message in progress is (RSV1) */
    bool zfailed;    /* its inflation failed: the session would have closed */
    struct rc_ws_inflater *zi;
    uint8_t *out;
    size_t out_len, out_cap;
};

static bool inside(const uint8_t *p, size_t n, const void *base, size_t size)
{
    const uint8_t *b = base;
    return p >= b && n <= size && (size_t)(p - b) <= size - n;
}

static void check_chunk(struct state *s, const struct rc_ws_chunk *c)
{
    if (c->kind == RC_WS_CHUNK_TEXT || c->kind == RC_WS_CHUNK_BINARY) {
        if (!s->in_msg) {
            s->in_msg = true;
            s->msg_kind = c->kind;
            s->msg_bytes = 0;
            s->compressed = c->compressed;
            rc_utf8_init(&s->text);
        }
        CHECK(c->kind == s->msg_kind);
        CHECK(c->compressed == s->compressed);
        s->msg_bytes += c->len;
        CHECK(s->msg_bytes <= s->max_message);
        if (s->compressed) {
            CHECK(s->zi != NULL); /* RSV1 only passes when it was allowed */
            if (!s->zfailed) {
                struct rc_ws_outbuf ob = {&s->out, &s->out_len, &s->out_cap};
                int rc =
                    rc_ws_inflate(s->zi, c->data, c->len, c->msg_end, false, ob, s->max_message);
                CHECK(rc == 0 || rc == -E2BIG || rc == -EBADMSG);
                CHECK(s->out_len <= s->max_message || rc == -E2BIG);
                CHECK(s->out_cap <= s->max_message + 1 || s->out_cap == 0);
                s->zfailed = rc < 0;
            }
            if (c->msg_end) {
                s->out_len = 0;
                s->in_msg = false;
            }
            CHECK(rc_ws_reader_in_message(&s->r) == s->in_msg);
            return;
        }
        if (c->kind == RC_WS_CHUNK_TEXT)
            CHECK(rc_utf8_feed(&s->text, c->data, c->len));
        if (c->msg_end) {
            if (c->kind == RC_WS_CHUNK_TEXT)
                CHECK(rc_utf8_complete(&s->text));
            s->in_msg = false;
        }
        CHECK(rc_ws_reader_in_message(&s->r) == s->in_msg);
        return;
    }
    CHECK(!c->msg_end);
    CHECK(c->len <= RC_WS_MAX_CONTROL_PAYLOAD);
    if (c->kind == RC_WS_CHUNK_CLOSE) {
        uint16_t code = 0;
        CHECK(rc_ws_close_validate(c->data, c->len, &code) == 0);
        CHECK(code == c->close_code);
        CHECK(rc_ws_reader_is_closed(&s->r));
    }
}

static void feed(struct state *s, uint8_t *buf, size_t len)
{
    size_t pos = 0;

    while (!s->failed) {
        struct rc_ws_chunk c;
        struct rc_err err;
        size_t used = SIZE_MAX;
        enum rc_parse res = rc_ws_read(&s->r, buf + pos, len - pos, &used, &c, &err);

        if (res == RC_PARSE_FAIL) {
            CHECK(err.status == 1002 || err.status == 1007 || err.status == 1009);
            CHECK(err.code != NULL && err.msg[0] != '\0');
            int status = err.status;
            CHECK(rc_ws_read(&s->r, buf, len, &used, &c, &err) == RC_PARSE_FAIL);
            CHECK(err.status == status);
            s->failed = true;
            return;
        }
        CHECK(used <= len - pos);
        if (res == RC_PARSE_MORE) {
            CHECK(pos + used == len);
            return;
        }
        CHECK(res == RC_PARSE_DONE);
        CHECK(used > 0);
        CHECK(inside(c.data, c.len, buf + pos, len - pos) ||
              inside(c.data, c.len, &s->r, sizeof(s->r)));
        check_chunk(s, &c);
        pos += used;
    }
}

static void check_utf8(const uint8_t *p, size_t n)
{
    struct rc_utf8 whole, bytes;
    bool ok_whole, ok_bytes = true;

    rc_utf8_init(&whole);
    rc_utf8_init(&bytes);
    ok_whole = rc_utf8_feed(&whole, p, n);
    for (size_t i = 0; i < n && ok_bytes; i++)
        ok_bytes = rc_utf8_feed(&bytes, p + i, 1);
    CHECK(ok_whole == ok_bytes);
    CHECK(rc_utf8_complete(&whole) == rc_utf8_complete(&bytes));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct state s;
    size_t n, split;
    uint8_t *first, *second;

    if (size < 2)
        return 0;
    n = size - 2;
    split = (size_t)(data[1] >> 1) % (n + 1);
    s.max_message = (size_t)(data[0] & 0x7f) * 74;
    struct rc_ws_limits lim = {s.max_message};
    if (data[0] & 0x80)
        rc_ws_reader_init_client(&s.r, &lim); /* server frames, as the CLI reads them */
    else
        rc_ws_reader_init(&s.r, &lim);
    s.in_msg = false;
    s.failed = false;
    s.zfailed = false;
    free(s.out); /* each input its own output buffer, sized by its own max_message */
    s.out = NULL;
    s.out_len = s.out_cap = 0;
    rc_ws_inflater_free(s.zi); /* a fresh window per input: runs stay independent */
    s.zi = NULL;
    if (data[1] & 1) {
        rc_ws_reader_allow_compressed(&s.r);
        s.zi = rc_ws_inflater_new();
        if (!s.zi)
            return 0;
    }

    /* Exact-size heap copies of both pieces (the reader unmasks in place) so
     * ASan sees any access past a piece. */
    first = malloc(split ? split : 1);
    second = malloc(n - split ? n - split : 1);
    if (first && second) {
        memcpy(first, data + 2, split);
        memcpy(second, data + 2 + split, n - split);
        feed(&s, first, split);
        feed(&s, second, n - split);
    }
    free(second);
    free(first);

    check_utf8(data + 2, n);
    return 0;
}
