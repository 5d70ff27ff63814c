"""The HTTP session under load from one connection: backpressure on pipelined
deferred requests (the answer ring and the input cap), answers larger than
max_pending_bytes, and request deadlines on a busy keep-alive connection."""

import json
import socket
import threading
import time

from harness import (Server, TestFailure, check, eq, http, publish, raw_connect, read_responses,
                     wait_for)


def req(method, path, body=b"", headers=()):
    h = [f"{method} {path} HTTP/1.1", "Host: e2e"] + list(headers)
    if body or method == "POST":
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def publish_req(topic, data=None):
    body = json.dumps({"topic": topic, "type": "test.event", "data": data}).encode()
    return req("POST", "/api/realtime/publish", body)


def counters(srv):
    r = http(srv, "GET", "/api/realtime/stats")
    eq(r.status, 200, "stats status")
    return r.json()["counters"]


def read_paused(srv):
    """The server stopped reading a connection at least once (or died: the
    caller's next check reports it)."""
    if srv.proc.poll() is not None:
        return True
    return counters(srv).get("http_read_pauses", 0) >= 1


class Sender(threading.Thread):
    """Writes data on s with blocking sendall (it blocks while the server
    does not read: that is the backpressure under test)."""

    def __init__(self, s, data):
        super().__init__(daemon=True)
        self.s, self.data, self.error, self.done = s, data, None, False

    def run(self):
        try:
            self.s.sendall(self.data)
            self.done = True
        except OSError as e:
            self.error = e


# ---- the answer ring: backpressure, not buffering --------------------------------------


