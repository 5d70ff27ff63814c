/* http_parse.h - bounded, incremental HTTP/1.1 request parser (RFC 9110, RFC 9112).
 * Owner: none; pure functions over caller-owned buffers. A shard calls them on
 *   the bytes of its own connections; nothing here allocates, locks or logs.
 * Head: rc_http_parse_head() is stateless: call it again from the start of the
 *   buffer with more bytes. Its results are slices into that buffer, valid as
 *   long as the caller keeps those bytes where they are.
 * Body: Content-Length bodies need no parser (read content_length bytes);
 *   chunked bodies go through rc_http_chunked_decode(), which keeps its state in
 *   struct rc_http_chunked and decodes in place.
 * Invariants: every length and count is capped by struct rc_http_limits and
 *   RC_HTTP_MAX_HEADERS before use; size arithmetic is overflow-checked; input
 *   never reaches assert/abort; every failure fills struct rc_err with the HTTP
 *   status to answer with, a stable code and a sentence naming the bad part.
 * Strictness (request-smuggling defence): CRLF line endings only, no obs-fold,
 *   no whitespace before a header colon, Content-Length and Transfer-Encoding
 *   never together, one agreed Content-Length, Transfer-Encoding only "chunked".
 * Hot path: benchmarked by bench/bench_http.cc; run it before changing the
 *   parsing loops. */
#ifndef RINGCAST_HTTP_PARSE_H
#define RINGCAST_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hard cap on the header array; lim->max_headers is clamped to it. */
#define RC_HTTP_MAX_HEADERS 64u
/* Empty lines (CRLF) ignored before a request line (RFC 9112 §2.2); more is 400. */
#define RC_HTTP_MAX_LEADING_CRLF 8u
/* Longest chunk-size line (size digits + extensions + CRLF); longer is 400. */
#define RC_HTTP_MAX_CHUNK_LINE 1024u

/* Defaults used by rc_http_limits_default(). */
#define RC_HTTP_DEFAULT_MAX_REQUEST_LINE 8192u
#define RC_HTTP_DEFAULT_MAX_HEADER_BYTES 16384u
#define RC_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)

struct rc_http_limits {
    size_t max_request_line; /* bytes incl. CRLF; over -> 414 "uri_too_long" */
    size_t max_header_bytes; /* whole head (request line + headers + CRLFCRLF); over -> 431;
                                also bounds chunked trailers */
    unsigned max_headers;    /* count, clamped to RC_HTTP_MAX_HEADERS; over -> 431 */
    size_t max_body;         /* Content-Length or decoded chunked total; over -> 413 */
};

/* Fill *lim with the RC_HTTP_DEFAULT_* values and RC_HTTP_MAX_HEADERS. */
void rc_http_limits_default(struct rc_http_limits *lim);

enum rc_http_method {
    RC_HTTP_GET,
    RC_HTTP_HEAD,
    RC_HTTP_POST,
    RC_HTTP_PUT,
    RC_HTTP_PATCH,
    RC_HTTP_DELETE,
    RC_HTTP_OPTIONS,
    RC_HTTP_OTHER, /* any other valid token; see method_str */
};

struct rc_http_header {
    struct rc_slice name;  /* as sent (compare case-insensitively) */
    struct rc_slice value; /* leading and trailing OWS (SP / HTAB) trimmed */
};

struct rc_http_request {
    enum rc_http_method method;
    struct rc_slice method_str;
    struct rc_slice target;      /* as sent: origin-form, or "*" for OPTIONS */
    struct rc_slice path, query; /* target split at the first '?'; query without '?' */
    int minor_version;           /* 0 or 1 */
    struct rc_http_header headers[RC_HTTP_MAX_HEADERS];
    unsigned nheaders;
    bool keep_alive;      /* 1.1: true unless "Connection: close"; 1.0: only with keep-alive */
    bool expect_continue; /* "Expect: 100-continue" on HTTP/1.1 (ignored on 1.0) */
    bool chunked;         /* "Transfer-Encoding: chunked" */
    bool has_content_length;
    size_t content_length; /* <= lim->max_body when has_content_length */
};

