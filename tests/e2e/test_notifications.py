"""Durable notifications and user subscriptions (issue 7, seeds 001 and 004)
against the real binary with a real SQLite file in a temporary data_dir per
server: every endpoint's happy path and bad inputs, live delivery to every
connection of a recipient across shards, unread counts and mark-read, paging,
expiry, restart (SIGTERM) and crash (SIGKILL during a burst of creates), durable
subscriptions applied to live and later connections and removed on pause,
delete and expiry, and JWT clients confined to their own data."""

import asyncio
import base64
import datetime
import hashlib
import hmac
import http.client as httpclient
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse

from harness import (hs256_token, Server, TestFailure, check, eq, http, publish, run_async, shard_of,
                     wait_for, ws_connect, ws_next, ws_request, sse_record)

SECRET = "e2e-notifications-hs256-secret-0123456789"  # >= 32 bytes
NOTIFY_KEY = "notify-key-0123456789abcdef0123"
PUBLISH_KEY = "publish-key-0123456789abcdef012"
NP = "/api/realtime/notifications"
SP = "/api/realtime/subscriptions"


# ---- helpers ------------------------------------------------------------------------------------

class DataDir:
    """A temporary data_dir, removed at the end."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="rc-store-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


# A PostgreSQL server (pg_server.PgServer) to run these tests against with
# store=postgres instead of SQLite; test_store_pg.py sets it and runs every
# test here again. Each data_dir gets its own database, so a restart of the
# same data_dir finds its data again, as with SQLite.
PG = None


def store_server(data_dir, *args, shards=2):
    if PG is not None:
        db = "rc_" + "".join(c if c.isalnum() else "_" for c in os.path.basename(data_dir)).lower()
        if PG.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{db}'") == "0":
            PG.psql(f"CREATE DATABASE {db}")
        return Server(f"--data-dir={data_dir}", "--store=postgres", f"--postgres-url={PG.url(db)}",
                      *args, shards=shards)
    return Server(f"--data-dir={data_dir}", *args, shards=shards)


def tok(sub, ttl=600):
    return hs256_token(SECRET, sub, ttl)


def call(srv, method, path, body=None, token=None, key=None):
    hdrs = {}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    if key:
        hdrs["X-API-Key"] = key
    return http(srv, method, path, body, headers=hdrs)


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notif_body(recipients, title="New message", **extra):
    b = {"title": title, "message": "You have a new message from Jane",
         "recipients": recipients, "type": "message", "priority": "normal",
         "sender_id": "user-123"}
    b.update(extra)
    return b


def create_notif(srv, recipients, **extra):
    r = call(srv, "POST", NP, notif_body(recipients, **extra))
    eq(r.status, 201, f"create notification: {r}")
    return r.json()


def create_sub(srv, user, topic, **extra):
    body = {"user_id": user, "topic": topic}
    body.update(extra)
    r = call(srv, "POST", SP + "/topic", body)
    eq(r.status, 201, f"create topic subscription: {r}")
    return r.json()


def err_code(r):
    return r.json()["error"]["code"]


async def ws_user(srv, sub):
    ws = await ws_connect(srv, "/api/realtime/ws?token=" + urllib.parse.quote(tok(sub)))
    m = await ws_next(ws)
    eq(m["type"], "authenticated", "answer to ?token=")
    return ws


async def ws_quiet(ws, seconds):
    """True when nothing but pings arrives within seconds."""
    try:
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), seconds))
            if m.get("type") not in ("ping", "heartbeat"):
                return m
    except asyncio.TimeoutError:
        return None


class SSE:
    """A minimal SSE reader over http.client."""

    def __init__(self, srv, token):
        self.conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        self.conn.request("GET", "/api/realtime/events?token=" + urllib.parse.quote(token),
                          headers={"Accept": "text/event-stream"})
        self.sock = self.conn.sock
        self.r = self.conn.getresponse()
        eq(self.r.status, 200, "SSE status")
        rec = self.record()
        eq(rec.get("event"), "connection", "first SSE record")
        self.connection_id = json.loads(rec["data"])["connection_id"]

    def record(self, timeout=10.0):
        return sse_record(self.r.fp, self.sock, timeout)

    def event(self, name, timeout=10.0):
        while True:
            rec = self.record(timeout)
            if rec.get("event") == name:
                return rec

    def close(self):
        self.r.close()
        self.conn.close()
        self.sock.close()


# ---- notifications: endpoints -------------------------------------------------------------------

def test_notifications_create_get_and_list_paging():
    with DataDir() as d, store_server(d) as srv:
        n = create_notif(srv, ["user-456", "user-789"], resource_type="message",
                         resource_id="message-789",
                         actions=[{"label": "View", "action": "view",
                                   "data": {"id": "message-789"}}],
                         metadata={"thread_id": "thread-123"})
        for k in ("id", "title", "message", "recipients", "type", "priority", "status",
                  "sender_id", "created_at", "delivered_at", "read_by", "actions",
                  "resource_type", "resource_id", "metadata", "expires_at"):
            check(k in n, f"field {k} in the stored notification {n}")
        eq(n["status"], "delivered", "status")
        eq(n["read_by"], [], "read_by")
        eq(n["metadata"], {"thread_id": "thread-123"}, "metadata as given")
        r = call(srv, "GET", f"{NP}/{n['id']}")
        eq(r.status, 200, "get")
        eq(r.json(), n, "get returns the stored notification")
        ids = [n["id"]] + [create_notif(srv, ["user-456"], title=f"t{i}")["id"]
                           for i in range(4)]
        # newest first, pages of 2
        seen = []
        for page in (1, 2, 3):
            r = call(srv, "GET", f"{NP}?user_id=user-456&page={page}&page_size=2")
            eq(r.status, 200, f"page {page}")
            seen += [x["id"] for x in r.json()]
        eq(seen, list(reversed(ids)), "all 5 over three pages, newest first")
        r = call(srv, "GET", f"{NP}?user_id=user-456&page=4&page_size=2")
        eq(r.json(), [], "past the last page")
        r = call(srv, "GET", f"{NP}?user_id=user-789")
        eq([x["id"] for x in r.json()], [n["id"]], "the other recipient sees only its own")
        r = call(srv, "GET", f"{NP}?user_id=nobody")
        eq((r.status, r.json()), (200, []), "a user without notifications")
        r = call(srv, "GET", f"{NP}?user_id=user-456&status=delivered&page_size=100")
        eq(len(r.json()), 5, "status=delivered")
        r = call(srv, "GET", f"{NP}?user_id=user-456&status=pending")
        eq(r.json(), [], "status=pending matches none")


def test_notifications_bad_inputs():
    with DataDir() as d, store_server(d) as srv:
        def bad(body, status, code, field=None):
            r = call(srv, "POST", NP, body)
            eq(r.status, status, f"POST {body!r}: {r}")
            eq(err_code(r), code, f"code for {body!r}")
            if field:
                check(field in r.json()["error"]["message"],
                      f"message names {field}: {r.json()}")

        good = notif_body(["u1"])
        bad("not json", 400, "bad_json")
        bad("[1,2]", 400, "bad_json")
        bad({k: v for k, v in good.items() if k != "title"}, 400, "missing_field", "title")
        bad({k: v for k, v in good.items() if k != "recipients"}, 400, "missing_field",
            "recipients")
        bad(dict(good, recipients=[]), 400, "bad_value", "recipients")
        bad(dict(good, recipients="u1"), 400, "bad_type", "recipients")
        bad(dict(good, type="carrier-pigeon"), 400, "bad_value", "type")
        bad(dict(good, priority="asap"), 400, "bad_value", "priority")
        bad(dict(good, title="x" * 257), 400, "bad_value", "title")
        bad(dict(good, expires_at="tomorrow"), 400, "bad_value", "expires_at")
        bad(dict(good, expires_at="2001-01-01T00:00:00Z"), 400, "bad_value", "expires_at")
        bad(dict(good, colour="red"), 400, "unknown_field", "colour")
        bad(dict(good, actions=[{"label": "x"}]), 400, "missing_field", "action")
        for q, field in (("", "user_id"), ("user_id=u1&page=0", "page"),
                         ("user_id=u1&page=x", "page"), ("user_id=u1&page_size=101", "page_size"),
                         ("user_id=u1&status=lost", "status")):
            r = call(srv, "GET", f"{NP}?{q}")
            eq(r.status, 400, f"list ?{q}")
            check(field in r.json()["error"]["message"], f"?{q} names {field}: {r.json()}")
        eq(call(srv, "GET", f"{NP}/ntf_missing").status, 404, "unknown id")
        eq(call(srv, "GET", f"{NP}/unread-count/").status, 404, "unread-count without user")
        eq(call(srv, "GET", f"{NP}/a/b/c/d").status, 404, "too deep")
        r = call(srv, "DELETE", NP)
        eq(r.status, 405, "DELETE on the collection")
        check("POST" in r.header("Allow"), "Allow lists POST")
        eq(call(srv, "GET", f"{NP}/x/mark-read").status, 405, "GET mark-read")
        eq(call(srv, "POST", f"{NP}/ntf_missing/mark-read?user_id=u1").status, 404,
           "mark-read of an unknown id")


def test_notifications_unread_count_and_mark_read():
    with DataDir() as d, store_server(d) as srv:
        ns = [create_notif(srv, ["u1", "u2"], title=f"n{i}") for i in range(3)]
        r = call(srv, "GET", f"{NP}/unread-count/u1")
        eq((r.status, r.json()), (200, 3), "unread before: a bare number")
        r = call(srv, "POST", f"{NP}/{ns[0]['id']}/mark-read?user_id=u1")
        eq(r.status, 200, "mark-read")
        eq(r.json()["read_by"], ["u1"], "read_by")
        eq(r.json()["status"], "delivered", "still delivered: u2 has not read it")
        r = call(srv, "POST", f"{NP}/{ns[0]['id']}/mark-read?user_id=u1")
        eq((r.status, r.json()["read_by"]), (200, ["u1"]), "mark-read is idempotent")
        eq(call(srv, "GET", f"{NP}/unread-count/u1").json(), 2, "u1 unread after")
        eq(call(srv, "GET", f"{NP}/unread-count/u2").json(), 3, "u2 unread")
        r = call(srv, "POST", f"{NP}/{ns[0]['id']}/mark-read?user_id=u2")
        eq(r.json()["status"], "read", "read once every recipient read it")
        r = call(srv, "GET", f"{NP}?user_id=u1&status=read")
        eq([x["id"] for x in r.json()], [ns[0]["id"]], "status=read")
        r = call(srv, "POST", f"{NP}/{ns[1]['id']}/mark-read?user_id=stranger")
        eq(r.status, 403, "a non-recipient cannot mark it read")
        r = call(srv, "POST", f"{NP}/{ns[1]['id']}/mark-read")
        eq((r.status, err_code(r)), (400, "missing_field"), "mark-read without user_id")
        eq(call(srv, "GET", f"{NP}/unread-count/nobody").json(), 0, "nobody")


def test_notifications_expiry():
    with DataDir() as d, store_server(d) as srv:
        keep = create_notif(srv, ["ex"], title="keeps")
        gone = create_notif(srv, ["ex"], title="expires", expires_at=iso(time.time() + 2.0))
        eq(call(srv, "GET", f"{NP}/unread-count/ex").json(), 2, "both counted")
        eq(call(srv, "GET", f"{NP}/{gone['id']}").status, 200, "visible before expiry")
        wait_for(lambda: call(srv, "GET", f"{NP}/unread-count/ex").json() == 1,
                 timeout=6, what="the expired notification to stop counting")
        eq([x["id"] for x in call(srv, "GET", f"{NP}?user_id=ex").json()], [keep["id"]],
           "the expired one is not listed")
        eq(call(srv, "GET", f"{NP}/{gone['id']}").status, 404, "an expired one is 404")


# ---- notifications: live delivery -----------------------------------------------------------------

def test_notifications_live_to_every_connection_of_the_recipients_across_shards():
    with DataDir() as d, store_server(d, f"--jwt-secret={SECRET}", shards=4) as srv:
        async def go():
            # three WebSocket connections of u1 on three different shards
            conns, spare = {}, []
            for _ in range(40):
                ws = await ws_user(srv, "u1")
                sh = shard_of(ws.connection_id)
                if sh not in conns and len(conns) < 3:
                    conns[sh] = ws
                else:
                    spare.append(ws)
                if len(conns) == 3:
                    break
            check(len(conns) == 3, f"three u1 connections on distinct shards, got {list(conns)}")
            other = await ws_user(srv, "u2")
            sse = SSE(srv, tok("u1"))
            n = create_notif(srv, ["u1", "u3"], title="live")
            for sh, ws in conns.items():
                m = await ws_next(ws, type_="notification")
                eq(m["data"], n, f"WebSocket on shard {sh} got the stored notification")
            for ws in spare:
                m = await ws_next(ws, type_="notification")
                eq(m["data"]["id"], n["id"], "every other u1 connection too")
            rec = sse.event("notification")
            eq(json.loads(rec["data"]), n, "SSE event: notification with the stored record")
            # u2 got nothing: the first notification it sees is its own
            n2 = create_notif(srv, ["u2"], title="for u2")
            m = await ws_next(other, type_="notification")
            eq(m["data"]["id"], n2["id"], "u2's first notification is its own")
            sse.close()
            for ws in list(conns.values()) + spare + [other]:
                await ws.close()
        run_async(go())


def test_notifications_reconnects_and_late_auth_get_exactly_one_copy():
    with DataDir() as d, store_server(d, f"--jwt-secret={SECRET}", shards=2) as srv:
        async def go():
            for _ in range(6):  # closed connections of R must not be delivered to
                ws = await ws_user(srv, "R")
                await ws.close()
            ws = await ws_user(srv, "R")
            late = await ws_connect(srv)  # authenticates later with the auth action
            eq(await ws_quiet(late, 0.05), None, "nothing before auth")
            await late.send(json.dumps({"action": "auth", "token": tok("R"), "id": 1}))
            eq((await ws_next(late))["type"], "authenticated", "late auth")
            n1 = create_notif(srv, ["R"], title="one")
            n2 = create_notif(srv, ["R"], title="two")
            for w in (ws, late):
                got = [(await ws_next(w, type_="notification"))["data"]["id"] for _ in range(2)]
                eq(got, [n1["id"], n2["id"]], "each notification exactly once, in order")
            await ws.close()
            await late.close()
        run_async(go())


# ---- durability ------------------------------------------------------------------------------------

def test_notifications_restart_keeps_everything_acknowledged():
    with DataDir() as d:
        srv = store_server(d).start()
        ns = [create_notif(srv, ["r1", "r2"], title=f"n{i}") for i in range(5)]
        read = call(srv, "POST", f"{NP}/{ns[2]['id']}/mark-read?user_id=r1").json()
        s1 = create_sub(srv, "r1", "orders.*", labels=["a"], metadata={"k": 1})
        s2 = create_sub(srv, "r1", "orders.eu")
        paused = call(srv, "PATCH", f"{SP}/{s2['id']}/status", {"status": "paused"}).json()
        srv.stop()
        srv = store_server(d).start()
        try:
            for n in ns:
                want = read if n["id"] == read["id"] else n
                r = call(srv, "GET", f"{NP}/{n['id']}")
                eq((r.status, r.json()), (200, want), f"notification {n['id']} after restart")
            eq(call(srv, "GET", f"{NP}/unread-count/r1").json(), 4, "unread r1")
            eq(call(srv, "GET", f"{SP}/{s1['id']}").json(), s1, "subscription after restart")
            eq(call(srv, "GET", f"{SP}/{s2['id']}").json(), paused, "paused after restart")
        finally:
            srv.stop()


def burst(srv, total, nthreads, acked, lock, started, threshold):
    """total creates from nthreads keep-alive connections; ids of 201s go to acked."""
    def worker(k):
        conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        body = json.dumps(notif_body(["burst"], title=f"b{k}"))
        for _ in range(total // nthreads):
            try:
                conn.request("POST", NP, body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
            except (OSError, httpclient.HTTPException):
                return
            if r.status == 201:
                with lock:
                    acked.append(json.loads(data)["id"])
                    if len(acked) >= threshold:
                        started.set()
            elif r.status != 503:
                return
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    return threads


def all_present(data_dir, ids):
    with store_server(data_dir) as srv:
        conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        missing = []
        for nid in ids:
            conn.request("GET", f"{NP}/{nid}")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                missing.append(nid)
        conn.close()
        eq(missing, [], "acknowledged notifications missing after the restart")


def test_notifications_sigkill_during_burst_loses_nothing_acknowledged():
    with DataDir() as d:
        srv = store_server(d, shards=4).start()
        acked, lock, started = [], threading.Lock(), threading.Event()
        total = 1000
        threads = burst(srv, total, 8, acked, lock, started, 400)
        check(started.wait(60), "400 creates acknowledged within 60 s")
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        for t in threads:
            t.join(30)
        srv.reader.join(5)
        srv.proc = None
        with lock:
            ids = list(acked)
        check(400 <= len(ids) < total, f"killed mid-burst: {len(ids)} of {total} acknowledged")
        print(f"    sigkill burst: {len(ids)} of {total} creates acknowledged before SIGKILL")
        all_present(d, ids)


def test_notifications_sigterm_during_burst_exits_cleanly_and_keeps_acknowledged():
    with DataDir() as d:
        srv = store_server(d, shards=4).start()
        acked, lock, started = [], threading.Lock(), threading.Event()
        threads = burst(srv, 1000, 8, acked, lock, started, 300)
        check(started.wait(60), "300 creates acknowledged within 60 s")
        t0 = time.monotonic()
        srv.stop()  # SIGTERM: exit 0, no sanitizer report
        took = time.monotonic() - t0
        for t in threads:
            t.join(30)
        with lock:
            ids = list(acked)
        check(took < 8, f"drain with store requests in flight took {took:.1f}s")
        all_present(d, ids)


def test_store_bad_data_dir_exits_2():
    with DataDir() as d:
        blocker = d + "/file"
        open(blocker, "w").close()
        srv = Server(f"--data-dir={blocker}/sub")
        try:
            srv.start(timeout=5)
        except TestFailure as e:
            check("data" in str(e).lower() or blocker in str(e), f"message names the dir: {e}")
        else:
            srv.stop()
            raise TestFailure("the server started with an unusable data_dir")
        eq(srv.proc.wait(10), 2, "exit code for a bad data_dir")
        srv.proc = None


# ---- subscriptions: endpoints -------------------------------------------------------------------

def test_subscriptions_endpoints_and_bad_inputs():
    with DataDir() as d, store_server(d) as srv:
        r = call(srv, "POST", SP + "/resource",
                 {"user_id": "user-456", "resource_id": "post-789", "resource_type": "post",
                  "labels": ["important", "post-updates"],
                  "metadata": {"notification_channel": "email"},
                  "expires_at": "2099-05-16T10:30:00Z"})
        eq(r.status, 201, f"resource subscription: {r}")
        res = r.json()
        eq((res["type"], res["status"], res["topic"], res["resource_id"], res["resource_type"]),
           ("resource", "active", "post.post-789", "post-789", "post"), "resource fields")
        eq(res["labels"], ["important", "post-updates"], "labels as given")
        eq(res["metadata"], {"notification_channel": "email"}, "metadata as given")
        eq(res["expires_at"], "2099-05-16T10:30:00.000Z", "expires_at")
        top = create_sub(srv, "user-456", "new-posts", payload_filter={"category": "tech"})
        eq((top["type"], top["topic"], top["resource_id"]), ("topic", "new-posts", None),
           "topic fields")
        eq(call(srv, "GET", f"{SP}/{res['id']}").json(), res, "get")
        r = call(srv, "GET", f"{SP}?user_id=user-456")
        eq([x["id"] for x in r.json()], [top["id"], res["id"]], "list, newest first")
        r = call(srv, "GET", f"{SP}?user_id=user-456&page=2&page_size=1")
        eq([x["id"] for x in r.json()], [res["id"]], "paging")
        r = call(srv, "PATCH", f"{SP}/{top['id']}/status", {"status": "paused"})
        eq((r.status, r.json()["status"]), (200, "paused"), "pause")
        r = call(srv, "GET", f"{SP}?user_id=user-456&status=active")
        eq([x["id"] for x in r.json()], [res["id"]], "status=active")
        r = call(srv, "GET", f"{SP}?user_id=user-456&status=paused")
        eq([x["id"] for x in r.json()], [top["id"]], "status=paused")
        r = call(srv, "PATCH", f"{SP}/{top['id']}/status", {"status": "active"})
        eq(r.json()["status"], "active", "resume")
        r = call(srv, "DELETE", f"{SP}/{top['id']}")
        eq((r.status, r.body), (204, b""), "delete")
        eq(call(srv, "GET", f"{SP}/{top['id']}").status, 404, "gone")
        eq(call(srv, "DELETE", f"{SP}/{top['id']}").status, 404, "delete twice")
        eq(call(srv, "PATCH", f"{SP}/sub_missing/status", {"status": "paused"}).status, 404,
           "patch unknown")

        def bad(method, path, body, status, field):
            r = call(srv, method, path, body)
            eq(r.status, status, f"{method} {path} {body!r}: {r}")
            if field:
                check(field in r.json()["error"]["message"], f"names {field}: {r.json()}")

        bad("POST", SP + "/topic", {"topic": "a.b"}, 400, "user_id")
        bad("POST", SP + "/topic", {"user_id": "u"}, 400, "topic")
        bad("POST", SP + "/topic", {"user_id": "u", "topic": "a..b"}, 400, "topic")
        bad("POST", SP + "/topic", {"user_id": "u", "topic": "a", "labels": "x"}, 400, "labels")
        bad("POST", SP + "/topic", {"user_id": "u", "topic": "a", "payload_filter": 3}, 400,
            "payload_filter")
        bad("POST", SP + "/topic", {"user_id": "u", "topic": "a", "extra": 1}, 400, "extra")
        bad("POST", SP + "/topic", {"user_id": "u", "topic": "a",
                                    "expires_at": "2001-01-01T00:00:00Z"}, 400, "expires_at")
        bad("POST", SP + "/resource", {"user_id": "u", "resource_type": "post"}, 400,
            "resource_id")
        bad("POST", SP + "/topic", "{", 400, None)
        bad("PATCH", f"{SP}/{res['id']}/status", {"status": "deleted"}, 400, "status")
        bad("PATCH", f"{SP}/{res['id']}/status", {}, 400, "status")
        bad("GET", f"{SP}?user_id=u&page_size=0", None, 400, "page_size")
        bad("GET", SP, None, 400, "user_id")
        eq(call(srv, "PUT", f"{SP}/{res['id']}").status, 405, "PUT")
        eq(call(srv, "GET", SP + "/topic").status, 405, "GET on the create endpoint")
        eq(call(srv, "POST", SP).status, 405, "POST on the collection")


# ---- seed 004: durable subscriptions on live connections -----------------------------------------

def test_subscriptions_apply_to_all_live_connections_and_stop_on_pause_and_delete():
    with DataDir() as d, store_server(d, f"--jwt-secret={SECRET}", shards=4) as srv:
        async def go():
            a = await ws_user(srv, "U")
            b = await ws_user(srv, "U")
            for _ in range(20):
                if shard_of(a.connection_id) != shard_of(b.connection_id):
                    break
                await b.close()
                b = await ws_user(srv, "U")
            v = await ws_user(srv, "V")
            sse = SSE(srv, tok("U"))
            t0 = time.monotonic()
            sub = create_sub(srv, "U", "articles.45")
            t201 = time.monotonic()
            # both connections are told, naming the durable subscription
            ann = {}
            for name, ws in (("a", a), ("b", b)):
                m = await ws_next(ws, type_="subscribed")
                eq(m["data"]["durable_subscription"], sub["id"], "announced durable id")
                eq(m["data"]["topic"], "articles.45", "announced topic")
                ann[name] = m["data"]["subscription"]
            rec = sse.event("subscribed")
            eq(json.loads(rec["data"])["durable_subscription"], sub["id"], "SSE announce")
            tp = time.monotonic()
            publish(srv, "articles.45", {"n": 1}, type_="new_discussion")
            first = None
            for name, ws in (("a", a), ("b", b)):
                m = await ws_next(ws, type_="event")
                first = first or time.monotonic()
                eq(m["data"]["data"], {"n": 1}, f"event on {name}")
                eq(m["data"]["subscription"], ann[name], "event names the subscription")
            ev = json.loads(sse.event("new_discussion")["data"])
            eq(ev["data"], {"n": 1}, "event on SSE")
            print(f"    seed 004: POST -> 201 {1000 * (t201 - t0):.1f} ms; 201 -> both "
                  f"connections announced {1000 * (tp - t201):.1f} ms; 201 -> first event "
                  f"{1000 * (first - t201):.1f} ms (publish -> first event "
                  f"{1000 * (first - tp):.1f} ms)")
            eq(await ws_quiet(v, 0.3), None, "user V received nothing")

            # a connection made later gets it too
            c = await ws_user(srv, "U")
            m = await ws_next(c, type_="subscribed")
            eq(m["data"]["durable_subscription"], sub["id"], "loaded at authentication")

            # pause: removed immediately, the next event does not arrive
            t0 = time.monotonic()
            r = call(srv, "PATCH", f"{SP}/{sub['id']}/status", {"status": "paused"})
            eq(r.status, 200, "pause")
            t200 = time.monotonic()
            for ws in (a, b, c):
                m = await ws_next(ws, type_="unsubscribed")
                eq((m["data"]["durable_subscription"], m["data"]["reason"]),
                   (sub["id"], "paused"), "unsubscribed on pause")
            tu = time.monotonic()
            print(f"    seed 004: PATCH paused -> 200 {1000 * (t200 - t0):.1f} ms; 200 -> all "
                  f"three unsubscribed {1000 * (tu - t200):.1f} ms")
            publish(srv, "articles.45", {"n": 2}, type_="new_discussion")
            n = create_notif(srv, ["U"], title="sentinel")
            for ws in (a, b, c):
                m = await ws_next(ws)
                eq((m["type"], m["data"]["id"]), ("notification", n["id"]),
                   "no event while paused: the sentinel comes first")

            # active again, then delete
            r = call(srv, "PATCH", f"{SP}/{sub['id']}/status", {"status": "active"})
            for ws in (a, b, c):
                await ws_next(ws, type_="subscribed")
            publish(srv, "articles.45", {"n": 3}, type_="new_discussion")
            for ws in (a, b, c):
                eq((await ws_next(ws, type_="event"))["data"]["data"], {"n": 3}, "resumed")
            eq(call(srv, "DELETE", f"{SP}/{sub['id']}").status, 204, "delete")
            for ws in (a, b, c):
                m = await ws_next(ws, type_="unsubscribed")
                eq(m["data"]["reason"], "deleted", "unsubscribed on delete")
            publish(srv, "articles.45", {"n": 4}, type_="new_discussion")
            n = create_notif(srv, ["U"], title="sentinel 2")
            for ws in (a, b, c):
                m = await ws_next(ws)
                eq((m["type"], m["data"]["id"]), ("notification", n["id"]),
                   "no event after delete")
            sse.close()
            for ws in (a, b, c, v):
                await ws.close()
        run_async(go())


def test_subscriptions_payload_filter_and_expiry_on_live_connections():
    with DataDir() as d, store_server(d, f"--jwt-secret={SECRET}") as srv:
        async def go():
            ws = await ws_user(srv, "F")
            sub = create_sub(srv, "F", "new-posts", payload_filter={"category": "tech"},
                             expires_at=iso(time.time() + 2.5))
            m = await ws_next(ws, type_="subscribed")
            eq(m["data"]["durable_subscription"], sub["id"], "announced")
            publish(srv, "new-posts", {"category": "sports"})
            publish(srv, "new-posts", {"category": "tech"})
            m = await ws_next(ws, type_="event")
            eq(m["data"]["data"], {"category": "tech"}, "the filter lets only tech through")
            m = await ws_next(ws, type_="unsubscribed", timeout=8)
            eq((m["data"]["durable_subscription"], m["data"]["reason"]),
               (sub["id"], "expired"), "removed at expires_at")
            publish(srv, "new-posts", {"category": "tech"})
            n = create_notif(srv, ["F"], title="sentinel")
            m = await ws_next(ws)
            eq((m["type"], m["data"]["id"]), ("notification", n["id"]), "no event after expiry")
            eq(call(srv, "GET", f"{SP}/{sub['id']}").status, 404, "expired: 404")
            await ws.close()
        run_async(go())


# ---- access ----------------------------------------------------------------------------------------

def test_store_jwt_clients_see_only_their_own():
    with DataDir() as d, store_server(d, f"--jwt-secret={SECRET}") as srv:
        ta, tb = tok("alice"), tok("bob")
        na = create_notif(srv, ["alice"], title="for alice")
        nb = create_notif(srv, ["bob"], title="for bob")
        sb = create_sub(srv, "bob", "bob.things")
        r = call(srv, "GET", f"{NP}?user_id=alice", token=ta)
        eq([x["id"] for x in r.json()], [na["id"]], "alice lists her own")
        r = call(srv, "GET", NP, token=ta)
        eq([x["id"] for x in r.json()], [na["id"]], "user_id defaults to the token's sub")
        for method, path in (("GET", f"{NP}?user_id=bob"), ("GET", f"{NP}/unread-count/bob"),
                             ("GET", f"{NP}/{nb['id']}"),
                             ("POST", f"{NP}/{nb['id']}/mark-read?user_id=bob"),
                             ("POST", f"{NP}/{nb['id']}/mark-read"),
                             ("GET", f"{SP}?user_id=bob"), ("GET", f"{SP}/{sb['id']}"),
                             ("DELETE", f"{SP}/{sb['id']}")):
            r = call(srv, method, path, token=ta)
            eq(r.status, 403, f"alice: {method} {path}")
        r = call(srv, "PATCH", f"{SP}/{sb['id']}/status", {"status": "paused"}, token=ta)
        eq(r.status, 403, "alice pausing bob's subscription")
        r = call(srv, "POST", SP + "/topic", {"user_id": "bob", "topic": "x"}, token=ta)
        eq(r.status, 403, "alice creating a subscription for bob")
        r = call(srv, "POST", NP, notif_body(["alice"]), token=ta)
        eq(r.status, 403, "a client cannot create notifications")
        # what alice may do
        eq(call(srv, "GET", f"{NP}/unread-count/alice", token=ta).json(), 1, "count")
        r = call(srv, "POST", f"{NP}/{na['id']}/mark-read", token=ta)
        eq((r.status, r.json()["read_by"]), (200, ["alice"]), "mark-read own")
        r = call(srv, "POST", SP + "/topic", {"topic": "alice.things"}, token=ta)
        eq((r.status, r.json()["user_id"]), (201, "alice"), "own subscription")
        sa = r.json()
        r = call(srv, "PATCH", f"{SP}/{sa['id']}/status", {"status": "paused"}, token=ta)
        eq(r.status, 200, "pause own")
        eq(call(srv, "DELETE", f"{SP}/{sa['id']}", token=ta).status, 204, "delete own")
        eq(call(srv, "GET", f"{SP}/{sb['id']}", token=tb).status, 200, "bob reads his own")
        r = call(srv, "GET", f"{NP}?user_id=alice", token="not.a.jwt")
        eq(r.status, 401, "a bad token")


def test_store_api_key_scopes():
    with DataDir() as d, store_server(d, f"--api-keys={NOTIFY_KEY}:notify,{PUBLISH_KEY}:publish",
                                      f"--jwt-secret={SECRET}") as srv:
        eq(call(srv, "POST", NP, notif_body(["k"])).status, 401, "no key")
        r = call(srv, "POST", NP, notif_body(["k"]), key=PUBLISH_KEY)
        eq(r.status, 403, "a key without the notify scope")
        eq(call(srv, "POST", NP, notif_body(["k"]), key=NOTIFY_KEY).status, 201, "notify key")
        eq(call(srv, "GET", f"{NP}?user_id=k", token=NOTIFY_KEY).status, 200, "key as Bearer")
        eq(call(srv, "GET", f"{NP}?user_id=k", token=tok("k")).status, 200, "user's own JWT")


def test_durable_subscription_over_max_subscribers_is_refused_not_announced():
    """A rule limits limited.room to one subscriber; a live subscriber holds the
    slot; a user's durable subscription to it is refused with
    too_many_subscribers and never announced as subscribed."""
    with DataDir() as d, store_server(d, f"--jwt-secret={SECRET}",
                                      "--rules=limited.> max_subscribers=1") as srv:
        async def go():
            holder = await ws_user(srv, "H")
            r = await ws_request(holder, {"action": "subscribe", "topic": "limited.room", "id": 1})
            eq(r["type"], "subscribed", "the slot holder")
            u = await ws_user(srv, "U")
            create_sub(srv, "U", "limited.room")
            m = await ws_next(u)
            eq((m["type"], m["data"]["code"]), ("error", "too_many_subscribers"),
               "refused, not announced")
            publish(srv, "limited.room", {"n": 1})
            e = await ws_next(holder, type_="event")
            eq(e["data"]["data"], {"n": 1}, "the holder still receives")
            await holder.close()
            await u.close()

        run_async(go())
