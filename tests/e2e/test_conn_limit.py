"""max_connections_per_user: exact across shards (each user counted on one home shard), refuse
(close code 4008) or close the user's oldest connection; SSE and the WebSocket auth message count;
0 = unlimited; bad values refused at start."""

import asyncio
import http.client as httpclient
import json
import subprocess
import time
import urllib.parse

import websockets

from harness import (Server, TestFailure, check, eq, hs256_token, http, run_async, shard_of,
                     wait_for, ws_connect, ws_request)

SECRET = "e2e-connlimit-hs256-secret-0123456789abcdef"
CODE = 4008


def tok(sub):
    return hs256_token(SECRET, sub, 600)


def server(*extra):
    return Server(f"--jwt-secret={SECRET}", *extra)


def path_for(sub):
    return "/api/realtime/ws?token=" + urllib.parse.quote(tok(sub))


async def closed_with(ws, timeout=10.0):
    """Read until ws closes; (code, reason). Fails if it stays open."""
    deadline = time.monotonic() + timeout * Server.TIMEOUT_SCALE
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("the connection stayed open")
            await asyncio.wait_for(ws.recv(), left)
    except websockets.exceptions.ConnectionClosed as e:
        return (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, None)
    except asyncio.TimeoutError:
        raise TestFailure("the connection stayed open")


PINGS = iter(range(1, 1 << 30))


async def still_open(ws):
    """A ping answered (messages before its pong skipped): the connection is live."""
    pid = f"p{next(PINGS)}"
    await ws.send(json.dumps({"action": "ping", "id": pid}))
    deadline = time.monotonic() + 10 * Server.TIMEOUT_SCALE
    while True:
        left = deadline - time.monotonic()
        check(left > 0, "the ping was answered")
        m = json.loads(await asyncio.wait_for(ws.recv(), left))
        if m.get("type") == "pong" and m.get("id") == pid:
            return


async def open_raw(srv, sub):
    """A WebSocket for sub, without asserting the greeting (a refusal may come first)."""
    return await websockets.connect(f"ws://127.0.0.1:{srv.port}{path_for(sub)}",
                                    open_timeout=10 * Server.TIMEOUT_SCALE)


async def spread_user(srv, n, prefix):
    """n admitted connections of one user that use both shards (a fresh user per try)."""
    for k in range(20):
        sub = f"{prefix}{k}"
        conns = [await ws_connect(srv, path_for(sub)) for _ in range(n)]
        if len({shard_of(c.connection_id) for c in conns}) == 2:
            for c in conns:
                await still_open(c)
            return sub, conns
        for c in conns:
            await c.close()
    raise TestFailure("the kernel never spread the connections over both shards")


def counters(srv):
    r = http(srv, "GET", "/api/realtime/stats")
    eq(r.status, 200, f"stats: {r}")
    return r.json()["counters"]


def metric(srv, name):
    """The sum over shards of ringcast_<name>_total in /metrics."""
    r = http(srv, "GET", "/metrics")
    eq(r.status, 200, "metrics")
    total, seen = 0, False
    for line in r.body.decode().splitlines():
        if line.startswith(f"ringcast_{name}_total{{"):
            total += int(float(line.rsplit(" ", 1)[1]))
            seen = True
    check(seen, f"ringcast_{name}_total in /metrics")
    return total


