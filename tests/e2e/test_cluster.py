"""Several ringcast nodes with broker=redis, against a real redis-server:
one order per topic across nodes, wildcards and filters across nodes, resume
and history on another node, Redis going away and coming back, and the
configuration's errors. Clients: python3-websockets and http.client."""
import asyncio
import json
import re
import subprocess
import threading
import time

from cluster import Nodes, Redis, healthz, node
from harness import (Server, TestFailure, check, eq, http, publish, run_async, wait_for, ws_connect,
                     ws_next, ws_request, ws_subscribe)


def seq_of(event_id):
    return int(event_id.rsplit("-", 1)[1])


async def collect(ws, n, timeout=30.0):
    """The next n events on ws (their data objects)."""
    got = []
    while len(got) < n:
        m = await ws_next(ws, timeout=timeout, type_="event")
        got.append(m["data"])
    return got


async def no_more_events(ws, wait=0.3):
    """No event arrives on ws: a ping round trip through the server, then
    anything queued before it would have arrived."""
    try:
        m = await asyncio.wait_for(ws.recv(), wait)
    except asyncio.TimeoutError:
        return
    m = json.loads(m)
    if m.get("type") == "event":
        raise TestFailure(f"unexpected event {m}")


def cluster_stats(srv):
    r = http(srv, "GET", "/api/realtime/stats")
    eq(r.status, 200, "stats")
    return r.json()["cluster"]


def test_cluster_one_order_per_topic_with_publishers_on_every_node():
    """Three nodes, two subscribers on each, three publishers (one per node)
    publishing 400 events each at the same time: every subscriber sees all
    1,200 in the same order, seqs 1..1200 without gap or duplicate, and each
    publisher's own events in the order it published them."""
    with Redis() as redis, Nodes(redis, 3) as nodes:
        topic = "orders.eu"
        per = 400

        async def run():
            subs = []
            for srv in nodes:
                for _ in range(2):
                    ws = await ws_connect(srv)
                    await ws_subscribe(ws, topic)
                    subs.append(ws)
            # every node subscribed its channel before anyone publishes
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:" + topic)[1] == 3, 10,
                     "three nodes subscribed to the topic's channel")

            def publisher(i):
                for k in range(per):
                    publish(nodes[i], topic, {"p": i, "k": k})

            ths = [threading.Thread(target=publisher, args=(i,)) for i in range(3)]
            for t in ths:
                t.start()
            results = await asyncio.gather(*(collect(ws, 3 * per, 60) for ws in subs))
            for t in ths:
                t.join()
            for ws in subs:
                await no_more_events(ws)
                await ws.close()
            return results

        results = run_async(run(), 120)
        first = [e["id"] for e in results[0]]
        for r in results[1:]:
            eq([e["id"] for e in r], first, "every subscriber's order")
        eq([seq_of(i) for i in first], list(range(1, 3 * per + 1)), "seqs")
        check(len({i.rsplit("-", 1)[0] for i in first}) == 1, "one epoch")
        for p in range(3):
            eq([e["data"]["k"] for e in results[0] if e["data"]["p"] == p], list(range(per)),
               f"publisher {p}'s order")


def test_cluster_wildcards_and_filters_across_nodes():
    """Patterns and filters on node 2 get exactly what matches, published on
    nodes 1 and 3; a node without a subscription matching a topic gets none of
    its events from Redis (no channel, no pattern of it)."""
    with Redis() as redis, Nodes(redis, 3) as nodes:
        async def run():
            ws = await ws_connect(nodes[1])
            star = await ws_subscribe(ws, "project.*.models")
            tail = await ws_subscribe(ws, "project.>", filter_={"size": {"$gt": 10}})
            wait_for(lambda: redis.command("PUBSUB", "NUMPAT") == 2, 10, "two patterns")
            publish(nodes[0], "project.a.models", {"size": 1})     # star only
            publish(nodes[2], "project.b.models", {"size": 50})    # both
            publish(nodes[0], "project.a.files", {"size": 99})     # tail only
            publish(nodes[2], "project.a.files", {"size": 2})      # neither
            publish(nodes[0], "other.a.models", {"size": 99})      # neither
            publish(nodes[0], "project.a.b.models", {"size": 1})   # neither (star is one token)
            publish(nodes[2], "project.z.models", {"size": 11})    # both
            got = await collect(ws, 6)
            await no_more_events(ws)
            # nodes 1 and 3 hold no subscription: Redis has node 2's patterns only
            eq(redis.command("PUBSUB", "NUMPAT"), 2, "patterns in redis")
            eq(redis.command("PUBSUB", "CHANNELS", "rc:e:*"), [], "no exact channels")
            await ws.close()
            # the last subscription gone, the node unsubscribes its patterns
            wait_for(lambda: redis.command("PUBSUB", "NUMPAT") == 0, 10, "patterns released")
            return star, tail, got

        star, tail, got = run_async(run())
        # a topic both subscriptions match arrives once through each
        want = [("project.a.models", star), ("project.b.models", star), ("project.b.models", tail),
                ("project.a.files", tail), ("project.z.models", star), ("project.z.models", tail)]
        eq(sorted((g["topic"], g["subscription"]) for g in got), sorted(want), "what matched")
        eq([g["data"]["size"] for g in got if g["subscription"] == tail], [50, 99, 11],
           "the filtered pattern's events, in publish order")


