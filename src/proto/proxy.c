/* proxy.c - PROXY protocol v1/v2 parser. See proxy.h for the contract. */
#include <arpa/inet.h>
#include <string.h>

#include "ringcast/proxy.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = "PROXY ";

void rc_proxy_init(struct rc_proxy *p)
{
    memset(p, 0, sizeof(*p));
    p->status = RC_PROXY_MORE;
}

static enum rc_proxy_status fail(struct rc_proxy *p, const char *reason)
{
    p->status = RC_PROXY_ERROR;
    p->reason = reason;
    return p->status;
}

/* Decimal port, 0..65535, no sign, no leading zero (except "0"). */
static bool parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* The n bytes at s must be one address of family af; copied to a NUL-ended buffer. */
static bool parse_addr(int af, const char *s, size_t n, void *out)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(af, tmp, out) == 1;
}

/* v1: the line is complete in p->buf[0..len) including "\r\n". */
static enum rc_proxy_status parse_v1(struct rc_proxy *p, size_t len)
{
    const char *line = (const char *)p->buf;
    size_t end = len - 2; /* before "\r\n" */
    const char *f[6];
    size_t fl[6];
    size_t nf = 0, i = 0;
    while (i <= end && nf < 6) {
        size_t j = i;
        while (j < end && line[j] != ' ')
            j++;
        if (j == i)
            return fail(p, "v1 empty field");
        f[nf] = line + i;
        fl[nf] = j - i;
        nf++;
        i = j + 1;
    }
    if (i <= end)
        return fail(p, "v1 too many fields");
    struct rc_proxy_result *r = &p->result;
    r->version = 1;
    r->header_len = len;
    if (nf >= 2 && fl[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0) {
        r->local = true; /* the rest of the line is ignored, per the spec */
        r->family = AF_UNSPEC;
        p->status = RC_PROXY_DONE;
        return p->status;
    }
    if (nf != 6)
        return fail(p, "v1 wrong number of fields");
    int af;
    if (fl[1] == 4 && memcmp(f[1], "TCP4", 4) == 0)
        af = AF_INET;
    else if (fl[1] == 4 && memcmp(f[1], "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return fail(p, "v1 unknown protocol");
    uint16_t sport, dport;
    if (!parse_port(f[4], fl[4], &sport) || !parse_port(f[5], fl[5], &dport))
        return fail(p, "v1 bad port");
    memset(&r->src, 0, sizeof(r->src));
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&r->src;
        struct in_addr dst;
        if (!parse_addr(AF_INET, f[2], fl[2], &sin->sin_addr) ||
            !parse_addr(AF_INET, f[3], fl[3], &dst))
            return fail(p, "v1 bad address");
        sin->sin_family = AF_INET;
        sin->sin_port = htons(sport);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->src;
        struct in6_addr dst;
        if (!parse_addr(AF_INET6, f[2], fl[2], &sin6->sin6_addr) ||
            !parse_addr(AF_INET6, f[3], fl[3], &dst))
            return fail(p, "v1 bad address");
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(sport);
    }
    r->family = af;
    r->local = false;
    p->status = RC_PROXY_DONE;
    return p->status;
}

/* v2: the 16-byte header and its body are in p->buf[0..len). */
static enum rc_proxy_status parse_v2(struct rc_proxy *p, size_t len)
{
    const uint8_t *b = p->buf;
    struct rc_proxy_result *r = &p->result;
    uint8_t cmd = b[12] & 0x0F;
    uint8_t fam = b[13] >> 4, proto = b[13] & 0x0F;
    size_t body = len - 16;
    r->version = 2;
    r->header_len = len;
    memset(&r->src, 0, sizeof(r->src));
    if (cmd == 0) { /* LOCAL: addresses, if any, are ignored */
        r->local = true;
        r->family = AF_UNSPEC;
        p->status = RC_PROXY_DONE;
        return p->status;
    }
    if (cmd != 1)
        return fail(p, "v2 unknown command");
    if (proto != 1)
        return fail(p, "v2 not STREAM");
    if (fam == 1) {
        if (body < 12)
            return fail(p, "v2 length too short for AF_INET");
        struct sockaddr_in *sin = (struct sockaddr_in *)&r->src;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, b + 16, 4);
        memcpy(&sin->sin_port, b + 16 + 8, 2);
        r->family = AF_INET;
    } else if (fam == 2) {
        if (body < 36)
            return fail(p, "v2 length too short for AF_INET6");
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->src;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, b + 16, 16);
        memcpy(&sin6->sin6_port, b + 16 + 32, 2);
        r->family = AF_INET6;
    } else {
        return fail(p, "v2 unsupported address family");
    }
    r->local = false;
    p->status = RC_PROXY_DONE;
    return p->status;
}

enum rc_proxy_status rc_proxy_feed(struct rc_proxy *p, const uint8_t *data, size_t len,
                                   size_t *consumed)
{
    *consumed = 0;
    if (p->status != RC_PROXY_MORE)
        return p->status;
    size_t i = 0;
    while (i < len) {
        size_t at = p->have;
        if (at >= RC_PROXY_MAX)
            return fail(p, "header too long");
        p->buf[at] = data[i++];
        p->have = at + 1;
        *consumed = i;
        /* which version: checked byte by byte against both signatures */
        if (at < 12) {
            bool v1 = at < 6 && memcmp(p->buf, v1_sig, at + 1) == 0;
            bool v2 = memcmp(p->buf, v2_sig, at + 1) == 0;
            if (at >= 6 && p->buf[0] == 'P')
                v1 = true;
            if (!v1 && !v2)
                return fail(p, "no PROXY header");
        }
        if (p->buf[0] == 'P') {
            if (at + 1 > RC_PROXY_V1_MAX)
                return fail(p, "v1 line too long");
            uint8_t c = p->buf[at];
            if (c == '\n') {
                if (at < 1 || p->buf[at - 1] != '\r')
                    return fail(p, "v1 bare LF");
                return parse_v1(p, at + 1);
            }
            if (c == '\r' || (c >= 32 && c < 127)) {
                if (at >= 1 && p->buf[at - 1] == '\r')
                    return fail(p, "v1 CR not before LF");
                continue;
            }
            return fail(p, "v1 bad character");
        }
        /* v2 */
        if (at == 12 && (p->buf[12] >> 4) != 2)
            return fail(p, "v2 bad version");
        if (at == 15) {
            size_t blen = ((size_t)p->buf[14] << 8) | p->buf[15];
            if (blen > RC_PROXY_MAX - 16)
                return fail(p, "v2 length too large");
        }
        if (at >= 15) {
            size_t blen = ((size_t)p->buf[14] << 8) | p->buf[15];
            size_t want = 16 + blen - p->have; /* copy the body in one go */
            size_t take = len - i < want ? len - i : want;
            memcpy(p->buf + p->have, data + i, take);
            p->have += take;
            i += take;
            *consumed = i;
            if (p->have == 16 + blen)
                return parse_v2(p, p->have);
        }
    }
    return RC_PROXY_MORE;
}
