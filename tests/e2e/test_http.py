"""HTTP/1.1 behaviour of the real binary: keep-alive, pipelining, HEAD,
chunked bodies, 100-continue, every bad-input status with its JSON error, the
publish API's input errors, and 2,000 concurrent connections over the shards.

Bad-input tests send raw bytes on a socket (http.client cannot send malformed
requests) and then check that a new connection is still served."""

import http.client as httpclient
import json
import resource
import socket
import time

from harness import (Server, TestFailure, check, eq, http, raw_connect, read_responses,
                     recv_until_close, wait_for)

# ---- helpers ---------------------------------------------------------------------------


def parse_responses(buf, head_only=()):
    """Split a byte stream into (status, headers dict lower-cased, body) responses.

    1xx responses have no body; the indexes in head_only are answers to HEAD
    (Content-Length describes a body that is not sent). Returns (list, rest)."""
    out = []
    while b"\r\n\r\n" in buf:
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        check(parts[0] == "HTTP/1.1", f"status line {lines[0]!r} is not HTTP/1.1")
        status = int(parts[1])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(": ", 1)
            check(k.lower() not in hdrs, f"header {k} sent twice in {head!r}")
            hdrs[k.lower()] = v
        clen = 0
        if status >= 200 and len(out) not in head_only:
            clen = int(hdrs.get("content-length", "0"))
        if len(rest) < clen:
            break
        out.append((status, hdrs, rest[:clen]))
        buf = rest[clen:]
    return out, buf


def read_until(s, pred, timeout=10.0):
    """Read from s until pred(buffer) is true; fail on close or timeout."""
    s.settimeout(timeout * Server.TIMEOUT_SCALE)
    buf = b""
    while not pred(buf):
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise TestFailure(f"timed out; got so far {buf[:500]!r}") from None
        if not chunk:
            raise TestFailure(f"connection closed; got so far {buf[:500]!r}")
        buf += chunk
    return buf


def exchange_close(srv, data, timeout=10.0):
    """Send data on a new connection; read until the server closes it.
    Returns the parsed responses and any unparsed tail."""
    s = raw_connect(srv)
    try:
        s.sendall(data)
        raw = recv_until_close(s, timeout)
    finally:
        s.close()
    return parse_responses(raw)


def check_error(status, hdrs, body, want_status, want_code, words=()):
    eq(status, want_status, f"status (body {body[:300]!r})")
    eq(hdrs.get("content-type"), "application/json", "content-type")
    j = json.loads(body)
    eq(sorted(j), ["error"], "error body keys")
    eq(j["error"]["code"], want_code, "error code")
    msg = j["error"]["message"]
    for w in words:
        check(w in msg, f"error message {msg!r} does not mention {w!r}")
    return msg


def fatal_case(srv, data, want_status, want_code, words=()):
    """A request the server must refuse with one JSON error and then close."""
    resps, rest = exchange_close(srv, data)
    eq(len(resps), 1, f"responses to {data[:80]!r} (tail {rest[:200]!r})")
    eq(rest, b"", "bytes after the error response")
    status, hdrs, body = resps[0]
    eq(hdrs.get("connection"), "close", "Connection header of the error")
    msg = check_error(status, hdrs, body, want_status, want_code, words)
    assert_still_serving(srv)
    return msg


def assert_still_serving(srv):
    r = http(srv, "GET", "/healthz")
    eq(r.status, 200, "/healthz on a new connection afterwards")
    eq(r.json(), {"status": "ok"}, "/healthz body afterwards")


def stats(srv):
    r = http(srv, "GET", "/api/realtime/stats")
    eq(r.status, 200, "stats status")
    return r.json()


def publish_body(topic, data=None):
    return json.dumps({"topic": topic, "type": "test.event", "data": data}).encode()


def req(method, path, body=b"", headers=()):
    h = [f"{method} {path} HTTP/1.1", "Host: e2e"] + list(headers)
    if body or method == "POST":
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


# ---- keep-alive ------------------------------------------------------------------------


