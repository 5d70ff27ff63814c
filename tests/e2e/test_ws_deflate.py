"""permessage-deflate (RFC 7692, issue 17) against the real binary, with clients
ringcast did not write: python3-websockets and Node's ws negotiate it by default.
The server answers server_no_context_takeover and compresses an event once
(events of ws_compression_min bytes or more); it inflates compressed client
messages, fragmented too, with ws_max_message bounding the inflated size (a
deflate bomb closes 1009), bad deflate data closes 1007, RSV1 on a control frame
or without the extension closes 1002, and offers with bad parameters are
declined."""

import json
import os
import struct
import time
import zlib

from harness import (Server, check, eq, http, node, publish, run_async, ws_connect, ws_next,
                     ws_request, ws_subscribe)
from test_ws_contract import FrameReader, handshake, header, new_key

ON = ("--ws-compression=true",)
BIG = {"text": "ringcast " * 110, "n": list(range(40))}  # about 1.1 KiB of JSON
SMALL = {"x": 1}


def masked(b0, payload):
    """One masked client frame with first byte b0 (FIN, RSV, opcode) and any length."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflate_msg(data):
    """A permessage-deflate message body: raw deflate, sync flush, tail removed."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    check(out.endswith(b"\x00\x00\xff\xff"), "sync flush tail")
    return out[:-4]


