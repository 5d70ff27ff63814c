"""Owned-topic memory (topic_idle_timeout: idle topics are freed, their ids
start a new epoch when they come back) and multi-topic SSE resume (compound
Last-Event-ID), against the real binary with raw HTTP, python3-websockets and
Node's eventsource client."""
import asyncio
import http.client as httpclient
import json
import os
import socket
import threading
import time
import urllib.parse

from harness import (Server, TestFailure, check, eq, http, node, publish, run_async, wait_for,
                     ws_connect, ws_next, ws_request)

# ASan keeps freed memory in a quarantine (256 MiB by default), which would
# hide whether freed topics are reused; a small one shows the real behaviour
ASAN_SMALL = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") +
                               ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64")
              .lstrip(":")}


def stats(srv):
    r = http(srv, "GET", "/api/realtime/stats?limit=0")
    eq(r.status, 200, "stats status")
    return r.json()


def rss_kib(srv):
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise TestFailure("no VmRSS in /proc/<pid>/status")


class Publisher:
    """One keep-alive HTTP connection publishing event after event."""

    def __init__(self, srv):
        self.c = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=30 * Server.TIMEOUT_SCALE)

    def __call__(self, topic, data=None):
        body = json.dumps({"topic": topic, "type": "message", "data": data})
        self.c.request("POST", "/api/realtime/publish", body=body,
                       headers={"Content-Type": "application/json"})
        r = self.c.getresponse()
        raw = r.read()
        if r.status not in (200, 202):
            raise TestFailure(f"publish to {topic}: {r.status} {raw[:200]!r}")
        return json.loads(raw)["id"]

    def close(self):
        self.c.close()


def wait_topics(srv, want, timeout=20.0, what="owned topics"):
    return wait_for(lambda: stats(srv)["topics"] == want, timeout, f"{what} == {want}",
                    interval=0.05)


def epoch_of(event_id):
    return event_id.rsplit("-", 1)[0]


def seq_of(event_id):
    return int(event_id.rsplit("-", 1)[1])


# ---- topic_idle_timeout -----------------------------------------------------------------------


def test_idle_topics_are_evicted_and_their_memory_is_reused():
    """Rounds of thousands of distinct topics: each round's topics are freed
    (the stats' topic count falls back to 0, evictions are counted), and the
    process does not grow from round to round."""
    rounds, per_round = 6, 3000
    with Server("--topic-idle-timeout=200ms", "--history-ttl=100ms", env=ASAN_SMALL) as srv:
        pub = Publisher(srv)
        rss = []
        for r in range(rounds):
            for i in range(per_round):
                pub(f"churn.r{r}.t{i}", {"i": i})
            eq(stats(srv)["topics"] >= 1, True, "topics are counted while alive")
            wait_topics(srv, 0, what=f"owned topics after round {r}")
            rss.append(rss_kib(srv))
        pub.close()
        st = stats(srv)
        eq(st["counters"]["topics_evicted"], rounds * per_round, "evictions counted")
        eq(sum(sh["topics"] for sh in st["shards"]), 0, "per-shard topic counts")
        # the first rounds warm up allocator caches; after that, no growth
        # beyond noise (a leak would add ~10 MiB per round of 3000 topics); under
        # TSan, whose shadow memory grows with every address touched, the rounds
        # check the evictions and the threads, and the other builds the RSS
        if not Server.TSAN:
            grow = rss[-1] - rss[1]
            check(grow < 4096, f"RSS grew {grow} KiB from round 2 to round {rounds}: {rss}")


