/* test_http_parse.c - unit tests for the HTTP/1.1 request parser (src/proto/http_parse.c).
 * Parsers are tested whole, at every prefix (in exact-size heap copies so that
 * ASan sees any read past the end) and byte by byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringcast/http_parse.h"

static const struct rc_http_limits test_lim = {
    .max_request_line = 1024,
    .max_header_bytes = 4096,
    .max_headers = 16,
    .max_body = 65536,
};

static const char get_req[] = "GET /api/realtime/events?topic=a.b&x=%20y HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "User-Agent: test/1.0\r\n"
                              "Accept:  \t text/event-stream \t \r\n"
                              "X-Empty:\r\n"
                              "\r\n";

static const char post_req[] = "POST /api/realtime/publish HTTP/1.1\r\n"
                               "Host: h\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "{\"topic\":\"a\"}";

static const char chunked_req[] = "PUT /x HTTP/1.1\r\n"
                                  "Host: h\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "\r\n"
                                  "4\r\nWiki\r\n0\r\n\r\n";

/* Valid heads (each is exactly one head) used for the prefix and byte tests. */
static const char *const valid_heads[] = {
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "\r\n\r\nGET /after/empty/lines HTTP/1.1\r\nHost: h\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\nX-A:\r\nX-B: \t v \t\r\n\r\n",
    "POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    "PATCH /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: keep-alive\r\nUpgrade: "
    "websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
};

/* A WebSocket upgrade whose Connection and Upgrade lists are split over two field lines,
 * and whose Sec-WebSocket-Key is given twice. */
static const char split_lists_req[] = "GET /api/realtime/ws HTTP/1.1\r\n"
                                      "Host: h\r\n"
                                      "Connection: keep-alive\r\n"
                                      "Upgrade: h2c\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "connection:  Upgrade \r\n"
                                      "UPGRADE: websocket\r\n"
                                      "sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                                      "Sec-WebSocket-Version: 13\r\n"
                                      "\r\n";

static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static void assert_slice(struct rc_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n || memcmp(s.p, lit, n) != 0)
        fail_msg("slice \"%.*s\" != \"%s\"", (int)s.n, s.p, lit);
}

static enum rc_parse parse_lim(const char *s, const struct rc_http_limits *lim,
                               struct rc_http_request *req, size_t *consumed, struct rc_err *err)
{
    return rc_http_parse_head(s, strlen(s), 0, lim, req, consumed, err);
}

static enum rc_parse parse(const char *s, struct rc_http_request *req, size_t *consumed,
                           struct rc_err *err)
{
    return parse_lim(s, &test_lim, req, consumed, err);
}

/* The whole of s must FAIL with status/code and a message containing fragment. */
static void assert_fails_n(const char *s, size_t n, const struct rc_http_limits *lim, int status,
                           const char *code, const char *fragment)
{
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 99;
    char *b = dup_exact(s, n);

    assert_int_equal(rc_http_parse_head(b, n, 0, lim, &req, &consumed, &err), RC_PARSE_FAIL);
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);
    if (!strstr(err.msg, fragment))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, fragment);
    assert_int_equal(consumed, 0);
    free(b);
}

static void assert_fails_lim(const char *s, const struct rc_http_limits *lim, int status,
                             const char *code, const char *fragment)
{
    assert_fails_n(s, strlen(s), lim, status, code, fragment);
}

static void assert_fails(const char *s, int status, const char *code, const char *fragment)
{
    assert_fails_lim(s, &test_lim, status, code, fragment);
}

static void assert_done(const char *s, struct rc_http_request *req)
{
    struct rc_err err = {0};
    size_t consumed = 0;
    enum rc_parse r = parse(s, req, &consumed, &err);

    if (r != RC_PARSE_DONE)
        fail_msg("parse returned %d: %s", (int)r, err.msg);
    assert_int_equal(consumed, strlen(s));
}

/* ---- valid heads ------------------------------------------------------------ */

static void test_http_parse_get_fills_every_field(void **state)
{
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    assert_int_equal(parse(get_req, &req, &consumed, &err), RC_PARSE_DONE);
    assert_int_equal(consumed, strlen(get_req));
    assert_int_equal(req.method, RC_HTTP_GET);
    assert_slice(req.method_str, "GET");
    assert_slice(req.target, "/api/realtime/events?topic=a.b&x=%20y");
    assert_slice(req.path, "/api/realtime/events");
    assert_slice(req.query, "topic=a.b&x=%20y");
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.nheaders, 4);
    assert_slice(req.headers[0].name, "Host");
    assert_slice(req.headers[0].value, "example.com");
    assert_slice(req.headers[1].name, "User-Agent");
    assert_slice(req.headers[1].value, "test/1.0");
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    assert_false(req.chunked);
    assert_false(req.has_content_length);
}

static void test_http_parse_trims_ows_from_values(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done(get_req, &req);
    assert_slice(req.headers[2].name, "Accept");
    assert_slice(req.headers[2].value, "text/event-stream");
    assert_slice(req.headers[3].name, "X-Empty");
    assert_slice(req.headers[3].value, "");
}

static void test_http_parse_accepts_every_method(void **state)
{
    static const struct {
        const char *name;
        enum rc_http_method m;
    } methods[] = {
        {"GET", RC_HTTP_GET},         {"HEAD", RC_HTTP_HEAD},      {"POST", RC_HTTP_POST},
        {"PUT", RC_HTTP_PUT},         {"PATCH", RC_HTTP_PATCH},    {"DELETE", RC_HTTP_DELETE},
        {"OPTIONS", RC_HTTP_OPTIONS}, {"PROPFIND", RC_HTTP_OTHER}, {"get", RC_HTTP_OTHER},
    };
    (void)state;

    for (size_t i = 0; i < RC_ARRAY_LEN(methods); i++) {
        char s[128];
        struct rc_http_request req;
        snprintf(s, sizeof(s), "%s /m HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
                 methods[i].name);
        assert_done(s, &req);
        assert_int_equal(req.method, methods[i].m);
        assert_slice(req.method_str, methods[i].name);
        assert_true(req.has_content_length);
        assert_int_equal(req.content_length, 0);
    }
}

