"""End-to-end test harness: starts the real ringcast binary on loopback and
gives tests small helpers around independent clients (http.client, raw
sockets, python3-websockets, and Node's ws/eventsource via subprocess).

Runs under Debian's /usr/bin/python3 (python3-websockets is a Debian package).
Tests never sleep-and-hope: they wait for a condition with a deadline
(wait_for), and every server is stopped with SIGTERM and must exit 0 with no
sanitizer report in its log.
"""

import asyncio
import http.client as httpclient
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "ERROR: ThreadSanitizer",
)


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what="value"):
    if got != want:
        raise TestFailure(f"{what}: got {got!r}, want {want!r}")


def wait_for(cond, timeout=10.0, what="condition", interval=0.005):
    """Poll cond() until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Server:
    """A ringcast process on 127.0.0.1 with an ephemeral port."""

    BINARY = None  # set by run.py
    TIMEOUT_SCALE = 1.0  # >1 under TSan (slower)
    TSAN = False  # the TSan build: its allocator and shadow memory make RSS meaningless

    def __init__(self, *args, shards=2, env=None, config_text=None, tmpdir=None):
        self.args = list(args)
        self.shards = shards
        # proxy_protocol=true: the tests' own HTTP calls open with a PROXY v2
        # LOCAL header (what HAProxy's health checks send)
        self.proxy_header = "--proxy-protocol=true" in self.args
        self.lines = []
        self.lock = threading.Lock()
        self.port = None
        self.proc = None
        self.config_path = None
        self.data_dir = None
        if not any(str(a).startswith("--data-dir") for a in self.args):
            # each server its own SQLite store: two servers never share ./data
            import tempfile

            self.data_dir = tempfile.mkdtemp(prefix="ringcast-e2e-")
            self.args.append(f"--data-dir={self.data_dir}")
        if not any(str(a).startswith("--drain-spread") for a in self.args):
            # tests stop servers with clients open: close them at once (test_drain.py spreads)
            self.args.append("--drain-spread=0")
        self.env = dict(os.environ)
        # the server refuses unknown RINGCAST_* variables; keep ours out
        for k in list(self.env):
            if k.startswith("RINGCAST_"):
                del self.env[k]
        if env:
            self.env.update(env)
        if config_text is not None:
            import tempfile

            fd, self.config_path = tempfile.mkstemp(suffix=".conf", dir=tmpdir)
            with os.fdopen(fd, "w") as f:
                f.write(config_text)
            self.args.append(f"--config={self.config_path}")

    def start(self, timeout=15.0):
        cmd = [Server.BINARY, "--port=0", "--listen-address=127.0.0.1",
               f"--shards={self.shards}"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=self.env, text=True, errors="replace")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

        def listening():
            with self.lock:
                for ln in self.lines:
                    m = re.search(r"event=listening .*port=(\d+)", ln)
                    if m:
                        return int(m.group(1))
            if self.proc.poll() is not None:
                raise TestFailure("ringcast exited at start:\n" + self.log())
            return None

        self.port = wait_for(listening, timeout * Server.TIMEOUT_SCALE, "the listening log line")
        return self

    def _read(self):
        for ln in self.proc.stdout:
            with self.lock:
                self.lines.append(ln.rstrip("\n"))

    def log(self):
        with self.lock:
            return "\n".join(self.lines)

    def log_has(self, pattern):
        with self.lock:
            return any(re.search(pattern, ln) for ln in self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=20.0, expect_code=0):
        """Stop the server; check its exit code and that no sanitizer fired."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout * Server.TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure(f"ringcast did not exit within {timeout}s of {sig!r}\n" +
                              self.log()[-3000:])
        self.reader.join(5)
        proc, self.proc = self.proc, None
        if self.config_path:
            os.unlink(self.config_path)
            self.config_path = None
        if self.data_dir:
            import shutil

            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
        self.check_clean()
        if expect_code is not None and code != expect_code:
            raise TestFailure(f"ringcast exited with {code}, want {expect_code}\n" +
                              self.log()[-3000:])
        return code

    def check_clean(self):
        text = self.log()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                i = text.index(marker)
                raise TestFailure("sanitizer report in the server log:\n" + text[i:i + 4000])

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        elif self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        return False

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/api/realtime/ws"


# ---- HTTP ----------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<{self.status} {self.body[:200]!r}>"


# PROXY protocol v2, command LOCAL, no addresses
PROXY_V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0x00, 0x00])