def test_keepalive_http_client_many_requests_one_connection():
    with Server() as srv:
        conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            conn.connect()
            first = conn.sock
            seen = []
            for i in range(6):
                if i % 3 == 0:
                    conn.request("GET", "/healthz")
                elif i % 3 == 1:
                    conn.request("GET", f"/no/such/{i}")
                else:
                    conn.request("POST", "/api/realtime/publish", body=publish_body(f"ka.t{i}"),
                                 headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read()
                seen.append(r.status)
                eq(r.getheader("Connection"), "keep-alive", f"Connection of response {i}")
                check(conn.sock is first, f"http.client had to reconnect before response {i}")
                if r.status == 202:
                    eq(json.loads(body)["topic"], f"ka.t{i}", "published topic")
            eq(seen, [200, 404, 202, 200, 404, 202], "statuses")
        finally:
            conn.close()
        # one connection for all six requests (plus this stats request)
        total = sum(sh["counters"]["accepted"] for sh in stats(srv)["shards"])
        eq(total, 2, "connections accepted (6 requests on one, then stats)")


def test_keepalive_raw_socket_sequential_requests():
    with Server() as srv:
        s = raw_connect(srv)
        try:
            for i in range(5):
                s.sendall(req("GET", "/healthz"))
                (r,) = read_responses(s, 1)
                eq(r.status, 200, f"status of request {i}")
                eq(r.header("Connection"), "keep-alive", f"Connection of request {i}")
                eq(r.json(), {"status": "ok"}, "body")
        finally:
            s.close()


def test_http10_without_keepalive_closes():
    with Server() as srv:
        resps, rest = exchange_close(srv, b"GET /healthz HTTP/1.0\r\n\r\n")
        eq(len(resps), 1, "responses")
        status, hdrs, body = resps[0]
        eq(status, 200, "status")
        eq(hdrs["connection"], "close", "Connection header")
        eq(json.loads(body), {"status": "ok"}, "body")
        eq(rest, b"", "extra bytes")


def test_http10_with_keepalive_stays_open():
    with Server() as srv:
        s = raw_connect(srv)
        try:
            for _ in range(3):
                s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                (r,) = read_responses(s, 1)
                eq(r.status, 200, "status")
                eq(r.header("Connection"), "keep-alive", "Connection header")
        finally:
            s.close()


def test_connection_close_request_closes_after_response():
    with Server() as srv:
        data = req("GET", "/healthz", headers=["Connection: close"]) + req("GET", "/healthz")
        resps, rest = exchange_close(srv, data)
        eq(len(resps), 1, "responses (the request after Connection: close is not answered)")
        eq(resps[0][0], 200, "status")
        eq(resps[0][1]["connection"], "close", "Connection header")


def test_keepalive_timeout_closes_idle_connection():
    with Server("--keepalive-timeout=1s") as srv:
        s = raw_connect(srv)
        try:
            s.sendall(req("GET", "/healthz"))
            (r,) = read_responses(s, 1)
            eq(r.status, 200, "status")
            t0 = time.monotonic()
            rest = recv_until_close(s, 10)
            took = time.monotonic() - t0
            eq(rest, b"", "bytes sent on an idle connection")
            check(0.5 <= took <= 1 + 4 * Server.TIMEOUT_SCALE,
                  f"idle connection closed after {took:.2f}s, want ~1s")
        finally:
            s.close()


# ---- pipelining ------------------------------------------------------------------------


def test_pipelining_100_requests_in_one_write_answered_in_order():
    with Server() as srv:
        data = b""
        for i in range(100):
            if i % 3 == 0:
                data += req("GET", "/healthz")
            elif i % 3 == 1:
                # a token method the route does not allow: 405 naming the method
                data += req(f"M{i:03d}", "/healthz")
            else:
                # publish is answered by the topic's owner shard (deferred)
                data += req("POST", "/api/realtime/publish", publish_body(f"pipe.n{i:03d}"))
        s = raw_connect(srv)
        try:
            s.sendall(data)
            resps = read_responses(s, 100, timeout=30)
            # the connection stays usable
            s.sendall(req("GET", "/healthz"))
            (last,) = read_responses(s, 1)
            eq(last.status, 200, "request after the pipeline")
        finally:
            s.close()
        for i, r in enumerate(resps):
            if i % 3 == 0:
                eq((r.status, r.json()), (200, {"status": "ok"}), f"response {i}")
            elif i % 3 == 1:
                eq(r.status, 405, f"response {i} status")
                check(f"M{i:03d} is not allowed" in r.json()["error"]["message"],
                      f"response {i} is not for M{i:03d}: {r.body!r}")
            else:
                eq(r.status, 202, f"response {i} status ({r.body!r})")
                eq(r.json()["topic"], f"pipe.n{i:03d}", f"response {i} topic")


# ---- HEAD ------------------------------------------------------------------------------


def test_head_has_headers_and_no_body():
    with Server() as srv:
        s = raw_connect(srv)
        try:
            s.sendall(req("HEAD", "/healthz") + req("HEAD", "/nope") + req("GET", "/healthz"))
            buf = read_until(s, lambda b: b.count(b"\r\n\r\n") >= 3 and b.endswith(b"}"))
        finally:
            s.close()
        resps, rest = parse_responses(buf, head_only=(0, 1))
        eq(rest, b"", "unparsed bytes")
        eq([r[0] for r in resps], [200, 404, 200], "statuses")
        eq(resps[0][1]["content-length"], "15", "HEAD /healthz Content-Length (of the GET body)")
        eq(resps[0][1]["content-type"], "application/json", "HEAD content-type")
        eq(resps[0][2], b"", "HEAD body")
        eq(resps[1][2], b"", "HEAD 404 body")
        check(int(resps[1][1]["content-length"]) > 0, "HEAD 404 Content-Length")
        eq(json.loads(resps[2][2]), {"status": "ok"}, "GET after HEAD")


# ---- chunked bodies --------------------------------------------------------------------


def chunked_head(path="/api/realtime/publish", extra=()):
    h = [f"POST {path} HTTP/1.1", "Host: e2e", "Content-Type: application/json",
         "Transfer-Encoding: chunked"] + list(extra)
    return ("\r\n".join(h) + "\r\n\r\n").encode()


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def test_chunked_publish_multi_chunk_separate_writes():
    with Server() as srv:
        body = publish_body("chunked.ok", {"text": "x" * 300})
        pieces = [body[:1], body[1:40], body[40:41], body[41:]]
        s = raw_connect(srv)
        try:
            s.sendall(chunked_head())
            for p in pieces:
                s.sendall(chunk(p))
            # a chunk extension on the last chunk and a trailer field
            s.sendall(b"0;ext=1\r\nX-Trailer: yes\r\n\r\n")
            (r,) = read_responses(s, 1)
            eq(r.status, 202, f"status ({r.body!r})")
            eq(r.json()["topic"], "chunked.ok", "topic")
            # the same connection then takes a chunked request in one write
            s.sendall(chunked_head() + b"".join(chunk(p) for p in pieces) + b"0\r\n\r\n" +
                      req("GET", "/healthz"))
            r1, r2 = read_responses(s, 2)
            eq(r1.status, 202, "second chunked publish")
            eq(r2.status, 200, "pipelined GET after a chunked body")
        finally:
            s.close()


def test_chunked_body_byte_by_byte():
    with Server() as srv:
        body = publish_body("chunked.slow")
        data = chunked_head() + chunk(body[:10]) + chunk(body[10:]) + b"0\r\n\r\n"
        s = raw_connect(srv)
        try:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
            (r,) = read_responses(s, 1)
            eq(r.status, 202, f"status ({r.body!r})")
            eq(r.json()["topic"], "chunked.slow", "topic")
        finally:
            s.close()


def test_chunked_bad_hex_size_is_400():
    with Server() as srv:
        fatal_case(srv, chunked_head() + b"zz\r\n{}\r\n0\r\n\r\n", 400, "bad_request",
                   ["chunk"])


def test_chunked_body_over_max_body_bytes_is_413():
    with Server("--max-body-bytes=1000") as srv:
        data = chunked_head() + chunk(b"a" * 600) + chunk(b"b" * 600) + b"0\r\n\r\n"
        fatal_case(srv, data, 413, "payload_too_large", ["1000"])


# ---- Expect: 100-continue --------------------------------------------------------------


def test_expect_100_continue_content_length():
    with Server() as srv:
        body = publish_body("cont.cl")
        s = raw_connect(srv)
        try:
            s.sendall(("POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                       f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode())
            buf = read_until(s, lambda b: b"\r\n\r\n" in b)
            eq(buf, b"HTTP/1.1 100 Continue\r\n\r\n", "interim response before the body")
            s.sendall(body)
            (r,) = read_responses(s, 1)
            eq(r.status, 202, f"final status ({r.body!r})")
            eq(r.json()["topic"], "cont.cl", "topic")
        finally:
            s.close()


def test_expect_100_continue_chunked():
    with Server() as srv:
        body = publish_body("cont.chunked")
        s = raw_connect(srv)
        try:
            s.sendall(chunked_head(extra=["Expect: 100-continue"]))
            buf = read_until(s, lambda b: b"\r\n\r\n" in b)
            eq(buf, b"HTTP/1.1 100 Continue\r\n\r\n", "interim response before the body")
            s.sendall(chunk(body) + b"0\r\n\r\n")
            (r,) = read_responses(s, 1)
            eq(r.status, 202, f"final status ({r.body!r})")
        finally:
            s.close()


def test_expect_100_continue_not_sent_when_body_already_there():
    with Server() as srv:
        body = publish_body("cont.full")
        s = raw_connect(srv)
        try:
            s.sendall(req("POST", "/api/realtime/publish", body,
                          headers=["Expect: 100-continue"]) + req("GET", "/healthz"))
            r1, r2 = read_responses(s, 2)
            eq((r1.status, r2.status), (202, 200), "statuses (no 100 when the body came along)")
        finally:
            s.close()


def test_expect_100_continue_refused_when_body_too_large():
    with Server("--max-body-bytes=100") as srv:
        data = ("POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\nContent-Length: 5000\r\n"
                "Expect: 100-continue\r\n\r\n").encode()
        fatal_case(srv, data, 413, "payload_too_large", ["5000", "100"])


# ---- bad input: one status each --------------------------------------------------------


def test_400_malformed_request_line():
    with Server() as srv:
        fatal_case(srv, b"GET /healthz\r\nHost: e2e\r\n\r\n", 400, "bad_request", ["version"])
        fatal_case(srv, b"GET  /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n", 400, "bad_request",
                   ["target"])
        fatal_case(srv, b"GET /healthz HTTP/1.1\nHost: e2e\r\n\r\n", 400, "bad_request",
                   ["LF"])
        fatal_case(srv, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "bad_request",
                   ["TLS"])
        fatal_case(srv, b"GET http://example.com/ HTTP/1.1\r\nHost: e2e\r\n\r\n", 400,
                   "bad_request", ["'/'"])


def test_400_bad_header():
    with Server() as srv:
        fatal_case(srv, b"GET /healthz HTTP/1.1\r\nHost: e2e\r\nNoColonHere\r\n\r\n", 400,
                   "bad_request", ["colon"])
        fatal_case(srv, b"GET /healthz HTTP/1.1\r\nHost: e2e\r\nX-A : 1\r\n\r\n", 400,
                   "bad_request", ["X-A", "colon"])
        fatal_case(srv, b"GET /healthz HTTP/1.1\r\nHost: e2e\r\nX-A: a\x01b\r\n\r\n", 400,
                   "bad_request", ["X-A", "0x01"])
        fatal_case(srv, b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n folded\r\n\r\n", 400,
                   "bad_request", ["whitespace"])
        fatal_case(srv, b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request", ["Host"])
        fatal_case(srv, b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                   b"Content-Length: 12x\r\n\r\n", 400, "bad_request", ["Content-Length"])
        fatal_case(srv, b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                   b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                   "bad_request", ["Content-Length", "Transfer-Encoding"])


def test_405_with_allow_header():
    with Server() as srv:
        cases = [
            ("DELETE", "/healthz", "GET, HEAD"),
            ("POST", "/healthz", "GET, HEAD"),
            ("GET", "/api/realtime/publish", "POST"),
            ("PUT", "/api/realtime/stats", "GET, HEAD"),
        ]
        s = raw_connect(srv)
        try:
            for method, path, allow in cases:
                body = b"{}" if method in ("POST", "PUT") else b""
                s.sendall(req(method, path, body))
                (r,) = read_responses(s, 1)
                eq(r.status, 405, f"{method} {path} status")
                eq(r.header("Allow"), allow, f"{method} {path} Allow header")
                eq(r.header("Connection"), "keep-alive", "405 keeps the connection")
                check_error(r.status, {"content-type": r.header("Content-Type")}, r.body, 405,
                            "method_not_allowed", [method, path])
        finally:
            s.close()
        assert_still_serving(srv)


def test_408_slow_request_head():
    with Server("--request-timeout=1s") as srv:
        s = raw_connect(srv)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n")
            t0 = time.monotonic()
            raw = recv_until_close(s, 10)
            took = time.monotonic() - t0
        finally:
            s.close()
        resps, rest = parse_responses(raw)
        eq(len(resps), 1, f"responses ({raw!r})")
        status, hdrs, body = resps[0]
        eq(hdrs["connection"], "close", "Connection header")
        check_error(status, hdrs, body, 408, "request_timeout", ["request_timeout", "1000 ms"])
        check(0.8 <= took <= 1 + 4 * Server.TIMEOUT_SCALE, f"408 after {took:.2f}s, want ~1s")
        assert_still_serving(srv)
        # the first request of a connection may be counted as a handshake timeout
        ctr = [sh["counters"] for sh in stats(srv)["shards"]]
        eq(sum(c["request_timeouts"] + c["handshake_timeouts"] for c in ctr), 1,
           f"request_timeouts + handshake_timeouts counters {ctr}")


def test_408_slow_request_body():
    with Server("--request-timeout=1s") as srv:
        s = raw_connect(srv)
        try:
            s.sendall(b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                      b"Content-Length: 100\r\n\r\n{\"topic\":")
            raw = recv_until_close(s, 10)
        finally:
            s.close()
        resps, _ = parse_responses(raw)
        eq(len(resps), 1, f"responses ({raw!r})")
        check_error(*resps[0], 408, "request_timeout")
        assert_still_serving(srv)


def test_408_connection_that_sends_nothing():
    with Server("--request-timeout=1s") as srv:
        s = raw_connect(srv)
        try:
            raw = recv_until_close(s, 10)
        finally:
            s.close()
        resps, _ = parse_responses(raw)
        eq(len(resps), 1, f"responses ({raw!r})")
        check_error(*resps[0], 408, "request_timeout")


def test_411_post_without_length():
    with Server() as srv:
        fatal_case(srv, b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n\r\n", 411,
                   "length_required", ["Content-Length"])


def test_413_content_length_over_limit():
    with Server("--max-body-bytes=1000") as srv:
        msg = fatal_case(srv, b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                         b"Content-Length: 1001\r\n\r\n", 413, "payload_too_large",
                         ["1001", "1000"])
        check("limit" in msg, f"413 message {msg!r} does not say it is a limit")
        # exactly at the limit is fine
        prefix = b'{"topic":"lim.ok","data":"'
        body = prefix + b"x" * (1000 - len(prefix) - 2) + b'"}'
        eq(len(body), 1000, "test body length")
        r = http(srv, "POST", "/api/realtime/publish", body)
        eq(r.status, 202, f"publish of exactly max_body_bytes ({r.body!r})")


def test_414_request_line_too_long():
    with Server("--max-request-line=256") as srv:
        path = "/" + "a" * 300
        fatal_case(srv, f"GET {path} HTTP/1.1\r\nHost: e2e\r\n\r\n".encode(), 414,
                   "uri_too_long", ["256"])
        # a long line sent without its end is refused as soon as it passes the limit
        s = raw_connect(srv)
        try:
            s.sendall(f"GET {path}".encode())
            raw = recv_until_close(s, 10)
        finally:
            s.close()
        resps, _ = parse_responses(raw)
        eq(len(resps), 1, "responses to an unterminated long line")
        check_error(*resps[0], 414, "uri_too_long")
        # just under the limit still works (404: no such path)
        ok = "/" + "b" * (256 - len("GET  HTTP/1.1\r\n") - 1)
        r = http(srv, "GET", ok)
        eq(r.status, 404, "request line just under max_request_line")


def test_431_too_many_headers():
    with Server("--max-headers=8") as srv:
        hdrs = "".join(f"X-H{i}: {i}\r\n" for i in range(8))
        fatal_case(srv, f"GET /healthz HTTP/1.1\r\nHost: e2e\r\n{hdrs}\r\n".encode(), 431,
                   "headers_too_large", ["8 header fields"])
        # Host + 6 + Connection = 8 fields: accepted
        hdrs6 = "".join(f"X-H{i}: {i}\r\n" for i in range(6))
        resps, _ = exchange_close(srv, f"GET /healthz HTTP/1.1\r\nHost: e2e\r\n{hdrs6}"
                                  "Connection: close\r\n\r\n".encode())
        eq(len(resps), 1, "responses")
        eq(resps[0][0], 200, "exactly eight fields")


def test_431_header_block_too_big():
    with Server("--max-header-bytes=1024", "--max-request-line=512") as srv:
        big = "v" * 2000
        fatal_case(srv, f"GET /healthz HTTP/1.1\r\nHost: e2e\r\nX-Big: {big}\r\n\r\n".encode(),
                   431, "headers_too_large", ["1024"])
        # many small headers adding up
        hdrs = "".join(f"X-Pad-{i}: {'p' * 100}\r\n" for i in range(12))
        fatal_case(srv, f"GET /healthz HTTP/1.1\r\nHost: e2e\r\n{hdrs}\r\n".encode(), 431,
                   "headers_too_large", ["1024"])


def test_501_unknown_transfer_encoding():
    with Server() as srv:
        fatal_case(srv, b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                   b"Transfer-Encoding: gzip\r\n\r\n", 501, "not_implemented",
                   ["gzip", "chunked"])
        fatal_case(srv, b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                   b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "not_implemented",
                   ["gzip"])


def test_505_http2_request_line():
    with Server() as srv:
        fatal_case(srv, b"GET /healthz HTTP/2.0\r\nHost: e2e\r\n\r\n", 505,
                   "version_not_supported", ["HTTP/2.0", "HTTP/1.1"])
        fatal_case(srv, b"GET /healthz HTTP/3.0\r\n\r\n", 505, "version_not_supported",
                   ["HTTP/3.0"])


def test_417_unknown_expectation():
    with Server() as srv:
        fatal_case(srv, b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                   b"Content-Length: 2\r\nExpect: magic\r\n\r\n{}", 417, "expectation_failed",
                   ["magic", "100-continue"])


def test_404_json_and_connection_kept():
    with Server() as srv:
        s = raw_connect(srv)
        try:
            s.sendall(req("GET", "/nowhere?x=1") + req("GET", "/healthz/extra") +
                      req("GET", "/healthz?probe=1"))
            a, b, c = read_responses(s, 3)
        finally:
            s.close()
        for r in (a, b):
            check_error(r.status, {"content-type": r.header("Content-Type")}, r.body, 404,
                        "not_found")
            eq(r.header("Connection"), "keep-alive", "404 keeps the connection")
        eq(c.status, 200, "/healthz with a query string")


# ---- API-level bad input ---------------------------------------------------------------


def test_publish_bad_input_codes():
    with Server() as srv:
        cases = [
            (b'{"topic": "a.b", ', "bad_json", ["not valid JSON"]),
            (b"[1, 2]", "bad_json", ["JSON object"]),
            (b'{"topic":"a","topic":"b"}', "bad_json", []),
            (b'{"type": "x", "data": 1}', "missing_field", ["topic"]),
            (b'{"topic": "orders.*", "data": 1}', "bad_topic", ["wildcard"]),
            (b'{"topic": "orders.>", "data": 1}', "bad_topic", ["wildcard"]),
            (b'{"topic": 5}', "bad_type", ["topic", "string"]),
            (b'{"topic": "a.b", "type": 5}', "bad_type", ["type", "string"]),
            (b'{"topic": "a.b", "type": "has space"}', "bad_value", ["type"]),
            (b'{"topic": ""}', "bad_value", ["topic"]),
        ]
        s = raw_connect(srv)
        try:
            for body, code, words in cases:
                s.sendall(req("POST", "/api/realtime/publish", body))
                (r,) = read_responses(s, 1)
                check_error(r.status, {"content-type": r.header("Content-Type")}, r.body, 400,
                            code, words)
                eq(r.header("Connection"), "keep-alive", f"connection kept after {body!r}")
            # an empty body
            s.sendall(b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                      b"Content-Length: 0\r\n\r\n")
            (r,) = read_responses(s, 1)
            check_error(r.status, {"content-type": r.header("Content-Type")}, r.body, 400,
                        "bad_json")
            # and a good one on the same connection
            s.sendall(req("POST", "/api/realtime/publish", publish_body("good.one", [1])))
            (r,) = read_responses(s, 1)
            eq(r.status, 202, "valid publish after the errors")
            eq(r.json()["topic"], "good.one", "topic")
            check(isinstance(r.json()["id"], str) and r.json()["id"], "publish id")
        finally:
            s.close()


# ---- many connections, shards ----------------------------------------------------------


def test_2000_concurrent_connections_spread_over_all_shards():
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    with Server(shards=2) as srv:
        socks = []
        try:
            for _ in range(n):
                socks.append(raw_connect(srv, timeout=30))
            for i, s in enumerate(socks):
                s.sendall(req("GET", "/healthz"))
            for i, s in enumerate(socks):
                (r,) = read_responses(s, 1, timeout=30)
                eq(r.status, 200, f"status on connection {i}")
            # all 2,000 are open at once, and both shards took some
            st = stats(srv)
            eq(len(st["shards"]), 2, "shards in stats")
            accepted = [sh["counters"]["accepted"] for sh in st["shards"]]
            open_now = [sh["connections"] for sh in st["shards"]]
            check(all(a > 0 for a in accepted), f"a shard accepted nothing: {accepted}")
            eq(sum(accepted), n + 1, f"accepted total {accepted}")
            check(sum(open_now) >= n, f"open connections {open_now}, want >= {n}")
            # every connection is still usable
            for s in socks[::97]:
                s.sendall(req("GET", "/healthz"))
                (r,) = read_responses(s, 1)
                eq(r.status, 200, "second request")
        finally:
            for s in socks:
                s.close()

        def all_closed():
            return sum(sh["connections"] for sh in stats(srv)["shards"]) <= 1
        wait_for(all_closed, 20, "the server to see all 2,000 connections closed")


def test_single_shard_serves():
    with Server(shards=1) as srv:
        st = stats(srv)
        eq(len(st["shards"]), 1, "shards in stats")
        s = raw_connect(srv)
        try:
            data = b"".join(req("GET", "/healthz") if i % 2 == 0 else
                            req("POST", "/api/realtime/publish", publish_body(f"one.t{i}"))
                            for i in range(20))
            s.sendall(data)
            resps = read_responses(s, 20)
        finally:
            s.close()
        for i, r in enumerate(resps):
            if i % 2 == 0:
                eq(r.status, 200, f"response {i}")
            else:
                eq(r.status, 202, f"response {i}")
                eq(r.json()["topic"], f"one.t{i}", f"response {i} topic")
        eq(stats(srv)["shards"][0]["counters"]["accepted"], 3, "accepted on the one shard")


def test_pipelining_larger_than_receive_buffers_in_one_write():
    # 100 publishes of ~2 KiB each: the write spans many 16 KiB receive
    # buffers, and requests straddle buffer boundaries while earlier ones wait
    # for their (deferred) answers.
    with Server() as srv:
        pad = "p" * 2000
        data = b""
        for i in range(100):
            if i % 10 == 9:
                data += req("GET", "/healthz")
            elif i % 10 == 4:
                body = publish_body(f"big.n{i:03d}", pad)
                data += chunked_head() + chunk(body[:777]) + chunk(body[777:]) + b"0\r\n\r\n"
            else:
                data += req("POST", "/api/realtime/publish", publish_body(f"big.n{i:03d}", pad))
        check(len(data) > 150000, f"pipeline is {len(data)} bytes")
        s = raw_connect(srv)
        try:
            s.sendall(data)
            resps = read_responses(s, 100, timeout=30)
        finally:
            s.close()
        for i, r in enumerate(resps):
            if i % 10 == 9:
                eq(r.status, 200, f"response {i}")
            else:
                eq(r.status, 202, f"response {i} status ({r.body!r})")
                eq(r.json()["topic"], f"big.n{i:03d}", f"response {i} topic")


def test_large_bodies_across_many_reads():
    with Server() as srv:
        data = "d" * 600000
        body = publish_body("large.cl", data)
        s = raw_connect(srv)
        try:
            head = ("POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            s.sendall(head)
            for off in range(0, len(body), 50000):
                s.sendall(body[off:off + 50000])
            (r,) = read_responses(s, 1, timeout=30)
            eq(r.status, 202, f"large Content-Length body ({r.body!r})")
            body2 = publish_body("large.chunked", data)
            s.sendall(chunked_head() + b"".join(chunk(body2[o:o + 30000])
                                                for o in range(0, len(body2), 30000)) +
                      b"0\r\n\r\n")
            (r,) = read_responses(s, 1, timeout=30)
            eq(r.status, 202, f"large chunked body ({r.body!r})")
            eq(r.json()["topic"], "large.chunked", "topic")
        finally:
            s.close()


def test_pipelined_requests_sent_byte_by_byte():
    with Server() as srv:
        data = (req("GET", "/healthz") +
                req("POST", "/api/realtime/publish", publish_body("bytes.one")) +
                chunked_head() + chunk(publish_body("bytes.two")) + b"0\r\n\r\n" +
                req("GET", "/missing"))
        s = raw_connect(srv)
        try:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
            resps = read_responses(s, 4)
        finally:
            s.close()
        eq([r.status for r in resps], [200, 202, 202, 404], "statuses")
        eq(resps[1].json()["topic"], "bytes.one", "first topic")
        eq(resps[2].json()["topic"], "bytes.two", "second topic")


def test_error_in_the_middle_of_a_pipeline():
    with Server() as srv:
        data = (req("GET", "/healthz") +
                req("POST", "/api/realtime/publish", publish_body("mid.one")) +
                b"GET /healthz HTTP/2.0\r\nHost: e2e\r\n\r\n" +
                req("GET", "/healthz"))
        resps, rest = exchange_close(srv, data)
        eq(rest, b"", "unparsed bytes")
        eq([r[0] for r in resps], [200, 202, 505], "statuses (nothing after the 505)")
        eq(json.loads(resps[1][2])["topic"], "mid.one", "publish answered before the error")
        eq(resps[2][1]["connection"], "close", "Connection of the error")
        check_error(*resps[2], 505, "version_not_supported")
        assert_still_serving(srv)


def test_half_closed_client_gets_every_pipelined_answer():
    # A client may send its requests and then shut down its write side; every
    # complete request it sent must still be answered, in order, whether or
    # not the first answer is produced by another shard (deferred).
    with Server() as srv:
        cases = [
            [req("GET", "/healthz"), req("GET", "/missing")],
            [req("POST", "/api/realtime/publish", publish_body("half.a")), req("GET", "/healthz")],
            [req("POST", "/api/realtime/publish", publish_body("half.b")),
             req("POST", "/api/realtime/publish", publish_body("half.c"))],
        ]
        want = [[200, 404], [202, 200], [202, 202]]
        for reqs, statuses in zip(cases, want):
            s = raw_connect(srv)
            try:
                s.sendall(b"".join(reqs))
                s.shutdown(socket.SHUT_WR)
                raw = recv_until_close(s, 10)
            finally:
                s.close()
            resps, rest = parse_responses(raw)
            eq([r[0] for r in resps], statuses,
               f"statuses after half-close for {[r.split(b' ')[1] for r in reqs]}")
            eq(rest, b"", "unparsed bytes")


def test_408_is_not_postponed_by_trickled_bytes():
    # slowloris: one byte every 0.2 s; the deadline counts from the request's start
    with Server("--request-timeout=1s") as srv:
        msg = b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n" + b"X-Slow: aaaaaaaaaaaaaaaaaaaa\r\n" * 4
        s = raw_connect(srv)
        raw = b""
        t0 = time.monotonic()
        try:
            s.settimeout(0.2)
            for i in range(len(msg)):
                try:
                    s.sendall(msg[i:i + 1])
                except OSError:
                    break  # the server already answered and closed
                try:
                    chunk_ = s.recv(65536)
                except socket.timeout:
                    continue
                raw += chunk_
                if not chunk_:
                    break
            took = time.monotonic() - t0
            raw += recv_until_close(s, 5)
        finally:
            s.close()
        resps, _ = parse_responses(raw)
        eq(len(resps), 1, f"responses ({raw[:200]!r})")
        check_error(*resps[0], 408, "request_timeout")
        check(took <= 1 + 2 * Server.TIMEOUT_SCALE,
              f"408 only after {took:.2f}s of trickling, want ~1s")


def test_408_on_a_later_request_of_a_keepalive_connection():
    with Server("--request-timeout=1s", "--keepalive-timeout=60s") as srv:
        s = raw_connect(srv)
        try:
            for _ in range(2):
                s.sendall(req("GET", "/healthz"))
                (r,) = read_responses(s, 1)
                eq(r.status, 200, "status")
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n")
            t0 = time.monotonic()
            raw = recv_until_close(s, 10)
            took = time.monotonic() - t0
        finally:
            s.close()
        resps, _ = parse_responses(raw)
        eq(len(resps), 1, f"responses ({raw!r})")
        check_error(*resps[0], 408, "request_timeout")
        check(0.8 <= took <= 1 + 4 * Server.TIMEOUT_SCALE,
              f"408 after {took:.2f}s, want ~1s (not keepalive_timeout)")
        eq(sum(sh["counters"]["request_timeouts"] for sh in stats(srv)["shards"]), 1,
           "request_timeouts counter")


def test_head_on_405_has_no_body():
    with Server() as srv:
        s = raw_connect(srv)
        try:
            s.sendall(req("HEAD", "/api/realtime/publish") + req("GET", "/healthz"))
            buf = read_until(s, lambda b: b.count(b"\r\n\r\n") >= 2 and b.endswith(b"}"))
        finally:
            s.close()
        resps, rest = parse_responses(buf, head_only=(0,))
        eq(rest, b"", "unparsed bytes")
        eq([r[0] for r in resps], [405, 200], "statuses")
        eq(resps[0][1]["allow"], "POST", "Allow")
        eq(resps[0][2], b"", "HEAD 405 body")