def test_cluster_resume_on_another_node_without_gap_or_duplicate():
    """A client sees 10 events on node 1 and goes away; 50 more are published
    (on nodes 1 and 3) and a publisher keeps going during the resume; resuming
    on node 2 with `since` gives exactly the missed events, then the live
    ones. SSE's Last-Event-ID does the same on node 3."""
    with Redis() as redis, Nodes(redis, 3, "--history-size=1000") as nodes:
        topic = "room.move"
        published = []

        def pub(i, n):
            published.append(publish(nodes[i], topic, {"n": n}))

        async def first():
            ws = await ws_connect(nodes[0])
            await ws_subscribe(ws, topic)
            for n in range(1, 11):
                pub(0, n)
            got = await collect(ws, 10)
            await ws.close()
            return got

        got = run_async(first())
        eq([g["data"]["n"] for g in got], list(range(1, 11)), "first session")
        last = got[-1]["id"]
        for n in range(11, 61):
            pub(0 if n % 2 else 2, n)
        th = threading.Thread(target=lambda: [pub(1, n) for n in range(61, 161)])

        async def second():
            ws = await ws_connect(nodes[1])
            th.start()
            r = await ws_request(ws, {"action": "subscribe", "topic": topic, "since": last,
                                      "id": "r"})
            eq(r["type"], "subscribed", "resume answer")
            got = await collect(ws, 150)
            th.join()
            await no_more_events(ws)
            await ws.close()
            return got

        got2 = run_async(second())
        eq([g["data"]["n"] for g in got2], list(range(11, 161)), "resumed, then live")
        eq([g["id"] for g in got2], published[10:], "the ids the publishes answered")

        # SSE on node 3 from the 100th event's id
        import socket as _s
        s = _s.create_connection(("127.0.0.1", nodes[2].port))
        s.sendall(f"GET /api/realtime/events?topic={topic} HTTP/1.1\r\nHost: x\r\n"
                  f"Last-Event-ID: {published[99]}\r\n\r\n".encode())
        recs = read_sse(s, 60)
        eq([r["id"] for r in recs], published[100:160], "SSE resumed on another node")
        s.close()


def read_sse(s, n, timeout=20.0):
    """n event records of an SSE response on socket s (after its head)."""
    s.settimeout(timeout)
    buf = b""
    recs = []
    deadline = time.monotonic() + timeout
    while len(recs) < n:
        if time.monotonic() > deadline:
            raise TestFailure(f"only {len(recs)} of {n} SSE records")
        chunk = s.recv(65536)
        if not chunk:
            raise TestFailure("SSE stream closed")
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            rec = {}
            for ln in block.decode().split("\n"):
                if ln.startswith(":") or ":" not in ln:
                    continue
                k, v = ln.split(":", 1)
                rec[k] = v[1:] if v.startswith(" ") else v
            if rec.get("event") in (None, "connection", "ping") and "data" not in rec:
                continue
            if rec.get("event") in ("connection", "ping"):
                continue
            if "data" in rec and "id" in rec:
                recs.append(rec)
    return recs


