/* ws_frame.c - RFC 6455 frame reader, header encoding, close payloads, accept
 * key and UTF-8 validation. See ws_frame.h for the contract. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "ringcast/ws_frame.h"

enum reader_state {
    ST_HEADER,  /* collecting header bytes into r->hdr */
    ST_PAYLOAD, /* frame header done; r->frame_left payload bytes to go */
    ST_CLOSED,  /* a CLOSE chunk was delivered; input is ignored */
    ST_FAILED,  /* a protocol error was reported; it is reported again */
};

/* The header promises a small, heap-free reader; keep it that way. */
_Static_assert(sizeof(struct rc_ws_reader) <= 208, "rc_ws_reader grew past ~200 bytes");

#define CODE_PROTOCOL "ws_protocol"
#define CODE_BAD_UTF8 "ws_bad_utf8"
#define CODE_TOO_BIG "ws_too_big"

/* ---- UTF-8 ------------------------------------------------------------- */

void rc_utf8_init(struct rc_utf8 *u)
{
    u->state = 0;
    u->lo = 0x80;
    u->hi = 0xBF;
}

/* Start a multi-byte sequence at lead byte b (>= 0x80). The allowed range of the
 * second byte is what rules out overlongs (E0, F0), surrogates (ED) and values
 * above U+10FFFF (F4), so a bad sequence fails at its first impossible byte. */
static bool utf8_lead(struct rc_utf8 *u, uint8_t b)
{
    u->lo = 0x80;
    u->hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        u->state = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        u->state = 2;
        if (b == 0xE0)
            u->lo = 0xA0;
        else if (b == 0xED)
            u->hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        u->state = 3;
        if (b == 0xF0)
            u->lo = 0x90;
        else if (b == 0xF4)
            u->hi = 0x8F;
    } else {
        /* 80..BF: stray continuation; C0, C1: overlong; F5..FF: beyond U+10FFFF */
        return false;
    }
    return true;
}

static bool is_ascii8(const uint8_t *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof(w));
    return (w & 0x8080808080808080ull) == 0;
}

bool rc_utf8_feed(struct rc_utf8 *u, const uint8_t *p, size_t n)
{
    size_t i = 0;

    if (u->state == RC_UTF8_REJECT)
        return false;
    while (i < n) {
        if (u->state == 0) {
            /* Fast path: skip ASCII eight bytes at a time. */
            while (i + 8 <= n && is_ascii8(p + i))
                i += 8;
            if (i == n)
                break;
            uint8_t b = p[i++];
            if (b < 0x80)
                continue;
            if (!utf8_lead(u, b))
                goto out_reject;
            continue;
        }
        uint8_t b = p[i++];
        if (b < u->lo || b > u->hi)
            goto out_reject;
        u->state--;
        u->lo = 0x80;
        u->hi = 0xBF;
    }
    return true;

out_reject:
    u->state = RC_UTF8_REJECT;
    return false;
}

bool rc_utf8_complete(const struct rc_utf8 *u)
{
    return u->state == 0;
}

/* ---- masking and header encoding --------------------------------------- */

void rc_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
    uint8_t k8[8];
    uint64_t k, w;
    size_t i = 0;

    for (size_t j = 0; j < 8; j++)
        k8[j] = mask[(offset + j) & 3];
    memcpy(&k, k8, sizeof(k));
    /* 8 is a multiple of 4, so the key phase is the same at every word. */
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, data + i, 8);
        w ^= k;
        memcpy(data + i, &w, 8);
    }
    for (; i < len; i++)
        data[i] ^= k8[i & 7];
}

