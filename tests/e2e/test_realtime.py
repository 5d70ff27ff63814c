"""Real-time core over WebSocket (issue 3): the client protocol, topics and
wildcards, cross-shard delivery, filters, bad input, protocol violations,
handshakes and heartbeats. Clients: python3-websockets, raw sockets, and
Node's ws (tests/e2e/node/ws_sub.js)."""

import asyncio
import base64
import hashlib
import json
import os
import threading
import time

import websockets

from harness import (Server, TestFailure, check, eq, http, node, publish, raw_connect,
                     run_async, shard_of, wait_for, ws_connect, ws_next, ws_request,
                     ws_subscribe)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---- helpers shared with test_fanout.py / test_sse.py (no test_ prefix) -----------------

def stats(srv, limit=None):
    path = "/api/realtime/stats" + (f"?limit={limit}" if limit is not None else "")
    r = http(srv, "GET", path)
    eq(r.status, 200, f"GET {path} status")
    return r.json()


def counter(srv, name):
    return stats(srv, limit=0)["counters"][name]


def wait_subscribed(srv, conn_id, pattern, timeout=10.0):
    """Wait until stats list `pattern` among conn_id's subscriptions."""
    def ok():
        subs = stats(srv, limit=10000)["subscriptions"]
        return pattern in subs.get(conn_id, [])
    wait_for(ok, timeout, f"{conn_id} subscribed to {pattern} in stats", interval=0.05)


def wait_total_subscriptions(srv, n, timeout=60.0):
    def ok():
        return stats(srv, limit=0).get("total_subscriptions", 0) >= n
    wait_for(ok, timeout, f"{n} subscriptions in stats", interval=0.1)


async def connect_on_both_shards(srv, per_shard=1, max_tries=200, **kw):
    """Open connections until each of shards 0 and 1 has `per_shard` of them.
    Returns (conns_by_shard, extra) where extra are the surplus connections."""
    by = {0: [], 1: []}
    extra = []
    tries = 0
    while min(len(by[0]), len(by[1])) < per_shard:
        tries += 1
        if tries > max_tries:
            raise TestFailure(f"{max_tries} connections did not land on both shards: "
                              f"{[(k, len(v)) for k, v in by.items()]}")
        ws = await ws_connect(srv, **kw)
        sh = shard_of(ws.connection_id)
        check(sh in (0, 1), f"connection id {ws.connection_id} names shard {sh} of 2")
        if len(by[sh]) < per_shard:
            by[sh].append(ws)
        else:
            extra.append(ws)
    return by, extra


