/* ws_deflate.h - permessage-deflate (RFC 7692): the negotiation of the
 * Sec-WebSocket-Extensions offers, the once-per-event compression of a server
 * message, and the bounded inflation of compressed client messages.
 *
 * Owner: negotiation and compression are pure functions (any thread; the
 *   compression runs on the owner shard that encodes an event). An inflater
 *   belongs to one connection, on the shard that owns it.
 * Invariants:
 *   - we always answer server_no_context_takeover: every compressed server
 *     message is a self-contained deflate run, so one event's compressed frame
 *     is the same bytes for every subscriber;
 *   - an inflater never produces more than the max it is given plus one byte:
 *     a deflate bomb costs at most max bytes of memory before -E2BIG.
 * Lifetimes: an inflater is allocated lazily on a connection's first compressed
 *   message (rc_ws_inflater_new) and freed with the connection; it costs about
 *   7 KiB of zlib state plus its 32 KiB window (client windows up to 15 bits).
 * Library: zlib, both ways (streaming inflate with context takeover needs it;
 *   the compression needs a sync flush, which libdeflate has not). */
#ifndef RINGCAST_WS_DEFLATE_H
#define RINGCAST_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_WS_RSV1 0x40 /* frame header byte 0: "compressed" (RFC 7692 6) */
/* room the answer line of rc_ws_deflate_negotiate needs */
#define RC_WS_DEFLATE_ANSWER_MAX 128

/* What an accepted offer agreed on. */
struct rc_ws_deflate_agreed {
    /* the client resets its compressor per message: so do we, per message */
    bool client_no_context_takeover;
    /* server_max_window_bits the client asked for (8..15; 15 when not asked):
     * a compressed message is only sent when every back-reference fits, i.e.
     * its plain payload is at most 2^bits bytes */
    uint8_t server_window_bits;
};

/* Pick the first acceptable permessage-deflate offer among the values of the
 * request's Sec-WebSocket-Extensions fields (values[0..n), in order; each a
 * comma-separated list of offers with ;-separated parameters, values a token or
 * a quoted string, RFC 6455 9.1). An offer is declined (skipped) when it has an
 * unknown parameter, a parameter twice, a value where none is allowed, none
 * where one is needed, or a window size outside 8..15 (RFC 7692 7.1). A list
 * that does not parse is ignored from the point where it breaks.
 * Returns true and fills *out and answer (the Sec-WebSocket-Extensions value to
 * send, NUL-terminated) when an offer was accepted; false otherwise. */
bool rc_ws_deflate_negotiate(const struct rc_slice *values, size_t n,
                             struct rc_ws_deflate_agreed *out,
                             char answer[RC_WS_DEFLATE_ANSWER_MAX]);

/* Compress in[0..n) as the start of a permessage-deflate message with zlib's
 * raw deflate and a sync flush: the result ends byte-aligned with the empty
 * stored block 00 00 ff ff, which the caller either strips (RFC 7692 7.2.1:
 * the message ends there) or turns into the header of a stored block carrying
 * more bytes. *out is malloc'd (the caller frees it).
 * 0, -ENOMEM, or -EIO (zlib refused). */
RC_MUST_CHECK int rc_ws_deflate_compress(const uint8_t *in, size_t n, int level, uint8_t **out,
                                         size_t *out_len);

struct rc_ws_inflater;

/* An inflater for raw deflate with a 15-bit window (valid for any client
 * window). NULL on out of memory. */
struct rc_ws_inflater *rc_ws_inflater_new(void) RC_MUST_CHECK;
void rc_ws_inflater_free(struct rc_ws_inflater *zi);

/* A growable output buffer owned by the caller (malloc'd; p may be NULL). */
struct rc_ws_outbuf {
    uint8_t **p;
    size_t *len, *cap;
};

/* Inflate the next piece in[0..n) of a compressed message, appending to out.
 * end: this piece ends the message: the 00 00 ff ff tail is fed after it
 * (RFC 7692 7.2.2), then, if reset (client_no_context_takeover), the
 * inflater forgets its window. The total output of the message stays <= max.
 * Returns 0, -E2BIG (the inflated message would exceed max: close 1009),
 * -EBADMSG (not valid deflate data: close 1007) or -ENOMEM. After an error the
 * connection must close; the inflater is not usable again. */
RC_MUST_CHECK int rc_ws_inflate(struct rc_ws_inflater *zi, const uint8_t *in, size_t n, bool end,
                                bool reset, struct rc_ws_outbuf out, size_t max);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_WS_DEFLATE_H */
