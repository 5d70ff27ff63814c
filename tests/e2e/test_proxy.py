"""PROXY protocol (proxy_protocol = true): every connection opens with a v1 or v2 header;
the bytes after it are the session's first bytes; the header's source address is what
per-IP limits and the API's loopback check see; a connection without a valid header is
refused (closed, logged, counted in proxy_refused). Then real HAProxy (deploy/haproxy.cfg,
send-proxy-v2 + check-send-proxy) in front of a node with python3-websockets clients.

Per-IP counts are per shard, and with proxy_protocol connections cannot be steered to a
shard by the client's address (docs/OPERATIONS.md), so the limit tests run one shard."""

import ipaddress
import json
import os
import socket
import struct
import subprocess
import time

from harness import Server, TestFailure, check, eq, read_responses, recv_until_close, run_async
from harness import shard_of, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = os.path.join(HERE, "..", "..", "deploy", "haproxy.cfg")
HAPROXY = "/usr/sbin/haproxy"

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: ringcast\r\n\r\n"
WS_UPGRADE = (b"GET /api/realtime/ws HTTP/1.1\r\nHost: ringcast\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")


def v1(src, dst="127.0.0.1", sport=40000, dport=8080):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst="127.0.0.1", sport=40000, dport=8080, tlv=b""):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlv
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def v2_local():
    return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)