async def expect_silence_then(ws, want_event_id, timeout=10.0):
    """The next event on ws must be want_event_id (skipping pings); returns it."""
    m = await ws_next(ws, timeout, type_="event")
    eq(m["data"]["id"], want_event_id, f"next event on {ws.connection_id}")
    return m


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_of(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def raw_ws_handshake(srv, path="/api/realtime/ws", extra_headers=""):
    """Open a raw socket and complete a WebSocket handshake by hand.
    Returns (socket, leftover bytes after the 101 head)."""
    s = raw_connect(srv)
    key = ws_key()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise TestFailure(f"closed during the handshake: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    check(lines[0].startswith("HTTP/1.1 101 "), f"handshake status line: {lines[0]!r}")
    hdrs = {k.lower(): v for k, v in (ln.split(": ", 1) for ln in lines[1:])}
    eq(hdrs.get("sec-websocket-accept"), accept_of(key), "Sec-WebSocket-Accept")
    return s, rest


def ws_frame(opcode, payload, mask=True, fin=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, (0x80 if mask else 0) | n])
    elif n < 65536:
        hdr = bytes([b0, (0x80 if mask else 0) | 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([b0, (0x80 if mask else 0) | 127]) + n.to_bytes(8, "big")
    if not mask:
        return hdr + payload
    m = os.urandom(4)
    return hdr + m + bytes(c ^ m[i % 4] for i, c in enumerate(payload))


class RawFrames:
    """Reads server frames (unmasked) from a raw socket."""

    def __init__(self, sock, leftover=b""):
        self.s = sock
        self.buf = leftover

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("timed out reading a frame")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self.buf += chunk
        return True

    def next(self, timeout=10.0):
        """(opcode, payload) or None at EOF."""
        deadline = time.monotonic() + timeout * Server.TIMEOUT_SCALE
        if not self._need(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        check(not (b1 & 0x80), "server frames must not be masked")
        n = b1 & 0x7F
        off = 2
        if n == 126:
            if not self._need(4, deadline):
                return None
            n = int.from_bytes(self.buf[2:4], "big")
            off = 4
        elif n == 127:
            if not self._need(10, deadline):
                return None
            n = int.from_bytes(self.buf[2:10], "big")
            off = 10
        if not self._need(off + n, deadline):
            return None
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def next_json(self, timeout=10.0):
        f = self.next(timeout)
        check(f is not None, "connection closed, wanted a text frame")
        eq(f[0], 1, "opcode of a JSON message")
        return json.loads(f[1])

    def close_code(self, timeout=10.0):
        """Read frames until a close frame; return its status code."""
        while True:
            f = self.next(timeout)
            check(f is not None, "EOF without a close frame")
            if f[0] == 8:
                check(len(f[1]) >= 2, f"close frame without a code: {f[1]!r}")
                return int.from_bytes(f[1][:2], "big")


def raw_ws_open(srv, path="/api/realtime/ws"):
    s, rest = raw_ws_handshake(srv, path)
    rf = RawFrames(s, rest)
    hello = rf.next_json()
    eq(hello["type"], "connected", "first message type")
    return s, rf, hello["data"]["connection_id"]


def assert_server_serves(srv):
    """A fresh WebSocket client can subscribe and receive an event; /healthz is ok."""
    eq(http(srv, "GET", "/healthz").status, 200, "/healthz after the incident")

    async def go():
        ws = await ws_connect(srv)
        sub = await ws_subscribe(ws, "still.alive")
        eid = publish(srv, "still.alive", {"ok": True})
        m = await ws_next(ws, type_="event")
        eq((m["data"]["id"], m["data"]["subscription"]), (eid, sub), "event after the incident")
        await ws.close()
    run_async(go())


# ---- connected / subscribe / unsubscribe ------------------------------------------------

def test_connected_message_shape():
    with Server() as srv:
        async def go():
            for path in ("/api/realtime/ws", "/api/v1/ws/realtime"):
                ws = await websockets.connect(f"ws://127.0.0.1:{srv.port}{path}")
                m = json.loads(await ws.recv())
                eq(m["type"], "connected", f"{path}: type")
                eq(sorted(m.keys()), ["data", "type"], f"{path}: keys")
                eq(sorted(m["data"].keys()), ["connection_id", "server_time"], f"{path}: data keys")
                cid = m["data"]["connection_id"]
                check(len(cid) == 16 and all(c in "0123456789abcdef" for c in cid),
                      f"connection_id is 16 lower-case hex digits: {cid!r}")
                check(shard_of(cid) < 2, f"connection id names a shard < 2: {cid}")
                ts = m["data"]["server_time"]
                t = time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
                check(ts.endswith("Z") and len(ts) == 24, f"server_time ISO 8601 ms UTC: {ts!r}")
                check(abs(time.mktime(t) - time.mktime(time.gmtime())) < 60,
                      f"server_time is now: {ts}")
                await ws.close()
            # ids are unique
            a = await ws_connect(srv)
            b = await ws_connect(srv)
            check(a.connection_id != b.connection_id, "two connections, two ids")
            await a.close()
            await b.close()
        run_async(go())


def test_subscribe_unsubscribe_echo_ids():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "subscribe", "topic": "news.sport", "id": "req-1"})
            eq(r["type"], "subscribed", "type")
            eq(r["id"], "req-1", "echoed string id")
            eq(r["data"]["topic"], "news.sport", "topic")
            check("collection" not in r["data"], f"no collection key when topic given: {r}")
            sub1 = r["data"]["subscription"]
            check(isinstance(sub1, str) and sub1, f"subscription id: {sub1!r}")

            r = await ws_request(ws, {"action": "subscribe", "collection": "posts", "id": 42})
            eq((r["type"], r["id"]), ("subscribed", 42), "echoed integer id")
            eq((r["data"]["topic"], r["data"]["collection"]), ("posts", "posts"), "collection")
            sub2 = r["data"]["subscription"]
            check(sub2 != sub1, "distinct subscription ids")

            r = await ws_request(ws, {"action": "subscribe", "topic": "x.y"})
            check("id" not in r, f"no id key when the request had none: {r}")
            eq(r["type"], "subscribed", "type without id")

            wait_subscribed(srv, ws.connection_id, "news.sport")
            eq(sorted(stats(srv)["subscriptions"][ws.connection_id]),
               ["news.sport", "posts", "x.y"], "stats lists the patterns")

            r = await ws_request(ws, {"action": "unsubscribe", "subscription": sub1, "id": "u-1"})
            eq(r, {"type": "unsubscribed", "id": "u-1", "data": {"subscription": sub1}},
               "unsubscribe by id")
            r = await ws_request(ws, {"action": "unsubscribe", "collection": "posts", "id": 7})
            eq((r["type"], r["id"], r["data"]["topic"], r["data"]["removed"]),
               ("unsubscribed", 7, "posts", 1), "unsubscribe by collection")
            r = await ws_request(ws, {"action": "unsubscribe", "subscription": sub1, "id": 8})
            eq((r["type"], r["data"]["code"], r["data"]["id"]), ("error", "not_found", 8),
               "unsubscribe twice")
            r = await ws_request(ws, {"action": "unsubscribe", "topic": "nope", "id": "z"})
            eq((r["type"], r["data"]["code"], r["data"]["id"]), ("error", "not_found", "z"),
               "unsubscribe an unknown topic")
            r = await ws_request(ws, {"action": "ping", "id": "p"})
            eq((r["type"], r["id"]), ("pong", "p"), "ping action answered by pong")
            eq(stats(srv)["subscriptions"][ws.connection_id], ["x.y"], "stats after unsubscribe")
            await ws.close()
        run_async(go())


def test_events_cross_shards():
    with Server() as srv:
        async def go():
            by, extra = await connect_on_both_shards(srv, per_shard=2)
            conns = by[0] + by[1]
            topics = [f"cross.t{i}" for i in range(6)]  # owners spread over both shards
            subs = {}
            for ws in conns:
                for t in topics:
                    subs[(ws.connection_id, t)] = await ws_subscribe(ws, t)
            for t in topics:
                eid = publish(srv, t, {"topic": t})
                for ws in conns:
                    m = await ws_next(ws, type_="event")
                    d = m["data"]
                    eq((d["id"], d["topic"], d["collection"], d["type"], d["data"],
                        d["subscription"]),
                       (eid, t, t, "message", {"topic": t}, subs[(ws.connection_id, t)]),
                       f"event on shard {shard_of(ws.connection_id)} conn {ws.connection_id}")
                    eq(m["type"], "event", "message type")
            for ws in conns + extra:
                await ws.close()
        run_async(go())


def test_wildcards_match_and_do_not_match():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv)
            star = await ws_subscribe(ws, "a.*")
            tail = await ws_subscribe(ws, "a.>")
            lone = await ws_subscribe(ws, "*")
            mid = await ws_subscribe(ws, "m.*.z")
            names = {star: "a.*", tail: "a.>", lone: "*", mid: "m.*.z"}
            # (topic, patterns that must match). Per topic: an exact helper
            # subscription, then E1 and E2 published on that topic; per-topic
            # order means every copy of E1 arrives before the helper's E2, so
            # the E1 copies seen are exactly the matching subscriptions.
            cases = [
                ("a", ["*"]),
                ("a.b", ["a.*", "a.>"]),
                ("a.b.c", ["a.>"]),
                ("a.b.c.d", ["a.>"]),
                ("b", ["*"]),
                ("b.c", []),
                ("m.q.z", ["m.*.z"]),
                ("m.q.r.z", []),
                ("m.z", []),
                ("ab.c", []),
                ("x.a.b", []),
            ]
            for topic, want in cases:
                helper = await ws_subscribe(ws, topic)
                names[helper] = "helper"
                e1 = publish(srv, topic, {"n": 1})
                e2 = publish(srv, topic, {"n": 2})
                first, second = [], []
                while not (second and "helper" in second):
                    m = await ws_next(ws, type_="event")
                    d = m["data"]
                    eq(d["topic"], topic, "event topic")
                    if d["id"] == e1:
                        check(not second, f"{topic}: a copy of E1 after E2")
                        first.append(names[d["subscription"]])
                    else:
                        eq(d["id"], e2, f"{topic}: event id")
                        second.append(names[d["subscription"]])
                while len(second) < len(first):
                    m = await ws_next(ws, type_="event")
                    eq(m["data"]["id"], e2, f"{topic}: rest of E2's copies")
                    second.append(names[m["data"]["subscription"]])
                eq(sorted(first), sorted(want + ["helper"]), f"subscriptions matching {topic}")
                eq(sorted(second), sorted(first), f"{topic}: E2 went to the same subscriptions")
                r = await ws_request(ws, {"action": "unsubscribe", "subscription": helper})
                eq(r["type"], "unsubscribed", "helper unsubscribed")
            await ws.close()
        run_async(go())


def test_two_matching_subscriptions_get_event_twice():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv)
            s1 = await ws_subscribe(ws, "dup.topic")
            s2 = await ws_subscribe(ws, "dup.*")
            eid = publish(srv, "dup.topic", {"n": 1})
            a = await ws_next(ws, type_="event")
            b = await ws_next(ws, type_="event")
            eq((a["data"]["id"], b["data"]["id"]), (eid, eid), "same event twice")
            eq(sorted([a["data"]["subscription"], b["data"]["subscription"]]), sorted([s1, s2]),
               "each copy names its subscription")
            eid2 = publish(srv, "dup.topic", {"n": 2})
            c = await ws_next(ws, type_="event")
            eq(c["data"]["id"], eid2, "no third copy of the first event")
            await ws.close()
        run_async(go())


