/* ws_frame.h - RFC 6455 WebSocket frame layer, server side: an incremental frame
 * reader that assembles messages and enforces the protocol's framing rules, frame
 * header encoding, close payloads, the opening handshake's accept key, and an
 * incremental UTF-8 validator. The reader also runs on the client side (the
 * ringcast CLI), where it expects unmasked server frames.
 *
 * Owner: the shard that owns the connection. A reader is plain state embedded in
 *   the connection; it is never shared between threads. Nothing here allocates
 *   (rc_ws_accept_key calls libcrypto, which may allocate internally; it runs
 *   once per handshake, never on the frame path).
 * Invariants of a reader:
 *   - the bytes of the data message in progress never exceed limits.max_message;
 *     the check uses each frame's declared length, before its payload arrives;
 *   - a TEXT message is delivered only as far as it is valid UTF-8 so far;
 *   - once rc_ws_read returned RC_PARSE_FAIL it keeps failing with the same close
 *     code (the connection must be closed); once it delivered a CLOSE chunk it
 *     consumes and ignores everything after it (RFC 6455 5.5.1: nothing follows).
 * Lifetimes: a chunk's data points either into the caller's buffer (valid as long
 *   as that buffer) or into the reader (valid until the next rc_ws_read or
 *   rc_ws_reader_init on that reader).
 * Choice: non-minimal length encodings (e.g. a 16-bit length field holding 5) are
 *   accepted. RFC 6455 5.2 asks senders to use the minimal form but names no
 *   receiver action; accepting costs nothing and the length is still capped. */
#ifndef RINGCAST_WS_FRAME_H
#define RINGCAST_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opcodes (RFC 6455 5.2). */
enum {
    RC_WS_OP_CONT = 0x0,
    RC_WS_OP_TEXT = 0x1,
    RC_WS_OP_BINARY = 0x2,
    RC_WS_OP_CLOSE = 0x8,
    RC_WS_OP_PING = 0x9,
    RC_WS_OP_PONG = 0xA,
};

/* Close codes this layer produces or names (RFC 6455 7.4.1). */
enum {
    RC_WS_CLOSE_NORMAL = 1000,
    RC_WS_CLOSE_GOING_AWAY = 1001,
    RC_WS_CLOSE_PROTOCOL = 1002,
    RC_WS_CLOSE_UNSUPPORTED = 1003,
    RC_WS_CLOSE_NO_STATUS = 1005, /* never sent; reported for an empty close payload */
    RC_WS_CLOSE_BAD_DATA = 1007,
    RC_WS_CLOSE_POLICY = 1008,
    RC_WS_CLOSE_TOO_BIG = 1009,
    RC_WS_CLOSE_INTERNAL = 1011,
};

#define RC_WS_MAX_CONTROL_PAYLOAD 125
#define RC_WS_MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask) */
/* Used when rc_ws_reader_init gets no limits. */
#define RC_WS_DEFAULT_MAX_MESSAGE ((size_t)1 << 20)

struct rc_ws_limits {
    size_t max_message; /* bytes of an assembled data message; over -> close 1009 */
};

enum rc_ws_chunk_kind {
    RC_WS_CHUNK_TEXT,
    RC_WS_CHUNK_BINARY,
    RC_WS_CHUNK_PING,
    RC_WS_CHUNK_PONG,
    RC_WS_CHUNK_CLOSE,
};

struct rc_ws_chunk {
    enum rc_ws_chunk_kind kind;
    /* TEXT/BINARY: a piece of the message payload, already unmasked in place
     * inside the caller's buffer. Control frames: the whole payload (<= 125
     * bytes), in the caller's buffer or copied into the reader's own buffer. */
    const uint8_t *data;
    size_t len;
    bool msg_end;        /* TEXT/BINARY: this piece ends the message */
    bool compressed;     /* TEXT/BINARY: the message had RSV1 (permessage-deflate): data
                            is deflate data, not yet checked as UTF-8 */
    uint16_t close_code; /* CLOSE: the code (1005 if the payload was empty);
                            the reason is data + 2 .. data + len, valid UTF-8 */
};

/* Incremental UTF-8 validator (Unicode 15 table 3-7, the well-formed byte
 * sequences): refuses overlong forms, surrogates U+D800..DFFF and code points
 * above U+10FFFF, and fails at the first byte that cannot continue any valid
 * sequence (RFC 6455 8.1: fail fast). state 0 = between characters. */
struct rc_utf8 {
    uint32_t state; /* continuation bytes still expected; RC_UTF8_REJECT once invalid */
    uint8_t lo, hi; /* allowed range of the next continuation byte */
};
#define RC_UTF8_REJECT UINT32_MAX

void rc_utf8_init(struct rc_utf8 *u);
/* Feed n more bytes. false = invalid; the validator then stays invalid. */
bool rc_utf8_feed(struct rc_utf8 *u, const uint8_t *p, size_t n);
/* true when all bytes fed so far are valid and no sequence is left incomplete. */
bool rc_utf8_complete(const struct rc_utf8 *u);

/* All state of one connection's incoming frame stream; no heap. Fields are
 * private to ws_frame.c. */
