"""Server-Sent Events (issue 3): GET /api/realtime/events through raw
http.client and through Node's eventsource (tests/e2e/node/sse_sub.js)."""

import http.client as httpclient
import json
import signal
import socket
import threading
import time
import urllib.parse

from harness import (Response, Server, TestFailure, check, eq, http, node, publish, run_async,
                     wait_for, ws_connect, ws_next, ws_subscribe)
from test_realtime import stats, wait_subscribed


class SSE:
    """One SSE stream read with http.client, record by record."""

    def __init__(self, srv, query=""):
        self.conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        self.conn.request("GET", "/api/realtime/events" + query,
                          headers={"Accept": "text/event-stream"})
        self.sock = self.conn.sock  # http.client drops it for a response read to EOF
        self.r = self.conn.getresponse()
        eq(self.r.status, 200, f"SSE status for {query!r}")
        self.headers = {k.lower(): v for k, v in self.r.getheaders()}
        self.connection_id = None

    def record(self, timeout=10.0):
        """The next record as a dict: fields (last value wins) plus
        'comments'; None at EOF."""
        self.sock.settimeout(timeout * Server.TIMEOUT_SCALE)
        rec = {"comments": []}
        seen = False
        while True:
            try:
                line = self.r.fp.readline()
            except socket.timeout:
                raise TestFailure(f"no SSE record within {timeout}s")
            if not line:
                return rec if seen else None
            line = line.decode("utf-8").rstrip("\n")
            check(not line.endswith("\r"), f"SSE lines end in LF: {line!r}")
            if line == "":
                if seen:
                    return rec
                continue
            seen = True
            if line.startswith(":"):
                rec["comments"].append(line[1:].strip())
                continue
            k, _, v = line.partition(":")
            rec[k] = v[1:] if v.startswith(" ") else v

    def open(self):
        rec = self.record()
        check(rec is not None, "stream ended before the connection record")
        eq(rec.get("retry"), "3000", "retry hint (sse_retry default 3s)")
        eq(rec.get("event"), "connection", "first record's event")
        d = json.loads(rec["data"])
        eq(list(d.keys()), ["connection_id"], "connection record data")
        self.connection_id = d["connection_id"]
        return self

    def event(self, timeout=10.0):
        """Next record that is not a ping nor an id-only record (a stream of
        several topics sends those to move Last-Event-ID; they dispatch nothing)."""
        while True:
            rec = self.record(timeout)
            check(rec is not None, "stream ended, wanted an event")
            if rec.get("event") != "ping" and set(rec) - {"id", "comments"}:
                return rec

    def close(self):
        self.r.close()
        self.conn.close()
        self.sock.close()


def get_no_stream(srv, path):
    """GET that fails at once if the server starts an event stream (reading a
    stream's body to EOF would hang)."""
    conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10 * Server.TIMEOUT_SCALE)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        ctype = r.getheader("Content-Type") or ""
        if ctype.startswith("text/event-stream"):
            raise TestFailure(f"GET {path}: got a {r.status} event stream, want an error")
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def q(*pairs):
    return "?" + urllib.parse.urlencode(list(pairs))


