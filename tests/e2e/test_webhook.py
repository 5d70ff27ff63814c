"""Lifecycle webhooks (docs/API.md, "Lifecycle webhooks"): connect, subscribe,
unsubscribe and disconnect events POSTed in signed batches to a real HTTP
receiver (Python's http.server in a thread) that verifies every signature;
retries while it answers 500, with each connection's events in order; the
queue bound while it is down, the drop count reported once it is back; bad
configuration refused at start."""
import asyncio
import hashlib
import hmac
import json
import re
import threading
import time

import websockets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (Server, TestFailure, check, eq, hs256_token, http, run_async, wait_for,
                     ws_connect, ws_next, ws_request, ws_subscribe)
from test_operator import run_binary

SECRET = "webhook-jwt-secret-0123456789abcdef"
WH_SECRET = "webhook-signing-secret-42"


class Receiver:
    """A webhook backend: verifies X-Ringcast-Signature, keeps every batch, answers
    `status` (settable) to each POST; stop() closes the port, start() reopens it."""

    def __init__(self, secret=WH_SECRET, port=0):
        self.secret = secret.encode()
        self.batches = []  # bodies (dict) of POSTs answered 2xx
        self.posts = 0
        self.bad = []  # why a POST failed verification
        self.fail_next = 0  # answer 500 to this many POSTs
        self.lock = threading.Lock()
        self.port = port
        self.httpd = None

    def start(self):
        rcv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                status = rcv.handle(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, headers, body):
        with self.lock:
            self.posts += 1
            ts = headers.get("X-Ringcast-Timestamp", "")
            sig = headers.get("X-Ringcast-Signature", "")
            want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig, want):
                self.bad.append(f"signature {sig!r} != {want!r}")
                return 401
            if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
                self.bad.append(f"timestamp {ts!r}")
                return 401
            if headers.get("Content-Type") != "application/json":
                self.bad.append(f"content type {headers.get('Content-Type')!r}")
                return 400
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
            self.batches.append(json.loads(body))
            return 204

    def events(self):
        """Every event received once (deduplicated by id), in arrival order."""
        seen, out = set(), []
        with self.lock:
            for b in self.batches:
                for e in b["events"]:
                    if e["id"] not in seen:
                        seen.add(e["id"])
                        out.append(e)
        return out

    def dropped(self):
        with self.lock:
            return sum(b["dropped"] for b in self.batches)

    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks"


def wh_server(rcv, *extra):
    return Server(f"--jwt-secret={SECRET}", f"--webhook-url={rcv.url()}",
                  f"--webhook-secret={WH_SECRET}", "--webhook-flush=20ms", *extra)


def metric(srv, name):
    text = http(srv, "GET", "/metrics").body.decode()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def of_conn(rcv, conn_id):
    return [e for e in rcv.events() if e["connection_id"] == conn_id]


async def session(srv, user, topic):
    """connect (authenticated), subscribe, unsubscribe, close; returns the connection id."""
    ws = await ws_connect(srv, f"/api/realtime/ws?token={hs256_token(SECRET, user)}")
    await ws_next(ws, type_="authenticated")
    await ws_subscribe(ws, topic)
    r = await ws_request(ws, {"action": "unsubscribe", "topic": topic})
    eq(r.get("type"), "unsubscribed", f"unsubscribe answer {r}")
    cid = ws.connection_id
    await ws.close()
    return cid


def test_webhook_lifecycle_events_arrive_signed_with_their_fields():
    rcv = Receiver().start()
    try:
        with wh_server(rcv) as srv:
            cid = run_async(session(srv, "alice", "room.a"))
            wait_for(lambda: len(of_conn(rcv, cid)) >= 4, 10, "four events of the connection")
            evs = of_conn(rcv, cid)
            eq([e["type"] for e in evs], ["connect", "subscribe", "unsubscribe", "disconnect"],
               "event types in order")
            for e in evs:
                eq(e["user_id"], "alice", f"user of {e['type']}")
                check(abs(e["time"] / 1000 - time.time()) < 60, f"time of {e}")
                check(e["id"].endswith(tuple("0123456789")), f"id {e['id']}")
            eq(evs[1]["topic"], "room.a", "subscribe topic")
            eq(evs[2]["topic"], "room.a", "unsubscribe topic")
            check("topic" not in evs[0], "connect has no topic")
            eq(evs[3]["reason"], "client_close", "disconnect reason")
            eq(len({e["id"] for e in evs}), 4, "ids are unique")
            eq(rcv.batches[0]["dropped"], 0, "nothing dropped")
            check(rcv.batches[0]["node"], "node named")
            eq(rcv.bad, [], "every POST verified")
            wait_for(lambda: (metric(srv, "ringcast_webhook_events_sent_total") or 0) >= 4, 5,
                     "sent metric")
            eq(metric(srv, "ringcast_webhook_dropped_total"), 0, "dropped metric")
            st = http(srv, "GET", "/api/realtime/stats").json()["webhook"]
            check(st["sent"] >= 4 and st["queued"] >= 4, f"stats webhook object {st}")
            eq((st["dropped"], st["failed"]), (0, 0), "nothing dropped or failed in the stats")
            check("ringcast_webhook_post_seconds_count" in http(srv, "GET", "/metrics").body.decode(),
                  "latency histogram")
    finally:
        rcv.stop()