def test_conn_limit_refuses_past_the_limit_across_shards():
    with server("--max-connections-per-user=3") as srv:
        async def go():
            sub, conns = await spread_user(srv, 3, "alice")
            extra = await open_raw(srv, sub)
            code, reason = await closed_with(extra)
            eq(code, CODE, "the 4th connection's close code")
            eq(reason, f"connection limit: user {sub} already has 3 connections "
                       "(max_connections_per_user)", "its reason")
            for c in conns:
                await still_open(c)  # the admitted ones stay
            # other users are unaffected
            others = [await ws_connect(srv, path_for("bob")) for _ in range(3)]
            for c in others:
                await still_open(c)
            # anonymous connections are not counted
            anon = [await ws_connect(srv) for _ in range(5)]
            for c in anon:
                await still_open(c)
            # one closed: a new one is admitted (once the release reached the home shard)
            await conns[0].close()
            deadline = time.monotonic() + 10 * Server.TIMEOUT_SCALE
            while True:
                check(time.monotonic() < deadline, "a place came free within 10 s")
                c = await open_raw(srv, sub)
                try:
                    await asyncio.wait_for(c.recv(), 5)  # connected
                    await c.send(json.dumps({"action": "ping", "id": 1}))
                    await asyncio.wait_for(c.recv(), 5)
                    # admitted or not, a refusal would close it within a round trip of the
                    # home shard: a second ping settles it
                    await c.send(json.dumps({"action": "ping", "id": 2}))
                    await asyncio.wait_for(c.recv(), 5)
                    break
                except websockets.exceptions.ConnectionClosed as e:
                    eq(e.rcvd.code if e.rcvd else None, CODE, "a refusal while the place frees")
            # and now it is full again
            extra = await open_raw(srv, sub)
            eq((await closed_with(extra))[0], CODE, "full again")
            for x in conns[1:] + others + anon + [c]:
                await x.close()
        run_async(go())
        refused = wait_for(lambda: counters(srv)["conn_limit_refused"] or None, 10,
                           "conn_limit_refused to count")
        check(refused >= 2, f"both refusals counted: {refused}")
        eq(metric(srv, "conn_limit_refused"), refused, "/metrics agrees")
        eq(counters(srv)["conn_limit_oldest"], 0, "nothing closed as oldest")
        check(srv.log_has("conn_limit_refused"), "a log line for the refusals")


def test_conn_limit_oldest_policy_closes_the_first_opened():
    with server("--max-connections-per-user=2", "--connection-limit-policy=oldest") as srv:
        async def go():
            sub, (a, b) = await spread_user(srv, 2, "olga")
            c = await ws_connect(srv, path_for(sub))
            code, reason = await closed_with(a)
            eq(code, CODE, "the oldest connection's close code")
            check("oldest" in reason, f"its reason names the policy: {reason!r}")
            for x in (b, c):
                await still_open(x)
            d = await ws_connect(srv, path_for(sub))
            eq((await closed_with(b))[0], CODE, "then the next oldest")
            for x in (c, d):
                await still_open(x)
                await x.close()
        run_async(go())
        eq(counters(srv)["conn_limit_oldest"], 2, "two closed as oldest")
        eq(metric(srv, "conn_limit_oldest"), 2, "/metrics agrees")
        eq(counters(srv)["conn_limit_refused"], 0, "none refused")


def sse_open(srv, sub, timeout=10.0):
    conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=timeout * Server.TIMEOUT_SCALE)
    conn.request("GET", "/api/realtime/events?topic=news&token=" + urllib.parse.quote(tok(sub)),
                 headers={"Accept": "text/event-stream"})
    r = conn.getresponse()
    eq(r.status, 200, "SSE stream opens")
    return conn, r


def sse_records(r):
    """Every record until the stream ends, as dicts."""
    out, rec = [], {}
    for raw in r.fp:
        line = raw.decode().rstrip("\n")
        if line == "":
            if rec:
                out.append(rec)
            rec = {}
        elif not line.startswith(":"):
            k, _, v = line.partition(":")
            rec[k] = v[1:] if v.startswith(" ") else v
    return out