def test_pipelined_deferred_requests_past_the_ring_and_input_cap_with_a_client_that_does_not_read():
    # The old input cap was max_header_bytes + max_body_bytes + 64 KiB (~144
    # KiB here). 6000 pipelined publishes (~0.5 MiB) and unread-count store
    # calls, all deferred, sent by a client that reads nothing at first:
    # before the fix the session kept buffering past 64 pending answers and,
    # at the input cap, wrote a 65th slot into the ring (double free under
    # ASan). Now it stops reading instead, and every request is answered.
    with Server("--max-body-bytes=64KiB", "--max-header-bytes=16KiB") as srv:
        n = 6000
        data = b"".join(
            req("GET", f"/api/realtime/notifications/unread-count/u{i}") if i % 5 == 4
            else publish_req(f"ring.n{i:05d}", i) for i in range(n))
        check(len(data) > 3 * (16 + 64 + 64) * 1024, f"pipeline is only {len(data)} bytes")
        s = raw_connect(srv, timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sender = Sender(s, data)
        sender.start()
        try:
            # the client reads nothing: the server stops reading this connection
            wait_for(lambda: read_paused(srv), 30, "the server to stop reading the connection")
            check(srv.proc.poll() is None, "server alive while the client does not read")
            resps = read_responses(s, n, timeout=120)
            sender.join(60)
            check(sender.done, f"the pipeline was not all written ({sender.error!r})")
        finally:
            s.close()
        for i, r in enumerate(resps):
            if i % 5 == 4:
                eq(r.status, 200, f"response {i} (unread-count) {r.body[:200]!r}")
            else:
                eq(r.status, 202, f"response {i} {r.body[:200]!r}")
                eq(r.json()["topic"], f"ring.n{i:05d}", f"response {i} topic (order)")
        eq(counters(srv)["slow_consumer_disconnects"], 0, "slow consumer closes")
        eq(http(srv, "GET", "/healthz").status, 200, "server still serving")


# ---- answers larger than max_pending_bytes --------------------------------------------


def test_history_page_larger_than_max_pending_bytes_is_delivered():
    # max_pending_bytes bounds a backlog of events, not one answer: a history
    # page of 12 x 20 KB events (~240 KB) goes through a 64 KiB cap
    with Server("--max-pending-bytes=64KiB", shards=2) as srv:
        for i in range(12):
            publish(srv, "big.history", {"i": i, "pad": "x" * 20000})
        r = http(srv, "GET", "/api/realtime/history/big.history?limit=50", timeout=30)
        eq(r.status, 200, f"history status {r.body[:200]!r}")
        check(len(r.body) > 240000, f"history answer is {len(r.body)} bytes")
        events = r.json()
        events = events["events"] if isinstance(events, dict) else events
        eq([e["data"]["i"] for e in events], list(range(12)), "history events")
        eq(counters(srv)["slow_consumer_disconnects"], 0, "slow consumer closes")


def test_notification_list_larger_than_max_pending_bytes_is_delivered():
    # 20 notifications of ~12 KB each (metadata) on one page: ~240 KB through a
    # 64 KiB max_pending_bytes
    with Server("--max-pending-bytes=64KiB") as srv:
        for i in range(20):
            r = http(srv, "POST", "/api/realtime/notifications",
                     {"title": f"n{i}", "message": "m", "recipients": ["big-user"],
                      "metadata": {"pad": "q" * 12000}})
            eq(r.status, 201, f"create {i} {r.body[:200]!r}")
        r = http(srv, "GET", "/api/realtime/notifications?user_id=big-user&page_size=20",
                 timeout=30)
        eq(r.status, 200, f"list status {r.body[:200]!r}")
        check(len(r.body) > 240000, f"list answer is {len(r.body)} bytes")
        eq(sorted(n["title"] for n in r.json()), sorted(f"n{i}" for i in range(20)), "titles")


def test_pipelined_history_answers_are_bounded_and_all_delivered():
    # 300 pipelined requests for a ~240 KB page, by a client that does not
    # read: the server takes no more requests (and stops reading) while 64 KiB
    # of answers are unread, or would be with the answers still to come, so it
    # never holds 300 answers (~70 MB); then the client reads every answer, in
    # order.
    with Server("--max-pending-bytes=64KiB", shards=1) as srv:
        for i in range(12):
            publish(srv, "big.pipe", {"i": i, "pad": "y" * 20000})
        n = 300
        path = "/api/realtime/history/big.pipe"
        data = b"".join(req("GET", path + ("?limit=50" if i % 2 else "")) for i in range(n))
        base = counters(srv)["http_requests"]
        calls = [0]

        def taken():
            calls[0] += 1
            return counters(srv)["http_requests"] - base - calls[0]

        s = raw_connect(srv, timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            s.sendall(data)
            wait_for(lambda: read_paused(srv), 30, "the server to stop reading the connection")
            calls[0] += 1
            # watch for a second: the server takes at most the first wave
            # (64 requests, before any answer size is known) while unread
            seen = []
            t_end = time.monotonic() + 1.0

            def watched():
                seen.append(taken())
                return time.monotonic() > t_end

            wait_for(watched, 10, "a second of observation", interval=0.05)
            check(max(seen) <= 64, f"the server took {max(seen)} requests while the client "
                                   f"read nothing ({seen})")
            resps = read_responses(s, n, timeout=120)
        finally:
            s.close()
        for i, r in enumerate(resps):
            eq(r.status, 200, f"response {i}")
            check(len(r.body) > 240000, f"response {i} is {len(r.body)} bytes")
        eq(counters(srv)["slow_consumer_disconnects"], 0, "slow consumer closes")


# ---- request deadlines on a busy connection ---------------------------------------------


def test_pipelining_publisher_keeps_its_connection_for_three_request_timeouts():
    # a backend with a sliding window of 64 publishes on one connection,
    # reading answers as they come, for 3 x request_timeout: every request is
    # answered and the connection is never cut
    with Server("--request-timeout=1s") as srv:
        s = raw_connect(srv, timeout=10)
        window, sent, got = 64, 0, 0
        buf = b""
        start = time.monotonic()
        try:
            s.setblocking(True)
            s.settimeout(10)
            while True:
                running = time.monotonic() - start < 3.5
                while running and sent - got < window:
                    s.sendall(publish_req(f"busy.n{sent % 97}", sent))
                    sent += 1
                if not running and got == sent:
                    break
                chunk = s.recv(65536)
                if not chunk:
                    raise TestFailure(f"server closed the connection after "
                                      f"{time.monotonic() - start:.2f}s, {got} of {sent} "
                                      "answered")
                buf += chunk
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode("latin-1")
                    clen = 0
                    for ln in head.split("\r\n")[1:]:
                        k, _, v = ln.partition(": ")
                        if k.lower() == "content-length":
                            clen = int(v)
                    if len(buf) < end + 4 + clen:
                        break
                    status = int(head.split(" ")[1])
                    eq(status, 202, f"answer {got}")
                    body = json.loads(buf[end + 4:end + 4 + clen])
                    eq(body["topic"], f"busy.n{got % 97}", f"answer {got} topic")
                    got += 1
                    buf = buf[end + 4 + clen:]
            elapsed = time.monotonic() - start
            check(elapsed >= 3.0, f"ran only {elapsed:.2f}s")
            check(got > 200, f"only {got} publishes answered")
            # still open and usable
            s.sendall(req("GET", "/healthz"))
            (r,) = read_responses(s, 1)
            eq(r.status, 200, "request after the run")
        finally:
            s.close()
        eq(counters(srv)["request_timeouts"], 0, "request timeouts")


def test_slow_request_on_a_busy_connection_gets_408_logged_and_counted():
    with Server("--request-timeout=1s") as srv:
        s = raw_connect(srv, timeout=10)
        try:
            s.sendall(publish_req("slow.one", 1) + publish_req("slow.two", 2))
            resps = read_responses(s, 2)
            eq([r.status for r in resps], [202, 202], "first answers")
            # a request that never completes
            s.sendall(b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                      b"Content-Length: 100\r\n\r\n{\"topic\":")
            (r,) = read_responses(s, 1, timeout=10)
            eq(r.status, 408, "slow request status")
            eq(r.json()["error"]["code"], "request_timeout", "error code")
            eq(r.header("Connection"), "close", "Connection")
        finally:
            s.close()
        wait_for(lambda: srv.log_has(r"event=request_timeout .*limit=request_timeout"), 10,
                 "the request_timeout log line")
        eq(counters(srv)["request_timeouts"], 1, "request_timeouts counter")