def test_cluster_history_api_include_initial_and_gaps_on_any_node():
    """GET /history on a node that never saw the topic reads Redis; include_initial
    on an exact topic gives its latest event on another node; a cursor of a
    topic whose Redis state was lost (FLUSHALL) is a history_gap, not a wrong
    replay; include_initial on a pattern is refused with a clear reason."""
    with Redis() as redis, Nodes(redis, 2, "--history-size=5") as nodes:
        ids = [publish(nodes[0], "h.t", {"n": n}) for n in range(1, 9)]
        r = http(nodes[1], "GET", "/api/realtime/history/h.t?limit=3")
        eq(r.status, 200, "history on node 2")
        eq([e["id"] for e in r.json()["events"]], ids[5:], "the last three")
        eq(r.json()["last_id"], ids[-1], "last_id")
        r = http(nodes[1], "GET", f"/api/realtime/history/h.t?since={ids[5]}")
        eq([e["data"]["n"] for e in r.json()["events"]], [7, 8], "since")
        r = http(nodes[1], "GET", f"/api/realtime/history/h.t?since={ids[0]}")
        eq(r.json()["gap"], True, "older than the 5 kept")

        async def run():
            ws = await ws_connect(nodes[1])
            r = await ws_request(ws, {"action": "subscribe", "topic": "h.t",
                                      "include_initial": True, "id": 1})
            eq(r["type"], "subscribed", "include_initial")
            m = await ws_next(ws, type_="event")
            eq((m["data"]["id"], m["data"].get("initial")), (ids[-1], True), "initial event")
            r = await ws_request(ws, {"action": "subscribe", "topic": "h.*",
                                      "include_initial": True, "id": 2})
            eq(r["type"], "error", "include_initial on a pattern")
            check("exact topic" in r["data"]["message"], r["data"]["message"])
            # Redis loses everything: an old cursor is a gap
            redis.command("FLUSHALL")
            new = publish(nodes[0], "h.t", {"n": 100})
            check(new.rsplit("-", 1)[0] != ids[0].rsplit("-", 1)[0], "a new epoch")
            ws2 = await ws_connect(nodes[0])
            r = await ws_request(ws2, {"action": "subscribe", "topic": "h.t", "since": ids[-1],
                                       "id": 3})
            if r["type"] == "subscribed":
                r = await ws_next(ws2, type_="error")
            eq(r["data"]["code"], "history_gap", "a cursor of the lost epoch")
            await ws.close()
            await ws2.close()

        run_async(run())


def test_cluster_redis_down_then_back_loses_nothing_it_can_replay():
    """Redis stops: publishes answer 503 broker_unavailable at once, /healthz
    says degraded with the reason, WebSocket clients stay connected. Redis
    comes back: /healthz ok, the nodes resubscribe by themselves and new
    events flow, none twice."""
    with Redis() as redis, Nodes(redis, 2, "--redis-timeout=500ms") as nodes:
        async def run():
            ws = await ws_connect(nodes[1])
            await ws_subscribe(ws, "d.t")
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:d.t")[1] == 1, 10,
                     "subscribed")
            a = publish(nodes[0], "d.t", {"n": 1})
            eq((await collect(ws, 1))[0]["id"], a, "before")
            redis.stop()
            wait_for(lambda: healthz(nodes[0])["status"] == "degraded", 10, "degraded")
            h = healthz(nodes[0])
            eq(h["_status"], 200, "degraded still serves (connections stay)")
            check("redis 127.0.0.1:" in h["reason"], h["reason"])
            t0 = time.monotonic()
            r = http(nodes[0], "POST", "/api/realtime/publish", {"topic": "d.t", "data": 2})
            eq(r.status, 503, "publish while down")
            eq(r.json()["error"]["code"], "broker_unavailable", "code")
            check(time.monotonic() - t0 < 2.0, "answered at once, not after a hang")
            c = cluster_stats(nodes[0])
            check(c["redis_up"] is False and "not connected" in c["reason"], f"stats: {c}")
            check(c["publish_refused"] >= 1, f"refusal counted: {c}")
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)  # still connected
            redis.start()
            for srv in nodes:
                wait_for(lambda srv=srv: healthz(srv)["status"] == "ok", 20, "ok again")
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:d.t")[1] == 1, 20,
                     "resubscribed after the restart")
            ids = [publish(nodes[0], "d.t", {"n": n}) for n in range(3, 13)]
            got = await collect(ws, 10)
            eq([g["id"] for g in got], ids, "after the restart, once each")
            await no_more_events(ws)
            await ws.close()

        run_async(run(), 90)


