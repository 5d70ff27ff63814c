"""History, resume (since / Last-Event-ID), include_initial and the history API,
against the real binary with python3-websockets and raw HTTP clients."""
import asyncio
import json
import socket
import threading
import time
import urllib.parse

from harness import (Server, TestFailure, check, eq, http, publish, run_async, wait_for, ws_connect,
                     ws_next, ws_request)


def seq_of(event_id):
    return int(event_id.rsplit("-", 1)[1])


def test_resume_since_replays_missed_events_then_live_without_gap_or_dup():
    """A client sees events 1..10, disconnects; 100 more are published while it is
    away and a publisher keeps publishing throughout; resuming with `since` gives
    exactly the missed ones in order, then the live ones: no gap, no duplicate."""
    with Server("--history-size=512") as srv:
        topic = "room.resume"
        total = 400
        published = []
        state = {"go_live": threading.Event(), "stop": False}

        def publisher(start, count, pace=0.0):
            for n in range(start, start + count):
                published.append(publish(srv, topic, {"n": n}))
                if pace:
                    time.sleep(pace)  # spread the publishing over the resume

        async def first_session():
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "subscribe", "topic": topic, "id": 1})
            eq(r["type"], "subscribed", "subscribe answer")
            publisher(1, 10)
            got = []
            while len(got) < 10:
                m = await ws_next(ws, type_="event")
                got.append(m["data"])
            await ws.close()
            return got

        got = run_async(first_session())
        eq([g["data"]["n"] for g in got], list(range(1, 11)), "first session")
        last_id = got[-1]["id"]
        publisher(11, 100)  # missed while away

        th = threading.Thread(target=publisher, args=(111, total - 110, 0.001))

        async def second_session():
            ws = await ws_connect(srv)
            th.start()  # publishing continues during the resume
            r = await ws_request(ws, {"action": "subscribe", "topic": topic, "since": last_id,
                                      "id": "r"})
            eq(r["type"], "subscribed", "resume answer")
            eq(r["data"]["since"], last_id, "since echoed")
            seen = []
            while len(seen) < total - 10:
                m = await ws_next(ws, timeout=20)
                if m["type"] == "error":
                    raise TestFailure(f"unexpected error while resuming: {m}")
                if m["type"] == "event":
                    seen.append(m["data"]["data"]["n"])
            await ws.close()
            return seen

        seen = run_async(second_session())
        th.join()
        eq(seen, list(range(11, total + 1)), "events after resume")


def test_since_older_than_history_gets_history_gap():
    with Server("--history-size=5") as srv:
        ids = [publish(srv, "g.t", {"n": n}) for n in range(20)]

        async def go():
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "subscribe", "topic": "g.t", "since": ids[0],
                                      "id": 7})
            eq(r["type"], "subscribed", "answer")
            m = await ws_next(ws, type_="error")
            eq(m["data"]["code"], "history_gap", "code")
            eq(m["data"].get("id"), 7, "request id echoed")
            check("older than the retained history" in m["data"]["message"], m)
            # live delivery continues after the gap
            publish(srv, "g.t", {"n": 99})
            e = await ws_next(ws, type_="event")
            eq(e["data"]["data"], {"n": 99}, "live after gap")
            await ws.close()

        run_async(go())


def test_since_from_another_run_is_a_gap_and_bad_ids_are_refused():
    with Server() as srv:
        publish(srv, "o.t", {"n": 1})

        async def go():
            ws = await ws_connect(srv)
            await ws_request(ws, {"action": "subscribe", "topic": "o.t", "since": "zzzzz-1"})
            m = await ws_next(ws, type_="error")
            eq(m["data"]["code"], "history_gap", "other run")
            r = await ws_request(ws, {"action": "subscribe", "topic": "o.t", "since": "nonsense",
                                      "id": 2})
            eq(r["type"], "error", "bad id answer")
            eq(r["data"]["code"], "bad_event_id", "bad id code")
            r = await ws_request(ws, {"action": "subscribe", "topic": "o.*", "since": "zzzzz-1",
                                      "id": 3})
            eq(r["data"]["code"], "bad_value", "since on a pattern")
            check("exact topic" in r["data"]["message"], r)
            r = await ws_request(ws, {"action": "subscribe", "topic": "o.t", "since": "zzzzz-1",
                                      "include_initial": True, "id": 4})
            eq(r["data"]["code"], "bad_value", "since with include_initial")
            # the connection still works
            r = await ws_request(ws, {"action": "subscribe", "topic": "o.u", "id": 5})
            eq(r["type"], "subscribed", "still usable")
            await ws.close()

        run_async(go())


def test_since_newer_than_last_event_is_a_gap():
    with Server() as srv:
        first = publish(srv, "f.t", {"n": 1})
        future = first.rsplit("-", 1)[0] + "-50"

        async def go():
            ws = await ws_connect(srv)
            await ws_request(ws, {"action": "subscribe", "topic": "f.t", "since": future})
            m = await ws_next(ws, type_="error")
            eq(m["data"]["code"], "history_gap", "future cursor")
            check("newer" in m["data"]["message"], m)
            await ws.close()

        run_async(go())