def test_unsubscribe_stops_delivery_at_once():
    with Server() as srv:
        async def go():
            # the subscriber and the unsubscribing connection on different shards too
            by, extra = await connect_on_both_shards(srv)
            for ws in (by[0][0], by[1][0]):
                exact = await ws_subscribe(ws, "un.x")
                wild = await ws_subscribe(ws, "un.*")
                for _ in range(3):  # a few rounds: a race would show up
                    e0 = publish(srv, "un.x", {"round": "before"})
                    got = sorted([(await ws_next(ws, type_="event"))["data"]["subscription"]
                                  for _ in range(2)])
                    eq(got, sorted([exact, wild]), "both subscriptions before unsubscribe")
                    r = await ws_request(ws, {"action": "unsubscribe", "subscription": exact,
                                              "id": "u"})
                    eq(r["type"], "unsubscribed", "answer")
                    e1 = publish(srv, "un.x", {"round": "after"})
                    e2 = publish(srv, "un.x", {"round": "later"})
                    m1 = await ws_next(ws, type_="event")
                    m2 = await ws_next(ws, type_="event")
                    eq([(m1["data"]["id"], m1["data"]["subscription"]),
                        (m2["data"]["id"], m2["data"]["subscription"])],
                       [(e1, wild), (e2, wild)],
                       "after unsubscribed only the wildcard subscription delivers")
                    check(e0 != e1, "distinct events")
                    exact = await ws_subscribe(ws, "un.x")
            for ws in by[0] + by[1] + extra:
                await ws.close()
        run_async(go())