static size_t put_header(uint8_t *out, unsigned opcode, uint64_t payload_len, bool fin,
                         uint8_t mask_bit)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x4F)); /* 0x40: RSV1 (RFC 7692) */
    if (payload_len < 126) {
        out[1] = (uint8_t)(mask_bit | payload_len);
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = mask_bit | 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

size_t rc_ws_frame_header(uint8_t out[10], unsigned opcode, uint64_t payload_len, bool fin)
{
    return put_header(out, opcode, payload_len, fin, 0);
}

size_t rc_ws_frame_header_masked(uint8_t out[14], unsigned opcode, uint64_t payload_len, bool fin,
                                 const uint8_t mask[4])
{
    size_t n = put_header(out, opcode, payload_len, fin, 0x80);

    memcpy(out + n, mask, 4);
    return n + 4;
}

/* ---- close payloads ----------------------------------------------------- */

static bool close_code_allowed(unsigned code)
{
    /* RFC 6455 7.4.1/7.4.2: 1004-1006 and 1015 must never be sent; 1012 (service
     * restart), 1013 (try again later) and 1014 (bad gateway) are registered in the
     * IANA WebSocket Close Code registry (RFC 6455 11.7); the rest of 1016-2999 stays
     * reserved; 3000-4999 are for libraries and apps. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int rc_ws_close_validate(const uint8_t *payload, size_t len, uint16_t *code)
{
    struct rc_utf8 u;
    uint16_t c;

    if (len == 0) {
        *code = RC_WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1 || len > RC_WS_MAX_CONTROL_PAYLOAD)
        return -EPROTO;
    c = (uint16_t)(payload[0] << 8 | payload[1]);
    *code = c;
    if (!close_code_allowed(c))
        return -EPROTO;
    rc_utf8_init(&u);
    if (!rc_utf8_feed(&u, payload + 2, len - 2) || !rc_utf8_complete(&u))
        return -EILSEQ;
    return 0;
}

size_t rc_ws_close_payload(uint8_t out[125], uint16_t code, const char *reason)
{
    size_t n = 0;

    if (code == RC_WS_CLOSE_NO_STATUS)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason) {
        n = strnlen(reason, RC_WS_MAX_CONTROL_PAYLOAD - 1);
        if (n > RC_WS_MAX_CONTROL_PAYLOAD - 2) {
            n = RC_WS_MAX_CONTROL_PAYLOAD - 2;
            /* Do not cut a character in two: back up to its lead byte. */
            while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(out + 2, reason, n);
    }
    return 2 + n;
}

