"""Fan-out (issue 3): per-topic order under concurrent publishers, 10,000
subscribers on one topic, slow consumers, broadcast to recipients/exclude,
and seed 001's POST /api/realtime/events."""

import asyncio
import http.client as httpclient
import json
import os
import threading
import time

from harness import (Server, TestFailure, check, eq, http, node, publish, run_async, shard_of,
                     wait_for, ws_connect, ws_next, ws_subscribe)
from test_realtime import (RawFrames, connect_on_both_shards, counter, raw_ws_handshake, stats,
                           ws_frame)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise TestFailure("no VmRSS line")


class Publisher:
    """Keep-alive HTTP publisher (http.client) for one thread."""

    def __init__(self, srv):
        self.conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=30)

    def publish(self, topic, data, type_="message"):
        self.conn.request("POST", "/api/realtime/publish",
                          body=json.dumps({"topic": topic, "type": type_, "data": data}),
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 202:
            raise TestFailure(f"publish: {r.status} {body[:200]!r}")
        return json.loads(body)["id"]

    def close(self):
        self.conn.close()


def run_publishers(srv, nthreads, per_thread, make, window=None):
    """nthreads threads each publish per_thread events; returns ids per thread
    in the order their 202s came back. make(t, i) -> (topic, data).
    window: a threading.BoundedSemaphore-like gate acquired before each publish
    (the consumer releases it), so publishers stay at most N events ahead."""
    ids = [[] for _ in range(nthreads)]
    errors = []

    def work(t):
        p = Publisher(srv)
        try:
            for i in range(per_thread):
                topic, data = make(t, i)
                if window is not None and not window.acquire(timeout=60):
                    raise TestFailure("the consumer stopped releasing the window")
                ids[t].append(p.publish(topic, data))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            p.close()
    ths = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
    for th in ths:
        th.start()
    return ths, ids, errors


def test_per_topic_order_concurrent_publishers():
    NPUB, PER = 4, 250
    with Server() as srv:
        async def go():
            by, extra = await connect_on_both_shards(srv, per_shard=3)
            subs = by[0] + by[1]
            for ws in subs:
                await ws_subscribe(ws, "order.t")
            ths, ids, errors = run_publishers(
                srv, NPUB, PER, lambda t, i: ("order.t", {"p": t, "k": i}))

            async def collect(ws):
                out = []
                while len(out) < NPUB * PER:
                    m = await ws_next(ws, 30, type_="event")
                    out.append((m["data"]["id"], m["data"]["data"]["p"], m["data"]["data"]["k"]))
                return out
            seen = await asyncio.gather(*(collect(ws) for ws in subs))
            for th in ths:
                await asyncio.get_running_loop().run_in_executor(None, th.join, 60)
            check(not errors, f"publisher errors: {errors[:3]}")
            all_ids = [i for per in ids for i in per]
            eq(len(set(all_ids)), NPUB * PER, "distinct event ids answered")
            first = seen[0]
            eq(len(set(e[0] for e in first)), NPUB * PER, "no duplicates")
            eq(set(e[0] for e in first), set(all_ids), "none lost")
            for ws, got in zip(subs, seen):
                eq(got == first, True,
                   f"subscriber {ws.connection_id} (shard {shard_of(ws.connection_id)}) "
                   f"sees the same order as {subs[0].connection_id}")
            # each publisher's events appear in its own publish order, with the
            # ids its 202 answers named
            for t in range(NPUB):
                mine = [e for e in first if e[1] == t]
                eq([e[2] for e in mine], list(range(PER)), f"publisher {t} order")
                eq([e[0] for e in mine], ids[t], f"publisher {t} ids")
            # a later event comes after all of them, on every subscriber
            last = publish(srv, "order.t", {"p": "last"})
            for ws in subs:
                m = await ws_next(ws, type_="event")
                eq(m["data"]["id"], last, "nothing extra before the last event")
            for ws in subs + extra:
                await ws.close()
        run_async(go(), timeout=150)


def test_ten_thousand_connections_one_topic():
    N = 10000
    with Server() as srv:
        result = {}

        def run():
            try:
                result["r"] = node("ws_many.js", srv.ws_url, N, "big.topic",
                                   int(140 * Server.TIMEOUT_SCALE), timeout=160)
            except BaseException as e:  # noqa: BLE001
                result["e"] = e
        th = threading.Thread(target=run)
        th.start()

        def all_subscribed():
            if "e" in result:
                raise result["e"]
            return stats(srv, limit=0).get("total_subscriptions", 0) >= N
        wait_for(all_subscribed, 120 * Server.TIMEOUT_SCALE, f"{N} subscriptions",
                 interval=0.25)
        st = stats(srv, limit=0)
        eq(st["total_connections"], N, "total_connections")
        eq(st["total_subscriptions"], N, "total_subscriptions")
        t0 = time.monotonic()
        eid = publish(srv, "big.topic", {"hello": "everyone"})
        th.join(150 * Server.TIMEOUT_SCALE)
        check(not th.is_alive(), "node client finished")
        if "e" in result:
            raise result["e"]
        r = result["r"]
        eq(r["errors"], [], "client errors")
        eq((r["connected"], r["subscribed"], r["received"]), (N, N, N),
           "connected / subscribed / received")
        eq(r["event_ids"], [eid], "every connection got the one event")
        eq(r["subscriptions_distinct"], N, "subscription answers")
        eq(sorted(r["shards"]), ["00", "01"], "connections on both shards")
        print(f"    10,000 deliveries in {time.monotonic() - t0:.2f}s (incl. node exit)")
        check(counter(srv, "deliveries") >= N, "deliveries counter")


def test_slow_consumer_disconnected_others_unaffected():
    # 62.5 MiB published (more under TSan, whose memory overhead is larger)
    NEV, SIZE, WINDOW = int(4000 * Server.TIMEOUT_SCALE), 16384, 3
    asan = os.environ.get("ASAN_OPTIONS", "")
    # a small quarantine so that RSS reflects live memory under ASan
    env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=1"}
    with Server("--max-pending-bytes=64KiB", env=env) as srv:
        async def go():
            good = await ws_connect(srv)
            good_sub = await ws_subscribe(good, "slow.t")
            # the slow consumer: a raw socket that stops reading (the kernel's
            # buffers absorb a few MB before the server's queue grows)
            s, rest = raw_ws_handshake(srv)
            rf = RawFrames(s, rest)
            slow_id = rf.next_json()["data"]["connection_id"]
            s.sendall(ws_frame(1, b'{"action":"subscribe","topic":"slow.t","id":"s"}'))
            m = rf.next_json()
            eq((m["type"], m["id"]), ("subscribed", "s"), "slow consumer subscribed")
            eq(counter(srv, "slow_consumer_disconnects"), 0, "no slow consumer yet")
            rss0 = rss_kib(srv.proc.pid)

            # once the server has given up on it, the slow consumer reads what
            # it was sent (within the server's flush deadline)
            slow = {"events": [], "close": None, "error": None}

            def drain_slow():
                try:
                    wait_for(lambda: counter(srv, "slow_consumer_disconnects") >= 1, 120,
                             "slow_consumer_disconnects >= 1", interval=0.1)
                    while True:
                        f = rf.next(20)
                        if f is None:
                            break
                        if f[0] == 8:
                            slow["close"] = int.from_bytes(f[1][:2], "big")
                            s.sendall(ws_frame(8, f[1][:2]))
                            slow["eof"] = rf.next(10) is None
                            break
                        if f[0] != 1:
                            raise TestFailure(f"slow consumer got opcode {f[0]}")
                        try:
                            ev = json.loads(f[1].decode("utf-8"))
                        except ValueError:
                            raise TestFailure(
                                f"slow consumer: text frame {len(slow['events'])} "
                                f"({len(f[1])} bytes) is not a JSON message; it ends "
                                f"{f[1][-60:]!r}")
                        slow["events"].append(ev["data"]["id"])
                except BaseException as e:  # noqa: BLE001
                    slow["error"] = e
            drainer = threading.Thread(target=drain_slow)
            drainer.start()

            pad = "x" * SIZE
            # the good subscriber paces the publishers (at most WINDOW events,
            # about 48 KB, ahead), so only the consumer that stopped reading
            # falls behind
            window = threading.Semaphore(WINDOW)
            ths, ids, errors = run_publishers(
                srv, 4, NEV // 4, lambda t, i: ("slow.t", {"p": t, "k": i, "pad": pad}),
                window=window)
            got = []
            peak = rss0
            while len(got) < NEV:
                m = await ws_next(good, 60, type_="event")
                eq(m["data"]["subscription"], good_sub, "good subscription")
                got.append(m["data"]["id"])
                window.release()
                if len(got) % 100 == 0:
                    peak = max(peak, rss_kib(srv.proc.pid))
            loop = asyncio.get_running_loop()
            for th in ths + [drainer]:
                await loop.run_in_executor(None, th.join, 60)
            check(not errors, f"publisher errors: {errors[:3]}")
            eq(len(set(got)), NEV, "the good subscriber got every event once")
            eq(set(got), set(i for per in ids for i in per), "the events that were published")
            eq(counter(srv, "slow_consumer_disconnects"), 1, "one slow consumer counted")
            rss1 = max(peak, rss_kib(srv.proc.pid))
            total_kib = NEV * SIZE // 1024
            print(f"    RSS {rss0} KiB -> peak {rss1} KiB; {total_kib} KiB published")
            check(rss1 - rss0 < 24 * 1024 * Server.TIMEOUT_SCALE,
                  f"RSS grew {rss1 - rss0} KiB for {total_kib} KiB published with a 64KiB cap")
            if slow["error"]:
                raise slow["error"]
            n = len(slow["events"])
            eq(slow["events"], got[:n], "the slow consumer got a prefix of the stream")
            check(n < NEV, f"slow consumer got only a prefix ({n} events)")
            eq(slow["close"], 1008, f"slow consumer close code (after {n} events)")
            eq(slow.get("eof"), True, "TCP closed after the close handshake")
            s.close()
            wait_for(lambda: slow_id not in stats(srv)["subscriptions"], 10,
                     "the slow consumer gone from stats")
            e = publish(srv, "slow.t", {"after": True})
            m = await ws_next(good, type_="event")
            eq(m["data"]["id"], e, "good subscriber still receives")
            await good.close()
        run_async(go(), timeout=170)


def test_broadcast_recipients_and_exclude():
    with Server() as srv:
        async def go():
            by, extra = await connect_on_both_shards(srv, per_shard=2)
            a, c = by[0]
            b, d = by[1]
            conns = {"a": a, "b": b, "c": c, "d": d}
            for ws in extra:
                await ws.close()
            wait_for(lambda: stats(srv, limit=0)["total_connections"] == 4, 10,
                     "only a, b, c, d connected")
            cid = {k: ws.connection_id for k, ws in conns.items()}

            def bc(body):
                r = http(srv, "POST", "/api/realtime/events/broadcast", body)
                eq(r.status, 200, f"broadcast status for {body}")
                return r.json()

            async def check_round(body, want_count, who):
                n = bc(body)
                eq(n, want_count, f"connections reached by {body}")
                # a round-closing broadcast to everyone: the receivers see the
                # round's event first, the others see only the closer
                closer = {"event": "round.end", "data": body["data"]}
                eq(bc(closer), 4, "closer reaches everyone")
                for k, ws in conns.items():
                    m = await ws_next(ws, type_="event")
                    if k in who:
                        eq(m["data"]["type"], body["event"], f"{k} receives {body['data']}")
                        eq(m["data"]["data"], body["data"], f"{k} data")
                        check("subscription" not in m["data"], f"broadcast has no sub: {m}")
                        m = await ws_next(ws, type_="event")
                    eq((m["data"]["type"], m["data"]["data"]), ("round.end", body["data"]),
                       f"{k}: the closer comes next (round {body['data']})")

            await check_round({"event": "note", "data": 1, "recipients": [cid["a"], cid["b"]]},
                              2, "ab")
            await check_round({"event": "note", "data": 2, "exclude": [cid["a"], cid["d"]]},
                              2, "bc")
            await check_round({"event": "note", "data": 3, "recipients": [cid["a"], cid["b"],
                                                                          cid["c"]],
                               "exclude": [cid["b"]]}, 2, "ac")
            await check_round({"event": "note", "data": 4, "recipients": ["00ffffffffffffff"]},
                              0, "")
            await check_round({"event": "note", "data": 5, "recipients": []}, 0, "")
            await check_round({"event": "note", "data": 6}, 4, "abcd")
            # shape of a broadcast event on the wire
            bc({"event": "alert.x", "data": {"k": "v"}, "priority": "high",
                "recipients": [cid["d"]]})
            m = await ws_next(d, type_="event")
            eq(sorted(m["data"].keys()), ["data", "id", "priority", "type"], "event keys")
            eq((m["data"]["type"], m["data"]["data"], m["data"]["priority"]),
               ("alert.x", {"k": "v"}, "high"), "broadcast event")
            for body, code in [({"data": 1}, "missing_field"),
                               ({"event": "x", "recipients": ["nothex"]}, "bad_value"),
                               ({"event": "x", "recipients": "00ff"}, "bad_type"),
                               ({"event": "x", "exclude": [5]}, "bad_value"),
                               ({"event": "x", "priority": "max"}, "bad_value")]:
                r = http(srv, "POST", "/api/realtime/events/broadcast", body)
                eq((r.status, r.json()["error"]["code"]), (400, code), f"bad broadcast {body}")
            for ws in conns.values():
                await ws.close()
        run_async(go())


def test_events_create_with_and_without_topic():
    with Server() as srv:
        async def go():
            by, extra = await connect_on_both_shards(srv)
            sub, other = by[0][0], by[1][0]
            for ws in extra:
                await ws.close()
            s = await ws_subscribe(sub, "ev.topic")
            # with topic: a topic event, only for subscribers
            body = {"event": "record.updated", "data": {"x": 1}, "priority": "high",
                    "topic": "ev.topic"}
            r = http(srv, "POST", "/api/realtime/events", body)
            eq(r.status, 201, "create with topic")
            j = r.json()
            eq((j["event"], j["data"], j["priority"], j["topic"]),
               ("record.updated", {"x": 1}, "high", "ev.topic"), "echo with topic")
            eid = j["id"]
            m = await ws_next(sub, type_="event")
            eq(m["data"], {"id": eid, "topic": "ev.topic", "collection": "ev.topic",
                           "type": "record.updated", "data": {"x": 1}, "subscription": s},
               "topic event")
            # without topic: everyone
            r = http(srv, "POST", "/api/realtime/events",
                     {"event": "system.notice", "data": "hi", "retry": 5000, "comment": "c"})
            eq(r.status, 201, "create without topic")
            j = r.json()
            eq((j["event"], j["data"], j["priority"], j["retry"], j["comment"]),
               ("system.notice", "hi", "normal", 5000, "c"), "echo without topic")
            for ws in (sub, other):
                m = await ws_next(ws, type_="event")
                eq((m["data"]["id"], m["data"]["type"], m["data"]["data"],
                    m["data"]["priority"]), (j["id"], "system.notice", "hi", "normal"),
                   f"broadcast event on {ws.connection_id}")
            # other never saw the topic event: its next event is a fresh broadcast
            r = http(srv, "POST", "/api/realtime/events/broadcast",
                     {"event": "closer", "data": 0, "recipients": [other.connection_id]})
            eq(r.json(), 1, "closer count")
            m = await ws_next(other, type_="event")
            eq(m["data"]["type"], "closer", "no topic event for a non-subscriber")
            for body, code in [({"data": 1}, "missing_field"),
                               ({"event": "x", "topic": "a.*"}, "bad_topic"),
                               ({"event": "x", "retry": -1}, "bad_value"),
                               ({"event": "x", "comment": "a\nb"}, "bad_value"),
                               ({"event": "bad type"}, "bad_value")]:
                r = http(srv, "POST", "/api/realtime/events", body)
                eq((r.status, r.json()["error"]["code"]), (400, code), f"bad event {body}")
            await sub.close()
            await other.close()
        run_async(go())


def test_slow_consumers_get_whole_frames_then_1008():
    """Eight consumers stop reading; each, when it reads again, must see only
    whole event frames (a prefix of the topic's stream) and then close 1008."""
    NSLOW, SIZE = 8, 16384
    with Server("--max-pending-bytes=64KiB") as srv:
        slows = []
        for _ in range(NSLOW):
            s, rest = raw_ws_handshake(srv)
            rf = RawFrames(s, rest)
            rf.next_json()
            s.sendall(ws_frame(1, b'{"action":"subscribe","topic":"slow.many","id":1}'))
            eq(rf.next_json()["type"], "subscribed", "subscribed")
            slows.append((s, rf))
        stop = threading.Event()
        published = []
        lock = threading.Lock()

        def pub(t):
            p = Publisher(srv)
            try:
                k = 0
                while not stop.is_set():
                    eid = p.publish("slow.many", {"t": t, "k": k, "pad": "x" * SIZE})
                    with lock:
                        published.append(eid)
                    k += 1
            finally:
                p.close()
        ths = [threading.Thread(target=pub, args=(t,)) for t in range(4)]
        for th in ths:
            th.start()
        try:
            wait_for(lambda: counter(srv, "slow_consumer_disconnects") >= NSLOW, 120,
                     f"{NSLOW} slow consumers counted", interval=0.05)
        finally:
            stop.set()
            for th in ths:
                th.join(60)
        eq(counter(srv, "slow_consumer_disconnects"), NSLOW, "slow consumers counted")
        problems = []
        streams = []
        for i, (s, rf) in enumerate(slows):
            ids = []
            while True:
                f = rf.next(20)
                if f is None:
                    problems.append(f"consumer {i}: EOF without a close frame after {len(ids)}")
                    break
                if f[0] == 8:
                    code = int.from_bytes(f[1][:2], "big")
                    if code != 1008:
                        problems.append(f"consumer {i}: close code {code}")
                    break
                try:
                    ids.append(json.loads(f[1].decode("utf-8"))["data"]["id"])
                except ValueError:
                    problems.append(f"consumer {i}: text frame {len(ids)} ({len(f[1])} bytes) "
                                    f"is not a JSON message; it ends {f[1][-60:]!r}")
                    break
            streams.append(ids)
            s.close()
        eq(problems, [], "what the slow consumers read")
        # every consumer got a prefix of the one order of the topic
        longest = max(streams, key=len)
        for i, ids in enumerate(streams):
            eq(ids, longest[:len(ids)], f"consumer {i} got a prefix of the topic's order")
            check(len(ids) < len(published), f"consumer {i} was cut off")
        eq(http(srv, "GET", "/healthz").status, 200, "server healthy")