def test_cluster_lost_subscriber_connections_close_the_gap_from_history():
    """The nodes' subscriber connections are killed (CLIENT KILL TYPE pubsub)
    while a publisher keeps publishing: each node reconnects, resubscribes and
    reads what it missed from the history, so the subscribers on both nodes
    get every event once, in order."""
    with Redis() as redis, Nodes(redis, 2, "--history-size=5000") as nodes:
        topic = "g.t"
        n_events = 600

        async def run():
            subs = []
            for srv in nodes:
                ws = await ws_connect(srv)
                await ws_subscribe(ws, topic)
                subs.append(ws)
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:" + topic)[1] == 2, 10,
                     "subscribed")
            ids = []

            def publisher():
                for n in range(n_events):
                    ids.append(publish(nodes[0], topic, {"n": n}))
                    if n in (150, 300, 450):
                        redis.command("CLIENT", "KILL", "TYPE", "pubsub")

            th = threading.Thread(target=publisher)
            th.start()
            results = await asyncio.gather(*(collect(ws, n_events, 60) for ws in subs))
            th.join()
            for ws in subs:
                await no_more_events(ws)
                await ws.close()
            return ids, results

        ids, results = run_async(run(), 120)
        for r in results:
            eq([g["id"] for g in r], ids, "every event once, in order")
        for srv in nodes:
            c = cluster_stats(srv)
            check(c["gap_filled"] > 0 and c["reconnects"] >= 1, f"the stats show the gaps: {c}")
    # the gaps were real: each node read missed events from the history
    for srv in nodes:
        m = re.search(r"event=cluster_stopped .* gap_filled=(\d+)", srv.log())
        check(m and int(m.group(1)) > 0, "a gap closed from the history: " + (m.group(0) if m else srv.log()[-500:]))


def test_cluster_configuration_errors_are_clear():
    """broker=redis needs redis_url; a malformed URL is named; redis_url with
    the memory broker is a mistake. Each exits 2 with the reason."""
    cases = [
        (["--broker=redis"], "broker=redis needs redis_url"),
        (["--broker=redis", "--redis-url=http://x:1"], "not a redis URL"),
        (["--broker=redis", "--redis-url=redis://127.0.0.1:99999"], "redis_url item 1"),
        (["--redis-url=redis://127.0.0.1:6379"], "set broker=redis"),
    ]
    for args, want in cases:
        p = subprocess.run([Server.BINARY, "--port=0", "--listen-address=127.0.0.1"] + args,
                           capture_output=True, text=True, timeout=20)
        eq(p.returncode, 2, f"exit code of {args}: {p.stderr}")
        check(want in p.stderr, f"{args}: {p.stderr!r} should say {want!r}")


def test_cluster_node_starts_while_redis_is_down():
    """A node whose Redis is not there yet starts, says degraded, refuses
    publishes with 503, and becomes ok once Redis appears."""
    redis = Redis()
    try:
        srv = node(redis).start()
        try:
            h = healthz(srv)
            eq(h["status"], "degraded", "no redis yet")
            r = http(srv, "POST", "/api/realtime/publish", {"topic": "x.y", "data": 1})
            eq((r.status, r.json()["error"]["code"]), (503, "broker_unavailable"), "publish")
            redis.start()
            wait_for(lambda: healthz(srv)["status"] == "ok", 20, "ok once redis is up")
            publish(srv, "x.y", 1)
        finally:
            srv.stop()
    finally:
        redis.close()


SECRET = "e2e-cluster-hs256-secret-0123456789abcdef"