# ---- bad input ------------------------------------------------------------------------------

BAD_INPUTS = [
    ("not json at all", "bad_json"),
    ('{"action":"subscribe","topic":"a"', "bad_json"),
    ("[1,2,3]", "bad_json"),
    ('{"action":"subscribe","topic":"a","topic":"b","id":"d"}', "bad_json"),
    ('{"action":"subscrbe","topic":"a","id":"ua"}', "unknown_action"),
    ('{"topic":"a","id":"na"}', "missing_field"),
    ('{"action":"subscribe","id":"mf"}', "missing_field"),
    ('{"action":"unsubscribe","id":"mf2"}', "missing_field"),
    ('{"action":5,"id":"bt0"}', "bad_type"),
    ('{"action":"subscribe","topic":5,"id":"bt1"}', "bad_type"),
    ('{"action":"subscribe","topic":"a","filter":[1],"id":"bf0"}', "bad_filter"),
    ('{"action":"subscribe","topic":"a","include_initial":"yes","id":"bt3"}', "bad_type"),
    ('{"action":"subscribe","topic":"","id":"tp0"}', "bad_topic"),
    ('{"action":"unsubscribe","subscription":"","id":"bv1"}', "bad_value"),
    ('{"action":"publish","topic":"a","type":"has space","id":"bv3"}', "bad_value"),
    ('{"action":"subscribe","topic":"a","collection":"b","id":"bv2"}', "bad_value"),
    ('{"action":"subscribe","topic":"a..b","id":"tp1"}', "bad_topic"),
    ('{"action":"subscribe","topic":"a.>.b","id":"tp2"}', "bad_topic"),
    ('{"action":"subscribe","topic":"a b","id":"tp3"}', "bad_topic"),
    ('{"action":"subscribe","topic":"a.b*","id":"tp4"}', "bad_topic"),
    ('{"action":"subscribe","topic":"a","filter":{"x":{"$regex":"y"}},"id":"bf1"}', "bad_filter"),
    ('{"action":"subscribe","topic":"a","filter":{"x":{"$eq":{"o":1}}},"id":"bf2"}', "bad_filter"),
    ('{"action":"subscribe","topic":"a","filter":{"$or":[]},"id":"bf3"}', "bad_filter"),
    ('{"action":"subscribe","topic":"a","since":"x","id":"ns1"}', "bad_event_id"),
    ('{"action":"subscribe","topic":"a.*","since":"abc-1","id":"ns2"}', "bad_value"),
    ('{"action":"auth","token":"abc","id":"ns3"}', "unauthorized"),
    ('{"action":"presence","topic":"a","id":"ns4"}', "not_enabled"),
    ('{"action":"unsubscribe","subscription":"nosuch","id":"nf"}', "not_found"),
    ('{"action":"publish","topic":"a","data":1,"id":"fb"}', "forbidden"),
    ('{"action":"subscribe","topic":"a","id":{"x":1}}', "bad_id"),
]


def test_bad_inputs_get_error_codes_connection_survives():
    with Server() as srv:
        async def go():
            other = await ws_connect(srv)
            other_sub = await ws_subscribe(other, "bystander")
            ws = await ws_connect(srv)
            for text, code in BAD_INPUTS:
                await ws.send(text)
                m = await ws_next(ws)
                eq(m["type"], "error", f"answer type to {text!r}")
                eq(m["data"]["code"], code, f"error code for {text!r}")
                msg = m["data"]["message"]
                check(isinstance(msg, str) and len(msg) > 10, f"a useful message: {m}")
                try:
                    sent = json.loads(text)
                except ValueError:
                    sent = None
                # (bad_json: the message was not parsed, so its id is unknown)
                if code != "bad_json" and isinstance(sent, dict) and \
                        isinstance(sent.get("id"), (str, int)):
                    eq(m["data"].get("id"), sent["id"], f"id echoed for {text!r}")
                # the connection still works
                rid = f"ok-{code}"
                r = await ws_request(ws, {"action": "subscribe", "topic": "still.ok", "id": rid})
                eq((r["type"], r["id"]), ("subscribed", rid), f"subscribe after {text!r}")
                r = await ws_request(ws, {"action": "unsubscribe",
                                          "subscription": r["data"]["subscription"]})
                eq(r["type"], "unsubscribed", "unsubscribe after error")
            # binary frames
            await ws.send(b'{"action":"subscribe","topic":"a"}')
            m = await ws_next(ws)
            eq((m["type"], m["data"]["code"]), ("error", "binary_not_supported"), "binary frame")
            r = await ws_request(ws, {"action": "subscribe", "topic": "after.binary", "id": 1})
            eq((r["type"], r["id"]), ("subscribed", 1), "subscribe after binary")
            # the bystander still gets its events, and only them
            eid = publish(srv, "bystander", {"x": 1})
            m = await ws_next(other, type_="event")
            eq((m["data"]["id"], m["data"]["subscription"]), (eid, other_sub), "bystander event")
            await ws.close()
            await other.close()
        run_async(go())
        eq(http(srv, "GET", "/healthz").status, 200, "server healthy")