def connect(srv, port=None, timeout=10.0, source=None):
    s = socket.create_connection(("127.0.0.1", port or srv.port),
                                 timeout=timeout * Server.TIMEOUT_SCALE,
                                 source_address=(source, 0) if source else None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_parts(s, parts, gap=0.02):
    """Each part in its own write. The gap waits for no condition: it only makes separate
    reads on the server likely (nothing fails if two parts arrive in one read)."""
    for p in parts:
        s.sendall(p)
        if gap:
            time.sleep(gap)


def proxied_get(srv, header, path, port=None):
    """One GET on a fresh connection opened with `header`; the Response."""
    s = connect(srv, port)
    try:
        s.sendall(header + f"GET {path} HTTP/1.1\r\nHost: ringcast\r\n\r\n".encode())
        return read_responses(s, 1)[0]
    finally:
        s.close()


def counters(srv, header=None):
    """Stats over a LOCAL header (the socket's own loopback address stays the peer), or
    another header with a loopback source."""
    r = proxied_get(srv, header or v2_local(), "/api/realtime/stats")
    eq(r.status, 200, "stats through a LOCAL header")
    return r.json()["counters"]


def refused_silently(s):
    """The server closed the connection without answering."""
    return recv_until_close(s) == b""


def read_ws_hello(s):
    """After a raw upgrade: the 101 head, then the first frame's text (the greeting)."""
    s.settimeout(10 * Server.TIMEOUT_SCALE)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise TestFailure(f"closed before the 101: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    check(head.startswith(b"HTTP/1.1 101"), f"upgrade answered {head!r}")
    while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7f if rest[1] & 0x7f < 126 else 2):
        rest += s.recv(65536)
    n = rest[1] & 0x7f
    off = 2
    if n == 126:
        n = struct.unpack("!H", rest[2:4])[0]
        off = 4
    while len(rest) < off + n:
        rest += s.recv(65536)
    return json.loads(rest[off:off + n])


def test_proxy_headers_accepted_whole_and_split():
    with Server("--proxy-protocol=true", shards=1) as srv:
        for name, hdr in (("v1", v1("10.0.0.1")), ("v1 tcp6", v1("2001:db8::7", "::1")),
                          ("v2", v2("10.0.0.1")), ("v2 tcp6", v2("2001:db8::7", "::1")),
                          ("v2 with a TLV", v2("10.0.0.1", tlv=b"\x04\x00\x02ab")),
                          ("v2 local", v2_local())):
            for how, parts in (("one write", [hdr + HEALTHZ]),
                               ("header, then request", [hdr, HEALTHZ]),
                               ("split inside the header", [hdr[:9], hdr[9:] + HEALTHZ]),
                               ("split inside the request", [hdr + HEALTHZ[:7], HEALTHZ[7:]]),
                               ("byte by byte", [bytes([b]) for b in hdr + HEALTHZ])):
                s = connect(srv)
                send_parts(s, parts, gap=0 if how == "byte by byte" else 0.02)
                r = read_responses(s, 1)[0]
                eq(r.status, 200, f"{name}, {how}: /healthz")
                # the connection goes on as a normal keep-alive HTTP connection
                s.sendall(HEALTHZ)
                eq(read_responses(s, 1)[0].status, 200, f"{name}, {how}: second request")
                s.close()
        # a WebSocket handshake right after the header, same write and split
        for hdr in (v1("10.0.0.1"), v2("10.0.0.1")):
            for parts in ([hdr + WS_UPGRADE], [hdr, WS_UPGRADE], [hdr[:5], hdr[5:] + WS_UPGRADE]):
                s = connect(srv)
                send_parts(s, parts)
                hello = read_ws_hello(s)
                eq(hello.get("type"), "connected", "the greeting after a proxied upgrade")
                s.close()

        # and python3-websockets on a socket that sent the header first
        async def ws_client():
            import websockets
            s = connect(srv)
            s.sendall(v2("10.0.0.9"))
            s.setblocking(False)
            async with websockets.connect(f"ws://127.0.0.1:{srv.port}/api/realtime/ws",
                                          sock=s, open_timeout=10) as ws:
                hello = json.loads(await ws.recv())
                eq(hello.get("type"), "connected", "websockets client greeting")
        run_async(ws_client())
        eq(counters(srv)["proxy_refused"], 0, "nothing refused")


def test_proxy_address_is_what_per_ip_limits_count():
    with Server("--proxy-protocol=true", "--max-connections-per-ip=2", shards=1) as srv:
        held = []
        for i in range(2):
            s = connect(srv)
            s.sendall(v2("10.0.0.1", sport=5000 + i) + HEALTHZ)
            eq(read_responses(s, 1)[0].status, 200, f"connection {i + 1} from 10.0.0.1")
            held.append(s)
        s = connect(srv)
        s.sendall(v1("10.0.0.1", sport=5002) + HEALTHZ)
        r = read_responses(s, 1)[0]
        eq(r.status, 503, "the third from 10.0.0.1")
        eq(r.json()["error"]["code"], "too_many_connections", "its error code")
        check(refused_silently(s), "then closed")
        s.close()
        # another header address, same socket address (127.0.0.1): accepted
        s = connect(srv)
        s.sendall(v2("10.0.0.2") + HEALTHZ)
        eq(read_responses(s, 1)[0].status, 200, "a connection from 10.0.0.2")
        held.append(s)
        # the API's loopback check sees the header's address, not the proxy's
        r = proxied_get(srv, v2("10.0.0.3"), "/api/realtime/stats")
        eq(r.status, 403, "stats for a proxied non-loopback client")
        eq(proxied_get(srv, v1("127.0.0.1"), "/api/realtime/stats").status, 200,
           "stats for a proxied loopback client")
        k = counters(srv)
        eq(k["refused_per_ip"], 1, "refused_per_ip")
        eq(k["proxy_refused"], 0, "proxy_refused")
        # a closed connection gives its address's slot back
        held.pop(0).close()

        def slot_free():
            s = connect(srv)
            s.sendall(v2("10.0.0.1") + HEALTHZ)
            ok = read_responses(s, 1)[0].status == 200
            (held.append(s) if ok else s.close())
            return ok
        wait_for(slot_free, 10, "a slot for 10.0.0.1 after one of its connections closed")
        for s in held:
            s.close()


def test_proxy_with_shards_and_per_ip_limits():
    """Two shards and a per-IP limit: the address steering is not attached (it would see
    only the proxy's address), connections spread over both shards, each counts its own."""
    with Server("--proxy-protocol=true", "--max-connections-per-ip=100", shards=2) as srv:
        seen, held = set(), []
        try:
            def both_shards():
                s = connect(srv)
                s.sendall(v2("10.0.0.1", sport=6000 + len(held)) + WS_UPGRADE)
                hello = read_ws_hello(s)
                held.append(s)
                seen.add(shard_of(hello["data"]["connection_id"]))
                return len(seen) == 2
            wait_for(both_shards, 10, "connections from one header address on both shards")
            check(len(held) <= 100, "within the limit")
        finally:
            for s in held:
                s.close()


def test_proxy_missing_or_malformed_header_refused():
    with Server("--proxy-protocol=true", "--handshake-timeout=300ms", shards=1) as srv:
        bad = [
            ("no header: a plain request", HEALTHZ),
            ("no header: a WebSocket upgrade", WS_UPGRADE),
            ("v1 missing ports", b"PROXY TCP4 10.0.0.1 127.0.0.1\r\n" + HEALTHZ),
            ("v1 bad address", b"PROXY TCP4 10.0.0.300 127.0.0.1 1 2\r\n" + HEALTHZ),
            ("v1 over 107 bytes", b"PROXY TCP4 " + b"1" * 120 + b"\r\n"),
            ("v1 lower case", b"proxy TCP4 10.0.0.1 127.0.0.1 1 2\r\n" + HEALTHZ),
            ("v2 version 3", V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12 + HEALTHZ),
            ("v2 UDP", V2_SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12 + HEALTHZ),
            ("v2 too long", V2_SIG + b"\x21\x11\xff\xff" + b"\x00" * 12),
            ("binary garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40),
        ]
        for name, data in bad:
            s = connect(srv)
            s.sendall(data)
            check(refused_silently(s), f"{name}: closed without an answer")
            s.close()
        # nothing at all, and half a header: handshake_timeout closes them
        for name, data in (("silent", b""), ("half a v2 header", v2("10.0.0.1")[:20])):
            s = connect(srv)
            if data:
                s.sendall(data)
            t0 = time.monotonic()
            check(refused_silently(s), f"{name}: closed")
            check(time.monotonic() - t0 < 5 * Server.TIMEOUT_SCALE, f"{name}: closed in time")
            s.close()
        # half a header, then the client goes away
        s = connect(srv)
        s.sendall(v1("10.0.0.1")[:10])
        s.shutdown(socket.SHUT_WR)
        check(refused_silently(s), "EOF inside the header: closed")
        s.close()
        # the server survives and says why
        eq(proxied_get(srv, v1("10.0.0.1"), "/healthz").status, 200, "healthz afterwards")
        k = wait_for(lambda: (lambda c: c if c["proxy_refused"] == len(bad) + 3 else None)(
            counters(srv)), 10, "proxy_refused to count every refusal")
        eq(k["proxy_refused"], len(bad) + 3, "proxy_refused")
        check(srv.log_has(r"event=proxy_refused shard=0 conn=[0-9a-f]{16} "
                          r"peer=127\.0\.0\.1:\d+ reason=\"[^\"]+\" count=\d+ msg=\".*send-proxy"),
              "a proxy_refused log line naming the peer and the reason:\n" + srv.log()[-2000:])


def test_proxy_header_pending_at_drain():
    """SIGTERM while a header is half read: the connection is closed and the server exits 0
    at once (not after drain_timeout)."""
    srv = Server("--proxy-protocol=true", "--drain-timeout=30s", shards=1).start()
    try:
        s = connect(srv)
        s.sendall(v2("10.0.0.1")[:20])
        # the server holds the connection (a LOCAL stats request sees it accepted)
        wait_for(lambda: counters(srv)["accepted"] >= 2, 10, "the half-header connection")
        t0 = time.monotonic()
        srv.stop()
        check(time.monotonic() - t0 < 10 * Server.TIMEOUT_SCALE, "exited without the drain timeout")
        check(refused_silently(s), "the pending connection was closed")
        s.close()
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()


def test_proxy_protocol_off_header_is_a_bad_request():
    with Server(shards=1) as srv:
        for hdr in (v1("10.0.0.1"), v2("10.0.0.1")):
            s = connect(srv)
            s.sendall(hdr + HEALTHZ)
            r = read_responses(s, 1)[0]
            eq(r.status, 400, f"a PROXY header without proxy_protocol ({hdr[:6]!r})")
            s.close()
        # and a plain request works as ever
        s = connect(srv)
        s.sendall(HEALTHZ)
        eq(read_responses(s, 1)[0].status, 200, "a plain request")
        s.close()


# ---- real HAProxy -----------------------------------------------------------------------

def test_haproxy_cfg_is_valid():
    env = dict(os.environ, RC_HAPROXY_ADDR="127.0.0.1", RC_HAPROXY_PORT="18080",
               RC_NODE1="127.0.0.1:18081", RC_NODE2="127.0.0.1:18082", RC_NODE3="127.0.0.1:18083")
    r = subprocess.run([HAPROXY, "-c", "-f", CFG], capture_output=True, text=True,
                       env=env, timeout=30)
    check(r.returncode == 0, f"haproxy -c failed: {r.stdout}{r.stderr}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_haproxy_v2_per_ip_limits():
    with Server("--proxy-protocol=true", "--max-connections-per-ip=2", shards=1) as srv:
        port = free_port()
        node = f"127.0.0.1:{srv.port}"
        # one node: all three server lines point at it (each health-checks it; the checks
        # are LOCAL, so they count for 127.0.0.1; the clients below use other addresses)
        env = dict(os.environ, RC_HAPROXY_ADDR="127.0.0.1", RC_HAPROXY_PORT=str(port),
                   RC_NODE1=node, RC_NODE2=node, RC_NODE3=node)
        # -n: the cfg's maxconn 100000 needs more open files than a test machine allows
        hap = subprocess.Popen([HAPROXY, "-f", CFG, "-db", "-n", "1000"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            def through_haproxy():
                if hap.poll() is not None:
                    raise TestFailure("haproxy exited: " + hap.stdout.read())
                try:
                    s = connect(srv, port, timeout=2, source="127.0.0.4")
                except OSError:
                    return False
                try:
                    s.sendall(HEALTHZ)
                    return read_responses(s, 1, timeout=2)[0].status == 200
                except (OSError, TestFailure):
                    return False
                finally:
                    s.close()
            wait_for(through_haproxy, 20, "a request through HAProxy to succeed", interval=0.1)

            async def clients():
                import websockets

                async def ws_from(addr):
                    s = socket.socket()
                    s.bind((addr, 0))
                    s.connect(("127.0.0.1", port))
                    s.setblocking(False)
                    ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/realtime/ws",
                                                  sock=s, open_timeout=10)
                    hello = json.loads(await ws.recv())
                    eq(hello.get("type"), "connected", f"greeting for {addr}")
                    return ws
                a = await ws_from("127.0.0.2")
                b = await ws_from("127.0.0.2")
                try:
                    await ws_from("127.0.0.2")
                    raise TestFailure("a third WebSocket from 127.0.0.2 was accepted")
                except websockets.exceptions.InvalidStatusCode as e:
                    eq(e.status_code, 503, "the third from 127.0.0.2")
                c = await ws_from("127.0.0.3")
                for ws in (a, b, c):
                    await ws.close()
            run_async(clients())
            # HAProxy's health checks (LOCAL) count for 127.0.0.1: ask from elsewhere
            k = counters(srv, v1("127.0.0.5"))
            eq(k["refused_per_ip"], 1, "refused_per_ip (the third from 127.0.0.2)")
            eq(k["proxy_refused"], 0, "HAProxy's connections all had headers")
            # the health checks (check-send-proxy) reach the node with a header too: wait
            # for three connections beyond our own stats requests
            polls = [0]

            def checks_seen():
                polls[0] += 1
                n = counters(srv, v1("127.0.0.5"))
                return n if n["accepted"] - k["accepted"] - polls[0] >= 3 else None
            n = wait_for(checks_seen, 20, "HAProxy's health checks to reach the node",
                         interval=0.3)
            eq(n["proxy_refused"], 0, "health checks refused")
        finally:
            hap.terminate()
            try:
                out, _ = hap.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                hap.kill()
                out, _ = hap.communicate()
        check(" is DOWN" not in out, "HAProxy saw a node DOWN:\n" + out)
