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
