"""Regressions found reviewing the issue 11 fixes as an attacker, against the real binary."""

import asyncio
import json
import os
import socket
import sqlite3
import time
import urllib.parse

from harness import Server, TestFailure, eq, run_async, wait_for
from test_access import DataDir, SP, server, tok


def _pipeline_creates(srv, token, prefix, nconns, per_conn):
    """nconns sockets, each with per_conn pipelined subscription creates (not read yet)."""
    socks = []
    for k in range(nconns):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        reqs = []
        for j in range(per_conn):
            body = json.dumps({"topic": f"{prefix}.{k}.{j}"}).encode()
            reqs.append(b"POST " + f"{SP}/topic".encode() + b" HTTP/1.1\r\nHost: x\r\n"
                        b"Authorization: Bearer " + token.encode() + b"\r\n"
                        b"Content-Type: application/json\r\nContent-Length: " +
                        str(len(body)).encode() + b"\r\n\r\n" + body)
        s.sendall(b"".join(reqs))
        socks.append(s)
    return socks


def _read_statuses(s, count, timeout=60.0):
    """The status codes of count pipelined answers on s."""
    s.settimeout(timeout * Server.TIMEOUT_SCALE)
    buf, got = b"", []
    while len(got) < count:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise TestFailure(f"connection closed after {len(got)} answers")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        got.append(int(lines[0].split()[1]))
        n = 0
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise TestFailure("connection closed inside an answer")
            buf += chunk
        buf = buf[n:]
    return got


def test_review_changes_past_the_hold_cap_log_once_and_tell_the_client():
    """While a connection's durable subscriptions load, the changes committed meanwhile are
    held (at most 4096). A user who makes more changes than that (an external write lock
    on the database makes the store queue them behind the load) used to get one
    durable_change_dropped log line per change per connection, and the connection silently
    missed them. Now: one line per connection, and the client gets an error record
    durable_subscriptions_unavailable telling it to reconnect."""
    with DataDir() as d, server(d, "--max-user-subscriptions=0", "--max-subscriptions=100000",
                                shards=1) as srv:
        u = tok("mallory")
        nconns, per_conn = 100, 45  # 4500 creates > 4096 held
        db = sqlite3.connect(os.path.join(d, "ringcast.db"), timeout=1, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # the store's writes wait (busy_timeout 5 s)
        locked = True
        try:
            socks = _pipeline_creates(srv, u, "flood", nconns, per_conn)

            async def go():
                import websockets
                nonlocal locked
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{srv.port}/api/realtime/ws?token=" + urllib.parse.quote(u),
                    max_size=2 ** 24)
                # authenticated at the handshake: its load is queued behind the creates
                db.execute("ROLLBACK")
                locked = False
                types, errors = {}, []
                deadline = time.monotonic() + 60 * Server.TIMEOUT_SCALE
                while time.monotonic() < deadline:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 30 * Server.TIMEOUT_SCALE))
                    types[m["type"]] = types.get(m["type"], 0) + 1
                    if m["type"] == "error":
                        errors.append(m["data"])
                        break
                await ws.close()
                return types, errors

            types, errors = run_async(go(), timeout=90)
            for s in socks:
                eq(set(_read_statuses(s, per_conn)), {201}, "every create succeeded")
                s.close()
        finally:
            if locked:
                db.execute("ROLLBACK")
            db.close()
        eq(types.get("authenticated"), 1, f"greeted once: {types}")
        eq(len(errors), 1, f"an error record: {types}")
        eq(errors[0]["code"], "durable_subscriptions_unavailable", f"its code: {errors[0]}")
        eq("reconnect" in errors[0]["message"], True, f"says what to do: {errors[0]}")
        wait_for(lambda: srv.log_has("durable_change_dropped"), 10, "the drop is logged")
        eq(srv.log().count("durable_change_dropped"), 1, "logged once for the connection")


def test_review_reauth_during_the_greeting_wait_is_answered_after_it():
    """A token at connect, then auth actions sent while the greeting waits for the
    durable subscriptions (the store is held by an external write lock): their
    authenticated answers used to go out at once, before the greeting and so before the
    durable subscriptions applied (the race item 9 closes), and out of order. Now they
    follow the greeting, in the order sent."""
    with DataDir() as d, server(d, shards=1) as srv:
        u = tok("trent")
        db = sqlite3.connect(os.path.join(d, "ringcast.db"), timeout=1, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        locked = True
        try:
            blocker = _pipeline_creates(srv, u, "hold", 1, 1)  # the store thread waits on it

            async def go():
                import websockets
                nonlocal locked
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{srv.port}/api/realtime/ws?token=" + urllib.parse.quote(u))
                for i in range(3):
                    await ws.send(json.dumps({"action": "auth", "token": u, "id": f"a{i}"}))
                # give the shard time to handle them while the store is still held (before
                # the fix their answers came here)
                early = []
                try:
                    while True:
                        early.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
                except asyncio.TimeoutError:
                    pass
                db.execute("ROLLBACK")
                locked = False
                got = list(early)
                while len(got) < 5:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 20 * Server.TIMEOUT_SCALE))
                    if m["type"] != "ping":
                        got.append(m)
                await ws.close()
                return early, got

            early, got = run_async(go())
            eq(_read_statuses(blocker[0], 1), [201], "the held create")
            blocker[0].close()
        finally:
            if locked:
                db.execute("ROLLBACK")
            db.close()
        eq(early, [], "nothing before the store answered")
        eq([(m["type"], m.get("id")) for m in got],
           [("connected", None), ("authenticated", None), ("authenticated", "a0"),
            ("authenticated", "a1"), ("authenticated", "a2")], "greeting, then the answers in order")


def test_review_refused_durable_subscriptions_log_a_bounded_number_of_lines():
    """A user whose durable subscriptions the rules refuse (rules changed over a
    restart) reconnects again and again: every refusal is counted and told to the
    connection, but the log gets at most one line per shard and 10 s, with a count."""
    from test_access import counters, must_create, ws_user

    with DataDir() as d:
        with server(d) as srv:
            for n in range(5):
                must_create(srv, {"topic": f"admin.r{n}"}, token=tok("bob"))
        with server(d, "--rules=admin.> subscribe=none") as srv:
            rounds = 12

            async def go():
                for _ in range(rounds):
                    ws = await ws_user(srv, "bob")
                    refused = 0
                    while refused < 5:
                        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if m["type"] == "error" and m["data"].get("durable_subscription"):
                            refused += 1
                    await ws.close()

            t0 = time.monotonic()
            run_async(go())
            took = time.monotonic() - t0
            eq(counters(srv)["durable_refused"], 5 * rounds, "every refusal counted")
            lines = [ln for ln in srv.log().splitlines() if "durable_subscription_refused" in ln]
            # two shards: at most one line each per started 10 s
            if not 1 <= len(lines) <= 2 * (1 + int(took // 10)):
                raise TestFailure(f"{len(lines)} log lines for {5 * rounds} refusals")
            if "refused=" not in lines[0]:
                raise TestFailure(f"the line carries no count: {lines[0]}")