static void test_http_parse_options_star_target(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_int_equal(req.method, RC_HTTP_OPTIONS);
    assert_slice(req.target, "*");
    assert_slice(req.path, "*");
    assert_slice(req.query, "");
}

static void test_http_parse_splits_query_at_first_question_mark(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.path, "/p");
    assert_slice(req.query, "");
    assert_done("GET /p?a=1?b HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.path, "/p");
    assert_slice(req.query, "a=1?b");
    assert_done("GET /plain HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.path, "/plain");
    assert_slice(req.query, "");
}

static void test_http_parse_post_body_starts_at_consumed(void **state)
{
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    assert_int_equal(parse(post_req, &req, &consumed, &err), RC_PARSE_DONE);
    assert_int_equal(req.method, RC_HTTP_POST);
    assert_true(req.has_content_length);
    assert_int_equal(req.content_length, 13);
    assert_int_equal(consumed + 13, strlen(post_req));
    assert_memory_equal(post_req + consumed, "{\"topic\":\"a\"}", 13);
}

static void test_http_parse_chunked_request_sets_chunked(void **state)
{
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    assert_int_equal(parse(chunked_req, &req, &consumed, &err), RC_PARSE_DONE);
    assert_true(req.chunked);
    assert_false(req.has_content_length);
    assert_string_equal(chunked_req + consumed, "4\r\nWiki\r\n0\r\n\r\n");
}

static void test_http_parse_same_duplicate_content_length_is_accepted(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n",
                &req);
    assert_int_equal(req.content_length, 7);
}

static void test_http_parse_http10_needs_no_host(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done("GET / HTTP/1.0\r\n\r\n", &req);
    assert_int_equal(req.minor_version, 0);
    assert_int_equal(req.nheaders, 0);
}

static void test_http_parse_skips_leading_empty_lines(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done("\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.target, "/x");
}

/* ---- keep-alive and Expect ---------------------------------------------------- */

static bool keep_alive_of(const char *s)
{
    struct rc_http_request req;
    assert_done(s, &req);
    return req.keep_alive;
}

static void test_http_parse_keep_alive_http11_default_on(void **state)
{
    (void)state;
    assert_true(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_true(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n"));
}

static void test_http_parse_keep_alive_http11_off_with_close(void **state)
{
    (void)state;
    assert_false(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    assert_false(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: TE, Close \r\n\r\n"));
    assert_false(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
                               "Connection: close\r\n\r\n"));
}

static void test_http_parse_keep_alive_http10_default_off(void **state)
{
    (void)state;
    assert_false(keep_alive_of("GET / HTTP/1.0\r\n\r\n"));
    assert_false(keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
}

static void test_http_parse_keep_alive_http10_on_with_keep_alive(void **state)
{
    (void)state;
    assert_true(keep_alive_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert_true(keep_alive_of("GET / HTTP/1.0\r\nConnection: foo ,keep-alive\r\n\r\n"));
}

static void test_http_parse_expect_100_continue(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: 100-Continue\r\n\r\n",
                &req);
    assert_true(req.expect_continue);
    assert_done("POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n", &req);
    assert_false(req.expect_continue);
}

/* ---- pipelining, prefixes, byte by byte ---------------------------------------- */

static void test_http_parse_pipelined_heads_via_consumed(void **state)
{
    static const char two[] = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
                              "GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t n = strlen(two), c1 = 0, c2 = 0;
    char *b = dup_exact(two, n);
    (void)state;

    assert_int_equal(rc_http_parse_head(b, n, 0, &test_lim, &req, &c1, &err), RC_PARSE_DONE);
    assert_int_equal(c1, strlen("GET /one HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_slice(req.target, "/one");
    assert_true(req.keep_alive);
    assert_int_equal(rc_http_parse_head(b + c1, n - c1, 0, &test_lim, &req, &c2, &err),
                     RC_PARSE_DONE);
    assert_int_equal(c1 + c2, n);
    assert_slice(req.target, "/two");
    assert_false(req.keep_alive);
    free(b);
}

static void test_http_parse_every_prefix_returns_more(void **state)
{
    (void)state;
    for (size_t t = 0; t < RC_ARRAY_LEN(valid_heads); t++) {
        size_t n = strlen(valid_heads[t]);
        for (size_t k = 0; k < n; k++) {
            struct rc_http_request req;
            struct rc_err err = {0};
            size_t consumed = 99;
            char *b = dup_exact(valid_heads[t], k);
            enum rc_parse r = rc_http_parse_head(b, k, 0, &test_lim, &req, &consumed, &err);
            if (r != RC_PARSE_MORE)
                fail_msg("head %zu prefix %zu returned %d (%s)", t, k, (int)r, err.msg);
            assert_int_equal(consumed, 0);
            free(b);
        }
    }
}

static void test_http_parse_byte_by_byte_with_last_len(void **state)
{
    (void)state;
    for (size_t t = 0; t < RC_ARRAY_LEN(valid_heads); t++) {
        const char *s = valid_heads[t];
        size_t n = strlen(s), consumed = 0, whole_consumed = 0;
        struct rc_http_request req, whole;
        struct rc_err err = {0};
        char *b = dup_exact(s, n);

        assert_int_equal(parse(s, &whole, &whole_consumed, &err), RC_PARSE_DONE);
        for (size_t k = 1; k < n; k++)
            assert_int_equal(rc_http_parse_head(b, k, k - 1, &test_lim, &req, &consumed, &err),
                             RC_PARSE_MORE);
        assert_int_equal(rc_http_parse_head(b, n, n - 1, &test_lim, &req, &consumed, &err),
                         RC_PARSE_DONE);
        assert_int_equal(consumed, whole_consumed);
        assert_int_equal(req.method, whole.method);
        assert_int_equal(req.nheaders, whole.nheaders);
        assert_int_equal(req.keep_alive, whole.keep_alive);
        assert_int_equal(req.chunked, whole.chunked);
        assert_int_equal(req.expect_continue, whole.expect_continue);
        assert_int_equal(req.target.p - b, whole.target.p - s);
        for (unsigned i = 0; i < req.nheaders; i++) {
            assert_int_equal(req.headers[i].value.p - b, whole.headers[i].value.p - s);
            assert_int_equal(req.headers[i].value.n, whole.headers[i].value.n);
        }
        free(b);
    }
}

static void test_http_parse_tolerates_last_len_beyond_len(void **state)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    assert_int_equal(rc_http_parse_head(s, strlen(s), 1000, &test_lim, &req, &consumed, &err),
                     RC_PARSE_DONE);
    assert_int_equal(consumed, strlen(s));
}

/* ---- 400 ------------------------------------------------------------------------ */

static void test_http_parse_rejects_bad_method_char(void **state)
{
    (void)state;
    assert_fails("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request",
                 "method \"G\" is followed by byte 0x28");
    assert_fails(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request", "byte 0x20");
}

static void test_http_parse_rejects_bad_method_before_line_ends(void **state)
{
    (void)state;
    assert_fails("GE\x01", 400, "bad_request", "byte 0x01");
    assert_fails("\x16\x03\x01", 400, "bad_request", "TLS");
    assert_fails(" GET /", 400, "bad_request", "starts with byte 0x20");
}

static void test_http_parse_rejects_target_without_slash(void **state)
{
    (void)state;
    assert_fails("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request",
                 "\"http://h/x\" must be a path starting with '/'");
    assert_fails("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request",
                 "only allowed with OPTIONS");
}

static void test_http_parse_rejects_bad_target_bytes(void **state)
{
    (void)state;
    assert_fails("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request",
                 "byte 0x7f at offset 2");
    assert_fails("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request", "byte 0x23");
    assert_fails("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request", "byte 0xc3");
    assert_fails("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request", "target after");
    assert_fails("GET /\r\nHost: h\r\n\r\n", 400, "bad_request", "has no HTTP version");
}

static void test_http_parse_rejects_bare_lf(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\nHost: h\n\n", 400, "bad_request", "bare LF");
    assert_fails("GET / HTTP/1.1\r\nHost: h\n\r\n", 400, "bad_request", "bare LF");
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\n\n", 400, "bad_request", "bare LF");
    assert_fails("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request", "bare CR or LF");
}

static void test_http_parse_rejects_bare_lf_before_head_ends(void **state)
{
    /* No CRLFCRLF yet: a bare-LF client must get its 400 now, not after a timeout. */
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nHost: h\nAccept: x\n", 400, "bad_request",
                 "header line 1 ends with a bare LF");
}

static void test_http_parse_rejects_control_char_in_value(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01z\r\n\r\n", 400, "bad_request",
                 "header \"X-A\" contains byte 0x01");
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rz\r\n\r\n", 400, "bad_request",
                 "header \"X-A\" contains byte 0x0d");
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0z\r\n\r\n";
        assert_fails_n(nul, sizeof(nul) - 1, &test_lim, 400, "bad_request",
                       "header \"X-A\" contains byte 0x00");
    }
}

static void test_http_parse_rejects_bad_header_name_char(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n", 400, "bad_request",
                 "header name \"X\" is followed by byte 0x28");
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", 400, "bad_request",
                 "header line 2 starts with byte 0x3a");
}

static void test_http_parse_rejects_obs_fold(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", 400, "bad_request",
                 "header line 3 starts with whitespace (obs-fold");
}

