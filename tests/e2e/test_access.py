"""Access rules on durable user subscriptions and presence, their per-user bound,
payload_filter validation, and greetings that wait for a connection's durable
subscriptions (issue 11, items 2, 3, 7, 9, 10), against the real binary with a
real SQLite store: JWTs are made here with hmac/hashlib; clients are the
websockets package and http.client."""

import asyncio
import base64
import hashlib
import hmac
import http.client as httpclient
import json
import shutil
import tempfile
import time
import urllib.parse

from harness import (Server, TestFailure, eq, http, publish, run_async, wait_for, ws_connect,
                     ws_next, ws_request, sse_record)

SECRET = "e2e-access-hs256-secret-0123456789abcdef"  # >= 32 bytes
KEY = "access-backend-key-0123456789abcdef"
SP = "/api/realtime/subscriptions"


# ---- helpers ------------------------------------------------------------------------------------

def b64u(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def tok(sub, ttl=600, **extra):
    now = int(time.time())
    h = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    cl = {"sub": sub, "iat": now, "exp": now + ttl}
    cl.update(extra)
    c = b64u(json.dumps(cl, separators=(",", ":")).encode())
    sig = hmac.new(SECRET.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64u(sig)}"


def call(srv, method, path, body=None, token=None, key=None):
    hdrs = {}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    if key:
        hdrs["X-API-Key"] = key
    return http(srv, method, path, body, headers=hdrs)


def err(r):
    e = r.json()["error"]
    return e["code"], e["message"]


def create(srv, body, token=None, kind="topic", key=None):
    return call(srv, "POST", f"{SP}/{kind}", body, token=token, key=key)


def must_create(srv, body, token=None, kind="topic", key=None):
    r = create(srv, body, token, kind, key)
    eq(r.status, 201, f"create {body}: {r}")
    return r.json()


def counters(srv, key=None):
    hdrs = {"Authorization": f"Bearer {key}"} if key else None
    r = http(srv, "GET", "/api/realtime/stats", headers=hdrs)
    eq(r.status, 200, f"stats: {r}")
    return r.json()["counters"]


class DataDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="rc-access-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


def server(data_dir, *args, shards=2):
    return Server(f"--data-dir={data_dir}", f"--jwt-secret={SECRET}", *args, shards=shards)


async def ws_user(srv, sub, **claims):
    """A WebSocket with ?token=: connected, then authenticated."""
    ws = await ws_connect(srv, "/api/realtime/ws?token=" + urllib.parse.quote(tok(sub, **claims)))
    m = await ws_next(ws)
    eq(m["type"], "authenticated", f"answer to ?token= for {sub}")
    return ws


async def next_event(ws, what, timeout=10.0):
    """The next event or error (skipping pings and subscription announcements)."""
    while True:
        m = await ws_next(ws, timeout)
        if m["type"] in ("event", "error"):
            return m
        if m["type"] not in ("ping", "subscribed", "unsubscribed"):
            raise TestFailure(f"{what}: unexpected {m}")


class SSE:
    """A minimal SSE reader over http.client."""

    def __init__(self, srv, query):
        self.conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        self.conn.request("GET", "/api/realtime/events" + query,
                          headers={"Accept": "text/event-stream"})
        self.sock = self.conn.sock
        self.r = self.conn.getresponse()
        eq(self.r.status, 200, "SSE status")

    def record(self, timeout=10.0):
        return sse_record(self.r.fp, self.sock, timeout)

    def close(self):
        self.r.close()
        self.conn.close()
        self.sock.close()


# ---- item 2: durable subscriptions obey the topic rules --------------------------------------

def test_access_durable_subscription_refused_like_a_live_subscribe():
    """bob's own JWT cannot create a durable subscription on alice's personal topics or
    on a subscribe=none rule (403 naming the reason), for topic and resource kinds; a
    backend cannot either, for him; his own topics are fine; and nothing of alice's
    reaches him."""
    with DataDir() as d, server(d, "--rules=admin.> subscribe=none") as srv:
        bob = tok("bob")
        for body, kind in (({"topic": "user.alice.>"}, "topic"),
                           ({"topic": "user.alice.inbox"}, "topic"),
                           ({"topic": "user.*.inbox"}, "topic"),
                           ({"topic": "admin.>"}, "topic"),
                           ({"topic": ">"}, "topic"),
                           ({"resource_type": "admin", "resource_id": "reports"}, "resource")):
            r = create(srv, body, token=bob, kind=kind)
            eq(r.status, 403, f"bob creates {body}: {r}")
            code, msg = err(r)
            eq(code, "forbidden", f"code for {body}")
            if "user." in json.dumps(body):
                eq("personal topic of another user" in msg, True, f"message names why: {msg}")
            elif body.get("topic") != ">":
                eq("subscribe=none" in msg, True, f"message names the rule: {msg}")
        # a backend acting for bob is held to the same rules
        for topic in ("user.alice.inbox", "admin.reports"):
            r = create(srv, {"user_id": "bob", "topic": topic})
            eq((r.status, err(r)[0]), (403, "forbidden"), f"backend for bob on {topic}: {r}")
        eq(counters(srv)["forbidden"], 8, "refusals counted as forbidden")
        own = must_create(srv, {"topic": "user.bob.inbox"}, token=bob)
        must_create(srv, {"user_id": "bob", "topic": "news.>"})
        r = call(srv, "GET", SP, token=bob)
        eq(sorted(s["topic"] for s in r.json()), ["news.>", "user.bob.inbox"],
           "only the allowed ones were stored")

        async def go():
            ws = await ws_user(srv, "bob")
            publish(srv, "user.alice.inbox", {"n": "alice's"})
            publish(srv, "admin.reports", {"n": "admin"})
            publish(srv, "user.bob.inbox", {"n": "bob's"})
            m = await next_event(ws, "bob")
            eq((m["type"], m["data"]["topic"], m["data"]["data"]),
               ("event", "user.bob.inbox", {"n": "bob's"}), "bob gets only his own event")
            await ws.close()

        run_async(go())
        eq(own["user_id"], "bob", "created for the token's user")


def test_access_durable_subscription_rechecked_when_applied():
    """A durable subscription that the rules refuse by the time it is applied (the
    rules changed over a restart; a claim rule the user's token does not satisfy) is
    not applied: the connection gets an error record naming it, the server logs and
    counts it, and its events never arrive."""
    with DataDir() as d:
        with server(d) as srv:
            bad = must_create(srv, {"topic": "admin.reports"}, token=tok("bob"))
            must_create(srv, {"topic": "user.bob.inbox"}, token=tok("bob"))
        with server(d, "--rules=admin.> subscribe=none", "--rules=team.> subscribe=claim") as srv:
            # a backend may create a claim-rule subscription for bob: the rule is decided
            # against the token of each connection it is applied to
            team = must_create(srv, {"user_id": "bob", "topic": "team.red"})

            async def go():
                ws = await ws_user(srv, "bob")
                refused = {}
                while len(refused) < 2:
                    m = await ws_next(ws)
                    if m["type"] == "error":
                        refused[m["data"]["durable_subscription"]] = m["data"]
                eq(sorted(refused), sorted([bad["id"], team["id"]]), "both refused, by id")
                eq(refused[bad["id"]]["code"], "forbidden", "error code")
                eq("subscribe=none" in refused[bad["id"]]["message"], True,
                   f"names the rule: {refused[bad['id']]}")
                eq(refused[team["id"]]["topic"], "team.red", "names the topic")
                publish(srv, "admin.reports", {"n": "admin"})
                publish(srv, "team.red", {"n": "team"})
                publish(srv, "user.bob.inbox", {"n": "bob's"})
                m = await next_event(ws, "bob")
                eq((m["type"], m["data"]["topic"]), ("event", "user.bob.inbox"),
                   f"only the allowed subscription delivers: {m}")
                await ws.close()
                # a token whose topics claim covers team.red gets that one applied
                ws = await ws_user(srv, "bob", topics=["team.>"])
                publish(srv, "team.red", {"n": "team"})
                while True:
                    m = await ws_next(ws)
                    if m["type"] == "event":
                        break
                eq(m["data"]["topic"], "team.red", "applied with the claim")
                await ws.close()

            run_async(go())
            eq(counters(srv)["durable_refused"], 3, "counted (2 + 1 on the claim connection)")
            # one line per shard and 10 s, naming one of them and the count
            wait_for(lambda: srv.log_has(r"durable_subscription_refused .*(%s|%s) .*refused=\d+"
                                         % (bad["id"], team["id"])), 5, "the log line")


# ---- item 3: presence ------------------------------------------------------------------------

def test_access_presence_of_another_users_personal_topic_refused():
    with DataDir() as d, server(d, "--presence=true", "--rules=admin.> subscribe=none",
                                f"--api-keys={KEY}") as srv:
        async def go():
            alice = await ws_user(srv, "alice")
            bob = await ws_user(srv, "bob")
            r = await ws_request(alice, {"action": "subscribe", "topic": "user.alice.inbox",
                                         "id": 1})
            eq(r["type"], "subscribed", "alice on her inbox")
            for topic in ("user.alice.inbox", "admin.room"):
                r = await ws_request(bob, {"action": "presence", "topic": topic, "id": "p"})
                eq((r["type"], r["data"]["code"], r["data"].get("id")), ("error", "forbidden", "p"),
                   f"bob asks who is on {topic}: {r}")
                eq(r["data"]["message"].startswith("presence needs the right to subscribe"),
                   True, f"message: {r}")
            await alice.send(json.dumps({"action": "presence", "topic": "user.alice.inbox",
                                         "id": "q"}))
            r = await ws_next(alice, type_="presence")
            eq([u.get("user_id") for u in r["data"]["users"]], ["alice"], "the listing")
            # HTTP: a user token is not a backend key
            r = call(srv, "GET", "/api/realtime/presence/user.alice.inbox", token=tok("bob"))
            eq(r.status in (401, 403), True, f"bob's JWT on the HTTP presence API: {r}")
            r = call(srv, "GET", "/api/realtime/presence/user.alice.inbox", key=KEY)
            eq(r.status, 200, f"a backend key: {r}")
            await alice.close()
            await bob.close()

        run_async(go())


# ---- item 7: durable subscriptions per user ------------------------------------------------

def test_access_max_user_subscriptions():
    with DataDir() as d, server(d, "--max-user-subscriptions=3") as srv:
        bob = tok("bob")
        ids = [must_create(srv, {"topic": f"news.{i}"}, token=bob)["id"] for i in range(2)]
        r = call(srv, "PATCH", f"{SP}/{ids[0]}/status", {"status": "paused"}, token=bob)
        eq(r.status, 200, f"pause: {r}")  # paused ones count too
        ids.append(must_create(srv, {"user_id": "bob", "resource_type": "doc",
                                     "resource_id": "7"}, kind="resource")["id"])
        for body, token, kind in (({"topic": "news.9"}, bob, "topic"),
                                  ({"user_id": "bob", "topic": "news.9"}, None, "topic"),
                                  ({"resource_type": "doc", "resource_id": "8"}, bob,
                                   "resource")):
            r = create(srv, body, token=token, kind=kind)
            eq(r.status, 409, f"the 4th subscription: {r}")
            code, msg = err(r)
            eq(code, "too_many_subscriptions", "code")
            eq("max_user_subscriptions" in msg, True, f"message names the limit: {msg}")
        eq(counters(srv)["user_subscription_refusals"], 3, "counted")
        must_create(srv, {"topic": "news.1"}, token=tok("carol"))  # per user
        r = call(srv, "DELETE", f"{SP}/{ids[1]}", token=bob)
        eq(r.status, 204, f"delete: {r}")
        must_create(srv, {"topic": "news.9"}, token=bob)


# ---- item 9: the greeting waits for the durable subscriptions -------------------------------

RACE_ROUNDS = 30
FILLER = 120  # the target lands on the second page of the load


def test_access_no_event_missed_right_after_the_greeting():
    """A user with 121 durable subscriptions (two pages to load): 30 times, connect
    (token at connect, auth action, SSE), publish as soon as the greeting arrives:
    every event arrives."""
    with DataDir() as d, server(d) as srv:
        u = tok("racer")
        must_create(srv, {"topic": "race.target"}, token=u)
        for i in range(FILLER):
            must_create(srv, {"topic": f"race.filler.{i}"}, token=u)

        async def first_event(ws, n, what):
            while True:
                m = await ws_next(ws, 10)
                if m["type"] == "event":
                    eq(m["data"]["data"], {"n": n}, f"{what} round {n}")
                    return
                if m["type"] not in ("subscribed", "ping"):
                    raise TestFailure(f"{what} round {n}: unexpected {m}")

        async def go():
            for n in range(RACE_ROUNDS):
                ws = await ws_connect(srv, "/api/realtime/ws?token=" + urllib.parse.quote(u))
                publish(srv, "race.target", {"n": n})  # right after connected
                m = await ws_next(ws)
                eq(m["type"], "authenticated", "after connected")
                await first_event(ws, n, "token at connect")
                await ws.close()
            for n in range(RACE_ROUNDS):
                ws = await ws_connect(srv)
                r = await ws_request(ws, {"action": "auth", "token": u, "id": "a"})
                eq((r["type"], r.get("id")), ("authenticated", "a"), "auth action")
                publish(srv, "race.target", {"n": n})
                await first_event(ws, n, "auth action")
                await ws.close()

        run_async(go())
        for n in range(RACE_ROUNDS):
            s = SSE(srv, "?token=" + urllib.parse.quote(u))
            rec = s.record()
            eq(rec.get("event"), "connection", f"first SSE record: {rec}")
            publish(srv, "race.target", {"n": n})
            while True:
                rec = s.record()
                if rec.get("event") not in ("subscribed", "ping"):
                    break
            eq(json.loads(rec["data"])["data"], {"n": n}, f"SSE round {n}: {rec}")
            s.close()
        eq(counters(srv)["durable_load_timeouts"], 0, "no greeting waited out its deadline")


# ---- item 10: payload_filter is compiled at creation -----------------------------------------

def test_access_bad_payload_filter_is_400_with_the_compilers_message():
    with DataDir() as d, server(d) as srv:
        bob = tok("bob")
        for body, kind in (({"topic": "news.x", "payload_filter": {"title": {"$regex": "^a"}}},
                            "topic"),
                           ({"resource_type": "doc", "resource_id": "1",
                             "payload_filter": {"n": {"$gt": [1]}}}, "resource")):
            r = create(srv, body, token=bob, kind=kind)
            eq(r.status, 400, f"bad filter {body}: {r}")
            code, msg = err(r)
            eq(code, "bad_filter", "code")
            eq("payload_filter" in msg and "filter:" in msg, True, f"the compiler's words: {msg}")
        r = create(srv, {"topic": "news.x", "payload_filter": {"title": {"$regex": "^a"}}},
                   token=bob)
        eq("$regex" in err(r)[1], True, f"names the operator: {err(r)}")
        eq(call(srv, "GET", SP, token=bob).json(), [], "nothing stored")
        must_create(srv, {"topic": "news.x", "payload_filter": {"n": {"$gt": 1}}}, token=bob)


def test_access_changes_during_the_load_are_not_lost():
    """A subscription paused while the connection's durable subscriptions are still
    loading (two pages) stays paused on that connection, whichever page it was on."""
    with DataDir() as d, server(d) as srv:
        u = tok("loader")
        for i in range(FILLER):
            must_create(srv, {"topic": f"race.filler.{i}"}, token=u)
        target = must_create(srv, {"topic": "race.paused"}, token=u)  # newest: page 1

        async def go():
            for n in range(10):
                body = {"status": "paused" if n % 2 == 0 else "active"}
                loop = asyncio.get_running_loop()
                conn = asyncio.ensure_future(
                    ws_connect(srv, "/api/realtime/ws?token=" + urllib.parse.quote(u)))
                r = await loop.run_in_executor(
                    None, lambda: call(srv, "PATCH", f"{SP}/{target['id']}/status", body, token=u))
                eq(r.status, 200, f"status change: {r}")
                ws = await conn
                m = await ws_next(ws)
                eq(m["type"], "authenticated", "greeting")
                publish(srv, "race.paused", {"n": n})
                publish(srv, "race.filler.0", {"marker": n})
                want_paused = n % 2 == 0
                while True:
                    m = await ws_next(ws)
                    if m["type"] != "event":
                        continue
                    if m["data"]["topic"] == "race.paused":
                        eq(want_paused, False, f"round {n}: an event through a paused one")
                        continue
                    eq(m["data"]["data"], {"marker": n}, "the marker")
                    break
                await ws.close()

        run_async(go())