/* ---- accept key --------------------------------------------------------- */

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int rc_ws_accept_key(struct rc_slice key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[24 + sizeof(guid) - 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    const char *p = key.p;
    size_t n = key.n;

    out[0] = '\0';
    while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    /* 16 bytes encode as 22 base64 chars + "==". The low 4 bits of the 22nd char
     * are padding; RFC 4648 3.5 lets a decoder ignore them, and so do we. */
    if (n != 24 || p[22] != '=' || p[23] != '=')
        return -EINVAL;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char(p[i]))
            return -EINVAL;

    memcpy(buf, p, 24);
    memcpy(buf + 24, guid, sizeof(guid) - 1);
    if (EVP_Digest(buf, sizeof(buf), md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
        return -EIO;
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != 28)
        return -EIO;
    return 0;
}

/* ---- reader ------------------------------------------------------------- */

void rc_ws_reader_init(struct rc_ws_reader *r, const struct rc_ws_limits *lim)
{
    memset(r, 0, sizeof(*r));
    r->max_message = lim ? lim->max_message : RC_WS_DEFAULT_MAX_MESSAGE;
    r->state = ST_HEADER;
    r->hdr_need = 2;
    rc_utf8_init(&r->utf8);
}

void rc_ws_reader_init_client(struct rc_ws_reader *r, const struct rc_ws_limits *lim)
{
    rc_ws_reader_init(r, lim);
    r->server_frames = true;
}

void rc_ws_reader_allow_compressed(struct rc_ws_reader *r)
{
    r->rsv1_ok = true;
}

bool rc_ws_reader_is_closed(const struct rc_ws_reader *r)
{
    return r->state == ST_CLOSED;
}

bool rc_ws_reader_in_message(const struct rc_ws_reader *r)
{
    return r->msg_opcode != 0;
}

/* Record a protocol error: the reader fails from now on with the same code. */
RC_PRINTF(5, 6)
static enum rc_parse reject(struct rc_ws_reader *r, struct rc_err *err, uint16_t status,
                            const char *code, const char *fmt, ...)
{
    va_list ap;

    r->state = ST_FAILED;
    r->fail_status = status;
    r->fail_code = code;
    if (err) {
        err->status = status;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return RC_PARSE_FAIL;
}

static bool is_control(unsigned opcode)
{
    return opcode & 0x8;
}

/* Rules decided by the first two header bytes (RFC 6455 5.2, 5.4, 5.5). */
static enum rc_parse check_first_bytes(struct rc_ws_reader *r, struct rc_err *err)
{
    uint8_t b0 = r->hdr[0], b1 = r->hdr[1];
    unsigned opcode = b0 & 0x0F, len7 = b1 & 0x7F;
    bool fin = b0 & 0x80;

    bool rsv1 = b0 & 0x40;
    if (rsv1 && r->rsv1_ok && (is_control(opcode) || opcode == RC_WS_OP_CONT))
        return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                      "websocket: RSV1 (compressed) is set on a %s frame; permessage-deflate "
                      "marks only the first frame of a data message (RFC 7692 6.1)",
                      is_control(opcode) ? "control" : "continuation");
    if (b0 & (r->rsv1_ok ? 0x30 : 0x70))
        return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                      "websocket: frame has reserved bits RSV1-3 = 0x%x set, but no extension "
                      "was negotiated (RFC 6455 5.2); clear them",
                      (unsigned)(b0 >> 4) & 7);
    if ((opcode >= 0x3 && opcode <= 0x7) || opcode >= 0xB)
        return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                      "websocket: opcode 0x%x is reserved (RFC 6455 5.2); use 0x0-0x2 or 0x8-0xA",
                      opcode);
    bool masked = b1 & 0x80;
    if (!masked && !r->server_frames)
        return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                      "websocket: client frame is not masked (RFC 6455 5.1); a client must mask "
                      "every frame it sends");
    if (masked && r->server_frames)
        return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                      "websocket: server frame is masked (RFC 6455 5.1); a server must not mask "
                      "the frames it sends");
    if (is_control(opcode)) {
        if (!fin)
            return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                          "websocket: control frame (opcode 0x%x) is fragmented (FIN clear); "
                          "control frames must not be fragmented (RFC 6455 5.5)",
                          opcode);
        if (len7 > RC_WS_MAX_CONTROL_PAYLOAD)
            return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                          "websocket: control frame (opcode 0x%x) payload is longer than 125 "
                          "bytes (RFC 6455 5.5)",
                          opcode);
    } else if (opcode == RC_WS_OP_CONT && r->msg_opcode == 0) {
        return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                      "websocket: continuation frame arrived with no fragmented message in "
                      "progress (RFC 6455 5.4); start a message with a text or binary frame");
    } else if (opcode != RC_WS_OP_CONT && r->msg_opcode != 0) {
        return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                      "websocket: new %s frame arrived while a fragmented message is still in "
                      "progress (RFC 6455 5.4); finish it with continuation frames first",
                      opcode == RC_WS_OP_TEXT ? "text" : "binary");
    }
    r->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0));
    return RC_PARSE_MORE;
}

/* The header is complete: decode the length, check the caps, enter the payload. */
static enum rc_parse finish_header(struct rc_ws_reader *r, struct rc_err *err)
{
    unsigned len7 = r->hdr[1] & 0x7F;
    uint64_t plen = len7;
    size_t pos = 2;

