"""GET /metrics (issue 15): the Prometheus text exposition of every shard's
counters, gauges and histograms, checked with Debian's promtool (an
independent parser and linter), scraped with urllib; clients publish and
receive through http.client and the websockets package. Also the access rules
and the Grafana dashboard's queries (deploy/grafana-dashboard.json)."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

from harness import (Server, TestFailure, check, eq, http, publish, run_async, wait_for,
                     ws_connect, ws_next, ws_request, ws_subscribe)

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "..", "..", "deploy", "grafana-dashboard.json")
KEY_ADMIN = "metrics-admin-key-0123456789abcdef"
KEY_PUBLISH = "metrics-publish-key-0123456789abcd"
CTYPE = "text/plain; version=0.0.4; charset=utf-8"


# ---- helpers ------------------------------------------------------------------------------------

def scrape(srv, path="/metrics", headers=None, port=None):
    """(status, content type, text) of one scrape with urllib."""
    req = urllib.request.Request(f"http://127.0.0.1:{port or srv.port}{path}",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10 * Server.TIMEOUT_SCALE) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def promtool_check(text):
    """promtool check metrics must exit 0 and report no lint problem."""
    exe = shutil.which("promtool")
    if not exe:
        raise TestFailure("promtool not found: install the Debian package prometheus "
                          "(scripts/deps.sh test)")
    p = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    eq(p.returncode, 0, f"promtool exit code (stdout {p.stdout!r} stderr {p.stderr!r})")
    eq((p.stdout + p.stderr).strip(), "", "promtool lint output")


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{"types": {family: type}, "samples": [(name, {labels}, float)]}."""
    types, samples = {}, []
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, typ = ln.split(" ", 3)
            types[name] = typ
        elif ln and not ln.startswith("#"):
            m = SAMPLE.match(ln)
            check(m, f"unparsable sample line {ln!r}")
            labels = dict(LABEL.findall(m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return {"types": types, "samples": samples}


def values(m, name, **want):
    return [v for n, l, v in m["samples"]
            if n == name and all(l.get(k) == w for k, w in want.items())]


def total(m, name, **want):
    return sum(values(m, name, **want))


def check_histogram(m, name, shards):
    """Per shard: le ascending, counts cumulative, +Inf == _count, _sum >= 0."""
    eq(m["types"].get(name), "histogram", f"TYPE of {name}")
    for sh in shards:
        buckets = [(l["le"], v) for n, l, v in m["samples"]
                   if n == name + "_bucket" and l.get("shard") == sh]
        check(len(buckets) >= 2, f"{name} shard {sh}: buckets {buckets}")
        eq(buckets[-1][0], "+Inf", f"{name} shard {sh}: last le")
        les = [float(le) for le, _ in buckets[:-1]]
        eq(les, sorted(les), f"{name} shard {sh}: le ascending")
        counts = [v for _, v in buckets]
        eq(counts, sorted(counts), f"{name} shard {sh}: cumulative bucket counts")
        count = values(m, name + "_count", shard=sh)
        eq(count, [buckets[-1][1]], f"{name} shard {sh}: _count vs +Inf bucket")
        s = values(m, name + "_sum", shard=sh)
        check(len(s) == 1 and s[0] >= 0, f"{name} shard {sh}: _sum {s}")
        if count[0] == 0:
            eq(s[0], 0.0, f"{name} shard {sh}: _sum without samples")


async def subscribe_and_receive(srv, topic, n):
    ws = await ws_connect(srv)
    try:
        await ws_subscribe(ws, topic)
        for i in range(n):
            publish(srv, topic, {"i": i})
        for i in range(n):
            ev = await ws_next(ws, type_="event")
            eq(ev["data"]["data"], {"i": i}, "event data")
        return ws.connection_id
    finally:
        await ws.close()


# ---- tests --------------------------------------------------------------------------------------

def test_metrics_pass_promtool_and_count_publishes_and_deliveries():
    with Server(shards=2) as srv:
        status, ctype, text = scrape(srv)
        eq(status, 200, "status")
        eq(ctype, CTYPE, "content type")
        promtool_check(text)
        before = parse(text)
        eq(sorted({l["shard"] for n, l, _ in before["samples"] if "shard" in l}), ["0", "1"],
           "shard labels")
        eq(values(before, "ringcast_shards"), [2.0], "ringcast_shards")

        run_async(subscribe_and_receive(srv, "metrics.chat", 5))

        status, _, text = scrape(srv)
        eq(status, 200, "status after publishing")
        promtool_check(text)
        after = parse(text)
        eq(total(after, "ringcast_published_total") - total(before, "ringcast_published_total"),
           5.0, "published_total moved by the 5 publishes")
        eq(total(after, "ringcast_deliveries_total") - total(before, "ringcast_deliveries_total"),
           5.0, "deliveries_total moved by the 5 deliveries")
        check(total(after, "ringcast_ws_upgrades_total") >= 1, "ws_upgrades_total")
        eq(m_count := total(after, "ringcast_publish_to_send_seconds_count"), 5.0,
           "one publish-to-send sample per event and delivering shard")
        check(m_count and total(after, "ringcast_publish_to_send_seconds_sum") > 0,
              "publish-to-send latency sum")
        check(total(after, "ringcast_send_iovecs_per_send_count") >= 5, "send iovec samples")
        check(total(after, "ringcast_loop_turn_seconds_count") > 0, "loop turn samples")
        eq(total(after, "ringcast_history_events"), 5.0, "history events kept")
        check(total(after, "ringcast_history_bytes") > 0, "history bytes")
        eq(total(after, "ringcast_topics_owned"), 1.0, "topics owned")
        for h in ("ringcast_publish_to_send_seconds", "ringcast_loop_turn_seconds",
                  "ringcast_send_iovecs_per_send"):
            check_histogram(after, h, ["0", "1"])
        eq(len(values(after, "ringcast_build_info")), 1, "build info")
        info = [l for n, l, _ in after["samples"] if n == "ringcast_build_info"][0]
        check(info.get("version") and info.get("commit"), f"build info labels {info}")
        check(values(after, "process_resident_memory_bytes")[0] > 0, "RSS")
        check(values(after, "process_open_fds")[0] > 0, "open fds")
        check(values(after, "process_start_time_seconds")[0] > 1.6e9, "start time")
        # the stats JSON is the other rendering of the same gather
        st = http(srv, "GET", "/api/realtime/stats").json()
        eq(st["counters"]["published"], int(total(after, "ringcast_published_total")),
           "JSON stats and /metrics agree")


def test_metrics_gauges_follow_open_connections():
    async def run(srv):
        ws = await ws_connect(srv)
        try:
            await ws_subscribe(ws, "metrics.gauge")
            m = parse(scrape(srv)[2])
            eq(total(m, "ringcast_connections", transport="websocket"), 1.0, "websocket gauge")
            eq(total(m, "ringcast_subscriptions"), 1.0, "subscriptions gauge")
        finally:
            await ws.close()

    with Server(shards=2) as srv:
        run_async(run(srv))
        wait_for(lambda: total(parse(scrape(srv)[2]), "ringcast_connections",
                               transport="websocket") == 0, what="the gauge back at 0")


def test_metrics_access_with_api_keys():
    with Server(f"--api-keys={KEY_ADMIN}:admin,{KEY_PUBLISH}:publish") as srv:
        status, _, body = scrape(srv)
        eq(status, 401, f"no key: {body}")
        status, _, body = scrape(srv, headers={"Authorization": f"Bearer {KEY_PUBLISH}"})
        eq(status, 403, f"publish-only key: {body}")
        status, _, body = scrape(srv, headers={"Authorization": "Bearer wrong-key-0123456789abc"})
        check(status in (401, 403), f"wrong key: {status} {body}")
        status, ctype, text = scrape(srv, headers={"X-API-Key": KEY_ADMIN})
        eq(status, 200, "admin key")
        eq(ctype, CTYPE, "content type")
        promtool_check(text)
        # the server survived the refusals and still answers
        eq(http(srv, "GET", "/healthz").status, 200, "healthz after refusals")


def test_metrics_method_and_query_handling():
    with Server() as srv:
        r = http(srv, "POST", "/metrics", body="{}")
        eq(r.status, 405, f"POST /metrics: {r}")
        eq(r.header("Allow"), "GET, HEAD", "Allow")
        status, _, text = scrape(srv, "/metrics?name[]=ringcast_shards")
        eq(status, 200, "a query string is ignored")
        promtool_check(text)
        r = http(srv, "HEAD", "/metrics")
        eq(r.status, 200, "HEAD")
        eq(r.body, b"", "HEAD has no body")


def dashboard_metric_names():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "expr" and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(dash)
    names = set()
    for e in exprs:
        names.update(re.findall(r'\b((?:ringcast|process)_[a-zA-Z0-9_]+)', e))
    return exprs, names


def test_grafana_dashboard_queries_name_exported_metrics():
    exprs, names = dashboard_metric_names()
    check(len(exprs) >= 6, f"the dashboard has its panels' queries: {exprs}")
    with Server(shards=2) as srv:
        run_async(subscribe_and_receive(srv, "metrics.dash", 1))
        m = parse(scrape(srv)[2])
    exported = {n for n, _, _ in m["samples"]}
    missing = sorted(n for n in names if n not in exported)
    eq(missing, [], "dashboard metrics that /metrics does not export")
    check(any(n.endswith("_bucket") for n in names), "a latency percentile panel")


def metrics_port(srv):
    def port():
        with srv.lock:
            for ln in srv.lines:
                m = re.search(r"event=listening_metrics .*port=(\d+)", ln)
                if m:
                    return int(m.group(1))
        return None
    return wait_for(port, what="the listening_metrics log line")


def test_metrics_address_listener_serves_only_metrics_without_a_key():
    with Server("--metrics-address=127.0.0.1:0", f"--api-keys={KEY_ADMIN}:admin") as srv:
        mp = metrics_port(srv)
        check(mp != srv.port, "a port of its own")
        status, ctype, text = scrape(srv, port=mp)
        eq(status, 200, f"/metrics on metrics_address without a key: {text[:200]}")
        eq(ctype, CTYPE, "content type")
        promtool_check(text)
        status, _, body = scrape(srv, "/healthz", port=mp)
        eq(status, 200, f"/healthz on metrics_address: {body}")
        for path in ("/api/realtime/stats", "/api/realtime/ws", "/nope"):
            status, _, body = scrape(srv, path, port=mp)
            eq(status, 404, f"{path} on metrics_address: {body}")
        req = urllib.request.Request(f"http://127.0.0.1:{mp}/api/realtime/publish",
                                     data=b'{"topic":"a","data":1}',
                                     headers={"Content-Type": "application/json",
                                              "X-API-Key": KEY_ADMIN})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise TestFailure("publish on metrics_address was served")
        except urllib.error.HTTPError as e:
            eq(e.code, 404, "publish on metrics_address")
        # the main listener keeps its rules
        eq(scrape(srv)[0], 401, "/metrics on the main listener without a key")
        eq(scrape(srv, headers={"X-API-Key": KEY_ADMIN})[0], 200, "... with the admin key")
        # the scrapes through metrics_address count as connections of shard 0
        m = parse(scrape(srv, port=mp)[2])
        check(values(m, "ringcast_accepted_total", shard="0")[0] >= 1, "accepted on shard 0")


def test_metrics_address_bad_values_refuse_to_start():
    for bad in ("127.0.0.1", "example.com:9464", "127.0.0.1:99999", "::1:9464", ":9464",
                "127.0.0.1:x"):
        p = subprocess.run([Server.BINARY, "--port=0", f"--metrics-address={bad}",
                            "--check-config"], capture_output=True, text=True, timeout=30)
        check(p.returncode != 0, f"metrics_address={bad} accepted: {p.stdout} {p.stderr}")
        check("metrics_address=" in (p.stdout + p.stderr) and "host:port" in (p.stdout + p.stderr),
              f"metrics_address={bad}: message {p.stdout + p.stderr!r}")
    p = subprocess.run([Server.BINARY, "--port=0", "--metrics-address=[::1]:9464",
                        "--check-config"], capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, f"[::1]:9464 is valid: {p.stdout} {p.stderr}")


def test_metrics_store_requests_and_latency_histogram():
    with Server() as srv:
        before = parse(scrape(srv)[2])
        body = {"title": "t", "message": "m", "recipients": ["user-1"], "type": "message",
                "priority": "normal", "sender_id": "user-2"}
        for _ in range(3):
            r = http(srv, "POST", "/api/realtime/notifications", body)
            eq(r.status, 201, f"notification create: {r}")
        status, _, text = scrape(srv)
        eq(status, 200, "status")
        promtool_check(text)
        after = parse(text)
        eq(after["types"].get("ringcast_store_requests_total"), "counter", "store requests TYPE")
        # the 3 creates, and the stats request of the first scrape (answered after its render)
        eq(total(after, "ringcast_store_writes_total") - total(before, "ringcast_store_writes_total"),
           3.0, "store writes moved by the 3 creates")
        got = (total(after, "ringcast_store_request_seconds_count") -
               total(before, "ringcast_store_request_seconds_count"))
        eq(got, 4.0, "latency samples: 3 creates + the first scrape's stats request")
        check(total(after, "ringcast_store_request_seconds_sum") > 0, "store latency sum")
        per_shard = ("ringcast_store_queue_depth", "ringcast_store_submitted_total",
                     "ringcast_store_answered_total")
        eq({l.get("shard") for n, l, _ in after["samples"]
            if n.startswith("ringcast_store_") and n not in per_shard}, {None},
           "the storage thread's metrics have no shard label")
        eq(values(after, "ringcast_store_queue_depth"), [0.0, 0.0],
           "nothing queued to the store once the creates are answered (per shard)")
        check(total(after, "ringcast_store_submitted_total") -
              total(before, "ringcast_store_submitted_total") >= 4,
              "store submits: 3 creates + the scrape's stats request")
        buckets = [v for n, l, v in after["samples"] if n == "ringcast_store_request_seconds_bucket"]
        eq(buckets, sorted(buckets), "cumulative store latency buckets")
        eq(buckets[-1], total(after, "ringcast_store_request_seconds_count"), "+Inf == _count")


def test_metrics_cluster_bridge_counters_and_cross_node_latency():
    """broker = redis: ringcast_redis_up, the bridge's counters (publishes
    out, events in), and publish-to-send samples on the receiving node."""
    from cluster import Nodes, Redis

    async def run(a, b):
        ws = await ws_connect(b)
        try:
            await ws_subscribe(ws, "metrics.cluster")
            for i in range(3):
                publish(a, "metrics.cluster", {"i": i})
            for i in range(3):
                ev = await ws_next(ws, type_="event")
                eq(ev["data"]["data"], {"i": i}, "event across nodes")
        finally:
            await ws.close()

    with Redis() as redis, Nodes(redis, 2) as (a, b):
        run_async(run(a, b))
        ta, tb = scrape(a)[2], scrape(b)[2]
        promtool_check(ta)
        promtool_check(tb)
        ma, mb = parse(ta), parse(tb)
        eq(values(ma, "ringcast_redis_up"), [1.0], "redis up on a")
        eq(values(ma, "ringcast_redis_published_total"), [3.0], "a published 3 to Redis")
        check(values(mb, "ringcast_redis_received_total")[0] >= 3, "b received them")
        eq(mb["types"].get("ringcast_redis_reconnects_total"), "counter", "reconnects TYPE")
        check(total(ma, "ringcast_redis_round_trip_seconds_count") >= 3,
              "a timed its 3 publishes' Redis round trips")
        check(total(ma, "ringcast_redis_round_trip_seconds_sum") > 0, "round-trip sum")
        eq(total(mb, "ringcast_publish_to_send_seconds_count"), 3.0,
           "b measured each event from its bridge receiving it to its send")


def test_idle_shards_sleep_until_their_next_timer_and_events_still_wake_them():
    # the loop sleeps on the ring until its next deadline (at most 1 s), not every 10 ms tick:
    # over a 2 s window an idle server with an idle WebSocket turns far fewer than the
    # 2 x 200 turns a 10 ms tick would make; an event still reaches the subscriber at once
    # (the ring wakes the shard; a tick would not be needed)
    with Server() as srv:
        def turns():
            st = http(srv, "GET", "/api/realtime/stats?limit=0").json()
            return [s["counters"]["loop_turns"] for s in st["shards"]]

        async def go():
            ws = await ws_connect(srv)
            await ws_request(ws, {"action": "subscribe", "topic": "idle.t"})
            before = turns()
            await asyncio.sleep(2.0)  # the measured window itself, not a wait for a condition
            after = turns()
            per_shard = [a - b for a, b in zip(after, before)]
            # each stats request costs a few turns of every shard (the gather); a 10 ms tick
            # would add ~200 per shard over the window
            check(all(n < 60 for n in per_shard), f"idle shards sleep: turns in 2 s {per_shard}")
            publish(srv, "idle.t", {"n": 1})
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            eq((msg["type"], msg["data"]["data"]), ("event", {"n": 1}), "an event wakes the sleeping shard")
            await ws.close()
        run_async(go())