static void test_http_parse_rejects_space_before_colon(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, "bad_request",
                 "header \"Host\" has whitespace before the colon");
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", 400, "bad_request",
                 "header \"Content-Length\" has whitespace before the colon");
}

static void test_http_parse_rejects_header_without_colon(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400, "bad_request",
                 "header line \"NoColon\" has no colon");
}

static void test_http_parse_rejects_conflicting_content_length(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                 400, "bad_request", "two Content-Length headers disagree (5 and 6)");
}

static void test_http_parse_rejects_content_length_with_chunked(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 400, "bad_request", "both Content-Length and Transfer-Encoding");
    /* Smuggling is reported even when the coding is unsupported. */
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                 "Content-Length: 5\r\n\r\n",
                 400, "bad_request", "both Content-Length and Transfer-Encoding");
}

static void test_http_parse_rejects_non_numeric_content_length(void **state)
{
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12a\r\n\r\n", &req, &consumed, &err),
        RC_PARSE_FAIL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "bad_request");
    assert_string_equal(err.msg, "header \"Content-Length\" has a non-numeric value \"12a\"; "
                                 "send a decimal byte count");
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, "bad_request",
                 "non-numeric value \"-1\"");
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400, "bad_request",
                 "non-numeric value \"\"");
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", 400, "bad_request",
                 "non-numeric value \"1 2\"");
}

static void test_http_parse_rejects_overflowing_content_length(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", 400,
                 "bad_request", "\"18446744073709551616\" overflows");
}

static void test_http_parse_rejects_missing_host_on_http11(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "bad_request", "no Host header");
}

static void test_http_parse_rejects_duplicate_host(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "bad_request",
                 "more than one Host header");
}

static void test_http_parse_rejects_garbage_version(void **state)
{
    (void)state;
    assert_fails("GET / HTXP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request",
                 "ends with \"HTXP/1.1\" instead of an HTTP version");
    assert_fails("GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", 400, "bad_request", "\"HTTP/1.1 x\"");
    assert_fails("GET / HTTP/1.\r\nHost: h\r\n\r\n", 400, "bad_request", "\"HTTP/1.\"");
    assert_fails("GET / http/1.1\r\nHost: h\r\n\r\n", 400, "bad_request", "\"http/1.1\"");
}

static void test_http_parse_rejects_transfer_encoding_on_http10(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_request",
                 "HTTP/1.0 request has a Transfer-Encoding header");
}

static void test_http_parse_rejects_too_many_leading_empty_lines(void **state)
{
    (void)state;
    assert_fails("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n", 400, "bad_request",
                 "more than 8 empty lines");
}

/* ---- 411 413 414 417 431 501 505 --------------------------------------------------- */

static void test_http_parse_411_when_body_method_has_no_length(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\n\r\n", 411, "length_required",
                 "POST request has no Content-Length");
    assert_fails("PUT / HTTP/1.1\r\nHost: h\r\n\r\n", 411, "length_required", "PUT request");
    assert_fails("PATCH / HTTP/1.0\r\n\r\n", 411, "length_required", "PATCH request");
}

