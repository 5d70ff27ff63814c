"""The admin dashboard at /admin/: embedded pages with safe headers, the per-connection detail the
stats give it, and the page itself in Debian's headless Chromium (puppeteer-core): sign in, live
numbers while publishing, latency percentiles from /metrics, connection lookup, presence, a test
event, a screenshot, the disconnect action."""

import asyncio
import json
import os
import shutil
import urllib.parse

import websockets

from harness import hs256_token, Server, check, eq, http, node, run_async, wait_for, ws_connect, ws_request

SECRET = "e2e-admin-hs256-secret-0123456789abcdef"
KEY = "admin-dashboard-key-0123456789abcdef"
SHOT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build",
                        "test-logs")


def tok(sub, ttl=600):
    return hs256_token(SECRET, sub, ttl)


def server():
    return Server(f"--jwt-secret={SECRET}", f"--api-keys={KEY}:admin+publish", "--presence=true")


def test_admin_pages_are_embedded_with_safe_headers():
    with server() as srv:
        r = http(srv, "GET", "/admin")
        eq(r.status, 308, "/admin redirects")
        eq(r.header("Location"), "/admin/", "to /admin/")
        r = http(srv, "GET", "/admin/")
        eq(r.status, 200, "index")
        check(r.header("Content-Type").startswith("text/html"), "html")
        check(b"<title>ringcast admin</title>" in r.body, "the dashboard page")
        csp = r.header("Content-Security-Policy")
        check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, f"CSP {csp}")
        eq(r.header("X-Frame-Options"), "DENY", "no framing")
        eq(r.header("X-Content-Type-Options"), "nosniff", "nosniff")
        check(b"https://" not in r.body and b"http://" not in r.body, "no external asset")
        for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
            r = http(srv, "GET", "/admin/" + name)
            eq(r.status, 200, name)
            check(r.header("Content-Type").startswith(ctype), f"{name} type")
            check(b"//cdn" not in r.body, f"{name} loads nothing from elsewhere")
        r = http(srv, "HEAD", "/admin/app.js")
        eq((r.status, r.body), (200, b""), "HEAD")
        for bad in ("/admin/nope.js", "/admin/../api/realtime/stats", "/admin/%2e%2e/x",
                    "/admin/app.js/", "/admin/index.html%00"):
            r = http(srv, "GET", bad)
            eq(r.status, 404, f"{bad} is not a file of the dashboard")
        r = http(srv, "POST", "/admin/", "x")
        eq(r.status, 405, "POST on the page")
        # the pages are public, the data is not
        r = http(srv, "GET", "/api/realtime/stats", headers={"Authorization": "Bearer wrong"})
        check(r.status in (401, 403), f"stats need the key: {r.status}")


def test_admin_stats_detail_each_listed_connection():
    with server() as srv:
        async def go():
            ws = await ws_connect(srv, "/api/realtime/ws?token=" + urllib.parse.quote(tok("ann")))
            await ws_request(ws, {"action": "subscribe", "topic": "desk.1"})
            anon = await ws_connect(srv)
            r = http(srv, "GET", "/api/realtime/stats?limit=10",
                     headers={"Authorization": "Bearer " + KEY})
            eq(r.status, 200, "stats")
            eq(r.json()["total_connections"], 2, "the counts are unchanged by the detail")
            conns = r.json()["connections"]
            eq(sorted(conns), sorted([ws.connection_id, anon.connection_id]), "both listed")
            d = conns[ws.connection_id]
            eq((d["user_id"], d["transport"], d["subscriptions"]), ("ann", "websocket", ["desk.1"]),
               "the user's connection")
            check(isinstance(d["queued_bytes"], int) and d["queued_bytes"] >= 0, "queued bytes")
            check(0 <= d["shard"] < 2, "its shard")
            eq(conns[anon.connection_id]["user_id"], None, "anonymous")
            eq(r.json()["subscriptions"][ws.connection_id], ["desk.1"], "the old listing stays")
            r = http(srv, "GET", "/api/realtime/stats?limit=1", headers={"Authorization": "Bearer " + KEY})
            eq(len(r.json()["connections"]), 1, "limit bounds the detail too")
            await ws.close()
            await anon.close()
        run_async(go())