    if (len7 == 126) {
        plen = (uint64_t)r->hdr[2] << 8 | r->hdr[3];
        pos = 4;
    } else if (len7 == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | r->hdr[2 + i];
        pos = 10;
        if (plen >> 63)
            return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                          "websocket: 64-bit payload length has its most significant bit set "
                          "(RFC 6455 5.2)");
    }
    r->opcode = r->hdr[0] & 0x0F;
    r->fin = r->hdr[0] & 0x80;
    if (r->server_frames)
        memset(r->mask, 0, sizeof(r->mask)); /* unmasking with zeros changes nothing */
    else
        memcpy(r->mask, r->hdr + pos, 4);
    if (!is_control(r->opcode)) {
        /* Cap on the declared length, before any payload is read. */
        if (plen > r->max_message - r->msg_len)
            return reject(r, err, RC_WS_CLOSE_TOO_BIG, CODE_TOO_BIG,
                          "websocket: message would be %llu+%llu bytes, over the limit of %llu "
                          "(max_message); send smaller messages",
                          (unsigned long long)r->msg_len, (unsigned long long)plen,
                          (unsigned long long)r->max_message);
        r->msg_len += plen;
        if (r->opcode != RC_WS_OP_CONT) {
            r->msg_opcode = r->opcode;
            r->msg_compressed = r->hdr[0] & 0x40;
            rc_utf8_init(&r->utf8);
        }
    }
    r->frame_left = plen;
    r->mask_off = 0;
    r->ctrl_have = 0;
    r->hdr_have = 0;
    r->hdr_need = 2;
    r->state = ST_PAYLOAD;
    return RC_PARSE_DONE;
}

/* Collect header bytes; DONE once the whole header is in and checked. */
static enum rc_parse read_header(struct rc_ws_reader *r, const uint8_t *buf, size_t len,
                                 size_t *used, struct rc_err *err)
{
    size_t pos = 0;

    while (pos < len) {
        size_t take = r->hdr_need - r->hdr_have;
        if (take > len - pos)
            take = len - pos;
        memcpy(r->hdr + r->hdr_have, buf + pos, take);
        r->hdr_have = (uint8_t)(r->hdr_have + take);
        pos += take;
        *used = pos;
        if (r->hdr_have < r->hdr_need)
            break;
        if (r->hdr_have == 2) {
            if (check_first_bytes(r, err) == RC_PARSE_FAIL)
                return RC_PARSE_FAIL;
            if (r->hdr_need > 2)
                continue;
            /* an unmasked frame of 0..125 bytes (client side): its header is complete */
        }
        return finish_header(r, err);
    }
    *used = pos;
    return RC_PARSE_MORE;
}

/* The current data frame's payload is all delivered. */
static void end_data_frame(struct rc_ws_reader *r, struct rc_ws_chunk *out)
{
    r->state = ST_HEADER;
    out->msg_end = r->fin;
    if (r->fin) {
        r->msg_opcode = 0;
        r->msg_len = 0;
    }
}

/* Deliver up to len payload bytes of the current data frame, unmasked in place.
 * MORE means an empty non-final frame: nothing to deliver. */
static enum rc_parse read_data(struct rc_ws_reader *r, uint8_t *buf, size_t len, size_t *used,
                               struct rc_ws_chunk *out, struct rc_err *err)
{
    size_t n = r->frame_left < len ? (size_t)r->frame_left : len;

    rc_ws_mask(buf, n, r->mask, r->mask_off);
    r->mask_off = (uint8_t)((r->mask_off + n) & 3);
    r->frame_left -= n;
    *used = n;
    out->compressed = r->msg_compressed;
    if (r->msg_opcode == RC_WS_OP_TEXT && !r->msg_compressed) {
        if (!rc_utf8_feed(&r->utf8, buf, n))
            return reject(r, err, RC_WS_CLOSE_BAD_DATA, CODE_BAD_UTF8,
                          "websocket: text message is not valid UTF-8 (RFC 6455 8.1); send "
                          "binary frames for non-text data");
        if (r->frame_left == 0 && r->fin && !rc_utf8_complete(&r->utf8))
            return reject(r, err, RC_WS_CLOSE_BAD_DATA, CODE_BAD_UTF8,
                          "websocket: text message ends inside a UTF-8 sequence (RFC 6455 8.1)");
    }
    out->kind = r->msg_opcode == RC_WS_OP_TEXT ? RC_WS_CHUNK_TEXT : RC_WS_CHUNK_BINARY;
    out->data = buf;
    out->len = n;
    out->msg_end = false;
    out->close_code = 0;
    if (r->frame_left == 0) {
        end_data_frame(r, out);
        if (n == 0 && !out->msg_end)
            return RC_PARSE_MORE;
    }
    return RC_PARSE_DONE;
}