static void test_http_parse_413_when_content_length_over_max_body(void **state)
{
    struct rc_http_limits lim = test_lim;
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    lim.max_body = 100;
    assert_int_equal(parse_lim("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", &lim,
                               &req, &consumed, &err),
                     RC_PARSE_DONE);
    assert_fails_lim("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", &lim, 413,
                     "payload_too_large", "body of 101 bytes is over the limit of 100 bytes");
}

/* "GET /aaa...a HTTP/1.1\r\n" of exactly line_len bytes, then Host and the blank line. */
static char *request_with_line_len(size_t line_len, bool complete)
{
    size_t path = line_len - strlen("GET / HTTP/1.1\r\n");
    char *s = malloc(line_len + 64);
    size_t o = 0;

    assert_non_null(s);
    memcpy(s, "GET /", 5);
    o = 5;
    memset(s + o, 'a', path);
    o += path;
    strcpy(s + o, complete ? " HTTP/1.1\r\nHost: h\r\n\r\n" : "");
    return s;
}

static void test_http_parse_414_when_request_line_too_long(void **state)
{
    struct rc_http_limits lim = test_lim;
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    char *ok = request_with_line_len(100, true);
    char *over = request_with_line_len(101, true);
    (void)state;

    lim.max_request_line = 100;
    assert_int_equal(parse_lim(ok, &lim, &req, &consumed, &err), RC_PARSE_DONE);
    assert_fails_lim(over, &lim, 414, "uri_too_long", "longer than 100 bytes");
    free(ok);
    free(over);
}

static void test_http_parse_414_before_line_ends(void **state)
{
    struct rc_http_limits lim = test_lim;
    char *s = request_with_line_len(200, false); /* "GET /aaa..." no version, no LF */
    (void)state;

    lim.max_request_line = 100;
    s[100] = '\0'; /* 100 bytes and still no LF: the line can only be longer */
    assert_fails_lim(s, &lim, 414, "uri_too_long", "longer than 100 bytes");
    s[99] = '\0';
    {
        struct rc_http_request req;
        struct rc_err err = {0};
        size_t consumed = 0;
        assert_int_equal(parse_lim(s, &lim, &req, &consumed, &err), RC_PARSE_MORE);
    }
    free(s);
}

static void test_http_parse_417_for_unknown_expectation(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\n", 417,
                 "expectation_failed", "\"Expect: 200-ok\" cannot be met");
}

static void test_http_parse_431_when_too_many_headers(void **state)
{
    struct rc_http_limits lim = test_lim;
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    lim.max_headers = 3;
    assert_int_equal(
        parse_lim("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", &lim, &req, &consumed, &err),
        RC_PARSE_DONE);
    assert_fails_lim("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim, 431,
                     "headers_too_large", "more than 3 header fields");
}

static void test_http_parse_431_header_count_before_head_ends(void **state)
{
    struct rc_http_limits lim = test_lim;
    (void)state;

    lim.max_headers = 3;
    assert_fails_lim("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n", &lim, 431,
                     "headers_too_large", "more than 3 header fields");
}

static void test_http_parse_clamps_max_headers_to_array(void **state)
{
    struct rc_http_limits lim = test_lim;
    char s[2048];
    size_t o;
    (void)state;

    lim.max_headers = 1000;
    o = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (unsigned i = 0; i < RC_HTTP_MAX_HEADERS; i++)
        o += (size_t)snprintf(s + o, sizeof(s) - o, "X: %u\r\n", i);
    snprintf(s + o, sizeof(s) - o, "\r\n");
    assert_fails_lim(s, &lim, 431, "headers_too_large", "more than 64 header fields");
}

static void test_http_parse_431_when_head_too_large(void **state)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: h\r\nX: 123\r\n\r\n"; /* 36 bytes */
    struct rc_http_limits lim = test_lim;
    struct rc_http_request req;
    struct rc_err err = {0};
    size_t consumed = 0;
    (void)state;

    assert_int_equal(strlen(s), 35);
    lim.max_header_bytes = 35;
    assert_int_equal(parse_lim(s, &lim, &req, &consumed, &err), RC_PARSE_DONE);
    lim.max_header_bytes = 34;
    assert_fails_lim(s, &lim, 431, "headers_too_large", "longer than 34 bytes");
}

static void test_http_parse_431_head_size_before_head_ends(void **state)
{
    struct rc_http_limits lim = test_lim;
    (void)state;

    lim.max_header_bytes = 30;
    /* 30 bytes without the blank line: the head can only be longer. */
    assert_fails_lim("GET / HTTP/1.1\r\nHost: h\r\nX: 12", &lim, 431, "headers_too_large",
                     "longer than 30 bytes");
}

static void test_http_parse_501_for_other_transfer_encoding(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                 "not_implemented", "Transfer-Encoding \"gzip\" is not supported");
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
                 "not_implemented", "\"gzip, chunked\"");
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 501, "not_implemented", "Transfer-Encoding \"chunked\"");
}

static void test_http_parse_505_for_unsupported_version(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "version_not_supported",
                 "\"HTTP/2.0\" is not supported");
    assert_fails("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505, "version_not_supported", "HTTP/1.2");
    assert_fails("GET / HTTP/0.9\r\n\r\n", 505, "version_not_supported", "HTTP/0.9");
}

static void test_http_parse_505_before_head_ends(void **state)
{
    (void)state;
    assert_fails("GET / HTTP/2.0\r\n", 505, "version_not_supported", "HTTP/2.0");
}

static void test_http_parse_error_message_escapes_bytes(void **state)
{
    (void)state;
    assert_fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\xff\"\r\n\r\n", 400,
                 "bad_request", "value \"1\\xff\\x22\"");
}

/* ---- helpers ---------------------------------------------------------------------- */

static void test_http_parse_find_header_ignores_case(void **state)
{
    struct rc_http_request req;
    const struct rc_http_header *h;
    (void)state;

    assert_done(get_req, &req);
    h = rc_http_find_header(&req, "user-agent");
    assert_non_null(h);
    assert_ptr_equal(h, &req.headers[1]);
    assert_null(rc_http_find_header(&req, "Cookie"));
    assert_null(rc_http_find_header(&req, "Hos"));
}