struct rc_ws_reader {
    uint64_t max_message;
    uint64_t msg_len;    /* declared payload bytes of the data message so far */
    uint64_t frame_left; /* payload bytes of the current frame not yet consumed */
    const char *fail_code;
    struct rc_utf8 utf8; /* of the TEXT message in progress */
    uint16_t fail_status;
    uint8_t state;       /* enum in ws_frame.c */
    uint8_t opcode;      /* of the current frame */
    uint8_t msg_opcode;  /* TEXT or BINARY while a message is in progress, else 0 */
    bool fin;            /* of the current frame */
    bool server_frames;  /* a client's reader: frames come unmasked (rc_ws_reader_init_client) */
    bool rsv1_ok;        /* permessage-deflate agreed: RSV1 allowed on a message's first frame */
    bool msg_compressed; /* the data message in progress had RSV1 */
    uint8_t hdr_have, hdr_need;
    uint8_t mask_off; /* payload bytes of the current frame consumed, mod 4 */
    uint8_t ctrl_have;
    uint8_t mask[4];
    uint8_t hdr[RC_WS_MAX_HEADER];
    uint8_t ctrl[RC_WS_MAX_CONTROL_PAYLOAD];
};

/* lim may be NULL (RC_WS_DEFAULT_MAX_MESSAGE). */
void rc_ws_reader_init(struct rc_ws_reader *r, const struct rc_ws_limits *lim);

/* Consume client frames from buf[0..len). The caller owns buf and lets the
 * reader unmask it in place. Returns:
 *   RC_PARSE_DONE: one chunk is in *out, *consumed bytes were used; call again
 *     with buf + *consumed for the rest.
 *   RC_PARSE_MORE: all len bytes were used (*consumed == len; a partial header
 *     or control payload is kept inside the reader), no chunk.
 *   RC_PARSE_FAIL: protocol error; err->status is the close code to send
 *     (1002 protocol, 1007 bad UTF-8, 1009 too big), err->code "ws_protocol",
 *     "ws_bad_utf8" or "ws_too_big", err->msg names the rule broken.
 * A data frame with an empty payload yields a chunk (len 0, msg_end true) only
 * when it ends a message. err may be NULL. */
enum rc_parse rc_ws_read(struct rc_ws_reader *r, uint8_t *buf, size_t len, size_t *consumed,
                         struct rc_ws_chunk *out, struct rc_err *err);

/* The same for the client side (the ringcast CLI's subscribe): frames from a
 * server must be unmasked, a masked one fails with 1002 (RFC 6455 5.1); every
 * other rule is the same. */
void rc_ws_reader_init_client(struct rc_ws_reader *r, const struct rc_ws_limits *lim);

/* permessage-deflate was agreed (RFC 7692 6): RSV1 may mark a data message's
 * first frame as compressed (chunk.compressed); such a message is not checked
 * as UTF-8 here (the caller inflates and checks it). RSV1 on a control or
 * continuation frame still fails with 1002, as RSV2/RSV3 always do. */
void rc_ws_reader_allow_compressed(struct rc_ws_reader *r);

/* A CLOSE chunk was delivered; further input is ignored. */
bool rc_ws_reader_is_closed(const struct rc_ws_reader *r);
/* A fragmented data message is in progress (started, final piece not delivered). */
bool rc_ws_reader_in_message(const struct rc_ws_reader *r);

/* Server-to-client frame header (unmasked). payload_len must be < 2^63.
 * opcode may carry RC_WS_RSV1 (0x40, ws_deflate.h) for a compressed message.
 * Returns the header length, 2..10. */
size_t rc_ws_frame_header(uint8_t out[10], unsigned opcode, uint64_t payload_len, bool fin);
/* Client-to-server (masked) header, for tests and the bench load generator;
 * the payload must then be masked with rc_ws_mask(payload, n, mask, 0).
 * Returns the header length, 6..14. */
size_t rc_ws_frame_header_masked(uint8_t out[14], unsigned opcode, uint64_t payload_len, bool fin,
                                 const uint8_t mask[4]);
/* XOR data with the masking key, starting at key byte (offset % 4): the offset
 * is the position of data[0] within the frame payload. Masking twice unmasks. */
void rc_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2). Leading and
 * trailing spaces/tabs are ignored; the rest must be the base64 of exactly 16
 * bytes (24 chars ending "=="), else -EINVAL. Writes 28 chars + NUL to out.
 * Returns 0, -EINVAL, or -EIO if libcrypto fails. */
RC_MUST_CHECK int rc_ws_accept_key(struct rc_slice key, char out[29]);

/* Validate a close frame payload (RFC 6455 5.5.1, 7.4): empty is fine (*code =
 * 1005); one byte is refused; the code must be 1000-1003, 1007-1011 or
 * 3000-4999 (1004-1006, 1012-2999 and 1015 are refused); the reason must be
 * valid UTF-8. Returns 0, -EPROTO (bad length or code) or -EILSEQ (bad reason).
 * *code is set whenever a code could be read. */
RC_MUST_CHECK int rc_ws_close_validate(const uint8_t *payload, size_t len, uint16_t *code);

/* Build a close payload: the code big-endian, then reason (may be NULL) cut to
 * 123 bytes at a UTF-8 character boundary. code 1005 (no status) gives an empty
 * payload. Returns the payload length, 0..125. */
size_t rc_ws_close_payload(uint8_t out[125], uint16_t code, const char *reason);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_WS_FRAME_H */