/* Gather a control frame's payload (in place when it is all in buf, else into
 * r->ctrl) and deliver it once complete. */
static enum rc_parse read_control(struct rc_ws_reader *r, uint8_t *buf, size_t len, size_t *used,
                                  struct rc_ws_chunk *out, struct rc_err *err)
{
    size_t n = r->frame_left < len ? (size_t)r->frame_left : len;
    const uint8_t *data;
    size_t dlen;

    rc_ws_mask(buf, n, r->mask, r->mask_off);
    r->mask_off = (uint8_t)((r->mask_off + n) & 3);
    r->frame_left -= n;
    *used = n;
    if (r->ctrl_have == 0 && r->frame_left == 0) {
        data = buf;
        dlen = n;
    } else {
        memcpy(r->ctrl + r->ctrl_have, buf, n);
        r->ctrl_have = (uint8_t)(r->ctrl_have + n);
        if (r->frame_left > 0)
            return RC_PARSE_MORE;
        data = r->ctrl;
        dlen = r->ctrl_have;
    }
    r->state = ST_HEADER;
    out->data = data;
    out->len = dlen;
    out->msg_end = false;
    out->close_code = 0;
    if (r->opcode == RC_WS_OP_PING) {
        out->kind = RC_WS_CHUNK_PING;
    } else if (r->opcode == RC_WS_OP_PONG) {
        out->kind = RC_WS_CHUNK_PONG;
    } else {
        uint16_t code = 0;
        int rc = rc_ws_close_validate(data, dlen, &code);
        if (rc == -EILSEQ)
            return reject(r, err, RC_WS_CLOSE_BAD_DATA, CODE_BAD_UTF8,
                          "websocket: close reason is not valid UTF-8 (RFC 6455 5.5.1)");
        if (rc == -EPROTO && dlen == 1)
            return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                          "websocket: close payload of 1 byte; it must be empty or start with a "
                          "2-byte code (RFC 6455 5.5.1)");
        if (rc < 0)
            return reject(r, err, RC_WS_CLOSE_PROTOCOL, CODE_PROTOCOL,
                          "websocket: close code %u may not be sent (RFC 6455 7.4); use "
                          "1000-1003, 1007-1014 or 3000-4999",
                          (unsigned)code);
        out->kind = RC_WS_CHUNK_CLOSE;
        out->close_code = code;
        r->state = ST_CLOSED;
    }
    return RC_PARSE_DONE;
}

enum rc_parse rc_ws_read(struct rc_ws_reader *r, uint8_t *buf, size_t len, size_t *consumed,
                         struct rc_ws_chunk *out, struct rc_err *err)
{
    size_t pos = 0, used = 0;
    enum rc_parse res;

    /* Each turn consumes at least one byte or returns, so this ends. */
    for (;;) {
        *consumed = pos;
        if (r->state == ST_FAILED) {
            rc_err_set(err, r->fail_status, r->fail_code,
                       "websocket: the frame stream already failed with close code %u; close "
                       "the connection",
                       (unsigned)r->fail_status);
            return RC_PARSE_FAIL;
        }
        if (r->state == ST_CLOSED) {
            *consumed = len;
            return RC_PARSE_MORE;
        }
        if (r->state == ST_HEADER) {
            res = read_header(r, buf + pos, len - pos, &used, err);
            pos += used;
            *consumed = pos;
            if (res != RC_PARSE_DONE)
                return res;
            /* An empty frame completes here, even with no bytes left. */
            if (r->frame_left > 0 && pos == len)
                return RC_PARSE_MORE;
        } else if (pos == len) {
            return RC_PARSE_MORE;
        }
        if (is_control(r->opcode))
            res = read_control(r, buf + pos, len - pos, &used, out, err);
        else
            res = read_data(r, buf + pos, len - pos, &used, out, err);
        pos += used;
        *consumed = pos;
        if (res != RC_PARSE_MORE)
            return res;
    }
}