static void test_http_parse_has_token_matches_list_elements(void **state)
{
    (void)state;
    assert_true(rc_http_has_token(RC_SLICE_LIT("close"), "close"));
    assert_true(rc_http_has_token(RC_SLICE_LIT("Upgrade, \tKeep-Alive "), "keep-alive"));
    assert_true(rc_http_has_token(RC_SLICE_LIT(",,a,,b"), "b"));
    assert_false(rc_http_has_token(RC_SLICE_LIT("closed"), "close"));
    assert_false(rc_http_has_token(RC_SLICE_LIT("keep-alive-x, y"), "keep-alive"));
    assert_false(rc_http_has_token(RC_SLICE_LIT(""), "close"));
    assert_false(rc_http_has_token(RC_SLICE_LIT(" , "), "close"));
}

static void assert_split_lists(const struct rc_http_request *req)
{
    assert_true(rc_http_header_has_token(req, "Connection", "upgrade"));
    assert_true(rc_http_header_has_token(req, "connection", "Keep-Alive"));
    assert_true(rc_http_header_has_token(req, "Upgrade", "websocket"));
    assert_true(rc_http_header_has_token(req, "upgrade", "h2c"));
    assert_false(rc_http_header_has_token(req, "Connection", "close"));
    assert_false(rc_http_header_has_token(req, "Upgrade", "websocket/13"));
    assert_false(rc_http_header_has_token(req, "Cookie", "websocket"));
    assert_int_equal(rc_http_header_count(req, "Sec-WebSocket-Key"), 2);
    assert_int_equal(rc_http_header_count(req, "Sec-WebSocket-Version"), 1);
    assert_int_equal(rc_http_header_count(req, "Connection"), 2);
    assert_int_equal(rc_http_header_count(req, "Origin"), 0);
    assert_true(req->keep_alive);
}

/* Split at every position: the prefix is incomplete, the whole (resumed with last_len)
 * holds both field lines of each list. */
static void test_http_parse_list_field_spans_field_lines_at_every_split(void **state)
{
    size_t n = strlen(split_lists_req);
    char *b = dup_exact(split_lists_req, n);
    (void)state;

    for (size_t k = 0; k < n; k++) {
        struct rc_http_request req;
        struct rc_err err = {0};
        size_t consumed = 99;

        if (rc_http_parse_head(b, k, 0, &test_lim, &req, &consumed, &err) != RC_PARSE_MORE)
            fail_msg("prefix %zu did not return MORE: %s", k, err.msg);
        assert_int_equal(rc_http_parse_head(b, n, k, &test_lim, &req, &consumed, &err),
                         RC_PARSE_DONE);
        assert_int_equal(consumed, n);
        assert_split_lists(&req);
    }
    free(b);
}

static void test_http_parse_header_helpers_on_one_line(void **state)
{
    struct rc_http_request req;
    (void)state;

    assert_done("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\n\r\n", &req);
    assert_true(rc_http_header_has_token(&req, "Connection", "upgrade"));
    assert_true(rc_http_header_has_token(&req, "Connection", "close"));
    assert_false(req.keep_alive);
    assert_int_equal(rc_http_header_count(&req, "Connection"), 1);
    assert_int_equal(rc_http_header_count(&req, "Host"), 1);
    assert_int_equal(rc_http_header_count(&req, "Hos"), 0);
}

static void test_http_parse_reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(rc_http_reason(200), "OK");
    assert_string_equal(rc_http_reason(404), "Not Found");
    assert_string_equal(rc_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(rc_http_reason(505), "HTTP Version Not Supported");
    assert_string_equal(rc_http_reason(999), "Unknown");
    assert_string_equal(rc_http_reason(-1), "Unknown");
}

static void test_http_parse_limits_default(void **state)
{
    struct rc_http_limits lim;
    (void)state;

    rc_http_limits_default(&lim);
    assert_int_equal(lim.max_request_line, RC_HTTP_DEFAULT_MAX_REQUEST_LINE);
    assert_int_equal(lim.max_header_bytes, RC_HTTP_DEFAULT_MAX_HEADER_BYTES);
    assert_int_equal(lim.max_headers, RC_HTTP_MAX_HEADERS);
    assert_int_equal(lim.max_body, RC_HTTP_DEFAULT_MAX_BODY);
}

/* ---- chunked ------------------------------------------------------------------------ */

static const char wiki_chunks[] = "4\r\nWiki\r\n5;name=val;flag\r\npedia\r\n"
                                  "E \t; ext=\"quoted; v\"\r\n in\r\n\r\nchunks.\r\n"
                                  "0\r\nExpires: never\r\nX-T:\t1 \r\n\r\n";
static const char wiki_text[] = "Wikipedia in\r\n\r\nchunks.";

struct decoded {
    enum rc_parse r;
    size_t consumed, out_len;
    char out[256];
    struct rc_err err;
};

static struct decoded decode_once(const char *s, size_t n, const struct rc_http_limits *lim)
{
    struct decoded d = {0};
    struct rc_http_chunked c;
    char *b = dup_exact(s, n);

    rc_http_chunked_init(&c);
    d.r = rc_http_chunked_decode(&c, b, n, lim, &d.consumed, &d.out_len, &d.err);
    if (d.r != RC_PARSE_FAIL) {
        assert_true(d.out_len <= sizeof(d.out));
        memcpy(d.out, b, d.out_len);
    }
    free(b);
    return d;
}

static void assert_chunked_fails(const char *s, const struct rc_http_limits *lim, int status,
                                 const char *code, const char *fragment)
{
    struct decoded d = decode_once(s, strlen(s), lim);

    assert_int_equal(d.r, RC_PARSE_FAIL);
    assert_int_equal(d.err.status, status);
    assert_string_equal(d.err.code, code);
    if (!strstr(d.err.msg, fragment))
        fail_msg("message \"%s\" lacks \"%s\"", d.err.msg, fragment);
}

static void test_http_chunked_decodes_chunks_extensions_trailers(void **state)
{
    struct decoded d = decode_once(wiki_chunks, strlen(wiki_chunks), &test_lim);
    (void)state;

    assert_int_equal(d.r, RC_PARSE_DONE);
    assert_int_equal(d.consumed, strlen(wiki_chunks));
    assert_int_equal(d.out_len, strlen(wiki_text));
    assert_memory_equal(d.out, wiki_text, d.out_len);
}