def test_max_subscriptions_limit():
    with Server("--max-subscriptions=3") as srv:
        async def go():
            ws = await ws_connect(srv)
            subs = [await ws_subscribe(ws, f"lim.{i}") for i in range(3)]
            r = await ws_request(ws, {"action": "subscribe", "topic": "lim.3", "id": "over"})
            eq((r["type"], r["data"]["code"], r["data"]["id"]),
               ("error", "too_many_subscriptions", "over"), "4th subscription")
            # another connection has its own budget
            ws2 = await ws_connect(srv)
            await ws_subscribe(ws2, "lim.x")
            # freeing one makes room again
            r = await ws_request(ws, {"action": "unsubscribe", "subscription": subs[0]})
            eq(r["type"], "unsubscribed", "unsubscribe")
            s4 = await ws_subscribe(ws, "lim.3")
            eid = publish(srv, "lim.3", 1)
            m = await ws_next(ws, type_="event")
            eq((m["data"]["id"], m["data"]["subscription"]), (eid, s4), "event on the new sub")
            await ws.close()
            await ws2.close()
        run_async(go())


def test_client_publish_forbidden_by_default():
    with Server() as srv:
        async def go():
            sub = await ws_connect(srv)
            await ws_subscribe(sub, "cp.t")
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "publish", "topic": "cp.t", "type": "x.y",
                                      "data": {"a": 1}, "id": "p1"})
            eq((r["type"], r["data"]["code"], r["data"]["id"]), ("error", "forbidden", "p1"),
               "client publish refused")
            eid = publish(srv, "cp.t", {"from": "http"})
            m = await ws_next(sub, type_="event")
            eq((m["data"]["id"], m["data"]["data"]), (eid, {"from": "http"}),
               "the refused publish delivered nothing")
            await ws.close()
            await sub.close()
        run_async(go())


def test_client_publish_allowed_with_flag():
    with Server("--client-publish=true") as srv:
        async def go():
            by, extra = await connect_on_both_shards(srv)
            sub, pub = by[0][0], by[1][0]
            s = await ws_subscribe(sub, "cp.t")
            for rid in ("p1", 2):
                r = await ws_request(pub, {"action": "publish", "topic": "cp.t",
                                           "type": "record.created", "data": {"a": rid},
                                           "id": rid})
                eq((r["type"], r["id"]), ("published", rid), "published answer")
                eq(r["data"]["topic"], "cp.t", "published topic")
                m = await ws_next(sub, type_="event")
                eq(m["data"], {"id": r["data"]["id"], "topic": "cp.t", "collection": "cp.t",
                               "type": "record.created", "data": {"a": rid}, "subscription": s},
                   "event from a client publish, across shards")
            r = await ws_request(pub, {"action": "publish", "topic": "cp.*", "id": "w"})
            eq((r["type"], r["data"]["code"]), ("error", "bad_topic"), "publish to a pattern")
            for ws in by[0] + by[1] + extra:
                await ws.close()
        run_async(go())


def test_publish_idempotent_id():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv)
            await ws_subscribe(ws, "idem.t")
            body = {"topic": "idem.t", "type": "order.paid", "data": {"n": 1}, "id": "key-1"}
            r1 = http(srv, "POST", "/api/realtime/publish", body)
            eq(r1.status, 202, "first publish")
            r2 = http(srv, "POST", "/api/realtime/publish", body)
            eq(r2.status, 200, "repeated publish")
            eq(r1.json(), r2.json(), "same answer")
            eq(r1.json()["topic"], "idem.t", "topic in answer")
            eid = r1.json()["id"]
            m = await ws_next(ws, type_="event")
            eq((m["data"]["id"], m["data"]["type"], m["data"]["data"]),
               (eid, "order.paid", {"n": 1}), "event once")
            e3 = publish(srv, "idem.t", {"n": 3})
            check(e3 != eid, "new event, new id")
            m = await ws_next(ws, type_="event")
            eq(m["data"]["id"], e3, "no duplicate of the idempotent event")
            await ws.close()
        run_async(go())