def test_resume_with_an_id_from_before_eviction_is_a_history_gap():
    """A topic evicted and published to again gets a new epoch: a cursor of the
    old incarnation is answered with history_gap (WebSocket since, SSE
    Last-Event-ID, history API), never with a replay of the new events."""
    # history_ttl bounds how long the new events stay resumable: long enough
    # for the check right after publishing them, even on a loaded machine
    with Server("--topic-idle-timeout=200ms", "--history-ttl=2s",
                "--history-size=100") as srv:
        old = [publish(srv, "ev.t", {"n": n}) for n in range(1, 4)]
        wait_topics(srv, 0, what="evicted topic")
        new = [publish(srv, "ev.t", {"n": n}) for n in range(11, 16)]
        check(epoch_of(new[0]) != epoch_of(old[0]), f"new epoch: {old[0]} then {new[0]}")
        eq(seq_of(new[0]), 1, "the new incarnation counts from 1")
        # the current incarnation's ids resume normally
        r = http(srv, "GET", "/api/realtime/history/ev.t?since=" + urllib.parse.quote(new[2]))
        eq([e["data"]["n"] for e in r.json()["events"]], [14, 15], "current epoch resumes")
        # before the fix the old cursor "<epoch>-3" replayed the new 4th and 5th

        async def go():
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "subscribe", "topic": "ev.t", "since": old[-1],
                                      "id": 1})
            eq(r["type"], "subscribed", "resume answer")
            m = await ws_next(ws)
            eq((m["type"], m["data"]["code"]), ("error", "history_gap"), "gap for the old id")
            publish(srv, "ev.t", {"n": 16})
            m = await ws_next(ws, type_="event")
            eq(m["data"]["data"]["n"], 16, "live after the gap, no replay")
            await ws.close()

        run_async(go())
        r = http(srv, "GET", "/api/realtime/history/ev.t?since=" + urllib.parse.quote(old[-1]))
        eq((r.status, r.json()["gap"], r.json()["events"]), (200, True, []), "history API gap")
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(f"GET /api/realtime/events?topic=ev.t HTTP/1.1\r\nHost: x\r\n"
                  f"Last-Event-ID: {old[-1]}\r\n\r\n".encode())
        recs = read_sse(s, 1)
        eq(recs[0]["event"], "error", "SSE record")
        eq(json.loads(recs[0]["data"])["code"], "history_gap", "SSE gap code")
        s.close()


def test_topic_with_a_subscriber_or_live_history_is_not_evicted():
    """An exact-topic subscription (on any shard) and kept history hold a topic;
    once both are gone the topic is freed."""
    rules = "short.> history_ttl=100ms,held.> history_ttl=100ms"
    with Server("--topic-idle-timeout=200ms", "--history-ttl=1h", f"--rules={rules}") as srv:

        async def go():
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "subscribe", "topic": "held.1", "id": 1})
            eq(r["type"], "subscribed", "subscribe")
            a = publish(srv, "held.1", {"n": 1})
            publish(srv, "long.1", {"n": 1})
            publish(srv, "short.1", {"n": 1})
            wait_for(lambda: stats(srv)["counters"]["topics_evicted"] >= 1, 10, "short.1 evicted")
            # the sweep has run past held.1 and long.1 many times by then;
            # give it a few idle periods more to be sure they stay
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:
                st = stats(srv)
                eq((st["topics"], st["counters"]["topics_evicted"]), (2, 1),
                   "held.1 and long.1 stay")
                await asyncio.sleep(0.1)
            b = publish(srv, "held.1", {"n": 2})
            eq((epoch_of(b), seq_of(b)), (epoch_of(a), 2), "held.1 kept its sequence")
            eq([(await ws_next(ws, type_="event"))["data"]["id"] for _ in range(2)], [a, b],
               "the subscriber got both events")
            r = await ws_request(ws, {"action": "unsubscribe", "topic": "held.1", "id": 2})
            eq(r["type"], "unsubscribed", "unsubscribe")
            wait_topics(srv, 1, what="held.1 freed after its subscriber left")
            await ws.close()

        run_async(go())


def test_presence_churn_from_an_anonymous_client_does_not_grow_memory():
    """An anonymous client subscribing and unsubscribing distinct topics with
    presence on (each join/leave makes the topic's state and a presence event):
    the topics are freed after topic_idle_timeout and the process stays flat."""
    rounds, per_round = 5, 1500
    with Server("--presence=true", "--topic-idle-timeout=200ms", "--history-ttl=100ms",
                "--message-rate=0", env=ASAN_SMALL) as srv:

        async def churn(r):
            ws = await ws_connect(srv)
            for i in range(per_round):
                await ws.send(json.dumps({"action": "subscribe", "topic": f"pc.r{r}.t{i}"}))
                await ws.send(json.dumps({"action": "unsubscribe", "topic": f"pc.r{r}.t{i}"}))
            await ws.send(json.dumps({"action": "subscribe", "topic": "pc.sync", "id": "s"}))
            while True:  # the answers to the churn come first
                m = json.loads(await ws.recv())
                check(m.get("type") != "error", f"churn refused: {m}")
                if m.get("id") == "s":
                    break
            await ws.close()

        rss = []
        for r in range(rounds):
            run_async(churn(r), timeout=120)
            wait_topics(srv, 0, what=f"owned topics after churn round {r}")
            rss.append(rss_kib(srv))
        check(stats(srv)["counters"]["topics_evicted"] >= rounds * per_round, "evictions counted")
        # TSan's allocator and shadow memory grow with every address touched
        # (a release build stays within ~4 MiB, like ASan): under TSan this test
        # checks the evictions and the threads, the other builds check the RSS
        if not Server.TSAN:
            grow = rss[-1] - rss[1]
            check(grow < 4096, f"RSS grew {grow} KiB from round 2 to round {rounds}: {rss}")