def test_admin_stats_lookup_and_top_subscriptions_are_exact():
    with server() as srv:
        auth = {"Authorization": "Bearer " + KEY}

        def stats(q):
            r = http(srv, "GET", "/api/realtime/stats?" + q, headers=auth)
            eq(r.status, 200, f"stats?{q}: {r.body[:200]!r}")
            return r.json()

        async def go():
            socks = []
            # 12 connections over both shards: user "zed x@y" (a space and an @: percent-encoded
            # in the query) holds 3, the others one each; patterns counted over all of them
            for i in range(12):
                user = "zed x@y" if i < 3 else f"u{i}"
                ws = await ws_connect(srv, "/api/realtime/ws?token=" + urllib.parse.quote(tok(user)))
                await ws_request(ws, {"action": "subscribe", "topic": "all.news"})
                if i % 2 == 0:
                    await ws_request(ws, {"action": "subscribe", "topic": "even.>"})
                if i == 5:
                    await ws_request(ws, {"action": "subscribe", "topic": "solo"})
                socks.append(ws)
            shards = {d["shard"] for d in stats("limit=100")["connections"].values()}
            eq(shards, {0, 1}, "the connections are spread over both shards")
            # by user: exactly that user's connections, past a small limit of other listings
            st = stats("limit=100&user_id=" + urllib.parse.quote("zed x@y"))
            eq(sorted(st["connections"]), sorted(w.connection_id for w in socks[:3]), "the user's 3")
            eq(st["total_connections"], 12, "the totals still count every connection")
            eq(stats("limit=2&user_id=" + urllib.parse.quote("zed x@y"))["connections"].__len__(), 2,
               "limit bounds a lookup too")
            eq(stats("user_id=nobody")["connections"], {}, "no such user: nothing listed")
            # by connection id, on whichever shard it lives
            for w in (socks[4], socks[7]):
                st = stats("connection_id=" + w.connection_id)
                eq(list(st["connections"]), [w.connection_id], "exactly that connection")
                eq(sorted(st["connections"][w.connection_id]["subscriptions"]),
                   ["all.news", "even.>"] if socks.index(w) % 2 == 0 else ["all.news"], "its subs")
            eq(stats("connection_id=00000000deadbeef")["connections"], {}, "unknown id: nothing")
            # top: exact counts over every connection of both shards, most first, ties by name
            eq(stats("limit=0&top=5")["top_subscriptions"],
               [{"pattern": "all.news", "subscriptions": 12}, {"pattern": "even.>", "subscriptions": 6},
                {"pattern": "solo", "subscriptions": 1}], "top patterns")
            eq(stats("limit=0&top=1")["top_subscriptions"],
               [{"pattern": "all.news", "subscriptions": 12}], "top bounds the list")
            check("top_subscriptions" not in stats("limit=0"), "no top unless asked")
            await socks[0].close()
            await socks[5].close()

            def counted():
                top = stats("limit=0&top=5")["top_subscriptions"]
                return top == [{"pattern": "all.news", "subscriptions": 10},
                               {"pattern": "even.>", "subscriptions": 5}]
            wait_for(counted, 10, "closed connections leave the counts")
            for bad in ("top=1001", "top=-1", "connection_id=xyz", "connection_id=",
                        "user_id=", "user_id=%zz", "user_id=" + "a" * 129, "limit=x"):
                r = http(srv, "GET", "/api/realtime/stats?" + bad, headers=auth)
                eq((r.status, r.json()["error"]["code"]), (400, "bad_query"), f"{bad} refused")
            for w in socks[1:5] + socks[6:]:
                await w.close()
        run_async(go())


def test_admin_dashboard_in_chromium():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    check(os.path.exists(chromium), "Debian's chromium is installed (scripts/deps.sh test)")
    os.makedirs(SHOT_DIR, exist_ok=True)
    shot = os.path.join(SHOT_DIR, "dashboard.png")
    if os.path.exists(shot):
        os.unlink(shot)
    with server() as srv:
        async def go():
            ws = await ws_connect(srv, "/api/realtime/ws?token=" + urllib.parse.quote(tok("dash-user")))
            await ws_request(ws, {"action": "subscribe", "topic": "desk.live"})
            got = []
            closed = {}

            async def drain():
                try:
                    async for m in ws:
                        got.append(json.loads(m))
                except websockets.exceptions.ConnectionClosed as e:
                    closed["code"], closed["reason"] = e.code, e.reason
                closed.setdefault("code", ws.close_code)
                closed.setdefault("reason", ws.close_reason)
            reader = asyncio.ensure_future(drain())
            res = await asyncio.to_thread(node, "browser_admin.js", srv.base, KEY, "dash-user",
                                          "desk.live", shot, 60, timeout=180,
                                          env={"CHROMIUM": chromium})
            await reader
            return res, got, closed
        res, got, closed = run_async(go(), timeout=240)
        check("401" in res["wrongKey"] or "403" in res["wrongKey"], f"wrong key refused: {res['wrongKey']}")
        eq(res["wrongKeyMainHidden"], True, "nothing shown with a wrong key")
        eq(res["landed"], srv.base + "/admin/", "/admin redirected")
        eq(res["connections"], "1", "the dashboard counts the live connection")
        check(float(res["pubRate"]) > 0 and float(res["delRate"]) > 0,
              f"rates moved while publishing: {res['pubRate']} {res['delRate']}")
        eq(res["shardRows"], 2, "one row per shard")
        eq(res["lookupNoneRows"], 0, f"an unknown user finds nothing: {res['lookupNone']}")
        eq(len(res["lookup"]), 1, f"lookup by user: {res['lookup']}")
        eq(res["lookupById"], 1, "lookup by connection id")
        eq(res["lookup"][0][1], "dash-user", "the user's connection")
        check("desk.live" in res["lookup"][0][2], "with its subscription")
        eq(res["patterns"], [["desk.live", "1"]], "subscribed patterns")
        check('"dash-user"' in res["presence"], f"presence tool: {res['presence']}")
        check(res["published"].startswith("published"), f"test event: {res['published']}")
        check(res["lat50"][0].isdigit() and res["lat99"][0].isdigit(),
              f"latency percentiles from /metrics: {res['lat50']} {res['lat99']}")
        eq(res["disconnected"], "closed 1 connection(s)", "the disconnect tool")
        eq(res["connectionsAfter"], "0", "the dashboard sees it gone")
        eq((closed["code"], closed["reason"]), (1000, "bye from the dashboard"),
           "the user's WebSocket was closed with the dashboard's reason")
        eq(res["reloadSignedIn"], True, "a reload keeps the session")
        eq(res["keyInUrl"], False, "the key is never in a URL")
        eq(res["afterLogout"], None, "sign out forgets the key")
        eq(res["pageErrors"], [], "no JavaScript errors")
        eq(res["console"], [], "no console errors")
        check(os.path.getsize(shot) > 10000, "a screenshot was saved")
        events = [m for m in got if m.get("type") == "event"]
        check(len(events) >= 200, f"the subscriber got the script's events: {len(events)}")
