"""drain_spread: on SIGTERM, WebSocket clients close with 1012, spread evenly."""
import asyncio
import signal
import time

import websockets

from harness import Server, check


async def _drain_times(srv, n):
    conns = [await websockets.connect(srv.ws_url) for _ in range(n)]
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)

    async def closed(ws):
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        return time.monotonic() - t0, ws.close_code

    return await asyncio.wait_for(asyncio.gather(*(closed(w) for w in conns)), 30)


def test_drain_spread_ws_1012_spread_evenly():
    srv = Server("--drain-spread=4s").start()
    res = asyncio.run(_drain_times(srv, 40))
    srv.stop()
    codes = {c for _, c in res}
    check(codes == {1012}, f"close codes {codes}, want only 1012")
    ts = sorted(t for t, _ in res)
    check(ts[-1] - ts[0] >= 0.6 * 4, f"close times span {ts[-1] - ts[0]:.2f}s, want >= 2.4s")
    for q in range(4):
        k = sum(1 for t in ts if q <= t < q + 1)
        check(k <= 40 // 3, f"{k} closes in quarter {q} of the spread, want <= 13")


def test_drain_spread_zero_closes_all_at_once():
    srv = Server("--drain-spread=0").start()
    res = asyncio.run(_drain_times(srv, 20))
    srv.stop()
    check({c for _, c in res} == {1012}, "close code 1012")
    ts = sorted(t for t, _ in res)
    check(ts[-1] - ts[0] < 1.0, f"close times span {ts[-1] - ts[0]:.2f}s, want < 1s")


def test_drain_spread_bad_values_refused_by_check_config():
    import subprocess
    for bad, want in (("2h", "out of range"), ("abc", "not a duration"), ("-1s", "drain-spread")):
        p = subprocess.run([Server.BINARY, "--check-config", f"--drain-spread={bad}"],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 2, f"--drain-spread={bad}: exit {p.returncode}, want 2")
        check(want in p.stderr, f"--drain-spread={bad}: stderr {p.stderr!r} lacks {want!r}")


def test_drain_keeps_listening_healthz_503_and_new_streams_refused():
    """During the spread the listener stays open: /healthz answers 503
    draining (a load balancer takes the node out at its next check, rather
    than seeing a refused connect), a new WebSocket or SSE handshake gets 503
    draining, and the process exits once the spread is over."""
    from harness import http
    srv = Server("--drain-spread=3s").start()

    async def run():
        conns = [await websockets.connect(srv.ws_url) for _ in range(6)]
        srv.proc.send_signal(signal.SIGTERM)
        from harness import wait_for
        wait_for(lambda: http(srv, "GET", "/healthz").status == 503, 5, "healthz 503")
        r = http(srv, "GET", "/healthz")
        check(r.json() == {"status": "draining"}, f"healthz body {r.json()}")
        r = http(srv, "GET", "/api/realtime/events?topic=a")
        check(r.status == 503 and r.json()["error"]["code"] == "draining", f"SSE {r}")
        try:
            await websockets.connect(srv.ws_url)
            check(False, "a WebSocket handshake was accepted while draining")
        except websockets.InvalidStatusCode as e:
            check(e.status_code == 503, f"WebSocket handshake status {e.status_code}")
        codes = []
        for ws in conns:
            try:
                async for _ in ws:
                    pass
            except websockets.ConnectionClosed:
                pass
            codes.append(ws.close_code)
        return codes

    codes = asyncio.run(asyncio.wait_for(run(), 30))
    check(set(codes) == {1012}, f"close codes {codes}")
    t0 = time.monotonic()
    srv.stop()
    check(time.monotonic() - t0 < 10, "exit after the spread")


def test_drain_spread_sse_streams_spread_too():
    """SSE streams are closed spread over drain_spread as WebSocket clients are."""
    import socket
    srv = Server("--drain-spread=3s").start()
    socks = []
    for _ in range(12):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /api/realtime/events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        check(b"200" in s.recv(4096).split(b"\r\n", 1)[0], "SSE stream open")
        socks.append(s)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    import selectors
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    ends = []
    deadline = t0 + 15
    while len(ends) < len(socks):
        check(time.monotonic() < deadline, "an SSE stream was not closed by the drain")
        for key, _ in sel.select(timeout=1):
            try:
                b = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            if not b:
                ends.append(time.monotonic() - t0)
                sel.unregister(key.fileobj)
                key.fileobj.close()
    srv.stop()
    ends.sort()
    check(ends[-1] - ends[0] >= 0.5 * 3, f"SSE closes span {ends[-1] - ends[0]:.2f}s, want >= 1.5s: {ends}")