def inflate_msg(payload):
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def raw_deflate_conn(srv, offer="permessage-deflate"):
    """A raw socket after a handshake offering offer; returns (FrameReader, headers)."""
    key = new_key()
    s, status, hdrs, rest = handshake(srv, [
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}", f"Sec-WebSocket-Extensions: {offer}"])
    eq(status, 101, "handshake status")
    fr = FrameReader(s, rest)
    return fr, hdrs


def next_frame(fr):
    """(b0, payload) of the next server frame (FrameReader.next drops b0)."""
    fr._need(1, time.monotonic() + 10 * Server.TIMEOUT_SCALE)
    b0 = fr.buf[0]
    _, payload = fr.next()
    return b0, payload


def expect_close(fr, code, what):
    while True:
        b0, payload = next_frame(fr)
        if b0 & 0x0F == 8:
            eq(struct.unpack("!H", payload[:2])[0], code, f"{what}: close code")
            return payload[2:].decode()


def subscribe_raw(fr, topic):
    fr.s.sendall(masked(0x81, json.dumps({"action": "subscribe", "topic": topic}).encode()))
    while True:
        b0, payload = next_frame(fr)
        text = inflate_msg(payload) if b0 & 0x40 else payload
        m = json.loads(text)
        if m["type"] == "subscribed":
            return m["data"]["subscription"]


def test_ws_deflate_python_client_negotiates_and_events_arrive_equal():
    with Server(*ON) as srv:
        async def go():
            ws = await ws_connect(srv)
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            check(ext is not None and ext.startswith("permessage-deflate"), f"answer: {ext!r}")
            check("server_no_context_takeover" in ext, f"answer: {ext!r}")
            eq(len(ws.extensions), 1, "extensions in use")
            await ws_subscribe(ws, "news/a")
            publish(srv, "news/a", BIG)
            publish(srv, "news/a", SMALL)
            publish(srv, "news/a", BIG)
            got = [(await ws_next(ws, type_="event"))["data"] for _ in range(3)]
            eq([g["data"] for g in got], [BIG, SMALL, BIG], "event data")
            check(all(g["subscription"] for g in got), "subscription ids")
            await ws.close()
        run_async(go())


def test_ws_deflate_broadcast_arrives_decompressed():
    with Server(*ON) as srv:
        async def go():
            ws = await ws_connect(srv)
            r = http(srv, "POST", "/api/realtime/events/broadcast", {"event": "big", "data": BIG})
            check(r.status in (200, 202), f"broadcast: {r}")
            m = await ws_next(ws, type_="event")
            eq(m["data"]["data"], BIG, "broadcast data")
            await ws.close()
        run_async(go())


def test_ws_deflate_raw_big_event_is_compressed_small_one_is_not():
    with Server(*ON) as srv:
        fr, hdrs = raw_deflate_conn(srv, "permessage-deflate; client_max_window_bits")
        eq(header(hdrs, "Sec-WebSocket-Extensions"), "permessage-deflate; server_no_context_takeover",
           "answer")
        b0, payload = next_frame(fr)
        eq(json.loads(payload)["type"], "connected", "first message")
        sub = subscribe_raw(fr, "news/b")
        publish(srv, "news/b", SMALL)
        publish(srv, "news/b", BIG)
        b0, small = next_frame(fr)
        eq(b0 & 0x40, 0, "small event: RSV1 clear")
        eq(json.loads(small)["data"]["data"], SMALL, "small event")
        b0, big = next_frame(fr)
        eq(b0 & 0x40, 0x40, "big event: RSV1 set")
        text = inflate_msg(big)
        m = json.loads(text)
        eq(m["data"]["data"], BIG, "big event inflated")
        eq(m["data"]["subscription"], sub, "subscription id")
        check(len(big) < len(text) / 2, f"compressed {len(big)} of {len(text)} bytes")
        fr.s.close()


def test_ws_deflate_fragmented_compressed_client_messages():
    with Server(*ON, "--client-publish=true") as srv:
        async def go():
            ws = await ws_connect(srv)
            await ws_subscribe(ws, "chat/x")
            msg = json.dumps({"action": "publish", "topic": "chat/x", "type": "m", "data": BIG})
            parts = [msg[i:i + 100] for i in range(0, len(msg), 100)]
            await ws.send(parts)  # fragmented; websockets compresses, RSV1 on the first frame
            await ws.send(msg)    # and the context taken over from the previous message
            for _ in range(2):
                m = await ws_next(ws, type_="event")
                eq(m["data"]["data"], BIG, "published data")
            await ws.close()
        run_async(go())


def test_ws_deflate_raw_fragmented_compressed_publish():
    with Server(*ON, "--client-publish=true") as srv:
        fr, _ = raw_deflate_conn(srv)
        next_frame(fr)
        subscribe_raw(fr, "chat/y")
        body = deflate_msg(json.dumps({"action": "publish", "topic": "chat/y",
                                       "data": BIG}).encode())
        third = len(body) // 3
        fr.s.sendall(masked(0x41, body[:third]) + masked(0x00, body[third:2 * third]) +
                     masked(0x80, body[2 * third:]))
        while True:
            b0, payload = next_frame(fr)
            m = json.loads(inflate_msg(payload) if b0 & 0x40 else payload)
            if m["type"] == "event":
                eq(m["data"]["data"], BIG, "event from the fragmented message")
                break
        fr.s.close()


def test_ws_deflate_bad_data_closes_1007_and_server_survives():
    with Server(*ON) as srv:
        fr, _ = raw_deflate_conn(srv)
        next_frame(fr)
        fr.s.sendall(masked(0xC1, b"\xff\xff\xff\xff not deflate"))
        reason = expect_close(fr, 1007, "bad deflate data")
        check("deflate" in reason, f"reason {reason!r}")
        fr.s.close()
        async def still_serving():
            ws = await ws_connect(srv)
            await ws.close()
        run_async(still_serving())


def test_ws_deflate_bomb_closes_1009():
    with Server(*ON, "--ws-max-message=64KiB") as srv:
        fr, _ = raw_deflate_conn(srv)
        next_frame(fr)
        bomb = deflate_msg(b" " * (8 << 20))  # 8 MiB of spaces in a few KiB
        check(len(bomb) < 64 * 1024, f"bomb is {len(bomb)} bytes")
        fr.s.sendall(masked(0xC1, bomb))
        reason = expect_close(fr, 1009, "deflate bomb")
        check("ws_max_message" in reason, f"reason {reason!r}")
        fr.s.close()


def test_ws_deflate_rsv1_on_control_or_continuation_closes_1002():
    with Server(*ON) as srv:
        fr, _ = raw_deflate_conn(srv)
        next_frame(fr)
        fr.s.sendall(masked(0xC9, b"ping"))  # ping with RSV1
        expect_close(fr, 1002, "RSV1 on a ping")
        fr.s.close()
        fr, _ = raw_deflate_conn(srv)
        next_frame(fr)
        body = deflate_msg(b'{"action":"ping"}')
        fr.s.sendall(masked(0x41, body[:3]) + masked(0xC0, body[3:]))
        expect_close(fr, 1002, "RSV1 on a continuation")
        fr.s.close()


def test_ws_deflate_off_by_default_no_extension_and_rsv1_closes_1002():
    with Server() as srv:
        fr, hdrs = raw_deflate_conn(srv)
        eq(header(hdrs, "Sec-WebSocket-Extensions"), None, "no extension without ws_compression")
        next_frame(fr)
        fr.s.sendall(masked(0xC1, deflate_msg(b'{"action":"ping"}')))
        expect_close(fr, 1002, "RSV1 without the extension")
        fr.s.close()
        async def go():
            ws = await ws_connect(srv)
            eq(ws.extensions, [], "python client: no extension")
            await ws.close()
        run_async(go())


def test_ws_deflate_offers_with_bad_params_are_declined():
    with Server(*ON) as srv:
        cases = [
            ("permessage-deflate; foo=1", None),
            ("permessage-deflate; server_max_window_bits=7", None),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; client_max_window_bits=16", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
            ("x-webkit-deflate-frame", None),
            ("permessage-deflate; foo, permessage-deflate; client_no_context_takeover",
             "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ('permessage-deflate; server_max_window_bits="10"',
             "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
        ]
        for offer, want in cases:
            fr, hdrs = raw_deflate_conn(srv, offer)
            eq(header(hdrs, "Sec-WebSocket-Extensions"), want, f"answer to {offer!r}")
            fr.s.close()


def test_ws_deflate_small_window_gets_plain_big_events():
    """server_max_window_bits=9: a 1 KiB event does not fit a 512-byte window's
    guarantee, so it goes uncompressed; the small window is still agreed."""
    with Server(*ON) as srv:
        fr, hdrs = raw_deflate_conn(srv, "permessage-deflate; server_max_window_bits=9")
        check("server_max_window_bits=9" in header(hdrs, "Sec-WebSocket-Extensions"), "answer")
        next_frame(fr)
        subscribe_raw(fr, "w/9")
        publish(srv, "w/9", BIG)
        b0, payload = next_frame(fr)
        eq(b0 & 0x40, 0, "RSV1 clear")
        eq(json.loads(payload)["data"]["data"], BIG, "event")
        fr.s.close()


def test_ws_deflate_node_ws_client():
    with Server(*ON, "--client-publish=true") as srv:
        out = node("ws_deflate.js", srv.ws_url, "node/t", 2, 2000, 60)
        check(out["extensions"] and out["extensions"].startswith("permessage-deflate"),
              f"extensions {out['extensions']!r}")
        eq(out["close_code"], 1000, "close code")
        eq([e["data"] for e in out["events"]], [{"pad": "n" * 2000}, {"small": 1}], "events")


def test_ws_deflate_resume_and_initial_events_arrive_equal():
    """Replayed events (since) go out from history with their compressed image;
    an initial event is re-encoded from the plain one ("initial": true)."""
    with Server(*ON) as srv:
        first = publish(srv, "h/t", BIG)
        publish(srv, "h/t", dict(BIG, second=True))

        async def go():
            ws = await ws_connect(srv)
            r = await ws_request(ws, {"action": "subscribe", "topic": "h/t", "since": first})
            eq(r["type"], "subscribed", f"resume: {r}")
            m = await ws_next(ws, type_="event")
            eq(m["data"]["data"], dict(BIG, second=True), "replayed event")
            r = await ws_request(ws, {"action": "subscribe", "topic": "h/t",
                                      "include_initial": True})
            eq(r["type"], "subscribed", f"initial: {r}")
            m = await ws_next(ws, type_="event")
            eq(m["data"]["data"], dict(BIG, second=True), "initial event")
            eq(m["data"].get("initial"), True, "initial mark")
            await ws.close()
        run_async(go())
