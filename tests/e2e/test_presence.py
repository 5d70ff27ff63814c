"""Presence: who is subscribed to a topic, joined/left events, listings; and an
SSE resume with Node's eventsource (Last-Event-ID)."""
import asyncio
import json
import random

from harness import (Server, check, eq, http, node, publish, run_async, shard_of, wait_for,
                     ws_connect, ws_next, ws_request)


SECRET = "presence-test-secret-0123456789abcdef"


def presence(srv, topic):
    r = http(srv, "GET", f"/api/realtime/presence/{topic}?limit=1000")
    eq(r.status, 200, f"presence status: {r}")
    return r.json()


def test_presence_joined_left_exact_after_500_random_connects_and_disconnects():
    """Named users (JWT) spread over both shards connect and disconnect at random
    (500 steps); a watcher counts presence.joined / presence.left events; both
    the event counts and the final listing match a model of who is there."""
    with Server("--presence=true", f"--jwt-secret={SECRET}") as srv:
        topic = "room.lobby"

        async def go():
            watcher = await ws_connect(srv)
            await ws_request(watcher, {"action": "subscribe", "topic": topic})
            rng = random.Random(7)
            open_conns = []  # (user, ws)
            model = {}  # user -> connection count
            joined = left = 0
            shards_seen = set()
            for _ in range(500):
                if open_conns and (rng.random() < 0.45 or len(open_conns) > 40):
                    user, ws = open_conns.pop(rng.randrange(len(open_conns)))
                    await ws.close()
                    model[user] -= 1
                    if model[user] == 0:
                        del model[user]
                        left += 1
                else:
                    user = f"u{rng.randrange(12)}"
                    tok = hs256(SECRET, {"sub": user})
                    ws = await ws_connect(srv, f"/api/realtime/ws?token={tok}")
                    await ws_next(ws, type_="authenticated")
                    shards_seen.add(shard_of(ws.connection_id))
                    await ws.send(json.dumps({"action": "subscribe", "topic": topic, "id": 1}))
                    await ws_next(ws, type_="subscribed")
                    open_conns.append((user, ws))
                    model[user] = model.get(user, 0) + 1
                    if model[user] == 1:
                        joined += 1
            # the watcher's own (anonymous) join came first
            counts = {"presence.joined": 0, "presence.left": 0}
            while counts["presence.joined"] < joined + 1 or counts["presence.left"] < left:
                m = await ws_next(watcher, type_="event", timeout=30)
                if m["data"]["type"] in counts:
                    counts[m["data"]["type"]] += 1
            eq(counts, {"presence.joined": joined + 1, "presence.left": left}, "event counts")
            # and nothing more: a marker event comes next
            publish(srv, topic, {"marker": True})
            m = await ws_next(watcher, type_="event")
            eq(m["data"]["data"], {"marker": True}, "no extra presence events")
            body = presence(srv, topic)
            named = {u["user_id"]: u["connections"] for u in body["users"] if u["user_id"]}
            eq(named, model, "listing equals the model")
            eq(body["total_connections"], len(open_conns) + 1, "connections (+ the watcher)")
            for _, ws in open_conns:
                await ws.close()
            return shards_seen

        shards_seen = run_async(go(), timeout=300)
        check(shards_seen == {0, 1}, f"connections on both shards: {shards_seen}")


def hs256(secret, claims):
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_presence_users_over_shards_with_tokens():
    """Named users with several connections each over both shards: one joined
    event per user (first connection), one left per user (last), exact counts
    in the listing and in the presence action."""
    with Server("--presence=true", f"--jwt-secret={SECRET}") as srv:
        topic = "room.team"
        users = ["alice", "bob", "carol"]

        async def go():
            watcher = await ws_connect(srv)
            await ws_request(watcher, {"action": "subscribe", "topic": topic})
            conns = []
            shards = set()
            for u in users:
                tok = hs256(SECRET, {"sub": u})
                for _ in range(3):
                    ws = await ws_connect(srv, f"/api/realtime/ws?token={tok}")
                    auth = await ws_next(ws, type_="authenticated")
                    eq(auth["data"]["user_id"], u, "authenticated")
                    r = await ws_request(ws, {"action": "subscribe", "topic": topic})
                    eq(r["type"], "subscribed", "subscribe")
                    conns.append((u, ws))
                    shards.add(shard_of(ws.connection_id))
            check(shards == {0, 1}, f"both shards: {shards}")
            seen = []
            while len([e for e in seen if e["type"] == "presence.joined"]) < 4:
                m = await ws_next(watcher, type_="event")
                seen.append(m["data"])
            joined_users = sorted(e["data"]["user_id"] or "anon" for e in seen
                                  if e["type"] == "presence.joined")
            # the watcher's own join comes first (anonymous), then one per user
            eq(sorted(u for u in joined_users if u != "anon"), users, "one joined per user")
            body = presence(srv, topic)
            eq(body["total_connections"], 10, "9 user connections + the watcher")
            named = {u["user_id"]: u["connections"] for u in body["users"] if u["user_id"]}
            eq(named, {u: 3 for u in users}, "connections per user")
            await conns[0][1].send(json.dumps({"action": "presence", "topic": topic, "id": "p"}))
            r = await ws_next(conns[0][1], type_="presence")
            eq((r["id"], r["data"]["total_users"]), ("p", 4), "action")
            # bob closes two connections: no left; the third: left
            bobs = [ws for u, ws in conns if u == "bob"]
            for ws in bobs[:2]:
                await ws.close()
            publish(srv, topic, {"marker": 1})
            m = await ws_next(watcher, type_="event")
            eq(m["data"]["data"], {"marker": 1}, "no presence.left before bob's last connection")
            await bobs[2].close()
            m = await ws_next(watcher, type_="event")
            eq((m["data"]["type"], m["data"]["data"]["user_id"]), ("presence.left", "bob"), "left")
            body = presence(srv, topic)
            eq(body["total_users"], 3, "users after bob left")

        run_async(go(), timeout=120)


def test_presence_not_enabled_and_bad_requests():
    with Server() as srv:
        r = http(srv, "GET", "/api/realtime/presence/room.x")
        eq((r.status, r.json()["error"]["code"]), (404, "not_enabled"), "not enabled")
    with Server("--presence=true") as srv:
        r = http(srv, "GET", "/api/realtime/presence/a.*")
        eq(r.status, 400, "pattern")
        r = http(srv, "GET", "/api/realtime/presence/room.x?limit=0")
        eq(r.status, 400, "limit")
        body = presence(srv, "room.empty")
        eq((body["total_users"], body["users"]), (0, []), "empty topic")


def test_sse_resume_with_node_eventsource_last_event_id():
    """Node's eventsource sends Last-Event-ID like a reconnecting browser: it
    gets exactly the events after that id, in order, then live ones."""
    with Server("--history-size=100") as srv:
        ids = [publish(srv, "es.t", {"n": n}) for n in range(1, 31)]
        out = node("sse_resume.js", f"http://127.0.0.1:{srv.port}/api/realtime/events?topic=es.t",
                   ids[19], 10, 30)
        eq(out["errors"], [], "errors")
        eq([e["data"]["data"]["n"] for e in out["events"]], list(range(21, 31)), "replayed")
        eq([e["lastEventId"] for e in out["events"]], ids[20:], "ids")
