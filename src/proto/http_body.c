/* http_body.c - chunked transfer-coding decoder (RFC 9112 §7.1), query-string
 * splitting and percent-decoding (RFC 3986 §2.1) for HTTP/1.1 requests.
 * Contract in include/ringcast/http_parse.h; the request head parser is in
 * http_parse.c, and the character classes both use are in http_parse_internal.h. */
#include <errno.h>
#include <stdint.h>

#include "ringcast/http_parse.h"
#include "http_parse_internal.h"

static bool is_ctl(char c)
{
    unsigned char u = (unsigned char)c;
    return (u < 0x20 && u != '\t') || u == 0x7f;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = rc_ascii_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* ---- chunked bodies (RFC 9112 §7.1) ---------------------------------------- */

enum {
    CH_SIZE,    /* hex digits of chunk-size */
    CH_SIZE_WS, /* BWS after the size: only ';' or CR may follow */
    CH_EXT,     /* chunk extensions, ignored up to CR */
    CH_SIZE_LF, /* LF ending the size line */
    CH_DATA,    /* remaining data bytes */
    CH_DATA_CR, /* CRLF after the data */
    CH_DATA_LF,
    CH_TRAILER_START, /* start of a trailer line, or CR of the final blank line */
    CH_TRAILER_LINE,  /* trailer field line; have_digit = colon seen */
    CH_TRAILER_LF,
    CH_END_LF, /* LF of the final blank line */
    CH_DONE,
    CH_FAILED,
};

void rc_http_chunked_init(struct rc_http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
}

static enum rc_parse chunk_fail(struct rc_http_chunked *c, struct rc_err *err, int status,
                                const char *code, const char *what, unsigned char byte)
{
    c->state = CH_FAILED;
    rc_err_set(err, status, code, "chunked body: %s (byte 0x%02x after %zu decoded bytes)", what,
               byte, c->total);
    return RC_PARSE_FAIL;
}

/* One byte of a size line (CH_SIZE .. CH_SIZE_LF). */
static enum rc_parse chunk_size_byte(struct rc_http_chunked *c, char ch,
                                     const struct rc_http_limits *lim, struct rc_err *err)
{
    unsigned char u = (unsigned char)ch;
    int v;

    if (++c->line_len > RC_HTTP_MAX_CHUNK_LINE)
        return chunk_fail(c, err, 400, "bad_request",
                          "chunk size line is too long (extensions over 1024 bytes); send "
                          "shorter chunk extensions",
                          u);
    switch (c->state) {
    case CH_SIZE:
        v = hex_value(ch);
        if (v >= 0) {
            if (c->remaining > (SIZE_MAX >> 4))
                return chunk_fail(c, err, 400, "bad_request",
                                  "chunk size overflows; send chunk sizes below 2^64", u);
            c->remaining = c->remaining << 4 | (size_t)v;
            c->have_digit = true;
            return RC_PARSE_MORE;
        }
        if (!c->have_digit)
            return chunk_fail(c, err, 400, "bad_request",
                              "chunk size line does not start with a hex digit; send the size "
                              "in hex followed by CRLF",
                              u);
        c->state = CH_SIZE_WS;
        __attribute__((fallthrough));
    case CH_SIZE_WS:
        if (rc_http_is_ows(ch))
            return RC_PARSE_MORE;
        if (ch == ';') {
            c->state = CH_EXT;
            return RC_PARSE_MORE;
        }
        if (ch == '\r') {
            c->state = CH_SIZE_LF;
            return RC_PARSE_MORE;
        }
        return chunk_fail(c, err, 400, "bad_request",
                          "chunk size is followed by an unexpected byte; send the size in hex, "
                          "optional ;extensions, then CRLF",
                          u);
    case CH_EXT:
        if (ch == '\r') {
            c->state = CH_SIZE_LF;
            return RC_PARSE_MORE;
        }
        if (is_ctl(ch))
            return chunk_fail(c, err, 400, "bad_request",
                              "chunk extension contains a control byte or bare LF; end the size "
                              "line with CRLF",
                              u);
        return RC_PARSE_MORE;
    default: /* CH_SIZE_LF */
        if (ch != '\n')
            return chunk_fail(c, err, 400, "bad_request",
                              "chunk size line has CR without LF; end it with CRLF", u);
        c->line_len = 0;
        c->have_digit = false;
        if (c->remaining == 0) {
            c->state = CH_TRAILER_START;
            return RC_PARSE_MORE;
        }
        if (c->remaining > lim->max_body - c->total) {
            c->state = CH_FAILED;
            rc_err_set(err, 413, "payload_too_large",
                       "chunked body is over the limit of %zu bytes (a chunk of %zu bytes "
                       "follows %zu bytes); send a smaller body",
                       lim->max_body, c->remaining, c->total);
            return RC_PARSE_FAIL;
        }
        c->state = CH_DATA;
        return RC_PARSE_MORE;
    }
}

/* One byte of the trailer section (CH_TRAILER_START .. CH_END_LF); DONE at the end. */
static enum rc_parse chunk_trailer_byte(struct rc_http_chunked *c, char ch,
                                        const struct rc_http_limits *lim, struct rc_err *err)
{
    unsigned char u = (unsigned char)ch;
    unsigned max = lim->max_headers < RC_HTTP_MAX_HEADERS ? lim->max_headers : RC_HTTP_MAX_HEADERS;

    if (++c->trailer_bytes > lim->max_header_bytes)
        return chunk_fail(c, err, 431, "headers_too_large",
                          "trailer section is over the header size limit; send fewer trailers", u);
    switch (c->state) {
    case CH_TRAILER_START:
        if (ch == '\r') {
            c->state = CH_END_LF;
            return RC_PARSE_MORE;
        }
        if (++c->trailer_count > max)
            return chunk_fail(c, err, 431, "headers_too_large",
                              "too many trailer fields; send fewer trailers", u);
        c->state = CH_TRAILER_LINE;
        c->have_digit = false;
        c->line_len = 0;
        __attribute__((fallthrough));
    case CH_TRAILER_LINE:
        if (!c->have_digit) {
            if (ch == ':' && c->line_len > 0) {
                c->have_digit = true;
                return RC_PARSE_MORE;
            }
            if (!rc_http_is_tchar(ch))
                return chunk_fail(c, err, 400, "bad_request",
                                  "trailer field name contains a byte that is not a token "
                                  "character, or the line has no colon; send \"Name: value\"",
                                  u);
            c->line_len++;
            return RC_PARSE_MORE;
        }
        if (ch == '\r') {
            c->state = CH_TRAILER_LF;
            return RC_PARSE_MORE;
        }
        if (!rc_http_vchar_tab[u])
            return chunk_fail(c, err, 400, "bad_request",
                              "trailer field value contains a control byte or bare LF", u);
        return RC_PARSE_MORE;
    case CH_TRAILER_LF:
        if (ch != '\n')
            return chunk_fail(c, err, 400, "bad_request",
                              "trailer line has CR without LF; end it with CRLF", u);
        c->state = CH_TRAILER_START;
        return RC_PARSE_MORE;
    default: /* CH_END_LF */
        if (ch != '\n')
            return chunk_fail(c, err, 400, "bad_request",
                              "chunked body ends with CR without LF; end it with CRLF", u);
        c->state = CH_DONE;
        return RC_PARSE_DONE;
    }
}

enum rc_parse rc_http_chunked_decode(struct rc_http_chunked *c, char *buf, size_t len,
                                     const struct rc_http_limits *lim, size_t *consumed,
                                     size_t *out_len, struct rc_err *err)
{
    size_t i = 0, o = 0;
    enum rc_parse r = RC_PARSE_MORE;

    *consumed = 0;
    *out_len = 0;
    if (c->state == CH_DONE)
        return RC_PARSE_DONE;
    if (c->state == CH_FAILED) {
        rc_err_set(err, 400, "bad_request",
                   "chunked body: decoder already failed; close the connection");
        return RC_PARSE_FAIL;
    }
    while (i < len && r == RC_PARSE_MORE) {
        switch (c->state) {
        case CH_DATA: {
            size_t n = len - i < c->remaining ? len - i : c->remaining;
            /* In place: o <= i always, the output never overtakes the input. */
            if (o != i)
                memmove(buf + o, buf + i, n);
            o += n;
            i += n;
            c->total += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            continue;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            if (buf[i] != (c->state == CH_DATA_CR ? '\r' : '\n'))
                return chunk_fail(c, err, 400, "bad_request",
                                  "chunk data is not followed by CRLF; the chunk size does not "
                                  "match the data sent",
                                  (unsigned char)buf[i]);
            c->state = c->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
            break;
        case CH_SIZE:
        case CH_SIZE_WS:
        case CH_EXT:
        case CH_SIZE_LF:
            r = chunk_size_byte(c, buf[i], lim, err);
            break;
        default:
            r = chunk_trailer_byte(c, buf[i], lim, err);
            break;
        }
        i++;
    }
    if (r == RC_PARSE_FAIL)
        return r;
    *consumed = i;
    *out_len = o;
    return r;
}

/* ---- query strings and percent-decoding ------------------------------------ */

bool rc_http_query_next(struct rc_slice *query_rest, struct rc_slice *key, struct rc_slice *val)
{
    while (query_rest->n > 0) {
        const char *p = query_rest->p;
        const char *amp = memchr(p, '&', query_rest->n);
        size_t n = amp ? (size_t)(amp - p) : query_rest->n;
        const char *eq;

        query_rest->p += amp ? n + 1 : n;
        query_rest->n -= amp ? n + 1 : n;
        if (n == 0)
            continue;
        eq = memchr(p, '=', n);
        if (eq) {
            *key = rc_slice_make(p, (size_t)(eq - p));
            *val = rc_slice_make(eq + 1, n - (size_t)(eq - p) - 1);
        } else {
            *key = rc_slice_make(p, n);
            *val = rc_slice_make(p + n, 0);
        }
        return true;
    }
    return false;
}

ssize_t rc_http_url_decode(struct rc_slice src, char *dst, size_t cap, bool plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < src.n; i++) {
        char ch = src.p[i];
        if (ch == '%') {
            int hi, lo;
            if (src.n - i < 3)
                return -EINVAL;
            hi = hex_value(src.p[i + 1]);
            lo = hex_value(src.p[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            ch = (char)(hi << 4 | lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (ch == '\0')
            return -EINVAL;
        if (o >= cap)
            return -ENOSPC;
        dst[o++] = ch;
    }
    return (ssize_t)o;
}