def test_http_publish_bad_requests():
    with Server() as srv:
        for body, status, code in [
            ({"type": "x", "data": 1}, 400, "missing_field"),
            ({"topic": "a.*", "data": 1}, 400, "bad_topic"),
            ({"topic": "a..b"}, 400, "bad_topic"),
            ({"topic": 5}, 400, "bad_type"),
            ({"topic": "a", "type": "has space"}, 400, "bad_value"),
            ("{nope", 400, "bad_json"),
        ]:
            r = http(srv, "POST", "/api/realtime/publish", body,
                     headers={"Content-Type": "application/json"})
            eq(r.status, status, f"status for {body!r}")
            eq(r.json()["error"]["code"], code, f"code for {body!r}")


# ---- filters -------------------------------------------------------------------------------

def test_filters_end_to_end():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv)
            flt = {"price": {"$gt": 10, "$lte": 100}, "tag": {"$in": ["a", "b"]},
                   "author.id": {"$ne": 7}}
            r = await ws_request(ws, {"action": "subscribe", "topic": "shop.*", "filter": flt,
                                      "id": "f"})
            eq(r["type"], "subscribed", "filtered subscribe")
            eq(r["data"]["filter"], flt, "filter echoed")
            sid = r["data"]["subscription"]
            other = await ws_connect(srv)
            all_sub = await ws_subscribe(other, "shop.*")
            events = [
                ({"n": 0, "price": 50, "tag": "a"}, True),
                ({"n": 1, "price": 5, "tag": "a"}, False),
                ({"n": 2, "price": 100, "tag": "b", "author": {"id": 1}}, True),
                ({"n": 3, "price": 101, "tag": "a"}, False),
                ({"n": 4, "price": 50, "tag": "c"}, False),
                ({"n": 5, "price": 50, "tag": "a", "author": {"id": 7}}, False),
                ({"n": 6, "price": "50", "tag": "a"}, False),
                ({"n": 7, "tag": "a"}, False),
                ({"n": 8, "price": 10.5, "tag": "b", "author": {"id": 7.5}}, True),
                ({"n": 9, "price": 11, "tag": "a"}, True),  # the sentinel: last, matches
            ]
            for data, _ in events:
                publish(srv, "shop.items", data)
            got = []
            while True:
                m = await ws_next(ws, type_="event")
                eq(m["data"]["subscription"], sid, "subscription")
                got.append(m["data"]["data"]["n"])
                if got[-1] == 9:
                    break
            eq(got, [d["n"] for d, ok in events if ok], "exactly the matching events, in order")
            seen = [(await ws_next(other, type_="event"))["data"] for _ in events]
            eq([d["data"]["n"] for d in seen], list(range(10)), "unfiltered sees all")
            check(all(d["subscription"] == all_sub for d in seen), "unfiltered subscription")
            # an event through the second topic of the pattern also obeys the filter
            publish(srv, "shop.other", {"n": 10, "price": 1, "tag": "a"})
            publish(srv, "shop.other", {"n": 11, "price": 20, "tag": "b"})
            m = await ws_next(ws, type_="event")
            eq(m["data"]["data"]["n"], 11, "filter on another topic")
            await ws.close()
            await other.close()
        run_async(go())


def test_thousand_filtered_subscriptions_on_one_connection():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv)
            for i in range(1000):
                await ws.send(json.dumps({"action": "subscribe", "topic": "many.t",
                                          "filter": {"n": i}, "id": i}))
            sub_of = {}
            for _ in range(1000):
                m = await ws_next(ws, 30)
                eq(m["type"], "subscribed", f"answer {m}")
                sub_of[m["id"]] = m["data"]["subscription"]
            eq(sorted(sub_of), list(range(1000)), "every subscribe answered once")
            eq(len(set(sub_of.values())), 1000, "distinct subscription ids")
            eq(len(stats(srv, limit=10)["subscriptions"][ws.connection_id]), 1000,
               "1000 patterns in stats")
            r = await ws_request(ws, {"action": "subscribe", "topic": "many.t", "id": "x"})
            eq((r["type"], r["data"]["code"]), ("error", "too_many_subscriptions"),
               "1001st (default max_subscriptions 1000)")
            for n in (500, 7, 999, 0):
                eid = publish(srv, "many.t", {"n": n})
                m = await ws_next(ws, type_="event")
                eq((m["data"]["id"], m["data"]["subscription"]), (eid, sub_of[n]),
                   f"event n={n} via its one subscription")
            publish(srv, "many.t", {"n": 1000})  # matches none
            eid = publish(srv, "many.t", {"n": 3})
            m = await ws_next(ws, type_="event")
            eq((m["data"]["id"], m["data"]["subscription"]), (eid, sub_of[3]),
               "n=1000 matched nothing")
            await ws.close()
        run_async(go())


# ---- WebSocket frames ------------------------------------------------------------------------

def test_ws_ping_frame_answered_by_pong():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv, ping_interval=None)
            for payload in (b"", b"hello", bytes(range(125))):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, 5)
            await ws_subscribe(ws, "after.ping")
            await ws.close()
            eq(ws.close_code, 1000, "close handshake completes")
        run_async(go())