def test_webhook_events_filter_and_server_side_reasons():
    """webhook_events=connect,disconnect: no subscribe events; a server that drains
    reports reason drain."""
    rcv = Receiver().start()
    try:
        srv = wh_server(rcv, "--webhook-events=connect,disconnect").start()

        async def go():
            ws = await ws_connect(srv, f"/api/realtime/ws?token={hs256_token(SECRET, 'bob')}")
            await ws_next(ws, type_="authenticated")
            await ws_subscribe(ws, "room.b")
            return ws

        async def drain_with_client_open():
            ws = await go()
            await asyncio.get_running_loop().run_in_executor(
                None, wait_for, lambda: of_conn(rcv, ws.connection_id), 10, "the connect event")
            # stopping drains: the client gets 1012 and the disconnect is delivered
            # before the process exits
            stop = asyncio.get_running_loop().run_in_executor(None, srv.stop)
            try:
                while True:
                    await ws.recv()
            except Exception:
                pass
            await stop
            return ws.connection_id

        cid = run_async(drain_with_client_open())
        evs = of_conn(rcv, cid)
        eq([e["type"] for e in evs], ["connect", "disconnect"], "only the listed types")
        eq(evs[1]["reason"], "drain", "reason of a drained connection")
        eq(rcv.bad, [], "every POST verified")
    finally:
        rcv.stop()


def test_webhook_retries_500_and_keeps_each_connections_order():
    rcv = Receiver().start()
    rcv.fail_next = 3
    try:
        with wh_server(rcv, "--webhook-batch=3", "--webhook-retry-max=300ms") as srv:
            async def go():
                return await asyncio.gather(*[session(srv, f"u{i}", f"t.{i}") for i in range(8)])

            cids = run_async(go())
            wait_for(lambda: all(len(of_conn(rcv, c)) >= 4 for c in cids), 20,
                     "every connection's four events despite the 500s")
            for c in cids:
                eq([e["type"] for e in of_conn(rcv, c)],
                   ["connect", "subscribe", "unsubscribe", "disconnect"], f"order of {c}")
            sizes = [len(b["events"]) for b in rcv.batches]
            check(max(sizes) == 3, f"batches of at most webhook_batch=3, full ones seen: {sizes}")
            check(rcv.posts >= len(rcv.batches) + 3, "the failed POSTs were made")
            check(metric(srv, "ringcast_webhook_retries_total") >= 3, "retries counted")
            check(metric(srv, "ringcast_webhook_posts_failed_total") >= 3, "failures counted")
            check(srv.log_has(r"event=webhook_post_failed .*status=500"), "failure logged")
            eq(rcv.bad, [], "every POST verified")
    finally:
        rcv.stop()


def test_webhook_queue_bound_holds_while_receiver_is_down_and_drops_are_reported():
    rcv = Receiver().start()
    port = rcv.port
    rcv.stop()  # down: connections to it are refused
    with wh_server(rcv, "--webhook-queue=20", "--webhook-batch=10",
                   "--webhook-retry-max=200ms", "--webhook-events=connect") as srv:
        async def go():
            ids = []
            for i in range(60):
                ws = await ws_connect(srv)
                ids.append(ws.connection_id)
                await ws.close()
            return ids

        cids = run_async(go())
        wait_for(lambda: (metric(srv, "ringcast_webhook_events_queued_total") or 0) >= 60, 10,
                 "all 60 events queued")
        wait_for(lambda: (metric(srv, "ringcast_webhook_dropped_total") or 0) >= 30, 10,
                 "the oldest dropped")
        check(metric(srv, "ringcast_webhook_queue_depth") <= 20, "queue depth within the bound")
        check(srv.log_has(r"event=webhook_dropped "), "drops logged")
        dropped = metric(srv, "ringcast_webhook_dropped_total")
        rcv2 = Receiver(port=port).start()
        try:
            wait_for(lambda: len(rcv2.events()) + rcv2.dropped() >= 60, 15,
                     "delivered + reported dropped = emitted")
            eq(rcv2.dropped(), dropped, "the drop count is reported in the batches")
            eq(len(rcv2.events()) + dropped, 60, "every event delivered or counted")
            got = {e["connection_id"] for e in rcv2.events()}
            # kept: the batch in flight when the receiver went away (the oldest, at most
            # webhook_batch) and the newest webhook_queue; dropped: those in between
            check(set(cids[-20:]) <= got, "the newest 20 events were kept")
            check(not set(cids[10:40]) <= got, "events in the middle were dropped")
            eq(rcv2.bad, [], "every POST verified")
        finally:
            rcv2.stop()