def tok(sub, ttl=600):
    import base64
    import hashlib
    import hmac

    def b64u(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    now = int(time.time())
    h = b64u(b'{"alg":"HS256","typ":"JWT"}')
    c = b64u(json.dumps({"sub": sub, "iat": now, "exp": now + ttl}).encode())
    sig = hmac.new(SECRET.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64u(sig)}"


def test_cluster_targeted_delivery_reaches_users_on_every_node():
    """alice is connected to nodes 1 and 3, bob to node 2. A topic event with
    exclude_user_id, a user-targeted event (user_ids), a broadcast and a
    notification, each sent on one node, reach exactly the right connections
    on all three nodes."""
    with Redis() as redis, Nodes(redis, 3, f"--jwt-secret={SECRET}") as nodes:
        async def run():
            a1 = await ws_connect(nodes[0], f"/api/realtime/ws?token={tok('alice')}")
            a3 = await ws_connect(nodes[2], f"/api/realtime/ws?token={tok('alice')}")
            b2 = await ws_connect(nodes[1], f"/api/realtime/ws?token={tok('bob')}")
            every = [a1, a3, b2]
            for ws in every:
                await ws_next(ws, type_="authenticated")
                await ws_subscribe(ws, "team.chat")
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:team.chat")[1] == 3, 10,
                     "three nodes subscribed")
            # a topic event that alice's own connections must not get
            publish(nodes[1], "team.chat", {"from": "alice"}, exclude_user_id="alice")
            eq((await ws_next(b2, type_="event"))["data"]["data"], {"from": "alice"}, "bob")
            # user-targeted, no topic: alice on both her nodes, not bob
            r = http(nodes[1], "POST", "/api/realtime/publish",
                     {"user_ids": ["alice"], "type": "dm", "data": {"text": "hi"}})
            eq(r.status, 202, f"user event: {r}")
            for ws in (a1, a3):
                m = await ws_next(ws, type_="event")
                eq(m["data"]["data"], {"text": "hi"}, "alice's user event")
            # a broadcast to every connection, from node 3
            r = http(nodes[2], "POST", "/api/realtime/events",
                     {"event": "maintenance", "data": "in 5 minutes"})
            eq(r.status, 201, f"broadcast: {r}")
            for ws in every:
                m = await ws_next(ws, type_="event")
                eq(m["data"]["data"], "in 5 minutes", "the broadcast on every node")
            # a notification for bob created on node 1
            r = http(nodes[0], "POST", "/api/realtime/notifications",
                     {"title": "t", "message": "m", "recipients": ["bob"]})
            eq(r.status, 201, f"notification: {r}")
            m = await ws_next(b2, type_="notification")
            eq(m["data"]["title"], "t", "bob's notification on node 2")
            for ws in every:
                await no_more_events(ws)
                await ws.close()

        run_async(run(), 60)


def presence_of(srv, topic):
    r = http(srv, "GET", f"/api/realtime/presence/{topic}")
    eq(r.status, 200, f"presence listing: {r}")
    return r.json()


def test_cluster_presence_across_nodes_and_a_dead_nodes_expiry():
    """alice on node 1 and bob on node 2 are both listed on node 3; joined is
    announced once per user (first connection anywhere), left once (last one
    anywhere); after node 2 is killed (-9), bob leaves within presence_ttl plus
    a refresh period and a presence.left is published for him."""
    ttl = 3.0
    with Redis() as redis, Nodes(redis, 3, f"--jwt-secret={SECRET}", "--presence=true",
                                 f"--presence-ttl={int(ttl)}s") as nodes:
        async def run():
            watcher = await ws_connect(nodes[2])
            await ws_subscribe(watcher, "room.1")
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:room.1")[1] == 1, 10,
                     "watcher subscribed")

            async def join(srv, user):
                ws = await ws_connect(srv, f"/api/realtime/ws?token={tok(user)}")
                await ws_next(ws, type_="authenticated")
                await ws_subscribe(ws, "room.1")
                return ws

            async def presence_event():
                """The next presence event about a named user (the watcher is an
                anonymous member of its own)."""
                while True:
                    m = await ws_next(watcher, type_="event")
                    if m["data"]["type"].startswith("presence.") and m["data"]["data"]["user_id"]:
                        return m["data"]["type"], m["data"]["data"]["user_id"]

            a1 = await join(nodes[0], "alice")
            b2 = await join(nodes[1], "bob")
            got = {await presence_event(), await presence_event()}
            eq(got, {("presence.joined", "alice"), ("presence.joined", "bob")}, "joined")
            a2 = await join(nodes[1], "alice")  # a second connection: no new joined
            lst = presence_of(nodes[2], "room.1")
            users = {u["user_id"]: u["connections"] for u in lst["users"] if u["user_id"]}
            eq(users, {"alice": 2, "bob": 1}, "listed on node 3")
            await a1.close()  # alice is still on node 2: no left
            wait_for(lambda: {u["user_id"]: u["connections"] for u in
                              presence_of(nodes[0], "room.1")["users"]
                              if u["user_id"]}.get("alice") == 1, 10, "alice down to one")
            await a2.close()
            # the next named event: no joined for alice's second connection, no
            # left for her first one
            eq(await presence_event(), ("presence.left", "alice"), "alice's last connection")
            # node 2 dies with bob on it
            nodes[1].proc.kill()
            nodes[1].proc.wait()
            nodes[1].proc = None
            t0 = time.monotonic()
            eq(await asyncio.wait_for(presence_event(), 3 * ttl), ("presence.left", "bob"),
               "bob's node died")
            took = time.monotonic() - t0
            check(took <= ttl + ttl / 3 + 1.0, f"expired after {took:.1f}s")
            users = {u["user_id"] for u in presence_of(nodes[0], "room.1")["users"]}
            check("bob" not in users and "alice" not in users, users)
            await watcher.close()

        run_async(run(), 60)


