"""Batched publishing: POST /api/realtime/publish {"events":[...]} publishes up to 100 events in
one request; the answer lists each event's id or its error, in order (docs/API.md)."""

import json

from harness import (Server, check, eq, http, raw_connect, read_responses, run_async, ws_connect,
                     ws_next, ws_request)

P = "/api/realtime/publish"


def batch(srv, events, **kw):
    return http(srv, "POST", P, {"events": events}, **kw)


def test_publish_batch_delivers_in_order_and_answers_each_event():
    with Server(shards=4) as srv:
        async def go():
            ws = await ws_connect(srv)
            await ws_request(ws, {"action": "subscribe", "topic": "b.*"})
            # topics hashed to different owner shards; an invalid one in the middle
            events = [{"topic": f"b.t{i % 7}", "type": "tick", "data": {"i": i}} for i in range(60)]
            events.insert(20, {"topic": "b.bad topic", "data": 0})
            events.insert(40, "not an object")
            r = batch(srv, events)
            eq(r.status, 200, "batch answered")
            res = r.json()["results"]
            eq(len(res), 62, "one result per event")
            eq(res[20]["status"], 400, "the bad topic answered in its place")
            eq(res[20]["error"]["code"], "bad_topic", "its code")
            eq(res[40]["error"]["code"], "bad_type", "not an object")
            good = [x for k, x in enumerate(res) if k not in (20, 40)]
            check(all("id" in x and x["topic"].startswith("b.t") and x["status"] == 202
                      for x in good), f"ids: {good[:3]}")
            got = []
            while len(got) < 60:
                m = await ws_next(ws, type_="event")
                got.append(m["data"])
            eq([m["data"]["i"] for m in got if m["topic"] == "b.t3"],
               [i for i in range(60) if i % 7 == 3], "per-topic order kept")
            eq(sorted(m["data"]["i"] for m in got), list(range(60)), "every event exactly once")
            ids = {x["id"] for x in good}
            eq({m["id"] for m in got}, ids, "the answered ids are the delivered events' ids")
            await ws.close()
        run_async(go())


def test_publish_batch_targets_users_and_subscribers_per_event():
    with Server("--jwt-secret=batch-hs256-secret-0123456789abcdef01") as srv:
        r = batch(srv, [{"user_ids": ["nobody"], "data": 1},
                        {"topic": "t.x", "subscriber_ids": ["u1"], "data": 2},
                        {"topic": "t.y", "user_ids": ["u1"]}])
        res = r.json()["results"]
        eq(res[0]["connections"], 0, "a user-targeted event")
        check("id" in res[1], "a subscriber-targeted event")
        eq(res[2]["error"]["code"], "bad_value", "user_ids with a topic refused in its place")


def test_publish_batch_bad_inputs_and_limits():
    with Server() as srv:
        for body, why in (({"events": []}, "empty"), ({"events": {"topic": "a"}}, "not an array"),
                          ({"events": "x"}, "a string"),
                          ({"events": [{"topic": "a"}], "topic": "b"}, "other keys beside it")):
            r = http(srv, "POST", P, body)
            eq(r.status, 400, why)
            eq(r.json()["error"]["code"], "bad_value", why)
        r = batch(srv, [{"topic": f"l.{i}"} for i in range(101)])
        eq(r.status, 400, "101 events")
        check("1..100" in r.json()["error"]["message"], "the limit is named")
        r = batch(srv, [{"topic": f"l.{i}"} for i in range(100)])
        eq(r.status, 200, "100 events")
        eq(len(r.json()["results"]), 100, "all answered")
        r = batch(srv, [{"topic": "k.1", "id": "key1"}, {"topic": "k.1", "id": "key1"}])
        res = r.json()["results"]
        eq([x["status"] for x in res], [202, 200], "a repeated id in a batch is recognised")
        eq(res[0]["id"], res[1]["id"], "with the original id")
        r = batch(srv, [{"topic": "a", "type": "bad type"}, {}])
        eq([x["error"]["code"] for x in r.json()["results"]], ["bad_value", "missing_field"],
           "every event can fail alone")
        eq(http(srv, "GET", "/healthz").status, 200, "server fine")


def test_publish_batch_pipelined_and_abandoned():
    with Server(shards=2) as srv:
        s = raw_connect(srv)
        reqs = b""
        for k in range(5):
            body = json.dumps({"events": [{"topic": f"p.{k}.{i}", "data": i} for i in range(30)]})
            reqs += (f"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
            single = json.dumps({"topic": f"p.single.{k}"})
            reqs += (f"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(single)}\r\n\r\n"
                     f"{single}").encode()
        s.sendall(reqs)
        out = read_responses(s, 10)
        for k in range(5):
            res = json.loads(out[2 * k].body)["results"]
            eq([x["topic"] for x in res], [f"p.{k}.{i}" for i in range(30)], f"batch {k} in order")
            eq(json.loads(out[2 * k + 1].body)["topic"], f"p.single.{k}", "answers in request order")
        s.close()
        # a client that leaves before its batch is answered: nothing leaks, the server serves on
        for _ in range(20):
            s = raw_connect(srv)
            body = json.dumps({"events": [{"topic": f"gone.{i}"} for i in range(100)]})
            s.sendall((f"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
                       f"{body}").encode())
            s.close()
        r = batch(srv, [{"topic": "after"}])
        eq(r.status, 200, "served after abandoned batches")
