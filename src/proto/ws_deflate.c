/* ws_deflate.c - permessage-deflate negotiation, compression and bounded
 * inflation (see ws_deflate.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "ringcast/ws_deflate.h"

/* ---- negotiation (RFC 7692 5, 7.1; grammar RFC 6455 9.1) -------------------- */

/* A cursor over one field value. */
struct lex {
    const char *p, *end;
    bool bad; /* the list does not parse from here on */
};

static bool is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(struct lex *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t'))
        l->p++;
}

static struct rc_slice token(struct lex *l)
{
    const char *s = l->p;
    while (l->p < l->end && is_tchar(*l->p))
        l->p++;
    if (l->p == s)
        l->bad = true;
    return rc_slice_make(s, (size_t)(l->p - s));
}

/* token or quoted-string; a quoted value is copied unquoted into buf (it must
 * be a token once unquoted, RFC 6455 9.1, checked by the caller's use). */
static struct rc_slice value(struct lex *l, char *buf, size_t cap)
{
    if (l->p >= l->end || *l->p != '"')
        return token(l);
    size_t n = 0;
    l->p++;
    while (l->p < l->end && *l->p != '"') {
        if (*l->p == '\\' && l->p + 1 < l->end)
            l->p++;
        if (n + 1 >= cap || !is_tchar(*l->p)) {
            l->bad = true;
            return rc_slice_make(buf, 0);
        }
        buf[n++] = *l->p++;
    }
    if (l->p >= l->end || n == 0) {
        l->bad = true;
        return rc_slice_make(buf, 0);
    }
    l->p++; /* closing quote */
    return rc_slice_make(buf, n);
}

/* A window size: "8".."15", no sign, no leading zero. */
static bool window_bits(struct rc_slice v, uint8_t *out)
{
    unsigned x = 0;
    if (v.n < 1 || v.n > 2 || v.p[0] == '0')
        return false;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        x = x * 10 + (unsigned)(v.p[i] - '0');
    }
    if (x < 8 || x > 15)
        return false;
    *out = (uint8_t)x;
    return true;
}

/* Parameters seen in one offer. */
enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

struct offer {
    bool deflate; /* the extension is permessage-deflate */
    bool ok;      /* and every parameter is acceptable */
    unsigned seen;
    struct rc_ws_deflate_agreed agreed;
};

static void offer_param(struct offer *o, struct rc_slice name, bool has_value, struct rc_slice v)
{
    unsigned bit = rc_slice_ieq(name, "server_no_context_takeover")   ? P_SNCT
                   : rc_slice_ieq(name, "client_no_context_takeover") ? P_CNCT
                   : rc_slice_ieq(name, "server_max_window_bits")     ? P_SMWB
                   : rc_slice_ieq(name, "client_max_window_bits")     ? P_CMWB
                                                                      : 0;
    uint8_t bits = 0;
    if (!bit || (o->seen & bit)) {
        o->ok = false; /* unknown or repeated (RFC 7692 7.1) */
        return;
    }
    o->seen |= bit;
    switch (bit) {
    case P_SNCT:
    case P_CNCT:
        if (has_value)
            o->ok = false;
        if (bit == P_CNCT)
            o->agreed.client_no_context_takeover = true;
        break;
    case P_SMWB:
        if (!has_value || !window_bits(v, &bits))
            o->ok = false;
        else
            o->agreed.server_window_bits = bits;
        break;
    case P_CMWB:
        /* we inflate with a 15-bit window, valid for any client window, and so
         * do not answer it (RFC 7692 7.1.2.2) */
        if (has_value && !window_bits(v, &bits))
            o->ok = false;
        break;
    }
}

/* Parse one offer (extension name and its parameters) up to its comma. */
static void parse_offer(struct lex *l, struct offer *o)
{
    struct rc_slice name = token(l);
    o->deflate = !l->bad && rc_slice_ieq(name, "permessage-deflate");
    o->ok = true;
    o->seen = 0;
    o->agreed = (struct rc_ws_deflate_agreed){.server_window_bits = 15};
    for (;;) {
        skip_ows(l);
        if (l->bad || l->p >= l->end || *l->p == ',')
            return;
        if (*l->p != ';') {
            l->bad = true;
            return;
        }
        l->p++;
        skip_ows(l);
        struct rc_slice pname = token(l);
        skip_ows(l);
        char buf[32];
        struct rc_slice v = {0};
        bool has_value = l->p < l->end && *l->p == '=';
        if (has_value) {
            l->p++;
            skip_ows(l);
            v = value(l, buf, sizeof(buf));
        }
        if (l->bad)
            return;
        if (o->deflate)
            offer_param(o, pname, has_value, v);
    }
}

static void write_answer(const struct rc_ws_deflate_agreed *a, bool smwb,
                         char answer[RC_WS_DEFLATE_ANSWER_MAX])
{
    int n = snprintf(answer, RC_WS_DEFLATE_ANSWER_MAX,
                     "permessage-deflate; "
                     "server_no_context_takeover");
    if (a->client_no_context_takeover)
        n += snprintf(answer + n, RC_WS_DEFLATE_ANSWER_MAX - (size_t)n,
                      "; client_no_context_takeover");
    if (smwb)
        snprintf(answer + n, RC_WS_DEFLATE_ANSWER_MAX - (size_t)n, "; server_max_window_bits=%u",
                 (unsigned)a->server_window_bits);
}

