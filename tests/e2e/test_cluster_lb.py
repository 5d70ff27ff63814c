"""Three ringcast nodes behind a real haproxy (deploy/haproxy.cfg: mode tcp,
leastconn, health checks on /healthz, PROXY protocol v2) with a real
redis-server: a node killed with SIGKILL (its clients reconnect through
haproxy and resume without a gap; the other clients never notice) and a node
drained with SIGTERM (haproxy takes it out, its clients are closed with 1012
spread over drain_spread and reconnect to the others)."""
import asyncio
import json
import signal
import threading
import time

import websockets

from cluster import HAProxy, Nodes, Port, Redis
from harness import TestFailure, check, eq, http, publish, run_async, ws_next


async def lb_client(front, topic, since=None):
    """A WebSocket client through haproxy subscribed to topic (resuming after
    since); returns (ws, the node's connection id)."""
    ws = await websockets.connect(f"ws://127.0.0.1:{front.port}/api/realtime/ws", max_size=2 ** 24)
    hello = json.loads(await ws.recv())
    eq(hello["type"], "connected", "greeting")
    ws.connection_id = hello["data"]["connection_id"]
    msg = {"action": "subscribe", "topic": topic, "id": 1}
    if since:
        msg["since"] = since
    await ws.send(json.dumps(msg))
    r = await ws_next(ws, type_="subscribed")
    eq(r["data"]["topic"], topic, "subscribed")
    return ws


async def await_for(cond, timeout, what):
    """wait_for for coroutines: polls cond while the event loop runs the clients."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def node_conns(srv):
    """Open WebSocket/SSE connections of a node (its stats)."""
    r = http(srv, "GET", "/api/realtime/stats")
    return r.json()["total_connections"]


class Client:
    """One subscriber through haproxy that records every event and, when its
    connection is lost, reconnects through haproxy resuming from its last id."""

    def __init__(self, front, topic):
        self.front, self.topic = front, topic
        self.ids = []
        self.reconnects = 0
        self.close_codes = []
        self.trace = []  # (connection number, its since, event id), for failure reports
        self.conn_id = None

    async def run(self, want):
        since = None
        while len(self.ids) < want:
            try:
                ws = await lb_client(self.front, self.topic, since)
                self.conn_id = ws.connection_id
            except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed):
                await asyncio.sleep(0.05)  # the node went away between haproxy's checks
                continue
            try:
                while len(self.ids) < want:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 30)
                    except asyncio.TimeoutError:
                        raise TestFailure(
                            f"a client waited 30 s for an event: {len(self.ids)} of {want}, last "
                            f"{since}, resumed {self.reconnects} times (codes {self.close_codes}), "
                            f"this connection {self.conn_id}, missing seqs "
                            f"{sorted(set(range(1, want + 1)) - {int(i.rsplit('-', 1)[1]) for i in self.ids})}"
                        ) from None
                    m = json.loads(raw)
                    if m["type"] == "event":
                        self.trace.append((self.reconnects, since, m["data"]["id"]))
                        self.ids.append(m["data"]["id"])
                        since = m["data"]["id"]
                    elif m["type"] == "error":
                        raise TestFailure(f"error on the stream: {m}")
                await ws.close()
            except websockets.ConnectionClosed as e:
                self.close_codes.append(e.code)
                self.reconnects += 1
                if since is None and not self.ids:
                    raise TestFailure("lost before any event: cannot resume")


def cluster_with_lb(redis, *args):
    return Nodes(redis, 3, "--proxy-protocol=true", "--history-size=10000", *args)


def run_clients(front, nodes, topic, nclients, total, pub_node, at, act, pace):
    """nclients Clients through haproxy; once all are subscribed, a publisher on
    pub_node sends total events (pace seconds apart) and calls act() after
    event `at`. Returns (clients, the published ids, connections per node
    before the publishing)."""
    async def run():
        clients = [Client(front, topic) for _ in range(nclients)]
        tasks = [asyncio.ensure_future(c.run(total)) for c in clients]
        # every client subscribed (its first subscription has no `since`: it gets the
        # events published after its "subscribed"), and the nodes count them all
        await await_for(lambda: all(c.conn_id for c in clients), 20, f"{nclients} subscribed")
        await await_for(lambda: sum(node_conns(n) for n in nodes) >= nclients, 20,
                        f"{nclients} connected")
        spread = [node_conns(n) for n in nodes]
        ids = []

        def publisher():
            for i in range(total):
                ids.append(publish(pub_node, topic, {"n": i}))
                if i == at:
                    act()
                time.sleep(pace)

        th = threading.Thread(target=publisher)
        th.start()
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), 90)
        finally:
            th.join()
        return clients, ids, spread

    return run_async(run(), 120)


def check_clients(clients, ids):
    for c in clients:
        if c.ids != ids:
            dups = [t for t in c.trace if c.ids.count(t[2]) > 1]
            raise TestFailure(f"a client lost or repeated events: repeated {dups[:4]} "
                              f"missing {sorted(set(ids) - set(c.ids))[:5]}")


def test_cluster_lb_node_killed_clients_resume_through_haproxy():
    """30 clients through haproxy spread over 3 nodes; a publisher on node 1
    sends 600 events; node 3 is killed with SIGKILL halfway. Its clients
    reconnect through haproxy (to the live nodes) resuming from their last id;
    every client ends with all 600 events once, in order; the clients of the
    other nodes are never disconnected."""
    with Redis() as redis, cluster_with_lb(redis) as nodes:
        lb = HAProxy(nodes).start()
        try:
            front = Port(lb.port)
            lb.wait_up(front)
            clients, ids, spread = run_clients(front, nodes, "feed.live", 30, 600, nodes[0], 300,
                                               nodes[2].proc.kill, 0.002)
            check(all(k > 0 for k in spread), f"connections per node {spread}")
            nodes[2].proc.wait()
            nodes[2].proc = None
            check_clients(clients, ids)
            moved = sum(1 for c in clients if c.reconnects)
            eq(moved, spread[2], "exactly the killed node's clients reconnected")
        finally:
            lb.close()


def test_cluster_lb_drain_spreads_reconnects_to_the_other_nodes():
    """Node 1 is stopped with SIGTERM (drain_spread=3s): haproxy takes it out
    (its /healthz answers 503), its clients are closed with 1012 spread over
    the spread and reconnect through haproxy to nodes 2 and 3, resuming
    without loss while events keep coming."""
    with Redis() as redis, cluster_with_lb(redis, "--drain-spread=3s") as nodes:
        lb = HAProxy(nodes).start()
        try:
            front = Port(lb.port)
            lb.wait_up(front)
            clients, ids, spread = run_clients(
                front, nodes, "feed.drain", 24, 400, nodes[1], 50,
                lambda: nodes[0].proc.send_signal(signal.SIGTERM), 0.01)
            check(spread[0] > 0, "node 1 has clients")
            eq(nodes[0].proc.wait(30), 0, "the drained node's exit code")
            nodes[0].check_clean()
            nodes[0].proc = None
            check_clients(clients, ids)
            drained = [c for c in clients if c.reconnects]
            eq(len(drained), spread[0], "the drained node's clients, and only they, moved")
            for c in drained:
                eq(c.close_codes, [1012], "closed with 1012 (service restart)")
        finally:
            lb.close()
