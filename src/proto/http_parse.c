/* http_parse.c - bounded, incremental HTTP/1.1 request parser.
 * Contract in include/ringcast/http_parse.h. Grammar references: RFC 9110
 * (semantics: tokens, field values) and RFC 9112 (message syntax, framing).
 * Hot path (rc_http_parse_head): measure with bench/bench_http.cc. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "ringcast/http_parse.h"
#include "http_parse_internal.h"

/* RFC 9110 §5.6.2 tchar: "!#$%&'*+-.^_`|~" / DIGIT / ALPHA. */
const unsigned char rc_http_tchar_tab[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,         ['&'] = 1,         ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,         ['^'] = 1,         ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* RFC 9110 §5.5 field value bytes: HTAB, SP, VCHAR, obs-text. No CTL, CR, LF, DEL. */
const unsigned char rc_http_vchar_tab[256] = {
    ['\t'] = 1,
    [0x20 ... 0x7e] = 1,
    [0x80 ... 0xff] = 1,
};

/* Request-target bytes: VCHAR except '#' (a fragment is never sent, RFC 9112 §3.2).
 * Anything else (SP ends the target; CTL, obs-text) must be percent-encoded. */
static const unsigned char target_tab[256] = {
    [0x21 ... 0x22] = 1,
    [0x24 ... 0x7e] = 1,
};

/* Render untrusted bytes for an error message: printable ASCII as is, other
 * bytes as \xHH, cut after 40 input bytes with "...". */
enum { SHOW_MAX_IN = 40, SHOW_CAP = SHOW_MAX_IN * 4 + 4 };

static const char *show(struct rc_slice s, char *out)
{
    size_t o = 0;
    size_t n = s.n < SHOW_MAX_IN ? s.n : SHOW_MAX_IN;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    if (n < s.n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

void rc_http_limits_default(struct rc_http_limits *lim)
{
    lim->max_request_line = RC_HTTP_DEFAULT_MAX_REQUEST_LINE;
    lim->max_header_bytes = RC_HTTP_DEFAULT_MAX_HEADER_BYTES;
    lim->max_headers = RC_HTTP_MAX_HEADERS;
    lim->max_body = RC_HTTP_DEFAULT_MAX_BODY;
}

/* ---- request line --------------------------------------------------------- */

static enum rc_http_method classify_method(struct rc_slice m)
{
    switch (m.n) {
    case 3:
        if (memcmp(m.p, "GET", 3) == 0)
            return RC_HTTP_GET;
        if (memcmp(m.p, "PUT", 3) == 0)
            return RC_HTTP_PUT;
        break;
    case 4:
        if (memcmp(m.p, "HEAD", 4) == 0)
            return RC_HTTP_HEAD;
        if (memcmp(m.p, "POST", 4) == 0)
            return RC_HTTP_POST;
        break;
    case 5:
        if (memcmp(m.p, "PATCH", 5) == 0)
            return RC_HTTP_PATCH;
        break;
    case 6:
        if (memcmp(m.p, "DELETE", 6) == 0)
            return RC_HTTP_DELETE;
        break;
    case 7:
        if (memcmp(m.p, "OPTIONS", 7) == 0)
            return RC_HTTP_OPTIONS;
        break;
    default:
        break;
    }
    return RC_HTTP_OTHER;
}

/* The method token at buf[start..bad) ended at a byte that is neither a tchar
 * nor the SP after a non-empty method. */
static enum rc_parse method_error(const char *buf, size_t start, size_t bad, struct rc_err *err)
{
    unsigned char c = (unsigned char)buf[bad];
    char shown[SHOW_CAP];

    if (bad == start && c == 0x16) {
        rc_err_set(err, 400, "bad_request",
                   "request starts with byte 0x16, a TLS handshake; use http:// on this port "
                   "or terminate TLS in front of it");
    } else if (bad == start) {
        rc_err_set(err, 400, "bad_request",
                   "request line starts with byte 0x%02x instead of a method; send e.g. "
                   "\"GET /path HTTP/1.1\"",
                   c);
    } else {
        rc_err_set(err, 400, "bad_request",
                   "request method \"%s\" is followed by byte 0x%02x; a method is a token "
                   "such as GET, followed by one space",
                   show(rc_slice_make(buf + start, bad - start), shown), c);
    }
    return RC_PARSE_FAIL;
}

/* Incomplete request line: fail early if the method so far is not a token. */
static enum rc_parse check_method_prefix(const char *buf, size_t start, size_t len,
                                         struct rc_err *err)
{
    size_t i = start;

    while (i < len && rc_http_is_tchar(buf[i]))
        i++;
    if (i == len || (buf[i] == ' ' && i > start))
        return RC_PARSE_MORE;
    return method_error(buf, start, i, err);
}

/* "HTTP/1.0" or "HTTP/1.1" -> minor version; another "HTTP/<d>.<d>" -> 505;
 * anything else -> 400. */
static enum rc_parse parse_version(struct rc_slice v, int *minor, struct rc_err *err)
{
    char shown[SHOW_CAP];
    size_t i;

    if (v.n == 8 && memcmp(v.p, "HTTP/1.", 7) == 0 && (v.p[7] == '0' || v.p[7] == '1')) {
        *minor = v.p[7] - '0';
        return RC_PARSE_DONE;
    }
    /* Well-formed but unsupported: HTTP-name "/" DIGIT "." DIGIT (RFC 9112 §2.3),
     * with more digits tolerated so that "HTTP/10.0" also reads as a version. */
    i = 5;
    if (v.n > 5 && memcmp(v.p, "HTTP/", 5) == 0) {
        size_t d0 = i;
        while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9')
            i++;
        if (i > d0 && i < v.n && v.p[i] == '.') {
            size_t d1 = ++i;
            while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9')
                i++;
            if (i > d1 && i == v.n) {
                rc_err_set(err, 505, "version_not_supported",
                           "HTTP version \"%s\" is not supported; use HTTP/1.1 (or HTTP/1.0)",
                           show(v, shown));
                return RC_PARSE_FAIL;
            }
        }
    }
    rc_err_set(err, 400, "bad_request",
               "request line ends with \"%s\" instead of an HTTP version; send "
               "\"METHOD /path HTTP/1.1\"",
               show(v, shown));
    return RC_PARSE_FAIL;
}

/* Parse the complete request line buf[start..lf], lf = index of its LF. */
static enum rc_parse parse_request_line(const char *buf, size_t start, size_t lf,
                                        struct rc_http_request *req, struct rc_err *err)
{
    const char *p = buf + start;
    const char *end = buf + lf;
    const char *t, *q = NULL;
    char shown[SHOW_CAP];

    if (end == p || end[-1] != '\r') {
        rc_err_set(err, 400, "bad_request",
                   "request line ends with a bare LF; end every line with CRLF (RFC 9112 §2.2)");
        return RC_PARSE_FAIL;
    }
    end--; /* at the CR */

    while (p < end && rc_http_is_tchar(*p))
        p++;
    if (p == end || *p != ' ' || p == buf + start)
        return method_error(buf, start, (size_t)(p - buf), err);
    req->method_str = rc_slice_make(buf + start, (size_t)(p - (buf + start)));
    req->method = classify_method(req->method_str);

    t = ++p;
    while (p < end && target_tab[(unsigned char)*p]) {
        if (*p == '?' && !q)
            q = p;
        p++;
    }
    if (p == t) {
        rc_err_set(err, 400, "bad_request",
                   "request target after \"%s \" is empty or preceded by extra whitespace; send "
                   "exactly one space then a path such as /",
                   show(req->method_str, shown));
        return RC_PARSE_FAIL;
    }
    if (p == end) {
        rc_err_set(err, 400, "bad_request",
                   "request line \"%s\" has no HTTP version; send \"METHOD /path HTTP/1.1\"",
                   show(rc_slice_make(buf + start, (size_t)(end - (buf + start))), shown));
        return RC_PARSE_FAIL;
    }
    if (*p != ' ') {
        rc_err_set(err, 400, "bad_request",
                   "request target contains byte 0x%02x at offset %zu; percent-encode spaces, "
                   "control and non-ASCII bytes, and do not send a #fragment",
                   (unsigned char)*p, (size_t)(p - t));
        return RC_PARSE_FAIL;
    }
    req->target = rc_slice_make(t, (size_t)(p - t));
    if (t[0] != '/') {
        bool star = req->target.n == 1 && t[0] == '*';
        if (star && req->method != RC_HTTP_OPTIONS) {
            rc_err_set(err, 400, "bad_request",
                       "request target \"*\" is only allowed with OPTIONS; use a path starting "
                       "with '/'");
            return RC_PARSE_FAIL;
        }
        if (!star) {
            rc_err_set(err, 400, "bad_request",
                       "request target \"%s\" must be a path starting with '/' (origin-form); "
                       "absolute URLs are not accepted",
                       show(req->target, shown));
            return RC_PARSE_FAIL;
        }
    }
    if (q) {
        req->path = rc_slice_make(t, (size_t)(q - t));
        req->query = rc_slice_make(q + 1, (size_t)(p - q - 1));
    } else {
        req->path = req->target;
        req->query = rc_slice_make(p, 0);
    }
    return parse_version(rc_slice_make(p + 1, (size_t)(end - p - 1)), &req->minor_version, err);
}

/* ---- header section ------------------------------------------------------- */

/* Skip empty lines before the request line (RFC 9112 §2.2: a server SHOULD
 * ignore at least one). DONE with *start at the request line. */
static enum rc_parse skip_leading_crlf(const char *buf, size_t len, size_t *start,
                                       struct rc_err *err)
{
    size_t i = 0;
    unsigned lines = 0;

    while (i < len && (buf[i] == '\r' || buf[i] == '\n')) {
        if (buf[i] == '\n' || (i + 1 < len && buf[i + 1] != '\n')) {
            rc_err_set(err, 400, "bad_request",
                       "request starts with a bare CR or LF; end every line with CRLF");
            return RC_PARSE_FAIL;
        }
        if (i + 1 == len)
            return RC_PARSE_MORE;
        if (++lines > RC_HTTP_MAX_LEADING_CRLF) {
            rc_err_set(err, 400, "bad_request",
                       "more than %u empty lines before the request line; send the request "
                       "line first",
                       RC_HTTP_MAX_LEADING_CRLF);
            return RC_PARSE_FAIL;
        }
        i += 2;
    }
    if (i == len)
        return RC_PARSE_MORE;
    *start = i;
    return RC_PARSE_DONE;
}

/* Index of the CR of the first "\r\n\r\n" starting at or after from, or SIZE_MAX. */
static size_t find_head_end(const char *buf, size_t from, size_t len)
{
    size_t i = from + 3;

    while (i < len) {
        const char *lf = memchr(buf + i, '\n', len - i);
        if (!lf)
            break;
        i = (size_t)(lf - buf);
        if (buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return i - 3;
        i++;
    }
    return SIZE_MAX;
}

static enum rc_parse too_many_headers(unsigned max, struct rc_err *err)
{
    rc_err_set(err, 431, "headers_too_large",
               "request has more than %u header fields; send fewer headers", max);
    return RC_PARSE_FAIL;
}

static enum rc_parse head_too_large(size_t max, struct rc_err *err)
{
    rc_err_set(err, 431, "headers_too_large",
               "request head (request line and headers) is longer than %zu bytes; send fewer "
               "or shorter headers",
               max);
    return RC_PARSE_FAIL;
}

/* Incomplete head: count the complete header lines in buf[hstart..len) and
 * refuse bare LFs now rather than waiting for a CRLFCRLF that never comes. */
static enum rc_parse scan_partial_headers(const char *buf, size_t hstart, size_t len, unsigned max,
                                          struct rc_err *err)
{
    size_t p = hstart;
    unsigned n = 0;
    const char *lf;

    while (p < len && (lf = memchr(buf + p, '\n', len - p)) != NULL) {
        size_t i = (size_t)(lf - buf);
        if (i == p || buf[i - 1] != '\r') {
            rc_err_set(err, 400, "bad_request",
                       "header line %u ends with a bare LF; end every line with CRLF "
                       "(RFC 9112 §2.2)",
                       n + 1);
            return RC_PARSE_FAIL;
        }
        if (++n > max)
            return too_many_headers(max, err);
        p = i + 1;
    }
    return RC_PARSE_MORE;
}

/* Field line syntax error at s (line number n, name so far at line..s). */
static enum rc_parse field_line_error(const char *line, const char *s, unsigned n,
                                      struct rc_err *err)
{
    char shown[SHOW_CAP];
    struct rc_slice name = rc_slice_make(line, (size_t)(s - line));

    if (s == line && rc_http_is_ows(*s))
        rc_err_set(err, 400, "bad_request",
                   "header line %u starts with whitespace (obs-fold line folding); send each "
                   "header on one line",
                   n);
    else if (s == line)
        rc_err_set(err, 400, "bad_request",
                   "header line %u starts with byte 0x%02x instead of a header name; send "
                   "\"Name: value\" lines",
                   n, (unsigned char)*s);
    else if (rc_http_is_ows(*s))
        rc_err_set(err, 400, "bad_request",
                   "header \"%s\" has whitespace before the colon; remove it (RFC 9112 §5.1)",
                   show(name, shown));
    else if (*s == '\r' || *s == '\n')
        rc_err_set(err, 400, "bad_request", "header line \"%s\" has no colon; send \"Name: value\"",
                   show(name, shown));
    else
        rc_err_set(err, 400, "bad_request",
                   "header name \"%s\" is followed by byte 0x%02x; header names are tokens "
                   "(letters, digits, !#$%%&'*+-.^_`|~)",
                   show(name, shown), (unsigned char)*s);
    return RC_PARSE_FAIL;
}

/* Parse the field lines in buf[p..hend); hend is just past the CRLF of the last
 * line, and buf[hend..hend+2) is the blank line's CRLF, so every scan below
 * stops at a CR by the end of the region. */
static enum rc_parse parse_fields(const char *buf, size_t p, size_t hend, unsigned max,
                                  struct rc_http_request *req, struct rc_err *err)
{
    char shown[SHOW_CAP];

    while (p < hend) {
        const char *line = buf + p;
        const char *s = line;
        const char *v, *ve;
        struct rc_http_header *h;

        while (rc_http_is_tchar(*s))
            s++;
        if (s == line || *s != ':')
            return field_line_error(line, s, req->nheaders + 1, err);
        ve = s;
        s++;
        while (rc_http_is_ows(*s))
            s++;
        v = s;
        while (rc_http_vchar_tab[(unsigned char)*s])
            s++;
        if (s[0] != '\r' || s[1] != '\n') {
            rc_err_set(err, 400, "bad_request",
                       "header \"%s\" contains byte 0x%02x; control characters and bare CR or "
                       "LF are not allowed in header values",
                       show(rc_slice_make(line, (size_t)(ve - line)), shown), (unsigned char)*s);
            return RC_PARSE_FAIL;
        }
        if (req->nheaders >= max)
            return too_many_headers(max, err);
        h = &req->headers[req->nheaders++];
        h->name = rc_slice_make(line, (size_t)(ve - line));
        ve = s;
        while (ve > v && rc_http_is_ows(ve[-1]))
            ve--;
        h->value = rc_slice_make(v, (size_t)(ve - v));
        p = (size_t)(s + 2 - buf);
    }
    return RC_PARSE_DONE;
}

/* ---- framing and connection semantics ------------------------------------- */

struct framing {
    bool host;
    bool te;
    bool te_other;
    bool expect_other;
    bool conn_close;
    bool conn_keep_alive;
    struct rc_slice te_value, expect_value;
};

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). 0, -EINVAL (not digits), -ERANGE. */
static int parse_decimal(struct rc_slice v, size_t *out)
{
    size_t n = 0;

    if (v.n == 0)
        return -EINVAL;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -EINVAL;
        if (!rc_mul_size(n, 10, &n) || !rc_add_size(n, (size_t)(v.p[i] - '0'), &n))
            return -ERANGE;
    }
    *out = n;
    return 0;
}

static enum rc_parse note_content_length(const struct rc_http_header *h,
                                         struct rc_http_request *req, struct rc_err *err)
{
    char shown[SHOW_CAP];
    size_t n = 0;
    int rc = parse_decimal(h->value, &n);

    if (rc == -EINVAL) {
        rc_err_set(err, 400, "bad_request",
                   "header \"Content-Length\" has a non-numeric value \"%s\"; send a decimal "
                   "byte count",
                   show(h->value, shown));
        return RC_PARSE_FAIL;
    }
    if (rc == -ERANGE) {
        rc_err_set(err, 400, "bad_request",
                   "header \"Content-Length\" value \"%s\" overflows; send a byte count "
                   "below 2^64",
                   show(h->value, shown));
        return RC_PARSE_FAIL;
    }
    if (req->has_content_length && req->content_length != n) {
        rc_err_set(err, 400, "bad_request",
                   "two Content-Length headers disagree (%zu and %zu); send exactly one",
                   req->content_length, n);
        return RC_PARSE_FAIL;
    }
    req->has_content_length = true;
    req->content_length = n;
    return RC_PARSE_DONE;
}

static enum rc_parse note_header(const struct rc_http_header *h, struct rc_http_request *req,
                                 struct framing *f, struct rc_err *err)
{
    switch (h->name.n) {
    case 4:
        if (!rc_slice_ieq(h->name, "host"))
            break;
        if (f->host) {
            rc_err_set(err, 400, "bad_request",
                       "request has more than one Host header; send exactly one");
            return RC_PARSE_FAIL;
        }
        f->host = true;
        break;
    case 6:
        if (!rc_slice_ieq(h->name, "expect"))
            break;
        if (rc_slice_ieq(h->value, "100-continue")) {
            /* RFC 9110 §10.1.1: ignore 100-continue from an HTTP/1.0 client. */
            req->expect_continue = req->minor_version == 1;
        } else if (!f->expect_other) {
            f->expect_other = true;
            f->expect_value = h->value;
        }
        break;
    case 10:
        if (!rc_slice_ieq(h->name, "connection"))
            break;
        f->conn_close |= rc_http_has_token(h->value, "close");
        f->conn_keep_alive |= rc_http_has_token(h->value, "keep-alive");
        break;
    case 14:
        if (rc_slice_ieq(h->name, "content-length"))
            return note_content_length(h, req, err);
        break;
    case 17:
        if (!rc_slice_ieq(h->name, "transfer-encoding"))
            break;
        /* A second header appends a coding ("chunked, chunked"): not exactly chunked. */
        if (f->te || !rc_slice_ieq(h->value, "chunked")) {
            f->te_other = true;
            f->te_value = h->value;
        }
        f->te = true;
        break;
    default:
        break;
    }
    return RC_PARSE_DONE;
}

/* Decide framing, keep-alive and expectations from the parsed fields. The
 * order puts request smuggling checks before feature checks. */
static enum rc_parse finish_request(struct rc_http_request *req, const struct rc_http_limits *lim,
                                    struct rc_err *err)
{
    struct framing f = {0};
    char shown[SHOW_CAP];

    for (unsigned i = 0; i < req->nheaders; i++)
        if (note_header(&req->headers[i], req, &f, err) != RC_PARSE_DONE)
            return RC_PARSE_FAIL;

    if (req->minor_version == 1 && !f.host) {
        rc_err_set(err, 400, "bad_request",
                   "HTTP/1.1 request has no Host header; send \"Host: <server name>\"");
        return RC_PARSE_FAIL;
    }
    if (f.te && req->has_content_length) {
        rc_err_set(err, 400, "bad_request",
                   "request has both Content-Length and Transfer-Encoding (request smuggling "
                   "risk); send only one of them");
        return RC_PARSE_FAIL;
    }
    if (f.te && req->minor_version == 0) {
        rc_err_set(err, 400, "bad_request",
                   "HTTP/1.0 request has a Transfer-Encoding header; use HTTP/1.1 for chunked "
                   "bodies or send Content-Length");
        return RC_PARSE_FAIL;
    }
    if (f.te_other) {
        rc_err_set(err, 501, "not_implemented",
                   "Transfer-Encoding \"%s\" is not supported; send exactly \"chunked\" or use "
                   "Content-Length",
                   show(f.te_value, shown));
        return RC_PARSE_FAIL;
    }
    req->chunked = f.te;
    if (f.expect_other) {
        rc_err_set(err, 417, "expectation_failed",
                   "header \"Expect: %s\" cannot be met; only \"100-continue\" is supported",
                   show(f.expect_value, shown));
        return RC_PARSE_FAIL;
    }
    if ((req->method == RC_HTTP_POST || req->method == RC_HTTP_PUT ||
         req->method == RC_HTTP_PATCH) &&
        !req->has_content_length && !req->chunked) {
        rc_err_set(err, 411, "length_required",
                   "%s request has no Content-Length; send Content-Length (or "
                   "Transfer-Encoding: chunked), e.g. \"Content-Length: 0\" for an empty body",
                   show(req->method_str, shown));
        return RC_PARSE_FAIL;
    }
    if (req->has_content_length && req->content_length > lim->max_body) {
        rc_err_set(err, 413, "payload_too_large",
                   "request body of %zu bytes is over the limit of %zu bytes; send a smaller "
                   "body",
                   req->content_length, lim->max_body);
        return RC_PARSE_FAIL;
    }
    if (req->minor_version == 1)
        req->keep_alive = !f.conn_close;
    else
        req->keep_alive = f.conn_keep_alive && !f.conn_close;
    return RC_PARSE_DONE;
}

/* ---- public: head --------------------------------------------------------- */

enum rc_parse rc_http_parse_head(const char *buf, size_t len, size_t last_len,
                                 const struct rc_http_limits *lim, struct rc_http_request *req,
                                 size_t *consumed, struct rc_err *err)
{
    unsigned max_headers =
        lim->max_headers < RC_HTTP_MAX_HEADERS ? lim->max_headers : RC_HTTP_MAX_HEADERS;
    size_t start = 0, room, rl_lf, from, end;
    const char *lf;
    enum rc_parse r;

    *consumed = 0;
    req->nheaders = 0;
    req->minor_version = 1;
    req->keep_alive = false;
    req->expect_continue = false;
    req->chunked = false;
    req->has_content_length = false;
    req->content_length = 0;
    if (last_len > len)
        last_len = 0;

    r = skip_leading_crlf(buf, len, &start, err);
    if (r != RC_PARSE_DONE)
        return r;

    room = len - start < lim->max_request_line ? len - start : lim->max_request_line;
    lf = memchr(buf + start, '\n', room);
    if (!lf) {
        if (len - start >= lim->max_request_line) {
            rc_err_set(err, 414, "uri_too_long",
                       "request line is longer than %zu bytes; shorten the URL (send large "
                       "data in a request body)",
                       lim->max_request_line);
            return RC_PARSE_FAIL;
        }
        if (len >= lim->max_header_bytes)
            return head_too_large(lim->max_header_bytes, err);
        return check_method_prefix(buf, start, len, err);
    }
    rl_lf = (size_t)(lf - buf);
    r = parse_request_line(buf, start, rl_lf, req, err);
    if (r != RC_PARSE_DONE)
        return r;

    /* The head ends at the first CRLFCRLF; its first CRLF may end the request
     * line. Bytes before last_len - 3 were searched by the previous call. */
    from = rl_lf - 1;
    if (last_len > 3 && last_len - 3 > from)
        from = last_len - 3;
    end = find_head_end(buf, from, len);
    if (end == SIZE_MAX) {
        if (len >= lim->max_header_bytes)
            return head_too_large(lim->max_header_bytes, err);
        return scan_partial_headers(buf, rl_lf + 1, len, max_headers, err);
    }
    if (end + 4 > lim->max_header_bytes)
        return head_too_large(lim->max_header_bytes, err);
    r = parse_fields(buf, rl_lf + 1, end + 2, max_headers, req, err);
    if (r != RC_PARSE_DONE)
        return r;
    r = finish_request(req, lim, err);
    if (r != RC_PARSE_DONE)
        return r;
    *consumed = end + 4;
    return RC_PARSE_DONE;
}

const struct rc_http_header *rc_http_find_header(const struct rc_http_request *req,
                                                 const char *name)
{
    for (unsigned i = 0; i < req->nheaders; i++)
        if (rc_slice_ieq(req->headers[i].name, name))
            return &req->headers[i];
    return NULL;
}

bool rc_http_has_token(struct rc_slice value, const char *token)
{
    const char *p = value.p;
    const char *end = value.p + value.n;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *s = p;

        while (s < e && rc_http_is_ows(*s))
            s++;
        while (e > s && rc_http_is_ows(e[-1]))
            e--;
        if (rc_slice_ieq(rc_slice_make(s, (size_t)(e - s)), token))
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

bool rc_http_header_has_token(const struct rc_http_request *req, const char *name,
                              const char *token)
{
    for (unsigned i = 0; i < req->nheaders; i++)
        if (rc_slice_ieq(req->headers[i].name, name) &&
            rc_http_has_token(req->headers[i].value, token))
            return true;
    return false;
}

unsigned rc_http_header_count(const struct rc_http_request *req, const char *name)
{
    unsigned n = 0;

    for (unsigned i = 0; i < req->nheaders; i++)
        n += rc_slice_ieq(req->headers[i].name, name);
    return n;
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *rc_http_reason(int status)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}
