/* proxy.h - PROXY protocol v1 and v2 header parser (HAProxy's spec,
 * proxy-protocol.txt), pure: no I/O, no allocation.
 *
 * Owner: whoever reads a connection's first bytes (the loop). Embed one
 *   struct rc_proxy per connection that still expects its header.
 * Use: rc_proxy_init, then rc_proxy_feed with each piece of input as it
 *   arrives. The parser copies at most RC_PROXY_MAX bytes into itself, so a
 *   header split across reads is fine. Results:
 *     RC_PROXY_MORE: every byte of the piece was taken; feed more.
 *     RC_PROXY_DONE: *consumed bytes of this piece were header; the rest of
 *       the piece belongs to the session. p->result holds the header.
 *     RC_PROXY_ERROR: p->reason names what was wrong (a short static string).
 *   After DONE or ERROR, further feeds return the same verdict and take nothing.
 * v1: "PROXY TCP4|TCP6|UNKNOWN ...\r\n", at most 107 bytes, strict (single
 *   spaces, decimal ports without leading zeros, addresses of the family).
 * v2: the 12-byte signature, version 2, LOCAL or PROXY, AF_INET/AF_INET6 over
 *   STREAM (or AF_UNSPEC, for LOCAL); length at most RC_PROXY_MAX - 16; TLVs
 *   are skipped. */
#ifndef RINGCAST_PROXY_H
#define RINGCAST_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RC_PROXY_V1_MAX 107
#define RC_PROXY_MAX 536 /* 16-byte v2 header + 520 bytes of addresses and TLVs */

enum rc_proxy_status { RC_PROXY_MORE, RC_PROXY_DONE, RC_PROXY_ERROR };

struct rc_proxy_result {
    int version;                 /* 1 or 2 */
    bool local;                  /* LOCAL command (v2) or UNKNOWN (v1): keep the socket's address */
    int family;                  /* AF_INET, AF_INET6, or AF_UNSPEC when local */
    struct sockaddr_storage src; /* the client's address and port, when !local */
    size_t header_len;           /* bytes of the whole header */
};

struct rc_proxy {
    enum rc_proxy_status status;
    const char *reason;
    size_t have;
    uint8_t buf[RC_PROXY_MAX];
    struct rc_proxy_result result;
};

void rc_proxy_init(struct rc_proxy *p);
enum rc_proxy_status rc_proxy_feed(struct rc_proxy *p, const uint8_t *data, size_t len,
                                   size_t *consumed);

#ifdef __cplusplus
}
#endif

#endif
