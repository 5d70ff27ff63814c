"""Browsers on another origin: CORS on every HTTP answer and the SSE stream, the preflight,
one allowed_origins list shared with the WebSocket Origin check (docs/API.md, "Browsers on
another origin"). The last test drives Debian's Chromium (puppeteer-core) from pages served
on two other ports: one listed, one not."""

import asyncio
import json
import os
import shutil

import websockets

from cluster import free_port
from harness import hs256_token, Server, TestFailure, check, eq, http, node, run_async

SECRET = "e2e-cors-hs256-secret-0123456789abcdef"  # >= 32 bytes
NOTIFY_KEY = "notify-key-cors-0123456789abcdef"
ADMIN_KEY = "admin-key-cors-0123456789abcdef0"
APP = "https://app.example.com"
NP = "/api/realtime/notifications"


def tok(sub, ttl=600):
    return hs256_token(SECRET, sub, ttl)


def server(*origins):
    args = [f"--jwt-secret={SECRET}", f"--api-keys={NOTIFY_KEY}:notify",
            f"--api-keys={ADMIN_KEY}:admin"]
    if origins:
        args.append("--allowed-origins=" + ",".join(origins))
    return Server(*args)


def counter(srv, name):
    r = http(srv, "GET", "/api/realtime/stats", headers={"Authorization": "Bearer " + ADMIN_KEY})
    return r.json()["counters"][name]