static void test_http_chunked_empty_body(void **state)
{
    struct decoded d = decode_once("0\r\n\r\n", 5, &test_lim);
    (void)state;

    assert_int_equal(d.r, RC_PARSE_DONE);
    assert_int_equal(d.consumed, 5);
    assert_int_equal(d.out_len, 0);
}

static void test_http_chunked_stops_before_next_request(void **state)
{
    static const char s[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    struct rc_http_chunked c;
    struct rc_err err = {0};
    size_t consumed = 0, out_len = 0;
    char *b = dup_exact(s, strlen(s));
    (void)state;

    rc_http_chunked_init(&c);
    assert_int_equal(rc_http_chunked_decode(&c, b, strlen(s), &test_lim, &consumed, &out_len, &err),
                     RC_PARSE_DONE);
    assert_int_equal(consumed, strlen("3\r\nabc\r\n0\r\n\r\n"));
    assert_int_equal(out_len, 3);
    assert_memory_equal(b, "abc", 3);
    assert_memory_equal(b + consumed, "GET / HTTP/1.1\r\n", strlen(s) - consumed);
    /* Done stays done and consumes nothing more. */
    assert_int_equal(rc_http_chunked_decode(&c, b + consumed, strlen(s) - consumed, &test_lim,
                                            &consumed, &out_len, &err),
                     RC_PARSE_DONE);
    assert_int_equal(consumed, 0);
    assert_int_equal(out_len, 0);
    free(b);
}

static void test_http_chunked_split_at_every_position(void **state)
{
    size_t n = strlen(wiki_chunks);
    (void)state;

    for (size_t k = 0; k <= n; k++) {
        struct rc_http_chunked c;
        struct rc_err err = {0};
        size_t consumed = 0, out1 = 0, out2 = 0;
        char got[128];
        char *b = dup_exact(wiki_chunks, n);

        rc_http_chunked_init(&c);
        if (k < n) {
            assert_int_equal(rc_http_chunked_decode(&c, b, k, &test_lim, &consumed, &out1, &err),
                             RC_PARSE_MORE);
            assert_int_equal(consumed, k);
            memcpy(got, b, out1);
            assert_int_equal(
                rc_http_chunked_decode(&c, b + k, n - k, &test_lim, &consumed, &out2, &err),
                RC_PARSE_DONE);
            assert_int_equal(consumed, n - k);
            memcpy(got + out1, b + k, out2);
        } else {
            assert_int_equal(rc_http_chunked_decode(&c, b, n, &test_lim, &consumed, &out1, &err),
                             RC_PARSE_DONE);
            memcpy(got, b, out1);
        }
        assert_int_equal(out1 + out2, strlen(wiki_text));
        assert_memory_equal(got, wiki_text, out1 + out2);
        free(b);
    }
}

static void test_http_chunked_byte_by_byte(void **state)
{
    size_t n = strlen(wiki_chunks), got_n = 0;
    struct rc_http_chunked c;
    char got[128];
    (void)state;

    rc_http_chunked_init(&c);
    for (size_t i = 0; i < n; i++) {
        struct rc_err err = {0};
        size_t consumed = 0, out = 0;
        char byte = wiki_chunks[i];
        enum rc_parse r = rc_http_chunked_decode(&c, &byte, 1, &test_lim, &consumed, &out, &err);
        assert_int_equal(r, i + 1 == n ? RC_PARSE_DONE : RC_PARSE_MORE);
        assert_int_equal(consumed, 1);
        if (out)
            got[got_n++] = byte;
    }
    assert_int_equal(got_n, strlen(wiki_text));
    assert_memory_equal(got, wiki_text, got_n);
}

static void test_http_chunked_accepts_uppercase_hex_and_leading_zeros(void **state)
{
    static const char s[] = "000A\r\n0123456789\r\n0000\r\n\r\n";
    struct decoded d = decode_once(s, strlen(s), &test_lim);
    (void)state;

    assert_int_equal(d.r, RC_PARSE_DONE);
    assert_int_equal(d.out_len, 10);
    assert_memory_equal(d.out, "0123456789", 10);
}

static void test_http_chunked_rejects_bad_hex(void **state)
{
    (void)state;
    assert_chunked_fails("x\r\n", &test_lim, 400, "bad_request", "does not start with a hex digit");
    assert_chunked_fails("\r\n", &test_lim, 400, "bad_request", "does not start with a hex digit");
    assert_chunked_fails("4g\r\nWiki\r\n", &test_lim, 400, "bad_request",
                         "chunk size is followed by an unexpected byte");
    assert_chunked_fails("1 2\r\nab\r\n", &test_lim, 400, "bad_request",
                         "chunk size is followed by an unexpected byte");
    assert_chunked_fails("-1\r\n", &test_lim, 400, "bad_request", "byte 0x2d");
}

static void test_http_chunked_rejects_size_overflow(void **state)
{
    struct rc_http_limits lim = test_lim;
    (void)state;

    lim.max_body = SIZE_MAX;
    assert_chunked_fails("10000000000000000\r\n", &lim, 400, "bad_request", "chunk size overflows");
}

static void test_http_chunked_413_over_max_body(void **state)
{
    struct rc_http_limits lim = test_lim;
    struct decoded d;
    (void)state;

    lim.max_body = 8;
    d = decode_once("4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n", 24, &lim);
    assert_int_equal(d.r, RC_PARSE_DONE);
    assert_int_equal(d.out_len, 8);
    assert_chunked_fails("4\r\nabcd\r\n5\r\nefghi\r\n0\r\n\r\n", &lim, 413, "payload_too_large",
                         "over the limit of 8 bytes (a chunk of 5 bytes follows 4 bytes)");
    assert_chunked_fails("FFFFFFFFFFFFFFFF\r\n", &lim, 413, "payload_too_large",
                         "limit of 8 bytes");
}

static void test_http_chunked_rejects_missing_crlf_after_data(void **state)
{
    (void)state;
    assert_chunked_fails("3\r\nabcd\r\n0\r\n\r\n", &test_lim, 400, "bad_request",
                         "chunk data is not followed by CRLF");
    assert_chunked_fails("3\r\nabc\r0\r\n\r\n", &test_lim, 400, "bad_request",
                         "chunk data is not followed by CRLF");
}

static void test_http_chunked_rejects_bare_lf(void **state)
{
    (void)state;
    assert_chunked_fails("3\nabc\r\n", &test_lim, 400, "bad_request", "byte 0x0a");
    assert_chunked_fails("3;x\nabc\r\n", &test_lim, 400, "bad_request", "bare LF");
    assert_chunked_fails("3\r\r\n", &test_lim, 400, "bad_request", "CR without LF");
    assert_chunked_fails("0\r\nA: b\n\r\n", &test_lim, 400, "bad_request", "bare LF");
    assert_chunked_fails("0\r\n\r\r", &test_lim, 400, "bad_request", "CR without LF");
}

static void test_http_chunked_rejects_long_size_line(void **state)
{
    char s[RC_HTTP_MAX_CHUNK_LINE + 16];
    (void)state;

    memset(s, 'x', sizeof(s));
    memcpy(s, "1;", 2);
    s[sizeof(s) - 1] = '\0';
    assert_chunked_fails(s, &test_lim, 400, "bad_request", "chunk size line is too long");
    /* Leading zeros count too. */
    memset(s, '0', sizeof(s));
    s[sizeof(s) - 1] = '\0';
    assert_chunked_fails(s, &test_lim, 400, "bad_request", "chunk size line is too long");
}

static void test_http_chunked_431_trailers_too_large(void **state)
{
    struct rc_http_limits lim = test_lim;
    (void)state;

    lim.max_header_bytes = 16;
    assert_chunked_fails("0\r\nX-Long: 0123456789\r\n\r\n", &lim, 431, "headers_too_large",
                         "trailer section is over the header size limit");
    lim.max_header_bytes = 4096;
    lim.max_headers = 2;
    assert_chunked_fails("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim, 431, "headers_too_large",
                         "too many trailer fields");
}

static void test_http_chunked_rejects_bad_trailer(void **state)
{
    (void)state;
    assert_chunked_fails("0\r\nNoColon\r\n\r\n", &test_lim, 400, "bad_request", "no colon");
    assert_chunked_fails("0\r\n folded: x\r\n\r\n", &test_lim, 400, "bad_request",
                         "trailer field name");
    assert_chunked_fails("0\r\nA: b\x01\r\n\r\n", &test_lim, 400, "bad_request", "control byte");
}

static void test_http_chunked_stays_failed(void **state)
{
    struct rc_http_chunked c;
    struct rc_err err = {0};
    size_t consumed = 0, out_len = 0;
    char b1[] = "z\r\n", b2[] = "0\r\n\r\n";
    (void)state;

    rc_http_chunked_init(&c);
    assert_int_equal(rc_http_chunked_decode(&c, b1, 3, &test_lim, &consumed, &out_len, &err),
                     RC_PARSE_FAIL);
    assert_int_equal(rc_http_chunked_decode(&c, b2, 5, &test_lim, &consumed, &out_len, &err),
                     RC_PARSE_FAIL);
    assert_string_equal(err.code, "bad_request");
}

/* ---- query strings and url decoding ---------------------------------------------------- */

static void test_http_query_next_iterates_pairs(void **state)
{
    struct rc_slice rest = RC_SLICE_LIT("a=1&b=&c&&d=x%20y+z&=v&");
    struct rc_slice k, v;
    (void)state;

    assert_true(rc_http_query_next(&rest, &k, &v));
    assert_slice(k, "a");
    assert_slice(v, "1");
    assert_true(rc_http_query_next(&rest, &k, &v));
    assert_slice(k, "b");
    assert_slice(v, "");
    assert_true(rc_http_query_next(&rest, &k, &v));
    assert_slice(k, "c");
    assert_slice(v, "");
    assert_true(rc_http_query_next(&rest, &k, &v));
    assert_slice(k, "d");
    assert_slice(v, "x%20y+z");
    assert_true(rc_http_query_next(&rest, &k, &v));
    assert_slice(k, "");
    assert_slice(v, "v");
    assert_false(rc_http_query_next(&rest, &k, &v));
    assert_false(rc_http_query_next(&rest, &k, &v));
}

static void test_http_query_next_empty_query(void **state)
{
    struct rc_slice rest = RC_SLICE_LIT("");
    struct rc_slice only_amps = RC_SLICE_LIT("&&&");
    struct rc_slice k, v;
    (void)state;

    assert_false(rc_http_query_next(&rest, &k, &v));
    assert_false(rc_http_query_next(&only_amps, &k, &v));
}

static void test_http_url_decode_plus_and_percent(void **state)
{
    char out[32];
    (void)state;

    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("a+b%20c%4a%4A"), out, sizeof(out), true), 7);
    assert_memory_equal(out, "a b cJJ", 7);
    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("a+b%2B"), out, sizeof(out), false), 4);
    assert_memory_equal(out, "a+b+", 4);
    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT(""), out, sizeof(out), true), 0);
    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("%C3%A9"), out, sizeof(out), true), 2);
    assert_memory_equal(out, "\xc3\xa9", 2);
}