def test_webhook_bad_config_is_refused_at_start():
    for arg, words in [("--webhook-url=ftp://example.com/x", "webhook_url"),
                       ("--webhook-url=https://", "webhook_url"),
                       ("--webhook-events=connect,bogus", "webhook_events"),
                       ("--webhook-batch=0", "webhook_batch")]:
        p = run_binary("--port=0", arg)
        eq(p.returncode, 2, f"exit code for {arg}: {p.stdout}{p.stderr}")
        out = (p.stdout + p.stderr).replace("-", "_")
        check(words in out, f"{arg}: message names {words}: {p.stderr}")


def test_webhook_sse_stream_and_presence_events():
    """An SSE stream with a token: connect then subscribe (its topic from the URL),
    unsubscribe then disconnect once it closes; on a topic with presence the user's
    presence_join / presence_leave arrive too."""
    from test_sse import SSE

    rcv = Receiver().start()
    try:
        with wh_server(rcv, "--presence=true") as srv:
            sse = SSE(srv, f"?topic=room.p&token={hs256_token(SECRET, 'carol')}")
            wait_for(lambda: [e for e in rcv.events() if e["type"] == "presence_join"], 10,
                     "presence_join")
            sse.sock.shutdown(2)  # SHUT_RDWR: the server sees the FIN at once
            sse.close()
            wait_for(lambda: [e for e in rcv.events() if e["type"] == "disconnect"], 10,
                     "the disconnect")
            evs = [e for e in rcv.events() if e["user_id"] == "carol"]
            types = [e["type"] for e in evs]
            for t in ("connect", "subscribe", "presence_join", "unsubscribe", "disconnect"):
                check(t in types, f"{t} in {types}")
            # one connection's own events in order (presence is the topic's, on its owner shard)
            own = [t for t in types if not t.startswith("presence")]
            eq(own, ["connect", "subscribe", "unsubscribe", "disconnect"], "SSE events in order")
            wait_for(lambda: [e for e in rcv.events() if e["type"] == "presence_leave"], 10,
                     "presence_leave")
            pj = next(e for e in rcv.events() if e["type"] == "presence_join")
            eq((pj["topic"], pj["user_id"]), ("room.p", "carol"), "presence_join fields")
            eq(rcv.bad, [], "every POST verified")
    finally:
        rcv.stop()


def test_webhook_disconnect_reason_heartbeat_timeout():
    """A WebSocket client that upgrades and then says nothing (not even a pong) is
    closed after heartbeat_timeout: its disconnect says heartbeat_timeout."""
    from harness import raw_connect

    rcv = Receiver().start()
    try:
        with wh_server(rcv, "--heartbeat-interval=1s", "--heartbeat-timeout=2s") as srv:
            s = raw_connect(srv)
            s.sendall(b"GET /api/realtime/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            try:
                dis = wait_for(lambda: [e for e in rcv.events() if e["type"] == "disconnect"],
                               15, "the silent client's disconnect")
            finally:
                s.close()
            eq(dis[0]["reason"], "heartbeat_timeout", "reason")
            eq(dis[0]["user_id"], None, "anonymous")
            eq([e["type"] for e in of_conn(rcv, dis[0]["connection_id"])],
               ["connect", "disconnect"], "its events")
    finally:
        rcv.stop()


def test_webhook_disconnect_reasons_connection_limit_and_admin():
    """A connection closed by max_connections_per_user says connection_limit; one closed through
    POST /api/realtime/disconnect says admin_disconnect."""
    rcv = Receiver().start()
    try:
        with wh_server(rcv, "--max-connections-per-user=1") as srv:
            async def go():
                first = await ws_connect(srv, f"/api/realtime/ws?token={hs256_token(SECRET, 'lim')}")
                await ws_next(first, type_="authenticated")
                second = None
                try:  # closed with 4008 a home-shard round trip after it opens: maybe at once
                    second = await ws_connect(srv, f"/api/realtime/ws?token={hs256_token(SECRET, 'lim')}")
                except websockets.exceptions.ConnectionClosed as e:
                    eq(e.rcvd.code if e.rcvd else None, 4008, "closed for the limit")
                dis = wait_for(lambda: [e for e in rcv.events() if e["type"] == "disconnect"
                                        and e["user_id"] == "lim"], 15, "the refused one's disconnect")
                check(dis[0]["connection_id"] != first.connection_id, "the second one was refused")
                eq(dis[0]["reason"], "connection_limit", "refused by the per-user limit")
                r = http(srv, "POST", "/api/realtime/disconnect", json.dumps({"user_id": "lim"}))
                eq(r.status, 200, f"disconnect: {r.body!r}")
                dis = wait_for(lambda: [e for e in of_conn(rcv, first.connection_id)
                                        if e["type"] == "disconnect"], 15, "the admin's disconnect")
                eq(dis[0]["reason"], "admin_disconnect", "closed by the administrator")
                await first.close()
                if second:
                    await second.close()
            run_async(go())
    finally:
        rcv.stop()