def test_conn_limit_counts_sse_and_the_auth_message():
    with server("--max-connections-per-user=1") as srv:
        async def go():
            ws = await ws_connect(srv, path_for("carol"))
            await still_open(ws)
            conn, r = await asyncio.to_thread(sse_open, srv, "carol")
            recs = await asyncio.to_thread(sse_records, r)
            conn.close()
            last = recs[-1]
            eq(last.get("event"), "disconnect", f"the stream's last record: {recs}")
            d = json.loads(last["data"])
            eq(d["code"], CODE, "SSE disconnect code")
            check("already has 1 connections" in d["reason"], f"reason {d['reason']!r}")
            await still_open(ws)
            # the auth message path: an anonymous connection that authenticates as carol
            anon = await ws_connect(srv)
            await anon.send(json.dumps({"action": "auth", "token": tok("carol"), "id": 1}))
            eq((await closed_with(anon))[0], CODE, "refused after the auth message")
            # a re-auth with another token of the same user does not count twice
            await ws.send(json.dumps({"action": "auth", "token": tok("carol"), "id": 2}))
            r2 = json.loads(await asyncio.wait_for(ws.recv(), 10))
            eq(r2.get("type"), "authenticated", f"re-auth answered: {r2}")
            await still_open(ws)
            await ws.close()
            # an SSE stream is admitted once the user has no other connection
            deadline = time.monotonic() + 10 * Server.TIMEOUT_SCALE
            while True:
                check(time.monotonic() < deadline, "the SSE stream admitted within 10 s")
                conn, r = await asyncio.to_thread(sse_open, srv, "carol", 1.0)
                try:
                    recs = await asyncio.to_thread(sse_records, r)
                except (TimeoutError, OSError):
                    conn.close()
                    break  # still streaming after 1 s: admitted
                conn.close()
                eq(recs[-1].get("event"), "disconnect", "refused while the place frees")
        run_async(go())


def test_conn_limit_zero_is_unlimited():
    with server() as srv:
        async def go():
            conns = [await ws_connect(srv, path_for("dave")) for _ in range(12)]
            for c in conns:
                await still_open(c)
                await c.close()
        run_async(go())


def test_conn_limit_bad_values_refused_at_start():
    for args, word in ((["--max-connections-per-user=-1"], "max_connections_per_user"),
                       (["--max-connections-per-user=1000001"], "max_connections_per_user"),
                       (["--max-connections-per-user=lots"], "max_connections_per_user"),
                       (["--connection-limit-policy=newest"], "connection_limit_policy")):
        p = subprocess.run([Server.BINARY, "checkconfig"] + args, capture_output=True, text=True,
                           timeout=30 * Server.TIMEOUT_SCALE)
        check(p.returncode != 0, f"{args} refused (exit {p.returncode})")
        check(word in p.stderr or word.replace("_", "-") in p.stderr,
              f"{args}: stderr names {word}: {p.stderr!r}")
    p = subprocess.run([Server.BINARY, "checkconfig", "--max-connections-per-user=5",
                        "--connection-limit-policy=oldest"], capture_output=True, text=True,
                       timeout=30 * Server.TIMEOUT_SCALE)
    eq(p.returncode, 0, f"good values pass checkconfig: {p.stderr!r}")


def test_conn_limit_exact_under_concurrent_connects():
    with server("--max-connections-per-user=5") as srv:
        async def go():
            conns = await asyncio.gather(*(open_raw(srv, "zed") for _ in range(20)))
            codes = {}

            async def watch(i, c):
                try:
                    async for _ in c:
                        pass
                except websockets.exceptions.ConnectionClosed:
                    pass
                codes[i] = c.close_code
            tasks = [asyncio.ensure_future(watch(i, c)) for i, c in enumerate(conns)]
            deadline = time.monotonic() + 10 * Server.TIMEOUT_SCALE
            while len(codes) < 15:
                check(time.monotonic() < deadline, f"15 refused within 10 s: {codes}")
                await asyncio.sleep(0.01)
            eq(sorted(set(codes.values())), [CODE], "every close is the limit's")
            open_ = [c for i, c in enumerate(conns) if i not in codes]
            eq(len(open_), 5, "exactly the limit stays open")
            for c in open_:
                await c.send(json.dumps({"action": "ping", "id": "last"}))
            for c in open_:
                await c.close()
            await asyncio.gather(*tasks)
            eq(len([v for v in codes.values() if v == CODE]), 15, "no more refusals")
        run_async(go())
        eq(counters(srv)["conn_limit_refused"], 15, "15 refusals counted")
