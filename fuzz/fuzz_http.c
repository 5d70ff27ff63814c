/* fuzz_http.c - libFuzzer harness for src/proto/http_parse.c.
 * Parses the input as a request head with small limits, whole and in two calls
 * (prefix, then all with last_len), and checks that the results agree and that
 * every slice lies inside the consumed head. When the head is DONE and chunked,
 * the rest goes to the chunked decoder, whole and split in two, and both
 * decodings must agree. Query pairs of the target are percent-decoded. The
 * list-field helpers (Connection over several lines) must agree with the head.
 * Seeds: fuzz/corpus/fuzz_http/ (from the unit tests). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct rc_http_limits lim = {
    .max_request_line = 256,
    .max_header_bytes = 1024,
    .max_headers = 16,
    .max_body = 4096,
};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static void check_slice(struct rc_slice s, const char *buf, size_t end)
{
    CHECK(s.p >= buf && s.n <= end && (size_t)(s.p - buf) <= end - s.n);
}

static void check_request(const struct rc_http_request *req, const char *buf, size_t consumed,
                          size_t len)
{
    CHECK(consumed > 0 && consumed <= len && consumed <= lim.max_header_bytes);
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->nheaders <= lim.max_headers);
    CHECK(req->method_str.n > 0 && req->target.n > 0);
    check_slice(req->method_str, buf, consumed);
    check_slice(req->target, buf, consumed);
    check_slice(req->path, buf, consumed);
    check_slice(req->query, buf, consumed);
    CHECK(req->path.p == req->target.p);
    for (unsigned i = 0; i < req->nheaders; i++) {
        check_slice(req->headers[i].name, buf, consumed);
        check_slice(req->headers[i].value, buf, consumed);
        CHECK(req->headers[i].name.n > 0);
    }
    CHECK(!(req->chunked && req->has_content_length));
    CHECK(!req->has_content_length || req->content_length <= lim.max_body);
    /* The list-field helpers agree with the first-match lookup. */
    unsigned nconn = rc_http_header_count(req, "Connection");
    CHECK(nconn <= req->nheaders);
    CHECK((nconn > 0) == (rc_http_find_header(req, "Connection") != NULL));
    CHECK(!rc_http_header_has_token(req, "Connection", "upgrade") || nconn > 0);
    CHECK(!rc_http_header_has_token(req, "Connection", "close") || !req->keep_alive);
}

static void decode_query(struct rc_slice q)
{
    struct rc_slice k, v;
    char out[64];

    while (rc_http_query_next(&q, &k, &v)) {
        ssize_t n = rc_http_url_decode(k, out, sizeof(out), true);
        CHECK(n == -EINVAL || n == -ENOSPC || (n >= 0 && (size_t)n <= k.n && n <= 64));
        n = rc_http_url_decode(v, out, sizeof(out), true);
        CHECK(n == -EINVAL || n == -ENOSPC || (n >= 0 && (size_t)n <= v.n && n <= 64));
    }
}

/* Decode body[0..n) whole, then in two calls split at k; outputs must agree. */
static void decode_chunked(const char *body, size_t n, size_t k)
{
    struct rc_http_chunked c1, c2;
    struct rc_err err;
    size_t used1 = 0, out1 = 0, used_a = 0, out_a = 0, used_b = 0, out_b = 0;
    char *whole = malloc(n ? n : 1), *split = malloc(n ? n : 1);
    enum rc_parse r1, ra, rb = RC_PARSE_MORE;

    if (!whole || !split)
        goto out;
    memcpy(whole, body, n);
    memcpy(split, body, n);
    if (k > n)
        k = n;

    rc_http_chunked_init(&c1);
    r1 = rc_http_chunked_decode(&c1, whole, n, &lim, &used1, &out1, &err);
    CHECK(r1 == RC_PARSE_FAIL || (used1 <= n && out1 <= used1 && out1 <= lim.max_body));
    CHECK(r1 != RC_PARSE_MORE || used1 == n);

    rc_http_chunked_init(&c2);
    ra = rc_http_chunked_decode(&c2, split, k, &lim, &used_a, &out_a, &err);
    if (ra == RC_PARSE_MORE) {
        CHECK(used_a == k && out_a <= k);
        rb = rc_http_chunked_decode(&c2, split + k, n - k, &lim, &used_b, &out_b, &err);
    }
    if (r1 == RC_PARSE_FAIL) {
        CHECK(ra == RC_PARSE_FAIL || rb == RC_PARSE_FAIL);
        goto out;
    }
    if (ra == RC_PARSE_DONE) {
        /* The whole decode must have stopped at the same place. */
        CHECK(r1 == RC_PARSE_DONE && used1 == used_a && out1 == out_a);
        CHECK(memcmp(whole, split, out1) == 0);
        goto out;
    }
    CHECK(ra == RC_PARSE_MORE && rb == r1);
    CHECK(out_a + out_b == out1 && used_b <= n - k);
    if (r1 == RC_PARSE_DONE)
        CHECK(k + used_b == used1);
    CHECK(memcmp(whole, split, out_a) == 0);
    CHECK(memcmp(whole + out_a, split + k, out_b) == 0);
out:
    free(whole);
    free(split);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct rc_http_request req, part;
    struct rc_err err, perr;
    size_t consumed = 0, pconsumed = 0, split;
    enum rc_parse r, pr;

    r = rc_http_parse_head(buf, size, 0, &lim, &req, &consumed, &err);
    if (r == RC_PARSE_FAIL) {
        CHECK(err.status >= 400 && err.status <= 505 && err.code && err.msg[0]);
        CHECK(consumed == 0);
    }
    if (r == RC_PARSE_MORE)
        CHECK(consumed == 0 && size < lim.max_header_bytes);

    /* Prefix then all, as a connection would see it. A prefix never fails
     * where the whole succeeds or waits, and never finishes differently. */
    split = size ? (size_t)data[0] * size / 256 : 0;
    pr = rc_http_parse_head(buf, split, 0, &lim, &part, &pconsumed, &perr);
    if (pr == RC_PARSE_FAIL)
        CHECK(r == RC_PARSE_FAIL);
    if (pr == RC_PARSE_DONE)
        CHECK(r == RC_PARSE_DONE && pconsumed == consumed);
    if (pr == RC_PARSE_MORE) {
        enum rc_parse r2 = rc_http_parse_head(buf, size, split, &lim, &part, &pconsumed, &perr);
        CHECK(r2 == r);
        if (r2 == RC_PARSE_DONE)
            CHECK(pconsumed == consumed && part.nheaders == req.nheaders);
        if (r2 == RC_PARSE_FAIL)
            CHECK(perr.status == err.status);
    }

    if (r != RC_PARSE_DONE)
        return 0;
    check_request(&req, buf, consumed, size);
    decode_query(req.query);
    if (req.chunked)
        decode_chunked(buf + consumed, size - consumed,
                       size > consumed ? (size_t)data[size - 1] % (size - consumed + 1) : 0);
    return 0;
}