def test_cluster_topics_sharded_over_two_redis_instances():
    """With two redis_url entries every topic lives on exactly one instance (a
    jump hash of the topic), both instances get some of 40 topics, and
    delivery, patterns and history work for topics on either."""
    with Redis() as r1, Redis() as r2, Nodes([r1, r2], 2) as nodes:
        topics = [f"shard.t{i}" for i in range(40)]

        async def run():
            ws = await ws_connect(nodes[1])
            await ws_subscribe(ws, "shard.*")
            wait_for(lambda: r1.command("PUBSUB", "NUMPAT") == 1 and
                     r2.command("PUBSUB", "NUMPAT") == 1, 10, "the pattern on both instances")
            ids = {t: publish(nodes[0], t, {"t": t}) for t in topics}
            got = await collect(ws, len(topics))
            await no_more_events(ws)
            await ws.close()
            return ids, got

        ids, got = run_async(run())
        eq(sorted(g["id"] for g in got), sorted(ids.values()), "every topic's event, once")
        on1 = {k[len("rc:t:"):] for k in r1.command("KEYS", "rc:t:*")}
        on2 = {k[len("rc:t:"):] for k in r2.command("KEYS", "rc:t:*")}
        eq(on1 | on2, set(topics), "every topic on an instance")
        eq(on1 & on2, set(), "no topic on both")
        check(len(on1) >= 5 and len(on2) >= 5, f"spread: {len(on1)} / {len(on2)}")
        for t in (sorted(on1)[0], sorted(on2)[0]):
            r = http(nodes[1], "GET", f"/api/realtime/history/{t}")
            eq([e["id"] for e in r.json()["events"]], [ids[t]], f"history of {t}")


def test_cluster_durable_subscription_changes_reach_every_node():
    """A durable subscription created on node 1 for alice applies at once to
    her connection on node 2 (`subscribed`, then the topic's events reach it);
    paused on node 1, it is taken off there too (`unsubscribed`, no more
    events). The store stays per node (SQLite): only the live change crosses."""
    with Redis() as redis, Nodes(redis, 2, f"--jwt-secret={SECRET}") as nodes:
        async def run():
            ws = await ws_connect(nodes[1], f"/api/realtime/ws?token={tok('alice')}")
            await ws_next(ws, type_="authenticated")
            r = http(nodes[0], "POST", "/api/realtime/subscriptions/topic",
                     {"user_id": "alice", "topic": "alerts.eu"})
            eq(r.status, 201, f"create: {r}")
            sid = r.json()["id"]
            m = await ws_next(ws, type_="subscribed")
            eq(m["data"]["durable_subscription"], sid, "applied on node 2")
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:alerts.eu")[1] == 1, 10,
                     "node 2 subscribed the channel")
            eid = publish(nodes[0], "alerts.eu", {"level": 3})
            m = await ws_next(ws, type_="event")
            eq((m["data"]["id"], m["data"]["data"]), (eid, {"level": 3}), "event through it")
            r = http(nodes[0], "PATCH", f"/api/realtime/subscriptions/{sid}/status",
                     {"status": "paused"})
            eq(r.status, 200, f"pause: {r}")
            m = await ws_next(ws, type_="unsubscribed")
            eq((m["data"]["durable_subscription"], m["data"]["reason"]), (sid, "paused"), "paused")
            publish(nodes[0], "alerts.eu", {"level": 4})
            await no_more_events(ws)
            await ws.close()

        run_async(run(), 60)