bool rc_ws_deflate_negotiate(const struct rc_slice *values, size_t n,
                             struct rc_ws_deflate_agreed *out,
                             char answer[RC_WS_DEFLATE_ANSWER_MAX])
{
    for (size_t i = 0; i < n; i++) {
        struct lex l = {values[i].p, values[i].p + values[i].n, false};
        while (!l.bad && l.p < l.end) {
            skip_ows(&l);
            if (l.p < l.end && *l.p == ',') { /* empty list element (RFC 9110 5.6.1) */
                l.p++;
                continue;
            }
            if (l.p >= l.end)
                break;
            struct offer o;
            parse_offer(&l, &o);
            if (l.bad)
                break;
            if (o.deflate && o.ok) {
                *out = o.agreed;
                write_answer(&o.agreed, o.seen & P_SMWB, answer);
                return true;
            }
        }
    }
    return false;
}

/* ---- compression ---------------------------------------------------------------- */

int rc_ws_deflate_compress(const uint8_t *in, size_t n, int level, uint8_t **out, size_t *out_len)
{
    z_stream z = {0};
    /* the smallest window holding the whole input: every distance fits anyway,
     * and the encoder's memory follows the event's size (zlib: 9..15 for raw) */
    int wbits = 9;
    while (wbits < 15 && ((size_t)1 << wbits) < n)
        wbits++;
    if (n > UINT32_MAX / 2 ||
        deflateInit2(&z, level, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -EIO;
    size_t cap = deflateBound(&z, (uLong)n) + 16; /* + the sync flush's empty block */
    uint8_t *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_SYNC_FLUSH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    /* all input taken, room left (so nothing is pending), and the flush marker */
    if (rc != Z_OK || z.avail_in != 0 || z.avail_out == 0 || len < 4 ||
        memcmp(buf + len - 4, "\x00\x00\xff\xff", 4) != 0) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* ---- inflation --------------------------------------------------------------------- */

struct rc_ws_inflater {
    z_stream z;
    bool ended; /* the client ended the deflate stream (a BFINAL block) in this message */
};

struct rc_ws_inflater *rc_ws_inflater_new(void)
{
    struct rc_ws_inflater *zi = calloc(1, sizeof(*zi));
    if (!zi)
        return NULL;
    if (inflateInit2(&zi->z, -15) != Z_OK) {
        free(zi);
        return NULL;
    }
    return zi;
}

void rc_ws_inflater_free(struct rc_ws_inflater *zi)
{
    if (!zi)
        return;
    inflateEnd(&zi->z);
    free(zi);
}

/* Make room for more output: at least one byte, never past max + 1 in all. */
static int grow(struct rc_ws_outbuf out, size_t max)
{
    if (*out.len < *out.cap)
        return 0;
    if (*out.len > max)
        return -E2BIG;
    size_t cap = *out.cap ? *out.cap * 2 : 1024;
    if (cap > max + 1)
        cap = max + 1;
    uint8_t *np = realloc(*out.p, cap);
    if (!np)
        return -ENOMEM;
    *out.p = np;
    *out.cap = cap;
    return 0;
}

/* Feed in[0..n) until zlib has taken it all and has nothing more to give. */
static int feed(struct rc_ws_inflater *zi, const uint8_t *in, size_t n, struct rc_ws_outbuf out,
                size_t max)
{
    zi->z.next_in = (Bytef *)(uintptr_t)in;
    zi->z.avail_in = (uInt)n;
    for (;;) {
        if (zi->ended)
            return zi->z.avail_in ? -EBADMSG : 0; /* nothing may follow the final block */
        int rc = grow(out, max);
        if (rc < 0)
            return rc;
        size_t room = *out.cap - *out.len;
        if (room > max + 1 - *out.len) /* a buffer bigger than max (reused): still max */
            room = max + 1 - *out.len;
        zi->z.next_out = *out.p + *out.len;
        zi->z.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
        uInt before = zi->z.avail_out;
        int zr = inflate(&zi->z, Z_SYNC_FLUSH);
        *out.len += before - zi->z.avail_out;
        if (*out.len > max)
            return -E2BIG;
        if (zr == Z_STREAM_END) {
            zi->ended = true;
            continue;
        }
        if (zr == Z_MEM_ERROR)
            return -ENOMEM;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return -EBADMSG;
        if (zi->z.avail_out != 0 && zi->z.avail_in == 0)
            return 0; /* all taken, all given */
        if (zr == Z_BUF_ERROR && zi->z.avail_out != 0)
            return -EBADMSG; /* no progress with input and room: cannot happen */
    }
}

int rc_ws_inflate(struct rc_ws_inflater *zi, const uint8_t *in, size_t n, bool end, bool reset,
                  struct rc_ws_outbuf out, size_t max)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (n > UINT32_MAX)
        return -E2BIG;
    int rc = feed(zi, in, n, out, max);
    if (rc < 0 || !end)
        return rc;
    if (!zi->ended) {
        rc = feed(zi, tail, sizeof(tail), out, max);
        if (rc < 0)
            return rc;
    }
    /* a client that ended its stream starts a new one with its next message */
    if (reset || zi->ended) {
        zi->ended = false;
        if (inflateReset(&zi->z) != Z_OK)
            return -EBADMSG;
    }
    return 0;
}