static void test_http_url_decode_rejects_bad_escape(void **state)
{
    char out[32];
    (void)state;

    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("%zz"), out, sizeof(out), true), -EINVAL);
    /* Truncated escapes at the very end of an exact-size buffer (ASan sees overreads). */
    for (size_t cut = 3; cut <= 4; cut++) {
        char *b = dup_exact("ab%4", cut);
        assert_int_equal(rc_http_url_decode(rc_slice_make(b, cut), out, sizeof(out), true),
                         -EINVAL);
        free(b);
    }
    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("%g1"), out, sizeof(out), true), -EINVAL);
}

static void test_http_url_decode_rejects_nul(void **state)
{
    char out[32];
    (void)state;

    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("a%00b"), out, sizeof(out), true), -EINVAL);
    assert_int_equal(rc_http_url_decode(rc_slice_make("a\0b", 3), out, sizeof(out), true), -EINVAL);
}

static void test_http_url_decode_enospc_when_too_small(void **state)
{
    char out[4];
    (void)state;

    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("abcd"), out, 4, true), 4);
    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("abcde"), out, 4, true), -ENOSPC);
    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("%41%42%43%44"), out, 4, true), 4);
    assert_int_equal(rc_http_url_decode(RC_SLICE_LIT("x"), out, 0, true), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse_get_fills_every_field),
        cmocka_unit_test(test_http_parse_trims_ows_from_values),
        cmocka_unit_test(test_http_parse_accepts_every_method),
        cmocka_unit_test(test_http_parse_options_star_target),
        cmocka_unit_test(test_http_parse_splits_query_at_first_question_mark),
        cmocka_unit_test(test_http_parse_post_body_starts_at_consumed),
        cmocka_unit_test(test_http_parse_chunked_request_sets_chunked),
        cmocka_unit_test(test_http_parse_same_duplicate_content_length_is_accepted),
        cmocka_unit_test(test_http_parse_http10_needs_no_host),
        cmocka_unit_test(test_http_parse_skips_leading_empty_lines),
        cmocka_unit_test(test_http_parse_keep_alive_http11_default_on),
        cmocka_unit_test(test_http_parse_keep_alive_http11_off_with_close),
        cmocka_unit_test(test_http_parse_keep_alive_http10_default_off),
        cmocka_unit_test(test_http_parse_keep_alive_http10_on_with_keep_alive),
        cmocka_unit_test(test_http_parse_expect_100_continue),
        cmocka_unit_test(test_http_parse_pipelined_heads_via_consumed),
        cmocka_unit_test(test_http_parse_every_prefix_returns_more),
        cmocka_unit_test(test_http_parse_byte_by_byte_with_last_len),
        cmocka_unit_test(test_http_parse_tolerates_last_len_beyond_len),
        cmocka_unit_test(test_http_parse_rejects_bad_method_char),
        cmocka_unit_test(test_http_parse_rejects_bad_method_before_line_ends),
        cmocka_unit_test(test_http_parse_rejects_target_without_slash),
        cmocka_unit_test(test_http_parse_rejects_bad_target_bytes),
        cmocka_unit_test(test_http_parse_rejects_bare_lf),
        cmocka_unit_test(test_http_parse_rejects_bare_lf_before_head_ends),
        cmocka_unit_test(test_http_parse_rejects_control_char_in_value),
        cmocka_unit_test(test_http_parse_rejects_bad_header_name_char),
        cmocka_unit_test(test_http_parse_rejects_obs_fold),
        cmocka_unit_test(test_http_parse_rejects_space_before_colon),
        cmocka_unit_test(test_http_parse_rejects_header_without_colon),
        cmocka_unit_test(test_http_parse_rejects_conflicting_content_length),
        cmocka_unit_test(test_http_parse_rejects_content_length_with_chunked),
        cmocka_unit_test(test_http_parse_rejects_non_numeric_content_length),
        cmocka_unit_test(test_http_parse_rejects_overflowing_content_length),
        cmocka_unit_test(test_http_parse_rejects_missing_host_on_http11),
        cmocka_unit_test(test_http_parse_rejects_duplicate_host),
        cmocka_unit_test(test_http_parse_rejects_garbage_version),
        cmocka_unit_test(test_http_parse_rejects_transfer_encoding_on_http10),
        cmocka_unit_test(test_http_parse_rejects_too_many_leading_empty_lines),
        cmocka_unit_test(test_http_parse_411_when_body_method_has_no_length),
        cmocka_unit_test(test_http_parse_413_when_content_length_over_max_body),
        cmocka_unit_test(test_http_parse_414_when_request_line_too_long),
        cmocka_unit_test(test_http_parse_414_before_line_ends),
        cmocka_unit_test(test_http_parse_417_for_unknown_expectation),
        cmocka_unit_test(test_http_parse_431_when_too_many_headers),
        cmocka_unit_test(test_http_parse_431_header_count_before_head_ends),
        cmocka_unit_test(test_http_parse_clamps_max_headers_to_array),
        cmocka_unit_test(test_http_parse_431_when_head_too_large),
        cmocka_unit_test(test_http_parse_431_head_size_before_head_ends),
        cmocka_unit_test(test_http_parse_501_for_other_transfer_encoding),
        cmocka_unit_test(test_http_parse_505_for_unsupported_version),
        cmocka_unit_test(test_http_parse_505_before_head_ends),
        cmocka_unit_test(test_http_parse_error_message_escapes_bytes),
        cmocka_unit_test(test_http_parse_find_header_ignores_case),
        cmocka_unit_test(test_http_parse_has_token_matches_list_elements),
        cmocka_unit_test(test_http_parse_list_field_spans_field_lines_at_every_split),
        cmocka_unit_test(test_http_parse_header_helpers_on_one_line),
        cmocka_unit_test(test_http_parse_reason_phrases),
        cmocka_unit_test(test_http_parse_limits_default),
        cmocka_unit_test(test_http_chunked_decodes_chunks_extensions_trailers),
        cmocka_unit_test(test_http_chunked_empty_body),
        cmocka_unit_test(test_http_chunked_stops_before_next_request),
        cmocka_unit_test(test_http_chunked_split_at_every_position),
        cmocka_unit_test(test_http_chunked_byte_by_byte),
        cmocka_unit_test(test_http_chunked_accepts_uppercase_hex_and_leading_zeros),
        cmocka_unit_test(test_http_chunked_rejects_bad_hex),
        cmocka_unit_test(test_http_chunked_rejects_size_overflow),
        cmocka_unit_test(test_http_chunked_413_over_max_body),
        cmocka_unit_test(test_http_chunked_rejects_missing_crlf_after_data),
        cmocka_unit_test(test_http_chunked_rejects_bare_lf),
        cmocka_unit_test(test_http_chunked_rejects_long_size_line),
        cmocka_unit_test(test_http_chunked_431_trailers_too_large),
        cmocka_unit_test(test_http_chunked_rejects_bad_trailer),
        cmocka_unit_test(test_http_chunked_stays_failed),
        cmocka_unit_test(test_http_query_next_iterates_pairs),
        cmocka_unit_test(test_http_query_next_empty_query),
        cmocka_unit_test(test_http_url_decode_plus_and_percent),
        cmocka_unit_test(test_http_url_decode_rejects_bad_escape),
        cmocka_unit_test(test_http_url_decode_rejects_nul),
        cmocka_unit_test(test_http_url_decode_enospc_when_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