def test_cluster_patterns_past_redis_max_patterns_use_one_catch_all():
    """Past redis_max_patterns distinct globs a node receives further patterns
    through one catch-all PSUBSCRIBE: Redis keeps few patterns (each publish
    stays cheap), the node's trie still delivers exactly what matches, and
    the catch-all goes when its last pattern does."""
    with Redis() as redis, Nodes(redis, 2, "--redis-max-patterns=1") as nodes:
        async def run():
            ws = await ws_connect(nodes[1])
            sa = await ws_subscribe(ws, "a.*")
            sb = await ws_subscribe(ws, "b.>")
            sc = await ws_subscribe(ws, "c.*.z")
            wait_for(lambda: redis.command("PUBSUB", "NUMPAT") == 2, 10, "a.* and the catch-all")
            for t in ("a.x", "b.y.z", "c.q.z", "c.q.y", "d.x", "a.x.y"):
                publish(nodes[0], t, {"t": t})
            got = await collect(ws, 3)
            await no_more_events(ws)
            eq(sorted((g["topic"], g["subscription"]) for g in got),
               sorted([("a.x", sa), ("b.y.z", sb), ("c.q.z", sc)]), "exactly what matches")
            eq(cluster_stats(nodes[1])["patterns_coarsened"], 2, "two patterns coarsened")
            await ws.close()
            wait_for(lambda: redis.command("PUBSUB", "NUMPAT") == 0, 10, "all released")

        run_async(run())


def test_cluster_redis_restart_with_persistence_keeps_ids_and_history():
    """A Redis with its AOF restarted mid-stream: publishes answer 503 while it
    is down; after it, the topic keeps its epoch and sequence (no history_gap
    for old cursors), the subscriber gets every event once, and a client that
    resumes from before the restart gets what it missed from the history."""
    with Redis(persist=True) as redis, Nodes(redis, 2, "--redis-timeout=500ms") as nodes:
        async def run():
            ws = await ws_connect(nodes[1])
            await ws_subscribe(ws, "p.t")
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:p.t")[1] == 1, 10, "subbed")
            before = [publish(nodes[0], "p.t", {"n": n}) for n in range(5)]
            redis.stop()
            wait_for(lambda: http(nodes[0], "POST", "/api/realtime/publish",
                                  {"topic": "p.t", "data": 0}).status == 503, 10, "503 while down")
            redis.start()
            wait_for(lambda: healthz(nodes[0])["status"] == "ok", 20, "back")
            wait_for(lambda: redis.command("PUBSUB", "NUMSUB", "rc:e:p.t")[1] == 1, 20,
                     "resubscribed")
            after = [publish(nodes[0], "p.t", {"n": n}) for n in range(5, 10)]
            eq([seq_of(i) for i in before + after], list(range(1, 11)), "one sequence")
            check(len({i.rsplit("-", 1)[0] for i in before + after}) == 1, "one epoch")
            got = await collect(ws, 10)
            eq([g["id"] for g in got], before + after, "every event once")
            await no_more_events(ws)
            ws2 = await ws_connect(nodes[0])
            r = await ws_request(ws2, {"action": "subscribe", "topic": "p.t", "since": before[1],
                                       "id": 1})
            eq(r["type"], "subscribed", "resume across the restart")
            got2 = await collect(ws2, 8)
            eq([g["id"] for g in got2], before[2:] + after, "replayed from the history")
            await ws.close()
            await ws2.close()

        run_async(run(), 60)


def test_cluster_subscribed_means_events_after_it_arrive():
    """"subscribed" on a node that had no subscription of the topic comes only
    once Redis carries the topic's channel to that node: an event published
    on another node right after it always arrives (40 fresh topics), also
    when the node's subscriber connection to Redis was just lost and is being
    made again (every other round)."""
    with Redis() as redis, Nodes(redis, 2) as nodes:
        async def run():
            ws = await ws_connect(nodes[1])
            for i in range(40):
                t = f"fresh.t{i}"
                if i % 2:
                    redis.command("CLIENT", "KILL", "TYPE", "pubsub")
                await ws_subscribe(ws, t)
                eid = publish(nodes[0], t, {"i": i})
                m = await ws_next(ws, type_="event", timeout=5)
                eq((m["data"]["topic"], m["data"]["id"]), (t, eid), f"round {i}")
            await ws.close()

        run_async(run(), 60)