def http(srv, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection (http.client: an independent client)."""
    conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=timeout * Server.TIMEOUT_SCALE)
    try:
        if getattr(srv, "proxy_header", False):
            conn.connect()
            conn.sock.sendall(PROXY_V2_LOCAL)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def publish(srv, topic, data=None, type_="message", **extra):
    body = {"topic": topic, "type": type_, "data": data}
    body.update(extra)
    r = http(srv, "POST", "/api/realtime/publish", body)
    if r.status not in (200, 202):
        raise TestFailure(f"publish to {topic} failed: {r}")
    return r.json()["id"]


def sse_record(fp, sock, timeout=10.0):
    """The next SSE record read from fp (a response's buffered stream over sock)
    as a dict of field -> value; comment lines are skipped."""
    sock.settimeout(timeout * Server.TIMEOUT_SCALE)
    rec = {}
    while True:
        try:
            line = fp.readline()
        except socket.timeout:
            raise TestFailure(f"no SSE record within {timeout}s")
        if not line:
            raise TestFailure("SSE stream ended")
        line = line.decode().rstrip("\n")
        if line == "":
            if rec:
                return rec
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(":")
        rec[k] = v[1:] if v.startswith(" ") else v


def raw_connect(srv, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout * Server.TIMEOUT_SCALE)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until_close(s, timeout=10.0):
    s.settimeout(timeout * Server.TIMEOUT_SCALE)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def read_responses(s, count, timeout=10.0):
    """Read exactly `count` HTTP/1.1 responses (Content-Length framed) from s."""
    s.settimeout(timeout * Server.TIMEOUT_SCALE)
    buf = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise TestFailure(f"connection closed after {len(out)} of {count} responses")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = [tuple(x.split(": ", 1)) for x in lines[1:]]
        clen = 0
        for k, v in hdrs:
            if k.lower() == "content-length":
                clen = int(v)
        while len(rest) < clen:
            chunk = s.recv(65536)
            if not chunk:
                raise TestFailure("connection closed inside a response body")
            rest += chunk
        out.append(Response(status, hdrs, rest[:clen]))
        buf = rest[clen:]
    return out


# ---- WebSocket (python3-websockets) ----------------------------------------------

def run_async(coro, timeout=60.0):
    async def guarded():
        return await asyncio.wait_for(coro, timeout * Server.TIMEOUT_SCALE)
    return asyncio.run(guarded())


async def ws_connect(srv, path="/api/realtime/ws", **kw):
    import websockets
    kw.setdefault("max_size", 2 ** 24)
    kw.setdefault("open_timeout", 10 * Server.TIMEOUT_SCALE)
    ws = await websockets.connect(f"ws://127.0.0.1:{srv.port}{path}", **kw)
    hello = json.loads(await ws.recv())
    if hello.get("type") != "connected":
        raise TestFailure(f"first message is not 'connected': {hello}")
    ws.connection_id = hello["data"]["connection_id"]
    return ws


async def ws_request(ws, msg, timeout=10.0):
    """Send one action and return the next message (its answer)."""
    await ws.send(json.dumps(msg))
    return json.loads(await asyncio.wait_for(ws.recv(), timeout * Server.TIMEOUT_SCALE))


async def ws_subscribe(ws, topic, filter_=None, rid=None):
    msg = {"action": "subscribe", "topic": topic}
    if filter_ is not None:
        msg["filter"] = filter_
    if rid is not None:
        msg["id"] = rid
    r = await ws_request(ws, msg)
    if r.get("type") != "subscribed":
        raise TestFailure(f"subscribe {topic} failed: {r}")
    return r["data"]["subscription"]


async def ws_next(ws, timeout=10.0, type_=None):
    """Next message (optionally the next of a given type, skipping pings)."""
    deadline = time.monotonic() + timeout * Server.TIMEOUT_SCALE
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure(f"no {type_ or 'message'} within {timeout}s")
        m = json.loads(await asyncio.wait_for(ws.recv(), left))
        if type_ is None or m.get("type") == type_:
            return m


def shard_of(connection_id):
    """Connection ids are 16 hex digits; the first two are the owning shard."""
    return int(connection_id[:2], 16)


# ---- tokens ----------------------------------------------------------------------------

def hs256_token(secret, sub, ttl=600, **claims):
    """An HS256 JWT for sub, issued now, expiring in ttl seconds (PyJWT-free: plain hmac)."""
    def b64u(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    now = int(time.time())
    h = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    c = b64u(json.dumps(dict({"sub": sub, "iat": now, "exp": now + ttl}, **claims),
                        separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64u(sig)}"


# ---- Node clients ----------------------------------------------------------------------

def node(script, *args, timeout=120.0, env=None):
    """Run tests/e2e/node/<script> with node; it prints one JSON line as its result."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(["node", os.path.join(NODE_DIR, script)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout * Server.TIMEOUT_SCALE,
                       env=e, cwd=NODE_DIR)
    if p.returncode != 0:
        raise TestFailure(f"node {script} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if not lines:
        raise TestFailure(f"node {script} printed nothing:\n{p.stderr[-2000:]}")
    return json.loads(lines[-1])