def read_sse_records(sock, want, timeout=10.0):
    """Read SSE records (dicts of field -> value) until `want` event records."""
    sock.settimeout(timeout * Server.TIMEOUT_SCALE)
    buf = b""
    records = []
    while sum(1 for r in records if r.get("event") not in ("connection", "ping")) < want:
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
            if rec:
                records.append(rec)
    return [r for r in records if r.get("event") not in ("connection", "ping")]


def sse_open(srv, path, headers=""):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    return s


def test_sse_last_event_id_resumes_exactly():
    with Server("--history-size=100") as srv:
        ids = [publish(srv, "s.t", {"n": n}) for n in range(1, 21)]
        s = sse_open(srv, "/api/realtime/events?topic=s.t", f"Last-Event-ID: {ids[4]}\r\n")
        recs = read_sse_records(s, 15)
        eq([json.loads(r["data"])["data"]["n"] for r in recs], list(range(6, 21)), "replayed")
        eq([r["id"] for r in recs], ids[5:], "ids")
        publish(srv, "s.t", {"n": 21})
        recs = read_sse_records(s, 1)
        eq(json.loads(recs[0]["data"])["data"]["n"], 21, "live after replay")
        s.close()


def test_sse_since_query_and_refusals():
    with Server("--history-size=100") as srv:
        ids = [publish(srv, "q.t", {"n": n}) for n in range(1, 6)]
        s = sse_open(srv, "/api/realtime/events?topic=q.t&since=" + urllib.parse.quote(ids[2]))
        recs = read_sse_records(s, 2)
        eq([json.loads(r["data"])["data"]["n"] for r in recs], [4, 5], "since query")
        s.close()
        r = http(srv, "GET", "/api/realtime/events?topic=q.*&since=" + ids[0])
        eq(r.status, 400, "since on a pattern")
        eq(r.json()["error"]["code"], "bad_query", "code")
        # Last-Event-ID on a stream that cannot resume: an error record, then the stream
        s = sse_open(srv, "/api/realtime/events?topic=q.*", f"Last-Event-ID: {ids[0]}\r\n")
        recs = read_sse_records(s, 1)
        eq(recs[0]["event"], "error", "record")
        eq(json.loads(recs[0]["data"])["code"], "history_gap", "code")
        s.close()


def test_include_initial_sends_retained_latest_of_matching_topics_then_live():
    with Server() as srv:
        publish(srv, "cat.1", {"v": "old"})
        publish(srv, "cat.1", {"v": "one"})
        publish(srv, "cat.2", {"v": "two"})
        publish(srv, "dog.1", {"v": "dog"})

        async def go():
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "subscribe", "topic": "cat.*",
                                      "include_initial": True, "id": 1})
            eq(r["type"], "subscribed", "answer")
            init = {}
            while len(init) < 2:
                m = await ws_next(ws, type_="event")
                eq(m["data"].get("initial"), True, f"initial flag on {m}")
                init[m["data"]["topic"]] = m["data"]["data"]["v"]
            eq(init, {"cat.1": "one", "cat.2": "two"}, "initial state")
            publish(srv, "cat.3", {"v": "live"})
            m = await ws_next(ws, type_="event")
            eq(m["data"]["data"], {"v": "live"}, "live after initial")
            check("initial" not in m["data"], m)
            await ws.close()

        run_async(go())


def test_history_api_since_and_limit():
    with Server("--history-size=50") as srv:
        ids = [publish(srv, "api.t", {"n": n}, type_="record.created") for n in range(1, 31)]
        r = http(srv, "GET", "/api/realtime/history/api.t?limit=5")
        eq(r.status, 200, "status")
        body = r.json()
        eq([e["data"]["n"] for e in body["events"]], [26, 27, 28, 29, 30], "last 5")
        eq(body["events"][0]["type"], "record.created", "type")
        eq(body["last_id"], ids[-1], "last id")
        eq(body["gap"], False, "gap")
        r = http(srv, "GET", f"/api/realtime/history/api.t?since={ids[27]}")
        eq([e["id"] for e in r.json()["events"]], ids[28:], "since")
        r = http(srv, "GET", "/api/realtime/history/never.published")
        eq(r.json()["events"], [], "unknown topic")
        r = http(srv, "GET", "/api/realtime/history/a.*")
        eq(r.status, 400, "pattern refused")
        r = http(srv, "GET", "/api/realtime/history/api.t?since=bogus")
        eq((r.status, r.json()["error"]["code"]), (400, "bad_event_id"), "bad since")
        r = http(srv, "GET", "/api/realtime/history/api.t?limit=0")
        eq(r.status, 400, "limit 0")
        r = http(srv, "POST", "/api/realtime/history/api.t", {})
        eq(r.status, 405, "method")