/* Parse the request head at buf[0..len).
 * Stateless: with more bytes, call again from the start of the same buffer;
 * last_len = the len of the previous call (or 0) skips re-scanning the old bytes
 * for the end of the head. Empty lines before the request line are skipped
 * (at most RC_HTTP_MAX_LEADING_CRLF) and count in *consumed.
 * DONE: *req is filled, slices point into buf, *consumed = head length incl.
 *   the blank line; the body (if any) starts at buf + *consumed.
 * MORE: the head is incomplete; *req is unspecified. Fails instead, without
 *   waiting, once a limit is already exceeded (414/431), a complete request line
 *   is malformed, or a bare LF is seen.
 * FAIL: err->status / code / msg say what to answer; close the connection
 *   after answering, the stream position is lost. */
enum rc_parse rc_http_parse_head(const char *buf, size_t len, size_t last_len,
                                 const struct rc_http_limits *lim, struct rc_http_request *req,
                                 size_t *consumed, struct rc_err *err) RC_MUST_CHECK;

/* First header named name (ASCII case-insensitive), or NULL. */
const struct rc_http_header *rc_http_find_header(const struct rc_http_request *req,
                                                 const char *name);

/* True if the comma-separated list value contains token (ASCII case-insensitive,
 * elements trimmed of OWS, empty elements ignored). */
bool rc_http_has_token(struct rc_slice value, const char *token);

/* True if the list-valued field name (Connection, Upgrade...) contains token in any of
 * its field lines: RFC 9110 §5.3 makes several lines of one field one comma-separated
 * list ("Connection: keep-alive" + "Connection: Upgrade" holds "upgrade"). */
bool rc_http_header_has_token(const struct rc_http_request *req, const char *name,
                              const char *token);

/* Number of field lines named name (ASCII case-insensitive): callers refuse a field
 * that must appear at most once (Sec-WebSocket-Key, RFC 6455 §11.3.1) when it is > 1. */
unsigned rc_http_header_count(const struct rc_http_request *req, const char *name);

/* Incremental chunked-body decoder (RFC 9112 §7.1). Fields are private. */
struct rc_http_chunked {
    int state;
    size_t remaining;     /* chunk size being read, then data bytes left in it */
    size_t total;         /* decoded bytes so far, <= lim->max_body */
    size_t line_len;      /* bytes of the current size or trailer line */
    size_t trailer_bytes; /* bytes of the trailer section so far */
    unsigned trailer_count;
    bool have_digit;
};

void rc_http_chunked_init(struct rc_http_chunked *c);

/* Decode chunked input buf[0..len) in place: data bytes move to the front.
 * DONE: the last chunk and the trailer section were consumed; *consumed = input
 *   bytes used (the next request starts at buf + *consumed, untouched),
 *   *out_len = data bytes at buf[0..*out_len). Further calls return DONE with
 *   nothing consumed.
 * MORE: all input used (*consumed = len); the *out_len data bytes at the front
 *   are final: keep them and call again with the next input.
 * FAIL: 400 bad framing (hex size, overflow, missing CRLF, long size line,
 *   control bytes), 413 decoded total over lim->max_body, 431 trailers over
 *   lim->max_header_bytes or lim->max_headers. The decoder stays failed. */
enum rc_parse rc_http_chunked_decode(struct rc_http_chunked *c, char *buf, size_t len,
                                     const struct rc_http_limits *lim, size_t *consumed,
                                     size_t *out_len, struct rc_err *err) RC_MUST_CHECK;

/* Iterate the key=value pairs of a query (application/x-www-form-urlencoded).
 * *query_rest is advanced past the pair; empty pairs ("a=1&&b=2") are skipped.
 * key and val are raw (still encoded) slices; val is empty when there is no '='.
 * Returns false when no pair is left. */
bool rc_http_query_next(struct rc_slice *query_rest, struct rc_slice *key, struct rc_slice *val);

/* Percent-decode src into dst (cap bytes, not NUL-terminated). With
 * plus_is_space, '+' decodes to ' ' (query components). Returns the decoded
 * length, -EINVAL for a bad %XX escape or a NUL byte (literal or %00), or
 * -ENOSPC if the result does not fit; the first problem met wins. */
ssize_t rc_http_url_decode(struct rc_slice src, char *dst, size_t cap, bool plus_is_space);

/* Reason phrase for a status code ("Not Found"), "Unknown" otherwise. */
const char *rc_http_reason(int status);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_HTTP_PARSE_H */