def test_sse_stream_http_client():
    with Server() as srv:
        flt = {"n": {"$gte": 2}}
        s = SSE(srv, q(("topic", "sse.a"), ("topic", "sse.b.*"), ("filter", json.dumps(flt))))
        eq(s.headers.get("content-type"), "text/event-stream", "Content-Type")
        eq(s.headers.get("cache-control"), "no-cache", "Cache-Control")
        check("content-length" not in s.headers, "no Content-Length on a stream")
        s.open()
        wait_subscribed(srv, s.connection_id, "sse.a")
        eq(sorted(stats(srv)["subscriptions"][s.connection_id]), ["sse.a", "sse.b.*"],
           "SSE subscriptions in stats")
        ids = {}
        ids[1] = publish(srv, "sse.a", {"n": 1})            # filtered out
        ids[2] = publish(srv, "sse.a", {"n": 2}, type_="rec.created")
        ids[3] = publish(srv, "sse.b.x", {"n": 3})
        ids[4] = publish(srv, "sse.b.x", {"n": 1})          # filtered out
        ids[5] = publish(srv, "sse.c", {"n": 5})            # topic not subscribed
        ids[6] = publish(srv, "sse.b.x.y", {"n": 6})        # * is one token
        ids[10] = publish(srv, "sse.a", {"n": 10})          # per-topic sentinels
        ids[11] = publish(srv, "sse.b.x", {"n": 11})
        got = []
        while not {10, 11} <= set(got):
            rec = s.event()
            d = json.loads(rec["data"])
            n = d["data"]["n"]
            # a stream of several topics: the record's (last) id line is the
            # stream id, naming the exact topic sse.a (index 0) at its last event
            sid = dict(e.split(":", 1) for e in rec.get("id", "").split(","))
            if d["topic"] == "sse.a":
                eq(sid.get("0"), ids[n], f"stream id of n={n}")
            else:
                check("0" in sid, f"stream id of n={n}: {rec.get('id')!r}")
            eq(d["id"], ids[n], f"event id in data of n={n}")
            eq(rec.get("event"), d["type"], "event: line is the event type")
            eq(d["topic"], d["collection"], "collection = topic")
            check(d["subscription"], "subscription named")
            got.append(n)
        eq(sorted(got), [2, 3, 10, 11], "exactly the matching events")
        check(got.index(2) < got.index(10) and got.index(3) < got.index(11), f"order {got}")
        s.close()


def test_sse_ping_records():
    with Server("--heartbeat-interval=1s") as srv:
        s = SSE(srv, q(("topic", "p.t"))).open()
        times = []
        while len(times) < 4:
            rec = s.record(5)
            check(rec is not None, "stream ended")
            eq(rec.get("event"), "ping", "only pings on an idle stream")
            d = json.loads(rec["data"])
            eq(list(d.keys()), ["timestamp"], "ping data")
            times.append(time.monotonic())
        gaps = [b - a for a, b in zip(times, times[1:])]
        check(all(0.8 <= g <= 1.5 * Server.TIMEOUT_SCALE for g in gaps),
              f"ping gaps near 1s: {gaps}")
        # the stream still delivers between pings
        eid = publish(srv, "p.t", {"x": 1})
        rec = s.event()
        eq(rec.get("id"), eid, "event after pings")
        s.close()


def test_sse_bad_requests():
    with Server() as srv:
        for query, code in [
            (q(("topic", "a..b")), "bad_topic"),
            (q(("topic", "a.>.b")), "bad_topic"),
            (q(("topic", "")), "bad_topic"),
            (q(("topic", "a"), ("filter", "not json")), "bad_filter"),
            (q(("topic", "a"), ("filter", "[1]")), "bad_filter"),
            (q(("topic", "a"), ("filter", '{"x":{"$regex":"y"}}')), "bad_filter"),
            (q(("topic", "a"), ("filter", '{"x":{"$eq":{"o":1}}}')), "bad_filter"),
            (q(("topic", "a"), ("since", "x")), "bad_event_id"),
            ("?topic=%zz", "bad_query"),
        ]:
            r = get_no_stream(srv, "/api/realtime/events" + query)
            eq(r.status, 400, f"status for {query}")
            check((r.header("Content-Type") or "").startswith("application/json"),
                  f"JSON error for {query}: {r.header('Content-Type')}")
            e = r.json()["error"]
            eq(e["code"], code, f"code for {query}")
            check(len(e["message"]) > 10, f"message for {query}: {e}")
        # the server still streams
        s = SSE(srv, q(("topic", "ok"))).open()
        wait_subscribed(srv, s.connection_id, "ok")
        eid = publish(srv, "ok", 1)
        eq(s.event().get("id"), eid, "stream after bad requests")
        s.close()