def test_binary_frame_gets_error():
    with Server() as srv:
        async def go():
            ws = await ws_connect(srv)
            await ws.send(b"\x00\x01\x02")
            m = await ws_next(ws)
            eq(m["type"], "error", "type")
            eq(m["data"]["code"], "binary_not_supported", "code")
            check("id" not in m["data"] or m["data"]["id"] is None, f"no id: {m}")
            await ws_subscribe(ws, "after.binary")
            await ws.close()
        run_async(go())


def _violation(srv, frames, want_code, what):
    s, rf, _cid = raw_ws_open(srv)
    try:
        s.sendall(frames)
        eq(rf.close_code(), want_code, f"close code for {what}")
        # then the server closes the TCP connection
        while rf.next(5) is not None:
            pass
    finally:
        s.close()


def test_ws_protocol_violations_close_connection():
    with Server("--ws-max-message=1KiB") as srv:
        _violation(srv, ws_frame(1, b'{"action":"ping"}', mask=False), 1002, "unmasked frame")
        _violation(srv, ws_frame(1, b"{}", rsv=4), 1002, "RSV1 without an extension")
        _violation(srv, ws_frame(3, b"x"), 1002, "reserved opcode 3")
        _violation(srv, ws_frame(9, b"x" * 126), 1002, "ping over 125 bytes")
        _violation(srv, ws_frame(9, b"x", fin=False), 1002, "fragmented ping")
        _violation(srv, ws_frame(0, b"x"), 1002, "continuation without a start")
        _violation(srv, ws_frame(1, b"\xff\xfe"), 1007, "invalid UTF-8")
        _violation(srv, ws_frame(1, b'{"a":"\xc3', fin=False) + ws_frame(0, b'\x28"}'), 1007,
                   "invalid UTF-8 across fragments")
        _violation(srv, ws_frame(1, b"{" + b" " * 2000 + b"}"), 1009, "message over ws_max_message")
        _violation(srv, ws_frame(1, b"x" * 800, fin=False) + ws_frame(0, b"x" * 800), 1009,
                   "fragmented message over ws_max_message")
        # valid: a message split across fragments with a ping in between
        s, rf, _ = raw_ws_open(srv)
        s.sendall(ws_frame(1, b'{"action":"ping",', fin=False) + ws_frame(9, b"mid") +
                  ws_frame(0, b'"id":"frag"}'))
        f = rf.next()
        eq(f, (10, b"mid"), "pong between fragments")
        m = rf.next_json()
        eq((m["type"], m["id"]), ("pong", "frag"), "fragmented message handled")
        s.sendall(ws_frame(8, (1000).to_bytes(2, "big")))
        eq(rf.close_code(), 1000, "close handshake echoes 1000")
        eq(rf.next(5), None, "TCP closed after the close handshake")
        s.close()
        assert_server_serves(srv)