def read_sse(sock, want, timeout=10.0):
    """SSE records (dicts of field -> value; the last id wins) until `want`
    records that are not connection/ping."""
    sock.settimeout(timeout * Server.TIMEOUT_SCALE)
    buf = b""
    records = []

    def real():
        return [r for r in records if r.get("event") not in ("connection", "ping")]

    while len(real()) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            rec = {}
            for line in raw.decode().split("\n"):
                if line.startswith("HTTP/1.1") or ": " not in line or line.startswith(":"):
                    continue
                k, v = line.split(": ", 1)
                rec[k] = v
            if rec and "event" in rec:
                records.append(rec)
    return real()


# ---- SSE streams of several topics: stream ids ------------------------------------------------


class SSEClient:
    """A raw SSE stream read like a browser: records with their event, data and
    the last id seen so far (an id-only record moves it too)."""

    def __init__(self, srv, path, last_id=None):
        self.s = socket.create_connection(("127.0.0.1", srv.port))
        hdr = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{hdr}\r\n".encode())
        self.buf = b""
        self.last_id = ""
        self.head = None
        self.connected = False
        self.next(want_connection=True)  # its subscriptions are in place from here

    def next(self, timeout=10.0, want_connection=False):
        """The next record that dispatches an event (not connection/ping)."""
        self.s.settimeout(timeout * Server.TIMEOUT_SCALE)
        while True:
            while b"\n\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n\n", 1)
                if self.head is None:
                    self.head, raw = raw.split(b"\r\n\r\n", 1)
                rec = {}
                for line in raw.decode().split("\n"):
                    if line.startswith(":") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    v = v[1:] if v.startswith(" ") else v
                    if k == "id":
                        self.last_id = v
                    else:
                        rec[k] = v
                if want_connection and rec.get("event") == "connection":
                    return rec
                if "data" in rec and rec.get("event") not in ("connection", "ping"):
                    rec["last_id"] = self.last_id
                    return rec
            chunk = self.s.recv(65536)
            if not chunk:
                raise TestFailure("the stream ended")
            self.buf += chunk

    def close(self):
        self.s.close()


def test_sse_stream_of_two_topics_resumes_both_without_gap_or_duplicate():
    """Two topics, a publisher running throughout: the stream is cut, reconnects
    with the Last-Event-ID it saw (a stream id) and gets every event of both
    topics exactly once, in order per topic (before: a history_gap record)."""
    with Server("--history-size=4096") as srv:
        total = 300
        done = threading.Event()
        sent = {"r.a": 0, "r.b": 0}

        def publisher():
            pub = Publisher(srv)
            for n in range(1, total + 1):
                for t in ("r.a", "r.b"):
                    pub(t, {"t": t, "n": n})
                    sent[t] = n
                time.sleep(0.002)
            pub.close()
            done.set()

        path = "/api/realtime/events?topic=r.a&topic=r.b"
        c = SSEClient(srv, path)
        th = threading.Thread(target=publisher)
        th.start()
        got = {"r.a": [], "r.b": []}
        for _ in range(60):
            d = json.loads(c.next()["data"])["data"]
            got[d["t"]].append(d["n"])
        last = c.last_id
        c.close()
        check(last.startswith("0:") and ",1:" in last, f"a stream id for both topics: {last!r}")
        wait_for(lambda: min(sent.values()) >= 150, 30, "publishing while disconnected")
        c = SSEClient(srv, path, last)
        while len(got["r.a"]) < total or len(got["r.b"]) < total:
            rec = c.next()
            check(rec.get("event") != "error", f"error record on resume: {rec}")
            d = json.loads(rec["data"])["data"]
            got[d["t"]].append(d["n"])
        th.join()
        c.close()
        for t in got:
            eq(got[t], list(range(1, total + 1)), f"events of {t}")