def test_sse_and_ws_get_the_same_event():
    with Server() as srv:
        async def go():
            s = SSE(srv, q(("topic", "both.*"))).open()
            ws = await ws_connect(srv)
            wsub = await ws_subscribe(ws, "both.*")
            wait_subscribed(srv, s.connection_id, "both.*")
            eid = publish(srv, "both.t", {"k": [1, "two", None]}, type_="item.added")
            m = await ws_next(ws, type_="event")
            rec = s.event()
            sd = json.loads(rec["data"])
            wd = m["data"]
            eq((rec["id"], rec["event"]), (eid, "item.added"), "SSE id/event lines")
            eq(wd["subscription"], wsub, "WS subscription")
            for k in ("id", "topic", "collection", "type", "data"):
                eq(sd[k], wd[k], f"SSE and WS agree on {k}")
            eq(wd["id"], eid, "event id")
            eq(wd["data"], {"k": [1, "two", None]}, "data")
            # broadcasts reach SSE streams too, also streams without a topic
            bare = SSE(srv).open()
            r = http(srv, "POST", "/api/realtime/events/broadcast",
                     {"event": "note", "data": {"b": 1},
                      "recipients": [s.connection_id, bare.connection_id, ws.connection_id]})
            eq(r.json(), 3, "broadcast reached SSE, bare SSE and WS")
            for stream in (s, bare):
                rec = stream.event()
                eq(rec.get("event"), "note", "broadcast event: line")
                d = json.loads(rec["data"])
                eq((d["type"], d["data"], d["id"]), ("note", {"b": 1}, rec["id"]),
                   "broadcast record")
            m = await ws_next(ws, type_="event")
            eq((m["data"]["type"], m["data"]["data"]), ("note", {"b": 1}), "broadcast on WS")
            # a topic event does not reach the bare stream
            publish(srv, "both.t", 2)
            r = http(srv, "POST", "/api/realtime/events/broadcast",
                     {"event": "closer", "data": 0, "recipients": [bare.connection_id]})
            eq(r.json(), 1, "closer")
            eq(bare.event().get("event"), "closer", "bare stream has no topic events")
            s.close()
            bare.close()
            await ws.close()
        run_async(go())


def test_sse_node_eventsource():
    with Server("--heartbeat-interval=1s") as srv:
        result = {}
        url = f"{srv.base}/api/realtime/events" + q(("topic", "node.sse.*"),
                                                     ("filter", '{"ok":true}'))

        def run():
            try:
                result["r"] = node("sse_sub.js", url, 3, 2, 60, "message", "thing.done")
            except BaseException as e:  # noqa: BLE001
                result["e"] = e
        th = threading.Thread(target=run)
        th.start()

        def subscribed():
            if "e" in result:
                raise result["e"]
            for cid, pats in stats(srv)["subscriptions"].items():
                if "node.sse.*" in pats:
                    return cid
            return None
        cid = wait_for(subscribed, 30, "the eventsource client's subscription", interval=0.05)
        ids = [publish(srv, "node.sse.a", {"i": 0, "ok": True}),
               publish(srv, "node.sse.a", {"i": 1, "ok": False}),
               publish(srv, "node.sse.a", {"i": 2, "ok": True}, type_="thing.done"),
               publish(srv, "node.sse.a", {"i": 3, "ok": True})]
        th.join(90)
        check(not th.is_alive(), "node finished")
        if "e" in result:
            raise result["e"]
        r = result["r"]
        eq(r["errors"], [], "eventsource errors")
        eq(r["connection"], {"connection_id": cid}, "connection record")
        eq([(e["type"], e["lastEventId"], e["data"]["id"], e["data"]["data"]["i"])
            for e in r["events"]],
           [("message", ids[0], ids[0], 0), ("thing.done", ids[2], ids[2], 2),
            ("message", ids[3], ids[3], 3)], "events via eventsource")
        check(len(r["pings"]) >= 2, f"pings: {r['pings']}")


def test_sse_stream_ends_cleanly_on_sigterm():
    with Server() as srv:
        async def go():
            s = SSE(srv, q(("topic", "bye"))).open()
            ws = await ws_connect(srv)
            wait_subscribed(srv, s.connection_id, "bye")
            eid = publish(srv, "bye", 1)
            eq(s.event().get("id"), eid, "event before SIGTERM")
            srv.proc.send_signal(signal.SIGTERM)
            comments = []
            while True:
                rec = s.record(15)
                if rec is None:
                    break
                check(rec.get("event") in (None, "ping"), f"unexpected record at drain: {rec}")
                comments += rec["comments"]
            check(any("shutting down" in c for c in comments),
                  f"a goodbye comment before EOF: {comments}")
            s.close()
            try:
                while True:
                    await ws.recv()
            except Exception:  # noqa: BLE001 - ConnectionClosed
                pass
            eq(ws.close_code, 1012, "WS close code at drain (service restart)")
        run_async(go())
        eq(srv.stop(), 0, "exit code after SIGTERM")