def test_bad_handshakes():
    with Server("--allowed-origins=https://good.example") as srv:
        base = {"Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": ws_key()}
        h = dict(base)
        del h["Sec-WebSocket-Key"]
        r = http(srv, "GET", "/api/realtime/ws", headers=h)
        eq(r.status, 400, "missing key")
        eq(r.json()["error"]["code"], "bad_handshake", "missing key code")
        r = http(srv, "GET", "/api/realtime/ws", headers=dict(base, **{"Sec-WebSocket-Key": "abc"}))
        eq(r.status, 400, "key not 16 bytes base64")
        r = http(srv, "GET", "/api/realtime/ws",
                 headers=dict(base, **{"Sec-WebSocket-Version": "12"}))
        eq(r.status, 426, "version 12")
        eq(r.header("Sec-WebSocket-Version"), "13", "426 names version 13")
        r = http(srv, "GET", "/api/realtime/ws", headers=dict(base, Origin="https://evil.example"))
        eq(r.status, 403, "origin not allowed")
        eq(r.json()["error"]["code"], "origin_not_allowed", "origin code")
        r = http(srv, "GET", "/api/realtime/ws")
        eq(r.status, 426, "plain GET without Upgrade")
        # allowed origin and tokens in comma lists, any case
        s, rest = raw_ws_handshake(srv, extra_headers="Origin: https://good.example\r\n")
        m = RawFrames(s, rest).next_json()
        eq(m["type"], "connected", "allowed origin connects")
        s.close()
        s = raw_connect(srv)
        key = ws_key()
        s.sendall((f"GET /api/v1/ws/realtime HTTP/1.1\r\nHost: x\r\nupgrade: WebSocket\r\n"
                   f"connection: keep-alive, UPGRADE\r\nsec-websocket-key: {key}\r\n"
                   f"sec-websocket-version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            c = s.recv(4096)
            check(c, "closed during handshake")
            buf += c
        check(buf.startswith(b"HTTP/1.1 101 "), f"token lists: {buf[:40]!r}")
        check(accept_of(key).encode() in buf, "accept key")
        s.close()
        assert_server_serves(srv)


# ---- heartbeat -------------------------------------------------------------------------------

def test_heartbeat_pings_arrive_every_interval():
    with Server("--heartbeat-interval=1s", "--heartbeat-timeout=10s") as srv:
        async def go():
            ws = await ws_connect(srv, ping_interval=None)
            times = []
            while len(times) < 5:
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                eq(m["type"], "ping", "only pings arrive")
                eq(list(m["data"].keys()), ["timestamp"], "ping data")
                times.append(time.monotonic())
                await ws.send(json.dumps({"action": "pong"}))
            gaps = [b - a for a, b in zip(times, times[1:])]
            check(all(0.8 <= g <= 1.5 * Server.TIMEOUT_SCALE for g in gaps),
                  f"ping gaps near 1s: {gaps}")
            await ws.close()
        run_async(go())


def test_heartbeat_silent_client_closed_1001_and_counted():
    with Server("--heartbeat-interval=1s", "--heartbeat-timeout=3s") as srv:
        async def go():
            t0 = time.monotonic()
            silent = await ws_connect(srv, ping_interval=None)
            talker = await ws_connect(srv, ping_interval=None)

            async def answer_pings():
                try:
                    while True:
                        m = json.loads(await talker.recv())
                        if m["type"] == "ping":
                            await talker.send(json.dumps({"action": "pong"}))
                except websockets.ConnectionClosed:
                    pass
            task = asyncio.ensure_future(answer_pings())
            pings = 0
            try:
                while True:
                    m = json.loads(await asyncio.wait_for(silent.recv(), 10))
                    eq(m["type"], "ping", "silent client gets only pings")
                    pings += 1
            except websockets.ConnectionClosed:
                pass
            elapsed = time.monotonic() - t0
            eq(silent.close_code, 1001, "close code")
            check(2.9 <= elapsed <= 5.0 * Server.TIMEOUT_SCALE,
                  f"closed after heartbeat_timeout (3s): {elapsed:.2f}s")
            check(pings >= 2, f"pings before the timeout: {pings}")
            eq(counter(srv, "heartbeat_timeouts"), 1, "heartbeat_timeouts")
            # the talker survives well past the timeout
            while time.monotonic() - t0 < 7.5:
                await asyncio.sleep(0.25)
                check(not task.done(), "the answering client was closed")
            eq(counter(srv, "heartbeat_timeouts"), 1, "heartbeat_timeouts after 7.5s")
            task.cancel()
            r = await ws_request(talker, {"action": "subscribe", "topic": "hb", "id": "h"})
            while r["type"] == "ping":
                r = json.loads(await talker.recv())
            eq((r["type"], r["id"]), ("subscribed", "h"), "talker still works")
            await talker.close()
        run_async(go())


def test_heartbeat_ws_level_ping_counts_as_activity():
    with Server("--heartbeat-interval=1s", "--heartbeat-timeout=2s") as srv:
        async def go():
            ws = await ws_connect(srv, ping_interval=0.5, ping_timeout=5)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5:
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                eq(m["type"], "ping", "pings only")
            eq(counter(srv, "heartbeat_timeouts"), 0, "no timeouts")
            await ws.close()
            eq(ws.close_code, 1000, "closed by us")
        run_async(go())


# ---- the Node ws client ------------------------------------------------------------------------

def test_node_ws_subscribe_receive():
    with Server() as srv:
        result = {}

        def run():
            try:
                result["r"] = node("ws_sub.js", srv.ws_url, "node.t.*", 3, "node-req", 60)
            except BaseException as e:  # noqa: BLE001
                result["e"] = e
        th = threading.Thread(target=run)
        th.start()

        def subscribed():
            if "e" in result:
                raise result["e"]
            for cid, pats in stats(srv)["subscriptions"].items():
                if "node.t.*" in pats:
                    return cid
            return None
        cid = wait_for(subscribed, 30, "the node client's subscription", interval=0.05)
        ids = [publish(srv, f"node.t.{i}", {"i": i}, type_="thing.done") for i in range(3)]
        publish(srv, "node.t.x.y", {"i": "no"})  # not matched by node.t.*
        th.join(90)
        check(not th.is_alive(), "node client finished")
        if "e" in result:
            raise result["e"]
        r = result["r"]
        eq(r["connection_id"], cid, "connection id from connected message")
        eq(r["subscribed"]["type"], "subscribed", "subscribed answer")
        eq(r["subscribed"]["id"], "node-req", "echoed id")
        eq(r["subscribed"]["data"]["topic"], "node.t.*", "topic")
        sub = r["subscribed"]["data"]["subscription"]
        # three topics, three owner shards maybe: order across topics is not promised
        evs = sorted(r["events"], key=lambda e: e["data"]["i"])
        eq([(e["id"], e["topic"], e["type"], e["data"], e["subscription"]) for e in evs],
           [(ids[i], f"node.t.{i}", "thing.done", {"i": i}, sub) for i in range(3)],
           "events seen by node ws")