def test_sse_stream_id_resumes_a_topic_first_published_while_away():
    """A topic of the stream that had no event before the cut still resumes:
    the stream's id names its position from the start."""
    with Server() as srv:
        publish(srv, "f.a", {"n": 1})
        path = "/api/realtime/events?topic=f.a&topic=f.b"
        c = SSEClient(srv, path)
        # no event on the stream: id-only records (complete ones) carry the positions
        wait_for(lambda: read_ids(c).startswith("0:") and ",1:" in c.last_id, 10,
                 "an id-only record naming both topics' positions")
        last = c.last_id
        c.close()
        publish(srv, "f.b", {"n": 1})
        publish(srv, "f.b", {"n": 2})
        publish(srv, "f.a", {"n": 3})
        c = SSEClient(srv, path, last)
        got = []
        for _ in range(3):
            d = json.loads(c.next()["data"])
            got.append((d["topic"], d["data"]["n"]))
        eq(sorted(got), [("f.a", 3), ("f.b", 1), ("f.b", 2)], "missed events of both topics")
        eq([g for g in got if g[0] == "f.b"], [("f.b", 1), ("f.b", 2)], "f.b in order")
        c.close()


def read_ids(c):
    """Let id-only records in (they carry no event): read what has arrived."""
    c.s.settimeout(0.05)
    try:
        chunk = c.s.recv(65536)
        if chunk:
            c.buf += chunk
    except socket.timeout:
        pass
    while b"\n\n" in c.buf:
        raw, c.buf = c.buf.split(b"\n\n", 1)
        for line in raw.decode().split("\n"):
            if line.startswith("id: "):
                c.last_id = line[4:]
    return c.last_id


def test_sse_stream_id_with_node_eventsource():
    """Node's eventsource client reconnecting with a stream id gets the missed
    events of both topics, and every event's lastEventId is a stream id."""
    with Server("--history-size=100") as srv:
        path = "/api/realtime/events?topic=n.a&topic=n.b"
        c = SSEClient(srv, path)
        for n in range(1, 4):
            publish(srv, "n.a", {"n": n})
            publish(srv, "n.b", {"n": n})
        for _ in range(6):
            c.next()
        last = c.last_id
        c.close()
        for n in range(4, 9):
            publish(srv, "n.a", {"n": n})
            publish(srv, "n.b", {"n": n})
        out = node("sse_resume.js", f"http://127.0.0.1:{srv.port}{path}", last, 10, 30)
        eq(out["errors"], [], "errors")
        per = {"n.a": [], "n.b": []}
        for e in out["events"]:
            per[e["data"]["topic"]].append(e["data"]["data"]["n"])
            check(e["lastEventId"].startswith("0:") and ",1:" in e["lastEventId"],
                  f"lastEventId is a stream id: {e['lastEventId']!r}")
        eq(per, {"n.a": list(range(4, 9)), "n.b": list(range(4, 9))}, "missed events")


def test_sse_stream_id_wildcards_and_bad_last_event_ids():
    """Exact topics of a stream with a pattern resume; the pattern gets a
    history_gap record naming it. A garbage or too long Last-Event-ID gets an
    error record saying what was wrong, and the stream works from now."""
    with Server("--history-size=100") as srv:
        path = "/api/realtime/events?topic=w.a&topic=z.*"
        c = SSEClient(srv, path)
        publish(srv, "w.a", {"n": 1})
        publish(srv, "z.q", {"n": 1})
        c.next()
        c.next()
        last = c.last_id
        c.close()
        publish(srv, "w.a", {"n": 2})
        publish(srv, "z.q", {"n": 2})
        c = SSEClient(srv, path, last)
        rec = c.next()
        eq(rec["event"], "error", "first record")
        err = json.loads(rec["data"])
        eq(err["code"], "history_gap", "code")
        check("z.*" in err["message"], f"names the pattern: {err['message']}")
        d = json.loads(c.next()["data"])
        eq((d["topic"], d["data"]["n"]), ("w.a", 2), "the exact topic resumed")
        publish(srv, "z.q", {"n": 3})
        d = json.loads(c.next()["data"])
        eq((d["topic"], d["data"]["n"]), ("z.q", 3), "the pattern is live")
        c.close()
        for bad, why in (("garbage", "does not start with a topic index"),
                         ("0:kx-1,0:kx-2", "repeats a topic index"),
                         ("7:kx-1", "topic index this stream does not have"),
                         ("0:" + "9" * 5000, "longer than")):
            c = SSEClient(srv, path, bad)
            rec = c.next()
            eq(rec["event"], "error", f"record for {bad[:20]!r}")
            err = json.loads(rec["data"])
            eq(err["code"], "history_gap", "code")
            check(why in err["message"] and "Last-Event-ID" in err["message"],
                  f"{bad[:20]!r}: {err['message']}")
            publish(srv, "w.a", {"n": 9})
            d = json.loads(c.next()["data"])
            eq((d["topic"], d["data"]["n"]), ("w.a", 9), "the stream works")
            c.close()