def preflight(srv, path, origin, method="GET", headers="authorization"):
    return http(srv, "OPTIONS", path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def test_cors_listed_origin_gets_preflight_and_credentialed_answers():
    with server(APP, "http://localhost:3000") as srv:
        r = preflight(srv, NP, APP)
        eq(r.status, 204, "preflight status")
        eq(r.header("Access-Control-Allow-Origin"), APP, "preflight echoes the listed origin")
        eq(r.header("Access-Control-Allow-Credentials"), "true", "credentials for a listed origin")
        eq(r.header("Access-Control-Allow-Methods"), "GET, HEAD, POST", "the path's methods")
        allow_h = [h.strip().lower() for h in r.header("Access-Control-Allow-Headers").split(",")]
        check("authorization" in allow_h and "content-type" in allow_h, f"allowed headers {allow_h}")
        eq(r.header("Access-Control-Max-Age"), "600", "preflight cache time")
        eq(r.header("Vary"), "Origin", "Vary: Origin with a list")
        # a path with an id, and the second listed origin, case-insensitively
        r = preflight(srv, NP + "/ntf_x/mark-read", "HTTP://LOCALHOST:3000", method="POST")
        eq(r.status, 204, "preflight of an id path")
        eq(r.header("Access-Control-Allow-Origin"), "http://localhost:3000", "the listed spelling")
        # the real request: its answer carries the CORS headers and exposes X-Total-Count
        r = http(srv, "GET", NP, headers={"Origin": APP, "Authorization": "Bearer " + tok("u1")})
        eq(r.status, 200, "list of the user's notifications")
        eq(r.header("Access-Control-Allow-Origin"), APP, "answer echoes the origin")
        check("X-Total-Count" in r.header("Access-Control-Expose-Headers"), "X-Total-Count exposed")
        eq(r.header("X-Total-Count"), "0", "total")
        # errors carry them too, so the page can read why
        r = http(srv, "GET", NP, headers={"Origin": APP, "Authorization": "Bearer nope"})
        eq(r.status, 401, "bad token")
        eq(r.header("Access-Control-Allow-Origin"), APP, "an error is readable by the page")
        # a deferred answer (the store's) keeps the request's CORS class
        r = http(srv, "GET", NP + "/unread-count/u1",
                 headers={"Origin": APP, "Authorization": "Bearer " + tok("u1")})
        eq(r.status, 200, "unread count")
        eq(r.header("Access-Control-Allow-Origin"), APP, "deferred answer carries CORS")
        # without Origin (a backend): no CORS headers, only Vary
        r = http(srv, "GET", "/healthz")
        eq(r.header("Access-Control-Allow-Origin"), None, "no Origin, no CORS")
        eq(r.header("Vary"), "Origin", "Vary for caches")


def test_cors_unlisted_origin_is_refused_on_rest_sse_and_websocket():
    with server(APP) as srv:
        evil = "https://evil.example"
        before = counter(srv, "refused_origin")
        r = preflight(srv, NP, evil)
        eq(r.status, 403, "preflight from an unlisted origin")
        eq(r.json()["error"]["code"], "origin_not_allowed", "code")
        eq(r.header("Access-Control-Allow-Origin"), None, "no CORS header for it")
        r = http(srv, "GET", NP, headers={"Origin": evil, "Authorization": "Bearer " + tok("u1")})
        eq(r.status, 403, "REST from an unlisted origin")
        r = http(srv, "POST", NP, {"title": "t", "message": "m", "recipients": ["u1"]},
                 headers={"Origin": evil, "Authorization": "Bearer " + NOTIFY_KEY})
        eq(r.status, 403, "a write from an unlisted origin never runs")
        r = http(srv, "GET", "/api/realtime/events?token=" + tok("u1"), headers={"Origin": evil})
        eq(r.status, 403, "SSE from an unlisted origin")

        async def ws_refused():
            try:
                async with websockets.connect(srv.ws_url + "?token=" + tok("u1"), origin=evil):
                    raise TestFailure("WebSocket from an unlisted origin was accepted")
            except websockets.exceptions.InvalidStatusCode as e:
                eq(e.status_code, 403, "WebSocket from an unlisted origin")
        run_async(ws_refused())
        eq(counter(srv, "refused_origin") - before, 5, "each refusal counted")
        # same origin (the page is served by this server, e.g. /admin/): allowed
        own = f"http://127.0.0.1:{srv.port}"
        r = http(srv, "GET", "/healthz", headers={"Origin": own})
        eq(r.status, 200, "same origin allowed")
        eq(r.header("Access-Control-Allow-Origin"), None, "same origin needs no CORS header")
        # the server still serves everyone else
        r = http(srv, "GET", "/healthz", headers={"Origin": APP})
        eq(r.status, 200, "listed origin after the refusals")


def test_cors_empty_list_allows_any_origin_without_credentials():
    with server() as srv:
        r = preflight(srv, NP, "https://anyone.example")
        eq(r.status, 204, "preflight, empty list")
        eq(r.header("Access-Control-Allow-Origin"), "*", "any origin")
        eq(r.header("Access-Control-Allow-Credentials"), None, "never credentials for *")
        eq(r.header("Vary"), None, "no Vary without a list")
        # the SSE stream's head carries them
        s = __import__("socket").create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"GET /api/realtime/events HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            c = s.recv(4096)
            check(c, "closed before the SSE head")
            buf += c
        s.close()
        head = buf.split(b"\r\n\r\n")[0].decode()
        check(head.startswith("HTTP/1.1 200"), head)
        check("Access-Control-Allow-Origin: *" in head, f"SSE head has CORS: {head}")


def test_cors_plain_options_and_unknown_paths():
    with server(APP) as srv:
        r = http(srv, "OPTIONS", "/api/realtime/publish")
        eq(r.status, 204, "plain OPTIONS")
        eq(r.header("Allow"), "OPTIONS, POST", "Allow lists the path's methods")
        r = preflight(srv, "/api/realtime/nowhere", APP)
        eq(r.status, 404, "unknown path")
        # a preflight needs no credentials even where the request will need a key
        r = preflight(srv, "/api/realtime/publish", APP, method="POST")
        eq(r.status, 204, "preflight of publish")
        eq(r.header("Access-Control-Allow-Methods"), "POST", "publish methods")


def test_cors_in_chromium_from_a_listed_and_an_unlisted_origin():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    check(os.path.exists(chromium), "Debian's chromium is installed (scripts/deps.sh test)")
    listed, unlisted = free_port(), free_port()
    with server(f"http://127.0.0.1:{listed}") as srv:
        r = http(srv, "POST", NP, {"title": "hello", "message": "from the backend",
                                   "recipients": ["browser-user"]},
                 headers={"Authorization": "Bearer " + NOTIFY_KEY})
        eq(r.status, 201, "a notification for the page to list")
        res = node("browser_cors.js", srv.base, tok("browser-user"), listed, unlisted, 60,
                   timeout=180, env={"CHROMIUM": chromium})
        ok, bad = res["listed"], res["unlisted"]
        eq(ok["fetch"], 200, f"fetch from the listed origin: {ok}")
        eq(ok["total"], "1", "X-Total-Count readable by the page")
        eq([n["title"] for n in ok["body"]], ["hello"], "the user's notifications")
        eq(ok["sse"], "open:connection", "EventSource from the listed origin")
        eq(ok["ws"], "open", "WebSocket from the listed origin")
        eq(res["console"]["listed"], [], "no console errors on the listed origin's page")
        check(str(bad["fetch"]).startswith("TypeError"), f"fetch from the unlisted origin: {bad}")
        eq(bad["sse"], "error", "EventSource from the unlisted origin")
        eq(bad["ws"], "error", "WebSocket from the unlisted origin")
        check(counter(srv, "refused_origin") >= 3, "the refusals were counted")
